//! Test harness: a real IMAP service on 127.0.0.1 port 0 (plaintext with STARTTLS, and
//! IMAPS), over a SqliteStore + FileBlobStore in a temp dir, with a directory built through
//! the Directory API and mail delivered through `Mailboxes::deliver` (STYLE §4).
//!
//! Every response the transcript client reads is parsed by the imap-codec ORACLE
//! ([`oracle`]); a response it cannot parse fails the test.
//!
//! Scenario directory (requirements-1 §Y): `example.com` (primary) with alice and carol,
//! domain alias `example.net`, `other.test` with bob. Every password is [`PW`].
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imap_codec::decode::Decoder;
use imap_codec::{GreetingCodec, ResponseCodec};
use keel_core::clock::ManualClock;
use keel_core::ipgroup::IpGroups;
use keel_core::log::{DebugCategory, LogSettings, Logs};
use keel_directory::{Directory, HashParams, NewDomain, NewUser, SecurityEvent};
use keel_imap::codec::Limits;
use keel_imap::{ImapContext, ImapLimits, ImapService};
use keel_mail::{Delivery, Mailboxes};
use keel_net::{Admission, RunningService, bind_all};
use keel_store::MetaStore;
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
        max_connections: 200,
        max_per_ip: 200,
        groups: Arc::new(IpGroups::new(Vec::new()).unwrap()),
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default(), ImapLimits::default()).await
    }

    pub async fn start_with(codec: Limits, limits: ImapLimits) -> Self {
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
            aliases: vec!["example.net".into()],
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
        settings.debug_categories.insert(DebugCategory::ImapServer);
        let logs =
            Logs::open_with_clock(&tmp.path().join("logs"), settings, Arc::new(clock.clone()))
                .unwrap();
        let tls = tls_acceptor();
        let mut started = Vec::new();
        for implicit_tls in [false, true] {
            let ctx = ImapContext {
                mailboxes: mailboxes.clone(),
                hostname: "mail.example.com".into(),
                implicit_tls,
                logs: Some(logs.clone()),
                limits: codec.clone(),
            };
            let listeners = bind_all(&["127.0.0.1:0".parse().unwrap()]).unwrap();
            started.push(RunningService::start(
                listeners,
                admission(),
                implicit_tls,
                tls.clone(),
                Arc::new(ImapService::with_limits(ctx, limits)),
            ));
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
        let raw = format!(
            "From: Sender <sender@example.org>\r\nTo: {user}\r\nSubject: {subject}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\n{body}"
        );
        self.deliver_raw(user, raw.as_bytes());
    }

    pub fn deliver_raw(&self, user: &str, raw: &[u8]) {
        let out = self
            .mailboxes
            .deliver(&Delivery {
                raw: raw.to_vec(),
                recipients: vec![user.to_owned()],
                internal_date: T0,
            })
            .unwrap();
        assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    }

    pub fn count(&self, user: &str, folder: &str) -> usize {
        let f = self.mailboxes.folder(user, folder).unwrap().unwrap();
        self.mailboxes.messages(f.id).unwrap().len()
    }

    /// Runs `tests/imaplib_client.py <scenario> <port> <tls_port>`; panics with its output
    /// on failure.
    pub async fn python(&self, scenario: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/imaplib_client.py");
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
        .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "python scenario {scenario} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The imap-codec ORACLE: every complete server response must parse. imap-codec
/// 2.0.0-alpha.10 has no ESEARCH (RFC 4731) parser; those lines are checked against the
/// RFC 4731 §3.1 grammar here instead.
pub fn oracle(resp: &[u8], greeting: bool) {
    let text = String::from_utf8_lossy(resp);
    if text.starts_with("* ESEARCH") {
        assert!(
            esearch_ok(&text),
            "ESEARCH response does not follow RFC 4731: {text:?}"
        );
        return;
    }
    let ok = if greeting {
        matches!(GreetingCodec::default().decode(resp), Ok((rest, _)) if rest.is_empty())
    } else {
        matches!(ResponseCodec::default().decode(resp), Ok((rest, _)) if rest.is_empty())
    };
    assert!(ok, "imap-codec oracle rejected the response: {text:?}");
}

/// `esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)`
fn esearch_ok(line: &str) -> bool {
    let Some(mut rest) = line
        .strip_prefix("* ESEARCH")
        .and_then(|r| r.strip_suffix("\r\n"))
    else {
        return false;
    };
    if let Some(r) = rest.strip_prefix(" (TAG \"") {
        let Some(end) = r.find("\")") else {
            return false;
        };
        rest = &r[end + 2..];
    }
    if let Some(r) = rest.strip_prefix(" UID") {
        rest = r;
    }
    let toks: Vec<&str> = rest.split(' ').filter(|t| !t.is_empty()).collect();
    let mut i = 0;
    while i < toks.len() {
        let (name, val) = (toks[i], toks.get(i + 1));
        let Some(val) = val else { return false };
        let ok = match name {
            "MIN" | "MAX" | "COUNT" | "MODSEQ" => val.parse::<u64>().is_ok(),
            "ALL" => val
                .split([',', ':'])
                .all(|n| n.parse::<u32>().is_ok_and(|n| n > 0)),
            _ => false,
        };
        if !ok {
            return false;
        }
        i += 2;
    }
    true
}

/// A transcript client: sends commands, reads whole responses (literals included) and
/// runs each through the oracle.
pub struct Client {
    r: BufReader<TcpStream>,
    n: u32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Self {
            r: BufReader::new(s),
            n: 0,
        };
        let g = c.read_raw().await;
        oracle(&g, true);
        assert!(
            String::from_utf8_lossy(&g).starts_with("* OK [CAPABILITY "),
            "{g:?}"
        );
        c
    }

    pub async fn login(addr: SocketAddr, user: &str) -> Self {
        let mut c = Self::connect(addr).await;
        c.ok(&format!("LOGIN {user} {PW}")).await;
        c
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).await.unwrap();
    }

    /// One complete response (a line plus any literals), as bytes; empty at EOF.
    pub async fn read_raw(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.r.read_until(b'\n', &mut line))
                    .await
                    .expect("server did not answer")
                    .unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&line);
            let l = String::from_utf8_lossy(&line);
            let trimmed = l.trim_end_matches(['\r', '\n']);
            let lit = trimmed
                .strip_suffix('}')
                .and_then(|s| s.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            match lit {
                Some(len) => {
                    let mut buf = vec![0u8; len];
                    self.r.read_exact(&mut buf).await.unwrap();
                    out.extend_from_slice(&buf);
                }
                None => return out,
            }
        }
    }

    /// One response as text, checked by the oracle.
    pub async fn response(&mut self) -> String {
        let raw = self.read_raw().await;
        if !raw.is_empty() {
            oracle(&raw, false);
        }
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// Sends `tag command` and reads up to the tagged completion. Returns (untagged and
    /// continuation responses, tagged line).
    pub async fn run(&mut self, cmd: &str) -> (Vec<String>, String) {
        self.n += 1;
        let tag = format!("a{}", self.n);
        self.send_raw(format!("{tag} {cmd}\r\n").as_bytes()).await;
        self.until(&tag).await
    }

    /// Reads until the tagged response of `tag`.
    pub async fn until(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let r = self.response().await;
            assert!(
                !r.is_empty(),
                "connection closed waiting for {tag}; got {untagged:?}"
            );
            if r.starts_with(&format!("{tag} ")) {
                return (untagged, r.trim_end().to_owned());
            }
            untagged.push(r.trim_end().to_owned());
        }
    }

    pub async fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (u, t) = self.run(cmd).await;
        assert!(
            t.split(' ').nth(1) == Some("OK"),
            "{cmd} -> {t} (untagged {u:?})"
        );
        u
    }

    /// Like [`Client::ok`], returning the tagged line too.
    pub async fn ok_line(&mut self, cmd: &str) -> (Vec<String>, String) {
        let (u, t) = self.run(cmd).await;
        assert!(
            t.split(' ').nth(1) == Some("OK"),
            "{cmd} -> {t} (untagged {u:?})"
        );
        (u, t)
    }

    pub async fn no(&mut self, cmd: &str) -> String {
        let (u, t) = self.run(cmd).await;
        assert!(
            t.split(' ').nth(1) == Some("NO"),
            "{cmd} -> {t} (untagged {u:?})"
        );
        t
    }

    pub async fn bad(&mut self, cmd: &str) -> String {
        let (u, t) = self.run(cmd).await;
        assert!(
            t.split(' ').nth(1) == Some("BAD"),
            "{cmd} -> {t} (untagged {u:?})"
        );
        t
    }

    /// The socket, for tests that take over the wire (COMPRESS).
    pub fn into_inner(self) -> TcpStream {
        assert!(self.r.buffer().is_empty(), "unread data");
        self.r.into_inner()
    }

    /// Whether the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        self.read_raw().await.is_empty()
    }
}

/// Whether any response contains `needle`.
pub fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}
