//! FETCH / UID FETCH (RFC 9051 §6.4.5, §7.5.2), CHANGEDSINCE and VANISHED (RFC 7162
//! §3.1.4.1, §3.2.6).

use keel_mail::{BlobId, ChangeKind, MessageMeta};

use crate::codec::{
    Data, FetchAttribute, FetchCommand, FetchItem, PartPath, Partial, SectionText, SequenceSet,
};
use crate::server::binary;
use crate::server::cmd::imap_datetime;
use crate::server::mime::Part;
use crate::server::selected::wire_flags;
use crate::server::{CmdResult, Reply, Session, ok};

/// Messages whose blobs are read together.
const BLOB_BATCH: usize = 32;

fn needs_blob(a: &FetchAttribute) -> bool {
    matches!(
        a,
        FetchAttribute::Envelope
            | FetchAttribute::Body
            | FetchAttribute::BodyStructure
            | FetchAttribute::BodySection { .. }
            | FetchAttribute::Rfc822
            | FetchAttribute::Rfc822Header
            | FetchAttribute::Rfc822Text
            | FetchAttribute::Binary { .. }
            | FetchAttribute::BinarySize(_)
    )
}

/// Whether fetching `a` sets `\Seen` (RFC 9051 §6.4.5: BODY[...] without .PEEK, RFC822,
/// RFC822.TEXT; RFC 3516 §4.2: BINARY without .PEEK).
fn sets_seen(a: &FetchAttribute) -> bool {
    matches!(
        a,
        FetchAttribute::BodySection { peek: false, .. }
            | FetchAttribute::Binary { peek: false, .. }
            | FetchAttribute::Rfc822
            | FetchAttribute::Rfc822Text
    )
}

/// `<origin.count>` of `data` (RFC 9051 §6.4.5): an origin past the end gives "".
fn slice_partial(d: &[u8], p: &Partial) -> Vec<u8> {
    let start = usize::try_from(p.origin).unwrap_or(usize::MAX).min(d.len());
    let end = start
        .saturating_add(usize::try_from(p.count).unwrap_or(usize::MAX))
        .min(d.len());
    d.get(start..end).unwrap_or_default().to_vec()
}

/// Builds the items of one message; `Err` for a BINARY part that cannot be decoded.
fn items_for(
    attrs: &[FetchAttribute],
    meta: &MessageMeta,
    raw: Option<&[u8]>,
) -> Result<Vec<FetchItem>, Reply> {
    let parsed = raw.map(Part::message);
    let mut out = Vec::with_capacity(attrs.len());
    for a in attrs {
        let item = match a {
            FetchAttribute::Flags => FetchItem::Flags(wire_flags(&meta.flags)),
            FetchAttribute::Uid => FetchItem::Uid(meta.uid),
            FetchAttribute::ModSeq => FetchItem::ModSeq(meta.modseq.max(1)),
            FetchAttribute::InternalDate => {
                FetchItem::InternalDate(imap_datetime(meta.internal_date))
            }
            FetchAttribute::Rfc822Size => FetchItem::Rfc822Size(meta.size),
            FetchAttribute::Envelope => match &parsed {
                Some(p) => FetchItem::Envelope(Box::new(p.envelope())),
                None => continue,
            },
            FetchAttribute::Body | FetchAttribute::BodyStructure => match &parsed {
                Some(p) => {
                    let s = Box::new(p.structure());
                    if matches!(a, FetchAttribute::Body) {
                        FetchItem::Body(s)
                    } else {
                        FetchItem::BodyStructure(s)
                    }
                }
                None => continue,
            },
            FetchAttribute::BodySection {
                section, partial, ..
            } => {
                let (Some(p), Some(raw)) = (&parsed, raw) else {
                    continue;
                };
                let data = p.section(raw, section);
                let (origin, data) = match partial {
                    // RFC 9051 §6.4.5: <origin.count>; an origin past the end gives "".
                    Some(pr) => (Some(pr.origin), data.map(|d| slice_partial(&d, pr))),
                    None => (None, data),
                };
                FetchItem::BodySection {
                    section: section.clone(),
                    origin,
                    data,
                }
            }
            FetchAttribute::Rfc822 => FetchItem::Rfc822(raw.map(<[u8]>::to_vec)),
            FetchAttribute::Rfc822Header => FetchItem::Rfc822Header(
                parsed
                    .as_ref()
                    .and_then(|p| raw.and_then(|r| p.section(r, &header_section()))),
            ),
            FetchAttribute::Rfc822Text => {
                FetchItem::Rfc822Text(parsed.as_ref().map(|p| p.body.to_vec()))
            }
            FetchAttribute::Binary { part, partial, .. } => {
                let (Some(p), Some(raw)) = (&parsed, raw) else {
                    continue;
                };
                let data = binary::decoded(p, raw, part)?;
                FetchItem::Binary {
                    part: part.clone(),
                    // The response carries no origin: RFC 3516 §6 and RFC 9051 §9
                    // `"BINARY" section-binary SP (nstring / literal8)` (erratum 7246).
                    origin: None,
                    data: Some(match partial {
                        Some(pr) => slice_partial(&data, pr),
                        None => data,
                    }),
                }
            }
            FetchAttribute::BinarySize(part) => {
                let (Some(p), Some(raw)) = (&parsed, raw) else {
                    continue;
                };
                FetchItem::BinarySize {
                    part: part.clone(),
                    size: binary::decoded(p, raw, part)?.len() as u64,
                }
            }
        };
        out.push(item);
    }
    Ok(out)
}

