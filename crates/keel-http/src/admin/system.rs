//! Server endpoints: services (guide §6), SMTP server settings (§12), the message queue
//! (§24.1) and the logs (ch. 25). Each calls the crate operation the CLI calls
//! (`keel_net::services`, `keel_smtp::{load_settings, save_settings, queue}`,
//! `keel_core::log::Logs`).

use std::io::{Read, Seek, SeekFrom};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use keel_core::log::{LogKind, SECRET_MASK};
use keel_net::services::{self, CATALOGUE, ServiceSettings};
use keel_smtp::queue::{self, DeleteCriteria, RetryTarget};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{apply_json_patch, decode_with_keys};
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

/// Most lines one log read returns.
pub const MAX_LOG_LINES: usize = 10_000;
/// Default number of lines of a log read.
pub const DEFAULT_LOG_LINES: usize = 100;
/// How far back from the end of a log file a read looks (the search covers this window).
pub const LOG_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// Fails unless the IP address group exists (the built-in one always does).
pub(crate) fn require_ip_group(st: &AdminState, name: &str, field: &str) -> ApiResult<()> {
    if st
        .directory
        .ip_groups()?
        .names()
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("there is no IP address group '{name}'"),
        ))
    }
}

pub(super) fn routes(r: &mut Routes) {
    use Method as M;
    r.add(
        M::GET,
        "/services",
        ("List the services with their settings", None, "ServiceList"),
        services_list,
    );
    r.add(
        M::GET,
        "/services/{name}",
        ("Show one service", None, "Service"),
        service_get,
    );
    r.add(
        M::PATCH,
        "/services/{name}",
        (
            "Change a service's settings (guide §6.1)",
            Some("ServiceSettings"),
            "Service",
        ),
        service_patch,
    );
    r.add(
        M::POST,
        "/services/{name}/{action}",
        (
            "Start, stop or restart a service (action = start|stop|restart)",
            None,
            "ServiceAction",
        ),
        service_action,
    );
    r.add(
        M::GET,
        "/smtp-settings",
        ("Show the SMTP server settings", None, "SmtpSettings"),
        smtp_get,
    );
    r.add(
        M::PATCH,
        "/smtp-settings",
        (
            "Change the SMTP server settings",
            Some("SmtpSettings"),
            "SmtpSettings",
        ),
        smtp_patch,
    );
    r.add(
        M::GET,
        "/queue",
        (
            "The message queue with totals (?q= search)",
            None,
            "QueueList",
        ),
        queue_list,
    );
    r.add(
        M::GET,
        "/connections",
        (
            "The open client connections of this node (guide §24.3)",
            None,
            "ConnectionList",
        ),
        connections_list,
    );
    r.add(
        M::DELETE,
        "/connections/{service}/{id}",
        (
            "End one connection at once (guide §24.3 \"disconnect\")",
            None,
            "ConnectionEnded",
        ),
        connection_end,
    );
    r.add(
        M::GET,
        "/folders/open",
        (
            "The folders open in client sessions of this node (guide §24.4)",
            None,
            "OpenFolderList",
        ),
        folders_open,
    );
    r.add(
        M::GET,
        "/queue/tasks",
        (
            "The delivery tasks in progress on this node (guide §24.2)",
            None,
            "DeliveryTaskList",
        ),
        queue_tasks,
    );
    r.add(
        M::POST,
        "/queue/run",
        (
            "Run the queue: try every message now (guide §24.1)",
            None,
            "QueueCount",
        ),
        queue_run,
    );
    r.add(
        M::POST,
        "/queue/delete",
        (
            "Delete the messages matching criteria, without reports",
            Some("QueueDeleteCriteria"),
            "QueueDeleted",
        ),
        queue_delete_criteria,
    );
    r.add(
        M::GET,
        "/queue/{id}",
        ("Show one queued message", None, "QueueMessage"),
        queue_show,
    );
    r.add(
        M::POST,
        "/queue/{id}/retry",
        ("Try to send one message now", None, "QueueCount"),
        queue_retry,
    );
    r.add(
        M::DELETE,
        "/queue/{id}",
        ("Delete one queued message", None, "QueueDeleted"),
        queue_delete_one,
    );
    r.add(
        M::GET,
        "/logs",
        ("List the logs", None, "LogList"),
        logs_list,
    );
    r.add(
        M::GET,
        "/logs/{name}",
        (
            "Last lines of a log (?lines=N, ?q= substring)",
            None,
            "LogLines",
        ),
        log_read,
    );
    r.add(
        M::DELETE,
        "/logs/{name}",
        ("Clear a log (guide §25.1)", None, "Empty"),
        log_clear,
    );
    r.add(
        M::GET,
        "/log-settings",
        (
            "Log settings (guide §25.1, §25.9): per log enabled, rotation, max_size, keep, syslog; debug_categories",
            None,
            "LogSettings",
        ),
        log_settings_get,
    );
    r.add(
        M::PATCH,
        "/log-settings",
        (
            "Change the log settings (rotation, size, kept files, syslog, debug categories); applied at once",
            Some("LogSettings"),
            "LogSettings",
        ),
        log_settings_patch,
    );
}

