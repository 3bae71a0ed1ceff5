//! Interoperability with a real Postfix (issue 3, "Tests": Postfix both sending to Keel
//! and receiving from it). Each test starts the real `keel serve` on loopback and a
//! private Postfix instance (`postfix -c DIR start`) in its own temporary directory, on a
//! free loopback port; the instance is always stopped by a drop guard, also on panic.
//!
//! - Keel → Postfix: a Keel user submits on 587 (STARTTLS, AUTH); Keel's queue runner
//!   delivers through the relay host setting to Postfix's smtpd over opportunistic
//!   STARTTLS; Postfix's `virtual` agent writes a Maildir. The message arrives once,
//!   intact, with Keel's `Received:` line and a DKIM signature that dkimpy verifies
//!   against the public key Keel stored.
//! - Postfix → Keel: a message injected with Postfix's `sendmail -C DIR` is relayed by
//!   Postfix's smtp client (`relayhost = [127.0.0.1]:<keel smtp>`, STARTTLS, PIPELINING,
//!   SIZE, BODY=8BITMIME) to a Keel user and read back with imaplib.
//! - Bounce: Postfix rejects an unknown recipient with 550 at RCPT; Keel delivers the
//!   other recipient and writes exactly one DSN (RFC 3464) to the local sender.
//!
//! Postfix must run as root (its master starts as root and drops privileges). When the
//! `postfix` program is missing or the test does not run as root, the tests print that
//! they were skipped, unless `KEEL_REQUIRE_POSTFIX=1`, which makes them fail instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KEEL_HOST: &str = "mail.example.com";
const POSTFIX_HOST: &str = "mx.remote.test";
const ALICE: &str = "alice@example.com";
const ALICE_PW: &str = "Alice-pass-1";

/// Whether the test can run: Postfix installed and root. Without them the test is
/// skipped with a message, or fails when `KEEL_REQUIRE_POSTFIX=1`.
fn postfix_or_skip(test: &str) -> bool {
    let problem = if find_program("postfix").is_none() || find_program("sendmail").is_none() {
        Some("Postfix is not installed (apt-get install postfix)")
    } else if !running_as_root() {
        Some("Postfix instances need root")
    } else {
        None
    };
    peer_or_skip(test, problem, "KEEL_REQUIRE_POSTFIX")
}

