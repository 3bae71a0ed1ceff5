//! Low-level writers for RFC 9051 §4 data formats.

use super::EncodeOptions;
use crate::codec::mutf7;
use crate::codec::parse::is_tag_char;

/// Writes `text` (RFC 9051 §9 `text`: no CR/LF; those become spaces).
pub(crate) fn text(out: &mut Vec<u8>, t: &str) {
    out.extend(t.bytes().map(|b| {
        if b == b'\r' || b == b'\n' || b == 0 {
            b' '
        } else {
            b
        }
    }));
}

/// Writes a number.
pub(crate) fn num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    out.extend_from_slice(n.to_string().as_bytes());
}

fn needs_literal(s: &[u8], opts: &EncodeOptions) -> bool {
    s.len() > opts.quoted_max
        || s.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
        || (!s.is_ascii() && (!opts.utf8 || std::str::from_utf8(s).is_err()))
}

/// Writes a literal `{N}CRLF` + bytes (RFC 9051 §4.3), or `~{N}` (literal8,
/// RFC 3516 §4.3) if the data contains NUL.
pub(crate) fn literal(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        out.push(b'~');
    }
    out.push(b'{');
    num(out, s.len());
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// Writes a quoted string (RFC 9051 §4.3), escaping `"` and `\`.
pub(crate) fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Writes a `string`: quoted when possible, else a literal.
pub(crate) fn string(out: &mut Vec<u8>, s: &[u8], opts: &EncodeOptions) {
    if needs_literal(s, opts) {
        literal(out, s)
    } else {
        quoted(out, s)
    }
}

/// Writes an `nstring`: NIL for `None`.
pub(crate) fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, opts: &EncodeOptions) {
    match s {
        Some(s) => string(out, s, opts),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Writes an `astring`: a bare atom when every byte is an ASTRING-CHAR (and it
/// is not `NIL`), else a string.
pub(crate) fn astring(out: &mut Vec<u8>, s: &[u8], opts: &EncodeOptions) {
    let bare = !s.is_empty()
        && s.iter().all(|&b| crate::codec::parse::is_astring_char(b))
        && !s.eq_ignore_ascii_case(b"NIL");
    if bare {
        out.extend_from_slice(s)
    } else {
        string(out, s, opts)
    }
}

/// Writes a mailbox name (RFC 9051 §9 `mailbox`): modified UTF-7 unless UTF-8
/// is enabled (RFC 3501 §5.1.3, RFC 6855 §3).
pub(crate) fn mailbox(out: &mut Vec<u8>, name: &str, opts: &EncodeOptions) {
    if opts.utf8 {
        astring(out, name.as_bytes(), opts);
    } else {
        astring(out, mutf7::encode(name).as_bytes(), opts);
    }
}

/// Writes an atom-like token known to be safe (keywords, capabilities, flags).
/// Falls back to a quoted string if it contains characters an atom cannot.
pub(crate) fn atom(out: &mut Vec<u8>, s: &str) {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| is_tag_char(b) || b == b'+' || b == b'\\' || b == b'*');
    if ok {
        out.extend_from_slice(s.as_bytes())
    } else {
        quoted(out, s.as_bytes())
    }
}

/// Writes `(a b c)` with `item` for each element.
pub(crate) fn list<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'(');
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        item(out, t);
    }
    out.push(b')');
}
