//! APPEND (RFC 9051 §6.3.12, MULTIAPPEND RFC 3502, BINARY RFC 3516 §4.4,
//! UTF8=ACCEPT RFC 6855 §4).

use super::super::command::{AppendDataKind, AppendMessage, CommandBody};
use super::{Cursor, PResult, mailbox::one_mailbox, syntax};

/// `APPEND SP mailbox 1*append-message`; `append-message = [SP flag-list]
/// [SP date-time] SP append-data` (RFC 3502 §6, RFC 4466 §2.3);
/// `append-data = literal / literal8 / "UTF8" SP "(" literal8 ")"`.
pub(super) fn append(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = one_mailbox(c)?;
    let mut messages = Vec::new();
    loop {
        c.sp()?;
        let flags = if c.peek() == Some(b'(') {
            let f = c.flag_list()?;
            c.sp()?;
            f
        } else {
            Vec::new()
        };
        let date = if c.peek() == Some(b'"') {
            let d = c.date_time()?;
            c.sp()?;
            Some(d)
        } else {
            None
        };
        let (data, kind) = if c.eat_keyword("UTF8") {
            c.sp()?;
            c.open()?;
            let lit = c.literal()?;
            if !lit.binary {
                return syntax("UTF8 append data must be a literal8");
            }
            c.close()?;
            (lit.data.to_vec(), AppendDataKind::Utf8)
        } else {
            match c.peek() {
                Some(b'{' | b'~') => {
                    let lit = c.literal()?;
                    let kind = if lit.binary {
                        AppendDataKind::Binary
                    } else {
                        AppendDataKind::Literal
                    };
                    (lit.data.to_vec(), kind)
                }
                _ => return syntax("expected message literal"),
            }
        };
        messages.push(AppendMessage {
            flags,
            date,
            data,
            kind,
        });
        if c.at_end() {
            break;
        }
    }
    Ok(CommandBody::Append { mailbox, messages })
}
