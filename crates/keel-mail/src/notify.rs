//! Change notifications (for IMAP IDLE and friends) and the POP3 maildrop lock.

use std::collections::{HashMap, HashSet};
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

/// Owner account → (following account → number of guards).
pub(crate) type Follows = Arc<Mutex<HashMap<String, HashMap<String, usize>>>>;

/// Keeps `follower` woken by `owner`'s notifications (see [`Mailboxes::follow`]); undone on
/// drop.
pub struct FollowGuard {
    follows: Follows,
    owner: String,
    follower: String,
}

impl std::fmt::Debug for FollowGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowGuard")
            .field("owner", &self.owner)
            .field("follower", &self.follower)
            .finish()
    }
}

impl Drop for FollowGuard {
    fn drop(&mut self) {
        let mut map = self.follows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(followers) = map.get_mut(&self.owner) {
            if let Some(n) = followers.get_mut(&self.follower) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    followers.remove(&self.follower);
                }
            }
            if followers.is_empty() {
                map.remove(&self.owner);
            }
        }
    }
}

impl Mailboxes {
    /// Makes every change notification of `owner` also wake the subscribers of `follower`
    /// (a session of `follower` watching a folder `owner` shared with them, guide ch. 26),
    /// until the guard drops. The follower's subscribers receive the follower's own last
    /// sent modseq, a duplicate: they re-read the owner's change log themselves.
    pub fn follow(&self, follower: &str, owner: &str) -> FollowGuard {
        let owner = account_key(owner);
        let follower = account_key(follower);
        let mut map = self.inner.follows.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(owner.clone())
            .or_default()
            .entry(follower.clone())
            .or_insert(0) += 1;
        FollowGuard {
            follows: Arc::clone(&self.inner.follows),
            owner,
            follower,
        }
    }

    /// Wakes the followers of `owner` (see [`Self::follow`]).
    fn wake_followers(&self, owner: &str) {
        let followers: Vec<String> = {
            let map = self.inner.follows.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(owner) {
                Some(f) => f.keys().cloned().collect(),
                None => return,
            }
        };
        let map = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for f in followers {
            if let Some(c) = map.get(&f)
                && c.tx.receiver_count() > 0
            {
                let _ = c.tx.send(c.sent);
            }
        }
    }

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
        let account = account_key(account);
        self.wake_followers(&account);
        self.send(&account, modseq, true);
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
        self.wake_followers(account);
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
