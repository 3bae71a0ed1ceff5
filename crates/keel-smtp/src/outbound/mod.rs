//! The outbound side of the MTA: the queue runner, SMTP delivery to MX hosts, routes and
//! the relay host, and DSN generation (guide §12.1, §12.2 SMTP Delivery and Queue
//! Options, §24.2; DESIGN §3).
//!
//! Implementation notes:
//! - The queue is the MetaStore's queue rows plus blobs. The runner claims due messages
//!   with a lease ([`MetaStore::claim_queued`], `queue_lease_secs`, one hour), so another process (a second
//!   node, the CLI's `queue run`) never works on the same message at the same time; a
//!   crash leaves the lease to expire. After an attempt the lease is released.
//! - Each message is one delivery task (guide §24.2); at most `max_delivery_tasks` run at
//!   once (read from the settings at every poll). Within a task the recipients are grouped
//!   by destination: a domain-forwarding route (`host:port`), else the relay host when one
//!   is configured, else the recipient's domain (MX lookup). Groups are sent one after the
//!   other, each in one SMTP transaction.
//! - MX fail-over (RFC 5321 §5.1): hosts in preference order, every address of a host in
//!   turn. Failures before MAIL FROM (connect, greeting, EHLO, TLS) move to the next
//!   address; once MAIL FROM was answered the per-recipient replies are the result.
//! - Results: 2xx → delivered, 5xx → failed, anything else (4xx, connection lost, DNS
//!   temporary failure, every MX unreachable) → deferred until now + retry interval. A
//!   deferral after the bounce deadline (created + `bounce_after_secs`) becomes a failure
//!   with status 4.4.7 (RFC 3463 "delivery time expired").
//! - The "relay" time-unit remark of guide §12.2 is resolved as: the same retry and
//!   bounce rules apply when delivering through the relay host.
//! - TLS: opportunistic STARTTLS for MX and routes accepts any certificate (RFC 3207 §4.1;
//!   an MX certificate cannot be verified without DANE/MTA-STS); a failed handshake is
//!   retried once in plaintext. Towards the relay host `starttls` and `implicit` verify
//!   the certificate against the system roots.
//! - DSNs ([`crate::dsn`]): a failure report for recipients that failed in this attempt, a
//!   delay warning once per message (store mark) after `warn_after_secs`, a success report
//!   (action `relayed`) for NOTIFY=SUCCESS when the next hop did not take the DSN
//!   parameters on (RFC 3461 §6.2.2). Never to the null sender. A report to a local sender
//!   is stored through [`Mailboxes::deliver`]; otherwise it is queued with the null
//!   sender.
//! - Every recipient attempt writes a `Sent:` line, every report a `Recv: … Service: DSN`
//!   line (guide §25.3).
//! - Connection reuse (RFC 5321 §3.3, [`cache`]): after a transaction a usable session
//!   is kept idle for a few seconds per address, TLS policy and relay credentials; the next
//!   delivery there sends RSET (§4.1.1.5) and, on 250, its transaction on that session.
//!   A cached session that fails before the message data is discarded and the message is
//!   sent on a new connection; after the data nothing is resent at once (§6.1). Sessions
//!   end with QUIT when idle too long, too old, after 100 transactions, at shutdown and
//!   at the end of [`QueueRunner::run_once`]. Setting `outbound_connection_reuse`.
//! - Blocking store and mailbox calls run in `spawn_blocking`.

mod cache;
mod client;
mod commit;
pub mod etrn_client;
pub mod tasks;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::clock::SharedClock;
use keel_core::log::{DeliveryResult, DsnReport, Logs, MailLogEntry, MailService};
use keel_directory::{Resolution, Target};
use keel_mail::{Delivery, Mailboxes};
use keel_store::{
    BlobStore, MetaStore, QueueCompletion, QueueOutcome, QueueRcptState, QueuedMessage,
    QueuedRecipient, RecipientUpdate, StoreError, StoreResult,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::dns::{DnsError, MxTargets, Resolver};
use crate::dsn::{self, DsnAction, DsnKind, DsnRecipient, DsnRequest};
use crate::queue;
use crate::settings::{RelayTls, SmtpSettings};
use cache::{ConnCache, SessionKey, TlsPolicy};
use client::{Conn, Envelope, HostResult, OpenError, RcptReq, Reply, Session, TlsMode};
pub use etrn_client::EtrnOutcome;
use tasks::TaskHandle;
pub use tasks::{DeliveryTask, DeliveryTasks, TaskPhase};

/// Default real-time interval between queue polls (the queue is also woken on enqueue).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Errors of the queue runner.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("queue task failed: {0}")]
    Task(String),
}

/// Loads the current SMTP settings (read at every poll and every delivery task).
pub type SettingsLoader = Arc<dyn Fn() -> StoreResult<SmtpSettings> + Send + Sync>;

/// What the queue runner needs from the rest of the server.
#[derive(Clone)]
pub struct QueueContext {
    /// Queue rows.
    pub meta: Arc<dyn MetaStore>,
    /// Message bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Local delivery of reports (and the directory, to find local senders).
    pub mailboxes: Mailboxes,
    /// Mail, warning and error logs.
    pub logs: Logs,
    /// Time (tests move it).
    pub clock: SharedClock,
    /// DNS.
    pub resolver: Resolver,
    /// The SMTP settings; usually `crate::load_settings` on `meta`.
    pub settings: SettingsLoader,
    /// The Internet hostname (EHLO, `Reporting-MTA`, `MAILER-DAEMON@…`).
    pub hostname: Arc<dyn Fn() -> String + Send + Sync>,
}

