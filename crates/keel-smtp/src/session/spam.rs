//! The content filter in the session (DESIGN §3, issue 6): envelope custom rules and the
//! SPF block at MAIL/RCPT, the spam score at the end of DATA (a reject is a 5xx before the
//! `250`, never a bounce), the optional quarantine copy of blocked mail, and DKIM signing
//! of the queued copy of mail from authenticated senders.
//!
//! Implementation notes:
//! - The antispam settings (`server_setting/antispam`, [`keel_filter::SpamSettings`])
//!   are read from the store at each check, so a change applies at once without a
//!   restart. The filter's resolver is built once per nameserver choice and shared.
//! - "Trusted" is the relay IP group of the SMTP settings (requirements-1 §0.2: one group,
//!   several jobs): it skips SPF and, like authentication, the rating.
//! - The quarantine copy (guide §13.1) carries the `X-Spam-*` results; it is delivered
//!   locally when the address is local, queued otherwise. A failure to file it is logged
//!   and does not change the reply.
//! - DKIM keys are generated on demand per domain (`dkim_key/<domain>`); the signing
//!   domain is the `From:` header's domain when it is a local domain (DMARC alignment,
//!   RFC 7489 §3.1), else the authenticated user's domain. A signing failure is logged and
//!   the message goes unsigned.

use keel_directory::{Resolution, Target};
use keel_filter::{
    Action, Rejection, ScanInput, Scorer, SpamSettings, Verdict, dkim_key_for_signing,
    load_spam_settings,
};
use keel_mail::Delivery;
use keel_store::{QueuedMessage, QueuedRecipient};

use super::{Session, Txn, blocking, internal};
use crate::codec::SmtpReply;
use crate::new_queue_id;

fn reply(r: Rejection) -> SmtpReply {
    SmtpReply::new(r.code, r.enhanced, "").with_text(r.text)
}

impl Session {
    async fn spam_settings(&self) -> Result<SpamSettings, SmtpReply> {
        let meta = self.ctx().meta.clone();
        blocking(move || load_spam_settings(&*meta))
            .await?
            .map_err(|e| internal("antispam settings", e))
    }

    async fn scorer(&self) -> Result<Scorer, SmtpReply> {
        let settings = self.spam_settings().await?;
        Scorer::new(settings, self.groups.clone(), &self.hostname)
            .map(|s| s.with_logs(self.ctx().logs.clone()))
            .map_err(|e| internal("content filter", e))
    }

    /// Clients of the trusted relay group (guide §12.2, §13.5).
    fn trusted(&self) -> bool {
        self.settings
            .relay_ip_group
            .as_deref()
            .is_some_and(|g| self.groups.contains(g, self.ip))
    }

    /// MAIL: envelope From rules (553, guide §13.3) and SPF set to block (guide §13.5).
    pub(super) async fn spam_check_mail(&self, from: &str) -> Result<(), SmtpReply> {
        let scorer = self.scorer().await?;
        let (authed, trusted) = (self.auth.is_some(), self.trusted());
        scorer
            .check_mail_from(from, authed, trusted)
            .map_err(reply)?;
        if !authed {
            let helo = self.helo.clone().unwrap_or_default();
            scorer
                .check_spf_at_mail(self.ip, &helo, from, trusted)
                .await
                .map_err(reply)?;
        }
        Ok(())
    }

    /// RCPT: envelope From/To rules (553, guide §13.3).
    pub(super) async fn spam_check_rcpt(&self, from: &str, rcpt: &str) -> Result<(), SmtpReply> {
        let scorer = self.scorer().await?;
        scorer
            .check_rcpt(from, rcpt, self.auth.is_some(), self.trusted())
            .map_err(reply)
    }

    /// End of DATA: rates the message. `Ok(None)` = not rated (authenticated or trusted);
    /// a reject is returned as the 5xx reply after the quarantine copy was filed.
    pub(super) async fn spam_scan(
        &self,
        tx: &Txn,
        body: &[u8],
    ) -> Result<Option<Verdict>, SmtpReply> {
        let scorer = self.scorer().await?;
        let rcpts: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
        let helo = self.helo.clone().unwrap_or_default();
        let verdict = scorer
            .score(&ScanInput {
                client_ip: self.ip,
                helo: &helo,
                mail_from: &tx.from,
                rcpts: &rcpts,
                message: body,
                authenticated: self.auth.is_some(),
                trusted: self.trusted(),
            })
            .await;
        tracing::debug!(
            "smtp {}: spam score {:.1} {:?} {:?}",
            self.ip,
            verdict.score,
            verdict.tests,
            verdict.action
        );
        match &verdict.action {
            Action::Reject(r) => Err(reply(r.clone())),
            Action::Quarantine(r) => {
                if let Some(addr) = scorer.settings().quarantine_address.clone() {
                    let copy = verdict.apply(body);
                    self.file_quarantine_copy(&tx.from, &addr, copy).await;
                }
                Err(reply(r.clone()))
            }
            Action::Accept | Action::Tag if verdict.rated => Ok(Some(verdict)),
            Action::Accept | Action::Tag => Ok(None),
        }
    }

