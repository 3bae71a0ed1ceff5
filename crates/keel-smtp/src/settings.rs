//! SMTP server settings (guide §12.2 Relay Control and Security Options, §12.6), stored as
//! the MetaStore document `server_setting` / `smtp` and read per session (per transaction
//! for the limits), so a change applies to the next session without a restart.
//!
//! Defaults follow requirements-1 §12.2 (the guide gives none): 20 connections per IP,
//! 100 recipients, 10 failed commands, 30 hops, 25 MB, message-rate and harvest limits off.

use std::time::Duration;

use keel_store::{MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

/// MetaStore document kind of server settings.
pub const SETTINGS_KIND: &str = "server_setting";
/// Document key of the SMTP settings.
pub const SETTINGS_KEY: &str = "smtp";

/// RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 300;
/// RFC 5321 §4.5.3.2.5-6: 3 minutes per data block (we use one timeout per read) and
/// 10 minutes for the final dot processing; one read timeout of 3 minutes covers DATA.
pub const DEFAULT_DATA_TIMEOUT_SECS: u64 = 180;
/// Default duration of a directory-harvest block: one hour (guide §12.2).
pub const DEFAULT_HARVEST_BLOCK_SECS: u64 = 3600;
/// Default "Limit maximum incoming SMTP message size": 25 MB (requirements-1 §12.2).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 25 * 1024 * 1024;
/// Default delivery retry interval: 30 minutes (requirements-1 §0.12, guide §13.1).
pub const DEFAULT_RETRY_INTERVAL_SECS: u64 = 30 * 60;
/// Default "Bounce the message to sender if not delivered in": 5 days (requirements-1 §0.12).
pub const DEFAULT_BOUNCE_AFTER_SECS: u64 = 5 * 24 * 3600;
/// Default "Send warning to sender if not delivered in": 4 hours (requirements-2 §24.1).
pub const DEFAULT_WARN_AFTER_SECS: u64 = 4 * 3600;
/// Default maximum number of delivery tasks (guide §24.2).
pub const DEFAULT_MAX_DELIVERY_TASKS: u32 = 32;
/// Default lease of a claimed queue message (one hour).
pub const DEFAULT_QUEUE_LEASE_SECS: u64 = 3600;

/// TLS towards the relay SMTP server (guide §12.2 SMTP Delivery, requirements-1 §12.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// STARTTLS when offered, any certificate, plaintext otherwise ("Use SSL if supported
    /// by remote SMTP server").
    #[default]
    Opportunistic,
    /// Never TLS.
    None,
    /// STARTTLS required and the certificate verified against the system roots.
    Starttls,
    /// TLS from the first byte (port 465, RFC 8314), certificate verified.
    Implicit,
}

/// SMTP AUTH credentials for the relay SMTP server (guide §12.2).
///
/// Limitation: the password is stored in clear in the settings document (it must be sent
/// to the relay, so it cannot be hashed); the config log masks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Editable texts of the human-readable part of DSNs (guide §12.2 "Report language";
/// requirements-1 §12.2: template-driven, localisable). Placeholders: `{hostname}`,
/// `{sender}`, `{queue_id}`, `{subject}`, `{recipients}` (one line per recipient with its
/// error), `{created}` (queue date), `{retry_until}` (bounce deadline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DsnTemplates {
    /// Subject of a failure report.
    pub failed_subject: String,
    /// Body of a failure report.
    pub failed: String,
    /// Subject of a delay warning.
    pub delayed_subject: String,
    /// Body of a delay warning.
    pub delayed: String,
    /// Subject of a success report (`NOTIFY=SUCCESS`).
    pub delivered_subject: String,
    /// Body of a success report.
    pub delivered: String,
}

impl Default for DsnTemplates {
    fn default() -> Self {
        Self {
            failed_subject: "Undelivered mail: {subject}".into(),
            failed: "This is the mail server {hostname}.\n\n\
                     Your message could not be delivered to one or more recipients. \
                     This is a permanent error; the message will not be retried.\n\n\
                     {recipients}\n\n\
                     Queue ID: {queue_id}\n"
                .into(),
            delayed_subject: "Delayed mail (still trying): {subject}".into(),
            delayed: "This is the mail server {hostname}.\n\n\
                      Your message, queued on {created}, has not been delivered yet to the \
                      recipients below. The server will keep trying until {retry_until}; \
                      you do not need to send it again.\n\n\
                      {recipients}\n\n\
                      Queue ID: {queue_id}\n"
                .into(),
            delivered_subject: "Delivered: {subject}".into(),
            delivered: "This is the mail server {hostname}.\n\n\
                        Your message was delivered to the recipients below, as you asked.\n\n\
                        {recipients}\n\n\
                        Queue ID: {queue_id}\n"
                .into(),
        }
    }
}

