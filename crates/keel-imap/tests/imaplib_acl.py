#!/usr/bin/env python3
"""Shared and public folders (guide ch. 26, RFC 4314 ACL, RFC 2342 NAMESPACE) with
Python's imaplib against a Keel IMAP server.

Usage: imaplib_acl.py <scenario> <imap-port>
Users (tests/common/mod.rs): alice@example.com, carol@example.com, bob@other.test;
password Secret-pw1. Exit status 0 means the scenario passed.
"""
import imaplib
import sys
import threading
import time

PW = "Secret-pw1"
HOST = "127.0.0.1"
BOB = "bob@other.test"
SHARED = "Other Users/alice@example.com/Projects"
QSHARED = '"' + SHARED + '"'


def login(port, user):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    m.login(user, PW)
    return m


def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


def no(r, code=""):
    typ, data = r
    assert typ == "NO", (typ, data)
    assert code in data[0].decode(), (code, data)
    return data


def bad(fn, *args):
    try:
        r = fn(*args)
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError(f"expected BAD, got {r!r}")


def select_read_only(m, name):
    """SELECT of a folder the user cannot change: imaplib raises `readonly`."""
    try:
        m.select(name)
    except imaplib.IMAP4.readonly:
        assert m.state == "SELECTED"
        m.is_readonly = True  # imaplib: accept the READ-ONLY state from now on
        return
    raise AssertionError("SELECT did not answer READ-ONLY")


def flags_of(m, n):
    typ, data = m.fetch(n, "(FLAGS)")
    assert typ == "OK", (typ, data)
    return data[0]


def scenario_share(port):
    alice = login(port, "alice")
    assert "ACL" in alice.capabilities and "RIGHTS=TEXK" in alice.capabilities, alice.capabilities
    ok(alice.create("Projects"))
    ok(alice.append("Projects", None, None, b"Subject: plan\r\n\r\nthe plan\r\n"))
    ok(alice.setacl("Projects", BOB, "lr"))
    data = ok(alice.getacl("Projects"))
    assert data == [b'Projects alice@example.com lrswipkxtea bob@other.test lr'], data
    assert ok(alice.myrights("Projects")) == [b"Projects lrswipkxtea"]

    bob = login(port, BOB)
    ns = ok(bob.namespace())
    assert ns == [b'(("" "/")) (("Other Users/" "/")) (("Public Folders/" "/"))'], ns
    listed = ok(bob.list())
    assert any(SHARED.encode() in l for l in listed), listed
    assert any(b'\\Noselect' in l and b'"Other Users"' in l for l in listed), listed
    assert ok(bob.myrights(QSHARED)) == [b'"' + SHARED.encode() + b'" lr']
    typ, data = bob.status(QSHARED, "(MESSAGES)")
    assert typ == "OK" and b"MESSAGES 1" in data[0], data
    # Read only: SELECT opens read-only, reading does not set \Seen (no `s`).
    select_read_only(bob, QSHARED)
    typ, data = bob.fetch("1", "(BODY[])")
    assert typ == "OK" and b"the plan" in data[0][1], data
    assert b"\\Seen" not in flags_of(bob, "1")
    # Writes without the right: NO [NOPERM], nothing changes.
    no(bob.store("1", "+FLAGS", "(\\Flagged)"), "NOPERM")
    no(bob.append(QSHARED, None, None, b"Subject: intruder\r\n\r\nx\r\n"), "NOPERM")
    no(bob.uid("MOVE", "1", "INBOX"), "NOPERM")
    no(bob.expunge(), "NOPERM")
    no(bob.create('"' + SHARED + '/Sub"'), "NOPERM")
    no(bob.delete(QSHARED), "NOPERM")
    no(bob.setacl(QSHARED, BOB, "lrswipkxtea"))
    no(bob.getacl(QSHARED), "NOPERM")
    ok(alice.select("Projects"))
    assert flags_of(alice, "1") == b"1 (FLAGS ())", flags_of(alice, "1")
    typ, data = alice.status("Projects", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0], data
    # COPY out of the shared folder only needs `r` there.
    typ, data = bob.copy("1", "INBOX")
    assert typ == "OK", (typ, data)

    # Read/write: the same operations now succeed.
    ok(alice.setacl("Projects", BOB, "+swite"))
    ok(bob.select(QSHARED))
    assert bob.response("READ-WRITE")[1] or True
    ok(bob.store("1", "+FLAGS", "(\\Flagged)"))
    ok(bob.append(QSHARED, None, None, b"Subject: from bob\r\n\r\nhi\r\n"))
    assert ok(bob.myrights(QSHARED)) == [b'"' + SHARED.encode() + b'" lrswite']
    # Still no `k`, `x`, `a`.
    no(bob.create('"' + SHARED + '/Sub"'), "NOPERM")
    no(bob.setacl(QSHARED, "carol@example.com", "lr"), "NOPERM")
    alice.noop()
    fetched = alice.response("FETCH")[1]
    assert fetched and any(b"\\Flagged" in f for f in fetched if f), fetched

    # NOOP: bob sees alice's new message in the shared folder.
    ok(alice.append("Projects", None, None, b"Subject: more\r\n\r\nmore\r\n"))
    bob.noop()
    exists = bob.response("EXISTS")[1]
    assert exists and exists[-1] == b"3", exists

    # IDLE: bob is woken by alice's delivery into her folder.
    tag = bob._new_tag()
    bob.send(tag + b" IDLE\r\n")
    assert bob.readline().startswith(b"+")
    sent = {}

    def append():
        time.sleep(0.2)
        sent["t"] = time.monotonic()
        a2 = login(port, "alice")
        ok(a2.append("Projects", None, None, b"Subject: during idle\r\n\r\nx\r\n"))
        a2.logout()

    t = threading.Thread(target=append)
    t.start()
    bob.sock.settimeout(5)
    line = bob.readline()
    got = time.monotonic()
    t.join()
    assert line.strip() == b"* 4 EXISTS", line
    assert got - sent["t"] < 2.0, got - sent["t"]
    bob.send(b"DONE\r\n")
    while True:
        line = bob.readline()
        if line.startswith(tag):
            assert b" OK" in line, line
            break

    # Revoked: the folder disappears for bob.
    ok(alice.deleteacl("Projects", BOB))
    no(bob.select(QSHARED), "NONEXISTENT")
    listed = ok(bob.list())
    assert not any(SHARED.encode() in l for l in listed if l), listed

    # Bad input.
    bad(alice.setacl, "Projects", BOB, "lrz")
    no(alice.setacl("Nope", BOB, "lr"), "NONEXISTENT")
    no(alice.getacl("Nope"), "NONEXISTENT")
    no(alice.myrights("Nope"), "NONEXISTENT")
    no(alice.setacl("Projects", "nobody@example.com", "lr"))
    no(bob.setacl('"Other Users/alice@example.com/INBOX"', BOB, "lr"))
    ok(alice.noop())
    alice.logout()
    bob.logout()


