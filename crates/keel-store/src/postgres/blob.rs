//! The PostgreSQL [`BlobStore`] (DESIGN §4: "BlobStore: files under the data directory
//! (default) or PostgreSQL"; issue 8): message bytes live in the `blobs` table of the same
//! database as the metadata, so every node of a cluster reads the same bodies.
//!
//! Implementation notes:
//! - **Addressing**: the same BLAKE3 ids as [`crate::file::FileBlobStore`] ([`BlobId::of`]),
//!   so a copied installation keeps every message's blob id.
//! - **Storage**: one row per blob, the bytes in a `BYTEA` column, sent and received in the
//!   binary protocol format (no hex escaping). PostgreSQL refuses a field above 1 GB and the
//!   whole value is held in memory on both sides, so blobs are limited to
//!   [`MAX_BLOB_SIZE`] (512 MiB); mail is far below that (the SMTP default maximum message
//!   size is 25 MiB).
//! - **Durability**: `put` returns after its transaction committed. If the server runs
//!   with `synchronous_commit = off` (a commit is acknowledged before its WAL reaches the
//!   disk), the put turns it back on for its own transaction, so acknowledged mail never
//!   rests on a non-durable commit (DESIGN §4 crash safety: blob durable before metadata).
//! - **Idempotent put**: `INSERT … ON CONFLICT (id) DO UPDATE SET stored_at = …`: bytes
//!   already stored are never rewritten (same id, same bytes), only the put time is moved
//!   forward. A plain `DO NOTHING` would leave an old, unreferenced copy looking "old", and
//!   a node starting meanwhile could collect it as an orphan between another node's put and
//!   its metadata commit.
//! - **Orphans across nodes**: [`BlobStore::orphan_candidates`] lists only blobs put at
//!   least [`ORPHAN_GRACE`] ago (measured on the database's clock, so node clocks do not
//!   matter). `keel serve` collects orphans at start while other nodes keep ingesting; a
//!   blob put by another node whose message row is not yet committed is therefore never
//!   taken for an orphan.
//! - **Connections**: the [`PgStore`]'s pool, so blob and metadata traffic share one set of
//!   connections per node.

use std::sync::Arc;
use std::time::Duration;

use postgres::IsolationLevel;

use super::{PgStore, col_blob, col_bool};
use crate::{BlobId, BlobStore, StoreError, StoreResult};

/// The largest blob [`PgBlobStore::put`] accepts.
pub const MAX_BLOB_SIZE: usize = 512 * 1024 * 1024;

/// How long after its (last) put a blob is left alone by orphan collection.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// Content-addressed blobs in the `blobs` table (see the module documentation).
#[derive(Debug, Clone)]
pub struct PgBlobStore {
    store: Arc<PgStore>,
    orphan_grace: Duration,
}

impl PgBlobStore {
    /// A blob store on the database (and connection pool) of `store`, whose migrations
    /// created the `blobs` table.
    pub fn new(store: Arc<PgStore>) -> Self {
        Self {
            store,
            orphan_grace: ORPHAN_GRACE,
        }
    }

    /// The same store with another orphan grace period (tests use zero so a fresh orphan
    /// is collectable at once).
    #[must_use]
    pub fn with_orphan_grace(mut self, grace: Duration) -> Self {
        self.orphan_grace = grace;
        self
    }

    /// Total number of blobs and bytes stored.
    pub fn totals(&self) -> StoreResult<(u64, u64)> {
        self.store.read(|t| {
            let row = t.one(
                "SELECT count(*)::BIGINT, coalesce(sum(size), 0)::BIGINT FROM blobs",
                &[],
            )?;
            Ok((super::col_u64(&row, 0)?, super::col_u64(&row, 1)?))
        })
    }
}

fn checked(id: &BlobId) -> StoreResult<&str> {
    BlobId::parse(&id.0)
        .map(|_| id.0.as_str())
        .ok_or_else(|| StoreError::NotFound(format!("blob {:?} (invalid id)", id.0)))
}

impl BlobStore for PgBlobStore {
    fn put(&self, bytes: &[u8]) -> StoreResult<BlobId> {
        if bytes.len() > MAX_BLOB_SIZE {
            return Err(StoreError::Backend(format!(
                "a blob of {} bytes is above the PostgreSQL blob store's limit of {MAX_BLOB_SIZE}",
                bytes.len()
            )));
        }
        let id = BlobId::of(bytes);
        let size = i64::try_from(bytes.len())
            .map_err(|_| StoreError::Backend("blob size out of range".into()))?;
        // READ COMMITTED: two nodes putting the same bytes at once wait for each other on
        // the primary key instead of failing with a serialization error and resending.
        self.store.write_at(IsolationLevel::ReadCommitted, |t| {
            t.rows(
                "SELECT set_config('synchronous_commit', 'on', true)
                 WHERE current_setting('synchronous_commit') = 'off'",
                &[],
            )?;
            t.exec(
                "INSERT INTO blobs (id, size, stored_at, bytes)
                 VALUES ($1, $2, extract(epoch FROM now())::BIGINT, $3)
                 ON CONFLICT (id) DO UPDATE SET stored_at = EXCLUDED.stored_at
                     WHERE blobs.stored_at < EXCLUDED.stored_at",
                &[&id.0, &size, &bytes],
            )?;
            Ok(())
        })?;
        Ok(id)
    }

    fn get(&self, id: &BlobId) -> StoreResult<Vec<u8>> {
        let key = checked(id)?;
        self.store.read(|t| {
            let row = t
                .opt("SELECT bytes FROM blobs WHERE id = $1", &[&key])?
                .ok_or_else(|| StoreError::NotFound(format!("blob {id}")))?;
            row.try_get::<_, Vec<u8>>(0)
                .map_err(|e| StoreError::Corrupt(format!("blob {id}: {e}")))
        })
    }

    fn exists(&self, id: &BlobId) -> StoreResult<bool> {
        let Ok(key) = checked(id) else {
            return Ok(false);
        };
        self.store.read(|t| {
            let row = t.one("SELECT EXISTS (SELECT 1 FROM blobs WHERE id = $1)", &[&key])?;
            col_bool(&row, 0)
        })
    }

    fn delete(&self, id: &BlobId) -> StoreResult<()> {
        let Ok(key) = checked(id) else {
            return Ok(());
        };
        self.store.write_at(IsolationLevel::ReadCommitted, |t| {
            t.exec("DELETE FROM blobs WHERE id = $1", &[&key]).map(drop)
        })
    }

    fn list(&self) -> StoreResult<Vec<BlobId>> {
        self.store.read(|t| {
            t.rows("SELECT id FROM blobs ORDER BY id", &[])?
                .iter()
                .map(|r| col_blob(r, 0))
                .collect()
        })
    }

    fn orphan_candidates(&self) -> StoreResult<Vec<BlobId>> {
        let grace = i64::try_from(self.orphan_grace.as_secs()).unwrap_or(i64::MAX);
        self.store.read(|t| {
            t.rows(
                "SELECT id FROM blobs
                 WHERE stored_at <= extract(epoch FROM now())::BIGINT - $1 ORDER BY id",
                &[&grace],
            )?
            .iter()
            .map(|r| col_blob(r, 0))
            .collect()
        })
    }
}
