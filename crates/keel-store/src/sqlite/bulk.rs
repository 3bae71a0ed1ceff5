//! Whole-store methods of the SQLite backend: the integrity check's account list and
//! recount, and the export/import used by `keel migrate` (issue 8: copy an embedded store
//! into PostgreSQL). Called from the `MetaStore` impl in `sqlite.rs`.

use rusqlite::{Connection, params};

use super::{
    DOC_COLS, QUEUE_COLS, SqlExt, SqliteStore, bump_generation, change_kind_str, doc_from_row,
    encode_flags, has_seen, is_unique_violation, map_sql, normalize_flags, queue_from_row,
    queue_recipients, to_i64,
};
use crate::{AccountDump, BlobId, Doc, QueueDump, StoreCounters, StoreError, StoreResult};

/// Recounts folder counters and account usage from the message rows (DESIGN §2 keeps them
/// incrementally; this is the repair when they drifted).
const RECOUNT: &str = "
UPDATE folders SET
    messages = (SELECT count(*) FROM messages m WHERE m.folder = folders.id),
    unseen   = (SELECT count(*) FROM messages m WHERE m.folder = folders.id AND m.seen = 0),
    bytes    = (SELECT coalesce(sum(m.size), 0) FROM messages m WHERE m.folder = folders.id);
INSERT INTO account_state (account)
    SELECT DISTINCT account FROM folders
    WHERE account NOT IN (SELECT account FROM account_state);
UPDATE account_state SET
    bytes    = (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN folders f ON f.id = m.folder
                WHERE f.account = account_state.account),
    messages = (SELECT count(*) FROM messages m JOIN folders f ON f.id = m.folder
                WHERE f.account = account_state.account);
";

fn conflict(kind: &str, key: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let (kind, key) = (kind.to_owned(), key.into());
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict { kind, key }
        } else {
            map_sql(e)
        }
    }
}

fn checked_blob(blob: &BlobId) -> StoreResult<()> {
    BlobId::parse(&blob.0)
        .map(drop)
        .ok_or_else(|| StoreError::Aborted(format!("invalid blob id {:?}", blob.0)))
}

