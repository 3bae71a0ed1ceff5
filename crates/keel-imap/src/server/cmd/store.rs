//! STORE / UID STORE (RFC 9051 §6.4.6), UNCHANGEDSINCE and MODIFIED (RFC 7162 §3.1.3).

use std::collections::BTreeSet;

use crate::codec::{Code, Data, FetchItem, Flag, SequenceSet, StoreCommand, StoreOperation};
use crate::server::selected::wire_flags;
use crate::server::shared::no_perm;
use keel_mail::{Right, flag_allowed};

/// The RFC 4314 right a flag change needs (§4 STORE).
fn flag_right(flag: &str) -> Right {
    if flag.eq_ignore_ascii_case("\\Seen") {
        Right::Seen
    } else if flag.eq_ignore_ascii_case("\\Deleted") {
        Right::DeleteMessages
    } else {
        Right::Write
    }
}
use crate::server::{CmdResult, Reply, Session, ok, ok_code};

/// The new flag list of a message (stored form, sorted).
fn apply(old: &[String], op: StoreOperation, flags: &[Flag]) -> Vec<String> {
    // \Recent cannot be changed by a client (RFC 3501 §2.3.2).
    let given: BTreeSet<String> = flags
        .iter()
        .filter(|f| **f != Flag::Recent)
        .map(ToString::to_string)
        .collect();
    let mut set: BTreeSet<String> = old.iter().cloned().collect();
    match op {
        StoreOperation::Replace => set = given,
        StoreOperation::Add => set.extend(given),
        StoreOperation::Remove => {
            for g in &given {
                set.retain(|f| !f.eq_ignore_ascii_case(g));
            }
        }
    }
    set.into_iter().collect()
}

impl Session {
    pub(crate) async fn store(&mut self, s: StoreCommand) -> CmdResult {
        if s.unchanged_since.is_some() {
            self.enabled.condstore = true; // RFC 7162 §3.1: CONDSTORE-enabling
        }
        let condstore = self.enabled.condstore;
        // RFC 4314 §4 STORE: `s` for \Seen, `t` for \Deleted, `w` for the rest; checked
        // before anything changes.
        let rights = if self.shared_selected().is_some() {
            let rights = self.selected_rights().await?;
            for f in s.flags.iter().filter(|f| **f != Flag::Recent) {
                let f = f.to_string();
                if !flag_allowed(rights, &f) {
                    return Err(no_perm(flag_right(&f)));
                }
            }
            Some(rights)
        } else {
            None
        };
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        if sel.read_only {
            return Err(Reply::no("mailbox is read-only").code(Code::ReadOnly));
        }
        let idxs = sel.resolve(&s.set, s.uid)?;
        let mut modified = Vec::new();
        let mut todo = Vec::new();
        let mut touched = Vec::new();
        for &i in &idxs {
            let Some(m) = sel.msgs.get(i).filter(|m| !m.expunged) else {
                continue;
            };
            if s.unchanged_since.is_some_and(|u| m.meta.modseq > u) {
                modified.push(if s.uid { m.meta.uid } else { (i + 1) as u32 });
                continue;
            }
            touched.push(i);
            let new = apply(&m.meta.flags, s.operation, &s.flags);
            let mut old = m.meta.flags.clone();
            old.sort();
            if new != old {
                // STORE FLAGS (replace) may clear flags the user has no right to.
                if let Some(rights) = rights
                    && let Some(f) = new
                        .iter()
                        .filter(|f| !old.contains(f))
                        .chain(old.iter().filter(|f| !new.contains(f)))
                        .find(|f| !flag_allowed(rights, f))
                {
                    return Err(no_perm(flag_right(f)));
                }
                todo.push((i, m.meta.uid, new));
            }
        }
        let folder_id = sel.folder_id;
        let updated = self
            .blocking(move |mb| set_flags_of(mb, folder_id, todo))
            .await?;
        let mut changed = std::collections::HashSet::new();
        if let Some(sel) = &mut self.selected {
            for (i, fl, modseq) in updated {
                if let Some(m) = sel.msgs_mut().get_mut(i) {
                    m.meta.flags = fl;
                    m.meta.modseq = modseq;
                    changed.insert(i);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(sel) = &self.selected {
            for i in touched {
                let Some(m) = sel.msgs.get(i) else { continue };
                // RFC 9051 §6.4.6: .SILENT suppresses the FETCH; RFC 7162 §3.1.3: with
                // CONDSTORE the MODSEQ of changed messages is still reported.
                let silent_condstore = s.silent && condstore && changed.contains(&i);
                if s.silent && !silent_condstore {
                    continue;
                }
                let mut items = Vec::new();
                if !s.silent {
                    items.push(FetchItem::Flags(wire_flags(&m.meta.flags)));
                }
                if s.uid || silent_condstore {
                    items.push(FetchItem::Uid(m.meta.uid));
                }
                if condstore {
                    items.push(FetchItem::ModSeq(m.meta.modseq.max(1)));
                }
                out.push(Data::Fetch {
                    seq: (i + 1) as u32,
                    items,
                });
            }
        }
        for d in out {
            self.data(d);
        }
        if modified.is_empty() {
            ok("STORE completed")
        } else {
            ok_code(
                Code::Modified(SequenceSet::from_numbers(&modified)),
                "conditional STORE failed for some messages",
            )
        }
    }
}

/// Sets the flags of `(index, uid, flags)` in one transaction (a STORE on a range, or
/// FETCH's implicit `\Seen`); returns `(index, flags, modseq)` of the messages still there.
pub(crate) fn set_flags_of(
    mb: &keel_mail::Mailboxes,
    folder_id: i64,
    todo: Vec<(usize, u32, Vec<String>)>,
) -> keel_mail::MailResult<Vec<(usize, Vec<String>, u64)>> {
    let updates: Vec<(u32, Vec<String>)> =
        todo.iter().map(|(_, uid, fl)| (*uid, fl.clone())).collect();
    let modseqs = mb.set_flags_many(folder_id, &updates)?;
    Ok(todo
        .into_iter()
        .zip(modseqs)
        .filter_map(|((i, _, fl), m)| m.map(|m| (i, fl, m)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_operations() {
        let old = vec!["\\Seen".to_owned(), "$Junk".to_owned()];
        assert_eq!(
            apply(&old, StoreOperation::Add, &[Flag::Deleted]),
            vec!["$Junk", "\\Deleted", "\\Seen"]
        );
        assert_eq!(
            apply(&old, StoreOperation::Remove, &[Flag::Seen, Flag::Recent]),
            vec!["$Junk"]
        );
        assert_eq!(
            apply(&old, StoreOperation::Replace, &[Flag::Flagged]),
            vec!["\\Flagged"]
        );
    }
}
