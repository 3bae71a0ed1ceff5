//! Keel storage (DESIGN §2, §4).
//!
//! Two traits hide the backends:
//! - [`MetaStore`]: SQL metadata. Directory objects and settings are typed JSON documents
//!   (kind + key, optimistic version) changed inside closure transactions; mail metadata
//!   (folders, messages, the per-account change log, quota counters, blob references) has
//!   typed methods. SQLite is the default backend ([`sqlite::SqliteStore`]).
//! - [`BlobStore`]: immutable, content-addressed (BLAKE3) message bytes. Files are the
//!   default backend ([`file::FileBlobStore`]); cluster mode keeps them in PostgreSQL
//!   ([`postgres::PgBlobStore`]) so every node reads the same bodies.
//!
//! Implementation notes:
//! - Crash safety of message ingest: the blob is written and fsync'd first, then the
//!   metadata transaction commits. A crash in between leaves an unreferenced blob, which
//!   [`collect_orphan_blobs`] removes at the next start; a message is visible only once its
//!   row is committed.
//! - Every change to a folder or message gets the account's next modseq and a change-log
//!   row in the same transaction (DESIGN §2: one change log per account).
//! - Quota counters (bytes, messages) are kept per account in the same transaction, never
//!   computed by scanning.

#![warn(missing_docs)]

pub mod check;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod file;
pub mod postgres;
pub mod sqlite;
pub mod transfer;

use serde::{Deserialize, Serialize};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, SQL).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A conditional write found another version than it expected.
    #[error("conflicting concurrent change to {kind} {key}")]
    Conflict {
        /// Document kind.
        kind: String,
        /// Document key.
        key: String,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The caller's closure aborted the transaction with its own message.
    #[error("{0}")]
    Aborted(String),
}

/// Result alias of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored JSON document of the directory or the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    /// Kind, e.g. `domain`, `user`, `group`, `alias`, `ipgroup`, `setting`.
    pub kind: String,
    /// Unique key within the kind (lower-case where names are case-insensitive).
    pub key: String,
    /// Secondary index value (e.g. the domain a user belongs to); empty when unused.
    pub parent: String,
    /// Version, starting at 1 and incremented on every write.
    pub version: u64,
    /// The document body.
    pub body: serde_json::Value,
}

/// Operations available inside a [`MetaStore::transact`] closure. Writes become visible
/// to other readers only when the closure returns `Ok` and the transaction commits.
pub trait DocTxn {
    /// Reads one document.
    fn get(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>>;
    /// Lists documents of a kind, ordered by key; `parent` filters on the secondary index.
    fn list(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>>;
    /// Creates or replaces a document and returns its new version.
    fn put(
        &mut self,
        kind: &str,
        key: &str,
        parent: &str,
        body: &serde_json::Value,
    ) -> StoreResult<u64>;
    /// Deletes a document; returns whether it existed.
    fn delete(&mut self, kind: &str, key: &str) -> StoreResult<bool>;
}

/// Identifier of a content-addressed blob: the lower-case hex BLAKE3 hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub String);

impl BlobId {
    /// The id of the given bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().to_string())
    }
    /// Parses a hex id, refusing anything that is not 64 lower-case hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(s.to_owned()))
    }
    /// As [`Self::parse`], taking the string without copying it (row decoding).
    pub fn parse_owned(s: String) -> Result<Self, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s))
        } else {
            Err(s)
        }
    }
}

/// Decodes a stored flag list (a JSON array of strings, as serde_json writes it) without
/// the general JSON parser for the forms it writes for flags: `[]` and `["\\Seen","$Junk"]`
/// whose strings escape only `"` and `\`. `None` for anything else, which the caller
/// hands to serde_json. Row decoding of large folders (IMAP SELECT) spends most of its
/// time here otherwise.
pub(crate) fn parse_flag_list(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut rest = inner.as_bytes();
    if rest.is_empty() {
        return Some(out);
    }
    loop {
        rest = rest.strip_prefix(b"\"")?;
        let mut flag = Vec::new();
        loop {
            match *rest.first()? {
                b'"' => {
                    rest = rest.get(1..)?;
                    break;
                }
                b'\\' => {
                    match *rest.get(1)? {
                        c @ (b'"' | b'\\') => flag.push(c),
                        _ => return None,
                    }
                    rest = rest.get(2..)?;
                }
                c if c < 0x20 => return None,
                c => {
                    flag.push(c);
                    rest = rest.get(1..)?;
                }
            }
        }
        out.push(String::from_utf8(flag).ok()?);
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix(b",")?;
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Folder types (DESIGN §2: groupware lives in the mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FolderKind {
    /// Mail.
    Mail,
    /// Calendar events.
    Calendar,
    /// Contacts.
    Contacts,
    /// Tasks.
    Tasks,
    /// Notes.
    Notes,
}

impl FolderKind {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::Calendar => "calendar",
            Self::Contacts => "contacts",
            Self::Tasks => "tasks",
            Self::Notes => "notes",
        }
    }
    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mail" => Self::Mail,
            "calendar" => Self::Calendar,
            "contacts" => Self::Contacts,
            "tasks" => Self::Tasks,
            "notes" => Self::Notes,
            _ => return None,
        })
    }
}

