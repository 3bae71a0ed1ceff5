//! One SMTP client conversation with one server address, on mail-send's low-level
//! `SmtpClient` (RFC 5321 §3, §4; RFC 3207 STARTTLS; RFC 4954 AUTH; RFC 3461 DSN; RFC
//! 3030 CHUNKING; RFC 1870 SIZE).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mail_send::{Credentials, SmtpClient};
use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_SIZE, EXT_START_TLS, EhloResponse, Response,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tasks::{TaskHandle, TaskPhase};

/// How TLS is used on this connection.
#[derive(Clone)]
pub(crate) enum TlsMode {
    /// Never.
    Off,
    /// STARTTLS when offered with this (non-verifying) connector; plaintext otherwise.
    Opportunistic(TlsConnector),
    /// STARTTLS required, verified.
    Required(TlsConnector),
    /// TLS from the first byte, verified.
    Implicit(TlsConnector),
}

/// A reply of the remote server, reduced to what the queue needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 3463), derived from the code when the server sent none.
    pub status: String,
    /// The reply as one line: `550 5.1.1 no such user`.
    pub text: String,
}

impl Reply {
    fn from_response(r: &Response<String>) -> Self {
        let class = r.code / 100;
        let status = if r.esc[0] != 0 && u16::from(r.esc[0]) == class {
            format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2])
        } else {
            format!("{class}.0.0")
        };
        let msg = r.message.replace(['\r', '\n'], " ");
        let text = if r.esc[0] != 0 {
            format!("{} {} {}", r.code, status, msg.trim())
        } else {
            format!("{} {}", r.code, msg.trim())
        };
        Self {
            code: r.code,
            status,
            text,
        }
    }

    /// A locally made reply (connection lost, timeout, …).
    pub(crate) fn local(code: u16, status: &str, text: impl Into<String>) -> Self {
        Self {
            code,
            status: status.to_owned(),
            text: text.into(),
        }
    }

    pub(crate) fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub(crate) fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

/// One recipient to send to.
#[derive(Debug, Clone)]
pub(crate) struct RcptReq {
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// The transaction to run.
pub(crate) struct Envelope<'a> {
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub ret: Option<&'a str>,
    pub rcpts: &'a [RcptReq],
    pub message: &'a [u8],
}

/// Per-connection parameters.
pub(crate) struct Conn<'a> {
    pub addr: SocketAddr,
    /// Host name (TLS server name, logs).
    pub host: &'a str,
    pub helo: &'a str,
    pub tls: TlsMode,
    pub auth: Option<(String, String)>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

/// What happened on this server.
#[derive(Debug)]
pub(crate) enum HostResult {
    /// A transaction took place: one reply per recipient (in `rcpts` order); `dsn` tells
    /// whether the server took the DSN parameters (RFC 3461 §6.2.2 "relayed").
    Done { replies: Vec<Reply>, dsn: bool },
    /// Nothing was sent; the next server should be tried (connection refused, greeting or
    /// EHLO refused, TLS failure). `reply` says why.
    TryNext(Reply),
}

fn io_reply(what: &str, e: &mail_send::Error) -> Reply {
    Reply::local(451, "4.4.1", format!("{what}: {e}"))
}

