//! Typed IMAP commands (RFC 9051 §6, RFC 3501 §6 and extensions).

use super::types::{Date, DateTime, Flag, MailboxName, PartPath, Section, SequenceSet, StatusItem};

/// A complete client command: `tag SP command CRLF` (RFC 9051 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag, echoed in the tagged completion response.
    pub tag: String,
    /// The parsed command.
    pub body: CommandBody,
}

/// Every command the codec understands. `uid: true` means the command was
/// prefixed with `UID` (RFC 9051 §6.4.9), so sequence sets are UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    /// `CAPABILITY` (RFC 9051 §6.1.1)
    Capability,
    /// `NOOP` (RFC 9051 §6.1.2)
    Noop,
    /// `LOGOUT` (RFC 9051 §6.1.3)
    Logout,
    /// `STARTTLS` (RFC 9051 §6.2.1). The server must drop any bytes buffered
    /// after this command ([`Receiver::clear_buffer`](super::Receiver::clear_buffer))
    /// before the TLS handshake, against command injection.
    StartTls,
    /// `AUTHENTICATE mech [initial-response]` (RFC 9051 §6.2.2, SASL-IR RFC 4959).
    /// Further client lines are read with
    /// [`Receiver::expect_sasl_line`](super::Receiver::expect_sasl_line).
    Authenticate {
        /// Mechanism name, upper-cased (`PLAIN`, `SCRAM-SHA-256`, ...).
        mechanism: String,
        /// The decoded SASL-IR initial response; `Some(vec![])` for `=` (empty).
        initial_response: Option<Vec<u8>>,
    },
    /// `LOGIN user password` (RFC 9051 §6.2.3).
    Login {
        /// User name bytes (astring).
        username: Vec<u8>,
        /// Password bytes (astring).
        password: Vec<u8>,
    },
    /// `ENABLE cap...` (RFC 5161 §3.1, RFC 9051 §6.3.1); upper-cased.
    Enable(Vec<String>),
    /// `SELECT mailbox [params]` (RFC 9051 §6.3.2, RFC 7162 §3.1.8/§3.2.5).
    Select {
        /// Mailbox to select.
        mailbox: MailboxName,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams,
    },
    /// `EXAMINE mailbox [params]` (RFC 9051 §6.3.3): read-only SELECT.
    Examine {
        /// Mailbox to examine.
        mailbox: MailboxName,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams,
    },
    /// `CREATE mailbox [(USE (\Attr ...))]` (RFC 9051 §6.3.4, RFC 6154 §3).
    Create {
        /// Mailbox to create.
        mailbox: MailboxName,
        /// Special-use attributes requested with `USE`, e.g. `\Drafts`.
        special_use: Vec<String>,
    },
    /// `DELETE mailbox` (RFC 9051 §6.3.5)
    Delete(MailboxName),
    /// `RENAME from to` (RFC 9051 §6.3.6)
    Rename {
        /// Existing name.
        from: MailboxName,
        /// New name.
        to: MailboxName,
    },
    /// `SUBSCRIBE mailbox` (RFC 9051 §6.3.7)
    Subscribe(MailboxName),
    /// `UNSUBSCRIBE mailbox` (RFC 9051 §6.3.8)
    Unsubscribe(MailboxName),
    /// `LIST` (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
    /// SPECIAL-USE RFC 6154).
    List(ListCommand),
    /// `LSUB reference pattern` (RFC 3501 §6.3.9; IMAP4rev1 only).
    Lsub {
        /// Reference name (decoded).
        reference: String,
        /// Pattern with `%`/`*` wildcards (decoded).
        pattern: String,
    },
    /// `NAMESPACE` (RFC 2342, RFC 9051 §6.3.10)
    Namespace,
    /// `STATUS mailbox (items)` (RFC 9051 §6.3.11)
    Status {
        /// Mailbox to report on.
        mailbox: MailboxName,
        /// Requested items.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox message...` (RFC 9051 §6.3.12, MULTIAPPEND RFC 3502,
    /// BINARY RFC 3516 §4.4, UTF8 RFC 6855 §4).
    Append {
        /// Target mailbox.
        mailbox: MailboxName,
        /// One or more messages (more than one only with MULTIAPPEND).
        messages: Vec<AppendMessage>,
    },
    /// `IDLE` (RFC 2177, RFC 9051 §6.3.13). Switch the receiver with
    /// [`Receiver::expect_idle_done`](super::Receiver::expect_idle_done).
    Idle,
    /// `CHECK` (RFC 3501 §6.4.1; IMAP4rev1 only)
    Check,
    /// `CLOSE` (RFC 9051 §6.4.1)
    Close,
    /// `UNSELECT` (RFC 3691, RFC 9051 §6.4.2)
    Unselect,
    /// `EXPUNGE` (RFC 9051 §6.4.3)
    Expunge,
    /// `UID EXPUNGE set` (UIDPLUS RFC 4315 §2.1, RFC 9051 §6.4.9)
    UidExpunge(SequenceSet),
    /// `[UID] SEARCH` (RFC 9051 §6.4.4)
    Search(SearchCommand),
    /// `[UID] FETCH` (RFC 9051 §6.4.5)
    Fetch(FetchCommand),
    /// `[UID] STORE` (RFC 9051 §6.4.6)
    Store(StoreCommand),
    /// `[UID] COPY set mailbox` (RFC 9051 §6.4.7)
    Copy {
        /// True for `UID COPY`.
        uid: bool,
        /// Messages to copy.
        set: SequenceSet,
        /// Destination.
        mailbox: MailboxName,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851 §3, RFC 9051 §6.4.8)
    Move {
        /// True for `UID MOVE`.
        uid: bool,
        /// Messages to move.
        set: SequenceSet,
        /// Destination.
        mailbox: MailboxName,
    },
    /// `[UID] SORT` (RFC 5256 §3, ESORT RFC 5267)
    Sort(SortCommand),
    /// `[UID] THREAD` (RFC 5256 §3)
    Thread(ThreadCommand),
    /// `ID (field value ...)` or `ID NIL` (RFC 2971 §3.1); `None` for NIL.
    Id(Option<Vec<(String, Option<String>)>>),
    /// `GETQUOTA root` (RFC 9208 §4.2)
    GetQuota(String),
    /// `GETQUOTAROOT mailbox` (RFC 9208 §4.3)
    GetQuotaRoot(MailboxName),
    /// `SETQUOTA root (resource limit ...)` (RFC 9208 §4.4)
    SetQuota {
        /// Quota root.
        root: String,
        /// Resource names (upper-cased) and limits.
        limits: Vec<(String, u64)>,
    },
    /// `GETACL mailbox` (RFC 4314 §3.3)
    GetAcl(MailboxName),
    /// `SETACL mailbox identifier rights` (RFC 4314 §3.1)
    SetAcl {
        /// Mailbox.
        mailbox: MailboxName,
        /// Identifier (user or group).
        identifier: String,
        /// Rights with optional leading `+` or `-` (RFC 4314 §3.1).
        rights: String,
    },
    /// `DELETEACL mailbox identifier` (RFC 4314 §3.2)
    DeleteAcl {
        /// Mailbox.
        mailbox: MailboxName,
        /// Identifier.
        identifier: String,
    },
    /// `LISTRIGHTS mailbox identifier` (RFC 4314 §3.4)
    ListRights {
        /// Mailbox.
        mailbox: MailboxName,
        /// Identifier.
        identifier: String,
    },
    /// `MYRIGHTS mailbox` (RFC 4314 §3.5)
    MyRights(MailboxName),
    /// `COMPRESS mechanism` (RFC 4978 §3); upper-cased, e.g. `DEFLATE`.
    /// After the OK, read any bytes still buffered with
    /// [`Receiver::take_buffered`](super::Receiver::take_buffered): they are
    /// already compressed.
    Compress(String),
}

