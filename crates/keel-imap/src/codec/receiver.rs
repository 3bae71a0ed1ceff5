//! The incremental command receiver: frames lines and literals, enforces
//! [`Limits`], and hands complete commands to the parser.

use super::command::Command;
use super::error::{ParseError, ReceiveError, ReceiveErrorKind};
use super::limits::Limits;
use super::parse::{self, CommandParts};

/// What the receiver produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete, parsed command.
    Command(Command),
    /// The client announced a synchronizing literal `{N}` and waits: the server
    /// must send a continuation request (`+ Ready for literal data`,
    /// RFC 9051 §7.5) before the client sends the bytes, or refuse with a
    /// tagged BAD/NO and call [`Receiver::reject_literal`].
    NeedsContinuation {
        /// Tag of the command in progress.
        tag: String,
        /// Announced literal size in bytes (already checked against the limits).
        size: u64,
    },
    /// A client line during AUTHENTICATE (after [`Receiver::expect_sasl_line`]).
    AuthenticateResponse(SaslResponse),
    /// `DONE` ended an IDLE (after [`Receiver::expect_idle_done`], RFC 2177 §3).
    IdleDone,
}

/// A client's answer to a SASL challenge (RFC 9051 §6.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// Decoded base64 data (empty for an empty line).
    Data(Vec<u8>),
    /// `*`: the client cancels; answer `<tag> BAD`.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a text line of the current command.
    Line,
    /// Reading literal bytes.
    Literal { remaining: u64 },
    /// Skipping the rest of a rejected line up to its LF.
    DiscardLine,
    /// Skipping a refused non-synchronizing literal.
    DiscardLiteral { remaining: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    Sasl,
    Idle,
}

/// Tracks whether a position in a line is inside a quoted string, so that a
/// `{N}` inside quotes is not mistaken for a literal (RFC 9051 §4.3).
#[derive(Debug, Clone, Copy, Default)]
struct QuoteScan {
    in_quote: bool,
    escaped: bool,
}

impl QuoteScan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_quote {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_quote = false;
                }
            } else if b == b'"' {
                self.in_quote = true;
            }
        }
    }
}

/// Streaming detector for a literal announcement at the end of a line that is
/// being discarded (so it is never held in memory).
#[derive(Debug, Clone, Copy, Default)]
struct DiscardScan {
    quote: QuoteScan,
    cand: Option<Candidate>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    size: u64,
    digits: usize,
    plus: bool,
    closed: bool,
}

impl DiscardScan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.quote.in_quote || b == b'"' {
                self.quote.feed(&[b]);
                self.cand = None;
                continue;
            }
            self.cand = match (self.cand, b) {
                (_, b'{') => Some(Candidate::default()),
                (Some(mut c), b'0'..=b'9') if !c.plus && !c.closed => {
                    c.size = c
                        .size
                        .saturating_mul(10)
                        .saturating_add(u64::from(b - b'0'));
                    c.digits += 1;
                    Some(c)
                }
                (Some(mut c), b'+') if c.digits > 0 && !c.plus && !c.closed => {
                    c.plus = true;
                    Some(c)
                }
                (Some(mut c), b'}') if c.digits > 0 && !c.closed => {
                    c.closed = true;
                    Some(c)
                }
                (Some(c), b'\r') if c.closed => Some(c),
                _ => None,
            };
        }
    }

    fn announcement(&self) -> Option<Announce> {
        self.cand.filter(|c| c.closed).map(|c| Announce {
            size: c.size,
            sync: !c.plus,
        })
    }
}

/// A literal announcement at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announce {
    size: u64,
    sync: bool,
}

/// Outcome of reading one line.
enum Step {
    Event(Event),
    NeedMore,
    Again,
}

/// Finds `{N}`, `{N+}` or `~{N}` (RFC 9051 §4.3, RFC 7888 §3, RFC 3516 §4.1)
/// at the end of `tail` (CR already stripped). `scan` is the quote state at
/// the start of `tail`. A size that does not fit u64 is reported as
/// `u64::MAX` so it fails the limit check.
fn announcement(tail: &[u8], mut scan: QuoteScan) -> Option<Announce> {
    let body = tail.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inner = body.get(open + 1..)?;
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    scan.feed(body.get(..open)?);
    if scan.in_quote {
        return None;
    }
    let size = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    Some(Announce { size, sync })
}

/// Reads the tag from the start of a command line, if it is a valid tag
/// (RFC 9051 §9 `tag`). `complete` says whether a SP was required.
fn tag_of(line: &[u8], complete: bool) -> Option<String> {
    let end = match line.iter().position(|&b| b == b' ') {
        Some(e) => e,
        None if complete => line.len(),
        None => return None,
    };
    let tag = line.get(..end)?;
    (!tag.is_empty() && tag.iter().all(|&b| parse::is_tag_char(b)))
        .then(|| String::from_utf8_lossy(tag).into_owned())
}

