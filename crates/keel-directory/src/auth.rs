//! Authentication and the security policy (guide §7.2.1, §7.6, §7.7, §12.6; requirements-3 §3).
//!
//! Login names: a bare name logs in for the primary domain — or, on a listening IP bound to a
//! domain, for that domain (guide §7.7); a full `login@domain` for any domain. Domain aliases
//! and a user's extra addresses never log in (guide §7.6; only the login name is a login).
//!
//! Account lockout (guide §12.6): failed logins are counted per account *and client IP*
//! ("N failed logins from one IP"); at N the account is locked for the lock duration — for
//! every IP by default ([`LockScope::Account`], the guide's behaviour) or only for that IP
//! ([`LockScope::AccountAndIp`]). A lock is separate from the user's `enabled` flag (guide
//! §8.2) and ends automatically (the clock decides) or through [`Directory::unlock_all`].

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Directory;
use crate::docs::{self, DOMAIN, Docs, LOCKOUT, SECURITY_POLICY, SETTING, USER, USERSTAT, UserDoc};
use crate::error::{DirResult, DirectoryError};
use crate::model::{AuthedUser, Domain, Group, LoginStats};
use crate::password::{self, Verification};

/// Security policy level (guide §12.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// No restrictions.
    #[default]
    NoRestriction,
    /// Authentication must be secure: PLAIN/LOGIN only inside TLS, or SCRAM / CRAM-MD5
    /// (requirements-1 §0.8).
    RequireSecureAuth,
    /// Every client service must be encrypted; SMTP instead requires secure authentication.
    RequireEncryptedConnection,
}

/// SASL mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// PLAIN (RFC 4616) — also IMAP LOGIN, POP3 USER/PASS and HTTP Basic.
    Plain,
    /// LOGIN.
    Login,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// CRAM-MD5 (legacy, off by default).
    CramMd5,
}

impl Mechanism {
    /// The SASL name.
    pub fn sasl_name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::CramMd5 => "CRAM-MD5",
        }
    }
    /// Whether the mechanism protects the password without TLS.
    pub fn is_secure_without_tls(self) -> bool {
        matches!(self, Self::ScramSha256 | Self::CramMd5)
    }
}

/// Which mechanisms are enabled (guide §12.6 "Supported authentication methods").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MechanismSettings {
    /// PLAIN.
    pub plain: bool,
    /// LOGIN.
    pub login: bool,
    /// SCRAM-SHA-256.
    pub scram_sha256: bool,
    /// CRAM-MD5: needs reversible passwords, which Keel does not store; off by default.
    pub cram_md5: bool,
}

impl Default for MechanismSettings {
    fn default() -> Self {
        Self {
            plain: true,
            login: true,
            scram_sha256: true,
            cram_md5: false,
        }
    }
}

impl MechanismSettings {
    /// Whether `m` is enabled.
    pub fn enabled(&self, m: Mechanism) -> bool {
        match m {
            Mechanism::Plain => self.plain,
            Mechanism::Login => self.login,
            Mechanism::ScramSha256 => self.scram_sha256,
            Mechanism::CramMd5 => self.cram_md5,
        }
    }
}

/// Whether a lock applies to the account everywhere or only to the offending IP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockScope {
    /// The account is locked for every client (the guide's behaviour).
    #[default]
    Account,
    /// Only logins from the IP that failed are refused (no denial of service by strangers).
    AccountAndIp,
}

/// Account lockout settings (guide §12.6). The guide gives no defaults; Keel uses 5 failures
/// and 5 minutes (the values of Kerio's own installation and of requirements-3 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockoutPolicy {
    /// "Enable account lockout".
    pub enabled: bool,
    /// Failed logins from one IP before the lock.
    pub max_failures: u32,
    /// Lock duration in seconds ("Locked account becomes unlocked after …").
    pub lock_seconds: u64,
    /// Lock scope.
    pub scope: LockScope,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 5,
            lock_seconds: 300,
            scope: LockScope::Account,
        }
    }
}

