//! The directory's objects and the option/patch structs of its operations. Everything here is
//! serde-serialisable: the CLI and the JSON admin API exchange exactly these structs.
//!
//! Patch structs follow one rule: a field left `None` means "unchanged" (requirements-1 §8.4,
//! bulk edit).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A local mail domain (guide §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The domain name, lower-case.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Whether this is the primary domain (guide §7.2.1). Read-only: set with
    /// [`crate::Directory::set_primary_domain`].
    #[serde(default)]
    pub primary: bool,
    /// Maximum number of users, 0 = unlimited (guide §7.2, General tab).
    #[serde(default)]
    pub user_limit: u32,
    /// Domain aliases: other names delivering to the same mailboxes (guide §7.6).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Maximum size of outgoing messages in bytes, 0 = no limit (guide §18.1.3).
    #[serde(default)]
    pub outgoing_size_limit: u64,
    /// Forwarding of recipients not found locally to another server (guide §7.9, §7.10).
    #[serde(default)]
    pub forwarding: Option<DomainForwarding>,
    /// Listening IP bound to this domain: on it, this domain's users log in with bare names
    /// (guide §7.7).
    #[serde(default)]
    pub bound_ip: Option<IpAddr>,
    /// Further per-domain settings (footers, clean-out, …) kept for later features.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// Domain setting (in [`Domain::settings`]): days an expunged item stays recoverable with
/// "Recover deleted items", 0 = recovery off (guide §7.4).
pub const DELETED_ITEMS_RECOVERY_DAYS: &str = "deleted_items_recovery_days";
/// Domain setting: clean-out of the Deleted Items folder and its subfolders, items older
/// than this many days (time in the folder) are deleted, 0 = off (guide §7.5).
pub const CLEANOUT_DELETED_ITEMS_DAYS: &str = "cleanout_deleted_items_days";
/// Domain setting: clean-out of the Junk E-mail folder and its subfolders, 0 = off
/// (guide §7.5).
pub const CLEANOUT_JUNK_DAYS: &str = "cleanout_junk_days";
/// Domain setting: the names of the special-use folders new accounts get, an object from
/// use (one of [`SPECIAL_FOLDER_USES`]) to folder name; a use left out keeps the guide's
/// name (issue 4; guide §7.5 names; RFC 6154).
pub const FOLDER_NAMES: &str = "folder_names";
/// The special uses whose folder name a domain may set (RFC 6154 §2 attributes without
/// the backslash, lower-case).
pub const SPECIAL_FOLDER_USES: [&str; 5] = ["sent", "drafts", "trash", "junk", "archive"];
/// The longest deleted-item retention (guide §7.4: a larger value cannot be saved).
pub const MAX_RECOVERY_DAYS: u32 = 365;
/// The longest clean-out age accepted (about 100 years; a typo guard, not a guide rule).
pub const MAX_CLEANOUT_DAYS: u32 = 36_500;

impl Domain {
    /// A whole-number day setting of [`Self::settings`]; 0 when absent.
    fn day_setting(&self, key: &str) -> u32 {
        self.settings
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    }
    /// Days expunged items stay recoverable; 0 = "Allow deleted items recovery" off.
    pub fn deleted_items_recovery_days(&self) -> u32 {
        self.day_setting(DELETED_ITEMS_RECOVERY_DAYS)
    }
    /// The domain's Deleted Items clean-out age in days; 0 = off.
    pub fn cleanout_deleted_items_days(&self) -> u32 {
        self.day_setting(CLEANOUT_DELETED_ITEMS_DAYS)
    }
    /// The domain's Junk E-mail clean-out age in days; 0 = off.
    pub fn cleanout_junk_days(&self) -> u32 {
        self.day_setting(CLEANOUT_JUNK_DAYS)
    }
    /// The folder name this domain sets for a special use (`"sent"`, … of
    /// [`SPECIAL_FOLDER_USES`]); `None` keeps the default.
    pub fn folder_name(&self, special_use: &str) -> Option<&str> {
        self.settings
            .get(FOLDER_NAMES)?
            .get(special_use)?
            .as_str()
            .filter(|s| !s.is_empty())
    }
}

/// Where public folders live (guide §7.1 "Advanced", §26.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicFolderScope {
    /// Each domain has its own public folders, seen by its users only (the default).
    #[default]
    PerDomain,
    /// One set of public folders for the users of every domain.
    Global,
}

