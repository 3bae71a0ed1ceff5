//! BINARY (RFC 3516) over a real socket: FETCH BINARY / BINARY.PEEK / BINARY.SIZE with
//! transfer decoding, partial fetch, literal8 responses, UNKNOWN-CTE and APPEND with a
//! literal8. Every response is parsed by the imap-codec oracle.

mod common;

use common::*;

/// Parts: 1 quoted-printable text, 2 base64 bytes with NUL, 3 unknown encoding,
/// 4 a message/rfc822 part.
const MIME: &str = "From: a@example.org\r\nSubject: parts\r\n\
Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n\
--xx\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=C3=A9 soft=\r\nbreak\r\n\
--xx\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n\
AAECAwBo\r\naQ==\r\n\
--xx\r\nContent-Type: application/x-thing\r\n\
Content-Transfer-Encoding: x-rot13\r\n\r\n\
uryyb\r\n\
--xx\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\n\r\ninner body\r\n\
--xx--\r\n";

async fn selected() -> (TestServer, Client) {
    let s = TestServer::start().await;
    s.deliver_raw("alice@example.com", MIME.as_bytes());
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT INBOX").await;
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_binary_decodes_transfer_encodings() {
    let (_s, mut c) = selected().await;
    let u = c.ok("FETCH 1 (BINARY.PEEK[1])").await;
    // 8-bit text (no NUL) is an ordinary literal.
    assert!(has(&u, "BINARY[1] {15}\r\ncafé softbreak)"), "{u:?}");
    // RFC 3516 §4.2: content with NUL is sent as literal8.
    let u = c.ok("FETCH 1 (BINARY.PEEK[2])").await;
    assert!(has(&u, "BINARY[2] ~{7}\r\n\0\x01\x02\x03\0hi)"), "{u:?}");
    let u = c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2])").await;
    assert!(has(&u, "BINARY.SIZE[1] 15 BINARY.SIZE[2] 7"), "{u:?}");
    // Partial fetch counts decoded octets; the response carries no origin (RFC 3516 §6).
    let u = c.ok("UID FETCH 1 (BINARY.PEEK[2]<5.3>)").await;
    assert!(has(&u, "BINARY[2] \"hi\""), "{u:?}");
    let u = c.ok("FETCH 1 (BINARY.PEEK[2]<1.3>)").await;
    // No NUL in the slice: an ordinary string (TEXT-CHAR allows %x01-09, RFC 9051 §9).
    assert!(has(&u, "BINARY[2] \"\x01\x02\x03\""), "{u:?}");
    // A message/rfc822 part and the whole message are returned as they are.
    let u = c.ok("FETCH 1 (BINARY.PEEK[4])").await;
    assert!(has(&u, "inner body"), "{u:?}");
    let u = c.ok("FETCH 1 (BINARY.SIZE[])").await;
    assert!(has(&u, &format!("BINARY.SIZE[] {}", MIME.len())), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sets_seen_and_peek_does_not() {
    let (_s, mut c) = selected().await;
    let u = c.ok("FETCH 1 (BINARY.PEEK[1] FLAGS)").await;
    assert!(!has(&u, "\\Seen"), "{u:?}");
    let u = c.ok("FETCH 1 (BINARY[1])").await;
    assert!(has(&u, "\\Seen"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_errors_keep_the_connection() {
    let (_s, mut c) = selected().await;
    // RFC 3516 §4.3: an unknown content-transfer-encoding.
    let t = c.no("FETCH 1 (BINARY.PEEK[3])").await;
    assert!(t.contains("[UNKNOWN-CTE]"), "{t}");
    let t = c.no("FETCH 1 (BINARY.SIZE[3])").await;
    assert!(t.contains("[UNKNOWN-CTE]"), "{t}");
    // A part that does not exist.
    c.no("FETCH 1 (BINARY.PEEK[9])").await;
    c.no("UID FETCH 1 (BINARY.SIZE[1.7])").await;
    // Syntax: BINARY takes only part numbers.
    c.bad("FETCH 1 (BINARY[1.TEXT])").await;
    c.bad("FETCH 1 (BINARY[HEADER])").await;
    // A failing BINARY (not .PEEK) fetch changes no flags and sends no FETCH data.
    let (u, t) = c.run("FETCH 1 (BINARY[3] FLAGS)").await;
    assert!(t.contains("NO [UNKNOWN-CTE]"), "{t}");
    assert!(!has(&u, "FETCH"), "{u:?}");
    c.ok("NOOP").await;
    let u = c.ok("FETCH 1 (FLAGS)").await;
    assert!(!has(&u, "\\Seen"), "{u:?}");
    let u = c.ok("FETCH 1 (BINARY.SIZE[1])").await;
    assert!(has(&u, "BINARY.SIZE[1] 15"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_literal8_and_fetch_it_back() {
    let s = TestServer::start().await;
    let mut c = Client::login(s.addr, "alice").await;
    let msg: &[u8] = b"Subject: bin\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\nA\0B\r\n";
    // RFC 3516 §4.4: APPEND with literal8; synchronising, so wait for the continuation.
    c.send_raw(format!("b1 APPEND INBOX ~{{{}}}\r\n", msg.len()).as_bytes())
        .await;
    let cont = c.response().await;
    assert!(cont.starts_with('+'), "{cont:?}");
    c.send_raw(msg).await;
    c.send_raw(b"\r\n").await;
    let (_, t) = c.until("b1").await;
    assert!(t.starts_with("b1 OK [APPENDUID "), "{t}");
    // Non-synchronising literal8 (LITERAL+, RFC 7888).
    let mut cmd = format!("b2 APPEND INBOX ~{{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(msg);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let (_, t) = c.until("b2").await;
    assert!(t.starts_with("b2 OK"), "{t}");
    c.ok("SELECT INBOX").await;
    let u = c.ok("UID FETCH 1:2 (BINARY.PEEK[1] BINARY.SIZE[1])").await;
    assert_eq!(
        u.iter()
            .filter(|l| l.contains("BINARY[1] ~{5}\r\nA\0B\r\n "))
            .count(),
        2,
        "{u:?}"
    );
    assert!(has(&u, "BINARY.SIZE[1] 5"), "{u:?}");
}
