//! The configuration wizard (guide §2.5) as API operations, so the web UI and any other
//! client finish first-run setup the same way: confirm the Internet hostname and the
//! primary domain, and replace the administrator's generated password.
//!
//! Implementation notes:
//! - The Internet hostname is the `hostname` field of the `server_setting/general`
//!   document the binary writes at first run and reads for every SMTP session; other
//!   fields of that document are kept as they are.
//! - "Done" is the `server_setting/setup_wizard` document; the UI shows the wizard to a
//!   full administrator until it exists. The API itself never depends on it.
//! - The whole body is checked (hostname, domain name, password policy) before the first
//!   write, so an invalid request changes nothing.

use axum::extract::State;
use axum::http::Method;
use axum::{Extension, Json};
use keel_directory::{NewDomain, UserPatch};
use keel_store::{DocTxn, MetaStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::body::decode_with_keys;
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

const SETTING_KIND: &str = "server_setting";
const GENERAL_KEY: &str = "general";
const WIZARD_KEY: &str = "setup_wizard";
/// Longest Internet hostname (RFC 1035 §2.3.4).
const MAX_HOSTNAME: usize = 253;

/// What the wizard shows (guide §2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WizardState {
    /// Whether the wizard was completed.
    pub done: bool,
    /// The current Internet hostname ("" when never set).
    pub hostname: String,
    /// The current primary domain ("" when there is none).
    pub primary_domain: String,
    /// Who completed it, when done.
    pub completed_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WizardDoc {
    completed_by: String,
    completed_at: i64,
}

/// The Internet hostname stored by the binary ("" when not set).
pub(crate) fn load_hostname(meta: &dyn MetaStore) -> Result<String, StoreError> {
    Ok(meta
        .get_doc(SETTING_KIND, GENERAL_KEY)?
        .and_then(|d| {
            d.body
                .get("hostname")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default())
}

/// The wizard's state.
pub(crate) fn load_state(st: &AdminState) -> ApiResult<WizardState> {
    let doc = st.meta.get_doc(SETTING_KIND, WIZARD_KEY)?;
    let done: Option<WizardDoc> = doc.and_then(|d| serde_json::from_value(d.body).ok());
    Ok(WizardState {
        done: done.is_some(),
        hostname: load_hostname(st.meta.as_ref())?,
        primary_domain: st.directory.primary_domain()?.unwrap_or_default(),
        completed_by: done.map(|d| d.completed_by),
    })
}

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::GET,
        "/setup-wizard",
        (
            "The configuration wizard's state: done, hostname, primary domain (guide §2.5)",
            None,
            "WizardState",
        ),
        get_state,
    );
    r.add(
        Method::POST,
        "/setup-wizard",
        (
            "Complete the configuration wizard: confirm hostname and primary domain, set \
             your new password (guide §2.5)",
            Some("WizardRequest"),
            "WizardState",
        ),
        complete,
    );
}

async fn get_state(State(st): State<AdminState>) -> ApiResult<Json<WizardState>> {
    let st2 = st.clone();
    Ok(Json(blocking(move || load_state(&st2)).await?))
}

#[derive(Deserialize)]
struct WizardRequest {
    hostname: String,
    primary_domain: String,
    password: String,
}

fn norm_name(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

async fn complete(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<WizardState>> {
    let b: WizardRequest = decode_with_keys(&body, &["hostname", "primary_domain", "password"])?;
    let hostname = norm_name(&b.hostname);
    if hostname.is_empty() {
        return Err(ApiError::invalid(
            "hostname",
            "enter the Internet hostname, for example mail.example.com",
        ));
    }
    if hostname.len() > MAX_HOSTNAME || !keel_core::address::is_valid_domain(&hostname) {
        return Err(ApiError::invalid(
            "hostname",
            format!(
                "'{hostname}' is not a valid Internet hostname: use letters, digits and \
                 hyphens in dot-separated labels, such as mail.example.com"
            ),
        ));
    }
    let domain = norm_name(&b.primary_domain);
    if domain.is_empty() || !keel_core::address::is_valid_domain(&domain) {
        return Err(ApiError::invalid(
            "primary_domain",
            format!("'{domain}' is not a valid domain name, such as example.com"),
        ));
    }
    let st2 = st.clone();
    let who = admin.user.clone();
    let state = blocking(move || {
        let d = &st2.directory;
        let me = d.get_user(&who)?;
        keel_directory::password::check_password_policy(&b.password, &me.login, &me.address)
            .map_err(ApiError::from)?;
        let exists = d.list_domains()?.iter().any(|x| x.name == domain);
        // Every check passed: now write (guide §2.5 order: domain, password, hostname).
        if !exists {
            d.add_domain(NewDomain {
                name: domain.clone(),
                ..Default::default()
            })
            .map_err(|e| match ApiError::from(e) {
                ApiError::Invalid { message, .. } => ApiError::invalid("primary_domain", message),
                ApiError::Conflict { message, .. } => ApiError::Conflict {
                    message,
                    field: Some("primary_domain".into()),
                },
                other => other,
            })?;
        }
        d.set_primary_domain(&domain)?;
        d.set_user(
            &who,
            UserPatch {
                password: Some(b.password),
                ..Default::default()
            },
        )?;
        let mut general = st2
            .meta
            .get_doc(SETTING_KIND, GENERAL_KEY)?
            .and_then(|doc| doc.body.as_object().cloned())
            .unwrap_or_default();
        general.insert("hostname".into(), Value::String(hostname));
        let general = Value::Object(general);
        let done = serde_json::to_value(WizardDoc {
            completed_by: who.clone(),
            completed_at: st2.clock.unix(),
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        st2.meta.transact(&mut |txn: &mut dyn DocTxn| {
            txn.put(SETTING_KIND, GENERAL_KEY, "", &general)?;
            txn.put(SETTING_KIND, WIZARD_KEY, "", &done).map(|_| ())
        })?;
        load_state(&st2)
    })
    .await?;
    let mut fields = Map::new();
    fields.insert("hostname".into(), Value::String(state.hostname.clone()));
    fields.insert(
        "primary_domain".into(),
        Value::String(state.primary_domain.clone()),
    );
    fields.insert("password".into(), Value::Null);
    st.audit(
        &admin,
        Op::Update,
        "SetupWizard",
        "setup_wizard",
        Some(&fields),
    );
    Ok(Json(state))
}
