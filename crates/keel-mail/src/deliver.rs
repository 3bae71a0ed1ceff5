//! Local delivery of one message to many users (DESIGN §2, §3) and the quota warning
//! (guide §8.2).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use keel_directory::{DirectoryError, Quota};
use keel_store::{BlobId, NewMessage};

use crate::quota::{self, QUOTA_WARNING_INTERVAL_SECS, QuotaKind, QuotaStatus, WarningParams};
use crate::special::SpecialUse;
use crate::{MAIL_STATE_KIND, MailError, MailResult, Mailboxes, account_key};

/// A message to deliver to local users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The raw RFC 5322 bytes.
    pub raw: Vec<u8>,
    /// User keys (`login@domain`); duplicates are delivered once.
    pub recipients: Vec<String>,
    /// Internal date, seconds since the Unix epoch.
    pub internal_date: i64,
}

/// The outcome of a delivery for one distinct recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient as given in [`Delivery::recipients`] (its first occurrence).
    pub user: String,
    /// `Ok` means the message is durably stored in the user's INBOX.
    pub result: Result<Delivered, DeliveryError>,
}

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The INBOX folder id.
    pub folder: i64,
    /// The new message's UID.
    pub uid: u32,
}

/// Why a recipient did not get the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Storing the message would exceed the recipient's quota (guide §8.2).
    #[error(
        "the recipient's mailbox is full: its {what} limit is {limit} and {used} is already used"
    )]
    QuotaExceeded {
        /// Which limit.
        what: QuotaKind,
        /// The limit.
        limit: u64,
        /// Usage before this message.
        used: u64,
    },
    /// The recipient is not a user of the directory.
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    /// The store or directory failed; the message was not stored for this recipient.
    #[error("the message could not be stored: {0}")]
    Store(String),
}

/// Where [`Mailboxes::deliver_to`] files a message.
#[derive(Clone, Copy)]
enum Destination<'a> {
    Named(&'a str),
    Special(SpecialUse),
}

struct Target {
    slot: usize,
    account: String,
    domain: String,
    quota: Quota,
}

impl Mailboxes {
    /// Delivers a message to the INBOX of each distinct recipient (see [`Delivery`]).
    ///
    /// The blob is written once for every recipient (DESIGN §2); each recipient's row is
    /// then committed in its own transaction. Recipients over quota get
    /// [`DeliveryError::QuotaExceeded`] and nothing is stored for them. When no recipient
    /// gets the message no blob is left behind. Returns one outcome per distinct user, in
    /// order of first appearance; `Err` only when the blob itself could not be written
    /// (then nothing was delivered).
    pub fn deliver(&self, msg: &Delivery) -> MailResult<Vec<RecipientOutcome>> {
        self.deliver_into(msg, crate::INBOX)
    }

    /// Like [`Mailboxes::deliver`], but files the message into the folder `folder` of each
    /// recipient instead of the INBOX, e.g. tagged spam into [`crate::JUNK`] (guide §13.1,
    /// §13.4). The default folders are created first; a folder the user deleted is created
    /// again; when it cannot be created the message goes to the INBOX (never lost).
    pub fn deliver_into(&self, msg: &Delivery, folder: &str) -> MailResult<Vec<RecipientOutcome>> {
        self.deliver_to(msg, Destination::Named(folder))
    }

    /// Like [`Mailboxes::deliver_into`], into each recipient's folder of a special use
    /// (e.g. tagged spam into Junk, guide §13.1), whatever its domain or the recipient
    /// named it (special.rs).
    pub fn deliver_to_special(
        &self,
        msg: &Delivery,
        special_use: SpecialUse,
    ) -> MailResult<Vec<RecipientOutcome>> {
        self.deliver_to(msg, Destination::Special(special_use))
    }

