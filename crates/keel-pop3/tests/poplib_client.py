#!/usr/bin/env python3
"""Real-client scenarios with Python's poplib against a Keel POP3 server.

Usage: poplib_client.py <scenario> <pop3-port> <pop3s-port>
Users (see tests/common/mod.rs): alice@example.com (primary domain), bob@other.test;
password Secret-pw1. Exit status 0 means the scenario passed.
"""
import base64
import hashlib
import hmac
import os
import poplib
import ssl
import sys

PW = "Secret-pw1"
HOST = "127.0.0.1"


def unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def expect_error(fn, *args, contains=""):
    try:
        r = fn(*args)
    except poplib.error_proto as e:
        text = e.args[0].decode() if isinstance(e.args[0], bytes) else str(e.args[0])
        assert contains in text, f"{text!r} lacks {contains!r}"
        return text
    raise AssertionError(f"expected -ERR, got {r!r}")


def login(port, user):
    p = poplib.POP3(HOST, port, timeout=10)
    p.user(user)
    p.pass_(PW)
    return p


def scenario_y1_login_names(port, _tls):
    # requirements-1 Y.1 (POP3 part): `USER bob` fails, `USER bob@other.test` succeeds.
    p = poplib.POP3(HOST, port, timeout=10)
    p.user("bob")
    expect_error(p.pass_, PW, contains="[AUTH]")
    p.user("bob@other.test")
    p.pass_(PW)
    p.quit()
    login(port, "alice").quit()


def scenario_stat_list_retr(port, _tls):
    p = login(port, "alice")
    count, size = p.stat()
    assert count == 2 and size > 0, (count, size)
    resp, listing, _ = p.list()
    assert len(listing) == 2, listing
    resp, lines, octets = p.retr(1)
    assert b"Subject: first" in lines, lines
    assert b".dot line" in lines, lines  # un-stuffed by poplib
    p.quit()


def scenario_dele_quit(port, _tls):
    p = login(port, "alice")
    p.dele(1)
    assert p.stat()[0] == 1
    p.quit()
    p = login(port, "alice")
    assert p.stat()[0] == 1
    p.quit()


def scenario_rset(port, _tls):
    p = login(port, "alice")
    p.dele(1)
    p.dele(2)
    assert p.stat()[0] == 0
    p.rset()
    assert p.stat()[0] == 2
    p.quit()
    p = login(port, "alice")
    assert p.stat()[0] == 2
    p.quit()


def scenario_uidl_stable(port, _tls):
    p = login(port, "alice")
    first = p.uidl()[1]
    p.quit()
    p = login(port, "alice")
    second = p.uidl()[1]
    assert first == second and len(first) == 2, (first, second)
    one = p.uidl(2)
    assert one.split()[-1] == first[1].split()[-1], (one, first)
    p.quit()


def scenario_top(port, _tls):
    p = login(port, "alice")
    resp, lines, _ = p.top(1, 1)
    blank = lines.index(b"")
    assert b"Subject: first" in lines[:blank]
    assert len(lines) == blank + 2, lines
    p.quit()


def scenario_in_use(port, _tls):
    a = login(port, "alice")
    b = poplib.POP3(HOST, port, timeout=10)
    b.user("alice")
    expect_error(b.pass_, PW, contains="[IN-USE]")
    a.quit()
    b.user("alice")
    b.pass_(PW)
    b.quit()


def scenario_stls(port, _tls):
    p = poplib.POP3(HOST, port, timeout=10)
    assert "STLS" in p.capa()
    p.stls(context=unverified())
    assert "STLS" not in p.capa()
    p.user("alice")
    p.pass_(PW)
    assert p.stat()[0] == 2
    p.quit()


def scenario_pop3s(_port, tls):
    p = poplib.POP3_SSL(HOST, tls, context=unverified(), timeout=10)
    assert "STLS" not in p.capa()
    p.user("bob@other.test")
    p.pass_(PW)
    p.stat()
    p.quit()


