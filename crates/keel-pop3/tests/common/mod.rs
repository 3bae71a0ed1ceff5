//! Test harness: a real POP3 service on 127.0.0.1 port 0 (plaintext with STLS, and POP3S),
//! over a SqliteStore + FileBlobStore in a temp dir, with a directory built through the
//! Directory API and mail delivered through `Mailboxes::deliver` (STYLE §4).
//!
//! Scenario directory (requirements-1 §Y): `example.com` (primary) with alice and carol,
//! `other.test` with bob. Every password is [`PW`].
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::clock::ManualClock;
use keel_core::ipgroup::IpGroups;
use keel_core::log::{DebugCategory, LogKind, LogSettings, Logs};
use keel_directory::{Directory, HashParams, NewDomain, NewUser, SecurityEvent};
use keel_mail::{Delivery, Mailboxes};
use keel_net::{Admission, RunningService, bind_all};
use keel_pop3::{Pop3Context, Pop3Limits, Pop3Service};
use keel_store::MetaStore;
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub const PW: &str = "Secret-pw1";
pub const T0: i64 = 1_700_000_000;

pub struct TestServer {
    pub tmp: tempfile::TempDir,
    pub clock: ManualClock,
    pub dir: Arc<Directory>,
    pub mailboxes: Mailboxes,
    pub events: Arc<Mutex<Vec<SecurityEvent>>>,
    pub logs: Logs,
    pub plain: Option<RunningService>,
    pub secure: Option<RunningService>,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
}

fn tls_acceptor() -> TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

fn admission() -> Admission {
    Admission {
        access_group: None,
        max_connections: 100,
        max_per_ip: 100,
        groups: Arc::new(IpGroups::new(Vec::new()).unwrap()),
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Pop3Limits::default()).await
    }

    pub async fn start_with(limits: Pop3Limits) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let meta: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&tmp.path().join("meta.db")).unwrap());
        let blobs = Arc::new(FileBlobStore::open(&tmp.path().join("blobs")).unwrap());
        let dir = Arc::new(Directory::with_hash_params(
            meta.clone(),
            Arc::new(clock.clone()),
            HashParams::insecure_fast(),
        ));
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        dir.set_security_sink(Arc::new(move |e| ev.lock().unwrap().push(e)));
        dir.add_domain(NewDomain {
            name: "example.com".into(),
            ..Default::default()
        })
        .unwrap();
        dir.add_domain(NewDomain {
            name: "other.test".into(),
            ..Default::default()
        })
        .unwrap();
        for u in ["alice@example.com", "carol@example.com", "bob@other.test"] {
            dir.add_user(NewUser::new(u, PW)).unwrap();
        }
        let mailboxes = Mailboxes::new(meta, blobs, dir.clone(), Arc::new(clock.clone()));
        let mut settings = LogSettings::default();
        settings.debug_categories.insert(DebugCategory::Pop3Server);
        let logs =
            Logs::open_with_clock(&tmp.path().join("logs"), settings, Arc::new(clock.clone()))
                .unwrap();
        let tls = tls_acceptor();
        let mut started = Vec::new();
        for implicit_tls in [false, true] {
            let ctx = Pop3Context {
                mailboxes: mailboxes.clone(),
                hostname: "mail.example.com".into(),
                implicit_tls,
                logs: Some(logs.clone()),
            };
            let listeners = bind_all(&["127.0.0.1:0".parse().unwrap()]).unwrap();
            let svc = RunningService::start(
                listeners,
                admission(),
                implicit_tls,
                tls.clone(),
                Arc::new(Pop3Service::with_limits(ctx, limits)),
            );
            started.push(svc);
        }
        let secure = started.pop().unwrap();
        let plain = started.pop().unwrap();
        Self {
            addr: plain.bound[0].addr,
            tls_addr: secure.bound[0].addr,
            tmp,
            clock,
            dir,
            mailboxes,
            events,
            logs,
            plain: Some(plain),
            secure: Some(secure),
        }
    }

    /// Delivers a message to a user's INBOX.
    pub fn deliver(&self, user: &str, subject: &str, body: &str) {
        let raw =
            format!("From: sender@example.org\r\nTo: {user}\r\nSubject: {subject}\r\n\r\n{body}");
        let out = self
            .mailboxes
            .deliver(&Delivery {
                raw: raw.into_bytes(),
                recipients: vec![user.to_owned()],
                internal_date: T0,
            })
            .unwrap();
        assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    }

    /// The Debug log's text.
    pub fn debug_log(&self) -> String {
        std::fs::read_to_string(self.logs.path(LogKind::Debug)).unwrap_or_default()
    }

    pub fn inbox_count(&self, user: &str) -> usize {
        let inbox = self.mailboxes.inbox(user).unwrap();
        self.mailboxes.messages(inbox.id).unwrap().len()
    }

    /// Runs `tests/poplib_client.py <scenario> <port> <tls_port>`; panics with its output on
    /// failure.
    pub async fn python(&self, scenario: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/poplib_client.py");
        let args = vec![
            script.to_owned(),
            scenario.to_owned(),
            self.addr.port().to_string(),
            self.tls_addr.port().to_string(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(&args).output()
        })
        .await
        .unwrap()
        .expect("python3 must be installed (see the README test command)");
        assert!(
            out.status.success(),
            "python scenario {scenario} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A line-level POP3 client for transcript tests.
pub struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    /// Connects and checks the greeting.
    pub async fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Self {
            r: BufReader::new(s),
        };
        let g = c.line().await;
        assert!(g.starts_with("+OK"), "{g}");
        c
    }

    /// Connects and logs in with USER/PASS.
    pub async fn login(addr: SocketAddr, user: &str) -> Self {
        let mut c = Self::connect(addr).await;
        c.ok(&format!("USER {user}")).await;
        c.ok(&format!("PASS {PW}")).await;
        c
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).await.unwrap();
    }

    /// One line without CRLF; "" at EOF.
    pub async fn line(&mut self) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut s))
            .await
            .expect("server did not answer")
            .unwrap();
        s.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// Sends a command and returns the status line.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(line).await;
        self.line().await
    }

    /// Sends a command and asserts +OK.
    pub async fn ok(&mut self, line: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with("+OK"), "{line} -> {r}");
        r
    }

    /// Sends a command and asserts -ERR.
    pub async fn err(&mut self, line: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with("-ERR"), "{line} -> {r}");
        r
    }

    /// Reads a multi-line body (after the status line), un-stuffed.
    pub async fn body(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." {
                return out;
            }
            out.push(l.strip_prefix('.').map_or(l.clone(), str::to_owned));
        }
    }

    /// Sends a multi-line command, asserts +OK, returns the body.
    pub async fn multi(&mut self, line: &str) -> Vec<String> {
        self.ok(line).await;
        self.body().await
    }

    /// Whether the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        self.line().await.is_empty()
    }
}