/// RFC 3461 §4: xtext encoding of ENVID and ORCPT values.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The connected stream: plaintext or TLS (after STARTTLS or implicit TLS).
enum Client {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// Runs `$body` with `$c` bound to the inner `SmtpClient` of either stream kind.
macro_rules! with_client {
    ($client:expr, $c:ident => $body:expr) => {
        match $client {
            Client::Plain($c) => $body,
            Client::Tls($c) => {
                let $c = &mut **$c;
                $body
            }
        }
    };
}

/// An open SMTP session: greeted, EHLO said, TLS and AUTH done as the connection's
/// parameters require. RFC 5321 §3.3 allows several mail transactions in one session; the
/// runner keeps idle sessions in its connection cache (`super::cache`).
pub(crate) struct Session {
    client: Client,
    ehlo: EhloResponse<String>,
    /// When the connection was opened (maximum lifetime in the cache).
    pub(crate) opened: Instant,
    /// Transactions run on this session so far (maximum per session in the cache).
    pub(crate) transactions: u32,
}

/// Why no session could be opened.
pub(crate) enum OpenError {
    /// Connect, greeting, EHLO or TLS failed: the next address should be tried.
    TryNext(Reply),
    /// An opportunistic STARTTLS failed: retry this address in plaintext (RFC 3207 §4.1,
    /// on a new connection).
    RetryPlain(Reply),
    /// AUTH was refused: a configuration problem the admin can fix; the recipients are
    /// deferred with this reply (no next server).
    Auth(Reply),
}

/// The result of one transaction on a session.
pub(crate) struct TxOutcome {
    pub result: HostResult,
    /// Every command got a reply, none was 421 and nothing timed out: the session may run
    /// another transaction (after RSET, RFC 5321 §4.1.1.5).
    pub reusable: bool,
    /// The connection failed (lost, timed out, or 421, RFC 5321 §3.8) before any message
    /// data was written: the server cannot have accepted the message, so the transaction
    /// may be run again on a new connection without risking a duplicate.
    pub failed_before_data: bool,
}

/// Opens a session on `conn.addr`: connect, greeting, EHLO, STARTTLS or implicit TLS as
/// `conn.tls` says (`plain` forces plaintext: the retry after a failed opportunistic
/// STARTTLS), EHLO again after STARTTLS (RFC 3207 §4.2), AUTH (RFC 4954).
pub(crate) async fn open(
    conn: &Conn<'_>,
    task: &TaskHandle,
    plain: bool,
) -> Result<Session, OpenError> {
    task.phase(TaskPhase::Connecting, Some(conn.host));
    let opened = Instant::now();
    let mut client = match SmtpClient::connect(conn.addr, conn.connect_timeout).await {
        Ok(mut c) => {
            c.timeout = conn.command_timeout;
            // guide §24.5 "Connections / Outgoing SMTP".
            keel_core::stats::outgoing_smtp_connection();
            c
        }
        Err(e) => return Err(OpenError::TryNext(io_reply("connect", &e))),
    };
    let tls = if plain { &TlsMode::Off } else { &conn.tls };
    let (client, ehlo) = if let TlsMode::Implicit(connector) = tls {
        let mut tls = match client.into_tls(connector, conn.host).await {
            Ok(c) => c,
            Err(e) => return Err(OpenError::TryNext(io_reply("TLS", &e))),
        };
        let ehlo = greet(&mut tls, conn).await.map_err(OpenError::TryNext)?;
        (Client::Tls(Box::new(tls)), ehlo)
    } else {
        let ehlo = greet(&mut client, conn).await.map_err(OpenError::TryNext)?;
        let connector = match tls {
            TlsMode::Opportunistic(c) if ehlo.has_capability(EXT_START_TLS) => Some((c, false)),
            TlsMode::Required(c) => Some((c, true)),
            _ => None,
        };
        match connector {
            Some((_, true)) if !ehlo.has_capability(EXT_START_TLS) => {
                let _ = client.cmd(b"QUIT\r\n").await;
                return Err(OpenError::TryNext(Reply::local(
                    451,
                    "4.7.10",
                    format!("{} does not offer STARTTLS, which is required", conn.host),
                )));
            }
            Some((connector, required)) => match client.start_tls(connector, conn.host).await {
                Ok(mut tls) => {
                    // RFC 3207 §4.2: after TLS the client issues EHLO again.
                    let ehlo = match tls.ehlo(conn.helo).await {
                        Ok(e) => e,
                        Err(e) => {
                            return Err(OpenError::TryNext(io_reply("EHLO after STARTTLS", &e)));
                        }
                    };
                    (Client::Tls(Box::new(tls)), ehlo)
                }
                Err(e) if required => return Err(OpenError::TryNext(io_reply("STARTTLS", &e))),
                // RFC 3207 §4.1: opportunistic TLS falls back to plaintext (new connection).
                Err(e) => return Err(OpenError::RetryPlain(io_reply("STARTTLS", &e))),
            },
            None => (Client::Plain(client), ehlo),
        }
    };
    let mut session = Session {
        client,
        ehlo,
        opened,
        transactions: 0,
    };
    if let Some((user, password)) = &conn.auth {
        task.phase(TaskPhase::SmtpDelivery, Some(conn.host));
        let creds = Credentials::new(user.clone(), password.clone());
        let ehlo = &session.ehlo;
        let res =
            with_client!(&mut session.client, c => c.authenticate(&creds, ehlo).await.map(|_| ()));
        if let Err(e) = res {
            session.quit().await;
            return Err(OpenError::Auth(Reply::local(
                451,
                "4.7.0",
                format!("authentication at {} failed: {e}", conn.host),
            )));
        }
    }
    Ok(session)
}

impl Session {
    /// Checks that an idle session is still usable before the next transaction: RSET must
    /// be answered 250 (RFC 5321 §4.1.1.5; it also ends any transaction the last one left
    /// open, e.g. when every RCPT was refused). Waits at most `timeout`.
    pub(crate) async fn probe(&mut self, timeout: Duration) -> bool {
        with_client!(&mut self.client, c => {
            let saved = c.timeout;
            c.timeout = timeout.min(saved);
            let r = c.cmd(b"RSET\r\n").await;
            c.timeout = saved;
            matches!(r, Ok(resp) if resp.code == 250)
        })
    }

