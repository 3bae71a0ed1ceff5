//! LIST (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
//! SPECIAL-USE RFC 6154) and LSUB (RFC 3501 §6.3.9).

use super::super::command::{CommandBody, ListCommand, ListReturnOption, ListSelectOption};
use super::{Cursor, PResult, mailbox::status_atts, syntax};

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`.
pub(super) fn list(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut cmd = ListCommand::default();
    if c.peek() == Some(b'(') {
        // RFC 5258 §3.1: selection options.
        cmd.select = c.paren_list0(|c| {
            let k = c.keyword()?;
            Ok(match k.as_str() {
                "SUBSCRIBED" => ListSelectOption::Subscribed,
                "REMOTE" => ListSelectOption::Remote,
                "RECURSIVEMATCH" => ListSelectOption::RecursiveMatch,
                "SPECIAL-USE" => ListSelectOption::SpecialUse,
                // RFC 5258 §3.1: unknown selection options MUST be rejected.
                _ => return syntax(format!("unknown LIST selection option {k}")),
            })
        })?;
        // RFC 5258 §3.1: RECURSIVEMATCH alone is an error.
        let base = cmd.select.iter().any(|o| {
            matches!(
                o,
                ListSelectOption::Subscribed | ListSelectOption::SpecialUse
            )
        });
        if cmd.select.contains(&ListSelectOption::RecursiveMatch) && !base {
            return syntax("RECURSIVEMATCH needs another selection option");
        }
        c.sp()?;
    }
    let reference = c.astring()?;
    cmd.reference = c.decode_name(&reference)?;
    c.sp()?;
    cmd.patterns = if c.peek() == Some(b'(') {
        // RFC 5258 §3: several patterns.
        c.paren_list(Cursor::list_mailbox)?
    } else {
        vec![c.list_mailbox()?]
    };
    if c.eat(b' ') {
        if !c.eat_keyword("RETURN") {
            return syntax("expected RETURN");
        }
        c.sp()?;
        cmd.returns = Some(c.paren_list0(|c| {
            let k = c.keyword()?;
            Ok(match k.as_str() {
                "SUBSCRIBED" => ListReturnOption::Subscribed,
                "CHILDREN" => ListReturnOption::Children,
                "SPECIAL-USE" => ListReturnOption::SpecialUse,
                "STATUS" => {
                    c.sp()?;
                    ListReturnOption::Status(status_atts(c)?)
                }
                _ => return syntax(format!("unknown LIST return option {k}")),
            })
        })?);
    }
    Ok(CommandBody::List(cmd))
}

/// `LSUB SP mailbox SP list-mailbox` (RFC 3501 §6.3.9).
pub(super) fn lsub(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let reference = c.astring()?;
    let reference = c.decode_name(&reference)?;
    c.sp()?;
    let pattern = c.list_mailbox()?;
    Ok(CommandBody::Lsub { reference, pattern })
}
