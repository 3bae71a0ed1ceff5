//! Antivirus through clamd (guide ch. 14, requirements-2 §14) and the attachment filter
//! (guide §14.5).
//!
//! Implementation notes:
//! - [`ClamdScanner`] speaks clamd's `zINSTREAM` (requirements-2 §14.3: always stream,
//!   never `SCAN <path>`) over TCP (`host:port`) or a Unix socket (a path starting with
//!   `/`): the data goes in chunks of at most [`CHUNK`] bytes, each prefixed with its
//!   length as a 4-byte big-endian number, ended by a zero length; the reply is one
//!   NUL-terminated line `stream: OK`, `stream: <name> FOUND` or `… ERROR`. Replies are
//!   read up to [`MAX_REPLY`] bytes and every step has the configured timeout.
//! - Each MIME leaf part is scanned on its own (decoded), so an infected attachment can
//!   be removed (guide §14.4). Data larger than `max_stream` (clamd's `StreamMaxLength`)
//!   is not sent: it "cannot be scanned".
//! - "Cannot be scanned" (guide §14.4): clamd's `Heuristics.Encrypted.*` and
//!   `Heuristics.Limits.Exceeded*` names, its size-limit error, a part mail-parser
//!   found badly encoded, or more parts than [`crate::mime::MAX_PARTS`].
//! - Fail-closed (requirements-2 §14.2): when clamd cannot be reached or answers
//!   nonsense, [`ContentFilter::check`] returns [`ScanError`]; the SMTP session answers
//!   `451 4.3.0` and writes an Error-log line, so no message passes unscanned.
//! - Saving settings (requirements-2 §14.2): [`validate_antivirus_settings`] sends the
//!   EICAR test string and requires a detection; [`save_antivirus_settings_checked`]
//!   refuses to save otherwise.
//! - Order (DESIGN §3, guide §14.5): spam rating, then the attachment filter, then the
//!   antivirus on what the attachment filter left.
//! - Hostile structure (issue 6 tests): the MIME walk stops at the limits of
//!   [`MessageLimits`]; such a message is "cannot be scanned" for both filters and the
//!   whole message still goes to clamd; with the antivirus on, a part mail-parser could
//!   not decode is "cannot be scanned" too. A multipart without its closing boundary is
//!   examined as mail-parser recovers it (the scorer notes it). Keel never opens archives: a `.zip` is
//!   matched by name and type and sent to clamd as it is, compressed, so a zip bomb
//!   costs Keel its size only; clamd's own limits (`MaxScanSize`, `MaxFileSize`,
//!   `MaxRecursion`, with `AlertExceedsMax`) report it as `Heuristics.Limits.Exceeded`,
//!   which is "cannot be scanned" too. Each such message gets a Warning-log line.

use std::path::PathBuf;
use std::time::Duration;

use keel_core::log::Logs;
use keel_store::{MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::limits::MessageLimits;
use crate::mime::{self, Parts};
use crate::settings::SETTINGS_KIND;

/// Document key of the antivirus and attachment-filter settings.
pub const ANTIVIRUS_KEY: &str = "antivirus";
/// The EICAR anti-virus test file (eicar.org), split so that this source file itself
/// is not flagged by scanners.
pub const EICAR: &str = concat!(
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
    "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
);
/// Chunk size of INSTREAM.
pub const CHUNK: usize = 64 * 1024;
/// Longest clamd reply read.
pub const MAX_REPLY: usize = 4096;

/// What happens to a message with a virus (guide §14.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VirusAction {
    /// "Discard the message": refused at DATA with `554 5.7.1` (scanning happens before
    /// the `250`, so nothing is accepted and dropped, and nothing bounces).
    #[default]
    Discard,
    /// "Deliver the message with the malicious code removed": each infected part is
    /// replaced by a notice.
    RemoveAttachment,
}

