//! Server statistics (guide §24.6, §14.6, §13.8): named monotonic counters.
//!
//! Every process holds its not-yet-saved increments in a [`Stats`] (one atomic per
//! counter, [`global`] for the server); a hook is one call such as
//! `stats::bump(Counter::MessagesReceived)`. The saved totals are a [`StatsDoc`] in the
//! metadata store (`keel_mail::stats` reads, flushes and resets it). A flush *adds* the
//! increments taken with [`Stats::take`] to the stored totals ([`StatsDoc::merge`]) inside
//! one store transaction, so several nodes on one database never overwrite each other's
//! counts. Computed values (uptime, storage) are not counters and are filled in on read.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The services whose connections are counted (the listener catalogue's available ones).
pub const SERVICES: [&str; 9] = [
    "smtp",
    "smtps",
    "submission",
    "pop3",
    "pop3s",
    "imap",
    "imaps",
    "http",
    "https",
];

/// The groups of the statistics page (guide §24.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    ServerStatus,
    Messages,
    Antivirus,
    SpamFilter,
    Storage,
}

impl Group {
    /// Every group in display order.
    pub const ALL: [Group; 5] = [
        Group::ServerStatus,
        Group::Messages,
        Group::Antivirus,
        Group::SpamFilter,
        Group::Storage,
    ];

    /// The stable identifier (`server_status`, …).
    pub fn id(self) -> &'static str {
        match self {
            Group::ServerStatus => "server_status",
            Group::Messages => "messages",
            Group::Antivirus => "antivirus",
            Group::SpamFilter => "spam_filter",
            Group::Storage => "storage",
        }
    }

    /// The title the guide uses.
    pub fn title(self) -> &'static str {
        match self {
            Group::ServerStatus => "Server Status",
            Group::Messages => "Messages",
            Group::Antivirus => "Antivirus Statistics",
            Group::SpamFilter => "Spam Filter Statistics",
            Group::Storage => "Storage Occupied",
        }
    }
}

/// A plain counter (the per-service connection counters are reached through
/// [`connection`] and [`connection_rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages accepted by SMTP (the `250` after DATA/BDAT).
    MessagesReceived,
    /// Local deliveries (one per message delivered to local mailboxes).
    DeliveredLocal,
    /// Messages handed to remote servers found through MX (or a domain route).
    SentRemote,
    /// Messages handed to the relay host (parent SMTP server).
    SentRelay,
    /// Recipients whose delivery failed for good (bounced).
    DeliveryFailed,
    /// Delivery status notifications generated.
    DsnSent,
    /// Messages the antivirus scanned.
    AvMessagesChecked,
    /// Messages with attachments the antivirus scanned (guide §14.6).
    AvAttachmentsChecked,
    /// Viruses found.
    VirusesFound,
    /// Attachments matched by a blocking attachment-filter rule (file name or MIME type).
    ProhibitedAttachments,
    /// Messages rated by the spam filter (whitelisted ones excluded, guide §13.8).
    SpamChecked,
    /// Messages tagged as spam.
    SpamTagged,
    /// Messages rejected as spam.
    SpamRejected,
    /// Messages users moved into Junk E-mail.
    MarkedSpamByUsers,
    /// Messages users moved out of Junk E-mail (false positives).
    MarkedNotSpamByUsers,
}

const PLAIN: usize = 15;

