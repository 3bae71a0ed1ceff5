//! One SMTP session: reads commands through the codec, applies relay control and the
//! limits of guide §12.2, and hands accepted messages to local delivery and the queue.
//!
//! One file per command family: [`greeting`] (greeting delay, banner, EHLO/HELO),
//! [`auth`] (AUTH), [`envelope`] (MAIL, RCPT, sender-domain check, greylisting),
//! [`etrn`] (ETRN, RFC 1985), [`vrfy`] (VRFY, EXPN), [`relay`] (the
//! relay decision), [`data`] (DATA, BDAT), [`deliver`] (the end of a transaction:
//! local delivery and the queue), [`headers`] (trace headers) and [`footer`] (domain
//! footers, sans-I/O). The crate documentation has the general notes.
//!
//! Implementation notes:
//! - Greeting delay (guide §13.6, requirements-1 §0.10): only on the plaintext MX
//!   listener (port 25). Never on 465 (implicit TLS, "the settings apply only to the
//!   unsecured SMTP communication") and never on 587: submission clients are our own
//!   users' MUAs, which are not spam engines and often time out quickly
//!   (requirements-1 §13.6 "never apply the delay on the 587 submission port"). A
//!   client that sends anything before the banner gets `554 5.5.0` and the connection is
//!   closed at once, as sendmail's `greet_pause` does (the guide only says
//!   "interrupts the connection"; a reply first helps a legitimate but impatient peer's
//!   admin find the cause). With `greeting_delay_report` a Security-log line is written.
//! - POP-before-SMTP (guide §12.2): the POP3 server records each successful login as
//!   `(client IP → unix time)` in the directory (`Directory::record_pop3_login`); the
//!   relay decision reads it back per RCPT, so it works across processes. Like the
//!   IP-group rule it is cancelled for the session by a failed SMTP AUTH
//!   (requirements-1 §0.3): a client that failed to prove an identity gets no
//!   address-based trust either (Keel's choice; the guide names only the IP group).
//! - VRFY/EXPN (RFC 5321 §3.5) are off by default (252 / 502). When on, an address that
//!   does not resolve is answered 550 5.1.1 and counts toward the directory-harvest
//!   limit exactly like an unknown RCPT, so they cannot be used to harvest faster.
//! - `Delivered-To:` is NOT added: it names one recipient, so it would force one copy per
//!   recipient and break "one blob for all local recipients" (issue 3 item 4). The
//!   envelope recipient is available on request through `X-Envelope-To` (guide §12.6),
//!   which already opts into one copy per RCPT.
//! - Footers (guide §7.3): see [`footer`]; the rewritten message is the one stored
//!   locally and queued (one version for every recipient of the transaction).

mod auth;
mod data;
mod deliver;
mod envelope;
mod etrn;
mod footer;
mod greeting;
mod headers;
mod local_dsn;
mod relay;
mod spam;
mod vrfy;

use std::net::IpAddr;
use std::sync::Arc;

use keel_core::ipgroup::IpGroups;
use keel_core::log::{SecurityEvent, SecurityLimit};
use keel_directory::AuthedUser;
use keel_net::{Conn, canonical_ip};
use smtp_proto::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{
    BodyError, Line, LineReader, MAX_AUTH_LINE, MAX_COMMAND_LINE, ParseError, ReplyKind, SmtpReply,
    parse_command, replies,
};
use crate::limits::IpLimits;
use crate::settings::{SmtpSettings, load_settings};
use crate::{SmtpContext, SmtpKind};

/// See [`crate::fuzz_footer`].
pub(crate) fn fuzz_footer(message: &[u8], text: &str, html: Option<&str>) -> Option<Vec<u8>> {
    let mut settings = std::collections::BTreeMap::new();
    settings.insert(footer::KEY_TEXT.to_owned(), serde_json::Value::from(text));
    if let Some(h) = html {
        settings.insert(footer::KEY_HTML.to_owned(), serde_json::Value::from(h));
    }
    footer::Footer::from_settings(&settings)?.apply(message)
}

/// Read buffer size.
const READ_CHUNK: usize = 16 * 1024;

