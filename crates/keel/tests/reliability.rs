//! Issue 7: crash safety, fuzz-corpus smoke runs and the bad-input suite, against the
//! real `keel serve` binary (see `common/mod.rs`).
//!
//! Every test here takes seconds. `KEEL_LONG_TESTS=1` runs longer variants (more kill -9
//! rounds, bigger floods, a longer trickle).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use keel_store::BlobStore as _;

fn long_tests() -> bool {
    std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------
// Fuzz corpus smoke runs: the exact entry functions of the cargo-fuzz targets.

mod smtp_fuzz {
    include!("../../keel-smtp/fuzz/fuzz_targets/driver.rs");
}
mod pop3_fuzz {
    include!("../../keel-pop3/fuzz/fuzz_targets/driver.rs");
}
mod imap_fuzz {
    include!("../../keel-imap/fuzz/fuzz_targets/driver.rs");
}
mod mime_fuzz {
    include!("../../keel-filter/fuzz/fuzz_targets/driver.rs");
}

/// Runs `entry` over every corpus file, every prefix of it (cut inputs) and every
/// first-byte variant (chunk sizes and limits), as a cheap stand-in for a fuzz run.
fn run_corpus(dir: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(e.expect("entry").path()).expect("read corpus file");
        files += 1;
        entry(&data);
        for cut in (0..data.len()).step_by(7) {
            entry(&data[..cut]);
        }
        if let Some((_, rest)) = data.split_first() {
            for control in [0u8, 1, 2, 3, 0x3f, 0x40, 0x41, 0x80, 0xc1, 0xff] {
                let mut v = vec![control];
                v.extend_from_slice(rest);
                entry(&v);
            }
        }
    }
    files
}

#[test]
fn fuzz_corpus_smtp_session_runs_without_panics() {
    let n = run_corpus(
        "../keel-smtp/fuzz/corpus/session",
        smtp_fuzz::fuzz_smtp_session,
    );
    assert!(n >= 3, "only {n} corpus files");
}

#[test]
fn fuzz_corpus_pop3_session_runs_without_panics() {
    let n = run_corpus(
        "../keel-pop3/fuzz/corpus/session",
        pop3_fuzz::fuzz_pop3_session,
    );
    assert!(n >= 3, "only {n} corpus files");
}

#[test]
fn fuzz_corpus_imap_receiver_runs_without_panics() {
    let n = run_corpus(
        "../keel-imap/fuzz/corpus/receiver",
        imap_fuzz::fuzz_imap_receiver,
    );
    assert!(n >= 6, "only {n} corpus files");
}

#[test]
fn fuzz_corpus_mime_runs_without_panics() {
    let n = run_corpus("../keel-filter/fuzz/corpus/mime", mime_fuzz::fuzz_mime);
    assert!(n >= 8, "only {n} corpus files");
}

// ---------------------------------------------------------------------------------------
// Crash safety: kill -9 at random points, several rounds.

/// Subjects of alice's mailbox, read over POP3 with Python's poplib.
fn stored_subjects(s: &Server, password: &str) -> Vec<String> {
    let script = r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=30)
p.user("alice"); p.pass_(sys.argv[2])
count, _ = p.stat()
for i in range(1, count + 1):
    for line in p.top(i, 0)[1]:
        if line.startswith(b"Subject: "):
            print(line[9:].decode())
