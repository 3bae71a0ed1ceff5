//! The IMAP server: drives the sans-I/O [`crate::codec`] over a [`keel_net::Conn`] and calls
//! the mail store ([`Mailboxes`]) and the directory.
//!
//! # Implementation notes
//!
//! - **One command at a time per connection.** Commands are read, executed and answered in
//!   order; pipelined commands wait in the [`Receiver`]. Untagged responses of a command go
//!   out before its tagged completion.
//! - **No socket write while holding a lock.** Every store call runs in `spawn_blocking`
//!   and returns owned data; responses are buffered in `Session::out` and written after.
//! - **Commit, then notify.** [`Mailboxes`] commits a change and then notifies the account's
//!   broadcast channel. A selected session keeps a snapshot of its folder (UID list, flags,
//!   modseqs) and, after each command and during IDLE, reads
//!   `MetaStore::changes_since(account, last_seen)` (the one change log per account, DESIGN
//!   §2). When the log names its folder, it reloads the folder's rows and reports the
//!   difference as untagged FETCH, EXPUNGE/VANISHED and EXISTS (RFC 9051 §7.4, §7.5).
//! - **EXPUNGE timing** (RFC 9051 §7.5.1): never while answering FETCH, STORE, SEARCH,
//!   SORT or THREAD (the non-UID forms; RFC 5256 §3); those commands only mark vanished
//!   messages, which keep their sequence numbers until a later command may announce the
//!   expunge.
//! - States follow RFC 9051 §3: not authenticated → authenticated → selected → logout.
//!   A command in the wrong state gets `BAD` and the connection stays usable.
//! - The security policy (guide §12.6) is read from the directory per command:
//!   `LOGINDISABLED` (RFC 9051 §6.2.3) is advertised and LOGIN refused when the policy does
//!   not offer PLAIN on this connection; AUTH= lists only the offered mechanisms.
//! - Shutdown: the current command finishes; then `* BYE` and close. IDLE ends with `* BYE`.
//! - Limits: codec [`Limits`], a failed-command counter
//!   ([`ImapLimits::max_failed_commands`]) and the autologout timer (RFC 9051 §5.4: at least
//!   30 minutes).

mod address;
mod binary;
mod cmd;
mod compress;
mod docs;
pub(crate) mod mime;
mod oplog;
mod selected;
mod shared;
mod subject;
mod threading;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::log::{DebugCategory, Logs};
use keel_directory::AuthedUser;
use keel_mail::{MailError, Mailboxes};
use keel_net::{Conn, ConnStatus, Handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{
    Code, Command, CommandBody, Data, EncodeOptions, Event, Limits, ReceiveError, Receiver,
    Response, StatusKind, StatusResponse,
};
pub use docs::SUBSCRIPTIONS_KIND;
pub use keel_mail::SPECIAL_USE_KIND;
pub(crate) use selected::Selected;

/// Runs the parsing FETCH (ENVELOPE, BODYSTRUCTURE, `BODY[section]`, BINARY), SEARCH
/// (decoded header fields and body text) and SORT (header keys, base subject) do on a
/// stored message, and returns the encoded FETCH response for `attrs`. Only for the MIME
/// fuzz target (`crates/keel-filter/fuzz`) and its corpus smoke test: not an API.
#[doc(hidden)]
pub fn fuzz_message(raw: &[u8], attrs: &[crate::codec::FetchAttribute]) -> Vec<u8> {
    cmd::fuzz_message(raw, attrs)
}

/// The service name given to the directory (policy, logs, lockout).
pub const SERVICE_NAME: &str = "imap";
/// Failed commands (NO/BAD) allowed before the server closes the connection.
pub const DEFAULT_MAX_FAILED_COMMANDS: u32 = 50;
/// RFC 9051 §5.4: the autologout timer is at least 30 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Session limits beyond the codec's (DESIGN §11: each has a name and a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapLimits {
    /// Failed commands allowed before `* BYE` and close.
    pub max_failed_commands: u32,
    /// Time allowed without client input (also inside IDLE), RFC 9051 §5.4.
    pub idle_timeout: Duration,
}

