//! Tests of [`Logs`] against real files in a temporary directory.

use std::fs;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use chrono::{Local, TimeZone};

use super::*;
use crate::clock::ManualClock;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// Unix time of a local wall-clock time.
fn local_unix(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Local
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .earliest()
        .expect("local time")
        .timestamp()
}

fn open(dir: &Path, settings: LogSettings, clock: &ManualClock) -> Logs {
    Logs::open_with_clock(dir, settings, Arc::new(clock.clone())).expect("open logs")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn lines(logs: &Logs, kind: LogKind) -> Vec<String> {
    read(&logs.path(kind)).lines().map(str::to_owned).collect()
}

/// requirements-2 acceptance: `^\[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] `.
fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() > 23
        && b[0] == b'['
        && digit(1)
        && digit(2)
        && b[3] == b'/'
        && b[4].is_ascii_uppercase()
        && b[5].is_ascii_lowercase()
        && b[6].is_ascii_lowercase()
        && b[7] == b'/'
        && (8..12).all(digit)
        && b[12] == b' '
        && digit(13)
        && digit(14)
        && b[15] == b':'
        && digit(16)
        && digit(17)
        && b[18] == b':'
        && digit(19)
        && digit(20)
        && &b[21..23] == b"] "
}

fn body(line: &str) -> &str {
    assert!(has_timestamp(line), "no timestamp: {line:?}");
    &line[23..]
}

#[test]
fn logs_is_send_sync_and_cheap_to_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Logs>();
}

#[test]
fn open_creates_directory_and_files_lazily() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data/logs");
    let logs = Logs::open(&dir, LogSettings::default()).expect("open");
    assert!(dir.is_dir());
    assert_eq!(logs.dir(), dir);
    assert!(!logs.path(LogKind::Mail).exists());
    logs.write(LogKind::Mail, "hello");
    assert!(dir.join("mail.log").exists());
}

#[test]
fn open_fails_when_directory_cannot_be_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocker = tmp.path().join("file");
    fs::write(&blocker, "x").expect("write");
    let err = Logs::open(&blocker.join("logs"), LogSettings::default()).expect_err("must fail");
    assert!(matches!(err, LogError::CreateDir { .. }), "{err}");
}

#[test]
fn timestamp_is_local_time_in_guide_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(local_unix(2026, 11, 28, 19, 24, 22));
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    logs.warning("User jdoe@company.com does not exist");
    assert_eq!(
        lines(&logs, LogKind::Warning),
        ["[28/Nov/2026 19:24:22] User jdoe@company.com does not exist"]
    );
}

