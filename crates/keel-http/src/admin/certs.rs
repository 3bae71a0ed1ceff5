//! Server certificates (guide ch. 16): list, view, generate a self-signed certificate,
//! create a request for a CA, import PEM or PKCS#12, export, set as active (server
//! default or a domain's), remove. Each handler calls the `keel_net::certs` operation the
//! CLI calls; the running server picks the change up without a restart.
//!
//! Implementation notes:
//! - Private keys leave the server only through `GET …/export?private_key=true`, which
//!   needs full rights even though it is a GET (read-only administrators may list, view
//!   and export the public chain).
//! - Every change writes one Config log line (guide §25.2); PEM text never reaches it.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use keel_directory::AdminRights;
use keel_net::certs::{self, ImportPem, NewCertParams, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::body::{decode_strict, json_object_allowing};
use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, JsonBody, Op, Routes, blocking};

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::GET,
        "/certificates",
        (
            "Stored certificates and requests with their details (guide §16.1)",
            None,
            "CertificateList",
        ),
        list,
    );
    r.add(
        Method::POST,
        "/certificates/generate",
        (
            "Generate and store a self-signed certificate (guide §16.1 New certificate)",
            Some("NewCertificate"),
            "Certificate",
        ),
        generate,
    );
    r.add(
        Method::POST,
        "/certificates/requests",
        (
            "Create a key and a certificate request for a CA (guide §16.1 New certificate request)",
            Some("NewCertificate"),
            "CertificateRequest",
        ),
        request,
    );
    r.add(
        Method::POST,
        "/certificates/import",
        (
            "Import a PEM certificate with chain and key, or a PKCS#12 file (guide §16.1 Import)",
            Some("CertificateImport"),
            "Certificate",
        ),
        import,
    );
    r.add(
        Method::GET,
        "/certificates/{id}",
        ("One certificate's details", None, "Certificate"),
        show,
    );
    r.add(
        Method::GET,
        "/certificates/{id}/export",
        (
            "The PEM chain (or request); ?private_key=true adds the key (full administrators only)",
            None,
            "PemText",
        ),
        export,
    );
    r.add(
        Method::POST,
        "/certificates/{id}/activate",
        (
            "Set as active: the server default, or a domain's certificate (guide §16.1 Set as active)",
            Some("CertificateActivate"),
            "Certificate",
        ),
        activate,
    );
    r.add(
        Method::DELETE,
        "/certificates/{id}",
        (
            "Remove a certificate or request; the active server default cannot be removed",
            None,
            "Empty",
        ),
        remove,
    );
    r.add(
        Method::DELETE,
        "/certificates/domains/{domain}",
        (
            "A domain uses the server default certificate again",
            None,
            "Empty",
        ),
        use_default,
    );
}

fn view(i: &certs::CertInfo) -> ApiResult<Value> {
    serde_json::to_value(i).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Every certificate's details (blocking); the web page lists with it too.
pub(crate) fn rows(st: &AdminState) -> ApiResult<Vec<certs::CertInfo>> {
    Ok(certs::list(st.meta.as_ref(), st.clock.unix())?)
}

async fn list(State(st): State<AdminState>) -> ApiResult<Json<Value>> {
    let rows = blocking(move || rows(&st)).await?;
    let list = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({ "certificates": list })))
}

async fn show(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let now = st.clock.unix();
    let i = blocking(move || Ok(certs::show(st.meta.as_ref(), &id, now)?)).await?;
    Ok(Json(view(&i)?))
}

fn audit_fields(i: &certs::CertInfo) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("id".into(), Value::String(i.id.clone()));
    f.insert("subject".into(), Value::String(i.subject.clone()));
    if let Some(fp) = &i.fingerprint_sha256 {
        f.insert("fingerprint".into(), Value::String(fp.clone()));
    }
    f
}

async fn generate(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p: NewCertParams = decode_strict(&body)?;
    let (st2, now) = (st.clone(), st.clock.unix());
    let i = blocking(move || Ok(certs::generate_self_signed(st2.meta.as_ref(), &p, now)?)).await?;
    st.audit(
        &admin,
        Op::Insert,
        "Certificate",
        &i.name,
        Some(&audit_fields(&i)),
    );
    Ok(Json(view(&i)?))
}

async fn request(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p: NewCertParams = decode_strict(&body)?;
    let (st2, now) = (st.clone(), st.clock.unix());
    let (i, csr) = blocking(move || Ok(certs::create_request(st2.meta.as_ref(), &p, now)?)).await?;
    st.audit(
        &admin,
        Op::Insert,
        "CertificateRequest",
        &i.name,
        Some(&audit_fields(&i)),
    );
    let mut v = view(&i)?;
    v["csr_pem"] = Value::String(csr);
    Ok(Json(v))
}