def auth(p, mech, responder):
    """RFC 5034 exchange by hand: poplib has no AUTH."""
    p._putcmd("AUTH " + mech)
    while True:
        line = p._getline()[0]
        if line.startswith(b"+OK"):
            return line
        if line.startswith(b"-ERR"):
            raise poplib.error_proto(line)
        assert line.startswith(b"+"), line
        challenge = base64.b64decode(line[1:].strip())
        p._putcmd(base64.b64encode(responder(challenge)).decode())


def scenario_sasl_plain(port, _tls):
    p = poplib.POP3(HOST, port, timeout=10)
    assert "PLAIN" in p.capa()["SASL"]
    auth(p, "PLAIN", lambda _c: f"\0alice\0{PW}".encode())
    assert p.stat()[0] == 2
    p.quit()
    p = poplib.POP3(HOST, port, timeout=10)
    expect_error(auth, p, "PLAIN", lambda _c: b"\0alice\0wrong", contains="[AUTH]")
    p.quit()


def scram_responder(user, password):
    """A SCRAM-SHA-256 client (RFC 5802, RFC 7677) written with hashlib/hmac."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user},r={nonce}"
    state = {"step": 0}

    def respond(challenge):
        step = state["step"]
        state["step"] += 1
        if step == 0:
            assert challenge == b""
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
        # Server-final: check the server signature, then answer with an empty response.
        assert challenge == b"v=" + base64.b64encode(state["verifier"]), challenge
        state["verified"] = True
        return b""

    return respond, state


def scenario_sasl_scram(port, _tls):
    p = poplib.POP3(HOST, port, timeout=10)
    assert "SCRAM-SHA-256" in p.capa()["SASL"]
    respond, state = scram_responder("alice", PW)
    auth(p, "SCRAM-SHA-256", respond)
    assert state.get("verified"), "server signature not checked"
    assert p.stat()[0] == 2
    p.quit()
    p = poplib.POP3(HOST, port, timeout=10)
    respond, _ = scram_responder("alice", "wrong-password")
    expect_error(auth, p, "SCRAM-SHA-256", respond, contains="[AUTH]")
    p.quit()


def scenario_y19_require_encryption(port, tls):
    # requirements-1 Y.19 (POP3 part): USER/PASS refused before STLS; POP3S works.
    p = poplib.POP3(HOST, port, timeout=10)
    caps = p.capa()
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps, caps
    expect_error(p.user, "alice", contains="encrypted connection")
    p.stls(context=unverified())
    caps = p.capa()
    assert "USER" in caps and "PLAIN" in caps["SASL"], caps
    p.user("alice")
    p.pass_(PW)
    p.quit()
    s = poplib.POP3_SSL(HOST, tls, context=unverified(), timeout=10)
    s.user("alice")
    s.pass_(PW)
    s.quit()


def scenario_y19_exempt_group(port, _tls):
    # requirements-1 Y.19: a client from the exempt IP group may log in over plaintext.
    p = poplib.POP3(HOST, port, timeout=10)
    assert "USER" in p.capa()
    p.user("alice")
    p.pass_(PW)
    p.quit()


def scenario_y20_lockout(port, _tls):
    # requirements-1 Y.20 (POP3 part): lockout after 3 failures; the 4th attempt with the
    # correct password fails too.
    for _ in range(3):
        p = poplib.POP3(HOST, port, timeout=10)
        p.user("alice")
        expect_error(p.pass_, "wrong-password", contains="[AUTH]")
        p.quit()
    p = poplib.POP3(HOST, port, timeout=10)
    p.user("alice")
    expect_error(p.pass_, PW, contains="[AUTH]")
    p.quit()


def scenario_y20_after_unlock(port, _tls):
    login(port, "alice").quit()


def scenario_y20_disabled(port, _tls):
    p = poplib.POP3(HOST, port, timeout=10)
    p.user("alice")
    expect_error(p.pass_, PW, contains="[AUTH]")
    p.quit()


if __name__ == "__main__":
    name, port, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    globals()["scenario_" + name](port, tls)
    print("ok", name)
