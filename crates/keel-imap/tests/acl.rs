//! Shared and public folders over a real socket (guide ch. 26, RFC 4314, RFC 2342): Python's
//! imaplib (`tests/imaplib_acl.py`) and the transcript client with the imap-codec oracle.

mod common;

use common::*;
use keel_directory::UserPatch;
use keel_mail::public_owner;

async fn python(s: &TestServer, scenario: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/imaplib_acl.py");
    let args = vec![
        script.to_owned(),
        scenario.to_owned(),
        s.addr.port().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args(&args).output()
    })
    .await
    .unwrap()
    .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "python scenario {scenario} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// Issue 4 §3: alice shares a folder with bob, read-only then read-write; NOPERM for
// writes without the right; bob's NOOP and IDLE see alice's new messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_shared_folder_read_only_then_read_write() {
    let s = TestServer::start().await;
    s.deliver("bob@other.test", "welcome", "hello\r\n");
    python(&s, "share").await;
    // The denied writes changed nothing: 1 + bob's + alice's two = 4 messages.
    assert_eq!(s.count("alice@example.com", "Projects"), 4);
    // Bob's COPY out of the shared folder landed in his own INBOX.
    assert_eq!(s.count("bob@other.test", "INBOX"), 2);
}

// requirements-2 §26 scenario 25 (IMAP part): public folders, read-only by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_25_public_folders_over_imap() {
    let s = TestServer::start().await;
    let owner = public_owner("example.com");
    // Delivered through the store, as SMTP does for `#public/Info` alias targets.
    s.mailboxes.create_folder(&owner, "Info").unwrap();
    s.mailboxes
        .append(
            &owner,
            "Info",
            b"Subject: to info\r\n\r\nhello\r\n",
            &[],
            T0,
        )
        .unwrap();
    s.dir
        .set_user(
            "alice@example.com",
            UserPatch {
                public_folder_admin: Some(true),
                ..UserPatch::default()
            },
        )
        .unwrap();
    python(&s, "public").await;
    assert_eq!(s.count(&owner, "Info"), 2);
    assert_eq!(s.count(&owner, "Announcements"), 1);
}

/// Reads raw responses up to the line tagged `tag`; `oracle` says whether each goes through
/// the imap-codec oracle (its 2.0.0-alpha has no parser for the RFC 4314 responses, so
/// those are checked against the RFC 4314 §3.6-§3.8 shape here).
async fn until_raw(c: &mut Client, tag: &str) -> (Vec<String>, String) {
    let mut lines = Vec::new();
    loop {
        let raw = c.read_raw().await;
        assert!(!raw.is_empty(), "connection closed");
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.starts_with(&format!("{tag} ")) {
            oracle(&raw, false);
            return (lines, text);
        }
        if ["* ACL ", "* MYRIGHTS ", "* LISTRIGHTS "]
            .iter()
            .any(|p| text.starts_with(p))
        {
            assert!(text.ends_with("\r\n") && !text.contains('{'), "{text:?}");
        } else {
            oracle(&raw, false);
        }
        lines.push(text);
    }
}

// The transcript client: NAMESPACE, LIST, SELECT and NOPERM go through the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_namespace_list_select_and_noperm() {
    let s = TestServer::start().await;
    s.mailboxes
        .create_folder("alice@example.com", "Projects")
        .unwrap();
    s.mailboxes
        .append(
            "alice@example.com",
            "Projects",
            b"Subject: p\r\n\r\nx\r\n",
            &[],
            T0,
        )
        .unwrap();
    let mut alice = Client::login(s.addr, "alice@example.com").await;
    alice
        .send_raw(b"a1 SETACL Projects bob@other.test lr\r\n")
        .await;
    let (_, done) = until_raw(&mut alice, "a1").await;
    assert!(done.starts_with("a1 OK"), "{done}");
    alice.send_raw(b"a2 GETACL Projects\r\n").await;
    let (lines, done) = until_raw(&mut alice, "a2").await;
    assert!(done.starts_with("a2 OK"), "{done}");
    assert_eq!(
        lines,
        vec!["* ACL Projects alice@example.com lrswipkxtea bob@other.test lr\r\n"]
    );
    alice
        .send_raw(b"a3 LISTRIGHTS Projects bob@other.test\r\n")
        .await;
    let (lines, _) = until_raw(&mut alice, "a3").await;
    assert_eq!(
        lines,
        vec!["* LISTRIGHTS Projects bob@other.test \"\" l r s w i p k x t e a\r\n"]
    );
    // RFC 4314 §3.1: unknown rights are BAD; a missing folder is NO.
    alice
        .send_raw(b"a4 SETACL Projects bob@other.test lrQ\r\n")
        .await;
    let (_, done) = until_raw(&mut alice, "a4").await;
    assert!(done.starts_with("a4 BAD"), "{done}");
    alice
        .send_raw(b"a5 DELETEACL Missing bob@other.test\r\n")
        .await;
    let (_, done) = until_raw(&mut alice, "a5").await;
    assert!(done.starts_with("a5 NO [NONEXISTENT]"), "{done}");

    let mut bob = Client::login(s.addr, "bob@other.test").await;
    let lines = bob.ok("NAMESPACE").await;
    assert!(
        has(
            &lines,
            "* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Public Folders/\" \"/\"))"
        ),
        "{lines:?}"
    );
    let lines = bob.ok("LIST \"\" *").await;
    assert!(
        has(&lines, "\"Other Users/alice@example.com/Projects\""),
        "{lines:?}"
    );
    assert!(
        has(&lines, "(\\Noselect \\HasChildren) \"/\" \"Other Users\""),
        "{lines:?}"
    );
    let (lines, done) = bob
        .ok_line("SELECT \"Other Users/alice@example.com/Projects\"")
        .await;
    assert!(has(&lines, "* 1 EXISTS"), "{lines:?}");
    assert!(done.contains("[READ-ONLY]"), "{done}");
    let no = bob.no("STORE 1 +FLAGS (\\Deleted)").await;
    assert!(no.contains("[NOPERM]"), "{no}");
    let no = bob
        .no("APPEND \"Other Users/alice@example.com/Projects\" {3+}\r\nx\r\n")
        .await;
    assert!(no.contains("[NOPERM]"), "{no}");
    bob.send_raw(b"b1 MYRIGHTS \"Other Users/alice@example.com/Projects\"\r\n")
        .await;
    let (lines, _) = until_raw(&mut bob, "b1").await;
    assert_eq!(
        lines,
        vec!["* MYRIGHTS \"Other Users/alice@example.com/Projects\" lr\r\n"]
    );
    // Nothing changed for the owner.
    let f = s
        .mailboxes
        .folder("alice@example.com", "Projects")
        .unwrap()
        .unwrap();
    let msgs = s.mailboxes.messages(f.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].flags.is_empty());
}

