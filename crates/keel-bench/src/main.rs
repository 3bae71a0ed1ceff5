//! `keel-bench`: a bounded load generator for SMTP, IMAP and POP3 servers on loopback
//! (issue 7 §1). It speaks the raw protocols over TCP (or TLS, trusting any certificate),
//! runs N concurrent clients until a count or a duration is reached, and reports
//! throughput, p50/p95/p99 latency and errors as text or JSON (`--json`).
//!
//! Every run is bounded: `--count` operations in total, `--duration` seconds at most
//! (default 30), every read and write under `--op-timeout`, and a hard stop at
//! duration + 30 s whatever the server does.

mod conn;
mod growth;
mod imap;
mod pop3;
mod report;
mod smtp;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::report::{Outcome, Rec};

/// Load generator for mail servers on loopback (SMTP, IMAP, POP3).
#[derive(Debug, Parser)]
#[command(name = "keel-bench", version)]
pub(crate) struct Cli {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    /// Server port (default: the protocol's standard port, 993/995/465 with --tls implicit).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// TLS mode.
    #[arg(long, global = true, value_enum, default_value = "none")]
    tls: TlsMode,
    /// Concurrent clients (connections).
    #[arg(short = 'c', long, global = true, default_value_t = 10)]
    clients: usize,
    /// Total operations (messages, commands, RETRs) across all clients; 0 = until --duration.
    #[arg(short = 'n', long, global = true, default_value_t = 1000)]
    count: u64,
    /// Stop after this many seconds at most.
    #[arg(short = 'd', long, global = true, default_value_t = 30.0)]
    duration: f64,
    /// Timeout of each read or write, in seconds.
    #[arg(long, global = true, default_value_t = 30.0)]
    op_timeout: f64,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// A label copied into the report (e.g. "keel" or "postfix").
    #[arg(long, global = true, default_value = "")]
    label: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TlsMode {
    /// Plain TCP.
    None,
    /// STARTTLS (SMTP, IMAP) or STLS (POP3) after the greeting.
    Starttls,
    /// TLS from the first byte (465, 993, 995).
    Implicit,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send messages: EHLO, [STARTTLS], [AUTH PLAIN], then MAIL/RCPT/DATA per message.
    Smtp(smtp::Args),
    /// LOGIN, SELECT, then a mix of FETCH/STORE/SEARCH/APPEND; or hold connections in IDLE.
    Imap(imap::Args),
    /// USER/PASS, STAT, then RETR of random messages.
    Pop3(pop3::Args),
    /// Grow one IMAP mailbox through --sizes and time SELECT, FETCH FLAGS and SEARCH at
    /// each size (always prints JSON).
    Growth(growth::Args),
}

/// Shared run limits: a count of operations and a deadline.
pub(crate) struct Budget {
    left: AtomicI64,
    deadline: Instant,
}

impl Budget {
    fn new(count: u64, duration: Duration) -> Self {
        Self {
            left: AtomicI64::new(if count == 0 {
                i64::MAX
            } else {
                i64::try_from(count).unwrap_or(i64::MAX)
            }),
            deadline: Instant::now() + duration,
        }
    }
    /// Claims one operation; false when the count or the time is used up.
    pub(crate) fn take(&self) -> bool {
        Instant::now() < self.deadline && self.left.fetch_sub(1, Ordering::Relaxed) > 0
    }
}

/// Settings every workload needs.
pub(crate) struct Common {
    pub(crate) addr: String,
    pub(crate) tls: TlsMode,
    pub(crate) connector: Option<tokio_rustls::TlsConnector>,
    pub(crate) timeout: Duration,
    pub(crate) clients: usize,
}

impl Common {
    /// Connects, with the TLS handshake first for implicit TLS.
    pub(crate) async fn connect(&self) -> Result<conn::Conn> {
        let tls = if self.tls == TlsMode::Implicit {
            self.connector.as_ref()
        } else {
            None
        };
        conn::Conn::connect(&self.addr, tls, self.timeout).await
    }
    pub(crate) fn connector(&self) -> Result<&tokio_rustls::TlsConnector> {
        self.connector
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no TLS connector"))
    }
}

/// Fills `{n}` of a pattern with a 1-based index.
pub(crate) fn fill(pattern: &str, n: usize) -> String {
    pattern.replace("{n}", &n.to_string())
}

/// Builds a message of about `size` bytes with the given subject.
pub(crate) fn make_message(from: &str, to: &str, subject: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@bench.example>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line =
        b"The quick brown fox jumps over the lazy dog; keel-bench filler text 0123456789\r\n";
    while m.len() + line.len() <= size.max(m.len() + 2) {
        m.extend_from_slice(line);
    }
    if !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Cmd::Growth(a) = &cli.cmd {
        let out = rt.block_on(async {
            let common = common(&cli)?;
            growth::run(&common, a).await
        })?;
        println!("{}", serde_json::to_string(&out)?);
        rt.shutdown_timeout(Duration::from_secs(1));
        return Ok(());
    }
    let out = rt.block_on(run(&cli))?;
    if cli.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{out}");
    }
    // Do not wait for tasks still blocked on a misbehaving server.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The connection settings of a command line.
fn common(cli: &Cli) -> Result<Common> {
    let default_port = match (&cli.cmd, cli.tls) {
        (Cmd::Smtp(_), TlsMode::Implicit) => 465,
        (Cmd::Smtp(_), _) => 25,
        (Cmd::Imap(_) | Cmd::Growth(_), TlsMode::Implicit) => 993,
        (Cmd::Imap(_) | Cmd::Growth(_), _) => 143,
        (Cmd::Pop3(_), TlsMode::Implicit) => 995,
        (Cmd::Pop3(_), _) => 110,
    };
    Ok(Common {
        addr: format!("{}:{}", cli.host, cli.port.unwrap_or(default_port)),
        tls: cli.tls,
        connector: if cli.tls == TlsMode::None {
            None
        } else {
            Some(conn::tls_connector()?)
        },
        timeout: Duration::from_secs_f64(cli.op_timeout.max(0.1)),
        clients: cli.clients,
    })
}

async fn run(cli: &Cli) -> Result<Outcome> {
    let common = Arc::new(common(cli)?);
    let duration = Duration::from_secs_f64(cli.duration.max(0.1));
    let budget = Arc::new(Budget::new(cli.count, duration));
    let hard_stop = duration + Duration::from_secs(30);
    let started = Instant::now();

    let workload: &str;
    let mut extra = serde_json::Map::new();
    let recs: Vec<Rec> = match &cli.cmd {
        Cmd::Imap(a) if a.idle_hold > 0 => {
            let (rec, info) = tokio::time::timeout(
                Duration::from_secs_f64(a.hold_secs) + hard_stop,
                imap::idle_hold(common.clone(), a.clone()),
            )
            .await
            .map_err(|_| anyhow::anyhow!("IDLE hold exceeded its time bound"))??;
            workload = "imap-idle";
            extra = info;
            vec![rec]
        }
        cmd => {
            let mut tasks = tokio::task::JoinSet::new();
            for id in 0..cli.clients {
                let (c, b) = (common.clone(), budget.clone());
                match cmd {
                    Cmd::Smtp(a) => {
                        let a = a.clone();
                        tasks.spawn(async move { smtp::worker(id, c, b, a).await });
                    }
                    Cmd::Imap(a) => {
                        let a = a.clone();
                        tasks.spawn(async move { imap::worker(id, c, b, a).await });
                    }
                    Cmd::Pop3(a) => {
                        let a = a.clone();
                        tasks.spawn(async move { pop3::worker(id, c, b, a).await });
                    }
                    // Handled in main before the runtime starts workers.
                    Cmd::Growth(_) => {}
                }
            }
            workload = match cmd {
                Cmd::Smtp(_) => "smtp",
                Cmd::Imap(_) => "imap",
                Cmd::Pop3(_) => "pop3",
                Cmd::Growth(_) => "growth",
            };
            let mut recs = Vec::new();
            let collect = async {
                while let Some(r) = tasks.join_next().await {
                    match r {
                        Ok(rec) => recs.push(rec),
                        Err(e) => {
                            let mut rec = Rec::default();
                            rec.error(format!("client task failed: {e}"));
                            recs.push(rec);
                        }
                    }
                }
            };
            if tokio::time::timeout(hard_stop, collect).await.is_err() {
                let mut rec = Rec::default();
                rec.error("hard time bound reached; clients still running were abandoned");
                recs.push(rec);
                tasks.abort_all();
            }
            recs
        }
    };
    let mut out = Outcome::from_recs(workload, &cli.label, cli.clients, started.elapsed(), recs);
    out.extra = extra;
    Ok(out)
}
