//! Trace headers added on receipt: `Return-Path` (RFC 5321 §4.4) on local delivery,
//! `Received` (RFC 5321 §4.4, RFC 3848) on every copy, optionally without the client
//! address (guide §12.6), and the optional `X-Envelope-To` (guide §12.6).
//!
//! `Delivered-To` is deliberately not added (see the notes in [`super`]).

use super::Session;

impl Session {
    /// RFC 5321 §4.4 trace header; RFC 3848 `with` keywords; guide §12.6 hiding.
    pub(super) fn received_header(&self, qid: &str, single_rcpt: Option<&str>) -> String {
        let helo = self.helo.clone().unwrap_or_default();
        let helo: String = helo.chars().filter(|c| !c.is_control()).take(255).collect();
        let hide = self.settings.hide_local_ip_in_received
            && self
                .settings
                .relay_ip_group
                .as_deref()
                .is_some_and(|g| self.groups.contains(g, self.ip));
        let from = if hide {
            format!("from {helo}")
        } else {
            format!("from {helo} ([{}])", self.ip)
        };
        let proto = match (self.esmtp, self.tls, self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let date = self.ctx().clock.now().to_rfc2822();
        let mut h = format!(
            "Received: {from}\r\n\tby {} with {proto} id {qid}",
            self.hostname
        );
        if let Some(r) = single_rcpt {
            h.push_str(&format!("\r\n\tfor <{r}>"));
        }
        h.push_str(&format!("; {date}\r\n"));
        h
    }

    /// guide §12.6 "Insert X-Envelope-To header": the original envelope recipient, as a
    /// bare address (the shape of requirements-1 Y.24 and Y.25).
    pub(super) fn envelope_to_header(rcpt: &str) -> String {
        format!("X-Envelope-To: {rcpt}\r\n")
    }

    /// RFC 5321 §4.4: the reverse path, added at final delivery.
    pub(super) fn return_path_header(from: &str) -> String {
        format!("Return-Path: <{from}>\r\n")
    }
}
