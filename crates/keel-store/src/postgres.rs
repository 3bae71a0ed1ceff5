//! PostgreSQL metadata backend for cluster mode (DESIGN §4: any number of stateless
//! `keel serve` nodes share one PostgreSQL database; issue 8).
//!
//! [`PgStore`] implements [`MetaStore`] with the same semantics as
//! [`crate::sqlite::SqliteStore`] (the reference implementation) and passes the same
//! conformance suite (`tests/postgres.rs`).
//!
//! Implementation notes:
//! - **Client**: the synchronous `postgres` crate. [`MetaStore`] is a blocking trait;
//!   async callers use `spawn_blocking` (DESIGN §11: never block the runtime).
//! - **Pool**: up to [`MAX_CONNECTIONS`] connections (or the number given to
//!   [`PgStore::open_with_pool`]), opened on demand and kept open while idle. A caller
//!   takes an idle connection or opens a new one while under the maximum; at the maximum it
//!   waits (up to [`ACQUIRE_TIMEOUT`]) for one to come back. Connections that broke (I/O
//!   error, server restart) are dropped instead of returned. Concurrent callers therefore
//!   run on separate connections and do not serialise on one.
//! - **Isolation**: every write runs in one `SERIALIZABLE` transaction, so a
//!   [`MetaStore::transact`] closure behaves as if it ran alone (no lost update on a
//!   read-modify-write of a document, even across nodes). Reads run in a
//!   `REPEATABLE READ READ ONLY` transaction: one consistent snapshot (a queued message and
//!   its recipients, say), and never a serialization failure.
//! - **Retry**: a transaction that fails with `serialization_failure` (SQLSTATE 40001) or
//!   `deadlock_detected` (40P01), in a statement or at commit, is rolled back and run
//!   again, up to [`MAX_TX_ATTEMPTS`] times, after a random back-off of up to 64 ms. The
//!   closure given to `transact` may therefore run more than once: it must not have side
//!   effects outside the transaction. Any other error ends the transaction (rolled back)
//!   and is returned; a statement error the closure ignored still rolls back and is
//!   reported, since PostgreSQL aborts the whole transaction.
//! - **Modseqs** (DESIGN §2: one change log per account): each mutation takes the
//!   account's next modseqs with an upsert on its `account_state` row. The upsert takes the
//!   row lock (as `SELECT … FOR UPDATE` would) and holds it until commit, so modseq
//!   assignment is serialised per account across nodes and modseqs become visible in
//!   order: a reader never sees modseq n + 1 committed while n is still in flight. The
//!   change-log row, folder counters and quota usage are written in that same transaction.
//! - **Documents**: `docs_generation` is a counter row bumped in the writing transaction,
//!   so every node sees a changed number after any document write anywhere.
//! - **Queue leases** (DESIGN §4: queue items are claimed with leases, `FOR UPDATE SKIP
//!   LOCKED`): [`MetaStore::claim_queued`] is one `UPDATE … FROM (SELECT … FOR UPDATE
//!   SKIP LOCKED)` statement in a `READ COMMITTED` transaction (the one write that is not
//!   SERIALIZABLE: SSI would turn two nodes' claims of disjoint rows into serialization
//!   failures). Rows another claimer has locked are skipped instead of waited for; rows it
//!   leased and committed are re-checked against `lease_until <= now` on their newest
//!   version before being locked, so two nodes never hold a lease on the same message at
//!   the same time. The lease is the `lease_until` column (Unix seconds): a node that dies
//!   simply stops renewing, and the message is claimable again once `now` passes it.
//! - **Change notifications** (DESIGN §4: change notifications cross nodes with
//!   LISTEN/NOTIFY): every transaction that writes change-log rows also sends
//!   `pg_notify(<channel>, '<account>:<modseq>')` (delivered at commit), and
//!   [`MetaStore::change_listener`] returns a [`PgChangeListener`] on a dedicated
//!   connection. Best-effort: see `postgres/listen.rs`.
//! - **Blobs**: [`PgBlobStore`] keeps message bytes in the same database (`postgres/blob.rs`),
//!   so every node reads the same bodies.
//! - **Schema**: [`migrations`], applied at open in one transaction under a
//!   transaction-scoped advisory lock, so nodes starting together migrate once. A database
//!   whose schema is newer than this build is refused.
//! - **Errors**: unique violations (SQLSTATE 23505) become [`StoreError::Conflict`];
//!   values that do not decode (a negative UID, a bad flag list) become
//!   [`StoreError::Corrupt`]; everything else [`StoreError::Backend`] with the server's
//!   message. Nothing read from the database is unwrapped.

mod blob;
mod bulk;
mod listen;
pub mod migrations;
mod reindex;

pub use blob::{MAX_BLOB_SIZE, ORPHAN_GRACE, PgBlobStore};
pub use listen::{CHANNEL as CHANGE_CHANNEL, PgChangeListener};

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Transaction};

use crate::{
    AccountDump, BlobId, Change, ChangeKind, ChangeListener, Doc, DocTxn, Folder, FolderKind,
    MessageMeta, MetaStore, NewMessage, QueueDump, QueueRcptState, QueuedMessage, QueuedRecipient,
    StoreCounters, StoreError, StoreResult, Tombstone, Usage,
};

/// Default maximum number of connections of one [`PgStore`].
pub const MAX_CONNECTIONS: usize = 16;

/// How long a caller waits for a pooled connection when all are in use.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a transaction is run before a serialization failure is returned.
pub const MAX_TX_ATTEMPTS: u32 = 40;

/// Connect timeout used when the URL does not set one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the advisory lock held while migrating ("keel" in ASCII, then 1).
const MIGRATION_LOCK_KEY: i64 = 0x6b65_656c_0001;

/// The flag whose absence makes a message count as unseen.
const SEEN: &str = "\\Seen";

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// ---------------------------------------------------------------------------------------
// Errors

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                s.push_str(": ");
                s.push_str(detail);
            }
            s
        }
        None => e.to_string(),
    }
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// SQLSTATE 40001 and 40P01: the transaction can succeed if run again.
fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Generic mapping: unique violations are `Conflict` (on the table, with the server's
/// detail as key); callers that know the key map them themselves.
fn map_pg(e: &postgres::Error) -> StoreError {
    if is_unique_violation(e)
        && let Some(db) = e.as_db_error()
    {
        return StoreError::Conflict {
            kind: db.table().unwrap_or("row").to_owned(),
            key: db.detail().unwrap_or_else(|| db.message()).to_owned(),
        };
    }
    StoreError::Backend(describe(e))
}

fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} out of range")))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The pool state is a list and a counter, consistent after every statement.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------------------
// Column decoding: wrong types and out-of-range values are `Corrupt`, never a panic.

fn corrupt(row: &Row, i: usize, what: impl std::fmt::Display) -> StoreError {
    let name = row.columns().get(i).map_or("?", |c| c.name());
    StoreError::Corrupt(format!("column {name}: {what}"))
}

fn col_i64(row: &Row, i: usize) -> StoreResult<i64> {
    row.try_get::<_, i64>(i).map_err(|e| corrupt(row, i, e))
}

fn col_u64(row: &Row, i: usize) -> StoreResult<u64> {
    let v = col_i64(row, i)?;
    u64::try_from(v).map_err(|_| corrupt(row, i, format!("negative value {v}")))
}

fn col_u32(row: &Row, i: usize) -> StoreResult<u32> {
    let v = col_i64(row, i)?;
    u32::try_from(v).map_err(|_| corrupt(row, i, format!("value {v} out of range")))
}

