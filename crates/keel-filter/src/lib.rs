//! Keel content filtering (issue 6, first part): spam rating (guide §13.1), DNS and URI
//! blacklists (§13.2, §13.4), custom rules (§13.3), SPF/DKIM/DMARC (§13.5, RFC 7208,
//! RFC 6376, RFC 7489) with `Authentication-Results` (RFC 8601), and DKIM signing of
//! outgoing mail.
//!
//! Implementation notes:
//! - [`SpamSettings`] is the MetaStore document `server_setting/antispam`, read per SMTP
//!   session by the caller and handed to a [`Scorer`]; nothing is cached across sessions.
//! - [`Scorer::score`] is async (DNS) and never blocks the runtime: all CPU work is
//!   bounded by `max_scan_bytes` and the limits in [`message`]; DKIM canonicalisation of
//!   a large message is linear.
//! - Pipeline position (DESIGN §3): envelope rules at MAIL/RCPT
//!   ([`Scorer::check_mail_from`], [`Scorer::check_rcpt`]), then at the end of DATA the
//!   full score ([`Scorer::score`]); a reject is a 5xx reply before the `250`, never a
//!   bounce. After acceptance the queue phases (attachments, antivirus) come later and
//!   are not here yet.
//! - Authenticated senders and the trusted relay group skip the rating (requirements-1
//!   §0.2, guide §13.1 "rating of trustworthy relay agents" recommended off) and SPF
//!   (guide §13.5), unless `rate_trusted` is on; the custom IP blacklist still applies to
//!   everyone except authenticated users (guide §13.2).
//! - The mail-auth crate is used only inside [`auth`].
//! - Hostile input (issue 6 tests): [`limits::MessageLimits`] bounds the MIME depth, the
//!   parts and the header bytes examined; [`mime::structure`] checks them in one linear
//!   pass before mail-parser runs, so no message can exhaust the stack or the CPU.
//! - Sender whitelists and blacklists per server, domain and user: [`senderlists`]
//!   (user over domain over server), called by the SMTP session.

pub mod antivirus;
pub mod auth;
pub mod bayes;
pub mod dns;
pub mod limits;
pub mod message;
pub mod mime;
pub mod rules;
mod scorer;
pub mod senderlists;
pub mod settings;

pub use antivirus::{
    AntivirusSettings, ClamdScanner, ContentFilter, ContentVerdict, EICAR, ScanError, ScanResult,
    load_antivirus_settings, save_antivirus_settings, save_antivirus_settings_checked,
    validate_antivirus_settings,
};
pub use auth::sign::{DkimKey, dkim_key_for_signing, generate_dkim_key, load_dkim_key};
pub use auth::{AuthReport, AuthRequest, AuthResult, DmarcPolicy, EmailAuth};
pub use bayes::{Bayes, BayesSettings, BayesStatus, Learned};
pub use dns::FilterDns;
pub use limits::{LimitHit, MessageLimits};
pub use rules::{CustomRule, EnvelopeDecision, RuleAction, RuleField, RuleMatch};
pub use scorer::{Action, GTUBE, Rejection, ScanInput, Scorer, Verdict};
pub use senderlists::{
    ListScope, SenderDecision, SenderLists, load_sender_lists, save_sender_lists, sender_decision,
};
pub use settings::{
    DkimAlgorithm, DnsList, HitAction, SpamSettings, load_spam_settings, save_spam_settings,
};

/// Errors of the filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// DNS resolver construction or lookup failure.
    #[error("DNS: {0}")]
    Dns(String),
    /// Key generation, parsing or signing failure.
    #[error("DKIM: {0}")]
    Dkim(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
}
