//! POP3 codec: command lines in, responses out (RFC 1939, RFC 2449, RFC 2595, RFC 3206,
//! RFC 5034). Sans-I/O: no tokio, no store; the server and the tests drive it.
//!
//! # Implementation notes
//!
//! - [`LineReader`] is an incremental receiver: feed it bytes, take complete lines. A line
//!   longer than the limit is swallowed up to its end and reported once as
//!   [`LineError::TooLong`], so the session stays in sync (the connection stays usable).
//! - Lines end in CRLF; a bare LF is accepted too (liberal in what we accept). The terminator
//!   is not part of the returned line.
//! - Keywords are case-insensitive (RFC 1939 §3); arguments are separated by single spaces but
//!   runs of spaces are tolerated. `PASS` takes the rest of the line, spaces included
//!   (RFC 1939 §7 "a POP3 server may treat spaces in the argument as part of the password").
//! - Responses never contain CR or LF inside the status text; multi-line bodies are
//!   dot-stuffed and normalised to CRLF (RFC 1939 §3).

use std::fmt;

/// Longest command line accepted, terminator included. RFC 2449 §4 raises the limit to 255
/// octets; we accept up to the response limit of 512 octets for clients with long
/// passwords.
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest SASL client response line (RFC 5034 §4 continuation lines). Bigger than a command
/// line: SCRAM finals are short, but GSSAPI tokens can reach kilobytes.
pub const MAX_SASL_LINE: usize = 12 * 1024;
/// Longest status line written, terminator included (RFC 2449 §4: 512 octets).
pub const MAX_RESPONSE_LINE: usize = 512;
/// Longest keyword (RFC 2449 §3: 3 or 4 characters; RFC 1939 §3: "three or four").
pub const MAX_KEYWORD: usize = 4;

/// Errors of [`LineReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line exceeded the limit; it was discarded up to its end.
    #[error("line too long (limit {limit} octets)")]
    TooLong {
        /// The limit in force.
        limit: usize,
    },
}

/// Accumulates bytes from the peer and yields lines.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Set while an oversized line is being skipped.
    discarding: bool,
}

impl LineReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops buffered bytes (RFC 2595 §4: after STLS, anything the client pipelined in the
    /// clear must not be used).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// The next complete line (without its terminator), `None` when more data is needed.
    /// `limit` counts the terminator (CRLF) too.
    pub fn next_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, LineError>> {
        match self.buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                if std::mem::take(&mut self.discarding) || line.len() > limit {
                    return Some(Err(LineError::TooLong { limit }));
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Ok(line))
            }
            None => {
                if self.discarding || self.buf.len() > limit {
                    // Keep nothing of an oversized line: memory stays bounded.
                    self.discarding = true;
                    self.buf.clear();
                }
                None
            }
        }
    }
}

/// A POP3 command (RFC 1939 §4–§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User(String),
    /// `PASS secret` (RFC 1939 §7).
    Pass(String),
    /// `QUIT` (RFC 1939 §4, §6).
    Quit,
    /// `STAT` (RFC 1939 §5).
    Stat,
    /// `LIST [msg]` (RFC 1939 §5).
    List(Option<u32>),
    /// `RETR msg` (RFC 1939 §5).
    Retr(u32),
    /// `DELE msg` (RFC 1939 §5).
    Dele(u32),
    /// `NOOP` (RFC 1939 §5).
    Noop,
    /// `RSET` (RFC 1939 §5).
    Rset,
    /// `TOP msg n` (RFC 1939 §7).
    Top {
        /// Message number.
        msg: u32,
        /// Body lines wanted.
        lines: u32,
    },
    /// `UIDL [msg]` (RFC 1939 §7).
    Uidl(Option<u32>),
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). Without a mechanism, old clients
    /// expect the mechanism list (RFC 1734 practice).
    Auth {
        /// The mechanism name, upper-cased.
        mechanism: Option<String>,
        /// The initial response as sent (base64 or `=`).
        initial: Option<String>,
    },
}

impl Command {
    /// The keyword, for logs.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::Pass(_) => "PASS",
            Self::Quit => "QUIT",
            Self::Stat => "STAT",
            Self::List(_) => "LIST",
            Self::Retr(_) => "RETR",
            Self::Dele(_) => "DELE",
            Self::Noop => "NOOP",
            Self::Rset => "RSET",
            Self::Top { .. } => "TOP",
            Self::Uidl(_) => "UIDL",
            Self::Capa => "CAPA",
            Self::Stls => "STLS",
            Self::Auth { .. } => "AUTH",
        }
    }
}

