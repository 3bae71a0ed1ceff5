//! One SMTP client conversation with one server address, on mail-send's low-level
//! `SmtpClient` (RFC 5321 §3, §4; RFC 3207 STARTTLS; RFC 4954 AUTH; RFC 3461 DSN; RFC
//! 3030 CHUNKING; RFC 1870 SIZE).

use std::net::SocketAddr;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient};
use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_SIZE, EXT_START_TLS, EhloResponse, Response,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

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

/// Runs the conversation. `tls_failed_plain` is set when an opportunistic STARTTLS failed
/// and the caller should retry this address in plaintext.
pub(crate) async fn deliver(
    conn: &Conn<'_>,
    env: &Envelope<'_>,
    task: &TaskHandle,
) -> (HostResult, bool) {
    task.phase(TaskPhase::Connecting, Some(conn.host));
    let client = match SmtpClient::connect(conn.addr, conn.connect_timeout).await {
        Ok(mut c) => {
            c.timeout = conn.command_timeout;
            c
        }
        Err(e) => return (HostResult::TryNext(io_reply("connect", &e)), false),
    };
    if let TlsMode::Implicit(connector) = &conn.tls {
        let tls = match client.into_tls(connector, conn.host).await {
            Ok(c) => c,
            Err(e) => return (HostResult::TryNext(io_reply("TLS", &e)), false),
        };
        return (session_after_tls(tls, conn, env, task, true).await, false);
    }
    let mut client = client;
    let ehlo = match greet(&mut client, conn).await {
        Ok(e) => e,
        Err(r) => return (HostResult::TryNext(r), false),
    };
    let connector = match &conn.tls {
        TlsMode::Opportunistic(c) if ehlo.has_capability(EXT_START_TLS) => Some((c, false)),
        TlsMode::Required(c) => Some((c, true)),
        _ => None,
    };
    match connector {
        Some((connector, required)) => {
            if required && !ehlo.has_capability(EXT_START_TLS) {
                let _ = client.cmd(b"QUIT\r\n").await;
                return (
                    HostResult::TryNext(Reply::local(
                        451,
                        "4.7.10",
                        format!("{} does not offer STARTTLS, which is required", conn.host),
                    )),
                    false,
                );
            }
            match client.start_tls(connector, conn.host).await {
                Ok(tls) => (session_after_tls(tls, conn, env, task, false).await, false),
                // RFC 3207 §4.1: opportunistic TLS falls back to plaintext (new connection).
                Err(e) => (HostResult::TryNext(io_reply("STARTTLS", &e)), !required),
            }
        }
        None => (
            transaction(&mut client, &ehlo, conn, env, task).await,
            false,
        ),
    }
}

/// Plaintext retry after a failed opportunistic STARTTLS.
pub(crate) async fn deliver_plain(
    conn: &Conn<'_>,
    env: &Envelope<'_>,
    task: &TaskHandle,
) -> HostResult {
    task.phase(TaskPhase::Connecting, Some(conn.host));
    let mut client = match SmtpClient::connect(conn.addr, conn.connect_timeout).await {
        Ok(mut c) => {
            c.timeout = conn.command_timeout;
            c
        }
        Err(e) => return HostResult::TryNext(io_reply("connect", &e)),
    };
    let ehlo = match greet(&mut client, conn).await {
        Ok(e) => e,
        Err(r) => return HostResult::TryNext(r),
    };
    transaction(&mut client, &ehlo, conn, env, task).await
}

async fn session_after_tls<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: SmtpClient<S>,
    conn: &Conn<'_>,
    env: &Envelope<'_>,
    task: &TaskHandle,
    implicit: bool,
) -> HostResult {
    let ehlo = if implicit {
        match greet(&mut client, conn).await {
            Ok(e) => e,
            Err(r) => return HostResult::TryNext(r),
        }
    } else {
        // RFC 3207 §4.2: after TLS the client issues EHLO again.
        match client.ehlo(conn.helo).await {
            Ok(e) => e,
            Err(e) => return HostResult::TryNext(io_reply("EHLO after STARTTLS", &e)),
        }
    };
    transaction(&mut client, &ehlo, conn, env, task).await
}

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

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    ehlo: &EhloResponse<String>,
    conn: &Conn<'_>,
    env: &Envelope<'_>,
    task: &TaskHandle,
) -> HostResult {
    task.phase(TaskPhase::SmtpDelivery, Some(conn.host));
    let n = env.rcpts.len();
    let all = |r: Reply| vec![r; n];
    if let Some((user, password)) = &conn.auth {
        let creds = Credentials::new(user.clone(), password.clone());
        if let Err(e) = client.authenticate(&creds, ehlo).await {
            // A refused login is a configuration problem the admin can fix: defer.
            let _ = client.cmd(b"QUIT\r\n").await;
            return HostResult::Done {
                replies: all(Reply::local(
                    451,
                    "4.7.0",
                    format!("authentication at {} failed: {e}", conn.host),
                )),
                dsn: false,
            };
        }
    }
    let dsn = ehlo.has_capability(EXT_DSN);
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
        Err(r) => {
            return HostResult::Done {
                replies: all(r),
                dsn,
            };
        }
    };
    if !mail.is_ok() {
        let _ = client.cmd(b"QUIT\r\n").await;
        return HostResult::Done {
            replies: all(mail),
            dsn,
        };
    }
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(n);
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
            Ok(reply) => replies.push(Some(reply)),
            Err(lost) => {
                // Connection lost: every recipient not yet answered is deferred.
                let mut out: Vec<Reply> = replies
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| lost.clone()))
                    .collect();
                out.resize(n, lost);
                return HostResult::Done { replies: out, dsn };
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
    if accepted.is_empty() {
        let _ = client.cmd(b"QUIT\r\n").await;
        return HostResult::Done { replies: out, dsn };
    }
    let final_reply = send_data(client, ehlo, env.message, conn.command_timeout).await;
    if final_reply.is_ok() {
        task.sent();
    }
    // RFC 5321 §4.2.5: one reply after the data covers every accepted recipient.
    for i in accepted {
        out[i] = final_reply.clone();
    }
    let _ = client.cmd(b"QUIT\r\n").await;
    HostResult::Done { replies: out, dsn }
}

/// DATA (RFC 5321 §4.1.1.4, dot-stuffed by mail-send) or BDAT LAST (RFC 3030) when the
/// server offers CHUNKING. The final reply may take up to 10 minutes (RFC 5321
/// §4.5.3.2.6): twice the command timeout.
async fn send_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    ehlo: &EhloResponse<String>,
    message: &[u8],
    timeout: Duration,
) -> Reply {
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
            Ok(Ok(resp)) => Reply::from_response(&resp),
            Ok(Err(e)) => io_reply("connection lost during BDAT", &e),
            Err(_) => Reply::local(451, "4.4.2", "timeout after the message data"),
        };
    }
    let go = match client.cmd(b"DATA\r\n").await {
        Ok(r) => r,
        Err(e) => return io_reply("connection lost at DATA", &e),
    };
    if go.code != 354 {
        return Reply::from_response(&go);
    }
    let r = tokio::time::timeout(long, async {
        client.write_message(message).await?;
        client.read().await
    })
    .await;
    match r {
        Ok(Ok(resp)) => Reply::from_response(&resp),
        Ok(Err(e)) => io_reply("connection lost after DATA", &e),
        Err(_) => Reply::local(451, "4.4.2", "timeout after the message data"),
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
