//! Messages: listing, reading, flags, expunge, append, copy.

use keel_directory::Quota;
use keel_store::{BlobId, MessageMeta, NewMessage, StoreError, Usage};

use crate::quota::{self, QuotaStatus};
use crate::{MailError, MailResult, Mailboxes, account_key};

impl Mailboxes {
    /// A folder's messages ordered by UID.
    pub fn messages(&self, folder_id: i64) -> MailResult<Vec<MessageMeta>> {
        self.inner
            .meta
            .list_messages(folder_id)
            .map_err(|e| not_found_as(e, folder_id))
    }

    /// A folder's messages changed (added, or flags changed) after `modseq`, ordered by
    /// UID; expunges are the `MessageExpunged` rows of the change log. IMAP sessions bring
    /// their snapshot up to date with it (RFC 9051 §7.4-§7.5) instead of re-reading the
    /// folder.
    pub fn messages_changed_since(
        &self,
        folder_id: i64,
        modseq: u64,
    ) -> MailResult<Vec<MessageMeta>> {
        self.inner
            .meta
            .list_messages_changed_since(folder_id, modseq)
            .map_err(|e| not_found_as(e, folder_id))
    }

    /// The raw bytes of a message.
    pub fn read(&self, blob: &BlobId) -> MailResult<Vec<u8>> {
        Ok(self.inner.blobs.get(blob)?)
    }

    /// Replaces a message's flags; returns its modseq (unchanged flags write nothing,
    /// RFC 7162 §3.1).
    pub fn set_flags(&self, folder_id: i64, uid: u32, flags: &[String]) -> MailResult<u64> {
        let modseq = self.inner.meta.set_flags(folder_id, uid, flags)?;
        if let Ok(account) = self.account_of(folder_id) {
            self.notify(&account, None);
        }
        Ok(modseq)
    }

