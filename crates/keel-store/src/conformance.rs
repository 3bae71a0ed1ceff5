//! Backend conformance suite (DESIGN §4: "both backends pass one shared conformance test
//! suite").
//!
//! Every check is a `pub fn(&dyn MetaStore, &dyn BlobStore)` that expects empty stores and
//! panics with a message naming the broken rule. A backend runs them either all at once
//! with [`run_all`], or one `#[test]` per check with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! fn fresh() -> (Arc<dyn MetaStore>, Arc<dyn BlobStore>, TempDir) { todo!() }
//! keel_store::conformance_tests!(fresh);
//! ```
//!
//! Checks needing two handles on one database ([`generation_seen_by_second_handle`]) are
//! not in [`CHECKS`]; the backend calls them itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::{
    AccountDump, BlobId, BlobStore, ChangeKind, DerivedSize, Doc, FolderKind, MetaStore,
    NewMessage, QueueDump, QueueRcptState, QueuedMessage, QueuedRecipient, StoreCounters,
    StoreError, Usage, collect_orphan_blobs,
};

/// The signature of a check.
pub type Check = fn(&dyn MetaStore, &dyn BlobStore);

/// Every single-handle check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("docs_put_get_list_delete", docs_put_get_list_delete),
    ("docs_versions_increment", docs_versions_increment),
    (
        "docs_transaction_rolls_back_on_error",
        docs_transaction_rolls_back_on_error,
    ),
    (
        "docs_generation_changes_on_write",
        docs_generation_changes_on_write,
    ),
    (
        "docs_concurrent_transactions_lose_no_update",
        docs_concurrent_transactions_lose_no_update,
    ),
    (
        "folders_create_conflict_rename_delete",
        folders_create_conflict_rename_delete,
    ),
    (
        "folder_uid_validity_changes_on_recreate",
        folder_uid_validity_changes_on_recreate,
    ),
    (
        "append_assigns_uids_and_modseqs",
        append_assigns_uids_and_modseqs,
    ),
    (
        "changes_since_returns_later_changes_in_order",
        changes_since_returns_later_changes_in_order,
    ),
    (
        "folder_counters_and_usage_follow_changes",
        folder_counters_and_usage_follow_changes,
    ),
    (
        "blob_references_and_lost_blobs",
        blob_references_and_lost_blobs,
    ),
    (
        "move_account_folders_moves_everything",
        move_account_folders_moves_everything,
    ),
    (
        "delete_account_data_removes_everything",
        delete_account_data_removes_everything,
    ),
    (
        "missing_objects_are_not_found",
        missing_objects_are_not_found,
    ),
    ("blob_put_is_idempotent", blob_put_is_idempotent),
    ("blob_bytes_round_trip", blob_bytes_round_trip),
    ("blob_list_and_delete", blob_list_and_delete),
    (
        "blob_id_parse_rejects_bad_ids",
        blob_id_parse_rejects_bad_ids,
    ),
    (
        "collect_orphan_blobs_removes_only_unreferenced",
        collect_orphan_blobs_removes_only_unreferenced,
    ),
    (
        "queue_enqueue_list_update_dequeue",
        queue_enqueue_list_update_dequeue,
    ),
    (
        "queued_blobs_survive_orphan_collection",
        queued_blobs_survive_orphan_collection,
    ),
    ("queue_claim_lease_release", queue_claim_lease_release),
    ("queue_group_completion", queue_group_completion),
    (
        "queue_next_attempt_and_warned_mark",
        queue_next_attempt_and_warned_mark,
    ),
    (
        "bulk_export_erase_import_round_trip",
        bulk_export_erase_import_round_trip,
    ),
    (
        "bulk_import_refuses_duplicates",
        bulk_import_refuses_duplicates,
    ),
    (
        "check_store_is_clean_and_recount_keeps_counters",
        check_store_is_clean_and_recount_keeps_counters,
    ),
    (
        "copy_store_into_a_second_store_keeps_everything",
        copy_store_into_a_second_store_keeps_everything,
    ),
    (
        "blob_orphan_candidates_are_stored_blobs",
        blob_orphan_candidates_are_stored_blobs,
    ),
    (
        "messages_changed_since_returns_changed_rows",
        messages_changed_since_returns_changed_rows,
    ),
    (
        "change_log_has_one_row_per_modseq",
        change_log_has_one_row_per_modseq,
    ),
    (
        "set_flags_many_in_one_transaction",
        set_flags_many_in_one_transaction,
    ),
    (
        "tombstones_keep_restore_and_purge",
        tombstones_keep_restore_and_purge,
    ),
    (
        "messages_added_before_finds_old_entries",
        messages_added_before_finds_old_entries,
    ),
    (
        "reindex_rebuilds_derived_data_keeping_uids_and_flags",
        reindex_rebuilds_derived_data_keeping_uids_and_flags,
    ),
];

/// Runs every check of [`CHECKS`], each on fresh stores from `factory`.
pub fn run_all(factory: &dyn Fn() -> (Arc<dyn MetaStore>, Arc<dyn BlobStore>)) {
    for (name, check) in CHECKS {
        let (meta, blobs) = factory();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*meta, &*blobs)));
        if outcome.is_err() {
            panic!("conformance check `{name}` failed (see the panic message above)");
        }
    }
}

/// Generates one `#[test]` per conformance check, plus a test that the list is complete.
///
/// `$fresh` is a function returning `(Arc<dyn MetaStore>, Arc<dyn BlobStore>, G)` for
/// fresh, empty stores; `G` is kept alive for the test's duration (e.g. a temp dir).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@tests $fresh;
            docs_put_get_list_delete,
            docs_versions_increment,
            docs_transaction_rolls_back_on_error,
            docs_generation_changes_on_write,
            docs_concurrent_transactions_lose_no_update,
            folders_create_conflict_rename_delete,
            folder_uid_validity_changes_on_recreate,
            append_assigns_uids_and_modseqs,
            changes_since_returns_later_changes_in_order,
            folder_counters_and_usage_follow_changes,
            blob_references_and_lost_blobs,
            move_account_folders_moves_everything,
            delete_account_data_removes_everything,
            missing_objects_are_not_found,
            blob_put_is_idempotent,
            blob_bytes_round_trip,
            blob_list_and_delete,
            blob_id_parse_rejects_bad_ids,
            collect_orphan_blobs_removes_only_unreferenced,
            queue_enqueue_list_update_dequeue,
            queued_blobs_survive_orphan_collection,
            queue_claim_lease_release,
            queue_group_completion,
            queue_next_attempt_and_warned_mark,
            bulk_export_erase_import_round_trip,
            bulk_import_refuses_duplicates,
            check_store_is_clean_and_recount_keeps_counters,
            copy_store_into_a_second_store_keeps_everything,
            blob_orphan_candidates_are_stored_blobs,
            messages_changed_since_returns_changed_rows,
            change_log_has_one_row_per_modseq,
            set_flags_many_in_one_transaction,
            tombstones_keep_restore_and_purge,
            messages_added_before_finds_old_entries,
            reindex_rebuilds_derived_data_keeping_uids_and_flags,
        );
    };
    (@tests $fresh:path; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let (meta, blobs, _guard) = $fresh();
                $crate::conformance::$check(&*meta, &*blobs);
            }
        )+
        #[test]
        fn conformance_macro_lists_every_check() {
            let generated: &[&str] = &[$(stringify!($check)),+];
            let all: ::std::vec::Vec<&str> =
                $crate::conformance::CHECKS.iter().map(|(name, _)| *name).collect();
            assert_eq!(generated, all.as_slice(), "conformance_tests! and CHECKS disagree");
        }
    };
}

// ---------------------------------------------------------------------------------------
// Helpers

fn json(s: &str) -> serde_json::Value {
    serde_json::Value::String(s.to_owned())
}

/// Stores `bytes` and describes a message holding them.
fn message(blobs: &dyn BlobStore, bytes: &[u8], flags: &[&str]) -> NewMessage {
    let blob = blobs.put(bytes).expect("blob put");
    NewMessage {
        blob,
        size: bytes.len() as u64,
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        internal_date: 1_700_000_000,
    }
}

fn assert_counters(meta: &dyn MetaStore, account: &str, name: &str, messages: u32, unseen: u32) {
    let f = meta
        .get_folder(account, name)
        .expect("get_folder")
        .expect("folder exists");
    assert_eq!(f.messages, messages, "message counter of {name}");
    assert_eq!(f.unseen, unseen, "unseen counter of {name}");
    let listed = meta.list_messages(f.id).expect("list_messages");
    assert_eq!(
        listed.len() as u32,
        messages,
        "message counter of {name} vs its messages"
    );
    let unseen_listed = listed
        .iter()
        .filter(|m| !m.flags.iter().any(|f| f == "\\Seen"))
        .count();
    assert_eq!(
        unseen_listed as u32, unseen,
        "unseen counter of {name} vs its messages"
    );
}

fn sorted(mut v: Vec<BlobId>) -> Vec<BlobId> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// Documents

/// Documents can be written, read, listed (by kind and by parent) and deleted.
pub fn docs_put_get_list_delete(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    assert_eq!(
        meta.get_doc("user", "alice").expect("get"),
        None,
        "empty store has a doc"
    );
    meta.transact(&mut |t| {
        t.put("user", "bob", "example.org", &json("b"))?;
        t.put("user", "alice", "example.com", &json("a"))?;
        t.put("user", "carol", "example.com", &json("c"))?;
        t.put("domain", "example.com", "", &json("d"))?;
        // A transaction reads its own writes.
        let own = t
            .get("user", "alice")?
            .expect("own write visible in the transaction");
        assert_eq!(own.body, json("a"));
        Ok(())
    })
    .expect("transact");

    let alice = meta
        .get_doc("user", "alice")
        .expect("get")
        .expect("alice stored");
    assert_eq!(
        (
            alice.kind.as_str(),
            alice.key.as_str(),
            alice.parent.as_str(),
            alice.version
        ),
        ("user", "alice", "example.com", 1)
    );
    assert_eq!(alice.body, json("a"));

    let keys = |docs: Vec<crate::Doc>| docs.into_iter().map(|d| d.key).collect::<Vec<_>>();
    assert_eq!(
        keys(meta.list_docs("user", None).expect("list")),
        ["alice", "bob", "carol"],
        "list by kind, ordered by key"
    );
    assert_eq!(
        keys(meta.list_docs("user", Some("example.com")).expect("list")),
        ["alice", "carol"],
        "list by parent"
    );
    assert_eq!(
        keys(meta.list_docs("domain", None).expect("list")),
        ["example.com"]
    );
    assert!(meta.list_docs("group", None).expect("list").is_empty());

    let mut existed = (false, true);
    meta.transact(&mut |t| {
        existed = (t.delete("user", "alice")?, t.delete("user", "nobody")?);
        let inside = t.list("user", Some("example.com"))?;
        assert_eq!(inside.len(), 1, "a transaction lists its own deletes");
        Ok(())
    })
    .expect("transact");
    assert_eq!(
        existed,
        (true, false),
        "delete reports whether the doc existed"
    );
    assert_eq!(
        meta.get_doc("user", "alice").expect("get"),
        None,
        "deleted doc still readable"
    );
    assert_eq!(
        keys(meta.list_docs("user", Some("example.com")).expect("list")),
        ["carol"]
    );
}

