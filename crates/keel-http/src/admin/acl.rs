//! Folder ACLs for the administrator (guide ch. 26, RFC 4314): the rights users, groups
//! and "anyone" have on a user's folder or a public folder, shown and changed without
//! signing in as the owner. The folder is named in the administrator form of
//! `keel_mail::Mailboxes::get_acl`: `owner/Folder`, with `alice@example.com/Projects` for a
//! user's folder and `#public@example.com/Info` for a public folder of a domain. Rights
//! are RFC 4314 letters (`lrswipkxtea`; a leading `+` adds, `-` removes) or one of the
//! guide's levels (`read`, `read-write`, `full`, see `keel_mail::Level`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use keel_mail::{Level, MailError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::decode_with_keys;
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::GET,
        "/acl",
        (
            "The ACL of a folder (?folder=owner/Folder, e.g. alice@example.com/Projects or #public@example.com/Info; RFC 4314); without ?folder every folder with explicit entries",
            None,
            "Acl",
        ),
        show,
    );
    r.add(
        Method::PUT,
        "/acl",
        (
            "Set an identifier's rights on a folder: {folder, identifier (user, $group or anyone), rights (letters, +/- letters, or a level)}",
            Some("AclChange"),
            "Acl",
        ),
        set,
    );
    r.add(
        Method::DELETE,
        "/acl",
        (
            "Remove an identifier's entry (?folder=&identifier=)",
            None,
            "Acl",
        ),
        remove,
    );
    r.add(
        Method::GET,
        "/public-folders",
        (
            "Whether public folders are per domain or shared by every domain (guide §7.1 Advanced, §26.1)",
            None,
            "PublicFolderSettings",
        ),
        public_folders,
    );
    r.add(
        Method::PUT,
        "/public-folders",
        (
            "Set the public-folder scope: {\"scope\": \"per-domain\"|\"global\"}; the folders of the other scope are hidden until switched back",
            Some("PublicFolderSettings"),
            "PublicFolderSettings",
        ),
        set_public_folders,
    );
}

fn scope_view(scope: keel_directory::PublicFolderScope) -> Value {
    json!({
        "scope": scope,
        "note": "Switching the scope hides the public folders made under the other one until it is switched back.",
    })
}

async fn public_folders(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let scope = blocking(move || Ok(d.public_folder_scope()?)).await?;
    Ok(Json(scope_view(scope)))
}

async fn set_public_folders(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    #[derive(Deserialize)]
    struct Change {
        scope: Value,
    }
    let c: Change = decode_with_keys(&body, &["scope"])?;
    let scope: keel_directory::PublicFolderScope = serde_json::from_value(c.scope)
        .map_err(|_| ApiError::invalid("scope", "the scope is per-domain or global"))?;
    let d = st.directory.clone();
    blocking(move || Ok(d.set_public_folder_scope(scope)?)).await?;
    st.audit(&admin, Op::Update, "PublicFolders", "scope", Some(&body));
    Ok(Json(scope_view(scope)))
}

fn acl_error(e: MailError, field: &str) -> ApiError {
    match e {
        MailError::NoSuchUser(_) | MailError::NoSuchFolder { .. } => {
            ApiError::invalid(field, e.to_string())
        }
        MailError::InvalidRights(_) => ApiError::invalid("rights", e.to_string()),
        MailError::InvalidIdentifier(_) => ApiError::invalid("identifier", e.to_string()),
        MailError::Directory(d) => d.into(),
        MailError::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

fn entries(st: &AdminState, folder: &str) -> ApiResult<Value> {
    let list = st
        .mail()
        .get_acl(None, folder)
        .map_err(|e| acl_error(e, "folder"))?;
    let entries: Vec<Value> = list
        .into_iter()
        .map(|(id, r)| json!({ "identifier": id, "rights": r.to_string() }))
        .collect();
    Ok(json!({ "folder": folder, "entries": entries }))
}

#[derive(Debug, Default, Deserialize)]
struct AclQuery {
    folder: Option<String>,
    identifier: Option<String>,
}

fn folder_of(q: &AclQuery) -> ApiResult<String> {
    q.folder
        .clone()
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "folder",
                "name the folder as owner/Folder, e.g. alice@example.com/Projects",
            )
        })
}

