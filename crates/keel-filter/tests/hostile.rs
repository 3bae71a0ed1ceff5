//! A bad or hostile message never crashes the pipeline (issue 6 tests): each case goes
//! through the entry points the SMTP session calls at the end of DATA — the spam scorer
//! ([`Scorer::score`], with Bayes), then the attachment filter and the antivirus
//! ([`ContentFilter::check`], against a fake clamd written here that speaks zINSTREAM) —
//! and gets a defined verdict and a log line. Every case must finish in seconds.

#[path = "../../keel-smtp/src/dns/test_zone.rs"]
mod test_zone;

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_core::ipgroup::IpGroups;
use keel_core::log::{LogKind, LogSettings, Logs};
use keel_filter::antivirus::{AttachmentAction, AttachmentMatch, AttachmentRule};
use keel_filter::limits::LIMIT_SCORE;
use keel_filter::{
    AntivirusSettings, Bayes, ContentFilter, ContentVerdict, EICAR, FilterDns, MessageLimits,
    ScanInput, Scorer, SpamSettings, Verdict,
};
use test_zone::TestDns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A clamd stand-in: answers `zINSTREAM` with `FOUND` for EICAR, with clamd's
/// `Heuristics.Limits.Exceeded` for zip archives (what the real clamd answers for the
/// zip bomb, tests/clamd.rs), `OK` otherwise; records the longest stream it received.
struct FakeClamd {
    addr: String,
    longest: Arc<AtomicUsize>,
}

async fn fake_clamd() -> FakeClamd {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let longest = Arc::new(AtomicUsize::new(0));
    let seen = longest.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut cmd = Vec::new();
                let mut b = [0u8; 1];
                while s.read_exact(&mut b).await.is_ok() && b[0] != 0 {
                    cmd.push(b[0]);
                }
                if cmd == b"zPING" {
                    let _ = s.write_all(b"PONG\0").await;
                    return;
                }
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    if n == 0 {
                        break;
                    }
                    let start = data.len();
                    data.resize(start + n, 0);
                    if s.read_exact(&mut data[start..]).await.is_err() {
                        return;
                    }
                }
                seen.fetch_max(data.len(), Ordering::SeqCst);
                let reply: &[u8] = if data.windows(EICAR.len()).any(|w| w == EICAR.as_bytes()) {
                    b"stream: Eicar-Signature FOUND\0"
                } else if data.starts_with(b"PK\x03\x04") {
                    b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                let _ = s.write_all(reply).await;
            });
        }
    });
    FakeClamd { addr, longest }
}

fn deep_multipart(depth: usize) -> Vec<u8> {
    let mut m = String::from("From: x@remote.test\r\nSubject: deep\r\n");
    for i in 0..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    for i in (0..depth).rev() {
        m.push_str(&format!("--b{i}--\r\n"));
    }
    m.into_bytes()
}

fn deep_rfc822(depth: usize) -> Vec<u8> {
    let mut m = String::from("From: x@remote.test\r\nSubject: deep\r\n");
    for _ in 0..depth {
        m.push_str("Content-Type: message/rfc822\r\n\r\nFrom: y@remote.test\r\n");
    }
    m.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    m.into_bytes()
}

