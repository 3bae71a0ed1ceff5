//! Whole-store methods of the PostgreSQL backend: the integrity check's account list and
//! recount, and the export/import used by `keel migrate` (issue 8: copy an embedded store
//! into PostgreSQL). Same semantics as `sqlite/bulk.rs`; called from the `MetaStore` impl.

use postgres::Statement;

use super::{
    DOC_COLS, Params, PgStore, QUEUE_COLS, Tx, bump_generation, change_kind_str, col_bool, col_i64,
    col_opt_str, col_str, col_u32, doc_from_row, encode_flags, has_seen, insert_queue_recipients,
    is_unique_violation, map_pg, normalize_flags, queue_from_row, queue_recipients, to_i64,
};
use crate::{AccountDump, BlobId, Doc, QueueDump, StoreCounters, StoreError, StoreResult};

/// Recounts folder counters and account usage from the message rows.
const RECOUNT: &str = "
UPDATE folders SET
    messages = (SELECT count(*) FROM messages m WHERE m.folder = folders.id),
    unseen   = (SELECT count(*) FROM messages m WHERE m.folder = folders.id AND NOT m.seen),
    bytes    = (SELECT coalesce(sum(m.size), 0)::BIGINT FROM messages m
                WHERE m.folder = folders.id);
INSERT INTO account_state (account)
    SELECT DISTINCT account FROM folders
    ON CONFLICT (account) DO NOTHING;
UPDATE account_state SET
    bytes    = (SELECT coalesce(sum(m.size), 0)::BIGINT FROM messages m
                JOIN folders f ON f.id = m.folder WHERE f.account = account_state.account),
    messages = (SELECT count(*) FROM messages m JOIN folders f ON f.id = m.folder
                WHERE f.account = account_state.account);
";

/// Prepares a statement once per transaction (a batch runs it many times).
fn prepare(t: &mut Tx<'_>, sql: &str) -> StoreResult<Statement> {
    let r = t.tx.prepare(sql);
    t.check(r)
}

/// Runs a prepared statement; unique violations become `conflict()`.
fn run(
    t: &mut Tx<'_>,
    st: &Statement,
    params: Params<'_>,
    conflict: impl FnOnce() -> StoreError,
) -> StoreResult<u64> {
    match t.tx.execute(st, params) {
        Ok(n) => Ok(n),
        Err(e) => {
            t.record(&e);
            Err(if is_unique_violation(&e) {
                conflict()
            } else {
                map_pg(&e)
            })
        }
    }
}

fn conflict(kind: &str, key: String) -> impl FnOnce() -> StoreError {
    let kind = kind.to_owned();
    move || StoreError::Conflict { kind, key }
}

fn checked_blob(blob: &BlobId) -> StoreResult<()> {
    BlobId::parse(&blob.0)
        .map(drop)
        .ok_or_else(|| StoreError::Aborted(format!("invalid blob id {:?}", blob.0)))
}

/// The `folders.id` sequence: its last value when one was handed out, else 0.
fn folder_sequence(t: &mut Tx<'_>) -> StoreResult<(String, i64)> {
    let row = t.one("SELECT pg_get_serial_sequence('folders', 'id')", &[])?;
    let seq = col_opt_str(&row, 0)?
        .ok_or_else(|| StoreError::Corrupt("folders.id has no sequence".into()))?;
    // The name comes quoted from PostgreSQL itself.
    let row = t.one(
        &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}"),
        &[],
    )?;
    Ok((seq, col_i64(&row, 0)?))
}

impl PgStore {
    pub(super) fn bulk_accounts(&self) -> StoreResult<Vec<String>> {
        self.read(|t| {
            t.rows(
                "SELECT account FROM folders UNION SELECT account FROM account_state
                 UNION SELECT account FROM changes ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| col_str(r, 0))
            .collect()
        })
    }

    pub(super) fn bulk_all_docs(&self) -> StoreResult<Vec<Doc>> {
        self.read(|t| {
            t.rows(
                &format!("SELECT {DOC_COLS} FROM docs ORDER BY kind, key"),
                &[],
            )?
            .iter()
            .map(doc_from_row)
            .collect()
        })
    }

