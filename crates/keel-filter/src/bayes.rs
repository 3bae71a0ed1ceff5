//! The Bayes classifier (guide §13.4, requirements-1 §0.9 and §0.11), written here: a
//! tokenizer, per-token spam/ham counts in the MetaStore, and Robinson's token
//! probabilities combined with Fisher's chi-square method (the SpamBayes scheme).
//!
//! Implementation notes:
//! - Active only after [`BayesSettings::min_spam`] spam and [`BayesSettings::min_ham`]
//!   ham messages were learned (guide §13.4: 200 + 200). Duplicates count once: each
//!   learned message is remembered by a digest of its body (`bayes_seen/<digest>`), so
//!   learning the same message again is a no-op and learning it with the other label
//!   moves it (the user corrected a mistake). Learning goes on after activation.
//! - Storage choice: one document per token would mean thousands of store rows per
//!   message, so the model is kept as [`SHARDS`] documents `bayes_tokens/<00..3f>`, each a
//!   packed array of `(token hash u64, spam u32, ham u32)` records (base64), sharded by
//!   the top bits of the hash, plus `bayes/state` holding the message counts, a random
//!   model id and a generation number bumped by every training. Training rewrites only
//!   the shards its tokens fall in, in one store transaction with the state and the
//!   `bayes_seen` document, so concurrent trainers (SMTP admin, IMAP moves) never lose an
//!   update. Classification reads the small state document and uses a process-wide
//!   in-memory copy of the model as long as the generation has not changed; otherwise it
//!   reloads the shards (64 reads). Training is rare next to classification.
//! - Tokens are 64-bit BLAKE3 prefixes of the token text; collisions are harmless at
//!   this width. Each distinct token counts once per message (Graham's scheme).
//! - Tokenizer: header tokens with a prefix (`subject:`, `from:`, `fromdom:`,
//!   `replyto:`, `ct:`, `mailer:`), body words of 3–24 characters lower-cased from the
//!   decoded text parts (HTML converted to text by mail-parser), long words summarised
//!   as `skip:<first char><length/10>`, link host names as `url:<host>`, and adjacent
//!   word pairs (bigrams). Only the first `max_bytes` of the message are read (guide
//!   §13.4: 128 KB), and at most [`MAX_TOKENS`] tokens are kept, so hostile input costs
//!   bounded time.
//! - Combining (Robinson, "A statistical approach to the spam problem", 2003; Fisher
//!   chi-square as in SpamBayes): f(w) = (s·x + n·p(w)) / (s + n) with s = 0.45, x = 0.5;
//!   the [`MAX_DISCRIMINATORS`] tokens farthest from 0.5 (at least 0.1 away) are
//!   combined; the result is in 0..1, spam near 1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use keel_store::{DocTxn, MetaStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

/// Number of token shards.
pub const SHARDS: usize = 64;
/// Tokens kept per message.
pub const MAX_TOKENS: usize = 3000;
/// Tokens combined per verdict.
pub const MAX_DISCRIMINATORS: usize = 150;
/// MetaStore kind of the state document (key `state`).
pub const STATE_KIND: &str = "bayes";
/// MetaStore kind of the token shards.
pub const TOKENS_KIND: &str = "bayes_tokens";
/// MetaStore kind of the learned-message digests.
pub const SEEN_KIND: &str = "bayes_seen";

const STATE_KEY: &str = "state";
const UNKNOWN_STRENGTH: f64 = 0.45;
const UNKNOWN_PROB: f64 = 0.5;
const MIN_STRENGTH: f64 = 0.1;
const RECORD: usize = 16;

/// Bayes settings, part of the antispam settings (guide §13.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BayesSettings {
    /// Use the classifier's verdict in the score (learning happens either way).
    pub enabled: bool,
    /// Spam messages to learn before the classifier is active (guide §13.4: 200).
    pub min_spam: u64,
    /// Ham messages to learn before the classifier is active (guide §13.4: 200).
    pub min_ham: u64,
    /// Score added at a spam probability of 0.99 or more (`BAYES_99`).
    pub score_99: f64,
    /// Score added at 0.90 or more (`BAYES_90`).
    pub score_90: f64,
    /// Score added (negative) at 0.10 or less (`BAYES_10`).
    pub score_10: f64,
    /// Score added (negative) at 0.01 or less (`BAYES_00`).
    pub score_00: f64,
}

impl Default for BayesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_spam: 200,
            min_ham: 200,
            score_99: 3.0,
            score_90: 2.0,
            score_10: -0.5,
            score_00: -1.5,
        }
    }
}

