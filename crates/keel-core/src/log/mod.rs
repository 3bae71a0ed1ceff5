//! The guide's logs (guide ch. 25; requirements-2 §25; DESIGN §7).
//!
//! Eight log files under one directory — `config.log`, `mail.log`, `security.log`,
//! `warning.log`, `operations.log`, `error.log`, `spam.log`, `debug.log` — each entry one
//! line starting `[DD/Mon/YYYY HH:MM:SS] ` in server local time (guide §25.1), with
//! rotation by size and by time, an optional copy to syslog, and debug categories that
//! can be switched at run time (guide §25.9).
//!
//! # Implementation notes
//!
//! - One mutex per file; a line, with its newline, goes out in one `write` under it, so
//!   concurrent writers never interleave partial lines.
//! - Logging never panics and never returns an error to the caller: an I/O failure is
//!   reported to stderr once (until the next success) and swallowed. Only [`Logs::open`]
//!   and [`Logs::clear`] return errors.
//! - Time comes from a [`SharedClock`], so rotation by time is tested without sleeping.
//!   The time-rotation period of a file starts at its first entry, read back from the file
//!   when a log directory is reopened.
//! - Config, Warning, Error and Debug lines pass through [`mask_secrets`]; the structured
//!   Mail, Security, Operations and Spam lines carry no secrets. Line breaks inside an
//!   entry become spaces (guide §25.1: one entry, one line).

mod debug;
mod file;
mod format;
mod kind;
mod mask;
mod settings;
mod syslog;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Local;

use crate::clock::{SharedClock, SystemClock};

pub use debug::{DebugCategory, DebugGroup, UnknownDebugCategory};
pub use format::{
    AuthFailure, DeliveryResult, DsnReport, MailDirection, MailLogEntry, MailService,
    OperationsEvent, SecurityEvent, SecurityLimit, SpamEvent, format_log_time,
};
pub use kind::{LogKind, UnknownLogKind};
pub use mask::{SECRET_MASK, mask_secrets};
pub use settings::{
    DEFAULT_KEEP, DEFAULT_MAX_SIZE, LogKindSettings, LogSettings, Rotation, SyslogFacility,
    SyslogSettings, SyslogSeverity, UnknownRotation,
};

use file::LogFile;

/// Errors of [`Logs::open`] and [`Logs::clear`]. Writing never fails visibly.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created.
    #[error("cannot create log directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A log file could not be changed.
    #[error("log file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Set in the debug mask when the Debug log goes somewhere (file or syslog).
const DEBUG_ACTIVE: u64 = 1 << 63;

/// The server's logs. `Send + Sync`; clone it (an `Arc` inside) or put it in an `Arc` to
/// share it between services.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    clock: SharedClock,
    settings: RwLock<Arc<LogSettings>>,
    /// Bits of the enabled [`DebugCategory`]s plus [`DEBUG_ACTIVE`], read without locking.
    debug_mask: AtomicU64,
    files: [Mutex<LogFile>; LogKind::ALL.len()],
    syslog: syslog::Syslog,
}

impl fmt::Debug for Logs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logs")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn debug_mask(s: &LogSettings) -> u64 {
    let active = if s.debug.enabled || s.debug.syslog.enabled {
        DEBUG_ACTIVE
    } else {
        0
    };
    s.debug_categories.iter().fold(active, |m, c| m | c.bit())
}

impl Logs {
    /// Opens the logs in `dir` (created if missing) with the system clock. Files are
    /// opened, in append mode, at their first entry.
    pub fn open(dir: &Path, settings: LogSettings) -> Result<Logs, LogError> {
        Self::open_with_clock(dir, settings, Arc::new(SystemClock))
    }

