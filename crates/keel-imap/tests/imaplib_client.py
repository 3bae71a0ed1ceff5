#!/usr/bin/env python3
"""Real-client scenarios with Python's imaplib against a Keel IMAP server.

Usage: imaplib_client.py <scenario> <imap-port> <imaps-port>
Users (see tests/common/mod.rs): alice@example.com (primary domain), bob@other.test;
domain alias example.net; password Secret-pw1. Exit status 0 means the scenario passed.
"""
import base64
import hashlib
import hmac
import imaplib
import os
import ssl
import sys
import threading
import time

PW = "Secret-pw1"
HOST = "127.0.0.1"


def unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def expect_no(fn, *args, contains=""):
    try:
        r = fn(*args)
    except imaplib.IMAP4.error as e:
        text = str(e)
        assert contains in text, f"{text!r} lacks {contains!r}"
        return text
    raise AssertionError(f"expected NO, got {r!r}")


def login(port, user="alice"):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    m.login(user, PW)
    return m


def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


def scenario_y1_login_names(port, _tls):
    # requirements-1 Y.1 (IMAP part): bare and full names, any case; the password is
    # case-sensitive.
    for user in ["alice", "alice@example.com", "ALICE@Example.COM"]:
        m = login(port, user)
        m.logout()
    m = imaplib.IMAP4(HOST, port, timeout=10)
    expect_no(m.login, "alice", PW.upper(), contains="AUTHENTICATIONFAILED")
    m.logout()
    # Move the first message to Projects (the Rust side then checks INBOX, which is all
    # that POP3 LIST shows, guide §6.2).
    m = login(port, "alice")
    ok(m.create("Projects"))
    ok(m.select("INBOX"))
    typ, data = m.uid("MOVE", "1", "Projects")
    assert typ == "OK", (typ, data)
    ok(m.select("Projects"))
    data = ok(m.search(None, "ALL"))
    assert data == [b"1"], data
    m.logout()


def scenario_y3_alias(port, _tls):
    # requirements-1 Y.3: mail to the domain alias is in alice's INBOX; the alias does not
    # log in.
    m = imaplib.IMAP4(HOST, port, timeout=10)
    expect_no(m.login, "alice@example.net", PW, contains="AUTHENTICATIONFAILED")
    m.logout()
    m = login(port, "alice")
    ok(m.select("INBOX"))
    data = ok(m.search(None, "SUBJECT", '"via alias"'))
    assert data == [b"1"], data
    m.logout()


def scenario_round_trips(port, _tls):
    m = login(port, "alice")
    data = ok(m.select("INBOX"))
    assert data == [b"2"], data
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS)")
    assert typ == "OK" and b"Subject: first" in data[0][1], data
    typ, data = m.fetch("1:2", "(BODY[])")
    assert b"hello" in data[0][1], data
    data = ok(m.fetch("1", "(FLAGS)"))
    assert b"\\Seen" in data[0], data
    ok(m.store("2", "+FLAGS", "(\\Flagged)"))
    assert ok(m.search(None, "FLAGGED")) == [b"2"]
    assert ok(m.search(None, "SUBJECT", "second")) == [b"2"]
    assert ok(m.uid("SEARCH", "BODY", "world")) == [b"2"]
    ok(m.create("Work"))
    typ, data = m.copy("1:2", "Work")
    assert typ == "OK" and b"COPYUID" in data[0], data
    ok(m.append("Work", "(\\Seen)", imaplib.Time2Internaldate(time.time()),
                b"Subject: appended\r\n\r\nnew\r\n"))
    typ, data = m.status("Work", "(MESSAGES UNSEEN)")
    assert b"MESSAGES 3" in data[0] and b"UNSEEN 0" in data[0], data  # BODY[] set \\Seen on both
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    data = ok(m.expunge())
    assert data == [b"1"], data
    typ, data = m.uid("MOVE", "2", "Work")
    assert typ == "OK", (typ, data)
    assert ok(m.search(None, "ALL")) == [None] or ok(m.search(None, "ALL")) == [b""]
    data = ok(m.list())
    assert any(b"Work" in d for d in data), data
    m.close()
    m.logout()


def idle_start(m):
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    line = m.readline()
    assert line.startswith(b"+"), line
    return tag


