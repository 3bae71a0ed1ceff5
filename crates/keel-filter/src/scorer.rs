//! The spam score (guide §13.1): every test either rejects or adds to one score, and the
//! sum is compared with the tag and block thresholds.
//!
//! Implementation notes:
//! - Evaluation order (guide §13.3): spam repellent (in the SMTP session), SPF and the
//!   other email-authentication checks, white/blacklists, custom rules, content tests
//!   (GTUBE, URIBL). Every test runs; the order matters only for the custom rules.
//! - "Treat as non-spam" (an allow rule, in the envelope prefix or among the header
//!   rules) sets the score to 0; tests set to *reject* (custom blacklist, DNSBL, SPF,
//!   DMARC `p=reject`) still reject, since they are not scores.
//! - When rating is off (`enabled = false`) the score is still computed and written to
//!   `X-Spam-Status`, but only rejecting tests act (guide §13.1).
//! - Blocking (requirements-1 §13.1 decision): a blocked message is refused at the end of
//!   DATA with `554 5.7.1`, never accepted and bounced. With a quarantine address the
//!   action is [`Action::Quarantine`]: the caller forwards a copy carrying the test
//!   results (the `X-Spam-*` headers) and still refuses the message.
//! - GTUBE (SpamAssassin's test string) scores 1000, above any block score.
//! - Sender whitelists (issue 6 §2, [`crate::senderlists`]): when the caller says every
//!   recipient's list allows the envelope sender, the message is treated as non-spam
//!   (`SENDER_WHITELIST`, score 0) only if the sender is verified: SPF passed for the
//!   envelope domain, or DMARC passed for a `From:` in that same domain. An envelope
//!   sender is easy to forge, so an unverified match only adds the 0-score test
//!   `SENDER_WHITELIST_UNVERIFIED`.
//! - Whitelist (guide §13.2): the whitelist group and, unless switched off, the private
//!   and loopback ranges skip the DNS blacklists only; content tests still apply, and the
//!   custom blacklist group is checked for every client.
//! - Lookups run concurrently (one task per query) and a failed lookup counts as not
//!   listed, logged at debug level.
//! - Hostile structure (issue 6 tests): [`crate::mime::structure`] checks the message
//!   against [`MessageLimits`] in one linear pass before any MIME parsing (Bayes). A
//!   message past a limit (`MIME_TOO_DEEP`, `MIME_TOO_MANY_PARTS`, `HEADER_TOO_LONG`,
//!   `MIME_NESTED_MESSAGE`) or with a structural defect (`MIME_MALFORMED`: a multipart
//!   left open or without a boundary) gets [`LIMIT_SCORE`] and a Warning-log line; Bayes
//!   then reads the raw body instead of the decoded parts.

use std::net::IpAddr;

use keel_core::ipgroup::IpGroups;
use keel_core::log::{Logs, SecurityEvent, SpamEvent};
use tokio::task::JoinSet;

use crate::FilterError;
use crate::auth::{AuthReport, AuthRequest, AuthResult, DmarcPolicy, EmailAuth};
use crate::bayes::Bayes;
use crate::dns::{FilterDns, dnsbl_name, is_private_or_loopback};
use crate::limits::{LIMIT_SCORE, MessageLimits};
use crate::message::{MessageView, link_hosts, uribl_candidates};
use crate::rules::{EnvelopeDecision, envelope_walk, header_walk};
use crate::settings::{DnsList, HitAction, SpamSettings};

/// SpamAssassin's Generic Test for Unsolicited Bulk Email string.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// Score of the GTUBE test: above every block score.
const GTUBE_SCORE: f64 = 1000.0;
/// Link hosts looked up in URI blacklists per message.
const MAX_LINK_DOMAINS: usize = 10;

/// A 5xx reply decided by the filter (the SMTP layer turns it into its own reply type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Reply code (550, 553, 554).
    pub code: u16,
    /// RFC 3463 enhanced status code.
    pub enhanced: &'static str,
    /// Reply text.
    pub text: String,
}

