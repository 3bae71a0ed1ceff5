//! Delivery status notifications: RFC 3464 `multipart/report; report-type=delivery-status`
//! messages built with mail-builder, honouring the RFC 3461 parameters kept in the queue
//! (NOTIFY per recipient, RET and ENVID per message).
//!
//! Implementation notes:
//! - Structure (RFC 6522 §3, RFC 3464 §2): a human-readable `text/plain` part rendered
//!   from the admin's template ([`crate::settings::DsnTemplates`], guide §12.2 "Report
//!   language", with `Content-Language`), a `message/delivery-status` part, and the
//!   original as `message/rfc822` (RET=FULL) or `text/rfc822-headers` (RET=HDRS).
//! - When RET is absent (RFC 3461 §4.3 leaves it to the MTA) failure reports return the
//!   full message and delay and success reports only the headers.
//! - The report is From `MAILER-DAEMON@<hostname>` and is sent with the null return path
//!   (RFC 3461 §6.2, RFC 5321 §4.5.5), so a DSN never causes another DSN. It carries
//!   `Auto-Submitted: auto-replied` (RFC 3834 §5).
//! - [`wants`] implements the NOTIFY rules of RFC 3461 §4.1: absent → FAILURE and DELAY
//!   (our choice for the default, which the RFC allows), `NEVER` → nothing.

use chrono::DateTime;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::settings::DsnTemplates;

/// The kind of report (the `Report:` of the mail log, requirements-2 §25.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// Delivery failed permanently (RFC 3464 action `failed`).
    Failed,
    /// Delivery delayed, still trying (action `delayed`).
    Delayed,
    /// Delivered (action `delivered`) or relayed to a server without DSN support
    /// (action `relayed`, RFC 3461 §6.2.2).
    Delivered,
}

impl DsnKind {
    /// The NOTIFY keyword that asks for this kind (RFC 3461 §4.1).
    pub fn notify_keyword(self) -> &'static str {
        match self {
            Self::Failed => "FAILURE",
            Self::Delayed => "DELAY",
            Self::Delivered => "SUCCESS",
        }
    }
}

/// Whether a recipient's NOTIFY parameter asks for a report of this kind (RFC 3461 §4.1).
/// Without NOTIFY we report failures and delays (the default the RFC allows).
pub fn wants(notify: Option<&str>, kind: DsnKind) -> bool {
    match notify {
        None => matches!(kind, DsnKind::Failed | DsnKind::Delayed),
        Some(n) => n
            .split(',')
            .any(|k| k.trim().eq_ignore_ascii_case(kind.notify_keyword())),
    }
}

/// RFC 3464 §2.3.3 `Action:` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// `failed`
    Failed,
    /// `delayed`
    Delayed,
    /// `delivered`
    Delivered,
    /// `relayed`
    Relayed,
}

impl DsnAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::Delivered => "delivered",
            Self::Relayed => "relayed",
        }
    }
}

/// One recipient of a report (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The envelope recipient (`Final-Recipient`).
    pub address: String,
    /// The ORCPT parameter as queued (`rfc822;a@b`), for `Original-Recipient`.
    pub orcpt: Option<String>,
    /// What happened.
    pub action: DsnAction,
    /// Enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: String,
    /// The remote server, for `Remote-MTA`.
    pub remote_mta: Option<String>,
    /// The remote reply or local reason, for `Diagnostic-Code: smtp; …`.
    pub diagnostic: Option<String>,
}

