//! SELECT / EXAMINE (RFC 9051 §6.3.2-3, CONDSTORE/QRESYNC RFC 7162 §3.1.8, §3.2.5),
//! CLOSE (§6.4.1) and UNSELECT (RFC 3691).

use keel_mail::{ChangeKind, MailError};

use crate::codec::{
    Code, Data, FetchItem, Flag, ListData, MailboxName, SelectParams, SequenceSet, StatusResponse,
};
use crate::server::oplog;
use crate::server::selected::{Msg, Selected, wire_flags};
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
        let (folder, rows, top) = self
            .blocking(move |mb| {
                // The log position first: changes racing with the load are reported again,
                // and the snapshot diff makes that harmless.
                let top = mb.meta().highest_modseq(&user)?;
                let folder = mb
                    .folder(&user, &name)?
                    .ok_or(MailError::NoSuchFolder { user, name })?;
                let rows = mb.messages(folder.id)?;
                Ok((folder, rows, top))
            })
            .await?;
        let first_unseen = rows
            .iter()
            .position(|m| !m.flags.iter().any(|f| f == "\\Seen"));
        let mut sel = Selected {
            folder_id: folder.id,
            read_only,
            msgs: rows
                .into_iter()
                .map(|meta| Msg {
                    meta,
                    expunged: false,
                })
                .collect(),
            seen_modseq: top,
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
            // RFC 7162 §3.2.5.1: what changed since the client's modseq.
            let account = self.account().unwrap_or_default();
            let since = q.modseq;
            let changes = self
                .blocking(move |mb| Ok(mb.meta().changes_since(&account, since)?))
                .await?;
            let known = q.known_uids.clone();
            let max = sel.max_uid();
            let present: std::collections::HashSet<u32> =
                sel.msgs.iter().map(|m| m.meta.uid).collect();
            let vanished: Vec<u32> = changes
                .iter()
                .filter(|c| c.folder == folder.id && c.kind == ChangeKind::MessageExpunged)
                .map(|c| c.uid)
                .filter(|u| !present.contains(u))
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