    /// [`Mailboxes::set_flags`] for several messages of one folder, in one transaction and
    /// with one notification: each message's modseq, `None` for one that is gone.
    pub fn set_flags_many(
        &self,
        folder_id: i64,
        updates: &[(u32, Vec<String>)],
    ) -> MailResult<Vec<Option<u64>>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .inner
            .meta
            .set_flags_many(folder_id, updates)
            .map_err(|e| not_found_as(e, folder_id))?;
        if let Ok(account) = self.account_of(folder_id) {
            self.notify(&account, None);
        }
        Ok(out)
    }

    /// Deletes messages for good from the user's point of view (IMAP EXPUNGE, POP3 DELE,
    /// clean-out; missing UIDs are skipped). When the owner's domain keeps deleted items
    /// (guide §7.4), each message becomes a tombstone that "Recover deleted items" can
    /// restore; otherwise blobs that lost their last reference are deleted from the blob
    /// store.
    pub fn expunge(&self, folder_id: i64, uids: &[u32]) -> MailResult<()> {
        let retain = match self.account_of(folder_id) {
            Ok(account) => self.recovery_days(&account)? > 0,
            Err(_) => false,
        };
        self.expunge_inner(folder_id, uids, retain)
    }

    /// Removes message rows without keeping tombstones: the messages live on elsewhere
    /// (the source side of a move) or never really arrived (a failed multi-APPEND, RFC 3502
    /// §6).
    pub fn expunge_discarding(&self, folder_id: i64, uids: &[u32]) -> MailResult<()> {
        self.expunge_inner(folder_id, uids, false)
    }

    fn expunge_inner(&self, folder_id: i64, uids: &[u32], retain: bool) -> MailResult<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let meta = &self.inner.meta;
        let orphans = if retain {
            meta.expunge_retaining(folder_id, uids, self.inner.clock.unix())
        } else {
            meta.expunge(folder_id, uids)
        }
        .map_err(|e| not_found_as(e, folder_id))?;
        self.release_blobs(orphans);
        if let Ok(account) = self.account_of(folder_id) {
            self.notify(&account, None);
        }
        Ok(())
    }

    /// The account's quota usage (kept incrementally, DESIGN §2).
    pub fn usage(&self, user: &str) -> MailResult<Usage> {
        Ok(self.inner.meta.usage(&account_key(user))?)
    }

    /// The account's quota limits; accounts that are not users (public folder owners,
    /// `#…`) are unlimited.
    pub(crate) fn quota_of(&self, account: &str) -> MailResult<Quota> {
        if account.starts_with('#') {
            return Ok(Quota::default());
        }
        Ok(self.inner.directory.get_user(account)?.quota)
    }

    /// Would storing one more message of `incoming_size` bytes exceed the user's quota?
    /// (guide §8.2; used by SMTP at RCPT/DATA time). 0 = unlimited.
    pub fn quota_check(&self, user: &str, incoming_size: u64) -> MailResult<QuotaStatus> {
        let account = account_key(user);
        let q = self.quota_of(&account)?;
        let usage = self.inner.meta.usage(&account)?;
        Ok(quota::check(q, usage, incoming_size, 1))
    }

    /// Appends a message to a folder of the user (IMAP APPEND); returns (uid, modseq).
    /// Refused with [`MailError::OverQuota`] when it does not fit (guide §8.2).
    pub fn append(
        &self,
        user: &str,
        folder: &str,
        raw: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> MailResult<(u32, u64)> {
        let account = account_key(user);
        let target = match self.folder(&account, folder)? {
            Some(f) => f,
            None => {
                return Err(MailError::NoSuchFolder {
                    user: account,
                    name: folder.to_owned(),
                });
            }
        };
        let q = self.quota_of(&account)?;
        let size = raw.len() as u64;
        let id = BlobId::of(raw);
        // Lock order: blob stripe, then account stripe (see locks.rs).
        let _blob = self.inner.blob_locks.lock_one(&id.0);
        let _acct = self.inner.account_locks.lock_one(&account);
        let usage = self.inner.meta.usage(&account)?;
        if let QuotaStatus::Exceeded { what, limit, used } = quota::check(q, usage, size, 1) {
            return Err(MailError::OverQuota {
                user: account,
                what,
                limit,
                used,
            });
        }
        let blob = self.inner.blobs.put(raw)?;
        let msg = NewMessage {
            blob: blob.clone(),
            size,
            flags: flags.to_vec(),
            internal_date,
        };
        let res = self.inner.meta.append_messages(target.id, &[msg]);
        let appended = match res {
            Ok(v) => v,
            Err(e) => {
                self.delete_if_unreferenced_locked(&blob);
                return Err(e.into());
            }
        };
        let Some(&(uid, modseq)) = appended.first() else {
            return Err(MailError::Store(StoreError::Backend(
                "append returned no UID".into(),
            )));
        };
        self.notify(&account, Some(modseq));
        Ok((uid, modseq))
    }

    /// Copies messages (same blob, new rows; missing UIDs skipped); returns
    /// (source UID, new UID) pairs in source UID order (RFC 4315 COPYUID). Refused with
    /// [`MailError::OverQuota`] when the destination account's quota would be exceeded.
    pub fn copy(
        &self,
        from_folder: i64,
        uids: &[u32],
        to_folder: i64,
    ) -> MailResult<Vec<(u32, u32)>> {
        self.copy_inner(from_folder, uids, to_folder, true)
    }

    /// Moves messages between two folders of the same account (IMAP MOVE, RFC 6851): copy
    /// without a quota check (the usage does not grow), then expunge the sources. Returns
    /// (source UID, new UID) pairs in source UID order, as [`Self::copy`].
    pub fn move_messages(
        &self,
        from_folder: i64,
        uids: &[u32],
        to_folder: i64,
    ) -> MailResult<Vec<(u32, u32)>> {
        if self.account_of(from_folder)? != self.account_of(to_folder)? {
            return self.copy(from_folder, uids, to_folder).and_then(|pairs| {
                let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                self.expunge_discarding(from_folder, &moved).map(|()| pairs)
            });
        }
        let pairs = self.copy_unchecked(from_folder, uids, to_folder)?;
        let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        self.expunge_discarding(from_folder, &moved)?;
        Ok(pairs)
    }

    /// [`Self::copy`] without the quota check (messages that move).
    pub(crate) fn copy_unchecked(
        &self,
        from_folder: i64,
        uids: &[u32],
        to_folder: i64,
    ) -> MailResult<Vec<(u32, u32)>> {
        self.copy_inner(from_folder, uids, to_folder, false)
    }

    fn copy_inner(
        &self,
        from_folder: i64,
        uids: &[u32],
        to_folder: i64,
        check_quota: bool,
    ) -> MailResult<Vec<(u32, u32)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let account = self.account_of(to_folder)?;
        let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let sources: Vec<MessageMeta> = self
            .messages(from_folder)?
            .into_iter()
            .filter(|m| wanted.contains(&m.uid))
            .collect();
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let q = if check_quota {
            self.quota_of(&account)?
        } else {
            Quota::default()
        };
        // Lock order: blob stripes, then account stripe. Holding the blob stripes keeps a
        // concurrent expunge from deleting a blob before the new rows reference it.
        let _blobs = self
            .inner
            .blob_locks
            .lock(sources.iter().map(|m| &m.blob.0));
        let _acct = self.inner.account_locks.lock_one(&account);
        let mut new = Vec::with_capacity(sources.len());
        let mut src_uids = Vec::with_capacity(sources.len());
        for m in &sources {
            // The source may have been expunged and its blob deleted meanwhile.
            if !self.inner.blobs.exists(&m.blob)? {
                continue;
            }
            src_uids.push(m.uid);
            new.push(NewMessage {
                blob: m.blob.clone(),
                size: m.size,
                flags: m.flags.clone(),
                internal_date: m.internal_date,
            });
        }
        let bytes = new.iter().map(|m| m.size).fold(0u64, u64::saturating_add);
        let usage = self.inner.meta.usage(&account)?;
        if let QuotaStatus::Exceeded { what, limit, used } =
            quota::check(q, usage, bytes, new.len() as u64)
        {
            return Err(MailError::OverQuota {
                user: account,
                what,
                limit,
                used,
            });
        }
        let appended = self
            .inner
            .meta
            .append_messages(to_folder, &new)
            .map_err(|e| not_found_as(e, to_folder))?;
        if let Some(&(_, modseq)) = appended.last() {
            self.notify(&account, Some(modseq));
        }
        Ok(src_uids
            .into_iter()
            .zip(appended.into_iter().map(|(uid, _)| uid))
            .collect())
    }

    /// Deletes blobs that lost their last reference. Failures are logged, not returned: the
    /// metadata change already committed and the orphan collector removes leftovers.
    pub(crate) fn release_blobs(&self, ids: Vec<BlobId>) {
        for id in ids {
            self.delete_if_unreferenced(&id);
        }
    }

    /// Deletes a blob if nothing references it, under its stripe lock.
    pub(crate) fn delete_if_unreferenced(&self, id: &BlobId) {
        let _guard = self.inner.blob_locks.lock_one(&id.0);
        self.delete_if_unreferenced_locked(id);
    }

    /// As [`Self::delete_if_unreferenced`], for a caller already holding the stripe.
    pub(crate) fn delete_if_unreferenced_locked(&self, id: &BlobId) {
        match self.inner.meta.blob_refcount(id) {
            Ok(0) => {
                if let Err(e) = self.inner.blobs.delete(id) {
                    tracing::warn!(blob = %id, error = %e, "cannot delete unreferenced blob");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(blob = %id, error = %e, "cannot read blob refcount"),
        }
    }
}

fn not_found_as(e: StoreError, folder_id: i64) -> MailError {
    match e {
        StoreError::NotFound(what) if what.starts_with("folder") => {
            MailError::NoSuchFolderId(folder_id)
        }
        other => other.into(),
    }
}
