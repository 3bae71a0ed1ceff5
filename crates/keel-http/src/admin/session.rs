//! Sign-in, sessions, CSRF, rights and remote administration (guide §8.1, §8.2 step 6,
//! §12.6, §17.4, §19.3, ch. 32; requirements-3 §4).
//!
//! Implementation notes:
//! - The session table and the failed-sign-in counters are in memory, per process.
//! - The session id and the CSRF token are 256 random bits each from the thread-local
//!   CSPRNG, base64url without padding. The CSRF token is compared in constant time.
//! - Sign-in goes through `Directory::authenticate` with service `admin`, so the security
//!   policy (guide §12.6) and the account lockout apply exactly as for the protocols. Every
//!   failure gets the same 401 sentence; the reason is in the Security log only.
//! - Independently of the lockout, [`LOGIN_FAILURE_LIMIT`] failures from one client IP in
//!   [`LOGIN_FAILURE_WINDOW_SECS`] answer 429 until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use keel_directory::{AdminRights, AuthRequest, Credential, Mechanism};
use keel_net::canonical_ip;
use keel_store::{DocTxn, MetaStore, StoreError};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::body::{apply_json_patch, decode_with_keys};
use super::error::{ApiError, ApiResult};
use super::{API_PREFIX, AdminState, JsonBody, OPENAPI_PATH, Op, Routes, blocking};
use crate::ConnInfo;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "keel_admin_session";
/// Default inactivity after which a session ends.
pub const DEFAULT_SESSION_IDLE_MINUTES: u32 = 30;
/// Failed sign-ins from one IP that trigger 429.
pub const LOGIN_FAILURE_LIMIT: usize = 10;
/// The window in which failed sign-ins are counted.
pub const LOGIN_FAILURE_WINDOW_SECS: i64 = 600;
/// The CSRF header.
const CSRF_HEADER: &str = "x-csrf-token";
/// POST routes (relative to the API prefix) that only read, open to read-only admins.
pub(crate) const READ_ONLY_POSTS: &[&str] = &["/aliases/check-address"];

const SETTING_KIND: &str = "server_setting";
const ADMIN_KEY: &str = "admin";

/// Administration access settings, stored as `server_setting/admin` (guide §19.3, §17.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// guide §19.3 "Enable remote administration from network". Off by default: only
    /// loopback clients may use the admin API.
    pub remote_enabled: bool,
    /// guide §19.3 "Only from this IP address group"; `None` = any address.
    pub remote_ip_group: Option<String>,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// guide §17.4: a session is valid only from the IP address that signed in.
    pub bind_session_to_ip: bool,
    /// guide §32.3 step 2 "Enable web administration from network": domain administrators
    /// (guide §32.2) may sign in from other computers than this one. Off by default.
    pub web_admin_enabled: bool,
    /// guide §32.3 step 2, §19.3: domain administration only from this IP address group;
    /// `None` = any address.
    pub web_admin_ip_group: Option<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            remote_enabled: false,
            remote_ip_group: None,
            session_idle_minutes: DEFAULT_SESSION_IDLE_MINUTES,
            bind_session_to_ip: false,
            web_admin_enabled: false,
            web_admin_ip_group: None,
        }
    }
}

/// Reads the admin access settings (defaults when never saved).
pub fn load_admin_settings(meta: &dyn MetaStore) -> Result<AdminSettings, StoreError> {
    match meta.get_doc(SETTING_KIND, ADMIN_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map_err(|e| StoreError::Corrupt(format!("{SETTING_KIND}/{ADMIN_KEY}: {e}"))),
        None => Ok(AdminSettings::default()),
    }
}