impl CommandBody {
    /// The command name as it appears on the wire, for logs and responses
    /// (e.g. `"UID FETCH"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Capability => "CAPABILITY",
            Self::Noop => "NOOP",
            Self::Logout => "LOGOUT",
            Self::StartTls => "STARTTLS",
            Self::Authenticate { .. } => "AUTHENTICATE",
            Self::Login { .. } => "LOGIN",
            Self::Enable(_) => "ENABLE",
            Self::Select { .. } => "SELECT",
            Self::Examine { .. } => "EXAMINE",
            Self::Create { .. } => "CREATE",
            Self::Delete(_) => "DELETE",
            Self::Rename { .. } => "RENAME",
            Self::Subscribe(_) => "SUBSCRIBE",
            Self::Unsubscribe(_) => "UNSUBSCRIBE",
            Self::List(_) => "LIST",
            Self::Lsub { .. } => "LSUB",
            Self::Namespace => "NAMESPACE",
            Self::Status { .. } => "STATUS",
            Self::Append { .. } => "APPEND",
            Self::Idle => "IDLE",
            Self::Check => "CHECK",
            Self::Close => "CLOSE",
            Self::Unselect => "UNSELECT",
            Self::Expunge => "EXPUNGE",
            Self::UidExpunge(_) => "UID EXPUNGE",
            Self::Search(c) if c.uid => "UID SEARCH",
            Self::Search(_) => "SEARCH",
            Self::Fetch(c) if c.uid => "UID FETCH",
            Self::Fetch(_) => "FETCH",
            Self::Store(c) if c.uid => "UID STORE",
            Self::Store(_) => "STORE",
            Self::Copy { uid: true, .. } => "UID COPY",
            Self::Copy { .. } => "COPY",
            Self::Move { uid: true, .. } => "UID MOVE",
            Self::Move { .. } => "MOVE",
            Self::Sort(c) if c.uid => "UID SORT",
            Self::Sort(_) => "SORT",
            Self::Thread(c) if c.uid => "UID THREAD",
            Self::Thread(_) => "THREAD",
            Self::Id(_) => "ID",
            Self::GetQuota(_) => "GETQUOTA",
            Self::GetQuotaRoot(_) => "GETQUOTAROOT",
            Self::SetQuota { .. } => "SETQUOTA",
            Self::GetAcl(_) => "GETACL",
            Self::SetAcl { .. } => "SETACL",
            Self::DeleteAcl { .. } => "DELETEACL",
            Self::ListRights { .. } => "LISTRIGHTS",
            Self::MyRights(_) => "MYRIGHTS",
            Self::Compress(_) => "COMPRESS",
        }
    }
}

