//! The selected mailbox: the session's snapshot of its folder, sequence-number mapping
//! (RFC 9051 §2.3.1.2) and change propagation from the account's change log (DESIGN §2,
//! RFC 9051 §7.4-§7.5, RFC 7162 §3.2.10).

use keel_mail::{ChangeKind, MessageMeta};

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
    /// Messages in sequence-number order (seq = index + 1).
    pub(crate) msgs: Vec<Msg>,
    /// The account change-log position already reflected in `msgs`.
    pub(crate) seen_modseq: u64,
    /// SEARCHRES saved result, as UIDs (RFC 5182 §2.1).
    pub(crate) saved: Option<Vec<u32>>,
}

/// Converts stored flag strings to wire flags.
pub(crate) fn wire_flags(flags: &[String]) -> Vec<Flag> {
    flags.iter().filter_map(|f| Flag::from_wire(f)).collect()
}

impl Selected {
    pub(crate) fn exists(&self) -> u32 {
        u32::try_from(self.msgs.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.meta.uid)
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

impl Session {
    /// Reports changes made by other sessions (and by this one through other paths) as
    /// untagged responses. `allow_expunge` is false while answering FETCH, STORE and
    /// SEARCH (RFC 9051 §7.5.1).
    pub(crate) async fn sync(&mut self, allow_expunge: bool) {
        let (Some(sel), Some(account)) = (&self.selected, self.log_account()) else {
            return;
        };
        let folder_id = sel.folder_id;
        let since = sel.seen_modseq;
        let pending = sel.msgs.iter().any(|m| m.expunged);
        let changes = self
            .blocking(move |mb| Ok(mb.meta().changes_since(&account, since)?))
            .await;
        let Ok(changes) = changes else { return };
        let top = changes.iter().map(|c| c.modseq).max().unwrap_or(since);
        let relevant = changes.iter().any(|c| c.folder == folder_id);
        let folder_gone = changes
            .iter()
            .any(|c| c.folder == folder_id && c.kind == ChangeKind::FolderDeleted);
        if !(relevant || (allow_expunge && pending)) {
            if let Some(sel) = &mut self.selected {
                sel.seen_modseq = top;
            }
            return;
        }
        let fresh = if folder_gone {
            Ok(Vec::new())
        } else {
            self.blocking(move |mb| mb.messages(folder_id)).await
        };
        // An error means the folder vanished (deleted elsewhere): everything is gone.
        let fresh = fresh.unwrap_or_default();
        self.apply(fresh, top, allow_expunge);
    }

    /// Diffs the snapshot against fresh rows and queues the untagged responses.
    pub(crate) fn apply(&mut self, fresh: Vec<MessageMeta>, top: u64, allow_expunge: bool) {
        let condstore = self.enabled.condstore;
        let qresync = self.enabled.qresync;
        let Some(sel) = &mut self.selected else {
            return;
        };
        sel.seen_modseq = sel.seen_modseq.max(top);
        let mut by_uid: std::collections::HashMap<u32, MessageMeta> =
            fresh.into_iter().map(|m| (m.uid, m)).collect();
        let mut out: Vec<Data> = Vec::new();
        // Flag changes, with the current numbering.
        for (i, m) in sel.msgs.iter_mut().enumerate() {
            match by_uid.remove(&m.meta.uid) {
                Some(f) => {
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
                            seq: (i + 1) as u32,
                            items,
                        });
                    }
                    m.meta = f;
                }
                None => m.expunged = true,
            }
        }
        if allow_expunge && sel.msgs.iter().any(|m| m.expunged) {
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
                        out.push(Data::Expunge((i + 1) as u32));
                    }
                }
            }
            sel.msgs.retain(|m| !m.expunged);
        }
        // New messages: UIDs only grow (RFC 9051 §2.3.1.1).
        let max = sel.max_uid();
        let mut added: Vec<MessageMeta> = by_uid.into_values().filter(|m| m.uid > max).collect();
        if !added.is_empty() {
            added.sort_by_key(|m| m.uid);
            sel.msgs.extend(added.into_iter().map(|meta| Msg {
                meta,
                expunged: false,
            }));
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
