//! Transcript tests of the mailbox commands (RFC 9051 §6.3): LIST/LSUB, NAMESPACE, CREATE,
//! DELETE, RENAME, SUBSCRIBE, STATUS, SELECT/EXAMINE, UNSELECT/CLOSE, APPEND, QUOTA.

mod common;

use common::*;
use keel_directory::{Quota, UserPatch};

#[test]
fn oracle_rejects_malformed_responses() {
    let bad: &[&[u8]] = &[
        b"* FOO bar\r\n",
        b"* 1 FETCH (FLAGS (\\Seen)\r\n",
        b"a1 MAYBE x\r\n",
    ];
    for b in bad {
        assert!(
            std::panic::catch_unwind(|| oracle(b, false)).is_err(),
            "{b:?}"
        );
    }
    oracle(
        b"* ESEARCH (TAG \"a1\") UID MIN 1 COUNT 2 ALL 1:2\r\n",
        false,
    );
    assert!(std::panic::catch_unwind(|| oracle(b"* ESEARCH (TAG \"a1\") ALL\r\n", false)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_special_use_children_and_patterns() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    let u = c.ok("LIST \"\" *").await;
    for (name, attr) in [
        ("\"Sent Items\"", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("\"Deleted Items\"", "\\Trash"),
        ("\"Junk E-mail\"", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        assert!(
            u.iter().any(|l| l.ends_with(name) && l.contains(attr)),
            "{name} {attr} in {u:?}"
        );
    }
    assert!(has(&u, "* LIST (\\HasNoChildren) \"/\" INBOX"), "{u:?}");
    let u = c.ok("LIST \"\" \"\"").await;
    assert_eq!(u, vec!["* LIST (\\Noselect) \"/\" \"\""]);
    c.ok("CREATE Projects/2026/").await;
    let u = c.ok("LIST \"\" %").await;
    assert!(has(&u, "(\\HasChildren) \"/\" Projects"), "{u:?}");
    assert!(!has(&u, "Projects/2026"), "{u:?}");
    let u = c.ok("LIST Projects/ %").await;
    assert_eq!(u, vec!["* LIST (\\HasNoChildren) \"/\" Projects/2026"]);
    let u = c.ok("LIST \"\" inbox").await;
    assert_eq!(u.len(), 1, "{u:?}");
    // LIST-EXTENDED: SPECIAL-USE selection, RETURN (STATUS), SUBSCRIBED.
    let u = c.ok("LIST (SPECIAL-USE) \"\" *").await;
    assert_eq!(u.len(), 5, "{u:?}");
    s.deliver("alice@example.com", "one", "hello\r\n");
    let u = c
        .ok("LIST \"\" INBOX RETURN (STATUS (MESSAGES UNSEEN SIZE))")
        .await;
    assert!(
        has(&u, "* STATUS INBOX (MESSAGES 1 UNSEEN 1 SIZE "),
        "{u:?}"
    );
    c.ok("SUBSCRIBE Drafts").await;
    let u = c.ok("LIST (SUBSCRIBED) \"\" *").await;
    assert_eq!(
        u,
        vec!["* LIST (\\HasNoChildren \\Drafts \\Subscribed) \"/\" Drafts"]
    );
    let u = c.ok("LSUB \"\" *").await;
    assert_eq!(u, vec!["* LSUB () \"/\" Drafts"]);
    c.ok("UNSUBSCRIBE Drafts").await;
    assert!(c.ok("LSUB \"\" *").await.is_empty());
    let u = c.ok("NAMESPACE").await;
    // RFC 2342 §5: personal, other users' and shared (public folders, guide ch. 26).
    assert_eq!(
        u,
        vec!["* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Public Folders/\" \"/\"))"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_delete_rename_and_utf7_names() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("CREATE Work").await;
    let t = c.no("CREATE Work").await;
    assert!(t.contains("[ALREADYEXISTS]"), "{t}");
    // Modified UTF-7 (RFC 3501 §5.1.3): "Entwürfe".
    c.ok("CREATE Entw&APw-rfe").await;
    let u = c.ok("LIST \"\" Entw*").await;
    assert_eq!(u, vec!["* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe"]);
    c.ok("CREATE Stuff (USE (\\Archive))").await;
    let u = c.ok("LIST \"\" Stuff").await;
    assert!(has(&u, "\\Archive"), "{u:?}");
    let t = c.no("CREATE Virtual (USE (\\All))").await;
    assert!(t.contains("[USEATTR]"), "{t}");
    c.ok("SUBSCRIBE Work").await;
    c.ok("RENAME Work Job").await;
    let u = c.ok("LSUB \"\" *").await;
    assert_eq!(u, vec!["* LSUB () \"/\" Job"]);
    c.ok("DELETE Job").await;
    let t = c.no("DELETE Job").await;
    assert!(t.contains("[NONEXISTENT]"), "{t}");
    c.no("DELETE INBOX").await;
    // UTF-8 names after ENABLE UTF8=ACCEPT (RFC 6855 §3).
    c.ok("ENABLE UTF8=ACCEPT").await;
    let u = c.ok("LIST \"\" Entw*").await;
    assert_eq!(u, vec!["* LIST (\\HasNoChildren) \"/\" \"Entwürfe\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_select() {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "one", "hello\r\n");
    s.deliver("alice@example.com", "two", "world\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let u = c
        .ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ RECENT)")
        .await;
    assert!(
        u[0].starts_with("* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY "),
        "{u:?}"
    );
    let (u, t) = c.ok_line("SELECT INBOX").await;
    assert!(t.contains("[READ-WRITE]"), "{t}");
    for want in [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* 2 EXISTS",
        "* 0 RECENT",
        "[UNSEEN 1]",
        "[UIDVALIDITY ",
        "[UIDNEXT 3]",
        "[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]",
        "[HIGHESTMODSEQ ",
    ] {
        assert!(has(&u, want), "{want} in {u:?}");
    }
    let (u, t) = c.ok_line("EXAMINE INBOX").await;
    assert!(t.contains("[READ-ONLY]"), "{t}");
    assert!(has(&u, "[CLOSED]"), "{u:?}");
    assert!(has(&u, "[PERMANENTFLAGS ()]"), "{u:?}");
    c.no("STORE 1 +FLAGS (\\Seen)").await;
    c.ok("UNSELECT").await;
    c.bad("FETCH 1 FLAGS").await;
    let t = c.no("SELECT Nowhere").await;
    assert!(t.contains("[NONEXISTENT]"), "{t}");
    // IMAP4rev2 SELECT: LIST, no RECENT.
    c.ok("ENABLE IMAP4rev2").await;
    let u = c.ok("SELECT INBOX").await;
    assert!(has(&u, "* LIST () \"/\" INBOX"), "{u:?}");
    assert!(!has(&u, "RECENT"), "{u:?}");
    // CLOSE expunges \Deleted silently.
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let u = c.ok("CLOSE").await;
    assert!(!has(&u, "EXPUNGE"), "{u:?}");
    assert_eq!(s.count("alice@example.com", "INBOX"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_multiappend_and_trycreate() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    let msg = "Subject: appended\r\n\r\nbody\r\n";
    c.send_raw(
        format!(
            "p1 APPEND Drafts (\\Draft $Label) \"14-Nov-2023 22:13:20 +0100\" {{{}}}\r\n",
            msg.len()
        )
        .as_bytes(),
    )
    .await;
    let cont = c.response().await;
    assert!(cont.starts_with("+ "), "{cont}");
    c.send_raw(format!("{msg}\r\n").as_bytes()).await;
    let (_, t) = c.until("p1").await;
    assert!(
        t.starts_with("p1 OK [APPENDUID ") && t.contains(" 1]"),
        "{t}"
    );
    // MULTIAPPEND with LITERAL+ (RFC 3502, RFC 7888).
    c.send_raw(
        format!(
            "p2 APPEND Drafts {{{0}+}}\r\n{msg} (\\Seen) {{{0}+}}\r\n{msg}\r\n",
            msg.len()
        )
        .as_bytes(),
    )
    .await;
    let (_, t) = c.until("p2").await;
    assert!(t.contains(" 2:3]"), "{t}");
    let t = c
        .no(&format!("APPEND Nowhere {{{}+}}\r\n{msg}", msg.len()))
        .await;
    assert!(t.contains("[TRYCREATE]"), "{t}");
    c.ok("SELECT Drafts").await;
    let u = c.ok("FETCH 1 (FLAGS INTERNALDATE)").await;
    assert_eq!(
        u,
        vec!["* 1 FETCH (FLAGS ($Label \\Draft) INTERNALDATE \"14-Nov-2023 21:13:20 +0000\")"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_overquota() {
    let s = TestServer::start().await;
    s.dir
        .set_user(
            "alice@example.com",
            UserPatch {
                quota: Some(Quota {
                    bytes: 10 * 1024 * 1024,
                    messages: 2,
                }),
                ..Default::default()
            },
        )
        .unwrap();
    s.deliver("alice@example.com", "one", "hello\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    let u = c.ok("GETQUOTAROOT INBOX").await;
    assert_eq!(u[0], "* QUOTAROOT INBOX \"\"");
    assert_eq!(u[1], "* QUOTA \"\" (STORAGE 1 10240 MESSAGE 1 2)");
    c.ok("GETQUOTA \"\"").await;
    c.no("GETQUOTA other").await;
    let msg = "Subject: x\r\n\r\ny\r\n";
    c.ok(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()))
        .await;
    let t = c
        .no(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()))
        .await;
    assert!(t.contains("[OVERQUOTA]"), "{t}");
    // bob has no quota: no quota root.
    let mut b = Client::login(s.addr, "bob@other.test").await;
    let u = b.ok("GETQUOTAROOT INBOX").await;
    assert_eq!(u, vec!["* QUOTAROOT INBOX"]);
}
