//! SQLite metadata backend, the embedded default (DESIGN §4: rusqlite, bundled, WAL; one
//! writer, many readers).
//!
//! - One write connection behind a mutex; every write runs in a `BEGIN IMMEDIATE`
//!   transaction, so writers of this process and of other processes (the CLI and the
//!   server open the same file) are serialised by SQLite's write lock, waited for up to
//!   [`BUSY_TIMEOUT`].
//! - Reads run on a small pool of separate connections, each read in its own deferred
//!   transaction so it sees one committed snapshot.
//! - `synchronous=FULL` with WAL: a transaction that returned is on disk, so mail
//!   acknowledged with `250` survives kill -9 and power loss.
//! - The schema is created and upgraded by [`migrations`] when the store is opened.
//!
//! A [`crate::MetaStore::transact`] closure must not call other writing methods of the
//! same store: they wait for the write connection the closure already holds.

mod bulk;
pub mod migrations;
mod reindex;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::{
    AccountDump, BlobId, Change, ChangeKind, Doc, DocTxn, Folder, FolderKind, MessageMeta,
    MetaStore, NewMessage, QueueCompletion, QueueDump, QueueOutcome, QueueRcptState, QueuedMessage,
    QueuedRecipient, StoreCounters, StoreError, StoreResult, Tombstone, Usage,
};

/// How long a statement waits for another connection's (or process's) lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

/// The flag whose absence makes a message count as unseen.
const SEEN: &str = "\\Seen";

/// The SQLite [`MetaStore`].
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Error mapping

/// Maps rusqlite errors: decoding failures are `Corrupt`, everything else `Backend`.
fn map_sql(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match e {
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

trait SqlExt<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> SqlExt<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(map_sql)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error().is_some_and(|err| {
        err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// A decoding error raised inside a row-mapping closure; surfaces as `Corrupt`.
fn bad_column(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
}

fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} out of range")))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave a half-done transaction: the
    // `Transaction` is rolled back when dropped, and `write` checks the connection state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Opening and migrations

fn configure(conn: &Connection, path: &Path, reader: bool) -> StoreResult<()> {
    let ctx =
        |e: rusqlite::Error| StoreError::Backend(format!("configuring {}: {e}", path.display()));
    conn.busy_timeout(BUSY_TIMEOUT).map_err(ctx)?;
    // DESIGN §4: WAL, one writer and many readers. The mode is stored in the file.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(ctx)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: could not enable WAL journal mode (got {mode})",
            path.display()
        )));
    }
    // Durability of acknowledged mail: every commit is fsync'd.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(ctx)?;
    conn.pragma_update(None, "fullfsync", true).map_err(ctx)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(ctx)?;
    if reader {
        conn.pragma_update(None, "query_only", true).map_err(ctx)?;
    }
    Ok(())
}

fn open_connection(path: &Path, reader: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
    configure(&conn, path, reader)?;
    Ok(conn)
}

