//! SEARCH / UID SEARCH (RFC 9051 §6.4.4), ESEARCH (RFC 4731), SEARCHRES (RFC 5182),
//! MODSEQ (RFC 7162 §3.1.5), OLDER/YOUNGER (RFC 5032).
//!
//! Header, body and text keys match case-insensitively on the decoded message: RFC 2047
//! words in headers and transfer encodings in bodies are decoded by mail-parser.

use std::cell::OnceCell;

use keel_mail::{Mailboxes, MessageMeta};

use crate::codec::{
    Code, Data, Date, EsearchItem, SearchCommand, SearchKey, SearchReturnOption, SequenceSet,
};
use crate::server::cmd::date_of;
use crate::server::mime;
use crate::server::{CmdResult, Reply, Session, ok};

/// The decoded text of a message, computed on first use.
struct Content {
    /// (lower-case field name, lower-case decoded value)
    headers: Vec<(String, String)>,
    body: String,
    sent: Option<Date>,
}

struct Candidate<'a> {
    seq: u32,
    meta: &'a MessageMeta,
    content: OnceCell<Option<Content>>,
}

struct Ctx<'a> {
    mb: &'a Mailboxes,
    largest_seq: u32,
    largest_uid: u32,
    saved: &'a [u32],
    now: i64,
}

fn decode_value(value: &[u8]) -> String {
    let raw = String::from_utf8_lossy(value);
    if raw.contains("=?") {
        // RFC 2047 words: let mail-parser decode them as an unstructured field.
        let fake = format!("Subject: {raw}\r\n\r\n");
        if let Some(s) = mail_parser::MessageParser::default()
            .parse_headers(fake.as_bytes())
            .and_then(|m| m.subject().map(str::to_owned))
        {
            return s;
        }
    }
    raw.into_owned()
}

fn load(mb: &Mailboxes, meta: &MessageMeta) -> Option<Content> {
    let raw = mb.read(&meta.blob).ok()?;
    let part = mime::Part::message(&raw);
    let headers = mime::fields(part.header)
        .into_iter()
        .map(|(n, v)| (n.to_lowercase(), decode_value(&v).to_lowercase()))
        .collect();
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let mut body = String::new();
    if let Some(m) = &parsed {
        for i in 0..m.text_body_count() {
            if let Some(t) = m.body_text(i) {
                body.push_str(&t);
                body.push('\n');
            }
        }
        for i in 0..m.html_body_count() {
            if let Some(t) = m.body_html(i) {
                body.push_str(&t);
                body.push('\n');
            }
        }
    }
    if body.is_empty() {
        body = String::from_utf8_lossy(part.body).into_owned();
    }
    let sent = parsed
        .as_ref()
        .and_then(|m| m.date())
        .and_then(|d| Date::new(d.year, d.month, d.day));
    Some(Content {
        headers,
        body: body.to_lowercase(),
        sent,
    })
}

fn needle(v: &[u8]) -> String {
    String::from_utf8_lossy(v).to_lowercase()
}

