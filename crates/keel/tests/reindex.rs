//! `keel reindex USER[/FOLDER]` over real sockets (requirements-3 §5.4: the per-folder
//! index is derived data rebuilt online, keeping UIDVALIDITY, UIDs and flags): smtplib
//! delivers, imaplib sets flags, sqlite3 breaks sizes and counters in the running server's
//! database, `keel reindex` runs while an imaplib session has the folder selected, and
//! imaplib's STATUS and FETCH show the right values with the same UIDVALIDITY, UIDs and
//! flags. A message whose file is missing is kept and reported.

mod common;

use std::process::Command;

use common::*;

const ALICE: &str = "alice@example.com";

#[test]
fn keel_reindex_repairs_a_broken_mailbox_while_imap_sessions_run() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["user", "add", ALICE, "--password", "Alice-pass-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = r#"
import imaplib, json, re, smtplib, sqlite3, subprocess, sys
smtp, imap, keel, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    for i in (1, 2, 3):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: m{i}\r\n\r\n"
                   + "body line\r\n" * (10 * i))

def login():
    m = imaplib.IMAP4("127.0.0.1", imap)
    m.login("alice", "Alice-pass-1")
    return m

def status(m):
    typ, d = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
    assert typ == "OK", d
    return {k.decode(): int(v) for k, v in re.findall(rb"([A-Z]+) (\d+)", d[0])}

def rows(m):
    typ, d = m.fetch("1:*", "(UID FLAGS RFC822.SIZE)")
    assert typ == "OK", d
    out = {}
    for line in d:
        uid = int(re.search(rb"UID (\d+)", line).group(1))
        flags = sorted(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).split())
        size = int(re.search(rb"RFC822.SIZE (\d+)", line).group(1))
        out[uid] = (flags, size)
    return out

def keel_cmd(*args):
    return subprocess.run([keel, "--data", data, *args], capture_output=True, text=True)

watcher = login()
# With CONDSTORE (RFC 7162 §3.2.4) a session hears of every modseq change of its messages,
# not only of flag changes (RFC822.SIZE is immutable to IMAP clients).
typ, d = watcher.enable("CONDSTORE")
assert typ == "OK", d
typ, d = watcher.select("INBOX")
assert d[0] == b"3", d
watcher.uid("STORE", "1", "+FLAGS", r"(\Seen \Flagged)")
watcher.uid("STORE", "2", "+FLAGS", "($Work)")
good = rows(watcher)
good_status = status(login())
assert good_status["MESSAGES"] == 3 and good_status["UNSEEN"] == 2, good_status

# Break the derived data in the running server's database.
db = sqlite3.connect(f"{data}/keel.db", timeout=10)
db.executescript("""
UPDATE messages SET size = 7 WHERE uid = 2 AND folder =
    (SELECT id FROM folders WHERE account = 'alice@example.com' AND name = 'INBOX');
UPDATE folders SET messages = 9, unseen = 0, uid_next = 2
    WHERE account = 'alice@example.com' AND name = 'INBOX';
UPDATE account_state SET bytes = 1, messages = 50 WHERE account = 'alice@example.com';
""")
db.close()
other = login()
broken = status(other)
assert (broken["MESSAGES"], broken["UNSEEN"], broken["UIDNEXT"]) == (9, 0, 2), broken
other.logout()
shown = json.loads(keel_cmd("user", "show", "alice@example.com", "--format", "json").stdout)
assert shown["usage"] == {"bytes": 1, "messages": 50}, shown["usage"]

# Online reindex, the watcher session still selected.
out = keel_cmd("reindex", "alice@example.com")
assert out.returncode == 0, out.stderr
assert "INBOX (UIDVALIDITY %d): 1 size(s) fixed" % good_status["UIDVALIDITY"] in out.stdout, out.stdout
assert "messages 9 -> 3, unseen 0 -> 2" in out.stdout, out.stdout
assert "UIDNEXT 2 -> 4" in out.stdout, out.stdout

# The selected session hears of the rewritten message and keeps its UIDs and flags.
typ, _ = watcher.noop()
typ, fetched = watcher.response("FETCH")
assert fetched and fetched[0] is not None, watcher.untagged_responses
assert fetched[0].startswith(b"2 ") and b"MODSEQ" in fetched[0] and b"$Work" in fetched[0], fetched
assert rows(watcher) == good, (rows(watcher), good)
watcher.logout()

fresh = login()
assert status(fresh) == good_status, (status(fresh), good_status)
fresh.select("INBOX")
assert rows(fresh) == good, (rows(fresh), good)
shown = json.loads(keel_cmd("user", "show", "alice@example.com", "--format", "json").stdout)
total = sum(size for _, size in good.values())
assert shown["usage"] == {"bytes": total, "messages": 3}, (shown["usage"], total)

# A message whose file is gone is kept and reported; the one-folder form, JSON report.
db = sqlite3.connect(f"{data}/keel.db", timeout=10)
(blob,) = db.execute("""SELECT blob FROM messages WHERE uid = 3 AND folder =
    (SELECT id FROM folders WHERE account = 'alice@example.com' AND name = 'INBOX')""").fetchone()
db.close()
import os
os.remove(f"{data}/blobs/{blob[0:2]}/{blob[2:4]}/{blob}")
out = keel_cmd("reindex", "alice@example.com/inbox", "--format", "json")
assert out.returncode != 0, out.stdout
assert "kept" in out.stderr, out.stderr
report = json.loads(out.stdout)
assert [f["name"] for f in report["folders"]] == ["INBOX"], report
assert report["folders"][0]["unreadable"] == [{"uid": 3, "blob": blob, "problem": "missing"}], report
assert report["folders"][0]["sizes_fixed"] == [], report
assert status(fresh) == good_status, status(fresh)
out = keel_cmd("reindex", "alice@example.com/No such folder")
assert out.returncode != 0 and "does not exist" in out.stderr, out.stderr
fresh.logout()

# requirements-3 §5.4 "automatic detection of mismatches when a folder is opened": SELECT
# finds counters that disagree with the messages, recounts them and says so in the Error log.
db = sqlite3.connect(f"{data}/keel.db", timeout=10)
db.executescript("""
UPDATE folders SET messages = 1, unseen = 0, uid_next = 2
    WHERE account = 'alice@example.com' AND name = 'INBOX';
""")
db.close()
check = login()
assert status(check)["MESSAGES"] == 1, status(check)
typ, d = check.select("INBOX")
assert typ == "OK" and d[0] == b"3", d
typ, d = check.response("UIDNEXT")
assert d == [b"4"], d
assert status(check) == good_status, (status(check), good_status)
check.logout()
with open(f"{data}/logs/error.log") as f:
    log = f.read()
assert "Folder ~alice@example.com/INBOX had counters that disagree" in log, log
print("reindexed")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([
            s.port("smtp").to_string(),
            s.port("imap").to_string(),
            keel_bin().to_owned(),
            s.data.display().to_string(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("reindexed"));
    let ops =
        std::fs::read_to_string(s.data.join("logs").join("operations.log")).unwrap_or_default();
    assert!(ops.contains("reindex: Reindexed"), "operations log: {ops}");
}