impl BayesSettings {
    /// The test name and score for a spam probability, or `None` in the neutral band.
    pub fn test_for(&self, p: f64) -> Option<(&'static str, f64)> {
        if !p.is_finite() {
            return None;
        }
        if p >= 0.99 {
            Some(("BAYES_99", self.score_99))
        } else if p >= 0.90 {
            Some(("BAYES_90", self.score_90))
        } else if p <= 0.01 {
            Some(("BAYES_00", self.score_00))
        } else if p <= 0.10 {
            Some(("BAYES_10", self.score_10))
        } else {
            None
        }
    }
}

/// The learned counts (shown on the admin tab, guide §13.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BayesStatus {
    /// Distinct spam messages learned.
    pub spam: u64,
    /// Distinct ham messages learned.
    pub ham: u64,
    /// Whether the thresholds of the settings are reached.
    pub active: bool,
}

/// What a training call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Learned as a new message.
    New,
    /// It was learned with the other label before; moved to this one.
    Relabelled,
    /// Already learned with this label: nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    id: u64,
    generation: u64,
    spam: u64,
    ham: u64,
}

#[derive(Debug, Default)]
struct Model {
    spam: u64,
    ham: u64,
    tokens: HashMap<u64, (u32, u32)>,
}

type Cache = Mutex<HashMap<u64, (u64, Arc<Model>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The classifier over one MetaStore.
#[derive(Clone)]
pub struct Bayes {
    meta: Arc<dyn MetaStore>,
    max_bytes: usize,
}

impl std::fmt::Debug for Bayes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bayes")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Learns `raw` as spam (`true`) or ham; see [`Bayes::train`].
pub fn train(meta: Arc<dyn MetaStore>, raw: &[u8], is_spam: bool) -> StoreResult<Learned> {
    Bayes::new(meta).train(raw, is_spam)
}

/// Forgets `raw`; see [`Bayes::untrain`].
pub fn untrain(meta: Arc<dyn MetaStore>, raw: &[u8]) -> StoreResult<bool> {
    Bayes::new(meta).untrain(raw)
}

impl Bayes {
    /// A classifier reading the first 128 KB of each message (guide §13.4).
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self {
            meta,
            max_bytes: 128 * 1024,
        }
    }

    /// Reads at most `max_bytes` of each message (the antispam `max_scan_bytes`).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1024);
        self
    }

    /// Learned counts; `active` against `settings`.
    pub fn status(&self, settings: &BayesSettings) -> StoreResult<BayesStatus> {
        let st = self.state()?;
        Ok(BayesStatus {
            spam: st.spam,
            ham: st.ham,
            active: st.spam >= settings.min_spam && st.ham >= settings.min_ham,
        })
    }

    /// Learns one message as spam or ham (module notes: duplicates count once).
    pub fn train(&self, raw: &[u8], is_spam: bool) -> StoreResult<Learned> {
        let tokens = hashes(&tokenize(raw, self.max_bytes));
        let digest = digest(raw, self.max_bytes);
        let mut outcome = Learned::Duplicate;
        self.meta.transact(&mut |tx| {
            let mut st = read_state(tx)?;
            let before = match tx.get(SEEN_KIND, &digest)? {
                Some(d) => d.body.get("spam").and_then(serde_json::Value::as_bool),
                None => None,
            };
            outcome = match before {
                Some(s) if s == is_spam => return Ok(()),
                Some(_) => Learned::Relabelled,
                None => Learned::New,
            };
            let mut deltas: Vec<(bool, i64)> = Vec::new();
            if let Some(old) = before {
                deltas.push((old, -1));
            }
            deltas.push((is_spam, 1));
            apply(tx, &mut st, &tokens, &deltas)?;
            tx.put(
                SEEN_KIND,
                &digest,
                "",
                &serde_json::json!({ "spam": is_spam }),
            )?;
            write_state(tx, &st)
        })?;
        Ok(outcome)
    }

    /// Forgets a learned message; `false` when it was not learned.
    pub fn untrain(&self, raw: &[u8]) -> StoreResult<bool> {
        let tokens = hashes(&tokenize(raw, self.max_bytes));
        let digest = digest(raw, self.max_bytes);
        let mut found = false;
        self.meta.transact(&mut |tx| {
            found = false;
            let mut st = read_state(tx)?;
            let Some(old) = tx
                .get(SEEN_KIND, &digest)?
                .and_then(|d| d.body.get("spam").and_then(serde_json::Value::as_bool))
            else {
                return Ok(());
            };
            found = true;
            apply(tx, &mut st, &tokens, &[(old, -1)])?;
            tx.delete(SEEN_KIND, &digest)?;
            write_state(tx, &st)
        })?;
        Ok(found)
    }

    /// The spam probability of `raw` (0..1), or `None` while the classifier is not active
    /// (module notes).
    pub fn classify(&self, raw: &[u8], settings: &BayesSettings) -> StoreResult<Option<f64>> {
        let st = self.state()?;
        if st.spam < settings.min_spam || st.ham < settings.min_ham || st.spam == 0 {
            return Ok(None);
        }
        let model = self.model(&st)?;
        Ok(Some(probability(&model, &tokenize(raw, self.max_bytes))))
    }

    fn state(&self) -> StoreResult<State> {
        match self.meta.get_doc(STATE_KIND, STATE_KEY)? {
            Some(d) => serde_json::from_value(d.body)
                .map_err(|e| StoreError::Corrupt(format!("{STATE_KIND}/{STATE_KEY}: {e}"))),
            None => Ok(State::default()),
        }
    }

    fn model(&self, st: &State) -> StoreResult<Arc<Model>> {
        if let Ok(c) = cache().lock()
            && let Some((generation, m)) = c.get(&st.id)
            && *generation == st.generation
        {
            return Ok(m.clone());
        }
        // Shards and state are read in one transaction so they match.
        let mut model = Model::default();
        let mut generation = 0;
        self.meta.transact(&mut |tx| {
            let st = read_state(tx)?;
            generation = st.generation;
            model = Model {
                spam: st.spam,
                ham: st.ham,
                tokens: HashMap::new(),
            };
            for doc in tx.list(TOKENS_KIND, None)? {
                for (h, s, hm) in decode_shard(&doc.body) {
                    model.tokens.insert(h, (s, hm));
                }
            }
            Ok(())
        })?;
        let model = Arc::new(model);
        if let Ok(mut c) = cache().lock() {
            c.insert(st.id, (generation, model.clone()));
        }
        Ok(model)
    }
}

