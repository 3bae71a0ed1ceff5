//! The service catalogue (guide §6, figure 6.1, plus submission on 587) and each
//! service's settings (guide §6.1), stored as `service` documents.

use std::net::{IpAddr, SocketAddr};

use keel_store::{DocTxn, MetaStore, StoreError};

/// Errors of the service operations.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such service.
    #[error("there is no service '{name}'; the services are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every service name.
        known: String,
    },
    /// The service is not part of this build.
    #[error("service {0} is not available in this build")]
    NotAvailable(String),
    /// The offset moves a port past 65535.
    #[error("port offset {offset} takes {service} beyond port 65535")]
    PortOverflow {
        /// The offset.
        offset: u16,
        /// The service.
        service: String,
    },
    /// Stored settings could not be read.
    #[error("stored settings of service {service} are invalid: {reason}")]
    Corrupt {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result of the service operations.
pub type Result<T> = std::result::Result<T, ServiceError>;
use serde::{Deserialize, Serialize};

/// How a service uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext, may upgrade with STARTTLS where the protocol has it.
    Plain,
    /// TLS from the first byte (RFC 8314).
    Implicit,
}

/// Startup type (guide §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    /// Started with the server.
    Automatic,
    /// Started only on request.
    Manual,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDef {
    /// Short name used by the CLI (`smtp`, `imaps`, …).
    pub name: &'static str,
    /// Name shown to the admin (guide figure 6.1).
    pub title: &'static str,
    pub port: u16,
    pub tls: TlsMode,
    pub startup: Startup,
    /// Access limited to this IP group by default (figure 6.1: plaintext POP3, IMAP and
    /// HTTP are limited to local clients).
    pub default_access: Option<&'static str>,
    /// Whether this build has the protocol; the others are shown as not available.
    pub available: bool,
}

const LOCAL: Option<&str> = Some(keel_core::ipgroup::LOCAL_CLIENTS);

/// Every service in the order the guide's figure 6.1 lists them, with submission added.
#[rustfmt::skip]
pub const CATALOGUE: &[ServiceDef] = &[
    svc("smtp",       "SMTP",            25,  TlsMode::Plain,    Startup::Automatic, None,  true),
    svc("smtps",      "Secure SMTP",     465, TlsMode::Implicit, Startup::Automatic, None,  true),
    svc("submission", "SMTP Submission", 587, TlsMode::Plain,    Startup::Automatic, None,  true),
    svc("pop3",       "POP3",            110, TlsMode::Plain,    Startup::Automatic, LOCAL, true),
    svc("pop3s",      "Secure POP3",     995, TlsMode::Implicit, Startup::Automatic, None,  true),
    svc("imap",       "IMAP",            143, TlsMode::Plain,    Startup::Automatic, LOCAL, true),
    svc("imaps",      "Secure IMAP",     993, TlsMode::Implicit, Startup::Automatic, None,  true),
    svc("nntp",       "NNTP",            119, TlsMode::Plain,    Startup::Manual,    None,  false),
    svc("nntps",      "Secure NNTP",     563, TlsMode::Implicit, Startup::Manual,    None,  false),
    svc("ldap",       "LDAP",            389, TlsMode::Plain,    Startup::Automatic, None,  false),
    svc("ldaps",      "Secure LDAP",     636, TlsMode::Implicit, Startup::Automatic, None,  false),
    svc("http",       "HTTP",            80,  TlsMode::Plain,    Startup::Automatic, LOCAL, true),
    svc("https",      "Secure HTTP",     443, TlsMode::Implicit, Startup::Automatic, None,  true),
];

#[allow(clippy::fn_params_excessive_bools)]
const fn svc(
    name: &'static str,
    title: &'static str,
    port: u16,
    tls: TlsMode,
    startup: Startup,
    default_access: Option<&'static str>,
    available: bool,
) -> ServiceDef {
    ServiceDef {
        name,
        title,
        port,
        tls,
        startup,
        default_access,
        available,
    }
}

/// The catalogue entry of a service by its short name.
pub fn find(name: &str) -> Result<&'static ServiceDef> {
    let lower = name.to_ascii_lowercase();
    CATALOGUE.iter().find(|d| d.name == lower).ok_or_else(|| {
        let names: Vec<&str> = CATALOGUE.iter().map(|d| d.name).collect();
        ServiceError::Unknown {
            name: name.to_owned(),
            known: names.join(", "),
        }
    })
}