    /// Ends the session politely: QUIT (RFC 5321 §4.1.1.10), waiting at most a few
    /// seconds for the 221, then closes the connection.
    pub(crate) async fn quit(mut self) {
        with_client!(&mut self.client, c => {
            c.timeout = c.timeout.min(QUIT_TIMEOUT);
            let _ = c.cmd(b"QUIT\r\n").await;
        });
    }

    /// Runs one mail transaction (RFC 5321 §3.3) on this session.
    pub(crate) async fn transaction(
        &mut self,
        conn: &Conn<'_>,
        env: &Envelope<'_>,
        task: &TaskHandle,
    ) -> TxOutcome {
        let ehlo = &self.ehlo;
        let out = with_client!(&mut self.client, c => transaction(c, ehlo, conn, env, task).await);
        self.transactions = self.transactions.saturating_add(1);
        out
    }
}

/// How long a QUIT may take (at shutdown, expiry, or when the cache is full).
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the greeting and says EHLO (RFC 5321 §4.1.1.1, §3.1).
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    conn: &Conn<'_>,
) -> Result<EhloResponse<String>, Reply> {
    let greeting = tokio::time::timeout(conn.command_timeout, client.read())
        .await
        .map_err(|_| Reply::local(451, "4.4.2", "timeout waiting for the greeting"))?
        .map_err(|e| io_reply("greeting", &e))?;
    if greeting.code / 100 != 2 {
        // RFC 5321 §3.1: a 554 greeting means no service here; try the next MX.
        return Err(Reply::from_response(&greeting));
    }
    client.ehlo(conn.helo).await.map_err(|e| match e {
        mail_send::Error::UnexpectedReply(r) => Reply::from_response(&r),
        other => io_reply("EHLO", &other),
    })
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    line: String,
) -> Result<Reply, Reply> {
    client
        .cmd(line.as_bytes())
        .await
        .map(|r| Reply::from_response(&r))
        .map_err(|e| io_reply("connection lost", &e))
}

