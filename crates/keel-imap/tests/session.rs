//! Transcript tests of the session commands: greeting, CAPABILITY, LOGIN, AUTHENTICATE,
//! ENABLE, ID, NOOP, LOGOUT, wrong-state commands and bad input (RFC 9051 §6.1-§6.3.1).

mod common;

use common::*;
use keel_imap::ImapLimits;
use keel_imap::codec::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_and_greeting() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    let u = c.ok("CAPABILITY").await;
    let caps = &u[0];
    for cap in [
        "IMAP4rev1",
        "IMAP4rev2",
        "STARTTLS",
        "AUTH=PLAIN",
        "AUTH=SCRAM-SHA-256",
        "IDLE",
        "APPENDLIMIT=",
    ] {
        assert!(caps.contains(cap), "{cap} missing in {caps}");
    }
    assert!(!caps.contains("LOGINDISABLED"), "{caps}");
    assert!(
        !caps.contains("COMPRESS"),
        "not implemented, not advertised: {caps}"
    );
    c.ok("NOOP").await;
    c.ok("ID NIL").await;
    let (u, _) = c.run("LOGOUT").await;
    assert!(has(&u, "* BYE"), "{u:?}");
    assert!(c.closed().await);
}

// requirements-1 §Y.1 (IMAP login part) over the transcript client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_names_and_case() {
    let s = TestServer::start().await;
    for user in ["alice", "alice@example.com", "ALICE@Example.COM"] {
        let mut c = Client::connect(s.addr).await;
        let (_, t) = c.ok_line(&format!("LOGIN {user} {PW}")).await;
        assert!(t.contains("[CAPABILITY "), "{t}");
        assert!(!t.contains("AUTH="), "{t}");
    }
    let mut c = Client::connect(s.addr).await;
    let t = c.no(&format!("LOGIN alice {}", PW.to_uppercase())).await;
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    // requirements-1 §Y.3: a domain alias never logs in.
    c.no(&format!("LOGIN alice@example.net {PW}")).await;
    // bob is not in the primary domain: the full address is required.
    c.no(&format!("LOGIN bob {PW}")).await;
    c.ok(&format!("LOGIN bob@other.test {PW}")).await;
    // Already authenticated.
    c.bad(&format!("LOGIN bob@other.test {PW}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_plain_with_and_without_sasl_ir() {
    let s = TestServer::start().await;
    let ir = keel_imap::codec::base64_encode(format!("\0alice\0{PW}").as_bytes());
    let mut c = Client::connect(s.addr).await;
    c.ok(&format!("AUTHENTICATE PLAIN {ir}")).await;
    c.ok("SELECT INBOX").await;

    let mut c = Client::connect(s.addr).await;
    c.send_raw(b"x1 AUTHENTICATE PLAIN\r\n").await;
    let cont = c.response().await;
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(format!("{ir}\r\n").as_bytes()).await;
    let (_, t) = c.until("x1").await;
    assert!(t.starts_with("x1 OK"), "{t}");

    // Cancel with "*" (RFC 9051 §6.2.2).
    let mut c = Client::connect(s.addr).await;
    c.send_raw(b"x2 AUTHENTICATE PLAIN\r\n").await;
    c.response().await;
    c.send_raw(b"*\r\n").await;
    let (_, t) = c.until("x2").await;
    assert!(t.starts_with("x2 BAD"), "{t}");
    c.ok("NOOP").await;
    c.no("AUTHENTICATE CRAM-MD5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_and_wrong_state() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.bad("SELECT INBOX").await;
    c.bad("ENABLE CONDSTORE").await;
    c.bad("FETCH 1 FLAGS").await;
    c.ok(&format!("LOGIN alice {PW}")).await;
    c.bad("FETCH 1 FLAGS").await;
    c.bad("STARTTLS").await;
    let u = c.ok("ENABLE CONDSTORE QRESYNC X-UNKNOWN").await;
    assert_eq!(u, vec!["* ENABLED CONDSTORE QRESYNC"]);
    let u = c.ok("ENABLE CONDSTORE").await;
    assert_eq!(u, vec!["* ENABLED"]);
    let u = c.ok("ENABLE IMAP4rev2").await;
    assert_eq!(u, vec!["* ENABLED IMAP4rev2"]);
    c.ok("NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_keeps_the_connection_usable() {
    let limits = Limits {
        max_line: 1024,
        max_literal: 4096,
        ..Limits::default()
    };
    let s = TestServer::start_with(limits, ImapLimits::default()).await;
    let mut c = Client::login(s.addr, "alice").await;
    // Overlong line.
    c.send_raw(format!("t1 NOOP {}\r\n", "x".repeat(3000)).as_bytes())
        .await;
    let r = c.response().await;
    assert!(r.contains("BAD"), "{r}");
    c.ok("NOOP").await;
    // Huge synchronizing literal: refused before the data is sent.
    c.send_raw(b"t2 APPEND INBOX {999999}\r\n").await;
    let r = c.response().await;
    assert!(r.starts_with("t2 BAD [TOOBIG]"), "{r}");
    c.ok("NOOP").await;
    // Huge non-synchronizing literal: skipped byte-exactly (RFC 7888 §4).
    let mut cmd = b"t3 APPEND INBOX {5000+}\r\n".to_vec();
    cmd.extend(std::iter::repeat_n(b'a', 5000));
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let r = c.response().await;
    assert!(r.starts_with("t3 BAD [TOOBIG]"), "{r}");
    c.ok("NOOP").await;
    // Garbage, an unknown command and a bad sequence set.
    c.send_raw(b"\x01\x02 garbage\r\n").await;
    let r = c.response().await;
    assert!(r.starts_with("* BAD"), "{r}");
    c.bad("FROBNICATE").await;
    c.ok("SELECT INBOX").await;
    c.bad("FETCH 0:x FLAGS").await;
    c.bad("FETCH 5 FLAGS").await;
    c.ok("NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_failures_close_the_connection() {
    let limits = ImapLimits {
        max_failed_commands: 3,
        ..ImapLimits::default()
    };
    let s = TestServer::start_with(Limits::default(), limits).await;
    let mut c = Client::connect(s.addr).await;
    c.bad("FOO").await;
    c.bad("FOO").await;
    c.send_raw(b"a9 FOO\r\n").await;
    let mut all = String::new();
    loop {
        let r = c.response().await;
        if r.is_empty() {
            break;
        }
        all.push_str(&r);
    }
    assert!(all.contains("* BYE"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_autologout() {
    let limits = ImapLimits {
        idle_timeout: std::time::Duration::from_millis(300),
        ..ImapLimits::default()
    };
    let s = TestServer::start_with(Limits::default(), limits).await;
    let mut c = Client::login(s.addr, "alice").await;
    let r = c.response().await;
    assert!(r.starts_with("* BYE"), "{r}");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_bye() {
    let mut s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT INBOX").await;
    c.send_raw(b"i1 IDLE\r\n").await;
    let r = c.response().await;
    assert!(r.starts_with("+ "), "{r}");
    let plain = s.plain.take().unwrap();
    let draining = plain.close().await;
    let r = c.response().await;
    assert!(r.starts_with("* BYE"), "{r}");
    draining.wait(std::time::Duration::from_secs(5)).await;
}

// RFC 4978: COMPRESS=DEFLATE, raw deflate both ways after the tagged OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_deflate() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "hello\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("COMPRESS DEFLATE").await;
    let mut tcp = c.into_inner();
    let mut comp = Compress::new(Compression::default(), false);
    let mut decomp = Decompress::new(false);
    let mut wire = Vec::with_capacity(1024);
    comp.compress_vec(
        b"z1 SELECT INBOX\r\nz2 FETCH 1 BODY[]\r\nz3 COMPRESS DEFLATE\r\n",
        &mut wire,
        FlushCompress::Sync,
    )
    .unwrap();
    tcp.write_all(&wire).await.unwrap();
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !String::from_utf8_lossy(&plain).contains("z3 ") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&plain));
        let mut out = Vec::with_capacity(65536);
        decomp
            .decompress_vec(&buf[..n], &mut out, FlushDecompress::None)
            .unwrap();
        plain.extend(out);
    }
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("z1 OK [READ-WRITE]"), "{text}");
    assert!(text.contains("Subject: one"), "{text}");
    assert!(text.contains("z3 NO [COMPRESSIONACTIVE]"), "{text}");
    // Every response is still well-formed.
    let mut rest: &[u8] = &plain;
    while !rest.is_empty() {
        let end = response_end(rest);
        oracle(&rest[..end], false);
        rest = &rest[end..];
    }
}

/// The length of the first complete response in `b` (line plus literals).
fn response_end(b: &[u8]) -> usize {
    let mut i = 0;
    loop {
        let nl = i + b[i..].iter().position(|&x| x == b'\n').unwrap() + 1;
        let line = String::from_utf8_lossy(&b[i..nl]);
        let lit = line
            .trim_end()
            .strip_suffix('}')
            .and_then(|s| s.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok());
        match lit {
            Some(n) => i = nl + n,
            None => return nl,
        }
    }
}
