//! AUTHORIZATION state: USER/PASS (RFC 1939 §7), AUTH (RFC 5034), and entering TRANSACTION
//! with the maildrop lock (RFC 1939 §8, RFC 2449 §8.1.1).

use keel_directory::sasl::{SaslContext, SaslError, SaslFailureKind, SaslServer, SaslStep};
use keel_directory::{AuthError, AuthRequest, AuthedUser, Credential, Mechanism, SecurityMode};
use keel_net::Conn;

use super::{Flow, Input, Maildrop, Msg, SERVICE_NAME, Session, State};
use crate::codec::{self, RespCode, Response, SaslResponse};

/// Mechanisms this server implements (the directory may enable others, e.g. CRAM-MD5, that
/// need secrets Keel does not keep).
pub(crate) const SUPPORTED: [Mechanism; 3] =
    [Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login];

/// Why the policy refuses plaintext logins here (guide §12.6).
const ENCRYPTION_REQUIRED: &str =
    "plaintext login refused: the security policy requires an encrypted connection (use STLS)";
const SECURE_AUTH_REQUIRED: &str = "plaintext password refused: the security policy requires secure \
     authentication (use STLS or AUTH SCRAM-SHA-256)";

impl Session {
    fn sasl_context(&self) -> SaslContext {
        SaslContext {
            client_ip: keel_net::canonical_ip(self.peer.ip()),
            local_ip: Some(keel_net::canonical_ip(self.local.ip())),
            secure: self.tls,
            service: SERVICE_NAME.to_owned(),
        }
    }

