//! Per-IP counters for the Security Options of guide §12.2: concurrent connections,
//! messages over a sliding hour, unknown recipients and harvest blocks.
//!
//! Implementation notes:
//! - Times are Unix seconds from the service clock, so tests move time instead of sleeping.
//! - Two layers. The in-memory map is the fast path and the only state for concurrent
//!   connections, which stay **per node** (a connection belongs to one process, and a
//!   crashed node could never release a shared count). Messages per hour, unknown
//!   recipients and harvest blocks are also written to one MetaStore document per IP
//!   (kind [`DOC_KIND`], key the IP address), so every node on the same store — two
//!   `keel serve` on one PostgreSQL — sees them and a client cannot escape a limit by
//!   switching nodes (issue 8).
//! - Cost: the store is used only while the limit is on (`max > 0`). One small
//!   transaction per accepted message (append a time, keep only the last `max` times:
//!   `max` of them within the hour is all the check needs), one per unknown recipient, one
//!   read per connection and per MAIL for the harvest block, one read per MAIL for the
//!   hourly count when the in-memory count alone is still below the limit.
//! - Freshness: a block started on another node is seen at the next connection or MAIL
//!   (RCPT uses the in-memory state, refreshed by every unknown-recipient transaction).
//! - Store errors never refuse mail: the in-memory state decides and a warning is traced.
//! - Documents are deleted when nothing in them is current any more, on the write that
//!   finds them so, and by a sweep of the whole kind at most every [`SWEEP_EVERY_SECS`]
//!   per process (IPs that never come back).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use keel_store::{MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

/// guide §12.2: the message rate and unknown recipients are counted over the last hour.
pub(crate) const SLIDING_WINDOW_SECS: i64 = 3600;
/// MetaStore document kind of the shared per-IP state.
pub const DOC_KIND: &str = "smtp_ip_limit";
/// How often (seconds) one process sweeps stale documents.
pub const SWEEP_EVERY_SECS: i64 = 600;

#[derive(Debug, Default)]
struct PerIp {
    connections: u32,
    messages: VecDeque<i64>,
    unknown: VecDeque<i64>,
    blocked_until: Option<i64>,
}

impl PerIp {
    fn is_idle(&self) -> bool {
        self.connections == 0
            && self.messages.is_empty()
            && self.unknown.is_empty()
            && self.blocked_until.is_none()
    }
}

/// The shared state of one IP (the body of a [`DOC_KIND`] document).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SharedIp {
    /// Times of accepted messages within the hour (at most the limit's count).
    #[serde(default)]
    messages: Vec<i64>,
    /// Times of unknown recipients within the hour.
    #[serde(default)]
    unknown: Vec<i64>,
    /// End of a harvest block.
    #[serde(default)]
    blocked_until: Option<i64>,
}

impl SharedIp {
    fn prune(&mut self, now: i64) {
        let cutoff = now - SLIDING_WINDOW_SECS;
        self.messages.retain(|&t| t > cutoff);
        self.unknown.retain(|&t| t > cutoff);
        if self.blocked_until.is_some_and(|t| t <= now) {
            self.blocked_until = None;
        }
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.unknown.is_empty() && self.blocked_until.is_none()
    }
}

/// Keeps the newest `keep` entries.
fn keep_last(v: &mut Vec<i64>, keep: usize) {
    if v.len() > keep {
        v.drain(..v.len() - keep);
    }
}

fn read_doc(tx: &mut dyn keel_store::DocTxn, key: &str) -> StoreResult<SharedIp> {
    Ok(tx
        .get(DOC_KIND, key)?
        .and_then(|d| serde_json::from_value(d.body).ok())
        .unwrap_or_default())
}

fn write_doc(tx: &mut dyn keel_store::DocTxn, key: &str, s: &SharedIp) -> StoreResult<()> {
    if s.is_empty() {
        tx.delete(DOC_KIND, key)?;
        return Ok(());
    }
    let body = serde_json::to_value(s)
        .map_err(|e| StoreError::Backend(format!("{DOC_KIND} {key}: {e}")))?;
    tx.put(DOC_KIND, key, "", &body).map(|_| ())
}