    pub(super) fn bulk_export_queue(&self) -> StoreResult<Vec<QueueDump>> {
        self.read(|t| {
            let rows = t.rows(
                &format!("SELECT {QUEUE_COLS}, warned FROM queue ORDER BY next_attempt, id"),
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut message = queue_from_row(r)?;
                message.recipients = queue_recipients(t, &message.id)?;
                out.push(QueueDump {
                    message,
                    warned: col_bool(r, 8)?,
                });
            }
            Ok(out)
        })
    }

    pub(super) fn bulk_counters(&self) -> StoreResult<StoreCounters> {
        self.read(|t| {
            let row = t.one(
                "SELECT value FROM counters WHERE name = 'uid_validity'",
                &[],
            )?;
            let uid_validity = col_u32(&row, 0)?;
            let (_, seq) = folder_sequence(t)?;
            let row = t.one(
                "SELECT greatest(coalesce((SELECT max(id) FROM folders), 0),
                                 coalesce((SELECT max(folder) FROM changes), 0))::BIGINT",
                &[],
            )?;
            Ok(StoreCounters {
                uid_validity,
                last_folder_id: seq.max(col_i64(&row, 0)?),
            })
        })
    }

    pub(super) fn bulk_is_empty(&self) -> StoreResult<bool> {
        self.read(|t| {
            let row = t.one(
                "SELECT NOT (EXISTS (SELECT 1 FROM docs) OR EXISTS (SELECT 1 FROM folders)
                     OR EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM changes)
                     OR EXISTS (SELECT 1 FROM account_state) OR EXISTS (SELECT 1 FROM queue)
                     OR EXISTS (SELECT 1 FROM tombstones))",
                &[],
            )?;
            col_bool(&row, 0)
        })
    }

    pub(super) fn bulk_erase_all(&self) -> StoreResult<()> {
        self.write(|t| {
            // Counters and the folder id sequence stay: ids and UIDVALIDITY values never go
            // backwards. The blobs table belongs to the blob store and is not touched.
            for table in [
                "queue_rcpt",
                "queue",
                "messages",
                "folders",
                "changes",
                "account_state",
                "tombstones",
                "docs",
            ] {
                t.exec(&format!("DELETE FROM {table}"), &[])?;
            }
            bump_generation(t)
        })
    }

    pub(super) fn bulk_import_docs(&self, docs: &[Doc]) -> StoreResult<()> {
        let bodies = docs
            .iter()
            .map(|d| {
                serde_json::to_string(&d.body)
                    .map_err(|e| StoreError::Backend(format!("encoding {} {}: {e}", d.kind, d.key)))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(|t| {
            let st = prepare(
                t,
                "INSERT INTO docs (kind, key, parent, version, body) VALUES ($1, $2, $3, $4, $5)",
            )?;
            for (d, body) in docs.iter().zip(&bodies) {
                let version = to_i64(d.version, "document version")?;
                run(
                    t,
                    &st,
                    &[&d.kind, &d.key, &d.parent, &version, body],
                    conflict(&d.kind, d.key.clone()),
                )?;
            }
            bump_generation(t)
        })
    }

    pub(super) fn bulk_import_account(&self, dump: &AccountDump) -> StoreResult<()> {
        for f in &dump.folders {
            for m in &f.messages {
                checked_blob(&m.blob)?;
            }
        }
        for stone in &dump.tombstones {
            checked_blob(&stone.blob)?;
        }
        self.write(|t| import_account(t, dump))
    }

    pub(super) fn bulk_import_queued(&self, item: &QueueDump) -> StoreResult<()> {
        let m = &item.message;
        checked_blob(&m.blob)?;
        let size = to_i64(m.size, "message size")?;
        self.write(|t| {
            t.exec_unique(
                "INSERT INTO queue (id, sender, envid, ret, size, blob, created, next_attempt,
                                    lease_until, warned)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
                &[
                    &m.id,
                    &m.sender,
                    &m.envid,
                    &m.ret,
                    &size,
                    &m.blob.0,
                    &m.created,
                    &m.next_attempt,
                    &item.warned,
                ],
                conflict("queue", m.id.clone()),
            )?;
            insert_queue_recipients(t, &m.id, &m.recipients)
        })
    }

    pub(super) fn bulk_import_counters(&self, counters: &StoreCounters) -> StoreResult<()> {
        self.write(|t| {
            t.exec(
                "UPDATE counters SET value = greatest(value, $1) WHERE name = 'uid_validity'",
                &[&i64::from(counters.uid_validity)],
            )?;
            let (seq, current) = folder_sequence(t)?;
            let row = t.one("SELECT coalesce(max(id), 0)::BIGINT FROM folders", &[])?;
            let target = counters.last_folder_id.max(col_i64(&row, 0)?);
            // Imported rows carry explicit ids, which BIGSERIAL does not see: move the
            // sequence past them so new folders never reuse an id.
            if target > current {
                t.one(
                    "SELECT setval($1::TEXT::regclass, $2, true)",
                    &[&seq, &target],
                )?;
            }
            Ok(())
        })
    }

    pub(super) fn bulk_recount(&self) -> StoreResult<()> {
        self.write(|t| {
            let r = t.tx.batch_execute(RECOUNT);
            t.check(r)
        })
    }
}

