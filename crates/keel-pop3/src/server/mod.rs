//! The POP3 server: drives the [`crate::codec`] over a [`keel_net::Conn`] and calls the mail
//! store ([`Mailboxes`]) and the directory.
//!
//! # Implementation notes
//!
//! - One command at a time per connection; responses go out in command order, so pipelined
//!   commands (RFC 2449 §6.6) simply queue in the [`LineReader`].
//! - States follow RFC 1939 §3: AUTHORIZATION → TRANSACTION (after USER/PASS or AUTH, holding
//!   the maildrop lock) → UPDATE (only through QUIT). Deletions are only marks until QUIT in
//!   TRANSACTION; a closed connection, an idle timeout or a shutdown never expunges
//!   (RFC 1939 §6).
//! - The maildrop is INBOX only (guide §6.2), snapshotted when the session enters
//!   TRANSACTION: messages delivered later are seen by the next session (RFC 1939 §5).
//! - The maildrop is locked for the session ([`Mailboxes::lock_maildrop`], RFC 1939 §8,
//!   guide table 12.1); a second session gets `-ERR [IN-USE]` (RFC 2449 §8.1.1) and stays in
//!   AUTHORIZATION.
//! - Every blocking call (directory, SQLite, blobs) runs in `spawn_blocking`; no lock is held
//!   across a socket write except the maildrop guard, which is a session-long lock by design.
//! - The security policy (guide §12.6) is read per command from the directory: USER/PASS and
//!   the SASL list follow [`keel_directory::Directory::mechanisms_offered`], so "Require
//!   encrypted connection" hides and refuses them before STLS except for the exempt IP group
//!   (RFC 2595 §4's LOGINDISABLED analogue).
//! - Shutdown: the current command finishes; the next one (or an idle wait) gets
//!   `-ERR [SYS/TEMP] server shutting down` and the connection closes without UPDATE.
//! - Transcripts go to the Debug log category "POP3 Server" (guide §25.9) with PASS and SASL
//!   data masked.
//! - UIDL unique-ids are `<uidvalidity>.<uid>` of the INBOX: stable across sessions and never
//!   reused while UIDVALIDITY stays (RFC 1939 §7).

mod auth;
mod oplog;
mod transaction;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::log::{DebugCategory, Logs};
use keel_directory::{AuthedUser, Mechanism};
use keel_mail::{BlobId, Mailboxes, MaildropLock};
use keel_net::{Conn, ConnStatus, Handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{
    self, Command, LineReader, MAX_COMMAND_LINE, MAX_SASL_LINE, ParseError, RespCode, Response,
};

/// Failed commands allowed before the server closes the connection.
pub const DEFAULT_MAX_FAILED_COMMANDS: u32 = 10;
/// RFC 1939 §3: "an autologout timer … of at least 10 minutes".
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The service name given to the directory (policy, logs, statistics).
pub const SERVICE_NAME: &str = "pop3";

/// Named limits of a POP3 session (DESIGN §11: every limit has a name, a default and a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pop3Limits {
    /// `-ERR` responses allowed before the connection is closed.
    pub max_failed_commands: u32,
    /// Time allowed between two client lines (RFC 1939 §3 autologout timer).
    pub idle_timeout: Duration,
    /// Longest command line, CRLF included (see [`codec::MAX_COMMAND_LINE`]).
    pub max_command_line: usize,
    /// Longest SASL response line, CRLF included (see [`codec::MAX_SASL_LINE`]).
    pub max_sasl_line: usize,
}

impl Default for Pop3Limits {
    fn default() -> Self {
        Self {
            max_failed_commands: DEFAULT_MAX_FAILED_COMMANDS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_command_line: MAX_COMMAND_LINE,
            max_sasl_line: MAX_SASL_LINE,
        }
    }
}

/// What the POP3 service needs.
#[derive(Clone)]
pub struct Pop3Context {
    /// The mail store (and through it the directory).
    pub mailboxes: Mailboxes,
    /// The host name shown in the greeting.
    pub hostname: String,
    /// Whether the listener is POP3S (TLS from the first byte, port 995).
    pub implicit_tls: bool,
    /// The server's logs, for the POP3 Server debug transcript.
    pub logs: Option<Logs>,
}

/// The POP3 front-end, a [`keel_net::Handler`].
#[derive(Clone)]
pub struct Pop3Service {
    ctx: Arc<Pop3Context>,
    limits: Pop3Limits,
    sessions: Arc<AtomicU64>,
}

impl Pop3Service {
    /// A service with the default limits.
    pub fn new(ctx: Pop3Context) -> Self {
        Self::with_limits(ctx, Pop3Limits::default())
    }

