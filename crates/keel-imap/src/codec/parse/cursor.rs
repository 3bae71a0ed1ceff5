//! Token-level reading of a framed command (RFC 9051 §4 data formats, §9 ABNF).

use super::super::error::ParseError;
use super::super::limits::Limits;
use super::super::mutf7;
use super::super::types::{
    Date, DateTime, Flag, MONTHS, MailboxName, SeqItem, SeqNumber, SequenceSet,
};
use std::borrow::Cow;

pub(crate) type PResult<T> = Result<T, ParseError>;

pub(crate) fn syntax<T>(what: impl Into<String>) -> PResult<T> {
    Err(ParseError::Syntax(what.into()))
}

/// RFC 9051 §9 `ATOM-CHAR`: any CHAR except atom-specials
/// (`(` `)` `{` SP CTL `%` `*` `"` `\` `]`).
pub(crate) fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// RFC 9051 §9 `ASTRING-CHAR` = ATOM-CHAR / resp-specials.
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// RFC 9051 §9 `tag`: ASTRING-CHAR except "+".
pub(crate) fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// RFC 9051 §9 `list-char` = ATOM-CHAR / list-wildcards / resp-specials.
fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// A literal read from the command.
pub(crate) struct Literal<'a> {
    pub(crate) data: &'a [u8],
    /// `~{N}` literal8 (RFC 3516 §4.1).
    pub(crate) binary: bool,
}

