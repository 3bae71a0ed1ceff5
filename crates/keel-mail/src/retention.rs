//! Retention: deleted-item recovery (guide §7.4) and the automatic clean-out of Deleted
//! Items and Junk E-mail (guide §7.5).
//!
//! - **Recovery**: while a domain's `deleted_items_recovery_days` is above 0, every message
//!   of its users removed through [`Mailboxes::expunge`] (IMAP EXPUNGE/CLOSE, POP3 DELE, the
//!   clean-out) or in a deleted folder is kept by the store as a tombstone holding its blob.
//!   [`Mailboxes::recover_deleted`] restores the tombstones expunged since a date (and
//!   within the retention) into the user's Deleted Items with new UIDs; the change log
//!   tells IMAP sessions. [`Mailboxes::purge_tombstones`] drops the expired ones (all of
//!   them when recovery is off, or the user is gone) and deletes blobs left unreferenced.
//! - **Clean-out**: per user, the effective age (the user's override, else the domain's;
//!   0 = off) of Deleted Items and of Junk E-mail applies to the folder and every subfolder.
//!   An item's age is the time it entered the folder (the store's `added_at`: delivery,
//!   APPEND, COPY, MOVE, restore), not INTERNALDATE. At most [`CLEANOUT_MAX_PER_FOLDER`]
//!   items per folder per run go, through [`Mailboxes::expunge`] (so tombstones apply and
//!   IMAP sessions see EXPUNGE through the change log). Then the subfolders left empty
//!   (no message, no subfolder) are deleted, deepest first.
//! - Multi-node: every step is a store transaction that is correct when another node runs
//!   the same step at the same time (an expunge of a UID already gone skips it; a purge
//!   finds the rows already deleted; a folder already deleted is skipped).
//!
//! Public-folder owners (`#public@…`) keep no tombstones and have no clean-out.

use std::time::Duration;

use keel_directory::{Domain, User};
use keel_store::StoreError;

use crate::folders::HIERARCHY_SEPARATOR;
use crate::special::SpecialUse;
use crate::{MailError, MailResult, Mailboxes, account_key};

/// Items deleted per folder per clean-out run at most (guide §7.5, "to avoid overload").
pub const CLEANOUT_MAX_PER_FOLDER: usize = 1000;
/// How often the server runs the clean-out (guide §7.5: "about every 6 hours").
pub const CLEANOUT_INTERVAL: Duration = Duration::from_secs(6 * 3600);

const DAY: i64 = 86_400;

/// What one clean-out run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CleanoutReport {
    /// Users looked at.
    pub users: usize,
    /// Items deleted from Deleted Items, Junk E-mail and their subfolders.
    pub items_deleted: usize,
    /// Empty subfolders deleted.
    pub folders_deleted: usize,
    /// Message blobs deleted because an expired tombstone was their last reference.
    pub blobs_purged: usize,
    /// Users the run could not handle (address: error); the run goes on with the others.
    pub errors: Vec<String>,
}

impl CleanoutReport {
    fn add(&mut self, other: &Self) {
        self.users += other.users;
        self.items_deleted += other.items_deleted;
        self.folders_deleted += other.folders_deleted;
        self.blobs_purged += other.blobs_purged;
        self.errors.extend(other.errors.iter().cloned());
    }
}

impl std::fmt::Display for CleanoutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "clean-out: {} users, {} items deleted, {} empty subfolders deleted, {} expired \
             deleted-item blobs purged",
            self.users, self.items_deleted, self.folders_deleted, self.blobs_purged
        )?;
        if !self.errors.is_empty() {
            write!(
                f,
                ", {} errors: {}",
                self.errors.len(),
                self.errors.join("; ")
            )?;
        }
        Ok(())
    }
}

/// Parses the "newer than" date of "Recover deleted items": `YYYY-MM-DD` (midnight UTC)
/// or an RFC 3339 time; Unix seconds.
pub fn parse_since(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

/// The folder named `root` and its subfolders.
fn in_tree(name: &str, root: &str) -> bool {
    name == root
        || name
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with(HIERARCHY_SEPARATOR))
}

