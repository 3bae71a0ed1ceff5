//! Shared and public folders (guide ch. 26, requirements-2 §26): per-folder access control
//! lists with RFC 4314 rights, and the IMAP-visible names of other users' and public
//! folders (RFC 2342 namespaces).
//!
//! # Rights (RFC 4314 §2.1)
//!
//! | letter | right | allows (RFC 4314 §4) |
//! |---|---|---|
//! | `l` | lookup | the folder is visible in LIST/LSUB, SUBSCRIBE |
//! | `r` | read | SELECT, EXAMINE, STATUS, FETCH, SEARCH, COPY from |
//! | `s` | keep seen | set or clear `\Seen` (STORE, FETCH without .PEEK) |
//! | `w` | write | set or clear flags other than `\Seen` and `\Deleted` |
//! | `i` | insert | APPEND, COPY/MOVE into |
//! | `p` | post | accepted and stored; Keel has no per-folder submission address |
//! | `k` | create mailboxes | CREATE below the folder, RENAME into it |
//! | `x` | delete mailbox | DELETE, RENAME away |
//! | `t` | delete messages | set or clear `\Deleted` |
//! | `e` | expunge | EXPUNGE, CLOSE's expunge, MOVE out (with `t`) |
//! | `a` | administer | SETACL, DELETEACL, GETACL, LISTRIGHTS |
//!
//! The obsolete RFC 2086 letters are accepted in SETACL (RFC 4314 §2.1.1): `c` stands for
//! `k` and `x`, `d` for `t` and `e`. Responses use the RFC 4314 letters only.
//!
//! # The guide's levels (guide ch. 26, §26.1: "read only mode"; the Kerio sharing dialog's
//! reader / editor / manager)
//!
//! | level | letters | meaning |
//! |---|---|---|
//! | [`Level::Read`] | `lr` | see and read the folder ("read only", the public-folder default) |
//! | [`Level::ReadWrite`] | `lrswite` | also change flags, add, delete and expunge messages |
//! | [`Level::Full`] | `lrswipkxtea` | also create and delete subfolders and grant rights |
//!
//! # Who has which rights
//!
//! - **Owner**: every right on the folders of their own account (RFC 4314 §2: an
//!   implementation may give the owner implicit rights; here they cannot be taken away).
//! - **Other users' folders**: the union of the entries that match the user: the user key
//!   (`bob@other.test`), a group they belong to (`$sales@example.com`, guide §8.3: rights
//!   can be given to groups), and `anyone` (every signed-in user). No entry, no access:
//!   the folder is invisible (RFC 4314 §4: without `l` and `r` it does not exist for them).
//! - **Public folders** (guide §26.1) belong to the account `#public@<domain>` (the
//!   account SMTP delivers `#public/Folder` alias targets to). Public folders are **per
//!   domain** (guide §26.1.1 default): only users of that domain see them. A folder with no
//!   stored list has the implicit list `anyone lr` (guide §26.1: "by default … available
//!   to all users in the read only mode"); the first SETACL starts from it.
//! - **Public-folder administrators** (guide §26.1.3, requirements-1 §7.2 step 6) have every
//!   right on their domain's public folders and may create them: a user of the domain with
//!   the directory flag `public_folder_admin` ("This user has the administrator rights to
//!   the public folders"), and every user of the **primary** domain with full
//!   administration rights (guide §26.1: "by default … the administrator of the primary
//!   domain"). Over IMAP a user reaches only the public folders of their own domain
//!   (`Public Folders/…` always names them); the administrator form of [`Mailboxes::set_acl`]
//!   and friends (`user = None`, name `#public@<domain>/Folder`) reaches any domain.
//!
//! # Administration (CLI, admin API)
//!
//! [`Mailboxes::get_acl`], [`Mailboxes::set_acl`], [`Mailboxes::delete_acl`] and
//! [`Mailboxes::list_rights`] take `user = None` for the administrator; the folder is then
//! named `owner/Folder` (`alice@example.com/Projects`, `#public@example.com/Info`). A level
//! word maps to letters with [`Level::parse`] and [`Level::rights`].
//!
//! # Names (RFC 2342)
//!
//! - personal: the account's own names (`INBOX`, `Projects/2026`);
//! - other users: `Other Users/<owner key>/<folder>` ([`OTHER_USERS_PREFIX`]);
//! - shared: `Public Folders/<folder>` ([`PUBLIC_PREFIX`]).
//!
//! A personal folder whose top level is `Other Users` or `Public Folders` cannot be made:
//! those names always mean the shared namespaces.
//!
//! # Limits
//!
//! - `\Seen` is **shared**: it is a flag on the message, so a user with `s` marks a message
//!   read for everyone who sees the folder. That is why the default public-folder rights
//!   are `lr` without `s`; FETCH by a user without `s` never sets `\Seen`.
//! - Negative rights (`-identifier`, RFC 4314 §2) are not supported; SETACL refuses them.
//! - Public folders are per domain (owner `#public@<domain>`) unless the directory's
//!   public-folder scope is global (guide §7.1 "Advanced", §26.1), then every domain's users
//!   see the folders of [`GLOBAL_PUBLIC_OWNER`]. The folders of the other scope stay in the
//!   store, unseen, until the scope is switched back (requirements-2 §26).
//! - An ACL is stored per folder (MetaStore document [`FOLDER_ACL_KIND`], key = folder id);
//!   a new folder starts with a copy of its parent's (later changes to the parent do not
//!   propagate). Deleting the folder through [`Mailboxes`] deletes it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use keel_directory::{AdminRights, DirectoryError, PublicFolderScope};
use keel_store::{Folder, FolderKind};
use serde::{Deserialize, Serialize};