fn read_state(tx: &mut dyn DocTxn) -> StoreResult<State> {
    let mut st: State = match tx.get(STATE_KIND, STATE_KEY)? {
        Some(d) => serde_json::from_value(d.body)
            .map_err(|e| StoreError::Corrupt(format!("{STATE_KIND}/{STATE_KEY}: {e}")))?,
        None => State::default(),
    };
    if st.id == 0 {
        st.id = rand::random::<u64>() | 1;
    }
    Ok(st)
}

fn write_state(tx: &mut dyn DocTxn, st: &State) -> StoreResult<()> {
    let body = serde_json::to_value(st)
        .map_err(|e| StoreError::Backend(format!("encoding the Bayes state: {e}")))?;
    tx.put(STATE_KIND, STATE_KEY, "", &body).map(|_| ())
}

/// Adds each `(label, delta)` to the message counts and to the counts of `tokens`.
fn apply(
    tx: &mut dyn DocTxn,
    st: &mut State,
    tokens: &[u64],
    deltas: &[(bool, i64)],
) -> StoreResult<()> {
    let add = |v: u64, d: i64| -> u64 { v.saturating_add_signed(d) };
    for &(spam, d) in deltas {
        if spam {
            st.spam = add(st.spam, d);
        } else {
            st.ham = add(st.ham, d);
        }
    }
    st.generation = st.generation.wrapping_add(1);
    let mut by_shard: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for &h in tokens {
        by_shard.entry(shard_of(h)).or_default().push(h);
    }
    for (shard, hs) in by_shard {
        let key = format!("{shard:02x}");
        let mut map: HashMap<u64, (u32, u32)> = match tx.get(TOKENS_KIND, &key)? {
            Some(d) => decode_shard(&d.body)
                .map(|(h, s, hm)| (h, (s, hm)))
                .collect(),
            None => HashMap::new(),
        };
        for h in hs {
            let e = map.entry(h).or_insert((0, 0));
            for &(spam, d) in deltas {
                let slot = if spam { &mut e.0 } else { &mut e.1 };
                *slot = (*slot as i64 + d).clamp(0, u32::MAX as i64) as u32;
            }
        }
        map.retain(|_, (s, h)| *s > 0 || *h > 0);
        tx.put(TOKENS_KIND, &key, "", &encode_shard(&map))?;
    }
    Ok(())
}

fn shard_of(h: u64) -> usize {
    (h >> 58) as usize % SHARDS
}