/// What happens to a part that cannot be scanned (guide §14.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnscannableAction {
    /// "Deliver the original message with a prepended warning".
    #[default]
    DeliverWithWarning,
    /// "Reject the message as if it was a virus" (the virus action applies).
    TreatAsVirus,
}

/// Type of an attachment-filter rule (guide §14.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentMatch {
    /// Wildcard on the file name (`*.exe`), case-insensitive.
    FileName,
    /// Wildcard on the MIME type (`application/*`).
    MimeType,
}

/// Action of an attachment-filter rule (guide §14.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentAction {
    /// "Accept the attachment": no other rule applies to it.
    Accept,
    /// "Block the attachment": removed and replaced with a note; the forward options of
    /// [`AttachmentSettings`] apply.
    Block,
}

/// One attachment-filter rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRule {
    /// Whether the rule is checked.
    pub enabled: bool,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// What the pattern applies to.
    pub kind: AttachmentMatch,
    /// `*` and `?` wildcards.
    pub pattern: String,
    /// What a match does.
    pub action: AttachmentAction,
}

/// The attachment filter (guide §14.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentSettings {
    /// "Enable attachment filter" (off by default).
    pub enabled: bool,
    /// Ordered rules; the first enabled rule that matches decides.
    pub rules: Vec<AttachmentRule>,
    /// Forward the original message to this address.
    pub forward_original: Option<String>,
    /// Forward the filtered message to this address.
    pub forward_filtered: Option<String>,
    /// "Send a warning to sender", to local or authenticated senders only (no
    /// backscatter, requirements-2 §14.5).
    pub warn_sender: bool,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        // requirements-2 §14.5: the predefined rules ship present but disabled.
        let mut rules: Vec<AttachmentRule> = [
            ("exe", "Executable files"),
            ("com", "Executable files"),
            ("scr", "Screen savers"),
            ("pif", "Program information files"),
            ("bat", "Batch files"),
            ("cmd", "Command scripts"),
            ("vbs", "Visual Basic scripts"),
            ("js", "JavaScript files"),
            ("jse", "Encoded JavaScript files"),
            ("wsf", "Windows Script files"),
            ("hta", "HTML applications"),
            ("msi", "Windows Installer packages"),
            ("lnk", "Shortcuts"),
        ]
        .into_iter()
        .map(|(ext, d)| AttachmentRule {
            enabled: false,
            description: d.into(),
            kind: AttachmentMatch::FileName,
            pattern: format!("*.{ext}"),
            action: AttachmentAction::Block,
        })
        .collect();
        rules.push(AttachmentRule {
            enabled: false,
            description: "Windows executables".into(),
            kind: AttachmentMatch::MimeType,
            pattern: "application/x-msdownload".into(),
            action: AttachmentAction::Block,
        });
        Self {
            enabled: false,
            rules,
            forward_original: None,
            forward_filtered: None,
            warn_sender: false,
        }
    }
}

/// Antivirus and attachment-filter settings, the MetaStore document
/// `server_setting/antivirus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntivirusSettings {
    /// Scan with clamd (off by default: Keel bundles no engine).
    pub enabled: bool,
    /// clamd address: `host:port`, or a Unix socket path starting with `/`.
    pub address: String,
    /// Timeout of each step of a scan, in seconds.
    pub timeout_secs: u64,
    /// Largest part sent (clamd's `StreamMaxLength`, 25 MB by default there).
    pub max_stream: usize,
    /// Action on a virus.
    pub on_virus: VirusAction,
    /// Action on a part that cannot be scanned.
    pub on_unscannable: UnscannableAction,
    /// "Forward the original message to administrator address".
    pub forward_original: Option<String>,
    /// "Forward the filtered message to administrator address".
    pub forward_filtered: Option<String>,
    /// Notify the sender, only when local or authenticated (no backscatter).
    pub notify_sender: bool,
    /// The attachment filter.
    pub attachments: AttachmentSettings,
    /// How far the spam rating, the attachment filter and the antivirus examine a
    /// message's structure (issue 6: a hostile message never crashes the pipeline);
    /// beyond them a message is "cannot be scanned" (guide §14.4).
    pub message_limits: MessageLimits,
}

