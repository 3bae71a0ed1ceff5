//! Debug log categories (guide §25.9 "Logged messages").
//!
//! The guide's menu, mapped to Keel's services. Dropped as obsolete (requirements-2 §25.9):
//! SyncML Synchronization, PHP Engine Messages, KOC Offline Requests, Update Checker
//! Activity, Crash Management Activity, and MAPI (part of "IMAP Server" in the guide).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The section of the guide's "Logged messages" dialog a category belongs to (guide §25.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DebugGroup {
    /// guide §25.9 "Services".
    Services,
    /// guide §25.9 "Message Delivery".
    MessageDelivery,
    /// guide §25.9 "Content Filters".
    ContentFilters,
    /// guide §25.9 "Message Store".
    MessageStore,
    /// guide §25.9 "HTTP Server Modules".
    HttpModules,
    /// guide §25.9 "Auxiliary Modules".
    Auxiliary,
    /// guide §25.9 "Local Services".
    LocalServices,
}

impl DebugGroup {
    /// The guide's section title.
    pub const fn label(self) -> &'static str {
        match self {
            DebugGroup::Services => "Services",
            DebugGroup::MessageDelivery => "Message Delivery",
            DebugGroup::ContentFilters => "Content Filters",
            DebugGroup::MessageStore => "Message Store",
            DebugGroup::HttpModules => "HTTP Server Modules",
            DebugGroup::Auxiliary => "Auxiliary Modules",
            DebugGroup::LocalServices => "Local Services",
        }
    }
}

/// A debug log category that can be switched on at run time (guide §25.9).
///
/// Serialised as its [`as_str`](DebugCategory::as_str) name (`smtp-server`, `dns`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum DebugCategory {
    /// guide §25.9 "SMTP Server": SMTP and submission sessions.
    SmtpServer,
    /// guide §25.9 "IMAP Server".
    ImapServer,
    /// guide §25.9 "POP3 Server".
    Pop3Server,
    /// guide §25.9 "HTTP Server" (the guide misprints it as a second "IMAP Server"):
    /// admin API, webmail, and the HTTP layer of DAV and ActiveSync.
    HttpServer,
    /// guide §25.9 "LDAP Server" (the contacts directory, guide §21).
    LdapServer,
    /// guide §25.9 "NNTP Server".
    NntpServer,
    /// guide §25.9 "Queue Processing".
    Queue,
    /// guide §25.9 "Remote POP3 Download", including sorting rules.
    Pop3Download,
    /// guide §25.9 "SMTP Client": the outbound command/response transcript.
    SmtpClient,
    /// guide §25.9 "Mailing List Processing".
    MailingList,
    /// guide §25.9 "Alias Expansion".
    AliasExpansion,
    /// guide §25.9 "Sieve Filters".
    Sieve,
    /// guide §25.9 "Antivirus Checking".
    Antivirus,
    /// guide §25.9 "Spam Filter": the score of each message.
    SpamFilter,
    /// guide §25.9 "SPF Record Lookup"; in Keel also DKIM and DMARC evaluation.
    Spf,
    /// guide §25.9 "SpamAssassin Processing": the content rules and Bayes.
    SpamAssassin,
    /// guide §25.9 "Message Folder Operation".
    Store,
    /// guide §25.9 "Searching and Sorting".
    Search,
    /// guide §25.9 "Quota and Login Statistics".
    Quota,
    /// guide §25.9 "Store Backup".
    Backup,
    /// guide §25.9 "Messages decoding" (TNEF, uuencode, MIME).
    Decoding,
    /// guide §25.9 "Items clean-out" (automatic Junk/Deleted Items purge).
    CleanOut,
    /// guide §25.9 "WebDAV Server Requests"; in Keel WebDAV, CalDAV and CardDAV.
    WebDav,
    /// guide §25.9 "ActiveSync Synchronization".
    ActiveSync,
    /// guide §25.9 "User Authentication" (SASL and the PAM, LDAP, Kerberos back ends).
    Auth,
    /// guide §25.9 "Network Connections and SSL".
    Tls,
    /// guide §25.9 "DNS Resolver".
    Dns,
    /// guide §25.9 "Directory Service Lookup".
    Directory,
    /// guide §25.9 "Thread Pool Activity": worker threads and background tasks.
    Threads,
    /// guide §25.9 "Administration Console Connections": admin API and UI sessions.
    Admin,
    /// guide §25.9 "Service Manager": the scheduler of local services.
    Scheduler,
    /// guide §25.9 "Resource Service".
    Resources,
    /// guide §25.9 "GAL Service".
    Gal,
}

