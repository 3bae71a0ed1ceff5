//! Cluster mode through the real binary (issue 8 items 1 and 3): `keel migrate` copies an
//! embedded installation into PostgreSQL with every UID, UIDVALIDITY and flag intact, and
//! nodes on one PostgreSQL store read each other's message bodies (PostgreSQL blobs).
//!
//! Needs `KEEL_TEST_PG_URL` (scripts/test.sh starts a throw-away PostgreSQL and sets it);
//! without it every test prints SKIPPED and returns. Each test works in a schema of its
//! own (`CREATE SCHEMA`, selected with `options=-csearch_path=…`), dropped at the end.

mod common;

use std::process::Command;

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
c.create("Archive")
typ, _ = c.uid("COPY", "1", "Archive")
assert typ == "OK"
c.logout()
"#;

/// Prints, for INBOX and Archive: UIDVALIDITY, UIDNEXT, and per message its UID, sorted
/// flags and the SHA-256 of its full body (FETCH BODY.PEEK[]).
const DESCRIBE: &str = r#"
import hashlib, imaplib, re, sys
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
c.login(sys.argv[2], sys.argv[3])
for box in ["INBOX", "Archive"]:
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
    // The bodies are in PostgreSQL now: 4 delivered messages, one blob each.
    let blobs = psql(&schema.url, "SELECT count(*) FROM blobs");
    assert_eq!(blobs.trim(), "4", "{blobs}");

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
    assert!(later.contains("UIDNEXT 6"), "{later}");
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
    assert_eq!(psql(&schema.url, "SELECT count(*) FROM blobs").trim(), "5");
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
