//! The MIME structure of a stored message, as IMAP sees it: header and body byte ranges of
//! every part, ENVELOPE, BODYSTRUCTURE and `BODY[section]` extraction (RFC 9051 §6.4.5,
//! §7.5.2; RFC 2045, RFC 2046).
//!
//! # Implementation notes
//!
//! - The part tree is computed here from the raw bytes, not taken from mail-parser's part
//!   offsets: IMAP sizes and line counts must be exact per RFC 9051 §7.5.2 ("size of the
//!   body in octets ... in its transfer encoding"), and a body part ends before the CRLF
//!   that precedes its boundary delimiter (RFC 2046 §5.1.1). mail-parser parses header
//!   *values* (addresses, RFC 2047 words) and decodes bodies for SEARCH.
//! - Never panics on peer data: every slice goes through `get`.
//! - Nesting is limited to [`MAX_DEPTH`]; deeper parts are treated as opaque.

use crate::codec::{
    Address, BodyStructure, Disposition, Envelope, MultiPartExt, Section, SectionText, SinglePart,
    SinglePartExt, SinglePartKind,
};

/// Deepest multipart / message nesting parsed.
pub(crate) const MAX_DEPTH: usize = 20;

/// One MIME entity: its header block (blank line included) and its body.
#[derive(Debug)]
pub(crate) struct Part<'a> {
    pub(crate) header: &'a [u8],
    pub(crate) body: &'a [u8],
    pub(crate) ctype: String,
    pub(crate) subtype: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) children: Vec<Part<'a>>,
    /// The enclosed message of a `message/rfc822` (or `message/global`) part.
    pub(crate) message: Option<Box<Part<'a>>>,
}

/// Splits a header block from its body (RFC 5322 §2.1: the first empty line).
fn split_header(raw: &[u8]) -> (&[u8], &[u8]) {
    // An entity that starts with an empty line has an empty header.
    if raw.starts_with(b"\r\n") {
        return (
            raw.get(..2).unwrap_or_default(),
            raw.get(2..).unwrap_or_default(),
        );
    }
    if raw.starts_with(b"\n") {
        return (
            raw.get(..1).unwrap_or_default(),
            raw.get(1..).unwrap_or_default(),
        );
    }
    let mut i = 0;
    while let Some(off) = raw
        .get(i..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        let nl = i + off;
        let next = nl + 1;
        match raw.get(next..) {
            Some(rest) if rest.starts_with(b"\r\n") => {
                return (
                    raw.get(..next + 2).unwrap_or_default(),
                    raw.get(next + 2..).unwrap_or_default(),
                );
            }
            Some(rest) if rest.starts_with(b"\n") => {
                return (
                    raw.get(..next + 1).unwrap_or_default(),
                    raw.get(next + 1..).unwrap_or_default(),
                );
            }
            _ => {}
        }
        i = next;
    }
    (raw, &[])
}

/// The unfolded header fields of a header block: (name, value) with the value trimmed.
pub(crate) fn fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // RFC 5322 §2.2.3: a folded continuation.
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(line.get(..colon).unwrap_or_default())
                .trim()
                .to_owned();
            let value = line.get(colon + 1..).unwrap_or_default().to_vec();
            out.push((name, value));
        }
    }
    for (_, v) in &mut out {
        let t = trim(v).to_vec();
        *v = t;
    }
    out
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// The first value of a header field, case-insensitive name.
pub(crate) fn field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(header)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses `type/subtype; a=b; c="d"` (RFC 2045 §5.1). Names are lower-cased for matching;
/// the caller upper-cases what IMAP shows.
pub(crate) fn parse_params(value: &[u8]) -> (String, Vec<(String, String)>) {
    let s = String::from_utf8_lossy(value);
    let mut parts = split_unquoted(&s, ';').into_iter();
    let head = parts.next().unwrap_or_default().trim().to_owned();
    let mut params = Vec::new();
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            let k = k.trim().to_owned();
            let v = v.trim();
            let v = match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Some(q) => q.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => v.to_owned(),
            };
            if !k.is_empty() {
                params.push((k, v));
            }
        }
    }
    (head, params)
}

fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

impl<'a> Part<'a> {
    /// Parses a whole message.
    pub(crate) fn message(raw: &'a [u8]) -> Self {
        Self::entity(raw, false, 0)
    }

