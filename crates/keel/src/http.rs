//! The HTTP and HTTPS services. This build serves the first pieces of the web front-end:
//! `/server.cer` (guide §36.4), a health check, and `POST /api/v1/login`, the admin API's
//! sign-in that checks a password through the directory (the same rules as every
//! protocol: security policy, lockout, login names). The JSON admin API of keel-http is
//! merged in under `/admin/api/` and its web admin UI under `/admin` (issue 5).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keel_core::log::{DebugCategory, Logs};
use keel_http::ConnInfo;
use serde::{Deserialize, Serialize};

use keel_net::{Conn, Handler, canonical_ip};

/// A sign-in attempt as the web front-end passes it to the directory.
#[derive(Debug, Clone)]
pub(crate) struct WebLogin {
    pub(crate) login: String,
    pub(crate) password: String,
    pub(crate) client_ip: IpAddr,
    pub(crate) local_ip: IpAddr,
    pub(crate) secure: bool,
}

/// A successful sign-in.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WebSession {
    pub(crate) user: String,
    pub(crate) admin_rights: String,
}

/// Checks credentials; blocking (argon2, store), run on the blocking pool.
pub(crate) type Authenticate = Arc<dyn Fn(WebLogin) -> Result<WebSession, String> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    authenticate: Authenticate,
    server_cer: ServerCer,
    logs: Logs,
}

/// The DER of the active default certificate, read at each request (guide §36.4).
pub(crate) type ServerCer = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// The HTTP(S) protocol handler.
pub(crate) struct HttpHandler {
    router: Router,
}

impl HttpHandler {
    pub(crate) fn new(
        authenticate: Authenticate,
        server_cer: ServerCer,
        logs: Logs,
        admin: keel_http::admin::AdminState,
    ) -> Self {
        let state = AppState {
            authenticate,
            server_cer,
            logs,
        };
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/server.cer", get(server_cer_handler))
            .route("/api/v1/login", post(login))
            .with_state(state.clone())
            .merge(keel_http::admin::router(admin.clone()))
            .merge(keel_http::ui::router(admin))
            .layer(axum::middleware::from_fn_with_state(state, debug_log));
        Self { router }
    }
}

impl Handler for HttpHandler {
    fn serve(&self, conn: Conn) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let info = ConnInfo {
            peer: conn.peer,
            local: conn.local,
            tls: conn.is_tls(),
        };
        let router = self
            .router
            .clone()
            .layer(Extension(info))
            .layer(Extension(conn.status.clone())); // guide §24.3 User/Info of admin sessions
        Box::pin(async move {
            let mut shutdown = conn.shutdown.clone();
            let service = TowerToHyperService::new(router);
            let http = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn.stream), service);
            tokio::pin!(http);
            tokio::select! {
                r = http.as_mut() => {
                    if let Err(e) = r { tracing::debug!("http connection from {}: {e}", info.peer) }
                }
                _ = wait_true(&mut shutdown) => {
                    // Finish the request in flight, then close.
                    http.as_mut().graceful_shutdown();
                    let _ = http.await;
                }
            }
        })
    }
}

/// guide §25.9 "HTTP Server": one debug line per request while the category is on.
async fn debug_log(
    State(st): State<AppState>,
    Extension(info): Extension<ConnInfo>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !st.logs.debug_enabled(DebugCategory::HttpServer) {
        return next.run(req).await;
    }
    let line = format!(
        "{} {} {} from {}",
        req.method(),
        req.uri().path(),
        if info.tls { "HTTPS" } else { "HTTP" },
        info.peer
    );
    let resp = next.run(req).await;
    st.logs.debug(
        DebugCategory::HttpServer,
        &format!("{line} -> {}", resp.status().as_u16()),
    );
    resp
}

async fn wait_true(rx: &mut tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn server_cer_handler(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pkix-cert")],
        (st.server_cer)(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginBody {
    login: String,
    password: String,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

async fn login(
    State(st): State<AppState>,
    Extension(info): Extension<ConnInfo>,
    body: Option<Json<LoginBody>>,
) -> Response {
    let Some(Json(body)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(ErrorBody {
                error: "expected a JSON body {\"login\": …, \"password\": …}".into(),
            }),
        )
            .into_response();
    };
    let attempt = WebLogin {
        login: body.login,
        password: body.password,
        client_ip: canonical_ip(info.peer.ip()),
        local_ip: canonical_ip(info.local.ip()),
        secure: info.tls,
    };
    let auth = st.authenticate.clone();
    match tokio::task::spawn_blocking(move || auth(attempt)).await {
        Ok(Ok(session)) => (StatusCode::OK, Json(session)).into_response(),
        Ok(Err(_)) => (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody {
                error: "invalid user name or password".into(),
            }),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