/// A folder of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// Store-wide folder id.
    pub id: i64,
    /// Owning account (a user key, or a public-folder owner such as `#public@example.com`).
    pub account: String,
    /// Full name, `/`-separated hierarchy (e.g. `INBOX`, `Projects/2026`).
    pub name: String,
    /// Folder type.
    pub kind: FolderKind,
    /// IMAP UIDVALIDITY (RFC 9051 §2.3.1.1).
    pub uid_validity: u32,
    /// Next UID to assign.
    pub uid_next: u32,
    /// Number of messages (kept incrementally).
    pub messages: u32,
    /// Number of messages without `\Seen` (kept incrementally).
    pub unseen: u32,
    /// Highest modseq of any change in this folder.
    pub highest_modseq: u64,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The blob holding the raw RFC 5322 bytes (already written to the [`BlobStore`]).
    pub blob: BlobId,
    /// Size in bytes.
    pub size: u64,
    /// Flags and keywords (`\Seen`, `$Junk`, …).
    pub flags: Vec<String>,
    /// Internal date, seconds since the Unix epoch.
    pub internal_date: i64,
}

/// A message row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Folder id.
    pub folder: i64,
    /// UID within the folder.
    pub uid: u32,
    /// Blob of the raw bytes.
    pub blob: BlobId,
    /// Size in bytes.
    pub size: u64,
    /// Flags and keywords, sorted.
    pub flags: Vec<String>,
    /// Internal date, seconds since the Unix epoch.
    pub internal_date: i64,
    /// Modseq of the last change to this message.
    pub modseq: u64,
}

/// What a change-log row records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A folder was created.
    FolderCreated,
    /// A folder was renamed.
    FolderRenamed,
    /// A folder was deleted.
    FolderDeleted,
    /// A message was added.
    MessageAdded,
    /// A message's flags changed.
    FlagsChanged,
    /// A message was expunged.
    MessageExpunged,
}

/// One row of an account's change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The account's modseq of this change (strictly increasing per account).
    pub modseq: u64,
    /// The folder concerned.
    pub folder: i64,
    /// The message UID concerned, 0 for folder changes.
    pub uid: u32,
    /// What happened.
    pub kind: ChangeKind,
}

/// Quota usage of an account, kept incrementally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Total bytes of the account's messages.
    pub bytes: u64,
    /// Number of the account's messages.
    pub messages: u64,
}

/// One recipient's result in a [`QueueCompletion`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientUpdate {
    /// The recipient address (the first recipient with it is updated).
    pub address: String,
    /// Its new state.
    pub state: QueueRcptState,
    /// The error to show, if any.
    pub error: Option<String>,
}

/// The results of one delivery attempt of a queued message (see
/// [`MetaStore::complete_queued`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCompletion {
    /// The queue id.
    pub id: String,
    /// The message's next attempt time.
    pub next_attempt: i64,
    /// The recipients attempted.
    pub updates: Vec<RecipientUpdate>,
}

/// What [`MetaStore::complete_queued`] did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    /// The message was no longer queued (or a recipient was gone): nothing recorded.
    Gone,
    /// Recorded; recipients remain, the lease is released.
    Released,
    /// Every recipient is final: the message left the queue; these blobs lost their last
    /// reference.
    Dequeued(Vec<BlobId>),
}

/// Delivery state of one queued recipient (DESIGN §3: per-recipient state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueRcptState {
    /// Waiting for its first attempt.
    Queued,
    /// Failed temporarily; retried at the message's `next_attempt`.
    Deferred,
    /// Delivered (or accepted by the next hop).
    Delivered,
    /// Failed permanently.
    Failed,
}

impl QueueRcptState {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deferred => "deferred",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "deferred" => Self::Deferred,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
    /// Whether no further attempt is due for this recipient.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed)
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    /// The envelope recipient address.
    pub address: String,
    /// DSN `NOTIFY` parameter as received (RFC 3461 §4.1), e.g. `SUCCESS,FAILURE`.
    pub notify: Option<String>,
    /// DSN `ORCPT` parameter as received (RFC 3461 §4.2), e.g. `rfc822;a@b`.
    pub orcpt: Option<String>,
    /// A fixed next hop `host:port` (domain forwarding, guide §7.9/§7.10); `None` = MX.
    pub route: Option<String>,
    /// Delivery state.
    pub state: QueueRcptState,
    /// Number of delivery attempts recorded.
    pub attempts: u32,
    /// The last error text (a remote reply or a local reason).
    pub last_error: Option<String>,
}

