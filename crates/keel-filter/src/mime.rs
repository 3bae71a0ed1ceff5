//! MIME leaf parts of a message for the attachment filter (guide §14.5) and the
//! antivirus (guide §14.4), and the removal of parts ("replaced by a notice").
//!
//! Implementation notes:
//! - [`structure`] first checks the limits of [`MessageLimits`] (depth, parts, header
//!   bytes) in one linear pass without recursion or decoding. A message past a limit is
//!   not handed to mail-parser (deep `message/rfc822` nesting overflows its stack): it
//!   becomes one root part holding the whole message, so clamd still sees every byte,
//!   and [`Parts::limit`] says why ("cannot be scanned", guide §14.4).
//! - Parsing is mail-parser's; a nested `message/rfc822` is one part (scanned whole by
//!   clamd, removed whole). At most `max_parts` parts are returned; a message with
//!   more is reported by [`Parts::truncated`] and treated as "cannot be scanned".
//! - Removal splices the raw bytes: a part inside a multipart is replaced, headers and
//!   body, by a `text/plain` notice; when the message itself is the part, its
//!   `Content-*` header fields are replaced and the body becomes the notice.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::limits::{DEFAULT_MAX_PARTS, LimitHit, MessageLimits};

/// Parts examined per message by default.
pub const MAX_PARTS: usize = DEFAULT_MAX_PARTS;

/// One leaf part.
#[derive(Debug, Clone)]
pub struct Part {
    /// File name (`Content-Disposition` filename or `Content-Type` name, RFC 2231
    /// decoded by mail-parser).
    pub name: Option<String>,
    /// `type/subtype`, lower-case (`text/plain` when absent, RFC 2045 §5.2).
    pub mime: String,
    /// Decoded contents.
    pub contents: Vec<u8>,
    /// Whether the part is the whole message (not inside a multipart).
    pub root: bool,
    /// A transfer-encoding problem was found while decoding.
    pub corrupt: bool,
    header_start: usize,
    body_start: usize,
    end: usize,
}

/// The leaf parts of a message.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// The parts, in message order.
    pub parts: Vec<Part>,
    /// More parts than the limit, a limit hit, or the message could not be parsed.
    pub truncated: bool,
    /// The limit the message went past; `parts` is then the whole message as one part.
    pub limit: Option<LimitHit>,
    /// A structural defect the scan found (see [`Shape::defect`]).
    pub defect: Option<&'static str>,
}

/// The leaf parts of `raw` with the default limits.
pub fn parts(raw: &[u8]) -> Parts {
    parts_with(raw, &MessageLimits::default())
}