use crate::folders::canonical_name;
use crate::{HIERARCHY_SEPARATOR, MailError, MailResult, Mailboxes, account_key};

/// MetaStore document kind of a folder's access control list (key = the folder id).
pub const FOLDER_ACL_KIND: &str = "folder_acl";
/// The other users' namespace prefix (RFC 2342 §5), with its trailing separator.
pub const OTHER_USERS_PREFIX: &str = "Other Users/";
/// The shared (public folders) namespace prefix (RFC 2342 §5), with its trailing separator.
pub const PUBLIC_PREFIX: &str = "Public Folders/";
/// Account name prefix of public-folder owners: `#public@<domain>`.
pub const PUBLIC_OWNER_PREFIX: &str = "#public@";
/// The public-folder owner shared by every domain when public folders are global.
pub const GLOBAL_PUBLIC_OWNER: &str = "#public@*";
/// The identifier that matches every signed-in user (RFC 4314 §2).
pub const ANYONE: &str = "anyone";

/// One RFC 4314 right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// `l`: the folder is visible (LIST, LSUB, SUBSCRIBE).
    Lookup,
    /// `r`: SELECT, EXAMINE, STATUS, FETCH, SEARCH, COPY from.
    Read,
    /// `s`: keep `\Seen`.
    Seen,
    /// `w`: write flags other than `\Seen` and `\Deleted`.
    Write,
    /// `i`: APPEND, COPY/MOVE into.
    Insert,
    /// `p`: post (advisory).
    Post,
    /// `k`: create subfolders.
    CreateMailbox,
    /// `x`: delete or rename the folder.
    DeleteMailbox,
    /// `t`: set or clear `\Deleted`.
    DeleteMessages,
    /// `e`: expunge.
    Expunge,
    /// `a`: administer the ACL.
    Admin,
}

/// The rights in RFC 4314 §2.1 order, with their letters.
const LETTERS: [(Right, char); 11] = [
    (Right::Lookup, 'l'),
    (Right::Read, 'r'),
    (Right::Seen, 's'),
    (Right::Write, 'w'),
    (Right::Insert, 'i'),
    (Right::Post, 'p'),
    (Right::CreateMailbox, 'k'),
    (Right::DeleteMailbox, 'x'),
    (Right::DeleteMessages, 't'),
    (Right::Expunge, 'e'),
    (Right::Admin, 'a'),
];

impl Right {
    /// The RFC 4314 letter.
    pub fn letter(self) -> char {
        LETTERS
            .iter()
            .find(|(r, _)| *r == self)
            .map_or('?', |(_, c)| *c)
    }

    fn bit(self) -> u16 {
        let i = LETTERS.iter().position(|(r, _)| *r == self).unwrap_or(0);
        1 << i
    }
}

/// A set of RFC 4314 rights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights(u16);

/// Why a rights string was refused (RFC 4314 §3.1: SETACL with unknown rights is BAD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 4314 right")]
pub struct UnknownRight(pub char);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// Every right (`lrswipkxtea`).
    pub const ALL: Rights = Rights((1 << 11) - 1);

    /// Parses rights letters; `c` and `d` expand as RFC 4314 §2.1.1 allows. Any other
    /// letter is refused.
    pub fn parse(s: &str) -> Result<Rights, UnknownRight> {
        let mut r = Rights::NONE;
        for c in s.chars() {
            match c {
                'c' => r = r.with(Right::CreateMailbox).with(Right::DeleteMailbox),
                'd' => r = r.with(Right::DeleteMessages).with(Right::Expunge),
                _ => match LETTERS.iter().find(|(_, l)| *l == c) {
                    Some((right, _)) => r = r.with(*right),
                    None => return Err(UnknownRight(c)),
                },
            }
        }
        Ok(r)
    }

    /// These rights plus `right`.
    pub fn with(self, right: Right) -> Rights {
        Rights(self.0 | right.bit())
    }

    /// Whether `right` is in the set.
    pub fn has(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    /// The union.
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// These rights without `other`'s.
    pub fn minus(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    /// Whether no right is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the folder exists for the holder (RFC 4314 §4: `l` or `r`).
    pub fn visible(self) -> bool {
        self.has(Right::Lookup) || self.has(Right::Read)
    }

    /// Whether the holder may change anything in a selected folder (otherwise SELECT
    /// opens it read-only, RFC 4314 §4 "SELECT").
    pub fn can_modify(self) -> bool {
        [
            Right::Seen,
            Right::Write,
            Right::Insert,
            Right::DeleteMessages,
            Right::Expunge,
        ]
        .iter()
        .any(|r| self.has(*r))
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (r, c) in LETTERS {
            if self.has(r) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The guide's sharing levels (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Read only: `lr`.
    Read,
    /// Read/write: `lrswite`.
    ReadWrite,
    /// Full access including administration: every right.
    Full,
}

impl Level {
    /// The RFC 4314 rights of the level.
    pub fn rights(self) -> Rights {
        let s = match self {
            Level::Read => "lr",
            Level::ReadWrite => "lrswite",
            Level::Full => "lrswipkxtea",
        };
        Rights::parse(s).unwrap_or(Rights::NONE)
    }

    /// Parses `read`, `read-write` or `full` (the CLI's words).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" | "read-only" | "reader" => Some(Level::Read),
            "read-write" | "readwrite" | "editor" => Some(Level::ReadWrite),
            "full" | "admin" | "manager" => Some(Level::Full),
            _ => None,
        }
    }
}

/// The namespace a visible name is in (RFC 2342).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// The user's own folders.
    Personal,
    /// `Other Users/<owner>/…`.
    OtherUsers,
    /// `Public Folders/…`.
    Public,
}