/// Saves the admin access settings.
pub fn save_admin_settings(meta: &dyn MetaStore, s: &AdminSettings) -> Result<(), StoreError> {
    let body = serde_json::to_value(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    meta.transact(&mut |txn: &mut dyn DocTxn| {
        txn.put(SETTING_KIND, ADMIN_KEY, "", &body).map(|_| ())
    })
}

/// The signed-in administrator of a request (a request extension set by [`guard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCtx {
    /// The user key, `login@domain`.
    pub user: String,
    /// Effective rights at sign-in.
    pub rights: AdminRights,
    /// The client address.
    pub ip: IpAddr,
    /// A domain administrator's session (guide ch. 32): the one domain whose users, groups
    /// and aliases it may manage. `None` = a console administrator (`rights`).
    pub domain: Option<String>,
    session_id: String,
}

impl AdminCtx {
    /// The "who" of Config log lines: `Admin <user>` (guide §25.2 `Admin - …`), or
    /// `Domain admin <user>` for a domain administrator.
    pub fn who(&self) -> String {
        match self.domain {
            Some(_) => format!("Domain admin {}", self.user),
            None => format!("Admin {}", self.user),
        }
    }

    /// guide §32: a domain administrator acts only inside its own domain.
    pub fn require_domain(&self, domain: &str) -> ApiResult<()> {
        match &self.domain {
            Some(own) if !own.eq_ignore_ascii_case(domain) => Err(ApiError::Forbidden(format!(
                "you administer only the domain {own}; {domain} belongs to someone else"
            ))),
            _ => Ok(()),
        }
    }

    /// The domain filter of a list: a domain administrator's own domain when none is asked
    /// for, and a refusal for another one.
    pub fn domain_filter(&self, asked: Option<String>) -> ApiResult<Option<String>> {
        match (&self.domain, asked) {
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(_), Some(d)) => {
                self.require_domain(&d)?;
                Ok(Some(d))
            }
            (None, asked) => Ok(asked),
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    rights: AdminRights,
    domain: Option<String>,
    csrf: String,
    ip: IpAddr,
    last_seen: i64,
}

/// The in-memory session table and sign-in failure counters.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a session was not accepted.
enum SessionCheck {
    Ok(Session),
    Missing,
    Expired,
    WrongIp,
}

impl Sessions {
    pub(crate) fn count(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    fn create(
        &self,
        user: &str,
        rights: AdminRights,
        domain: Option<String>,
        ip: IpAddr,
        now: i64,
    ) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                rights,
                domain,
                csrf: csrf.clone(),
                ip,
                last_seen: now,
            },
        );
        (id, csrf)
    }

    fn prune(&self, now: i64, idle: i64) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| now - s.last_seen < idle);
    }

    /// Looks a session up and marks it used.
    fn touch(&self, id: &str, now: i64, idle: i64, ip: IpAddr, bind_ip: bool) -> SessionCheck {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = m.get_mut(id) else {
            return SessionCheck::Missing;
        };
        if now - s.last_seen >= idle {
            m.remove(id);
            return SessionCheck::Expired;
        }
        if bind_ip && s.ip != ip {
            return SessionCheck::WrongIp;
        }
        s.last_seen = now;
        SessionCheck::Ok(s.clone())
    }

    fn remove(&self, id: &str) -> Option<Session> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    fn csrf_of(&self, id: &str) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|s| s.csrf.clone())
    }

    /// Whether the IP may try to sign in now.
    fn login_allowed(&self, ip: IpAddr, now: i64) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = f.get_mut(&ip) else {
            return true;
        };
        while q
            .front()
            .is_some_and(|t| now - t >= LOGIN_FAILURE_WINDOW_SECS)
        {
            q.pop_front();
        }
        if q.is_empty() {
            f.remove(&ip);
            return true;
        }
        q.len() < LOGIN_FAILURE_LIMIT
    }

    fn record_failure(&self, ip: IpAddr, now: i64) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.entry(ip).or_default().push_back(now);
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn client_ip(info: &ConnInfo) -> IpAddr {
    canonical_ip(info.peer.ip())
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Who signs in: the console (full or read-only rights, guide §19.3) or a domain
/// administrator through web administration (guide §32.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Console,
    Web,
}

