//! Session commands: CAPABILITY (RFC 9051 §6.1.1), ID (RFC 2971), LOGIN (§6.2.3),
//! AUTHENTICATE (§6.2.2, SASL-IR RFC 4959) and ENABLE (RFC 5161, RFC 9051 §6.3.1).

use keel_directory::sasl::{SaslContext, SaslError, SaslFailureKind, SaslServer, SaslStep};
use keel_directory::{AuthError, AuthRequest, AuthedUser, Credential, Mechanism};
use keel_net::Conn;

use crate::codec::{Code, Continue, Data, EncodeOptions, Event, SaslResponse};
use crate::server::{CmdResult, Flow, Input, Reply, SERVICE_NAME, Session, ok, ok_code};

/// Mechanisms this server implements (the directory may enable others it cannot run).
const SUPPORTED: [Mechanism; 3] = [Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login];

/// Capabilities that do not depend on state or policy, each implemented here.
const STATIC_CAPS: &[&str] = &[
    "SASL-IR",            // RFC 4959
    "ENABLE",             // RFC 5161
    "IDLE",               // RFC 2177
    "NAMESPACE",          // RFC 2342
    "UIDPLUS",            // RFC 4315
    "MOVE",               // RFC 6851
    "ID",                 // RFC 2971
    "LITERAL+",           // RFC 7888
    "SPECIAL-USE",        // RFC 6154
    "CREATE-SPECIAL-USE", // RFC 6154 §3
    "CHILDREN",           // RFC 3348
    "UNSELECT",           // RFC 3691
    "ESEARCH",            // RFC 4731
    "SEARCHRES",          // RFC 5182
    "CONDSTORE",          // RFC 7162
    "QRESYNC",            // RFC 7162
    "QUOTA",              // RFC 9208
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "STATUS=SIZE",           // RFC 8438
    "MULTIAPPEND",           // RFC 3502
    "LIST-EXTENDED",         // RFC 5258
    "LIST-STATUS",           // RFC 5819
    "UTF8=ACCEPT",           // RFC 6855
    "WITHIN",                // RFC 5032
    "SORT",                  // RFC 5256 §3
    "SORT=DISPLAY",          // RFC 5957
    "ESORT",                 // RFC 5267 §3
    "THREAD=ORDEREDSUBJECT", // RFC 5256 §3
    "THREAD=REFERENCES",     // RFC 5256 §3
    "BINARY",                // RFC 3516
    "ACL",                   // RFC 4314
    "RIGHTS=texk",           // RFC 4314 §2.1.1
];

impl Session {
    fn sasl_context(&self) -> SaslContext {
        SaslContext {
            client_ip: keel_net::canonical_ip(self.peer.ip()),
            local_ip: Some(keel_net::canonical_ip(self.local.ip())),
            secure: self.tls,
            service: SERVICE_NAME.to_owned(),
        }
    }

