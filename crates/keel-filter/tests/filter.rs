//! Scorer, email authentication and DKIM signing against an in-process DNS server
//! (DESIGN §3, §8: nothing reaches the Internet), plus interop with Python's dkimpy.

#[path = "../../keel-smtp/src/dns/test_zone.rs"]
mod test_zone;

use std::net::IpAddr;
use std::process::Command;

use keel_core::ipgroup::IpGroups;
use keel_filter::{
    Action, CustomRule, DkimAlgorithm, DkimKey, DnsList, FilterDns, GTUBE, HitAction, RuleAction,
    RuleField, RuleMatch, ScanInput, Scorer, SpamSettings, Verdict,
};
use test_zone::{TestDns, TestRecord};

const HOST: &str = "mx.example.com";
const PUBLIC_IP: &str = "192.0.2.1";

/// Settings for the test lab: no exemptions, no default Internet lists.
fn lab(dns: &TestDns) -> SpamSettings {
    SpamSettings {
        exempt_private_ranges: false,
        exempt_loopback: false,
        dns_server: Some(dns.addr()),
        dnsbl: Vec::new(),
        uribl: Vec::new(),
        ..SpamSettings::default()
    }
}

fn scorer(settings: SpamSettings) -> Scorer {
    let dns = FilterDns::with_nameserver(settings.dns_server.expect("dns server")).unwrap();
    Scorer::with_dns(settings, IpGroups::default(), HOST, dns)
}

async fn score(s: &Scorer, ip: &str, from: &str, msg: &str) -> Verdict {
    let rcpts = vec!["alice@example.com".to_owned()];
    s.score(&ScanInput {
        client_ip: ip.parse::<IpAddr>().unwrap(),
        helo: "client.remote.test",
        mail_from: from,
        rcpts: &rcpts,
        message: msg.as_bytes(),
        authenticated: false,
        trusted: false,
        sender_allowed: false,
    })
    .await
}

fn msg(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: alice@example.com\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@remote.test>\r\n\r\n{body}\r\n"
    )
}

fn rule(field: RuleField, m: RuleMatch, action: RuleAction) -> CustomRule {
    CustomRule {
        description: String::new(),
        enabled: true,
        field,
        matcher: m,
        action,
    }
}

async fn empty_dns() -> TestDns {
    TestDns::start("remote.test", vec![]).await
}

#[tokio::test]
async fn gtube_scores_above_the_block_score() {
    let dns = empty_dns().await;
    let s = scorer(lab(&dns));
    let v = score(
        &s,
        PUBLIC_IP,
        "a@remote.test",
        &msg("a@remote.test", "hi", GTUBE),
    )
    .await;
    match &v.action {
        Action::Reject(r) => assert_eq!((r.code, r.enhanced), (554, "5.7.1")),
        other => panic!("{other:?}"),
    }
    assert!(v.tests.iter().any(|(n, _)| n == "GTUBE"));
    // 10 = never block: GTUBE is only tagged.
    let mut set = lab(&dns);
    set.block_score = 10.0;
    let v = score(
        &scorer(set),
        PUBLIC_IP,
        "a@remote.test",
        &msg("a@x", "hi", GTUBE),
    )
    .await;
    assert_eq!(v.action, Action::Tag);
}

fn y23_rules() -> Vec<CustomRule> {
    vec![
        rule(
            RuleField::From,
            RuleMatch::Address("spammer@bad.test".into()),
            RuleAction::Reject,
        ),
        rule(
            RuleField::Subject,
            RuleMatch::Substring("cheap pills".into()),
            RuleAction::Score(6.0),
        ),
        rule(
            RuleField::Subject,
            RuleMatch::Substring("casino".into()),
            RuleAction::Score(5.0),
        ),
    ]
}