impl Counter {
    const ALL: [Counter; PLAIN] = [
        Counter::MessagesReceived,
        Counter::DeliveredLocal,
        Counter::SentRemote,
        Counter::SentRelay,
        Counter::DeliveryFailed,
        Counter::DsnSent,
        Counter::AvMessagesChecked,
        Counter::AvAttachmentsChecked,
        Counter::VirusesFound,
        Counter::ProhibitedAttachments,
        Counter::SpamChecked,
        Counter::SpamTagged,
        Counter::SpamRejected,
        Counter::MarkedSpamByUsers,
        Counter::MarkedNotSpamByUsers,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// How one counter is stored, shown and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDef {
    /// Key in the stored document and the JSON answer (`messages_received`,
    /// `connections.imap`, …).
    pub key: String,
    pub group: Group,
    /// What the statistics page shows.
    pub label: String,
    /// The Prometheus metric name (without labels).
    pub metric: &'static str,
    /// The `service` label of the per-service counters.
    pub service: Option<&'static str>,
}

fn plain_def(c: Counter) -> (&'static str, Group, &'static str, &'static str) {
    use Counter as C;
    use Group as G;
    match c {
        C::MessagesReceived => (
            "messages_received",
            G::Messages,
            "Messages received by SMTP",
            "keel_messages_received_total",
        ),
        C::DeliveredLocal => (
            "messages_delivered_local",
            G::Messages,
            "Messages delivered to local mailboxes",
            "keel_messages_delivered_local_total",
        ),
        C::SentRemote => (
            "messages_sent_remote",
            G::Messages,
            "Messages sent to remote SMTP servers",
            "keel_messages_sent_remote_total",
        ),
        C::SentRelay => (
            "messages_sent_relay",
            G::Messages,
            "Messages sent to the relay host (parent SMTP server)",
            "keel_messages_sent_relay_total",
        ),
        C::DeliveryFailed => (
            "deliveries_failed",
            G::Messages,
            "Failed deliveries (bounced recipients)",
            "keel_deliveries_failed_total",
        ),
        C::DsnSent => (
            "dsn_sent",
            G::Messages,
            "Delivery status notifications sent",
            "keel_dsn_sent_total",
        ),
        C::AvMessagesChecked => (
            "av_messages_checked",
            G::Antivirus,
            "Messages checked",
            "keel_antivirus_messages_checked_total",
        ),
        C::AvAttachmentsChecked => (
            "av_attachments_checked",
            G::Antivirus,
            "Messages with attachments checked",
            "keel_antivirus_attachments_checked_total",
        ),
        C::VirusesFound => (
            "viruses_found",
            G::Antivirus,
            "Viruses found",
            "keel_viruses_found_total",
        ),
        C::ProhibitedAttachments => (
            "prohibited_attachments",
            G::Antivirus,
            "Prohibited filenames / MIME types found",
            "keel_prohibited_attachments_total",
        ),
        C::SpamChecked => (
            "spam_checked",
            G::SpamFilter,
            "Messages checked (whitelisted excluded)",
            "keel_spam_checked_total",
        ),
        C::SpamTagged => (
            "spam_tagged",
            G::SpamFilter,
            "Messages tagged as spam",
            "keel_spam_tagged_total",
        ),
        C::SpamRejected => (
            "spam_rejected",
            G::SpamFilter,
            "Messages rejected as spam",
            "keel_spam_rejected_total",
        ),
        C::MarkedSpamByUsers => (
            "spam_marked_by_users",
            G::SpamFilter,
            "Messages marked as spam by users",
            "keel_spam_marked_by_users_total",
        ),
        C::MarkedNotSpamByUsers => (
            "spam_marked_not_spam_by_users",
            G::SpamFilter,
            "Messages marked as not spam by users",
            "keel_spam_marked_not_spam_by_users_total",
        ),
    }
}

/// Number of counter slots: the plain counters, then connections and refused connections
/// per service.
pub const SLOTS: usize = PLAIN + 2 * SERVICES.len();

/// Every counter in slot order.
pub fn definitions() -> &'static [CounterDef] {
    static DEFS: OnceLock<Vec<CounterDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut v: Vec<CounterDef> = Counter::ALL
            .iter()
            .map(|&c| {
                let (key, group, label, metric) = plain_def(c);
                CounterDef {
                    key: key.to_owned(),
                    group,
                    label: label.to_owned(),
                    metric,
                    service: None,
                }
            })
            .collect();
        for s in SERVICES {
            v.push(CounterDef {
                key: format!("connections.{s}"),
                group: Group::ServerStatus,
                label: format!("{} connections", s.to_ascii_uppercase()),
                metric: "keel_connections_total",
                service: Some(s),
            });
        }
        for s in SERVICES {
            v.push(CounterDef {
                key: format!("connections_rejected.{s}"),
                group: Group::ServerStatus,
                label: format!("Rejected {} connections", s.to_ascii_uppercase()),
                metric: "keel_connections_rejected_total",
                service: Some(s),
            });
        }
        v
    })
}