/// A visible folder name resolved for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The account owning the folder (a user key or `#public@<domain>`).
    pub owner: String,
    /// The folder's name within the owner's account.
    pub name: String,
    /// The name the user sees.
    pub visible: String,
    /// The namespace.
    pub namespace: Namespace,
    /// The folder, when it exists.
    pub folder: Option<Folder>,
    /// The user's effective rights on it (on its parent when it does not exist).
    pub rights: Rights,
}

/// One stored ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    id: String,
    rights: String,
}

/// The stored ACL document body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AclDoc {
    owner: String,
    name: String,
    entries: Vec<Entry>,
}

/// The public-folder owner account of a domain.
pub fn public_owner(domain: &str) -> String {
    format!("{PUBLIC_OWNER_PREFIX}{}", domain.trim().to_lowercase())
}

fn domain_of(user: &str) -> &str {
    user.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Whether a name's top level is reserved for the shared namespaces.
pub fn is_reserved_name(name: &str) -> bool {
    let top = name.split(HIERARCHY_SEPARATOR).next().unwrap_or("");
    [OTHER_USERS_PREFIX, PUBLIC_PREFIX]
        .iter()
        .any(|p| top.eq_ignore_ascii_case(p.trim_end_matches(HIERARCHY_SEPARATOR)))
}

fn strip_prefix_ci<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| name.get(prefix.len()..).unwrap_or(""))
}

/// Splits a visible name into (owner, name in the owner's account, namespace) for `user`.
/// `None` for a name inside a shared namespace that names no folder (e.g. `Other Users`
/// itself or `Other Users/bob@x` without a folder).
pub fn split_name(user: &str, visible: &str) -> Option<(String, String, Namespace)> {
    let user = account_key(user);
    if let Some(rest) = strip_prefix_ci(visible, OTHER_USERS_PREFIX) {
        let (owner, name) = rest.split_once(HIERARCHY_SEPARATOR)?;
        if owner.is_empty() || name.is_empty() || owner.starts_with('#') {
            return None;
        }
        return Some((
            account_key(owner),
            canonical_name(name),
            Namespace::OtherUsers,
        ));
    }
    if let Some(rest) = strip_prefix_ci(visible, PUBLIC_PREFIX) {
        if rest.is_empty() {
            return None;
        }
        return Some((
            public_owner(domain_of(&user)),
            rest.to_owned(),
            Namespace::Public,
        ));
    }
    if is_reserved_name(visible) {
        return None;
    }
    Some((user, canonical_name(visible), Namespace::Personal))
}

/// The visible name of `owner`'s folder `name` for a user of `user_domain`.
pub fn visible_name(user: &str, owner: &str, name: &str) -> String {
    if owner == account_key(user) {
        name.to_owned()
    } else if owner.starts_with(PUBLIC_OWNER_PREFIX) {
        format!("{PUBLIC_PREFIX}{name}")
    } else {
        format!("{OTHER_USERS_PREFIX}{owner}{HIERARCHY_SEPARATOR}{name}")
    }
}

fn no_such(user: &str, name: &str) -> MailError {
    MailError::NoSuchFolder {
        user: account_key(user),
        name: name.to_owned(),
    }
}

impl Mailboxes {
    /// The account whose public folders `user` sees: its domain's, or the global one
    /// (guide §26.1.1).
    pub fn public_owner_for(&self, user: &str) -> MailResult<String> {
        self.public_owner_of_domain(domain_of(&account_key(user)))
    }

    /// The public-folder owner for a domain under the scope in force: `#public@<domain>`,
    /// or [`GLOBAL_PUBLIC_OWNER`] when public folders are global.
    pub fn public_owner_of_domain(&self, domain: &str) -> MailResult<String> {
        Ok(match self.inner.directory.public_folder_scope()? {
            PublicFolderScope::Global => GLOBAL_PUBLIC_OWNER.to_owned(),
            PublicFolderScope::PerDomain => public_owner(domain),
        })
    }