fn many_parts(n: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: x@remote.test\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n",
    );
    for i in 0..n {
        m.push_str(&format!(
            "--P\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--P--\r\n");
    m.into_bytes()
}

fn huge_header_line() -> Vec<u8> {
    let mut m = b"From: x@remote.test\r\nSubject: ".to_vec();
    m.extend(std::iter::repeat_n(b'A', 1024 * 1024));
    m.extend_from_slice(b"\r\n\r\nbody\r\n");
    m
}

fn many_header_fields() -> Vec<u8> {
    let mut m = String::from("From: x@remote.test\r\n");
    for i in 0..60_000 {
        m.push_str(&format!("X-F{i}: v\r\n"));
    }
    m.push_str("\r\nbody\r\n");
    m.into_bytes()
}

fn unterminated_boundary() -> Vec<u8> {
    let mut m = common::with_attachment("notes.txt", "text/plain", b"hello there");
    let cut = m.len() - "--BB--\r\n".len();
    m.truncate(cut);
    m
}

fn no_boundary_parameter() -> Vec<u8> {
    b"From: x@remote.test\r\nSubject: nb\r\nContent-Type: multipart/mixed\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n--X--\r\n".to_vec()
}

fn bad_base64() -> Vec<u8> {
    b"From: x@remote.test\r\nSubject: b64\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n\
--BB\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n!!!!@@@@####$$$$%%%%^^^^&&&&****\r\n====\r\n--BB--\r\n"
        .to_vec()
}

fn bad_quoted_printable() -> Vec<u8> {
    b"From: x@remote.test\r\nSubject: qp\r\nContent-Type: text/plain\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nbroken =ZZ =\r\n=4 =G1 trailing=\r\n"
        .to_vec()
}

fn binary_garbage() -> Vec<u8> {
    // A fixed pseudo-random sequence (xorshift), NULs and bare CRs included.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn zip_bomb() -> Vec<u8> {
    let (zip, _) = common::zip_bomb(40_000, 1000);
    common::with_attachment("bomb.zip", "application/zip", &zip)
}

/// The expected outcome of one case.
struct Case {
    name: &'static str,
    message: Vec<u8>,
    /// Spam test added for the structure (with [`LIMIT_SCORE`]).
    spam_test: Option<&'static str>,
    /// Whether the content filter reports "cannot be scanned".
    unscannable: bool,
    /// Substring of the Warning-log line.
    warning: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unterminated boundary",
            message: unterminated_boundary(),
            spam_test: Some("MIME_MALFORMED"),
            // mail-parser recovers the open part and flags it as badly encoded.
            unscannable: true,
            warning: "a multipart has no closing boundary",
        },
        Case {
            name: "multipart without boundary parameter",
            message: no_boundary_parameter(),
            spam_test: Some("MIME_MALFORMED"),
            unscannable: false,
            warning: "a multipart has no boundary parameter",
        },
        Case {
            name: "bad base64",
            message: bad_base64(),
            spam_test: Some("MIME_MALFORMED"),
            unscannable: true,
            warning: "is badly encoded",
        },
        Case {
            name: "bad quoted-printable",
            message: bad_quoted_printable(),
            spam_test: Some("MIME_MALFORMED"),
            // mail-parser decodes it leniently; clamd scans the result.
            unscannable: false,
            warning: "a quoted-printable part has a malformed escape",
        },
        Case {
            name: "10,000 nested multiparts",
            message: deep_multipart(10_000),
            spam_test: Some("MIME_TOO_DEEP"),
            unscannable: true,
            warning: "MIME nesting deeper than 50 levels",
        },
        Case {
            name: "10,000 nested message/rfc822",
            message: deep_rfc822(10_000),
            spam_test: Some("MIME_TOO_DEEP"),
            unscannable: true,
            warning: "MIME nesting deeper than 50 levels",
        },
        Case {
            name: "5,000 parts",
            message: many_parts(5_000),
            spam_test: Some("MIME_TOO_MANY_PARTS"),
            unscannable: true,
            warning: "more than 500 MIME parts",
        },
        Case {
            name: "1 MB header line",
            message: huge_header_line(),
            spam_test: Some("HEADER_TOO_LONG"),
            unscannable: true,
            warning: "a header section longer than 262144 bytes",
        },
        Case {
            name: "60,000 header fields",
            message: many_header_fields(),
            spam_test: Some("HEADER_TOO_LONG"),
            unscannable: true,
            warning: "a header section longer than 262144 bytes",
        },
        Case {
            // Found by the `mime` fuzz target: mail-parser 0.11 loses the parts after it.
            name: "message/rfc822 directly in message/rfc822 in a multipart",
            message: b"From: x@remote.test\r\nSubject: nested\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: a\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbody\r\n--b\r\n\
Content-Type: application/x-msdownload; name=evil.exe\r\n\r\nMZ\r\n--b--\r\n"
                .to_vec(),
            spam_test: Some("MIME_NESTED_MESSAGE"),
            unscannable: true,
            warning: "a message/rfc822 part directly enclosing another inside a multipart",
        },
        Case {
            name: "zip bomb",
            message: zip_bomb(),
            spam_test: None,
            unscannable: true,
            warning: "Heuristics.Limits.Exceeded.MaxFileSize",
        },
        Case {
            name: "binary garbage",
            message: binary_garbage(),
            spam_test: None,
            unscannable: true,
            warning: "cannot be scanned",
        },
    ]
}

