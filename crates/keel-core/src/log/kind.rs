//! The guide's set of logs (guide §25, requirements-2 §25.1).

use std::fmt;
use std::str::FromStr;

/// One of the guide's logs. Each is a file `<name>.log` in the log directory.
///
/// guide §25.1: "Config, Mail, Security, Warning, Operations, Error, Spam, Debug".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    /// Administrative changes: who did what from where (guide §25.2).
    Config,
    /// Every received, sent, list and DSN message event (guide §25.3).
    Mail,
    /// Security events and non-delivered messages (guide §25.4).
    Security,
    /// Minor problems (guide §25.5).
    Warning,
    /// Deletions and moves of items and folders (guide §25.6).
    Operations,
    /// Serious errors that affect operation (guide §25.7).
    Error,
    /// Spam verdicts and user feedback (guide §25.8).
    Spam,
    /// Start/stop, listeners, and the switchable debug categories (guide §25.9).
    Debug,
}

impl LogKind {
    /// Every log, in the guide's order.
    pub const ALL: [LogKind; 8] = [
        LogKind::Config,
        LogKind::Mail,
        LogKind::Security,
        LogKind::Warning,
        LogKind::Operations,
        LogKind::Error,
        LogKind::Spam,
        LogKind::Debug,
    ];

    /// The short lowercase name: `config`, `mail`, `security`, `warning`, `operations`,
    /// `error`, `spam`, `debug`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogKind::Config => "config",
            LogKind::Mail => "mail",
            LogKind::Security => "security",
            LogKind::Warning => "warning",
            LogKind::Operations => "operations",
            LogKind::Error => "error",
            LogKind::Spam => "spam",
            LogKind::Debug => "debug",
        }
    }

    /// The file name of the live log inside the log directory, e.g. `mail.log`.
    pub const fn file_name(self) -> &'static str {
        match self {
            LogKind::Config => "config.log",
            LogKind::Mail => "mail.log",
            LogKind::Security => "security.log",
            LogKind::Warning => "warning.log",
            LogKind::Operations => "operations.log",
            LogKind::Error => "error.log",
            LogKind::Spam => "spam.log",
            LogKind::Debug => "debug.log",
        }
    }

    /// Position in [`LogKind::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log {0:?} (expected config, mail, security, warning, operations, error, spam or debug)"
)]
pub struct UnknownLogKind(pub String);

impl FromStr for LogKind {
    type Err = UnknownLogKind;

    /// Accepts the short name or the file name, in any case (`Mail`, `mail`, `mail.log`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_suffix(".log").unwrap_or(t);
        LogKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownLogKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parse_round_trip() {
        for (i, k) in LogKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(k.as_str().parse::<LogKind>(), Ok(k));
            assert_eq!(k.file_name().parse::<LogKind>(), Ok(k));
            assert_eq!(k.file_name(), format!("{k}.log"));
        }
        assert_eq!("Security".parse::<LogKind>(), Ok(LogKind::Security));
        assert!("audit".parse::<LogKind>().is_err());
    }
}
