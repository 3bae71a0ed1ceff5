//! Receiver framing, limits and resynchronisation.

use keel_imap::codec::*;

fn drain(rx: &mut Receiver) -> Vec<Result<Event, ReceiveError>> {
    let mut out = Vec::new();
    loop {
        match rx.next() {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

fn tags(events: &[Result<Event, ReceiveError>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Ok(Event::Command(c)) => format!("cmd:{}", c.tag),
            Ok(Event::NeedsContinuation { tag, size }) => format!("cont:{tag}:{size}"),
            Ok(Event::AuthenticateResponse(_)) => "sasl".into(),
            Ok(Event::IdleDone) => "done".into(),
            Err(e) => format!("err:{}", e.tag.clone().unwrap_or_else(|| "*".into())),
        })
        .collect()
}

fn small() -> Limits {
    Limits {
        max_line: 100,
        max_literal: 50,
        max_command_literals: 80,
        ..Limits::default()
    }
}

#[test]
fn synchronizing_literal_flow() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"a1 LOGIN {5}\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cont:a1:5"]);
    assert_eq!(rx.pending_literal(), Some(5));
    rx.feed(b"ali");
    assert!(drain(&mut rx).is_empty());
    assert_eq!(rx.pending_literal(), Some(2));
    rx.feed(b"ce {6}\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cont:a1:6"]);
    rx.feed(b"secret\r\na2 NOOP\r\n");
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["cmd:a1", "cmd:a2"]);
    let Ok(Event::Command(c)) = &ev[0] else {
        panic!()
    };
    assert_eq!(
        c.body,
        CommandBody::Login {
            username: b"alice".to_vec(),
            password: b"secret".to_vec()
        }
    );
}

#[test]
fn byte_at_a_time_matches_whole() {
    let input: &[u8] = b"a LOGIN {3+}\r\nbob \"pw\"\r\nb APPEND INBOX ~{4+}\r\n\0\r\n\x01 {2+}\r\nhi\r\n\r\nc SELECT \"x {3}\"\r\n";
    let mut whole = Receiver::new(Limits::default());
    whole.feed(input);
    let expected = drain(&mut whole);
    let mut bytewise = Receiver::new(Limits::default());
    let mut got = Vec::new();
    for b in input {
        bytewise.feed(&[*b]);
        got.extend(drain(&mut bytewise));
    }
    assert_eq!(got, expected);
    assert_eq!(tags(&got), ["cmd:a", "cmd:b", "cmd:c"]);
    assert!(whole.finish().is_none());
}

#[test]
fn literal_in_quotes_is_not_a_literal() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"a SEARCH SUBJECT \"foo {3}\r\nb NOOP\r\n");
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:a", "cmd:b"]);
}

#[test]
fn overlong_line_then_good_command() {
    // Detected before the LF arrives.
    let mut rx = Receiver::new(small());
    let mut long = b"t1 SEARCH SUBJECT ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 200));
    rx.feed(&long);
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:t1"]);
    assert!(matches!(
        ev[0],
        Err(ReceiveError {
            kind: ReceiveErrorKind::LineTooLong { limit: 100 },
            ..
        })
    ));
    rx.feed(&[b'y'; 500]);
    assert!(drain(&mut rx).is_empty());
    rx.feed(b"zz\r\nt2 NOOP\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:t2"]);

    // Whole line in one chunk.
    let mut rx = Receiver::new(small());
    let mut input = b"t3 NOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200));
    input.extend_from_slice(b"\r\nt4 NOOP\r\n");
    rx.feed(&input);
    assert_eq!(tags(&drain(&mut rx)), ["err:t3", "cmd:t4"]);
    let r = Response::from(
        ReceiveError {
            tag: Some("t3".into()),
            kind: ReceiveErrorKind::LineTooLong { limit: 100 },
        }
        .to_response(),
    );
    assert_eq!(
        r.to_bytes(&EncodeOptions::default()),
        b"t3 BAD line too long (limit 100 bytes)\r\n"
    );
}

#[test]
fn overlong_line_ending_in_nonsync_literal_skips_it() {
    let mut rx = Receiver::new(small());
    let mut input = b"t1 APPEND INBOX ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200));
    input.extend_from_slice(b" {5+}\r\nA\r\nB\n\r\nt2 NOOP\r\n");
    rx.feed(&input);
    assert_eq!(tags(&drain(&mut rx)), ["err:t1", "cmd:t2"]);
}

