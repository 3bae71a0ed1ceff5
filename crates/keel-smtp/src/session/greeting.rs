//! The greeting (RFC 5321 §4.3.1), the greeting delay of guide §13.6, and EHLO/HELO
//! (RFC 5321 §4.1.1.1) with the extensions offered.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_core::log::LogKind;
use keel_directory::Mechanism;
use keel_net::Conn;
use tokio::io::AsyncReadExt;

use super::{Session, blocking, write_reply};
use crate::SmtpKind;
use crate::codec::{SmtpReply, replies};

/// guide §13.6: a client that talks before the greeting is disconnected; RFC 3463 X.5.0
/// "other or undefined protocol status".
pub(super) const TALKED_BEFORE_GREETING: SmtpReply = SmtpReply::new(
    554,
    "5.5.0",
    "Protocol error: data sent before the greeting, closing connection",
);

/// What happened while the greeting was held back.
#[derive(Debug, PartialEq, Eq)]
enum Silence {
    /// The client waited: send the banner.
    Kept,
    /// The client sent bytes before the banner.
    Broken,
    /// The client went away or the server is shutting down.
    Gone,
}

impl Session {
    /// The greeting delay in force for this connection (guide §13.6): plaintext port 25
    /// only, never SMTPS (the guide) nor submission (module notes), not for the exempt
    /// IP group.
    fn greeting_delay(&self) -> Option<Duration> {
        let secs = self.settings.greeting_delay_secs;
        if secs == 0 || self.sh.kind != SmtpKind::Mx || self.tls {
            return None;
        }
        let exempt = self
            .settings
            .greeting_delay_exempt_group
            .as_deref()
            .is_some_and(|g| self.groups.contains(g, self.ip));
        (!exempt).then(|| Duration::from_secs(secs))
    }

    /// Waits out the greeting delay, then sends the banner. `false` when the session
    /// must end (the client talked first, went away, or the banner could not be sent).
    pub(super) async fn greet(&mut self, conn: &mut Conn) -> bool {
        if let Some(delay) = self.greeting_delay() {
            match wait_silently(conn, delay).await {
                Silence::Kept => {}
                Silence::Gone => return false,
                Silence::Broken => {
                    tracing::debug!("smtp {}: talked before the greeting", self.ip);
                    if self.settings.greeting_delay_report {
                        // guide §13.6 "Report the spam attack to the Security log".
                        self.ctx().logs.write(
                            LogKind::Security,
                            &format!(
                                "SMTP spam attack from {} detected: data sent before the greeting",
                                self.ip
                            ),
                        );
                    }
                    let _ = write_reply(conn, &TALKED_BEFORE_GREETING).await;
                    return false;
                }
            }
        }
        // RFC 5321 §4.3.1 greeting; no product name or version (issue 3 item 1).
        let banner = SmtpReply::new(220, "", "").with_text(format!("{} ESMTP", self.hostname));
        write_reply(conn, &banner).await.is_ok()
    }

    pub(super) async fn ehlo(&mut self, host: String, esmtp: bool) -> Result<SmtpReply, SmtpReply> {
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
        lines.push("ETRN".to_owned()); // RFC 1985 §3
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
}

/// Read-only copy of what mechanism offering needs, for `spawn_blocking`.
pub(super) struct SessionRef {
    dir: Arc<keel_directory::Directory>,
    ip: IpAddr,
    tls: bool,
    service: &'static str,
    plain_ok: bool,
}

impl SessionRef {
    pub(super) fn of(s: &Session) -> Self {
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

    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
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

/// Holds the greeting back for `delay` while watching the socket: any byte the client
/// sends meanwhile breaks the rule (guide §13.6). Reading is cancel-safe, so losing the
/// race to the timer drops nothing.
async fn wait_silently(conn: &mut Conn, delay: Duration) -> Silence {
    let mut shutdown = conn.shutdown.clone();
    if *shutdown.borrow() {
        return Silence::Gone;
    }
    let mut probe = [0u8; 64];
    tokio::select! {
        () = tokio::time::sleep(delay) => Silence::Kept,
        r = conn.stream.read(&mut probe) => match r {
            Ok(n) if n > 0 => Silence::Broken,
            _ => Silence::Gone,
        },
        _ = shutdown.changed() => Silence::Gone,
    }
}
