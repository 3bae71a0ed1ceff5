//! Transcript tests over a real socket, one per command or rule (STYLE §4).

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use keel_directory::password;
use keel_pop3::Pop3Limits;

// RFC 1939 §4: greeting; QUIT in AUTHORIZATION closes without UPDATE.
#[tokio::test]
async fn quit_in_authorization() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.ok("QUIT").await;
    assert!(c.closed().await);
}

// requirements-1 §Y.1 (POP3 part), guide §7.2.1: bare name for the primary domain only.
#[tokio::test]
async fn scenario_y1_login_names_user_pass() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.ok("USER bob").await;
    assert_eq!(
        c.cmd(&format!("PASS {PW}")).await,
        "-ERR [AUTH] authentication failed"
    );
    c.ok("USER bob@other.test").await;
    c.ok(&format!("PASS {PW}")).await;
    let mut a = Client::connect(s.addr).await;
    a.ok("user alice").await;
    a.ok(&format!("pass {PW}")).await;
}

// RFC 1939 §7: PASS needs a preceding USER; a wrong password is -ERR [AUTH] (RFC 3206 §5).
#[tokio::test]
async fn pass_without_user_and_wrong_password() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.err(&format!("PASS {PW}")).await;
    c.ok("USER alice").await;
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] authentication failed"
    );
    // The USER must be given again.
    c.err(&format!("PASS {PW}")).await;
}

// RFC 1939 §5 STAT.
#[tokio::test]
async fn stat_counts_messages_and_octets() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "hello\r\n");
    s.deliver("alice@example.com", "two", "world\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let r = c.ok("STAT").await;
    let parts: Vec<&str> = r.split(' ').collect();
    assert_eq!(parts[1], "2");
    assert!(parts[2].parse::<u64>().unwrap() > 100);
}

// RFC 1939 §5 LIST and LIST n; deleted messages vanish from LIST.
#[tokio::test]
async fn list_all_and_one() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    s.deliver("alice@example.com", "two", "b\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let all = c.multi("LIST").await;
    assert_eq!(all.len(), 2);
    assert!(all[0].starts_with("1 ") && all[1].starts_with("2 "));
    let one = c.ok("LIST 2").await;
    assert_eq!(one, format!("+OK {}", all[1]));
    c.err("LIST 3").await;
    c.err("LIST 0").await;
    c.ok("DELE 1").await;
    assert_eq!(c.multi("LIST").await.len(), 1);
    c.err("LIST 1").await;
}

// RFC 1939 §5 RETR with dot-stuffing (RFC 1939 §3).
#[tokio::test]
async fn retr_sends_the_message_dot_stuffed() {
    let s = TestServer::start().await;
    s.deliver(
        "alice@example.com",
        "dots",
        "line one\r\n.leading dot\r\n.\r\nend\r\n",
    );
    let mut c = Client::login(s.addr, "alice").await;
    c.send("RETR 1").await;
    let status = c.line().await;
    assert!(status.starts_with("+OK"), "{status}");
    // Read raw lines to see the stuffing.
    let mut raw = Vec::new();
    loop {
        let l = c.line().await;
        if l == "." {
            break;
        }
        raw.push(l);
    }
    assert!(raw.contains(&"Subject: dots".to_owned()));
    assert!(raw.contains(&"..leading dot".to_owned()));
    assert!(raw.contains(&"..".to_owned()));
    assert_eq!(raw.last().unwrap(), "end");
    c.err("RETR 2").await;
}

// RFC 1939 §5 DELE + §6 UPDATE: deletions apply at QUIT only.
#[tokio::test]
async fn dele_then_quit_removes() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    s.deliver("alice@example.com", "two", "b\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("DELE 1").await;
    c.err("DELE 1").await; // already deleted
    c.err("RETR 1").await;
    assert_eq!(
        s.inbox_count("alice@example.com"),
        2,
        "nothing removed before QUIT"
    );
    c.ok("QUIT").await;
    assert!(c.closed().await);
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}

