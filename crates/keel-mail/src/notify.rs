//! Change notifications (for IMAP IDLE and friends) and the POP3 maildrop lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::{Mailboxes, account_key};

/// Capacity of each account's notification channel; a receiver further behind gets
/// `RecvError::Lagged` and should re-read the change log.
pub const NOTIFY_CAPACITY: usize = 64;

/// How long the change listener thread waits for a notification before checking whether
/// the [`Mailboxes`] it serves still exists.
const LISTEN_POLL: Duration = Duration::from_secs(1);

/// Pause after a listener error (e.g. the database restarting) before reconnecting.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// One account's notification channel.
pub(crate) struct Channel {
    tx: broadcast::Sender<u64>,
    /// The highest modseq sent so far, so a change this node made (sent when it
    /// committed) is not sent again when the store's cross-node notification of it
    /// arrives.
    sent: u64,
}

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
        map.retain(|_, c| c.tx.receiver_count() > 0);
        map.entry(account)
            .or_insert_with(|| Channel {
                tx: broadcast::channel(NOTIFY_CAPACITY).0,
                sent: 0,
            })
            .tx
            .subscribe()
    }

    /// Publishes a change another process or cluster node committed (DESIGN §4: change
    /// notifications cross nodes with LISTEN/NOTIFY) to the account's subscribers, as if
    /// it had been made here. Skipped when a modseq at least as high was already sent
    /// (this node's own change, echoed back by the store). Duplicates that slip through
    /// are harmless: subscribers such as IMAP IDLE re-read the change log on every
    /// notification.
    pub fn publish_external(&self, account: &str, modseq: u64) {
        self.send(&account_key(account), modseq, true);
    }

    /// Runs the store's change listener ([`keel_store::MetaStore::change_listener`]), if it
    /// has one, on a dedicated thread that republishes every notification with
    /// [`Self::publish_external`]. Returns the thread, or `None` when the store has no
    /// listener (SQLite: every change is made in this process and already notified).
    ///
    /// The thread holds no strong reference: it ends within about a second once every
    /// clone of this [`Mailboxes`] is dropped. Errors (database restarting) are logged and
    /// the listener reconnects after a pause; changes committed meanwhile are not
    /// announced (best-effort, see the crate notes).
    pub fn spawn_change_listener(&self) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
        let Some(mut listener) = self.inner.meta.change_listener() else {
            return Ok(None);
        };
        let weak: Weak<crate::Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("keel-change-listener".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    let got = listener.next(LISTEN_POLL);
                    let Some(inner) = weak.upgrade() else { return };
                    let mailboxes = Mailboxes { inner };
                    match got {
                        Ok(Some((account, modseq))) => {
                            if failing {
                                tracing::info!("change listener reconnected");
                                failing = false;
                            }
                            mailboxes.publish_external(&account, modseq);
                        }
                        Ok(None) => failing = false,
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "change listener failed; reconnecting");
                            }
                            failing = true;
                            drop(mailboxes);
                            std::thread::sleep(LISTEN_RETRY);
                        }
                    }
                }
            })
            .map(Some)
    }

    /// Sends `modseq` (or, when `None`, the account's current highest modseq) to the
    /// account's subscribers, if any.
    pub(crate) fn notify(&self, account: &str, modseq: Option<u64>) {
        {
            let map = self
                .inner
                .channels
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match map.get(account) {
                Some(c) if c.tx.receiver_count() > 0 => {}
                _ => return,
            }
        }
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
        self.send(account, modseq, false);
    }

    /// Sends `modseq` to the account's subscribers, if any; with `skip_seen`, only when
    /// it is higher than every modseq sent before.
    fn send(&self, account: &str, modseq: u64, skip_seen: bool) {
        let mut map = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(c) = map.get_mut(account) else {
            return;
        };
        if c.tx.receiver_count() == 0 || (skip_seen && modseq <= c.sent) {
            return;
        }
        c.sent = c.sent.max(modseq);
        // An error only means every receiver went away meanwhile.
        let _ = c.tx.send(modseq);
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
