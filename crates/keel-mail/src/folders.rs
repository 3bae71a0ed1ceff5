//! Folders of an account (requirements-2 §26; guide §7.5 names; RFC 9051 §5.1, §6.3).

use keel_store::{Folder, FolderKind, StoreError};

use crate::special::SpecialUse;
use crate::{MailError, MailResult, Mailboxes, account_key};

/// The INBOX; its name is case-insensitive (RFC 9051 §5.1).
pub const INBOX: &str = "INBOX";
/// Sent mail (guide §7.5 names; RFC 6154 `\Sent`): the default, see [`SpecialUse`].
pub const SENT_ITEMS: &str = "Sent Items";
/// Drafts (RFC 6154 `\Drafts`).
pub const DRAFTS: &str = "Drafts";
/// Deleted items (RFC 6154 `\Trash`).
pub const DELETED_ITEMS: &str = "Deleted Items";
/// Junk mail (RFC 6154 `\Junk`; requirements-1 §0 item 12: one junk folder).
pub const JUNK: &str = "Junk E-mail";
/// Archive (RFC 6154 `\Archive`; issue 4).
pub const ARCHIVE: &str = "Archive";
/// The folders a mailbox of a domain with default names gets (guide §7.5, §8.2, issue 4),
/// created on first delivery or login.
pub const DEFAULT_FOLDERS: [&str; 6] = [INBOX, SENT_ITEMS, DRAFTS, DELETED_ITEMS, JUNK, ARCHIVE];
/// Hierarchy separator of folder names.
pub const HIERARCHY_SEPARATOR: char = '/';
/// Longest accepted folder name, in bytes.
pub const MAX_FOLDER_NAME_BYTES: usize = 512;

/// The RFC 6154 special-use attribute of a recognised folder name, if any (an account's
/// own names come from [`Mailboxes::special_folders`]).
pub fn special_use(name: &str) -> Option<&'static str> {
    SpecialUse::of_recognised_name(name).map(SpecialUse::attribute)
}

/// Spells the top-level `INBOX` component canonically: `inbox` and `Inbox/Sub` name the
/// INBOX and its inferior (RFC 9051 §5.1).
pub(crate) fn canonical_name(name: &str) -> String {
    let (top, rest) = match name.split_once(HIERARCHY_SEPARATOR) {
        Some((t, r)) => (t, Some(r)),
        None => (name, None),
    };
    if top.eq_ignore_ascii_case(INBOX) {
        match rest {
            Some(r) => format!("{INBOX}{HIERARCHY_SEPARATOR}{r}"),
            None => INBOX.to_owned(),
        }
    } else {
        name.to_owned()
    }
}

