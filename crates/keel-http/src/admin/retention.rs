//! Retention endpoints: "Recover deleted items" of a user (guide §7.4) and a clean-out run
//! now (guide §7.5). The settings themselves are domain settings
//! (`PATCH /domains/{name}` with `settings.deleted_items_recovery_days`,
//! `settings.cleanout_deleted_items_days`, `settings.cleanout_junk_days`) and user fields
//! (`PATCH /users/{address}` with `cleanout_deleted_items_days`, `cleanout_junk_days`).
//! Both endpoints call the `keel_mail::Mailboxes` operations the CLI calls. The reindex of
//! a mailbox (requirements-3 §5.4, `keel reindex`) lives here too: it is the other
//! administrator's action on a user's stored mail.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::{Extension, Json};
use keel_mail::MailError;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::POST,
        "/users/{address}/recover",
        (
            "Recover deleted items (guide §7.4): restore the items deleted since a date into the user's Deleted Items; refused while the domain's recovery is off",
            Some("RecoverRequest"),
            "RecoverResult",
        ),
        recover,
    );
    r.add(
        Method::POST,
        "/users/{address}/reindex",
        (
            "Reindex the user's mailbox, or one folder with {\"folder\": name}: rebuild sizes, folder counters, UIDNEXT and quota usage from the messages, online, keeping UIDVALIDITY, UIDs and flags; messages whose file is missing are kept and listed",
            Some("ReindexRequest"),
            "ReindexReport",
        ),
        reindex,
    );
    r.add(
        Method::POST,
        "/cleanout/run",
        (
            "Run the Deleted Items / Junk E-mail clean-out and the purge of expired deleted items now (guide §7.5)",
            None,
            "CleanoutReport",
        ),
        cleanout_run,
    );
}

fn mail_error(e: MailError) -> ApiError {
    match e {
        MailError::RecoveryOff { .. } => ApiError::conflict(e.to_string()),
        MailError::NoSuchUser(_) | MailError::NoSuchFolder { .. } => {
            ApiError::NotFound(e.to_string())
        }
        MailError::Directory(d) => d.into(),
        MailError::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

async fn recover(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let since = body
        .get("since")
        .and_then(Value::as_str)
        .and_then(keel_mail::parse_since)
        .ok_or_else(|| {
            ApiError::invalid(
                "since",
                "since must be a date (YYYY-MM-DD) or an RFC 3339 time",
            )
        })?;
    let mail = st.mail();
    let user = address.clone();
    let restored = blocking(move || mail.recover_deleted(&user, since).map_err(mail_error)).await?;
    st.audit(&admin, Op::Update, "User", &address, Some(&body));
    Ok(Json(json!({ "restored": restored })))
}

async fn reindex(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<keel_mail::ReindexReport>> {
    // The body is optional: no body means every folder.
    let body = if bytes.trim_ascii().is_empty() {
        serde_json::Map::new()
    } else {
        super::body::json_object(&headers, &bytes)?
    };
    let folder = match body.get("folder") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if !f.trim().is_empty() => Some(f.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "folder",
                "folder must be the name of one of the user's folders",
            ));
        }
    };
    let mail = st.mail();
    let user = address.clone();
    let report =
        blocking(move || mail.reindex(&user, folder.as_deref()).map_err(mail_error)).await?;
    st.logs.write(
        keel_core::log::LogKind::Operations,
        &format!("reindex: {report}").replace('\n', "; "),
    );
    st.audit(&admin, Op::Update, "Reindex", &address, Some(&body));
    Ok(Json(report))
}

async fn cleanout_run(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Json<keel_mail::CleanoutReport>> {
    let mail = st.mail();
    let report = blocking(move || mail.clean_out().map_err(mail_error)).await?;
    st.logs
        .write(keel_core::log::LogKind::Operations, &report.to_string());
    st.audit(
        &admin,
        Op::Update,
        "Cleanout",
        "all",
        Some(&serde_json::Map::from_iter([(
            "action".to_owned(),
            Value::String("run".into()),
        )])),
    );
    Ok(Json(report))
}
