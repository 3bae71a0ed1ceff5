//! Keel directory: domains, users, groups, aliases, IP address groups, time intervals,
//! authentication and the security policy (DESIGN §2, guide §7–§9, §12.3, §12.6, §19).
//!
//! Everything is persisted as [`keel_store::MetaStore`] JSON documents and every change runs in
//! one serialisable [`MetaStore::transact`], so the CLI process and the server process can change
//! the directory at the same time. Reads always go to the store: a change made by another
//! process is seen at once.
//!
//! Document kinds (`kind` / `key` / `parent`):
//! - `domain` / name / "" — [`Domain`] (the `primary` flag lives in `setting/primary_domain`);
//! - `user` / `login@domain` / domain — [`User`] plus its stored secret;
//! - `group` / `name@domain` / domain — [`Group`];
//! - `alias` / `name@domain` / domain — [`Alias`] (all rows of one name);
//! - `address` / full address / domain — which user or group owns an address (uniqueness);
//! - `ipgroup`, `timeinterval` / lower-case name — [`IpGroupDef`], [`TimeIntervalDef`];
//! - `setting` / `primary_domain` | `security_policy`;
//! - `lockout` / `user|ip` / user — failed-login counters and locks (guide §12.6);
//! - `userstat` / user — login statistics (guide §8.7);
//! - `usertemplate` / lower-case name — [`UserTemplate`] (guide §8.10).

#![warn(missing_docs)]

pub mod auth;
mod docs;
mod domain;
pub mod error;
mod group;
pub mod import;
pub mod model;
mod netobj;
pub mod password;
mod popgrant;
mod resolve;
pub mod sasl;
mod user;

use std::sync::{Arc, RwLock};

use keel_core::clock::SharedClock;
use keel_store::MetaStore;

pub use auth::{
    AuthError, AuthRequest, Credential, LockScope, LockoutPolicy, Mechanism, MechanismSettings,
    SecurityEvent, SecurityMode, SecurityPolicy, SecuritySink,
};
pub use error::{DirResult, DirectoryError};
pub use import::{ImportReport, ImportRequest, ImportRow, ImportStatus, UserTemplate};
pub use model::*;
pub use password::{HashParams, ScramCredentials};
pub use resolve::{MAX_EXPANSION_DEPTH, MAX_EXPANSION_STEPS};

/// The directory service. Cheap to share behind an `Arc`; every method is blocking (async
/// callers use `spawn_blocking`).
pub struct Directory {
    meta: Arc<dyn MetaStore>,
    clock: SharedClock,
    hash_params: HashParams,
    sink: RwLock<Option<SecuritySink>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("hash_params", &self.hash_params)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory on the given store with the default password-hash cost.
    pub fn new(meta: Arc<dyn MetaStore>, clock: SharedClock) -> Self {
        Self::with_hash_params(meta, clock, HashParams::default())
    }

    /// A directory with explicit password-hash cost parameters (tests use
    /// [`HashParams::insecure_fast`]).
    pub fn with_hash_params(
        meta: Arc<dyn MetaStore>,
        clock: SharedClock,
        hash_params: HashParams,
    ) -> Self {
        Self {
            meta,
            clock,
            hash_params,
            sink: RwLock::new(None),
        }
    }

    /// Installs the receiver of security events (failed logins, lockouts, unlocks); the binary
    /// writes them to the Security log (guide §25).
    pub fn set_security_sink(&self, sink: SecuritySink) {
        if let Ok(mut s) = self.sink.write() {
            *s = Some(sink);
        }
    }

    fn emit(&self, event: SecurityEvent) {
        let sink = self.sink.read().ok().and_then(|s| s.clone());
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// The store this directory works on.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }
}
