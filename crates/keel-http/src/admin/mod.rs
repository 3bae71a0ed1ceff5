//! The JSON admin API (issue 5; DESIGN §1: one admin API behind the web UI and the CLI;
//! guide ch. 5–9, 12, 19, 24, 25; requirements-3 §4).
//!
//! [`router`] serves, under [`API_PREFIX`] (`/admin/api/v1`), the operations of the
//! directory (domains, users, groups, aliases, IP address groups, time intervals, security
//! policy), the services, the SMTP settings, the filter settings (antispam, antivirus,
//! attachment filter, Bayes status, DKIM keys, sender lists: `filter`), the queue and the
//! logs, plus the OpenAPI 3.1
//! document at [`OPENAPI_PATH`]. Every handler calls the same crate operations the CLI calls
//! (`keel_directory::Directory`, `keel_net::services`, `keel_smtp::queue`, `keel_core::log`);
//! nothing is reimplemented here.
//!
//! # Implementation notes
//!
//! - **Sessions are per process**: they live in memory in [`AdminState`] (a restart signs
//!   every administrator out; two `keel serve` nodes do not share them). The id is 256
//!   random bits in an `HttpOnly; SameSite=Strict; Path=/admin` cookie, `Secure` except on
//!   plaintext HTTP from loopback (guide §19.3 "the traffic is always SSL-encrypted").
//! - **CSRF**: every request other than GET/HEAD must carry the session's token in the
//!   `X-CSRF-Token` header (the token is returned by the sign-in and by `GET /session`);
//!   bodies must be `application/json`, which a cross-site form cannot send.
//! - **Rights** (guide §8.1, §8.2 step 6): the effective rights of the user and their
//!   groups. `read-only` may use GET (and the read-only `POST /aliases/check-address`);
//!   `full` may do everything; `none` cannot sign in. Domain administrators (guide ch. 32)
//!   are not implemented yet.
//! - **Remote administration** (guide §19.3): the `server_setting/admin` document. Off by
//!   default: only loopback clients get an answer; when on, optionally only clients of one
//!   IP address group. Checked on every request, before authentication.
//! - **Domain administrators** (guide ch. 32): a user's or a same-domain group's
//!   `domain_admin` flag. Their session carries the domain (`AdminCtx::domain`); the guard
//!   lets it reach only the user, group and alias routes (and pages), and the handlers
//!   check each object's domain (`require_domain`, `domain_filter`), refuse administrators'
//!   accounts, groups with rights, foreign members and any grant of rights. Such sessions
//!   follow the separate "web administration from network" switch (guide §32.3).
//! - **Audit** (guide §25.2): every successful change writes one Config log line
//!   `Admin <user> - insert|update|delete <Table> set Key='value', …`; password values are
//!   replaced by `Password=xxxxxx` before the line is built and the line passes through
//!   `mask_secrets` again. Sign-in, sign-out and failed sign-ins are logged too.
//! - Store and directory calls block: they run on tokio's blocking pool.
//! - A failed request changes nothing: bodies are decoded and checked completely before the
//!   first write, and a bulk user edit that fails part-way restores the users it changed.
//!
//! - **Statistics** (guide §24.6, `stats`): `GET /statistics`, `POST /statistics/reset`
//!   and the Prometheus text at `/metrics` (loopback clients need no session there).
//!
//! - **Certificates** (guide ch. 16, `certs`): list, view, generate, request, import (PEM or
//!   PKCS#12), export, activate for the server or a domain, remove.
//!
//! The web UI (crate::ui) is a client of these routes; `/setup-wizard` holds the configuration wizard (guide §2.5).

mod acl;
mod body;
mod certs;
mod directory;
mod error;
mod filter;
mod openapi;
mod retention;
pub(crate) mod session;
mod stats;
mod system;
mod templates;
mod wizard;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use keel_core::clock::SharedClock;
use keel_core::log::Logs;
use keel_directory::{AdminRights, Directory};
use keel_store::{BlobStore, MetaStore};
use serde_json::{Map, Value};

pub use body::{MAX_BODY_BYTES, MAX_TEXT_BYTES};
pub use error::{ApiError, ApiResult};
pub use session::{
    AdminCtx, AdminSettings, DEFAULT_SESSION_IDLE_MINUTES, LOGIN_FAILURE_LIMIT,
    LOGIN_FAILURE_WINDOW_SECS, SESSION_COOKIE, load_admin_settings, save_admin_settings,
};
pub use stats::METRICS_PATH;
pub use system::{
    DEFAULT_LOG_LINES, LOG_SETTINGS_KEY, LOG_SETTINGS_KIND, LOG_TAIL_BYTES, MAX_LOG_LINES,
};
pub use wizard::WizardState;

// Shared with the web UI (crate::ui), which renders pages from the same operations.
pub(crate) use certs::rows as certificate_rows;
pub(crate) use directory::{UserQuery, list_users};
pub(crate) use filter::dkim_rows;
pub(crate) use stats::current as current_statistics;
pub(crate) use stats::traffic_chart;
pub(crate) use system::{load_log_settings, queue_search, service_rows, smtp_view, tail_lines};
pub(crate) use wizard::load_state as wizard_state;