/// Where the log settings are stored (the binary reads the same document at start and
/// when the store changes).
pub const LOG_SETTINGS_KIND: &str = "server_setting";
/// See [`LOG_SETTINGS_KIND`].
pub const LOG_SETTINGS_KEY: &str = "logs";
/// Most rotated files kept per log.
const MAX_KEPT_LOG_FILES: u32 = 1000;

/// The stored log settings (defaults when never saved).
pub(crate) fn load_log_settings(
    meta: &dyn keel_store::MetaStore,
) -> ApiResult<keel_core::log::LogSettings> {
    Ok(match meta.get_doc(LOG_SETTINGS_KIND, LOG_SETTINGS_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map_err(|e| ApiError::Internal(format!("stored log settings are invalid: {e}")))?,
        None => keel_core::log::LogSettings::default(),
    })
}

async fn log_settings_get(
    State(st): State<AdminState>,
) -> ApiResult<Json<keel_core::log::LogSettings>> {
    let meta = st.meta.clone();
    Ok(Json(
        blocking(move || load_log_settings(meta.as_ref())).await?,
    ))
}

async fn log_settings_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_core::log::LogSettings>> {
    let (meta, b) = (st.meta.clone(), body.clone());
    let new = blocking(move || {
        let cur = load_log_settings(meta.as_ref())?;
        let new: keel_core::log::LogSettings = apply_json_patch(&cur, &b)?;
        for kind in LogKind::ALL {
            if new.kind(kind).keep > MAX_KEPT_LOG_FILES {
                return Err(ApiError::invalid(
                    &format!("{}.keep", kind.as_str()),
                    format!("at most {MAX_KEPT_LOG_FILES} rotated files are kept"),
                ));
            }
        }
        let v = serde_json::to_value(&new).map_err(|e| ApiError::Internal(e.to_string()))?;
        meta.transact(&mut |txn: &mut dyn keel_store::DocTxn| {
            txn.put(LOG_SETTINGS_KIND, LOG_SETTINGS_KEY, "", &v)
                .map(|_| ())
        })?;
        Ok(new)
    })
    .await?;
    // guide §25.9: debug categories and rotation apply at once.
    st.logs.set_settings(new.clone());
    st.audit(&admin, Op::Update, "LogSettings", "logs", Some(&body));
    Ok(Json(new))
}

// ------------------------------------------------------------------------ services

fn service_json(def: &services::ServiceDef, s: &ServiceSettings) -> Value {
    json!({
        "name": def.name, "title": def.title, "port": def.port, "tls": def.tls,
        "available": def.available, "settings": s,
    })
}

/// Adds this node's `state` and `addresses` (guide §6.1) when the server publishes them.
fn with_runtime(st: &AdminState, mut v: Value) -> Value {
    let name = v["name"].as_str().unwrap_or_default().to_owned();
    if let Some(r) = st.service_runtime(&name) {
        v["state"] = json!(r.state);
        v["addresses"] = json!(r.addresses);
    }
    v
}

