//! The relay decision of guide §12.2 "Relay Control": anyone may send to local domains;
//! mail for other domains is relayed only for the clients the settings allow.

use super::{Session, blocking, internal};
use crate::codec::SmtpReply;

impl Session {
    /// Whether this session may send to a non-local recipient (guide §12.2). The rules are
    /// alternatives; a failed SMTP AUTH cancels the address-based ones (requirements-1
    /// §0.3; module notes for POP-before-SMTP).
    pub(super) async fn relay_allowed(&self) -> Result<bool, SmtpReply> {
        let s = &self.settings;
        if s.open_relay {
            return Ok(true);
        }
        if s.relay_authenticated && self.auth.is_some() {
            return Ok(true);
        }
        // requirements-1 §0.3 / guide §12.2: after a failed AUTH the IP-group rule no
        // longer applies in this session.
        let ip_rules_cancelled = s.relay_authenticated && self.auth_failed;
        if ip_rules_cancelled {
            return Ok(false);
        }
        if let Some(g) = &s.relay_ip_group
            && self.groups.contains(g, self.ip)
        {
            return Ok(true);
        }
        self.pop_before_smtp().await
    }

    /// guide §12.2 "Users authenticated through POP3 from the same IP address": a POP3
    /// login from this IP within the last `relay_pop_before_smtp_minutes`.
    async fn pop_before_smtp(&self) -> Result<bool, SmtpReply> {
        let Some(minutes) = self
            .settings
            .relay_pop_before_smtp_minutes
            .filter(|m| *m > 0)
        else {
            return Ok(false);
        };
        let dir = self.ctx().directory.clone();
        let ip = self.ip;
        let Some(at) = blocking(move || dir.pop3_login_at(ip))
            .await?
            .map_err(|e| internal("POP3 login time", e))?
        else {
            return Ok(false);
        };
        let window = i64::from(minutes) * 60;
        // A time slightly in the future (another process's clock) counts as "just now".
        Ok(self.now().saturating_sub(at) <= window)
    }
}
