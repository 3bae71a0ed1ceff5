//! MIME leaf parts of a message for the attachment filter (guide §14.5) and the
//! antivirus (guide §14.4), and the removal of parts ("replaced by a notice").
//!
//! Implementation notes:
//! - Parsing is mail-parser's; a nested `message/rfc822` is one part (scanned whole by
//!   clamd, removed whole). At most [`MAX_PARTS`] parts are returned; a message with
//!   more is reported by [`Parts::truncated`] and treated as "cannot be scanned".
//! - Removal splices the raw bytes: a part inside a multipart is replaced, headers and
//!   body, by a `text/plain` notice; when the message itself is the part, its
//!   `Content-*` header fields are replaced and the body becomes the notice.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Parts examined per message.
pub const MAX_PARTS: usize = 500;

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
    /// More than [`MAX_PARTS`] parts, or the message could not be parsed.
    pub truncated: bool,
}

/// The leaf parts of `raw`.
pub fn parts(raw: &[u8]) -> Parts {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parts {
            parts: Vec::new(),
            truncated: true,
        };
    };
    let mut out = Parts::default();
    let len = raw.len();
    for (i, p) in msg.parts.iter().enumerate() {
        if matches!(p.body, PartType::Multipart(_)) {
            continue;
        }
        if out.parts.len() >= MAX_PARTS {
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
