//! Server certificates (guide ch. 16): the stored certificates, certificate requests and
//! which one is active, as store documents, so every node of a cluster serves the same
//! ones. The admin API, the web UI and the CLI call these operations; the server builds
//! its TLS certificate set from [`active_set`].
//!
//! # Implementation notes
//!
//! - `certificate/<id>` documents hold a PEM chain (leaf first), its private key and, for a
//!   pending request (guide §16.1 "New certificate request"), the CSR without a chain. The
//!   id is the first 16 hex digits of the SHA-256 of the leaf (or of the request).
//! - `certificate_active/server` says which certificate is the server default and which
//!   one each domain uses (SNI: the domain's names, else the default). The default can
//!   be replaced but never removed.
//! - Every import checks the whole input before the one write transaction: the private
//!   key must match the leaf (same SubjectPublicKeyInfo), the other certificates must
//!   chain from it (issuer → subject), nothing half-saved.
//! - A certificate without a key is matched against the pending requests' keys, which
//!   never leave the server unless a full administrator exports them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use keel_store::{MetaStore, StoreError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{
    FromDer, GeneralName, ParsedExtension, X509Certificate, X509CertificationRequest,
};

/// Document kind of a stored certificate or request.
pub const CERT_KIND: &str = "certificate";
/// Document kind of the activation record.
pub const ACTIVE_KIND: &str = "certificate_active";
const ACTIVE_KEY: &str = "server";
/// Validity of a generated self-signed certificate, in days (CA/B Forum's old 825-day cap).
pub const SELF_SIGNED_DAYS: i64 = 825;
/// Largest accepted PEM or PKCS#12 input.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

/// A failure of a certificate operation.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The input is not valid; `field` names the request field at fault.
    #[error("{message}")]
    Invalid {
        /// Request field (`certificate`, `key`, `hostnames`, `country`, `pkcs12`, …).
        field: &'static str,
        /// A sentence the administrator can act on.
        message: String,
    },
    /// No certificate or request with this id.
    #[error("no certificate or request with id {0}")]
    NotFound(String),
    /// The operation conflicts with the stored state (removing the default, duplicates).
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> CertError {
    CertError::Invalid {
        field,
        message: message.into(),
    }
}

/// One stored certificate (with its chain) or pending certificate request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCert {
    /// Id (16 hex digits).
    pub id: String,
    /// Label shown in lists.
    pub name: String,
    /// The PEM chain, leaf first; `None` while a request waits for its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_pem: Option<String>,
    /// The PEM private key.
    pub key_pem: String,
    /// The PEM certificate request this key was made for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr_pem: Option<String>,
    /// Unix time of creation or import.
    pub created: i64,
}

/// Which certificates are active.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// The server default's id.
    #[serde(default)]
    pub default: Option<String>,
    /// Domain (lower case) → certificate id.
    #[serde(default)]
    pub domains: BTreeMap<String, String>,
    /// SHA-256 fingerprints of the files of the certificate directory already imported.
    #[serde(default)]
    pub imported_files: Vec<String>,
}

/// What the administrator sees of a certificate or request (never the key).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// Id.
    pub id: String,
    /// Label.
    pub name: String,
    /// `certificate` or `request`.
    pub kind: &'static str,
    /// Subject DN (RFC 4514 string form).
    pub subject: String,
    /// Issuer DN (certificates only).
    pub issuer: Option<String>,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub hostnames: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: Option<String>,
    /// End of validity, RFC 3339.
    pub not_after: Option<String>,
    /// Whether the end of validity has passed.
    pub expired: bool,
    /// SHA-256 of the leaf's DER, upper-case hex pairs joined by `:` (as `openssl x509
    /// -fingerprint -sha256` prints it).
    pub fingerprint_sha256: Option<String>,
    /// Whether subject and issuer are the same name.
    pub self_signed: bool,
    /// Number of certificates sent in the handshake (leaf plus intermediates).
    pub chain_length: usize,
    /// Unix time of creation or import.
    pub created: i64,
    /// Whether this is the server default.
    pub active_default: bool,
    /// Domains that use this certificate.
    pub active_domains: Vec<String>,
}

