//! SORT (RFC 5256 §3), ESORT (RFC 5267), SORT=DISPLAY (RFC 5957) and THREAD (RFC 5256 §3)
//! over a real socket; every response goes through the imap-codec oracle (`* ESEARCH`
//! through the RFC 4731 grammar check, as imap-codec has no ESEARCH parser).

mod common;

use common::*;
use keel_mail::Delivery;

/// INBOX contents (sequence number = UID - 1: a first message is expunged so UIDs and
/// sequence numbers differ).
///
/// | seq | From (display / mailbox) | To   | Cc  | Subject          | sent date (UTC)  | arrival |
/// |-----|--------------------------|------|-----|------------------|------------------|---------|
/// | 1   | Carol / carol            | zoe  | bob | Apples           | 2023-03-01 10:00 | T0+300  |
/// | 2   | Bob / bob                | adam |     | Re: Apples       | 2023-03-01 10:00 | T0+100  |
/// | 3   | - / alice                | mike |     | [list] Bananas   | 2023-02-28 09:00 | T0+200  |
/// | 4   | Dave / dave              |      |     | Re: Bananas      | none: arrival    | T0+50   |
/// | 5   | - / eve                  |      |     | Fwd: Re: apples (fwd) | 2023-03-02  | T0+400  |
/// | 6   | Zed / aaron              | bob  |     | Re: Cherries     | 2023-03-03       | T0+500  |
const MESSAGES: &[(&str, i64)] = &[
    (
        "From: Carol <carol@example.org>\r\nTo: zoe@example.org\r\nCc: bob@example.org\r\n\
Subject: Apples\r\nDate: Wed, 01 Mar 2023 10:00:00 +0000\r\nMessage-ID: <a@x>\r\n\r\nfirst\r\n",
        300,
    ),
    (
        "From: \"Bob\" <bob@example.org>\r\nTo: adam@example.org\r\nSubject: Re: Apples\r\n\
Date: Wed, 01 Mar 2023 12:00:00 +0200\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\n\r\nsecond\r\n",
        100,
    ),
    (
        "From: alice@example.org\r\nTo: Mike <mike@example.org>\r\nSubject: [list] Bananas\r\n\
Date: Tue, 28 Feb 2023 09:00:00 +0000\r\nMessage-ID: <c@x>\r\n\r\nthird, a longer body than the others\r\n",
        200,
    ),
    (
        "From: Dave <dave@example.org>\r\nSubject: Re: Bananas\r\nMessage-ID: <d@x>\r\n\
In-Reply-To: <gone2@x>\r\n\r\nfourth\r\n",
        50,
    ),
    (
        "From: eve@example.org\r\nSubject: Fwd: Re: apples (fwd)\r\n\
Date: Thu, 02 Mar 2023 08:00:00 +0000\r\nMessage-ID: <e@x>\r\nReferences: <a@x> <b@x>\r\n\r\nfifth\r\n",
        400,
    ),
    (
        "From: Zed <aaron@example.org>\r\nTo: bob@example.org\r\nSubject: Re: Cherries\r\n\
Date: Fri, 03 Mar 2023 08:00:00 +0000\r\nMessage-ID: <f@x>\r\nIn-Reply-To: <gone@x>\r\n\r\nsixth\r\n",
        500,
    ),
];

async fn server() -> TestServer {
    let s = TestServer::start().await;
    let user = "alice@example.com";
    s.deliver_raw(user, b"Subject: expunged\r\n\r\nx\r\n");
    let inbox = s.mailboxes.folder(user, "INBOX").unwrap().unwrap();
    s.mailboxes.expunge(inbox.id, &[1]).unwrap();
    for (raw, arrival) in MESSAGES {
        s.mailboxes
            .deliver(&Delivery {
                raw: raw.as_bytes().to_vec(),
                recipients: vec![user.to_owned()],
                internal_date: T0 + arrival,
            })
            .unwrap();
    }
    s
}

async fn selected(s: &TestServer) -> Client {
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT INBOX").await;
    c
}

/// The numbers of the one `* SORT` response.
async fn sort(c: &mut Client, args: &str) -> String {
    let u = c.ok(&format!("SORT {args}")).await;
    let lines: Vec<&String> = u.iter().filter(|l| l.starts_with("* SORT")).collect();
    assert_eq!(lines.len(), 1, "{u:?}");
    lines[0].trim_start_matches("* SORT").trim().to_owned()
}

