//! Directory endpoints: domains (guide ch. 7), users (ch. 8: §8.4 bulk edit, §8.6 search,
//! §8.7 statistics), groups (ch. 9), aliases (§12.3 with "check address"), IP address
//! groups (§19.1), time intervals (§19.2) and the security policy (§12.6). Each handler
//! decodes and checks its whole body, then calls one `Directory` operation.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keel_core::ipgroup::IpGroup;
use keel_core::timeinterval::TimeInterval;
use keel_directory::{
    AdminRights, Directory, DomainPatch, Forwarding, Group, GroupPatch, MailboxDisposal, NewAlias,
    NewDomain, NewGroup, NewUser, Quota, User, UserPatch,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::{apply_json_patch, decode_strict, decode_with_keys};
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, Fields, JsonBody, Op, Routes, blocking};

type Q<T> = Result<Query<T>, QueryRejection>;

fn query<T>(q: Q<T>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Splits `name@domain`.
fn split_at(s: &str, field: &str) -> ApiResult<(String, String)> {
    match s.rsplit_once('@') {
        Some((n, d)) if !n.is_empty() && !d.is_empty() => Ok((n.to_owned(), d.to_owned())),
        _ => Err(ApiError::invalid(
            field,
            format!("'{s}' is not of the form name@domain"),
        )),
    }
}

// ------------------------------------------------------- domain administrators (ch. 32)

fn not_for_domain_admins(what: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "{what}: only a server administrator can do that (guide §32: domain administrators \
         manage ordinary accounts of their domain)"
    ))
}

/// A user a domain administrator may change: one of its domain without console rights (a
/// domain administrator must not take over an administrator's account).
fn manageable_user(admin: &AdminCtx, d: &Directory, address: &str) -> ApiResult<User> {
    let u = d.get_user(address)?;
    admin.require_domain(&u.domain)?;
    if admin.domain.is_some() && d.effective_admin_rights(&u.address)? != AdminRights::None {
        return Err(not_for_domain_admins(&format!(
            "{} has administration rights",
            u.address
        )));
    }
    Ok(u)
}

/// The rights fields a domain administrator may not grant: console rights and the
/// public-folder right (guide §8.2 step 6); `current` is the user before the change.
fn check_granted(admin: &AdminCtx, body: &Fields, current: Option<&User>) -> ApiResult<()> {
    if admin.domain.is_none() {
        return Ok(());
    }
    if body
        .get("admin_rights")
        .is_some_and(|v| v.as_str() != Some("none"))
    {
        return Err(not_for_domain_admins("granting administration rights"));
    }
    let had = current.is_some_and(|u| u.public_folder_admin);
    if body
        .get("public_folder_admin")
        .is_some_and(|v| v.as_bool() != Some(had))
    {
        return Err(not_for_domain_admins("changing the public-folder right"));
    }
    Ok(())
}

/// A group a domain administrator may change: one of its domain that grants no console
/// rights; new members must be of the domain too.
fn manageable_group(admin: &AdminCtx, d: &Directory, key: &str) -> ApiResult<Group> {
    let g = d.get_group(key)?;
    admin.require_domain(&g.domain)?;
    if admin.domain.is_some() && g.admin_rights != AdminRights::None {
        return Err(not_for_domain_admins(&format!(
            "the group {} grants administration rights",
            g.key()
        )));
    }
    Ok(g)
}

fn check_members(admin: &AdminCtx, members: &[String]) -> ApiResult<()> {
    for m in members {
        if let Some((_, dom)) = m.rsplit_once('@') {
            admin
                .require_domain(dom)
                .map_err(|e| ApiError::invalid("members", e.to_string()))?;
        }
    }
    Ok(())
}

