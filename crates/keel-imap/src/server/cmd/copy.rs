//! COPY / UID COPY (RFC 9051 §6.4.7, COPYUID RFC 4315 §3), MOVE / UID MOVE (RFC 6851),
//! EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).
//!
//! Spam training (guide §13.4, requirements-1 §0.9, §25.8): copying or moving messages
//! into the account's Junk folder (`Junk E-mail` by default, or the domain's or the
//! account's name for `\Junk`) teaches the Bayes classifier they are spam; from it into
//! the INBOX, that they are not. COPY counts as well as MOVE, because clients without
//! MOVE (RFC 6851) move with COPY + STORE \Deleted + EXPUNGE, and the copy is the part
//! that says where the message went. Training runs after the reply, off the async
//! threads; each message writes a Spam-log line ("User … marked a message as spam").
//! Moving out of Junk into any other folder (e.g. Deleted Items) teaches nothing.

use keel_core::log::SpamEvent;
use keel_mail::{INBOX, MailError, Right, SpecialUse};
use keel_store::BlobId;

use crate::codec::{Code, MailboxName, SequenceSet, StatusResponse};
use crate::server::oplog;
use crate::server::{CmdResult, Reply, Session, ok, ok_code};

/// A missing destination gets `[TRYCREATE]` (RFC 9051 §6.4.7, §6.3.12).
pub(crate) fn trycreate(e: Reply) -> Reply {
    if e.code == Some(Code::NonExistent) {
        Reply::no("destination mailbox does not exist").code(Code::TryCreate)
    } else {
        e
    }
}

impl Session {
    pub(crate) async fn copy(
        &mut self,
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
        mv: bool,
    ) -> CmdResult {
        // RFC 4314 §4 (and RFC 6851 §3.3): MOVE out of a folder needs `t` and `e` there.
        if mv && self.shared_selected().is_some() {
            self.require_selected(Right::DeleteMessages).await?;
            self.require_selected(Right::Expunge).await?;
        }
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        if mv && sel.read_only {
            return Err(Reply::no("mailbox is read-only").code(Code::ReadOnly));
        }
        let uids: Vec<u32> = sel
            .resolve(&set, uid)?
            .into_iter()
            .filter_map(|i| sel.msgs.get(i))
            .filter(|m| !m.expunged)
            .map(|m| m.meta.uid)
            .collect();
        let src = sel.folder_id;
        // Blobs of the messages, for the spam-training hook below.
        let blobs: Vec<(u32, keel_store::BlobId)> = sel
            .msgs
            .iter()
            .filter(|m| !m.expunged && uids.contains(&m.meta.uid))
            .map(|m| (m.meta.uid, m.meta.blob.clone()))
            .collect();
        // The moved messages, for the Operations log (guide §25.6).
        let moving: Vec<keel_mail::MessageMeta> = if mv && self.ctx.logs.is_some() {
            sel.msgs
                .iter()
                .filter(|m| !m.expunged && uids.contains(&m.meta.uid))
                .map(|m| m.meta.clone())
                .collect()
        } else {
            Vec::new()
        };
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let owner = user.clone();
        let (validity, pairs, training, moved_out) = self
            .blocking(move |mb| {
                // RFC 4314 §4: COPY/MOVE need `i` on the destination, `r` on the source.
                let target = mb.require(&user, &name, Right::Insert)?;
                mb.require_id(&user, src, Right::Read)?;
                let own_dest = target.owner == user;
                let dest = target.folder.ok_or(MailError::NoSuchFolder {
                    user: user.clone(),
                    name,
                })?;
                let removed = oplog::describe(mb, &moving);
                let pairs = if mv {
                    mb.move_messages(src, &uids, dest.id)?
                } else {
                    mb.copy(src, &uids, dest.id)?
                };
                let source = mb
                    .folders(&user)?
                    .into_iter()
                    .find(|f| f.id == src)
                    .map(|f| f.name);
                let training = match source.as_ref().filter(|_| own_dest) {
                    Some(n) => {
                        let junk = mb.special_folder(&user, SpecialUse::Junk)?;
                        training_label(n, &dest.name, &junk).map(|spam| (spam, n.clone()))
                    }
                    None => None,
                };
                Ok((
                    dest.uid_validity,
                    pairs,
                    training,
                    (source.unwrap_or_default(), removed),
                ))
            })
            .await
            .map_err(trycreate)?;
        let (folder, removed) = moved_out;
        // Only the messages that actually left the source.
        let removed: Vec<oplog::Removed> = removed
            .into_iter()
            .filter(|r| pairs.iter().any(|p| p.0 == r.uid))
            .collect();
        self.log_removed(&folder, &removed);
        if let Some((spam, folder)) = training {
            let moved: Vec<keel_store::BlobId> = blobs
                .into_iter()
                .filter(|(u, _)| pairs.iter().any(|p| p.0 == *u))
                .map(|(_, b)| b)
                .collect();
            keel_core::stats::user_marked(spam, moved.len());
            self.spam_training(owner, folder, spam, moved);
        }
        let verb = if mv { "MOVE" } else { "COPY" };
        if pairs.is_empty() {
            return ok(format!("{verb} completed, nothing to do"));
        }
        let code = Code::CopyUid {
            uidvalidity: validity,
            source: SequenceSet::from_numbers(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()),
            dest: SequenceSet::from_numbers(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()),
        };
        if mv {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
            self.send(StatusResponse::ok(None, "moved").with_code(code));
            ok("MOVE completed")
        } else {
            ok_code(code, "COPY completed")
        }
    }

