//! Copying a whole store to another backend pair (issue 8: `keel migrate --to
//! postgres://…` copies an embedded SQLite + files installation into PostgreSQL).
//!
//! [`copy_store`] works through the traits only ([`MetaStore::all_docs`],
//! [`MetaStore::export_account`], [`MetaStore::import_account`], …), so any source and
//! target backends can be paired. It keeps every identifier a client or another table
//! relies on: folder ids, UIDVALIDITY, next UID, UIDs, flags, modseqs (RFC 7162 CONDSTORE
//! state stays valid: a client's cached HIGHESTMODSEQ still means the same), the change
//! log, quota usage, deleted items kept for recovery (tombstones, with their blobs), document versions, queue items with per-recipient state, and the
//! counters that must never go backwards.
//!
//! Order (the ingest rule of DESIGN §4, blob before metadata): for each account its blobs
//! are copied first, then its metadata in one transaction; the queue likewise; the
//! counters last. A crash midway leaves a partial target that `keel migrate --force`
//! copies again (blobs already present are not sent twice).
//!
//! Run with the source idle (server stopped): the export is not one snapshot of the whole
//! store.

use std::collections::HashSet;

use crate::{BlobId, BlobStore, MetaStore, StoreError, StoreResult};

/// What [`copy_store`] is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Counting what there is to copy.
    Counting,
    /// Copying documents (directory and settings).
    Documents,
    /// Copying accounts: blobs, then folders, messages and change log.
    Mail,
    /// Copying the outbound queue.
    Queue,
    /// Removing blobs the target held that nothing references.
    Pruning,
}

/// Progress of [`copy_store`]: `done` of `total` items (documents, or messages plus queued
/// messages) of the current stage, and the blob bytes sent so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Current stage.
    pub stage: Stage,
    /// Items done in this stage.
    pub done: u64,
    /// Items in this stage.
    pub total: u64,
    /// Blob bytes written to the target so far.
    pub bytes: u64,
}

/// What [`copy_store`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopySummary {
    /// Documents copied.
    pub documents: u64,
    /// Accounts copied.
    pub accounts: u64,
    /// Folders copied.
    pub folders: u64,
    /// Messages copied.
    pub messages: u64,
    /// Change-log rows copied.
    pub changes: u64,
    /// Deleted items kept for recovery copied (guide §7.4).
    pub tombstones: u64,
    /// Queued messages copied.
    pub queued: u64,
    /// Distinct blobs written to the target (or found there already).
    pub blobs: u64,
    /// Blob bytes sent to the target.
    pub blob_bytes: u64,
    /// Referenced blobs the source does not have (reported again by the integrity check).
    pub missing_blobs: Vec<BlobId>,
    /// Unreferenced blobs removed from the target.
    pub pruned_blobs: u64,
}

/// Copies every document, account, queued message, the counters and every referenced
/// blob from `src` to `dst`, which must hold no metadata ([`MetaStore::is_empty`]:
/// `StoreError::Aborted` otherwise; erase it first to overwrite). Blobs in `dst_blobs`
/// that nothing references afterwards are removed. `progress` is called after every item.
pub fn copy_store(
    src_meta: &dyn MetaStore,
    src_blobs: &dyn BlobStore,
    dst_meta: &dyn MetaStore,
    dst_blobs: &dyn BlobStore,
    progress: &mut dyn FnMut(&Progress),
) -> StoreResult<CopySummary> {
    if !dst_meta.is_empty()? {
        return Err(StoreError::Aborted(
            "the target store is not empty".to_owned(),
        ));
    }
    let mut sum = CopySummary::default();
    let mut copied: HashSet<BlobId> = HashSet::new();
    let mut report = |stage, done, total, bytes| {
        progress(&Progress {
            stage,
            done,
            total,
            bytes,
        });
    };

    report(Stage::Counting, 0, 0, 0);
    let accounts = src_meta.accounts()?;
    let queue = src_meta.export_queue()?;
    let mut total = queue.len() as u64;
    for a in &accounts {
        for f in src_meta.list_folders(a)? {
            total += u64::from(f.messages);
        }
    }

    let docs = src_meta.all_docs()?;
    report(Stage::Documents, 0, docs.len() as u64, 0);
    dst_meta.import_docs(&docs)?;
    sum.documents = docs.len() as u64;
    report(Stage::Documents, sum.documents, sum.documents, 0);

    let mut done = 0u64;
    report(Stage::Mail, 0, total, 0);
    for account in &accounts {
        let dump = src_meta.export_account(account)?;
        for fd in &dump.folders {
            for m in &fd.messages {
                copy_blob(src_blobs, dst_blobs, &m.blob, &mut copied, &mut sum)?;
                done += 1;
                report(Stage::Mail, done, total.max(done), sum.blob_bytes);
            }
        }
        // Deleted items kept for recovery (guide §7.4) keep their bytes too.
        for t in &dump.tombstones {
            copy_blob(src_blobs, dst_blobs, &t.blob, &mut copied, &mut sum)?;
        }
        dst_meta.import_account(&dump)?;
        sum.accounts += 1;
        sum.folders += dump.folders.len() as u64;
        sum.messages += dump
            .folders
            .iter()
            .map(|f| f.messages.len() as u64)
            .sum::<u64>();
        sum.changes += dump.changes.len() as u64;
        sum.tombstones += dump.tombstones.len() as u64;
    }

    for item in &queue {
        copy_blob(
            src_blobs,
            dst_blobs,
            &item.message.blob,
            &mut copied,
            &mut sum,
        )?;
        dst_meta.import_queued(item)?;
        sum.queued += 1;
        done += 1;
        report(Stage::Queue, done, total.max(done), sum.blob_bytes);
    }

    dst_meta.import_counters(&src_meta.counters()?)?;

    // Left-overs of an earlier, interrupted or forced copy: nothing references them now.
    let stale: Vec<BlobId> = dst_blobs
        .list()?
        .into_iter()
        .filter(|id| !copied.contains(id))
        .collect();
    for (i, id) in stale.iter().enumerate() {
        dst_blobs.delete(id)?;
        sum.pruned_blobs += 1;
        report(
            Stage::Pruning,
            i as u64 + 1,
            stale.len() as u64,
            sum.blob_bytes,
        );
    }
    Ok(sum)
}

/// Copies one blob unless it was copied already (content addressing: one copy per id).
/// A blob whose bytes do not hash to its id is refused: the source is corrupt.
fn copy_blob(
    src: &dyn BlobStore,
    dst: &dyn BlobStore,
    id: &BlobId,
    copied: &mut HashSet<BlobId>,
    sum: &mut CopySummary,
) -> StoreResult<()> {
    if copied.contains(id) || sum.missing_blobs.contains(id) {
        return Ok(());
    }
    if dst.exists(id)? {
        copied.insert(id.clone());
        sum.blobs += 1;
        return Ok(());
    }
    let bytes = match src.get(id) {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => {
            sum.missing_blobs.push(id.clone());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let written = dst.put(&bytes)?;
    if &written != id {
        return Err(StoreError::Corrupt(format!(
            "source blob {id} holds bytes whose BLAKE3 id is {written}"
        )));
    }
    sum.blob_bytes += bytes.len() as u64;
    sum.blobs += 1;
    copied.insert(id.clone());
    Ok(())
}
