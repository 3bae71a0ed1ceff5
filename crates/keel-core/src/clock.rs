//! Time source. Production code asks a [`Clock`] for the time so tests can move it
//! (DESIGN §3: retry, lockout expiry and clean-out are tested without sleeping).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
    /// Now, as whole seconds since the Unix epoch.
    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock set to the given Unix time in seconds.
    pub fn at(unix_seconds: i64) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(unix_seconds * 1000)),
        }
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, unix_seconds: i64) {
        self.millis.store(unix_seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.unix(), 1_000);
        c.advance(std::time::Duration::from_secs(3600));
        assert_eq!(c.unix(), 4_600);
    }
}
