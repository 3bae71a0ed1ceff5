//! Traffic charts (guide §24.5): how many connections per service and how many messages
//! per sampling interval, for the last 2 hours up to the last 30 days.
//!
//! The sampler reads the monotonic totals of [`crate::stats::Stats::lifetime`] (never
//! reset, never taken by the statistics flush) and files each difference into four tiers
//! of fixed-width buckets, one per time range the charts offer. A bucket covers
//! `[start, start + width)` with `start` a multiple of the width (UTC), so charts line up
//! across restarts. The whole history is a few thousand numbers: it is kept in memory and
//! saved as JSON by the server (per node: each node charts its own traffic).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::stats::{Stats, definitions};

/// The chart ranges: (id, label, range seconds, bucket width seconds). guide §24.5: "2
/// hours" samples every 20 seconds.
pub const RANGES: [(&str, &str, i64, i64); 4] = [
    ("2h", "Last 2 hours", 2 * 3600, 20),
    ("1d", "Last 24 hours", 86_400, 300),
    ("1w", "Last 7 days", 7 * 86_400, 1800),
    ("30d", "Last 30 days", 30 * 86_400, 7200),
];

/// A charted quantity (guide §24.5 "Monitored parameter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// Stable identifier (`connections.imap`, …).
    pub id: &'static str,
    /// What the chart is titled.
    pub label: &'static str,
    /// The statistics counters (keys of [`definitions`]) it adds up.
    pub counters: &'static [&'static str],
}

/// Every series, in the order the chart page offers them.
pub const SERIES: [Series; 8] = [
    Series {
        id: "connections.smtp",
        label: "Connections / SMTP",
        counters: &[
            "connections.smtp",
            "connections.smtps",
            "connections.submission",
        ],
    },
    Series {
        id: "connections.smtp_rejected",
        label: "Connections / Rejected SMTP",
        counters: &[
            "connections_rejected.smtp",
            "connections_rejected.smtps",
            "connections_rejected.submission",
        ],
    },
    Series {
        id: "connections.smtp_outgoing",
        label: "Connections / Outgoing SMTP",
        counters: &["outgoing_smtp_connections"],
    },
    Series {
        id: "connections.imap",
        label: "Connections / IMAP",
        counters: &["connections.imap", "connections.imaps"],
    },
    Series {
        id: "connections.pop3",
        label: "Connections / POP3",
        counters: &["connections.pop3", "connections.pop3s"],
    },
    Series {
        id: "connections.http",
        label: "Connections / HTTP",
        counters: &["connections.http", "connections.https"],
    },
    Series {
        id: "messages.received",
        label: "Messages / Received",
        counters: &["messages_received"],
    },
    Series {
        id: "messages.spam",
        label: "Messages / Spam",
        counters: &["spam_tagged", "spam_rejected"],
    },
];

/// The series with this id.
pub fn series(id: &str) -> Option<&'static Series> {
    SERIES.iter().find(|s| s.id == id)
}

/// The range with this id: (label, range seconds, bucket width seconds).
pub fn range(id: &str) -> Option<(&'static str, i64, i64)> {
    RANGES
        .iter()
        .find(|r| r.0 == id)
        .map(|&(_, label, span, width)| (label, span, width))
}

/// One tier: buckets of one width, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tier {
    /// (bucket start, count) per series id.
    buckets: BTreeMap<String, VecDeque<(i64, u64)>>,
}

/// The history of every series (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Tiers by range id.
    tiers: BTreeMap<String, Tier>,
    /// The lifetime totals at the last sample, by counter key (this process's only: a
    /// restarted process re-bases at its first sample).
    #[serde(skip)]
    last: BTreeMap<String, u64>,
}

/// A chart's data: one value per bucket of the range, oldest first, gaps as zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chart {
    /// The series id.
    pub series: &'static str,
    /// Its label.
    pub label: &'static str,
    /// The range id.
    pub range: &'static str,
    /// Seconds per point (the guide's "sampling interval").
    pub step_secs: i64,
    /// (bucket start, count), oldest first, covering the whole range up to now.
    pub points: Vec<(i64, u64)>,
}

impl Traffic {
    /// Files what the counters gained since the last sample, at `now`. The first sample
    /// after a start only records the totals: what happened while nothing sampled is not
    /// charted as one spike.
    pub fn sample(&mut self, stats: &Stats, now: i64) {
        let totals = stats.lifetime();
        if self.last.is_empty() {
            self.last = totals;
            return;
        }
        for s in &SERIES {
            let delta: u64 = s
                .counters
                .iter()
                .map(|k| {
                    let cur = totals.get(*k).copied().unwrap_or(0);
                    let before = self.last.get(*k).copied().unwrap_or(0);
                    cur.saturating_sub(before)
                })
                .sum();
            self.add(s.id, delta, now);
        }
        self.last = totals;
    }

    /// Adds `n` to a series' current buckets and drops buckets older than each range.
    pub fn add(&mut self, series: &str, n: u64, now: i64) {
        for &(id, _, span, width) in &RANGES {
            let tier = self.tiers.entry(id.to_owned()).or_default();
            let q = tier.buckets.entry(series.to_owned()).or_default();
            let start = now.div_euclid(width) * width;
            match q.back_mut() {
                Some((s, v)) if *s == start => *v += n,
                Some((s, _)) if *s > start => {} // the clock went back: ignore
                _ => {
                    if n > 0 || !q.is_empty() {
                        q.push_back((start, n));
                    }
                }
            }
            while q.front().is_some_and(|(s, _)| *s <= now - span) {
                q.pop_front();
            }
        }
    }

