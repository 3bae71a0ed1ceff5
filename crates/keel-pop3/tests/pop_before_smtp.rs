//! guide §12.2 POP-before-SMTP, POP3 side (requirements-1 Y.11): every successful login,
//! USER/PASS or SASL, records the client IP and time in the directory; failed logins do
//! not. The SMTP side (the relay decision) is tested in keel-smtp.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use keel_core::clock::Clock as _;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn failed_login_records_nothing() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.ok("USER alice").await;
    c.err("PASS wrong").await;
    assert_eq!(s.dir.pop3_login_at(LOOPBACK).unwrap(), None);
}

#[tokio::test]
async fn user_pass_login_records_the_client_ip() {
    let s = TestServer::start().await;
    let now = s.clock.unix();
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("QUIT").await;
    assert_eq!(s.dir.pop3_login_at(LOOPBACK).unwrap(), Some(now));
}

#[tokio::test]
async fn sasl_login_records_the_latest_time() {
    let s = TestServer::start().await;
    let c = Client::login(s.addr, "alice").await;
    drop(c);
    s.clock.advance(Duration::from_secs(120));
    let later = s.clock.unix();
    let ir = B64.encode(format!("\0bob@other.test\0{PW}"));
    let mut c = Client::connect(s.addr).await;
    c.ok(&format!("AUTH PLAIN {ir}")).await;
    assert_eq!(s.dir.pop3_login_at(LOOPBACK).unwrap(), Some(later));
}
