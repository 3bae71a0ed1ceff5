//! Server-side SASL mechanisms shared by SMTP, POP3 and IMAP (RFC 4422; requirements-3 §3.2).
//!
//! Sans-I/O: a [`SaslServer`] is fed the *decoded* client data one step at a time and answers
//! with a challenge, a success or a failure. The protocol layer does the base64 and its own
//! conventions (`=` for an empty initial response, `*` to cancel, the continuation prefix).
//!
//! Mechanisms:
//! - `PLAIN` (RFC 4616): `authzid NUL authcid NUL passwd`; the authorization identity must be
//!   empty or name the authenticated user (no impersonation here; the master-password form of
//!   guide §12.6 is a later extension).
//! - `LOGIN` (draft-murchison-sasl-login): challenges `Username:` and `Password:`.
//! - `SCRAM-SHA-256` (RFC 5802, RFC 7677) without channel binding.
//!
//! # Implementation notes
//!
//! - Every method calls the [`Directory`] and so blocks: async callers run [`SaslServer::step`]
//!   in `spawn_blocking` (DESIGN §11).
//! - Failures carry a reason for the server log only. Peers get one answer
//!   ([`AuthError::PUBLIC_MESSAGE`]) so they cannot tell an unknown user from a wrong password
//!   or a locked account.
//! - SCRAM for an unknown user (or one whose SCRAM keys are not computed yet) continues with a
//!   fake salt derived from the login name and a server secret, then fails at the proof, so the
//!   server-first message does not reveal whether the user exists (RFC 5802 §9 "…the server
//!   SHOULD …"). The secret is random per process: after a restart the fake salt of a name
//!   changes. TODO: keep the secret in the settings so it survives restarts.
//! - SCRAM proofs are verified with the [`crate::password`] helpers; failures count toward the
//!   lockout through [`Directory::record_failed_login`], and success still has to pass
//!   [`Directory::check_login_allowed`] (policy, disabled, lockout, login statistics).
//! - SASLprep (RFC 4013) is not applied (see [`crate::password`]); names are used as given.

use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::Directory;
use crate::auth::{AuthError, AuthRequest, Credential, Mechanism};
use crate::model::AuthedUser;
use crate::password::{self, MIN_SCRAM_ITERATIONS, ScramCredentials};

/// Longest login name accepted from a client, in bytes.
pub const MAX_SASL_LOGIN_BYTES: usize = 512;
/// Length of the random part the server adds to the SCRAM nonce, in bytes before base64.
pub const SCRAM_SERVER_NONCE_BYTES: usize = 18;
/// Length of the fake SCRAM salt used for unknown users (the same as real salts).
pub const SCRAM_FAKE_SALT_BYTES: usize = 16;

/// Where and how the client connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslContext {
    /// The client's IP.
    pub client_ip: IpAddr,
    /// The listening IP the client connected to (guide §7.7 domain binding).
    pub local_ip: Option<IpAddr>,
    /// Whether the connection is TLS-protected.
    pub secure: bool,
    /// The service (`pop3`, `imap`, `smtp`, `submission`, …).
    pub service: String,
}

/// Why a mechanism cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The mechanism is not implemented.
    #[error("unsupported SASL mechanism {0}")]
    UnknownMechanism(String),
    /// The mechanism is disabled, or not allowed on this connection by the security policy.
    #[error("SASL mechanism {0} is not available on this connection")]
    MechanismUnavailable(String),
    /// The directory failed.
    #[error("directory error: {0}")]
    Internal(String),
}

/// Kinds of failure, so the protocol can pick its reply (e.g. POP3 `[AUTH]` vs `[SYS/TEMP]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslFailureKind {
    /// The client data does not follow the mechanism's syntax.
    Malformed,
    /// The credentials were refused (unknown user, wrong password, locked, disabled, policy).
    Credentials,
    /// The server could not decide (directory error): try again later.
    Internal,
}

/// A failed exchange. `reason` is for the server log; never send it to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslFailure {
    /// What kind of failure.
    pub kind: SaslFailureKind,
    /// Why, for the log.
    pub reason: String,
}

