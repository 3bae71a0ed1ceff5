//! Sender-domain DNS check (guide §12.2), ETRN (RFC 1985, guide §12.5/§7.10) and
//! greylisting (issue 6 item 6, RFC 6647), driven with Python smtplib; DNS comes from the
//! in-process test zone, time from the ManualClock.

mod common;
#[path = "../src/dns/test_zone.rs"]
mod test_zone;

use std::time::Duration;

use common::{PASSWORD, TestServer};
use keel_core::clock::Clock;
use keel_core::log::LogKind;
use keel_smtp::SmtpSettings;
use keel_smtp::dns::Resolver;
use keel_store::{QueuedMessage, QueuedRecipient};
use test_zone::{TestDns, TestRecord};

async fn dns() -> TestDns {
    TestDns::start_zones(vec![
        (
            "good.test".to_owned(),
            vec![
                TestRecord::mx("good.test", 10, "mx.good.test"),
                TestRecord::a("mx.good.test", "192.0.2.1"),
            ],
        ),
        (
            "aonly.test".to_owned(),
            vec![TestRecord::aaaa("aonly.test", "2001:db8::1")],
        ),
    ])
    .await
}

async fn dns_server(settings: SmtpSettings) -> (TestServer, TestDns) {
    let d = dns().await;
    let resolver = Resolver::with_nameserver(d.addr()).expect("resolver");
    (
        TestServer::start_with_resolver(settings, Some(resolver)).await,
        d,
    )
}

const MAIL_CODE: &str = r#"
def mail_code(frm):
    s = conn()
    code, _ = s.mail(frm)
    s.quit()
    return code
"#;

