//! File blob backend, the default (DESIGN §4: "files under the data directory").
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/
//!   tmp/                      blobs being written; files here are never read
//!   ab/cd/abcd…(64 hex)       one file per blob, named by its BLAKE3 id; the two directory
//!                             levels are the id's first and second pair of hex digits
//! ```
//!
//! A blob file's content never changes. [`FileBlobStore::put`] writes to a uniquely named
//! file in `tmp/`, fsyncs it, renames it into place and fsyncs the destination directory
//! (and the parents of directories it created), so a returned id names bytes that survive
//! a crash or power loss, and a reader never sees a partly written blob. The rename is on
//! the same file system as the destination because `tmp/` lives inside `<dir>`.
//!
//! Files in `tmp/` older than [`STALE_TMP_AGE`] are left-overs of a crash and are removed
//! when the store is opened; younger ones may belong to another process (the CLI and the
//! server share the directory) that is still writing them. Anything else in `<dir>` that
//! is not a blob at its proper place is ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::{BlobId, BlobStore, StoreError, StoreResult};

/// Age after which a file in `tmp/` is considered a crash left-over.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

const TMP_DIR: &str = "tmp";

/// Content-addressed blobs stored as files under one directory.
#[derive(Debug)]
pub struct FileBlobStore {
    dir: PathBuf,
    tmp_seq: AtomicU64,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Makes a directory's entries (creations, renames) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// Directories cannot be opened for syncing on this platform; renames are durable with
/// the file system's own guarantees.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> StoreResult<()> {
    Ok(())
}

fn is_hex_pair(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileBlobStore {
    /// Opens (creating if needed) a blob directory and removes stale temporary files.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let tmp = dir.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
        sync_dir(dir)?;
        let store = Self {
            dir: dir.to_owned(),
            tmp_seq: AtomicU64::new(0),
        };
        store.remove_stale_tmp(STALE_TMP_AGE)?;
        Ok(store)
    }

    /// Removes files in `tmp/` last modified more than `age` ago; returns how many.
    pub fn remove_stale_tmp(&self, age: Duration) -> StoreResult<usize> {
        let tmp = self.dir.join(TMP_DIR);
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(|e| io_err("reading", &tmp, e))? {
            let entry = entry.map_err(|e| io_err("reading", &tmp, e))?;
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            // A file whose time is unreadable or in the future is kept.
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|elapsed| elapsed >= age);
            if old {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("removing", &path, e)),
                }
            }
        }
        Ok(removed)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `id` is stored: `<dir>/ab/cd/<id>`.
    pub fn path_of(&self, id: &BlobId) -> StoreResult<PathBuf> {
        // Never build a path from an unchecked string (`..`, `/`).
        let id = BlobId::parse(&id.0)
            .ok_or_else(|| StoreError::NotFound(format!("blob {:?} (invalid id)", id.0)))?;
        Ok(self.dir.join(&id.0[0..2]).join(&id.0[2..4]).join(&id.0))
    }

    fn tmp_path(&self) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let nonce: u64 = rand::random();
        self.dir
            .join(TMP_DIR)
            .join(format!("{}-{seq}-{nonce:016x}", std::process::id()))
    }

    /// Creates the missing directories of `dir` below the store root, fsyncing the parent
    /// of each one created so the new entry is durable.
    fn create_parents(&self, dir: &Path) -> StoreResult<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while cur != self.dir && !cur.is_dir() {
            missing.push(cur);
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                // Another writer created it at the same moment.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", d, e)),
            }
            if let Some(parent) = d.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    fn write_tmp(&self, tmp: &Path, bytes: &[u8]) -> StoreResult<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| io_err("creating", tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err("writing", tmp, e))?;
        f.sync_all().map_err(|e| io_err("syncing", tmp, e))
    }
}

