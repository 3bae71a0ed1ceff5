//! AUTHENTICATE, LOGIN, ENABLE, ID, COMPRESS.

use super::super::command::CommandBody;
use super::{Cursor, PResult, syntax};

/// `AUTHENTICATE SP auth-type [SP initial-resp]` (RFC 9051 §6.2.2, SASL-IR
/// RFC 4959 §3: `initial-resp = (base64 / "=")`).
pub(super) fn authenticate(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mechanism = c.keyword()?;
    let initial_response = if c.eat(b' ') {
        let raw = c.take_while("initial response", |b| {
            b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
        })?;
        if raw == b"=" {
            Some(Vec::new())
        } else {
            match super::super::base64::decode(raw) {
                Some(d) => Some(d),
                None => return syntax("invalid base64 initial response"),
            }
        }
    } else {
        None
    };
    Ok(CommandBody::Authenticate {
        mechanism,
        initial_response,
    })
}

/// `LOGIN SP userid SP password` (RFC 9051 §6.2.3).
pub(super) fn login(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let username = c.astring()?.into_owned();
    c.sp()?;
    let password = c.astring()?.into_owned();
    Ok(CommandBody::Login { username, password })
}

/// `ENABLE 1*(SP capability)` (RFC 5161 §4).
pub(super) fn enable(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut caps = Vec::new();
    while c.eat(b' ') {
        caps.push(c.keyword()?);
    }
    if caps.is_empty() {
        return syntax("ENABLE needs at least one capability");
    }
    Ok(CommandBody::Enable(caps))
}

/// `ID SP id-params-list`; `id-params-list = "(" *(string SP nstring) ")" /
/// nil` (RFC 2971 §4).
pub(super) fn id(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    if c.eat_keyword("NIL") {
        return Ok(CommandBody::Id(None));
    }
    let pairs = c.paren_list0(|c| {
        let key = String::from_utf8_lossy(&c.string()?).into_owned();
        c.sp()?;
        let value = c
            .nstring()?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok((key, value))
    })?;
    Ok(CommandBody::Id(Some(pairs)))
}

/// `COMPRESS SP algorithm` (RFC 4978 §4).
pub(super) fn compress(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::Compress(c.keyword()?))
}