    /// The mechanisms the directory offers on this connection (policy and exempt group
    /// applied), in the order of preference.
    pub(super) async fn offered(&self) -> Result<Vec<Mechanism>, String> {
        let dir = self.ctx.mailboxes.directory().clone();
        let c = self.sasl_context();
        tokio::task::spawn_blocking(move || {
            dir.mechanisms_offered(c.client_ip, c.secure, &c.service)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    }

    /// The `-ERR` for a plaintext password the policy refuses.
    async fn policy_refusal(&self) -> Response {
        let dir = self.ctx.mailboxes.directory().clone();
        let mode = tokio::task::spawn_blocking(move || dir.security_policy().map(|p| p.mode))
            .await
            .ok()
            .and_then(Result::ok);
        match mode {
            Some(SecurityMode::RequireEncryptedConnection) => Response::err(ENCRYPTION_REQUIRED),
            _ => Response::err(SECURE_AUTH_REQUIRED),
        }
    }

    /// Whether USER/PASS may be used here; otherwise the refusal to send.
    async fn plaintext_allowed(&self) -> Result<(), Response> {
        match self.offered().await {
            Ok(m) if m.contains(&Mechanism::Plain) => Ok(()),
            Ok(_) => Err(self.policy_refusal().await),
            Err(e) => {
                tracing::warn!("POP3: security policy unavailable: {e}");
                Err(Response::err_code(
                    RespCode::SysTemp,
                    "authentication temporarily unavailable",
                ))
            }
        }
    }

    /// RFC 1939 §7 USER. The answer never tells whether the name exists.
    pub(super) async fn user(&mut self, name: String) -> super::Flow {
        if let Err(r) = self.plaintext_allowed().await {
            return self.fail(r);
        }
        self.state = State::Authorization { user: Some(name) };
        self.reply(Response::ok("send PASS"));
        Flow::Continue
    }

    /// RFC 1939 §7 PASS, checked by the directory (lockout, disabled, login rules, security
    /// log all happen there).
    pub(super) async fn pass(&mut self, pw: String) -> Flow {
        let State::Authorization { user } = &mut self.state else {
            return Flow::Continue;
        };
        // RFC 1939 §7: PASS only right after a successful USER.
        let Some(login) = user.take() else {
            return self.fail(Response::err("USER first"));
        };
        if let Err(r) = self.plaintext_allowed().await {
            return self.fail(r);
        }
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
            Ok(u) => self.enter_transaction(u).await,
            Err(e) => {
                self.debug(&format!("login failed: {e}"));
                self.fail(auth_error_response(&e))
            }
        }
    }

    /// RFC 5034 §4 AUTH.
    pub(super) async fn auth(
        &mut self,
        conn: &mut Conn,
        mechanism: Option<String>,
        initial: Option<String>,
    ) -> Flow {
        let Some(mechanism) = mechanism else {
            // Without a mechanism: the list, as RFC 1734 clients expect.
            let mechs = self.offered().await.unwrap_or_default();
            self.reply(Response::ok("supported SASL mechanisms follow"));
            for m in mechs.iter().filter(|m| SUPPORTED.contains(m)) {
                codec::write_multiline_line(&mut self.out, m.sasl_name().as_bytes());
            }
            codec::write_multiline_end(&mut self.out);
            return Flow::Continue;
        };
        let mut first = match initial.as_deref().map(codec::parse_initial_response) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => return self.fail(Response::err("invalid base64 in initial response")),
        };
        let dir = self.ctx.mailboxes.directory().clone();
        let ctx = self.sasl_context();
        let started = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || SaslServer::start(&dir, &mechanism, ctx))
                .await
                .unwrap_or_else(|e| Err(SaslError::Internal(e.to_string())))
        };
        let mut sasl = match started {
            Ok(s) => s,
            Err(SaslError::MechanismUnavailable(m))
                if matches!(m.as_str(), "PLAIN" | "LOGIN") && !self.tls =>
            {
                let r = self.policy_refusal().await;
                return self.fail(r);
            }
            Err(SaslError::Internal(e)) => {
                tracing::warn!("POP3 AUTH: {e}");
                return self.fail(Response::err_code(
                    RespCode::SysTemp,
                    "authentication temporarily unavailable",
                ));
            }
            Err(e) => return self.fail(Response::err(e.to_string())),
        };
        loop {
            let data = first.take();
            let dir2 = dir.clone();
            let (back, step) = match tokio::task::spawn_blocking(move || {
                let step = sasl.step(&dir2, data.as_deref());
                (sasl, step)
            })
            .await
            {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("POP3 AUTH task failed: {e}");
                    return self.fail(Response::err_code(
                        RespCode::SysTemp,
                        "authentication temporarily unavailable",
                    ));
                }
            };
            sasl = back;
            match step {
                SaslStep::Challenge(c) => {
                    codec::write_challenge(&mut self.out, &c);
                    self.debug("S: + <challenge>");
                    match self.sasl_line(conn).await {
                        Ok(d) => first = Some(d),
                        Err(flow) => return flow,
                    }
                }
                SaslStep::Success { user, server_final } => {
                    if let Some(fin) = server_final {
                        // RFC 5034 §4: additional data with success goes in a last
                        // challenge, answered by an empty line.
                        codec::write_challenge(&mut self.out, &fin);
                        self.debug("S: + <server-final>");
                        match self.sasl_line(conn).await {
                            Ok(d) if d.is_empty() => {}
                            Ok(_) => {
                                return self.fail(Response::err(
                                    "expected an empty response after the server's final data",
                                ));
                            }
                            Err(flow) => return flow,
                        }
                    }
                    return self.enter_transaction(user).await;
                }
                SaslStep::Failure(f) => {
                    self.debug(&format!("AUTH failed: {}", f.reason));
                    return self.fail(match f.kind {
                        SaslFailureKind::Internal => Response::err_code(
                            RespCode::SysTemp,
                            "authentication temporarily unavailable",
                        ),
                        SaslFailureKind::Malformed | SaslFailureKind::Credentials => {
                            Response::err_code(RespCode::Auth, AuthError::PUBLIC_MESSAGE)
                        }
                    });
                }
            }
        }
    }

    /// Reads one SASL client line. `Err` carries the flow when the exchange ended (cancel,
    /// bad data, connection gone).
    async fn sasl_line(&mut self, conn: &mut Conn) -> Result<Vec<u8>, Flow> {
        if !self.flush(conn).await {
            return Err(Flow::Close);
        }
        match self.read_line(conn, self.limits.max_sasl_line).await {
            Input::Line(l) => {
                self.debug("C: ***");
                match codec::parse_sasl_response(&l) {
                    Ok(SaslResponse::Data(d)) => Ok(d),
                    // RFC 5034 §4: "*" cancels; the server answers -ERR.
                    Ok(SaslResponse::Cancel) => {
                        Err(self.fail(Response::err("authentication cancelled")))
                    }
                    Err(_) => Err(self.fail(Response::err("invalid base64 in SASL response"))),
                }
            }
            Input::TooLong => Err(self.fail(Response::err(format!(
                "SASL response too long (limit {} octets)",
                self.limits.max_sasl_line
            )))),
            Input::Timeout => {
                self.reply(Response::err("idle timeout, closing connection"));
                Err(Flow::Close)
            }
            Input::Shutdown => {
                self.shutting_down();
                Err(Flow::Close)
            }
            Input::Closed => Err(Flow::Close),
        }
    }

    /// Locks the maildrop and snapshots INBOX (RFC 1939 §4, §8; guide §6.2).
    async fn enter_transaction(&mut self, user: AuthedUser) -> Flow {
        self.record_login_for_relay().await;
        let Some(lock) = self.ctx.mailboxes.lock_maildrop(&user.user) else {
            // RFC 2449 §8.1.1; the session stays in AUTHORIZATION.
            self.state = State::Authorization { user: None };
            return self.fail(Response::err_code(
                RespCode::InUse,
                "maildrop already locked by another session",
            ));
        };
        let mb = self.ctx.mailboxes.clone();
        let key = user.user.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let inbox = mb.inbox(&key)?;
            let msgs = mb.messages(inbox.id)?;
            Ok::<_, keel_mail::MailError>((inbox, msgs))
        })
        .await;
        let (inbox, msgs) = match loaded {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::warn!(user = %user.user, "POP3: cannot open maildrop: {e}");
                return self.fail(Response::err_code(
                    RespCode::SysTemp,
                    "unable to open the maildrop",
                ));
            }
            Err(e) => {
                tracing::warn!(user = %user.user, "POP3: maildrop task failed: {e}");
                return self.fail(Response::err_code(
                    RespCode::SysTemp,
                    "unable to open the maildrop",
                ));
            }
        };
        let msgs: Vec<Msg> = msgs
            .into_iter()
            .map(|m| Msg {
                uid: m.uid,
                blob: m.blob,
                size: m.size,
                deleted: false,
            })
            .collect();
        let octets: u64 = msgs.iter().map(|m| m.size).sum();
        self.debug(&format!("authenticated as {}", user.user));
        // guide §24.3 "User"; §24.4: the locked maildrop is the owner's INBOX while held.
        self.status.set_user(Some(&user.user));
        self.status
            .set_folder(Some(&format!("~{}/{}", inbox.account, inbox.name)));
        self.reply(Response::ok(format!(
            "{} has {} messages ({octets} octets)",
            user.user,
            msgs.len()
        )));
        self.state = State::Transaction(Box::new(Maildrop {
            user,
            folder_id: inbox.id,
            uid_validity: inbox.uid_validity,
            msgs,
            _lock: lock,
        }));
        Flow::Continue
    }
}

impl Session {
    /// guide §12.2 POP-before-SMTP: every successful authentication (USER/PASS and
    /// SASL AUTH alike) records the client IP and time in the directory, where the SMTP relay
    /// decision finds it. A failure to record is logged and does not refuse the login.
    async fn record_login_for_relay(&self) {
        let dir = self.ctx.mailboxes.directory().clone();
        let ip = keel_net::canonical_ip(self.peer.ip());
        match tokio::task::spawn_blocking(move || dir.record_pop3_login(ip)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("POP3: cannot record the login from {ip}: {e}"),
            Err(e) => tracing::warn!("POP3: recording the login from {ip} failed: {e}"),
        }
    }
}

/// One generic answer for every credential problem (AuthError::PUBLIC_MESSAGE) so that a
/// peer cannot tell a wrong password from an unknown user or a locked account; directory
/// failures are temporary (RFC 3206 §4, §5).
fn auth_error_response(e: &AuthError) -> Response {
    match e {
        AuthError::Internal(_) => {
            Response::err_code(RespCode::SysTemp, "authentication temporarily unavailable")
        }
        _ => Response::err_code(RespCode::Auth, AuthError::PUBLIC_MESSAGE),
    }
}
