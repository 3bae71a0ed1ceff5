//! Integrity check of the metadata store against the blob store (issue 7 §5, `keel check`).
//!
//! What is checked:
//! - every message row and every queued message names a blob that exists (a missing blob
//!   is reported, never "repaired": the bytes are gone);
//! - every stored blob is referenced by a message or a queued message (an unreferenced
//!   blob is an orphan, e.g. left by a crash between blob write and metadata commit);
//! - each folder's incremental counters (`messages`, `unseen`) match its rows;
//! - each account's quota usage (`bytes`, `messages`) matches the sum over its folders.
//!
//! Two entry points:
//! - [`check`] works through the [`MetaStore`] and [`BlobStore`] traits with any backend.
//!   The traits cannot enumerate accounts nor rewrite counters, so it checks the accounts
//!   it can find (user documents and `#public@<domain>` of each domain document) and, with
//!   `repair`, only removes orphan blobs; counter and usage mismatches are reported with
//!   [`CheckReport::counters_repaired`] left `false`.
//! - [`check_store`] is the full check of any backend pair (SQLite + files, PostgreSQL +
//!   PostgreSQL blobs): it enumerates every account from the folder, usage and change-log
//!   tables ([`MetaStore::accounts`]), and with `repair` also recounts folder counters and
//!   account usage from the rows in one transaction ([`MetaStore::recount`]).
//!   [`check_sqlite`] opens the embedded store by path and runs it.
//!
//! Repair removes orphan blobs: run it while no ingest is in flight (server stopped), the
//! same rule as [`crate::collect_orphan_blobs`] — a blob written by a live server whose
//! metadata commit has not happened yet looks exactly like an orphan.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::Path;

use crate::sqlite::SqliteStore;
use crate::{BlobId, BlobStore, MetaStore, StoreError, StoreResult, Usage};

/// Who references a blob that is missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BlobOwner {
    /// A message row.
    Message {
        /// Owning account.
        account: String,
        /// Folder name.
        folder: String,
        /// Message UID in the folder.
        uid: u32,
    },
    /// A queued message.
    Queue {
        /// Queue id.
        id: String,
    },
}

/// A referenced blob that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingBlob {
    /// The blob id.
    pub blob: BlobId,
    /// Its referrer.
    pub owner: BlobOwner,
}

/// A folder whose counters disagree with its rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderMismatch {
    /// Folder id.
    pub folder: i64,
    /// Owning account.
    pub account: String,
    /// Folder name.
    pub name: String,
    /// Stored (messages, unseen).
    pub stored: (u32, u32),
    /// Counted from rows (messages, unseen).
    pub actual: (u32, u32),
}

/// An account whose usage counters disagree with its rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageMismatch {
    /// The account.
    pub account: String,
    /// Stored usage.
    pub stored: Usage,
    /// Counted from rows.
    pub actual: Usage,
}

/// Result of [`check`] / [`check_sqlite`]. Findings describe the state *before* repair.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Accounts examined.
    pub accounts: usize,
    /// Folders examined.
    pub folders: usize,
    /// Message rows examined.
    pub messages: usize,
    /// Queued messages examined.
    pub queued: usize,
    /// Blobs in the blob store.
    pub blobs: usize,
    /// Referenced blobs that do not exist (never repaired).
    pub missing_blobs: Vec<MissingBlob>,
    /// Blobs nobody references.
    pub orphan_blobs: Vec<BlobId>,
    /// Folders whose counters disagree with their rows.
    pub folder_mismatches: Vec<FolderMismatch>,
    /// Accounts whose usage disagrees with their rows.
    pub usage_mismatches: Vec<UsageMismatch>,
    /// Whether repair was requested.
    pub repair: bool,
    /// Orphan blobs removed by repair.
    pub orphans_removed: usize,
    /// Whether repair rewrote folder counters and account usage (only [`check_sqlite`]).
    pub counters_repaired: bool,
}

impl CheckReport {
    /// No finding at all (the state before any repair was consistent).
    pub fn is_clean(&self) -> bool {
        self.missing_blobs.is_empty()
            && self.orphan_blobs.is_empty()
            && self.folder_mismatches.is_empty()
            && self.usage_mismatches.is_empty()
    }

