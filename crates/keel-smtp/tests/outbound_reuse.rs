//! Outbound SMTP connection reuse (RFC 5321 §3.3 several transactions per session, §4.1.1.5
//! RSET between them): the queue runner against an in-process fake receiving server that
//! counts connections, RSETs, QUITs and transactions, and can misbehave on cue (drop an
//! idle connection, drop at MAIL or after the data, refuse one message with 5xx).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::TestServer;
use keel_core::clock::{Clock, SharedClock};
use keel_core::log::LogKind;
use keel_smtp::dns::Resolver;
use keel_smtp::settings::{RelayAuth, RelayTls};
use keel_smtp::{QueueContext, QueueRunner, SmtpSettings};
use keel_store::{QueueRcptState, QueuedMessage, QueuedRecipient};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the fake server behaves; read at every command, so a test can change it.
#[derive(Default, Clone)]
struct Behaviour {
    /// Reply to `MAIL FROM:<sender>` by sender.
    mail: HashMap<String, String>,
    /// Reply to `RCPT TO:<address>` by address.
    rcpt: HashMap<String, String>,
    /// Reply after the data, by the first accepted recipient.
    data: HashMap<String, String>,
    /// Close a connection that sends no command for this long; `true` = say 421 first.
    idle_close: Option<(Duration, bool)>,
    /// Close the connection without a reply at the MAIL of the n-th transaction of every
    /// connection (1-based), after the RSET was answered.
    drop_at_mail_of: Option<usize>,
    /// Take the n-th transaction of a connection (the data is recorded) but close the
    /// connection instead of replying.
    drop_after_data_of: Option<usize>,
    /// Users accepted by AUTH PLAIN (user, password); empty = no AUTH offered.
    auth: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Tx {
    conn: usize,
    auth: Option<String>,
    rcpts: Vec<String>,
    reply: Option<String>,
}

#[derive(Default)]
struct State {
    b: Behaviour,
    connections: usize,
    active: usize,
    max_active: usize,
    rsets: usize,
    quits: usize,
    tx: Vec<Tx>,
}

#[derive(Clone)]
struct Fake {
    port: u16,
    state: Arc<Mutex<State>>,
}

fn addr_of(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_default()
}

impl Fake {
    async fn start(b: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            b,
            ..State::default()
        }));
        let fake = Self { port, state };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let f = f.clone();
                tokio::spawn(async move {
                    let id = {
                        let mut s = f.lock();
                        s.connections += 1;
                        s.active += 1;
                        s.max_active = s.max_active.max(s.active);
                        s.connections
                    };
                    let _ = f.serve(stream, id).await;
                    f.lock().active -= 1;
                });
            }
        });
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    fn tx(&self) -> Vec<Tx> {
        self.lock().tx.clone()
    }

    /// How many transactions carried `rcpt` and got an answer (or were taken silently).
    fn times(&self, rcpt: &str) -> usize {
        self.tx()
            .iter()
            .filter(|t| t.rcpts.iter().any(|r| r == rcpt))
            .count()
    }

    async fn serve(&self, stream: tokio::net::TcpStream, id: usize) -> std::io::Result<()> {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 fake.remote.test ESMTP\r\n").await?;
        let mut auth_user: Option<String> = None;
        let mut sender: Option<String> = None;
        let mut rcpts: Vec<String> = Vec::new();
        let mut n_mail = 0usize;
        loop {
            let b = self.lock().b.clone();
            let mut line = String::new();
            let n = match b.idle_close {
                Some((idle, say_421)) => {
                    match tokio::time::timeout(idle, r.read_line(&mut line)).await {
                        Ok(n) => n?,
                        Err(_) => {
                            if say_421 {
                                w.write_all(b"421 4.4.2 idle timeout, closing\r\n").await?;
                            }
                            return Ok(());
                        }
                    }
                }
                None => r.read_line(&mut line).await?,
            };
            if n == 0 {
                return Ok(());
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            let verb = line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply: String = match verb.as_str() {
                "EHLO" => {
                    let mut caps = String::from(
                        "250-fake.remote.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n",
                    );
                    if !b.auth.is_empty() {
                        caps.push_str("250-AUTH PLAIN\r\n");
                    }
                    caps.push_str("250 ENHANCEDSTATUSCODES");
                    caps
                }
                "AUTH" => {
                    let blob = match line.split(' ').nth(2) {
                        Some(b) => b.to_owned(),
                        None => {
                            w.write_all(b"334 \r\n").await?;
                            let mut l = String::new();
                            r.read_line(&mut l).await?;
                            l.trim().to_owned()
                        }
                    };
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(blob)
                        .ok()
                        .and_then(|v| String::from_utf8(v).ok())
                        .unwrap_or_default();
                    let parts: Vec<&str> = decoded.split('\0').collect();
                    match parts.as_slice() {
                        [_, u, p] if b.auth.iter().any(|(au, ap)| au == u && ap == p) => {
                            auth_user = Some((*u).to_owned());
                            "235 2.7.0 ok".into()
                        }
                        _ => "535 5.7.8 bad credentials".into(),
                    }
                }
                "MAIL" => {
                    n_mail += 1;
                    if b.drop_at_mail_of == Some(n_mail) {
                        return Ok(());
                    }
                    if !b.auth.is_empty() && auth_user.is_none() {
                        "530 5.7.0 authentication required".into()
                    } else {
                        let from = addr_of(&line);
                        let reply = b
                            .mail
                            .get(&from)
                            .cloned()
                            .unwrap_or_else(|| "250 2.1.0 ok".into());
                        if reply.starts_with('2') {
                            sender = Some(from);
                            rcpts.clear();
                        }
                        reply
                    }
                }
                "RCPT" => {
                    if sender.is_none() {
                        "503 5.5.1 MAIL first".into()
                    } else {
                        let to = addr_of(&line);
                        let reply = b
                            .rcpt
                            .get(&to)
                            .cloned()
                            .unwrap_or_else(|| "250 2.1.5 ok".into());
                        if reply.starts_with('2') {
                            rcpts.push(to);
                        }
                        reply
                    }
                }
                "DATA" => {
                    if rcpts.is_empty() {
                        "554 5.5.1 no valid recipients".into()
                    } else {
                        w.write_all(b"354 go ahead\r\n").await?;
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).await? == 0 {
                                return Ok(());
                            }
                            if l == ".\r\n" || l == ".\n" {
                                break;
                            }
                        }
                        let mut tx = Tx {
                            conn: id,
                            auth: auth_user.clone(),
                            rcpts: std::mem::take(&mut rcpts),
                            reply: None,
                        };
                        sender = None;
                        if b.drop_after_data_of == Some(n_mail) {
                            self.lock().tx.push(tx);
                            return Ok(());
                        }
                        let reply = b
                            .data
                            .get(&tx.rcpts[0])
                            .cloned()
                            .unwrap_or_else(|| "250 2.0.0 queued".into());
                        tx.reply = Some(reply.clone());
                        self.lock().tx.push(tx);
                        reply
                    }
                }
                "RSET" => {
                    self.lock().rsets += 1;
                    sender = None;
                    rcpts.clear();
                    "250 2.0.0 ok".into()
                }
                "NOOP" => "250 2.0.0 ok".into(),
                "QUIT" => {
                    self.lock().quits += 1;
                    w.write_all(b"221 2.0.0 bye\r\n").await?;
                    return Ok(());
                }
                _ => "502 5.5.2 not implemented".into(),
            };
            w.write_all(format!("{reply}\r\n").as_bytes()).await?;
        }
    }
}