/// Every write of a document increments its version; a re-created one starts at 1 again.
pub fn docs_versions_increment(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    let mut versions = Vec::new();
    for i in 0..3 {
        meta.transact(&mut |t| {
            versions.push(t.put("setting", "smtp", "", &serde_json::json!({ "n": i }))?);
            Ok(())
        })
        .expect("transact");
    }
    assert_eq!(versions, [1, 2, 3], "versions returned by put");
    let doc = meta.get_doc("setting", "smtp").expect("get").expect("doc");
    assert_eq!(doc.version, 3, "stored version");
    assert_eq!(doc.body, serde_json::json!({ "n": 2 }), "last body wins");

    // A parent change is a write like any other.
    let mut v = 0;
    meta.transact(&mut |t| {
        v = t.put("setting", "smtp", "moved", &serde_json::json!({ "n": 3 }))?;
        Ok(())
    })
    .expect("transact");
    assert_eq!(v, 4);
    assert_eq!(
        meta.list_docs("setting", Some("moved"))
            .expect("list")
            .len(),
        1
    );
    assert!(
        meta.list_docs("setting", Some(""))
            .expect("list")
            .is_empty(),
        "old parent kept"
    );
}

/// A transaction whose closure fails leaves no trace and returns the closure's error.
pub fn docs_transaction_rolls_back_on_error(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    meta.transact(&mut |t| t.put("user", "kept", "", &json("v1")).map(drop))
        .expect("seed");

    let err = meta
        .transact(&mut |t| {
            t.put("user", "new", "", &json("x"))?;
            t.put("user", "kept", "", &json("v2"))?;
            t.delete("user", "kept")?;
            Err(StoreError::Aborted("changed my mind".into()))
        })
        .expect_err("a failing closure must fail the transaction");
    assert!(
        matches!(&err, StoreError::Aborted(m) if m == "changed my mind"),
        "the closure's error is returned unchanged, got {err:?}"
    );
    assert_eq!(
        meta.get_doc("user", "new").expect("get"),
        None,
        "rolled-back insert visible"
    );
    let kept = meta
        .get_doc("user", "kept")
        .expect("get")
        .expect("rolled-back delete visible");
    assert_eq!(
        (kept.version, kept.body),
        (1, json("v1")),
        "rolled-back update visible"
    );

    // The store stays usable after a rollback.
    meta.transact(&mut |t| t.put("user", "after", "", &json("y")).map(drop))
        .expect("transact");
    assert!(meta.get_doc("user", "after").expect("get").is_some());
}

/// `docs_generation` changes after every committed document write.
pub fn docs_generation_changes_on_write(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    let g0 = meta.docs_generation().expect("generation");
    meta.transact(&mut |t| t.put("domain", "example.com", "", &json("d")).map(drop))
        .expect("transact");
    let g1 = meta.docs_generation().expect("generation");
    assert_ne!(g0, g1, "generation unchanged after a put");
    meta.transact(&mut |t| t.delete("domain", "example.com").map(drop))
        .expect("transact");
    let g2 = meta.docs_generation().expect("generation");
    assert_ne!(g1, g2, "generation unchanged after a delete");
    assert_eq!(
        meta.docs_generation().expect("generation"),
        g2,
        "generation moved by a read"
    );
}

/// Concurrent read-modify-write transactions on one document lose no update.
pub fn docs_concurrent_transactions_lose_no_update(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 25;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    meta.transact(&mut |t| {
                        let n = t
                            .get("counter", "c")?
                            .and_then(|d| d.body.as_u64())
                            .unwrap_or(0);
                        t.put("counter", "c", "", &serde_json::json!(n + 1))?;
                        Ok(())
                    })
                    .expect("concurrent transact");
                }
            });
        }
    });
    let doc = meta
        .get_doc("counter", "c")
        .expect("get")
        .expect("counter doc");
    assert_eq!(
        doc.body,
        serde_json::json!(THREADS * ROUNDS),
        "lost updates"
    );
    assert_eq!(doc.version, THREADS * ROUNDS, "version counts every write");
}

/// Cross-handle visibility: a document write through `a` changes the generation read
/// through `b`, a second handle on the same database (e.g. another process).
pub fn generation_seen_by_second_handle(a: &dyn MetaStore, b: &dyn MetaStore) {
    let before = b.docs_generation().expect("generation");
    a.transact(&mut |t| t.put("user", "x", "", &json("x")).map(drop))
        .expect("transact");
    let after = b.docs_generation().expect("generation");
    assert_ne!(
        before, after,
        "the other handle did not see the generation change"
    );
    assert_eq!(
        b.get_doc("user", "x").expect("get").map(|d| d.body),
        Some(json("x")),
        "the other handle did not see the document"
    );
}

// ---------------------------------------------------------------------------------------
// Folders and messages

/// Folders: create, duplicate name conflicts, rename (with conflict), delete.
pub fn folders_create_conflict_rename_delete(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    let inbox = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create INBOX");
    assert_eq!(
        (inbox.account.as_str(), inbox.name.as_str()),
        ("alice", "INBOX")
    );
    assert_eq!(inbox.kind, FolderKind::Mail);
    assert_eq!((inbox.uid_next, inbox.messages, inbox.unseen), (1, 0, 0));
    assert_ne!(inbox.uid_validity, 0, "UIDVALIDITY must be non-zero");
    let cal = meta
        .create_folder("alice", "Calendar", FolderKind::Calendar)
        .expect("create");
    assert_eq!(cal.kind, FolderKind::Calendar);
    assert_ne!(cal.id, inbox.id);

    let dup = meta.create_folder("alice", "INBOX", FolderKind::Mail);
    assert!(
        matches!(dup, Err(StoreError::Conflict { .. })),
        "duplicate name: {dup:?}"
    );
    // Names are per account.
    meta.create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("same name, other account");

    let names = |acct: &str| {
        meta.list_folders(acct)
            .expect("list")
            .into_iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("alice"),
        ["Calendar", "INBOX"],
        "folders ordered by name"
    );
    assert_eq!(
        meta.get_folder("alice", "INBOX").expect("get"),
        Some(inbox.clone())
    );

    let clash = meta.rename_folder(cal.id, "INBOX");
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "rename onto a name: {clash:?}"
    );
    assert_eq!(
        names("alice"),
        ["Calendar", "INBOX"],
        "failed rename changed names"
    );

    meta.rename_folder(cal.id, "Work/Calendar").expect("rename");
    let renamed = meta
        .get_folder("alice", "Work/Calendar")
        .expect("get")
        .expect("renamed");
    assert_eq!(renamed.id, cal.id, "rename keeps the id");
    assert_eq!(
        renamed.uid_validity, cal.uid_validity,
        "rename keeps UIDVALIDITY"
    );
    assert_eq!(
        meta.get_folder("alice", "Calendar").expect("get"),
        None,
        "old name remains"
    );

    let lost = meta.delete_folder(inbox.id).expect("delete");
    assert!(lost.is_empty(), "empty folder released blobs: {lost:?}");
    assert_eq!(names("alice"), ["Work/Calendar"]);
    assert_eq!(
        names("bob"),
        ["INBOX"],
        "deleting alice's INBOX touched bob's"
    );
    meta.create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("name free again");
}

/// A folder deleted and re-created under the same name gets another UIDVALIDITY.
pub fn folder_uid_validity_changes_on_recreate(meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let f = meta
            .create_folder("alice", "Trash", FolderKind::Mail)
            .expect("create");
        assert!(
            seen.insert(f.uid_validity),
            "UIDVALIDITY {} reused",
            f.uid_validity
        );
        meta.delete_folder(f.id).expect("delete");
    }
}

/// Appends get increasing UIDs, strictly increasing modseqs, and are listed as stored.
pub fn append_assigns_uids_and_modseqs(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    assert!(
        meta.append_messages(f.id, &[])
            .expect("empty append")
            .is_empty()
    );
    let first = meta
        .append_messages(
            f.id,
            &[
                message(blobs, b"one", &["\\Seen", "$Junk", "\\Seen"]),
                message(blobs, b"two", &[]),
                message(blobs, b"three", &["\\Flagged"]),
            ],
        )
        .expect("append");
    let second = meta
        .append_messages(f.id, &[message(blobs, b"four", &[])])
        .expect("append");
    let all: Vec<(u32, u64)> = first.iter().chain(&second).copied().collect();
    assert_eq!(
        all.iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "UIDs"
    );
    assert!(
        all.windows(2).all(|w| w[0].1 < w[1].1),
        "modseqs not strictly increasing: {all:?}"
    );
    assert!(
        all[0].1 > f.highest_modseq,
        "append modseq not above the folder's creation"
    );

    let listed = meta.list_messages(f.id).expect("list");
    assert_eq!(listed.len(), 4);
    let m1 = &listed[0];
    assert_eq!((m1.folder, m1.uid, m1.size), (f.id, 1, 3));
    assert_eq!(m1.blob, BlobId::of(b"one"));
    assert_eq!(m1.flags, ["$Junk", "\\Seen"], "flags sorted and distinct");
    assert_eq!(m1.internal_date, 1_700_000_000);
    for (m, (uid, modseq)) in listed.iter().zip(&all) {
        assert_eq!(
            (m.uid, m.modseq),
            (*uid, *modseq),
            "listed uid/modseq vs append result"
        );
    }

    let folder = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!(folder.uid_next, 5, "uid_next");
    assert_eq!(folder.highest_modseq, all[3].1, "folder highest_modseq");
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        all[3].1,
        "account modseq"
    );

    // UIDs are never reused, even after an expunge of the last message.
    meta.expunge(f.id, &[4]).expect("expunge");
    let again = meta
        .append_messages(f.id, &[message(blobs, b"five", &[])])
        .expect("append");
    assert_eq!(again[0].0, 5, "UID reused after expunge");
}