    /// Parses an entity; `digest` makes `message/rfc822` the default type (RFC 2046 §5.1.5).
    fn entity(raw: &'a [u8], digest: bool, depth: usize) -> Self {
        let (header, body) = split_header(raw);
        let (ctype, subtype, params) = match field(header, "Content-Type") {
            Some(v) => {
                let (t, params) = parse_params(&v);
                match t.split_once('/') {
                    Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => (
                        a.trim().to_ascii_lowercase(),
                        b.trim().to_ascii_lowercase(),
                        params,
                    ),
                    _ => (
                        "text".into(),
                        "plain".into(),
                        vec![("charset".into(), "us-ascii".into())],
                    ),
                }
            }
            None if digest => ("message".into(), "rfc822".into(), Vec::new()),
            // RFC 2045 §5.2: the default.
            None => (
                "text".into(),
                "plain".into(),
                vec![("charset".into(), "us-ascii".into())],
            ),
        };
        let mut part = Part {
            header,
            body,
            ctype,
            subtype,
            params,
            children: Vec::new(),
            message: None,
        };
        if depth >= MAX_DEPTH {
            return part;
        }
        if part.ctype == "multipart" {
            let boundary = part
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.clone());
            if let Some(b) = boundary.filter(|b| !b.is_empty()) {
                let digest = part.subtype == "digest";
                part.children = split_multipart(body, b.as_bytes())
                    .into_iter()
                    .map(|p| Self::entity(p, digest, depth + 1))
                    .collect();
            }
        } else if part.ctype == "message" && (part.subtype == "rfc822" || part.subtype == "global")
        {
            part.message = Some(Box::new(Self::entity(body, false, depth + 1)));
        }
        part
    }

    fn is_multipart(&self) -> bool {
        self.ctype == "multipart" && !self.children.is_empty()
    }

    /// The part at a part-number path (RFC 9051 §6.4.5): for a non-multipart entity part 1
    /// is its body; a `message/rfc822` part's numbers continue into the enclosed message.
    pub(crate) fn resolve(&self, path: &[u32]) -> Option<&Part<'a>> {
        let Some((&first, rest)) = path.split_first() else {
            return Some(self);
        };
        let idx = usize::try_from(first).ok()?.checked_sub(1)?;
        let child = if self.is_multipart() {
            self.children.get(idx)?
        } else if let Some(m) = &self.message {
            if m.is_multipart() {
                m.children.get(idx)?
            } else if idx == 0 {
                m
            } else {
                return None;
            }
        } else if idx == 0 {
            self
        } else {
            return None;
        };
        child.resolve(rest)
    }

    /// `BODY[section]` data (RFC 9051 §6.4.5); `None` when the section does not exist.
    pub(crate) fn section(&self, raw: &'a [u8], section: &Section) -> Option<Vec<u8>> {
        if section.part.is_empty() {
            return Some(match &section.text {
                None => raw.to_vec(),
                Some(t) => self.text_of(t)?,
            });
        }
        let part = self.resolve(&section.part)?;
        match &section.text {
            None => Some(part.body.to_vec()),
            Some(SectionText::Mime) => Some(part.header.to_vec()),
            // HEADER / TEXT after a part number: only for message/rfc822 parts.
            Some(t) => part.message.as_ref()?.text_of(t),
        }
    }

    fn text_of(&self, t: &SectionText) -> Option<Vec<u8>> {
        Some(match t {
            SectionText::Header | SectionText::Mime => self.header.to_vec(),
            SectionText::Text => self.body.to_vec(),
            SectionText::HeaderFields(names) => filter_fields(self.header, names, true),
            SectionText::HeaderFieldsNot(names) => filter_fields(self.header, names, false),
        })
    }

    /// ENVELOPE of this entity's header (RFC 9051 §7.5.2).
    pub(crate) fn envelope(&self) -> Envelope {
        envelope(self.header)
    }

    /// BODY / BODYSTRUCTURE (the codec omits extension data for BODY).
    pub(crate) fn structure(&self) -> BodyStructure {
        if self.is_multipart() {
            return BodyStructure::Multi {
                parts: self.children.iter().map(Part::structure).collect(),
                subtype: self.subtype.to_ascii_uppercase(),
                ext: Some(MultiPartExt {
                    params: imap_params(&self.params),
                    disposition: disposition(self.header),
                    language: language(self.header),
                    location: text_field(self.header, "Content-Location"),
                    extensions: Vec::new(),
                }),
            };
        }
        let encoding = text_field(self.header, "Content-Transfer-Encoding")
            .map(|e| e.to_ascii_uppercase())
            .unwrap_or_else(|| "7BIT".into());
        let lines = count_lines(self.body);
        let kind = if let Some(m) = &self.message {
            SinglePartKind::Message {
                envelope: Box::new(m.envelope()),
                body: Box::new(m.structure()),
                lines,
            }
        } else if self.ctype == "text" {
            SinglePartKind::Text { lines }
        } else {
            SinglePartKind::Basic
        };
        let (ctype, subtype) = if self.ctype == "multipart" {
            // A multipart without parts is shown as an opaque part.
            ("APPLICATION".to_owned(), "OCTET-STREAM".to_owned())
        } else {
            (
                self.ctype.to_ascii_uppercase(),
                self.subtype.to_ascii_uppercase(),
            )
        };
        let mut params = imap_params(&self.params);
        // RFC 2046 §4.1.2 (kept by RFC 6657 §4): text/plain without a charset parameter is
        // US-ASCII, shown as for a part without Content-Type (RFC 2045 §5.2).
        if self.ctype == "text"
            && self.subtype == "plain"
            && !params.iter().any(|(k, _)| k == "CHARSET")
        {
            params.push(("CHARSET".into(), "us-ascii".into()));
        }
        BodyStructure::Single(SinglePart {
            media_type: ctype,
            media_subtype: subtype,
            params,
            id: text_field(self.header, "Content-ID"),
            description: text_field(self.header, "Content-Description"),
            encoding,
            octets: self.body.len() as u64,
            kind,
            ext: Some(SinglePartExt {
                md5: text_field(self.header, "Content-MD5"),
                disposition: disposition(self.header),
                language: language(self.header),
                location: text_field(self.header, "Content-Location"),
                extensions: Vec::new(),
            }),
        })
    }
}

