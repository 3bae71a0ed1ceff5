//! Keel SMTP: the inbound server on 25 (MX, STARTTLS), 465 (implicit TLS) and 587
//! (submission, AUTH required), with relay control, the per-IP security limits of guide
//! §12.2, local delivery through [`keel_mail::Mailboxes`] and the outbound queue storage.
//!
//! Implementation notes:
//! - [`codec`] is sans-I/O (no tokio, no store); `session` drives it over a
//!   [`keel_net::Conn`]. One command is processed at a time; pipelined commands wait in
//!   the line reader (RFC 2920).
//! - Settings ([`SmtpSettings`]) are read at each session start from the MetaStore, so a
//!   change applies to the next session without a restart.
//! - Per-IP counters ([`IpLimits`], [`limits`]): messages per sliding hour, unknown
//!   recipients and harvest blocks are kept in memory and, while the limit is on, in one
//!   MetaStore document per IP, so every node on the same store (issue 8) and a restarted
//!   node see them. Concurrent connections are counted per node only. Services that
//!   should share the in-memory part (25, 465, 587) are built with
//!   [`SmtpService::with_limits`].
//! - Every refusal of a guide §12.2 limit or security option, and every SMTP AUTH
//!   refusal, writes a security-log line (guide §25.4; shapes in `seclog`).
//! - Durability (DESIGN §3): the `250` after DATA/BDAT is written only after
//!   `Mailboxes::deliver` returned (its blobs fsync'd, transactions committed) and the
//!   queue row of remote recipients committed (blob first, then row).
//! - Every blocking call (directory, store, mail service) runs in `spawn_blocking`.
//! - Unknown local recipients are refused at RCPT with 550 5.1.1 (never accepted and
//!   bounced: no backscatter); they count toward the directory-harvest limit.
//! - Quota is checked at RCPT (`quota_check`); a full mailbox answers **452 4.2.2**
//!   (temporary: the owner may free space, RFC 3463 §3.3 X.2.2). If a local delivery still
//!   fails after DATA for some recipients while others succeed, the message is accepted
//!   (one reply covers all recipients, RFC 5321 §4.2.5) and the sender gets one RFC 3464
//!   failure report for them (`session::local_dsn`; not to `<>`, not with NOTIFY=NEVER).
//!   If every local recipient fails, the transaction is answered 452 4.2.2 (quota) or
//!   451 4.3.0, nothing is queued and no report is sent.
//! - Public-folder targets (`#public/Path`) are appended to the folder `Path` of the
//!   account `#public@<domain>`, created on first use (one more blob reference, same blob).
//! - `X-Envelope-To` (guide §12.6) names one envelope recipient, so when it is on each
//!   RCPT's local recipients get their own copy (one deliver call per RCPT) rather than
//!   revealing the other (Bcc) recipients; when off, all local recipients share ONE
//!   blob and ONE deliver call.
//! - "Local" in the local-domain-only restriction (guide §8.2 step 8) means any local
//!   domain of this server. An outside sender is a session that is not authenticated and
//!   whose envelope sender's domain is not local.
//! - `session` is a module directory, one file per command family (greeting and EHLO,
//!   AUTH, MAIL/RCPT, VRFY/EXPN, relay decision, DATA/BDAT, delivery, trace headers,
//!   domain footers); its module notes cover the greeting delay (guide §13.6),
//!   POP-before-SMTP (guide §12.2), VRFY/EXPN, footers (guide §7.3) and why no
//!   `Delivered-To` is added.
//! - Sender-domain DNS check (guide §12.2, `reject_unknown_sender_domain`, off by
//!   default): at MAIL, MX then A/AAAA through [`SmtpContext::resolver`] (the queue
//!   runner's resolver in the server; `None` skips the check). Not found → 550 5.1.8,
//!   temporary DNS failure → 451 4.4.3. Trusted clients, the null sender and local
//!   domains are not checked.
//! - ETRN (RFC 1985, guide §12.5, §7.10): advertised in EHLO; allowed for authenticated
//!   clients, the relay group and `etrn_ip_group` (`etrn_anyone` opens it to all); it
//!   makes the domain's queued mail due now and wakes the runner. Mail of a domain
//!   forwarded "offline, triggered by ETRN" is held in the queue until then
//!   ([`queue`] notes). As a client, the runner sends ETRN to the `etrn_download`
//!   servers at start-up and every interval ([`outbound::etrn_client`]).
//! - Greylisting ([`greylist`], issue 6 item 6, RFC 6647; `greylisting` settings, off by
//!   default) at RCPT: triplets are MetaStore documents of kind `greylist`.

