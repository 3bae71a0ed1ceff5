//! Antispam settings (guide §13.1–§13.5, §13.7), stored as the MetaStore document
//! `server_setting` / `antispam` and read per SMTP session, so a change applies to the next
//! session without a restart.
//!
//! Defaults follow the recommended configuration of guide §13.7: rating on, trusted relays
//! not rated, tag 5.0, block 9.9, every Internet blacklist +2 without blocking, SPF +3,
//! custom blacklist +3. The Internet lists shipped as defaults are lists that still operate
//! (requirements-1 §13.2: no DSBL, no SORBS).

use std::net::SocketAddr;

use keel_store::{MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::bayes::BayesSettings;
use crate::rules::CustomRule;

/// MetaStore document kind of server settings (shared with the SMTP settings).
pub const SETTINGS_KIND: &str = "server_setting";
/// Document key of the antispam settings.
pub const SETTINGS_KEY: &str = "antispam";

/// Highest block score that blocks (guide §13.1 "Maximum 9.9").
pub const MAX_BLOCK_SCORE: f64 = 9.9;
/// A block score of 10 means "never block, only tag" (guide §13.1).
pub const NEVER_BLOCK: f64 = 10.0;

/// What a test does when it hits (guide §13.2, §13.5: "block" or "add score").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitAction {
    /// Only log (guide §13.5 "only log to Security log").
    None,
    /// Reject at SMTP level (5xx).
    Reject,
    /// Add this value to the spam score.
    Score(f64),
}

/// One DNS blacklist zone (guide §13.2 "Internet DNS blacklists") or URI blacklist zone
/// (guide §13.4 SURBL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsList {
    /// DNS suffix, e.g. `zen.spamhaus.org`.
    pub zone: String,
    /// Free text shown to the admin and in the Security log.
    #[serde(default)]
    pub description: String,
    /// What a listing does.
    pub action: HitAction,
    /// Whether the list is queried.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Return-code filter: only these answers count as a listing (empty = any answer in
    /// 127.0.0.0/8 except the 127.255.255.0/24 error codes).
    #[serde(default)]
    pub codes: Vec<std::net::Ipv4Addr>,
}

fn yes() -> bool {
    true
}

/// SPF (guide §13.5, RFC 7208).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpfSettings {
    /// Check SPF of MAIL FROM (and HELO, RFC 7208 §2.3).
    pub enabled: bool,
    /// Action on `fail` (guide §13.7: +3).
    pub action: HitAction,
    /// Score added on `softfail` (requirements-1 §13.5 "offer softfail settings").
    pub softfail_score: f64,
    /// "Don't check SPF from IP group" (backup MX servers).
    pub skip_group: Option<String>,
}

impl Default for SpfSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            action: HitAction::Score(3.0),
            softfail_score: 1.0,
            skip_group: None,
        }
    }
}

/// DKIM verification (RFC 6376) of received mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimVerifySettings {
    /// Verify DKIM signatures.
    pub enabled: bool,
    /// Score added when a signature is present but fails (RFC 6376 §6.1: a failed
    /// signature counts as no signature, so the penalty is small).
    pub score_on_fail: f64,
}

impl Default for DkimVerifySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            score_on_fail: 1.0,
        }
    }
}

/// DMARC (RFC 7489), in place of the obsolete Caller ID (requirements-1 §13.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmarcSettings {
    /// Evaluate DMARC.
    pub enabled: bool,
    /// Honour `p=reject`: a failing message is rejected at DATA (RFC 7489 §6.3). When off
    /// it gets [`Self::quarantine_score`] instead.
    pub honour_reject: bool,
    /// Score added for a failing message under `p=quarantine` (and `p=reject` when not
    /// honoured).
    pub quarantine_score: f64,
}

impl Default for DmarcSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            honour_reject: true,
            quarantine_score: 3.0,
        }
    }
}

