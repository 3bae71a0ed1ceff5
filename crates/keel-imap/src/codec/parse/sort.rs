//! SORT and THREAD (RFC 5256 §3; ESORT RFC 5267 §3; DISPLAYFROM/TO RFC 5957).

use super::super::command::{
    CommandBody, SortCommand, SortCriterion, SortKey, ThreadAlgorithm, ThreadCommand,
};
use super::search::{charset, keys, return_opts};
use super::{Cursor, PResult, syntax};

/// `SORT [SP "RETURN" ...] SP sort-criteria SP search-criteria` with
/// `search-criteria = charset 1*(SP search-key)`.
pub(super) fn sort(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let returns = return_opts(c)?;
    let criteria = c.paren_list(|c| {
        let mut reverse = false;
        let mut k = c.keyword()?;
        if k == "REVERSE" {
            reverse = true;
            c.sp()?;
            k = c.keyword()?;
        }
        let key = match k.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return syntax(format!("unknown sort key {k}")),
        };
        Ok(SortCriterion { reverse, key })
    })?;
    c.sp()?;
    let charset = charset(c)?;
    c.sp()?;
    let search = keys(c)?;
    Ok(CommandBody::Sort(SortCommand {
        uid,
        returns,
        criteria,
        charset,
        search,
    }))
}

/// `THREAD SP thread-alg SP search-criteria`.
pub(super) fn thread(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let alg = c.keyword()?;
    let algorithm = match alg.as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        _ => ThreadAlgorithm::Other(alg),
    };
    c.sp()?;
    let charset = charset(c)?;
    c.sp()?;
    let search = keys(c)?;
    Ok(CommandBody::Thread(ThreadCommand {
        uid,
        algorithm,
        charset,
        search,
    }))
}