/// Reads a command made of text lines and the literals between them.
pub(crate) struct Cursor<'a> {
    lines: &'a [Vec<u8>],
    literals: &'a [Vec<u8>],
    line: usize,
    pos: usize,
    depth: usize,
    pub(crate) limits: &'a Limits,
    pub(crate) utf8: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        lines: &'a [Vec<u8>],
        literals: &'a [Vec<u8>],
        limits: &'a Limits,
        utf8: bool,
    ) -> Self {
        Self {
            lines,
            literals,
            line: 0,
            pos: 0,
            depth: 0,
            limits,
            utf8,
        }
    }

    fn cur(&self) -> &'a [u8] {
        self.lines
            .get(self.line)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.cur().get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, n: usize) -> Option<u8> {
        self.cur().get(self.pos + n).copied()
    }

    /// The rest of the current line.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.cur().get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            syntax(format!("expected '{}'", char::from(b)))
        }
    }

    /// Exactly one SP (RFC 9051 §9 `SP`).
    pub(crate) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ')
    }

    /// True at the very end of the command.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.cur().len() && self.line + 1 >= self.lines.len()
    }

    /// Requires the end of the command.
    pub(crate) fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            syntax("unexpected extra arguments")
        }
    }

    /// Enters a parenthesised list, enforcing [`Limits::max_depth`].
    pub(crate) fn open(&mut self) -> PResult<()> {
        self.expect(b'(')?;
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(ParseError::TooDeep(self.limits.max_depth));
        }
        Ok(())
    }

    /// Leaves a parenthesised list.
    pub(crate) fn close(&mut self) -> PResult<()> {
        self.expect(b')')?;
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// Takes bytes while `pred` holds (at least one).
    pub(crate) fn take_while(
        &mut self,
        what: &str,
        pred: impl Fn(u8) -> bool,
    ) -> PResult<&'a [u8]> {
        let rest = self.rest();
        let n = rest.iter().take_while(|&&b| pred(b)).count();
        if n == 0 {
            return syntax(format!("expected {what}"));
        }
        self.pos += n;
        Ok(rest.get(..n).unwrap_or_default())
    }

    /// RFC 9051 §9 `atom`.
    pub(crate) fn atom(&mut self) -> PResult<&'a str> {
        let a = self.take_while("atom", is_atom_char)?;
        // ATOM-CHAR is ASCII, so this cannot fail.
        std::str::from_utf8(a).or_else(|_| syntax("atom"))
    }

    /// An atom, upper-cased (command names, keywords).
    pub(crate) fn keyword(&mut self) -> PResult<String> {
        Ok(self.atom()?.to_ascii_uppercase())
    }

    /// Reads letters, digits, `.` and `-` (FETCH item names like `BODY.PEEK`
    /// stop before `[`).
    pub(crate) fn name(&mut self) -> PResult<String> {
        let a = self.take_while("name", |b| {
            b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
        })?;
        Ok(String::from_utf8_lossy(a).to_ascii_uppercase())
    }

    /// True (and consumed) if the next token is `kw`, case-insensitively, and
    /// not followed by more atom characters.
    pub(crate) fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let n = kw.len();
        match rest.get(..n) {
            Some(head) if head.eq_ignore_ascii_case(kw.as_bytes()) => {
                if rest.get(n).is_some_and(|&b| is_atom_char(b)) {
                    return false;
                }
                self.pos += n;
                true
            }
            _ => false,
        }
    }

    /// RFC 9051 §9 `number64` (up to 2^63-1).
    pub(crate) fn number64(&mut self) -> PResult<u64> {
        let d = self.take_while("number", |b| b.is_ascii_digit())?;
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n <= i64::MAX as u64)
            .map_or_else(|| syntax("number out of range"), Ok)
    }

    /// RFC 9051 §9 `number` (32-bit unsigned).
    pub(crate) fn number(&mut self) -> PResult<u32> {
        let n = self.number64()?;
        u32::try_from(n).or_else(|_| syntax("number out of range"))
    }

    /// RFC 9051 §9 `nz-number`.
    pub(crate) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => syntax("number must be non-zero"),
            n => Ok(n),
        }
    }

    /// RFC 9051 §9 `quoted`. 8-bit bytes are accepted (UTF-8 is allowed by
    /// IMAP4rev2 and UTF8=ACCEPT; accepted leniently in IMAP4rev1 too).
    pub(crate) fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return syntax("unterminated quoted string"),
                Some(b'"') => {
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.bump();
                        }
                        _ => return syntax("invalid escape in quoted string"),
                    }
                }
                Some(0) => return syntax("NUL in quoted string"),
                Some(c) => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    /// RFC 9051 §9 `literal` / `literal8`: `{N}`, `{N+}` or `~{N}` at the end of
    /// the line, followed by the literal the receiver framed.
    pub(crate) fn literal(&mut self) -> PResult<Literal<'a>> {
        let binary = self.eat(b'~');
        self.expect(b'{')?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if self.pos != self.cur().len() {
            return syntax("literal announcement must end the line");
        }
        let Some(data) = self.literals.get(self.line) else {
            return syntax("missing literal");
        };
        if data.len() as u64 != n {
            return syntax("literal length mismatch");
        }
        if !binary && data.contains(&0) {
            // RFC 9051 §4.3: only literal8 may contain NUL.
            return syntax("NUL in literal (use literal8)");
        }
        self.line += 1;
        self.pos = 0;
        Ok(Literal { data, binary })
    }

    /// RFC 9051 §9 `string` = quoted / literal.
    pub(crate) fn string(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => Ok(Cow::Owned(self.quoted()?)),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?.data)),
            _ => syntax("expected string"),
        }
    }

    /// RFC 9051 §9 `astring` = 1*ASTRING-CHAR / string.
    pub(crate) fn astring(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(Cow::Borrowed(self.take_while("astring", is_astring_char)?)),
        }
    }

    /// An astring that must be UTF-8 text.
    pub(crate) fn astring_utf8(&mut self) -> PResult<String> {
        let a = self.astring()?;
        String::from_utf8(a.into_owned()).or_else(|_| syntax("invalid UTF-8"))
    }

    /// RFC 9051 §9 `nstring` = string / nil.
    pub(crate) fn nstring(&mut self) -> PResult<Option<Cow<'a, [u8]>>> {
        if self.eat_keyword("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// Decodes a mailbox-like name: raw UTF-8 in UTF-8 mode (RFC 6855 §3,
    /// RFC 9051 §5.1); otherwise modified UTF-7 (RFC 3501 §5.1.3), with raw
    /// UTF-8 accepted leniently when the name has 8-bit bytes.
    pub(crate) fn decode_name(&self, raw: &[u8]) -> PResult<String> {
        if self.utf8 || !raw.is_ascii() {
            return String::from_utf8(raw.to_vec())
                .map_err(|_| ParseError::BadMailboxName("invalid UTF-8".into()));
        }
        mutf7::decode_bytes(raw).map_err(|e| ParseError::BadMailboxName(e.to_string()))
    }

    /// RFC 9051 §9 `mailbox` = "INBOX" / astring.
    pub(crate) fn mailbox(&mut self) -> PResult<MailboxName> {
        let raw = self.astring()?;
        Ok(MailboxName::new(self.decode_name(&raw)?))
    }

    /// RFC 9051 §9 `list-mailbox` = 1*list-char / string.
    pub(crate) fn list_mailbox(&mut self) -> PResult<String> {
        let raw = match self.peek() {
            Some(b'"' | b'{') => self.string()?,
            _ => Cow::Borrowed(self.take_while("mailbox pattern", is_list_char)?),
        };
        self.decode_name(&raw)
    }

    /// RFC 9051 §9 `seq-number`.
    fn seq_number(&mut self) -> PResult<SeqNumber> {
        if self.eat(b'*') {
            Ok(SeqNumber::Star)
        } else {
            self.nz_number().map(SeqNumber::Value)
        }
    }

    /// RFC 9051 §9 `sequence-set`, with `$` (RFC 5182 §2.1).
    pub(crate) fn sequence_set(&mut self) -> PResult<SequenceSet> {
        let mut items = Vec::new();
        loop {
            if items.len() >= self.limits.max_sequence_ranges {
                return Err(ParseError::TooManyRanges(self.limits.max_sequence_ranges));
            }
            if self.eat(b'$') {
                items.push(SeqItem::Saved);
            } else {
                let a = self.seq_number()?;
                let b = if self.eat(b':') {
                    self.seq_number()?
                } else {
                    a
                };
                items.push(SeqItem::Range(a, b));
            }
            if !self.eat(b',') {
                break;
            }
        }
        if self.peek().is_some_and(is_atom_char) {
            return syntax("invalid sequence set");
        }
        Ok(SequenceSet(items))
    }

    /// True if a sequence set starts here.
    pub(crate) fn at_sequence_set(&self) -> bool {
        matches!(self.peek(), Some(b'0'..=b'9' | b'*' | b'$'))
    }

    /// RFC 9051 §9 `flag` (no `\*`, no `\Recent`, which clients cannot set).
    pub(crate) fn flag(&mut self) -> PResult<Flag> {
        let backslash = self.eat(b'\\');
        let a = self.atom()?;
        let text = if backslash {
            format!("\\{a}")
        } else {
            a.to_string()
        };
        match Flag::from_wire(&text) {
            Some(Flag::Recent) => syntax("\\Recent cannot be set"),
            Some(f) => Ok(f),
            None => syntax("invalid flag"),
        }
    }

    /// RFC 9051 §9 `flag-list` = "(" [flag *(SP flag)] ")".
    pub(crate) fn flag_list(&mut self) -> PResult<Vec<Flag>> {
        self.open()?;
        let mut flags = Vec::new();
        if self.peek() != Some(b')') {
            loop {
                flags.push(self.flag()?);
                if !self.eat(b' ') {
                    break;
                }
            }
        }
        self.close()?;
        Ok(flags)
    }

    fn digits(&mut self, n: usize) -> PResult<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(d - b'0');
                    self.bump();
                }
                _ => return syntax("expected digit"),
            }
        }
        Ok(v)
    }

    fn month(&mut self) -> PResult<u8> {
        let m = self.rest().get(..3).unwrap_or_default();
        let idx = MONTHS
            .iter()
            .position(|name| name.as_bytes().eq_ignore_ascii_case(m));
        match idx {
            Some(i) => {
                self.pos += 3;
                Ok(i as u8 + 1)
            }
            None => syntax("invalid month"),
        }
    }

    /// RFC 9051 §9 `date-text` = date-day "-" date-month "-" date-year.
    fn date_text(&mut self) -> PResult<Date> {
        let day = self.digits(1)?;
        let day = if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            day * 10 + self.digits(1)?
        } else {
            day
        };
        self.expect(b'-')?;
        let month = self.month()?;
        self.expect(b'-')?;
        let year = self.digits(4)?;
        Date::new(year as u16, month, day as u8).map_or_else(|| syntax("invalid date"), Ok)
    }

    /// RFC 9051 §9 `date` = date-text / DQUOTE date-text DQUOTE (SEARCH).
    pub(crate) fn date(&mut self) -> PResult<Date> {
        if self.eat(b'"') {
            let d = self.date_text()?;
            self.expect(b'"')?;
            Ok(d)
        } else {
            self.date_text()
        }
    }

    /// RFC 9051 §9 `date-time` = DQUOTE date-day-fixed "-" date-month "-"
    /// date-year SP time SP zone DQUOTE.
    pub(crate) fn date_time(&mut self) -> PResult<DateTime> {
        self.expect(b'"')?;
        // date-day-fixed = (SP DIGIT) / 2DIGIT; one digit is accepted too.
        self.eat(b' ');
        let day = self.digits(1)?;
        let day = if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            day * 10 + self.digits(1)?
        } else {
            day
        };
        self.expect(b'-')?;
        let month = self.month()?;
        self.expect(b'-')?;
        let year = self.digits(4)?;
        self.sp()?;
        let hour = self.digits(2)?;
        self.expect(b':')?;
        let minute = self.digits(2)?;
        self.expect(b':')?;
        let second = self.digits(2)?;
        self.sp()?;
        let negative = match self.peek() {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return syntax("expected zone"),
        };
        self.bump();
        let zh = self.digits(2)?;
        let zm = self.digits(2)?;
        self.expect(b'"')?;
        let date =
            Date::new(year as u16, month, day as u8).map_or_else(|| syntax("invalid date"), Ok)?;
        if hour > 23 || minute > 59 || second > 60 || zh > 23 || zm > 59 {
            return syntax("invalid time");
        }
        let zone = (zh * 60 + zm) as i16;
        Ok(DateTime {
            date,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            zone_minutes: if negative { -zone } else { zone },
        })
    }

    /// Reads `( item *(SP item) )` with at least one item.
    pub(crate) fn paren_list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.open()?;
        let mut v = vec![item(self)?];
        while self.eat(b' ') {
            v.push(item(self)?);
        }
        self.close()?;
        Ok(v)
    }

    /// Reads `( [item *(SP item)] )`, possibly empty.
    pub(crate) fn paren_list0<T>(
        &mut self,
        item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        if self.peek() == Some(b'(') && self.peek_at(1) == Some(b')') {
            self.open()?;
            self.close()?;
            return Ok(Vec::new());
        }
        self.paren_list(item)
    }
}
