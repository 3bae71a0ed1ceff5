//! IMAP workload: LOGIN and SELECT once per session, then a weighted mix of FETCH, STORE,
//! SEARCH and APPEND (one operation each). `--idle-hold N` instead opens N connections,
//! puts each in IDLE, holds them for `--hold-secs` and reports the server's memory
//! (RSS/PSS of `--rss-pid` processes or of processes whose command line contains
//! `--rss-match`) before and while they are held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rand::Rng as _;

use crate::conn::Conn;
use crate::report::Rec;
use crate::{Budget, Common, TlsMode, fill, make_message};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Login pattern; `{n}` becomes the user number.
    #[arg(long, default_value = "user{n}")]
    user: String,
    /// Number of users (client `i` logs in as user `(i mod users) + 1`).
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Password of every user.
    #[arg(long, default_value = "Bench-pass-1")]
    password: String,
    /// Mailbox to select.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,
    /// Weights of the operations, e.g. `fetch=4,store=2,search=2,append=1`.
    #[arg(long, default_value = "fetch=4,store=2,search=2,append=1")]
    mix: String,
    /// Size of appended messages in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Hold this many connections in IDLE instead of running the mix.
    #[arg(long, default_value_t = 0)]
    pub(crate) idle_hold: usize,
    /// How long to hold the IDLE connections, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) hold_secs: f64,
    /// Server process to measure (repeatable).
    #[arg(long)]
    rss_pid: Vec<u32>,
    /// Measure every process whose command line contains this text (e.g. `dovecot`).
    #[arg(long)]
    rss_match: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Fetch,
    Store,
    Search,
    Append,
}

fn parse_mix(mix: &str) -> Result<Vec<(Op, u32)>> {
    let mut out = Vec::new();
    for part in mix.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, w) = part.split_once('=').unwrap_or((part, "1"));
        let op = match name.trim().to_ascii_lowercase().as_str() {
            "fetch" => Op::Fetch,
            "store" => Op::Store,
            "search" => Op::Search,
            "append" => Op::Append,
            other => bail!("unknown IMAP operation {other:?} in --mix"),
        };
        let w: u32 = w.trim().parse().context("weight in --mix")?;
        out.push((op, w));
    }
    if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        bail!("--mix has no positive weight");
    }
    Ok(out)
}

fn pick(mix: &[(Op, u32)]) -> Op {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut r = rand::rng().random_range(0..total);
    for &(op, w) in mix {
        if r < w {
            return op;
        }
        r -= w;
    }
    Op::Fetch
}

/// A logged-in IMAP session.
struct Session {
    c: Conn,
    tag: u32,
    exists: u32,
}

/// A tagged command's outcome: the untagged lines (literals skipped) and bytes read.
struct Done {
    untagged: Vec<String>,
    bytes: u64,
}

impl Session {
    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    /// Reads responses up to the tagged one; fails unless it is OK.
    async fn finish(&mut self, tag: &str) -> Result<Done> {
        let mut untagged: Vec<String> = Vec::new();
        let mut bytes = 0u64;
        loop {
            let mut line = self.c.line().await?;
            bytes += line.len() as u64;
            // A literal at the end of the line: read it, then the rest of the response.
            while let Some(n) = literal_len(&line) {
                bytes += self.c.exact(n).await?.len() as u64;
                let more = self.c.line().await?;
                bytes += more.len() as u64;
                line = more;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if let Some(rest) = text.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.starts_with("OK") {
                    for u in &untagged {
                        self.note(u);
                    }
                    return Ok(Done { untagged, bytes });
                }
                bail!("{tag} {rest}");
            }
            if text.starts_with("* BYE") {
                bail!("server said {text}");
            }
            untagged.push(text);
        }
    }

    fn note(&mut self, untagged: &str) {
        let mut w = untagged.split_whitespace();
        if let (Some("*"), Some(n), Some(kw)) = (w.next(), w.next(), w.next()) {
            if kw.eq_ignore_ascii_case("EXISTS") {
                self.exists = n.parse().unwrap_or(self.exists);
            } else if kw.eq_ignore_ascii_case("EXPUNGE") {
                self.exists = self.exists.saturating_sub(1);
            }
        }
    }

