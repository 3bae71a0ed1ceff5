//! Acceptance scenarios of requirements-1 "## Y." for the inbound options: Y.11
//! POP-before-SMTP, Y.18 greeting delay, Y.24 footer / X-Envelope-To / hidden local IP,
//! and VRFY/EXPN when enabled. Driven with Python's smtplib against the real server.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{TestServer, contains};
use keel_core::ipgroup::LOCAL_CLIENTS;
use keel_core::log::LogKind;
use keel_directory::{DomainPatch, NewAlias};
use keel_smtp::SmtpSettings;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FOOTER: &str = "Example Corp: this message is confidential.";

fn alias(name: &str, targets: &[&str]) -> NewAlias {
    NewAlias {
        name: name.into(),
        domain: "example.com".into(),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        description: String::new(),
    }
}

/// The queued copies' raw bytes, oldest first.
fn queued(t: &TestServer) -> Vec<Vec<u8>> {
    let mut q = t.meta.queued_messages().unwrap();
    q.sort_by_key(|m| m.created);
    q.iter().map(|m| t.blobs.get(&m.blob).unwrap()).collect()
}

fn received_headers(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    head.split("\r\n")
        .fold(Vec::<String>::new(), |mut fields, l| {
            if l.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.push_str(l);
                }
            } else {
                fields.push(l.to_owned());
            }
            fields
        })
        .into_iter()
        .filter(|f| f.to_ascii_lowercase().starts_with("received:"))
        .collect::<Vec<_>>()
        .join("\n")
}

// requirements-1 Y.11 (guide §12.2): a POP3 login from the same IP opens relay for the
// window. The POP3 server records the login with `Directory::record_pop3_login` (tested
// in keel-pop3 tests/pop_before_smtp.rs); here the record is made the same way.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_pop_before_smtp() {
    let t = TestServer::start(SmtpSettings {
        relay_pop_before_smtp_minutes: Some(5),
        ..SmtpSettings::default()
    })
    .await;
    let relay = "s = conn(); send(s, 'alice@example.com', ['y@remote.test'], 'pop'); s.quit()";
    assert_eq!(t.py(relay).await, ["refused 554"], "no POP3 login yet");
    t.directory.record_pop3_login(LOOPBACK).unwrap();
    assert_eq!(t.py(relay).await, ["sent 0"]);
    // A failed AUTH cancels the address-based rules for the session (requirements-1 §0.3).
    let out = t
        .py(r#"
s = conn()
try:
    s.login('alice', 'wrong')
except smtplib.SMTPAuthenticationError as e:
    out('auth', e.smtp_code)
s.mail('alice@example.com'); out(s.rcpt('y@remote.test')[0]); s.quit()
"#)
        .await;
    assert_eq!(out, ["auth 535", "554"]);
    // Still inside the window at exactly 5 minutes; refused after it.
    t.clock.advance(Duration::from_secs(300));
    assert_eq!(t.py(relay).await, ["sent 0"]);
    t.clock.advance(Duration::from_secs(1));
    assert_eq!(t.py(relay).await, ["refused 554"]);
    assert_eq!(t.meta.queued_messages().unwrap().len(), 2);
    // Off when the setting is off, whatever was recorded.
    t.directory.record_pop3_login(LOOPBACK).unwrap();
    t.set_settings(&SmtpSettings::default());
    assert_eq!(t.py(relay).await, ["refused 554"]);
}

