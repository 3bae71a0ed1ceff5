//! Typed responses and their serialisation (RFC 9051 §7, §9 `response`).
//!
//! Build a [`Response`] and call [`Response::encode`] (or
//! [`Response::to_bytes`]) with the session's [`EncodeOptions`]. Strings are
//! written as atoms, quoted strings or literals as the grammar and content
//! require (see [`EncodeOptions`]).

mod body;
mod code;
mod data;
mod fetch;
mod status;
pub(crate) mod writer;

pub use body::{
    Address, BodyExtension, BodyStructure, Disposition, Envelope, MultiPartExt, SinglePart,
    SinglePartExt, SinglePartKind,
};
pub use code::Code;
pub use data::{
    Data, EsearchItem, ListData, NamespaceDesc, QuotaResource, StatusValue, ThreadNode,
};
pub use fetch::FetchItem;
pub use status::{StatusKind, StatusResponse};

/// Session state that changes how responses are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// UTF-8 allowed on the wire: after `ENABLE UTF8=ACCEPT` (RFC 6855 §3) or
    /// `ENABLE IMAP4rev2` (RFC 9051 §5.1). Mailbox names are then sent as UTF-8
    /// instead of modified UTF-7, and UTF-8 strings may be quoted. Without it,
    /// a string with 8-bit bytes is sent as a literal.
    pub utf8: bool,
    /// Strings longer than this many bytes are sent as literals rather than
    /// quoted. Default [`EncodeOptions::DEFAULT_QUOTED_MAX`].
    pub quoted_max: usize,
}

impl EncodeOptions {
    /// Default [`EncodeOptions::quoted_max`]: 1024 bytes.
    pub const DEFAULT_QUOTED_MAX: usize = 1024;

    /// Options for an IMAP4rev2 / UTF8=ACCEPT session.
    pub fn utf8() -> Self {
        Self {
            utf8: true,
            ..Self::default()
        }
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            utf8: false,
            quoted_max: Self::DEFAULT_QUOTED_MAX,
        }
    }
}

/// A continuation request (RFC 9051 §7.5: `continue-req = "+" SP (resp-text /
/// base64) CRLF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continue {
    /// Human-readable text, e.g. `Ready for literal data` or `idling`.
    Text(String),
    /// A SASL challenge, base64-encoded on the wire (RFC 9051 §6.2.2).
    Base64(Vec<u8>),
}

/// Any server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Tagged or untagged OK/NO/BAD, or untagged PREAUTH/BYE.
    Status(StatusResponse),
    /// Untagged data (`* ...`).
    Data(Data),
    /// Continuation request (`+ ...`).
    Continue(Continue),
}

impl From<StatusResponse> for Response {
    fn from(s: StatusResponse) -> Self {
        Self::Status(s)
    }
}

impl From<Data> for Response {
    fn from(d: Data) -> Self {
        Self::Data(d)
    }
}

impl From<Continue> for Response {
    fn from(c: Continue) -> Self {
        Self::Continue(c)
    }
}

impl Response {
    /// `+ Ready for literal data`: the answer to
    /// [`Event::NeedsContinuation`](super::Event::NeedsContinuation).
    pub fn continue_ready() -> Self {
        Self::Continue(Continue::Text("Ready for literal data".into()))
    }

    /// Appends the wire form, CRLF included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, opts: &EncodeOptions) {
        match self {
            Self::Status(s) => s.encode(out),
            Self::Data(d) => d.encode(out, opts),
            Self::Continue(c) => {
                out.extend_from_slice(b"+ ");
                match c {
                    Continue::Text(t) => writer::text(out, t),
                    Continue::Base64(b) => {
                        out.extend_from_slice(super::base64::encode(b).as_bytes())
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self, opts: &EncodeOptions) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out, opts);
        out
    }
}
