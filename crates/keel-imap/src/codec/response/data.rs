//! Untagged data responses (RFC 9051 §7.2-§7.4 and extensions).

use super::EncodeOptions;
use super::fetch::FetchItem;
use super::writer::{self, num};
use crate::codec::types::{Flag, MailboxName, SequenceSet, StatusItem};

/// A LIST/LSUB entry (RFC 9051 §7.3.1, LIST-EXTENDED RFC 5258 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListData {
    /// Name attributes with backslash, e.g. `\HasNoChildren`, `\Sent`,
    /// `\Subscribed`, `\NonExistent`.
    pub attributes: Vec<String>,
    /// Hierarchy delimiter; `None` writes NIL (flat namespace).
    pub delimiter: Option<char>,
    /// The mailbox name.
    pub mailbox: MailboxName,
    /// `CHILDINFO` extended data (RFC 5258 §4), e.g. `["SUBSCRIBED"]`.
    pub child_info: Vec<String>,
    /// `OLDNAME` extended data (RFC 9051 §6.3.9.7, after RENAME).
    pub old_name: Option<MailboxName>,
}

impl ListData {
    /// An entry with `/` as delimiter and no extended data.
    pub fn new(mailbox: impl Into<MailboxName>, attributes: &[&str]) -> Self {
        Self {
            attributes: attributes.iter().map(|s| s.to_string()).collect(),
            delimiter: Some('/'),
            mailbox: mailbox.into(),
            child_info: Vec::new(),
            old_name: None,
        }
    }
}

/// One `STATUS` value (RFC 9051 §7.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusValue {
    /// The item.
    pub item: StatusItem,
    /// Its value.
    pub value: u64,
}

/// One ESEARCH result item (RFC 4731 §3.1, RFC 9051 §7.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsearchItem {
    /// `MIN n`
    Min(u32),
    /// `MAX n`
    Max(u32),
    /// `ALL set`
    All(SequenceSet),
    /// `COUNT n`
    Count(u32),
    /// `MODSEQ n` (RFC 7162 §3.1.5)
    ModSeq(u64),
}

/// One namespace (RFC 2342 §5, RFC 9051 §7.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDesc {
    /// Prefix, e.g. `""` or `"Other Users/"`.
    pub prefix: String,
    /// Hierarchy delimiter or `None` (NIL).
    pub delimiter: Option<char>,
}

/// One QUOTA resource (RFC 9208 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaResource {
    /// Resource name, e.g. `STORAGE` (in KiB), `MESSAGE`, `MAILBOX`.
    pub name: String,
    /// Current usage.
    pub usage: u64,
    /// Limit.
    pub limit: u64,
}

/// A THREAD tree node (RFC 5256 §4). `id: None` is a placeholder parent
/// (REFERENCES can produce one for siblings without a common message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadNode {
    /// Message number or UID; `None` for a missing parent.
    pub id: Option<u32>,
    /// Replies. One child continues the chain; several are written as
    /// parenthesised sub-threads.
    pub children: Vec<ThreadNode>,
}

impl ThreadNode {
    /// A node without children.
    pub fn leaf(id: u32) -> Self {
        Self {
            id: Some(id),
            children: Vec::new(),
        }
    }

    /// RFC 5256 §4.2 `thread-list` contents: `thread-members = nz-number *(SP nz-number)
    /// [SP thread-nested]`, `thread-nested = 2*thread-list`. Iterative, so a long reply
    /// chain cannot overflow the stack.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut stack: Vec<Result<&Self, &'static [u8]>> = vec![Ok(self)];
        while let Some(work) = stack.pop() {
            let node = match work {
                Err(bytes) => {
                    out.extend_from_slice(bytes);
                    continue;
                }
                Ok(node) => node,
            };
            if let Some(id) = node.id {
                num(out, id);
            }
            match node.children.as_slice() {
                [] => {}
                [only] => {
                    // A chain continues in the same list; a placeholder with one child
                    // is just that child.
                    if node.id.is_some() {
                        out.push(b' ');
                    }
                    stack.push(Ok(only));
                }
                many => {
                    if node.id.is_some() {
                        out.push(b' ');
                    }
                    for child in many.iter().rev() {
                        stack.push(Err(b")"));
                        stack.push(Ok(child));
                        stack.push(Err(b"("));
                    }
                }
            }
        }
    }
}