#[tokio::test]
async fn scenario_y23_tag_block_and_rule_position() {
    let dns = empty_dns().await;
    let mut set = lab(&dns);
    set.rules = y23_rules();
    set.quarantine_address = Some("spam@example.com".into());
    let s = scorer(set.clone());
    // Rule 1 is first: an envelope rule, 553 at MAIL.
    let r = s
        .check_mail_from("spammer@bad.test", false, false)
        .unwrap_err();
    assert_eq!(r.code, 553);
    assert!(s.check_mail_from("friend@good.test", false, false).is_ok());
    // Tagged: subject prefix and X-Spam-Flag.
    let m = msg("a@remote.test", "cheap pills", "buy");
    let v = score(&s, PUBLIC_IP, "a@remote.test", &m).await;
    assert_eq!(v.action, Action::Tag);
    let out = String::from_utf8(v.apply(m.as_bytes())).unwrap();
    assert!(out.contains("X-Spam-Flag: YES\r\n"), "{out}");
    assert!(out.contains("Subject: **SPAM** cheap pills\r\n"), "{out}");
    assert!(out.contains("X-Spam-Status: Yes, score=6.0"), "{out}");
    // 11 ≥ 9.9: blocked, with a quarantine copy.
    let v = score(
        &s,
        PUBLIC_IP,
        "a@remote.test",
        &msg("a@x", "cheap pills casino", ""),
    )
    .await;
    assert!(
        matches!(v.action, Action::Quarantine(ref r) if r.code == 554),
        "{v:?}"
    );
    assert_eq!(v.score, 11.0);
    // Rule 2 moved above rule 1: the From rule now applies to the From: header.
    set.rules.swap(0, 1);
    let s = scorer(set);
    assert!(s.check_mail_from("spammer@bad.test", false, false).is_ok());
    let v = score(
        &s,
        PUBLIC_IP,
        "x@y.test",
        &msg("Spammer <spammer@bad.test>", "hi", ""),
    )
    .await;
    assert!(matches!(v.action, Action::Quarantine(_)), "{v:?}");
    let v = score(
        &s,
        PUBLIC_IP,
        "spammer@bad.test",
        &msg("ok@good.test", "hi", ""),
    )
    .await;
    assert_eq!(v.action, Action::Accept);
}

fn dnsbl(zone: &str, action: HitAction) -> DnsList {
    DnsList {
        zone: zone.into(),
        description: String::new(),
        action,
        enabled: true,
        codes: Vec::new(),
    }
}

#[tokio::test]
async fn dnsbl_listing_scores_or_rejects_and_private_ranges_are_skipped() {
    let dns = TestDns::start(
        "bl.test",
        vec![
            TestRecord::a("2.0.0.127.bl.test", "127.0.0.2"),
            TestRecord::a("1.2.0.192.bl.test", "127.0.0.2"),
            // An operator error code never counts (RFC 5782 §2.3 range check).
            TestRecord::a("9.2.0.192.bl.test", "127.255.255.254"),
        ],
    )
    .await;
    let mut set = lab(&dns);
    set.dnsbl = vec![dnsbl("bl.test", HitAction::Score(2.0))];
    let m = msg("a@remote.test", "hello", "hi");
    let v = score(&scorer(set.clone()), "127.0.0.2", "", &m).await;
    assert!(
        v.tests.contains(&("DNSBL_bl.test".into(), 2.0)),
        "{:?}",
        v.tests
    );
    assert!(v.headers().contains("DNSBL_bl.test=2.0"));
    let v = score(&scorer(set.clone()), "192.0.2.9", "", &m).await;
    assert!(v.tests.iter().all(|(n, _)| !n.starts_with("DNSBL")));
    // guide §13.2: private and loopback ranges are whitelisted automatically.
    set.exempt_private_ranges = true;
    let v = score(&scorer(set.clone()), "127.0.0.2", "", &m).await;
    assert!(v.tests.iter().all(|(n, _)| !n.starts_with("DNSBL")));
    let v = score(&scorer(set.clone()), PUBLIC_IP, "", &m).await;
    assert!(v.tests.iter().any(|(n, _)| n.starts_with("DNSBL")));
    set.dnsbl = vec![dnsbl("bl.test", HitAction::Reject)];
    let v = score(&scorer(set), PUBLIC_IP, "", &m).await;
    assert!(
        matches!(v.action, Action::Reject(ref r) if r.code == 554),
        "{v:?}"
    );
}