/// Default greylisting delay: 5 minutes (RFC 6647 §4.2 suggests 1 to 5 minutes).
pub const DEFAULT_GREYLIST_DELAY_SECS: u64 = 300;
/// Default lifetime of a triplet never retried after its delay: 4 days.
pub const DEFAULT_GREYLIST_EXPIRE_SECS: u64 = 4 * 24 * 3600;
/// Default lifetime of a passed (whitelisted) triplet since its last use: 36 days.
pub const DEFAULT_GREYLIST_WHITELIST_SECS: u64 = 36 * 24 * 3600;

/// Greylisting (issue 6 item 6, guide §13.6 "spam repellent", RFC 6647): the first
/// attempt of an unknown (client network, sender, recipient) triplet is answered
/// `451 4.7.1` at RCPT; a retry after [`Self::delay_secs`] passes and whitelists the
/// triplet. Triplets live in the MetaStore (kind `greylist`), so restarts keep them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreylistSettings {
    /// On/off (off by default).
    pub enabled: bool,
    /// Seconds a new triplet must wait before a retry passes.
    pub delay_secs: u64,
    /// Seconds an unconfirmed triplet is kept; a retry after that starts over.
    pub expire_secs: u64,
    /// Seconds a passed triplet stays whitelisted after its last use.
    pub whitelist_secs: u64,
    /// Clients in this IP group are never greylisted.
    pub exempt_group: Option<String>,
    /// Private, loopback and link-local clients are never greylisted (default on, as
    /// issue 6 item 6 asks).
    pub exempt_private_ranges: bool,
}

impl Default for GreylistSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            delay_secs: DEFAULT_GREYLIST_DELAY_SECS,
            expire_secs: DEFAULT_GREYLIST_EXPIRE_SECS,
            whitelist_secs: DEFAULT_GREYLIST_WHITELIST_SECS,
            exempt_group: None,
            exempt_private_ranges: true,
        }
    }
}

/// Default interval of ETRN download rounds: one hour (the guide leaves it to the
/// scheduler, §20; Keel has no scheduler yet, so it is a plain interval).
pub const DEFAULT_ETRN_INTERVAL_SECS: u64 = 3600;
/// Default reply timeout of ETRN download (guide §12.5 "Options").
pub const DEFAULT_ETRN_TIMEOUT_SECS: u64 = 60;

/// One server of "ETRN Download" (guide §12.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtrnServer {
    /// "Server": host name or IP, optionally `:port` (25 by default).
    pub host: String,
    /// "Domain(s)": the domains it stores mail for (the guide's `;`-separated list).
    pub domains: Vec<String>,
    /// "Description".
    pub description: String,
    /// "Authentication is required": SMTP AUTH before ETRN.
    pub auth: Option<RelayAuth>,
    /// The checkbox that disables the server temporarily.
    pub enabled: bool,
}

impl Default for EtrnServer {
    fn default() -> Self {
        Self {
            host: String::new(),
            domains: Vec::new(),
            description: String::new(),
            auth: None,
            enabled: true,
        }
    }
}

