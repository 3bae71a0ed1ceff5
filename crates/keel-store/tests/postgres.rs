//! The PostgreSQL MetaStore against a real PostgreSQL (DESIGN §4: both backends pass one
//! shared conformance suite; issue 8): every check of the conformance suite, one `#[test]`
//! each, plus cross-handle ("two nodes on one database") tests.
//!
//! The server comes from `KEEL_TEST_PG_URL` (e.g. `host=127.0.0.1 port=5433 user=keel
//! dbname=keel_test`); `scripts/test.sh` starts a throw-away cluster and sets it. Each test
//! gets a fresh schema (`CREATE SCHEMA`, selected with `options=-csearch_path=…`), dropped
//! at the end. Without `KEEL_TEST_PG_URL` the binary prints one SKIPPED line and exits
//! before any test reports a result, so nothing passes without having run.
//!
//! The suite is `src/conformance.rs`, compiled into this test crate with `#[path]`: in the
//! library it only exists under `cfg(test)` or the `conformance` feature, and neither is
//! on for integration tests in a plain `cargo test`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;

// `conformance.rs` refers to these as `crate::…`.
use keel_store::{
    AccountDump, BlobId, BlobStore, Change, ChangeKind, DerivedSize, Doc, DocTxn, Folder,
    FolderKind, MessageMeta, MetaStore, NewMessage, QueueCompletion, QueueDump, QueueOutcome,
    QueueRcptState, QueuedMessage, QueuedRecipient, RecipientUpdate, StoreCounters, StoreError,
    StoreResult, Tombstone, Usage, check, collect_orphan_blobs, transfer,
};

#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../src/conformance.rs"]
mod conformance;

use keel_store::file::FileBlobStore;
use keel_store::postgres::{PgBlobStore, PgStore};

const URL_VAR: &str = "KEEL_TEST_PG_URL";

/// The server's URL; without one, reports the skip and ends the test binary.
fn pg_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            // Straight to the stderr handle: libtest captures `eprintln!` of tests.
            let _ = writeln!(
                std::io::stderr(),
                "\nSKIPPED: the PostgreSQL MetaStore tests (crates/keel-store/tests/postgres.rs) \
                 did not run: {URL_VAR} is not set. scripts/test.sh starts a throw-away \
                 PostgreSQL and sets it; by hand: {URL_VAR}='host=127.0.0.1 port=5432 \
                 user=keel dbname=keel_test' cargo test -p keel-store --test postgres\n"
            );
            std::process::exit(0);
        }
    }
}

/// `url` with `search_path` set to `schema` (key=value or URL form).
fn with_schema(url: &str, schema: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    } else {
        format!("{url} options=-csearch_path={schema}")
    }
}

/// A fresh schema (and blob directory), dropped when this is dropped.
struct TestDb {
    url: String,
    schema: String,
    store_url: String,
    _dir: tempfile::TempDir,
    blob_dir: std::path::PathBuf,
}