/// Where the versioned API lives.
pub const API_PREFIX: &str = "/admin/api/v1";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/admin/api/openapi.json";

/// One service's state on this node (guide §6.1 status column), published by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServiceRuntime {
    /// Catalogue name (`imap`, `smtp`, …).
    pub name: String,
    /// `running`, `stopped`, `failed` or `not available`.
    pub state: String,
    /// The addresses it listens on (running) or would listen on.
    pub addresses: Vec<String>,
}

/// The services' states, replaced by the server whenever they change.
pub type ServiceStates = Arc<std::sync::RwLock<Vec<ServiceRuntime>>>;

/// Everything the admin API works on. Clone it freely (handles inside).
#[derive(Clone)]
pub struct AdminState {
    /// The directory (domains, users, groups, aliases, IP groups, time intervals, policy).
    pub directory: Arc<Directory>,
    /// The metadata store (settings, queue).
    pub meta: Arc<dyn MetaStore>,
    /// The blob store (queue deletions free blobs).
    pub blobs: Arc<dyn BlobStore>,
    /// The server's logs (audit lines; log viewer).
    pub logs: Logs,
    /// The time source (session expiry, rate limiting, queue ages).
    pub clock: SharedClock,
    /// Wakes the queue runner after "Run queue" / "Try to send now" when one runs here.
    pub queue_waker: Option<keel_smtp::QueueWaker>,
    /// The server's mail store service, so recoveries and clean-outs notify its IMAP
    /// sessions; without one, a service on the same stores is made per request.
    pub mailboxes: Option<keel_mail::Mailboxes>,
    /// The queue runner's delivery tasks in progress (guide §24.2) when one runs here.
    pub delivery_tasks: Option<keel_smtp::outbound::DeliveryTasks>,
    /// The services' states on this node when a server publishes them.
    pub service_states: Option<ServiceStates>,
    /// The open connections of this node's services (guide §24.3).
    pub connections: Option<keel_net::ConnectionRegistry>,
    sessions: Arc<session::Sessions>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

impl AdminState {
    /// A state with an empty session table.
    pub fn new(
        directory: Arc<Directory>,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        logs: Logs,
        clock: SharedClock,
        queue_waker: Option<keel_smtp::QueueWaker>,
    ) -> Self {
        Self {
            directory,
            meta,
            blobs,
            logs,
            clock,
            queue_waker,
            mailboxes: None,
            delivery_tasks: None,
            service_states: None,
            connections: None,
            sessions: Arc::new(session::Sessions::default()),
        }
    }

    /// Uses the server's mail store service (see [`Self::mailboxes`]).
    pub fn with_mailboxes(mut self, mailboxes: keel_mail::Mailboxes) -> Self {
        self.mailboxes = Some(mailboxes);
        self
    }

    /// Shows the delivery tasks of this node's queue runner (see [`Self::delivery_tasks`]).
    pub fn with_delivery_tasks(mut self, tasks: keel_smtp::outbound::DeliveryTasks) -> Self {
        self.delivery_tasks = Some(tasks);
        self
    }

    /// Shows the services' states the server publishes (see [`Self::service_states`]).
    pub fn with_service_states(mut self, states: ServiceStates) -> Self {
        self.service_states = Some(states);
        self
    }

    /// Lists and ends this node's connections (see [`Self::connections`]).
    pub fn with_connections(mut self, registry: keel_net::ConnectionRegistry) -> Self {
        self.connections = Some(registry);
        self
    }

