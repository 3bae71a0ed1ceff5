//! Response codes (RFC 9051 §7.1 `resp-text-code` and extensions).

use super::writer;
use crate::codec::types::{Flag, SequenceSet};

/// A response code, written in brackets before the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// `ALERT` (RFC 9051 §7.1): show the text to the user.
    Alert,
    /// `ALREADYEXISTS` (RFC 5530 §3)
    AlreadyExists,
    /// `APPENDUID uidvalidity uids` (UIDPLUS RFC 4315 §3, RFC 9051 §7.1)
    AppendUid {
        /// UIDVALIDITY of the destination.
        uidvalidity: u32,
        /// UIDs assigned (one per message for MULTIAPPEND).
        uids: SequenceSet,
    },
    /// `AUTHENTICATIONFAILED` (RFC 5530 §3)
    AuthenticationFailed,
    /// `AUTHORIZATIONFAILED` (RFC 5530 §3)
    AuthorizationFailed,
    /// `BADCHARSET [(charsets)]` (RFC 9051 §7.1)
    BadCharset(Vec<String>),
    /// `CANNOT` (RFC 5530 §3)
    Cannot,
    /// `CAPABILITY caps...` (RFC 9051 §7.1)
    Capability(Vec<String>),
    /// `CLIENTBUG` (RFC 5530 §3)
    ClientBug,
    /// `CLOSED` (QRESYNC RFC 7162 §3.2.11): previous mailbox closed.
    Closed,
    /// `COMPRESSIONACTIVE` (RFC 4978 §4)
    CompressionActive,
    /// `CONTACTADMIN` (RFC 5530 §3)
    ContactAdmin,
    /// `COPYUID uidvalidity source-uids dest-uids` (UIDPLUS RFC 4315 §3)
    CopyUid {
        /// UIDVALIDITY of the destination.
        uidvalidity: u32,
        /// Source UIDs.
        source: SequenceSet,
        /// Destination UIDs, in the same order.
        dest: SequenceSet,
    },
    /// `CORRUPTION` (RFC 5530 §3)
    Corruption,
    /// `EXPIRED` (RFC 5530 §3)
    Expired,
    /// `EXPUNGEISSUED` (RFC 5530 §3)
    ExpungeIssued,
    /// `HASCHILDREN` (RFC 9051 §7.1)
    HasChildren,
    /// `HIGHESTMODSEQ n` (CONDSTORE RFC 7162 §3.1.2.1)
    HighestModSeq(u64),
    /// `INUSE` (RFC 5530 §3)
    InUse,
    /// `LIMIT` (RFC 5530 §3)
    Limit,
    /// `MODIFIED set` (RFC 7162 §3.1.3): STORE UNCHANGEDSINCE failures.
    Modified(SequenceSet),
    /// `NOMODSEQ` (RFC 7162 §3.1.2.2)
    NoModSeq,
    /// `NONEXISTENT` (RFC 5530 §3)
    NonExistent,
    /// `NOPERM` (RFC 5530 §3)
    NoPerm,
    /// `NOTSAVED` (SEARCHRES RFC 5182 §2.1)
    NotSaved,
    /// `OVERQUOTA` (RFC 5530 §3, RFC 9208 §4.1)
    OverQuota,
    /// `PARSE` (RFC 9051 §7.1): a message's header could not be parsed.
    Parse,
    /// `PERMANENTFLAGS (flags [\*])` (RFC 9051 §7.1).
    PermanentFlags {
        /// Flags that can be changed permanently.
        flags: Vec<Flag>,
        /// Append `\*`: new keywords may be created.
        new_keywords: bool,
    },
    /// `PRIVACYREQUIRED` (RFC 5530 §3)
    PrivacyRequired,
    /// `READ-ONLY` (RFC 9051 §7.1)
    ReadOnly,
    /// `READ-WRITE` (RFC 9051 §7.1)
    ReadWrite,
    /// `SERVERBUG` (RFC 5530 §3)
    ServerBug,
    /// `TOOBIG` (RFC 7889 §4, RFC 4469 §4.2): literal or message too large.
    TooBig,
    /// `TRYCREATE` (RFC 9051 §7.1)
    TryCreate,
    /// `UIDNEXT n` (RFC 9051 §7.1)
    UidNext(u32),
    /// `UIDNOTSTICKY` (UIDPLUS RFC 4315 §3)
    UidNotSticky,
    /// `UIDVALIDITY n` (RFC 9051 §7.1)
    UidValidity(u32),
    /// `UNAVAILABLE` (RFC 5530 §3)
    Unavailable,
    /// `UNKNOWN-CTE` (BINARY RFC 3516 §4.3)
    UnknownCte,
    /// `UNSEEN n` (RFC 3501 §7.1; IMAP4rev1 SELECT only)
    Unseen(u32),
    /// `USEATTR` (RFC 6154 §6)
    UseAttr,
    /// Any other code: atom name and optional text argument.
    Other(String, Option<String>),
}

