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
//! - Tagged mail is filed into each local recipient's `Junk E-mail` folder when the
//!   antispam `junk_folder` setting is on (guide §13.1, §13.4); the Bayes classifier
//!   (`keel_filter::bayes`) is one of the content tests once it is active.
//! - DKIM keys are generated on demand per domain (`dkim_key/<domain>`); the signing
//!   domain is the `From:` header's domain when it is a local domain (DMARC alignment,
//!   RFC 7489 §3.1), else the authenticated user's domain. A signing failure is logged and
//!   the message goes unsigned.

use keel_core::log::SecurityEvent;
use keel_directory::{Resolution, Target};
use keel_filter::{
    Action, Bayes, ContentFilter, Rejection, ScanInput, Scorer, SpamSettings, Verdict,
    dkim_key_for_signing, load_antivirus_settings, load_spam_settings,
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
        let meta = self.ctx().meta.clone();
        // The structural limits are the content checks' settings (antivirus document).
        let limits = blocking(move || load_antivirus_settings(&*meta))
            .await?
            .map_err(|e| internal("antivirus settings", e))?
            .message_limits;
        let bayes = Bayes::new(self.ctx().meta.clone());
        Scorer::new(settings, self.groups.clone(), &self.hostname)
            .map(|s| {
                s.with_logs(self.ctx().logs.clone())
                    .with_bayes(bayes)
                    .with_limits(limits)
            })
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
                sender_allowed: !tx.rcpts.is_empty() && tx.rcpts.iter().all(|r| r.sender_allowed),
            })
            .await;
        tracing::debug!(
            "smtp {}: spam score {:.1} {:?} {:?}",
            self.ip,
            verdict.score,
            verdict.tests,
            verdict.action
        );
        keel_core::stats::spam_verdict(
            verdict.rated && !verdict.whitelisted,
            matches!(verdict.action, Action::Tag),
            matches!(verdict.action, Action::Reject(_) | Action::Quarantine(_)),
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

    /// The attachment filter (guide §14.5) and the antivirus (guide ch. 14) at the end
    /// of DATA, after the spam rating (DESIGN §3). Returns the message to deliver.
    /// requirements-2 §14.2 fail-closed: when clamd is unavailable the reply is
    /// `451 4.3.0` and an Error-log line is written; nothing passes unscanned. A virus
    /// with the discard action is refused with `554 5.7.1` (no bounce). Copies go to the
    /// forward addresses; the sender is warned only when authenticated or local.
    pub(super) async fn content_scan(&self, tx: &Txn, body: Vec<u8>) -> Result<Vec<u8>, SmtpReply> {
        let meta = self.ctx().meta.clone();
        let settings = blocking(move || load_antivirus_settings(&*meta))
            .await?
            .map_err(|e| internal("antivirus settings", e))?;
        let filter = ContentFilter::new(settings);
        if !filter.active() {
            return Ok(body);
        }
        let rcpts: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
        let v = match filter.check(&body).await {
            Ok(v) => v,
            Err(e) => {
                self.ctx().logs.error(&format!(
                    "Antivirus control is not functional, message from <{}> not accepted: {e}",
                    tx.from
                ));
                return Err(SmtpReply::new(451, "4.3.0", "")
                    .with_text("Antivirus check temporarily unavailable, try again later"));
            }
        };
        let (av, found) = (filter.settings().enabled, v.viruses.len());
        keel_core::stats::content_scanned(av, v.attachments_checked, found, v.blocked.len());
        if !v.found() {
            return Ok(v.message);
        }
        let logs = &self.ctx().logs;
        for virus in &v.viruses {
            // guide §25.4 "Found virus in mail from <a> to <b>: name".
            logs.security(&SecurityEvent::VirusFound {
                from: &tx.from,
                to: &rcpts,
                virus,
            });
        }
        for b in &v.blocked {
            logs.security(&SecurityEvent::ForbiddenAttachment {
                from: &tx.from,
                to: &rcpts,
                name: &b.name,
                mime_type: &b.mime,
            });
        }
        let s = filter.settings();
        let infected = !v.viruses.is_empty();
        let (orig_to, filtered_to) = if infected {
            (s.forward_original.clone(), s.forward_filtered.clone())
        } else {
            (
                s.attachments.forward_original.clone(),
                s.attachments.forward_filtered.clone(),
            )
        };
        if let Some(a) = orig_to.filter(|a| !a.is_empty()) {
            self.file_quarantine_copy(&tx.from, &a, body.clone()).await;
        }
        if !v.reject
            && let Some(a) = filtered_to.filter(|a| !a.is_empty())
        {
            self.file_quarantine_copy(&tx.from, &a, v.message.clone())
                .await;
        }
        let warn = if infected {
            s.notify_sender
        } else {
            s.attachments.warn_sender
        };
        if warn && !tx.from.is_empty() && self.sender_is_local(&tx.from).await {
            let what: Vec<String> = v
                .viruses
                .iter()
                .map(|n| format!("virus {n}"))
                .chain(
                    v.blocked
                        .iter()
                        .map(|b| format!("attachment \"{}\"", b.name)),
                )
                .collect();
            let note = format!(
                "From: Mail Server <postmaster@{host}>\r\nTo: <{to}>\r\n\
Subject: Your message to {rcpt} was filtered\r\nAuto-Submitted: auto-replied\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nYour message contained: {list}.\r\n{fate}\r\n",
                host = self.hostname,
                to = tx.from,
                rcpt = rcpts.join(", "),
                list = what.join(", "),
                fate = if v.reject {
                    "It was not delivered."
                } else {
                    "It was delivered without these parts."
                },
            );
            self.file_quarantine_copy("", &tx.from, note.into_bytes())
                .await;
        }
        if v.reject {
            return Err(
                SmtpReply::new(554, "5.7.1", "").with_text("Message refused: it contains a virus")
            );
        }
        Ok(v.message)
    }

    /// Authenticated, or MAIL FROM in a local domain (no backscatter, requirements-2
    /// §14.5).
    async fn sender_is_local(&self, from: &str) -> bool {
        if self.auth.is_some() {
            return true;
        }
        let Some((_, d)) = from.rsplit_once('@') else {
            return false;
        };
        let dir = self.ctx().directory.clone();
        let d = d.to_owned();
        matches!(
            blocking(move || dir.local_domain(&d)).await,
            Ok(Ok(Some(_)))
        )
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
