//! Test harness: starts the SMTP services (25-like MX, 587-like submission, 465-like SMTPS)
//! on 127.0.0.1 port 0 with a temporary SQLite store, file blobs, the scenario directory of
//! requirements-1 "## Y." and a self-signed certificate; drives them with Python smtplib.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keel_core::clock::{ManualClock, SharedClock};
use keel_core::log::{LogKind, LogSettings, Logs};
use keel_directory::{Directory, HashParams, NewDomain, NewUser};
use keel_mail::Mailboxes;
use keel_net::{Admission, RunningService, bind_all};
use keel_smtp::{SmtpContext, SmtpKind, SmtpService, SmtpSettings, save_settings};
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use keel_store::{BlobStore, MetaStore};
use tempfile::TempDir;

pub const HOSTNAME: &str = "mx.example.com";
pub const PASSWORD: &str = "Secret-pw-123";

pub struct TestServer {
    pub dir: TempDir,
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub directory: Arc<Directory>,
    pub mailboxes: Mailboxes,
    pub clock: ManualClock,
    pub logs: Logs,
    pub free_space: Arc<AtomicU64>,
    pub mx: u16,
    pub submission: u16,
    pub smtps: u16,
    services: Vec<RunningService>,
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let generated =
        rcgen::generate_simple_self_signed(vec![HOSTNAME.to_owned()]).expect("self-signed cert");
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .expect("key der");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

impl TestServer {
    /// Starts with the given settings (saved before the first session).
    pub async fn start(settings: SmtpSettings) -> Self {
        Self::start_with_resolver(settings, None).await
    }

    /// Starts with the given settings and DNS resolver for the sender-domain check.
    pub async fn start_with_resolver(
        settings: SmtpSettings,
        resolver: Option<keel_smtp::dns::Resolver>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&dir.path().join("meta.sqlite")).expect("sqlite"));
        let blobs: Arc<dyn BlobStore> =
            Arc::new(FileBlobStore::open(&dir.path().join("blobs")).expect("blobs"));
        let clock = ManualClock::at(1_750_000_000);
        let shared_clock: SharedClock = Arc::new(clock.clone());
        let directory = Arc::new(Directory::with_hash_params(
            meta.clone(),
            shared_clock.clone(),
            HashParams::insecure_fast(),
        ));
        directory
            .add_domain(NewDomain {
                name: "example.com".into(),
                aliases: vec!["example.net".into()],
                ..NewDomain::default()
            })
            .expect("example.com");
        directory
            .set_primary_domain("example.com")
            .expect("primary");
        directory
            .add_domain(NewDomain {
                name: "other.test".into(),
                ..NewDomain::default()
            })
            .expect("other.test");
        for u in ["alice", "carol", "dave", "admin"] {
            directory
                .add_user(NewUser::new(&format!("{u}@example.com"), PASSWORD))
                .expect("user");
        }
        directory
            .add_user(NewUser::new("bob@other.test", PASSWORD))
            .expect("bob");
        save_settings(&*meta, &settings).expect("settings");
        let logs = Logs::open_with_clock(
            &dir.path().join("logs"),
            LogSettings::default(),
            shared_clock.clone(),
        )
        .expect("logs");
        let mailboxes = Mailboxes::new(
            meta.clone(),
            blobs.clone(),
            directory.clone(),
            shared_clock.clone(),
        );
        let free_space = Arc::new(AtomicU64::new(u64::MAX));
        let fs = free_space.clone();
        let ctx = SmtpContext {
            mailboxes: mailboxes.clone(),
            directory: directory.clone(),
            meta: meta.clone(),
            blobs: blobs.clone(),
            logs: logs.clone(),
            clock: shared_clock.clone(),
            hostname: Arc::new(|| HOSTNAME.to_owned()),
            data_dir_free_space: Arc::new(move || Some(fs.load(Ordering::SeqCst))),
            queue_waker: None,
            resolver,
        };
        let limits = Arc::new(keel_smtp::IpLimits::default());
        let groups = Arc::new(directory.ip_groups().expect("groups"));
        let tls = tls_acceptor();
        let mut services = Vec::new();
        let mut ports = Vec::new();
        for (kind, implicit) in [
            (SmtpKind::Mx, false),
            (SmtpKind::Submission, false),
            (SmtpKind::Smtps, true),
        ] {
            let listeners = bind_all(&["127.0.0.1:0".parse().expect("addr")]).expect("bind");
            ports.push(listeners[0].1.addr.port());
            let handler = Arc::new(SmtpService::with_limits(kind, ctx.clone(), limits.clone()));
            services.push(RunningService::start(
                listeners,
                Admission {
                    access_group: None,
                    max_connections: 1000,
                    max_per_ip: 1000,
                    groups: groups.clone(),
                },
                implicit,
                tls.clone(),
                handler,
            ));
        }
        Self {
            dir,
            meta,
            blobs,
            directory,
            mailboxes,
            clock,
            logs,
            free_space,
            mx: ports[0],
            submission: ports[1],
            smtps: ports[2],
            services,
        }
    }

    pub fn set_settings(&self, s: &SmtpSettings) {
        save_settings(&*self.meta, s).expect("save settings");
    }

    /// Runs a Python script with the ports as argv[1..4] after the common preamble;
    /// returns stdout lines. Panics with stderr on failure.
    pub async fn py(&self, script: &str) -> Vec<String> {
        let full = format!("{PREAMBLE}\n{script}\n");
        let (mx, sub, smtps) = (self.mx, self.submission, self.smtps);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg("-c")
                .arg(full)
                .arg(mx.to_string())
                .arg(sub.to_string())
                .arg(smtps.to_string())
                .output()
                .expect("python3 runs")
        })
        .await
        .expect("join");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "python failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout.lines().map(str::to_owned).collect()
    }

    /// The raw messages in a user's INBOX.
    pub async fn inbox(&self, user: &str) -> Vec<Vec<u8>> {
        let mb = self.mailboxes.clone();
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || {
            let f = mb.inbox(&user).expect("inbox");
            mb.messages(f.id)
                .expect("messages")
                .iter()
                .map(|m| mb.read(&m.blob).expect("read"))
                .collect()
        })
        .await
        .expect("join")
    }

    pub fn log(&self, kind: LogKind) -> String {
        std::fs::read_to_string(self.logs.path(kind)).unwrap_or_default()
    }

    pub fn data_path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

pub fn contains(msg: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(msg).contains(needle)
}

const PREAMBLE: &str = r#"
import smtplib, ssl, sys, socket
MX, SUB, SMTPS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
CTX = ssl._create_unverified_context()
def conn(port=None):
    s = smtplib.SMTP('127.0.0.1', port or MX, timeout=20)
    s.ehlo('client.test')
    return s
def msg(subject, body='hello'):
    return 'From: x@remote.test\r\nTo: y@example.com\r\nSubject: %s\r\n\r\n%s\r\n' % (subject, body)
def out(*a):
    print(*a, flush=True)
def send(s, frm, rcpts, subject, port=None):
    try:
        refused = s.sendmail(frm, rcpts, msg(subject))
        out('sent', len(refused))
    except smtplib.SMTPRecipientsRefused as e:
        out('refused', *sorted(c for c, _ in e.recipients.values()))
    except smtplib.SMTPResponseException as e:
        out('error', e.smtp_code)
"#;
