//! FETCH response items (RFC 9051 §7.5.2).

use super::EncodeOptions;
use super::body::{BodyStructure, Envelope};
use super::writer::{self, num};
use crate::codec::types::{DateTime, Flag, PartPath, Section};

/// One data item of `* n FETCH (...)` (RFC 9051 §7.5.2 `msg-att`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    /// `FLAGS (...)`
    Flags(Vec<Flag>),
    /// `UID n`
    Uid(u32),
    /// `MODSEQ (n)` (RFC 7162 §3.1.4.1)
    ModSeq(u64),
    /// `INTERNALDATE "..."`
    InternalDate(DateTime),
    /// `RFC822.SIZE n`
    Rfc822Size(u64),
    /// `ENVELOPE (...)`
    Envelope(Box<Envelope>),
    /// `BODY (...)`: the structure without extension data.
    Body(Box<BodyStructure>),
    /// `BODYSTRUCTURE (...)`: with extension data.
    BodyStructure(Box<BodyStructure>),
    /// `BODY[section]<origin> data`. The section is echoed as requested,
    /// except that `BODY.PEEK` is answered as `BODY` (RFC 9051 §6.4.5).
    /// `origin` is set for a partial fetch. `None` data is NIL.
    BodySection {
        /// The section.
        section: Section,
        /// Partial origin octet, if a partial range was requested.
        origin: Option<u64>,
        /// The data.
        data: Option<Vec<u8>>,
    },
    /// `BINARY[part]<origin> data` (RFC 3516 §4.2); written as literal8 when
    /// it contains NUL.
    Binary {
        /// Part path.
        part: PartPath,
        /// Partial origin.
        origin: Option<u64>,
        /// Decoded data; `None` is NIL.
        data: Option<Vec<u8>>,
    },
    /// `BINARY.SIZE[part] n` (RFC 3516 §4.2)
    BinarySize {
        /// Part path.
        part: PartPath,
        /// Decoded size.
        size: u64,
    },
    /// `RFC822 data` (IMAP4rev1)
    Rfc822(Option<Vec<u8>>),
    /// `RFC822.HEADER data` (IMAP4rev1)
    Rfc822Header(Option<Vec<u8>>),
    /// `RFC822.TEXT data` (IMAP4rev1)
    Rfc822Text(Option<Vec<u8>>),
}

fn part(out: &mut Vec<u8>, p: &[u32]) {
    out.push(b'[');
    for (i, n) in p.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        num(out, n);
    }
    out.push(b']');
}

fn origin(out: &mut Vec<u8>, o: Option<u64>) {
    if let Some(o) = o {
        out.push(b'<');
        num(out, o);
        out.push(b'>');
    }
}

/// Message data: a literal unless short and plain (RFC 9051 §4.3).
fn data(out: &mut Vec<u8>, d: Option<&[u8]>, opts: &EncodeOptions) {
    writer::nstring(out, d, opts);
}

impl FetchItem {
    pub(crate) fn encode(&self, out: &mut Vec<u8>, opts: &EncodeOptions) {
        match self {
            Self::Flags(flags) => {
                out.extend_from_slice(b"FLAGS ");
                writer::list(out, flags, |o, f| writer::atom(o, &f.to_string()));
            }
            Self::Uid(n) => {
                out.extend_from_slice(b"UID ");
                num(out, n);
            }
            Self::ModSeq(n) => {
                out.extend_from_slice(b"MODSEQ (");
                num(out, n);
                out.push(b')');
            }
            Self::InternalDate(d) => {
                out.extend_from_slice(b"INTERNALDATE ");
                writer::quoted(out, d.to_string().as_bytes());
            }
            Self::Rfc822Size(n) => {
                out.extend_from_slice(b"RFC822.SIZE ");
                num(out, n);
            }
            Self::Envelope(e) => {
                out.extend_from_slice(b"ENVELOPE ");
                e.encode(out, opts);
            }
            Self::Body(b) => {
                out.extend_from_slice(b"BODY ");
                b.encode(out, false, opts);
            }
            Self::BodyStructure(b) => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                b.encode(out, true, opts);
            }
            Self::BodySection {
                section,
                origin: o,
                data: d,
            } => {
                out.extend_from_slice(b"BODY[");
                out.extend_from_slice(section.to_string().as_bytes());
                out.push(b']');
                origin(out, *o);
                out.push(b' ');
                data(out, d.as_deref(), opts);
            }
            Self::Binary {
                part: p,
                origin: o,
                data: d,
            } => {
                out.extend_from_slice(b"BINARY");
                part(out, p);
                origin(out, *o);
                out.push(b' ');
                match d {
                    Some(d) if d.contains(&0) => writer::literal(out, d),
                    _ => data(out, d.as_deref(), opts),
                }
            }
            Self::BinarySize { part: p, size } => {
                out.extend_from_slice(b"BINARY.SIZE");
                part(out, p);
                out.push(b' ');
                num(out, size);
            }
            Self::Rfc822(d) => {
                out.extend_from_slice(b"RFC822 ");
                data(out, d.as_deref(), opts);
            }
            Self::Rfc822Header(d) => {
                out.extend_from_slice(b"RFC822.HEADER ");
                data(out, d.as_deref(), opts);
            }
            Self::Rfc822Text(d) => {
                out.extend_from_slice(b"RFC822.TEXT ");
                data(out, d.as_deref(), opts);
            }
        }
    }
}