/// The leaf parts of `raw` (module notes).
pub fn parts_with(raw: &[u8], limits: &MessageLimits) -> Parts {
    let shape = match structure(raw, limits) {
        Ok(shape) => shape,
        Err(hit) => return whole(raw, Some(hit)),
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return whole(raw, None);
    };
    let mut out = Parts {
        defect: shape.defect,
        ..Parts::default()
    };
    let len = raw.len();
    for (i, p) in msg.parts.iter().enumerate() {
        if matches!(p.body, PartType::Multipart(_)) {
            continue;
        }
        if out.parts.len() >= limits.max_parts {
            out.truncated = true;
            break;
        }
        let mime = match p.content_type() {
            Some(ct) => match ct.subtype() {
                Some(st) => format!("{}/{}", ct.ctype(), st).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
            None => "text/plain".to_owned(),
        };
        let clamp = |v: u32| (v as usize).min(len);
        out.parts.push(Part {
            name: p.attachment_name().map(str::to_owned),
            mime,
            contents: p.contents().to_vec(),
            root: i == 0,
            corrupt: p.is_encoding_problem,
            header_start: clamp(p.offset_header),
            body_start: clamp(p.offset_body),
            end: clamp(p.offset_end),
        });
    }
    out
}

/// The whole message as its only (root) part, not examined further.
fn whole(raw: &[u8], limit: Option<LimitHit>) -> Parts {
    let body_start = find(raw, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| find(raw, b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len());
    Parts {
        parts: vec![Part {
            name: None,
            mime: "message/rfc822".to_owned(),
            contents: raw.to_vec(),
            root: true,
            corrupt: false,
            header_start: 0,
            body_start,
            end: raw.len(),
        }],
        truncated: true,
        limit,
        defect: None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What [`structure`] found in a message within the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting (0 = a single-part message).
    pub depth: usize,
    /// Leaf parts.
    pub parts: usize,
    /// A defect that mail-parser recovers from: a multipart left open at the end
    /// (closing boundary missing) or one without a `boundary` parameter.
    pub defect: Option<&'static str>,
}

/// [`Shape::defect`]: RFC 2046 §5.1.1 requires the close delimiter.
pub const UNTERMINATED: &str = "a multipart has no closing boundary";
/// [`Shape::defect`]: RFC 2046 §5.1.1 makes `boundary` required.
pub const NO_BOUNDARY: &str = "a multipart has no boundary parameter";

enum Frame {
    /// A multipart with its boundary; `digest` parts default to `message/rfc822`
    /// (RFC 2046 §5.1.5).
    Multipart { boundary: Vec<u8>, digest: bool },
    /// An embedded message (RFC 2046 §5.2.1): its header section follows at once.
    Message,
}

/// [`Shape::defect`]: a character outside the base64 alphabet (RFC 2045 §6.8).
pub const BAD_BASE64: &str = "a base64 part has characters outside the alphabet";
/// [`Shape::defect`]: `=` not followed by two hex digits or a line end (RFC 2045 §6.7).
pub const BAD_QUOTED_PRINTABLE: &str = "a quoted-printable part has a malformed escape";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Plain,
    Base64,
    QuotedPrintable,
}

impl Leaf {
    /// The defect of one body line, if any.
    fn check(self, line: &[u8]) -> Option<&'static str> {
        match self {
            Self::Plain => None,
            Self::Base64 => line
                .iter()
                .any(|&b| {
                    !(b.is_ascii_alphanumeric()
                        || matches!(b, b'+' | b'/' | b'=')
                        || b.is_ascii_whitespace())
                })
                .then_some(BAD_BASE64),
            Self::QuotedPrintable => {
                let mut i = 0;
                while let Some(off) = line[i..].iter().position(|&b| b == b'=') {
                    let at = i + off;
                    let rest = &line[at + 1..];
                    let soft = rest.iter().all(|b| b.is_ascii_whitespace());
                    let hex = rest.len() >= 2 && rest[..2].iter().all(u8::is_ascii_hexdigit);
                    if !soft && !hex {
                        return Some(BAD_QUOTED_PRINTABLE);
                    }
                    i = at + 1;
                }
                None
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentType,
    Encoding,
    Other,
}

/// Checks `raw` against `limits` with one pass over its lines (module notes): RFC 2046
/// multipart boundaries and embedded messages, the way mail-parser nests them. The
/// depth and part counts are upper bounds for odd input, never lower ones.
pub fn structure(raw: &[u8], limits: &MessageLimits) -> Result<Shape, LimitHit> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut shape = Shape::default();
    let mut in_header = true;
    let mut header_bytes = 0usize;
    let mut ctype = String::new();
    let mut cte = String::new();
    let mut field = Field::Other;
    // Transfer encoding of the leaf body being read (None in preambles and epilogues).
    let mut leaf: Option<Leaf> = None;
    let mut pos = 0usize;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        pos = end;
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if in_header {
            header_bytes += line.len();
            if header_bytes > limits.max_header_bytes {
                return Err(LimitHit::HeaderBytes(limits.max_header_bytes));
            }
            if !content.is_empty() {
                // RFC 5322 §2.2.3 folding continues the previous field.
                if content[0] == b' ' || content[0] == b'\t' {
                    match field {
                        Field::ContentType => push_lossy(&mut ctype, content),
                        Field::Encoding => push_lossy(&mut cte, content),
                        Field::Other => {}
                    }
                    continue;
                }
                let colon = content.iter().position(|&b| b == b':');
                let name = colon.map_or(&b""[..], |c| &content[..c]);
                let value = colon.map_or(&b""[..], |c| &content[c + 1..]);
                field = if name.trim_ascii().eq_ignore_ascii_case(b"content-type") {
                    ctype.clear();
                    push_lossy(&mut ctype, value);
                    Field::ContentType
                } else if name
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"content-transfer-encoding")
                {
                    cte.clear();
                    push_lossy(&mut cte, value);
                    Field::Encoding
                } else {
                    Field::Other
                };
                continue;
            }
            // End of a header section: what does the body hold?
            header_bytes = 0;
            in_header = false;
            field = Field::Other;
            let ct = ctype.trim().to_ascii_lowercase();
            let in_digest = matches!(stack.last(), Some(Frame::Multipart { digest: true, .. }));
            let encoding = match cte.trim().to_ascii_lowercase().as_str() {
                "base64" => Leaf::Base64,
                "quoted-printable" => Leaf::QuotedPrintable,
                _ => Leaf::Plain,
            };
            let encoded = encoding != Leaf::Plain;
            leaf = None;
            let boundary = ct
                .starts_with("multipart/")
                .then(|| boundary_of(ctype.trim()))
                .flatten();
            if ct.starts_with("multipart/") && boundary.is_none() {
                shape.defect = Some(NO_BOUNDARY);
            }
            let frame = if let Some(b) = boundary {
                Some(Frame::Multipart {
                    boundary: b.into_bytes(),
                    digest: ct.starts_with("multipart/digest"),
                })
            } else if (ct.starts_with("message/rfc822")
                || ct.starts_with("message/global")
                || (ct.is_empty() && in_digest))
                && !encoded
            {
                in_header = true;
                Some(Frame::Message)
            } else {
                None
            };
            ctype.clear();
            cte.clear();
            match frame {
                Some(f) => {
                    if stack.len() >= limits.max_mime_depth {
                        return Err(LimitHit::Depth(limits.max_mime_depth));
                    }
                    if matches!(f, Frame::Message)
                        && matches!(stack.last(), Some(Frame::Message))
                        && stack.iter().any(|f| matches!(f, Frame::Multipart { .. }))
                    {
                        return Err(LimitHit::NestedMessage);
                    }
                    stack.push(f);
                    shape.depth = shape.depth.max(stack.len());
                }
                None => {
                    leaf = Some(encoding);
                    shape.parts += 1;
                    if shape.parts > limits.max_parts {
                        return Err(LimitHit::Parts(limits.max_parts));
                    }
                }
            }
            continue;
        }
        // A body line: the innermost open multipart whose delimiter it is (RFC 2046
        // §5.1.1) closes everything nested inside it.
        let hit = content.strip_prefix(b"--").and_then(|rest| {
            stack.iter().rposition(|f| match f {
                Frame::Multipart { boundary, .. } => rest.starts_with(boundary),
                Frame::Message => false,
            })
        });
        let Some(k) = hit else {
            if shape.defect.is_none()
                && let Some(enc) = leaf
            {
                shape.defect = enc.check(content);
            }
            continue;
        };
        leaf = None;
        let blen = match &stack[k] {
            Frame::Multipart { boundary, .. } => boundary.len(),
            Frame::Message => 0,
        };
        stack.truncate(k + 1);
        if content[2 + blen..].starts_with(b"--") {
            stack.pop();
        } else {
            in_header = true;
            header_bytes = 0;
        }
    }
    if stack.iter().any(|f| matches!(f, Frame::Multipart { .. })) {
        shape.defect = Some(UNTERMINATED);
    }
    Ok(shape)
}

fn push_lossy(out: &mut String, bytes: &[u8]) {
    // Only Content-Type and Content-Transfer-Encoding are kept; they are short unless
    // hostile, and the header limit bounds them.
    out.push_str(&String::from_utf8_lossy(bytes));
}

/// The `boundary` parameter of a Content-Type value (RFC 2045 §5.1), quoted or not.
fn boundary_of(ct: &str) -> Option<String> {
    let lower = ct.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("boundary") {
        let at = from + i;
        from = at + 8;
        let before = lower[..at].trim_end();
        if !(before.ends_with(';') || before.is_empty()) {
            continue;
        }
        let rest = lower[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        // Same offsets in the original (case kept).
        let start = ct.len() - rest.len();
        let value = ct[start..].trim_start();
        let b = if let Some(q) = value.strip_prefix('"') {
            q.split('"').next().unwrap_or_default()
        } else {
            value
                .split(|c: char| c == ';' || c.is_ascii_whitespace())
                .next()
                .unwrap_or_default()
        };
        return (!b.is_empty()).then(|| b.to_owned());
    }
    None
}

/// `raw` with each part at the given indexes of `parts` replaced by its notice.
pub fn remove_parts(raw: &[u8], parts: &Parts, removals: &[(usize, String)]) -> Vec<u8> {
    let mut edits: Vec<(&Part, &str)> = removals
        .iter()
        .filter_map(|(i, note)| parts.parts.get(*i).map(|p| (p, note.as_str())))
        .collect();
    if let Some((root, note)) = edits.iter().find(|(p, _)| p.root) {
        return replace_root(raw, root.body_start, note);
    }
    // Back to front, so earlier offsets stay valid; overlapping ranges are skipped.
    edits.sort_by_key(|(p, _)| std::cmp::Reverse(p.header_start));
    let mut out = raw.to_vec();
    let mut limit = usize::MAX;
    for (p, note) in edits {
        if p.header_start > p.end || p.end > limit || p.end > out.len() {
            continue;
        }
        let replacement = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            clean(note)
        );
        out.splice(p.header_start..p.end, replacement.into_bytes());
        limit = p.header_start;
    }
    out
}

fn replace_root(raw: &[u8], body_start: usize, note: &str) -> Vec<u8> {
    let header = String::from_utf8_lossy(&raw[..body_start.min(raw.len())]).into_owned();
    let mut out = String::with_capacity(header.len() + note.len() + 128);
    let mut skipping = false;
    for line in header.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
            }
            continue;
        }
        let name = trimmed.split(':').next().unwrap_or_default().trim();
        skipping = name.to_ascii_lowercase().starts_with("content-");
        if !skipping {
            out.push_str(trimmed);
            out.push_str("\r\n");
        }
    }
    out.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    out.push_str(&clean(note));
    out.push_str("\r\n");
    out.into_bytes()
}