    async fn command(&mut self, cmd: &str) -> Result<Done> {
        let tag = self.next_tag();
        self.c.send(format!("{tag} {cmd}\r\n").as_bytes()).await?;
        self.finish(&tag).await
    }

    async fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<u64> {
        let tag = self.next_tag();
        self.c
            .send(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes())
            .await?;
        let l = self.c.line().await?;
        if !l.starts_with(b"+") {
            bail!("APPEND: {}", String::from_utf8_lossy(&l).trim_end());
        }
        self.c.send(msg).await?;
        self.c.send(b"\r\n").await?;
        self.finish(&tag).await?;
        Ok(msg.len() as u64)
    }
}

/// `{123}` or `{123+}` at the end of a line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = &l[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn login(common: &Common, a: &Args, id: usize) -> Result<Session> {
    let mut c = common.connect().await?;
    let greeting = c.line().await?;
    if !greeting.starts_with(b"* OK") {
        bail!(
            "greeting: {}",
            String::from_utf8_lossy(&greeting).trim_end()
        );
    }
    let mut s = Session {
        c,
        tag: 0,
        exists: 0,
    };
    if common.tls == TlsMode::Starttls {
        s.command("STARTTLS").await?;
        s.c.upgrade(common.connector()?).await?;
    }
    let user = fill(&a.user, id % a.users.max(1) + 1);
    s.command(&format!("LOGIN {} {}", quoted(&user), quoted(&a.password)))
        .await
        .context("LOGIN")?;
    s.command(&format!("SELECT {}", quoted(&a.mailbox)))
        .await
        .context("SELECT")?;
    Ok(s)
}

async fn one_op(s: &mut Session, a: &Args, op: Op, id: usize, seq: u64) -> Result<u64> {
    // With an empty mailbox the read operations have nothing to act on: append instead.
    let op = if s.exists == 0 { Op::Append } else { op };
    let n = if s.exists > 0 {
        rand::rng().random_range(1..=s.exists)
    } else {
        1
    };
    match op {
        Op::Fetch => Ok(s
            .command(&format!("FETCH {n} (FLAGS RFC822.SIZE BODY.PEEK[])"))
            .await?
            .bytes),
        Op::Store => {
            let sign = if seq.is_multiple_of(2) { '+' } else { '-' };
            Ok(s.command(&format!("STORE {n} {sign}FLAGS (\\Flagged)"))
                .await?
                .bytes)
        }
        Op::Search => {
            let d = s.command("SEARCH SUBJECT \"bench-1-\"").await?;
            if !d.untagged.iter().any(|u| u.starts_with("* SEARCH")) {
                bail!("SEARCH without a * SEARCH response");
            }
            Ok(d.bytes)
        }
        Op::Append => {
            let msg = make_message(
                "bench@remote.test",
                "user@example.com",
                &format!("bench-append-{id}-{seq}"),
                a.size,
            );
            let bytes = s.append(&quoted(&a.mailbox), &msg).await?;
            // Learn the new EXISTS count.
            s.command("NOOP").await?;
            Ok(bytes)
        }
    }
}

pub(crate) async fn worker(id: usize, common: Arc<Common>, budget: Arc<Budget>, a: Args) -> Rec {
    let mut rec = Rec::default();
    let mix = match parse_mix(&a.mix) {
        Ok(m) => m,
        Err(e) => {
            rec.error(e);
            return rec;
        }
    };
    let mut session: Option<Session> = None;
    let mut seq = 0u64;
    while budget.take() {
        if session.is_none() {
            match login(&common, &a, id).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    rec.error(format!("login: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(s) = session.as_mut() else { continue };
        let op = pick(&mix);
        let t = Instant::now();
        match one_op(s, &a, op, id, seq).await {
            Ok(bytes) => rec.ok(t.elapsed(), bytes),
            Err(e) => {
                rec.error(format!("{op:?}: {e:#}"));
                session = None;
            }
        }
        seq += 1;
    }
    if let Some(mut s) = session.take() {
        let _ = s.command("LOGOUT").await;
        s.c.shutdown().await;
    }
    rec
}

/// Memory of the measured processes: (count, RSS kB, PSS kB).
fn memory(pids: &[u32], pattern: Option<&str>) -> (usize, u64, u64) {
    let mut all: Vec<u32> = pids.to_vec();
    if let Some(pat) = pattern
        && let Ok(dir) = std::fs::read_dir("/proc")
    {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if pid != std::process::id()
                && String::from_utf8_lossy(&cmd)
                    .replace('\0', " ")
                    .contains(pat)
            {
                all.push(pid);
            }
        }
    }
    let field = |path: String, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix(key)
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
            })
            .unwrap_or(0)
    };
    let (mut rss, mut pss) = (0, 0);
    for pid in &all {
        rss += field(format!("/proc/{pid}/status"), "VmRSS:");
        pss += field(format!("/proc/{pid}/smaps_rollup"), "Pss:");
    }
    (all.len(), rss, pss)
}

