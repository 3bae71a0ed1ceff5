//! Domain footers (disclaimers), guide §7.3 and requirements-1 §7.3: a per-domain text
//! appended to the messages the domain's users send. Sans-I/O: [`Footer::apply`] turns
//! message bytes into new message bytes; the session decides when it applies.
//!
//! Implementation notes:
//! - Settings live in the domain's `settings` map (keel-directory `Domain.settings`):
//!   `footer_text` (string; empty or absent = no footer), `footer_html` (string, the HTML
//!   variant; absent = the text footer HTML-escaped, as the guide's footers are plain
//!   text; an explicit empty string = leave HTML parts alone) and
//!   `footer_skip_internal` (bool, "Don't append the footer to messages addressed only to
//!   internal recipients", default false).
//! - MIME-aware, in place (requirements-1 §7.3 "without breaking"): the message is parsed
//!   with mail-parser; the last inline `text/plain` body part gets the text footer and the
//!   last inline `text/html` body part the HTML footer before `</body>` (so both parts of a
//!   `multipart/alternative` get it). Only those parts' bytes change; every other byte,
//!   boundary and header stays as it was. We chose this over adding a new MIME part,
//!   which many clients show as an attachment and which cannot reach inside HTML.
//! - A part without transfer encoding gets the footer spliced into its raw bytes when
//!   the footer is ASCII (no header change). Otherwise (base64, quoted-printable, or a
//!   non-ASCII footer) the part is decoded, the footer appended, and the result
//!   re-encoded as UTF-8 in base64 (if it was base64) or quoted-printable; the part's
//!   `Content-Type` charset and `Content-Transfer-Encoding` are rewritten to match.
//! - Skipped: signed or encrypted messages (`multipart/signed`, `multipart/encrypted`,
//!   `application/pkcs7-mime`): changing them would break the signature
//!   (requirements-1 §7.3); messages mail-parser cannot parse; parts with an encoding
//!   problem.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mail_parser::{Encoding, MessageParser, MessagePart, MimeHeaders, PartType};

/// Domain settings key of the text footer.
pub(super) const KEY_TEXT: &str = "footer_text";
/// Domain settings key of the HTML footer.
pub(super) const KEY_HTML: &str = "footer_html";
/// Domain settings key of "Don't append the footer to messages addressed only to internal
/// recipients".
pub(super) const KEY_SKIP_INTERNAL: &str = "footer_skip_internal";

/// RFC 2045 §6.8 / §6.7 rule 5: encoded lines of at most 76 characters.
const ENCODED_LINE: usize = 76;
/// RFC 5322 §2.1.1: at most 998 characters per line.
const MAX_LINE: usize = 998;

/// One domain's footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Footer {
    /// Plain-text footer, CRLF line ends.
    text: String,
    /// HTML footer; `None` leaves HTML parts alone.
    html: Option<String>,
    /// Skip messages whose recipients are all internal.
    pub(super) skip_internal: bool,
}

impl Footer {
    /// The footer configured in a domain's settings map, `None` when there is none.
    pub(super) fn from_settings(settings: &BTreeMap<String, serde_json::Value>) -> Option<Self> {
        let text = settings
            .get(KEY_TEXT)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let text = crlf(text.trim_end());
        let html = match settings.get(KEY_HTML).and_then(|v| v.as_str()) {
            Some(h) if h.trim().is_empty() => None,
            Some(h) => Some(crlf(h.trim_end())),
            None if text.is_empty() => None,
            None => Some(text_to_html(&text)),
        };
        if text.is_empty() && html.is_none() {
            return None;
        }
        let skip_internal = settings
            .get(KEY_SKIP_INTERNAL)
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Some(Self {
            text,
            html,
            skip_internal,
        })
    }

