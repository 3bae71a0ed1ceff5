//! ETRN (RFC 1985, guide §12.5 server side, §7.10 backup MX): a client asks the server to
//! start delivering the mail it holds for a domain.
//!
//! Implementation notes:
//! - Who may: SMTP-authenticated clients and the relay IP group; everyone when
//!   `etrn_anyone` is on (off by default). Others get `459 4.7.1` (RFC 1985 §5 "Node not
//!   allowed"). ETRN needs a prior EHLO/HELO (503 otherwise).
//! - Arguments (RFC 1985 §3): `domain` flushes recipients in exactly that domain;
//!   `@domain` also its subdomains; `#name` names a queue, and Keel's queues are named by
//!   domain, so `#domain` is treated like `domain`. A name that is not a domain → 501.
//! - "Flush" means every queued message with a pending recipient in that domain becomes
//!   due now (as `keel queue retry` does) and the queue runner is woken; the reply does
//!   not wait for delivery (RFC 1985 §4: ETRN is asynchronous). Replies (RFC 1985 §5):
//!   `250 2.0.0 Queuing for node <x> started`, `251 2.0.0 No messages waiting for node
//!   <x>` (RFC 1985 §5 gives 251, not 458, for an empty queue), `458 4.3.0 Unable to
//!   queue messages for node <x>` on a store error.
//! - Limitation: held mail (domain forwarding in the "offline, triggered by ETRN" mode of
//!   §7.10) is not held yet: the queue retries it on its normal schedule, ETRN only makes
//!   it due at once. Sending ETRN to remote servers (§12.5 client side) is not done here.

use keel_store::MetaStore;

use super::{Session, blocking};
use crate::codec::{SmtpReply, replies};

impl Session {
    pub(super) async fn etrn(&mut self, arg: &str) -> Result<SmtpReply, SmtpReply> {
        if self.helo.is_none() {
            return Err(replies::BAD_SEQUENCE);
        }
        let Some((node, subdomains)) = parse_node(arg) else {
            // RFC 1985 §5: 501 Syntax Error in Parameters.
            return Err(replies::SYNTAX.with_text("Syntax: ETRN [@|#]domain"));
        };
        if !(self.settings.etrn_anyone || self.trusted_client()) {
            // RFC 1985 §5: 459 Node <x> not allowed: <reason>.
            return Err(SmtpReply::new(459, "4.7.1", "")
                .with_text(format!("Node {node} not allowed: authentication required")));
        }
        let meta = self.ctx().meta.clone();
        let now = self.now();
        let n = node.clone();
        let found = blocking(move || flush(&*meta, &n, subdomains, now)).await?;
        match found {
            Err(e) => {
                tracing::warn!("smtp: ETRN {node}: {e}");
                Err(SmtpReply::new(458, "4.3.0", "")
                    .with_text(format!("Unable to queue messages for node {node}")))
            }
            Ok(0) => Ok(SmtpReply::new(251, "2.0.0", "")
                .with_text(format!("No messages waiting for node {node}"))),
            Ok(count) => {
                if let Some(w) = &self.ctx().queue_waker {
                    w.wake();
                }
                tracing::info!("smtp {}: ETRN {node}: {count} message(s) due now", self.ip);
                Ok(SmtpReply::new(250, "2.0.0", "")
                    .with_text(format!("Queuing for node {node} started")))
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

fn matches(address: &str, node: &str, subdomains: bool) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    domain == node || (subdomains && domain.ends_with(&format!(".{node}")))
}

/// Makes every queued message with a pending recipient in `node` due at `now`; returns
/// how many (blocking).
fn flush(
    meta: &dyn MetaStore,
    node: &str,
    subdomains: bool,
    now: i64,
) -> keel_store::StoreResult<usize> {
    let mut n = 0;
    for m in meta.queued_messages()? {
        let pending = m
            .recipients
            .iter()
            .any(|r| !r.state.is_final() && matches(&r.address, node, subdomains));
        if pending {
            // A message already due keeps its time; it still counts as started.
            if m.next_attempt <= now || meta.set_queue_next_attempt(&m.id, now)? {
                n += 1;
            }
        }
    }
    Ok(n)
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
