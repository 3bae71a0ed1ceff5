//! Sender whitelists and blacklists per server, per domain and per user (issue 6 §2).
//!
//! Implementation notes:
//! - Each list is a MetaStore document of kind [`SENDER_LIST_KIND`], key `server`,
//!   `domain:<domain>` or `user:<address>` (lower case), holding `allow` and `block`
//!   entries. An entry is an address (`boss@example.com`), a pattern with `*` and `?`
//!   (`*@*.example.net`, guide §12.3 wildcards) or a bare domain (`example.org`, short
//!   for `*@example.org`); matching ignores case.
//! - Precedence: the user's list over the recipient domain's over the server's. The first
//!   level with a matching entry decides; lower levels are not consulted. Within one
//!   level the most specific matching entry wins (most characters that are not
//!   wildcards), and on a tie `block` wins.
//! - What a decision does is the caller's (the SMTP session): see [`SenderDecision`].
//!   The envelope sender can be forged, so an allow should be honoured only when SPF or
//!   DKIM/DMARC passed for the sender's domain, or for authenticated senders; a block
//!   needs no such check.

use keel_store::{MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::antivirus::wildcard;

/// MetaStore document kind of the sender lists.
pub const SENDER_LIST_KIND: &str = "sender_list";

/// Which list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    /// Applies to every recipient.
    Server,
    /// Applies to recipients in this domain.
    Domain(String),
    /// Applies to this recipient (a local address).
    User(String),
}

impl ListScope {
    /// The document key.
    pub fn key(&self) -> String {
        match self {
            Self::Server => "server".to_owned(),
            Self::Domain(d) => format!("domain:{}", d.trim().to_ascii_lowercase()),
            Self::User(u) => format!("user:{}", u.trim().to_ascii_lowercase()),
        }
    }
}

/// One level's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderLists {
    /// Whitelisted senders: the message is treated as non-spam.
    pub allow: Vec<String>,
    /// Blacklisted senders: the recipient is refused.
    pub block: Vec<String>,
}

/// The outcome for one sender and recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderDecision {
    /// No list matched: rate the message as usual.
    None,
    /// Whitelisted: the session treats the message as non-spam for this recipient
    /// (score 0, like a custom rule's "treat as non-spam", guide §13.3); tests that
    /// reject outright still reject.
    Allow {
        /// The level that decided.
        scope: ListScope,
        /// The entry that matched.
        entry: String,
    },
    /// Blacklisted: the session refuses this recipient at RCPT with `550 5.7.1`.
    Block {
        /// The level that decided.
        scope: ListScope,
        /// The entry that matched.
        entry: String,
    },
}

/// An entry as a pattern over the whole address.
fn pattern_of(entry: &str) -> String {
    let e = entry.trim();
    if e.contains('@') {
        e.to_owned()
    } else {
        format!("*@{e}")
    }
}

fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| !matches!(c, '*' | '?')).count()
}

impl SenderLists {
    /// Whether the lists have no entries.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.block.is_empty()
    }

    /// The best matching entry of this level (module notes): `Some((block, entry))`.
    fn best(&self, sender: &str) -> Option<(bool, &str)> {
        let mut best: Option<(usize, bool, &str)> = None;
        for (block, list) in [(true, &self.block), (false, &self.allow)] {
            for e in list.iter().filter(|e| !e.trim().is_empty()) {
                let p = pattern_of(e);
                if !wildcard(&p, sender) {
                    continue;
                }
                let s = specificity(&p);
                // Blocks are visited first, so a tie keeps the block.
                if best.is_none_or(|(bs, _, _)| s > bs) {
                    best = Some((s, block, e.as_str()));
                }
            }
        }
        best.map(|(_, b, e)| (b, e))
    }
}

/// Decides with the three levels already loaded (module notes). `sender` is a bare
/// address; an empty sender (`<>`, bounces) is never listed.
pub fn decide(sender: &str, levels: &[(ListScope, &SenderLists)]) -> SenderDecision {
    let sender = sender.trim().trim_matches(['<', '>']);
    if sender.is_empty() {
        return SenderDecision::None;
    }
    for (scope, lists) in levels {
        if let Some((block, entry)) = lists.best(sender) {
            let (scope, entry) = (scope.clone(), entry.to_owned());
            return if block {
                SenderDecision::Block { scope, entry }
            } else {
                SenderDecision::Allow { scope, entry }
            };
        }
    }
    SenderDecision::None
}

/// Reads one level (empty when never saved).
pub fn load_sender_lists(meta: &dyn MetaStore, scope: &ListScope) -> StoreResult<SenderLists> {
    let key = scope.key();
    match meta.get_doc(SENDER_LIST_KIND, &key)? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{SENDER_LIST_KIND}/{key}: {e}"))),
        None => Ok(SenderLists::default()),
    }
}

