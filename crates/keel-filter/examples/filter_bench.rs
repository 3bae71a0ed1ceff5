//! Filtering cost per message (issue 6 §10), the Keel side of `bench/filter.sh`.
//!
//! ```text
//! cargo run --release -p keel-filter --example filter_bench -- \
//!     --corpus DIR --train DIR [--dns off|local] [--rounds N]
//! ```
//!
//! `DIR/ham/*.eml` and `DIR/spam/*.eml` come from `bench/filter-corpus.py`. The scorer
//! runs with every local test on: the structure checks, custom rules on headers and
//! body, GTUBE, and Bayes trained on `--train` (active: 200 + 200 messages, guide §13.4).
//! `--dns off` (the default) switches the DNS tests off, as `spamd -L` does on the
//! SpamAssassin side; `--dns local` turns on SPF, DKIM, DMARC, one DNSBL and one URIBL
//! zone, all answered by an in-process authoritative server on 127.0.0.1 (the tests'
//! `test_zone`). Messages are rated one after the other, one at a time. The last line is
//! `RESULT <messages> <seconds> <messages/s> <ham flagged> <spam flagged>`.

#[path = "../../keel-smtp/src/dns/test_zone.rs"]
mod test_zone;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use keel_core::ipgroup::IpGroups;
use keel_filter::{
    Bayes, CustomRule, DnsList, FilterDns, HitAction, RuleAction, RuleField, RuleMatch, ScanInput,
    Scorer, SpamSettings,
};
use test_zone::{TestDns, TestRecord};

const HAM_DOMAINS: [&str; 4] = [
    "example.org",
    "lists.example.net",
    "corp.example.com",
    "uni.example.edu",
];
const SPAM_DOMAINS: [&str; 4] = [
    "cheap-meds.example",
    "win-big.example",
    "promo-blast.example",
    "lucky.example",
];

struct Args {
    corpus: PathBuf,
    train: PathBuf,
    dns_local: bool,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut corpus = None;
    let mut train = None;
    let mut dns_local = false;
    let mut rounds = 1;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--corpus" => corpus = Some(PathBuf::from(value()?)),
            "--train" => train = Some(PathBuf::from(value()?)),
            "--dns" => dns_local = value()? == "local",
            "--rounds" => rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        corpus: corpus.ok_or("--corpus is required")?,
        train: train.ok_or("--train is required")?,
        dns_local,
        rounds,
    })
}

