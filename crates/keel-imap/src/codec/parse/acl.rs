//! ACL (RFC 4314 §3) and QUOTA (RFC 9208 §4) commands.

use super::super::command::CommandBody;
use super::{Cursor, PResult, mailbox::one_mailbox};

fn identifier(c: &mut Cursor<'_>) -> PResult<String> {
    c.sp()?;
    c.astring_utf8()
}

/// `SETACL SP mailbox SP identifier SP mod-rights` (RFC 4314 §3.1, §5).
pub(super) fn setacl(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let identifier = identifier(c)?;
    c.sp()?;
    let rights = c.astring_utf8()?;
    Ok(CommandBody::SetAcl {
        mailbox,
        identifier,
        rights,
    })
}

/// `DELETEACL SP mailbox SP identifier` (RFC 4314 §3.2).
pub(super) fn deleteacl(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let identifier = identifier(c)?;
    Ok(CommandBody::DeleteAcl {
        mailbox,
        identifier,
    })
}

/// `LISTRIGHTS SP mailbox SP identifier` (RFC 4314 §3.4).
pub(super) fn listrights(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let identifier = identifier(c)?;
    Ok(CommandBody::ListRights {
        mailbox,
        identifier,
    })
}

/// `GETQUOTA SP quota-root-name` (RFC 9208 §4.2, root is an astring).
pub(super) fn getquota(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::GetQuota(c.astring_utf8()?))
}

/// `SETQUOTA SP quota-root-name SP setquota-list`; `setquota-list = "("
/// [setquota-resource *(SP setquota-resource)] ")"`; `setquota-resource =
/// resource-name SP resource-limit` (RFC 9208 §4.4, §9).
pub(super) fn setquota(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let root = c.astring_utf8()?;
    c.sp()?;
    let limits = c.paren_list0(|c| {
        let name = c.keyword()?;
        c.sp()?;
        Ok((name, c.number64()?))
    })?;
    Ok(CommandBody::SetQuota { root, limits })
}
