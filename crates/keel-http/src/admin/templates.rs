//! User templates (guide §8.10) and the CSV user import (guide §8.9). The work is done by
//! `keel_directory` (`import.rs`); these handlers decode, check rights and audit.
//!
//! A domain administrator (guide ch. 32) may list the templates usable in its domain and
//! import users into it, but neither with a template that grants rights nor into another
//! domain; templates themselves are server settings ("Definitions" in the guide).

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keel_directory::{AdminRights, ImportRequest, ImportStatus, UserTemplate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{apply_json_patch, decode_strict, json_object_allowing};
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

pub(super) fn routes(r: &mut Routes) {
    use Method as M;
    r.add(
        M::GET,
        "/user-templates",
        (
            "List user templates (guide §8.10); ?domain= gives those usable in a domain",
            None,
            "UserTemplateList",
        ),
        list,
    );
    r.add(
        M::POST,
        "/user-templates",
        (
            "Create a user template",
            Some("UserTemplate"),
            "UserTemplate",
        ),
        create,
    );
    r.add(
        M::GET,
        "/user-templates/{name}",
        ("Show a user template", None, "UserTemplate"),
        get_one,
    );
    r.add(
        M::PATCH,
        "/user-templates/{name}",
        (
            "Change a user template",
            Some("UserTemplate"),
            "UserTemplate",
        ),
        patch,
    );
    r.add(
        M::DELETE,
        "/user-templates/{name}",
        ("Remove a user template", None, "Empty"),
        remove,
    );
    r.add(
        M::POST,
        "/users/import",
        (
            "Import users from CSV (guide §8.9): with dry_run a preview of every row and its problem; otherwise the rows without a problem (or the names in `only`) are created",
            Some("ImportRequest"),
            "ImportReport",
        ),
        import,
    );
}

#[derive(Debug, Default, Deserialize)]
struct DomainQuery {
    domain: Option<String>,
}

async fn list(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Result<Query<DomainQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let domain = admin.domain_filter(q.domain)?;
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_user_templates(domain.as_deref())?)).await?;
    Ok(Json(json!({ "templates": list })))
}

async fn create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let t: UserTemplate = decode_strict(&body)?;
    let d = st.directory.clone();
    let t = blocking(move || Ok(d.add_user_template(t)?)).await?;
    st.audit(&admin, Op::Insert, "UserTemplate", &t.name, Some(&body));
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

async fn get_one(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserTemplate>> {
    let d = st.directory.clone();
    Ok(Json(
        blocking(move || Ok(d.get_user_template(&name)?)).await?,
    ))
}

async fn patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<UserTemplate>> {
    if body.contains_key("name") {
        return Err(ApiError::invalid(
            "name",
            "a template keeps its name; create a new one to rename it",
        ));
    }
    let d = st.directory.clone();
    let p = body.clone();
    let t = blocking(move || {
        let cur = d.get_user_template(&name)?;
        let new: UserTemplate = apply_json_patch(&cur, &p)?;
        Ok(d.set_user_template(new)?)
    })
    .await?;
    st.audit(&admin, Op::Update, "UserTemplate", &t.name, Some(&body));
    Ok(Json(t))
}

async fn remove(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let d = st.directory.clone();
    let n = name.clone();
    blocking(move || Ok(d.remove_user_template(&n)?)).await?;
    st.audit(&admin, Op::Delete, "UserTemplate", &name, None);
    Ok(StatusCode::NO_CONTENT)
}

/// A template a domain administrator may use: one that grants no rights (guide ch. 32).
pub(crate) fn check_template_for(admin: &AdminCtx, t: &UserTemplate) -> ApiResult<()> {
    if admin.domain.is_some() && (t.admin_rights != AdminRights::None || t.public_folder_admin) {
        return Err(ApiError::Forbidden(format!(
            "template {} grants administration rights: only a server administrator can use it",
            t.name
        )));
    }
    Ok(())
}

async fn import(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<keel_directory::ImportReport>> {
    // The file may be as long as the body allows (MAX_BODY_BYTES); other fields are short.
    let body = json_object_allowing(&headers, &bytes, &["csv"])?;
    let req: ImportRequest = decode_strict(&body)?;
    if req.domain.trim().is_empty() {
        return Err(ApiError::invalid(
            "domain",
            "choose the domain to import into",
        ));
    }
    admin.require_domain(&req.domain)?;
    let d = st.directory.clone();
    let a2 = admin.clone();
    let report = blocking(move || {
        if let Some(name) = req.template.as_deref().filter(|t| !t.is_empty()) {
            let t = d
                .get_user_template(name)
                .map_err(|e| ApiError::invalid("template", e.to_string()))?;
            check_template_for(&a2, &t)?;
        }
        Ok(d.import_users(&req)?)
    })
    .await?;
    // guide §25.2: one line per created account; the file (with passwords) is not logged.
    for row in report
        .rows
        .iter()
        .filter(|r| r.status == ImportStatus::Created)
    {
        let fields = serde_json::Map::from_iter([
            ("full_name".to_owned(), Value::String(row.full_name.clone())),
            ("imported".to_owned(), Value::Bool(true)),
        ]);
        st.audit(&admin, Op::Insert, "User", &row.address, Some(&fields));
    }
    Ok(Json(report))
}
