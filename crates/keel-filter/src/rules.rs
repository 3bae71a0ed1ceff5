//! Custom rules (guide §13.3): an ordered list; the first *allow* or *reject* match stops
//! evaluation, score rules let it continue.
//!
//! Implementation notes:
//! - Envelope split (guide §13.3, requirements-1 §0.4): the enabled rules on From/To that
//!   come first in the list, before any rule on another field, form the *envelope
//!   prefix*. They are checked at SMTP time against `MAIL FROM` / `RCPT TO` (a reject is
//!   `553` before DATA, never a DSN: requirements-1 §0.12) and never against the header
//!   fields. Every other rule, including From/To rules placed after another rule, is
//!   checked after DATA against the header fields. Disabled rules are ignored and do not
//!   end the prefix.
//! - At MAIL time a To rule with an allow/reject action in the prefix ends the walk
//!   undecided (the recipient is not known yet); the walk is redone per RCPT with both
//!   addresses. After DATA the envelope walk is redone (it is a pure function of the
//!   envelope) with the sender and all recipients: an allow there skips the remaining
//!   rules and sets every later score to 0 ("treat as non-spam").
//! - Matching is case-insensitive. `glob` is a whole-value pattern with `*` (any run) and
//!   `?` (one character): the "regex-lite" the admin gets, without a regex engine that a
//!   hostile pattern could make slow (the matcher is O(n·m) with no backtracking blow-up).

use serde::{Deserialize, Serialize};

/// The field a rule looks at (guide §13.3 "Header").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleField {
    /// `From:` header, or `MAIL FROM` in the envelope prefix.
    From,
    /// `To:` header, or `RCPT TO` in the envelope prefix.
    To,
    /// `Cc:`.
    Cc,
    /// `Subject:`.
    Subject,
    /// `Sender:`.
    Sender,
    /// Any header by name, without the colon (e.g. `X-Mailer`).
    Header(String),
    /// The message body (first `max_scan_bytes`, raw).
    Body,
}

impl RuleField {
    fn is_envelope(&self) -> bool {
        matches!(self, Self::From | Self::To)
    }

    /// The header name this field reads, `None` for the body.
    pub fn header_name(&self) -> Option<&str> {
        Some(match self {
            Self::From => "From",
            Self::To => "To",
            Self::Cc => "Cc",
            Self::Subject => "Subject",
            Self::Sender => "Sender",
            Self::Header(h) => h.as_str(),
            Self::Body => return None,
        })
    }
}

/// How the content is matched (guide §13.3 "Type").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum RuleMatch {
    /// "contains substring".
    Substring(String),
    /// Whole value matches a `*`/`?` pattern.
    Glob(String),
    /// "contains address": one of the addresses equals this one.
    Address(String),
    /// "contains address with domain".
    Domain(String),
    /// "is empty" (present with no content).
    Empty,
    /// "is missing".
    Missing,
    /// "contains binary data" (bytes above 0x7F or control characters).
    Binary,
}

/// What a matching rule does (guide §13.3 "Action").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// "treat as non-spam": later tests still run but their scores are set to 0.
    Allow,
    /// "treat as spam and reject".
    Reject,
    /// "add value to the score" (negative allowed).
    Score(f64),
}

/// One custom rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Shown to the admin and used as the test name in `X-Spam-Status`.
    #[serde(default)]
    pub description: String,
    /// Whether the rule is evaluated.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The field.
    pub field: RuleField,
    /// The condition.
    #[serde(rename = "match")]
    pub matcher: RuleMatch,
    /// The action.
    pub action: RuleAction,
}

fn enabled() -> bool {
    true
}

impl CustomRule {
    /// The test name shown in `X-Spam-Status` (guide §13.1 quarantine copies show each
    /// test): `RULE_<description>` restricted to header-safe characters.
    pub fn test_name(&self, index: usize) -> String {
        let d: String = self
            .description
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if d.trim_matches('_').is_empty() {
            format!("RULE_{}", index + 1)
        } else {
            format!("RULE_{d}")
        }
    }
}

/// Outcome of an envelope walk.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvelopeDecision {
    /// No terminal rule matched (yet).
    Continue,
    /// An allow rule matched: the message is treated as non-spam.
    Allow,
    /// A reject rule matched: `553` at SMTP level. The string is the rule's test name.
    Reject(String),
}

/// The number of leading entries of `rules` that form the envelope prefix.
pub fn envelope_prefix_len(rules: &[CustomRule]) -> usize {
    rules
        .iter()
        .position(|r| r.enabled && !r.field.is_envelope())
        .unwrap_or(rules.len())
}