impl SaslFailure {
    fn malformed(reason: impl Into<String>) -> Self {
        Self {
            kind: SaslFailureKind::Malformed,
            reason: reason.into(),
        }
    }

    fn from_auth(e: &AuthError) -> Self {
        Self {
            kind: match e {
                AuthError::Internal(_) => SaslFailureKind::Internal,
                _ => SaslFailureKind::Credentials,
            },
            reason: e.to_string(),
        }
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (raw bytes; the protocol encodes them) and wait for a response.
    Challenge(Vec<u8>),
    /// Authenticated. `server_final` is additional data to send with the success (SCRAM's
    /// `v=` message).
    Success {
        /// The authenticated user.
        user: AuthedUser,
        /// Additional data with success.
        server_final: Option<Vec<u8>>,
    },
    /// Failed; the exchange is over.
    Failure(SaslFailure),
}

#[derive(Debug)]
enum State {
    PlainStart,
    LoginStart,
    LoginPassword { login: String },
    ScramStart,
    ScramFinal(Box<ScramPending>),
    Done,
}

#[derive(Debug)]
struct ScramPending {
    login: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// `None` for an unknown user (fake salt): the proof always fails.
    creds: Option<ScramCredentials>,
}

/// A server-side SASL exchange.
#[derive(Debug)]
pub struct SaslServer {
    mechanism: Mechanism,
    ctx: SaslContext,
    state: State,
}

impl SaslServer {
    /// Starts an exchange. Fails, naming the mechanism, when it is unknown, disabled, or not
    /// allowed on this connection by the security policy (guide §12.6).
    pub fn start(dir: &Directory, mechanism: &str, ctx: SaslContext) -> Result<Self, SaslError> {
        let name = mechanism.trim().to_ascii_uppercase();
        // RFC 4422 §3.1: mechanism names are case-insensitive on the wire.
        let (mech, state) = match name.as_str() {
            "PLAIN" => (Mechanism::Plain, State::PlainStart),
            "LOGIN" => (Mechanism::Login, State::LoginStart),
            "SCRAM-SHA-256" => (Mechanism::ScramSha256, State::ScramStart),
            _ => return Err(SaslError::UnknownMechanism(name)),
        };
        let offered = dir
            .mechanisms_offered(ctx.client_ip, ctx.secure, &ctx.service)
            .map_err(|e| SaslError::Internal(e.to_string()))?;
        if !offered.contains(&mech) {
            return Err(SaslError::MechanismUnavailable(name));
        }
        Ok(Self {
            mechanism: mech,
            ctx,
            state,
        })
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feeds the decoded client data (`None`: the client sent no initial response) and
    /// returns what to do next. After a success or failure every further step fails.
    pub fn step(&mut self, dir: &Directory, client: Option<&[u8]>) -> SaslStep {
        let state = std::mem::replace(&mut self.state, State::Done);
        match (state, client) {
            // RFC 4422 §5: with no initial response the server sends an empty challenge.
            (State::PlainStart, None) => self.wait(State::PlainStart, Vec::new()),
            (State::PlainStart, Some(data)) => self.plain(dir, data),
            // draft-murchison-sasl-login §2.
            (State::LoginStart, None) => self.wait(State::LoginStart, b"Username:".to_vec()),
            (State::LoginStart, Some(data)) => match login_text(data) {
                Ok(login) => self.wait(State::LoginPassword { login }, b"Password:".to_vec()),
                Err(f) => SaslStep::Failure(f),
            },
            (State::LoginPassword { login }, Some(data)) => match std::str::from_utf8(data) {
                Ok(pw) => self.check_password(dir, &login, pw),
                Err(_) => SaslStep::Failure(SaslFailure::malformed("password is not UTF-8")),
            },
            (State::ScramStart, None) => self.wait(State::ScramStart, Vec::new()),
            (State::ScramStart, Some(data)) => self.scram_first(dir, data),
            (State::ScramFinal(p), Some(data)) => self.scram_final(dir, &p, data),
            (State::LoginPassword { .. } | State::ScramFinal(_), None) => {
                SaslStep::Failure(SaslFailure::malformed("missing client response"))
            }
            (State::Done, _) => {
                SaslStep::Failure(SaslFailure::malformed("the exchange is already over"))
            }
        }
    }

    fn wait(&mut self, next: State, challenge: Vec<u8>) -> SaslStep {
        self.state = next;
        SaslStep::Challenge(challenge)
    }

    fn request<'a>(&'a self, login: &'a str, pw: &'a str) -> AuthRequest<'a> {
        AuthRequest {
            login,
            secret: Credential::Plain(pw),
            client_ip: self.ctx.client_ip,
            secure_channel: self.ctx.secure,
            mechanism: self.mechanism,
            service: &self.ctx.service,
            local_ip: self.ctx.local_ip,
        }
    }