impl DebugCategory {
    /// Every category, in the guide's menu order.
    pub const ALL: [DebugCategory; 33] = [
        DebugCategory::SmtpServer,
        DebugCategory::ImapServer,
        DebugCategory::Pop3Server,
        DebugCategory::HttpServer,
        DebugCategory::LdapServer,
        DebugCategory::NntpServer,
        DebugCategory::Queue,
        DebugCategory::Pop3Download,
        DebugCategory::SmtpClient,
        DebugCategory::MailingList,
        DebugCategory::AliasExpansion,
        DebugCategory::Sieve,
        DebugCategory::Antivirus,
        DebugCategory::SpamFilter,
        DebugCategory::Spf,
        DebugCategory::SpamAssassin,
        DebugCategory::Store,
        DebugCategory::Search,
        DebugCategory::Quota,
        DebugCategory::Backup,
        DebugCategory::Decoding,
        DebugCategory::CleanOut,
        DebugCategory::WebDav,
        DebugCategory::ActiveSync,
        DebugCategory::Auth,
        DebugCategory::Tls,
        DebugCategory::Dns,
        DebugCategory::Directory,
        DebugCategory::Threads,
        DebugCategory::Admin,
        DebugCategory::Scheduler,
        DebugCategory::Resources,
        DebugCategory::Gal,
    ];

    /// The stable name used in settings, the admin API and the `{name}` prefix of debug
    /// lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            DebugCategory::SmtpServer => "smtp-server",
            DebugCategory::ImapServer => "imap-server",
            DebugCategory::Pop3Server => "pop3-server",
            DebugCategory::HttpServer => "http-server",
            DebugCategory::LdapServer => "ldap-server",
            DebugCategory::NntpServer => "nntp-server",
            DebugCategory::Queue => "queue",
            DebugCategory::Pop3Download => "pop3-download",
            DebugCategory::SmtpClient => "smtp-client",
            DebugCategory::MailingList => "mailing-list",
            DebugCategory::AliasExpansion => "alias-expansion",
            DebugCategory::Sieve => "sieve",
            DebugCategory::Antivirus => "antivirus",
            DebugCategory::SpamFilter => "spam-filter",
            DebugCategory::Spf => "spf",
            DebugCategory::SpamAssassin => "spamassassin",
            DebugCategory::Store => "store",
            DebugCategory::Search => "search",
            DebugCategory::Quota => "quota",
            DebugCategory::Backup => "backup",
            DebugCategory::Decoding => "decoding",
            DebugCategory::CleanOut => "clean-out",
            DebugCategory::WebDav => "webdav",
            DebugCategory::ActiveSync => "activesync",
            DebugCategory::Auth => "auth",
            DebugCategory::Tls => "tls",
            DebugCategory::Dns => "dns",
            DebugCategory::Directory => "directory",
            DebugCategory::Threads => "threads",
            DebugCategory::Admin => "admin",
            DebugCategory::Scheduler => "scheduler",
            DebugCategory::Resources => "resources",
            DebugCategory::Gal => "gal",
        }
    }

    /// The guide's menu label (guide §25.9), with the guide's "IMAP Server" misprint for
    /// the HTTP server corrected.
    pub const fn label(self) -> &'static str {
        match self {
            DebugCategory::SmtpServer => "SMTP Server",
            DebugCategory::ImapServer => "IMAP Server",
            DebugCategory::Pop3Server => "POP3 Server",
            DebugCategory::HttpServer => "HTTP Server",
            DebugCategory::LdapServer => "LDAP Server",
            DebugCategory::NntpServer => "NNTP Server",
            DebugCategory::Queue => "Queue Processing",
            DebugCategory::Pop3Download => "Remote POP3 Download",
            DebugCategory::SmtpClient => "SMTP Client",
            DebugCategory::MailingList => "Mailing List Processing",
            DebugCategory::AliasExpansion => "Alias Expansion",
            DebugCategory::Sieve => "Sieve Filters",
            DebugCategory::Antivirus => "Antivirus Checking",
            DebugCategory::SpamFilter => "Spam Filter",
            DebugCategory::Spf => "SPF Record Lookup",
            DebugCategory::SpamAssassin => "SpamAssassin Processing",
            DebugCategory::Store => "Message Folder Operation",
            DebugCategory::Search => "Searching and Sorting",
            DebugCategory::Quota => "Quota and Login Statistics",
            DebugCategory::Backup => "Store Backup",
            DebugCategory::Decoding => "Messages decoding",
            DebugCategory::CleanOut => "Items clean-out",
            DebugCategory::WebDav => "WebDAV Server Requests",
            DebugCategory::ActiveSync => "ActiveSync Synchronization",
            DebugCategory::Auth => "User Authentication",
            DebugCategory::Tls => "Network Connections and SSL",
            DebugCategory::Dns => "DNS Resolver",
            DebugCategory::Directory => "Directory Service Lookup",
            DebugCategory::Threads => "Thread Pool Activity",
            DebugCategory::Admin => "Administration Console Connections",
            DebugCategory::Scheduler => "Service Manager",
            DebugCategory::Resources => "Resource Service",
            DebugCategory::Gal => "GAL Service",
        }
    }

    /// The section of the guide's dialog.
    pub const fn group(self) -> DebugGroup {
        use DebugCategory as C;
        match self {
            C::SmtpServer
            | C::ImapServer
            | C::Pop3Server
            | C::HttpServer
            | C::LdapServer
            | C::NntpServer => DebugGroup::Services,
            C::Queue
            | C::Pop3Download
            | C::SmtpClient
            | C::MailingList
            | C::AliasExpansion
            | C::Sieve => DebugGroup::MessageDelivery,
            C::Antivirus | C::SpamFilter | C::Spf | C::SpamAssassin => DebugGroup::ContentFilters,
            C::Store | C::Search | C::Quota | C::Backup | C::Decoding | C::CleanOut => {
                DebugGroup::MessageStore
            }
            C::WebDav | C::ActiveSync => DebugGroup::HttpModules,
            C::Auth | C::Tls | C::Dns | C::Directory | C::Threads | C::Admin => {
                DebugGroup::Auxiliary
            }
            C::Scheduler | C::Resources | C::Gal => DebugGroup::LocalServices,
        }
    }

    /// Bit of this category in a `u64` mask.
    pub(crate) const fn bit(self) -> u64 {
        1u64 << (self as u32)
    }
}