/// Saves one level.
pub fn save_sender_lists(
    meta: &dyn MetaStore,
    scope: &ListScope,
    lists: &SenderLists,
) -> StoreResult<()> {
    let body = serde_json::to_value(lists)
        .map_err(|e| StoreError::Backend(format!("encoding sender lists: {e}")))?;
    let key = scope.key();
    meta.transact(&mut |tx| tx.put(SENDER_LIST_KIND, &key, "", &body).map(|_| ()))
}

/// The decision for `sender` writing to the local recipient `rcpt` (its resolved
/// address): the user's list, then its domain's, then the server's (module notes). The
/// call the SMTP session makes at RCPT (block) and at the end of DATA (allow).
pub fn sender_decision(
    meta: &dyn MetaStore,
    sender: &str,
    rcpt: &str,
) -> StoreResult<SenderDecision> {
    let rcpt = rcpt.trim().trim_matches(['<', '>']).to_ascii_lowercase();
    let mut scopes = vec![ListScope::User(rcpt.clone())];
    if let Some((_, domain)) = rcpt.rsplit_once('@') {
        scopes.push(ListScope::Domain(domain.to_owned()));
    }
    scopes.push(ListScope::Server);
    let mut loaded = Vec::with_capacity(scopes.len());
    for s in scopes {
        let l = load_sender_lists(meta, &s)?;
        loaded.push((s, l));
    }
    let levels: Vec<(ListScope, &SenderLists)> =
        loaded.iter().map(|(s, l)| (s.clone(), l)).collect();
    Ok(decide(sender, &levels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(allow: &[&str], block: &[&str]) -> SenderLists {
        SenderLists {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            block: block.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn user() -> ListScope {
        ListScope::User("alice@example.com".into())
    }
    fn domain() -> ListScope {
        ListScope::Domain("example.com".into())
    }

    #[test]
    fn user_over_domain_over_server() {
        let server = lists(&[], &["*@spam.example", "newsletter@*"]);
        let dom = lists(&["*@spam.example"], &["*@partner.example"]);
        let usr = lists(&["*@partner.example"], &[]);
        let levels = [
            (user(), &usr),
            (domain(), &dom),
            (ListScope::Server, &server),
        ];
        // The domain allows what the server blocks.
        assert!(matches!(
            decide("x@spam.example", &levels),
            SenderDecision::Allow {
                scope: ListScope::Domain(_),
                ..
            }
        ));
        // The user allows what the domain blocks.
        assert!(matches!(
            decide("Bob@Partner.Example", &levels),
            SenderDecision::Allow {
                scope: ListScope::User(_),
                ..
            }
        ));
        // Only the server has an entry.
        assert!(matches!(
            decide("newsletter@shop.example", &levels),
            SenderDecision::Block {
                scope: ListScope::Server,
                ..
            }
        ));
        assert_eq!(decide("friend@else.example", &levels), SenderDecision::None);
        // Bounces are never listed.
        assert_eq!(decide("", &levels), SenderDecision::None);
        assert_eq!(decide("<>", &levels), SenderDecision::None);
    }

    #[test]
    fn within_a_level_the_most_specific_entry_wins_and_ties_block() {
        let l = lists(&["boss@bad.example"], &["bad.example"]);
        let levels = [(ListScope::Server, &l)];
        assert_eq!(
            decide("boss@bad.example", &levels),
            SenderDecision::Allow {
                scope: ListScope::Server,
                entry: "boss@bad.example".into()
            }
        );
        assert_eq!(
            decide("other@bad.example", &levels),
            SenderDecision::Block {
                scope: ListScope::Server,
                entry: "bad.example".into()
            }
        );
        let tie = lists(&["*@x.example"], &["*@x.example"]);
        assert!(matches!(
            decide("a@x.example", &[(ListScope::Server, &tie)]),
            SenderDecision::Block { .. }
        ));
    }

    #[test]
    fn stored_per_scope_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let meta = keel_store::sqlite::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        save_sender_lists(&meta, &ListScope::Server, &lists(&[], &["*@bad.example"])).unwrap();
        save_sender_lists(
            &meta,
            &ListScope::User("Alice@Example.com".into()),
            &lists(&["friend@bad.example"], &[]),
        )
        .unwrap();
        assert!(matches!(
            sender_decision(&meta, "friend@bad.example", "alice@example.com").unwrap(),
            SenderDecision::Allow {
                scope: ListScope::User(_),
                ..
            }
        ));
        assert!(matches!(
            sender_decision(&meta, "friend@bad.example", "bob@example.com").unwrap(),
            SenderDecision::Block {
                scope: ListScope::Server,
                ..
            }
        ));
        assert_eq!(
            sender_decision(&meta, "a@good.example", "bob@example.com").unwrap(),
            SenderDecision::None
        );
        assert_eq!(
            load_sender_lists(&meta, &ListScope::Domain("none.example".into())).unwrap(),
            SenderLists::default()
        );
    }
}
