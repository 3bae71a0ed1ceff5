//! Email authentication of received mail: SPF (RFC 7208), DKIM verification (RFC 6376),
//! DMARC (RFC 7489), and the `Authentication-Results:` header (RFC 8601). The module
//! boundary around mail-auth: nothing outside `auth` names a mail-auth type.
//!
//! Implementation notes:
//! - mail-auth's `MessageAuthenticator` wraps a hickory resolver; it is built around the
//!   filter's own resolver ([`FilterDns`]), so production uses the system configuration
//!   (or the admin's nameserver) and tests the in-process authoritative server.
//! - SPF checks HELO first and then MAIL FROM (RFC 7208 §2.3 RECOMMENDS the HELO check;
//!   a HELO `fail` decides). With a null reverse path only HELO is checked
//!   (RFC 7208 §2.4). The DNS lookup limits of RFC 7208 §4.6.4 are mail-auth's.
//! - DMARC uses the SPF result of the MAIL FROM identity and the DKIM results
//!   (RFC 7489 §4.2 identifier alignment); the policy reported is the one that applies to
//!   the author domain (`p`, `sp` or `np`, `t=y` lowering it one step).
//! - The authserv-id of the header is the server's Internet hostname (RFC 8601 §2.5).
//! - [`sign`] holds DKIM signing of outgoing mail.

pub mod sign;

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};

use crate::dns::FilterDns;

/// One authentication method's result (RFC 8601 §2.7 result values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// `pass`.
    Pass,
    /// `fail`.
    Fail,
    /// `softfail` (SPF).
    SoftFail,
    /// `neutral`.
    Neutral,
    /// `none`: no policy / no signature.
    None,
    /// `temperror`.
    TempError,
    /// `permerror`.
    PermError,
}

impl AuthResult {
    /// The RFC 8601 keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::Neutral => "neutral",
            Self::None => "none",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

/// The DMARC policy that applies to the author domain (RFC 7489 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// `p=none` or no record.
    None,
    /// `p=quarantine`.
    Quarantine,
    /// `p=reject`.
    Reject,
}

/// What to check.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Client address.
    pub ip: IpAddr,
    /// HELO/EHLO argument.
    pub helo: &'a str,
    /// MAIL FROM (empty for the null reverse path).
    pub mail_from: &'a str,
    /// The message as received.
    pub message: &'a [u8],
    /// Check SPF.
    pub spf: bool,
    /// Verify DKIM.
    pub dkim: bool,
    /// Evaluate DMARC (needs the SPF and DKIM results, so they are computed for it).
    pub dmarc: bool,
}

/// The outcome, with owned values only.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthReport {
    /// SPF result when checked.
    pub spf: Option<AuthResult>,
    /// The best DKIM result when verified: `pass` if any signature passed, else `fail`
    /// (or perm/temp error) if signatures were present, else `none`.
    pub dkim: Option<AuthResult>,
    /// DMARC result and the applicable policy when evaluated.
    pub dmarc: Option<(AuthResult, DmarcPolicy)>,
    /// The `Authentication-Results:` field with its line end.
    pub header: String,
}

/// SPF, DKIM and DMARC verification (module notes).
#[derive(Clone)]
pub struct EmailAuth {
    inner: MessageAuthenticator,
    authserv_id: String,
}

impl std::fmt::Debug for EmailAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmailAuth({})", self.authserv_id)
    }
}

fn spf_result(r: SpfResult) -> AuthResult {
    match r {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
    }
}

fn dkim_result(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::Neutral(_) => AuthResult::Neutral,
        DkimResult::Fail(_) => AuthResult::Fail,
        DkimResult::PermError(_) => AuthResult::PermError,
        DkimResult::TempError(_) => AuthResult::TempError,
        DkimResult::None => AuthResult::None,
    }
}

