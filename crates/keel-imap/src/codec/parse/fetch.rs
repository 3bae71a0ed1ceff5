//! FETCH (RFC 9051 §6.4.5, BINARY RFC 3516 §4.2, CONDSTORE/QRESYNC RFC 7162).

use super::super::command::{
    CommandBody, FetchAttribute, FetchAttributes, FetchCommand, FetchMacro, Partial,
};
use super::super::types::{PartPath, Section, SectionText};
use super::{Cursor, PResult, syntax};

/// `FETCH SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att / "("
/// fetch-att *(SP fetch-att) ")") [fetch-modifiers]`.
pub(super) fn fetch(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let attributes = if c.peek() == Some(b'(') {
        FetchAttributes::List(c.paren_list(attribute)?)
    } else if c.eat_keyword("ALL") {
        FetchAttributes::Macro(FetchMacro::All)
    } else if c.eat_keyword("FAST") {
        FetchAttributes::Macro(FetchMacro::Fast)
    } else if c.eat_keyword("FULL") {
        FetchAttributes::Macro(FetchMacro::Full)
    } else {
        FetchAttributes::List(vec![attribute(c)?])
    };
    let mut changed_since = None;
    let mut vanished = false;
    if c.eat(b' ') {
        // RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.1, §3.2.6.
        c.paren_list(|c| {
            let k = c.keyword()?;
            match k.as_str() {
                "CHANGEDSINCE" => {
                    c.sp()?;
                    changed_since = Some(c.number64()?);
                }
                "VANISHED" => vanished = true,
                _ => return syntax(format!("unknown FETCH modifier {k}")),
            }
            Ok(())
        })?;
    }
    // RFC 7162 §3.2.6: VANISHED only in UID FETCH with CHANGEDSINCE.
    if vanished && (!uid || changed_since.is_none()) {
        return syntax("VANISHED needs UID FETCH and CHANGEDSINCE");
    }
    Ok(CommandBody::Fetch(FetchCommand {
        uid,
        set,
        attributes,
        changed_since,
        vanished,
    }))
}

/// One `fetch-att` (RFC 9051 §9).
fn attribute(c: &mut Cursor<'_>) -> PResult<FetchAttribute> {
    let name = c.name()?;
    use FetchAttribute as A;
    Ok(match name.as_str() {
        "ENVELOPE" => A::Envelope,
        "FLAGS" => A::Flags,
        "INTERNALDATE" => A::InternalDate,
        "RFC822" => A::Rfc822,
        "RFC822.HEADER" => A::Rfc822Header,
        "RFC822.SIZE" => A::Rfc822Size,
        "RFC822.TEXT" => A::Rfc822Text,
        "BODYSTRUCTURE" => A::BodyStructure,
        "UID" => A::Uid,
        "MODSEQ" => A::ModSeq,
        "BODY" if c.peek() != Some(b'[') => A::Body,
        "BODY" | "BODY.PEEK" => {
            let section = section(c)?;
            A::BodySection {
                peek: name == "BODY.PEEK",
                section,
                partial: partial(c)?,
            }
        }
        "BINARY" | "BINARY.PEEK" => {
            let part = section_binary(c)?;
            A::Binary {
                peek: name == "BINARY.PEEK",
                part,
                partial: partial(c)?,
            }
        }
        "BINARY.SIZE" => A::BinarySize(section_binary(c)?),
        _ => return syntax(format!("unknown FETCH attribute {name}")),
    })
}

/// `section-part = nz-number *("." nz-number)`.
fn section_part(c: &mut Cursor<'_>) -> PResult<PartPath> {
    let mut part = vec![c.nz_number()?];
    while c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
        c.bump();
        part.push(c.nz_number()?);
    }
    Ok(part)
}

/// `section = "[" [section-spec] "]"`; `section-spec = section-msgtext /
/// (section-part ["." section-text])`.
pub(super) fn section(c: &mut Cursor<'_>) -> PResult<Section> {
    c.expect(b'[')?;
    let mut s = Section::default();
    if c.eat(b']') {
        return Ok(s);
    }
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        s.part = section_part(c)?;
        if !c.eat(b'.') {
            c.expect(b']')?;
            return Ok(s);
        }
    }
    let name = c.name()?;
    s.text = Some(match name.as_str() {
        "HEADER" => SectionText::Header,
        "TEXT" => SectionText::Text,
        // MIME only after a part number (RFC 9051 §6.4.5).
        "MIME" if !s.part.is_empty() => SectionText::Mime,
        "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
            c.sp()?;
            let names = c.paren_list(|c| c.astring_utf8())?;
            if name == "HEADER.FIELDS" {
                SectionText::HeaderFields(names)
            } else {
                SectionText::HeaderFieldsNot(names)
            }
        }
        _ => return syntax(format!("invalid section {name}")),
    });
    c.expect(b']')?;
    Ok(s)
}

/// `section-binary = "[" [section-part] "]"` (RFC 3516 §6, RFC 9051 §9).
fn section_binary(c: &mut Cursor<'_>) -> PResult<PartPath> {
    c.expect(b'[')?;
    let part = if c.peek() == Some(b']') {
        Vec::new()
    } else {
        section_part(c)?
    };
    c.expect(b']')?;
    Ok(part)
}

/// `partial = "<" number64 "." nz-number64 ">"` (RFC 9051 §9).
fn partial(c: &mut Cursor<'_>) -> PResult<Option<Partial>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let origin = c.number64()?;
    c.expect(b'.')?;
    let count = c.number64()?;
    if count == 0 {
        return syntax("partial length must be non-zero");
    }
    c.expect(b'>')?;
    Ok(Some(Partial { origin, count }))
}