impl Rejection {
    fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Deliver (with the informational headers).
    Accept,
    /// Deliver tagged: `X-Spam-Flag: YES` and the subject prefix.
    Tag,
    /// Refuse at DATA.
    Reject(Rejection),
    /// Refuse at DATA and forward a copy to the quarantine address.
    Quarantine(Rejection),
}

/// The result of [`Scorer::score`].
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The summed score (0 after an allow).
    pub score: f64,
    /// Every test that hit, with its score (0 for rejecting tests).
    pub tests: Vec<(String, f64)>,
    /// The decision.
    pub action: Action,
    /// Whether the message was rated at all (false for authenticated and trusted senders).
    pub rated: bool,
    /// Whether a "treat as non-spam" rule or sender whitelist allowed it (the statistics
    /// do not count it as checked, guide §13.8).
    pub whitelisted: bool,
    /// Email-authentication results, when checked.
    pub auth: Option<AuthReport>,
    headers: String,
    subject_prefix: Option<String>,
    authserv_id: String,
    junk: bool,
}

/// What the scorer looks at.
#[derive(Debug, Clone, Copy)]
pub struct ScanInput<'a> {
    /// Client address.
    pub client_ip: IpAddr,
    /// HELO/EHLO argument.
    pub helo: &'a str,
    /// MAIL FROM (empty for `<>`).
    pub mail_from: &'a str,
    /// Accepted RCPT TO addresses.
    pub rcpts: &'a [String],
    /// The message as received.
    pub message: &'a [u8],
    /// The client authenticated with SMTP AUTH.
    pub authenticated: bool,
    /// The client is in the trusted relay group (SMTP `relay_ip_group`).
    pub trusted: bool,
    /// Every recipient's sender list allows the envelope sender ([`crate::senderlists`]).
    /// Honoured only when the sender is verified (module notes).
    pub sender_allowed: bool,
}

/// Whether the envelope sender is shown genuine (module notes): SPF passed for its
/// domain (RFC 7208 §2.4 checks the MAIL FROM identity), or DMARC passed (RFC 7489 §3.1
/// alignment) for a `From:` address in the envelope's domain.
fn sender_verified(auth: Option<&AuthReport>, mail_from: &str, from_header: Option<&str>) -> bool {
    let Some(a) = auth else {
        return false;
    };
    if a.spf == Some(AuthResult::Pass) {
        return true;
    }
    let envelope_domain = mail_from.rsplit_once('@').map_or("", |(_, d)| d);
    let header_domain = from_header
        .map(|h| {
            let addr = match (h.rfind('<'), h.rfind('>')) {
                (Some(a), Some(b)) if a < b => &h[a + 1..b],
                _ => h,
            };
            addr.rsplit_once('@').map_or("", |(_, d)| d).trim()
        })
        .unwrap_or("");
    matches!(a.dmarc, Some((AuthResult::Pass, _)))
        && !envelope_domain.is_empty()
        && header_domain.eq_ignore_ascii_case(envelope_domain)
}

impl Verdict {
    fn unrated(authserv_id: &str) -> Self {
        Self {
            score: 0.0,
            tests: Vec::new(),
            action: Action::Accept,
            rated: false,
            whitelisted: false,
            auth: None,
            headers: String::new(),
            subject_prefix: None,
            authserv_id: authserv_id.to_owned(),
            junk: false,
        }
    }

    /// The header fields added to the stored copy (`Authentication-Results`, `X-Spam-*`),
    /// each with its line end.
    pub fn headers(&self) -> &str {
        &self.headers
    }

    /// Whether local copies go to the recipients' `Junk E-mail` folder instead of the
    /// INBOX: tagged mail with `junk_folder` on (guide §13.1, §13.4).
    pub fn file_in_junk(&self) -> bool {
        self.junk
    }

    /// Whether the message counts as spam (tagged or blocked).
    pub fn is_spam(&self) -> bool {
        !matches!(self.action, Action::Accept)
    }