impl QueueContext {
    /// The settings loader reading the `smtp` settings document of `meta`.
    pub fn settings_from_store(meta: Arc<dyn MetaStore>) -> SettingsLoader {
        Arc::new(move || crate::settings::load_settings(&*meta))
    }
}

/// Wakes the queue runner (after an enqueue, "Run queue", "Try to send now").
#[derive(Clone, Debug, Default)]
pub struct QueueWaker(Arc<Notify>);

impl QueueWaker {
    /// Asks the runner to poll now. A wake-up while the runner is busy is kept.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

struct Inner {
    ctx: QueueContext,
    waker: QueueWaker,
    tasks: DeliveryTasks,
    poll: Mutex<Duration>,
    in_flight: Mutex<HashSet<String>>,
    /// An ETRN download round is running (guide §12.5); rounds never overlap.
    etrn_running: std::sync::atomic::AtomicBool,
    insecure_tls: Result<TlsConnector, String>,
    verified_tls: Result<TlsConnector, String>,
    /// Idle SMTP sessions for reuse (RFC 5321 §3.3; see [`cache`]).
    cache: ConnCache,
    /// Group commit of delivery results (see [`commit`]).
    committer: commit::Committer,
}

/// The queue runner. Cheap to clone; clones share the registry, waker and in-flight set.
#[derive(Clone)]
pub struct QueueRunner {
    inner: Arc<Inner>,
}

fn tls_connector(allow_invalid: bool) -> Result<TlsConnector, String> {
    // mail-send builds its configs with rustls' process-default provider; make sure one
    // is installed (ignored when another component installed one already).
    let _ = rustls::crypto::CryptoProvider::install_default(
        rustls::crypto::aws_lc_rs::default_provider(),
    );
    mail_send::smtp::tls::build_tls_connector(allow_invalid)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueueError::Task(e.to_string()))
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a group of recipients goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    /// A domain-forwarding route `host:port` (guide §7.9/§7.10).
    Route(String),
    /// The relay SMTP server (guide §12.2).
    Relay,
    /// Direct delivery to the domain's MX.
    Domain(String),
}

/// A recipient's attempt decided: outcome, new state, mail-log result, status, error.
type Decided = (
    QueuedRecipient,
    Outcome,
    QueueRcptState,
    DeliveryResult,
    String,
    Option<String>,
);

/// The outcome of one recipient in one attempt.
#[derive(Debug, Clone)]
struct Outcome {
    reply: Reply,
    server: Option<String>,
    dsn_passed_on: bool,
}

impl QueueRunner {
    /// A runner for `ctx`.
    pub fn new(ctx: QueueContext) -> Self {
        Self {
            inner: Arc::new(Inner {
                ctx,
                waker: QueueWaker::default(),
                tasks: DeliveryTasks::default(),
                poll: Mutex::new(DEFAULT_POLL_INTERVAL),
                in_flight: Mutex::new(HashSet::new()),
                etrn_running: std::sync::atomic::AtomicBool::new(false),
                insecure_tls: tls_connector(true),
                verified_tls: tls_connector(false),
                cache: ConnCache::default(),
                committer: commit::Committer::default(),
            }),
        }
    }

    /// Sets the real-time interval between polls (default [`DEFAULT_POLL_INTERVAL`]).
    #[must_use]
    pub fn with_poll_interval(self, every: Duration) -> Self {
        *lock(&self.inner.poll) = every.max(Duration::from_millis(10));
        self
    }

    /// The runner's DNS resolver, shared with the SMTP server's sender-domain check
    /// (guide §12.2), so both ask the same nameservers.
    pub fn resolver(&self) -> Resolver {
        self.inner.ctx.resolver.clone()
    }

    /// The waker the inbound side calls after it queued a message.
    pub fn waker(&self) -> QueueWaker {
        self.inner.waker.clone()
    }

    /// The delivery tasks in progress (guide §24.2).
    pub fn tasks(&self) -> DeliveryTasks {
        self.inner.tasks.clone()
    }

    fn settings(&self) -> SmtpSettings {
        match (self.inner.ctx.settings)() {
            Ok(s) => s,
            Err(e) => {
                self.inner.ctx.logs.error(&format!(
                    "queue: cannot read SMTP settings, using defaults: {e}"
                ));
                SmtpSettings::default()
            }
        }
    }

    /// Claims up to `free` due messages not already in flight here.
    async fn claim(&self, free: usize) -> Result<Vec<QueuedMessage>, QueueError> {
        if free == 0 {
            return Ok(Vec::new());
        }
        let meta = self.inner.ctx.meta.clone();
        let now = self.inner.ctx.clock.unix();
        let lease = self.settings().lease_secs();
        let claimed = blocking(move || meta.claim_queued(now, lease, free)).await??;
        let mut in_flight = lock(&self.inner.in_flight);
        Ok(claimed
            .into_iter()
            .filter(|m| in_flight.insert(m.id.clone()))
            .collect())
    }

    fn spawn(&self, set: &mut JoinSet<()>, msg: QueuedMessage) {
        let me = self.clone();
        set.spawn(async move {
            let id = msg.id.clone();
            if let Err(e) = me.process(msg).await {
                me.inner
                    .ctx
                    .logs
                    .error(&format!("queue: delivery of {id} failed: {e}"));
                me.postpone(&id).await;
            }
            lock(&me.inner.in_flight).remove(&id);
        });
    }