/// Whether either switch lets `ip` in: the check made before anyone has signed in.
fn check_remote(st: &AdminState, settings: &AdminSettings, ip: IpAddr) -> ApiResult<()> {
    let console = check_access(st, settings, ip, Access::Console);
    if console.is_ok() {
        return console;
    }
    let web = check_access(st, settings, ip, Access::Web);
    // The refusal that explains most: the switch that is on and still said no.
    if web.is_ok() || (settings.web_admin_enabled && !settings.remote_enabled) {
        return web;
    }
    console
}

/// guide §19.3, §32.3: remote (or web) administration off → loopback only; on → optionally
/// one IP group.
fn check_access(
    st: &AdminState,
    settings: &AdminSettings,
    ip: IpAddr,
    access: Access,
) -> ApiResult<()> {
    if ip.is_loopback() {
        return Ok(());
    }
    if access == Access::Web {
        if !settings.web_admin_enabled {
            return Err(ApiError::Forbidden(format!(
                "web administration from the network is disabled: domain administrators can \
                 sign in only on this computer (loopback), not from {ip}"
            )));
        }
        if let Some(group) = &settings.web_admin_ip_group
            && !st.directory.ip_groups()?.contains(group, ip)
        {
            return Err(ApiError::Forbidden(format!(
                "web administration is allowed only from the IP address group {group}, which \
                 does not contain {ip}"
            )));
        }
        return Ok(());
    }
    if !settings.remote_enabled {
        return Err(ApiError::Forbidden(format!(
            "remote administration is disabled: the admin API answers only on this computer \
             (loopback), not to {ip}; enable remote administration first"
        )));
    }
    if let Some(group) = &settings.remote_ip_group {
        let groups = st.directory.ip_groups()?;
        if !groups.contains(group, ip) {
            return Err(ApiError::Forbidden(format!(
                "remote administration is allowed only from the IP address group {group}, \
                 which does not contain {ip}"
            )));
        }
    }
    Ok(())
}

/// The middleware in front of every admin route: remote administration, session, CSRF and
/// rights, in that order. Inserts [`AdminCtx`] for the handlers.
pub(crate) async fn guard(State(st): State<AdminState>, mut req: Request, next: Next) -> Response {
    match check(&st, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The checks of [`guard`]; the web UI's pages run them too (crate::ui).
pub(crate) async fn check(st: &AdminState, req: &mut Request) -> ApiResult<()> {
    let Some(info) = req.extensions().get::<ConnInfo>().copied() else {
        return Err(ApiError::Forbidden(
            "the client address of this connection is unknown; the request is refused".into(),
        ));
    };
    let ip = client_ip(&info);
    let settings = {
        let st = st.clone();
        blocking(move || {
            let s = load_admin_settings(st.meta.as_ref())?;
            check_remote(&st, &s, ip)?;
            Ok(s)
        })
        .await?
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    let session_path = format!("{API_PREFIX}/session");
    if path == OPENAPI_PATH || (path == session_path && method == Method::POST) {
        return Ok(());
    }
    // A local Prometheus scraper needs no session (remote clients do).
    let metrics = path == super::METRICS_PATH || path == format!("{API_PREFIX}/metrics");
    if metrics && ip.is_loopback() {
        return Ok(());
    }
    let Some(id) = cookie_value(req.headers(), SESSION_COOKIE) else {
        return Err(ApiError::Unauthenticated(
            "sign in first: POST /admin/api/v1/session with your login and password".into(),
        ));
    };
    let idle = i64::from(settings.session_idle_minutes.max(1)) * 60;
    let now = st.clock.unix();
    let session = match st
        .sessions
        .touch(&id, now, idle, ip, settings.bind_session_to_ip)
    {
        SessionCheck::Ok(s) => s,
        SessionCheck::Missing => {
            return Err(ApiError::Unauthenticated(
                "your session is not valid (signed out or the server restarted); sign in again"
                    .into(),
            ));
        }
        SessionCheck::Expired => {
            return Err(ApiError::Unauthenticated(format!(
                "your session expired after {} minutes without activity; sign in again",
                settings.session_idle_minutes.max(1)
            )));
        }
        SessionCheck::WrongIp => {
            return Err(ApiError::Unauthenticated(
                "this session belongs to another IP address; sign in again from here".into(),
            ));
        }
    };
    if !is_safe(&method) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token header: send the csrf_token returned at sign-in \
                 with every change"
                    .into(),
            ));
        }
    }
    if session.domain.is_some() {
        // guide §32.3: a domain administrator's session follows the web-administration switch
        // and reaches only the users, groups and aliases of its domain (guide ch. 32).
        let st2 = st.clone();
        let s2 = settings.clone();
        blocking(move || check_access(&st2, &s2, ip, Access::Web)).await?;
        if !domain_admin_may(&method, &path) {
            return Err(ApiError::Forbidden(
                "domain administrators manage only the users, groups and aliases of their own \
                 domain (guide ch. 32)"
                    .into(),
            ));
        }
    } else {
        let st2 = st.clone();
        let s2 = settings.clone();
        blocking(move || check_access(&st2, &s2, ip, Access::Console)).await?;
        let relative = path.strip_prefix(API_PREFIX).unwrap_or(&path);
        let read_only_ok = is_safe(&method)
            || READ_ONLY_POSTS.contains(&relative)
            || (relative == "/session" && method == Method::DELETE);
        if !super::rights_allow(session.rights, read_only_ok) {
            return Err(ApiError::Forbidden(
                "your administration rights are read-only: you can view settings but not \
                 change them"
                    .into(),
            ));
        }
    }
    // guide §24.3: the connection list shows who administers over this connection. The
    // binary passes the connection's status handle as an extension.
    if let Some(status) = req.extensions().get::<keel_net::ConnStatus>() {
        status.set_user(Some(&session.user));
        status.set_info(Some("Web administration"));
    }
    req.extensions_mut().insert(AdminCtx {
        user: session.user,
        rights: session.rights,
        ip,
        domain: session.domain,
        session_id: id,
    });
    Ok(())
}

