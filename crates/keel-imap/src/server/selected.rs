//! The selected mailbox: the session's snapshot of its folder, sequence-number mapping
//! (RFC 9051 §2.3.1.2) and change propagation from the account's change log (DESIGN §2,
//! RFC 9051 §7.4-§7.5, RFC 7162 §3.2.10).

use std::sync::Arc;

use keel_mail::{ChangeKind, MailError, MessageMeta};

use super::{Reply, Session};
use crate::codec::{Data, FetchItem, Flag, SeqItem, SequenceSet};

/// One message as the session knows it.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) meta: MessageMeta,
    /// Expunged in the store but not yet announced (RFC 9051 §7.5.1).
    pub(crate) expunged: bool,
}

/// The selected mailbox.
#[derive(Debug)]
pub(crate) struct Selected {
    pub(crate) folder_id: i64,
    pub(crate) read_only: bool,
    /// Messages in sequence-number order (seq = index + 1). Shared with the process-wide
    /// row cache of large folders (select.rs) until the session changes it, so SELECT does
    /// not copy the folder; writers use [`Selected::msgs_mut`].
    pub(crate) msgs: Arc<Vec<Msg>>,
    /// The account change-log position already reflected in `msgs`.
    pub(crate) seen_modseq: u64,
    /// How many of `msgs` are marked `expunged` (not yet announced), so commands need not
    /// scan the snapshot to know.
    pub(crate) pending_expunges: usize,
    /// SEARCHRES saved result, as UIDs (RFC 5182 §2.1).
    pub(crate) saved: Option<Vec<u32>>,
}

/// Converts stored flag strings to wire flags.
pub(crate) fn wire_flags(flags: &[String]) -> Vec<Flag> {
    flags.iter().filter_map(|f| Flag::from_wire(f)).collect()
}

impl Selected {
    /// The messages for writing (copied first while the snapshot is shared).
    pub(crate) fn msgs_mut(&mut self) -> &mut Vec<Msg> {
        Arc::make_mut(&mut self.msgs)
    }

    pub(crate) fn exists(&self) -> u32 {
        u32::try_from(self.msgs.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.meta.uid)
    }