#[test]
fn oversized_synchronizing_literal_is_refused_before_reading() {
    let mut rx = Receiver::new(small());
    rx.feed(b"A1 APPEND INBOX {51}\r\n");
    let ev = drain(&mut rx);
    assert_eq!(
        ev,
        vec![Err(ReceiveError {
            tag: Some("A1".into()),
            kind: ReceiveErrorKind::LiteralTooLarge {
                size: 51,
                limit: 50,
                synchronizing: true
            }
        })]
    );
    let Err(e) = &ev[0] else { panic!() };
    assert_eq!(
        Response::from(e.to_response()).to_bytes(&EncodeOptions::default()),
        b"A1 BAD [TOOBIG] literal too large (51 bytes, limit 50)\r\n"
    );
    // The client does not send the literal; the next command is read normally.
    rx.feed(b"A2 NOOP\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:A2"]);
}

#[test]
fn oversized_nonsync_literal_is_skipped_exactly() {
    let mut rx = Receiver::new(small());
    let mut input = b"A1 APPEND INBOX (\\Seen) {60+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'\n', 60)); // LFs inside the literal must not confuse framing
    input.extend_from_slice(b" {3+}\r\n\r\n\r\r\nA2 NOOP\r\n");
    for chunk in input.chunks(7) {
        rx.feed(chunk);
        for e in drain(&mut rx) {
            let t = tags(std::slice::from_ref(&e));
            assert!(t == ["err:A1"] || t == ["cmd:A2"], "{t:?}");
        }
    }
    assert!(rx.finish().is_none());
    // Total over max_command_literals (80) with each literal under 50.
    let mut rx = Receiver::new(small());
    let mut input = b"B1 APPEND INBOX {40+}\r\n".to_vec();
    input.extend([b'a'; 40]);
    input.extend_from_slice(b" {45+}\r\n");
    input.extend([b'b'; 45]);
    input.extend_from_slice(b"\r\nB2 NOOP\r\n");
    rx.feed(&input);
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:B1", "cmd:B2"]);
    assert!(matches!(
        ev[0],
        Err(ReceiveError {
            kind: ReceiveErrorKind::LiteralTooLarge { limit: 80, .. },
            ..
        })
    ));
}

#[test]
fn huge_literal_announcement() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"A1 APPEND INBOX {99999999999999999999999}\r\nA2 NOOP\r\n");
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:A1", "cmd:A2"]);
}

#[test]
fn unterminated_literal_then_eof() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"A1 APPEND INBOX {10+}\r\nabc");
    assert!(drain(&mut rx).is_empty());
    assert_eq!(rx.pending_literal(), Some(7));
    let e = rx.finish().unwrap();
    assert_eq!(
        e,
        ReceiveError {
            tag: Some("A1".into()),
            kind: ReceiveErrorKind::UnexpectedEof
        }
    );
    assert!(rx.finish().is_none());
    // Partial line at EOF.
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"A9 NOO");
    assert!(drain(&mut rx).is_empty());
    assert_eq!(rx.finish().unwrap().tag.as_deref(), Some("A9"));
}

#[test]
fn reject_literal_drops_the_command() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"A1 APPEND nosuch {3}\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cont:A1:3"]);
    rx.reject_literal(); // server answered "A1 NO [TRYCREATE]" instead of "+"
    rx.feed(b"A2 NOOP\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:A2"]);
}

