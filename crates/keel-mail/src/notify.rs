//! Change notifications (for IMAP IDLE and friends) and the POP3 maildrop lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::{Mailboxes, account_key};

/// Capacity of each account's notification channel; a receiver further behind gets
/// `RecvError::Lagged` and should re-read the change log.
pub const NOTIFY_CAPACITY: usize = 64;

impl Mailboxes {
    /// Subscribes to an account's changes: every mutation made through this [`Mailboxes`]
    /// (in this process) sends the account's new highest modseq (DESIGN §2: one change log
    /// per account; cross-process notification is the cluster work's, DESIGN §4).
    pub fn subscribe(&self, user: &str) -> broadcast::Receiver<u64> {
        let account = account_key(user);
        let mut map = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(account)
            .or_insert_with(|| broadcast::channel(NOTIFY_CAPACITY).0)
            .subscribe()
    }

    /// Sends `modseq` (or, when `None`, the account's current highest modseq) to the
    /// account's subscribers, if any.
    pub(crate) fn notify(&self, account: &str, modseq: Option<u64>) {
        let tx = {
            let map = self
                .inner
                .channels
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match map.get(account) {
                Some(tx) if tx.receiver_count() > 0 => tx.clone(),
                _ => return,
            }
        };
        let modseq = match modseq {
            Some(m) => m,
            None => match self.inner.meta.highest_modseq(account) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(account, error = %e, "cannot read highest modseq for notification");
                    return;
                }
            },
        };
        // An error only means every receiver went away meanwhile.
        let _ = tx.send(modseq);
    }

    /// Locks the account's POP3 maildrop (RFC 1939 §8; guide table 12.1: one POP3 session
    /// per account at a time). `None` when another session holds it. The lock is released
    /// when the guard drops. It is per process: it does not exclude a session served by
    /// another process or cluster node.
    pub fn lock_maildrop(&self, user: &str) -> Option<MaildropLock> {
        let account = account_key(user);
        let mut held = self
            .inner
            .maildrops
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !held.insert(account.clone()) {
            return None;
        }
        Some(MaildropLock {
            registry: Arc::clone(&self.inner.maildrops),
            account,
        })
    }
}

/// A held POP3 maildrop lock (see [`Mailboxes::lock_maildrop`]); released on drop.
pub struct MaildropLock {
    registry: Arc<Mutex<HashSet<String>>>,
    account: String,
}

impl MaildropLock {
    /// The locked account.
    pub fn user(&self) -> &str {
        &self.account
    }
}

impl std::fmt::Debug for MaildropLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildropLock")
            .field("user", &self.account)
            .finish()
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.account);
    }
}