/// Untagged data (`* ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `* CAPABILITY caps...` (RFC 9051 §7.2.2)
    Capability(Vec<String>),
    /// `* ENABLED caps...` (RFC 5161 §3.2)
    Enabled(Vec<String>),
    /// `* LIST ...` (RFC 9051 §7.3.1)
    List(ListData),
    /// `* LSUB ...` (RFC 3501 §7.2.3)
    Lsub(ListData),
    /// `* STATUS mailbox (items)` (RFC 9051 §7.3.2)
    Status {
        /// Mailbox.
        mailbox: MailboxName,
        /// Values.
        items: Vec<StatusValue>,
    },
    /// `* SEARCH n...` [(MODSEQ n)] (RFC 3501 §7.2.5, RFC 7162 §3.1.5)
    Search {
        /// Matching numbers.
        ids: Vec<u32>,
        /// Highest mod-sequence of the matches, when MODSEQ was searched.
        modseq: Option<u64>,
    },
    /// `* ESEARCH [(TAG "t")] [UID] items` (RFC 4731 §3.1, RFC 9051 §7.3.4)
    Esearch {
        /// The command's tag (correlator).
        tag: Option<String>,
        /// Numbers are UIDs.
        uid: bool,
        /// Result items.
        items: Vec<EsearchItem>,
    },
    /// `* SORT n...` [(MODSEQ n)] (RFC 5256 §4)
    Sort {
        /// Sorted numbers.
        ids: Vec<u32>,
        /// Highest mod-sequence (RFC 7162 §3.1.5).
        modseq: Option<u64>,
    },
    /// `* THREAD (..)(..)` (RFC 5256 §4)
    Thread(Vec<ThreadNode>),
    /// `* FLAGS (flags)` (RFC 9051 §7.3.5)
    Flags(Vec<Flag>),
    /// `* n EXISTS` (RFC 9051 §7.4.1)
    Exists(u32),
    /// `* n RECENT` (RFC 3501 §7.3.2; IMAP4rev1 only)
    Recent(u32),
    /// `* n EXPUNGE` (RFC 9051 §7.5.1)
    Expunge(u32),
    /// `* VANISHED [(EARLIER)] uids` (QRESYNC RFC 7162 §3.2.10)
    Vanished {
        /// `(EARLIER)`: reply to a FETCH/SELECT, not a live expunge.
        earlier: bool,
        /// Expunged UIDs.
        uids: SequenceSet,
    },
    /// `* NAMESPACE personal other shared` (RFC 2342 §5; empty list is NIL)
    Namespace {
        /// Personal namespaces.
        personal: Vec<NamespaceDesc>,
        /// Other users' namespaces.
        other: Vec<NamespaceDesc>,
        /// Shared namespaces.
        shared: Vec<NamespaceDesc>,
    },
    /// `* ID (...)` or `* ID NIL` (RFC 2971 §3.2)
    Id(Option<Vec<(String, Option<String>)>>),
    /// `* QUOTA root (resource usage limit ...)` (RFC 9208 §5.1)
    Quota {
        /// Quota root.
        root: String,
        /// Resources.
        resources: Vec<QuotaResource>,
    },
    /// `* QUOTAROOT mailbox root...` (RFC 9208 §5.2)
    QuotaRoot {
        /// Mailbox.
        mailbox: MailboxName,
        /// Its quota roots.
        roots: Vec<String>,
    },
    /// `* ACL mailbox (identifier rights)...` (RFC 4314 §3.6)
    Acl {
        /// Mailbox.
        mailbox: MailboxName,
        /// (identifier, rights) pairs.
        entries: Vec<(String, String)>,
    },
    /// `* LISTRIGHTS mailbox identifier required optional...` (RFC 4314 §3.7)
    ListRights {
        /// Mailbox.
        mailbox: MailboxName,
        /// Identifier.
        identifier: String,
        /// Rights always granted.
        required: String,
        /// Groups of rights that can be granted (each group together).
        optional: Vec<String>,
    },
    /// `* MYRIGHTS mailbox rights` (RFC 4314 §3.8)
    MyRights {
        /// Mailbox.
        mailbox: MailboxName,
        /// Rights of the current user.
        rights: String,
    },
    /// `* n FETCH (items)` (RFC 9051 §7.5.2)
    Fetch {
        /// Message sequence number.
        seq: u32,
        /// Data items.
        items: Vec<FetchItem>,
    },
}