// RFC 1939 §6: a connection that ends without QUIT does not enter UPDATE.
#[tokio::test]
async fn dele_without_quit_keeps_messages() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    {
        let mut c = Client::login(s.addr, "alice").await;
        c.ok("DELE 1").await;
    }
    // The lock is released when the session ends; the message is still there.
    let mut c = Client::login(s.addr, "alice").await;
    assert!(c.ok("STAT").await.starts_with("+OK 1 "));
}

// RFC 1939 §5 RSET.
#[tokio::test]
async fn rset_restores_deleted_messages() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("DELE 1").await;
    assert!(c.ok("STAT").await.starts_with("+OK 0 0"));
    c.ok("RSET").await;
    assert!(c.ok("STAT").await.starts_with("+OK 1 "));
    c.ok("QUIT").await;
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}

// RFC 1939 §5 NOOP (TRANSACTION only).
#[tokio::test]
async fn noop() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.err("NOOP").await;
    c.ok("USER alice").await;
    c.ok(&format!("PASS {PW}")).await;
    assert_eq!(c.cmd("noop").await, "+OK");
}

// RFC 1939 §7 TOP.
#[tokio::test]
async fn top_sends_header_and_n_lines() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "top", "l1\r\nl2\r\nl3\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let lines = c.multi("TOP 1 2").await;
    let blank = lines.iter().position(String::is_empty).unwrap();
    assert!(lines[..blank].contains(&"Subject: top".to_owned()));
    assert_eq!(&lines[blank + 1..], ["l1", "l2"]);
    let none = c.multi("TOP 1 0").await;
    assert_eq!(none.last().unwrap(), "");
    c.err("TOP 9 1").await;
    c.err("TOP 1").await;
}

// RFC 1939 §7 UIDL: unique-ids are stable across sessions.
#[tokio::test]
async fn uidl_is_stable_across_sessions() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    s.deliver("alice@example.com", "two", "b\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let first = c.multi("UIDL").await;
    assert_eq!(first.len(), 2);
    let one = c.ok("UIDL 2").await;
    assert_eq!(one, format!("+OK {}", first[1]));
    c.ok("DELE 1").await;
    c.ok("QUIT").await;
    assert!(c.closed().await);
    let mut c = Client::login(s.addr, "alice").await;
    let second = c.multi("UIDL").await;
    // Message 2 became message 1 and kept its unique-id.
    let id = |l: &str| l.split(' ').nth(1).unwrap().to_owned();
    assert_eq!(second.len(), 1);
    assert_eq!(id(&second[0]), id(&first[1]));
    for l in first.iter().chain(&second) {
        let uid = id(l);
        assert!((1..=70).contains(&uid.len()));
        assert!(uid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}

// RFC 2449 §5 CAPA, RFC 2595 §4 STLS advertised before TLS only.
#[tokio::test]
async fn capa_lists_capabilities() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    let caps = c.multi("CAPA").await;
    for want in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "SASL SCRAM-SHA-256 PLAIN LOGIN",
        "STLS",
        "IMPLEMENTATION Keel",
    ] {
        assert!(
            caps.contains(&want.to_owned()),
            "{want} missing from {caps:?}"
        );
    }
    c.ok("USER alice").await;
    c.ok(&format!("PASS {PW}")).await;
    let after = c.multi("capa").await;
    assert!(
        !after
            .iter()
            .any(|l| l == "STLS" || l.starts_with("SASL") || l == "USER")
    );
    assert!(after.contains(&"UIDL".to_owned()));
}

// RFC 2595 §4: STLS not allowed after login; the TLS side is tested with poplib.
#[tokio::test]
async fn stls_only_in_authorization() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    c.err("STLS").await;
}

