//! ENVELOPE and BODYSTRUCTURE shapes (RFC 9051 §7.5.2, §9 `envelope`, `body`).
//!
//! The server fills these from the parsed message; the codec only writes them.
//! Strings are raw header bytes (RFC 2047 encoded words are left as they are,
//! RFC 9051 §7.5.2).

use super::EncodeOptions;
use super::writer::{self, num};

/// An address (RFC 9051 §9 `address`). A group is written as an address
/// with `host: None` and the group name in `mailbox` (start), then the
/// members, then an address with `mailbox: None` and `host: None` (end).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// Display name (`addr-name`).
    pub name: Option<Vec<u8>>,
    /// Source route (`addr-adl`), obsolete; normally `None`.
    pub adl: Option<Vec<u8>>,
    /// Local part, or group name.
    pub mailbox: Option<Vec<u8>>,
    /// Domain; `None` marks group syntax.
    pub host: Option<Vec<u8>>,
}

/// `ENVELOPE` (RFC 9051 §7.5.2): `(date subject from sender reply-to to cc bcc
/// in-reply-to message-id)`. Empty address lists are written as NIL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Date header.
    pub date: Option<Vec<u8>>,
    /// Subject header.
    pub subject: Option<Vec<u8>>,
    /// From.
    pub from: Vec<Address>,
    /// Sender (the server sets it to From when absent, RFC 9051 §7.5.2).
    pub sender: Vec<Address>,
    /// Reply-To (set to From when absent).
    pub reply_to: Vec<Address>,
    /// To.
    pub to: Vec<Address>,
    /// Cc.
    pub cc: Vec<Address>,
    /// Bcc.
    pub bcc: Vec<Address>,
    /// In-Reply-To.
    pub in_reply_to: Option<Vec<u8>>,
    /// Message-ID.
    pub message_id: Option<Vec<u8>>,
}

/// `body-fld-dsp = "(" string SP body-fld-param ")" / nil`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disposition {
    /// `inline`, `attachment`, ...
    pub kind: String,
    /// Parameters such as `filename`.
    pub params: Vec<(String, String)>,
}

/// Extension data beyond the defined fields (`body-extension`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyExtension {
    /// A string or NIL.
    NString(Option<Vec<u8>>),
    /// A number.
    Number(u64),
    /// A nested list.
    List(Vec<BodyExtension>),
}

/// Extension data of a single part (`body-ext-1part`), BODYSTRUCTURE only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SinglePartExt {
    /// Content-MD5.
    pub md5: Option<String>,
    /// Content-Disposition.
    pub disposition: Option<Disposition>,
    /// Content-Language values (NIL when empty).
    pub language: Vec<String>,
    /// Content-Location.
    pub location: Option<String>,
    /// Further extension data.
    pub extensions: Vec<BodyExtension>,
}

/// Extension data of a multipart (`body-ext-mpart`), BODYSTRUCTURE only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiPartExt {
    /// Content-Type parameters (e.g. `boundary`).
    pub params: Vec<(String, String)>,
    /// Content-Disposition.
    pub disposition: Option<Disposition>,
    /// Content-Language values.
    pub language: Vec<String>,
    /// Content-Location.
    pub location: Option<String>,
    /// Further extension data.
    pub extensions: Vec<BodyExtension>,
}

/// What kind of single part this is (`body-type-basic` / `-text` / `-msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinglePartKind {
    /// Any other type.
    Basic,
    /// `TEXT/*`: adds the line count.
    Text {
        /// Lines in the encoded body.
        lines: u64,
    },
    /// `MESSAGE/RFC822` or `MESSAGE/GLOBAL`: adds the enclosed message's
    /// envelope, structure and line count.
    Message {
        /// Envelope of the enclosed message.
        envelope: Box<Envelope>,
        /// Structure of the enclosed message.
        body: Box<BodyStructure>,
        /// Lines in the encoded body.
        lines: u64,
    },
}

/// A non-multipart body part (`body-type-1part`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglePart {
    /// Media type, e.g. `TEXT` (written as a string).
    pub media_type: String,
    /// Media subtype, e.g. `PLAIN`.
    pub media_subtype: String,
    /// Content-Type parameters, e.g. `("CHARSET" "US-ASCII")`.
    pub params: Vec<(String, String)>,
    /// Content-ID.
    pub id: Option<String>,
    /// Content-Description.
    pub description: Option<String>,
    /// Content-Transfer-Encoding, e.g. `7BIT`.
    pub encoding: String,
    /// Size of the encoded body in octets.
    pub octets: u64,
    /// Type-specific fields.
    pub kind: SinglePartKind,
    /// Extension data (written only for BODYSTRUCTURE).
    pub ext: Option<SinglePartExt>,
}

/// `body` (RFC 9051 §9): a single part or a multipart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStructure {
    /// A leaf part.
    Single(SinglePart),
    /// A multipart with its children (at least one).
    Multi {
        /// The parts.
        parts: Vec<BodyStructure>,
        /// Multipart subtype, e.g. `MIXED`.
        subtype: String,
        /// Extension data (written only for BODYSTRUCTURE).
        ext: Option<MultiPartExt>,
    },
}

