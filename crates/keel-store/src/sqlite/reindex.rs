//! Reindex of the SQLite backend (`MetaStore::reindex_folder`, `reindex_account`): rebuilds
//! what is derived from the messages (sizes, the cached `\Seen` bit, folder counters,
//! `uid_next`, modseq high-water marks, quota usage) inside one `BEGIN IMMEDIATE`
//! transaction, so sessions writing at the same time are serialised before or after it.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqlExt, SqliteStore, decode_flags, encode_flags, folder_by_id, folder_bytes, has_seen,
    log_change, next_modseq, normalize_flags, to_i64,
};
use crate::{
    AccountReindex, ChangeKind, DerivedSize, FolderCounters, FolderReindex, SizeFix, StoreResult,
    Usage,
};

/// Raises the account's modseq counter to at least every modseq of its change log, its
/// folders and their messages (a counter below one of them would make the next change
/// collide with an existing change-log row). Returns (before, after).
fn repair_account_modseq(c: &Connection, account: &str) -> StoreResult<(u64, u64)> {
    c.execute(
        "INSERT INTO account_state (account) VALUES (?1) ON CONFLICT (account) DO NOTHING",
        [account],
    )
    .db()?;
    let before: u64 = c
        .query_row(
            "SELECT highest_modseq FROM account_state WHERE account = ?1",
            [account],
            |r| r.get(0),
        )
        .db()?;
    let after: u64 = c
        .query_row(
            "SELECT max(?2,
                 coalesce((SELECT max(modseq) FROM changes WHERE account = ?1), 0),
                 coalesce((SELECT max(highest_modseq) FROM folders WHERE account = ?1), 0),
                 coalesce((SELECT max(m.modseq) FROM messages m JOIN folders f ON f.id = m.folder
                           WHERE f.account = ?1), 0))",
            params![account, to_i64(before, "modseq")?],
            |r| r.get(0),
        )
        .db()?;
    if after != before {
        c.execute(
            "UPDATE account_state SET highest_modseq = ?2 WHERE account = ?1",
            params![account, to_i64(after, "modseq")?],
        )
        .db()?;
    }
    Ok((before, after))
}

