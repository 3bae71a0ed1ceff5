//! `keel.toml` and the data directory layout (DESIGN §5).
//!
//! `keel.toml` holds only what is needed before the store opens: the store backend and
//! the listen addresses. Every other setting is a typed document in the store.
//!
//! Data directory layout:
//! ```text
//! <data>/keel.toml      this file, written with comments on first run
//! <data>/keel.db        SQLite metadata store (WAL: keel.db-wal, keel.db-shm)
//! <data>/blobs/         content-addressed message bytes (keel_store::file); SQLite only:
//!                       with `backend = "postgres"` the bytes live in the database
//!                       (keel_store::postgres::PgBlobStore) and this directory is unused
//! <data>/tls/           cert.pem + key.pem (self-signed on first run); <domain>.pem/.key pairs,
//!                        imported into the store once (`keel_net::certs::import_directory`)
//! <data>/logs/          the guide's logs (guide ch. 25)
//! <data>/run/           keel.lock (one server per data dir) and status.json (for `keel status`)
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The parsed `keel.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeelToml {
    /// Metadata store: a `[store]` table, or the short form `store = "postgres://…"`.
    #[serde(default, deserialize_with = "store_section")]
    pub(crate) store: StoreSection,
    /// Where services listen.
    #[serde(default)]
    pub(crate) listen: ListenSection,
    /// The DNS server for MX lookups.
    #[serde(default)]
    pub(crate) dns: DnsSection,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DnsSection {
    /// `ip:port` of the DNS server for MX and address lookups; unset = the system's
    /// resolver configuration (/etc/resolv.conf).
    #[serde(default)]
    pub(crate) server: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSection {
    /// `sqlite` (default) or `postgres` (several nodes on one database, DESIGN §4).
    #[serde(default = "default_backend")]
    pub(crate) backend: String,
    /// Connection string of the PostgreSQL backend (`postgres://…` or `key=value …`).
    #[serde(default)]
    pub(crate) url: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: default_backend(),
            url: None,
        }
    }
}

impl StoreSection {
    pub(crate) fn is_postgres(&self) -> bool {
        self.backend == "postgres"
    }
}

fn default_backend() -> String {
    "sqlite".to_owned()
}

/// `store` as a `[store]` table, or as one string (issue 8: `store = "postgres://…"`):
/// `"sqlite"` for the embedded store, anything else a PostgreSQL connection string.
fn store_section<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StoreSection, D::Error> {
    struct Form;
    impl<'de> serde::de::Visitor<'de> for Form {
        type Value = StoreSection;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a [store] table or a PostgreSQL connection string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoreSection, E> {
            match v.trim() {
                "" => Err(E::custom("the store connection string is empty")),
                "sqlite" => Ok(StoreSection::default()),
                url => Ok(StoreSection {
                    backend: "postgres".to_owned(),
                    url: Some(url.to_owned()),
                }),
            }
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<StoreSection, A::Error> {
            StoreSection::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(Form)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenSection {
    /// Addresses every service binds unless its own bindings say otherwise.
    #[serde(default = "default_addresses")]
    pub(crate) addresses: Vec<IpAddr>,
    /// Added to every standard port (a second instance or tests side by side).
    #[serde(default)]
    pub(crate) port_offset: u16,
}

impl Default for ListenSection {
    fn default() -> Self {
        Self {
            addresses: default_addresses(),
            port_offset: 0,
        }
    }
}

fn default_addresses() -> Vec<IpAddr> {
    vec![
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 0]),
    ]
}

impl KeelToml {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: Self =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        match (cfg.store.backend.as_str(), &cfg.store.url) {
            ("sqlite", _) | ("postgres", Some(_)) => Ok(cfg),
            ("postgres", None) => bail!(
                "{}: the postgres store backend needs `url = \"postgres://…\"` in [store]",
                path.display()
            ),
            (other, _) => bail!(
                "{}: unknown store backend '{other}'; use \"sqlite\" or \"postgres\"",
                path.display()
            ),
        }
    }

    /// The commented file first run writes.
    pub(crate) fn render(&self) -> String {
        let addrs: Vec<String> = self
            .listen
            .addresses
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect();
        format!(
            "# Keel configuration.\n\
             # Only what is needed before the store opens lives here (DESIGN §5); every other\n\
             # setting is changed with the `keel` CLI or the web administration.\n\
             \n\
             [store]\n\
             # \"sqlite\": the embedded store in this directory (keel.db + blobs/).\n\
             # \"postgres\" with url = \"postgres://…\": several nodes share one database\n\
             # (metadata and message bodies; see docs/cluster.md).\n\
             backend = \"{}\"\n\
             {}\n\
             \n\
             [listen]\n\
             # Addresses every service binds unless a service has its own bindings\n\
             # (`keel service set NAME --bind ADDR:PORT`). \"0.0.0.0\" and \"::\" mean all.\n\
             addresses = [{}]\n\
             # Added to every standard port: 25 becomes 25 + port_offset, and so on.\n\
             # Ports below 1024 that cannot be bound without privileges fall back to port + 10000.\n\
             port_offset = {}\n\
             \n\
             [dns]\n\
             # DNS server for MX lookups of outgoing mail, as \"ip:port\".\n\
             # Unset: the system's resolver (/etc/resolv.conf).\n\
             {}\n",
            self.store.backend,
            match &self.store.url {
                Some(u) => format!("url = \"{}\"", u.replace('\\', "\\\\").replace('"', "\\\"")),
                None => "# url = \"postgres://keel@127.0.0.1/keel\"".to_owned(),
            },
            addrs.join(", "),
            self.listen.port_offset,
            match self.dns.server {
                Some(a) => format!("server = \"{a}\""),
                None => "# server = \"127.0.0.1:53\"".to_owned(),
            }
        )
    }
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    pub(crate) root: PathBuf,
}

impl DataDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }
    pub(crate) fn config(&self) -> PathBuf {
        self.root.join("keel.toml")
    }
    pub(crate) fn db(&self) -> PathBuf {
        self.root.join("keel.db")
    }
    pub(crate) fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub(crate) fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub(crate) fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    /// The traffic charts' history (guide §24.5), per node.
    pub(crate) fn traffic_file(&self) -> PathBuf {
        self.root.join("stats").join("traffic.json")
    }
    pub(crate) fn status_file(&self) -> PathBuf {
        self.run().join("status.json")
    }
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.run().join("keel.lock")
    }
    /// Whether first run has completed here.
    pub(crate) fn is_initialised(&self) -> bool {
        self.config().exists()
            && (self.db().exists()
                || KeelToml::load(&self.config()).is_ok_and(|c| c.store.is_postgres()))
    }
}

