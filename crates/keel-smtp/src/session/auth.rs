//! AUTH (RFC 4954) over the shared SASL server of keel-directory; a failed AUTH cancels
//! the IP-based relay rules for the session (guide §12.2, requirements-1 §0.3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keel_core::log::AuthFailure;
use keel_directory::Mechanism;
use keel_directory::sasl::{SaslContext, SaslFailureKind, SaslServer, SaslStep};
use keel_net::Conn;

use super::greeting::SessionRef;
use super::{Answer, Session, blocking, read_line, write_reply};
use crate::codec::{Line, MAX_AUTH_LINE, SmtpReply, replies};
use crate::seclog;

/// The name of a mechanism smtp-proto parsed (its flag) for the security log.
fn mechanism_name(flag: u64) -> String {
    match flag {
        smtp_proto::AUTH_CRAM_MD5 => "CRAM-MD5".to_owned(),
        smtp_proto::AUTH_DIGEST_MD5 => "DIGEST-MD5".to_owned(),
        smtp_proto::AUTH_XOAUTH2 => "XOAUTH2".to_owned(),
        smtp_proto::AUTH_OAUTHBEARER => "OAUTHBEARER".to_owned(),
        smtp_proto::AUTH_SCRAM_SHA_1 => "SCRAM-SHA-1".to_owned(),
        smtp_proto::AUTH_GSSAPI => "GSSAPI".to_owned(),
        smtp_proto::AUTH_NTLM => "NTLM".to_owned(),
        _ => "(unknown)".to_owned(),
    }
}

impl Session {
    pub(super) async fn auth(
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
            _ => {
                // guide §25.4 "authentication method … is invalid or unknown".
                let m = mechanism_name(mechanism);
                seclog::failed_auth(&self.ctx().logs, self.ip, AuthFailure::MethodUnknown(&m));
                return Err(replies::BAD_MECHANISM);
            }
        };
        let me = SessionRef::of(self);
        let offered = blocking(move || me.mechanisms()).await?;
        if !offered.contains(&name) {
            // RFC 4954 §6: 538 when the mechanism needs encryption first.
            let needs_tls = matches!(name, Mechanism::Plain | Mechanism::Login) && !self.tls;
            self.auth_failed = true;
            // guide §25.4 "authentication method PLAIN is disabled".
            let reason = AuthFailure::MethodDisabled(name.sasl_name());
            seclog::failed_auth(&self.ctx().logs, self.ip, reason);
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
            b64 => match B64.decode(b64) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.auth_failed = true;
                    self.log_bad_auth_data();
                    return Err(replies::BAD_BASE64);
                }
            },
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
                    conn.status.set_user(Some(&user.user)); // guide §24.3 "User"
                    self.auth = Some(user);
                    return Ok(Answer::Reply(replies::AUTH_OK));
                }
                SaslStep::Failure(f) => {
                    tracing::debug!("smtp AUTH from {} failed: {}", self.ip, f.reason);
                    self.auth_failed = true; // guide §12.2 / requirements-1 §0.3
                    // Refused credentials reach the security log through the directory's
                    // security sink (with the lockout count); the other failures from here
                    // (guide §25.4 reasons).
                    return Err(match f.kind {
                        SaslFailureKind::Internal => {
                            let reason = AuthFailure::MethodError(mech_name);
                            seclog::failed_auth(&self.ctx().logs, self.ip, reason);
                            SmtpReply::new(454, "4.7.0", "Temporary authentication failure")
                        }
                        SaslFailureKind::Malformed => {
                            self.log_bad_auth_data();
                            replies::AUTH_FAILED
                        }
                        SaslFailureKind::Credentials => replies::AUTH_FAILED,
                    });
                }
            }
            match self.read_auth_response(conn).await {
                Ok(Some(d)) => client = Some(d),
                Ok(None) => {
                    self.auth_failed = true;
                    // guide §25.4 "authentication with method … cancelled by user".
                    let reason = AuthFailure::Cancelled(mech_name);
                    seclog::failed_auth(&self.ctx().logs, self.ip, reason);
                    return Err(replies::AUTH_CANCELLED);
                }
                Err(r) => {
                    if r.code == replies::BAD_BASE64.code {
                        self.auth_failed = true;
                        self.log_bad_auth_data();
                    }
                    return Err(r);
                }
            }
        }
    }

    /// guide §25.4 "missing parameter in AUTHENTICATE header": undecodable or malformed
    /// SASL data.
    fn log_bad_auth_data(&self) {
        seclog::failed_auth(&self.ctx().logs, self.ip, AuthFailure::MissingParameter);
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
}
