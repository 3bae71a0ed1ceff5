//! Antivirus through clamd and the attachment filter in the SMTP session (issue 6,
//! guide ch. 14): a fake clamd in Python (stdlib socketserver speaking zINSTREAM and
//! flagging EICAR), the actions of guide §14.4, fail-closed 451 when the scanner is
//! down (requirements-2 §14.2), the EICAR check on save, and the attachment filter of
//! guide §14.5 with its predefined rules.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{TestServer, contains};
use keel_core::log::LogKind;
use keel_filter::antivirus::{AttachmentAction, VirusAction};
use keel_filter::{
    AntivirusSettings, ClamdScanner, EICAR, ScanResult, save_antivirus_settings,
    save_antivirus_settings_checked, validate_antivirus_settings,
};
use keel_smtp::SmtpSettings;

struct FakeClamd {
    child: Child,
    port: u16,
}

impl FakeClamd {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake_clamd.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().expect("port number");
        Self { child, port }
    }
    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeClamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

fn av(address: &str) -> AntivirusSettings {
    AntivirusSettings {
        enabled: true,
        address: address.to_owned(),
        timeout_secs: 5,
        ..AntivirusSettings::default()
    }
}

const SEND: &str = r#"
import base64
def send_raw(frm, rcpts, data):
    s = conn()
    try:
        s.sendmail(frm, rcpts, data)
        out('sent')
    except smtplib.SMTPResponseException as e:
        out('error', e.smtp_code)
    s.quit()
EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
def with_attachment(name, ctype, payload):
    b = base64.b64encode(payload.encode()).decode()
    return ('From: x@remote.test\r\nTo: alice@example.com\r\nSubject: files\r\n'
            'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
            '--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
            '--BB\r\nContent-Type: %s; name="%s"\r\nContent-Disposition: attachment; filename="%s"\r\n'
            'Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--BB--\r\n') % (ctype, name, name, b)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn clamd_client_ping_scan_and_eicar_validation() {
    let clamd = FakeClamd::start();
    let scanner = ClamdScanner::new(&clamd.address(), std::time::Duration::from_secs(5), 1 << 20);
    scanner.ping().await.unwrap();
    assert_eq!(scanner.scan(b"hello").await.unwrap(), ScanResult::Clean);
    // More than one INSTREAM chunk.
    let mut big = vec![b'a'; 200_000];
    big.extend_from_slice(EICAR.as_bytes());
    assert_eq!(
        scanner.scan(&big).await.unwrap(),
        ScanResult::Infected("Eicar-Signature".into())
    );
    assert!(matches!(
        scanner.scan(&vec![0u8; (1 << 20) + 1]).await.unwrap(),
        ScanResult::Unscannable(_)
    ));
    // requirements-2 §14.2: settings are refused while the scanner fails EICAR.
    assert!(
        validate_antivirus_settings(&av(&clamd.address()))
            .await
            .is_ok()
    );
    let dead = av(&dead_address());
    assert!(validate_antivirus_settings(&dead).await.is_err());
    let dir = tempfile::tempdir().unwrap();
    let meta = keel_store::sqlite::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
    assert!(save_antivirus_settings_checked(&meta, &dead).await.is_err());
    assert_eq!(
        keel_filter::load_antivirus_settings(&meta).unwrap(),
        AntivirusSettings::default()
    );
    save_antivirus_settings_checked(&meta, &av(&clamd.address()))
        .await
        .unwrap();
    assert!(keel_filter::load_antivirus_settings(&meta).unwrap().enabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_virus_removed_discarded_and_scanner_down_is_451() {
    let clamd = FakeClamd::start();
    let t = TestServer::start(SmtpSettings::default()).await;
    let mut s = AntivirusSettings {
        on_virus: VirusAction::RemoveAttachment,
        ..av(&clamd.address())
    };
    save_antivirus_settings(&*t.meta, &s).unwrap();
    // guide §14.6 statistics: counted (other tests of this binary may add to the totals).
    let counter = |k: &str| keel_core::stats::global().lifetime()[k];
    let viruses_before = counter("viruses_found");
    let checked_before = counter("av_messages_checked");
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], with_attachment('a.com', 'application/octet-stream', EICAR))\n\
send_raw('x@remote.test', ['alice@example.com'], with_attachment('ok.txt', 'text/plain', 'harmless'))"
        ))
        .await;
    assert_eq!(out, ["sent", "sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 2);
    assert!(contains(&inbox[0], "see attached"));
    assert!(contains(
        &inbox[0],
        "was removed: it contained the virus Eicar-Signature"
    ));
    assert!(!contains(&inbox[0], "filename=\"a.com\""));
    assert!(contains(&inbox[1], "filename=\"ok.txt\""));
    let security = t.log(LogKind::Security);
    assert!(
        security.contains(
            "Found virus in mail from <x@remote.test> to <alice@example.com>: Eicar-Signature"
        ),
        "{security}"
    );

    // Discard: refused at DATA, nothing delivered.
    s.on_virus = VirusAction::Discard;
    save_antivirus_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], with_attachment('b.com', 'application/octet-stream', EICAR))"
        ))
        .await;
    assert_eq!(out, ["error 554"]);
    assert_eq!(t.inbox("alice@example.com").await.len(), 2);
    assert!(
        counter("viruses_found") >= viruses_before + 2,
        "two viruses counted"
    );
    assert!(counter("av_messages_checked") >= checked_before + 3);

    // Encrypted: delivered with a warning (guide §14.4 default).
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], with_attachment('c.zip', 'application/zip', 'KEEL-ENCRYPTED-TEST'))"
        ))
        .await;
    assert_eq!(out, ["sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert!(contains(
        &inbox[2],
        "X-Keel-Antivirus: not scanned (Heuristics.Encrypted.Zip)"
    ));

    // Scanner down: 451 4.3.0 and an Error-log line; never delivered unscanned.
    s.address = dead_address();
    save_antivirus_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], with_attachment('ok.txt', 'text/plain', 'harmless'))"
        ))
        .await;
    assert_eq!(out, ["error 451"]);
    assert_eq!(t.inbox("alice@example.com").await.len(), 3);
    let errors = t.log(LogKind::Error);
    assert!(
        errors.contains(
            "Antivirus control is not functional, message from <x@remote.test> not accepted"
        ),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_attachment_filter_removes_blocked_files() {
    let t = TestServer::start(SmtpSettings::default()).await;
    let mut s = AntivirusSettings::default();
    // Predefined rules are present but disabled: nothing is removed.
    s.attachments.enabled = true;
    save_antivirus_settings(&*t.meta, &s).unwrap();
    let send = format!(
        "{SEND}\nsend_raw('x@remote.test', ['alice@example.com'], with_attachment('Setup.EXE', 'application/octet-stream', 'MZ...'))"
    );
    assert_eq!(t.py(&send).await, ["sent"]);
    assert!(contains(
        &t.inbox("alice@example.com").await[0],
        "Setup.EXE\"\r\nContent-Transfer"
    ));
    // Enable the *.exe rule: the attachment is replaced with a note.
    for r in &mut s.attachments.rules {
        if r.pattern == "*.exe" {
            r.enabled = true;
            assert_eq!(r.action, AttachmentAction::Block);
        }
    }
    save_antivirus_settings(&*t.meta, &s).unwrap();
    assert_eq!(t.py(&send).await, ["sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert!(contains(
        &inbox[1],
        "The attachment \"Setup.EXE\" (application/octet-stream) was removed"
    ));
    assert!(contains(&inbox[1], "see attached"));
    let security = t.log(LogKind::Security);
    assert!(security.contains("Setup.EXE"), "{security}");
}

/// requirements-2 §14 scenario 2 "Virus, strip and notify": with "deliver with the
/// attachment removed" and "forward the original to" an administrator address, the
/// recipient gets the message without the EICAR part, the administrator gets the
/// original byte for byte, and a local sender is told; a remote sender is not (no
/// backscatter, guide §14.4).
#[tokio::test(flavor = "multi_thread")]
async fn scenario_virus_strip_and_notify() {
    let clamd = FakeClamd::start();
    let t = TestServer::start(SmtpSettings::default()).await;
    for u in ["av@example.com", "bob@example.com"] {
        t.directory
            .add_user(keel_directory::NewUser::new(u, common::PASSWORD))
            .unwrap();
    }
    let s = AntivirusSettings {
        on_virus: VirusAction::RemoveAttachment,
        forward_original: Some("av@example.com".into()),
        notify_sender: true,
        ..av(&clamd.address())
    };
    save_antivirus_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('bob@example.com', ['alice@example.com'], with_attachment('a.com', 'application/octet-stream', EICAR))\n\
send_raw('x@remote.test', ['alice@example.com'], with_attachment('b.com', 'application/octet-stream', EICAR))"
        ))
        .await;
    assert_eq!(out, ["sent", "sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 2);
    for m in &inbox {
        assert!(contains(m, "see attached"));
        assert!(contains(m, "it contained the virus Eicar-Signature"));
        assert!(!contains(m, "filename=\"a.com\"") && !contains(m, "filename=\"b.com\""));
    }
    // The administrator's copies are the originals, still infected.
    let copies = t.inbox("av@example.com").await;
    assert_eq!(copies.len(), 2, "one original per infected message");
    assert!(contains(&copies[0], "filename=\"a.com\""));
    let eicar_b64 = "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=";
    assert!(
        contains(&copies[0], eicar_b64),
        "the infected part is unchanged"
    );
    // The local sender is told; nobody writes to the remote one.
    let notes = t.inbox("bob@example.com").await;
    assert_eq!(notes.len(), 1);
    assert!(contains(
        &notes[0],
        "Your message to alice@example.com was filtered"
    ));
    assert!(contains(&notes[0], "It was delivered without these parts."));
}

/// requirements-2 §14 scenario 4, the rest: a MIME-type rule catches a part by its type
/// whatever its name, an earlier "accept" rule lets `trusted.exe` through, and with "send
/// a warning to the sender" a local sender is told.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_attachment_filter_mime_rule_accept_rule_and_sender_warning() {
    use keel_filter::antivirus::{AttachmentMatch, AttachmentRule};
    let t = TestServer::start(SmtpSettings::default()).await;
    t.directory
        .add_user(keel_directory::NewUser::new(
            "bob@example.com",
            common::PASSWORD,
        ))
        .unwrap();
    let rule = |kind, pattern: &str, action| AttachmentRule {
        enabled: true,
        description: String::new(),
        kind,
        pattern: pattern.into(),
        action,
    };
    let mut s = AntivirusSettings::default();
    s.attachments.enabled = true;
    s.attachments.warn_sender = true;
    s.attachments.rules = vec![
        rule(
            AttachmentMatch::FileName,
            "trusted.exe",
            AttachmentAction::Accept,
        ),
        rule(AttachmentMatch::FileName, "*.exe", AttachmentAction::Block),
        rule(
            AttachmentMatch::MimeType,
            "application/x-msdownload",
            AttachmentAction::Block,
        ),
    ];
    save_antivirus_settings(&*t.meta, &s).unwrap();
    let out = t
        .py(&format!(
            "{SEND}\nsend_raw('bob@example.com', ['alice@example.com'], with_attachment('report.pdf', 'application/x-msdownload', 'MZ...'))\n\
send_raw('bob@example.com', ['alice@example.com'], with_attachment('trusted.exe', 'application/octet-stream', 'MZ...'))\n\
send_raw('bob@example.com', ['alice@example.com'], with_attachment('a.txt', 'text/plain', 'plain text'))"
        ))
        .await;
    assert_eq!(out, ["sent", "sent", "sent"]);
    let inbox = t.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 3);
    assert!(contains(
        &inbox[0],
        "The attachment \"report.pdf\" (application/x-msdownload) was removed"
    ));
    assert!(
        contains(&inbox[1], "filename=\"trusted.exe\""),
        "accepted first"
    );
    assert!(contains(&inbox[2], "filename=\"a.txt\""));
    let notes = t.inbox("bob@example.com").await;
    assert_eq!(notes.len(), 1, "one warning, for the blocked part only");
    assert!(contains(&notes[0], "attachment \"report.pdf\""));
}