    fn check_password(&self, dir: &Directory, login: &str, pw: &str) -> SaslStep {
        match dir.authenticate(&self.request(login, pw)) {
            Ok(user) => SaslStep::Success {
                user,
                server_final: None,
            },
            Err(e) => SaslStep::Failure(SaslFailure::from_auth(&e)),
        }
    }

    /// RFC 4616 §2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`.
    fn plain(&self, dir: &Directory, data: &[u8]) -> SaslStep {
        let mut parts = data.split(|b| *b == 0);
        let (Some(authz), Some(authc), Some(pw), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return SaslStep::Failure(SaslFailure::malformed(
                "PLAIN message needs exactly three NUL-separated fields",
            ));
        };
        let (Ok(authz), Ok(authc), Ok(pw)) = (
            std::str::from_utf8(authz),
            std::str::from_utf8(authc),
            std::str::from_utf8(pw),
        ) else {
            return SaslStep::Failure(SaslFailure::malformed("PLAIN fields must be UTF-8"));
        };
        // RFC 4616 §2: authcid and passwd are non-empty.
        if authc.is_empty() || pw.is_empty() || authc.len() > MAX_SASL_LOGIN_BYTES {
            return SaslStep::Failure(SaslFailure::malformed("empty or oversized PLAIN field"));
        }
        match self.check_password(dir, authc, pw) {
            // RFC 4616 §2: authorize only as oneself; another authzid is refused.
            SaslStep::Success { user, .. }
                if !authz.is_empty()
                    && !authz.eq_ignore_ascii_case(authc)
                    && !authz.eq_ignore_ascii_case(&user.user) =>
            {
                SaslStep::Failure(SaslFailure {
                    kind: SaslFailureKind::Credentials,
                    reason: format!("{} may not act as {authz}", user.user),
                })
            }
            other => other,
        }
    }

    /// RFC 5802 §5.1, §7: `client-first-message = gs2-header client-first-message-bare`.
    fn scram_first(&mut self, dir: &Directory, data: &[u8]) -> SaslStep {
        let Ok(text) = std::str::from_utf8(data) else {
            return SaslStep::Failure(SaslFailure::malformed("SCRAM message is not UTF-8"));
        };
        let parsed = match parse_client_first(text) {
            Ok(p) => p,
            Err(f) => return SaslStep::Failure(f),
        };
        let creds = match dir.scram_credentials(&parsed.login, self.ctx.local_ip) {
            Ok(c) => c,
            Err(e) => {
                return SaslStep::Failure(SaslFailure {
                    kind: SaslFailureKind::Internal,
                    reason: e.to_string(),
                });
            }
        };
        let (salt_b64, iterations) = match &creds {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (B64.encode(fake_salt(&parsed.login)), MIN_SCRAM_ITERATIONS),
        };
        let mut rnd = [0u8; SCRAM_SERVER_NONCE_BYTES];
        rand::fill(&mut rnd[..]);
        let nonce = format!("{}{}", parsed.client_nonce, B64.encode(rnd));
        // RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
        let server_first = format!("r={nonce},s={salt_b64},i={iterations}");
        let pending = ScramPending {
            login: parsed.login,
            gs2_header: parsed.gs2_header,
            client_first_bare: parsed.bare,
            server_first: server_first.clone(),
            nonce,
            creds,
        };
        self.wait(
            State::ScramFinal(Box::new(pending)),
            server_first.into_bytes(),
        )
    }