impl fmt::Debug for Command {
    /// Never prints secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass(_) => f.write_str("Pass(***)"),
            Self::Auth { mechanism, initial } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field("initial", &initial.as_ref().map(|_| "***"))
                .finish(),
            Self::User(u) => f.debug_tuple("User").field(u).finish(),
            Self::List(m) => f.debug_tuple("List").field(m).finish(),
            Self::Retr(m) => f.debug_tuple("Retr").field(m).finish(),
            Self::Dele(m) => f.debug_tuple("Dele").field(m).finish(),
            Self::Uidl(m) => f.debug_tuple("Uidl").field(m).finish(),
            Self::Top { msg, lines } => f
                .debug_struct("Top")
                .field("msg", msg)
                .field("lines", lines)
                .finish(),
            other => f.write_str(other.keyword()),
        }
    }
}

/// Why a command line was not understood. Every variant is answered with `-ERR` and the
/// session continues (RFC 1939 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty line.
    #[error("empty command")]
    Empty,
    /// Not a known keyword.
    #[error("unknown command")]
    Unknown,
    /// The line is not UTF-8.
    #[error("command is not valid UTF-8")]
    NotUtf8,
    /// Wrong arguments for a known command.
    #[error("{keyword}: {reason}")]
    Syntax {
        /// The command.
        keyword: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

fn syntax(keyword: &'static str, reason: &'static str) -> ParseError {
    ParseError::Syntax { keyword, reason }
}

/// RFC 1939 §3: a message number is a decimal number (no sign); 0 parses and is answered
/// "no such message" by the session.
fn msg_number(keyword: &'static str, s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(keyword, "invalid message number"));
    }
    s.parse()
        .map_err(|_| syntax(keyword, "invalid message number"))
}

/// Parses one command line (without its terminator).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let trimmed = line.trim_start_matches(' ');
    if trimmed.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let (kw, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
    if kw.len() > MAX_KEYWORD {
        return Err(ParseError::Unknown);
    }
    // RFC 1939 §3: keywords are case-insensitive.
    let kw = kw.to_ascii_uppercase();
    let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    let none = |k: &'static str, c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(syntax(k, "takes no arguments"))
        }
    };
    let one = |k: &'static str| match args.as_slice() {
        [a] => msg_number(k, a),
        _ => Err(syntax(k, "needs one message number")),
    };
    let opt = |k: &'static str| match args.as_slice() {
        [] => Ok(None),
        [a] => msg_number(k, a).map(Some),
        _ => Err(syntax(k, "takes at most one message number")),
    };
    match kw.as_str() {
        "USER" => match args.as_slice() {
            [name] => Ok(Command::User((*name).to_owned())),
            _ => Err(syntax("USER", "needs one name")),
        },
        "PASS" => {
            // RFC 1939 §7: the whole rest of the line is the password.
            if rest.is_empty() {
                Err(syntax("PASS", "needs a password"))
            } else {
                Ok(Command::Pass(rest.to_owned()))
            }
        }
        "QUIT" => none("QUIT", Command::Quit),
        "STAT" => none("STAT", Command::Stat),
        "LIST" => opt("LIST").map(Command::List),
        "RETR" => one("RETR").map(Command::Retr),
        "DELE" => one("DELE").map(Command::Dele),
        "NOOP" => none("NOOP", Command::Noop),
        "RSET" => none("RSET", Command::Rset),
        "TOP" => match args.as_slice() {
            [m, n] => Ok(Command::Top {
                msg: msg_number("TOP", m)?,
                lines: msg_number("TOP", n)?,
            }),
            _ => Err(syntax("TOP", "needs a message number and a line count")),
        },
        "UIDL" => opt("UIDL").map(Command::Uidl),
        "CAPA" => none("CAPA", Command::Capa),
        "STLS" => none("STLS", Command::Stls),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            }),
            [m, ir] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some((*ir).to_owned()),
            }),
            _ => Err(syntax("AUTH", "too many arguments")),
        },
        _ => Err(ParseError::Unknown),
    }
}

/// A client line during a SASL exchange (RFC 5034 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// `*`: the client cancels.
    Cancel,
    /// Decoded data (empty for an empty line).
    Data(Vec<u8>),
}

/// Errors decoding SASL data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslDecodeError {
    /// Not valid base64.
    #[error("invalid base64 in SASL response")]
    BadBase64,
}

