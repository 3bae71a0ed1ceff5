//! POP-before-SMTP grants (guide §12.2 "Users authenticated through POP3 from the same IP
//! address"): the POP3 server records the time of each successful login per client IP,
//! and the SMTP relay decision reads it back.
//!
//! Stored as the MetaStore document `pop3login` / canonical IP text / "" with the body
//! `{"at": <unix seconds>}`, so an SMTP server in another process (or cluster node on the
//! same store) sees the grant at once. One document per IP: a later login overwrites the
//! time. The window itself is an SMTP setting, so old documents are harmless;
//! [`Directory::prune_pop3_logins`] removes them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Directory;
use crate::docs::{self, Docs};
use crate::error::DirResult;

/// Document kind of POP3 login grants.
pub(crate) const POP3LOGIN: &str = "pop3login";

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Pop3Login {
    /// Unix time of the last successful POP3 login from the IP.
    at: i64,
}

/// The key of an IP: IPv4-mapped IPv6 addresses are stored as IPv4, so a dual-stack
/// listener and an IPv4 one agree.
fn key(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

impl Directory {
    /// Records a successful POP3 login from `ip` at the directory clock's current time
    /// (guide §12.2 POP-before-SMTP).
    pub fn record_pop3_login(&self, ip: IpAddr) -> DirResult<()> {
        let now = self.clock.unix();
        let k = key(ip);
        self.txn(|tx| tx.put(POP3LOGIN, &k, "", &Pop3Login { at: now }))
    }

    /// Unix time of the last successful POP3 login from `ip`, if any was recorded.
    pub fn pop3_login_at(&self, ip: IpAddr) -> DirResult<Option<i64>> {
        Ok(docs::get::<Pop3Login>(&mut self.reader(), POP3LOGIN, &key(ip))?.map(|l| l.at))
    }

    /// Removes the grants older than `before` (unix time); returns how many were removed.
    pub fn prune_pop3_logins(&self, before: i64) -> DirResult<usize> {
        self.txn(|tx| {
            let old: Vec<String> = tx
                .list_raw(POP3LOGIN, None)?
                .into_iter()
                .filter(|d| {
                    serde_json::from_value::<Pop3Login>(d.body.clone())
                        .map_or(true, |l| l.at < before)
                })
                .map(|d| d.key)
                .collect();
            for k in &old {
                tx.delete(POP3LOGIN, k)?;
            }
            Ok(old.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use keel_core::clock::ManualClock;
    use keel_store::sqlite::SqliteStore;

    use crate::{Directory, HashParams};

    #[test]
    fn grant_is_recorded_per_ip_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(SqliteStore::open(&dir.path().join("m.sqlite")).unwrap());
        let clock = ManualClock::at(1_000);
        let d = Directory::with_hash_params(
            meta.clone(),
            Arc::new(clock.clone()),
            HashParams::insecure_fast(),
        );
        let v4: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(d.pop3_login_at(v4).unwrap(), None);
        d.record_pop3_login(mapped).unwrap();
        assert_eq!(d.pop3_login_at(v4).unwrap(), Some(1_000));
        clock.advance(Duration::from_secs(60));
        d.record_pop3_login(v4).unwrap();
        assert_eq!(d.pop3_login_at(mapped).unwrap(), Some(1_060));
        // Another process on the same store sees it.
        let d2 = Directory::new(meta, Arc::new(clock.clone()));
        assert_eq!(d2.pop3_login_at(v4).unwrap(), Some(1_060));
        assert_eq!(d.prune_pop3_logins(1_060).unwrap(), 0);
        assert_eq!(d.prune_pop3_logins(1_061).unwrap(), 1);
        assert_eq!(d.pop3_login_at(v4).unwrap(), None);
    }
}