/// The change log returns exactly the changes after a modseq, in order, per account.
pub fn changes_since_returns_later_changes_in_order(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        0,
        "fresh account"
    );
    assert!(meta.changes_since("alice", 0).expect("changes").is_empty());

    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let other = meta
        .create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("create");
    let added = meta
        .append_messages(
            f.id,
            &[message(blobs, b"a", &[]), message(blobs, b"b", &[])],
        )
        .expect("append");
    meta.append_messages(other.id, &[message(blobs, b"bob's", &[])])
        .expect("append");
    let mark = meta.highest_modseq("alice").expect("modseq");
    meta.set_flags(f.id, 1, &["\\Seen".to_owned()])
        .expect("flags");
    meta.expunge(f.id, &[2]).expect("expunge");
    meta.rename_folder(f.id, "Inbox2").expect("rename");
    let tmp = meta
        .create_folder("alice", "Tmp", FolderKind::Notes)
        .expect("create");
    meta.delete_folder(tmp.id).expect("delete");

    let all = meta.changes_since("alice", 0).expect("changes");
    let got: Vec<(i64, u32, ChangeKind)> = all
        .iter()
        .map(|c| (c.folder, c.uid, c.kind.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (f.id, 0, ChangeKind::FolderCreated),
            (f.id, 1, ChangeKind::MessageAdded),
            (f.id, 2, ChangeKind::MessageAdded),
            (f.id, 1, ChangeKind::FlagsChanged),
            (f.id, 2, ChangeKind::MessageExpunged),
            (f.id, 0, ChangeKind::FolderRenamed),
            (tmp.id, 0, ChangeKind::FolderCreated),
            (tmp.id, 0, ChangeKind::FolderDeleted),
        ],
        "alice's change log"
    );
    assert!(
        all.windows(2).all(|w| w[0].modseq < w[1].modseq),
        "log not in modseq order"
    );
    assert_eq!(all[1].modseq, added[0].1, "log modseq vs append result");
    let last = all.last().expect("non-empty").modseq;
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        last,
        "highest_modseq"
    );

    let later = meta.changes_since("alice", mark).expect("changes");
    assert_eq!(
        later,
        all[3..],
        "changes_since(mark) must be exactly the later changes"
    );
    assert!(
        meta.changes_since("alice", last)
            .expect("changes")
            .is_empty()
    );
    let bobs = meta.changes_since("bob", 0).expect("changes");
    assert_eq!(
        bobs.len(),
        2,
        "bob's log holds only bob's changes: {bobs:?}"
    );
}

/// Folder counters (messages, unseen, highest_modseq) and account usage follow appends,
/// flag changes, expunges and folder deletion.
pub fn folder_counters_and_usage_follow_changes(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let inbox = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let sent = meta
        .create_folder("alice", "Sent", FolderKind::Mail)
        .expect("create");
    assert_eq!(meta.usage("alice").expect("usage"), Usage::default());

    meta.append_messages(
        inbox.id,
        &[
            message(blobs, &[b'a'; 10], &[]),
            message(blobs, &[b'b'; 20], &[]),
            message(blobs, &[b'c'; 30], &["\\Seen"]),
        ],
    )
    .expect("append");
    meta.append_messages(sent.id, &[message(blobs, &[b'd'; 5], &["\\Seen"])])
        .expect("append");
    assert_counters(meta, "alice", "INBOX", 3, 2);
    assert_counters(meta, "alice", "Sent", 1, 0);
    assert_eq!(
        meta.usage("alice").expect("usage"),
        Usage {
            bytes: 65,
            messages: 4
        }
    );
    assert_eq!(
        meta.usage("bob").expect("usage"),
        Usage::default(),
        "unknown account usage"
    );

    let m = meta
        .set_flags(inbox.id, 1, &["\\Seen".into(), "$Work".into()])
        .expect("flags");
    assert_counters(meta, "alice", "INBOX", 3, 1);
    let f = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!(
        f.highest_modseq, m,
        "flag change moves the folder's highest_modseq"
    );
    meta.set_flags(inbox.id, 3, &[]).expect("flags");
    assert_counters(meta, "alice", "INBOX", 3, 2);
    // Setting the same flags again changes nothing.
    let before = meta.highest_modseq("alice").expect("modseq");
    let same = meta
        .set_flags(inbox.id, 1, &["$Work".into(), "\\Seen".into()])
        .expect("flags");
    assert_eq!(same, m, "unchanged flags keep the message's modseq");
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        before,
        "no-op flag change logged"
    );
    assert_counters(meta, "alice", "INBOX", 3, 2);
    let listed = meta.list_messages(inbox.id).expect("list");
    assert_eq!(listed[0].flags, ["$Work", "\\Seen"]);
    assert_eq!(listed[0].modseq, m);

    // Expunge uid 2 (20 bytes, unseen) and a UID that does not exist.
    let before = meta.highest_modseq("alice").expect("modseq");
    meta.expunge(inbox.id, &[2, 99]).expect("expunge");
    assert_counters(meta, "alice", "INBOX", 2, 1);
    assert_eq!(
        meta.usage("alice").expect("usage"),
        Usage {
            bytes: 45,
            messages: 3
        }
    );
    let changes = meta.changes_since("alice", before).expect("changes");
    assert_eq!(
        changes.len(),
        1,
        "expunge of a missing UID logged a change: {changes:?}"
    );
    let f = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!(f.highest_modseq, changes[0].modseq);
    assert_eq!(f.uid_next, 4, "expunge must not move uid_next");

    meta.expunge(inbox.id, &[]).expect("empty expunge");
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        changes[0].modseq
    );

    meta.delete_folder(inbox.id).expect("delete");
    assert_eq!(
        meta.usage("alice").expect("usage"),
        Usage {
            bytes: 5,
            messages: 1
        }
    );
}

/// Reference counts and "lost last reference" answers: a blob shared by two folders
/// survives expunging one copy.
pub fn blob_references_and_lost_blobs(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let a = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let b = meta
        .create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("create");
    let shared = message(blobs, b"to alice and bob", &[]);
    let own = message(blobs, b"only alice", &[]);
    assert_eq!(meta.blob_refcount(&shared.blob).expect("refcount"), 0);
    meta.append_messages(a.id, &[shared.clone(), own.clone()])
        .expect("append");
    meta.append_messages(b.id, std::slice::from_ref(&shared))
        .expect("append");
    assert_eq!(meta.blob_refcount(&shared.blob).expect("refcount"), 2);
    assert_eq!(meta.blob_refcount(&own.blob).expect("refcount"), 1);

    let lost = meta.expunge(a.id, &[1]).expect("expunge");
    assert!(
        lost.is_empty(),
        "blob still referenced by bob reported lost: {lost:?}"
    );
    assert_eq!(meta.blob_refcount(&shared.blob).expect("refcount"), 1);
    let lost = meta.expunge(b.id, &[1]).expect("expunge");
    assert_eq!(
        lost,
        std::slice::from_ref(&shared.blob),
        "last reference gone"
    );
    assert_eq!(meta.blob_refcount(&shared.blob).expect("refcount"), 0);

    // Two copies in one folder expunged together: reported once.
    meta.append_messages(b.id, &[shared.clone(), shared.clone(), own.clone()])
        .expect("append");
    let lost = meta.expunge(b.id, &[2, 3]).expect("expunge");
    assert_eq!(
        lost,
        std::slice::from_ref(&shared.blob),
        "duplicate copies in one expunge"
    );

    // Deleting a folder reports only blobs nobody else references.
    let lost = meta.delete_folder(b.id).expect("delete");
    assert!(lost.is_empty(), "alice still holds `own`: {lost:?}");
    let lost = meta.delete_folder(a.id).expect("delete");
    assert_eq!(lost, std::slice::from_ref(&own.blob));
}

/// `move_account_folders` moves folders, messages and usage under a prefix, with modseqs
/// of the new account; a name clash moves nothing.
pub fn move_account_folders_moves_everything(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let inbox = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let sent = meta
        .create_folder("alice", "Sent", FolderKind::Mail)
        .expect("create");
    let bob_inbox = meta
        .create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("create");
    meta.append_messages(
        inbox.id,
        &[
            message(blobs, b"m1", &[]),
            message(blobs, b"m22", &["\\Seen"]),
        ],
    )
    .expect("append");
    meta.append_messages(sent.id, &[message(blobs, b"m333", &["\\Seen"])])
        .expect("append");
    meta.append_messages(bob_inbox.id, &[message(blobs, b"b", &[])])
        .expect("append");
    // Give alice a higher modseq than bob, to check the moved modseqs are bob's.
    for _ in 0..5 {
        meta.set_flags(inbox.id, 1, &["$a".into()]).expect("flags");
        meta.set_flags(inbox.id, 1, &[]).expect("flags");
    }
    let bob_before = meta.highest_modseq("bob").expect("modseq");

    meta.move_account_folders("alice", "bob", "alice")
        .expect("move");
    assert!(
        meta.list_folders("alice").expect("list").is_empty(),
        "alice kept folders"
    );
    let names: Vec<String> = meta
        .list_folders("bob")
        .expect("list")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["INBOX", "alice/INBOX", "alice/Sent"]);
    let moved = meta
        .get_folder("bob", "alice/INBOX")
        .expect("get")
        .expect("moved");
    assert_eq!(moved.id, inbox.id, "folder id kept");
    assert_eq!(
        (moved.account.as_str(), moved.messages, moved.unseen),
        ("bob", 2, 1)
    );
    assert_eq!(meta.list_messages(moved.id).expect("list").len(), 2);
    assert_eq!(
        meta.usage("alice").expect("usage"),
        Usage::default(),
        "alice usage left"
    );
    assert_eq!(
        meta.usage("bob").expect("usage"),
        Usage {
            bytes: 10,
            messages: 4
        }
    );

    let bob_high = meta.highest_modseq("bob").expect("modseq");
    for f in meta.list_folders("bob").expect("list") {
        assert!(
            f.highest_modseq <= bob_high,
            "{} highest_modseq above bob's",
            f.name
        );
        for m in meta.list_messages(f.id).expect("list") {
            assert!(
                m.modseq <= bob_high,
                "moved message modseq {} above bob's",
                m.modseq
            );
        }
    }
    let news = meta.changes_since("bob", bob_before).expect("changes");
    let created: BTreeSet<i64> = news
        .iter()
        .filter(|c| c.kind == ChangeKind::FolderCreated)
        .map(|c| c.folder)
        .collect();
    assert_eq!(
        created,
        BTreeSet::from([inbox.id, sent.id]),
        "bob's log of the move"
    );

    // A clash moves nothing.
    let carol = meta
        .create_folder("carol", "INBOX", FolderKind::Mail)
        .expect("create");
    meta.create_folder("carol", "Zeta", FolderKind::Mail)
        .expect("create");
    let clash = meta.move_account_folders("carol", "bob", "alice");
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "name clash: {clash:?}"
    );
    assert_eq!(
        meta.list_folders("carol").expect("list").len(),
        2,
        "partial move"
    );
    assert_eq!(
        meta.get_folder("carol", "INBOX")
            .expect("get")
            .map(|f| f.id),
        Some(carol.id)
    );
    assert_eq!(
        meta.get_folder("bob", "alice/Zeta").expect("get"),
        None,
        "partial move"
    );
}

