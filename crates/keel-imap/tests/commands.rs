//! Parser vectors: RFC 9051 / RFC 3501 / extension RFC examples for every
//! command form.

use keel_imap::codec::*;

fn body(s: &str) -> CommandBody {
    match parse_command(s.as_bytes(), false) {
        Ok(c) => c.body,
        Err(e) => panic!("{s:?}: {e}"),
    }
}

fn err(s: &str) -> ReceiveError {
    parse_command(s.as_bytes(), false).expect_err(s)
}

fn mb(s: &str) -> MailboxName {
    MailboxName::new(s)
}

fn set(s: &str) -> SequenceSet {
    match body(&format!("t UID EXPUNGE {s}\r\n")) {
        CommandBody::UidExpunge(set) => set,
        other => panic!("{other:?}"),
    }
}

#[test]
fn any_state_commands() {
    // RFC 9051 §6.1.1-§6.1.3, §6.2.1
    let c = parse_command(b"abcd CAPABILITY\r\n", false).unwrap();
    assert_eq!(c.tag, "abcd");
    assert_eq!(c.body, CommandBody::Capability);
    assert_eq!(body("a002 NOOP\r\n"), CommandBody::Noop);
    assert_eq!(body("A023 LOGOUT\r\n"), CommandBody::Logout);
    assert_eq!(body("a001 starttls\r\n"), CommandBody::StartTls);
    assert_eq!(body("a1 noop\n"), CommandBody::Noop); // bare LF tolerated
}

#[test]
fn authenticate_and_login() {
    // RFC 9051 §6.2.2 example
    assert_eq!(
        body("A001 AUTHENTICATE GSSAPI\r\n"),
        CommandBody::Authenticate {
            mechanism: "GSSAPI".into(),
            initial_response: None
        }
    );
    // RFC 4959 §3 (SASL-IR)
    assert_eq!(
        body("a01 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some(b"\0bob\0secret".to_vec())
        }
    );
    assert_eq!(
        body("a01 AUTHENTICATE EXTERNAL =\r\n"),
        CommandBody::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial_response: Some(vec![])
        }
    );
    assert!(err("a01 AUTHENTICATE PLAIN AGJvYg!\r\n").tag.as_deref() == Some("a01"));
    // RFC 9051 §6.2.3
    assert_eq!(
        body("a001 LOGIN SMITH SESAME\r\n"),
        CommandBody::Login {
            username: b"SMITH".to_vec(),
            password: b"SESAME".to_vec()
        }
    );
    assert_eq!(
        body("a001 LOGIN \"fred foo\" {4+}\r\np\"ss\r\n"),
        CommandBody::Login {
            username: b"fred foo".to_vec(),
            password: b"p\"ss".to_vec()
        }
    );
    assert_eq!(
        body("a001 LOGIN \"a\\\\b\" \"q\\\"\"\r\n"),
        CommandBody::Login {
            username: b"a\\b".to_vec(),
            password: b"q\"".to_vec()
        }
    );
}

#[test]
fn enable_id_compress() {
    // RFC 5161 §3.1
    assert_eq!(
        body("t2 ENABLE CONDSTORE qresync\r\n"),
        CommandBody::Enable(vec!["CONDSTORE".into(), "QRESYNC".into()])
    );
    assert_eq!(err("t2 ENABLE\r\n").tag.as_deref(), Some("t2"));
    // RFC 2971 §3.1
    assert_eq!(
        body("a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" NIL)\r\n"),
        CommandBody::Id(Some(vec![
            ("name".into(), Some("sodr".into())),
            ("version".into(), Some("19.34".into())),
            ("vendor".into(), None),
        ]))
    );
    assert_eq!(body("a ID NIL\r\n"), CommandBody::Id(None));
    // RFC 4978 §3
    assert_eq!(
        body("a COMPRESS DEFLATE\r\n"),
        CommandBody::Compress("DEFLATE".into())
    );
}

