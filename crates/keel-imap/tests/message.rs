//! Transcript tests of the message commands (RFC 9051 §6.4): FETCH (ENVELOPE,
//! BODYSTRUCTURE, sections, partial), STORE, SEARCH/ESEARCH/SEARCHRES, COPY, MOVE,
//! EXPUNGE, UID EXPUNGE, CONDSTORE/QRESYNC.

mod common;

use common::*;

const MIXED: &str = "From: \"Ann Example\" <ann@example.org>\r\nTo: alice@example.com, Bob <bob@other.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= report\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nQuarterly numbers =C3=BCber alles\r\nline two\r\n--XX\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";

async fn with_mail() -> (TestServer, Client) {
    let s = TestServer::start().await;
    s.deliver("alice@example.com", "first", "hello world\r\n");
    s.deliver_raw("alice@example.com", MIXED.as_bytes());
    s.deliver("alice@example.com", "third", "zzz\r\n");
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT INBOX").await;
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_envelope_bodystructure_and_sections() {
    let (_s, mut c) = with_mail().await;
    let u = c.ok("FETCH 2 (ENVELOPE)").await;
    assert_eq!(
        u[0],
        "* 2 FETCH (ENVELOPE (\"Tue, 14 Nov 2023 22:13:20 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?= report\" ((\"Ann Example\" NIL \"ann\" \"example.org\")) ((\"Ann Example\" NIL \"ann\" \"example.org\")) ((\"Ann Example\" NIL \"ann\" \"example.org\")) ((NIL NIL \"alice\" \"example.com\")(\"Bob\" NIL \"bob\" \"other.test\")) NIL NIL NIL \"<m1@example.org>\"))"
    );
    // body-fld-lines counts line breaks: the text part's second line ends at its
    // delimiter, whose CRLF belongs to the boundary (RFC 2046 §5.1.1), so 1 line.
    let u = c.ok("FETCH 2 BODYSTRUCTURE").await;
    assert_eq!(
        u[0],
        "* 2 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 43 1 NIL NIL NIL NIL)(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL NIL \"BASE64\" 12 NIL (\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\")) NIL NIL) \"MIXED\" (\"BOUNDARY\" \"XX\") NIL NIL NIL))"
    );
    let u = c.ok("FETCH 2 BODY").await;
    assert!(u[0].starts_with("* 2 FETCH (BODY ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 43 1)"), "{u:?}");
    let u = c
        .ok("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject)])")
        .await;
    assert!(
        u[0].contains("BODY[1] \"Quarterly numbers =C3=BCber alles\\r\\nline two\"")
            || u[0].contains(
                "BODY[1] {43}\r\nQuarterly numbers =C3=BCber alles\r\nline two BODY[2.MIME] {133}"
            ),
        "{u:?}"
    );
    assert!(u[0].contains("BODY[HEADER.FIELDS (Subject)] {"), "{u:?}");
    let u = c
        .ok("FETCH 1 (BODY.PEEK[TEXT]<0.5> RFC822.SIZE FLAGS)")
        .await;
    assert!(u[0].contains("BODY[TEXT]<0> \"hello\""), "{u:?}");
    assert!(u[0].contains("FLAGS ()"), "{u:?}");
    // BODY[] (no PEEK) sets \Seen and reports it (RFC 9051 §6.4.5).
    let u = c.ok("FETCH 1 BODY[]").await;
    assert!(u[0].contains("FLAGS (\\Seen)"), "{u:?}");
    let u = c.ok("UID FETCH 1:* (UID FLAGS)").await;
    assert_eq!(u.len(), 3);
    assert!(u[0].contains("UID 1") && u[0].contains("\\Seen"), "{u:?}");
    let u = c.ok("FETCH 1:2 FAST").await;
    assert!(
        u[0].contains("INTERNALDATE \"14-Nov-2023 22:13:20 +0000\""),
        "{u:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_flags_and_condstore() {
    let (_s, mut c) = with_mail().await;
    let u = c.ok("STORE 1 +FLAGS (\\Flagged $Work)").await;
    assert_eq!(u, vec!["* 1 FETCH (FLAGS ($Work \\Flagged))"]);
    let u = c.ok("STORE 1 -FLAGS.SILENT ($Work)").await;
    assert!(u.is_empty(), "{u:?}");
    let u = c.ok("UID STORE 2 FLAGS (\\Seen)").await;
    assert_eq!(u, vec!["* 2 FETCH (FLAGS (\\Seen) UID 2)"]);
    // CONDSTORE (RFC 7162 §3.1.3).
    let u = c.ok("FETCH 1 (MODSEQ)").await;
    let modseq: u64 = u[0]
        .split("MODSEQ (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let (_, t) = c
        .ok_line(&format!(
            "STORE 1,2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Answered)"
        ))
        .await;
    assert!(t.contains("[MODIFIED 2]"), "{t}");
    let u = c
        .ok(&format!("FETCH 1:3 (FLAGS) (CHANGEDSINCE {modseq})"))
        .await;
    // Message 1 changed by the conditional STORE, message 2 by the UID STORE before it.
    assert_eq!(u.len(), 2, "{u:?}");
    assert!(
        u[0].starts_with("* 1 FETCH") && u[0].contains("MODSEQ"),
        "{u:?}"
    );
    let u = c.ok("FETCH 1:3 (FLAGS) (CHANGEDSINCE 999999)").await;
    assert!(u.is_empty(), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_keys_esearch_and_searchres() {
    let (_s, mut c) = with_mail().await;
    c.ok("STORE 3 +FLAGS (\\Flagged)").await;
    assert_eq!(c.ok("SEARCH SUBJECT first").await, vec!["* SEARCH 1"]);
    // RFC 2047 decoded header and quoted-printable decoded body, case-insensitive.
    assert_eq!(c.ok("SEARCH SUBJECT \"grüße\"").await, vec!["* SEARCH 2"]);
    assert_eq!(
        c.ok("SEARCH CHARSET UTF-8 BODY \"ÜBER\"").await,
        vec!["* SEARCH 2"]
    );
    assert_eq!(c.ok("SEARCH TEXT zzz").await, vec!["* SEARCH 3"]);
    assert_eq!(
        c.ok("SEARCH FROM ann@example.org").await,
        vec!["* SEARCH 2"]
    );
    assert_eq!(
        c.ok("SEARCH HEADER Message-ID m1@").await,
        vec!["* SEARCH 2"]
    );
    assert_eq!(c.ok("SEARCH FLAGGED").await, vec!["* SEARCH 3"]);
    assert_eq!(
        c.ok("SEARCH OR FLAGGED SUBJECT first").await,
        vec!["* SEARCH 1 3"]
    );
    assert_eq!(c.ok("SEARCH NOT UNSEEN").await, vec!["* SEARCH"]);
    assert_eq!(c.ok("SEARCH LARGER 200").await, vec!["* SEARCH 2"]);
    assert_eq!(
        c.ok("SEARCH SENTON 14-Nov-2023").await,
        vec!["* SEARCH 1 2 3"]
    );
    assert_eq!(c.ok("SEARCH BEFORE 1-Jan-2023").await, vec!["* SEARCH"]);
    assert_eq!(c.ok("SEARCH 2:*").await, vec!["* SEARCH 2 3"]);
    assert_eq!(
        c.ok("UID SEARCH UID 2:3 YOUNGER 999999999").await,
        vec!["* SEARCH 2 3"]
    );
    c.no("SEARCH CHARSET KOI8-R ALL").await;
    // ESEARCH (RFC 4731) and SEARCHRES (RFC 5182).
    let (u, _) = c.ok_line("UID SEARCH RETURN (MIN MAX COUNT ALL) ALL").await;
    assert!(u[0].ends_with("UID MIN 1 MAX 3 COUNT 3 ALL 1:3"), "{u:?}");
    let u = c
        .ok("SEARCH RETURN (SAVE) OR SUBJECT first SUBJECT third")
        .await;
    assert!(u.is_empty(), "{u:?}");
    let u = c.ok("FETCH $ (UID)").await;
    assert_eq!(u.len(), 2, "{u:?}");
    let u = c.ok("SEARCH RETURN (COUNT) SUBJECT nothing").await;
    assert!(u[0].ends_with("COUNT 0"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_move_and_expunge() {
    let (s, mut c) = with_mail().await;
    c.ok("CREATE Projects").await;
    let (_, t) = c.ok_line("COPY 1:2 Projects").await;
    assert!(t.contains("[COPYUID ") && t.contains(" 1:2 1:2]"), "{t}");
    let t = c.no("COPY 1 Nowhere").await;
    assert!(t.contains("[TRYCREATE]"), "{t}");
    let u = c.ok("UID MOVE 3 Projects").await;
    assert!(has(&u, "* OK [COPYUID ") && has(&u, " 3 3]"), "{u:?}");
    assert!(has(&u, "* 3 EXPUNGE"), "{u:?}");
    assert_eq!(s.count("alice@example.com", "Projects"), 3);
    c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    let u = c.ok("UID EXPUNGE 2").await;
    assert_eq!(u, vec!["* 2 EXPUNGE"]);
    let u = c.ok("EXPUNGE").await;
    assert_eq!(u, vec!["* 1 EXPUNGE"]);
    assert_eq!(s.count("alice@example.com", "INBOX"), 0);
    // QRESYNC: VANISHED instead of EXPUNGE (RFC 7162 §3.2.10).
    c.ok("ENABLE QRESYNC").await;
    c.ok("SELECT Projects").await;
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let u = c.ok("EXPUNGE").await;
    assert_eq!(u, vec!["* VANISHED 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qresync_select_reports_changes() {
    let (s, mut c) = with_mail().await;
    let u = c.ok("STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)").await;
    let words: Vec<&str> = u[0].trim_end_matches(')').split(' ').collect();
    let modseq = words[words.iter().position(|w| *w == "(HIGHESTMODSEQ").unwrap() + 1];
    let validity = words[words.iter().position(|w| *w == "UIDVALIDITY").unwrap() + 1];
    c.ok("STORE 2 +FLAGS (\\Seen)").await;
    c.ok("STORE 1 +FLAGS (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    let _ = s;
    let mut d = Client::login(s.addr, "alice").await;
    d.ok("ENABLE QRESYNC").await;
    let u = d
        .ok(&format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:3))"))
        .await;
    assert!(has(&u, "* VANISHED (EARLIER) 1"), "{u:?}");
    assert!(has(&u, "* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ "), "{u:?}");
    let u = d
        .ok(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(has(&u, "* VANISHED (EARLIER) 1"), "{u:?}");
}