    /// The chart of `series` over `range` ending at `now`; `None` for an unknown id.
    pub fn chart(&self, series_id: &str, range_id: &str, now: i64) -> Option<Chart> {
        let s = series(series_id)?;
        let &(rid, _, span, width) = RANGES.iter().find(|r| r.0 == range_id)?;
        let last = now.div_euclid(width) * width;
        let count = (span / width) as usize;
        let first = last - (count as i64 - 1) * width;
        let mut points: Vec<(i64, u64)> =
            (0..count).map(|i| (first + i as i64 * width, 0)).collect();
        if let Some(q) = self.tiers.get(rid).and_then(|t| t.buckets.get(s.id)) {
            for &(start, v) in q {
                if start >= first && start <= last {
                    let i = ((start - first) / width) as usize;
                    if let Some(p) = points.get_mut(i) {
                        p.1 += v;
                    }
                }
            }
        }
        Some(Chart {
            series: s.id,
            label: s.label,
            range: rid,
            step_secs: width,
            points,
        })
    }
}

/// The process's traffic history (the server samples into it; the admin API reads it).
pub fn global() -> &'static std::sync::Mutex<Traffic> {
    static GLOBAL: std::sync::OnceLock<std::sync::Mutex<Traffic>> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Default::default)
}

/// Every counter key a series may name exists (checked by a test).
pub fn counter_keys() -> Vec<String> {
    let mut keys: Vec<String> = definitions().iter().map(|d| d.key.clone()).collect();
    keys.push(OUTGOING_SMTP.to_owned());
    keys
}

/// The lifetime-only counter of outgoing SMTP connections (not a statistics line).
pub const OUTGOING_SMTP: &str = "outgoing_smtp_connections";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counter;

    const T: i64 = 1_700_000_000 - 1_700_000_000 % 7200;

    #[test]
    fn series_name_existing_counters() {
        let keys = counter_keys();
        for s in &SERIES {
            for c in s.counters {
                assert!(keys.iter().any(|k| k == c), "{} names {c}", s.id);
            }
        }
    }

    #[test]
    fn samples_fall_into_aligned_buckets_of_each_range() {
        let stats = Stats::new();
        let mut t = Traffic::default();
        t.sample(&stats, T); // the first sample only records the totals
        stats.connection("imap");
        stats.connection("imaps");
        stats.bump(Counter::MessagesReceived);
        t.sample(&stats, T + 5);
        stats.connection("imap");
        t.sample(&stats, T + 25);
        let c = t.chart("connections.imap", "2h", T + 30).expect("chart");
        assert_eq!(c.step_secs, 20);
        assert_eq!(c.points.len(), 360);
        let tail: Vec<u64> = c.points[358..].iter().map(|p| p.1).collect();
        assert_eq!(tail, vec![2, 1]);
        assert_eq!(c.points[359].0, T + 20);
        let day = t.chart("connections.imap", "1d", T + 30).expect("day");
        assert_eq!(day.points.last().map(|p| p.1), Some(3));
        assert_eq!(day.points.len(), 288);
        let m = t.chart("messages.received", "30d", T + 30).expect("month");
        assert_eq!(m.points.iter().map(|p| p.1).sum::<u64>(), 1);
        assert!(t.chart("nope", "2h", T).is_none());
        assert!(t.chart("messages.received", "3h", T).is_none());
    }

    #[test]
    fn old_buckets_leave_each_range_and_history_survives_json() {
        let stats = Stats::new();
        let mut t = Traffic::default();
        t.sample(&stats, T);
        stats.connection("pop3");
        t.sample(&stats, T + 1);
        // Three hours later: gone from the 2-hour chart, still in the day.
        stats.connection("pop3");
        t.sample(&stats, T + 3 * 3600);
        let two = t.chart("connections.pop3", "2h", T + 3 * 3600).expect("2h");
        assert_eq!(two.points.iter().map(|p| p.1).sum::<u64>(), 1);
        let day = t.chart("connections.pop3", "1d", T + 3 * 3600).expect("1d");
        assert_eq!(day.points.iter().map(|p| p.1).sum::<u64>(), 2);
        let json = serde_json::to_string(&t).expect("json");
        let back: Traffic = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.tiers, t.tiers);
        assert!(back.last.is_empty());
        // A restarted process: the first sample re-bases, nothing is double counted.
        let fresh = Stats::new();
        let mut restarted = back;
        restarted.sample(&fresh, T + 3 * 3600 + 10);
        fresh.connection("pop3");
        restarted.sample(&fresh, T + 3 * 3600 + 30);
        let day = restarted
            .chart("connections.pop3", "1d", T + 3 * 3600 + 30)
            .expect("1d");
        assert_eq!(
            day.points.iter().map(|p| p.1).sum::<u64>(),
            3,
            "the two saved, plus the one after the restart, once"
        );
    }
}
