//! Keel's web front-end (DESIGN §6, §10). This build holds the JSON admin API
//! ([`admin`]) and the web admin UI ([`ui`]), a client of that API; webmail and DAV come
//! later on top of the same operations.
//!
//! The binary owns the listeners (keel-net) and hands every HTTP connection to an axum
//! [`axum::Router`], inserting a [`ConnInfo`] request extension so handlers know the client
//! address and whether the connection is TLS-protected.

pub mod admin;
pub mod chart;
mod conn;
pub mod ui;

pub use conn::ConnInfo;
