//! Mail retrieval clients nobody here wrote, against the real `keel` binary (issue 4
//! Tests: "fetchmail, getmail6 …"): fetchmail over POP3 with STLS and over IMAP with
//! STARTTLS, verifying Keel's certificate, deleting what it fetched; getmail6 over POP3S
//! and IMAPS keeping mail on the server, which only works when UIDs (UIDL, IMAP UID) stay
//! stable across sessions (RFC 1939 §7, RFC 9051 §2.3.1.1).
//!
//! The clients are installed by the test command (Debian's fetchmail, PyPI's getmail6).
//! When one is missing the test fails if `KEEL_REQUIRE_CLIENTS=1` (the test command sets
//! it) and otherwise says it skipped.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, stderr, stdout};

const PASSWORD: &str = "Alice-pass-1";

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("KEEL_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "{tool} is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn server_with_alice() -> Server {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["user", "add", "alice@example.com", "--password", PASSWORD]);
    assert!(out.status.success(), "{}", stderr(&out));
    s
}

/// Sends `n` messages to alice with smtplib; subjects `{tag} 0..n`.
fn send(s: &Server, tag: &str, n: usize) {
    let script = r#"
import smtplib, sys
port, tag, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
    for i in range(n):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: {tag} {i}\r\n\r\nbody {i}\r\n")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &s.port("smtp").to_string(),
            tag,
            &n.to_string(),
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Messages in alice's INBOX, counted over POP3 (STAT).
fn inbox_count(s: &Server) -> usize {
    let script = r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user("alice@example.com"); p.pass_(sys.argv[2])
print(p.stat()[0]); p.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.port("pop3").to_string(), PASSWORD])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().parse().expect("count")
}