/// Everything a report needs.
#[derive(Debug, Clone)]
pub struct DsnRequest<'a> {
    /// Kind of report.
    pub kind: DsnKind,
    /// The Internet hostname (`Reporting-MTA`, `MAILER-DAEMON@…`).
    pub hostname: &'a str,
    /// Queue id of the original message.
    pub queue_id: &'a str,
    /// The original envelope sender, who gets the report.
    pub sender: &'a str,
    /// ENVID of the original (RFC 3461 §4.4).
    pub envid: Option<&'a str>,
    /// RET of the original (RFC 3461 §4.3): `FULL` or `HDRS`.
    pub ret: Option<&'a str>,
    /// The original message bytes.
    pub original: &'a [u8],
    /// When the original was queued (Unix seconds; `Arrival-Date`).
    pub arrival: i64,
    /// Now (Unix seconds; `Date`, `Last-Attempt-Date`).
    pub now: i64,
    /// Bounce deadline for delay warnings (`Will-Retry-Until`).
    pub retry_until: Option<i64>,
    /// Report language (`Content-Language`).
    pub language: &'a str,
    /// Texts.
    pub templates: &'a DsnTemplates,
    /// The recipients reported on.
    pub recipients: Vec<DsnRecipient>,
}

fn rfc2822(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc2822()
}

/// The header block of a message (up to the first empty line).
pub fn header_block(raw: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"\r\n\r\n") {
            return &raw[..i + 2];
        }
        if raw[i..].starts_with(b"\n\n") {
            return &raw[..i + 1];
        }
        i += 1;
    }
    raw
}

fn original_subject(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse_headers(header_block(raw))
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_default()
}

fn render(template: &str, req: &DsnRequest<'_>, subject: &str, recipients: &str) -> String {
    template
        .replace("{hostname}", req.hostname)
        .replace("{sender}", req.sender)
        .replace("{queue_id}", req.queue_id)
        .replace("{subject}", subject)
        .replace("{recipients}", recipients)
        .replace("{created}", &rfc2822(req.arrival))
        .replace(
            "{retry_until}",
            &req.retry_until.map(rfc2822).unwrap_or_default(),
        )
}