    /// RFC 5802 §5.1, §7: `client-final-message = channel-binding "," nonce ["," extensions]
    /// "," proof`.
    fn scram_final(&self, dir: &Directory, p: &ScramPending, data: &[u8]) -> SaslStep {
        let Ok(text) = std::str::from_utf8(data) else {
            return SaslStep::Failure(SaslFailure::malformed("SCRAM message is not UTF-8"));
        };
        let Some((without_proof, proof_attr)) = text.rsplit_once(",p=") else {
            return SaslStep::Failure(SaslFailure::malformed("client-final lacks the proof"));
        };
        let mut attrs = without_proof.split(',');
        let cb = attrs.next().and_then(|a| a.strip_prefix("c="));
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r="));
        // RFC 5802 §7: c= is base64 of the gs2 header (no channel-binding data: "n" or "y").
        if cb != Some(B64.encode(&p.gs2_header).as_str()) {
            return SaslStep::Failure(SaslFailure::malformed("channel binding does not match"));
        }
        if nonce != Some(p.nonce.as_str()) {
            return SaslStep::Failure(SaslFailure::malformed("nonce does not match"));
        }
        let Ok(proof) = B64.decode(proof_attr) else {
            return SaslStep::Failure(SaslFailure::malformed("proof is not base64"));
        };
        // RFC 5802 §3: AuthMessage := client-first-message-bare + "," +
        //   server-first-message + "," + client-final-message-without-proof
        let auth_message = format!(
            "{},{},{}",
            p.client_first_bare, p.server_first, without_proof
        );
        let valid = p.creds.as_ref().is_some_and(|c| {
            password::scram_verify_client_proof(c, auth_message.as_bytes(), &proof)
        });
        let req = self.request(&p.login, "");
        if !valid {
            // Counts toward the lockout (guide §12.6) and reaches the security log.
            dir.record_failed_login(&req);
            return SaslStep::Failure(SaslFailure {
                kind: SaslFailureKind::Credentials,
                reason: if p.creds.is_some() {
                    "wrong SCRAM proof".to_owned()
                } else {
                    "unknown user or no SCRAM keys".to_owned()
                },
            });
        }
        let user = match dir.check_login_allowed(&req) {
            Ok(u) => u,
            Err(e) => return SaslStep::Failure(SaslFailure::from_auth(&e)),
        };
        let Some(creds) = &p.creds else {
            return SaslStep::Failure(SaslFailure::malformed("unreachable: no credentials"));
        };
        match password::scram_server_signature(creds, auth_message.as_bytes()) {
            // RFC 5802 §7: server-final-message = verifier ("v=" base64).
            Ok(sig) => SaslStep::Success {
                user,
                server_final: Some(format!("v={}", B64.encode(sig)).into_bytes()),
            },
            Err(e) => SaslStep::Failure(SaslFailure {
                kind: SaslFailureKind::Internal,
                reason: e.to_string(),
            }),
        }
    }
}

fn login_text(data: &[u8]) -> Result<String, SaslFailure> {
    let s = std::str::from_utf8(data).map_err(|_| SaslFailure::malformed("login is not UTF-8"))?;
    if s.is_empty() || s.len() > MAX_SASL_LOGIN_BYTES || s.contains('\0') {
        return Err(SaslFailure::malformed("empty or oversized login"));
    }
    Ok(s.to_owned())
}

struct ClientFirst {
    gs2_header: String,
    bare: String,
    login: String,
    client_nonce: String,
}