/// Incremental IMAP command receiver (sans-I/O).
///
/// Feed it bytes as they arrive with [`feed`](Self::feed), then call
/// [`next`](Self::next) until it returns `Ok(None)` ("need more data"). An
/// `Err` concerns one command only; the receiver is already resynchronised and
/// the caller just answers [`ReceiveError::to_response`] and keeps calling
/// `next`. [`pending_literal`](Self::pending_literal) tells how many literal
/// bytes are still expected.
#[derive(Debug)]
pub struct Receiver {
    limits: Limits,
    utf8: bool,
    input: Vec<u8>,
    start: usize,
    state: State,
    mode: Mode,
    /// Completed text lines of the current command (CRLF stripped).
    lines: Vec<Vec<u8>>,
    /// Literals of the current command; `literals[i]` follows `lines[i]`.
    literals: Vec<Vec<u8>>,
    /// The line being read.
    current: Vec<u8>,
    literal_total: u64,
    /// Tag of the command being read, or of the last command (for SASL/IDLE).
    tag: Option<String>,
    discard: DiscardScan,
}

impl Receiver {
    /// A receiver with the given limits, in IMAP4rev1 mailbox-name mode
    /// (modified UTF-7).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            utf8: false,
            input: Vec::new(),
            start: 0,
            state: State::Line,
            mode: Mode::Command,
            lines: Vec::new(),
            literals: Vec::new(),
            current: Vec::new(),
            literal_total: 0,
            tag: None,
            discard: DiscardScan::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits (e.g. a larger literal limit after login). Applies
    /// to the next literal announcement and line.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Turns UTF-8 mailbox names on: after `ENABLE UTF8=ACCEPT` (RFC 6855 §3)
    /// or `ENABLE IMAP4rev2` (RFC 9051 §5.1). Names are then taken as raw UTF-8
    /// rather than decoded from modified UTF-7.
    pub fn set_utf8(&mut self, on: bool) {
        self.utf8 = on;
    }