/// Keeps header-safe text: no CR/LF, printable ASCII (DSN fields are ASCII, RFC 3464 §2.1.2).
fn field(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Builds the report. Returns the RFC 5322 bytes.
pub fn build(req: &DsnRequest<'_>) -> Vec<u8> {
    let subject = original_subject(req.original);
    let (subject_t, body_t) = match req.kind {
        DsnKind::Failed => (&req.templates.failed_subject, &req.templates.failed),
        DsnKind::Delayed => (&req.templates.delayed_subject, &req.templates.delayed),
        DsnKind::Delivered => (&req.templates.delivered_subject, &req.templates.delivered),
    };
    let lines: Vec<String> = req
        .recipients
        .iter()
        .map(|r| match &r.diagnostic {
            Some(d) => format!("<{}>: {}", r.address, d),
            None => format!("<{}>: {}", r.address, r.status),
        })
        .collect();
    let human = render(body_t, req, &subject, &lines.join("\n"));
    let subject_line = render(subject_t, req, &subject, "");

    // RFC 3464 §2.2: per-message fields.
    let mut status = String::new();
    status.push_str(&format!("Reporting-MTA: dns; {}\r\n", field(req.hostname)));
    if let Some(envid) = req.envid {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", field(envid)));
    }
    status.push_str(&format!("Arrival-Date: {}\r\n", rfc2822(req.arrival)));
    // RFC 3464 §2.3: per-recipient fields, each group preceded by an empty line.
    for r in &req.recipients {
        status.push_str("\r\n");
        if let Some(o) = &r.orcpt {
            status.push_str(&format!("Original-Recipient: {}\r\n", field(o)));
        }
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            field(&r.address)
        ));
        status.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        status.push_str(&format!("Status: {}\r\n", field(&r.status)));
        if let Some(m) = &r.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", field(m)));
        }
        if let Some(d) = &r.diagnostic {
            status.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", field(d)));
        }
        if r.action != DsnAction::Delivered {
            status.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc2822(req.now)));
        }
        if r.action == DsnAction::Delayed
            && let Some(until) = req.retry_until
        {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", rfc2822(until)));
        }
    }

    // RFC 3461 §4.3: RET=HDRS → headers only; absent → full for failures only.
    let full = match req.ret {
        Some(r) if r.eq_ignore_ascii_case("FULL") => true,
        Some(r) if r.eq_ignore_ascii_case("HDRS") => false,
        _ => req.kind == DsnKind::Failed,
    };
    let eight_bit = req.original.iter().any(|b| *b >= 0x80);
    let cte = if eight_bit { "8bit" } else { "7bit" };
    let returned = if full {
        MimePart::new("message/rfc822", BodyPart::Binary(req.original.into()))
            .transfer_encoding(cte)
    } else {
        MimePart::new(
            "text/rfc822-headers",
            BodyPart::Binary(header_block(req.original).into()),
        )
        .transfer_encoding(cte)
    };
    let report = MimePart::new(
        mail_builder::headers::content_type::ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human).language(req.language.to_owned()),
            MimePart::new(
                "message/delivery-status",
                BodyPart::Binary(status.into_bytes().into()),
            )
            .transfer_encoding("7bit"),
            returned,
        ],
    );
    let mailer = format!("MAILER-DAEMON@{}", req.hostname);
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            mailer.clone(),
        ))
        .to(Address::new_address(None::<&str>, req.sender.to_owned()))
        .subject(subject_line)
        .date(Date::new(req.now))
        .message_id(MessageId::new(format!(
            "{}.{}@{}",
            req.queue_id,
            match req.kind {
                DsnKind::Failed => "failed",
                DsnKind::Delayed => "delayed",
                DsnKind::Delivered => "delivered",
            },
            req.hostname
        )))
        .header("Auto-Submitted", Text::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rules_of_rfc3461() {
        assert!(wants(None, DsnKind::Failed));
        assert!(wants(None, DsnKind::Delayed));
        assert!(!wants(None, DsnKind::Delivered));
        assert!(!wants(Some("NEVER"), DsnKind::Failed));
        assert!(wants(Some("SUCCESS,FAILURE"), DsnKind::Delivered));
        assert!(!wants(Some("SUCCESS,FAILURE"), DsnKind::Delayed));
    }

    #[test]
    fn report_structure_and_hdrs() {
        let t = DsnTemplates::default();
        let original = b"From: a@example.com\r\nSubject: Hello\r\n\r\nsecret body\r\n";
        let req = DsnRequest {
            kind: DsnKind::Failed,
            hostname: "mx.example.com",
            queue_id: "438dd9ea-00000000",
            sender: "a@example.com",
            envid: Some("env-1"),
            ret: Some("HDRS"),
            original,
            arrival: 1_750_000_000,
            now: 1_750_000_100,
            retry_until: None,
            language: "en",
            templates: &t,
            recipients: vec![DsnRecipient {
                address: "x@remote.test".into(),
                orcpt: Some("rfc822;x@remote.test".into()),
                action: DsnAction::Failed,
                status: "5.1.1".into(),
                remote_mta: Some("mx.remote.test".into()),
                diagnostic: Some("550 5.1.1 no such user".into()),
            }],
        };
        let out = String::from_utf8(build(&req)).expect("utf8");
        assert!(out.contains("multipart/report"), "{out}");
        assert!(
            out.contains("report-type=\"delivery-status\"")
                || out.contains("report-type=delivery-status"),
            "{out}"
        );
        assert!(out.contains("Subject: Undelivered mail: Hello"), "{out}");
        assert!(out.contains("Original-Envelope-Id: env-1"));
        assert!(out.contains("Final-Recipient: rfc822; x@remote.test"));
        assert!(out.contains("Status: 5.1.1"));
        assert!(out.contains("text/rfc822-headers"));
        assert!(
            !out.contains("secret body"),
            "RET=HDRS returns headers only"
        );
        assert!(
            out.contains("From: \"Mail Delivery System\" <MAILER-DAEMON@mx.example.com>"),
            "{out}"
        );
    }
}