// RFC 5034 §4: AUTH PLAIN with an initial response and with an empty challenge.
#[tokio::test]
async fn auth_plain() {
    let s = TestServer::start().await;
    let ir = B64.encode(format!("\0bob@other.test\0{PW}"));
    let mut c = Client::connect(s.addr).await;
    c.ok(&format!("AUTH PLAIN {ir}")).await;
    c.ok("STAT").await;
    c.ok("QUIT").await;
    assert!(c.closed().await);
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    c.ok(&ir).await;
    // Wrong password: one generic answer.
    let bad = B64.encode("\0alice\0nope");
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {bad}")).await,
        "-ERR [AUTH] authentication failed"
    );
}

// RFC 5034 §4: "*" cancels; bad base64 is refused; unknown mechanisms are named.
#[tokio::test]
async fn auth_cancel_and_errors() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.cmd("AUTH LOGIN").await,
        format!("+ {}", B64.encode("Username:"))
    );
    c.err("*").await;
    c.err("AUTH PLAIN !!!").await;
    let r = c.err("AUTH CRAM-MD5").await;
    assert!(r.contains("CRAM-MD5"), "{r}");
    let r = c.err("AUTH X-UNKNOWN").await;
    assert!(r.contains("X-UNKNOWN"), "{r}");
    // Still usable.
    c.ok("USER alice").await;
    // AUTH without a mechanism lists them.
    let mut c = Client::connect(s.addr).await;
    let mechs = c.multi("AUTH").await;
    assert_eq!(mechs, ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
}

// RFC 5034 + RFC 5802/7677: SCRAM-SHA-256, the server-final in a last challenge.
#[tokio::test]
async fn auth_scram_sha256() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    let first = c
        .cmd(&format!(
            "AUTH SCRAM-SHA-256 {}",
            B64.encode(format!("n,,{bare}"))
        ))
        .await;
    let sf = String::from_utf8(B64.decode(first.strip_prefix("+ ").unwrap()).unwrap()).unwrap();
    let mut r = "";
    let mut salt = Vec::new();
    let mut iters = 0;
    for a in sf.split(',') {
        match a.split_at(2) {
            ("r=", v) => r = v,
            ("s=", v) => salt = B64.decode(v).unwrap(),
            ("i=", v) => iters = v.parse().unwrap(),
            _ => {}
        }
    }
    let wp = format!("c=biws,r={r}");
    let auth = format!("{bare},{sf},{wp}");
    let proof = password::scram_client_proof(PW, &salt, iters, auth.as_bytes()).unwrap();
    let fin = c
        .cmd(&B64.encode(format!("{wp},p={}", B64.encode(proof))))
        .await;
    let v = String::from_utf8(B64.decode(fin.strip_prefix("+ ").unwrap()).unwrap()).unwrap();
    assert!(v.starts_with("v="), "{v}");
    c.ok("").await;
    c.ok("STAT").await;
}

// RFC 2449 §8.1.1, guide table 12.1: one POP3 session per account.
#[tokio::test]
async fn second_session_gets_in_use() {
    let s = TestServer::start().await;
    let mut a = Client::login(s.addr, "alice").await;
    let mut b = Client::connect(s.addr).await;
    b.ok("USER alice@example.com").await;
    assert_eq!(
        b.cmd(&format!("PASS {PW}")).await,
        "-ERR [IN-USE] maildrop already locked by another session"
    );
    a.ok("QUIT").await;
    assert!(a.closed().await);
    b.ok("USER alice").await;
    b.ok(&format!("PASS {PW}")).await;
}

// RFC 1939 §3: unknown commands and commands in the wrong state are -ERR; the session stays.
#[tokio::test]
async fn unknown_and_out_of_state_commands() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    c.err("XYZZY").await;
    c.err("STAT").await;
    c.err("RETR 1").await;
    c.err("").await;
    c.ok("USER alice").await;
    c.ok(&format!("PASS {PW}")).await;
    c.err("USER alice").await;
    c.err("AUTH PLAIN").await;
    c.ok("STAT").await;
}

// RFC 2449 §6.6 PIPELINING: several commands in one write, answers in order.
#[tokio::test]
async fn pipelined_commands() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    let mut c = Client::connect(s.addr).await;
    c.send_raw(format!("USER alice\r\nPASS {PW}\r\nSTAT\r\nNOOP\r\n").as_bytes())
        .await;
    for _ in 0..4 {
        assert!(c.line().await.starts_with("+OK"));
    }
}

