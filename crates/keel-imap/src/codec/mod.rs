//! Sans-I/O IMAP codec: bytes in, typed [`Command`]s out; typed [`Response`]s in,
//! bytes out.
//!
//! Speaks IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051, after `ENABLE IMAP4rev2`)
//! plus the extensions listed in issue 4 (LITERAL+, SASL-IR, IDLE, ENABLE,
//! CONDSTORE/QRESYNC, LIST-EXTENDED, SPECIAL-USE, ESEARCH, SEARCHRES, MOVE,
//! UIDPLUS, QUOTA, ACL, SORT, THREAD, ID, BINARY, MULTIAPPEND, UTF8=ACCEPT,
//! COMPRESS, WITHIN, ...).
//!
//! # Reading commands
//!
//! ```
//! use keel_imap::codec::{Receiver, Limits, Event, CommandBody};
//!
//! let mut rx = Receiver::new(Limits::default());
//! rx.feed(b"a1 LOGIN {5}\r\n");
//! // A synchronizing literal was announced: the server must answer
//! // "+ Ready for literal data" (see `Response::continue_ready`).
//! assert!(matches!(rx.next(), Ok(Some(Event::NeedsContinuation { size: 5, .. }))));
//! rx.feed(b"alice secret\r\n");
//! match rx.next() {
//!     Ok(Some(Event::Command(cmd))) => {
//!         assert_eq!(cmd.tag, "a1");
//!         assert!(matches!(cmd.body, CommandBody::Login { .. }));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! // Nothing more buffered: "need more data".
//! assert!(matches!(rx.next(), Ok(None)));
//! ```
//!
//! # Writing responses
//!
//! ```
//! use keel_imap::codec::{Response, StatusResponse, Code, EncodeOptions};
//!
//! let resp = Response::from(StatusResponse::ok(Some("a1"), "LOGIN completed")
//!     .with_code(Code::Capability(vec!["IMAP4rev2".into()])));
//! assert_eq!(resp.to_bytes(&EncodeOptions::default()),
//!            b"a1 OK [CAPABILITY IMAP4rev2] LOGIN completed\r\n");
//! ```
//!
//! # Implementation notes
//!
//! - The [`Receiver`] frames a command (its lines and literals) and only then
//!   parses it; a failed parse never desynchronises the stream because framing
//!   does not depend on the parse.
//! - Every error that concerns a command carries its tag when one could be read,
//!   so the server can answer `<tag> BAD ...` ([`ReceiveError::to_response`]).
//! - Limits ([`Limits`]) are enforced before memory is committed: an overlong
//!   line is discarded up to its LF, an over-limit literal is refused before its
//!   bytes arrive (synchronizing) or skipped byte-exactly (non-synchronizing,
//!   RFC 7888 §4).
//! - The receiver has modes the server switches explicitly: after
//!   `AUTHENTICATE` ([`Receiver::expect_sasl_line`]) and after `IDLE`
//!   ([`Receiver::expect_idle_done`]). Switch before calling `next()` again.
//! - Line ends: CRLF is required by RFC 9051 §2.2; a bare LF is accepted
//!   leniently (many clients and test tools send it).
//! - Mailbox names are decoded to Rust strings: modified UTF-7 (RFC 3501 §5.1.3)
//!   unless UTF-8 mode is on (RFC 6855 / IMAP4rev2), see [`Receiver::set_utf8`].
//! - The codec never panics on peer input; a fuzz target lives in
//!   `crates/keel-imap/fuzz/`.
#![warn(missing_docs)]

mod base64;
mod command;
mod error;
mod limits;
pub mod mutf7;
mod parse;
mod receiver;
pub mod response;
mod types;

pub use base64::{decode as base64_decode, encode as base64_encode};
pub use command::*;
pub use error::{ParseError, ReceiveError, ReceiveErrorKind};
pub use limits::Limits;
pub use parse::parse_command;
pub use receiver::{Event, Receiver, SaslResponse};
pub use response::{
    Address, BodyExtension, BodyStructure, Code, Continue, Data, Disposition, EncodeOptions,
    Envelope, EsearchItem, FetchItem, ListData, MultiPartExt, NamespaceDesc, QuotaResource,
    Response, SinglePart, SinglePartExt, SinglePartKind, StatusKind, StatusResponse, StatusValue,
    ThreadNode,
};
pub use types::*;
