//! E-mail addresses and the `*` / `?` patterns used by aliases (guide §12.3).
//!
//! - [`Address`] is a parsed `local@domain` address. The domain is lower-cased on parsing; the
//!   local part is kept exactly as given. Keel compares addresses case-insensitively, through
//!   [`Address::key`].
//! - [`is_valid_domain`] checks the syntax of a domain name (RFC 1035 §2.3.1 / RFC 1123 §2.1,
//!   plus internationalised UTF-8 labels, RFC 6531).
//! - [`wildcard_match`] and [`is_pattern`] implement the alias wildcards of guide §12.3: `*`
//!   matches any number of characters (also none), `?` exactly one.
//! - [`is_valid_alias_name`] checks the characters allowed in an alias name (guide table 12.2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Maximum length of the local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_OCTETS: usize = 64;
/// Maximum length of one domain label in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_OCTETS: usize = 63;
/// Maximum length of a domain name in octets, without the root dot (RFC 1035 §2.3.4).
pub const MAX_DOMAIN_OCTETS: usize = 253;

/// Why a string is not a valid e-mail address. Every message is a full sentence naming the
/// rejected input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The input was empty (or only white space).
    #[error("an empty string is not a valid e-mail address")]
    Empty,
    /// No `@` in the input.
    #[error("'{0}' is not a valid e-mail address: missing '@'")]
    MissingAt(String),
    /// More than one `@` outside a quoted local part.
    #[error("'{0}' is not a valid e-mail address: it contains more than one '@'")]
    MultipleAt(String),
    /// Nothing before the `@`.
    #[error("'{0}' is not a valid e-mail address: the part before '@' is empty")]
    EmptyLocalPart(String),
    /// The local part is longer than [`MAX_LOCAL_PART_OCTETS`].
    #[error(
        "'{address}' is not a valid e-mail address: the part before '@' is {len} octets long, \
         the maximum is 64"
    )]
    LocalPartTooLong {
        /// The rejected input.
        address: String,
        /// Length of the local part in octets.
        len: usize,
    },
    /// The local part contains a character that is not allowed there.
    #[error(
        "'{address}' is not a valid e-mail address: the character {ch:?} is not allowed before '@'"
    )]
    InvalidLocalChar {
        /// The rejected input.
        address: String,
        /// The offending character.
        ch: char,
    },
    /// The local part starts with `"` but is not a well-formed quoted string.
    #[error(
        "'{0}' is not a valid e-mail address: the quoted part before '@' is not closed properly"
    )]
    BadQuotedLocalPart(String),
    /// Nothing after the `@`.
    #[error("'{0}' is not a valid e-mail address: the domain after '@' is empty")]
    EmptyDomain(String),
    /// The domain is not a syntactically valid domain name.
    #[error("'{address}' is not a valid e-mail address: {reason}")]
    InvalidDomain {
        /// The rejected input.
        address: String,
        /// Why the domain is invalid (a sentence fragment).
        reason: String,
    },
}

/// A parsed e-mail address `local@domain`.
///
/// The domain is stored lower-cased; the local part as it was given. Two addresses denote the
/// same mailbox in Keel when their [`key`](Address::key)s are equal (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// The part before the last `@`, as given.
    pub local: String,
    /// The domain after the last `@`, lower-cased.
    pub domain: String,
}