    /// The index of the message with `uid`: `msgs` is in UID order (UIDs are assigned in
    /// ascending order and only ever appended, RFC 9051 §2.3.1.1).
    pub(crate) fn index_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.meta.uid).ok()
    }

    /// Resolves `$` (RFC 5182 §2.1) into UIDs.
    fn saved_uids(&self) -> Vec<u32> {
        self.saved.clone().unwrap_or_default()
    }

    /// The indexes (0-based) of the messages a set names, in ascending order. `uid` selects
    /// UID sets; `*` is the largest number in use (RFC 9051 §9); numbers beyond EXISTS are
    /// an error for sequence sets (RFC 9051 §9 `seq-number`).
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Reply> {
        let saved: Vec<u32> = if set.uses_saved() {
            self.saved_uids()
        } else {
            Vec::new()
        };
        if uid {
            let largest = self.max_uid();
            let plain = SequenceSet(
                set.0
                    .iter()
                    .filter(|i| !matches!(i, SeqItem::Saved))
                    .copied()
                    .collect(),
            );
            return Ok(self
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| plain.contains(m.meta.uid, largest) || saved.contains(&m.meta.uid))
                .map(|(i, _)| i)
                .collect());
        }
        let largest = self.exists();
        let mut out = Vec::new();
        for item in &set.0 {
            match *item {
                SeqItem::Range(a, b) => {
                    let (a, b) = (a.resolve(largest), b.resolve(largest));
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    if hi > largest || lo == 0 {
                        return Err(Reply::bad("invalid message sequence number"));
                    }
                    out.extend((lo..=hi).map(|n| (n - 1) as usize));
                }
                SeqItem::Saved => out.extend(
                    self.msgs
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| saved.contains(&m.meta.uid))
                        .map(|(i, _)| i),
                ),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Above this many change-log rows for the selected folder since the last sync (and above
/// half the snapshot), [`Session::sync`] re-reads the whole folder instead of the changed
/// rows: one sequential scan then beats many index probes.
pub(crate) const INCREMENTAL_MAX_CHANGES: usize = 4096;

/// What [`Session::apply`] brings the snapshot up to date with.
#[derive(Debug)]
pub(crate) enum Delta {
    /// Every row of the folder, in UID order: a message missing from it was expunged.
    Full(Vec<MessageMeta>),
    /// The rows changed (added, flags changed) since the snapshot's change-log position,
    /// in UID order, and the UIDs the change log says were expunged since.
    Changed {
        rows: Vec<MessageMeta>,
        expunged: Vec<u32>,
    },
}

/// Whether the change log read from `since` is gap-free. Every modseq of an account has
/// exactly one change-log row (checked by the store conformance suite), so a gap means
/// rows are missing (a truncated or re-created log) and the log cannot be trusted for an
/// incremental update.
pub(crate) fn contiguous(since: u64, changes: &[keel_mail::Change]) -> bool {
    let mut want = since.saturating_add(1);
    for c in changes {
        if c.modseq != want {
            return false;
        }
        want = want.saturating_add(1);
    }
    true
}

impl Session {
    /// Reports changes made by other sessions (and by this one through other paths) as
    /// untagged responses. `allow_expunge` is false while answering FETCH, STORE and
    /// SEARCH (RFC 9051 §7.5.1).
    ///
    /// The snapshot is updated incrementally from the account's change log (DESIGN §2):
    /// expunges come from its `MessageExpunged` rows, flag changes and new messages from
    /// the folder's rows changed since the snapshot's position
    /// (`Mailboxes::messages_changed_since`), so the cost follows the number of changes,
    /// not the folder's size. The whole folder is re-read only when the folder was
    /// deleted, when the log has a gap, or when the changes are many.
    pub(crate) async fn sync(&mut self, allow_expunge: bool) {
        let (Some(sel), Some(account)) = (&self.selected, self.log_account()) else {
            return;
        };
        let folder_id = sel.folder_id;
        let since = sel.seen_modseq;
        let pending = sel.pending_expunges > 0;
        let snapshot_len = sel.msgs.len();
        let changes = self
            .blocking(move |mb| Ok(mb.meta().changes_since(&account, since)?))
            .await;
        let Ok(changes) = changes else { return };
        let top = changes.last().map_or(since, |c| c.modseq).max(since);
        let mine: Vec<&keel_mail::Change> =
            changes.iter().filter(|c| c.folder == folder_id).collect();
        if mine.is_empty() && !(allow_expunge && pending) {
            if let Some(sel) = &mut self.selected {
                sel.seen_modseq = top;
            }
            return;
        }
        let folder_gone = mine.iter().any(|c| c.kind == ChangeKind::FolderDeleted);
        let reload = !contiguous(since, &changes)
            || mine.len() > INCREMENTAL_MAX_CHANGES.max(snapshot_len / 2);
        let delta = if folder_gone {
            Delta::Full(Vec::new())
        } else if reload {
            match self.blocking(move |mb| mb.messages(folder_id)).await {
                Ok(rows) => Delta::Full(rows),
                Err(_) => match self.folder_missing(folder_id).await {
                    // The folder vanished (deleted elsewhere): everything is gone.
                    Some(true) => Delta::Full(Vec::new()),
                    // A failed read: try again at the next sync.
                    _ => return,
                },
            }
        } else {
            let expunged: Vec<u32> = mine
                .iter()
                .filter(|c| c.kind == ChangeKind::MessageExpunged)
                .map(|c| c.uid)
                .collect();
            let need_rows = mine
                .iter()
                .any(|c| matches!(c.kind, ChangeKind::MessageAdded | ChangeKind::FlagsChanged));
            let rows = if need_rows {
                match self
                    .blocking(move |mb| mb.messages_changed_since(folder_id, since))
                    .await
                {
                    Ok(rows) => rows,
                    Err(_) => match self.folder_missing(folder_id).await {
                        Some(true) => {
                            self.apply(Delta::Full(Vec::new()), top, allow_expunge);
                            return;
                        }
                        _ => return,
                    },
                }
            } else {
                Vec::new()
            };
            Delta::Changed { rows, expunged }
        };
        self.apply(delta, top, allow_expunge);
    }

    /// Whether the folder no longer exists (`None` when that cannot be told).
    async fn folder_missing(&self, folder_id: i64) -> Option<bool> {
        self.blocking(
            move |mb| match mb.messages_changed_since(folder_id, u64::MAX >> 1) {
                Ok(_) => Ok(false),
                Err(MailError::NoSuchFolderId(_)) => Ok(true),
                Err(e) => Err(e),
            },
        )
        .await
        .ok()
    }

    /// Applies a [`Delta`] to the snapshot and queues the untagged responses: FETCH for
    /// flag changes (with the numbering before any expunge), then EXPUNGE/VANISHED when
    /// `allow_expunge`, then EXISTS for new messages.
    pub(crate) fn apply(&mut self, delta: Delta, top: u64, allow_expunge: bool) {
        let condstore = self.enabled.condstore;
        let qresync = self.enabled.qresync;
        let Some(sel) = &mut self.selected else {
            return;
        };
        sel.seen_modseq = sel.seen_modseq.max(top);
        let mut out: Vec<Data> = Vec::new();
        // Flag changes, with the current numbering; FETCH responses in sequence order.
        let update = |i: usize, m: &mut Msg, f: MessageMeta, out: &mut Vec<Data>| {
            let flags_changed = f.flags != m.meta.flags;
            let modseq_changed = f.modseq != m.meta.modseq;
            if flags_changed || (condstore && modseq_changed) {
                let mut items = vec![
                    FetchItem::Flags(wire_flags(&f.flags)),
                    FetchItem::Uid(f.uid),
                ];
                if condstore {
                    items.push(FetchItem::ModSeq(f.modseq));
                }
                out.push(Data::Fetch {
                    seq: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    items,
                });
            }
            m.meta = f;
        };
        let max = sel.max_uid();
        let mut added: Vec<MessageMeta> = Vec::new();
        match delta {
            Delta::Full(fresh) => {
                let mut by_uid: std::collections::HashMap<u32, MessageMeta> =
                    fresh.into_iter().map(|m| (m.uid, m)).collect();
                for (i, m) in Arc::make_mut(&mut sel.msgs).iter_mut().enumerate() {
                    match by_uid.remove(&m.meta.uid) {
                        Some(f) => update(i, m, f, &mut out),
                        None if !m.expunged => {
                            m.expunged = true;
                            sel.pending_expunges += 1;
                        }
                        None => {}
                    }
                }
                // New messages: UIDs only grow (RFC 9051 §2.3.1.1).
                added = by_uid.into_values().filter(|m| m.uid > max).collect();
                added.sort_by_key(|m| m.uid);
            }
            Delta::Changed { rows, expunged } => {
                for row in rows {
                    match sel.index_of(row.uid) {
                        Some(i) => {
                            if let Some(m) = sel.msgs_mut().get_mut(i).filter(|m| !m.expunged) {
                                update(i, m, row, &mut out);
                            }
                        }
                        // UIDs only grow (RFC 9051 §2.3.1.1): a row above the snapshot's
                        // largest UID is new; one below it was never seen (it was added and
                        // expunged between two syncs) and stays unknown.
                        None if row.uid > max => added.push(row),
                        None => {}
                    }
                }
                for uid in expunged {
                    if let Some(m) = sel
                        .index_of(uid)
                        .and_then(|i| Arc::make_mut(&mut sel.msgs).get_mut(i))
                        .filter(|m| !m.expunged)
                    {
                        m.expunged = true;
                        sel.pending_expunges += 1;
                    }
                }
            }
        }
        if allow_expunge && sel.pending_expunges > 0 {
            if qresync {
                // RFC 7162 §3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled.
                let uids: Vec<u32> = sel
                    .msgs
                    .iter()
                    .filter(|m| m.expunged)
                    .map(|m| m.meta.uid)
                    .collect();
                out.push(Data::Vanished {
                    earlier: false,
                    uids: SequenceSet::from_numbers(&uids),
                });
            } else {
                // Highest first, so earlier numbers stay valid (RFC 9051 §7.5.1).
                for i in (0..sel.msgs.len()).rev() {
                    if sel.msgs.get(i).is_some_and(|m| m.expunged) {
                        out.push(Data::Expunge(u32::try_from(i + 1).unwrap_or(u32::MAX)));
                    }
                }
            }
            sel.msgs_mut().retain(|m| !m.expunged);
            sel.pending_expunges = 0;
        }
        if !added.is_empty() {
            sel.msgs_mut().extend(added.into_iter().map(|meta| Msg {
                meta,
                expunged: false,
            }));
            // RFC 9051 §7.4.1: EXISTS after the size of the mailbox changed.
            out.push(Data::Exists(sel.exists()));
        }
        for d in out {
            self.data(d);
        }
    }

    /// Loads a folder's rows for SELECT / after own changes.
    pub(crate) async fn load_messages(&self, folder_id: i64) -> Result<Vec<MessageMeta>, Reply> {
        self.blocking(move |mb| mb.messages(folder_id)).await
    }
}
