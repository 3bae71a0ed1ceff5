//! Writer output compared to exact bytes (RFC examples where they exist).

use keel_imap::codec::*;

fn w(r: impl Into<Response>) -> String {
    String::from_utf8(r.into().to_bytes(&EncodeOptions::default())).unwrap()
}

fn w8(r: impl Into<Response>) -> String {
    String::from_utf8(r.into().to_bytes(&EncodeOptions::utf8())).unwrap()
}

#[test]
fn status_responses_and_codes() {
    assert_eq!(w(StatusResponse::ok(Some("a1"), "done")), "a1 OK done\r\n");
    assert_eq!(w(StatusResponse::no(Some("a1"), "")), "a1 NO NO\r\n");
    assert_eq!(
        w(StatusResponse::bad(None, "line\r\nbreak")),
        "* BAD line  break\r\n"
    );
    assert_eq!(
        w(StatusResponse::preauth("welcome")),
        "* PREAUTH welcome\r\n"
    );
    assert_eq!(
        w(StatusResponse::bye("Autologout; idle for too long")),
        "* BYE Autologout; idle for too long\r\n"
    );
    let cases: Vec<(Code, &str)> = vec![
        (Code::Alert, "ALERT"),
        (
            Code::Capability(vec!["IMAP4rev2".into(), "AUTH=PLAIN".into()]),
            "CAPABILITY IMAP4rev2 AUTH=PLAIN",
        ),
        (
            Code::PermanentFlags {
                flags: vec![Flag::Deleted, Flag::Seen],
                new_keywords: true,
            },
            "PERMANENTFLAGS (\\Deleted \\Seen \\*)",
        ),
        (
            Code::PermanentFlags {
                flags: vec![],
                new_keywords: false,
            },
            "PERMANENTFLAGS ()",
        ),
        (Code::UidNext(4392), "UIDNEXT 4392"),
        (Code::UidValidity(3857529045), "UIDVALIDITY 3857529045"),
        (Code::Unseen(12), "UNSEEN 12"),
        (Code::ReadOnly, "READ-ONLY"),
        (Code::ReadWrite, "READ-WRITE"),
        (Code::TryCreate, "TRYCREATE"),
        (
            Code::AppendUid {
                uidvalidity: 38505,
                uids: SequenceSet::single(3955),
            },
            "APPENDUID 38505 3955",
        ),
        (
            Code::CopyUid {
                uidvalidity: 38505,
                source: SequenceSet::from_numbers(&[304, 319, 320]),
                dest: SequenceSet::range(3956, 3958),
            },
            "COPYUID 38505 304,319:320 3956:3958",
        ),
        (
            Code::HighestModSeq(715194045007),
            "HIGHESTMODSEQ 715194045007",
        ),
        (Code::NoModSeq, "NOMODSEQ"),
        (
            Code::Modified(SequenceSet::from_numbers(&[7, 9])),
            "MODIFIED 7,9",
        ),
        (Code::Closed, "CLOSED"),
        (Code::OverQuota, "OVERQUOTA"),
        (Code::Limit, "LIMIT"),
        (Code::AuthenticationFailed, "AUTHENTICATIONFAILED"),
        (Code::TooBig, "TOOBIG"),
        (
            Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()]),
            "BADCHARSET (UTF-8 US-ASCII)",
        ),
        (
            Code::Other("X-FOO".into(), Some("bar]baz".into())),
            "X-FOO bar baz",
        ),
    ];
    for (code, text) in cases {
        assert_eq!(
            w(StatusResponse::ok(Some("t"), "x").with_code(code)),
            format!("t OK [{text}] x\r\n")
        );
    }
}

#[test]
fn continuation() {
    assert_eq!(
        w(Response::continue_ready()),
        "+ Ready for literal data\r\n"
    );
    assert_eq!(w(Continue::Base64(b"\0bob".to_vec())), "+ AGJvYg==\r\n");
    assert_eq!(w(Continue::Base64(vec![])), "+ \r\n");
    assert_eq!(w(Continue::Text("idling".into())), "+ idling\r\n");
}