pub(crate) struct Shared {
    pub(crate) kind: SmtpKind,
    pub(crate) ctx: SmtpContext,
    pub(crate) limits: Arc<IpLimits>,
}

/// Whether `ip` is blocked after a directory harvest; the shared store is asked only
/// while the harvest limit is on (`limits` module notes).
async fn harvest_blocked(sh: &Arc<Shared>, max_unknown: u32, ip: IpAddr, now: i64) -> bool {
    let limits = sh.limits.clone();
    if max_unknown == 0 {
        return limits.is_blocked(None, ip, now);
    }
    let meta = sh.ctx.meta.clone();
    blocking(move || limits.is_blocked(Some(&*meta), ip, now))
        .await
        .unwrap_or(false)
}

/// Runs a blocking closure off the async runtime (DESIGN §11).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SmtpReply> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| replies::LOCAL_ERROR.server())
}

fn internal(what: &str, e: impl std::fmt::Display) -> SmtpReply {
    tracing::warn!("smtp: {what}: {e}");
    replies::LOCAL_ERROR.server()
}

/// One accepted recipient of the transaction.
#[derive(Debug, Clone)]
struct Rcpt {
    address: String,
    notify: Option<String>,
    orcpt: Option<String>,
    local_users: Vec<String>,
    public: Vec<(String, String)>,
    /// (address, fixed route)
    remote: Vec<(String, Option<String>)>,
    /// The RCPT address is in a local domain (guide §7.3 "internal recipient").
    internal: bool,
    /// Every local user it reaches whitelists the envelope sender (issue 6 §2).
    sender_allowed: bool,
}

#[derive(Debug, Default)]
struct Txn {
    from: String,
    envid: Option<String>,
    ret: Option<String>,
    rcpts: Vec<Rcpt>,
    recipients_limit_logged: bool,
    bdat: Vec<u8>,
    bdat_error: Option<BodyError>,
}

enum Flow {
    Continue,
    Close,
    StartTls,
}

struct Session {
    sh: Arc<Shared>,
    settings: SmtpSettings,
    groups: IpGroups,
    ip: IpAddr,
    local_ip: IpAddr,
    tls: bool,
    hostname: String,
    exempt: bool,
    helo: Option<String>,
    esmtp: bool,
    auth: Option<AuthedUser>,
    auth_failed: bool,
    /// A refusal because of a harvest block was logged in this session (`seclog`).
    harvest_logged: bool,
    failed: u32,
    tx: Option<Txn>,
    reader: LineReader,
}

