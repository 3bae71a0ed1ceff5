//! SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182, CONDSTORE
//! RFC 7162 §3.1.5, WITHIN RFC 5032).

use super::super::command::{CommandBody, EntryType, SearchCommand, SearchKey, SearchReturnOption};
use super::super::error::ParseError;
use super::{Cursor, PResult, syntax};

/// `SEARCH [search-return-opts] SP search-program` (RFC 9051 §9).
pub(super) fn search(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let returns = return_opts(c)?;
    let charset = if c.eat_keyword("CHARSET") {
        c.sp()?;
        let cs = charset(c)?;
        c.sp()?;
        Some(cs)
    } else {
        None
    };
    let criteria = keys(c)?;
    Ok(CommandBody::Search(SearchCommand {
        uid,
        returns,
        charset,
        criteria,
    }))
}

/// `"RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")" SP`
/// (RFC 4731 §3.1, RFC 5182 §2), if present.
pub(super) fn return_opts(c: &mut Cursor<'_>) -> PResult<Option<Vec<SearchReturnOption>>> {
    if !c.eat_keyword("RETURN") {
        return Ok(None);
    }
    c.sp()?;
    let opts = c.paren_list0(|c| {
        let k = c.keyword()?;
        Ok(match k.as_str() {
            "MIN" => SearchReturnOption::Min,
            "MAX" => SearchReturnOption::Max,
            "ALL" => SearchReturnOption::All,
            "COUNT" => SearchReturnOption::Count,
            "SAVE" => SearchReturnOption::Save,
            _ => return syntax(format!("unknown search return option {k}")),
        })
    })?;
    c.sp()?;
    Ok(Some(opts))
}

/// `charset = atom / quoted` (RFC 9051 §9), upper-cased.
pub(super) fn charset(c: &mut Cursor<'_>) -> PResult<String> {
    let raw = if c.peek() == Some(b'"') {
        c.quoted()?
    } else {
        c.atom()?.as_bytes().to_vec()
    };
    String::from_utf8(raw)
        .map(|s| s.to_ascii_uppercase())
        .or_else(|_| syntax("invalid charset"))
}

/// `search-key *(SP search-key)`; several keys are an implicit AND.
pub(super) fn keys(c: &mut Cursor<'_>) -> PResult<SearchKey> {
    let mut v = vec![key(c, 0)?];
    while c.eat(b' ') {
        v.push(key(c, 0)?);
    }
    Ok(if v.len() == 1 {
        v.remove(0)
    } else {
        SearchKey::And(v)
    })
}

fn astr(c: &mut Cursor<'_>) -> PResult<Vec<u8>> {
    c.sp()?;
    Ok(c.astring()?.into_owned())
}

/// One `search-key` (RFC 9051 §9, RFC 3501 §9 for NEW/OLD/RECENT/UNSEEN...).
/// `depth` bounds NOT/OR/parenthesis recursion by [`Limits::max_depth`].
fn key(c: &mut Cursor<'_>, depth: usize) -> PResult<SearchKey> {
    if depth >= c.limits.max_depth {
        return Err(ParseError::TooDeep(c.limits.max_depth));
    }
    if c.peek() == Some(b'(') {
        c.open()?;
        let mut v = vec![key(c, depth + 1)?];
        while c.eat(b' ') {
            v.push(key(c, depth + 1)?);
        }
        c.close()?;
        return Ok(SearchKey::And(v));
    }
    if c.at_sequence_set() {
        return Ok(SearchKey::SequenceSet(c.sequence_set()?));
    }
    let k = c.keyword()?;
    use SearchKey as K;
    Ok(match k.as_str() {
        "ALL" => K::All,
        "ANSWERED" => K::Answered,
        "DELETED" => K::Deleted,
        "DRAFT" => K::Draft,
        "FLAGGED" => K::Flagged,
        "NEW" => K::New,
        "OLD" => K::Old,
        "RECENT" => K::Recent,
        "SEEN" => K::Seen,
        "UNANSWERED" => K::Unanswered,
        "UNDELETED" => K::Undeleted,
        "UNDRAFT" => K::Undraft,
        "UNFLAGGED" => K::Unflagged,
        "UNSEEN" => K::Unseen,
        "BCC" => K::Bcc(astr(c)?),
        "BODY" => K::Body(astr(c)?),
        "CC" => K::Cc(astr(c)?),
        "FROM" => K::From(astr(c)?),
        "SUBJECT" => K::Subject(astr(c)?),
        "TEXT" => K::Text(astr(c)?),
        "TO" => K::To(astr(c)?),
        "HEADER" => {
            let name = String::from_utf8(astr(c)?).or_else(|_| syntax("invalid header name"))?;
            K::Header(name, astr(c)?)
        }
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            c.sp()?;
            let d = c.date()?;
            match k.as_str() {
                "BEFORE" => K::Before(d),
                "ON" => K::On(d),
                "SINCE" => K::Since(d),
                "SENTBEFORE" => K::SentBefore(d),
                "SENTON" => K::SentOn(d),
                _ => K::SentSince(d),
            }
        }
        "KEYWORD" | "UNKEYWORD" => {
            c.sp()?;
            // flag-keyword = atom (RFC 9051 §9).
            let kw = c.atom()?.to_string();
            if k == "KEYWORD" {
                K::Keyword(kw)
            } else {
                K::Unkeyword(kw)
            }
        }
        "LARGER" => {
            c.sp()?;
            K::Larger(c.number64()?)
        }
        "SMALLER" => {
            c.sp()?;
            K::Smaller(c.number64()?)
        }
        "UID" => {
            c.sp()?;
            K::Uid(c.sequence_set()?)
        }
        "NOT" => {
            c.sp()?;
            K::Not(Box::new(key(c, depth + 1)?))
        }
        "OR" => {
            c.sp()?;
            let a = key(c, depth + 1)?;
            c.sp()?;
            let b = key(c, depth + 1)?;
            K::Or(Box::new(a), Box::new(b))
        }
        // RFC 5032 §3: OLDER/YOUNGER interval in seconds.
        "OLDER" | "YOUNGER" => {
            c.sp()?;
            let n = c.nz_number()?;
            if k == "OLDER" {
                K::Older(n)
            } else {
                K::Younger(n)
            }
        }
        // RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer.
        "MODSEQ" => {
            c.sp()?;
            let entry = if c.peek() == Some(b'"') {
                let name =
                    String::from_utf8(c.quoted()?).or_else(|_| syntax("invalid entry name"))?;
                c.sp()?;
                let t = match c.keyword()?.as_str() {
                    "PRIV" => EntryType::Private,
                    "SHARED" => EntryType::Shared,
                    "ALL" => EntryType::All,
                    _ => return syntax("invalid entry type"),
                };
                c.sp()?;
                Some((name, t))
            } else {
                None
            };
            K::ModSeq {
                entry,
                modseq: c.number64()?,
            }
        }
        _ => return syntax(format!("unknown search key {k}")),
    })
}