    /// A service with explicit limits.
    pub fn with_limits(ctx: Pop3Context, limits: Pop3Limits) -> Self {
        Self {
            ctx: Arc::new(ctx),
            limits,
            sessions: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Pop3Limits {
        self.limits
    }
}

impl Handler for Pop3Service {
    fn serve(&self, conn: Conn) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let id = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session::new(self.ctx.clone(), self.limits, id, &conn);
        Box::pin(session.serve(conn))
    }
}

/// One message of the maildrop snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) uid: u32,
    pub(crate) blob: BlobId,
    pub(crate) size: u64,
    pub(crate) deleted: bool,
}

/// The TRANSACTION state's data.
pub(crate) struct Maildrop {
    pub(crate) user: AuthedUser,
    pub(crate) folder_id: i64,
    pub(crate) uid_validity: u32,
    pub(crate) msgs: Vec<Msg>,
    /// Held for the whole session (RFC 1939 §8).
    pub(crate) _lock: MaildropLock,
}

pub(crate) enum State {
    /// RFC 1939 §4; `user` is the name given by USER.
    Authorization { user: Option<String> },
    /// RFC 1939 §5.
    Transaction(Box<Maildrop>),
}

/// What the command loop does next.
pub(crate) enum Flow {
    Continue,
    Close,
    StartTls,
}

/// The outcome of waiting for a line.
pub(crate) enum Input {
    Line(Vec<u8>),
    TooLong,
    Closed,
    Timeout,
    Shutdown,
}

pub(crate) struct Session {
    pub(crate) ctx: Arc<Pop3Context>,
    pub(crate) limits: Pop3Limits,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) reader: LineReader,
    pub(crate) state: State,
    pub(crate) failures: u32,
    pub(crate) out: Vec<u8>,
    /// This connection's line in the admin's list: user and maildrop (guide §24.3).
    pub(crate) status: ConnStatus,
}

impl Session {
    fn new(ctx: Arc<Pop3Context>, limits: Pop3Limits, id: u64, conn: &Conn) -> Self {
        Self {
            ctx,
            limits,
            id,
            peer: conn.peer,
            local: conn.local,
            tls: conn.is_tls(),
            reader: LineReader::new(),
            state: State::Authorization { user: None },
            failures: 0,
            out: Vec::new(),
            status: conn.status.clone(),
        }
    }

    async fn serve(mut self, mut conn: Conn) {
        self.debug("connected");
        // RFC 1939 §4: the greeting. No program version (guide §12.6 "don't show version").
        self.reply(Response::ok(format!(
            "{} POP3 server ready",
            self.ctx.hostname
        )));
        loop {
            match self.run(&mut conn).await {
                Flow::Continue => {}
                Flow::Close => break,
                Flow::StartTls => {
                    // RFC 2595 §4: the TLS negotiation starts right after the +OK.
                    conn = match conn.start_tls().await {
                        Ok(c) => c,
                        Err(e) => {
                            self.debug(&format!("STLS handshake failed: {e}"));
                            return;
                        }
                    };
                    self.tls = true;
                    // RFC 2595 §4: discard anything pipelined before the handshake, and
                    // forget what was learned in the clear.
                    self.reader.clear();
                    self.state = State::Authorization { user: None };
                }
            }
        }
        let _ = conn.stream.shutdown().await;
        self.debug("closed");
    }