/// `delete_account_data` removes folders, messages, log and usage of one account only, and
/// reports the blobs nobody references any more.
pub fn delete_account_data_removes_everything(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let a1 = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let a2 = meta
        .create_folder("alice", "Archive", FolderKind::Mail)
        .expect("create");
    let b = meta
        .create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("create");
    let shared = message(blobs, b"shared", &[]);
    let only1 = message(blobs, b"alice one", &[]);
    let only2 = message(blobs, b"alice two", &[]);
    meta.append_messages(a1.id, &[shared.clone(), only1.clone()])
        .expect("append");
    meta.append_messages(a2.id, &[only2.clone(), only1.clone()])
        .expect("append");
    meta.append_messages(b.id, std::slice::from_ref(&shared))
        .expect("append");

    let lost = sorted(meta.delete_account_data("alice").expect("delete"));
    assert_eq!(
        lost,
        sorted(vec![only1.blob.clone(), only2.blob.clone()]),
        "lost blobs"
    );
    assert!(
        meta.list_folders("alice").expect("list").is_empty(),
        "folders left"
    );
    assert!(
        meta.changes_since("alice", 0).expect("changes").is_empty(),
        "change log left"
    );
    assert_eq!(
        meta.usage("alice").expect("usage"),
        Usage::default(),
        "usage left"
    );
    assert_eq!(meta.blob_refcount(&only1.blob).expect("refcount"), 0);
    assert_eq!(
        meta.blob_refcount(&shared.blob).expect("refcount"),
        1,
        "bob's reference"
    );
    assert_eq!(
        meta.usage("bob").expect("usage"),
        Usage {
            bytes: 6,
            messages: 1
        }
    );
    assert_eq!(
        meta.list_messages(b.id).expect("list").len(),
        1,
        "bob's message"
    );
    assert!(
        meta.delete_account_data("nobody")
            .expect("delete")
            .is_empty()
    );
    // The account can start again.
    meta.create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("re-create");
}

/// Operations on missing folders, messages and blobs fail with `NotFound`.
pub fn missing_objects_are_not_found(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    meta.delete_folder(f.id).expect("delete");
    let m = message(blobs, b"x", &[]);
    let nf = |r: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "{what}: expected NotFound, got {r:?}"
        );
    };
    nf(
        meta.append_messages(f.id, &[m]).map(drop),
        "append to a deleted folder",
    );
    nf(meta.list_messages(f.id).map(drop), "list a deleted folder");
    nf(meta.rename_folder(f.id, "X"), "rename a deleted folder");
    nf(
        meta.delete_folder(f.id).map(drop),
        "delete a deleted folder",
    );
    nf(
        meta.expunge(f.id, &[1]).map(drop),
        "expunge in a deleted folder",
    );
    let g = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    nf(
        meta.set_flags(g.id, 1, &[]).map(drop),
        "flags of a missing message",
    );
    assert_eq!(meta.get_folder("alice", "Nope").expect("get"), None);
    nf(
        blobs.get(&BlobId::of(b"never stored")).map(drop),
        "get of a missing blob",
    );
}

// ---------------------------------------------------------------------------------------
// Blobs

/// Storing the same bytes twice yields the same id and one blob.
pub fn blob_put_is_idempotent(_meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let a = blobs.put(b"same bytes").expect("put");
    let b = blobs.put(b"same bytes").expect("put again");
    assert_eq!(a, b);
    assert_eq!(
        a,
        BlobId::of(b"same bytes"),
        "id is the BLAKE3 of the bytes"
    );
    assert_eq!(
        blobs.list().expect("list"),
        std::slice::from_ref(&a),
        "a second copy was stored"
    );
    assert_eq!(blobs.get(&a).expect("get"), b"same bytes");
}

/// Bytes come back exactly, for empty, binary and large blobs.
pub fn blob_bytes_round_trip(_meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let large: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    for bytes in [
        Vec::new(),
        b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
        binary,
        large,
    ] {
        let id = blobs.put(&bytes).expect("put");
        assert!(blobs.exists(&id).expect("exists"));
        let back = blobs.get(&id).expect("get");
        assert!(
            back == bytes,
            "round trip of {} bytes changed them",
            bytes.len()
        );
    }
    assert!(!blobs.exists(&BlobId::of(b"absent")).expect("exists"));
}

/// `list` returns every blob; `delete` removes one and is a no-op for a missing blob.
pub fn blob_list_and_delete(_meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    assert!(
        blobs.list().expect("list").is_empty(),
        "fresh blob store not empty"
    );
    let ids: Vec<BlobId> = (0..20)
        .map(|i| blobs.put(format!("blob {i}").as_bytes()).expect("put"))
        .collect();
    assert_eq!(sorted(blobs.list().expect("list")), sorted(ids.clone()));
    blobs.delete(&ids[3]).expect("delete");
    assert!(!blobs.exists(&ids[3]).expect("exists"));
    assert!(
        matches!(blobs.get(&ids[3]), Err(StoreError::NotFound(_))),
        "deleted blob readable"
    );
    blobs
        .delete(&ids[3])
        .expect("deleting a missing blob is not an error");
    let mut rest = ids.clone();
    rest.remove(3);
    assert_eq!(sorted(blobs.list().expect("list")), sorted(rest));
}

/// `BlobId::parse` accepts exactly 64 lower-case hex digits.
pub fn blob_id_parse_rejects_bad_ids(_meta: &dyn MetaStore, _blobs: &dyn BlobStore) {
    let good = BlobId::of(b"");
    assert_eq!(
        good.0,
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    assert_eq!(BlobId::parse(&good.0), Some(good.clone()));
    assert_eq!(good.to_string(), good.0);
    let bad = [
        String::new(),
        good.0[..63].to_owned(),
        format!("{}0", good.0),
        good.0.to_uppercase(),
        format!("g{}", &good.0[1..]),
        format!("../{}", &good.0[3..]),
        format!(" {}", &good.0[1..]),
        format!("{}é", &good.0[..62]),
    ];
    for s in bad {
        assert_eq!(BlobId::parse(&s), None, "accepted bad id {s:?}");
    }
}

/// `collect_orphan_blobs` removes exactly the blobs no message references.
pub fn collect_orphan_blobs_removes_only_unreferenced(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let kept = message(blobs, b"referenced", &[]);
    meta.append_messages(f.id, std::slice::from_ref(&kept))
        .expect("append");
    blobs.put(b"orphan 1").expect("put");
    blobs.put(b"orphan 2").expect("put");
    assert_eq!(collect_orphan_blobs(meta, blobs).expect("collect"), 2);
    assert_eq!(
        blobs.list().expect("list"),
        std::slice::from_ref(&kept.blob)
    );
    assert_eq!(
        collect_orphan_blobs(meta, blobs).expect("collect"),
        0,
        "second pass"
    );
    assert_eq!(blobs.get(&kept.blob).expect("get"), b"referenced");
}

// ---------------------------------------------------------------------------------------
// Outbound queue (DESIGN §3)

fn queued(blobs: &dyn BlobStore, id: &str, bytes: &[u8], rcpts: &[&str]) -> QueuedMessage {
    let blob = blobs.put(bytes).expect("blob put");
    QueuedMessage {
        id: id.to_owned(),
        sender: "alice@example.com".to_owned(),
        envid: Some("env-1".to_owned()),
        ret: Some("HDRS".to_owned()),
        size: bytes.len() as u64,
        blob,
        created: 1_700_000_000,
        next_attempt: 1_700_000_000,
        recipients: rcpts
            .iter()
            .map(|a| {
                let mut r = QueuedRecipient::new(*a);
                r.notify = Some("FAILURE,DELAY".to_owned());
                r.orcpt = Some(format!("rfc822;{a}"));
                r
            })
            .collect(),
    }
}

/// Queue rows round-trip with their per-recipient state; updates count attempts; a
/// duplicate id is a `Conflict`; dequeue reports the blob once nothing references it.
pub fn queue_enqueue_list_update_dequeue(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let a = queued(
        blobs,
        "65000000-00000001",
        b"queued a",
        &["y@remote.test", "z@remote.test"],
    );
    let mut b = queued(blobs, "65000000-00000002", b"queued b", &["w@remote.test"]);
    b.next_attempt = 1_600_000_000;
    b.recipients[0].route = Some("mx.branch.test:25".to_owned());
    meta.enqueue(&a).expect("enqueue a");
    meta.enqueue(&b).expect("enqueue b");
    assert!(
        matches!(meta.enqueue(&a), Err(StoreError::Conflict { .. })),
        "duplicate queue id must conflict"
    );
    let all = meta.queued_messages().expect("list");
    assert_eq!(all, vec![b.clone(), a.clone()], "ordered by next attempt");
    assert_eq!(meta.queued_message(&a.id).expect("get"), Some(a.clone()));
    assert_eq!(meta.queued_message("nope").expect("get"), None);

    meta.update_queue_recipient(
        &a.id,
        "z@remote.test",
        QueueRcptState::Deferred,
        Some("451 try later"),
        1_700_001_800,
    )
    .expect("update");
    let got = meta
        .queued_message(&a.id)
        .expect("get")
        .expect("still queued");
    assert_eq!(got.next_attempt, 1_700_001_800);
    assert_eq!(
        got.recipients[0], a.recipients[0],
        "other recipient untouched"
    );
    assert_eq!(got.recipients[1].state, QueueRcptState::Deferred);
    assert_eq!(got.recipients[1].attempts, 1);
    assert_eq!(
        got.recipients[1].last_error.as_deref(),
        Some("451 try later")
    );
    assert!(matches!(
        meta.update_queue_recipient(&a.id, "nobody@remote.test", QueueRcptState::Failed, None, 0),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        meta.update_queue_recipient("nope", "z@remote.test", QueueRcptState::Failed, None, 0),
        Err(StoreError::NotFound(_))
    ));

    // The same bytes in a mailbox keep the blob alive after dequeue.
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let kept = message(blobs, b"queued b", &[]);
    meta.append_messages(f.id, std::slice::from_ref(&kept))
        .expect("append");
    assert_eq!(meta.blob_refcount(&b.blob).expect("refcount"), 2);
    assert_eq!(
        meta.dequeue(&b.id).expect("dequeue b"),
        Vec::<BlobId>::new()
    );
    assert_eq!(
        meta.dequeue(&a.id).expect("dequeue a"),
        vec![a.blob.clone()]
    );
    assert_eq!(
        meta.dequeue(&a.id).expect("dequeue again"),
        Vec::<BlobId>::new()
    );
    assert!(meta.queued_messages().expect("list").is_empty());
}

/// `collect_orphan_blobs` never deletes the bytes of a queued message, and expunging a
/// mailbox copy does not report a still-queued blob as lost.
pub fn queued_blobs_survive_orphan_collection(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let q = queued(
        blobs,
        "65000000-00000003",
        b"only queued",
        &["y@remote.test"],
    );
    meta.enqueue(&q).expect("enqueue");
    blobs.put(b"orphan").expect("put");
    assert_eq!(meta.blob_refcount(&q.blob).expect("refcount"), 1);
    assert_eq!(collect_orphan_blobs(meta, blobs).expect("collect"), 1);
    assert_eq!(
        blobs.get(&q.blob).expect("queued blob kept"),
        b"only queued"
    );

    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let copy = message(blobs, b"only queued", &[]);
    let uids = meta
        .append_messages(f.id, std::slice::from_ref(&copy))
        .expect("append");
    let lost = meta.expunge(f.id, &[uids[0].0]).expect("expunge");
    assert!(
        lost.is_empty(),
        "a queued blob is not lost by expunge: {lost:?}"
    );
    assert_eq!(meta.dequeue(&q.id).expect("dequeue"), vec![q.blob.clone()]);
    assert_eq!(collect_orphan_blobs(meta, blobs).expect("collect"), 1);
}

/// `claim_queued` returns only due, unleased messages (with recipients), leases them so a
/// second claim gets nothing until the lease expires or is released, and honours `limit`.
pub fn queue_claim_lease_release(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let mut a = queued(blobs, "65000000-00000011", b"claim a", &["x@remote.test"]);
    a.next_attempt = 100;
    let mut b = queued(blobs, "65000000-00000012", b"claim b", &["y@remote.test"]);
    b.next_attempt = 200;
    let mut later = queued(blobs, "65000000-00000013", b"claim c", &["z@remote.test"]);
    later.next_attempt = 10_000;
    for m in [&a, &b, &later] {
        meta.enqueue(m).expect("enqueue");
    }
    let got = meta.claim_queued(1_000, 600, 1).expect("claim one");
    assert_eq!(got.len(), 1, "limit honoured");
    assert_eq!(got[0].id, a.id, "oldest due first");
    assert_eq!(got[0].recipients, a.recipients, "recipients included");
    let got = meta.claim_queued(1_000, 600, 10).expect("claim rest");
    assert_eq!(
        got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [b.id.as_str()],
        "leased and not-yet-due messages are skipped"
    );
    assert!(meta.claim_queued(1_000, 600, 10).expect("again").is_empty());
    assert!(meta.release_queued(&a.id).expect("release"));
    assert!(!meta.release_queued("nope").expect("release missing"));
    let got = meta.claim_queued(1_000, 600, 10).expect("after release");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, a.id);
    // The lease of b (until 1600) has expired at 1600.
    let got = meta.claim_queued(1_600, 600, 10).expect("after expiry");
    let ids: Vec<_> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, [a.id.clone(), b.id.clone()]);
}