def idle_done(m, tag):
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag):
            assert b" OK" in line, line
            return


def scenario_idle(port, _tls):
    m = login(port, "alice")
    ok(m.select("INBOX"))
    tag = idle_start(m)
    sent = {}

    def deliver():
        time.sleep(0.2)
        other = login(port, "alice")
        sent["t"] = time.monotonic()
        ok(other.append("INBOX", None, None, b"Subject: during idle\r\n\r\nx\r\n"))
        other.logout()

    t = threading.Thread(target=deliver)
    t.start()
    m.sock.settimeout(5)
    line = m.readline()
    got = time.monotonic()
    t.join()
    assert line.strip() == b"* 1 EXISTS", line
    assert got - sent["t"] < 1.0, got - sent["t"]
    idle_done(m, tag)
    m.logout()


def scenario_two_sessions(port, _tls):
    a = login(port, "alice")
    b = login(port, "alice")
    ok(a.select("INBOX"))
    ok(b.select("INBOX"))
    ok(a.store("1", "+FLAGS", "(\\Flagged)"))
    typ, data = b.noop()
    flags = b.response("FETCH")
    assert flags[1] and b"\\Flagged" in flags[1][0], flags
    ok(a.store("1", "+FLAGS", "(\\Deleted)"))
    ok(a.expunge())
    b.noop()
    gone = b.response("EXPUNGE")
    assert gone[1] == [b"1"], gone
    assert ok(b.search(None, "ALL")) == [b"1"]
    a.logout()
    b.logout()


def scenario_starttls(port, _tls):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    assert "STARTTLS" in m.capabilities, m.capabilities
    m.starttls(ssl_context=unverified())
    ok(m.capability())
    m.login("alice", PW)
    ok(m.select("INBOX"))
    m.logout()


def scenario_imaps(_port, tls):
    m = imaplib.IMAP4_SSL(HOST, tls, ssl_context=unverified(), timeout=10)
    assert "STARTTLS" not in m.capabilities, m.capabilities
    m.login("bob@other.test", PW)
    ok(m.select("INBOX"))
    m.logout()


