//! Keel mail store service (DESIGN §2): local delivery, folders, messages, quotas, the POP3
//! maildrop lock and change notifications. Protocol crates (SMTP, POP3, IMAP, …) call
//! [`Mailboxes`]; none talks to the stores directly.
//!
//! Every method is blocking (SQLite and file I/O): async callers wrap calls in
//! `tokio::task::spawn_blocking`. [`Mailboxes`] is cheap to clone (`Arc`s inside).
//!
//! Accounts are named by their user key `login@domain` ([`keel_directory::User::address`]);
//! folder operations trim and lower-case the key, delivery resolves it through the
//! directory.
//!
//! # Implementation notes
//!
//! - **One blob per message** (DESIGN §2): [`Mailboxes::deliver`] writes the raw bytes once
//!   (fsync'd by the [`BlobStore`]) and appends one row per recipient, one metadata
//!   transaction per recipient INBOX. A recipient's `Ok` is returned only after its
//!   transaction committed, so it is durable. Quotas are checked before the blob is
//!   written, so a delivery refused for every recipient never writes a blob; a blob that
//!   ends up unreferenced anyway (store error) is deleted before returning.
//! - **Blob lifetime**: the stores have no atomic "reference or create" operation, so this
//!   crate serialises, per blob (striped in-process locks), the window between writing or
//!   re-using a blob and committing its reference, against the "refcount is 0 → delete the
//!   file" step of expunge and folder deletion. Within one process a blob is therefore never
//!   deleted under a message being stored. Across processes (CLI and server at once, or a
//!   cluster) a crash or a race can at worst leave an unreferenced blob, which
//!   [`keel_store::collect_orphan_blobs`] removes at the next start.
//! - **Quotas** (guide §8.2) come from the directory (0 = unlimited) and usage from the
//!   store's incremental counters. Check and append run under a per-account in-process lock,
//!   so concurrent deliveries in one process cannot overshoot a limit.
//! - **Quota warning** (guide §8.2): after a successful delivery, if usage is at or above
//!   [`QUOTA_WARNING_PERCENT`] of either limit and no warning was sent in the last
//!   [`QUOTA_WARNING_INTERVAL_SECS`], a generated plain-text warning from
//!   `postmaster@<domain>` is appended to the INBOX. The time is claimed in a MetaStore
//!   document (kind [`MAIL_STATE_KIND`], key = user) in one transaction before the warning
//!   is stored, so two processes never both send one. **The warning counts toward the
//!   quota** (it is a stored message) but is **never refused by it**: the user must learn
//!   that the mailbox is full even when the warning itself crosses the limit.
//! - **Default folders** (guide §7.5, §8.2; RFC 6154 special use) are created on first
//!   delivery, by [`Mailboxes::inbox`] and by [`Mailboxes::ensure_default_folders`].
//! - **Folder ids → accounts**: the [`MetaStore`] trait has no lookup of a folder by id, so
//!   the account of a folder id is remembered whenever this service hands out a
//!   [`Folder`]; an unknown id falls back to one scan of the directory's users' folders.
//!   TODO(keel-store): a `get_folder_by_id` method would remove the fallback.
//! - **Folder renames** rename the folder and then each inferior (`A/B` when `A` moves), one
//!   store transaction each: a crash in between leaves some inferiors under the old name.
//! - **Maildrop lock** (RFC 1939 §8, guide table 12.1): an in-process registry; it does not
//!   exclude a POP3 session in another process or cluster node.
//! - **Change notifications**: in-process `tokio::sync::broadcast` channels per account,
//!   carrying the account's new highest modseq after every mutation made through
//!   [`Mailboxes`]. A slow receiver may see `Lagged`; it should then re-read
//!   [`MetaStore::changes_since`]. Across processes (cluster mode, DESIGN §4: change
//!   notifications cross nodes with LISTEN/NOTIFY), [`Mailboxes::spawn_change_listener`]
//!   runs the store's [`keel_store::ChangeListener`] on a thread and republishes what other
//!   nodes commit through [`Mailboxes::publish_external`] into the same channels.
//!   Best-effort: a notification missed while the listener reconnects is recovered by the
//!   account's next change or the client's next command.
//! - **Shared folders** (`acl` module, guide ch. 26): a session of account B that selected a
//!   folder of account A calls [`Mailboxes::follow`]; while the guard lives, every
//!   notification of A also wakes B's subscribers, with B's last sent modseq (a duplicate,
//!   harmless by the rule above), so B's own change-log semantics are unchanged. The
//!   session then reads A's change log for its folder.
//! - **Retention** (`retention` module, guide §7.4, §7.5): [`Mailboxes::expunge`] (IMAP
//!   EXPUNGE/CLOSE, POP3 DELE, clean-out) keeps a tombstone of each message when the
//!   owner's domain has "deleted items recovery" on; moves and the APPEND rollback use
//!   [`Mailboxes::expunge_discarding`]. [`Mailboxes::recover_deleted`] restores tombstones
//!   into Deleted Items; [`Mailboxes::clean_out`] deletes old items of Deleted Items and
//!   Junk E-mail (and their subfolders), removes their empty subfolders and purges expired
//!   tombstones.
//! - **Reindex** (`reindex` module, requirements-3 §5.4): [`Mailboxes::reindex`] re-reads
//!   each message's blob and rebuilds the derived data (sizes, the cached `\Seen` bit,
//!   folder counters, `uid_next`, modseq high-water marks, quota usage) online, one store
//!   transaction per folder, keeping UIDVALIDITY, UIDs and flags; messages whose blob is
//!   missing are kept and listed.