#[test]
fn mailbox_data() {
    assert_eq!(
        w(Data::Capability(vec!["IMAP4rev2".into(), "IDLE".into()])),
        "* CAPABILITY IMAP4rev2 IDLE\r\n"
    );
    assert_eq!(
        w(Data::Enabled(vec!["CONDSTORE".into()])),
        "* ENABLED CONDSTORE\r\n"
    );
    assert_eq!(w(Data::Exists(23)), "* 23 EXISTS\r\n");
    assert_eq!(w(Data::Recent(5)), "* 5 RECENT\r\n");
    assert_eq!(w(Data::Expunge(3)), "* 3 EXPUNGE\r\n");
    assert_eq!(
        w(Data::Flags(vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft
        ])),
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    );
    assert_eq!(
        w(Data::Vanished {
            earlier: true,
            uids: SequenceSet::from_numbers(&[41, 43, 44, 45])
        }),
        "* VANISHED (EARLIER) 41,43:45\r\n"
    );
    assert_eq!(
        w(Data::Vanished {
            earlier: false,
            uids: SequenceSet::single(405)
        }),
        "* VANISHED 405\r\n"
    );
    // LIST (RFC 9051 §7.3.1, RFC 5258 §4, RFC 9051 §6.3.9.7)
    assert_eq!(
        w(Data::List(ListData::new("INBOX", &["\\HasNoChildren"]))),
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
    );
    let mut l = ListData::new("Foo bar", &[]);
    l.child_info = vec!["SUBSCRIBED".into()];
    assert_eq!(
        w(Data::List(l)),
        "* LIST () \"/\" \"Foo bar\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
    );
    let mut l = ListData::new("NewName", &[]);
    l.old_name = Some("OldName".into());
    l.delimiter = None;
    assert_eq!(
        w(Data::List(l)),
        "* LIST () NIL NewName (\"OLDNAME\" (OldName))\r\n"
    );
    let mut l = ListData::new("日本語", &["\\Sent"]);
    l.delimiter = Some('\\');
    assert_eq!(
        w(Data::List(l.clone())),
        "* LIST (\\Sent) \"\\\\\" &ZeVnLIqe-\r\n"
    );
    assert_eq!(
        w8(Data::List(l.clone())),
        "* LIST (\\Sent) \"\\\\\" \"日本語\"\r\n"
    );
    assert_eq!(
        w(Data::Lsub(ListData::new("#news.comp.mail.misc", &[]))),
        "* LSUB () \"/\" #news.comp.mail.misc\r\n"
    );
    // STATUS (RFC 9051 §7.3.2)
    assert_eq!(
        w(Data::Status {
            mailbox: "blurdybloop".into(),
            items: vec![
                StatusValue {
                    item: StatusItem::Messages,
                    value: 231
                },
                StatusValue {
                    item: StatusItem::UidNext,
                    value: 44292
                }
            ]
        }),
        "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
    );
    assert_eq!(
        w(Data::Status {
            mailbox: "NIL".into(),
            items: vec![]
        }),
        "* STATUS \"NIL\" ()\r\n"
    );
}

