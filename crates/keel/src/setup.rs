//! Opening a data directory's services, first-run creation, and the server-wide settings
//! kept in the store (Internet hostname, log settings).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keel_core::clock::{SharedClock, SystemClock};
use keel_core::log::{DebugCategory, LogKind, LogSettings, Logs};
use keel_directory::{AdminRights, Directory, NewDomain, NewUser};
use keel_store::file::FileBlobStore;
use keel_store::postgres::{PgBlobStore, PgStore};
use keel_store::sqlite::SqliteStore;
use keel_store::{BlobStore, DocTxn, MetaStore};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{self, DataDir};
use crate::http::{Authenticate, WebLogin, WebSession};

/// Document kind of server-wide settings.
const SETTING_KIND: &str = "server_setting";
const GENERAL_KEY: &str = "general";
/// The same document the admin API changes (`PATCH /admin/api/v1/log-settings`).
const LOGS_KEY: &str = keel_http::admin::LOG_SETTINGS_KEY;

/// Server-wide settings (guide §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct General {
    /// The Internet hostname: SMTP banner, EHLO, Received, Message-ID.
    pub(crate) hostname: String,
}

/// The opened services of a data directory.
pub(crate) struct Env {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) logs: Arc<Logs>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: keel_mail::Mailboxes,
    pub(crate) clock: SharedClock,
    pub(crate) data: DataDir,
}

impl Env {
    /// Opens (creating on first run) the store, blobs, logs and directory.
    pub(crate) fn open(data: &DataDir) -> Result<Self> {
        let store = match crate::config::KeelToml::load(&data.config()) {
            Ok(cfg) => cfg.store,
            Err(_) if !data.config().exists() => crate::config::StoreSection::default(),
            Err(e) => return Err(e),
        };
        let (meta, blobs) = open_store(data, &store)?;
        let settings = load_log_settings(meta.as_ref())?;
        let logs = Arc::new(
            Logs::open(&data.logs(), settings)
                .with_context(|| format!("cannot open the logs in {}", data.logs().display()))?,
        );
        let clock: SharedClock = Arc::new(SystemClock);
        let directory = Directory::new(meta.clone(), clock.clone());
        let sink_logs = logs.clone();
        directory.set_security_sink(Arc::new(move |ev: keel_directory::SecurityEvent| {
            log_security_event(&sink_logs, &ev);
        }));
        let directory = Arc::new(directory);
        let mailboxes = keel_mail::Mailboxes::new(
            meta.clone(),
            blobs.clone(),
            directory.clone(),
            clock.clone(),
        );
        if let Ok(Some(g)) = load_general(meta.as_ref()) {
            mailboxes.set_hostname(&g.hostname);
        }
        Ok(Self {
            meta,
            blobs,
            logs,
            directory,
            mailboxes,
            clock,
            data: data.clone(),
        })
    }

    /// Opens an existing data directory for an administration command.
    pub(crate) fn open_admin(data: &DataDir) -> Result<Self> {
        if !data.is_initialised() {
            bail!(
                "{} holds no Keel data; run `keel serve` once to create it",
                data.root.display()
            );
        }
        Self::open(data)
    }
}

/// Opens the store pair `[store]` names: SQLite metadata with file blobs under the data
/// directory (embedded), or PostgreSQL metadata with PostgreSQL blobs on the same database
/// and connection pool (DESIGN §4 cluster mode: every node reads the same message bodies,
/// so the data directory holds no mail).
pub(crate) fn open_store(
    data: &DataDir,
    store: &config::StoreSection,
) -> Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>)> {
    Ok(match (store.is_postgres(), &store.url) {
        (true, Some(url)) => {
            let pg = Arc::new(PgStore::open(url).context("cannot open the PostgreSQL store")?);
            let blobs = PgBlobStore::new(pg.clone());
            (pg, Arc::new(blobs))
        }
        _ => (
            Arc::new(
                SqliteStore::open(&data.db())
                    .with_context(|| format!("cannot open the store {}", data.db().display()))?,
            ),
            Arc::new(
                FileBlobStore::open(&data.blobs())
                    .with_context(|| format!("cannot open {}", data.blobs().display()))?,
            ),
        ),
    })
}