/// Every service with its settings (blocking); the UI lists with it too.
pub(crate) fn service_rows(
    meta: &dyn keel_store::MetaStore,
) -> ApiResult<Vec<(&'static services::ServiceDef, ServiceSettings)>> {
    CATALOGUE
        .iter()
        .map(|def| Ok((def, services::load_settings(meta, def)?)))
        .collect()
}

async fn services_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let meta = st.meta.clone();
    let rows = blocking(move || {
        Ok(service_rows(meta.as_ref())?
            .iter()
            .map(|(def, s)| service_json(def, s))
            .collect::<Vec<_>>())
    })
    .await?;
    let rows: Vec<Value> = rows.into_iter().map(|v| with_runtime(&st, v)).collect();
    Ok(Json(json!({ "services": rows })))
}

async fn service_get(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let meta = st.meta.clone();
    let v = blocking(move || {
        let def = services::find(&name)?;
        Ok(service_json(
            def,
            &services::load_settings(meta.as_ref(), def)?,
        ))
    })
    .await?;
    Ok(Json(with_runtime(&st, v)))
}

async fn service_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let st2 = st.clone();
    let b = body.clone();
    let (def, v) = blocking(move || {
        let def = services::find(&name)?;
        let cur = services::load_settings(st2.meta.as_ref(), def)?;
        let new: ServiceSettings = apply_json_patch(&cur, &b)?;
        if new.max_connections == 0 {
            return Err(ApiError::invalid(
                "max_connections",
                "max_connections must be at least 1",
            ));
        }
        if new.max_connections_per_ip == 0 {
            return Err(ApiError::invalid(
                "max_connections_per_ip",
                "max_connections_per_ip must be at least 1",
            ));
        }
        if let Some(g) = &new.access_group {
            require_ip_group(&st2, g, "access_group")?;
        }
        services::save_settings(st2.meta.as_ref(), def.name, &new)?;
        Ok((def, service_json(def, &new)))
    })
    .await?;
    st.audit(&admin, Op::Update, "Service", def.name, Some(&body));
    Ok(Json(v))
}

async fn service_action(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if !matches!(action.as_str(), "start" | "stop" | "restart") {
        return Err(ApiError::NotFound(format!(
            "there is no service action '{action}'; use start, stop or restart"
        )));
    }
    let meta = st.meta.clone();
    let (n, a) = (name.clone(), action.clone());
    let def = blocking(move || {
        let def = services::find(&n)?;
        services::request(meta.as_ref(), def.name, &a)?;
        Ok(def)
    })
    .await?;
    let fields = serde_json::Map::from_iter([("action".to_owned(), Value::String(action.clone()))]);
    st.audit(&admin, Op::Update, "Service", def.name, Some(&fields));
    Ok(Json(json!({
        "service": def.name,
        "action": action,
        "status": "requested; the running server applies it within a second",
    })))
}

// --------------------------------------------------------------------------- SMTP

/// The settings as shown: the relay password is never sent back (guide §12.2).
pub(crate) fn smtp_view(s: &keel_smtp::SmtpSettings) -> ApiResult<Value> {
    let mut v = serde_json::to_value(s).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(auth) = v.get_mut("relay_auth").and_then(Value::as_object_mut) {
        auth.insert("password".into(), Value::String(SECRET_MASK.into()));
    }
    // guide §12.5: nor the ETRN servers' passwords.
    if let Some(servers) = v.get_mut("etrn_download").and_then(Value::as_array_mut) {
        for server in servers {
            if let Some(auth) = server.get_mut("auth").and_then(Value::as_object_mut) {
                auth.insert("password".into(), Value::String(SECRET_MASK.into()));
            }
        }
    }
    Ok(v)
}

async fn smtp_get(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let meta = st.meta.clone();
    let s = blocking(move || Ok(keel_smtp::load_settings(meta.as_ref())?)).await?;
    Ok(Json(smtp_view(&s)?))
}