/// SELECT/EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    /// `(CONDSTORE)` was given.
    pub condstore: bool,
    /// `(QRESYNC (...))` was given.
    pub qresync: Option<QresyncParams>,
}

/// `QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])` (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    /// The client's last known UIDVALIDITY.
    pub uidvalidity: u32,
    /// The client's last known HIGHESTMODSEQ.
    pub modseq: u64,
    /// UIDs the client knows about.
    pub known_uids: Option<SequenceSet>,
    /// Message sequence match data: (sequence numbers, matching UIDs).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST selection option (RFC 5258 §3.1, RFC 6154 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSelectOption {
    /// `SUBSCRIBED`
    Subscribed,
    /// `REMOTE`
    Remote,
    /// `RECURSIVEMATCH` (must come with another base option)
    RecursiveMatch,
    /// `SPECIAL-USE` (RFC 6154 §5.1)
    SpecialUse,
}

/// LIST return option (RFC 5258 §3.2, LIST-STATUS RFC 5819, RFC 6154 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturnOption {
    /// `SUBSCRIBED`
    Subscribed,
    /// `CHILDREN`
    Children,
    /// `SPECIAL-USE`
    SpecialUse,
    /// `STATUS (items)` (RFC 5819 §2)
    Status(Vec<StatusItem>),
}

/// A parsed LIST command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    /// Selection options; empty for a basic LIST.
    pub select: Vec<ListSelectOption>,
    /// Reference name (decoded; may be empty).
    pub reference: String,
    /// One or more patterns (decoded; several only with LIST-EXTENDED).
    pub patterns: Vec<String>,
    /// Return options; `None` when no `RETURN` was given.
    pub returns: Option<Vec<ListReturnOption>>,
}

/// How the message body of an APPEND was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendDataKind {
    /// Ordinary literal `{N}` / `{N+}`.
    Literal,
    /// `~{N}` literal8 (BINARY, RFC 3516 §4.4): may contain NUL; the server
    /// must store it as is and may need to re-encode.
    Binary,
    /// `UTF8 (~{N})` (UTF8=ACCEPT, RFC 6855 §4): message with UTF-8 headers.
    Utf8,
}

/// One message of an APPEND (RFC 9051 §6.3.12, RFC 3502 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// Flags to set; `\Recent` is rejected by the parser.
    pub flags: Vec<Flag>,
    /// Internal date to set, if given.
    pub date: Option<DateTime>,
    /// The message bytes.
    pub data: Vec<u8>,
    /// The literal form used.
    pub kind: AppendDataKind,
}

/// `SEARCH RETURN (...)` option (ESEARCH RFC 4731 §3.1, SEARCHRES RFC 5182 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturnOption {
    /// `MIN`
    Min,
    /// `MAX`
    Max,
    /// `ALL`
    All,
    /// `COUNT`
    Count,
    /// `SAVE` (RFC 5182)
    Save,
}

