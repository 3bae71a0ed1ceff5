//! Time intervals, the guide's "Time Ranges" (guide §19.2).
//!
//! A time interval is a named set of sub-ranges of three types: daily (every day, from–to
//! hours), weekly (selected days of the week, from–to hours) and absolute (a start and an end
//! date-time, no repetition). Intervals restrict scheduled tasks (guide §20 "Valid only at
//! time").
//!
//! Validity (guide §19.2): an interval is valid in the **intersection of the union of its
//! absolute ranges with the union of its daily and weekly ranges**, `(d1 | d2 | w1 | w2) &
//! (a1 | a2)`. When one of the two kinds is absent, that side imposes no restriction: only
//! daily/weekly ranges means their union, only absolute ranges means their union. An interval
//! without any range is never valid. Times are wall-clock times in the server's local time
//! zone; the caller converts.
//!
//! Intervals cannot be cascaded (guide §19.2), so there is no nesting and no `TimeIntervals`
//! registry here.
//!
//! Implementation notes:
//! - Daily and weekly ranges are half-open, `[from, to)`. A `to` earlier than `from` wraps past
//!   midnight (`22:00-06:00`); a weekly range that wraps continues into the morning of the day
//!   *after* each selected day. `to == from` means a full 24 hours from `from`.
//! - The end of day, written `24:00`, is stored as `00:00` (`NaiveTime` has no 24:00); by the
//!   wrap rule `08:00-24:00` then ends exactly at midnight and `00:00-24:00` is the whole day.
//! - Absolute ranges include both bounds, `from <= at <= to`.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};

/// Monday to Friday, the guide's "Weekday" preset (guide §19.2 "Valid at days").
pub const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
/// Saturday and Sunday, the guide's "Weekend" preset.
pub const WEEKEND: [Weekday; 2] = [Weekday::Sat, Weekday::Sun];
/// All seven days, the guide's "Everyday" preset, Monday first.
pub const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The stored form of the end-of-day time `24:00` (see the module notes).
pub const END_OF_DAY: NaiveTime = NaiveTime::MIN;

/// Errors of time ranges and intervals. Every message is a full sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeIntervalError {
    /// The text form of a range could not be parsed.
    #[error("'{input}' is not a valid time range: {reason}")]
    Syntax {
        /// The rejected text.
        input: String,
        /// What is wrong (a sentence fragment).
        reason: String,
    },
    /// A weekly range without any day.
    #[error("the weekly time range '{0}' has no days selected")]
    NoDays(String),
    /// An absolute range that ends before it starts.
    #[error("the absolute time range '{0}' ends before it starts")]
    Reversed(String),
    /// A time interval with an empty name.
    #[error("a time interval name must not be empty")]
    EmptyName,
}

/// One sub-range of a time interval (guide §19.2 "Time Interval Type").
///
/// Serialised with a `type` tag: `{"type":"weekly","days":["Mon"],"from":"08:00:00",
/// "to":"17:00:00"}`. A `to` of `00:00:00` on a daily or weekly range means `24:00`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimeItem {
    /// Every day from `from` to `to` (half-open, wraps past midnight when `to < from`).
    Daily {
        /// Start time of day.
        from: NaiveTime,
        /// End time of day (exclusive); `00:00` is `24:00`.
        to: NaiveTime,
    },
    /// On the selected days from `from` to `to` (half-open; a wrapping range continues into
    /// the next day).
    Weekly {
        /// The days on which the range starts.
        days: Vec<Weekday>,
        /// Start time of day.
        from: NaiveTime,
        /// End time of day (exclusive); `00:00` is `24:00`.
        to: NaiveTime,
    },
    /// From one date-time to another, both included, no repetition.
    Absolute {
        /// First instant of the range (included).
        from: NaiveDateTime,
        /// Last instant of the range (included).
        to: NaiveDateTime,
    },
}

/// Whether `t` lies in the daily window `[from, to)`, wrapping past midnight when `to <= from`.
fn in_window(t: NaiveTime, from: NaiveTime, to: NaiveTime) -> bool {
    if from < to {
        from <= t && t < to
    } else {
        t >= from || t < to
    }
}

/// The days in Monday-first order, without duplicates.
fn normalize_days(days: &[Weekday]) -> Vec<Weekday> {
    ALL_DAYS.into_iter().filter(|d| days.contains(d)).collect()
}