// guide §24.3 "Info", §24.4 "Opened folders": a shared folder selected by its owner and by
// the user it is shared with is one entry with both users and two references; a public
// folder shows under its public-namespace name; UNSELECT and a failed SELECT remove them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_folders_name_shared_and_public_folders() {
    let s = TestServer::start().await;
    s.mailboxes
        .create_folder("alice@example.com", "Projects")
        .unwrap();
    s.mailboxes
        .create_folder(&public_owner("example.com"), "Info")
        .unwrap();
    let mut alice = Client::login(s.addr, "alice@example.com").await;
    alice
        .send_raw(b"a1 SETACL Projects bob@other.test lr\r\n")
        .await;
    let (_, done) = until_raw(&mut alice, "a1").await;
    assert!(done.starts_with("a1 OK"), "{done}");
    alice.ok("SELECT Projects").await;
    let mut bob = Client::login(s.addr, "bob@other.test").await;
    bob.ok("EXAMINE \"Other Users/alice@example.com/Projects\"")
        .await;
    let mut carol = Client::login(s.addr, "carol@example.com").await;
    carol.ok("EXAMINE \"Public Folders/Info\"").await;
    let conns = s.plain.as_ref().unwrap().connections();
    let open = |users: &[&str], n: usize, name: &str| keel_net::OpenFolder {
        name: name.to_owned(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        references: n,
    };
    assert_eq!(
        keel_net::open_folders(&conns.list()),
        vec![
            open(&["carol@example.com"], 1, "Public Folders/Info"),
            open(
                &["alice@example.com", "bob@other.test"],
                2,
                "~alice@example.com/Projects"
            ),
        ]
    );
    let bob_line = conns
        .list()
        .into_iter()
        .find(|c| c.user.as_deref() == Some("bob@other.test"))
        .unwrap();
    assert_eq!(bob_line.info, "Folder ~alice@example.com/Projects");
    assert!(!bob_line.secure);

    bob.ok("UNSELECT").await;
    // RFC 9051 §6.3.2: a failed SELECT closes the selected mailbox too.
    alice.no("SELECT Missing").await;
    assert_eq!(
        keel_net::open_folders(&conns.list()),
        vec![open(&["carol@example.com"], 1, "Public Folders/Info")]
    );
}

// RFC 7162 §3.2.5.1 on a shared folder: mod-sequences are the owner's, so a QRESYNC
// SELECT of another user's folder reports what the owner's log says changed since, with
// VANISHED (EARLIER) for the messages expunged meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qresync_select_of_a_shared_folder_reports_the_owners_changes() {
    let s = TestServer::start().await;
    s.mailboxes
        .create_folder("alice@example.com", "Projects")
        .unwrap();
    for i in 1..=3 {
        s.mailboxes
            .append(
                "alice@example.com",
                "Projects",
                format!("Subject: p{i}\r\n\r\nx\r\n").as_bytes(),
                &[],
                T0,
            )
            .unwrap();
    }
    let mut alice = Client::login(s.addr, "alice@example.com").await;
    alice.ok("SETACL Projects bob@other.test lrs").await;
    // Bob makes his own changes first, so his log is ahead of alice's.
    s.deliver("bob@other.test", "one", "x\r\n");
    s.deliver("bob@other.test", "two", "x\r\n");
    let mut bob = Client::login(s.addr, "bob@other.test").await;
    bob.ok("ENABLE QRESYNC").await;
    let lines = bob
        .ok("SELECT \"Other Users/alice@example.com/Projects\"")
        .await;
    let code = |lines: &[String], key: &str| -> u64 {
        lines
            .iter()
            .find_map(|l| {
                let rest = l.split_once(&format!("[{key} "))?.1;
                rest.split(']').next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
    };
    let validity = code(&lines, "UIDVALIDITY");
    let modseq = code(&lines, "HIGHESTMODSEQ");
    bob.ok("UNSELECT").await;
    alice.ok("SELECT Projects").await;
    alice.ok("STORE 1 +FLAGS (\\Flagged)").await;
    alice.ok("UID STORE 2 +FLAGS (\\Deleted)").await;
    alice.ok("UID EXPUNGE 2").await;
    let lines = bob
        .ok(&format!(
            "SELECT \"Other Users/alice@example.com/Projects\" (QRESYNC ({validity} {modseq}))"
        ))
        .await;
    assert!(has(&lines, "* VANISHED (EARLIER) 2"), "{lines:?}");
    assert!(
        has(&lines, "* 1 FETCH (UID 1 FLAGS (\\Flagged)"),
        "{lines:?}"
    );
    assert!(has(&lines, "* 2 EXISTS"), "{lines:?}");
}
