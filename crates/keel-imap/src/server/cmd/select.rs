//! SELECT / EXAMINE (RFC 9051 §6.3.2-3, CONDSTORE/QRESYNC RFC 7162 §3.1.8, §3.2.5),
//! CLOSE (§6.4.1) and UNSELECT (RFC 3691).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use keel_mail::{ChangeKind, Folder, MailError, MailResult, Mailboxes, MessageMeta, MetaStore};

use crate::codec::{
    Code, Data, FetchItem, Flag, ListData, MailboxName, SelectParams, SequenceSet, StatusResponse,
};
use crate::server::oplog;
use crate::server::selected::{INCREMENTAL_MAX_CHANGES, Msg, Selected, contiguous, wire_flags};
use crate::server::{CmdResult, Reply, Session, ok, ok_code};

/// The system flags (RFC 9051 §2.3.2).
pub(crate) fn system_flags() -> Vec<Flag> {
    vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]
}

/// Folders with at least this many messages have their rows kept in [`FolderCache`].
const CACHE_MIN_ROWS: usize = 2_000;
/// The most message rows [`FolderCache`] keeps, over all folders (about 150 bytes each).
const CACHE_MAX_ROWS: usize = 300_000;

/// A process-wide cache of the rows of large folders, so a SELECT (by any session) reads
/// only what changed since the rows were cached instead of every row: the change log says
/// what changed (DESIGN §2), exactly as [`Session::sync`] does for a selected folder. An
/// entry is checked against the folder's change log at every use, so it is never stale,
/// also when other processes or nodes write to the store. The sessions share the cached
/// rows (`Arc`) until one changes its snapshot, so SELECT of an unchanged large folder
/// copies nothing and does not grow with the folder (issue 4 §8c).
struct FolderCache {
    entries: HashMap<i64, Cached>,
    rows: usize,
    tick: u64,
}

struct Cached {
    /// The store the rows come from: folder ids are per store, and a process may open
    /// several (tests do). A `Weak` keeps the allocation, so the address is never reused
    /// while the entry exists.
    store: Weak<dyn MetaStore>,
    /// The account whose change log describes the folder (its owner).
    account: String,
    /// The change-log position the rows reflect (at least).
    modseq: u64,
    /// The rows as sessions hold them (never marked expunged here).
    rows: Arc<Vec<Msg>>,
    used: u64,
}

fn folder_cache() -> std::sync::MutexGuard<'static, FolderCache> {
    static CACHE: OnceLock<Mutex<FolderCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            Mutex::new(FolderCache {
                entries: HashMap::new(),
                rows: 0,
                tick: 0,
            })
        })
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FolderCache {
    /// Takes the entry of `folder` when it comes from `store`; an entry of another store
    /// with the same folder id (a process with several stores, as tests have) stays.
    fn take_from(&mut self, folder: i64, store: &Arc<dyn MetaStore>) -> Option<Cached> {
        let same = self
            .entries
            .get(&folder)
            .is_some_and(|c| Weak::ptr_eq(&c.store, &Arc::downgrade(store)));
        if same { self.take(folder) } else { None }
    }

    fn take(&mut self, folder: i64) -> Option<Cached> {
        let c = self.entries.remove(&folder)?;
        self.rows = self.rows.saturating_sub(c.rows.len());
        Some(c)
    }

    /// Keeps `c`, evicting the least recently used entries beyond the row budget.
    fn put(&mut self, folder: i64, mut c: Cached) {
        if c.rows.len() < CACHE_MIN_ROWS || c.rows.len() > CACHE_MAX_ROWS {
            return;
        }
        self.take(folder);
        while self.rows + c.rows.len() > CACHE_MAX_ROWS {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.take(oldest);
        }
        self.tick += 1;
        c.used = self.tick;
        self.rows += c.rows.len();
        self.entries.insert(folder, c);
    }
}

