//! Log settings: file logging with rotation, syslog output, debug categories (guide §25.1,
//! §25.9).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::debug::DebugCategory;
use super::kind::LogKind;

/// Default size limit of a live log file before it is rotated: 10 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;

/// Default number of rotated files kept (`mail.log.1` … `mail.log.5`). The guide gives no
/// default for "Keep at most … log file(s)" (guide §25.1).
pub const DEFAULT_KEEP: u32 = 5;

/// Regular rotation of a log file (guide §25.1 "Rotate regularly").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// No rotation by time (only by size, if set).
    #[default]
    Never,
    /// guide §25.1 "Every hour".
    Hourly,
    /// guide §25.1 "Every day".
    Daily,
    /// guide §25.1 "Every week" (ISO weeks, starting on Monday).
    Weekly,
    /// guide §25.1 "Every month".
    Monthly,
}

impl Rotation {
    /// The lowercase name used in settings: `never`, `hourly`, `daily`, `weekly`, `monthly`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rotation::Never => "never",
            Rotation::Hourly => "hourly",
            Rotation::Daily => "daily",
            Rotation::Weekly => "weekly",
            Rotation::Monthly => "monthly",
        }
    }
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no rotation period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rotation {0:?} (expected never, hourly, daily, weekly or monthly)")]
pub struct UnknownRotation(pub String);

impl FromStr for Rotation {
    type Err = UnknownRotation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Rotation::Never,
            Rotation::Hourly,
            Rotation::Daily,
            Rotation::Weekly,
            Rotation::Monthly,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| UnknownRotation(s.to_owned()))
    }
}

/// Syslog facility (RFC 5424 §6.2.1; guide §25.1 "Facility").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFacility {
    Kern,
    User,
    #[default]
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl SyslogFacility {
    /// The numeric facility code (RFC 5424 table 1).
    pub const fn code(self) -> u8 {
        match self {
            SyslogFacility::Kern => 0,
            SyslogFacility::User => 1,
            SyslogFacility::Mail => 2,
            SyslogFacility::Daemon => 3,
            SyslogFacility::Auth => 4,
            SyslogFacility::Syslog => 5,
            SyslogFacility::Lpr => 6,
            SyslogFacility::News => 7,
            SyslogFacility::Uucp => 8,
            SyslogFacility::Cron => 9,
            SyslogFacility::Authpriv => 10,
            SyslogFacility::Ftp => 11,
            SyslogFacility::Local0 => 16,
            SyslogFacility::Local1 => 17,
            SyslogFacility::Local2 => 18,
            SyslogFacility::Local3 => 19,
            SyslogFacility::Local4 => 20,
            SyslogFacility::Local5 => 21,
            SyslogFacility::Local6 => 22,
            SyslogFacility::Local7 => 23,
        }
    }
}

/// Syslog severity (RFC 5424 §6.2.1; guide §25.1 "Severity").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogSeverity {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl SyslogSeverity {
    /// The numeric severity code (RFC 5424 table 2).
    pub const fn code(self) -> u8 {
        match self {
            SyslogSeverity::Emergency => 0,
            SyslogSeverity::Alert => 1,
            SyslogSeverity::Critical => 2,
            SyslogSeverity::Error => 3,
            SyslogSeverity::Warning => 4,
            SyslogSeverity::Notice => 5,
            SyslogSeverity::Info => 6,
            SyslogSeverity::Debug => 7,
        }
    }

    /// The severity used for a log when the settings name none.
    pub const fn default_for(kind: LogKind) -> Self {
        match kind {
            LogKind::Error => SyslogSeverity::Error,
            LogKind::Warning => SyslogSeverity::Warning,
            LogKind::Security | LogKind::Config => SyslogSeverity::Notice,
            LogKind::Debug => SyslogSeverity::Debug,
            LogKind::Mail | LogKind::Operations | LogKind::Spam => SyslogSeverity::Info,
        }
    }
}

/// Syslog output of one log (guide §25.1 "External Logging"). Combinable with file logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSettings {
    /// guide §25.1 "Enable Syslog logging".
    pub enabled: bool,
    /// guide §25.1 "Facility".
    pub facility: SyslogFacility,
    /// guide §25.1 "Severity"; `None` uses [`SyslogSeverity::default_for`] the log.
    pub severity: Option<SyslogSeverity>,
    /// guide §25.1 "Syslog server". `None` sends to the local daemon at `/dev/log`;
    /// `unix:/path` to another local datagram socket; `host` or `host:port` (default port
    /// 514) over UDP. A host name is resolved once, when first used after a settings change.
    pub server: Option<String>,
}