    /// Findings that remain after this run: missing blobs always, the rest unless repaired.
    pub fn problems_left(&self) -> usize {
        let counters = self.folder_mismatches.len() + self.usage_mismatches.len();
        self.missing_blobs.len()
            + (self.orphan_blobs.len() - self.orphans_removed.min(self.orphan_blobs.len()))
            + if self.counters_repaired { 0 } else { counters }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Checked {} accounts, {} folders, {} messages, {} queued messages, {} blobs.",
            self.accounts, self.folders, self.messages, self.queued, self.blobs
        )?;
        for m in &self.missing_blobs {
            match &m.owner {
                BlobOwner::Message {
                    account,
                    folder,
                    uid,
                } => writeln!(
                    f,
                    "missing blob {} of message {account}/{folder} uid {uid}",
                    m.blob
                )?,
                BlobOwner::Queue { id } => {
                    writeln!(f, "missing blob {} of queued message {id}", m.blob)?;
                }
            }
        }
        for b in &self.orphan_blobs {
            writeln!(f, "orphan blob {b}")?;
        }
        for m in &self.folder_mismatches {
            writeln!(
                f,
                "folder {}/{} (id {}): counters say {} messages, {} unseen; rows say {}, {}",
                m.account, m.name, m.folder, m.stored.0, m.stored.1, m.actual.0, m.actual.1
            )?;
        }
        for m in &self.usage_mismatches {
            writeln!(
                f,
                "account {}: usage says {} bytes, {} messages; rows say {}, {}",
                m.account, m.stored.bytes, m.stored.messages, m.actual.bytes, m.actual.messages
            )?;
        }
        if self.repair {
            writeln!(f, "Removed {} orphan blobs.", self.orphans_removed)?;
            if self.counters_repaired {
                writeln!(f, "Recounted folder counters and account usage.")?;
            }
        }
        if self.is_clean() {
            write!(f, "OK: store and blobs are consistent.")
        } else {
            write!(f, "{} problems left.", self.problems_left())
        }
    }
}

/// Checks the accounts the traits can enumerate from documents (user documents and
/// `#public@<domain>` of each domain document); with `repair`, removes orphan blobs.
/// Counter mismatches are reported but not rewritten: use [`check_store`] for that.
pub fn check(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    repair: bool,
) -> StoreResult<CheckReport> {
    let mut accounts = BTreeSet::new();
    for d in meta.list_docs("user", None)? {
        accounts.insert(d.key.trim().to_lowercase());
    }
    for d in meta.list_docs("domain", None)? {
        accounts.insert(format!("#public@{}", d.key.trim().to_lowercase()));
    }
    check_accounts(meta, blobs, &accounts, repair)
}

/// The full check of any backend pair (`keel check`): every account with mail metadata
/// ([`MetaStore::accounts`]); with `repair`, removes orphan blobs and recounts every
/// folder's counters and every account's usage from the rows in one write transaction
/// ([`MetaStore::recount`]).
pub fn check_store(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    repair: bool,
) -> StoreResult<CheckReport> {
    let accounts: BTreeSet<String> = meta.accounts()?.into_iter().collect();
    let mut report = check_accounts(meta, blobs, &accounts, repair)?;
    if repair && !(report.folder_mismatches.is_empty() && report.usage_mismatches.is_empty()) {
        meta.recount()?;
        report.counters_repaired = true;
    }
    Ok(report)
}

/// [`check_store`] on the embedded SQLite store at `db` (`<data>/keel.db`) against `blobs`
/// (`<data>/blobs`).
pub fn check_sqlite(db: &Path, blobs: &dyn BlobStore, repair: bool) -> StoreResult<CheckReport> {
    let meta = SqliteStore::open(db)?;
    check_store(&meta, blobs, repair)
}

