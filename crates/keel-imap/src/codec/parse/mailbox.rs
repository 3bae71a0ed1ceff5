//! SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, STATUS.

use super::super::command::{CommandBody, QresyncParams, SelectParams};
use super::super::types::{MailboxName, StatusItem};
use super::{Cursor, PResult, syntax};

/// `SP mailbox` for commands whose only argument is a mailbox.
pub(super) fn one_mailbox(c: &mut Cursor<'_>) -> PResult<MailboxName> {
    c.sp()?;
    c.mailbox()
}

/// `SELECT/EXAMINE SP mailbox [select-params]` (RFC 9051 §6.3.2/§6.3.3,
/// RFC 4466 §2.1 `select-params`, RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC).
pub(super) fn select(c: &mut Cursor<'_>, read_only: bool) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let mut params = SelectParams::default();
    if c.eat(b' ') {
        c.open()?;
        loop {
            let name = c.keyword()?;
            match name.as_str() {
                "CONDSTORE" => params.condstore = true,
                "QRESYNC" => {
                    c.sp()?;
                    params.qresync = Some(qresync(c)?);
                }
                _ => return syntax(format!("unknown select parameter {name}")),
            }
            if !c.eat(b' ') {
                break;
            }
        }
        c.close()?;
    }
    Ok(if read_only {
        CommandBody::Examine { mailbox, params }
    } else {
        CommandBody::Select { mailbox, params }
    })
}

/// `"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data]
/// ")"` (RFC 7162 §3.2.5 / §7).
fn qresync(c: &mut Cursor<'_>) -> PResult<QresyncParams> {
    c.open()?;
    let uidvalidity = c.nz_number()?;
    c.sp()?;
    let modseq = c.number64()?;
    if modseq == 0 {
        return syntax("mod-sequence-value must be non-zero");
    }
    let mut known_uids = None;
    let mut seq_match = None;
    if c.eat(b' ') {
        if c.peek() != Some(b'(') {
            known_uids = Some(c.sequence_set()?);
            if c.eat(b' ') {
                seq_match = Some(seq_match_data(c)?);
            }
        } else {
            seq_match = Some(seq_match_data(c)?);
        }
    }
    c.close()?;
    Ok(QresyncParams {
        uidvalidity,
        modseq,
        known_uids,
        seq_match,
    })
}

fn seq_match_data(
    c: &mut Cursor<'_>,
) -> PResult<(
    super::super::types::SequenceSet,
    super::super::types::SequenceSet,
)> {
    c.open()?;
    let seqs = c.sequence_set()?;
    c.sp()?;
    let uids = c.sequence_set()?;
    c.close()?;
    Ok((seqs, uids))
}

/// `CREATE SP mailbox [create-params]` (RFC 9051 §6.3.4; RFC 6154 §3
/// `create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"`).
pub(super) fn create(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let mut special_use = Vec::new();
    if c.eat(b' ') {
        c.open()?;
        loop {
            let name = c.keyword()?;
            if name != "USE" {
                return syntax(format!("unknown CREATE parameter {name}"));
            }
            c.sp()?;
            special_use.extend(c.paren_list0(|c| {
                c.expect(b'\\')?;
                Ok(format!("\\{}", c.atom()?))
            })?);
            if !c.eat(b' ') {
                break;
            }
        }
        c.close()?;
    }
    Ok(CommandBody::Create {
        mailbox,
        special_use,
    })
}

/// `RENAME SP mailbox SP mailbox` (RFC 9051 §6.3.6).
pub(super) fn rename(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let from = one_mailbox(c)?;
    let to = one_mailbox(c)?;
    Ok(CommandBody::Rename { from, to })
}

/// `"(" status-att *(SP status-att) ")"` (RFC 9051 §9).
pub(super) fn status_atts(c: &mut Cursor<'_>) -> PResult<Vec<StatusItem>> {
    c.paren_list(|c| {
        let k = c.keyword()?;
        StatusItem::from_keyword(&k).map_or_else(|| syntax(format!("unknown status item {k}")), Ok)
    })
}

/// `STATUS SP mailbox SP "(" status-att *(SP status-att) ")"` (RFC 9051 §6.3.11).
pub(super) fn status(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    c.sp()?;
    let items = status_atts(c)?;
    Ok(CommandBody::Status { mailbox, items })
}