pub(super) fn routes(r: &mut Routes) {
    use Method as M;
    // Domains (guide ch. 7).
    r.add(
        M::GET,
        "/domains",
        ("List the domains", None, "DomainList"),
        domains_list,
    );
    r.add(
        M::POST,
        "/domains",
        ("Create a domain", Some("NewDomain"), "Domain"),
        domain_create,
    );
    r.add(
        M::GET,
        "/domains/{name}",
        ("Show a domain", None, "Domain"),
        domain_get,
    );
    r.add(
        M::PATCH,
        "/domains/{name}",
        ("Change a domain", Some("DomainPatch"), "Domain"),
        domain_patch,
    );
    r.add(
        M::DELETE,
        "/domains/{name}",
        ("Remove an empty domain", None, "Empty"),
        domain_delete,
    );
    r.add(
        M::POST,
        "/domains/{name}/primary",
        (
            "Make a domain the primary domain (guide §7.2.1)",
            None,
            "Domain",
        ),
        domain_primary,
    );
    // Users (guide ch. 8).
    r.add(
        M::GET,
        "/users",
        ("List or search users (?domain=, ?q=)", None, "UserList"),
        users_list,
    );
    r.add(
        M::POST,
        "/users",
        ("Create a user", Some("NewUser"), "User"),
        user_create,
    );
    r.add(
        M::PATCH,
        "/users",
        (
            "Bulk edit: one patch applied to several users (guide §8.4)",
            Some("BulkUserPatch"),
            "UserList",
        ),
        users_bulk,
    );
    r.add(
        M::GET,
        "/users/statistics",
        (
            "Login statistics (guide §8.7); ?format=csv for CSV",
            None,
            "UserStatistics",
        ),
        users_stats,
    );
    r.add(
        M::POST,
        "/users/unlock",
        (
            "Unlock every locked account (guide §12.6)",
            None,
            "UnlockResult",
        ),
        users_unlock,
    );
    r.add(
        M::POST,
        "/users/{address}/unlock",
        (
            "Unlock one account locked after failed logins (guide §8.2)",
            None,
            "UserUnlockResult",
        ),
        user_unlock,
    );
    r.add(
        M::GET,
        "/users/{address}",
        ("Show a user with statistics and usage", None, "UserDetail"),
        user_get,
    );
    r.add(
        M::PATCH,
        "/users/{address}",
        ("Change a user", Some("UserPatch"), "User"),
        user_patch,
    );
    r.add(
        M::DELETE,
        "/users/{address}",
        (
            "Remove a user (?mailbox=delete|keep|move:USER)",
            None,
            "Empty",
        ),
        user_delete,
    );
    // Groups (guide ch. 9).
    r.add(
        M::GET,
        "/groups",
        ("List groups (?domain=)", None, "GroupList"),
        groups_list,
    );
    r.add(
        M::POST,
        "/groups",
        ("Create a group", Some("NewGroup"), "Group"),
        group_create,
    );
    r.add(
        M::GET,
        "/groups/{group}",
        ("Show a group", None, "Group"),
        group_get,
    );
    r.add(
        M::PATCH,
        "/groups/{group}",
        ("Change a group", Some("GroupPatch"), "Group"),
        group_patch,
    );
    r.add(
        M::DELETE,
        "/groups/{group}",
        ("Remove a group", None, "Empty"),
        group_delete,
    );
    r.add(
        M::POST,
        "/groups/{group}/members",
        ("Add members to a group", Some("MemberList"), "Group"),
        group_add_members,
    );
    r.add(
        M::DELETE,
        "/groups/{group}/members/{member}",
        ("Remove one member from a group", None, "Group"),
        group_remove_member,
    );
    // Aliases (guide §12.3).
    r.add(
        M::GET,
        "/aliases",
        ("List aliases (?domain=)", None, "AliasList"),
        aliases_list,
    );
    r.add(
        M::POST,
        "/aliases",
        ("Add an alias (targets add up)", Some("NewAlias"), "Alias"),
        alias_create,
    );
    r.add(
        M::POST,
        "/aliases/check-address",
        (
            "Where an address would deliver (guide §12.3 Check Address)",
            Some("CheckAddress"),
            "Resolution",
        ),
        check_address,
    );
    r.add(
        M::GET,
        "/aliases/{alias}",
        ("Show an alias", None, "Alias"),
        alias_get,
    );
    r.add(
        M::PUT,
        "/aliases/{alias}",
        ("Replace an alias's targets", Some("AliasTargets"), "Alias"),
        alias_put,
    );
    r.add(
        M::DELETE,
        "/aliases/{alias}",
        ("Remove an alias, or one target (?target=)", None, "Empty"),
        alias_delete,
    );
    // IP address groups (guide §19.1).
    r.add(
        M::GET,
        "/ip-groups",
        ("List IP address groups", None, "IpGroupList"),
        ipgroups_list,
    );
    r.add(
        M::POST,
        "/ip-groups",
        ("Create an IP address group", Some("IpGroup"), "IpGroup"),
        ipgroup_create,
    );
    r.add(
        M::GET,
        "/ip-groups/{name}",
        ("Show an IP address group", None, "IpGroup"),
        ipgroup_get,
    );
    r.add(
        M::PUT,
        "/ip-groups/{name}",
        ("Replace its items", Some("Items"), "IpGroup"),
        ipgroup_put,
    );
    r.add(
        M::DELETE,
        "/ip-groups/{name}",
        ("Remove an IP address group", None, "Empty"),
        ipgroup_delete,
    );
    // Time intervals (guide §19.2).
    r.add(
        M::GET,
        "/time-intervals",
        ("List time intervals", None, "TimeIntervalList"),
        intervals_list,
    );
    r.add(
        M::POST,
        "/time-intervals",
        (
            "Create a time interval",
            Some("TimeInterval"),
            "TimeInterval",
        ),
        interval_create,
    );
    r.add(
        M::GET,
        "/time-intervals/{name}",
        ("Show a time interval", None, "TimeInterval"),
        interval_get,
    );
    r.add(
        M::PUT,
        "/time-intervals/{name}",
        ("Replace its ranges", Some("Items"), "TimeInterval"),
        interval_put,
    );
    r.add(
        M::DELETE,
        "/time-intervals/{name}",
        ("Remove a time interval", None, "Empty"),
        interval_delete,
    );
    // Security policy (guide §12.6).
    r.add(
        M::GET,
        "/security-policy",
        ("Show the security policy", None, "SecurityPolicy"),
        policy_get,
    );
    r.add(
        M::PATCH,
        "/security-policy",
        (
            "Change the security policy",
            Some("SecurityPolicy"),
            "SecurityPolicy",
        ),
        policy_patch,
    );
}