async fn thread(c: &mut Client, args: &str) -> String {
    let u = c.ok(args).await;
    let lines: Vec<&String> = u.iter().filter(|l| l.starts_with("* THREAD")).collect();
    assert_eq!(lines.len(), 1, "{u:?}");
    lines[0].trim_start_matches("* THREAD").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_advertise_sort_thread_binary() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    let u = c.ok("CAPABILITY").await;
    for cap in [
        " SORT ",
        " SORT=DISPLAY ",
        " ESORT ",
        " THREAD=ORDEREDSUBJECT ",
        " THREAD=REFERENCES ",
        " BINARY ",
    ] {
        assert!(has(&u, cap), "{cap} missing: {u:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_each_key() {
    let s = server().await;
    let mut c = selected(&s).await;
    // RFC 5256 §2.2: sent date in UTC (seq 2's 12:00 +0200 equals seq 1's 10:00 UTC; the
    // tie goes by sequence number); seq 4 has no Date and uses its INTERNALDATE.
    assert_eq!(sort(&mut c, "(DATE) UTF-8 ALL").await, "3 1 2 5 6 4");
    // REVERSE does not reverse the sequence-number tie-break.
    assert_eq!(
        sort(&mut c, "(REVERSE DATE) UTF-8 ALL").await,
        "4 6 5 1 2 3"
    );
    assert_eq!(sort(&mut c, "(ARRIVAL) UTF-8 ALL").await, "4 2 3 1 5 6");
    // RFC 5256 §2.1 base subjects: APPLES (1 2 5), BANANAS (3 4), CHERRIES (6).
    assert_eq!(sort(&mut c, "(SUBJECT) UTF-8 ALL").await, "1 2 5 3 4 6");
    assert_eq!(
        sort(&mut c, "(SUBJECT REVERSE DATE) UTF-8 ALL").await,
        "5 1 2 4 3 6"
    );
    // RFC 5256 §3: addr-mailbox of the first address; missing sorts first.
    assert_eq!(sort(&mut c, "(FROM) UTF-8 ALL").await, "6 3 2 1 4 5");
    assert_eq!(sort(&mut c, "(TO) UTF-8 ALL").await, "4 5 2 6 3 1");
    assert_eq!(sort(&mut c, "(CC) US-ASCII ALL").await, "2 3 4 5 6 1");
    // RFC 5957: display name, else the address.
    assert_eq!(sort(&mut c, "(DISPLAYFROM) UTF-8 ALL").await, "3 2 1 4 5 6");
    // Search criteria narrow the set.
    assert_eq!(
        sort(&mut c, "(REVERSE ARRIVAL) UTF-8 SUBJECT apples").await,
        "5 1 2"
    );
    assert_eq!(
        sort(&mut c, "(DATE) UTF-8 SUBJECT nothing-matches").await,
        ""
    );
    // RFC 7162 §3.1.5: a MODSEQ search key adds the highest mod-sequence.
    let u = c.ok("SORT (ARRIVAL) UTF-8 MODSEQ 1").await;
    assert!(
        u.iter()
            .any(|l| l.starts_with("* SORT 4 2 3 1 5 6 (MODSEQ ")),
        "{u:?}"
    );
    // UID SORT answers UIDs (sequence number + 1 here).
    let u = c.ok("UID SORT (DATE) UTF-8 ALL").await;
    assert!(has(&u, "* SORT 4 2 3 6 7 5"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_size_matches_rfc822_size() {
    let s = server().await;
    let mut c = selected(&s).await;
    let u = c.ok("FETCH 1:* (RFC822.SIZE)").await;
    let mut sizes: Vec<(u64, u32)> = u
        .iter()
        .filter_map(|l| {
            let seq = l.strip_prefix("* ")?.split(' ').next()?.parse().ok()?;
            let size = l
                .split("RFC822.SIZE ")
                .nth(1)?
                .trim_end_matches(')')
                .parse()
                .ok()?;
            Some((size, seq))
        })
        .collect();
    assert_eq!(sizes.len(), 6);
    sizes.sort();
    let want: Vec<String> = sizes.iter().map(|(_, s)| s.to_string()).collect();
    assert_eq!(sort(&mut c, "(SIZE) UTF-8 ALL").await, want.join(" "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esort_return_options() {
    let s = server().await;
    let mut c = selected(&s).await;
    // RFC 5267 §3.2: MIN/MAX are first/last in sort order; ALL keeps the order.
    let (u, t) = c
        .ok_line("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
        .await;
    let tag = t.split(' ').next().unwrap();
    assert!(
        has(
            &u,
            &format!("* ESEARCH (TAG \"{tag}\") MIN 3 MAX 4 COUNT 6 ALL 3,1:2,5:6,4")
        ),
        "{u:?}"
    );
    let u = c
        .ok("UID SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT bananas")
        .await;
    assert!(has(&u, " UID COUNT 2"), "{u:?}");
    assert!(!has(&u, "* SORT"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_orderedsubject_and_references() {
    let s = server().await;
    let mut c = selected(&s).await;
    // RFC 5256 §3 ORDEREDSUBJECT: grouped by base subject, each group under its earliest
    // message, groups ordered by that message's date.
    assert_eq!(
        thread(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        "(3 4)(1 (2)(5))(6)"
    );
    // REFERENCES: 1 -> 2 -> 5 by References; 4 and 6 reply to missing messages (dummy
    // parents with one child, promoted); 4 ("Re: Bananas") joins 3 by base subject.
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 ALL").await,
        "(3 4)(1 2 5)(6)"
    );
    assert_eq!(
        thread(&mut c, "UID THREAD REFERENCES US-ASCII ALL").await,
        "(4 5)(2 3 6)(7)"
    );
    // Only the searched messages are threaded.
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 NOT FROM bob").await,
        "(3 4)(1 5)(6)"
    );
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 SUBJECT none-at-all").await,
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_references_keeps_a_dummy_for_two_replies_to_a_missing_message() {
    let s = TestServer::start().await;
    for (i, id) in ["r1", "r2"].iter().enumerate() {
        s.deliver_raw(
            "alice@example.com",
            format!(
                "Subject: Re: lost\r\nMessage-ID: <{id}@x>\r\nReferences: <lost@x>\r\n\
Date: Wed, 01 Mar 2023 1{i}:00:00 +0000\r\n\r\nbody\r\n"
            )
            .as_bytes(),
        );
    }
    s.deliver("alice@example.com", "other", "x\r\n");
    let mut c = selected(&s).await;
    // RFC 5256 §3 step 3B: the dummy stays in the root set with its two children; the
    // response shows it as a parenthesised pair (RFC 5256 §4.2).
    assert_eq!(
        thread(&mut c, "THREAD REFERENCES UTF-8 ALL").await,
        "((1)(2))(3)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_and_thread_bad_input_keeps_the_connection() {
    let s = server().await;
    let mut c = selected(&s).await;
    // Unknown sort key, missing charset, missing criteria: BAD.
    c.bad("SORT (COLOR) UTF-8 ALL").await;
    c.bad("SORT (DATE) ALL").await;
    c.bad("SORT (DATE)").await;
    c.bad("SORT () UTF-8 ALL").await;
    c.bad("THREAD REFERENCES").await;
    // Unknown algorithm: BAD.
    c.bad("THREAD XYZZY UTF-8 ALL").await;
    // RFC 5256 §3: an unsupported charset is NO [BADCHARSET] listing the supported ones.
    let t = c.no("SORT (DATE) ISO-8859-1 ALL").await;
    assert!(t.contains("[BADCHARSET (UTF-8 US-ASCII)]"), "{t}");
    let t = c.no("THREAD ORDEREDSUBJECT KOI8-R ALL").await;
    assert!(t.contains("[BADCHARSET (UTF-8 US-ASCII)]"), "{t}");
    // Still usable.
    assert_eq!(sort(&mut c, "(DATE) UTF-8 ALL").await, "3 1 2 5 6 4");
    c.ok("NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_needs_a_selected_mailbox() {
    let s = server().await;
    let mut c = Client::login(s.addr, "alice").await;
    c.bad("SORT (DATE) UTF-8 ALL").await;
    c.bad("THREAD REFERENCES UTF-8 ALL").await;
    c.ok("NOOP").await;
}
