//! The web admin UI at `/admin` (issue 5 item 3; DESIGN §6; guide ch. 5 "administration
//! console", §2.5, ch. 7–9, §12.3, ch. 24, ch. 25).
//!
//! Pages are rendered on the server with askama (compile-time checked, HTML-escaped) from
//! the same crate operations the JSON API handlers call. Every change goes through the JSON
//! admin API: the embedded `admin.js` module submits forms with `fetch`, the session cookie
//! and the `X-CSRF-Token` header, and shows the API's `{"error", "field"}` answer next to
//! the named field. So the UI, the CLI and scripts share one set of operations and checks.
//!
//! Implementation notes:
//! - Pages run the API's own session check ([`crate::admin::session::check`]): remote
//!   administration (guide §19.3), session, idle expiry, IP binding, rights. Without a
//!   session a page answers 303 to `/admin/sign-in?next=…`.
//! - A read-only administrator (guide §8.2 step 6) gets the same pages without forms or
//!   buttons that change anything; the API refuses such changes anyway.
//! - Assets (CSS, JS, icon) are compiled into the binary with `include_str!`; pages send a
//!   strict Content-Security-Policy (no inline script or style), so the CSRF token reaches
//!   the script through a `<meta>` element.
//! - The configuration wizard (guide §2.5) is shown to a full administrator on the first
//!   sign-in, until `POST /admin/api/v1/setup-wizard` completes it.

mod pages;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::admin::{AdminCtx, AdminState, ApiError};
use keel_directory::AdminRights;

/// Where the sign-in page lives.
pub const SIGN_IN_PATH: &str = "/admin/sign-in";
/// Where the configuration wizard lives (guide §2.5).
pub const WIZARD_PATH: &str = "/admin/wizard";

/// The sidebar: (key, link, label).
const NAV: &[(&str, &str, &str)] = &[
    ("dashboard", "/admin/", "Dashboard"),
    ("domains", "/admin/domains", "Domains"),
    ("users", "/admin/users", "Users"),
    ("templates", "/admin/templates", "User templates"),
    ("groups", "/admin/groups", "Groups"),
    ("aliases", "/admin/aliases", "Aliases"),
    ("ip-groups", "/admin/ip-groups", "IP address groups"),
    ("time-intervals", "/admin/time-intervals", "Time intervals"),
    ("security", "/admin/security", "Security policy"),
    ("smtp", "/admin/smtp", "SMTP server"),
    ("spam", "/admin/spam", "Spam filter"),
    ("antivirus", "/admin/antivirus", "Antivirus"),
    ("dkim", "/admin/dkim", "DKIM"),
    ("certificates", "/admin/certificates", "SSL certificates"),
    ("services", "/admin/services", "Services"),
    ("queue", "/admin/queue", "Message queue"),
    ("folders", "/admin/folders", "Opened folders"),
    ("statistics", "/admin/statistics", "Statistics"),
    ("traffic", "/admin/traffic", "Traffic charts"),
    ("logs", "/admin/logs", "Logs"),
];

/// What a domain administrator's sidebar keeps (guide ch. 32).
const DOMAIN_ADMIN_NAV: &[&str] = &["users", "groups", "aliases"];

/// The embedded assets: (file, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/admin.css"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/admin.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../assets/icon.svg"),
    ),
];

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The web admin UI router (absolute paths under `/admin`, beside the API's
/// `/admin/api/`). Like the API, requests need a [`crate::ConnInfo`] extension.
pub fn router(state: AdminState) -> Router {
    let guarded = Router::new()
        .route("/admin", get(pages::root))
        .route("/admin/", get(pages::dashboard))
        .route(WIZARD_PATH, get(pages::wizard))
        .route("/admin/domains", get(pages::domains))
        .route("/admin/domains/{name}", get(pages::domain))
        .route("/admin/users", get(pages::users))
        .route("/admin/users/{address}", get(pages::user))
        .route("/admin/templates", get(pages::templates))
        .route("/admin/groups", get(pages::groups))
        .route("/admin/groups/{group}", get(pages::group))
        .route("/admin/aliases", get(pages::aliases))
        .route("/admin/queue", get(pages::queue))
        .route("/admin/services", get(pages::services))
        .route("/admin/folders", get(pages::opened_folders))
        .route("/admin/ip-groups", get(pages::ip_groups))
        .route("/admin/time-intervals", get(pages::time_intervals))
        .route("/admin/security", get(pages::security))
        .route("/admin/smtp", get(pages::smtp))
        .route("/admin/spam", get(pages::spam))
        .route("/admin/antivirus", get(pages::antivirus))
        .route("/admin/dkim", get(pages::dkim))
        .route("/admin/certificates", get(pages::certificates))
        .route("/admin/statistics", get(pages::statistics))
        .route("/admin/traffic", get(pages::traffic))
        .route("/admin/logs", get(pages::logs))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page_guard,
        ));
    Router::new()
        .route(SIGN_IN_PATH, get(pages::sign_in))
        .route("/admin/assets/{file}", get(asset))
        .merge(guarded)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => PageError(ApiError::NotFound(format!("there is no file {file}"))).into_response(),
    }
}

