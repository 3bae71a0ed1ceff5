//! COPY / UID COPY (RFC 9051 §6.4.7, COPYUID RFC 4315 §3), MOVE / UID MOVE (RFC 6851),
//! EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

use keel_mail::MailError;

use crate::codec::{Code, MailboxName, SequenceSet, StatusResponse};
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
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let (validity, pairs) = self
            .blocking(move |mb| {
                let dest = mb
                    .folder(&user, &name)?
                    .ok_or(MailError::NoSuchFolder { user, name })?;
                let pairs = if mv {
                    mb.move_messages(src, &uids, dest.id)?
                } else {
                    mb.copy(src, &uids, dest.id)?
                };
                Ok((dest.uid_validity, pairs))
            })
            .await
            .map_err(trycreate)?;
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
        let uids: Vec<u32> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed.as_ref().is_none_or(|a| a.contains(i)))
            .filter(|(_, m)| !m.expunged && m.meta.flags.iter().any(|f| f == "\\Deleted"))
            .map(|(_, m)| m.meta.uid)
            .collect();
        let id = sel.folder_id;
        self.blocking(move |mb| mb.expunge(id, &uids)).await?;
        // The untagged EXPUNGE responses come from the sync after the command.
        ok("EXPUNGE completed")
    }
}