impl Default for AntivirusSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "127.0.0.1:3310".into(),
            timeout_secs: 30,
            max_stream: 25 * 1024 * 1024,
            on_virus: VirusAction::Discard,
            on_unscannable: UnscannableAction::DeliverWithWarning,
            forward_original: None,
            forward_filtered: None,
            notify_sender: false,
            attachments: AttachmentSettings::default(),
            message_limits: MessageLimits::default(),
        }
    }
}

/// Reads the antivirus settings (defaults when never saved).
pub fn load_antivirus_settings(meta: &dyn MetaStore) -> StoreResult<AntivirusSettings> {
    match meta.get_doc(SETTINGS_KIND, ANTIVIRUS_KEY)? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{SETTINGS_KIND}/{ANTIVIRUS_KEY}: {e}"))),
        None => Ok(AntivirusSettings::default()),
    }
}

/// Saves the settings without checking the scanner (tests, and the attachment filter
/// alone while the antivirus is off).
pub fn save_antivirus_settings(meta: &dyn MetaStore, s: &AntivirusSettings) -> StoreResult<()> {
    let body = serde_json::to_value(s)
        .map_err(|e| StoreError::Backend(format!("encoding antivirus settings: {e}")))?;
    meta.transact(&mut |tx| tx.put(SETTINGS_KIND, ANTIVIRUS_KEY, "", &body).map(|_| ()))
}

/// Why settings were not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The scanner does not work (requirements-2 §14.2).
    #[error("the antivirus control is not functional: {0}")]
    Scanner(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// requirements-2 §14.2: with the antivirus on, the configured scanner must detect the
/// EICAR test string.
pub async fn validate_antivirus_settings(s: &AntivirusSettings) -> Result<(), String> {
    if !s.enabled {
        return Ok(());
    }
    match ClamdScanner::from_settings(s).scan(EICAR.as_bytes()).await {
        Ok(ScanResult::Infected(_)) => Ok(()),
        Ok(other) => Err(format!("the scanner did not detect EICAR ({other:?})")),
        Err(e) => Err(e.to_string()),
    }
}

/// Validates, then saves; an Error-log line is the caller's (it has the logs).
pub async fn save_antivirus_settings_checked(
    meta: &dyn MetaStore,
    s: &AntivirusSettings,
) -> Result<(), SaveError> {
    validate_antivirus_settings(s)
        .await
        .map_err(SaveError::Scanner)?;
    save_antivirus_settings(meta, s)?;
    Ok(())
}

/// A clamd answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// Nothing found.
    Clean,
    /// A virus, with the name clamd reported.
    Infected(String),
    /// Cannot be scanned (module notes), with the reason.
    Unscannable(String),
}

/// The scanner is unavailable (fail-closed, module notes).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Connecting, writing or reading failed.
    #[error("clamd at {0}: {1}")]
    Io(String, std::io::Error),
    /// A step took longer than the timeout.
    #[error("clamd at {0}: timed out")]
    Timeout(String),
    /// clamd answered something unexpected.
    #[error("clamd at {0}: unexpected reply {1:?}")]
    Protocol(String, String),
}