/// The Security Policy tab (guide §12.6), stored as `setting/security_policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityPolicy {
    /// Policy level.
    pub mode: SecurityMode,
    /// IP address group exempt from the policy level.
    pub exempt_ip_group: Option<String>,
    /// Enabled mechanisms.
    pub mechanisms: MechanismSettings,
    /// Account lockout.
    pub lockout: LockoutPolicy,
}

/// The secret presented.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A cleartext password (PLAIN, LOGIN, IMAP LOGIN, POP3 PASS, HTTP Basic).
    Plain(&'a str),
}

/// A login attempt.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The login name as typed.
    pub login: &'a str,
    /// The secret.
    pub secret: Credential<'a>,
    /// The client's IP.
    pub client_ip: IpAddr,
    /// Whether the connection is TLS-protected.
    pub secure_channel: bool,
    /// The SASL mechanism used.
    pub mechanism: Mechanism,
    /// The service (`imap`, `pop3`, `smtp`, `submission`, `http`, …).
    pub service: &'a str,
    /// The listening IP the client connected to (guide §7.7 domain binding).
    pub local_ip: Option<IpAddr>,
}

/// Why a login failed. For the server log only: peers get one generic answer
/// ([`AuthError::PUBLIC_MESSAGE`]) so lockout and wrong passwords look the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The mechanism is disabled by the policy.
    #[error("the {0} mechanism is disabled by the security policy")]
    MechanismDisabled(&'static str),
    /// The policy requires secure authentication or an encrypted connection.
    #[error("the security policy requires {0}")]
    PolicyViolation(&'static str),
    /// No such login.
    #[error("unknown user")]
    UnknownUser,
    /// Wrong password.
    #[error("wrong password")]
    BadPassword,
    /// The account has no password set.
    #[error("the account has no password")]
    NoPassword,
    /// The account is disabled (guide §8.2).
    #[error("the account is disabled")]
    Disabled,
    /// The account is locked after failed logins (guide §12.6).
    #[error("the account is locked until {until} (Unix time) after repeated failed logins")]
    Locked {
        /// Unix seconds at which the lock ends.
        until: i64,
    },
    /// The stored hash cannot be read.
    #[error("the stored password hash is in an unsupported format")]
    UnsupportedHash,
    /// The directory failed.
    #[error("directory error: {0}")]
    Internal(String),
}

impl AuthError {
    /// The only text a peer may see.
    pub const PUBLIC_MESSAGE: &'static str = "authentication failed";
}

/// A security-log event (guide §25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum SecurityEvent {
    /// A failed login.
    LoginFailed {
        /// The login name as typed.
        login: String,
        /// The user key, when the login named an existing user.
        user: Option<String>,
        /// Client IP.
        ip: IpAddr,
        /// Service.
        service: String,
        /// Why (an [`AuthError`] text).
        reason: String,
    },
    /// An account was locked.
    AccountLocked {
        /// The user.
        user: String,
        /// The IP whose failures caused the lock.
        ip: IpAddr,
        /// Service.
        service: String,
        /// Unix seconds at which the lock ends.
        until: i64,
    },
    /// The admin unlocked one account (guide §8.2 "Account is locked" cleared).
    AccountUnlocked {
        /// The user.
        user: String,
        /// Whether it was locked at that moment.
        was_locked: bool,
    },
    /// The admin unlocked every account.
    AccountsUnlocked {
        /// How many accounts were locked.
        count: usize,
    },
    /// A legacy password hash was replaced by Argon2id after a successful login.
    PasswordHashUpgraded {
        /// The user.
        user: String,
    },
}

/// Receiver of security events.
pub type SecuritySink = Arc<dyn Fn(SecurityEvent) + Send + Sync>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LockState {
    user: String,
    ip: String,
    failures: u32,
    last_failure: i64,
    locked_until: Option<i64>,
}

fn lock_key(user: &str, ip: IpAddr) -> String {
    format!("{user}|{ip}")
}