    /// The command loop; returns to [`Session::serve`] to close or to start TLS.
    async fn run(&mut self, conn: &mut Conn) -> Flow {
        loop {
            if !self.flush(conn).await {
                return Flow::Close;
            }
            let input = self.read_line(conn, self.limits.max_command_line).await;
            let flow = match input {
                Input::Line(line) => {
                    if *conn.shutdown.borrow() {
                        self.shutting_down();
                        Flow::Close
                    } else {
                        self.command(conn, &line).await
                    }
                }
                Input::TooLong => {
                    self.debug("C: <line too long>");
                    self.fail(Response::err(format!(
                        "line too long (limit {} octets)",
                        self.limits.max_command_line
                    )))
                }
                Input::Closed => return Flow::Close,
                Input::Timeout => {
                    // RFC 1939 §3: autologout; no UPDATE state.
                    self.reply(Response::err("idle timeout, closing connection"));
                    Flow::Close
                }
                Input::Shutdown => {
                    self.shutting_down();
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

    fn shutting_down(&mut self) {
        self.reply(Response::err_code(
            RespCode::SysTemp,
            "server shutting down",
        ));
    }

    async fn command(&mut self, conn: &mut Conn, line: &[u8]) -> Flow {
        let cmd = match codec::parse_command(line) {
            Ok(c) => c,
            Err(e) => {
                self.debug(&format!("C: {}", masked_line(line)));
                return self.fail(parse_error_response(&e));
            }
        };
        self.debug(&format!("C: {}", masked_line(line)));
        match (&self.state, cmd) {
            // RFC 1939 §4, §6: QUIT in either state.
            (_, Command::Quit) => self.quit().await,
            (_, Command::Capa) => {
                self.capa().await;
                Flow::Continue
            }
            (_, Command::Noop) if matches!(self.state, State::Transaction(_)) => {
                self.reply(Response::ok(""));
                Flow::Continue
            }
            (State::Authorization { .. }, Command::Stls) => self.stls(),
            (State::Authorization { .. }, Command::User(name)) => self.user(name).await,
            (State::Authorization { .. }, Command::Pass(pw)) => self.pass(pw).await,
            (State::Authorization { .. }, Command::Auth { mechanism, initial }) => {
                self.auth(conn, mechanism, initial).await
            }
            (State::Transaction(_), cmd @ (Command::User(_) | Command::Pass(_))) => {
                self.fail(Response::err(format!(
                    "{} not allowed: already authenticated",
                    cmd.keyword()
                )))
            }
            (State::Transaction(_), cmd @ (Command::Stls | Command::Auth { .. })) => self.fail(
                Response::err(format!("{} only in the AUTHORIZATION state", cmd.keyword())),
            ),
            (State::Transaction(_), cmd) => self.transaction(cmd).await,
            (State::Authorization { .. }, cmd) => self.fail(Response::err(format!(
                "{} not allowed before authentication",
                cmd.keyword()
            ))),
        }
    }

    /// RFC 2595 §4.
    fn stls(&mut self) -> Flow {
        if self.tls {
            return self.fail(Response::err("TLS is already active"));
        }
        self.reply(Response::ok("Begin TLS negotiation"));
        Flow::StartTls
    }

    /// RFC 1939 §6: QUIT in TRANSACTION enters UPDATE and removes the deleted messages.
    async fn quit(&mut self) -> Flow {
        let state = std::mem::replace(&mut self.state, State::Authorization { user: None });
        self.status.set_folder(None); // guide §24.4: the maildrop is released
        let State::Transaction(drop) = state else {
            self.reply(Response::ok(format!(
                "{} POP3 server signing off",
                self.ctx.hostname
            )));
            return Flow::Close;
        };
        let uids: Vec<u32> = drop
            .msgs
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        let left = drop.msgs.len() - uids.len();
        let result = if uids.is_empty() {
            Ok(Vec::new())
        } else {
            let mb = self.ctx.mailboxes.clone();
            let folder = drop.folder_id;
            let uids = uids.clone();
            // The removed messages, for the Operations log (guide §25.6).
            let gone: Vec<Msg> = if self.ctx.logs.is_some() {
                drop.msgs.iter().filter(|m| m.deleted).cloned().collect()
            } else {
                Vec::new()
            };
            tokio::task::spawn_blocking(move || {
                let removed = oplog::describe(&mb, &gone);
                mb.expunge(folder, &uids).map_err(|e| e.to_string())?;
                Ok(removed)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        };
        match result {
            Ok(removed) => {
                self.log_removed(&drop.user.user, &removed);
                self.reply(Response::ok(format!(
                    "{} POP3 server signing off ({left} messages left)",
                    self.ctx.hostname
                )));
            }
            Err(e) => {
                tracing::warn!(user = %drop.user.user, "POP3 expunge failed: {e}");
                // RFC 1939 §6: "-ERR some deleted messages not removed".
                self.reply(Response::err_code(
                    RespCode::SysTemp,
                    "some deleted messages not removed",
                ));
            }
        }
        // The maildrop lock is released here, after UPDATE.
        std::mem::drop(drop);
        Flow::Close
    }

    /// RFC 2449 §5: the capability list, reflecting the state and the security policy.
    async fn capa(&mut self) {
        let authorization = matches!(self.state, State::Authorization { .. });
        let mechs = if authorization {
            self.offered().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        self.reply(Response::ok("Capability list follows"));
        let mut lines: Vec<String> = vec![
            "TOP".into(),  // RFC 2449 §6.1
            "UIDL".into(), // RFC 2449 §6.7
        ];
        // RFC 2449 §6.2; hidden when the policy refuses plaintext passwords here (guide §12.6).
        if authorization && mechs.contains(&Mechanism::Plain) {
            lines.push("USER".into());
        }
        lines.push("RESP-CODES".into()); // RFC 2449 §6.4
        lines.push("AUTH-RESP-CODE".into()); // RFC 3206 §6
        lines.push("PIPELINING".into()); // RFC 2449 §6.6
        let sasl: Vec<&str> = mechs
            .iter()
            .filter(|m| auth::SUPPORTED.contains(m))
            .map(|m| m.sasl_name())
            .collect();
        if !sasl.is_empty() {
            lines.push(format!("SASL {}", sasl.join(" "))); // RFC 2449 §6.3, RFC 5034 §3
        }
        if authorization && !self.tls {
            lines.push("STLS".into()); // RFC 2595 §4
        }
        lines.push("IMPLEMENTATION Keel".into()); // RFC 2449 §6.9
        for l in lines {
            codec::write_multiline_line(&mut self.out, l.as_bytes());
        }
        codec::write_multiline_end(&mut self.out);
    }

    /// Queues a response and logs it.
    pub(crate) fn reply(&mut self, r: Response) {
        let start = self.out.len();
        r.write(&mut self.out);
        if self.debug_on() {
            let line = String::from_utf8_lossy(&self.out[start..])
                .trim_end()
                .to_owned();
            self.debug(&format!("S: {line}"));
        }
    }

    /// Queues an `-ERR` response that counts toward [`Pop3Limits::max_failed_commands`];
    /// closes the connection at the limit.
    pub(crate) fn fail(&mut self, r: Response) -> Flow {
        self.reply(r);
        self.failures += 1;
        if self.failures >= self.limits.max_failed_commands {
            self.reply(Response::err(
                "too many failed commands, closing connection",
            ));
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Writes the queued output. `false` when the peer is gone.
    pub(crate) async fn flush(&mut self, conn: &mut Conn) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok =
            conn.stream.write_all(&self.out).await.is_ok() && conn.stream.flush().await.is_ok();
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            // Do not keep a big RETR buffer for an idle session (DESIGN §9).
            self.out.shrink_to(4096);
        }
        ok
    }

    /// Waits for the next line, the idle timeout or the shutdown signal.
    pub(crate) async fn read_line(&mut self, conn: &mut Conn, limit: usize) -> Input {
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.next_line(limit) {
                Some(Ok(l)) => return Input::Line(l),
                Some(Err(_)) => return Input::TooLong,
                None => {}
            }
            if *conn.shutdown.borrow() {
                return Input::Shutdown;
            }
            let Conn {
                stream, shutdown, ..
            } = conn;
            let read = tokio::time::timeout(self.limits.idle_timeout, stream.read(&mut buf));
            tokio::select! {
                r = read => match r {
                    Err(_) => return Input::Timeout,
                    Ok(Ok(0) | Err(_)) => return Input::Closed,
                    Ok(Ok(n)) => self.reader.push(&buf[..n]),
                },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // The service is gone without a signal: treat it as a shutdown.
                        return Input::Shutdown;
                    }
                }
            }
        }
    }

    fn debug_on(&self) -> bool {
        self.ctx
            .logs
            .as_ref()
            .is_some_and(|l| l.debug_enabled(DebugCategory::Pop3Server))
    }

    pub(crate) fn debug(&self, line: &str) {
        if let Some(logs) = &self.ctx.logs
            && logs.debug_enabled(DebugCategory::Pop3Server)
        {
            logs.debug(
                DebugCategory::Pop3Server,
                &format!("[{}] {} {line}", self.id, self.peer),
            );
        }
    }
}

/// The line for the transcript: PASS and AUTH data masked (guide §6.3).
fn masked_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let upper = text.trim_start().to_ascii_uppercase();
    if upper.starts_with("PASS") {
        "PASS ***".to_owned()
    } else if upper.starts_with("AUTH") {
        let mut parts = text.split_whitespace();
        let kw = parts.next().unwrap_or_default();
        match (parts.next(), parts.next()) {
            (Some(m), Some(_)) => format!("{kw} {m} ***"),
            (Some(m), None) => format!("{kw} {m}"),
            _ => kw.to_owned(),
        }
    } else {
        text.into_owned()
    }
}

fn parse_error_response(e: &ParseError) -> Response {
    match e {
        ParseError::Unknown => Response::err("unknown command"),
        other => Response::err(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_masks_secrets() {
        assert_eq!(masked_line(b"pass hunter2"), "PASS ***");
        assert_eq!(masked_line(b"AUTH PLAIN AGJvYgBwdw=="), "AUTH PLAIN ***");
        assert_eq!(masked_line(b"AUTH PLAIN"), "AUTH PLAIN");
        assert_eq!(masked_line(b"USER bob"), "USER bob");
    }
}