// Limit: max line length (codec::MAX_COMMAND_LINE); the session stays usable.
#[tokio::test]
async fn limit_max_command_line() {
    let s = TestServer::start().await;
    let mut c = Client::connect(s.addr).await;
    let long = format!("USER {}", "a".repeat(keel_pop3::codec::MAX_COMMAND_LINE));
    let r = c.err(&long).await;
    assert!(r.contains("too long"), "{r}");
    c.ok("USER alice").await;
}

// Limit: max SASL line (codec::MAX_SASL_LINE) is bigger than a command line but bounded.
#[tokio::test]
async fn limit_max_sasl_line() {
    let s = TestServer::start_with(Pop3Limits {
        max_sasl_line: 1024,
        ..Pop3Limits::default()
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    // 700 octets: over the command limit, under the SASL limit (bad credentials but parsed).
    let mid = B64.encode(format!("\0alice\0{}", "x".repeat(500)));
    assert!(mid.len() > 512);
    assert_eq!(c.cmd(&mid).await, "-ERR [AUTH] authentication failed");
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    let r = c.err(&"A".repeat(2000)).await;
    assert!(r.contains("too long"), "{r}");
    c.ok("USER alice").await;
}

// Limit: max failed commands, then the server closes.
#[tokio::test]
async fn limit_max_failed_commands() {
    let s = TestServer::start_with(Pop3Limits {
        max_failed_commands: 3,
        ..Pop3Limits::default()
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    c.err("BAD1").await;
    c.err("BAD2").await;
    c.err("BAD3").await;
    assert!(c.line().await.starts_with("-ERR too many failed commands"));
    assert!(c.closed().await);
}

// Limit: idle timeout (RFC 1939 §3 autologout; default 10 minutes), no UPDATE.
#[tokio::test]
async fn limit_idle_timeout() {
    assert_eq!(Pop3Limits::default().idle_timeout, Duration::from_secs(600));
    let s = TestServer::start_with(Pop3Limits {
        idle_timeout: Duration::from_millis(300),
        ..Pop3Limits::default()
    })
    .await;
    s.deliver("alice@example.com", "one", "a\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("DELE 1").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(c.line().await.starts_with("-ERR idle timeout"));
    assert!(c.closed().await);
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}

// Graceful shutdown: the next command gets -ERR [SYS/TEMP]; deletions are not applied.
#[tokio::test]
async fn shutdown_answers_sys_temp_and_keeps_messages() {
    let mut s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "a\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("DELE 1").await;
    let draining = s.plain.take().unwrap().close().await;
    assert_eq!(c.line().await, "-ERR [SYS/TEMP] server shutting down");
    assert!(c.closed().await);
    draining.wait(Duration::from_secs(5)).await;
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}

// guide §6.3, §25.9: the "POP3 Server" debug transcript masks PASS and SASL data.
#[tokio::test]
async fn debug_transcript_masks_secrets() {
    let s = TestServer::start().await;
    let ir = B64.encode(format!("\0bob@other.test\0{PW}"));
    let mut c = Client::connect(s.addr).await;
    c.ok("USER alice").await;
    c.ok(&format!("PASS {PW}")).await;
    c.ok("QUIT").await;
    assert!(c.closed().await);
    let mut c = Client::connect(s.addr).await;
    c.ok(&format!("AUTH PLAIN {ir}")).await;
    c.ok("QUIT").await;
    assert!(c.closed().await);
    let log = s.debug_log();
    assert!(log.contains("{pop3-server}"), "{log}");
    assert!(log.contains("C: USER alice"), "{log}");
    assert!(log.contains("C: PASS ***"), "{log}");
    assert!(log.contains("C: AUTH PLAIN ***"), "{log}");
    assert!(log.contains("S: +OK"), "{log}");
    assert!(!log.contains(PW) && !log.contains(&ir), "{log}");
}