/// The routes a domain administrator's session may use (guide ch. 32: users, groups and
/// aliases of its domain; the handlers check the domain). API routes are relative to
/// [`API_PREFIX`]; the others are web UI pages.
const DOMAIN_ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/session"),
    ("DELETE", "/session"),
    ("GET", "/domains/{name}"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("PATCH", "/users"),
    ("GET", "/users/statistics"),
    ("POST", "/users/import"),
    ("GET", "/user-templates"),
    ("GET", "/users/{address}"),
    ("PATCH", "/users/{address}"),
    ("DELETE", "/users/{address}"),
    ("POST", "/users/{address}/unlock"),
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("GET", "/groups/{group}"),
    ("PATCH", "/groups/{group}"),
    ("DELETE", "/groups/{group}"),
    ("POST", "/groups/{group}/members"),
    ("DELETE", "/groups/{group}/members/{member}"),
    ("GET", "/aliases"),
    ("POST", "/aliases"),
    ("POST", "/aliases/check-address"),
    ("GET", "/aliases/{alias}"),
    ("PUT", "/aliases/{alias}"),
    ("DELETE", "/aliases/{alias}"),
];

/// The web UI pages a domain administrator sees.
const DOMAIN_ADMIN_PAGES: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/users",
    "/admin/users/{address}",
    "/admin/groups",
    "/admin/groups/{group}",
    "/admin/aliases",
];

fn domain_admin_may(method: &Method, path: &str) -> bool {
    match path.strip_prefix(API_PREFIX) {
        Some(relative) => DOMAIN_ADMIN_ROUTES
            .iter()
            .any(|(m, p)| *p == relative && method.as_str() == *m),
        None => is_safe(method) && DOMAIN_ADMIN_PAGES.contains(&path),
    }
}

/// Only the remote-administration check (guide §19.3), for pages shown before sign-in.
pub(crate) async fn check_remote_access(st: &AdminState, info: &ConnInfo) -> ApiResult<()> {
    let ip = client_ip(info);
    let st = st.clone();
    blocking(move || {
        let s = load_admin_settings(st.meta.as_ref())?;
        check_remote(&st, &s, ip)
    })
    .await
}