impl QueuedRecipient {
    /// A fresh recipient in state [`QueueRcptState::Queued`].
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            notify: None,
            orcpt: None,
            route: None,
            state: QueueRcptState::Queued,
            attempts: 0,
            last_error: None,
        }
    }
}

/// A message in the outbound queue (DESIGN §3: rows in the MetaStore plus a blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Queue id (guide §25.3 shape `438dd9ea-00000000`), unique.
    pub id: String,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// DSN `ENVID` (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// DSN `RET` (RFC 3461 §4.3): `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The message bytes (already durable in the [`BlobStore`]).
    pub blob: BlobId,
    /// Unix seconds when queued.
    pub created: i64,
    /// Unix seconds of the next delivery attempt.
    pub next_attempt: i64,
    /// The recipients, in envelope order.
    pub recipients: Vec<QueuedRecipient>,
}

/// One folder with its message rows, as exported by [`MetaStore::export_account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderDump {
    /// The folder row: id, UIDVALIDITY, next UID, counters and highest modseq are kept.
    pub folder: Folder,
    /// Its messages ordered by UID, with their flags and modseqs.
    pub messages: Vec<MessageMeta>,
    /// When each of `messages` entered the folder (the clean-out's age, guide §7.5), in the
    /// same order; empty when unknown (the import then uses INTERNALDATE).
    #[serde(default)]
    pub added_at: Vec<i64>,
}

/// Every piece of one account's mail metadata, for copying a store to another backend
/// (`keel migrate`): folders with messages, the whole change log, the modseq counter and
/// the quota usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDump {
    /// The account.
    pub account: String,
    /// The account's highest modseq (may be above every remaining change-log row).
    pub highest_modseq: u64,
    /// The stored quota usage (copied as stored, not recounted).
    pub usage: Usage,
    /// The account's folders ordered by name.
    pub folders: Vec<FolderDump>,
    /// The account's change log in modseq order (rows of deleted folders included).
    pub changes: Vec<Change>,
    /// Expunged messages kept for "Recover deleted items" (guide §7.4), oldest first; their
    /// ids are not kept (nothing refers to them).
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
}

/// A queued message with the state [`QueuedMessage`] does not carry. The claim lease is
/// not exported: a copied queue is claimable at once (the source server is stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDump {
    /// The message and its recipients with their delivery state.
    pub message: QueuedMessage,
    /// Whether the delay warning was sent ([`MetaStore::mark_queue_warned`]).
    pub warned: bool,
}

/// An expunged message kept for "Recover deleted items" (guide §7.4): its metadata, the
/// name of the folder it was expunged from and when. A tombstone holds a reference on its
/// blob ([`MetaStore::blob_refcount`] counts it), so neither the expunge nor orphan
/// collection nor `keel check --repair` removes the bytes while it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Store-wide id.
    pub id: i64,
    /// The owning account.
    pub account: String,
    /// Name of the folder the message was expunged from.
    pub folder: String,
    /// Blob of the raw bytes.
    pub blob: BlobId,
    /// Size in bytes.
    pub size: u64,
    /// Flags and keywords at the time of the expunge, sorted.
    pub flags: Vec<String>,
    /// Internal date, seconds since the Unix epoch.
    pub internal_date: i64,
    /// When it was expunged, seconds since the Unix epoch.
    pub expunged_at: i64,
}

/// The message a restored tombstone becomes: same blob, size, internal date and flags,
/// without `\Deleted` (it was expunged because of it; restored it would go again at the
/// next EXPUNGE).
pub(crate) fn restored_message(t: &Tombstone) -> NewMessage {
    NewMessage {
        blob: t.blob.clone(),
        size: t.size,
        flags: t
            .flags
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("\\Deleted"))
            .cloned()
            .collect(),
        internal_date: t.internal_date,
    }
}

/// A message's size as re-derived from its blob, the input of [`MetaStore::reindex_folder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedSize {
    /// UID of the row.
    pub uid: u32,
    /// The blob the bytes were read from (a row that names another blob is left alone).
    pub blob: BlobId,
    /// The blob's length in bytes.
    pub size: u64,
}

/// A message whose stored size differed from its blob's length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeFix {
    /// UID of the message (kept).
    pub uid: u32,
    /// The size the row said.
    pub stored: u64,
    /// The blob's length, now stored.
    pub actual: u64,
}

/// A folder's incremental counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderCounters {
    /// Number of messages.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Sum of the message sizes.
    pub bytes: u64,
    /// The next UID to assign.
    pub uid_next: u32,
    /// Highest modseq of any change in the folder.
    pub highest_modseq: u64,
}

