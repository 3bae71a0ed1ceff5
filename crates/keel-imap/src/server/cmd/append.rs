//! APPEND (RFC 9051 §6.3.12), MULTIAPPEND (RFC 3502), APPENDUID (RFC 4315 §3),
//! OVERQUOTA (RFC 9208 §4.1), TRYCREATE.

use keel_mail::{MailError, Right, permitted_flags};

use crate::codec::{AppendMessage, Code, Flag, MailboxName, SequenceSet};
use crate::server::cmd::copy::trycreate;
use crate::server::cmd::epoch_of;
use crate::server::{CmdResult, Reply, Session, ok_code};

impl Session {
    pub(crate) async fn append(
        &mut self,
        mailbox: MailboxName,
        messages: Vec<AppendMessage>,
    ) -> CmdResult {
        if messages.iter().any(|m| m.data.is_empty()) {
            return Err(Reply::no("empty message").code(Code::Cannot));
        }
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let now = chrono::Utc::now().timestamp();
        let (validity, uids) = self
            .blocking(move |mb| {
                // RFC 4314 §4 APPEND: `i` on the target; the message counts toward the
                // owner's quota.
                let target = mb.require(&user, &name, Right::Insert)?;
                let folder = target
                    .folder
                    .clone()
                    .ok_or_else(|| MailError::NoSuchFolder {
                        user: user.clone(),
                        name: name.clone(),
                    })?;
                let mut uids = Vec::with_capacity(messages.len());
                for m in &messages {
                    let flags: Vec<String> = m
                        .flags
                        .iter()
                        .filter(|f| **f != Flag::Recent)
                        .map(ToString::to_string)
                        .collect();
                    let date = m.date.as_ref().and_then(epoch_of).unwrap_or(now);
                    // Flags the user may not set are dropped (RFC 4314 §4 APPEND).
                    let flags = permitted_flags(target.rights, &flags);
                    match mb.append(&target.owner, &target.name, &m.data, &flags, date) {
                        Ok((uid, _)) => uids.push(uid),
                        Err(e) => {
                            // RFC 3502 §6: all or nothing.
                            let _ = mb.expunge_discarding(folder.id, &uids);
                            return Err(e);
                        }
                    }
                }
                Ok((folder.uid_validity, uids))
            })
            .await
            .map_err(trycreate)?;
        ok_code(
            Code::AppendUid {
                uidvalidity: validity,
                uids: SequenceSet::from_numbers(&uids),
            },
            "APPEND completed",
        )
    }
}