impl Candidate<'_> {
    fn content(&self, ctx: &Ctx<'_>) -> Option<&Content> {
        self.content
            .get_or_init(|| load(ctx.mb, self.meta))
            .as_ref()
    }

    fn has(&self, flag: &str) -> bool {
        self.meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    fn header(&self, ctx: &Ctx<'_>, name: &str, value: &[u8]) -> bool {
        let n = needle(value);
        let name = name.to_lowercase();
        self.content(ctx)
            .is_some_and(|c| c.headers.iter().any(|(h, v)| *h == name && v.contains(&n)))
    }

    fn matches(&self, key: &SearchKey, ctx: &Ctx<'_>) -> bool {
        use SearchKey as K;
        match key {
            K::And(keys) => keys.iter().all(|k| self.matches(k, ctx)),
            K::Or(a, b) => self.matches(a, ctx) || self.matches(b, ctx),
            K::Not(k) => !self.matches(k, ctx),
            K::All => true,
            K::Answered => self.has("\\Answered"),
            K::Deleted => self.has("\\Deleted"),
            K::Draft => self.has("\\Draft"),
            K::Flagged => self.has("\\Flagged"),
            K::Seen => self.has("\\Seen"),
            K::Unanswered => !self.has("\\Answered"),
            K::Undeleted => !self.has("\\Deleted"),
            K::Undraft => !self.has("\\Draft"),
            K::Unflagged => !self.has("\\Flagged"),
            K::Unseen => !self.has("\\Seen"),
            K::Keyword(k) => self.has(k),
            K::Unkeyword(k) => !self.has(k),
            // \Recent is not kept (RFC 9051 removed it): nothing is recent or new.
            K::Recent | K::New => false,
            K::Old => true,
            K::Bcc(v) => self.header(ctx, "bcc", v),
            K::Cc(v) => self.header(ctx, "cc", v),
            K::From(v) => self.header(ctx, "from", v),
            K::To(v) => self.header(ctx, "to", v),
            K::Subject(v) => self.header(ctx, "subject", v),
            K::Header(name, v) => self.header(ctx, name, v),
            K::Body(v) => {
                let n = needle(v);
                self.content(ctx).is_some_and(|c| c.body.contains(&n))
            }
            K::Text(v) => {
                let n = needle(v);
                self.content(ctx).is_some_and(|c| {
                    c.body.contains(&n)
                        || c.headers
                            .iter()
                            .any(|(h, x)| h.contains(&n) || x.contains(&n))
                })
            }
            K::Before(d) => date_of(self.meta.internal_date) < *d,
            K::On(d) => date_of(self.meta.internal_date) == *d,
            K::Since(d) => date_of(self.meta.internal_date) >= *d,
            K::SentBefore(d) => self
                .content(ctx)
                .and_then(|c| c.sent)
                .is_some_and(|s| s < *d),
            K::SentOn(d) => self
                .content(ctx)
                .and_then(|c| c.sent)
                .is_some_and(|s| s == *d),
            K::SentSince(d) => self
                .content(ctx)
                .and_then(|c| c.sent)
                .is_some_and(|s| s >= *d),
            K::Larger(n) => self.meta.size > *n,
            K::Smaller(n) => self.meta.size < *n,
            K::Older(s) => ctx.now - self.meta.internal_date >= i64::from(*s),
            K::Younger(s) => ctx.now - self.meta.internal_date <= i64::from(*s),
            K::ModSeq { modseq, .. } => self.meta.modseq >= *modseq,
            K::Uid(set) => {
                set.contains(self.meta.uid, ctx.largest_uid)
                    || (set.uses_saved() && ctx.saved.contains(&self.meta.uid))
            }
            K::SequenceSet(set) => {
                set.contains(self.seq, ctx.largest_seq)
                    || (set.uses_saved() && ctx.saved.contains(&self.meta.uid))
            }
        }
    }
}

pub(crate) fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq { .. } => true,
        SearchKey::And(v) => v.iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(k) => uses_modseq(k),
        _ => false,
    }
}

/// RFC 9051 §6.4.4, RFC 5256 §3: US-ASCII and UTF-8 must be supported; anything else is
/// `NO [BADCHARSET (UTF-8 US-ASCII)]`.
pub(crate) fn check_charset(cs: &str) -> Result<(), Reply> {
    if cs == "UTF-8" || cs == "US-ASCII" {
        return Ok(());
    }
    Err(Reply::no("unsupported charset")
        .code(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])))
}

/// A message that matched a search program, with what the caller derived from it.
pub(crate) struct Hit<T> {
    pub(crate) seq: u32,
    pub(crate) meta: MessageMeta,
    pub(crate) extra: T,
}