/// What [`MetaStore::reindex_folder`] found and rewrote in one folder. UIDVALIDITY, UIDs
/// and flags are never changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderReindex {
    /// Messages whose size was rewritten (each got a new modseq and a change-log row).
    pub sizes_fixed: Vec<SizeFix>,
    /// UIDs of rows whose flag list was not in its stored form (unsorted, duplicates) or
    /// whose cached `\Seen` bit disagreed with it; rewritten with the same flags.
    pub flags_normalized: Vec<u32>,
    /// The counters before.
    pub before: FolderCounters,
    /// The counters after, counted from the rows.
    pub after: FolderCounters,
}

/// What [`MetaStore::reindex_account`] found and rewrote for one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReindex {
    /// Quota usage before.
    pub usage_before: Usage,
    /// Quota usage after, counted from the rows of every folder of the account.
    pub usage_after: Usage,
    /// The account's highest modseq before.
    pub highest_modseq_before: u64,
    /// After: at least every modseq of its change log, folders and messages.
    pub highest_modseq_after: u64,
}

/// Store-wide counters that must never go backwards when a store is copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounters {
    /// The last UIDVALIDITY handed out (RFC 9051 §2.3.1.1: a re-created folder must get a
    /// larger one).
    pub uid_validity: u32,
    /// The highest folder id ever assigned, deleted folders included (change-log rows
    /// keep pointing at them; ids are never reused).
    pub last_folder_id: i64,
}

