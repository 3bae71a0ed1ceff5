//! ETRN download (guide §12.5, §7.10; RFC 1985): Keel as the ETRN *client*. It connects
//! to each configured server that holds mail for our domains and asks for it with
//! `ETRN <domain>`; the server then opens its own connection back to our MX (RFC 1985
//! §4: ETRN is asynchronous, the mail does not come on this connection).
//!
//! Implementation notes:
//! - One connection per server, every address in turn until one answers the greeting;
//!   EHLO, opportunistic STARTTLS (any certificate, as for MX delivery, RFC 3207 §4.1),
//!   SMTP AUTH when the server entry has credentials (guide §12.5 "Authentication is
//!   required"), then one `ETRN` per domain and `QUIT`.
//! - Each reply waits at most the `etrn_download_timeout_secs` (guide §12.5 "Options":
//!   a server may never answer). Replies 250–253 count as accepted (RFC 1985 §5); the
//!   others, and connection failures, are returned as not accepted and written to the
//!   warning log by the runner.

use std::net::SocketAddr;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient};
use smtp_proto::{EXT_START_TLS, EhloResponse};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::split_host_port;
use crate::dns::Resolver;
use crate::settings::EtrnServer;

/// The answer to one `ETRN <domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtrnOutcome {
    /// The server as configured.
    pub server: String,
    /// The domain asked for.
    pub domain: String,
    /// The reply line (`253 2.0.0 OK, 1 pending messages …`) or the local error.
    pub reply: String,
    /// RFC 1985 §5: 250, 251, 252 or 253.
    pub accepted: bool,
}

/// What one round needs.
pub(crate) struct EtrnParams<'a> {
    pub(crate) helo: &'a str,
    pub(crate) tls: Option<&'a TlsConnector>,
    pub(crate) timeout: Duration,
}

fn outcomes(server: &EtrnServer, reply: &str) -> Vec<EtrnOutcome> {
    server
        .domains
        .iter()
        .map(|d| EtrnOutcome {
            server: server.host.clone(),
            domain: d.clone(),
            reply: reply.to_owned(),
            accepted: false,
        })
        .collect()
}

/// Sends ETRN for every domain of `server`.
pub(crate) async fn send_etrn(
    server: &EtrnServer,
    resolver: &Resolver,
    p: &EtrnParams<'_>,
) -> Vec<EtrnOutcome> {
    let (host, port) = split_host_port(&server.host, 25);
    let ips = match resolver.ip_addrs(&host).await {
        Ok(ips) => ips,
        Err(e) => return outcomes(server, &format!("DNS: {e}")),
    };
    let mut last = String::from("no address");
    for ip in ips {
        let mut client = match SmtpClient::connect(SocketAddr::new(ip, port), p.timeout).await {
            Ok(c) => c,
            Err(e) => {
                last = format!("connect to {ip}: {e}");
                continue;
            }
        };
        client.timeout = p.timeout;
        let greeting = match tokio::time::timeout(p.timeout, client.read()).await {
            Ok(Ok(g)) if g.code / 100 == 2 => g,
            Ok(Ok(g)) => {
                last = format!("greeting: {} {}", g.code, g.message);
                continue;
            }
            Ok(Err(e)) => {
                last = format!("greeting: {e}");
                continue;
            }
            Err(_) => {
                last = "timeout waiting for the greeting".to_owned();
                continue;
            }
        };
        let _ = greeting;
        let ehlo = match client.ehlo(p.helo).await {
            Ok(e) => e,
            Err(e) => return outcomes(server, &format!("EHLO: {e}")),
        };
        return match p.tls {
            Some(connector) if ehlo.has_capability(EXT_START_TLS) => {
                match client.start_tls(connector, &host).await {
                    Ok(mut tls) => match tls.ehlo(p.helo).await {
                        // RFC 3207 §4.2: EHLO again after TLS.
                        Ok(ehlo) => etrn_session(&mut tls, &ehlo, server).await,
                        Err(e) => outcomes(server, &format!("EHLO after STARTTLS: {e}")),
                    },
                    Err(e) => outcomes(server, &format!("STARTTLS: {e}")),
                }
            }
            _ => etrn_session(&mut client, &ehlo, server).await,
        };
    }
    outcomes(server, &last)
}

async fn etrn_session<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    ehlo: &EhloResponse<String>,
    server: &EtrnServer,
) -> Vec<EtrnOutcome> {
    if let Some(a) = &server.auth {
        let creds = Credentials::new(a.user.clone(), a.password.clone());
        if let Err(e) = client.authenticate(&creds, ehlo).await {
            let _ = client.cmd(b"QUIT\r\n").await;
            return outcomes(server, &format!("authentication failed: {e}"));
        }
    }
    let mut out = Vec::new();
    for domain in &server.domains {
        let (reply, accepted) = match client.cmd(format!("ETRN {domain}\r\n").as_bytes()).await {
            Ok(r) => (
                format!("{} {}", r.code, r.message.replace(['\r', '\n'], " ")),
                (250..=253).contains(&r.code),
            ),
            Err(e) => (format!("ETRN: {e}"), false),
        };
        out.push(EtrnOutcome {
            server: server.host.clone(),
            domain: domain.clone(),
            reply,
            accepted,
        });
    }
    let _ = client.cmd(b"QUIT\r\n").await;
    out
}
