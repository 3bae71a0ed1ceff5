//! Operations log (guide §25.6, requirements-2 §25.6): messages deleted with DELE are
//! logged as `{DELETE}` with Protocol POP3 when QUIT removes them, not before.

mod common;

use common::*;
use keel_core::log::LogKind;

#[tokio::test]
async fn quit_logs_one_delete_line_per_removed_message() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "first", "body one\r\n");
    s.deliver("alice@example.com", "second", "body two\r\n");
    let path = s.logs.path(LogKind::Operations);
    let mut c = Client::login(s.addr, "alice@example.com").await;
    c.ok("DELE 2").await;
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("{DELETE}"),
        "DELE alone must not log"
    );
    c.ok("QUIT").await;
    assert!(c.closed().await);
    let log = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("{DELETE}")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(
            "{DELETE} Protocol: POP3, User: alice@example.com, IP: 127.0.0.1, Folder: ~alice@example.com/INBOX, From: sender@example.org, Subject: \"second\", Size: "
        ),
        "{log}"
    );
    assert_eq!(s.inbox_count("alice@example.com"), 1);
}
