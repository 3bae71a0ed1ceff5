//! Errors of the mail store service. Every message is a sentence an administrator or a
//! protocol layer can act on.

use keel_directory::DirectoryError;
use keel_store::StoreError;

use crate::quota::QuotaKind;

/// An error of a [`crate::Mailboxes`] operation.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The metadata or blob store failed.
    #[error("mail store error: {0}")]
    Store(#[from] StoreError),
    /// The directory failed (other than an unknown user, see [`MailError::NoSuchUser`]).
    #[error("directory error: {0}")]
    Directory(DirectoryError),
    /// The user does not exist in the directory.
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    /// The folder does not exist.
    #[error("folder '{name}' of {user} does not exist")]
    NoSuchFolder {
        /// Account (user key).
        user: String,
        /// Folder name.
        name: String,
    },
    /// No folder has this id.
    #[error("folder id {0} does not exist")]
    NoSuchFolderId(i64),
    /// A folder of that name exists already.
    #[error("folder '{name}' of {user} already exists")]
    FolderExists {
        /// Account (user key).
        user: String,
        /// Folder name.
        name: String,
    },
    /// The folder name is not acceptable.
    #[error("'{name}' is not a valid folder name: {reason}")]
    InvalidFolderName {
        /// The refused name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// INBOX cannot be deleted (RFC 9051 §6.3.5).
    #[error("the INBOX folder cannot be deleted")]
    CannotDeleteInbox,
    /// A rename that cannot be done (e.g. a folder into its own subtree).
    #[error("cannot rename folder '{from}' to '{to}': {reason}")]
    InvalidRename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
        /// Why.
        reason: &'static str,
    },
    /// The user lacks the RFC 4314 right the operation needs (RFC 4314 §4).
    #[error("no permission on '{name}': the '{right}' right is needed")]
    NoPermission {
        /// The missing right's letter.
        right: char,
        /// The folder as the user named it.
        name: String,
    },
    /// A rights string with a letter that is not an RFC 4314 right.
    #[error("'{0}' is not an RFC 4314 right")]
    InvalidRights(String),
    /// An ACL identifier that is not `anyone`, a user or a `$group`.
    #[error("'{0}' is not a user, a $group or anyone")]
    InvalidIdentifier(String),
    /// Storing would exceed the account's quota (guide §8.2); nothing was stored.
    #[error(
        "the mailbox of {user} is over its quota: the {what} limit is {limit}, {used} already used"
    )]
    OverQuota {
        /// Account (user key).
        user: String,
        /// Which limit.
        what: QuotaKind,
        /// The limit.
        limit: u64,
        /// Usage before the refused operation.
        used: u64,
    },
    /// "Recover deleted items" was asked for a user whose domain keeps no deleted items
    /// (guide §7.4: the action is inactive while recovery is off).
    #[error(
        "deleted items recovery is off for domain {domain}; turn it on with the domain \
         setting deleted_items_recovery_days (1 to 365 days)"
    )]
    RecoveryOff {
        /// The user's domain.
        domain: String,
    },
}

impl From<DirectoryError> for MailError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NoSuchUser(u) => Self::NoSuchUser(u),
            other => Self::Directory(other),
        }
    }
}

/// Result alias of the mail store service.
pub type MailResult<T> = Result<T, MailError>;