impl TimeItem {
    /// A daily range.
    pub fn daily(from: NaiveTime, to: NaiveTime) -> TimeItem {
        TimeItem::Daily { from, to }
    }

    /// A weekly range on `days` (stored Monday first, without duplicates).
    pub fn weekly(days: &[Weekday], from: NaiveTime, to: NaiveTime) -> TimeItem {
        TimeItem::Weekly {
            days: normalize_days(days),
            from,
            to,
        }
    }

    /// A weekly range Monday to Friday (the guide's "Weekday" preset).
    pub fn weekdays(from: NaiveTime, to: NaiveTime) -> TimeItem {
        TimeItem::weekly(&WEEKDAYS, from, to)
    }

    /// A weekly range on Saturday and Sunday (the guide's "Weekend" preset).
    pub fn weekend(from: NaiveTime, to: NaiveTime) -> TimeItem {
        TimeItem::weekly(&WEEKEND, from, to)
    }

    /// A weekly range on all days (the guide's "Everyday" preset).
    pub fn everyday(from: NaiveTime, to: NaiveTime) -> TimeItem {
        TimeItem::weekly(&ALL_DAYS, from, to)
    }

    /// An absolute range, both bounds included.
    pub fn absolute(from: NaiveDateTime, to: NaiveDateTime) -> TimeItem {
        TimeItem::Absolute { from, to }
    }

    /// Whether this is an absolute range (the `a` side of the guide's formula).
    pub fn is_absolute(&self) -> bool {
        matches!(self, TimeItem::Absolute { .. })
    }