impl TestDb {
    fn new() -> Self {
        let url = pg_url();
        let schema = format!("keel_t_{:016x}", rand_u64());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR}={url}: {e}"));
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create schema");
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            store_url: with_schema(&url, &schema),
            url,
            schema,
            blob_dir: dir.path().join("blobs"),
            _dir: dir,
        }
    }

    fn open(&self) -> PgStore {
        PgStore::open(&self.store_url).expect("open PgStore")
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.store_url, postgres::NoTls).expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn rand_u64() -> u64 {
    // Unique per test in one run and across runs sharing a database.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The cluster pair: PostgreSQL metadata and PostgreSQL blobs (on one pool). The orphan
/// grace is zero so the orphan checks of the suite see fresh orphans; the default grace
/// has its own test below.
fn fresh() -> (Arc<dyn MetaStore>, Arc<dyn BlobStore>, TestDb) {
    let db = TestDb::new();
    let meta = Arc::new(db.open());
    let blobs = PgBlobStore::new(meta.clone()).with_orphan_grace(std::time::Duration::ZERO);
    (meta, Arc::new(blobs), db)
}

// One #[test] per check of `conformance::CHECKS`, plus the completeness test.
crate::conformance_tests!(fresh);

/// The suite once more with PostgreSQL metadata and file blobs (a pair some nodes may use
/// with a shared file system), so the metadata checks do not depend on the blob backend.
#[test]
fn conformance_with_file_blobs() {
    let dbs = std::cell::RefCell::new(Vec::new());
    conformance::run_all(&|| {
        let db = TestDb::new();
        let meta: Arc<dyn MetaStore> = Arc::new(db.open());
        let blobs: Arc<dyn BlobStore> =
            Arc::new(FileBlobStore::open(&db.blob_dir).expect("open blobs"));
        dbs.borrow_mut().push(db);
        (meta, blobs)
    });
}

/// Blobs put by one node are read by another (issue 8: every node sees the same bodies);
/// a put of bytes already stored by another node is a no-op for the bytes.
#[test]
fn a_blob_put_on_one_node_is_read_on_another() {
    let db = TestDb::new();
    let a = PgBlobStore::new(Arc::new(db.open()));
    let b = PgBlobStore::new(Arc::new(db.open()));
    let bytes = b"Subject: shared\r\n\r\nbody\r\n";
    let id = a.put(bytes).expect("put on a");
    assert!(b.exists(&id).expect("exists on b"));
    assert_eq!(b.get(&id).expect("get on b"), bytes);
    assert_eq!(b.put(bytes).expect("put again on b"), id);
    assert_eq!(a.list().expect("list"), vec![id.clone()]);
    assert_eq!(a.totals().expect("totals"), (1, bytes.len() as u64));
    // Concurrent puts of the same bytes from both nodes: one row, no error.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let ids: Vec<BlobId> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let store = if i % 2 == 0 { &a } else { &b };
                let big = &big;
                s.spawn(move || store.put(big).expect("concurrent put"))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    assert!(ids.iter().all(|i| *i == BlobId::of(&big)));
    assert_eq!(a.list().expect("list").len(), 2);
    assert_eq!(b.get(&ids[0]).expect("get big"), big);
    // Ids that are not BLAKE3 hex are never looked up.
    assert!(!a.exists(&BlobId("../x".into())).expect("exists"));
    assert!(matches!(
        a.get(&BlobId("../x".into())),
        Err(StoreError::NotFound(_))
    ));
}

/// With the default grace, a blob just put (maybe by another node whose message row is not
/// committed yet) is no orphan candidate, so a node starting up does not collect it; once
/// the grace has passed it is. A re-put moves it back into the grace period.
#[test]
fn orphan_collection_spares_recent_blobs_of_other_nodes() {
    let db = TestDb::new();
    let meta = Arc::new(db.open());
    let blobs = PgBlobStore::new(meta.clone());
    let id = blobs.put(b"in flight on another node").expect("put");
    assert!(blobs.orphan_candidates().expect("candidates").is_empty());
    assert_eq!(collect_orphan_blobs(&*meta, &blobs).expect("collect"), 0);
    let r = keel_store::check::check_store(&*meta, &blobs, true).expect("check");
    assert!(r.is_clean(), "{r}");
    assert!(blobs.exists(&id).expect("kept"));
    // Age the blob past the grace.
    db.admin()
        .execute(
            "UPDATE blobs SET stored_at = stored_at - $1",
            &[&(keel_store::postgres::ORPHAN_GRACE.as_secs() as i64 + 5)],
        )
        .expect("age");
    assert_eq!(
        blobs.orphan_candidates().expect("candidates"),
        vec![id.clone()]
    );
    // Re-put (the same bytes delivered again): young again.
    blobs.put(b"in flight on another node").expect("re-put");
    assert!(blobs.orphan_candidates().expect("candidates").is_empty());
    db.admin()
        .execute(
            "UPDATE blobs SET stored_at = stored_at - $1",
            &[&(keel_store::postgres::ORPHAN_GRACE.as_secs() as i64 + 5)],
        )
        .expect("age");
    assert_eq!(collect_orphan_blobs(&*meta, &blobs).expect("collect"), 1);
    assert!(!blobs.exists(&id).expect("collected"));
}

/// A blob above the limit is refused before anything is sent.
#[test]
fn blobs_above_the_limit_are_refused() {
    let db = TestDb::new();
    let blobs = PgBlobStore::new(Arc::new(db.open()));
    let too_big = vec![0u8; keel_store::postgres::MAX_BLOB_SIZE + 1];
    assert!(matches!(blobs.put(&too_big), Err(StoreError::Backend(_))));
    assert!(blobs.list().expect("list").is_empty());
}

/// `keel migrate`'s library half: an embedded store (SQLite + files) copied into
/// PostgreSQL (+ PostgreSQL blobs) exports identically, its bodies read back, and the
/// integrity check of the target is clean. A counter repair on PostgreSQL recounts.
#[test]
fn an_embedded_store_copies_into_postgresql() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let src = keel_store::sqlite::SqliteStore::open(&dir.path().join("keel.db")).expect("sqlite");
    let src_blobs = FileBlobStore::open(&dir.path().join("blobs")).expect("files");
    conformance::populate_for_copy(&src, &src_blobs);
    let dst = Arc::new(db.open());
    let dst_blobs = PgBlobStore::new(dst.clone());
    let mut last = None;
    let sum = keel_store::transfer::copy_store(&src, &src_blobs, &*dst, &dst_blobs, &mut |p| {
        last = Some(*p)
    })
    .expect("copy");
    assert!(sum.blobs > 0 && sum.messages > 0, "{sum:?}");
    let last = last.expect("progress");
    assert_eq!(last.done, last.total);
    assert_eq!(
        conformance::snapshot_for_copy(&*dst),
        conformance::snapshot_for_copy(&src),
        "PostgreSQL copy differs from the SQLite original"
    );
    for id in src_blobs.list().expect("list") {
        assert_eq!(
            dst_blobs.get(&id).expect("get"),
            src_blobs.get(&id).expect("get")
        );
    }
    let r = keel_store::check::check_store(&*dst, &dst_blobs, false).expect("check");
    assert!(r.is_clean(), "{r}");
    // Counters that drifted are recounted by check --repair on PostgreSQL too.
    db.admin()
        .batch_execute("UPDATE folders SET messages = 99; UPDATE account_state SET bytes = 1")
        .expect("break counters");
    let r = keel_store::check::check_store(&*dst, &dst_blobs, true).expect("repair");
    assert!(
        !r.folder_mismatches.is_empty() && !r.usage_mismatches.is_empty(),
        "{r}"
    );
    assert!(r.counters_repaired);
    let r = keel_store::check::check_store(&*dst, &dst_blobs, false).expect("check");
    assert!(r.is_clean(), "{r}");
}