/// Splits a multipart body into its body parts (RFC 2046 §5.1.1). The CRLF before a
/// delimiter line belongs to the delimiter.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut dash = b"--".to_vec();
    dash.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos <= body.len() {
        let line_end = body
            .get(pos..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .map(|i| pos + i);
        let line = body
            .get(pos..line_end.unwrap_or(body.len()))
            .unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(after) = line.strip_prefix(dash.as_slice()) {
            let closing = after.starts_with(b"--");
            if closing || trim(after).is_empty() {
                if let Some(s) = start {
                    let mut end = pos;
                    if end > s && body.get(end - 1) == Some(&b'\n') {
                        end -= 1;
                        if end > s && body.get(end - 1) == Some(&b'\r') {
                            end -= 1;
                        }
                    }
                    parts.push(body.get(s..end.max(s)).unwrap_or_default());
                }
                if closing {
                    return parts;
                }
                start = Some(line_end.map_or(body.len(), |e| e + 1));
            }
        }
        match line_end {
            Some(e) => pos = e + 1,
            None => break,
        }
    }
    // No closing delimiter: the last part runs to the end.
    if let Some(s) = start {
        parts.push(body.get(s..).unwrap_or_default());
    }
    parts
}

/// Lines of a body in its transfer encoding (RFC 9051 §7.5.2 `body-fld-lines`): the
/// line breaks it contains. A line ends with CRLF (RFC 5322 §2.1), and the CRLF before a
/// boundary belongs to the boundary (RFC 2046 §5.1.1), so a part's last line, cut off by
/// its delimiter, is not counted (as Dovecot and Cyrus count).
fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