/// A parsed `[UID] SEARCH` (RFC 9051 §6.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    /// `UID SEARCH`.
    pub uid: bool,
    /// `RETURN (...)`: `None` if absent (classic `* SEARCH` answer unless
    /// IMAP4rev2 is enabled), `Some(vec![])` for `RETURN ()` (means ALL,
    /// RFC 4731 §3.1).
    pub returns: Option<Vec<SearchReturnOption>>,
    /// `CHARSET name`, upper-cased.
    pub charset: Option<String>,
    /// The criteria; several top-level keys are combined as
    /// [`SearchKey::And`].
    pub criteria: SearchKey,
}

/// Entry type for `MODSEQ` search (RFC 7162 §3.1.5 `entry-type-req`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// `priv`
    Private,
    /// `shared`
    Shared,
    /// `all`
    All,
}

/// A search key (RFC 9051 §6.4.4 and §9 `search-key`; RFC 3501 keys; MODSEQ
/// RFC 7162 §3.1.5; OLDER/YOUNGER RFC 5032 §3). String arguments are raw
/// bytes in the command's CHARSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// Parenthesised list or several top-level keys: all must match.
    And(Vec<SearchKey>),
    /// `ALL`
    All,
    /// `ANSWERED`
    Answered,
    /// `BCC`
    Bcc(Vec<u8>),
    /// `BEFORE`
    Before(Date),
    /// `BODY`
    Body(Vec<u8>),
    /// `CC`
    Cc(Vec<u8>),
    /// `DELETED`
    Deleted,
    /// `DRAFT`
    Draft,
    /// `FLAGGED`
    Flagged,
    /// `FROM`
    From(Vec<u8>),
    /// `HEADER field-name string`
    Header(String, Vec<u8>),
    /// `KEYWORD`
    Keyword(String),
    /// `LARGER`
    Larger(u64),
    /// IMAP4rev1 only.
    New,
    /// `NOT`
    Not(Box<SearchKey>),
    /// IMAP4rev1 only.
    Old,
    /// `ON`
    On(Date),
    /// `OR`
    Or(Box<SearchKey>, Box<SearchKey>),
    /// IMAP4rev1 only.
    Recent,
    /// `SEEN`
    Seen,
    /// `SENTBEFORE`
    SentBefore(Date),
    /// `SENTON`
    SentOn(Date),
    /// `SENTSINCE`
    SentSince(Date),
    /// `SINCE`
    Since(Date),
    /// `SMALLER`
    Smaller(u64),
    /// `SUBJECT`
    Subject(Vec<u8>),
    /// `TEXT`
    Text(Vec<u8>),
    /// `TO`
    To(Vec<u8>),
    /// `UID`
    Uid(SequenceSet),
    /// `UNANSWERED`
    Unanswered,
    /// `UNDELETED`
    Undeleted,
    /// `UNDRAFT`
    Undraft,
    /// `UNFLAGGED`
    Unflagged,
    /// `UNKEYWORD`
    Unkeyword(String),
    /// IMAP4rev1 only.
    Unseen,
    /// A bare sequence set (message sequence numbers), or `$`.
    SequenceSet(SequenceSet),
    /// `OLDER seconds` (WITHIN, RFC 5032)
    Older(u32),
    /// `YOUNGER seconds` (WITHIN, RFC 5032)
    Younger(u32),
    /// `MODSEQ ["entry" type] value` (RFC 7162 §3.1.5)
    ModSeq {
        /// Metadata entry name (e.g. `/flags/\seen`) and type.
        entry: Option<(String, EntryType)>,
        /// Minimum mod-sequence.
        modseq: u64,
    },
}

/// A FETCH macro (RFC 9051 §6.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMacro {
    /// `ALL` = (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)
    All,
    /// `FAST` = (FLAGS INTERNALDATE RFC822.SIZE)
    Fast,
    /// `FULL` = (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)
    Full,
}

impl FetchMacro {
    /// The attributes the macro stands for.
    pub fn expand(self) -> Vec<FetchAttribute> {
        let mut v = vec![
            FetchAttribute::Flags,
            FetchAttribute::InternalDate,
            FetchAttribute::Rfc822Size,
        ];
        match self {
            Self::Fast => {}
            Self::All => v.push(FetchAttribute::Envelope),
            Self::Full => {
                v.push(FetchAttribute::Envelope);
                v.push(FetchAttribute::Body);
            }
        }
        v
    }
}

/// A partial range `<origin.count>` (RFC 9051 §6.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partial {
    /// First octet (0-based).
    pub origin: u64,
    /// Maximum number of octets (non-zero).
    pub count: u64,
}

