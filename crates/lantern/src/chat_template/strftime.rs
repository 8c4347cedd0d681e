//! `strftime_now(format)`: a moment formatted as Python's `datetime.strftime` does in the C
//! locale, for templates that write today's date into the prompt (Llama 3.x: `"%d %b %Y"`,
//! others `"%Y-%m-%d"` or `"%B %d, %Y"`).
//!
//! The moment is a UTC calendar date and time; the time zone is the host's to apply (shift
//! the [`SystemTime`] it passes), since finding the local one would mean reading `TZ`.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Error, ErrorKind};

const DAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A moment split into calendar fields (UTC, proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    microsecond: u32,
    /// 0 = Sunday.
    weekday: u32,
    /// 1..=366
    day_of_year: u32,
}

impl DateTime {
    /// The calendar fields of `time`, before or after 1970.
    pub(super) fn from_system_time(time: SystemTime) -> Self {
        let (secs, micros) = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_micros()),
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_micros() {
                    0 => (secs, 0),
                    m => (secs - 1, 1_000_000 - m),
                }
            }
        };
        let days = secs.div_euclid(86_400);
        let of_day = u32::try_from(secs.rem_euclid(86_400)).expect("below 86,400");
        let (year, month, day) = civil_from_days(days);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let before: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = before[month as usize - 1] + day + u32::from(leap && month > 2);
        Self {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            microsecond: micros,
            // 1 January 1970 was a Thursday.
            weekday: u32::try_from((days + 4).rem_euclid(7)).expect("below 7"),
            day_of_year,
        }
    }

    /// `format` with its `%` directives replaced, as Python's `strftime` on glibc does,
    /// including the `-` flag that drops the padding (`%-d`).
    ///
    /// # Errors
    /// A directive it does not know, rather than text the template did not ask for.
    pub(super) fn format(&self, format: &str) -> Result<String, Error> {
        let mut out = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let mut directive = chars.next();
            let pad = directive != Some('-');
            if !pad {
                directive = chars.next();
            }
            let Some(directive) = directive else {
                return Err(unknown("%"));
            };
            self.directive(&mut out, directive, pad)?;
        }
        Ok(out)
    }

    fn directive(&self, out: &mut String, directive: char, pad: bool) -> Result<(), Error> {
        let number = |out: &mut String, n: i64, width: usize| {
            let width = if pad { width } else { 0 };
            write!(out, "{n:0width$}").expect("writing to a String cannot fail");
        };
        let weekday = DAYS[self.weekday as usize];
        let month = MONTHS[self.month as usize - 1];
        let hour12 = match self.hour % 12 {
            0 => 12,
            h => h,
        };
        match directive {
            'a' => out.push_str(&weekday[..3]),
            'A' => out.push_str(weekday),
            'b' | 'h' => out.push_str(&month[..3]),
            'B' => out.push_str(month),
            'd' => number(out, self.day.into(), 2),
            'e' if pad => write!(out, "{:2}", self.day).expect("writing to a String cannot fail"),
            'e' => number(out, self.day.into(), 0),
            'm' => number(out, self.month.into(), 2),
            'y' => number(out, self.year.rem_euclid(100), 2),
            'Y' => number(out, self.year, 0),
            'H' => number(out, self.hour.into(), 2),
            'I' => number(out, hour12.into(), 2),
            'M' => number(out, self.minute.into(), 2),
            'S' => number(out, self.second.into(), 2),
            'f' => number(out, self.microsecond.into(), 6),
            'p' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
            'j' => number(out, self.day_of_year.into(), 3),
            'u' => number(out, if self.weekday == 0 { 7 } else { self.weekday.into() }, 0),
            'w' => number(out, self.weekday.into(), 0),
            // A naive moment has no zone: Python writes nothing for these.
            'z' | 'Z' => {}
            'D' | 'x' => self.directive_list(out, "%m/%d/%y")?,
            'F' => self.directive_list(out, "%Y-%m-%d")?,
            'T' | 'X' => self.directive_list(out, "%H:%M:%S")?,
            'R' => self.directive_list(out, "%H:%M")?,
            'c' => self.directive_list(out, "%a %b %e %H:%M:%S %Y")?,
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '%' => out.push('%'),
            other => return Err(unknown(&format!("%{other}"))),
        }
        Ok(())
    }

    fn directive_list(&self, out: &mut String, format: &str) -> Result<(), Error> {
        out.push_str(&self.format(format)?);
        Ok(())
    }
}

/// Year, month and day of the `days`-th day after 1 January 1970 (negative: before), by
/// Howard Hinnant's `civil_from_days`, which counts in 400-year eras starting in March.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("1..=31");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1..=12");
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn unknown(directive: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("strftime_now does not know the directive {directive}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: i64) -> DateTime {
        let time = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        DateTime::from_system_time(time)
    }

    #[test]
    fn formats_as_python_does() {
        // 2024-07-26 13:05:09 UTC, a Friday, day 208 of a leap year.
        let t = at(1_721_999_109);
        assert_eq!(t.format("%Y-%m-%d %H:%M:%S").unwrap(), "2024-07-26 13:05:09");
        assert_eq!(t.format("%d %b %Y").unwrap(), "26 Jul 2024");
        assert_eq!(t.format("%B %d, %Y").unwrap(), "July 26, 2024");
        assert_eq!(t.format("%a %A %j %u %w %I%p %y %%").unwrap(), "Fri Friday 208 5 5 01PM 24 %");
        assert_eq!(t.format("%c|%x|%-m/%-d").unwrap(), "Fri Jul 26 13:05:09 2024|07/26/24|7/26");
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(at(0).format("%F %T %A").unwrap(), "1970-01-01 00:00:00 Thursday");
        assert_eq!(at(-1).format("%F %T %A %j").unwrap(), "1969-12-31 23:59:59 Wednesday 365");
        // 29 February 2000 (a leap century) and 1 March 2100 (not one).
        assert_eq!(at(951_782_400).format("%F %j").unwrap(), "2000-02-29 060");
        assert_eq!(at(4_107_542_400).format("%F %j %a").unwrap(), "2100-03-01 060 Mon");
    }

    #[test]
    fn unknown_directives_are_errors() {
        assert!(at(0).format("%Q").is_err());
        assert!(at(0).format("100%").is_err());
    }
}
