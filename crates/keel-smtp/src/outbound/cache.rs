//! The outbound connection cache: idle SMTP sessions kept for a short time so that the
//! next delivery to the same destination runs its transaction on an open session instead
//! of connecting, greeting, negotiating TLS and authenticating again (RFC 5321 §3.3: a
//! session may carry several mail transactions; the client sends RSET before reusing one,
//! §4.1.1.5). Modelled on Postfix's connection cache (`smtp_connection_cache_*`).
//!
//! Rules:
//! - The key is the resolved address plus every parameter the session was opened with:
//!   host name (TLS server name), EHLO name, TLS policy and the AUTH credentials. A
//!   session is never reused for different relay credentials or TLS requirements.
//! - A session is idle at most [`IDLE_TIMEOUT`], lives at most [`MAX_LIFETIME`] and runs
//!   at most [`MAX_TRANSACTIONS`] transactions; then it is closed with QUIT.
//! - At most `per_destination` idle sessions per key (the runner passes its delivery-task
//!   limit: more could never be used at once) and [`MAX_IDLE_TOTAL`] in all.
//! - Timing is real (monotonic) time, not the queue's clock.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::{Session, TlsMode};

/// How long an idle session is kept (Postfix: `smtp_connection_cache_time_limit`, 2 s).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Maximum age of a session (Postfix: `smtp_connection_reuse_time_limit`, 300 s).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Maximum transactions per session (Postfix: `smtp_connection_reuse_count_limit`).
pub(crate) const MAX_TRANSACTIONS: u32 = 100;
/// Maximum idle sessions in the whole cache.
pub(crate) const MAX_IDLE_TOTAL: usize = 100;
/// How long the liveness RSET of a cached session may take before it is given up.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS policy a session was opened under (the connectors themselves are fixed per
/// runner: one verifying, one not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TlsPolicy {
    Off,
    Opportunistic,
    Required,
    Implicit,
}

impl TlsPolicy {
    pub(crate) fn of(mode: &TlsMode) -> Self {
        match mode {
            TlsMode::Off => Self::Off,
            TlsMode::Opportunistic(_) => Self::Opportunistic,
            TlsMode::Required(_) => Self::Required,
            TlsMode::Implicit(_) => Self::Implicit,
        }
    }
}

/// What a cached session is for: only a delivery with the same key may use it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionKey {
    pub addr: SocketAddr,
    pub host: String,
    pub helo: String,
    pub tls: TlsPolicy,
    /// Relay AUTH user and password: compared exactly, never logged.
    pub auth: Option<(String, String)>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("addr", &self.addr)
            .field("host", &self.host)
            .field("helo", &self.helo)
            .field("tls", &self.tls)
            .field("auth_user", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

struct Idle {
    session: Session,
    since: Instant,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= IDLE_TIMEOUT
            || now.saturating_duration_since(self.session.opened) >= MAX_LIFETIME
    }
}

/// The idle sessions, by key.
#[derive(Default)]
pub(crate) struct ConnCache {
    idle: Mutex<HashMap<SessionKey, Vec<Idle>>>,
}

impl ConnCache {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<SessionKey, Vec<Idle>>) -> T) -> T {
        match self.idle.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Takes the most recently used idle session for `key`. Expired sessions met on the
    /// way are returned in `stale` for the caller to close.
    pub(crate) fn take(&self, key: &SessionKey, stale: &mut Vec<Session>) -> Option<Session> {
        let now = Instant::now();
        self.with(|m| {
            let list = m.get_mut(key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                if idle.expired(now) {
                    stale.push(idle.session);
                } else {
                    found = Some(idle.session);
                    break;
                }
            }
            if list.is_empty() {
                m.remove(key);
            }
            found
        })
    }

    /// Offers a session after a transaction. Returns it when it must be closed instead:
    /// too many transactions, too old, or the cache is full.
    pub(crate) fn put(
        &self,
        key: SessionKey,
        session: Session,
        per_destination: usize,
    ) -> Option<Session> {
        let now = Instant::now();
        if session.transactions >= MAX_TRANSACTIONS
            || now.saturating_duration_since(session.opened) >= MAX_LIFETIME
        {
            return Some(session);
        }
        self.with(|m| {
            let total: usize = m.values().map(Vec::len).sum();
            let list = m.entry(key).or_default();
            if total >= MAX_IDLE_TOTAL || list.len() >= per_destination.max(1) {
                if list.is_empty() {
                    m.retain(|_, l| !l.is_empty());
                }
                return Some(session);
            }
            list.push(Idle {
                session,
                since: now,
            });
            None
        })
    }

    /// Removes and returns every session idle too long or too old.
    pub(crate) fn expire(&self) -> Vec<Session> {
        let now = Instant::now();
        self.with(|m| {
            let mut out = Vec::new();
            for list in m.values_mut() {
                let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| i.expired(now));
                *list = keep;
                out.extend(old.into_iter().map(|i| i.session));
            }
            m.retain(|_, l| !l.is_empty());
            out
        })
    }

    /// Removes and returns every idle session (shutdown, end of `run_once`).
    pub(crate) fn drain(&self) -> Vec<Session> {
        self.with(|m| {
            m.drain()
                .flat_map(|(_, l)| l.into_iter().map(|i| i.session))
                .collect()
        })
    }
}