async fn smtp_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let st2 = st.clone();
    let b = body.clone();
    let new = blocking(move || {
        let cur = keel_smtp::load_settings(st2.meta.as_ref())?;
        let mut new: keel_smtp::SmtpSettings = apply_json_patch(&cur, &b)?;
        // A form that shows the masked password and sends it back keeps the stored one.
        if let (Some(n), Some(c)) = (new.relay_auth.as_mut(), cur.relay_auth.as_ref())
            && n.password == SECRET_MASK
        {
            n.password.clone_from(&c.password);
        }
        // The same for an ETRN server sent back as shown (matched by host).
        for server in &mut new.etrn_download {
            let host = server.host.clone();
            if let Some(auth) = server.auth.as_mut()
                && auth.password == SECRET_MASK
            {
                let stored = cur
                    .etrn_download
                    .iter()
                    .find(|c| c.host == host)
                    .and_then(|c| c.auth.as_ref());
                match stored {
                    Some(c) => auth.password.clone_from(&c.password),
                    None => {
                        return Err(ApiError::invalid(
                            "etrn_download",
                            format!("give the password of the ETRN server {host}"),
                        ));
                    }
                }
            }
        }
        for (field, g) in [
            ("relay_ip_group", &new.relay_ip_group),
            ("exempt_ip_group", &new.exempt_ip_group),
            (
                "greeting_delay_exempt_group",
                &new.greeting_delay_exempt_group,
            ),
        ] {
            if let Some(g) = g {
                require_ip_group(&st2, g, field)?;
            }
        }
        if let Some(bad) = new
            .etrn_download_at
            .iter()
            .find(|a| keel_smtp::settings::parse_time_of_day(a).is_none())
        {
            return Err(ApiError::invalid(
                "etrn_download_at",
                format!("'{bad}' is not a time of day: give HH:MM, for example 06:30"),
            ));
        }
        if let Some(t) = &new.etrn_download_time_interval
            && st2.directory.get_time_interval(t).is_err()
        {
            return Err(ApiError::invalid(
                "etrn_download_time_interval",
                format!("there is no time interval '{t}'"),
            ));
        }
        keel_smtp::save_settings(st2.meta.as_ref(), &new)?;
        Ok(new)
    })
    .await?;
    if new.open_relay {
        st.logs
            .warning("open relay is on: anyone can send mail through this server");
    }
    st.audit(&admin, Op::Update, "SmtpSettings", "smtp", Some(&body));
    Ok(Json(smtp_view(&new)?))
}

// -------------------------------------------------------------------------- queue

#[derive(Debug, Default, Deserialize)]
struct QueueQuery {
    q: Option<String>,
}

async fn queue_list(
    State(st): State<AdminState>,
    q: Result<Query<QueueQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) =
        q.map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let (meta, now) = (st.meta.clone(), st.clock.unix());
    let list = blocking(move || queue_search(meta.as_ref(), now, q.q.as_deref())).await?;
    let totals = queue::totals(&list);
    Ok(Json(json!({ "totals": totals, "messages": list })))
}

/// guide §24.3: every open connection of this node with its service and age.
async fn connections_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let now = st.clock.unix();
    let list: Vec<Value> = st
        .connection_handles()
        .into_iter()
        .flat_map(|(service, h)| {
            h.list().into_iter().map(move |c| {
                json!({
                    "service": service, "id": c.id, "peer": c.peer.to_string(),
                    "local": c.local.to_string(), "since": c.since,
                    "seconds": (now - c.since).max(0),
                    "secure": c.secure, "user": c.user, "info": c.info,
                })
            })
        })
        .collect();
    Ok(Json(json!({ "connections": list })))
}

/// guide §24.4 "Opened folders": derived from the connection list, sorted by name.
async fn folders_open(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "folders": st.open_folders() })))
}