/// The untagged FETCH response for `attrs` of the message `raw`, encoded (the fuzz hook,
/// [`crate::server::fuzz_message`]); empty when a BINARY part cannot be decoded.
pub(super) fn response_for_fuzzing(raw: &[u8], attrs: &[FetchAttribute]) -> Vec<u8> {
    let meta = MessageMeta {
        folder: 1,
        uid: 1,
        blob: BlobId::of(raw),
        size: raw.len() as u64,
        flags: Vec::new(),
        internal_date: 0,
        modseq: 1,
    };
    match items_for(attrs, &meta, Some(raw)) {
        Ok(items) => crate::codec::Response::from(Data::Fetch { seq: 1, items })
            .to_bytes(&crate::codec::EncodeOptions::default()),
        Err(_) => Vec::new(),
    }
}

fn header_section() -> crate::codec::Section {
    crate::codec::Section {
        part: Vec::new(),
        text: Some(SectionText::Header),
    }
}

impl Session {
    pub(crate) async fn fetch(&mut self, f: FetchCommand) -> CmdResult {
        let mut attrs = f.attributes.to_list();
        // RFC 9051 §6.4.9: UID FETCH always returns UID.
        if f.uid && !attrs.contains(&FetchAttribute::Uid) {
            attrs.insert(0, FetchAttribute::Uid);
        }
        if f.changed_since.is_some() {
            // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ and enables CONDSTORE.
            if !attrs.contains(&FetchAttribute::ModSeq) {
                attrs.push(FetchAttribute::ModSeq);
            }
        }
        if attrs.contains(&FetchAttribute::ModSeq) {
            self.enabled.condstore = true;
        }
        if f.vanished && !self.enabled.qresync {
            return Err(Reply::bad("VANISHED needs ENABLE QRESYNC"));
        }
        let account = self.log_account().unwrap_or_default();
        // RFC 4314 §4 FETCH: \Seen is set implicitly only with the `s` right.
        let may_set_seen = self.shared_selected().is_none()
            || self
                .selected_rights()
                .await
                .is_ok_and(|r| r.has(keel_mail::Right::Seen));
        let Some(sel) = &self.selected else {
            return Err(Reply::bad("no mailbox selected"));
        };
        let idxs: Vec<usize> = sel
            .resolve(&f.set, f.uid)?
            .into_iter()
            .filter(|&i| sel.msgs.get(i).is_some_and(|m| !m.expunged))
            .filter(|&i| {
                f.changed_since
                    .is_none_or(|cs| sel.msgs.get(i).is_some_and(|m| m.meta.modseq > cs))
            })
            .collect();
        let folder_id = sel.folder_id;
        let read_only = sel.read_only;
        let max_uid = sel.max_uid();
        // RFC 7162 §3.2.6: VANISHED (EARLIER) for expunged UIDs in the set.
        if let (true, Some(cs)) = (f.vanished, f.changed_since) {
            let set = f.set.clone();
            let changes = self
                .blocking(move |mb| Ok(mb.meta().changes_since(&account, cs)?))
                .await?;
            let gone: Vec<u32> = changes
                .iter()
                .filter(|c| c.folder == folder_id && c.kind == ChangeKind::MessageExpunged)
                .map(|c| c.uid)
                .filter(|u| set.contains(*u, max_uid.max(*u)))
                .collect();
            if !gone.is_empty() {
                self.data(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_numbers(&gone),
                });
            }
        }
        // RFC 3516 §4.3: BINARY parts that do not exist or cannot be decoded fail the
        // whole FETCH before any response or \Seen change.
        let binary_parts: Vec<PartPath> = attrs
            .iter()
            .filter_map(|a| match a {
                FetchAttribute::Binary { part, .. } | FetchAttribute::BinarySize(part) => {
                    Some(part.clone())
                }
                _ => None,
            })
            .filter(|p| !p.is_empty())
            .collect();
        if !binary_parts.is_empty() {
            let blobs: Vec<BlobId> = idxs
                .iter()
                .filter_map(|&i| Some(self.selected.as_ref()?.msgs.get(i)?.meta.blob.clone()))
                .collect();
            let failure = self
                .blocking(move |mb| {
                    for id in &blobs {
                        let Ok(raw) = mb.read(id) else { continue };
                        let msg = Part::message(&raw);
                        for p in &binary_parts {
                            if let Err(e) = binary::check(&msg, p) {
                                return Ok(Some(e));
                            }
                        }
                    }
                    Ok(None)
                })
                .await?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        // Implicit \Seen first, so the responses show the new flags (RFC 9051 §6.4.5).
        let mut flags_changed = std::collections::HashSet::new();
        if !read_only && may_set_seen && attrs.iter().any(sets_seen) {
            let todo: Vec<(usize, u32, Vec<String>)> = idxs
                .iter()
                .filter_map(|&i| self.selected.as_ref()?.msgs.get(i).map(|m| (i, m)))
                .filter(|(_, m)| !m.meta.flags.iter().any(|f| f == "\\Seen"))
                .map(|(i, m)| {
                    let mut fl = m.meta.flags.clone();
                    fl.push("\\Seen".into());
                    fl.sort();
                    (i, m.meta.uid, fl)
                })
                .collect();
            if !todo.is_empty() {
                let updated = self
                    .blocking(move |mb| super::store::set_flags_of(mb, folder_id, todo))
                    .await?;
                if let Some(sel) = &mut self.selected {
                    for (i, fl, modseq) in updated {
                        if let Some(m) = sel.msgs_mut().get_mut(i) {
                            m.meta.flags = fl;
                            m.meta.modseq = modseq;
                            flags_changed.insert(i);
                        }
                    }
                }
            }
        }
        let blob = attrs.iter().any(needs_blob);
        for chunk in idxs.chunks(BLOB_BATCH) {
            let metas: Vec<(usize, MessageMeta)> = chunk
                .iter()
                .filter_map(|&i| Some((i, self.selected.as_ref()?.msgs.get(i)?.meta.clone())))
                .collect();
            let raws: Vec<Option<Vec<u8>>> = if blob {
                let ids: Vec<BlobId> = metas.iter().map(|(_, m)| m.blob.clone()).collect();
                self.blocking(move |mb| Ok(ids.iter().map(|id| mb.read(id).ok()).collect()))
                    .await?
            } else {
                vec![None; metas.len()]
            };
            for ((i, meta), raw) in metas.iter().zip(raws) {
                let mut items = items_for(&attrs, meta, raw.as_deref())?;
                if flags_changed.contains(i) && !attrs.contains(&FetchAttribute::Flags) {
                    items.push(FetchItem::Flags(wire_flags(&meta.flags)));
                }
                self.data(Data::Fetch {
                    seq: (*i + 1) as u32,
                    items,
                });
            }
        }
        ok(if f.uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        })
    }
}