/// The metadata store (DESIGN §4). Every method is blocking: async callers use
/// `spawn_blocking`.
pub trait MetaStore: Send + Sync + 'static {
    /// Reads one document outside a transaction.
    fn get_doc(&self, kind: &str, key: &str) -> StoreResult<Option<Doc>>;
    /// Lists documents outside a transaction (see [`DocTxn::list`]).
    fn list_docs(&self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>>;
    /// Runs `f` in one serialisable read-write transaction; commits if it returns `Ok`,
    /// rolls back otherwise.
    fn transact(&self, f: &mut dyn FnMut(&mut dyn DocTxn) -> StoreResult<()>) -> StoreResult<()>;
    /// A number that changes whenever any document changes (in this or another process),
    /// so caches can tell they are stale.
    fn docs_generation(&self) -> StoreResult<u64>;

    /// Creates a folder; fails with `Conflict` if the name exists for that account.
    fn create_folder(&self, account: &str, name: &str, kind: FolderKind) -> StoreResult<Folder>;
    /// Lists an account's folders ordered by name.
    fn list_folders(&self, account: &str) -> StoreResult<Vec<Folder>>;
    /// Finds a folder by account and name.
    fn get_folder(&self, account: &str, name: &str) -> StoreResult<Option<Folder>>;
    /// Renames one folder (its inferiors keep their names: the caller renames them, e.g.
    /// for IMAP RENAME). `Conflict` if the account already has `new_name`.
    fn rename_folder(&self, folder: i64, new_name: &str) -> StoreResult<()>;
    /// Deletes a folder and its messages; returns the blobs that lost their last reference.
    fn delete_folder(&self, folder: i64) -> StoreResult<Vec<BlobId>>;
    /// Moves every folder of `from` to account `to` under the prefix `prefix/`
    /// (guide §8.5: move a deleted user's mailbox to another user). Folder ids are kept;
    /// `to`'s change log gets `FolderCreated` and `MessageAdded` rows with fresh modseqs of
    /// `to`, `from`'s gets `FolderDeleted`. A name clash (`Conflict`) moves nothing.
    fn move_account_folders(&self, from: &str, to: &str, prefix: &str) -> StoreResult<()>;
    /// Deletes every folder and message of an account and its change log; returns the
    /// blobs that lost their last reference.
    fn delete_account_data(&self, account: &str) -> StoreResult<Vec<BlobId>>;

    /// Appends messages to one folder in one transaction; returns their (uid, modseq).
    fn append_messages(&self, folder: i64, messages: &[NewMessage])
    -> StoreResult<Vec<(u32, u64)>>;
    /// Lists a folder's messages ordered by UID; `NotFound` if the folder does not exist.
    fn list_messages(&self, folder: i64) -> StoreResult<Vec<MessageMeta>>;
    /// A folder's messages whose modseq is greater than `modseq` (added or flag-changed
    /// since then), ordered by UID; `NotFound` if the folder does not exist. Expunged
    /// messages have no row: they are the `MessageExpunged` rows of
    /// [`Self::changes_since`]. This is what an IMAP session needs to bring its snapshot up
    /// to date (RFC 9051 §7.4-§7.5, RFC 7162 §3.2.5.1) without reading every row; both
    /// backends answer it from an index on `(folder, modseq)`.
    ///
    /// The default filters [`Self::list_messages`], so wrappers that delegate method by
    /// method stay correct; every real backend overrides it.
    fn list_messages_changed_since(
        &self,
        folder: i64,
        modseq: u64,
    ) -> StoreResult<Vec<MessageMeta>> {
        let mut rows = self.list_messages(folder)?;
        rows.retain(|m| m.modseq > modseq);
        Ok(rows)
    }
    /// Replaces the flags of a message; returns the new modseq. When the flags are
    /// unchanged nothing is written and the message's current modseq is returned
    /// (RFC 7162 §3.1). `NotFound` if the message does not exist.
    fn set_flags(&self, folder: i64, uid: u32, flags: &[String]) -> StoreResult<u64>;
    /// [`Self::set_flags`] for several messages of one folder in one transaction (one
    /// commit for an IMAP `STORE 1:500 +FLAGS (\Seen)`): each message's modseq, `None` for
    /// a message that is gone; `NotFound` if the folder is gone. The default runs
    /// [`Self::set_flags`] for each, in separate transactions.
    fn set_flags_many(
        &self,
        folder: i64,
        updates: &[(u32, Vec<String>)],
    ) -> StoreResult<Vec<Option<u64>>> {
        updates
            .iter()
            .map(|(uid, flags)| match self.set_flags(folder, *uid, flags) {
                Ok(m) => Ok(Some(m)),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
    /// Expunges messages (UIDs that do not exist are skipped); returns the blobs that lost
    /// their last reference.
    fn expunge(&self, folder: i64, uids: &[u32]) -> StoreResult<Vec<BlobId>>;

    // Retention (guide §7.4, §7.5). Defaults fail with `StoreError::Backend`, as for the
    // lease methods below, so delegating wrappers written before them still compile; both
    // real backends override them and the conformance suite checks them.

    /// As [`Self::expunge`], but each expunged message is kept as a [`Tombstone`] with
    /// `expunged_at`, in the same transaction ("Allow deleted items recovery", guide §7.4).
    /// The tombstones keep their blobs referenced, so the answer is normally empty.
    fn expunge_retaining(
        &self,
        folder: i64,
        uids: &[u32],
        expunged_at: i64,
    ) -> StoreResult<Vec<BlobId>> {
        let _ = (folder, uids, expunged_at);
        Err(unsupported("expunge_retaining"))
    }
    /// An account's tombstones expunged at or after `since`, oldest first.
    fn tombstones(&self, account: &str, since: i64) -> StoreResult<Vec<Tombstone>> {
        let _ = (account, since);
        Err(unsupported("tombstones"))
    }
    /// Restores every tombstone of `account` expunged at or after `since` into `folder`
    /// (which must belong to `account`, else `Aborted`) as new messages with new UIDs, oldest
    /// first, without `\Deleted`, and removes those tombstones, in one transaction (two
    /// nodes restoring at once restore each message once). Returns the new (uid, modseq).
    /// No quota check: restoring is an administrator's action.
    fn restore_tombstones(
        &self,
        account: &str,
        since: i64,
        folder: i64,
    ) -> StoreResult<Vec<(u32, u64)>> {
        let _ = (account, since, folder);
        Err(unsupported("restore_tombstones"))
    }
    /// Removes the account's tombstones expunged before `before`; returns the blobs that
    /// lost their last reference (the caller deletes them). Safe to run on several nodes
    /// at once: each tombstone is removed by one of them.
    fn purge_tombstones(&self, account: &str, before: i64) -> StoreResult<Vec<BlobId>> {
        let _ = (account, before);
        Err(unsupported("purge_tombstones"))
    }
    /// Every account that has tombstones, sorted (the purge also reaches accounts whose
    /// user was removed with the mailbox kept or moved).
    fn tombstone_accounts(&self) -> StoreResult<Vec<String>> {
        Err(unsupported("tombstone_accounts"))
    }
    /// When each message of a folder entered it (Unix seconds), in UID order, for copying
    /// a store (`keel migrate` keeps the clean-out ages). The default knows none (empty).
    fn messages_added_at(&self, folder: i64) -> StoreResult<Vec<i64>> {
        let _ = folder;
        Ok(Vec::new())
    }
    /// UIDs of up to `limit` messages of a folder that entered it before `before` (Unix
    /// seconds), those that entered first first (guide §7.5 clean-out: the age of an item is
    /// the time it entered the folder, not INTERNALDATE). A message enters a folder when its
    /// row is created: delivery, APPEND, COPY, MOVE, restore. `NotFound` if the folder does
    /// not exist.
    fn messages_added_before(
        &self,
        folder: i64,
        before: i64,
        limit: usize,
    ) -> StoreResult<Vec<u32>> {
        let _ = (folder, before, limit);
        Err(unsupported("messages_added_before"))
    }

    /// The account's highest modseq (0 when nothing ever changed).
    fn highest_modseq(&self, account: &str) -> StoreResult<u64>;
    /// Changes of an account with modseq greater than `since`, in modseq order.
    fn changes_since(&self, account: &str, since: u64) -> StoreResult<Vec<Change>>;
    /// Quota usage of an account.
    fn usage(&self, account: &str) -> StoreResult<Usage>;

    /// Number of references to a blob: messages, queued messages and tombstones (so
    /// [`collect_orphan_blobs`] never removes a queued or recoverable message's bytes).
    fn blob_refcount(&self, blob: &BlobId) -> StoreResult<u64>;

    /// Adds a message and its recipients to the outbound queue in one transaction
    /// (DESIGN §3). `Conflict` if the id exists; the blob must already be durable.
    fn enqueue(&self, message: &QueuedMessage) -> StoreResult<()>;
    /// Every queued message with its recipients, ordered by `next_attempt`, then id.
    fn queued_messages(&self) -> StoreResult<Vec<QueuedMessage>>;
    /// One queued message, `None` when it is not (or no longer) queued.
    fn queued_message(&self, id: &str) -> StoreResult<Option<QueuedMessage>>;
    /// Records one delivery attempt for a recipient (matched by address): its new state and
    /// error, `attempts + 1`, and the message's next attempt time. `NotFound` if the message
    /// or the recipient does not exist.
    fn update_queue_recipient(
        &self,
        id: &str,
        recipient: &str,
        state: QueueRcptState,
        error: Option<&str>,
        next_attempt: i64,
    ) -> StoreResult<()>;
    /// Removes a queued message; returns the blobs that lost their last reference
    /// (empty when the id was not queued).
    fn dequeue(&self, id: &str) -> StoreResult<Vec<BlobId>>;

    /// Group commit of delivery attempts (issue 3): for each completion, every recipient
    /// update as [`Self::update_queue_recipient`] makes it, then the message is dequeued
    /// when all its recipients are final, else its lease is released. One outcome per
    /// completion, in order; a message that is gone (deleted by the admin meanwhile) is
    /// [`QueueOutcome::Gone`] and does not fail the others. Backends that can do it in one
    /// transaction override this; the default runs the single-message methods in turn.
    fn complete_queued(&self, batch: &[QueueCompletion]) -> StoreResult<Vec<QueueOutcome>> {
        let mut out = Vec::with_capacity(batch.len());
        'each: for c in batch {
            for u in &c.updates {
                match self.update_queue_recipient(
                    &c.id,
                    &u.address,
                    u.state,
                    u.error.as_deref(),
                    c.next_attempt,
                ) {
                    Ok(()) => {}
                    Err(StoreError::NotFound(_)) => {
                        out.push(QueueOutcome::Gone);
                        continue 'each;
                    }
                    Err(e) => return Err(e),
                }
            }
            out.push(match self.queued_message(&c.id)? {
                Some(m) if m.recipients.iter().all(|r| r.state.is_final()) => {
                    QueueOutcome::Dequeued(self.dequeue(&c.id)?)
                }
                Some(_) => {
                    self.release_queued(&c.id)?;
                    QueueOutcome::Released
                }
                None => QueueOutcome::Gone,
            });
        }
        Ok(out)
    }

    // The four queue-lease methods below have default bodies that fail with
    // `StoreError::Backend`, so wrappers written before they existed (test doubles that
    // delegate method by method) still compile; every real backend overrides them and the
    // conformance suite checks them.

    /// Claims up to `limit` due messages for delivery (DESIGN §4: queue items are claimed
    /// with leases): messages with `next_attempt <= now` whose lease expired (`lease_until
    /// <= now`), ordered by `next_attempt`, then id. Each gets `lease_until = now +
    /// lease_secs` in the same transaction, so two claimers never get the same message
    /// until the lease runs out. Messages are returned with their recipients.
    fn claim_queued(
        &self,
        now: i64,
        lease_secs: i64,
        limit: usize,
    ) -> StoreResult<Vec<QueuedMessage>> {
        let _ = (now, lease_secs, limit);
        Err(unsupported("claim_queued"))
    }
    /// Ends the lease of a claimed message (it can be claimed again once due); returns
    /// whether the message is still queued.
    fn release_queued(&self, id: &str) -> StoreResult<bool> {
        let _ = id;
        Err(unsupported("release_queued"))
    }
    /// Sets a queued message's next attempt time (admin "Try to send now", guide §24.1);
    /// returns whether the message is queued. The lease is not touched.
    fn set_queue_next_attempt(&self, id: &str, next_attempt: i64) -> StoreResult<bool> {
        let _ = (id, next_attempt);
        Err(unsupported("set_queue_next_attempt"))
    }
    /// Marks that the delay warning of a message was sent. Returns `true` only for the
    /// call that set the mark (so exactly one caller sends the warning), `false` when it
    /// was already set or the message is not queued.
    fn mark_queue_warned(&self, id: &str) -> StoreResult<bool> {
        let _ = id;
        Err(unsupported("mark_queue_warned"))
    }

    /// A listener for changes committed by other processes on the same store (DESIGN §4:
    /// change notifications cross nodes with LISTEN/NOTIFY), or `None` when the backend
    /// has no such channel (SQLite: one process owns the store, so the in-process
    /// notifications of `keel-mail` are complete). Each call makes a new listener; it
    /// connects on its first [`ChangeListener::next`].
    fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        None
    }

    // Whole-store methods for `keel check` and `keel migrate` (copying an embedded store
    // into PostgreSQL). Defaults fail with `StoreError::Backend` as for the lease methods
    // above; both real backends override them and the conformance suite checks them.

    /// Every account that has folders, a usage/modseq row or change-log rows, sorted.
    fn accounts(&self) -> StoreResult<Vec<String>> {
        Err(unsupported("accounts"))
    }
    /// Every document of every kind, ordered by kind, then key.
    fn all_docs(&self) -> StoreResult<Vec<Doc>> {
        Err(unsupported("all_docs"))
    }
    /// One account's mail metadata (see [`AccountDump`]). Built from the reading methods,
    /// so it is one consistent picture only while nothing writes to the account (`keel
    /// migrate` runs with the server stopped).
    fn export_account(&self, account: &str) -> StoreResult<AccountDump> {
        let mut folders = Vec::new();
        for folder in self.list_folders(account)? {
            let messages = self.list_messages(folder.id)?;
            let added_at = self.messages_added_at(folder.id)?;
            folders.push(FolderDump {
                folder,
                messages,
                added_at,
            });
        }
        Ok(AccountDump {
            account: account.to_owned(),
            highest_modseq: self.highest_modseq(account)?,
            usage: self.usage(account)?,
            folders,
            changes: self.changes_since(account, 0)?,
            tombstones: self.tombstones(account, i64::MIN)?,
        })
    }
    /// Every queued message with its warned mark, ordered by `next_attempt`, then id.
    fn export_queue(&self) -> StoreResult<Vec<QueueDump>> {
        Err(unsupported("export_queue"))
    }
    /// The store-wide counters (see [`StoreCounters`]).
    fn counters(&self) -> StoreResult<StoreCounters> {
        Err(unsupported("counters"))
    }
    /// Whether the store holds no document, folder, message, change, usage row or queued
    /// message (a fresh store; counters are not looked at).
    fn is_empty(&self) -> StoreResult<bool> {
        Err(unsupported("is_empty"))
    }
    /// Deletes every document, folder, message, change, usage row and queued message in one
    /// transaction and resets the counters (`keel migrate --force` on a used target). Blobs
    /// are not touched.
    fn erase_all(&self) -> StoreResult<()> {
        Err(unsupported("erase_all"))
    }
    /// Inserts documents with their versions kept; `Conflict` if one exists.
    fn import_docs(&self, docs: &[Doc]) -> StoreResult<()> {
        let _ = docs;
        Err(unsupported("import_docs"))
    }
    /// Inserts one account's metadata exactly as dumped (folder ids, UIDVALIDITY, next UID,
    /// UIDs, flags, modseqs, change log, usage, tombstones) in one transaction. Folder byte counters
    /// are the sums of the message sizes. `Conflict` if the account or a folder id exists.
    fn import_account(&self, dump: &AccountDump) -> StoreResult<()> {
        let _ = dump;
        Err(unsupported("import_account"))
    }
    /// Inserts a queued message with its recipients' state and warned mark, unleased.
    /// `Conflict` if the id exists.
    fn import_queued(&self, item: &QueueDump) -> StoreResult<()> {
        let _ = item;
        Err(unsupported("import_queued"))
    }
    /// Raises the store-wide counters to at least `counters` (never lowers them), so ids and
    /// UIDVALIDITY values handed out after an import are above the imported ones.
    fn import_counters(&self, counters: &StoreCounters) -> StoreResult<()> {
        let _ = counters;
        Err(unsupported("import_counters"))
    }
    /// Recounts every folder's counters (messages, unseen, bytes) and every account's quota
    /// usage from the message rows, in one transaction (`keel check --repair`).
    fn recount(&self) -> StoreResult<()> {
        Err(unsupported("recount"))
    }

    // Reindex (`keel reindex`, requirements-3 §5.4: the per-folder index is derived data
    // that can be rebuilt online, keeping UIDVALIDITY, UIDs and flags). Defaults fail with
    // `StoreError::Backend`; both real backends override them and the conformance suite
    // checks them.

    /// Rebuilds the data of one folder that is derived from its messages, in one write
    /// transaction that is safe against concurrent sessions: first raises the account's
    /// modseq counter above every modseq of its change log, folders and messages (so new
    /// modseqs never collide); then, for each `derived` entry whose row still exists with
    /// the same blob and another size, stores the size with the account's next modseq and a
    /// [`ChangeKind::FlagsChanged`] change-log row (IMAP sessions re-read the row); rewrites
    /// flag lists that are not in stored form and the cached `\Seen` bit (same flags, no new
    /// modseq); finally recounts `messages`, `unseen` and `bytes` from the rows, raises
    /// `uid_next` to at least the highest UID + 1 and `highest_modseq` to at least the
    /// highest modseq of its rows and change-log rows. Rows without a `derived` entry (a
    /// missing blob) keep their size. `NotFound` if the folder does not exist.
    fn reindex_folder(&self, folder: i64, derived: &[DerivedSize]) -> StoreResult<FolderReindex> {
        let _ = (folder, derived);
        Err(unsupported("reindex_folder"))
    }
    /// Recounts one account's quota usage from the rows of all its folders and raises its
    /// highest modseq to at least every modseq of its change log, folders and messages, in
    /// one write transaction.
    fn reindex_account(&self, account: &str) -> StoreResult<AccountReindex> {
        let _ = account;
        Err(unsupported("reindex_account"))
    }
}

/// Receives the changes other processes commit to a shared store (see
/// [`MetaStore::change_listener`]). Best-effort: a notification sent while the listener
/// is reconnecting is lost; the account's next change, or the client's next command
/// (which re-reads the change log), recovers it.
pub trait ChangeListener: Send {
    /// Blocks up to `timeout` for the next committed change: `(account, its new highest
    /// modseq)`, or `None` when nothing arrived in time. An error means the connection
    /// failed; the next call reconnects, so callers loop (with a pause after an error).
    fn next(&mut self, timeout: std::time::Duration) -> StoreResult<Option<(String, u64)>>;
}

fn unsupported(what: &str) -> StoreError {
    StoreError::Backend(format!("{what} is not supported by this MetaStore"))
}

/// The blob store (DESIGN §4). Blobs are immutable and content-addressed.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores bytes durably before returning their id (file store: fsync'd file and
    /// directory; PostgreSQL: a committed transaction).
    /// Storing the same bytes twice is a no-op returning the same id.
    fn put(&self, bytes: &[u8]) -> StoreResult<BlobId>;
    /// Reads a blob.
    fn get(&self, id: &BlobId) -> StoreResult<Vec<u8>>;
    /// Whether a blob exists.
    fn exists(&self, id: &BlobId) -> StoreResult<bool>;
    /// Removes a blob; removing a missing blob is not an error.
    fn delete(&self, id: &BlobId) -> StoreResult<()>;
    /// Lists every stored blob.
    fn list(&self) -> StoreResult<Vec<BlobId>>;
    /// The blobs that may be removed when no metadata references them: every blob by
    /// default. A store shared by several nodes leaves out blobs written (or re-written)
    /// recently, since another node may have stored them and not yet committed the message
    /// that references them (the PostgreSQL blob store, `postgres::PgBlobStore`).
    fn orphan_candidates(&self) -> StoreResult<Vec<BlobId>> {
        self.list()
    }
}