// ------------------------------------------------------------------------- domains

async fn domains_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_domains()?)).await?;
    Ok(Json(json!({ "domains": list })))
}

async fn domain_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let new: NewDomain = decode_strict(&body)?;
    let d = st.directory.clone();
    let dom = blocking(move || Ok(d.add_domain(new)?)).await?;
    st.audit(&admin, Op::Insert, "Domain", &dom.name, Some(&body));
    Ok(created(dom))
}

async fn domain_get(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<Json<keel_directory::Domain>> {
    admin.require_domain(&name)?;
    let d = st.directory.clone();
    Ok(Json(blocking(move || Ok(d.get_domain(&name)?)).await?))
}

async fn domain_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::Domain>> {
    let mut patch: DomainPatch = decode_strict(&body)?;
    // `null` turns forwarding off / unbinds (serde reads `null` as "unchanged").
    if body.get("forwarding").is_some_and(Value::is_null) {
        patch.forwarding = Some(None);
    }
    if body.get("bound_ip").is_some_and(Value::is_null) {
        patch.bound_ip = Some(None);
    }
    let d = st.directory.clone();
    let n = name.clone();
    let dom = blocking(move || Ok(d.set_domain(&n, patch)?))
        .await
        .map_err(|e| settings_field(e, &body))?;
    st.audit(&admin, Op::Update, "Domain", &dom.name, Some(&body));
    Ok(Json(dom))
}

/// An invalid domain setting named by its key is named by its path in the request
/// (`settings.deleted_items_recovery_days`, `settings.folder_names.junk`), so the web page
/// shows the error next to it.
fn settings_field(e: ApiError, body: &Fields) -> ApiError {
    match e {
        ApiError::Invalid {
            message,
            field: Some(f),
        } if body
            .get("settings")
            .and_then(Value::as_object)
            .is_some_and(|s| s.contains_key(f.split('.').next().unwrap_or(&f))) =>
        {
            ApiError::Invalid {
                message,
                field: Some(format!("settings.{f}")),
            }
        }
        other => other,
    }
}

async fn domain_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let d = st.directory.clone();
    let n = name.clone();
    blocking(move || Ok(d.remove_domain(&n)?)).await?;
    st.audit(&admin, Op::Delete, "Domain", &name, None);
    Ok(StatusCode::NO_CONTENT)
}

async fn domain_primary(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<Json<keel_directory::Domain>> {
    let d = st.directory.clone();
    let n = name.clone();
    let dom = blocking(move || {
        d.set_primary_domain(&n)?;
        Ok(d.get_domain(&n)?)
    })
    .await?;
    st.audit(
        &admin,
        Op::Update,
        "Domain",
        &dom.name,
        Some(&serde_json::Map::from_iter([(
            "primary".to_owned(),
            Value::Bool(true),
        )])),
    );
    Ok(Json(dom))
}

// --------------------------------------------------------------------------- users

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UserQuery {
    pub(crate) domain: Option<String>,
    /// Substring of the address, full name or description (guide §8.6).
    pub(crate) q: Option<String>,
    pub(crate) format: Option<String>,
    pub(crate) mailbox: Option<String>,
}

fn matches(u: &User, q: &str) -> bool {
    let q = q.to_lowercase();
    u.address.contains(&q)
        || u.full_name.to_lowercase().contains(&q)
        || u.description.to_lowercase().contains(&q)
        || u.addresses.iter().any(|a| a.contains(&q))
}

/// Users of a domain (or all) matching the search (guide §8.6); the UI lists with it too.
pub(crate) fn list_users(d: &Directory, q: &UserQuery) -> ApiResult<Vec<User>> {
    let mut users = d.list_users(q.domain.as_deref())?;
    if let Some(s) = q.q.as_deref().filter(|s| !s.is_empty()) {
        users.retain(|u| matches(u, s));
    }
    Ok(users)
}

async fn users_list(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<UserQuery>,
) -> ApiResult<Json<Value>> {
    let mut q = query(q)?;
    q.domain = admin.domain_filter(q.domain)?;
    let d = st.directory.clone();
    let users = blocking(move || list_users(&d, &q)).await?;
    Ok(Json(json!({ "users": users })))
}

async fn user_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let d = st.directory.clone();
    let (b, a2) = (body.clone(), admin.clone());
    let user = blocking(move || {
        // guide §8.10: `template` fills every field the body leaves out.
        let (fields, groups) = with_template(&d, &a2, &b)?;
        let new: NewUser = decode_strict(&fields)?;
        if new.password.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid("password", "a new user needs a password"));
        }
        if let Some((_, dom)) = new.address.rsplit_once('@') {
            a2.require_domain(dom)?;
        }
        check_granted(&a2, &fields, None)?;
        d.add_user_in_groups(new, &groups)
            .map_err(|e| ApiError::from(e).not_found_is_invalid())
    })
    .await?;
    st.audit(&admin, Op::Insert, "User", &user.address, Some(&body));
    Ok(created(user))
}

