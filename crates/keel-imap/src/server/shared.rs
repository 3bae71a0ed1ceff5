//! Shared and public folders in a session (guide ch. 26, RFC 4314, RFC 2342): SELECT and
//! EXAMINE of another account's folder, and the change-log account of the selected folder.
//!
//! A folder of another account is selected through the ordinary SELECT code (name
//! resolution is `Mailboxes::folder`, which knows the shared namespaces); this wrapper
//! first checks the `r` right (RFC 4314 §4), opens the folder read-only when the user can
//! change nothing in it, reads the **owner's** change-log position, and keeps a
//! [`keel_mail::FollowGuard`] so the owner's notifications wake this session's IDLE.
//! `Session::sync` then reads the owner's change log ([`Session::log_account`]).

use keel_mail::{FollowGuard, MailError, Namespace, Right, Rights, split_name};

use crate::codec::{Code, MailboxName, SelectParams, StatusResponse};
use crate::server::{CmdResult, Reply, Session};

/// The selected folder of another account.
pub(crate) struct SharedSel {
    pub(crate) folder_id: i64,
    pub(crate) owner: String,
    _follow: FollowGuard,
}

impl Session {
    /// The account whose change log describes the selected folder: its owner.
    pub(crate) fn log_account(&self) -> Option<String> {
        match (&self.selected, &self.shared) {
            (Some(sel), Some(sh)) if sh.folder_id == sel.folder_id => Some(sh.owner.clone()),
            _ => self.account(),
        }
    }

    /// The selected folder's owner when it belongs to another account.
    pub(crate) fn shared_selected(&self) -> Option<&SharedSel> {
        match (&self.selected, &self.shared) {
            (Some(sel), Some(sh)) if sh.folder_id == sel.folder_id => Some(sh),
            _ => None,
        }
    }

    /// The user's current rights on the selected folder (every right on their own).
    pub(crate) async fn selected_rights(&self) -> Result<Rights, Reply> {
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        if self.shared_selected().is_none() {
            return Ok(Rights::ALL);
        }
        let user = self.account().unwrap_or_default();
        let id = sel.folder_id;
        self.blocking(move |mb| mb.rights_on_id(&user, id)).await
    }

    /// Fails with `NO [NOPERM]` unless the user holds `right` on the selected folder.
    pub(crate) async fn require_selected(&self, right: Right) -> Result<Rights, Reply> {
        let rights = self.selected_rights().await?;
        if rights.has(right) {
            Ok(rights)
        } else {
            Err(no_perm(right))
        }
    }

    /// SELECT / EXAMINE with the RFC 4314 checks for folders of other accounts.
    pub(crate) async fn select_checked(
        &mut self,
        mailbox: MailboxName,
        params: SelectParams,
        read_only: bool,
    ) -> CmdResult {
        self.shared = None;
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let shared =
            matches!(split_name(&user, &name), Some((_, _, ns)) if ns != Namespace::Personal);
        if !shared {
            return self.select(mailbox, params, read_only).await;
        }
        let u = user.clone();
        let pre = self
            .blocking(move |mb| {
                let a = mb.require(&u, &name, Right::Read)?;
                let folder = a.folder.ok_or(MailError::NoSuchFolder {
                    user: u.clone(),
                    name: name.clone(),
                })?;
                // Before the load in SELECT: racing changes are reported again, harmlessly.
                let top = mb.meta().highest_modseq(&a.owner)?;
                Ok((folder.id, a.owner, a.rights, top))
            })
            .await;
        let (folder_id, owner, rights, top) = match pre {
            Ok(v) => v,
            Err(e) => {
                // RFC 9051 §6.3.2: a failed SELECT still closes the current mailbox.
                if self.selected.take().is_some() {
                    self.send(
                        StatusResponse::ok(None, "previous mailbox closed").with_code(Code::Closed),
                    );
                }
                return Err(e);
            }
        };
        // RFC 4314 §4: without any right to change the folder it opens read-only.
        let r = self
            .select(mailbox, params, read_only || !rights.can_modify())
            .await;
        if r.is_ok()
            && let Some(sel) = &mut self.selected
            && sel.folder_id == folder_id
        {
            sel.seen_modseq = top;
            let follow = self.ctx.mailboxes.follow(&user, &owner);
            self.shared = Some(SharedSel {
                folder_id,
                owner,
                _follow: follow,
            });
        }
        r
    }
}

/// A folder's name in the admin's opened-folders list (guide §24.4): `~owner@domain/Folder`,
/// or for a public folder the name the public namespace shows (`Public Folders/Folder`).
/// `folder` is as `Mailboxes::folder` returns it for `user`: its name is the visible one.
pub(crate) fn open_folder_name(user: &str, folder: &keel_mail::Folder) -> String {
    match split_name(user, &folder.name) {
        Some((_, name, Namespace::Public)) => format!("{}{name}", keel_mail::PUBLIC_PREFIX),
        Some((owner, name, _)) => format!("~{owner}/{name}"),
        None => format!("~{}/{}", folder.account, folder.name),
    }
}

/// `NO [NOPERM]` for a missing right (RFC 4314 §4, RFC 5530 §3).
pub(crate) fn no_perm(right: Right) -> Reply {
    Reply::no(format!(
        "permission denied: the '{}' right is needed",
        right.letter()
    ))
    .code(Code::NoPerm)
}