/// `complete_queued` (group commit): per message, the recipient updates, then a dequeue
/// once every recipient is final (blob reported when unreferenced) or a lease release;
/// a message deleted meanwhile is `Gone` without failing the batch.
pub fn queue_group_completion(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    use crate::{QueueCompletion, QueueOutcome, RecipientUpdate};

    let done = queued(blobs, "65000000-00000021", b"group a", &["a@remote.test"]);
    let part = queued(
        blobs,
        "65000000-00000022",
        b"group b",
        &["b@remote.test", "c@remote.test"],
    );
    let gone = queued(blobs, "65000000-00000023", b"group c", &["d@remote.test"]);
    for m in [&done, &part, &gone] {
        meta.enqueue(m).expect("enqueue");
    }
    assert_eq!(
        meta.claim_queued(2_000_000_000, 600, 10)
            .expect("claim")
            .len(),
        3
    );
    meta.dequeue(&gone.id).expect("admin deletes one");
    let update = |a: &str, state| RecipientUpdate {
        address: a.to_owned(),
        state,
        error: None,
    };
    let batch = [
        QueueCompletion {
            id: done.id.clone(),
            next_attempt: 5,
            updates: vec![update("a@remote.test", QueueRcptState::Delivered)],
        },
        QueueCompletion {
            id: gone.id.clone(),
            next_attempt: 5,
            updates: vec![update("d@remote.test", QueueRcptState::Delivered)],
        },
        QueueCompletion {
            id: part.id.clone(),
            next_attempt: 7,
            updates: vec![
                update("b@remote.test", QueueRcptState::Failed),
                RecipientUpdate {
                    error: Some("451 4.3.0 try later".to_owned()),
                    ..update("c@remote.test", QueueRcptState::Deferred)
                },
            ],
        },
    ];
    let out = meta.complete_queued(&batch).expect("complete");
    assert_eq!(
        out,
        vec![
            QueueOutcome::Dequeued(vec![done.blob.clone()]),
            QueueOutcome::Gone,
            QueueOutcome::Released,
        ]
    );
    assert_eq!(meta.queued_message(&done.id).expect("get"), None);
    let p = meta
        .queued_message(&part.id)
        .expect("get")
        .expect("still queued");
    assert_eq!(p.next_attempt, 7);
    assert_eq!(p.recipients[0].state, QueueRcptState::Failed);
    assert_eq!(p.recipients[1].state, QueueRcptState::Deferred);
    assert_eq!(p.recipients[1].attempts, 1);
    assert_eq!(
        p.recipients[1].last_error.as_deref(),
        Some("451 4.3.0 try later")
    );
    // Released: claimable again at its next attempt.
    let again = meta.claim_queued(7, 600, 10).expect("claim again");
    assert_eq!(again.len(), 1, "released lease");
    // The last recipient final: dequeued.
    let out = meta
        .complete_queued(&[QueueCompletion {
            id: part.id.clone(),
            next_attempt: 9,
            updates: vec![update("c@remote.test", QueueRcptState::Delivered)],
        }])
        .expect("complete rest");
    assert_eq!(out, vec![QueueOutcome::Dequeued(vec![part.blob.clone()])]);
    assert!(meta.complete_queued(&[]).expect("empty batch").is_empty());
}

/// `set_queue_next_attempt` moves the next attempt; `mark_queue_warned` is true once.
pub fn queue_next_attempt_and_warned_mark(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let mut a = queued(blobs, "65000000-00000021", b"warn a", &["x@remote.test"]);
    a.next_attempt = 5_000;
    meta.enqueue(&a).expect("enqueue");
    assert!(
        meta.claim_queued(1_000, 60, 10)
            .expect("not due")
            .is_empty()
    );
    assert!(meta.set_queue_next_attempt(&a.id, 0).expect("retry now"));
    assert!(!meta.set_queue_next_attempt("nope", 0).expect("missing"));
    assert_eq!(meta.claim_queued(1_000, 60, 10).expect("due").len(), 1);
    assert_eq!(
        meta.queued_message(&a.id)
            .expect("get")
            .expect("queued")
            .next_attempt,
        0
    );
    assert!(meta.mark_queue_warned(&a.id).expect("first mark"));
    assert!(!meta.mark_queue_warned(&a.id).expect("second mark"));
    assert!(!meta.mark_queue_warned("nope").expect("missing"));
}

// ---------------------------------------------------------------------------------------
// Whole-store methods: integrity check and copying between backends (issue 8)

/// Everything the bulk methods can read: documents, account dumps, queue, counters.
pub type Snapshot = (Vec<Doc>, Vec<AccountDump>, Vec<QueueDump>, StoreCounters);

/// The data the bulk checks use, for a backend's own cross-backend copy test.
pub fn populate_for_copy(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    populate(meta, blobs);
}

/// What the bulk methods read from `meta`, for comparing two stores.
pub fn snapshot_for_copy(meta: &dyn MetaStore) -> Snapshot {
    snapshot(meta)
}

fn snapshot(meta: &dyn MetaStore) -> Snapshot {
    let docs = meta.all_docs().expect("all_docs");
    let accounts = meta
        .accounts()
        .expect("accounts")
        .iter()
        .map(|a| {
            let mut dump = meta.export_account(a).expect("export_account");
            // Tombstone ids are store-local (nothing refers to them).
            for t in &mut dump.tombstones {
                t.id = 0;
            }
            dump
        })
        .collect();
    let queue = meta.export_queue().expect("export_queue");
    (docs, accounts, queue, meta.counters().expect("counters"))
}

/// A store with documents, two accounts (renamed, deleted and flagged folders, expunged
/// messages), a moved account, and queued messages, one of them warned and one deferred.
fn populate(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    meta.transact(&mut |t| {
        t.put("domain", "example.com", "", &json("d"))?;
        t.put("user", "alice@example.com", "example.com", &json("a"))?;
        t.put("user", "alice@example.com", "example.com", &json("a2"))?;
        t.put("user", "bob@example.com", "example.com", &json("b"))?;
        t.put(
            "setting",
            "general",
            "",
            &serde_json::json!({"hostname": "mx"}),
        )?;
        Ok(())
    })
    .expect("docs");
    let inbox = meta
        .create_folder("alice@example.com", "INBOX", FolderKind::Mail)
        .expect("inbox");
    let gone = meta
        .create_folder("alice@example.com", "Old", FolderKind::Mail)
        .expect("old");
    let work = meta
        .create_folder("alice@example.com", "Work", FolderKind::Calendar)
        .expect("work");
    let msgs: Vec<NewMessage> = (0..6)
        .map(|i| {
            message(
                blobs,
                format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(),
                if i % 2 == 0 { &["\\Seen"] } else { &[] },
            )
        })
        .collect();
    let added = meta.append_messages(inbox.id, &msgs).expect("append");
    meta.set_flags(
        inbox.id,
        added[1].0,
        &["\\Flagged".into(), "$Label1".into()],
    )
    .expect("flags");
    // As `keel-mail` does: blobs that lost their last reference are deleted.
    for lost in meta.expunge(inbox.id, &[added[2].0]).expect("expunge") {
        blobs.delete(&lost).expect("delete lost blob");
    }
    meta.append_messages(gone.id, &msgs[..1])
        .expect("append old");
    for lost in meta.delete_folder(gone.id).expect("delete old") {
        blobs.delete(&lost).expect("delete lost blob");
    }
    meta.rename_folder(work.id, "Projects").expect("rename");
    meta.append_messages(work.id, &msgs[3..])
        .expect("append work");
    let bob = meta
        .create_folder("bob@example.com", "INBOX", FolderKind::Mail)
        .expect("bob");
    meta.append_messages(bob.id, &[message(blobs, b"Subject: bob\r\n\r\nx\r\n", &[])])
        .expect("append bob");
    // A deleted item kept for recovery (guide §7.4): a tombstone holding its blob.
    let kept = meta
        .append_messages(
            bob.id,
            &[message(
                blobs,
                b"Subject: kept\r\n\r\nx\r\n",
                &["\\Deleted"],
            )],
        )
        .expect("append bob");
    meta.expunge_retaining(bob.id, &[kept[0].0], 1_750_000_000)
        .expect("expunge retaining");
    meta.create_folder("carol@example.com", "INBOX", FolderKind::Mail)
        .expect("carol");
    meta.move_account_folders("carol@example.com", "bob@example.com", "Carol")
        .expect("move");

    let a = queued(
        blobs,
        "65000000-00000031",
        b"queued 1",
        &["x@remote.test", "y@remote.test"],
    );
    let b = queued(blobs, "65000000-00000032", b"queued 2", &["z@remote.test"]);
    meta.enqueue(&a).expect("enqueue");
    meta.enqueue(&b).expect("enqueue");
    meta.update_queue_recipient(
        &a.id,
        "y@remote.test",
        QueueRcptState::Deferred,
        Some("451 later"),
        1_700_000_900,
    )
    .expect("update");
    assert!(meta.mark_queue_warned(&b.id).expect("warned"));
}