/// When forwarded mail is sent (guide §7.10).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardMode {
    /// Deliver at once, with the normal queue retries.
    #[default]
    Online,
    /// Hold until the remote host sends ETRN.
    OfflineEtrn,
    /// Hold until the scheduler triggers delivery (guide §20).
    OfflineScheduler,
}

/// Forwarding of a domain's unknown recipients to another server (guide §7.9, §7.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainForwarding {
    /// Host name or IP of the server to forward to.
    pub host: String,
    /// SMTP port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Delivery mode.
    #[serde(default)]
    pub mode: ForwardMode,
}

fn default_smtp_port() -> u16 {
    25
}

impl DomainForwarding {
    /// Parses `host` or `host:port` (port 25 by default), online mode.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            _ => (s, 25),
        };
        if host.is_empty() || port == 0 {
            return None;
        }
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
            mode: ForwardMode::Online,
        })
    }
}

/// Options of [`crate::Directory::add_domain`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewDomain {
    /// The domain name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Maximum number of users, 0 = unlimited.
    pub user_limit: u32,
    /// Domain aliases.
    pub aliases: Vec<String>,
    /// Outgoing message size limit in bytes, 0 = none.
    pub outgoing_size_limit: u64,
    /// Forwarding of unknown recipients.
    pub forwarding: Option<DomainForwarding>,
    /// Bound listening IP.
    pub bound_ip: Option<IpAddr>,
}

/// Changes of [`crate::Directory::set_domain`]; `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DomainPatch {
    /// New description.
    pub description: Option<String>,
    /// New user-count limit (0 = unlimited).
    pub user_limit: Option<u32>,
    /// Replaces the domain aliases.
    pub aliases: Option<Vec<String>>,
    /// New outgoing size limit (0 = none).
    pub outgoing_size_limit: Option<u64>,
    /// `Some(None)` turns forwarding off.
    pub forwarding: Option<Option<DomainForwarding>>,
    /// `Some(None)` unbinds.
    pub bound_ip: Option<Option<IpAddr>>,
    /// Settings to merge; a `null` value removes the key.
    pub settings: Option<BTreeMap<String, serde_json::Value>>,
}

/// Administration rights (guide §8.2 step 6), ordered: `None < ReadOnly < Full`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AdminRights {
    /// No access (default).
    #[default]
    None,
    /// View settings and logs.
    ReadOnly,
    /// Read/write: full administration.
    Full,
}

/// Forwarding of a user's mail (guide §8.2 step 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Forwarding {
    /// Addresses to forward to.
    pub targets: Vec<String>,
    /// "Deliver messages to the local mailbox too".
    pub keep_local_copy: bool,
}

/// Quota (guide §8.2 step 7); 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    /// Disk space in bytes.
    pub bytes: u64,
    /// Number of messages.
    pub messages: u64,
}