    /// Adds received bytes. Call [`next`](Self::next) afterwards until it
    /// returns `Ok(None)`.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
        self.input.extend_from_slice(data);
    }

    /// Makes the next line a SASL response (RFC 9051 §6.2.2): call after
    /// sending a `+ <challenge>` continuation for AUTHENTICATE. The line is
    /// returned as [`Event::AuthenticateResponse`]; errors carry the
    /// AUTHENTICATE command's tag.
    pub fn expect_sasl_line(&mut self) {
        self.mode = Mode::Sasl;
    }

    /// Makes the next line the end of IDLE (RFC 2177 §3): call after sending
    /// `+ idling`. `DONE` yields [`Event::IdleDone`]; anything else an
    /// [`ReceiveErrorKind::ExpectedDone`] error carrying the IDLE tag. Either way
    /// the receiver returns to command mode.
    pub fn expect_idle_done(&mut self) {
        self.mode = Mode::Idle;
    }

    /// Returns to command mode (e.g. the server ended IDLE or SASL itself).
    pub fn expect_command(&mut self) {
        self.mode = Mode::Command;
    }

    /// The server refused a synchronizing literal after
    /// [`Event::NeedsContinuation`] (it answered BAD/NO instead of `+`). The
    /// client will not send it, so the command in progress is dropped.
    pub fn reject_literal(&mut self) {
        if matches!(self.state, State::Literal { .. }) {
            self.reset_command();
            self.state = State::Line;
        }
    }

    /// Bytes of the current literal still expected, if a literal is being read.
    pub fn pending_literal(&self) -> Option<u64> {
        match self.state {
            State::Literal { remaining } | State::DiscardLiteral { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Number of received bytes not yet consumed (excluding a partial line
    /// already taken into the command being read).
    pub fn buffered_len(&self) -> usize {
        self.input.len().saturating_sub(self.start)
    }

    /// Drops unconsumed input and returns how many bytes were dropped. Call
    /// right after answering STARTTLS (RFC 9051 §6.2.1: no plaintext command
    /// may be carried over into TLS).
    pub fn clear_buffer(&mut self) -> usize {
        self.take_buffered().len()
    }

    /// Takes unconsumed input, e.g. bytes after `COMPRESS` that are already
    /// compressed (RFC 4978 §3).
    ///
    /// This includes a partial line already moved out of the input buffer by
    /// a `next()` call that returned `Ok(None)`.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        if matches!(self.state, State::Line) && self.lines.is_empty() {
            rest = std::mem::take(&mut self.current);
        }
        rest.extend_from_slice(self.input.get(self.start..).unwrap_or_default());
        self.input.clear();
        self.start = 0;
        rest
    }

    /// Call at end of input. Returns an error (with the tag if known) when the
    /// connection closed inside a command, e.g. in an unterminated literal.
    pub fn finish(&mut self) -> Option<ReceiveError> {
        let mid = !self.lines.is_empty()
            || !self.current.is_empty()
            || self.buffered_len() > 0
            || !matches!(self.state, State::Line);
        let tag = self.tag_hint();
        self.reset_command();
        self.state = State::Line;
        self.input.clear();
        self.start = 0;
        mid.then(|| ReceiveError::new(tag, ReceiveErrorKind::UnexpectedEof))
    }

    fn reset_command(&mut self) {
        self.lines.clear();
        self.literals.clear();
        self.current.clear();
        self.literal_total = 0;
    }

    fn tag_hint(&self) -> Option<String> {
        match self.lines.first() {
            Some(first) => tag_of(first, true),
            None => tag_of(&self.current, false),
        }
    }

    fn avail(&self) -> &[u8] {
        self.input.get(self.start..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.input.len());
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.input.drain(..self.start);
            self.start = 0;
        }
    }

    fn enter_discard(&mut self, already_read: &[u8]) {
        self.state = State::DiscardLine;
        self.discard = DiscardScan::default();
        self.discard.feed(already_read);
    }

    /// Returns the next event, `Ok(None)` when more input is needed, or an
    /// error about one command (the stream stays in sync).
    #[allow(clippy::should_implement_trait)] // not an Iterator: it has three outcomes
    pub fn next(&mut self) -> Result<Option<Event>, ReceiveError> {
        loop {
            match self.state {
                State::Literal { remaining } => {
                    let avail = self.avail();
                    if avail.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(avail.len());
                    let chunk = avail.get(..n).unwrap_or_default().to_vec();
                    if let Some(lit) = self.literals.last_mut() {
                        lit.extend_from_slice(&chunk);
                    }
                    self.consume(n);
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Line
                    } else {
                        State::Literal { remaining }
                    };
                }
                State::DiscardLiteral { remaining } => {
                    let avail = self.avail().len();
                    if avail == 0 {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(avail);
                    self.consume(n);
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        // Skip the rest of the command (RFC 7888 §4).
                        self.enter_discard(&[]);
                    } else {
                        self.state = State::DiscardLiteral { remaining };
                    }
                }
                State::DiscardLine => {
                    let avail = self.avail();
                    let (n, done) = match avail.iter().position(|&b| b == b'\n') {
                        Some(i) => (i, true),
                        None => (avail.len(), false),
                    };
                    let chunk = avail.get(..n).unwrap_or_default().to_vec();
                    self.discard.feed(&chunk);
                    if !done {
                        self.consume(n);
                        return Ok(None);
                    }
                    self.consume(n + 1);
                    self.state = match self.discard.announcement() {
                        // A non-synchronizing literal of the discarded command
                        // follows: skip it and go on discarding (RFC 7888 §4).
                        Some(Announce { size, sync: false }) => {
                            State::DiscardLiteral { remaining: size }
                        }
                        // A synchronizing literal is never sent: the client waits
                        // for a `+` that will not come, and sees our BAD instead.
                        _ => State::Line,
                    };
                }
                State::Line => match self.read_line()? {
                    Step::Event(ev) => return Ok(Some(ev)),
                    Step::NeedMore => return Ok(None),
                    Step::Again => {}
                },
            }
        }
    }

    /// Reads one line in `State::Line`.
    fn read_line(&mut self) -> Result<Step, ReceiveError> {
        let max_line = self.limits.max_line;
        let newline = self.avail().iter().position(|&b| b == b'\n');
        let Some(i) = newline else {
            let avail = self.avail().to_vec();
            if self.current.len() + avail.len() > max_line {
                let tag = self.tag_for_error(&avail);
                let mut seen = std::mem::take(&mut self.current);
                seen.extend_from_slice(&avail);
                self.consume(avail.len());
                self.reset_command();
                self.enter_discard(&seen);
                self.mode = Mode::Command;
                return Err(ReceiveError::new(
                    tag,
                    ReceiveErrorKind::LineTooLong { limit: max_line },
                ));
            }
            self.current.extend_from_slice(&avail);
            self.consume(avail.len());
            return Ok(Step::NeedMore);
        };
        if self.current.len() + i + 1 > max_line {
            // Complete but overlong: discard it through the DiscardLine state,
            // which also skips a trailing non-synchronizing literal.
            let head = self.avail().get(..i.min(256)).unwrap_or_default().to_vec();
            let tag = self.tag_for_error(&head);
            let seen = std::mem::take(&mut self.current);
            self.reset_command();
            self.enter_discard(&seen);
            self.mode = Mode::Command;
            return Err(ReceiveError::new(
                tag,
                ReceiveErrorKind::LineTooLong { limit: max_line },
            ));
        }
        let chunk = self.avail().get(..i).unwrap_or_default().to_vec();
        self.consume(i + 1);
        self.current.extend_from_slice(&chunk);
        if self.current.last() == Some(&b'\r') {
            self.current.pop();
        }
        let line = std::mem::take(&mut self.current);
        match self.mode {
            Mode::Sasl => {
                self.mode = Mode::Command;
                return self.sasl_line(&line).map(Step::Event);
            }
            Mode::Idle => {
                self.mode = Mode::Command;
                // RFC 2177 §3: the client ends IDLE with "DONE".
                if line.eq_ignore_ascii_case(b"DONE") {
                    return Ok(Step::Event(Event::IdleDone));
                }
                return Err(ReceiveError::new(
                    self.tag.clone(),
                    ReceiveErrorKind::ExpectedDone,
                ));
            }
            Mode::Command => {}
        }
        if self.lines.is_empty() && line.is_empty() {
            // Stray empty line between commands: ignored (lenient).
            return Ok(Step::Again);
        }
        if self.lines.is_empty() {
            self.tag = tag_of(&line, true);
        }
        let Some(ann) = announcement(&line, QuoteScan::default()) else {
            self.lines.push(line);
            return self.complete().map(Step::Event);
        };
        let total = self.literal_total.saturating_add(ann.size);
        let limit = if ann.size > self.limits.max_literal {
            Some(self.limits.max_literal)
        } else if total > self.limits.max_command_literals {
            Some(self.limits.max_command_literals)
        } else {
            None
        };
        if self.lines.is_empty() && self.tag.is_none() {
            // No tag: the command is garbage whatever follows.
            self.reset_command();
            if !ann.sync {
                self.state = State::DiscardLiteral {
                    remaining: ann.size,
                };
            }
            let err = ParseError::Syntax("missing or invalid tag".into());
            return Err(ReceiveError::new(None, err));
        }
        if let Some(limit) = limit {
            let tag = self.tag.clone();
            self.reset_command();
            if !ann.sync {
                // RFC 7888 §4: the bytes are coming anyway; skip them exactly.
                self.state = State::DiscardLiteral {
                    remaining: ann.size,
                };
            }
            return Err(ReceiveError::new(
                tag,
                ReceiveErrorKind::LiteralTooLarge {
                    size: ann.size,
                    limit,
                    synchronizing: ann.sync,
                },
            ));
        }
        self.literal_total = total;
        self.lines.push(line);
        let cap = usize::try_from(ann.size.min(1024 * 1024)).unwrap_or(0);
        self.literals.push(Vec::with_capacity(cap));
        self.state = if ann.size == 0 {
            State::Line
        } else {
            State::Literal {
                remaining: ann.size,
            }
        };
        if ann.sync {
            let tag = self.tag.clone().unwrap_or_default();
            return Ok(Step::Event(Event::NeedsContinuation {
                tag,
                size: ann.size,
            }));
        }
        Ok(Step::Again)
    }

    fn tag_for_error(&self, avail: &[u8]) -> Option<String> {
        if self.lines.is_empty() {
            let mut head = self.current.clone();
            head.extend_from_slice(avail.get(..avail.len().min(256)).unwrap_or_default());
            tag_of(&head, false)
        } else {
            self.tag.clone()
        }
    }

    fn sasl_line(&self, line: &[u8]) -> Result<Event, ReceiveError> {
        // RFC 9051 §6.2.2: "*" cancels; otherwise base64 (possibly empty).
        if line == b"*" {
            return Ok(Event::AuthenticateResponse(SaslResponse::Cancel));
        }
        super::base64::decode(line)
            .map(|d| Event::AuthenticateResponse(SaslResponse::Data(d)))
            .ok_or_else(|| ReceiveError::new(self.tag.clone(), ReceiveErrorKind::InvalidBase64))
    }

    fn complete(&mut self) -> Result<Event, ReceiveError> {
        let lines = std::mem::take(&mut self.lines);
        let literals = std::mem::take(&mut self.literals);
        self.literal_total = 0;
        let parts = CommandParts {
            lines: &lines,
            literals: &literals,
        };
        parse::parse_parts(&parts, &self.limits, self.utf8)
            .map(Event::Command)
            .map_err(|(tag, e)| ReceiveError::new(tag.or_else(|| self.tag.clone()), e))
    }
}
