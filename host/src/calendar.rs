//! The working-time calendar: weekends, public holidays and make-up working days (调休),
//! in the city's time zone, and deadline arithmetic in working days and minutes.
//!
//! Dates are civil dates in a fixed UTC offset (China has no daylight saving). The data
//! comes from a file an operator updates each year (`data/calendar.json` is bundled).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::model::Millis;

const DAY_MS: i64 = 86_400_000;

/// A civil date as days since 1970-01-01.
pub type Day = i64;

/// Why a calendar file was refused.
#[derive(Debug, thiserror::Error)]
#[error("calendar data is not valid: {0}")]
pub struct CalendarError(String);

#[derive(Deserialize)]
struct File {
    utc_offset_minutes: i32,
    years: BTreeMap<i32, Year>,
}

#[derive(Deserialize)]
struct Year {
    #[serde(default)]
    checked_against_official_notice: bool,
    holidays: Vec<String>,
    makeup_workdays: Vec<String>,
}

/// The working-time calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    offset_ms: i64,
    holidays: BTreeSet<Day>,
    makeup: BTreeSet<Day>,
    years: BTreeSet<i32>,
    unchecked: Vec<i32>,
}

/// The bundled calendar data.
pub const BUNDLED: &str = include_str!("../../data/calendar.json");

impl Calendar {
    /// Parses calendar data.
    pub fn from_json(json: &str) -> Result<Self, CalendarError> {
        let f: File = serde_json::from_str(json).map_err(|e| CalendarError(e.to_string()))?;
        let mut cal = Calendar {
            offset_ms: f.utc_offset_minutes as i64 * 60_000,
            holidays: BTreeSet::new(),
            makeup: BTreeSet::new(),
            years: f.years.keys().copied().collect(),
            unchecked: f
                .years
                .iter()
                .filter(|(_, y)| !y.checked_against_official_notice)
                .map(|(y, _)| *y)
                .collect(),
        };
        for (year, y) in &f.years {
            for (list, set) in [
                (&y.holidays, &mut cal.holidays),
                (&y.makeup_workdays, &mut cal.makeup),
            ] {
                for d in list {
                    let day = parse_date(d)
                        .ok_or_else(|| CalendarError(format!("`{d}` is not a YYYY-MM-DD date")))?;
                    if civil_from_days(day).0 != *year {
                        return Err(CalendarError(format!("{d} is listed under year {year}")));
                    }
                    set.insert(day);
                }
            }
        }
        if let Some(d) = cal.holidays.intersection(&cal.makeup).next() {
            return Err(CalendarError(format!(
                "{} is both a holiday and a make-up working day",
                format_date(*d)
            )));
        }
        Ok(cal)
    }

    /// The bundled calendar.
    pub fn bundled() -> Self {
        Self::from_json(BUNDLED).expect("bundled calendar is valid")
    }

    /// Weekends only, no holidays (for tests).
    pub fn weekends_only(utc_offset_minutes: i32) -> Self {
        Calendar {
            offset_ms: utc_offset_minutes as i64 * 60_000,
            holidays: BTreeSet::new(),
            makeup: BTreeSet::new(),
            years: BTreeSet::new(),
            unchecked: vec![],
        }
    }

    /// Years whose data is marked as not yet checked against the official notice.
    pub fn unchecked_years(&self) -> &[i32] {
        &self.unchecked
    }

    /// Whether the calendar has data for `year` (otherwise only weekends count).
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The local civil day of an instant.
    pub fn day_of(&self, t: Millis) -> Day {
        (t + self.offset_ms).div_euclid(DAY_MS)
    }

    /// The instant a local day starts.
    pub fn start_of(&self, day: Day) -> Millis {
        day * DAY_MS - self.offset_ms
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: Day) -> bool {
        if self.makeup.contains(&day) {
            return true;
        }
        if self.holidays.contains(&day) {
            return false;
        }
        // 1970-01-01 was a Thursday: 0 = Thursday ... 2 = Saturday, 3 = Sunday.
        !matches!(day.rem_euclid(7), 2 | 3)
    }

    /// The first working day on or after `day`.
    pub fn next_working_day(&self, mut day: Day) -> Day {
        while !self.is_working_day(day) {
            day += 1;
        }
        day
    }

    /// The end (exclusive instant) of the `n`-th working day counted from `t`: `n = 0` is the
    /// end of the working day `t` falls on (or of the next one, if `t` is not in one).
    pub fn add_working_days(&self, t: Millis, n: u32) -> Millis {
        let mut day = self.next_working_day(self.day_of(t));
        for _ in 0..n {
            day = self.next_working_day(day + 1);
        }
        self.start_of(day + 1)
    }

    /// `t` plus wall-clock minutes.
    pub fn add_minutes(&self, t: Millis, minutes: u32) -> Millis {
        t + minutes as i64 * 60_000
    }

    /// Whole working days from the day of `from` to the day of `to` (0 if `to` is not later).
    pub fn working_days_between(&self, from: Millis, to: Millis) -> u32 {
        let (a, b) = (self.day_of(from), self.day_of(to));
        (a + 1..=b).filter(|d| self.is_working_day(*d)).count() as u32
    }