/// A user account (guide §8). Secrets are never part of this struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `login@domain`, lower-case: the user's key and login address.
    pub address: String,
    /// Login name (local part), lower-case.
    pub login: String,
    /// Domain, lower-case.
    pub domain: String,
    /// Full name (for the GAL).
    #[serde(default)]
    pub full_name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Extra addresses (full, lower-case), besides the automatic `login@domain`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Forwarding.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Quota.
    #[serde(default)]
    pub quota: Quota,
    /// Outgoing size limit in bytes; 0 = use the domain's (guide §8.2 step 8).
    #[serde(default)]
    pub outgoing_size_limit: u64,
    /// May send/receive only within the local domains (guide §8.2 step 8).
    #[serde(default)]
    pub local_domain_only: bool,
    /// `false` = "Account is disabled" (guide §8.2; separate from lockout).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The user's own admin rights (see [`crate::Directory::effective_admin_rights`]).
    #[serde(default)]
    pub admin_rights: AdminRights,
    /// Administrator of public folders (guide §8.2 step 6).
    #[serde(default)]
    pub public_folder_admin: bool,
    /// "User can administer aliases, users and groups for his/her own domain" (guide §32.2):
    /// web administration limited to the user's domain, independent of `admin_rights`.
    #[serde(default)]
    pub domain_admin: bool,
    /// Whether a password (or imported hash) is set.
    #[serde(default)]
    pub has_password: bool,
    /// Deleted Items clean-out age in days for this user, overriding the domain's
    /// (guide §7.5, §8.2 step 8); `None` = the domain's, `Some(0)` = off.
    #[serde(default)]
    pub cleanout_deleted_items_days: Option<u32>,
    /// Junk E-mail clean-out age in days for this user; `None` = the domain's, `Some(0)` =
    /// off.
    #[serde(default)]
    pub cleanout_junk_days: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Options of [`crate::Directory::add_user`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewUser {
    /// `login@domain`; the domain must exist.
    pub address: String,
    /// Initial password (checked by the policy); `None` = no password yet.
    pub password: Option<String>,
    /// Full name.
    pub full_name: String,
    /// Description.
    pub description: String,
    /// Extra addresses: local parts or full addresses in the user's domain.
    pub addresses: Vec<String>,
    /// Forwarding.
    pub forwarding: Forwarding,
    /// Quota.
    pub quota: Quota,
    /// Outgoing size limit in bytes, 0 = the domain's.
    pub outgoing_size_limit: u64,
    /// Local-domain-only restriction.
    pub local_domain_only: bool,
    /// Enabled (default true).
    pub enabled: bool,
    /// Own admin rights.
    pub admin_rights: AdminRights,
    /// Public-folder admin.
    pub public_folder_admin: bool,
    /// Domain administrator (guide §32.2).
    pub domain_admin: bool,
}

impl Default for NewUser {
    fn default() -> Self {
        Self {
            address: String::new(),
            password: None,
            full_name: String::new(),
            description: String::new(),
            addresses: Vec::new(),
            forwarding: Forwarding::default(),
            quota: Quota::default(),
            outgoing_size_limit: 0,
            local_domain_only: false,
            enabled: true,
            admin_rights: AdminRights::None,
            public_folder_admin: false,
            domain_admin: false,
        }
    }
}

impl NewUser {
    /// A new enabled user with a password and every other option at its default.
    pub fn new(address: &str, password: &str) -> Self {
        Self {
            address: address.to_string(),
            password: Some(password.to_string()),
            ..Self::default()
        }
    }
}

/// Changes of [`crate::Directory::set_user`]; `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserPatch {
    /// New password (checked by the policy).
    pub password: Option<String>,
    /// Full name.
    pub full_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Replaces the extra addresses.
    pub addresses: Option<Vec<String>>,
    /// Forwarding.
    pub forwarding: Option<Forwarding>,
    /// Quota.
    pub quota: Option<Quota>,
    /// Outgoing size limit.
    pub outgoing_size_limit: Option<u64>,
    /// Local-domain-only restriction.
    pub local_domain_only: Option<bool>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Own admin rights.
    pub admin_rights: Option<AdminRights>,
    /// Public-folder admin.
    pub public_folder_admin: Option<bool>,
    /// Domain administrator (guide §32.2).
    pub domain_admin: Option<bool>,
    /// Deleted Items clean-out override; `Some(None)` = use the domain's again.
    pub cleanout_deleted_items_days: Option<Option<u32>>,
    /// Junk E-mail clean-out override; `Some(None)` = use the domain's again.
    pub cleanout_junk_days: Option<Option<u32>>,
}

/// What happens to a removed user's mailbox (guide §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailboxDisposal {
    /// Delete the folders; the orphaned blobs are returned to the caller.
    Delete,
    /// Keep the folders in the store.
    Keep,
    /// Move the folders under `Deleted mailbox — user@domain` of another user.
    MoveTo(String),
}

/// Result of [`crate::Directory::remove_user`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedUser {
    /// Blobs no message references any more: the caller deletes them from the blob store.
    pub orphaned_blobs: Vec<keel_store::BlobId>,
    /// The folder prefix under which the mailbox was moved, if it was.
    pub moved_to: Option<String>,
}

/// Login statistics of a user (guide §8.7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginStats {
    /// Last successful login, Unix seconds.
    pub last_login: Option<i64>,
    /// Number of successful logins.
    pub login_count: u64,
    /// Per service (`imap`, `pop3`, `smtp`, …).
    pub services: BTreeMap<String, ServiceLoginStats>,
}

/// Login statistics of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceLoginStats {
    /// Last successful login, Unix seconds.
    pub last_login: Option<i64>,
    /// Number of successful logins.
    pub login_count: u64,
}

