//! Outbound delivery (issue 3 item 6, guide §12.1, §12.2, §24.1, §24.2, §25.3): the queue
//! runner against a Python SMTP sink on loopback, with MX records from an in-process
//! hickory DNS server and a movable clock.

mod common;
#[path = "../src/dns/test_zone.rs"]
mod test_zone;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use keel_core::clock::{Clock, SharedClock};
use keel_core::log::LogKind;
use keel_smtp::dns::Resolver;
use keel_smtp::outbound::TaskPhase;
use keel_smtp::queue::{self, DeleteCriteria, RetryTarget};
use keel_smtp::settings::{RelayAuth, RelayTls};
use keel_smtp::{QueueContext, QueueRunner, SmtpSettings};
use keel_store::{QueueRcptState, QueuedMessage, QueuedRecipient};
use serde_json::{Value, json};
use test_zone::{TestDns, TestRecord};

struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start(cfg: Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cfg.json"), cfg.to_string()).expect("cfg");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path().join("cfg.json"))
            .arg(dir.path().join("log.jsonl"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = line.trim().parse().expect("sink port");
        Self { child, port, dir }
    }
    fn set(&self, cfg: Value) {
        std::fs::write(self.dir.path().join("cfg.json"), cfg.to_string()).expect("cfg");
    }
    fn transactions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    t: TestServer,
    sink: Sink,
    _dns: TestDns,
    runner: QueueRunner,
}

const HOUR: u64 = 3600;

fn zone() -> Vec<TestRecord> {
    vec![
        TestRecord::mx("remote.test", 10, "mx.remote.test"),
        TestRecord::a("mx.remote.test", "127.0.0.1"),
        // Fail-over: the preferred MX has an address nobody listens on.
        TestRecord::mx("failover.test", 10, "dead.failover.test"),
        TestRecord::mx("failover.test", 20, "alive.failover.test"),
        TestRecord::a("dead.failover.test", "127.0.0.2"),
        TestRecord::a("alive.failover.test", "127.0.0.1"),
        TestRecord::mx("nullmx.test", 0, "."),
        TestRecord::a("relay.isp.test", "127.0.0.1"),
    ]
}

async fn env(sink_cfg: Value, tweak: impl FnOnce(&mut SmtpSettings)) -> Env {
    let sink = Sink::start(sink_cfg);
    let mut settings = SmtpSettings {
        mx_port: sink.port,
        ..SmtpSettings::default()
    };
    tweak(&mut settings);
    let t = TestServer::start(settings).await;
    let zones = ["remote.test", "failover.test", "nullmx.test", "isp.test"]
        .iter()
        .map(|origin| {
            let recs = zone()
                .into_iter()
                .filter(|r| r.name == *origin || r.name.ends_with(&format!(".{origin}")))
                .collect();
            ((*origin).to_owned(), recs)
        })
        .collect();
    let dns = TestDns::start_zones(zones).await;
    let clock: SharedClock = Arc::new(t.clock.clone());
    let runner = QueueRunner::new(QueueContext {
        meta: t.meta.clone(),
        blobs: t.blobs.clone(),
        mailboxes: t.mailboxes.clone(),
        logs: t.logs.clone(),
        clock,
        resolver: Resolver::with_nameserver(dns.addr()).expect("resolver"),
        settings: QueueContext::settings_from_store(t.meta.clone()),
        hostname: Arc::new(|| common::HOSTNAME.to_owned()),
    })
    .with_poll_interval(Duration::from_millis(50));
    Env {
        t,
        sink,
        _dns: dns,
        runner,
    }
}

const BODY: &str = "From: alice@example.com\r\nTo: bob@remote.test\r\nSubject: Outbound test\r\n\r\nHello from Keel.\r\n.leading dot line\r\n";

impl Env {
    /// Queues a message from `sender` to `(address, notify)` recipients.
    fn queue(&self, sender: &str, rcpts: &[(&str, Option<&str>)], ret: Option<&str>) -> String {
        let now = self.t.clock.now().timestamp();
        let blob = self.t.blobs.put(BODY.as_bytes()).expect("blob");
        let id = keel_smtp::new_queue_id(now);
        self.t
            .meta
            .enqueue(&QueuedMessage {
                id: id.clone(),
                sender: sender.into(),
                envid: Some("env-42".into()),
                ret: ret.map(str::to_owned),
                size: BODY.len() as u64,
                blob,
                created: now,
                next_attempt: now,
                recipients: rcpts
                    .iter()
                    .map(|(a, n)| {
                        let mut r = QueuedRecipient::new(*a);
                        r.notify = n.map(str::to_owned);
                        r.orcpt = Some(format!("rfc822;{a}"));
                        r
                    })
                    .collect(),
            })
            .expect("enqueue");
        id
    }

    fn state(&self, id: &str) -> Option<Vec<(String, QueueRcptState)>> {
        self.t.meta.queued_message(id).expect("get").map(|m| {
            m.recipients
                .into_iter()
                .map(|r| (r.address, r.state))
                .collect()
        })
    }

    fn advance(&self, secs: u64) {
        self.t.clock.advance(Duration::from_secs(secs));
    }

    fn mail_log(&self) -> String {
        self.t.log(LogKind::Mail)
    }
}

/// Runs Python's `email` parser on a stored report and prints its structure.
fn parse_report(raw: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dsn.eml");
    std::fs::write(&path, raw).expect("write");
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.compat32)
print('type', m.get_content_type(), m.get_param('report-type'))
print('from', m['From'])
print('subject', m['Subject'])
print('auto', m['Auto-Submitted'])
for p in m.get_payload():
    print('part', p.get_content_type())
    if p.get_content_type() == 'message/delivery-status':
        for block in p.get_payload():
            for k in ('Reporting-MTA', 'Original-Envelope-Id', 'Final-Recipient', 'Original-Recipient', 'Action', 'Status', 'Remote-MTA', 'Diagnostic-Code'):
                if block[k] is not None:
                    print('field', k, block[k])
    elif p.get_content_type() == 'text/rfc822-headers':
        print('headers', 'Subject: Outbound test' in p.get_payload(), 'Hello from Keel' in p.get_payload())
    elif p.get_content_type() == 'message/rfc822':
        inner = p.get_payload()[0]
        print('returned', inner['Subject'], 'Hello from Keel' in inner.get_payload())
"#,
        )
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ok_sink() -> Value {
    json!({})
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_delivers_to_mx_with_dsn_parameters_and_logs_sent() {
    let e = env(ok_sink(), |_| {}).await;
    let id = e.queue(
        "alice@example.com",
        &[("bob@remote.test", Some("SUCCESS,FAILURE"))],
        Some("HDRS"),
    );
    assert_eq!(e.runner.run_once().await.expect("run"), 1);
    let tx = e.sink.transactions();
    assert_eq!(tx.len(), 1, "{tx:?}");
    assert_eq!(
        tx[0]["ehlo"], "mx.example.com",
        "EHLO with the Internet hostname"
    );
    let mail = tx[0]["mail"].as_str().expect("mail");
    assert!(mail.starts_with("MAIL FROM:<alice@example.com>"), "{mail}");
    for p in [" SIZE=", " RET=HDRS", " ENVID=env-42"] {
        assert!(mail.contains(p), "{p} missing in {mail}");
    }
    let rcpt = tx[0]["rcpts"][0].as_str().expect("rcpt");
    assert!(
        rcpt.contains("NOTIFY=SUCCESS,FAILURE") && rcpt.contains("ORCPT=rfc822;bob@remote.test"),
        "{rcpt}"
    );
    let data = tx[0]["data"].as_str().expect("data");
    assert!(
        data.contains("\r\n.leading dot line"),
        "dot-stuffing undone by the sink: {data:?}"
    );
    assert_eq!(e.state(&id), None, "dequeued once final");
    assert!(
        e.t.blobs.list().expect("blobs").is_empty(),
        "orphaned blob removed"
    );
    let log = e.mail_log();
    assert!(
        log.contains(&format!(
            "Sent: Queue-ID: {id}, Recipient: <bob@remote.test>, Result: delivered, Status: 2.0.0"
        )),
        "{log}"
    );
    // The peer took NOTIFY=SUCCESS on: no "relayed" report from us.
    assert!(e.t.inbox("alice@example.com").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_mx_failover_from_dead_host_to_next() {
    let e = env(ok_sink(), |_| {}).await;
    let id = e.queue("alice@example.com", &[("x@failover.test", None)], None);
    e.runner.run_once().await.expect("run");
    assert_eq!(e.sink.transactions().len(), 1);
    assert_eq!(e.state(&id), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_4xx_deferred_then_delivered_after_retry_interval() {
    let e = env(
        json!({"rcpt": {"bob@remote.test": "451 4.3.0 greylisted, try later"}}),
        |_| {},
    )
    .await;
    let id = e.queue("alice@example.com", &[("bob@remote.test", None)], None);
    e.runner.run_once().await.expect("run");
    assert_eq!(
        e.state(&id),
        Some(vec![("bob@remote.test".into(), QueueRcptState::Deferred)])
    );
    let now = e.t.clock.now().timestamp();
    let view = queue::show(&*e.t.meta, &id, now)
        .expect("show")
        .expect("queued");
    assert_eq!(
        view.next_attempt,
        Some(now + 1800),
        "retry every 30 min by default"
    );
    assert!(view.status.contains("451 4.3.0 greylisted"), "{view:?}");
    assert!(e.mail_log().contains("Result: deferred, Status: 4.3.0"));
    // Not due yet: nothing happens.
    e.sink.set(ok_sink());
    assert_eq!(e.runner.run_once().await.expect("run"), 0);
    e.advance(1801);
    assert_eq!(e.runner.run_once().await.expect("run"), 1);
    assert_eq!(e.state(&id), None);
    assert_eq!(e.sink.transactions().len(), 1);
    assert!(e.t.inbox("alice@example.com").await.is_empty(), "no DSN");
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_5xx_per_recipient_sends_failure_dsn_to_local_sender() {
    let e = env(
        json!({"rcpt": {"nobody@remote.test": "550 5.1.1 no such user"}}),
        |_| {},
    )
    .await;
    let id = e.queue(
        "alice@example.com",
        &[("bob@remote.test", None), ("nobody@remote.test", None)],
        None,
    );
    // guide §24.6 statistics (other tests of this binary may add to the totals).
    let counter = |k: &str| keel_core::stats::global().lifetime()[k];
    let (sent, failed, dsn) = (
        counter("messages_sent_remote"),
        counter("deliveries_failed"),
        counter("dsn_sent"),
    );
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&id), None, "both recipients final");
    assert!(counter("messages_sent_remote") > sent);
    assert!(counter("deliveries_failed") > failed);
    assert!(counter("dsn_sent") > dsn);
    let tx = e.sink.transactions();
    assert_eq!(tx[0]["rcpts"].as_array().map(Vec::len), Some(1));
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1, "one failure report");
    let s = parse_report(&inbox[0]);
    let has = |l: &str| s.iter().any(|x| x == l);
    assert!(has("type multipart/report delivery-status"), "{s:?}");
    assert!(
        has("from \"Mail Delivery System\" <MAILER-DAEMON@mx.example.com>"),
        "{s:?}"
    );
    assert!(has("subject Undelivered mail: Outbound test"), "{s:?}");
    assert!(has("auto auto-replied"), "{s:?}");
    assert!(has("part text/plain"));
    assert!(has("part message/delivery-status"));
    assert!(has("field Reporting-MTA dns; mx.example.com"), "{s:?}");
    assert!(has("field Original-Envelope-Id env-42"), "{s:?}");
    assert!(
        has("field Final-Recipient rfc822; nobody@remote.test"),
        "{s:?}"
    );
    assert!(
        !s.iter().any(|l| l.contains("bob@remote.test")),
        "only the failed one: {s:?}"
    );
    assert!(has("field Action failed"));
    assert!(has("field Status 5.1.1"));
    assert!(has("field Remote-MTA dns; mx.remote.test"), "{s:?}");
    assert!(
        has("field Diagnostic-Code smtp; 550 5.1.1 no such user"),
        "{s:?}"
    );
    // RET absent: a failure report returns the full message.
    assert!(has("part message/rfc822"), "{s:?}");
    assert!(has("returned Outbound test True"), "{s:?}");
    assert!(String::from_utf8_lossy(&inbox[0]).starts_with("Return-Path: <>\r\n"));
    let log = e.mail_log();
    assert!(log.contains("Recipient: <nobody@remote.test>, Result: failed, Status: 5.1.1"));
    assert!(log.contains("Recipient: <bob@remote.test>, Result: delivered"));
    assert!(
        log.contains("Service: DSN, From: <>, To: <alice@example.com>")
            && log.contains("Report: failed"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_ret_hdrs_returns_only_headers() {
    let e = env(
        json!({"rcpt": {"nobody@remote.test": "550 5.1.1 no such user"}}),
        |_| {},
    )
    .await;
    e.queue(
        "alice@example.com",
        &[("nobody@remote.test", None)],
        Some("HDRS"),
    );
    e.runner.run_once().await.expect("run");
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let s = parse_report(&inbox[0]);
    assert!(s.iter().any(|l| l == "part text/rfc822-headers"), "{s:?}");
    assert!(
        s.iter().any(|l| l == "headers True False"),
        "headers, no body: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_no_dsn_to_null_sender_and_notify_never() {
    let e = env(
        json!({"rcpt": {"nobody@remote.test": "550 5.1.1 no such user"}}),
        |_| {},
    )
    .await;
    let a = e.queue("", &[("nobody@remote.test", None)], None);
    let b = e.queue(
        "alice@example.com",
        &[("nobody@remote.test", Some("NEVER"))],
        None,
    );
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&a), None);
    assert_eq!(e.state(&b), None);
    assert!(e.t.inbox("alice@example.com").await.is_empty());
    assert!(
        e.t.meta.queued_messages().expect("list").is_empty(),
        "nothing queued to <>"
    );
    assert!(!e.mail_log().contains("Service: DSN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_warning_dsn_once_after_warn_after_then_bounce_after_bounce_after() {
    let e = env(
        json!({"rcpt": {"bob@remote.test": "452 4.2.2 mailbox full"}}),
        |_| {},
    )
    .await;
    let id = e.queue("alice@example.com", &[("bob@remote.test", None)], None);
    e.runner.run_once().await.expect("run");
    assert!(
        e.t.inbox("alice@example.com").await.is_empty(),
        "no warning before 4 h"
    );
    e.advance(4 * HOUR + 1);
    e.runner.run_once().await.expect("run");
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1, "one delay warning");
    let s = parse_report(&inbox[0]);
    assert!(s.iter().any(|l| l == "field Action delayed"), "{s:?}");
    assert!(
        s.iter().any(|l| l.starts_with("subject Delayed mail")),
        "{s:?}"
    );
    assert!(e.mail_log().contains("Report: delayed"));
    e.advance(HOUR);
    e.runner.run_once().await.expect("run");
    assert_eq!(
        e.t.inbox("alice@example.com").await.len(),
        1,
        "warning sent once"
    );
    assert!(e.state(&id).is_some());
    // guide §12.2 / requirements-1 §0.12: bounce after 5 days.
    e.advance(5 * 24 * HOUR);
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&id), None, "removed after the bounce deadline");
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 2);
    let s = parse_report(&inbox[1]);
    assert!(s.iter().any(|l| l == "field Action failed"), "{s:?}");
    assert!(s.iter().any(|l| l == "field Status 4.4.7"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_null_mx_fails_immediately_with_dsn() {
    let e = env(ok_sink(), |_| {}).await;
    let id = e.queue("alice@example.com", &[("x@nullmx.test", None)], None);
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&id), None);
    assert!(e.sink.transactions().is_empty());
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let s = parse_report(&inbox[0]);
    assert!(s.iter().any(|l| l == "field Status 5.1.10"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_relay_host_with_smtp_auth_plain() {
    let mut cfg = json!({"auth": ["relayuser", "relay-secret"], "dsn": false});
    let e = env(cfg.clone(), |_| {}).await;
    let mut s = keel_smtp::load_settings(&*e.t.meta).expect("settings");
    s.relay_host = Some(format!("relay.isp.test:{}", e.sink.port));
    s.relay_tls = RelayTls::None;
    s.relay_auth = Some(RelayAuth {
        user: "relayuser".into(),
        password: "relay-secret".into(),
    });
    e.t.set_settings(&s);
    // Domains without MX records go to the relay too.
    let id = e.queue(
        "alice@example.com",
        &[
            ("bob@remote.test", None),
            ("z@nowhere.invalid", Some("SUCCESS")),
        ],
        None,
    );
    e.runner.run_once().await.expect("run");
    let tx = e.sink.transactions();
    assert_eq!(tx.len(), 1, "{tx:?}");
    assert_eq!(tx[0]["auth"], "relayuser");
    assert_eq!(tx[0]["rcpts"].as_array().map(Vec::len), Some(2));
    assert!(
        !tx[0]["mail"].as_str().unwrap_or("").contains("RET="),
        "no DSN params without DSN"
    );
    assert_eq!(e.state(&id), None);
    assert!(
        e.mail_log()
            .contains("Recipient: <bob@remote.test>, Result: relayed")
    );
    // NOTIFY=SUCCESS and the relay has no DSN: we report "relayed" (RFC 3461 §6.2.2).
    let inbox = e.t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let s = parse_report(&inbox[0]);
    assert!(s.iter().any(|l| l == "field Action relayed"), "{s:?}");
    // Wrong password: deferred, not failed.
    cfg["auth"] = json!(["relayuser", "other"]);
    e.sink.set(cfg);
    let id = e.queue("alice@example.com", &[("bob@remote.test", None)], None);
    e.runner.run_once().await.expect("run");
    assert_eq!(
        e.state(&id),
        Some(vec![("bob@remote.test".into(), QueueRcptState::Deferred)])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guide_24_1_queue_list_retry_now_and_delete() {
    let e = env(
        json!({"rcpt": {"bob@remote.test": "451 4.3.0 later"}}),
        |_| {},
    )
    .await;
    let a = e.queue("alice@example.com", &[("bob@remote.test", None)], None);
    let b = e.queue("carol@example.com", &[("dave@remote.test", None)], None);
    let now = e.t.clock.now().timestamp();
    let views = queue::list(&*e.t.meta, now).expect("list");
    assert_eq!(views.len(), 2);
    assert!(
        views.iter().all(|v| v.next_attempt.is_none()),
        "ASAP before the first try"
    );
    assert_eq!(queue::totals(&views).bytes, 2 * BODY.len() as u64);
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&a).map(|s| s[0].1), Some(QueueRcptState::Deferred));
    assert_eq!(e.state(&b), None, "dave was delivered");
    e.sink.set(ok_sink());
    let n = queue::retry_now(&*e.t.meta, &RetryTarget::All, now).expect("retry");
    assert_eq!(n, 1);
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&a), None, "retried without moving the clock");

    let c = e.queue("carol@example.com", &[("x@remote.test", None)], None);
    let d = e.queue("alice@example.com", &[("y@remote.test", None)], None);
    let none = queue::delete(&*e.t.meta, &*e.t.blobs, &DeleteCriteria::default(), now)
        .expect("delete nothing");
    assert!(none.is_empty(), "no criteria deletes nothing");
    let gone = queue::delete(
        &*e.t.meta,
        &*e.t.blobs,
        &DeleteCriteria {
            sender: Some("carol@*".into()),
            ..DeleteCriteria::default()
        },
        now,
    )
    .expect("delete");
    assert_eq!(gone, vec![c.clone()]);
    e.advance(7200);
    let gone = queue::delete(
        &*e.t.meta,
        &*e.t.blobs,
        &DeleteCriteria {
            recipient: Some("Y@remote.test".into()),
            older_than_secs: Some(3600),
            ..DeleteCriteria::default()
        },
        e.t.clock.now().timestamp(),
    )
    .expect("delete");
    assert_eq!(gone, vec![d]);
    assert!(e.t.meta.queued_messages().expect("list").is_empty());
    assert!(e.t.blobs.list().expect("blobs").is_empty());
    assert!(
        e.t.inbox("carol@example.com").await.is_empty(),
        "deleting is silent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guide_24_2_delivery_task_limit_and_phases() {
    let e = env(json!({"slow": 0.6}), |s| s.max_delivery_tasks = 2).await;
    for i in 0..5 {
        e.queue(
            "alice@example.com",
            &[(&format!("u{i}@remote.test"), None)],
            None,
        );
    }
    let runner = e.runner.clone();
    let run = tokio::spawn(async move { runner.run_once().await });
    let tasks = e.runner.tasks();
    let mut seen_max = 0;
    let mut saw_smtp_phase = false;
    while !run.is_finished() {
        let list = tasks.list();
        seen_max = seen_max.max(list.len());
        saw_smtp_phase |= list.iter().any(|t| {
            t.phase == TaskPhase::SmtpDelivery && t.server.as_deref() == Some("mx.remote.test")
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run.await.expect("join").expect("run"), 5);
    assert!((1..=2).contains(&seen_max), "{seen_max}");
    assert!(saw_smtp_phase);
    let tx = e.sink.transactions();
    assert_eq!(tx.len(), 5);
    let max_conc = tx.iter().filter_map(|t| t["concurrent"].as_u64()).max();
    assert_eq!(max_conc, Some(2), "{tx:?}");
    assert!(tasks.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_is_woken_after_enqueue_and_stops_on_shutdown() {
    let e = env(ok_sink(), |_| {}).await;
    let runner = e
        .runner
        .clone()
        .with_poll_interval(Duration::from_secs(3600));
    let waker = runner.waker();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(runner.run(rx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = e.queue("alice@example.com", &[("bob@remote.test", None)], None);
    waker.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while e.state(&id).is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.state(&id), None, "delivered after wake");
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops")
        .expect("join");
}

/// guide §7.10 backup MX, "offline delivery triggered by ETRN" (RFC 1985): mail for the
/// domain is accepted and held (never attempted, shown as held), until an allowed client
/// sends ETRN; then it goes to the configured forward host. A temporary failure after
/// the release puts it back on hold (no bounce by age).
#[tokio::test(flavor = "multi_thread")]
async fn guide_7_10_mail_held_for_etrn_is_delivered_to_the_forward_host_after_etrn() {
    let e = env(
        json!({"rcpt": {"boss@backup.test": "451 4.3.0 not yet"}}),
        |s| s.etrn_ip_group = Some(keel_core::ipgroup::LOCAL_CLIENTS.to_owned()),
    )
    .await;
    e.t.directory
        .add_domain(keel_directory::NewDomain {
            name: "backup.test".into(),
            forwarding: Some(keel_directory::DomainForwarding {
                host: "mx.remote.test".into(),
                port: e.sink.port,
                mode: keel_directory::ForwardMode::OfflineEtrn,
            }),
            ..keel_directory::NewDomain::default()
        })
        .expect("backup.test");
    let out =
        e.t.py(r#"
s = conn()
send(s, 'x@remote.test', ['boss@backup.test', 'alice@example.com'], 'held')
out(s.docmd('ETRN', 'backup.test')[0])
s.quit()
"#)
            .await;
    // The ETRN right after the message releases it at once.
    assert_eq!(out, ["sent 0", "253"]);
    assert_eq!(e.t.inbox("alice@example.com").await.len(), 1, "local part");
    let now = e.t.clock.now().timestamp();
    let views = queue::list(&*e.t.meta, now).expect("list");
    assert_eq!(views.len(), 1);
    let id = views[0].id.clone();
    assert_eq!(
        views[0].recipients[0].route.as_deref(),
        Some(format!("etrn:mx.remote.test:{}", e.sink.port).as_str())
    );
    // The first ETRN made it due; the forward host answers 451, so it goes back on hold.
    assert_eq!(e.runner.run_once().await.expect("run"), 1);
    let v = queue::show(&*e.t.meta, &id, now)
        .expect("show")
        .expect("still queued");
    assert!(v.held, "{v:?}");
    assert_eq!(v.next_attempt, Some(queue::HELD_UNTIL));
    assert!(
        v.status
            .starts_with("held until ETRN for backup.test; last error: 451 4.3.0"),
        "{v:?}"
    );
    // Held: never attempted, however much time passes, and never bounced or warned.
    e.sink.set(ok_sink());
    e.advance(10 * 24 * HOUR);
    assert_eq!(e.runner.run_once().await.expect("run"), 0);
    assert_eq!(
        queue::retry_now(&*e.t.meta, &RetryTarget::All, now).unwrap(),
        0
    );
    assert!(
        !e.mail_log().contains("Service: DSN"),
        "no bounce, no warning"
    );
    assert_eq!(e.sink.transactions().len(), 0);
    // RFC 1985 §5 replies: not allowed, unknown node, served node with nothing waiting.
    let out =
        e.t.py(r#"
s = conn()
for arg in ('backup.test', '@test', 'elsewhere.test'):
    r = s.docmd('ETRN', arg)
    out(r[0], r[1].decode())
s.quit()
"#)
            .await;
    assert_eq!(
        out,
        [
            "253 2.0.0 OK, 1 pending messages for node backup.test started",
            "253 2.0.0 OK, 1 pending messages for node test started",
            "458 4.3.0 Unable to queue messages for node elsewhere.test",
        ]
    );
    assert_eq!(e.runner.run_once().await.expect("run"), 1);
    assert_eq!(e.state(&id), None, "delivered after ETRN");
    let tx = e.sink.transactions();
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0]["rcpts"].as_array().map(Vec::len), Some(1));
    assert!(
        tx[0]["rcpts"][0]
            .as_str()
            .is_some_and(|r| r.contains("boss@backup.test"))
    );
    let out = e
        .t
        .py("s = conn()\nr = s.docmd('ETRN', 'backup.test')\nout(r[0], r[1].decode())\ns.quit()")
        .await;
    assert_eq!(
        out,
        ["251 2.0.0 OK, no messages waiting for node backup.test"]
    );
}

/// guide §12.5 "ETRN Download", §7.10: Keel as ETRN client asks a backup server (here a
/// second Keel holding mail for backup.test) for its mail at start-up of the runner and
/// on request; refusals go to the warning log.
#[tokio::test(flavor = "multi_thread")]
async fn guide_12_5_etrn_download_releases_mail_held_on_the_backup_server() {
    let backup = TestServer::start(SmtpSettings {
        etrn_ip_group: Some(keel_core::ipgroup::LOCAL_CLIENTS.to_owned()),
        ..SmtpSettings::default()
    })
    .await;
    let now = backup.clock.now().timestamp();
    let blob = backup.blobs.put(BODY.as_bytes()).expect("blob");
    let id = keel_smtp::new_queue_id(now);
    let mut r = QueuedRecipient::new("boss@backup.test");
    r.route = Some(queue::held_route("mail1.backup.test", 25));
    backup
        .meta
        .enqueue(&QueuedMessage {
            id: id.clone(),
            sender: "x@remote.test".into(),
            envid: None,
            ret: None,
            size: BODY.len() as u64,
            blob,
            created: now,
            next_attempt: queue::HELD_UNTIL,
            recipients: vec![r],
        })
        .expect("enqueue");
    let port = backup.mx;
    let e = env(ok_sink(), |s| {
        s.etrn_download = vec![keel_smtp::settings::EtrnServer {
            host: format!("127.0.0.1:{port}"),
            domains: vec!["backup.test".into(), "unknown.test".into()],
            ..keel_smtp::settings::EtrnServer::default()
        }];
    })
    .await;
    let next = || {
        backup
            .meta
            .queued_message(&id)
            .expect("get")
            .expect("queued")
            .next_attempt
    };
    // At start-up the runner sends ETRN by itself.
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(e.runner.clone().run(rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while next() == queue::HELD_UNTIL && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(next(), now, "released by the start-up ETRN");
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops")
        .expect("join");
    // On request: the answers per domain.
    let out = e.runner.etrn_download().await;
    let replies: Vec<(String, bool)> = out
        .iter()
        .map(|o| (format!("{} {}", o.domain, o.reply), o.accepted))
        .collect();
    assert_eq!(
        replies,
        [
            (
                "backup.test 253 OK, 1 pending messages for node backup.test started".to_owned(),
                true
            ),
            (
                "unknown.test 458 Unable to queue messages for node unknown.test".to_owned(),
                false
            ),
        ]
    );
    assert!(
        e.t.log(LogKind::Warning)
            .contains("ETRN unknown.test at 127.0.0.1:")
    );
}

/// A minimal ETRN server on loopback: answers the greeting, EHLO, ETRN and QUIT, and
/// counts the ETRN commands it receives.
/// Waits up to 10 s until `count` reaches `n`; returns the count then.
async fn wait_for_count(count: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
    use std::sync::atomic::Ordering;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count.load(Ordering::SeqCst)
}

async fn etrn_counter() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = TokioBufReader::new(r).lines();
                let _ = w.write_all(b"220 etrn.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 etrn.test\r\n",
                        "ETRN" => {
                            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            b"250 OK, queuing started\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, count)
}

/// guide §20 "Valid only at time" for ETRN download: the start-up round always runs
/// (guide §7.10); later rounds run only while the time interval named by
/// `etrn_download_time_interval` holds, and a changed setting applies at the next round.
#[tokio::test(flavor = "multi_thread")]
async fn guide_20_etrn_download_rounds_only_inside_the_time_interval() {
    use chrono::NaiveDate;
    use keel_core::timeinterval::{TimeInterval, TimeItem};
    use std::sync::atomic::Ordering;
    let (port, count) = etrn_counter().await;
    let day = |y, m, d| {
        NaiveDate::from_ymd_opt(y, m, d)
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("time")
    };
    let e = env(ok_sink(), |s| {
        s.etrn_download = vec![keel_smtp::settings::EtrnServer {
            host: format!("127.0.0.1:{port}"),
            domains: vec!["backup.test".into()],
            ..keel_smtp::settings::EtrnServer::default()
        }];
        s.etrn_download_interval_secs = 60;
        s.etrn_download_time_interval = Some("Long ago".into());
    })
    .await;
    let dir = &e.t.directory;
    dir.add_time_interval(TimeInterval::new(
        "Long ago",
        vec![TimeItem::absolute(day(2000, 1, 1), day(2000, 1, 2))],
    ))
    .expect("interval");
    dir.add_time_interval(TimeInterval::new(
        "This century",
        vec![TimeItem::absolute(day(2000, 1, 1), day(2100, 1, 1))],
    ))
    .expect("interval");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(e.runner.clone().run(rx));
    assert_eq!(
        wait_for_count(&count, 1).await,
        1,
        "the start-up round ignores the interval"
    );
    // A round is due, but the interval does not hold: nothing is sent.
    e.t.clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "sent outside the time interval"
    );
    // Inside the interval the next due round goes out.
    let mut s = keel_smtp::load_settings(&*e.t.meta).expect("settings");
    s.etrn_download_time_interval = Some("This century".into());
    keel_smtp::save_settings(&*e.t.meta, &s).expect("save");
    e.t.clock.advance(Duration::from_secs(61));
    assert_eq!(
        wait_for_count(&count, 2).await,
        2,
        "no round inside the time interval"
    );
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops")
        .expect("join");
}

/// guide §20 "At HH:MM": with no interval, an ETRN download round goes out when the clock
/// passes one of the `etrn_download_at` times of day (server local time), once.
#[tokio::test(flavor = "multi_thread")]
async fn guide_20_etrn_download_at_a_time_of_day() {
    use std::sync::atomic::Ordering;
    let (port, count) = etrn_counter().await;
    let e = env(ok_sink(), |s| {
        s.etrn_download = vec![keel_smtp::settings::EtrnServer {
            host: format!("127.0.0.1:{port}"),
            domains: vec!["backup.test".into()],
            ..keel_smtp::settings::EtrnServer::default()
        }];
        s.etrn_download_interval_secs = 0;
    })
    .await;
    // Ten minutes from now (local time), as HH:MM.
    let now = e.t.clock.unix();
    let local = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .expect("time")
            .with_timezone(&chrono::Local)
    };
    let at = local(now + 600).format("%H:%M").to_string();
    let mut s = keel_smtp::load_settings(&*e.t.meta).expect("settings");
    s.etrn_download_at = vec![at.clone(), "not a time".into()];
    keel_smtp::save_settings(&*e.t.meta, &s).expect("save");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(e.runner.clone().run(rx));
    assert_eq!(wait_for_count(&count, 1).await, 1, "the start-up round");
    // Five minutes on: not yet.
    e.t.clock.advance(Duration::from_secs(300));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "sent before {at}");
    // Past the time of day: one round, and only one.
    e.t.clock.advance(Duration::from_secs(360));
    assert_eq!(wait_for_count(&count, 2).await, 2, "no round at {at}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "more than one round at {at}"
    );
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops")
        .expect("join");
}