fn delimiter(out: &mut Vec<u8>, d: Option<char>, opts: &EncodeOptions) {
    match d {
        Some(c) => {
            let mut buf = [0u8; 4];
            writer::string(out, c.encode_utf8(&mut buf).as_bytes(), opts);
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

fn spaced_atoms(out: &mut Vec<u8>, items: &[String]) {
    for i in items {
        out.push(b' ');
        writer::atom(out, i);
    }
}

fn ids_modseq(out: &mut Vec<u8>, ids: &[u32], modseq: Option<u64>) {
    for id in ids {
        out.push(b' ');
        num(out, id);
    }
    if let Some(m) = modseq {
        out.extend_from_slice(b" (MODSEQ ");
        num(out, m);
        out.push(b')');
    }
}

/// `namespace = nil / "(" 1*namespace-descr ")"` (RFC 9051 §9, RFC 2342 §5):
/// descriptors are concatenated without separators.
fn namespaces(out: &mut Vec<u8>, ns: &[NamespaceDesc], opts: &EncodeOptions) {
    if ns.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for n in ns {
        out.push(b'(');
        let prefix = if opts.utf8 {
            n.prefix.clone()
        } else {
            crate::codec::mutf7::encode(&n.prefix)
        };
        writer::string(out, prefix.as_bytes(), opts);
        out.push(b' ');
        delimiter(out, n.delimiter, opts);
        out.push(b')');
    }
    out.push(b')');
}

impl ListData {
    fn encode(&self, out: &mut Vec<u8>, opts: &EncodeOptions) {
        writer::list(out, &self.attributes, |o, a| writer::atom(o, a));
        out.push(b' ');
        delimiter(out, self.delimiter, opts);
        out.push(b' ');
        writer::mailbox(out, self.mailbox.as_str(), opts);
        // RFC 5258 §3.4 mbox-list-extended.
        let mut ext: Vec<Vec<u8>> = Vec::new();
        if !self.child_info.is_empty() {
            let mut e = b"\"CHILDINFO\" ".to_vec();
            writer::list(&mut e, &self.child_info, |o, c| {
                writer::quoted(o, c.as_bytes())
            });
            ext.push(e);
        }
        if let Some(old) = &self.old_name {
            let mut e = b"\"OLDNAME\" (".to_vec();
            writer::mailbox(&mut e, old.as_str(), opts);
            e.push(b')');
            ext.push(e);
        }
        if !ext.is_empty() {
            out.push(b' ');
            writer::list(out, &ext, |o, e| o.extend_from_slice(e));
        }
    }
}

impl Data {
    pub(crate) fn encode(&self, out: &mut Vec<u8>, opts: &EncodeOptions) {
        out.extend_from_slice(b"* ");
        match self {
            Self::Capability(caps) => {
                out.extend_from_slice(b"CAPABILITY");
                spaced_atoms(out, caps);
            }
            Self::Enabled(caps) => {
                out.extend_from_slice(b"ENABLED");
                spaced_atoms(out, caps);
            }
            Self::List(l) => {
                out.extend_from_slice(b"LIST ");
                l.encode(out, opts);
            }
            Self::Lsub(l) => {
                out.extend_from_slice(b"LSUB ");
                l.encode(out, opts);
            }
            Self::Status { mailbox, items } => {
                out.extend_from_slice(b"STATUS ");
                writer::mailbox(out, mailbox.as_str(), opts);
                out.push(b' ');
                writer::list(out, items, |o, v| {
                    o.extend_from_slice(v.item.as_str().as_bytes());
                    o.push(b' ');
                    num(o, v.value);
                });
            }
            Self::Search { ids, modseq } => {
                out.extend_from_slice(b"SEARCH");
                ids_modseq(out, ids, *modseq);
            }
            Self::Sort { ids, modseq } => {
                out.extend_from_slice(b"SORT");
                ids_modseq(out, ids, *modseq);
            }
            Self::Esearch { tag, uid, items } => {
                out.extend_from_slice(b"ESEARCH");
                if let Some(t) = tag {
                    out.extend_from_slice(b" (TAG ");
                    writer::quoted(out, t.as_bytes());
                    out.push(b')');
                }
                if *uid {
                    out.extend_from_slice(b" UID");
                }
                for item in items {
                    out.push(b' ');
                    let s = match item {
                        EsearchItem::Min(n) => format!("MIN {n}"),
                        EsearchItem::Max(n) => format!("MAX {n}"),
                        EsearchItem::All(set) => format!("ALL {set}"),
                        EsearchItem::Count(n) => format!("COUNT {n}"),
                        EsearchItem::ModSeq(n) => format!("MODSEQ {n}"),
                    };
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Self::Thread(roots) => {
                out.extend_from_slice(b"THREAD");
                if !roots.is_empty() {
                    out.push(b' ');
                }
                for r in roots {
                    out.push(b'(');
                    r.encode(out);
                    out.push(b')');
                }
            }
            Self::Flags(flags) => {
                out.extend_from_slice(b"FLAGS ");
                writer::list(out, flags, |o, f| writer::atom(o, &f.to_string()));
            }
            Self::Exists(n) => out.extend_from_slice(format!("{n} EXISTS").as_bytes()),
            Self::Recent(n) => out.extend_from_slice(format!("{n} RECENT").as_bytes()),
            Self::Expunge(n) => out.extend_from_slice(format!("{n} EXPUNGE").as_bytes()),
            Self::Vanished { earlier, uids } => {
                out.extend_from_slice(b"VANISHED ");
                if *earlier {
                    out.extend_from_slice(b"(EARLIER) ");
                }
                out.extend_from_slice(uids.to_string().as_bytes());
            }
            Self::Namespace {
                personal,
                other,
                shared,
            } => {
                out.extend_from_slice(b"NAMESPACE ");
                for (i, ns) in [personal, other, shared].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    namespaces(out, ns, opts);
                }
            }
            Self::Id(params) => {
                out.extend_from_slice(b"ID ");
                match params {
                    None => out.extend_from_slice(b"NIL"),
                    Some(p) => writer::list(out, p, |o, (k, v)| {
                        writer::string(o, k.as_bytes(), opts);
                        o.push(b' ');
                        writer::nstring(o, v.as_deref().map(str::as_bytes), opts);
                    }),
                }
            }
            Self::Quota { root, resources } => {
                out.extend_from_slice(b"QUOTA ");
                writer::astring(out, root.as_bytes(), opts);
                out.push(b' ');
                writer::list(out, resources, |o, r| {
                    writer::atom(o, &r.name);
                    o.extend_from_slice(format!(" {} {}", r.usage, r.limit).as_bytes());
                });
            }
            Self::QuotaRoot { mailbox, roots } => {
                out.extend_from_slice(b"QUOTAROOT ");
                writer::mailbox(out, mailbox.as_str(), opts);
                for r in roots {
                    out.push(b' ');
                    writer::astring(out, r.as_bytes(), opts);
                }
            }
            Self::Acl { mailbox, entries } => {
                out.extend_from_slice(b"ACL ");
                writer::mailbox(out, mailbox.as_str(), opts);
                for (id, rights) in entries {
                    out.push(b' ');
                    writer::astring(out, id.as_bytes(), opts);
                    out.push(b' ');
                    writer::astring(out, rights.as_bytes(), opts);
                }
            }
            Self::ListRights {
                mailbox,
                identifier,
                required,
                optional,
            } => {
                out.extend_from_slice(b"LISTRIGHTS ");
                writer::mailbox(out, mailbox.as_str(), opts);
                out.push(b' ');
                writer::astring(out, identifier.as_bytes(), opts);
                out.push(b' ');
                // RFC 4314 §3.7: required rights may be empty.
                writer::astring(out, required.as_bytes(), opts);
                for o in optional {
                    out.push(b' ');
                    writer::astring(out, o.as_bytes(), opts);
                }
            }
            Self::MyRights { mailbox, rights } => {
                out.extend_from_slice(b"MYRIGHTS ");
                writer::mailbox(out, mailbox.as_str(), opts);
                out.push(b' ');
                writer::astring(out, rights.as_bytes(), opts);
            }
            Self::Fetch { seq, items } => {
                out.extend_from_slice(format!("{seq} FETCH ").as_bytes());
                writer::list(out, items, |o, i| i.encode(o, opts));
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}