/// Increments not yet saved, one atomic per slot.
#[derive(Debug)]
pub struct Stats {
    pending: Vec<AtomicU64>,
    /// Totals since the process started, never taken nor reset: the traffic charts'
    /// source (guide §24.5). One slot more than `pending`: outgoing SMTP connections.
    lifetime: Vec<AtomicU64>,
    /// When this process started serving (unix seconds; 0 = not serving).
    started: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            pending: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            lifetime: (0..=SLOTS).map(|_| AtomicU64::new(0)).collect(),
            started: AtomicI64::new(0),
        }
    }

    /// Adds one to a counter.
    pub fn bump(&self, c: Counter) {
        self.add_slot(c.slot(), 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, c: Counter, n: u64) {
        self.add_slot(c.slot(), n);
    }

    fn add_slot(&self, slot: usize, n: u64) {
        if n > 0
            && let Some(a) = self.pending.get(slot)
        {
            a.fetch_add(n, Ordering::Relaxed);
            if let Some(l) = self.lifetime.get(slot) {
                l.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Counts one connection the outbound queue opened to another server (charted only,
    /// guide §24.5 "Connections / Outgoing SMTP").
    pub fn outgoing_smtp_connection(&self) {
        if let Some(l) = self.lifetime.get(SLOTS) {
            l.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every counter's total since this process started (statistics resets aside),
    /// plus [`crate::traffic::OUTGOING_SMTP`].
    pub fn lifetime(&self) -> BTreeMap<String, u64> {
        let defs = definitions();
        let mut out: BTreeMap<String, u64> = defs
            .iter()
            .zip(&self.lifetime)
            .map(|(d, a)| (d.key.clone(), a.load(Ordering::Relaxed)))
            .collect();
        if let Some(l) = self.lifetime.get(SLOTS) {
            out.insert(
                crate::traffic::OUTGOING_SMTP.to_owned(),
                l.load(Ordering::Relaxed),
            );
        }
        out
    }

    /// Counts one admitted connection of a service (unknown names are ignored).
    pub fn connection(&self, service: &str) {
        if let Some(i) = SERVICES.iter().position(|s| *s == service) {
            self.add_slot(PLAIN + i, 1);
        }
    }

    /// Counts one connection refused at admission.
    pub fn connection_rejected(&self, service: &str) {
        if let Some(i) = SERVICES.iter().position(|s| *s == service) {
            self.add_slot(PLAIN + SERVICES.len() + i, 1);
        }
    }

    /// Takes every pending increment (the counters restart at zero); give them back with
    /// [`Self::restore`] when saving them failed.
    pub fn take(&self) -> BTreeMap<String, u64> {
        let defs = definitions();
        let mut out = BTreeMap::new();
        for (slot, a) in self.pending.iter().enumerate() {
            let n = a.swap(0, Ordering::Relaxed);
            if n > 0 {
                out.insert(defs[slot].key.clone(), n);
            }
        }
        out
    }

    /// Puts back increments [`Self::take`] returned.
    pub fn restore(&self, deltas: &BTreeMap<String, u64>) {
        for (slot, d) in definitions().iter().enumerate() {
            if let (Some(&n), Some(a)) = (deltas.get(&d.key), self.pending.get(slot)) {
                // Pending only: the lifetime totals counted these already.
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The pending increments without taking them.
    pub fn pending(&self) -> BTreeMap<String, u64> {
        let defs = definitions();
        self.pending
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| {
                let n = a.load(Ordering::Relaxed);
                (n > 0).then(|| (defs[slot].key.clone(), n))
            })
            .collect()
    }

    /// Drops the pending increments (after a reset).
    pub fn clear(&self) {
        for a in &self.pending {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Records when this process started serving (for the uptime).
    pub fn mark_started(&self, unix: i64) {
        self.started.store(unix, Ordering::Relaxed);
    }

    /// When this process started serving, if it does.
    pub fn started(&self) -> Option<i64> {
        let s = self.started.load(Ordering::Relaxed);
        (s > 0).then_some(s)
    }
}

/// The process-wide counters every hook increments.
pub fn global() -> &'static Stats {
    static GLOBAL: OnceLock<Stats> = OnceLock::new();
    GLOBAL.get_or_init(Stats::new)
}

/// `global().bump(c)`.
pub fn bump(c: Counter) {
    global().bump(c);
}

/// `global().add(c, n)`.
pub fn add(c: Counter, n: u64) {
    global().add(c, n);
}

/// `global().connection(service)`.
pub fn connection(service: &str) {
    global().connection(service);
}

/// `global().connection_rejected(service)`.
pub fn connection_rejected(service: &str) {
    global().connection_rejected(service);
}

/// `global().outgoing_smtp_connection()`.
pub fn outgoing_smtp_connection() {
    global().outgoing_smtp_connection();
}

/// The spam filter's decision on one message (guide §13.8): `checked` is false for
/// unrated (authenticated, trusted) and whitelisted messages.
pub fn spam_verdict(checked: bool, tagged: bool, rejected: bool) {
    let g = global();
    g.add(Counter::SpamChecked, u64::from(checked));
    g.add(Counter::SpamTagged, u64::from(tagged));
    g.add(Counter::SpamRejected, u64::from(rejected));
}

/// One message through the attachment filter / antivirus (guide §14.6): `antivirus` when
/// the virus scanner ran, the number of attachments examined, viruses found and
/// attachments the attachment filter blocked.
pub fn content_scanned(antivirus: bool, attachments: usize, viruses: usize, blocked: usize) {
    let g = global();
    g.add(Counter::AvMessagesChecked, u64::from(antivirus));
    g.add(Counter::AvAttachmentsChecked, u64::from(attachments > 0));
    g.add(Counter::VirusesFound, viruses as u64);
    g.add(Counter::ProhibitedAttachments, blocked as u64);
}

/// The final outcome of one outbound recipient (delivered, relayed or failed).
pub fn outbound(result: crate::log::DeliveryResult) {
    use crate::log::DeliveryResult as R;
    match result {
        R::Delivered => bump(Counter::SentRemote),
        R::Relayed => bump(Counter::SentRelay),
        R::Failed => bump(Counter::DeliveryFailed),
        R::Deferred | R::Discarded => {}
    }
}

/// A user moved `n` messages into (`spam`) or out of Junk E-mail (spam training).
pub fn user_marked(spam: bool, n: usize) {
    let c = if spam {
        Counter::MarkedSpamByUsers
    } else {
        Counter::MarkedNotSpamByUsers
    };
    add(c, n as u64);
}

/// The stored totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsDoc {
    /// The start of the statistics: first start or last reset (unix seconds).
    pub started_at: i64,
    /// Totals by counter key; absent = 0.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

impl StatsDoc {
    /// Empty totals starting at `now`.
    pub fn new(now: i64) -> Self {
        Self {
            started_at: now,
            counters: BTreeMap::new(),
        }
    }

    /// Adds increments to the totals (never lowers a count; saturates).
    pub fn merge(&mut self, deltas: &BTreeMap<String, u64>) {
        for (k, &n) in deltas {
            let v = self.counters.entry(k.clone()).or_insert(0);
            *v = v.saturating_add(n);
        }
    }

    /// The value of a counter.
    pub fn get(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_definitions() {
        let defs = definitions();
        assert_eq!(defs.len(), SLOTS);
        for c in Counter::ALL {
            assert_eq!(defs[c.slot()].key, plain_def(c).0);
        }
        let keys: std::collections::HashSet<_> = defs.iter().map(|d| &d.key).collect();
        assert_eq!(keys.len(), SLOTS, "keys are unique");
    }

    #[test]
    fn take_restore_and_connections() {
        let s = Stats::new();
        s.bump(Counter::SpamRejected);
        s.add(Counter::MessagesReceived, 3);
        s.connection("imap");
        s.connection("imap");
        s.connection_rejected("smtp");
        s.connection("gopher");
        let taken = s.take();
        assert_eq!(taken.get("spam_rejected"), Some(&1));
        assert_eq!(taken.get("messages_received"), Some(&3));
        assert_eq!(taken.get("connections.imap"), Some(&2));
        assert_eq!(taken.get("connections_rejected.smtp"), Some(&1));
        assert_eq!(taken.len(), 4);
        assert!(s.take().is_empty());
        s.bump(Counter::SpamRejected);
        s.restore(&taken);
        assert_eq!(s.pending().get("spam_rejected"), Some(&2));
        s.clear();
        assert!(s.pending().is_empty());
    }

    #[test]
    fn merging_two_nodes_adds_their_increments() {
        let a = Stats::new();
        let b = Stats::new();
        let mut doc = StatsDoc::new(100);
        doc.counters.insert("messages_received".into(), 10);
        a.add(Counter::MessagesReceived, 2);
        b.add(Counter::MessagesReceived, 5);
        b.bump(Counter::VirusesFound);
        doc.merge(&a.take());
        doc.merge(&b.take());
        assert_eq!(doc.get("messages_received"), 17);
        assert_eq!(doc.get("viruses_found"), 1);
        assert_eq!(doc.started_at, 100);
        let mut max = StatsDoc::new(1);
        max.counters.insert("dsn_sent".into(), u64::MAX - 1);
        max.merge(&BTreeMap::from([("dsn_sent".to_owned(), 5)]));
        assert_eq!(max.get("dsn_sent"), u64::MAX);
    }
}