#[tokio::test]
async fn uribl_hits_on_link_domains() {
    let dns = TestDns::start(
        "uri.test",
        vec![TestRecord::a("evil.example.uri.test", "127.0.0.2")],
    )
    .await;
    let mut set = lab(&dns);
    set.uribl = vec![dnsbl("uri.test", HitAction::Score(2.5))];
    let m = msg(
        "a@remote.test",
        "x",
        "see https://www.evil.example/offer?id=1 now",
    );
    let v = score(&scorer(set), PUBLIC_IP, "", &m).await;
    assert!(
        v.tests.contains(&("URIBL_uri.test".into(), 2.5)),
        "{:?}",
        v.tests
    );
}

async fn spf_dns() -> TestDns {
    TestDns::start_zones(vec![
        (
            "remote.test".into(),
            vec![
                TestRecord::txt("remote.test", "v=spf1 -all"),
                TestRecord::txt("client.remote.test", "v=spf1 +all"),
            ],
        ),
        (
            "ok.test".into(),
            vec![TestRecord::txt("ok.test", "v=spf1 ip4:192.0.2.0/24 -all")],
        ),
    ])
    .await
}

#[tokio::test]
async fn scenario_y17_spf_block_and_score() {
    let dns = spf_dns().await;
    let mut set = lab(&dns);
    set.spf.action = HitAction::Reject;
    let s = scorer(set.clone());
    let r = s
        .check_spf_at_mail(
            PUBLIC_IP.parse().unwrap(),
            "client.remote.test",
            "a@remote.test",
            false,
        )
        .await
        .unwrap_err();
    assert_eq!((r.code, r.enhanced), (550, "5.7.23"));
    // Trusted relays are not checked (guide §13.5).
    assert!(
        s.check_spf_at_mail(PUBLIC_IP.parse().unwrap(), "c", "a@remote.test", true)
            .await
            .is_ok()
    );
    let m = msg("a@remote.test", "hello", "hi");
    let v = score(&s, PUBLIC_IP, "a@remote.test", &m).await;
    assert!(
        matches!(v.action, Action::Reject(ref r) if r.code == 550),
        "{v:?}"
    );
    set.spf.action = HitAction::Score(3.0);
    let v = score(&scorer(set.clone()), PUBLIC_IP, "a@remote.test", &m).await;
    assert_eq!(v.action, Action::Accept);
    assert!(v.tests.contains(&("SPF_FAIL".into(), 3.0)));
    let h = v.headers();
    assert!(
        h.starts_with("Authentication-Results: mx.example.com;"),
        "{h}"
    );
    assert!(h.contains("spf=fail"), "{h}");
    assert!(h.contains("X-Spam-Status: No, score=3.0"), "{h}");
    let v = score(
        &scorer(set),
        PUBLIC_IP,
        "a@ok.test",
        &msg("a@ok.test", "s", "b"),
    )
    .await;
    assert!(v.headers().contains("spf=pass"), "{}", v.headers());
    assert!(v.tests.is_empty(), "{:?}", v.tests);
}

fn ensure_dkimpy() {
    let ok = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok("dkim") || !ok("dns.resolver") {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "dkimpy", "dnspython"])
            .status();
    }
    assert!(
        ok("dkim") && ok("dns.resolver"),
        "dkimpy/dnspython missing and `python3 -m pip install dkimpy dnspython` failed"
    );
}