fn validate_name(name: &str) -> MailResult<()> {
    let bad = |reason| {
        Err(MailError::InvalidFolderName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_FOLDER_NAME_BYTES {
        return bad("it is too long");
    }
    if name.split(HIERARCHY_SEPARATOR).any(str::is_empty) {
        return bad("it has an empty hierarchy level");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    // RFC 2342: the shared namespaces' roots are never personal names (acl.rs).
    if crate::acl::is_reserved_name(name) {
        return bad("its top level is reserved for shared folders");
    }
    // RFC 9051 §5.1: the LIST wildcards should not be part of names.
    if name.contains(['*', '%']) {
        return bad("it contains a wildcard character (* or %)");
    }
    Ok(())
}

/// The superior names of `name` (`A`, `A/B` for `A/B/C`), shortest first.
fn superiors(name: &str) -> Vec<&str> {
    name.match_indices(HIERARCHY_SEPARATOR)
        .map(|(i, _)| &name[..i])
        .collect()
}

fn is_inferior(name: &str, of: &str) -> bool {
    name.len() > of.len()
        && name.starts_with(of)
        && name[of.len()..].starts_with(HIERARCHY_SEPARATOR)
}

impl Mailboxes {
    /// Remembers which account owns these folders (see the implementation notes).
    pub(crate) fn remember(&self, folders: &[Folder]) {
        let mut map = self
            .inner
            .folder_accounts
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for f in folders {
            map.insert(f.id, f.account.clone());
        }
    }

    fn forget(&self, folder_id: i64) {
        self.inner
            .folder_accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&folder_id);
    }

    fn cached_account(&self, folder_id: i64) -> Option<String> {
        self.inner
            .folder_accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&folder_id)
            .cloned()
    }

    /// The account owning a folder id.
    pub(crate) fn account_of(&self, folder_id: i64) -> MailResult<String> {
        if let Some(a) = self.cached_account(folder_id) {
            return Ok(a);
        }
        // Fallback: one scan of every user's folders (TODO(keel-store): get_folder_by_id).
        for user in self.inner.directory.list_users(None)? {
            let folders = self.inner.meta.list_folders(&user.address)?;
            self.remember(&folders);
        }
        self.cached_account(folder_id)
            .ok_or(MailError::NoSuchFolderId(folder_id))
    }

    /// Creates the missing default folders of an account: INBOX and one folder per
    /// special use, named as its domain says (guide §7.5, §8.2, issue 4). The special
    /// folders created are recorded as the account's choices, so renaming the domain's
    /// defaults later leaves existing accounts as they are (special.rs).
    pub fn ensure_default_folders(&self, user: &str) -> MailResult<()> {
        let account = account_key(user);
        let existing = self.inner.meta.list_folders(&account)?;
        self.remember(&existing);
        let special = self.special_folders(&account)?;
        let mut created = false;
        let mut chosen = Vec::new();
        let wanted = std::iter::once((INBOX.to_owned(), None)).chain(
            SpecialUse::ALL
                .into_iter()
                .map(|u| (special.name(u).to_owned(), Some(u))),
        );
        for (name, special_use) in wanted {
            if existing.iter().any(|f| f.name == name) {
                continue;
            }
            for sup in superiors(&name) {
                if !existing.iter().any(|f| f.name == sup) {
                    self.create_if_missing(&account, sup)?;
                }
            }
            match self
                .inner
                .meta
                .create_folder(&account, &name, FolderKind::Mail)
            {
                Ok(f) => {
                    self.remember(std::slice::from_ref(&f));
                    created = true;
                    chosen.extend(special_use.map(|u| (name.clone(), u)));
                }
                // Created concurrently by another session: fine.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (name, u) in chosen {
            self.set_special_use(&account, &name, &[u])?;
        }
        if created {
            self.notify(&account, None);
        }
        Ok(())
    }

    /// The account's folders, ordered by name.
    pub fn folders(&self, user: &str) -> MailResult<Vec<Folder>> {
        let folders = self.inner.meta.list_folders(&account_key(user))?;
        self.remember(&folders);
        Ok(folders)
    }

    /// One folder by name; `INBOX` matches case-insensitively (RFC 9051 §5.1). Names in
    /// the shared namespaces (`Other Users/…`, `Public Folders/…`, see the `acl` module)
    /// resolve to the other account's folder when `user` may see it (RFC 4314 `l` or `r`);
    /// the returned [`Folder`] then carries the visible name and the owner's account.
    /// Callers that change the folder check rights with [`Mailboxes::require`] first.
    pub fn folder(&self, user: &str, name: &str) -> MailResult<Option<Folder>> {
        if let Some((_, _, ns)) = crate::acl::split_name(user, name)
            && ns != crate::acl::Namespace::Personal
        {
            let a = self.access(user, name)?;
            return Ok(a.folder.map(|f| Folder {
                name: a.visible,
                ..f
            }));
        }
        if crate::acl::is_reserved_name(name) {
            return Ok(None);
        }
        let f = self
            .inner
            .meta
            .get_folder(&account_key(user), &canonical_name(name))?;
        if let Some(f) = &f {
            self.remember(std::slice::from_ref(f));
        }
        Ok(f)
    }

    /// The account's INBOX, creating the default folders first if it has none.
    pub fn inbox(&self, user: &str) -> MailResult<Folder> {
        if let Some(f) = self.folder(user, INBOX)? {
            return Ok(f);
        }
        self.ensure_default_folders(user)?;
        self.folder(user, INBOX)?
            .ok_or_else(|| MailError::NoSuchFolder {
                user: account_key(user),
                name: INBOX.to_owned(),
            })
    }

    /// Creates a mail folder, and its missing superiors (RFC 9051 §6.3.4).
    pub fn create_folder(&self, user: &str, name: &str) -> MailResult<Folder> {
        self.create_folder_of_kind(user, name, FolderKind::Mail)
    }

    /// Creates a folder of the given type (requirements-2 §26), and its missing superiors
    /// as mail folders (RFC 9051 §6.3.4).
    pub fn create_folder_of_kind(
        &self,
        user: &str,
        name: &str,
        kind: FolderKind,
    ) -> MailResult<Folder> {
        let account = account_key(user);
        let name = canonical_name(name);
        validate_name(&name)?;
        let existing = self.inner.meta.list_folders(&account)?;
        self.remember(&existing);
        let exists = |n: &str| existing.iter().any(|f| f.name == n);
        if exists(&name) {
            return Err(MailError::FolderExists {
                user: account,
                name,
            });
        }
        for sup in superiors(&name) {
            if !exists(sup) {
                self.create_if_missing(&account, sup)?;
            }
        }
        let folder = self
            .inner
            .meta
            .create_folder(&account, &name, kind)
            .map_err(|e| match e {
                StoreError::Conflict { .. } => MailError::FolderExists {
                    user: account.clone(),
                    name: name.clone(),
                },
                other => other.into(),
            })?;
        self.remember(std::slice::from_ref(&folder));
        self.inherit_acl(&folder)?;
        self.notify(&account, Some(folder.highest_modseq));
        Ok(folder)
    }

    fn create_if_missing(&self, account: &str, name: &str) -> MailResult<()> {
        match self
            .inner
            .meta
            .create_folder(account, name, FolderKind::Mail)
        {
            Ok(f) => {
                self.remember(std::slice::from_ref(&f));
                self.inherit_acl(&f)
            }
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames a folder and its inferiors (`A/B` becomes `X/B` when `A` becomes `X`),
    /// creating missing superiors of the new name (RFC 9051 §6.3.6). Renaming INBOX moves
    /// its messages to a new folder and leaves INBOX empty, inferiors untouched
    /// (RFC 9051 §6.3.6).
    pub fn rename_folder(&self, user: &str, from: &str, to: &str) -> MailResult<()> {
        let account = account_key(user);
        let from = canonical_name(from);
        let to = canonical_name(to);
        validate_name(&to)?;
        let invalid = |reason| MailError::InvalidRename {
            from: from.clone(),
            to: to.clone(),
            reason,
        };
        if to == INBOX {
            return Err(invalid("INBOX is a reserved name"));
        }
        if is_inferior(&to, &from) {
            return Err(invalid("a folder cannot be moved into its own subfolder"));
        }
        let existing = self.inner.meta.list_folders(&account)?;
        self.remember(&existing);
        let Some(src) = existing.iter().find(|f| f.name == from) else {
            return Err(MailError::NoSuchFolder {
                user: account,
                name: from,
            });
        };
        if from == INBOX {
            return self.rename_inbox(&account, src, &to, &existing);
        }
        let mut moves: Vec<(&Folder, String)> = existing
            .iter()
            .filter(|f| f.name == from || is_inferior(&f.name, &from))
            .map(|f| (f, format!("{to}{}", &f.name[from.len()..])))
            .collect();
        moves.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let moved = |n: &str| n == from || is_inferior(n, &from);
        if let Some((_, clash)) = moves.iter().find(|(_, target)| {
            existing
                .iter()
                .any(|f| &f.name == target && !moved(&f.name))
        }) {
            return Err(MailError::FolderExists {
                user: account.clone(),
                name: clash.clone(),
            });
        }
        for sup in superiors(&to) {
            if !existing.iter().any(|f| f.name == sup) {
                self.create_if_missing(&account, sup)?;
            }
        }
        for (folder, target) in &moves {
            self.inner
                .meta
                .rename_folder(folder.id, target)
                .map_err(|e| match e {
                    StoreError::Conflict { .. } => MailError::FolderExists {
                        user: account.clone(),
                        name: target.clone(),
                    },
                    other => other.into(),
                })?;
        }
        // RFC 6154 leaves it open; the folder keeps the use the account chose for it.
        self.rename_special_uses(&account, &from, &to)?;
        self.notify(&account, None);
        Ok(())
    }

    /// RFC 9051 §6.3.6: renaming INBOX moves its messages into a new folder.
    fn rename_inbox(
        &self,
        account: &str,
        inbox: &Folder,
        to: &str,
        existing: &[Folder],
    ) -> MailResult<()> {
        if existing.iter().any(|f| f.name == to) {
            return Err(MailError::FolderExists {
                user: account.to_owned(),
                name: to.to_owned(),
            });
        }
        let target = self.create_folder(account, to)?;
        let uids: Vec<u32> = self
            .inner
            .meta
            .list_messages(inbox.id)?
            .iter()
            .map(|m| m.uid)
            .collect();
        // Quota neutral: the messages move, so no quota check.
        self.copy_unchecked(inbox.id, &uids, target.id)?;
        self.expunge_discarding(inbox.id, &uids)
    }

    /// Deletes a folder and its messages; blobs that lost their last reference are removed
    /// from the blob store. INBOX cannot be deleted (RFC 9051 §6.3.5). Inferiors are kept.
    pub fn delete_folder(&self, user: &str, name: &str) -> MailResult<()> {
        let account = account_key(user);
        let name = canonical_name(name);
        if name == INBOX {
            return Err(MailError::CannotDeleteInbox);
        }
        let Some(folder) = self.inner.meta.get_folder(&account, &name)? else {
            return Err(MailError::NoSuchFolder {
                user: account,
                name,
            });
        };
        // guide §7.4: the messages of a deleted folder are deleted items too.
        if folder.messages > 0 && self.recovery_days(&account)? > 0 {
            let uids: Vec<u32> = self
                .inner
                .meta
                .list_messages(folder.id)?
                .iter()
                .map(|m| m.uid)
                .collect();
            self.inner
                .meta
                .expunge_retaining(folder.id, &uids, self.inner.clock.unix())?;
        }
        let orphans = self.inner.meta.delete_folder(folder.id)?;
        self.drop_acl(folder.id);
        self.forget(folder.id);
        self.release_blobs(orphans);
        self.forget_special_uses(&account, &name)?;
        self.notify(&account, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive() {
        // RFC 9051 §5.1
        assert_eq!(canonical_name("inbox"), "INBOX");
        assert_eq!(canonical_name("Inbox/Work"), "INBOX/Work");
        assert_eq!(canonical_name("Inboxes"), "Inboxes");
        assert_eq!(canonical_name("Sent Items"), "Sent Items");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("A/B").is_ok());
        for bad in ["", "/A", "A/", "A//B", "A*", "A%", "A\nB"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(MAX_FOLDER_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn hierarchy_helpers() {
        assert_eq!(superiors("A/B/C"), vec!["A", "A/B"]);
        assert!(is_inferior("A/B", "A"));
        assert!(!is_inferior("AB", "A"));
        assert!(!is_inferior("A", "A"));
    }

    #[test]
    fn special_use_of_default_folders() {
        // RFC 6154 §2
        assert_eq!(special_use(SENT_ITEMS), Some("\\Sent"));
        assert_eq!(special_use(DRAFTS), Some("\\Drafts"));
        assert_eq!(special_use(DELETED_ITEMS), Some("\\Trash"));
        assert_eq!(special_use(JUNK), Some("\\Junk"));
        assert_eq!(special_use(ARCHIVE), Some("\\Archive"));
        assert_eq!(special_use("Trash"), Some("\\Trash"));
        assert_eq!(special_use(INBOX), None);
    }
}