    /// After an internal error: try again one retry interval later.
    async fn postpone(&self, id: &str) {
        let meta = self.inner.ctx.meta.clone();
        let next = self.inner.ctx.clock.unix() + self.settings().retry_interval_secs as i64;
        let id = id.to_owned();
        let _ = blocking(move || {
            let _ = meta.set_queue_next_attempt(&id, next);
            meta.release_queued(&id)
        })
        .await;
    }

    /// Delivers every message that is due now (including reports queued meanwhile) and
    /// returns how many attempts were made. This is `keel queue run` and what tests use.
    pub async fn run_once(&self) -> Result<usize, QueueError> {
        let mut set = JoinSet::new();
        let mut attempts = 0;
        loop {
            let max = self.settings().max_delivery_tasks.max(1) as usize;
            let batch = self.claim(max.saturating_sub(set.len())).await?;
            attempts += batch.len();
            for m in batch {
                self.spawn(&mut set, m);
            }
            if set.join_next().await.is_none() {
                // A one-shot run (`keel queue run`, tests) keeps no session open after it.
                self.close_cached().await;
                return Ok(attempts);
            }
        }
    }

    /// Closes every idle cached session with QUIT (shutdown, end of a one-shot run).
    async fn close_cached(&self) {
        let mut quits = JoinSet::new();
        for s in self.inner.cache.drain() {
            quits.spawn(s.quit());
        }
        // Each QUIT is bounded by its own timeout; this bounds the whole.
        let _ = tokio::time::timeout(Duration::from_secs(5), quits.join_all()).await;
    }

    /// Closes idle sessions that expired (idle or lifetime limit), in the background.
    fn close_later(sessions: Vec<Session>) {
        for s in sessions {
            tokio::spawn(s.quit());
        }
    }

    /// ETRN download (guide §12.5, §7.10): asks every enabled server of the
    /// `etrn_download` setting for our domains' mail now, and returns the answers.
    /// Refused or failed requests are written to the warning log. `keel serve` runs it at
    /// start-up and every `etrn_download_interval_secs` through [`Self::run`]; an admin
    /// command can call it directly.
    pub async fn etrn_download(&self) -> Vec<EtrnOutcome> {
        let settings = self.settings();
        let helo = (self.inner.ctx.hostname)();
        let params = etrn_client::EtrnParams {
            helo: &helo,
            tls: self.inner.insecure_tls.as_ref().ok(),
            timeout: Duration::from_secs(settings.etrn_download_timeout_secs.max(1)),
        };
        let mut all = Vec::new();
        for server in settings
            .etrn_download
            .iter()
            .filter(|s| s.enabled && !s.domains.is_empty())
        {
            for o in etrn_client::send_etrn(server, &self.inner.ctx.resolver, &params).await {
                if o.accepted {
                    tracing::info!("ETRN {} at {}: {}", o.domain, o.server, o.reply);
                } else {
                    self.inner.ctx.logs.warning(&format!(
                        "ETRN {} at {} not accepted: {}",
                        o.domain, o.server, o.reply
                    ));
                }
                all.push(o);
            }
        }
        all
    }

    /// guide §20 "Valid only at time": whether the time interval of the
    /// `etrn_download_time_interval` setting holds now (server local time, like every
    /// time interval). A missing interval counts as closed and is logged.
    async fn etrn_window_open(&self, settings: &SmtpSettings) -> bool {
        let Some(name) = settings
            .etrn_download_time_interval
            .clone()
            .filter(|n| !n.trim().is_empty())
        else {
            return true;
        };
        let dir = self.inner.ctx.mailboxes.directory().clone();
        let n = name.clone();
        let interval = match blocking(move || dir.get_time_interval(&n)).await {
            Ok(Ok(ti)) => ti,
            Ok(Err(e)) => {
                self.inner.ctx.logs.warning(&format!(
                    "ETRN download skipped: time interval '{name}' cannot be read: {e}"
                ));
                return false;
            }
            Err(_) => return false,
        };
        chrono::DateTime::from_timestamp(self.inner.ctx.clock.unix(), 0)
            .is_some_and(|t| interval.contains(t.with_timezone(&chrono::Local).naive_local()))
    }

