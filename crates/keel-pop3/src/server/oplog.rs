//! Operations-log lines (guide §25.6) for POP3: one `{DELETE}` per message removed at QUIT.

use keel_core::log::OperationsEvent;
use keel_mail::{INBOX, Mailboxes};

use super::{Msg, Session};

/// What a `{DELETE}` line says about one removed message.
pub(crate) struct Removed {
    from: String,
    subject: String,
    size: u64,
}

/// The first value of header `name` in `raw`, unfolded (RFC 5322 §2.2.3); empty if absent.
fn header(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = found.as_mut() {
                v.push_str(line);
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            found = Some(v.to_owned());
        }
    }
    found.map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// Reads the From and Subject of the messages about to be removed; a message that cannot
/// be read logs empty fields.
pub(crate) fn describe(mb: &Mailboxes, msgs: &[Msg]) -> Vec<Removed> {
    msgs.iter()
        .map(|m| {
            let (from, subject) = match mb.read(&m.blob) {
                Ok(raw) => (header(&raw, "From"), header(&raw, "Subject")),
                Err(_) => (String::new(), String::new()),
            };
            Removed {
                from,
                subject,
                size: m.size,
            }
        })
        .collect()
}

impl Session {
    /// One `{DELETE}` line per message removed from `user`'s INBOX.
    pub(crate) fn log_removed(&self, user: &str, removed: &[Removed]) {
        let Some(logs) = &self.ctx.logs else {
            return;
        };
        let folder = format!("~{user}/{INBOX}");
        for r in removed {
            logs.operations(&OperationsEvent::Delete {
                protocol: "POP3",
                user,
                ip: Some(self.peer.ip()),
                folder: &folder,
                from: &r.from,
                subject: &r.subject,
                delivered: None,
                size: r.size,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn header_unfolds_and_stops_at_body() {
        let raw = b"From: A <a@x>\r\nSubject: one\r\n two\r\n\r\nSubject: body\r\n";
        assert_eq!(header(raw, "from"), "A <a@x>");
        assert_eq!(header(raw, "Subject"), "one two");
        assert_eq!(header(raw, "To"), "");
    }
}