    /// The message as delivered: our header fields first; forged `X-Spam-*` fields and
    /// `Authentication-Results` fields claiming our authserv-id removed (RFC 8601 §5);
    /// the subject prefixed when tagged. Unrated messages are returned unchanged.
    pub fn apply(&self, message: &[u8]) -> Vec<u8> {
        if !self.rated {
            return message.to_vec();
        }
        let view = MessageView::new(message, 0);
        let id = self.authserv_id.to_ascii_lowercase();
        let rewritten = view.rewrite(self.subject_prefix.as_deref(), &|name, value| {
            let n = name.to_ascii_lowercase();
            matches!(n.as_str(), "x-spam-flag" | "x-spam-status" | "x-spam-score")
                || (n == "authentication-results"
                    && value
                        .split(';')
                        .next()
                        .is_some_and(|v| v.trim().to_ascii_lowercase() == id))
        });
        let mut out = Vec::with_capacity(rewritten.len() + self.headers.len());
        out.extend_from_slice(self.headers.as_bytes());
        out.extend_from_slice(&rewritten);
        out
    }
}

/// Rates messages with one settings snapshot (one per SMTP session).
#[derive(Debug, Clone)]
pub struct Scorer {
    settings: SpamSettings,
    groups: IpGroups,
    dns: FilterDns,
    auth: EmailAuth,
    hostname: String,
    logs: Option<Logs>,
    bayes: Option<Bayes>,
    limits: MessageLimits,
}

impl Scorer {
    /// A scorer using the resolver the settings choose (`dns_server` or the system's).
    pub fn new(
        settings: SpamSettings,
        groups: IpGroups,
        hostname: &str,
    ) -> Result<Self, FilterError> {
        let dns = FilterDns::shared(settings.dns_server)?;
        Ok(Self::with_dns(settings, groups, hostname, dns))
    }

    /// A scorer with an explicit resolver.
    pub fn with_dns(
        settings: SpamSettings,
        groups: IpGroups,
        hostname: &str,
        dns: FilterDns,
    ) -> Self {
        let auth = EmailAuth::new(&dns, hostname);
        Self {
            settings,
            groups,
            dns,
            auth,
            hostname: hostname.to_owned(),
            logs: None,
            bayes: None,
            limits: MessageLimits::default(),
        }
    }