/// A clamd client (module notes).
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    address: String,
    timeout: Duration,
    max_stream: usize,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl ClamdScanner {
    /// A client of `address` (`host:port` or a Unix socket path).
    pub fn new(address: &str, timeout: Duration, max_stream: usize) -> Self {
        Self {
            address: address.to_owned(),
            timeout,
            max_stream,
        }
    }

    /// The client the settings describe.
    pub fn from_settings(s: &AntivirusSettings) -> Self {
        Self::new(
            &s.address,
            Duration::from_secs(s.timeout_secs.max(1)),
            s.max_stream,
        )
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, ScanError> {
        let io = |e| ScanError::Io(self.address.clone(), e);
        let fut = async {
            if self.address.starts_with('/') {
                #[cfg(unix)]
                {
                    let s = tokio::net::UnixStream::connect(PathBuf::from(&self.address))
                        .await
                        .map_err(io)?;
                    return Ok(Box::new(s) as Box<dyn Stream>);
                }
                #[cfg(not(unix))]
                return Err(io(std::io::Error::other("Unix sockets are not supported")));
            }
            let s = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(io)?;
            Ok(Box::new(s) as Box<dyn Stream>)
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ScanError::Timeout(self.address.clone()))?
    }

    async fn step<T>(&self, f: impl Future<Output = std::io::Result<T>>) -> Result<T, ScanError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ScanError::Io(self.address.clone(), e)),
            Err(_) => Err(ScanError::Timeout(self.address.clone())),
        }
    }

    async fn reply(&self, s: &mut Box<dyn Stream>) -> Result<String, ScanError> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let n = self.step(s.read(&mut chunk)).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.contains(&0) || buf.len() >= MAX_REPLY {
                break;
            }
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end.min(MAX_REPLY)])
            .trim()
            .to_owned())
    }

    /// `zPING`; `Ok` when clamd answers `PONG`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut s = self.connect().await?;
        self.step(s.write_all(b"zPING\0")).await?;
        let r = self.reply(&mut s).await?;
        if r == "PONG" {
            Ok(())
        } else {
            Err(ScanError::Protocol(self.address.clone(), r))
        }
    }

    /// Scans `data` with `zINSTREAM` (module notes).
    pub async fn scan(&self, data: &[u8]) -> Result<ScanResult, ScanError> {
        if self.max_stream > 0 && data.len() > self.max_stream {
            return Ok(ScanResult::Unscannable(format!(
                "larger than the stream limit of {} bytes",
                self.max_stream
            )));
        }
        let mut s = self.connect().await?;
        self.step(s.write_all(b"zINSTREAM\0")).await?;
        for chunk in data.chunks(CHUNK) {
            let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes();
            self.step(s.write_all(&len)).await?;
            self.step(s.write_all(chunk)).await?;
        }
        self.step(s.write_all(&[0, 0, 0, 0])).await?;
        self.step(s.flush()).await?;
        let r = self.reply(&mut s).await?;
        parse_reply(&self.address, &r)
    }
}

fn parse_reply(address: &str, r: &str) -> Result<ScanResult, ScanError> {
    let body = r.strip_prefix("stream:").unwrap_or(r).trim();
    if body == "OK" {
        return Ok(ScanResult::Clean);
    }
    if let Some(name) = body.strip_suffix("FOUND") {
        let name = name.trim().to_owned();
        if name.starts_with("Heuristics.Encrypted") || name.starts_with("Heuristics.Limits") {
            return Ok(ScanResult::Unscannable(name));
        }
        return Ok(ScanResult::Infected(name));
    }
    if body.contains("size limit exceeded") {
        return Ok(ScanResult::Unscannable("stream size limit exceeded".into()));
    }
    Err(ScanError::Protocol(address.to_owned(), r.to_owned()))
}

/// Wildcard match, case-insensitive, `*` and `?` (iterative, linear backtracking).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// An attachment the filter blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAttachment {
    /// File name (empty when none).
    pub name: String,
    /// MIME type.
    pub mime: String,
}

/// The result of [`ContentFilter::check`].
#[derive(Debug, Clone, Default)]
pub struct ContentVerdict {
    /// Attachments blocked by the attachment filter (removed from `message`).
    pub blocked: Vec<BlockedAttachment>,
    /// Viruses found, by name.
    pub viruses: Vec<String>,
    /// Parts that could not be scanned, with the reason.
    pub unscannable: Vec<String>,
    /// Refuse the message (virus with [`VirusAction::Discard`]).
    pub reject: bool,
    /// The message to deliver (filtered); equal to the input when nothing changed.
    pub message: Vec<u8>,
    /// Whether `message` differs from the input.
    pub modified: bool,
    /// Parts examined that had a file name (statistics, §14.6 "attachments checked").
    pub attachments_checked: usize,
}

