//! The statistics service (guide §24.6): the stored totals of the
//! [`keel_core::stats`] counters, the computed values and the report the admin API, the
//! web admin, `/metrics` and `keel stats` show.
//!
//! The totals are one `statistics/counters` document ([`StatsDoc`]). [`flush`] adds a
//! process's pending increments to it in one store transaction (read, add, write; the
//! transaction is serialisable and retried on PostgreSQL), so nodes sharing a database
//! each add their own counts. [`reset`] writes zeros with a new start time.

use std::collections::BTreeMap;

use keel_core::stats::{Group, Stats, StatsDoc, definitions};
use keel_store::{DocTxn, MetaStore, StoreError, StoreResult};
use serde::Serialize;

/// Document kind of the statistics.
pub const STATS_KIND: &str = "statistics";
/// Document key of the totals.
pub const STATS_KEY: &str = "counters";
/// How often `keel serve` saves the pending increments.
pub const STATS_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

fn read_doc(txn: &mut dyn DocTxn) -> StoreResult<Option<StatsDoc>> {
    match txn.get(STATS_KIND, STATS_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("statistics document: {e}"))),
        None => Ok(None),
    }
}

fn write_doc(txn: &mut dyn DocTxn, doc: &StatsDoc) -> StoreResult<()> {
    let body = serde_json::to_value(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    txn.put(STATS_KIND, STATS_KEY, "", &body).map(|_| ())
}

/// The stored totals, if any were ever saved.
pub fn load(meta: &dyn MetaStore) -> StoreResult<Option<StatsDoc>> {
    match meta.get_doc(STATS_KIND, STATS_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("statistics document: {e}"))),
        None => Ok(None),
    }
}

/// Creates the document at the first start (the start of the statistics); leaves an
/// existing one alone.
pub fn ensure(meta: &dyn MetaStore, now: i64) -> StoreResult<()> {
    meta.transact(&mut |txn: &mut dyn DocTxn| {
        if read_doc(txn)?.is_none() {
            write_doc(txn, &StatsDoc::new(now))?;
        }
        Ok(())
    })
}

/// Adds the pending increments of `stats` to the stored totals. Nothing is written when
/// there is nothing to add; on failure the increments are kept for the next flush.
pub fn flush(meta: &dyn MetaStore, stats: &Stats, now: i64) -> StoreResult<()> {
    let deltas = stats.take();
    if deltas.is_empty() {
        return Ok(());
    }
    let r = meta.transact(&mut |txn: &mut dyn DocTxn| {
        let mut doc = read_doc(txn)?.unwrap_or_else(|| StatsDoc::new(now));
        doc.merge(&deltas);
        write_doc(txn, &doc)
    });
    if r.is_err() {
        stats.restore(&deltas);
    }
    r
}

/// Sets every counter to zero and starts the statistics at `now`. The pending increments
/// of `stats` (this process's) are dropped; other processes' unsaved increments (a few
/// seconds' worth) are added after the reset.
pub fn reset(meta: &dyn MetaStore, stats: Option<&Stats>, now: i64) -> StoreResult<StatsDoc> {
    if let Some(s) = stats {
        s.clear();
    }
    let doc = StatsDoc::new(now);
    meta.transact(&mut |txn: &mut dyn DocTxn| write_doc(txn, &doc))?;
    Ok(doc)
}

/// Total messages and bytes of every account (computed on read).
pub fn storage(meta: &dyn MetaStore) -> StoreResult<(u64, u64)> {
    let mut messages = 0u64;
    let mut bytes = 0u64;
    for account in meta.accounts()? {
        let u = meta.usage(&account)?;
        messages = messages.saturating_add(u.messages);
        bytes = bytes.saturating_add(u.bytes);
    }
    Ok((messages, bytes))
}

/// One row of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatRow {
    /// Stable key (`messages_received`, `connections.imap`, `uptime_seconds`, …).
    pub key: String,
    /// What the statistics page shows.
    pub label: String,
    /// The count (or computed value).
    pub value: u64,
}

/// One group of the statistics page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatGroup {
    /// `server_status`, `messages`, `antivirus`, `spam_filter`, `storage`.
    pub id: &'static str,
    /// The guide's title.
    pub title: &'static str,
    /// The rows.
    pub counters: Vec<StatRow>,
}