    /// Replaces the structural limits (module notes).
    pub fn with_limits(mut self, limits: MessageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Writes Spam-log and Security-log lines to `logs`.
    pub fn with_logs(mut self, logs: Logs) -> Self {
        self.logs = Some(logs);
        self
    }

    /// Adds the Bayes classifier to the content tests (guide §13.4); it contributes only
    /// once active and when `bayes.enabled` is on.
    pub fn with_bayes(mut self, bayes: Bayes) -> Self {
        self.bayes = Some(bayes);
        self
    }

    /// The settings snapshot.
    pub fn settings(&self) -> &SpamSettings {
        &self.settings
    }

    /// The email-authentication checker (shares the resolver).
    pub fn email_auth(&self) -> &EmailAuth {
        &self.auth
    }

    fn exempt(&self, authenticated: bool, trusted: bool) -> bool {
        (authenticated || trusted) && !self.settings.rate_trusted
    }

    /// guide §13.3: envelope From rules at MAIL time; a reject is `553 5.7.1`.
    pub fn check_mail_from(
        &self,
        mail_from: &str,
        authenticated: bool,
        trusted: bool,
    ) -> Result<(), Rejection> {
        if self.exempt(authenticated, trusted) {
            return Ok(());
        }
        match envelope_walk(&self.settings.rules, mail_from, &[]).0 {
            EnvelopeDecision::Reject(_) => Err(Rejection::new(
                553,
                "5.7.1",
                "Sender rejected by a content rule",
            )),
            _ => Ok(()),
        }
    }

    /// guide §13.3: envelope From/To rules per RCPT; a reject is `553 5.7.1`.
    pub fn check_rcpt(
        &self,
        mail_from: &str,
        rcpt: &str,
        authenticated: bool,
        trusted: bool,
    ) -> Result<(), Rejection> {
        if self.exempt(authenticated, trusted) {
            return Ok(());
        }
        match envelope_walk(&self.settings.rules, mail_from, &[rcpt]).0 {
            EnvelopeDecision::Reject(_) => Err(Rejection::new(
                553,
                "5.7.1",
                "Recipient rejected by a content rule",
            )),
            _ => Ok(()),
        }
    }

    /// guide §13.5 "block at SMTP level": SPF at MAIL time when its action is reject.
    /// `550 5.7.23` (RFC 7372 §3.2) on `fail`. Trusted relays, the skip group and
    /// (unless switched off) loopback clients are not checked.
    pub async fn check_spf_at_mail(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        trusted: bool,
    ) -> Result<(), Rejection> {
        if !self.spf_applies(ip, trusted) || self.settings.spf.action != HitAction::Reject {
            return Ok(());
        }
        if self.auth.spf(ip, helo, mail_from).await == AuthResult::Fail {
            return Err(spf_rejection(mail_from, helo));
        }
        Ok(())
    }

    fn spf_applies(&self, ip: IpAddr, trusted: bool) -> bool {
        let skipped = self
            .settings
            .spf
            .skip_group
            .as_deref()
            .is_some_and(|g| self.groups.contains(g, ip));
        let local_software = self.settings.exempt_loopback && ip.is_loopback();
        self.settings.spf.enabled && !trusted && !local_software && !skipped
    }

    /// Rates a message (module notes).
    pub async fn score(&self, input: &ScanInput<'_>) -> Verdict {
        if self.exempt(input.authenticated, input.trusted) {
            // requirements-1 §0.2: trusted relays and authenticated users are not rated.
            return Verdict::unrated(&self.hostname);
        }
        let s = &self.settings;
        let ip = input.client_ip;
        let mut tests: Vec<(String, f64)> = Vec::new();
        let mut reject: Option<Rejection> = None;
        let mut allow = false;
        let rcpts: Vec<&str> = input.rcpts.iter().map(String::as_str).collect();
        let local_software = s.exempt_loopback && ip.is_loopback();

        // Email policy records (guide §13.5) and DKIM/DMARC.
        let spf_on = self.spf_applies(ip, input.trusted);
        let dkim_on = s.dkim.enabled && !local_software;
        let dmarc_on = s.dmarc.enabled && !local_software;
        let auth = if spf_on || dkim_on || dmarc_on {
            let report = self
                .auth
                .check(&AuthRequest {
                    ip,
                    helo: input.helo,
                    mail_from: input.mail_from,
                    message: input.message,
                    spf: spf_on,
                    dkim: dkim_on,
                    dmarc: dmarc_on,
                })
                .await;
            Some(report)
        } else {
            None
        };
        if let Some(a) = &auth {
            if spf_on {
                match a.spf {
                    Some(AuthResult::Fail) => match s.spf.action {
                        HitAction::Reject => {
                            tests.push(("SPF_FAIL".into(), 0.0));
                            reject.get_or_insert(spf_rejection(input.mail_from, input.helo));
                        }
                        HitAction::Score(n) => tests.push(("SPF_FAIL".into(), n)),
                        HitAction::None => tests.push(("SPF_FAIL".into(), 0.0)),
                    },
                    Some(AuthResult::SoftFail) if s.spf.softfail_score != 0.0 => {
                        tests.push(("SPF_SOFTFAIL".into(), s.spf.softfail_score));
                    }
                    _ => {}
                }
            }
            if dkim_on
                // mail-auth reports a body-hash mismatch as `neutral`; RFC 6376 §6.3
                // counts it as a failed signature.
                && matches!(
                    a.dkim,
                    Some(AuthResult::Fail | AuthResult::PermError | AuthResult::Neutral)
                )
                && s.dkim.score_on_fail != 0.0
            {
                tests.push(("DKIM_INVALID".into(), s.dkim.score_on_fail));
            }
            if dmarc_on && let Some((AuthResult::Fail, policy)) = a.dmarc {
                match policy {
                    // RFC 7489 §6.3 p=reject, honoured: refuse in the session.
                    DmarcPolicy::Reject if s.dmarc.honour_reject => {
                        tests.push(("DMARC_REJECT".into(), 0.0));
                        reject.get_or_insert(Rejection::new(
                            550,
                            "5.7.1",
                            "Rejected by the DMARC policy of the author domain",
                        ));
                    }
                    DmarcPolicy::Reject | DmarcPolicy::Quarantine => {
                        tests.push(("DMARC_QUARANTINE".into(), s.dmarc.quarantine_score));
                    }
                    DmarcPolicy::None => {}
                }
            }
        }

        // Custom blacklist group: every client (guide §13.2).
        if let Some(g) = s.blacklist_group.as_deref()
            && self.groups.contains(g, ip)
        {
            self.log_security(&SecurityEvent::IpGroupBlacklisted {
                ip,
                group: g,
                from: input.mail_from,
                to: input.rcpts,
            });
            match s.blacklist_action {
                HitAction::Reject => {
                    tests.push(("BLACKLIST_GROUP".into(), 0.0));
                    reject.get_or_insert(Rejection::new(
                        554,
                        "5.7.1",
                        "Client address is blacklisted",
                    ));
                }
                HitAction::Score(n) => tests.push(("BLACKLIST_GROUP".into(), n)),
                HitAction::None => tests.push(("BLACKLIST_GROUP".into(), 0.0)),
            }
        }
        // Internet DNS blacklists (guide §13.2), unless whitelisted.
        let whitelisted = s
            .whitelist_group
            .as_deref()
            .is_some_and(|g| self.groups.contains(g, ip))
            || (s.exempt_private_ranges && is_private_or_loopback(ip));
        if !whitelisted {
            let queries: Vec<(DnsList, String)> = s
                .dnsbl
                .iter()
                .filter(|l| l.enabled)
                .map(|l| (l.clone(), dnsbl_name(ip, &l.zone)))
                .collect();
            for list in self.lookup_all(queries).await {
                self.log_security(&SecurityEvent::DnsBlacklisted {
                    ip,
                    list: &list.zone,
                    from: input.mail_from,
                    to: input.rcpts,
                });
                list_hit(&mut tests, &mut reject, "DNSBL", &list, "Client address");
            }
        }

        // Custom rules (guide §13.3): envelope prefix, then header rules.
        let (env, env_scores) = envelope_walk(&s.rules, input.mail_from, &rcpts);
        tests.extend(env_scores);
        let view = MessageView::with_header_limit(
            input.message,
            s.max_scan_bytes,
            self.limits.max_header_bytes,
        );
        // Module notes: the structure before anything parses MIME.
        let structure = crate::mime::structure(input.message, &self.limits);
        let malformed = match structure {
            Err(hit) => Some((hit.test_name(), hit.to_string())),
            Ok(shape) => shape.defect.map(|d| ("MIME_MALFORMED", d.to_owned())),
        };
        if let Some((name, why)) = &malformed {
            tests.push(((*name).to_owned(), LIMIT_SCORE));
            if let Some(l) = &self.logs {
                l.warning(&format!(
                    "Spam filter: message from <{}> ({} bytes): {why}; rated on what was examined",
                    sanitize(input.mail_from),
                    input.message.len()
                ));
            }
        }
        if input.sender_allowed && !input.mail_from.is_empty() {
            let from = view.header("From");
            if sender_verified(auth.as_ref(), input.mail_from, from.as_deref()) {
                tests.push(("SENDER_WHITELIST".into(), 0.0));
                allow = true;
            } else {
                tests.push(("SENDER_WHITELIST_UNVERIFIED".into(), 0.0));
            }
        }
        match env {
            EnvelopeDecision::Allow => allow = true,
            EnvelopeDecision::Reject(name) => {
                tests.push((name, 0.0));
                reject.get_or_insert(Rejection::new(554, "5.7.1", "Rejected by a content rule"));
            }
            EnvelopeDecision::Continue => {
                let out = header_walk(&s.rules, &view);
                tests.extend(out.scores);
                match out.terminal {
                    Some((true, name)) => {
                        tests.push((name, 0.0));
                        reject.get_or_insert(Rejection::new(
                            554,
                            "5.7.1",
                            "Rejected by a content rule",
                        ));
                    }
                    Some((false, _)) => allow = true,
                    None => {}
                }
            }
        }

        // Content tests.
        let body = view.scan_body();
        if contains_bytes(body, GTUBE.as_bytes()) {
            tests.push(("GTUBE".into(), GTUBE_SCORE));
        }
        // Bayes (guide §13.4): a content test, so it applies to private and loopback
        // clients too. The store is blocking; a failure only skips the test.
        if let Some(b) = &self.bayes
            && s.bayes.enabled
        {
            let b = b.clone().with_max_bytes(s.max_scan_bytes);
            let cfg = s.bayes.clone();
            let msg = input.message[..input.message.len().min(s.max_scan_bytes)].to_vec();
            match tokio::task::spawn_blocking(move || b.classify(&msg, &cfg)).await {
                Ok(Ok(Some(p))) => {
                    if let Some((name, v)) = s.bayes.test_for(p) {
                        tests.push((name.into(), v));
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!("Bayes classifier unavailable: {e}"),
                Err(e) => tracing::warn!("Bayes classifier failed: {e}"),
            }
        }
        if !local_software {
            let mut domains: Vec<String> = Vec::new();
            for h in link_hosts(body, MAX_LINK_DOMAINS) {
                for c in uribl_candidates(&h) {
                    if !domains.contains(&c) && domains.len() < MAX_LINK_DOMAINS {
                        domains.push(c);
                    }
                }
            }
            let queries: Vec<(DnsList, String)> = s
                .uribl
                .iter()
                .filter(|l| l.enabled)
                .flat_map(|l| {
                    domains
                        .iter()
                        .map(move |d| (l.clone(), format!("{d}.{}", l.zone.trim_matches('.'))))
                })
                .collect();
            let mut seen: Vec<String> = Vec::new();
            for list in self.lookup_all(queries).await {
                // One hit per list, however many links are listed.
                if !seen.contains(&list.zone) {
                    list_hit(
                        &mut tests,
                        &mut reject,
                        "URIBL",
                        &list,
                        "A link in the message",
                    );
                    seen.push(list.zone);
                }
            }
        }

        let sum: f64 = tests.iter().fold(0.0, |acc, (_, v)| acc + v);
        let score = if allow { 0.0 } else { sum };
        let block = s.effective_block_score();
        let rating = s.enabled;
        let action = if let Some(r) = reject {
            self.quarantine_or(r)
        } else if rating && block.is_some_and(|b| score >= b) {
            self.log_security(&SecurityEvent::SpamRejected {
                from: input.mail_from,
                to: input.rcpts,
                score,
                threshold: block.unwrap_or_default(),
            });
            self.quarantine_or(Rejection::new(
                554,
                "5.7.1",
                format!("Message rejected as spam (score {score:.1})"),
            ))
        } else if rating && score >= s.tag_score {
            Action::Tag
        } else {
            Action::Accept
        };
        let subject_prefix = match (&action, &s.subject_prefix) {
            (Action::Tag, Some(p)) if !p.is_empty() => Some(expand_prefix(p, score)),
            _ => None,
        };
        let mut headers = String::new();
        if let Some(a) = &auth {
            headers.push_str(&a.header);
        }
        let spam = !matches!(action, Action::Accept);
        let junk = s.junk_folder && matches!(action, Action::Tag);
        headers.push_str(&status_header(spam, score, s.tag_score, &tests));
        headers.push_str(&format!("X-Spam-Score: {score:.1}\r\n"));
        if spam {
            headers.push_str("X-Spam-Flag: YES\r\n");
            // guide §25.8: one Spam-log line per recipient.
            let subject = view.header("Subject").unwrap_or_default();
            for to in input.rcpts {
                self.log_spam(&SpamEvent::FilterMarked {
                    score,
                    to,
                    size: input.message.len() as u64,
                    from: input.mail_from,
                    subject: &subject,
                });
            }
        }
        Verdict {
            score,
            tests,
            action,
            rated: true,
            whitelisted: allow,
            auth,
            headers,
            subject_prefix,
            authserv_id: self.hostname.clone(),
            junk,
        }
    }

    fn quarantine_or(&self, r: Rejection) -> Action {
        if self
            .settings
            .quarantine_address
            .as_deref()
            .is_some_and(|a| !a.is_empty())
        {
            Action::Quarantine(r)
        } else {
            Action::Reject(r)
        }
    }

    /// Runs the blacklist queries concurrently; returns the lists that hit, once per
    /// query that hit.
    async fn lookup_all(&self, queries: Vec<(DnsList, String)>) -> Vec<DnsList> {
        let mut set = JoinSet::new();
        for (list, name) in queries {
            let dns = self.dns.clone();
            set.spawn(async move {
                let r = dns.listed(&name, &list.codes).await;
                (list, name, r)
            });
        }
        let mut hits = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((list, _, Ok(answers))) if !answers.is_empty() => hits.push(list),
                Ok((_, name, Err(e))) => tracing::debug!("blacklist lookup {name}: {e}"),
                _ => {}
            }
        }
        hits.sort_by(|a, b| a.zone.cmp(&b.zone));
        hits
    }

    fn log_security(&self, e: &SecurityEvent<'_>) {
        if let Some(l) = &self.logs {
            l.security(e);
        }
    }

    fn log_spam(&self, e: &SpamEvent<'_>) {
        if let Some(l) = &self.logs {
            l.spam(e);
        }
    }
}

fn spf_rejection(mail_from: &str, helo: &str) -> Rejection {
    let who = if mail_from.is_empty() {
        helo
    } else {
        mail_from
    };
    // RFC 7208 §8.4, RFC 7372 §3.2.
    Rejection::new(
        550,
        "5.7.23",
        format!("SPF validation failed for {}", sanitize(who)),
    )
}

fn list_hit(
    tests: &mut Vec<(String, f64)>,
    reject: &mut Option<Rejection>,
    kind: &str,
    list: &DnsList,
    what: &str,
) {
    let name = format!("{kind}_{}", sanitize(&list.zone));
    match list.action {
        HitAction::Reject => {
            tests.push((name, 0.0));
            reject.get_or_insert(Rejection::new(
                554,
                "5.7.1",
                format!("{what} is listed in {}", sanitize(&list.zone)),
            ));
        }
        HitAction::Score(n) => tests.push((name, n)),
        HitAction::None => tests.push((name, 0.0)),
    }
}

/// Header- and reply-safe text: printable ASCII only.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect()
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// guide §13.1: `%s` in the prefix becomes the score as a row of asterisks.
fn expand_prefix(prefix: &str, score: f64) -> String {
    let n = if score.is_finite() && score > 0.0 {
        (score.floor() as usize).min(50)
    } else {
        0
    };
    prefix.replace("%s", &"*".repeat(n))
}

/// `X-Spam-Status` in SpamAssassin's shape, folded after the verdict.
fn status_header(spam: bool, score: f64, required: f64, tests: &[(String, f64)]) -> String {
    let list: Vec<String> = tests.iter().map(|(n, v)| format!("{n}={v:.1}")).collect();
    format!(
        "X-Spam-Status: {}, score={score:.1} required={required:.1}\r\n\ttests={}\r\n",
        if spam { "Yes" } else { "No" },
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(",")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_status() {
        assert_eq!(expand_prefix("[SPAM %s]", 6.7), "[SPAM ******]");
        assert_eq!(expand_prefix("**SPAM**", 6.7), "**SPAM**");
        assert_eq!(
            status_header(true, 6.0, 5.0, &[("RULE_X".into(), 6.0)]),
            "X-Spam-Status: Yes, score=6.0 required=5.0\r\n\ttests=RULE_X=6.0\r\n"
        );
    }
}
