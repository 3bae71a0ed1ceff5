//! Group commit of delivery results (issue 3 "group commit keeps this fast").
//!
//! Every delivery task sends its message's results here and waits for the answer; one
//! task takes whatever has queued up meanwhile (at most [`MAX_BATCH`]) and records it with
//! one [`MetaStore::complete_queued`] call, which the SQLite backend makes one transaction
//! (one WAL fsync for the batch instead of two per message). While a batch is being
//! written the next one fills, so the batch grows with the load and a lone message waits
//! for nothing but its own commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use keel_store::{MetaStore, QueueCompletion, QueueOutcome, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most completions written in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

type Job = (QueueCompletion, oneshot::Sender<StoreResult<QueueOutcome>>);

/// The sending side; started on first use (it needs a tokio runtime).
#[derive(Default)]
pub(crate) struct Committer {
    tx: OnceLock<mpsc::UnboundedSender<Job>>,
    /// Transactions written so far (for tests and the debug log).
    batches: Arc<AtomicU64>,
}

impl Committer {
    fn sender(&self, meta: &Arc<dyn MetaStore>) -> &mpsc::UnboundedSender<Job> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(meta.clone(), rx, self.batches.clone()));
            tx
        })
    }

    /// How many batches were written.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Records one message's results; returns when they are durable.
    pub(crate) async fn complete(
        &self,
        meta: &Arc<dyn MetaStore>,
        done: QueueCompletion,
    ) -> StoreResult<QueueOutcome> {
        let (reply, answer) = oneshot::channel();
        if self.sender(meta).send((done, reply)).is_err() {
            return Err(StoreError::Backend("the queue committer stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Backend("the queue committer stopped".into())))
    }
}

async fn run(
    meta: Arc<dyn MetaStore>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    batches: Arc<AtomicU64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<QueueCompletion>, Vec<_>) = batch.into_iter().unzip();
        batches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            "queue: recording {} delivery results in one batch",
            items.len()
        );
        let m = meta.clone();
        let written = tokio::task::spawn_blocking(move || m.complete_queued(&items)).await;
        match written {
            Ok(Ok(outcomes)) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(o)) => format!("{} outcomes for {} messages", o.len(), replies.len()),
                    Err(e) => e.to_string(),
                };
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(format!(
                        "recording delivery results failed: {why}"
                    ))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::file::FileBlobStore;
    use keel_store::sqlite::SqliteStore;
    use keel_store::{BlobStore, QueueRcptState, QueuedMessage, QueuedRecipient, RecipientUpdate};

    /// Fifty deliveries finishing together are written in a few transactions, and every
    /// one gets its own outcome.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_completions_share_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&dir.path().join("meta.sqlite")).expect("store"));
        let blobs = FileBlobStore::open(&dir.path().join("blobs")).expect("blobs");
        for i in 0..50u32 {
            let blob = blobs.put(format!("message {i}").as_bytes()).expect("blob");
            meta.enqueue(&QueuedMessage {
                id: format!("65000000-{i:08X}"),
                sender: "a@example.com".into(),
                envid: None,
                ret: None,
                size: 9,
                blob,
                created: 1,
                next_attempt: 1,
                recipients: vec![QueuedRecipient::new("b@remote.test")],
            })
            .expect("enqueue");
        }
        let committer = Arc::new(Committer::default());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50u32 {
            let (c, m) = (committer.clone(), meta.clone());
            set.spawn(async move {
                let state = if i % 10 == 0 {
                    QueueRcptState::Deferred
                } else {
                    QueueRcptState::Delivered
                };
                c.complete(
                    &m,
                    QueueCompletion {
                        id: format!("65000000-{i:08X}"),
                        next_attempt: 99,
                        updates: vec![RecipientUpdate {
                            address: "b@remote.test".into(),
                            state,
                            error: None,
                        }],
                    },
                )
                .await
            });
        }
        let mut dequeued = 0;
        let mut released = 0;
        while let Some(r) = set.join_next().await {
            match r.expect("join").expect("recorded") {
                QueueOutcome::Dequeued(b) => {
                    assert_eq!(b.len(), 1);
                    dequeued += 1;
                }
                QueueOutcome::Released => released += 1,
                QueueOutcome::Gone => panic!("no message was gone"),
            }
        }
        assert_eq!((dequeued, released), (45, 5));
        assert_eq!(meta.queued_messages().expect("list").len(), 5);
        assert!(
            committer.batches() <= 2,
            "{} transactions for 50 results",
            committer.batches()
        );
    }
}
