//! Crash safety of message ingest: "a kill between blob write and commit leaves no visible
//! message and no leaked blob after the next start".
//!
//! The parent test re-runs this test binary as a child (filtered to `crash_child`), with
//! the scenario and data directory in the environment. The child does its part of an
//! ingest and dies with `abort()` — no destructors, no flush, no orderly close. The parent
//! then opens the stores again, as a restarted server would.

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use keel_store::{BlobStore, FolderKind, MetaStore, NewMessage, collect_orphan_blobs};

const SCENARIO_VAR: &str = "KEEL_STORE_CRASH_SCENARIO";
const DIR_VAR: &str = "KEEL_STORE_CRASH_DIR";
const BYTES: &[u8] = b"From: a@example.com\r\nSubject: crash\r\n\r\nbody\r\n";

fn open(dir: &Path) -> (SqliteStore, FileBlobStore) {
    let meta = SqliteStore::open(&dir.join("meta.sqlite")).expect("open meta");
    let blobs = FileBlobStore::open(&dir.join("blobs")).expect("open blobs");
    (meta, blobs)
}

/// Child side: runs only when the parent set the scenario variable.
#[test]
fn crash_child() {
    let (Ok(scenario), Ok(dir)) = (std::env::var(SCENARIO_VAR), std::env::var(DIR_VAR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (meta, blobs) = open(&dir);
    let folder = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("INBOX created by parent");
    let blob = blobs.put(BYTES).expect("blob put");
    if scenario == "after_commit" {
        let msg = NewMessage {
            blob,
            size: BYTES.len() as u64,
            flags: vec![],
            internal_date: 1,
        };
        meta.append_messages(folder.id, &[msg]).expect("append");
    }
    // "before_commit" dies here, between the durable blob write and the metadata commit.
    std::process::abort();
}

/// Runs the child for `scenario` on `dir` and checks that it died.
fn run_child(scenario: &str, dir: &Path) {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_VAR, scenario)
        .env(DIR_VAR, dir)
        .output()
        .expect("spawn child");
    let status = out.status;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !status.success(),
        "child of scenario {scenario} did not abort: {status}\n{log}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGABRT, not a failed assertion (exit code 101).
        assert_eq!(
            status.signal(),
            Some(6),
            "child died the wrong way: {status}\n{log}"
        );
    }
}

fn prepare() -> (tempfile::TempDir, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (meta, _blobs) = open(dir.path());
    let folder = meta
        .create_folder("alice", "INBOX", FolderKind::Mail)
        .expect("create");
    (dir, folder.id)
}

#[test]
fn kill_between_blob_write_and_commit_leaves_no_message_and_no_blob() {
    let (dir, folder) = prepare();
    run_child("before_commit", dir.path());

    let (meta, blobs) = open(dir.path());
    assert!(
        meta.list_messages(folder).expect("list").is_empty(),
        "uncommitted message visible"
    );
    let f = meta
        .get_folder("alice", "INBOX")
        .expect("get")
        .expect("folder");
    assert_eq!((f.messages, f.uid_next), (0, 1), "folder counters moved");
    assert_eq!(
        meta.usage("alice").expect("usage").messages,
        0,
        "usage moved"
    );
    assert_eq!(
        blobs.list().expect("list"),
        [keel_store::BlobId::of(BYTES)],
        "blob was fsync'd"
    );
    assert_eq!(collect_orphan_blobs(&meta, &blobs).expect("collect"), 1);
    assert!(blobs.list().expect("list").is_empty(), "orphan blob leaked");
}

#[test]
fn kill_after_commit_keeps_message_and_blob() {
    let (dir, folder) = prepare();
    run_child("after_commit", dir.path());

    let (meta, blobs) = open(dir.path());
    let msgs = meta.list_messages(folder).expect("list");
    assert_eq!(msgs.len(), 1, "committed message lost");
    assert_eq!(msgs[0].uid, 1);
    assert_eq!(
        meta.usage("alice").expect("usage").bytes,
        BYTES.len() as u64
    );
    assert_eq!(
        collect_orphan_blobs(&meta, &blobs).expect("collect"),
        0,
        "referenced blob collected"
    );
    assert_eq!(blobs.get(&msgs[0].blob).expect("blob"), BYTES);
}