/// Applies the missing migrations in one transaction; refuses a newer schema.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .db()?;
    let current: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .db()?;
    let current = current.unwrap_or(0);
    let latest = i64::from(migrations::latest_version());
    if current > latest {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build of Keel supports \
             ({latest}); run a newer Keel or restore a backup"
        )));
    }
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt(format!("negative schema version {current}")))?;
    let now = unix_now();
    for (index, sql) in migrations::MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        tx.execute_batch(sql).map_err(|e| {
            StoreError::Backend(format!("migration to schema version {version} failed: {e}"))
        })?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![version, now],
        )
        .db()?;
    }
    tx.commit().db()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date. Fails if the file's schema is newer than this build knows.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer = open_connection(path, false)?;
        migrate(&mut writer)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> StoreResult<u32> {
        self.read(|c| {
            c.query_row(
                "SELECT coalesce(max(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .db()
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the write connection; commits on
    /// `Ok`, rolls back on `Err`.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = lock(&self.writer);
        if !conn.is_autocommit() {
            // A previous rollback failed; never run on top of a stale transaction.
            conn.execute_batch("ROLLBACK").db()?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        match f(&tx) {
            Ok(v) => {
                tx.commit().db()?;
                Ok(v)
            }
            Err(e) => {
                // The caller's error matters more than a failed rollback; the next write
                // rolls back a transaction left open.
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    /// Runs `f` on a read connection inside one deferred (snapshot) transaction.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path, true)?,
        };
        let out = (|| {
            let tx = conn.unchecked_transaction().db()?;
            let v = f(&tx)?;
            tx.finish().db()?;
            Ok(v)
        })();
        if conn.is_autocommit() {
            let mut pool = lock(&self.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Documents

const DOC_COLS: &str = "kind, key, parent, version, body";

fn doc_from_row(row: &Row<'_>) -> rusqlite::Result<Doc> {
    let body: String = row.get(4)?;
    let body = serde_json::from_str(&body).map_err(|e| bad_column(4, format!("doc body: {e}")))?;
    Ok(Doc {
        kind: row.get(0)?,
        key: row.get(1)?,
        parent: row.get(2)?,
        version: row.get(3)?,
        body,
    })
}

fn doc_get(c: &Connection, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
    c.query_row(
        &format!("SELECT {DOC_COLS} FROM docs WHERE kind = ?1 AND key = ?2"),
        params![kind, key],
        doc_from_row,
    )
    .optional()
    .db()
}

fn doc_list(c: &Connection, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
    let rows = match parent {
        Some(p) => {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {DOC_COLS} FROM docs WHERE kind = ?1 AND parent = ?2 ORDER BY key"
                ))
                .db()?;
            st.query_map(params![kind, p], doc_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
        }
        None => {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {DOC_COLS} FROM docs WHERE kind = ?1 ORDER BY key"
                ))
                .db()?;
            st.query_map(params![kind], doc_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
        }
    };
    rows.db()
}

/// DESIGN §4: other processes notice document changes through this counter, bumped in the
/// writing transaction.
fn bump_generation(c: &Connection) -> StoreResult<()> {
    c.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'docs_generation'",
        [],
    )
    .db()?;
    Ok(())
}

fn doc_put(
    c: &Connection,
    kind: &str,
    key: &str,
    parent: &str,
    body: &serde_json::Value,
) -> StoreResult<u64> {
    let text = serde_json::to_string(body)
        .map_err(|e| StoreError::Backend(format!("encoding {kind} {key}: {e}")))?;
    let version = c
        .query_row(
            "INSERT INTO docs (kind, key, parent, version, body) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (kind, key) DO UPDATE
                 SET parent = excluded.parent, version = version + 1, body = excluded.body
             RETURNING version",
            params![kind, key, parent, text],
            |r| r.get(0),
        )
        .db()?;
    bump_generation(c)?;
    Ok(version)
}

fn doc_delete(c: &Connection, kind: &str, key: &str) -> StoreResult<bool> {
    let n = c
        .execute(
            "DELETE FROM docs WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )
        .db()?;
    if n > 0 {
        bump_generation(c)?;
    }
    Ok(n > 0)
}

struct SqlDocTxn<'a> {
    conn: &'a Connection,
}

impl DocTxn for SqlDocTxn<'_> {
    fn get(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        doc_get(self.conn, kind, key)
    }
    fn list(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        doc_list(self.conn, kind, parent)
    }
    fn put(
        &mut self,
        kind: &str,
        key: &str,
        parent: &str,
        body: &serde_json::Value,
    ) -> StoreResult<u64> {
        doc_put(self.conn, kind, key, parent, body)
    }
    fn delete(&mut self, kind: &str, key: &str) -> StoreResult<bool> {
        doc_delete(self.conn, kind, key)
    }
}

// ---------------------------------------------------------------------------------------
// Mail metadata helpers (all called inside one write transaction)

const FOLDER_COLS: &str =
    "id, account, name, kind, uid_validity, uid_next, messages, unseen, highest_modseq";

fn folder_from_row(row: &Row<'_>) -> rusqlite::Result<Folder> {
    let kind: String = row.get(3)?;
    let kind =
        FolderKind::parse(&kind).ok_or_else(|| bad_column(3, format!("folder kind {kind:?}")))?;
    Ok(Folder {
        id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        kind,
        uid_validity: row.get(4)?,
        uid_next: row.get(5)?,
        messages: row.get(6)?,
        unseen: row.get(7)?,
        highest_modseq: row.get(8)?,
    })
}

fn folder_by_id(c: &Connection, id: i64) -> StoreResult<Folder> {
    c.query_row(
        &format!("SELECT {FOLDER_COLS} FROM folders WHERE id = ?1"),
        [id],
        folder_from_row,
    )
    .optional()
    .db()?
    .ok_or_else(|| StoreError::NotFound(format!("folder {id}")))
}

fn folder_conflict(account: &str, name: &str) -> StoreError {
    StoreError::Conflict {
        kind: "folder".into(),
        key: format!("{account}:{name}"),
    }
}

fn change_kind_str(kind: &ChangeKind) -> &'static str {
    match kind {
        ChangeKind::FolderCreated => "folder_created",
        ChangeKind::FolderRenamed => "folder_renamed",
        ChangeKind::FolderDeleted => "folder_deleted",
        ChangeKind::MessageAdded => "message_added",
        ChangeKind::FlagsChanged => "flags_changed",
        ChangeKind::MessageExpunged => "message_expunged",
    }
}

fn parse_change_kind(s: &str) -> Option<ChangeKind> {
    Some(match s {
        "folder_created" => ChangeKind::FolderCreated,
        "folder_renamed" => ChangeKind::FolderRenamed,
        "folder_deleted" => ChangeKind::FolderDeleted,
        "message_added" => ChangeKind::MessageAdded,
        "flags_changed" => ChangeKind::FlagsChanged,
        "message_expunged" => ChangeKind::MessageExpunged,
        _ => return None,
    })
}

/// DESIGN §2: every change gets the account's next modseq...
fn next_modseq(c: &Connection, account: &str) -> StoreResult<u64> {
    c.query_row(
        "INSERT INTO account_state (account, highest_modseq) VALUES (?1, 1)
         ON CONFLICT (account) DO UPDATE SET highest_modseq = highest_modseq + 1
         RETURNING highest_modseq",
        [account],
        |r| r.get(0),
    )
    .db()
}

/// ...and a row in the account's change log, in the same transaction (DESIGN §2).
fn log_change(
    c: &Connection,
    account: &str,
    modseq: u64,
    folder: i64,
    uid: u32,
    kind: ChangeKind,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO changes (account, modseq, folder, uid, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![account, modseq, folder, uid, change_kind_str(&kind)],
    )
    .db()?;
    Ok(())
}

/// DESIGN §2: quota usage is adjusted incrementally, never recomputed by scanning.
fn add_usage(c: &Connection, account: &str, bytes: i64, messages: i64) -> StoreResult<()> {
    if bytes == 0 && messages == 0 {
        return Ok(());
    }
    c.execute(
        "INSERT INTO account_state (account, bytes, messages) VALUES (?1, ?2, ?3)
         ON CONFLICT (account) DO UPDATE
             SET bytes = bytes + excluded.bytes, messages = messages + excluded.messages",
        params![account, bytes, messages],
    )
    .db()?;
    Ok(())
}

/// A fresh UIDVALIDITY: the creation time in Unix seconds, but always above every value
/// handed out before, so a folder re-created under the same name (even within the same
/// second) gets a different one (RFC 9051 §2.3.1.1).
fn next_uid_validity(c: &Connection) -> StoreResult<u32> {
    let last: i64 = c
        .query_row(
            "SELECT value FROM counters WHERE name = 'uid_validity'",
            [],
            |r| r.get(0),
        )
        .db()?;
    let next = unix_now().max(last.saturating_add(1)).max(1);
    let next = u32::try_from(next)
        .map_err(|_| StoreError::Backend("UIDVALIDITY values exhausted".into()))?;
    c.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'uid_validity'",
        [next],
    )
    .db()?;
    Ok(next)
}

/// Sorted, distinct flags; the stored form of a flag list.
fn normalize_flags(flags: &[String]) -> Vec<String> {
    let mut v = flags.to_vec();
    v.sort();
    v.dedup();
    v
}

fn has_seen(flags: &[String]) -> bool {
    // RFC 9051 §2.3.2: system flag names are case-insensitive.
    flags.iter().any(|f| f.eq_ignore_ascii_case(SEEN))
}

fn encode_flags(flags: &[String]) -> StoreResult<String> {
    serde_json::to_string(flags).map_err(|e| StoreError::Backend(format!("encoding flags: {e}")))
}

fn decode_flags(col: usize, text: &str) -> rusqlite::Result<Vec<String>> {
    if let Some(flags) = crate::parse_flag_list(text) {
        return Ok(flags);
    }
    serde_json::from_str(text).map_err(|e| bad_column(col, format!("flags: {e}")))
}

/// Of `candidates`, the blobs no message references any more. Runs inside the deleting
/// transaction, so the answer matches what was committed.
fn unreferenced(c: &Connection, mut candidates: Vec<String>) -> StoreResult<Vec<BlobId>> {
    candidates.sort();
    candidates.dedup();
    let mut st = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE blob = ?1)
                 OR EXISTS (SELECT 1 FROM queue WHERE blob = ?1)
                 OR EXISTS (SELECT 1 FROM tombstones WHERE blob = ?1)",
        )
        .db()?;
    let mut lost = Vec::new();
    for blob in candidates {
        let referenced: bool = st.query_row([&blob], |r| r.get(0)).db()?;
        if !referenced {
            let id = BlobId::parse(&blob)
                .ok_or_else(|| StoreError::Corrupt(format!("stored blob id {blob:?}")))?;
            lost.push(id);
        }
    }
    Ok(lost)
}