    /// Whether the local wall time `at` falls in this range on its own.
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        let t = at.time();
        match self {
            TimeItem::Daily { from, to } => in_window(t, *from, *to),
            TimeItem::Weekly { days, from, to } => {
                let day = at.weekday();
                if from < to {
                    days.contains(&day) && *from <= t && t < *to
                } else {
                    // Wraps: the evening of a selected day, or the morning after one.
                    (days.contains(&day) && t >= *from) || (days.contains(&day.pred()) && t < *to)
                }
            }
            TimeItem::Absolute { from, to } => *from <= at && at <= *to,
        }
    }

    /// Checks that the range can ever match: a weekly range needs a day, an absolute range
    /// must not end before it starts.
    pub fn validate(&self) -> Result<(), TimeIntervalError> {
        match self {
            TimeItem::Weekly { days, .. } if days.is_empty() => {
                Err(TimeIntervalError::NoDays(self.to_string()))
            }
            TimeItem::Absolute { from, to } if to < from => {
                Err(TimeIntervalError::Reversed(self.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Parses the text form used by the CLI (and produced by `Display`):
    ///
    /// - `daily 08:00-17:00`
    /// - `weekly mon,tue,fri 08:00-12:30` (days by English name or three-letter abbreviation,
    ///   comma-separated without spaces; ranges such as `mon-fri` and the presets `weekdays`,
    ///   `weekend`, `everyday` are accepted in the list)
    /// - `weekdays 08:00-17:00`, `weekend 00:00-24:00`, `everyday 22:00-06:00`
    /// - `absolute 2026-12-24T00:00-2026-12-26T23:59` (a space may replace the `T`; a date
    ///   alone means 00:00:00 as a start and 23:59:59 as an end: `absolute 2025-01-01-2025-06-30`)
    ///
    /// Keywords are case-insensitive. Times are `HH:MM` or `HH:MM:SS`; `24:00` is allowed as
    /// an end only. For daily and weekly ranges the times may be left out, meaning the whole
    /// day.
    pub fn parse(s: &str) -> Result<TimeItem, TimeIntervalError> {
        let input = s.trim();
        let syntax = |reason: String| TimeIntervalError::Syntax {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(syntax("it is empty".to_string()));
        }
        let (kind, rest) = input
            .split_once(char::is_whitespace)
            .map_or((input, ""), |(k, r)| (k, r.trim()));
        let kind = kind.to_ascii_lowercase();

        let item = match kind.as_str() {
            "daily" => {
                let (from, to) = parse_time_range(rest).map_err(syntax)?;
                TimeItem::Daily { from, to }
            }
            "weekly" => {
                let (days, times) = rest
                    .split_once(char::is_whitespace)
                    .map_or((rest, ""), |(d, t)| (d, t.trim()));
                if days.is_empty() {
                    return Err(syntax("the days of the week are missing".to_string()));
                }
                let days = parse_days(days).map_err(syntax)?;
                let (from, to) = parse_time_range(times).map_err(syntax)?;
                TimeItem::weekly(&days, from, to)
            }
            "weekdays" | "weekday" | "weekend" | "everyday" => {
                let days = preset_days(&kind).unwrap_or(&ALL_DAYS);
                let (from, to) = parse_time_range(rest).map_err(syntax)?;
                TimeItem::weekly(days, from, to)
            }
            "absolute" => parse_absolute(rest).map_err(syntax)?,
            other => {
                return Err(syntax(format!(
                    "'{other}' is not a range type; use daily, weekly, weekdays, weekend, \
                     everyday or absolute"
                )));
            }
        };
        match item.validate() {
            Ok(()) => Ok(item),
            Err(TimeIntervalError::NoDays(_)) => Err(TimeIntervalError::NoDays(input.to_string())),
            Err(TimeIntervalError::Reversed(_)) => {
                Err(TimeIntervalError::Reversed(input.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// The days of a preset name, if `name` is one.
fn preset_days(name: &str) -> Option<&'static [Weekday]> {
    match name {
        "weekdays" | "weekday" => Some(&WEEKDAYS),
        "weekend" => Some(&WEEKEND),
        "everyday" => Some(&ALL_DAYS),
        _ => None,
    }
}

/// Parses `mon,tue,fri`, `mon-fri`, `sat-mon` (wrapping) and presets, in any mix.
fn parse_days(spec: &str) -> Result<Vec<Weekday>, String> {
    let day = |name: &str| {
        name.parse::<Weekday>()
            .map_err(|_| format!("'{name}' is not a day of the week"))
    };
    let mut days = Vec::new();
    for part in spec.split(',') {
        let part = part.trim().to_ascii_lowercase();
        if part.is_empty() {
            return Err("the list of days has an empty entry".to_string());
        }
        if let Some(preset) = preset_days(&part) {
            days.extend_from_slice(preset);
        } else if let Some((first, last)) = part.split_once('-') {
            let (first, last) = (day(first.trim())?, day(last.trim())?);
            let mut d = first;
            days.push(d);
            while d != last {
                d = d.succ();
                days.push(d);
            }
        } else {
            days.push(day(&part)?);
        }
    }
    Ok(normalize_days(&days))
}

/// Parses a clock time `H:MM`, `HH:MM` or `HH:MM:SS`. `24:00` (and `24:00:00`) is accepted
/// only when `end` is set and yields [`END_OF_DAY`].
fn parse_clock(s: &str, end: bool) -> Option<NaiveTime> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let field = |p: &str, min_len: usize| -> Option<u32> {
        if (min_len..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let h = field(parts[0], 1)?;
    let m = field(parts[1], 2)?;
    let sec = match parts.get(2) {
        Some(p) => field(p, 2)?,
        None => 0,
    };
    if h == 24 && m == 0 && sec == 0 {
        return end.then_some(END_OF_DAY);
    }
    NaiveTime::from_hms_opt(h, m, sec)
}

/// Parses `08:00-17:00` (white space ignored); an empty string is the whole day.
fn parse_time_range(s: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Ok((NaiveTime::MIN, END_OF_DAY));
    }
    let Some((from, to)) = compact.split_once('-') else {
        return Err(format!(
            "'{s}' is not a from-to time range such as 08:00-17:00"
        ));
    };
    let from = parse_clock(from, false).ok_or_else(|| {
        format!("'{from}' is not a start time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)")
    })?;
    let to = parse_clock(to, true).ok_or_else(|| {
        format!("'{to}' is not an end time of day (HH:MM or HH:MM:SS, up to 24:00)")
    })?;
    Ok((from, to))
}

/// Parses one end of an absolute range: `YYYY-MM-DDTHH:MM[:SS]`, a space instead of `T`, or
/// a date alone (start or end of that day depending on `end`).
fn parse_datetime(s: &str, end: bool) -> Option<NaiveDateTime> {
    let s = s.trim();
    match s.split_once(['T', 't', ' ']) {
        Some((date, time)) => {
            let date = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
            let time = parse_clock(time.trim(), false)?;
            Some(date.and_time(time))
        }
        None => {
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            let time = if end {
                NaiveTime::from_hms_opt(23, 59, 59)?
            } else {
                NaiveTime::MIN
            };
            Some(date.and_time(time))
        }
    }
}

/// Parses `FROM-TO` of an absolute range, trying each `-` as the separator.
fn parse_absolute(s: &str) -> Result<TimeItem, String> {
    for (i, _) in s.match_indices('-') {
        if let (Some(from), Some(to)) = (
            parse_datetime(&s[..i], false),
            parse_datetime(&s[i + 1..], true),
        ) {
            return Ok(TimeItem::Absolute { from, to });
        }
    }
    Err(format!(
        "'{s}' is not a from-to pair of dates and times such as 2026-12-24T00:00-2026-12-26T23:59"
    ))
}

/// Writes a time of day as `HH:MM`, or `HH:MM:SS` when it has seconds; `END_OF_DAY` as an end
/// is written `24:00`.
fn write_clock(f: &mut fmt::Formatter<'_>, t: NaiveTime, end: bool) -> fmt::Result {
    if end && t == END_OF_DAY {
        return f.write_str("24:00");
    }
    if t.second() == 0 {
        write!(f, "{:02}:{:02}", t.hour(), t.minute())
    } else {
        write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

fn write_time_range(f: &mut fmt::Formatter<'_>, from: NaiveTime, to: NaiveTime) -> fmt::Result {
    write_clock(f, from, false)?;
    f.write_str("-")?;
    write_clock(f, to, true)
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

impl fmt::Display for TimeItem {
    /// The form accepted by [`TimeItem::parse`]. Weekly ranges on exactly the preset days are
    /// written `weekdays`, `weekend` or `everyday`; absolute ranges covering whole days are
    /// written as dates only. Fractions of a second are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeItem::Daily { from, to } => {
                f.write_str("daily ")?;
                write_time_range(f, *from, *to)
            }
            TimeItem::Weekly { days, from, to } => {
                let days = normalize_days(days);
                if days == WEEKDAYS {
                    f.write_str("weekdays ")?;
                } else if days == WEEKEND {
                    f.write_str("weekend ")?;
                } else if days == ALL_DAYS {
                    f.write_str("everyday ")?;
                } else if days.is_empty() {
                    f.write_str("weekly none ")?;
                } else {
                    let names: Vec<&str> = days.into_iter().map(day_name).collect();
                    write!(f, "weekly {} ", names.join(","))?;
                }
                write_time_range(f, *from, *to)
            }
            TimeItem::Absolute { from, to } => {
                let whole_days = from.time() == NaiveTime::MIN
                    && NaiveTime::from_hms_opt(23, 59, 59) == Some(to.time());
                if whole_days {
                    write!(f, "absolute {}-{}", from.date(), to.date())
                } else {
                    write!(f, "absolute {}T", from.date())?;
                    write_clock(f, from.time(), false)?;
                    write!(f, "-{}T", to.date())?;
                    write_clock(f, to.time(), false)
                }
            }
        }
    }
}

impl FromStr for TimeItem {
    type Err = TimeIntervalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeItem::parse(s)
    }
}

/// A named time interval: a set of sub-ranges (guide §19.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeInterval {
    /// The name (identification) of the interval.
    pub name: String,
    /// The sub-ranges.
    #[serde(default)]
    pub items: Vec<TimeItem>,
}

impl TimeInterval {
    /// An interval with the given name and ranges.
    pub fn new(name: impl Into<String>, items: Vec<TimeItem>) -> TimeInterval {
        TimeInterval {
            name: name.into(),
            items,
        }
    }

    /// Whether the interval is valid at the local wall time `at`.
    ///
    /// Guide §19.2: `(d1 | d2 | w1 | w2) & (a1 | a2)`. With no daily/weekly range the first
    /// factor is dropped, with no absolute range the second; an empty interval matches nothing.
    pub fn contains(&self, at: NaiveDateTime) -> bool {
        if self.items.is_empty() {
            return false;
        }
        let (absolute, recurring): (Vec<&TimeItem>, Vec<&TimeItem>) =
            self.items.iter().partition(|i| i.is_absolute());
        let recurring_ok = recurring.is_empty() || recurring.iter().any(|i| i.matches(at));
        let absolute_ok = absolute.is_empty() || absolute.iter().any(|i| i.matches(at));
        recurring_ok && absolute_ok
    }

    /// Checks the name (non-empty) and every range ([`TimeItem::validate`]).
    pub fn validate(&self) -> Result<(), TimeIntervalError> {
        if self.name.trim().is_empty() {
            return Err(TimeIntervalError::EmptyName);
        }
        self.items.iter().try_for_each(TimeItem::validate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    /// A date-time from "YYYY-MM-DD HH:MM[:SS]".
    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
            .unwrap()
    }

    fn item(s: &str) -> TimeItem {
        TimeItem::parse(s).unwrap()
    }

    fn interval(items: &[&str]) -> TimeInterval {
        TimeInterval::new("test", items.iter().map(|s| item(s)).collect())
    }

    // 2026-03-02 is a Monday.
    const MON: &str = "2026-03-02";
    const FRI: &str = "2026-03-06";
    const SAT: &str = "2026-03-07";
    const SUN: &str = "2026-03-08";

    fn at(day: &str, time: &str) -> NaiveDateTime {
        dt(&format!("{day} {time}"))
    }

    #[test]
    fn test_dates_are_the_expected_weekdays() {
        assert_eq!(at(MON, "00:00").weekday(), Weekday::Mon);
        assert_eq!(at(FRI, "00:00").weekday(), Weekday::Fri);
        assert_eq!(at(SAT, "00:00").weekday(), Weekday::Sat);
        assert_eq!(at(SUN, "00:00").weekday(), Weekday::Sun);
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            item("daily 08:00-17:00"),
            TimeItem::daily(t(8, 0), t(17, 0))
        );
        assert_eq!(
            item("weekly mon,tue,fri 08:00-12:30"),
            TimeItem::Weekly {
                days: vec![Weekday::Mon, Weekday::Tue, Weekday::Fri],
                from: t(8, 0),
                to: t(12, 30)
            }
        );
        assert_eq!(
            item("weekdays 08:00-17:00"),
            TimeItem::weekdays(t(8, 0), t(17, 0))
        );
        assert_eq!(
            item("weekend 00:00-24:00"),
            TimeItem::weekend(t(0, 0), END_OF_DAY)
        );
        assert_eq!(
            item("everyday 22:00-06:00"),
            TimeItem::everyday(t(22, 0), t(6, 0))
        );
        assert_eq!(
            item("absolute 2026-12-24T00:00-2026-12-26T23:59"),
            TimeItem::absolute(dt("2026-12-24 00:00"), dt("2026-12-26 23:59"))
        );
    }

    #[test]
    fn parse_variants() {
        // Case, white space, seconds, one-digit hours.
        assert_eq!(
            item("  DAILY   8:00 - 17:00:30 "),
            TimeItem::daily(t(8, 0), dt("2000-01-01 17:00:30").time())
        );
        // Day names, ranges, presets and duplicates in the list; stored Monday first.
        assert_eq!(
            item("weekly fri,Monday,mon 09:00-10:00"),
            TimeItem::weekly(&[Weekday::Mon, Weekday::Fri], t(9, 0), t(10, 0))
        );
        assert_eq!(
            item("weekly mon-fri 08:00-17:00"),
            item("weekdays 08:00-17:00")
        );
        assert_eq!(
            item("weekly sat-sun 08:00-17:00"),
            item("weekend 08:00-17:00")
        );
        assert_eq!(
            item("weekly fri-mon 08:00-17:00"),
            TimeItem::weekly(
                &[Weekday::Fri, Weekday::Sat, Weekday::Sun, Weekday::Mon],
                t(8, 0),
                t(17, 0)
            )
        );
        assert_eq!(
            item("weekly weekend,wed 08:00-17:00"),
            TimeItem::weekly(
                &[Weekday::Wed, Weekday::Sat, Weekday::Sun],
                t(8, 0),
                t(17, 0)
            )
        );
        assert_eq!(item("weekday 08:00-17:00"), item("weekdays 08:00-17:00"));
        // Times left out: the whole day.
        assert_eq!(item("daily"), TimeItem::daily(t(0, 0), END_OF_DAY));
        assert_eq!(item("weekend"), TimeItem::weekend(t(0, 0), END_OF_DAY));
        assert_eq!(
            item("weekly tue"),
            TimeItem::weekly(&[Weekday::Tue], t(0, 0), END_OF_DAY)
        );
        // 24:00 with seconds; 00:00 as an end is the same as 24:00.
        assert_eq!(item("daily 08:00-24:00:00"), item("daily 08:00-00:00"));
        // Absolute: space separator, seconds, date only.
        assert_eq!(
            item("absolute 2026-12-24 00:00 - 2026-12-26 23:59:30"),
            TimeItem::absolute(dt("2026-12-24 00:00"), dt("2026-12-26 23:59:30"))
        );
        assert_eq!(
            item("absolute 2025-01-01-2025-06-30"),
            TimeItem::absolute(dt("2025-01-01 00:00"), dt("2025-06-30 23:59:59"))
        );
        assert_eq!(
            item("absolute 2026-12-24T10:00-2026-12-24T10:00"),
            TimeItem::absolute(dt("2026-12-24 10:00"), dt("2026-12-24 10:00"))
        );
    }

    fn syntax_reason(s: &str) -> String {
        match TimeItem::parse(s) {
            Err(TimeIntervalError::Syntax { input, reason }) => {
                assert_eq!(input, s.trim());
                reason
            }
            other => panic!("{s}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors() {
        assert!(syntax_reason("").contains("empty"));
        assert!(syntax_reason("hourly 08:00-09:00").contains("'hourly' is not a range type"));
        assert!(syntax_reason("daily 08:00").contains("from-to"));
        assert!(syntax_reason("daily 8-17").contains("not a start time"));
        assert!(syntax_reason("daily 08:00-25:00").contains("not an end time"));
        assert!(syntax_reason("daily 08:60-09:00").contains("not a start time"));
        assert!(syntax_reason("daily 24:00-06:00").contains("'24:00' is not a start time"));
        assert!(syntax_reason("daily 08:00-17:00 extra").contains("not an end time"));
        assert!(syntax_reason("daily 8:0-9:00").contains("not a start time"));
        assert!(syntax_reason("weekly 08:00-17:00").contains("'08:00' is not a day"));
        assert!(syntax_reason("weekly").contains("days of the week are missing"));
        assert!(syntax_reason("weekly funday 08:00-17:00").contains("'funday' is not a day"));
        assert!(syntax_reason("weekly mon,,tue 08:00-17:00").contains("empty entry"));
        assert!(syntax_reason("absolute 2026-12-24").contains("from-to pair"));
        assert!(
            syntax_reason("absolute 2026-02-30T00:00-2026-03-01T00:00").contains("from-to pair")
        );
        assert!(
            syntax_reason("absolute 2026-12-24T24:00-2026-12-25T00:00").contains("from-to pair")
        );
        assert!(syntax_reason("absolute").contains("from-to pair"));

        let err = TimeItem::parse("absolute 2026-12-26T00:00-2026-12-24T00:00").unwrap_err();
        assert_eq!(
            err,
            TimeIntervalError::Reversed("absolute 2026-12-26T00:00-2026-12-24T00:00".into())
        );
        assert_eq!(
            err.to_string(),
            "the absolute time range 'absolute 2026-12-26T00:00-2026-12-24T00:00' ends before it starts"
        );
        let err = TimeItem::parse("hourly 08:00-09:00").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'hourly 08:00-09:00' is not a valid time range: 'hourly' is not a range type; \
             use daily, weekly, weekdays, weekend, everyday or absolute"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "daily 08:00-17:00",
            "daily 22:00-06:00",
            "daily 00:00-24:00",
            "daily 08:00:15-17:00:45",
            "weekly mon,tue,fri 08:00-12:30",
            "weekly sun 10:00-11:00",
            "weekdays 08:00-17:00",
            "weekend 00:00-24:00",
            "everyday 22:00-06:00",
            "absolute 2026-12-24T00:00-2026-12-26T23:59",
            "absolute 2026-12-24T08:30:10-2026-12-26T23:59:59",
            "absolute 2025-01-01-2025-06-30",
        ] {
            let i = item(s);
            assert_eq!(i.to_string(), s);
            assert_eq!(item(&i.to_string()), i);
        }
        // Canonical forms.
        assert_eq!(
            item("weekly mon-fri 8:00-17:00").to_string(),
            "weekdays 08:00-17:00"
        );
        assert_eq!(
            item("weekly mon,tue,wed,thu,fri,sat,sun 08:00-17:00").to_string(),
            "everyday 08:00-17:00"
        );
        assert_eq!(item("daily 22:00-00:00").to_string(), "daily 22:00-24:00");
        assert_eq!(item("daily").to_string(), "daily 00:00-24:00");
        // Not normalised by hand: still printed Monday first.
        let w = TimeItem::Weekly {
            days: vec![Weekday::Fri, Weekday::Mon],
            from: t(8, 0),
            to: t(9, 0),
        };
        assert_eq!(w.to_string(), "weekly mon,fri 08:00-09:00");
    }

    #[test]
    fn serde_is_tagged() {
        let w = item("weekly mon,fri 08:00-24:00");
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"type":"weekly","days":["Mon","Fri"],"from":"08:00:00","to":"00:00:00"}"#
        );
        assert_eq!(serde_json::from_str::<TimeItem>(&json).unwrap(), w);

        let ti = interval(&[
            "daily 08:00-17:00",
            "absolute 2026-12-24T00:00-2026-12-26T23:59",
        ]);
        let json = serde_json::to_string(&ti).unwrap();
        assert!(json.contains(r#""type":"daily""#) && json.contains(r#""type":"absolute""#));
        assert_eq!(serde_json::from_str::<TimeInterval>(&json).unwrap(), ti);
    }

    #[test]
    fn daily_half_open() {
        let d = item("daily 08:00-17:00");
        assert!(!d.matches(at(MON, "07:59:59")));
        assert!(d.matches(at(MON, "08:00")));
        assert!(d.matches(at(SUN, "12:00")));
        assert!(d.matches(at(MON, "16:59:59")));
        assert!(!d.matches(at(MON, "17:00")));
    }

    #[test]
    fn daily_wraps_past_midnight() {
        let d = item("daily 22:00-06:00");
        assert!(d.matches(at(MON, "22:00")));
        assert!(d.matches(at(MON, "23:59:59")));
        assert!(d.matches(at(MON, "00:00")));
        assert!(d.matches(at(MON, "05:59:59")));
        assert!(!d.matches(at(MON, "06:00")));
        assert!(!d.matches(at(MON, "12:00")));
        assert!(!d.matches(at(MON, "21:59:59")));
    }

    #[test]
    fn end_of_day_and_full_day() {
        let d = item("daily 08:00-24:00");
        assert!(d.matches(at(MON, "23:59:59")));
        assert!(!d.matches(at(MON, "00:00")));
        assert!(!d.matches(at(MON, "07:59")));
        let whole = item("daily 00:00-24:00");
        for time in ["00:00", "12:00", "23:59:59"] {
            assert!(whole.matches(at(MON, time)), "{time}");
        }
        // from == to is 24 hours starting at `from`.
        let same = item("daily 08:00-08:00");
        assert!(same.matches(at(MON, "07:59")) && same.matches(at(MON, "08:00")));
    }

    #[test]
    fn weekly_on_given_weekdays() {
        let w = item("weekly mon,tue,fri 08:00-12:30");
        assert!(w.matches(at(MON, "08:00")));
        assert!(w.matches(at(FRI, "12:29:59")));
        assert!(!w.matches(at(FRI, "12:30")));
        assert!(!w.matches(at("2026-03-04", "09:00")), "Wednesday");
        assert!(!w.matches(at(SAT, "09:00")));

        let wd = item("weekdays 08:00-17:00");
        for day in [MON, "2026-03-03", "2026-03-04", "2026-03-05", FRI] {
            assert!(wd.matches(at(day, "12:00")), "{day}");
        }
        assert!(!wd.matches(at(SAT, "12:00")));
        assert!(!wd.matches(at(SUN, "12:00")));

        let we = item("weekend 00:00-24:00");
        assert!(we.matches(at(SAT, "00:00")));
        assert!(we.matches(at(SUN, "23:59:59")));
        assert!(!we.matches(at(MON, "00:00")), "ends at midnight Sunday");
        assert!(!we.matches(at(FRI, "23:59:59")));
    }

    #[test]
    fn weekly_wrap_continues_into_the_next_day() {
        let w = item("weekly fri 22:00-06:00");
        assert!(
            !w.matches(at(FRI, "05:00")),
            "Friday morning belongs to Thursday"
        );
        assert!(w.matches(at(FRI, "22:00")));
        assert!(w.matches(at(SAT, "05:59:59")));
        assert!(!w.matches(at(SAT, "06:00")));
        assert!(!w.matches(at(SAT, "22:00")));
        // Sunday night into Monday morning.
        let s = item("weekly sun 23:00-01:00");
        assert!(s.matches(at(SUN, "23:30")));
        assert!(s.matches(at("2026-03-09", "00:30")), "Monday");
        assert!(!s.matches(at(MON, "23:30")));
    }

    #[test]
    fn absolute_bounds_inclusive() {
        let a = item("absolute 2026-12-24T00:00-2026-12-26T23:59");
        assert!(!a.matches(dt("2026-12-23 23:59:59")));
        assert!(a.matches(dt("2026-12-24 00:00")));
        assert!(a.matches(dt("2026-12-25 12:00")));
        assert!(a.matches(dt("2026-12-26 23:59")));
        assert!(!a.matches(dt("2026-12-26 23:59:01")));
        let days = item("absolute 2025-01-01-2025-06-30");
        assert!(days.matches(dt("2025-06-30 23:59:59")));
        assert!(!days.matches(dt("2025-07-01 00:00")));
    }

    #[test]
    fn empty_interval_matches_nothing() {
        let i = TimeInterval::new("empty", Vec::new());
        assert!(!i.contains(at(MON, "12:00")));
    }

    #[test]
    fn union_of_recurring_ranges() {
        let i = interval(&["daily 06:00-07:00", "weekend 10:00-11:00"]);
        assert!(i.contains(at(MON, "06:30")));
        assert!(i.contains(at(SAT, "10:30")));
        assert!(!i.contains(at(MON, "10:30")));
    }

    #[test]
    fn union_of_absolute_ranges_only() {
        let i = interval(&[
            "absolute 2026-01-01T00:00-2026-01-31T23:59",
            "absolute 2026-03-01T00:00-2026-03-31T23:59",
        ]);
        assert!(i.contains(dt("2026-01-15 03:00")));
        assert!(i.contains(dt("2026-03-15 03:00")));
        assert!(!i.contains(dt("2026-02-15 03:00")));
    }

    #[test]
    // requirements-2 acceptance 14 (last part): weekly Mon–Fri 08–17 AND an absolute range.
    fn scenario_time_interval_weekly_and_absolute_both_must_hold() {
        // Requirements acceptance scenario 14: weekly Mon–Fri 08–17 and absolute
        // 2025-01-01..2025-06-30 is valid only where both hold (guide §19.2 formula).
        let i = interval(&["weekdays 08:00-17:00", "absolute 2025-01-01-2025-06-30"]);
        assert!(
            i.contains(dt("2025-03-03 09:00")),
            "Monday inside the dates"
        );
        assert!(!i.contains(dt("2025-03-03 18:00")), "outside the hours");
        assert!(!i.contains(dt("2025-03-08 09:00")), "Saturday");
        assert!(
            !i.contains(dt("2025-07-07 09:00")),
            "Monday after the dates"
        );

        // (d1 | w1) & (a1 | a2).
        let i = interval(&[
            "daily 06:00-07:00",
            "weekly sat 10:00-11:00",
            "absolute 2026-03-02-2026-03-02",
            "absolute 2026-03-07-2026-03-07",
        ]);
        assert!(i.contains(at(MON, "06:30")));
        assert!(i.contains(at(SAT, "06:30")));
        assert!(i.contains(at(SAT, "10:30")));
        assert!(!i.contains(at(MON, "10:30")), "weekly item is for Saturday");
        assert!(
            !i.contains(at(FRI, "06:30")),
            "Friday is outside the absolute ranges"
        );
    }

    #[test]
    fn validation() {
        assert!(interval(&["daily 08:00-17:00"]).validate().is_ok());
        assert_eq!(
            TimeInterval::new(" ", Vec::new()).validate(),
            Err(TimeIntervalError::EmptyName)
        );
        let no_days = TimeItem::Weekly {
            days: Vec::new(),
            from: t(8, 0),
            to: t(9, 0),
        };
        assert_eq!(
            no_days.validate(),
            Err(TimeIntervalError::NoDays("weekly none 08:00-09:00".into()))
        );
        assert!(!no_days.matches(at(MON, "08:30")));
        let reversed = TimeItem::absolute(dt("2026-01-02 00:00"), dt("2026-01-01 00:00"));
        assert!(matches!(
            reversed.validate(),
            Err(TimeIntervalError::Reversed(_))
        ));
        assert!(!reversed.matches(dt("2026-01-01 12:00")));
        let i = TimeInterval::new("x", vec![item("daily"), reversed]);
        assert!(matches!(i.validate(), Err(TimeIntervalError::Reversed(_))));
        assert_eq!(
            TimeIntervalError::NoDays("weekly none 08:00-09:00".into()).to_string(),
            "the weekly time range 'weekly none 08:00-09:00' has no days selected"
        );
    }
}