/// Files in `dir` whose content has `needle`.
fn files_with(dir: &Path, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_to_string(e.path())
                        .map(|t| t.contains(needle))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn run_fetchmail(home: &Path, rc: &str) -> std::process::Output {
    let rcfile = home.join("fetchmailrc");
    std::fs::write(&rcfile, rc).unwrap();
    // fetchmail refuses a run control file others can read.
    let out = Command::new("chmod")
        .arg("600")
        .arg(&rcfile)
        .output()
        .unwrap();
    assert!(out.status.success());
    Command::new("fetchmail")
        .env("HOME", home)
        .env("FETCHMAILHOME", home)
        .args(["--nodetach", "--nosyslog", "-v", "-f"])
        .arg(&rcfile)
        .output()
        .expect("fetchmail runs")
}

/// fetchmail (Debian) fetches over POP3 after STLS and over IMAP after STARTTLS, checking
/// Keel's certificate against the name it polls, hands each message to an MDA and deletes
/// it from the server (POP3 DELE, IMAP \Deleted + EXPUNGE).
#[test]
fn fetchmail_fetches_and_deletes_over_pop3_and_imap() {
    if !have("fetchmail") {
        return;
    }
    let s = server_with_alice();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let cert = s.data.join("tls/cert.pem");
    for (proto, service, tag, n) in [
        ("POP3", "pop3", "viapop", 3),
        ("IMAP", "imap", "viaimap", 2),
    ] {
        send(&s, tag, n);
        let drop = home.join(format!("drop-{service}"));
        std::fs::create_dir_all(&drop).unwrap();
        // `via` connects to loopback while the certificate is checked against the name.
        let rc = format!(
            "set no bouncemail\n\
             poll mail.example.com via 127.0.0.1 with proto {proto} port {port}\n\
             \tuser \"alice@example.com\" there with password \"{PASSWORD}\" is root here\n\
             \tsslproto TLS1.2+ sslcertck sslcertfile \"{cert}\" sslcommonname mail.example.com\n\
             \tmda \"/bin/sh -c 'cat > {drop}/msg.$$'\"\n",
            port = s.port(service),
            cert = cert.display(),
            drop = drop.display(),
        );
        let out = run_fetchmail(home, &rc);
        assert!(
            out.status.success(),
            "fetchmail {proto} failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(
            files_with(&drop, &format!("Subject: {tag} ")),
            n,
            "fetchmail {proto} output:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(inbox_count(&s), 0, "fetchmail {proto} left messages behind");
    }
}

/// getmail checks a certificate only against the `server` name it connects to, and the
/// test reaches Keel as 127.0.0.1, so it runs without `ca_certs` (fetchmail above checks
/// the certificate).
fn getmail(dir: &Path, retriever: &str, port: u16) -> std::process::Output {
    let rc = dir.join("getmailrc");
    let maildir = dir.join("Maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(d)).unwrap();
    }
    // getmail refuses to deliver as root: as root, deliver as `nobody` into a Maildir
    // everyone may write.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| stdout(&o).trim() == "0")
        .unwrap_or(false);
    let user = if as_root {
        for d in ["", "cur", "new", "tmp"] {
            let p = maildir.join(d);
            let ok = Command::new("chmod").arg("777").arg(&p).status();
            assert!(
                ok.map(|s| s.success()).unwrap_or(false),
                "chmod {}",
                p.display()
            );
        }
        "user = nobody\n"
    } else {
        ""
    };
    let mailboxes = if retriever.contains("IMAP") {
        "mailboxes = (\"INBOX\",)\n"
    } else {
        ""
    };
    std::fs::write(
        &rc,
        format!(
            "[retriever]\ntype = {retriever}\nserver = 127.0.0.1\nport = {port}\n\
             username = alice@example.com\npassword = {PASSWORD}\n{mailboxes}\
\n\
             [destination]\ntype = Maildir\npath = {md}/\n{user}\n\
             [options]\nread_all = false\ndelete = false\nverbose = 1\n",
            md = maildir.display()
        ),
    )
    .unwrap();
    Command::new("getmail")
        .arg("--getmaildir")
        .arg(dir)
        .arg("--rcfile")
        .arg(&rc)
        .output()
        .expect("getmail runs")
}

fn maildir_count(dir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|d| {
            std::fs::read_dir(dir.join("Maildir").join(d))
                .map(|rd| rd.count())
                .unwrap_or(0)
        })
        .sum()
}

/// getmail6 (PyPI) over POP3S and IMAPS, leaving mail on the
/// server: a second run fetches nothing (stable UIDL / UIDs across sessions), and after
/// one more delivery a third run fetches exactly that one.
#[test]
fn getmail_keeps_mail_on_the_server_and_fetches_only_new_messages() {
    if !have("getmail") {
        return;
    }
    let s = server_with_alice();
    send(&s, "first", 2);
    let tmp = tempfile::tempdir().unwrap();
    let runs = [
        ("SimplePOP3SSLRetriever", s.port("pop3s")),
        ("SimpleIMAPSSLRetriever", s.port("imaps")),
    ];
    let dirs: Vec<_> = runs
        .iter()
        .map(|(r, _)| {
            let d = tmp.path().join(r);
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let check = |round: &str, expected: usize| {
        for ((retriever, port), dir) in runs.iter().zip(&dirs) {
            let out = getmail(dir, retriever, *port);
            assert!(
                out.status.success(),
                "getmail {retriever} ({round}) failed:\n{}{}",
                stdout(&out),
                stderr(&out)
            );
            assert_eq!(
                maildir_count(dir),
                expected,
                "getmail {retriever} after {round}:\n{}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    };
    check("the first run", 2);
    check("a run with nothing new", 2);
    send(&s, "second", 1);
    check("one more delivery", 3);
    assert_eq!(inbox_count(&s), 3, "getmail must leave mail on the server");
}

fn swaks(args: &[&str]) -> std::process::Output {
    Command::new("swaks")
        .args(["--timeout", "20", "--hide-informational"])
        .args(args)
        .output()
        .expect("swaks runs")
}

/// swaks (Debian) as the SMTP client: submission on 587 with STARTTLS and AUTH PLAIN and
/// LOGIN, a message over implicit TLS on 465, and the refusals it must see: relaying
/// without AUTH (5.7.1), an unknown local recipient (5.1.1, RFC 3463) and a wrong
/// password (535 5.7.8, RFC 4954 §6).
#[test]
fn swaks_submits_with_starttls_and_auth_and_sees_the_refusals() {
    if !have("swaks") {
        return;
    }
    let s = server_with_alice();
    let port = |svc: &str| s.port(svc).to_string();
    for auth in ["PLAIN", "LOGIN"] {
        let out = swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port("submission"),
            "--tls",
            "--auth",
            auth,
            "--auth-user",
            "alice@example.com",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.com",
            "--to",
            "alice@example.com",
            "--header",
            &format!("Subject: swaks {auth}"),
        ]);
        assert!(
            out.status.success(),
            "swaks AUTH {auth}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port("smtps"),
        "--tls-on-connect",
        "--from",
        "x@remote.test",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: swaks implicit",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(inbox_count(&s), 3);
    // Refusals: swaks exits non-zero and prints the server's reply.
    let refused = |args: &[&str], code: &str| {
        let out = swaks(args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "accepted: {text}");
        assert!(text.contains(code), "wanted {code}: {text}");
    };
    let smtp = port("smtp");
    refused(
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &smtp,
            "--from",
            "x@remote.test",
            "--to",
            "someone@elsewhere.test",
        ],
        "5.7.1",
    );
    refused(
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &smtp,
            "--from",
            "x@remote.test",
            "--to",
            "nobody@example.com",
        ],
        "5.1.1",
    );
    let submission = port("submission");
    refused(
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &submission,
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.com",
            "--auth-password",
            "wrong-password",
            "--from",
            "alice@example.com",
            "--to",
            "alice@example.com",
        ],
        "5.7.8",
    );
    assert_eq!(inbox_count(&s), 3, "a refused message was stored");
}