#[test]
fn each_log_gets_its_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(local_unix(2005, 11, 30, 17, 57, 14));
    let logs = open(tmp.path(), LogSettings::default(), &clock);

    logs.config_session_opened("Admin", ip("127.0.0.1"));
    logs.config(
        "Admin",
        "insert User set Name='tjones', Password='hunter2', Rights='1'",
    );
    logs.config(
        "admin@example.com",
        "user add alice@example.com quota=500MB --password hunter2",
    );
    logs.config_session_closed("Admin", ip("127.0.0.1"));
    logs.config_login_failed("root", ip("10.0.0.1"));
    let config: Vec<String> = lines(&logs, LogKind::Config)
        .iter()
        .map(|l| body(l).to_owned())
        .collect();
    assert_eq!(
        config,
        [
            "Admin - session opened for host 127.0.0.1",
            "Admin - insert User set Name='tjones', Password=xxxxxx, Rights='1'",
            "admin@example.com - user add alice@example.com quota=500MB --password xxxxxx",
            "Admin - session closed for host 127.0.0.1",
            "root - login failed for host 10.0.0.1",
        ]
    );

    let to = vec!["jwayne@company.com".to_owned()];
    logs.mail(
        &MailLogEntry::recv(
            "438dd9ea-00000000",
            MailService::Smtp,
            "jwayne@company.com",
            to.clone(),
            1229,
        )
        .user("jwayne@company.com")
        .sender_host(ip("195.39.55.2"))
        .ssl(true),
    );
    logs.mail(&MailLogEntry::sent(
        "438dd9ea-00000000",
        "wsmith@company.com",
        DeliveryResult::Delivered,
        "2.0.0",
    ));
    assert_eq!(
        lines(&logs, LogKind::Mail),
        [
            "[30/Nov/2005 17:57:14] Recv: Queue-ID: 438dd9ea-00000000, Service: SMTP, From: <jwayne@company.com>, To: <jwayne@company.com>, Size: 1229, User: jwayne@company.com, Sender-Host: 195.39.55.2, SSL: yes",
            "[30/Nov/2005 17:57:14] Sent: Queue-ID: 438dd9ea-00000000, Recipient: <wsmith@company.com>, Result: delivered, Status: 2.0.0",
        ]
    );

    logs.security(&SecurityEvent::FailedLogin {
        protocol: "IMAP",
        ip: ip("192.168.36.139"),
        reason: AuthFailure::MissingParameter,
    });
    logs.security(&SecurityEvent::AccountLocked {
        user: "jwayne@company.com",
        ip: ip("10.0.0.9"),
        failures: 5,
    });
    logs.security(&SecurityEvent::RelayAttempt {
        ip: ip("61.216.46.197"),
        from: "wgiwknovry@hotmail.com",
        to: "fodder@falls.igs.net",
    });
    logs.security(&SecurityEvent::LimitExceeded {
        ip: ip("127.0.0.1"),
        limit: SecurityLimit::FailedCommands(3),
    });
    let security: Vec<String> = lines(&logs, LogKind::Security)
        .iter()
        .map(|l| body(l).to_owned())
        .collect();
    assert_eq!(
        security,
        [
            "Failed IMAP login from 192.168.36.139, missing parameter in AUTHENTICATE header",
            "Account jwayne@company.com locked after 5 failed logins from 10.0.0.9",
            "Relay attempt from IP address 61.216.46.197, mail from <wgiwknovry@hotmail.com> to <fodder@falls.igs.net> rejected",
            "Limit of 3 failed commands from IP address 127.0.0.1 exceeded",
        ]
    );

    logs.operations(&OperationsEvent::DeleteFolder {
        folder: "~jpalmer@company.com/Deleted Items/Work",
    });
    assert_eq!(
        lines(&logs, LogKind::Operations),
        [
            "[30/Nov/2005 17:57:14] {DELETE_FOLDER} Folder: ~jpalmer@company.com/Deleted Items/Work deleted"
        ]
    );

    logs.error("antivirus control is not functional");
    logs.error("cannot bind ldap://cn=admin:hunter2@dir.example");
    assert_eq!(
        lines(&logs, LogKind::Error),
        [
            "[30/Nov/2005 17:57:14] antivirus control is not functional",
            "[30/Nov/2005 17:57:14] cannot bind ldap://cn=admin:xxxxxx@dir.example",
        ]
    );

    logs.warning("remote POP3 server pop.example.com is unavailable");
    assert_eq!(
        lines(&logs, LogKind::Warning),
        ["[30/Nov/2005 17:57:14] remote POP3 server pop.example.com is unavailable"]
    );

    logs.spam(&SpamEvent::FilterMarked {
        score: 8.0,
        to: "jwayne@company.com",
        size: 342,
        from: "wsmith@company.com",
        subject: "",
    });
    assert_eq!(
        lines(&logs, LogKind::Spam),
        [
            "[30/Nov/2005 17:57:14] Message marked as spam with score: 8.00, To: jwayne@company.com, Message size: 342, From: wsmith@company.com, Subject:"
        ]
    );

    logs.write(
        LogKind::Debug,
        "Kerio-style start: SMTP server listening on 0.0.0.0:25",
    );
    assert_eq!(
        lines(&logs, LogKind::Debug),
        ["[30/Nov/2005 17:57:14] Kerio-style start: SMTP server listening on 0.0.0.0:25"]
    );

    // Nothing anywhere holds the clear-text password.
    for k in LogKind::ALL {
        assert!(
            !read(&logs.path(k)).contains("hunter2"),
            "{k} leaks a password"
        );
    }
}

#[test]
fn entry_with_line_breaks_stays_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    logs.write(
        LogKind::Warning,
        "first\r\n[01/Jan/2001 00:00:00] forged\nthird",
    );
    let l = lines(&logs, LogKind::Warning);
    assert_eq!(l.len(), 1);
    assert!(
        l[0].ends_with("] first [01/Jan/2001 00:00:00] forged third"),
        "{l:?}"
    );
}

