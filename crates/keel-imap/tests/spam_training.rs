//! Spam training from IMAP moves (guide §13.4, requirements-1 §0.9, §25.8): Python's
//! imaplib moves messages into `Junk E-mail` (UID MOVE, RFC 6851) and back to the INBOX
//! (COPY + STORE \Deleted + EXPUNGE); the Bayes counts and the Spam log follow.

mod common;

use std::time::Duration;

use common::*;
use keel_core::log::LogKind;
use keel_filter::{Bayes, BayesSettings};

async fn wait_for_counts(s: &TestServer, spam: u64, ham: u64) {
    let bayes = Bayes::new(s.mailboxes.meta().clone());
    for _ in 0..100 {
        let st = bayes.status(&BayesSettings::default()).unwrap();
        if (st.spam, st.ham) == (spam, ham) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = bayes.status(&BayesSettings::default()).unwrap();
    panic!(
        "Bayes counts {:?}, wanted spam {spam} ham {ham}",
        (st.spam, st.ham)
    );
}

fn run_python(s: &TestServer, script: &str) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(s.addr.port().to_string())
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const PRELUDE: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=10)
m.login('alice@example.com', 'Secret-pw1')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_moving_into_junk_trains_spam_and_back_to_inbox_trains_ham() {
    let s = TestServer::start().await;
    s.deliver(
        "alice@example.com",
        "cheap pills",
        "buy cheap pills now\r\n",
    );
    s.deliver(
        "alice@example.com",
        "casino bonus",
        "win the casino bonus\r\n",
    );
    s.deliver("alice@example.com", "agenda", "meeting agenda attached\r\n");
    let script = format!(
        r#"{PRELUDE}
typ, _ = m.select('INBOX'); assert typ == 'OK'
typ, data = m.uid('MOVE', '1:2', '"Junk E-mail"'); assert typ == 'OK', data
m.logout()
"#
    );
    let s2 = &s;
    tokio::task::block_in_place(|| run_python(s2, &script));
    assert_eq!(s.count("alice@example.com", keel_mail::JUNK), 2);
    wait_for_counts(&s, 2, 0).await;

    // A client without MOVE: COPY back to the INBOX, then delete and expunge.
    let script = format!(
        r#"{PRELUDE}
typ, _ = m.select('"Junk E-mail"'); assert typ == 'OK'
typ, data = m.copy('1', 'INBOX'); assert typ == 'OK', data
m.store('1', '+FLAGS', '\\Deleted'); m.expunge()
m.logout()
"#
    );
    tokio::task::block_in_place(|| run_python(s2, &script));
    // The message learned as spam before is relabelled ham: counted once.
    wait_for_counts(&s, 1, 1).await;
    // Moving within ordinary folders teaches nothing.
    let script = format!(
        r#"{PRELUDE}
m.create('Projects'); m.select('INBOX')
typ, data = m.uid('MOVE', '1:*', 'Projects'); assert typ == 'OK', data
m.logout()
"#
    );
    tokio::task::block_in_place(|| run_python(s2, &script));
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_for_counts(&s, 1, 1).await;

    let log = std::fs::read_to_string(s.logs.path(LogKind::Spam)).unwrap_or_default();
    assert!(
        log.contains(
            "User alice@example.com marked a message as spam, Folder: ~alice@example.com/INBOX"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "User alice@example.com marked a message as not spam, Folder: ~alice@example.com/Junk E-mail"
        ),
        "{log}"
    );
}