impl Code {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let simple = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
        match self {
            Self::Alert => simple(out, "ALERT"),
            Self::AlreadyExists => simple(out, "ALREADYEXISTS"),
            Self::AppendUid { uidvalidity, uids } => {
                simple(out, &format!("APPENDUID {uidvalidity} {uids}"));
            }
            Self::AuthenticationFailed => simple(out, "AUTHENTICATIONFAILED"),
            Self::AuthorizationFailed => simple(out, "AUTHORIZATIONFAILED"),
            Self::BadCharset(cs) => {
                simple(out, "BADCHARSET");
                if !cs.is_empty() {
                    out.push(b' ');
                    let opts = super::EncodeOptions::default();
                    writer::list(out, cs, |o, c| writer::astring(o, c.as_bytes(), &opts));
                }
            }
            Self::Cannot => simple(out, "CANNOT"),
            Self::Capability(caps) => {
                simple(out, "CAPABILITY");
                for c in caps {
                    out.push(b' ');
                    writer::atom(out, c);
                }
            }
            Self::ClientBug => simple(out, "CLIENTBUG"),
            Self::Closed => simple(out, "CLOSED"),
            Self::CompressionActive => simple(out, "COMPRESSIONACTIVE"),
            Self::ContactAdmin => simple(out, "CONTACTADMIN"),
            Self::CopyUid {
                uidvalidity,
                source,
                dest,
            } => {
                simple(out, &format!("COPYUID {uidvalidity} {source} {dest}"));
            }
            Self::Corruption => simple(out, "CORRUPTION"),
            Self::Expired => simple(out, "EXPIRED"),
            Self::ExpungeIssued => simple(out, "EXPUNGEISSUED"),
            Self::HasChildren => simple(out, "HASCHILDREN"),
            Self::HighestModSeq(n) => simple(out, &format!("HIGHESTMODSEQ {n}")),
            Self::InUse => simple(out, "INUSE"),
            Self::Limit => simple(out, "LIMIT"),
            Self::Modified(set) => simple(out, &format!("MODIFIED {set}")),
            Self::NoModSeq => simple(out, "NOMODSEQ"),
            Self::NonExistent => simple(out, "NONEXISTENT"),
            Self::NoPerm => simple(out, "NOPERM"),
            Self::NotSaved => simple(out, "NOTSAVED"),
            Self::OverQuota => simple(out, "OVERQUOTA"),
            Self::Parse => simple(out, "PARSE"),
            Self::PermanentFlags {
                flags,
                new_keywords,
            } => {
                simple(out, "PERMANENTFLAGS (");
                let mut first = true;
                for f in flags {
                    if !first {
                        out.push(b' ');
                    }
                    writer::atom(out, &f.to_string());
                    first = false;
                }
                if *new_keywords {
                    if !first {
                        out.push(b' ');
                    }
                    simple(out, "\\*");
                }
                out.push(b')');
            }
            Self::PrivacyRequired => simple(out, "PRIVACYREQUIRED"),
            Self::ReadOnly => simple(out, "READ-ONLY"),
            Self::ReadWrite => simple(out, "READ-WRITE"),
            Self::ServerBug => simple(out, "SERVERBUG"),
            Self::TooBig => simple(out, "TOOBIG"),
            Self::TryCreate => simple(out, "TRYCREATE"),
            Self::UidNext(n) => simple(out, &format!("UIDNEXT {n}")),
            Self::UidNotSticky => simple(out, "UIDNOTSTICKY"),
            Self::UidValidity(n) => simple(out, &format!("UIDVALIDITY {n}")),
            Self::Unavailable => simple(out, "UNAVAILABLE"),
            Self::UnknownCte => simple(out, "UNKNOWN-CTE"),
            Self::Unseen(n) => simple(out, &format!("UNSEEN {n}")),
            Self::UseAttr => simple(out, "USEATTR"),
            Self::Other(name, arg) => {
                writer::atom(out, name);
                if let Some(a) = arg {
                    out.push(b' ');
                    // resp-text-code = atom [SP 1*<any TEXT-CHAR except "]">]
                    writer::text(out, &a.replace(']', " "));
                }
            }
        }
    }
}