#[test]
fn search_sort_thread() {
    assert_eq!(
        w(Data::Search {
            ids: vec![2, 84, 882],
            modseq: None
        }),
        "* SEARCH 2 84 882\r\n"
    );
    assert_eq!(
        w(Data::Search {
            ids: vec![],
            modseq: None
        }),
        "* SEARCH\r\n"
    );
    assert_eq!(
        w(Data::Search {
            ids: vec![2, 5],
            modseq: Some(917162500)
        }),
        "* SEARCH 2 5 (MODSEQ 917162500)\r\n"
    );
    // RFC 4731 §3.1 / RFC 9051 §7.3.4
    assert_eq!(
        w(Data::Esearch {
            tag: Some("A285".into()),
            uid: true,
            items: vec![
                EsearchItem::Min(7),
                EsearchItem::Max(3800),
                EsearchItem::Count(15)
            ]
        }),
        "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800 COUNT 15\r\n"
    );
    assert_eq!(
        w(Data::Esearch {
            tag: Some("A1".into()),
            uid: false,
            items: vec![EsearchItem::All(SequenceSet::from_numbers(&[1, 2, 3, 5]))]
        }),
        "* ESEARCH (TAG \"A1\") ALL 1:3,5\r\n"
    );
    assert_eq!(
        w(Data::Sort {
            ids: vec![2, 84, 882],
            modseq: None
        }),
        "* SORT 2 84 882\r\n"
    );
    // RFC 5256 §4 example: (2)(3 6 (4 23)(44 7 96))
    let t = vec![
        ThreadNode::leaf(2),
        ThreadNode {
            id: Some(3),
            children: vec![ThreadNode {
                id: Some(6),
                children: vec![
                    ThreadNode {
                        id: Some(4),
                        children: vec![ThreadNode::leaf(23)],
                    },
                    ThreadNode {
                        id: Some(44),
                        children: vec![ThreadNode {
                            id: Some(7),
                            children: vec![ThreadNode::leaf(96)],
                        }],
                    },
                ],
            }],
        },
    ];
    assert_eq!(w(Data::Thread(t)), "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n");
    // Placeholder parent: ((3)(5))
    let t = vec![ThreadNode {
        id: None,
        children: vec![ThreadNode::leaf(3), ThreadNode::leaf(5)],
    }];
    assert_eq!(w(Data::Thread(t)), "* THREAD ((3)(5))\r\n");
    assert_eq!(w(Data::Thread(vec![])), "* THREAD\r\n");
}

#[test]
fn namespace_id_quota_acl() {
    // RFC 2342 §5 examples
    assert_eq!(
        w(Data::Namespace {
            personal: vec![NamespaceDesc {
                prefix: "".into(),
                delimiter: Some('/')
            }],
            other: vec![],
            shared: vec![]
        }),
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
    );
    assert_eq!(
        w(Data::Namespace {
            personal: vec![NamespaceDesc {
                prefix: "".into(),
                delimiter: Some('/')
            }],
            other: vec![NamespaceDesc {
                prefix: "~".into(),
                delimiter: Some('/')
            }],
            shared: vec![
                NamespaceDesc {
                    prefix: "#shared/".into(),
                    delimiter: Some('/')
                },
                NamespaceDesc {
                    prefix: "#public/".into(),
                    delimiter: Some('/')
                }
            ]
        }),
        "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\"))\r\n"
    );
    // RFC 2971 §3.2
    assert_eq!(
        w(Data::Id(Some(vec![
            ("name".into(), Some("Cyrus".into())),
            ("os".into(), None)
        ]))),
        "* ID (\"name\" \"Cyrus\" \"os\" NIL)\r\n"
    );
    assert_eq!(w(Data::Id(None)), "* ID NIL\r\n");
    // RFC 9208 §5
    assert_eq!(
        w(Data::Quota {
            root: "".into(),
            resources: vec![QuotaResource {
                name: "STORAGE".into(),
                usage: 10,
                limit: 512
            }]
        }),
        "* QUOTA \"\" (STORAGE 10 512)\r\n"
    );
    assert_eq!(
        w(Data::QuotaRoot {
            mailbox: "INBOX".into(),
            roots: vec!["".into()]
        }),
        "* QUOTAROOT INBOX \"\"\r\n"
    );
    // RFC 4314 §3.6-§3.8
    assert_eq!(
        w(Data::Acl {
            mailbox: "INBOX".into(),
            entries: vec![("Fred".into(), "rwipsldexta".into())]
        }),
        "* ACL INBOX Fred rwipsldexta\r\n"
    );
    assert_eq!(
        w(Data::ListRights {
            mailbox: "~/Mail/saved".into(),
            identifier: "smith".into(),
            required: "la".into(),
            optional: vec!["r".into(), "swicdkxte".into()]
        }),
        "* LISTRIGHTS ~/Mail/saved smith la r swicdkxte\r\n"
    );
    assert_eq!(
        w(Data::ListRights {
            mailbox: "a".into(),
            identifier: "b".into(),
            required: "".into(),
            optional: vec![]
        }),
        "* LISTRIGHTS a b \"\"\r\n"
    );
    assert_eq!(
        w(Data::MyRights {
            mailbox: "INBOX".into(),
            rights: "rwiptsldaex".into()
        }),
        "* MYRIGHTS INBOX rwiptsldaex\r\n"
    );
}

fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
    Address {
        name: name.map(|n| n.as_bytes().to_vec()),
        adl: None,
        mailbox: Some(mailbox.as_bytes().to_vec()),
        host: Some(host.as_bytes().to_vec()),
    }
}

#[test]
fn fetch_items() {
    let dt = DateTime {
        date: Date::new(1996, 7, 17).unwrap(),
        hour: 2,
        minute: 44,
        second: 25,
        zone_minutes: -420,
    };
    let items = vec![
        FetchItem::Flags(vec![Flag::Seen, Flag::Keyword("$Junk".into())]),
        FetchItem::Uid(4827313),
        FetchItem::ModSeq(12121231000),
        FetchItem::InternalDate(dt),
        FetchItem::Rfc822Size(4286),
    ];
    assert_eq!(
        w(Data::Fetch { seq: 12, items }),
        "* 12 FETCH (FLAGS (\\Seen $Junk) UID 4827313 MODSEQ (12121231000) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286)\r\n"
    );
    let items = vec![
        FetchItem::BodySection {
            section: Section::default(),
            origin: None,
            data: Some(b"Subject: x\r\n\r\nhi\r\n".to_vec()),
        },
        FetchItem::BodySection {
            section: Section {
                part: vec![1],
                text: Some(SectionText::HeaderFields(vec!["FROM".into(), "TO".into()])),
            },
            origin: Some(0),
            data: Some(b"short".to_vec()),
        },
        FetchItem::BodySection {
            section: Section {
                part: vec![2, 1],
                text: Some(SectionText::Mime),
            },
            origin: None,
            data: None,
        },
        FetchItem::Binary {
            part: vec![1],
            origin: None,
            data: Some(b"a\0b".to_vec()),
        },
        FetchItem::BinarySize {
            part: vec![],
            size: 77,
        },
        FetchItem::Rfc822Header(Some(b"".to_vec())),
    ];
    assert_eq!(
        w(Data::Fetch { seq: 1, items }),
        "* 1 FETCH (BODY[] {18}\r\nSubject: x\r\n\r\nhi\r\n BODY[1.HEADER.FIELDS (FROM TO)]<0> \"short\" BODY[2.1.MIME] NIL \
         BINARY[1] ~{3}\r\na\0b BINARY.SIZE[] 77 RFC822.HEADER \"\")\r\n"
    );
    // 8-bit data: literal unless UTF-8 is enabled.
    let d = Data::Fetch {
        seq: 2,
        items: vec![FetchItem::Rfc822Text(Some("é".as_bytes().to_vec()))],
    };
    assert_eq!(w(d.clone()), "* 2 FETCH (RFC822.TEXT {2}\r\né)\r\n");
    assert_eq!(w8(d), "* 2 FETCH (RFC822.TEXT \"é\")\r\n");
    // Long strings become literals.
    let long = "x".repeat(2000);
    let d = Data::Fetch {
        seq: 3,
        items: vec![FetchItem::Rfc822(Some(long.clone().into_bytes()))],
    };
    assert_eq!(w(d), format!("* 3 FETCH (RFC822 {{2000}}\r\n{long})\r\n"));
}

