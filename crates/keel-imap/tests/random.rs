//! Property-style robustness: random and mutated input never panics, and the
//! receiver always stays usable (a good command after garbage is read).

use keel_imap::codec::*;

/// xorshift64*: small deterministic PRNG (no external crates).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "a1 ",
    "UID ",
    "FETCH ",
    "SEARCH ",
    "STORE ",
    "APPEND ",
    "LIST ",
    "SELECT ",
    "LOGIN ",
    "AUTHENTICATE ",
    "1:*",
    "$",
    ",",
    ":",
    "*",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ".",
    "\"",
    "\\",
    "{3}\r\n",
    "{2+}\r\n",
    "~{1}\r\n",
    "{99999999999}\r\n",
    "\r\n",
    "\n",
    " ",
    "BODY",
    "PEEK",
    "HEADER.FIELDS",
    "NOT ",
    "OR ",
    "ALL",
    "FLAGS",
    "+FLAGS.SILENT ",
    "\\Seen",
    "INBOX",
    "&ZeVnLIqe-",
    "&",
    "-",
    "RETURN ",
    "CHARSET ",
    "UTF-8 ",
    "1-Feb-1994",
    "\"17-Jul-1996 02:44:25 -0700\"",
    "MODSEQ ",
    "CHANGEDSINCE ",
    "VANISHED",
    "QRESYNC ",
    "NIL",
    "DONE",
    "\0",
    "é",
];

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let n = rng.below(40);
    for _ in 0..n {
        if rng.below(3) == 0 {
            let len = rng.below(8);
            for _ in 0..len {
                out.push(rng.next() as u8);
            }
        } else {
            out.extend_from_slice(TOKENS[rng.below(TOKENS.len())].as_bytes());
        }
    }
    out
}

#[test]
fn random_bytes_never_panic_and_stay_in_sync() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let opts = [EncodeOptions::default(), EncodeOptions::utf8()];
    for i in 0..4000 {
        let limits = if i % 2 == 0 {
            Limits::default()
        } else {
            Limits {
                max_line: 64,
                max_literal: 16,
                max_command_literals: 24,
                max_depth: 4,
                max_sequence_ranges: 3,
            }
        };
        let mut rx = Receiver::new(limits);
        rx.set_utf8(i % 3 == 0);
        let input = random_input(&mut rng);
        let mut pos = 0;
        while pos < input.len() {
            let take = 1 + rng.below(16);
            let end = (pos + take).min(input.len());
            rx.feed(&input[pos..end]);
            pos = end;
            loop {
                match rx.next() {
                    Ok(Some(Event::Command(c))) => {
                        if c.body == CommandBody::Idle {
                            rx.expect_idle_done();
                        }
                        if matches!(c.body, CommandBody::Authenticate { .. }) {
                            rx.expect_sasl_line();
                        }
                    }
                    Ok(Some(Event::NeedsContinuation { .. })) => {
                        if rng.below(4) == 0 {
                            rx.reject_literal();
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        let _ = Response::from(e.to_response()).to_bytes(&opts[i % 2]);
                    }
                }
            }
        }
        let _ = rx.finish();
        // After EOF handling the receiver is clean: a good command parses.
        rx.expect_command();
        rx.feed(b"z NOOP\r\n");
        assert!(
            matches!(
                rx.next(),
                Ok(Some(Event::Command(Command {
                    body: CommandBody::Noop,
                    ..
                })))
            ),
            "iteration {i}"
        );
    }
}

#[test]
fn mutated_commands_never_panic() {
    let seeds: &[&[u8]] = &[
        b"A654 FETCH 2:4 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (DATE FROM)]<0.100> BINARY[1])\r\n",
        b"A1 SEARCH RETURN (MIN) CHARSET UTF-8 OR (SEEN 1:5) NOT MODSEQ \"/flags/\\\\draft\" all 5\r\n",
        b"A2 APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3+}\r\nabc\r\n",
        b"A3 SELECT INBOX (QRESYNC (1 2 1:5 (1:2 3:4)))\r\n",
        b"A4 LIST (SUBSCRIBED) \"\" (\"%\" x) RETURN (STATUS (MESSAGES))\r\n",
        b"A5 UID STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted)\r\n",
        b"A6 SORT (REVERSE DATE) UTF-8 ALL\r\n",
        b"A7 UID SORT RETURN (MIN MAX COUNT ALL) (SUBJECT REVERSE ARRIVAL CC) US-ASCII OR TO x SIZE 1\r\n",
        b"A8 UID THREAD REFERENCES UTF-8 (SUBJECT \"re: x\" UNDELETED)\r\n",
        b"A9 THREAD ORDEREDSUBJECT US-ASCII ALL\r\n",
        b"B1 UID FETCH 1:* (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[3] BINARY[])\r\n",
        b"B2 APPEND INBOX ~{4+}\r\na\0b\n\r\n",
    ];
    let mut rng = Rng(42);
    for _ in 0..4000 {
        let mut m = seeds[rng.below(seeds.len())].to_vec();
        for _ in 0..1 + rng.below(4) {
            let p = rng.below(m.len());
            match rng.below(3) {
                0 => m[p] = rng.next() as u8,
                1 => {
                    m.remove(p);
                }
                _ => m.insert(p, TOKENS[rng.below(TOKENS.len())].as_bytes()[0]),
            }
        }
        let _ = parse_command(&m, rng.below(2) == 0);
    }
}

#[test]
fn random_responses_never_panic() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let data = [
            Data::List(ListData::new(s.as_str(), &[s.as_str()])),
            Data::Id(Some(vec![(s.clone(), Some(s.clone()))])),
            Data::Fetch {
                seq: 1,
                items: vec![
                    FetchItem::Rfc822(Some(bytes.clone())),
                    FetchItem::Flags(vec![Flag::Keyword(s.clone())]),
                ],
            },
            Data::Quota {
                root: s.clone(),
                resources: vec![],
            },
        ];
        for d in data {
            let _ = Response::from(d).to_bytes(&EncodeOptions::default());
        }
        let _ = Response::from(
            StatusResponse::ok(Some(&s), s.clone())
                .with_code(Code::Other(s.clone(), Some(s.clone()))),
        )
        .to_bytes(&EncodeOptions::utf8());
        let _ = mutf7::decode_bytes(&bytes);
        let _ = mutf7::decode(&mutf7::encode(&s)).map(|d| assert_eq!(d, s));
        let _ = base64_decode(&bytes);
    }
}
