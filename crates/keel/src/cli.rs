//! The administration CLI: `keel domain|user|group|alias|ipgroup|timeinterval|service|
//! security|smtp|spam|antivirus|dkim|senders|queue|log …`. Every command calls the same directory operations the admin API
//! exposes, in-process on the store, so it works whether or not the server runs; the
//! running server sees the change within a second (it watches the store's generation).
//! Every change is written to the config log with secrets masked (guide §25.2).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use keel_core::ipgroup::{IpEntry, IpGroup, IpGroupItem};
use keel_core::log::DebugCategory;
use keel_core::timeinterval::{TimeInterval, TimeItem};
use keel_directory::{
    AdminRights, DomainForwarding, DomainPatch, Forwarding, GroupPatch, MailboxDisposal, NewAlias,
    NewDomain, NewGroup, NewUser, Quota, UserPatch,
};
use serde::Serialize;

use crate::config::DataDir;
use crate::setup::Env;
use crate::status::{ServerStatus, ServiceStatus, render_table};
use keel_net::services::{self, CATALOGUE, Startup};

/// Administration commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Mail domains (guide ch. 7).
    #[command(subcommand)]
    Domain(DomainCmd),
    /// User accounts (guide ch. 8).
    #[command(subcommand)]
    User(UserCmd),
    /// User groups (guide ch. 9).
    #[command(subcommand)]
    Group(GroupCmd),
    /// User templates (guide §8.10).
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Folder access rights (guide ch. 26, RFC 4314) of a user's or a public folder.
    #[command(subcommand)]
    Acl(AclCmd),
    /// Public folders per domain or shared by every domain (guide §7.1 Advanced, §26.1).
    #[command(subcommand)]
    PublicFolders(PublicFoldersCmd),
    /// Aliases (guide §12.3).
    #[command(subcommand)]
    Alias(AliasCmd),
    /// IP address groups (guide §19.1).
    #[command(subcommand)]
    Ipgroup(IpGroupCmd),
    /// Time intervals (guide §19.2).
    #[command(subcommand)]
    Timeinterval(TimeIntervalCmd),
    /// Services: start, stop, restart, settings (guide §6.1).
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Security policy and account lockout (guide §12.6).
    #[command(subcommand)]
    Security(SecurityCmd),
    /// The outgoing mail queue: list, retry, delete, run (guide §24.1).
    #[command(subcommand)]
    Queue(QueueCmd),
    /// SMTP server settings: relay control, limits (guide §12.2, §12.6).
    #[command(subcommand)]
    Smtp(SettingsCmd),
    /// Antispam settings: rating, blacklists, rules, SPF/DKIM/DMARC (guide ch. 13).
    #[command(subcommand)]
    Spam(SettingsCmd),
    /// Antivirus and attachment-filter settings (guide ch. 14); with the antivirus on, the
    /// scanner must detect the EICAR test string before anything is saved.
    #[command(subcommand)]
    Antivirus(SettingsCmd),
    /// DKIM signing keys per domain and the DNS records to publish (RFC 6376).
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Sender whitelists and blacklists of the server, a domain or a user.
    #[command(subcommand)]
    Senders(SendersCmd),
    /// Server certificates: list, generate, request, import, export, activate (guide ch. 16).
    #[command(subcommand)]
    Cert(crate::certcli::CertCmd),
    /// Logs: debug categories, rotation (guide ch. 25).
    #[command(subcommand)]
    Log(LogCmd),
    /// Check the store and the message files: missing blobs, orphans, folder counters and
    /// quota usage; `--repair` fixes what can be fixed (server stopped).
    Check {
        /// Remove orphan blobs and recount counters and usage.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        out: Out,
    },
    /// Rebuild a mailbox's derived data (sizes, folder counters, UIDNEXT, quota usage) from
    /// its messages, keeping UIDVALIDITY, UIDs and flags; runs while the server runs.
    /// Messages whose file is missing are kept and listed.
    Reindex {
        /// `USER@DOMAIN` for every folder, `USER@DOMAIN/FOLDER` for one (e.g.
        /// `jo@example.com/INBOX`, `jo@example.com/Projects/2026`).
        target: String,
        #[command(flatten)]
        out: Out,
    },
    /// The automatic clean-out of Deleted Items and Junk E-mail (guide §7.5).
    #[command(subcommand)]
    Cleanout(CleanoutCmd),
    /// Server statistics (guide §24.6): counters since the first start or the last reset.
    #[command(subcommand)]
    Stats(StatsCmd),
    /// Who may reach the web administration from other computers (guide §19.3, §32.3).
    #[command(subcommand)]
    Admin(AdminAccessCmd),
    /// Show where mail to an address would be delivered (guide §12.3 "Check address").
    Resolve {
        /// The recipient address.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminAccessCmd {
    /// Show the remote-administration and web-administration switches.
    Show {
        #[command(flatten)]
        out: Out,
    },
    /// Console administrators (full or read-only rights) from the network (guide §19.3);
    /// off by default: the admin UI and API answer only on this computer.
    #[command(subcommand)]
    Remote(AccessSwitch),
    /// Domain administrators (guide §32) from the network; off by default.
    #[command(subcommand)]
    Web(AccessSwitch),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessSwitch {
    /// Allow it, from any address or only from an IP address group.
    Enable {
        /// Only from this IP address group (guide §19.1).
        #[arg(long, value_name = "GROUP")]
        from: Option<String>,
    },
    /// Allow it only on this computer (loopback).
    Disable,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CleanoutCmd {
    /// Run the clean-out of every user now, then purge expired deleted items (the server
    /// runs it about every 6 hours).
    Run {
        #[command(flatten)]
        out: Out,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StatsCmd {
    /// Show the grouped counters and their start time (a running server saves its counts
    /// every few seconds).
    Show {
        #[command(flatten)]
        out: Out,
    },
    /// Set every counter to zero; the statistics start now.
    Reset,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct Out {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DomainCmd {
    /// Add a domain.
    Add {
        name: String,
        #[command(flatten)]
        opts: DomainOpts,
    },
    /// List domains.
    List(Out),
    /// Show one domain.
    Show {
        name: String,
        #[command(flatten)]
        out: Out,
    },
    /// Change a domain.
    Set {
        name: String,
        #[command(flatten)]
        opts: DomainOpts,
        /// Make this the primary domain (guide §7.2.1).
        #[arg(long)]
        primary: bool,
    },
    /// Remove a domain (refused while it has users, groups or aliases, or is primary).
    Remove { name: String },
}

#[derive(Debug, Args)]
pub(crate) struct DomainOpts {
    #[arg(long)]
    description: Option<String>,
    /// Maximum number of users (0 = unlimited).
    #[arg(long, value_name = "N")]
    user_limit: Option<u32>,
    /// Domain alias (repeatable; on `set` replaces the list).
    #[arg(long = "alias", value_name = "NAME")]
    aliases: Vec<String>,
    /// Remove every domain alias.
    #[arg(long, conflicts_with = "aliases")]
    no_aliases: bool,
    /// Maximum size of outgoing messages (e.g. 20MB; 0 = none) (guide §18.1).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    send_limit: Option<u64>,
    /// Forward unknown recipients to this server, host[:port] (guide §7.9).
    #[arg(long, value_name = "HOST[:PORT]")]
    forward_to: Option<String>,
    /// Stop forwarding unknown recipients.
    #[arg(long, conflicts_with = "forward_to")]
    no_forward: bool,
    /// Keep deleted items recoverable for N days, at most 365; 0 = recovery off (guide §7.4).
    #[arg(long, value_name = "DAYS")]
    recovery_days: Option<u32>,
    /// Delete items older than N days in Deleted Items and its subfolders; 0 = off
    /// (guide §7.5).
    #[arg(long, value_name = "DAYS")]
    cleanout_deleted_days: Option<u32>,
    /// Delete items older than N days in Junk E-mail and its subfolders; 0 = off.
    #[arg(long, value_name = "DAYS")]
    cleanout_junk_days: Option<u32>,
    /// Name of a special folder new mailboxes get, USE=NAME with USE one of sent, drafts,
    /// trash, junk, archive (e.g. `--folder-name junk=Spam`); `USE=` restores the default
    /// (repeatable; RFC 6154).
    #[arg(long = "folder-name", value_name = "USE=NAME", value_parser = parse_folder_name)]
    folder_names: Vec<(String, String)>,
}

/// `USE=NAME` of `--folder-name`.
fn parse_folder_name(s: &str) -> Result<(String, String), String> {
    let (key, name) = s
        .split_once('=')
        .ok_or_else(|| format!("expected USE=NAME, e.g. junk=Spam, not {s:?}"))?;
    let key = key.trim().to_ascii_lowercase();
    if !keel_directory::SPECIAL_FOLDER_USES.contains(&key.as_str()) {
        return Err(format!(
            "unknown special use {key:?}; the uses are {}",
            keel_directory::SPECIAL_FOLDER_USES.join(", ")
        ));
    }
    Ok((key, name.trim().to_owned()))
}

impl DomainOpts {
    /// The retention and folder-name settings given, as a settings patch (`None` when none
    /// was given).
    fn retention_settings(&self) -> Option<std::collections::BTreeMap<String, serde_json::Value>> {
        let map: std::collections::BTreeMap<String, serde_json::Value> = [
            (
                keel_directory::DELETED_ITEMS_RECOVERY_DAYS,
                self.recovery_days,
            ),
            (
                keel_directory::CLEANOUT_DELETED_ITEMS_DAYS,
                self.cleanout_deleted_days,
            ),
            (keel_directory::CLEANOUT_JUNK_DAYS, self.cleanout_junk_days),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), serde_json::Value::from(v))))
        .collect();
        let mut map = map;
        if !self.folder_names.is_empty() {
            let names: serde_json::Map<String, serde_json::Value> = self
                .folder_names
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            map.insert(
                keel_directory::FOLDER_NAMES.to_owned(),
                serde_json::Value::Object(names),
            );
        }
        (!map.is_empty()).then_some(map)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Add a user: `keel user add alice@example.com --password SECRET --quota 500MB`.
    Add {
        address: String,
        /// Start from this user template (guide §8.10); the other options override it.
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
        #[command(flatten)]
        opts: UserOpts,
    },
    /// Import users from a CSV file (guide §8.9): a header line naming the columns Name,
    /// Password, FullName, MailAddress, Groups, Description; `;` or `,` between fields.
    /// `--dry-run` shows every row and its problem without creating anything.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
        /// The domain the users are created in.
        #[arg(long)]
        domain: String,
        /// A user template for every row (guide §8.10).
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
        /// Check only: show what would be created.
        #[arg(long)]
        dry_run: bool,
        /// Import only these names (repeatable).
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// The file's encoding.
        #[arg(long, value_enum, default_value = "utf-8")]
        encoding: Encoding,
        #[command(flatten)]
        out: Out,
    },
    /// List users, of one domain or all.
    List {
        domain: Option<String>,
        #[command(flatten)]
        out: Out,
    },
    /// Show one user.
    Show {
        address: String,
        #[command(flatten)]
        out: Out,
    },
    /// Change a user.
    Set {
        address: String,
        #[command(flatten)]
        opts: UserOpts,
    },
    /// Recover deleted items (guide §7.4): restore every item the user deleted since DATE
    /// into their Deleted Items folder. Refused while the domain's recovery is off.
    Recover {
        address: String,
        /// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        since: String,
    },
    /// Unlock one account locked after failed logins (guide §8.2); `security unlock-all`
    /// unlocks every account.
    Unlock { address: String },
    /// Remove a user; `--mailbox` decides what happens to the mail (guide §8.5).
    Remove {
        address: String,
        /// `delete` (default), `keep`, or `move:OTHER@DOMAIN`.
        #[arg(long, default_value = "delete")]
        mailbox: String,
    },
}

/// The encodings a CSV file may be in (guide §8.9 "encoding type").
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Encoding {
    /// UTF-8 (a byte-order mark is skipped).
    #[value(name = "utf-8")]
    Utf8,
    /// ISO 8859-1 (Latin-1).
    #[value(name = "latin1")]
    Latin1,
}

/// Folder ACLs; the folder is `owner/Folder`: `alice@example.com/Projects`, or
/// `#public@example.com/Info` for a public folder of example.com.
#[derive(Debug, Subcommand)]
pub(crate) enum AclCmd {
    /// Show who has which rights on a folder (RFC 4314 letters).
    Show {
        folder: String,
        #[command(flatten)]
        out: Out,
    },
    /// Set rights: letters (`lrs`), `+letters`/`-letters`, or `read`, `read-write`, `full`.
    /// The identifier is a user, `$group@domain` or `anyone`.
    Set {
        folder: String,
        identifier: String,
        rights: String,
    },
    /// Remove an identifier's entry.
    Remove { folder: String, identifier: String },
}

/// The public-folder scope (guide §7.1 "Advanced", §26.1).
#[derive(Debug, Subcommand)]
pub(crate) enum PublicFoldersCmd {
    /// Show whether public folders are per domain or global.
    Show,
    /// Keep public folders separate for each domain (the default).
    PerDomain,
    /// Share one set of public folders with the users of every domain.
    Global,
}

/// User templates (guide §8.10).
#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCmd {
    /// Add a template: `keel template add Staff --domain example.com --quota 1GB --group staff`.
    Add {
        name: String,
        #[command(flatten)]
        opts: TemplateOpts,
    },
    /// List templates, or those usable in one domain.
    List {
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        out: Out,
    },
    /// Show one template.
    Show {
        name: String,
        #[command(flatten)]
        out: Out,
    },
    /// Change a template.
    Set {
        name: String,
        #[command(flatten)]
        opts: TemplateOpts,
    },
    /// Remove a template (accounts made with it keep their values).
    Remove { name: String },
}

#[derive(Debug, Args)]
pub(crate) struct TemplateOpts {
    /// Shown with the template and copied into the accounts.
    #[arg(long)]
    description: Option<String>,
    /// The one domain it is for (`general` = every domain, the default for `add`).
    #[arg(long)]
    domain: Option<String>,
    /// Disk quota (e.g. 500MB; 0 = unlimited).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    quota: Option<u64>,
    /// Maximum number of messages (0 = unlimited).
    #[arg(long, value_name = "N")]
    quota_messages: Option<u64>,
    /// Maximum size of messages the users send.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    send_limit: Option<u64>,
    /// May only send and receive within the local domains.
    #[arg(long, value_name = "BOOL")]
    local_only: Option<bool>,
    /// Accounts start enabled.
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    /// Administration rights.
    #[arg(long, value_enum)]
    admin: Option<Rights>,
    /// Domain administrators (guide §32.2).
    #[arg(long, value_name = "BOOL")]
    domain_admin: Option<bool>,
    /// Public-folder administrators.
    #[arg(long, value_name = "BOOL")]
    public_folder_admin: Option<bool>,
    /// A group of the template's domain the users join (repeatable; on `set` replaces).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

impl TemplateOpts {
    fn apply(self, t: &mut keel_directory::UserTemplate) {
        if let Some(v) = self.description {
            t.description = v;
        }
        if let Some(v) = self.domain {
            t.domain = (v != "general").then_some(v);
        }
        if let Some(v) = self.quota {
            t.quota.bytes = v;
        }
        if let Some(v) = self.quota_messages {
            t.quota.messages = v;
        }
        if let Some(v) = self.send_limit {
            t.outgoing_size_limit = v;
        }
        if let Some(v) = self.local_only {
            t.local_domain_only = v;
        }
        if let Some(v) = self.enabled {
            t.enabled = v;
        }
        if let Some(v) = self.admin {
            t.admin_rights = v.into();
        }
        if let Some(v) = self.domain_admin {
            t.domain_admin = v;
        }
        if let Some(v) = self.public_folder_admin {
            t.public_folder_admin = v;
        }
        if !self.groups.is_empty() {
            t.groups = self.groups;
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct UserOpts {
    #[arg(long, env = "KEEL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Import an existing hash instead of a password: bcrypt (`$2b$…`), sha-crypt
    /// (`$5$…`, `$6$…`) or argon2; it is upgraded to argon2id at the next login.
    #[arg(long, value_name = "HASH", conflicts_with = "password")]
    password_hash: Option<String>,
    #[arg(long)]
    full_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Extra address (repeatable; on `set` replaces the list).
    #[arg(long = "address", value_name = "ADDR")]
    addresses: Vec<String>,
    /// Forward to this address (repeatable; on `set` replaces the list).
    #[arg(long = "forward", value_name = "ADDR")]
    forward: Vec<String>,
    /// Keep a local copy of forwarded mail.
    #[arg(long, value_name = "BOOL")]
    keep_copy: Option<bool>,
    /// Stop forwarding.
    #[arg(long, conflicts_with = "forward")]
    no_forward: bool,
    /// Disk quota (e.g. 500MB, 2GB; 0 = unlimited).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    quota: Option<u64>,
    /// Maximum number of messages (0 = unlimited).
    #[arg(long, value_name = "N")]
    quota_messages: Option<u64>,
    /// Maximum size of messages this user sends; overrides the domain's (guide §18.1).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    send_limit: Option<u64>,
    /// May only send and receive within the local domains.
    #[arg(long, value_name = "BOOL")]
    local_only: Option<bool>,
    /// Account enabled.
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    /// Administration rights.
    #[arg(long, value_enum)]
    admin: Option<Rights>,
    /// Public-folder administrator.
    #[arg(long, value_name = "BOOL")]
    public_folder_admin: Option<bool>,
    /// May administer the users, groups and aliases of its own domain in the web
    /// administration (guide §32.2).
    #[arg(long, value_name = "BOOL")]
    domain_admin: Option<bool>,
    /// Deleted Items clean-out age for this user in days (0 = off), or `domain` for the
    /// domain's (guide §7.5).
    #[arg(long, value_name = "DAYS|domain", value_parser = parse_days_override)]
    cleanout_deleted_days: Option<DaysOverride>,
    /// Junk E-mail clean-out age for this user in days (0 = off), or `domain`.
    #[arg(long, value_name = "DAYS|domain", value_parser = parse_days_override)]
    cleanout_junk_days: Option<DaysOverride>,
}

/// A per-user day setting: a number, or `domain` (= `None`, the domain's setting).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DaysOverride(Option<u32>);

fn parse_days_override(s: &str) -> Result<DaysOverride, String> {
    if s.eq_ignore_ascii_case("domain") {
        return Ok(DaysOverride(None));
    }
    s.parse::<u32>()
        .map(|d| DaysOverride(Some(d)))
        .map_err(|_| format!("'{s}' is neither a number of days nor 'domain'"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Rights {
    None,
    ReadOnly,
    Full,
}

impl From<Rights> for AdminRights {
    fn from(r: Rights) -> Self {
        match r {
            Rights::None => Self::None,
            Rights::ReadOnly => Self::ReadOnly,
            Rights::Full => Self::Full,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Add a group `name@domain`.
    Add {
        group: String,
        #[command(flatten)]
        opts: GroupOpts,
    },
    /// List groups.
    List {
        domain: Option<String>,
        #[command(flatten)]
        out: Out,
    },
    /// Show a group.
    Show {
        group: String,
        #[command(flatten)]
        out: Out,
    },
    /// Change a group.
    Set {
        group: String,
        #[command(flatten)]
        opts: GroupOpts,
        /// Add a member (repeatable).
        #[arg(long = "add-member", value_name = "USER")]
        add_members: Vec<String>,
        /// Remove a member (repeatable).
        #[arg(long = "remove-member", value_name = "USER")]
        remove_members: Vec<String>,
    },
    /// Remove a group.
    Remove { group: String },
}

#[derive(Debug, Args)]
pub(crate) struct GroupOpts {
    #[arg(long)]
    description: Option<String>,
    /// Address of the group (repeatable; groups get none automatically).
    #[arg(long = "address", value_name = "ADDR")]
    addresses: Vec<String>,
    /// Member (repeatable; on `set` replaces the list).
    #[arg(long = "member", value_name = "USER")]
    members: Vec<String>,
    /// Rights every member gets.
    #[arg(long, value_enum)]
    admin: Option<Rights>,
    /// Members of the group's domain may administer its users, groups and aliases (guide
    /// §32.3).
    #[arg(long, value_name = "BOOL")]
    domain_admin: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    local_only: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AliasCmd {
    /// Add an alias: `keel alias add sales@example.com alice bob@example.com`.
    /// Patterns may use `*` and `?`; targets are users, groups, other addresses or
    /// public folders (`#public/Info`).
    Add {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List aliases.
    List {
        domain: Option<String>,
        #[command(flatten)]
        out: Out,
    },
    /// Show an alias.
    Show {
        alias: String,
        #[command(flatten)]
        out: Out,
    },
    /// Replace an alias's targets.
    Set {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove an alias, or only some of its targets.
    Remove { alias: String, targets: Vec<String> },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IpGroupCmd {
    /// Add an IP group: `keel ipgroup add Office 192.168.1.0/24 10.0.0.1-10.0.0.9`.
    Add {
        name: String,
        /// Entries: address, range a-b, subnet a/n or a/mask, `group:Other`.
        entries: Vec<String>,
    },
    /// List IP groups.
    List(Out),
    /// Show an IP group.
    Show {
        name: String,
        #[command(flatten)]
        out: Out,
    },
    /// Change an IP group.
    Set {
        name: String,
        #[arg(long = "add", value_name = "ENTRY")]
        add: Vec<String>,
        #[arg(long = "remove", value_name = "ENTRY")]
        remove: Vec<String>,
    },
    /// Remove an IP group (refused while another group uses it).
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TimeIntervalCmd {
    /// Add a time interval: `keel timeinterval add "Working hours" "weekdays 08:00-17:00"`.
    Add { name: String, items: Vec<String> },
    /// List time intervals.
    List(Out),
    /// Remove a time interval.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// List services and their settings.
    List(Out),
    /// Start a service now.
    Start { name: String },
    /// Stop a service now.
    Stop { name: String },
    /// Restart a service.
    Restart { name: String },
    /// Change a service's settings (applied by the running server at once).
    Set {
        name: String,
        #[arg(long, value_enum)]
        startup: Option<StartupArg>,
        /// Listen on ADDR:PORT (repeatable; replaces the bindings).
        #[arg(long = "bind", value_name = "ADDR:PORT")]
        bind: Vec<SocketAddr>,
        /// Back to the default bindings.
        #[arg(long, conflicts_with = "bind")]
        default_bindings: bool,
        /// Allow access only from this IP group.
        #[arg(long, value_name = "GROUP")]
        access: Option<String>,
        /// Allow access from everywhere.
        #[arg(long, conflicts_with = "access")]
        access_everyone: bool,
        #[arg(long, value_name = "N")]
        max_connections: Option<u32>,
        #[arg(long, value_name = "N")]
        max_per_ip: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StartupArg {
    Automatic,
    Manual,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecurityCmd {
    /// Show the security policy.
    Show(Out),
    /// Change the security policy (JSON fields as shown by `show --format json`).
    Set {
        /// A JSON object with the fields to change, e.g. '{"lockout":{"attempts":3}}'.
        json: String,
    },
    /// Unlock every locked account.
    UnlockAll,
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueueCmd {
    /// List queued messages with totals, next try and status.
    List(Out),
    /// Show one queued message.
    Show {
        id: String,
        #[command(flatten)]
        out: Out,
    },
    /// Try to send now: one message, or every message with --all.
    Retry {
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete messages without a report; criteria combine (guide §24.1).
    Delete {
        /// Exactly this queue ID.
        #[arg(long)]
        id: Option<String>,
        /// Sender pattern (`*`, `?`; `<>` for the null sender).
        #[arg(long)]
        sender: Option<String>,
        /// Recipient pattern.
        #[arg(long)]
        recipient: Option<String>,
        /// Queued longer than this (e.g. 90m, 12h, 3d).
        #[arg(long, value_name = "AGE", value_parser = parse_duration)]
        older_than: Option<u64>,
        /// Delete every message (when no other criterion is given).
        #[arg(long)]
        all: bool,
    },
    /// Process the queue now: the running server is asked to; without a server the
    /// delivery runs in this process.
    Run,
    /// ETRN download now (guide §12.5): ask every enabled server of the SMTP setting
    /// `etrn_download` to send our domains' mail, and print each answer.
    EtrnDownload,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCmd {
    /// Show the settings.
    Show(Out),
    /// Change settings with a JSON object of the fields to change,
    /// e.g. '{"max_recipients": 50, "relay_ip_group": "Office"}'.
    Set { json: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DkimAlgorithmArg {
    /// RSA-2048, rsa-sha256 (verified everywhere).
    Rsa,
    /// Ed25519-SHA256 (RFC 8463).
    Ed25519,
}

impl From<DkimAlgorithmArg> for keel_filter::DkimAlgorithm {
    fn from(a: DkimAlgorithmArg) -> Self {
        match a {
            DkimAlgorithmArg::Rsa => Self::Rsa,
            DkimAlgorithmArg::Ed25519 => Self::Ed25519,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DkimCmd {
    /// Every domain with its key's selector and type.
    List(Out),
    /// Generate a domain's key, replacing the current one (rotation); prints the DNS
    /// record to publish.
    Generate {
        domain: String,
        /// Selector (`s=`); default: the antispam setting `dkim_sign.selector`.
        #[arg(long)]
        selector: Option<String>,
        /// Key type; default: the antispam setting `dkim_sign.algorithm`.
        #[arg(long, value_enum)]
        algorithm: Option<DkimAlgorithmArg>,
    },
    /// Show a domain's key and the DNS TXT record to publish.
    Show {
        domain: String,
        #[command(flatten)]
        out: Out,
    },
}

/// Which sender list: the server's unless --domain or --user says otherwise.
#[derive(Debug, Args)]
pub(crate) struct ListScopeArgs {
    /// The list of this local domain.
    #[arg(long, conflicts_with = "user")]
    domain: Option<String>,
    /// The list of this local user (address).
    #[arg(long)]
    user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SendersCmd {
    /// Show a list (`allow` and `block` entries).
    Show {
        #[command(flatten)]
        scope: ListScopeArgs,
        #[command(flatten)]
        out: Out,
    },
    /// Change a list with a JSON object; each of `allow` and `block` given replaces that
    /// list, e.g. '{"block": ["*@spam.example", "bad.example"]}'.
    Set {
        #[command(flatten)]
        scope: ListScopeArgs,
        json: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogCmd {
    /// Show the settings of every log (guide §25.1).
    Show(Out),
    /// Change one log's settings: `keel log set mail --rotate daily --keep 30`.
    Set {
        /// config, mail, security, warning, operations, error, spam or debug.
        log: String,
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        /// never, hourly, daily, weekly or monthly.
        #[arg(long, value_name = "PERIOD")]
        rotate: Option<String>,
        /// Rotate when the file exceeds this size (0 = never by size).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Rotated files to keep.
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
        /// Also send the log to syslog.
        #[arg(long, value_name = "BOOL")]
        syslog: Option<bool>,
        /// Syslog destination: unix:/path, host or host:port (default /dev/log).
        #[arg(long, value_name = "DEST")]
        syslog_server: Option<String>,
    },
    /// List debug categories and whether each is on.
    Debug,
    /// Switch a debug category on (applies at run time, guide §25.9).
    DebugOn { category: String },
    /// Switch a debug category off.
    DebugOff { category: String },
}

/// Parses `500MB`, `2GB`, `10k`, `1024` (bytes); units are powers of 1024.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 500MB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use B, KB, MB, GB or TB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses `90m`, `12h`, `3d`, `45s` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 12h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too long"))
}

fn fmt_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn fmt_size(n: u64) -> String {
    if n == 0 {
        return "unlimited".to_owned();
    }
    for (unit, m) in [
        ("TB", 1u64 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ] {
        if n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    format!("{n}B")
}

pub(crate) fn print_out<T: Serialize>(
    fmt: Format,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    match fmt {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Text => print!("{}", text(value)),
    }
    Ok(())
}

fn pretty<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn acl_cmd(env: &Env, cmd: AclCmd) -> Result<Option<String>> {
    let mb = &env.mailboxes;
    let show = |folder: &str, out: Format| -> Result<()> {
        let list = mb.get_acl(None, folder)?;
        let rows: Vec<(String, String)> = list
            .into_iter()
            .map(|(id, r)| (id, r.to_string()))
            .collect();
        print_out(out, &rows, |rows| {
            rows.iter()
                .map(|(id, r)| format!("{id:<36} {r}\n"))
                .collect()
        })
    };
    Ok(match cmd {
        AclCmd::Show { folder, out } => {
            show(&folder, out.format)?;
            None
        }
        AclCmd::Set {
            folder,
            identifier,
            rights,
        } => {
            let letters = match keel_mail::Level::parse(rights.trim()) {
                Some(level) => level.rights().to_string(),
                None => rights.trim().to_owned(),
            };
            mb.set_acl(None, &folder, &identifier, &letters)?;
            show(&folder, Format::Text)?;
            Some(format!("acl set {folder} {identifier}"))
        }
        AclCmd::Remove { folder, identifier } => {
            mb.delete_acl(None, &folder, &identifier)?;
            show(&folder, Format::Text)?;
            Some(format!("acl remove {folder} {identifier}"))
        }
    })
}

fn template_cmd(env: &Env, cmd: TemplateCmd) -> Result<Option<String>> {
    let d = &env.directory;
    Ok(match cmd {
        TemplateCmd::Add { name, opts } => {
            let mut t = keel_directory::UserTemplate {
                name: name.clone(),
                ..Default::default()
            };
            opts.apply(&mut t);
            let t = d.add_user_template(t)?;
            println!("Template {} added.", t.name);
            Some(format!("template add {name}"))
        }
        TemplateCmd::List { domain, out } => {
            let list = d.list_user_templates(domain.as_deref())?;
            print_out(out.format, &list, |l| {
                l.iter()
                    .map(|t| {
                        format!(
                            "{:<24} {:<20} {}\n",
                            t.name,
                            t.domain.as_deref().unwrap_or("(general)"),
                            t.description
                        )
                    })
                    .collect()
            })?;
            None
        }
        TemplateCmd::Show { name, out } => {
            let t = d.get_user_template(&name)?;
            print_out(out.format, &t, pretty)?;
            None
        }
        TemplateCmd::Set { name, opts } => {
            let mut t = d.get_user_template(&name)?;
            opts.apply(&mut t);
            let t = d.set_user_template(t)?;
            println!("Template {} changed.", t.name);
            Some(format!("template set {name}"))
        }
        TemplateCmd::Remove { name } => {
            d.remove_user_template(&name)?;
            println!("Template {name} removed.");
            Some(format!("template remove {name}"))
        }
    })
}

/// Decodes a CSV file (guide §8.9 "encoding type").
fn decode_file(bytes: Vec<u8>, encoding: Encoding) -> Result<String> {
    Ok(match encoding {
        Encoding::Utf8 => String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "the file is not UTF-8 (byte {} is not valid); try --encoding latin1",
                e.utf8_error().valid_up_to()
            )
        })?,
        Encoding::Latin1 => bytes.into_iter().map(char::from).collect(),
    })
}

/// `keel user import` (guide §8.9).
fn import_cmd(env: &Env, req: keel_directory::ImportRequest, out: &Out) -> Result<Option<String>> {
    let dry = req.dry_run;
    let domain = req.domain.clone();
    let report = env.directory.import_users(&req)?;
    print_out(out.format, &report, |r| {
        let mut text = String::new();
        for row in &r.rows {
            let status = match row.status {
                keel_directory::ImportStatus::Ready => "ready",
                keel_directory::ImportStatus::Created => "created",
                keel_directory::ImportStatus::Skipped => "skipped",
                keel_directory::ImportStatus::Error => "ERROR",
            };
            text.push_str(&format!(
                "line {:<5} {:<32} {:<8} {}\n",
                row.line, row.address, status, row.problem
            ));
        }
        text.push_str(&format!(
            "{} users: {} {}, {} skipped, {} with a problem{}\n",
            r.rows.len(),
            if r.dry_run { r.ready } else { r.created },
            if r.dry_run { "ready" } else { "created" },
            r.skipped,
            r.errors,
            if r.dry_run {
                " (dry run: nothing was created)"
            } else {
                ""
            }
        ));
        text
    })?;
    Ok((!dry && report.created > 0)
        .then(|| format!("user import into {domain}: {} users", report.created)))
}

/// `keel admin show|remote|web` (guide §19.3, §32.3): the same settings document as
/// `PATCH /admin/api/v1/remote-administration`.
fn admin_access(env: &Env, cmd: AdminAccessCmd) -> Result<Option<String>> {
    use keel_http::admin::{load_admin_settings, save_admin_settings};
    let mut s = load_admin_settings(env.meta.as_ref())?;
    let describe = |on: bool, group: &Option<String>| match (on, group) {
        (false, _) => "off (this computer only)".to_owned(),
        (true, None) => "on, from any address".to_owned(),
        (true, Some(g)) => format!("on, from the IP address group {g}"),
    };
    let (which, switch) = match cmd {
        AdminAccessCmd::Show { out } => {
            print_out(out.format, &s, |s| {
                format!(
                    "Remote administration:  {}
Web administration:     {}
Session idle timeout:   {} minutes{}
",
                    describe(s.remote_enabled, &s.remote_ip_group),
                    describe(s.web_admin_enabled, &s.web_admin_ip_group),
                    s.session_idle_minutes,
                    if s.bind_session_to_ip {
                        ", bound to the IP address"
                    } else {
                        ""
                    },
                )
            })?;
            return Ok(None);
        }
        AdminAccessCmd::Remote(sw) => ("remote", sw),
        AdminAccessCmd::Web(sw) => ("web", sw),
    };
    let (on, group) = match switch {
        AccessSwitch::Enable { from } => {
            if let Some(g) = &from {
                env.directory
                    .get_ip_group(g)
                    .with_context(|| format!("there is no IP address group {g}"))?;
            }
            (true, from)
        }
        AccessSwitch::Disable => (false, None),
    };
    if which == "remote" {
        (s.remote_enabled, s.remote_ip_group) = (on, group.clone());
    } else {
        (s.web_admin_enabled, s.web_admin_ip_group) = (on, group.clone());
    }
    save_admin_settings(env.meta.as_ref(), &s)?;
    let label = if which == "remote" {
        "Remote administration"
    } else {
        "Web administration"
    };
    println!("{label}: {}.", describe(on, &group));
    Ok(Some(format!(
        "admin {which} {}",
        if on { "enable" } else { "disable" }
    )))
}

/// Splits `name@domain`.
fn split_at(s: &str, what: &str) -> Result<(String, String)> {
    match s.rsplit_once('@') {
        Some((n, d)) if !n.is_empty() && !d.is_empty() => Ok((n.to_owned(), d.to_owned())),
        _ => bail!("'{s}' is not a {what} of the form name@domain"),
    }
}

/// `keel status`.
pub(crate) fn status(data: &DataDir) -> Result<ExitCode> {
    if let Some(st) = ServerStatus::read_live(&data.status_file()) {
        println!(
            "Keel is running (pid {}, hostname {}, since {}).",
            st.pid, st.hostname, st.started_at
        );
        print!("{}", render_table(&st.services));
        return Ok(ExitCode::SUCCESS);
    }
    if !data.is_initialised() {
        println!(
            "Keel is not running, and {} holds no Keel data yet: run `keel serve` to create it.",
            data.root.display()
        );
        return Ok(ExitCode::from(3));
    }
    println!(
        "Keel is not running (data directory {}).",
        data.root.display()
    );
    let env = Env::open_admin(data)?;
    let cfg = crate::config::KeelToml::load(&data.config())?;
    let mut rows = Vec::new();
    for def in CATALOGUE {
        let s = services::load_settings(env.meta.as_ref(), def)?;
        let addrs =
            services::bind_addresses(def, &s, &cfg.listen.addresses, cfg.listen.port_offset)?;
        rows.push(ServiceStatus {
            name: def.name.to_owned(),
            title: def.title.to_owned(),
            state: if def.available {
                "stopped"
            } else {
                "not available"
            }
            .to_owned(),
            addresses: addrs.iter().map(ToString::to_string).collect(),
            access: s.access_group,
            notes: Vec::new(),
        });
    }
    print!("{}", render_table(&rows));
    Ok(ExitCode::from(3))
}

/// Runs an administration command.
pub(crate) fn run(data: &DataDir, cmd: AdminCommand) -> Result<ExitCode> {
    if !data.is_initialised() {
        bail!(
            "{} holds no Keel data; run `keel serve` once to create it (or pass --data DIR)",
            data.root.display()
        );
    }
    let env = Env::open_admin(data)?;
    let changed = execute(&env, cmd)?;
    if let Some(action) = changed {
        // guide §25.2: every change, secrets masked.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let who = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "admin".to_owned());
        let line = keel_core::log::mask_secrets(&format!("{action}: keel {}", args.join(" ")));
        env.logs.config(&format!("cli:{who}"), &line);
    }
    Ok(ExitCode::SUCCESS)
}

/// Executes a command; returns a short description when it changed something.
fn execute(env: &Env, cmd: AdminCommand) -> Result<Option<String>> {
    let d = &env.directory;
    Ok(match cmd {
        AdminCommand::Domain(c) => match c {
            DomainCmd::Add { name, opts } => {
                let settings = opts.retention_settings();
                let forwarding = opts.forward_to.as_deref().map(parse_forward).transpose()?;
                d.add_domain(NewDomain {
                    name: name.clone(),
                    description: opts.description.unwrap_or_default(),
                    user_limit: opts.user_limit.unwrap_or(0),
                    aliases: opts.aliases,
                    outgoing_size_limit: opts.send_limit.unwrap_or(0),
                    forwarding,
                    bound_ip: None,
                })?;
                if let Some(settings) = settings {
                    d.set_domain(
                        &name,
                        DomainPatch {
                            settings: Some(settings),
                            ..DomainPatch::default()
                        },
                    )?;
                }
                println!("Domain {name} added.");
                Some(format!("domain add {name}"))
            }
            DomainCmd::List(out) => {
                let list = d.list_domains()?;
                print_out(out.format, &list, |l| {
                    l.iter()
                        .map(|dm| {
                            format!(
                                "{}{}{}\n",
                                dm.name,
                                if dm.primary { "  (primary)" } else { "" },
                                if dm.aliases.is_empty() {
                                    String::new()
                                } else {
                                    format!("  aliases: {}", dm.aliases.join(", "))
                                }
                            )
                        })
                        .collect()
                })?;
                None
            }
            DomainCmd::Show { name, out } => {
                let dm = d.get_domain(&name)?;
                print_out(out.format, &dm, pretty)?;
                None
            }
            DomainCmd::Set {
                name,
                opts,
                primary,
            } => {
                let settings = opts.retention_settings();
                let patch = DomainPatch {
                    description: opts.description,
                    user_limit: opts.user_limit,
                    aliases: if opts.no_aliases {
                        Some(Vec::new())
                    } else if opts.aliases.is_empty() {
                        None
                    } else {
                        Some(opts.aliases)
                    },
                    outgoing_size_limit: opts.send_limit,
                    forwarding: if opts.no_forward {
                        Some(None)
                    } else {
                        opts.forward_to
                            .as_deref()
                            .map(parse_forward)
                            .transpose()?
                            .map(Some)
                    },
                    bound_ip: None,
                    settings,
                };
                if patch != DomainPatch::default() {
                    d.set_domain(&name, patch)?;
                }
                if primary {
                    d.set_primary_domain(&name)?;
                }
                println!("Domain {name} changed.");
                Some(format!("domain set {name}"))
            }
            DomainCmd::Remove { name } => {
                d.remove_domain(&name)?;
                println!("Domain {name} removed.");
                Some(format!("domain remove {name}"))
            }
        },
        AdminCommand::User(c) => user_cmd(env, c)?,
        AdminCommand::Group(c) => group_cmd(env, c)?,
        AdminCommand::Template(c) => template_cmd(env, c)?,
        AdminCommand::Acl(c) => acl_cmd(env, c)?,
        AdminCommand::PublicFolders(c) => {
            use keel_directory::PublicFolderScope;
            let dir = env.mailboxes.directory();
            let describe = |scope: PublicFolderScope| match scope {
                PublicFolderScope::PerDomain => "Public folders are separate for each domain.",
                PublicFolderScope::Global => "Public folders are shared by all domains.",
            };
            let set = |scope: PublicFolderScope| -> Result<Option<String>> {
                let before = dir.public_folder_scope()?;
                dir.set_public_folder_scope(scope)?;
                println!("{}", describe(scope));
                if before != scope {
                    println!(
                        "The public folders made while they were {} are hidden until you \
                         switch back.",
                        if before == PublicFolderScope::Global {
                            "global"
                        } else {
                            "per domain"
                        }
                    );
                }
                Ok(Some(format!("public folders {scope:?}")))
            };
            match c {
                PublicFoldersCmd::Show => {
                    println!("{}", describe(dir.public_folder_scope()?));
                    None
                }
                PublicFoldersCmd::PerDomain => set(PublicFolderScope::PerDomain)?,
                PublicFoldersCmd::Global => set(PublicFolderScope::Global)?,
            }
        }
        AdminCommand::Alias(c) => match c {
            AliasCmd::Add {
                alias,
                targets,
                description,
            } => {
                let (name, domain) = split_at(&alias, "alias")?;
                d.add_alias(NewAlias {
                    name,
                    domain,
                    targets,
                    description,
                })?;
                println!("Alias {alias} saved.");
                Some(format!("alias add {alias}"))
            }
            AliasCmd::List { domain, out } => {
                let list = d.list_aliases(domain.as_deref())?;
                print_out(out.format, &list, |l| {
                    l.iter()
                        .map(|a| format!("{}@{} -> {}\n", a.name, a.domain, a.targets.join(", ")))
                        .collect()
                })?;
                None
            }
            AliasCmd::Show { alias, out } => {
                let (name, domain) = split_at(&alias, "alias")?;
                let a = d.get_alias(&domain, &name)?;
                print_out(out.format, &a, pretty)?;
                None
            }
            AliasCmd::Set {
                alias,
                targets,
                description,
            } => {
                let (name, domain) = split_at(&alias, "alias")?;
                d.set_alias(NewAlias {
                    name,
                    domain,
                    targets,
                    description: description.unwrap_or_default(),
                })?;
                println!("Alias {alias} changed.");
                Some(format!("alias set {alias}"))
            }
            AliasCmd::Remove { alias, targets } => {
                let (name, domain) = split_at(&alias, "alias")?;
                if targets.is_empty() {
                    d.remove_alias(&domain, &name, None)?;
                }
                for t in &targets {
                    d.remove_alias(&domain, &name, Some(t))?;
                }
                println!("Alias {alias} changed.");
                Some(format!("alias remove {alias}"))
            }
        },
        AdminCommand::Ipgroup(c) => match c {
            IpGroupCmd::Add { name, entries } => {
                let items = parse_ip_items(&entries)?;
                d.add_ip_group(IpGroup {
                    name: name.clone(),
                    items,
                })?;
                println!("IP group {name} added.");
                Some(format!("ipgroup add {name}"))
            }
            IpGroupCmd::List(out) => {
                let list = d.list_ip_groups()?;
                print_out(out.format, &list, |l| {
                    l.iter()
                        .map(|g| {
                            let items: Vec<String> =
                                g.items.iter().map(|i| i.entry.to_string()).collect();
                            format!("{}: {}\n", g.name, items.join(", "))
                        })
                        .collect()
                })?;
                None
            }
            IpGroupCmd::Show { name, out } => {
                let g = d.get_ip_group(&name)?;
                print_out(out.format, &g, pretty)?;
                None
            }
            IpGroupCmd::Set { name, add, remove } => {
                let mut g = d.get_ip_group(&name)?;
                let remove = parse_ip_items(&remove)?;
                g.items
                    .retain(|i| !remove.iter().any(|r| r.entry == i.entry));
                g.items.extend(parse_ip_items(&add)?);
                d.set_ip_group(g)?;
                println!("IP group {name} changed.");
                Some(format!("ipgroup set {name}"))
            }
            IpGroupCmd::Remove { name } => {
                d.remove_ip_group(&name)?;
                println!("IP group {name} removed.");
                Some(format!("ipgroup remove {name}"))
            }
        },
        AdminCommand::Timeinterval(c) => match c {
            TimeIntervalCmd::Add { name, items } => {
                let items = items
                    .iter()
                    .map(|i| TimeItem::parse(i))
                    .collect::<Result<Vec<_>, _>>()?;
                d.add_time_interval(TimeInterval {
                    name: name.clone(),
                    items,
                })?;
                println!("Time interval {name} added.");
                Some(format!("timeinterval add {name}"))
            }
            TimeIntervalCmd::List(out) => {
                let list = d.list_time_intervals()?;
                print_out(out.format, &list, |l| {
                    l.iter()
                        .map(|t| {
                            let items: Vec<String> =
                                t.items.iter().map(ToString::to_string).collect();
                            format!("{}: {}\n", t.name, items.join("; "))
                        })
                        .collect()
                })?;
                None
            }
            TimeIntervalCmd::Remove { name } => {
                d.remove_time_interval(&name)?;
                println!("Time interval {name} removed.");
                Some(format!("timeinterval remove {name}"))
            }
        },
        AdminCommand::Service(c) => service_cmd(env, c)?,
        AdminCommand::Security(c) => match c {
            SecurityCmd::Show(out) => {
                let p = d.security_policy()?;
                print_out(out.format, &p, pretty)?;
                None
            }
            SecurityCmd::Set { json } => {
                let policy = apply_json_patch(&d.security_policy()?, &json, "security")?;
                d.set_security_policy(policy)?;
                println!("Security policy changed.");
                Some("security set".to_owned())
            }
            SecurityCmd::UnlockAll => {
                let n = d.unlock_all()?;
                println!("{n} locked account(s) unlocked.");
                Some("security unlock-all".to_owned())
            }
        },
        AdminCommand::Queue(c) => queue_cmd(env, c)?,
        AdminCommand::Smtp(c) => match c {
            SettingsCmd::Show(out) => {
                let s = keel_smtp::load_settings(env.meta.as_ref())?;
                print_out(out.format, &s, pretty)?;
                None
            }
            SettingsCmd::Set { json } => {
                let current = keel_smtp::load_settings(env.meta.as_ref())?;
                let new = apply_json_patch(&current, &json, "smtp")?;
                if let Some(g) = &new.relay_ip_group {
                    require_ip_group(env, g)?;
                }
                if let Some(g) = &new.exempt_ip_group {
                    require_ip_group(env, g)?;
                }
                if let Some(t) = &new.etrn_download_time_interval
                    && env.directory.get_time_interval(t).is_err()
                {
                    bail!("there is no time interval '{t}'");
                }
                if let Some(bad) = new
                    .etrn_download_at
                    .iter()
                    .find(|a| keel_smtp::settings::parse_time_of_day(a).is_none())
                {
                    bail!(
                        "etrn_download_at: '{bad}' is not a time of day: give HH:MM, for example 06:30"
                    );
                }
                keel_smtp::save_settings(env.meta.as_ref(), &new)?;
                if new.open_relay {
                    eprintln!(
                        "warning: open relay is on: anyone can send mail through this server"
                    );
                }
                println!("SMTP settings changed.");
                Some("smtp set".to_owned())
            }
        },
        AdminCommand::Spam(c) => spam_cmd(env, c)?,
        AdminCommand::Antivirus(c) => antivirus_cmd(env, c)?,
        AdminCommand::Dkim(c) => dkim_cmd(env, c)?,
        AdminCommand::Cert(c) => crate::certcli::cert_cmd(env, c)?,
        AdminCommand::Senders(c) => senders_cmd(env, c)?,
        AdminCommand::Log(c) => log_cmd(env, c)?,
        AdminCommand::Check { repair, out } => {
            if repair && ServerStatus::read_live(&env.data.status_file()).is_some() {
                bail!(
                    "stop the server before `keel check --repair`: a message being received looks like an orphan"
                );
            }
            let report = crate::setup::check_store(env, repair)?;
            print_out(out.format, &report, |r| format!("{r}\n"))?;
            if !repair && !report.is_clean() {
                bail!("the store has problems; run `keel check --repair` with the server stopped");
            }
            if repair && report.problems_left() > 0 {
                bail!(
                    "problems remain that repair cannot fix (missing message files): restore them from a backup"
                );
            }
            repair.then(|| "check --repair".to_owned())
        }
        AdminCommand::Reindex { target, out } => {
            let (user, folder) = match target.split_once('/') {
                Some((u, f)) if !f.trim().is_empty() => (u, Some(f)),
                Some((u, _)) => (u, None),
                None => (target.as_str(), None),
            };
            let report = env.mailboxes.reindex(user, folder)?;
            env.logs.write(
                keel_core::log::LogKind::Operations,
                &format!("reindex: {report}").replace('\n', "; "),
            );
            print_out(out.format, &report, |r| format!("{r}\n"))?;
            if report.unreadable() > 0 {
                bail!(
                    "{} message(s) of {} have no readable message file; they were kept",
                    report.unreadable(),
                    report.account
                );
            }
            Some(format!("reindex {target}"))
        }
        AdminCommand::Cleanout(CleanoutCmd::Run { out }) => {
            let report = env.mailboxes.clean_out()?;
            env.logs
                .write(keel_core::log::LogKind::Operations, &report.to_string());
            print_out(out.format, &report, |r| format!("{r}\n"))?;
            Some("cleanout run".to_owned())
        }
        AdminCommand::Stats(StatsCmd::Show { out }) => {
            // The uptime of the server running on this data directory, if one does.
            let started = ServerStatus::read_live(&env.data.status_file())
                .and_then(|st| chrono::DateTime::parse_from_rfc3339(&st.started_at).ok())
                .map(|t| t.timestamp());
            let report =
                keel_mail::stats::report(env.meta.as_ref(), None, started, env.clock.unix())?;
            print_out(
                out.format,
                &report,
                keel_mail::stats::StatsReport::render_text,
            )?;
            None
        }
        AdminCommand::Stats(StatsCmd::Reset) => {
            let doc = keel_mail::stats::reset(env.meta.as_ref(), None, env.clock.unix())?;
            println!(
                "Statistics reset; they start at {}.",
                chrono::DateTime::from_timestamp(doc.started_at, 0).unwrap_or_default()
            );
            Some("stats reset".to_owned())
        }
        AdminCommand::Admin(c) => admin_access(env, c)?,
        AdminCommand::Resolve { address } => {
            let r = d.resolve_recipient(&address)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            None
        }
    })
}

fn require_ip_group(env: &Env, name: &str) -> Result<()> {
    if env
        .directory
        .ip_groups()?
        .names()
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        Ok(())
    } else {
        bail!("there is no IP address group '{name}'")
    }
}

fn parse_ip_items(entries: &[String]) -> Result<Vec<IpGroupItem>> {
    entries
        .iter()
        .map(|e| {
            let entry: IpEntry = e.parse()?;
            Ok(IpGroupItem {
                entry,
                description: String::new(),
                enabled: true,
            })
        })
        .collect()
}

fn parse_forward(s: &str) -> Result<DomainForwarding> {
    DomainForwarding::parse(s)
        .with_context(|| format!("'{s}' is not a server of the form host[:port]"))
}

/// Applies a JSON merge patch to typed settings; unknown keys and invalid values are
/// refused with the setting's name, so a typo never passes silently.
fn apply_json_patch<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    json: &str,
    what: &str,
) -> Result<T> {
    let patch: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("the {what} change must be a JSON object"))?;
    if !patch.is_object() {
        bail!("the {what} change must be a JSON object such as '{{\"name\": value}}'");
    }
    let merged = merge_json(serde_json::to_value(current)?, patch.clone());
    let unknown = unknown_keys(&patch, &merged, "");
    let known = serde_json::to_value(current)?;
    let unknown: Vec<String> = unknown
        .into_iter()
        .chain(unknown_keys(&patch, &known, ""))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unknown {what} setting(s): {}; see `keel {what} show --format json`",
            unknown.join(", ")
        );
    }
    serde_json::from_value(merged)
        .with_context(|| format!("the resulting {what} settings are not valid"))
}

/// Keys of `patch` that do not exist in `known` (dotted paths).
fn unknown_keys(patch: &serde_json::Value, known: &serde_json::Value, prefix: &str) -> Vec<String> {
    let (Some(p), Some(k)) = (patch.as_object(), known.as_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in p {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match k.get(key) {
            None => out.push(path),
            Some(kv) => out.extend(unknown_keys(v, kv, &path)),
        }
    }
    out
}

fn merge_json(base: serde_json::Value, patch: serde_json::Value) -> serde_json::Value {
    match (base, patch) {
        (serde_json::Value::Object(mut b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                let old = b.remove(&k).unwrap_or(serde_json::Value::Null);
                b.insert(k, merge_json(old, v));
            }
            serde_json::Value::Object(b)
        }
        (_, p) => p,
    }
}

fn user_cmd(env: &Env, c: UserCmd) -> Result<Option<String>> {
    let d = &env.directory;
    Ok(match c {
        UserCmd::Add {
            address,
            template,
            opts,
        } => {
            // guide §8.10: the template's values, then the options given.
            let (base, groups) = match &template {
                Some(name) => {
                    let t = d.get_user_template(name)?;
                    let domain = address.rsplit_once('@').map_or("", |(_, dm)| dm);
                    if !t.applies_to(domain) {
                        bail!("template {} is for another domain than {domain}", t.name);
                    }
                    (t.new_user(&address), t.groups.clone())
                }
                None => (
                    NewUser {
                        address: address.clone(),
                        ..NewUser::default()
                    },
                    Vec::new(),
                ),
            };
            let mut u = NewUser {
                address: address.clone(),
                password: opts.password,
                full_name: opts.full_name.unwrap_or_default(),
                description: opts.description.unwrap_or(base.description),
                addresses: opts.addresses,
                forwarding: if opts.forward.is_empty() {
                    base.forwarding
                } else {
                    Forwarding {
                        targets: opts.forward,
                        keep_local_copy: opts.keep_copy.unwrap_or(false),
                    }
                },
                quota: Quota {
                    bytes: opts.quota.unwrap_or(base.quota.bytes),
                    messages: opts.quota_messages.unwrap_or(base.quota.messages),
                },
                outgoing_size_limit: opts.send_limit.unwrap_or(base.outgoing_size_limit),
                local_domain_only: opts.local_only.unwrap_or(base.local_domain_only),
                enabled: opts.enabled.unwrap_or(base.enabled),
                admin_rights: opts.admin.map_or(base.admin_rights, Into::into),
                public_folder_admin: opts.public_folder_admin.unwrap_or(base.public_folder_admin),
                domain_admin: opts.domain_admin.unwrap_or(base.domain_admin),
            };
            if u.password.is_none() && opts.password_hash.is_none() {
                bail!(
                    "a new user needs --password (or KEEL_PASSWORD in the environment) or --password-hash"
                );
            }
            let user = d.add_user_in_groups(std::mem::take(&mut u), &groups)?;
            if let Some(hash) = &opts.password_hash {
                d.set_password_hash(&user.address, hash)?;
            }
            if opts.cleanout_deleted_days.is_some() || opts.cleanout_junk_days.is_some() {
                d.set_user(
                    &user.address,
                    UserPatch {
                        cleanout_deleted_items_days: opts.cleanout_deleted_days.map(|o| o.0),
                        cleanout_junk_days: opts.cleanout_junk_days.map(|o| o.0),
                        ..UserPatch::default()
                    },
                )?;
            }
            println!("User {} added.", user.address);
            Some(format!("user add {address}"))
        }
        UserCmd::Import {
            file,
            domain,
            template,
            dry_run,
            only,
            encoding,
            out,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let req = keel_directory::ImportRequest {
                domain,
                csv: decode_file(bytes, encoding)?,
                template,
                only: (!only.is_empty()).then_some(only),
                dry_run,
            };
            import_cmd(env, req, &out)?
        }
        UserCmd::List { domain, out } => {
            let list = d.list_users(domain.as_deref())?;
            print_out(out.format, &list, |l| {
                l.iter()
                    .map(|u| {
                        format!(
                            "{:<32} {:<24} quota {:<9} {}{}{}\n",
                            u.address,
                            u.full_name,
                            fmt_size(u.quota.bytes),
                            if u.enabled { "enabled" } else { "disabled" },
                            match u.admin_rights {
                                AdminRights::None => "",
                                AdminRights::ReadOnly => "  admin: read-only",
                                AdminRights::Full => "  admin: full",
                            },
                            if u.domain_admin { "  domain admin" } else { "" }
                        )
                    })
                    .collect()
            })?;
            None
        }
        UserCmd::Show { address, out } => {
            let u = d.get_user(&address)?;
            let stats = d.login_stats(&address)?;
            let usage = env.meta.usage(&u.address)?;
            let v = serde_json::json!({ "user": u, "logins": stats, "usage": usage });
            print_out(out.format, &v, pretty)?;
            None
        }
        UserCmd::Set { address, opts } => {
            let forwarding = if opts.no_forward {
                Some(Forwarding::default())
            } else if !opts.forward.is_empty() || opts.keep_copy.is_some() {
                let mut f = d.get_user(&address)?.forwarding;
                if !opts.forward.is_empty() {
                    f.targets = opts.forward;
                }
                if let Some(k) = opts.keep_copy {
                    f.keep_local_copy = k;
                }
                Some(f)
            } else {
                None
            };
            let quota = if opts.quota.is_some() || opts.quota_messages.is_some() {
                let mut q = d.get_user(&address)?.quota;
                if let Some(b) = opts.quota {
                    q.bytes = b;
                }
                if let Some(m) = opts.quota_messages {
                    q.messages = m;
                }
                Some(q)
            } else {
                None
            };
            let patch = UserPatch {
                password: opts.password,
                full_name: opts.full_name,
                description: opts.description,
                addresses: (!opts.addresses.is_empty()).then_some(opts.addresses),
                forwarding,
                quota,
                outgoing_size_limit: opts.send_limit,
                local_domain_only: opts.local_only,
                enabled: opts.enabled,
                admin_rights: opts.admin.map(Into::into),
                public_folder_admin: opts.public_folder_admin,
                domain_admin: opts.domain_admin,
                cleanout_deleted_items_days: opts.cleanout_deleted_days.map(|o| o.0),
                cleanout_junk_days: opts.cleanout_junk_days.map(|o| o.0),
            };
            d.set_user(&address, patch)?;
            if let Some(hash) = &opts.password_hash {
                d.set_password_hash(&address, hash)?;
            }
            println!("User {address} changed.");
            Some(format!("user set {address}"))
        }
        UserCmd::Recover { address, since } => {
            let Some(at) = keel_mail::parse_since(&since) else {
                bail!("--since must be a date (YYYY-MM-DD) or an RFC 3339 time, not '{since}'");
            };
            let n = env.mailboxes.recover_deleted(&address, at)?;
            println!("Recovered {n} deleted item(s) of {address} into Deleted Items.");
            Some(format!("user recover {address}"))
        }
        UserCmd::Unlock { address } => {
            if d.unlock_user(&address)? {
                println!("Account {address} unlocked.");
            } else {
                println!("Account {address} was not locked; its failure counts were cleared.");
            }
            Some(format!("user unlock {address}"))
        }
        UserCmd::Remove { address, mailbox } => {
            let disposal = match mailbox.as_str() {
                "delete" => MailboxDisposal::Delete,
                "keep" => MailboxDisposal::Keep,
                m => match m.strip_prefix("move:") {
                    Some(to) if !to.is_empty() => MailboxDisposal::MoveTo(to.to_owned()),
                    _ => bail!("--mailbox must be delete, keep or move:USER@DOMAIN, not '{m}'"),
                },
            };
            let removed = d.remove_user(&address, disposal)?;
            for blob in &removed.orphaned_blobs {
                env.blobs.delete(blob)?;
            }
            match removed.moved_to {
                Some(to) => println!("User {address} removed; mailbox moved to {to}."),
                None => println!("User {address} removed."),
            }
            Some(format!("user remove {address}"))
        }
    })
}

fn group_cmd(env: &Env, c: GroupCmd) -> Result<Option<String>> {
    let d = &env.directory;
    Ok(match c {
        GroupCmd::Add { group, opts } => {
            let (name, domain) = split_at(&group, "group")?;
            d.add_group(NewGroup {
                name,
                domain,
                description: opts.description.unwrap_or_default(),
                addresses: opts.addresses,
                members: opts.members,
                admin_rights: opts.admin.map(Into::into).unwrap_or_default(),
                domain_admin: opts.domain_admin.unwrap_or(false),
                local_domain_only: opts.local_only.unwrap_or(false),
            })?;
            println!("Group {group} added.");
            Some(format!("group add {group}"))
        }
        GroupCmd::List { domain, out } => {
            let list = d.list_groups(domain.as_deref())?;
            print_out(out.format, &list, |l| {
                l.iter()
                    .map(|g| format!("{}  members: {}\n", g.key(), g.members.join(", ")))
                    .collect()
            })?;
            None
        }
        GroupCmd::Show { group, out } => {
            let g = d.get_group(&group)?;
            print_out(out.format, &g, pretty)?;
            None
        }
        GroupCmd::Set {
            group,
            opts,
            add_members,
            remove_members,
        } => {
            let members = if !opts.members.is_empty()
                || !add_members.is_empty()
                || !remove_members.is_empty()
            {
                let mut m = if opts.members.is_empty() {
                    d.get_group(&group)?.members
                } else {
                    opts.members
                };
                m.retain(|x| !remove_members.iter().any(|r| r.eq_ignore_ascii_case(x)));
                m.extend(add_members);
                Some(m)
            } else {
                None
            };
            d.set_group(
                &group,
                GroupPatch {
                    description: opts.description,
                    addresses: (!opts.addresses.is_empty()).then_some(opts.addresses),
                    members,
                    admin_rights: opts.admin.map(Into::into),
                    domain_admin: opts.domain_admin,
                    local_domain_only: opts.local_only,
                },
            )?;
            println!("Group {group} changed.");
            Some(format!("group set {group}"))
        }
        GroupCmd::Remove { group } => {
            d.remove_group(&group)?;
            println!("Group {group} removed.");
            Some(format!("group remove {group}"))
        }
    })
}

fn service_cmd(env: &Env, c: ServiceCmd) -> Result<Option<String>> {
    let meta = env.meta.as_ref();
    Ok(match c {
        ServiceCmd::List(out) => {
            let mut rows = Vec::new();
            for def in CATALOGUE {
                let s = services::load_settings(meta, def)?;
                rows.push(serde_json::json!({
                    "name": def.name, "title": def.title, "port": def.port,
                    "available": def.available, "settings": s,
                }));
            }
            print_out(out.format, &rows, |r| {
                r.iter()
                    .map(|v| {
                        format!(
                            "{:<11} {:<16} port {:<5} {}{}\n",
                            v["name"].as_str().unwrap_or_default(),
                            v["title"].as_str().unwrap_or_default(),
                            v["port"],
                            v["settings"]["startup"].as_str().unwrap_or_default(),
                            if v["available"].as_bool() == Some(true) {
                                ""
                            } else {
                                "  (not available)"
                            }
                        )
                    })
                    .collect()
            })?;
            None
        }
        ServiceCmd::Start { name } => {
            services::request(meta, &name, "start")?;
            println!("Service {name}: start requested.");
            Some(format!("service start {name}"))
        }
        ServiceCmd::Stop { name } => {
            services::request(meta, &name, "stop")?;
            println!("Service {name}: stop requested.");
            Some(format!("service stop {name}"))
        }
        ServiceCmd::Restart { name } => {
            services::request(meta, &name, "restart")?;
            println!("Service {name}: restart requested.");
            Some(format!("service restart {name}"))
        }
        ServiceCmd::Set {
            name,
            startup,
            bind,
            default_bindings,
            access,
            access_everyone,
            max_connections,
            max_per_ip,
        } => {
            let def = services::find(&name)?;
            let mut s = services::load_settings(meta, def)?;
            if let Some(st) = startup {
                s.startup = match st {
                    StartupArg::Automatic => Startup::Automatic,
                    StartupArg::Manual => Startup::Manual,
                };
            }
            if default_bindings {
                s.bindings.clear();
            } else if !bind.is_empty() {
                s.bindings = bind;
            }
            if access_everyone {
                s.access_group = None;
            } else if let Some(g) = access {
                // The group must exist (the built-in one always does).
                if !env
                    .directory
                    .ip_groups()?
                    .names()
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&g))
                {
                    bail!("there is no IP address group '{g}'");
                }
                s.access_group = Some(g);
            }
            if let Some(n) = max_connections {
                if n == 0 {
                    bail!("--max-connections must be at least 1");
                }
                s.max_connections = n;
            }
            if let Some(n) = max_per_ip {
                if n == 0 {
                    bail!("--max-per-ip must be at least 1");
                }
                s.max_connections_per_ip = n;
            }
            services::save_settings(meta, def.name, &s)?;
            println!("Service {} changed.", def.name);
            Some(format!("service set {}", def.name))
        }
    })
}

fn queue_text(v: &keel_smtp::queue::QueueView) -> String {
    let rcpts: Vec<String> = v
        .recipients
        .iter()
        .map(|r| format!("{} ({:?}, {} attempts)", r.address, r.state, r.attempts).to_lowercase())
        .collect();
    format!(
        "{}  from <{}>  {}  age {}s  next {}\n    to: {}\n    status: {}\n",
        v.id,
        v.sender,
        fmt_size(v.size),
        v.age_secs,
        v.next_attempt.map_or_else(|| "ASAP".to_owned(), fmt_time),
        rcpts.join(", "),
        if v.status.is_empty() { "-" } else { &v.status }
    )
}

fn queue_cmd(env: &Env, c: QueueCmd) -> Result<Option<String>> {
    use keel_smtp::queue;
    let meta = env.meta.as_ref();
    let now = env.clock.unix();
    Ok(match c {
        QueueCmd::List(out) => {
            let list = queue::list(meta, now)?;
            let totals = queue::totals(&list);
            let v = serde_json::json!({ "totals": totals, "messages": list });
            print_out(out.format, &v, |_| {
                let mut t: String = list.iter().map(queue_text).collect();
                t.push_str(&format!(
                    "{} message(s), {}\n",
                    totals.messages,
                    fmt_size(totals.bytes)
                ));
                t
            })?;
            None
        }
        QueueCmd::Show { id, out } => {
            let v = queue::show(meta, &id, now)?
                .with_context(|| format!("there is no message {id} in the queue"))?;
            print_out(out.format, &v, queue_text)?;
            None
        }
        QueueCmd::Retry { id, all } => {
            let target = match (id, all) {
                (_, true) => queue::RetryTarget::All,
                (Some(id), false) => queue::RetryTarget::One(id),
                (None, false) => bail!("give a queue ID or --all"),
            };
            let n = queue::retry_now(meta, &target, now)?;
            if n == 0 {
                bail!("no matching message in the queue");
            }
            println!("{n} message(s) will be tried now.");
            Some("queue retry".to_owned())
        }
        QueueCmd::Delete {
            id,
            sender,
            recipient,
            older_than,
            all,
        } => {
            let criteria = queue::DeleteCriteria {
                id,
                sender,
                recipient,
                older_than_secs: older_than,
                all,
            };
            if criteria == queue::DeleteCriteria::default() {
                bail!(
                    "say which messages to delete: --id, --sender, --recipient, --older-than or --all"
                );
            }
            let removed = queue::delete(meta, env.blobs.as_ref(), &criteria, now)?;
            println!("{} message(s) deleted.", removed.len());
            Some(format!("queue delete {}", removed.join(" ")))
        }
        QueueCmd::Run => {
            let n = queue::retry_now(meta, &queue::RetryTarget::All, now)?;
            if crate::status::ServerStatus::read_live(&env.data.status_file()).is_some() {
                println!("{n} message(s) handed to the running server.");
            } else {
                let cfg = crate::config::KeelToml::load(&env.data.config())?;
                let hostname = crate::setup::load_general(meta)?
                    .map_or_else(crate::config::system_hostname, |g| g.hostname);
                let ctx =
                    crate::setup::queue_context(env, &cfg, Arc::new(move || hostname.clone()))?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let attempts = rt.block_on(keel_smtp::QueueRunner::new(ctx).run_once())?;
                println!("{attempts} delivery attempt(s) made.");
            }
            Some("queue run".to_owned())
        }
        QueueCmd::EtrnDownload => {
            let cfg = crate::config::KeelToml::load(&env.data.config())?;
            let hostname = crate::setup::load_general(meta)?
                .map_or_else(crate::config::system_hostname, |g| g.hostname);
            let ctx = crate::setup::queue_context(env, &cfg, Arc::new(move || hostname.clone()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let outcomes = rt.block_on(keel_smtp::QueueRunner::new(ctx).etrn_download());
            if outcomes.is_empty() {
                println!("No ETRN download server is enabled (SMTP setting etrn_download).");
            }
            let mut refused = 0;
            for o in &outcomes {
                refused += usize::from(!o.accepted);
                println!(
                    "{} {} at {}: {}",
                    if o.accepted { "ok     " } else { "refused" },
                    o.domain,
                    o.server,
                    o.reply
                );
            }
            if refused > 0 {
                bail!("{refused} ETRN request(s) not accepted");
            }
            None
        }
    })
}

// ------------------------------------------------------------ filter (issue 6)

/// `keel spam show|set`: the operations of `GET|PATCH /admin/api/v1/spam-settings`.
fn spam_cmd(env: &Env, c: SettingsCmd) -> Result<Option<String>> {
    let meta = env.meta.as_ref();
    Ok(match c {
        SettingsCmd::Show(out) => {
            print_out(out.format, &keel_filter::load_spam_settings(meta)?, pretty)?;
            None
        }
        SettingsCmd::Set { json } => {
            let new = apply_json_patch(&keel_filter::load_spam_settings(meta)?, &json, "spam")?;
            for g in [
                &new.whitelist_group,
                &new.blacklist_group,
                &new.spf.skip_group,
            ]
            .into_iter()
            .flatten()
            {
                require_ip_group(env, g)?;
            }
            // guide §13.1: block at most 9.9, 10 = never block.
            for (name, v) in [
                ("tag_score", new.tag_score),
                ("block_score", new.block_score),
            ] {
                if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                    bail!("{name} must be a number from 0 to 100");
                }
            }
            keel_filter::save_spam_settings(meta, &new)?;
            println!("Antispam settings changed.");
            Some("spam set".to_owned())
        }
    })
}

/// `keel antivirus show|set`: `set` saves through `save_antivirus_settings_checked`, so
/// with the antivirus on the scanner must detect EICAR first (requirements-2 §14.2).
fn antivirus_cmd(env: &Env, c: SettingsCmd) -> Result<Option<String>> {
    let meta = env.meta.as_ref();
    Ok(match c {
        SettingsCmd::Show(out) => {
            print_out(
                out.format,
                &keel_filter::load_antivirus_settings(meta)?,
                pretty,
            )?;
            None
        }
        SettingsCmd::Set { json } => {
            let new = apply_json_patch(
                &keel_filter::load_antivirus_settings(meta)?,
                &json,
                "antivirus",
            )?;
            if let Err((field, why)) = new.message_limits.check() {
                bail!("message_limits.{field}: {why}; the settings were not saved");
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if let Err(e) = rt.block_on(keel_filter::save_antivirus_settings_checked(meta, &new)) {
                env.logs
                    .error(&format!("antivirus settings not saved: {e}"));
                bail!("{e}; the settings were not saved (check the address and that clamd runs)");
            }
            println!("Antivirus settings changed.");
            Some("antivirus set".to_owned())
        }
    })
}

/// The DNS record of a key, as the administrator publishes it.
fn dkim_text(domain: &str, key: Option<&keel_filter::DkimKey>) -> String {
    match key {
        None => format!(
            "{domain}: no DKIM key yet (one is generated at the first signed message, or run \
             `keel dkim generate {domain}`)\n"
        ),
        Some(k) => {
            let (name, txt) = k.dns_record();
            format!(
                "{domain}: selector {}, {:?}, created {}\nPublish this DNS record:\n{name}. IN TXT \"{txt}\"\n",
                k.selector,
                k.algorithm,
                fmt_time(k.created)
            )
        }
    }
}

fn dkim_json(domain: &str, key: Option<&keel_filter::DkimKey>) -> serde_json::Value {
    match key {
        None => serde_json::json!({ "domain": domain, "key": null }),
        Some(k) => {
            let (name, txt) = k.dns_record();
            serde_json::json!({
                "domain": domain,
                "key": {
                    "selector": k.selector, "algorithm": k.algorithm, "created": k.created,
                    "dns_record": { "name": name, "type": "TXT", "value": txt },
                },
            })
        }
    }
}

/// `keel dkim list|generate|show`: the operations of `/admin/api/v1/dkim`.
fn dkim_cmd(env: &Env, c: DkimCmd) -> Result<Option<String>> {
    let (meta, d) = (env.meta.as_ref(), &env.directory);
    Ok(match c {
        DkimCmd::List(out) => {
            let mut rows = Vec::new();
            for dom in d.list_domains()? {
                let key = keel_filter::load_dkim_key(meta, &dom.name)?;
                rows.push(dkim_json(&dom.name, key.as_ref()));
            }
            print_out(out.format, &rows, |rows| {
                rows.iter()
                    .map(|r| {
                        let k = &r["key"];
                        format!(
                            "{}\t{}\n",
                            r["domain"].as_str().unwrap_or_default(),
                            if k.is_null() {
                                "no key".to_owned()
                            } else {
                                format!(
                                    "selector {} ({})",
                                    k["selector"].as_str().unwrap_or_default(),
                                    k["algorithm"].as_str().unwrap_or_default()
                                )
                            }
                        )
                    })
                    .collect()
            })?;
            None
        }
        DkimCmd::Show { domain, out } => {
            let name = d.get_domain(&domain)?.name;
            let key = keel_filter::load_dkim_key(meta, &name)?;
            match out.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&dkim_json(&name, key.as_ref()))?
                ),
                Format::Text => print!("{}", dkim_text(&name, key.as_ref())),
            }
            None
        }
        DkimCmd::Generate {
            domain,
            selector,
            algorithm,
        } => {
            let name = d.get_domain(&domain)?.name;
            let defaults = keel_filter::load_spam_settings(meta)?.dkim_sign;
            let selector = selector.unwrap_or(defaults.selector);
            if !valid_selector(&selector) {
                bail!(
                    "'{selector}' is not a selector: use letters, digits and hyphens (dots separate labels)"
                );
            }
            let algorithm = algorithm.map_or(defaults.algorithm, Into::into);
            let key = keel_filter::generate_dkim_key(
                meta,
                &name,
                &selector,
                algorithm,
                env.clock.unix(),
            )?;
            print!("{}", dkim_text(&name, Some(&key)));
            Some(format!("dkim generate {name} selector {selector}"))
        }
    })
}

/// A DKIM selector: dot-separated DNS labels (RFC 6376 §3.1).
fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn list_scope(env: &Env, a: &ListScopeArgs) -> Result<keel_filter::ListScope> {
    use keel_filter::ListScope;
    Ok(match (&a.domain, &a.user) {
        (Some(dm), _) => ListScope::Domain(env.directory.get_domain(dm)?.name),
        (None, Some(u)) => ListScope::User(env.directory.get_user(u)?.address),
        (None, None) => ListScope::Server,
    })
}

/// `keel senders show|set`: the operations of `/admin/api/v1/sender-lists/{scope}`.
fn senders_cmd(env: &Env, c: SendersCmd) -> Result<Option<String>> {
    let meta = env.meta.as_ref();
    Ok(match c {
        SendersCmd::Show { scope, out } => {
            let scope = list_scope(env, &scope)?;
            let l = keel_filter::load_sender_lists(meta, &scope)?;
            print_out(out.format, &l, |l| {
                let mut s = format!("{}\n", scope.key());
                for (what, list) in [("allow", &l.allow), ("block", &l.block)] {
                    for e in list {
                        s.push_str(&format!("  {what}\t{e}\n"));
                    }
                }
                s
            })?;
            None
        }
        SendersCmd::Set { scope, json } => {
            let scope = list_scope(env, &scope)?;
            let new = apply_json_patch(
                &keel_filter::load_sender_lists(meta, &scope)?,
                &json,
                "senders",
            )?;
            for e in new.allow.iter().chain(&new.block) {
                let t = e.trim();
                if t.is_empty() || t.chars().any(char::is_whitespace) || t.matches('@').count() > 1
                {
                    bail!("'{e}' is not an address, a pattern such as *@example.com or a domain");
                }
            }
            keel_filter::save_sender_lists(meta, &scope, &new)?;
            println!("Sender list {} changed.", scope.key());
            Some(format!("senders set {}", scope.key()))
        }
    })
}

fn log_cmd(env: &Env, c: LogCmd) -> Result<Option<String>> {
    Ok(match c {
        LogCmd::Show(out) => {
            let s = crate::setup::load_log_settings(env.meta.as_ref())?;
            print_out(out.format, &s, |s| {
                keel_core::log::LogKind::ALL
                    .iter()
                    .map(|k| {
                        let ks = s.kind(*k);
                        format!(
                            "{:<11} {:<8} rotate {:<8} max-size {:<9} keep {:<3} syslog {}\n",
                            k.as_str(),
                            if ks.enabled { "on" } else { "off" },
                            ks.rotation.as_str(),
                            fmt_size(ks.max_size),
                            ks.keep,
                            if ks.syslog.enabled { "on" } else { "off" }
                        )
                    })
                    .collect()
            })?;
            None
        }
        LogCmd::Set {
            log,
            enabled,
            rotate,
            max_size,
            keep,
            syslog,
            syslog_server,
        } => {
            let kind: keel_core::log::LogKind = log.parse().map_err(|_| {
                anyhow::anyhow!(
                    "there is no log '{log}'; the logs are: config, mail, security, warning, \
                     operations, error, spam, debug"
                )
            })?;
            let mut s = crate::setup::load_log_settings(env.meta.as_ref())?;
            let ks = s.kind_mut(kind);
            if let Some(e) = enabled {
                ks.enabled = e;
            }
            if let Some(r) = rotate {
                ks.rotation = r.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--rotate must be never, hourly, daily, weekly or monthly, not '{r}'"
                    )
                })?;
            }
            if let Some(m) = max_size {
                ks.max_size = m;
            }
            if let Some(k) = keep {
                ks.keep = k;
            }
            if let Some(on) = syslog {
                ks.syslog.enabled = on;
            }
            if let Some(dest) = syslog_server {
                ks.syslog.server = (!dest.is_empty()).then_some(dest);
            }
            crate::setup::save_log_settings(env.meta.as_ref(), &s)?;
            println!("Log {} changed.", kind.as_str());
            Some(format!("log set {}", kind.as_str()))
        }
        LogCmd::Debug => {
            let on = crate::setup::debug_categories(env)?;
            for cat in DebugCategory::ALL {
                let enabled = on.contains(&cat);
                println!(
                    "{:<28} {}",
                    cat.as_str(),
                    if enabled { "on" } else { "off" }
                );
            }
            None
        }
        LogCmd::DebugOn { category } => {
            crate::setup::set_debug_category(env, &category, true)?;
            println!("Debug category {category} on.");
            Some(format!("log debug-on {category}"))
        }
        LogCmd::DebugOff { category } => {
            crate::setup::set_debug_category(env, &category, false)?;
            println!("Debug category {category} off.");
            Some(format!("log debug-off {category}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("99999999999TB").is_err());
        assert_eq!(fmt_size(500 << 20), "500MB");
    }

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: AdminCommand,
    }

    fn parse(args: &[&str]) -> Result<AdminCommand, clap::Error> {
        use clap::Parser;
        TestCli::try_parse_from(std::iter::once("keel").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn filter_commands_parse() {
        assert!(matches!(
            parse(&["dkim", "generate", "example.org", "--selector", "k2", "--algorithm", "ed25519"]),
            Ok(AdminCommand::Dkim(DkimCmd::Generate { domain, selector: Some(s), algorithm: Some(DkimAlgorithmArg::Ed25519) }))
                if domain == "example.org" && s == "k2"
        ));
        assert!(parse(&["dkim", "generate", "example.org", "--algorithm", "dsa"]).is_err());
        assert!(matches!(
            parse(&[
                "senders",
                "set",
                "--user",
                "a@example.org",
                r#"{"block":["x.example"]}"#
            ]),
            Ok(AdminCommand::Senders(SendersCmd::Set {
                scope: ListScopeArgs {
                    domain: None,
                    user: Some(_)
                },
                ..
            }))
        ));
        assert!(
            parse(&[
                "senders",
                "show",
                "--user",
                "a@x.example",
                "--domain",
                "x.example"
            ])
            .is_err(),
            "one scope at a time"
        );
        assert!(matches!(
            parse(&["spam", "set", r#"{"tag_score":4}"#]),
            Ok(AdminCommand::Spam(SettingsCmd::Set { .. }))
        ));
        assert!(matches!(
            parse(&["antivirus", "show", "--format", "json"]),
            Ok(AdminCommand::Antivirus(SettingsCmd::Show(_)))
        ));
        assert!(valid_selector("keel-2026") && !valid_selector("bad selector"));
    }

    #[test]
    fn json_merge_overrides_nested_fields_only() {
        let base = serde_json::json!({"a": 1, "lockout": {"attempts": 5, "minutes": 10}});
        let patch = serde_json::json!({"lockout": {"attempts": 3}});
        assert_eq!(
            merge_json(base, patch),
            serde_json::json!({"a": 1, "lockout": {"attempts": 3, "minutes": 10}})
        );
    }
}
