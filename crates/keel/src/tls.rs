//! Server certificates: the self-signed first-run certificate and SNI selection of a
//! domain's own certificate (guide §16; DESIGN §6: one certificate set for every protocol).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// Writes a self-signed certificate for `hostname` (and `domain`) unless one exists.
pub(crate) fn ensure_self_signed(dir: &Path, hostname: &str, domain: &str) -> Result<bool> {
    let cert_path = dir.join(CERT_FILE);
    if cert_path.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    let mut names = vec![hostname.to_owned()];
    if domain != hostname {
        names.push(domain.to_owned());
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .context("cannot generate the self-signed certificate")?;
    let key_path = dir.join(KEY_FILE);
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem())?;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let signing = aws_lc_rs::sign::any_supported_type(&key_der)
        .with_context(|| format!("{} holds an unsupported key type", key.display()))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The certificate set: the default pair plus `<name>.pem`/`<name>.key` pairs chosen by SNI.
#[derive(Debug)]
pub(crate) struct CertSet {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let default = Arc::new(load_pair(&dir.join(CERT_FILE), &dir.join(KEY_FILE))?);
        let mut by_name = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let (Some(stem), Some("pem")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if stem == "cert" || stem == "key" {
                continue;
            }
            let key = path.with_extension("key");
            if key.exists() {
                let pair = load_pair(&path, &key)?;
                by_name.insert(stem.to_ascii_lowercase(), Arc::new(pair));
            }
        }
        Ok(Self { default, by_name })
    }

    /// The DER bytes of the default certificate (served as `/server.cer`, guide §36.4).
    pub(crate) fn default_der(&self) -> Vec<u8> {
        self.default
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>> {
        let cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(SniResolver(self.clone())));
        Ok(Arc::new(cfg))
    }
}

#[derive(Debug)]
struct SniResolver(Arc<CertSet>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = &self.0;
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(k) = set.by_name.get(&name) {
                return Some(k.clone());
            }
            // mail.example.com may use the certificate of example.com.
            if let Some((_, parent)) = name.split_once('.')
                && let Some(k) = set.by_name.get(parent)
            {
                return Some(k.clone());
            }
        }
        Some(set.default.clone())
    }
}
