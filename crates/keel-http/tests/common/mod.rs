//! Test harness: the admin router and the web UI on a real loopback socket (served like
//! the binary does, one hyper HTTP/1 connection per accept with a `ConnInfo` extension), a
//! real SQLite store and file blob store in a temp dir, a `ManualClock`, and `curl` as the
//! client.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Extension;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keel_core::clock::ManualClock;
use keel_core::log::{LogKind, LogSettings, Logs};
use keel_directory::{AdminRights, Directory, HashParams, NewDomain, NewUser};
use keel_http::ConnInfo;
use keel_http::admin::{AdminState, router};
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use keel_store::{BlobStore, MetaStore};
use serde_json::Value;

pub const PW: &str = "Admin-pw-1234";
pub const T0: i64 = 1_700_000_000;

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub clock: ManualClock,
    pub state: AdminState,
    pub waker: keel_smtp::QueueWaker,
}

/// A directory with `example.com` (primary) and three users: `admin` (full rights),
/// `viewer` (read-only) and `alice` (no rights), all with password [`PW`].
pub fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let meta: Arc<dyn MetaStore> =
        Arc::new(SqliteStore::open(&tmp.path().join("meta.db")).expect("store"));
    let blobs: Arc<dyn BlobStore> =
        Arc::new(FileBlobStore::open(&tmp.path().join("blobs")).expect("blobs"));
    let logs = Logs::open_with_clock(
        &tmp.path().join("logs"),
        LogSettings::default(),
        Arc::new(clock.clone()),
    )
    .expect("logs");
    let dir = Directory::with_hash_params(
        meta.clone(),
        Arc::new(clock.clone()),
        HashParams::insecure_fast(),
    );
    dir.add_domain(NewDomain {
        name: "example.com".into(),
        ..Default::default()
    })
    .expect("domain");
    for (u, r) in [
        ("admin", AdminRights::Full),
        ("viewer", AdminRights::ReadOnly),
        ("alice", AdminRights::None),
    ] {
        dir.add_user(NewUser {
            admin_rights: r,
            ..NewUser::new(&format!("{u}@example.com"), PW)
        })
        .expect("user");
    }
    let waker = keel_smtp::QueueWaker::default();
    let state = AdminState::new(
        Arc::new(dir),
        meta,
        blobs,
        logs,
        Arc::new(clock.clone()),
        Some(waker.clone()),
    );
    Env {
        tmp,
        clock,
        state,
        waker,
    }
}

impl Env {
    pub fn log(&self, kind: LogKind) -> String {
        std::fs::read_to_string(self.state.logs.path(kind)).unwrap_or_default()
    }

    /// Every log file's text.
    pub fn all_logs(&self) -> String {
        LogKind::ALL.iter().map(|k| self.log(*k)).collect()
    }

    /// Serves the router; `as_peer` pretends the client comes from that address.
    pub async fn serve(&self, as_peer: Option<IpAddr>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let local = listener.local_addr().expect("addr");
        // The JSON API and the web UI, as the binary mounts them.
        let app = router(self.state.clone()).merge(keel_http::ui::router(self.state.clone()));
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let info = ConnInfo {
                    peer: as_peer.map_or(peer, |ip| SocketAddr::new(ip, peer.port())),
                    local,
                    tls: false,
                };
                let svc = TowerToHyperService::new(app.clone().layer(Extension(info)));
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        local
    }

    pub async fn client(&self) -> Client {
        let addr = self.serve(None).await;
        self.client_at(addr, "jar")
    }

    pub fn client_at(&self, addr: SocketAddr, jar: &str) -> Client {
        Client {
            base: format!("http://{addr}"),
            jar: self.tmp.path().join(jar),
            csrf: None,
            cookie: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
    pub fn field(&self) -> String {
        self.json()["field"].as_str().unwrap_or_default().to_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A curl-driven client with a cookie jar (`-c`/`-b`) and the CSRF token of its session.
pub struct Client {
    pub base: String,
    pub jar: PathBuf,
    pub csrf: Option<String>,
    /// When set, sent as a Cookie header instead of using the jar.
    pub cookie: Option<String>,
}

impl Client {
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.call_with(method, path, body, true).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        send_csrf: bool,
    ) -> Resp {
        let mut args: Vec<String> = vec![
            "-s".into(),
            "-S".into(),
            "-i".into(),
            "-X".into(),
            method.into(),
        ];
        match &self.cookie {
            Some(c) => args.extend(["-H".into(), format!("Cookie: {c}")]),
            None => {
                let jar = self.jar.display().to_string();
                args.extend(["-c".into(), jar.clone(), "-b".into(), jar]);
            }
        }
        if send_csrf && let Some(t) = &self.csrf {
            args.extend(["-H".into(), format!("X-CSRF-Token: {t}")]);
        }
        if let Some(b) = body {
            args.extend([
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                b.to_string(),
            ]);
        }
        args.push(format!("{}{}", self.base, path));
        curl(args).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(&body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(&body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(&body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }

    /// Signs in; keeps the CSRF token.
    pub async fn login(&mut self, login: &str, password: &str) -> Resp {
        let r = self
            .post(
                "/admin/api/v1/session",
                serde_json::json!({ "login": login, "password": password }),
            )
            .await;
        if let Some(t) = r.json()["csrf_token"].as_str() {
            self.csrf = Some(t.to_owned());
        }
        r
    }

    /// Signs in as the full administrator, asserting success.
    pub async fn admin(mut self) -> Self {
        let r = self.login("admin@example.com", PW).await;
        assert_eq!(r.status, 200, "{}", r.body);
        self
    }
}

/// Runs curl and splits its `-i` output.
pub async fn curl(args: Vec<String>) -> Resp {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("curl runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

pub const API: &str = "/admin/api/v1";