#[test]
fn masking_in_config_log_covers_every_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    let actions = [
        "user set alice --password s3cr3t-1",
        "user set alice --password=s3cr3t-2",
        "user set alice password=s3cr3t-3 quota=1",
        r#"PUT /api/users/alice {"name":"alice","password":"s3cr3t-4"}"#,
        r#"{"secret": "s3cr3t-5"}"#,
        "ldap set bind secret=s3cr3t-6",
        "relay set pass=s3cr3t-7",
        "relay set --pass s3cr3t-8",
        "update User set Password='s3cr3t-9'",
    ];
    for a in actions {
        logs.config("Admin", a);
    }
    let text = read(&logs.path(LogKind::Config));
    assert!(!text.contains("s3cr3t"), "{text}");
    assert_eq!(text.matches(SECRET_MASK).count(), actions.len(), "{text}");
    assert!(
        text.contains(r#"{"name":"alice","password":"xxxxxx"}"#),
        "{text}"
    );
}

#[test]
fn size_rotation_keeps_exactly_n_files_newest_live() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(local_unix(2026, 3, 1, 12, 0, 0));
    let mut settings = LogSettings::default();
    settings.mail.max_size = 200;
    settings.mail.keep = 3;
    let logs = open(tmp.path(), settings, &clock);
    // Each line is 23 + 17 + 1 = 41 bytes, so 4 lines fit in 200 bytes.
    for i in 0..100 {
        logs.write(LogKind::Mail, &format!("message number {i:02}"));
    }
    let dir = tmp.path();
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["mail.log", "mail.log.1", "mail.log.2", "mail.log.3"]
    );
    for n in &names {
        let len = fs::metadata(dir.join(n)).expect("metadata").len();
        assert!(len <= 200, "{n} is {len} bytes");
    }
    let live = lines(&logs, LogKind::Mail);
    assert!(
        live.last().expect("line").ends_with("message number 99"),
        "{live:?}"
    );
    // Oldest to newest across the files: consecutive numbers ending at 99.
    let all: Vec<String> = ["mail.log.3", "mail.log.2", "mail.log.1", "mail.log"]
        .iter()
        .flat_map(|n| {
            read(&dir.join(n))
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(all.len(), 16);
    for (line, i) in all.iter().zip(84..) {
        assert_eq!(body(line), format!("message number {i:02}"));
    }

    // Lowering the count at run time drops the surplus at the next rotation.
    let mut s = logs.settings();
    s.mail.keep = 1;
    logs.set_settings(s);
    for i in 0..5 {
        logs.write(LogKind::Mail, &format!("message number {i:02}"));
    }
    assert!(dir.join("mail.log.1").exists());
    assert!(!dir.join("mail.log.2").exists());
    assert!(!dir.join("mail.log.3").exists());

    // keep = 0: a rotation just starts the live file afresh.
    let mut s = logs.settings();
    s.mail.keep = 0;
    logs.set_settings(s);
    for i in 0..5 {
        logs.write(LogKind::Mail, &format!("message number {i:02}"));
    }
    assert!(!dir.join("mail.log.1").exists());
    let live = lines(&logs, LogKind::Mail);
    assert!(live.len() <= 4, "{live:?}");
    assert!(
        live.last().expect("line").ends_with("message number 04"),
        "{live:?}"
    );
}

#[test]
fn time_rotation_across_a_day_boundary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(local_unix(2026, 11, 28, 23, 59, 0));
    let mut settings = LogSettings::default();
    settings.security.rotation = Rotation::Daily;
    let logs = open(tmp.path(), settings.clone(), &clock);
    logs.write(LogKind::Security, "before midnight");
    clock.advance(Duration::from_secs(30));
    logs.write(LogKind::Security, "still the same day");
    assert!(!tmp.path().join("security.log.1").exists());
    clock.advance(Duration::from_secs(60));
    logs.write(LogKind::Security, "after midnight");
    let old = read(&tmp.path().join("security.log.1"));
    assert_eq!(
        old,
        "[28/Nov/2026 23:59:00] before midnight\n[28/Nov/2026 23:59:30] still the same day\n"
    );
    assert_eq!(
        lines(&logs, LogKind::Security),
        ["[29/Nov/2026 00:00:30] after midnight"]
    );

    // A restart on a later day rotates the file left over from before, at its first write:
    // the period start is read back from the file's first entry.
    drop(logs);
    clock.advance(Duration::from_secs(86_400));
    let logs = open(tmp.path(), settings, &clock);
    logs.write(LogKind::Security, "next day after restart");
    assert_eq!(
        read(&tmp.path().join("security.log.1")),
        "[29/Nov/2026 00:00:30] after midnight\n"
    );
    assert_eq!(read(&tmp.path().join("security.log.2")), old);
    assert_eq!(
        lines(&logs, LogKind::Security),
        ["[30/Nov/2026 00:00:30] next day after restart"]
    );
}

