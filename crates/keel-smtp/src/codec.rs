//! Sans-I/O SMTP codec: line reader, DATA and BDAT receivers, request parsing, replies.
//!
//! Implementation notes:
//! - No tokio and no storage here (DESIGN §1, STYLE §1): the server feeds bytes in and
//!   gets typed events out; the same code serves tests and fuzzing.
//! - Requests are parsed by `smtp-proto` (pinned 0.2.5) once [`LineReader`] has cut a
//!   complete line; this module owns the limits and the framing, `smtp-proto` the grammar.
//! - An over-long command line is consumed up to its LF and reported as
//!   [`Line::TooLong`], so the session stays in sync and answers 500 5.5.6.
//! - [`DataReceiver`] dot-unstuffs (RFC 5321 §4.5.2) and, past the size limit, keeps
//!   reading but discards the bytes until the final dot, then reports the overflow so
//!   the server answers 552 after the dot (RFC 5321 §4.5.3.1.10) without losing sync.
//! - [`BdatReceiver`] reads exactly the announced chunk (RFC 3030 §2), also discarding
//!   beyond the limit.

use std::borrow::Cow;
use std::fmt;

pub use smtp_proto::Request;

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;
/// Longer limit for AUTH lines and SASL responses: a SCRAM or PLAIN initial response in
/// base64 can exceed 512 octets (RFC 4954 §4 allows 12288 for the line).
pub const MAX_AUTH_LINE: usize = 12_288;
/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

/// Outcome of [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, CRLF (or bare LF) stripped.
    Complete(Vec<u8>),
    /// A line longer than the limit was consumed and dropped.
    TooLong,
}

/// Cuts a byte stream into lines with a limit; bytes after the line stay buffered
/// (PIPELINING, RFC 2920).
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Set while discarding the rest of an over-long line.
    discarding: bool,
}

impl LineReader {
    /// A reader with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes every buffered byte (used to hand pipelined bytes to a DATA/BDAT receiver).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether bytes are buffered (RFC 3207 §4.2: nothing may follow STARTTLS).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next line if one is complete, with `limit` octets including CRLF.
    pub fn next_line(&mut self, limit: usize) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let rest = self.buf.split_off(pos + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                if std::mem::take(&mut self.discarding) || line.len() > limit {
                    return Some(Line::TooLong);
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Line::Complete(line))
            }
            None => {
                if self.buf.len() > limit {
                    // Keep nothing of an over-long line; report it at its LF.
                    self.buf.clear();
                    self.discarding = true;
                }
                None
            }
        }
    }
}

/// Why a command line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a known command.
    UnknownCommand,
    /// Bad syntax, with the expected form.
    Syntax(&'static str),
    /// A bad sender address.
    BadSender,
    /// A bad recipient address.
    BadRecipient,
    /// A parameter with a bad value.
    BadParameter(&'static str),
    /// A parameter this server does not implement.
    UnsupportedParameter(String),
}

/// Parses one command line (without CRLF).
pub fn parse_command(line: &[u8]) -> Result<Request<String>, ParseError> {
    let mut framed = Vec::with_capacity(line.len() + 2);
    framed.extend_from_slice(line);
    framed.extend_from_slice(b"\r\n");
    let parsed: Result<Request<Cow<'_, str>>, smtp_proto::Error> =
        Request::parse(&mut framed.iter());
    match parsed {
        Ok(r) => Ok(r.into_owned()),
        Err(e) => Err(match e {
            smtp_proto::Error::UnknownCommand => ParseError::UnknownCommand,
            smtp_proto::Error::InvalidSenderAddress => ParseError::BadSender,
            smtp_proto::Error::InvalidRecipientAddress => ParseError::BadRecipient,
            smtp_proto::Error::SyntaxError { syntax } => ParseError::Syntax(syntax),
            smtp_proto::Error::InvalidParameter { param } => ParseError::BadParameter(param),
            smtp_proto::Error::UnsupportedParameter { param } => {
                ParseError::UnsupportedParameter(param)
            }
            _ => ParseError::Syntax("command"),
        }),
    }
}

/// Limits of a message body receiver.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Maximum message size in bytes, 0 = unlimited (guide §12.2).
    pub max_size: u64,
    /// Maximum text line length including CRLF (RFC 5321 §4.5.3.1.6).
    pub max_line: usize,
    /// Accept longer lines instead of failing the message (lenient mode).
    pub lenient_lines: bool,
}