/// Key type of generated DKIM signing keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    /// RSA-2048 with SHA-256 (RFC 6376, RFC 8301): verified everywhere.
    #[default]
    Rsa,
    /// Ed25519-SHA256 (RFC 8463): short keys, not yet verified by every receiver.
    Ed25519,
}

/// DKIM signing of outgoing mail (RFC 6376 §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimSignSettings {
    /// Sign mail of authenticated local senders to remote recipients.
    pub enabled: bool,
    /// Selector of keys generated on demand.
    pub selector: String,
    /// Key type of keys generated on demand.
    pub algorithm: DkimAlgorithm,
}

impl Default for DkimSignSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            selector: "keel".into(),
            algorithm: DkimAlgorithm::Rsa,
        }
    }
}

/// The antispam settings (guide ch. 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamSettings {
    // --- Spam Rating (guide §13.1) ---
    /// "Enable Spam Filter Rating". When off, messages are still rated (the header is
    /// written) but scores are ignored: only tests set to reject take effect.
    pub enabled: bool,
    /// "Enable rating of messages received from trustworthy relay agents" (relay group and
    /// authenticated users). Recommended off (guide §13.7).
    pub rate_trusted: bool,
    /// Tag score: at or above it `X-Spam-Flag: YES` and the subject prefix (5.0).
    pub tag_score: f64,
    /// Block score: at or above it the message is rejected at DATA. At most 9.9; 10 means
    /// never block (see [`SpamSettings::effective_block_score`]).
    pub block_score: f64,
    /// Subject prefix of tagged mail; `[%s]` inserts the score as a row of asterisks
    /// (guide §13.1). `None` = the subject is left alone.
    pub subject_prefix: Option<String>,
    /// Forward a copy of blocked mail to this address (guide §13.1 quarantine).
    pub quarantine_address: Option<String>,
    /// Content tests look at the first this many bytes (guide §13.4: 128 KB).
    pub max_scan_bytes: usize,
    /// File tagged mail into the recipient's `Junk E-mail` folder instead of the INBOX
    /// (guide §13.1, §13.4 "a rule that files tagged spam into Junk"). On by default.
    pub junk_folder: bool,
    /// The Bayes classifier (guide §13.4).
    pub bayes: BayesSettings,

    // --- Blacklists (guide §13.2) ---
    /// "Whitelist of trusted IPs": DNS blacklists are skipped for this group.
    pub whitelist_group: Option<String>,
    /// "Custom blacklist" IP group; checked even for whitelisted IPs.
    pub blacklist_group: Option<String>,
    /// Action of the custom blacklist (guide §13.7: +3).
    pub blacklist_action: HitAction,
    /// Internet DNS blacklists queried with the client IP.
    pub dnsbl: Vec<DnsList>,
    /// URI blacklists queried with the domains of links in the body (guide §13.4 SURBL).
    pub uribl: Vec<DnsList>,
    /// The private and loopback ranges are on the whitelist automatically (guide §13.2).
    /// Only test laboratories switch this off.
    pub exempt_private_ranges: bool,
    /// Clients on loopback are local software: the DNS-based tests (SPF, DKIM, DMARC,
    /// URIBL) are skipped for them, as pyspf's policy daemon skips 127.0.0.0/8 by
    /// default. Content tests still apply. Only test laboratories switch this off.
    pub exempt_loopback: bool,
    /// Nameserver for all filter lookups (`ip:port`); `None` = the system resolver.
    /// Spamhaus refuses queries from public resolvers, so a local recursive resolver is
    /// the usual choice here.
    pub dns_server: Option<SocketAddr>,

    // --- Custom rules (guide §13.3) ---
    /// Ordered rules; see [`crate::rules`] for the envelope/header split.
    pub rules: Vec<CustomRule>,

    // --- Email policy records (guide §13.5) and DKIM ---
    /// SPF.
    pub spf: SpfSettings,
    /// DKIM verification.
    pub dkim: DkimVerifySettings,
    /// DMARC.
    pub dmarc: DmarcSettings,
    /// DKIM signing.
    pub dkim_sign: DkimSignSettings,
}