/// The system's host name, as the default Internet hostname (guide §7.1).
pub(crate) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The default primary domain: the hostname minus its first label
/// (`mail.example.com` gives `example.com`); a single-label hostname is used as it is.
pub(crate) fn domain_from_hostname(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if rest.contains('.') || !rest.is_empty() => rest.to_owned(),
        _ => hostname.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_hostname_minus_first_label() {
        assert_eq!(domain_from_hostname("mail.example.com"), "example.com");
        assert_eq!(
            domain_from_hostname("mx1.mail.example.co.uk"),
            "mail.example.co.uk"
        );
        assert_eq!(domain_from_hostname("localhost"), "localhost");
    }

    #[test]
    fn rendered_config_parses_back_and_unknown_keys_are_rejected() {
        let mut cfg = KeelToml {
            store: StoreSection::default(),
            listen: ListenSection::default(),
            dns: DnsSection::default(),
        };
        let back: KeelToml = toml::from_str(&cfg.render()).expect("rendered config parses");
        assert_eq!(back, cfg);
        cfg.dns.server = Some("127.0.0.1:5353".parse().expect("socket address"));
        let back: KeelToml = toml::from_str(&cfg.render()).expect("rendered config parses");
        assert_eq!(back, cfg);
        assert!(toml::from_str::<KeelToml>("[listen]\nport_ofset = 3\n").is_err());
    }

    #[test]
    fn store_takes_a_table_or_a_connection_string() {
        let short: KeelToml =
            toml::from_str("store = \"postgres://keel@db.example.com/keel\"\n").expect("short");
        assert!(short.store.is_postgres());
        assert_eq!(
            short.store.url.as_deref(),
            Some("postgres://keel@db.example.com/keel")
        );
        let table: KeelToml = toml::from_str(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://keel@db.example.com/keel\"\n",
        )
        .expect("table");
        assert_eq!(table.store, short.store);
        let sqlite: KeelToml = toml::from_str("store = \"sqlite\"\n").expect("sqlite");
        assert_eq!(sqlite.store, StoreSection::default());
        assert!(toml::from_str::<KeelToml>("store = \"\"\n").is_err());
        // A typo inside the table is still named.
        let err =
            toml::from_str::<KeelToml>("[store]\nbakend = \"sqlite\"\n").expect_err("unknown key");
        assert!(err.to_string().contains("bakend"), "{err}");
    }
}