/// The SMTP server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    // --- Relay Control (guide §12.2) ---
    /// "Users from IP address group": clients in this group may relay. `None` = off.
    pub relay_ip_group: Option<String>,
    /// "Users authenticated through SMTP" may relay. Default on.
    pub relay_authenticated: bool,
    /// "Users authenticated through POP3 from the same IP address" within this many
    /// minutes (POP-before-SMTP). The POP3 server records each successful login through
    /// `Directory::record_pop3_login`; `None` or 0 = off.
    pub relay_pop_before_smtp_minutes: Option<u32>,
    /// Open relay: anyone may relay. A warning goes to the warning log at each session
    /// start while it is on (guide §12.2 "strong warning").
    pub open_relay: bool,

    // --- Security Options (guide §12.2) ---
    /// Max messages per hour from one IP over a sliding hour; 0 = off.
    pub max_messages_per_hour_per_ip: u32,
    /// Max concurrent SMTP connections from one IP (421 4.7.0); 0 = off.
    pub max_connections_per_ip: u32,
    /// Max unknown recipients from one IP before it is blocked for
    /// [`Self::harvest_block_secs`] (directory harvest); 0 = off.
    pub max_unknown_recipients: u32,
    /// Length of a harvest block in seconds (1 hour in the guide; shorter in tests).
    pub harvest_block_secs: u64,
    /// "Do not apply these limits to IP address group".
    pub exempt_ip_group: Option<String>,
    /// "Block if sender's mail domain was not found in DNS" (off by default): at MAIL, the
    /// sender's domain must have an MX, A or AAAA record (550 5.1.8; a temporary DNS
    /// failure answers 451 4.4.3). Skipped for the null sender, authenticated sessions,
    /// the relay group, [`Self::exempt_ip_group`] and local domains.
    pub reject_unknown_sender_domain: bool,
    /// Max recipients per message (452 4.5.3); 0 = unlimited.
    pub max_recipients: u32,
    /// Max failed commands in a session (421, then close); 0 = unlimited.
    pub max_failed_commands: u32,
    /// Max incoming message size in bytes (552 5.3.4); 0 = unlimited.
    pub max_message_size: u64,
    /// Max `Received:` headers (hops) accepted (554 5.4.6); 0 = unlimited.
    pub max_received_headers: u32,

    // --- Other ---
    /// Below this much free space in the data directory MAIL and DATA answer 452 4.3.1
    /// (requirements-1 §12.6 watchdog hard limit); 0 = off.
    pub min_free_disk_bytes: u64,
    /// Allow PLAIN/LOGIN over an unencrypted connection from non-loopback clients.
    /// Loopback is always allowed (requirements-1 §0.8 / issue 3).
    pub allow_plain_auth_without_tls: bool,
    /// Hide the client IP in the Received header for clients of the relay group (§12.6).
    pub hide_local_ip_in_received: bool,
    /// Insert `X-Envelope-To:` on local delivery (§12.6).
    pub insert_x_envelope_to: bool,
    /// Answer VRFY (otherwise 252, RFC 5321 §3.5.3).
    pub enable_vrfy: bool,
    /// Answer EXPN (otherwise 502).
    pub enable_expn: bool,
    /// Accept body lines longer than 1000 octets (RFC 5321 §4.5.3.1.6) instead of 552 5.6.0.
    pub lenient_line_length: bool,
    /// Seconds to wait for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub command_timeout_secs: u64,
    /// Seconds to wait for each read of message data (RFC 5321 §4.5.3.2.5).
    pub data_timeout_secs: u64,

    // --- Spam repellent (guide §13.6) ---
    /// "Delay SMTP greeting by N seconds" on plaintext port 25 only (not 465, not 587);
    /// a client that talks before the banner is disconnected. 0 = off (the default; the
    /// guide recommends 25 s).
    pub greeting_delay_secs: u64,
    /// "Do not apply delay for connections from IP address group".
    pub greeting_delay_exempt_group: Option<String>,
    /// "Report the spam attack to the Security log" (off by default: log volume).
    pub greeting_delay_report: bool,
    /// Greylisting (issue 6 item 6, RFC 6647); off by default.
    pub greylisting: GreylistSettings,

    // --- ETRN (RFC 1985, guide §12.5, §7.10) ---
    /// Accept ETRN from any client. Off by default: only SMTP-authenticated clients and
    /// the relay IP group may start a queue run (ETRN makes the server open connections,
    /// so an open ETRN is a cheap amplifier); others get 459.
    pub etrn_anyone: bool,
    /// Clients in this IP group may send ETRN without authenticating (the primary server
    /// that collects mail held for it, guide §7.10). `None` = only authenticated clients
    /// and the relay group.
    pub etrn_ip_group: Option<String>,
    /// "ETRN Download" (guide §12.5, §7.10): remote servers that hold mail for our
    /// domains; Keel sends them `ETRN <domain>` at start-up and every
    /// [`Self::etrn_download_interval_secs`].
    pub etrn_download: Vec<EtrnServer>,
    /// Seconds between ETRN download rounds; 0 = only at start-up (and on request).
    pub etrn_download_interval_secs: u64,
    /// guide §20 "At": times of day (`HH:MM`, server local time) at which a round goes
    /// out, besides the interval; empty = none.
    pub etrn_download_at: Vec<String>,
    /// guide §20 "Valid only at time": the name of a time interval (guide §19.2) outside of
    /// which the periodic ETRN download rounds are skipped; `None` = any time. The round
    /// at start-up (guide §7.10) and `keel queue etrn-download` ignore it.
    pub etrn_download_time_interval: Option<String>,
    /// "Options" tab of guide §12.5: seconds to wait for each reply of the remote server.
    pub etrn_download_timeout_secs: u64,

    // --- SMTP Delivery (guide §12.2) ---
    /// "Use relay SMTP server": `host[:port]` (port 25 by default, 465 with implicit TLS);
    /// `None` = deliver directly using DNS MX records. Recipients with a domain-forwarding
    /// route (guide §7.9/§7.10) still go to their route.
    pub relay_host: Option<String>,
    /// TLS towards the relay host.
    pub relay_tls: RelayTls,
    /// "Relay server requires authentication" by SMTP AUTH. (POP3-before-SMTP is not
    /// implemented.)
    pub relay_auth: Option<RelayAuth>,
    /// "Use SSL if supported by remote SMTP server" for direct MX delivery and routes:
    /// STARTTLS when offered, any certificate accepted (opportunistic, RFC 3207 §4.1).
    pub outbound_starttls: bool,
    /// Port of direct MX delivery (25; other values only for tests and special setups).
    pub mx_port: u16,
    /// Reuse SMTP sessions for several deliveries to the same server (RFC 5321 §3.3):
    /// idle sessions are kept a few seconds per address, TLS policy and relay
    /// credentials (`outbound` connection cache). Default on.
    pub outbound_connection_reuse: bool,

    // --- Queue Options (guide §12.2) ---
    /// "Maximum number of delivery threads" (guide §24.2 default 32).
    pub max_delivery_tasks: u32,
    /// Seconds a node holds a claimed queue message (DESIGN §4 leases). When a node dies
    /// mid-delivery another node takes its messages once this has passed. Must exceed the
    /// longest delivery attempt (the SMTP timeouts); clamped to 10..=86400. Default 1 h.
    pub queue_lease_secs: u64,
    /// "Delivery retry interval" in seconds (default 30 min).
    pub retry_interval_secs: u64,
    /// "Bounce the message to sender if not delivered in" seconds (default 5 days).
    pub bounce_after_secs: u64,
    /// "Send warning to sender if not delivered in" seconds (default 4 h; 0 = off).
    pub warn_after_secs: u64,
    /// Seconds to wait for a TCP connection to a remote server.
    pub delivery_connect_timeout_secs: u64,
    /// Seconds to wait for each reply of a remote server (RFC 5321 §4.5.3.2: 5 minutes
    /// for the greeting, MAIL and RCPT; the final reply after the data gets twice this,
    /// the 10 minutes of §4.5.3.2.6).
    pub delivery_command_timeout_secs: u64,
    /// "Report language" of DSNs: a key of [`Self::dsn_templates`] (falls back to `en`).
    pub dsn_language: String,
    /// DSN texts per language (admin-editable).
    pub dsn_templates: std::collections::BTreeMap<String, DsnTemplates>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            relay_ip_group: None,
            relay_authenticated: true,
            relay_pop_before_smtp_minutes: None,
            open_relay: false,
            max_messages_per_hour_per_ip: 0,
            max_connections_per_ip: 20,
            max_unknown_recipients: 0,
            harvest_block_secs: DEFAULT_HARVEST_BLOCK_SECS,
            exempt_ip_group: None,
            reject_unknown_sender_domain: false,
            max_recipients: 100,
            max_failed_commands: 10,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_received_headers: 30,
            min_free_disk_bytes: 0,
            allow_plain_auth_without_tls: false,
            hide_local_ip_in_received: false,
            insert_x_envelope_to: false,
            enable_vrfy: false,
            enable_expn: false,
            lenient_line_length: false,
            command_timeout_secs: DEFAULT_COMMAND_TIMEOUT_SECS,
            data_timeout_secs: DEFAULT_DATA_TIMEOUT_SECS,
            greeting_delay_secs: 0,
            greeting_delay_exempt_group: None,
            greeting_delay_report: false,
            greylisting: GreylistSettings::default(),
            etrn_anyone: false,
            etrn_ip_group: None,
            etrn_download: Vec::new(),
            etrn_download_interval_secs: DEFAULT_ETRN_INTERVAL_SECS,
            etrn_download_at: Vec::new(),
            etrn_download_time_interval: None,
            etrn_download_timeout_secs: DEFAULT_ETRN_TIMEOUT_SECS,
            relay_host: None,
            relay_tls: RelayTls::default(),
            relay_auth: None,
            outbound_starttls: true,
            mx_port: 25,
            outbound_connection_reuse: true,
            max_delivery_tasks: DEFAULT_MAX_DELIVERY_TASKS,
            queue_lease_secs: DEFAULT_QUEUE_LEASE_SECS,
            retry_interval_secs: DEFAULT_RETRY_INTERVAL_SECS,
            bounce_after_secs: DEFAULT_BOUNCE_AFTER_SECS,
            warn_after_secs: DEFAULT_WARN_AFTER_SECS,
            delivery_connect_timeout_secs: 60,
            delivery_command_timeout_secs: 300,
            dsn_language: "en".into(),
            dsn_templates: [("en".to_owned(), DsnTemplates::default())].into(),
        }
    }
}