fn read_dir(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

fn rule(field: RuleField, text: &str, score: f64) -> CustomRule {
    CustomRule {
        description: String::new(),
        enabled: true,
        field,
        matcher: RuleMatch::Substring(text.into()),
        action: RuleAction::Score(score),
    }
}

/// A rule set of the size an admin keeps (guide §13.3).
fn rules() -> Vec<CustomRule> {
    let mut r = Vec::new();
    for w in ["casino", "viagra", "lottery", "jackpot", "!!!", "winner"] {
        r.push(rule(RuleField::Subject, w, 1.5));
    }
    for w in [
        "risk-free",
        "no obligation",
        "guaranteed income",
        "replica watches",
        "click here",
        "act now",
        "unsubscribe",
        "bitcoin investment",
    ] {
        r.push(rule(RuleField::Body, w, 1.0));
    }
    r.push(rule(RuleField::Header("X-Mailer".into()), "bulk", 1.0));
    r.push(CustomRule {
        description: String::new(),
        enabled: true,
        field: RuleField::Header("Reply-To".into()),
        matcher: RuleMatch::Domain("lucky.example".into()),
        action: RuleAction::Score(2.0),
    });
    r
}

/// Sender of a corpus message: its `Return-Path`.
fn sender(m: &[u8]) -> String {
    let v = keel_filter::message::MessageView::new(m, 0);
    v.header("Return-Path")
        .unwrap_or_default()
        .trim_matches(['<', '>', ' '])
        .to_owned()
}

async fn zones() -> TestDns {
    let mut zones = Vec::new();
    for (d, spf) in HAM_DOMAINS
        .iter()
        .map(|d| (d, "v=spf1 ip4:192.0.2.0/24 -all"))
        .chain(SPAM_DOMAINS.iter().map(|d| (d, "v=spf1 -all")))
    {
        zones.push((
            (*d).to_owned(),
            vec![
                TestRecord::txt(d, spf),
                TestRecord::txt(&format!("_dmarc.{d}"), "v=DMARC1; p=none"),
                TestRecord::a(&format!("mail.{d}"), "192.0.2.10"),
            ],
        ));
    }
    // One listed client and one listed link domain.
    zones.push((
        "bl.bench.test".to_owned(),
        vec![TestRecord::a("1.2.0.192.bl.bench.test", "127.0.0.2")],
    ));
    zones.push((
        "uribl.bench.test".to_owned(),
        vec![TestRecord::a(
            "cheap-meds.example.uribl.bench.test",
            "127.0.0.2",
        )],
    ));
    TestDns::start_zones(zones).await
}

async fn run(a: Args) -> Result<(), String> {
    let ham = read_dir(&a.corpus.join("ham"))?;
    let spam = read_dir(&a.corpus.join("spam"))?;
    let train_ham = read_dir(&a.train.join("ham"))?;
    let train_spam = read_dir(&a.train.join("spam"))?;

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let meta = keel_store::sqlite::SqliteStore::open(&dir.path().join("bayes.sqlite"))
        .map_err(|e| e.to_string())?;
    let bayes = Bayes::new(Arc::new(meta));
    let t = Instant::now();
    for m in &train_ham {
        bayes.train(m, false).map_err(|e| e.to_string())?;
    }
    for m in &train_spam {
        bayes.train(m, true).map_err(|e| e.to_string())?;
    }
    eprintln!(
        "Bayes trained on {} ham + {} spam in {:.1?}",
        train_ham.len(),
        train_spam.len(),
        t.elapsed()
    );

    let dns = zones().await;
    let mut settings = SpamSettings {
        exempt_private_ranges: false,
        exempt_loopback: false,
        dns_server: Some(dns.addr()),
        rules: rules(),
        ..SpamSettings::default()
    };
    if a.dns_local {
        let list = |zone: &str| DnsList {
            zone: zone.into(),
            description: String::new(),
            action: HitAction::Score(2.0),
            enabled: true,
            codes: Vec::new(),
        };
        settings.dnsbl = vec![list("bl.bench.test")];
        settings.uribl = vec![list("uribl.bench.test")];
    } else {
        settings.dnsbl = Vec::new();
        settings.uribl = Vec::new();
        settings.spf.enabled = false;
        settings.dkim.enabled = false;
        settings.dmarc.enabled = false;
    }
    let resolver = FilterDns::with_nameserver(dns.addr()).map_err(|e| e.to_string())?;
    let scorer = Scorer::with_dns(settings, IpGroups::default(), "mx.example.com", resolver)
        .with_bayes(bayes);

    let rcpts = vec!["alice@example.com".to_owned()];
    let client: IpAddr = "192.0.2.1".parse().map_err(|e| format!("{e}"))?;
    let mut flagged = [0usize; 2];
    let mut count = 0usize;
    let started = Instant::now();
    for round in 0..a.rounds {
        for (class, set) in [(0usize, &ham), (1, &spam)] {
            for m in set.iter() {
                let from = sender(m);
                let helo = from
                    .rsplit_once('@')
                    .map(|(_, d)| format!("mail.{d}"))
                    .unwrap_or_default();
                let v = scorer
                    .score(&ScanInput {
                        client_ip: client,
                        helo: &helo,
                        mail_from: &from,
                        rcpts: &rcpts,
                        message: m,
                        authenticated: false,
                        trusted: false,
                        sender_allowed: false,
                    })
                    .await;
                if round == 0 && v.is_spam() {
                    flagged[class] += 1;
                }
                count += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = count as f64 / secs;
    eprintln!(
        "keel ({} DNS): {count} messages in {secs:.2} s = {rate:.1} messages/s; \
flagged {} of {} ham, {} of {} spam",
        if a.dns_local { "local" } else { "no" },
        flagged[0],
        ham.len(),
        flagged[1],
        spam.len()
    );
    println!(
        "RESULT {count} {secs:.3} {rate:.1} {} {}",
        flagged[0], flagged[1]
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = match args() {
        Ok(a) => run(a).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("filter_bench: {e}");
        std::process::exit(2);
    }
}
