//! Bounded, allocation-light views of a raw RFC 5322 message for the content tests, and
//! the header rewriting of tagged mail.
//!
//! Implementation notes:
//! - Nothing here trusts the peer: the header section ends at the first empty line or at
//!   [`MAX_HEADER_BYTES`], whichever comes first; at most [`MAX_HEADERS`] fields are
//!   kept; bytes that are not UTF-8 are read lossily. No recursion, so deep MIME nesting
//!   costs nothing here (MIME structure is not walked at all: the body tests read the raw
//!   body, bounded by `max_scan_bytes`).
//! - Header rewriting (subject prefix, removal of forged `X-Spam-*` and our own
//!   `Authentication-Results`, RFC 8601 §5) rewrites only the header section and copies
//!   the body untouched.

use crate::rules::FieldSource;

/// Header bytes examined by default (a 1 MB header is cut here, not refused).
pub const MAX_HEADER_BYTES: usize = crate::limits::DEFAULT_MAX_HEADER_BYTES;
/// Header fields kept.
pub const MAX_HEADERS: usize = 1000;

/// One header field of the raw message.
#[derive(Debug, Clone)]
struct Field {
    /// Byte range of the whole field including its line ends.
    start: usize,
    end: usize,
    name: String,
}

/// A parsed view of a raw message.
#[derive(Debug)]
pub struct MessageView<'a> {
    raw: &'a [u8],
    fields: Vec<Field>,
    /// Offset of the body (after the empty line), or `raw.len()`.
    body_start: usize,
    scan_limit: usize,
}

impl<'a> MessageView<'a> {
    /// Parses the header section of `raw`; body tests see at most `scan_limit` bytes.
    pub fn new(raw: &'a [u8], scan_limit: usize) -> Self {
        Self::with_header_limit(raw, scan_limit, MAX_HEADER_BYTES)
    }

    /// As [`Self::new`], examining at most `max_header_bytes` of the header section.
    pub fn with_header_limit(raw: &'a [u8], scan_limit: usize, max_header_bytes: usize) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0usize;
        let limit = raw.len().min(max_header_bytes);
        let mut body_start = raw.len();
        while pos < limit {
            let line_end = memchr_nl(&raw[pos..]).map_or(raw.len(), |i| pos + i + 1);
            let line = &raw[pos..line_end];
            let content = trim_eol(line);
            if content.is_empty() {
                body_start = line_end;
                break;
            }
            if content[0] == b' ' || content[0] == b'\t' {
                // RFC 5322 §2.2.3 folding: continuation of the previous field.
                if let Some(f) = fields.last_mut() {
                    f.end = line_end;
                }
            } else if let Some(colon) = content.iter().position(|&b| b == b':')
                && fields.len() < MAX_HEADERS
            {
                let name = String::from_utf8_lossy(&content[..colon]).trim().to_owned();
                fields.push(Field {
                    start: pos,
                    end: line_end,
                    name,
                });
            }
            pos = line_end;
        }
        if pos >= limit && body_start == raw.len() {
            body_start = pos.min(raw.len());
        }
        Self {
            raw,
            fields,
            body_start,
            scan_limit,
        }
    }

    fn value_of(&self, f: &Field) -> String {
        let bytes = &self.raw[f.start..f.end];
        let colon = bytes.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
        let v = String::from_utf8_lossy(&bytes[colon..]);
        // RFC 5322 §2.2.3 unfolding.
        v.replace("\r\n", "").replace('\n', "").trim().to_owned()
    }