#[test]
fn generation_is_seen_by_a_second_handle() {
    let db = TestDb::new();
    let (a, b) = (db.open(), db.open());
    conformance::generation_seen_by_second_handle(&a, &b);
    conformance::generation_seen_by_second_handle(&b, &a);
}

fn queued(blobs: &dyn BlobStore, id: &str, next_attempt: i64) -> QueuedMessage {
    let bytes = format!("Subject: {id}\r\n\r\nbody\r\n");
    QueuedMessage {
        id: id.to_owned(),
        sender: "a@example.test".into(),
        envid: None,
        ret: None,
        size: bytes.len() as u64,
        blob: blobs.put(bytes.as_bytes()).expect("blob"),
        created: 1,
        next_attempt,
        recipients: vec![QueuedRecipient::new("r@remote.test")],
    }
}

/// DESIGN §4: two nodes claiming the queue at the same time never get the same message,
/// and together they get all of them.
#[test]
fn two_nodes_never_claim_the_same_message() {
    const MESSAGES: usize = 300;
    let db = TestDb::new();
    let nodes = [db.open(), db.open()];
    let blobs = FileBlobStore::open(&db.blob_dir).expect("blobs");
    for i in 0..MESSAGES {
        nodes[i % 2]
            .enqueue(&queued(
                &blobs,
                &format!("66000000-{i:08x}"),
                (i % 7) as i64,
            ))
            .expect("enqueue");
    }
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let node = &nodes[w % 2];
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = node.claim_queued(1_000, 600, 5).expect("claim");
                        if got.is_empty() {
                            break;
                        }
                        for m in got {
                            assert_eq!(m.recipients.len(), 1, "recipients come with the claim");
                            mine.push(m.id);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a message was claimed twice");
    assert_eq!(distinct.len(), MESSAGES, "every message was claimed");
    assert!(
        claimed.iter().filter(|c| !c.is_empty()).count() > 1,
        "claims were spread over several workers"
    );
}

/// A node that dies keeps its lease only until it runs out; then the other node gets the
/// message (issue 8: a node that dies mid-delivery loses its lease).
#[test]
fn lease_of_a_dead_node_expires_for_the_other_node() {
    let db = TestDb::new();
    let (a, b) = (db.open(), db.open());
    let blobs = FileBlobStore::open(&db.blob_dir).expect("blobs");
    a.enqueue(&queued(&blobs, "66100000-00000001", 0))
        .expect("enqueue");
    assert_eq!(a.claim_queued(1_000, 60, 10).expect("a claims").len(), 1);
    assert!(b.claim_queued(1_059, 60, 10).expect("b early").is_empty());
    let got = b.claim_queued(1_060, 60, 10).expect("b after expiry");
    assert_eq!(got.len(), 1, "the expired lease is claimable");
    assert!(a.claim_queued(1_061, 60, 10).expect("a again").is_empty());
}

/// Serializable transactions with retry: concurrent read-modify-write transactions on
/// two handles (two nodes, separate connections) lose no update.
#[test]
fn concurrent_transactions_on_two_handles_lose_no_update() {
    let db = TestDb::new();
    let stores = [db.open(), db.open()];
    std::thread::scope(|s| {
        for i in 0..6 {
            let store = &stores[i % 2];
            s.spawn(move || {
                for _ in 0..20 {
                    store
                        .transact(&mut |t| {
                            let n = t
                                .get("counter", "c")?
                                .and_then(|d| d.body.as_u64())
                                .unwrap_or(0);
                            t.put("counter", "c", "", &serde_json::json!(n + 1))
                                .map(drop)
                        })
                        .expect("transact");
                }
            });
        }
    });
    let doc = stores[1]
        .get_doc("counter", "c")
        .expect("get")
        .expect("doc");
    assert_eq!(doc.body, serde_json::json!(120));
    assert_eq!(doc.version, 120);
}

/// DESIGN §2 across nodes: concurrent appends to one account through two handles get
/// distinct, gapless modseqs and UIDs, and the counters match.
#[test]
fn concurrent_appends_on_two_handles_keep_modseqs_and_counters() {
    let db = TestDb::new();
    let stores = [db.open(), db.open()];
    let blobs = FileBlobStore::open(&db.blob_dir).expect("blobs");
    let inbox = stores[0]
        .create_folder("u@example.test", "INBOX", FolderKind::Mail)
        .expect("create");
    let blob = blobs.put(b"Subject: x\r\n\r\nx\r\n").expect("blob");
    let results: Vec<(u32, u64)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|i| {
                let store = &stores[i % 2];
                let blob = blob.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for _ in 0..10 {
                        let m = NewMessage {
                            blob: blob.clone(),
                            size: 10,
                            flags: vec![],
                            internal_date: 0,
                        };
                        out.extend(
                            store
                                .append_messages(inbox.id, &[m.clone(), m])
                                .expect("append"),
                        );
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let uids: BTreeSet<u32> = results.iter().map(|r| r.0).collect();
    let modseqs: BTreeSet<u64> = results.iter().map(|r| r.1).collect();
    assert_eq!(uids, (1..=120).collect(), "UIDs distinct and gapless");
    // Modseq 1 is the folder's creation.
    assert_eq!(modseqs, (2..=121).collect(), "modseqs distinct and gapless");
    let f = stores[1]
        .get_folder("u@example.test", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!((f.messages, f.unseen, f.uid_next), (120, 120, 121));
    assert_eq!(f.highest_modseq, 121);
    assert_eq!(
        stores[1].usage("u@example.test").expect("usage"),
        Usage {
            bytes: 1200,
            messages: 120
        }
    );
    let changes = stores[0]
        .changes_since("u@example.test", 0)
        .expect("changes");
    assert_eq!(changes.len(), 121);
    assert!(changes.windows(2).all(|w| w[0].modseq + 1 == w[1].modseq));
}

/// The pool waits for a free connection instead of failing when all are busy.
#[test]
fn a_small_pool_serves_more_threads_than_connections() {
    let db = TestDb::new();
    let store = PgStore::open_with_pool(&db.store_url, 2).expect("open");
    std::thread::scope(|s| {
        for i in 0..8 {
            let store = &store;
            s.spawn(move || {
                for j in 0..10 {
                    store
                        .transact(&mut |t| {
                            t.put("user", &format!("u{i}-{j}"), "", &serde_json::json!(j))
                                .map(drop)
                        })
                        .expect("transact");
                }
            });
        }
    });
    assert_eq!(store.list_docs("user", None).expect("list").len(), 80);
    let mut admin = db.admin();
    let open: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keel'
             AND datname = current_database()",
            &[],
        )
        .expect("count")
        .get(0);
    assert!(open >= 1, "the store's connections are visible");
}

/// Migrations: a fresh database is at the latest version; reopening changes nothing; a
/// newer schema is refused.
#[test]
fn schema_is_versioned_and_a_newer_schema_is_refused() {
    let db = TestDb::new();
    let store = db.open();
    let latest = keel_store::postgres::migrations::latest_version();
    assert_eq!(store.schema_version().expect("version"), latest);
    drop(store);
    assert_eq!(db.open().schema_version().expect("reopen"), latest);
    db.admin()
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)",
            &[&(i64::from(latest) + 1)],
        )
        .expect("insert");
    match PgStore::open(&db.store_url) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
}

/// Nodes starting together migrate once (advisory lock), and all open.
#[test]
fn nodes_opening_together_migrate_once() {
    let db = TestDb::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| db.open());
        }
    });
    let rows: i64 = db
        .admin()
        .query_one("SELECT count(*) FROM schema_version", &[])
        .expect("count")
        .get(0);
    assert_eq!(
        rows,
        i64::from(keel_store::postgres::migrations::latest_version())
    );
}