struct Env {
    t: TestServer,
    fake: Fake,
    runner: QueueRunner,
}

/// Keel relaying everything to the fake server (relay host, no TLS).
async fn env(b: Behaviour, tweak: impl FnOnce(&mut SmtpSettings)) -> Env {
    let fake = Fake::start(b).await;
    let mut settings = SmtpSettings {
        relay_host: Some(format!("127.0.0.1:{}", fake.port)),
        relay_tls: RelayTls::None,
        delivery_command_timeout_secs: 10,
        ..SmtpSettings::default()
    };
    tweak(&mut settings);
    let t = TestServer::start(settings).await;
    let clock: SharedClock = Arc::new(t.clock.clone());
    let runner = QueueRunner::new(QueueContext {
        meta: t.meta.clone(),
        blobs: t.blobs.clone(),
        mailboxes: t.mailboxes.clone(),
        logs: t.logs.clone(),
        clock,
        // Never asked: the relay host is an address.
        resolver: Resolver::with_nameserver("127.0.0.1:9".parse().expect("addr")).expect("dns"),
        settings: QueueContext::settings_from_store(t.meta.clone()),
        hostname: Arc::new(|| common::HOSTNAME.to_owned()),
    })
    .with_poll_interval(Duration::from_millis(50));
    Env { t, fake, runner }
}

