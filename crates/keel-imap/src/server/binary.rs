//! BINARY (RFC 3516): a body part with its content-transfer-encoding removed.
//!
//! The part tree comes from [`crate::server::mime`]; the decoders are mail-parser's.

use crate::codec::Code;
use crate::server::Reply;
use crate::server::mime::{Part, field};

/// How a part's content is encoded on the wire (RFC 2045 §6.1).
enum Cte {
    Identity,
    Base64,
    QuotedPrintable,
}

/// The part at `path` and its transfer encoding, or the NO that BINARY answers:
///
/// - An empty path is the whole message, as stored (it has no transfer encoding of its
///   own).
/// - A multipart or `message/rfc822` part is returned as is: RFC 2045 §6.4 allows only
///   7bit, 8bit or binary on composite types.
/// - A missing part is `NO` (there is nothing to decode); an encoding the server does not
///   know is `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
fn locate<'p, 'a>(msg: &'p Part<'a>, path: &[u32]) -> Result<(&'p Part<'a>, Cte), Reply> {
    if path.is_empty() {
        return Ok((msg, Cte::Identity));
    }
    let part = msg
        .resolve(path)
        .ok_or_else(|| Reply::no("no such body part"))?;
    if part.ctype == "multipart" || part.message.is_some() {
        return Ok((part, Cte::Identity));
    }
    let cte = field(part.header, "Content-Transfer-Encoding")
        .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
        .unwrap_or_default();
    let cte = match cte.as_str() {
        // RFC 2045 §6.1: identity encodings (and the default when the field is absent).
        "" | "7bit" | "8bit" | "binary" => Cte::Identity,
        "base64" => Cte::Base64,
        "quoted-printable" => Cte::QuotedPrintable,
        _ => {
            return Err(
                Reply::no(format!("unknown content-transfer-encoding {cte}"))
                    .code(Code::UnknownCte),
            );
        }
    };
    Ok((part, cte))
}

/// Whether `BINARY[path]` can be answered (run before any response or `\Seen` change, so
/// a failing FETCH has no partial effect).
pub(crate) fn check(msg: &Part<'_>, path: &[u32]) -> Result<(), Reply> {
    locate(msg, path).map(|_| ())
}

/// The decoded content of `BINARY[path]` (RFC 3516 §4.2, RFC 9051 §6.4.5).
pub(crate) fn decoded(msg: &Part<'_>, raw: &[u8], path: &[u32]) -> Result<Vec<u8>, Reply> {
    let (part, cte) = locate(msg, path)?;
    if path.is_empty() {
        return Ok(raw.to_vec());
    }
    match cte {
        Cte::Identity => Ok(part.body.to_vec()),
        Cte::Base64 => mail_parser::decoders::base64::base64_decode(part.body)
            .ok_or_else(|| Reply::no("the base64 content cannot be decoded").code(Code::Parse)),
        Cte::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(part.body).ok_or_else(
                || Reply::no("the quoted-printable content cannot be decoded").code(Code::Parse),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@example.org\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 =3D soft=\r\n\
break\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAEC/w==\r\n\
--b\r\n\
Content-Type: application/x-odd\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\
\r\n\
begin 644 x\r\n\
--b\r\n\
\r\n\
plain default\r\n\
--b--\r\n";

    fn get(path: &[u32]) -> Result<Vec<u8>, Reply> {
        decoded(&Part::message(MSG), MSG, path)
    }

    #[test]
    fn decodes_quoted_printable_and_base64() {
        assert_eq!(get(&[1]).unwrap(), "café = softbreak".as_bytes());
        assert_eq!(get(&[2]).unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(get(&[4]).unwrap(), b"plain default");
        assert_eq!(get(&[]).unwrap(), MSG);
    }

    #[test]
    fn unknown_encoding_and_missing_part() {
        let e = get(&[3]).unwrap_err();
        assert_eq!(e.code, Some(Code::UnknownCte));
        assert!(check(&Part::message(MSG), &[3]).is_err());
        assert!(check(&Part::message(MSG), &[2]).is_ok());
        let e = get(&[9]).unwrap_err();
        assert!(e.code.is_none());
        assert!(get(&[1, 5]).is_err());
    }
}