/// What went wrong with a body that was read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the size limit: answer 552 5.3.4.
    TooBig,
    /// A line longer than allowed (strict mode, RFC 5321 §4.5.3.1.6): answered with
    /// 552 5.6.0 after the dot.
    LineTooLong,
}

/// DATA receiver (RFC 5321 §4.1.1.4, §4.5.2).
#[derive(Debug)]
pub struct DataReceiver {
    limits: BodyLimits,
    body: Vec<u8>,
    /// Bytes of the current line seen so far (for the line limit and dot detection).
    line: Vec<u8>,
    size: u64,
    error: Option<BodyError>,
}

/// Progress of a body receiver.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyProgress {
    /// Needs more bytes.
    More,
    /// The body is complete; the bytes after it (pipelined commands) are returned.
    Done {
        /// Leftover bytes after the terminator.
        rest: Vec<u8>,
    },
}

impl DataReceiver {
    /// A receiver with the given limits.
    pub fn new(limits: BodyLimits) -> Self {
        Self {
            limits,
            body: Vec::new(),
            line: Vec::new(),
            size: 0,
            error: None,
        }
    }

    /// Feeds bytes; on [`BodyProgress::Done`] call [`Self::finish`].
    pub fn push(&mut self, bytes: &[u8]) -> BodyProgress {
        for (i, &b) in bytes.iter().enumerate() {
            self.line.push(b);
            if b != b'\n' {
                if self.line.len() > self.limits.max_line + 1 {
                    // Keep memory bounded while still looking for the line end.
                    if !self.limits.lenient_lines && self.error.is_none() {
                        self.error = Some(BodyError::LineTooLong);
                    }
                    let line = std::mem::take(&mut self.line);
                    self.append(&line);
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if line == b".\r\n" || line == b".\n" {
                return BodyProgress::Done {
                    rest: bytes[i + 1..].to_vec(),
                };
            }
            // RFC 5321 §4.5.2: remove one leading dot.
            let content = if line.first() == Some(&b'.') {
                &line[1..]
            } else {
                &line[..]
            };
            if content.len() > self.limits.max_line && !self.limits.lenient_lines {
                self.error.get_or_insert(BodyError::LineTooLong);
            }
            // Normalise bare LF to CRLF so stored messages are RFC 5322 shaped.
            if content.ends_with(b"\r\n") {
                self.append(content);
            } else {
                let n = content.len() - 1;
                let mut fixed = content[..n].to_vec();
                fixed.extend_from_slice(b"\r\n");
                self.append(&fixed);
            }
        }
        BodyProgress::More
    }

    fn append(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.limits.max_size > 0 && self.size > self.limits.max_size {
            // Discard, stay in sync, report after the dot.
            self.error = Some(BodyError::TooBig);
            self.body = Vec::new();
            return;
        }
        if self.error != Some(BodyError::TooBig) {
            self.body.extend_from_slice(bytes);
        }
    }

    /// The body, or why it is refused.
    pub fn finish(self) -> Result<Vec<u8>, BodyError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.body),
        }
    }
}

/// BDAT chunk receiver (RFC 3030 §2): exactly `size` octets, no unstuffing.
#[derive(Debug)]
pub struct BdatReceiver {
    remaining: u64,
}

impl BdatReceiver {
    /// A receiver for one chunk.
    pub fn new(size: u64) -> Self {
        Self { remaining: size }
    }

    /// Moves up to the remaining chunk bytes from `bytes` into `sink` (or drops them when
    /// `sink` is `None`, when discarding an oversized message). Returns the leftover bytes
    /// once the chunk is complete.
    pub fn push(&mut self, bytes: &[u8], sink: Option<&mut Vec<u8>>) -> BodyProgress {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        if let Some(s) = sink {
            s.extend_from_slice(&bytes[..take]);
        }
        self.remaining -= take as u64;
        if self.remaining == 0 {
            BodyProgress::Done {
                rest: bytes[take..].to_vec(),
            }
        } else {
            BodyProgress::More
        }
    }
}

// ---------------------------------------------------------------------------------------
// Replies

/// Who caused a reply: the peer (`User`, logged at debug), the server (`Server`, logged at
/// warn), or the connection is unusable (`Io`, closed). STYLE §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// The client's fault.
    User,
    /// A server-side problem.
    Server,
    /// Close the connection after writing the reply.
    Close,
}

