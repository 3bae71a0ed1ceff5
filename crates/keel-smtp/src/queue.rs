//! Queue administration (guide §24.1): the operations the CLI (`keel queue
//! list|show|retry|delete`) and the admin API call.
//!
//! Implementation notes:
//! - These functions are blocking (they call the MetaStore directly): async callers use
//!   `spawn_blocking`. After [`retry_now`] the caller wakes the runner
//!   ([`crate::outbound::QueueWaker::wake`]) when one runs in this process.
//! - Deleting is silent (guide §24.1 "Remove messages"): no DSN is sent. A message that is
//!   being delivered at that moment finishes its attempt; its results are then dropped.
//! - "Next Try" is shown as `None` (the guide's `ASAP`) for a message never attempted.
//! - Mail held for ETRN (guide §7.10 "Offline delivery — delivery is triggered by ETRN
//!   command from remote host", RFC 1985): each held recipient's route is
//!   [`ETRN_ROUTE_PREFIX`]`host:port`, and the message's next attempt is [`HELD_UNTIL`],
//!   so the runner never claims it. The session queues held recipients in messages of
//!   their own, one per recipient domain, so an ETRN for one domain releases no other
//!   domain's mail. ETRN (or "Try to send now" on that message) makes it due; after the
//!   attempt a temporary failure puts it back on hold (no delay warning, no bounce by age:
//!   the remote server is expected to collect it). "Run queue" ([`RetryTarget::All`])
//!   leaves held messages alone.

use keel_core::address::wildcard_match;
use keel_store::{
    BlobStore, MetaStore, QueueRcptState, QueuedMessage, QueuedRecipient, StoreResult,
};
use serde::Serialize;

/// Route prefix of a recipient held until ETRN (module notes): `etrn:host:port`.
pub const ETRN_ROUTE_PREFIX: &str = "etrn:";
/// `next_attempt` of a message held until ETRN: 9999-12-31 23:59:59 UTC, a time every
/// date formatter still shows and no clock reaches.
pub const HELD_UNTIL: i64 = 253_402_300_799;

/// The route of a recipient held for ETRN, forwarded to `host:port` once released.
pub fn held_route(host: &str, port: u16) -> String {
    format!("{ETRN_ROUTE_PREFIX}{host}:{port}")
}

/// Whether a queued recipient is held for ETRN.
pub fn is_held(r: &QueuedRecipient) -> bool {
    r.route
        .as_deref()
        .is_some_and(|route| route.starts_with(ETRN_ROUTE_PREFIX))
}

/// The `host:port` of a route, without the hold marker.
pub fn route_target(route: &str) -> &str {
    route.strip_prefix(ETRN_ROUTE_PREFIX).unwrap_or(route)
}

/// Whether a message waits for ETRN (not due until released).
pub fn is_held_message(m: &QueuedMessage) -> bool {
    m.next_attempt >= HELD_UNTIL
}

/// One recipient in the queue view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRcptView {
    /// Address.
    pub address: String,
    /// State.
    pub state: QueueRcptState,
    /// Attempts so far.
    pub attempts: u32,
    /// Last error ("Status" column).
    pub last_error: Option<String>,
    /// Domain-forwarding route, if any.
    pub route: Option<String>,
}

/// One queued message (guide §24.1 columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueView {
    /// ID (the mail log's Queue-ID).
    pub id: String,
    /// From (empty: a server-generated report).
    pub sender: String,
    /// To, with per-recipient state.
    pub recipients: Vec<QueueRcptView>,
    /// Size in bytes (without the envelope).
    pub size: u64,
    /// Created (Unix seconds).
    pub created: i64,
    /// Age in seconds.
    pub age_secs: i64,
    /// Next Try (Unix seconds); `None` = ASAP.
    pub next_attempt: Option<i64>,
    /// Why it is still queued: the last error of a pending recipient.
    pub status: String,
    /// Held until the remote server sends ETRN (guide §7.10; module notes).
    pub held: bool,
}

/// Queue totals (guide §24.1: count and total size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueTotals {
    /// Messages.
    pub messages: usize,
    /// Bytes.
    pub bytes: u64,
}