#[test]
fn envelope_rfc9051_example() {
    // RFC 9051 §7.5.2 (adapted from the §8 sample session).
    let fred = addr(Some("Terry Gray"), "gray", "cac.washington.edu");
    let env = Envelope {
        date: Some(b"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)".to_vec()),
        subject: Some(b"IMAP4rev2 WG mtg summary and minutes".to_vec()),
        from: vec![fred.clone()],
        sender: vec![fred.clone()],
        reply_to: vec![fred],
        to: vec![Address {
            name: None,
            adl: None,
            mailbox: Some(b"imap".to_vec()),
            host: Some(b"cac.washington.edu".to_vec()),
        }],
        cc: vec![
            addr(None, "minutes", "CNRI.Reston.VA.US"),
            addr(Some("John Klensin"), "KLENSIN", "MIT.EDU"),
        ],
        bcc: vec![],
        in_reply_to: None,
        message_id: Some(b"<B27397-0100000@cac.washington.edu>".to_vec()),
    };
    assert_eq!(
        w(Data::Fetch {
            seq: 12,
            items: vec![FetchItem::Envelope(Box::new(env))]
        }),
        "* 12 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary and minutes\" \
         ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
         ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) \
         ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \
         \"<B27397-0100000@cac.washington.edu>\"))\r\n"
    );
}

fn text_part(subtype: &str, octets: u64, lines: u64) -> BodyStructure {
    BodyStructure::Single(SinglePart {
        media_type: "TEXT".into(),
        media_subtype: subtype.into(),
        params: vec![("CHARSET".into(), "US-ASCII".into())],
        id: None,
        description: None,
        encoding: "7BIT".into(),
        octets,
        kind: SinglePartKind::Text { lines },
        ext: Some(SinglePartExt::default()),
    })
}

#[test]
fn bodystructure() {
    // RFC 9051 §7.5.2 BODYSTRUCTURE example (single part).
    let b = text_part("PLAIN", 3028, 92);
    assert_eq!(
        w(Data::Fetch {
            seq: 1,
            items: vec![FetchItem::Body(Box::new(b.clone()))]
        }),
        "* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n"
    );
    assert_eq!(
        w(Data::Fetch {
            seq: 1,
            items: vec![FetchItem::BodyStructure(Box::new(b))]
        }),
        "* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92 NIL NIL NIL NIL))\r\n"
    );
    // Multipart with an attachment and a message/rfc822 part.
    let attachment = BodyStructure::Single(SinglePart {
        media_type: "APPLICATION".into(),
        media_subtype: "PDF".into(),
        params: vec![],
        id: Some("<x@y>".into()),
        description: None,
        encoding: "BASE64".into(),
        octets: 100,
        kind: SinglePartKind::Basic,
        ext: Some(SinglePartExt {
            md5: None,
            disposition: Some(Disposition {
                kind: "attachment".into(),
                params: vec![("filename".into(), "a.pdf".into())],
            }),
            language: vec!["en".into(), "de".into()],
            location: None,
            extensions: vec![
                BodyExtension::Number(1),
                BodyExtension::List(vec![BodyExtension::NString(None)]),
            ],
        }),
    });
    let inner = BodyStructure::Single(SinglePart {
        media_type: "MESSAGE".into(),
        media_subtype: "RFC822".into(),
        params: vec![],
        id: None,
        description: None,
        encoding: "7BIT".into(),
        octets: 50,
        kind: SinglePartKind::Message {
            envelope: Box::default(),
            body: Box::new(text_part("PLAIN", 10, 1)),
            lines: 4,
        },
        ext: None,
    });
    let multi = BodyStructure::Multi {
        parts: vec![text_part("PLAIN", 1152, 23), attachment, inner],
        subtype: "MIXED".into(),
        ext: Some(MultiPartExt {
            params: vec![("BOUNDARY".into(), "xx".into())],
            ..Default::default()
        }),
    };
    assert_eq!(
        w(Data::Fetch {
            seq: 5,
            items: vec![FetchItem::BodyStructure(Box::new(multi.clone()))]
        }),
        "* 5 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23 NIL NIL NIL NIL)\
         (\"APPLICATION\" \"PDF\" NIL \"<x@y>\" NIL \"BASE64\" 100 NIL (\"attachment\" (\"filename\" \"a.pdf\")) (\"en\" \"de\") NIL 1 (NIL))\
         (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 50 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL) 4) \
         \"MIXED\" (\"BOUNDARY\" \"xx\") NIL NIL NIL))\r\n"
    );
    assert_eq!(
        w(Data::Fetch {
            seq: 5,
            items: vec![FetchItem::Body(Box::new(multi))]
        }),
        "* 5 FETCH (BODY ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)\
         (\"APPLICATION\" \"PDF\" NIL \"<x@y>\" NIL \"BASE64\" 100)\
         (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 50 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 10 1) 4) \"MIXED\"))\r\n"
    );
}

