//! Wire types shared by commands and responses.

use std::fmt;

/// One end of a sequence range: a number or `*` (RFC 9051 §9 `seq-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNumber {
    /// A non-zero message sequence number or UID.
    Value(u32),
    /// `*`: the largest number in use (for an empty mailbox, RFC 9051 §9 note).
    Star,
}

impl SeqNumber {
    /// Resolves `*` to `largest`.
    pub fn resolve(self, largest: u32) -> u32 {
        match self {
            Self::Value(v) => v,
            Self::Star => largest,
        }
    }
}

/// One element of a sequence set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqItem {
    /// A single number or a range `a:b` (stored as given; `b` may be below `a`,
    /// RFC 9051 §9 `seq-range`: "2:4 and 4:2 are equivalent"). A single number
    /// has `start == end`.
    Range(SeqNumber, SeqNumber),
    /// `$`: the result saved by `SEARCH RETURN (SAVE)` (SEARCHRES, RFC 5182 §2.1).
    Saved,
}

/// A sequence set (RFC 9051 §9 `sequence-set`), e.g. `1,3:5,10:*` or `$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet(pub Vec<SeqItem>);

impl SequenceSet {
    /// A set with a single number.
    pub fn single(n: u32) -> Self {
        Self(vec![SeqItem::Range(
            SeqNumber::Value(n),
            SeqNumber::Value(n),
        )])
    }

    /// A set with one range `a:b`.
    pub fn range(a: u32, b: u32) -> Self {
        Self(vec![SeqItem::Range(
            SeqNumber::Value(a),
            SeqNumber::Value(b),
        )])
    }

    /// A set that keeps the order of `numbers`: only runs of consecutive numbers, rising
    /// or falling, become ranges (ESORT `ALL`, RFC 5267 §3.2: "5:3,9,1").
    pub fn from_ordered(numbers: &[u32]) -> Self {
        let mut items = Vec::new();
        let mut i = 0;
        while let Some(&start) = numbers.get(i) {
            let next = numbers.get(i + 1).copied();
            let up = next.is_some() && next == start.checked_add(1);
            let down = next.is_some() && next == start.checked_sub(1);
            let mut j = i;
            while let (Some(&x), Some(&y)) = (numbers.get(j), numbers.get(j + 1)) {
                let want = if up {
                    x.checked_add(1)
                } else if down {
                    x.checked_sub(1)
                } else {
                    None
                };
                if want != Some(y) {
                    break;
                }
                j += 1;
            }
            let end = numbers.get(j).copied().unwrap_or(start);
            items.push(SeqItem::Range(
                SeqNumber::Value(start),
                SeqNumber::Value(end),
            ));
            i = j + 1;
        }
        Self(items)
    }

    /// Builds a compact set from a sorted or unsorted list of numbers
    /// (used for COPYUID/APPENDUID, VANISHED, ...).
    pub fn from_numbers(numbers: &[u32]) -> Self {
        let mut v: Vec<u32> = numbers.to_vec();
        v.sort_unstable();
        v.dedup();
        let mut items = Vec::new();
        let mut iter = v.into_iter();
        if let Some(first) = iter.next() {
            let (mut a, mut b) = (first, first);
            for n in iter {
                if Some(n) == b.checked_add(1) {
                    b = n;
                } else {
                    items.push(SeqItem::Range(SeqNumber::Value(a), SeqNumber::Value(b)));
                    a = n;
                    b = n;
                }
            }
            items.push(SeqItem::Range(SeqNumber::Value(a), SeqNumber::Value(b)));
        }
        Self(items)
    }

    /// True if the set uses `$` (the server must substitute the saved result).
    pub fn uses_saved(&self) -> bool {
        self.0.iter().any(|i| matches!(i, SeqItem::Saved))
    }