/// guide §24.3 "disconnect": ends one connection now; 404 when it is gone.
async fn connection_end(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path((service, id)): Path<(String, u64)>,
) -> ApiResult<Json<Value>> {
    let ended = st
        .connection_handles()
        .into_iter()
        .find(|(s, _)| *s == service)
        .is_some_and(|(_, h)| h.disconnect(id));
    if !ended {
        return Err(ApiError::NotFound(format!(
            "no open {service} connection {id}"
        )));
    }
    st.audit(
        &admin,
        Op::Delete,
        "Connection",
        &format!("{service}/{id}"),
        None,
    );
    Ok(Json(json!({ "service": service, "id": id, "ended": true })))
}

/// guide §24.2 "Queue processing": the tasks of this node's runner, oldest first, with
/// their age in seconds.
async fn queue_tasks(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let now = st.clock.unix();
    let tasks: Vec<Value> = st
        .delivery_task_list()
        .into_iter()
        .map(|t| {
            let mut v = json!(t);
            v["seconds"] = json!((now - t.started).max(0));
            v["phase_text"] = json!(t.phase.as_str());
            v
        })
        .collect();
    Ok(Json(json!({ "tasks": tasks })))
}

/// The queue, optionally only messages whose ID, sender or a recipient contains `q`
/// (blocking); the UI lists with it too.
pub(crate) fn queue_search(
    meta: &dyn keel_store::MetaStore,
    now: i64,
    q: Option<&str>,
) -> ApiResult<Vec<queue::QueueView>> {
    let mut list = queue::list(meta, now)?;
    if let Some(s) = q.filter(|s| !s.is_empty()) {
        let s = s.to_lowercase();
        list.retain(|m| {
            m.id.to_lowercase().contains(&s)
                || m.sender.to_lowercase().contains(&s)
                || m.recipients
                    .iter()
                    .any(|r| r.address.to_lowercase().contains(&s))
        });
    }
    Ok(list)
}

