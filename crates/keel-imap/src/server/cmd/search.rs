//! SEARCH / UID SEARCH (RFC 9051 §6.4.4), ESEARCH (RFC 4731), SEARCHRES (RFC 5182),
//! MODSEQ (RFC 7162 §3.1.5), OLDER/YOUNGER (RFC 5032).
//!
//! Header, body and text keys match case-insensitively on the decoded message: RFC 2047
//! words in headers and transfer encodings in bodies are decoded by mail-parser.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use keel_mail::{BlobId, Mailboxes, MessageMeta};

use crate::codec::{
    Code, Data, Date, EsearchItem, SearchCommand, SearchKey, SearchReturnOption, SequenceSet,
};
use crate::server::cmd::date_of;
use crate::server::mime;
use crate::server::{CmdResult, Reply, Session, ok};

/// Decoded header fields of a message: (lower-case field name, lower-case decoded value).
type Headers = Arc<[(Box<str>, Box<str>)]>;

/// The decoded body text of a message and its sent date, computed on first use (only
/// BODY, TEXT and SENT* keys need them).
struct Body {
    text: String,
    sent: Option<Date>,
}

struct Candidate<'a> {
    seq: u32,
    meta: &'a MessageMeta,
    /// The raw bytes, read once for headers and body.
    raw: OnceCell<Option<Vec<u8>>>,
    headers: OnceCell<Option<Headers>>,
    body: OnceCell<Option<Body>>,
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

/// The header block of a message (RFC 5322 §2.1: up to the first empty line).
fn header_block(raw: &[u8]) -> &[u8] {
    mime::Part::message(raw).header
}

/// Decodes a header block into [`Headers`].
fn parse_headers(raw: &[u8]) -> Headers {
    mime::fields(header_block(raw))
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_lowercase().into_boxed_str(),
                decode_value(&v).to_lowercase().into_boxed_str(),
            )
        })
        .collect()
}

/// A process-wide, bounded cache of decoded header blocks keyed by blob id. Blobs are
/// immutable and content-addressed, so an entry never goes stale; a header SEARCH over a
/// large folder then reads no message file the second time (as Dovecot's cache file does).
/// When full, a new entry replaces a pseudo-random old one: under repeated scans of a
/// folder larger than the cache, a random victim keeps part of the folder cached, where
/// FIFO or LRU would keep none.
struct HeaderCache {
    map: HashMap<BlobId, (Headers, usize)>,
    /// Keys in slot order, for O(1) random eviction (`swap_remove`).
    keys: Vec<BlobId>,
    bytes: usize,
    seed: u64,
}

/// Memory the header cache may hold (estimated), process-wide.
const HEADER_CACHE_BYTES: usize = 64 << 20;

/// Estimated heap cost of one cache entry.
fn entry_cost(h: &Headers) -> usize {
    // Key (64 hex digits + String), map and slot overhead, one Box<str> pair per field.
    160 + h.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>()
}

fn header_cache() -> &'static Mutex<HeaderCache> {
    static CACHE: OnceLock<Mutex<HeaderCache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(HeaderCache {
            map: HashMap::new(),
            keys: Vec::new(),
            bytes: 0,
            seed: 0x9E37_79B9_7F4A_7C15,
        })
    })
}

impl HeaderCache {
    fn get(&self, id: &BlobId) -> Option<Headers> {
        self.map.get(id).map(|(h, _)| h.clone())
    }

    fn insert(&mut self, id: BlobId, h: Headers) {
        let cost = entry_cost(&h);
        if cost > HEADER_CACHE_BYTES / 16 || self.map.contains_key(&id) {
            return;
        }
        while self.bytes + cost > HEADER_CACHE_BYTES && !self.keys.is_empty() {
            // xorshift64: cheap and good enough to pick a victim.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let slot = usize::try_from(self.seed % self.keys.len() as u64).unwrap_or(0);
            let victim = self.keys.swap_remove(slot);
            if let Some(moved) = self.keys.get(slot)
                && let Some(e) = self.map.get_mut(moved)
            {
                e.1 = slot;
            }
            if let Some((old, _)) = self.map.remove(&victim) {
                self.bytes = self.bytes.saturating_sub(entry_cost(&old));
            }
        }
        self.bytes += cost;
        self.keys.push(id.clone());
        self.map.insert(id, (h, self.keys.len() - 1));
    }
}