    /// The mechanisms the directory offers here (policy and exempt group applied).
    async fn offered(&self) -> Vec<Mechanism> {
        let dir = self.ctx.mailboxes.directory().clone();
        let c = self.sasl_context();
        tokio::task::spawn_blocking(move || {
            dir.mechanisms_offered(c.client_ip, c.secure, &c.service)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
    }

    /// The CAPABILITY list for the current state (RFC 9051 §7.2.2).
    pub(crate) async fn capabilities(&self) -> Vec<String> {
        let mut caps = vec!["IMAP4rev1".to_owned(), "IMAP4rev2".to_owned()];
        if self.user.is_none() {
            if !self.tls {
                caps.push("STARTTLS".into()); // RFC 9051 §6.2.1
            }
            let offered = self.offered().await;
            // RFC 9051 §6.2.3: LOGIN is PLAIN-equivalent; the policy decides.
            if !offered.contains(&Mechanism::Plain) {
                caps.push("LOGINDISABLED".into());
            }
            for m in offered.iter().filter(|m| SUPPORTED.contains(m)) {
                caps.push(format!("AUTH={}", m.sasl_name()));
            }
        }
        caps.extend(STATIC_CAPS.iter().map(|s| (*s).to_owned()));
        // RFC 7889 §2: the largest message APPEND accepts.
        caps.push(format!("APPENDLIMIT={}", self.ctx.limits.max_literal));
        caps
    }

    pub(crate) async fn capability_cmd(&mut self) -> CmdResult {
        let caps = self.capabilities().await;
        self.data(Data::Capability(caps));
        ok("CAPABILITY completed")
    }

    /// RFC 2971 §3.2: the server's ID (no version, guide §12.6).
    pub(crate) fn id_cmd(&mut self) -> CmdResult {
        self.data(Data::Id(Some(vec![("name".into(), Some("Keel".into()))])));
        ok("ID completed")
    }

    /// RFC 9051 §6.2.3 LOGIN.
    pub(crate) async fn login(&mut self, username: Vec<u8>, password: Vec<u8>) -> CmdResult {
        if !self.offered().await.contains(&Mechanism::Plain) {
            return Err(Reply::no("plaintext login is disabled here; use STARTTLS")
                .code(Code::PrivacyRequired));
        }
        let (Ok(login), Ok(pw)) = (String::from_utf8(username), String::from_utf8(password)) else {
            return Err(Reply::no(AuthError::PUBLIC_MESSAGE).code(Code::AuthenticationFailed));
        };
        let dir = self.ctx.mailboxes.directory().clone();
        let c = self.sasl_context();
        let result = tokio::task::spawn_blocking(move || {
            dir.authenticate(&AuthRequest {
                login: &login,
                secret: Credential::Plain(&pw),
                client_ip: c.client_ip,
                secure_channel: c.secure,
                mechanism: Mechanism::Plain,
                service: &c.service,
                local_ip: c.local_ip,
            })
        })
        .await
        .unwrap_or_else(|e| Err(AuthError::Internal(e.to_string())));
        match result {
            Ok(u) => self.logged_in(u).await,
            Err(e) => {
                self.debug(&format!("login failed: {e}"));
                Err(auth_failure(&e))
            }
        }
    }

    async fn logged_in(&mut self, user: AuthedUser) -> CmdResult {
        self.debug(&format!("authenticated as {}", user.user));
        let key = user.user.clone();
        // New accounts get their default folders (issue 4 §2).
        let _ = self
            .blocking(move |mb| mb.ensure_default_folders(&key))
            .await;
        self.status.set_user(Some(&user.user)); // guide §24.3 "User"
        self.user = Some(user);
        let caps = self.capabilities().await;
        // RFC 9051 §6.2.3: a CAPABILITY code with the post-login list.
        ok_code(Code::Capability(caps), "LOGIN completed")
    }

    /// RFC 9051 §6.2.2 AUTHENTICATE, with SASL-IR (RFC 4959).
    pub(crate) async fn authenticate(
        &mut self,
        conn: &mut Conn,
        mechanism: String,
        initial: Option<Vec<u8>>,
    ) -> Result<CmdResult, Flow> {
        let dir = self.ctx.mailboxes.directory().clone();
        let ctx = self.sasl_context();
        let started = {
            let dir = dir.clone();
            let m = mechanism.clone();
            tokio::task::spawn_blocking(move || SaslServer::start(&dir, &m, ctx))
                .await
                .unwrap_or_else(|e| Err(SaslError::Internal(e.to_string())))
        };
        let mut sasl = match started {
            Ok(s) => s,
            Err(SaslError::MechanismUnavailable(_)) => {
                return Ok(Err(Reply::no("mechanism not available on this connection")
                    .code(Code::PrivacyRequired)));
            }
            Err(SaslError::UnknownMechanism(_)) => {
                return Ok(Err(
                    Reply::no("unsupported authentication mechanism").code(Code::Cannot)
                ));
            }
            Err(SaslError::Internal(e)) => return Ok(Err(Reply::server(e))),
        };
        let mut data = initial;
        loop {
            let d = data.take();
            let dir2 = dir.clone();
            let (back, step) = match tokio::task::spawn_blocking(move || {
                let step = sasl.step(&dir2, d.as_deref());
                (sasl, step)
            })
            .await
            {
                Ok(x) => x,
                Err(e) => return Ok(Err(Reply::server(e))),
            };
            sasl = back;
            match step {
                SaslStep::Challenge(c) => {
                    self.send(Continue::Base64(c));
                    match self.sasl_line(conn).await? {
                        Some(d) => data = Some(d),
                        None => return Ok(Err(Reply::bad("authentication cancelled"))),
                    }
                }
                SaslStep::Success { user, server_final } => {
                    if let Some(fin) = server_final {
                        // RFC 9051 §6.2.2: additional data with success may go in the
                        // OK, but a final challenge works with every client.
                        self.send(Continue::Base64(fin));
                        match self.sasl_line(conn).await? {
                            Some(d) if d.is_empty() => {}
                            Some(_) => {
                                return Ok(Err(Reply::bad(
                                    "expected an empty response after the server's final data",
                                )));
                            }
                            None => return Ok(Err(Reply::bad("authentication cancelled"))),
                        }
                    }
                    let r = self.logged_in(user).await;
                    return Ok(r.map(|mut d| {
                        d.text = "AUTHENTICATE completed".into();
                        d
                    }));
                }
                SaslStep::Failure(f) => {
                    self.debug(&format!("AUTHENTICATE failed: {}", f.reason));
                    return Ok(Err(match f.kind {
                        SaslFailureKind::Internal => Reply::server(f.reason),
                        SaslFailureKind::Malformed => Reply::bad("malformed authentication data"),
                        SaslFailureKind::Credentials => {
                            Reply::no(AuthError::PUBLIC_MESSAGE).code(Code::AuthenticationFailed)
                        }
                    }));
                }
            }
        }
    }

    /// Reads one SASL line; `Ok(None)` when the client cancelled with `*`.
    async fn sasl_line(&mut self, conn: &mut Conn) -> Result<Option<Vec<u8>>, Flow> {
        if !self.flush(conn).await {
            return Err(Flow::Close);
        }
        self.rx.expect_sasl_line();
        match self.next_input(conn).await {
            Input::Event(Event::AuthenticateResponse(SaslResponse::Data(d))) => Ok(Some(d)),
            Input::Event(Event::AuthenticateResponse(SaslResponse::Cancel)) => Ok(None),
            Input::Event(_) | Input::Error(_) => {
                self.rx.expect_command();
                Ok(None)
            }
            Input::Closed => Err(Flow::Close),
            Input::Timeout | Input::Shutdown => {
                self.send(crate::codec::StatusResponse::bye("closing"));
                Err(Flow::Close)
            }
        }
    }

    /// RFC 5161 §3.1 ENABLE; RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
    pub(crate) fn enable(&mut self, caps: Vec<String>) -> CmdResult {
        let mut done = Vec::new();
        for c in caps {
            let slot = match c.as_str() {
                "CONDSTORE" => &mut self.enabled.condstore,
                "QRESYNC" => {
                    self.enabled.condstore = true;
                    &mut self.enabled.qresync
                }
                "UTF8=ACCEPT" => &mut self.enabled.utf8,
                "IMAP4REV2" => {
                    self.enabled.utf8 = true;
                    &mut self.enabled.rev2
                }
                _ => continue,
            };
            if !*slot {
                *slot = true;
                done.push(if c == "IMAP4REV2" {
                    "IMAP4rev2".to_owned()
                } else {
                    c
                });
            }
        }
        // RFC 6855 §3 / RFC 9051 §5.1: UTF-8 mailbox names from now on.
        if self.enabled.utf8 {
            self.opts = EncodeOptions::utf8();
            self.rx.set_utf8(true);
        }
        self.data(Data::Enabled(done));
        ok("ENABLE completed")
    }
}

/// One answer for every credential problem so that a peer cannot tell a wrong password
/// from an unknown user or a locked account (RFC 5530 AUTHENTICATIONFAILED).
fn auth_failure(e: &AuthError) -> Reply {
    match e {
        AuthError::Internal(_) => {
            Reply::no("authentication temporarily unavailable").code(Code::Unavailable)
        }
        _ => Reply::no(AuthError::PUBLIC_MESSAGE).code(Code::AuthenticationFailed),
    }
}