impl Default for ImapLimits {
    fn default() -> Self {
        Self {
            max_failed_commands: DEFAULT_MAX_FAILED_COMMANDS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What the IMAP service needs.
#[derive(Clone)]
pub struct ImapContext {
    /// The mail store (and through it the directory).
    pub mailboxes: Mailboxes,
    /// The host name shown in the greeting.
    pub hostname: String,
    /// Whether the listener is IMAPS (TLS from the first byte, port 993).
    pub implicit_tls: bool,
    /// The server's logs, for the "IMAP Server" debug transcript.
    pub logs: Option<Logs>,
    /// Codec limits (line, literal = APPENDLIMIT, nesting, sequence sets).
    pub limits: Limits,
}

/// The IMAP front-end, a [`keel_net::Handler`].
#[derive(Clone)]
pub struct ImapService {
    ctx: Arc<ImapContext>,
    limits: ImapLimits,
    sessions: Arc<AtomicU64>,
}

impl ImapService {
    /// A service with the default session limits.
    pub fn new(ctx: ImapContext) -> Self {
        Self::with_limits(ctx, ImapLimits::default())
    }

    /// A service with explicit session limits.
    pub fn with_limits(ctx: ImapContext, limits: ImapLimits) -> Self {
        Self {
            ctx: Arc::new(ctx),
            limits,
            sessions: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Handler for ImapService {
    fn serve(&self, conn: Conn) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let id = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session::new(self.ctx.clone(), self.limits, id, &conn);
        Box::pin(session.serve(conn))
    }
}

/// Extensions the client turned on with ENABLE (RFC 5161) or implicitly.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enabled {
    /// CONDSTORE (RFC 7162 §3.1): MODSEQ in unsolicited FETCH.
    pub(crate) condstore: bool,
    /// QRESYNC (RFC 7162 §3.2): VANISHED instead of EXPUNGE.
    pub(crate) qresync: bool,
    /// UTF8=ACCEPT (RFC 6855) or IMAP4rev2.
    pub(crate) utf8: bool,
    /// IMAP4rev2 (RFC 9051).
    pub(crate) rev2: bool,
}

/// What the loop does after a command.
pub(crate) enum Flow {
    Continue,
    Close,
    StartTls,
}

/// A command's tagged completion (OK) or failure (NO/BAD).
pub(crate) struct Done {
    pub(crate) code: Option<Code>,
    pub(crate) text: String,
}

/// A NO or BAD for a command.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) kind: StatusKind,
    pub(crate) code: Option<Code>,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn no(text: impl Into<String>) -> Self {
        Self {
            kind: StatusKind::No,
            code: None,
            text: text.into(),
        }
    }
    pub(crate) fn bad(text: impl Into<String>) -> Self {
        Self {
            kind: StatusKind::Bad,
            code: None,
            text: text.into(),
        }
    }
    pub(crate) fn code(mut self, c: Code) -> Self {
        self.code = Some(c);
        self
    }
    /// A temporary server-side failure; logged, never detailed to the peer.
    pub(crate) fn server(e: impl std::fmt::Display) -> Self {
        tracing::warn!("IMAP: {e}");
        Self::no("internal server error, try again later").code(Code::ServerBug)
    }
}

/// Maps a mail-store error to the reply a client sees (RFC 5530 codes).
impl From<MailError> for Reply {
    fn from(e: MailError) -> Self {
        match e {
            MailError::NoSuchFolder { .. } | MailError::NoSuchFolderId(_) => {
                Self::no("no such mailbox").code(Code::NonExistent)
            }
            MailError::FolderExists { .. } => {
                Self::no("mailbox already exists").code(Code::AlreadyExists)
            }
            MailError::InvalidFolderName { .. } | MailError::InvalidRename { .. } => {
                Self::no(e.to_string()).code(Code::Cannot)
            }
            MailError::CannotDeleteInbox => Self::no(e.to_string()).code(Code::Cannot),
            MailError::OverQuota { .. } => Self::no("quota exceeded").code(Code::OverQuota),
            // RFC 4314 §4, RFC 5530 §3.
            MailError::NoPermission { right, .. } => {
                Self::no(format!("permission denied: the '{right}' right is needed"))
                    .code(Code::NoPerm)
            }
            // RFC 4314 §3.1: unknown rights are a BAD.
            MailError::InvalidRights(_) => Self::bad(e.to_string()),
            MailError::InvalidIdentifier(_) => Self::no(e.to_string()).code(Code::Cannot),
            other => Self::server(other),
        }
    }
}

pub(crate) type CmdResult = Result<Done, Reply>;

pub(crate) fn ok(text: impl Into<String>) -> CmdResult {
    Ok(Done {
        code: None,
        text: text.into(),
    })
}

pub(crate) fn ok_code(code: Code, text: impl Into<String>) -> CmdResult {
    Ok(Done {
        code: Some(code),
        text: text.into(),
    })
}

/// The outcome of waiting for client input.
pub(crate) enum Input {
    Event(Event),
    Error(ReceiveError),
    Closed,
    Timeout,
    Shutdown,
}

pub(crate) struct Session {
    pub(crate) ctx: Arc<ImapContext>,
    pub(crate) limits: ImapLimits,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) rx: Receiver,
    pub(crate) out: Vec<u8>,
    pub(crate) opts: EncodeOptions,
    pub(crate) user: Option<AuthedUser>,
    pub(crate) selected: Option<Selected>,
    pub(crate) enabled: Enabled,
    pub(crate) failures: u32,
    pub(crate) logout: bool,
    /// COMPRESS=DEFLATE layer once active (RFC 4978).
    pub(crate) deflate: Option<compress::Deflate>,
    /// The selected folder's owner when it is another account's (shared.rs).
    pub(crate) shared: Option<shared::SharedSel>,
    /// This connection's line in the admin's list: user and open folder (guide §24.3).
    pub(crate) status: ConnStatus,
    /// The folder reported open in `status`, to clear it once nothing is selected.
    pub(crate) reported_folder: bool,
}

impl Session {
    fn new(ctx: Arc<ImapContext>, limits: ImapLimits, id: u64, conn: &Conn) -> Self {
        let rx = Receiver::new(ctx.limits.clone());
        Self {
            ctx,
            limits,
            id,
            peer: conn.peer,
            local: conn.local,
            tls: conn.is_tls(),
            rx,
            out: Vec::new(),
            opts: EncodeOptions::default(),
            user: None,
            selected: None,
            enabled: Enabled::default(),
            failures: 0,
            logout: false,
            deflate: None,
            shared: None,
            status: conn.status.clone(),
            reported_folder: false,
        }
    }

    /// guide §24.3 "Info", §24.4: reports the folder just selected.
    pub(crate) fn report_selected(&mut self, folder: &keel_mail::Folder) {
        let user = self.account().unwrap_or_default();
        let name = shared::open_folder_name(&user, folder);
        self.status.set_folder(Some(&name));
        self.reported_folder = true;
    }

    /// guide §24.4: a folder no longer selected (UNSELECT, CLOSE, a failed SELECT) leaves
    /// the opened-folders list.
    fn report_unselected(&mut self) {
        if self.reported_folder && self.selected.is_none() {
            self.status.set_folder(None);
            self.reported_folder = false;
        }
    }

    /// The logged-in account key.
    pub(crate) fn account(&self) -> Option<String> {
        self.user.as_ref().map(|u| u.user.clone())
    }

    async fn serve(mut self, mut conn: Conn) {
        self.debug("connected");
        // RFC 9051 §7.1.1 greeting with a CAPABILITY code; no product version (guide §12.6).
        let caps = self.capabilities().await;
        self.send(
            StatusResponse::ok(None, format!("{} IMAP4rev2 ready", self.ctx.hostname))
                .with_code(Code::Capability(caps)),
        );
        loop {
            match self.run(&mut conn).await {
                Flow::Continue => {}
                Flow::Close => break,
                Flow::StartTls => {
                    // RFC 9051 §6.2.1: drop anything pipelined after STARTTLS.
                    self.rx.clear_buffer();
                    conn = match conn.start_tls().await {
                        Ok(c) => c,
                        Err(e) => {
                            self.debug(&format!("STARTTLS handshake failed: {e}"));
                            return;
                        }
                    };
                    self.tls = true;
                }
            }
        }
        let _ = conn.stream.shutdown().await;
        self.debug("closed");
    }

    /// Writes buffered responses; false when the peer is gone.
    pub(crate) async fn flush(&mut self, conn: &mut Conn) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let mut buf = std::mem::take(&mut self.out);
        if self.debug_on() {
            for line in String::from_utf8_lossy(&buf).lines().take(20) {
                self.debug(&format!("S: {line}"));
            }
        }
        if let Some(d) = &mut self.deflate {
            match d.compress(&buf) {
                Ok(c) => buf = c,
                Err(_) => return false,
            }
        }
        conn.stream.write_all(&buf).await.is_ok() && conn.stream.flush().await.is_ok()
    }

    /// Hands received bytes to the receiver, through the COMPRESS layer if active; false
    /// when the compressed stream is corrupt.
    pub(crate) fn feed_raw(&mut self, bytes: &[u8]) -> bool {
        match &mut self.deflate {
            None => {
                self.rx.feed(bytes);
                true
            }
            Some(d) => match d.decompress(bytes) {
                Ok(plain) => {
                    self.rx.feed(&plain);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Waits for the next receiver event, reading the socket as needed.
    pub(crate) async fn next_input(&mut self, conn: &mut Conn) -> Input {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.rx.next() {
                Ok(Some(ev)) => return Input::Event(ev),
                Ok(None) => {}
                Err(e) => return Input::Error(e),
            }
            if *conn.shutdown.borrow() {
                return Input::Shutdown;
            }
            let read = tokio::select! {
                r = conn.stream.read(&mut buf) => r,
                _ = conn.shutdown.changed() => return Input::Shutdown,
                _ = tokio::time::sleep(self.limits.idle_timeout) => return Input::Timeout,
            };
            match read {
                Ok(0) | Err(_) => return Input::Closed,
                Ok(n) => {
                    if !self.feed_raw(buf.get(..n).unwrap_or_default()) {
                        return Input::Closed;
                    }
                }
            }
        }
    }

    async fn run(&mut self, conn: &mut Conn) -> Flow {
        loop {
            if !self.flush(conn).await {
                return Flow::Close;
            }
            if self.logout {
                return Flow::Close;
            }
            let flow = match self.next_input(conn).await {
                Input::Event(Event::Command(cmd)) => {
                    if *conn.shutdown.borrow() {
                        self.send(StatusResponse::bye("server shutting down"));
                        Flow::Close
                    } else {
                        self.command(conn, cmd).await
                    }
                }
                Input::Event(Event::NeedsContinuation { .. }) => {
                    // RFC 9051 §7.5: the client waits for "+" before sending the literal.
                    self.send(Response::continue_ready());
                    Flow::Continue
                }
                Input::Event(_) => Flow::Continue,
                Input::Error(e) => {
                    self.debug(&format!("C: <bad input: {e}>"));
                    self.send(e.to_response());
                    self.failed()
                }
                Input::Closed => return Flow::Close,
                Input::Timeout => {
                    self.send(StatusResponse::bye("autologout; idle for too long"));
                    Flow::Close
                }
                Input::Shutdown => {
                    self.send(StatusResponse::bye("server shutting down"));
                    Flow::Close
                }
            };
            match flow {
                Flow::Continue => {}
                other => {
                    self.flush(conn).await;
                    return other;
                }
            }
        }
    }

    /// Counts a failed command; closes after too many (guide §12.6 spirit, DESIGN §11).
    pub(crate) fn failed(&mut self) -> Flow {
        self.failures += 1;
        if self.failures >= self.limits.max_failed_commands {
            self.send(StatusResponse::bye("too many failed commands"));
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Queues a response.
    pub(crate) fn send(&mut self, r: impl Into<Response>) {
        r.into().encode(&mut self.out, &self.opts);
    }

    pub(crate) fn data(&mut self, d: Data) {
        self.send(d);
    }

    async fn command(&mut self, conn: &mut Conn, cmd: Command) -> Flow {
        let Command { tag, body } = cmd;
        self.debug(&format!("C: {tag} {}", body.name()));
        let name = body.name();
        let dispatched = self.dispatch(conn, &tag, body).await;
        self.report_unselected();
        let result = match dispatched {
            Ok(r) => r,
            Err(flow) => return flow,
        };
        match result {
            Ok(done) => {
                let mut r = StatusResponse::ok(Some(&tag), done.text);
                r.code = done.code;
                self.send(r);
                Flow::Continue
            }
            Err(reply) => {
                let mut r = match reply.kind {
                    StatusKind::Bad => StatusResponse::bad(Some(&tag), reply.text),
                    _ => StatusResponse::no(Some(&tag), reply.text),
                };
                r.code = reply.code;
                self.send(r);
                self.debug(&format!("{name} failed"));
                self.failed()
            }
        }
    }

    /// Runs one command. `Err(flow)` ends the command loop (LOGOUT, STARTTLS, lost peer).
    async fn dispatch(
        &mut self,
        conn: &mut Conn,
        tag: &str,
        body: CommandBody,
    ) -> Result<CmdResult, Flow> {
        use CommandBody as C;
        let authed = self.user.is_some();
        let selected = self.selected.is_some();
        let wrong_state = |what: &str| Ok(Err(Reply::bad(format!("command not valid {what}"))));
        // Any state (RFC 9051 §6.1).
        let r = match body {
            C::Capability => self.capability_cmd().await,
            // RFC 9051 §6.1.2: NOOP is the polling command; the sync below reports changes.
            C::Noop => ok("NOOP completed"),
            C::Check => ok("CHECK completed"),
            C::Logout => {
                self.send(StatusResponse::bye("logging out"));
                self.logout = true;
                ok("LOGOUT completed")
            }
            C::Id(_) => self.id_cmd(),
            // Not authenticated (RFC 9051 §6.2).
            C::StartTls if authed => return wrong_state("after authentication"),
            C::StartTls => {
                if self.tls {
                    return Ok(Err(Reply::bad("TLS is already active")));
                }
                self.send(StatusResponse::ok(Some(tag), "begin TLS negotiation now"));
                if !self.flush(conn).await {
                    return Err(Flow::Close);
                }
                return Err(Flow::StartTls);
            }
            C::Login { .. } | C::Authenticate { .. } if authed => {
                return wrong_state("in authenticated state");
            }
            C::Login { username, password } => self.login(username, password).await,
            C::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(conn, mechanism, initial_response).await?,
            _ if !authed => return wrong_state("before authentication"),
            // Authenticated (RFC 9051 §6.3).
            C::Enable(caps) => self.enable(caps),
            C::Select { mailbox, params } => self.select_checked(mailbox, params, false).await,
            C::Examine { mailbox, params } => self.select_checked(mailbox, params, true).await,
            C::Create {
                mailbox,
                special_use,
            } => self.create(mailbox, special_use).await,
            C::Delete(m) => self.delete(m).await,
            C::Rename { from, to } => self.rename(from, to).await,
            C::Subscribe(m) => self.subscribe(m, true).await,
            C::Unsubscribe(m) => self.subscribe(m, false).await,
            C::List(l) => self.list(l).await,
            C::Lsub { reference, pattern } => self.lsub(reference, pattern).await,
            C::Namespace => self.namespace(),
            C::Status { mailbox, items } => self.status(mailbox, items).await,
            C::Append { mailbox, messages } => self.append(mailbox, messages).await,
            C::Idle => return self.idle(conn, tag).await,
            C::GetQuotaRoot(m) => self.get_quota_root(m).await,
            C::GetQuota(root) => self.get_quota(root).await,
            C::Compress(mechanism) => return self.compress(conn, tag, &mechanism).await,
            // RFC 4314 §3.
            C::GetAcl(m) => self.get_acl(m).await,
            C::SetAcl {
                mailbox,
                identifier,
                rights,
            } => self.set_acl(mailbox, identifier, rights).await,
            C::DeleteAcl {
                mailbox,
                identifier,
            } => self.delete_acl(mailbox, identifier).await,
            C::ListRights {
                mailbox,
                identifier,
            } => self.list_rights(mailbox, identifier).await,
            C::MyRights(m) => self.my_rights(m).await,
            _ if !selected => return wrong_state("without a selected mailbox"),
            // Selected (RFC 9051 §6.4).
            C::Close => {
                // RFC 4314 §4: CLOSE expunges only with the `e` right, silently otherwise.
                let expunge = match self.shared_selected() {
                    Some(_) => self
                        .selected_rights()
                        .await
                        .is_ok_and(|r| r.has(keel_mail::Right::Expunge)),
                    None => true,
                };
                let r = self.close(expunge).await;
                self.shared = None;
                if expunge {
                    r
                } else {
                    r.map(|_| Done {
                        code: None,
                        text: "CLOSE completed".into(),
                    })
                }
            }
            C::Unselect => {
                let r = self.close(false).await;
                self.shared = None;
                r
            }
            C::Expunge => self.expunge(None).await,
            C::UidExpunge(set) => self.expunge(Some(set)).await,
            C::Fetch(f) => {
                let uid = f.uid;
                let r = self.fetch(f).await;
                self.sync(uid).await;
                return Ok(r);
            }
            C::Store(s) => {
                let uid = s.uid;
                let r = self.store(s).await;
                self.sync(uid).await;
                return Ok(r);
            }
            C::Search(s) => {
                let uid = s.uid;
                let r = self.search(tag, s).await;
                self.sync(uid).await;
                return Ok(r);
            }
            C::Sort(s) => {
                let uid = s.uid;
                let r = self.sort(tag, s).await;
                self.sync(uid).await;
                return Ok(r);
            }
            C::Thread(t) => {
                let uid = t.uid;
                let r = self.thread(t).await;
                self.sync(uid).await;
                return Ok(r);
            }
            C::Copy { uid, set, mailbox } => self.copy(uid, set, mailbox, false).await,
            C::Move { uid, set, mailbox } => self.copy(uid, set, mailbox, true).await,
            other => {
                return Ok(Err(Reply::bad(format!(
                    "{} is not supported by this server",
                    other.name()
                ))));
            }
        };
        // Other commands may report expunges (RFC 9051 §7.5.1).
        self.sync(true).await;
        Ok(r)
    }

    /// RFC 4978 §3 COMPRESS: the OK goes out uncompressed, everything after it deflated.
    async fn compress(
        &mut self,
        conn: &mut Conn,
        tag: &str,
        mechanism: &str,
    ) -> Result<CmdResult, Flow> {
        if mechanism != "DEFLATE" {
            return Ok(Err(Reply::bad("unknown compression mechanism")));
        }
        if self.deflate.is_some() {
            return Ok(Err(
                Reply::no("compression already active").code(Code::CompressionActive)
            ));
        }
        self.send(StatusResponse::ok(Some(tag), "DEFLATE active"));
        if !self.flush(conn).await {
            return Err(Flow::Close);
        }
        // Bytes already received after the command are compressed (RFC 4978 §3).
        let rest = self.rx.take_buffered();
        self.deflate = Some(compress::Deflate::new());
        if !self.feed_raw(&rest) {
            return Err(Flow::Close);
        }
        Err(Flow::Continue)
    }

    fn debug_on(&self) -> bool {
        self.ctx
            .logs
            .as_ref()
            .is_some_and(|l| l.debug_enabled(DebugCategory::ImapServer))
    }

    pub(crate) fn debug(&self, line: &str) {
        if let Some(logs) = &self.ctx.logs
            && logs.debug_enabled(DebugCategory::ImapServer)
        {
            logs.debug(
                DebugCategory::ImapServer,
                &format!("[{}] {} {line}", self.id, self.peer),
            );
        }
    }

    /// Runs a blocking mail-store call off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mailboxes) -> Result<T, MailError> + Send + 'static,
    ) -> Result<T, Reply> {
        let mb = self.ctx.mailboxes.clone();
        match tokio::task::spawn_blocking(move || f(&mb)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(Reply::server(e)),
        }
    }
}
