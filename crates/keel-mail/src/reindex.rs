//! Reindex of a mailbox (issue 4 §2, requirements-3 §5.4: "the per-folder index is derived
//! data that can be rebuilt", online, keeping UIDVALIDITY, UIDs and flags).
//!
//! A message row holds one value derived from its bytes: `size` (RFC822.SIZE, the blob's
//! length). Everything else derived is kept per folder (`messages`, `unseen`, `bytes`,
//! `uid_next`, `highest_modseq`) or per account (quota usage, the modseq counter); IMAP's
//! header and SELECT caches are keyed by the immutable blob id and re-read the store, so
//! they need no rebuild. [`Mailboxes::reindex`] re-reads each message's blob outside any
//! transaction, then hands the sizes to [`MetaStore::reindex_folder`], which in one write
//! transaction per folder fixes the rows that still name that blob (new modseq and
//! change-log row each, so IMAP sessions see the change at their next command or IDLE
//! wake-up), rewrites the cached `\Seen` bit and the stored form of flag lists, and recounts
//! the folder from its rows; [`MetaStore::reindex_account`] then recounts the account's
//! usage. Deliveries and expunges made meanwhile are serialised with those transactions, so
//! the counters written are those of the rows at commit.
//!
//! A message whose blob is missing or damaged is left in place and listed in the report:
//! its bytes can only come back from a backup, and dropping the row would lose its UID and
//! flags.

use std::fmt;

use keel_store::{AccountReindex, BlobId, DerivedSize, FolderReindex, StoreError};

use crate::folders::canonical_name;
use crate::{MailError, MailResult, Mailboxes, account_key};

/// A message whose bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnreadableMessage {
    /// UID of the message (the row is kept).
    pub uid: u32,
    /// The blob it names.
    pub blob: String,
    /// `missing` (no such blob) or `damaged` (the bytes do not match the blob id).
    pub problem: &'static str,
}

/// What the reindex of one folder found and did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderReindexReport {
    /// The folder's name.
    pub name: String,
    /// Its UIDVALIDITY (never changed by a reindex).
    pub uid_validity: u32,
    /// Messages whose blob was read.
    pub messages_read: usize,
    /// Messages left in place whose blob is missing or damaged.
    pub unreadable: Vec<UnreadableMessage>,
    /// What the store rewrote.
    #[serde(flatten)]
    pub store: FolderReindex,
}

impl FolderReindexReport {
    /// Whether anything was rewritten.
    pub fn changed(&self) -> bool {
        !self.store.sizes_fixed.is_empty()
            || !self.store.flags_normalized.is_empty()
            || self.store.before != self.store.after
    }
}

/// What [`Mailboxes::reindex`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReindexReport {
    /// The account.
    pub account: String,
    /// The folders reindexed, by name.
    pub folders: Vec<FolderReindexReport>,
    /// Quota usage and modseq counter of the account, before and after.
    pub account_state: AccountReindex,
}

impl ReindexReport {
    /// Messages whose blob is missing or damaged, over every folder.
    pub fn unreadable(&self) -> usize {
        self.folders.iter().map(|f| f.unreadable.len()).sum()
    }
}

impl fmt::Display for ReindexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read: usize = self.folders.iter().map(|x| x.messages_read).sum();
        writeln!(
            f,
            "Reindexed {} folder(s) of {}: {read} message(s) read.",
            self.folders.len(),
            self.account
        )?;
        for fr in &self.folders {
            let (b, a) = (&fr.store.before, &fr.store.after);
            if fr.changed() {
                writeln!(
                    f,
                    "{} (UIDVALIDITY {}): {} size(s) fixed, {} flag list(s) rewritten; \
                     messages {} -> {}, unseen {} -> {}, bytes {} -> {}, UIDNEXT {} -> {}, \
                     HIGHESTMODSEQ {} -> {}",
                    fr.name,
                    fr.uid_validity,
                    fr.store.sizes_fixed.len(),
                    fr.store.flags_normalized.len(),
                    b.messages,
                    a.messages,
                    b.unseen,
                    a.unseen,
                    b.bytes,
                    a.bytes,
                    b.uid_next,
                    a.uid_next,
                    b.highest_modseq,
                    a.highest_modseq
                )?;
            }
            for u in &fr.unreadable {
                writeln!(
                    f,
                    "{}: message UID {} kept, its message file {} is {}",
                    fr.name, u.uid, u.blob, u.problem
                )?;
            }
        }
        let s = &self.account_state;
        if s.usage_before != s.usage_after {
            writeln!(
                f,
                "Quota usage {} bytes, {} messages -> {} bytes, {} messages.",
                s.usage_before.bytes,
                s.usage_before.messages,
                s.usage_after.bytes,
                s.usage_after.messages
            )?;
        }
        if s.highest_modseq_before != s.highest_modseq_after {
            writeln!(
                f,
                "Modseq counter {} -> {}.",
                s.highest_modseq_before, s.highest_modseq_after
            )?;
        }
        match self.unreadable() {
            0 => write!(f, "OK."),
            n => write!(
                f,
                "{n} message(s) without readable content were kept: restore their files from a backup."
            ),
        }
    }
}