impl AdminState {
    /// The CSRF token of a signed-in administrator's session ("" when it just ended).
    pub(crate) fn csrf_token(&self, admin: &AdminCtx) -> String {
        self.sessions.csrf_of(&admin.session_id).unwrap_or_default()
    }
}

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::POST,
        "/session",
        (
            "Sign in (sets the session cookie, returns the CSRF token)",
            Some("LoginRequest"),
            "SessionInfo",
        ),
        login,
    );
    r.add(
        Method::GET,
        "/session",
        ("Who is signed in, with which rights", None, "SessionInfo"),
        whoami,
    );
    r.add(
        Method::DELETE,
        "/session",
        ("Sign out", None, "Empty"),
        logout,
    );
    r.add(
        Method::GET,
        "/remote-administration",
        (
            "Remote administration and session settings (guide §19.3)",
            None,
            "AdminSettings",
        ),
        get_settings,
    );
    r.add(
        Method::PATCH,
        "/remote-administration",
        (
            "Change remote administration and session settings",
            Some("AdminSettings"),
            "AdminSettings",
        ),
        patch_settings,
    );
}

#[derive(Deserialize)]
struct LoginBody {
    login: String,
    password: String,
}

#[derive(Serialize)]
struct SessionInfo {
    user: String,
    rights: AdminRights,
    /// A domain administrator's domain (guide ch. 32); absent for console administrators.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    csrf_token: String,
    idle_timeout_secs: i64,
}

fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