fn imap_params(p: &[(String, String)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .collect()
}

fn text_field(header: &[u8], name: &str) -> Option<String> {
    field(header, name).map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn disposition(header: &[u8]) -> Option<Disposition> {
    let v = field(header, "Content-Disposition")?;
    let (kind, params) = parse_params(&v);
    (!kind.is_empty()).then(|| Disposition {
        kind: kind.to_ascii_uppercase(),
        params: imap_params(&params),
    })
}

fn language(header: &[u8]) -> Vec<String> {
    field(header, "Content-Language")
        .map(|v| {
            String::from_utf8_lossy(&v)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `HEADER.FIELDS` / `HEADER.FIELDS.NOT` (RFC 9051 §6.4.5): the matching fields as they
/// appear, followed by the blank line.
fn filter_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keeping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        if !bare.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            let name = bare
                .iter()
                .position(|&b| b == b':')
                .and_then(|c| bare.get(..c))
                .map(|n| String::from_utf8_lossy(n).trim().to_owned());
            keeping = match name {
                Some(n) => names.iter().any(|w| w.eq_ignore_ascii_case(&n)) == keep,
                None => false,
            };
        }
        if keeping {
            out.extend_from_slice(bare);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn nonempty(v: Option<Vec<u8>>) -> Option<Vec<u8>> {
    v.filter(|v| !v.is_empty())
}

/// ENVELOPE (RFC 9051 §7.5.2) from a header block. Date, subject, in-reply-to and
/// message-id are the raw values; addresses come from [`super::address`].
pub(crate) fn envelope(header: &[u8]) -> Envelope {
    let list = |name: &str| -> Vec<Address> {
        field(header, name)
            .map(|v| super::address::address_list(&v))
            .unwrap_or_default()
    };
    let from = list("From");
    let mut sender = list("Sender");
    if sender.is_empty() {
        sender = from.clone();
    }
    let mut reply_to = list("Reply-To");
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: nonempty(field(header, "Date")),
        subject: nonempty(field(header, "Subject")),
        from,
        sender,
        reply_to,
        to: list("To"),
        cc: list("Cc"),
        bcc: list("Bcc"),
        in_reply_to: nonempty(field(header, "In-Reply-To")),
        message_id: nonempty(field(header, "Message-ID")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: A <a@x.test>\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--b1--\r\nepilogue\r\n";

    #[test]
    fn multipart_parts_end_before_the_delimiter_crlf() {
        // RFC 2046 §5.1.1
        let p = Part::message(MULTI);
        assert_eq!(p.children.len(), 2);
        assert_eq!(p.children[0].body, b"hello");
        assert_eq!(p.children[1].body, b"Subject: inner\r\n\r\nbody");
        let sec = |part: Vec<u32>, text| Section { part, text };
        assert_eq!(p.section(MULTI, &sec(vec![1], None)).unwrap(), b"hello");
        assert_eq!(
            p.section(MULTI, &sec(vec![2], Some(SectionText::Header)))
                .unwrap(),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(p.section(MULTI, &sec(vec![2, 1], None)).unwrap(), b"body");
        assert_eq!(
            p.section(MULTI, &sec(vec![1], Some(SectionText::Mime)))
                .unwrap(),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert!(p.section(MULTI, &sec(vec![3], None)).is_none());
        // body-fld-lines counts line breaks: "hello" before its delimiter has none.
        match p.structure() {
            BodyStructure::Multi { parts, .. } => match &parts[0] {
                BodyStructure::Single(s) => assert_eq!(s.kind, SinglePartKind::Text { lines: 0 }),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_message_part_one_is_the_body() {
        let raw = b"Subject: x\r\n\r\nline1\r\nline2\r\n";
        let p = Part::message(raw);
        assert_eq!(p.resolve(&[1]).unwrap().body, b"line1\r\nline2\r\n");
        match p.structure() {
            BodyStructure::Single(s) => {
                assert_eq!(s.octets, 14);
                assert_eq!(s.kind, SinglePartKind::Text { lines: 2 });
                assert_eq!(s.encoding, "7BIT");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_fields_filter() {
        let h = b"Subject: a\r\n b\r\nFrom: x@y\r\nTo: z@w\r\n\r\n";
        assert_eq!(
            filter_fields(h, &["subject".into()], true),
            b"Subject: a\r\n b\r\n\r\n"
        );
        assert_eq!(
            filter_fields(h, &["subject".into()], false),
            b"From: x@y\r\nTo: z@w\r\n\r\n"
        );
    }

    #[test]
    fn envelope_defaults_sender_and_reply_to() {
        let e = envelope(b"From: Ann <ann@example.com>\r\nSubject: Hi\r\n\r\n");
        assert_eq!(e.subject.as_deref(), Some(&b"Hi"[..]));
        assert_eq!(e.sender, e.from);
        assert_eq!(e.from[0].host.as_deref(), Some(&b"example.com"[..]));
    }
}