    /// Moves a deadline by a pause: the working time between `paused_at` and `resumed_at`
    /// does not count against it.
    pub fn extend_by_pause(
        &self,
        deadline: Millis,
        paused_at: Millis,
        resumed_at: Millis,
    ) -> Millis {
        let days = self.working_days_between(paused_at, resumed_at);
        if days == 0 {
            return deadline + (resumed_at - paused_at).max(0);
        }
        let mut day = self.day_of(deadline - 1);
        for _ in 0..days {
            day = self.next_working_day(day + 1);
        }
        self.start_of(day + 1)
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Day> {
    let mut it = s.split('-');
    let (y, m, d) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Parses `YYYY-MM`: the month's first and last day.
pub fn parse_month(s: &str) -> Option<(Day, Day)> {
    let (y, m) = s.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || s.len() != 7 {
        return None;
    }
    let first = days_from_civil(y, m, 1);
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    Some((first, next - 1))
}

/// The `YYYY-MM` of a day.
pub fn format_month(day: Day) -> String {
    let (y, m, _) = civil_from_days(day);
    format!("{y:04}-{m:02}")
}

/// The same calendar date `years` earlier (29 February becomes 28 February in a year
/// without one).
pub fn years_before(day: Day, years: u32) -> Day {
    let (y, m, d) = civil_from_days(day);
    let y = y - years as i32;
    let d = if m == 2 && d == 29 && civil_from_days(days_from_civil(y, 2, 29)).1 != 2 {
        28
    } else {
        d
    };
    days_from_civil(y, m, d)
}

/// Formats a day as `YYYY-MM-DD`.
pub fn format_date(day: Day) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An instant as ISO 8601 with the UTC offset, e.g. `2026-11-30T09:00:00+08:00`.
pub fn format_datetime(t: Millis, utc_offset_minutes: i32) -> String {
    let local = t + utc_offset_minutes as i64 * 60_000;
    let day = local.div_euclid(DAY_MS);
    let ms = local.rem_euclid(DAY_MS) / 1000;
    let (h, m, sec) = (ms / 3600, ms / 60 % 60, ms % 60);
    let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
    let off = utc_offset_minutes.abs();
    format!(
        "{}T{h:02}:{m:02}:{sec:02}{sign}{:02}:{:02}",
        format_date(day),
        off / 60,
        off % 60
    )
}

/// Parses an instant as an operator types it on the command line: milliseconds since the
/// epoch, a date `YYYY-MM-DD` (the start of that day in the bundled city calendar's time
/// zone), or an ISO 8601 datetime with its offset.
pub fn parse_instant_arg(s: &str) -> Result<Millis, String> {
    if let Ok(ms) = s.parse::<Millis>() {
        return Ok(ms);
    }
    if let Some(day) = parse_date(s) {
        return Ok(Calendar::bundled().start_of(day));
    }
    parse_datetime(s).ok_or_else(|| {
        format!("`{s}` is not a date (2026-11-01), a datetime (2026-11-01T08:00:00+08:00) or milliseconds since the epoch")
    })
}

/// Parses ISO 8601 / W3C datetimes with `Z` or a `±HH:MM` offset (seconds optional).
pub fn parse_datetime(s: &str) -> Option<Millis> {
    let (date, rest) = s.split_once('T')?;
    let day = parse_date(date)?;
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            t,
            sign * (oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?),
        )
    };
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next().map(|x| x.parse().ok()).unwrap_or(Some(0.0))?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0.0..61.0).contains(&sec) {
        return None;
    }
    Some(day * DAY_MS + (h * 3600 + m * 60) * 1000 + (sec * 1000.0) as i64 - offset_min * 60_000)
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i32, m: u32, d: u32) -> Day {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: Day) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_before_keeps_the_date_and_moves_29_february() {
        let d = |s| parse_date(s).unwrap();
        assert_eq!(years_before(d("2026-12-05"), 3), d("2023-12-05"));
        assert_eq!(years_before(d("2028-02-29"), 1), d("2027-02-28"));
        assert_eq!(years_before(d("2028-02-29"), 4), d("2024-02-29"));
        assert_eq!(years_before(d("2026-03-01"), 0), d("2026-03-01"));
    }

    fn at(date: &str, hh: i64, mm: i64) -> Millis {
        let cal = Calendar::bundled();
        cal.start_of(parse_date(date).unwrap()) + (hh * 60 + mm) * 60_000
    }

    fn date(cal: &Calendar, t: Millis) -> String {
        format_date(cal.day_of(t))
    }

    #[test]
    fn dates_round_trip() {
        for s in ["1970-01-01", "2026-02-28", "2028-02-29", "2026-12-31"] {
            assert_eq!(format_date(parse_date(s).unwrap()), s);
        }
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn weekends_holidays_and_makeup_days() {
        let cal = Calendar::bundled();
        let d = |s| parse_date(s).unwrap();
        assert!(cal.is_working_day(d("2026-11-30")), "a Monday");
        assert!(!cal.is_working_day(d("2026-11-29")), "a Sunday");
        assert!(
            !cal.is_working_day(d("2026-10-05")),
            "National Day holiday (a Monday)"
        );
        assert!(
            cal.is_working_day(d("2026-10-10")),
            "make-up working Saturday"
        );
        assert!(!cal.is_working_day(d("2026-02-18")), "Spring Festival");
        assert!(cal.covers(2026) && !cal.covers(2031));
        assert_eq!(cal.unchecked_years(), [2026]);
    }

    #[test]
    fn working_day_deadlines_skip_weekends_and_holidays() {
        let cal = Calendar::bundled();
        // Friday 2026-11-27 10:00 + 1 working day → end of Monday 11-30.
        assert_eq!(
            date(&cal, cal.add_working_days(at("2026-11-27", 10, 0), 1) - 1),
            "2026-11-30"
        );
        // Same day.
        assert_eq!(
            date(&cal, cal.add_working_days(at("2026-11-30", 10, 0), 0) - 1),
            "2026-11-30"
        );
        // Saturday intake, same working day → Monday.
        assert_eq!(
            date(&cal, cal.add_working_days(at("2026-11-28", 10, 0), 0) - 1),
            "2026-11-30"
        );
        // Over National Day: Wed 09-30 + 1 working day → Thu 10-08 (10-01..07 off).
        assert_eq!(
            date(&cal, cal.add_working_days(at("2026-09-30", 9, 0), 1) - 1),
            "2026-10-08"
        );
        // Thu 10-08 + 2 working days → Sat 10-10, a make-up working day.
        assert_eq!(
            date(&cal, cal.add_working_days(at("2026-10-08", 9, 0), 2) - 1),
            "2026-10-10"
        );
        // Local midnight boundaries: 23:59 local is still that day.
        assert_eq!(date(&cal, at("2026-11-30", 23, 59)), "2026-11-30");
        assert_eq!(
            cal.add_minutes(at("2026-11-30", 9, 0), 30),
            at("2026-11-30", 9, 30)
        );
    }

    #[test]
    fn counting_and_pauses() {
        let cal = Calendar::bundled();
        assert_eq!(
            cal.working_days_between(at("2026-11-27", 9, 0), at("2026-11-30", 9, 0)),
            1
        );
        assert_eq!(
            cal.working_days_between(at("2026-11-30", 9, 0), at("2026-11-27", 9, 0)),
            0
        );
        assert_eq!(
            cal.working_days_between(at("2026-09-30", 9, 0), at("2026-10-09", 9, 0)),
            2
        );
        // Paused Mon-Wed (2 working days later) moves a Fri deadline to the next Tue.
        let deadline = cal.add_working_days(at("2026-11-30", 9, 0), 4); // end of Fri 12-04
        let moved = cal.extend_by_pause(deadline, at("2026-11-30", 9, 0), at("2026-12-02", 9, 0));
        assert_eq!(date(&cal, moved - 1), "2026-12-08");
        // A pause within the day moves it by the paused time.
        assert_eq!(cal.extend_by_pause(deadline, 1000, 4000), deadline + 3000);
    }

    #[test]
    fn datetimes_round_trip_with_offsets() {
        let t = at("2026-11-30", 9, 5);
        assert_eq!(format_datetime(t, 480), "2026-11-30T09:05:00+08:00");
        // The command line's instants: a date is midnight in the city (+08:00).
        assert_eq!(
            parse_instant_arg("2026-11-30"),
            Ok(parse_datetime("2026-11-30T00:00:00+08:00").unwrap())
        );
        assert_eq!(parse_instant_arg("2026-11-30T09:05:00+08:00"), Ok(t));
        assert_eq!(parse_instant_arg("1796000400000"), Ok(1_796_000_400_000));
        assert!(
            parse_instant_arg("30/11/2026")
                .unwrap_err()
                .contains("is not a date")
        );
        assert_eq!(format_datetime(t, 0), "2026-11-30T01:05:00+00:00");
        assert_eq!(parse_datetime("2026-11-30T09:05:00+08:00"), Some(t));
        assert_eq!(parse_datetime("2026-11-30T01:05:00Z"), Some(t));
        assert_eq!(parse_datetime("2026-11-29T20:05:00-05:00"), Some(t));
        assert_eq!(parse_datetime("2026-11-30"), None);
        assert_eq!(parse_datetime("2026-11-30T25:00:00Z"), None);
    }

    #[test]
    fn bad_calendar_files_are_refused() {
        let bad = |j: &str| Calendar::from_json(j).unwrap_err().to_string();
        assert!(bad("{").contains("not valid"));
        assert!(bad(r#"{"utc_offset_minutes":480,"years":{"2026":{"holidays":["2026-02-30"],"makeup_workdays":[]}}}"#).contains("not a YYYY-MM-DD"));
        assert!(bad(r#"{"utc_offset_minutes":480,"years":{"2026":{"holidays":["2027-01-01"],"makeup_workdays":[]}}}"#).contains("listed under year 2026"));
        assert!(bad(r#"{"utc_offset_minutes":480,"years":{"2026":{"holidays":["2026-01-05"],"makeup_workdays":["2026-01-05"]}}}"#).contains("both"));
    }
}