#[test]
fn select_examine() {
    // RFC 9051 §6.3.2
    assert_eq!(
        body("A142 SELECT INBOX\r\n"),
        CommandBody::Select {
            mailbox: mb("INBOX"),
            params: SelectParams::default()
        }
    );
    assert_eq!(
        body("A142 SELECT inbox\r\n"),
        CommandBody::Select {
            mailbox: mb("INBOX"),
            params: SelectParams::default()
        }
    );
    assert_eq!(
        body("A932 EXAMINE blurdybloop\r\n"),
        CommandBody::Examine {
            mailbox: mb("blurdybloop"),
            params: SelectParams::default()
        }
    );
    // RFC 7162 §3.1.8
    assert_eq!(
        body("a SELECT INBOX (CONDSTORE)\r\n"),
        CommandBody::Select {
            mailbox: mb("INBOX"),
            params: SelectParams {
                condstore: true,
                qresync: None
            }
        }
    );
    // RFC 7162 §3.2.5.2 example
    let b = body("A02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))\r\n");
    let CommandBody::Select { params, .. } = b else {
        panic!()
    };
    let q = params.qresync.unwrap();
    assert_eq!(q.uidvalidity, 67890007);
    assert_eq!(q.modseq, 90060115194045000);
    assert_eq!(q.known_uids, Some(set("41:211,214:541")));
    assert_eq!(q.seq_match, None);
    let b = body(
        "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))\r\n",
    );
    let CommandBody::Select { params, .. } = b else {
        panic!()
    };
    let (seqs, uids) = params.qresync.unwrap().seq_match.unwrap();
    assert_eq!(seqs, set("5000,7500,9000,9990:9999"));
    assert_eq!(uids.0.len(), 13);
    assert_eq!(err("a SELECT INBOX (FOO)\r\n").tag.as_deref(), Some("a"));
    assert!(err("a SELECT\r\n").tag.is_some());
}

#[test]
fn mailbox_management() {
    // RFC 9051 §6.3.4-§6.3.8
    assert_eq!(
        body("A003 CREATE owatagusiam/\r\n"),
        CommandBody::Create {
            mailbox: mb("owatagusiam/"),
            special_use: vec![]
        }
    );
    // RFC 6154 §5.2 example
    assert_eq!(
        body("t1 CREATE \"Important Messages\" (USE (\\Important))\r\n"),
        CommandBody::Create {
            mailbox: mb("Important Messages"),
            special_use: vec!["\\Important".into()]
        }
    );
    assert_eq!(
        body("A683 DELETE blurdybloop\r\n"),
        CommandBody::Delete(mb("blurdybloop"))
    );
    assert_eq!(
        body("A682 RENAME blurdybloop sarasoop\r\n"),
        CommandBody::Rename {
            from: mb("blurdybloop"),
            to: mb("sarasoop")
        }
    );
    assert_eq!(
        body("A002 SUBSCRIBE #news.comp.mail.mime\r\n"),
        CommandBody::Subscribe(mb("#news.comp.mail.mime"))
    );
    assert_eq!(
        body("A002 UNSUBSCRIBE #news.comp.mail.mime\r\n"),
        CommandBody::Unsubscribe(mb("#news.comp.mail.mime"))
    );
    assert_eq!(body("A001 NAMESPACE\r\n"), CommandBody::Namespace);
    // Modified UTF-7 decoding (RFC 3501 §5.1.3).
    assert_eq!(
        body("a DELETE &ZeVnLIqe-\r\n"),
        CommandBody::Delete(mb("日本語"))
    );
    assert!(matches!(
        err("a DELETE &ZeVnLIqe\r\n").kind,
        ReceiveErrorKind::Parse(ParseError::BadMailboxName(_))
    ));
}

#[test]
fn utf8_mailbox_names() {
    // RFC 6855 §3: after ENABLE UTF8=ACCEPT names are raw UTF-8 and "&" is literal.
    let c = parse_command("a DELETE \"日本語&\"\r\n".as_bytes(), true).unwrap();
    assert_eq!(c.body, CommandBody::Delete(mb("日本語&")));
    let c = parse_command(b"a DELETE &ZeVnLIqe-\r\n", true).unwrap();
    assert_eq!(c.body, CommandBody::Delete(mb("&ZeVnLIqe-")));
}

