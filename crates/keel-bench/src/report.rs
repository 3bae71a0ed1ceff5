//! Per-client records and the merged report.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// What one client measured.
#[derive(Debug, Default)]
pub(crate) struct Rec {
    /// Latency of each successful operation, microseconds.
    pub(crate) lat_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) samples: Vec<String>,
    pub(crate) bytes: u64,
}

impl Rec {
    pub(crate) fn ok(&mut self, took: Duration, bytes: u64) {
        self.lat_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        self.bytes += bytes;
    }
    pub(crate) fn error(&mut self, e: impl fmt::Display) {
        self.errors += 1;
        if self.samples.len() < 3 {
            self.samples.push(e.to_string());
        }
    }
}

/// The merged result of a run.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) workload: String,
    pub(crate) label: String,
    pub(crate) clients: usize,
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) ops_per_s: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) error_samples: Vec<String>,
    #[serde(flatten)]
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest-rank percentile.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

impl Outcome {
    pub(crate) fn from_recs(
        workload: &str,
        label: &str,
        clients: usize,
        elapsed: Duration,
        recs: Vec<Rec>,
    ) -> Self {
        let mut lat = Vec::new();
        let (mut errors, mut bytes, mut samples) = (0, 0, Vec::new());
        for r in recs {
            lat.extend(r.lat_us);
            errors += r.errors;
            bytes += r.bytes;
            for s in r.samples {
                if samples.len() < 5 && !samples.contains(&s) {
                    samples.push(s);
                }
            }
        }
        lat.sort_unstable();
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            workload: workload.to_owned(),
            label: label.to_owned(),
            clients,
            ops: lat.len() as u64,
            errors,
            elapsed_s: secs,
            ops_per_s: lat.len() as f64 / secs,
            mb_per_s: bytes as f64 / secs / 1e6,
            p50_ms: pct(&lat, 50.0),
            p95_ms: pct(&lat, 95.0),
            p99_ms: pct(&lat, 99.0),
            max_ms: lat.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
            error_samples: samples,
            extra: serde_json::Map::new(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.label)
        };
        writeln!(
            f,
            "{}{label}: {} clients, {} ops in {:.2} s = {:.1} ops/s ({:.2} MB/s), {} errors",
            self.workload,
            self.clients,
            self.ops,
            self.elapsed_s,
            self.ops_per_s,
            self.mb_per_s,
            self.errors
        )?;
        write!(
            f,
            "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )?;
        for (k, v) in &self.extra {
            write!(f, "\n{k}: {v}")?;
        }
        for s in &self.error_samples {
            write!(f, "\nerror: {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&[], 50.0), 0.0);
        assert_eq!(pct(&[7000], 99.0), 7.0);
    }

    #[test]
    fn records_merge_and_keep_few_error_samples() {
        let mut a = Rec::default();
        a.ok(Duration::from_millis(2), 10);
        for i in 0..10 {
            a.error(format!("e{i}"));
        }
        let mut b = Rec::default();
        b.ok(Duration::from_millis(4), 20);
        let o = Outcome::from_recs("smtp", "x", 2, Duration::from_secs(1), vec![a, b]);
        assert_eq!((o.ops, o.errors), (2, 10));
        assert_eq!(o.error_samples, vec!["e0", "e1", "e2"]);
        assert_eq!(o.p99_ms, 4.0);
        assert!(o.to_string().contains("2 ops"));
    }
}