pub mod codec;
pub mod dns;
pub mod dsn;
pub mod greylist;
pub mod limits;
pub mod outbound;
pub mod queue;
mod queueid;
mod seclog;
mod session;
pub mod settings;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keel_core::clock::SharedClock;
use keel_core::log::Logs;
use keel_directory::Directory;
use keel_store::{BlobStore, MetaStore};

pub use codec::{ReplyKind, SmtpReply, replies};
pub use limits::IpLimits;
pub use outbound::{QueueContext, QueueRunner, QueueWaker};
pub use queueid::new_queue_id;
pub use settings::{SmtpSettings, load_settings, save_settings};

/// Appends a domain footer (`text`, and `html` for HTML parts; guide §7.3) to `message`
/// the way the session does for a domain's outgoing mail: the MIME-aware parse and splice
/// of `session/footer.rs`. `None` when the message is left unchanged. Only for the MIME
/// fuzz target (`crates/keel-filter/fuzz`) and its corpus smoke test: not an API.
#[doc(hidden)]
pub fn fuzz_footer(message: &[u8], text: &str, html: Option<&str>) -> Option<Vec<u8>> {
    session::fuzz_footer(message, text, html)
}

/// Which listener a service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpKind {
    /// Port 25: inbound mail from the Internet and STARTTLS (RFC 5321, RFC 3207).
    Mx,
    /// Port 587: message submission, AUTH required before MAIL (RFC 6409 §4.3).
    Submission,
    /// Port 465: implicit TLS submission (RFC 8314 §3.3); AUTH optional as on port 25.
    Smtps,
}

impl SmtpKind {
    /// The service name given to the security policy and SASL (`smtp` / `submission`).
    pub fn service_name(self) -> &'static str {
        match self {
            Self::Mx | Self::Smtps => "smtp",
            Self::Submission => "submission",
        }
    }
}

/// What an SMTP service needs from the rest of the server.
#[derive(Clone)]
pub struct SmtpContext {
    /// Local delivery and quotas.
    pub mailboxes: keel_mail::Mailboxes,
    /// Domains, users, aliases, authentication, IP groups.
    pub directory: Arc<Directory>,
    /// Settings and the queue.
    pub meta: Arc<dyn MetaStore>,
    /// Message bytes of queued mail.
    pub blobs: Arc<dyn BlobStore>,
    /// Mail, security and warning logs.
    pub logs: Logs,
    /// Time (tests move it).
    pub clock: SharedClock,
    /// The Internet hostname, read per session (banner, EHLO, Received).
    pub hostname: Arc<dyn Fn() -> String + Send + Sync>,
    /// Free bytes in the data directory, `None` when unknown.
    pub data_dir_free_space: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
    /// Wakes the outbound queue runner after remote recipients were queued; `None`
    /// leaves the queue to its poll interval.
    pub queue_waker: Option<QueueWaker>,
    /// DNS for the sender-domain check of guide §12.2 (`reject_unknown_sender_domain`);
    /// `None` skips that check (the setting is then ignored).
    pub resolver: Option<dns::Resolver>,
}

/// An SMTP service for one kind of listener; implements [`keel_net::Handler`].
pub struct SmtpService {
    inner: Arc<session::Shared>,
}

impl SmtpService {
    /// A service with its own per-IP counters.
    pub fn new(kind: SmtpKind, ctx: SmtpContext) -> Self {
        Self::with_limits(kind, ctx, Arc::new(IpLimits::default()))
    }

    /// A service sharing per-IP counters with other services (25, 465, 587 of one server).
    pub fn with_limits(kind: SmtpKind, ctx: SmtpContext, limits: Arc<IpLimits>) -> Self {
        Self {
            inner: Arc::new(session::Shared { kind, ctx, limits }),
        }
    }
}

impl keel_net::Handler for SmtpService {
    fn serve(&self, conn: keel_net::Conn) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let shared = self.inner.clone();
        Box::pin(session::run(shared, conn))
    }
}