#[tokio::test(flavor = "multi_thread")]
async fn sender_domain_not_in_dns_is_rejected_550_5_1_8() {
    let (t, _d) = dns_server(SmtpSettings {
        reject_unknown_sender_domain: true,
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py(&format!(
            "{MAIL_CODE}
out('mx', mail_code('a@good.test'))
out('aaaa', mail_code('a@aonly.test'))
out('nx', mail_code('a@ghost.good.test'))
out('null', mail_code(''))
out('local', mail_code('x@example.com'))
s = conn()
r = s.docmd('MAIL FROM:<a@ghost.good.test>')
out('text', r[0], r[1].decode())
s.quit()
s = conn()
s.login('alice@example.com', '{PASSWORD}')
out('auth', s.mail('a@ghost.good.test')[0])
s.quit()
"
        ))
        .await;
    assert_eq!(
        out,
        [
            "mx 250",
            "aaaa 250",
            "nx 550",
            "null 250",
            "local 250",
            "text 550 5.1.8 Sender domain ghost.good.test does not exist",
            "auth 250"
        ]
    );
    // guide §25.4: the refusal is a security-log line (two refused MAILs).
    let sec = t.log(LogKind::Security);
    let line = "Sender domain ghost.good.test not found in DNS, IP address 127.0.0.1, mail from <a@ghost.good.test> rejected";
    assert_eq!(sec.matches(line).count(), 2, "{sec}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sender_domain_temporary_dns_failure_is_451_4_4_3() {
    // A nameserver nobody answers on: the lookup fails, which proves nothing about the
    // domain, so the reply is temporary.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let addr = silent.local_addr().expect("addr");
    drop(silent);
    let resolver = Resolver::with_nameserver(addr).expect("resolver");
    let t = TestServer::start_with_resolver(
        SmtpSettings {
            reject_unknown_sender_domain: true,
            ..SmtpSettings::default()
        },
        Some(resolver),
    )
    .await;
    let out = t
        .py("s = conn()\nr = s.docmd('MAIL FROM:<a@good.test>')\nout(r[0], r[1].decode())\ns.quit()")
        .await;
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("451 4.4.3"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sender_domain_check_off_by_default_and_skipped_without_resolver() {
    let (t, _d) = dns_server(SmtpSettings::default()).await;
    let script = format!("{MAIL_CODE}\nout(mail_code('a@ghost.good.test'))");
    assert_eq!(t.py(&script).await, ["250"]);
    let t2 = TestServer::start(SmtpSettings {
        reject_unknown_sender_domain: true,
        ..SmtpSettings::default()
    })
    .await;
    assert_eq!(t2.py(&script).await, ["250"]);
}

fn queue(t: &TestServer, rcpt: &str, next_attempt: i64) -> String {
    let now = t.clock.now().timestamp();
    let blob = t.blobs.put(b"Subject: held\r\n\r\nx\r\n").expect("blob");
    let id = keel_smtp::new_queue_id(now);
    t.meta
        .enqueue(&QueuedMessage {
            id: id.clone(),
            sender: "x@remote.test".into(),
            envid: None,
            ret: None,
            size: 20,
            blob,
            created: now,
            next_attempt,
            recipients: vec![QueuedRecipient::new(rcpt)],
        })
        .expect("enqueue");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn etrn_flushes_the_queue_of_a_domain_rfc1985() {
    let t = TestServer::start(SmtpSettings::default()).await;
    let later = t.clock.now().timestamp() + 3600;
    let held = queue(&t, "user@backup.test", later);
    let sub = queue(&t, "user@branch.backup.test", later);
    let other = queue(&t, "user@other.example", later);
    let out = t
        .py(&format!(
            "
s = conn()
out('ehlo', s.has_extn('etrn'))
r = s.docmd('ETRN', 'backup.test')
out('anon', r[0])
s.login('alice@example.com', '{PASSWORD}')
for arg in ('', 'bad..name', 'backup.test', '#backup.test', '@backup.test', 'empty.test'):
    r = s.docmd('ETRN', arg)
    out(arg or '-', r[0], r[1].decode())
s.quit()
"
        ))
        .await;
    assert_eq!(
        out,
        [
            "ehlo True",
            "anon 459",
            "- 501 5.5.4 Syntax: ETRN name",
            "bad..name 501 5.5.4 Syntax: ETRN [@|#]domain",
            "backup.test 253 2.0.0 OK, 1 pending messages for node backup.test started",
            "#backup.test 253 2.0.0 OK, 1 pending messages for node backup.test started",
            "@backup.test 253 2.0.0 OK, 2 pending messages for node backup.test started",
            "empty.test 458 4.3.0 Unable to queue messages for node empty.test",
        ]
    );
    let now = t.clock.now().timestamp();
    let next = |id: &str| {
        t.meta
            .queued_message(id)
            .expect("get")
            .expect("queued")
            .next_attempt
    };
    assert_eq!(next(&held), now, "ETRN backup.test makes its mail due");
    assert_eq!(next(&sub), now, "@backup.test includes subdomains");
    assert_eq!(next(&other), later, "other domains keep their schedule");
}

#[tokio::test(flavor = "multi_thread")]
async fn etrn_anyone_setting_and_relay_group() {
    let t = TestServer::start(SmtpSettings {
        etrn_anyone: true,
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py("s = conn()\nout(s.docmd('ETRN', 'backup.test')[0])\nout(s.docmd('ETRN backup.test')[0])\ns.quit()")
        .await;
    // RFC 1985 §5: 458 for a node Keel holds no mail for.
    assert_eq!(out, ["458", "458"]);
    // ETRN before EHLO is a bad sequence.
    let out = t
        .py("s = smtplib.SMTP('127.0.0.1', MX, timeout=20)\nout(s.docmd('ETRN', 'backup.test')[0])\ns.quit()")
        .await;
    assert_eq!(out, ["503"]);
}

const GREY: &str = r#"
def rcpt(frm, to):
    s = conn()
    s.mail(frm)
    code, text = s.rcpt(to)
    s.quit()
    out(code, text.decode())
"#;

#[tokio::test(flavor = "multi_thread")]
async fn greylisting_defers_first_attempt_and_passes_retry_after_delay() {
    let mut settings = SmtpSettings::default();
    settings.greylisting.enabled = true;
    settings.greylisting.exempt_private_ranges = false;
    let t = TestServer::start(settings).await;
    let step = |script: &'static str| {
        let t = &t;
        async move { t.py(&format!("{GREY}\n{script}")).await }
    };
    let first = step("rcpt('x@remote.test', 'alice@example.com')").await;
    assert_eq!(first, ["451 4.7.1 Greylisted, try again later"]);
    // guide §25.4: each deferral is a security-log line.
    assert!(t.log(LogKind::Security).contains(
        "Greylisting of IP address 127.0.0.1, mail from <x@remote.test> to <alice@example.com> temporarily rejected"
    ));
    t.clock.advance(Duration::from_secs(120));
    let early = step("rcpt('x@remote.test', 'alice@example.com')").await;
    assert_eq!(early, ["451 4.7.1 Greylisted, try again later"]);
    t.clock.advance(Duration::from_secs(200));
    let retry = step("rcpt('x@remote.test', 'alice@example.com')").await;
    assert_eq!(retry, ["250 2.1.5 Recipient OK"]);
    // Whitelisted now: a day later it passes at once.
    t.clock.advance(Duration::from_secs(86_400));
    let again = step("rcpt('x@remote.test', 'alice@example.com')").await;
    assert_eq!(again, ["250 2.1.5 Recipient OK"]);
    // Another recipient is another triplet.
    let other = step("rcpt('x@remote.test', 'carol@example.com')").await;
    assert_eq!(other, ["451 4.7.1 Greylisted, try again later"]);
    // Unknown recipients still get 550 (no triplet recorded for them).
    let unknown = step("rcpt('x@remote.test', 'nobody@example.com')").await;
    assert!(unknown[0].starts_with("550"), "{unknown:?}");
    // The triplets are MetaStore documents (restarts keep them).
    let docs = t.meta.list_docs("greylist", None).expect("docs");
    assert_eq!(docs.len(), 2, "{docs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn greylisting_exemptions_and_expiry() {
    let mut settings = SmtpSettings::default();
    settings.greylisting.enabled = true;
    let t = TestServer::start(settings.clone()).await;
    // Loopback is a private range: exempt by default.
    let out = t
        .py(&format!(
            "{GREY}\nrcpt('x@remote.test', 'alice@example.com')"
        ))
        .await;
    assert_eq!(out, ["250 2.1.5 Recipient OK"]);
    // Authenticated sessions are exempt even without the private-range exemption.
    settings.greylisting.exempt_private_ranges = false;
    t.set_settings(&settings);
    let out = t
        .py(&format!(
            "s = conn()\ns.login('alice@example.com', '{PASSWORD}')\ns.mail('alice@example.com')\nout(s.rcpt('carol@example.com')[0])\ns.quit()"
        ))
        .await;
    assert_eq!(out, ["250"]);
    // An unconfirmed triplet expires: a retry after expire_secs starts over.
    let script = format!("{GREY}\nrcpt('y@remote.test', 'dave@example.com')");
    assert!(t.py(&script).await[0].starts_with("451"));
    t.clock
        .advance(Duration::from_secs(settings.greylisting.expire_secs + 1));
    assert!(
        t.py(&script).await[0].starts_with("451"),
        "expired: again 451"
    );
    t.clock.advance(Duration::from_secs(300));
    assert!(t.py(&script).await[0].starts_with("250"));
}
