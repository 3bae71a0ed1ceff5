//! SORT / UID SORT (RFC 5256 §3), ESORT `RETURN (...)` (RFC 5267 §3), DISPLAYFROM and
//! DISPLAYTO (RFC 5957), and THREAD / UID THREAD (RFC 5256 §3).
//!
//! # Implementation notes
//!
//! - The search program is evaluated by [`Session::matching`] (the SEARCH code); the sort
//!   and thread keys are read from each hit's header block with mail-parser in the same
//!   blocking call.
//! - Strings compare under `i;ascii-casemap` (RFC 5256 §3): ASCII letters
//!   upper-cased, everything else by octet. DISPLAYFROM/DISPLAYTO use full Unicode
//!   lower-casing as an approximation of `i;unicode-casemap` (RFC 5957 §3).
//! - Equal keys are ordered by sequence number (RFC 5256 §3); REVERSE does not reverse
//!   that tie-break.

use std::cmp::Ordering;

use keel_mail::{Mailboxes, MessageMeta};

use crate::codec::{
    Data, EsearchItem, SearchReturnOption, SequenceSet, SortCommand, SortCriterion, SortKey,
    ThreadAlgorithm, ThreadCommand,
};
use crate::server::cmd::search::{check_charset, uses_modseq};
use crate::server::mime::Part;
use crate::server::subject::base_subject;
use crate::server::threading::{self, ThreadMsg};
use crate::server::{CmdResult, Reply, Session, ok};

/// What SORT and THREAD read from one message's header.
#[derive(Debug, Default, Clone)]
struct HeaderKeys {
    /// Sent date (RFC 5256 §2.2): the Date header in UTC, else INTERNALDATE.
    date: i64,
    /// Decoded Subject.
    subject: String,
    /// `addr-mailbox` of the first From / To / Cc address (RFC 5256 §3), casemapped.
    from: String,
    to: String,
    cc: String,
    /// RFC 5957 §3: the display name of the first address, else its addr-spec.
    display_from: String,
    display_to: String,
    message_id: Option<String>,
    references: Vec<String>,
    in_reply_to: Vec<String>,
}

fn first_addr(a: Option<&mail_parser::Address<'_>>) -> (String, String) {
    let Some(addr) = a.and_then(mail_parser::Address::first) else {
        return (String::new(), String::new());
    };
    let spec = addr.address.as_deref().unwrap_or_default();
    let mailbox = spec.rsplit_once('@').map_or(spec, |(m, _)| m);
    let display = match addr.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => spec.to_owned(),
    };
    (mailbox.to_ascii_uppercase(), display.to_lowercase())
}

fn id_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    v.as_text_list()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

fn header_keys(mb: &Mailboxes, meta: &MessageMeta) -> HeaderKeys {
    match mb.read(&meta.blob) {
        Ok(raw) => keys_of(&raw, meta.internal_date),
        Err(_) => HeaderKeys {
            date: meta.internal_date,
            ..HeaderKeys::default()
        },
    }
}

/// SORT's parsing of one message's header (the fuzz hook,
/// [`crate::server::fuzz_message`]); returns a size so nothing is optimised away.
pub(super) fn parse_for_fuzzing(raw: &[u8]) -> usize {
    let k = keys_of(raw, 0);
    base_subject(&k.subject).key.len() + k.references.len()
}

/// The sort and thread keys of the message `raw`.
fn keys_of(raw: &[u8], internal_date: i64) -> HeaderKeys {
    let mut k = HeaderKeys {
        date: internal_date,
        ..HeaderKeys::default()
    };
    let part = Part::message(raw);
    let Some(m) = mail_parser::MessageParser::default().parse_headers(part.header) else {
        return k;
    };
    if let Some(d) = m.date().filter(|d| d.is_valid()) {
        k.date = d.to_timestamp();
    }
    k.subject = m.subject().unwrap_or_default().to_owned();
    (k.from, k.display_from) = first_addr(m.from());
    (k.to, k.display_to) = first_addr(m.to());
    (k.cc, _) = first_addr(m.cc());
    k.message_id = m.message_id().map(str::to_owned);
    k.references = id_list(m.references());
    k.in_reply_to = id_list(m.in_reply_to());
    k
}

/// One message to sort: sequence number, metadata and header keys.
struct Row {
    seq: u32,
    meta: MessageMeta,
    keys: HeaderKeys,
    subject: String,
}

