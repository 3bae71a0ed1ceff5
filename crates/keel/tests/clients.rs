//! Mail retrieval clients nobody here wrote, against the real `keel` binary (issue 4
//! Tests: "fetchmail, getmail6 …"): fetchmail over POP3 with STLS and over IMAP with
//! STARTTLS, verifying Keel's certificate, deleting what it fetched; getmail6 over POP3S
//! and IMAPS keeping mail on the server, which only works when UIDs (UIDL, IMAP UID) stay
//! stable across sessions (RFC 1939 §7, RFC 9051 §2.3.1.1).
//!
//! Also curl's IMAP, IMAPS and POP3 clients, and offlineimap (Debian's offlineimap3)
//! synchronising a Maildir both ways.
//!
//! The clients are installed by the test command (Debian's fetchmail and offlineimap3,
//! PyPI's getmail6; curl is always there).
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

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs")
}

/// curl's IMAP and POP3 clients (issue 4 Tests: "curl"): over IMAPS (certificate checked
/// against Keel's, the name resolved to loopback) it lists the folders, fetches a message
/// by UID and runs a custom SEARCH and a STORE; over IMAP with required STARTTLS it examines
/// INBOX; over POP3 it lists and retrieves; a wrong password fails.
#[test]
fn curl_reads_mail_over_imap_imaps_and_pop3() {
    if !have("curl") {
        return;
    }
    let s = server_with_alice();
    send(&s, "viacurl", 2);
    let cert = s.data.join("tls/cert.pem");
    let cert = cert.to_str().unwrap();
    let user = format!("alice@example.com:{PASSWORD}");
    let imaps = s.port("imaps");
    let resolve = format!("mail.example.com:{imaps}:127.0.0.1");
    let base = format!("imaps://mail.example.com:{imaps}");
    let tls = ["--cacert", cert, "--resolve", &resolve, "--user", &user];

    let out = curl(&[&tls[..], &[&format!("{base}/")]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(
        list.contains("INBOX") && list.contains("\"Sent Items\""),
        "{list}"
    );

    let out = curl(&[&tls[..], &[&format!("{base}/INBOX;UID=2")]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let msg = stdout(&out);
    assert!(
        msg.contains("Subject: viacurl 1") && msg.contains("body 1"),
        "{msg}"
    );

    let out = curl(
        &[
            &tls[..],
            &[
                "-X",
                "UID SEARCH SUBJECT \"viacurl 0\"",
                &format!("{base}/INBOX"),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("* SEARCH 1"), "{}", stdout(&out));
    let out = curl(
        &[
            &tls[..],
            &[
                "-X",
                "UID STORE 1 +FLAGS (\\Flagged)",
                &format!("{base}/INBOX"),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\\Flagged"), "{}", stdout(&out));

    // Plain IMAP port, TLS required by curl (STARTTLS).
    let imap = s.port("imap");
    let resolve143 = format!("mail.example.com:{imap}:127.0.0.1");
    let out = curl(&[
        "--ssl-reqd",
        "--cacert",
        cert,
        "--resolve",
        &resolve143,
        "--user",
        &user,
        "-X",
        "EXAMINE INBOX",
        &format!("imap://mail.example.com:{imap}/"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 EXISTS"), "{}", stdout(&out));

    let pop3 = s.port("pop3");
    let out = curl(&["--user", &user, &format!("pop3://127.0.0.1:{pop3}/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    let out = curl(&["--user", &user, &format!("pop3://127.0.0.1:{pop3}/1")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Subject: viacurl 0"),
        "{}",
        stdout(&out)
    );

    let out = curl(&[
        "--user",
        "alice@example.com:wrong-password",
        &format!("pop3://127.0.0.1:{pop3}/"),
    ]);
    assert!(!out.status.success(), "a wrong password is refused");
}

/// offlineimap (Debian's offlineimap3) synchronises alice's mailbox with a local Maildir
/// over IMAPS (certificate checked): every folder arrives, a second run fetches only the
/// new message, and a flag set locally reaches the server (UIDs and flags kept across
/// sessions, RFC 9051 §2.3.1.1, CONDSTORE not required).
#[test]
fn offlineimap_synchronises_a_maildir_both_ways() {
    if !have("offlineimap") {
        return;
    }
    let s = server_with_alice();
    send(&s, "viaoffline", 3);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let maildir = home.join("Mail");
    // offlineimap checks the name against `remotehost` (127.0.0.1 here), so Keel's
    // certificate is pinned by its SHA-256 fingerprint instead.
    let cert = s.data.join("tls/cert.pem");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let fingerprint = stdout(&out)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    let conf = home.join("offlineimaprc");
    std::fs::write(
        &conf,
        format!(
            "[general]\naccounts = keel\nmetadata = {meta}\nui = basic\n\n\
             [Account keel]\nlocalrepository = local\nremoterepository = remote\n\n\
             [Repository local]\ntype = Maildir\nlocalfolders = {maildir}\n\n\
             [Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {port}\n\
             ssl = yes\ncert_fingerprint = {fingerprint}\ntls_level = tls_secure\n\
             ssl_version = tls1_2\n\
             remoteuser = alice@example.com\nremotepass = {PASSWORD}\n",
            meta = home.join("meta").display(),
            maildir = maildir.display(),
            port = s.port("imaps"),
        ),
    )
    .unwrap();
    let sync = || {
        let out = Command::new("offlineimap")
            .env("HOME", home)
            .args(["-o", "-c"])
            .arg(&conf)
            .output()
            .expect("offlineimap runs");
        assert!(
            out.status.success(),
            "offlineimap failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    };
    sync();
    let inbox_new = maildir.join("INBOX/new");
    let inbox_cur = maildir.join("INBOX/cur");
    let count = |d: &Path| std::fs::read_dir(d).map(|rd| rd.count()).unwrap_or(0);
    assert_eq!(count(&inbox_new) + count(&inbox_cur), 3);
    assert!(
        maildir.join("Sent Items").is_dir(),
        "every folder is synchronised"
    );

    send(&s, "later", 1);
    sync();
    assert_eq!(
        count(&inbox_new) + count(&inbox_cur),
        4,
        "only the new message"
    );

    // Flag one message locally (Maildir info `:2,F`); the next run stores it on the server.
    let (dir, name) = [&inbox_new, &inbox_cur]
        .iter()
        .find_map(|d| {
            std::fs::read_dir(d)
                .ok()?
                .filter_map(Result::ok)
                .find(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("viaoffline 0"))
                })
                .map(|e| ((*d).clone(), e.file_name().into_string().unwrap()))
        })
        .expect("the first message");
    let base = name.split(":2,").next().unwrap().to_owned();
    std::fs::rename(dir.join(&name), inbox_cur.join(format!("{base}:2,F"))).unwrap();
    sync();
    let script = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("alice@example.com", sys.argv[2])
m.select("INBOX", readonly=True)
print(m.uid("SEARCH", None, "FLAGGED")[1][0].decode())
m.logout()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.port("imap").to_string(), PASSWORD])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "1",
        "the local flag reached the server"
    );
}
