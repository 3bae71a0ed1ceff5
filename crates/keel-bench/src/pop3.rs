//! POP3 workload: USER/PASS and STAT once per session, then RETR of random messages
//! (one operation each). Client `i` logs in as user `(i mod --users) + 1`, so keep
//! `--clients <= --users` for servers that lock a maildrop per session (Keel does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::Rng as _;

use crate::conn::Conn;
use crate::report::Rec;
use crate::{Budget, Common, TlsMode, fill};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Login pattern; `{n}` becomes the user number.
    #[arg(long, default_value = "user{n}")]
    user: String,
    /// Number of users.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Password of every user.
    #[arg(long, default_value = "Bench-pass-1")]
    password: String,
    /// RETRs per session before QUIT and a new login.
    #[arg(long, default_value_t = 50)]
    per_session: u64,
}

async fn ok(c: &mut Conn, what: &str) -> Result<String> {
    let l = c.line().await?;
    let text = String::from_utf8_lossy(&l).trim_end().to_owned();
    if !text.starts_with("+OK") {
        bail!("{what}: {text}");
    }
    Ok(text)
}

async fn login(common: &Common, a: &Args, id: usize) -> Result<(Conn, u32)> {
    let mut c = common.connect().await?;
    ok(&mut c, "greeting").await?;
    if common.tls == TlsMode::Starttls {
        c.send(b"STLS\r\n").await?;
        ok(&mut c, "STLS").await?;
        c.upgrade(common.connector()?).await?;
    }
    let user = fill(&a.user, id % a.users.max(1) + 1);
    c.send(format!("USER {user}\r\n").as_bytes()).await?;
    ok(&mut c, "USER").await?;
    c.send(format!("PASS {}\r\n", a.password).as_bytes())
        .await?;
    ok(&mut c, "PASS").await?;
    c.send(b"STAT\r\n").await?;
    let stat = ok(&mut c, "STAT").await?;
    let n: u32 = stat
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if n == 0 {
        bail!("maildrop of {user} is empty");
    }
    Ok((c, n))
}

pub(crate) async fn worker(id: usize, common: Arc<Common>, budget: Arc<Budget>, a: Args) -> Rec {
    let mut rec = Rec::default();
    let mut session: Option<(Conn, u32, u64)> = None;
    while budget.take() {
        if session.is_none() {
            match login(&common, &a, id).await {
                Ok((c, n)) => session = Some((c, n, 0)),
                Err(e) => {
                    rec.error(format!("login: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some((c, n, done)) = session.as_mut() else {
            continue;
        };
        let k = rand::rng().random_range(1..=*n);
        let t = Instant::now();
        let r = async {
            c.send(format!("RETR {k}\r\n").as_bytes()).await?;
            ok(c, "RETR").await?;
            c.dot_body().await
        }
        .await;
        match r {
            Ok(bytes) => rec.ok(t.elapsed(), bytes),
            Err(e) => {
                rec.error(format!("{e:#}"));
                session = None;
                continue;
            }
        }
        *done += 1;
        if *done >= a.per_session.max(1)
            && let Some((c, ..)) = session.take()
        {
            quit(c).await;
        }
    }
    if let Some((c, ..)) = session.take() {
        quit(c).await;
    }
    rec
}

async fn quit(mut c: Conn) {
    let _ = c.send(b"QUIT\r\n").await;
    let _ = c.line().await;
    c.shutdown().await;
}
