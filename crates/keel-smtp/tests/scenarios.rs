//! Acceptance scenarios of requirements-1 "## Y." (SMTP side) and requirements-2 Y.12,
//! driven with Python's smtplib against the real server on loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestServer, contains};
use keel_core::log::LogKind;
use keel_directory::{NewAlias, Quota, UserPatch};
use keel_smtp::SmtpSettings;
use keel_store::sqlite::SqliteStore;
use keel_store::{BlobStore, MetaStore};

fn alias(name: &str, targets: &[&str]) -> NewAlias {
    NewAlias {
        name: name.into(),
        domain: "example.com".into(),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        description: String::new(),
    }
}

async fn server() -> TestServer {
    TestServer::start(SmtpSettings::default()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn banner_and_ehlo_advertise_the_extensions_without_version() {
    let t = server().await;
    let out = t
        .py(r#"
s = smtplib.SMTP()
code, banner = s.connect('127.0.0.1', MX)
out(code, banner.decode())
code, resp = s.ehlo('client.test')
for l in resp.decode().splitlines(): out(l)
out(s.docmd('VRFY', 'alice')[0], s.docmd('EXPN', 'staff')[0])
"#)
        .await;
    assert_eq!(out[0], "220 mx.example.com ESMTP");
    for ext in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
        "STARTTLS",
        "AUTH SCRAM-SHA-256 PLAIN LOGIN",
    ] {
        assert!(out.iter().any(|l| l == ext), "{ext} missing in {out:?}");
    }
    // RFC 5321 §3.5.3: VRFY off → 252, EXPN off → 502.
    assert_eq!(out.last().unwrap(), "252 502");
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_domain_alias_is_delivery_only() {
    let t = server().await;
    let out = t
        .py("s = conn(); send(s, 'x@remote.test', ['alice@example.net'], 'via alias'); s.quit()")
        .await;
    assert_eq!(out, ["sent 0"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    assert!(contains(&inbox[0], "Subject: via alias"));
    assert!(contains(&inbox[0], "Return-Path: <x@remote.test>"));
    assert!(contains(&inbox[0], "by mx.example.com with ESMTP id "));
    assert!(contains(&inbox[0], "for <alice@example.net>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_wildcard_aliases() {
    let t = server().await;
    t.directory.add_alias(alias("sales.*", &["carol"])).unwrap();
    t.directory.add_alias(alias("?ime", &["dave"])).unwrap();
    let out = t
        .py(r#"
s = conn()
send(s, 'x@remote.test', ['sales.eu@example.com'], 'sales')
send(s, 'x@remote.test', ['time@example.com', 'dime@example.com'], 'time')
s.mail('x@remote.test')
out(s.rcpt('xtime@example.com')[0], s.rcpt('ime@example.com')[0])
s.quit()
"#)
        .await;
    assert_eq!(out, ["sent 0", "sent 0", "550 550"]);
    assert_eq!(t.inbox("carol@example.com").await.len(), 1);
    // Both aliases resolve to dave: one message, delivered once.
    assert_eq!(t.inbox("dave@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_catch_all() {
    let t = server().await;
    let script = r#"
s = conn(); s.mail('x@remote.test'); out(s.rcpt('nobody@example.com')[0]); s.quit()
"#;
    assert_eq!(t.py(script).await, ["550"]);
    t.directory.add_alias(alias("*", &["admin"])).unwrap();
    assert_eq!(t.py(script).await, ["250"]);
    let out = t
        .py(r#"
s = conn()
send(s, 'x@remote.test', ['nobody@example.com'], 'catch')
send(s, 'x@remote.test', ['alice@example.com'], 'own')
s.quit()
"#)
        .await;
    assert_eq!(out, ["sent 0", "sent 0"]);
    assert_eq!(t.inbox("admin@example.com").await.len(), 1);
    assert_eq!(t.inbox("alice@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_alias_fan_out_and_loop_breaking() {
    let t = server().await;
    for u in ["jwayne", "info", "c"] {
        t.directory
            .add_user(keel_directory::NewUser::new(
                &format!("{u}@example.com"),
                common::PASSWORD,
            ))
            .unwrap();
    }
    t.directory
        .add_alias(alias("jwayne", &["info", "jwayne"]))
        .unwrap();
    t.directory.add_alias(alias("a", &["b"])).unwrap();
    t.directory.add_alias(alias("b", &["c"])).unwrap();
    t.directory.add_alias(alias("c", &["b"])).unwrap();
    let out = t
        .py(r#"
s = conn()
send(s, 'x@remote.test', ['jwayne@example.com'], 'fan')
send(s, 'x@remote.test', ['a@example.com'], 'loop')
s.quit()
"#)
        .await;
    assert_eq!(out, ["sent 0", "sent 0"]);
    assert_eq!(t.inbox("jwayne@example.com").await.len(), 1);
    assert_eq!(t.inbox("info@example.com").await.len(), 1);
    assert_eq!(t.inbox("c@example.com").await.len(), 1);
    assert!(t.meta.queued_messages().unwrap().is_empty(), "queue empty");
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_relay_denied_for_unauthenticated_clients() {
    let t = server().await;
    let out = t
        .py(r#"
s = conn()
send(s, 'x@remote.test', ['y@remote.test'], 'relay')
send(s, 'x@remote.test', ['alice@example.com'], 'local')
s.quit()
"#)
        .await;
    assert_eq!(out, ["refused 554", "sent 0"]);
    assert!(t.meta.queued_messages().unwrap().is_empty());
    assert!(
        t.log(LogKind::Security).contains(
            "Relay attempt from IP address 127.0.0.1, mail from <x@remote.test> to <y@remote.test> rejected"
        ),
        "{}",
        t.log(LogKind::Security)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_relay_after_smtp_auth() {
    let t = server().await;
    let out = t
        .py(r#"
s = smtplib.SMTP('127.0.0.1', MX, timeout=20)
s.ehlo('client.test'); out(s.starttls(context=CTX)[0]); s.ehlo('client.test')
out(s.login('alice', 'Secret-pw-123')[0])
send(s, 'alice@example.com', ['y@remote.test'], 'relayed 25')
s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', SMTPS, context=CTX, timeout=20)
s.ehlo('client.test'); out(s.login('alice@example.com', 'Secret-pw-123')[0])
send(s, 'alice@example.com', ['z@remote.test'], 'relayed 465')
s.quit()
"#)
        .await;
    assert_eq!(out, ["220", "235", "sent 0", "235", "sent 0"]);
    let q = t.meta.queued_messages().unwrap();
    assert_eq!(q.len(), 2);
    let rcpts: Vec<&str> = q.iter().map(|m| m.recipients[0].address.as_str()).collect();
    assert!(rcpts.contains(&"y@remote.test") && rcpts.contains(&"z@remote.test"));
    for m in &q {
        let raw = t.blobs.get(&m.blob).unwrap();
        assert!(
            contains(&raw, "with ESMTPSA id "),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        assert!(
            !contains(&raw, "Return-Path:"),
            "no Return-Path on relayed mail"
        );
        assert_eq!(m.sender, "alice@example.com");
    }
    let mail_log = t.log(LogKind::Mail);
    assert!(mail_log.contains("User: alice@example.com"), "{mail_log}");
    assert!(mail_log.contains("SSL: yes"), "{mail_log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_trusted_ip_relay_cancelled_by_failed_auth() {
    let t = TestServer::start(SmtpSettings {
        relay_ip_group: Some(keel_core::ipgroup::LOCAL_CLIENTS.to_owned()),
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py(r#"
s = conn(); send(s, 'x@remote.test', ['y@remote.test'], 'trusted'); s.quit()
s = conn()
try:
    s.login('alice', 'wrong')
except smtplib.SMTPAuthenticationError as e:
    out('auth', e.smtp_code)
s.mail('x@remote.test'); out(s.rcpt('y@remote.test')[0]); s.quit()
"#)
        .await;
    assert_eq!(out, ["sent 0", "auth 535", "554"]);
    assert_eq!(t.meta.queued_messages().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_recipient_and_failed_command_limits() {
    let t = TestServer::start(SmtpSettings {
        max_recipients: 3,
        max_failed_commands: 3,
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py(r#"
s = conn(); s.mail('x@remote.test')
for u in ['alice', 'carol', 'dave', 'admin']:
    out(s.rcpt(u + '@example.com')[0])
out(s.data(msg('limited'))[0]); s.quit()
s = conn()
for i in range(3):
    out(s.docmd('BOGUS')[0])
try:
    out(s.docmd('NOOP')[0])
except smtplib.SMTPServerDisconnected:
    out('closed')
"#)
        .await;
    assert_eq!(out[..5], ["250", "250", "250", "452", "250"]);
    assert_eq!(out[5..8], ["500", "500", "500"]);
    assert!(out[8] == "421" || out[8] == "closed", "{out:?}");
    assert_eq!(t.inbox("alice@example.com").await.len(), 1);
    assert_eq!(t.inbox("admin@example.com").await.len(), 0);
    let sec = t.log(LogKind::Security);
    assert!(sec.contains("Limit of 3 recipients per message from IP address 127.0.0.1 exceeded"));
    assert!(sec.contains("Limit of 3 failed commands from IP address 127.0.0.1 exceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_per_ip_connection_limit() {
    let mut settings = SmtpSettings {
        max_connections_per_ip: 2,
        ..SmtpSettings::default()
    };
    let t = TestServer::start(settings.clone()).await;
    let script = r#"
a = conn(); b = conn()
s = smtplib.SMTP(timeout=20)
try:
    code, _ = s.connect('127.0.0.1', MX)
    out(code)
except smtplib.SMTPConnectError as e:
    out(e.smtp_code)
except smtplib.SMTPServerDisconnected:
    out('closed')
"#;
    assert_eq!(t.py(script).await, ["421"]);
    settings.exempt_ip_group = Some(keel_core::ipgroup::LOCAL_CLIENTS.to_owned());
    t.set_settings(&settings);
    assert_eq!(t.py(script).await, ["220"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_messages_per_hour_per_ip() {
    let mut settings = SmtpSettings {
        max_messages_per_hour_per_ip: 5,
        ..SmtpSettings::default()
    };
    let t = TestServer::start(settings.clone()).await;
    let script = r#"
s = conn()
for i in range(6):
    send(s, 'x@remote.test', ['alice@example.com'], 'n%d' % i)
s.quit()
"#;
    let out = t.py(script).await;
    assert_eq!(out[..5], ["sent 0"; 5]);
    assert!(out[5].starts_with("error 45"), "{out:?}");
    assert_eq!(t.inbox("alice@example.com").await.len(), 5);
    // Sliding hour: an hour later the IP may send again.
    t.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        t.py("s = conn(); send(s, 'x@remote.test', ['alice@example.com'], 'later')")
            .await,
        ["sent 0"]
    );
    settings.exempt_ip_group = Some(keel_core::ipgroup::LOCAL_CLIENTS.to_owned());
    t.set_settings(&settings);
    let out = t
        .py("s = conn()\nfor i in range(10): send(s, 'x@remote.test', ['carol@example.com'], 'x')")
        .await;
    assert_eq!(out, ["sent 0"; 10]);
    assert!(
        t.log(LogKind::Security)
            .contains("Limit of 5 messages per hour")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_directory_harvest_block() {
    let t = TestServer::start(SmtpSettings {
        max_unknown_recipients: 3,
        harvest_block_secs: 600,
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py(r#"
s = conn(); s.mail('x@remote.test')
for i in range(4):
    out(s.rcpt('nobody%d@example.com' % i)[0])
out(s.rcpt('alice@example.com')[0]); s.quit()
s = smtplib.SMTP(timeout=20)
try:
    out(s.connect('127.0.0.1', MX)[0])
except (smtplib.SMTPConnectError) as e:
    out(e.smtp_code)
"#)
        .await;
    assert_eq!(out, ["550", "550", "550", "550", "450", "421"]);
    let sec = t.log(LogKind::Security);
    assert!(sec.contains("Directory harvest attack from 127.0.0.1 detected"));
    // guide §25.4: refusals during the block are logged too (once per session).
    assert!(
        sec.contains("Blocked IP address 127.0.0.1 (directory harvest attack): RCPT refused"),
        "{sec}"
    );
    assert!(
        sec.contains("Blocked IP address 127.0.0.1 (directory harvest attack): connection refused")
    );
    // issue 8: the block is a shared document, so other nodes see it.
    assert!(
        t.meta
            .get_doc(keel_smtp::limits::DOC_KIND, "127.0.0.1")
            .unwrap()
            .is_some()
    );
    t.clock.advance(Duration::from_secs(601));
    assert_eq!(
        t.py("s = conn(); send(s, 'x@remote.test', ['alice@example.com'], 'after')")
            .await,
        ["sent 0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_size_and_hop_limits() {
    let t = TestServer::start(SmtpSettings {
        max_message_size: 1_048_576,
        max_received_headers: 5,
        ..SmtpSettings::default()
    })
    .await;
    let out = t
        .py(r#"
s = conn()
out([l for l in s.ehlo_resp.decode().splitlines() if l.startswith('SIZE')][0])
out(s.docmd('MAIL FROM:<x@remote.test> SIZE=2000000')[0])
s.rset()
big = 'Subject: big\r\n\r\n' + ('x' * 998 + '\r\n') * 2100
try:
    s.sendmail('x@remote.test', ['alice@example.com'], big)
except smtplib.SMTPResponseException as e:
    out(e.smtp_code)
hops = ''.join('Received: from h%d by h%d; Mon, 1 Jan 2024 00:00:00 +0000\r\n' % (i, i) for i in range(6))
try:
    s.sendmail('x@remote.test', ['alice@example.com'], hops + 'Subject: loop\r\n\r\nx\r\n')
except smtplib.SMTPResponseException as e:
    out(e.smtp_code, e.smtp_error.decode()[:5])
out(s.noop()[0])
"#)
        .await;
    assert_eq!(out, ["SIZE 1048576", "552", "552", "554 5.4.6", "250"]);
    // guide §25.4: the SIZE refusal at MAIL, the one after DATA and the hop limit.
    let sec = t.log(LogKind::Security);
    let size_line = "Limit of 1048576 bytes per message from IP address 127.0.0.1 exceeded, mail from <x@remote.test> rejected";
    assert_eq!(sec.matches(size_line).count(), 2, "{sec}");
    assert!(
        sec.contains("Limit of 5 Received headers (hops) from IP address 127.0.0.1 exceeded, mail from <x@remote.test> rejected"),
        "{sec}"
    );
    assert!(
        t.inbox("alice@example.com").await.is_empty(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_quota() {
    let t = server().await;
    t.directory
        .set_user(
            "alice@example.com",
            UserPatch {
                quota: Some(Quota {
                    bytes: 0,
                    messages: 3,
                }),
                ..UserPatch::default()
            },
        )
        .unwrap();
    let out = t
        .py(r#"
s = conn()
for i in range(4):
    send(s, 'x@remote.test', ['alice@example.com'], 'q%d' % i)
s.quit()
"#)
        .await;
    // RFC 3463 X.2.2: the RCPT is refused with 452 4.2.2 once the mailbox is full.
    assert_eq!(out, ["sent 0", "sent 0", "sent 0", "refused 452"]);
    // keel-mail adds its 90 % quota warning, which counts toward the quota but is never
    // refused by it (keel-mail crate notes): 3 messages + 1 warning.
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 4);
    let subjects = inbox.iter().filter(|m| contains(m, "Subject: q")).count();
    assert_eq!(subjects, 3, "exactly the three accepted messages");
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_local_only_restriction() {
    let t = server().await;
    t.directory
        .set_user(
            "carol@example.com",
            UserPatch {
                local_domain_only: Some(true),
                ..UserPatch::default()
            },
        )
        .unwrap();
    let out = t
        .py(r#"
s = smtplib.SMTP('127.0.0.1', SUB, timeout=20); s.ehlo('c'); s.starttls(context=CTX); s.ehlo('c')
s.login('carol', 'Secret-pw-123')
s.mail('carol@example.com'); out(s.rcpt('y@remote.test')[0]); out(s.rcpt('alice@example.com')[0]); s.quit()
s = conn(); s.mail('x@remote.test'); out(s.rcpt('carol@example.com')[0]); s.quit()
s = conn(); s.mail('bob@other.test'); out(s.rcpt('carol@example.com')[0]); s.quit()
"#)
        .await;
    assert_eq!(out, ["550", "250", "550", "250"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_outgoing_limits_per_user_and_per_domain() {
    let t = server().await;
    t.directory
        .set_domain(
            "example.com",
            keel_directory::DomainPatch {
                outgoing_size_limit: Some(5_000_000),
                ..Default::default()
            },
        )
        .unwrap();
    t.directory
        .set_user(
            "alice@example.com",
            UserPatch {
                outgoing_size_limit: Some(1_000_000),
                ..UserPatch::default()
            },
        )
        .unwrap();
    let out = t
        .py(r#"
def submit(user, size):
    s = smtplib.SMTP('127.0.0.1', SUB, timeout=30); s.ehlo('c'); s.starttls(context=CTX); s.ehlo('c')
    s.login(user, 'Secret-pw-123')
    body = 'Subject: big\r\n\r\n' + ('y' * 998 + '\r\n') * (size // 1000)
    try:
        s.sendmail(user + '@example.com', ['bob@other.test'], body); out('sent')
    except smtplib.SMTPResponseException as e:
        out(e.smtp_code)
    s.quit()
submit('alice', 2000000)
submit('dave', 2000000)
submit('dave', 6000000)
"#)
        .await;
    assert_eq!(out, ["552", "sent", "552"]);
    // guide §25.4: each refusal is a security-log line.
    let sec = t.log(LogKind::Security);
    assert!(
        sec.contains("Outgoing limit of 1000000 bytes per message of user alice@example.com from IP address 127.0.0.1 exceeded, mail from <alice@example.com> rejected"),
        "{sec}"
    );
    assert!(sec.contains("Outgoing limit of 5000000 bytes per message of user dave@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_requires_auth() {
    let t = server().await;
    let out = t
        .py(r#"
s = conn(SUB); out(s.docmd('MAIL FROM:<alice@example.com>')[0])
s.starttls(context=CTX); s.ehlo('c'); s.login('alice', 'Secret-pw-123')
send(s, 'alice@example.com', ['bob@other.test'], 'submitted')
"#)
        .await;
    assert_eq!(out, ["530", "sent 0"]);
    assert_eq!(t.inbox("bob@other.test").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_auth_not_advertised_under_encrypted_connection_policy() {
    let t = server().await;
    let mut p = t.directory.security_policy().unwrap();
    p.mode = keel_directory::SecurityMode::RequireEncryptedConnection;
    t.directory.set_security_policy(p).unwrap();
    let out = t
        .py(r#"
s = conn()
out([l for l in s.ehlo_resp.decode().splitlines() if l.startswith('AUTH')])
out(s.docmd('AUTH', 'PLAIN AGFsaWNlAFNlY3JldC1wdy0xMjM=')[0])
s.starttls(context=CTX); s.ehlo('c')
out([l for l in s.ehlo_resp.decode().splitlines() if l.startswith('AUTH')])
out(s.login('alice', 'Secret-pw-123')[0])
"#)
        .await;
    assert_eq!(out[0], "['AUTH SCRAM-SHA-256']");
    assert_eq!(out[1], "538");
    assert_eq!(out[2], "['AUTH SCRAM-SHA-256 PLAIN LOGIN']");
    assert_eq!(out[3], "235");
}

#[tokio::test(flavor = "multi_thread")]
async fn message_to_three_local_recipients_is_stored_as_one_blob() {
    let t = server().await;
    let out = t
        .py("s = conn(); send(s, 'x@remote.test', ['alice@example.com', 'carol@example.com', 'dave@example.com'], 'three')")
        .await;
    assert_eq!(out, ["sent 0"]);
    let mut blobs = Vec::new();
    for u in ["alice", "carol", "dave"] {
        let f = t.mailboxes.inbox(&format!("{u}@example.com")).unwrap();
        let msgs = t.mailboxes.messages(f.id).unwrap();
        assert_eq!(msgs.len(), 1);
        blobs.push(msgs[0].blob.clone());
    }
    assert!(blobs.iter().all(|b| *b == blobs[0]), "one blob for all");
    assert_eq!(t.meta.blob_refcount(&blobs[0]).unwrap(), 3);
    assert_eq!(t.blobs.list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn low_disk_space_answers_452() {
    let t = TestServer::start(SmtpSettings {
        min_free_disk_bytes: 1_000_000,
        ..SmtpSettings::default()
    })
    .await;
    t.free_space.store(10, Ordering::SeqCst);
    let out = t
        .py("s = conn(); c, m = s.docmd('MAIL FROM:<x@remote.test>'); out(c, m.decode()[:5])")
        .await;
    assert_eq!(out, ["452 4.3.1"]);
    t.free_space.store(u64::MAX, Ordering::SeqCst);
    assert_eq!(
        t.py("s = conn(); send(s, 'x@remote.test', ['alice@example.com'], 'ok')")
            .await,
        ["sent 0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_message_is_readable_by_a_fresh_store_handle() {
    let t = server().await;
    let out = t
        .py("s = conn(); send(s, 'x@remote.test', ['alice@example.com'], 'durable')")
        .await;
    assert_eq!(out, ["sent 0"]);
    // DESIGN §3: after 250 the row is committed and the blob fsync'd: a new handle sees it.
    let path = t.data_path();
    let meta = SqliteStore::open(&path.join("meta.sqlite")).unwrap();
    let blobs = keel_store::file::FileBlobStore::open(&path.join("blobs")).unwrap();
    let f = meta
        .get_folder("alice@example.com", "INBOX")
        .unwrap()
        .expect("INBOX");
    let msgs = meta.list_messages(f.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(contains(
        &blobs.get(&msgs[0].blob).unwrap(),
        "Subject: durable"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn bdat_chunks_and_dsn_parameters_reach_the_queue() {
    let t = server().await;
    let out = t
        .py(r#"
s = conn(SUB); s.starttls(context=CTX); s.ehlo('c'); s.login('alice', 'Secret-pw-123')
out(s.docmd('MAIL FROM:<alice@example.com> RET=HDRS ENVID=abc123')[0])
out(s.docmd('RCPT TO:<y@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;y@remote.test')[0])
part1 = b'Subject: chunked\r\n\r\nfirst '
part2 = b'second\r\n'
s.send(b'BDAT %d\r\n' % len(part1) + part1); out(s.getreply()[0])
s.send(b'BDAT %d LAST\r\n' % len(part2) + part2); out(s.getreply()[0])
"#)
        .await;
    assert_eq!(out, ["250", "250", "250", "250"]);
    let q = t.meta.queued_messages().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envid.as_deref(), Some("abc123"));
    assert_eq!(q[0].ret.as_deref(), Some("HDRS"));
    let r = &q[0].recipients[0];
    assert_eq!(r.notify.as_deref(), Some("SUCCESS,FAILURE"));
    assert_eq!(r.orcpt.as_deref(), Some("rfc822;y@remote.test"));
    let raw = t.blobs.get(&q[0].blob).unwrap();
    assert!(contains(&raw, "first second\r\n"));
}

/// issue 3 item 4, RFC 3464: a local delivery that fails after the 250 (the quota is
/// fine at RCPT, but this message does not fit) gets one failure report; not for the
/// null sender, not with NOTIFY=NEVER, and not when the whole transaction was refused.
#[tokio::test(flavor = "multi_thread")]
async fn local_delivery_failure_after_data_sends_one_dsn() {
    let t = server().await;
    t.directory
        .set_user(
            "alice@example.com",
            UserPatch {
                quota: Some(Quota {
                    bytes: 3000,
                    messages: 0,
                }),
                ..UserPatch::default()
            },
        )
        .unwrap();
    let out = t
        .py(r#"
big = 'Subject: too big for alice\r\n\r\n' + ('z' * 98 + '\r\n') * 50
s = conn()
out(s.sendmail('dave@example.com', ['alice@example.com', 'carol@example.com'], big))
out(s.sendmail('', ['alice@example.com', 'carol@example.com'], big))
s.ehlo('client.test')
out(s.sendmail('dave@example.com', ['alice@example.com', 'carol@example.com'], big,
               rcpt_options=['NOTIFY=NEVER']))
try:
    s.sendmail('dave@example.com', ['alice@example.com'], big)
except smtplib.SMTPResponseException as e:
    out(e.smtp_code)
s.quit()
"#)
        .await;
    // Accepted (carol got it); alone, alice's copy is refused in-session with 452.
    assert_eq!(out, ["{}", "{}", "{}", "452"]);
    assert_eq!(t.inbox("carol@example.com").await.len(), 3);
    assert!(t.inbox("alice@example.com").await.is_empty());
    let reports = t.inbox("dave@example.com").await;
    assert_eq!(reports.len(), 1, "exactly one report");
    let r = String::from_utf8_lossy(&reports[0]);
    assert!(r.contains("Return-Path: <>"), "{r}");
    assert!(r.contains("report-type=\"delivery-status\""), "{r}");
    assert!(
        r.contains("Final-Recipient: rfc822; alice@example.com"),
        "{r}"
    );
    assert!(r.contains("Action: failed"), "{r}");
    assert!(r.contains("Status: 5.2.2"), "{r}");
    assert!(
        !r.contains("carol@example.com"),
        "only the failed recipient: {r}"
    );
    assert!(t.log(LogKind::Mail).contains("Service: DSN"));
}