fn view(m: QueuedMessage, now: i64) -> QueueView {
    let attempted = m.recipients.iter().any(|r| r.attempts > 0);
    let held = is_held_message(&m);
    let last_error = m
        .recipients
        .iter()
        .filter(|r| !r.state.is_final())
        .find_map(|r| r.last_error.clone());
    let status = if held {
        let domains: Vec<&str> = m
            .recipients
            .iter()
            .filter(|r| !r.state.is_final())
            .filter_map(|r| r.address.rsplit_once('@').map(|(_, d)| d))
            .collect();
        let mut s = format!("held until ETRN for {}", domains.join(", "));
        if let Some(e) = &last_error {
            s.push_str(&format!("; last error: {e}"));
        }
        s
    } else {
        last_error.unwrap_or_else(|| {
            if attempted {
                "in progress".to_owned()
            } else {
                "waiting for the first attempt".to_owned()
            }
        })
    };
    QueueView {
        held,
        next_attempt: (attempted || m.next_attempt > now).then_some(m.next_attempt),
        age_secs: now.saturating_sub(m.created),
        status,
        recipients: m
            .recipients
            .into_iter()
            .map(|r| QueueRcptView {
                address: r.address,
                state: r.state,
                attempts: r.attempts,
                last_error: r.last_error,
                route: r.route,
            })
            .collect(),
        id: m.id,
        sender: m.sender,
        size: m.size,
        created: m.created,
    }
}

/// Every queued message, by next attempt.
pub fn list(meta: &dyn MetaStore, now: i64) -> StoreResult<Vec<QueueView>> {
    Ok(meta
        .queued_messages()?
        .into_iter()
        .map(|m| view(m, now))
        .collect())
}

/// Totals of a listing.
pub fn totals(views: &[QueueView]) -> QueueTotals {
    QueueTotals {
        messages: views.len(),
        bytes: views.iter().map(|v| v.size).sum(),
    }
}

/// One message.
pub fn show(meta: &dyn MetaStore, id: &str, now: i64) -> StoreResult<Option<QueueView>> {
    Ok(meta.queued_message(id)?.map(|m| view(m, now)))
}

/// Which messages "Try to send now" applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    /// One message.
    One(String),
    /// Every message ("Run queue").
    All,
}

/// Makes messages due now; returns how many were found.
pub fn retry_now(meta: &dyn MetaStore, target: &RetryTarget, now: i64) -> StoreResult<usize> {
    match target {
        RetryTarget::One(id) => Ok(usize::from(meta.set_queue_next_attempt(id, now)?)),
        RetryTarget::All => {
            let mut n = 0;
            for m in meta.queued_messages()? {
                // "Run queue" does not release mail held for ETRN (module notes).
                if !is_held_message(&m) && meta.set_queue_next_attempt(&m.id, now)? {
                    n += 1;
                }
            }
            Ok(n)
        }
    }
}

/// Removal criteria (guide §24.1): every given criterion must match. Patterns use `*` and
/// `?` and are case-insensitive. With no criterion at all nothing is deleted unless
/// `all` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteCriteria {
    /// Exactly this id.
    pub id: Option<String>,
    /// Envelope sender pattern (`<>` matches the null sender).
    pub sender: Option<String>,
    /// Matches when any recipient matches.
    pub recipient: Option<String>,
    /// Queued longer than this many seconds.
    pub older_than_secs: Option<u64>,
    /// Delete everything (when no other criterion is given).
    pub all: bool,
}

impl DeleteCriteria {
    fn matches(&self, m: &QueuedMessage, now: i64) -> bool {
        let any = self.id.is_some()
            || self.sender.is_some()
            || self.recipient.is_some()
            || self.older_than_secs.is_some();
        if !any {
            return self.all;
        }
        self.id.as_ref().is_none_or(|id| *id == m.id)
            && self.sender.as_ref().is_none_or(|p| {
                if p == "<>" {
                    m.sender.is_empty()
                } else {
                    wildcard_match(p, &m.sender)
                }
            })
            && self
                .recipient
                .as_ref()
                .is_none_or(|p| m.recipients.iter().any(|r| wildcard_match(p, &r.address)))
            && self.older_than_secs.is_none_or(|s| {
                now.saturating_sub(m.created) > i64::try_from(s).unwrap_or(i64::MAX)
            })
    }
}

/// Removes the matching messages without any report; returns their ids.
pub fn delete(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    criteria: &DeleteCriteria,
    now: i64,
) -> StoreResult<Vec<String>> {
    let mut removed = Vec::new();
    for m in meta.queued_messages()? {
        if criteria.matches(&m, now) {
            for b in meta.dequeue(&m.id)? {
                blobs.delete(&b)?;
            }
            removed.push(m.id);
        }
    }
    Ok(removed)
}