impl Env {
    fn queue(&self, sender: &str, rcpt: &str) -> String {
        let body = format!("From: {sender}\r\nTo: {rcpt}\r\nSubject: reuse\r\n\r\nHello.\r\n");
        let now = self.t.clock.now().timestamp();
        let blob = self.t.blobs.put(body.as_bytes()).expect("blob");
        let id = keel_smtp::new_queue_id(now);
        self.t
            .meta
            .enqueue(&QueuedMessage {
                id: id.clone(),
                sender: sender.into(),
                envid: None,
                ret: None,
                size: body.len() as u64,
                blob,
                created: now,
                next_attempt: now,
                recipients: vec![QueuedRecipient::new(rcpt)],
            })
            .expect("enqueue");
        id
    }

    fn state(&self, id: &str) -> Option<QueueRcptState> {
        self.t
            .meta
            .queued_message(id)
            .expect("get")
            .map(|m| m.recipients[0].state)
    }

    /// Waits (real time) until message `id` left the queue.
    async fn wait_gone(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.state(id).is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.state(id), None, "{id} delivered");
    }
}

/// 20 messages to one destination run on at most `max_delivery_tasks` connections, each
/// message exactly once; the one-shot run closes its sessions with QUIT at the end.
#[tokio::test(flavor = "multi_thread")]
async fn many_messages_to_one_destination_share_few_connections() {
    let e = env(Behaviour::default(), |s| s.max_delivery_tasks = 4).await;
    let ids: Vec<String> = (0..20)
        .map(|i| e.queue("alice@example.com", &format!("user{i}@remote.test")))
        .collect();
    assert_eq!(e.runner.run_once().await.expect("run"), 20);
    for id in &ids {
        assert_eq!(e.state(id), None, "{id} delivered");
    }
    for i in 0..20 {
        assert_eq!(e.fake.times(&format!("user{i}@remote.test")), 1, "user{i}");
    }
    let s = e.fake.lock();
    assert!(
        (1..=4).contains(&s.connections),
        "{} connections for 20 messages",
        s.connections
    );
    assert!(s.max_active <= 4, "{}", s.max_active);
    // RFC 5321 §4.1.1.5: a reused session starts with RSET.
    assert_eq!(s.rsets, 20 - s.connections, "one RSET per reuse");
    // Every session was closed with QUIT at the end of the run.
    assert_eq!(s.quits, s.connections);
    drop(s);
    let log = e.t.log(LogKind::Mail);
    assert_eq!(log.matches("Result: relayed").count(), 20, "{log}");
}

/// The same with reuse switched off: one connection per message, as before.
#[tokio::test(flavor = "multi_thread")]
async fn reuse_off_opens_one_connection_per_message() {
    let e = env(Behaviour::default(), |s| {
        s.max_delivery_tasks = 2;
        s.outbound_connection_reuse = false;
    })
    .await;
    for i in 0..5 {
        e.queue("alice@example.com", &format!("user{i}@remote.test"));
    }
    e.runner.run_once().await.expect("run");
    let s = e.fake.lock();
    assert_eq!((s.connections, s.tx.len(), s.rsets), (5, 5, 0));
}

