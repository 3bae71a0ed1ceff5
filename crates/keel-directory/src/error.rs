//! Errors of the directory. Every message is a sentence an administrator can act on.

use keel_store::StoreError;

/// An error of a directory operation.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The storage layer failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A stored document could not be decoded.
    #[error("stored {kind} {key} is corrupt: {reason}")]
    Corrupt {
        /// Document kind.
        kind: String,
        /// Document key.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// A domain name is not valid.
    #[error("'{0}' is not a valid domain name")]
    InvalidDomainName(String),
    /// The domain does not exist.
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The domain (or domain alias) name is taken.
    #[error("the name {name} is already used by {by}")]
    DomainNameTaken {
        /// The name.
        name: String,
        /// What uses it ("domain example.com" or "an alias of domain example.com").
        by: String,
    },
    /// The domain still holds objects.
    #[error("domain {domain} still has {count} {what}; remove them first")]
    DomainNotEmpty {
        /// The domain.
        domain: String,
        /// How many.
        count: usize,
        /// `users`, `groups` or `aliases`.
        what: &'static str,
    },
    /// The primary domain cannot be removed (guide §7.8).
    #[error("domain {0} is the primary domain; make another domain primary first")]
    PrimaryDomain(String),
    /// The domain's user-count limit is reached (guide §7.2).
    #[error("domain {domain} already has {limit} users, which is its limit")]
    UserLimitReached {
        /// The domain.
        domain: String,
        /// The limit.
        limit: u32,
    },
    /// Two domains cannot be bound to one listening IP (guide §7.7).
    #[error("the IP address {ip} is already bound to domain {domain}")]
    IpAlreadyBound {
        /// The IP.
        ip: String,
        /// The domain bound to it.
        domain: String,
    },
    /// An address is not valid.
    #[error("{0}")]
    InvalidAddress(String),
    /// A login name uses characters not allowed in login names (guide §8.2).
    #[error(
        "'{0}' is not a valid login name: use only letters a-z, digits, '.', '-' and '_' \
         (no diacritics)"
    )]
    InvalidLoginName(String),
    /// The address is taken by another user or group.
    #[error("the address {address} is already used by {owner_kind} {owner}")]
    AddressTaken {
        /// The address.
        address: String,
        /// `user` or `group`.
        owner_kind: String,
        /// The owner's key.
        owner: String,
    },
    /// An address must belong to a given domain.
    #[error("the address {address} does not belong to domain {domain}")]
    AddressOutsideDomain {
        /// The address.
        address: String,
        /// The domain.
        domain: String,
    },
    /// The user does not exist.
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    /// The user exists already.
    #[error("user {0} already exists")]
    UserExists(String),
    /// The group does not exist.
    #[error("group {0} does not exist")]
    NoSuchGroup(String),
    /// The group exists already.
    #[error("group {0} already exists")]
    GroupExists(String),
    /// The alias does not exist.
    #[error("alias {0} does not exist")]
    NoSuchAlias(String),
    /// An alias name uses characters not allowed (guide table 12.2).
    #[error(
        "'{0}' is not a valid alias name: use only letters a-z, digits and '.', '-', '_', \
         '?', '*'"
    )]
    InvalidAliasName(String),
    /// An alias target is not an address nor a `#public/Folder`.
    #[error(
        "'{0}' is not a valid alias target: give an e-mail address, a local name or #public/Folder"
    )]
    InvalidAliasTarget(String),
    /// A password was refused by the policy.
    #[error("password is too weak: {0}")]
    WeakPassword(String),
    /// An imported hash is in no supported format.
    #[error(
        "the password hash is not in a supported format (argon2 PHC, bcrypt $2a$/$2b$/$2y$, \
         sha-crypt $5$/$6$)"
    )]
    UnsupportedHash,
    /// Hashing failed (should not happen).
    #[error("could not hash the password: {0}")]
    Hashing(String),
    /// The change would leave no account with full admin rights (guide §8.1, §8.2 step 6).
    #[error("cannot {action} {object}: it is the last account with full admin rights")]
    LastAdmin {
        /// `remove`, `disable`, `demote`, …
        action: &'static str,
        /// The user or group concerned.
        object: String,
    },
    /// The user template does not exist (guide §8.10).
    #[error("user template {0} does not exist")]
    NoSuchTemplate(String),
    /// The IP address group does not exist.
    #[error("IP address group {0} does not exist")]
    NoSuchIpGroup(String),
    /// The IP address group exists already.
    #[error("IP address group {0} already exists")]
    IpGroupExists(String),
    /// The IP address group is referenced.
    #[error("IP address group {name} is used by {by}; change that first")]
    IpGroupInUse {
        /// The group.
        name: String,
        /// Who uses it.
        by: String,
    },
    /// The built-in group cannot be changed.
    #[error("IP address group {0} is built in and cannot be changed or removed")]
    BuiltInIpGroup(String),
    /// An IP address group definition is invalid.
    #[error("invalid IP address group: {0}")]
    InvalidIpGroup(String),
    /// The time interval does not exist.
    #[error("time interval {0} does not exist")]
    NoSuchTimeInterval(String),
    /// The time interval exists already.
    #[error("time interval {0} already exists")]
    TimeIntervalExists(String),
    /// A time interval definition is invalid.
    #[error("invalid time interval: {0}")]
    InvalidTimeInterval(String),
    /// An argument is invalid (message says which and why).
    #[error("{0}")]
    Invalid(String),
    /// A setting is out of range; `field` names it for the API's `{"error","field"}`.
    #[error("{message}")]
    InvalidSetting {
        /// The setting's name.
        field: String,
        /// What is wrong, as a sentence.
        message: String,
    },
}

/// Result alias of the directory.
pub type DirResult<T> = Result<T, DirectoryError>;