    /// True if `n` is in the set, with `*` meaning `largest`. `$` items never
    /// match; resolve them first.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|item| match *item {
            SeqItem::Range(a, b) => {
                let (a, b) = (a.resolve(largest), b.resolve(largest));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                (lo..=hi).contains(&n)
            }
            SeqItem::Saved => false,
        })
    }
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match item {
                SeqItem::Saved => f.write_str("$")?,
                SeqItem::Range(a, b) => {
                    write_seq(f, *a)?;
                    if a != b {
                        f.write_str(":")?;
                        write_seq(f, *b)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, n: SeqNumber) -> fmt::Result {
    match n {
        SeqNumber::Value(v) => write!(f, "{v}"),
        SeqNumber::Star => f.write_str("*"),
    }
}

/// A message flag (RFC 9051 §2.3.2, `flag` in §9).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `\Answered`
    Answered,
    /// `\Flagged`
    Flagged,
    /// `\Deleted`
    Deleted,
    /// `\Seen`
    Seen,
    /// `\Draft`
    Draft,
    /// `\Recent` (IMAP4rev1 only; RFC 9051 removed it, and clients cannot set it).
    Recent,
    /// Any other system flag, without the backslash (`flag-extension`).
    Extension(String),
    /// A keyword (`flag-keyword`), e.g. `$Forwarded`, `$Junk`.
    Keyword(String),
}

impl Flag {
    /// Parses the wire form (`\Seen`, `$Junk`, ...), case-insensitive for system
    /// flags. Returns `None` for an empty keyword or lone backslash.
    pub fn from_wire(s: &str) -> Option<Self> {
        if let Some(rest) = s.strip_prefix('\\') {
            if rest.is_empty() {
                return None;
            }
            Some(match rest.to_ascii_lowercase().as_str() {
                "answered" => Self::Answered,
                "flagged" => Self::Flagged,
                "deleted" => Self::Deleted,
                "seen" => Self::Seen,
                "draft" => Self::Draft,
                "recent" => Self::Recent,
                _ => Self::Extension(rest.to_string()),
            })
        } else if s.is_empty() {
            None
        } else {
            Some(Self::Keyword(s.to_string()))
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered => f.write_str("\\Answered"),
            Self::Flagged => f.write_str("\\Flagged"),
            Self::Deleted => f.write_str("\\Deleted"),
            Self::Seen => f.write_str("\\Seen"),
            Self::Draft => f.write_str("\\Draft"),
            Self::Recent => f.write_str("\\Recent"),
            Self::Extension(s) => write!(f, "\\{s}"),
            Self::Keyword(s) => f.write_str(s),
        }
    }
}

/// A mailbox name, decoded to Unicode. `INBOX` is normalised to upper case in
/// any spelling (RFC 9051 §5.1: "INBOX" is case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName(String);

impl MailboxName {
    /// Wraps a decoded name, normalising `inbox` to `INBOX`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case("INBOX") {
            Self("INBOX".to_string())
        } else {
            Self(name)
        }
    }

    /// The decoded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for INBOX.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MailboxName {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// A calendar date as used by SEARCH (RFC 9051 §9 `date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// Year, four digits.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31 (validated against the month).
    pub day: u8,
}

/// A date-time with zone (RFC 9051 §9 `date-time`), e.g. INTERNALDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The calendar date.
    pub date: Date,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=60 (leap second).
    pub second: u8,
    /// Offset from UTC in minutes, -1439..=1439 (`+0200` is 120).
    pub zone_minutes: i16,
}

/// Month names used by IMAP dates (RFC 9051 §9 `date-month`).
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub(crate) fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// Builds a date, validating month and day.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        (day >= 1 && day <= days_in_month(year, month)).then_some(Self { year, month, day })
    }
}

impl fmt::Display for Date {
    /// SEARCH form: `1-Feb-1994`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = MONTHS
            .get(usize::from(self.month).wrapping_sub(1))
            .unwrap_or(&"Jan");
        write!(f, "{}-{}-{:04}", self.day, m, self.year)
    }
}