impl Mailboxes {
    fn domain_of_user(&self, account: &str) -> MailResult<Option<(User, Domain)>> {
        if account.starts_with('#') {
            return Ok(None);
        }
        let dir = &self.inner.directory;
        let user = match dir.get_user(account) {
            Ok(u) => u,
            Err(keel_directory::DirectoryError::NoSuchUser(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let domain = match dir.get_domain(&user.domain) {
            Ok(d) => d,
            Err(keel_directory::DirectoryError::NoSuchDomain(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some((user, domain)))
    }

    /// Days an expunged message of `account` stays recoverable: its domain's
    /// `deleted_items_recovery_days` (guide §7.4), 0 when recovery is off or the account is
    /// not a user.
    pub fn recovery_days(&self, account: &str) -> MailResult<u32> {
        Ok(self
            .domain_of_user(&account_key(account))?
            .map_or(0, |(_, d)| d.deleted_items_recovery_days()))
    }

    /// "Recover deleted items" (guide §7.4): restores every retained item of `user`
    /// expunged at or after `since` (Unix seconds; items older than the retention are not
    /// restored even if not purged yet) into the user's Deleted Items folder, with new
    /// UIDs. Returns how many were restored. Refused with [`MailError::RecoveryOff`] when
    /// the user's domain keeps no deleted items.
    pub fn recover_deleted(&self, user: &str, since: i64) -> MailResult<usize> {
        let account = account_key(user);
        let Some((_, domain)) = self.domain_of_user(&account)? else {
            return Err(MailError::NoSuchUser(account));
        };
        let days = domain.deleted_items_recovery_days();
        if days == 0 {
            return Err(MailError::RecoveryOff {
                domain: domain.name,
            });
        }
        let oldest = self.inner.clock.unix() - i64::from(days) * DAY;
        self.ensure_default_folders(&account)?;
        let trash_name = self.special_folder(&account, SpecialUse::Trash)?;
        let trash = match self.folder(&account, &trash_name)? {
            Some(f) => f,
            // The user deleted it: recovery brings it back.
            None => self.create_folder(&account, &trash_name)?,
        };
        let restored = self
            .inner
            .meta
            .restore_tombstones(&account, since.max(oldest), trash.id)?;
        if let Some(&(_, modseq)) = restored.last() {
            self.notify(&account, Some(modseq));
        }
        Ok(restored.len())
    }

    /// Removes expired tombstones of every account (all of an account's when its domain's
    /// recovery is off or the user no longer exists) and deletes the blobs they were the
    /// last reference of; returns how many blobs were deleted.
    pub fn purge_tombstones(&self) -> MailResult<usize> {
        let now = self.inner.clock.unix();
        let mut purged = 0;
        for account in self.inner.meta.tombstone_accounts()? {
            let days = self.recovery_days(&account)?;
            let before = if days == 0 {
                i64::MAX
            } else {
                now - i64::from(days) * DAY
            };
            let lost = self.inner.meta.purge_tombstones(&account, before)?;
            purged += lost.len();
            self.release_blobs(lost);
        }
        Ok(purged)
    }

    /// The clean-out of one user (guide §7.5); see the module notes.
    pub fn clean_out_user(&self, user: &str) -> MailResult<CleanoutReport> {
        let account = account_key(user);
        let mut report = CleanoutReport {
            users: 1,
            ..CleanoutReport::default()
        };
        let Some((user, domain)) = self.domain_of_user(&account)? else {
            return Err(MailError::NoSuchUser(account));
        };
        // guide §7.5, §8.2 step 8: the user's setting overrides the domain's. The folders
        // are the account's Trash and Junk, whatever their names (special.rs).
        let special = self.special_folders(&account)?;
        let plan = [
            (
                SpecialUse::Trash,
                user.cleanout_deleted_items_days
                    .unwrap_or_else(|| domain.cleanout_deleted_items_days()),
            ),
            (
                SpecialUse::Junk,
                user.cleanout_junk_days
                    .unwrap_or_else(|| domain.cleanout_junk_days()),
            ),
        ];
        let now = self.inner.clock.unix();
        for (special_use, days) in plan {
            let root = special.name(special_use);
            if days == 0 {
                continue;
            }
            let before = now - i64::from(days) * DAY;
            let tree: Vec<_> = self
                .folders(&account)?
                .into_iter()
                .filter(|f| in_tree(&f.name, root))
                .collect();
            for f in &tree {
                let uids = match self.inner.meta.messages_added_before(
                    f.id,
                    before,
                    CLEANOUT_MAX_PER_FOLDER,
                ) {
                    Ok(u) => u,
                    // Deleted meanwhile (another session or node).
                    Err(StoreError::NotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                if uids.is_empty() {
                    continue;
                }
                match self.expunge(f.id, &uids) {
                    Ok(()) => report.items_deleted += uids.len(),
                    Err(MailError::NoSuchFolderId(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            report.folders_deleted += self.delete_empty_subfolders(&account, root)?;
        }
        Ok(report)
    }

    /// Deletes the subfolders of `root` that hold no message and have no subfolder,
    /// deepest first, so a chain of empty folders goes in one run; returns how many.
    fn delete_empty_subfolders(&self, account: &str, root: &str) -> MailResult<usize> {
        let mut folders: Vec<_> = self
            .folders(account)?
            .into_iter()
            .filter(|f| in_tree(&f.name, root))
            .collect();
        // Deepest first.
        folders.sort_by_key(|f| std::cmp::Reverse(f.name.matches(HIERARCHY_SEPARATOR).count()));
        let mut names: Vec<String> = folders.iter().map(|f| f.name.clone()).collect();
        let mut deleted = 0;
        for f in folders {
            if f.name == root || f.messages > 0 {
                continue;
            }
            if names.iter().any(|n| n != &f.name && in_tree(n, &f.name)) {
                continue;
            }
            match self.delete_folder(account, &f.name) {
                Ok(()) => {
                    names.retain(|n| n != &f.name);
                    deleted += 1;
                }
                Err(MailError::NoSuchFolder { .. }) => names.retain(|n| n != &f.name),
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// One whole clean-out run (guide §7.5): every user of every domain, then the purge of
    /// expired tombstones (guide §7.4). A user that fails is recorded in the report and the
    /// run goes on.
    pub fn clean_out(&self) -> MailResult<CleanoutReport> {
        let mut report = CleanoutReport::default();
        for user in self.inner.directory.list_users(None)? {
            match self.clean_out_user(&user.address) {
                Ok(r) => report.add(&r),
                Err(e) => {
                    report.users += 1;
                    report.errors.push(format!("{}: {e}", user.address));
                }
            }
        }
        report.blobs_purged += self.purge_tombstones()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::in_tree;

    #[test]
    fn since_dates() {
        assert_eq!(super::parse_since("1970-01-02"), Some(86_400));
        assert_eq!(super::parse_since("1970-01-01T01:00:00Z"), Some(3_600));
        assert_eq!(super::parse_since("yesterday"), None);
        assert_eq!(super::parse_since("2026-13-01"), None);
    }

    #[test]
    fn folder_trees() {
        assert!(in_tree("Junk E-mail", "Junk E-mail"));
        assert!(in_tree("Junk E-mail/2026", "Junk E-mail"));
        assert!(!in_tree("Junk E-mails", "Junk E-mail"));
        assert!(!in_tree("INBOX/Junk E-mail", "Junk E-mail"));
    }
}