fn id_of(flag: &str, user: &str) -> String {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    assert!(out.status.success(), "no system user {user}");
    stdout(&out).trim().to_owned()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A private Postfix instance: `main.cf`/`master.cf` in `DIR/etc`, queue, data, Maildirs
/// and the log file (`maillog_file`, no syslog needed) under `DIR`. Mail for
/// `remote.test` is final here (`virtual` to `DIR/mail/remote.test/<user>/`, only the
/// users listed, others are refused with 550 at RCPT); everything else goes to
/// `relayhost`. Dropping it stops the instance.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    /// Starts an instance that relays non-local mail to `relay_port` on 127.0.0.1.
    /// `extra` lines are appended to `main.cf`.
    fn start(relay_port: u16, users: &[&str], extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-postfix-")
            .tempdir()
            .expect("tempdir");
        let pf = Self {
            dir,
            port: free_port(),
        };
        let d = pf.dir.path().to_owned();
        // The unprivileged Postfix daemons and the `virtual` agent (as nobody) must reach
        // the queue and mail directories: the temporary directory is 0700 by default.
        run_ok(Command::new("chmod").arg("0755").arg(&d));
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        run_ok(Command::new("chown").arg("postfix").arg(d.join("data")));
        let (uid, gid) = (id_of("-u", "nobody"), id_of("-g", "nobody"));
        run_ok(
            Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(d.join("mail")),
        );
        // A throwaway self-signed certificate so that smtpd offers STARTTLS.
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", &format!("/CN={POSTFIX_HOST}")])
                .arg("-keyout")
                .arg(d.join("etc/key.pem"))
                .arg("-out")
                .arg(d.join("etc/cert.pem"))
                .stderr(Stdio::null()),
        );
        let vmailbox: String = users
            .iter()
            .map(|u| format!("{u}@remote.test remote.test/{u}/\n"))
            .collect();
        std::fs::write(d.join("etc/vmailbox"), vmailbox).unwrap();
        let p = d.display();
        let mut main_cf = format!(
            "# Written by crates/keel/tests/postfix.rs
compatibility_level = 3.6
queue_directory = {p}/queue
data_directory = {p}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = keel-test-postfix
maillog_file = {p}/maillog
maillog_file_prefixes = {p}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {POSTFIX_HOST}
mydomain = remote.test
myorigin = remote.test
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{relay_port}
virtual_mailbox_domains = remote.test
virtual_mailbox_base = {p}/mail
virtual_mailbox_maps = texthash:{p}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_tls_cert_file = {p}/etc/cert.pem
smtpd_tls_key_file = {p}/etc/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtputf8_enable = no
biff = no
"
        );
        for line in extra {
            main_cf.push_str(line);
            main_cf.push('\n');
        }
        std::fs::write(d.join("etc/main.cf"), main_cf).unwrap();
        let master_cf = format!(
            "# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
",
            port = pf.port
        );
        std::fs::write(d.join("etc/master.cf"), master_cf).unwrap();
        // The guard exists before the start, so a failed start is cleaned up too.
        let out = pf.postfix(&["start"]);
        assert!(
            out.status.success(),
            "postfix start failed:\n{}{}\n{}",
            stdout(&out),
            stderr(&out),
            pf.log()
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], pf.port));
        assert!(
            eventually(Duration::from_secs(15), || connection_kept(addr)),
            "Postfix does not listen on {addr}:\n{}",
            pf.log()
        );
        pf
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn postfix(&self, args: &[&str]) -> std::process::Output {
        Command::new(find_program("postfix").expect("postfix"))
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .expect("run postfix")
    }

    /// Postfix's own log (`maillog_file`).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Injects a message with Postfix's sendmail(1) (`-i`: a lone dot is data).
    fn sendmail(&self, from: &str, to: &str, message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(find_program("sendmail").expect("sendmail"))
            .arg("-C")
            .arg(self.conf())
            .args(["-i", "-f", from, "--", to])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sendmail");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "sendmail: {}", stderr(&out));
    }

    /// Whether Postfix's queue is empty (`postqueue -p`).
    fn queue_empty(&self) -> bool {
        Command::new(find_program("postqueue").expect("postqueue"))
            .arg("-c")
            .arg(self.conf())
            .arg("-p")
            .output()
            .is_ok_and(|o| stdout(&o).contains("Mail queue is empty"))
    }

    /// Messages in the Maildir of `user@remote.test` (new and cur).
    fn maildir(&self, user: &str) -> Vec<PathBuf> {
        let base = self.dir.path().join("mail/remote.test").join(user);
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(base.join(sub)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = self.postfix(&["stop"]);
        let alive = |p: u32| Path::new(&format!("/proc/{p}")).exists();
        if let Some(p) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(p) {
                let _ = self.postfix(&["abort"]);
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
        }
        // The TempDir field is removed after this.
    }
}

/// Runs a Python script with arguments; panics with its output on failure.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Submits on Keel's 587 with STARTTLS and AUTH (RFC 6409, RFC 4954) as alice.
fn submit(s: &Server, rcpts: &[&str], message: &str) {
    let script = r#"
import smtplib, ssl, sys
port, user, pw, msg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rcpts = sys.argv[5:]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
    c.ehlo("client.example.com")
    c.starttls(context=ssl._create_unverified_context())
    c.ehlo("client.example.com")
    c.login(user, pw)
    refused = c.sendmail(user, rcpts, msg.encode())
    assert not refused, refused
"#;
    let port = s.port("submission").to_string();
    let mut args = vec![port.as_str(), ALICE, ALICE_PW, message];
    args.extend_from_slice(rcpts);
    python(script, &args);
}