    /// guide §13.1 "Forward to quarantine address".
    async fn file_quarantine_copy(&self, from: &str, address: &str, copy: Vec<u8>) {
        let dir = self.ctx().directory.clone();
        let a = address.to_owned();
        let resolution = match blocking(move || dir.resolve_recipient(&a)).await {
            Ok(Ok(r)) => r,
            _ => {
                self.ctx()
                    .logs
                    .warning(&format!("quarantine address {address} cannot be resolved"));
                return;
            }
        };
        let now = self.now();
        let mut local = Vec::new();
        let mut remote = Vec::new();
        match resolution {
            Resolution::Deliver { targets, .. } => {
                for t in targets {
                    match t {
                        Target::LocalUser { user, .. } => local.push(user),
                        Target::External { address } | Target::Forwarded { address, .. } => {
                            remote.push(address)
                        }
                        Target::PublicFolder { .. } => {}
                    }
                }
            }
            Resolution::NotLocal => remote.push(address.to_owned()),
            Resolution::NotFound => {}
        }
        let mut raw = Self::return_path_header(from).into_bytes();
        raw.extend_from_slice(&copy);
        if !local.is_empty() {
            let mb = self.ctx().mailboxes.clone();
            let delivery = Delivery {
                raw: raw.clone(),
                recipients: local,
                internal_date: now,
            };
            if let Ok(Err(e)) = blocking(move || mb.deliver(&delivery)).await {
                self.ctx()
                    .logs
                    .warning(&format!("quarantine copy to {address} failed: {e}"));
            }
        }
        if !remote.is_empty() {
            let blobs = self.ctx().blobs.clone();
            let meta = self.ctx().meta.clone();
            let from = from.to_owned();
            let id = new_queue_id(now);
            let res = blocking(move || -> keel_store::StoreResult<()> {
                let blob = blobs.put(&copy)?;
                meta.enqueue(&QueuedMessage {
                    id,
                    sender: from,
                    envid: None,
                    ret: None,
                    size: copy.len() as u64,
                    blob,
                    created: now,
                    next_attempt: now,
                    recipients: remote.into_iter().map(QueuedRecipient::new).collect(),
                })
            })
            .await;
            if let Ok(Err(e)) = res {
                self.ctx()
                    .logs
                    .warning(&format!("quarantine copy to {address} not queued: {e}"));
            } else if let Some(w) = &self.ctx().queue_waker {
                w.wake();
            }
        }
    }

    /// The `DKIM-Signature:` field for the queued copy of mail from an authenticated
    /// sender (module notes), or an empty string.
    pub(super) async fn dkim_signature(&self, body: &[u8]) -> String {
        let Some(auth) = &self.auth else {
            return String::new();
        };
        let Ok(settings) = self.spam_settings().await else {
            return String::new();
        };
        if !settings.dkim_sign.enabled {
            return String::new();
        }
        let view = keel_filter::message::MessageView::new(body, 0);
        let from_domain = view
            .header("From")
            .and_then(|f| keel_filter::rules::addresses(&f).into_iter().next())
            .and_then(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()));
        let dir = self.ctx().directory.clone();
        let meta = self.ctx().meta.clone();
        let fallback = auth.domain.clone();
        let sign = settings.dkim_sign.clone();
        let now = self.now();
        let body = body.to_vec();
        let res = blocking(move || {
            let domain = match from_domain {
                Some(d) if matches!(dir.local_domain(&d), Ok(Some(_))) => d,
                _ => fallback,
            };
            dkim_key_for_signing(&*meta, &domain, &sign.selector, sign.algorithm, now)
                .and_then(|k| k.sign(&body))
        })
        .await;
        match res {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                self.ctx()
                    .logs
                    .warning(&format!("DKIM signing failed, sent unsigned: {e}"));
                String::new()
            }
            Err(_) => String::new(),
        }
    }
}