    /// Starts an ETRN download round in the background unless one is running.
    fn spawn_etrn_download(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.etrn_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.etrn_download().await;
            me.inner.etrn_running.store(false, Ordering::SeqCst);
        });
    }

    /// Runs until `shutdown` becomes true: polls the queue every poll interval and when
    /// woken, keeping at most `max_delivery_tasks` deliveries in flight. On shutdown it
    /// waits up to 30 s for running deliveries, then abandons them (their leases expire).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut set: JoinSet<()> = JoinSet::new();
        let poll = *lock(&self.inner.poll);
        // Idle sessions of the connection cache are closed once they expire. The guard
        // stops the reaper also when this future is dropped instead of shut down.
        let reaper = AbortOnDrop({
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    Self::close_later(me.inner.cache.expire());
                }
            })
        });
        // guide §7.10: ETRN to the configured servers at start-up, then every interval.
        let mut last_etrn: Option<i64> = None;
        let mut last_tick = self.inner.ctx.clock.unix();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let settings = self.settings();
            let now = self.inner.ctx.clock.unix();
            let interval = i64::try_from(settings.etrn_download_interval_secs).unwrap_or(i64::MAX);
            // guide §20 "At HH:MM": a daily time passed since the last turn of this loop.
            let at_due = {
                let local = |t: i64| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .map(|d| d.with_timezone(&chrono::Local).naive_local())
                };
                match (local(last_tick), local(now)) {
                    (Some(after), Some(until)) => settings.etrn_download_at.iter().any(|a| {
                        crate::settings::parse_time_of_day(a)
                            .is_some_and(|t| crate::settings::daily_time_passed(t, after, until))
                    }),
                    _ => false,
                }
            };
            last_tick = now;
            let etrn_due = !settings.etrn_download.is_empty()
                && (at_due
                    || last_etrn.is_none_or(|t| interval > 0 && now.saturating_sub(t) >= interval));
            if etrn_due {
                // guide §20: rounds after the start-up one only inside "valid only at".
                let open = last_etrn.is_none() || self.etrn_window_open(&settings).await;
                last_etrn = Some(now);
                if open {
                    self.spawn_etrn_download();
                }
            }
            let max = settings.max_delivery_tasks.max(1) as usize;
            match self.claim(max.saturating_sub(set.len())).await {
                Ok(batch) => {
                    for m in batch {
                        self.spawn(&mut set, m);
                    }
                }
                Err(e) => self
                    .inner
                    .ctx
                    .logs
                    .error(&format!("queue: claim failed: {e}")),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                () = self.inner.waker.0.notified() => {}
                () = tokio::time::sleep(poll) => {}
                Some(_) = set.join_next(), if !set.is_empty() => {}
            }
        }
        let drain = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            set.abort_all();
        }
        drop(reaper);
        self.close_cached().await;
    }

    /// One delivery attempt of one message (one task, guide §24.2).
    async fn process(&self, msg: QueuedMessage) -> Result<(), QueueError> {
        let ctx = &self.inner.ctx;
        let settings = self.settings();
        let now = ctx.clock.unix();
        let pending: Vec<QueuedRecipient> = msg
            .recipients
            .iter()
            .filter(|r| !r.state.is_final())
            .cloned()
            .collect();
        let held = pending.iter().any(queue::is_held);
        let task = self.inner.tasks.start(DeliveryTask {
            id: msg.id.clone(),
            size: msg.size,
            from: msg.sender.clone(),
            to: pending.iter().map(|r| r.address.clone()).collect(),
            phase: TaskPhase::Executing,
            server: None,
            started: now,
            percent: 0,
        });
        let blobs = ctx.blobs.clone();
        let blob = msg.blob.clone();
        let raw = blocking(move || blobs.get(&blob)).await?;

        // Group by destination.
        let mut groups: BTreeMap<Dest, Vec<QueuedRecipient>> = BTreeMap::new();
        for r in &pending {
            let dest = match (&r.route, &settings.relay_host) {
                (Some(route), _) => Dest::Route(route.clone()),
                (None, Some(_)) => Dest::Relay,
                (None, None) => Dest::Domain(domain_of(&r.address)),
            };
            groups.entry(dest).or_default().push(r.clone());
        }

        let mut results: Vec<(QueuedRecipient, Outcome, bool)> = Vec::new();
        match &raw {
            Ok(raw) => {
                for (dest, rcpts) in groups {
                    let outcomes = self
                        .deliver_group(&dest, &rcpts, &msg, raw, &settings, &task)
                        .await;
                    let relay = dest == Dest::Relay;
                    results.extend(rcpts.into_iter().zip(outcomes).map(|(r, o)| (r, o, relay)));
                }
            }
            Err(e) => {
                ctx.logs.error(&format!(
                    "queue: message data of {} unreadable: {e}",
                    msg.id
                ));
                for r in pending {
                    let o = Outcome {
                        reply: Reply::local(554, "5.3.0", format!("message data lost: {e}")),
                        server: None,
                        dsn_passed_on: false,
                    };
                    results.push((r, o, false));
                }
            }
        }
        task.phase(TaskPhase::Terminating, None);
        let raw = raw.unwrap_or_default();

        // Record the results (guide §25.3: one Sent line per recipient).
        // Mail held for ETRN (guide §7.10) goes back on hold after a temporary failure
        // and is never bounced by age (`crate::queue` notes).
        let expired = !held
            && now
                >= msg
                    .created
                    .saturating_add(settings.bounce_after_secs as i64);
        let next = if held {
            queue::HELD_UNTIL
        } else {
            now + settings.retry_interval_secs.max(1) as i64
        };
        let mut decided = Vec::with_capacity(results.len());
        for (r, o, via_relay) in results {
            let (state, result, status, error) = if o.reply.is_ok() {
                let res = if via_relay {
                    DeliveryResult::Relayed
                } else {
                    DeliveryResult::Delivered
                };
                (QueueRcptState::Delivered, res, o.reply.status.clone(), None)
            } else if o.reply.is_permanent() {
                (
                    QueueRcptState::Failed,
                    DeliveryResult::Failed,
                    o.reply.status.clone(),
                    Some(o.reply.text.clone()),
                )
            } else if expired {
                // RFC 3463 X.4.7: delivery time expired.
                (
                    QueueRcptState::Failed,
                    DeliveryResult::Failed,
                    "4.4.7".to_owned(),
                    Some(format!(
                        "delivery time expired; last error: {}",
                        o.reply.text
                    )),
                )
            } else {
                (
                    QueueRcptState::Deferred,
                    DeliveryResult::Deferred,
                    o.reply.status.clone(),
                    Some(o.reply.text.clone()),
                )
            };
            decided.push((r, o, state, result, status, error));
        }

        // Group commit (see `commit`): when no report has to be sent, the results and the
        // dequeue are one completion, written with other messages' in one transaction.
        // A report must be queued before the message leaves the queue, so those take the
        // step-by-step path below.
        let warn_due = !held
            && settings.warn_after_secs > 0
            && now >= msg.created.saturating_add(settings.warn_after_secs as i64)
            && !msg.sender.is_empty();
        let needs_report = decided.iter().any(|(r, o, state, ..)| match state {
            QueueRcptState::Failed => dsn::wants(r.notify.as_deref(), DsnKind::Failed),
            QueueRcptState::Delivered => {
                !o.dsn_passed_on && dsn::wants(r.notify.as_deref(), DsnKind::Delivered)
            }
            QueueRcptState::Deferred => {
                warn_due && dsn::wants(r.notify.as_deref(), DsnKind::Delayed)
            }
            QueueRcptState::Queued => false,
        });
        if !needs_report {
            return self.complete_at_once(&msg, next, decided).await;
        }

        let mut failed = Vec::new();
        let mut deferred = Vec::new();
        let mut relayed = Vec::new();
        for (r, o, state, result, status, error) in decided {
            let meta = ctx.meta.clone();
            let (id, addr, err) = (msg.id.clone(), r.address.clone(), error.clone());
            let stored = blocking(move || {
                meta.update_queue_recipient(&id, &addr, state, err.as_deref(), next)
            })
            .await?;
            if let Err(e) = stored {
                // Deleted by the admin meanwhile (guide §24.1): nothing more to do.
                ctx.logs
                    .warning(&format!("queue: {} recipient {}: {e}", msg.id, r.address));
                continue;
            }
            keel_core::stats::outbound(result);
            ctx.logs.mail(&MailLogEntry::sent(
                msg.id.clone(),
                r.address.clone(),
                result,
                status.clone(),
            ));
            let dsn_r = DsnRecipient {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                action: match state {
                    QueueRcptState::Failed => DsnAction::Failed,
                    QueueRcptState::Delivered => DsnAction::Relayed,
                    _ => DsnAction::Delayed,
                },
                status,
                remote_mta: o.server.clone(),
                diagnostic: error.or_else(|| Some(o.reply.text.clone())),
            };
            match state {
                QueueRcptState::Failed if dsn::wants(r.notify.as_deref(), DsnKind::Failed) => {
                    failed.push(dsn_r);
                }
                QueueRcptState::Deferred => deferred.push((r.notify.clone(), dsn_r)),
                // RFC 3461 §6.2.2: the next hop took NOTIFY on → it reports; else "relayed".
                QueueRcptState::Delivered
                    if !o.dsn_passed_on && dsn::wants(r.notify.as_deref(), DsnKind::Delivered) =>
                {
                    relayed.push(dsn_r);
                }
                _ => {}
            }
        }

        let base = |kind: DsnKind, recipients: Vec<DsnRecipient>| Report { kind, recipients };
        if !failed.is_empty() {
            self.report(&msg, &raw, &settings, base(DsnKind::Failed, failed), &task)
                .await?;
        }
        if !relayed.is_empty() {
            self.report(
                &msg,
                &raw,
                &settings,
                base(DsnKind::Delivered, relayed),
                &task,
            )
            .await?;
        }
        if !deferred.is_empty()
            && !held
            && settings.warn_after_secs > 0
            && now >= msg.created.saturating_add(settings.warn_after_secs as i64)
        {
            let wanted: Vec<DsnRecipient> = deferred
                .into_iter()
                .filter(|(n, _)| dsn::wants(n.as_deref(), DsnKind::Delayed))
                .map(|(_, r)| r)
                .collect();
            let meta = ctx.meta.clone();
            let id = msg.id.clone();
            if !wanted.is_empty()
                && !msg.sender.is_empty()
                && blocking(move || meta.mark_queue_warned(&id)).await??
            {
                self.report(&msg, &raw, &settings, base(DsnKind::Delayed, wanted), &task)
                    .await?;
            }
        }

        // Dequeue once every recipient is final; delete the blobs nobody references.
        let meta = ctx.meta.clone();
        let blobs = ctx.blobs.clone();
        let id = msg.id.clone();
        blocking(move || -> StoreResult<()> {
            match meta.queued_message(&id)? {
                Some(m) if m.recipients.iter().all(|r| r.state.is_final()) => {
                    for b in meta.dequeue(&id)? {
                        blobs.delete(&b)?;
                    }
                }
                Some(_) => {
                    meta.release_queued(&id)?;
                }
                None => {}
            }
            Ok(())
        })
        .await??;
        Ok(())
    }

    /// Records an attempt that needs no report through the group committer, then writes
    /// the mail-log lines and removes the blobs of a dequeued message.
    async fn complete_at_once(
        &self,
        msg: &QueuedMessage,
        next: i64,
        decided: Vec<Decided>,
    ) -> Result<(), QueueError> {
        let ctx = &self.inner.ctx;
        let done = QueueCompletion {
            id: msg.id.clone(),
            next_attempt: next,
            updates: decided
                .iter()
                .map(|(r, _, state, _, _, error)| RecipientUpdate {
                    address: r.address.clone(),
                    state: *state,
                    error: error.clone(),
                })
                .collect(),
        };
        let outcome = self.inner.committer.complete(&ctx.meta, done).await?;
        if outcome == QueueOutcome::Gone {
            // Deleted by the admin meanwhile (guide §24.1): nothing more to do.
            ctx.logs.warning(&format!(
                "queue: {}: the message left the queue during delivery",
                msg.id
            ));
            return Ok(());
        }
        for (r, _, _, result, status, _) in decided {
            keel_core::stats::outbound(result);
            ctx.logs.mail(&MailLogEntry::sent(
                msg.id.clone(),
                r.address.clone(),
                result,
                status,
            ));
        }
        if let QueueOutcome::Dequeued(unreferenced) = outcome {
            let blobs = ctx.blobs.clone();
            blocking(move || -> StoreResult<()> {
                for b in &unreferenced {
                    blobs.delete(b)?;
                }
                Ok(())
            })
            .await??;
        }
        Ok(())
    }

    /// Sends one group of recipients; one outcome per recipient, in order.
    async fn deliver_group(
        &self,
        dest: &Dest,
        rcpts: &[QueuedRecipient],
        msg: &QueuedMessage,
        raw: &[u8],
        settings: &SmtpSettings,
        task: &TaskHandle,
    ) -> Vec<Outcome> {
        let all = |reply: Reply| {
            vec![
                Outcome {
                    reply,
                    server: None,
                    dsn_passed_on: false
                };
                rcpts.len()
            ]
        };
        let opportunistic = if settings.outbound_starttls {
            match &self.inner.insecure_tls {
                Ok(c) => TlsMode::Opportunistic(c.clone()),
                Err(_) => TlsMode::Off,
            }
        } else {
            TlsMode::Off
        };
        let mut auth = None;
        // (host, port) candidates in order, and the TLS mode.
        let (hosts, tls): (Vec<(String, u16)>, TlsMode) = match dest {
            // A held route (`etrn:host:port`) goes to its host once released.
            Dest::Route(route) => (
                vec![split_host_port(queue::route_target(route), 25)],
                opportunistic,
            ),
            Dest::Relay => {
                let relay = settings.relay_host.clone().unwrap_or_default();
                let default_port = if settings.relay_tls == RelayTls::Implicit {
                    465
                } else {
                    25
                };
                auth = settings
                    .relay_auth
                    .as_ref()
                    .map(|a| (a.user.clone(), a.password.clone()));
                let verified = |mk: fn(TlsConnector) -> TlsMode| match &self.inner.verified_tls {
                    Ok(c) => Ok(mk(c.clone())),
                    Err(e) => Err(Reply::local(
                        451,
                        "4.7.5",
                        format!("TLS set-up failed: {e}"),
                    )),
                };
                let tls = match settings.relay_tls {
                    RelayTls::None => Ok(TlsMode::Off),
                    RelayTls::Opportunistic => Ok(opportunistic),
                    RelayTls::Starttls => verified(TlsMode::Required),
                    RelayTls::Implicit => verified(TlsMode::Implicit),
                };
                match tls {
                    Ok(t) => (vec![split_host_port(&relay, default_port)], t),
                    Err(r) => return all(r),
                }
            }
            Dest::Domain(domain) => {
                task.phase(TaskPhase::Resolving, None);
                match self.inner.ctx.resolver.mx(domain).await {
                    Ok(MxTargets::NullMx) => {
                        // RFC 7505 §4.2: 556 5.1.10 for a domain with a null MX.
                        return all(Reply::local(
                            556,
                            "5.1.10",
                            format!("556 5.1.10 {domain} does not accept mail (null MX)"),
                        ));
                    }
                    Ok(MxTargets::Hosts(h)) => (
                        h.into_iter().map(|h| (h.name, settings.mx_port)).collect(),
                        opportunistic,
                    ),
                    Err(e) if e.is_permanent() => {
                        return all(Reply::local(550, "5.1.2", format!("550 5.1.2 {e}")));
                    }
                    Err(e) => {
                        return all(Reply::local(451, "4.4.3", format!("451 4.4.3 {e}")));
                    }
                }
            }
        };
        let reqs: Vec<RcptReq> = rcpts
            .iter()
            .map(|r| RcptReq {
                address: r.address.clone(),
                notify: r.notify.clone(),
                orcpt: r.orcpt.clone(),
            })
            .collect();
        let env = Envelope {
            sender: &msg.sender,
            envid: msg.envid.as_deref(),
            ret: msg.ret.as_deref(),
            rcpts: &reqs,
            message: raw,
        };
        let helo = (self.inner.ctx.hostname)();
        let mut last = Reply::local(451, "4.4.1", "no mail server could be reached");
        let mut permanent_dns = true;
        for (host, port) in &hosts {
            task.phase(TaskPhase::Resolving, Some(host));
            let ips = match self.inner.ctx.resolver.ip_addrs(host).await {
                Ok(ips) => {
                    permanent_dns = false;
                    ips
                }
                Err(e) => {
                    if !matches!(e, DnsError::NotFound(_)) {
                        permanent_dns = false;
                    }
                    last = Reply::local(451, "4.4.3", format!("451 4.4.3 {e}"));
                    continue;
                }
            };
            for ip in ips {
                let conn = Conn {
                    addr: SocketAddr::new(ip, *port),
                    host,
                    helo: &helo,
                    tls: tls.clone(),
                    auth: auth.clone(),
                    connect_timeout: Duration::from_secs(
                        settings.delivery_connect_timeout_secs.max(1),
                    ),
                    command_timeout: Duration::from_secs(
                        settings.delivery_command_timeout_secs.max(1),
                    ),
                };
                let key = SessionKey {
                    addr: conn.addr,
                    host: host.clone(),
                    helo: helo.clone(),
                    tls: TlsPolicy::of(&conn.tls),
                    auth: conn.auth.clone(),
                };
                match self.deliver_to(&conn, key, &env, settings, task).await {
                    HostResult::Done { replies, dsn } => {
                        return replies
                            .into_iter()
                            .map(|reply| Outcome {
                                reply,
                                server: Some(host.clone()),
                                dsn_passed_on: dsn,
                            })
                            .collect();
                    }
                    HostResult::TryNext(r) => {
                        tracing::debug!(queue_id = %msg.id, %host, %ip, reply = %r.text, "trying next server");
                        last = r;
                    }
                }
            }
        }
        if permanent_dns && matches!(dest, Dest::Domain(_)) && !hosts.is_empty() {
            // RFC 5321 §5.1: no MX host has an address → the domain cannot receive mail.
            return all(Reply::local(
                550,
                "5.1.2",
                format!("550 5.1.2 {}", last.text),
            ));
        }
        // Every server failed before the transaction: temporary (RFC 5321 §4.5.4.1).
        if last.code >= 500 {
            last = Reply::local(451, "4.4.1", format!("all servers refused: {}", last.text));
        }
        all(last)
    }

    /// Runs the transaction on `conn.addr`: on an idle cached session for `key` that is
    /// still alive, else on a new session. A cached session that fails before any message
    /// data was written is discarded and the transaction is run again on a new
    /// connection (the server cannot have the message, so there is no duplicate); a
    /// reply about the message itself (4xx/5xx) is its result as on a new session.
    /// Afterwards the session goes back to the cache when it is still usable.
    async fn deliver_to(
        &self,
        conn: &Conn<'_>,
        key: SessionKey,
        env: &Envelope<'_>,
        settings: &SmtpSettings,
        task: &TaskHandle,
    ) -> HostResult {
        let reuse = settings.outbound_connection_reuse;
        if reuse {
            let mut stale = Vec::new();
            // At most two cached sessions are tried: a server that dropped one idle session
            // has usually dropped the others too.
            for _ in 0..2 {
                let Some(mut session) = self.inner.cache.take(&key, &mut stale) else {
                    break;
                };
                task.phase(TaskPhase::SmtpDelivery, Some(conn.host));
                // RFC 5321 §4.1.1.5: RSET before the next transaction; anything but 250
                // means the session is gone (closed, timed out, 421).
                if !session.probe(cache::PROBE_TIMEOUT).await {
                    tracing::debug!(host = conn.host, addr = %conn.addr, "cached SMTP session is gone");
                    continue;
                }
                let out = session.transaction(conn, env, task).await;
                if out.failed_before_data {
                    tracing::debug!(host = conn.host, addr = %conn.addr, "cached SMTP session failed; new connection");
                    break;
                }
                self.release(key, session, out.reusable, settings).await;
                Self::close_later(stale);
                return out.result;
            }
            Self::close_later(stale);
        }
        let deferred = |r: Reply| HostResult::Done {
            replies: vec![r; env.rcpts.len()],
            dsn: false,
        };
        let mut session = match client::open(conn, task, false).await {
            Ok(s) => s,
            Err(OpenError::RetryPlain(_)) => match client::open(conn, task, true).await {
                Ok(s) => s,
                Err(OpenError::TryNext(r) | OpenError::RetryPlain(r)) => {
                    return HostResult::TryNext(r);
                }
                Err(OpenError::Auth(r)) => return deferred(r),
            },
            Err(OpenError::TryNext(r)) => return HostResult::TryNext(r),
            Err(OpenError::Auth(r)) => return deferred(r),
        };
        let out = session.transaction(conn, env, task).await;
        self.release(key, session, out.reusable, settings).await;
        out.result
    }

    /// After a transaction: an unusable session is dropped (the connection closes); a
    /// usable one goes to the cache, or is ended with QUIT when reuse is off, the session
    /// reached its transaction or lifetime limit, or the cache is full.
    async fn release(
        &self,
        key: SessionKey,
        session: Session,
        reusable: bool,
        settings: &SmtpSettings,
    ) {
        if !reusable {
            return;
        }
        let back = if settings.outbound_connection_reuse {
            let per_destination = settings.max_delivery_tasks.max(1) as usize;
            self.inner.cache.put(key, session, per_destination)
        } else {
            Some(session)
        };
        if let Some(session) = back {
            session.quit().await;
        }
    }

    /// Builds a DSN and delivers or queues it (never to `<>`).
    async fn report(
        &self,
        msg: &QueuedMessage,
        raw: &[u8],
        settings: &SmtpSettings,
        report: Report,
        task: &TaskHandle,
    ) -> Result<(), QueueError> {
        if msg.sender.is_empty() {
            // RFC 3461 §6.2, RFC 5321 §4.5.5: no report about a report.
            return Ok(());
        }
        let ctx = &self.inner.ctx;
        let hostname = (ctx.hostname)();
        let now = ctx.clock.unix();
        let templates = settings.dsn_texts();
        let bytes = dsn::build(&DsnRequest {
            kind: report.kind,
            hostname: &hostname,
            queue_id: &msg.id,
            sender: &msg.sender,
            envid: msg.envid.as_deref(),
            ret: msg.ret.as_deref(),
            original: raw,
            arrival: msg.created,
            now,
            retry_until: Some(
                msg.created
                    .saturating_add(settings.bounce_after_secs as i64),
            ),
            language: &settings.dsn_language,
            templates: &templates,
            recipients: report.recipients,
        });
        let sink = ReportSink {
            meta: ctx.meta.clone(),
            blobs: ctx.blobs.clone(),
            mailboxes: ctx.mailboxes.clone(),
            logs: ctx.logs.clone(),
        };
        if dispatch_report(&sink, report.kind, &msg.sender, bytes, now, Some(task)).await? {
            self.inner.waker.wake();
        }
        Ok(())
    }
}

