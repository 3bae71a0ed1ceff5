//! MAIL (RFC 5321 §4.1.1.2) and RCPT (RFC 5321 §4.1.1.3): the per-IP limits of guide
//! §12.2, recipient resolution through the directory, quotas at RCPT and the relay
//! decision of [`super::relay`]; the sender-domain DNS check of guide §12.2 at MAIL and
//! greylisting (issue 6 item 6, RFC 6647) at RCPT.
//!
//! Implementation notes:
//! - Sender-domain check ("Block if sender's mail domain was not found in DNS", guide
//!   §12.2; requirements-1 §12.2 "check for MX, A or AAAA; on a temporary DNS failure
//!   reply 4xx"): MX first; when the domain has no MX (implicit MX, RFC 5321 §5.1) its
//!   A/AAAA records. A domain publishing a null MX (RFC 7505) exists, so it passes here.
//!   Trusted clients (authenticated, relay group, the limits' exempt group), the null
//!   sender, IP-literal domains and local domains are not checked. Without a resolver in
//!   the context the check is skipped.
//! - Greylisting runs after the recipient resolved (an unknown recipient still gets 550,
//!   counted for the harvest limit), once per RCPT; see [`crate::greylist`].
//! - Sender blacklists (issue 6 §2, `keel_filter::senderlists`: user over domain over
//!   server) are checked after the recipient resolved, for each local user it reaches (for
//!   a recipient without local users but in a local domain, for the RCPT address). When
//!   every one of them blocks the sender the RCPT gets `550 5.7.1`; when only some do,
//!   those users are dropped from the recipient (a group member's list does not refuse the
//!   group). Each block is a Spam-log line. A block needs no proof of the sender (a forged
//!   sender is refused all the same); the null sender is never listed. Whitelist entries
//!   (`Allow`) are acted on at the end of DATA, where the SPF/DMARC result shows whether
//!   the sender is genuine (`keel_filter::scorer`). Since one message gets one rating, a
//!   transaction carries recipients of one class only: a recipient whose users all
//!   whitelist the sender, or one whose users do not. A RCPT of the other class gets
//!   `452 4.5.3` (RFC 5321 §4.5.3.1.10: the client sends it in a further transaction,
//!   as it does for a recipient limit). Clients that are not rated are never split.

use keel_core::log::{SecurityEvent, SecurityLimit};
use keel_directory::{ForwardMode, Resolution, Target};
use keel_mail::QuotaStatus;

use super::{Rcpt, Session, Txn, blocking, internal};
use crate::SmtpKind;
use crate::codec::{SmtpReply, replies};
use crate::dns::{DnsError, MxTargets};
use crate::greylist::{self, Verdict};
use crate::queue;
use crate::seclog;

/// guide §12.2, RFC 3463 §3.2 X.1.8 "Bad sender's system address".
const SENDER_DOMAIN_UNKNOWN: SmtpReply =
    SmtpReply::new(550, "5.1.8", "Sender domain does not exist");
/// A temporary DNS failure during the sender-domain check: RFC 3463 §3.5 X.4.3
/// "Directory server failure".
const SENDER_DOMAIN_TEMPFAIL: SmtpReply = SmtpReply::new(
    451,
    "4.4.3",
    "Cannot verify the sender domain now, try again later",
);
/// A blacklisted sender (issue 6 §2): RFC 3463 §3.8 X.7.1 "delivery not authorized".
const SENDER_BLOCKED: SmtpReply =
    SmtpReply::new(550, "5.7.1", "Sender is blocked by the recipient's list");
/// RFC 6647 §2.1: a temporary failure; RFC 3463 §3.8 X.7.1 (delivery not authorized).
const GREYLISTED: SmtpReply = SmtpReply::new(451, "4.7.1", "Greylisted, try again later");

impl Session {
    pub(super) fn low_disk(&self) -> bool {
        let min = self.settings.min_free_disk_bytes;
        min > 0 && (self.ctx().data_dir_free_space)().is_some_and(|free| free < min)
    }