/// Export, erase, import: the re-export is identical (UIDs, UIDVALIDITY, modseqs, flags,
/// change log, usage, document versions, queue state, counters), new ids and UIDVALIDITY
/// values continue above the imported ones, and modseqs continue from the imported ones.
pub fn bulk_export_erase_import_round_trip(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    assert!(meta.is_empty().expect("is_empty"), "fresh store is empty");
    populate(meta, blobs);
    assert!(!meta.is_empty().expect("is_empty"));
    let before = snapshot(meta);
    let (docs, accounts, queue, counters) = &before;
    assert_eq!(docs.len(), 4);
    assert_eq!(
        docs.iter()
            .find(|d| d.key == "alice@example.com")
            .map(|d| d.version),
        Some(2)
    );
    assert_eq!(
        accounts
            .iter()
            .map(|a| a.account.as_str())
            .collect::<Vec<_>>(),
        ["alice@example.com", "bob@example.com", "carol@example.com"],
        "accounts with folders, usage or change log, sorted"
    );
    assert_eq!(queue.len(), 2);
    assert!(queue.iter().any(|q| q.warned) && queue.iter().any(|q| !q.warned));
    assert!(counters.last_folder_id >= 5, "{counters:?}");
    assert!(counters.uid_validity > 0);

    meta.erase_all().expect("erase");
    assert!(meta.is_empty().expect("is_empty"), "erased store is empty");
    assert!(meta.accounts().expect("accounts").is_empty());
    assert_eq!(
        meta.counters().expect("counters"),
        *counters,
        "counters kept"
    );

    meta.import_docs(docs).expect("import docs");
    for a in accounts {
        meta.import_account(a).expect("import account");
    }
    for q in queue {
        meta.import_queued(q).expect("import queued");
    }
    meta.import_counters(counters).expect("import counters");
    assert_eq!(snapshot(meta), before, "re-export differs from the export");
    let alice = &accounts[0];
    let inbox = &alice
        .folders
        .iter()
        .find(|f| f.folder.name == "INBOX")
        .expect("inbox");
    let uids: Vec<u32> = inbox.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 4, 5, 6], "UIDs kept, expunged gap included");
    assert_eq!(
        meta.usage("alice@example.com").expect("usage"),
        alice.usage,
        "usage imported"
    );

    // Ids, UIDVALIDITY and modseqs continue above the imported values.
    let fresh = meta
        .create_folder("alice@example.com", "New", FolderKind::Mail)
        .expect("create after import");
    assert!(fresh.id > counters.last_folder_id, "folder id reused");
    assert!(
        fresh.uid_validity > counters.uid_validity,
        "UIDVALIDITY went back"
    );
    assert_eq!(fresh.highest_modseq, alice.highest_modseq + 1);
    let added = meta
        .append_messages(inbox.folder.id, &[message(blobs, b"after", &[])])
        .expect("append after import");
    assert_eq!(added[0].0, inbox.folder.uid_next, "next UID kept");
    assert_eq!(added[0].1, alice.highest_modseq + 2);
    let f = meta
        .get_folder("alice@example.com", "INBOX")
        .expect("get")
        .expect("inbox");
    assert_eq!(f.messages, inbox.folder.messages + 1, "counters continue");
    // The queue is claimable at once (no lease was copied) and the warned mark kept.
    let claimed = meta.claim_queued(i64::MAX / 2, 60, 10).expect("claim");
    assert_eq!(claimed.len(), 2);
    let warned = queue.iter().find(|q| q.warned).expect("warned item");
    assert!(!meta.mark_queue_warned(&warned.message.id).expect("mark"));
    // A second erase-import round trip keeps the counters from going back.
    let again = meta.counters().expect("counters");
    meta.import_counters(&StoreCounters::default())
        .expect("lower counters");
    assert_eq!(
        meta.counters().expect("counters"),
        again,
        "counters never go back"
    );
}

/// Importing an account, a document or a queued message that exists is a `Conflict`, and
/// the failed import leaves nothing behind.
pub fn bulk_import_refuses_duplicates(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    populate(meta, blobs);
    let (docs, accounts, queue, _) = snapshot(meta);
    assert!(matches!(
        meta.import_docs(&docs[..1]),
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        meta.import_account(&accounts[0]),
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        meta.import_queued(&queue[0]),
        Err(StoreError::Conflict { .. })
    ));
    // A new account whose folder id clashes: the whole account is rolled back.
    let mut clash = accounts[0].clone();
    clash.account = "dave@example.com".into();
    assert!(matches!(
        meta.import_account(&clash),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        meta.usage("dave@example.com").expect("usage"),
        Usage::default()
    );
    assert!(
        !meta
            .accounts()
            .expect("accounts")
            .contains(&"dave@example.com".to_owned())
    );
    let mut bad = accounts[1].clone();
    bad.account = "erin@example.com".into();
    bad.folders.clear();
    bad.changes.clear();
    meta.import_account(&bad)
        .expect("an account without folders imports");
    assert_eq!(snapshot(meta).0, docs, "documents unchanged");
}

/// `check_store` of a consistent store is clean; `recount` changes nothing on it.
pub fn check_store_is_clean_and_recount_keeps_counters(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
) {
    populate(meta, blobs);
    let r = crate::check::check_store(meta, blobs, false).expect("check");
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.accounts, 3);
    assert_eq!(r.queued, 2);
    assert!(r.messages >= 8, "{r}");
    let before = snapshot(meta);
    meta.recount().expect("recount");
    assert_eq!(
        snapshot(meta),
        before,
        "recount of a consistent store changed it"
    );
    let orphan = blobs.put(b"orphan for check").expect("put");
    let r = crate::check::check_store(meta, blobs, true).expect("repair");
    assert_eq!(r.orphan_blobs, vec![orphan.clone()]);
    assert_eq!(r.orphans_removed, 1);
    assert!(!blobs.exists(&orphan).expect("exists"));
    assert!(
        crate::check::check_store(meta, blobs, false)
            .expect("check")
            .is_clean()
    );
}

/// `transfer::copy_store` from a populated store into an erased copy of itself (the same
/// backend stands in for the target): everything arrives, stale target blobs are
/// pruned, and a non-empty target is refused.
pub fn copy_store_into_a_second_store_keeps_everything(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
) {
    use crate::transfer::copy_store;
    populate(meta, blobs);
    assert!(matches!(
        copy_store(meta, blobs, meta, blobs, &mut |_| {}),
        Err(StoreError::Aborted(_))
    ));
    // Source: an in-memory copy of the snapshot and the bytes; target: the erased store.
    let before = snapshot(meta);
    let bytes: Vec<(BlobId, Vec<u8>)> = blobs
        .list()
        .expect("list")
        .into_iter()
        .map(|id| {
            let b = blobs.get(&id).expect("get");
            (id, b)
        })
        .collect();
    let source = MemSource::new(&before, bytes);
    meta.erase_all().expect("erase");
    let stale = blobs.put(b"stale target blob").expect("put");
    let mut calls = 0;
    let sum = copy_store(&source, &source, meta, blobs, &mut |_| calls += 1).expect("copy");
    assert!(calls > 3, "progress reported");
    assert_eq!(snapshot(meta), before, "copied store differs");
    assert_eq!(sum.accounts, 3);
    assert_eq!(sum.queued, 2);
    assert_eq!(sum.documents, 4);
    assert_eq!(sum.pruned_blobs, 1);
    assert!(!blobs.exists(&stale).expect("exists"), "stale blob pruned");
    assert!(sum.missing_blobs.is_empty());
    let r = crate::check::check_store(meta, blobs, false).expect("check");
    assert!(r.is_clean(), "{r}");
}

/// Every orphan candidate is a stored blob (a shared store may offer fewer).
pub fn blob_orphan_candidates_are_stored_blobs(_meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let ids: Vec<BlobId> = (0..5)
        .map(|i| blobs.put(format!("candidate {i}").as_bytes()).expect("put"))
        .collect();
    let listed: BTreeSet<BlobId> = blobs.list().expect("list").into_iter().collect();
    assert_eq!(listed, ids.iter().cloned().collect());
    for c in blobs.orphan_candidates().expect("candidates") {
        assert!(listed.contains(&c), "candidate {c} is not stored");
    }
}

/// A read-only source built from a snapshot, for [`copy_store_into_a_second_store_keeps_everything`].
struct MemSource {
    snap: Snapshot,
    bytes: std::collections::HashMap<BlobId, Vec<u8>>,
}

impl MemSource {
    fn new(snap: &Snapshot, bytes: Vec<(BlobId, Vec<u8>)>) -> Self {
        Self {
            snap: snap.clone(),
            bytes: bytes.into_iter().collect(),
        }
    }
    fn account(&self, account: &str) -> Option<&AccountDump> {
        self.snap.1.iter().find(|a| a.account == account)
    }
}

fn read_only() -> StoreError {
    StoreError::Backend("read-only test source".into())
}