impl Default for SpamSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_trusted: false,
            tag_score: 5.0,
            block_score: MAX_BLOCK_SCORE,
            subject_prefix: Some("**SPAM**".into()),
            quarantine_address: None,
            max_scan_bytes: 128 * 1024,
            junk_folder: true,
            bayes: BayesSettings::default(),
            whitelist_group: None,
            blacklist_group: None,
            blacklist_action: HitAction::Score(3.0),
            dnsbl: vec![
                DnsList {
                    zone: "zen.spamhaus.org".into(),
                    description: "Spamhaus ZEN (SBL, XBL, PBL; usage terms apply)".into(),
                    action: HitAction::Score(2.0),
                    enabled: true,
                    codes: Vec::new(),
                },
                DnsList {
                    zone: "bl.spamcop.net".into(),
                    description: "SpamCop".into(),
                    action: HitAction::Score(2.0),
                    enabled: true,
                    codes: Vec::new(),
                },
            ],
            uribl: vec![
                DnsList {
                    zone: "dbl.spamhaus.org".into(),
                    description: "Spamhaus Domain Block List".into(),
                    action: HitAction::Score(2.0),
                    enabled: true,
                    codes: Vec::new(),
                },
                DnsList {
                    zone: "multi.surbl.org".into(),
                    description: "SURBL".into(),
                    action: HitAction::Score(2.0),
                    enabled: true,
                    codes: Vec::new(),
                },
            ],
            exempt_private_ranges: true,
            exempt_loopback: true,
            dns_server: None,
            rules: Vec::new(),
            spf: SpfSettings::default(),
            dkim: DkimVerifySettings::default(),
            dmarc: DmarcSettings::default(),
            dkim_sign: DkimSignSettings::default(),
        }
    }
}

impl SpamSettings {
    /// The block score in force: clamped to at most 9.9, except that 10 or more means
    /// never block (guide §13.1); `None` = never block.
    pub fn effective_block_score(&self) -> Option<f64> {
        if self.block_score.is_nan() || self.block_score >= NEVER_BLOCK {
            None
        } else {
            Some(self.block_score.min(MAX_BLOCK_SCORE))
        }
    }
}

/// Reads the antispam settings (defaults when never saved).
pub fn load_spam_settings(meta: &dyn MetaStore) -> StoreResult<SpamSettings> {
    match meta.get_doc(SETTINGS_KIND, SETTINGS_KEY)? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{SETTINGS_KIND}/{SETTINGS_KEY}: {e}"))),
        None => Ok(SpamSettings::default()),
    }
}

/// Saves the antispam settings.
pub fn save_spam_settings(meta: &dyn MetaStore, settings: &SpamSettings) -> StoreResult<()> {
    let body = serde_json::to_value(settings)
        .map_err(|e| StoreError::Backend(format!("encoding antispam settings: {e}")))?;
    meta.transact(&mut |tx| tx.put(SETTINGS_KIND, SETTINGS_KEY, "", &body).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_unknown_keys_and_block_clamp() {
        let s: SpamSettings = serde_json::from_str(r#"{"tag_score": 4.0}"#).unwrap();
        assert_eq!(s.tag_score, 4.0);
        assert_eq!(s.effective_block_score(), Some(9.9));
        assert!(serde_json::from_str::<SpamSettings>(r#"{"tag_scor": 4.0}"#).is_err());
        let mut s = SpamSettings {
            block_score: 12.0,
            ..SpamSettings::default()
        };
        assert_eq!(s.effective_block_score(), None);
        s.block_score = 10.0;
        assert_eq!(s.effective_block_score(), None);
        s.block_score = 9.95;
        assert_eq!(s.effective_block_score(), Some(9.9));
        let json = serde_json::to_string(&SpamSettings::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<SpamSettings>(&json).unwrap(),
            SpamSettings::default()
        );
    }
}
