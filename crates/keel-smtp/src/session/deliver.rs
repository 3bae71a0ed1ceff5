//! The end of a transaction: checks on the complete message, the domain footer, local
//! delivery (one blob for all local recipients), public folders and the queue; the `250`
//! only once everything is durable (DESIGN §3).

use keel_core::log::{MailLogEntry, MailService};
use keel_mail::{Delivery, DeliveryError};
use keel_store::{QueuedMessage, QueuedRecipient};

use super::footer::Footer;
use super::local_dsn::{LocalFailure, rcpt_of_user};
use super::{Session, Txn, blocking, internal};
use crate::codec::{BodyError, SmtpReply, count_received, replies};
use crate::{new_queue_id, queue, seclog};

impl Session {
    /// Checks the complete message and makes it durable (DESIGN §3).
    pub(super) async fn finish_message(
        &mut self,
        body: Result<Vec<u8>, BodyError>,
    ) -> Result<SmtpReply, SmtpReply> {
        let from = self.tx.as_ref().map(|t| t.from.clone()).unwrap_or_default();
        let body = match body {
            Ok(b) => b,
            Err(BodyError::TooBig) => {
                // guide §25.4 / §12.2 message size limit.
                let line = seclog::too_big(self.ip, self.settings.max_message_size, &from);
                seclog::write(&self.ctx().logs, &line);
                return Err(replies::TOO_BIG);
            }
            Err(BodyError::LineTooLong) => return Err(replies::BODY_LINE_TOO_LONG),
        };
        // guide §12.2: maximum number of Received headers (hops), RFC 5321 §6.3.
        let max_hops = self.settings.max_received_headers;
        if max_hops > 0 && count_received(&body) > max_hops as usize {
            let line = seclog::too_many_hops(self.ip, max_hops, &from);
            seclog::write(&self.ctx().logs, &line);
            return Err(replies::TOO_MANY_HOPS);
        }
        if let Some(limit) = self.outgoing_limit().await?
            && body.len() as u64 > limit
        {
            return Err(self.outgoing_too_big(limit, &from));
        }
        // DESIGN §3: spam scoring before the 250; a block is a 5xx, never a bounce.
        let verdict = match &self.tx {
            Some(tx) => self.spam_scan(tx, &body).await?,
            None => return Err(replies::BAD_SEQUENCE),
        };
        let body = match &verdict {
            Some(v) => v.apply(&body),
            None => body,
        };
        // guide §13.1, §13.4: tagged spam goes to each recipient's Junk folder (its name
        // is the recipient's or its domain's, keel-mail special.rs).
        let junk = verdict.as_ref().is_some_and(|v| v.file_in_junk());
        // guide §14.5, ch. 14: attachment filter, then antivirus, before the 250.
        let body = match &self.tx {
            Some(tx) => self.content_scan(tx, body).await?,
            None => return Err(replies::BAD_SEQUENCE),
        };
        let Some(tx) = self.tx.take() else {
            return Err(replies::BAD_SEQUENCE);
        };
        // guide §7.3: the sender's domain footer, once, for every copy.
        let body = match self.sender_footer(&tx).await? {
            Some(footer) => blocking(move || footer.apply(&body).unwrap_or(body)).await?,
            None => body,
        };
        let now = self.now();
        let qid = new_queue_id(now);
        let single = (tx.rcpts.len() == 1).then(|| tx.rcpts[0].address.clone());
        let received = self.received_header(&qid, single.as_deref());
        let return_path = Self::return_path_header(&tx.from);

        // Local delivery: ONE deliver call and ONE blob for every local recipient, unless
        // X-Envelope-To asks for one copy per RCPT (crate notes).
        let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
        if self.settings.insert_x_envelope_to {
            for r in &tx.rcpts {
                if !r.local_users.is_empty() {
                    groups.push((Some(r.address.clone()), r.local_users.clone()));
                }
            }
        } else {
            let all: Vec<String> = tx
                .rcpts
                .iter()
                .flat_map(|r| r.local_users.iter().cloned())
                .collect();
            if !all.is_empty() {
                groups.push((None, all));
            }
        }
        let mut delivered = 0usize;
        let mut quota_failures = 0usize;
        // (RCPT index, why) of local deliveries that failed after DATA (`local_dsn`).
        let mut failures: Vec<(usize, LocalFailure)> = Vec::new();
        for (env_to, users) in groups {
            let mut raw = Vec::with_capacity(body.len() + 512);
            raw.extend_from_slice(return_path.as_bytes());
            raw.extend_from_slice(received.as_bytes());
            if let Some(t) = &env_to {
                raw.extend_from_slice(Self::envelope_to_header(t).as_bytes());
            }
            raw.extend_from_slice(&body);
            let mb = self.ctx().mailboxes.clone();
            let delivery = Delivery {
                raw,
                recipients: users,
                internal_date: now,
            };
            let outcomes = blocking(move || {
                if junk {
                    mb.deliver_to_special(&delivery, keel_mail::SpecialUse::Junk)
                } else {
                    mb.deliver(&delivery)
                }
            })
            .await?
            .map_err(|e| internal("local delivery", e))?;
            for o in outcomes {
                match o.result {
                    Ok(_) => delivered += 1,
                    Err(DeliveryError::QuotaExceeded { .. }) => {
                        quota_failures += 1;
                        if let Some(i) = rcpt_of_user(&tx.rcpts, &o.user) {
                            failures.push((i, LocalFailure::Quota));
                        }
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: {} over quota after DATA; not delivered",
                            o.user
                        ));
                    }
                    Err(e) => {
                        if let Some(i) = rcpt_of_user(&tx.rcpts, &o.user) {
                            failures.push((i, LocalFailure::Other));
                        }
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: delivery to {} failed: {e}",
                            o.user
                        ));
                    }
                }
            }
        }
        // Public folders (guide §12.3 `#public/Folder`).
        for (ri, r) in tx.rcpts.iter().enumerate() {
            for (domain, path) in &r.public {
                let mut raw = Vec::with_capacity(body.len() + 512);
                raw.extend_from_slice(return_path.as_bytes());
                raw.extend_from_slice(received.as_bytes());
                raw.extend_from_slice(&body);
                let mb = self.ctx().mailboxes.clone();
                let d = domain.clone();
                let p = path.clone();
                let res = blocking(move || {
                    // Per domain or global, as the directory says (guide §26.1.1).
                    let owner = mb.public_owner_of_domain(&d)?;
                    if mb.folder(&owner, &p)?.is_none() {
                        mb.create_folder(&owner, &p)?;
                    }
                    mb.append(&owner, &p, &raw, &[], now)
                })
                .await?;
                match res {
                    Ok(_) => delivered += 1,
                    Err(e) => {
                        failures.push((ri, LocalFailure::Other));
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: delivery to public folder {path} failed: {e}"
                        ));
                    }
                }
            }
        }
        let remote: Vec<QueuedRecipient> = tx
            .rcpts
            .iter()
            .flat_map(|r| {
                r.remote.iter().map(|(addr, route)| {
                    let mut q = QueuedRecipient::new(addr.clone());
                    q.notify = r.notify.clone();
                    q.orcpt = r.orcpt.clone();
                    q.route = route.clone();
                    q
                })
            })
            .collect();
        if delivered == 0 && remote.is_empty() {
            return Err(if quota_failures > 0 {
                replies::MAILBOX_FULL_TEMP
            } else {
                replies::LOCAL_ERROR.server()
            });
        }
        if !remote.is_empty() {
            // DESIGN §3: blob durable first, then the queue row in one transaction.
            // The queued copy of an authenticated sender's mail is DKIM-signed (RFC 6376).
            let signature = self.dkim_signature(&body).await;
            let mut raw = Vec::with_capacity(body.len() + 512);
            raw.extend_from_slice(signature.as_bytes());
            raw.extend_from_slice(received.as_bytes());
            raw.extend_from_slice(&body);
            let blobs = self.ctx().blobs.clone();
            let meta = self.ctx().meta.clone();
            let msg_id = qid.clone();
            let from = tx.from.clone();
            let (envid, ret) = (tx.envid.clone(), tx.ret.clone());
            // Recipients held for ETRN go into messages of their own, one per domain,
            // never due until released (`crate::queue` notes); they share the blob.
            let (held, normal): (Vec<_>, Vec<_>) = remote.into_iter().partition(queue::is_held);
            let mut parts: Vec<(String, i64, Vec<QueuedRecipient>)> = Vec::new();
            if !normal.is_empty() {
                parts.push((msg_id, now, normal));
            }
            let mut by_domain: std::collections::BTreeMap<String, Vec<QueuedRecipient>> =
                std::collections::BTreeMap::new();
            for r in held {
                let d = r
                    .address
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                by_domain.entry(d).or_default().push(r);
            }
            for (i, rcpts) in by_domain.into_values().enumerate() {
                let id = if parts.is_empty() && i == 0 {
                    qid.clone()
                } else {
                    new_queue_id(now)
                };
                parts.push((id, queue::HELD_UNTIL, rcpts));
            }
            let ids: Vec<String> = parts.iter().map(|p| p.0.clone()).collect();
            blocking(move || -> keel_store::StoreResult<()> {
                let size = raw.len() as u64;
                let blob = blobs.put(&raw)?;
                for (id, next_attempt, recipients) in parts {
                    meta.enqueue(&QueuedMessage {
                        id,
                        sender: from.clone(),
                        envid: envid.clone(),
                        ret: ret.clone(),
                        size,
                        blob: blob.clone(),
                        created: now,
                        next_attempt,
                        recipients,
                    })?;
                }
                Ok(())
            })
            .await?
            .map_err(|e| internal("enqueue", e))?;
            if ids.len() > 1 {
                tracing::debug!("smtp: queue id {qid} queued as {}", ids.join(", "));
            }
            if let Some(waker) = &self.ctx().queue_waker {
                waker.wake();
            }
        }
        if !failures.is_empty() {
            // RFC 3464: one failure report for what failed locally; sent once
            // everything else is durable, just before the 250 (`local_dsn`).
            let mut original = Vec::with_capacity(body.len() + 512);
            original.extend_from_slice(received.as_bytes());
            original.extend_from_slice(&body);
            keel_core::stats::add(
                keel_core::stats::Counter::DeliveryFailed,
                failures.len() as u64,
            );
            self.report_local_failures(&tx, &qid, &failures, &original, now)
                .await;
        }
        // guide §12.2 messages per hour: counted on every node while the limit is on.
        let per_hour = self.settings.max_messages_per_hour_per_ip;
        let (limits, ip) = (self.sh.limits.clone(), self.ip);
        if per_hour > 0 && !self.exempt {
            let meta = self.ctx().meta.clone();
            blocking(move || limits.message_accepted(Some(&*meta), ip, now, per_hour)).await?;
        } else {
            limits.message_accepted(None, ip, now, per_hour);
        }
        let to: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
        // guide §25.3: one Recv line per accepted message.
        let mut entry = MailLogEntry::recv(
            qid.clone(),
            MailService::Smtp,
            tx.from.clone(),
            to,
            body.len() as u64,
        )
        .sender_host(self.ip)
        .ssl(self.tls);
        if let Some(a) = &self.auth {
            entry = entry.user(a.user.clone());
        }
        self.ctx().logs.mail(&entry);
        keel_core::stats::bump(keel_core::stats::Counter::MessagesReceived);
        keel_core::stats::add(
            keel_core::stats::Counter::DeliveredLocal,
            u64::from(delivered > 0),
        );
        Ok(SmtpReply::new(250, "2.0.0", "").with_text(format!("Message accepted, queue id {qid}")))
    }

    /// The footer of the sender's domain (guide §7.3) when it applies to this
    /// transaction: the sender is an authenticated user of the domain, or a relay-allowed
    /// client whose MAIL FROM is in the domain; not when every recipient is internal and
    /// the domain says so. Lookup failures only skip the footer (logged).
    async fn sender_footer(&self, tx: &Txn) -> Result<Option<Footer>, SmtpReply> {
        let domain = match &self.auth {
            Some(a) => Some(a.domain.clone()),
            None => match tx.from.rsplit_once('@') {
                Some((_, d)) if self.relay_allowed().await? => {
                    let dir = self.ctx().directory.clone();
                    let d = d.to_owned();
                    blocking(move || dir.local_domain(&d))
                        .await?
                        .unwrap_or_else(|e| {
                            tracing::warn!("smtp footer: local domain lookup: {e}");
                            None
                        })
                }
                _ => None,
            },
        };
        let Some(domain) = domain else {
            return Ok(None);
        };
        let dir = self.ctx().directory.clone();
        let dom = match blocking(move || dir.get_domain(&domain)).await? {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("smtp footer: domain lookup: {e}");
                return Ok(None);
            }
        };
        Ok(Footer::from_settings(&dom.settings)
            .filter(|f| !(f.skip_internal && tx.rcpts.iter().all(|r| r.internal))))
    }
}
