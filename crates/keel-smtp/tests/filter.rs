//! The content filter in the SMTP session (issue 6): GTUBE and spam blocks at DATA,
//! envelope custom rules at MAIL, DNSBL and SPF (requirements-1 Y.17, Y.23),
//! Authentication-Results on delivered mail and DKIM signing of queued mail, verified
//! by Python's dkimpy against the in-process DNS server.

mod common;
#[path = "../src/dns/test_zone.rs"]
mod test_zone;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{TestServer, contains};
use keel_directory::NewUser;
use keel_filter::{
    CustomRule, DnsList, HitAction, ListScope, RuleAction, RuleField, RuleMatch, SenderLists,
    SpamSettings, save_sender_lists, save_spam_settings,
};
use keel_smtp::SmtpSettings;
use test_zone::{TestDns, TestRecord};

/// The messages of one folder of `user`.
async fn folder_messages(t: &TestServer, user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mb = t.mailboxes.clone();
    let (user, folder) = (user.to_owned(), folder.to_owned());
    tokio::task::spawn_blocking(move || {
        let f = mb.folder(&user, &folder).unwrap().expect("folder");
        mb.messages(f.id)
            .unwrap()
            .iter()
            .map(|m| mb.read(&m.blob).unwrap())
            .collect()
    })
    .await
    .unwrap()
}

async fn server() -> TestServer {
    TestServer::start(SmtpSettings::default()).await
}

fn rule(field: RuleField, m: RuleMatch, action: RuleAction) -> CustomRule {
    CustomRule {
        description: String::new(),
        enabled: true,
        field,
        matcher: m,
        action,
    }
}

/// Sends one message over port 25; prints `sent`, `error <code>` or `refused`.
const SEND: &str = r#"
def send_raw(frm, rcpts, data):
    s = conn()
    try:
        s.sendmail(frm, rcpts, data)
        out('sent')
    except smtplib.SMTPRecipientsRefused as e:
        out('refused', *sorted(c for c, _ in e.recipients.values()))
    except smtplib.SMTPResponseException as e:
        out('error', e.smtp_code)
    s.quit()