/// Decodes a SASL continuation line: `*` cancels, otherwise base64 (RFC 5034 §4).
pub fn parse_sasl_response(line: &[u8]) -> Result<SaslResponse, SaslDecodeError> {
    use base64::Engine as _;
    let line = line.trim_ascii();
    if line == b"*" {
        return Ok(SaslResponse::Cancel);
    }
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .map(SaslResponse::Data)
        .map_err(|_| SaslDecodeError::BadBase64)
}

/// Decodes the initial response of `AUTH mech ir`: `=` is an empty response (RFC 5034 §4).
pub fn parse_initial_response(ir: &str) -> Result<Vec<u8>, SaslDecodeError> {
    use base64::Engine as _;
    if ir == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(ir)
        .map_err(|_| SaslDecodeError::BadBase64)
}

/// Extended response codes (RFC 2449 §8, RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// `[IN-USE]`: the maildrop is locked by another session (RFC 2449 §8.1.1).
    InUse,
    /// `[LOGIN-DELAY]` (RFC 2449 §8.1.2).
    LoginDelay,
    /// `[SYS/TEMP]`: a temporary server problem (RFC 3206 §4).
    SysTemp,
    /// `[SYS/PERM]`: a permanent server problem (RFC 3206 §4).
    SysPerm,
    /// `[AUTH]`: credentials refused (RFC 3206 §5).
    Auth,
}

impl RespCode {
    /// The code as written inside brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InUse => "IN-USE",
            Self::LoginDelay => "LOGIN-DELAY",
            Self::SysTemp => "SYS/TEMP",
            Self::SysPerm => "SYS/PERM",
            Self::Auth => "AUTH",
        }
    }
}

/// A status response: `+OK text` or `-ERR [CODE] text` (RFC 1939 §3, RFC 2449 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `+OK` or `-ERR`.
    pub ok: bool,
    /// Optional extended code.
    pub code: Option<RespCode>,
    /// Human-readable text.
    pub text: String,
}