/// A FETCH data item request (RFC 9051 §6.4.5 and §9 `fetch-att`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttribute {
    /// `ENVELOPE`
    Envelope,
    /// `FLAGS`
    Flags,
    /// `INTERNALDATE`
    InternalDate,
    /// `RFC822` (= `BODY[]`, sets \Seen; IMAP4rev1 form)
    Rfc822,
    /// `RFC822.HEADER` (= `BODY.PEEK[HEADER]`)
    Rfc822Header,
    /// `RFC822.SIZE`
    Rfc822Size,
    /// `RFC822.TEXT` (= `BODY[TEXT]`)
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE)
    Body,
    /// `BODYSTRUCTURE`
    BodyStructure,
    /// `UID`
    Uid,
    /// `MODSEQ` (RFC 7162 §3.1.4.1)
    ModSeq,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    BodySection {
        /// `BODY.PEEK` (does not set \Seen).
        peek: bool,
        /// The section.
        section: Section,
        /// Optional partial range.
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK[...]` (RFC 3516 §4.2, RFC 9051).
    Binary {
        /// `BINARY.PEEK`.
        peek: bool,
        /// Part path; empty for the whole message.
        part: PartPath,
        /// Optional partial range.
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]` (RFC 3516 §4.2)
    BinarySize(PartPath),
}

/// What a FETCH asked for: a macro or a list of attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttributes {
    /// `ALL`, `FAST` or `FULL`.
    Macro(FetchMacro),
    /// One attribute or a parenthesised list.
    List(Vec<FetchAttribute>),
}

impl FetchAttributes {
    /// The attribute list with macros expanded.
    pub fn to_list(&self) -> Vec<FetchAttribute> {
        match self {
            Self::Macro(m) => m.expand(),
            Self::List(v) => v.clone(),
        }
    }
}

/// A parsed `[UID] FETCH` (RFC 9051 §6.4.5, CONDSTORE/QRESYNC RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchCommand {
    /// `UID FETCH` (the server must then include UID in each response).
    pub uid: bool,
    /// Messages.
    pub set: SequenceSet,
    /// Requested items.
    pub attributes: FetchAttributes,
    /// `CHANGEDSINCE modseq` (RFC 7162 §3.1.4.1).
    pub changed_since: Option<u64>,
    /// `VANISHED` (RFC 7162 §3.2.6; only valid with UID FETCH and CHANGEDSINCE,
    /// which the parser checks).
    pub vanished: bool,
}

/// STORE operation (RFC 9051 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// A parsed `[UID] STORE` (RFC 9051 §6.4.6, UNCHANGEDSINCE RFC 7162 §3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCommand {
    /// `UID STORE`.
    pub uid: bool,
    /// Messages.
    pub set: SequenceSet,
    /// Replace, add or remove.
    pub operation: StoreOperation,
    /// `.SILENT`: no untagged FETCH unless flags changed by someone else.
    pub silent: bool,
    /// The flags.
    pub flags: Vec<Flag>,
    /// `UNCHANGEDSINCE modseq`.
    pub unchanged_since: Option<u64>,
}

/// A SORT key (RFC 5256 §3, DISPLAYFROM/DISPLAYTO RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `ARRIVAL`
    Arrival,
    /// `CC`
    Cc,
    /// `DATE`
    Date,
    /// `FROM`
    From,
    /// `SIZE`
    Size,
    /// `SUBJECT`
    Subject,
    /// `TO`
    To,
    /// `DISPLAYFROM`
    DisplayFrom,
    /// `DISPLAYTO`
    DisplayTo,
}

/// One sort criterion (RFC 5256 §3 `sort-criterion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    /// `REVERSE` given.
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

/// A parsed `[UID] SORT` (RFC 5256 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCommand {
    /// `UID SORT`.
    pub uid: bool,
    /// ESORT `RETURN (...)` (RFC 5267 §3.2); `None` if absent.
    pub returns: Option<Vec<SearchReturnOption>>,
    /// Sort criteria, most significant first.
    pub criteria: Vec<SortCriterion>,
    /// Charset (mandatory in SORT), upper-cased.
    pub charset: String,
    /// Search criteria (combined with AND).
    pub search: SearchKey,
}

/// A THREAD algorithm (RFC 5256 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    /// `ORDEREDSUBJECT`
    OrderedSubject,
    /// `REFERENCES`
    References,
    /// Any other algorithm name (upper-cased); the server answers NO/BAD.
    Other(String),
}

/// A parsed `[UID] THREAD` (RFC 5256 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCommand {
    /// `UID THREAD`.
    pub uid: bool,
    /// The algorithm.
    pub algorithm: ThreadAlgorithm,
    /// Charset (mandatory), upper-cased.
    pub charset: String,
    /// Search criteria.
    pub search: SearchKey,
}
