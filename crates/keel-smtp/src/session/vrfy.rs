//! VRFY and EXPN (RFC 5321 §3.5), both off by default (issue 3 item 1): VRFY then
//! answers 252 (RFC 5321 §3.5.3) and EXPN 502. When enabled they answer from the same
//! directory resolution as RCPT, and an address that does not resolve counts toward the
//! directory-harvest limit of guide §12.2 exactly like an unknown RCPT.

use keel_directory::{Resolution, Target};

use super::{Session, blocking, internal};
use crate::codec::{SmtpReply, replies};

/// 550 5.1.1 for an address outside the local domains: VRFY/EXPN only describe local
/// mailboxes (RFC 5321 §3.5.3 lets a server refuse to verify).
const NOT_LOCAL: SmtpReply = SmtpReply::new(550, "5.1.1", "Not a local address");

impl Session {
    /// RFC 5321 §3.5.1: VRFY names a user or a mailbox; 250 with the mailbox when it
    /// resolves locally, 550 5.1.1 otherwise.
    pub(super) async fn vrfy(&mut self, arg: &str) -> Result<SmtpReply, SmtpReply> {
        if !self.settings.enable_vrfy {
            // RFC 5321 §3.5.3: "252 Cannot VRFY user, but will accept message".
            return Ok(replies::CANNOT_VRFY);
        }
        let (address, targets) = self.resolve_for_query(arg).await?;
        if targets.is_empty() {
            return Err(replies::NO_SUCH_USER.with_text(format!("<{address}> not found")));
        }
        Ok(SmtpReply::new(250, "2.1.5", "").with_text(format!("<{address}>")))
    }

    /// RFC 5321 §3.5.2: EXPN lists the members of a mailing list, one mailbox per line
    /// of a multi-line 250 reply; here, every final target of the address.
    pub(super) async fn expn(&mut self, arg: &str) -> Result<SmtpReply, SmtpReply> {
        if !self.settings.enable_expn {
            return Err(replies::NOT_IMPLEMENTED);
        }
        let (address, targets) = self.resolve_for_query(arg).await?;
        if targets.is_empty() {
            return Err(replies::NO_SUCH_USER.with_text(format!("<{address}> not found")));
        }
        let lines: Vec<String> = targets
            .iter()
            .map(|t| match t {
                Target::LocalUser { user, .. } => format!("<{user}>"),
                Target::External { address } | Target::Forwarded { address, .. } => {
                    format!("<{address}>")
                }
                Target::PublicFolder { domain, path } => {
                    format!("Public folder #public/{path} of {domain}")
                }
            })
            .collect();
        Ok(SmtpReply::new(250, "2.1.5", "").with_text(lines.join("\n")))
    }

    /// Resolves a VRFY/EXPN argument: `<mailbox>`, `Name <mailbox>`, `mailbox` or a bare
    /// user name (the primary domain's, requirements-1 §0.6). Empty targets mean "does
    /// not resolve", already counted for the harvest limit. Errors: syntax, harvest
    /// block, not local.
    async fn resolve_for_query(&mut self, arg: &str) -> Result<(String, Vec<Target>), SmtpReply> {
        if !self.exempt && self.sh.limits.is_blocked(None, self.ip, self.now()) {
            return Err(replies::HARVEST_BLOCKED_RCPT);
        }
        let mut address = query_address(arg).ok_or(replies::SYNTAX)?;
        let dir = self.ctx().directory.clone();
        if !address.contains('@') {
            let d = dir.clone();
            let primary = blocking(move || d.primary_domain())
                .await?
                .map_err(|e| internal("primary domain", e))?;
            match primary {
                Some(p) => address = format!("{address}@{p}"),
                None => {
                    self.count_unknown_recipient().await;
                    return Ok((address, Vec::new()));
                }
            }
        }
        let a = address.clone();
        let resolution = blocking(move || dir.resolve_recipient(&a))
            .await?
            .map_err(|_| replies::BAD_RECIPIENT)?;
        match resolution {
            Resolution::Deliver { targets, .. } if !targets.is_empty() => Ok((address, targets)),
            Resolution::NotLocal => Err(NOT_LOCAL),
            Resolution::Deliver { .. } | Resolution::NotFound => {
                // guide §12.2: counted like an unknown RCPT (module notes).
                self.count_unknown_recipient().await;
                Ok((address, Vec::new()))
            }
        }
    }
}

/// The mailbox of a VRFY/EXPN argument, lower-cased; `None` when empty or malformed.
fn query_address(arg: &str) -> Option<String> {
    let arg = arg.trim();
    let inner = match (arg.rfind('<'), arg.rfind('>')) {
        (Some(l), Some(r)) if l < r => &arg[l + 1..r],
        (None, None) => arg,
        _ => return None,
    };
    let inner = inner.trim();
    if inner.is_empty() || inner.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(inner.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::query_address;

    #[test]
    fn query_argument_forms() {
        assert_eq!(query_address("alice").as_deref(), Some("alice"));
        assert_eq!(
            query_address("<Alice@Example.com>").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            query_address("Alice Smith <alice@example.com>").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(query_address(""), None);
        assert_eq!(query_address("<a@b"), None);
        assert_eq!(query_address("two words"), None);
    }
}