    fn deliver_to(&self, msg: &Delivery, folder: Destination) -> MailResult<Vec<RecipientOutcome>> {
        let mut outcomes: Vec<RecipientOutcome> = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let size = msg.raw.len() as u64;

        for r in &msg.recipients {
            let slot = outcomes.len();
            let result = match self.inner.directory.get_user(r) {
                Ok(user) => {
                    if !seen.insert(user.address.clone()) {
                        continue;
                    }
                    targets.push(Target {
                        slot,
                        account: user.address,
                        domain: user.domain,
                        quota: user.quota,
                    });
                    Err(DeliveryError::Store("not attempted".into()))
                }
                Err(e) => {
                    if !seen.insert(account_key(r)) {
                        continue;
                    }
                    match e {
                        DirectoryError::NoSuchUser(_) => {
                            Err(DeliveryError::NoSuchUser(account_key(r)))
                        }
                        other => Err(DeliveryError::Store(other.to_string())),
                    }
                }
            };
            outcomes.push(RecipientOutcome {
                user: r.clone(),
                result,
            });
        }

        // Quota first, so that a message nobody can take never touches the blob store.
        let mut candidates = Vec::new();
        for t in targets {
            match self.quota_refusal(&t, size) {
                Ok(None) => candidates.push(t),
                Ok(Some(refusal)) | Err(refusal) => set(&mut outcomes, t.slot, Err(refusal)),
            }
        }
        if candidates.is_empty() {
            return Ok(outcomes);
        }

        let id = BlobId::of(&msg.raw);
        let mut delivered = Vec::new();
        {
            // Lock order: blob stripe, then account stripes (see locks.rs).
            let _blob = self.inner.blob_locks.lock_one(&id.0);
            let blob = self.inner.blobs.put(&msg.raw)?;
            for t in candidates {
                let result = self.deliver_one(&t, &blob, size, msg.internal_date, folder);
                if let Ok((_, modseq)) = &result {
                    delivered.push((t.account.clone(), t.domain.clone(), t.quota, *modseq));
                }
                set(&mut outcomes, t.slot, result.map(|(d, _)| d));
            }
            if delivered.is_empty() {
                self.delete_if_unreferenced_locked(&blob);
            }
        }

        for (account, domain, quota, modseq) in delivered {
            self.notify(&account, Some(modseq));
            self.maybe_send_quota_warning(&account, &domain, quota);
        }
        Ok(outcomes)
    }

    /// `Ok(Some(_))` when the recipient's quota refuses `size` more bytes.
    fn quota_refusal(&self, t: &Target, size: u64) -> Result<Option<DeliveryError>, DeliveryError> {
        let usage = self
            .inner
            .meta
            .usage(&t.account)
            .map_err(|e| DeliveryError::Store(e.to_string()))?;
        Ok(match quota::check(t.quota, usage, size, 1) {
            QuotaStatus::Ok => None,
            QuotaStatus::Exceeded { what, limit, used } => {
                Some(DeliveryError::QuotaExceeded { what, limit, used })
            }
        })
    }

    /// Stores the message for one recipient under its account lock; returns where and the
    /// modseq. The caller holds the blob's stripe.
    fn deliver_one(
        &self,
        t: &Target,
        blob: &BlobId,
        size: u64,
        internal_date: i64,
        folder: Destination,
    ) -> Result<(Delivered, u64), DeliveryError> {
        let store_err = |e: MailError| DeliveryError::Store(e.to_string());
        // Default folders are created on first delivery (guide §8.2).
        let mut inbox = self.inbox(&t.account).map_err(store_err)?;
        let named;
        let folder = match folder {
            Destination::Named(n) => n,
            Destination::Special(u) => {
                named = self.special_folder(&t.account, u).map_err(store_err)?;
                named.as_str()
            }
        };
        if folder != crate::INBOX {
            match self.delivery_folder(&t.account, folder) {
                Ok(f) => inbox = f,
                Err(e) => {
                    tracing::warn!(account = %t.account, folder, error = %e,
                        "delivery folder unavailable; filed into the INBOX");
                }
            }
        }
        let _acct = self.inner.account_locks.lock_one(&t.account);
        // Re-check under the account lock: another delivery may have used the space.
        if let Some(refusal) = self.quota_refusal(t, size)? {
            return Err(refusal);
        }
        let appended = self
            .inner
            .meta
            .append_messages(
                inbox.id,
                &[NewMessage {
                    blob: blob.clone(),
                    size,
                    flags: Vec::new(),
                    internal_date,
                }],
            )
            .map_err(|e| DeliveryError::Store(e.to_string()))?;
        match appended.first() {
            Some(&(uid, modseq)) => Ok((
                Delivered {
                    folder: inbox.id,
                    uid,
                },
                modseq,
            )),
            None => Err(DeliveryError::Store("the store assigned no UID".into())),
        }
    }