struct Pipeline {
    scorer: Scorer,
    filter: ContentFilter,
    logs: Logs,
    clamd: FakeClamd,
    _dir: tempfile::TempDir,
    _dns: TestDns,
}

async fn pipeline() -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(&dir.path().join("logs"), LogSettings::default()).unwrap();
    let dns = TestDns::start("remote.test", vec![]).await;
    let settings = SpamSettings {
        exempt_private_ranges: false,
        exempt_loopback: false,
        dns_server: Some(dns.addr()),
        dnsbl: Vec::new(),
        uribl: Vec::new(),
        ..SpamSettings::default()
    };
    let meta = keel_store::sqlite::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
    let resolver = FilterDns::with_nameserver(dns.addr()).unwrap();
    let scorer = Scorer::with_dns(settings, IpGroups::default(), "mx.example.com", resolver)
        .with_logs(logs.clone())
        .with_bayes(Bayes::new(Arc::new(meta)));
    let clamd = fake_clamd().await;
    let mut av = AntivirusSettings {
        enabled: true,
        address: clamd.addr.clone(),
        timeout_secs: 5,
        ..AntivirusSettings::default()
    };
    av.attachments.enabled = true;
    av.attachments.rules.insert(
        0,
        AttachmentRule {
            enabled: true,
            description: "executables".into(),
            kind: AttachmentMatch::FileName,
            pattern: "*.exe".into(),
            action: AttachmentAction::Block,
        },
    );
    let filter = ContentFilter::new(av).with_logs(logs.clone());
    Pipeline {
        scorer,
        filter,
        logs,
        clamd,
        _dir: dir,
        _dns: dns,
    }
}

impl Pipeline {
    async fn run(&self, message: &[u8]) -> (Verdict, ContentVerdict) {
        let rcpts = vec!["alice@example.com".to_owned()];
        let verdict = self
            .scorer
            .score(&ScanInput {
                client_ip: "192.0.2.1".parse::<IpAddr>().unwrap(),
                helo: "client.remote.test",
                mail_from: "x@remote.test",
                rcpts: &rcpts,
                message,
                authenticated: false,
                trusted: false,
                sender_allowed: false,
            })
            .await;
        let rated = verdict.apply(message);
        let content = self.filter.check(&rated).await.expect("scanner up");
        (verdict, content)
    }