fn dmarc_result(r: &DmarcResult) -> AuthResult {
    match r {
        DmarcResult::Pass => AuthResult::Pass,
        DmarcResult::Fail(_) => AuthResult::Fail,
        DmarcResult::TempError(_) => AuthResult::TempError,
        DmarcResult::PermError(_) => AuthResult::PermError,
        DmarcResult::None => AuthResult::None,
    }
}

impl EmailAuth {
    /// Verification through `dns`; `authserv_id` is the Internet hostname.
    pub fn new(dns: &FilterDns, authserv_id: impl Into<String>) -> Self {
        Self {
            inner: MessageAuthenticator(dns.resolver().clone()),
            authserv_id: authserv_id.into(),
        }
    }

    /// The authserv-id.
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// SPF alone (RFC 7208 §2.3–§2.4), e.g. at MAIL time.
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> AuthResult {
        let out = self
            .inner
            .verify_spf(SpfParameters::verify(
                ip,
                helo,
                &self.authserv_id,
                mail_from,
            ))
            .await;
        spf_result(out.result())
    }

    /// Runs the checks asked for and builds the header (module notes).
    pub async fn check(&self, req: &AuthRequest<'_>) -> AuthReport {
        let mut ar = AuthenticationResults::new(&self.authserv_id);
        let mut report = AuthReport {
            spf: None,
            dkim: None,
            dmarc: None,
            header: String::new(),
        };
        let need_spf = req.spf || req.dmarc;
        let need_dkim = req.dkim || req.dmarc;
        let spf_out = if need_spf {
            let out = self
                .inner
                .verify_spf(SpfParameters::verify(
                    req.ip,
                    req.helo,
                    &self.authserv_id,
                    req.mail_from,
                ))
                .await;
            report.spf = Some(spf_result(out.result()));
            ar = if req.mail_from.is_empty() {
                ar.with_spf_ehlo_result(&out, req.ip, req.helo)
            } else {
                ar.with_spf_mailfrom_result(&out, req.ip, req.mail_from, req.helo)
            };
            Some(out)
        } else {
            None
        };
        // mail-auth parses headers only; `None` means no header section at all.
        let parsed = if need_dkim {
            AuthenticatedMessage::parse(req.message)
        } else {
            None
        };
        if let Some(msg) = &parsed {
            let dkim = self.inner.verify_dkim(msg).await;
            let header_from = msg.from.first().cloned().unwrap_or_default();
            let best = if dkim.is_empty() {
                AuthResult::None
            } else if dkim.iter().any(|d| d.result() == &DkimResult::Pass) {
                AuthResult::Pass
            } else {
                dkim.first()
                    .map_or(AuthResult::None, |d| dkim_result(d.result()))
            };
            report.dkim = Some(best);
            ar = ar.with_dkim_results(&dkim, &header_from);
            if req.dmarc
                && let Some(spf) = &spf_out
            {
                let from_domain = req.mail_from.rsplit_once('@').map_or(req.helo, |(_, d)| d);
                let dmarc = self
                    .inner
                    .verify_dmarc(DmarcParameters::new(msg, &dkim, from_domain, spf))
                    .await;
                let policy = match dmarc.policy() {
                    Policy::Reject => DmarcPolicy::Reject,
                    Policy::Quarantine => DmarcPolicy::Quarantine,
                    Policy::None | Policy::Unspecified => DmarcPolicy::None,
                };
                report.dmarc = Some((dmarc_result(&dmarc.result()), policy));
                ar = ar.with_dmarc_result(&dmarc);
            }
        } else if need_dkim {
            report.dkim = Some(AuthResult::None);
        }
        let mut header = ar.to_header();
        if report.dkim == Some(AuthResult::None) && header.ends_with("\r\n") {
            // RFC 8601 §2.7.1: `dkim=none` when the message was not signed.
            header.truncate(header.len() - 2);
            header.push_str(";\r\n\tdkim=none\r\n");
        }
        report.header = header;
        report
    }
}