impl SqliteStore {
    pub(super) fn sqlite_reindex_folder(
        &self,
        folder: i64,
        derived: &[DerivedSize],
    ) -> StoreResult<FolderReindex> {
        self.write(|c| {
            let f = folder_by_id(c, folder)?;
            let mut out = FolderReindex {
                before: FolderCounters {
                    messages: f.messages,
                    unseen: f.unseen,
                    bytes: u64::try_from(folder_bytes(c, folder)?).unwrap_or(0),
                    uid_next: f.uid_next,
                    highest_modseq: f.highest_modseq,
                },
                ..FolderReindex::default()
            };
            repair_account_modseq(c, &f.account)?;

            // Sizes: the blob's length is the message's size (RFC 9051 RFC822.SIZE).
            let mut row_st = c
                .prepare_cached("SELECT blob, size FROM messages WHERE folder = ?1 AND uid = ?2")
                .db()?;
            let mut size_st = c
                .prepare_cached(
                    "UPDATE messages SET size = ?3, modseq = ?4 WHERE folder = ?1 AND uid = ?2",
                )
                .db()?;
            for d in derived {
                let row: Option<(String, u64)> = row_st
                    .query_row(params![folder, d.uid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .db()?;
                // Expunged since the blob was read, or another message: leave it.
                let Some((blob, stored)) = row else { continue };
                if blob != d.blob.0 || stored == d.size {
                    continue;
                }
                let modseq = next_modseq(c, &f.account)?;
                size_st
                    .execute(params![folder, d.uid, to_i64(d.size, "size")?, modseq])
                    .db()?;
                log_change(
                    c,
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
            let rows: Vec<(u32, String, bool)> = {
                let mut st = c
                    .prepare_cached("SELECT uid, flags, seen FROM messages WHERE folder = ?1")
                    .db()?;
                st.query_map([folder], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .db()?
                    .collect::<Result<_, _>>()
                    .db()?
            };
            for (uid, text, seen) in rows {
                let flags = decode_flags(1, &text).db()?;
                let normal = normalize_flags(&flags);
                if normal == flags && seen == has_seen(&normal) {
                    continue;
                }
                c.execute(
                    "UPDATE messages SET flags = ?3, seen = ?4 WHERE folder = ?1 AND uid = ?2",
                    params![folder, uid, encode_flags(&normal)?, has_seen(&normal)],
                )
                .db()?;
                out.flags_normalized.push(uid);
            }
            out.flags_normalized.sort_unstable();

            let (messages, unseen, bytes, max_uid, max_modseq): (u32, u32, u64, u32, u64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(seen = 0), 0), coalesce(sum(size), 0),
                            coalesce(max(uid), 0), coalesce(max(modseq), 0)
                     FROM messages WHERE folder = ?1",
                    [folder],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .db()?;
            let logged: u64 = c
                .query_row(
                    "SELECT coalesce(max(modseq), 0) FROM changes
                     WHERE account = ?1 AND folder = ?2",
                    params![f.account, folder],
                    |r| r.get(0),
                )
                .db()?;
            out.after = FolderCounters {
                messages,
                unseen,
                bytes,
                uid_next: f.uid_next.max(max_uid.saturating_add(1)),
                highest_modseq: f.highest_modseq.max(max_modseq).max(logged),
            };
            c.execute(
                "UPDATE folders SET messages = ?2, unseen = ?3, bytes = ?4, uid_next = ?5,
                     highest_modseq = ?6
                 WHERE id = ?1",
                params![
                    folder,
                    out.after.messages,
                    out.after.unseen,
                    to_i64(out.after.bytes, "bytes")?,
                    out.after.uid_next,
                    to_i64(out.after.highest_modseq, "modseq")?
                ],
            )
            .db()?;
            Ok(out)
        })
    }

    pub(super) fn sqlite_reindex_account(&self, account: &str) -> StoreResult<AccountReindex> {
        self.write(|c| {
            let (highest_modseq_before, highest_modseq_after) = repair_account_modseq(c, account)?;
            let usage_before: Usage = c
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
                .db()?;
            let usage_after: Usage = c
                .query_row(
                    "SELECT coalesce(sum(m.size), 0), count(*)
                     FROM messages m JOIN folders f ON f.id = m.folder WHERE f.account = ?1",
                    [account],
                    |r| {
                        Ok(Usage {
                            bytes: r.get(0)?,
                            messages: r.get(1)?,
                        })
                    },
                )
                .db()?;
            if usage_after != usage_before {
                c.execute(
                    "UPDATE account_state SET bytes = ?2, messages = ?3 WHERE account = ?1",
                    params![
                        account,
                        to_i64(usage_after.bytes, "usage")?,
                        to_i64(usage_after.messages, "usage")?
                    ],
                )
                .db()?;
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

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::{BlobId, DerivedSize, FolderKind, MetaStore, NewMessage, Usage};

    /// Every piece of derived data broken by hand in the database is rebuilt; UIDs,
    /// UIDVALIDITY and flags stay, and later writes continue from the repaired values.
    #[test]
    fn reindex_repairs_what_direct_sql_broke() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("keel.db");
        let meta = SqliteStore::open(&db).expect("open");
        let inbox = meta
            .create_folder("bob@example.com", "INBOX", FolderKind::Mail)
            .expect("folder");
        let bodies: Vec<String> = (0..4)
            .map(|i| format!("Subject: {i}\r\n\r\nbody {i}\r\n"))
            .collect();
        let msgs: Vec<NewMessage> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| NewMessage {
                blob: BlobId::of(b.as_bytes()),
                size: b.len() as u64,
                flags: if i % 2 == 0 {
                    vec!["\\Seen".into()]
                } else {
                    vec!["$Work".into()]
                },
                internal_date: 1_700_000_000,
            })
            .collect();
        meta.append_messages(inbox.id, &msgs).expect("append");
        let good = meta.list_messages(inbox.id).expect("list");
        let modseq = meta.highest_modseq("bob@example.com").expect("modseq");

        rusqlite::Connection::open(&db)
            .expect("raw")
            .execute_batch(&format!(
                "UPDATE messages SET size = 5 WHERE uid = 2;
                 UPDATE messages SET seen = 1 WHERE uid = 4;
                 UPDATE messages SET flags = '[\"\\\\Seen\",\"$A\",\"\\\\Seen\"]' WHERE uid = 3;
                 UPDATE folders SET messages = 40, unseen = 0, bytes = 7, uid_next = 2,
                     highest_modseq = 1 WHERE id = {};
                 UPDATE account_state SET bytes = 3, messages = 9, highest_modseq = 2;",
                inbox.id
            ))
            .expect("corrupt");

        let derived: Vec<DerivedSize> = good
            .iter()
            .map(|m| DerivedSize {
                uid: m.uid,
                blob: m.blob.clone(),
                size: bodies[m.uid as usize - 1].len() as u64,
            })
            .collect();
        let r = meta.reindex_folder(inbox.id, &derived).expect("reindex");
        assert_eq!(r.sizes_fixed.len(), 1);
        assert_eq!((r.sizes_fixed[0].uid, r.sizes_fixed[0].stored), (2, 5));
        assert_eq!(r.flags_normalized, vec![3, 4]);
        assert_eq!((r.before.messages, r.before.uid_next), (40, 2));
        let total: u64 = bodies.iter().map(|b| b.len() as u64).sum();
        // uid 3 now has `$A` and `\Seen`: seen are 1 and 3.
        assert_eq!(
            (
                r.after.messages,
                r.after.unseen,
                r.after.bytes,
                r.after.uid_next
            ),
            (4, 2, total, 5)
        );
        // The account counter was pushed above every existing modseq before the new one.
        assert_eq!(r.after.highest_modseq, modseq + 1);

        let a = meta.reindex_account("bob@example.com").expect("account");
        assert_eq!(
            a.usage_before,
            Usage {
                bytes: 3,
                messages: 9
            }
        );
        assert_eq!(
            a.usage_after,
            Usage {
                bytes: total,
                messages: 4
            }
        );
        assert_eq!(a.highest_modseq_before, modseq + 1);
        assert_eq!(meta.usage("bob@example.com").expect("usage"), a.usage_after);

        let f = meta
            .get_folder("bob@example.com", "INBOX")
            .expect("get")
            .expect("folder");
        assert_eq!(f.uid_validity, inbox.uid_validity);
        let rows = meta.list_messages(inbox.id).expect("list");
        assert_eq!(
            rows.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(rows[1].size, bodies[1].len() as u64);
        assert_eq!(rows[2].flags, vec!["$A".to_owned(), "\\Seen".to_owned()]);
        assert_eq!(rows[3].flags, vec!["$Work".to_owned()]);

        // Appends get UID 5 and a fresh modseq; the counters follow.
        let extra = NewMessage {
            blob: BlobId::of(b"x"),
            size: 1,
            flags: vec![],
            internal_date: 0,
        };
        let added = meta.append_messages(inbox.id, &[extra]).expect("append");
        assert_eq!(added, vec![(5, modseq + 2)]);
        let f = meta
            .get_folder("bob@example.com", "INBOX")
            .expect("get")
            .expect("folder");
        assert_eq!((f.messages, f.unseen, f.uid_next), (5, 3, 6));
    }
}
