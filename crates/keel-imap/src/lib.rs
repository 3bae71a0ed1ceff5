//! keel-imap: the IMAP4rev2 (RFC 9051) / IMAP4rev1 (RFC 3501) side of Keel.
//!
//! [`codec`] is the sans-I/O wire codec: an incremental command receiver, typed
//! commands and a typed response writer. The server (being written) sits on top
//! of it; the codec never imports tokio or `keel_store`.

pub mod codec;
