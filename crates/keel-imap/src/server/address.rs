//! Address lists for ENVELOPE (RFC 9051 §7.5.2) parsed from a header field value
//! (RFC 5322 §3.4, obsolete forms of §4.4 tolerated).
//!
//! Implementation notes: display names and group names are passed on as written, with
//! RFC 2047 encoded words left encoded (clients decode them, as for the subject); a
//! quoted-string loses its quotes and escapes, runs of white space become one space.
//! Comments are not display names (RFC 5322 §3.2.2), except the legacy `addr (Name)`
//! form: a comment after a bare addr-spec names the mailbox when nothing else does.

use crate::codec::Address;

#[derive(Debug, PartialEq)]
enum Token {
    /// An atom or dot-atom, a domain literal, or a run of other text.
    Word(Vec<u8>),
    /// A quoted-string, unquoted.
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    /// One of `< > @ , ; :`.
    Special(u8),
}

fn tokens(v: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'<' | b'>' | b'@' | b',' | b';' | b':' => {
                out.push(Token::Special(c));
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                while let Some(&c) = v.get(i) {
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if let Some(&n) = v.get(i) {
                                s.push(n);
                                i += 1;
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => s.push(c),
                    }
                }
                out.push(Token::Quoted(s));
            }
            b'(' => {
                // RFC 5322 §3.2.2: comments nest.
                let (mut depth, mut s) = (0usize, Vec::new());
                while let Some(&c) = v.get(i) {
                    i += 1;
                    match c {
                        b'(' => {
                            if depth > 0 {
                                s.push(c);
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            s.push(c);
                        }
                        b'\\' => {
                            if let Some(&n) = v.get(i) {
                                s.push(n);
                                i += 1;
                            }
                        }
                        _ => s.push(c),
                    }
                }
                out.push(Token::Comment(s));
            }
            _ => {
                let start = i;
                while let Some(&c) = v.get(i) {
                    if b" \t\r\n<>@,;:\"(".contains(&c) {
                        break;
                    }
                    i += 1;
                }
                out.push(Token::Word(v.get(start..i).unwrap_or_default().to_vec()));
            }
        }
    }
    out
}

/// The words of a phrase joined by single spaces (comments dropped); `None` when empty.
fn phrase(words: &[&Token]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for t in words {
        let w = match t {
            Token::Word(w) | Token::Quoted(w) => w.as_slice(),
            Token::Special(c) => std::slice::from_ref(c),
            Token::Comment(_) => continue,
        };
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(w);
    }
    (!out.is_empty()).then_some(out)
}

/// `local@domain` from the tokens of an addr-spec (comments dropped).
fn addr_spec(ts: &[&Token]) -> (Vec<u8>, Vec<u8>) {
    let mut local = Vec::new();
    let mut host = Vec::new();
    let mut at = false;
    for t in ts {
        let dst = if at { &mut host } else { &mut local };
        match t {
            Token::Special(b'@') if !at => at = true,
            Token::Word(w) => dst.extend_from_slice(w),
            Token::Quoted(q) => {
                // A quoted local part stays quoted: local@host must remain an address.
                dst.push(b'"');
                dst.extend_from_slice(q);
                dst.push(b'"');
            }
            Token::Special(c) => dst.push(*c),
            Token::Comment(_) => {}
        }
    }
    (local, host)
}

fn mailbox(name: Option<Vec<u8>>, adl: Option<Vec<u8>>, spec: &[&Token]) -> Option<Address> {
    let (local, host) = addr_spec(spec);
    if local.is_empty() && host.is_empty() {
        return None;
    }
    Some(Address {
        name,
        adl,
        mailbox: Some(local),
        // RFC 9051 §7.5.2 keeps NIL for group markers: a missing domain is "".
        host: Some(host),
    })
}

/// One mailbox from the tokens between two separators.
fn one(ts: &[&Token]) -> Option<Address> {
    if let Some(open) = ts.iter().position(|t| **t == Token::Special(b'<')) {
        // name-addr: [display-name] "<" [obs-route] addr-spec ">" (RFC 5322 §3.4, §4.4).
        let inner: Vec<&Token> = ts
            .get(open + 1..)
            .unwrap_or_default()
            .iter()
            .take_while(|t| ***t != Token::Special(b'>'))
            .copied()
            .collect();
        let (adl, spec) = match inner.iter().position(|t| **t == Token::Special(b':')) {
            Some(colon) => (
                phrase(inner.get(..colon).unwrap_or_default())
                    .map(|r| r.into_iter().filter(|b| *b != b' ').collect()),
                inner.get(colon + 1..).unwrap_or_default(),
            ),
            None => (None, &inner[..]),
        };
        return mailbox(phrase(ts.get(..open).unwrap_or_default()), adl, spec);
    }
    // A bare addr-spec; a comment after it names it (the legacy `addr (Name)` form).
    let name = ts
        .iter()
        .rev()
        .take_while(|t| matches!(t, Token::Comment(_)));
    let name = name
        .last()
        .and_then(|t| match t {
            Token::Comment(c) => Some(c.clone()),
            _ => None,
        })
        .filter(|c| !c.is_empty());
    mailbox(name, None, ts)
}