async fn queue_show(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<queue::QueueView>> {
    let (meta, now) = (st.meta.clone(), st.clock.unix());
    let v = blocking(move || {
        queue::show(meta.as_ref(), &id, now)?
            .ok_or_else(|| ApiError::NotFound(format!("there is no message {id} in the queue")))
    })
    .await?;
    Ok(Json(v))
}

fn wake(st: &AdminState) {
    if let Some(w) = &st.queue_waker {
        w.wake();
    }
}

async fn queue_retry(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (meta, now) = (st.meta.clone(), st.clock.unix());
    let i = id.clone();
    let n =
        blocking(move || Ok(queue::retry_now(meta.as_ref(), &RetryTarget::One(i), now)?)).await?;
    if n == 0 {
        return Err(ApiError::NotFound(format!(
            "there is no message {id} in the queue"
        )));
    }
    wake(&st);
    st.audit(
        &admin,
        Op::Update,
        "Queue",
        &id,
        Some(&serde_json::Map::from_iter([(
            "action".to_owned(),
            Value::String("retry".into()),
        )])),
    );
    Ok(Json(json!({ "messages": n })))
}

async fn queue_run(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Json<Value>> {
    let (meta, now) = (st.meta.clone(), st.clock.unix());
    let n = blocking(move || Ok(queue::retry_now(meta.as_ref(), &RetryTarget::All, now)?)).await?;
    wake(&st);
    st.audit(
        &admin,
        Op::Update,
        "Queue",
        "all",
        Some(&serde_json::Map::from_iter([(
            "action".to_owned(),
            Value::String("run".into()),
        )])),
    );
    Ok(Json(json!({ "messages": n })))
}

#[derive(Deserialize)]
struct CriteriaBody {
    id: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    older_than_secs: Option<u64>,
    #[serde(default)]
    all: bool,
}

async fn delete_matching(st: &AdminState, criteria: DeleteCriteria) -> ApiResult<Vec<String>> {
    let (meta, blobs, now) = (st.meta.clone(), st.blobs.clone(), st.clock.unix());
    blocking(move || {
        Ok(queue::delete(
            meta.as_ref(),
            blobs.as_ref(),
            &criteria,
            now,
        )?)
    })
    .await
}

async fn queue_delete_criteria(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let c: CriteriaBody = decode_with_keys(
        &body,
        &["id", "sender", "recipient", "older_than_secs", "all"],
    )?;
    let criteria = DeleteCriteria {
        id: c.id,
        sender: c.sender,
        recipient: c.recipient,
        older_than_secs: c.older_than_secs,
        all: c.all,
    };
    if criteria == DeleteCriteria::default() {
        return Err(ApiError::bad_request(
            "say which messages to delete: id, sender, recipient, older_than_secs or all",
        ));
    }
    let removed = delete_matching(&st, criteria).await?;
    st.audit(&admin, Op::Delete, "Queue", &removed.join(" "), Some(&body));
    Ok(Json(json!({ "deleted": removed })))
}

async fn queue_delete_one(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let criteria = DeleteCriteria {
        id: Some(id.clone()),
        ..DeleteCriteria::default()
    };
    let removed = delete_matching(&st, criteria).await?;
    if removed.is_empty() {
        return Err(ApiError::NotFound(format!(
            "there is no message {id} in the queue"
        )));
    }
    st.audit(&admin, Op::Delete, "Queue", &id, None);
    Ok(Json(json!({ "deleted": removed })))
}

// --------------------------------------------------------------------------- logs

fn log_kind(name: &str) -> ApiResult<LogKind> {
    name.parse().map_err(|_| {
        ApiError::NotFound(format!(
            "there is no log '{name}'; the logs are: config, mail, security, warning, \
             operations, error, spam, debug"
        ))
    })
}

async fn logs_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let logs = st.logs.clone();
    let rows = blocking(move || {
        let settings = logs.settings();
        Ok(LogKind::ALL
            .iter()
            .map(|k| {
                let size = std::fs::metadata(logs.path(*k)).map_or(0, |m| m.len());
                json!({
                    "name": k.as_str(),
                    "file": k.file_name(),
                    "size": size,
                    "settings": settings.kind(*k),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "logs": rows })))
}

#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    lines: Option<String>,
    q: Option<String>,
}

/// The last `n` lines of the final [`LOG_TAIL_BYTES`] of a file that contain `needle`.
pub(crate) fn tail_lines(
    path: &std::path::Path,
    n: usize,
    needle: Option<&str>,
) -> std::io::Result<Vec<String>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // a partial first line
    }
    let needle = needle.map(str::to_lowercase);
    let mut out: Vec<String> = lines
        .into_iter()
        .rev()
        .filter(|l| needle.as_ref().is_none_or(|s| l.to_lowercase().contains(s)))
        .take(n)
        .map(str::to_owned)
        .collect();
    out.reverse();
    Ok(out)
}

async fn log_read(
    State(st): State<AdminState>,
    Path(name): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) =
        q.map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let kind = log_kind(&name)?;
    let n = match q.lines.as_deref() {
        None => DEFAULT_LOG_LINES,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LOG_LINES).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "lines",
                    format!("lines must be a number from 1 to {MAX_LOG_LINES}"),
                ));
            }
        },
    };
    let path = st.logs.path(kind);
    let needle = q.q.clone();
    let lines = blocking(move || {
        tail_lines(&path, n, needle.as_deref())
            .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))
    })
    .await?;
    Ok(Json(json!({ "log": kind.as_str(), "lines": lines })))
}

async fn log_clear(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let kind = log_kind(&name)?;
    let logs = st.logs.clone();
    blocking(move || {
        logs.clear(kind)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    // Written after the clear, so even a cleared Config log tells who cleared it.
    st.audit(&admin, Op::Delete, "Log", kind.as_str(), None);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_last_matching_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.log");
        std::fs::write(&p, "a one\nb two\nc one\nd three\n").expect("write");
        assert_eq!(
            tail_lines(&p, 2, None).expect("read"),
            vec!["c one", "d three"]
        );
        assert_eq!(
            tail_lines(&p, 5, Some("ONE")).expect("read"),
            vec!["a one", "c one"]
        );
        assert!(
            tail_lines(&dir.path().join("none"), 5, None)
                .expect("missing")
                .is_empty()
        );
    }
}
