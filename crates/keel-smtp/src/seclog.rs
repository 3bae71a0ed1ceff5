//! Security-log lines (guide §25.4) for SMTP refusals that keel-core's
//! [`SecurityEvent`] has no variant for. They are written through
//! [`SecurityEvent::Other`] and follow the shape of its `LimitExceeded` line
//! (`Limit of <n> <what> from IP address <ip> exceeded`) or of the guide's relay line
//! (`… from IP address <ip>, mail from <a> to <b> rejected`), so one grep finds them all.
//!
//! Implementation notes:
//! - guide §25.4 lists relaying, harvest attacks, failed logins and blacklists; §12.2's
//!   other limits have no example line, so these shapes are Keel's.
//! - Every refusal of a §12.2 limit writes exactly one line per refused command, except the
//!   per-message recipient limit (one line per transaction, in `envelope`) and the harvest
//!   block inside a session (one line per session): a client hammering on a limit would
//!   otherwise flood the log with identical lines.

use std::net::IpAddr;

use keel_core::log::{AuthFailure, Logs, SecurityEvent};

/// The envelope sender as the guide writes it (`<>` for the null sender).
fn angle(a: &str) -> String {
    format!("<{a}>")
}

/// guide §12.2 "Block if sender's mail domain was not found in DNS".
pub(crate) fn sender_domain_unknown(ip: IpAddr, from: &str, domain: &str) -> String {
    format!(
        "Sender domain {domain} not found in DNS, IP address {ip}, mail from {} rejected",
        angle(from)
    )
}

/// Greylisting (RFC 6647 §2.1): a temporary refusal of an unconfirmed triplet.
pub(crate) fn greylisted(ip: IpAddr, from: &str, to: &str) -> String {
    format!(
        "Greylisting of IP address {ip}, mail from {} to {} temporarily rejected",
        angle(from),
        angle(to)
    )
}

/// guide §12.2: an IP still blocked after a directory harvest attack was refused.
pub(crate) fn harvest_blocked(ip: IpAddr, what: &str) -> String {
    format!("Blocked IP address {ip} (directory harvest attack): {what} refused")
}

/// guide §12.2 "Limit maximum incoming SMTP message size" (RFC 1870 §6).
pub(crate) fn too_big(ip: IpAddr, max: u64, from: &str) -> String {
    format!(
        "Limit of {max} bytes per message from IP address {ip} exceeded, mail from {} rejected",
        angle(from)
    )
}

/// guide §18.1: the sender's outgoing size limit (user or domain).
pub(crate) fn outgoing_too_big(ip: IpAddr, user: &str, limit: u64, from: &str) -> String {
    format!(
        "Outgoing limit of {limit} bytes per message of user {user} from IP address {ip} exceeded, mail from {} rejected",
        angle(from)
    )
}

/// guide §12.2 "Maximum number of accepted Received headers (hops)".
pub(crate) fn too_many_hops(ip: IpAddr, max: u32, from: &str) -> String {
    format!(
        "Limit of {max} Received headers (hops) from IP address {ip} exceeded, mail from {} rejected",
        angle(from)
    )
}

/// Writes one [`SecurityEvent::Other`] line.
pub(crate) fn write(logs: &Logs, line: &str) {
    logs.security(&SecurityEvent::Other(line));
}

/// guide §25.4 "Failed login attempts" for SMTP AUTH refusals the directory does not log
/// itself (it logs refused credentials): a disabled or unknown mechanism, a cancelled
/// exchange, undecodable data and back-end errors.
pub(crate) fn failed_auth(logs: &Logs, ip: IpAddr, reason: AuthFailure<'_>) {
    logs.security(&SecurityEvent::FailedLogin {
        protocol: "SMTP",
        ip,
        reason,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            sender_domain_unknown(ip, "a@ghost.test", "ghost.test"),
            "Sender domain ghost.test not found in DNS, IP address 192.0.2.7, mail from <a@ghost.test> rejected"
        );
        assert_eq!(
            greylisted(ip, "", "b@example.com"),
            "Greylisting of IP address 192.0.2.7, mail from <> to <b@example.com> temporarily rejected"
        );
        assert_eq!(
            too_many_hops(ip, 5, "a@x.test"),
            "Limit of 5 Received headers (hops) from IP address 192.0.2.7 exceeded, mail from <a@x.test> rejected"
        );
    }
}