#[test]
fn list_and_lsub() {
    // RFC 9051 §6.3.9
    assert_eq!(
        body("A101 LIST \"\" \"\"\r\n"),
        CommandBody::List(ListCommand {
            reference: "".into(),
            patterns: vec!["".into()],
            ..Default::default()
        })
    );
    assert_eq!(
        body("A202 LIST ~/Mail/ %\r\n"),
        CommandBody::List(ListCommand {
            reference: "~/Mail/".into(),
            patterns: vec!["%".into()],
            ..Default::default()
        })
    );
    // RFC 5258 §5 examples
    assert_eq!(
        body("A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n"),
        CommandBody::List(ListCommand {
            select: vec![ListSelectOption::Subscribed],
            reference: "".into(),
            patterns: vec!["*".into()],
            returns: None
        })
    );
    assert_eq!(
        body("A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n"),
        CommandBody::List(ListCommand {
            select: vec![],
            reference: "".into(),
            patterns: vec!["%".into()],
            returns: Some(vec![ListReturnOption::Children])
        })
    );
    assert_eq!(
        body(
            "A05 LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" Foo/%) RETURN (SUBSCRIBED)\r\n"
        ),
        CommandBody::List(ListCommand {
            select: vec![
                ListSelectOption::Remote,
                ListSelectOption::Subscribed,
                ListSelectOption::RecursiveMatch
            ],
            reference: "".into(),
            patterns: vec!["%".into(), "Foo/%".into()],
            returns: Some(vec![ListReturnOption::Subscribed])
        })
    );
    // RFC 5819 §3 (LIST-STATUS), RFC 6154 §5.1 (SPECIAL-USE)
    assert_eq!(
        body("A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))\r\n"),
        CommandBody::List(ListCommand {
            select: vec![],
            reference: "".into(),
            patterns: vec!["%".into()],
            returns: Some(vec![ListReturnOption::Status(vec![
                StatusItem::Messages,
                StatusItem::Unseen
            ])])
        })
    );
    assert_eq!(
        body("t1 LIST (SPECIAL-USE) \"\" \"*\" RETURN (SPECIAL-USE)\r\n"),
        CommandBody::List(ListCommand {
            select: vec![ListSelectOption::SpecialUse],
            reference: "".into(),
            patterns: vec!["*".into()],
            returns: Some(vec![ListReturnOption::SpecialUse])
        })
    );
    // RFC 5258 §3.1: RECURSIVEMATCH alone and unknown options are errors.
    assert_eq!(
        err("A LIST (RECURSIVEMATCH) \"\" %\r\n").tag.as_deref(),
        Some("A")
    );
    assert_eq!(err("A LIST (BOGUS) \"\" %\r\n").tag.as_deref(), Some("A"));
    // RFC 3501 §6.3.9
    assert_eq!(
        body("A002 LSUB \"#news.\" \"comp.mail.*\"\r\n"),
        CommandBody::Lsub {
            reference: "#news.".into(),
            pattern: "comp.mail.*".into()
        }
    );
}

#[test]
fn status() {
    // RFC 9051 §6.3.11, RFC 8438, RFC 7162 §3.1.6
    assert_eq!(
        body("A042 STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ DELETED)\r\n"),
        CommandBody::Status {
            mailbox: mb("blurdybloop"),
            items: vec![
                StatusItem::UidNext,
                StatusItem::Messages,
                StatusItem::Size,
                StatusItem::HighestModSeq,
                StatusItem::Deleted
            ]
        }
    );
    assert_eq!(
        err("A042 STATUS blurdybloop (FOO)\r\n").tag.as_deref(),
        Some("A042")
    );
    assert!(err("A042 STATUS blurdybloop ()\r\n").tag.is_some());
}