/// The subject fields of a new certificate or request (guide §16.1 figure 16.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCertParams {
    /// Host names (the first one is the CN); at least one.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Two-letter country code (required for a request, guide §16.1).
    #[serde(default)]
    pub country: Option<String>,
    /// Organization name.
    #[serde(default)]
    pub organization: Option<String>,
    /// Organization unit.
    #[serde(default)]
    pub organizational_unit: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State or province.
    #[serde(default)]
    pub state: Option<String>,
    /// Label; default: the first host name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A PEM import: one concatenated text, or the certificate, chain and key apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPem {
    /// PEM certificate(s), leaf first; may also hold the chain and the key.
    pub certificate: String,
    /// More PEM certificates (intermediates).
    #[serde(default)]
    pub chain: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), unless in `certificate` or pending.
    #[serde(default)]
    pub key: Option<String>,
    /// Label; default: the leaf's first host name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Where a certificate is activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The server default.
    Default,
    /// One domain's names (SNI).
    Domain(String),
}

/// A chain and its key, as the TLS layer needs them.
#[derive(Debug)]
pub struct Pair {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

/// The active certificates.
#[derive(Debug, Default)]
pub struct ActiveSet {
    /// The server default.
    pub default: Option<Pair>,
    /// Domain → its certificate.
    pub domains: Vec<(String, Pair)>,
}

// ------------------------------------------------------------------------ helpers

/// PEM text of one DER object (RFC 7468 §2: base64 lines of 64 characters).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_encode(label, key.secret_der())
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn short_id(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rfc3339(t: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339())
}

fn certs_in(text: &str, field: &'static str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, format!("{field} holds a damaged PEM block: {e}")))
}

/// The private key in `text`, if any (refusing encrypted keys with a clear sentence).
fn key_in(text: &str, field: &'static str) -> Result<Option<PrivateKeyDer<'static>>, CertError> {
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(invalid(
            field,
            "the private key is encrypted; remove the pass phrase (openssl pkey -in key.pem) or import a PKCS#12 file with its password",
        ));
    }
    match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
        Ok(k) => Ok(Some(k)),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Ok(None),
        Err(e) => Err(invalid(
            field,
            format!("{field} holds a damaged private key: {e}"),
        )),
    }
}

/// The SubjectPublicKeyInfo of a private key (RFC 5280 §4.1.2.7), or why it is unusable.
fn key_spki(key: &PrivateKeyDer<'_>, field: &'static str) -> Result<Vec<u8>, CertError> {
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(key).map_err(|e| {
        invalid(
            field,
            format!("the private key is not an RSA, ECDSA or Ed25519 key usable for TLS: {e}"),
        )
    })?;
    signer
        .public_key()
        .map(|s| s.as_ref().to_vec())
        .ok_or_else(|| {
            invalid(
                field,
                "the public key of this private key cannot be derived",
            )
        })
}

fn parse_cert<'a>(der: &'a [u8], field: &'static str) -> Result<X509Certificate<'a>, CertError> {
    X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| {
        invalid(
            field,
            format!("{field} holds a certificate that cannot be read: {e}"),
        )
    })
}

/// A DNS host name (RFC 1035 §2.3.1, lower-cased) with an optional leading `*.` label
/// (RFC 6125 §6.4.3), or an IP address.
fn check_hostname(h: &str) -> Result<String, CertError> {
    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h);
    }
    let rest = h.strip_prefix("*.").unwrap_or(&h);
    let ok = !rest.is_empty()
        && h.len() <= 253
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(h)
    } else {
        Err(invalid(
            "hostnames",
            format!(
                "'{h}' is not a host name (letters, digits, hyphens and dots; '*.' may start it)"
            ),
        ))
    }
}

fn check_params(
    p: &NewCertParams,
    need_country: bool,
) -> Result<(Vec<String>, Option<String>), CertError> {
    let names: Vec<String> = p
        .hostnames
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| check_hostname(h))
        .collect::<Result<_, _>>()?;
    if names.is_empty() {
        return Err(invalid(
            "hostnames",
            "hostnames: give at least one host name (guide §16.1: Hostname is required)",
        ));
    }
    let country = p
        .country
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let country = match country {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => {
            return Err(invalid(
                "country",
                format!("country '{c}' must be a two-letter code such as CZ or US"),
            ));
        }
        None if need_country => {
            return Err(invalid(
                "country",
                "country is required for a certificate request (guide §16.1), as a two-letter code",
            ));
        }
        None => None,
    };
    for (field, v) in [
        ("organization", &p.organization),
        ("organizational_unit", &p.organizational_unit),
        ("city", &p.city),
        ("state", &p.state),
        ("name", &p.name),
    ] {
        if let Some(v) = v
            && (v.len() > 64 || v.chars().any(char::is_control))
        {
            return Err(invalid(
                field,
                format!("{field} must be at most 64 characters without control characters"),
            ));
        }
    }
    Ok((names, country))
}