/// `certificate` (+ `chain`, `key`) as PEM text, or `pkcs12` (base64) with `password`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ImportBody {
    certificate: Option<String>,
    chain: Option<String>,
    key: Option<String>,
    pkcs12: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

async fn import(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let body = json_object_allowing(&headers, &bytes, &["certificate", "chain", "key", "pkcs12"])?;
    let b: ImportBody = decode_strict(&body)?;
    let now = st.clock.unix();
    let st2 = st.clone();
    let i = match (b.certificate.filter(|c| !c.trim().is_empty()), b.pkcs12) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "pkcs12",
                "give either certificate (PEM) or pkcs12, not both",
            ));
        }
        (Some(certificate), None) => {
            let req = ImportPem {
                certificate,
                chain: b.chain,
                key: b.key,
                name: b.name,
            };
            blocking(move || Ok(certs::import_pem(st2.meta.as_ref(), &req, now)?)).await?
        }
        (None, Some(p12)) => {
            let der = base64::engine::general_purpose::STANDARD
                .decode(p12.trim())
                .map_err(|_| ApiError::invalid("pkcs12", "pkcs12 must be the file in base64"))?;
            let password = b.password.unwrap_or_default();
            let name = b.name;
            blocking(move || {
                Ok(certs::import_pkcs12(
                    st2.meta.as_ref(),
                    &der,
                    &password,
                    name,
                    now,
                )?)
            })
            .await?
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "certificate",
                "certificate is required: the PEM certificate (with its chain and key), or pkcs12 with password",
            ));
        }
    };
    st.audit(
        &admin,
        Op::Insert,
        "Certificate",
        &i.name,
        Some(&audit_fields(&i)),
    );
    Ok(Json(view(&i)?))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    #[serde(default)]
    private_key: bool,
}

async fn export(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(id): Path<String>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) =
        q.map_err(|_| ApiError::invalid("private_key", "private_key must be true or false"))?;
    if q.private_key && admin.rights != AdminRights::Full {
        return Err(ApiError::Forbidden(
            "only a full administrator may export a private key".into(),
        ));
    }
    let (st2, id2) = (st.clone(), id.clone());
    let pem = blocking(move || Ok(certs::export(st2.meta.as_ref(), &id2, q.private_key)?)).await?;
    if q.private_key {
        let mut f = Map::new();
        f.insert("private_key".into(), Value::Bool(true));
        st.audit(&admin, Op::Update, "CertificateExport", &id, Some(&f));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        pem,
    )
        .into_response())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ActivateBody {
    domain: Option<String>,
}

async fn activate(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let b: ActivateBody = decode_strict(&body)?;
    let (st2, now) = (st.clone(), st.clock.unix());
    let (i, target) = blocking(move || {
        let target = match b.domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => Target::Default,
            Some(d) => {
                let name = st2
                    .directory
                    .get_domain(d)
                    .map_err(|_| {
                        ApiError::invalid("domain", format!("domain: {d} is not a local domain"))
                    })?
                    .name;
                Target::Domain(name)
            }
        };
        let i = certs::activate(st2.meta.as_ref(), &id, &target, now)?;
        Ok((i, target))
    })
    .await?;
    let mut f = audit_fields(&i);
    f.insert(
        "active".into(),
        Value::String(match target {
            Target::Default => "server".into(),
            Target::Domain(d) => d,
        }),
    );
    st.audit(&admin, Op::Update, "Certificate", &i.name, Some(&f));
    Ok(Json(view(&i)?))
}

async fn remove(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let st2 = st.clone();
    let c = blocking(move || Ok(certs::remove(st2.meta.as_ref(), &id)?)).await?;
    let mut f = Map::new();
    f.insert("id".into(), Value::String(c.id.clone()));
    st.audit(&admin, Op::Delete, "Certificate", &c.name, Some(&f));
    Ok(Json(json!({})))
}

async fn use_default(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(domain): Path<String>,
) -> ApiResult<Json<Value>> {
    let st2 = st.clone();
    let d = domain.clone();
    let had = blocking(move || Ok(certs::deactivate_domain(st2.meta.as_ref(), &d)?)).await?;
    if !had {
        return Err(ApiError::NotFound(format!(
            "{domain} has no certificate of its own"
        )));
    }
    st.audit(&admin, Op::Delete, "CertificateDomain", &domain, None);
    Ok(Json(json!({})))
}