/// Every folder with explicit ACL entries (the `folder_acl` documents), as
/// `{"folders": [{"folder", "entries"}]}`.
fn all_acls(st: &AdminState) -> ApiResult<Value> {
    let docs = st.meta.list_docs(keel_mail::FOLDER_ACL_KIND, None)?;
    // The document keeps the name the folder had when its ACL was written; the folder's
    // current name comes from its id (the document's key), so a RENAME shows at once.
    let mut current: std::collections::HashMap<String, Vec<keel_mail::Folder>> =
        std::collections::HashMap::new();
    for d in &docs {
        let owner = d.body["owner"].as_str().unwrap_or_default().to_owned();
        if let std::collections::hash_map::Entry::Vacant(slot) = current.entry(owner) {
            let list = st.meta.list_folders(slot.key())?;
            slot.insert(list);
        }
    }
    let mut folders: Vec<Value> = docs
        .into_iter()
        .filter_map(|d| {
            let owner = d.body["owner"].as_str().unwrap_or_default();
            let id: i64 = d.key.parse().ok()?;
            // An ACL left by a folder deleted outside Keel names nothing.
            let name = current
                .get(owner)?
                .iter()
                .find(|f| f.id == id)?
                .name
                .clone();
            let entries: Vec<Value> = d.body["entries"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|e| json!({ "identifier": e["id"], "rights": e["rights"] }))
                        .collect()
                })
                .unwrap_or_default();
            Some(json!({ "folder": format!("{owner}/{name}"), "entries": entries }))
        })
        .collect();
    folders.sort_by(|a, b| a["folder"].as_str().cmp(&b["folder"].as_str()));
    Ok(json!({ "folders": folders }))
}

async fn show(
    State(st): State<AdminState>,
    q: Result<Query<AclQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let st2 = st.clone();
    match q.folder.clone().filter(|f| !f.trim().is_empty()) {
        Some(folder) => Ok(Json(blocking(move || entries(&st2, &folder)).await?)),
        None => Ok(Json(blocking(move || all_acls(&st2)).await?)),
    }
}

#[derive(Deserialize)]
struct AclChange {
    folder: String,
    identifier: String,
    rights: String,
}

async fn set(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let c: AclChange = decode_with_keys(&body, &["folder", "identifier", "rights"])?;
    // The guide's levels stand for their RFC 4314 letters.
    let rights = match Level::parse(c.rights.trim()) {
        Some(level) => level.rights().to_string(),
        None => c.rights.trim().to_owned(),
    };
    let st2 = st.clone();
    let folder = c.folder.clone();
    let v = blocking(move || {
        st2.mail()
            .set_acl(None, &folder, &c.identifier, &rights)
            .map_err(|e| acl_error(e, "folder"))?;
        entries(&st2, &folder)
    })
    .await?;
    st.audit(&admin, Op::Update, "FolderAcl", &c.folder, Some(&body));
    Ok(Json(v))
}

async fn remove(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Result<Query<AclQuery>, QueryRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let folder = folder_of(&q)?;
    let identifier = q
        .identifier
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("identifier", "name the user, $group or anyone"))?;
    let st2 = st.clone();
    let (f, i) = (folder.clone(), identifier.clone());
    let v = blocking(move || {
        st2.mail()
            .delete_acl(None, &f, &i)
            .map_err(|e| acl_error(e, "folder"))?;
        entries(&st2, &f)
    })
    .await?;
    let fields = serde_json::Map::from_iter([("removed".to_owned(), Value::String(identifier))]);
    st.audit(&admin, Op::Delete, "FolderAcl", &folder, Some(&fields));
    Ok((StatusCode::OK, Json(v)))
}