/// Stored values that do not decode are `Corrupt`, not a panic.
#[test]
fn corrupt_rows_are_reported_not_unwrapped() {
    let db = TestDb::new();
    let store = db.open();
    let f = store
        .create_folder("u@example.test", "INBOX", FolderKind::Mail)
        .expect("create");
    let mut admin = db.admin();
    admin
        .execute("UPDATE folders SET uid_next = -5 WHERE id = $1", &[&f.id])
        .expect("corrupt uid_next");
    assert!(matches!(
        store.get_folder("u@example.test", "INBOX"),
        Err(StoreError::Corrupt(_))
    ));
    admin
        .execute(
            "INSERT INTO docs (kind, key, parent, version, body) VALUES ('user', 'x', '', 1, '{')",
            &[],
        )
        .expect("corrupt doc");
    assert!(matches!(
        store.get_doc("user", "x"),
        Err(StoreError::Corrupt(_))
    ));
}

/// DESIGN §4 (change notifications cross nodes with LISTEN/NOTIFY): a listener on one
/// handle hears, within a second, the (account, modseq) of a change committed through
/// another handle on the same schema, and nothing of a rolled-back transaction.
#[test]
fn a_listener_on_one_handle_hears_commits_of_another() {
    use std::time::{Duration, Instant};
    let db = TestDb::new();
    let (a, b) = (db.open(), db.open());
    assert_eq!(a.change_channel(), b.change_channel());
    assert_ne!(
        a.change_channel(),
        keel_store::postgres::CHANGE_CHANNEL,
        "a test schema gets its own channel"
    );
    let mut listener = b.change_listener().expect("PgStore offers a listener");
    // The first call connects and LISTENs; nothing has happened yet.
    assert_eq!(
        listener.next(Duration::from_millis(200)).expect("listen"),
        None
    );

    let account = "notify@example.test";
    let inbox = a
        .create_folder(account, "INBOX", FolderKind::Mail)
        .expect("create");
    assert_eq!(
        listener.next(Duration::from_secs(1)).expect("next"),
        Some((account.to_owned(), 1)),
        "folder creation is announced"
    );

    // Rolled back: a conflicting create (the transaction fails after taking a modseq)
    // and a raw transaction that sends a notification and rolls back.
    assert!(matches!(
        a.create_folder(account, "INBOX", FolderKind::Mail),
        Err(StoreError::Conflict { .. })
    ));
    let mut admin = db.admin();
    let mut tx = admin.transaction().expect("begin");
    tx.execute(
        "SELECT pg_notify($1, $2)::TEXT",
        &[&a.change_channel(), &format!("{account}:999")],
    )
    .expect("notify");
    tx.rollback().expect("rollback");
    assert_eq!(
        listener.next(Duration::from_millis(500)).expect("next"),
        None,
        "nothing is heard of rolled-back transactions"
    );

    // An append through A: one notification with the batch's last modseq.
    let blobs = FileBlobStore::open(&db.blob_dir).expect("blobs");
    let blob = blobs.put(b"Subject: n\r\n\r\nn\r\n").expect("blob");
    let m = NewMessage {
        blob,
        size: 10,
        flags: vec![],
        internal_date: 0,
    };
    let start = Instant::now();
    let added = a
        .append_messages(inbox.id, &[m.clone(), m])
        .expect("append");
    let got = listener.next(Duration::from_secs(1)).expect("next");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(got, Some((account.to_owned(), added[1].1)));
    assert_eq!(added[1].1, 3);
    // Flag changes and expunges are announced too.
    let modseq = a
        .set_flags(inbox.id, added[0].0, &["\\Seen".to_owned()])
        .expect("flags");
    assert_eq!(
        listener.next(Duration::from_secs(1)).expect("next"),
        Some((account.to_owned(), modseq))
    );
    a.expunge(inbox.id, &[added[0].0]).expect("expunge");
    assert_eq!(
        listener.next(Duration::from_secs(1)).expect("next"),
        Some((account.to_owned(), modseq + 1))
    );
    assert_eq!(
        listener.next(Duration::from_millis(200)).expect("next"),
        None
    );
}

/// `keel serve` drops its store at the end of `block_on` on the main thread; closing the
/// pooled connections there must not start a nested runtime (a panic at shutdown).
#[test]
fn a_store_dropped_inside_a_runtime_closes_cleanly() {
    let db = TestDb::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Arc::new(db.open());
        let blobs = PgBlobStore::new(store.clone());
        blobs.put(b"x").expect("put");
        store.docs_generation().expect("read");
        drop(blobs);
        drop(store);
    });
}