    fn log(&self, kind: LogKind) -> String {
        std::fs::read_to_string(self.logs.path(kind)).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_messages_get_a_verdict_and_a_log_line() {
    let p = pipeline().await;
    for case in cases() {
        let before = p.log(LogKind::Warning).len();
        let started = Instant::now();
        let (verdict, content) = p.run(&case.message).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{}: took {took:?}",
            case.name
        );
        let structural: Vec<&(String, f64)> = verdict
            .tests
            .iter()
            .filter(|(n, _)| n.starts_with("MIME_") || n == "HEADER_TOO_LONG")
            .collect();
        match case.spam_test {
            Some(t) => assert_eq!(
                structural,
                vec![&(t.to_owned(), LIMIT_SCORE)],
                "{}: {:?}",
                case.name,
                verdict.tests
            ),
            None => assert!(structural.is_empty(), "{}: {:?}", case.name, verdict.tests),
        }
        // None of these is spam by itself: a hint, never decisive (limits module notes).
        assert!(!verdict.is_spam(), "{}: {:?}", case.name, verdict.tests);
        assert_eq!(
            !content.unscannable.is_empty(),
            case.unscannable,
            "{}: {:?}",
            case.name,
            content.unscannable
        );
        assert!(
            content.viruses.is_empty() && !content.reject,
            "{}",
            case.name
        );
        if case.unscannable {
            // guide §14.4 default: delivered with a prepended warning.
            assert!(
                content
                    .message
                    .starts_with(b"X-Keel-Antivirus: not scanned ("),
                "{}",
                case.name
            );
        }
        let warning = p.log(LogKind::Warning);
        let new = &warning[before..];
        assert!(
            new.contains(case.warning),
            "{}: Warning log lacks {:?}: {new}",
            case.name,
            case.warning
        );
        eprintln!(
            "{:<40} {took:>10.1?} score {:>4.1} tests {:?} unscannable {:?}",
            case.name, verdict.score, structural, content.unscannable
        );
    }
    // Keel never expands archives: the largest stream clamd got is the message itself
    // (the zip bomb's compressed bytes, about 60 KB), never the 10 GB it claims.
    let longest = p.clamd.longest.load(Ordering::SeqCst);
    assert!(longest < 2 << 20, "{longest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_spam_message_is_still_rated_and_logged() {
    // Content tests still run past a limit: GTUBE in a message with a 1 MB header line is
    // blocked, and the Spam log gets its line.
    let p = pipeline().await;
    let mut m = huge_header_line();
    m.extend_from_slice(keel_filter::GTUBE.as_bytes());
    m.extend_from_slice(b"\r\n");
    let (verdict, _) = p.run(&m).await;
    assert!(verdict.is_spam());
    assert!(verdict.tests.iter().any(|(n, _)| n == "GTUBE"));
    assert!(verdict.tests.iter().any(|(n, _)| n == "HEADER_TOO_LONG"));
    assert!(p.log(LogKind::Spam).contains("Message marked as spam"));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_limit_is_hit_exactly_past_its_value() {
    let limits = MessageLimits {
        max_mime_depth: 5,
        max_parts: 10,
        max_header_bytes: 2048,
    };
    let p = pipeline().await;
    let filter = p.filter.clone().with_limits(limits);
    let unscannable = |v: &ContentVerdict| !v.unscannable.is_empty();
    // Depth: 5 nested multiparts are examined, 6 are not.
    assert!(!unscannable(
        &filter.check(&deep_multipart(5)).await.unwrap()
    ));
    let v = filter.check(&deep_multipart(6)).await.unwrap();
    assert!(
        v.unscannable[0].contains("MIME nesting deeper than 5 levels"),
        "{v:?}"
    );
    // Parts: 10 leaf parts are examined, 11 are not.
    assert!(!unscannable(&filter.check(&many_parts(10)).await.unwrap()));
    let v = filter.check(&many_parts(11)).await.unwrap();
    assert!(
        v.unscannable[0].contains("more than 10 MIME parts"),
        "{v:?}"
    );
    // Header bytes: a 2,000-byte header passes, a 3,000-byte one does not.
    let header = |n: usize| {
        let mut m = b"From: x@remote.test\r\nSubject: ".to_vec();
        m.extend(std::iter::repeat_n(b's', n));
        m.extend_from_slice(b"\r\n\r\nbody\r\n");
        m
    };
    assert!(!unscannable(&filter.check(&header(1900)).await.unwrap()));
    let v = filter.check(&header(3000)).await.unwrap();
    assert!(v.unscannable[0].contains("longer than 2048 bytes"), "{v:?}");
    // The scorer with the same limits.
    let scorer = p.scorer.clone().with_limits(limits);
    let rcpts = vec!["alice@example.com".to_owned()];
    for (m, test) in [
        (deep_multipart(6), "MIME_TOO_DEEP"),
        (many_parts(11), "MIME_TOO_MANY_PARTS"),
        (header(3000), "HEADER_TOO_LONG"),
    ] {
        let v = scorer
            .score(&ScanInput {
                client_ip: "192.0.2.1".parse::<IpAddr>().unwrap(),
                helo: "client.remote.test",
                mail_from: "x@remote.test",
                rcpts: &rcpts,
                message: &m,
                authenticated: false,
                trusted: false,
                sender_allowed: false,
            })
            .await;
        assert!(
            v.tests.iter().any(|(n, _)| n == test),
            "{test}: {:?}",
            v.tests
        );
    }
    // A virus beyond the depth limit is still found: the whole message goes to clamd.
    let mut m = deep_multipart(6);
    let at = m.len() - 7 * "--bN--\r\n".len();
    m.splice(at..at, EICAR.bytes());
    let v = filter.check(&m).await.unwrap();
    assert_eq!(v.viruses, vec!["Eicar-Signature".to_owned()], "{v:?}");
    assert!(v.reject);
}