/// Brings cached rows (reflecting `since`) up to date with the change log: `changed` are
/// the rows changed since (UID order), `expunged` the UIDs expunged since. Changes already
/// in the rows are applied again harmlessly.
fn apply_rows(rows: &mut Vec<Msg>, changed: Vec<MessageMeta>, expunged: &[u32]) {
    if !expunged.is_empty() {
        let gone: std::collections::HashSet<u32> = expunged.iter().copied().collect();
        rows.retain(|m| !gone.contains(&m.meta.uid));
    }
    for row in changed {
        match rows.binary_search_by_key(&row.uid, |m| m.meta.uid) {
            Ok(i) => {
                if let Some(m) = rows.get_mut(i) {
                    m.meta = row;
                }
            }
            // UIDs only grow (RFC 9051 §2.3.1.1): a new row goes at the end; one below the
            // largest UID was added and expunged meanwhile and is not there any more.
            Err(i) if i == rows.len() => rows.push(Msg {
                meta: row,
                expunged: false,
            }),
            Err(_) => {}
        }
    }
}

fn fresh_msgs(rows: Vec<MessageMeta>) -> Vec<Msg> {
    rows.into_iter()
        .map(|meta| Msg {
            meta,
            expunged: false,
        })
        .collect()
}

/// The snapshot SELECT starts from: the folder's rows in UID order, from [`FolderCache`]
/// plus the changes since when the change log allows it, else read whole. `top` is the
/// account's change-log position read before the folder.
fn snapshot(mb: &Mailboxes, folder: &Folder, top: u64) -> MailResult<Arc<Vec<Msg>>> {
    let cached = folder_cache().take_from(folder.id, mb.meta());
    let rows = match cached.map(|c| refresh(mb, folder, c)).transpose()? {
        Some(Some(c)) => c,
        _ => {
            let rows = Arc::new(fresh_msgs(mb.messages(folder.id)?));
            Cached {
                store: Arc::downgrade(mb.meta()),
                account: folder.account.clone(),
                modseq: top,
                rows,
                used: 0,
            }
        }
    };
    let msgs = Arc::clone(&rows.rows);
    folder_cache().put(folder.id, rows);
    Ok(msgs)
}

/// Brings a cache entry up to date, or `None` when the change log cannot (another owner,
/// a gap in the log, the folder deleted, too many changes).
fn refresh(mb: &Mailboxes, folder: &Folder, mut c: Cached) -> MailResult<Option<Cached>> {
    if !Weak::ptr_eq(&c.store, &Arc::downgrade(mb.meta())) || c.account != folder.account {
        return Ok(None);
    }
    let changes = mb.meta().changes_since(&c.account, c.modseq)?;
    if !contiguous(c.modseq, &changes) {
        return Ok(None);
    }
    let mine: Vec<&keel_mail::Change> =
        changes.iter().filter(|ch| ch.folder == folder.id).collect();
    if mine.len() > INCREMENTAL_MAX_CHANGES.max(c.rows.len() / 2)
        || mine.iter().any(|ch| ch.kind == ChangeKind::FolderDeleted)
    {
        return Ok(None);
    }
    let expunged: Vec<u32> = mine
        .iter()
        .filter(|ch| ch.kind == ChangeKind::MessageExpunged)
        .map(|ch| ch.uid)
        .collect();
    let changed = if mine
        .iter()
        .any(|ch| matches!(ch.kind, ChangeKind::MessageAdded | ChangeKind::FlagsChanged))
    {
        mb.messages_changed_since(folder.id, c.modseq)?
    } else {
        Vec::new()
    };
    if !expunged.is_empty() || !changed.is_empty() {
        apply_rows(Arc::make_mut(&mut c.rows), changed, &expunged);
    }
    c.modseq = changes.last().map_or(c.modseq, |ch| ch.modseq);
    Ok(Some(c))
}

