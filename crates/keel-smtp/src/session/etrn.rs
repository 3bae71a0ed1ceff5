//! ETRN (RFC 1985, guide §12.5 server side, §7.10 backup MX): a client asks the server to
//! start delivering the mail it holds for a domain.
//!
//! Implementation notes:
//! - Who may: SMTP-authenticated clients, the relay IP group and the `etrn_ip_group`
//!   (the primary server collecting its mail); everyone when `etrn_anyone` is on (off by
//!   default). Others get `459 4.7.1` (RFC 1985 §5 `Node <x> not allowed: <reason>`).
//!   ETRN needs a prior EHLO/HELO (503 otherwise).
//! - Arguments (RFC 1985 §3): `domain` flushes recipients in exactly that domain;
//!   `@domain` also its subdomains; `#name` names a queue, and Keel's queues are named by
//!   domain, so `#domain` is treated like `domain`. A name that is not a domain → 501.
//! - "Flush" means every queued message with a pending recipient in that domain becomes
//!   due now — mail held for ETRN (domain forwarding "offline, triggered by ETRN", guide
//!   §7.10; `crate::queue` notes) and mail waiting for its next retry alike — and the
//!   queue runner is woken. Held mail then goes to the domain's configured forward host
//!   (the "host the remote server named" in the domain settings), not to the ETRN client's
//!   address. The reply does not wait for delivery (RFC 1985 §4: ETRN is asynchronous).
//! - Replies (RFC 1985 §5): `253 2.0.0 OK, <n> pending messages for node <x> started`
//!   (Keel always knows the count, so it never needs the vaguer 250 or 252);
//!   `251 2.0.0 OK, no messages waiting for node <x>` for a node Keel serves (a domain it
//!   forwards, in any mode) with nothing queued; `458 4.3.0 Unable to queue messages for
//!   node <x>` for a node Keel neither forwards nor has queued mail for (as Postfix does
//!   for domains outside its flush list) and on a store error; `459` as above.

use keel_directory::Directory;
use keel_store::MetaStore;

use super::{Session, blocking};
use crate::codec::{SmtpReply, replies};
use crate::queue;

/// What one ETRN found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flushed {
    /// This many messages are due now.
    Started(usize),
    /// Keel serves the node but nothing is queued.
    Nothing,
    /// Keel does not hold mail for the node.
    Unknown,
}

impl Session {
    pub(super) async fn etrn(&mut self, arg: &str) -> Result<SmtpReply, SmtpReply> {
        if self.helo.is_none() {
            return Err(replies::BAD_SEQUENCE);
        }
        let Some((node, subdomains)) = parse_node(arg) else {
            // RFC 1985 §5: 501 Syntax Error in Parameters.
            return Err(replies::SYNTAX.with_text("Syntax: ETRN [@|#]domain"));
        };
        let group_ok = self
            .settings
            .etrn_ip_group
            .as_deref()
            .is_some_and(|g| self.groups.contains(g, self.ip));
        if !(self.settings.etrn_anyone || group_ok || self.trusted_client()) {
            // RFC 1985 §5: 459 Node <x> not allowed: <reason>.
            return Err(SmtpReply::new(459, "4.7.1", "")
                .with_text(format!("Node {node} not allowed: authentication required")));
        }
        let meta = self.ctx().meta.clone();
        let dir = self.ctx().directory.clone();
        let now = self.now();
        let n = node.clone();
        let found = blocking(move || flush(&*meta, &dir, &n, subdomains, now)).await?;
        let unable = || {
            SmtpReply::new(458, "4.3.0", "")
                .with_text(format!("Unable to queue messages for node {node}"))
        };
        match found {
            Err(e) => {
                tracing::warn!("smtp: ETRN {node}: {e}");
                Err(unable())
            }
            Ok(Flushed::Unknown) => Err(unable()),
            Ok(Flushed::Nothing) => Ok(SmtpReply::new(251, "2.0.0", "")
                .with_text(format!("OK, no messages waiting for node {node}"))),
            Ok(Flushed::Started(count)) => {
                if let Some(w) = &self.ctx().queue_waker {
                    w.wake();
                }
                tracing::info!("smtp {}: ETRN {node}: {count} message(s) due now", self.ip);
                Ok(SmtpReply::new(253, "2.0.0", "").with_text(format!(
                    "OK, {count} pending messages for node {node} started"
                )))
            }
        }
    }
}

/// RFC 1985 §3: `[@|#]domain` → (lower-case domain, include subdomains).
fn parse_node(arg: &str) -> Option<(String, bool)> {
    let arg = arg.trim();
    let (name, subdomains) = match arg.as_bytes().first() {
        Some(b'@') => (&arg[1..], true),
        Some(b'#') => (&arg[1..], false),
        _ => (arg, false),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some((name, subdomains))
}

fn domain_matches(domain: &str, node: &str, subdomains: bool) -> bool {
    let domain = domain.to_ascii_lowercase();
    domain == node || (subdomains && domain.ends_with(&format!(".{node}")))
}

fn matches(address: &str, node: &str, subdomains: bool) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain_matches(domain, node, subdomains))
}

/// Makes every queued message with a pending recipient in `node` due at `now`
/// (blocking).
fn flush(
    meta: &dyn MetaStore,
    dir: &Directory,
    node: &str,
    subdomains: bool,
    now: i64,
) -> Result<Flushed, String> {
    let mut n = 0;
    for m in meta.queued_messages().map_err(|e| e.to_string())? {
        let pending = m
            .recipients
            .iter()
            .any(|r| !r.state.is_final() && matches(&r.address, node, subdomains));
        if pending {
            // A message already due keeps its time; it still counts as started. A held
            // message is released (`crate::queue` notes).
            let released = m.next_attempt <= now
                || meta
                    .set_queue_next_attempt(&m.id, now)
                    .map_err(|e| e.to_string())?;
            if released {
                n += 1;
                if queue::is_held_message(&m) {
                    tracing::info!("ETRN {node}: releasing held message {}", m.id);
                }
            }
        }
    }
    if n > 0 {
        return Ok(Flushed::Started(n));
    }
    let served = dir
        .list_domains()
        .map_err(|e| e.to_string())?
        .iter()
        .any(|d| d.forwarding.is_some() && domain_matches(&d.name, node, subdomains));
    Ok(if served {
        Flushed::Nothing
    } else {
        Flushed::Unknown
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_forms() {
        assert_eq!(
            parse_node("Example.COM"),
            Some(("example.com".into(), false))
        );
        assert_eq!(
            parse_node("@example.com"),
            Some(("example.com".into(), true))
        );
        assert_eq!(
            parse_node("#example.com"),
            Some(("example.com".into(), false))
        );
        for bad in ["", "@", "a..b", "-a.b", "a b", "x@y"] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
        assert!(matches("u@Backup.test", "backup.test", false));
        assert!(!matches("u@a.backup.test", "backup.test", false));
        assert!(matches("u@a.backup.test", "backup.test", true));
        assert!(!matches("u@xbackup.test", "backup.test", true));
    }
}