fn encode_shard(map: &HashMap<u64, (u32, u32)>) -> serde_json::Value {
    let mut entries: Vec<(&u64, &(u32, u32))> = map.iter().collect();
    entries.sort_unstable_by_key(|e| *e.0);
    let mut bytes = Vec::with_capacity(entries.len() * RECORD);
    for (h, (s, hm)) in entries {
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend_from_slice(&s.to_le_bytes());
        bytes.extend_from_slice(&hm.to_le_bytes());
    }
    serde_json::json!({
        "v": 1,
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// Records of a shard document; a damaged document yields what can be read.
fn decode_shard(body: &serde_json::Value) -> impl Iterator<Item = (u64, u32, u32)> {
    let bytes = body
        .get("data")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default();
    let n = bytes.len() / RECORD;
    (0..n).map(move |i| {
        let r = &bytes[i * RECORD..(i + 1) * RECORD];
        let mut h = [0u8; 8];
        h.copy_from_slice(&r[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&r[8..12]);
        let mut hm = [0u8; 4];
        hm.copy_from_slice(&r[12..16]);
        (
            u64::from_le_bytes(h),
            u32::from_le_bytes(s),
            u32::from_le_bytes(hm),
        )
    })
}

fn digest(raw: &[u8], max: usize) -> String {
    // Subject and body only: the same message seen again with other trace fields
    // (Received, Return-Path, X-Spam-*) counts once (guide §13.4 "duplicates").
    let body = body_of(raw);
    let body = &body[..body.len().min(max)];
    let subject = crate::message::MessageView::new(raw, 0)
        .header("Subject")
        .unwrap_or_default();
    let mut h = blake3::Hasher::new();
    h.update(subject.trim().as_bytes());
    h.update(b"\0");
    h.update(body);
    h.finalize().to_hex()[..32].to_owned()
}

fn body_of(raw: &[u8]) -> &[u8] {
    for (i, w) in raw.windows(4).enumerate() {
        if w == b"\r\n\r\n" {
            return &raw[i + 4..];
        }
    }
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return &raw[i + 2..];
        }
    }
    &[]
}

fn hashes(tokens: &[String]) -> Vec<u64> {
    let mut v: Vec<u64> = tokens.iter().map(|t| hash(t)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn hash(token: &str) -> u64 {
    let d = blake3::hash(token.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// The distinct tokens of a message (module notes).
pub fn tokenize(raw: &[u8], max_bytes: usize) -> Vec<String> {
    let raw = &raw[..raw.len().min(max_bytes)];
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut push = |t: String, out: &mut Vec<String>| {
        if out.len() < MAX_TOKENS && seen.insert(t.clone()) {
            out.push(t);
        }
    };
    let view = crate::message::MessageView::new(raw, 0);
    if let Some(s) = view.header("Subject") {
        let s = decode_words(&s);
        for w in words(&s) {
            push(format!("subject:{w}"), &mut out);
        }
    }
    if let Some(f) = view.header("From") {
        for a in crate::rules::addresses(&f) {
            let a = a.to_lowercase();
            if let Some((_, d)) = a.rsplit_once('@') {
                push(format!("fromdom:{d}"), &mut out);
            }
            push(format!("from:{a}"), &mut out);
        }
    }
    if let Some(f) = view.header("Reply-To") {
        for a in crate::rules::addresses(&f) {
            if let Some((_, d)) = a.to_lowercase().rsplit_once('@') {
                push(format!("replyto:{d}"), &mut out);
            }
        }
    }
    if let Some(ct) = view.header("Content-Type") {
        let t = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        push(format!("ct:{t}"), &mut out);
    }
    if let Some(m) = view
        .header("X-Mailer")
        .or_else(|| view.header("User-Agent"))
    {
        for w in words(&m).take(3) {
            push(format!("mailer:{w}"), &mut out);
        }
    }
    let text = body_text(raw);
    for host in crate::message::link_hosts(text.as_bytes(), 20) {
        push(format!("url:{host}"), &mut out);
    }
    let mut prev: Option<String> = None;
    for w in words(&text) {
        if let Some(p) = &prev {
            push(format!("{p} {w}"), &mut out);
        }
        push(w.clone(), &mut out);
        prev = Some(w);
        if out.len() >= MAX_TOKENS {
            break;
        }
    }
    out
}

/// RFC 2047 encoded words of a header value, decoded by mail-parser.
fn decode_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_owned();
    }
    let raw = format!("Subject: {s}\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_else(|| s.to_owned())
}

/// The decoded text of the text and HTML parts (at most 10 parts). A message past the
/// structural limits is not parsed (see [`crate::limits`]): its raw body is the text.
fn body_text(raw: &[u8]) -> String {
    if crate::mime::structure(raw, &crate::limits::MessageLimits::default()).is_err() {
        return String::from_utf8_lossy(body_of(raw)).into_owned();
    }
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return String::from_utf8_lossy(body_of(raw)).into_owned();
    };
    let mut text = String::new();
    for i in 0..10 {
        match msg.body_text(i) {
            Some(t) => {
                text.push_str(&t);
                text.push('\n');
            }
            None => break,
        }
    }
    text
}

/// Lower-cased words of 3–24 characters; longer ones summarised (module notes).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '$' | '!' | '\'' | '-')))
        .filter_map(|w| {
            let w = w.trim_matches(|c| matches!(c, '\'' | '-'));
            let n = w.chars().count();
            if n < 3 {
                None
            } else if n > 24 {
                let first = w.chars().next().unwrap_or('x').to_lowercase();
                Some(format!("skip:{first}{}", (n / 10).min(9)))
            } else {
                Some(w.to_lowercase())
            }
        })
}

/// Robinson–Fisher combining (module notes).
fn probability(model: &Model, tokens: &[String]) -> f64 {
    let (ns, nh) = (model.spam.max(1) as f64, model.ham.max(1) as f64);
    let mut probs: Vec<f64> = hashes(tokens)
        .into_iter()
        .filter_map(|h| model.tokens.get(&h))
        .map(|&(s, h)| {
            let (s, h) = (f64::from(s), f64::from(h));
            let sr = s / ns;
            let hr = h / nh;
            let p = if sr + hr > 0.0 { sr / (sr + hr) } else { 0.5 };
            let n = s + h;
            (UNKNOWN_STRENGTH * UNKNOWN_PROB + n * p) / (UNKNOWN_STRENGTH + n)
        })
        .filter(|f| (f - 0.5).abs() >= MIN_STRENGTH)
        .collect();
    if probs.is_empty() {
        return 0.5;
    }
    probs.sort_by(|a, b| {
        (b - 0.5)
            .abs()
            .partial_cmp(&(a - 0.5).abs())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    probs.truncate(MAX_DISCRIMINATORS);
    let n = probs.len();
    let mut ln_spam = 0.0;
    let mut ln_ham = 0.0;
    for f in &probs {
        let f = f.clamp(0.01, 0.99);
        ln_ham += f.ln();
        ln_spam += (1.0 - f).ln();
    }
    let s = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
    let h = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
    ((s - h + 1.0) / 2.0).clamp(0.0, 1.0)
}

/// The chi-square survival function for an even number of degrees of freedom.
fn chi2q(x2: f64, dof: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..dof / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2q_values() {
        // chi2q(0, v) = 1; chi2q(2, 2) = e^-1.
        assert!((chi2q(0.0, 4) - 1.0).abs() < 1e-12);
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!(chi2q(1000.0, 10) < 1e-100);
    }

    #[test]
    fn tokenizer_prefixes_and_bounds() {
        let raw = b"From: Bob <bob@Example.COM>\r\nSubject: Cheap =?utf-8?q?p=C3=A4ls?=\r\n\
Content-Type: text/plain\r\n\r\nBuy cheap watches at http://shop.example.net/x now!!\r\n";
        let t = tokenize(raw, 1 << 20);
        for want in [
            "subject:cheap",
            "subject:päls",
            "fromdom:example.com",
            "ct:text/plain",
            "url:shop.example.net",
            "cheap watches",
            "buy",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        let long = format!("Subject: x\r\n\r\n{}", "a".repeat(100_000));
        assert_eq!(tokenize(long.as_bytes(), 1 << 20), vec!["skip:a9"]);
        let garbage: Vec<u8> = (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(tokenize(&garbage, 128 * 1024).len() <= MAX_TOKENS);
    }

    #[test]
    fn shard_roundtrip() {
        let mut m = HashMap::new();
        m.insert(7u64, (1u32, 2u32));
        m.insert(u64::MAX, (3, 0));
        let back: HashMap<u64, (u32, u32)> = decode_shard(&encode_shard(&m))
            .map(|(h, s, x)| (h, (s, x)))
            .collect();
        assert_eq!(back, m);
        assert_eq!(decode_shard(&serde_json::json!({"data": "!!"})).count(), 0);
    }

    #[test]
    fn thresholds() {
        let s = BayesSettings::default();
        assert_eq!(s.test_for(0.995), Some(("BAYES_99", 3.0)));
        assert_eq!(s.test_for(0.95), Some(("BAYES_90", 2.0)));
        assert_eq!(s.test_for(0.5), None);
        assert_eq!(s.test_for(0.05), Some(("BAYES_10", -0.5)));
        assert_eq!(s.test_for(0.0), Some(("BAYES_00", -1.5)));
        assert_eq!(s.test_for(f64::NAN), None);
    }
}
