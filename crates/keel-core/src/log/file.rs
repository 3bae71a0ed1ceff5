//! One log file with rotation by size and by time (guide §25.1 "File Logging").
//!
//! Rotation renames `mail.log.(N-1)` → `mail.log.N` … `mail.log` → `mail.log.1`, deleting
//! what falls beyond the configured count, then starts a new `mail.log`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDateTime, Timelike};

use super::format::parse_line_time;
use super::settings::{LogKindSettings, Rotation};

/// A log file and what rotation needs to know about it. Callers serialise access (one
/// mutex per file), so a whole line is written by one `write` call without interleaving.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the live file.
    size: u64,
    /// Local time of the live file's first entry; `None` while it is empty.
    start: Option<NaiveDateTime>,
    /// An error was reported to stderr and no write has succeeded since.
    failing: bool,
}

impl LogFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            size: 0,
            start: None,
            failing: false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one complete line (with its newline), rotating first when the settings say
    /// so. Never panics; an I/O error is reported to stderr once, until a write succeeds.
    pub(crate) fn append(&mut self, line: &[u8], now: NaiveDateTime, s: &LogKindSettings) {
        let result = self.try_append(line, now, s);
        match result {
            Ok(()) => self.failing = false,
            Err(e) => self.report(&e),
        }
    }

    fn try_append(
        &mut self,
        line: &[u8],
        now: NaiveDateTime,
        s: &LogKindSettings,
    ) -> io::Result<()> {
        self.ensure_open()?;
        let mut rotate_err = None;
        if self.needs_rotation(line.len() as u64, now, s) {
            let rotated = self.rotate(s.keep);
            self.ensure_open()?;
            if let Err(e) = rotated {
                // Keep logging into whatever file is there; a time rotation is not retried
                // before the next period (a size rotation is, at the next write).
                self.start = Some(now);
                rotate_err = Some(e);
            }
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))?;
        if let Err(e) = file.write_all(line) {
            // The handle may be stale (file system gone, disk full); reopen next time.
            self.file = None;
            return Err(e);
        }
        self.size += line.len() as u64;
        if self.start.is_none() {
            self.start = Some(now);
        }
        rotate_err.map_or(Ok(()), Err)
    }

    fn needs_rotation(&self, incoming: u64, now: NaiveDateTime, s: &LogKindSettings) -> bool {
        if self.size == 0 {
            return false;
        }
        // guide §25.1 "Rotate when file exceeds size": never let the live file grow past
        // the limit (a single longer line still gets a file of its own).
        if s.max_size > 0 && self.size + incoming > s.max_size {
            return true;
        }
        // guide §25.1 "Rotate regularly": a new period has begun since the first entry.
        match (self.start, period(s.rotation, now)) {
            (Some(start), Some(p)) => period(s.rotation, start) != Some(p),
            _ => false,
        }
    }

    fn ensure_open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        // The file's start is the time of its first entry, so a log left from an earlier
        // run is rotated on schedule (and the clock tests use is honoured).
        self.start = if self.size > 0 {
            first_entry_time(&self.path)
        } else {
            None
        };
        self.file = Some(file);
        Ok(())
    }

    /// guide §25.1 "Keep at most … log file(s). The oldest file will be cleared after each
    /// rotation."
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        self.file = None;
        self.size = 0;
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        // Files beyond the count, including those left by a larger earlier setting.
        let mut n = keep.max(1);
        while n < keep.saturating_add(10_000) {
            match fs::remove_file(numbered(n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && n > keep => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            n += 1;
        }
        if keep == 0 {
            return ignore_missing(fs::remove_file(&self.path));
        }
        for n in (1..keep).rev() {
            ignore_missing(fs::rename(numbered(n), numbered(n + 1)))?;
        }
        ignore_missing(fs::rename(&self.path, numbered(1)))
    }

    /// guide §25.1 "Clear log": empties the live file.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.set_len(0)?,
            None => match OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        self.size = 0;
        self.start = None;
        Ok(())
    }

    fn report(&mut self, e: &io::Error) {
        if !self.failing {
            self.failing = true;
            // Logging must not take the server down: stderr, once, and never panic.
            let _ = writeln!(
                io::stderr(),
                "keel: cannot write log {}: {e}",
                self.path.display()
            );
        }
    }
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn first_entry_time(path: &Path) -> Option<NaiveDateTime> {
    let mut buf = [0u8; 32];
    let mut f = File::open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    parse_line_time(std::str::from_utf8(&buf[..n]).ok()?)
}

/// A number that changes exactly when a rotation period boundary is crossed (local time).
pub(crate) fn period(rotation: Rotation, t: NaiveDateTime) -> Option<i64> {
    let day = i64::from(t.date().num_days_from_ce());
    match rotation {
        Rotation::Never => None,
        Rotation::Hourly => Some(day * 24 + i64::from(t.hour())),
        Rotation::Daily => Some(day),
        // ISO weeks start on Monday; 0001-01-01 is a Monday, so this counts weeks.
        Rotation::Weekly => Some((day - 1).div_euclid(7)),
        Rotation::Monthly => Some(i64::from(t.year()) * 12 + i64::from(t.month0())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("valid time")
    }

    #[test]
    fn period_boundaries() {
        let p = |r, t| period(r, t);
        assert_eq!(p(Rotation::Never, at(2026, 1, 1, 0, 0)), None);
        assert_eq!(
            p(Rotation::Hourly, at(2026, 3, 1, 10, 0)),
            p(Rotation::Hourly, at(2026, 3, 1, 10, 59))
        );
        assert_ne!(
            p(Rotation::Hourly, at(2026, 3, 1, 10, 59)),
            p(Rotation::Hourly, at(2026, 3, 1, 11, 0))
        );
        assert_ne!(
            p(Rotation::Hourly, at(2026, 3, 1, 10, 0)),
            p(Rotation::Hourly, at(2026, 3, 2, 10, 0))
        );
        assert_eq!(
            p(Rotation::Daily, at(2026, 3, 1, 0, 0)),
            p(Rotation::Daily, at(2026, 3, 1, 23, 59))
        );
        assert_ne!(
            p(Rotation::Daily, at(2026, 3, 1, 23, 59)),
            p(Rotation::Daily, at(2026, 3, 2, 0, 0))
        );
        // 2026-11-29 is a Sunday, 2026-11-30 a Monday.
        assert_eq!(
            p(Rotation::Weekly, at(2026, 11, 23, 0, 0)),
            p(Rotation::Weekly, at(2026, 11, 29, 23, 59))
        );
        assert_ne!(
            p(Rotation::Weekly, at(2026, 11, 29, 23, 59)),
            p(Rotation::Weekly, at(2026, 11, 30, 0, 0))
        );
        assert_eq!(
            p(Rotation::Monthly, at(2026, 11, 1, 0, 0)),
            p(Rotation::Monthly, at(2026, 11, 30, 23, 59))
        );
        assert_ne!(
            p(Rotation::Monthly, at(2026, 12, 31, 23, 59)),
            p(Rotation::Monthly, at(2027, 1, 1, 0, 0))
        );
    }
}
