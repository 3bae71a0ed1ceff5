//! Differential IMAP tests against a real Dovecot (issue 4, "Differential tests against
//! Dovecot"): the real `keel serve` and a private Dovecot instance, both on loopback high
//! ports, receive the same corpus by APPEND (same flags, same INTERNALDATE) and the same
//! commands from the same client, Python's imaplib (`tests/dovecot_diff.py`). The
//! normalised answers must be equal: FETCH BODYSTRUCTURE, BODY, ENVELOPE, sections
//! (parts, MIME, HEADER.FIELDS, partial, nested message parts), RFC822.SIZE, BINARY and
//! BINARY.SIZE, SEARCH with a range of keys and ESEARCH, SORT, THREAD (REFERENCES and
//! ORDEREDSUBJECT), STORE and the resulting FLAGS, STATUS. Every normalisation and every
//! point where the two may rightly differ is commented, with its RFC, in the script.
//!
//! Dovecot starts as root (it drops privileges; mail is accessed as `nobody`). Without
//! `dovecot` or root the test prints that it was skipped, unless
//! `KEEL_REQUIRE_DOVECOT=1`, which makes it fail instead. The instance is always stopped
//! by a drop guard, also on panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "alice@example.com";
const PASSWORD: &str = "Alice-pass-1";
/// The Dovecot user; mail is read and written as this system user.
const MAIL_USER: &str = "nobody";

/// Whether the test can run: Dovecot with its IMAP server installed, and root. Without
/// them the test is skipped with a message, or fails when `KEEL_REQUIRE_DOVECOT=1`.
fn dovecot_or_skip(test: &str) -> bool {
    let problem =
        if find_program("dovecot").is_none() || !Path::new("/usr/lib/dovecot/imap").exists() {
            Some("Dovecot is not installed (apt-get install dovecot-core dovecot-imapd)")
        } else if !running_as_root() {
            Some("Dovecot instances need root")
        } else {
            None
        };
    peer_or_skip(test, problem, "KEEL_REQUIRE_DOVECOT")
}

fn id_of(flag: &str, user: &str) -> String {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    assert!(out.status.success(), "no system user {user}");
    stdout(&out).trim().to_owned()
}

/// A private Dovecot: configuration, runtime directory, state, log and Maildirs in one
/// temporary directory; IMAP only, on a free loopback port, plain-text LOGIN allowed
/// (loopback, no TLS); users from a passwd-file. Dropping it stops the instance.
struct Dovecot {
    dir: tempfile::TempDir,
    port: u16,
}

impl Dovecot {
    fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-dovecot-")
            .tempdir()
            .expect("tempdir");
        let dc = Self {
            dir,
            port: free_port(),
        };
        let d = dc.dir.path().to_owned();
        // The mail processes run as MAIL_USER and must reach the Maildirs.
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let (uid, gid) = (id_of("-u", MAIL_USER), id_of("-g", MAIL_USER));
        let chown = Command::new("chown")
            .arg(format!("{uid}:{gid}"))
            .arg(d.join("mail"))
            .status()
            .expect("chown");
        assert!(chown.success());
        std::fs::write(d.join("users"), format!("{user}:{{PLAIN}}{password}\n")).unwrap();
        let p = d.display();
        let conf = format!(
            "# Written by crates/keel/tests/dovecot.rs
instance_name = keel-test-dovecot-{port}
base_dir = {p}/run
state_dir = {p}/state
protocols = imap
listen = 127.0.0.1
log_path = {p}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{p}/mail/%n
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {p}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={p}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
",
            port = dc.port
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        // The guard exists before the start, so a failed start is cleaned up too.
        // The daemon keeps inherited descriptors open: no pipes, or waiting never ends.
        let status = Command::new(find_program("dovecot").expect("dovecot"))
            .arg("-c")
            .arg(dc.conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run dovecot");
        assert!(
            status.success(),
            "dovecot failed to start ({status}); its log:\n{}",
            dc.log()
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], dc.port));
        assert!(
            eventually(Duration::from_secs(15), || connection_kept(addr)),
            "Dovecot does not listen on {addr}:\n{}",
            dc.log()
        );
        dc
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("run/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let Some(pid) = self.master_pid() else { return };
        // SIGTERM to the master stops the instance and its children (dovecot(1)).
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let alive = || Path::new(&format!("/proc/{pid}")).exists();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// One line of the script's output.
struct Outcome {
    name: String,
    keel: serde_json::Value,
    dovecot: serde_json::Value,
    compare: bool,
}

fn run_script(keel_port: u16, dovecot_port: u16) -> Vec<Outcome> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dovecot_diff.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&keel_port.to_string(), ALICE])
        .args([&dovecot_port.to_string(), "alice", PASSWORD])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "dovecot_diff.py failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            Outcome {
                name: v["name"].as_str().unwrap().to_owned(),
                keel: v["keel"].clone(),
                dovecot: v["dovecot"].clone(),
                compare: v["compare"].as_bool().unwrap(),
            }
        })
        .collect()
}

/// Same corpus, same commands: Keel's normalised answers equal Dovecot's.
#[test]
fn keel_answers_like_dovecot_for_the_same_mailbox_and_commands() {
    if !dovecot_or_skip("keel_answers_like_dovecot_for_the_same_mailbox_and_commands") {
        return;
    }
    let started = Instant::now();
    let dc = Dovecot::start("alice", PASSWORD);
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["user", "add", ALICE, "--password", PASSWORD]);
    assert!(out.status.success(), "{}", stderr(&out));

    let outcomes = run_script(s.port("imap"), dc.port);
    // The script ran every check (a silent early end would compare nothing).
    assert!(outcomes.len() > 200, "only {} checks ran", outcomes.len());

    let differences: Vec<String> = outcomes
        .iter()
        .filter(|o| o.compare && o.keel != o.dovecot)
        .map(|o| {
            format!(
                "{}\n  keel:    {}\n  dovecot: {}",
                o.name, o.keel, o.dovecot
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} answers differ:\n{}\nDovecot log:\n{}",
        differences.len(),
        outcomes.len(),
        differences.join("\n"),
        dc.log()
    );
    // A failed command on both sides would compare equal: every answer is OK.
    for o in outcomes.iter().filter(|o| o.compare) {
        let status = o.keel.get(0).and_then(|v| v.as_str());
        assert!(
            status.is_none() || status == Some("OK"),
            "{}: {}",
            o.name,
            o.keel
        );
        assert!(o.keel.get("status").is_none(), "{}: {}", o.name, o.keel);
    }

    let keel_only = |name: &str| -> serde_json::Value {
        outcomes
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no outcome {name}"))
            .keel
            .clone()
    };
    // RFC 5256 §3: without I18NLEVEL the subject collation is i;ascii-casemap, so
    // "Échange…" (message 5) sorts after every ASCII subject.
    assert_eq!(
        keel_only("SORT (SUBJECT) UTF-8 ALL"),
        serde_json::json!(["OK", [6, 11, 12, 8, 4, 1, 9, 10, 2, 3, 7, 5]])
    );
    // RFC 9051 §6.4.4: SENTBEFORE looks at the Date header; message 6 has none.
    assert_eq!(
        keel_only("SEARCH SENTBEFORE 07-Jan-2024"),
        serde_json::json!(["OK", [1, 2]])
    );
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!(
            "dovecot differential: {} answers compared in {:.1?}\n",
            outcomes.iter().filter(|o| o.compare).count(),
            started.elapsed()
        ),
    );
}