def scram_responder(user, password):
    """A SCRAM-SHA-256 client (RFC 5802, RFC 7677) written with hashlib/hmac."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user},r={nonce}"
    state = {"step": 0}

    def respond(challenge):
        step = state["step"]
        state["step"] += 1
        if step == 0:
            return ("n,," + bare).encode()
        if step == 1:
            server_first = challenge.decode()
            attrs = dict(a.split("=", 1) for a in server_first.split(","))
            assert attrs["r"].startswith(nonce)
            salt = base64.b64decode(attrs["s"])
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(attrs["i"]))
            client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            stored_key = hashlib.sha256(client_key).digest()
            without_proof = f"c=biws,r={attrs['r']}"
            auth_message = f"{bare},{server_first},{without_proof}".encode()
            sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, sig))
            server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
            state["verifier"] = hmac.new(server_key, auth_message, hashlib.sha256).digest()
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        assert challenge == b"v=" + base64.b64encode(state["verifier"]), challenge
        state["verified"] = True
        return b""

    return respond, state


def scenario_sasl(port, _tls):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    assert "AUTH=SCRAM-SHA-256" in m.capabilities, m.capabilities
    respond, state = scram_responder("alice", PW)
    typ, _ = m.authenticate("SCRAM-SHA-256", respond)
    assert typ == "OK" and state.get("verified")
    m.logout()
    m = imaplib.IMAP4(HOST, port, timeout=10)
    typ, _ = m.authenticate("PLAIN", lambda _c: f"\0alice\0{PW}".encode())
    assert typ == "OK"
    m.logout()
    m = imaplib.IMAP4(HOST, port, timeout=10)
    respond, _ = scram_responder("alice", "wrong")
    expect_no(m.authenticate, "SCRAM-SHA-256", respond, contains="AUTHENTICATIONFAILED")
    m.logout()


def scenario_y19_require_encryption(port, tls):
    # requirements-1 Y.19 (IMAP part): LOGINDISABLED before STARTTLS and LOGIN fails;
    # after STARTTLS LOGIN succeeds; IMAPS works.
    m = imaplib.IMAP4(HOST, port, timeout=10)
    assert "LOGINDISABLED" in m.capabilities, m.capabilities
    assert not any(c.startswith("AUTH=") for c in m.capabilities), m.capabilities
    # imaplib refuses LOGIN itself when LOGINDISABLED is advertised; send it raw.
    typ, data = m._simple_command("LOGIN", "alice", PW)
    assert typ == "NO", (typ, data)
    m.starttls(ssl_context=unverified())
    ok(m.capability())
    assert "LOGINDISABLED" not in m.capabilities, m.capabilities
    m.login("alice", PW)
    m.logout()
    s = imaplib.IMAP4_SSL(HOST, tls, ssl_context=unverified(), timeout=10)
    s.login("alice", PW)
    s.logout()


def scenario_y19_exempt_group(port, _tls):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    assert "LOGINDISABLED" not in m.capabilities, m.capabilities
    m.login("alice", PW)
    m.logout()


def scenario_y20_lockout(port, _tls):
    # requirements-1 Y.20 (IMAP part): 3 failures lock; the 4th with the right password fails.
    for _ in range(3):
        m = imaplib.IMAP4(HOST, port, timeout=10)
        expect_no(m.login, "alice", "wrong-password", contains="AUTHENTICATIONFAILED")
        m.logout()
    m = imaplib.IMAP4(HOST, port, timeout=10)
    expect_no(m.login, "alice", PW, contains="AUTHENTICATIONFAILED")
    m.logout()


def scenario_y20_after_unlock(port, _tls):
    login(port, "alice").logout()


def scenario_y20_disabled(port, _tls):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    expect_no(m.login, "alice", PW, contains="AUTHENTICATIONFAILED")
    m.logout()


def scenario_sort_thread_binary(port, _tls):
    # RFC 5256 SORT/THREAD and RFC 3516 BINARY through imaplib's own methods.
    m = login(port)
    for cap in ["SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "BINARY"]:
        assert cap in m.capabilities, m.capabilities
    ok(m.select("INBOX"))
    assert ok(m.sort("(DATE)", "UTF-8", "ALL")) == [b"3 1 2 4"]
    assert ok(m.sort("(REVERSE FROM)", "UTF-8", "ALL")) == [b"1 3 4 2"]
    typ, data = m.uid("SORT", "(SUBJECT)", "UTF-8", "ALL")
    assert (typ, data) == ("OK", [b"3 4 1 2"]), (typ, data)
    assert ok(m.sort("(DATE)", "US-ASCII", "FROM", "adam")) == [b"2"]
    assert ok(m.thread("REFERENCES", "UTF-8", "ALL")) == [b"(3)(1 2)(4)"]
    typ, data = m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
    assert (typ, data) == ("OK", [b"(3)(1 2)(4)"]), (typ, data)
    # BINARY: base64 part decoded, sent as literal8 (it contains NUL).
    typ, data = m.uid("FETCH", "4", "(BINARY.PEEK[2] BINARY.SIZE[2])")
    assert typ == "OK", (typ, data)
    head, body = data[0]
    assert b"BINARY[2] ~{5}" in head, data
    assert body == b"\x00\x01hi\xff", data
    assert b"BINARY.SIZE[2] 5" in data[1], data
    typ, data = m.uid("FETCH", "4", "(BINARY.PEEK[1])")
    assert typ == "OK" and b'BINARY[1] "see attachment"' in data[0], data
    # Bad input: BAD raises in imaplib, NO returns; the session stays usable.
    try:
        m.sort("(COLOR)", "UTF-8", "ALL")
        raise AssertionError("unknown sort key accepted")
    except imaplib.IMAP4.error as e:
        assert "BAD" in str(e) or "COLOR" in str(e) or "sort" in str(e).lower(), e
    typ, data = m.sort("(DATE)", "ISO-8859-1", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)
    typ, data = m.uid("FETCH", "4", "(BINARY[9])")
    assert typ == "NO", (typ, data)
    ok(m.noop())
    assert ok(m.sort("(DATE)", "UTF-8", "ALL")) == [b"3 1 2 4"]
    m.logout()


if __name__ == "__main__":
    name, port, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    globals()["scenario_" + name](port, tls)