    /// Whether `user` administers the public folders of `owner`: per domain, a public-folder
    /// admin of that domain; global, one of any domain (guide §26.1.2).
    fn administers_public_folders(&self, user: &str, owner: &str) -> MailResult<bool> {
        let domain = match owner.strip_prefix(PUBLIC_OWNER_PREFIX) {
            Some("*") => domain_of(&account_key(user)).to_owned(),
            Some(d) => d.to_owned(),
            None => return Ok(false),
        };
        self.is_public_folder_admin(user, &domain)
    }

    /// Whether `user` administers the public folders of `domain` (module docs).
    pub fn is_public_folder_admin(&self, user: &str, domain: &str) -> MailResult<bool> {
        let account = account_key(user);
        let dir = &self.inner.directory;
        let u = match dir.get_user(&account) {
            Ok(u) => u,
            Err(DirectoryError::NoSuchUser(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if u.public_folder_admin && u.domain.eq_ignore_ascii_case(domain) {
            return Ok(true);
        }
        let primary = dir.primary_domain()?;
        Ok(primary.is_some_and(|p| p.eq_ignore_ascii_case(&u.domain))
            && dir.effective_admin_rights(&account)? == AdminRights::Full)
    }

    fn read_acl(&self, folder_id: i64) -> MailResult<Option<AclDoc>> {
        let doc = self
            .inner
            .meta
            .get_doc(FOLDER_ACL_KIND, &folder_id.to_string())?;
        Ok(doc.and_then(|d| serde_json::from_value(d.body).ok()))
    }

    /// The entries of a folder's list: stored, else the default (module docs).
    fn entries_of(&self, folder: &Folder) -> MailResult<Vec<(String, Rights)>> {
        let stored = self.read_acl(folder.id)?;
        let entries = match stored {
            Some(doc) => doc
                .entries
                .into_iter()
                .filter_map(|e| Rights::parse(&e.rights).ok().map(|r| (e.id, r)))
                .collect(),
            None if folder.account.starts_with(PUBLIC_OWNER_PREFIX) => {
                vec![(ANYONE.to_owned(), Level::Read.rights())]
            }
            None => Vec::new(),
        };
        Ok(entries)
    }

    /// The identifiers `user` matches: the user key, `$group@domain` of each group, and
    /// `anyone`.
    fn identities(&self, user: &str) -> MailResult<Vec<String>> {
        let account = account_key(user);
        let mut ids = vec![account.clone(), ANYONE.to_owned()];
        match self.inner.directory.groups_of_user(&account) {
            Ok(groups) => ids.extend(groups.iter().map(|g| format!("${}", g.key()))),
            Err(DirectoryError::NoSuchUser(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(ids)
    }

    /// `user`'s effective rights on a folder (module docs).
    pub fn rights_on(&self, user: &str, folder: &Folder) -> MailResult<Rights> {
        let account = account_key(user);
        if folder.account == account {
            return Ok(Rights::ALL);
        }
        if folder.account.starts_with(PUBLIC_OWNER_PREFIX) {
            // Only the public folders of the scope in force are seen (guide §26.1.1).
            if folder.account != self.public_owner_for(&account)? {
                return Ok(Rights::NONE);
            }
            if self.administers_public_folders(&account, &folder.account)? {
                return Ok(Rights::ALL);
            }
        }
        let ids = self.identities(&account)?;
        Ok(self
            .entries_of(folder)?
            .into_iter()
            .filter(|(id, _)| ids.contains(id))
            .fold(Rights::NONE, |acc, (_, r)| acc.union(r)))
    }

    /// Rights of `user` on a folder that does not exist yet under `owner`: those of its
    /// nearest existing superior (`k` there allows CREATE, RFC 4314 §4), every right in
    /// the user's own account, and for the public root only the public-folder admin's.
    fn rights_for_new(&self, user: &str, owner: &str, name: &str) -> MailResult<Rights> {
        if owner == account_key(user) {
            return Ok(Rights::ALL);
        }
        let mut parent = name;
        while let Some((sup, _)) = parent.rsplit_once(HIERARCHY_SEPARATOR) {
            if let Some(f) = self.inner.meta.get_folder(owner, sup)? {
                return self.rights_on(user, &f);
            }
            parent = sup;
        }
        if owner.starts_with(PUBLIC_OWNER_PREFIX)
            && owner == self.public_owner_for(user)?
            && self.administers_public_folders(user, owner)?
        {
            return Ok(Rights::ALL);
        }
        Ok(Rights::NONE)
    }

    /// Resolves a visible name for `user` (module docs, "Names"): the owner, the folder if
    /// it exists and the user's rights. A folder the user may not see (no `l` nor `r`) is
    /// reported as missing. Names of the shared namespaces that name no folder fail with
    /// [`MailError::NoSuchFolder`].
    pub fn access(&self, user: &str, visible: &str) -> MailResult<Access> {
        let Some((mut owner, name, namespace)) = split_name(user, visible) else {
            return Err(no_such(user, visible));
        };
        if namespace == Namespace::Public {
            owner = self.public_owner_for(user)?;
        }
        let folder = self.inner.meta.get_folder(&owner, &name)?;
        if let Some(f) = &folder {
            self.remember(std::slice::from_ref(f));
        }
        let rights = match &folder {
            Some(f) => self.rights_on(user, f)?,
            None => self.rights_for_new(user, &owner, &name)?,
        };
        let folder = folder.filter(|_| rights.visible());
        Ok(Access {
            visible: visible_name(user, &owner, &name),
            owner,
            name,
            namespace,
            folder,
            rights,
        })
    }

    /// [`Self::access`] for an existing folder on which `user` holds `right`: a missing or
    /// invisible folder fails with [`MailError::NoSuchFolder`], a missing right with
    /// [`MailError::NoPermission`].
    pub fn require(&self, user: &str, visible: &str, right: Right) -> MailResult<Access> {
        let a = self.access(user, visible)?;
        if a.folder.is_none() {
            return Err(no_such(user, visible));
        }
        if !a.rights.has(right) {
            return Err(MailError::NoPermission {
                right: right.letter(),
                name: visible.to_owned(),
            });
        }
        Ok(a)
    }

    /// Checks that `user` holds `right` on the folder with this id.
    pub fn require_id(&self, user: &str, folder_id: i64, right: Right) -> MailResult<()> {
        let owner = self.account_of(folder_id)?;
        if owner == account_key(user) {
            return Ok(());
        }
        let folder = self
            .inner
            .meta
            .list_folders(&owner)?
            .into_iter()
            .find(|f| f.id == folder_id)
            .ok_or(MailError::NoSuchFolderId(folder_id))?;
        let rights = self.rights_on(user, &folder)?;
        if rights.has(right) {
            Ok(())
        } else if rights.visible() {
            Err(MailError::NoPermission {
                right: right.letter(),
                name: visible_name(user, &owner, &folder.name),
            })
        } else {
            Err(MailError::NoSuchFolderId(folder_id))
        }
    }

    /// `user`'s rights on the folder with this id.
    pub fn rights_on_id(&self, user: &str, folder_id: i64) -> MailResult<Rights> {
        let owner = self.account_of(folder_id)?;
        if owner == account_key(user) {
            return Ok(Rights::ALL);
        }
        match self
            .inner
            .meta
            .list_folders(&owner)?
            .into_iter()
            .find(|f| f.id == folder_id)
        {
            Some(f) => self.rights_on(user, &f),
            None => Err(MailError::NoSuchFolderId(folder_id)),
        }
    }

    /// The folders of other accounts `user` can see (`l`), with their visible names and
    /// the user's rights: other users' folders shared with them, and the public folders of
    /// their domain. Mail folders only.
    pub fn shared_folders(&self, user: &str) -> MailResult<Vec<(String, Folder, Rights)>> {
        let account = account_key(user);
        let mut out = Vec::new();
        let mut by_owner: HashMap<String, Vec<Folder>> = HashMap::new();
        let ids = self.identities(&account)?;
        for doc in self.inner.meta.list_docs(FOLDER_ACL_KIND, None)? {
            let Ok(acl) = serde_json::from_value::<AclDoc>(doc.body) else {
                continue;
            };
            if acl.owner == account || acl.owner.starts_with(PUBLIC_OWNER_PREFIX) {
                continue;
            }
            if !acl.entries.iter().any(|e| ids.contains(&e.id)) {
                continue;
            }
            let Ok(id) = doc.key.parse::<i64>() else {
                continue;
            };
            if !by_owner.contains_key(&acl.owner) {
                let folders = self.inner.meta.list_folders(&acl.owner)?;
                self.remember(&folders);
                by_owner.insert(acl.owner.clone(), folders);
            }
            let Some(f) = by_owner
                .get(&acl.owner)
                .and_then(|fs| fs.iter().find(|f| f.id == id))
            else {
                continue;
            };
            let rights = self.rights_on(&account, f)?;
            if rights.has(Right::Lookup) && f.kind == FolderKind::Mail {
                out.push((
                    visible_name(&account, &f.account, &f.name),
                    f.clone(),
                    rights,
                ));
            }
        }
        let public = self.public_owner_for(&account)?;
        let folders = self.inner.meta.list_folders(&public)?;
        self.remember(&folders);
        for f in folders {
            let rights = self.rights_on(&account, &f)?;
            if rights.has(Right::Lookup) && f.kind == FolderKind::Mail {
                out.push((visible_name(&account, &public, &f.name), f, rights));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The ACL of a folder as (identifier, rights) pairs, the owner first with every
    /// right (RFC 4314 §3.3). `user` needs `a` on it; `None` as the user is the
    /// administrator (CLI, API).
    pub fn get_acl(&self, user: Option<&str>, visible: &str) -> MailResult<Vec<(String, Rights)>> {
        let folder = self.admin_target(user, visible)?;
        let mut out = Vec::new();
        if !folder.account.starts_with(PUBLIC_OWNER_PREFIX) {
            out.push((folder.account.clone(), Rights::ALL));
        }
        out.extend(self.entries_of(&folder)?);
        Ok(out)
    }

    /// The folder an ACL command names, checking `a` for a user.
    fn admin_target(&self, user: Option<&str>, visible: &str) -> MailResult<Folder> {
        match user {
            Some(u) => Ok(self
                .require(u, visible, Right::Admin)?
                .folder
                .ok_or_else(|| no_such(u, visible))?),
            None => {
                // Administrator form: `owner` then the owner's name, as `alice@x/Folder`,
                // `#public@x/Folder`, or `#public/Folder` for the public folders of the
                // primary domain (all domains' when global, guide §26.1.1).
                let (owner, name) = visible
                    .split_once(HIERARCHY_SEPARATOR)
                    .ok_or_else(|| no_such("", visible))?;
                let owner = if owner.eq_ignore_ascii_case("#public") {
                    let primary = self.inner.directory.primary_domain()?.unwrap_or_default();
                    self.public_owner_of_domain(&primary)?
                } else {
                    owner.to_owned()
                };
                self.folder(&owner, name)?
                    .ok_or_else(|| no_such(&owner, name))
            }
        }
    }

    /// Checks and normalises an ACL identifier: `anyone`, a user key (a bare login is
    /// taken in the folder owner's domain), or `$group@domain`.
    fn normalise_identifier(&self, owner: &str, id: &str) -> MailResult<String> {
        let id = id.trim();
        if id.eq_ignore_ascii_case(ANYONE) {
            return Ok(ANYONE.to_owned());
        }
        let bad = || MailError::InvalidIdentifier(id.to_owned());
        if id.starts_with('-') {
            return Err(bad()); // negative rights (RFC 4314 §2) are not supported
        }
        let owner_domain = owner
            .strip_prefix(PUBLIC_OWNER_PREFIX)
            .unwrap_or_else(|| domain_of(owner));
        let qualify = |s: &str| {
            let s = s.to_lowercase();
            if s.contains('@') {
                s
            } else {
                format!("{s}@{owner_domain}")
            }
        };
        if let Some(group) = id.strip_prefix('$') {
            let key = qualify(group);
            return match self.inner.directory.get_group(&key) {
                Ok(g) => Ok(format!("${}", g.key())),
                Err(_) => Err(bad()),
            };
        }
        let key = qualify(id);
        match self.inner.directory.get_user(&key) {
            Ok(u) => Ok(u.address),
            Err(DirectoryError::NoSuchUser(_)) => Err(bad()),
            Err(e) => Err(e.into()),
        }
    }

    /// SETACL (RFC 4314 §3.1): `rights` replaces the identifier's rights; a leading `+`
    /// adds, `-` removes. Unknown letters fail with [`MailError::InvalidRights`]. Empty
    /// rights remove the entry. The owner's rights cannot change. `user` needs `a`;
    /// `None` is the administrator (name form `owner/Folder`).
    pub fn set_acl(
        &self,
        user: Option<&str>,
        visible: &str,
        identifier: &str,
        rights: &str,
    ) -> MailResult<()> {
        let (mode, letters) = match rights.chars().next() {
            Some('+') => (1, rights.get(1..).unwrap_or("")),
            Some('-') => (-1, rights.get(1..).unwrap_or("")),
            _ => (0, rights),
        };
        let given =
            Rights::parse(letters).map_err(|e| MailError::InvalidRights(e.0.to_string()))?;
        let folder = self.admin_target(user, visible)?;
        let id = self.normalise_identifier(&folder.account, identifier)?;
        if id == folder.account {
            return Err(MailError::InvalidIdentifier(format!(
                "{id} owns the folder and always has every right"
            )));
        }
        let mut entries: BTreeMap<String, Rights> = self.entries_of(&folder)?.into_iter().collect();
        let old = entries.get(&id).copied().unwrap_or_default();
        let new = match mode {
            1 => old.union(given),
            -1 => old.minus(given),
            _ => given,
        };
        if new.is_empty() {
            entries.remove(&id);
        } else {
            entries.insert(id, new);
        }
        self.write_acl(&folder, entries)
    }

    /// DELETEACL (RFC 4314 §3.2): removes the identifier's entry.
    pub fn delete_acl(
        &self,
        user: Option<&str>,
        visible: &str,
        identifier: &str,
    ) -> MailResult<()> {
        let folder = self.admin_target(user, visible)?;
        let id = if identifier.trim().eq_ignore_ascii_case(ANYONE) {
            ANYONE.to_owned()
        } else {
            // An entry of a user or group removed from the directory can still be deleted.
            self.normalise_identifier(&folder.account, identifier)
                .unwrap_or_else(|_| identifier.trim().to_lowercase())
        };
        let mut entries: BTreeMap<String, Rights> = self.entries_of(&folder)?.into_iter().collect();
        entries.remove(&id);
        self.write_acl(&folder, entries)
    }

    fn write_acl(&self, folder: &Folder, entries: BTreeMap<String, Rights>) -> MailResult<()> {
        let doc = AclDoc {
            owner: folder.account.clone(),
            name: folder.name.clone(),
            entries: entries
                .into_iter()
                .map(|(id, r)| Entry {
                    id,
                    rights: r.to_string(),
                })
                .collect(),
        };
        let body = serde_json::to_value(&doc)
            .map_err(|e| keel_store::StoreError::Backend(e.to_string()))?;
        let key = folder.id.to_string();
        let parent = folder.account.clone();
        self.inner.meta.transact(&mut |tx| {
            tx.put(FOLDER_ACL_KIND, &key, &parent, &body)?;
            Ok(())
        })?;
        // Sessions of other accounts that follow this folder re-read their rights.
        self.notify(&folder.account, None);
        Ok(())
    }

    /// Gives a new folder the ACL of its nearest superior that has one, so that a folder
    /// created inside a shared or public folder is shared the same way (as Dovecot and
    /// Cyrus do; RFC 4314 leaves it to the server). Folders without such a superior keep
    /// the default.
    pub(crate) fn inherit_acl(&self, folder: &Folder) -> MailResult<()> {
        let mut name = folder.name.as_str();
        while let Some((sup, _)) = name.rsplit_once(HIERARCHY_SEPARATOR) {
            if let Some(parent) = self.inner.meta.get_folder(&folder.account, sup)? {
                if let Some(doc) = self.read_acl(parent.id)? {
                    let entries = doc
                        .entries
                        .into_iter()
                        .filter_map(|e| Rights::parse(&e.rights).ok().map(|r| (e.id, r)))
                        .collect();
                    self.write_acl(folder, entries)?;
                }
                return Ok(());
            }
            name = sup;
        }
        Ok(())
    }

    /// Removes a deleted folder's ACL document.
    pub(crate) fn drop_acl(&self, folder_id: i64) {
        let key = folder_id.to_string();
        let res = self.inner.meta.transact(&mut |tx| {
            tx.delete(FOLDER_ACL_KIND, &key)?;
            Ok(())
        });
        if let Err(e) = res {
            tracing::warn!(folder_id, error = %e, "cannot remove a deleted folder's ACL");
        }
    }

    /// The rights `identifier` could be given on a folder (RFC 4314 §3.4 LISTRIGHTS):
    /// (always granted, grantable). The owner always has every right; others get nothing
    /// implicitly and any right can be granted one by one.
    pub fn list_rights(
        &self,
        user: Option<&str>,
        visible: &str,
        identifier: &str,
    ) -> MailResult<(Rights, Vec<Right>)> {
        let folder = self.admin_target(user, visible)?;
        let id = if identifier.trim().eq_ignore_ascii_case(ANYONE) {
            ANYONE.to_owned()
        } else {
            self.normalise_identifier(&folder.account, identifier)?
        };
        if id == folder.account {
            return Ok((Rights::ALL, Vec::new()));
        }
        Ok((Rights::NONE, LETTERS.iter().map(|(r, _)| *r).collect()))
    }

    /// Creates a folder named as `user` sees it: in their own account, below a folder
    /// they hold `k` on, or in the public root when they administer public folders
    /// (requirements-2 §26: "CREATE under the public root requires the public-folder-admin
    /// right"). A new public folder gets the default list (`anyone lr`).
    pub fn create_visible(&self, user: &str, visible: &str) -> MailResult<Access> {
        let a = self.access(user, visible)?;
        if a.folder.is_some() {
            return Err(MailError::FolderExists {
                user: a.owner,
                name: a.name,
            });
        }
        if a.namespace == Namespace::OtherUsers && a.rights.is_empty() {
            return Err(no_such(user, visible));
        }
        if !a.rights.has(Right::CreateMailbox) {
            return Err(MailError::NoPermission {
                right: Right::CreateMailbox.letter(),
                name: visible.to_owned(),
            });
        }
        let folder = self.create_folder(&a.owner, &a.name)?;
        Ok(Access {
            folder: Some(folder),
            ..a
        })
    }

    /// Deletes a folder named as `user` sees it; needs `x` (RFC 4314 §4 DELETE).
    pub fn delete_visible(&self, user: &str, visible: &str) -> MailResult<Folder> {
        let a = self.require(user, visible, Right::DeleteMailbox)?;
        let folder = a.folder.ok_or_else(|| no_such(user, visible))?;
        self.delete_folder(&a.owner, &a.name)?;
        Ok(folder)
    }

    /// Appends to a folder named as `user` sees it; needs `i` (RFC 4314 §4 APPEND). The
    /// message counts toward the owner's quota. Flags the user may not set (`\Seen`
    /// without `s`, `\Deleted` without `t`, others without `w`) are dropped
    /// (RFC 4314 §4: "APPEND … the server SHOULD silently ignore" them).
    pub fn append_visible(
        &self,
        user: &str,
        visible: &str,
        raw: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> MailResult<(Folder, u32)> {
        let a = self.require(user, visible, Right::Insert)?;
        let folder = a.folder.ok_or_else(|| no_such(user, visible))?;
        let flags = permitted_flags(a.rights, flags);
        let (uid, _) = self.append(&a.owner, &a.name, raw, &flags, internal_date)?;
        Ok((folder, uid))
    }
}

/// The flags of `flags` that `rights` allow setting (RFC 4314 §4 STORE).
pub fn permitted_flags(rights: Rights, flags: &[String]) -> Vec<String> {
    flags
        .iter()
        .filter(|f| flag_allowed(rights, f))
        .cloned()
        .collect()
}

/// Whether `rights` allow setting or clearing `flag` (RFC 4314 §4 STORE: `\Seen` needs
/// `s`, `\Deleted` needs `t`, every other flag and keyword `w`).
pub fn flag_allowed(rights: Rights, flag: &str) -> bool {
    if flag.eq_ignore_ascii_case("\\Seen") {
        rights.has(Right::Seen)
    } else if flag.eq_ignore_ascii_case("\\Deleted") {
        rights.has(Right::DeleteMessages)
    } else {
        rights.has(Right::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_parse_and_print_in_rfc_order() {
        // RFC 4314 §2.1
        let r = Rights::parse("arl").unwrap();
        assert_eq!(r.to_string(), "lra");
        assert_eq!(Rights::ALL.to_string(), "lrswipkxtea");
        assert_eq!(Rights::parse("").unwrap(), Rights::NONE);
        assert_eq!(Rights::parse("lrz"), Err(UnknownRight('z')));
        assert_eq!(Rights::parse("L"), Err(UnknownRight('L')));
    }

    #[test]
    fn obsolete_letters_expand() {
        // RFC 4314 §2.1.1
        assert_eq!(Rights::parse("c").unwrap().to_string(), "kx");
        assert_eq!(Rights::parse("d").unwrap().to_string(), "te");
    }

    #[test]
    fn levels_map_to_letters() {
        assert_eq!(Level::Read.rights().to_string(), "lr");
        assert_eq!(Level::ReadWrite.rights().to_string(), "lrswite");
        assert_eq!(Level::Full.rights(), Rights::ALL);
        assert!(!Level::Read.rights().can_modify());
        assert!(Level::ReadWrite.rights().can_modify());
        assert_eq!(Level::parse("read-write"), Some(Level::ReadWrite));
        assert_eq!(Level::parse("owner"), None);
    }

    #[test]
    fn set_operations() {
        let r = Level::ReadWrite.rights();
        assert_eq!(r.minus(Rights::parse("swi").unwrap()).to_string(), "lrte");
        assert!(r.union(Rights::parse("a").unwrap()).has(Right::Admin));
        assert!(Rights::parse("r").unwrap().visible());
        assert!(!Rights::parse("w").unwrap().visible());
    }

    #[test]
    fn flags_need_their_rights() {
        // RFC 4314 §4 STORE
        let read = Level::Read.rights();
        assert!(!flag_allowed(read, "\\Seen"));
        let seen_only = Rights::parse("lrs").unwrap();
        assert!(flag_allowed(seen_only, "\\seen"));
        assert!(!flag_allowed(seen_only, "\\Deleted"));
        assert!(!flag_allowed(seen_only, "$Label"));
        let flags: Vec<String> = ["\\Seen", "\\Deleted", "\\Flagged"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            permitted_flags(Rights::parse("lrit").unwrap(), &flags),
            vec!["\\Deleted".to_owned()]
        );
    }

    #[test]
    fn names_split_into_namespaces() {
        // RFC 2342 §5
        let u = "bob@other.test";
        assert_eq!(
            split_name(u, "INBOX"),
            Some((u.to_owned(), "INBOX".to_owned(), Namespace::Personal))
        );
        assert_eq!(
            split_name(u, "Other Users/Alice@Example.com/Shared/Sub"),
            Some((
                "alice@example.com".to_owned(),
                "Shared/Sub".to_owned(),
                Namespace::OtherUsers
            ))
        );
        assert_eq!(
            split_name(u, "other users/alice@example.com/inbox"),
            Some((
                "alice@example.com".to_owned(),
                "INBOX".to_owned(),
                Namespace::OtherUsers
            ))
        );
        assert_eq!(
            split_name(u, "Public Folders/News"),
            Some((
                "#public@other.test".to_owned(),
                "News".to_owned(),
                Namespace::Public
            ))
        );
        assert_eq!(split_name(u, "Other Users"), None);
        assert_eq!(split_name(u, "Other Users/alice@example.com"), None);
        assert_eq!(split_name(u, "Other Users/#public@x/A"), None);
        assert_eq!(split_name(u, "Public Folders"), None);
        assert!(is_reserved_name("public folders/x"));
        assert!(!is_reserved_name("Public"));
    }

    #[test]
    fn visible_names_round_trip() {
        let u = "bob@other.test";
        for v in [
            "Projects/2026",
            "Other Users/alice@example.com/Shared",
            "Public Folders/News",
        ] {
            let (owner, name, _) = split_name(u, v).unwrap();
            assert_eq!(visible_name(u, &owner, &name), v);
        }
    }
}
