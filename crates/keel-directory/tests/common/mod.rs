//! Shared fixture: a real SqliteStore in a temp dir, a ManualClock, and the acceptance-scenario
//! directory of requirements-1 §Y: `example.com` (primary) with alice, carol, dave, admin;
//! `other.test` with bob; `example.net` a domain alias of `example.com`.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keel_core::clock::ManualClock;
use keel_directory::*;
use keel_store::MetaStore;
use keel_store::sqlite::SqliteStore;

pub const PW: &str = "Secret-pw1";
pub const T0: i64 = 1_700_000_000;

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub path: PathBuf,
    pub meta: Arc<dyn MetaStore>,
    pub clock: ManualClock,
    pub dir: Directory,
    pub events: Arc<Mutex<Vec<SecurityEvent>>>,
}

pub fn open_dir(path: &std::path::Path, clock: &ManualClock) -> (Arc<dyn MetaStore>, Directory) {
    let meta: Arc<dyn MetaStore> = Arc::new(SqliteStore::open(path).unwrap());
    let dir = Directory::with_hash_params(
        meta.clone(),
        Arc::new(clock.clone()),
        HashParams::insecure_fast(),
    );
    (meta, dir)
}

/// An empty directory.
pub fn empty() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("meta.db");
    let clock = ManualClock::at(T0);
    let (meta, dir) = open_dir(&path, &clock);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    dir.set_security_sink(Arc::new(move |e| ev.lock().unwrap().push(e)));
    Env {
        tmp,
        path,
        meta,
        clock,
        dir,
        events,
    }
}

/// The scenario directory.
pub fn scenario() -> Env {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "example.com".into(),
        aliases: vec!["example.net".into()],
        ..Default::default()
    })
    .unwrap();
    d.add_domain(NewDomain {
        name: "other.test".into(),
        ..Default::default()
    })
    .unwrap();
    for u in ["alice", "carol", "dave"] {
        d.add_user(NewUser::new(&format!("{u}@example.com"), PW))
            .unwrap();
    }
    d.add_user(NewUser {
        admin_rights: AdminRights::Full,
        ..NewUser::new("admin@example.com", PW)
    })
    .unwrap();
    d.add_user(NewUser::new("bob@other.test", PW)).unwrap();
    env
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn req<'a>(login: &'a str, pw: &'a str) -> AuthRequest<'a> {
    AuthRequest {
        login,
        secret: Credential::Plain(pw),
        client_ip: ip("127.0.0.1"),
        secure_channel: true,
        mechanism: Mechanism::Plain,
        service: "imap",
        local_ip: None,
    }
}

pub fn alias(d: &Directory, domain: &str, name: &str, targets: &[&str]) {
    d.add_alias(NewAlias {
        name: name.into(),
        domain: domain.into(),
        targets: targets.iter().map(|s| s.to_string()).collect(),
        description: String::new(),
    })
    .unwrap();
}

pub fn local(user: &str) -> Target {
    Target::LocalUser {
        user: user.into(),
        local_copy_of_forward: false,
    }
}

/// The targets of a resolution, panicking when it is not `Deliver`.
pub fn targets(d: &Directory, addr: &str) -> Vec<Target> {
    match d.resolve_recipient(addr).unwrap() {
        Resolution::Deliver { targets, .. } => targets,
        other => panic!("{addr}: expected Deliver, got {other:?}"),
    }
}

pub fn sorted(mut v: Vec<Target>) -> Vec<Target> {
    v.sort();
    v
}