#[test]
fn nesting_and_range_limits() {
    let limits = Limits {
        max_depth: 8,
        max_sequence_ranges: 5,
        ..Limits::default()
    };
    let mut rx = Receiver::new(limits);
    let deep = format!("d1 SEARCH {}ALL{}\r\n", "(".repeat(20), ")".repeat(20));
    let nots = format!("d2 SEARCH {}ALL\r\n", "NOT ".repeat(20));
    rx.feed(deep.as_bytes());
    rx.feed(nots.as_bytes());
    rx.feed(b"d3 FETCH 1,2,3,4,5,6 FLAGS\r\nd4 FETCH 1,2,3,4,5 FLAGS\r\n");
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:d1", "err:d2", "err:d3", "cmd:d4"]);
    assert!(matches!(
        &ev[0],
        Err(ReceiveError {
            kind: ReceiveErrorKind::Parse(ParseError::TooDeep(8)),
            ..
        })
    ));
    assert!(matches!(
        &ev[2],
        Err(ReceiveError {
            kind: ReceiveErrorKind::Parse(ParseError::TooManyRanges(5)),
            ..
        })
    ));
    // Defaults handle very deep input without overflowing the stack.
    let mut rx = Receiver::new(Limits::default());
    let deep = format!("d5 SEARCH {}ALL{}\r\n", "(".repeat(5000), ")".repeat(5000));
    rx.feed(deep.as_bytes());
    assert_eq!(tags(&drain(&mut rx)), ["err:d5"]);
}

#[test]
fn sasl_mode() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"a1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:a1"]);
    rx.expect_sasl_line();
    rx.feed(b"AGJvYgBzZWNyZXQ=\r\n");
    assert_eq!(
        drain(&mut rx),
        vec![Ok(Event::AuthenticateResponse(SaslResponse::Data(
            b"\0bob\0secret".to_vec()
        )))]
    );
    rx.expect_sasl_line();
    rx.feed(b"*\r\n");
    assert_eq!(
        drain(&mut rx),
        vec![Ok(Event::AuthenticateResponse(SaslResponse::Cancel))]
    );
    rx.expect_sasl_line();
    rx.feed(b"not base64!\r\na2 NOOP\r\n");
    let ev = drain(&mut rx);
    assert_eq!(tags(&ev), ["err:a1", "cmd:a2"]);
    assert!(matches!(
        &ev[0],
        Err(ReceiveError {
            kind: ReceiveErrorKind::InvalidBase64,
            ..
        })
    ));
    // A SASL line that looks like a literal is still just a line.
    rx.expect_sasl_line();
    rx.feed(b"{5}\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["err:a2"]);
}

#[test]
fn idle_mode() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"i1 IDLE\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:i1"]);
    rx.expect_idle_done();
    rx.feed(b"done\r\ni2 IDLE\r\n");
    assert_eq!(tags(&drain(&mut rx)), ["done", "cmd:i2"]);
    rx.expect_idle_done();
    rx.feed(b"i3 NOOP\r\n");
    let ev = drain(&mut rx);
    assert_eq!(
        ev,
        vec![Err(ReceiveError {
            tag: Some("i2".into()),
            kind: ReceiveErrorKind::ExpectedDone
        })]
    );
}

#[test]
fn starttls_buffer_is_dropped() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"s1 STARTTLS\r\ns2 LOGIN injected cmd\r\n");
    assert_eq!(
        rx.next().unwrap().map(|e| tags(&[Ok(e)])),
        Some(vec!["cmd:s1".to_string()])
    );
    assert_eq!(rx.clear_buffer(), 23);
    assert!(drain(&mut rx).is_empty());
    rx.feed(b"s3 COMPRESS DEFLATE\r\n\x78\x9c");
    assert_eq!(tags(&drain(&mut rx)), ["cmd:s3"]);
    assert_eq!(rx.take_buffered(), b"\x78\x9c");
}

#[test]
fn garbage_and_empty_lines() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"\r\n\r\n{3}\r\n+x NOOP\r\nnotag\r\n  \r\na NOOP\r\n");
    assert_eq!(
        tags(&drain(&mut rx)),
        ["err:*", "err:*", "err:notag", "err:*", "cmd:a"]
    );
}

#[test]
fn utf8_mode_switch() {
    let mut rx = Receiver::new(Limits::default());
    rx.feed(b"a SELECT &ZeVnLIqe-\r\n");
    let ev = rx.next();
    let Ok(Some(Event::Command(c))) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(
        c.body,
        CommandBody::Select {
            mailbox: "日本語".into(),
            params: SelectParams::default()
        }
    );
    rx.set_utf8(true);
    rx.feed("b SELECT \"日本語\"\r\n".as_bytes());
    let Ok(Some(Event::Command(c))) = rx.next() else {
        panic!()
    };
    assert_eq!(
        c.body,
        CommandBody::Select {
            mailbox: "日本語".into(),
            params: SelectParams::default()
        }
    );
}
