//! Base subject extraction for SORT and THREAD (RFC 5256 §2.1).
//!
//! # Implementation notes
//!
//! - The input is the decoded Subject (RFC 2047 words already turned into UTF-8 by
//!   mail-parser, step 1's first half); the rest of step 1 (tabs and folding to one space)
//!   happens here.
//! - `subj-blob` characters are any except `[` and `]` (RFC 5256 §5 `BLOBCHAR`, which covers
//!   octets above 0x7f, i.e. UTF-8 text).
//! - The comparison key is the base subject under `i;ascii-casemap` (RFC 5256 §3: ASCII
//!   letters upper-cased), so keys compare with plain `Ord`.

/// The base subject of a message and whether it is a reply or forward.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BaseSubject {
    /// The base subject, ASCII upper-cased (the `i;ascii-casemap` collation).
    pub(crate) key: String,
    /// RFC 5256 §2.1: extraction removed a `subj-refwd`, a `(fwd)` trailer or a
    /// `[fwd: ...]` wrapper, so the message is a reply or forward (used by REFERENCES
    /// step 5).
    pub(crate) reply: bool,
}

/// RFC 5256 §2.1 steps 1-7.
pub(crate) fn base_subject(subject: &str) -> BaseSubject {
    // Step 1: tabs and line folding become one space; runs of spaces collapse.
    let mut s = String::with_capacity(subject.len());
    let mut space = false;
    for c in subject.chars() {
        if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
            if !space {
                s.push(' ');
            }
            space = true;
        } else {
            s.push(c);
            space = false;
        }
    }
    let mut reply = false;
    loop {
        // Step 2: remove trailing "(fwd)" and whitespace (subj-trailer), repeatedly.
        loop {
            let t = s.trim_end_matches(' ').len();
            s.truncate(t);
            if ends_with_ci(&s, "(fwd)") {
                s.truncate(s.len() - "(fwd)".len());
                reply = true;
            } else {
                break;
            }
        }
        // Step 5: repeat steps 3 and 4 until nothing changes.
        loop {
            let before = s.len();
            // Step 3: remove the subj-leader prefix, repeatedly.
            while let Some(n) = leader_len(&s) {
                if n > 0 && s.as_bytes().first() != Some(&b' ') {
                    reply = true;
                }
                s.drain(..n);
            }
            // Step 4: a leading subj-blob goes if a non-empty base subject remains.
            if let Some(n) = blob_len(&s)
                && s.get(n..)
                    .is_some_and(|rest| !rest.trim_matches(' ').is_empty())
            {
                s.drain(..n);
            }
            if s.len() == before {
                break;
            }
        }
        // Step 6: "[fwd: ... ]" wrapper (subj-fwd-hdr / subj-fwd-trl), then back to step 2.
        if starts_with_ci(&s, "[fwd:") && s.ends_with(']') {
            s = s
                .get("[fwd:".len()..s.len() - 1)
                .unwrap_or_default()
                .to_owned();
            reply = true;
            continue;
        }
        break;
    }
    // Step 7: what is left is the base subject.
    let key = s.trim_matches(' ').to_ascii_uppercase();
    BaseSubject { key, reply }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.get(s.len() - suffix.len()..)
            .is_some_and(|p| p.eq_ignore_ascii_case(suffix))
}

/// Length of a `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s` (RFC 5256 §5).
fn blob_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = b.iter().skip(1).position(|&c| c == b'[' || c == b']')? + 1;
    if b.get(close) != Some(&b']') {
        return None;
    }
    let mut n = close + 1;
    while b.get(n) == Some(&b' ') {
        n += 1;
    }
    Some(n)
}

/// Length of a `subj-leader = (*subj-blob subj-refwd) / WSP` at the start of `s`, with
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` (RFC 5256 §5).
fn leader_len(s: &str) -> Option<usize> {
    if s.starts_with(' ') {
        return Some(1);
    }
    let mut n = 0;
    while let Some(b) = s.get(n..).and_then(blob_len) {
        n += b;
    }
    let rest = s.get(n..)?;
    let word = if starts_with_ci(rest, "re") {
        2
    } else if starts_with_ci(rest, "fwd") {
        3
    } else if starts_with_ci(rest, "fw") {
        2
    } else {
        return None;
    };
    n += word;
    while s.as_bytes().get(n) == Some(&b' ') {
        n += 1;
    }
    if let Some(b) = s.get(n..).and_then(blob_len) {
        n += b;
    }
    (s.as_bytes().get(n) == Some(&b':')).then_some(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        base_subject(s).key
    }

    #[test]
    fn plain_subject_is_unchanged_but_casemapped() {
        assert_eq!(key("Hello world"), "HELLO WORLD");
        assert!(!base_subject("Hello world").reply);
        assert_eq!(key(""), "");
        assert_eq!(key("   "), "");
    }

    #[test]
    fn whitespace_is_normalised() {
        // RFC 5256 §2.1 step 1.
        assert_eq!(key("a\t\tb\r\n c"), "A B C");
    }

    #[test]
    fn reply_and_forward_prefixes_are_removed() {
        for s in [
            "Re: hello",
            "RE: hello",
            "re:hello",
            "Fwd: hello",
            "FW: hello",
            "Re: Re: Fwd: hello",
            "Re : hello",
            "Re[2]: hello",
            "Re [2]: hello",
            "[list] Re: hello",
            "[list] [x] Re: [list] Re: hello",
            "hello (fwd)",
            "hello (FWD) (fwd)  ",
            "[Fwd: hello]",
            "[fwd: Re: hello (fwd)]",
            "Re: [fwd: [list] hello]",
        ] {
            let b = base_subject(s);
            assert_eq!(b.key, "HELLO", "{s:?}");
            assert!(b.reply, "{s:?} is a reply/forward");
        }
    }

    #[test]
    fn leading_blob_removed_only_if_something_remains() {
        // Step 4: "[list] hello" loses the blob but is not a reply.
        let b = base_subject("[list] hello");
        assert_eq!(b.key, "HELLO");
        assert!(!b.reply);
        // A subject that is only a blob keeps it.
        assert_eq!(key("[list]"), "[LIST]");
        assert_eq!(key("[a][b]"), "[B]");
    }

    #[test]
    fn words_that_only_look_like_prefixes_stay() {
        assert_eq!(key("Reply needed"), "REPLY NEEDED");
        assert_eq!(key("Fwdx: hi"), "FWDX: HI");
        assert_eq!(key("Re hello"), "RE HELLO");
        assert_eq!(key("[unclosed Re: x"), "[UNCLOSED RE: X");
        assert_eq!(key("hello(fwd)x"), "HELLO(FWD)X");
        assert!(!base_subject("Reply needed").reply);
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(key("Re: [Liste für alle] Grüße"), "GRüßE");
        assert_eq!(key("Re: héllo"), "HéLLO");
    }

    #[test]
    fn fwd_wrapper_without_close_is_kept() {
        assert_eq!(key("[fwd: hello"), "[FWD: HELLO");
    }
}