#[test]
fn append() {
    // RFC 9051 §6.3.12 example
    let msg = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    let cmd = format!(
        "A003 APPEND saved-messages (\\Seen) {{{}}}\r\n{}\r\n",
        msg.len(),
        msg
    );
    assert_eq!(
        body(&cmd),
        CommandBody::Append {
            mailbox: mb("saved-messages"),
            messages: vec![AppendMessage {
                flags: vec![Flag::Seen],
                date: None,
                data: msg.as_bytes().to_vec(),
                kind: AppendDataKind::Literal
            }]
        }
    );
    // Date-time, keyword, MULTIAPPEND (RFC 3502 §6), literal8 (RFC 3516 §4.4), UTF8 (RFC 6855 §4)
    let cmd = "A APPEND INBOX (\\Seen $Junk) \" 7-Feb-1994 21:52:25 -0800\" {3+}\r\nabc {2+}\r\nde ~{3+}\r\nf\0g UTF8 (~{2+}\r\nhi)\r\n";
    let CommandBody::Append { messages, .. } = body(cmd) else {
        panic!()
    };
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[0].flags,
        vec![Flag::Seen, Flag::Keyword("$Junk".into())]
    );
    let d = messages[0].date.unwrap();
    assert_eq!(
        (
            d.date.year,
            d.date.month,
            d.date.day,
            d.hour,
            d.zone_minutes
        ),
        (1994, 2, 7, 21, -480)
    );
    assert_eq!(d.to_string(), " 7-Feb-1994 21:52:25 -0800");
    assert_eq!(messages[1].data, b"de");
    assert_eq!(messages[2].kind, AppendDataKind::Binary);
    assert_eq!(messages[2].data, b"f\0g");
    assert_eq!(messages[3].kind, AppendDataKind::Utf8);
    // NUL only in literal8; \Recent cannot be set; bad dates.
    assert_eq!(
        err("A APPEND INBOX {3+}\r\nf\0g\r\n").tag.as_deref(),
        Some("A")
    );
    assert_eq!(
        err("A APPEND INBOX (\\Recent) {1+}\r\nx\r\n")
            .tag
            .as_deref(),
        Some("A")
    );
    assert!(
        err("A APPEND INBOX \"31-Feb-1994 21:52:25 -0800\" {1+}\r\nx\r\n")
            .tag
            .is_some()
    );
    assert!(err("A APPEND INBOX\r\n").tag.is_some());
}

#[test]
fn selected_state_simple() {
    assert_eq!(body("FXXZ CHECK\r\n"), CommandBody::Check);
    assert_eq!(body("A341 CLOSE\r\n"), CommandBody::Close);
    assert_eq!(body("A342 UNSELECT\r\n"), CommandBody::Unselect);
    assert_eq!(body("A202 EXPUNGE\r\n"), CommandBody::Expunge);
    assert_eq!(body("a IDLE\r\n"), CommandBody::Idle);
    // RFC 4315 §2.1
    assert_eq!(
        body("A003 UID EXPUNGE 3000:3002\r\n"),
        CommandBody::UidExpunge(SequenceSet::range(3000, 3002))
    );
    assert_eq!(err("A202 EXPUNGE now\r\n").tag.as_deref(), Some("A202"));
}

#[test]
fn sequence_sets() {
    let s = set("1,3:5,10:*,*:4,$");
    assert_eq!(
        s.0,
        vec![
            SeqItem::Range(SeqNumber::Value(1), SeqNumber::Value(1)),
            SeqItem::Range(SeqNumber::Value(3), SeqNumber::Value(5)),
            SeqItem::Range(SeqNumber::Value(10), SeqNumber::Star),
            SeqItem::Range(SeqNumber::Star, SeqNumber::Value(4)),
            SeqItem::Saved,
        ]
    );
    assert_eq!(s.to_string(), "1,3:5,10:*,*:4,$");
    assert!(s.contains(4, 20) && s.contains(20, 20) && !s.contains(2, 20));
    assert_eq!(
        SequenceSet::from_numbers(&[5, 1, 2, 3, 9, 10]).to_string(),
        "1:3,5,9:10"
    );
    for bad in [
        "0",
        "1:0",
        "1,",
        ",1",
        "a",
        "1:2:3",
        "4294967296",
        "1.5",
        "-1",
    ] {
        let e = err(&format!("t UID EXPUNGE {bad}\r\n"));
        assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
    }
}