fn import_account(t: &mut Tx<'_>, dump: &AccountDump) -> StoreResult<()> {
    let account = &dump.account;
    t.exec_unique(
        "INSERT INTO account_state (account, highest_modseq, bytes, messages)
         VALUES ($1, $2, $3, $4)",
        &[
            account,
            &to_i64(dump.highest_modseq, "modseq")?,
            &to_i64(dump.usage.bytes, "usage")?,
            &to_i64(dump.usage.messages, "usage")?,
        ],
        conflict("account", account.clone()),
    )?;
    let folder_st = prepare(
        t,
        "INSERT INTO folders (id, account, name, kind, uid_validity, uid_next, messages, unseen,
                              bytes, highest_modseq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?;
    let msg_st = prepare(
        t,
        "INSERT INTO messages (folder, uid, blob, size, flags, seen, internal_date, modseq,
                               added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )?;
    for fd in &dump.folders {
        let f = &fd.folder;
        let mut bytes = 0i64;
        for m in &fd.messages {
            bytes = bytes.saturating_add(to_i64(m.size, "message size")?);
        }
        run(
            t,
            &folder_st,
            &[
                &f.id,
                account,
                &f.name,
                &f.kind.as_str(),
                &i64::from(f.uid_validity),
                &i64::from(f.uid_next),
                &i64::from(f.messages),
                &i64::from(f.unseen),
                &bytes,
                &to_i64(f.highest_modseq, "modseq")?,
            ],
            conflict("folder", format!("{account}:{} (id {})", f.name, f.id)),
        )?;
        // When each entered the folder; INTERNALDATE when the dump does not say.
        let known = fd.added_at.len() == fd.messages.len();
        for (i, m) in fd.messages.iter().enumerate() {
            let flags = normalize_flags(&m.flags);
            let added_at = if known {
                fd.added_at[i]
            } else {
                m.internal_date
            };
            run(
                t,
                &msg_st,
                &[
                    &f.id,
                    &i64::from(m.uid),
                    &m.blob.0,
                    &to_i64(m.size, "message size")?,
                    &encode_flags(&flags)?,
                    &has_seen(&flags),
                    &m.internal_date,
                    &to_i64(m.modseq, "modseq")?,
                    &added_at,
                ],
                conflict("message", format!("{} uid {}", f.id, m.uid)),
            )?;
        }
    }
    let change_st = prepare(
        t,
        "INSERT INTO changes (account, modseq, folder, uid, kind) VALUES ($1, $2, $3, $4, $5)",
    )?;
    for ch in &dump.changes {
        run(
            t,
            &change_st,
            &[
                account,
                &to_i64(ch.modseq, "modseq")?,
                &ch.folder,
                &i64::from(ch.uid),
                &change_kind_str(&ch.kind),
            ],
            conflict("change", format!("{account} modseq {}", ch.modseq)),
        )?;
    }
    let stone_st = prepare(
        t,
        "INSERT INTO tombstones
             (account, folder_name, blob, size, flags, internal_date, expunged_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    for stone in &dump.tombstones {
        run(
            t,
            &stone_st,
            &[
                account,
                &stone.folder,
                &stone.blob.0,
                &to_i64(stone.size, "message size")?,
                &encode_flags(&normalize_flags(&stone.flags))?,
                &stone.internal_date,
                &stone.expunged_at,
            ],
            conflict("tombstone", format!("{account} {}", stone.blob.0)),
        )?;
    }
    Ok(())
}