p.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.port("pop3").to_string(), password])
        .output()
        .expect("python3");
    assert!(out.status.success(), "poplib: {}", stderr(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

/// Integrity check of a stopped server's data directory. Orphan blobs are allowed only
/// when `allow_orphans` (a kill between blob write and commit leaves them; the next start
/// collects them).
fn assert_store_consistent(data: &Path, allow_orphans: bool, when: &str) {
    let blobs = keel_store::file::FileBlobStore::open(&data.join("blobs")).expect("blobs");
    let report = keel_store::check::check_sqlite(&data.join("keel.db"), &blobs, false)
        .expect("integrity check runs");
    assert!(
        report.missing_blobs.is_empty()
            && report.folder_mismatches.is_empty()
            && report.usage_mismatches.is_empty()
            && (allow_orphans || report.orphan_blobs.is_empty()),
        "{when}: store inconsistent:\n{report}"
    );
    assert!(report.messages > 0 || report.queued > 0 || report.blobs == 0);
}

#[test]
fn repeated_kill_9_under_load_loses_and_duplicates_nothing_and_the_store_stays_consistent() {
    let rounds = if long_tests() { 10 } else { 3 };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let password = "Alice-pass-1";
    {
        let s = Server::start(&data, free_offset(), &["--hostname", "mail.example.com"]);
        let out = s.keel(&["user", "add", "alice@example.com", "--password", password]);
        assert!(out.status.success(), "{}", stderr(&out));
        let _ = s.terminate();
    }
    let sender = r#"
import smtplib, sys, threading, os
port, path, tag, threads = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
lock = threading.Lock()
out = open(path, "a")
def sender(t):
    n = 0
    while True:
        try:
            c = smtplib.SMTP("127.0.0.1", port, timeout=10)
            while True:
                subj = f"{tag}-{t}-{n}"
                n += 1
                c.sendmail("x@remote.test", ["alice@example.com"],
                           f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: {subj}\r\n\r\n" + ("y" * 70 + "\r\n") * (1 + n % 50))
                with lock:
                    out.write(subj + "\n"); out.flush(); os.fsync(out.fileno())
        except Exception:
            return
ts = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
"#;
    let acked_path = tmp.path().join("acked.txt");
    let mut total_acked = 0;
    for round in 0..rounds {
        let s = Server::start(&data, free_offset(), &[]);
        let before = std::fs::read_to_string(&acked_path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let mut clients = Command::new("python3")
            .args(["-c", sender, &s.port("smtp").to_string()])
            .arg(&acked_path)
            .args([&format!("r{round}"), "16"])
            .spawn()
            .expect("python3");
        // A random point: after 5..60 new acknowledgements, plus 0..150 ms.
        let want = before + 5 + (rand::random::<u32>() % 56) as usize;
        let reached = eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&acked_path)
                .map(|t| t.lines().count() >= want)
                .unwrap_or(false)
        });
        std::thread::sleep(Duration::from_millis(u64::from(
            rand::random::<u32>() % 150,
        )));
        let mut s = s;
        let _ = Command::new("kill")
            .args(["-KILL", &s.child.id().to_string()])
            .status();
        let _ = s.child.wait();
        let _ = wait_timeout(&mut clients, Duration::from_secs(30));
        let _ = clients.kill();
        let _ = clients.wait();
        drop(s);
        assert!(reached, "round {round}: senders did not reach {want} acks");

        // The store of the killed server: no missing blob, counters right.
        assert_store_consistent(&data, true, &format!("round {round} after kill -9"));

        let s = Server::start(&data, free_offset(), &[]);
        let acked: Vec<String> = std::fs::read_to_string(&acked_path)
            .expect("acked")
            .lines()
            .map(str::to_owned)
            .collect();
        let stored = stored_subjects(&s, password);
        let mut seen = std::collections::HashMap::new();
        for subj in &stored {
            *seen.entry(subj.as_str()).or_insert(0) += 1;
        }
        for subj in &acked {
            assert_eq!(
                seen.get(subj.as_str()),
                Some(&1),
                "round {round}: acknowledged message {subj} stored {:?} times",
                seen.get(subj.as_str())
            );
        }
        assert!(
            seen.values().all(|&n| n == 1),
            "round {round}: a message was stored twice"
        );
        total_acked = acked.len();
        let (status, _) = s.terminate();
        assert!(status.success(), "round {round}: SIGTERM exit {status:?}");
        // After a clean start (orphans collected) and stop, fully consistent.
        assert_store_consistent(&data, false, &format!("round {round} after restart"));
    }
    assert!(total_acked >= rounds * 5, "only {total_acked} acknowledged");
    eprintln!("{rounds} kill -9 rounds, {total_acked} acknowledged messages, all stored once");
}

// ---------------------------------------------------------------------------------------
// Bad-input suite.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Smtp,
    Pop3,
    Imap,
}