/// The body of a new user with its template's values under it (guide §8.10), and the
/// template's groups.
fn with_template(
    d: &Directory,
    admin: &AdminCtx,
    body: &Fields,
) -> ApiResult<(Fields, Vec<String>)> {
    let mut fields = body.clone();
    let Some(name) = fields.remove("template") else {
        return Ok((fields, Vec::new()));
    };
    let name = match name {
        Value::Null => return Ok((fields, Vec::new())),
        Value::String(s) if s.is_empty() => return Ok((fields, Vec::new())),
        Value::String(s) => s,
        _ => {
            return Err(ApiError::invalid(
                "template",
                "template is a template's name",
            ));
        }
    };
    let t = d
        .get_user_template(&name)
        .map_err(|e| ApiError::invalid("template", e.to_string()))?;
    super::templates::check_template_for(admin, &t)?;
    let address = fields
        .get("address")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if !t.applies_to(domain) {
        return Err(ApiError::invalid(
            "template",
            format!("template {} is for another domain than {domain}", t.name),
        ));
    }
    let mut merged = match serde_json::to_value(t.new_user(&address)) {
        Ok(Value::Object(m)) => m,
        _ => return Err(ApiError::Internal("template did not serialise".into())),
    };
    merged.remove("password");
    for (k, v) in fields {
        merged.insert(k, v);
    }
    Ok((merged, t.groups))
}

async fn user_get(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let (d, meta) = (st.directory.clone(), st.meta.clone());
    let v = blocking(move || {
        let u = d.get_user(&address)?;
        admin.require_domain(&u.domain)?;
        let logins = d.login_stats(&u.address)?;
        let usage = meta.usage(&u.address)?;
        let rights = d.effective_admin_rights(&u.address)?;
        Ok(json!({ "user": u, "logins": logins, "usage": usage, "effective_admin_rights": rights }))
    })
    .await?;
    Ok(Json(v))
}

/// Decodes a user patch; `quota` and `forwarding` are merged into the user's current values
/// so `{"quota": {"bytes": 1000}}` keeps the message limit.
fn user_patch_from(d: &Directory, address: &str, body: &Fields) -> ApiResult<UserPatch> {
    let mut body = body.clone();
    let needs_current = body.get("quota").is_some_and(Value::is_object)
        || body.get("forwarding").is_some_and(Value::is_object);
    if needs_current {
        let cur = d.get_user(address)?;
        if let Some(Value::Object(q)) = body.get("quota") {
            let merged: Quota = apply_json_patch(&cur.quota, q).map_err(|e| rename(e, "quota"))?;
            body.insert("quota".into(), json_of(&merged)?);
        }
        if let Some(Value::Object(f)) = body.get("forwarding") {
            let merged: Forwarding =
                apply_json_patch(&cur.forwarding, f).map_err(|e| rename(e, "forwarding"))?;
            body.insert("forwarding".into(), json_of(&merged)?);
        }
    }
    let mut patch: UserPatch = decode_strict(&body)?;
    // `null` goes back to the domain's clean-out age (serde reads `null` as "unchanged").
    if body
        .get("cleanout_deleted_items_days")
        .is_some_and(Value::is_null)
    {
        patch.cleanout_deleted_items_days = Some(None);
    }
    if body.get("cleanout_junk_days").is_some_and(Value::is_null) {
        patch.cleanout_junk_days = Some(None);
    }
    Ok(patch)
}

fn rename(e: ApiError, outer: &str) -> ApiError {
    match e {
        ApiError::Invalid { message, field } => ApiError::Invalid {
            message,
            field: Some(field.map_or_else(|| outer.to_owned(), |f| format!("{outer}.{f}"))),
        },
        other => other,
    }
}