#[test]
fn search() {
    // RFC 9051 §6.4.4 examples
    assert_eq!(
        body("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"),
        CommandBody::Search(SearchCommand {
            uid: false,
            returns: None,
            charset: None,
            criteria: SearchKey::And(vec![
                SearchKey::Flagged,
                SearchKey::Since(Date::new(1994, 2, 1).unwrap()),
                SearchKey::Not(Box::new(SearchKey::From(b"Smith".to_vec()))),
            ])
        })
    );
    let b = body("A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
    let CommandBody::Search(s) = b else { panic!() };
    assert_eq!(s.returns, Some(vec![]));
    let b = body("A284 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 TEXT {12}\r\nXXXXXXXXXXXX\r\n");
    let CommandBody::Search(s) = b else { panic!() };
    assert_eq!(
        s.returns,
        Some(vec![SearchReturnOption::Min, SearchReturnOption::Count])
    );
    assert_eq!(s.charset.as_deref(), Some("UTF-8"));
    assert_eq!(s.criteria, SearchKey::Text(b"XXXXXXXXXXXX".to_vec()));
    // Nested OR / NOT / parentheses, sequence sets, $ (RFC 5182), rev1 keys.
    let b = body("a UID SEARCH OR (SEEN 1:5) NOT (DELETED $) UID 2,4:* NEW OLD RECENT UNSEEN\r\n");
    let CommandBody::Search(s) = b else { panic!() };
    assert!(s.uid);
    let SearchKey::And(v) = s.criteria else {
        panic!()
    };
    assert_eq!(v.len(), 6);
    assert_eq!(
        v[0],
        SearchKey::Or(
            Box::new(SearchKey::And(vec![
                SearchKey::Seen,
                SearchKey::SequenceSet(SequenceSet::range(1, 5))
            ])),
            Box::new(SearchKey::Not(Box::new(SearchKey::And(vec![
                SearchKey::Deleted,
                SearchKey::SequenceSet(SequenceSet(vec![SeqItem::Saved]))
            ]))))
        )
    );
    // Every key once.
    let all = "t SEARCH ALL ANSWERED BCC a BEFORE \"2-Mar-2020\" BODY b CC c DELETED DRAFT FLAGGED FROM d \
               HEADER X-Foo e KEYWORD $Junk LARGER 10 ON 1-Jan-2000 SEEN SENTBEFORE 1-Jan-2000 \
               SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 SMALLER 20 SUBJECT f TEXT g TO h UNANSWERED \
               UNDELETED UNDRAFT UNFLAGGED UNKEYWORD $X OLDER 3600 YOUNGER 60 MODSEQ 7 \
               MODSEQ \"/flags/\\\\draft\" all 620162338\r\n";
    let CommandBody::Search(s) = body(all) else {
        panic!()
    };
    let SearchKey::And(v) = s.criteria else {
        panic!()
    };
    assert_eq!(v.len(), 31);
    assert_eq!(v[10], SearchKey::Header("X-Foo".into(), b"e".to_vec()));
    assert_eq!(
        v[30],
        SearchKey::ModSeq {
            entry: Some(("/flags/\\draft".into(), EntryType::All)),
            modseq: 620162338
        }
    );
    // RFC 5182 §4 example
    let CommandBody::Search(s) = body("A282 SEARCH RETURN (SAVE) FLAGGED\r\n") else {
        panic!()
    };
    assert_eq!(s.returns, Some(vec![SearchReturnOption::Save]));
    // Errors keep the tag.
    for bad in [
        "t SEARCH\r\n",
        "t SEARCH FOO\r\n",
        "t SEARCH SINCE 30-Feb-2020\r\n",
        "t SEARCH OR SEEN\r\n",
        "t SEARCH (SEEN\r\n",
        "t SEARCH RETURN (BOGUS) ALL\r\n",
        "t SEARCH LARGER x\r\n",
    ] {
        assert_eq!(err(bad).tag.as_deref(), Some("t"), "{bad}");
    }
}

#[test]
fn fetch() {
    // RFC 9051 §6.4.5 example
    let CommandBody::Fetch(f) = body("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n")
    else {
        panic!()
    };
    assert_eq!(f.set, SequenceSet::range(2, 4));
    assert_eq!(
        f.attributes,
        FetchAttributes::List(vec![
            FetchAttribute::Flags,
            FetchAttribute::BodySection {
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(vec![
                        "DATE".into(),
                        "FROM".into()
                    ]))
                },
                partial: None
            }
        ])
    );
    for (m, mac) in [
        ("ALL", FetchMacro::All),
        ("fast", FetchMacro::Fast),
        ("FULL", FetchMacro::Full),
    ] {
        let CommandBody::Fetch(f) = body(&format!("a FETCH 1 {m}\r\n")) else {
            panic!()
        };
        assert_eq!(f.attributes, FetchAttributes::Macro(mac));
    }
    let CommandBody::Fetch(f) = body(
        "a UID FETCH 1:* (ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ \
         BODY.PEEK[1.2.MIME]<0.2048> BODY[] BODY[TEXT] BODY[3] BODY[4.HEADER.FIELDS.NOT (X-A \"X-B\")] \
         BINARY[1] BINARY.PEEK[]<10.20> BINARY.SIZE[2.1]) (CHANGEDSINCE 12345 VANISHED)\r\n",
    ) else {
        panic!()
    };
    assert!(f.uid && f.vanished);
    assert_eq!(f.changed_since, Some(12345));
    let FetchAttributes::List(v) = f.attributes else {
        panic!()
    };
    assert_eq!(v.len(), 18);
    assert_eq!(
        v[10],
        FetchAttribute::BodySection {
            peek: true,
            section: Section {
                part: vec![1, 2],
                text: Some(SectionText::Mime)
            },
            partial: Some(Partial {
                origin: 0,
                count: 2048
            })
        }
    );
    assert_eq!(
        v[13],
        FetchAttribute::BodySection {
            peek: false,
            section: Section {
                part: vec![3],
                text: None
            },
            partial: None
        }
    );
    assert_eq!(
        v[14],
        FetchAttribute::BodySection {
            peek: false,
            section: Section {
                part: vec![4],
                text: Some(SectionText::HeaderFieldsNot(vec![
                    "X-A".into(),
                    "X-B".into()
                ]))
            },
            partial: None
        }
    );
    assert_eq!(
        v[16],
        FetchAttribute::Binary {
            peek: true,
            part: vec![],
            partial: Some(Partial {
                origin: 10,
                count: 20
            })
        }
    );
    assert_eq!(v[17], FetchAttribute::BinarySize(vec![2, 1]));
    // Single attribute without parentheses.
    let CommandBody::Fetch(f) = body("a FETCH 1 BODY[]\r\n") else {
        panic!()
    };
    assert_eq!(f.attributes.to_list().len(), 1);
    for bad in [
        "a FETCH 1 (FLAGS\r\n",
        "a FETCH 1 FOO\r\n",
        "a FETCH 1 BODY[MIME]\r\n",
        "a FETCH 1 BODY[1]<0.0>\r\n",
        "a FETCH 1 (UID) (VANISHED)\r\n",
        "a FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
        "a FETCH 0 FLAGS\r\n",
        "a FETCH FLAGS\r\n",
    ] {
        assert_eq!(err(bad).tag.as_deref(), Some("a"), "{bad}");
    }
}