/// Splits at top-level commas (not inside `<…>`), then parses each mailbox.
fn mailboxes(ts: &[&Token], out: &mut Vec<Address>) {
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in ts.iter().enumerate() {
        match t {
            Token::Special(b'<') => depth += 1,
            Token::Special(b'>') => depth = depth.saturating_sub(1),
            Token::Special(b',') if depth == 0 => {
                out.extend(one(ts.get(start..i).unwrap_or_default()));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(one(ts.get(start..).unwrap_or_default()));
}

/// The ENVELOPE address list of a field value; a group is its start marker (NIL host,
/// the group name as mailbox), its members, and an end marker of four NILs.
pub(crate) fn address_list(value: &[u8]) -> Vec<Address> {
    let all = tokens(value);
    let ts: Vec<&Token> = all.iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < ts.len() {
        // Up to the next top-level ',' — or, for a group, through its ';'.
        let mut j = i;
        let mut depth = 0usize;
        let mut group_colon = None;
        while let Some(t) = ts.get(j) {
            match t {
                Token::Special(b'<') => depth += 1,
                Token::Special(b'>') => depth = depth.saturating_sub(1),
                Token::Special(b':') if depth == 0 && group_colon.is_none() => {
                    group_colon = Some(j);
                }
                Token::Special(b';') if group_colon.is_some() => break,
                Token::Special(b',') if depth == 0 && group_colon.is_none() => break,
                _ => {}
            }
            j += 1;
        }
        match group_colon {
            Some(colon) => {
                out.push(Address {
                    name: None,
                    adl: None,
                    mailbox: Some(phrase(ts.get(i..colon).unwrap_or_default()).unwrap_or_default()),
                    host: None,
                });
                mailboxes(ts.get(colon + 1..j).unwrap_or_default(), &mut out);
                out.push(Address::default());
            }
            None => out.extend(one(ts.get(i..j).unwrap_or_default())),
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: Option<&str>, mailbox: &str, host: Option<&str>) -> Address {
        Address {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: Some(mailbox.as_bytes().to_vec()),
            host: host.map(|h| h.as_bytes().to_vec()),
        }
    }

    #[test]
    fn groups_quoted_names_and_comments() {
        let l = address_list(
            b"Team: ivan@example.com, \"Judy J.\" <judy@example.com>;, kim@example.net, \
              \"Doe, John\" <john.doe@example.com>, undisclosed-recipients:;, \
              (comment) mallory@example.org, old@example.org (Old  Style)",
        );
        assert_eq!(
            l,
            vec![
                addr(None, "Team", None),
                addr(None, "ivan", Some("example.com")),
                addr(Some("Judy J."), "judy", Some("example.com")),
                Address::default(),
                addr(None, "kim", Some("example.net")),
                addr(Some("Doe, John"), "john.doe", Some("example.com")),
                addr(None, "undisclosed-recipients", None),
                Address::default(),
                // RFC 5322 §3.2.2: a leading comment is no display name.
                addr(None, "mallory", Some("example.org")),
                addr(Some("Old  Style"), "old", Some("example.org")),
            ]
        );
    }

    #[test]
    fn encoded_words_stay_encoded_and_routes_are_kept() {
        let l = address_list(
            b"=?ISO-8859-1?Q?Andr=E9_D=FCrr?= <andre@example.net>, Plain  Words <p@x.test>, \
              <@a.example,@b.example:r@x.test>, local-only",
        );
        assert_eq!(
            l[0].name.as_deref(),
            Some(&b"=?ISO-8859-1?Q?Andr=E9_D=FCrr?="[..])
        );
        assert_eq!(l[1].name.as_deref(), Some(&b"Plain Words"[..]));
        assert_eq!(l[2].adl.as_deref(), Some(&b"@a.example,@b.example"[..]));
        assert_eq!(l[2].mailbox.as_deref(), Some(&b"r"[..]));
        assert_eq!(l[3], addr(None, "local-only", Some("")));
        assert_eq!(l.len(), 4);
    }
}