fn json_of<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn user_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<User>> {
    let d = st.directory.clone();
    let b = body.clone();
    let a2 = admin.clone();
    let user = blocking(move || {
        let cur = manageable_user(&a2, &d, &address)?;
        check_granted(&a2, &b, Some(&cur))?;
        let patch = user_patch_from(&d, &address, &b)?;
        Ok(d.set_user(&address, patch)?)
    })
    .await?;
    st.audit(&admin, Op::Update, "User", &user.address, Some(&body));
    Ok(Json(user))
}

/// The patch that puts a user back as it was (everything but the password).
fn restore_patch(u: &User) -> UserPatch {
    UserPatch {
        password: None,
        full_name: Some(u.full_name.clone()),
        description: Some(u.description.clone()),
        addresses: Some(u.addresses.clone()),
        forwarding: Some(u.forwarding.clone()),
        quota: Some(u.quota),
        outgoing_size_limit: Some(u.outgoing_size_limit),
        local_domain_only: Some(u.local_domain_only),
        enabled: Some(u.enabled),
        admin_rights: Some(u.admin_rights),
        public_folder_admin: Some(u.public_folder_admin),
        domain_admin: Some(u.domain_admin),
        cleanout_deleted_items_days: Some(u.cleanout_deleted_items_days),
        cleanout_junk_days: Some(u.cleanout_junk_days),
    }
}

#[derive(Deserialize)]
struct BulkBody {
    addresses: Vec<String>,
    patch: Fields,
}

/// guide §8.4: the same change on several users. All users are checked first; if a change
/// fails part-way, the users already changed are restored, so nothing is half-saved.
async fn users_bulk(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let b: BulkBody = decode_with_keys(&body, &["addresses", "patch"])?;
    if b.addresses.is_empty() {
        return Err(ApiError::invalid(
            "addresses",
            "give at least one user address",
        ));
    }
    if b.patch.contains_key("password") {
        return Err(ApiError::invalid(
            "patch.password",
            "passwords cannot be set in a bulk edit; change them one user at a time",
        ));
    }
    if b.patch.contains_key("addresses") {
        return Err(ApiError::invalid(
            "patch.addresses",
            "addresses are unique to one user and cannot be set in a bulk edit",
        ));
    }
    let d = st.directory.clone();
    let patch_fields = b.patch.clone();
    let addresses = b.addresses.clone();
    let a2 = admin.clone();
    let users = blocking(move || {
        let mut before = Vec::new();
        let mut patches = Vec::new();
        for a in &addresses {
            let u = manageable_user(&a2, &d, a)
                .map_err(|e| e.not_found_is_invalid())
                .map_err(|e| rename(e, "addresses"))?;
            check_granted(&a2, &patch_fields, Some(&u))?;
            patches.push(
                user_patch_from(&d, &u.address, &patch_fields).map_err(|e| rename(e, "patch"))?,
            );
            before.push(u);
        }
        let mut done: Vec<User> = Vec::new();
        for (u, p) in before.iter().zip(patches) {
            match d.set_user(&u.address, p) {
                Ok(new) => done.push(new),
                Err(e) => {
                    for prev in before.iter().take(done.len()) {
                        if let Err(re) = d.set_user(&prev.address, restore_patch(prev)) {
                            tracing::error!("bulk edit: could not restore {}: {re}", prev.address);
                        }
                    }
                    return Err(ApiError::from(e));
                }
            }
        }
        Ok(done)
    })
    .await?;
    for u in &users {
        st.audit(&admin, Op::Update, "User", &u.address, Some(&b.patch));
    }
    Ok(Json(json!({ "users": users })))
}