impl Session {
    pub(crate) async fn select(
        &mut self,
        mailbox: MailboxName,
        params: SelectParams,
        read_only: bool,
    ) -> CmdResult {
        if params.qresync.is_some() && !self.enabled.qresync {
            // RFC 7162 §3.2.5: QRESYNC parameters need ENABLE QRESYNC first.
            return Err(Reply::bad("ENABLE QRESYNC first"));
        }
        // RFC 9051 §6.3.2: selecting closes the current mailbox, even when it fails.
        if self.selected.take().is_some() {
            self.send(StatusResponse::ok(None, "previous mailbox closed").with_code(Code::Closed));
        }
        if params.condstore {
            self.enabled.condstore = true; // RFC 7162 §3.1.8
        }
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let (folder, msgs, top, repaired) = self
            .blocking(move |mb| {
                // The log position first: changes racing with the load are reported again,
                // and the snapshot diff makes that harmless. The log is the folder owner's
                // (another account's for shared and public folders), so for those the
                // position is read again once the owner is known, and the folder after it.
                let mut top = mb.meta().highest_modseq(&user)?;
                let missing = || MailError::NoSuchFolder {
                    user: user.clone(),
                    name: name.clone(),
                };
                let mut folder = mb.folder(&user, &name)?.ok_or_else(missing)?;
                if folder.account != user {
                    top = mb.meta().highest_modseq(&folder.account)?;
                    folder = mb.folder(&user, &name)?.ok_or_else(missing)?;
                }
                let msgs = snapshot(mb, &folder, top)?;
                // requirements-3 §5.4: the counters are derived data; when they disagree
                // with the rows (and nothing changed meanwhile) they are recounted.
                let mut repaired = None;
                let rows = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
                let max_uid = msgs.last().map_or(0, |m| m.meta.uid);
                if (rows != folder.messages || folder.uid_next <= max_uid)
                    && mb.meta().highest_modseq(&folder.account)? == top
                {
                    let fixed = mb.repair_counters(&folder)?;
                    repaired = Some(format!(
                        "Folder {} had counters that disagree with its messages \
                         ({} messages, UIDNEXT {} stored; {} messages, UIDNEXT {} counted); \
                         recounted from its messages",
                        crate::server::shared::open_folder_name(&user, &folder),
                        fixed.before.messages,
                        fixed.before.uid_next,
                        fixed.after.messages,
                        fixed.after.uid_next
                    ));
                    folder = mb.folder(&user, &name)?.ok_or_else(missing)?;
                }
                Ok((folder, msgs, top, repaired))
            })
            .await?;
        if let Some(line) = repaired {
            tracing::warn!("{line}");
            if let Some(logs) = &self.ctx.logs {
                logs.error(&line);
            }
        }
        let first_unseen = msgs
            .iter()
            .position(|m| !m.meta.flags.iter().any(|f| f == "\\Seen"));
        let mut sel = Selected {
            folder_id: folder.id,
            read_only,
            msgs,
            seen_modseq: top,
            pending_expunges: 0,
            saved: None,
        };
        // RFC 9051 §6.3.2 required responses.
        self.data(Data::Flags(system_flags()));
        self.data(Data::Exists(sel.exists()));
        if !self.enabled.rev2 {
            self.data(Data::Recent(0)); // RFC 3501 §6.3.1; \Recent is not kept
            if let Some(i) = first_unseen {
                self.send(
                    StatusResponse::ok(None, "first unseen")
                        .with_code(Code::Unseen((i + 1) as u32)),
                );
            }
        } else {
            self.data(Data::List(ListData::new(
                MailboxName::new(folder.name.clone()),
                &[],
            )));
        }
        self.send(
            StatusResponse::ok(None, "UIDs valid")
                .with_code(Code::UidValidity(folder.uid_validity)),
        );
        self.send(
            StatusResponse::ok(None, "predicted next UID")
                .with_code(Code::UidNext(folder.uid_next)),
        );
        let permanent = if read_only {
            Vec::new()
        } else {
            system_flags()
        };
        self.send(
            StatusResponse::ok(None, "flags permitted").with_code(Code::PermanentFlags {
                flags: permanent,
                new_keywords: !read_only,
            }),
        );
        // RFC 7162 §3.1.2.1: HIGHESTMODSEQ (mod-sequence values are positive).
        self.send(
            StatusResponse::ok(None, "highest modseq")
                .with_code(Code::HighestModSeq(folder.highest_modseq.max(1))),
        );
        if let Some(q) = params
            .qresync
            .filter(|q| q.uidvalidity == folder.uid_validity)
        {
            // RFC 7162 §3.2.5.1: what changed since the client's modseq, in the log of the
            // folder's owner (mod-sequences are the owner's, also for shared folders).
            let account = folder.account.clone();
            let since = q.modseq;
            let changes = self
                .blocking(move |mb| Ok(mb.meta().changes_since(&account, since)?))
                .await?;
            let known = q.known_uids.clone();
            let max = sel.max_uid();
            let vanished: Vec<u32> = changes
                .iter()
                .filter(|c| c.folder == folder.id && c.kind == ChangeKind::MessageExpunged)
                .map(|c| c.uid)
                .filter(|u| sel.index_of(*u).is_none())
                .filter(|u| known.as_ref().is_none_or(|k| k.contains(*u, max.max(*u))))
                .collect();
            if !vanished.is_empty() {
                self.data(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_numbers(&vanished),
                });
            }
            for (i, m) in sel.msgs.iter().enumerate() {
                if m.meta.modseq > since {
                    self.data(Data::Fetch {
                        seq: (i + 1) as u32,
                        items: vec![
                            FetchItem::Uid(m.meta.uid),
                            FetchItem::Flags(wire_flags(&m.meta.flags)),
                            FetchItem::ModSeq(m.meta.modseq),
                        ],
                    });
                }
            }
        }
        sel.read_only = read_only;
        self.selected = Some(sel);
        self.report_selected(&folder);
        if read_only {
            ok_code(Code::ReadOnly, "EXAMINE completed")
        } else {
            ok_code(Code::ReadWrite, "SELECT completed")
        }
    }

    /// CLOSE expunges silently (RFC 9051 §6.4.1); UNSELECT does not (RFC 3691).
    pub(crate) async fn close(&mut self, expunge: bool) -> CmdResult {
        let Some(sel) = self.selected.take() else {
            return Err(Reply::bad("no mailbox selected"));
        };
        if expunge && !sel.read_only {
            let metas: Vec<keel_mail::MessageMeta> = sel
                .msgs
                .iter()
                .filter(|m| !m.expunged && m.meta.flags.iter().any(|f| f == "\\Deleted"))
                .map(|m| m.meta.clone())
                .collect();
            let id = sel.folder_id;
            let user = self.account().unwrap_or_default();
            let logging = self.ctx.logs.is_some();
            let (folder, removed) = self
                .blocking(move |mb| {
                    let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
                    let logged = if logging && !metas.is_empty() {
                        Some((
                            oplog::folder_name(mb, &user, id)?,
                            oplog::describe(mb, &metas),
                        ))
                    } else {
                        None
                    };
                    mb.expunge(id, &uids)?;
                    Ok(logged.unwrap_or_default())
                })
                .await?;
            self.log_removed(&folder, &removed);
        }
        ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_mail::BlobId;

    fn row(uid: u32, flags: &[&str], modseq: u64) -> MessageMeta {
        MessageMeta {
            folder: 1,
            uid,
            blob: BlobId::of(&uid.to_le_bytes()),
            size: 10,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            internal_date: 0,
            modseq,
        }
    }

    #[test]
    fn cached_rows_follow_the_change_log() {
        let mut rows = fresh_msgs(vec![row(1, &[], 1), row(2, &[], 2), row(3, &[], 3)]);
        // Expunge 2, flag 3, add 4 and 5; a row below the largest UID that is not there
        // (added and expunged meanwhile) stays out; re-applying is harmless.
        let changed = vec![row(3, &["\\Seen"], 5), row(4, &[], 6), row(5, &[], 7)];
        apply_rows(&mut rows, changed.clone(), &[2]);
        apply_rows(&mut rows, changed, &[2]);
        apply_rows(&mut rows, vec![row(2, &[], 8)], &[]);
        let got: Vec<(u32, usize, u64)> = rows
            .iter()
            .map(|m| (m.meta.uid, m.meta.flags.len(), m.meta.modseq))
            .collect();
        assert_eq!(got, [(1, 0, 1), (3, 1, 5), (4, 0, 6), (5, 0, 7)]);
    }

    #[test]
    fn folder_cache_keeps_large_folders_within_its_budget() {
        let mut c = FolderCache {
            entries: HashMap::new(),
            rows: 0,
            tick: 0,
        };
        let entry = |n: usize| Cached {
            store: Weak::<keel_store::sqlite::SqliteStore>::new(),
            account: "a".into(),
            modseq: 1,
            rows: Arc::new(fresh_msgs((1..=n as u32).map(|u| row(u, &[], 1)).collect())),
            used: 0,
        };
        c.put(1, entry(10)); // too small to keep
        assert!(c.entries.is_empty());
        let big = CACHE_MAX_ROWS / 2;
        c.put(2, entry(big));
        c.put(3, entry(big));
        assert_eq!(c.rows, 2 * big);
        c.put(4, entry(big)); // evicts the least recently used (2)
        assert!(!c.entries.contains_key(&2));
        assert!(c.entries.contains_key(&3) && c.entries.contains_key(&4));
        assert!(c.rows <= CACHE_MAX_ROWS);
        assert_eq!(c.take(3).map(|e| e.rows.len()), Some(big));
        assert_eq!(c.rows, big);
    }
}