fn rcgen_params(
    p: &NewCertParams,
    names: &[String],
    country: Option<&str>,
    now: i64,
) -> Result<rcgen::CertificateParams, CertError> {
    use chrono::Datelike;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| invalid("hostnames", format!("hostnames: {e}")))?;
    let mut dn = rcgen::DistinguishedName::new();
    // guide §16.1 figure 16.3: Hostname, Organization, Unit, City, State, Country.
    dn.push(rcgen::DnType::CommonName, names[0].clone());
    let fields = [
        (rcgen::DnType::OrganizationName, &p.organization),
        (
            rcgen::DnType::OrganizationalUnitName,
            &p.organizational_unit,
        ),
        (rcgen::DnType::LocalityName, &p.city),
        (rcgen::DnType::StateOrProvinceName, &p.state),
    ];
    for (t, v) in fields {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            dn.push(t, v.to_owned());
        }
    }
    if let Some(c) = country {
        dn.push(rcgen::DnType::CountryName, c.to_owned());
    }
    params.distinguished_name = dn;
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default()
    };
    let (from, to) = (day(now - 86_400), day(now + SELF_SIGNED_DAYS * 86_400));
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
    Ok(params)
}

// ------------------------------------------------------------------------ reading

fn decode(doc: keel_store::Doc) -> Result<StoredCert, CertError> {
    serde_json::from_value(doc.body)
        .map_err(|e| StoreError::Corrupt(format!("{CERT_KIND}/{}: {e}", doc.key)).into())
}

/// Every stored certificate and request, by id.
pub fn load_all(meta: &dyn MetaStore) -> Result<Vec<StoredCert>, CertError> {
    meta.list_docs(CERT_KIND, None)?
        .into_iter()
        .map(decode)
        .collect()
}

/// One stored certificate or request.
pub fn load(meta: &dyn MetaStore, id: &str) -> Result<StoredCert, CertError> {
    let id = id.trim().to_ascii_lowercase();
    match meta.get_doc(CERT_KIND, &id)? {
        Some(doc) => decode(doc),
        None => Err(CertError::NotFound(id)),
    }
}

/// The activation record.
pub fn load_active(meta: &dyn MetaStore) -> Result<Active, CertError> {
    match meta.get_doc(ACTIVE_KIND, ACTIVE_KEY)? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{ACTIVE_KIND}/{ACTIVE_KEY}: {e}")).into()),
        None => Ok(Active::default()),
    }
}

/// A change stamp of everything here: the server rebuilds its TLS set when it differs.
pub fn stamp(meta: &dyn MetaStore) -> Result<Vec<(String, u64)>, CertError> {
    let mut out: Vec<(String, u64)> = meta
        .list_docs(CERT_KIND, None)?
        .into_iter()
        .map(|d| (d.key, d.version))
        .collect();
    if let Some(d) = meta.get_doc(ACTIVE_KIND, ACTIVE_KEY)? {
        out.push((format!("{ACTIVE_KIND}/{}", d.key), d.version));
    }
    Ok(out)
}