async fn user_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
    q: Q<UserQuery>,
) -> ApiResult<StatusCode> {
    let q = query(q)?;
    let disposal = match q.mailbox.as_deref().unwrap_or("delete") {
        "delete" => MailboxDisposal::Delete,
        "keep" => MailboxDisposal::Keep,
        m => match m.strip_prefix("move:") {
            Some(to) if !to.is_empty() => MailboxDisposal::MoveTo(to.to_owned()),
            _ => {
                return Err(ApiError::invalid(
                    "mailbox",
                    format!("mailbox must be delete, keep or move:USER@DOMAIN, not '{m}'"),
                ));
            }
        },
    };
    let (d, blobs) = (st.directory.clone(), st.blobs.clone());
    let a = address.clone();
    let a2 = admin.clone();
    blocking(move || {
        manageable_user(&a2, &d, &a)?;
        if let MailboxDisposal::MoveTo(to) = &disposal {
            let heir = d
                .get_user(to)
                .map_err(|e| ApiError::from(e).not_found_is_invalid())?;
            a2.require_domain(&heir.domain)?;
        }
        let removed = d.remove_user(&a, disposal)?;
        for b in &removed.orphaned_blobs {
            blobs.delete(b)?;
        }
        Ok(())
    })
    .await?;
    st.audit(&admin, Op::Delete, "User", &address, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct StatRow {
    address: String,
    full_name: String,
    last_login: Option<i64>,
    login_count: u64,
    services: std::collections::BTreeMap<String, keel_directory::ServiceLoginStats>,
}

/// One CSV field (RFC 4180 §2), always quoted; a leading `=`, `+`, `-` or `@` is prefixed
/// with `'` so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn rfc3339(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

async fn users_stats(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<UserQuery>,
) -> ApiResult<Response> {
    let mut q = query(q)?;
    q.domain = admin.domain_filter(q.domain)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::invalid(
                "format",
                format!("format must be json or csv, not '{f}'"),
            ));
        }
    };
    let d = st.directory.clone();
    let rows = blocking(move || {
        let users = list_users(&d, &q)?;
        let mut rows = Vec::with_capacity(users.len());
        for u in users {
            let s = d.login_stats(&u.address)?;
            rows.push(StatRow {
                address: u.address,
                full_name: u.full_name,
                last_login: s.last_login,
                login_count: s.login_count,
                services: s.services,
            });
        }
        Ok(rows)
    })
    .await?;
    if !csv {
        return Ok(Json(json!({ "statistics": rows })).into_response());
    }
    // RFC 4180: CRLF line ends, header row.
    let mut out =
        String::from("\"address\",\"full_name\",\"last_login\",\"login_count\",\"services\"\r\n");
    for r in &rows {
        let services: Vec<String> = r
            .services
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.login_count))
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{}\r\n",
            csv_field(&r.address),
            csv_field(&r.full_name),
            csv_field(&rfc3339(r.last_login)),
            csv_field(&r.login_count.to_string()),
            csv_field(&services.join(" "))
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"user-statistics.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

async fn users_unlock(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let n = blocking(move || Ok(d.unlock_all()?)).await?;
    st.audit(&admin, Op::Update, "Lockout", "all", None);
    Ok(Json(json!({ "unlocked": n })))
}

async fn user_unlock(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let a = address.clone();
    let a2 = admin.clone();
    let was_locked = blocking(move || {
        a2.require_domain(&d.get_user(&a)?.domain)?;
        Ok(d.unlock_user(&a)?)
    })
    .await?;
    st.audit(&admin, Op::Update, "Lockout", &address, None);
    Ok(Json(
        json!({ "address": address, "was_locked": was_locked }),
    ))
}

// -------------------------------------------------------------------------- groups

#[derive(Debug, Default, Deserialize)]
struct DomainQuery {
    domain: Option<String>,
    target: Option<String>,
}

async fn groups_list(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<DomainQuery>,
) -> ApiResult<Json<Value>> {
    let domain = admin.domain_filter(query(q)?.domain)?;
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_groups(domain.as_deref())?)).await?;
    Ok(Json(json!({ "groups": list })))
}

async fn group_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let new: NewGroup = decode_strict(&body)?;
    admin.require_domain(&new.domain)?;
    if admin.domain.is_some() && new.admin_rights != AdminRights::None {
        return Err(not_for_domain_admins("granting administration rights"));
    }
    check_members(&admin, &new.members)?;
    let d = st.directory.clone();
    let g = blocking(move || {
        d.add_group(new)
            .map_err(|e| ApiError::from(e).not_found_is_invalid())
    })
    .await?;
    st.audit(&admin, Op::Insert, "Group", &g.key(), Some(&body));
    Ok(created(g))
}

async fn group_get(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(group): Path<String>,
) -> ApiResult<Json<keel_directory::Group>> {
    let d = st.directory.clone();
    Ok(Json(
        blocking(move || {
            let g = d.get_group(&group)?;
            admin.require_domain(&g.domain)?;
            Ok(g)
        })
        .await?,
    ))
}

async fn group_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(group): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::Group>> {
    let patch: GroupPatch = decode_strict(&body)?;
    if admin.domain.is_some() && patch.admin_rights.is_some_and(|r| r != AdminRights::None) {
        return Err(not_for_domain_admins("granting administration rights"));
    }
    check_members(&admin, patch.members.as_deref().unwrap_or_default())?;
    let d = st.directory.clone();
    let a2 = admin.clone();
    let g = blocking(move || {
        manageable_group(&a2, &d, &group)?;
        Ok(d.set_group(&group, patch)?)
    })
    .await?;
    st.audit(&admin, Op::Update, "Group", &g.key(), Some(&body));
    Ok(Json(g))
}