impl Proto {
    fn port(self, ports: Ports) -> u16 {
        match self {
            Self::Smtp => ports.smtp,
            Self::Pop3 => ports.pop3,
            Self::Imap => ports.imap,
        }
    }
    /// A harmless command allowed before login and the prefix of its success reply
    /// (POP3 allows only CAPA, USER, AUTH, STLS and QUIT then; CAPA's list is consumed).
    fn noop(self) -> (&'static [u8], &'static str) {
        match self {
            Self::Smtp => (b"NOOP\r\n", "250"),
            Self::Pop3 => (b"CAPA\r\n", "+OK"),
            Self::Imap => (b"a NOOP\r\n", "OK"),
        }
    }
}

/// The server's ports (a `Server` cannot be shared between threads).
#[derive(Clone, Copy)]
struct Ports {
    smtp: u16,
    pop3: u16,
    imap: u16,
}

/// A blocking line client with a read deadline.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    proto: Proto,
}

impl Wire {
    fn connect(proto: Proto, port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.set_nodelay(true).ok();
        let mut w = Self {
            s,
            buf: Vec::new(),
            proto,
        };
        let greeting = w.line().expect("greeting");
        let ok = match proto {
            Proto::Smtp => greeting.starts_with("220"),
            Proto::Pop3 => greeting.starts_with("+OK"),
            Proto::Imap => greeting.starts_with("* OK"),
        };
        assert!(ok, "{proto:?} greeting: {greeting}");
        w
    }

    fn send(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l).trim_end().to_owned());
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// IMAP: the status of the tagged reply ("OK …", "NO …", "BAD …"), an untagged BAD or
    /// BYE, or "+" for a continuation request; other untagged data (and its literals) is
    /// skipped. `None` if closed.
    fn imap_reply(&mut self) -> Option<String> {
        loop {
            let l = self.line()?;
            if let Some(n) = l
                .strip_suffix('}')
                .and_then(|x| x.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok())
            {
                // Skip the literal; the response goes on after it.
                while self.buf.len() < n {
                    let mut chunk = [0u8; 65536];
                    match self.s.read(&mut chunk) {
                        Ok(0) | Err(_) => return None,
                        Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                    }
                }
                self.buf.drain(..n);
                continue;
            }
            if let Some(rest) = l.strip_prefix("a ") {
                return Some(rest.to_owned());
            }
            if l.starts_with('+') {
                return Some("+".to_owned());
            }
            if let Some(rest) = l.strip_prefix("* ")
                && (rest.starts_with("BAD") || rest.starts_with("BYE"))
            {
                return Some(rest.to_owned());
            }
        }
    }

    /// One reply (SMTP: the last line of a multi-line reply; POP3: a `+OK` is taken as
    /// CAPA's and its list is consumed up to the `.` line). `None` if closed.
    fn reply(&mut self) -> Option<String> {
        if self.proto == Proto::Imap {
            return self.imap_reply();
        }
        loop {
            let l = self.line()?;
            if self.proto == Proto::Pop3 {
                if l.starts_with("+OK") {
                    while self.line()? != "." {}
                }
                return Some(l);
            }
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return Some(l);
            }
        }
    }
}

fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// What a case expects after its input.
#[derive(Debug)]
enum Expect {
    /// This many replies, each starting with the prefix.
    Replies(usize, &'static str),
    /// One reply starting with one of the prefixes.
    OneOf(&'static [&'static str]),
    /// A reply starting with one of the prefixes, or the server closes the connection.
    ReplyOrClose(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    proto: Proto,
    /// Sent (and each reply read) before the hostile input.
    setup: &'static [&'static str],
    input: Vec<u8>,
    /// Sent byte by byte with this pause (slowloris), else in one write.
    trickle: Option<Duration>,
    expect: Expect,
    /// The same connection still answers a NOOP afterwards.
    connection_survives: bool,
}