def m(frm, subject, body='hello'):
    return 'From: %s\r\nTo: alice@example.com\r\nSubject: %s\r\n\r\n%s\r\n' % (frm, subject, body)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn gtube_is_rejected_at_data_with_554() {
    let t = server().await;
    let gtube = keel_filter::GTUBE;
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], m('x@remote.test', 'test', '{gtube}'))\nsend_raw('x@remote.test', ['alice@example.com'], m('x@remote.test', 'fine'))"
        ))
        .await;
    assert_eq!(out, ["error 554", "sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    // Rated (content tests apply to loopback clients) but not spam.
    assert!(contains(&inbox[0], "X-Spam-Status: No, score=0.0"));
    assert!(contains(&inbox[0], "X-Spam-Score: 0.0\r\n"));
    assert!(!contains(&inbox[0], "X-Spam-Flag"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_spam_tagging_custom_rules_and_quarantine() {
    let t = server().await;
    t.directory
        .add_user(NewUser::new("spam@example.com", common::PASSWORD))
        .unwrap();
    let mut s = SpamSettings {
        tag_score: 5.0,
        block_score: 9.9,
        quarantine_address: Some("spam@example.com".into()),
        subject_prefix: Some("**SPAM**".into()),
        rules: vec![
            rule(
                RuleField::From,
                RuleMatch::Address("spammer@bad.test".into()),
                RuleAction::Reject,
            ),
            rule(
                RuleField::Subject,
                RuleMatch::Substring("cheap pills".into()),
                RuleAction::Score(6.0),
            ),
            rule(
                RuleField::Subject,
                RuleMatch::Substring("casino".into()),
                RuleAction::Score(5.0),
            ),
        ],
        ..SpamSettings::default()
    };
    save_spam_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            r#"{SEND}
s = conn(); out(s.docmd('MAIL FROM:<spammer@bad.test>')[0]); s.quit()
send_raw('x@remote.test', ['alice@example.com'], m('x@remote.test', 'cheap pills'))
send_raw('x@remote.test', ['alice@example.com'], m('x@remote.test', 'cheap pills casino'))
"#
        ))
        .await;
    // Rule 1 first: 553 at SMTP level; 6 → tagged; 11 ≥ 9.9 → blocked at DATA.
    assert_eq!(out, ["553", "sent", "error 554"]);
    // Tagged mail is filed into Junk E-mail (guide §13.1, `junk_folder` default on).
    assert!(t.inbox("alice@example.com").await.is_empty());
    let inbox = folder_messages(&t, "alice@example.com", keel_mail::JUNK).await;
    assert_eq!(inbox.len(), 1);
    let text = String::from_utf8_lossy(&inbox[0]);
    assert!(text.contains("X-Spam-Flag: YES\r\n"), "{text}");
    assert!(text.contains("Subject: **SPAM** cheap pills\r\n"), "{text}");
    assert!(text.contains("X-Spam-Status: Yes, score=6.0"), "{text}");
    let quarantine = t.inbox("spam@example.com").await;
    assert_eq!(quarantine.len(), 1);
    assert!(contains(&quarantine[0], "Subject: cheap pills casino"));
    assert!(contains(&quarantine[0], "X-Spam-Status: Yes, score=11.0"));
    // guide §25.8 Spam log and §25.4 Security log.
    let spam_log = t.log(keel_core::log::LogKind::Spam);
    assert!(
        spam_log.contains("Message marked as spam with score: 6.00, To: alice@example.com"),
        "{spam_log}"
    );
    assert!(
        t.log(keel_core::log::LogKind::Security)
            .contains("rejected by spam filter")
    );
    // Rule 2 moved above rule 1: accepted at SMTP, applied to the From: header.
    s.rules.swap(0, 1);
    save_spam_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            r#"{SEND}
s = conn(); out(s.docmd('MAIL FROM:<spammer@bad.test>')[0]); s.quit()
send_raw('spammer@bad.test', ['alice@example.com'], m('ok@good.test', 'hello'))
send_raw('x@remote.test', ['alice@example.com'], m('Spammer <spammer@bad.test>', 'hello'))
"#
        ))
        .await;
    assert_eq!(out, ["250", "sent", "error 554"]);
    assert_eq!(t.inbox("alice@example.com").await.len(), 1);
}

async fn y17_dns() -> TestDns {
    TestDns::start_zones(vec![
        (
            "remote.test".into(),
            vec![TestRecord::txt("remote.test", "v=spf1 -all")],
        ),
        (
            "bl.test".into(),
            vec![TestRecord::a("1.0.0.127.bl.test", "127.0.0.2")],
        ),
        // Parents of the tested names answer NXDOMAIN (DMARC tree walk).
        ("test".into(), vec![]),
    ])
    .await
}