/// Runs the admin API's checks before a page; without a session, sends the browser to the
/// sign-in page with the page to come back to.
async fn page_guard(State(st): State<AdminState>, mut req: Request, next: Next) -> Response {
    match crate::admin::session::check(&st, &mut req).await {
        Ok(()) => {
            // guide ch. 32: a domain administrator starts at its users.
            let domain_admin = req
                .extensions()
                .get::<AdminCtx>()
                .is_some_and(|a| a.domain.is_some());
            if domain_admin && req.uri().path() == "/admin/" {
                return see_other("/admin/users");
            }
            // guide §2.5: a full administrator sees the wizard first until it is done.
            let full = req
                .extensions()
                .get::<AdminCtx>()
                .is_some_and(|a| a.rights == AdminRights::Full);
            if full && req.uri().path() != WIZARD_PATH {
                let st2 = st.clone();
                match crate::admin::blocking(move || crate::admin::wizard_state(&st2)).await {
                    Ok(w) if !w.done => return see_other(WIZARD_PATH),
                    Ok(_) => {}
                    Err(e) => return PageError(e).into_response(),
                }
            }
            next.run(req).await
        }
        Err(ApiError::Unauthenticated(_)) => {
            let back = req
                .uri()
                .path_and_query()
                .map_or("/admin/", |p| p.as_str())
                .to_owned();
            see_other(&format!("{SIGN_IN_PATH}?next={}", percent_encode(&back)))
        }
        Err(e) => PageError(e).into_response(),
    }
}

/// A 303 redirect.
pub(crate) fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => PageError(ApiError::bad_request("invalid redirect target")).into_response(),
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `next` target is followed only when it is a page of this UI (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin/")
                && !n.starts_with("/admin/api/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/admin/".to_owned(),
    }
}

/// What every signed-in page's layout needs.
pub(crate) struct Chrome {
    /// The signed-in administrator.
    pub(crate) user: String,
    /// The session's CSRF token, for the script's API calls.
    pub(crate) csrf: String,
    /// Full rights or a domain administrator: forms and buttons that change things are shown.
    pub(crate) can_edit: bool,
    /// Console full rights: the administration-rights fields are shown.
    pub(crate) can_grant: bool,
    /// A domain administrator's domain (guide ch. 32): only its users, groups and aliases.
    pub(crate) domain: Option<String>,
    /// The navigation key of this page.
    pub(crate) active: &'static str,
    /// The page title.
    pub(crate) title: String,
}

impl Chrome {
    pub(crate) fn new(
        st: &AdminState,
        admin: &AdminCtx,
        active: &'static str,
        title: &str,
    ) -> Self {
        Self {
            user: admin.user.clone(),
            csrf: st.csrf_token(admin),
            can_edit: admin.rights == AdminRights::Full || admin.domain.is_some(),
            can_grant: admin.rights == AdminRights::Full && admin.domain.is_none(),
            domain: admin.domain.clone(),
            active,
            title: title.to_owned(),
        }
    }

    /// The sidebar's links, the current page marked.
    pub(crate) fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .filter(|(key, _, _)| self.domain.is_none() || DOMAIN_ADMIN_NAV.contains(key))
            .map(|(key, href, label)| NavItem {
                href,
                label,
                current: *key == self.active,
            })
            .collect()
    }

    pub(crate) fn rights_label(&self) -> String {
        if let Some(d) = &self.domain {
            return format!("administrator of {d}");
        }
        if self.can_edit {
            "full rights".to_owned()
        } else {
            "read-only".to_owned()
        }
    }
}

/// One sidebar link.
pub(crate) struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// A page that failed: an HTML error page with the API error's status and sentence.
pub(crate) struct PageError(pub(crate) ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = match &self.0 {
            ApiError::Internal(detail) => {
                tracing::error!("admin UI: {detail}");
                "the server could not show this page; the error log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

/// Renders a template as a 200 page.
pub(crate) fn render(t: &impl Template) -> Result<Response, PageError> {
    t.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| PageError(ApiError::Internal(format!("rendering a page: {e}"))))
}

/// Human-readable byte count (binary units, like the guide's quota fields).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["bytes", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`, or "" for none.
pub(crate) fn utc_time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_inside_the_ui() {
        assert_eq!(safe_next(Some("/admin/users?q=a")), "/admin/users?q=a");
        for bad in [
            "//evil.example/",
            "https://evil.example/admin/",
            "/admin//evil",
            "/admin/api/v1/session",
            "/admin/\\evil",
            "/elsewhere",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin/");
        assert_eq!(
            percent_encode("/admin/users?q=a b"),
            "/admin/users%3Fq%3Da%20b"
        );
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(utc_time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(None), "");
    }
}
