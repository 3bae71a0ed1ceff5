//! Structural limits on what the filter examines in a message from the network (issue 6
//! "a bad or hostile message never crashes the pipeline").
//!
//! Implementation notes:
//! - [`crate::mime::structure`] checks these limits with one linear pass over the raw
//!   bytes, with no recursion and no decoding, before mail-parser sees the message:
//!   mail-parser 0.11 keeps nested `message/rfc822` parts as nested values, and a few
//!   thousand levels overflow the thread's stack (an abort, not a panic).
//! - A message beyond a limit is never refused for that alone. The scorer adds a small
//!   score ([`LIMIT_SCORE`]) and writes a Warning-log line; the attachment filter and the
//!   antivirus treat it as "cannot be scanned" (guide §14.4) and send it to clamd whole.

use serde::{Deserialize, Serialize};

/// Default deepest MIME nesting examined (multipart and `message/rfc822` levels). Real
/// mail rarely goes past 5; forwarded-as-attachment chains stay below 20.
pub const DEFAULT_MAX_MIME_DEPTH: usize = 50;
/// Default most leaf parts examined per message.
pub const DEFAULT_MAX_PARTS: usize = 500;
/// Default most bytes of one header section examined (a 1 MB header line is cut here).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 256 * 1024;
/// Score the spam rating adds for a message beyond a limit: a hint, never decisive
/// alone (like SpamAssassin's MIME sanity rules).
pub const LIMIT_SCORE: f64 = 1.0;

/// The limits (defaults above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageLimits {
    /// Deepest MIME nesting examined.
    pub max_mime_depth: usize,
    /// Most leaf parts examined.
    pub max_parts: usize,
    /// Most bytes of one header section (the message's or a part's) examined.
    pub max_header_bytes: usize,
}

/// The range an administrator may set for each limit: (field, least, most).
pub const LIMIT_RANGES: [(&str, usize, usize); 3] = [
    ("max_mime_depth", 5, 1000),
    ("max_parts", 10, 100_000),
    ("max_header_bytes", 8 * 1024, 16 * 1024 * 1024),
];

impl MessageLimits {
    /// The first limit outside [`LIMIT_RANGES`]: (field, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, least, most) in LIMIT_RANGES {
            let v = match field {
                "max_mime_depth" => self.max_mime_depth,
                "max_parts" => self.max_parts,
                _ => self.max_header_bytes,
            };
            if v < least || v > most {
                return Err((field, format!("{field} must be between {least} and {most}")));
            }
        }
        Ok(())
    }
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            max_mime_depth: DEFAULT_MAX_MIME_DEPTH,
            max_parts: DEFAULT_MAX_PARTS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Which limit a message went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// MIME nesting deeper than the limit.
    #[error("MIME nesting deeper than {0} levels")]
    Depth(usize),
    /// More leaf parts than the limit.
    #[error("more than {0} MIME parts")]
    Parts(usize),
    /// A header section longer than the limit.
    #[error("a header section longer than {0} bytes")]
    HeaderBytes(usize),
    /// A `message/rfc822` part inside a multipart whose enclosed message is itself a
    /// `message/rfc822`: mail-parser 0.11 loses its place there (a debug assertion; in
    /// release builds the parts after it vanish, attachments included), found by the
    /// `mime` fuzz target.
    #[error("a message/rfc822 part directly enclosing another inside a multipart")]
    NestedMessage,
}

impl LimitHit {
    /// Name of the spam test (in `X-Spam-Status`).
    pub fn test_name(&self) -> &'static str {
        match self {
            Self::Depth(_) => "MIME_TOO_DEEP",
            Self::Parts(_) => "MIME_TOO_MANY_PARTS",
            Self::HeaderBytes(_) => "HEADER_TOO_LONG",
            Self::NestedMessage => "MIME_NESTED_MESSAGE",
        }
    }
}
