//! Masking of passwords in log lines (guide §25.2: the Config log writes
//! `Password=xxxxxx`; requirements-2 §0.7).

/// What a secret value is replaced with. guide §25.2 shows `Password=xxxxxx`, without quotes.
pub const SECRET_MASK: &str = "xxxxxx";

/// Replaces the values of password-like arguments with [`SECRET_MASK`].
///
/// Recognised forms, with the key matched case-insensitively:
/// - `key=value`, `key='value'`, `key="value"`, `key: value` (quotes are dropped, as in the
///   guide's `Password=xxxxxx`);
/// - `--key value`, `--key "two words"`, `--key=value`;
/// - JSON `"key":"value"` and `"key": value` (the quotes are kept so JSON stays valid);
/// - the password of a URL, `ldap://user:value@host`.
///
/// A key is password-like when it contains `password`, `passwd`, `passphrase` or `secret`,
/// or has a word `pass`, `pwd` or `pw` (`smtpPass`, `bind_pw`, `--pass`). An unquoted value
/// ends at white space, at `&`, or at `,`/`;` followed by white space or the end; in JSON at
/// `,`, `}` or `]`. Masking errs on the side of hiding: a key such as `secretary` is masked
/// too. A bare positional password (`set-password alice hunter2`) cannot be recognised;
/// callers must pass secrets as named arguments.
pub fn mask_secrets(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"://") {
            if let Some((start, end)) = url_password(b, i + 3) {
                out.push_str(&text[copied..start]);
                out.push_str(SECRET_MASK);
                copied = end;
                i = end;
            } else {
                i += 3;
            }
            continue;
        }
        if is_key_char(b[i]) && (i == 0 || !is_key_char(b[i - 1])) {
            let start = i;
            let mut end = i;
            while end < b.len() && is_key_char(b[end]) {
                end += 1;
            }
            let key = &text[start..end];
            if is_secret_key(key)
                && let Some(v) = find_value(b, start, end, key.starts_with("--"))
            {
                out.push_str(&text[copied..v.start]);
                if v.json_quotes {
                    out.push('"');
                    out.push_str(SECRET_MASK);
                    out.push('"');
                } else {
                    out.push_str(SECRET_MASK);
                }
                copied = v.end;
                i = v.end;
                continue;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

const fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

fn is_secret_key(key: &str) -> bool {
    let bare = key.trim_start_matches('-');
    let lower = bare.to_ascii_lowercase();
    if ["password", "passwd", "passphrase", "secret"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return true;
    }
    words(bare).any(|w| matches!(w.as_str(), "pass" | "pwd" | "pw"))
}

/// Splits a key into lowercase words at `_`, `-`, `.` and lower→upper case changes.
fn words(key: &str) -> impl Iterator<Item = String> + '_ {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words.into_iter()
}

struct Value {
    start: usize,
    end: usize,
    json_quotes: bool,
}

fn find_value(b: &[u8], key_start: usize, key_end: usize, is_option: bool) -> Option<Value> {
    // A quoted key: `"password"` (JSON) or `'password'`.
    let key_quote = [b'"', b'\'']
        .into_iter()
        .find(|&q| key_start > 0 && b[key_start - 1] == q && b.get(key_end) == Some(&q));
    let json = key_quote == Some(b'"');
    let after_key = key_end + usize::from(key_quote.is_some());
    let k = skip_blanks(b, after_key);
    let v = match b.get(k) {
        Some(b'=' | b':') => {
            let mut s = k + 1;
            if b.get(s) == Some(&b'>') {
                s += 1; // `key => value`
            }
            skip_blanks(b, s)
        }
        Some(_) if is_option && k > after_key && !b[k..].starts_with(b"--") => k,
        _ => return None,
    };
    let first = *b.get(v)?;
    if first == b'"' || first == b'\'' {
        let end = quoted_end(b, v, first);
        return Some(Value {
            start: v,
            end,
            json_quotes: json && first == b'"',
        });
    }
    let mut end = v;
    while end < b.len() {
        let c = b[end];
        if c.is_ascii_whitespace() || c == b'&' {
            break;
        }
        if json && matches!(c, b',' | b'}' | b']') {
            break;
        }
        if !json
            && matches!(c, b',' | b';')
            && b.get(end + 1).is_none_or(|n| n.is_ascii_whitespace())
        {
            break;
        }
        end += 1;
    }
    (end > v).then_some(Value {
        start: v,
        end,
        json_quotes: false,
    })
}

/// The index just past the closing quote of a value opening at `open` (or the end of text).
/// Handles `\"` escapes and SQL's doubled `''`.
fn quoted_end(b: &[u8], open: usize, q: u8) -> usize {
    let mut j = open + 1;
    while j < b.len() {
        if b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if q == b'\'' && b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// The password span of `user:password@` in a URL authority starting at `from`.
fn url_password(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut end = from;
    while end < b.len() && !matches!(b[end], b'/' | b'?' | b'#') && !b[end].is_ascii_whitespace() {
        end += 1;
    }
    let at = (from..end).rev().find(|&i| b[i] == b'@')?;
    let colon = (from..at).find(|&i| b[i] == b':')?;
    (colon + 1 < at).then_some((colon + 1, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask_secrets(s)
    }

    #[test]
    fn command_line_forms() {
        assert_eq!(
            m("user add alice --password hunter2 --quota 5"),
            "user add alice --password xxxxxx --quota 5"
        );
        assert_eq!(
            m("user add alice --password=hunter2"),
            "user add alice --password=xxxxxx"
        );
        assert_eq!(m("--password \"two words\" x"), "--password xxxxxx x");
        assert_eq!(m("--pass hunter2"), "--pass xxxxxx");
        assert_eq!(m("--secret abc def"), "--secret xxxxxx def");
        assert_eq!(m("--password --quota 5"), "--password --quota 5");
    }

    #[test]
    fn key_value_forms() {
        assert_eq!(
            m("user add alice@example.com password=hunter2 quota=500MB"),
            "user add alice@example.com password=xxxxxx quota=500MB"
        );
        assert_eq!(
            m("insert User set Name='tjones', Password='s3cr,et', Rights='1'"),
            "insert User set Name='tjones', Password=xxxxxx, Rights='1'"
        );
        assert_eq!(m("Password='it''s', x='1'"), "Password=xxxxxx, x='1'");
        assert_eq!(m("pass=abc,def; next"), "pass=xxxxxx; next");
        assert_eq!(
            m("smtpPass=abc bind_pw=def PWD=g"),
            "smtpPass=xxxxxx bind_pw=xxxxxx PWD=xxxxxx"
        );
        assert_eq!(m("client_secret=abc&x=1"), "client_secret=xxxxxx&x=1");
        assert_eq!(m("NewPassword: hunter2"), "NewPassword: xxxxxx");
        assert_eq!(m("password=pässwörd next"), "password=xxxxxx next");
        assert_eq!(m("Password=xxxxxx"), "Password=xxxxxx");
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            m(r#"{"user":"a","password":"p\"w,}","quota":1}"#),
            r#"{"user":"a","password":"xxxxxx","quota":1}"#
        );
        assert_eq!(
            m(r#"{"secret": "abc", "n": 2}"#),
            r#"{"secret": "xxxxxx", "n": 2}"#
        );
        assert_eq!(m(r#"{"pass":12345,"n":2}"#), r#"{"pass":xxxxxx,"n":2}"#);
        assert_eq!(m(r#"{"Password" : "x"}"#), r#"{"Password" : "xxxxxx"}"#);
    }

    #[test]
    fn url_userinfo() {
        assert_eq!(
            m("ldap://cn=admin:topsecret@dir.example/ base"),
            "ldap://cn=admin:xxxxxx@dir.example/ base"
        );
        assert_eq!(
            m("postgres://keel:pw@db/keel"),
            "postgres://keel:xxxxxx@db/keel"
        );
        assert_eq!(m("https://example.com/a@b"), "https://example.com/a@b");
    }

    #[test]
    fn leaves_other_text_alone() {
        for s in [
            "user add alice@example.com quota=500MB",
            "bypass=1 passage=2 compass=3",
            "password",
            "password:",
            "Failed IMAP login from 127.0.0.1, authentication method PLAIN",
            "",
        ] {
            assert_eq!(m(s), s);
        }
    }
}
