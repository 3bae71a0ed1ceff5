//! Cost-growth workload (issue 7 §3, issue 4 §8c): one mailbox grown to each size in
//! `--sizes` (1k, 10k, 100k messages by default), and at each size the cost of the
//! operations whose cost may depend on the mailbox size:
//!
//! - `SELECT` (must not grow with the size on Keel),
//! - `UID FETCH 1:* (FLAGS)`,
//! - a header search (`SEARCH HEADER Subject "topic-7"`),
//! - a body search (`SEARCH TEXT "zebra"`, a word in 1 % of the messages).
//!
//! Each is timed `--repeat` times on one logged-in connection; the median counts. The
//! mailbox is filled with MULTIAPPEND batches (RFC 3502) of non-synchronising literals
//! (RFC 7888) from `--fill-clients` connections, so filling costs few round trips.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::Common;
use crate::conn::Conn;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Login name.
    #[arg(long, default_value = "user1")]
    user: String,
    /// Password.
    #[arg(long, default_value = "Bench-pass-1")]
    password: String,
    /// Mailbox to grow (created when missing; emptied first with --reset).
    #[arg(long, default_value = "Growth")]
    mailbox: String,
    /// Mailbox sizes to measure at, ascending, comma-separated.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    sizes: Vec<u64>,
    /// Timings per operation and size (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Connections appending in parallel while filling.
    #[arg(long, default_value_t = 4)]
    fill_clients: usize,
    /// Messages per MULTIAPPEND command.
    #[arg(long, default_value_t = 50)]
    batch: u64,
    /// Approximate size of each message, bytes.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Delete the mailbox first, so every run starts empty.
    #[arg(long)]
    reset: bool,
}

/// A plain logged-in IMAP connection.
struct Imap {
    c: Conn,
    tag: u32,
}

impl Imap {
    async fn open(common: &Common, a: &Args) -> Result<Self> {
        let mut c = common.connect().await?;
        let greeting = c.line().await?;
        if !greeting.starts_with(b"* OK") {
            bail!(
                "greeting: {}",
                String::from_utf8_lossy(&greeting).trim_end()
            );
        }
        let mut s = Self { c, tag: 0 };
        s.run(&format!(
            "LOGIN {} {}",
            quoted(&a.user),
            quoted(&a.password)
        ))
        .await
        .context("LOGIN")?;
        Ok(s)
    }

    /// Sends a command and reads to its tagged reply; the untagged lines come back.
    async fn run(&mut self, cmd: &str) -> Result<Vec<String>> {
        self.tag += 1;
        let tag = format!("g{}", self.tag);
        self.c.send(format!("{tag} {cmd}\r\n").as_bytes()).await?;
        self.finish(&tag).await
    }

    async fn finish(&mut self, tag: &str) -> Result<Vec<String>> {
        let mut untagged = Vec::new();
        loop {
            let mut line = self.c.line().await?;
            while let Some(n) = literal_len(&line) {
                self.c.exact(n).await?;
                line = self.c.line().await?;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if let Some(rest) = text.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.starts_with("OK") {
                    return Ok(untagged);
                }
                bail!("{tag} {rest}");
            }
            untagged.push(text);
        }
    }

    /// MULTIAPPEND of messages `from..to` with LITERAL+ literals, in one write.
    async fn append_batch(&mut self, mailbox: &str, from: u64, to: u64, size: usize) -> Result<()> {
        self.tag += 1;
        let tag = format!("g{}", self.tag);
        let mut out = format!("{tag} APPEND {}", quoted(mailbox)).into_bytes();
        for i in from..to {
            let msg = message(i, size);
            out.extend_from_slice(format!(" {{{}+}}\r\n", msg.len()).as_bytes());
            out.extend_from_slice(&msg);
        }
        out.extend_from_slice(b"\r\n");
        self.c.send(&out).await?;
        self.finish(&tag).await.map(|_| ())
    }