/// Parses `gs2-cbind-flag "," [authzid] "," client-first-message-bare` (RFC 5802 §7).
fn parse_client_first(text: &str) -> Result<ClientFirst, SaslFailure> {
    let mut it = text.splitn(3, ',');
    let (Some(flag), Some(authz), Some(bare)) = (it.next(), it.next(), it.next()) else {
        return Err(SaslFailure::malformed("client-first lacks the gs2 header"));
    };
    match flag {
        // "n": no channel binding; "y": the client could bind but thinks we cannot, which is
        // true (we advertise no -PLUS mechanism), RFC 5802 §6.
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslFailure::malformed(
                "channel binding requested but not supported (no SCRAM-SHA-256-PLUS)",
            ));
        }
        _ => return Err(SaslFailure::malformed("bad gs2-cbind-flag")),
    }
    let authzid = match authz {
        "" => None,
        a => Some(decode_saslname(
            a.strip_prefix("a=")
                .ok_or_else(|| SaslFailure::malformed("bad gs2 authzid"))?,
        )?),
    };
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    // RFC 5802 §5.1: "m" is reserved for mandatory extensions; fail if present.
    if first.starts_with("m=") {
        return Err(SaslFailure::malformed("unsupported mandatory extension"));
    }
    let login = decode_saslname(
        first
            .strip_prefix("n=")
            .ok_or_else(|| SaslFailure::malformed("client-first lacks n="))?,
    )?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| SaslFailure::malformed("client-first lacks r="))?;
    // RFC 5802 §7: printable ASCII except ",".
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SaslFailure::malformed("bad client nonce"));
    }
    if login.is_empty() || login.len() > MAX_SASL_LOGIN_BYTES {
        return Err(SaslFailure::malformed("empty or oversized user name"));
    }
    if let Some(a) = authzid
        && !a.eq_ignore_ascii_case(&login)
    {
        return Err(SaslFailure::malformed("authzid differs from the user name"));
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authz},"),
        bare: bare.to_owned(),
        login,
        client_nonce: client_nonce.to_owned(),
    })
}

/// RFC 5802 §5.1: in `saslname`, "," is `=2C` and "=" is `=3D`; any other "=" is an error.
fn decode_saslname(s: &str) -> Result<String, SaslFailure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(SaslFailure::malformed("bad escape in user name"));
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn server_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        rand::fill(&mut s[..]);
        s
    })
}