// requirements-1 Y.18 (guide §13.6, requirements-1 §0.10), with a 2 s test delay.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_greeting_delay() {
    let mut settings = SmtpSettings {
        greeting_delay_secs: 2,
        greeting_delay_report: true,
        ..SmtpSettings::default()
    };
    let t = TestServer::start(settings.clone()).await;
    let out = t
        .py(r#"
import time
c = socket.create_connection(('127.0.0.1', MX), timeout=10)
c.sendall(b'EHLO early.test\r\n')
data = b''
while True:
    try:
        chunk = c.recv(4096)
    except socket.timeout:
        break
    if not chunk:
        break
    data += chunk
out('early', data.decode()[:9], b'250' in data)
t0 = time.time(); s = smtplib.SMTP(timeout=20); code, _ = s.connect('127.0.0.1', MX)
out('patient', code, time.time() - t0 >= 1.9); s.quit()
t0 = time.time(); s = smtplib.SMTP_SSL('127.0.0.1', SMTPS, context=CTX, timeout=20)
out('smtps', time.time() - t0 < 1.5); s.quit()
t0 = time.time(); s = smtplib.SMTP('127.0.0.1', SUB, timeout=20)
out('submission', time.time() - t0 < 1.5); s.quit()
"#)
        .await;
    assert_eq!(
        out,
        [
            "early 554 5.5.0 False",
            "patient 220 True",
            "smtps True",
            "submission True"
        ]
    );
    assert!(
        t.log(LogKind::Security)
            .contains("SMTP spam attack from 127.0.0.1 detected"),
        "{}",
        t.log(LogKind::Security)
    );
    settings.greeting_delay_exempt_group = Some(LOCAL_CLIENTS.to_owned());
    t.set_settings(&settings);
    let out = t
        .py(r#"
import time
t0 = time.time(); s = smtplib.SMTP(timeout=20); code, _ = s.connect('127.0.0.1', MX)
out('exempt', code, time.time() - t0 < 1.5)
send(s, 'x@remote.test', ['alice@example.com'], 'after delay'); s.quit()
"#)
        .await;
    assert_eq!(out, ["exempt 220 True", "sent 0"]);
}

// RFC 5321 §3.5 with VRFY/EXPN enabled; unknown names count toward the directory-harvest
// limit of guide §12.2 (here 2: the third unknown starts the block).
#[tokio::test(flavor = "multi_thread")]
async fn vrfy_and_expn_when_enabled() {
    let t = TestServer::start(SmtpSettings {
        enable_vrfy: true,
        enable_expn: true,
        max_unknown_recipients: 2,
        ..SmtpSettings::default()
    })
    .await;
    t.directory
        .add_alias(alias("staff", &["alice", "carol"]))
        .unwrap();
    let out = t
        .py(r#"
s = conn()
def show(cmd, arg):
    code, msg = s.docmd(cmd, arg)
    out(code, msg.decode().replace('\n', ' | '))
show('VRFY', 'alice')
show('VRFY', '<Carol@Example.com>')
show('VRFY', 'staff@example.net')
show('EXPN', 'staff')
show('VRFY', 'y@remote.test')
show('VRFY', 'nobody1')
show('EXPN', 'nobody2@example.com')
show('VRFY', 'nobody3')
show('VRFY', 'alice')
"#)
        .await;
    assert_eq!(
        out[..8],
        [
            "250 2.1.5 <alice@example.com>",
            "250 2.1.5 <carol@example.com>",
            "250 2.1.5 <staff@example.net>",
            "250 2.1.5 <alice@example.com> | 2.1.5 <carol@example.com>",
            "550 5.1.1 Not a local address",
            "550 5.1.1 <nobody1@example.com> not found",
            "550 5.1.1 <nobody2@example.com> not found",
            "550 5.1.1 <nobody3@example.com> not found",
        ],
        "{out:?}"
    );
    assert!(
        out[8].starts_with("450"),
        "blocked after the harvest: {out:?}"
    );
    assert!(
        t.log(LogKind::Security)
            .contains("Directory harvest attack from 127.0.0.1 detected")
    );
}

// requirements-1 Y.24 (guide §7.3, §12.6): footer on example.com with "don't append for
// internal-only recipients", 127.0.0.1 in the relay group with hidden local IPs, and
// X-Envelope-To.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_footer_x_envelope_to_and_hidden_local_ip() {
    let mut settings = SmtpSettings {
        relay_ip_group: Some(LOCAL_CLIENTS.to_owned()),
        hide_local_ip_in_received: true,
        insert_x_envelope_to: true,
        ..SmtpSettings::default()
    };
    let t = TestServer::start(settings.clone()).await;
    let mut domain_settings = BTreeMap::new();
    domain_settings.insert("footer_text".to_owned(), serde_json::json!(FOOTER));
    domain_settings.insert("footer_skip_internal".to_owned(), serde_json::json!(true));
    t.directory
        .set_domain(
            "example.com",
            DomainPatch {
                settings: Some(domain_settings),
                ..DomainPatch::default()
            },
        )
        .unwrap();
    t.directory.add_alias(alias("sales.*", &["carol"])).unwrap();
    let out = t
        .py(r#"
s = conn(); s.starttls(context=CTX); s.ehlo('client.test')
out(s.login('alice', 'Secret-pw-123')[0])
send(s, 'alice@example.com', ['y@remote.test'], 'outside')
send(s, 'alice@example.com', ['carol@example.com'], 'inside')
s.quit()
s = conn(); send(s, 'x@remote.test', ['sales.eu@example.com'], 'via alias'); s.quit()
"#)
        .await;
    assert_eq!(out, ["235", "sent 0", "sent 0", "sent 0"]);

    let q = queued(&t);
    assert_eq!(q.len(), 1);
    let remote = String::from_utf8_lossy(&q[0]).into_owned();
    assert!(
        remote.ends_with(&format!("hello\r\n\r\n{FOOTER}\r\n")),
        "{remote}"
    );
    let received = received_headers(&q[0]);
    assert!(received.contains("with ESMTPSA"), "{received}");
    assert!(!received.contains("127.0.0.1"), "{received}");

    let carol = t.inbox("carol@example.com").await;
    assert_eq!(carol.len(), 2);
    let inside = carol
        .iter()
        .find(|m| contains(m, "Subject: inside"))
        .expect("inside");
    assert!(!contains(inside, FOOTER), "internal-only: no footer");
    let via = carol
        .iter()
        .find(|m| contains(m, "Subject: via alias"))
        .expect("via alias");
    assert!(contains(via, "X-Envelope-To: sales.eu@example.com\r\n"));
    assert!(!contains(via, FOOTER), "outside sender: no footer");

    // Mixed recipients get the footer (one version for all); a relay-allowed client
    // sending as a local domain gets it too. Without hiding, the IP is in Received.
    settings.hide_local_ip_in_received = false;
    t.set_settings(&settings);
    let out = t
        .py("s = conn(); send(s, 'dave@example.com', ['z@remote.test', 'carol@example.com'], 'mixed'); s.quit()")
        .await;
    assert_eq!(out, ["sent 0"]);
    let q = queued(&t);
    assert_eq!(q.len(), 2);
    assert!(contains(&q[1], FOOTER));
    assert!(received_headers(&q[1]).contains("[127.0.0.1]"));
    let carol = t.inbox("carol@example.com").await;
    let mixed = carol
        .iter()
        .find(|m| contains(m, "Subject: mixed"))
        .expect("mixed");
    assert!(contains(mixed, FOOTER));
}

// guide §7.3 on a MIME message: both parts of multipart/alternative get the footer and the
// structure stays intact (the queued copy parses with the same parts).
#[tokio::test(flavor = "multi_thread")]
async fn footer_on_multipart_alternative_keeps_the_structure() {
    let t = TestServer::start(SmtpSettings::default()).await;
    let mut domain_settings = BTreeMap::new();
    domain_settings.insert("footer_text".to_owned(), serde_json::json!(FOOTER));
    t.directory
        .set_domain(
            "example.com",
            DomainPatch {
                settings: Some(domain_settings),
                ..DomainPatch::default()
            },
        )
        .unwrap();
    let out = t
        .py(r#"
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
m = MIMEMultipart('alternative')
m['Subject'] = 'alt'; m['From'] = 'alice@example.com'; m['To'] = 'y@remote.test'
m.attach(MIMEText('plain caf\u00e9', 'plain', 'utf-8'))
m.attach(MIMEText('<html><body><p>html</p></body></html>', 'html', 'utf-8'))
s = conn(); s.starttls(context=CTX); s.ehlo('client.test'); s.login('alice', 'Secret-pw-123')
s.sendmail('alice@example.com', ['y@remote.test'], m.as_string()); out('sent')
"#)
        .await;
    assert_eq!(out, ["sent"]);
    let q = queued(&t);
    let parsed = mail_parser::MessageParser::default()
        .parse(&q[0])
        .expect("parses");
    let text = parsed.body_text(0).expect("text part");
    let html = parsed.body_html(0).expect("html part");
    assert!(text.starts_with("plain café"), "{text}");
    assert!(text.contains(FOOTER), "{text}");
    assert!(
        html.contains("<p>html</p>") && html.contains(FOOTER),
        "{html}"
    );
    assert!(
        html.find(FOOTER) < html.find("</body>"),
        "HTML footer before </body>: {html}"
    );
    assert_eq!(parsed.text_body.len(), 1);
    assert_eq!(parsed.html_body.len(), 1);
}