fn addresses(out: &mut Vec<u8>, list: &[Address], opts: &EncodeOptions) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        writer::nstring(out, a.name.as_deref(), opts);
        out.push(b' ');
        writer::nstring(out, a.adl.as_deref(), opts);
        out.push(b' ');
        writer::nstring(out, a.mailbox.as_deref(), opts);
        out.push(b' ');
        writer::nstring(out, a.host.as_deref(), opts);
        out.push(b')');
    }
    out.push(b')');
}

impl Envelope {
    pub(crate) fn encode(&self, out: &mut Vec<u8>, opts: &EncodeOptions) {
        out.push(b'(');
        writer::nstring(out, self.date.as_deref(), opts);
        out.push(b' ');
        writer::nstring(out, self.subject.as_deref(), opts);
        for list in [
            &self.from,
            &self.sender,
            &self.reply_to,
            &self.to,
            &self.cc,
            &self.bcc,
        ] {
            out.push(b' ');
            addresses(out, list, opts);
        }
        out.push(b' ');
        writer::nstring(out, self.in_reply_to.as_deref(), opts);
        out.push(b' ');
        writer::nstring(out, self.message_id.as_deref(), opts);
        out.push(b')');
    }
}

/// `body-fld-param = "(" string SP string *(SP string SP string) ")" / nil`.
fn params(out: &mut Vec<u8>, p: &[(String, String)], opts: &EncodeOptions) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    writer::list(out, p, |o, (k, v)| {
        writer::string(o, k.as_bytes(), opts);
        o.push(b' ');
        writer::string(o, v.as_bytes(), opts);
    });
}

fn nstr(out: &mut Vec<u8>, s: Option<&String>, opts: &EncodeOptions) {
    writer::nstring(out, s.map(|s| s.as_bytes()), opts);
}

/// `[SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]`
fn ext_tail(
    out: &mut Vec<u8>,
    dsp: Option<&Disposition>,
    lang: &[String],
    loc: Option<&String>,
    extensions: &[BodyExtension],
    opts: &EncodeOptions,
) {
    out.push(b' ');
    match dsp {
        Some(d) => {
            out.push(b'(');
            writer::string(out, d.kind.as_bytes(), opts);
            out.push(b' ');
            params(out, &d.params, opts);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    // body-fld-lang = nstring / "(" string *(SP string) ")"
    match lang {
        [] => out.extend_from_slice(b"NIL"),
        [one] => writer::string(out, one.as_bytes(), opts),
        many => writer::list(out, many, |o, l| writer::string(o, l.as_bytes(), opts)),
    }
    out.push(b' ');
    nstr(out, loc, opts);
    for e in extensions {
        out.push(b' ');
        extension(out, e, opts, 0);
    }
}

fn extension(out: &mut Vec<u8>, e: &BodyExtension, opts: &EncodeOptions, depth: usize) {
    match e {
        BodyExtension::NString(s) => writer::nstring(out, s.as_deref(), opts),
        BodyExtension::Number(n) => num(out, n),
        BodyExtension::List(v) if !v.is_empty() && depth < 100 => {
            writer::list(out, v, |o, x| extension(o, x, opts, depth + 1));
        }
        BodyExtension::List(_) => out.extend_from_slice(b"NIL"),
    }
}

impl BodyStructure {
    /// Writes `body`; `extensible` selects BODYSTRUCTURE (with extension
    /// data) over BODY.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, extensible: bool, opts: &EncodeOptions) {
        out.push(b'(');
        match self {
            Self::Single(p) => {
                // body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
                //               body-fld-enc SP body-fld-octets
                writer::string(out, p.media_type.as_bytes(), opts);
                out.push(b' ');
                writer::string(out, p.media_subtype.as_bytes(), opts);
                out.push(b' ');
                params(out, &p.params, opts);
                out.push(b' ');
                nstr(out, p.id.as_ref(), opts);
                out.push(b' ');
                nstr(out, p.description.as_ref(), opts);
                out.push(b' ');
                writer::string(out, p.encoding.as_bytes(), opts);
                out.push(b' ');
                num(out, p.octets);
                match &p.kind {
                    SinglePartKind::Basic => {}
                    SinglePartKind::Text { lines } => {
                        out.push(b' ');
                        num(out, lines);
                    }
                    SinglePartKind::Message {
                        envelope,
                        body,
                        lines,
                    } => {
                        out.push(b' ');
                        envelope.encode(out, opts);
                        out.push(b' ');
                        body.encode(out, extensible, opts);
                        out.push(b' ');
                        num(out, lines);
                    }
                }
                if let (true, Some(e)) = (extensible, &p.ext) {
                    // body-ext-1part = body-fld-md5 [SP body-fld-dsp ...]
                    out.push(b' ');
                    nstr(out, e.md5.as_ref(), opts);
                    ext_tail(
                        out,
                        e.disposition.as_ref(),
                        &e.language,
                        e.location.as_ref(),
                        &e.extensions,
                        opts,
                    );
                }
            }
            Self::Multi {
                parts,
                subtype,
                ext,
            } => {
                // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
                for part in parts {
                    part.encode(out, extensible, opts);
                }
                out.push(b' ');
                writer::string(out, subtype.as_bytes(), opts);
                if let (true, Some(e)) = (extensible, ext) {
                    out.push(b' ');
                    params(out, &e.params, opts);
                    ext_tail(
                        out,
                        e.disposition.as_ref(),
                        &e.language,
                        e.location.as_ref(),
                        &e.extensions,
                        opts,
                    );
                }
            }
        }
        out.push(b')');
    }
}