/// One-line printable note.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_directly_in_a_message_inside_a_multipart_is_not_parsed() {
        // mail-parser 0.11 loses the attachment after it (fuzz corpus `nested_message`).
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: a\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: x\r\n\r\nbody\r\n--b\r\nContent-Type: application/x-msdownload; name=evil.exe\r\n\r\n\
MZ\r\n--b--\r\n";
        let got = parts(raw);
        assert_eq!(got.limit, Some(LimitHit::NestedMessage));
        assert!(got.truncated);
        assert_eq!(got.parts.len(), 1);
        // Alone (no multipart around it) the chain parses.
        let alone = b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: x\r\n\r\nbody\r\n";
        assert!(structure(alone, &MessageLimits::default()).is_ok());
    }

    const MULTI: &[u8] = b"From: a@b\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--XX\r\nContent-Type: application/octet-stream; name=\"run.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n\
--XX--\r\n";

    #[test]
    fn leaf_parts_and_removal() {
        let p = parts(MULTI);
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[1].name.as_deref(), Some("run.exe"));
        assert_eq!(p.parts[1].mime, "application/octet-stream");
        assert!(p.parts[1].contents.starts_with(b"MZ"));
        let out = remove_parts(
            MULTI,
            &p,
            &[(1, "The attachment run.exe was removed.".into())],
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("hello"), "{text}");
        assert!(
            text.contains("The attachment run.exe was removed."),
            "{text}"
        );
        assert!(!text.contains("TVqQ"), "{text}");
        assert!(text.ends_with("--XX--\r\n"), "{text}");
        let again = parts(&out);
        assert_eq!(again.parts.len(), 2);
        assert_eq!(again.parts[1].mime, "text/plain");
    }

    #[test]
    fn structure_counts_depth_parts_and_defects() {
        let limits = MessageLimits::default();
        let shape = structure(MULTI, &limits).unwrap();
        assert_eq!((shape.depth, shape.parts, shape.defect), (1, 2, None));
        let single = b"From: a@b\r\n\r\nhi\r\n";
        assert_eq!(structure(single, &limits).unwrap().depth, 0);
        // An embedded message whose body is a multipart: two levels.
        let nested = b"From: a@b\r\nContent-Type: message/rfc822\r\n\r\n\
From: c@d\r\nContent-Type: multipart/alternative; boundary=Q\r\n\r\n\
--Q\r\nContent-Type: text/plain\r\n\r\nx\r\n--Q\r\nContent-Type: text/html\r\n\r\n<p>x\r\n--Q--\r\n";
        let shape = structure(nested, &limits).unwrap();
        assert_eq!((shape.depth, shape.parts, shape.defect), (2, 2, None));
        // RFC 2046 §5.1.5: digest parts without a type are messages.
        let digest = b"Content-Type: multipart/digest; boundary=D\r\n\r\n\
--D\r\n\r\nFrom: a@b\r\n\r\nm1\r\n--D--\r\n";
        assert_eq!(structure(digest, &limits).unwrap().depth, 2);
        let open = &MULTI[..MULTI.len() - 8];
        assert_eq!(structure(open, &limits).unwrap().defect, Some(UNTERMINATED));
        let folded = b"Content-Type: multipart/mixed;\r\n\tBoundary=\"a b\"\r\n\r\n--a b\r\n\r\nx\r\n--a b--\r\n";
        let shape = structure(folded, &limits).unwrap();
        assert_eq!((shape.depth, shape.parts, shape.defect), (1, 1, None));
        let qp = b"Content-Transfer-Encoding: quoted-printable\r\n\r\na=3Db =\r\nc=\r\n";
        assert_eq!(structure(qp, &limits).unwrap().defect, None);
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"XX\"").as_deref(),
            Some("XX")
        );
        assert_eq!(
            boundary_of("multipart/mixed; BOUNDARY=Ab;x=y").as_deref(),
            Some("Ab")
        );
        assert_eq!(boundary_of("multipart/mixed; xboundary=1"), None);
        assert_eq!(boundary_of("multipart/mixed; boundary=\"\""), None);
    }

    #[test]
    fn root_removal() {
        let raw = b"From: a@b\r\nContent-Type: application/x-msdownload;\r\n name=x.exe\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQ\r\n";
        let p = parts(raw);
        let out = remove_parts(raw, &p, &[(0, "removed".into())]);
        assert_eq!(
            out,
            b"From: a@b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nremoved\r\n"
        );
    }
}
