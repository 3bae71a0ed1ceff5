//! Cluster mode through the real binary (issue 8): `keel migrate` copies an embedded
//! installation into PostgreSQL with every UID, UIDVALIDITY and flag intact; nodes on one
//! PostgreSQL store read each other's message bodies (PostgreSQL blobs); a node killed
//! during queue processing leaves its messages to the other node, each delivered once;
//! settings changed on one node apply on the other.
//!
//! Needs `KEEL_TEST_PG_URL` (scripts/test.sh starts a throw-away PostgreSQL and sets it);
//! without it every test prints SKIPPED and returns. Each test works in a schema of its
//! own (`CREATE SCHEMA`, selected with `options=-csearch_path=…`), dropped at the end.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// A fresh schema on the test server, dropped when this is dropped.
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    /// `None` (after printing SKIPPED) when no test server is configured.
    fn new(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("KEEL_TEST_PG_URL") else {
            eprintln!(
                "SKIPPED {test}: KEEL_TEST_PG_URL is not set (scripts/test.sh starts a throw-away PostgreSQL and sets it)"
            );
            return None;
        };
        let name = format!("keel_mig_{}_{}", std::process::id(), free_offset());
        psql(&base, &format!("CREATE SCHEMA {name}"));
        Some(Self {
            url: format!("{base} options=-csearch_path={name}"),
            base,
            name,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.base,
                "-q",
                "-c",
                &format!("DROP SCHEMA {} CASCADE", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", stderr(&out));
    stdout(&out)
}

fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Delivers `n` messages to `rcpt` through SMTP on `port`.
const SEND: &str = r#"
import smtplib, sys
port, rcpt, n, tag = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
    for i in range(n):
        body = "Subject: %s %d\r\nFrom: x@remote.test\r\n\r\nbody %s %d\r\n" % (tag, i, tag, i) + "line\r\n" * (i * 500)
        c.sendmail("x@remote.test", [rcpt], body)
"#;

/// Sets flags on messages 2 and 3 of INBOX through IMAP.
const FLAG: &str = r#"
import imaplib, sys
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
c.login(sys.argv[2], sys.argv[3])
c.select("INBOX")
typ, _ = c.uid("STORE", "2", "+FLAGS", r"(\Flagged $Important)")
assert typ == "OK"
typ, _ = c.uid("STORE", "3", "+FLAGS", r"(\Seen)")
assert typ == "OK"
c.create("Projects")
typ, _ = c.uid("COPY", "1", "Projects")
assert typ == "OK"
c.logout()
"#;

/// Deletes and expunges the INBOX messages whose subject contains argv[4].
const EXPUNGE: &str = r#"
import imaplib, sys
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
c.login(sys.argv[2], sys.argv[3])
c.select("INBOX")
typ, data = c.uid("SEARCH", None, "SUBJECT", sys.argv[4])
assert typ == "OK" and data[0], data
typ, _ = c.uid("STORE", data[0].decode().replace(" ", ","), "+FLAGS", r"(\Deleted)")
assert typ == "OK"
typ, data = c.expunge()
assert typ == "OK" and data[0] is not None, data
c.logout()
"#;

/// Prints, for INBOX and Projects: UIDVALIDITY, UIDNEXT, and per message its UID, sorted
/// flags and the SHA-256 of its full body (FETCH BODY.PEEK[]).
const DESCRIBE: &str = r#"
import hashlib, imaplib, re, sys
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
c.login(sys.argv[2], sys.argv[3])
for box in ["INBOX", "Projects"]:
    typ, st = c.status(box, "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert typ == "OK", st
    print(box, st[0].decode().split("(", 1)[1].rstrip(")"))
    c.select(box, readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK", data
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        uid = re.search(r"UID (\d+)", meta).group(1)
        flags = sorted(re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split())
        print(" ", uid, flags, len(item[1]), hashlib.sha256(item[1]).hexdigest())
c.logout()
"#;

fn describe(port: u16, login: &str, password: &str) -> String {
    python(
        DESCRIBE,
        &[port.to_string(), login.to_owned(), password.to_owned()],
    )
}

/// Issue 8 item 3: an installation started on SQLite, with mail delivered by SMTP and
/// flags set by IMAP, is copied by `keel migrate` into PostgreSQL; a node started on that
/// store (with an empty data directory of its own) shows the same messages, UIDs,
/// UIDVALIDITY, flags and bodies, and `keel check` is clean. A non-empty target is
/// refused without `--force`.
#[test]
fn an_embedded_installation_migrates_to_postgresql() {
    let Some(schema) = Schema::new("an_embedded_installation_migrates_to_postgresql") else {
        return;
    };
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&[
        "user",
        "add",
        "fred@example.com",
        "--password",
        "Fred-pass-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    python(
        SEND,
        &[
            s.port("smtp").to_string(),
            "fred@example.com".into(),
            "4".into(),
            "before".into(),
        ],
    );
    python(
        FLAG,
        &[
            s.port("imap").to_string(),
            "fred".into(),
            "Fred-pass-12".into(),
        ],
    );
    // A deleted item kept for recovery (guide §7.4) travels with the store.
    let out = s.keel(&["domain", "set", "example.com", "--recovery-days", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    python(
        SEND,
        &[
            s.port("smtp").to_string(),
            "fred@example.com".into(),
            "1".into(),
            "gone".into(),
        ],
    );
    python(
        EXPUNGE,
        &[
            s.port("imap").to_string(),
            "fred".into(),
            "Fred-pass-12".into(),
            "gone".into(),
        ],
    );
    let before = describe(s.port("imap"), "fred", "Fred-pass-12");
    assert!(before.contains("\\Flagged"), "{before}");

    // Refused while the server runs.
    let out = s.keel(&["migrate", "--to", &schema.url]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop it"), "{}", stderr(&out));

    let data = s.data.clone();
    let (status, _, tmp) = {
        let mut s = s;
        let tmp = s._tmp.take();
        let (st, rest) = s.terminate();
        (st, rest, tmp)
    };
    assert!(status.success());

    let out = keel(&data, &["migrate", "--to", &schema.url]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("OK: store and blobs are consistent."),
        "{text}"
    );
    assert!(text.contains("backend = \"postgres\""), "{text}");
    assert!(
        stderr(&out).contains("messages"),
        "progress shown: {}",
        stderr(&out)
    );
    // The bodies are in PostgreSQL now: 5 delivered messages (one deleted but kept for
    // recovery), one blob each.
    let blobs = psql(&schema.url, "SELECT count(*) FROM blobs");
    assert_eq!(blobs.trim(), "5", "{blobs}");
    assert!(text.contains("1 deleted items kept for recovery"), "{text}");
    let stones = psql(&schema.url, "SELECT count(*) FROM tombstones");
    assert_eq!(stones.trim(), "1", "{stones}");

    // A second run finds the target in use.
    let out = keel(&data, &["migrate", "--to", &schema.url]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = keel(&data, &["migrate", "--to", &schema.url, "--force"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A node on the PostgreSQL store, with an empty data directory: same mailbox.
    let node_dir = tempfile::tempdir().expect("tempdir");
    let node = Server::start(
        &node_dir.path().join("node"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &schema.url],
    );
    assert!(
        !node.summary.contains("Password:"),
        "the node joins the migrated store: {}",
        node.summary
    );
    let after = describe(node.port("imap"), "fred", "Fred-pass-12");
    assert_eq!(after, before, "mailbox differs after migration");
    assert!(
        !node.data.join("blobs").exists(),
        "a PostgreSQL node keeps no message files"
    );
    // New mail continues the UIDs.
    python(
        SEND,
        &[
            node.port("smtp").to_string(),
            "fred@example.com".into(),
            "1".into(),
            "after".into(),
        ],
    );
    let later = describe(node.port("imap"), "fred", "Fred-pass-12");
    assert!(later.contains("UIDNEXT 7"), "{later}");
    // The deleted item is recoverable on the new store.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = node.keel(&["user", "recover", "fred@example.com", "--since", &yesterday]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Recovered 1"), "{}", stdout(&out));
    let out = node.keel(&["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK"), "{}", stdout(&out));
    // `--repair` on the PostgreSQL pair (node stopped): a planted orphan body older than
    // the grace period is removed, the referenced ones stay.
    let node_data = node.data.clone();
    let (status, _) = node.terminate();
    assert!(status.success());
    psql(
        &schema.url,
        &format!(
            "INSERT INTO blobs (id, size, stored_at, bytes) VALUES ('{}', 1, 0, 'x')",
            "ab".repeat(32)
        ),
    );
    let out = keel(&node_data, &["check"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("orphan blob"), "{}", stdout(&out));
    let out = keel(&node_data, &["check", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = keel(&node_data, &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(psql(&schema.url, "SELECT count(*) FROM blobs").trim(), "6");
    drop(tmp);
}

/// Issue 8 "deliver on A and read on B": two nodes with their own, empty data directories
/// on one PostgreSQL store. A message delivered through node A's SMTP is fetched in full
/// (BODY[]) through node B's IMAP, and one delivered through B is read on A: the bodies
/// are shared, not per node. `keel check` on either node is clean.
#[test]
fn a_body_delivered_on_node_a_is_fetched_on_node_b() {
    let Some(schema) = Schema::new("a_body_delivered_on_node_a_is_fetched_on_node_b") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Server::start(
        &tmp.path().join("a"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &schema.url],
    );
    let b = Server::start(
        &tmp.path().join("b"),
        free_offset(),
        &["--hostname", "mx2.example.com", "--store", &schema.url],
    );
    let out = a.keel(&[
        "user",
        "add",
        "gina@example.com",
        "--password",
        "Gina-pass-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    python(
        SEND,
        &[
            a.port("smtp").to_string(),
            "gina@example.com".into(),
            "2".into(),
            "via-a".into(),
        ],
    );
    let script = r#"
import imaplib, sys
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
c.login("gina", "Gina-pass-12")
c.select("INBOX", readonly=True)
typ, data = c.fetch("1:*", "(BODY.PEEK[])")
assert typ == "OK", data
for item in data:
    if isinstance(item, tuple):
        print(item[1].decode().split("\r\n\r\n", 1)[1].splitlines()[0])
"#;
    let on_b = python(script, &[b.port("imap").to_string()]);
    assert_eq!(on_b.trim(), "body via-a 0\nbody via-a 1", "{on_b}");
    python(
        SEND,
        &[
            b.port("smtp").to_string(),
            "gina@example.com".into(),
            "1".into(),
            "via-b".into(),
        ],
    );
    let on_a = python(script, &[a.port("imap").to_string()]);
    assert_eq!(
        on_a.trim(),
        "body via-a 0\nbody via-a 1\nbody via-b 0",
        "{on_a}"
    );
    for node in [&a, &b] {
        let out = node.keel(&["check"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    drop(b);
    drop(a);
}

/// The Python SMTP sink of the outbound tests, killed when dropped.
struct Sink(std::process::Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the sink on a free port; returns it and the port.
fn start_sink(cfg: &std::path::Path, log: &std::path::Path) -> (Sink, u16) {
    use std::io::BufRead;
    let sink_py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keel-smtp/tests/support/smtp_sink.py"
    );
    let mut sink = Command::new("python3")
        .arg(sink_py)
        .arg(cfg)
        .arg(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(sink.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("sink port");
    let port = line.trim().parse::<u16>().expect("sink prints its port");
    (Sink(sink), port)
}

/// Transactions the sink logged: (subject, Unix time of the data's end, abandoned).
fn sink_log(log: &std::path::Path) -> Vec<(String, f64, bool)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let data = v["data"].as_str().unwrap_or("");
            let subject = data
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_owned();
            (
                subject,
                v["time"].as_f64().unwrap_or(0.0),
                v["abandoned"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Submits one message per subject to `<subject>@remote.test` through `port` (STARTTLS,
/// AUTH as `login`).
fn submit(port: u16, login: &str, password: &str, subjects: &[&str]) {
    let script = r#"
import smtplib, ssl, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
c.starttls(context=ssl._create_unverified_context())
c.login(sys.argv[2], sys.argv[3])
for subject in sys.argv[4:]:
    c.sendmail(sys.argv[2] + "@example.com", [subject + "@remote.test"],
               "Subject: %s\r\nFrom: %s@example.com\r\n\r\nhello\r\n" % (subject, sys.argv[2]))
c.quit()
"#;
    let mut args = vec![port.to_string(), login.to_owned(), password.to_owned()];
    args.extend(subjects.iter().map(|s| s.to_string()));
    python(script, &args);
}

/// GET of an admin API path on `s`, signed in as the printed admin (curl, cookie jar).
fn admin_get(s: &Server, path: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let jar = tmp.path().join("jar");
    let base = format!("https://127.0.0.1:{}/admin/api/v1", s.port("https"));
    let login = serde_json::json!({"login": "admin", "password": s.admin_password()}).to_string();
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-skf", "--max-time", "20", "-c"])
            .arg(&jar)
            .arg("-b")
            .arg(&jar)
            .args(args)
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &login,
        &format!("{base}/session"),
    ]);
    serde_json::from_str(&curl(&[&format!("{base}{path}")])).expect("JSON")
}

/// Issue 8 "kill A during queue processing": two nodes on one PostgreSQL store relay
/// through one host (a Python sink that holds each final DATA reply for a while). Node A
/// delivers one message, then is killed with SIGKILL while its runner waits on the replies
/// of the next ones; the sink sees A's connections close and never accepts those. Node B
/// claims them once A's lease (`queue_lease_secs`, shortened here) runs out and delivers
/// them. Every message reaches the sink exactly once, the queue ends empty and
/// `keel check` is clean.
#[test]
fn a_node_killed_mid_delivery_leaves_its_queue_to_the_other_node() {
    let Some(schema) = Schema::new("a_node_killed_mid_delivery_leaves_its_queue_to_the_other_node")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("sink.json");
    let log = tmp.path().join("sink.jsonl");
    let progress = tmp.path().join("progress");
    let slow = serde_json::json!({"slow": 4, "progress": progress}).to_string();
    std::fs::write(&cfg, &slow).expect("sink config");
    let (_sink, port) = start_sink(&cfg, &log);

    let mut a = Server::start(
        &tmp.path().join("a"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &schema.url],
    );
    let b = Server::start(
        &tmp.path().join("b"),
        free_offset(),
        &["--hostname", "mx2.example.com", "--store", &schema.url],
    );
    // Settings written through A reach B's runner without a restart.
    let settings = format!(
        r#"{{"relay_host": "127.0.0.1:{port}", "relay_tls": "none", "queue_lease_secs": 10}}"#
    );
    let out = a.keel(&["smtp", "set", &settings]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = a.keel(&[
        "user",
        "add",
        "sam@example.com",
        "--password",
        "Sam-pass-123",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // One message A delivers in full before it dies.
    submit(a.port("submission"), "sam", "Sam-pass-123", &["first"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            sink_log(&log)
                .iter()
                .any(|(s, _, gone)| s == "first" && !gone)
        }),
        "the first message never reached the sink: {:?}",
        sink_log(&log)
    );
    // Five more; kill A while the sink holds at least one of its transactions.
    let subjects = ["m1", "m2", "m3", "m4", "m5"];
    submit(a.port("submission"), "sam", "Sam-pass-123", &subjects);
    let seen = |n: usize| {
        std::fs::read_to_string(&progress)
            .unwrap_or_default()
            .lines()
            .count()
            >= n
    };
    assert!(
        eventually(Duration::from_secs(20), || seen(2)),
        "no second delivery started"
    );
    // guide §24.2: A's admin lists the tasks waiting on the relay host.
    let tasks = admin_get(&a, "/queue/tasks");
    let list = tasks["tasks"].as_array().expect("tasks");
    assert!(
        list.iter().any(|t| t["phase"] == "smtp_delivery"
            && t["server"] == "127.0.0.1"
            && t["to"][0]
                .as_str()
                .is_some_and(|r| r.ends_with("@remote.test"))),
        "{tasks}"
    );
    a.child.kill().expect("SIGKILL node A");
    let _ = a.child.wait();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    std::fs::write(&cfg, serde_json::json!({"progress": progress}).to_string())
        .expect("sink config");

    let all_delivered = || {
        let log = sink_log(&log);
        std::iter::once("first")
            .chain(subjects)
            .all(|s| log.iter().any(|(subj, _, gone)| subj == s && !gone))
    };
    assert!(
        eventually(Duration::from_secs(90), all_delivered),
        "not every message was delivered after node A died: {:?}",
        sink_log(&log)
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            stdout(&b.keel(&["queue", "list"])).contains("0 message(s)")
        }),
        "{}",
        stdout(&b.keel(&["queue", "list"]))
    );
    // Give a late duplicate the chance to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    let entries = sink_log(&log);
    let abandoned = entries.iter().filter(|(_, _, gone)| *gone).count();
    assert!(
        abandoned >= 1,
        "node A was not killed mid-delivery: {entries:?}"
    );
    for s in std::iter::once("first").chain(subjects) {
        let accepted: Vec<_> = entries
            .iter()
            .filter(|(subj, _, gone)| subj == s && !gone)
            .collect();
        assert_eq!(
            accepted.len(),
            1,
            "{s} accepted {} times: {entries:?}",
            accepted.len()
        );
    }
    // What A abandoned, B finished (A was dead by then).
    for (s, _, _) in entries.iter().filter(|(_, _, gone)| *gone) {
        assert!(
            entries
                .iter()
                .any(|(subj, t, gone)| subj == s && !gone && *t > killed_at),
            "{s} abandoned by A was not delivered after A died: {entries:?}"
        );
    }
    let first_at = entries.iter().find(|(s, _, _)| s == "first").map(|e| e.1);
    assert!(first_at.is_some_and(|t| t < killed_at), "{entries:?}");
    let out = b.keel(&["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// Issue 8 "change a setting on A and see it on B": the SMTP size limit and the VRFY switch
/// are changed through node A's CLI; node B's SMTP server advertises
/// the new SIZE and answers VRFY differently without a restart.
#[test]
fn a_setting_changed_on_node_a_applies_on_node_b() {
    let Some(schema) = Schema::new("a_setting_changed_on_node_a_applies_on_node_b") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Server::start(
        &tmp.path().join("a"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &schema.url],
    );
    let b = Server::start(
        &tmp.path().join("b"),
        free_offset(),
        &["--hostname", "mx2.example.com", "--store", &schema.url],
    );
    let probe = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as c:
    c.ehlo("probe.test")
    print(c.esmtp_features.get("size", "-"), c.verify("admin@example.com")[0])
"#;
    let before = python(probe, &[b.port("smtp").to_string()]);
    let out = a.keel(&[
        "smtp",
        "set",
        r#"{"max_message_size": 1234567, "enable_vrfy": true}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut after = String::new();
    let changed = eventually(Duration::from_secs(10), || {
        after = python(probe, &[b.port("smtp").to_string()]);
        after.starts_with("1234567 ")
    });
    assert!(changed, "node B still says {after:?} (before: {before:?})");
    assert!(!before.starts_with("1234567 "), "{before}");
    assert_ne!(
        before.split_whitespace().nth(1),
        after.split_whitespace().nth(1),
        "VRFY answered the same before and after: {before:?} {after:?}"
    );
    drop(b);
    drop(a);
}