    async fn exists(&mut self, mailbox: &str) -> Result<u64> {
        let lines = self
            .run(&format!("STATUS {} (MESSAGES)", quoted(mailbox)))
            .await?;
        for l in lines {
            if let Some(i) = l.find("MESSAGES ") {
                let digits: String = l[i + 9..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                return Ok(digits.parse().unwrap_or(0));
            }
        }
        bail!("STATUS without MESSAGES")
    }
}

/// Message `i`: subjects spread over 50 topics, senders over 200 addresses, and the word
/// "zebra" in every hundredth body.
fn message(i: u64, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {s} <sender{s}@remote.test>\r\nTo: <user1@example.com>\r\n\
         Subject: growth {i} topic-{t}\r\nMessage-ID: <growth-{i}@bench.example>\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        s = i % 200,
        t = i % 50,
    )
    .into_bytes();
    if i.is_multiple_of(100) {
        m.extend_from_slice(b"A zebra crossed the report.\r\n");
    }
    let line = b"Quarterly figures, minutes and other ordinary words fill this body.\r\n";
    while m.len() + line.len() <= size.max(m.len() + 2) {
        m.extend_from_slice(line);
    }
    m
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Appends until the mailbox holds `target` messages, from several connections.
async fn fill(common: &Common, a: &Args, have: u64, target: u64) -> Result<()> {
    let clients = a.fill_clients.max(1) as u64;
    let per = (target - have).div_ceil(clients);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..clients {
        let from = have + k * per;
        let to = (from + per).min(target);
        if from >= to {
            continue;
        }
        let mut s = Imap::open(common, a).await?;
        let (mailbox, batch, size) = (a.mailbox.clone(), a.batch.max(1), a.size);
        tasks.spawn(async move {
            let mut i = from;
            while i < to {
                let end = (i + batch).min(to);
                s.append_batch(&mailbox, i, end, size).await?;
                i = end;
            }
            s.run("LOGOUT").await.ok();
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("fill task")??;
    }
    Ok(())
}

/// Runs the whole growth workload; returns `{"points": [...]}`.
pub(crate) async fn run(common: &Common, a: &Args) -> Result<Value> {
    let mut s = Imap::open(common, a).await?;
    if a.reset {
        let _ = s.run(&format!("DELETE {}", quoted(&a.mailbox))).await;
    }
    let _ = s.run(&format!("CREATE {}", quoted(&a.mailbox))).await;
    let mut points = Vec::new();
    let mut sizes = a.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for &size in &sizes {
        let have = s.exists(&a.mailbox).await?;
        let fill_started = Instant::now();
        if have < size {
            fill(common, a, have, size).await?;
        }
        let fill_secs = fill_started.elapsed().as_secs_f64();
        let now = s.exists(&a.mailbox).await?;
        if now < size {
            bail!("mailbox holds {now} messages after filling to {size}");
        }
        let (mut select, mut fetch, mut header, mut text) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut fetched, mut header_hits, mut text_hits) = (0usize, 0usize, 0usize);
        for _ in 0..a.repeat.max(1) {
            let t = Instant::now();
            s.run(&format!("SELECT {}", quoted(&a.mailbox))).await?;
            select.push(t.elapsed());
            let t = Instant::now();
            fetched = s.run("UID FETCH 1:* (FLAGS)").await?.len();
            fetch.push(t.elapsed());
            let t = Instant::now();
            header_hits = hits(&s.run("SEARCH HEADER Subject \"topic-7\"").await?);
            header.push(t.elapsed());
            let t = Instant::now();
            text_hits = hits(&s.run("SEARCH TEXT \"zebra\"").await?);
            text.push(t.elapsed());
            s.run("CLOSE").await?;
        }
        points.push(json!({
            "messages": now,
            "fill_secs": fill_secs,
            "select_ms": median_ms(select),
            "fetch_flags_ms": median_ms(fetch),
            "search_header_ms": median_ms(header),
            "search_text_ms": median_ms(text),
            "fetched": fetched,
            "search_header_hits": header_hits,
            "search_text_hits": text_hits,
        }));
    }
    s.run("LOGOUT").await.ok();
    Ok(json!({ "points": points }))
}

/// Numbers in the `* SEARCH` lines.
fn hits(untagged: &[String]) -> usize {
    untagged
        .iter()
        .filter_map(|l| l.strip_prefix("* SEARCH"))
        .map(|l| l.split_whitespace().count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_topics_and_rare_words() {
        let m = String::from_utf8(message(700, 2048)).unwrap();
        assert!(m.contains("Subject: growth 700 topic-0\r\n"));
        assert!(m.contains("zebra"));
        assert!(
            !String::from_utf8(message(701, 2048))
                .unwrap()
                .contains("zebra")
        );
        assert!(m.len() <= 2048 && m.len() > 1900);
    }

    #[test]
    fn search_hits_are_counted() {
        assert_eq!(hits(&["* SEARCH 1 2 3".into(), "* OK x".into()]), 3);
        assert_eq!(hits(&["* SEARCH".into()]), 0);
    }
}
