//! Reindex of the PostgreSQL backend (`MetaStore::reindex_folder`, `reindex_account`).
//! Same semantics as `sqlite/reindex.rs`; each operation is one SERIALIZABLE transaction
//! (retried on serialization failures), so nodes writing at the same time are ordered
//! before or after it.

use super::{
    PgStore, Tx, col_bool, col_i64, col_str, col_u32, col_u64, decode_flags, encode_flags,
    folder_by_id, folder_bytes, has_seen, log_change, next_modseq, normalize_flags, to_i64,
};
use crate::{
    AccountReindex, ChangeKind, DerivedSize, FolderCounters, FolderReindex, SizeFix, StoreResult,
    Usage,
};

/// Raises the account's modseq counter to at least every modseq of its change log, its
/// folders and their messages. Returns (before, after). The upsert locks the account's
/// row, as every modseq assignment does.
fn repair_account_modseq(t: &mut Tx<'_>, account: &str) -> StoreResult<(u64, u64)> {
    let row = t.one(
        "INSERT INTO account_state (account) VALUES ($1)
         ON CONFLICT (account) DO UPDATE SET highest_modseq = account_state.highest_modseq
         RETURNING highest_modseq",
        &[&account],
    )?;
    let before = col_u64(&row, 0)?;
    let row = t.one(
        "SELECT GREATEST($2::BIGINT,
             coalesce((SELECT max(modseq) FROM changes WHERE account = $1), 0),
             coalesce((SELECT max(highest_modseq) FROM folders WHERE account = $1), 0),
             coalesce((SELECT max(m.modseq) FROM messages m JOIN folders f ON f.id = m.folder
                       WHERE f.account = $1), 0))",
        &[&account, &to_i64(before, "modseq")?],
    )?;
    let after = col_u64(&row, 0)?;
    if after != before {
        t.exec(
            "UPDATE account_state SET highest_modseq = $2 WHERE account = $1",
            &[&account, &to_i64(after, "modseq")?],
        )?;
    }
    Ok((before, after))
}

impl PgStore {
    pub(super) fn pg_reindex_folder(
        &self,
        folder: i64,
        derived: &[DerivedSize],
    ) -> StoreResult<FolderReindex> {
        self.write(|t| {
            let f = folder_by_id(t, folder)?;
            let mut out = FolderReindex {
                before: FolderCounters {
                    messages: f.messages,
                    unseen: f.unseen,
                    bytes: u64::try_from(folder_bytes(t, folder)?).unwrap_or(0),
                    uid_next: f.uid_next,
                    highest_modseq: f.highest_modseq,
                },
                ..FolderReindex::default()
            };
            repair_account_modseq(t, &f.account)?;

            // Sizes: the blob's length is the message's size (RFC 9051 RFC822.SIZE).
            for d in derived {
                let uid = i64::from(d.uid);
                let Some(row) = t.opt(
                    "SELECT blob, size FROM messages WHERE folder = $1 AND uid = $2",
                    &[&folder, &uid],
                )?
                else {
                    continue; // expunged since the blob was read
                };
                let stored = col_u64(&row, 1)?;
                if col_str(&row, 0)? != d.blob.0 || stored == d.size {
                    continue;
                }
                let modseq = next_modseq(t, &f.account)?;
                t.exec(
                    "UPDATE messages SET size = $3, modseq = $4 WHERE folder = $1 AND uid = $2",
                    &[
                        &folder,
                        &uid,
                        &to_i64(d.size, "size")?,
                        &to_i64(modseq, "modseq")?,
                    ],
                )?;
                log_change(
                    t,
                    &f.account,
                    modseq,
                    folder,
                    d.uid,
                    ChangeKind::FlagsChanged,
                )?;
                out.sizes_fixed.push(SizeFix {
                    uid: d.uid,
                    stored,
                    actual: d.size,
                });
            }

            // Flags keep their set; only the stored form and the cached `\Seen` bit are
            // rebuilt (what clients see does not change, so no new modseq).
            let rows = t.rows(
                "SELECT uid, flags, seen FROM messages WHERE folder = $1",
                &[&folder],
            )?;
            for row in &rows {
                let uid = col_u32(row, 0)?;
                let flags = decode_flags(row, 1)?;
                let seen = col_bool(row, 2)?;
                let normal = normalize_flags(&flags);
                if normal == flags && seen == has_seen(&normal) {
                    continue;
                }
                t.exec(
                    "UPDATE messages SET flags = $3, seen = $4 WHERE folder = $1 AND uid = $2",
                    &[
                        &folder,
                        &i64::from(uid),
                        &encode_flags(&normal)?,
                        &has_seen(&normal),
                    ],
                )?;
                out.flags_normalized.push(uid);
            }
            out.flags_normalized.sort_unstable();

            let row = t.one(
                "SELECT count(*), count(*) FILTER (WHERE NOT seen),
                        coalesce(sum(size), 0)::BIGINT, coalesce(max(uid), 0),
                        coalesce(max(modseq), 0)
                 FROM messages WHERE folder = $1",
                &[&folder],
            )?;
            let (messages, unseen) = (col_u32(&row, 0)?, col_u32(&row, 1)?);
            let (bytes, max_uid, max_modseq) =
                (col_u64(&row, 2)?, col_u32(&row, 3)?, col_u64(&row, 4)?);
            let row = t.one(
                "SELECT coalesce(max(modseq), 0) FROM changes WHERE account = $1 AND folder = $2",
                &[&f.account, &folder],
            )?;
            let logged = col_u64(&row, 0)?;
            out.after = FolderCounters {
                messages,
                unseen,
                bytes,
                uid_next: f.uid_next.max(max_uid.saturating_add(1)),
                highest_modseq: f.highest_modseq.max(max_modseq).max(logged),
            };
            t.exec(
                "UPDATE folders SET messages = $2, unseen = $3, bytes = $4, uid_next = $5,
                     highest_modseq = $6
                 WHERE id = $1",
                &[
                    &folder,
                    &i64::from(out.after.messages),
                    &i64::from(out.after.unseen),
                    &to_i64(out.after.bytes, "bytes")?,
                    &i64::from(out.after.uid_next),
                    &to_i64(out.after.highest_modseq, "modseq")?,
                ],
            )?;
            Ok(out)
        })
    }

    pub(super) fn pg_reindex_account(&self, account: &str) -> StoreResult<AccountReindex> {
        self.write(|t| {
            let (highest_modseq_before, highest_modseq_after) = repair_account_modseq(t, account)?;
            let row = t.one(
                "SELECT bytes, messages FROM account_state WHERE account = $1",
                &[&account],
            )?;
            let usage_before = Usage {
                bytes: col_u64(&row, 0)?,
                messages: col_u64(&row, 1)?,
            };
            let row = t.one(
                "SELECT coalesce(sum(m.size), 0)::BIGINT, count(*)
                 FROM messages m JOIN folders f ON f.id = m.folder WHERE f.account = $1",
                &[&account],
            )?;
            let usage_after = Usage {
                bytes: col_u64(&row, 0)?,
                messages: col_u64(&row, 1)?,
            };
            if usage_after != usage_before {
                t.exec(
                    "UPDATE account_state SET bytes = $2, messages = $3 WHERE account = $1",
                    &[&account, &col_i64(&row, 0)?, &col_i64(&row, 1)?],
                )?;
            }
            Ok(AccountReindex {
                usage_before,
                usage_after,
                highest_modseq_before,
                highest_modseq_after,
            })
        })
    }
}