#[test]
fn store_copy_move() {
    // RFC 9051 §6.4.6
    assert_eq!(
        body("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n"),
        CommandBody::Store(StoreCommand {
            uid: false,
            set: SequenceSet::range(2, 4),
            operation: StoreOperation::Add,
            silent: false,
            flags: vec![Flag::Deleted],
            unchanged_since: None
        })
    );
    // RFC 7162 §3.1.3 example
    let CommandBody::Store(s) =
        body("d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n")
    else {
        panic!()
    };
    assert_eq!((s.silent, s.unchanged_since), (true, Some(320162338)));
    let CommandBody::Store(s) = body("a UID STORE 1 -FLAGS \\Seen $Foo\r\n") else {
        panic!()
    };
    assert_eq!(
        (s.uid, s.operation, s.flags.len()),
        (true, StoreOperation::Remove, 2)
    );
    let CommandBody::Store(s) = body("a STORE 1 FLAGS ()\r\n") else {
        panic!()
    };
    assert_eq!((s.operation, s.flags.len()), (StoreOperation::Replace, 0));
    assert_eq!(
        err("a STORE 1 +FLAGZ (\\Seen)\r\n").tag.as_deref(),
        Some("a")
    );
    // RFC 9051 §6.4.7, RFC 6851 §4.1
    assert_eq!(
        body("A003 COPY 2:4 MEETING\r\n"),
        CommandBody::Copy {
            uid: false,
            set: SequenceSet::range(2, 4),
            mailbox: mb("MEETING")
        }
    );
    assert_eq!(
        body("a UID MOVE 42:69 foo\r\n"),
        CommandBody::Move {
            uid: true,
            set: SequenceSet::range(42, 69),
            mailbox: mb("foo")
        }
    );
    assert_eq!(body("a MOVE $ Trash\r\n").name(), "MOVE");
}