    /// The message with the footer appended, `None` when it is left unchanged (nothing to
    /// append to, signed or encrypted, or unparseable).
    pub(super) fn apply(&self, message: &[u8]) -> Option<Vec<u8>> {
        // mail-parser recurses per nesting level: a hostile message (thousands of nested
        // parts) must be refused before it reaches the parser (issue 6, hostile input).
        keel_filter::mime::structure(message, &keel_filter::MessageLimits::default()).ok()?;
        let parsed = MessageParser::default().parse(message)?;
        if parsed.parts.iter().any(is_protected) {
            return None;
        }
        let mut edits: Vec<Edit> = Vec::new();
        if !self.text.is_empty()
            && let Some(part) = last_body(&parsed, &parsed.text_body, false)
            && let Some(e) = self.edit(message, part, false, parsed.parts.first())
        {
            edits.push(e);
        }
        if self.html.is_some()
            && let Some(part) = last_body(&parsed, &parsed.html_body, true)
            && let Some(e) = self.edit(message, part, true, parsed.parts.first())
        {
            edits.push(e);
        }
        if edits.is_empty() {
            return None;
        }
        // Splice from the end so earlier offsets stay valid.
        edits.sort_by_key(|e| std::cmp::Reverse(e.start));
        let mut out = message.to_vec();
        for e in edits {
            out.splice(e.start..e.end, e.bytes);
        }
        Some(out)
    }

    /// The replacement for one body part.
    fn edit(
        &self,
        message: &[u8],
        part: &MessagePart<'_>,
        html: bool,
        root: Option<&MessagePart<'_>>,
    ) -> Option<Edit> {
        let footer = if html {
            self.html.as_deref()?
        } else {
            &self.text
        };
        let (h0, b0, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        if !(h0 <= b0 && b0 <= end && end <= message.len()) {
            return None;
        }
        // Keep the line break(s) that end the body (they may belong to the boundary
        // delimiter, RFC 2046 §5.1.1): insert before them.
        let raw = &message[b0..end];
        let content_end = b0 + trim_newlines(raw).len();
        if part.encoding == Encoding::None && footer.is_ascii() && footer_lines_fit(footer) {
            let content = &message[b0..content_end];
            let (at, insert) = if html {
                let at = html_insert_point(content);
                (b0 + at, footer.as_bytes().to_vec())
            } else {
                (content_end, format!("\r\n\r\n{footer}").into_bytes())
            };
            return Some(Edit {
                start: at,
                end: at,
                bytes: insert,
            });
        }
        // Decode, append, re-encode (module notes).
        let decoded = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.as_ref(),
            _ => return None,
        };
        let decoded = trim_newlines_str(decoded);
        let new_text = if html {
            let at = html_insert_point(decoded.as_bytes());
            format!("{}{footer}{}", &decoded[..at], &decoded[at..])
        } else {
            format!("{}\r\n\r\n{footer}", crlf(decoded))
        };
        let (cte, body) = if part.encoding == Encoding::Base64 {
            ("base64", encode_base64(new_text.as_bytes()))
        } else {
            ("quoted-printable", encode_qp(&new_text))
        };
        let is_root = root.is_some_and(|r| r.offset_header == part.offset_header);
        let headers = rewrite_headers(&message[h0..b0], part, html, cte, is_root);
        let mut bytes = headers;
        bytes.extend_from_slice(body.as_bytes());
        Some(Edit {
            start: h0,
            end: content_end,
            bytes,
        })
    }
}

/// A replacement of `start..end` in the original message.
struct Edit {
    start: usize,
    end: usize,
    bytes: Vec<u8>,
}

/// Signed or encrypted content must not change (requirements-1 §7.3).
fn is_protected(part: &MessagePart<'_>) -> bool {
    let Some(ct) = part.content_type() else {
        return false;
    };
    let sub = ct.subtype().unwrap_or_default();
    let t = ct.ctype();
    (t.eq_ignore_ascii_case("multipart")
        && (sub.eq_ignore_ascii_case("signed") || sub.eq_ignore_ascii_case("encrypted")))
        || (t.eq_ignore_ascii_case("application")
            && (sub.eq_ignore_ascii_case("pkcs7-mime")
                || sub.eq_ignore_ascii_case("x-pkcs7-mime")
                || sub.eq_ignore_ascii_case("pgp-encrypted")))
}

