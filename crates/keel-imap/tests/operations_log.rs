//! Operations log (guide §25.6, requirements-2 §25.6): IMAP EXPUNGE, MOVE, CLOSE, DELETE
//! and RENAME over a real socket write `{DELETE}`, `{DELETE_FOLDER}` and `{MOVE_FOLDER}`.

mod common;

use common::*;
use keel_core::log::LogKind;

fn operations(s: &TestServer) -> String {
    std::fs::read_to_string(s.logs.path(LogKind::Operations)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_move_close_delete_rename_write_the_operations_log() {
    let s = TestServer::start().await;
    for subject in ["one", "two", "three", "four"] {
        s.deliver("alice@example.com", subject, "body\r\n");
    }
    let mut c = Client::login(s.addr, "alice@example.com").await;
    c.ok("CREATE Work").await;
    c.ok("SELECT INBOX").await;
    // EXPUNGE of message 1.
    c.ok("STORE 1 +FLAGS (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    // MOVE of (now) message 1 ("two") to Work.
    c.ok("MOVE 1 Work").await;
    // CLOSE expunges (now) message 1 ("three").
    c.ok("STORE 1 +FLAGS (\\Deleted)").await;
    c.ok("CLOSE").await;
    c.ok("RENAME Work Projects").await;
    c.ok("DELETE Projects").await;

    let log = operations(&s);
    let lines: Vec<&str> = log.lines().collect();
    let ip = "IP: 127.0.0.1";
    let deletes: Vec<&&str> = lines.iter().filter(|l| l.contains("{DELETE} ")).collect();
    assert_eq!(deletes.len(), 3, "{log}");
    for (line, subject) in deletes.iter().zip(["one", "two", "three"]) {
        assert!(
            line.contains(&format!(
                "{{DELETE}} Protocol: IMAP, User: alice@example.com, {ip}, Folder: ~alice@example.com/INBOX, From: Sender <sender@example.org>, Subject: \"{subject}\", Delivered: "
            )),
            "{line}"
        );
        assert!(line.contains(", Size: "), "{line}");
    }
    assert!(
        log.contains(&format!(
            "{{MOVE_FOLDER}} Protocol: IMAP, User: alice@example.com, {ip}, Old location: ~alice@example.com/Work, New location: ~alice@example.com/Projects, Items count: 1"
        )),
        "{log}"
    );
    assert!(
        log.contains("{DELETE_FOLDER} Folder: ~alice@example.com/Projects deleted"),
        "{log}"
    );
    // Only the four events above: plain SELECT/STORE write nothing.
    assert_eq!(lines.len(), 5, "{log}");
}