async fn group_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    let d = st.directory.clone();
    let g = group.clone();
    let a2 = admin.clone();
    blocking(move || {
        manageable_group(&a2, &d, &g)?;
        Ok(d.remove_group(&g)?)
    })
    .await?;
    st.audit(&admin, Op::Delete, "Group", &group, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MemberList {
    members: Vec<String>,
}

async fn group_add_members(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(group): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::Group>> {
    let m: MemberList = decode_with_keys(&body, &["members"])?;
    if m.members.is_empty() {
        return Err(ApiError::invalid("members", "give at least one member"));
    }
    check_members(&admin, &m.members)?;
    let d = st.directory.clone();
    let a2 = admin.clone();
    let g = blocking(move || {
        manageable_group(&a2, &d, &group)?;
        d.add_group_members(&group, &m.members)
            .map_err(|e| ApiError::from(e).not_found_is_invalid())
    })
    .await?;
    st.audit(&admin, Op::Update, "Group", &g.key(), Some(&body));
    Ok(Json(g))
}

async fn group_remove_member(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<Json<keel_directory::Group>> {
    let d = st.directory.clone();
    let m = member.clone();
    let a2 = admin.clone();
    let g = blocking(move || {
        manageable_group(&a2, &d, &group)?;
        Ok(d.remove_group_members(&group, &[m])?)
    })
    .await?;
    let fields = serde_json::Map::from_iter([("removed_member".to_owned(), Value::String(member))]);
    st.audit(&admin, Op::Update, "Group", &g.key(), Some(&fields));
    Ok(Json(g))
}

// ------------------------------------------------------------------------- aliases

async fn aliases_list(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<DomainQuery>,
) -> ApiResult<Json<Value>> {
    let domain = admin.domain_filter(query(q)?.domain)?;
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_aliases(domain.as_deref())?)).await?;
    Ok(Json(json!({ "aliases": list })))
}

async fn alias_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let new: NewAlias = decode_strict(&body)?;
    if new.targets.is_empty() {
        return Err(ApiError::invalid("targets", "give at least one target"));
    }
    admin.require_domain(&new.domain)?;
    let d = st.directory.clone();
    let a = blocking(move || {
        d.add_alias(new)
            .map_err(|e| ApiError::from(e).not_found_is_invalid())
    })
    .await?;
    st.audit(
        &admin,
        Op::Insert,
        "Alias",
        &format!("{}@{}", a.name, a.domain),
        Some(&body),
    );
    Ok(created(a))
}

async fn alias_get(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(alias): Path<String>,
) -> ApiResult<Json<keel_directory::Alias>> {
    let (name, domain) = split_at(&alias, "alias")?;
    admin.require_domain(&domain)?;
    let d = st.directory.clone();
    Ok(Json(
        blocking(move || Ok(d.get_alias(&domain, &name)?)).await?,
    ))
}

#[derive(Deserialize)]
struct AliasTargets {
    targets: Vec<String>,
    #[serde(default)]
    description: String,
}

async fn alias_put(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(alias): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::Alias>> {
    let (name, domain) = split_at(&alias, "alias")?;
    admin.require_domain(&domain)?;
    let t: AliasTargets = decode_with_keys(&body, &["targets", "description"])?;
    if t.targets.is_empty() {
        return Err(ApiError::invalid(
            "targets",
            "give at least one target; DELETE removes an alias",
        ));
    }
    let d = st.directory.clone();
    let a = blocking(move || {
        d.get_alias(&domain, &name)?;
        Ok(d.set_alias(NewAlias {
            name,
            domain,
            targets: t.targets,
            description: t.description,
        })?)
    })
    .await?;
    st.audit(&admin, Op::Update, "Alias", &alias, Some(&body));
    Ok(Json(a))
}

async fn alias_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(alias): Path<String>,
    q: Q<DomainQuery>,
) -> ApiResult<StatusCode> {
    let q = query(q)?;
    let (name, domain) = split_at(&alias, "alias")?;
    admin.require_domain(&domain)?;
    let d = st.directory.clone();
    let target = q.target.clone();
    blocking(move || Ok(d.remove_alias(&domain, &name, target.as_deref())?)).await?;
    let fields = q
        .target
        .map(|t| serde_json::Map::from_iter([("target".to_owned(), Value::String(t))]));
    st.audit(&admin, Op::Delete, "Alias", &alias, fields.as_ref());
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct CheckAddress {
    address: String,
}

async fn check_address(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::Resolution>> {
    let c: CheckAddress = decode_with_keys(&body, &["address"])?;
    if admin.domain.is_some() {
        let (_, dom) = split_at(&c.address, "address")?;
        admin.require_domain(&dom)?;
    }
    let d = st.directory.clone();
    let r = blocking(move || {
        d.resolve_recipient(&c.address)
            .map_err(|e| match ApiError::from(e) {
                ApiError::Invalid {
                    message,
                    field: None,
                } => ApiError::invalid("address", message),
                other => other,
            })
    })
    .await?;
    Ok(Json(r))
}

// ----------------------------------------------------------- IP groups, intervals

#[derive(Deserialize)]
struct ItemsBody<T> {
    items: Vec<T>,
}

/// Decodes `items` on its own first, so a bad item is reported on the `items` field (the
/// UI shows it next to that box) with the item's own explanation.
fn check_items<T: serde::de::DeserializeOwned>(body: &Fields) -> ApiResult<()> {
    match body.get("items") {
        Some(v) => serde_json::from_value::<Vec<T>>(v.clone())
            .map(|_| ())
            .map_err(|e| ApiError::invalid("items", e.to_string())),
        None => Ok(()),
    }
}

async fn ipgroups_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_ip_groups()?)).await?;
    Ok(Json(json!({ "ip_groups": list })))
}