/// The last inline body part of the wanted kind (mail-parser lists the HTML part in
/// `text_body` when there is no text part and vice versa; those are skipped here).
fn last_body<'a>(
    msg: &'a mail_parser::Message<'a>,
    ids: &[u32],
    html: bool,
) -> Option<&'a MessagePart<'a>> {
    ids.iter().rev().find_map(|id| {
        let p = msg.parts.get(*id as usize)?;
        let kind_ok = match &p.body {
            PartType::Text(_) => !html,
            PartType::Html(_) => html,
            _ => false,
        };
        (kind_ok && !p.is_encoding_problem).then_some(p)
    })
}

/// Where the HTML footer goes: before the last `</body>`, else before the last
/// `</html>`, else at the end.
fn html_insert_point(content: &[u8]) -> usize {
    rfind_ci(content, b"</body")
        .or_else(|| rfind_ci(content, b"</html"))
        .unwrap_or(content.len())
}

fn rfind_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &b[..end]
}

fn trim_newlines_str(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn footer_lines_fit(f: &str) -> bool {
    f.split("\r\n").all(|l| l.len() <= MAX_LINE)
}

/// Normalises line ends to CRLF (RFC 5322 §2.1).
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// The HTML form of a plain-text footer: escaped, one `<br>` per line break.
fn text_to_html(text: &str) -> String {
    let mut esc = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        match c {
            '&' => esc.push_str("&amp;"),
            '<' => esc.push_str("&lt;"),
            '>' => esc.push_str("&gt;"),
            '"' => esc.push_str("&quot;"),
            '\r' => {}
            '\n' => esc.push_str("<br>\r\n"),
            c => esc.push(c),
        }
    }
    format!("<div class=\"keel-footer\"><br>\r\n{esc}</div>\r\n")
}

/// RFC 2045 §6.8 base64 in lines of 76 characters, CRLF between lines (no final CRLF:
/// the part's original line end follows).
fn encode_base64(bytes: &[u8]) -> String {
    let enc = B64.encode(bytes);
    let lines: Vec<&str> = enc
        .as_bytes()
        .chunks(ENCODED_LINE)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("\r\n")
}

/// RFC 2045 §6.7 quoted-printable of UTF-8 text with CRLF line ends (no final CRLF).
fn encode_qp(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut col = 0usize;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            // Rule 2/3: printable ASCII except '=' literally; space and tab literally
            // unless they end the line.
            let literal =
                (b'!'..=b'~').contains(&b) && b != b'=' || (matches!(b, b' ' | b'\t') && !last);
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            // Rule 5: soft line break so no encoded line exceeds 76 characters.
            if col + piece.len() > ENCODED_LINE - 1 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
    }
    out
}

