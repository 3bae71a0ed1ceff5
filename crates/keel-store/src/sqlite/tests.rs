//! The conformance suite and SQLite-specific tests (migrations, pragmas, several handles).

use std::sync::Arc;

use tempfile::TempDir;

use super::*;
use crate::BlobStore;
use crate::file::FileBlobStore;

fn fresh() -> (Arc<dyn MetaStore>, Arc<dyn BlobStore>, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = SqliteStore::open(&dir.path().join("meta.sqlite")).expect("open sqlite");
    let blobs = FileBlobStore::open(&dir.path().join("blobs")).expect("open blobs");
    (Arc::new(meta), Arc::new(blobs), dir)
}

crate::conformance_tests!(fresh);

#[test]
fn run_all_passes() {
    let dirs = std::cell::RefCell::new(Vec::new());
    crate::conformance::run_all(&|| {
        let (meta, blobs, dir) = fresh();
        dirs.borrow_mut().push(dir);
        (meta, blobs)
    });
    assert_eq!(dirs.borrow().len(), crate::conformance::CHECKS.len());
}

#[test]
fn generation_is_seen_by_a_second_store_on_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let a = SqliteStore::open(&path).expect("open a");
    let b = SqliteStore::open(&path).expect("open b");
    crate::conformance::generation_seen_by_second_handle(&a, &b);
    crate::conformance::generation_seen_by_second_handle(&b, &a);
}

#[test]
fn concurrent_writers_on_separate_handles_lose_no_update() {
    // Two handles = two write connections, serialised by SQLite's lock and busy_timeout,
    // as the CLI and the server are.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let stores = [
        SqliteStore::open(&path).expect("open"),
        SqliteStore::open(&path).expect("open"),
    ];
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
    let doc = stores[0]
        .get_doc("counter", "c")
        .expect("get")
        .expect("doc");
    assert_eq!(doc.body, serde_json::json!(120));
}

#[test]
fn open_creates_the_file_with_wal_full_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.sqlite");
    let store = SqliteStore::open(&path).expect("open");
    assert!(path.is_file());
    let conn = lock(&store.writer);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(sync, 2, "synchronous must be FULL");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(fk, 1);
    let timeout: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(timeout, 10_000);
}

#[test]
fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let store = SqliteStore::open(&path).expect("first open");
    store
        .transact(&mut |t| t.put("user", "a", "", &serde_json::json!(1)).map(drop))
        .expect("put");
    assert_eq!(
        store.schema_version().expect("version"),
        migrations::latest_version()
    );
    drop(store);
    let store = SqliteStore::open(&path).expect("second open");
    assert_eq!(
        store.schema_version().expect("version"),
        migrations::latest_version()
    );
    assert!(
        store.get_doc("user", "a").expect("get").is_some(),
        "data kept across opens"
    );
    let rows: i64 = lock(&store.writer)
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        rows,
        i64::from(migrations::latest_version()),
        "one row per applied version"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let future = i64::from(migrations::latest_version()) + 1;
    {
        let store = SqliteStore::open(&path).expect("open");
        lock(&store.writer)
            .execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
                [future],
            )
            .expect("insert");
    }
    let err = SqliteStore::open(&path).expect_err("newer schema must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("schema version {future}")) && msg.contains("newer"),
        "unclear error: {msg}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junk.sqlite");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write");
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn corrupt_rows_are_reported_not_panicked_on() {
    let (meta, _blobs, dir) = fresh();
    drop(meta);
    let store = SqliteStore::open(&dir.path().join("meta.sqlite")).expect("open");
    let f = store
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    {
        let conn = lock(&store.writer);
        conn.execute(
            "INSERT INTO docs (kind, key, parent, version, body) VALUES ('user', 'x', '', 1, '{')",
            [],
        )
        .expect("insert");
        conn.execute(
            "INSERT INTO messages (folder, uid, blob, size, flags, seen, internal_date, modseq)
             VALUES (?1, 1, 'not-a-blob-id', -5, 'not json', 0, 0, 1)",
            [f.id],
        )
        .expect("insert");
        conn.execute(
            "UPDATE folders SET kind = 'weird' WHERE account = 'alice'",
            [],
        )
        .expect("update");
    }
    assert!(matches!(
        store.get_doc("user", "x"),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list_messages(f.id),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list_folders("alice"),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn uid_validity_is_unique_across_the_store() {
    let (meta, _blobs, _dir) = fresh();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let f = meta
            .create_folder("alice", &format!("F{i}"), FolderKind::Mail)
            .expect("create");
        assert!(
            seen.insert(f.uid_validity),
            "UIDVALIDITY {} handed out twice",
            f.uid_validity
        );
    }
}
