//! STORE, COPY, MOVE (RFC 9051 §6.4.6-§6.4.8, RFC 6851, UNCHANGEDSINCE RFC 7162 §3.1.3).

use super::super::command::{CommandBody, StoreCommand, StoreOperation};
use super::{Cursor, PResult, syntax};

/// `STORE SP sequence-set [store-modifiers] SP store-att-flags`;
/// `store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list /
/// (flag *(SP flag)))`.
pub(super) fn store(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mut unchanged_since = None;
    if c.peek() == Some(b'(') {
        // RFC 4466 §2.5 store-modifiers; RFC 7162 §3.1.3 UNCHANGEDSINCE.
        c.paren_list(|c| {
            let k = c.keyword()?;
            if k != "UNCHANGEDSINCE" {
                return syntax(format!("unknown STORE modifier {k}"));
            }
            c.sp()?;
            unchanged_since = Some(c.number64()?);
            Ok(())
        })?;
        c.sp()?;
    }
    let operation = if c.eat(b'+') {
        StoreOperation::Add
    } else if c.eat(b'-') {
        StoreOperation::Remove
    } else {
        StoreOperation::Replace
    };
    let silent = match c.name()?.as_str() {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        other => return syntax(format!("unknown store item {other}")),
    };
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        c.flag_list()?
    } else {
        let mut v = vec![c.flag()?];
        while c.eat(b' ') {
            v.push(c.flag()?);
        }
        v
    };
    Ok(CommandBody::Store(StoreCommand {
        uid,
        set,
        operation,
        silent,
        flags,
        unchanged_since,
    }))
}

/// `COPY/MOVE SP sequence-set SP mailbox`.
pub(super) fn copy(c: &mut Cursor<'_>, uid: bool, is_move: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mailbox = c.mailbox()?;
    Ok(if is_move {
        CommandBody::Move { uid, set, mailbox }
    } else {
        CommandBody::Copy { uid, set, mailbox }
    })
}
