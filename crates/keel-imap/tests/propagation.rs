//! Sessions on one folder see each other's changes from the change log (DESIGN §2):
//! untagged EXISTS, FETCH and EXPUNGE (RFC 9051 §7.4-§7.5), never EXPUNGE while answering
//! FETCH/STORE/SEARCH (§7.5.1); IDLE (RFC 2177) wakes on a delivery.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_see_flags_expunges_and_new_mail() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "1\r\n");
    s.deliver("alice@example.com", "two", "2\r\n");
    let mut a = Client::login(s.addr, "alice").await;
    let mut b = Client::login(s.addr, "alice").await;
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;
    a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let u = b.ok("NOOP").await;
    assert_eq!(u, vec!["* 1 FETCH (FLAGS (\\Flagged) UID 1)"]);
    // An expunge is held back during FETCH and announced by the next NOOP.
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    let u = b.ok("FETCH 2 (UID)").await;
    assert!(!has(&u, "EXPUNGE"), "{u:?}");
    assert!(has(&u, "* 2 FETCH (UID 2)"), "{u:?}");
    let u = b.ok("NOOP").await;
    assert!(has(&u, "* 1 EXPUNGE"), "{u:?}");
    s.deliver("alice@example.com", "three", "3\r\n");
    let u = b.ok("NOOP").await;
    assert_eq!(u, vec!["* 2 EXISTS"]);
    let u = b.ok("FETCH 2 (UID)").await;
    assert_eq!(u, vec!["* 2 FETCH (UID 3)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wakes_on_delivery() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT INBOX").await;
    c.send_raw(b"i1 IDLE\r\n").await;
    let r = c.response().await;
    assert!(r.starts_with("+ "), "{r}");
    let mb = s.mailboxes.clone();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        mb.deliver(&keel_mail::Delivery {
            raw: b"Subject: idle\r\n\r\nx\r\n".to_vec(),
            recipients: vec!["alice@example.com".into()],
            internal_date: T0,
        })
        .unwrap();
        Instant::now()
    });
    let r = c.response().await;
    let got = Instant::now();
    let sent = t.join().unwrap();
    assert_eq!(r.trim_end(), "* 1 EXISTS");
    // Issue 4 §2: IDLE wakes within 100 ms of a delivery.
    assert!(
        got.duration_since(sent) < Duration::from_millis(100),
        "{:?}",
        got.duration_since(sent)
    );
    assert!(got.duration_since(started) < Duration::from_secs(1));
    c.send_raw(b"DONE\r\n").await;
    let (_, t) = c.until("i1").await;
    assert!(t.starts_with("i1 OK"), "{t}");
    // Anything but DONE ends IDLE with BAD (RFC 2177 §3).
    c.send_raw(b"i2 IDLE\r\n").await;
    c.response().await;
    c.send_raw(b"NOPE\r\n").await;
    let (_, t) = c.until("i2").await;
    assert!(t.starts_with("i2 BAD"), "{t}");
    c.ok("NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reports_other_sessions_flag_changes() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "1\r\n");
    let mut a = Client::login(s.addr, "alice").await;
    let mut b = Client::login(s.addr, "alice").await;
    a.ok("SELECT INBOX").await;
    b.ok("ENABLE CONDSTORE").await;
    b.ok("SELECT INBOX").await;
    b.send_raw(b"i1 IDLE\r\n").await;
    b.response().await;
    a.ok("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    let r = b.response().await;
    assert!(
        r.starts_with("* 1 FETCH (FLAGS (\\Seen) UID 1 MODSEQ ("),
        "{r}"
    );
    b.send_raw(b"DONE\r\n").await;
    b.until("i1").await;
}