/// Per-IP state shared by the SMTP services of one process, backed by the MetaStore for
/// the counters every node must share (module notes).
#[derive(Debug, Default)]
pub struct IpLimits {
    map: Mutex<HashMap<IpAddr, PerIp>>,
    last_sweep: Mutex<i64>,
}

fn prune(q: &mut VecDeque<i64>, now: i64) {
    while q.front().is_some_and(|&t| t <= now - SLIDING_WINDOW_SECS) {
        q.pop_front();
    }
}

/// A counted connection; dropping it releases the slot.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    limits: Arc<IpLimits>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut map = self.limits.lock();
        if let Some(e) = map.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
            if e.is_idle() {
                map.remove(&self.ip);
            }
        }
    }
}

fn store_warning(what: &str, e: &StoreError) {
    tracing::warn!("smtp limits: {what}: {e}; using this node's counters only");
}

impl IpLimits {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, PerIp>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a connection slot; `None` when `max` (> 0) connections are already open.
    /// Per node only (module notes).
    pub(crate) fn connect(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnSlot> {
        let mut map = self.lock();
        let e = map.entry(ip).or_default();
        if max > 0 && e.connections >= max {
            return None;
        }
        e.connections += 1;
        Some(ConnSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Whether this process knows the IP to be blocked at `now`.
    fn locally_blocked(&self, ip: IpAddr, now: i64) -> bool {
        let mut map = self.lock();
        let Some(e) = map.get_mut(&ip) else {
            return false;
        };
        match e.blocked_until {
            Some(t) if t > now => true,
            Some(_) => {
                e.blocked_until = None;
                e.unknown.clear();
                false
            }
            None => false,
        }
    }

    fn set_local_block(&self, ip: IpAddr, until: i64) {
        let mut map = self.lock();
        let e = map.entry(ip).or_default();
        e.blocked_until = Some(e.blocked_until.map_or(until, |t| t.max(until)));
    }

    /// Whether the IP is blocked after a directory harvest, at `now`: this process's
    /// state first, then (with `meta`) the shared document. Blocking when `meta` is given.
    pub fn is_blocked(&self, meta: Option<&dyn MetaStore>, ip: IpAddr, now: i64) -> bool {
        if self.locally_blocked(ip, now) {
            return true;
        }
        let Some(meta) = meta else {
            return false;
        };
        match meta.get_doc(DOC_KIND, &ip.to_string()) {
            Ok(Some(doc)) => {
                let until = serde_json::from_value::<SharedIp>(doc.body)
                    .ok()
                    .and_then(|s| s.blocked_until)
                    .filter(|&t| t > now);
                match until {
                    Some(t) => {
                        self.set_local_block(ip, t);
                        true
                    }
                    None => false,
                }
            }
            Ok(None) => false,
            Err(e) => {
                store_warning("reading the harvest block", &e);
                false
            }
        }
    }

    /// Records an unknown recipient; returns `true` when this one exceeds `max` and the IP
    /// is now blocked until `now + block_secs` (the caller logs the attack once). With
    /// `meta` the count is shared by every node (blocking).
    pub fn unknown_recipient(
        &self,
        meta: Option<&dyn MetaStore>,
        ip: IpAddr,
        now: i64,
        max: u32,
        block_secs: u64,
    ) -> bool {
        let secs = i64::try_from(block_secs).unwrap_or(i64::MAX);
        let until = now.saturating_add(secs);
        if let Some(meta) = meta.filter(|_| max > 0) {
            let key = ip.to_string();
            let mut started = false;
            let mut blocked_elsewhere = None;
            let r = meta.transact(&mut |tx| {
                started = false;
                blocked_elsewhere = None;
                let mut s = read_doc(tx, &key)?;
                s.prune(now);
                if let Some(t) = s.blocked_until {
                    blocked_elsewhere = Some(t);
                    return Ok(());
                }
                s.unknown.push(now);
                keep_last(&mut s.unknown, max as usize + 1);
                if s.unknown.len() > max as usize {
                    s.blocked_until = Some(until);
                    started = true;
                }
                write_doc(tx, &key, &s)
            });
            match r {
                Ok(()) => {
                    self.sweep(meta, now);
                    if let Some(t) = blocked_elsewhere {
                        self.set_local_block(ip, t);
                        return false;
                    }
                    let mut map = self.lock();
                    let e = map.entry(ip).or_default();
                    prune(&mut e.unknown, now);
                    e.unknown.push_back(now);
                    if started {
                        e.blocked_until = Some(until);
                    }
                    return started;
                }
                Err(e) => store_warning("recording an unknown recipient", &e),
            }
        }
        let mut map = self.lock();
        let e = map.entry(ip).or_default();
        prune(&mut e.unknown, now);
        e.unknown.push_back(now);
        if max > 0 && e.unknown.len() > max as usize {
            e.blocked_until = Some(until);
            return true;
        }
        false
    }

    /// Messages accepted from the IP in the last hour: this process's count, or with
    /// `meta` the larger of it and the shared count (blocking).
    pub fn messages_last_hour(&self, meta: Option<&dyn MetaStore>, ip: IpAddr, now: i64) -> usize {
        let local = {
            let mut map = self.lock();
            map.get_mut(&ip).map_or(0, |e| {
                prune(&mut e.messages, now);
                e.messages.len()
            })
        };
        let Some(meta) = meta else {
            return local;
        };
        match meta.get_doc(DOC_KIND, &ip.to_string()) {
            Ok(Some(doc)) => {
                let mut s: SharedIp = serde_json::from_value(doc.body).unwrap_or_default();
                s.prune(now);
                local.max(s.messages.len())
            }
            Ok(None) => local,
            Err(e) => {
                store_warning("reading the message count", &e);
                local
            }
        }
    }

    /// guide §12.2: whether `limit` (> 0) messages were already accepted from the IP in
    /// the last hour. The in-memory count answers first; the store only when it is below.
    pub fn hourly_limit_reached(
        &self,
        meta: Option<&dyn MetaStore>,
        ip: IpAddr,
        now: i64,
        limit: u32,
    ) -> bool {
        if limit == 0 {
            return false;
        }
        let limit = limit as usize;
        self.messages_last_hour(None, ip, now) >= limit
            || (meta.is_some() && self.messages_last_hour(meta, ip, now) >= limit)
    }

    /// Records an accepted message. With `meta` and `keep > 0` (the hourly limit), also in
    /// the shared document, keeping the newest `keep` times (blocking).
    pub fn message_accepted(&self, meta: Option<&dyn MetaStore>, ip: IpAddr, now: i64, keep: u32) {
        {
            let mut map = self.lock();
            let e = map.entry(ip).or_default();
            prune(&mut e.messages, now);
            e.messages.push_back(now);
            // Only the newest `keep` matter for the check (module notes).
            while keep > 0 && e.messages.len() > keep as usize {
                e.messages.pop_front();
            }
        }
        let Some(meta) = meta.filter(|_| keep > 0) else {
            return;
        };
        let key = ip.to_string();
        let r = meta.transact(&mut |tx| {
            let mut s = read_doc(tx, &key)?;
            s.prune(now);
            s.messages.push(now);
            keep_last(&mut s.messages, keep as usize);
            write_doc(tx, &key, &s)
        });
        match r {
            Ok(()) => self.sweep(meta, now),
            Err(e) => store_warning("recording a message", &e),
        }
    }

    /// Deletes documents with nothing current, at most every [`SWEEP_EVERY_SECS`].
    fn sweep(&self, meta: &dyn MetaStore, now: i64) {
        {
            let mut last = self
                .last_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now - *last < SWEEP_EVERY_SECS {
                return;
            }
            *last = now;
        }
        let r = meta.transact(&mut |tx| {
            for doc in tx.list(DOC_KIND, None)? {
                let mut s: SharedIp = serde_json::from_value(doc.body).unwrap_or_default();
                s.prune(now);
                if s.is_empty() {
                    tx.delete(DOC_KIND, &doc.key)?;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            store_warning("sweeping stale documents", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::sqlite::SqliteStore;

    #[test]
    fn sliding_hour_and_harvest_block_expire() {
        let l = Arc::new(IpLimits::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        l.message_accepted(None, ip, 1000, 0);
        l.message_accepted(None, ip, 2000, 0);
        assert_eq!(l.messages_last_hour(None, ip, 4599), 2);
        assert_eq!(l.messages_last_hour(None, ip, 4600), 1);
        for i in 0..3 {
            assert!(!l.unknown_recipient(None, ip, 5000 + i, 3, 60));
        }
        assert!(l.unknown_recipient(None, ip, 5003, 3, 60));
        assert!(l.is_blocked(None, ip, 5062));
        assert!(!l.is_blocked(None, ip, 5063));
        let a = l.connect(ip, 2).unwrap();
        let _b = l.connect(ip, 2).unwrap();
        assert!(l.connect(ip, 2).is_none());
        drop(a);
        assert!(l.connect(ip, 2).is_some());
    }

    fn store() -> (tempfile::TempDir, Arc<dyn MetaStore>) {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&dir.path().join("meta.sqlite")).unwrap());
        (dir, meta)
    }

    /// issue 8: two nodes (two `IpLimits`) on one store share the harvest block.
    #[test]
    fn harvest_block_on_one_node_applies_on_the_other() {
        let (_dir, meta) = store();
        let (a, b) = (IpLimits::default(), IpLimits::default());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        // Unknown recipients spread over both nodes add up: 2 on A, then 2 on B.
        assert!(!a.unknown_recipient(Some(&*meta), ip, 100, 3, 600));
        assert!(!a.unknown_recipient(Some(&*meta), ip, 101, 3, 600));
        assert!(!b.unknown_recipient(Some(&*meta), ip, 102, 3, 600));
        assert!(
            b.unknown_recipient(Some(&*meta), ip, 103, 3, 600),
            "the 4th unknown recipient, on B, starts the block"
        );
        assert!(!a.is_blocked(None, ip, 104), "A's memory does not know yet");
        assert!(a.is_blocked(Some(&*meta), ip, 104), "A sees B's block");
        assert!(a.is_blocked(None, ip, 104), "and caches it");
        // Another IP is not affected; the block ends after block_secs.
        assert!(!a.is_blocked(Some(&*meta), "192.0.2.10".parse().unwrap(), 104));
        assert!(!a.is_blocked(Some(&*meta), ip, 703));
        // A block known to the store is not reported as started twice.
        let c = IpLimits::default();
        assert!(!c.unknown_recipient(Some(&*meta), ip, 200, 3, 600));
        assert!(c.is_blocked(None, ip, 201));
    }

    /// issue 8: the sliding-hour message count is shared and pruned to the hour.
    #[test]
    fn hourly_message_count_is_shared_between_nodes() {
        let (_dir, meta) = store();
        let (a, b) = (IpLimits::default(), IpLimits::default());
        let ip: IpAddr = "2001:db8::5".parse().unwrap();
        for t in 0..3 {
            a.message_accepted(Some(&*meta), ip, 1000 + t, 5);
        }
        for t in 0..2 {
            b.message_accepted(Some(&*meta), ip, 2000 + t, 5);
        }
        assert!(!b.hourly_limit_reached(None, ip, 2100, 5), "B alone: 2");
        assert!(
            b.hourly_limit_reached(Some(&*meta), ip, 2100, 5),
            "shared: 5"
        );
        assert!(a.hourly_limit_reached(Some(&*meta), ip, 2100, 5));
        assert_eq!(a.messages_last_hour(Some(&*meta), ip, 2100), 5);
        // Sliding: A's three fall out of the hour first.
        assert_eq!(a.messages_last_hour(Some(&*meta), ip, 4603), 2);
        assert!(!a.hourly_limit_reached(Some(&*meta), ip, 4603, 5));
        // The document never holds more than the limit's count.
        for t in 0..20 {
            a.message_accepted(Some(&*meta), ip, 5000 + t, 5);
        }
        let doc = meta.get_doc(DOC_KIND, &ip.to_string()).unwrap().unwrap();
        let s: SharedIp = serde_json::from_value(doc.body).unwrap();
        assert_eq!(s.messages.len(), 5);
        // An hour of silence later the sweep removes the stale document.
        a.message_accepted(Some(&*meta), "192.0.2.1".parse().unwrap(), 20_000, 5);
        assert!(meta.get_doc(DOC_KIND, &ip.to_string()).unwrap().is_none());
    }
}