#[test]
fn hourly_rotation_and_never() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(local_unix(2026, 6, 1, 10, 30, 0));
    let mut settings = LogSettings::default();
    settings.mail.rotation = Rotation::Hourly;
    let logs = open(tmp.path(), settings, &clock);
    for _ in 0..3 {
        logs.write(LogKind::Mail, "tick");
        logs.write(LogKind::Spam, "tick");
        clock.advance(Duration::from_secs(3600));
    }
    assert!(tmp.path().join("mail.log.2").exists());
    assert!(!tmp.path().join("mail.log.3").exists());
    assert!(!tmp.path().join("spam.log.1").exists(), "rotation Never");
    assert_eq!(lines(&logs, LogKind::Spam).len(), 3);
}

#[test]
fn debug_categories_toggle_at_run_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    assert!(!logs.debug_enabled(DebugCategory::SmtpServer));
    logs.debug(DebugCategory::SmtpServer, "EHLO client.example");
    assert!(lines(&logs, LogKind::Debug).is_empty());

    logs.set_debug_category(DebugCategory::SmtpServer, true);
    assert!(logs.debug_enabled(DebugCategory::SmtpServer));
    assert!(!logs.debug_enabled(DebugCategory::ImapServer));
    assert!(
        logs.settings()
            .debug_categories
            .contains(&DebugCategory::SmtpServer)
    );
    logs.debug(DebugCategory::SmtpServer, "EHLO client.example");
    logs.debug(DebugCategory::ImapServer, "A1 LOGIN alice pw");
    logs.debug(DebugCategory::SmtpServer, "AUTH with password=hunter2");
    let l = lines(&logs, LogKind::Debug);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(body(&l[0]), "{smtp-server} EHLO client.example");
    assert_eq!(body(&l[1]), "{smtp-server} AUTH with password=xxxxxx");

    logs.set_debug_category(DebugCategory::SmtpServer, false);
    assert!(!logs.debug_enabled(DebugCategory::SmtpServer));
    logs.debug(DebugCategory::SmtpServer, "QUIT");
    assert_eq!(lines(&logs, LogKind::Debug).len(), 2);

    // Through whole settings, too; a disabled Debug log reports every category as off.
    let mut s = LogSettings::default();
    s.debug_categories.insert(DebugCategory::Dns);
    logs.set_settings(s.clone());
    assert!(logs.debug_enabled(DebugCategory::Dns));
    s.debug.enabled = false;
    logs.set_settings(s);
    assert!(!logs.debug_enabled(DebugCategory::Dns));
    logs.debug(DebugCategory::Dns, "MX lookup");
    assert_eq!(lines(&logs, LogKind::Debug).len(), 2);
}

#[test]
fn disabled_log_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let mut settings = LogSettings::default();
    settings.mail.enabled = false;
    let logs = open(tmp.path(), settings, &clock);
    logs.mail(&MailLogEntry::sent(
        "1-2",
        "a@x",
        DeliveryResult::Failed,
        "5.1.1",
    ));
    logs.write(LogKind::Mail, "raw");
    assert!(!logs.path(LogKind::Mail).exists());

    // Disabling at run time stops writes to an open file.
    logs.write(LogKind::Error, "one");
    let mut s = logs.settings();
    s.error.enabled = false;
    logs.set_settings(s);
    logs.write(LogKind::Error, "two");
    assert_eq!(lines(&logs, LogKind::Error).len(), 1);
}

#[test]
fn clear_empties_the_live_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    logs.clear(LogKind::Spam)
        .expect("clear of a missing file is fine");
    logs.write(LogKind::Spam, "one");
    logs.clear(LogKind::Spam).expect("clear");
    assert_eq!(read(&logs.path(LogKind::Spam)), "");
    logs.write(LogKind::Spam, "two");
    assert_eq!(lines(&logs, LogKind::Spam).len(), 1);
}

#[test]
fn io_errors_are_swallowed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let logs = open(tmp.path(), LogSettings::default(), &clock);
    // A directory where the file should be: opening fails on every write.
    fs::create_dir(logs.path(LogKind::Error)).expect("mkdir");
    logs.error("first");
    logs.error("second");
    // The log directory vanishing does not panic either.
    drop(tmp);
    logs.warning("into the void");
    logs.write(LogKind::Mail, "into the void");
}