impl MetaStore for MemSource {
    fn get_doc(&self, kind: &str, key: &str) -> crate::StoreResult<Option<Doc>> {
        Ok(self
            .snap
            .0
            .iter()
            .find(|d| d.kind == kind && d.key == key)
            .cloned())
    }
    fn list_docs(&self, kind: &str, _parent: Option<&str>) -> crate::StoreResult<Vec<Doc>> {
        Ok(self
            .snap
            .0
            .iter()
            .filter(|d| d.kind == kind)
            .cloned()
            .collect())
    }
    fn transact(
        &self,
        _f: &mut dyn FnMut(&mut dyn crate::DocTxn) -> crate::StoreResult<()>,
    ) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn docs_generation(&self) -> crate::StoreResult<u64> {
        Ok(0)
    }
    fn create_folder(&self, _: &str, _: &str, _: FolderKind) -> crate::StoreResult<crate::Folder> {
        Err(read_only())
    }
    fn list_folders(&self, account: &str) -> crate::StoreResult<Vec<crate::Folder>> {
        Ok(self
            .account(account)
            .map(|a| a.folders.iter().map(|f| f.folder.clone()).collect())
            .unwrap_or_default())
    }
    fn get_folder(&self, account: &str, name: &str) -> crate::StoreResult<Option<crate::Folder>> {
        Ok(self
            .list_folders(account)?
            .into_iter()
            .find(|f| f.name == name))
    }
    fn rename_folder(&self, _: i64, _: &str) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn delete_folder(&self, _: i64) -> crate::StoreResult<Vec<BlobId>> {
        Err(read_only())
    }
    fn move_account_folders(&self, _: &str, _: &str, _: &str) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn delete_account_data(&self, _: &str) -> crate::StoreResult<Vec<BlobId>> {
        Err(read_only())
    }
    fn append_messages(&self, _: i64, _: &[NewMessage]) -> crate::StoreResult<Vec<(u32, u64)>> {
        Err(read_only())
    }
    fn list_messages(&self, folder: i64) -> crate::StoreResult<Vec<crate::MessageMeta>> {
        self.snap
            .1
            .iter()
            .flat_map(|a| &a.folders)
            .find(|f| f.folder.id == folder)
            .map(|f| f.messages.clone())
            .ok_or_else(|| StoreError::NotFound(format!("folder {folder}")))
    }
    fn set_flags(&self, _: i64, _: u32, _: &[String]) -> crate::StoreResult<u64> {
        Err(read_only())
    }
    fn expunge(&self, _: i64, _: &[u32]) -> crate::StoreResult<Vec<BlobId>> {
        Err(read_only())
    }
    fn highest_modseq(&self, account: &str) -> crate::StoreResult<u64> {
        Ok(self.account(account).map_or(0, |a| a.highest_modseq))
    }
    fn changes_since(&self, account: &str, since: u64) -> crate::StoreResult<Vec<crate::Change>> {
        Ok(self
            .account(account)
            .map(|a| {
                a.changes
                    .iter()
                    .filter(|c| c.modseq > since)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
    fn usage(&self, account: &str) -> crate::StoreResult<Usage> {
        Ok(self.account(account).map(|a| a.usage).unwrap_or_default())
    }
    fn messages_added_at(&self, folder: i64) -> crate::StoreResult<Vec<i64>> {
        Ok(self
            .snap
            .1
            .iter()
            .flat_map(|a| &a.folders)
            .find(|f| f.folder.id == folder)
            .map(|f| f.added_at.clone())
            .unwrap_or_default())
    }
    fn tombstones(&self, account: &str, since: i64) -> crate::StoreResult<Vec<crate::Tombstone>> {
        Ok(self
            .account(account)
            .map(|a| {
                a.tombstones
                    .iter()
                    .filter(|t| t.expunged_at >= since)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
    fn blob_refcount(&self, _: &BlobId) -> crate::StoreResult<u64> {
        Err(read_only())
    }
    fn enqueue(&self, _: &QueuedMessage) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn queued_messages(&self) -> crate::StoreResult<Vec<QueuedMessage>> {
        Ok(self.snap.2.iter().map(|q| q.message.clone()).collect())
    }
    fn queued_message(&self, id: &str) -> crate::StoreResult<Option<QueuedMessage>> {
        Ok(self
            .snap
            .2
            .iter()
            .find(|q| q.message.id == id)
            .map(|q| q.message.clone()))
    }
    fn update_queue_recipient(
        &self,
        _: &str,
        _: &str,
        _: QueueRcptState,
        _: Option<&str>,
        _: i64,
    ) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn dequeue(&self, _: &str) -> crate::StoreResult<Vec<BlobId>> {
        Err(read_only())
    }
    fn accounts(&self) -> crate::StoreResult<Vec<String>> {
        Ok(self.snap.1.iter().map(|a| a.account.clone()).collect())
    }
    fn all_docs(&self) -> crate::StoreResult<Vec<Doc>> {
        Ok(self.snap.0.clone())
    }
    fn export_queue(&self) -> crate::StoreResult<Vec<QueueDump>> {
        Ok(self.snap.2.clone())
    }
    fn counters(&self) -> crate::StoreResult<StoreCounters> {
        Ok(self.snap.3)
    }
}

impl BlobStore for MemSource {
    fn put(&self, _: &[u8]) -> crate::StoreResult<BlobId> {
        Err(read_only())
    }
    fn get(&self, id: &BlobId) -> crate::StoreResult<Vec<u8>> {
        self.bytes
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("blob {id}")))
    }
    fn exists(&self, id: &BlobId) -> crate::StoreResult<bool> {
        Ok(self.bytes.contains_key(id))
    }
    fn delete(&self, _: &BlobId) -> crate::StoreResult<()> {
        Err(read_only())
    }
    fn list(&self) -> crate::StoreResult<Vec<BlobId>> {
        Ok(self.bytes.keys().cloned().collect())
    }
}

// ---------------------------------------------------------------------------------------
// Incremental change propagation (IMAP sessions, RFC 9051 §7.4-§7.5, RFC 7162 §3.2.5.1)

/// `list_messages_changed_since` returns exactly the rows whose modseq is above the given
/// one (appended or flag-changed since), ordered by UID, never expunged ones; and agrees
/// with `list_messages` filtered by modseq.
pub fn messages_changed_since_returns_changed_rows(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let other = meta
        .create_folder("alice", "Other", FolderKind::Mail)
        .expect("create other");
    meta.append_messages(
        f.id,
        &[
            message(blobs, b"one", &[]),
            message(blobs, b"two", &[]),
            message(blobs, b"three", &["\\Seen"]),
        ],
    )
    .expect("append");
    let mark = meta.highest_modseq("alice").expect("modseq");
    assert!(
        meta.list_messages_changed_since(f.id, mark)
            .expect("nothing changed")
            .is_empty(),
        "no row changed after the account's highest modseq"
    );
    // After the mark: a flag change on 2, an expunge of 1, a new message 4, a change in
    // another folder, and a STORE that changes nothing (no new modseq, RFC 7162 §3.1).
    let m2 = meta
        .set_flags(f.id, 2, &["\\Flagged".to_owned()])
        .expect("flags");
    meta.set_flags(f.id, 3, &["\\Seen".to_owned()])
        .expect("same flags");
    meta.expunge(f.id, &[1]).expect("expunge");
    let added = meta
        .append_messages(f.id, &[message(blobs, b"four", &["$Junk"])])
        .expect("append");
    meta.append_messages(other.id, &[message(blobs, b"elsewhere", &[])])
        .expect("append other");
    let changed = meta
        .list_messages_changed_since(f.id, mark)
        .expect("changed");
    let got: Vec<(u32, Vec<String>, u64)> = changed
        .iter()
        .map(|m| (m.uid, m.flags.clone(), m.modseq))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, vec!["\\Flagged".to_owned()], m2),
            (4, vec!["$Junk".to_owned()], added[0].1),
        ],
        "changed rows after the mark, by UID"
    );
    assert!(changed.iter().all(|m| m.folder == f.id));
    assert_eq!(changed[1].blob, BlobId::of(b"four"));
    assert_eq!(changed[1].size, 4);
    // Any position agrees with the full listing filtered by modseq.
    let all = meta.list_messages(f.id).expect("list");
    for since in 0..=meta.highest_modseq("alice").expect("modseq") {
        let want: Vec<_> = all.iter().filter(|m| m.modseq > since).cloned().collect();
        assert_eq!(
            meta.list_messages_changed_since(f.id, since)
                .expect("changed"),
            want,
            "rows changed since {since}"
        );
    }
    // The expunge is in the change log, not in the rows.
    let expunged: Vec<u32> = meta
        .changes_since("alice", mark)
        .expect("changes")
        .iter()
        .filter(|c| c.folder == f.id && c.kind == ChangeKind::MessageExpunged)
        .map(|c| c.uid)
        .collect();
    assert_eq!(expunged, [1]);
    assert!(
        matches!(
            meta.list_messages_changed_since(f.id + 1000, 0),
            Err(StoreError::NotFound(_))
        ),
        "a missing folder is NotFound"
    );
    meta.delete_folder(f.id).expect("delete");
    assert!(
        matches!(
            meta.list_messages_changed_since(f.id, 0),
            Err(StoreError::NotFound(_))
        ),
        "a deleted folder is NotFound"
    );
}

/// Every modseq an account hands out has exactly one change-log row, so the log read
/// from any position is gap-free (IMAP sessions treat a gap as a log they cannot trust
/// and reload the folder).
pub fn change_log_has_one_row_per_modseq(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let g = meta
        .create_folder("alice", "Old", FolderKind::Mail)
        .expect("create");
    meta.append_messages(
        f.id,
        &[message(blobs, b"one", &[]), message(blobs, b"two", &[])],
    )
    .expect("append");
    meta.append_messages(g.id, &[message(blobs, b"three", &[])])
        .expect("append");
    meta.set_flags(f.id, 1, &["\\Seen".to_owned()])
        .expect("flags");
    meta.set_flags(f.id, 1, &["\\Seen".to_owned()])
        .expect("unchanged flags");
    meta.expunge(f.id, &[2, 99]).expect("expunge");
    meta.rename_folder(g.id, "Older").expect("rename");
    meta.delete_folder(g.id).expect("delete");
    let top = meta.highest_modseq("alice").expect("modseq");
    let modseqs: Vec<u64> = meta
        .changes_since("alice", 0)
        .expect("changes")
        .iter()
        .map(|c| c.modseq)
        .collect();
    assert_eq!(
        modseqs,
        (1..=top).collect::<Vec<_>>(),
        "one change-log row per modseq"
    );
}

/// `set_flags_many` (IMAP STORE on a range): a new modseq and change-log row per changed
/// message, the old modseq for unchanged flags, `None` for a message that is gone, the
/// unseen counter kept; a folder that is gone is `NotFound`.
pub fn set_flags_many_in_one_transaction(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let f = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    meta.append_messages(
        f.id,
        &[
            message(blobs, b"one", &[]),
            message(blobs, b"two", &["\\Seen"]),
            message(blobs, b"three", &[]),
        ],
    )
    .expect("append");
    let before = meta.highest_modseq("alice").expect("modseq");
    let seen = vec!["\\Seen".to_owned()];
    let out = meta
        .set_flags_many(
            f.id,
            &[
                (1, seen.clone()),
                (2, seen.clone()),
                (3, seen.clone()),
                (9, seen),
            ],
        )
        .expect("set_flags_many");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], Some(before + 1));
    assert!(
        out[1].is_some_and(|m| m <= before),
        "unchanged flags keep their modseq"
    );
    assert_eq!(out[2], Some(before + 2));
    assert_eq!(out[3], None, "a message that is gone");
    let folder = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!(folder.unseen, 0);
    assert_eq!(folder.highest_modseq, before + 2);
    let changed: Vec<(u32, ChangeKind)> = meta
        .changes_since("alice", before)
        .expect("changes")
        .into_iter()
        .map(|c| (c.uid, c.kind))
        .collect();
    assert_eq!(
        changed,
        vec![(1, ChangeKind::FlagsChanged), (3, ChangeKind::FlagsChanged)]
    );
    let rows = meta.list_messages(f.id).expect("list");
    assert!(rows.iter().all(|m| m.flags == ["\\Seen"]), "{rows:?}");
    meta.delete_folder(f.id).expect("delete");
    assert!(matches!(
        meta.set_flags_many(f.id, &[(1, Vec::new())]),
        Err(StoreError::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Retention (guide §7.4, §7.5)

/// `expunge_retaining` keeps tombstones that hold their blobs (no orphan, refcount counts
/// them) with the expunged message's metadata; `restore_tombstones` brings those newer than
/// a date back as new messages without `\Deleted` and removes them; `purge_tombstones`
/// removes the old ones and reports blobs that lost their last reference;
/// `delete_account_data` removes an account's tombstones. Plain `expunge` keeps nothing.
pub fn tombstones_keep_restore_and_purge(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let inbox = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let trash = meta
        .create_folder("alice", "Deleted Items", FolderKind::Mail)
        .expect("create");
    let bobs = meta
        .create_folder("bob", "INBOX", FolderKind::Mail)
        .expect("create");
    let m1 = message(blobs, b"retained one", &["\\Seen", "\\Deleted"]);
    let m2 = message(blobs, b"retained two", &["\\Deleted", "$Work"]);
    let m3 = message(blobs, b"retained three", &[]);
    let m4 = message(blobs, b"dropped four", &[]);
    meta.append_messages(inbox.id, &[m1.clone(), m2.clone(), m3.clone(), m4.clone()])
        .expect("append");
    let before = meta.highest_modseq("alice").expect("modseq");

    let lost = meta
        .expunge_retaining(inbox.id, &[1, 2, 99], 1_000)
        .expect("expunge_retaining");
    assert!(lost.is_empty(), "tombstones hold their blobs: {lost:?}");
    assert_counters(meta, "alice", "INBOX", 2, 2);
    assert_eq!(meta.usage("alice").expect("usage").messages, 2);
    let expunged: Vec<u32> = meta
        .changes_since("alice", before)
        .expect("changes")
        .iter()
        .filter(|c| c.kind == ChangeKind::MessageExpunged)
        .map(|c| c.uid)
        .collect();
    assert_eq!(expunged, vec![1, 2], "expunges are in the change log");
    assert_eq!(meta.blob_refcount(&m1.blob).expect("refcount"), 1);
    assert_eq!(collect_orphan_blobs(meta, blobs).expect("collect"), 0);
    assert!(blobs.exists(&m1.blob).expect("exists"));
    let r = crate::check::check_store(meta, blobs, false).expect("check");
    assert!(
        !r.orphan_blobs.contains(&m1.blob),
        "a tombstone's blob is no orphan: {r}"
    );

    let stones = meta.tombstones("alice", 0).expect("tombstones");
    assert_eq!(stones.len(), 2);
    assert_eq!(stones[0].folder, "INBOX");
    assert_eq!(stones[0].blob, m1.blob);
    assert_eq!(stones[0].size, m1.size);
    assert_eq!(stones[0].flags, vec!["\\Deleted", "\\Seen"]);
    assert_eq!(stones[0].internal_date, 1_700_000_000);
    assert_eq!(stones[0].expunged_at, 1_000);
    assert_eq!(stones[1].blob, m2.blob);
    assert!(stones[0].id != stones[1].id);

    // Plain expunge keeps nothing.
    let lost = meta.expunge(inbox.id, &[4]).expect("expunge");
    assert_eq!(lost, vec![m4.blob.clone()]);
    meta.expunge_retaining(inbox.id, &[3], 2_000)
        .expect("expunge_retaining");
    assert_eq!(meta.tombstones("alice", 0).expect("tombstones").len(), 3);
    assert_eq!(
        meta.tombstones("alice", 1_500).expect("tombstones").len(),
        1
    );
    assert!(meta.tombstones("bob", 0).expect("tombstones").is_empty());
    assert_eq!(
        meta.tombstone_accounts().expect("accounts"),
        vec!["alice".to_owned()]
    );

    // Restoring into another account's folder is refused and changes nothing.
    let err = meta
        .restore_tombstones("alice", 0, bobs.id)
        .expect_err("foreign folder");
    assert!(matches!(err, StoreError::Aborted(_)), "{err:?}");
    assert_eq!(meta.tombstones("alice", 0).expect("tombstones").len(), 3);

    // Everything expunged at or after 1000: all three, oldest first.
    let restored = meta
        .restore_tombstones("alice", 1_000, trash.id)
        .expect("restore");
    assert_eq!(
        restored.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "new UIDs in the target folder, oldest first"
    );
    let rows = meta.list_messages(trash.id).expect("list");
    assert_eq!(rows[0].blob, m1.blob);
    assert_eq!(rows[0].flags, vec!["\\Seen"], "\\Deleted is dropped");
    assert_eq!(rows[1].flags, vec!["$Work"]);
    assert_eq!(rows[2].blob, m3.blob);
    assert_counters(meta, "alice", "Deleted Items", 3, 2);
    assert_eq!(meta.usage("alice").expect("usage").messages, 3);
    assert!(meta.tombstones("alice", 0).expect("tombstones").is_empty());
    assert!(
        meta.restore_tombstones("alice", 0, trash.id)
            .expect("restore again")
            .is_empty(),
        "a tombstone is restored once"
    );
    assert_eq!(meta.blob_refcount(&m1.blob).expect("refcount"), 1);

    // Purge: only tombstones older than the cut-off go; a blob goes with its last reference.
    meta.expunge_retaining(trash.id, &[1, 2], 5_000)
        .expect("expunge_retaining");
    meta.expunge_retaining(trash.id, &[3], 9_000)
        .expect("expunge_retaining");
    meta.append_messages(bobs.id, std::slice::from_ref(&m2))
        .expect("append");
    let lost = meta.purge_tombstones("alice", 5_001).expect("purge");
    assert_eq!(lost, vec![m1.blob.clone()], "bob still holds m2's bytes");
    let left = meta.tombstones("alice", 0).expect("tombstones");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].blob, m3.blob);
    assert!(
        meta.purge_tombstones("alice", 5_001)
            .expect("purge again")
            .is_empty(),
        "a second purge (another node) finds nothing"
    );

    // Removing the account's data removes its tombstones.
    let lost = meta.delete_account_data("alice").expect("delete account");
    assert!(lost.contains(&m3.blob), "{lost:?}");
    assert!(meta.tombstones("alice", 0).expect("tombstones").is_empty());
    assert!(meta.tombstone_accounts().expect("accounts").is_empty());
}

/// `messages_added_before` lists the rows that entered a folder before a time (the row's
/// creation, not INTERNALDATE), those that entered first first, at most `limit`.
pub fn messages_added_before_finds_old_entries(meta: &dyn MetaStore, blobs: &dyn BlobStore) {
    let junk = meta
        .create_folder("alice", "Junk E-mail", FolderKind::Mail)
        .expect("create");
    let other = meta
        .create_folder("alice", "Other", FolderKind::Mail)
        .expect("create");
    let msgs: Vec<NewMessage> = (0..3)
        .map(|i| message(blobs, format!("junk {i}").as_bytes(), &[]))
        .collect();
    meta.append_messages(junk.id, &msgs).expect("append");
    meta.append_messages(other.id, &msgs[..1]).expect("append");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let future = now + 3_600;
    assert_eq!(
        meta.messages_added_before(junk.id, future, 1_000)
            .expect("added before"),
        vec![1, 2, 3]
    );
    assert_eq!(
        meta.messages_added_before(junk.id, future, 2)
            .expect("added before"),
        vec![1, 2],
        "limit"
    );
    // INTERNALDATE (2023) is not the age: the rows entered now.
    assert!(
        meta.messages_added_before(junk.id, now - 3_600, 1_000)
            .expect("added before")
            .is_empty()
    );
    assert!(matches!(
        meta.messages_added_before(999_999, future, 10),
        Err(StoreError::NotFound(_))
    ));
}

/// `reindex_folder` stores each message's real size with a new modseq and a change-log row
/// (only where it differed), recounts the folder and `reindex_account` the usage; UIDs,
/// UIDVALIDITY and flags stay. Sizes recorded wrongly at append stand for any corruption of
/// derived data the traits can produce.
pub fn reindex_rebuilds_derived_data_keeping_uids_and_flags(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
) {
    let inbox = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    let other = meta
        .create_folder("alice", "Other", FolderKind::Mail)
        .expect("create");
    let mut msgs: Vec<NewMessage> = (0..3)
        .map(|i| message(blobs, format!("message number {i}").as_bytes(), &[]))
        .collect();
    msgs[0].flags = vec!["\\Seen".into(), "$Work".into()];
    msgs[1].size = 999;
    msgs[2].size = 1;
    meta.append_messages(inbox.id, &msgs).expect("append");
    meta.append_messages(other.id, &msgs[..1]).expect("append");
    let before = meta.list_messages(inbox.id).expect("list");
    let modseq_before = meta.highest_modseq("alice").expect("modseq");
    assert_eq!(meta.usage("alice").expect("usage").bytes, 16 + 999 + 1 + 16);

    let mut derived: Vec<DerivedSize> = before
        .iter()
        .map(|m| DerivedSize {
            uid: m.uid,
            blob: m.blob.clone(),
            size: blobs.get(&m.blob).expect("blob").len() as u64,
        })
        .collect();
    // An entry for a row that is gone (expunged meanwhile) is skipped.
    derived.push(DerivedSize {
        uid: 77,
        blob: before[0].blob.clone(),
        size: 5,
    });
    let r = meta.reindex_folder(inbox.id, &derived).expect("reindex");
    let fixed: Vec<(u32, u64, u64)> = r
        .sizes_fixed
        .iter()
        .map(|f| (f.uid, f.stored, f.actual))
        .collect();
    assert_eq!(fixed, vec![(2, 999, 16), (3, 1, 16)], "sizes fixed");
    assert!(r.flags_normalized.is_empty(), "{:?}", r.flags_normalized);
    assert_eq!(
        (r.before.messages, r.before.unseen, r.before.bytes),
        (3, 2, 16 + 999 + 1)
    );
    assert_eq!(
        (r.after.messages, r.after.unseen, r.after.bytes),
        (3, 2, 48)
    );
    assert_eq!(r.after.uid_next, 4);
    assert_eq!(r.after.highest_modseq, modseq_before + 2);

    let after = meta.list_messages(inbox.id).expect("list");
    assert_eq!(after.len(), 3);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.uid, &b.blob, &b.flags), (a.uid, &a.blob, &a.flags));
        assert_eq!(a.size, 16);
    }
    assert_eq!(
        after[0].modseq, before[0].modseq,
        "unchanged row keeps its modseq"
    );
    assert_eq!(after[1].modseq, modseq_before + 1);
    assert_eq!(after[2].modseq, modseq_before + 2);
    let changes = meta.changes_since("alice", modseq_before).expect("changes");
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.folder, c.uid, c.kind.clone()))
            .collect::<Vec<_>>(),
        vec![
            (inbox.id, 2, ChangeKind::FlagsChanged),
            (inbox.id, 3, ChangeKind::FlagsChanged)
        ]
    );
    assert_eq!(
        meta.list_messages_changed_since(inbox.id, modseq_before)
            .expect("changed")
            .len(),
        2
    );
    let f = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!(f.uid_validity, inbox.uid_validity, "UIDVALIDITY kept");
    assert_eq!((f.uid_next, f.messages, f.unseen), (4, 3, 2));
    assert_eq!(f.highest_modseq, modseq_before + 2);

    // The usage still holds the wrong sizes until the account is reindexed.
    let a = meta.reindex_account("alice").expect("reindex account");
    assert_eq!(a.usage_before.bytes, 16 + 999 + 1 + 16);
    assert_eq!(
        a.usage_after,
        Usage {
            bytes: 64,
            messages: 4
        }
    );
    assert_eq!(meta.usage("alice").expect("usage"), a.usage_after);
    assert_eq!(a.highest_modseq_before, a.highest_modseq_after);
    assert_eq!(a.highest_modseq_after, modseq_before + 2);

    // A second run finds nothing and writes no modseq.
    let again = meta.reindex_folder(inbox.id, &derived).expect("reindex");
    assert!(again.sizes_fixed.is_empty());
    assert_eq!(again.before, again.after);
    assert_eq!(
        meta.highest_modseq("alice").expect("modseq"),
        modseq_before + 2
    );
    // Later changes continue from the repaired counters.
    meta.set_flags(inbox.id, 2, &["\\Seen".to_owned()])
        .expect("flags");
    let f = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!((f.messages, f.unseen), (3, 1));
    assert!(matches!(
        meta.reindex_folder(999_999, &[]),
        Err(StoreError::NotFound(_))
    ));
}