fn compare(a: &Row, b: &Row, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.meta.internal_date.cmp(&b.meta.internal_date),
            SortKey::Cc => a.keys.cc.cmp(&b.keys.cc),
            SortKey::Date => a.keys.date.cmp(&b.keys.date),
            SortKey::From => a.keys.from.cmp(&b.keys.from),
            SortKey::Size => a.meta.size.cmp(&b.meta.size),
            SortKey::Subject => a.subject.cmp(&b.subject),
            SortKey::To => a.keys.to.cmp(&b.keys.to),
            SortKey::DisplayFrom => a.keys.display_from.cmp(&b.keys.display_from),
            SortKey::DisplayTo => a.keys.display_to.cmp(&b.keys.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    // RFC 5256 §3: exact matches in ascending sequence-number order.
    a.seq.cmp(&b.seq)
}

impl Session {
    /// RFC 5256 §3 SORT / UID SORT.
    pub(crate) async fn sort(&mut self, tag: &str, s: SortCommand) -> CmdResult {
        check_charset(&s.charset)?;
        let modseq_key = uses_modseq(&s.search);
        // ARRIVAL and SIZE come from the metadata; only other keys read the message.
        let headers = s
            .criteria
            .iter()
            .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
        let hits = self
            .matching(&s.search, move |mb, meta| {
                if headers {
                    header_keys(mb, meta)
                } else {
                    HeaderKeys::default()
                }
            })
            .await?;
        let mut rows: Vec<Row> = hits
            .into_iter()
            .map(|h| Row {
                subject: base_subject(&h.extra.subject).key,
                seq: h.seq,
                meta: h.meta,
                keys: h.extra,
            })
            .collect();
        rows.sort_by(|a, b| compare(a, b, &s.criteria));
        let ids: Vec<u32> = rows
            .iter()
            .map(|r| if s.uid { r.meta.uid } else { r.seq })
            .collect();
        // RFC 7162 §3.1.5: a MODSEQ search key adds the highest mod-sequence.
        let top_modseq = modseq_key
            .then(|| rows.iter().map(|r| r.meta.modseq).max())
            .flatten();
        let Some(returns) = s.returns else {
            self.data(Data::Sort {
                ids,
                modseq: top_modseq,
            });
            return ok(if s.uid {
                "UID SORT completed"
            } else {
                "SORT completed"
            });
        };
        // RFC 5267 §3.2: empty RETURN () means ALL.
        let returns = if returns.is_empty() {
            vec![SearchReturnOption::All]
        } else {
            returns
        };
        if returns.contains(&SearchReturnOption::Save) {
            // RFC 5182 §2.4 with RFC 5267: SAVE keeps the matching set (order is lost).
            if let Some(sel) = &mut self.selected {
                sel.saved = Some(rows.iter().map(|r| r.meta.uid).collect());
            }
        }
        let mut items = Vec::new();
        for r in &returns {
            match r {
                // RFC 5267 §3.2: MIN and MAX are the first and last in sort order.
                SearchReturnOption::Min => items.extend(ids.first().map(|n| EsearchItem::Min(*n))),
                SearchReturnOption::Max => items.extend(ids.last().map(|n| EsearchItem::Max(*n))),
                SearchReturnOption::Count => items.push(EsearchItem::Count(ids.len() as u32)),
                // RFC 5267 §3.2: ALL lists the messages in sort order.
                SearchReturnOption::All if !ids.is_empty() => {
                    items.push(EsearchItem::All(SequenceSet::from_ordered(&ids)));
                }
                _ => {}
            }
        }
        if let Some(m) = top_modseq {
            items.push(EsearchItem::ModSeq(m));
        }
        if !returns.iter().all(|r| *r == SearchReturnOption::Save) {
            self.data(Data::Esearch {
                tag: Some(tag.to_owned()),
                uid: s.uid,
                items,
            });
        }
        ok(if s.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }

    /// RFC 5256 §3 THREAD / UID THREAD.
    pub(crate) async fn thread(&mut self, t: ThreadCommand) -> CmdResult {
        let algorithm = match t.algorithm {
            ThreadAlgorithm::OrderedSubject => threading::ordered_subject,
            ThreadAlgorithm::References => threading::references,
            ThreadAlgorithm::Other(name) => {
                return Err(Reply::bad(format!(
                    "unsupported threading algorithm {name}"
                )));
            }
        };
        check_charset(&t.charset)?;
        let hits = self.matching(&t.search, header_keys).await?;
        let msgs: Vec<ThreadMsg> = hits
            .into_iter()
            .map(|h| ThreadMsg {
                id: if t.uid { h.meta.uid } else { h.seq },
                seq: h.seq,
                date: h.extra.date,
                subject: h.extra.subject,
                message_id: h.extra.message_id,
                references: h.extra.references,
                in_reply_to: h.extra.in_reply_to,
            })
            .collect();
        // Threading is CPU work over header data already in memory.
        let threads = tokio::task::spawn_blocking(move || algorithm(&msgs))
            .await
            .map_err(Reply::server)?;
        self.data(Data::Thread(threads));
        ok(if t.uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::SequenceSet;

    #[test]
    fn esort_all_keeps_order() {
        let f = |v: &[u32]| SequenceSet::from_ordered(v).to_string();
        assert_eq!(f(&[1, 2, 3]), "1:3");
        assert_eq!(f(&[5, 4, 3, 9, 1]), "5:3,9,1");
        assert_eq!(f(&[7]), "7");
        assert_eq!(f(&[2, 1, 3, 4]), "2:1,3:4");
        assert_eq!(f(&[]), "");
    }
}