impl BlobStore for FileBlobStore {
    fn put(&self, bytes: &[u8]) -> StoreResult<BlobId> {
        let id = BlobId::of(bytes);
        let dest = self.path_of(&id)?;
        // Content-addressed: an existing file already holds exactly these bytes.
        if dest.is_file() {
            return Ok(id);
        }
        let tmp = self.tmp_path();
        let result = (|| {
            self.write_tmp(&tmp, bytes)?;
            let parent = dest
                .parent()
                .ok_or_else(|| StoreError::Backend(format!("{} has no parent", dest.display())))?;
            self.create_parents(parent)?;
            fs::rename(&tmp, &dest).map_err(|e| io_err("renaming into", &dest, e))?;
            sync_dir(parent)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| id)
    }

    fn get(&self, id: &BlobId) -> StoreResult<Vec<u8>> {
        let path = self.path_of(id)?;
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(format!("blob {id}"))
            } else {
                io_err("reading", &path, e)
            }
        })?;
        // Content addressing lets every read verify the bytes.
        if BlobId::of(&bytes) != *id {
            return Err(StoreError::Corrupt(format!(
                "blob {id} does not match its hash"
            )));
        }
        Ok(bytes)
    }

    fn exists(&self, id: &BlobId) -> StoreResult<bool> {
        let Some(id) = BlobId::parse(&id.0) else {
            return Ok(false);
        };
        let path = self.path_of(&id)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("inspecting", &path, e)),
        }
    }

    fn delete(&self, id: &BlobId) -> StoreResult<()> {
        let Some(id) = BlobId::parse(&id.0) else {
            return Ok(());
        };
        let path = self.path_of(&id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &path, e)),
        }
    }

    fn list(&self) -> StoreResult<Vec<BlobId>> {
        let mut out = Vec::new();
        for (name1, dir1) in hex_subdirs(&self.dir)? {
            for (name2, dir2) in hex_subdirs(&dir1)? {
                for entry in fs::read_dir(&dir2).map_err(|e| io_err("reading", &dir2, e))? {
                    let entry = entry.map_err(|e| io_err("reading", &dir2, e))?;
                    let Some(id) = entry.file_name().to_str().and_then(BlobId::parse) else {
                        continue;
                    };
                    let in_place = id.0.starts_with(&name1) && id.0[2..].starts_with(&name2);
                    if in_place && entry.file_type().is_ok_and(|t| t.is_file()) {
                        out.push(id);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Subdirectories of `dir` named by two lower-case hex digits (this skips `tmp/`).
fn hex_subdirs(dir: &Path) -> StoreResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err("reading", dir, e))? {
        let entry = entry.map_err(|e| io_err("reading", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_hex_pair(&name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FileBlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn layout_is_two_levels_of_hex_pairs() {
        let (dir, store) = store();
        let id = store.put(b"hello").expect("put");
        let expected = dir.path().join(&id.0[0..2]).join(&id.0[2..4]).join(&id.0);
        assert!(expected.is_file(), "blob not at {}", expected.display());
        assert_eq!(fs::read(expected).expect("read"), b"hello");
        let leftovers = fs::read_dir(dir.path().join(TMP_DIR)).expect("tmp").count();
        assert_eq!(leftovers, 0, "put left files in tmp/");
    }

    #[test]
    fn list_ignores_foreign_files() {
        let (dir, store) = store();
        let id = store.put(b"x").expect("put");
        // Junk: a non-hex dir, a file that is not an id, a valid id in the wrong place, tmp.
        fs::create_dir_all(dir.path().join("zz")).expect("mkdir");
        fs::write(
            dir.path()
                .join(&id.0[0..2])
                .join(&id.0[2..4])
                .join("notes.txt"),
            b"",
        )
        .expect("write");
        let other = BlobId::of(b"elsewhere");
        fs::create_dir_all(dir.path().join("00/00")).expect("mkdir");
        if !other.0.starts_with("0000") {
            fs::write(dir.path().join("00/00").join(&other.0), b"elsewhere").expect("write");
        }
        fs::write(dir.path().join(TMP_DIR).join(&other.0), b"elsewhere").expect("write");
        assert_eq!(store.list().expect("list"), vec![id]);
    }

    #[test]
    fn stale_tmp_files_are_removed_on_open_fresh_ones_kept() {
        let (dir, store) = store();
        let stale = dir.path().join(TMP_DIR).join("stale");
        let fresh = dir.path().join(TMP_DIR).join("fresh");
        fs::write(&stale, b"partial").expect("write");
        fs::write(&fresh, b"in flight").expect("write");
        let old = SystemTime::now() - STALE_TMP_AGE - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(old))
            .expect("mtime");
        drop(store);
        let _store = FileBlobStore::open(dir.path()).expect("reopen");
        assert!(!stale.exists(), "stale tmp file survived open");
        assert!(
            fresh.exists(),
            "a fresh tmp file may be another process's write in flight"
        );
    }

    #[test]
    fn corrupted_blob_is_reported() {
        let (_dir, store) = store();
        let id = store.put(b"original").expect("put");
        fs::write(store.path_of(&id).expect("path"), b"tampered").expect("write");
        assert!(matches!(store.get(&id), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn invalid_ids_never_touch_the_file_system() {
        let (_dir, store) = store();
        let bad = BlobId("../../etc/passwd".into());
        assert!(matches!(store.get(&bad), Err(StoreError::NotFound(_))));
        assert!(!store.exists(&bad).expect("exists"));
        store
            .delete(&bad)
            .expect("delete of an invalid id is a no-op");
    }
}
