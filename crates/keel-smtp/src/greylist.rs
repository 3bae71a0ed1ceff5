//! Greylisting (issue 6 item 6, guide §13.6, RFC 6647): the store side. The session
//! decides who is exempt and calls [`check`] at RCPT.
//!
//! Implementation notes:
//! - The triplet is (client network, envelope sender, recipient). The client network is
//!   the /24 of an IPv4 address and the /64 of an IPv6 address, so a sender retrying from
//!   another host of the same farm still passes (RFC 6647 §4.1 discusses the trade-off).
//!   Sender and recipient are lower-cased; the null sender is `<>`.
//! - Each triplet is one MetaStore document, kind [`DOC_KIND`], key the BLAKE3 hex of the
//!   triplet (through [`keel_store::BlobId::of`]; it only serves as a fixed-length hash),
//!   so the state survives restarts and is shared by every process on the same store.
//! - Lifecycle: first attempt → record `first_seen`, answer 451. A retry before
//!   `delay_secs` → 451 again (the timer is NOT restarted, RFC 6647 §4.2). A retry after
//!   the delay and within `expire_secs` → pass; the triplet is whitelisted and each later
//!   pass renews it for `whitelist_secs`. An unconfirmed triplet older than
//!   `expire_secs`, or a whitelisted one unused for `whitelist_secs`, starts over.
//! - Stale documents are not swept yet: they are replaced when their triplet comes back.

use std::net::IpAddr;

use keel_store::{BlobId, MetaStore, StoreResult};
use serde::{Deserialize, Serialize};

use crate::settings::GreylistSettings;

/// MetaStore document kind of greylisting triplets.
pub const DOC_KIND: &str = "greylist";

/// The verdict for one RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accept (whitelisted or the delay has passed).
    Pass,
    /// Answer 451 4.7.1.
    Defer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Client network, sender, recipient (for the admin's eyes; the key is the hash).
    triplet: String,
    first_seen: i64,
    /// Unix time of the last pass; `None` while unconfirmed.
    passed: Option<i64>,
}

/// The client network of the triplet: IPv4 /24, IPv6 /64.
pub fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Private, loopback and link-local addresses (issue 6 item 6: exempt by default).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                // fc00::/7 unique local, fe80::/10 link local.
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
        }
    }
}

/// The document key of a triplet.
fn key(triplet: &str) -> String {
    BlobId::of(triplet.as_bytes()).0
}

/// Records the attempt and returns the verdict (blocking: call from `spawn_blocking`).
pub fn check(
    meta: &dyn MetaStore,
    settings: &GreylistSettings,
    ip: IpAddr,
    sender: &str,
    recipient: &str,
    now: i64,
) -> StoreResult<Verdict> {
    let sender = if sender.is_empty() { "<>" } else { sender };
    let triplet = format!(
        "{} {} {}",
        network(ip),
        sender.to_lowercase(),
        recipient.to_lowercase()
    );
    let k = key(&triplet);
    let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (delay, expire, whitelist) = (
        secs(settings.delay_secs),
        secs(settings.expire_secs),
        secs(settings.whitelist_secs),
    );
    let mut verdict = Verdict::Defer;
    meta.transact(&mut |tx| {
        let old: Option<Entry> = tx
            .get(DOC_KIND, &k)?
            .and_then(|d| serde_json::from_value(d.body).ok());
        let fresh = Entry {
            triplet: triplet.clone(),
            first_seen: now,
            passed: None,
        };
        let (entry, v) = match old {
            // A whitelisted triplet still in use: pass and renew.
            Some(e) if e.passed.is_some_and(|p| now.saturating_sub(p) <= whitelist) => (
                Entry {
                    passed: Some(now),
                    ..e
                },
                Verdict::Pass,
            ),
            // Unconfirmed, not expired: pass once the delay is over (RFC 6647 §4.2).
            Some(e) if e.passed.is_none() && now.saturating_sub(e.first_seen) <= expire => {
                if now.saturating_sub(e.first_seen) >= delay {
                    (
                        Entry {
                            passed: Some(now),
                            ..e
                        },
                        Verdict::Pass,
                    )
                } else {
                    (e, Verdict::Defer)
                }
            }
            // New, expired, or whitelisting lapsed: start over.
            _ => (fresh, Verdict::Defer),
        };
        let body = serde_json::to_value(&entry)
            .map_err(|e| keel_store::StoreError::Backend(format!("greylist entry: {e}")))?;
        tx.put(DOC_KIND, &k, "", &body)?;
        verdict = v;
        Ok(())
    })?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_private_ranges() {
        assert_eq!(network("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            network("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        for p in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in ["192.0.2.1", "2001:db8::1"] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
    }
}
