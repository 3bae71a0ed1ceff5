//! Operations-log lines (guide §25.6) for IMAP: `{DELETE}` per message removed from a
//! folder (EXPUNGE, UID EXPUNGE, CLOSE, MOVE), `{DELETE_FOLDER}` and `{MOVE_FOLDER}`.

use chrono::{DateTime, Utc};
use keel_core::log::OperationsEvent;
use keel_mail::{MailError, Mailboxes, MessageMeta};

use super::Session;

/// The protocol name in the log lines.
const PROTOCOL: &str = "IMAP";

/// What a `{DELETE}` line says about one removed message.
pub(crate) struct Removed {
    /// UID in the folder it left.
    pub(crate) uid: u32,
    from: String,
    subject: String,
    delivered: Option<DateTime<Utc>>,
    size: u64,
}

/// The folder's name (for the `~user/Folder` location), looked up by id.
pub(crate) fn folder_name(mb: &Mailboxes, user: &str, id: i64) -> Result<String, MailError> {
    Ok(mb
        .folders(user)?
        .into_iter()
        .find(|f| f.id == id)
        .map(|f| f.name)
        .unwrap_or_default())
}

/// Reads the From and Subject of the messages about to be removed (before the blobs may
/// go); a message that cannot be read logs empty fields.
pub(crate) fn describe(mb: &Mailboxes, metas: &[MessageMeta]) -> Vec<Removed> {
    metas
        .iter()
        .map(|m| {
            let (from, subject) = match mb.read(&m.blob) {
                Ok(raw) => {
                    let view = keel_filter::message::MessageView::new(&raw, 0);
                    (
                        view.header("From").unwrap_or_default(),
                        view.header("Subject").unwrap_or_default(),
                    )
                }
                Err(_) => (String::new(), String::new()),
            };
            Removed {
                uid: m.uid,
                from,
                subject,
                delivered: DateTime::from_timestamp(m.internal_date, 0),
                size: m.size,
            }
        })
        .collect()
}

impl Session {
    /// One `{DELETE}` line per removed message of `folder`.
    pub(crate) fn log_removed(&self, folder: &str, removed: &[Removed]) {
        let (Some(logs), Some(user)) = (&self.ctx.logs, self.account()) else {
            return;
        };
        let folder = format!("~{user}/{folder}");
        for r in removed {
            logs.operations(&OperationsEvent::Delete {
                protocol: PROTOCOL,
                user: &user,
                ip: Some(self.peer.ip()),
                folder: &folder,
                from: &r.from,
                subject: &r.subject,
                delivered: r.delivered,
                size: r.size,
            });
        }
    }

    /// `{DELETE_FOLDER}` for a deleted folder.
    pub(crate) fn log_folder_deleted(&self, folder: &str) {
        let (Some(logs), Some(user)) = (&self.ctx.logs, self.account()) else {
            return;
        };
        logs.operations(&OperationsEvent::DeleteFolder {
            folder: &format!("~{user}/{folder}"),
        });
    }

    /// `{MOVE_FOLDER}` for a renamed folder.
    pub(crate) fn log_folder_moved(&self, old: &str, new: &str, items: u64) {
        let (Some(logs), Some(user)) = (&self.ctx.logs, self.account()) else {
            return;
        };
        logs.operations(&OperationsEvent::MoveFolder {
            protocol: PROTOCOL,
            user: &user,
            ip: Some(self.peer.ip()),
            old: &format!("~{user}/{old}"),
            new: &format!("~{user}/{new}"),
            items,
        });
    }
}