/// A user group (guide §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group name, lower-case (unique within the domain).
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Addresses (full, lower-case). Groups get no automatic address (guide §9.1 step 2).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Member user keys.
    #[serde(default)]
    pub members: Vec<String>,
    /// Admin rights added to every member's (guide §9.1 step 4).
    #[serde(default)]
    pub admin_rights: AdminRights,
    /// Members of the group's own domain are domain administrators (guide §32.3 note).
    #[serde(default)]
    pub domain_admin: bool,
    /// Members may send/receive only within the local domains (guide §9.1 step 5).
    #[serde(default)]
    pub local_domain_only: bool,
}

impl Group {
    /// The group's key, `name@domain`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }
}

/// Options of [`crate::Directory::add_group`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewGroup {
    /// Group name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Description.
    pub description: String,
    /// Addresses (local parts or full addresses in the domain).
    pub addresses: Vec<String>,
    /// Members (user addresses; a bare login means the group's domain).
    pub members: Vec<String>,
    /// Admin rights.
    pub admin_rights: AdminRights,
    /// Domain administrators (guide §32.3 note).
    pub domain_admin: bool,
    /// Local-domain-only restriction.
    pub local_domain_only: bool,
}

/// Changes of [`crate::Directory::set_group`]; `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupPatch {
    /// Description.
    pub description: Option<String>,
    /// Replaces the addresses.
    pub addresses: Option<Vec<String>>,
    /// Replaces the members.
    pub members: Option<Vec<String>>,
    /// Admin rights.
    pub admin_rights: Option<AdminRights>,
    /// Domain administrators (guide §32.3 note).
    pub domain_admin: Option<bool>,
    /// Local-domain-only restriction.
    pub local_domain_only: Option<bool>,
}

/// An alias (guide §12.3): a name or pattern of one domain and its targets. Several rows with
/// the same name add up, so one stored alias holds every target of its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// The local part or pattern (`sales`, `?ime`, `*sms*`, `*`), lower-case.
    pub name: String,
    /// The domain.
    pub domain: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Targets: `user`, `user@domain`, `ext@remote.test`, `#public/Folder`.
    pub targets: Vec<String>,
}

/// Options of [`crate::Directory::add_alias`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewAlias {
    /// Local part or pattern.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Targets to add.
    pub targets: Vec<String>,
    /// Description (replaces the existing one when not empty).
    pub description: String,
}

/// A final delivery target of [`crate::Directory::resolve_recipient`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Target {
    /// A local mailbox.
    LocalUser {
        /// The user's key.
        user: String,
        /// True when this is the local copy of a user who also forwards elsewhere
        /// ("Deliver messages to the local mailbox too", guide §8.2 step 4).
        local_copy_of_forward: bool,
    },
    /// An address outside the local domains.
    External {
        /// The address.
        address: String,
    },
    /// A public folder (`#public/Info`, guide §12.3).
    PublicFolder {
        /// Domain of the alias that named it (for per-domain public folders).
        domain: String,
        /// Folder path below the public root, e.g. `Info`.
        path: String,
    },
    /// Relayed to another server by the domain's forwarding (guide §7.9, §7.10).
    Forwarded {
        /// The recipient address, unchanged.
        address: String,
        /// The server.
        host: String,
        /// Its port.
        port: u16,
        /// Delivery mode.
        mode: ForwardMode,
    },
}

/// Outcome of [`crate::Directory::resolve_recipient`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Resolution {
    /// The address is local and expands to these targets (each once).
    Deliver {
        /// Final targets, in order of discovery, without duplicates.
        targets: Vec<Target>,
        /// Notes for "check address": loops broken, dangling alias targets, limits hit.
        notes: Vec<String>,
    },
    /// The domain is local but nothing matches the local part: reject with 550 5.1.1.
    NotFound,
    /// The domain is not local: a relay decision, not a directory one.
    NotLocal,
}

/// Information about a logged-in user returned by authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthedUser {
    /// The user's key (`login@domain`).
    pub user: String,
    /// Domain.
    pub domain: String,
    /// Effective admin rights (own and groups').
    pub admin_rights: AdminRights,
    /// Public-folder admin.
    pub public_folder_admin: bool,
    /// May administer the users, groups and aliases of its own domain (guide §32.2): its own
    /// flag or that of a group of the same domain.
    pub domain_admin: bool,
}