/// Maps a login name to a user key (guide §7.2.1, §7.6, §7.7). Only `login@domain` of a real
/// domain, or a bare login of the primary (or IP-bound) domain, logs in.
pub(crate) fn login_to_key(
    d: &mut dyn Docs,
    login: &str,
    local_ip: Option<IpAddr>,
) -> DirResult<Option<String>> {
    let login = login.trim().to_lowercase();
    if login.is_empty() {
        return Ok(None);
    }
    let key = match login.rsplit_once('@') {
        Some((l, dom)) => {
            // A domain alias is not a domain: no login (guide §7.6).
            if l.is_empty() || d.get_raw(DOMAIN, dom)?.is_none() {
                return Ok(None);
            }
            login.clone()
        }
        None => {
            let bound = match local_ip {
                Some(ip) => docs::list::<Domain>(d, DOMAIN, None)?
                    .into_iter()
                    .find(|dm| dm.bound_ip == Some(ip))
                    .map(|dm| dm.name),
                None => None,
            };
            let domain = match bound {
                Some(b) => b,
                None => match docs::primary_domain(d)? {
                    Some(p) => p,
                    None => return Ok(None),
                },
            };
            format!("{login}@{domain}")
        }
    };
    Ok(d.get_raw(USER, &key)?.map(|_| key))
}

fn is_smtp(service: &str) -> bool {
    matches!(
        service.to_ascii_lowercase().as_str(),
        "smtp" | "smtps" | "submission"
    )
}