impl Session {
    /// The selected folder's messages that match `key` (SEARCH, SORT, THREAD), in sequence
    /// order; `extra` runs on each hit in the same blocking call (for sort keys).
    pub(crate) async fn matching<T: Send + 'static>(
        &mut self,
        key: &SearchKey,
        extra: impl Fn(&Mailboxes, &MessageMeta) -> T + Send + 'static,
    ) -> Result<Vec<Hit<T>>, Reply> {
        if uses_modseq(key) {
            self.enabled.condstore = true;
        }
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        let metas: Vec<(u32, MessageMeta)> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.expunged)
            .map(|(i, m)| ((i + 1) as u32, m.meta.clone()))
            .collect();
        let largest_seq = sel.exists();
        let largest_uid = sel.max_uid();
        let saved = sel.saved.clone().unwrap_or_default();
        let key = key.clone();
        let now = chrono::Utc::now().timestamp();
        self.blocking(move |mb| {
            let ctx = Ctx {
                mb,
                largest_seq,
                largest_uid,
                saved: &saved,
                now,
            };
            Ok(metas
                .into_iter()
                .filter(|(seq, meta)| {
                    Candidate {
                        seq: *seq,
                        meta,
                        content: OnceCell::new(),
                    }
                    .matches(&key, &ctx)
                })
                .map(|(seq, meta)| {
                    let extra = extra(mb, &meta);
                    Hit { seq, meta, extra }
                })
                .collect())
        })
        .await
    }

    pub(crate) async fn search(&mut self, tag: &str, s: SearchCommand) -> CmdResult {
        if let Some(cs) = &s.charset {
            check_charset(cs)?;
        }
        let modseq_key = uses_modseq(&s.criteria);
        let hits: Vec<(u32, u32, u64)> = self
            .matching(&s.criteria, |_, _| ())
            .await?
            .into_iter()
            .map(|h| (h.seq, h.meta.uid, h.meta.modseq))
            .collect();
        let ids: Vec<u32> = hits.iter().map(|h| if s.uid { h.1 } else { h.0 }).collect();
        let top_modseq = modseq_key.then(|| hits.iter().map(|h| h.2).max()).flatten();
        let returns = match (&s.returns, self.enabled.rev2) {
            (Some(r), _) if r.is_empty() => Some(vec![SearchReturnOption::All]),
            (Some(r), _) => Some(r.clone()),
            // RFC 9051 §6.4.4: IMAP4rev2 answers ESEARCH.
            (None, true) => Some(vec![SearchReturnOption::All]),
            (None, false) => None,
        };
        let Some(returns) = returns else {
            self.data(Data::Search {
                ids,
                modseq: top_modseq,
            });
            return ok("SEARCH completed");
        };
        if returns.contains(&SearchReturnOption::Save)
            && let Some(sel) = &mut self.selected
        {
            sel.saved = Some(hits.iter().map(|h| h.1).collect());
        }
        let mut items = Vec::new();
        for r in &returns {
            match r {
                SearchReturnOption::Min => {
                    items.extend(ids.iter().min().map(|n| EsearchItem::Min(*n)))
                }
                SearchReturnOption::Max => {
                    items.extend(ids.iter().max().map(|n| EsearchItem::Max(*n)))
                }
                SearchReturnOption::Count => items.push(EsearchItem::Count(ids.len() as u32)),
                SearchReturnOption::All if !ids.is_empty() => {
                    items.push(EsearchItem::All(SequenceSet::from_numbers(&ids)));
                }
                _ => {}
            }
        }
        if let Some(m) = top_modseq {
            items.push(EsearchItem::ModSeq(m));
        }
        // RFC 5182 §2.4: SAVE alone produces no ESEARCH response.
        if !(returns.iter().all(|r| *r == SearchReturnOption::Save)) {
            self.data(Data::Esearch {
                tag: Some(tag.to_owned()),
                uid: s.uid,
                items,
            });
        }
        ok("SEARCH completed")
    }
}