    /// EXPUNGE (all `\Deleted`) or UID EXPUNGE (those also in the set).
    pub(crate) async fn expunge(&mut self, only: Option<SequenceSet>) -> CmdResult {
        // See other sessions' flag changes first.
        self.sync(true).await;
        // RFC 4314 §4 EXPUNGE: needs `e`.
        if self.shared_selected().is_some() {
            self.require_selected(Right::Expunge).await?;
        }
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        if sel.read_only {
            return Err(Reply::no("mailbox is read-only").code(Code::ReadOnly));
        }
        let allowed = match &only {
            Some(set) => Some(sel.resolve(set, true)?),
            None => None,
        };
        let metas: Vec<keel_mail::MessageMeta> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed.as_ref().is_none_or(|a| a.contains(i)))
            .filter(|(_, m)| !m.expunged && m.meta.flags.iter().any(|f| f == "\\Deleted"))
            .map(|(_, m)| m.meta.clone())
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
        // The untagged EXPUNGE responses come from the sync after the command.
        ok("EXPUNGE completed")
    }
}

/// Messages trained per command at most (a huge MOVE still completes; the rest is
/// not learned, and a warning says so).
const MAX_TRAINED_PER_COMMAND: usize = 1000;

/// `Some(true)`: learn as spam; `Some(false)`: learn as ham (module notes). `junk` is the
/// account's Junk folder, whatever its name (keel-mail special.rs).
pub(crate) fn training_label(source: &str, dest: &str, junk: &str) -> Option<bool> {
    if dest == junk && source != junk {
        Some(true)
    } else if source == junk && dest == INBOX {
        Some(false)
    } else {
        None
    }
}

impl Session {
    /// Trains the Bayes classifier with the moved messages in the background (module
    /// notes). `folder` is the folder they came from.
    pub(crate) fn spam_training(
        &self,
        user: String,
        folder: String,
        spam: bool,
        mut blobs: Vec<BlobId>,
    ) {
        if blobs.is_empty() {
            return;
        }
        if blobs.len() > MAX_TRAINED_PER_COMMAND {
            tracing::warn!(
                "spam training: only the first {MAX_TRAINED_PER_COMMAND} of {} messages learned",
                blobs.len()
            );
            blobs.truncate(MAX_TRAINED_PER_COMMAND);
        }
        let mb = self.ctx.mailboxes.clone();
        let logs = self.ctx.logs.clone();
        tokio::task::spawn_blocking(move || {
            let bayes = keel_filter::Bayes::new(mb.meta().clone());
            for blob in blobs {
                let raw = match mb.read(&blob) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("spam training: cannot read a message: {e}");
                        continue;
                    }
                };
                if let Err(e) = bayes.train(&raw, spam) {
                    tracing::warn!("spam training failed: {e}");
                    continue;
                }
                if let Some(l) = &logs {
                    let view = keel_filter::message::MessageView::new(&raw, 0);
                    l.spam(&SpamEvent::UserMarked {
                        user: &user,
                        spam,
                        folder: &format!("~{user}/{folder}"),
                        size: raw.len() as u64,
                        from: &view.header("From").unwrap_or_default(),
                        subject: &view.header("Subject").unwrap_or_default(),
                    });
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_mail::JUNK;

    #[test]
    fn training_directions() {
        assert_eq!(training_label("INBOX", JUNK, JUNK), Some(true));
        assert_eq!(training_label("Archive", JUNK, JUNK), Some(true));
        assert_eq!(training_label(JUNK, "INBOX", JUNK), Some(false));
        assert_eq!(training_label(JUNK, "Deleted Items", JUNK), None);
        assert_eq!(training_label(JUNK, JUNK, JUNK), None);
        assert_eq!(training_label("INBOX", "Archive", JUNK), None);
        // A domain that calls it `Spam`.
        assert_eq!(training_label("INBOX", "Spam", "Spam"), Some(true));
        assert_eq!(training_label("Spam", "INBOX", "Spam"), Some(false));
        assert_eq!(training_label("INBOX", JUNK, "Spam"), None);
    }
}
