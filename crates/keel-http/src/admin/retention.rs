//! Retention endpoints: "Recover deleted items" of a user (guide §7.4) and a clean-out run
//! now (guide §7.5). The settings themselves are domain settings
//! (`PATCH /domains/{name}` with `settings.deleted_items_recovery_days`,
//! `settings.cleanout_deleted_items_days`, `settings.cleanout_junk_days`) and user fields
//! (`PATCH /users/{address}` with `cleanout_deleted_items_days`, `cleanout_junk_days`).
//! Both endpoints call the `keel_mail::Mailboxes` operations the CLI calls.

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
        MailError::NoSuchUser(_) => ApiError::NotFound(e.to_string()),
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
