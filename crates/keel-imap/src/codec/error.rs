//! Receiver and parser errors. Each maps to a BAD (or NO) response that keeps
//! the session usable; see [`ReceiveError::to_response`].

use super::response::{Code, StatusResponse};

/// Why a command could not be parsed (syntax, RFC 9051 §9). The text is safe to
/// send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Generic syntax error; the text says what was expected.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The command name is not known.
    #[error("unknown command {0}")]
    UnknownCommand(String),
    /// Parenthesised lists nested deeper than [`Limits::max_depth`](super::Limits::max_depth).
    #[error("too deeply nested (limit {0})")]
    TooDeep(usize),
    /// A sequence set had more than [`Limits::max_sequence_ranges`](super::Limits::max_sequence_ranges) items.
    #[error("sequence set too long (limit {0})")]
    TooManyRanges(usize),
    /// A mailbox name was not valid modified UTF-7 / UTF-8.
    #[error("invalid mailbox name: {0}")]
    BadMailboxName(String),
}

/// What went wrong in the receiver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveErrorKind {
    /// A line exceeded [`Limits::max_line`](super::Limits::max_line). It was
    /// (or will be) discarded up to its LF.
    #[error("line too long (limit {limit} bytes)")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A literal was larger than [`Limits::max_literal`](super::Limits::max_literal)
    /// or would push the command over
    /// [`Limits::max_command_literals`](super::Limits::max_command_literals).
    /// A synchronizing literal will not be sent by the client (it waits for `+`);
    /// a non-synchronizing one is skipped byte-exactly with the rest of the
    /// command. Answer with `[TOOBIG]` (RFC 7889 §4, RFC 9051 §7.1).
    #[error("literal too large ({size} bytes, limit {limit})")]
    LiteralTooLarge {
        /// Announced size.
        size: u64,
        /// The limit that was hit.
        limit: u64,
        /// `{N}` (true) or `{N+}` (false).
        synchronizing: bool,
    },
    /// The command did not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// Input ended inside a command (see [`Receiver::finish`](super::Receiver::finish)).
    #[error("connection closed inside a command")]
    UnexpectedEof,
    /// A SASL continuation line was not valid base64 (RFC 9051 §6.2.2).
    #[error("invalid base64 in SASL response")]
    InvalidBase64,
    /// After IDLE the client sent something other than `DONE` (RFC 2177 §3).
    #[error("expected DONE")]
    ExpectedDone,
}

/// A receiver error, with the tag of the command it concerns when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ReceiveError {
    /// The command's tag, if one could be read; answer untagged `* BAD` if not.
    pub tag: Option<String>,
    /// What went wrong.
    pub kind: ReceiveErrorKind,
}

impl ReceiveError {
    pub(crate) fn new(tag: Option<String>, kind: impl Into<ReceiveErrorKind>) -> Self {
        Self {
            tag,
            kind: kind.into(),
        }
    }

    /// The response a server should send: `<tag> BAD [code] text`, or `* BAD`
    /// without a tag. Over-limit literals get `[TOOBIG]` (RFC 9051 §7.1, RFC
    /// 7889 §4); for a refused synchronizing literal RFC 7888 §4 also allows a
    /// NO, but BAD is always correct because the command was not executed.
    pub fn to_response(&self) -> StatusResponse {
        let code = match self.kind {
            ReceiveErrorKind::LiteralTooLarge { .. } => Some(Code::TooBig),
            _ => None,
        };
        let mut r = StatusResponse::bad(self.tag.as_deref(), self.kind.to_string());
        r.code = code;
        r
    }
}
