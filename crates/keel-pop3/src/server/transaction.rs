//! TRANSACTION state commands (RFC 1939 §5, §7).

use super::{Flow, Maildrop, Msg, Session, State};
use crate::codec::{self, Command, RespCode, Response};

/// Looks up a message by its 1-based number; deleted messages do not exist (RFC 1939 §5).
fn get(drop: &Maildrop, n: u32) -> Result<&Msg, Response> {
    let i = usize::try_from(n).unwrap_or(usize::MAX);
    match i.checked_sub(1).and_then(|i| drop.msgs.get(i)) {
        Some(m) if m.deleted => Err(Response::err(format!("message {n} already deleted"))),
        Some(m) => Ok(m),
        None => Err(Response::err("no such message")),
    }
}

/// RFC 1939 §7: unique-id of 1 to 70 characters in 0x21..0x7E, stable across sessions.
fn unique_id(drop: &Maildrop, m: &Msg) -> String {
    format!("{}.{}", drop.uid_validity, m.uid)
}

impl Session {
    pub(super) async fn transaction(&mut self, cmd: Command) -> Flow {
        let State::Transaction(drop) = &mut self.state else {
            return Flow::Continue;
        };
        let result: Result<(), Response> = match cmd {
            // RFC 1939 §5 STAT: count and size of the undeleted messages.
            Command::Stat => {
                let (n, octets) = drop
                    .msgs
                    .iter()
                    .filter(|m| !m.deleted)
                    .fold((0u64, 0u64), |(n, o), m| (n + 1, o + m.size));
                self.reply(Response::ok(format!("{n} {octets}")));
                Ok(())
            }
            // RFC 1939 §5 LIST.
            Command::List(Some(n)) => get(drop, n)
                .map(|m| format!("{n} {}", m.size))
                .map(|l| self.reply(Response::ok(l))),
            Command::List(None) => {
                let lines: Vec<String> = drop
                    .msgs
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.deleted)
                    .map(|(i, m)| format!("{} {}", i + 1, m.size))
                    .collect();
                self.multi(Response::ok(format!("{} messages", lines.len())), &lines);
                Ok(())
            }
            // RFC 1939 §7 UIDL.
            Command::Uidl(Some(n)) => get(drop, n)
                .map(|m| format!("{n} {}", unique_id(drop, m)))
                .map(|l| self.reply(Response::ok(l))),
            Command::Uidl(None) => {
                let lines: Vec<String> = drop
                    .msgs
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.deleted)
                    .map(|(i, m)| format!("{} {}", i + 1, unique_id(drop, m)))
                    .collect();
                self.multi(Response::ok(""), &lines);
                Ok(())
            }
            // RFC 1939 §5 DELE: only marks; UPDATE removes.
            Command::Dele(n) => match get(drop, n) {
                Ok(_) => {
                    if let Some(m) = drop.msgs.get_mut(n as usize - 1) {
                        m.deleted = true;
                    }
                    self.reply(Response::ok(format!("message {n} deleted")));
                    Ok(())
                }
                Err(e) => Err(e),
            },
            // RFC 1939 §5 RSET: unmark every deletion.
            Command::Rset => {
                drop.msgs.iter_mut().for_each(|m| m.deleted = false);
                let (n, octets) = drop
                    .msgs
                    .iter()
                    .fold((0u64, 0u64), |(n, o), m| (n + 1, o + m.size));
                self.reply(Response::ok(format!(
                    "maildrop has {n} messages ({octets} octets)"
                )));
                Ok(())
            }
            // RFC 1939 §5 NOOP.
            Command::Noop => {
                self.reply(Response::ok(""));
                Ok(())
            }
            Command::Retr(n) => match get(drop, n) {
                Ok(m) => {
                    let (blob, size) = (m.blob.clone(), m.size);
                    self.send_message(blob, format!("{size} octets"), None)
                        .await
                }
                Err(e) => Err(e),
            },
            // RFC 1939 §7 TOP.
            Command::Top { msg, lines } => match get(drop, msg) {
                Ok(m) => {
                    let blob = m.blob.clone();
                    self.send_message(blob, "top of message follows".into(), Some(lines))
                        .await
                }
                Err(e) => Err(e),
            },
            other => Err(Response::err(format!(
                "{} not allowed in the TRANSACTION state",
                other.keyword()
            ))),
        };
        match result {
            Ok(()) => Flow::Continue,
            Err(r) => self.fail(r),
        }
    }

    /// A multi-line response of short lines (LIST, UIDL).
    fn multi(&mut self, status: Response, lines: &[String]) {
        self.reply(status);
        for l in lines {
            codec::write_multiline_line(&mut self.out, l.as_bytes());
        }
        codec::write_multiline_end(&mut self.out);
    }

    /// RETR (RFC 1939 §5) or TOP (RFC 1939 §7): reads the blob and queues it dot-stuffed.
    async fn send_message(
        &mut self,
        blob: keel_mail::BlobId,
        status: String,
        top: Option<u32>,
    ) -> Result<(), Response> {
        let mb = self.ctx.mailboxes.clone();
        let raw = tokio::task::spawn_blocking(move || mb.read(&blob).map_err(|e| e.to_string()))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let raw = raw.map_err(|e| {
            tracing::warn!("POP3: cannot read message: {e}");
            Response::err_code(RespCode::SysTemp, "unable to read the message")
        })?;
        self.reply(Response::ok(status));
        let part = match top {
            Some(n) => codec::top_of(&raw, n),
            None => &raw,
        };
        codec::write_message_body(&mut self.out, part);
        Ok(())
    }
}
