//! SMTP workload: one message = MAIL, RCPT × k, DATA, body, and the final `250`.
//! Latency is measured from MAIL FROM to the reply after the dot, so it includes the
//! server's durable acceptance (and, for a local recipient, its delivery if it delivers
//! before answering).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use base64::Engine as _;

use crate::conn::Conn;
use crate::report::Rec;
use crate::{Budget, Common, TlsMode, fill, make_message};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Envelope sender.
    #[arg(long, default_value = "bench@remote.test")]
    from: String,
    /// Recipient pattern; `{n}` becomes 1..=--users, rotating per message.
    #[arg(long, default_value = "user{n}@example.com")]
    to: String,
    /// Number of distinct recipients `{n}` runs through.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Recipients per message.
    #[arg(long, default_value_t = 1)]
    rcpts: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 10_240)]
    size: usize,
    /// Messages per connection before QUIT and reconnect.
    #[arg(long, default_value_t = 100)]
    per_conn: u64,
    /// AUTH PLAIN credentials `user:password` (after STARTTLS when --tls starttls).
    #[arg(long)]
    auth: Option<String>,
    /// EHLO name.
    #[arg(long, default_value = "bench.remote.test")]
    helo: String,
}

async fn expect(c: &mut Conn, code: u16, what: &str) -> Result<()> {
    let (got, text) = c.smtp_reply().await?;
    if got != code {
        bail!("{what}: expected {code}, got {text}");
    }
    Ok(())
}

async fn session(common: &Common, a: &Args) -> Result<Conn> {
    let mut c = common.connect().await?;
    expect(&mut c, 220, "greeting").await?;
    c.send(format!("EHLO {}\r\n", a.helo).as_bytes()).await?;
    expect(&mut c, 250, "EHLO").await?;
    if common.tls == TlsMode::Starttls {
        c.send(b"STARTTLS\r\n").await?;
        expect(&mut c, 220, "STARTTLS").await?;
        c.upgrade(common.connector()?).await?;
        c.send(format!("EHLO {}\r\n", a.helo).as_bytes()).await?;
        expect(&mut c, 250, "EHLO after STARTTLS").await?;
    }
    if let Some(auth) = &a.auth {
        let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
        let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
        c.send(format!("AUTH PLAIN {ir}\r\n").as_bytes()).await?;
        expect(&mut c, 235, "AUTH PLAIN").await?;
    }
    Ok(c)
}

async fn one_message(c: &mut Conn, a: &Args, id: usize, seq: u64) -> Result<u64> {
    c.send(format!("MAIL FROM:<{}>\r\n", a.from).as_bytes())
        .await?;
    expect(c, 250, "MAIL").await?;
    let first_to = fill(
        &a.to,
        ((id as u64 + seq) % a.users.max(1) as u64) as usize + 1,
    );
    for r in 0..a.rcpts.max(1) {
        let n = ((id as u64 + seq + r as u64) % a.users.max(1) as u64) as usize + 1;
        c.send(format!("RCPT TO:<{}>\r\n", fill(&a.to, n)).as_bytes())
            .await?;
        expect(c, 250, "RCPT").await?;
    }
    c.send(b"DATA\r\n").await?;
    expect(c, 354, "DATA").await?;
    let mut msg = make_message(&a.from, &first_to, &format!("bench-{id}-{seq}"), a.size);
    msg.extend_from_slice(b".\r\n");
    c.send(&msg).await?;
    expect(c, 250, "end of DATA").await?;
    Ok(msg.len() as u64)
}

pub(crate) async fn worker(id: usize, common: Arc<Common>, budget: Arc<Budget>, a: Args) -> Rec {
    let mut rec = Rec::default();
    let mut seq = 0u64;
    let mut conn: Option<(Conn, u64)> = None;
    while budget.take() {
        if conn.is_none() {
            match session(&common, &a).await {
                Ok(c) => conn = Some((c, 0)),
                Err(e) => {
                    rec.error(format!("session setup: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some((c, sent)) = conn.as_mut() else {
            continue;
        };
        let t = Instant::now();
        match one_message(c, &a, id, seq).await {
            Ok(bytes) => rec.ok(t.elapsed(), bytes),
            Err(e) => {
                rec.error(format!("{e:#}"));
                conn = None;
                seq += 1;
                continue;
            }
        }
        seq += 1;
        *sent += 1;
        if *sent >= a.per_conn.max(1)
            && let Some((mut c, _)) = conn.take()
        {
            let _ = c.send(b"QUIT\r\n").await;
            let _ = c.smtp_reply().await;
            c.shutdown().await;
        }
    }
    if let Some((mut c, _)) = conn.take() {
        let _ = c.send(b"QUIT\r\n").await;
        let _ = c.smtp_reply().await;
        c.shutdown().await;
    }
    rec
}
