//! Command handlers, one file per command family (STYLE §1).

mod acl;
mod append;
mod auth;
mod copy;
mod fetch;
mod idle;
mod list;
mod mailbox;
mod search;
mod select;
mod sort;
mod store;

use crate::codec::{Date, DateTime};

/// See [`crate::server::fuzz_message`].
pub(super) fn fuzz_message(raw: &[u8], attrs: &[crate::codec::FetchAttribute]) -> Vec<u8> {
    search::parse_for_fuzzing(raw);
    sort::parse_for_fuzzing(raw);
    fetch::response_for_fuzzing(raw, attrs)
}

/// An epoch time as an IMAP date-time in UTC (RFC 9051 §9 `date-time`).
pub(crate) fn imap_datetime(secs: i64) -> DateTime {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let date = Date::new(
        u16::try_from(t.year()).unwrap_or(1970),
        t.month() as u8,
        t.day() as u8,
    )
    .unwrap_or(Date {
        year: 1970,
        month: 1,
        day: 1,
    });
    DateTime {
        date,
        hour: t.hour() as u8,
        minute: t.minute() as u8,
        second: t.second() as u8,
        zone_minutes: 0,
    }
}

/// An IMAP date-time as epoch seconds.
pub(crate) fn epoch_of(d: &DateTime) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::from(d.date.year),
        u32::from(d.date.month),
        u32::from(d.date.day),
    )?;
    let t = date.and_hms_opt(
        u32::from(d.hour),
        u32::from(d.minute),
        u32::from(d.second.min(59)),
    )?;
    Some(t.and_utc().timestamp() - i64::from(d.zone_minutes) * 60)
}

/// The calendar date of an epoch time, in UTC (SEARCH BEFORE/ON/SINCE, RFC 9051 §6.4.4).
pub(crate) fn date_of(secs: i64) -> Date {
    imap_datetime(secs).date
}
