//! The ACL extension (RFC 4314 §3): SETACL, DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS.
//! Rights, identifiers and who may administer a folder are keel-mail's (`acl` module).

use crate::codec::{Data, MailboxName};
use crate::server::{CmdResult, Session, ok};

impl Session {
    /// RFC 4314 §3.3 GETACL: needs `a`.
    pub(crate) async fn get_acl(&mut self, mailbox: MailboxName) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let entries = self
            .blocking(move |mb| mb.get_acl(Some(&user), &name))
            .await?;
        self.data(Data::Acl {
            mailbox,
            entries: entries
                .into_iter()
                .map(|(id, r)| (id, r.to_string()))
                .collect(),
        });
        ok("GETACL completed")
    }

    /// RFC 4314 §3.1 SETACL: needs `a`; unknown rights letters are a BAD.
    pub(crate) async fn set_acl(
        &mut self,
        mailbox: MailboxName,
        identifier: String,
        rights: String,
    ) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        self.blocking(move |mb| mb.set_acl(Some(&user), &name, &identifier, &rights))
            .await?;
        ok("SETACL completed")
    }

    /// RFC 4314 §3.2 DELETEACL: needs `a`.
    pub(crate) async fn delete_acl(
        &mut self,
        mailbox: MailboxName,
        identifier: String,
    ) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        self.blocking(move |mb| mb.delete_acl(Some(&user), &name, &identifier))
            .await?;
        ok("DELETEACL completed")
    }

    /// RFC 4314 §3.4 LISTRIGHTS: needs `a`; every right is granted one by one.
    pub(crate) async fn list_rights(
        &mut self,
        mailbox: MailboxName,
        identifier: String,
    ) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let id = identifier.clone();
        let (required, optional) = self
            .blocking(move |mb| mb.list_rights(Some(&user), &name, &id))
            .await?;
        self.data(Data::ListRights {
            mailbox,
            identifier,
            required: required.to_string(),
            optional: optional.iter().map(|r| r.letter().to_string()).collect(),
        });
        ok("LISTRIGHTS completed")
    }

    /// RFC 4314 §3.5 MYRIGHTS: any right on the folder suffices (RFC 4314 §4).
    pub(crate) async fn my_rights(&mut self, mailbox: MailboxName) -> CmdResult {
        let user = self.account().unwrap_or_default();
        let name = mailbox.as_str().to_owned();
        let access = self.blocking(move |mb| mb.access(&user, &name)).await?;
        if access.folder.is_none() {
            return Err(keel_mail::MailError::NoSuchFolder {
                user: access.owner,
                name: access.name,
            }
            .into());
        }
        self.data(Data::MyRights {
            mailbox,
            rights: access.rights.to_string(),
        });
        ok("MYRIGHTS completed")
    }
}