/// The part's header block with `Content-Type` (charset UTF-8, other parameters kept)
/// and `Content-Transfer-Encoding` replaced; `MIME-Version` added to a root part that
/// lacks it (RFC 2045 §4).
fn rewrite_headers(
    block: &[u8],
    part: &MessagePart<'_>,
    html: bool,
    cte: &str,
    is_root: bool,
) -> Vec<u8> {
    let (ctype, subtype) = match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype()
                .unwrap_or(if html { "html" } else { "plain" })
                .to_ascii_lowercase(),
        ),
        None => (
            "text".to_owned(),
            if html { "html" } else { "plain" }.to_owned(),
        ),
    };
    let mut content_type = format!("Content-Type: {ctype}/{subtype}; charset=\"utf-8\"");
    if let Some(attrs) = part.content_type().and_then(|c| c.attributes()) {
        for a in attrs {
            let keep = !a.name.eq_ignore_ascii_case("charset")
                && a.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && a.value.bytes().all(|b| (b' '..=b'~').contains(&b));
            if keep {
                let v = a.value.replace('\\', "\\\\").replace('"', "\\\"");
                content_type.push_str(&format!(";\r\n\t{}=\"{v}\"", a.name));
            }
        }
    }
    // Split the block into fields (a field = a line plus its continuation lines) and
    // the blank separator line with what follows it.
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut tail: &[u8] = b"";
    let mut pos = 0;
    while pos < block.len() {
        let line_end = block[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(block.len(), |i| pos + i + 1);
        let line = &block[pos..line_end];
        if trim_newlines(line).is_empty() {
            tail = &block[pos..];
            break;
        }
        match fields.last_mut() {
            // RFC 5322 §2.2.3: a line starting with WSP continues the previous field.
            Some(last) if matches!(line[0], b' ' | b'\t') => last.1 = line_end,
            _ => fields.push((pos, line_end)),
        }
        pos = line_end;
    }
    let name_is = |f: &[u8], n: &str| {
        f.len() > n.len() && f[..n.len()].eq_ignore_ascii_case(n.as_bytes()) && {
            let rest = &f[n.len()..];
            let rest = &rest[rest
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count()..];
            rest.first() == Some(&b':')
        }
    };
    let mut out = Vec::with_capacity(block.len() + 128);
    let mut has_mime_version = false;
    for (start, end) in fields {
        let f = &block[start..end];
        if name_is(f, "content-type") || name_is(f, "content-transfer-encoding") {
            continue;
        }
        has_mime_version |= name_is(f, "mime-version");
        out.extend_from_slice(f);
        if !f.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    if is_root && !has_mime_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(format!("\r\nContent-Transfer-Encoding: {cte}\r\n").as_bytes());
    if tail.is_empty() {
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(tail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_nested_beyond_the_limits_is_left_unchanged() {
        let footer = Footer {
            text: "-- footer".to_owned(),
            html: None,
            skip_internal: false,
        };
        let mut m = String::new();
        for _ in 0..10_000 {
            m.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        m.push_str("Subject: deep\r\n\r\nbody\r\n");
        assert!(footer.apply(m.as_bytes()).is_none());
    }

    fn footer(skip: bool) -> Footer {
        let mut m = BTreeMap::new();
        m.insert(
            KEY_TEXT.to_owned(),
            serde_json::json!("--\nSent from Example Corp"),
        );
        m.insert(KEY_SKIP_INTERNAL.to_owned(), serde_json::json!(skip));
        Footer::from_settings(&m).expect("footer")
    }

    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// The decoded text of the message's body parts after a round trip through
    /// mail-parser (checks the MIME structure is intact).
    fn bodies(msg: &[u8]) -> (Vec<String>, Vec<String>) {
        let m = MessageParser::default().parse(msg).expect("parses");
        let text = m
            .text_bodies()
            .filter_map(|p| p.text_contents().map(str::to_owned))
            .collect();
        let html = m
            .html_bodies()
            .filter_map(|p| p.text_contents().map(str::to_owned))
            .collect();
        (text, html)
    }

    #[test]
    fn settings_keys() {
        assert_eq!(Footer::from_settings(&BTreeMap::new()), None);
        let f = footer(true);
        assert!(f.skip_internal);
        assert_eq!(f.text, "--\r\nSent from Example Corp");
        assert!(f.html.as_deref().is_some_and(|h| h.contains("--<br>")));
    }

    #[test]
    fn plain_single_part_gets_the_footer_at_the_end() {
        let msg = b"Subject: hi\r\nFrom: a@example.com\r\n\r\nhello\r\n";
        let out = footer(false).apply(msg).expect("changed");
        assert_eq!(
            s(&out),
            "Subject: hi\r\nFrom: a@example.com\r\n\r\nhello\r\n\r\n--\r\nSent from Example Corp\r\n"
        );
    }

    #[test]
    fn multipart_alternative_gets_both_footers() {
        let msg = concat!(
            "Subject: alt\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n",
            "preamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
            "plain body\r\n--b1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n",
            "<html><body><p>html body</p></body></html>\r\n--b1--\r\nepilogue\r\n"
        );
        let out = footer(false).apply(msg.as_bytes()).expect("changed");
        let text = s(&out);
        assert!(
            text.contains("plain body\r\n\r\n--\r\nSent from Example Corp\r\n--b1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("<p>html body</p><div class=\"keel-footer\"><br>\r\n--<br>\r\nSent from Example Corp</div>\r\n</body></html>\r\n--b1--\r\nepilogue"),
            "{text}"
        );
        let (t, h) = bodies(&out);
        assert_eq!(t.len(), 1);
        assert!(t[0].contains("Sent from Example Corp"));
        assert!(h[0].contains("Sent from Example Corp") && h[0].contains("html body"));
    }

    #[test]
    fn base64_and_qp_parts_are_decoded_and_re_encoded() {
        let b64 = B64.encode("caf\u{e9} body\r\n".as_bytes());
        let msg = format!(
            concat!(
                "Subject: enc\r\nMIME-Version: 1.0\r\n",
                "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n",
                "--m\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n",
                "Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                "--m\r\nContent-Type: application/octet-stream\r\n",
                "Content-Disposition: attachment; filename=\"a.bin\"\r\n",
                "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--m--\r\n"
            ),
            b64
        );
        let out = footer(false).apply(msg.as_bytes()).expect("changed");
        let (t, _) = bodies(&out);
        assert_eq!(t.len(), 1);
        assert!(t[0].starts_with("caf\u{e9} body"), "{t:?}");
        assert!(t[0].contains("Sent from Example Corp"));
        let text = s(&out);
        assert!(text.contains("format=\"flowed\""), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: base64"));
        assert!(
            text.contains("\r\nAAEC\r\n--m--\r\n"),
            "attachment untouched"
        );

        let qp = "Subject: qp\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 =\r\nsoft\r\n";
        let out = footer(false).apply(qp.as_bytes()).expect("changed");
        let text = s(&out);
        assert!(text.contains("charset=\"utf-8\""), "{text}");
        assert!(text.contains("MIME-Version: 1.0"), "{text}");
        let m = MessageParser::default().parse(&out).expect("parses");
        let body = m.body_text(0).expect("text");
        assert!(body.starts_with("caf\u{e9} soft"), "{body}");
        assert!(body.contains("Sent from Example Corp"));
    }

    #[test]
    fn non_ascii_footer_on_a_7bit_part_uses_quoted_printable() {
        let mut m = BTreeMap::new();
        m.insert(KEY_TEXT.to_owned(), serde_json::json!("Ä footer"));
        let f = Footer::from_settings(&m).expect("footer");
        let out = f.apply(b"Subject: x\r\n\r\nplain\r\n").expect("changed");
        let text = s(&out);
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(text.contains("=C3=84 footer"), "{text}");
        let m = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(m.body_text(0).as_deref(), Some("plain\r\n\r\nÄ footer\r\n"));
    }

    #[test]
    fn signed_messages_are_left_alone() {
        let msg = concat!(
            "Subject: s\r\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=\"s\"\r\n\r\n",
            "--s\r\nContent-Type: text/plain\r\n\r\nsigned\r\n--s\r\n",
            "Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n"
        );
        assert_eq!(footer(false).apply(msg.as_bytes()), None);
    }

    #[test]
    fn qp_encoder_wraps_and_escapes() {
        let long = "x".repeat(100);
        let e = encode_qp(&format!("a=b \r\n{long}"));
        assert!(e.starts_with("a=3Db=20\r\n"), "{e}");
        assert!(e.lines().all(|l| l.len() <= 76), "{e}");
    }
}