impl SmtpSettings {
    /// The command timeout.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs.max(1))
    }
    /// The data timeout.
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs.max(1))
    }
    /// The queue lease in seconds, clamped to 10 s ..= 1 day.
    pub fn lease_secs(&self) -> i64 {
        self.queue_lease_secs.clamp(10, 86_400) as i64
    }
    /// The DSN templates of the report language (English when the language is missing).
    pub fn dsn_texts(&self) -> DsnTemplates {
        self.dsn_templates
            .get(&self.dsn_language)
            .or_else(|| self.dsn_templates.get("en"))
            .cloned()
            .unwrap_or_default()
    }
}

/// Reads the SMTP settings (defaults when never saved).
pub fn load_settings(meta: &dyn MetaStore) -> StoreResult<SmtpSettings> {
    match meta.get_doc(SETTINGS_KIND, SETTINGS_KEY)? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{SETTINGS_KIND}/{SETTINGS_KEY}: {e}"))),
        None => Ok(SmtpSettings::default()),
    }
}

/// Saves the SMTP settings.
pub fn save_settings(meta: &dyn MetaStore, settings: &SmtpSettings) -> StoreResult<()> {
    let body = serde_json::to_value(settings)
        .map_err(|e| StoreError::Backend(format!("encoding SMTP settings: {e}")))?;
    meta.transact(&mut |tx| tx.put(SETTINGS_KIND, SETTINGS_KEY, "", &body).map(|_| ()))
}

