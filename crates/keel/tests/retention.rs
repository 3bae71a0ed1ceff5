//! Deleted-item recovery (guide §7.4) and the Deleted Items / Junk E-mail clean-out
//! (guide §7.5) through the `keel` binary over real sockets, with Python's smtplib and
//! imaplib as the clients.

mod common;

use std::process::Command;

use common::*;

const ALICE: &str = "alice@example.com";

fn start() -> Server {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["user", "add", ALICE, "--password", "Alice-pass-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s
}

fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn yesterday() -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(1);
    t.format("%Y-%m-%d").to_string()
}

/// imaplib deletes and expunges a message; `keel user recover` puts it back into Deleted
/// Items, where imaplib finds it. With recovery off the command is refused, and 366 days
/// cannot be saved.
#[test]
fn imap_expunge_then_keel_user_recover() {
    let s = start();
    let out = s.keel(&["domain", "set", "example.com", "--recovery-days", "366"]);
    assert!(!out.status.success(), "366 days must be refused");
    assert!(
        stderr(&out).contains("at most 365 days"),
        "{}",
        stderr(&out)
    );

    // Recovery off (the default): refused, with the reason.
    let out = s.keel(&["user", "recover", ALICE, "--since", &yesterday()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("recovery is off"), "{}", stderr(&out));

    let out = s.keel(&["domain", "set", "example.com", "--recovery-days", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let delete = r#"
import imaplib, smtplib, sys
smtp, imap = int(sys.argv[1]), int(sys.argv[2])
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    for i in (1, 2):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: r{i}\r\n\r\nhello\r\n")
m = imaplib.IMAP4("127.0.0.1", imap)
m.login("alice", "Alice-pass-1")
typ, data = m.select("INBOX")
assert data[0] == b"2", data
typ, data = m.uid("SEARCH", None, "SUBJECT", "r1")
uid = data[0].split()[0]
m.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
typ, data = m.expunge()
assert data[0] is not None, data
typ, data = m.select('"Deleted Items"')
assert data[0] == b"0", data
m.logout()
print("deleted")
"#;
    let ports = vec![s.port("smtp").to_string(), s.port("imap").to_string()];
    assert!(python(delete, &ports).contains("deleted"));

    let out = s.keel(&["user", "recover", ALICE, "--since", &yesterday()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Recovered 1"), "{}", stdout(&out));

    let check = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[2]))
m.login("alice", "Alice-pass-1")
typ, data = m.select('"Deleted Items"')
assert data[0] == b"1", data
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"Subject: r1" in data[0][1], data
assert b"\\Deleted" not in data[0][0], data
typ, data = m.select("INBOX")
assert data[0] == b"1", data
m.logout()
print("recovered")
"#;
    assert!(python(check, &ports).contains("recovered"));

    // Recovering again finds nothing more.
    let out = s.keel(&["user", "recover", ALICE, "--since", &yesterday()]);
    assert!(stdout(&out).contains("Recovered 0"), "{}", stdout(&out));
}

/// An item that entered Junk E-mail long ago (backdated in the store) is deleted by
/// `keel cleanout run` while an imaplib session has the folder selected: its NOOP gets
/// the EXPUNGE. The young item stays; an empty subfolder of Junk E-mail goes.
#[test]
fn cleanout_removes_old_junk_and_a_selected_session_sees_expunge() {
    let s = start();
    let out = s.keel(&["domain", "set", "example.com", "--cleanout-junk-days", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = r#"
import imaplib, smtplib, sqlite3, subprocess, sys, time
smtp, imap, keel, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    c.sendmail("x@remote.test", ["alice@example.com"],
               "From: x@remote.test\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n")
m = imaplib.IMAP4("127.0.0.1", imap)
m.login("alice", "Alice-pass-1")
for subject in ("old junk", "new junk"):
    typ, _ = m.append('"Junk E-mail"', None, None,
                      f"From: s@spam.test\r\nSubject: {subject}\r\n\r\nbuy\r\n".encode())
    assert typ == "OK"
    time.sleep(1.1)
typ, _ = m.create('"Junk E-mail/Empty"')
assert typ == "OK"
# Make "old junk" look as if it entered the folder ten days ago.
db = sqlite3.connect(f"{data}/keel.db", timeout=10)
db.execute("""UPDATE messages SET added_at = added_at - 864000
              WHERE uid = 1 AND folder = (SELECT id FROM folders
                    WHERE account = 'alice@example.com' AND name = 'Junk E-mail')""")
db.commit()
db.close()
typ, data_ = m.select('"Junk E-mail"')
assert data_[0] == b"2", data_
out = subprocess.run([keel, "--data", data, "cleanout", "run"], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
assert "1 items deleted" in out.stdout, out.stdout
assert "1 empty subfolders deleted" in out.stdout, out.stdout
typ, _ = m.noop()
typ, expunged = m.response("EXPUNGE")
assert expunged == [b"1"], (expunged, m.untagged_responses)
typ, data_ = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"new junk" in data_[0][1], data_
typ, folders = m.list()
assert not any(b"Junk E-mail/Empty" in f for f in folders), folders
typ, data_ = m.select("INBOX")
assert data_[0] == b"1", data_
m.logout()
print("cleaned")
"#;
    let args = vec![
        s.port("smtp").to_string(),
        s.port("imap").to_string(),
        keel_bin().to_owned(),
        s.data.display().to_string(),
    ];
    assert!(python(script, &args).contains("cleaned"));
    let ops =
        std::fs::read_to_string(s.data.join("logs").join("operations.log")).unwrap_or_default();
    assert!(ops.contains("clean-out:"), "operations log: {ops}");
}
