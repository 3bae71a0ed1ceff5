//! One SMTP session: reads commands through the codec, applies relay control and the
//! limits of guide §12.2, and hands accepted messages to local delivery and the queue.
//! See the crate documentation for the implementation notes.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keel_core::ipgroup::IpGroups;
use keel_core::log::{MailLogEntry, MailService, SecurityEvent, SecurityLimit};
use keel_directory::sasl::{SaslContext, SaslServer, SaslStep};
use keel_directory::{AuthedUser, Mechanism, Resolution, Target};
use keel_mail::{Delivery, DeliveryError, QuotaStatus};
use keel_net::{Conn, canonical_ip};
use keel_store::{QueuedMessage, QueuedRecipient};
use smtp_proto::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{
    BdatReceiver, BodyError, BodyLimits, BodyProgress, DataReceiver, Line, LineReader,
    MAX_AUTH_LINE, MAX_COMMAND_LINE, MAX_TEXT_LINE, ParseError, ReplyKind, SmtpReply,
    count_received, parse_command, replies,
};
use crate::limits::IpLimits;
use crate::settings::{SmtpSettings, load_settings};
use crate::{SmtpContext, SmtpKind, new_queue_id};

/// Read buffer size.
const READ_CHUNK: usize = 16 * 1024;

pub(crate) struct Shared {
    pub(crate) kind: SmtpKind,
    pub(crate) ctx: SmtpContext,
    pub(crate) limits: Arc<IpLimits>,
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
    // guide §12.2: an IP blocked after a directory harvest gets no session.
    if !exempt && sh.limits.is_blocked(ip, now) {
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
        failed: 0,
        tx: None,
        reader: LineReader::new(),
    };
    // RFC 5321 §4.3.1 greeting; no product name or version (issue 3 item 1).
    let banner = SmtpReply::new(220, "", "").with_text(format!("{} ESMTP", s.hostname));
    if write_reply(&mut conn, &banner).await.is_err() {
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
            // RFC 5321 §3.5.3: VRFY off by default answers 252; EXPN off answers 502.
            Request::Vrfy { .. } => Ok(Answer::Reply(replies::CANNOT_VRFY)),
            Request::Expn { .. } => Err(replies::NOT_IMPLEMENTED),
            // TODO(RFC 1985): ETRN comes with the outbound queue.
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                Err(replies::NOT_IMPLEMENTED)
            }
        }
    }

    async fn ehlo(&mut self, host: String, esmtp: bool) -> Result<SmtpReply, SmtpReply> {
        if host.trim().is_empty() {
            return Err(replies::SYNTAX.with_text("EHLO needs a domain or address literal"));
        }
        // RFC 5321 §4.1.4: EHLO resets the transaction.
        self.tx = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        if !esmtp {
            return Ok(SmtpReply::new(250, "", "").with_text(self.hostname.clone()));
        }
        let me = SessionRef::of(self);
        let mechs = blocking(move || me.mechanisms()).await?;
        let mut lines = vec![self.hostname.clone(), "PIPELINING".to_owned()]; // RFC 2920
        // RFC 1870: SIZE with the limit (no number = no fixed limit).
        if self.settings.max_message_size > 0 {
            lines.push(format!("SIZE {}", self.settings.max_message_size));
        } else {
            lines.push("SIZE".to_owned());
        }
        lines.push("8BITMIME".to_owned()); // RFC 6152
        lines.push("SMTPUTF8".to_owned()); // RFC 6531
        lines.push("ENHANCEDSTATUSCODES".to_owned()); // RFC 2034
        lines.push("DSN".to_owned()); // RFC 3461
        lines.push("CHUNKING".to_owned()); // RFC 3030
        if !self.tls {
            lines.push("STARTTLS".to_owned()); // RFC 3207
        }
        if !mechs.is_empty() {
            // RFC 4954 §3
            let names: Vec<&str> = mechs.iter().map(|m| m.sasl_name()).collect();
            lines.push(format!("AUTH {}", names.join(" ")));
        }
        Ok(SmtpReply::new(250, "", "").with_text(lines.join("\n")))
    }

    async fn auth(
        &mut self,
        conn: &mut Conn,
        mechanism: u64,
        initial: String,
    ) -> Result<Answer, SmtpReply> {
        // RFC 4954 §4: not twice, not inside a transaction, only after EHLO.
        if self.auth.is_some() || self.tx.is_some() || !self.esmtp {
            return Err(replies::BAD_SEQUENCE);
        }
        let name = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            smtp_proto::AUTH_SCRAM_SHA_256 => Mechanism::ScramSha256,
            _ => return Err(replies::BAD_MECHANISM),
        };
        let me = SessionRef::of(self);
        let offered = blocking(move || me.mechanisms()).await?;
        if !offered.contains(&name) {
            // RFC 4954 §6: 538 when the mechanism needs encryption first.
            let needs_tls = matches!(name, Mechanism::Plain | Mechanism::Login) && !self.tls;
            self.auth_failed = true;
            return Err(if needs_tls {
                replies::ENCRYPTION_REQUIRED
            } else {
                replies::BAD_MECHANISM
            });
        }
        let dir = self.ctx().directory.clone();
        let sctx = SaslContext {
            client_ip: self.ip,
            local_ip: Some(self.local_ip),
            secure: self.tls,
            service: self.sh.kind.service_name().to_owned(),
        };
        let mech_name = name.sasl_name();
        let d = dir.clone();
        let mut server = blocking(move || SaslServer::start(&d, mech_name, sctx))
            .await?
            .map_err(|e| {
                tracing::debug!("smtp AUTH: {e}");
                replies::BAD_MECHANISM
            })?;
        // RFC 4954 §4: "=" is an empty initial response.
        let mut client: Option<Vec<u8>> = match initial.trim() {
            "" => None,
            "=" => Some(Vec::new()),
            b64 => Some(B64.decode(b64).map_err(|_| replies::BAD_BASE64)?),
        };
        loop {
            let d = dir.clone();
            let data = client.take();
            let (srv, step) = blocking(move || {
                let step = server.step(&d, data.as_deref());
                (server, step)
            })
            .await?;
            server = srv;
            match step {
                SaslStep::Challenge(c) => {
                    let r = SmtpReply::new(334, "", "").with_text(B64.encode(&c));
                    write_reply(conn, &r)
                        .await
                        .map_err(|()| replies::LOCAL_ERROR.closing())?;
                }
                SaslStep::Success { user, server_final } => {
                    if let Some(v) = server_final {
                        // RFC 4954 §4: additional data with success goes in a 334
                        // challenge; the client answers with an empty line.
                        let r = SmtpReply::new(334, "", "").with_text(B64.encode(&v));
                        write_reply(conn, &r)
                            .await
                            .map_err(|()| replies::LOCAL_ERROR.closing())?;
                        let _ = self.read_auth_response(conn).await?;
                    }
                    self.auth = Some(user);
                    return Ok(Answer::Reply(replies::AUTH_OK));
                }
                SaslStep::Failure(f) => {
                    // The directory's security sink already logged the failed login.
                    tracing::debug!("smtp AUTH from {} failed: {}", self.ip, f.reason);
                    self.auth_failed = true; // guide §12.2 / requirements-1 §0.3
                    return Err(match f.kind {
                        keel_directory::sasl::SaslFailureKind::Internal => {
                            SmtpReply::new(454, "4.7.0", "Temporary authentication failure")
                        }
                        _ => replies::AUTH_FAILED,
                    });
                }
            }
            match self.read_auth_response(conn).await? {
                Some(d) => client = Some(d),
                None => {
                    self.auth_failed = true;
                    return Err(replies::AUTH_CANCELLED);
                }
            }
        }
    }

    /// Reads one SASL response line; `None` when the client cancelled with `*`.
    async fn read_auth_response(&mut self, conn: &mut Conn) -> Result<Option<Vec<u8>>, SmtpReply> {
        let timeout = self.settings.command_timeout();
        match read_line(conn, &mut self.reader, MAX_AUTH_LINE, timeout).await? {
            Line::TooLong => Err(replies::LINE_TOO_LONG),
            Line::Complete(l) => {
                let t = String::from_utf8_lossy(&l);
                let t = t.trim();
                if t == "*" {
                    return Ok(None);
                }
                B64.decode(t).map(Some).map_err(|_| replies::BAD_BASE64)
            }
        }
    }

    fn low_disk(&self) -> bool {
        let min = self.settings.min_free_disk_bytes;
        min > 0 && (self.ctx().data_dir_free_space)().is_some_and(|free| free < min)
    }

    async fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Result<SmtpReply, SmtpReply> {
        if self.helo.is_none() || self.tx.is_some() {
            return Err(replies::BAD_SEQUENCE);
        }
        // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
        if self.sh.kind == SmtpKind::Submission && self.auth.is_none() {
            return Err(replies::AUTH_REQUIRED);
        }
        if self.low_disk() {
            self.ctx()
                .logs
                .warning("free disk space below the SMTP minimum: refusing mail (452 4.3.1)");
            return Err(replies::LOW_DISK.server());
        }
        if !self.exempt && self.sh.limits.is_blocked(self.ip, self.now()) {
            return Err(replies::HARVEST_BLOCKED.closing());
        }
        // guide §12.2: max messages per hour from one IP, sliding hour.
        let per_hour = self.settings.max_messages_per_hour_per_ip;
        if per_hour > 0
            && !self.exempt
            && self.sh.limits.messages_last_hour(self.ip, self.now()) >= per_hour as usize
        {
            self.ctx().logs.security(&SecurityEvent::LimitExceeded {
                ip: self.ip,
                limit: SecurityLimit::MessagesPerHour(per_hour),
            });
            return Err(replies::RATE_LIMITED);
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return Err(replies::UNSUPPORTED_PARAMETER);
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            return Err(replies::UTF8_NOT_DECLARED);
        }
        // RFC 1870 §6: SIZE above the limit → 552 5.3.4.
        let size = from.size as u64;
        let max = self.settings.max_message_size;
        if max > 0 && size > max {
            return Err(replies::TOO_BIG);
        }
        if size > 0
            && let Some(limit) = self.outgoing_limit().await?
            && size > limit
        {
            return Err(replies::TOO_BIG.with_text("Message exceeds your outgoing size limit"));
        }
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some("FULL".to_owned())
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some("HDRS".to_owned())
        } else {
            None
        };
        self.tx = Some(Txn {
            from: from.address.to_lowercase(),
            envid: from.env_id,
            ret,
            ..Txn::default()
        });
        Ok(replies::SENDER_OK)
    }

    /// The authenticated sender's outgoing size limit (guide §18.1: the user's own value
    /// overrides the domain's), `None` when unauthenticated or unlimited.
    async fn outgoing_limit(&self) -> Result<Option<u64>, SmtpReply> {
        let Some(user) = self.auth.as_ref().map(|a| a.user.clone()) else {
            return Ok(None);
        };
        let dir = self.ctx().directory.clone();
        let limit = blocking(move || dir.effective_outgoing_limit(&user))
            .await?
            .map_err(|e| internal("outgoing limit", e))?;
        Ok((limit > 0).then_some(limit))
    }

    fn relay_allowed(&self) -> bool {
        let s = &self.settings;
        if s.open_relay {
            return true;
        }
        if s.relay_authenticated && self.auth.is_some() {
            return true;
        }
        // requirements-1 §0.3 / guide §12.2: after a failed AUTH the IP-group rule no
        // longer applies in this session.
        let ip_rule_cancelled = s.relay_authenticated && self.auth_failed;
        if let Some(g) = &s.relay_ip_group
            && !ip_rule_cancelled
            && self.groups.contains(g, self.ip)
        {
            return true;
        }
        // TODO(guide §12.2): POP-before-SMTP needs POP3 login times (not recorded yet).
        false
    }

    async fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Result<SmtpReply, SmtpReply> {
        let Some(tx) = &mut self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        let now = self.sh.ctx.clock.unix();
        if !self.exempt && self.sh.limits.is_blocked(self.ip, now) {
            return Err(replies::HARVEST_BLOCKED_RCPT);
        }
        // guide §12.2: max recipients per message → 452 4.5.3 (RFC 5321 §4.5.3.1.10).
        let max = self.settings.max_recipients;
        if max > 0 && tx.rcpts.len() >= max as usize {
            if !tx.recipients_limit_logged {
                tx.recipients_limit_logged = true;
                self.sh.ctx.logs.security(&SecurityEvent::LimitExceeded {
                    ip: self.ip,
                    limit: SecurityLimit::Recipients(max),
                });
            }
            return Err(replies::TOO_MANY_RECIPIENTS);
        }
        let address = to.address.trim().to_lowercase();
        if address.is_empty() || !address.contains('@') {
            return Err(replies::BAD_RECIPIENT);
        }
        let from = tx.from.clone();
        let dir = self.sh.ctx.directory.clone();
        let a = address.clone();
        let resolution = blocking(move || dir.resolve_recipient(&a))
            .await?
            .map_err(|_| replies::BAD_RECIPIENT)?;
        let mut rcpt = Rcpt {
            address: address.clone(),
            notify: notify_param(to.flags),
            orcpt: to.orcpt.map(|o| format!("rfc822;{o}")),
            local_users: Vec::new(),
            public: Vec::new(),
            remote: Vec::new(),
        };
        let sender_local_only = self.sender_local_only().await?;
        match resolution {
            Resolution::NotFound => {
                // guide §12.3: reject unknown recipients at RCPT (no backscatter) and count
                // them for the directory-harvest limit (guide §12.2).
                if !self.exempt
                    && self.sh.limits.unknown_recipient(
                        self.ip,
                        now,
                        self.settings.max_unknown_recipients,
                        self.settings.harvest_block_secs,
                    )
                {
                    self.sh
                        .ctx
                        .logs
                        .security(&SecurityEvent::DirectoryHarvest { ip: self.ip });
                }
                return Err(replies::NO_SUCH_USER);
            }
            Resolution::NotLocal => {
                if sender_local_only {
                    return Err(replies::LOCAL_ONLY);
                }
                if !self.relay_allowed() {
                    self.sh.ctx.logs.security(&SecurityEvent::RelayAttempt {
                        ip: self.ip,
                        from: &from,
                        to: &address,
                    });
                    return Err(replies::RELAY_DENIED);
                }
                rcpt.remote.push((address.clone(), None));
            }
            Resolution::Deliver { targets, .. } => {
                let outside = self.auth.is_none() && !self.is_local_domain(&from).await?;
                for t in targets {
                    match t {
                        Target::LocalUser { user, .. } => {
                            self.check_local_user(&user, outside).await?;
                            rcpt.local_users.push(user);
                        }
                        Target::External { address: ext } => {
                            if sender_local_only {
                                return Err(replies::LOCAL_ONLY);
                            }
                            rcpt.remote.push((ext, None));
                        }
                        Target::Forwarded {
                            address: fwd,
                            host,
                            port,
                            ..
                        } => rcpt.remote.push((fwd, Some(format!("{host}:{port}")))),
                        Target::PublicFolder { domain, path } => rcpt.public.push((domain, path)),
                    }
                }
            }
        }
        if let Some(tx) = &mut self.tx {
            tx.rcpts.push(rcpt);
        }
        Ok(replies::RECIPIENT_OK)
    }

    /// guide §8.2 step 8 and §7: quota at RCPT, and local-only users do not receive mail
    /// from outside.
    async fn check_local_user(&self, user: &str, outside: bool) -> Result<(), SmtpReply> {
        let dir = self.ctx().directory.clone();
        let mb = self.ctx().mailboxes.clone();
        let u = user.to_owned();
        let (local_only, quota) = blocking(move || {
            let local_only = dir.get_user(&u).map(|x| x.local_domain_only);
            let quota = mb.quota_check(&u, 0);
            (local_only, quota)
        })
        .await?;
        if outside && local_only.map_err(|e| internal("get user", e))? {
            return Err(replies::LOCAL_ONLY);
        }
        match quota.map_err(|e| internal("quota check", e))? {
            QuotaStatus::Ok => Ok(()),
            // RFC 3463 §3.3 X.2.2, temporary: see the crate notes.
            QuotaStatus::Exceeded { .. } => Err(replies::MAILBOX_FULL_TEMP),
        }
    }

    async fn sender_local_only(&self) -> Result<bool, SmtpReply> {
        let Some(user) = self.auth.as_ref().map(|a| a.user.clone()) else {
            return Ok(false);
        };
        let dir = self.ctx().directory.clone();
        blocking(move || dir.get_user(&user).map(|u| u.local_domain_only))
            .await?
            .map_err(|e| internal("get user", e))
    }

    async fn is_local_domain(&self, address: &str) -> Result<bool, SmtpReply> {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return Ok(false);
        };
        let dir = self.ctx().directory.clone();
        let d = domain.to_owned();
        blocking(move || dir.local_domain(&d).map(|x| x.is_some()))
            .await?
            .map_err(|e| internal("local domain", e))
    }

    fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_size: self.settings.max_message_size,
            max_line: MAX_TEXT_LINE,
            lenient_lines: self.settings.lenient_line_length,
        }
    }

    async fn data(&mut self, conn: &mut Conn) -> Result<Answer, SmtpReply> {
        let Some(tx) = &self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        if tx.rcpts.is_empty() {
            // RFC 5321 §3.3: no valid recipients.
            return Err(replies::NO_VALID_RECIPIENTS);
        }
        if self.low_disk() {
            return Err(replies::LOW_DISK.server());
        }
        write_reply(conn, &replies::START_DATA)
            .await
            .map_err(|()| replies::LOCAL_ERROR.closing())?;
        let mut rx = DataReceiver::new(self.body_limits());
        let pending = self.reader.take_buffered();
        let mut progress = rx.push(&pending);
        let mut buf = vec![0u8; READ_CHUNK];
        let timeout = self.settings.data_timeout();
        while progress == BodyProgress::More {
            let n = match tokio::time::timeout(timeout, conn.stream.read(&mut buf)).await {
                Err(_) => return Err(replies::TIMEOUT.closing()),
                Ok(Err(_)) | Ok(Ok(0)) => return Ok(Answer::Done(Flow::Close)),
                Ok(Ok(n)) => n,
            };
            progress = rx.push(&buf[..n]);
        }
        if let BodyProgress::Done { rest } = progress {
            self.reader.push(&rest);
        }
        let body = rx.finish();
        let reply = self.finish_message(body).await;
        // RFC 5321 §4.1.1.4: the transaction ends whatever the outcome.
        self.tx = None;
        reply.map(Answer::Reply)
    }

    async fn bdat(
        &mut self,
        conn: &mut Conn,
        chunk: usize,
        last: bool,
    ) -> Result<Answer, SmtpReply> {
        // RFC 3030 §2: the chunk is read even when the command is refused.
        let usable = self.tx.as_ref().is_some_and(|t| !t.rcpts.is_empty());
        let mut rx = BdatReceiver::new(chunk as u64);
        let max = self.settings.max_message_size;
        let mut sink = Vec::new();
        let pending = self.reader.take_buffered();
        let mut progress = rx.push(&pending, Some(&mut sink));
        let mut buf = vec![0u8; READ_CHUNK];
        let timeout = self.settings.data_timeout();
        while progress == BodyProgress::More {
            let n = match tokio::time::timeout(timeout, conn.stream.read(&mut buf)).await {
                Err(_) => return Err(replies::TIMEOUT.closing()),
                Ok(Err(_)) | Ok(Ok(0)) => return Ok(Answer::Done(Flow::Close)),
                Ok(Ok(n)) => n,
            };
            progress = rx.push(&buf[..n], Some(&mut sink));
            if sink.len() > READ_CHUNK * 4 && !usable {
                sink.clear();
            }
        }
        if let BodyProgress::Done { rest } = progress {
            self.reader.push(&rest);
        }
        if !usable {
            let reply = if self.tx.is_none() {
                replies::BAD_SEQUENCE
            } else {
                replies::NO_VALID_RECIPIENTS
            };
            self.tx = None;
            return Err(reply);
        }
        let Some(tx) = &mut self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        if tx.bdat_error.is_none() {
            if max > 0 && (tx.bdat.len() + sink.len()) as u64 > max {
                tx.bdat_error = Some(BodyError::TooBig);
                tx.bdat = Vec::new();
            } else {
                tx.bdat.extend_from_slice(&sink);
            }
        }
        if !last {
            return Ok(Answer::Reply(
                SmtpReply::new(250, "2.0.0", "").with_text(format!("{chunk} octets received")),
            ));
        }
        let body = match tx.bdat_error {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut tx.bdat)),
        };
        let reply = self.finish_message(body).await;
        self.tx = None;
        reply.map(Answer::Reply)
    }

    /// Checks the complete message and makes it durable (DESIGN §3).
    async fn finish_message(
        &mut self,
        body: Result<Vec<u8>, BodyError>,
    ) -> Result<SmtpReply, SmtpReply> {
        let body = match body {
            Ok(b) => b,
            Err(BodyError::TooBig) => return Err(replies::TOO_BIG),
            Err(BodyError::LineTooLong) => return Err(replies::BODY_LINE_TOO_LONG),
        };
        // guide §12.2: maximum number of Received headers (hops), RFC 5321 §6.3.
        let max_hops = self.settings.max_received_headers;
        if max_hops > 0 && count_received(&body) > max_hops as usize {
            return Err(replies::TOO_MANY_HOPS);
        }
        if let Some(limit) = self.outgoing_limit().await?
            && body.len() as u64 > limit
        {
            return Err(replies::TOO_BIG.with_text("Message exceeds your outgoing size limit"));
        }
        let Some(tx) = self.tx.take() else {
            return Err(replies::BAD_SEQUENCE);
        };
        let now = self.now();
        let qid = new_queue_id(now);
        let single = (tx.rcpts.len() == 1).then(|| tx.rcpts[0].address.clone());
        let received = self.received_header(&qid, single.as_deref());
        let return_path = format!("Return-Path: <{}>\r\n", tx.from);

        // Local delivery: ONE deliver call and ONE blob for every local recipient, unless
        // X-Envelope-To asks for one copy per RCPT (crate notes).
        let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
        if self.settings.insert_x_envelope_to {
            for r in &tx.rcpts {
                if !r.local_users.is_empty() {
                    groups.push((Some(r.address.clone()), r.local_users.clone()));
                }
            }
        } else {
            let all: Vec<String> = tx
                .rcpts
                .iter()
                .flat_map(|r| r.local_users.iter().cloned())
                .collect();
            if !all.is_empty() {
                groups.push((None, all));
            }
        }
        let mut delivered = 0usize;
        let mut quota_failures = 0usize;
        let mut other_failures = 0usize;
        for (env_to, users) in groups {
            let mut raw = Vec::with_capacity(body.len() + 512);
            raw.extend_from_slice(return_path.as_bytes());
            raw.extend_from_slice(received.as_bytes());
            if let Some(t) = &env_to {
                raw.extend_from_slice(format!("X-Envelope-To: <{t}>\r\n").as_bytes());
            }
            raw.extend_from_slice(&body);
            let mb = self.ctx().mailboxes.clone();
            let delivery = Delivery {
                raw,
                recipients: users,
                internal_date: now,
            };
            let outcomes = blocking(move || mb.deliver(&delivery))
                .await?
                .map_err(|e| internal("local delivery", e))?;
            for o in outcomes {
                match o.result {
                    Ok(_) => delivered += 1,
                    Err(DeliveryError::QuotaExceeded { .. }) => {
                        quota_failures += 1;
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: {} over quota after DATA; not delivered",
                            o.user
                        ));
                    }
                    Err(e) => {
                        other_failures += 1;
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: delivery to {} failed: {e}",
                            o.user
                        ));
                    }
                }
            }
        }
        // Public folders (guide §12.3 `#public/Folder`).
        for r in &tx.rcpts {
            for (domain, path) in &r.public {
                let mut raw = Vec::with_capacity(body.len() + 512);
                raw.extend_from_slice(return_path.as_bytes());
                raw.extend_from_slice(received.as_bytes());
                raw.extend_from_slice(&body);
                let mb = self.ctx().mailboxes.clone();
                let owner = format!("#public@{domain}");
                let p = path.clone();
                let res = blocking(move || {
                    if mb.folder(&owner, &p)?.is_none() {
                        mb.create_folder(&owner, &p)?;
                    }
                    mb.append(&owner, &p, &raw, &[], now)
                })
                .await?;
                match res {
                    Ok(_) => delivered += 1,
                    Err(e) => {
                        other_failures += 1;
                        self.ctx().logs.warning(&format!(
                            "Queue-ID {qid}: delivery to public folder {path} failed: {e}"
                        ));
                    }
                }
            }
        }
        let remote: Vec<QueuedRecipient> = tx
            .rcpts
            .iter()
            .flat_map(|r| {
                r.remote.iter().map(|(addr, route)| {
                    let mut q = QueuedRecipient::new(addr.clone());
                    q.notify = r.notify.clone();
                    q.orcpt = r.orcpt.clone();
                    q.route = route.clone();
                    q
                })
            })
            .collect();
        if delivered == 0 && remote.is_empty() {
            return Err(if quota_failures > 0 {
                replies::MAILBOX_FULL_TEMP
            } else {
                replies::LOCAL_ERROR.server()
            });
        }
        let _ = other_failures;
        if !remote.is_empty() {
            // DESIGN §3: blob durable first, then the queue row in one transaction.
            let mut raw = Vec::with_capacity(body.len() + 512);
            raw.extend_from_slice(received.as_bytes());
            raw.extend_from_slice(&body);
            let blobs = self.ctx().blobs.clone();
            let meta = self.ctx().meta.clone();
            let msg_id = qid.clone();
            let from = tx.from.clone();
            let (envid, ret) = (tx.envid.clone(), tx.ret.clone());
            blocking(move || -> keel_store::StoreResult<()> {
                let size = raw.len() as u64;
                let blob = blobs.put(&raw)?;
                meta.enqueue(&QueuedMessage {
                    id: msg_id,
                    sender: from,
                    envid,
                    ret,
                    size,
                    blob,
                    created: now,
                    next_attempt: now,
                    recipients: remote,
                })
            })
            .await?
            .map_err(|e| internal("enqueue", e))?;
        }
        self.sh.limits.message_accepted(self.ip, now);
        let to: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
        // guide §25.3: one Recv line per accepted message.
        let mut entry = MailLogEntry::recv(
            qid.clone(),
            MailService::Smtp,
            tx.from.clone(),
            to,
            body.len() as u64,
        )
        .sender_host(self.ip)
        .ssl(self.tls);
        if let Some(a) = &self.auth {
            entry = entry.user(a.user.clone());
        }
        self.ctx().logs.mail(&entry);
        Ok(SmtpReply::new(250, "2.0.0", "").with_text(format!("Message accepted, queue id {qid}")))
    }

    /// RFC 5321 §4.4 trace header; RFC 3848 `with` keywords; guide §12.6 hiding.
    fn received_header(&self, qid: &str, single_rcpt: Option<&str>) -> String {
        let helo = self.helo.clone().unwrap_or_default();
        let helo: String = helo.chars().filter(|c| !c.is_control()).take(255).collect();
        let hide = self.settings.hide_local_ip_in_received
            && self
                .settings
                .relay_ip_group
                .as_deref()
                .is_some_and(|g| self.groups.contains(g, self.ip));
        let from = if hide {
            format!("from {helo}")
        } else {
            format!("from {helo} ([{}])", self.ip)
        };
        let proto = match (self.esmtp, self.tls, self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let date = self.ctx().clock.now().to_rfc2822();
        let mut h = format!(
            "Received: {from}\r\n\tby {} with {proto} id {qid}",
            self.hostname
        );
        if let Some(r) = single_rcpt {
            h.push_str(&format!("\r\n\tfor <{r}>"));
        }
        h.push_str(&format!("; {date}\r\n"));
        h
    }
}