async fn ipgroup_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_items::<keel_core::ipgroup::IpGroupItem>(&body)?;
    let g: IpGroup = decode_with_keys(&body, &["name", "items"])?;
    if g.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "give the group a name"));
    }
    let d = st.directory.clone();
    let g = blocking(move || Ok(d.add_ip_group(g)?)).await?;
    st.audit(&admin, Op::Insert, "IpGroup", &g.name, Some(&body));
    Ok(created(g))
}

async fn ipgroup_get(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<IpGroup>> {
    let d = st.directory.clone();
    Ok(Json(blocking(move || Ok(d.get_ip_group(&name)?)).await?))
}

async fn ipgroup_put(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<IpGroup>> {
    check_items::<keel_core::ipgroup::IpGroupItem>(&body)?;
    let b: ItemsBody<keel_core::ipgroup::IpGroupItem> = decode_with_keys(&body, &["items"])?;
    let d = st.directory.clone();
    let g = blocking(move || {
        let cur = d.get_ip_group(&name)?;
        Ok(d.set_ip_group(IpGroup {
            name: cur.name,
            items: b.items,
        })?)
    })
    .await?;
    st.audit(&admin, Op::Update, "IpGroup", &g.name, Some(&body));
    Ok(Json(g))
}

async fn ipgroup_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let d = st.directory.clone();
    let n = name.clone();
    blocking(move || Ok(d.remove_ip_group(&n)?)).await?;
    st.audit(&admin, Op::Delete, "IpGroup", &name, None);
    Ok(StatusCode::NO_CONTENT)
}

async fn intervals_list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_time_intervals()?)).await?;
    Ok(Json(json!({ "time_intervals": list })))
}

async fn interval_create(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_items::<keel_core::timeinterval::TimeItem>(&body)?;
    let t: TimeInterval = decode_with_keys(&body, &["name", "items"])?;
    t.validate().map_err(|e| {
        ApiError::invalid(
            if t.name.trim().is_empty() {
                "name"
            } else {
                "items"
            },
            e.to_string(),
        )
    })?;
    let d = st.directory.clone();
    let t = blocking(move || Ok(d.add_time_interval(t)?)).await?;
    st.audit(&admin, Op::Insert, "TimeInterval", &t.name, Some(&body));
    Ok(created(t))
}

async fn interval_get(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<TimeInterval>> {
    let d = st.directory.clone();
    Ok(Json(
        blocking(move || Ok(d.get_time_interval(&name)?)).await?,
    ))
}

async fn interval_put(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<TimeInterval>> {
    check_items::<keel_core::timeinterval::TimeItem>(&body)?;
    let b: ItemsBody<keel_core::timeinterval::TimeItem> = decode_with_keys(&body, &["items"])?;
    let d = st.directory.clone();
    let t = blocking(move || {
        let cur = d.get_time_interval(&name)?;
        let t = TimeInterval {
            name: cur.name,
            items: b.items,
        };
        t.validate()
            .map_err(|e| ApiError::invalid("items", e.to_string()))?;
        Ok(d.set_time_interval(t)?)
    })
    .await?;
    st.audit(&admin, Op::Update, "TimeInterval", &t.name, Some(&body));
    Ok(Json(t))
}

async fn interval_delete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let d = st.directory.clone();
    let n = name.clone();
    blocking(move || Ok(d.remove_time_interval(&n)?)).await?;
    st.audit(&admin, Op::Delete, "TimeInterval", &name, None);
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------- security policy

async fn policy_get(
    State(st): State<AdminState>,
) -> ApiResult<Json<keel_directory::SecurityPolicy>> {
    let d = st.directory.clone();
    Ok(Json(blocking(move || Ok(d.security_policy()?)).await?))
}

async fn policy_patch(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<keel_directory::SecurityPolicy>> {
    let st2 = st.clone();
    let b = body.clone();
    let p = blocking(move || {
        let d = &st2.directory;
        let new = apply_json_patch(&d.security_policy()?, &b)?;
        if let Some(g) = &new.exempt_ip_group {
            super::system::require_ip_group(&st2, g, "exempt_ip_group")?;
        }
        d.set_security_policy(new.clone())?;
        Ok(new)
    })
    .await?;
    st.audit(
        &admin,
        Op::Update,
        "SecurityPolicy",
        "security_policy",
        Some(&body),
    );
    Ok(Json(p))
}
