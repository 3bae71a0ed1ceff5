//! Mailbox management: CREATE (RFC 9051 §6.3.4, CREATE-SPECIAL-USE RFC 6154 §3), DELETE
//! (§6.3.5), RENAME (§6.3.6), SUBSCRIBE/UNSUBSCRIBE (§6.3.7-8), STATUS (§6.3.11, STATUS=SIZE
//! RFC 8438, HIGHESTMODSEQ RFC 7162 §3.1.6), GETQUOTAROOT/GETQUOTA (RFC 9208 §4.2-4.3).

use keel_mail::{Folder, HIERARCHY_SEPARATOR, MailError, Namespace, Right, SpecialUse, split_name};

use crate::codec::{Code, Data, MailboxName, QuotaResource, StatusItem, StatusValue};
use crate::server::docs;
use crate::server::{CmdResult, Reply, Session, ok};

/// The single quota root: the whole account (RFC 9208 §3.1).
const QUOTA_ROOT: &str = "";

/// Whether a name is in the other users' or the shared namespace (keel-mail `acl`).
fn is_shared_name(user: &str, name: &str) -> bool {
    match split_name(user, name) {
        Some((_, _, ns)) => ns != Namespace::Personal,
        // The namespace roots themselves (`Other Users`, `Public Folders`).
        None => true,
    }
}

impl Session {
    /// RFC 9051 §6.3.4 CREATE. A trailing separator only declares intent (§6.3.4).
    pub(crate) async fn create(
        &mut self,
        mailbox: MailboxName,
        special_use: Vec<String>,
    ) -> CmdResult {
        let name = mailbox
            .as_str()
            .trim_end_matches(HIERARCHY_SEPARATOR)
            .to_owned();
        if mailbox.is_inbox() {
            return Err(Reply::no("INBOX already exists").code(Code::AlreadyExists));
        }
        let mut uses = Vec::new();
        for u in special_use {
            // RFC 6154 §2: `\All` and `\Flagged` are virtual mailboxes not built here.
            match SpecialUse::from_attribute(&u) {
                Some(s) => uses.push(s),
                // RFC 6154 §3: an attribute the server cannot set.
                None => {
                    return Err(
                        Reply::no(format!("cannot create a {u} mailbox")).code(Code::UseAttr)
                    );
                }
            }
        }
        let user = self.account().unwrap_or_default();
        if is_shared_name(&user, &name) {
            // RFC 4314 §4 CREATE: `k` on the parent; the public root needs the
            // public-folder administrator (requirements-2 §26).
            self.blocking(move |mb| mb.create_visible(&user, &name))
                .await?;
            return ok("CREATE completed");
        }
        self.blocking(move |mb| {
            mb.create_folder(&user, &name)?;
            if !uses.is_empty() {
                mb.set_special_use(&user, &name, &uses)?;
            }
            Ok(())
        })
        .await?;
        ok("CREATE completed")
    }