fn cases() -> Vec<Case> {
    let long = long_tests();
    let flood = if long { 20_000 } else { 2_000 };
    let big = if long { 16 << 20 } else { 2 << 20 };
    let trickle = Some(Duration::from_millis(if long { 150 } else { 40 }));
    let mut v = Vec::new();
    for proto in [Proto::Smtp, Proto::Pop3] {
        let (err, ok): (&'static [&'static str], &'static str) = match proto {
            Proto::Smtp => (&["5"], "250"),
            Proto::Pop3 | Proto::Imap => (&["-ERR"], "+OK"),
        };
        let noop = proto.noop().0;
        v.push(Case {
            name: "overlong command line",
            proto,
            setup: &[],
            input: [b"NOOP ".as_slice(), &vec![b'a'; 20_000], b"\r\n"].concat(),
            trickle: None,
            expect: Expect::OneOf(if proto == Proto::Smtp {
                &["500", "501"]
            } else {
                &["-ERR"]
            }),
            connection_survives: true,
        });
        v.push(Case {
            name: "megabytes without a line end",
            proto,
            setup: &[],
            input: [vec![b'x'; big], b"\r\n".to_vec()].concat(),
            trickle: None,
            expect: Expect::ReplyOrClose(&["5", "-ERR", "4"]),
            connection_survives: false,
        });
        v.push(Case {
            name: "NUL bytes in a command",
            proto,
            setup: &[],
            input: b"NO\0OP\r\n".to_vec(),
            trickle: None,
            expect: Expect::OneOf(if proto == Proto::Smtp {
                &["500", "501"]
            } else {
                &["-ERR"]
            }),
            connection_survives: true,
        });
        v.push(Case {
            name: "invalid UTF-8 argument",
            proto,
            setup: if proto == Proto::Smtp {
                &["EHLO client.test"]
            } else {
                &[]
            },
            input: if proto == Proto::Smtp {
                b"MAIL FROM:<\xff\xfe\xc3\x28@remote.test>\r\n".to_vec()
            } else {
                b"AUTH \xff\xfe\xc3\x28\r\n".to_vec()
            },
            trickle: None,
            expect: Expect::OneOf(if proto == Proto::Smtp {
                &["5", "250"]
            } else {
                &["-ERR"]
            }),
            connection_survives: true,
        });
        v.push(Case {
            name: "bare LF line end",
            proto,
            setup: &[],
            input: [&noop[..noop.len() - 2], b"\n"].concat(),
            trickle: None,
            expect: Expect::Replies(1, ok),
            connection_survives: true,
        });
        v.push(Case {
            name: "pipelining flood",
            proto,
            setup: &[],
            input: noop.repeat(flood),
            trickle: None,
            expect: Expect::Replies(flood, ok),
            connection_survives: true,
        });
        v.push(Case {
            name: "flood of unknown commands",
            proto,
            setup: &[],
            input: b"FROB x\r\n".repeat(flood / 10),
            trickle: None,
            // Both drop a session after repeated errors (guide §12: error limits).
            expect: Expect::ReplyOrClose(err),
            connection_survives: false,
        });
        v.push(Case {
            name: "slowloris trickle",
            proto,
            setup: &[],
            input: noop.to_vec(),
            trickle,
            expect: Expect::Replies(1, ok),
            connection_survives: true,
        });
    }
    // SMTP DATA with hostile content: NUL, invalid UTF-8, overlong body lines.
    v.push(Case {
        name: "DATA with NUL, invalid UTF-8 and a 5000-byte line",
        proto: Proto::Smtp,
        setup: &[
            "EHLO client.test",
            "MAIL FROM:<x@remote.test>",
            "RCPT TO:<alice@example.com>",
            "DATA",
        ],
        input: [
            b"Subject: bad\r\n\r\n\0\0\xff\xfe\r\n".as_slice(),
            &vec![b'z'; 5000],
            b"\r\n.\r\n",
        ]
        .concat(),
        trickle: None,
        expect: Expect::OneOf(&["250", "552", "554", "550"]),
        connection_survives: true,
    });
    v.extend(imap_cases(flood, big, trickle));
    v.push(Case {
        name: "RETR before login and absurd numbers",
        proto: Proto::Pop3,
        setup: &[],
        input: b"RETR 99999999999999999999\r\n".to_vec(),
        trickle: None,
        expect: Expect::OneOf(&["-ERR"]),
        connection_survives: true,
    });
    v
}