pub(crate) async fn run(sh: Arc<Shared>, mut conn: Conn) {
    let ip = canonical_ip(conn.peer.ip());
    let ctx = sh.ctx.clone();
    let meta = ctx.meta.clone();
    let dir = ctx.directory.clone();
    let loaded = blocking(move || (load_settings(&*meta), dir.ip_groups())).await;
    let (settings, groups) = match loaded {
        Ok((Ok(s), Ok(g))) => (s, g),
        Ok((s, g)) => {
            if let Err(e) = s {
                ctx.logs
                    .error(&format!("SMTP settings cannot be read: {e}"));
            }
            if let Err(e) = g {
                ctx.logs
                    .error(&format!("IP address groups cannot be read: {e}"));
            }
            let _ = write_reply(&mut conn, &replies::LOCAL_ERROR).await;
            return;
        }
        Err(_) => return,
    };
    let exempt = settings
        .exempt_ip_group
        .as_deref()
        .is_some_and(|g| groups.contains(g, ip));
    let now = ctx.clock.unix();
    // guide §12.2: max concurrent connections per IP, answered 421 4.7.0.
    let max_conn = if exempt {
        0
    } else {
        settings.max_connections_per_ip
    };
    let Some(_slot) = sh.limits.connect(ip, max_conn) else {
        ctx.logs.security(&SecurityEvent::LimitExceeded {
            ip,
            limit: SecurityLimit::Connections(max_conn),
        });
        let _ = write_reply(&mut conn, &replies::TOO_MANY_CONNECTIONS).await;
        return;
    };
    // guide §12.2: an IP blocked after a directory harvest gets no session (the block
    // may have started on another node: see `limits`).
    if !exempt && harvest_blocked(&sh, settings.max_unknown_recipients, ip, now).await {
        crate::seclog::write(&ctx.logs, &crate::seclog::harvest_blocked(ip, "connection"));
        let _ = write_reply(&mut conn, &replies::HARVEST_BLOCKED).await;
        return;
    }
    if settings.open_relay {
        ctx.logs
            .warning("SMTP server is an open relay: anyone can send mail through it (guide §12.2)");
    }
    let hostname = (ctx.hostname)();
    let tls = conn.is_tls();
    let local_ip = canonical_ip(conn.local.ip());
    let mut s = Session {
        sh,
        settings,
        groups,
        ip,
        local_ip,
        tls,
        hostname,
        exempt,
        helo: None,
        esmtp: false,
        auth: None,
        auth_failed: false,
        harvest_logged: false,
        failed: 0,
        tx: None,
        reader: LineReader::new(),
    };
    // guide §13.6 greeting delay, then the RFC 5321 §4.3.1 greeting.
    if !s.greet(&mut conn).await {
        let _ = conn.stream.shutdown().await;
        return;
    }
    loop {
        match s.command(&mut conn).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(()) => break,
            Ok(Flow::StartTls) => {
                // RFC 3207 §4.2: discard anything the client pipelined after STARTTLS.
                let _ = s.reader.take_buffered();
                match conn.start_tls().await {
                    Ok(c) => conn = c,
                    Err(e) => {
                        tracing::debug!("smtp: STARTTLS with {ip} failed: {e}");
                        return;
                    }
                }
                // RFC 3207 §4.2: forget everything learnt before TLS.
                s.tls = true;
                s.helo = None;
                s.esmtp = false;
                s.auth = None;
                conn.status.set_user(None);
                s.auth_failed = false;
                s.tx = None;
            }
        }
    }
    let _ = conn.stream.shutdown().await;
}

async fn write_reply(conn: &mut Conn, r: &SmtpReply) -> Result<(), ()> {
    conn.stream.write_all(&r.encode()).await.map_err(|_| ())?;
    conn.stream.flush().await.map_err(|_| ())
}

/// Reads until the reader has a line (or the timeout/shutdown hits).
async fn read_line(
    conn: &mut Conn,
    reader: &mut LineReader,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Line, SmtpReply> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if let Some(l) = reader.next_line(limit) {
            return Ok(l);
        }
        let mut shutdown = conn.shutdown.clone();
        if *shutdown.borrow() {
            return Err(replies::SHUTTING_DOWN.closing());
        }
        let n = tokio::select! {
            r = tokio::time::timeout(timeout, conn.stream.read(&mut buf)) => match r {
                Err(_) => return Err(replies::TIMEOUT.closing()),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(SmtpReply::new(0, "", "").closing()),
                Ok(Ok(n)) => n,
            },
            _ = shutdown.changed() => return Err(replies::SHUTTING_DOWN.closing()),
        };
        reader.push(&buf[..n]);
    }
}

impl Session {
    fn ctx(&self) -> &SmtpContext {
        &self.sh.ctx
    }

    fn now(&self) -> i64 {
        self.ctx().clock.unix()
    }

