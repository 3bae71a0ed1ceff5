//! Modified UTF-7 mailbox names, RFC 3501 §5.1.3 (also RFC 9051 §5.1.3 for
//! IMAP4rev1 compatibility).
//!
//! Printable US-ASCII except `&` stands for itself; `&` is written `&-`; any other
//! run of characters is written `&` + modified base64 (RFC 2152 with `,` instead of
//! `/`, no padding) of its UTF-16BE form + `-`.
//!
//! ```
//! use keel_imap::codec::mutf7;
//! assert_eq!(mutf7::decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), "~peter/mail/台北/日本語");
//! assert_eq!(mutf7::encode("日本語"), "&ZeVnLIqe-");
//! ```

use super::base64::value;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a modified UTF-7 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mutf7Error {
    /// A byte outside printable US-ASCII appeared (RFC 3501 §5.1.3).
    #[error("non-printable or 8-bit character in modified UTF-7")]
    NonAscii,
    /// A `&` shift was not closed by `-`.
    #[error("unterminated base64 section in modified UTF-7")]
    Unterminated,
    /// A character outside the modified base64 alphabet inside a shift.
    #[error("invalid modified base64 character")]
    BadBase64,
    /// The shifted run did not decode to whole, valid UTF-16.
    #[error("invalid UTF-16 in modified UTF-7")]
    BadUtf16,
    /// A printable ASCII character was base64-encoded, which RFC 3501 §5.1.3
    /// forbids ("MUST NOT be used to represent ... printable US-ASCII").
    #[error("printable ASCII encoded in modified base64")]
    NotCanonical,
}

/// Encodes a Unicode mailbox name as modified UTF-7 (RFC 3501 §5.1.3).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut out, &mut pending);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn flush(out: &mut String, pending: &mut Vec<u16>) {
    if pending.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    let mut acc = 0u32;
    let mut bits = 0u32;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out.push('-');
    pending.clear();
}

/// Decodes a modified UTF-7 mailbox name (RFC 3501 §5.1.3), strictly.
pub fn decode(name: &str) -> Result<String, Mutf7Error> {
    decode_bytes(name.as_bytes())
}

/// Like [`decode`], from raw bytes.
pub fn decode_bytes(name: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = name.get(i) {
        if !(0x20..=0x7e).contains(&c) {
            return Err(Mutf7Error::NonAscii);
        }
        if c != b'&' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let rest = name.get(i + 1..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| b == b'-')
            .ok_or(Mutf7Error::Unterminated)?;
        let run = &rest[..end];
        i += end + 2;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut units = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0u32;
        for &b in run {
            acc = (acc << 6) | value(b, b'+', b',').ok_or(Mutf7Error::BadBase64)?;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push(((acc >> bits) & 0xffff) as u16);
            }
        }
        // Leftover bits must be fewer than 6 and all zero.
        if bits >= 6 || (acc & ((1 << bits) - 1)) != 0 {
            return Err(Mutf7Error::BadBase64);
        }
        let s = String::from_utf16(&units).map_err(|_| Mutf7Error::BadUtf16)?;
        if s.chars().any(|c| (' '..='~').contains(&c)) {
            return Err(Mutf7Error::NotCanonical);
        }
        out.push_str(&s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_vectors() {
        // RFC 3501 §5.1.3 example.
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(decode("&ZeVnLIqe-").unwrap(), "日本語");
        assert_eq!(encode("日本語"), "&ZeVnLIqe-");
        assert_eq!(decode("Tom &- Jerry").unwrap(), "Tom & Jerry");
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").unwrap(), "Entwürfe");
        // Astral plane (surrogate pair).
        let s = "mail 😀";
        assert_eq!(decode(&encode(s)).unwrap(), s);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode("&ZeVnLIqe"), Err(Mutf7Error::Unterminated));
        assert_eq!(decode("&Ze/nLIqe-"), Err(Mutf7Error::BadBase64));
        assert_eq!(decode("&AGE-"), Err(Mutf7Error::NotCanonical)); // "a"
        assert_eq!(decode("&2D0-"), Err(Mutf7Error::BadUtf16)); // lone surrogate
        assert_eq!(decode_bytes("é".as_bytes()), Err(Mutf7Error::NonAscii));
    }
}