async fn login(
    State(st): State<AdminState>,
    Extension(info): Extension<ConnInfo>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let b: LoginBody = decode_with_keys(&body, &["login", "password"])?;
    let ip = client_ip(&info);
    let now = st.clock.unix();
    if !st.sessions.login_allowed(ip, now) {
        return Err(ApiError::TooManyRequests(format!(
            "too many failed sign-ins from {ip}; wait a few minutes and try again"
        )));
    }
    let st2 = st.clone();
    let login = b.login.clone();
    let (authed, settings) = blocking(move || {
        let req = AuthRequest {
            login: &b.login,
            secret: Credential::Plain(&b.password),
            client_ip: ip,
            secure_channel: info.tls,
            mechanism: Mechanism::Plain,
            service: "admin",
            local_ip: Some(canonical_ip(info.local.ip())),
        };
        let r = st2.directory.authenticate(&req);
        Ok((r, load_admin_settings(st2.meta.as_ref())?))
    })
    .await?;
    let user = match authed {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!("admin sign-in of {login} from {ip} failed: {e}");
            st.sessions.record_failure(ip, now);
            st.logs.config_login_failed(&format!("Admin {login}"), ip);
            return Err(ApiError::Unauthenticated(
                "invalid user name or password".into(),
            ));
        }
    };
    if user.admin_rights == AdminRights::None && !user.domain_admin {
        st.logs
            .config_login_failed(&format!("Admin {}", user.user), ip);
        return Err(ApiError::Forbidden(
            "this account has no administration rights (guide §8.2: ask an administrator to \
             grant read-only or full rights, or guide §32.2: the right to administer its own \
             domain)"
                .into(),
        ));
    }
    // A console administrator gets a console session where remote administration lets the
    // client in (guide §19.3); otherwise a domain administrator, or a full administrator
    // (guide §32.2), gets a session for its own domain where web administration does.
    let domain = {
        let (st2, s2, u2) = (st.clone(), settings.clone(), user.clone());
        blocking(move || session_scope(&st2, &s2, &u2, ip)).await?
    };
    let who = if domain.is_some() {
        "Domain admin"
    } else {
        "Admin"
    };
    let idle = i64::from(settings.session_idle_minutes.max(1)) * 60;
    st.sessions.prune(now, idle);
    let (id, csrf) = st
        .sessions
        .create(&user.user, user.admin_rights, domain.clone(), ip, now);
    st.logs
        .config_session_opened(&format!("{who} {}", user.user), ip);
    // Secure everywhere but plaintext HTTP on loopback, where the browser would drop it.
    let secure = info.tls || !ip.is_loopback();
    let cookie = HeaderValue::from_str(&session_cookie(&id, secure))
        .map_err(|e| ApiError::Internal(format!("cookie header: {e}")))?;
    let body = SessionInfo {
        user: user.user,
        rights: user.admin_rights,
        domain,
        csrf_token: csrf,
        idle_timeout_secs: idle,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The scope of a new session: `None` for a console session, the user's domain for a
/// domain-administration one. A console administrator gets a console session where remote
/// administration lets the client in (guide §19.3); otherwise a domain administrator, or a
/// full administrator (guide §32.2), gets one for its own domain where web administration
/// does (guide §32.3).
fn session_scope(
    st: &AdminState,
    settings: &AdminSettings,
    user: &keel_directory::AuthedUser,
    ip: IpAddr,
) -> ApiResult<Option<String>> {
    let console = (user.admin_rights != AdminRights::None)
        .then(|| check_access(st, settings, ip, Access::Console));
    if let Some(Ok(())) = console {
        return Ok(None);
    }
    let web_right = user.domain_admin || user.admin_rights == AdminRights::Full;
    match (
        web_right,
        check_access(st, settings, ip, Access::Web),
        console,
    ) {
        (true, Ok(()), _) => Ok(Some(user.domain.clone())),
        (_, _, Some(Err(console_refusal))) => Err(console_refusal),
        (_, Err(web_refusal), _) => Err(web_refusal),
        (false, Ok(()), _) => Err(ApiError::Forbidden(
            "this account has no administration rights".into(),
        )),
    }
}

async fn whoami(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Json<serde_json::Value>> {
    let csrf = st.sessions.csrf_of(&admin.session_id).unwrap_or_default();
    let meta = st.meta.clone();
    let settings = blocking(move || Ok(load_admin_settings(meta.as_ref())?)).await?;
    Ok(Json(serde_json::json!({
        "user": admin.user,
        "rights": admin.rights,
        "domain": admin.domain,
        "csrf_token": csrf,
        "idle_timeout_secs": i64::from(settings.session_idle_minutes.max(1)) * 60,
        "client_ip": admin.ip,
    })))
}

async fn logout(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Response> {
    st.sessions.remove(&admin.session_id);
    st.logs.config_session_closed(&admin.who(), admin.ip);
    let expire = format!("{SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0");
    let cookie = HeaderValue::from_str(&expire)
        .map_err(|e| ApiError::Internal(format!("cookie header: {e}")))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

async fn get_settings(State(st): State<AdminState>) -> ApiResult<Json<AdminSettings>> {
    let meta = st.meta.clone();
    Ok(Json(
        blocking(move || Ok(load_admin_settings(meta.as_ref())?)).await?,
    ))
}

async fn patch_settings(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(patch): JsonBody,
) -> ApiResult<Json<AdminSettings>> {
    let st2 = st.clone();
    let p = patch.clone();
    let new = blocking(move || {
        let cur = load_admin_settings(st2.meta.as_ref())?;
        let new: AdminSettings = apply_json_patch(&cur, &p)?;
        if new.session_idle_minutes == 0 || new.session_idle_minutes > 24 * 60 {
            return Err(ApiError::invalid(
                "session_idle_minutes",
                "session_idle_minutes must be between 1 and 1440",
            ));
        }
        if let Some(g) = &new.remote_ip_group {
            super::system::require_ip_group(&st2, g, "remote_ip_group")?;
        }
        if let Some(g) = &new.web_admin_ip_group {
            super::system::require_ip_group(&st2, g, "web_admin_ip_group")?;
        }
        save_admin_settings(st2.meta.as_ref(), &new)?;
        Ok(new)
    })
    .await?;
    st.audit(&admin, Op::Update, "AdminSettings", "admin", Some(&patch));
    Ok(Json(new))
}