    /// Each service's connection handle on this node (empty without a server).
    pub(crate) fn connection_handles(&self) -> Vec<(String, keel_net::ServiceConnections)> {
        let Some(reg) = &self.connections else {
            return Vec::new();
        };
        match reg.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The folders open in this node's sessions (guide §24.4).
    pub(crate) fn open_folders(&self) -> Vec<keel_net::OpenFolder> {
        let conns: Vec<keel_net::ConnInfo> = self
            .connection_handles()
            .iter()
            .flat_map(|(_, h)| h.list())
            .collect();
        keel_net::open_folders(&conns)
    }

    /// The state of service `name` on this node, when known.
    pub(crate) fn service_runtime(&self, name: &str) -> Option<ServiceRuntime> {
        let states = self.service_states.as_ref()?;
        let list = match states.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        list.iter().find(|r| r.name == name).cloned()
    }

    /// The delivery tasks in progress on this node (none without a runner).
    pub(crate) fn delivery_task_list(&self) -> Vec<keel_smtp::outbound::DeliveryTask> {
        self.delivery_tasks
            .as_ref()
            .map(|t| t.list())
            .unwrap_or_default()
    }

    /// The mail store service.
    fn mail(&self) -> keel_mail::Mailboxes {
        self.mailboxes.clone().unwrap_or_else(|| {
            keel_mail::Mailboxes::new(
                self.meta.clone(),
                self.blobs.clone(),
                self.directory.clone(),
                self.clock.clone(),
            )
        })
    }

    /// Number of open admin sessions (for status pages and tests).
    pub fn open_sessions(&self) -> usize {
        self.sessions.count()
    }

    /// Writes one Config log line for a successful change (guide §25.2).
    fn audit(&self, admin: &AdminCtx, op: Op, table: &str, name: &str, fields: Option<&Fields>) {
        let mut line = format!("{} {table} set Name='{}'", op.as_str(), quote(name));
        if let Some(f) = fields {
            for (k, v) in f {
                line.push_str(", ");
                line.push_str(&audit_field(k, v));
            }
        }
        self.logs.config(&admin.who(), &line);
    }
}

/// A decoded JSON request body (see [`body`]).
pub(crate) type Fields = Map<String, Value>;

/// The verbs of the Config log (guide §25.2: SQL-like operations).
#[derive(Debug, Clone, Copy)]
enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("passwd")
}

/// Replaces every secret-looking value inside `v` by the mask.
fn scrub(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(keel_core::log::SECRET_MASK.to_owned())
                    } else {
                        scrub(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

/// `Key='value'` in the guide's style (`Account_enabled='1'`); secrets as `Password=xxxxxx`.
fn audit_field(key: &str, v: &Value) -> String {
    let mut name = key.to_owned();
    if let Some(first) = name.get(0..1) {
        name = format!("{}{}", first.to_ascii_uppercase(), &name[1..]);
    }
    if is_secret_key(key) {
        return format!("{name}={}", keel_core::log::SECRET_MASK);
    }
    let text = match scrub(v) {
        Value::String(s) => s,
        Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    format!("{name}='{}'", quote(&text))
}

/// Runs blocking store/directory work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker task failed: {e}")))?
}

/// Extractor of a JSON object body with the checks of [`body::json_object`].
pub(crate) struct JsonBody(pub(crate) Fields);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "the request body could not be read; it may exceed {MAX_BODY_BYTES} bytes"
                ))
            })?;
        Ok(Self(body::json_object(&headers, &bytes)?))
    }
}

/// One documented route (the OpenAPI document is generated from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDoc {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Full path, axum/OpenAPI template syntax (`/admin/api/v1/users/{address}`).
    pub path: String,
    /// One-line summary.
    pub summary: &'static str,
    /// Schema name of the request body, if any.
    pub request: Option<&'static str>,
    /// Schema name of the success response.
    pub response: &'static str,
    /// Whether a read-only administrator may call it (every GET, plus a few POSTs).
    pub read_only_ok: bool,
}

/// Builds the router and the table of its routes together, so neither can forget one.
struct Routes {
    router: Router<AdminState>,
    table: Vec<RouteDoc>,
}

impl Routes {
    fn add<H, T>(
        &mut self,
        method: Method,
        path: &str,
        doc: (&'static str, Option<&'static str>, &'static str),
        handler: H,
    ) where
        H: Handler<T, AdminState>,
        T: 'static,
    {
        let full = if path.starts_with("/admin/") || path == stats::METRICS_PATH {
            path.to_owned()
        } else {
            format!("{API_PREFIX}{path}")
        };
        let filter = match method {
            Method::GET => MethodFilter::GET,
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::PATCH => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        let router = std::mem::take(&mut self.router);
        self.router = router.route(&full, on(filter, handler));
        let read_only_ok = method == Method::GET || session::READ_ONLY_POSTS.contains(&path);
        self.table.push(RouteDoc {
            method: method_str(&method),
            path: full,
            summary: doc.0,
            request: doc.1,
            response: doc.2,
            read_only_ok,
        });
    }
}

fn method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "DELETE",
    }
}

fn build() -> Routes {
    let mut r = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    r.add(
        Method::GET,
        OPENAPI_PATH,
        ("The OpenAPI 3.1 description of this API", None, "OpenApi"),
        openapi_handler,
    );
    session::routes(&mut r);
    directory::routes(&mut r);
    system::routes(&mut r);
    filter::routes(&mut r);
    retention::routes(&mut r);
    templates::routes(&mut r);
    acl::routes(&mut r);
    stats::routes(&mut r);
    wizard::routes(&mut r);
    certs::routes(&mut r);
    r
}

/// Every route of the admin API with its documentation, in registration order.
pub fn route_table() -> Vec<RouteDoc> {
    build().table
}

/// The OpenAPI 3.1 document of the admin API.
pub fn openapi_document() -> Value {
    openapi::document(&route_table())
}

async fn openapi_handler() -> Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(openapi_document).clone())
}

/// The admin API router, with absolute paths under `/admin/api/`: merge it into the web
/// server's router. Requests need a [`crate::ConnInfo`] extension (the client address);
/// without one they are refused.
pub fn router(state: AdminState) -> Router {
    build()
        .router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Whether a user with these rights may call a route (guide §8.2 step 6).
pub(crate) fn rights_allow(rights: AdminRights, read_only_ok: bool) -> bool {
    match rights {
        AdminRights::Full => true,
        AdminRights::ReadOnly => read_only_ok,
        AdminRights::None => false,
    }
}