fn col_str(row: &Row, i: usize) -> StoreResult<String> {
    row.try_get::<_, String>(i).map_err(|e| corrupt(row, i, e))
}

fn col_opt_str(row: &Row, i: usize) -> StoreResult<Option<String>> {
    row.try_get::<_, Option<String>>(i)
        .map_err(|e| corrupt(row, i, e))
}

fn col_bool(row: &Row, i: usize) -> StoreResult<bool> {
    row.try_get::<_, bool>(i).map_err(|e| corrupt(row, i, e))
}

fn col_blob(row: &Row, i: usize) -> StoreResult<BlobId> {
    let s = col_str(row, i)?;
    BlobId::parse_owned(s).map_err(|s| corrupt(row, i, format!("blob id {s:?}")))
}

// ---------------------------------------------------------------------------------------
// Transactions

/// The first failed statement of a transaction. PostgreSQL aborts the transaction on any
/// error, so it is remembered even if the caller's closure ignores the error.
struct Fault {
    retry: bool,
    broken: bool,
    message: String,
}

/// One open transaction; every statement goes through it so failures are recorded.
struct Tx<'c> {
    tx: Transaction<'c>,
    fault: Option<Fault>,
    /// Account → highest modseq written by this transaction, announced with NOTIFY at
    /// commit (DESIGN §4; see [`listen`]).
    changed: BTreeMap<String, u64>,
}

impl<'c> Tx<'c> {
    fn new(tx: Transaction<'c>) -> Self {
        Self {
            tx,
            fault: None,
            changed: BTreeMap::new(),
        }
    }

    fn record(&mut self, e: &postgres::Error) {
        if self.fault.is_none() {
            self.fault = Some(Fault {
                retry: is_retryable(e),
                broken: e.as_db_error().is_none() && e.is_closed(),
                message: describe(e),
            });
        }
    }

    fn check<T>(&mut self, r: Result<T, postgres::Error>) -> StoreResult<T> {
        r.map_err(|e| {
            self.record(&e);
            map_pg(&e)
        })
    }

    fn exec(&mut self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let r = self.tx.execute(sql, params);
        self.check(r)
    }

    /// Like [`Self::exec`], with unique violations mapped to `conflict()`.
    fn exec_unique(
        &mut self,
        sql: &str,
        params: Params<'_>,
        conflict: impl FnOnce() -> StoreError,
    ) -> StoreResult<u64> {
        match self.tx.execute(sql, params) {
            Ok(n) => Ok(n),
            Err(e) => {
                self.record(&e);
                Err(if is_unique_violation(&e) {
                    conflict()
                } else {
                    map_pg(&e)
                })
            }
        }
    }

    fn rows(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let r = self.tx.query(sql, params);
        self.check(r)
    }

    fn opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let r = self.tx.query_opt(sql, params);
        self.check(r)
    }

    fn one(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let r = self.tx.query_one(sql, params);
        self.check(r)
    }
}

enum Attempt<T> {
    Done(T),
    Retry(String),
    Failed { error: StoreError, broken: bool },
}

/// Runs `f` once in a transaction of the given isolation level and commits on `Ok`.
/// Changes the transaction logged are announced on `channel` (DESIGN §4: change
/// notifications cross nodes with LISTEN/NOTIFY) right before the commit.
fn attempt<T>(
    client: &mut Client,
    level: IsolationLevel,
    read_only: bool,
    channel: &str,
    f: &mut impl FnMut(&mut Tx<'_>) -> StoreResult<T>,
) -> Attempt<T> {
    let tx = match client
        .build_transaction()
        .isolation_level(level)
        .read_only(read_only)
        .start()
    {
        Ok(tx) => tx,
        Err(e) => {
            return Attempt::Failed {
                broken: e.is_closed() || e.as_db_error().is_none(),
                error: StoreError::Backend(format!("starting a transaction: {}", describe(&e))),
            };
        }
    };
    let mut t = Tx::new(tx);
    let mut out = f(&mut t);
    if out.is_ok() && t.fault.is_none() && !t.changed.is_empty() {
        // Delivered by PostgreSQL at commit only, so never for a rolled-back change.
        if let Err(e) = t.notify_changes(channel) {
            out = Err(e);
        }
    }
    let Tx { tx, fault, .. } = t;
    // Dropping `tx` without commit rolls it back.
    match (out, fault) {
        (_, Some(fault)) if fault.retry => Attempt::Retry(fault.message),
        (Err(error), fault) => Attempt::Failed {
            error,
            broken: fault.is_some_and(|f| f.broken),
        },
        (Ok(_), Some(fault)) => Attempt::Failed {
            error: StoreError::Backend(format!(
                "a statement failed inside the transaction: {}",
                fault.message
            )),
            broken: fault.broken,
        },
        (Ok(v), None) => match tx.commit() {
            Ok(()) => Attempt::Done(v),
            Err(e) if is_retryable(&e) => Attempt::Retry(describe(&e)),
            Err(e) => Attempt::Failed {
                broken: e.as_db_error().is_none(),
                error: StoreError::Backend(format!("commit failed: {}", describe(&e))),
            },
        },
    }
}

/// Random back-off before attempt `attempt + 1`: up to 2^attempt ms, at most 64 ms.
fn backoff(attempt: u32) {
    let cap = 1u64 << attempt.min(6);
    std::thread::sleep(Duration::from_millis(rand::random_range(0..=cap)));
}

// ---------------------------------------------------------------------------------------
// The pool

struct PoolState {
    idle: Vec<Client>,
    /// Connections open, idle or in use.
    open: usize,
}

/// A connection taken from the pool; goes back (or is closed if broken) when dropped.
struct Conn<'s> {
    store: &'s PgStore,
    client: Option<Client>,
    discard: bool,
}

impl Conn<'_> {
    fn client(&mut self) -> StoreResult<&mut Client> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Backend("pooled connection already returned".into()))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let mut st = lock(&self.store.pool);
            if self.discard || client.is_closed() {
                st.open = st.open.saturating_sub(1);
            } else {
                st.idle.push(client);
            }
            drop(st);
            self.store.freed.notify_one();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The store