impl Mailboxes {
    /// Rebuilds the data derived from the messages of `user`'s folders, or of the one
    /// folder `folder` (see the module notes). Online: safe while sessions use the
    /// mailbox. UIDVALIDITY, UIDs and flags are kept; messages whose blob is missing or
    /// damaged are kept and listed. `NoSuchUser` when the account has no folder and no
    /// user of that name exists; `NoSuchFolder` for an unknown folder.
    pub fn reindex(&self, user: &str, folder: Option<&str>) -> MailResult<ReindexReport> {
        let account = account_key(user);
        let meta = &self.inner.meta;
        let mut folders = meta.list_folders(&account)?;
        if folders.is_empty() && !account.starts_with('#') {
            // Fails with NoSuchUser for an unknown user.
            self.inner.directory.get_user(&account)?;
        }
        if let Some(name) = folder {
            let name = canonical_name(name.trim());
            folders.retain(|f| f.name == name);
            if folders.is_empty() {
                return Err(MailError::NoSuchFolder {
                    user: account,
                    name,
                });
            }
        }
        self.remember(&folders);
        let mut report = ReindexReport {
            account: account.clone(),
            folders: Vec::new(),
            account_state: AccountReindex::default(),
        };
        let mut last_modseq = None;
        for f in folders {
            let rows = match meta.list_messages(f.id) {
                Ok(rows) => rows,
                // Deleted since it was listed.
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut derived = Vec::with_capacity(rows.len());
            let mut unreadable = Vec::new();
            for m in &rows {
                // Not every blob store verifies the content address on read.
                let read = self.inner.blobs.get(&m.blob).and_then(|bytes| {
                    if BlobId::of(&bytes) == m.blob {
                        Ok(bytes)
                    } else {
                        Err(StoreError::Corrupt(format!("blob {}", m.blob)))
                    }
                });
                match read {
                    Ok(bytes) => derived.push(DerivedSize {
                        uid: m.uid,
                        blob: m.blob.clone(),
                        size: bytes.len() as u64,
                    }),
                    Err(e @ (StoreError::NotFound(_) | StoreError::Corrupt(_))) => {
                        unreadable.push(UnreadableMessage {
                            uid: m.uid,
                            blob: m.blob.0.clone(),
                            problem: if matches!(e, StoreError::NotFound(_)) {
                                "missing"
                            } else {
                                "damaged"
                            },
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let store = match meta.reindex_folder(f.id, &derived) {
                Ok(r) => r,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if !store.sizes_fixed.is_empty() {
                last_modseq = Some(store.after.highest_modseq);
            }
            report.folders.push(FolderReindexReport {
                name: f.name,
                uid_validity: f.uid_validity,
                messages_read: derived.len(),
                unreadable,
                store,
            });
        }
        report.account_state = meta.reindex_account(&account)?;
        if last_modseq.is_some() {
            self.notify(&account, Some(report.account_state.highest_modseq_after));
        }
        Ok(report)
    }
}

impl Mailboxes {
    /// Recounts a folder's counters (`messages`, `unseen`, `bytes`, `uid_next`,
    /// `highest_modseq`) and its account's quota usage from the rows, without reading any
    /// message (requirements-3 §5.4: "automatic detection of mismatches when a folder is
    /// opened"; IMAP SELECT calls this when its rows disagree with the counters). Returns
    /// the folder's counters before and after.
    pub fn repair_counters(&self, folder: &keel_store::Folder) -> MailResult<FolderReindex> {
        let fixed = self.inner.meta.reindex_folder(folder.id, &[])?;
        self.inner.meta.reindex_account(&folder.account)?;
        Ok(fixed)
    }
}