#[test]
fn quoting_rules() {
    let q = |s: &str| {
        w(Data::QuotaRoot {
            mailbox: "INBOX".into(),
            roots: vec![s.into()],
        })
    };
    assert_eq!(q("plain"), "* QUOTAROOT INBOX plain\r\n");
    assert_eq!(q("with space"), "* QUOTAROOT INBOX \"with space\"\r\n");
    assert_eq!(q("q\"uote\\"), "* QUOTAROOT INBOX \"q\\\"uote\\\\\"\r\n");
    assert_eq!(q("nil"), "* QUOTAROOT INBOX \"nil\"\r\n");
    assert_eq!(q("a\r\nb"), "* QUOTAROOT INBOX {4}\r\na\r\nb\r\n");
    assert_eq!(q("Tom & Jerry"), "* QUOTAROOT INBOX \"Tom & Jerry\"\r\n");
    assert_eq!(
        w(Data::MyRights {
            mailbox: "Tom & Jerry".into(),
            rights: "r".into()
        }),
        "* MYRIGHTS \"Tom &- Jerry\" r\r\n"
    );
}

/// Commands written by a client and read back (round trip through the parser
/// and the shared types' Display forms).
#[test]
fn round_trips() {
    // Sequence sets.
    for s in ["1", "1:*", "*", "1,3:5,7:*", "$", "4:2"] {
        let cmd = format!("t UID EXPUNGE {s}\r\n");
        let CommandBody::UidExpunge(set) = parse_command(cmd.as_bytes(), false).unwrap().body
        else {
            panic!()
        };
        assert_eq!(set.to_string(), s);
    }
    // Date-times: writer form parses back.
    let dt = DateTime {
        date: Date::new(2024, 2, 29).unwrap(),
        hour: 23,
        minute: 59,
        second: 60,
        zone_minutes: 330,
    };
    let cmd = format!("t APPEND INBOX \"{dt}\" {{1+}}\r\nx\r\n");
    let CommandBody::Append { messages, .. } = parse_command(cmd.as_bytes(), false).unwrap().body
    else {
        panic!()
    };
    assert_eq!(messages[0].date, Some(dt));
    // Sections.
    for s in [
        "",
        "HEADER",
        "1.2.TEXT",
        "3.MIME",
        "HEADER.FIELDS (A B)",
        "2.HEADER.FIELDS.NOT (X)",
    ] {
        let cmd = format!("t FETCH 1 BODY.PEEK[{s}]\r\n");
        let CommandBody::Fetch(f) = parse_command(cmd.as_bytes(), false).unwrap().body else {
            panic!()
        };
        let FetchAttributes::List(v) = f.attributes else {
            panic!()
        };
        let FetchAttribute::BodySection { section, .. } = &v[0] else {
            panic!()
        };
        assert_eq!(section.to_string(), s);
    }
    // Flags and dates.
    for f in ["\\Seen", "\\Answered", "\\Foo", "$Junk"] {
        assert_eq!(Flag::from_wire(f).unwrap().to_string(), f);
    }
    assert_eq!(Date::new(1994, 2, 1).unwrap().to_string(), "1-Feb-1994");
    // Mailbox names via mUTF-7 both ways.
    let name = "~peter/mail/台北/日本語";
    let r = w(Data::MyRights {
        mailbox: name.into(),
        rights: "r".into(),
    });
    assert_eq!(r, "* MYRIGHTS ~peter/mail/&U,BTFw-/&ZeVnLIqe- r\r\n");
    let CommandBody::MyRights(m) =
        parse_command(b"t MYRIGHTS ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n", false)
            .unwrap()
            .body
    else {
        panic!()
    };
    assert_eq!(m.as_str(), name);
}