/// The details of a stored certificate or request.
pub fn info(c: &StoredCert, active: &Active, now: i64) -> CertInfo {
    let mut out = CertInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: if c.chain_pem.is_some() {
            "certificate"
        } else {
            "request"
        },
        subject: String::new(),
        issuer: None,
        hostnames: Vec::new(),
        not_before: None,
        not_after: None,
        expired: false,
        fingerprint_sha256: None,
        self_signed: false,
        chain_length: 0,
        created: c.created,
        active_default: active.default.as_deref() == Some(c.id.as_str()),
        active_domains: active
            .domains
            .iter()
            .filter(|(_, id)| **id == c.id)
            .map(|(d, _)| d.clone())
            .collect(),
    };
    let san_names = |names: &[GeneralName<'_>]| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(s) => Some((*s).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => <[u8; 4]>::try_from(*b)
                        .ok()
                        .map(|a| std::net::IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| std::net::IpAddr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    if let Some(chain) = &c.chain_pem {
        let certs = certs_in(chain, "certificate").unwrap_or_default();
        out.chain_length = certs.len();
        if let Some(leaf) = certs.first() {
            out.fingerprint_sha256 = Some(fingerprint(leaf.as_ref()));
            if let Ok((_, x)) = X509Certificate::from_der(leaf.as_ref()) {
                out.subject = x.subject().to_string();
                out.issuer = Some(x.issuer().to_string());
                // RFC 5280 §6.1: a self-issued certificate has the same subject and issuer.
                out.self_signed = x.subject().as_raw() == x.issuer().as_raw();
                let (nb, na) = (
                    x.validity().not_before.timestamp(),
                    x.validity().not_after.timestamp(),
                );
                out.not_before = rfc3339(nb);
                out.not_after = rfc3339(na);
                out.expired = na < now;
                if let Ok(Some(san)) = x.subject_alternative_name() {
                    out.hostnames = san_names(&san.value.general_names);
                }
            }
        }
    } else if let Some(csr) = &c.csr_pem
        && let Ok(der) = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        && let Ok((_, x)) = X509CertificationRequest::from_der(der.as_ref())
    {
        out.subject = x.certification_request_info.subject.to_string();
        if let Some(exts) = x.requested_extensions() {
            for e in exts {
                if let ParsedExtension::SubjectAlternativeName(san) = e {
                    out.hostnames = san_names(&san.general_names);
                }
            }
        }
    }
    out
}

/// Every certificate and request with its details, the default first, then by name.
pub fn list(meta: &dyn MetaStore, now: i64) -> Result<Vec<CertInfo>, CertError> {
    let active = load_active(meta)?;
    let mut out: Vec<CertInfo> = load_all(meta)?
        .iter()
        .map(|c| info(c, &active, now))
        .collect();
    out.sort_by(|a, b| {
        b.active_default
            .cmp(&a.active_default)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// One certificate's details.
pub fn show(meta: &dyn MetaStore, id: &str, now: i64) -> Result<CertInfo, CertError> {
    let c = load(meta, id)?;
    Ok(info(&c, &load_active(meta)?, now))
}

// ------------------------------------------------------------------------ changes

fn put(
    meta: &dyn MetaStore,
    c: &StoredCert,
    activate_default_if_none: bool,
) -> Result<(), CertError> {
    let body = serde_json::to_value(c)
        .map_err(|e| StoreError::Backend(format!("encoding certificate: {e}")))?;
    let active_body = |a: &Active| {
        serde_json::to_value(a)
            .map_err(|e| StoreError::Backend(format!("encoding certificate_active: {e}")))
    };
    meta.transact(&mut |tx| {
        tx.put(CERT_KIND, &c.id, "", &body)?;
        if activate_default_if_none {
            let mut a: Active = match tx.get(ACTIVE_KIND, ACTIVE_KEY)? {
                Some(d) => serde_json::from_value(d.body).unwrap_or_default(),
                None => Active::default(),
            };
            if a.default.is_none() {
                a.default = Some(c.id.clone());
                tx.put(ACTIVE_KIND, ACTIVE_KEY, "", &active_body(&a)?)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Generates and stores a self-signed certificate (guide §16.1 "New certificate"). The
/// first certificate stored becomes the server default.
pub fn generate_self_signed(
    meta: &dyn MetaStore,
    p: &NewCertParams,
    now: i64,
) -> Result<CertInfo, CertError> {
    let (names, country) = check_params(p, false)?;
    let params = rcgen_params(p, &names, country.as_deref(), now)?;
    let key = rcgen::KeyPair::generate()
        .map_err(|e| StoreError::Backend(format!("key generation: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid("hostnames", format!("the certificate cannot be made: {e}")))?;
    let stored = StoredCert {
        id: short_id(cert.der()),
        name: p
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| names[0].clone()),
        chain_pem: Some(cert.pem()),
        key_pem: key.serialize_pem(),
        csr_pem: None,
        created: now,
    };
    put(meta, &stored, true)?;
    show(meta, &stored.id, now)
}

/// Creates a key and a PKCS#10 request (RFC 2986) for a CA (guide §16.1 "New certificate
/// request"); the key stays here until the signed certificate is imported.
pub fn create_request(
    meta: &dyn MetaStore,
    p: &NewCertParams,
    now: i64,
) -> Result<(CertInfo, String), CertError> {
    let (names, country) = check_params(p, true)?;
    let params = rcgen_params(p, &names, country.as_deref(), now)?;
    let key = rcgen::KeyPair::generate()
        .map_err(|e| StoreError::Backend(format!("key generation: {e}")))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| invalid("hostnames", format!("the request cannot be made: {e}")))?;
    let csr_pem = csr
        .pem()
        .map_err(|e| StoreError::Backend(format!("CSR encoding: {e}")))?;
    let stored = StoredCert {
        id: short_id(csr.der()),
        name: p
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| names[0].clone()),
        chain_pem: None,
        key_pem: key.serialize_pem(),
        csr_pem: Some(csr_pem.clone()),
        created: now,
    };
    put(meta, &stored, false)?;
    Ok((show(meta, &stored.id, now)?, csr_pem))
}

/// Orders `certs` as leaf (the one whose key is `spki`) then issuers (RFC 5246 §7.4.2:
/// each following certificate certifies the one before it).
fn order_chain(
    certs: Vec<CertificateDer<'static>>,
    spki: &[u8],
    key_field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let mut rest = certs;
    let leaf_at = rest
        .iter()
        .position(|c| {
            X509Certificate::from_der(c.as_ref())
                .map(|(_, x)| x.public_key().raw == spki)
                .unwrap_or(false)
        })
        .ok_or_else(|| {
            invalid(
                key_field,
                "the private key does not match the certificate (their public keys differ); give the key this certificate was issued for",
            )
        })?;
    let mut chain = vec![rest.remove(leaf_at)];
    while !rest.is_empty() {
        let last = chain
            .last()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let last = parse_cert(&last, "certificate")?;
        if last.subject().as_raw() == last.issuer().as_raw() {
            break;
        }
        let issuer = last.issuer().as_raw().to_vec();
        let Some(at) = rest.iter().position(|c| {
            X509Certificate::from_der(c.as_ref())
                .map(|(_, x)| x.subject().as_raw() == issuer.as_slice())
                .unwrap_or(false)
        }) else {
            break;
        };
        chain.push(rest.remove(at));
    }
    if !rest.is_empty() {
        return Err(invalid(
            "chain",
            format!(
                "{} certificate(s) do not belong to the chain of the server certificate (each intermediate must have issued the one before it)",
                rest.len()
            ),
        ));
    }
    Ok(chain)
}

fn import_checked(
    meta: &dyn MetaStore,
    certs: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
    name: Option<String>,
    now: i64,
) -> Result<CertInfo, CertError> {
    if certs.is_empty() {
        return Err(invalid(
            "certificate",
            "certificate: no PEM certificate found (a block starting with -----BEGIN CERTIFICATE-----)",
        ));
    }
    for c in &certs {
        parse_cert(c.as_ref(), "certificate")?;
    }
    let all = load_all(meta)?;
    // The key: given, or the pending request whose key the certificate carries.
    let (key_pem_text, spki, base) = match key {
        Some(k) => {
            let spki = key_spki(&k, "key")?;
            (key_pem(&k), spki, None)
        }
        None => {
            let spkis: Vec<Vec<u8>> = certs
                .iter()
                .filter_map(|c| {
                    X509Certificate::from_der(c.as_ref())
                        .ok()
                        .map(|(_, x)| x.public_key().raw.to_vec())
                })
                .collect();
            let pending = all.iter().filter(|c| c.chain_pem.is_none()).find_map(|c| {
                let k = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).ok()?;
                let s = key_spki(&k, "key").ok()?;
                spkis.contains(&s).then(|| (c.clone(), s))
            });
            match pending {
                Some((req, s)) => (req.key_pem.clone(), s, Some(req)),
                None => {
                    return Err(invalid(
                        "key",
                        "key: no private key was given and no pending certificate request has this certificate's key; paste the key with the certificate",
                    ));
                }
            }
        }
    };
    let chain = order_chain(certs, &spki, "key")?;
    let leaf = parse_cert(chain[0].as_ref(), "certificate")?;
    let fp = fingerprint(chain[0].as_ref());
    let active = load_active(meta)?;
    if let Some(dup) = all
        .iter()
        .find(|c| info(c, &active, now).fingerprint_sha256.as_deref() == Some(fp.as_str()))
    {
        return Err(CertError::Refused(format!(
            "this certificate is already stored (id {}, '{}')",
            dup.id, dup.name
        )));
    }
    let label = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
        leaf.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok().map(str::to_owned))
            .unwrap_or_else(|| leaf.subject().to_string())
    });
    let chain_pem: String = chain
        .iter()
        .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
        .collect();
    let stored = match base {
        Some(req) => StoredCert {
            chain_pem: Some(chain_pem),
            ..req
        },
        None => StoredCert {
            id: short_id(chain[0].as_ref()),
            name: label,
            chain_pem: Some(chain_pem),
            key_pem: key_pem_text,
            csr_pem: None,
            created: now,
        },
    };
    put(meta, &stored, true)?;
    show(meta, &stored.id, now)
}

/// Imports PEM certificates and key (guide §16.1 "Import"; intermediate certificates
/// concatenated after the server certificate, or apart in `chain`).
pub fn import_pem(meta: &dyn MetaStore, req: &ImportPem, now: i64) -> Result<CertInfo, CertError> {
    let total = req.certificate.len()
        + req.chain.as_deref().map_or(0, str::len)
        + req.key.as_deref().map_or(0, str::len);
    if total > MAX_INPUT_BYTES {
        return Err(invalid(
            "certificate",
            format!("the input is larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    let mut certs = certs_in(&req.certificate, "certificate")?;
    if let Some(chain) = &req.chain {
        certs.extend(certs_in(chain, "chain")?);
    }
    let key = match req.key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(k) => Some(key_in(k, "key")?.ok_or_else(|| {
            invalid(
                "key",
                "key: no PEM private key found (a block starting with -----BEGIN PRIVATE KEY-----)",
            )
        })?),
        None => key_in(&req.certificate, "certificate")?,
    };
    import_checked(meta, certs, key, req.name.clone(), now)
}

/// Imports a PKCS#12 (`.p12`/`.pfx`) file: its key and certificate chain (RFC 7292).
pub fn import_pkcs12(
    meta: &dyn MetaStore,
    der: &[u8],
    password: &str,
    name: Option<String>,
    now: i64,
) -> Result<CertInfo, CertError> {
    if der.len() > MAX_INPUT_BYTES {
        return Err(invalid(
            "pkcs12",
            format!("the file is larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    let ks = p12_keystore::KeyStore::from_pkcs12(
        der,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        invalid(
            "pkcs12",
            format!("the PKCS#12 file cannot be opened (wrong password or damaged file): {e}"),
        )
    })?;
    let (_, chain) = ks.private_key_chain().ok_or_else(|| {
        invalid(
            "pkcs12",
            "the PKCS#12 file holds no private key with its certificate",
        )
    })?;
    let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec()).map_err(|e| {
        invalid(
            "pkcs12",
            format!("the PKCS#12 private key cannot be read: {e}"),
        )
    })?;
    let mut certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    // Other certificates of the file (a CA bundle) join the chain when they belong to it.
    for e in ks.entries() {
        if let (_, p12_keystore::KeyStoreEntry::Certificate(c)) = e {
            let d = CertificateDer::from(c.as_der().to_vec());
            if !certs.contains(&d) {
                certs.push(d);
            }
        }
    }
    let spki = key_spki(&key, "pkcs12")?;
    // A root or unrelated certificate in the bundle is left out rather than refused.
    let mut kept = Vec::new();
    for c in certs {
        kept.push(c);
        if order_chain(kept.clone(), &spki, "pkcs12").is_err() && kept.len() > 1 {
            kept.pop();
        }
    }
    import_checked(meta, kept, Some(key), name, now)
}

/// The PEM export (guide §16.1 "Export"): the chain (or the request), and the private key
/// only when `with_key` is set. Callers check the administrator's rights for the key.
pub fn export(meta: &dyn MetaStore, id: &str, with_key: bool) -> Result<String, CertError> {
    let c = load(meta, id)?;
    let mut out = match (&c.chain_pem, &c.csr_pem) {
        (Some(chain), _) => chain.clone(),
        (None, Some(csr)) => csr.clone(),
        (None, None) => String::new(),
    };
    if with_key {
        out.push_str(&c.key_pem);
    }
    Ok(out)
}

fn save_active(tx: &mut dyn keel_store::DocTxn, a: &Active) -> keel_store::StoreResult<()> {
    let body = serde_json::to_value(a)
        .map_err(|e| StoreError::Backend(format!("encoding certificate_active: {e}")))?;
    tx.put(ACTIVE_KIND, ACTIVE_KEY, "", &body).map(|_| ())
}

fn read_active(tx: &mut dyn keel_store::DocTxn) -> keel_store::StoreResult<Active> {
    match tx.get(ACTIVE_KIND, ACTIVE_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map_err(|e| StoreError::Corrupt(format!("{ACTIVE_KIND}: {e}"))),
        None => Ok(Active::default()),
    }
}

/// Sets a certificate as active (guide §16.1 "Set as active"): the server default, or the
/// one of a domain's names. The caller checks that the domain exists.
pub fn activate(
    meta: &dyn MetaStore,
    id: &str,
    target: &Target,
    now: i64,
) -> Result<CertInfo, CertError> {
    let c = load(meta, id)?;
    if c.chain_pem.is_none() {
        return Err(CertError::Refused(format!(
            "{} is a certificate request; import the certificate the authority signed before activating it",
            c.id
        )));
    }
    let id = c.id.clone();
    meta.transact(&mut |tx| {
        if tx.get(CERT_KIND, &id)?.is_none() {
            return Err(StoreError::NotFound(format!("certificate {id}")));
        }
        let mut a = read_active(tx)?;
        match target {
            Target::Default => a.default = Some(id.clone()),
            Target::Domain(d) => {
                a.domains.insert(d.to_ascii_lowercase(), id.clone());
            }
        }
        save_active(tx, &a)
    })?;
    show(meta, &c.id, now)
}

/// Makes a domain use the server default again; returns whether it had its own.
pub fn deactivate_domain(meta: &dyn MetaStore, domain: &str) -> Result<bool, CertError> {
    let d = domain.to_ascii_lowercase();
    let mut had = false;
    meta.transact(&mut |tx| {
        let mut a = read_active(tx)?;
        had = a.domains.remove(&d).is_some();
        if had {
            save_active(tx, &a)?;
        }
        Ok(())
    })?;
    Ok(had)
}

/// Removes a certificate or request (guide §16.1 "Remove"). The server default cannot
/// be removed; domains using the certificate fall back to the default.
pub fn remove(meta: &dyn MetaStore, id: &str) -> Result<StoredCert, CertError> {
    let c = load(meta, id)?;
    let mut refused = false;
    meta.transact(&mut |tx| {
        let mut a = read_active(tx)?;
        if a.default.as_deref() == Some(c.id.as_str()) {
            refused = true;
            return Ok(());
        }
        let before = a.domains.len();
        a.domains.retain(|_, v| *v != c.id);
        if a.domains.len() != before {
            save_active(tx, &a)?;
        }
        tx.delete(CERT_KIND, &c.id)?;
        Ok(())
    })?;
    if refused {
        return Err(CertError::Refused(format!(
            "{} is the active server certificate; set another certificate as active before removing it",
            c.id
        )));
    }
    Ok(c)
}

fn pair_of(c: &StoredCert) -> Option<Pair> {
    let chain = certs_in(c.chain_pem.as_deref()?, "certificate").ok()?;
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).ok()?;
    (!chain.is_empty()).then_some(Pair { chain, key })
}

/// The active certificates with their keys, for the TLS layer.
pub fn active_set(meta: &dyn MetaStore) -> Result<ActiveSet, CertError> {
    let a = load_active(meta)?;
    let all: BTreeMap<String, StoredCert> = load_all(meta)?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let default = a
        .default
        .as_ref()
        .and_then(|id| all.get(id))
        .and_then(pair_of);
    let domains = a
        .domains
        .iter()
        .filter_map(|(d, id)| Some((d.clone(), pair_of(all.get(id)?)?)))
        .collect();
    Ok(ActiveSet { default, domains })
}

/// Imports the PEM pairs of the certificate directory once (guide §16.1 "Locally": a
/// certificate and key copied into the directory): `cert.pem` + `key.pem` become the server
/// default when none is set, `<name>.pem` + `<name>.key` the certificate of `<name>`'s
/// names. Intermediates may follow the certificate in the same file. Returns how many
/// were imported.
pub fn import_directory(meta: &dyn MetaStore, dir: &Path, now: i64) -> Result<usize, CertError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut pairs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let (Some(stem), Some("pem")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        match stem {
            "key" => {}
            "cert" => pairs.push((None, path.clone(), dir.join("key.pem"))),
            _ => pairs.push((
                Some(stem.to_ascii_lowercase()),
                path.clone(),
                path.with_extension("key"),
            )),
        }
    }
    let mut n = 0;
    for (domain, cert, key) in pairs {
        let (Ok(cert_text), Ok(key_text)) = (
            std::fs::read_to_string(&cert),
            std::fs::read_to_string(&key),
        ) else {
            continue;
        };
        let certs = certs_in(&cert_text, "certificate")?;
        let Some(leaf) = certs.first() else { continue };
        let fp = fingerprint(leaf.as_ref());
        let active = load_active(meta)?;
        if active.imported_files.contains(&fp) {
            continue;
        }
        let existing = load_all(meta)?
            .into_iter()
            .find(|c| info(c, &active, now).fingerprint_sha256.as_deref() == Some(fp.as_str()));
        let id = match existing {
            Some(c) => c.id,
            None => {
                let req = ImportPem {
                    certificate: cert_text,
                    key: Some(key_text),
                    ..ImportPem::default()
                };
                let info = import_pem(meta, &req, now).map_err(|e| match e {
                    CertError::Invalid { message, .. } => {
                        invalid("certificate", format!("{}: {message}", cert.display()))
                    }
                    other => other,
                })?;
                n += 1;
                info.id
            }
        };
        meta.transact(&mut |tx| {
            let mut a = read_active(tx)?;
            match &domain {
                None if a.default.is_none() => a.default = Some(id.clone()),
                Some(d) if !a.domains.contains_key(d) => {
                    a.domains.insert(d.clone(), id.clone());
                }
                _ => {}
            }
            a.imported_files.push(fp.clone());
            save_active(tx, &a)
        })?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_checked() {
        assert_eq!(
            check_hostname("Mail.Example.COM.").ok().as_deref(),
            Some("mail.example.com")
        );
        assert!(check_hostname("*.example.com").is_ok());
        assert!(check_hostname("192.0.2.1").is_ok());
        assert!(check_hostname("bad host").is_err());
        assert!(check_hostname("-x.example").is_err());
    }

    #[test]
    fn request_needs_hostname_and_country() {
        let p = NewCertParams {
            hostnames: vec!["mail.example.com".into()],
            ..NewCertParams::default()
        };
        assert!(matches!(
            check_params(&p, true),
            Err(CertError::Invalid {
                field: "country",
                ..
            })
        ));
        assert!(check_params(&p, false).is_ok());
        let p = NewCertParams {
            country: Some("CZ".into()),
            ..NewCertParams::default()
        };
        assert!(matches!(
            check_params(&p, true),
            Err(CertError::Invalid {
                field: "hostnames",
                ..
            })
        ));
        let p = NewCertParams {
            hostnames: vec!["a.example".into()],
            country: Some("Czechia".into()),
            ..NewCertParams::default()
        };
        assert!(matches!(
            check_params(&p, true),
            Err(CertError::Invalid {
                field: "country",
                ..
            })
        ));
    }

    #[test]
    fn pem_round_trip() {
        let der = [1u8, 2, 3, 4, 5];
        let pem = pem_encode("CERTIFICATE", &der);
        let back = certs_in(&pem, "certificate").unwrap_or_default();
        assert_eq!(
            back.first().map(|c| c.as_ref().to_vec()),
            Some(der.to_vec())
        );
    }
}
