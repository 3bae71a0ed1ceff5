//! Keel POP3 server (RFC 1939) with the extension mechanism (RFC 2449), STLS (RFC 2595),
//! response codes (RFC 2449 §8, RFC 3206) and SASL (RFC 5034). POP3 sees INBOX only
//! (guide §6.2) and one POP3 session per account at a time (guide table 12.1).
//!
//! - [`codec`]: sans-I/O command parser and response writer (no tokio, no store).
//! - [`Pop3Service`]: the [`keel_net::Handler`] that serves connections.
//!
//! # Implementation notes
//!
//! - The protocol never talks to storage: it calls [`keel_mail::Mailboxes`] and the
//!   directory behind it (DESIGN §1), always in `spawn_blocking`.
//! - Authentication goes through [`keel_directory::Directory`]: USER/PASS through
//!   `authenticate`, AUTH through the shared [`keel_directory::sasl`] mechanisms, so the
//!   lockout, disabled accounts, login names (guide §7.2.1, §7.7) and the security log are
//!   the same for every protocol.
//! - APOP is not offered: Keel keeps no reversible passwords (requirements-1 §0.8).
//!   TODO(RFC 1939 §7): APOP as a legacy opt-in once reversible secrets exist.
//! - Message sizes (STAT, LIST) are the stored sizes; RETR sends the bytes with line ends
//!   normalised to CRLF, so the sizes are exact for messages stored with CRLF (what SMTP
//!   delivers) and approximate otherwise, which RFC 1939 §5 tolerates for LIST only.
//!   TODO(RFC 1939 §5): store the CRLF size at delivery when it differs.

#![warn(missing_docs)]

pub mod codec;
mod server;

pub use server::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_FAILED_COMMANDS, Pop3Context, Pop3Limits, Pop3Service,
    SERVICE_NAME,
};