/// An SMTP reply (RFC 5321 §4.2) with its enhanced status code (RFC 3463).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// Three-digit code.
    pub code: u16,
    /// Enhanced status code, e.g. `5.7.1`; empty when not applicable (greeting).
    pub enhanced: Cow<'static, str>,
    /// Human-readable text.
    pub text: Cow<'static, str>,
    /// Who caused it.
    pub kind: ReplyKind,
}

impl SmtpReply {
    /// A reply from static parts.
    pub const fn new(code: u16, enhanced: &'static str, text: &'static str) -> Self {
        Self {
            code,
            enhanced: Cow::Borrowed(enhanced),
            text: Cow::Borrowed(text),
            kind: ReplyKind::User,
        }
    }

    /// The same reply with another text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Cow::Owned(text.into());
        self
    }

    /// The same reply marked as a server-side problem.
    #[must_use]
    pub fn server(mut self) -> Self {
        self.kind = ReplyKind::Server;
        self
    }

    /// The same reply, closing the connection afterwards.
    #[must_use]
    pub fn closing(mut self) -> Self {
        self.kind = ReplyKind::Close;
        self
    }

    /// Whether the reply is a failure (4xx/5xx).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Encodes the reply; `text` may hold several lines separated by `\n` (RFC 5321 §4.2.1
    /// multi-line form, the enhanced code repeated on each, RFC 2034 §4).
    pub fn encode(&self) -> Vec<u8> {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let l = l.trim_end_matches('\r');
            let line = if self.enhanced.is_empty() {
                format!("{}{sep}{l}\r\n", self.code)
            } else {
                format!("{}{sep}{} {l}\r\n", self.code, self.enhanced)
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}

impl std::error::Error for SmtpReply {}

/// Named replies (after mox's `smtp/codes.go`; RFC 5321 §4.2.2, RFC 3463).
pub mod replies {
    use super::SmtpReply;

    /// 250 2.0.0 OK.
    pub const OK: SmtpReply = SmtpReply::new(250, "2.0.0", "OK");
    /// 250 2.1.0 sender OK.
    pub const SENDER_OK: SmtpReply = SmtpReply::new(250, "2.1.0", "Sender OK");
    /// 250 2.1.5 recipient OK.
    pub const RECIPIENT_OK: SmtpReply = SmtpReply::new(250, "2.1.5", "Recipient OK");
    /// 250 2.0.0 reset.
    pub const RESET: SmtpReply = SmtpReply::new(250, "2.0.0", "Reset state");
    /// 221 2.0.0 closing.
    pub const BYE: SmtpReply = SmtpReply::new(221, "2.0.0", "Bye");
    /// 220 2.0.0 ready for TLS (RFC 3207 §4).
    pub const READY_FOR_TLS: SmtpReply = SmtpReply::new(220, "2.0.0", "Ready to start TLS");
    /// 235 2.7.0 authenticated (RFC 4954 §6).
    pub const AUTH_OK: SmtpReply = SmtpReply::new(235, "2.7.0", "Authentication successful");
    /// 354 start mail input.
    pub const START_DATA: SmtpReply = SmtpReply::new(354, "", "End data with <CR><LF>.<CR><LF>");
    /// 252 2.5.0 VRFY disabled (RFC 5321 §3.5.3).
    pub const CANNOT_VRFY: SmtpReply = SmtpReply::new(
        252,
        "2.5.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    );
    /// 214 help.
    pub const HELP: SmtpReply =
        SmtpReply::new(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321");

    /// 421 4.3.2 shutting down.
    pub const SHUTTING_DOWN: SmtpReply =
        SmtpReply::new(421, "4.3.2", "Service shutting down, closing connection");
    /// 421 4.4.2 idle timeout (RFC 5321 §4.5.3.2).
    pub const TIMEOUT: SmtpReply = SmtpReply::new(421, "4.4.2", "Timeout, closing connection");
    /// 421 4.7.0 too many connections from this IP (guide §12.2).
    pub const TOO_MANY_CONNECTIONS: SmtpReply =
        SmtpReply::new(421, "4.7.0", "Too many connections from your IP address");
    /// 421 4.7.0 too many failed commands (guide §12.2).
    pub const TOO_MANY_ERRORS: SmtpReply =
        SmtpReply::new(421, "4.7.0", "Too many failed commands, closing connection");
    /// 421 4.7.0 blocked after a directory harvest (guide §12.2).
    pub const HARVEST_BLOCKED: SmtpReply = SmtpReply::new(
        421,
        "4.7.0",
        "Too many unknown recipients from your IP address, try again later",
    );
    /// 450 4.7.1 blocked after a directory harvest, for RCPT within a session.
    pub const HARVEST_BLOCKED_RCPT: SmtpReply = SmtpReply::new(
        450,
        "4.7.1",
        "Too many unknown recipients from your IP address, try again later",
    );
    /// 450 4.7.1 messages-per-hour limit (guide §12.2).
    pub const RATE_LIMITED: SmtpReply = SmtpReply::new(
        450,
        "4.7.1",
        "Too many messages from your IP address in the last hour",
    );
    /// 451 4.3.0 local error.
    pub const LOCAL_ERROR: SmtpReply =
        SmtpReply::new(451, "4.3.0", "Local error in processing, try again later");
    /// 452 4.3.1 insufficient storage (guide §12.6 watchdog; RFC 3463).
    pub const LOW_DISK: SmtpReply =
        SmtpReply::new(452, "4.3.1", "Insufficient system storage, try again later");
    /// 452 4.5.3 too many recipients (RFC 5321 §4.5.3.1.10).
    pub const TOO_MANY_RECIPIENTS: SmtpReply = SmtpReply::new(452, "4.5.3", "Too many recipients");
    /// 452 4.5.3 for a recipient whose sender whitelist differs from the transaction's
    /// (issue 6 §2): RFC 5321 §4.5.3.1.10 has the client send it in another transaction.
    pub const SPLIT_TRANSACTION: SmtpReply = SmtpReply::new(
        452,
        "4.5.3",
        "Too many recipients for this message, send the rest in another transaction",
    );
    /// 452 4.2.2 mailbox full (temporary, RFC 3463 §3.3).
    pub const MAILBOX_FULL_TEMP: SmtpReply =
        SmtpReply::new(452, "4.2.2", "Mailbox full, try again later");
    /// 454 4.7.0 TLS not available.
    pub const TLS_UNAVAILABLE: SmtpReply =
        SmtpReply::new(454, "4.7.0", "TLS not available due to temporary reason");

    /// 500 5.5.2 unknown command.
    pub const UNKNOWN_COMMAND: SmtpReply =
        SmtpReply::new(500, "5.5.2", "Syntax error, command unrecognized");
    /// 500 5.5.6 line too long (RFC 5321 §4.5.3.1.4).
    pub const LINE_TOO_LONG: SmtpReply = SmtpReply::new(500, "5.5.6", "Line too long");
    /// 501 5.5.4 syntax error in parameters.
    pub const SYNTAX: SmtpReply = SmtpReply::new(501, "5.5.4", "Syntax error in parameters");
    /// 501 5.1.7 bad sender address.
    pub const BAD_SENDER: SmtpReply = SmtpReply::new(501, "5.1.7", "Bad sender address syntax");
    /// 501 5.1.3 bad recipient address.
    pub const BAD_RECIPIENT: SmtpReply =
        SmtpReply::new(501, "5.1.3", "Bad recipient address syntax");
    /// 502 5.5.1 not implemented.
    pub const NOT_IMPLEMENTED: SmtpReply = SmtpReply::new(502, "5.5.1", "Command not implemented");
    /// 503 5.5.1 bad sequence.
    pub const BAD_SEQUENCE: SmtpReply = SmtpReply::new(503, "5.5.1", "Bad sequence of commands");
    /// 504 5.5.4 unrecognised parameter.
    pub const BAD_PARAMETER: SmtpReply =
        SmtpReply::new(504, "5.5.4", "Command parameter not implemented");
    /// 504 5.5.4 unknown SASL mechanism (RFC 4954 §4).
    pub const BAD_MECHANISM: SmtpReply =
        SmtpReply::new(504, "5.5.4", "Unrecognized authentication type");
    /// 501 5.5.2 undecodable SASL response (RFC 4954 §4).
    pub const BAD_BASE64: SmtpReply = SmtpReply::new(501, "5.5.2", "Cannot decode response");
    /// 501 5.0.0 AUTH cancelled by the client (RFC 4954 §4).
    pub const AUTH_CANCELLED: SmtpReply = SmtpReply::new(501, "5.0.0", "Authentication cancelled");
    /// 530 5.7.0 authentication required (RFC 4954 §6).
    pub const AUTH_REQUIRED: SmtpReply = SmtpReply::new(530, "5.7.0", "Authentication required");
    /// 538 5.7.11 the mechanism needs an encrypted connection (RFC 4954 §6).
    pub const ENCRYPTION_REQUIRED: SmtpReply = SmtpReply::new(
        538,
        "5.7.11",
        "Encryption required for requested authentication mechanism",
    );
    /// 535 5.7.8 bad credentials (RFC 4954 §6).
    pub const AUTH_FAILED: SmtpReply =
        SmtpReply::new(535, "5.7.8", "Authentication credentials invalid");
    /// 550 5.1.1 no such user (guide §12.3: reject at RCPT, no backscatter).
    pub const NO_SUCH_USER: SmtpReply =
        SmtpReply::new(550, "5.1.1", "Mailbox unavailable: no such user");
    /// 554 5.7.1 relay denied (guide §12.2).
    pub const RELAY_DENIED: SmtpReply = SmtpReply::new(554, "5.7.1", "Relay access denied");
    /// 550 5.7.1 local-domain-only user (guide §8.2 step 8).
    pub const LOCAL_ONLY: SmtpReply = SmtpReply::new(
        550,
        "5.7.1",
        "This user may send and receive mail only within the local domains",
    );
    /// 552 5.3.4 message too big (RFC 1870 §6, guide §12.2, §18.1).
    pub const TOO_BIG: SmtpReply = SmtpReply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    );
    /// 552 5.2.2 mailbox full (RFC 3463 §3.3).
    pub const MAILBOX_FULL: SmtpReply = SmtpReply::new(552, "5.2.2", "Mailbox full");
    /// 552 5.6.0 over-long line in strict mode (RFC 5321 §4.5.3.1.6).
    pub const BODY_LINE_TOO_LONG: SmtpReply =
        SmtpReply::new(552, "5.6.0", "Message contains a line that is too long");
    /// 554 5.4.6 too many hops (RFC 5321 §6.3, guide §12.2).
    pub const TOO_MANY_HOPS: SmtpReply = SmtpReply::new(
        554,
        "5.4.6",
        "Too many hops (Received headers), routing loop?",
    );
    /// 554 5.5.0 no valid recipients.
    pub const NO_VALID_RECIPIENTS: SmtpReply = SmtpReply::new(554, "5.5.0", "No valid recipients");
    /// 555 5.5.4 unsupported MAIL/RCPT parameter (RFC 5321 §4.1.1.11).
    pub const UNSUPPORTED_PARAMETER: SmtpReply =
        SmtpReply::new(555, "5.5.4", "Unsupported MAIL FROM or RCPT TO parameter");
    /// 553 5.6.7 SMTPUTF8 address without SMTPUTF8 (RFC 6531 §3.4).
    pub const UTF8_NOT_DECLARED: SmtpReply =
        SmtpReply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
}

// ---------------------------------------------------------------------------------------
// Header helpers (pure byte functions used at acceptance)

/// Counts `Received:` header fields in the header section of `msg` (RFC 5321 §6.3 loop
/// detection; guide §12.2 "maximum number of accepted Received headers").
pub fn count_received(msg: &[u8]) -> usize {
    let mut count = 0;
    for line in header_lines(msg) {
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            count += 1;
        }
    }
    count
}

/// The header lines (physical lines, without the line end) before the first empty line.
fn header_lines(msg: &[u8]) -> impl Iterator<Item = &[u8]> {
    msg.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_size: 0,
        max_line: MAX_TEXT_LINE,
        lenient_lines: false,
    };

    #[test]
    fn lines_are_cut_and_pipelined_bytes_kept() {
        let mut r = LineReader::new();
        r.push(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRC");
        assert_eq!(r.next_line(512), Some(Line::Complete(b"EHLO a".to_vec())));
        assert_eq!(
            r.next_line(512),
            Some(Line::Complete(b"MAIL FROM:<a@b>".to_vec()))
        );
        assert_eq!(r.next_line(512), None);
        r.push(b"PT TO:<c@d>\n");
        assert_eq!(
            r.next_line(512),
            Some(Line::Complete(b"RCPT TO:<c@d>".to_vec()))
        );
    }

    #[test]
    fn over_long_command_line_is_dropped_and_sync_kept() {
        // RFC 5321 §4.5.3.1.4
        let mut r = LineReader::new();
        r.push(&vec![b'A'; 600]);
        assert_eq!(r.next_line(MAX_COMMAND_LINE), None);
        r.push(&vec![b'A'; 600]);
        assert_eq!(r.next_line(MAX_COMMAND_LINE), None);
        r.push(b"\r\nNOOP\r\n");
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Line::TooLong));
        assert_eq!(
            r.next_line(MAX_COMMAND_LINE),
            Some(Line::Complete(b"NOOP".to_vec()))
        );
        let mut r = LineReader::new();
        r.push(&[b'B'; 511]);
        r.push(b"\r\n");
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Line::TooLong));
    }

    #[test]
    fn commands_parse_through_smtp_proto() {
        let Ok(Request::Mail { from }) =
            parse_command(b"MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x1")
        else {
            panic!("MAIL not parsed");
        };
        assert_eq!(from.address, "a@example.com");
        assert_eq!(from.size, 1000);
        assert_eq!(from.env_id.as_deref(), Some("x1"));
        assert!(from.flags & smtp_proto::MAIL_RET_HDRS != 0);
        let Ok(Request::Rcpt { to }) = parse_command(
            b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.com",
        ) else {
            panic!("RCPT not parsed");
        };
        assert_eq!(to.orcpt.as_deref(), Some("b@example.com"));
        assert!(matches!(
            parse_command(b"MAIL FROM:<>"),
            Ok(Request::Mail { .. })
        ));
        assert_eq!(parse_command(b"XYZZY"), Err(ParseError::UnknownCommand));
        assert!(parse_command(b"MAIL TO:<a@b>").is_err());
    }

    #[test]
    fn data_is_dot_unstuffed_and_ends_at_the_dot() {
        let mut d = DataReceiver::new(LIMITS);
        assert_eq!(
            d.push(b"Subject: x\r\n\r\n..leading dot\r\n"),
            BodyProgress::More
        );
        let p = d.push(b"bare lf\n.\r\nQUIT\r\n");
        assert_eq!(
            p,
            BodyProgress::Done {
                rest: b"QUIT\r\n".to_vec()
            }
        );
        assert_eq!(
            d.finish().unwrap(),
            b"Subject: x\r\n\r\n.leading dot\r\nbare lf\r\n".to_vec()
        );
    }

    #[test]
    fn oversized_data_is_discarded_but_read_to_the_dot() {
        let mut d = DataReceiver::new(BodyLimits {
            max_size: 100,
            ..LIMITS
        });
        for _ in 0..10 {
            assert_eq!(d.push(&[b'x'; 50]), BodyProgress::More);
            assert_eq!(d.push(b"\r\n"), BodyProgress::More);
        }
        assert!(matches!(d.push(b".\r\n"), BodyProgress::Done { .. }));
        assert_eq!(d.finish(), Err(BodyError::TooBig));
    }

    #[test]
    fn long_body_lines_fail_in_strict_mode_only() {
        let line = [b'y'; 1200];
        let mut d = DataReceiver::new(LIMITS);
        d.push(&line);
        d.push(b"\r\n.\r\n");
        assert_eq!(d.finish(), Err(BodyError::LineTooLong));
        let mut d = DataReceiver::new(BodyLimits {
            lenient_lines: true,
            ..LIMITS
        });
        d.push(&line);
        d.push(b"\r\n.\r\n");
        assert_eq!(d.finish().unwrap().len(), 1202);
    }

    #[test]
    fn bdat_takes_exactly_the_chunk() {
        let mut b = BdatReceiver::new(5);
        let mut sink = Vec::new();
        assert_eq!(b.push(b"abc", Some(&mut sink)), BodyProgress::More);
        assert_eq!(
            b.push(b"deNOOP\r\n", Some(&mut sink)),
            BodyProgress::Done {
                rest: b"NOOP\r\n".to_vec()
            }
        );
        assert_eq!(sink, b"abcde");
    }

    #[test]
    fn replies_encode_single_and_multi_line() {
        assert_eq!(replies::OK.encode(), b"250 2.0.0 OK\r\n");
        let ehlo = SmtpReply::new(250, "", "").with_text("mx.example.com\nPIPELINING\nSIZE 10");
        assert_eq!(
            ehlo.encode(),
            b"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 10\r\n".to_vec()
        );
    }

    #[test]
    fn received_headers_are_counted_in_the_header_only() {
        let m = b"Received: a\r\nreceived: b\r\n\tcont\r\nSubject: s\r\n\r\nReceived: body\r\n";
        assert_eq!(count_received(m), 2);
    }
}