    /// RFC 9051 §6.3.5 DELETE (inferiors are kept; the subscription stays).
    pub(crate) async fn delete(&mut self, mailbox: MailboxName) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        if is_shared_name(&user, &name) {
            // RFC 4314 §4 DELETE: `x` on the folder.
            let n = name.clone();
            self.blocking(move |mb| mb.delete_visible(&user, &n))
                .await?;
            self.log_folder_deleted(&name);
            return ok("DELETE completed");
        }
        let deleted = self
            .blocking(move |mb| {
                // The stored spelling of the name, for the Operations log.
                let shown = mb.folder(&user, &name)?.map(|f| f.name);
                mb.delete_folder(&user, &name)?;
                Ok(shown.unwrap_or(name))
            })
            .await?;
        self.log_folder_deleted(&deleted);
        ok("DELETE completed")
    }

    /// RFC 9051 §6.3.6 RENAME; subscriptions follow the mailbox.
    pub(crate) async fn rename(&mut self, from: MailboxName, to: MailboxName) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let (f, t) = (from.as_str().to_owned(), to.as_str().to_owned());
        if is_shared_name(&user, &f) || is_shared_name(&user, &t) {
            return self.rename_shared(user, f, t).await;
        }
        let (old, new, items) = self
            .blocking(move |mb| {
                // Stored spelling and item count, for the Operations log.
                let before = mb.folder(&user, &f)?;
                mb.rename_folder(&user, &f, &t)?;
                docs::rename_subscriptions(mb, &user, &f, &t)?;
                let new = mb.folder(&user, &t)?.map_or(t, |x| x.name);
                Ok(match before {
                    Some(b) => (b.name, new, u64::from(b.messages)),
                    None => (f, new, 0),
                })
            })
            .await?;
        self.log_folder_moved(&old, &new, items);
        ok("RENAME completed")
    }

    /// RENAME of a folder of another account (RFC 4314 §4: `x` on the old name, `k` on
    /// the new parent), within that account only.
    async fn rename_shared(&mut self, user: String, from: String, to: String) -> CmdResult {
        let (f, t) = (from.clone(), to.clone());
        self.blocking(move |mb| {
            let src = mb.require(&user, &f, Right::DeleteMailbox)?;
            let dst = mb.access(&user, &t)?;
            if dst.owner != src.owner {
                return Err(MailError::InvalidRename {
                    from: f,
                    to: t,
                    reason: "folders cannot move between accounts",
                });
            }
            if dst.folder.is_some() {
                return Err(MailError::FolderExists {
                    user: dst.owner,
                    name: dst.name,
                });
            }
            if !dst.rights.has(Right::CreateMailbox) {
                return Err(MailError::NoPermission {
                    right: Right::CreateMailbox.letter(),
                    name: t,
                });
            }
            mb.rename_folder(&src.owner, &src.name, &dst.name)
        })
        .await?;
        self.log_folder_moved(&from, &to, 0);
        ok("RENAME completed")
    }

    /// RFC 9051 §6.3.7 SUBSCRIBE / §6.3.8 UNSUBSCRIBE.
    pub(crate) async fn subscribe(&mut self, mailbox: MailboxName, on: bool) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        self.blocking(move |mb| {
            if on && mb.folder(&user, &name)?.is_none() {
                return Err(MailError::NoSuchFolder { user, name });
            }
            docs::set_subscribed(mb, &user, &name, on)
        })
        .await?;
        ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        })
    }

    /// The values of STATUS items, from the folder row; SIZE and DELETED read the rows.
    pub(crate) async fn status_values(
        &self,
        f: &Folder,
        items: &[StatusItem],
    ) -> Result<Vec<StatusValue>, Reply> {
        let needs_rows = items
            .iter()
            .any(|i| matches!(i, StatusItem::Size | StatusItem::Deleted));
        let rows = if needs_rows {
            Some(self.load_messages(f.id).await?)
        } else {
            None
        };
        let rows = rows.unwrap_or_default();
        Ok(items
            .iter()
            .map(|item| {
                let value = match item {
                    StatusItem::Messages => u64::from(f.messages),
                    StatusItem::Recent => 0,
                    StatusItem::UidNext => u64::from(f.uid_next),
                    StatusItem::UidValidity => u64::from(f.uid_validity),
                    StatusItem::Unseen => u64::from(f.unseen),
                    StatusItem::Deleted => rows
                        .iter()
                        .filter(|m| m.flags.iter().any(|x| x == "\\Deleted"))
                        .count() as u64,
                    StatusItem::Size => rows.iter().map(|m| m.size).sum(),
                    StatusItem::HighestModSeq => f.highest_modseq.max(1),
                    StatusItem::AppendLimit => self.ctx.limits.max_literal,
                };
                StatusValue {
                    item: item.clone(),
                    value,
                }
            })
            .collect())
    }

    /// RFC 9051 §6.3.11 STATUS.
    pub(crate) async fn status(
        &mut self,
        mailbox: MailboxName,
        items: Vec<StatusItem>,
    ) -> CmdResult {
        if items.contains(&StatusItem::HighestModSeq) {
            self.enabled.condstore = true; // RFC 7162 §3.1: a CONDSTORE-enabling command
        }
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let folder = self
            .blocking(move |mb| {
                // RFC 4314 §4 STATUS: `r`.
                mb.require(&user, &name, Right::Read)?
                    .folder
                    .ok_or(MailError::NoSuchFolder { user, name })
            })
            .await?;
        let values = self.status_values(&folder, &items).await?;
        self.data(Data::Status {
            mailbox,
            items: values,
        });
        ok("STATUS completed")
    }

    async fn quota_resources(&self) -> Result<Vec<QuotaResource>, Reply> {
        let user = self.account().unwrap_or_default();
        let (quota, usage) = self
            .blocking(move |mb| {
                let q = mb
                    .directory()
                    .get_user(&user)
                    .map_err(MailError::from)?
                    .quota;
                Ok((q, mb.usage(&user)?))
            })
            .await?;
        let mut out = Vec::new();
        // RFC 9208 §5.1: STORAGE in units of 1024 octets; unlimited resources are omitted.
        if quota.bytes > 0 {
            out.push(QuotaResource {
                name: "STORAGE".into(),
                usage: usage.bytes.div_ceil(1024),
                limit: quota.bytes / 1024,
            });
        }
        if quota.messages > 0 {
            out.push(QuotaResource {
                name: "MESSAGE".into(),
                usage: usage.messages,
                limit: quota.messages,
            });
        }
        Ok(out)
    }

    /// RFC 9208 §4.3 GETQUOTAROOT.
    pub(crate) async fn get_quota_root(&mut self, mailbox: MailboxName) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        self.blocking(move |mb| {
            mb.folder(&user, &name)?
                .ok_or(MailError::NoSuchFolder { user, name })
        })
        .await?;
        let resources = self.quota_resources().await?;
        let roots = if resources.is_empty() {
            Vec::new()
        } else {
            vec![QUOTA_ROOT.to_owned()]
        };
        self.data(Data::QuotaRoot { mailbox, roots });
        if !resources.is_empty() {
            self.data(Data::Quota {
                root: QUOTA_ROOT.into(),
                resources,
            });
        }
        ok("GETQUOTAROOT completed")
    }

    /// RFC 9208 §4.2 GETQUOTA.
    pub(crate) async fn get_quota(&mut self, root: String) -> CmdResult {
        let resources = self.quota_resources().await?;
        if root != QUOTA_ROOT || resources.is_empty() {
            return Err(Reply::no("no such quota root").code(Code::NonExistent));
        }
        self.data(Data::Quota { root, resources });
        ok("GETQUOTA completed")
    }
}