/// A salt that looks real for a login that has none: stable for a name within this process.
fn fake_salt(login: &str) -> [u8; SCRAM_FAKE_SALT_BYTES] {
    let mut input = b"keel scram fake salt\0".to_vec();
    input.extend_from_slice(login.trim().to_lowercase().as_bytes());
    let mac =
        password::hmac_sha256(server_secret(), &input).unwrap_or_else(|_| password::sha256(&input));
    let mut salt = [0u8; SCRAM_FAKE_SALT_BYTES];
    salt.copy_from_slice(&mac[..SCRAM_FAKE_SALT_BYTES]);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{SecurityMode, SecurityPolicy};
    use crate::model::{NewDomain, NewUser};
    use crate::password::HashParams;
    use keel_core::clock::ManualClock;
    use keel_store::MetaStore;
    use keel_store::sqlite::SqliteStore;
    use std::sync::Arc;

    const PW: &str = "pencil-pw1";

    struct Env {
        _tmp: tempfile::TempDir,
        dir: Directory,
    }

    fn env() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&tmp.path().join("meta.db")).unwrap());
        let dir = Directory::with_hash_params(
            meta,
            Arc::new(ManualClock::at(1_700_000_000)),
            HashParams::insecure_fast(),
        );
        dir.add_domain(NewDomain {
            name: "example.com".into(),
            ..Default::default()
        })
        .unwrap();
        dir.add_domain(NewDomain {
            name: "other.test".into(),
            ..Default::default()
        })
        .unwrap();
        dir.add_user(NewUser::new("user@example.com", PW)).unwrap();
        dir.add_user(NewUser::new("bob@other.test", PW)).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn ctx(secure: bool) -> SaslContext {
        SaslContext {
            client_ip: "127.0.0.1".parse().unwrap(),
            local_ip: None,
            secure,
            service: "pop3".into(),
        }
    }

    fn user_of(step: SaslStep) -> String {
        match step {
            SaslStep::Success { user, .. } => user.user,
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn failure(step: SaslStep) -> SaslFailure {
        match step {
            SaslStep::Failure(f) => f,
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn plain_with_initial_response() {
        let e = env();
        let mut s = SaslServer::start(&e.dir, "plain", ctx(true)).unwrap();
        let msg = format!("\0user\0{PW}");
        assert_eq!(
            user_of(s.step(&e.dir, Some(msg.as_bytes()))),
            "user@example.com"
        );
    }

    #[test]
    fn plain_without_initial_response_sends_empty_challenge() {
        let e = env();
        let mut s = SaslServer::start(&e.dir, "PLAIN", ctx(true)).unwrap();
        assert_eq!(s.step(&e.dir, None), SaslStep::Challenge(Vec::new()));
        let msg = format!("bob@other.test\0bob@other.test\0{PW}");
        assert_eq!(
            user_of(s.step(&e.dir, Some(msg.as_bytes()))),
            "bob@other.test"
        );
    }

    #[test]
    fn plain_refuses_other_authzid_and_bad_password_and_garbage() {
        let e = env();
        let mut s = SaslServer::start(&e.dir, "PLAIN", ctx(true)).unwrap();
        let msg = format!("bob@other.test\0user\0{PW}");
        assert_eq!(
            failure(s.step(&e.dir, Some(msg.as_bytes()))).kind,
            SaslFailureKind::Credentials
        );
        let mut s = SaslServer::start(&e.dir, "PLAIN", ctx(true)).unwrap();
        let f = failure(s.step(&e.dir, Some(b"\0user\0wrong-pw")));
        assert_eq!(f.kind, SaslFailureKind::Credentials);
        assert_eq!(f.reason, "wrong password");
        let mut s = SaslServer::start(&e.dir, "PLAIN", ctx(true)).unwrap();
        assert_eq!(
            failure(s.step(&e.dir, Some(b"no nuls"))).kind,
            SaslFailureKind::Malformed
        );
        // The exchange is over.
        assert_eq!(
            failure(s.step(&e.dir, Some(b"\0user\0x"))).kind,
            SaslFailureKind::Malformed
        );
    }

    #[test]
    fn login_mechanism_challenges() {
        let e = env();
        let mut s = SaslServer::start(&e.dir, "LOGIN", ctx(true)).unwrap();
        assert_eq!(
            s.step(&e.dir, None),
            SaslStep::Challenge(b"Username:".to_vec())
        );
        assert_eq!(
            s.step(&e.dir, Some(b"user")),
            SaslStep::Challenge(b"Password:".to_vec())
        );
        assert_eq!(
            user_of(s.step(&e.dir, Some(PW.as_bytes()))),
            "user@example.com"
        );
    }

    #[test]
    fn unknown_and_policy_refused_mechanisms_are_named() {
        let e = env();
        assert_eq!(
            SaslServer::start(&e.dir, "cram-md5", ctx(true)).unwrap_err(),
            SaslError::UnknownMechanism("CRAM-MD5".into())
        );
        e.dir
            .set_security_policy(SecurityPolicy {
                mode: SecurityMode::RequireEncryptedConnection,
                ..Default::default()
            })
            .unwrap();
        let err = SaslServer::start(&e.dir, "PLAIN", ctx(false)).unwrap_err();
        assert_eq!(err, SaslError::MechanismUnavailable("PLAIN".into()));
        assert!(err.to_string().contains("PLAIN"));
        assert!(SaslServer::start(&e.dir, "PLAIN", ctx(true)).is_ok());
    }

    /// Plays the client of RFC 5802 / RFC 7677 against the server.
    fn scram_client(
        e: &Env,
        s: &mut SaslServer,
        user: &str,
        pw: &str,
        cnonce: &str,
    ) -> (SaslStep, String) {
        let bare = format!("n={user},r={cnonce}");
        let first = format!("n,,{bare}");
        let SaslStep::Challenge(sf) = s.step(&e.dir, Some(first.as_bytes())) else {
            panic!("no server-first");
        };
        let sf = String::from_utf8(sf).unwrap();
        let mut r = "";
        let mut salt = Vec::new();
        let mut iters = 0;
        for a in sf.split(',') {
            match a.split_at(2) {
                ("r=", v) => r = v,
                ("s=", v) => salt = B64.decode(v).unwrap(),
                ("i=", v) => iters = v.parse().unwrap(),
                _ => {}
            }
        }
        assert!(r.starts_with(cnonce));
        let without_proof = format!("c=biws,r={r}");
        let auth = format!("{bare},{sf},{without_proof}");
        let proof = password::scram_client_proof(pw, &salt, iters, auth.as_bytes()).unwrap();
        let fin = format!("{without_proof},p={}", B64.encode(proof));
        (s.step(&e.dir, Some(fin.as_bytes())), auth)
    }

    #[test]
    fn scram_sha256_rfc7677_vector_round_trip() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        // The server nonce is random, so the test computes the proof itself, and also checks
        // the RFC's own proof and verifier against the same keys.
        let e = env();
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = password::scram_credentials_with_salt("pencil", &salt, 4096).unwrap();
        let rfc_auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
            i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let rfc_proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert!(password::scram_verify_client_proof(
            &creds,
            rfc_auth.as_bytes(),
            &rfc_proof
        ));
        // A full exchange with the stored keys of a real user.
        let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(false)).unwrap();
        assert_eq!(s.step(&e.dir, None), SaslStep::Challenge(Vec::new()));
        let (step, auth) = scram_client(&e, &mut s, "user", PW, "rOprNGfwEbeRWgbNEkqO");
        let SaslStep::Success { user, server_final } = step else {
            panic!("expected success, got {step:?}");
        };
        assert_eq!(user.user, "user@example.com");
        let creds = e.dir.scram_credentials("user", None).unwrap().unwrap();
        let sig = password::scram_server_signature(&creds, auth.as_bytes()).unwrap();
        assert_eq!(
            server_final.unwrap(),
            format!("v={}", B64.encode(sig)).into_bytes()
        );
    }

    #[test]
    fn scram_wrong_password_fails_and_counts() {
        let e = env();
        e.dir
            .set_security_policy(SecurityPolicy {
                lockout: crate::auth::LockoutPolicy {
                    max_failures: 2,
                    ..Default::default()
                },
                ..Default::default()
            })
            .unwrap();
        for _ in 0..2 {
            let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
            let (step, _) = scram_client(&e, &mut s, "user", "wrong-pw", "abc");
            assert_eq!(failure(step).reason, "wrong SCRAM proof");
        }
        // Locked now: the right password fails too (guide §12.6).
        let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
        let (step, _) = scram_client(&e, &mut s, "user", PW, "abc");
        assert!(failure(step).reason.contains("locked"));
    }

    #[test]
    fn scram_unknown_user_gets_a_stable_fake_salt_then_fails() {
        let e = env();
        let first = |user: &str| {
            let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
            let m = format!("n,,n={user},r=xyz");
            match s.step(&e.dir, Some(m.as_bytes())) {
                SaslStep::Challenge(c) => String::from_utf8(c).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let salt_of = |sf: &str| sf.split(',').nth(1).unwrap().to_owned();
        let a = first("nobody");
        let b = first("nobody");
        assert_eq!(salt_of(&a), salt_of(&b));
        assert!(a.ends_with(",i=4096"));
        assert_ne!(salt_of(&a), salt_of(&first("nobody2")));
        let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
        let (step, _) = scram_client(&e, &mut s, "nobody", PW, "q");
        assert_eq!(failure(step).kind, SaslFailureKind::Credentials);
    }

    #[test]
    fn scram_rejects_channel_binding_and_bad_messages() {
        let e = env();
        for bad in [
            "p=tls-unique,,n=user,r=abc",
            "n,,m=ext,n=user,r=abc",
            "n,,n=us=er,r=abc",
            "n,,n=user",
            "x,,n=user,r=abc",
            "n,a=bob,n=user,r=abc",
        ] {
            let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
            assert_eq!(
                failure(s.step(&e.dir, Some(bad.as_bytes()))).kind,
                SaslFailureKind::Malformed,
                "{bad}"
            );
        }
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        // A wrong nonce in client-final.
        let mut s = SaslServer::start(&e.dir, "SCRAM-SHA-256", ctx(true)).unwrap();
        let _ = s.step(&e.dir, Some(b"n,,n=user,r=abc"));
        assert_eq!(
            failure(s.step(&e.dir, Some(b"c=biws,r=other,p=AAAA"))).kind,
            SaslFailureKind::Malformed
        );
    }
}