/// Default maximum concurrent connections of a service (guide §6.1 leaves it to the admin).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1000;
/// Default maximum concurrent connections from one IP address.
pub const DEFAULT_MAX_PER_IP: u32 = 50;

/// A service's settings (guide §6.1); stored as document `service/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub startup: Startup,
    /// Explicit `addr:port` bindings; empty means the listen addresses of keel.toml on the
    /// standard port plus the port offset ("Default" in the guide).
    #[serde(default)]
    pub bindings: Vec<SocketAddr>,
    /// Only clients in this IP group may connect; `None` means everyone.
    #[serde(default)]
    pub access_group: Option<String>,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
}

impl ServiceSettings {
    pub fn defaults(def: &ServiceDef) -> Self {
        Self {
            startup: def.startup,
            bindings: Vec::new(),
            access_group: def.default_access.map(str::to_owned),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_PER_IP,
        }
    }
}

pub const SERVICE_KIND: &str = "service";
/// Run-time requests (start, stop, restart) from the CLI or the admin API.
pub const CONTROL_KIND: &str = "service_control";

/// A run-time request for a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceControl {
    /// `Some(true)` started on request, `Some(false)` stopped on request.
    pub running: Option<bool>,
    /// Incremented by every restart request.
    pub restarts: u64,
}

pub fn load_settings(meta: &dyn MetaStore, def: &ServiceDef) -> Result<ServiceSettings> {
    match meta.get_doc(SERVICE_KIND, def.name)? {
        Some(doc) => serde_json::from_value(doc.body).map_err(|e| ServiceError::Corrupt {
            service: def.name.to_owned(),
            reason: e.to_string(),
        }),
        None => Ok(ServiceSettings::defaults(def)),
    }
}

pub fn save_settings(meta: &dyn MetaStore, name: &str, s: &ServiceSettings) -> Result<()> {
    let body = serde_json::to_value(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    meta.transact(&mut |txn: &mut dyn DocTxn| txn.put(SERVICE_KIND, name, "", &body).map(|_| ()))?;
    Ok(())
}

pub fn load_control(meta: &dyn MetaStore, name: &str) -> Result<ServiceControl> {
    Ok(match meta.get_doc(CONTROL_KIND, name)? {
        Some(doc) => serde_json::from_value(doc.body).unwrap_or_default(),
        None => ServiceControl::default(),
    })
}

/// Applies a start/stop/restart request; the running server picks it up within a second.
pub fn request(meta: &dyn MetaStore, name: &str, action: &str) -> Result<()> {
    let def = find(name)?;
    if !def.available {
        return Err(ServiceError::NotAvailable(def.name.to_owned()));
    }
    let action = action.to_owned();
    meta.transact(&mut |txn: &mut dyn DocTxn| {
        let mut ctl: ServiceControl = match txn.get(CONTROL_KIND, def.name)? {
            Some(d) => serde_json::from_value(d.body).unwrap_or_default(),
            None => ServiceControl::default(),
        };
        match action.as_str() {
            "start" => ctl.running = Some(true),
            "stop" => ctl.running = Some(false),
            "restart" => {
                ctl.running = Some(true);
                ctl.restarts += 1;
            }
            other => return Err(StoreError::Aborted(format!("unknown action {other}"))),
        }
        let body = serde_json::to_value(&ctl).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        txn.put(CONTROL_KIND, def.name, "", &body).map(|_| ())
    })?;
    Ok(())
}

/// Forgets run-time requests (at server start the startup type decides again).
pub fn clear_controls(meta: &dyn MetaStore) -> Result<()> {
    meta.transact(&mut |txn: &mut dyn DocTxn| {
        for d in txn.list(CONTROL_KIND, None)? {
            txn.delete(CONTROL_KIND, &d.key)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The addresses a service binds: its own bindings, or each listen address on the
/// standard port plus the offset.
pub fn bind_addresses(
    def: &ServiceDef,
    settings: &ServiceSettings,
    listen: &[IpAddr],
    port_offset: u16,
) -> Result<Vec<SocketAddr>> {
    if !settings.bindings.is_empty() {
        return Ok(settings.bindings.clone());
    }
    let port = def
        .port
        .checked_add(port_offset)
        .ok_or_else(|| ServiceError::PortOverflow {
            offset: port_offset,
            service: def.name.to_owned(),
        })?;
    Ok(listen.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
}