/// RFC 5321 §3.8: 421 means the server is closing the transmission channel.
fn closing(r: &Reply) -> bool {
    r.code == 421
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    ehlo: &EhloResponse<String>,
    conn: &Conn<'_>,
    env: &Envelope<'_>,
    task: &TaskHandle,
) -> TxOutcome {
    task.phase(TaskPhase::SmtpDelivery, Some(conn.host));
    let n = env.rcpts.len();
    let all = |r: Reply| vec![r; n];
    let dsn = ehlo.has_capability(EXT_DSN);
    // A transaction that ended with every command answered: the session stays usable
    // unless the server said it is closing.
    let answered = |replies: Vec<Reply>, closed: bool| TxOutcome {
        result: HostResult::Done { replies, dsn },
        reusable: !closed,
        failed_before_data: closed,
    };
    let lost = |replies: Vec<Reply>| TxOutcome {
        result: HostResult::Done { replies, dsn },
        reusable: false,
        failed_before_data: true,
    };
    // MAIL FROM with SIZE (RFC 1870), BODY (RFC 6152), RET/ENVID (RFC 3461 §4.3, §4.4).
    let mut params = String::new();
    if ehlo.has_capability(EXT_SIZE) {
        params.push_str(&format!(" SIZE={}", env.message.len()));
    }
    if ehlo.has_capability(EXT_8BIT_MIME) && env.message.iter().any(|b| *b >= 0x80) {
        params.push_str(" BODY=8BITMIME");
    }
    if dsn {
        if let Some(ret) = env.ret {
            params.push_str(&format!(" RET={}", ret.to_ascii_uppercase()));
        }
        if let Some(envid) = env.envid {
            params.push_str(&format!(" ENVID={}", xtext(envid)));
        }
    }
    let mail = match command(client, format!("MAIL FROM:<{}>{params}\r\n", env.sender)).await {
        Ok(r) => r,
        Err(r) => return lost(all(r)),
    };
    if !mail.is_ok() {
        // No transaction was opened (RFC 5321 §4.1.1.2): the session stays usable.
        let closed = closing(&mail);
        return answered(all(mail), closed);
    }
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(n);
    let mut closed = false;
    for r in env.rcpts {
        // RFC 3461 §4.1, §4.2: NOTIFY and ORCPT only to a server that offers DSN.
        let mut extra = String::new();
        if dsn {
            if let Some(notify) = &r.notify {
                extra.push_str(&format!(" NOTIFY={notify}"));
            }
            if let Some(orcpt) = &r.orcpt {
                match orcpt.split_once(';') {
                    Some((kind, addr)) => {
                        extra.push_str(&format!(" ORCPT={};{}", kind.trim(), xtext(addr.trim())));
                    }
                    None => extra.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt))),
                }
            }
        }
        match command(client, format!("RCPT TO:<{}>{extra}\r\n", r.address)).await {
            Ok(reply) => {
                closed |= closing(&reply);
                replies.push(Some(reply));
            }
            Err(lost_reply) => {
                // Connection lost: every recipient not yet answered is deferred.
                let mut out: Vec<Reply> = replies
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| lost_reply.clone()))
                    .collect();
                out.resize(n, lost_reply);
                return lost(out);
            }
        }
    }
    let accepted: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| r.as_ref().is_some_and(Reply::is_ok))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<Reply> = replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::local(451, "4.3.0", "no reply")))
        .collect();
    if accepted.is_empty() || closed {
        // Nothing to send (the open transaction is reset by the RSET before the next
        // one), or the server is closing (RFC 5321 §3.8): no data was written.
        if closed {
            for i in accepted {
                out[i] = Reply::local(451, "4.4.2", "server closed the session before DATA");
            }
        }
        return answered(out, closed);
    }
    let (final_reply, end) = send_data(client, ehlo, env.message, conn.command_timeout).await;
    if final_reply.is_ok() {
        task.sent();
    }
    // RFC 5321 §4.2.5: one reply after the data covers every accepted recipient.
    for i in accepted {
        out[i] = final_reply.clone();
    }
    match end {
        DataEnd::Replied => {
            let closed = closing(&final_reply);
            TxOutcome {
                result: HostResult::Done { replies: out, dsn },
                reusable: !closed,
                // After the data a 421 may come after the message was taken; not retried.
                failed_before_data: false,
            }
        }
        DataEnd::Refused => answered(out, closing(&final_reply)),
        DataEnd::LostBeforeData => lost(out),
        DataEnd::LostAfterData => TxOutcome {
            result: HostResult::Done { replies: out, dsn },
            reusable: false,
            failed_before_data: false,
        },
    }
}