/// Walks the envelope prefix (module notes). `rcpts` empty means MAIL time: a terminal To
/// rule then ends the walk undecided. Returns the decision and the score tests met.
pub fn envelope_walk(
    rules: &[CustomRule],
    mail_from: &str,
    rcpts: &[&str],
) -> (EnvelopeDecision, Vec<(String, f64)>) {
    let mut scores = Vec::new();
    for (i, rule) in rules[..envelope_prefix_len(rules)].iter().enumerate() {
        if !rule.enabled {
            continue;
        }
        let hit = match rule.field {
            RuleField::From => match_envelope(&rule.matcher, mail_from),
            RuleField::To => {
                if rcpts.is_empty() {
                    if matches!(rule.action, RuleAction::Score(_)) {
                        continue;
                    }
                    return (EnvelopeDecision::Continue, scores);
                }
                rcpts.iter().any(|r| match_envelope(&rule.matcher, r))
            }
            _ => false,
        };
        if !hit {
            continue;
        }
        match rule.action {
            RuleAction::Allow => return (EnvelopeDecision::Allow, scores),
            RuleAction::Reject => return (EnvelopeDecision::Reject(rule.test_name(i)), scores),
            RuleAction::Score(s) => scores.push((rule.test_name(i), s)),
        }
    }
    (EnvelopeDecision::Continue, scores)
}

/// A field value as the header rules see it: `None` when the header is missing.
pub trait FieldSource {
    /// The unfolded values of every header named `name` (case-insensitive).
    fn headers(&self, name: &str) -> Vec<String>;
    /// The (possibly truncated) body.
    fn body(&self) -> &[u8];
}

/// Outcome of the header rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderOutcome {
    /// A terminal rule matched: `Some(true)` reject, `Some(false)` allow.
    pub terminal: Option<(bool, String)>,
    /// Score tests met before the terminal rule.
    pub scores: Vec<(String, f64)>,
}

/// Evaluates the rules after the envelope prefix against the message (module notes).
pub fn header_walk(rules: &[CustomRule], msg: &dyn FieldSource) -> HeaderOutcome {
    let start = envelope_prefix_len(rules);
    let mut out = HeaderOutcome::default();
    for (i, rule) in rules.iter().enumerate().skip(start) {
        if !rule.enabled {
            continue;
        }
        let hit = match rule.field.header_name() {
            Some(name) => {
                let values = msg.headers(name);
                match_header(&rule.matcher, &values)
            }
            None => match_bytes(&rule.matcher, msg.body()),
        };
        if !hit {
            continue;
        }
        match rule.action {
            RuleAction::Allow => {
                out.terminal = Some((false, rule.test_name(i)));
                return out;
            }
            RuleAction::Reject => {
                out.terminal = Some((true, rule.test_name(i)));
                return out;
            }
            RuleAction::Score(s) => out.scores.push((rule.test_name(i), s)),
        }
    }
    out
}

fn match_envelope(m: &RuleMatch, addr: &str) -> bool {
    let addr = addr.trim_matches(|c| c == '<' || c == '>');
    match m {
        RuleMatch::Substring(s) => contains_ci(addr, s),
        RuleMatch::Glob(p) => glob_match(p, addr),
        RuleMatch::Address(a) => addr.eq_ignore_ascii_case(a.trim()),
        RuleMatch::Domain(d) => addr
            .rsplit_once('@')
            .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d.trim().trim_start_matches('@'))),
        RuleMatch::Empty => addr.is_empty(),
        RuleMatch::Missing => false,
        RuleMatch::Binary => has_binary(addr.as_bytes()),
    }
}

fn match_header(m: &RuleMatch, values: &[String]) -> bool {
    match m {
        RuleMatch::Missing => values.is_empty(),
        RuleMatch::Empty => values.iter().any(|v| v.trim().is_empty()),
        RuleMatch::Substring(s) => values.iter().any(|v| contains_ci(v, s)),
        RuleMatch::Glob(p) => values.iter().any(|v| glob_match(p, v.trim())),
        RuleMatch::Address(a) => values
            .iter()
            .flat_map(|v| addresses(v))
            .any(|x| x.eq_ignore_ascii_case(a.trim())),
        RuleMatch::Domain(d) => {
            let d = d.trim().trim_start_matches('@');
            values.iter().flat_map(|v| addresses(v)).any(|x| {
                x.rsplit_once('@')
                    .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
            })
        }
        RuleMatch::Binary => values.iter().any(|v| has_binary(v.as_bytes())),
    }
}

fn match_bytes(m: &RuleMatch, body: &[u8]) -> bool {
    match m {
        RuleMatch::Missing | RuleMatch::Empty => body.iter().all(|b| b.is_ascii_whitespace()),
        RuleMatch::Binary => has_binary(body),
        _ => match_header(m, &[String::from_utf8_lossy(body).into_owned()]),
    }
}

/// The bare addresses in a header value: `<a@b>` forms, else whitespace/comma separated
/// words containing `@`.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let a = after[..end].trim();
        if a.contains('@') {
            out.push(a.to_owned());
        }
        rest = &after[end + 1..];
    }
    if out.is_empty() {
        for w in value.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
            let w = w.trim_matches(|c: char| c == '"' || c == '(' || c == ')');
            if w.contains('@') {
                out.push(w.to_owned());
            }
        }
    }
    out
}