#![warn(missing_docs)]

mod acl;
mod deliver;
mod error;
mod folders;
mod locks;
mod messages;
mod notify;
mod quota;
mod reindex;
mod retention;
mod special;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use keel_core::clock::SharedClock;
use keel_directory::Directory;

pub use acl::{
    ANYONE, Access, FOLDER_ACL_KIND, GLOBAL_PUBLIC_OWNER, Level, Namespace, OTHER_USERS_PREFIX,
    PUBLIC_OWNER_PREFIX, PUBLIC_PREFIX, Right, Rights, UnknownRight, flag_allowed,
    is_reserved_name, permitted_flags, public_owner, split_name, visible_name,
};
pub use deliver::{Delivered, Delivery, DeliveryError, RecipientOutcome};
pub use error::{MailError, MailResult};
pub use folders::{
    ARCHIVE, DEFAULT_FOLDERS, DELETED_ITEMS, DRAFTS, HIERARCHY_SEPARATOR, INBOX, JUNK,
    MAX_FOLDER_NAME_BYTES, SENT_ITEMS, special_use,
};
pub use keel_store::{
    BlobId, BlobStore, Change, ChangeKind, Folder, FolderKind, MessageMeta, MetaStore, Usage,
};
pub use notify::{FollowGuard, MaildropLock, NOTIFY_CAPACITY};
pub use quota::{QUOTA_WARNING_INTERVAL_SECS, QUOTA_WARNING_PERCENT, QuotaKind, QuotaStatus};
pub use reindex::{FolderReindexReport, ReindexReport, UnreadableMessage};
pub use retention::{CLEANOUT_INTERVAL, CLEANOUT_MAX_PER_FOLDER, CleanoutReport, parse_since};
pub use special::{SPECIAL_USE_KIND, SpecialFolders, SpecialUse};

/// MetaStore document kind holding per-user mail state (e.g. the last quota warning time).
pub const MAIL_STATE_KIND: &str = "mail_state";

/// The mail store service. Clone freely; all clones share state.
#[derive(Clone)]
pub struct Mailboxes {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    directory: Arc<Directory>,
    clock: SharedClock,
    hostname: RwLock<String>,
    /// Account → change notification channel.
    channels: Mutex<HashMap<String, notify::Channel>>,
    /// Owner account → following accounts (with a count of sessions), see
    /// [`Mailboxes::follow`].
    follows: notify::Follows,
    /// Accounts whose maildrop is locked by a POP3 session.
    maildrops: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Folder id → owning account (see the implementation notes).
    folder_accounts: RwLock<HashMap<i64, String>>,
    blob_locks: locks::Stripes,
    account_locks: locks::Stripes,
    unique: AtomicU64,
}

impl std::fmt::Debug for Mailboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes").finish_non_exhaustive()
    }
}

impl Mailboxes {
    /// The service on the given stores and directory.
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        directory: Arc<Directory>,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                meta,
                blobs,
                directory,
                clock,
                hostname: RwLock::new(system_hostname().unwrap_or_default()),
                channels: Mutex::new(HashMap::new()),
                follows: notify::Follows::default(),
                maildrops: Arc::new(Mutex::new(std::collections::HashSet::new())),
                folder_accounts: RwLock::new(HashMap::new()),
                blob_locks: locks::Stripes::new(),
                account_locks: locks::Stripes::new(),
                unique: AtomicU64::new(0),
            }),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    /// Sets the host name used in generated Message-IDs (default: the system host name,
    /// else the user's domain).
    pub fn set_hostname(&self, name: &str) {
        if let Some(valid) = valid_hostname(name) {
            *self
                .inner
                .hostname
                .write()
                .unwrap_or_else(|e| e.into_inner()) = valid;
        }
    }

    /// The host name used in generated Message-IDs; empty when unknown.
    pub fn hostname(&self) -> String {
        self.inner
            .hostname
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Normalises a user key: trimmed and lower-case.
pub(crate) fn account_key(user: &str) -> String {
    user.trim().to_lowercase()
}

fn valid_hostname(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.');
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| name.to_ascii_lowercase())
}

/// The system host name, read from the usual Linux places (no extra crate needed).
fn system_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .find_map(|s| valid_hostname(&s))
}

// The service is shared across threads and tasks.
const _: fn() = || {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Mailboxes>();
};