/// What delivering a report needs: the runner's and the SMTP session's common parts.
pub(crate) struct ReportSink {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) mailboxes: Mailboxes,
    pub(crate) logs: Logs,
}

/// Delivers a built report to `sender`: stored through [`Mailboxes::deliver`] when the
/// sender is local, otherwise queued with the null sender (RFC 3461 §6.2). Writes the
/// `Recv: … Service: DSN` and `Sent:` mail-log lines (guide §25.3). Returns whether
/// something was queued (the caller wakes the runner).
pub(crate) async fn dispatch_report(
    sink: &ReportSink,
    kind: DsnKind,
    sender: &str,
    bytes: Vec<u8>,
    now: i64,
    task: Option<&TaskHandle>,
) -> Result<bool, QueueError> {
    keel_core::stats::bump(keel_core::stats::Counter::DsnSent);
    let ctx = sink;
    let id = crate::new_queue_id(now);
    let log_kind = match kind {
        DsnKind::Failed => DsnReport::Failed,
        DsnKind::Delayed => DsnReport::Delayed,
        DsnKind::Delivered => DsnReport::Delivered,
    };
    ctx.logs.mail(
        &MailLogEntry::recv(
            id.clone(),
            MailService::Dsn,
            "",
            vec![sender.to_owned()],
            bytes.len() as u64,
        )
        .report(log_kind),
    );
    let dir = ctx.mailboxes.directory().clone();
    let sender_key = sender.to_owned();
    let resolution = blocking(move || dir.resolve_recipient(&sender_key)).await?;
    let mut local = Vec::new();
    let mut remote = Vec::new();
    match resolution {
        Ok(Resolution::Deliver { targets, .. }) => {
            for t in targets {
                match t {
                    Target::LocalUser { user, .. } => local.push(user),
                    Target::External { address } => remote.push((address, None)),
                    Target::Forwarded {
                        address,
                        host,
                        port,
                        ..
                    } => remote.push((address, Some(format!("{host}:{port}")))),
                    Target::PublicFolder { path, .. } => ctx.logs.warning(&format!(
                        "queue: report {id} to public folder {path} not delivered"
                    )),
                }
            }
        }
        Ok(Resolution::NotLocal) => remote.push((sender.to_owned(), None)),
        Ok(Resolution::NotFound) => {
            ctx.logs.warning(&format!(
                "queue: report {id} dropped: local sender {} does not exist",
                sender
            ));
        }
        Err(e) => ctx.logs.warning(&format!(
            "queue: report {id} dropped: sender {} not resolvable: {e}",
            sender
        )),
    }
    if !local.is_empty() {
        if let Some(task) = task {
            task.phase(TaskPhase::LocalDelivery, None);
        }
        let mut stored = b"Return-Path: <>\r\n".to_vec();
        stored.extend_from_slice(&bytes);
        let mb = ctx.mailboxes.clone();
        let delivery = Delivery {
            raw: stored,
            recipients: local,
            internal_date: now,
        };
        match blocking(move || mb.deliver(&delivery)).await? {
            Ok(outcomes) => {
                for o in outcomes {
                    let (result, status) = match &o.result {
                        Ok(_) => (DeliveryResult::Delivered, "2.0.0"),
                        Err(_) => (DeliveryResult::Failed, "5.2.0"),
                    };
                    if let Err(e) = &o.result {
                        ctx.logs
                            .warning(&format!("queue: report {id} to {}: {e}", o.user));
                    }
                    ctx.logs.mail(&MailLogEntry::sent(
                        id.clone(),
                        o.user.clone(),
                        result,
                        status,
                    ));
                }
            }
            Err(e) => ctx
                .logs
                .error(&format!("queue: report {id} not stored: {e}")),
        }
    }
    if !remote.is_empty() {
        let meta = ctx.meta.clone();
        let blobs = ctx.blobs.clone();
        let size = bytes.len() as u64;
        let qid = id.clone();
        blocking(move || -> StoreResult<()> {
            let blob = blobs.put(&bytes)?;
            meta.enqueue(&QueuedMessage {
                id: qid,
                sender: String::new(),
                envid: None,
                ret: None,
                size,
                blob,
                created: now,
                next_attempt: now,
                recipients: remote
                    .into_iter()
                    .map(|(a, route)| {
                        let mut r = QueuedRecipient::new(a);
                        r.route = route;
                        r
                    })
                    .collect(),
            })
        })
        .await??;
        return Ok(true);
    }
    Ok(false)
}

struct Report {
    kind: DsnKind,
    recipients: Vec<DsnRecipient>,
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// `host[:port]`, `[v6]:port`, or a bare IPv6 literal.
fn split_host_port(s: &str, default_port: u16) -> (String, u16) {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        let port = tail
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (host.to_owned(), port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => (s.to_owned(), default_port),
        },
        _ => (s.to_owned(), default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("smtp.isp.test", 25),
            ("smtp.isp.test".into(), 25)
        );
        assert_eq!(
            split_host_port("smtp.isp.test:587", 25),
            ("smtp.isp.test".into(), 587)
        );
        assert_eq!(split_host_port("[::1]:2525", 25), ("::1".into(), 2525));
        assert_eq!(split_host_port("::1", 25), ("::1".into(), 25));
    }
}