/// IMAP's hostile inputs (issue 4 Tests, issue 7 §7): each gets BAD/NO (RFC 9051 §7.1)
/// and, where the protocol allows, the connection stays usable.
fn imap_cases(flood: usize, big: usize, trickle: Option<Duration>) -> Vec<Case> {
    const LOGIN: &[&str] = &["a LOGIN alice@example.com Alice-pass-1"];
    const SELECTED: &[&str] = &["a LOGIN alice@example.com Alice-pass-1", "a SELECT INBOX"];
    let case = |name, setup, input: &[u8], expect, connection_survives| Case {
        name,
        proto: Proto::Imap,
        setup,
        input: input.to_vec(),
        trickle: None,
        expect,
        connection_survives,
    };
    let bad: &'static [&'static str] = &["BAD"];
    let bad_or_no: &'static [&'static str] = &["BAD", "NO"];
    vec![
        case(
            "overlong command line",
            &[],
            &[b"a NOOP ".as_slice(), &vec![b'a'; 20_000], b"\r\n"].concat(),
            Expect::OneOf(bad),
            true,
        ),
        case(
            "megabytes without a line end",
            &[],
            &[vec![b'x'; big], b"\r\n".to_vec()].concat(),
            Expect::ReplyOrClose(&["BAD", "BYE"]),
            false,
        ),
        case(
            "NUL bytes in a command",
            &[],
            b"a NO\0OP\r\n",
            Expect::OneOf(bad),
            true,
        ),
        case(
            "invalid UTF-8 argument",
            &[],
            b"a LOGIN \xff\xfe \xc3\x28\r\n",
            Expect::OneOf(bad_or_no),
            true,
        ),
        case(
            "bare LF line end",
            &[],
            b"a NOOP\n",
            Expect::Replies(1, "OK"),
            true,
        ),
        case(
            "pipelining flood",
            &[],
            &b"a NOOP\r\n".repeat(flood),
            Expect::Replies(flood, "OK"),
            true,
        ),
        case(
            "flood of unknown commands",
            &[],
            &b"a FROB x\r\n".repeat(flood / 10),
            Expect::ReplyOrClose(&["BAD", "BYE"]),
            false,
        ),
        Case {
            name: "slowloris trickle",
            proto: Proto::Imap,
            setup: &[],
            input: b"a NOOP\r\n".to_vec(),
            trickle,
            expect: Expect::Replies(1, "OK"),
            connection_survives: true,
        },
        case(
            "command in the wrong state",
            &[],
            b"a FETCH 1 FLAGS\r\n",
            Expect::OneOf(bad_or_no),
            true,
        ),
        case(
            "huge synchronising literal",
            LOGIN,
            b"a APPEND INBOX {99999999999}\r\n",
            Expect::OneOf(bad_or_no),
            true,
        ),
        case(
            "huge non-synchronising literal",
            LOGIN,
            b"a APPEND INBOX {99999999999+}\r\n",
            Expect::ReplyOrClose(&["BAD", "NO", "BYE"]),
            false,
        ),
        case(
            "unterminated literal, then the client goes away",
            LOGIN,
            b"a APPEND INBOX {100}\r\nFrom: half",
            Expect::OneOf(&["+"]),
            false,
        ),
        case(
            "sequence number zero",
            SELECTED,
            b"a FETCH 0:* FLAGS\r\n",
            Expect::OneOf(bad),
            true,
        ),
        case(
            "sequence number beyond 32 bits",
            SELECTED,
            b"a FETCH 1:99999999999 FLAGS\r\n",
            Expect::OneOf(bad),
            true,
        ),
        case(
            "garbage sequence set",
            SELECTED,
            b"a UID FETCH *:x,,3 FLAGS\r\n",
            Expect::OneOf(bad),
            true,
        ),
    ]
}