/// The server drops idle connections (with and without a 421): the next message finds the
/// cached session dead at RSET and goes out on a new connection, exactly once, not
/// deferred.
#[tokio::test(flavor = "multi_thread")]
async fn server_dropping_an_idle_connection_costs_a_reconnect_not_a_deferral() {
    for say_421 in [true, false] {
        let e = env(
            Behaviour {
                idle_close: Some((Duration::from_millis(200), say_421)),
                ..Behaviour::default()
            },
            |_| {},
        )
        .await;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(e.runner.clone().run(rx));
        let waker = e.runner.waker();
        let a = e.queue("alice@example.com", "first@remote.test");
        waker.wake();
        e.wait_gone(&a).await;
        // Longer than the server's idle limit, shorter than the cache's.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let b = e.queue("alice@example.com", "second@remote.test");
        waker.wake();
        e.wait_gone(&b).await;
        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("stops")
            .expect("join");
        assert_eq!(e.fake.times("first@remote.test"), 1);
        assert_eq!(e.fake.times("second@remote.test"), 1);
        let tx = e.fake.tx();
        assert_ne!(tx[0].conn, tx[1].conn, "a new connection for the second");
        assert_eq!(e.fake.lock().connections, 2, "421 first: {say_421}");
        let log = e.t.log(LogKind::Mail);
        assert!(!log.contains("Result: deferred"), "{log}");
        assert_eq!(log.matches("Result: relayed").count(), 2, "{log}");
    }
}

/// The session passes the RSET check but the connection drops at MAIL: nothing of the
/// message was sent, so it is sent again at once on a new connection (delivered once).
#[tokio::test(flavor = "multi_thread")]
async fn connection_lost_before_the_data_on_a_reused_session_retries_on_a_new_one() {
    let e = env(
        Behaviour {
            drop_at_mail_of: Some(2),
            ..Behaviour::default()
        },
        |s| s.max_delivery_tasks = 1,
    )
    .await;
    let ids: Vec<String> = (0..3)
        .map(|i| e.queue("alice@example.com", &format!("m{i}@remote.test")))
        .collect();
    e.runner.run_once().await.expect("run");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(e.state(id), None, "m{i}");
        assert_eq!(e.fake.times(&format!("m{i}@remote.test")), 1, "m{i}");
    }
    // m0 on 1; m1 dropped at MAIL on 1, sent on 2; m2 dropped at MAIL on 2, sent on 3.
    let conns: Vec<usize> = e.fake.tx().iter().map(|t| t.conn).collect();
    assert_eq!(conns, [1, 2, 3]);
    assert!(!e.t.log(LogKind::Mail).contains("Result: deferred"));
}

/// Once the data was written the server may have the message (RFC 5321 §6.1): a
/// connection lost before the final reply defers it as without reuse; it is not sent
/// again at once.
#[tokio::test(flavor = "multi_thread")]
async fn connection_lost_after_the_data_is_deferred_not_resent_at_once() {
    let e = env(
        Behaviour {
            drop_after_data_of: Some(2),
            ..Behaviour::default()
        },
        |s| s.max_delivery_tasks = 1,
    )
    .await;
    let a = e.queue("alice@example.com", "a@remote.test");
    let b = e.queue("alice@example.com", "b@remote.test");
    let c = e.queue("alice@example.com", "c@remote.test");
    e.runner.run_once().await.expect("run");
    assert_eq!(e.state(&a), None);
    assert_eq!(e.state(&b), Some(QueueRcptState::Deferred));
    assert_eq!(e.state(&c), None, "the next one on a new connection");
    assert_eq!(e.fake.times("b@remote.test"), 1, "taken once, not resent");
    assert_eq!(e.fake.lock().connections, 2);
}