impl fmt::Display for DateTime {
    /// Wire form without quotes: `17-Jul-1996 02:44:25 -0700` (day is
    /// space-padded, RFC 9051 §9 `date-day-fixed`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = MONTHS
            .get(usize::from(self.date.month).wrapping_sub(1))
            .unwrap_or(&"Jan");
        let sign = if self.zone_minutes < 0 { '-' } else { '+' };
        let z = self.zone_minutes.unsigned_abs();
        write!(
            f,
            "{:>2}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            self.date.day,
            m,
            self.date.year,
            self.hour,
            self.minute,
            self.second,
            sign,
            z / 60,
            z % 60
        )
    }
}

/// A body section part number path, e.g. `1.2.3` (RFC 9051 §6.4.5).
pub type PartPath = Vec<u32>;

/// The text part of a section specifier (RFC 9051 §9 `section-text`,
/// `section-msgtext`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SectionText {
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (names)`
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (names)`
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`
    Text,
    /// `MIME` (only after a part number)
    Mime,
}

/// A `BODY[...]` section (RFC 9051 §6.4.5): `part` empty means the whole
/// message; `text` `None` means the whole part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Section {
    /// Part numbers, e.g. `[1, 2]` for `1.2`.
    pub part: PartPath,
    /// Header/text/MIME selector.
    pub text: Option<SectionText>,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.part {
            if !first {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
            first = false;
        }
        if let Some(t) = &self.text {
            if !first {
                f.write_str(".")?;
            }
            let (name, fields) = match t {
                SectionText::Header => ("HEADER", None),
                SectionText::HeaderFields(v) => ("HEADER.FIELDS", Some(v)),
                SectionText::HeaderFieldsNot(v) => ("HEADER.FIELDS.NOT", Some(v)),
                SectionText::Text => ("TEXT", None),
                SectionText::Mime => ("MIME", None),
            };
            f.write_str(name)?;
            if let Some(v) = fields {
                f.write_str(" (")?;
                for (i, h) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    f.write_str(h)?;
                }
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

/// A STATUS data item name (RFC 9051 §6.3.11; SIZE RFC 8438; HIGHESTMODSEQ
/// RFC 7162 §3.1.6; DELETED RFC 9051; APPENDLIMIT RFC 7889).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusItem {
    /// `MESSAGES`
    Messages,
    /// `RECENT` (IMAP4rev1 only)
    Recent,
    /// `UIDNEXT`
    UidNext,
    /// `UIDVALIDITY`
    UidValidity,
    /// `UNSEEN`
    Unseen,
    /// `DELETED`
    Deleted,
    /// `SIZE`
    Size,
    /// `HIGHESTMODSEQ`
    HighestModSeq,
    /// `APPENDLIMIT`
    AppendLimit,
}

impl StatusItem {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Messages => "MESSAGES",
            Self::Recent => "RECENT",
            Self::UidNext => "UIDNEXT",
            Self::UidValidity => "UIDVALIDITY",
            Self::Unseen => "UNSEEN",
            Self::Deleted => "DELETED",
            Self::Size => "SIZE",
            Self::HighestModSeq => "HIGHESTMODSEQ",
            Self::AppendLimit => "APPENDLIMIT",
        }
    }

    pub(crate) fn from_keyword(k: &str) -> Option<Self> {
        Some(match k {
            "MESSAGES" => Self::Messages,
            "RECENT" => Self::Recent,
            "UIDNEXT" => Self::UidNext,
            "UIDVALIDITY" => Self::UidValidity,
            "UNSEEN" => Self::Unseen,
            "DELETED" => Self::Deleted,
            "SIZE" => Self::Size,
            "HIGHESTMODSEQ" => Self::HighestModSeq,
            "APPENDLIMIT" => Self::AppendLimit,
            _ => return None,
        })
    }
}