def scenario_public(port):
    carol = login(port, "carol@example.com")
    info = '"Public Folders/Info"'
    listed = ok(carol.list())
    assert any(b"Public Folders/Info" in l for l in listed), listed
    assert ok(carol.myrights(info)) == [b'"Public Folders/Info" lr']
    select_read_only(carol, info)
    typ, data = carol.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Subject: to info" in data[0][1], data
    no(carol.append(info, None, None, b"Subject: x\r\n\r\nx\r\n"), "NOPERM")
    no(carol.store("1", "+FLAGS", "(\\Seen)"), "NOPERM")
    no(carol.create('"Public Folders/Mine"'), "NOPERM")
    # The public-folder admin (alice) creates, appends and grants.
    alice = login(port, "alice")
    ok(alice.create('"Public Folders/Announcements"'))
    ok(alice.append('"Public Folders/Announcements"', None, None, b"Subject: news\r\n\r\nx\r\n"))
    ok(alice.setacl(info, "carol", "lrsi"))
    data = ok(alice.getacl(info))
    assert data == [b'"Public Folders/Info" anyone lr carol@example.com lrsi'], data
    ok(carol.append(info, None, None, b"Subject: granted\r\n\r\nx\r\n"))
    ok(carol.select(info))
    ok(carol.store("1", "+FLAGS", "(\\Seen)"))
    no(carol.store("1", "+FLAGS", "(\\Flagged)"), "NOPERM")
    listed = ok(carol.list('"Public Folders/"', "*"))
    assert len([l for l in listed if l]) == 2, listed
    # Per-domain public folders: bob (other.test) sees none of example.com's.
    bob = login(port, BOB)
    listed = ok(bob.list())
    assert not any(b"Announcements" in l or b"Public Folders/Info" in l for l in listed if l), listed
    no(bob.select('"Public Folders/Announcements"'), "NONEXISTENT")
    for m in (alice, bob, carol):
        m.logout()


if __name__ == "__main__":
    globals()["scenario_" + sys.argv[1]](int(sys.argv[2]))