impl Address {
    /// Parses an address such as `John.Smith@Example.COM`.
    ///
    /// The input is trimmed. The address is split at its last `@`; the local part must be
    /// non-empty, at most 64 octets (RFC 5321 §4.5.3.1.1), and may contain another `@` only
    /// inside a quoted string (`"a@b"@example.com`, RFC 5321 §4.1.2). The domain must pass
    /// [`is_valid_domain`] and is lower-cased.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let Some(at) = s.rfind('@') else {
            return Err(AddressError::MissingAt(s.to_string()));
        };
        let local = &s[..at];
        let domain = &s[at + 1..];

        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart(s.to_string()));
        }
        if local.len() > MAX_LOCAL_PART_OCTETS {
            return Err(AddressError::LocalPartTooLong {
                address: s.to_string(),
                len: local.len(),
            });
        }
        check_local_part(s, local)?;

        if domain.is_empty() {
            return Err(AddressError::EmptyDomain(s.to_string()));
        }
        if let Err(reason) = check_domain(domain) {
            return Err(AddressError::InvalidDomain {
                address: s.to_string(),
                reason,
            });
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_lowercase(),
        })
    }

    /// The whole address lower-cased: the key under which Keel compares and indexes
    /// addresses (addresses are case-insensitive in Keel).
    pub fn key(&self) -> String {
        format!("{}@{}", self.local, self.domain).to_lowercase()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// Characters that may not appear in an unquoted local part: the RFC 5322 §3.2.3 "specials"
/// other than `.` (dots are accepted leniently, also leading or doubled, as real mail has them).
const LOCAL_SPECIALS: &[char] = &['(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '"'];

/// Checks the local part (`address` is the whole input, for the error message).
fn check_local_part(address: &str, local: &str) -> Result<(), AddressError> {
    if local.starts_with('"') {
        return check_quoted_local_part(address, local);
    }
    for ch in local.chars() {
        if ch == '@' {
            return Err(AddressError::MultipleAt(address.to_string()));
        }
        if ch.is_control() || ch.is_whitespace() || LOCAL_SPECIALS.contains(&ch) {
            return Err(AddressError::InvalidLocalChar {
                address: address.to_string(),
                ch,
            });
        }
    }
    Ok(())
}

/// Checks a quoted-string local part (RFC 5321 §4.1.2): `"` … `"`, where `\` escapes the next
/// character and an unescaped `"` may appear only at the end. Control characters are refused.
fn check_quoted_local_part(address: &str, local: &str) -> Result<(), AddressError> {
    let bad = || AddressError::BadQuotedLocalPart(address.to_string());
    let mut chars = local.chars().skip(1);
    let mut closed = false;
    while let Some(ch) = chars.next() {
        if closed {
            // Something after the closing quote.
            return Err(bad());
        }
        match ch {
            // `\` escapes the next character, which must exist.
            '\\' => {
                chars.next().ok_or_else(bad)?;
            }
            '"' => closed = true,
            c if c.is_control() => {
                return Err(AddressError::InvalidLocalChar {
                    address: address.to_string(),
                    ch: c,
                });
            }
            _ => {}
        }
    }
    if closed { Ok(()) } else { Err(bad()) }
}

/// Whether `name` is a syntactically valid domain name.
///
/// Rules (RFC 1035 §2.3.1, RFC 1123 §2.1): at least one label; labels separated by single
/// dots, no leading or trailing dot; each label 1–63 octets of letters, digits and hyphens,
/// not starting or ending with a hyphen; at most 253 octets in total. Internationalised labels
/// (RFC 6531 / IDNA U-labels) are accepted as UTF-8: any Unicode letter or digit counts as a
/// letter. For such labels the 63-octet limit is applied to the UTF-8 form, which is an
/// approximation of the limit on the punycode (A-label) form.
pub fn is_valid_domain(name: &str) -> bool {
    check_domain(name).is_ok()
}

/// Checks a domain name, returning a sentence fragment explaining the first problem found.
fn check_domain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the domain is empty".to_string());
    }
    if name.len() > MAX_DOMAIN_OCTETS {
        return Err(format!(
            "the domain is {} octets long, the maximum is {MAX_DOMAIN_OCTETS}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!(
                "the domain '{name}' has an empty label (a leading, trailing or doubled dot)"
            ));
        }
        if label.len() > MAX_LABEL_OCTETS {
            return Err(format!(
                "the domain label '{label}' is {} octets long, the maximum is {MAX_LABEL_OCTETS}",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "the domain label '{label}' starts or ends with a hyphen"
            ));
        }
        if let Some(ch) = label.chars().find(|&c| !(c == '-' || c.is_alphanumeric())) {
            return Err(format!(
                "the domain '{name}' contains the character {ch:?}, which is not allowed in a \
                 domain name"
            ));
        }
    }
    Ok(())
}

/// Whether `s` contains an alias wildcard, `*` or `?` (guide §12.3).
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Whether `name` uses only the characters allowed in an alias name (guide table 12.2):
/// ASCII letters, digits, `.`, `-`, `_`, `?` and `*`. The empty name is refused.
pub fn is_valid_alias_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '?' | '*'))
}