/// Opens `idle_hold` connections in IDLE, measures memory, holds, then logs out.
pub(crate) async fn idle_hold(
    common: Arc<Common>,
    a: Args,
) -> Result<(Rec, serde_json::Map<String, serde_json::Value>)> {
    let (procs0, rss0, pss0) = memory(&a.rss_pid, a.rss_match.as_deref());
    let gate = Arc::new(tokio::sync::Semaphore::new(common.clients.clamp(1, 200)));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..a.idle_hold {
        let (common, a, gate) = (common.clone(), a.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| anyhow!("{e}"))?;
            let t = Instant::now();
            let mut s = login(&common, &a, id).await?;
            let tag = s.next_tag();
            s.c.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
            let l = s.c.line().await?;
            if !l.starts_with(b"+") {
                bail!("IDLE: {}", String::from_utf8_lossy(&l).trim_end());
            }
            Ok::<_, anyhow::Error>((s, tag, t.elapsed()))
        });
    }
    let mut rec = Rec::default();
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok((s, tag, took))) => {
                rec.ok(took, 0);
                held.push((s, tag));
            }
            Ok(Err(e)) => rec.error(format!("{e:#}")),
            Err(e) => rec.error(format!("task: {e}")),
        }
    }
    // Let the server settle, then measure while every connection idles.
    tokio::time::sleep(Duration::from_secs_f64(a.hold_secs.clamp(0.5, 3600.0))).await;
    let (procs1, rss1, pss1) = memory(&a.rss_pid, a.rss_match.as_deref());
    let n = held.len().max(1) as f64;
    let mut info = serde_json::Map::new();
    info.insert("connections_idle".into(), held.len().into());
    info.insert("processes_before".into(), procs0.into());
    info.insert("processes_held".into(), procs1.into());
    info.insert("rss_before_kb".into(), rss0.into());
    info.insert("rss_held_kb".into(), rss1.into());
    info.insert("pss_before_kb".into(), pss0.into());
    info.insert("pss_held_kb".into(), pss1.into());
    info.insert(
        "rss_per_conn_kb".into(),
        ((rss1 as f64 - rss0 as f64) / n).into(),
    );
    info.insert(
        "pss_per_conn_kb".into(),
        ((pss1 as f64 - pss0 as f64) / n).into(),
    );
    let mut done = tokio::task::JoinSet::new();
    for (mut s, tag) in held {
        done.spawn(async move {
            let _ = s.c.send(b"DONE\r\n").await;
            let _ = s.finish(&tag).await;
            let _ = s.command("LOGOUT").await;
            s.c.shutdown().await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while done.join_next().await.is_some() {}
    })
    .await;
    Ok((rec, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths_are_found_at_line_ends() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"A APPEND x {5+}\r\n"), Some(5));
        assert_eq!(literal_len(b"* OK done\r\n"), None);
        assert_eq!(literal_len(b"* OK {x}\r\n"), None);
    }

    #[test]
    fn mixes_parse_and_reject_nonsense() {
        assert_eq!(parse_mix("fetch=1,append=3").unwrap().len(), 2);
        assert!(parse_mix("fetch=0").is_err());
        assert!(parse_mix("delete=1").is_err());
    }
}
