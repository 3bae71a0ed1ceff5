//! Quotas and the quota warning (guide §8.2, requirements-1 §8.2 step 7).

use std::fmt;

use chrono::{DateTime, Utc};
use keel_directory::Quota;
use keel_store::Usage;
use serde::{Deserialize, Serialize};

/// Percentage of either limit at which the quota warning is sent (guide §8.2: the hidden
/// setting `QuotaWarningThreshold`, 90 %).
pub const QUOTA_WARNING_PERCENT: u64 = 90;
/// Minimum time between two quota warnings to one user (guide §8.2: at most once per 24 h,
/// even if usage goes down and back up).
pub const QUOTA_WARNING_INTERVAL_SECS: i64 = 24 * 3600;

/// Which quota limit (guide §8.2 step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKind {
    /// Disk space, in bytes.
    Bytes,
    /// Number of messages.
    Messages,
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bytes => "disk space (bytes)",
            Self::Messages => "message count",
        })
    }
}

/// Result of [`crate::Mailboxes::quota_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaStatus {
    /// The message fits.
    Ok,
    /// Storing it would exceed a limit.
    Exceeded {
        /// Which limit.
        what: QuotaKind,
        /// The limit.
        limit: u64,
        /// Current usage.
        used: u64,
    },
}

/// Would adding `count` messages of `bytes` in total exceed `quota`? 0 = unlimited
/// (guide §8.2 step 7). Disk space is checked first.
pub(crate) fn check(quota: Quota, usage: Usage, bytes: u64, count: u64) -> QuotaStatus {
    if quota.bytes > 0 && usage.bytes.saturating_add(bytes) > quota.bytes {
        return QuotaStatus::Exceeded {
            what: QuotaKind::Bytes,
            limit: quota.bytes,
            used: usage.bytes,
        };
    }
    if quota.messages > 0 && usage.messages.saturating_add(count) > quota.messages {
        return QuotaStatus::Exceeded {
            what: QuotaKind::Messages,
            limit: quota.messages,
            used: usage.messages,
        };
    }
    QuotaStatus::Ok
}

/// Whether usage is at or above [`QUOTA_WARNING_PERCENT`] of either (non-zero) limit.
pub(crate) fn at_warning_level(quota: Quota, usage: Usage) -> bool {
    let reached = |used: u64, limit: u64| {
        limit > 0 && u128::from(used) * 100 >= u128::from(limit) * u128::from(QUOTA_WARNING_PERCENT)
    };
    reached(usage.bytes, quota.bytes) || reached(usage.messages, quota.messages)
}

fn percent(used: u64, limit: u64) -> u128 {
    if limit == 0 {
        0
    } else {
        u128::from(used) * 100 / u128::from(limit)
    }
}

/// What the warning message needs to know.
pub(crate) struct WarningParams<'a> {
    pub(crate) user: &'a str,
    pub(crate) domain: &'a str,
    pub(crate) hostname: &'a str,
    pub(crate) unique: &'a str,
    pub(crate) now: DateTime<Utc>,
    pub(crate) quota: Quota,
    pub(crate) usage: Usage,
}

/// Builds the quota warning (guide §8.2: "the user gets a warning message suggesting
/// deletions"): plain US-ASCII text, CRLF line ends, the RFC 5322 §3.6 required fields
/// (Date, From) plus To, Subject and Message-ID.
pub(crate) fn warning_message(p: &WarningParams<'_>) -> Vec<u8> {
    let bytes_pct = percent(p.usage.bytes, p.quota.bytes);
    let msgs_pct = percent(p.usage.messages, p.quota.messages);
    let top = bytes_pct.max(msgs_pct);
    let mut lines = vec![
        format!("Date: {}", p.now.to_rfc2822()),
        format!("From: Mail Server <postmaster@{}>", p.domain),
        format!("To: <{}>", p.user),
        format!("Subject: Quota warning: your mailbox is {top} % full"),
        format!("Message-ID: <quota.{}@{}>", p.unique, p.hostname),
        "MIME-Version: 1.0".to_owned(),
        "Content-Type: text/plain; charset=us-ascii".to_owned(),
        "Content-Transfer-Encoding: 7bit".to_owned(),
        "Auto-Submitted: auto-generated".to_owned(),
        String::new(),
        format!("Your mailbox {} is nearly full.", p.user),
        String::new(),
    ];
    if p.quota.bytes > 0 {
        lines.push(format!(
            "Disk space: {} of {} bytes used ({bytes_pct} %).",
            p.usage.bytes, p.quota.bytes
        ));
    }
    if p.quota.messages > 0 {
        lines.push(format!(
            "Messages:   {} of {} used ({msgs_pct} %).",
            p.usage.messages, p.quota.messages
        ));
    }
    lines.extend([
        String::new(),
        "When the limit is reached, new messages will be refused.".to_owned(),
        "Please delete messages you no longer need, and empty the".to_owned(),
        "Deleted Items and Junk E-mail folders.".to_owned(),
        String::new(),
        "This message was generated automatically; do not reply.".to_owned(),
    ]);
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(bytes: u64, messages: u64) -> Quota {
        Quota { bytes, messages }
    }
    fn u(bytes: u64, messages: u64) -> Usage {
        Usage { bytes, messages }
    }

    #[test]
    fn zero_means_unlimited() {
        // guide §8.2 step 7: 0 means unlimited
        assert_eq!(
            check(q(0, 0), u(u64::MAX, u64::MAX), 10, 1),
            QuotaStatus::Ok
        );
        assert!(!at_warning_level(q(0, 0), u(u64::MAX, u64::MAX)));
    }

    #[test]
    fn limits_are_inclusive() {
        assert_eq!(check(q(100, 0), u(90, 0), 10, 1), QuotaStatus::Ok);
        assert_eq!(
            check(q(100, 0), u(90, 0), 11, 1),
            QuotaStatus::Exceeded {
                what: QuotaKind::Bytes,
                limit: 100,
                used: 90
            }
        );
        assert_eq!(check(q(0, 3), u(0, 2), 5, 1), QuotaStatus::Ok);
        assert_eq!(
            check(q(0, 3), u(0, 3), 5, 1),
            QuotaStatus::Exceeded {
                what: QuotaKind::Messages,
                limit: 3,
                used: 3
            }
        );
    }

    #[test]
    fn warning_threshold_is_90_percent_of_either_limit() {
        assert!(!at_warning_level(q(0, 10), u(0, 8)));
        assert!(at_warning_level(q(0, 10), u(0, 9)));
        assert!(at_warning_level(q(1000, 10), u(900, 1)));
        assert!(!at_warning_level(q(1000, 10), u(899, 8)));
    }

    #[test]
    fn warning_is_a_valid_ascii_message() {
        let m = warning_message(&WarningParams {
            user: "alice@example.com",
            domain: "example.com",
            hostname: "mx.example.com",
            unique: "1.2",
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            quota: q(1000, 10),
            usage: u(950, 9),
        });
        let text = String::from_utf8(m).unwrap_or_default();
        assert!(text.is_ascii());
        assert!(text.contains("\r\n\r\n"));
        assert!(text.starts_with("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(text.contains("From: Mail Server <postmaster@example.com>\r\n"));
        assert!(text.contains("Subject: Quota warning: your mailbox is 95 % full\r\n"));
        assert!(text.contains("Message-ID: <quota.1.2@mx.example.com>\r\n"));
        assert!(
            text.split("\r\n")
                .all(|l| l.len() <= 78 && !l.contains('\n'))
        );
    }
}
