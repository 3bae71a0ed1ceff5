//! The connection facts the binary passes to every request as an axum extension.

use std::net::SocketAddr;

/// Who is connected and how. The binary inserts it with `router.layer(Extension(info))` for
/// each accepted connection; the admin API reads it for remote-administration checks
/// (guide §19.3), session IP binding (guide §17.4), cookie flags and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS-protected (HTTPS).
    pub tls: bool,
}
