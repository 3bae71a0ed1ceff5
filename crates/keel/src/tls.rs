//! Server certificates: the self-signed first-run certificate and SNI selection of a
//! domain's own certificate (guide §16; DESIGN §6: one certificate set for every protocol).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::RwLock;

use keel_store::MetaStore;

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
    // requirements-2 §16: the configured hostname as CN plus the SANs, never a made-up name.
    let mut params = rcgen::CertificateParams::new(names)
        .context("cannot generate the self-signed certificate")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname.to_owned());
    // Valid from yesterday for keel_net::certs::SELF_SIGNED_DAYS, like generated ones.
    let day = |t: chrono::DateTime<chrono::Utc>| {
        use chrono::Datelike;
        rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
    };
    let now = chrono::Utc::now();
    params.not_before = day(now - chrono::Duration::days(1));
    params.not_after = day(now + chrono::Duration::days(keel_net::certs::SELF_SIGNED_DAYS));
    let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot generate the self-signed certificate")?;
    let key_path = dir.join(KEY_FILE);
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())?;
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

fn certified(pair: keel_net::certs::Pair) -> Result<CertifiedKey> {
    let signing = aws_lc_rs::sign::any_supported_type(&pair.key)
        .context("a stored private key has an unsupported key type")?;
    Ok(CertifiedKey::new(pair.chain, signing))
}

/// The certificate set: the server default plus each domain's certificate, chosen by SNI
/// (guide §16; the store's `certificate_active` record).
#[derive(Debug)]
pub(crate) struct CertSet {
    default: Arc<CertifiedKey>,
    by_domain: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    /// Builds the set from the store (after [`keel_net::certs::import_directory`]).
    pub(crate) fn from_store(meta: &dyn MetaStore) -> Result<Self> {
        let set = keel_net::certs::active_set(meta)?;
        let default = set
            .default
            .context("no server certificate is active (keel cert list; keel cert activate ID)")?;
        let mut by_domain = HashMap::new();
        for (d, pair) in set.domains {
            match certified(pair) {
                Ok(k) => {
                    by_domain.insert(d, Arc::new(k));
                }
                Err(e) => tracing::warn!("certificate of {d} not used: {e:#}"),
            }
        }
        Ok(Self {
            default: Arc::new(certified(default)?),
            by_domain,
        })
    }

    /// The DER bytes of the default certificate (served as `/server.cer`, guide §36.4).
    pub(crate) fn default_der(&self) -> Vec<u8> {
        self.default
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            // The domain's names: the domain itself and every name under it; the longest
            // matching domain wins (mail.a.example.com uses a.example.com's over example.com's).
            let mut best: Option<(&String, &Arc<CertifiedKey>)> = None;
            for (d, k) in &self.by_domain {
                let under = name == *d
                    || (name.len() > d.len()
                        && name.ends_with(d.as_str())
                        && name.as_bytes()[name.len() - d.len() - 1] == b'.');
                if under && best.is_none_or(|(b, _)| d.len() > b.len()) {
                    best = Some((d, k));
                }
            }
            if let Some((_, k)) = best {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

/// The set in use, replaced when the stored certificates change (hot reload).
#[derive(Debug, Clone)]
pub(crate) struct LiveCerts(Arc<RwLock<Arc<CertSet>>>);

impl LiveCerts {
    pub(crate) fn new(set: CertSet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(set))))
    }

    pub(crate) fn current(&self) -> Arc<CertSet> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn replace(&self, set: CertSet) {
        match self.0.write() {
            Ok(mut g) => *g = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
    }

    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
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
struct SniResolver(LiveCerts);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // The whole chain of the chosen certificate goes out (guide §16.1 intermediates).
        Some(self.0.current().pick(hello.server_name()))
    }
}