/// Every message in alice's INBOX over IMAP (imaplib), in UID order.
fn alice_inbox(s: &Server) -> Vec<Vec<u8>> {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import imaplib, sys, os
port, user, pw, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
m.login(user, pw)
typ, _ = m.select("INBOX", readonly=True)
assert typ == "OK"
typ, data = m.uid("SEARCH", None, "ALL")
uids = data[0].split()
for i, uid in enumerate(uids):
    typ, parts = m.uid("FETCH", uid, "(BODY.PEEK[])")
    assert typ == "OK", parts
    body = parts[0][1]
    with open(os.path.join(out, f"{i:05}.eml"), "wb") as f:
        f.write(body)
m.logout()
print(len(uids))
"#;
    let dir = tmp.path().to_str().unwrap();
    let n: usize = python(script, &[&s.port("imap").to_string(), ALICE, ALICE_PW, dir])
        .trim()
        .parse()
        .expect("message count");
    (0..n)
        .map(|i| std::fs::read(tmp.path().join(format!("{i:05}.eml"))).unwrap())
        .collect()
}

/// Keel with alice, and its outbound mail routed to `pf` through the relay host setting
/// (guide §12.2 "Use relay SMTP server") with opportunistic STARTTLS.
fn keel_with_alice() -> Server {
    let s = Server::start_fresh(&["--hostname", KEEL_HOST]);
    let out = s.keel(&["user", "add", ALICE, "--password", ALICE_PW]);
    assert!(out.status.success(), "{}", stderr(&out));
    s
}