/// Matches `text` against an alias pattern (guide §12.3), ignoring case.
///
/// `*` matches any sequence of characters, also the empty one; `?` matches exactly one
/// character; every other character matches itself (case-insensitively). The match is
/// anchored at both ends: `?ime` matches `time` and `dime` but not `xtime` or `ime`.
///
/// The algorithm is iterative and remembers only the most recent `*`, so it runs in
/// O(len(pattern) × len(text)) time at worst, never exponentially.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();

    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` seen in the pattern, and the text position it currently
    // stands in for (the star has consumed t[star_t_start..star_t]).
    let mut star: Option<(usize, usize)> = None;

    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry after it.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    // The text is used up: the rest of the pattern must be stars only.
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn parses_simple_address_and_lowercases_domain() {
        let a = Address::parse("  John.Smith@Example.COM ").unwrap();
        assert_eq!(a.local, "John.Smith");
        assert_eq!(a.domain, "example.com");
        assert_eq!(a.to_string(), "John.Smith@example.com");
        assert_eq!(a.key(), "john.smith@example.com");
    }

    #[test]
    fn from_str_matches_parse() {
        let a: Address = "alice@example.com".parse().unwrap();
        assert_eq!(a, Address::parse("alice@example.com").unwrap());
    }

    #[test]
    fn key_is_case_insensitive() {
        let a = Address::parse("Alice@EXAMPLE.com").unwrap();
        let b = Address::parse("aLiCe@example.COM").unwrap();
        assert_ne!(a, b, "the local part is kept as given");
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a@b",
            "user+tag@mail.example.org",
            "first.last@sub-domain.example.co.uk",
            "\"john doe\"@example.com",
            "\"a@b\"@example.com",
            "josé@exämple.de",
        ] {
            let a = Address::parse(s).unwrap();
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a, "{s}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let a = Address::parse("Bob@Example.net").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"local":"Bob","domain":"example.net"}"#);
        let back: Address = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(Address::parse("   "), Err(AddressError::Empty));
    }

    #[test]
    fn rejects_missing_at_with_clear_message() {
        let err = Address::parse("foo").unwrap_err();
        assert_eq!(err, AddressError::MissingAt("foo".into()));
        assert_eq!(
            err.to_string(),
            "'foo' is not a valid e-mail address: missing '@'"
        );
    }

    #[test]
    fn rejects_multiple_at_outside_quotes() {
        let err = Address::parse("a@b@example.com").unwrap_err();
        assert_eq!(err, AddressError::MultipleAt("a@b@example.com".into()));
        assert!(err.to_string().contains("more than one '@'"));
    }

    #[test]
    fn quoted_local_part_may_contain_at() {
        let a = Address::parse("\"a@b\"@example.com").unwrap();
        assert_eq!(a.local, "\"a@b\"");
        assert_eq!(a.domain, "example.com");
    }

    #[test]
    fn rejects_bad_quoted_local_parts() {
        for s in [
            "\"abc@example.com",
            "\"ab\"c@example.com",
            "\"ab\\\"@example.com",
        ] {
            assert!(
                matches!(Address::parse(s), Err(AddressError::BadQuotedLocalPart(_))),
                "{s}"
            );
        }
        assert!(matches!(
            Address::parse("\"a\u{7}\"@example.com"),
            Err(AddressError::InvalidLocalChar { ch: '\u{7}', .. })
        ));
    }

    #[test]
    fn rejects_empty_local_part() {
        let err = Address::parse("@example.com").unwrap_err();
        assert_eq!(err, AddressError::EmptyLocalPart("@example.com".into()));
        assert!(err.to_string().contains("before '@' is empty"));
    }

    #[test]
    fn local_part_length_limit_is_64_octets() {
        let ok = format!("{}@example.com", "a".repeat(64));
        assert!(Address::parse(&ok).is_ok());
        let long = format!("{}@example.com", "a".repeat(65));
        let err = Address::parse(&long).unwrap_err();
        assert!(matches!(
            err,
            AddressError::LocalPartTooLong { len: 65, .. }
        ));
        assert!(err.to_string().contains("65 octets"));
        // Octets, not characters: 33 two-octet characters are 66 octets.
        let utf8 = format!("{}@example.com", "é".repeat(33));
        assert!(matches!(
            Address::parse(&utf8),
            Err(AddressError::LocalPartTooLong { len: 66, .. })
        ));
    }

    #[test]
    fn rejects_invalid_local_characters() {
        for (s, ch) in [
            ("jo hn@example.com", ' '),
            ("a<b@example.com", '<'),
            ("a,b@example.com", ','),
            ("a\tb@example.com", '\t'),
        ] {
            let err = Address::parse(s).unwrap_err();
            assert_eq!(
                err,
                AddressError::InvalidLocalChar {
                    address: s.to_string(),
                    ch
                },
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_empty_or_invalid_domain() {
        assert_eq!(
            Address::parse("alice@"),
            Err(AddressError::EmptyDomain("alice@".into()))
        );
        for s in [
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            "alice@[127.0.0.1]",
        ] {
            let err = Address::parse(s).unwrap_err();
            assert!(matches!(err, AddressError::InvalidDomain { .. }), "{s}");
            assert!(
                err.to_string()
                    .starts_with(&format!("'{s}' is not a valid e-mail address: "))
            );
        }
    }

    #[test]
    fn internationalised_domain_is_lowercased() {
        let a = Address::parse("petr@PŘÍKLAD.cz").unwrap();
        assert_eq!(a.domain, "příklad.cz");
    }

    #[test]
    fn valid_domains() {
        for d in [
            "localhost",
            "example.com",
            "a.b.c.d.e",
            "xn--bcher-kva.example",
            "bücher.example",
            "例え.テスト",
            "123.example",
            "a-b.c-d",
            &"a".repeat(63),
        ] {
            assert!(is_valid_domain(d), "{d}");
        }
    }

    #[test]
    fn invalid_domains() {
        let long_label = "a".repeat(64);
        // 4 × 63 + 3 dots = 255 octets.
        let too_long = [&"a".repeat(63); 4].map(|s| s.as_str()).join(".");
        for d in [
            "",
            ".",
            "example.",
            ".example",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b.c",
            "a@b",
            &long_label,
            &too_long,
        ] {
            assert!(!is_valid_domain(d), "{d:?}");
        }
        // Exactly 253 octets is allowed: 3 × 63 + 61 + 3 dots.
        let max = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(max.len(), 253);
        assert!(is_valid_domain(&max));
        let over = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert!(!is_valid_domain(&over));
    }

    #[test]
    fn is_pattern_detects_wildcards() {
        assert!(is_pattern("*"));
        assert!(is_pattern("?ime"));
        assert!(is_pattern("sales.*"));
        assert!(!is_pattern("info"));
        assert!(!is_pattern(""));
    }

    #[test]
    fn alias_name_characters_follow_table_12_2() {
        for ok in [
            "sales",
            "john.wayne",
            "a-b_c",
            "*sms*",
            "a*00*",
            "?ime",
            "*",
            "ABC123",
        ] {
            assert!(is_valid_alias_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a@b", "příklad", "a+b", "#public"] {
            assert!(!is_valid_alias_name(bad), "{bad}");
        }
    }

    // Guide §12.3 examples.
    #[test]
    fn guide_question_mark_example() {
        assert!(wildcard_match("?ime", "time"));
        assert!(wildcard_match("?ime", "dime"));
        assert!(!wildcard_match("?ime", "xtime"));
        assert!(!wildcard_match("?ime", "ime"));
    }

    #[test]
    fn guide_star_examples() {
        assert!(wildcard_match("*sms*", "sms"));
        assert!(wildcard_match("*sms*", "mysms-gateway"));
        assert!(!wildcard_match("*sms*", "smx"));
        assert!(wildcard_match("a*00*", "a00"));
        assert!(wildcard_match("a*00*", "abc007"));
        assert!(!wildcard_match("a*00*", "b00"));
        assert!(!wildcard_match("a*00*", "a0"));
        // The catch-all `*` matches every local part, also the empty one.
        assert!(wildcard_match("*", "anything.at.all"));
        assert!(wildcard_match("*", ""));
        // Requirements acceptance scenario 4: `sales.*`.
        assert!(wildcard_match("sales.*", "sales.eu"));
        assert!(wildcard_match("sales.*", "sales."));
        assert!(!wildcard_match("sales.*", "sales"));
    }

    #[test]
    fn wildcard_full_address_patterns() {
        assert!(wildcard_match("*@example.com", "john@example.com"));
        assert!(wildcard_match("*@example.com", "@example.com"));
        assert!(!wildcard_match("*@example.com", "john@example.org"));
        assert!(wildcard_match("j?hn@*", "JOHN@Example.COM"));
    }

    #[test]
    fn wildcard_is_case_insensitive_and_literal_otherwise() {
        assert!(wildcard_match("Sales.*", "SALES.EU"));
        assert!(wildcard_match("příklad", "PŘÍKLAD"));
        assert!(!wildcard_match("a.c", "abc"), "'.' is literal");
        assert!(!wildcard_match("[ab]", "a"), "brackets are literal");
        assert!(wildcard_match("[ab]", "[AB]"));
    }

    #[test]
    fn wildcard_edge_cases() {
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "a"));
        assert!(!wildcard_match("?", ""));
        assert!(
            wildcard_match("?", "é"),
            "? is one character, not one octet"
        );
        assert!(wildcard_match("**", ""));
        assert!(wildcard_match("a**b", "ab"));
        assert!(wildcard_match("*a", "aaa"));
        assert!(!wildcard_match("*a", "aab"));
        assert!(wildcard_match("*?*", "x"));
        assert!(!wildcard_match("*??*", "x"));
        assert!(wildcard_match("a*b*c", "a-b-b-c"));
        assert!(!wildcard_match("a*b*c", "a-c-b"));
        assert!(wildcard_match("*ab*ab", "xabyabab"));
        assert!(wildcard_match("abc", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(!wildcard_match("abcd", "abc"));
    }

    #[test]
    fn wildcard_pathological_pattern_is_fast() {
        let text = "a".repeat(20_000);
        let start = Instant::now();
        assert!(!wildcard_match("*a*a*a*a*a*b", &text));
        assert!(!wildcard_match("*a*a*a*a*a*a*a*a*a*a*b", &text));
        assert!(wildcard_match("*a*a*a*a*a*a", &text));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }
}