impl fmt::Display for DebugCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<DebugCategory> for &'static str {
    fn from(c: DebugCategory) -> Self {
        c.as_str()
    }
}

/// A string that names no debug category.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown debug category {0:?}")]
pub struct UnknownDebugCategory(pub String);

impl FromStr for DebugCategory {
    type Err = UnknownDebugCategory;

    /// Accepts the name (`smtp-server`), the guide's label (`SMTP Server`), in any case, and
    /// the short forms `smtp`, `imap`, `pop3`, `http`, `ldap`, `nntp`, `network`, `ssl`,
    /// `caldav`, `carddav`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let alias = match t.to_ascii_lowercase().as_str() {
            "smtp" => Some(DebugCategory::SmtpServer),
            "imap" => Some(DebugCategory::ImapServer),
            "pop3" => Some(DebugCategory::Pop3Server),
            "http" => Some(DebugCategory::HttpServer),
            "ldap" => Some(DebugCategory::LdapServer),
            "nntp" => Some(DebugCategory::NntpServer),
            "network" | "ssl" => Some(DebugCategory::Tls),
            "caldav" | "carddav" => Some(DebugCategory::WebDav),
            _ => None,
        };
        alias
            .or_else(|| {
                DebugCategory::ALL.into_iter().find(|c| {
                    c.as_str().eq_ignore_ascii_case(t) || c.label().eq_ignore_ascii_case(t)
                })
            })
            .ok_or_else(|| UnknownDebugCategory(s.to_owned()))
    }
}

impl TryFrom<String> for DebugCategory {
    type Error = UnknownDebugCategory;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in DebugCategory::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i, "ALL is in declaration order");
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(c.as_str().parse::<DebugCategory>(), Ok(c));
            assert_eq!(c.label().parse::<DebugCategory>(), Ok(c));
            assert!(!c.group().label().is_empty());
        }
        assert!(DebugCategory::ALL.len() <= 64);
        assert_eq!(
            "imap".parse::<DebugCategory>(),
            Ok(DebugCategory::ImapServer)
        );
        assert_eq!("SSL".parse::<DebugCategory>(), Ok(DebugCategory::Tls));
        assert!("syncml".parse::<DebugCategory>().is_err());
    }
}