/// `keel check` on whichever backend pair `env` has open (`--repair` recounts counters
/// and removes orphans on both).
pub(crate) fn check_store(env: &Env, repair: bool) -> Result<keel_store::check::CheckReport> {
    Ok(keel_store::check::check_store(
        env.meta.as_ref(),
        env.blobs.as_ref(),
        repair,
    )?)
}

/// guide §25.4: failed logins, lockouts and unlocks in the security log.
fn log_security_event(logs: &Logs, ev: &keel_directory::SecurityEvent) {
    use keel_core::log::{AuthFailure, SecurityEvent as Line};
    use keel_directory::SecurityEvent as Ev;
    match ev {
        Ev::LoginFailed {
            login,
            ip,
            service,
            reason,
            ..
        } => {
            let why = format!("user {login}: {reason}");
            logs.security(&Line::FailedLogin {
                protocol: &service.to_ascii_uppercase(),
                ip: *ip,
                reason: AuthFailure::Other(&why),
            });
        }
        Ev::AccountLocked {
            user,
            ip,
            service,
            until,
        } => {
            let until = chrono::DateTime::from_timestamp(*until, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%d/%b/%Y %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            logs.security(&Line::Other(&format!(
                "Account {user} locked after repeated failed {} logins from {ip}, until {until}",
                service.to_ascii_uppercase()
            )));
        }
        Ev::AccountUnlocked { user, was_locked } => {
            logs.security(&Line::Other(&format!(
                "Administrator unlocked account {user}{}",
                if *was_locked {
                    ""
                } else {
                    " (it was not locked)"
                }
            )));
        }
        Ev::AccountsUnlocked { count } => {
            logs.security(&Line::Other(&format!(
                "Administrator unlocked {count} locked account(s)"
            )));
        }
        Ev::PasswordHashUpgraded { user } => {
            logs.security(&Line::Other(&format!(
                "Password hash of {user} upgraded to Argon2id"
            )));
        }
    }
}

pub(crate) fn load_log_settings(meta: &dyn MetaStore) -> Result<LogSettings> {
    Ok(match meta.get_doc(SETTING_KIND, LOGS_KEY)? {
        Some(d) => serde_json::from_value(d.body).context("stored log settings are invalid")?,
        None => LogSettings::default(),
    })
}

pub(crate) fn save_log_settings(meta: &dyn MetaStore, s: &LogSettings) -> Result<()> {
    let body = serde_json::to_value(s)?;
    meta.transact(&mut |txn: &mut dyn DocTxn| {
        txn.put(SETTING_KIND, LOGS_KEY, "", &body).map(|_| ())
    })?;
    Ok(())
}

/// Re-reads settings that apply at run time (called when the store changes).
pub(crate) fn apply_runtime_settings(env: &Env) {
    match load_log_settings(env.meta.as_ref()) {
        Ok(s) => env.logs.set_settings(s),
        Err(e) => env.logs.write(LogKind::Error, &format!("{e:#}")),
    }
}

pub(crate) fn debug_categories(env: &Env) -> Result<Vec<DebugCategory>> {
    Ok(load_log_settings(env.meta.as_ref())?
        .debug_categories
        .into_iter()
        .collect())
}

pub(crate) fn set_debug_category(env: &Env, name: &str, on: bool) -> Result<()> {
    let cat: DebugCategory = name.parse().map_err(|_| {
        let all: Vec<&str> = DebugCategory::ALL.iter().map(|c| c.as_str()).collect();
        anyhow::anyhow!(
            "there is no debug category '{name}'; the categories are: {}",
            all.join(", ")
        )
    })?;
    let mut s = load_log_settings(env.meta.as_ref())?;
    if on {
        s.debug_categories.insert(cat);
    } else {
        s.debug_categories.remove(&cat);
    }
    save_log_settings(env.meta.as_ref(), &s)
}

pub(crate) fn load_general(meta: &dyn MetaStore) -> Result<Option<General>> {
    Ok(match meta.get_doc(SETTING_KIND, GENERAL_KEY)? {
        Some(d) => {
            Some(serde_json::from_value(d.body).context("stored server settings are invalid")?)
        }
        None => None,
    })
}

/// The Internet hostname: the flag (stored), else the stored one, else the system's.
pub(crate) fn ensure_hostname(env: &Env, flag: Option<&str>) -> Result<String> {
    let current = load_general(env.meta.as_ref())?;
    let hostname = match (flag, &current) {
        (Some(h), _) => {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if !keel_core::address::is_valid_domain(&h) {
                bail!("'{h}' is not a valid Internet hostname");
            }
            h
        }
        (None, Some(g)) => return Ok(g.hostname.clone()),
        (None, None) => config::system_hostname(),
    };
    if current.as_ref().map(|g| &g.hostname) != Some(&hostname) {
        let body = serde_json::to_value(General {
            hostname: hostname.clone(),
        })?;
        env.meta.transact(&mut |txn: &mut dyn DocTxn| {
            txn.put(SETTING_KIND, GENERAL_KEY, "", &body).map(|_| ())
        })?;
        env.logs.config(
            "keel serve",
            &format!("Internet hostname set to {hostname}"),
        );
    }
    Ok(hostname)
}

/// The administrator account first run created.
pub(crate) struct CreatedAdmin {
    pub(crate) login: String,
    pub(crate) password: String,
}

/// Characters of generated passwords: no look-alikes (0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..20)
        .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
        .collect()
}