fn folder_blobs(c: &Connection, folder: i64) -> StoreResult<Vec<String>> {
    let mut st = c
        .prepare_cached("SELECT DISTINCT blob FROM messages WHERE folder = ?1")
        .db()?;
    st.query_map([folder], |r| r.get(0))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()
}

fn folder_bytes(c: &Connection, folder: i64) -> StoreResult<i64> {
    c.query_row("SELECT bytes FROM folders WHERE id = ?1", [folder], |r| {
        r.get(0)
    })
    .db()
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageMeta> {
    let blob: String = row.get(2)?;
    let blob = BlobId::parse_owned(blob).map_err(|b| bad_column(2, format!("blob id {b:?}")))?;
    // Borrowed: the flags text is decoded straight from SQLite's buffer.
    let flags = row
        .get_ref(4)?
        .as_str()
        .map_err(|e| bad_column(4, format!("flags: {e}")))?;
    let flags = decode_flags(4, flags)?;
    Ok(MessageMeta {
        folder: row.get(0)?,
        uid: row.get(1)?,
        blob,
        size: row.get(3)?,
        flags,
        internal_date: row.get(5)?,
        modseq: row.get(6)?,
    })
}

/// Appends rows to folder `f` (the caller's write transaction); `added_at` is when they
/// enter the folder (guide §7.5).
fn insert_messages(
    c: &Connection,
    f: &Folder,
    messages: &[NewMessage],
    added_at: i64,
) -> StoreResult<Vec<(u32, u64)>> {
    let folder = f.id;
    let mut uid = f.uid_next;
    let (mut bytes, mut unseen) = (0i64, 0u32);
    let mut out = Vec::with_capacity(messages.len());
    let mut insert = c
        .prepare_cached(
            "INSERT INTO messages
                 (folder, uid, blob, size, flags, seen, internal_date, modseq, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .db()?;
    for m in messages {
        if BlobId::parse(&m.blob.0).is_none() {
            return Err(StoreError::Aborted(format!(
                "invalid blob id {:?}",
                m.blob.0
            )));
        }
        // UIDs are non-zero u32 and uid_next must stay representable.
        if uid == u32::MAX {
            return Err(StoreError::Backend(format!(
                "UIDs of folder {folder} exhausted"
            )));
        }
        let size = to_i64(m.size, "message size")?;
        let flags = normalize_flags(&m.flags);
        let seen = has_seen(&flags);
        let modseq = next_modseq(c, &f.account)?;
        insert
            .execute(params![
                folder,
                uid,
                m.blob.0,
                size,
                encode_flags(&flags)?,
                seen,
                m.internal_date,
                modseq,
                added_at
            ])
            .db()?;
        log_change(c, &f.account, modseq, folder, uid, ChangeKind::MessageAdded)?;
        bytes = bytes.saturating_add(size);
        unseen += u32::from(!seen);
        out.push((uid, modseq));
        uid += 1;
    }
    if let Some(&(_, last)) = out.last() {
        let n = u32::try_from(out.len())
            .map_err(|_| StoreError::Backend("too many messages in one append".into()))?;
        c.execute(
            "UPDATE folders SET uid_next = ?2, messages = messages + ?3,
                 unseen = unseen + ?4, bytes = bytes + ?5, highest_modseq = ?6
             WHERE id = ?1",
            params![folder, uid, n, unseen, bytes, last],
        )
        .db()?;
        add_usage(c, &f.account, bytes, i64::from(n))?;
    }
    Ok(out)
}

/// Expunges rows of a folder (the caller's write transaction); with `retain`, each row
/// becomes a tombstone expunged at that time (guide §7.4).
fn expunge_rows(
    c: &Connection,
    folder: i64,
    uids: &[u32],
    retain: Option<i64>,
) -> StoreResult<Vec<BlobId>> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let f = folder_by_id(c, folder)?;
    let (mut bytes, mut count, mut unseen) = (0i64, 0i64, 0i64);
    let mut blobs = Vec::new();
    let mut last = None;
    let mut delete = c
        .prepare_cached(
            "DELETE FROM messages WHERE folder = ?1 AND uid = ?2
             RETURNING blob, size, seen, flags, internal_date",
        )
        .db()?;
    for uid in uids {
        let row: Option<(String, i64, bool, String, i64)> = delete
            .query_row(params![folder, uid], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .db()?;
        let Some((blob, size, seen, flags, internal_date)) = row else {
            continue;
        };
        if let Some(at) = retain {
            c.prepare_cached(
                "INSERT INTO tombstones
                     (account, folder_name, blob, size, flags, internal_date, expunged_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .db()?
            .execute(params![
                f.account,
                f.name,
                blob,
                size,
                flags,
                internal_date,
                at
            ])
            .db()?;
        }
        let modseq = next_modseq(c, &f.account)?;
        log_change(
            c,
            &f.account,
            modseq,
            folder,
            uid,
            ChangeKind::MessageExpunged,
        )?;
        blobs.push(blob);
        bytes = bytes.saturating_add(size);
        count += 1;
        unseen += i64::from(!seen);
        last = Some(modseq);
    }
    if let Some(last) = last {
        c.execute(
            "UPDATE folders SET messages = messages - ?2, unseen = unseen - ?3,
                 bytes = bytes - ?4, highest_modseq = ?5
             WHERE id = ?1",
            params![folder, count, unseen, bytes, last],
        )
        .db()?;
        add_usage(c, &f.account, -bytes, -count)?;
    }
    unreferenced(c, blobs)
}

/// Sets one message's flags inside a write transaction; its modseq (unchanged flags keep
/// the old one, RFC 7162 §3.1), `None` when the message is gone.
fn set_flags_row(
    c: &Connection,
    f: &Folder,
    uid: u32,
    flags: &[String],
) -> StoreResult<Option<u64>> {
    let folder = f.id;
    let Some((old_flags, old_seen, old_modseq)) = c
        .query_row(
            "SELECT flags, seen, modseq FROM messages WHERE folder = ?1 AND uid = ?2",
            params![folder, uid],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            },
        )
        .optional()
        .db()?
    else {
        return Ok(None);
    };
    let new_flags = normalize_flags(flags);
    if decode_flags(0, &old_flags).db()? == new_flags {
        return Ok(Some(old_modseq));
    }
    let seen = has_seen(&new_flags);
    let modseq = next_modseq(c, &f.account)?;
    c.execute(
        "UPDATE messages SET flags = ?3, seen = ?4, modseq = ?5 WHERE folder = ?1 AND uid = ?2",
        params![folder, uid, encode_flags(&new_flags)?, seen, modseq],
    )
    .db()?;
    let delta: i64 = i64::from(old_seen) - i64::from(seen);
    c.execute(
        "UPDATE folders SET unseen = unseen + ?2, highest_modseq = ?3 WHERE id = ?1",
        params![folder, delta, modseq],
    )
    .db()?;
    log_change(c, &f.account, modseq, folder, uid, ChangeKind::FlagsChanged)?;
    Ok(Some(modseq))
}

/// Tombstones of `account` expunged at or after `since`, oldest first.
fn select_tombstones(c: &Connection, account: &str, since: i64) -> StoreResult<Vec<Tombstone>> {
    let mut st = c
        .prepare_cached(
            "SELECT id, account, folder_name, blob, size, flags, internal_date, expunged_at
             FROM tombstones WHERE account = ?1 AND expunged_at >= ?2 ORDER BY expunged_at, id",
        )
        .db()?;
    st.query_map(params![account, since], |r| {
        let blob: String = r.get(3)?;
        let blob =
            BlobId::parse_owned(blob).map_err(|b| bad_column(3, format!("blob id {b:?}")))?;
        let flags: String = r.get(5)?;
        Ok(Tombstone {
            id: r.get(0)?,
            account: r.get(1)?,
            folder: r.get(2)?,
            blob,
            size: r.get(4)?,
            flags: decode_flags(5, &flags)?,
            internal_date: r.get(6)?,
            expunged_at: r.get(7)?,
        })
    })
    .db()?
    .collect::<Result<Vec<_>, _>>()
    .db()
}

/// Deletes the account's tombstones expunged before `before`; returns their blobs (the
/// caller asks [`unreferenced`] which lost their last reference).
fn delete_tombstones(c: &Connection, account: &str, before: i64) -> StoreResult<Vec<String>> {
    let mut st = c
        .prepare_cached(
            "DELETE FROM tombstones WHERE account = ?1 AND expunged_at < ?2 RETURNING blob",
        )
        .db()?;
    st.query_map(params![account, before], |r| r.get(0))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()
}

// ---------------------------------------------------------------------------------------
// The trait

impl MetaStore for SqliteStore {
    fn get_doc(&self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        self.read(|c| doc_get(c, kind, key))
    }

    fn list_docs(&self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        self.read(|c| doc_list(c, kind, parent))
    }

    fn transact(&self, f: &mut dyn FnMut(&mut dyn DocTxn) -> StoreResult<()>) -> StoreResult<()> {
        self.write(|c| f(&mut SqlDocTxn { conn: c }))
    }

    fn docs_generation(&self) -> StoreResult<u64> {
        self.read(|c| {
            c.query_row(
                "SELECT value FROM counters WHERE name = 'docs_generation'",
                [],
                |r| r.get(0),
            )
            .db()
        })
    }

    fn create_folder(&self, account: &str, name: &str, kind: FolderKind) -> StoreResult<Folder> {
        self.write(|c| {
            let uid_validity = next_uid_validity(c)?;
            let modseq = next_modseq(c, account)?;
            c.execute(
                "INSERT INTO folders (account, name, kind, uid_validity, uid_next, highest_modseq)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                params![account, name, kind.as_str(), uid_validity, modseq],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    folder_conflict(account, name)
                } else {
                    map_sql(e)
                }
            })?;
            let id = c.last_insert_rowid();
            log_change(c, account, modseq, id, 0, ChangeKind::FolderCreated)?;
            folder_by_id(c, id)
        })
    }

    fn list_folders(&self, account: &str) -> StoreResult<Vec<Folder>> {
        self.read(|c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {FOLDER_COLS} FROM folders WHERE account = ?1 ORDER BY name"
                ))
                .db()?;
            st.query_map([account], folder_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    fn get_folder(&self, account: &str, name: &str) -> StoreResult<Option<Folder>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {FOLDER_COLS} FROM folders WHERE account = ?1 AND name = ?2"),
                params![account, name],
                folder_from_row,
            )
            .optional()
            .db()
        })
    }

    fn rename_folder(&self, folder: i64, new_name: &str) -> StoreResult<()> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            if f.name == new_name {
                return Ok(());
            }
            let modseq = next_modseq(c, &f.account)?;
            c.execute(
                "UPDATE folders SET name = ?2, highest_modseq = ?3 WHERE id = ?1",
                params![folder, new_name, modseq],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    folder_conflict(&f.account, new_name)
                } else {
                    map_sql(e)
                }
            })?;
            log_change(c, &f.account, modseq, folder, 0, ChangeKind::FolderRenamed)
        })
    }

    fn delete_folder(&self, folder: i64) -> StoreResult<Vec<BlobId>> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            let bytes = folder_bytes(c, folder)?;
            let blobs = folder_blobs(c, folder)?;
            c.execute("DELETE FROM messages WHERE folder = ?1", [folder])
                .db()?;
            c.execute("DELETE FROM folders WHERE id = ?1", [folder])
                .db()?;
            add_usage(c, &f.account, -bytes, -i64::from(f.messages))?;
            let modseq = next_modseq(c, &f.account)?;
            log_change(c, &f.account, modseq, folder, 0, ChangeKind::FolderDeleted)?;
            unreferenced(c, blobs)
        })
    }

    fn move_account_folders(&self, from: &str, to: &str, prefix: &str) -> StoreResult<()> {
        let prefix = prefix.trim_end_matches('/');
        self.write(|c| {
            let folders = {
                let mut st = c
                    .prepare(&format!(
                        "SELECT {FOLDER_COLS} FROM folders WHERE account = ?1 ORDER BY name"
                    ))
                    .db()?;
                st.query_map([from], folder_from_row)
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?
            };
            for f in folders {
                let new_name = if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}/{}", f.name)
                };
                let bytes = folder_bytes(c, f.id)?;
                // The old owner sees the folder go...
                let gone = next_modseq(c, from)?;
                log_change(c, from, gone, f.id, 0, ChangeKind::FolderDeleted)?;
                add_usage(c, from, -bytes, -i64::from(f.messages))?;
                // ...and the new owner sees it and every message arrive, each with a modseq
                // of its own account (DESIGN §2), so its modseqs stay consistent.
                let created = next_modseq(c, to)?;
                c.execute(
                    "UPDATE folders SET account = ?2, name = ?3, highest_modseq = ?4 WHERE id = ?1",
                    params![f.id, to, new_name, created],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        folder_conflict(to, &new_name)
                    } else {
                        map_sql(e)
                    }
                })?;
                log_change(c, to, created, f.id, 0, ChangeKind::FolderCreated)?;
                let uids = {
                    let mut st = c
                        .prepare("SELECT uid FROM messages WHERE folder = ?1 ORDER BY uid")
                        .db()?;
                    st.query_map([f.id], |r| r.get::<_, u32>(0))
                        .db()?
                        .collect::<Result<Vec<_>, _>>()
                        .db()?
                };
                let mut last = created;
                for uid in uids {
                    last = next_modseq(c, to)?;
                    c.execute(
                        "UPDATE messages SET modseq = ?3 WHERE folder = ?1 AND uid = ?2",
                        params![f.id, uid, last],
                    )
                    .db()?;
                    log_change(c, to, last, f.id, uid, ChangeKind::MessageAdded)?;
                }
                c.execute(
                    "UPDATE folders SET highest_modseq = ?2 WHERE id = ?1",
                    params![f.id, last],
                )
                .db()?;
                add_usage(c, to, bytes, i64::from(f.messages))?;
            }
            Ok(())
        })
    }

    fn delete_account_data(&self, account: &str) -> StoreResult<Vec<BlobId>> {
        self.write(|c| {
            let blobs = {
                let mut st = c
                    .prepare(
                        "SELECT DISTINCT m.blob FROM messages m JOIN folders f ON m.folder = f.id
                         WHERE f.account = ?1",
                    )
                    .db()?;
                st.query_map([account], |r| r.get(0))
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?
            };
            c.execute(
                "DELETE FROM messages WHERE folder IN (SELECT id FROM folders WHERE account = ?1)",
                [account],
            )
            .db()?;
            c.execute("DELETE FROM folders WHERE account = ?1", [account])
                .db()?;
            c.execute("DELETE FROM changes WHERE account = ?1", [account])
                .db()?;
            c.execute("DELETE FROM account_state WHERE account = ?1", [account])
                .db()?;
            let mut blobs = blobs;
            blobs.extend(delete_tombstones(c, account, i64::MAX)?);
            unreferenced(c, blobs)
        })
    }

    fn append_messages(
        &self,
        folder: i64,
        messages: &[NewMessage],
    ) -> StoreResult<Vec<(u32, u64)>> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            insert_messages(c, &f, messages, unix_now())
        })
    }

    fn list_messages(&self, folder: i64) -> StoreResult<Vec<MessageMeta>> {
        self.read(|c| {
            folder_by_id(c, folder)?;
            let mut st = c
                .prepare_cached(
                    "SELECT folder, uid, blob, size, flags, internal_date, modseq
                     FROM messages WHERE folder = ?1 ORDER BY uid",
                )
                .db()?;
            st.query_map([folder], message_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    fn list_messages_changed_since(
        &self,
        folder: i64,
        modseq: u64,
    ) -> StoreResult<Vec<MessageMeta>> {
        let modseq = to_i64(modseq, "modseq")?;
        self.read(|c| {
            folder_by_id(c, folder)?;
            // The `messages_by_modseq` index (migration 4) finds the rows; sorting the few
            // found by UID is cheap.
            let mut st = c
                .prepare_cached(
                    "SELECT folder, uid, blob, size, flags, internal_date, modseq
                     FROM messages INDEXED BY messages_by_modseq
                     WHERE folder = ?1 AND modseq > ?2",
                )
                .db()?;
            let mut rows = st
                .query_map(params![folder, modseq], message_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            rows.sort_unstable_by_key(|m| m.uid);
            Ok(rows)
        })
    }

    fn set_flags(&self, folder: i64, uid: u32, flags: &[String]) -> StoreResult<u64> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            set_flags_row(c, &f, uid, flags)?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in folder {folder}")))
        })
    }

    fn set_flags_many(
        &self,
        folder: i64,
        updates: &[(u32, Vec<String>)],
    ) -> StoreResult<Vec<Option<u64>>> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            updates
                .iter()
                .map(|(uid, flags)| set_flags_row(c, &f, *uid, flags))
                .collect()
        })
    }

    fn expunge(&self, folder: i64, uids: &[u32]) -> StoreResult<Vec<BlobId>> {
        self.write(|c| expunge_rows(c, folder, uids, None))
    }

    fn expunge_retaining(
        &self,
        folder: i64,
        uids: &[u32],
        expunged_at: i64,
    ) -> StoreResult<Vec<BlobId>> {
        self.write(|c| expunge_rows(c, folder, uids, Some(expunged_at)))
    }

    fn tombstones(&self, account: &str, since: i64) -> StoreResult<Vec<Tombstone>> {
        self.read(|c| select_tombstones(c, account, since))
    }

    fn restore_tombstones(
        &self,
        account: &str,
        since: i64,
        folder: i64,
    ) -> StoreResult<Vec<(u32, u64)>> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            if f.account != account {
                return Err(StoreError::Aborted(format!(
                    "folder {folder} does not belong to {account}"
                )));
            }
            let stones = select_tombstones(c, account, since)?;
            let new: Vec<NewMessage> = stones.iter().map(crate::restored_message).collect();
            let out = insert_messages(c, &f, &new, unix_now())?;
            let mut delete = c
                .prepare_cached("DELETE FROM tombstones WHERE id = ?1")
                .db()?;
            for t in &stones {
                delete.execute([t.id]).db()?;
            }
            Ok(out)
        })
    }

    fn purge_tombstones(&self, account: &str, before: i64) -> StoreResult<Vec<BlobId>> {
        self.write(|c| {
            let blobs = delete_tombstones(c, account, before)?;
            unreferenced(c, blobs)
        })
    }

    fn tombstone_accounts(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT DISTINCT account FROM tombstones ORDER BY account")
                .db()?;
            st.query_map([], |r| r.get(0))
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    fn messages_added_at(&self, folder: i64) -> StoreResult<Vec<i64>> {
        self.read(|c| {
            folder_by_id(c, folder)?;
            let mut st = c
                .prepare_cached("SELECT added_at FROM messages WHERE folder = ?1 ORDER BY uid")
                .db()?;
            st.query_map([folder], |r| r.get(0))
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    fn messages_added_before(
        &self,
        folder: i64,
        before: i64,
        limit: usize,
    ) -> StoreResult<Vec<u32>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            folder_by_id(c, folder)?;
            let mut st = c
                .prepare_cached(
                    "SELECT uid FROM messages INDEXED BY messages_by_added_at
                     WHERE folder = ?1 AND added_at < ?2 ORDER BY added_at, uid LIMIT ?3",
                )
                .db()?;
            st.query_map(params![folder, before, limit], |r| r.get(0))
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    fn highest_modseq(&self, account: &str) -> StoreResult<u64> {
        self.read(|c| {
            let v: Option<u64> = c
                .query_row(
                    "SELECT highest_modseq FROM account_state WHERE account = ?1",
                    [account],
                    |r| r.get(0),
                )
                .optional()
                .db()?;
            Ok(v.unwrap_or(0))
        })
    }

    fn changes_since(&self, account: &str, since: u64) -> StoreResult<Vec<Change>> {
        let since = to_i64(since, "modseq")?;
        self.read(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT modseq, folder, uid, kind FROM changes
                     WHERE account = ?1 AND modseq > ?2 ORDER BY modseq",
                )
                .db()?;
            st.query_map(params![account, since], |r| {
                let kind: String = r.get(3)?;
                let kind = parse_change_kind(&kind)
                    .ok_or_else(|| bad_column(3, format!("change kind {kind:?}")))?;
                Ok(Change {
                    modseq: r.get(0)?,
                    folder: r.get(1)?,
                    uid: r.get(2)?,
                    kind,
                })
            })
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()
        })
    }

    fn usage(&self, account: &str) -> StoreResult<Usage> {
        self.read(|c| {
            let v = c
                .query_row(
                    "SELECT bytes, messages FROM account_state WHERE account = ?1",
                    [account],
                    |r| {
                        Ok(Usage {
                            bytes: r.get(0)?,
                            messages: r.get(1)?,
                        })
                    },
                )
                .optional()
                .db()?;
            Ok(v.unwrap_or_default())
        })
    }

    fn blob_refcount(&self, blob: &BlobId) -> StoreResult<u64> {
        self.read(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM messages WHERE blob = ?1)
                      + (SELECT count(*) FROM queue WHERE blob = ?1)
                      + (SELECT count(*) FROM tombstones WHERE blob = ?1)",
                [&blob.0],
                |r| r.get(0),
            )
            .db()
        })
    }

    fn enqueue(&self, message: &QueuedMessage) -> StoreResult<()> {
        if BlobId::parse(&message.blob.0).is_none() {
            return Err(StoreError::Aborted(format!(
                "invalid blob id {:?}",
                message.blob.0
            )));
        }
        let size = to_i64(message.size, "message size")?;
        self.write(|c| {
            c.execute(
                "INSERT INTO queue (id, sender, envid, ret, size, blob, created, next_attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    message.id,
                    message.sender,
                    message.envid,
                    message.ret,
                    size,
                    message.blob.0,
                    message.created,
                    message.next_attempt
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        kind: "queue".into(),
                        key: message.id.clone(),
                    }
                } else {
                    map_sql(e)
                }
            })?;
            let mut insert = c
                .prepare_cached(
                    "INSERT INTO queue_rcpt
                         (queue_id, idx, address, notify, orcpt, route, state, attempts, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .db()?;
            for (idx, r) in message.recipients.iter().enumerate() {
                insert
                    .execute(params![
                        message.id,
                        idx,
                        r.address,
                        r.notify,
                        r.orcpt,
                        r.route,
                        r.state.as_str(),
                        r.attempts,
                        r.last_error
                    ])
                    .db()?;
            }
            Ok(())
        })
    }

    fn queued_messages(&self) -> StoreResult<Vec<QueuedMessage>> {
        self.read(|c| {
            let mut msgs = {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {QUEUE_COLS} FROM queue ORDER BY next_attempt, id"
                    ))
                    .db()?;
                st.query_map([], queue_from_row)
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?
            };
            for m in &mut msgs {
                m.recipients = queue_recipients(c, &m.id)?;
            }
            Ok(msgs)
        })
    }

    fn queued_message(&self, id: &str) -> StoreResult<Option<QueuedMessage>> {
        self.read(|c| {
            let m = c
                .query_row(
                    &format!("SELECT {QUEUE_COLS} FROM queue WHERE id = ?1"),
                    [id],
                    queue_from_row,
                )
                .optional()
                .db()?;
            match m {
                Some(mut m) => {
                    m.recipients = queue_recipients(c, id)?;
                    Ok(Some(m))
                }
                None => Ok(None),
            }
        })
    }

    fn update_queue_recipient(
        &self,
        id: &str,
        recipient: &str,
        state: QueueRcptState,
        error: Option<&str>,
        next_attempt: i64,
    ) -> StoreResult<()> {
        self.write(|c| {
            let n = c
                .execute(
                    "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
                    params![id, next_attempt],
                )
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queued message {id}")));
            }
            let n = c
                .execute(
                    "UPDATE queue_rcpt SET state = ?3, last_error = ?4, attempts = attempts + 1
                     WHERE queue_id = ?1 AND idx = (
                         SELECT min(idx) FROM queue_rcpt WHERE queue_id = ?1 AND address = ?2)",
                    params![id, recipient, state.as_str(), error],
                )
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "recipient {recipient} of queued message {id}"
                )));
            }
            Ok(())
        })
    }

    fn dequeue(&self, id: &str) -> StoreResult<Vec<BlobId>> {
        self.write(|c| {
            let blob: Option<String> = c
                .query_row(
                    "DELETE FROM queue WHERE id = ?1 RETURNING blob",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .db()?;
            // ON DELETE CASCADE removes the recipients.
            match blob {
                Some(b) => unreferenced(c, vec![b]),
                None => Ok(Vec::new()),
            }
        })
    }

    fn complete_queued(&self, batch: &[QueueCompletion]) -> StoreResult<Vec<QueueOutcome>> {
        // Group commit: every message's updates and dequeue in one write transaction, so
        // one WAL fsync covers the whole batch (synchronous=FULL).
        self.write(|c| {
            let mut out = Vec::with_capacity(batch.len());
            'each: for done in batch {
                let n = c
                    .prepare_cached("UPDATE queue SET next_attempt = ?2 WHERE id = ?1")
                    .db()?
                    .execute(params![done.id, done.next_attempt])
                    .db()?;
                if n == 0 {
                    out.push(QueueOutcome::Gone);
                    continue;
                }
                for u in &done.updates {
                    let n = c
                        .prepare_cached(
                            "UPDATE queue_rcpt SET state = ?3, last_error = ?4,
                                 attempts = attempts + 1
                             WHERE queue_id = ?1 AND idx = (
                                 SELECT min(idx) FROM queue_rcpt
                                 WHERE queue_id = ?1 AND address = ?2)",
                        )
                        .db()?
                        .execute(params![done.id, u.address, u.state.as_str(), u.error])
                        .db()?;
                    if n == 0 {
                        // Like update_queue_recipient's NotFound: the updates made for
                        // this message so far stay, the message is reported gone.
                        out.push(QueueOutcome::Gone);
                        continue 'each;
                    }
                }
                let open: i64 = c
                    .prepare_cached(
                        "SELECT count(*) FROM queue_rcpt
                         WHERE queue_id = ?1 AND state NOT IN ('delivered', 'failed')",
                    )
                    .db()?
                    .query_row([&done.id], |r| r.get(0))
                    .db()?;
                if open == 0 {
                    let blob: Option<String> = c
                        .prepare_cached("DELETE FROM queue WHERE id = ?1 RETURNING blob")
                        .db()?
                        .query_row([&done.id], |r| r.get(0))
                        .optional()
                        .db()?;
                    out.push(QueueOutcome::Dequeued(match blob {
                        Some(b) => unreferenced(c, vec![b])?,
                        None => Vec::new(),
                    }));
                } else {
                    c.prepare_cached("UPDATE queue SET lease_until = 0 WHERE id = ?1")
                        .db()?
                        .execute([&done.id])
                        .db()?;
                    out.push(QueueOutcome::Released);
                }
            }
            Ok(out)
        })
    }

    fn claim_queued(
        &self,
        now: i64,
        lease_secs: i64,
        limit: usize,
    ) -> StoreResult<Vec<QueuedMessage>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(|c| {
            // One write transaction: the select and the lease update are atomic.
            let mut msgs = {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {QUEUE_COLS} FROM queue
                         WHERE next_attempt <= ?1 AND lease_until <= ?1
                         ORDER BY next_attempt, id LIMIT ?2"
                    ))
                    .db()?;
                st.query_map(params![now, limit], queue_from_row)
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?
            };
            let until = now.saturating_add(lease_secs.max(1));
            for m in &mut msgs {
                c.execute(
                    "UPDATE queue SET lease_until = ?2 WHERE id = ?1",
                    params![m.id, until],
                )
                .db()?;
                m.recipients = queue_recipients(c, &m.id)?;
            }
            Ok(msgs)
        })
    }

    fn release_queued(&self, id: &str) -> StoreResult<bool> {
        self.write(|c| {
            let n = c
                .execute("UPDATE queue SET lease_until = 0 WHERE id = ?1", [id])
                .db()?;
            Ok(n > 0)
        })
    }

    fn set_queue_next_attempt(&self, id: &str, next_attempt: i64) -> StoreResult<bool> {
        self.write(|c| {
            let n = c
                .execute(
                    "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
                    params![id, next_attempt],
                )
                .db()?;
            Ok(n > 0)
        })
    }

    fn mark_queue_warned(&self, id: &str) -> StoreResult<bool> {
        self.write(|c| {
            let n = c
                .execute(
                    "UPDATE queue SET warned = 1 WHERE id = ?1 AND warned = 0",
                    [id],
                )
                .db()?;
            Ok(n > 0)
        })
    }

    // Whole-store methods: `sqlite/bulk.rs`.

    fn accounts(&self) -> StoreResult<Vec<String>> {
        self.bulk_accounts()
    }
    fn all_docs(&self) -> StoreResult<Vec<Doc>> {
        self.bulk_all_docs()
    }
    fn export_queue(&self) -> StoreResult<Vec<QueueDump>> {
        self.bulk_export_queue()
    }
    fn counters(&self) -> StoreResult<StoreCounters> {
        self.bulk_counters()
    }
    fn is_empty(&self) -> StoreResult<bool> {
        self.bulk_is_empty()
    }
    fn erase_all(&self) -> StoreResult<()> {
        self.bulk_erase_all()
    }
    fn import_docs(&self, docs: &[Doc]) -> StoreResult<()> {
        self.bulk_import_docs(docs)
    }
    fn import_account(&self, dump: &AccountDump) -> StoreResult<()> {
        self.bulk_import_account(dump)
    }
    fn import_queued(&self, item: &QueueDump) -> StoreResult<()> {
        self.bulk_import_queued(item)
    }
    fn import_counters(&self, counters: &StoreCounters) -> StoreResult<()> {
        self.bulk_import_counters(counters)
    }
    fn recount(&self) -> StoreResult<()> {
        self.bulk_recount()
    }
    fn reindex_folder(
        &self,
        folder: i64,
        derived: &[crate::DerivedSize],
    ) -> StoreResult<crate::FolderReindex> {
        self.sqlite_reindex_folder(folder, derived)
    }
    fn reindex_account(&self, account: &str) -> StoreResult<crate::AccountReindex> {
        self.sqlite_reindex_account(account)
    }
}