/// Read-only copy of what mechanism offering needs, for `spawn_blocking`.
struct SessionRef {
    dir: Arc<keel_directory::Directory>,
    ip: IpAddr,
    tls: bool,
    service: &'static str,
    plain_ok: bool,
}

impl SessionRef {
    fn of(s: &Session) -> Self {
        Self {
            dir: s.ctx().directory.clone(),
            ip: s.ip,
            tls: s.tls,
            service: s.sh.kind.service_name(),
            // requirements-1 §12.6 / issue 3: no plaintext AUTH before TLS except on
            // loopback, unless the admin allows it.
            plain_ok: s.tls || s.ip.is_loopback() || s.settings.allow_plain_auth_without_tls,
        }
    }

    fn mechanisms(&self) -> Vec<Mechanism> {
        self.dir
            .mechanisms_offered(self.ip, self.tls, self.service)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| match m {
                Mechanism::Plain | Mechanism::Login => self.plain_ok,
                Mechanism::ScramSha256 => true,
                Mechanism::CramMd5 => false,
            })
            .collect()
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

/// RFC 3461 §4.1: the NOTIFY parameter as text.
fn notify_param(flags: u64) -> Option<String> {
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        return Some("NEVER".to_owned());
    }
    let mut v = Vec::new();
    if flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0 {
        v.push("SUCCESS");
    }
    if flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0 {
        v.push("FAILURE");
    }
    if flags & smtp_proto::RCPT_NOTIFY_DELAY != 0 {
        v.push("DELAY");
    }
    (!v.is_empty()).then(|| v.join(","))
}
