//! Security-log lines for SMTP refusals (guide §25.4) and per-IP limits shared by the
//! nodes of one store (issue 8), driven with Python smtplib.

mod common;

use std::net::IpAddr;

use common::TestServer;
use keel_core::clock::Clock;
use keel_core::log::LogKind;
use keel_smtp::{IpLimits, SmtpSettings};

const LOOPBACK: &str = "127.0.0.1";

/// guide §25.4 "Failed login attempts": the refusals SMTP decides itself (the directory
/// logs refused credentials through its security sink).
#[tokio::test(flavor = "multi_thread")]
async fn failed_auth_reasons_are_security_log_lines() {
    let t = TestServer::start(SmtpSettings::default()).await;
    let out = t
        .py(r#"
s = conn()
out(s.docmd('AUTH', 'CRAM-MD5')[0])
out(s.docmd('AUTH', 'PLAIN !!!notbase64')[0])
out(s.docmd('AUTH', 'LOGIN')[0])
out(s.docmd('*')[0])
s.quit()
"#)
        .await;
    assert_eq!(out, ["504", "501", "334", "501"]);
    let sec = t.log(LogKind::Security);
    for line in [
        "Failed SMTP login from 127.0.0.1, authentication method CRAM-MD5 is invalid or unknown",
        "Failed SMTP login from 127.0.0.1, missing parameter in AUTHENTICATE header",
        "Failed SMTP login from 127.0.0.1, authentication with method LOGIN cancelled by user",
    ] {
        assert!(sec.contains(line), "{line}\n{sec}");
    }
}

/// issue 8: a harvest block recorded by another node (another `IpLimits` on the same
/// store) refuses the connection here, with a security-log line.
#[tokio::test(flavor = "multi_thread")]
async fn harvest_block_from_another_node_refuses_the_connection() {
    let t = TestServer::start(SmtpSettings {
        max_unknown_recipients: 2,
        harvest_block_secs: 600,
        ..SmtpSettings::default()
    })
    .await;
    let other_node = IpLimits::default();
    let ip: IpAddr = LOOPBACK.parse().unwrap();
    let now = t.clock.now().timestamp();
    for i in 0..3 {
        other_node.unknown_recipient(Some(&*t.meta), ip, now + i, 2, 600);
    }
    let script = r#"
s = smtplib.SMTP(timeout=20)
try:
    out(s.connect('127.0.0.1', MX)[0])
except smtplib.SMTPConnectError as e:
    out(e.smtp_code)
"#;
    assert_eq!(t.py(script).await, ["421"]);
    assert!(
        t.log(LogKind::Security).contains(
            "Blocked IP address 127.0.0.1 (directory harvest attack): connection refused"
        )
    );
    t.clock.advance(std::time::Duration::from_secs(603));
    assert_eq!(t.py(script).await, ["220"]);
}

/// issue 8: messages accepted through another node count toward this node's hourly limit.
#[tokio::test(flavor = "multi_thread")]
async fn messages_per_hour_counted_across_nodes() {
    let t = TestServer::start(SmtpSettings {
        max_messages_per_hour_per_ip: 3,
        ..SmtpSettings::default()
    })
    .await;
    let other_node = IpLimits::default();
    let ip: IpAddr = LOOPBACK.parse().unwrap();
    let now = t.clock.now().timestamp();
    for i in 0..2 {
        other_node.message_accepted(Some(&*t.meta), ip, now + i, 3);
    }
    let out = t
        .py(r#"
s = conn()
for i in range(2):
    send(s, 'x@remote.test', ['alice@example.com'], 'n%d' % i)
s.quit()
"#)
        .await;
    assert_eq!(out[0], "sent 0", "2 elsewhere + 1 here = 3");
    assert!(out[1].starts_with("error 45"), "{out:?}");
    assert!(
        t.log(LogKind::Security)
            .contains("Limit of 3 messages per hour from IP address 127.0.0.1 exceeded")
    );
    // The other node now sees this node's message too.
    assert!(other_node.hourly_limit_reached(Some(&*t.meta), ip, now + 10, 3));
}