    /// The first value of a header, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| self.value_of(f))
    }

    /// The body (after the empty line), bounded by the scan limit.
    pub fn scan_body(&self) -> &'a [u8] {
        let end = self
            .raw
            .len()
            .min(self.body_start.saturating_add(self.scan_limit));
        &self.raw[self.body_start.min(end)..end]
    }

    /// The message rebuilt with `prefix` prepended to the Subject (a Subject is added when
    /// missing) and the fields for which `drop` returns true removed.
    pub fn rewrite(
        &self,
        subject_prefix: Option<&str>,
        drop: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 64);
        let mut last = 0usize;
        let mut subject_done = subject_prefix.is_none();
        for f in &self.fields {
            out.extend_from_slice(&self.raw[last..f.start]);
            last = f.end;
            let value = self.value_of(f);
            if drop(&f.name, &value) {
                continue;
            }
            if !subject_done && f.name.eq_ignore_ascii_case("Subject") {
                subject_done = true;
                let bytes = &self.raw[f.start..f.end];
                let colon = bytes.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
                let rest = &bytes[colon..];
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                out.extend_from_slice(b"Subject: ");
                out.extend_from_slice(subject_prefix.unwrap_or_default().as_bytes());
                if !trim_eol(rest).is_empty() {
                    out.push(b' ');
                }
                out.extend_from_slice(rest);
                if !bytes.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            out.extend_from_slice(&self.raw[f.start..f.end]);
        }
        if !subject_done && let Some(p) = subject_prefix {
            out.extend_from_slice(format!("Subject: {p}\r\n").as_bytes());
        }
        out.extend_from_slice(&self.raw[last..]);
        out
    }
}

impl FieldSource for MessageView<'_> {
    fn headers(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| self.value_of(f))
            .collect()
    }

    fn body(&self) -> &[u8] {
        self.scan_body()
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let l = line.strip_suffix(b"\n").unwrap_or(line);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Host names of links in a text (`http://`, `https://`, `www.`), lower-case, without
/// port, at most `max` distinct ones; quoted-printable soft line breaks are undone first.
pub fn link_hosts(body: &[u8], max: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(body)
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .to_lowercase();
    let mut hosts: Vec<String> = Vec::new();
    for marker in ["http://", "https://", "www."] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find(marker) {
            let after = &rest[i + marker.len()..];
            let host_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(after.len());
            let mut host = after[..host_end].trim_matches('.').to_owned();
            if marker == "www." {
                host = format!("www.{host}");
            }
            if host.contains('.')
                && host.parse::<std::net::IpAddr>().is_err()
                && !hosts.contains(&host)
            {
                if hosts.len() >= max {
                    return hosts;
                }
                hosts.push(host);
            }
            rest = &after[host_end..];
        }
    }
    hosts
}

/// The domains to look up in a URI blacklist for a link host: the last two labels, and
/// the last three when the host has more (a registrable domain under a two-label public
/// suffix such as `co.uk`; without a public-suffix list both are asked).
pub fn uribl_candidates(host: &str) -> Vec<String> {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    let mut out = Vec::new();
    if labels.len() >= 2 {
        out.push(labels[labels.len() - 2..].join("."));
    }
    if labels.len() >= 3 {
        out.push(labels[labels.len() - 3..].join("."));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_folding_and_rewrite() {
        let raw = b"From: a@b\r\nSubject: cheap\r\n pills\r\nX-Spam-Flag: NO\r\n\r\nbody http://Evil.Example.com/x\r\n";
        let v = MessageView::new(raw, 1024);
        assert_eq!(v.header("subject").as_deref(), Some("cheap pills"));
        assert_eq!(v.scan_body(), b"body http://Evil.Example.com/x\r\n");
        let out = v.rewrite(Some("**SPAM**"), &|n, _| {
            n.eq_ignore_ascii_case("x-spam-flag")
        });
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "From: a@b\r\nSubject: **SPAM** cheap\r\n pills\r\n\r\nbody http://Evil.Example.com/x\r\n"
        );
        assert_eq!(link_hosts(v.scan_body(), 10), vec!["evil.example.com"]);
        assert_eq!(
            uribl_candidates("evil.example.com"),
            vec!["example.com", "evil.example.com"]
        );
    }

    #[test]
    fn missing_subject_and_no_body() {
        let v = MessageView::new(b"From: a@b\r\n", 10);
        let s = String::from_utf8(v.rewrite(Some("[x]"), &|_, _| false)).unwrap();
        assert_eq!(s, "From: a@b\r\nSubject: [x]\r\n");
        assert!(v.scan_body().is_empty());
    }
}