impl From<DirectoryError> for AuthError {
    fn from(e: DirectoryError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl Directory {
    /// The security policy (defaults when never saved).
    pub fn security_policy(&self) -> DirResult<SecurityPolicy> {
        Ok(
            docs::get::<SecurityPolicy>(&mut self.reader(), SETTING, SECURITY_POLICY)?
                .unwrap_or_default(),
        )
    }

    /// Saves the security policy. The exempt group must exist; at least 1 failure and 1 second.
    pub fn set_security_policy(&self, policy: SecurityPolicy) -> DirResult<()> {
        if policy.lockout.max_failures == 0 || policy.lockout.lock_seconds == 0 {
            return Err(DirectoryError::Invalid(
                "account lockout needs at least 1 failed login and a lock duration of at least 1 \
                 second"
                    .into(),
            ));
        }
        if let Some(g) = &policy.exempt_ip_group
            && self.ip_groups()?.get(g).is_none()
        {
            return Err(DirectoryError::NoSuchIpGroup(g.clone()));
        }
        self.txn(|tx| tx.put(SETTING, SECURITY_POLICY, "", &policy))
    }

    /// The mechanisms to offer to a client (for EHLO / CAPABILITY), in the order of preference
    /// (SCRAM first). Under "Require secure authentication" (and for SMTP under "Require
    /// encrypted connection") PLAIN and LOGIN are offered only inside TLS unless the client is
    /// in the exempt group (guide §12.6); under "Require encrypted connection" other services
    /// offer nothing before TLS.
    pub fn mechanisms_offered(
        &self,
        client_ip: IpAddr,
        secure_channel: bool,
        service: &str,
    ) -> DirResult<Vec<Mechanism>> {
        let policy = self.security_policy()?;
        let all = [
            Mechanism::ScramSha256,
            Mechanism::CramMd5,
            Mechanism::Plain,
            Mechanism::Login,
        ];
        let mut out = Vec::new();
        for m in all {
            if policy.mechanisms.enabled(m)
                && self
                    .policy_allows(&policy, m, secure_channel, client_ip, service)?
                    .is_ok()
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn policy_allows(
        &self,
        policy: &SecurityPolicy,
        mechanism: Mechanism,
        secure_channel: bool,
        client_ip: IpAddr,
        service: &str,
    ) -> DirResult<Result<(), AuthError>> {
        let exempt = || -> DirResult<bool> {
            Ok(match &policy.exempt_ip_group {
                Some(g) => self.ip_groups()?.contains(g, client_ip),
                None => false,
            })
        };
        let secure_auth = secure_channel || mechanism.is_secure_without_tls();
        Ok(match policy.mode {
            SecurityMode::NoRestriction => Ok(()),
            SecurityMode::RequireSecureAuth => {
                if secure_auth || exempt()? {
                    Ok(())
                } else {
                    Err(AuthError::PolicyViolation("secure authentication"))
                }
            }
            SecurityMode::RequireEncryptedConnection => {
                // guide §12.6: SMTP stays open in plaintext but needs secure authentication.
                let ok = if is_smtp(service) {
                    secure_auth
                } else {
                    secure_channel
                };
                if ok || exempt()? {
                    Ok(())
                } else if is_smtp(service) {
                    Err(AuthError::PolicyViolation("secure authentication"))
                } else {
                    Err(AuthError::PolicyViolation("an encrypted connection"))
                }
            }
        })
    }

    fn fail(&self, req: &AuthRequest<'_>, user: Option<&str>, err: AuthError) -> AuthError {
        self.emit(SecurityEvent::LoginFailed {
            login: req.login.to_string(),
            user: user.map(str::to_string),
            ip: req.client_ip,
            service: req.service.to_string(),
            reason: err.to_string(),
        });
        err
    }

    /// Checks everything but the secret: policy, login name, disabled, lockout. Returns the
    /// user's document.
    fn precheck(
        &self,
        req: &AuthRequest<'_>,
        policy: &SecurityPolicy,
    ) -> Result<UserDoc, (Option<String>, AuthError)> {
        if !policy.mechanisms.enabled(req.mechanism) {
            return Err((
                None,
                AuthError::MechanismDisabled(req.mechanism.sasl_name()),
            ));
        }
        self.policy_allows(
            policy,
            req.mechanism,
            req.secure_channel,
            req.client_ip,
            req.service,
        )
        .map_err(|e| (None, e.into()))?
        .map_err(|e| (None, e))?;
        let mut r = self.reader();
        let key = login_to_key(&mut r, req.login, req.local_ip)
            .map_err(|e| (None, e.into()))?
            .ok_or((None, AuthError::UnknownUser))?;
        let doc = docs::get_user(&mut r, &key)
            .map_err(|e| (Some(key.clone()), e.into()))?
            .ok_or((None, AuthError::UnknownUser))?;
        if !doc.user.enabled {
            return Err((Some(key), AuthError::Disabled));
        }
        if let Some(until) = self
            .locked_until(&key, req.client_ip, policy)
            .map_err(|e| (Some(key.clone()), e.into()))?
        {
            return Err((Some(key), AuthError::Locked { until }));
        }
        Ok(doc)
    }

    /// When the account is locked for this IP, the end of the lock.
    fn locked_until(
        &self,
        user: &str,
        ip: IpAddr,
        policy: &SecurityPolicy,
    ) -> DirResult<Option<i64>> {
        if !policy.lockout.enabled {
            return Ok(None);
        }
        let now = self.clock.unix();
        let states: Vec<LockState> = match policy.lockout.scope {
            LockScope::Account => docs::list(&mut self.reader(), LOCKOUT, Some(user))?,
            LockScope::AccountAndIp => docs::get(&mut self.reader(), LOCKOUT, &lock_key(user, ip))?
                .into_iter()
                .collect(),
        };
        Ok(states
            .iter()
            .filter_map(|s| s.locked_until)
            .filter(|u| *u > now)
            .max())
    }

    /// Whether an account is locked (for any IP), and until when.
    pub fn account_locked_until(&self, user: &str) -> DirResult<Option<i64>> {
        let key = self.user_key(&mut self.reader(), user)?;
        let policy = SecurityPolicy {
            lockout: LockoutPolicy {
                scope: LockScope::Account,
                ..self.security_policy()?.lockout
            },
            ..SecurityPolicy::default()
        };
        self.locked_until(&key, IpAddr::from([0, 0, 0, 0]), &policy)
    }

    /// Counts a failed login of an existing user from an IP; locks at the threshold.
    fn count_failure(&self, user: &str, req: &AuthRequest<'_>, policy: &SecurityPolicy) {
        if !policy.lockout.enabled {
            return;
        }
        let now = self.clock.unix();
        let lk = lock_key(user, req.client_ip);
        let lp = policy.lockout;
        let res = self.txn(|tx| {
            let mut s = docs::get::<LockState>(tx, LOCKOUT, &lk)?.unwrap_or_else(|| LockState {
                user: user.to_string(),
                ip: req.client_ip.to_string(),
                ..LockState::default()
            });
            if s.locked_until.is_some_and(|u| u > now) {
                return Ok(None);
            }
            // Failures older than the lock duration are forgotten.
            if s.locked_until.is_some()
                || now.saturating_sub(s.last_failure)
                    > i64::try_from(lp.lock_seconds).unwrap_or(i64::MAX)
            {
                s.failures = 0;
                s.locked_until = None;
            }
            s.failures += 1;
            s.last_failure = now;
            let mut locked = None;
            if s.failures >= lp.max_failures {
                let until = now.saturating_add(i64::try_from(lp.lock_seconds).unwrap_or(i64::MAX));
                s.locked_until = Some(until);
                s.failures = 0;
                locked = Some(until);
            }
            tx.put(LOCKOUT, &lk, user, &s)?;
            Ok(locked)
        });
        if let Ok(Some(until)) = res {
            self.emit(SecurityEvent::AccountLocked {
                user: user.to_string(),
                ip: req.client_ip,
                service: req.service.to_string(),
                until,
            });
        }
    }

    /// Records a successful login: clears the failure counter of this IP, updates statistics.
    fn record_success(&self, user: &str, req: &AuthRequest<'_>) -> DirResult<()> {
        let now = self.clock.unix();
        let lk = lock_key(user, req.client_ip);
        let service = req.service.to_ascii_lowercase();
        self.txn(|tx| {
            if let Some(s) = docs::get::<LockState>(tx, LOCKOUT, &lk)?
                && s.locked_until.is_none_or(|u| u <= now)
            {
                tx.delete(LOCKOUT, &lk)?;
            }
            let mut st = docs::get::<LoginStats>(tx, USERSTAT, user)?.unwrap_or_default();
            st.last_login = Some(now);
            st.login_count += 1;
            let s = st.services.entry(service.clone()).or_default();
            s.last_login = Some(now);
            s.login_count += 1;
            tx.put(USERSTAT, user, user, &st)
        })
    }

    fn authed(&self, doc: &UserDoc) -> Result<AuthedUser, AuthError> {
        let groups = docs::list::<Group>(&mut self.reader(), docs::GROUP, None)?;
        Ok(AuthedUser {
            user: doc.user.address.clone(),
            domain: doc.user.domain.clone(),
            admin_rights: docs::effective_rights(&doc.user, &groups),
            public_folder_admin: doc.user.public_folder_admin,
            domain_admin: docs::effective_domain_admin(&doc.user, &groups),
        })
    }

    /// Authenticates a login (guide §7.2.1, §7.7, §12.6). Failures are reported to the
    /// security sink; the error kind is for the server log only.
    pub fn authenticate(&self, req: &AuthRequest<'_>) -> Result<AuthedUser, AuthError> {
        let policy = self.security_policy()?;
        let Credential::Plain(pw) = req.secret;
        let doc = match self.precheck(req, &policy) {
            Ok(d) => d,
            Err((user, e)) => {
                // Spend the time of a hash check anyway: timing must not reveal the reason.
                if matches!(
                    e,
                    AuthError::UnknownUser | AuthError::Disabled | AuthError::Locked { .. }
                ) {
                    password::dummy_verify(pw, &self.hash_params);
                }
                return Err(self.fail(req, user.as_deref(), e));
            }
        };
        let key = doc.user.address.clone();
        let Some(hash) = doc.secret.hash.clone() else {
            password::dummy_verify(pw, &self.hash_params);
            return Err(self.fail(req, Some(&key), AuthError::NoPassword));
        };
        match password::verify_password(pw, &hash) {
            Verification::Match { upgrade } => {
                self.record_success(&key, req)?;
                if upgrade || doc.secret.scram_sha256.is_none() {
                    self.upgrade_hash(&key, &hash, pw);
                }
                self.authed(&doc)
            }
            Verification::Mismatch => {
                self.count_failure(&key, req, &policy);
                Err(self.fail(req, Some(&key), AuthError::BadPassword))
            }
            Verification::Unsupported => {
                Err(self.fail(req, Some(&key), AuthError::UnsupportedHash))
            }
        }
    }

    /// Replaces a legacy hash by Argon2id plus SCRAM keys ("upgrade on next login",
    /// requirements-1 §8.2) unless the password changed meanwhile.
    fn upgrade_hash(&self, key: &str, old_hash: &str, pw: &str) {
        let Ok(secret) = password::new_secret(pw, &self.hash_params) else {
            return;
        };
        let done = self.txn(|tx| {
            let Some(mut doc) = docs::get_user(tx, key)? else {
                return Ok(false);
            };
            if doc.secret.hash.as_deref() != Some(old_hash) {
                return Ok(false);
            }
            doc.secret = secret.clone();
            let parent = doc.user.domain.clone();
            tx.put(USER, key, &parent, &doc)?;
            Ok(true)
        });
        if let Ok(true) = done {
            self.emit(SecurityEvent::PasswordHashUpgraded {
                user: key.to_string(),
            });
        }
    }

    /// For mechanisms that verify the secret themselves (SCRAM-SHA-256): after the client proof
    /// was verified with [`Directory::scram_credentials`], checks policy, login name, disabled
    /// and lockout, and records the login. `req.secret` is ignored.
    pub fn check_login_allowed(&self, req: &AuthRequest<'_>) -> Result<AuthedUser, AuthError> {
        let policy = self.security_policy()?;
        match self.precheck(req, &policy) {
            Ok(doc) => {
                self.record_success(&doc.user.address, req)?;
                self.authed(&doc)
            }
            Err((user, e)) => Err(self.fail(req, user.as_deref(), e)),
        }
    }

    /// For mechanisms that verify the secret themselves: records a failed proof so it counts
    /// toward the lockout and reaches the security log. `req.secret` is ignored.
    pub fn record_failed_login(&self, req: &AuthRequest<'_>) {
        let Ok(policy) = self.security_policy() else {
            return;
        };
        let key = login_to_key(&mut self.reader(), req.login, req.local_ip)
            .ok()
            .flatten();
        if let Some(k) = &key {
            self.count_failure(k, req, &policy);
        }
        let _ = self.fail(req, key.as_deref(), AuthError::BadPassword);
    }

    /// Unlocks one account (guide §8.2): clears its locks and failure counters from every
    /// IP. Returns whether it was locked. An unknown user is `NoSuchUser`.
    pub fn unlock_user(&self, address: &str) -> DirResult<bool> {
        let now = self.clock.unix();
        let key = {
            let mut r = self.reader();
            self.user_key(&mut r, address)?
        };
        let was_locked = self.txn(|tx| {
            if docs::get_user(tx, &key)?.is_none() {
                return Err(crate::DirectoryError::NoSuchUser(key.clone()));
            }
            let mut locked = false;
            for d in tx.list_raw(LOCKOUT, Some(&key))? {
                let s: LockState = serde_json::from_value(d.body.clone()).unwrap_or_default();
                locked |= s.locked_until.is_some_and(|u| u > now);
                tx.delete(LOCKOUT, &d.key)?;
            }
            Ok(locked)
        })?;
        self.emit(SecurityEvent::AccountUnlocked {
            user: key,
            was_locked,
        });
        Ok(was_locked)
    }

    /// "Unlock all accounts now" (guide §12.6): clears every lock and failure counter; does not
    /// touch disabled accounts (guide §8.2). Returns how many accounts were locked.
    pub fn unlock_all(&self) -> DirResult<usize> {
        let now = self.clock.unix();
        let count = self.txn(|tx| {
            let all = tx.list_raw(LOCKOUT, None)?;
            let mut locked = std::collections::BTreeSet::new();
            for d in all {
                let s: LockState = serde_json::from_value(d.body.clone()).unwrap_or_default();
                if s.locked_until.is_some_and(|u| u > now) {
                    locked.insert(d.parent.clone());
                }
                tx.delete(LOCKOUT, &d.key)?;
            }
            Ok(locked.len())
        })?;
        self.emit(SecurityEvent::AccountsUnlocked { count });
        Ok(count)
    }
}
