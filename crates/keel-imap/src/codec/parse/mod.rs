//! Command parsers, one file per command family (RFC 9051 §6 and extensions).
//!
//! The receiver frames a command into text lines and literals
//! ([`CommandParts`]); [`parse_parts`] reads the tag and dispatches on the
//! command name.

mod acl;
mod append;
mod cursor;
mod fetch;
mod list;
mod mailbox;
mod search;
mod session;
mod sort;
mod store;

use cursor::{Cursor, PResult, syntax};
pub(crate) use cursor::{is_astring_char, is_tag_char};

use super::command::{Command, CommandBody};
use super::error::{ParseError, ReceiveError};
use super::limits::Limits;
use super::receiver::{Event, Receiver};

/// A framed command: `lines.len() == literals.len() + 1`; literal `i` follows
/// line `i`, whose text ends with the literal's announcement.
pub(crate) struct CommandParts<'a> {
    pub(crate) lines: &'a [Vec<u8>],
    pub(crate) literals: &'a [Vec<u8>],
}

/// Parses a framed command; on error returns the tag if it could be read.
pub(crate) fn parse_parts(
    parts: &CommandParts<'_>,
    limits: &Limits,
    utf8: bool,
) -> Result<Command, (Option<String>, ParseError)> {
    let mut c = Cursor::new(parts.lines, parts.literals, limits, utf8);
    // RFC 9051 §2.2.1: tag SP command.
    let tag = match c.take_while("tag", is_tag_char) {
        Ok(t) => String::from_utf8_lossy(t).into_owned(),
        Err(_) => return Err((None, ParseError::Syntax("missing or invalid tag".into()))),
    };
    if c.peek() != Some(b' ') {
        return Err((None, ParseError::Syntax("missing or invalid tag".into())));
    }
    c.bump();
    match body(&mut c) {
        Ok(body) => Ok(Command { tag, body }),
        Err(e) => Err((Some(tag), e)),
    }
}

/// Parses one complete command from raw wire bytes (all literals included,
/// continuation requests ignored), with default [`Limits`]. For tests, tools
/// and clients of the codec; a server uses [`Receiver`].
pub fn parse_command(input: &[u8], utf8: bool) -> Result<Command, ReceiveError> {
    let mut rx = Receiver::new(Limits::default());
    rx.set_utf8(utf8);
    rx.feed(input);
    loop {
        match rx.next()? {
            Some(Event::Command(cmd)) => return Ok(cmd),
            Some(_) => {}
            None => {
                return Err(rx.finish().unwrap_or_else(|| {
                    ReceiveError::new(None, super::error::ReceiveErrorKind::UnexpectedEof)
                }));
            }
        }
    }
}

/// RFC 9051 §9 `command`: dispatch on the (case-insensitive) name.
fn body(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let name = c.keyword()?;
    let body = match name.as_str() {
        // RFC 9051 §6.1 command-any
        "CAPABILITY" => CommandBody::Capability,
        "NOOP" => CommandBody::Noop,
        "LOGOUT" => CommandBody::Logout,
        "STARTTLS" => CommandBody::StartTls,
        "AUTHENTICATE" => session::authenticate(c)?,
        "LOGIN" => session::login(c)?,
        "ENABLE" => session::enable(c)?,
        "ID" => session::id(c)?,
        "COMPRESS" => session::compress(c)?,
        "IDLE" => CommandBody::Idle,
        "SELECT" => mailbox::select(c, false)?,
        "EXAMINE" => mailbox::select(c, true)?,
        "CREATE" => mailbox::create(c)?,
        "DELETE" => CommandBody::Delete(mailbox::one_mailbox(c)?),
        "RENAME" => mailbox::rename(c)?,
        "SUBSCRIBE" => CommandBody::Subscribe(mailbox::one_mailbox(c)?),
        "UNSUBSCRIBE" => CommandBody::Unsubscribe(mailbox::one_mailbox(c)?),
        "LIST" => list::list(c)?,
        "LSUB" => list::lsub(c)?,
        "NAMESPACE" => CommandBody::Namespace,
        "STATUS" => mailbox::status(c)?,
        "APPEND" => append::append(c)?,
        "CHECK" => CommandBody::Check,
        "CLOSE" => CommandBody::Close,
        "UNSELECT" => CommandBody::Unselect,
        "EXPUNGE" => CommandBody::Expunge,
        "SEARCH" => search::search(c, false)?,
        "FETCH" => fetch::fetch(c, false)?,
        "STORE" => store::store(c, false)?,
        "COPY" => store::copy(c, false, false)?,
        "MOVE" => store::copy(c, false, true)?,
        "SORT" => sort::sort(c, false)?,
        "THREAD" => sort::thread(c, false)?,
        "UID" => uid(c)?,
        "GETQUOTA" => acl::getquota(c)?,
        "GETQUOTAROOT" => CommandBody::GetQuotaRoot(mailbox::one_mailbox(c)?),
        "SETQUOTA" => acl::setquota(c)?,
        "GETACL" => CommandBody::GetAcl(mailbox::one_mailbox(c)?),
        "SETACL" => acl::setacl(c)?,
        "DELETEACL" => acl::deleteacl(c)?,
        "LISTRIGHTS" => acl::listrights(c)?,
        "MYRIGHTS" => CommandBody::MyRights(mailbox::one_mailbox(c)?),
        _ => return Err(ParseError::UnknownCommand(name)),
    };
    c.end()?;
    Ok(body)
}

/// RFC 9051 §9 `uid` = "UID" SP (copy / move / fetch / search / store /
/// uid-expunge); SORT/THREAD per RFC 5256 §3.
fn uid(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let name = c.keyword()?;
    match name.as_str() {
        "FETCH" => fetch::fetch(c, true),
        "SEARCH" => search::search(c, true),
        "STORE" => store::store(c, true),
        "COPY" => store::copy(c, true, false),
        "MOVE" => store::copy(c, true, true),
        "EXPUNGE" => {
            c.sp()?;
            Ok(CommandBody::UidExpunge(c.sequence_set()?))
        }
        "SORT" => sort::sort(c, true),
        "THREAD" => sort::thread(c, true),
        _ => syntax(format!("unknown UID command {name}")),
    }
}