#[test]
fn concurrent_writers_do_not_interleave() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let mut settings = LogSettings::default();
    settings.mail.max_size = 16 * 1024;
    settings.mail.keep = 1000;
    let logs = open(tmp.path(), settings, &clock);
    const THREADS: usize = 8;
    const PER: usize = 500;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let pad = "x".repeat(40 + t * 7);
                for i in 0..PER {
                    logs.write(LogKind::Mail, &format!("thread {t} line {i} {pad} end"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let mut seen = vec![0usize; THREADS];
    let mut count = 0;
    // Oldest file first: mail.log.N … mail.log.1, then mail.log.
    let rotated = fs::read_dir(tmp.path()).expect("read dir").count() - 1;
    assert!(
        rotated >= 10,
        "rotation happened under contention: {rotated}"
    );
    let files = (1..=rotated)
        .rev()
        .map(|n| tmp.path().join(format!("mail.log.{n}")))
        .chain([logs.path(LogKind::Mail)]);
    for path in files {
        let text = read(&path);
        assert!(text.ends_with('\n'), "{}", path.display());
        for line in text.lines() {
            let b = body(line);
            let parts: Vec<&str> = b.split(' ').collect();
            assert_eq!(parts.len(), 6, "{line:?}");
            let t: usize = parts[1].parse().expect("thread");
            let i: usize = parts[3].parse().expect("line");
            assert_eq!(parts[4].len(), 40 + t * 7, "{line:?}");
            assert_eq!(parts[5], "end");
            // Each thread's lines appear in its own order, none lost or repeated.
            assert_eq!(i, seen[t], "{line:?}");
            seen[t] += 1;
            count += 1;
        }
    }
    assert_eq!(count, THREADS * PER);
    assert!(seen.iter().all(|&n| n == PER), "{seen:?}");
}

#[test]
fn syslog_to_a_unix_socket() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock_path = tmp.path().join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let clock = ManualClock::at(1_000_000_000);
    let mut settings = LogSettings::default();
    settings.security.enabled = false;
    settings.security.syslog = SyslogSettings {
        enabled: true,
        facility: SyslogFacility::Auth,
        severity: None,
        server: Some(format!("unix:{}", sock_path.display())),
    };
    let logs = open(&tmp.path().join("logs"), settings, &clock);
    logs.security(&SecurityEvent::DirectoryHarvest {
        ip: ip("213.7.0.87"),
    });
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("datagram");
    // auth (4) * 8 + notice (5) = 37.
    assert_eq!(
        &buf[..n],
        b"<37>keel: Directory harvest attack from 213.7.0.87 detected"
    );
    assert!(
        !logs.path(LogKind::Security).exists(),
        "file logging is off"
    );
}

#[test]
fn syslog_over_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = server.local_addr().expect("addr").port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let mut settings = LogSettings::default();
    settings.error.syslog = SyslogSettings {
        enabled: true,
        facility: SyslogFacility::Local0,
        severity: Some(SyslogSeverity::Critical),
        server: Some(format!("127.0.0.1:{port}")),
    };
    let logs = open(tmp.path(), settings, &clock);
    logs.error("disk full");
    let mut buf = [0u8; 512];
    let n = server.recv(&mut buf).expect("datagram");
    // local0 (16) * 8 + crit (2) = 130.
    assert_eq!(&buf[..n], b"<130>keel: disk full");
    assert_eq!(
        lines(&logs, LogKind::Error).len(),
        1,
        "file and syslog combine"
    );
}

#[test]
fn syslog_without_a_daemon_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(1_000_000_000);
    let mut settings = LogSettings::default();
    settings.warning.syslog.enabled = true; // /dev/log, which may not exist here
    settings.spam.syslog.enabled = true;
    settings.spam.syslog.server = Some(format!("unix:{}", tmp.path().join("none").display()));
    let logs = open(tmp.path(), settings, &clock);
    logs.warning("no daemon");
    logs.spam(&SpamEvent::FilterMarked {
        score: 1.0,
        to: "a",
        size: 1,
        from: "b",
        subject: "c",
    });
    assert_eq!(lines(&logs, LogKind::Warning).len(), 1);
    assert_eq!(lines(&logs, LogKind::Spam).len(), 1);
}