impl ContentVerdict {
    /// Whether anything was found.
    pub fn found(&self) -> bool {
        !self.blocked.is_empty() || !self.viruses.is_empty() || !self.unscannable.is_empty()
    }
}

/// The attachment filter and the antivirus over one settings snapshot.
#[derive(Debug, Clone)]
pub struct ContentFilter {
    settings: AntivirusSettings,
    limits: MessageLimits,
    logs: Option<Logs>,
}

impl ContentFilter {
    /// A filter with these settings and their [`MessageLimits`].
    pub fn new(settings: AntivirusSettings) -> Self {
        Self {
            limits: settings.message_limits,
            settings,
            logs: None,
        }
    }

    /// Replaces the structural limits.
    pub fn with_limits(mut self, limits: MessageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Writes a Warning-log line for each message that cannot be examined or scanned.
    pub fn with_logs(mut self, logs: Logs) -> Self {
        self.logs = Some(logs);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AntivirusSettings {
        &self.settings
    }

    /// Whether anything is switched on.
    pub fn active(&self) -> bool {
        self.settings.enabled || self.settings.attachments.enabled
    }

    fn attachment_rule(&self, name: Option<&str>, mime: &str) -> Option<AttachmentAction> {
        self.settings
            .attachments
            .rules
            .iter()
            .filter(|r| r.enabled)
            .find(|r| match r.kind {
                AttachmentMatch::FileName => name.is_some_and(|n| wildcard(&r.pattern, n)),
                AttachmentMatch::MimeType => wildcard(&r.pattern, mime),
            })
            .map(|r| r.action)
    }

    /// Runs the attachment filter, then the antivirus (module notes). `Err` only when
    /// the scanner is unavailable: the message must then not be accepted.
    pub async fn check(&self, raw: &[u8]) -> Result<ContentVerdict, ScanError> {
        let mut v = ContentVerdict {
            message: raw.to_vec(),
            ..ContentVerdict::default()
        };
        if !self.active() {
            return Ok(v);
        }
        let parsed: Parts = mime::parts_with(raw, &self.limits);
        let mut removals: Vec<(usize, String)> = Vec::new();
        v.attachments_checked = parsed.parts.iter().filter(|p| p.name.is_some()).count();
        // Module notes: a structure past the limits, or one mail-parser rejected, cannot
        // be examined by either filter.
        if let Some(hit) = parsed.limit {
            v.unscannable
                .push(format!("the MIME structure was not examined: {hit}"));
        } else if parsed.truncated {
            v.unscannable
                .push("the MIME structure could not be examined".into());
        }
        // guide §14.5: first enabled matching rule decides; Accept wins over later rules.
        if self.settings.attachments.enabled {
            for (i, p) in parsed.parts.iter().enumerate() {
                match self.attachment_rule(p.name.as_deref(), &p.mime) {
                    Some(AttachmentAction::Block) => {
                        let name = p.name.clone().unwrap_or_default();
                        removals.push((
                            i,
                            format!(
                                "The attachment \"{name}\" ({}) was removed by the attachment filter.",
                                p.mime
                            ),
                        ));
                        v.blocked.push(BlockedAttachment {
                            name,
                            mime: p.mime.clone(),
                        });
                    }
                    Some(AttachmentAction::Accept) | None => {}
                }
            }
        }
        if self.settings.enabled {
            let scanner = ClamdScanner::from_settings(&self.settings);
            for (i, p) in parsed.parts.iter().enumerate() {
                if removals.iter().any(|(r, _)| *r == i) {
                    continue;
                }
                if p.corrupt {
                    v.unscannable.push(format!(
                        "part {} is badly encoded",
                        p.name.as_deref().unwrap_or(&p.mime)
                    ));
                }
                match scanner.scan(&p.contents).await? {
                    ScanResult::Clean => {}
                    ScanResult::Infected(name) => {
                        removals.push((
                            i,
                            format!(
                                "The attachment \"{}\" was removed: it contained the virus {name}.",
                                p.name.as_deref().unwrap_or(&p.mime)
                            ),
                        ));
                        v.viruses.push(name);
                    }
                    ScanResult::Unscannable(why) => v.unscannable.push(why),
                }
            }
        }
        if !v.unscannable.is_empty() {
            match self.settings.on_unscannable {
                UnscannableAction::TreatAsVirus => {
                    v.viruses.push("Unscannable".into());
                }
                UnscannableAction::DeliverWithWarning => {}
            }
        }
        if !v.viruses.is_empty() && self.settings.on_virus == VirusAction::Discard {
            v.reject = true;
        }
        if !removals.is_empty() {
            v.message = mime::remove_parts(raw, &parsed, &removals);
            v.modified = true;
        }
        if !v.unscannable.is_empty() {
            self.log_unscannable(raw, &v);
        }
        if !v.unscannable.is_empty()
            && self.settings.on_unscannable == UnscannableAction::DeliverWithWarning
        {
            // guide §14.4: "deliver the original message with a prepended warning".
            let mut out = format!(
                "X-Keel-Antivirus: not scanned ({})\r\n",
                v.unscannable
                    .iter()
                    .map(|s| s.replace(['\r', '\n'], " "))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
            .into_bytes();
            out.extend_from_slice(&v.message);
            v.message = out;
            v.modified = true;
        }
        Ok(v)
    }
}

impl ContentFilter {
    /// One Warning-log line: what could not be examined and what happens to the message.
    fn log_unscannable(&self, raw: &[u8], v: &ContentVerdict) {
        let Some(logs) = &self.logs else {
            return;
        };
        let view = crate::message::MessageView::new(raw, 0);
        let id: String = view
            .header("Message-ID")
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(200)
            .collect();
        let fate = if v.reject {
            "refused"
        } else if self.settings.on_unscannable == UnscannableAction::DeliverWithWarning {
            "delivered with a warning"
        } else {
            "delivered"
        };
        logs.warning(&format!(
            "Content filter: message {id} ({} bytes) cannot be scanned: {}; {fate}",
            raw.len(),
            v.unscannable.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.exe", "Setup.EXE"));
        assert!(!wildcard("*.exe", "setup.exe.txt"));
        assert!(wildcard("application/*", "application/zip"));
        assert!(wildcard("a?c", "abc"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("*.com", "readme.txt"));
        assert!(!wildcard("*a*a*a*a*b", &"a".repeat(3000)));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply("x", "stream: OK").unwrap(), ScanResult::Clean);
        assert_eq!(
            parse_reply("x", "stream: Eicar-Signature FOUND").unwrap(),
            ScanResult::Infected("Eicar-Signature".into())
        );
        assert!(matches!(
            parse_reply("x", "stream: Heuristics.Encrypted.Zip FOUND").unwrap(),
            ScanResult::Unscannable(_)
        ));
        assert!(matches!(
            parse_reply("x", "INSTREAM size limit exceeded. ERROR").unwrap(),
            ScanResult::Unscannable(_)
        ));
        assert!(parse_reply("x", "garbage").is_err());
    }

    #[test]
    fn predefined_rules_present_but_disabled() {
        let s = AttachmentSettings::default();
        assert!(!s.enabled);
        assert!(s.rules.len() >= 14);
        assert!(s.rules.iter().all(|r| !r.enabled));
        assert!(s.rules.iter().any(|r| r.pattern == "*.exe"));
        assert!(s.rules.iter().any(|r| r.pattern == "*.vbs"));
    }
}
