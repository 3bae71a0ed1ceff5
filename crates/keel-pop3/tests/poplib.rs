//! Real-client interop: Python's poplib (DESIGN §8) against the server on 127.0.0.1 port 0.
//! The client side lives in `tests/poplib_client.py`, one function per scenario.

mod common;

use std::time::Duration;

use common::*;
use keel_core::ipgroup::{IpGroup, IpGroupItem};
use keel_directory::{LockoutPolicy, SecurityMode, SecurityPolicy, UserPatch};

async fn with_two_messages() -> TestServer {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "first", "hello\r\n.dot line\r\n");
    s.deliver("alice@example.com", "second", "world\r\n");
    s
}

// requirements-1 §Y.1 (POP3 part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_y1_login_names_poplib() {
    TestServer::start().await.python("y1_login_names").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_stat_list_retr() {
    with_two_messages().await.python("stat_list_retr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_dele_quit_removes() {
    let s = with_two_messages().await;
    s.python("dele_quit").await;
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_rset_restores() {
    with_two_messages().await.python("rset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_uidl_stable_across_sessions() {
    with_two_messages().await.python("uidl_stable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_top() {
    with_two_messages().await.python("top").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_second_session_in_use() {
    TestServer::start().await.python("in_use").await;
}

// RFC 2595: STLS with a self-signed certificate (rcgen), unverified context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_stls() {
    with_two_messages().await.python("stls").await;
}

// POP3S (implicit TLS, port 995 role).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_pop3s() {
    TestServer::start().await.python("pop3s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_sasl_plain() {
    with_two_messages().await.python("sasl_plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_sasl_scram_sha256() {
    with_two_messages().await.python("sasl_scram").await;
}

// requirements-1 §Y.19 (POP3 part): "Require encrypted connection".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_y19_require_encrypted_connection() {
    let s = TestServer::start().await;
    s.dir
        .add_ip_group(IpGroup {
            name: "Trusted".into(),
            items: vec![IpGroupItem::new(
                "192.0.2.0/24".parse().unwrap(),
                "elsewhere",
            )],
        })
        .unwrap();
    s.dir
        .set_security_policy(SecurityPolicy {
            mode: SecurityMode::RequireEncryptedConnection,
            exempt_ip_group: Some("Trusted".into()),
            ..Default::default()
        })
        .unwrap();
    s.python("y19_require_encryption").await;
    // Now exempt the test client's address: plaintext login works.
    s.dir
        .set_ip_group(IpGroup {
            name: "Trusted".into(),
            items: vec![IpGroupItem::new("127.0.0.1".parse().unwrap(), "local")],
        })
        .unwrap();
    s.python("y19_exempt_group").await;
}

// requirements-1 §Y.20 (POP3 part): lockout vs disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_y20_account_lockout() {
    let s = TestServer::start().await;
    s.dir
        .set_security_policy(SecurityPolicy {
            lockout: LockoutPolicy {
                max_failures: 3,
                lock_seconds: 60,
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    s.python("y20_lockout").await;
    // After the unlock time (the clock moves; no sleeping) login works again.
    s.clock.advance(Duration::from_secs(61));
    s.python("y20_after_unlock").await;
    // Locked again, then "unlock all".
    s.python("y20_lockout").await;
    s.dir.unlock_all().unwrap();
    s.python("y20_after_unlock").await;
    // A disabled account stays refused; "unlock all" does not change that.
    s.dir
        .set_user(
            "alice@example.com",
            UserPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    s.dir.unlock_all().unwrap();
    s.python("y20_disabled").await;
    let events = s.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, keel_directory::SecurityEvent::AccountLocked { service, .. } if service == "pop3"))
    );
}