fn route_outbound_to(s: &Server, pf: &Postfix) {
    let settings = format!(
        r#"{{"relay_host": "127.0.0.1:{}", "relay_tls": "opportunistic"}}"#,
        pf.port
    );
    let out = s.keel(&["smtp", "set", &settings]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The header block of a message, unfolded into (name, value) pairs in order.
fn headers(msg: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(msg).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn received(msg: &[u8]) -> Vec<String> {
    headers(msg)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Received"))
        .map(|(_, v)| v)
        .collect()
}

fn body_of(msg: &[u8]) -> Vec<u8> {
    let pos = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| msg.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .expect("header/body separator");
    msg[pos..].to_vec()
}

fn normalise_newlines(b: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .replace("\r\n", "\n")
        .into_bytes()
}

/// Keel → Postfix: submitted mail goes out through the relay host over STARTTLS, arrives
/// once and intact, carries Keel's `Received:` line (RFC 5321 §4.4) and a DKIM signature
/// (RFC 6376) that dkimpy verifies with the key Keel stored for example.com.
#[test]
fn keel_delivers_to_postfix_over_starttls_with_a_valid_dkim_signature() {
    if !postfix_or_skip("keel_delivers_to_postfix_over_starttls_with_a_valid_dkim_signature") {
        return;
    }
    let s = keel_with_alice();
    let pf = Postfix::start(s.port("smtp"), &["bob"], &[]);
    route_outbound_to(&s, &pf);

    // A line that starts with a dot checks transparency both ways (RFC 5321 §4.5.2).
    let body = "Hello Bob,\r\n\r\n.a line starting with a dot\r\n..two dots\r\n\
                the last line\r\n";
    let message = format!(
        "From: Alice <{ALICE}>\r\nTo: Bob <bob@remote.test>\r\n\
         Subject: Keel to Postfix interop\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <interop-1@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    );
    submit(&s, &["bob@remote.test"], &message);

    assert!(
        eventually(Duration::from_secs(30), || pf.maildir("bob").len() == 1),
        "Postfix did not deliver the message to bob; Postfix log:\n{}\nKeel queue:\n{}",
        pf.log(),
        stdout(&s.keel(&["queue", "list"]))
    );
    // Keel's queue empties and nothing arrives a second time.
    assert!(eventually(Duration::from_secs(10), || {
        stdout(&s.keel(&["queue", "list"])).contains("0 message(s)")
    }));
    std::thread::sleep(Duration::from_secs(1));
    let files = pf.maildir("bob");
    assert_eq!(files.len(), 1, "delivered more than once: {files:?}");
    let log = pf.log();
    assert_eq!(
        log.matches("to=<bob@remote.test>, relay=virtual").count(),
        1,
        "{log}"
    );

    let got = std::fs::read(&files[0]).unwrap();
    let hs = headers(&got);
    let subject: Vec<_> = hs.iter().filter(|(n, _)| n == "Subject").collect();
    assert_eq!(subject.len(), 1, "{hs:?}");
    assert_eq!(subject[0].1, "Keel to Postfix interop");
    assert_eq!(
        normalise_newlines(&body_of(&got)),
        normalise_newlines(body.as_bytes()),
        "body changed in transit"
    );
    // Postfix's trace line on top: Keel connected with EHLO mail.example.com over TLS
    // (RFC 3848 "ESMTPS"); below it, Keel's own line for the authenticated submission.
    let rec = received(&got);
    assert!(rec.len() >= 2, "{rec:?}");
    assert!(
        rec[0].starts_with(&format!("from {KEEL_HOST} "))
            && rec[0].contains(&format!("by {POSTFIX_HOST} (Postfix) with ESMTPS")),
        "Postfix's Received line: {}",
        rec[0]
    );
    assert!(
        rec[1].starts_with("from client.example.com ")
            && rec[1].contains(&format!("by {KEEL_HOST} with ESMTPSA")),
        "Keel's Received line: {}",
        rec[1]
    );
    assert!(log.contains("TLS connection established from localhost[127.0.0.1]"));

    // DKIM (RFC 6376 §6): verify with dkimpy; the TXT record is the one Keel publishes
    // for the stored key (`dkim_key/example.com`, RFC 6376 §3.6.1). No DKIM command exists
    // in the CLI yet, so the key is read from the store, read-only.
    let script = r#"
import dkim, io, json, logging, sqlite3, sys
db, path = sys.argv[1], sys.argv[2]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
row = con.execute("SELECT body FROM docs WHERE kind = 'dkim_key' AND key = 'example.com'").fetchone()
assert row, "Keel stored no DKIM key for example.com"
key = json.loads(row[0])
owner = f"{key['selector']}._domainkey.{key['domain']}"
record = f"v=DKIM1; k={key['algorithm']}; p={key['public_key']}".encode()
asked = []
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    asked.append(name)
    return record if name.rstrip(".").lower() == owner else None
msg = open(path, "rb").read()
sigs = [l for l in msg.split(b"\n") if l.lower().startswith(b"dkim-signature:")]
assert len(sigs) == 1, sigs
trace = io.StringIO()
logger = logging.getLogger("dkim-check")
logger.addHandler(logging.StreamHandler(trace))
logger.setLevel(logging.DEBUG)
d = dkim.DKIM(msg, logger=logger)
ok = d.verify(dnsfunc=dnsfunc)
assert ok, ("DKIM verification failed", asked, trace.getvalue(), msg[:2000])
assert d.domain == b"example.com", d.domain
print("verified", owner, asked)
"#;
    let db = s.data.join("keel.db");
    let out = python(script, &[db.to_str().unwrap(), files[0].to_str().unwrap()]);
    assert!(
        out.starts_with("verified keel._domainkey.example.com"),
        "{out}"
    );

    let mail_log = std::fs::read_to_string(s.data.join("logs/mail.log")).unwrap_or_default();
    assert!(
        mail_log.contains("Sent:") && mail_log.contains("bob@remote.test"),
        "{mail_log}"
    );
}

/// Postfix → Keel: Postfix's smtp client (STARTTLS, PIPELINING, SIZE, BODY=8BITMIME,
/// RFC 3207, 2920, 1870, 6152) relays a message injected with sendmail(1) to a Keel user;
/// imaplib finds it once with the full Received chain and the 8-bit body unchanged.
#[test]
fn postfix_relays_into_keel_and_imap_reads_it_once() {
    if !postfix_or_skip("postfix_relays_into_keel_and_imap_reads_it_once") {
        return;
    }
    let s = keel_with_alice();
    // debug_peer_list logs the SMTP dialogue with Keel, so the test can see what
    // Postfix's client actually used.
    let pf = Postfix::start(
        s.port("smtp"),
        &["bob"],
        &["debug_peer_list = 127.0.0.1", "debug_peer_level = 2"],
    );

    let mut body = String::from("Grüße aus Postfix — 8-bit UTF-8 body.\n.leading dot\n");
    for i in 0..200 {
        // ~16 KB: the DATA phase spans many TCP segments.
        body.push_str(&format!("line {i:03} {}\n", "x".repeat(70)));
    }
    body.push_str("end\n");
    let message = format!(
        "From: Bob <bob@remote.test>\nTo: Alice <{ALICE}>\n\
         Subject: Postfix to Keel interop\nDate: Sat, 28 Nov 2026 12:00:00 +0000\n\
         Message-ID: <interop-2@remote.test>\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}"
    );
    pf.sendmail("bob@remote.test", ALICE, message.as_bytes());

    assert!(
        eventually(Duration::from_secs(30), || {
            pf.log().contains(&format!("to=<{ALICE}>")) && pf.queue_empty()
        }),
        "Postfix did not relay the message; log:\n{}",
        pf.log()
    );
    let log = pf.log();
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("to=<{ALICE}>")))
        .collect();
    assert_eq!(sent.len(), 1, "{log}");
    assert!(
        sent[0].contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", s.port("smtp")))
            && sent[0].contains("status=sent (250"),
        "{}",
        sent[0]
    );
    // What Postfix's client used (its debug log of the dialogue): STARTTLS, then a
    // pipelined MAIL with SIZE and BODY=8BITMIME.
    assert!(
        log.contains("TLS connection established to 127.0.0.1[127.0.0.1]"),
        "{log}"
    );
    let mail_cmd = log
        .lines()
        .find(|l| l.contains("> 127.0.0.1[127.0.0.1]") && l.contains("MAIL FROM:<bob@remote.test>"))
        .unwrap_or_else(|| panic!("no MAIL command in the debug log:\n{log}"));
    assert!(
        mail_cmd.contains("SIZE=") && mail_cmd.contains("BODY=8BITMIME"),
        "{mail_cmd}"
    );
    // RFC 2920: with PIPELINING the client sends MAIL, RCPT and DATA before it reads the
    // reply to MAIL.
    let dialogue: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("127.0.0.1[127.0.0.1]:") && l.contains(['<', '>']))
        .collect();
    let sent_at = |what: &str| {
        dialogue.iter().position(|l| {
            l.contains(&format!(
                "> 127.0.0.1[127.0.0.1]:{}: {what}",
                s.port("smtp")
            ))
        })
    };
    let reply_to_mail = dialogue
        .iter()
        .position(|l| l.contains("< 127.0.0.1[127.0.0.1]") && l.contains(": 250 2.1.0"))
        .unwrap_or_else(|| panic!("no reply to MAIL in the debug log:\n{log}"));
    let data = sent_at("DATA").unwrap_or_else(|| panic!("no DATA in the debug log:\n{log}"));
    assert!(
        data < reply_to_mail,
        "Postfix did not pipeline MAIL/RCPT/DATA:\n{}",
        dialogue.join("\n")
    );

    let inbox = alice_inbox(&s);
    assert_eq!(inbox.len(), 1, "expected the message once");
    // Nothing more arrives later (no retry, no duplicate).
    std::thread::sleep(Duration::from_secs(1));
    let inbox = alice_inbox(&s);
    assert_eq!(inbox.len(), 1, "a second copy arrived");
    let got = &inbox[0];
    let hs = headers(got);
    assert!(
        hs.iter()
            .any(|(n, v)| n == "Subject" && v == "Postfix to Keel interop"),
        "{hs:?}"
    );
    assert!(
        hs.iter()
            .any(|(n, v)| n == "Return-Path" && v == "<bob@remote.test>"),
        "{hs:?}"
    );
    // RFC 5321 §4.4: Keel's line on top (client mx.remote.test over TLS, "ESMTPS"),
    // Postfix's pickup line below it.
    let rec = received(got);
    assert_eq!(rec.len(), 2, "{rec:?}");
    assert!(
        rec[0].starts_with(&format!("from {POSTFIX_HOST} ([127.0.0.1])"))
            && rec[0].contains(&format!("by {KEEL_HOST} with ESMTPS")),
        "Keel's Received line: {}",
        rec[0]
    );
    assert!(
        rec[1].starts_with(&format!("by {POSTFIX_HOST} (Postfix")),
        "Postfix's Received line: {}",
        rec[1]
    );
    assert_eq!(
        normalise_newlines(&body_of(got)),
        body.as_bytes(),
        "the 8-bit body changed in transit"
    );
}

/// Bounce: Postfix refuses an unknown recipient with 550 5.1.1 at RCPT. Keel delivers the
/// other recipient and writes one failure DSN (RFC 3464, RFC 3461 §6) to the local
/// sender naming only the refused address; nothing is retried or reported twice.
#[test]
fn postfix_550_for_an_unknown_recipient_gives_one_dsn_to_the_sender() {
    if !postfix_or_skip("postfix_550_for_an_unknown_recipient_gives_one_dsn_to_the_sender") {
        return;
    }
    let s = keel_with_alice();
    let pf = Postfix::start(s.port("smtp"), &["bob"], &[]);
    route_outbound_to(&s, &pf);

    let message = format!(
        "From: {ALICE}\r\nTo: bob@remote.test, nobody@remote.test\r\n\
         Subject: half of this bounces\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <interop-3@example.com>\r\n\r\nhello\r\n"
    );
    submit(&s, &["bob@remote.test", "nobody@remote.test"], &message);

    assert!(
        eventually(Duration::from_secs(30), || !alice_inbox(&s).is_empty()),
        "no DSN reached alice; Postfix log:\n{}\nKeel queue:\n{}",
        pf.log(),
        stdout(&s.keel(&["queue", "list"]))
    );
    assert!(eventually(Duration::from_secs(10), || {
        stdout(&s.keel(&["queue", "list"])).contains("0 message(s)")
    }));
    // Give a duplicate time to show up.
    std::thread::sleep(Duration::from_secs(2));
    let inbox = alice_inbox(&s);
    assert_eq!(inbox.len(), 1, "expected exactly one DSN");
    let dsn = String::from_utf8_lossy(&inbox[0]).replace("\r\n", "\n");
    assert!(dsn.contains("multipart/report"), "{dsn}");
    assert!(dsn.contains("delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@remote.test")
            || dsn.contains("Final-Recipient: rfc822;nobody@remote.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(
        dsn.contains("Recipient address rejected"),
        "the DSN quotes Postfix's reply: {dsn}"
    );
    assert!(
        !dsn.contains("Final-Recipient: rfc822; bob@remote.test"),
        "bob was delivered and must not be reported: {dsn}"
    );
    assert!(
        dsn.contains("Subject: half of this bounces"),
        "the original header is returned: {dsn}"
    );

    // bob got the message once; Postfix saw the RCPT for nobody exactly once.
    assert!(eventually(Duration::from_secs(10), || pf
        .maildir("bob")
        .len()
        == 1));
    let log = pf.log();
    assert_eq!(
        log.matches("<nobody@remote.test>: Recipient address rejected")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(pf.maildir("bob").len(), 1);
}