/// 5xx replies at MAIL, RCPT and after the data concern only their message: the session
/// stays up and carries the next ones (one connection in all), and the refused messages
/// fail with a report as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_for_one_message_does_not_poison_the_session() {
    let mut b = Behaviour::default();
    b.rcpt
        .insert("nobody@remote.test".into(), "550 5.1.1 no such user".into());
    b.mail.insert(
        "carol@example.com".into(),
        "553 5.7.1 sender refused".into(),
    );
    b.data.insert(
        "spam@remote.test".into(),
        "554 5.7.1 content refused".into(),
    );
    b.rcpt
        .insert("later@remote.test".into(), "450 4.2.1 mailbox busy".into());
    let e = env(b, |s| s.max_delivery_tasks = 1).await;
    let plan = [
        ("alice@example.com", "ok1@remote.test", None),
        (
            "alice@example.com",
            "nobody@remote.test",
            Some(QueueRcptState::Failed),
        ),
        ("alice@example.com", "ok2@remote.test", None),
        (
            "carol@example.com",
            "x@remote.test",
            Some(QueueRcptState::Failed),
        ),
        ("alice@example.com", "ok3@remote.test", None),
        (
            "alice@example.com",
            "spam@remote.test",
            Some(QueueRcptState::Failed),
        ),
        (
            "alice@example.com",
            "later@remote.test",
            Some(QueueRcptState::Deferred),
        ),
        ("alice@example.com", "ok4@remote.test", None),
    ];
    let ids: Vec<String> = plan.iter().map(|(s, r, _)| e.queue(s, r)).collect();
    e.runner.run_once().await.expect("run");
    let log = e.t.log(LogKind::Mail);
    for ((_, rcpt, want), id) in plan.iter().zip(&ids) {
        match want {
            // Failed recipients are final: the message leaves the queue.
            None | Some(QueueRcptState::Failed) => assert_eq!(e.state(id), None, "{rcpt}"),
            Some(s) => assert_eq!(e.state(id), Some(*s), "{rcpt}"),
        }
        if *want == Some(QueueRcptState::Failed) {
            assert!(
                log.contains(&format!("Recipient: <{rcpt}>, Result: failed")),
                "{rcpt}: {log}"
            );
        }
    }
    for ok in ["ok1", "ok2", "ok3", "ok4"] {
        assert_eq!(e.fake.times(&format!("{ok}@remote.test")), 1, "{ok}");
    }
    {
        let s = e.fake.lock();
        assert_eq!(s.connections, 1, "one session for every message");
        assert_eq!(s.rsets, plan.len() - 1);
    }
    // Failure reports for alice's refused messages (carol is local too).
    assert_eq!(e.t.inbox("alice@example.com").await.len(), 2);
}

/// A session authenticated with one relay login is never used with another: after the
/// credentials change, the next message goes out on a new connection with the new login.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_not_shared_across_relay_credentials() {
    let e = env(
        Behaviour {
            auth: vec![
                ("one".into(), "pw-one".into()),
                ("two".into(), "pw-two".into()),
            ],
            ..Behaviour::default()
        },
        |s| {
            s.relay_auth = Some(RelayAuth {
                user: "one".into(),
                password: "pw-one".into(),
            });
        },
    )
    .await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(e.runner.clone().run(rx));
    let waker = e.runner.waker();
    let a = e.queue("alice@example.com", "a@remote.test");
    waker.wake();
    e.wait_gone(&a).await;
    let b = e.queue("alice@example.com", "b@remote.test");
    waker.wake();
    e.wait_gone(&b).await;
    let mut s = keel_smtp::load_settings(&*e.t.meta).expect("settings");
    s.relay_auth = Some(RelayAuth {
        user: "two".into(),
        password: "pw-two".into(),
    });
    e.t.set_settings(&s);
    let c = e.queue("alice@example.com", "c@remote.test");
    waker.wake();
    e.wait_gone(&c).await;
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops")
        .expect("join");
    let tx = e.fake.tx();
    let seen: Vec<(usize, Option<&str>)> = tx.iter().map(|t| (t.conn, t.auth.as_deref())).collect();
    assert_eq!(
        seen,
        [(1, Some("one")), (1, Some("one")), (2, Some("two"))],
        "reused with the same login, new connection for the new one"
    );
    // Shutdown closed both idle sessions with QUIT.
    assert_eq!(e.fake.lock().quits, 2);
}

/// An idle session is closed with QUIT once it was idle for the cache's idle limit (5 s),
/// while the runner keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_are_closed_with_quit_after_the_idle_limit() {
    let e = env(Behaviour::default(), |_| {}).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(e.runner.clone().run(rx));
    let a = e.queue("alice@example.com", "a@remote.test");
    e.runner.waker().wake();
    e.wait_gone(&a).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.fake.lock().quits, 0, "still cached after 2 s");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while e.fake.lock().quits == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let s = e.fake.lock();
        assert_eq!((s.quits, s.active), (1, 0), "closed by the runner");
    }
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops")
        .expect("join");
}