/// What `GET /admin/api/v1/statistics` and `keel stats show` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsReport {
    /// Start of the statistics (first start or last reset), RFC 3339.
    pub started_at: String,
    /// The same as unix seconds.
    pub started_at_unix: i64,
    /// When this report was made (unix seconds).
    pub now_unix: i64,
    /// Seconds since the reporting server started; absent when no server runs here.
    pub uptime_seconds: Option<u64>,
    /// The groups in display order.
    pub groups: Vec<StatGroup>,
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Builds the report: stored totals plus `stats`'s pending increments (this process's),
/// the uptime since `server_started` and the storage totals.
pub fn report(
    meta: &dyn MetaStore,
    stats: Option<&Stats>,
    server_started: Option<i64>,
    now: i64,
) -> StoreResult<StatsReport> {
    let mut doc = load(meta)?.unwrap_or_else(|| StatsDoc::new(now));
    if let Some(s) = stats {
        doc.merge(&s.pending());
    }
    let (messages, bytes) = storage(meta)?;
    Ok(build_report(
        &doc,
        server_started.map(|s| u64::try_from(now - s).unwrap_or(0)),
        (messages, bytes),
        now,
    ))
}

/// The report of given totals (no store access).
pub fn build_report(
    doc: &StatsDoc,
    uptime: Option<u64>,
    storage: (u64, u64),
    now: i64,
) -> StatsReport {
    let mut groups: BTreeMap<&'static str, Vec<StatRow>> = BTreeMap::new();
    if let Some(up) = uptime {
        groups.entry("server_status").or_default().push(StatRow {
            key: "uptime_seconds".into(),
            label: "Server uptime (seconds)".into(),
            value: up,
        });
    }
    for d in definitions() {
        groups.entry(d.group.id()).or_default().push(StatRow {
            key: d.key.clone(),
            label: d.label.clone(),
            value: doc.get(&d.key),
        });
    }
    let st = groups.entry("storage").or_default();
    st.push(StatRow {
        key: "storage_messages".into(),
        label: "Messages stored".into(),
        value: storage.0,
    });
    st.push(StatRow {
        key: "storage_bytes".into(),
        label: "Bytes occupied by messages".into(),
        value: storage.1,
    });
    StatsReport {
        started_at: rfc3339(doc.started_at),
        started_at_unix: doc.started_at,
        now_unix: now,
        uptime_seconds: uptime,
        groups: Group::ALL
            .iter()
            .map(|g| StatGroup {
                id: g.id(),
                title: g.title(),
                counters: groups.remove(g.id()).unwrap_or_default(),
            })
            .collect(),
    }
}