/// How the data phase ended.
enum DataEnd {
    /// The server answered after the message data.
    Replied,
    /// DATA was refused (no 354): nothing was sent.
    Refused,
    /// The connection failed at the DATA command, before any message byte was written.
    LostBeforeData,
    /// The connection failed or timed out once message data had been written: the
    /// server may have the message (RFC 5321 §6.1 duplicate risk), never retried at once.
    LostAfterData,
}

/// DATA (RFC 5321 §4.1.1.4, dot-stuffed by mail-send) or BDAT LAST (RFC 3030) when the
/// server offers CHUNKING. The final reply may take up to 10 minutes (RFC 5321
/// §4.5.3.2.6): twice the command timeout.
async fn send_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    ehlo: &EhloResponse<String>,
    message: &[u8],
    timeout: Duration,
) -> (Reply, DataEnd) {
    let long = timeout.saturating_mul(2);
    if ehlo.has_capability(EXT_CHUNKING) {
        let r = tokio::time::timeout(long, async {
            use tokio::io::AsyncWriteExt;
            client
                .stream
                .write_all(format!("BDAT {} LAST\r\n", message.len()).as_bytes())
                .await?;
            client.stream.write_all(message).await?;
            client.stream.flush().await?;
            client.read().await
        })
        .await;
        return match r {
            Ok(Ok(resp)) => (Reply::from_response(&resp), DataEnd::Replied),
            Ok(Err(e)) => (
                io_reply("connection lost during BDAT", &e),
                DataEnd::LostAfterData,
            ),
            Err(_) => (
                Reply::local(451, "4.4.2", "timeout after the message data"),
                DataEnd::LostAfterData,
            ),
        };
    }
    let go = match client.cmd(b"DATA\r\n").await {
        Ok(r) => r,
        Err(e) => {
            let end = if matches!(e, mail_send::Error::Timeout) {
                // The DATA line may still be answered later: the stream is out of step.
                DataEnd::LostAfterData
            } else {
                DataEnd::LostBeforeData
            };
            return (io_reply("connection lost at DATA", &e), end);
        }
    };
    if go.code != 354 {
        return (Reply::from_response(&go), DataEnd::Refused);
    }
    let r = tokio::time::timeout(long, async {
        client.write_message(message).await?;
        client.read().await
    })
    .await;
    match r {
        Ok(Ok(resp)) => (Reply::from_response(&resp), DataEnd::Replied),
        Ok(Err(e)) => (
            io_reply("connection lost after DATA", &e),
            DataEnd::LostAfterData,
        ),
        Err(_) => (
            Reply::local(451, "4.4.2", "timeout after the message data"),
            DataEnd::LostAfterData,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_controls() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("env-1"), "env-1");
    }

    #[test]
    fn reply_status_from_code_when_missing() {
        let r = Reply::from_response(&Response {
            code: 451,
            esc: [0, 0, 0],
            message: "try later".to_owned(),
        });
        assert_eq!(r.status, "4.0.0");
        assert_eq!(r.text, "451 try later");
        let r = Reply::from_response(&Response {
            code: 550,
            esc: [5, 1, 1],
            message: "no such user".to_owned(),
        });
        assert_eq!(r.status, "5.1.1");
        assert!(r.is_permanent());
    }
}