impl SqliteStore {
    pub(super) fn bulk_accounts(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut st = c
                .prepare(
                    "SELECT account FROM folders UNION SELECT account FROM account_state
                     UNION SELECT account FROM changes ORDER BY 1",
                )
                .db()?;
            st.query_map([], |r| r.get(0))
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    pub(super) fn bulk_all_docs(&self) -> StoreResult<Vec<Doc>> {
        self.read(|c| {
            let mut st = c
                .prepare(&format!("SELECT {DOC_COLS} FROM docs ORDER BY kind, key"))
                .db()?;
            st.query_map([], doc_from_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()
        })
    }

    pub(super) fn bulk_export_queue(&self) -> StoreResult<Vec<QueueDump>> {
        self.read(|c| {
            let rows = {
                let mut st = c
                    .prepare(&format!(
                        "SELECT {QUEUE_COLS}, warned FROM queue ORDER BY next_attempt, id"
                    ))
                    .db()?;
                st.query_map([], |r| Ok((queue_from_row(r)?, r.get::<_, bool>(8)?)))
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?
            };
            rows.into_iter()
                .map(|(mut message, warned)| {
                    message.recipients = queue_recipients(c, &message.id)?;
                    Ok(QueueDump { message, warned })
                })
                .collect()
        })
    }

    pub(super) fn bulk_counters(&self) -> StoreResult<StoreCounters> {
        self.read(|c| {
            let uid_validity: u32 = c
                .query_row(
                    "SELECT value FROM counters WHERE name = 'uid_validity'",
                    [],
                    |r| r.get(0),
                )
                .db()?;
            // AUTOINCREMENT keeps the highest id ever used in sqlite_sequence, deleted
            // folders included; change-log rows may name folders that no longer exist.
            let last_folder_id: i64 = c
                .query_row(
                    "SELECT max(
                         coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'folders'), 0),
                         coalesce((SELECT max(id) FROM folders), 0),
                         coalesce((SELECT max(folder) FROM changes), 0))",
                    [],
                    |r| r.get(0),
                )
                .db()?;
            Ok(StoreCounters {
                uid_validity,
                last_folder_id,
            })
        })
    }

    pub(super) fn bulk_is_empty(&self) -> StoreResult<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT NOT (EXISTS (SELECT 1 FROM docs) OR EXISTS (SELECT 1 FROM folders)
                     OR EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM changes)
                     OR EXISTS (SELECT 1 FROM account_state) OR EXISTS (SELECT 1 FROM queue)
                     OR EXISTS (SELECT 1 FROM tombstones))",
                [],
                |r| r.get(0),
            )
            .db()
        })
    }

    pub(super) fn bulk_erase_all(&self) -> StoreResult<()> {
        self.write(|c| {
            // Counters stay: ids and UIDVALIDITY values never go backwards.
            c.execute_batch(
                "DELETE FROM queue_rcpt; DELETE FROM queue; DELETE FROM messages;
                 DELETE FROM folders; DELETE FROM changes; DELETE FROM account_state;
                 DELETE FROM tombstones; DELETE FROM docs;",
            )
            .db()?;
            bump_generation(c)
        })
    }

    pub(super) fn bulk_import_docs(&self, docs: &[Doc]) -> StoreResult<()> {
        self.write(|c| {
            let mut st = c
                .prepare_cached(
                    "INSERT INTO docs (kind, key, parent, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .db()?;
            for d in docs {
                let body = serde_json::to_string(&d.body).map_err(|e| {
                    StoreError::Backend(format!("encoding {} {}: {e}", d.kind, d.key))
                })?;
                st.execute(params![d.kind, d.key, d.parent, d.version, body])
                    .map_err(conflict(&d.kind, d.key.clone()))?;
            }
            bump_generation(c)
        })
    }

    pub(super) fn bulk_import_account(&self, dump: &AccountDump) -> StoreResult<()> {
        for f in &dump.folders {
            for m in &f.messages {
                checked_blob(&m.blob)?;
            }
        }
        for t in &dump.tombstones {
            checked_blob(&t.blob)?;
        }
        self.write(|c| import_account(c, dump))
    }

    pub(super) fn bulk_import_queued(&self, item: &QueueDump) -> StoreResult<()> {
        let m = &item.message;
        checked_blob(&m.blob)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO queue
                     (id, sender, envid, ret, size, blob, created, next_attempt, lease_until,
                      warned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                params![
                    m.id,
                    m.sender,
                    m.envid,
                    m.ret,
                    to_i64(m.size, "message size")?,
                    m.blob.0,
                    m.created,
                    m.next_attempt,
                    item.warned
                ],
            )
            .map_err(conflict("queue", m.id.clone()))?;
            let mut st = c
                .prepare_cached(
                    "INSERT INTO queue_rcpt
                         (queue_id, idx, address, notify, orcpt, route, state, attempts, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .db()?;
            for (idx, r) in m.recipients.iter().enumerate() {
                st.execute(params![
                    m.id,
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

    pub(super) fn bulk_import_counters(&self, counters: &StoreCounters) -> StoreResult<()> {
        self.write(|c| {
            c.execute(
                "UPDATE counters SET value = max(value, ?1) WHERE name = 'uid_validity'",
                [counters.uid_validity],
            )
            .db()?;
            // The next AUTOINCREMENT id is above sqlite_sequence's value.
            let n = c
                .execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'folders'",
                    [counters.last_folder_id],
                )
                .db()?;
            if n == 0 && counters.last_folder_id > 0 {
                c.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('folders', ?1)",
                    [counters.last_folder_id],
                )
                .db()?;
            }
            Ok(())
        })
    }

    pub(super) fn bulk_recount(&self) -> StoreResult<()> {
        self.write(|c| c.execute_batch(RECOUNT).db())
    }
}

fn import_account(c: &Connection, dump: &AccountDump) -> StoreResult<()> {
    let account = &dump.account;
    c.execute(
        "INSERT INTO account_state (account, highest_modseq, bytes, messages)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            account,
            to_i64(dump.highest_modseq, "modseq")?,
            to_i64(dump.usage.bytes, "usage")?,
            to_i64(dump.usage.messages, "usage")?
        ],
    )
    .map_err(conflict("account", account.clone()))?;
    let mut folder_st = c
        .prepare_cached(
            "INSERT INTO folders (id, account, name, kind, uid_validity, uid_next, messages,
                                  unseen, bytes, highest_modseq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .db()?;
    let mut msg_st = c
        .prepare_cached(
            "INSERT INTO messages (folder, uid, blob, size, flags, seen, internal_date, modseq,
                               added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .db()?;
    for fd in &dump.folders {
        let f = &fd.folder;
        let bytes = fd.messages.iter().try_fold(0i64, |acc, m| {
            Ok(acc.saturating_add(to_i64(m.size, "size")?))
        })?;
        folder_st
            .execute(params![
                f.id,
                account,
                f.name,
                f.kind.as_str(),
                f.uid_validity,
                f.uid_next,
                f.messages,
                f.unseen,
                bytes,
                to_i64(f.highest_modseq, "modseq")?
            ])
            .map_err(conflict(
                "folder",
                format!("{account}:{} (id {})", f.name, f.id),
            ))?;
        // When each entered the folder; INTERNALDATE when the dump does not say.
        let known = fd.added_at.len() == fd.messages.len();
        for (i, m) in fd.messages.iter().enumerate() {
            let flags = normalize_flags(&m.flags);
            let added_at = if known {
                fd.added_at[i]
            } else {
                m.internal_date
            };
            msg_st
                .execute(params![
                    f.id,
                    m.uid,
                    m.blob.0,
                    to_i64(m.size, "size")?,
                    encode_flags(&flags)?,
                    has_seen(&flags),
                    m.internal_date,
                    to_i64(m.modseq, "modseq")?,
                    added_at
                ])
                .map_err(conflict("message", format!("{} uid {}", f.id, m.uid)))?;
        }
    }
    let mut change_st = c
        .prepare_cached(
            "INSERT INTO changes (account, modseq, folder, uid, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .db()?;
    for ch in &dump.changes {
        change_st
            .execute(params![
                account,
                to_i64(ch.modseq, "modseq")?,
                ch.folder,
                ch.uid,
                change_kind_str(&ch.kind)
            ])
            .map_err(conflict(
                "change",
                format!("{account} modseq {}", ch.modseq),
            ))?;
    }
    let mut stone_st = c
        .prepare_cached(
            "INSERT INTO tombstones
                 (account, folder_name, blob, size, flags, internal_date, expunged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .db()?;
    for t in &dump.tombstones {
        stone_st
            .execute(params![
                account,
                t.folder,
                t.blob.0,
                to_i64(t.size, "size")?,
                encode_flags(&normalize_flags(&t.flags))?,
                t.internal_date,
                t.expunged_at
            ])
            .db()?;
    }
    Ok(())
}