    /// Opens the logs in `dir` taking the time from `clock` (DESIGN §3).
    pub fn open_with_clock(
        dir: &Path,
        settings: LogSettings,
        clock: SharedClock,
    ) -> Result<Logs, LogError> {
        std::fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = LogKind::ALL.map(|k| Mutex::new(LogFile::new(dir.join(k.file_name()))));
        Ok(Logs {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                clock,
                debug_mask: AtomicU64::new(debug_mask(&settings)),
                settings: RwLock::new(Arc::new(settings)),
                files,
                syslog: syslog::Syslog::default(),
            }),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of a live log file.
    pub fn path(&self, kind: LogKind) -> PathBuf {
        self.inner.dir.join(kind.file_name())
    }

    /// The current settings.
    pub fn settings(&self) -> LogSettings {
        LogSettings::clone(&self.snapshot())
    }

    /// Replaces the settings; the next write uses them (rotation limits, enabled logs,
    /// syslog, debug categories).
    pub fn set_settings(&self, settings: LogSettings) {
        let mut guard = self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.inner
            .debug_mask
            .store(debug_mask(&settings), Ordering::Release);
        *guard = Arc::new(settings);
        drop(guard);
        self.inner.syslog.reset();
    }

    fn snapshot(&self) -> Arc<LogSettings> {
        Arc::clone(
            &self
                .inner
                .settings
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Appends `[timestamp] line` to a log, rotating first if due, and copies it to syslog
    /// when that is on. Writes nothing when the log is disabled. Never panics; I/O errors
    /// go to stderr once. The line is written as given (no masking); line breaks become
    /// spaces. For the Debug log this is the always-on part of guide §25.9 (start, stop,
    /// services, listeners); category output goes through [`Logs::debug`].
    pub fn write(&self, kind: LogKind, line: &str) {
        let settings = self.snapshot();
        let ks = settings.kind(kind);
        if !ks.enabled && !ks.syslog.enabled {
            return;
        }
        let now = self.inner.clock.now();
        let body = format::one_line(line);
        if ks.enabled {
            let mut text = format::timestamp_prefix(now);
            text.push_str(&body);
            text.push('\n');
            let local = now.with_timezone(&Local).naive_local();
            let mut f = self.inner.files[kind.index()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            f.append(text.as_bytes(), local, ks);
        }
        if ks.syslog.enabled {
            self.inner.syslog.send(kind, &ks.syslog, &body);
        }
    }

    /// guide §25.1 "Clear log": empties a live log file (rotated files stay).
    pub fn clear(&self, kind: LogKind) -> Result<(), LogError> {
        let mut f = self.inner.files[kind.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f.clear().map_err(|source| LogError::Io {
            path: f.path().to_path_buf(),
            source,
        })
    }

    // ----------------------------------------------------------------- debug (§25.9)

    /// Whether a debug category is on and the Debug log goes somewhere. Lock-free; call it
    /// before building an expensive debug line.
    pub fn debug_enabled(&self, category: DebugCategory) -> bool {
        let want = category.bit() | DEBUG_ACTIVE;
        self.inner.debug_mask.load(Ordering::Acquire) & want == want
    }

    /// Switches a debug category at run time (guide §25.9 "Messages").
    pub fn set_debug_category(&self, category: DebugCategory, on: bool) {
        let mut guard = self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let s = Arc::make_mut(&mut guard);
        if on {
            s.debug_categories.insert(category);
        } else {
            s.debug_categories.remove(&category);
        }
        self.inner
            .debug_mask
            .store(debug_mask(s), Ordering::Release);
    }

    /// Writes `{category} line` to the Debug log when the category is on (guide §25.9),
    /// with secrets masked.
    pub fn debug(&self, category: DebugCategory, line: &str) {
        if self.debug_enabled(category) {
            self.write(
                LogKind::Debug,
                &format!("{{{category}}} {}", mask_secrets(line)),
            );
        }
    }

    // ----------------------------------------------------------- typed helpers

    /// Config log (guide §25.2): `<who> - <action>`, with passwords masked
    /// (`Admin - insert User set Name='tjones', Password=xxxxxx`).
    pub fn config(&self, who: &str, action: &str) {
        self.write(LogKind::Config, &format::config_line(who, action));
    }

    /// Config log: `<who> - session opened for host <ip>` (guide §25.2).
    pub fn config_session_opened(&self, who: &str, host: IpAddr) {
        self.config(who, &format!("session opened for host {host}"));
    }

    /// Config log: `<who> - session closed for host <ip>` (requirements-2 §25.2 "Modern").
    pub fn config_session_closed(&self, who: &str, host: IpAddr) {
        self.config(who, &format!("session closed for host {host}"));
    }

    /// Config log: `<who> - login failed for host <ip>` (requirements-2 §25.2 "Modern").
    pub fn config_login_failed(&self, who: &str, host: IpAddr) {
        self.config(who, &format!("login failed for host {host}"));
    }

    /// Mail log (guide §25.3): one `Recv` or `Sent` line.
    pub fn mail(&self, entry: &MailLogEntry) {
        self.write(LogKind::Mail, &entry.to_string());
    }

    /// Security log (guide §25.4).
    pub fn security(&self, event: &SecurityEvent<'_>) {
        self.write(LogKind::Security, &event.to_string());
    }

    /// Warning log (guide §25.5): `<message>`, secrets masked.
    pub fn warning(&self, message: &str) {
        self.write(LogKind::Warning, &mask_secrets(message));
    }

    /// Operations log (guide §25.6).
    pub fn operations(&self, event: &OperationsEvent<'_>) {
        self.write(LogKind::Operations, &event.to_string());
    }

    /// Error log (guide §25.7): `<message>`, secrets masked.
    pub fn error(&self, message: &str) {
        self.write(LogKind::Error, &mask_secrets(message));
    }

    /// Spam log (guide §25.8).
    pub fn spam(&self, event: &SpamEvent<'_>) {
        self.write(LogKind::Spam, &event.to_string());
    }
}

#[cfg(test)]
mod tests;