const QUEUE_COLS: &str = "id, sender, envid, ret, size, blob, created, next_attempt";

fn queue_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedMessage> {
    let blob: String = row.get(5)?;
    let blob = BlobId::parse(&blob).ok_or_else(|| bad_column(5, format!("blob id {blob:?}")))?;
    Ok(QueuedMessage {
        id: row.get(0)?,
        sender: row.get(1)?,
        envid: row.get(2)?,
        ret: row.get(3)?,
        size: row.get(4)?,
        blob,
        created: row.get(6)?,
        next_attempt: row.get(7)?,
        recipients: Vec::new(),
    })
}

fn queue_recipients(c: &Connection, id: &str) -> StoreResult<Vec<QueuedRecipient>> {
    let mut st = c
        .prepare_cached(
            "SELECT address, notify, orcpt, route, state, attempts, last_error
             FROM queue_rcpt WHERE queue_id = ?1 ORDER BY idx",
        )
        .db()?;
    st.query_map([id], |r| {
        let state: String = r.get(4)?;
        let state = QueueRcptState::parse(&state)
            .ok_or_else(|| bad_column(4, format!("queue recipient state {state:?}")))?;
        Ok(QueuedRecipient {
            address: r.get(0)?,
            notify: r.get(1)?,
            orcpt: r.get(2)?,
            route: r.get(3)?,
            state,
            attempts: r.get(5)?,
            last_error: r.get(6)?,
        })
    })
    .db()?
    .collect::<Result<Vec<_>, _>>()
    .db()
}

#[cfg(test)]
mod tests;