    /// The folder `name` of `account`, created when missing.
    fn delivery_folder(&self, account: &str, name: &str) -> MailResult<keel_store::Folder> {
        if let Some(f) = self.folder(account, name)? {
            return Ok(f);
        }
        match self.create_folder(account, name) {
            Ok(f) => Ok(f),
            Err(MailError::FolderExists { .. }) => {
                self.folder(account, name)?
                    .ok_or_else(|| MailError::NoSuchFolder {
                        user: account.to_owned(),
                        name: name.to_owned(),
                    })
            }
            Err(e) => Err(e),
        }
    }

    /// Guide §8.2: at or above 90 % of either limit, warn the user at most once per 24 h.
    /// Failures are logged; they never fail the delivery that triggered them.
    fn maybe_send_quota_warning(&self, account: &str, domain: &str, quota: Quota) {
        if let Err(e) = self.try_quota_warning(account, domain, quota) {
            tracing::warn!(account, error = %e, "cannot send the quota warning");
        }
    }

    fn try_quota_warning(&self, account: &str, domain: &str, quota: Quota) -> MailResult<()> {
        let usage = self.inner.meta.usage(account)?;
        if !quota::at_warning_level(quota, usage) {
            return Ok(());
        }
        let now = self.inner.clock.now();
        let now_unix = now.timestamp();
        if !self.claim_quota_warning(account, domain, now_unix)? {
            return Ok(());
        }
        let hostname = match self.hostname() {
            h if h.is_empty() => domain.to_owned(),
            h => h,
        };
        let n = self.inner.unique.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{now_unix}.{}.{n}", std::process::id());
        let raw = quota::warning_message(&WarningParams {
            user: account,
            domain,
            hostname: &hostname,
            unique: &unique,
            now,
            quota,
            usage,
        });
        // The warning counts toward the quota but is not refused by it (crate docs).
        let inbox = self.inbox(account)?;
        let id = BlobId::of(&raw);
        let _blob = self.inner.blob_locks.lock_one(&id.0);
        let blob = self.inner.blobs.put(&raw)?;
        let res = self.inner.meta.append_messages(
            inbox.id,
            &[NewMessage {
                blob: blob.clone(),
                size: raw.len() as u64,
                flags: Vec::new(),
                internal_date: now_unix,
            }],
        );
        match res {
            Ok(v) => {
                tracing::info!(account, "quota warning sent");
                self.notify(account, v.last().map(|&(_, m)| m));
                Ok(())
            }
            Err(e) => {
                self.delete_if_unreferenced_locked(&blob);
                Err(e.into())
            }
        }
    }

    /// Records `now` as the last warning time unless a warning was sent less than 24 h ago;
    /// returns whether this caller may send one. One transaction, so concurrent deliveries
    /// (in any process) send at most one warning.
    fn claim_quota_warning(&self, account: &str, domain: &str, now: i64) -> MailResult<bool> {
        let mut claimed = false;
        self.inner.meta.transact(&mut |tx| {
            claimed = false;
            let mut body = tx
                .get(MAIL_STATE_KIND, account)?
                .map(|d| d.body)
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({}));
            let last = body
                .get(QUOTA_WARNING_AT)
                .and_then(serde_json::Value::as_i64);
            if let Some(last) = last
                && now.saturating_sub(last) < QUOTA_WARNING_INTERVAL_SECS
            {
                return Ok(());
            }
            if let Some(obj) = body.as_object_mut() {
                obj.insert(QUOTA_WARNING_AT.into(), serde_json::json!(now));
            }
            tx.put(MAIL_STATE_KIND, account, domain, &body)?;
            claimed = true;
            Ok(())
        })?;
        Ok(claimed)
    }
}

/// Field of the `mail_state` document: Unix time of the last quota warning.
const QUOTA_WARNING_AT: &str = "quota_warning_at";

fn set(outcomes: &mut [RecipientOutcome], slot: usize, result: Result<Delivered, DeliveryError>) {
    if let Some(o) = outcomes.get_mut(slot) {
        o.result = result;
    }
}
