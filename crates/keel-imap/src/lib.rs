//! keel-imap: the IMAP4rev2 (RFC 9051) / IMAP4rev1 (RFC 3501) side of Keel.
//!
//! [`codec`] is the sans-I/O wire codec: an incremental command receiver, typed
//! commands and a typed response writer; it never imports tokio or `keel_store`.
//! [`server`] runs it over [`keel_net`] connections: [`ImapService`] is the
//! [`keel_net::Handler`] built from an [`ImapContext`].

pub mod codec;
pub mod server;

pub use server::{ImapContext, ImapLimits, ImapService};