    /// Reads and answers one command.
    async fn command(&mut self, conn: &mut Conn) -> Result<Flow, ()> {
        let timeout = self.settings.command_timeout();
        let line = match read_line(conn, &mut self.reader, MAX_AUTH_LINE, timeout).await {
            Ok(l) => l,
            Err(r) => {
                if r.code != 0 {
                    let _ = write_reply(conn, &r).await;
                }
                return Ok(Flow::Close);
            }
        };
        let result = match line {
            Line::TooLong => Err(replies::LINE_TOO_LONG),
            Line::Complete(l) => {
                // RFC 5321 §4.5.3.1.4; AUTH lines may be longer (RFC 4954 §4).
                let is_auth = l.len() >= 4 && l[..4].eq_ignore_ascii_case(b"AUTH");
                if l.len() + 2 > MAX_COMMAND_LINE && !is_auth {
                    Err(replies::LINE_TOO_LONG)
                } else {
                    self.dispatch(conn, &l).await
                }
            }
        };
        let (reply, flow) = match result {
            Ok(Answer::Reply(r)) => (Some(r), Flow::Continue),
            Ok(Answer::Done(flow)) => (None, flow),
            Err(r) => (Some(r), Flow::Continue),
        };
        let Some(reply) = reply else {
            return Ok(flow);
        };
        match reply.kind {
            ReplyKind::Server => tracing::warn!("smtp {}: {reply}", self.ip),
            _ if reply.is_error() => tracing::debug!("smtp {}: {reply}", self.ip),
            _ => {}
        }
        write_reply(conn, &reply).await?;
        if reply.kind == ReplyKind::Close || reply.code == 221 {
            return Ok(Flow::Close);
        }
        if counts_as_failed(&reply) {
            self.failed += 1;
            let max = self.settings.max_failed_commands;
            if max > 0 && self.failed >= max && !self.exempt {
                // guide §12.2: close once the maximum of failed commands is reached.
                self.ctx().logs.security(&SecurityEvent::LimitExceeded {
                    ip: self.ip,
                    limit: SecurityLimit::FailedCommands(max),
                });
                let _ = write_reply(conn, &replies::TOO_MANY_ERRORS).await;
                return Ok(Flow::Close);
            }
        }
        Ok(flow)
    }

    async fn dispatch(&mut self, conn: &mut Conn, line: &[u8]) -> Result<Answer, SmtpReply> {
        let req = match parse_command(line) {
            Ok(r) => r,
            Err(e) => return Err(parse_error_reply(e)),
        };
        match req {
            Request::Ehlo { host } => Ok(Answer::Reply(self.ehlo(host, true).await?)),
            Request::Helo { host } => Ok(Answer::Reply(self.ehlo(host, false).await?)),
            Request::Lhlo { .. } => Err(replies::UNKNOWN_COMMAND),
            Request::StartTls => {
                if self.tls || self.sh.kind == SmtpKind::Smtps {
                    return Err(replies::BAD_SEQUENCE.with_text("TLS already active"));
                }
                write_reply(conn, &replies::READY_FOR_TLS)
                    .await
                    .map_err(|()| replies::LOCAL_ERROR.closing())?;
                Ok(Answer::Done(Flow::StartTls))
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(conn, mechanism, initial_response).await,
            Request::Mail { from } => Ok(Answer::Reply(self.mail(from).await?)),
            Request::Rcpt { to } => Ok(Answer::Reply(self.rcpt(to).await?)),
            Request::Data => self.data(conn).await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(conn, chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                Ok(Answer::Reply(replies::RESET))
            }
            Request::Noop { .. } => Ok(Answer::Reply(replies::OK)),
            Request::Quit => Ok(Answer::Reply(replies::BYE)),
            Request::Help { .. } => Ok(Answer::Reply(replies::HELP)),
            Request::Vrfy { value } => self.vrfy(&value).await.map(Answer::Reply),
            Request::Expn { value } => self.expn(&value).await.map(Answer::Reply),
            // RFC 1985: see [`etrn`].
            Request::Etrn { name } => self.etrn(&name).await.map(Answer::Reply),
            Request::Atrn { .. } | Request::Burl { .. } => Err(replies::NOT_IMPLEMENTED),
        }
    }
}

enum Answer {
    Reply(SmtpReply),
    Done(Flow),
}

/// Failed commands for the guide §12.2 limit: protocol errors (500–504) and refused
/// authentication (530, 535, 538). Refused recipients count toward the harvest limit
/// instead.
fn counts_as_failed(r: &SmtpReply) -> bool {
    matches!(r.code, 500..=504 | 530 | 535 | 538)
}

fn parse_error_reply(e: ParseError) -> SmtpReply {
    match e {
        ParseError::UnknownCommand => replies::UNKNOWN_COMMAND,
        ParseError::Syntax(s) => replies::SYNTAX.with_text(format!("Syntax: {s}")),
        ParseError::BadSender => replies::BAD_SENDER,
        ParseError::BadRecipient => replies::BAD_RECIPIENT,
        ParseError::BadParameter(p) => replies::SYNTAX.with_text(format!("Invalid {p} parameter")),
        ParseError::UnsupportedParameter(_) => replies::UNSUPPORTED_PARAMETER,
    }
}