impl Response {
    /// `+OK text`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR text`.
    pub fn err(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR [CODE] text`.
    pub fn err_code(code: RespCode, text: impl Into<String>) -> Self {
        Self {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    /// Appends the status line with CRLF. Line breaks in the text become spaces and the line
    /// is cut to [`MAX_RESPONSE_LINE`] (RFC 2449 §4).
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut line = String::from(if self.ok { "+OK" } else { "-ERR" });
        if let Some(c) = self.code {
            line.push_str(" [");
            line.push_str(c.as_str());
            line.push(']');
        }
        if !self.text.is_empty() {
            line.push(' ');
            line.extend(
                self.text
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
            );
        }
        let max = MAX_RESPONSE_LINE - 2;
        if line.len() > max {
            let mut cut = max;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The status line as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write(&mut v);
        v
    }
}

/// Appends a SASL challenge `+ base64` (RFC 5034 §4; an empty challenge is `+ `).
pub fn write_challenge(out: &mut Vec<u8>, data: &[u8]) {
    use base64::Engine as _;
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a multi-line response, dot-stuffed (RFC 1939 §3: a line starting with
/// "." gets another ".").
pub fn write_multiline_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Appends the terminator of a multi-line response (RFC 1939 §3: ".").
pub fn write_multiline_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Appends message bytes as a dot-stuffed multi-line body (CRLF-normalised, the last line
/// terminated) followed by the terminator (RFC 1939 §3, §5 RETR).
pub fn write_message_body(out: &mut Vec<u8>, message: &[u8]) {
    for line in lines(message) {
        write_multiline_line(out, line);
    }
    write_multiline_end(out);
}

/// Splits into lines on LF, dropping the CR of CRLF. A trailing newline makes no empty last
/// line.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(move |_| !empty)
}

/// The part of a message `TOP msg n` sends: the header, the blank line, and the first `n`
/// lines of the body (RFC 1939 §7). Returns a prefix of `message`.
pub fn top_of(message: &[u8], n: u32) -> &[u8] {
    let mut pos = 0;
    // Header: up to and including the first empty line.
    let mut in_header = true;
    let mut body_lines = 0u32;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if in_header {
            pos = end;
            if line == b"\r\n" || line == b"\n" {
                in_header = false;
            }
            continue;
        }
        if body_lines >= n {
            break;
        }
        body_lines += 1;
        pos = end;
    }
    &message[..pos]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse_command(b"stat"), Ok(Command::Stat));
        assert_eq!(parse_command(b"LiSt 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse_command(b"uidl"), Ok(Command::Uidl(None)));
        assert_eq!(
            parse_command(b"top 1 10"),
            Ok(Command::Top { msg: 1, lines: 10 })
        );
        assert_eq!(parse_command(b"user bob"), Ok(Command::User("bob".into())));
    }

    #[test]
    fn pass_takes_the_rest_of_the_line() {
        assert_eq!(
            parse_command(b"PASS my secret pw"),
            Ok(Command::Pass("my secret pw".into()))
        );
        assert!(matches!(
            parse_command(b"PASS"),
            Err(ParseError::Syntax { .. })
        ));
        assert_eq!(format!("{:?}", Command::Pass("x".into())), "Pass(***)");
    }

    #[test]
    fn bad_arguments_are_syntax_errors() {
        for bad in [
            &b"RETR"[..],
            b"RETR x",
            b"RETR -1",
            b"RETR +1",
            b"DELE 1 2",
            b"STAT 1",
            b"TOP 1",
            b"LIST 99999999999",
            b"USER",
        ] {
            assert!(
                matches!(parse_command(bad), Err(ParseError::Syntax { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_command(b""), Err(ParseError::Empty));
        assert_eq!(parse_command(b"XYZZY"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b"\xff\xfe"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            parse_command(b"AUTH plain AGIAcA=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGIAcA==".into())
            })
        );
        assert_eq!(
            parse_command(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
        assert_eq!(parse_initial_response("="), Ok(Vec::new()));
        assert_eq!(parse_sasl_response(b"*"), Ok(SaslResponse::Cancel));
        assert_eq!(parse_sasl_response(b""), Ok(SaslResponse::Data(Vec::new())));
        assert_eq!(parse_sasl_response(b"!!"), Err(SaslDecodeError::BadBase64));
    }

    #[test]
    fn line_reader_splits_and_enforces_the_limit() {
        let mut r = LineReader::new();
        r.push(b"STAT\r\nNOOP\nLI");
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Ok(b"STAT".to_vec())));
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(r.next_line(MAX_COMMAND_LINE), None);
        r.push(b"ST\r\n");
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Ok(b"LIST".to_vec())));
        // An oversized line, arriving in pieces, is reported once and skipped.
        r.push(&vec![b'a'; MAX_COMMAND_LINE + 10]);
        assert_eq!(r.next_line(MAX_COMMAND_LINE), None);
        assert!(r.buffered() == 0);
        r.push(b"aaa\r\nNOOP\r\n");
        assert_eq!(
            r.next_line(MAX_COMMAND_LINE),
            Some(Err(LineError::TooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
        assert_eq!(r.next_line(MAX_COMMAND_LINE), Some(Ok(b"NOOP".to_vec())));
        // Exactly at the limit (terminator included) is fine.
        let mut line = vec![b'x'; MAX_COMMAND_LINE - 2];
        line.extend_from_slice(b"\r\n");
        r.push(&line);
        assert!(matches!(r.next_line(MAX_COMMAND_LINE), Some(Ok(_))));
        line.insert(0, b'x');
        r.push(&line);
        assert!(matches!(r.next_line(MAX_COMMAND_LINE), Some(Err(_))));
        // The SASL limit is bigger.
        r.push(&line);
        assert!(matches!(r.next_line(MAX_SASL_LINE), Some(Ok(_))));
    }

    #[test]
    fn responses_with_codes() {
        assert_eq!(Response::ok("hi").to_bytes(), b"+OK hi\r\n");
        assert_eq!(
            Response::err_code(RespCode::InUse, "locked").to_bytes(),
            b"-ERR [IN-USE] locked\r\n"
        );
        assert_eq!(
            Response::err_code(RespCode::SysTemp, "a\r\nb").to_bytes(),
            b"-ERR [SYS/TEMP] a  b\r\n"
        );
        let long = Response::err("x".repeat(2000)).to_bytes();
        assert_eq!(long.len(), MAX_RESPONSE_LINE);
    }

    #[test]
    fn bodies_are_dot_stuffed_and_crlf_normalised() {
        let mut out = Vec::new();
        write_message_body(&mut out, b"Subject: x\n\n.hidden\r\n..two\nlast");
        assert_eq!(
            out,
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nlast\r\n.\r\n"
        );
        let mut out = Vec::new();
        write_message_body(&mut out, b"");
        assert_eq!(out, b".\r\n");
        let mut out = Vec::new();
        write_challenge(&mut out, b"");
        assert_eq!(out, b"+ \r\n");
    }

    #[test]
    fn top_returns_header_and_n_body_lines() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top_of(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top_of(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top_of(m, 99), m);
        assert_eq!(top_of(b"A: 1\r\n", 5), b"A: 1\r\n");
    }
}