impl StatsReport {
    /// A value by key (0 when absent).
    pub fn value(&self, key: &str) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| &g.counters)
            .find(|r| r.key == key)
            .map_or(0, |r| r.value)
    }

    /// The Prometheus / OpenMetrics text exposition (version 0.0.4 text format).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut seen: Vec<&str> = Vec::new();
        for d in definitions() {
            if !seen.contains(&d.metric) {
                seen.push(d.metric);
                let help = match d.service {
                    Some(_) if d.key.starts_with("connections_rejected.") => {
                        "Connections refused at admission, by service".to_owned()
                    }
                    Some(_) => "Connections admitted, by service".to_owned(),
                    None => d.label.clone(),
                };
                out.push_str(&format!("# HELP {} {help}\n", d.metric));
                out.push_str(&format!("# TYPE {} counter\n", d.metric));
            }
            let value = self.value(&d.key);
            match d.service {
                Some(s) => out.push_str(&format!("{}{{service=\"{s}\"}} {value}\n", d.metric)),
                None => out.push_str(&format!("{} {value}\n", d.metric)),
            }
        }
        let gauges = [
            (
                "keel_statistics_start_time_seconds",
                "Start of the statistics (first start or last reset), unix time",
                u64::try_from(self.started_at_unix).unwrap_or(0),
            ),
            (
                "keel_storage_messages",
                "Messages stored",
                self.value("storage_messages"),
            ),
            (
                "keel_storage_bytes",
                "Bytes occupied by stored messages",
                self.value("storage_bytes"),
            ),
        ];
        for (name, help, v) in gauges {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            ));
        }
        if let Some(up) = self.uptime_seconds {
            out.push_str(&format!(
                "# HELP keel_uptime_seconds Seconds since the server started\n\
                 # TYPE keel_uptime_seconds gauge\nkeel_uptime_seconds {up}\n"
            ));
        }
        out
    }

    /// The text `keel stats show` prints.
    pub fn render_text(&self) -> String {
        let mut out = format!("Statistics since {}\n", self.started_at);
        for g in &self.groups {
            out.push_str(&format!("\n{}\n", g.title));
            for r in &g.counters {
                out.push_str(&format!("  {:<56} {}\n", r.label, r.value));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::stats::Counter;

    #[test]
    fn report_groups_and_prometheus_names() {
        let mut doc = StatsDoc::new(1_700_000_000);
        doc.counters.insert("connections.imap".into(), 4);
        doc.counters.insert("spam_rejected".into(), 2);
        doc.counters.insert("messages_received".into(), 7);
        let r = build_report(&doc, Some(30), (3, 300), 1_700_000_100);
        assert_eq!(r.started_at, "2023-11-14T22:13:20Z");
        let ids: Vec<_> = r.groups.iter().map(|g| g.id).collect();
        assert_eq!(
            ids,
            [
                "server_status",
                "messages",
                "antivirus",
                "spam_filter",
                "storage"
            ]
        );
        assert_eq!(r.value("uptime_seconds"), 30);
        assert_eq!(r.value("storage_bytes"), 300);
        let text = r.prometheus();
        assert!(text.contains("keel_connections_total{service=\"imap\"} 4\n"));
        assert!(text.contains("keel_connections_total{service=\"smtp\"} 0\n"));
        assert!(text.contains("keel_spam_rejected_total 2\n"));
        assert!(text.contains("keel_messages_received_total 7\n"));
        assert!(text.contains("keel_viruses_found_total 0\n"));
        assert_eq!(
            text.matches("# TYPE keel_connections_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn two_nodes_flushing_into_one_store_add_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta =
            keel_store::sqlite::SqliteStore::open(&dir.path().join("meta.db")).expect("open store");
        ensure(&meta, 1000).expect("ensure");
        let (a, b) = (Stats::new(), Stats::new());
        std::thread::scope(|s| {
            for node in [&a, &b] {
                let meta = &meta;
                s.spawn(move || {
                    for _ in 0..20 {
                        node.add(Counter::MessagesReceived, 3);
                        node.connection("imap");
                        flush(meta, node, 2000).expect("flush");
                    }
                });
            }
        });
        let doc = load(&meta).expect("load").expect("doc");
        assert_eq!(doc.started_at, 1000, "a flush keeps the start time");
        assert_eq!(doc.get("messages_received"), 120);
        assert_eq!(doc.get("connections.imap"), 40);
        // A report adds this process's unsaved increments.
        a.bump(Counter::SpamTagged);
        let r = report(&meta, Some(&a), None, 3000).expect("report");
        assert_eq!(r.value("spam_tagged"), 1);
        assert_eq!(r.value("messages_received"), 120);
        // Reset: zeros, new start, pending increments of this process dropped.
        let doc = reset(&meta, Some(&a), 4000).expect("reset");
        assert_eq!(doc.started_at, 4000);
        let r = report(&meta, Some(&a), None, 4001).expect("report");
        assert_eq!(r.value("messages_received"), 0);
        assert_eq!(r.value("spam_tagged"), 0);
        assert_eq!(r.started_at_unix, 4000);
        ensure(&meta, 5000).expect("ensure");
        assert_eq!(load(&meta).expect("load").expect("doc").started_at, 4000);
    }

    /// Two nodes (two stores, two sets of counters) on one PostgreSQL database flush at
    /// the same time; serialisable read-add-write keeps every increment. Skipped without
    /// `KEEL_TEST_PG_URL` (scripts/test.sh sets it).
    #[test]
    fn two_postgresql_nodes_flushing_at_once_add_up() {
        let Ok(base) = std::env::var("KEEL_TEST_PG_URL") else {
            eprintln!("SKIPPED two_postgresql_nodes_flushing_at_once_add_up: KEEL_TEST_PG_URL");
            return;
        };
        let schema = format!("keel_stats_{}", std::process::id());
        let psql = |sql: &str| {
            let out = std::process::Command::new("psql")
                .args([base.as_str(), "-q", "-c", sql])
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        psql(&format!("CREATE SCHEMA {schema}"));
        let url = format!("{base} options=-csearch_path={schema}");
        let nodes: Vec<_> = (0..2)
            .map(|_| {
                (
                    keel_store::postgres::PgStore::open(&url).expect("open"),
                    Stats::new(),
                )
            })
            .collect();
        ensure(&nodes[0].0, 1000).expect("ensure");
        std::thread::scope(|s| {
            for (meta, stats) in &nodes {
                s.spawn(move || {
                    for _ in 0..25 {
                        stats.add(Counter::MessagesReceived, 2);
                        stats.connection("smtp");
                        flush(meta, stats, 2000).expect("flush");
                    }
                });
            }
        });
        let doc = load(&nodes[1].0).expect("load").expect("doc");
        drop(nodes);
        psql(&format!("DROP SCHEMA {schema} CASCADE"));
        assert_eq!(doc.get("messages_received"), 100);
        assert_eq!(doc.get("connections.smtp"), 50);
        assert_eq!(doc.started_at, 1000);
    }
}
