//! The failure report (RFC 3464) for local deliveries that failed after the message was
//! accepted with `250` (issue 3 item 4).
//!
//! Implementation notes:
//! - Only failures that could not have been refused at RCPT produce a report: the quota
//!   is checked at RCPT (452), so a mailbox that overflows only with this message's size,
//!   a store error for one mailbox or a public folder that cannot be written are the
//!   cases. Everything rejectable at RCPT is rejected there (no backscatter), and a
//!   transaction whose every recipient fails is refused at the end of DATA instead.
//! - Local delivery is not retried (there is no local queue), so each such failure is
//!   permanent: `5.2.2` mailbox full (RFC 3463 §3.3), `5.3.0` otherwise (§3.4).
//! - One report per transaction listing every failed RCPT once; `Final-Recipient` is the
//!   address as the client gave it in RCPT, not the expanded mailbox, so group and alias
//!   members are not revealed. The diagnostic is a fixed text for the same reason.
//! - No report to the null sender (RFC 5321 §4.5.5, RFC 3461 §6.2) nor for a recipient
//!   whose NOTIFY does not include FAILURE (NEVER included, RFC 3461 §4.1).
//! - The report is stored or queued through the runner's dispatch (`Recv … Service: DSN`
//!   mail-log line); a failure to build or store it is logged, the `250` stands.

use super::{Rcpt, Session, Txn};
use crate::dsn::{self, DsnAction, DsnKind, DsnRecipient, DsnRequest};
use crate::outbound::{ReportSink, dispatch_report};

/// Why a local delivery failed after DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalFailure {
    /// The mailbox would exceed its quota with this message.
    Quota,
    /// Any other error (store, public folder).
    Other,
}

impl LocalFailure {
    fn status(self) -> &'static str {
        match self {
            Self::Quota => "5.2.2",
            Self::Other => "5.3.0",
        }
    }
    fn diagnostic(self) -> &'static str {
        match self {
            Self::Quota => "552 5.2.2 Mailbox full",
            Self::Other => "554 5.3.0 The message could not be stored in the mailbox",
        }
    }
}

/// The RCPT a failed local mailbox came from (the first that expanded to it).
pub(super) fn rcpt_of_user(rcpts: &[Rcpt], user: &str) -> Option<usize> {
    rcpts
        .iter()
        .position(|r| r.local_users.iter().any(|u| u == user))
}

impl Session {
    /// Sends one failure report for `failures` (RCPT index, reason), if wanted.
    pub(super) async fn report_local_failures(
        &self,
        tx: &Txn,
        queue_id: &str,
        failures: &[(usize, LocalFailure)],
        original: &[u8],
        now: i64,
    ) {
        if tx.from.is_empty() {
            return; // RFC 5321 §4.5.5: never a report to the null sender.
        }
        let mut seen = Vec::new();
        let mut recipients = Vec::new();
        for &(i, why) in failures {
            let Some(r) = tx.rcpts.get(i) else { continue };
            if seen.contains(&i) || !dsn::wants(r.notify.as_deref(), DsnKind::Failed) {
                continue;
            }
            seen.push(i);
            recipients.push(DsnRecipient {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                action: DsnAction::Failed,
                status: why.status().to_owned(),
                remote_mta: None,
                diagnostic: Some(why.diagnostic().to_owned()),
            });
        }
        if recipients.is_empty() {
            return;
        }
        let templates = self.settings.dsn_texts();
        let bytes = dsn::build(&DsnRequest {
            kind: DsnKind::Failed,
            hostname: &self.hostname,
            queue_id,
            sender: &tx.from,
            envid: tx.envid.as_deref(),
            ret: tx.ret.as_deref(),
            original,
            arrival: now,
            now,
            retry_until: None,
            language: &self.settings.dsn_language,
            templates: &templates,
            recipients,
        });
        let ctx = self.ctx();
        let sink = ReportSink {
            meta: ctx.meta.clone(),
            blobs: ctx.blobs.clone(),
            mailboxes: ctx.mailboxes.clone(),
            logs: ctx.logs.clone(),
        };
        match dispatch_report(&sink, DsnKind::Failed, &tx.from, bytes, now, None).await {
            Ok(true) => {
                if let Some(w) = &ctx.queue_waker {
                    w.wake();
                }
            }
            Ok(false) => {}
            Err(e) => ctx.logs.error(&format!(
                "Queue-ID {queue_id}: failure report to {} not sent: {e}",
                tx.from
            )),
        }
    }
}
