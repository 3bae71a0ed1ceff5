//! Drives the real `keel` binary: starts `keel serve` on loopback with a port offset,
//! reads its summary, and runs CLI commands and curl against it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Standard ports of every service, in the summary's order.
pub const SERVICES: &[(&str, u16)] = &[
    ("smtp", 25),
    ("smtps", 465),
    ("submission", 587),
    ("pop3", 110),
    ("pop3s", 995),
    ("imap", 143),
    ("imaps", 993),
    ("nntp", 119),
    ("nntps", 563),
    ("ldap", 389),
    ("ldaps", 636),
    ("http", 80),
    ("https", 443),
];

pub fn keel_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keel")
}

/// Offsets handed out in this test process: each owns a disjoint block of 1000 ports, so
/// servers of tests running at the same time can never pick overlapping ports.
static USED_OFFSETS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
/// First and last block: ports 11000..=64995 (below 11000 lie the +10000 fallbacks of
/// privileged ports).
const FIRST_BLOCK: u64 = 11;
const BLOCKS: u64 = 54;

/// A port offset where every service port is free on 127.0.0.1, not used by another test
/// of this process (every service port is below 1000, so blocks of 1000 never overlap).
pub fn free_offset() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    let mut used = USED_OFFSETS.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..BLOCKS * 4 {
        let block = FIRST_BLOCK + (seed.wrapping_add(attempt * 7)) % BLOCKS;
        let offset = (block * 1000) as u16;
        if used.contains(&offset) {
            continue;
        }
        let all_free = SERVICES
            .iter()
            .all(|(_, p)| TcpListener::bind(("127.0.0.1", p + offset)).is_ok());
        if all_free {
            used.push(offset);
            return offset;
        }
    }
    panic!("no free port offset found");
}

pub struct Server {
    pub child: Child,
    pub data: PathBuf,
    pub offset: u16,
    pub summary: String,
    pub _tmp: Option<tempfile::TempDir>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// First run in a fresh temporary data directory.
    pub fn start_fresh(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let mut s = Self::start(&data, free_offset(), extra);
        s._tmp = Some(tmp);
        s
    }

    /// First run with extra environment variables for the server.
    pub fn start_fresh_with_env(extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let mut s = Self::start_with_env(&data, free_offset(), extra, envs);
        s._tmp = Some(tmp);
        s
    }

    pub fn start(data: &Path, offset: u16, extra: &[&str]) -> Self {
        Self::start_with_env(data, offset, extra, &[])
    }

    pub fn start_with_env(data: &Path, offset: u16, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(keel_bin());
        cmd.envs(envs.iter().copied());
        cmd.arg("--data")
            .arg(data)
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1",
                "--port-offset",
                &offset.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn keel serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut summary = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    summary.push_str(&line);
                    summary.push('\n');
                    if line == "Ready." {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("keel serve did not print its summary; got:\n{summary}");
                }
            }
        }
        Self {
            child,
            data: data.to_owned(),
            offset,
            summary,
            _tmp: None,
            lines: rx,
        }
    }

    pub fn port(&self, service: &str) -> u16 {
        let (_, p) = SERVICES
            .iter()
            .find(|(n, _)| *n == service)
            .expect("known service");
        p + self.offset
    }

    /// The printed admin password.
    pub fn admin_password(&self) -> String {
        self.summary
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Password:")
                    .map(|p| p.trim().to_owned())
            })
            .expect("summary shows the admin password")
    }

    /// The summary row of a service: (state, addresses).
    pub fn service_row(&self, name: &str) -> (String, String) {
        let row = self
            .summary
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{}", self.summary));
        for state in ["not available", "running", "stopped", "failed"] {
            if let Some(pos) = row.find(&format!(" {state} ")) {
                let rest = row[pos + state.len() + 2..].trim();
                let addrs = rest.split_whitespace().next().unwrap_or("").to_owned();
                return (state.to_owned(), addrs);
            }
        }
        panic!("row without a state: {row}");
    }

    /// Runs `keel --data <dir> args…`.
    pub fn keel(&self, args: &[&str]) -> Output {
        keel(&self.data, args)
    }

    /// Stops with SIGTERM and returns the exit status and the rest of stdout.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_timeout(&mut self.child, Duration::from_secs(40))
            .expect("keel exits after SIGTERM");
        let mut rest = String::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            rest.push_str(&l);
            rest.push('\n');
        }
        (status, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

pub fn keel(data: &Path, args: &[&str]) -> Output {
    Command::new(keel_bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run keel")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `curl` POST of a JSON login; returns (HTTP status, body).
pub fn curl_login(url: &str, login: &str, password: &str) -> (u16, String) {
    let body = serde_json::json!({ "login": login, "password": password }).to_string();
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
        ])
        .args(["--data-binary", &body, "--max-time", "20", url])
        .output()
        .expect("curl is installed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Whether a TCP connection is accepted and then kept open (not closed at once).
pub fn connection_kept(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => false, // closed by the server
        Ok(_) => true,  // it spoke
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Retries `f` until it is true or `t` passes.
pub fn eventually(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A program from PATH or the usual sbin directories (a non-root PATH lacks /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A free TCP port on 127.0.0.1 (bound once, then released for a peer to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Whether a test that needs a real peer can run: `problem` says what is missing. A
/// missing peer skips the test with a message on stderr, or fails it when `require_var`
/// is `1` (the test command sets it).
pub fn peer_or_skip(test: &str, problem: Option<&str>, require_var: &str) -> bool {
    match problem {
        None => true,
        Some(why) if std::env::var(require_var).as_deref() == Ok("1") => {
            panic!("{test}: {why}, and {require_var}=1")
        }
        Some(why) => {
            // Straight to the stderr handle: the test harness captures `eprintln!`, and a
            // skip must show in the normal output.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: {why} (set {require_var}=1 to fail instead)"
            );
            false
        }
    }
}