#[test]
fn sort_and_thread() {
    // RFC 5256 §3 examples
    let CommandBody::Sort(s) = body("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n") else {
        panic!()
    };
    assert_eq!(
        s.criteria,
        vec![SortCriterion {
            reverse: false,
            key: SortKey::Subject
        }]
    );
    assert_eq!(s.charset, "UTF-8");
    let CommandBody::Sort(s) = body("A283 UID SORT (REVERSE DATE FROM) US-ASCII ALL\r\n") else {
        panic!()
    };
    assert!(s.uid && s.criteria[0].reverse && !s.criteria[1].reverse);
    // RFC 5267 §3.2 (ESORT)
    let CommandBody::Sort(s) = body("A301 SORT RETURN (MIN) (DATE) UTF-8 UNDELETED\r\n") else {
        panic!()
    };
    assert_eq!(s.returns, Some(vec![SearchReturnOption::Min]));
    let CommandBody::Thread(t) = body("A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000\r\n")
    else {
        panic!()
    };
    assert_eq!(t.algorithm, ThreadAlgorithm::OrderedSubject);
    let CommandBody::Thread(t) = body("A284 UID THREAD REFERENCES US-ASCII TEXT \"gewp\"\r\n")
    else {
        panic!()
    };
    assert!(t.uid);
    assert_eq!(t.algorithm, ThreadAlgorithm::References);
    assert_eq!(
        err("A SORT (BOGUS) UTF-8 ALL\r\n").tag.as_deref(),
        Some("A")
    );
    assert_eq!(err("A SORT (DATE) ALL\r\n").tag.as_deref(), Some("A")); // charset missing → ALL taken as charset, then no key
}

#[test]
fn quota_and_acl() {
    // RFC 9208 §4
    assert_eq!(
        body("G GETQUOTA \"\"\r\n"),
        CommandBody::GetQuota("".into())
    );
    assert_eq!(
        body("G GETQUOTAROOT INBOX\r\n"),
        CommandBody::GetQuotaRoot(mb("INBOX"))
    );
    assert_eq!(
        body("S SETQUOTA \"\" (STORAGE 512 message 100)\r\n"),
        CommandBody::SetQuota {
            root: "".into(),
            limits: vec![("STORAGE".into(), 512), ("MESSAGE".into(), 100)]
        }
    );
    // RFC 4314 §3
    assert_eq!(
        body("A001 SETACL INBOX/Drafts Chris +cda\r\n"),
        CommandBody::SetAcl {
            mailbox: mb("INBOX/Drafts"),
            identifier: "Chris".into(),
            rights: "+cda".into()
        }
    );
    assert_eq!(
        body("A002 DELETEACL INBOX Fred\r\n"),
        CommandBody::DeleteAcl {
            mailbox: mb("INBOX"),
            identifier: "Fred".into()
        }
    );
    assert_eq!(
        body("A003 GETACL INBOX\r\n"),
        CommandBody::GetAcl(mb("INBOX"))
    );
    assert_eq!(
        body("a LISTRIGHTS ~/Mail/saved smith\r\n"),
        CommandBody::ListRights {
            mailbox: mb("~/Mail/saved"),
            identifier: "smith".into()
        }
    );
    assert_eq!(
        body("a MYRIGHTS INBOX\r\n"),
        CommandBody::MyRights(mb("INBOX"))
    );
}

#[test]
fn wrong_arguments_carry_the_tag() {
    for bad in [
        "x1 NOOP extra\r\n",
        "x1 LOGIN onlyuser\r\n",
        "x1 LOGIN  a b\r\n",
        "x1 CREATE\r\n",
        "x1 RENAME a\r\n",
        "x1 COPY 1\r\n",
        "x1 BOGUS\r\n",
        "x1 UID BOGUS 1\r\n",
        "x1 GETACL\r\n",
        "x1 SETQUOTA r (STORAGE)\r\n",
        "x1 ID (\"a\")\r\n",
    ] {
        let e = err(bad);
        assert_eq!(e.tag.as_deref(), Some("x1"), "{bad}");
        let r = Response::from(e.to_response()).to_bytes(&EncodeOptions::default());
        assert!(r.starts_with(b"x1 BAD "), "{}", String::from_utf8_lossy(&r));
    }
    let e = err("+bad NOOP\r\n");
    assert_eq!(e.tag, None);
    assert!(
        Response::from(e.to_response())
            .to_bytes(&EncodeOptions::default())
            .starts_with(b"* BAD ")
    );
}