fn run_case(ports: Ports, c: &Case) {
    let port = c.proto.port(ports);
    let mut w = Wire::connect(c.proto, port);
    for cmd in c.setup {
        w.send(format!("{cmd}\r\n").as_bytes()).expect("setup send");
        let r = w.reply().unwrap_or_default();
        assert!(
            r.starts_with('2') || r.starts_with('3') || r.starts_with("+OK") || r.starts_with("OK"),
            "{}: setup {cmd:?} got {r:?}",
            c.name
        );
    }
    let started = Instant::now();
    // Writes may fail when the server closes early on purpose; the reply check decides.
    let writer = {
        let mut s = w.s.try_clone().expect("clone");
        let input = c.input.clone();
        let trickle = c.trickle;
        std::thread::spawn(move || match trickle {
            Some(pause) => {
                for b in input {
                    if s.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                }
            }
            None => {
                let _ = s.write_all(&input);
            }
        })
    };
    match &c.expect {
        Expect::Replies(n, prefix) => {
            for i in 0..*n {
                let r = w.reply();
                assert!(
                    r.as_deref().is_some_and(|r| r.starts_with(prefix)),
                    "{} ({:?}): reply {i} of {n} was {r:?}",
                    c.name,
                    c.proto
                );
            }
        }
        Expect::OneOf(prefixes) => {
            let r = w.reply();
            assert!(
                r.as_deref()
                    .is_some_and(|r| prefixes.iter().any(|p| r.starts_with(p))),
                "{} ({:?}): got {r:?}, wanted one of {prefixes:?}",
                c.name,
                c.proto
            );
        }
        Expect::ReplyOrClose(prefixes) => {
            if let Some(r) = w.reply() {
                assert!(
                    prefixes.iter().any(|p| r.starts_with(p)),
                    "{} ({:?}): got {r:?}, wanted one of {prefixes:?} or a close",
                    c.name,
                    c.proto
                );
            }
        }
    }
    let _ = writer.join();
    if c.connection_survives {
        let (noop, ok) = c.proto.noop();
        w.send(noop).expect("send NOOP after the case");
        let r = w.reply();
        assert!(
            r.as_deref().is_some_and(|r| r.starts_with(ok)),
            "{} ({:?}): connection unusable afterwards, NOOP got {r:?}",
            c.name,
            c.proto
        );
    }
    // The server survives: a fresh connection gets its greeting.
    drop(w);
    let _ = Wire::connect(c.proto, port);
    assert!(
        started.elapsed() < Duration::from_secs(if long_tests() { 120 } else { 20 }),
        "{} took {:?}",
        c.name,
        started.elapsed()
    );
}

#[test]
fn bad_input_suite_smtp_pop3_and_imap_reply_survive_and_stay_bounded() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&[
        "user",
        "add",
        "alice@example.com",
        "--password",
        "Alice-pass-1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = s.child.id();
    let rss_before = vm_rss_kb(pid);
    let all = cases();
    // Several at once too: the hostile connections run side by side.
    let ports = Ports {
        smtp: s.port("smtp"),
        pop3: s.port("pop3"),
        imap: s.port("imap"),
    };
    std::thread::scope(|scope| {
        for c in &all {
            scope.spawn(move || run_case(ports, c));
        }
    });
    // And once more one by one, so a failure names its case without interference.
    for c in &all {
        run_case(ports, c);
    }
    let rss_after = vm_rss_kb(pid);
    eprintln!(
        "bad-input suite: {} cases, VmRSS {rss_before} kB before, {rss_after} kB after",
        all.len()
    );
    assert!(rss_before > 0, "VmRSS unreadable");
    // Memory stays bounded: a few MB of input must not leave the process much bigger.
    assert!(
        rss_after < rss_before + 64 * 1024 && rss_after < 300 * 1024,
        "VmRSS grew from {rss_before} kB to {rss_after} kB"
    );
    let (status, _) = s.terminate();
    assert!(status.success());
}

/// The smoke check of the store API used above on a fresh server: a clean data directory
/// passes the integrity check, and a blob planted in it is reported as an orphan.
#[test]
fn integrity_check_of_a_fresh_data_directory_is_clean_and_finds_a_planted_orphan() {
    let mut s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let data = s.data.clone();
    // Keep the directory past the server's end.
    let tmp = s._tmp.take();
    // A SIGTERM right after "Ready." can still hit the default action (exit by signal
    // 15): the handler is installed a moment later. Seen here; reported in issue 7.
    std::thread::sleep(Duration::from_millis(1000));
    let (status, rest) = s.terminate();
    assert!(status.success(), "SIGTERM exit {status:?}: {rest}");
    assert_store_consistent(&data, false, "fresh");
    let blobs = keel_store::file::FileBlobStore::open(&data.join("blobs")).expect("blobs");
    let id = blobs.put(b"planted").expect("put");
    let r = keel_store::check::check_sqlite(&data.join("keel.db"), &blobs, false).expect("check");
    assert_eq!(r.orphan_blobs, vec![id]);
    let r = keel_store::check::check_sqlite(&data.join("keel.db"), &blobs, true).expect("repair");
    assert_eq!(r.orphans_removed, 1);
    assert_store_consistent(&data, false, "after repair");
    drop(tmp);
}