fn check_accounts(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    accounts: &BTreeSet<String>,
    repair: bool,
) -> StoreResult<CheckReport> {
    let mut report = CheckReport {
        repair,
        accounts: accounts.len(),
        ..CheckReport::default()
    };
    let stored: Vec<BlobId> = blobs.list()?;
    report.blobs = stored.len();
    let present: HashSet<&BlobId> = stored.iter().collect();
    let exists = |id: &BlobId| -> StoreResult<bool> {
        // The listing is a snapshot; ask again before reporting (a blob written since).
        Ok(present.contains(id) || blobs.exists(id)?)
    };

    for account in accounts {
        let mut actual = Usage::default();
        for folder in meta.list_folders(account)? {
            report.folders += 1;
            let rows = match meta.list_messages(folder.id) {
                Ok(r) => r,
                // Deleted between the listing and now.
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let mut unseen = 0u32;
            for m in &rows {
                report.messages += 1;
                actual.bytes += m.size;
                actual.messages += 1;
                if !m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")) {
                    unseen += 1;
                }
                if !exists(&m.blob)? {
                    report.missing_blobs.push(MissingBlob {
                        blob: m.blob.clone(),
                        owner: BlobOwner::Message {
                            account: account.clone(),
                            folder: folder.name.clone(),
                            uid: m.uid,
                        },
                    });
                }
            }
            let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            if (folder.messages, folder.unseen) != (count, unseen) {
                report.folder_mismatches.push(FolderMismatch {
                    folder: folder.id,
                    account: account.clone(),
                    name: folder.name.clone(),
                    stored: (folder.messages, folder.unseen),
                    actual: (count, unseen),
                });
            }
        }
        let usage = meta.usage(account)?;
        if usage != actual {
            report.usage_mismatches.push(UsageMismatch {
                account: account.clone(),
                stored: usage,
                actual,
            });
        }
    }

    for q in meta.queued_messages()? {
        report.queued += 1;
        if !exists(&q.blob)? {
            report.missing_blobs.push(MissingBlob {
                blob: q.blob.clone(),
                owner: BlobOwner::Queue { id: q.id.clone() },
            });
        }
    }

    // A shared blob store leaves out blobs other nodes may still be ingesting
    // (`BlobStore::orphan_candidates`); the file store offers every blob.
    for id in &blobs.orphan_candidates()? {
        if meta.blob_refcount(id)? == 0 {
            report.orphan_blobs.push(id.clone());
        }
    }
    if repair {
        for id in &report.orphan_blobs {
            // Re-check right before deleting: a reference may have been committed since.
            if meta.blob_refcount(id)? == 0 {
                blobs.delete(id)?;
                report.orphans_removed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::FileBlobStore;
    use crate::{FolderKind, NewMessage, QueuedMessage, QueuedRecipient};

    struct Fixture {
        _tmp: tempfile::TempDir,
        db: std::path::PathBuf,
        meta: SqliteStore,
        blobs: FileBlobStore,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("keel.db");
        let meta = SqliteStore::open(&db).expect("open db");
        let blobs = FileBlobStore::open(&tmp.path().join("blobs")).expect("open blobs");
        meta.transact(&mut |t| {
            t.put("domain", "example.com", "", &serde_json::json!({}))?;
            t.put(
                "user",
                "alice@example.com",
                "example.com",
                &serde_json::json!({}),
            )?;
            Ok(())
        })
        .expect("docs");
        Fixture {
            _tmp: tmp,
            db,
            meta,
            blobs,
        }
    }

    /// Appends `n` messages to alice's INBOX; returns (folder id, blob ids).
    fn fill(fx: &Fixture, n: usize) -> (i64, Vec<BlobId>) {
        let folder = fx
            .meta
            .create_folder("alice@example.com", "INBOX", FolderKind::Mail)
            .expect("folder");
        let mut ids = Vec::new();
        let mut msgs = Vec::new();
        for i in 0..n {
            let bytes = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
            let id = fx.blobs.put(bytes.as_bytes()).expect("put");
            msgs.push(NewMessage {
                blob: id.clone(),
                size: bytes.len() as u64,
                flags: if i % 2 == 0 {
                    vec!["\\Seen".to_owned()]
                } else {
                    vec![]
                },
                internal_date: 1_700_000_000,
            });
            ids.push(id);
        }
        fx.meta.append_messages(folder.id, &msgs).expect("append");
        (folder.id, ids)
    }

    fn raw(fx: &Fixture, sql: &str) {
        rusqlite::Connection::open(&fx.db)
            .expect("raw open")
            .execute_batch(sql)
            .expect("raw sql");
    }

    #[test]
    fn a_consistent_store_is_clean() {
        let fx = fixture();
        fill(&fx, 5);
        let r = check(&fx.meta, &fx.blobs, false).expect("check");
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.messages, r.blobs, r.folders), (5, 5, 1));
        let r = check_sqlite(&fx.db, &fx.blobs, true).expect("check");
        assert!(r.is_clean(), "{r}");
        assert!(!r.counters_repaired);
        assert_eq!(r.problems_left(), 0);
    }

    #[test]
    fn missing_blobs_of_messages_and_queue_rows_are_reported_not_repaired() {
        let fx = fixture();
        let (_, ids) = fill(&fx, 3);
        fx.blobs.delete(&ids[1]).expect("delete");
        let qblob = fx.blobs.put(b"queued bytes").expect("put");
        fx.meta
            .enqueue(&QueuedMessage {
                id: "438dd9ea-00000001".into(),
                sender: "a@example.com".into(),
                envid: None,
                ret: None,
                size: 12,
                blob: qblob.clone(),
                created: 1,
                next_attempt: 1,
                recipients: vec![QueuedRecipient::new("b@remote.test")],
            })
            .expect("enqueue");
        fx.blobs.delete(&qblob).expect("delete");

        let r = check_sqlite(&fx.db, &fx.blobs, true).expect("check");
        assert_eq!(r.missing_blobs.len(), 2, "{r}");
        assert!(r.missing_blobs.iter().any(|m| m.blob == ids[1]
            && matches!(&m.owner, BlobOwner::Message { uid: 2, folder, .. } if folder == "INBOX")));
        assert!(r.missing_blobs.iter().any(|m| m.blob == qblob
            && m.owner
                == BlobOwner::Queue {
                    id: "438dd9ea-00000001".into()
                }));
        assert_eq!(r.queued, 1);
        assert_eq!(r.problems_left(), 2);
        // Still reported: nothing can bring the bytes back.
        let again = check(&fx.meta, &fx.blobs, true).expect("check");
        assert_eq!(again.missing_blobs.len(), 2);
    }

    #[test]
    fn orphans_are_found_and_removed_only_with_repair() {
        let fx = fixture();
        let (_, ids) = fill(&fx, 2);
        let orphan = fx.blobs.put(b"left by a crash").expect("put");
        let r = check(&fx.meta, &fx.blobs, false).expect("check");
        assert_eq!(r.orphan_blobs, vec![orphan.clone()]);
        assert_eq!(r.orphans_removed, 0);
        assert!(fx.blobs.exists(&orphan).expect("exists"));

        let r = check(&fx.meta, &fx.blobs, true).expect("check");
        assert_eq!(r.orphans_removed, 1);
        assert_eq!(r.problems_left(), 0, "{r}");
        assert!(!fx.blobs.exists(&orphan).expect("exists"));
        for id in &ids {
            assert!(fx.blobs.exists(id).expect("referenced blobs stay"));
        }
        assert!(check(&fx.meta, &fx.blobs, false).expect("check").is_clean());
    }

    #[test]
    fn wrong_folder_counters_and_usage_are_found_and_recounted() {
        let fx = fixture();
        let (folder, _) = fill(&fx, 4);
        raw(
            &fx,
            "UPDATE folders SET messages = 99, unseen = 0;
             UPDATE account_state SET bytes = 1, messages = 7;",
        );
        let r = check(&fx.meta, &fx.blobs, true).expect("check");
        assert_eq!(
            r.folder_mismatches,
            vec![FolderMismatch {
                folder,
                account: "alice@example.com".into(),
                name: "INBOX".into(),
                stored: (99, 0),
                actual: (4, 2),
            }]
        );
        assert_eq!(r.usage_mismatches.len(), 1);
        assert_eq!(r.usage_mismatches[0].stored.bytes, 1);
        assert_eq!(r.usage_mismatches[0].actual.messages, 4);
        // The generic check cannot rewrite counters.
        assert!(!r.counters_repaired);
        assert_eq!(r.problems_left(), 2);

        let r = check_sqlite(&fx.db, &fx.blobs, false).expect("check");
        assert_eq!(
            (r.folder_mismatches.len(), r.usage_mismatches.len()),
            (1, 1)
        );
        assert!(!r.counters_repaired);

        let r = check_sqlite(&fx.db, &fx.blobs, true).expect("repair");
        assert!(r.counters_repaired);
        assert_eq!(r.problems_left(), 0, "{r}");
        let after = check_sqlite(&fx.db, &fx.blobs, false).expect("check");
        assert!(after.is_clean(), "{after}");
        let f = fx
            .meta
            .get_folder("alice@example.com", "INBOX")
            .expect("get")
            .expect("folder");
        assert_eq!((f.messages, f.unseen), (4, 2));
        // Later increments continue from the repaired values.
        let id = fx.blobs.put(b"Subject: 5\r\n\r\nx\r\n").expect("put");
        fx.meta
            .append_messages(
                folder,
                &[NewMessage {
                    blob: id,
                    size: 16,
                    flags: vec![],
                    internal_date: 0,
                }],
            )
            .expect("append");
        assert!(
            check_sqlite(&fx.db, &fx.blobs, false)
                .expect("check")
                .is_clean()
        );
    }

    #[test]
    fn an_account_without_a_usage_row_is_recounted() {
        let fx = fixture();
        fill(&fx, 3);
        raw(&fx, "DELETE FROM account_state;");
        let r = check_sqlite(&fx.db, &fx.blobs, true).expect("repair");
        assert_eq!(r.usage_mismatches.len(), 1, "{r}");
        assert_eq!(r.usage_mismatches[0].stored, Usage::default());
        assert!(
            check_sqlite(&fx.db, &fx.blobs, false)
                .expect("check")
                .is_clean()
        );
        assert_eq!(
            fx.meta.usage("alice@example.com").expect("usage").messages,
            3
        );
    }

    #[test]
    fn the_report_prints_every_finding() {
        let fx = fixture();
        let (_, ids) = fill(&fx, 2);
        fx.blobs.delete(&ids[0]).expect("delete");
        let orphan = fx.blobs.put(b"orphan").expect("put");
        let text = check(&fx.meta, &fx.blobs, false)
            .expect("check")
            .to_string();
        assert!(text.contains(&format!("missing blob {}", ids[0])), "{text}");
        assert!(text.contains(&format!("orphan blob {orphan}")), "{text}");
        assert!(text.contains("2 problems left."), "{text}");
    }
}