/// Settings of one log (guide §25.1 "File Logging" and "External Logging").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogKindSettings {
    /// guide §25.1 "Enable logging to file".
    pub enabled: bool,
    /// guide §25.1 "Rotate regularly".
    pub rotation: Rotation,
    /// guide §25.1 "Rotate when file exceeds size", in bytes; 0 disables size rotation.
    pub max_size: u64,
    /// guide §25.1 "Keep at most … log file(s)": rotated files kept besides the live file
    /// (`mail.log.1` is the newest). 0 means a rotation simply empties the live file.
    pub keep: u32,
    /// guide §25.1 "External Logging".
    pub syslog: SyslogSettings,
}

impl Default for LogKindSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            rotation: Rotation::Never,
            max_size: DEFAULT_MAX_SIZE,
            keep: DEFAULT_KEEP,
            syslog: SyslogSettings::default(),
        }
    }
}

/// Settings of every log, plus the enabled debug categories (guide §25.1, §25.9).
///
/// Serialises as one table per log (`config`, `mail`, …) and `debug_categories`, a list of
/// [`DebugCategory`] names. Missing keys take their defaults; unknown keys are rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// guide §25.2.
    pub config: LogKindSettings,
    /// guide §25.3.
    pub mail: LogKindSettings,
    /// guide §25.4.
    pub security: LogKindSettings,
    /// guide §25.5.
    pub warning: LogKindSettings,
    /// guide §25.6.
    pub operations: LogKindSettings,
    /// guide §25.7.
    pub error: LogKindSettings,
    /// guide §25.8.
    pub spam: LogKindSettings,
    /// guide §25.9.
    pub debug: LogKindSettings,
    /// guide §25.9 "Messages": the debug categories switched on. Empty by default: the
    /// Debug log then holds only start/stop, services and listeners.
    pub debug_categories: BTreeSet<DebugCategory>,
}

impl LogSettings {
    /// The settings of one log.
    pub fn kind(&self, kind: LogKind) -> &LogKindSettings {
        match kind {
            LogKind::Config => &self.config,
            LogKind::Mail => &self.mail,
            LogKind::Security => &self.security,
            LogKind::Warning => &self.warning,
            LogKind::Operations => &self.operations,
            LogKind::Error => &self.error,
            LogKind::Spam => &self.spam,
            LogKind::Debug => &self.debug,
        }
    }

    /// The settings of one log, to change.
    pub fn kind_mut(&mut self, kind: LogKind) -> &mut LogKindSettings {
        match kind {
            LogKind::Config => &mut self.config,
            LogKind::Mail => &mut self.mail,
            LogKind::Security => &mut self.security,
            LogKind::Warning => &mut self.warning,
            LogKind::Operations => &mut self.operations,
            LogKind::Error => &mut self.error,
            LogKind::Spam => &mut self.spam,
            LogKind::Debug => &mut self.debug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = LogSettings::default();
        for k in LogKind::ALL {
            let k = s.kind(k);
            assert!(k.enabled);
            assert_eq!(k.rotation, Rotation::Never);
            assert_eq!(k.max_size, 10 * 1024 * 1024);
            assert_eq!(k.keep, 5);
            assert!(!k.syslog.enabled);
            assert_eq!(k.syslog.facility, SyslogFacility::Mail);
        }
        assert!(s.debug_categories.is_empty());
    }

    #[test]
    fn serde_round_trip_and_strictness() {
        let mut s = LogSettings::default();
        s.mail.rotation = Rotation::Daily;
        s.security.syslog = SyslogSettings {
            enabled: true,
            facility: SyslogFacility::Local3,
            severity: Some(SyslogSeverity::Warning),
            server: Some("unix:/tmp/x".into()),
        };
        s.debug_categories.insert(DebugCategory::SmtpServer);
        s.debug_categories.insert(DebugCategory::Spf);
        let json = serde_json::to_string(&s).expect("serialise");
        assert!(
            json.contains(r#""debug_categories":["smtp-server","spf"]"#),
            "{json}"
        );
        assert!(json.contains(r#""rotation":"daily""#), "{json}");
        assert!(json.contains(r#""facility":"local3""#), "{json}");
        let back: LogSettings = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, s);

        let partial: LogSettings =
            serde_json::from_str(r#"{"mail":{"keep":2},"debug_categories":["imap","dns"]}"#)
                .expect("partial");
        assert_eq!(partial.mail.keep, 2);
        assert_eq!(partial.mail.max_size, DEFAULT_MAX_SIZE);
        assert!(
            partial
                .debug_categories
                .contains(&DebugCategory::ImapServer)
        );
        assert!(serde_json::from_str::<LogSettings>(r#"{"mail":{"kep":2}}"#).is_err());
        assert!(serde_json::from_str::<LogSettings>(r#"{"debug_categories":["nope"]}"#).is_err());
    }

    #[test]
    fn rotation_parse_and_codes() {
        assert_eq!("Weekly".parse::<Rotation>(), Ok(Rotation::Weekly));
        assert!("yearly".parse::<Rotation>().is_err());
        assert_eq!(SyslogFacility::Local7.code(), 23);
        assert_eq!(SyslogSeverity::Debug.code(), 7);
    }
}