fn lab(dns: &TestDns) -> SpamSettings {
    SpamSettings {
        exempt_private_ranges: false,
        exempt_loopback: false,
        dns_server: Some(dns.addr()),
        dnsbl: vec![DnsList {
            zone: "bl.test".into(),
            description: "test list".into(),
            action: HitAction::Score(2.0),
            enabled: true,
            codes: Vec::new(),
        }],
        uribl: Vec::new(),
        ..SpamSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_dns_based_sender_checks() {
    let dns = y17_dns().await;
    let t = server().await;
    let mut s = lab(&dns);
    s.spf.action = HitAction::Score(3.0);
    // The score is 5.0 (tagged); this test reads the INBOX, so no filing into Junk.
    s.junk_folder = false;
    save_spam_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('a@remote.test', ['alice@example.com'], m('a@remote.test', 'hi'))"
        ))
        .await;
    assert_eq!(out, ["sent"]);
    let inbox = t.inbox("alice@example.com").await;
    let text = String::from_utf8_lossy(&inbox[0]);
    // The DNSBL hit and the SPF score in X-Spam-Status; the results in
    // Authentication-Results with the hostname as authserv-id (RFC 8601 §2.5).
    assert!(text.contains("DNSBL_bl.test=2.0"), "{text}");
    assert!(text.contains("SPF_FAIL=3.0"), "{text}");
    assert!(
        text.contains("X-Spam-Status: No, score=5.0")
            || text.contains("X-Spam-Status: Yes, score=5.0"),
        "{text}"
    );
    assert!(
        text.starts_with("Return-Path: <a@remote.test>\r\nReceived: "),
        "{text}"
    );
    assert!(
        text.contains("Authentication-Results: mx.example.com;"),
        "{text}"
    );
    assert!(text.contains("spf=fail"), "{text}");
    assert!(text.contains("dkim=none"), "{text}");
    assert!(
        t.log(keel_core::log::LogKind::Security)
            .contains("IP address 127.0.0.1 found in DNS blacklist bl.test")
    );
    // SPF set to block: 5xx at MAIL, nothing delivered. The change applies at once.
    s.spf.action = HitAction::Reject;
    save_spam_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('a@remote.test', ['alice@example.com'], m('a@remote.test', 'hi'))"
        ))
        .await;
    assert_eq!(out, ["error 550"]);
    assert_eq!(t.inbox("alice@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn submitted_mail_to_remote_recipients_is_dkim_signed() {
    let t = server().await;
    let out = t
        .py(r#"
s = conn(SUB); s.starttls(context=CTX); s.ehlo('c'); s.login('alice', 'Secret-pw-123')
s.sendmail('alice@example.com', ['y@remote.test'], 'From: Alice <alice@example.com>\r\nTo: y@remote.test\r\nSubject: signed\r\nMessage-ID: <k1@example.com>\r\n\r\nHello  world\r\n')
out('ok')
"#)
        .await;
    assert_eq!(out, ["ok"]);
    let q = t.meta.queued_messages().unwrap();
    assert_eq!(q.len(), 1);
    let raw = t.blobs.get(&q[0].blob).unwrap();
    assert!(
        contains(&raw, "DKIM-Signature: v=1; a=rsa-sha256;"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(contains(&raw, "d=example.com"));
    // The key was generated on demand; its record is served by the test DNS.
    let key = keel_filter::load_dkim_key(&*t.meta, "example.com")
        .unwrap()
        .expect("key generated on demand");
    let (name, txt) = key.dns_record();
    let parts: Vec<String> = txt
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let dns = TestDns::start_zones(vec![(
        "example.com".into(),
        vec![TestRecord {
            name,
            data: hickory_proto::rr::RData::TXT(hickory_proto::rr::rdata::TXT::new(parts)),
        }],
    )])
    .await;
    ensure_dkimpy();
    let script = r#"
import sys, dkim, dns.resolver
R = dns.resolver.Resolver(configure=False)
R.nameservers = ['127.0.0.1']; R.port = int(sys.argv[1])
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return b''.join(b''.join(r.strings) for r in R.resolve(name, 'TXT'))
print(dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dns.addr().port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "True");
    // Local delivery of authenticated mail is neither rated nor signed.
    let out = t
        .py(r#"
s = conn(SUB); s.starttls(context=CTX); s.ehlo('c'); s.login('alice', 'Secret-pw-123')
s.sendmail('alice@example.com', ['carol@example.com'], 'From: alice@example.com\r\nSubject: local\r\n\r\nhi\r\n')
out('ok')
"#)
        .await;
    assert_eq!(out, ["ok"]);
    let inbox = t.inbox("carol@example.com").await;
    assert!(!contains(&inbox[0], "X-Spam-Status"));
    assert!(!contains(&inbox[0], "DKIM-Signature"));
}

fn ensure_dkimpy() {
    let ok = || {
        Command::new("python3")
            .args(["-c", "import dkim, dns.resolver"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok() {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "dkimpy", "dnspython"])
            .status();
    }
    assert!(
        ok(),
        "dkimpy/dnspython missing and `python3 -m pip install dkimpy dnspython` failed"
    );
}

/// Issue 6 §2: a sender on alice's whitelist is treated as non-spam (score 0, even with
/// GTUBE) only when SPF shows the sender genuine; a forged one (SPF neutral) is rated as
/// usual. A transaction carries recipients of one whitelist class: dave, who has no
/// whitelist, gets `452 4.5.3` beside alice and his copy, sent alone, is rated.
#[tokio::test(flavor = "multi_thread")]
async fn sender_whitelist_applies_only_to_a_verified_sender() {
    let dns = TestDns::start_zones(vec![
        (
            "good.test".into(),
            vec![TestRecord::txt("good.test", "v=spf1 ip4:127.0.0.1 -all")],
        ),
        (
            "forged.test".into(),
            vec![TestRecord::txt("forged.test", "v=spf1 ?all")],
        ),
        ("test".into(), vec![]),
    ])
    .await;
    let t = server().await;
    let s = SpamSettings {
        exempt_private_ranges: false,
        exempt_loopback: false,
        dns_server: Some(dns.addr()),
        dnsbl: Vec::new(),
        uribl: Vec::new(),
        junk_folder: false,
        ..SpamSettings::default()
    };
    save_spam_settings(&*t.meta, &s).unwrap();
    save_sender_lists(
        &*t.meta,
        &ListScope::User("alice@example.com".into()),
        &SenderLists {
            allow: vec!["good.test".into(), "forged.test".into()],
            block: Vec::new(),
        },
    )
    .unwrap();
    let gtube = keel_filter::GTUBE;
    let out = t
        .py(&format!(
            "{SEND}
def send_some(frm, rcpts, data):
    s = conn()
    r = s.sendmail(frm, rcpts, data)
    out('sent', *['%s=%d %s' % (k, v[0], v[1].decode()[:5]) for k, v in sorted(r.items())])
    s.quit()
send_some('a@good.test', ['alice@example.com', 'dave@example.com'], m('a@good.test', 'one', '{gtube}'))
send_raw('a@good.test', ['dave@example.com'], m('a@good.test', 'two', '{gtube}'))
send_raw('a@forged.test', ['alice@example.com'], m('a@forged.test', 'three', '{gtube}'))
send_raw('a@good.test', ['alice@example.com'], m('a@good.test', 'four'))"
        ))
        .await;
    assert_eq!(
        out,
        [
            "sent dave@example.com=452 4.5.3",
            "error 554",
            "error 554",
            "sent"
        ]
    );
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 2);
    assert!(
        contains(&inbox[0], "SENDER_WHITELIST"),
        "{}",
        String::from_utf8_lossy(&inbox[0])
    );
    assert!(contains(&inbox[0], "X-Spam-Score: 0.0\r\n"));
    assert!(contains(&inbox[0], "spf=pass"));
    assert!(t.inbox("dave@example.com").await.is_empty());
}

/// Issue 6: the structural limits are settings. With at most 10 MIME parts examined, a
/// 12-part message is delivered (never refused for that alone) with the limit's test in
/// its spam status; with the default limit the same message carries no such test.
#[tokio::test(flavor = "multi_thread")]
async fn structural_limits_are_settings_the_filter_follows() {
    let t = server().await;
    let mut parts = String::new();
    for i in 0..12 {
        parts.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    let raw = format!(
        "From: x@remote.test\r\nTo: alice@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n{parts}--b--\r\n"
    );
    let send = format!("{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], {raw:?})");
    assert_eq!(t.py(&send).await, ["sent"]);
    let mut av = keel_filter::AntivirusSettings::default();
    av.message_limits.max_parts = 10;
    keel_filter::save_antivirus_settings(t.meta.as_ref(), &av).unwrap();
    assert_eq!(t.py(&send).await, ["sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 2);
    assert!(!contains(&inbox[0], "MIME_TOO_MANY_PARTS"));
    assert!(
        contains(&inbox[1], "MIME_TOO_MANY_PARTS=1.0"),
        "{}",
        String::from_utf8_lossy(&inbox[1])
    );
}