/// Runs Python with the DNS server's port as argv[1]; returns stdout.
fn py(dns: &TestDns, script: &str, stdin: &[u8]) -> String {
    use std::io::Write;
    let preamble = r#"
import sys, dkim, dns.resolver
PORT = int(sys.argv[1])
R = dns.resolver.Resolver(configure=False)
R.nameservers = ['127.0.0.1']; R.port = PORT
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    try:
        a = R.resolve(name, 'TXT')
    except Exception:
        return None
    return b''.join(b''.join(r.strings) for r in a)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(format!("{preamble}\n{script}"))
        .arg(dns.addr().port().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn dkim_keel_signs_dkimpy_verifies_and_back() {
    ensure_dkimpy();
    let key = DkimKey::generate("example.com", "keel", DkimAlgorithm::Rsa, 0).unwrap();
    let (name, txt) = key.dns_record();
    assert_eq!(name, "keel._domainkey.example.com");
    assert!(txt.starts_with("v=DKIM1; k=rsa; p="));
    // dkimpy's own key, published next to ours.
    let dkimpy_key = {
        let d = tempfile::tempdir().unwrap();
        let out = Command::new("python3")
            .args([
                "-c",
                "import dkim.dknewkey as k, sys; k.GenRSAKeys(sys.argv[1]+'/k.key'); k.ExtractRSADnsPublicKey(sys.argv[1]+'/k.key', sys.argv[1]+'/k.dns')",
                d.path().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let private = std::fs::read_to_string(d.path().join("k.key")).unwrap();
        let dnsrec = std::fs::read_to_string(d.path().join("k.dns")).unwrap();
        (private, dnsrec.trim().to_owned())
    };
    // TXT strings are at most 255 bytes: split (RFC 6376 §3.6.2.2 concatenates them).
    let split = |s: &str| -> hickory_proto::rr::RData {
        let parts: Vec<String> = s
            .as_bytes()
            .chunks(200)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        hickory_proto::rr::RData::TXT(hickory_proto::rr::rdata::TXT::new(parts))
    };
    let dns = TestDns::start_zones(vec![
        (
            "example.com".into(),
            vec![
                TestRecord {
                    name: name.clone(),
                    data: split(&txt),
                },
                TestRecord {
                    name: "py._domainkey.example.com".into(),
                    data: split(&dkimpy_key.1),
                },
            ],
        ),
        ("com".into(), vec![]),
    ])
    .await;
    let m = msg(
        "Alice <alice@example.com>",
        "signed",
        "Hello  there.\r\n\r\n",
    );
    let sig = key.sign(m.as_bytes()).unwrap();
    assert!(
        sig.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
        "{sig}"
    );
    let signed = format!("{sig}{m}");
    // dkimpy verifies Keel's signature against the TXT record served by TestDns.
    let out = py(
        &dns,
        "print(dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc))",
        signed.as_bytes(),
    );
    assert_eq!(out, "True");
    // Keel verifies its own and dkimpy's signatures.
    let mut set = lab(&dns);
    set.spf.enabled = false;
    let v = score(
        &scorer(set.clone()),
        PUBLIC_IP,
        "alice@example.com",
        &signed,
    )
    .await;
    assert!(v.headers().contains("dkim=pass"), "{}", v.headers());
    let script = r#"
key = open(sys.argv[2], 'rb').read()
m = sys.stdin.buffer.read()
sys.stdout.write(dkim.sign(m, b'py', b'example.com', key, include_headers=[b'from', b'subject', b'to']).decode() + m.decode())
"#;
    let d = tempfile::tempdir().unwrap();
    let kp = d.path().join("py.key");
    std::fs::write(&kp, &dkimpy_key.0).unwrap();
    let signed_py = {
        use std::io::Write;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(format!("import sys, dkim\n{script}"))
            .arg(dns.addr().port().to_string())
            .arg(&kp)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap()
    };
    let v = score(
        &scorer(set.clone()),
        PUBLIC_IP,
        "alice@example.com",
        &signed_py,
    )
    .await;
    assert!(
        v.headers()
            .contains("dkim=pass header.i=@example.com header.s=py"),
        "{}",
        v.headers()
    );
    // A modified body fails and scores.
    let tampered = signed_py.replace("Hello", "Jello");
    let v = score(&scorer(set), PUBLIC_IP, "alice@example.com", &tampered).await;
    assert!(!v.headers().contains("dkim=pass"), "{}", v.headers());
    assert!(v.tests.iter().any(|(n, _)| n == "DKIM_INVALID"));
}

#[tokio::test]
async fn ed25519_keys_sign_and_verify() {
    let key = DkimKey::generate("example.com", "ed", DkimAlgorithm::Ed25519, 0).unwrap();
    let (name, txt) = key.dns_record();
    let dns = TestDns::start("example.com", vec![TestRecord::txt(&name, &txt)]).await;
    let m = msg("alice@example.com", "ed", "body");
    let signed = format!("{}{m}", key.sign(m.as_bytes()).unwrap());
    let mut set = lab(&dns);
    set.spf.enabled = false;
    let v = score(&scorer(set), PUBLIC_IP, "alice@example.com", &signed).await;
    assert!(v.headers().contains("dkim=pass"), "{}", v.headers());
}

#[tokio::test]
async fn dmarc_reject_policy_rejects_a_failing_message() {
    let dns = TestDns::start_zones(vec![
        (
            "dmarc.test".into(),
            vec![
                TestRecord::txt("dmarc.test", "v=spf1 -all"),
                TestRecord::txt("_dmarc.dmarc.test", "v=DMARC1; p=reject"),
            ],
        ),
        // The DMARCbis tree walk (mail-auth) asks the parents too: answer NXDOMAIN there.
        ("test".into(), vec![]),
    ])
    .await;
    let mut set = lab(&dns);
    set.spf.action = HitAction::None;
    let m = msg("ceo@dmarc.test", "wire money", "now");
    let v = score(&scorer(set.clone()), PUBLIC_IP, "ceo@dmarc.test", &m).await;
    assert!(
        matches!(v.action, Action::Reject(ref r) if r.code == 550),
        "{v:?}"
    );
    assert!(v.headers().contains("dmarc=fail"), "{}", v.headers());
    set.dmarc.honour_reject = false;
    let v = score(&scorer(set), PUBLIC_IP, "ceo@dmarc.test", &m).await;
    assert!(
        v.tests.contains(&("DMARC_QUARANTINE".into(), 3.0)),
        "{:?}",
        v.tests
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_messages_get_a_verdict() {
    let dns = empty_dns().await;
    let s = scorer(lab(&dns));
    // Deeply nested MIME.
    let mut nested = String::from("From: a@remote.test\r\nSubject: deep\r\n");
    for i in 0..5000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    nested.push_str("\r\nleaf\r\n");
    // A 1 MB header.
    let huge = format!(
        "From: a@remote.test\r\nX-Big: {}\r\nSubject: big\r\n\r\nbody\r\n",
        "x".repeat(1024 * 1024)
    );
    // Malformed boundaries and binary junk.
    let malformed = "From: a@remote.test\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\x00\x01\r\n\r\n--";
    let many_headers: String = (0..20000)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect::<String>()
        + "\r\nbody";
    for m in [
        nested,
        huge,
        malformed.to_owned(),
        many_headers,
        String::new(),
    ] {
        let v = score(&s, PUBLIC_IP, "a@remote.test", &m).await;
        assert!(v.rated);
        let _ = v.apply(m.as_bytes());
    }
}

#[tokio::test]
async fn keys_are_stored_per_domain_and_generated_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let meta = keel_store::sqlite::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
    assert!(
        keel_filter::load_dkim_key(&meta, "example.com")
            .unwrap()
            .is_none()
    );
    let k =
        keel_filter::dkim_key_for_signing(&meta, "Example.com", "keel", DkimAlgorithm::Ed25519, 5)
            .unwrap();
    let again =
        keel_filter::dkim_key_for_signing(&meta, "example.com", "other", DkimAlgorithm::Rsa, 6)
            .unwrap();
    assert_eq!(k, again);
    let rotated =
        keel_filter::generate_dkim_key(&meta, "example.com", "keel2", DkimAlgorithm::Rsa, 7)
            .unwrap();
    assert_eq!(
        keel_filter::load_dkim_key(&meta, "example.com").unwrap(),
        Some(rotated)
    );
    let s = SpamSettings {
        rules: y23_rules(),
        ..SpamSettings::default()
    };
    keel_filter::save_spam_settings(&meta, &s).unwrap();
    assert_eq!(keel_filter::load_spam_settings(&meta).unwrap(), s);
}