/// Deletes blobs that no message and no queued message references (left by a crash between
/// blob write and metadata commit). Run at server start while no ingest is in flight on
/// this node; only [`BlobStore::orphan_candidates`] are looked at, so blobs that other
/// nodes of a shared store are still ingesting are kept. Returns how many were removed.
pub fn collect_orphan_blobs(meta: &dyn MetaStore, blobs: &dyn BlobStore) -> StoreResult<usize> {
    let mut removed = 0;
    for id in blobs.orphan_candidates()? {
        if meta.blob_refcount(&id)? == 0 {
            blobs.delete(&id)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod flag_list_tests {
    use super::parse_flag_list;

    /// The fast path agrees with serde_json on everything serde_json writes, and declines
    /// (returns `None`, so serde_json decides) whatever it does not handle.
    #[test]
    fn fast_flag_decoding_agrees_with_serde_json() {
        let lists: Vec<Vec<String>> = vec![
            vec![],
            vec!["\\Seen".into()],
            vec!["$Junk".into(), "\\Answered".into(), "\\Seen".into()],
            vec!["a\"b".into(), "back\\slash".into(), "ünï".into(), "".into()],
            vec!["tab\there".into(), "nul\u{0}".into()],
            vec!["[,]".into(), "\",\"".into()],
        ];
        for flags in lists {
            let text = serde_json::to_string(&flags).expect("encode");
            match parse_flag_list(&text) {
                Some(got) => assert_eq!(got, flags, "{text}"),
                None => assert!(text.contains("\\t") || text.contains("\\u"), "{text}"),
            }
        }
        for bad in [
            "",
            "[",
            "]",
            "[\"a\"",
            "[\"a\",]",
            "[a]",
            "[\"a\"]x",
            "[\"\\x\"]",
        ] {
            assert_eq!(parse_flag_list(bad), None, "{bad:?}");
        }
    }
}
