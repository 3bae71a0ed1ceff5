//! In-process per-IP counters for the Security Options of guide §12.2: concurrent
//! connections, messages over a sliding hour, unknown recipients and harvest blocks.
//! Times are Unix seconds from the service clock, so tests move time instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// guide §12.2: the message rate and unknown recipients are counted over the last hour.
pub(crate) const SLIDING_WINDOW_SECS: i64 = 3600;

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

/// Per-IP state shared by the SMTP services of one process.
#[derive(Debug, Default)]
pub struct IpLimits {
    map: Mutex<HashMap<IpAddr, PerIp>>,
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

impl IpLimits {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, PerIp>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a connection slot; `None` when `max` (> 0) connections are already open.
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

    /// Whether the IP is blocked after a directory harvest, at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: i64) -> bool {
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

    /// Records an unknown recipient; returns `true` when this one exceeds `max` and the IP
    /// is now blocked until `now + block_secs`.
    pub(crate) fn unknown_recipient(
        &self,
        ip: IpAddr,
        now: i64,
        max: u32,
        block_secs: u64,
    ) -> bool {
        let mut map = self.lock();
        let e = map.entry(ip).or_default();
        prune(&mut e.unknown, now);
        e.unknown.push_back(now);
        if max > 0 && e.unknown.len() > max as usize {
            let secs = i64::try_from(block_secs).unwrap_or(i64::MAX);
            e.blocked_until = Some(now.saturating_add(secs));
            return true;
        }
        false
    }

    /// Messages accepted from the IP in the last hour.
    pub fn messages_last_hour(&self, ip: IpAddr, now: i64) -> usize {
        let mut map = self.lock();
        map.get_mut(&ip).map_or(0, |e| {
            prune(&mut e.messages, now);
            e.messages.len()
        })
    }

    /// Records an accepted message.
    pub(crate) fn message_accepted(&self, ip: IpAddr, now: i64) {
        let mut map = self.lock();
        let e = map.entry(ip).or_default();
        prune(&mut e.messages, now);
        e.messages.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_hour_and_harvest_block_expire() {
        let l = Arc::new(IpLimits::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        l.message_accepted(ip, 1000);
        l.message_accepted(ip, 2000);
        assert_eq!(l.messages_last_hour(ip, 4599), 2);
        assert_eq!(l.messages_last_hour(ip, 4600), 1);
        for i in 0..3 {
            assert!(!l.unknown_recipient(ip, 5000 + i, 3, 60));
        }
        assert!(l.unknown_recipient(ip, 5003, 3, 60));
        assert!(l.is_blocked(ip, 5062));
        assert!(!l.is_blocked(ip, 5063));
        let a = l.connect(ip, 2).unwrap();
        let _b = l.connect(ip, 2).unwrap();
        assert!(l.connect(ip, 2).is_none());
        drop(a);
        assert!(l.connect(ip, 2).is_some());
    }
}