/// A time of day of `etrn_download_at` (guide §20 "At 12:00"): `HH:MM`, 24-hour clock.
pub fn parse_time_of_day(s: &str) -> Option<chrono::NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    chrono::NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// Whether a daily time `at` fell in `(after, until]` (local date-times): today's or the
/// previous day's occurrence.
pub fn daily_time_passed(
    at: chrono::NaiveTime,
    after: chrono::NaiveDateTime,
    until: chrono::NaiveDateTime,
) -> bool {
    let today = until.date().and_time(at);
    let yesterday = today - chrono::Duration::days(1);
    [today, yesterday].iter().any(|t| *t > after && *t <= until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_and_their_passing() {
        use chrono::{NaiveDate, NaiveTime};
        assert_eq!(
            parse_time_of_day("06:30"),
            NaiveTime::from_hms_opt(6, 30, 0)
        );
        assert_eq!(
            parse_time_of_day(" 7:05 "),
            NaiveTime::from_hms_opt(7, 5, 0)
        );
        for bad in ["24:00", "12:60", "1230", "12:3", "", "ab:cd", "123:00"] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
        let t = |d, h, m| {
            NaiveDate::from_ymd_opt(2026, 11, d)
                .and_then(|x| x.and_hms_opt(h, m, 0))
                .expect("date")
        };
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        assert!(daily_time_passed(at(6, 30), t(29, 6, 29), t(29, 6, 30)));
        assert!(
            !daily_time_passed(at(6, 30), t(29, 6, 30), t(29, 6, 31)),
            "once"
        );
        assert!(!daily_time_passed(at(6, 30), t(29, 5, 0), t(29, 6, 0)));
        // Across midnight: 23:59 yesterday to 00:10 today passes 00:05, not 23:00.
        assert!(daily_time_passed(at(0, 5), t(28, 23, 59), t(29, 0, 10)));
        assert!(!daily_time_passed(at(23, 0), t(28, 23, 59), t(29, 0, 10)));
    }

    #[test]
    fn unknown_keys_are_rejected_and_missing_keys_default() {
        let s: SmtpSettings = serde_json::from_str(r#"{"max_recipients": 3}"#).unwrap();
        assert_eq!(s.max_recipients, 3);
        assert!(s.relay_authenticated);
        assert!(serde_json::from_str::<SmtpSettings>(r#"{"max_recipient": 3}"#).is_err());
    }
}