/// First run: the primary domain and the admin account (guide §2.5, §8.1).
/// Returns `None` when the store already has domains: a node joining a shared (PostgreSQL)
/// store creates nothing.
pub(crate) fn first_run(
    env: &Env,
    hostname: &str,
    domain: Option<&str>,
) -> Result<Option<CreatedAdmin>> {
    let domain = match domain {
        Some(d) => d.trim().to_ascii_lowercase(),
        None => config::domain_from_hostname(hostname),
    };
    let d = &env.directory;
    if !d.list_domains()?.is_empty() {
        env.logs.config(
            "keel serve",
            "first run on a store that already has domains: joined it",
        );
        return Ok(None);
    }
    d.add_domain(NewDomain {
        name: domain.clone(),
        ..NewDomain::default()
    })?;
    d.set_primary_domain(&domain)?;
    let login = format!("admin@{domain}");
    let password = generate_password();
    d.add_user(NewUser {
        full_name: "Administrator".to_owned(),
        admin_rights: AdminRights::Full,
        ..NewUser::new(&login, &password)
    })?;
    env.logs.config(
        "keel serve",
        &format!("first run: domain {domain} and user {login} created"),
    );
    Ok(Some(CreatedAdmin { login, password }))
}

pub(crate) fn primary_domain(env: &Env) -> Result<String> {
    env.directory
        .list_domains()?
        .into_iter()
        .find(|d| d.primary)
        .map(|d| d.name)
        .context("the store has no primary domain; set one with `keel domain set NAME --primary`")
}

/// Web sign-in through the directory's one authentication path.
pub(crate) fn web_authenticator(env: &Env) -> Authenticate {
    let dir = env.directory.clone();
    Arc::new(move |w: WebLogin| -> Result<WebSession, String> {
        let req = keel_directory::AuthRequest {
            login: &w.login,
            secret: keel_directory::Credential::Plain(&w.password),
            client_ip: w.client_ip,
            secure_channel: w.secure,
            mechanism: keel_directory::Mechanism::Plain,
            service: "http",
            local_ip: Some(w.local_ip),
        };
        match dir.authenticate(&req) {
            Ok(u) => Ok(WebSession {
                user: u.user,
                admin_rights: serde_json::to_value(u.admin_rights)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            }),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// The outbound queue's context; DNS from `[dns] server` in keel.toml, else the system's
/// resolver configuration.
pub(crate) fn queue_context(
    env: &Env,
    cfg: &crate::config::KeelToml,
    hostname: Arc<dyn Fn() -> String + Send + Sync>,
) -> Result<keel_smtp::QueueContext> {
    let resolver = match cfg.dns.server {
        Some(addr) => keel_smtp::dns::Resolver::with_nameserver(addr),
        None => keel_smtp::dns::Resolver::from_system(),
    }
    .context("cannot set up the DNS resolver")?;
    Ok(keel_smtp::QueueContext {
        meta: env.meta.clone(),
        blobs: env.blobs.clone(),
        mailboxes: env.mailboxes.clone(),
        logs: env.logs.as_ref().clone(),
        clock: env.clock.clone(),
        resolver,
        settings: keel_smtp::QueueContext::settings_from_store(env.meta.clone()),
        hostname,
    })
}
