//! Status responses: OK, NO, BAD, PREAUTH, BYE (RFC 9051 §7.1).

use super::code::Code;
use super::writer;

/// The condition of a status response (RFC 9051 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// `OK` (§7.1.1)
    Ok,
    /// `NO` (§7.1.2)
    No,
    /// `BAD` (§7.1.3)
    Bad,
    /// `PREAUTH` (§7.1.4), untagged greeting only.
    PreAuth,
    /// `BYE` (§7.1.5), untagged only.
    Bye,
}

impl StatusKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::No => "NO",
            Self::Bad => "BAD",
            Self::PreAuth => "PREAUTH",
            Self::Bye => "BYE",
        }
    }
}

/// `[tag / "*"] SP (OK / NO / BAD / PREAUTH / BYE) SP ["[" code "]" SP] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The tag for a command completion; `None` for an untagged response.
    pub tag: Option<String>,
    /// OK, NO, BAD, PREAUTH or BYE.
    pub kind: StatusKind,
    /// Optional response code (RFC 9051 §7.1 `resp-text-code`).
    pub code: Option<Code>,
    /// Human-readable text; CR/LF are replaced by spaces when written.
    pub text: String,
}

impl StatusResponse {
    fn new(tag: Option<&str>, kind: StatusKind, text: impl Into<String>) -> Self {
        Self {
            tag: tag.map(str::to_string),
            kind,
            code: None,
            text: text.into(),
        }
    }

    /// `tag OK text` (or `* OK` with `None`).
    pub fn ok(tag: Option<&str>, text: impl Into<String>) -> Self {
        Self::new(tag, StatusKind::Ok, text)
    }

    /// `tag NO text`.
    pub fn no(tag: Option<&str>, text: impl Into<String>) -> Self {
        Self::new(tag, StatusKind::No, text)
    }

    /// `tag BAD text` (untagged `* BAD` with `None`, e.g. when no tag could be read).
    pub fn bad(tag: Option<&str>, text: impl Into<String>) -> Self {
        Self::new(tag, StatusKind::Bad, text)
    }

    /// `* PREAUTH text` (greeting of a pre-authenticated connection).
    pub fn preauth(text: impl Into<String>) -> Self {
        Self::new(None, StatusKind::PreAuth, text)
    }

    /// `* BYE text` (the server is closing the connection).
    pub fn bye(text: impl Into<String>) -> Self {
        Self::new(None, StatusKind::Bye, text)
    }

    /// Adds a response code.
    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match (&self.tag, self.kind) {
            (Some(t), StatusKind::Ok | StatusKind::No | StatusKind::Bad) => writer::text(out, t),
            _ => out.push(b'*'),
        }
        out.push(b' ');
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.push(b' ');
        if let Some(code) = &self.code {
            out.push(b'[');
            code.encode(out);
            out.push(b']');
            out.push(b' ');
        }
        // RFC 3501 §9 requires non-empty text.
        if self.text.is_empty() {
            out.extend_from_slice(self.kind.as_str().as_bytes());
        } else {
            writer::text(out, &self.text);
        }
        out.extend_from_slice(b"\r\n");
    }
}