    pub(super) async fn mail(
        &mut self,
        from: smtp_proto::MailFrom<String>,
    ) -> Result<SmtpReply, SmtpReply> {
        if self.helo.is_none() || self.tx.is_some() {
            return Err(replies::BAD_SEQUENCE);
        }
        // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
        if self.sh.kind == SmtpKind::Submission && self.auth.is_none() {
            return Err(replies::AUTH_REQUIRED);
        }
        if self.low_disk() {
            self.ctx()
                .logs
                .warning("free disk space below the SMTP minimum: refusing mail (452 4.3.1)");
            return Err(replies::LOW_DISK.server());
        }
        if !self.exempt
            && super::harvest_blocked(
                &self.sh,
                self.settings.max_unknown_recipients,
                self.ip,
                self.now(),
            )
            .await
        {
            self.log_harvest_block("MAIL");
            return Err(replies::HARVEST_BLOCKED.closing());
        }
        // guide §12.2: max messages per hour from one IP, sliding hour, counted across
        // nodes (`limits` module notes).
        let per_hour = self.settings.max_messages_per_hour_per_ip;
        if per_hour > 0 && !self.exempt && self.hourly_limit_reached(per_hour).await? {
            self.ctx().logs.security(&SecurityEvent::LimitExceeded {
                ip: self.ip,
                limit: SecurityLimit::MessagesPerHour(per_hour),
            });
            return Err(replies::RATE_LIMITED);
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return Err(replies::UNSUPPORTED_PARAMETER);
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            return Err(replies::UTF8_NOT_DECLARED);
        }
        // RFC 1870 §6: SIZE above the limit → 552 5.3.4.
        let size = from.size as u64;
        let max = self.settings.max_message_size;
        if max > 0 && size > max {
            let line = seclog::too_big(self.ip, max, &from.address);
            seclog::write(&self.ctx().logs, &line);
            return Err(replies::TOO_BIG);
        }
        if size > 0
            && let Some(limit) = self.outgoing_limit().await?
            && size > limit
        {
            return Err(self.outgoing_too_big(limit, &from.address));
        }
        // guide §12.2 "Block if sender's mail domain was not found in DNS".
        self.check_sender_domain(&from.address.to_lowercase())
            .await?;
        // guide §13.3 envelope rules (553) and §13.5 SPF set to block.
        self.spam_check_mail(&from.address.to_lowercase()).await?;
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some("FULL".to_owned())
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some("HDRS".to_owned())
        } else {
            None
        };
        self.tx = Some(Txn {
            from: from.address.to_lowercase(),
            envid: from.env_id,
            ret,
            ..Txn::default()
        });
        Ok(replies::SENDER_OK)
    }

    /// The authenticated sender's outgoing size limit (guide §18.1: the user's own value
    /// overrides the domain's), `None` when unauthenticated or unlimited.
    pub(super) async fn outgoing_limit(&self) -> Result<Option<u64>, SmtpReply> {
        let Some(user) = self.auth.as_ref().map(|a| a.user.clone()) else {
            return Ok(None);
        };
        let dir = self.ctx().directory.clone();
        let limit = blocking(move || dir.effective_outgoing_limit(&user))
            .await?
            .map_err(|e| internal("outgoing limit", e))?;
        Ok((limit > 0).then_some(limit))
    }

    pub(super) async fn rcpt(
        &mut self,
        to: smtp_proto::RcptTo<String>,
    ) -> Result<SmtpReply, SmtpReply> {
        if self.tx.is_none() {
            return Err(replies::BAD_SEQUENCE);
        }
        let now = self.sh.ctx.clock.unix();
        // In-memory state only at RCPT (`limits` module notes).
        if !self.exempt && self.sh.limits.is_blocked(None, self.ip, now) {
            self.log_harvest_block("RCPT");
            return Err(replies::HARVEST_BLOCKED_RCPT);
        }
        let Some(tx) = &mut self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        // guide §12.2: max recipients per message → 452 4.5.3 (RFC 5321 §4.5.3.1.10).
        let max = self.settings.max_recipients;
        if max > 0 && tx.rcpts.len() >= max as usize {
            if !tx.recipients_limit_logged {
                tx.recipients_limit_logged = true;
                self.sh.ctx.logs.security(&SecurityEvent::LimitExceeded {
                    ip: self.ip,
                    limit: SecurityLimit::Recipients(max),
                });
            }
            return Err(replies::TOO_MANY_RECIPIENTS);
        }
        let address = to.address.trim().to_lowercase();
        if address.is_empty() || !address.contains('@') {
            return Err(replies::BAD_RECIPIENT);
        }
        let from = tx.from.clone();
        // guide §13.3: envelope From/To rules at the top of the list → 553.
        self.spam_check_rcpt(&from, &address).await?;
        let dir = self.sh.ctx.directory.clone();
        let a = address.clone();
        let resolution = blocking(move || dir.resolve_recipient(&a))
            .await?
            .map_err(|_| replies::BAD_RECIPIENT)?;
        let mut rcpt = Rcpt {
            address: address.clone(),
            notify: notify_param(to.flags),
            orcpt: to.orcpt.map(|o| format!("rfc822;{o}")),
            local_users: Vec::new(),
            public: Vec::new(),
            remote: Vec::new(),
            internal: false,
            sender_allowed: false,
        };
        let sender_local_only = self.sender_local_only().await?;
        match resolution {
            Resolution::NotFound => {
                // guide §12.3: reject unknown recipients at RCPT (no backscatter) and count
                // them for the directory-harvest limit (guide §12.2).
                self.count_unknown_recipient().await;
                return Err(replies::NO_SUCH_USER);
            }
            Resolution::NotLocal => {
                if sender_local_only {
                    return Err(replies::LOCAL_ONLY);
                }
                if !self.relay_allowed().await? {
                    self.sh.ctx.logs.security(&SecurityEvent::RelayAttempt {
                        ip: self.ip,
                        from: &from,
                        to: &address,
                    });
                    return Err(replies::RELAY_DENIED);
                }
                rcpt.remote.push((address.clone(), None));
            }
            Resolution::Deliver { targets, .. } => {
                rcpt.internal = true;
                let outside = self.auth.is_none() && !self.is_local_domain(&from).await?;
                for t in targets {
                    match t {
                        Target::LocalUser { user, .. } => {
                            self.check_local_user(&user, outside).await?;
                            rcpt.local_users.push(user);
                        }
                        Target::External { address: ext } => {
                            if sender_local_only {
                                return Err(replies::LOCAL_ONLY);
                            }
                            rcpt.remote.push((ext, None));
                        }
                        // guide §7.10: "offline, triggered by ETRN" holds the mail in
                        // the queue until the remote host asks for it (`crate::queue`).
                        Target::Forwarded {
                            address: fwd,
                            host,
                            port,
                            mode: ForwardMode::OfflineEtrn,
                        } => rcpt
                            .remote
                            .push((fwd, Some(queue::held_route(&host, port)))),
                        // TODO(guide §7.10): "offline, triggered by the scheduler" is
                        // delivered like online forwarding until the scheduler exists.
                        Target::Forwarded {
                            address: fwd,
                            host,
                            port,
                            ..
                        } => rcpt.remote.push((fwd, Some(format!("{host}:{port}")))),
                        Target::PublicFolder { domain, path } => rcpt.public.push((domain, path)),
                    }
                }
            }
        }
        // issue 6 §2: sender blacklists of the server, the domain and the user.
        if rcpt.internal {
            rcpt.sender_allowed = self.sender_lists(&from, &mut rcpt).await?;
        }
        // One whitelist class per transaction (module notes): the rest in another one.
        // Authenticated and trusted clients are not rated by default, so never split;
        // with `rate_trusted` on, their mixed transactions are rated without the list.
        if let Some(first) = self.tx.as_ref().and_then(|tx| tx.rcpts.first())
            && first.sender_allowed != rcpt.sender_allowed
            && !self.trusted_client()
        {
            return Err(replies::SPLIT_TRANSACTION);
        }
        // issue 6 item 6 / RFC 6647: greylisting, after the recipient is known valid.
        self.greylist(&from, &address).await?;
        if let Some(tx) = &mut self.tx {
            tx.rcpts.push(rcpt);
        }
        Ok(replies::RECIPIENT_OK)
    }

    /// An authenticated client or one of the relay IP group.
    pub(super) fn trusted_client(&self) -> bool {
        self.auth.is_some()
            || self
                .settings
                .relay_ip_group
                .as_deref()
                .is_some_and(|g| self.groups.contains(g, self.ip))
    }

    /// guide §12.2 "Block if sender's mail domain was not found in DNS" (module notes).
    async fn check_sender_domain(&self, from: &str) -> Result<(), SmtpReply> {
        if !self.settings.reject_unknown_sender_domain || self.exempt || self.trusted_client() {
            return Ok(());
        }
        let Some(resolver) = self.ctx().resolver.clone() else {
            return Ok(());
        };
        let Some((_, domain)) = from.rsplit_once('@') else {
            return Ok(()); // the null sender (RFC 5321 §4.5.5)
        };
        if domain.is_empty() || domain.starts_with('[') || self.is_local_domain(from).await? {
            return Ok(());
        }
        let missing = || {
            // guide §25.4: a refusal of a §12.2 security option is a security-log line.
            let line = seclog::sender_domain_unknown(self.ip, from, domain);
            seclog::write(&self.ctx().logs, &line);
            SENDER_DOMAIN_UNKNOWN.with_text(format!("Sender domain {domain} does not exist"))
        };
        let tempfail = |e: &DnsError| {
            tracing::info!("smtp {}: sender domain check: {e}", self.ip);
            SENDER_DOMAIN_TEMPFAIL
        };
        match resolver.mx(domain).await {
            Ok(MxTargets::NullMx) => Ok(()),
            Ok(MxTargets::Hosts(hosts)) if hosts.iter().any(|h| !h.implicit) => Ok(()),
            // RFC 5321 §5.1: no MX, so the domain needs an address of its own.
            Ok(MxTargets::Hosts(_)) => match resolver.ip_addrs(domain).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(missing()),
                Err(e) => Err(tempfail(&e)),
            },
            Err(e) if e.is_permanent() => Err(missing()),
            Err(e) => Err(tempfail(&e)),
        }
    }

    /// Sender lists at RCPT (module notes): `550 5.7.1` when every local user of the
    /// recipient blocks `from`; users that block it are dropped otherwise. Returns whether
    /// every remaining user whitelists `from`.
    async fn sender_lists(&self, from: &str, rcpt: &mut Rcpt) -> Result<bool, SmtpReply> {
        if from.is_empty() {
            return Ok(false);
        }
        let whole = rcpt.local_users.is_empty();
        let checked: Vec<String> = if whole {
            vec![rcpt.address.clone()]
        } else {
            rcpt.local_users.clone()
        };
        let meta = self.ctx().meta.clone();
        let sender = from.to_owned();
        let decisions = blocking(move || {
            checked
                .into_iter()
                .map(|u| keel_filter::sender_decision(&*meta, &sender, &u).map(|d| (u, d)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(|e| internal("sender lists", e))?;
        let mut blocked = Vec::new();
        for (user, d) in &decisions {
            if let keel_filter::SenderDecision::Block { scope, entry } = d {
                // guide §25.8: the Spam log records what the filter refused.
                self.ctx().logs.write(
                    keel_core::log::LogKind::Spam,
                    &format!(
                        "Message refused: sender {from} is on the {} blacklist (entry '{entry}'), To: {user}, IP: {}",
                        scope.key(),
                        self.ip
                    ),
                );
                blocked.push(user.clone());
            }
        }
        let allowed = |users: &[String]| {
            !users.is_empty()
                && rcpt.remote.is_empty()
                && rcpt.public.is_empty()
                && decisions.iter().all(|(u, d)| {
                    !users.contains(u) || matches!(d, keel_filter::SenderDecision::Allow { .. })
                })
        };
        if blocked.is_empty() {
            let users: Vec<String> = decisions.iter().map(|(u, _)| u.clone()).collect();
            return Ok(allowed(&users));
        }
        if whole {
            return Err(SENDER_BLOCKED);
        }
        rcpt.local_users.retain(|u| !blocked.contains(u));
        if rcpt.local_users.is_empty() && rcpt.remote.is_empty() && rcpt.public.is_empty() {
            return Err(SENDER_BLOCKED);
        }
        Ok(allowed(&rcpt.local_users))
    }

    /// Greylisting (issue 6 item 6): `451 4.7.1` for a triplet not yet confirmed.
    async fn greylist(&self, from: &str, to: &str) -> Result<(), SmtpReply> {
        let g = &self.settings.greylisting;
        if !g.enabled
            || self.trusted_client()
            || (g.exempt_private_ranges && greylist::is_private(self.ip))
            || g.exempt_group
                .as_deref()
                .is_some_and(|grp| self.groups.contains(grp, self.ip))
        {
            return Ok(());
        }
        let meta = self.ctx().meta.clone();
        let (g, ip, now) = (g.clone(), self.ip, self.now());
        let (from, to) = (from.to_owned(), to.to_owned());
        let (from_l, to_l) = (from.clone(), to.clone());
        let verdict = blocking(move || greylist::check(&*meta, &g, ip, &from, &to, now))
            .await?
            .map_err(|e| internal("greylist", e))?;
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Defer => {
                // guide §25.4: every refusal is a security-log line.
                let line = seclog::greylisted(self.ip, &from_l, &to_l);
                seclog::write(&self.ctx().logs, &line);
                Err(GREYLISTED)
            }
        }
    }

    /// Counts an address that does not resolve (RCPT, VRFY, EXPN) toward the
    /// directory-harvest limit of guide §12.2 (shared by every node while the limit is
    /// on) and logs the block when it starts.
    pub(super) async fn count_unknown_recipient(&self) {
        if self.exempt {
            return;
        }
        let (max, block) = (
            self.settings.max_unknown_recipients,
            self.settings.harvest_block_secs,
        );
        let (limits, meta, ip, now) = (
            self.sh.limits.clone(),
            self.ctx().meta.clone(),
            self.ip,
            self.now(),
        );
        let started = if max == 0 {
            limits.unknown_recipient(None, ip, now, max, block)
        } else {
            blocking(move || limits.unknown_recipient(Some(&*meta), ip, now, max, block))
                .await
                .unwrap_or(false)
        };
        if started {
            self.ctx()
                .logs
                .security(&SecurityEvent::DirectoryHarvest { ip: self.ip });
        }
    }

    /// guide §12.2 messages per hour, counted across nodes.
    async fn hourly_limit_reached(&self, per_hour: u32) -> Result<bool, SmtpReply> {
        let (limits, meta, ip, now) = (
            self.sh.limits.clone(),
            self.ctx().meta.clone(),
            self.ip,
            self.now(),
        );
        blocking(move || limits.hourly_limit_reached(Some(&*meta), ip, now, per_hour)).await
    }

    /// A refusal during a harvest block: one security-log line per session (`seclog`).
    fn log_harvest_block(&mut self, what: &str) {
        if !self.harvest_logged {
            self.harvest_logged = true;
            seclog::write(&self.ctx().logs, &seclog::harvest_blocked(self.ip, what));
        }
    }

    /// guide §18.1: the sender's outgoing size limit was exceeded (logged, 552 5.3.4).
    pub(super) fn outgoing_too_big(&self, limit: u64, from: &str) -> SmtpReply {
        let user = self.auth.as_ref().map_or("", |a| a.user.as_str());
        let line = seclog::outgoing_too_big(self.ip, user, limit, from);
        seclog::write(&self.ctx().logs, &line);
        replies::TOO_BIG.with_text("Message exceeds your outgoing size limit")
    }

    /// guide §8.2 step 8 and §7: quota at RCPT, and local-only users do not receive mail
    /// from outside.
    async fn check_local_user(&self, user: &str, outside: bool) -> Result<(), SmtpReply> {
        let dir = self.ctx().directory.clone();
        let mb = self.ctx().mailboxes.clone();
        let u = user.to_owned();
        let (local_only, quota) = blocking(move || {
            let local_only = dir.get_user(&u).map(|x| x.local_domain_only);
            let quota = mb.quota_check(&u, 0);
            (local_only, quota)
        })
        .await?;
        if outside && local_only.map_err(|e| internal("get user", e))? {
            return Err(replies::LOCAL_ONLY);
        }
        match quota.map_err(|e| internal("quota check", e))? {
            QuotaStatus::Ok => Ok(()),
            // RFC 3463 §3.3 X.2.2, temporary: see the crate notes.
            QuotaStatus::Exceeded { .. } => Err(replies::MAILBOX_FULL_TEMP),
        }
    }

    async fn sender_local_only(&self) -> Result<bool, SmtpReply> {
        let Some(user) = self.auth.as_ref().map(|a| a.user.clone()) else {
            return Ok(false);
        };
        let dir = self.ctx().directory.clone();
        blocking(move || dir.get_user(&user).map(|u| u.local_domain_only))
            .await?
            .map_err(|e| internal("get user", e))
    }

    pub(super) async fn is_local_domain(&self, address: &str) -> Result<bool, SmtpReply> {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return Ok(false);
        };
        let dir = self.ctx().directory.clone();
        let d = domain.to_owned();
        blocking(move || dir.local_domain(&d).map(|x| x.is_some()))
            .await?
            .map_err(|e| internal("local domain", e))
    }
}

/// RFC 3461 §4.1: the NOTIFY parameter as text.
fn notify_param(flags: u64) -> Option<String> {
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        return Some("NEVER".to_owned());
    }
    let mut v = Vec::new();
    if flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0 {
        v.push("SUCCESS");
    }
    if flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0 {
        v.push("FAILURE");
    }
    if flags & smtp_proto::RCPT_NOTIFY_DELAY != 0 {
        v.push("DELAY");
    }
    (!v.is_empty()).then(|| v.join(","))
}