fn has_binary(b: &[u8]) -> bool {
    b.iter()
        .any(|&c| c >= 0x80 || (c < 0x20 && c != b'\t' && c != b'\r' && c != b'\n'))
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// Case-insensitive whole-value glob: `*` any run, `?` one character. Iterative with a
/// single backtrack point, so linear-ish and never exponential.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(field: RuleField, matcher: RuleMatch, action: RuleAction) -> CustomRule {
        CustomRule {
            description: String::new(),
            enabled: true,
            field,
            matcher,
            action,
        }
    }

    struct Msg(Vec<(String, String)>, Vec<u8>);
    impl FieldSource for Msg {
        fn headers(&self, name: &str) -> Vec<String> {
            self.0
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        }
        fn body(&self) -> &[u8] {
            &self.1
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("*@bad.test", "Spammer@BAD.test"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "abcd"));
        assert!(glob_match("*", ""));
        assert!(!glob_match(&"*a".repeat(30), &"a".repeat(20)));
    }

    #[test]
    fn envelope_prefix_and_position_semantics() {
        // guide §13.3 example 1.
        let rules = vec![
            rule(
                RuleField::From,
                RuleMatch::Address("spammer@domain.com".into()),
                RuleAction::Allow,
            ),
            rule(
                RuleField::From,
                RuleMatch::Domain("domain.com".into()),
                RuleAction::Reject,
            ),
            rule(
                RuleField::To,
                RuleMatch::Domain("company.com".into()),
                RuleAction::Allow,
            ),
        ];
        assert_eq!(envelope_prefix_len(&rules), 3);
        assert_eq!(
            envelope_walk(&rules, "spammer@domain.com", &[]).0,
            EnvelopeDecision::Allow
        );
        assert!(matches!(
            envelope_walk(&rules, "x@domain.com", &[]).0,
            EnvelopeDecision::Reject(_)
        ));
        assert_eq!(
            envelope_walk(&rules, "x@else.com", &["a@company.com"]).0,
            EnvelopeDecision::Allow
        );
        // guide §13.3 example 2: the From rule comes after a Subject rule → header rule.
        let rules = vec![
            rule(
                RuleField::To,
                RuleMatch::Address("admin@company.com".into()),
                RuleAction::Reject,
            ),
            rule(
                RuleField::Subject,
                RuleMatch::Substring("test".into()),
                RuleAction::Allow,
            ),
            rule(
                RuleField::From,
                RuleMatch::Domain("spam.com".into()),
                RuleAction::Reject,
            ),
        ];
        assert_eq!(envelope_prefix_len(&rules), 1);
        // At MAIL time the To reject rule is undecided; the From rule is not envelope.
        assert_eq!(
            envelope_walk(&rules, "x@spam.com", &[]).0,
            EnvelopeDecision::Continue
        );
        assert!(matches!(
            envelope_walk(&rules, "x@a.b", &["admin@company.com"]).0,
            EnvelopeDecision::Reject(_)
        ));
        let msg = Msg(
            vec![
                ("From".into(), "Eve <eve@spam.com>".into()),
                ("Subject".into(), "hello".into()),
            ],
            Vec::new(),
        );
        assert!(matches!(
            header_walk(&rules, &msg).terminal,
            Some((true, _))
        ));
        let msg = Msg(
            vec![
                ("From".into(), "Eve <eve@spam.com>".into()),
                ("Subject".into(), "a Test".into()),
            ],
            Vec::new(),
        );
        assert!(matches!(
            header_walk(&rules, &msg).terminal,
            Some((false, _))
        ));
    }

    #[test]
    fn match_types() {
        let m = Msg(
            vec![
                ("X-Empty".into(), " ".into()),
                ("To".into(), "a@b.c, d@e.f".into()),
            ],
            b"caf\xc3\xa9".to_vec(),
        );
        let hit = |f: RuleField, x: RuleMatch| {
            let r = vec![
                rule(
                    RuleField::Subject,
                    RuleMatch::Missing,
                    RuleAction::Score(0.5),
                ),
                rule(f, x, RuleAction::Score(1.0)),
            ];
            header_walk(&r, &m).scores.len() == 2
        };
        assert!(hit(RuleField::Header("x-empty".into()), RuleMatch::Empty));
        assert!(hit(RuleField::Header("X-None".into()), RuleMatch::Missing));
        assert!(hit(RuleField::To, RuleMatch::Address("D@E.F".into())));
        assert!(hit(RuleField::To, RuleMatch::Domain("b.c".into())));
        assert!(!hit(RuleField::To, RuleMatch::Domain("x.c".into())));
        assert!(hit(RuleField::Body, RuleMatch::Binary));
        let json = r#"{"description":"d","field":{"header":"X-Mailer"},"match":{"type":"substring","value":"bulk"},"action":{"score":2.5}}"#;
        let r: CustomRule = serde_json::from_str(json).unwrap();
        assert_eq!(r.action, RuleAction::Score(2.5));
        assert_eq!(r.field, RuleField::Header("X-Mailer".into()));
        let r: CustomRule = serde_json::from_str(
            r#"{"field":"from","match":{"type":"address","value":"a@b"},"action":"reject"}"#,
        )
        .unwrap();
        assert_eq!(r.action, RuleAction::Reject);
    }
}