/// The PostgreSQL [`MetaStore`] (see the module documentation).
pub struct PgStore {
    config: postgres::Config,
    max_connections: usize,
    pool: Mutex<PoolState>,
    freed: Condvar,
    /// The NOTIFY channel of this store's schema (see [`listen`]).
    channel: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the config: it may hold a password.
        f.debug_struct("PgStore")
            .field("dbname", &self.config.get_dbname())
            .field("max_connections", &self.max_connections)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// The synchronous client closes its connection with a blocking call when dropped, which
/// panics on a thread that drives a tokio runtime (the server drops its store at the end
/// of `keel serve`, inside `block_on`). Pooled connections are therefore closed through
/// [`off_runtime`].
impl Drop for PgStore {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut lock(&self.pool).idle);
        if !idle.is_empty() {
            off_runtime(move || drop(idle));
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://…` URL or a `key=value`
    /// connection string, e.g. `host=127.0.0.1 port=5432 user=keel dbname=keel`) with a
    /// pool of up to [`MAX_CONNECTIONS`] connections, and brings its schema up to date.
    /// Fails if the database's schema is newer than this build knows.
    pub fn open(url: &str) -> StoreResult<Self> {
        Self::open_with_pool(url, MAX_CONNECTIONS)
    }

    /// [`Self::open`] with at most `max_connections` (at least 1) connections.
    pub fn open_with_pool(url: &str, max_connections: usize) -> StoreResult<Self> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL connection URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keel");
        }
        let mut store = Self {
            config,
            max_connections: max_connections.max(1),
            pool: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            channel: listen::CHANNEL.to_owned(),
        };
        store.migrate()?;
        let schema = store.read(|t| {
            let row = t.one("SELECT current_schema()::TEXT", &[])?;
            col_opt_str(&row, 0)
        })?;
        store.channel = listen::channel_for(schema.as_deref());
        Ok(store)
    }

    /// The NOTIFY channel changes of this store are announced on: `keel_changes` in the
    /// `public` schema, a per-schema name otherwise (see [`PgChangeListener`]).
    pub fn change_channel(&self) -> &str {
        &self.channel
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> StoreResult<u32> {
        self.read(|t| {
            let row = t.one(
                "SELECT coalesce(max(version), 0)::BIGINT FROM schema_version",
                &[],
            )?;
            col_u32(&row, 0)
        })
    }

    /// Takes an idle connection, opens one while under the maximum, or waits.
    /// Callers run inside [`off_runtime`].
    fn conn(&self) -> StoreResult<Conn<'_>> {
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        let mut st = lock(&self.pool);
        loop {
            if let Some(client) = st.idle.pop() {
                if client.is_closed() {
                    st.open = st.open.saturating_sub(1);
                    continue;
                }
                return Ok(Conn {
                    store: self,
                    client: Some(client),
                    discard: false,
                });
            }
            if st.open < self.max_connections {
                st.open += 1;
                drop(st);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Conn {
                        store: self,
                        client: Some(client),
                        discard: false,
                    }),
                    Err(e) => {
                        lock(&self.pool).open -= 1;
                        self.freed.notify_one();
                        Err(StoreError::Backend(format!(
                            "connecting to PostgreSQL: {}",
                            describe(&e)
                        )))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Backend(format!(
                    "all {} PostgreSQL connections stayed busy for {ACQUIRE_TIMEOUT:?}",
                    self.max_connections
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `f` in one SERIALIZABLE transaction, retried on serialization failures.
    fn write<T>(&self, f: impl FnMut(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.write_at(IsolationLevel::Serializable, f)
    }

    fn write_at<T>(
        &self,
        level: IsolationLevel,
        f: impl FnMut(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        off_runtime(|| self.write_at_inner(level, f))
    }

    fn write_at_inner<T>(
        &self,
        level: IsolationLevel,
        mut f: impl FnMut(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn()?;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt(conn.client()?, level, false, &self.channel, &mut f) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry(_) if tries < MAX_TX_ATTEMPTS => backoff(tries),
                Attempt::Retry(msg) => {
                    return Err(StoreError::Backend(format!(
                        "transaction failed {tries} times on concurrent changes: {msg}"
                    )));
                }
                Attempt::Failed { error, broken } => {
                    conn.discard = broken;
                    return Err(error);
                }
            }
        }
    }

    /// Runs `f` in one REPEATABLE READ READ ONLY transaction (one snapshot).
    fn read<T>(&self, f: impl FnMut(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        off_runtime(|| self.read_inner(f))
    }

    fn read_inner<T>(&self, mut f: impl FnMut(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn()?;
        match attempt(
            conn.client()?,
            IsolationLevel::RepeatableRead,
            true,
            &self.channel,
            &mut f,
        ) {
            Attempt::Done(v) => Ok(v),
            Attempt::Retry(msg) => Err(StoreError::Backend(msg)),
            Attempt::Failed { error, broken } => {
                conn.discard = broken;
                Err(error)
            }
        }
    }

    /// Applies the missing migrations in one transaction; refuses a newer schema.
    fn migrate(&self) -> StoreResult<()> {
        let latest = i64::from(migrations::latest_version());
        self.write_at(IsolationLevel::ReadCommitted, |t| {
            // Nodes starting at the same time: the first migrates, the others wait here and
            // then find the schema current. Released at commit or rollback.
            t.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
            let r = t.tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (
                     version    BIGINT PRIMARY KEY,
                     applied_at BIGINT NOT NULL
                 )",
            );
            t.check(r)?;
            let row = t.one(
                "SELECT coalesce(max(version), 0)::BIGINT FROM schema_version",
                &[],
            )?;
            let current = col_i64(&row, 0)?;
            if current > latest {
                return Err(StoreError::Backend(format!(
                    "database schema version {current} is newer than this build of Keel \
                     supports ({latest}); run a newer Keel or restore a backup"
                )));
            }
            let current = usize::try_from(current)
                .map_err(|_| StoreError::Corrupt(format!("negative schema version {current}")))?;
            let now = unix_now();
            for (index, sql) in migrations::MIGRATIONS.iter().enumerate().skip(current) {
                let version = to_i64(index as u64 + 1, "schema version")?;
                if let Err(e) = t.tx.batch_execute(sql) {
                    t.record(&e);
                    return Err(StoreError::Backend(format!(
                        "migration to schema version {version} failed: {}",
                        describe(&e)
                    )));
                }
                t.exec(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    &[&version, &now],
                )?;
            }
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// Documents

const DOC_COLS: &str = "kind, key, parent, version, body";

fn doc_from_row(row: &Row) -> StoreResult<Doc> {
    let body = col_str(row, 4)?;
    let body = serde_json::from_str(&body).map_err(|e| corrupt(row, 4, e))?;
    Ok(Doc {
        kind: col_str(row, 0)?,
        key: col_str(row, 1)?,
        parent: col_str(row, 2)?,
        version: col_u64(row, 3)?,
        body,
    })
}

fn doc_get(t: &mut Tx<'_>, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
    t.opt(
        &format!("SELECT {DOC_COLS} FROM docs WHERE kind = $1 AND key = $2"),
        &[&kind, &key],
    )?
    .as_ref()
    .map(doc_from_row)
    .transpose()
}

fn doc_list(t: &mut Tx<'_>, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
    let rows = match parent {
        Some(p) => t.rows(
            &format!("SELECT {DOC_COLS} FROM docs WHERE kind = $1 AND parent = $2 ORDER BY key"),
            &[&kind, &p],
        )?,
        None => t.rows(
            &format!("SELECT {DOC_COLS} FROM docs WHERE kind = $1 ORDER BY key"),
            &[&kind],
        )?,
    };
    rows.iter().map(doc_from_row).collect()
}

/// DESIGN §4: other nodes notice document changes through this counter, bumped in the
/// writing transaction.
fn bump_generation(t: &mut Tx<'_>) -> StoreResult<()> {
    t.exec(
        "UPDATE counters SET value = value + 1 WHERE name = 'docs_generation'",
        &[],
    )?;
    Ok(())
}

fn doc_put(
    t: &mut Tx<'_>,
    kind: &str,
    key: &str,
    parent: &str,
    body: &serde_json::Value,
) -> StoreResult<u64> {
    let text = serde_json::to_string(body)
        .map_err(|e| StoreError::Backend(format!("encoding {kind} {key}: {e}")))?;
    let row = t.one(
        "INSERT INTO docs (kind, key, parent, version, body) VALUES ($1, $2, $3, 1, $4)
         ON CONFLICT (kind, key) DO UPDATE
             SET parent = EXCLUDED.parent, version = docs.version + 1, body = EXCLUDED.body
         RETURNING version",
        &[&kind, &key, &parent, &text],
    )?;
    let version = col_u64(&row, 0)?;
    bump_generation(t)?;
    Ok(version)
}

fn doc_delete(t: &mut Tx<'_>, kind: &str, key: &str) -> StoreResult<bool> {
    let n = t.exec(
        "DELETE FROM docs WHERE kind = $1 AND key = $2",
        &[&kind, &key],
    )?;
    if n > 0 {
        bump_generation(t)?;
    }
    Ok(n > 0)
}

struct PgDocTxn<'a, 'c> {
    tx: &'a mut Tx<'c>,
}

impl DocTxn for PgDocTxn<'_, '_> {
    fn get(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        doc_get(self.tx, kind, key)
    }
    fn list(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        doc_list(self.tx, kind, parent)
    }
    fn put(
        &mut self,
        kind: &str,
        key: &str,
        parent: &str,
        body: &serde_json::Value,
    ) -> StoreResult<u64> {
        doc_put(self.tx, kind, key, parent, body)
    }
    fn delete(&mut self, kind: &str, key: &str) -> StoreResult<bool> {
        doc_delete(self.tx, kind, key)
    }
}

// ---------------------------------------------------------------------------------------
// Mail metadata helpers (all called inside one write transaction)

const FOLDER_COLS: &str =
    "id, account, name, kind, uid_validity, uid_next, messages, unseen, highest_modseq";

fn folder_from_row(row: &Row) -> StoreResult<Folder> {
    let kind = col_str(row, 3)?;
    let kind = FolderKind::parse(&kind).ok_or_else(|| corrupt(row, 3, format!("{kind:?}")))?;
    Ok(Folder {
        id: col_i64(row, 0)?,
        account: col_str(row, 1)?,
        name: col_str(row, 2)?,
        kind,
        uid_validity: col_u32(row, 4)?,
        uid_next: col_u32(row, 5)?,
        messages: col_u32(row, 6)?,
        unseen: col_u32(row, 7)?,
        highest_modseq: col_u64(row, 8)?,
    })
}

/// Sets one message's flags inside a write transaction; its modseq (unchanged flags keep
/// the old one, RFC 7162 §3.1), `None` when the message is gone.
fn set_flags_row(
    t: &mut Tx<'_>,
    f: &Folder,
    uid: u32,
    flags: &[String],
) -> StoreResult<Option<u64>> {
    let folder = f.id;
    let uid_i = i64::from(uid);
    let Some(row) = t.opt(
        "SELECT flags, seen, modseq FROM messages WHERE folder = $1 AND uid = $2",
        &[&folder, &uid_i],
    )?
    else {
        return Ok(None);
    };
    let old_flags = decode_flags(&row, 0)?;
    let old_seen = col_bool(&row, 1)?;
    let old_modseq = col_u64(&row, 2)?;
    let new_flags = normalize_flags(flags);
    if old_flags == new_flags {
        return Ok(Some(old_modseq));
    }
    let seen = has_seen(&new_flags);
    let modseq = next_modseq(t, &f.account)?;
    let modseq_i = to_i64(modseq, "modseq")?;
    t.exec(
        "UPDATE messages SET flags = $3, seen = $4, modseq = $5
         WHERE folder = $1 AND uid = $2",
        &[
            &folder,
            &uid_i,
            &encode_flags(&new_flags)?,
            &seen,
            &modseq_i,
        ],
    )?;
    let delta = i64::from(old_seen) - i64::from(seen);
    t.exec(
        "UPDATE folders SET unseen = unseen + $2, highest_modseq = $3 WHERE id = $1",
        &[&folder, &delta, &modseq_i],
    )?;
    log_change(t, &f.account, modseq, folder, uid, ChangeKind::FlagsChanged)?;
    Ok(Some(modseq))
}

fn folder_by_id(t: &mut Tx<'_>, id: i64) -> StoreResult<Folder> {
    t.opt(
        &format!("SELECT {FOLDER_COLS} FROM folders WHERE id = $1"),
        &[&id],
    )?
    .as_ref()
    .map(folder_from_row)
    .transpose()?
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

/// DESIGN §2: every change gets the account's next modseq. Reserves `n` (≥ 1) modseqs and
/// returns the first. The upsert locks the account's row until commit (the per-account
/// `SELECT … FOR UPDATE` of the module notes), so concurrent writers of one account, on any
/// node, take modseqs one transaction after the other.
fn reserve_modseqs(t: &mut Tx<'_>, account: &str, n: u64) -> StoreResult<u64> {
    let n = to_i64(n.max(1), "modseq count")?;
    let row = t.one(
        "INSERT INTO account_state (account, highest_modseq) VALUES ($1, $2)
         ON CONFLICT (account) DO UPDATE
             SET highest_modseq = account_state.highest_modseq + EXCLUDED.highest_modseq
         RETURNING highest_modseq",
        &[&account, &n],
    )?;
    let last = col_i64(&row, 0)?;
    u64::try_from(last - n + 1)
        .map_err(|_| StoreError::Corrupt(format!("modseq {last} of {account}")))
}

fn next_modseq(t: &mut Tx<'_>, account: &str) -> StoreResult<u64> {
    reserve_modseqs(t, account, 1)
}

/// ...and a row in the account's change log, in the same transaction (DESIGN §2).
fn log_change(
    t: &mut Tx<'_>,
    account: &str,
    modseq: u64,
    folder: i64,
    uid: u32,
    kind: ChangeKind,
) -> StoreResult<()> {
    t.changed(account, modseq);
    let modseq = to_i64(modseq, "modseq")?;
    t.exec(
        "INSERT INTO changes (account, modseq, folder, uid, kind) VALUES ($1, $2, $3, $4, $5)",
        &[
            &account,
            &modseq,
            &folder,
            &i64::from(uid),
            &change_kind_str(&kind),
        ],
    )?;
    Ok(())
}

/// DESIGN §2: quota usage is adjusted incrementally, never recomputed by scanning.
fn add_usage(t: &mut Tx<'_>, account: &str, bytes: i64, messages: i64) -> StoreResult<()> {
    if bytes == 0 && messages == 0 {
        return Ok(());
    }
    t.exec(
        "INSERT INTO account_state (account, bytes, messages) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO UPDATE
             SET bytes = account_state.bytes + EXCLUDED.bytes,
                 messages = account_state.messages + EXCLUDED.messages",
        &[&account, &bytes, &messages],
    )?;
    Ok(())
}

/// A fresh UIDVALIDITY: the creation time in Unix seconds, but always above every value
/// handed out before, so a folder re-created under the same name (even within the same
/// second) gets a different one (RFC 9051 §2.3.1.1).
fn next_uid_validity(t: &mut Tx<'_>) -> StoreResult<u32> {
    let row = t.one(
        "SELECT value FROM counters WHERE name = 'uid_validity' FOR UPDATE",
        &[],
    )?;
    let last = col_i64(&row, 0)?;
    let next = unix_now().max(last.saturating_add(1)).max(1);
    let next = u32::try_from(next)
        .map_err(|_| StoreError::Backend("UIDVALIDITY values exhausted".into()))?;
    t.exec(
        "UPDATE counters SET value = $1 WHERE name = 'uid_validity'",
        &[&i64::from(next)],
    )?;
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

fn decode_flags(row: &Row, i: usize) -> StoreResult<Vec<String>> {
    let text: &str = row.try_get(i).map_err(|e| corrupt(row, i, e))?;
    if let Some(flags) = crate::parse_flag_list(text) {
        return Ok(flags);
    }
    serde_json::from_str(text).map_err(|e| corrupt(row, i, format!("flags: {e}")))
}

/// Of `candidates`, the blobs no message and no queued message references any more. Runs
/// inside the deleting transaction, so the answer matches what was committed.
fn unreferenced(t: &mut Tx<'_>, mut candidates: Vec<String>) -> StoreResult<Vec<BlobId>> {
    candidates.sort();
    candidates.dedup();
    let mut lost = Vec::new();
    for blob in candidates {
        let row = t.one(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE blob = $1)
                 OR EXISTS (SELECT 1 FROM queue WHERE blob = $1)
                 OR EXISTS (SELECT 1 FROM tombstones WHERE blob = $1)",
            &[&blob],
        )?;
        if !col_bool(&row, 0)? {
            let id = BlobId::parse(&blob)
                .ok_or_else(|| StoreError::Corrupt(format!("stored blob id {blob:?}")))?;
            lost.push(id);
        }
    }
    Ok(lost)
}

fn strings(rows: &[Row]) -> StoreResult<Vec<String>> {
    rows.iter().map(|r| col_str(r, 0)).collect()
}

fn folder_blobs(t: &mut Tx<'_>, folder: i64) -> StoreResult<Vec<String>> {
    strings(&t.rows(
        "SELECT DISTINCT blob FROM messages WHERE folder = $1",
        &[&folder],
    )?)
}

fn folder_bytes(t: &mut Tx<'_>, folder: i64) -> StoreResult<i64> {
    let row = t.one("SELECT bytes FROM folders WHERE id = $1", &[&folder])?;
    col_i64(&row, 0)
}

fn message_from_row(row: &Row) -> StoreResult<MessageMeta> {
    Ok(MessageMeta {
        folder: col_i64(row, 0)?,
        uid: col_u32(row, 1)?,
        blob: col_blob(row, 2)?,
        size: col_u64(row, 3)?,
        flags: decode_flags(row, 4)?,
        internal_date: col_i64(row, 5)?,
        modseq: col_u64(row, 6)?,
    })
}

/// Appends rows to folder `f` (the caller's write transaction); `added_at` is when they
/// enter the folder (guide §7.5).
fn insert_messages(
    t: &mut Tx<'_>,
    f: &Folder,
    messages: &[NewMessage],
    added_at: i64,
) -> StoreResult<Vec<(u32, u64)>> {
    let folder = f.id;
    if let Some(m) = messages.iter().find(|m| BlobId::parse(&m.blob.0).is_none()) {
        return Err(StoreError::Aborted(format!(
            "invalid blob id {:?}",
            m.blob.0
        )));
    }
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut uid = f.uid_next;
    let (mut bytes, mut unseen) = (0i64, 0i64);
    let mut out = Vec::with_capacity(messages.len());
    // One lock and one round trip for the batch's modseqs (DESIGN §2).
    let first = reserve_modseqs(t, &f.account, messages.len() as u64)?;
    for (modseq, m) in (first..).zip(messages) {
        // UIDs are non-zero u32 and uid_next must stay representable.
        if uid == u32::MAX {
            return Err(StoreError::Backend(format!(
                "UIDs of folder {folder} exhausted"
            )));
        }
        let size = to_i64(m.size, "message size")?;
        let flags = normalize_flags(&m.flags);
        let seen = has_seen(&flags);
        t.exec(
            "INSERT INTO messages
                 (folder, uid, blob, size, flags, seen, internal_date, modseq, added_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &folder,
                &i64::from(uid),
                &m.blob.0,
                &size,
                &encode_flags(&flags)?,
                &seen,
                &m.internal_date,
                &to_i64(modseq, "modseq")?,
                &added_at,
            ],
        )?;
        log_change(t, &f.account, modseq, folder, uid, ChangeKind::MessageAdded)?;
        bytes = bytes.saturating_add(size);
        unseen += i64::from(!seen);
        out.push((uid, modseq));
        uid += 1;
    }
    let n = i64::try_from(out.len())
        .map_err(|_| StoreError::Backend("too many messages in one append".into()))?;
    let last = out.last().map_or(0, |&(_, m)| m);
    t.exec(
        "UPDATE folders SET uid_next = $2, messages = messages + $3,
             unseen = unseen + $4, bytes = bytes + $5, highest_modseq = $6
         WHERE id = $1",
        &[
            &folder,
            &i64::from(uid),
            &n,
            &unseen,
            &bytes,
            &to_i64(last, "modseq")?,
        ],
    )?;
    add_usage(t, &f.account, bytes, n)?;
    Ok(out)
}

/// Expunges rows of a folder (the caller's write transaction); with `retain`, each row
/// becomes a tombstone expunged at that time (guide §7.4).
fn expunge_rows(
    t: &mut Tx<'_>,
    folder: i64,
    uids: &[u32],
    retain: Option<i64>,
) -> StoreResult<Vec<BlobId>> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let f = folder_by_id(t, folder)?;
    let (mut bytes, mut count, mut unseen) = (0i64, 0i64, 0i64);
    let mut blobs = Vec::new();
    let mut last = None;
    for &uid in &uids {
        let Some(row) = t.opt(
            "DELETE FROM messages WHERE folder = $1 AND uid = $2
             RETURNING blob, size, seen, flags, internal_date",
            &[&folder, &i64::from(uid)],
        )?
        else {
            continue;
        };
        let (blob, size, seen) = (col_str(&row, 0)?, col_i64(&row, 1)?, col_bool(&row, 2)?);
        if let Some(at) = retain {
            let flags = col_str(&row, 3)?;
            let internal_date = col_i64(&row, 4)?;
            t.exec(
                "INSERT INTO tombstones
                     (account, folder_name, blob, size, flags, internal_date, expunged_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &f.account,
                    &f.name,
                    &blob,
                    &size,
                    &flags,
                    &internal_date,
                    &at,
                ],
            )?;
        }
        let modseq = next_modseq(t, &f.account)?;
        log_change(
            t,
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
        t.exec(
            "UPDATE folders SET messages = messages - $2, unseen = unseen - $3,
                 bytes = bytes - $4, highest_modseq = $5
             WHERE id = $1",
            &[&folder, &count, &unseen, &bytes, &to_i64(last, "modseq")?],
        )?;
        add_usage(t, &f.account, -bytes, -count)?;
    }
    unreferenced(t, blobs)
}

const TOMBSTONE_COLS: &str =
    "id, account, folder_name, blob, size, flags, internal_date, expunged_at";

fn tombstone_from_row(row: &Row) -> StoreResult<Tombstone> {
    Ok(Tombstone {
        id: col_i64(row, 0)?,
        account: col_str(row, 1)?,
        folder: col_str(row, 2)?,
        blob: col_blob(row, 3)?,
        size: col_u64(row, 4)?,
        flags: decode_flags(row, 5)?,
        internal_date: col_i64(row, 6)?,
        expunged_at: col_i64(row, 7)?,
    })
}

/// Tombstones of `account` expunged at or after `since`, oldest first.
fn select_tombstones(t: &mut Tx<'_>, account: &str, since: i64) -> StoreResult<Vec<Tombstone>> {
    t.rows(
        &format!(
            "SELECT {TOMBSTONE_COLS} FROM tombstones
             WHERE account = $1 AND expunged_at >= $2 ORDER BY expunged_at, id"
        ),
        &[&account, &since],
    )?
    .iter()
    .map(tombstone_from_row)
    .collect()
}

/// As [`select_tombstones`], locking the rows until commit.
fn select_tombstones_for_update(
    t: &mut Tx<'_>,
    account: &str,
    since: i64,
) -> StoreResult<Vec<Tombstone>> {
    t.rows(
        &format!(
            "SELECT {TOMBSTONE_COLS} FROM tombstones
             WHERE account = $1 AND expunged_at >= $2 ORDER BY expunged_at, id FOR UPDATE"
        ),
        &[&account, &since],
    )?
    .iter()
    .map(tombstone_from_row)
    .collect()
}

/// Deletes the account's tombstones expunged before `before`; returns their blobs (the
/// caller asks [`unreferenced`] which lost their last reference).
fn delete_tombstones(t: &mut Tx<'_>, account: &str, before: i64) -> StoreResult<Vec<String>> {
    strings(&t.rows(
        "DELETE FROM tombstones WHERE account = $1 AND expunged_at < $2 RETURNING blob",
        &[&account, &before],
    )?)
}

const QUEUE_COLS: &str = "id, sender, envid, ret, size, blob, created, next_attempt";

fn queue_from_row(row: &Row) -> StoreResult<QueuedMessage> {
    Ok(QueuedMessage {
        id: col_str(row, 0)?,
        sender: col_str(row, 1)?,
        envid: col_opt_str(row, 2)?,
        ret: col_opt_str(row, 3)?,
        size: col_u64(row, 4)?,
        blob: col_blob(row, 5)?,
        created: col_i64(row, 6)?,
        next_attempt: col_i64(row, 7)?,
        recipients: Vec::new(),
    })
}

fn queue_recipients(t: &mut Tx<'_>, id: &str) -> StoreResult<Vec<QueuedRecipient>> {
    let rows = t.rows(
        "SELECT address, notify, orcpt, route, state, attempts, last_error
         FROM queue_rcpt WHERE queue_id = $1 ORDER BY idx",
        &[&id],
    )?;
    rows.iter()
        .map(|r| {
            let state = col_str(r, 4)?;
            let state = QueueRcptState::parse(&state)
                .ok_or_else(|| corrupt(r, 4, format!("queue recipient state {state:?}")))?;
            Ok(QueuedRecipient {
                address: col_str(r, 0)?,
                notify: col_opt_str(r, 1)?,
                orcpt: col_opt_str(r, 2)?,
                route: col_opt_str(r, 3)?,
                state,
                attempts: col_u32(r, 5)?,
                last_error: col_opt_str(r, 6)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The trait

impl MetaStore for PgStore {
    fn get_doc(&self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        self.read(|t| doc_get(t, kind, key))
    }

    fn list_docs(&self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        self.read(|t| doc_list(t, kind, parent))
    }

    fn transact(&self, f: &mut dyn FnMut(&mut dyn DocTxn) -> StoreResult<()>) -> StoreResult<()> {
        self.write(|t| f(&mut PgDocTxn { tx: t }))
    }

    fn docs_generation(&self) -> StoreResult<u64> {
        self.read(|t| {
            let row = t.one(
                "SELECT value FROM counters WHERE name = 'docs_generation'",
                &[],
            )?;
            col_u64(&row, 0)
        })
    }

    fn create_folder(&self, account: &str, name: &str, kind: FolderKind) -> StoreResult<Folder> {
        self.write(|t| {
            let uid_validity = i64::from(next_uid_validity(t)?);
            let modseq = next_modseq(t, account)?;
            let modseq_i = to_i64(modseq, "modseq")?;
            let row = match t.tx.query_one(
                "INSERT INTO folders (account, name, kind, uid_validity, uid_next, highest_modseq)
                 VALUES ($1, $2, $3, $4, 1, $5) RETURNING id",
                &[&account, &name, &kind.as_str(), &uid_validity, &modseq_i],
            ) {
                Ok(row) => row,
                Err(e) => {
                    t.record(&e);
                    return Err(if is_unique_violation(&e) {
                        folder_conflict(account, name)
                    } else {
                        map_pg(&e)
                    });
                }
            };
            let id = col_i64(&row, 0)?;
            log_change(t, account, modseq, id, 0, ChangeKind::FolderCreated)?;
            folder_by_id(t, id)
        })
    }

    fn list_folders(&self, account: &str) -> StoreResult<Vec<Folder>> {
        self.read(|t| {
            t.rows(
                &format!("SELECT {FOLDER_COLS} FROM folders WHERE account = $1 ORDER BY name"),
                &[&account],
            )?
            .iter()
            .map(folder_from_row)
            .collect()
        })
    }

    fn get_folder(&self, account: &str, name: &str) -> StoreResult<Option<Folder>> {
        self.read(|t| {
            t.opt(
                &format!("SELECT {FOLDER_COLS} FROM folders WHERE account = $1 AND name = $2"),
                &[&account, &name],
            )?
            .as_ref()
            .map(folder_from_row)
            .transpose()
        })
    }

    fn rename_folder(&self, folder: i64, new_name: &str) -> StoreResult<()> {
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            if f.name == new_name {
                return Ok(());
            }
            let modseq = next_modseq(t, &f.account)?;
            t.exec_unique(
                "UPDATE folders SET name = $2, highest_modseq = $3 WHERE id = $1",
                &[&folder, &new_name, &to_i64(modseq, "modseq")?],
                || folder_conflict(&f.account, new_name),
            )?;
            log_change(t, &f.account, modseq, folder, 0, ChangeKind::FolderRenamed)
        })
    }

    fn delete_folder(&self, folder: i64) -> StoreResult<Vec<BlobId>> {
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            let bytes = folder_bytes(t, folder)?;
            let blobs = folder_blobs(t, folder)?;
            t.exec("DELETE FROM messages WHERE folder = $1", &[&folder])?;
            t.exec("DELETE FROM folders WHERE id = $1", &[&folder])?;
            add_usage(t, &f.account, -bytes, -i64::from(f.messages))?;
            let modseq = next_modseq(t, &f.account)?;
            log_change(t, &f.account, modseq, folder, 0, ChangeKind::FolderDeleted)?;
            unreferenced(t, blobs)
        })
    }

    fn move_account_folders(&self, from: &str, to: &str, prefix: &str) -> StoreResult<()> {
        let prefix = prefix.trim_end_matches('/');
        self.write(|t| {
            let folders = t
                .rows(
                    &format!("SELECT {FOLDER_COLS} FROM folders WHERE account = $1 ORDER BY name"),
                    &[&from],
                )?
                .iter()
                .map(folder_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            for f in folders {
                let new_name = if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}/{}", f.name)
                };
                let bytes = folder_bytes(t, f.id)?;
                // The old owner sees the folder go...
                let gone = next_modseq(t, from)?;
                log_change(t, from, gone, f.id, 0, ChangeKind::FolderDeleted)?;
                add_usage(t, from, -bytes, -i64::from(f.messages))?;
                // ...and the new owner sees it and every message arrive, each with a modseq
                // of its own account (DESIGN §2), so its modseqs stay consistent.
                let created = next_modseq(t, to)?;
                t.exec_unique(
                    "UPDATE folders SET account = $2, name = $3, highest_modseq = $4 WHERE id = $1",
                    &[&f.id, &to, &new_name, &to_i64(created, "modseq")?],
                    || folder_conflict(to, &new_name),
                )?;
                log_change(t, to, created, f.id, 0, ChangeKind::FolderCreated)?;
                let uids = t
                    .rows(
                        "SELECT uid FROM messages WHERE folder = $1 ORDER BY uid",
                        &[&f.id],
                    )?
                    .iter()
                    .map(|r| col_u32(r, 0))
                    .collect::<StoreResult<Vec<_>>>()?;
                let mut last = created;
                for uid in uids {
                    last = next_modseq(t, to)?;
                    t.exec(
                        "UPDATE messages SET modseq = $3 WHERE folder = $1 AND uid = $2",
                        &[&f.id, &i64::from(uid), &to_i64(last, "modseq")?],
                    )?;
                    log_change(t, to, last, f.id, uid, ChangeKind::MessageAdded)?;
                }
                t.exec(
                    "UPDATE folders SET highest_modseq = $2 WHERE id = $1",
                    &[&f.id, &to_i64(last, "modseq")?],
                )?;
                add_usage(t, to, bytes, i64::from(f.messages))?;
            }
            Ok(())
        })
    }

    fn delete_account_data(&self, account: &str) -> StoreResult<Vec<BlobId>> {
        self.write(|t| {
            let blobs = strings(&t.rows(
                "SELECT DISTINCT m.blob FROM messages m JOIN folders f ON m.folder = f.id
                 WHERE f.account = $1",
                &[&account],
            )?)?;
            t.exec(
                "DELETE FROM messages WHERE folder IN (SELECT id FROM folders WHERE account = $1)",
                &[&account],
            )?;
            t.exec("DELETE FROM folders WHERE account = $1", &[&account])?;
            t.exec("DELETE FROM changes WHERE account = $1", &[&account])?;
            t.exec("DELETE FROM account_state WHERE account = $1", &[&account])?;
            let mut blobs = blobs;
            blobs.extend(delete_tombstones(t, account, i64::MAX)?);
            unreferenced(t, blobs)
        })
    }

    fn append_messages(
        &self,
        folder: i64,
        messages: &[NewMessage],
    ) -> StoreResult<Vec<(u32, u64)>> {
        let added_at = unix_now();
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            insert_messages(t, &f, messages, added_at)
        })
    }

    fn list_messages(&self, folder: i64) -> StoreResult<Vec<MessageMeta>> {
        self.read(|t| {
            folder_by_id(t, folder)?;
            t.rows(
                "SELECT folder, uid, blob, size, flags, internal_date, modseq
                 FROM messages WHERE folder = $1 ORDER BY uid",
                &[&folder],
            )?
            .iter()
            .map(message_from_row)
            .collect()
        })
    }

    fn list_messages_changed_since(
        &self,
        folder: i64,
        modseq: u64,
    ) -> StoreResult<Vec<MessageMeta>> {
        let modseq = to_i64(modseq, "modseq")?;
        self.read(|t| {
            folder_by_id(t, folder)?;
            // Answered from the `messages_by_modseq` index (migration 3).
            let mut rows = t
                .rows(
                    "SELECT folder, uid, blob, size, flags, internal_date, modseq
                     FROM messages WHERE folder = $1 AND modseq > $2",
                    &[&folder, &modseq],
                )?
                .iter()
                .map(message_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            rows.sort_unstable_by_key(|m| m.uid);
            Ok(rows)
        })
    }

    fn set_flags(&self, folder: i64, uid: u32, flags: &[String]) -> StoreResult<u64> {
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            set_flags_row(t, &f, uid, flags)?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in folder {folder}")))
        })
    }

    fn set_flags_many(
        &self,
        folder: i64,
        updates: &[(u32, Vec<String>)],
    ) -> StoreResult<Vec<Option<u64>>> {
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            let mut out = Vec::with_capacity(updates.len());
            for (uid, flags) in updates {
                out.push(set_flags_row(t, &f, *uid, flags)?);
            }
            Ok(out)
        })
    }

    fn expunge(&self, folder: i64, uids: &[u32]) -> StoreResult<Vec<BlobId>> {
        self.write(|t| expunge_rows(t, folder, uids, None))
    }

    fn expunge_retaining(
        &self,
        folder: i64,
        uids: &[u32],
        expunged_at: i64,
    ) -> StoreResult<Vec<BlobId>> {
        self.write(|t| expunge_rows(t, folder, uids, Some(expunged_at)))
    }

    fn tombstones(&self, account: &str, since: i64) -> StoreResult<Vec<Tombstone>> {
        self.read(|t| select_tombstones(t, account, since))
    }

    fn restore_tombstones(
        &self,
        account: &str,
        since: i64,
        folder: i64,
    ) -> StoreResult<Vec<(u32, u64)>> {
        let added_at = unix_now();
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            if f.account != account {
                return Err(StoreError::Aborted(format!(
                    "folder {folder} does not belong to {account}"
                )));
            }
            // Locks the rows: a second node restoring at the same time waits, then finds
            // them gone (or fails serialisation and retries), so each is restored once.
            let stones = select_tombstones_for_update(t, account, since)?;
            let new: Vec<NewMessage> = stones.iter().map(crate::restored_message).collect();
            let out = insert_messages(t, &f, &new, added_at)?;
            for stone in &stones {
                t.exec("DELETE FROM tombstones WHERE id = $1", &[&stone.id])?;
            }
            Ok(out)
        })
    }

    fn purge_tombstones(&self, account: &str, before: i64) -> StoreResult<Vec<BlobId>> {
        self.write(|t| {
            let blobs = delete_tombstones(t, account, before)?;
            unreferenced(t, blobs)
        })
    }

    fn tombstone_accounts(&self) -> StoreResult<Vec<String>> {
        self.read(|t| {
            strings(&t.rows(
                "SELECT DISTINCT account FROM tombstones ORDER BY account",
                &[],
            )?)
        })
    }

    fn messages_added_at(&self, folder: i64) -> StoreResult<Vec<i64>> {
        self.read(|t| {
            folder_by_id(t, folder)?;
            t.rows(
                "SELECT added_at FROM messages WHERE folder = $1 ORDER BY uid",
                &[&folder],
            )?
            .iter()
            .map(|r| col_i64(r, 0))
            .collect()
        })
    }

    fn messages_added_before(
        &self,
        folder: i64,
        before: i64,
        limit: usize,
    ) -> StoreResult<Vec<u32>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|t| {
            folder_by_id(t, folder)?;
            // Answered from the `messages_by_added_at` index (migration 4).
            t.rows(
                "SELECT uid FROM messages WHERE folder = $1 AND added_at < $2
                 ORDER BY added_at, uid LIMIT $3",
                &[&folder, &before, &limit],
            )?
            .iter()
            .map(|r| col_u32(r, 0))
            .collect()
        })
    }

    fn highest_modseq(&self, account: &str) -> StoreResult<u64> {
        self.read(|t| {
            match t.opt(
                "SELECT highest_modseq FROM account_state WHERE account = $1",
                &[&account],
            )? {
                Some(row) => col_u64(&row, 0),
                None => Ok(0),
            }
        })
    }

    fn changes_since(&self, account: &str, since: u64) -> StoreResult<Vec<Change>> {
        let since = to_i64(since, "modseq")?;
        self.read(|t| {
            t.rows(
                "SELECT modseq, folder, uid, kind FROM changes
                 WHERE account = $1 AND modseq > $2 ORDER BY modseq",
                &[&account, &since],
            )?
            .iter()
            .map(|r| {
                let kind = col_str(r, 3)?;
                let kind = parse_change_kind(&kind)
                    .ok_or_else(|| corrupt(r, 3, format!("change kind {kind:?}")))?;
                Ok(Change {
                    modseq: col_u64(r, 0)?,
                    folder: col_i64(r, 1)?,
                    uid: col_u32(r, 2)?,
                    kind,
                })
            })
            .collect()
        })
    }

    fn usage(&self, account: &str) -> StoreResult<Usage> {
        self.read(|t| {
            match t.opt(
                "SELECT bytes, messages FROM account_state WHERE account = $1",
                &[&account],
            )? {
                Some(row) => Ok(Usage {
                    bytes: col_u64(&row, 0)?,
                    messages: col_u64(&row, 1)?,
                }),
                None => Ok(Usage::default()),
            }
        })
    }

    fn blob_refcount(&self, blob: &BlobId) -> StoreResult<u64> {
        self.read(|t| {
            let row = t.one(
                "SELECT (SELECT count(*) FROM messages WHERE blob = $1)
                      + (SELECT count(*) FROM queue WHERE blob = $1)
                      + (SELECT count(*) FROM tombstones WHERE blob = $1)",
                &[&blob.0],
            )?;
            col_u64(&row, 0)
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
        self.write(|t| {
            t.exec_unique(
                "INSERT INTO queue (id, sender, envid, ret, size, blob, created, next_attempt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &message.id,
                    &message.sender,
                    &message.envid,
                    &message.ret,
                    &size,
                    &message.blob.0,
                    &message.created,
                    &message.next_attempt,
                ],
                || StoreError::Conflict {
                    kind: "queue".into(),
                    key: message.id.clone(),
                },
            )?;
            insert_queue_recipients(t, &message.id, &message.recipients)
        })
    }

    fn queued_messages(&self) -> StoreResult<Vec<QueuedMessage>> {
        self.read(|t| {
            let mut msgs = t
                .rows(
                    &format!("SELECT {QUEUE_COLS} FROM queue ORDER BY next_attempt, id"),
                    &[],
                )?
                .iter()
                .map(queue_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            for m in &mut msgs {
                m.recipients = queue_recipients(t, &m.id)?;
            }
            Ok(msgs)
        })
    }

    fn queued_message(&self, id: &str) -> StoreResult<Option<QueuedMessage>> {
        self.read(|t| {
            let Some(row) = t.opt(
                &format!("SELECT {QUEUE_COLS} FROM queue WHERE id = $1"),
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let mut m = queue_from_row(&row)?;
            m.recipients = queue_recipients(t, id)?;
            Ok(Some(m))
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
        self.write(|t| {
            let n = t.exec(
                "UPDATE queue SET next_attempt = $2 WHERE id = $1",
                &[&id, &next_attempt],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queued message {id}")));
            }
            let n = t.exec(
                "UPDATE queue_rcpt SET state = $3, last_error = $4, attempts = attempts + 1
                 WHERE queue_id = $1 AND idx = (
                     SELECT min(idx) FROM queue_rcpt WHERE queue_id = $1 AND address = $2)",
                &[&id, &recipient, &state.as_str(), &error],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "recipient {recipient} of queued message {id}"
                )));
            }
            Ok(())
        })
    }

    fn dequeue(&self, id: &str) -> StoreResult<Vec<BlobId>> {
        self.write(|t| {
            // ON DELETE CASCADE removes the recipients.
            match t.opt("DELETE FROM queue WHERE id = $1 RETURNING blob", &[&id])? {
                Some(row) => {
                    let blob = col_str(&row, 0)?;
                    unreferenced(t, vec![blob])
                }
                None => Ok(Vec::new()),
            }
        })
    }

    fn claim_queued(
        &self,
        now: i64,
        lease_secs: i64,
        limit: usize,
    ) -> StoreResult<Vec<QueuedMessage>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = now.saturating_add(lease_secs.max(1));
        // DESIGN §4: leases with FOR UPDATE SKIP LOCKED, in READ COMMITTED (see the module
        // notes): the inner SELECT locks up to `limit` due, unleased rows, skipping rows
        // another claimer holds; a row leased by a claimer that committed meanwhile is
        // re-checked on its new version and dropped. The UPDATE sets the lease in the same
        // statement.
        self.write_at(IsolationLevel::ReadCommitted, |t| {
            let mut msgs = t
                .rows(
                    "UPDATE queue q SET lease_until = $3
                     FROM (SELECT id FROM queue
                           WHERE next_attempt <= $1 AND lease_until <= $1
                           ORDER BY next_attempt, id
                           LIMIT $2
                           FOR UPDATE SKIP LOCKED) due
                     WHERE q.id = due.id
                     RETURNING q.id, q.sender, q.envid, q.ret, q.size, q.blob, q.created,
                               q.next_attempt",
                    &[&now, &limit, &until],
                )?
                .iter()
                .map(queue_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            // RETURNING has no order; "C" collation of `id` is byte order, as here.
            msgs.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
            for m in &mut msgs {
                m.recipients = queue_recipients(t, &m.id)?;
            }
            Ok(msgs)
        })
    }

    fn release_queued(&self, id: &str) -> StoreResult<bool> {
        self.write(|t| {
            let n = t.exec("UPDATE queue SET lease_until = 0 WHERE id = $1", &[&id])?;
            Ok(n > 0)
        })
    }

    fn set_queue_next_attempt(&self, id: &str, next_attempt: i64) -> StoreResult<bool> {
        self.write(|t| {
            let n = t.exec(
                "UPDATE queue SET next_attempt = $2 WHERE id = $1",
                &[&id, &next_attempt],
            )?;
            Ok(n > 0)
        })
    }

    /// DESIGN §4: a dedicated LISTEN connection (see [`PgChangeListener`]).
    fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        Some(Box::new(PgChangeListener::new(
            self.config.clone(),
            self.channel.clone(),
        )))
    }

    fn mark_queue_warned(&self, id: &str) -> StoreResult<bool> {
        // Exactly one caller sets the mark: a concurrent second UPDATE waits for the row
        // lock and then finds `warned` already true (or retries on 40001 and finds it so).
        self.write(|t| {
            let n = t.exec(
                "UPDATE queue SET warned = TRUE WHERE id = $1 AND NOT warned",
                &[&id],
            )?;
            Ok(n > 0)
        })
    }

    // Whole-store methods: `postgres/bulk.rs`.

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
        self.pg_reindex_folder(folder, derived)
    }
    fn reindex_account(&self, account: &str) -> StoreResult<crate::AccountReindex> {
        self.pg_reindex_account(account)
    }
}

/// Runs blocking client work. The synchronous `postgres` client drives its own runtime,
/// which tokio forbids on a thread that is driving async tasks: under a multi-thread
/// runtime the work runs in `block_in_place` (a no-op wrapper on blocking-pool threads);
/// elsewhere directly. Keel runs its servers and the CLI on multi-thread runtimes.
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The per-recipient rows of a queued message (enqueue and `keel migrate` import).
fn insert_queue_recipients(
    t: &mut Tx<'_>,
    id: &str,
    recipients: &[QueuedRecipient],
) -> StoreResult<()> {
    for (idx, r) in recipients.iter().enumerate() {
        t.exec(
            "INSERT INTO queue_rcpt
                 (queue_id, idx, address, notify, orcpt, route, state, attempts, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &to_i64(idx as u64, "recipient index")?,
                &r.address,
                &r.notify,
                &r.orcpt,
                &r.route,
                &r.state.as_str(),
                &i64::from(r.attempts),
                &r.last_error,
            ],
        )?;
    }
    Ok(())
}