fn lock_cache() -> std::sync::MutexGuard<'static, HeaderCache> {
    header_cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn load_body(raw: &[u8]) -> Body {
    // mail-parser recurses per nesting level and aborts the process on thousands of
    // nested parts: only messages within the structural limits reach it; the others are
    // searched as raw text (issue 6, hostile input).
    let within_limits =
        keel_filter::mime::structure(raw, &keel_filter::MessageLimits::default()).is_ok();
    let parsed = if within_limits {
        mail_parser::MessageParser::default().parse(raw)
    } else {
        None
    };
    let mut text = String::new();
    if let Some(m) = &parsed {
        push_texts(m, &mut text);
    }
    if text.is_empty() {
        text = String::from_utf8_lossy(mime::Part::message(raw).body).into_owned();
    }
    let sent = parsed
        .as_ref()
        .and_then(|m| m.date())
        .and_then(|d| Date::new(d.year, d.month, d.day));
    Body {
        text: text.to_lowercase(),
        sent,
    }
}

/// The text and HTML bodies of a message, then each attached message (message/rfc822):
/// its header fields and, recursively, its texts. The body of a message includes what is
/// attached to it (RFC 9051 §6.4.4 BODY, TEXT). The structure check in [`load_body`]
/// bounds the nesting.
fn push_texts(m: &mail_parser::Message<'_>, text: &mut String) {
    for i in 0..m.text_body_count() {
        if let Some(t) = m.body_text(i) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    for i in 0..m.html_body_count() {
        if let Some(t) = m.body_html(i) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    for inner in m.attachments().filter_map(|a| a.message()) {
        for (name, value) in mime::fields(header_block(inner.raw_message())) {
            text.push_str(&name);
            text.push_str(": ");
            text.push_str(&decode_value(&value));
            text.push('\n');
        }
        push_texts(inner, text);
    }
}

/// SEARCH's parsing of one message, header fields and body text (the fuzz hook,
/// [`crate::server::fuzz_message`]); returns a size so nothing is optimised away.
pub(super) fn parse_for_fuzzing(raw: &[u8]) -> usize {
    parse_headers(raw).len() + load_body(raw).text.len()
}

fn needle(v: &[u8]) -> String {
    String::from_utf8_lossy(v).to_lowercase()
}

impl Candidate<'_> {
    fn new(seq: u32, meta: &MessageMeta) -> Candidate<'_> {
        Candidate {
            seq,
            meta,
            raw: OnceCell::new(),
            headers: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    fn raw(&self, ctx: &Ctx<'_>) -> Option<&[u8]> {
        self.raw
            .get_or_init(|| ctx.mb.read(&self.meta.blob).ok())
            .as_deref()
    }

    /// The decoded header fields: from the process-wide cache, else from the header block
    /// of the message (the body is not parsed for header keys).
    fn headers(&self, ctx: &Ctx<'_>) -> Option<&Headers> {
        self.headers
            .get_or_init(|| {
                if let Some(h) = lock_cache().get(&self.meta.blob) {
                    return Some(h);
                }
                let h = parse_headers(self.raw(ctx)?);
                lock_cache().insert(self.meta.blob.clone(), h.clone());
                Some(h)
            })
            .as_ref()
    }

    fn body(&self, ctx: &Ctx<'_>) -> Option<&Body> {
        self.body
            .get_or_init(|| self.raw(ctx).map(load_body))
            .as_ref()
    }

    fn has(&self, flag: &str) -> bool {
        self.meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    fn header(&self, ctx: &Ctx<'_>, name: &str, value: &[u8]) -> bool {
        let n = needle(value);
        let name = name.to_lowercase();
        self.headers(ctx)
            .is_some_and(|h| h.iter().any(|(f, v)| **f == *name && v.contains(&n)))
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
                self.body(ctx).is_some_and(|b| b.text.contains(&n))
            }
            K::Text(v) => {
                let n = needle(v);
                self.headers(ctx).is_some_and(|h| {
                    h.iter()
                        .any(|(f, x)| f.contains(n.as_str()) || x.contains(n.as_str()))
                }) || self.body(ctx).is_some_and(|b| b.text.contains(&n))
            }
            K::Before(d) => date_of(self.meta.internal_date) < *d,
            K::On(d) => date_of(self.meta.internal_date) == *d,
            K::Since(d) => date_of(self.meta.internal_date) >= *d,
            K::SentBefore(d) => self.body(ctx).and_then(|b| b.sent).is_some_and(|s| s < *d),
            K::SentOn(d) => self.body(ctx).and_then(|b| b.sent).is_some_and(|s| s == *d),
            K::SentSince(d) => self.body(ctx).and_then(|b| b.sent).is_some_and(|s| s >= *d),
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
                .filter(|(seq, meta)| Candidate::new(*seq, meta).matches(&key, &ctx))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_nested_beyond_the_limits_is_searched_as_raw_text() {
        let mut m = String::new();
        for _ in 0..10_000 {
            m.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        m.push_str("Subject: deep\r\n\r\nneedle in the body\r\n");
        // Without the structure check mail-parser overflows the stack here.
        let body = load_body(m.as_bytes());
        assert!(body.text.contains("needle in the body"));
    }

    #[test]
    fn body_text_includes_attached_messages() {
        // RFC 9051 §6.4.4: an attached message is part of the outer message's body.
        let m = b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                  Content-Type: text/plain\r\n\r\nsee below\r\n--b\r\n\
                  Content-Type: message/rfc822\r\n\r\nFrom: Frank <f@x.test>\r\n\
                  Subject: =?UTF-8?Q?Caf=C3=A9?=\r\n\r\nmeet at noon\r\n--b--\r\n";
        let body = load_body(m);
        assert!(body.text.contains("see below"), "{}", body.text);
        assert!(body.text.contains("meet at noon"), "{}", body.text);
        assert!(body.text.contains("from: frank"), "{}", body.text);
        assert!(body.text.contains("café"), "{}", body.text);
    }

    fn headers(n: usize) -> Headers {
        (0..n)
            .map(|i| {
                (
                    format!("x-field-{i}").into_boxed_str(),
                    "v".repeat(100).into_boxed_str(),
                )
            })
            .collect()
    }

    #[test]
    fn header_cache_stays_within_its_budget_and_keeps_slots_consistent() {
        let mut c = HeaderCache {
            map: HashMap::new(),
            keys: Vec::new(),
            bytes: 0,
            seed: 1,
        };
        let h = headers(20);
        let cost = entry_cost(&h);
        let fits = HEADER_CACHE_BYTES / cost;
        for i in 0..fits * 2 {
            c.insert(BlobId::of(&i.to_le_bytes()), h.clone());
            assert!(c.bytes <= HEADER_CACHE_BYTES);
        }
        assert_eq!(c.map.len(), fits);
        assert_eq!(c.keys.len(), fits);
        for (slot, k) in c.keys.iter().enumerate() {
            assert_eq!(c.map.get(k).map(|e| e.1), Some(slot), "slot index of {k}");
        }
        assert_eq!(c.bytes, fits * cost);
        // Scanning twice as many blobs as fit still leaves the cache full of hits.
        let last = BlobId::of(&(fits * 2 - 1).to_le_bytes());
        assert!(c.get(&last).is_some());
    }

    #[test]
    fn headers_are_decoded_lower_case_from_the_header_block_only() {
        let raw =
            b"Subject: =?utf-8?q?Caf=C3=A9?= Menu\r\nX-Tag: Alpha\r\n\r\nSubject: not a header\r\n";
        let h = parse_headers(raw);
        let got: Vec<(&str, &str)> = h.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(got, [("subject", "café menu"), ("x-tag", "alpha")]);
    }
}
