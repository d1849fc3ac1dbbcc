//! `StartCalendarInterval` semantics (launchd.plist(5)), as pure functions.
//!
//! * An entry's missing key is a wildcard (`{Minute = 0}` fires hourly).
//! * `Weekday` 0 and 7 are both Sunday.
//! * With both `Day` and `Weekday`, the entry fires when *either* matches (as cron does).
//! * An array of entries fires at the union of their times.
//! * As launchd's own parser does (launchd-842 `src/core.c`, `calendarinterval_new_from_obj_dict_walk`
//!   and `cronemu_wday`): keys match case-insensitively; a negative value, and `Month` 0, is a
//!   wildcard (launchd logs a warning); a value that is not an integer drops the whole entry;
//!   when `Weekday` is set the schedule ignores `Month`. An out-of-range positive integer can
//!   never match, so the entry never fires. Each of these is reported.
//! * Firings are in the host's local time zone; [`LocalClock`] abstracts it so tests use UTC.

use std::collections::BTreeMap;

/// One calendar entry; `None` is a wildcard. `weekday` is normalised to 0–6 (Sunday = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CalendarEntry {
    pub minute: Option<u32>,
    pub hour: Option<u32>,
    pub day: Option<u32>,
    pub weekday: Option<u32>,
    pub month: Option<u32>,
    /// An out-of-range value: launchd can never match it.
    pub never: bool,
}

/// A key's raw value as read from the plist.
#[derive(Debug, Clone, PartialEq)]
pub enum RawField {
    Int(i64),
    /// Anything that is not an integer: treated as a wildcard.
    Other,
}

/// Builds an entry from raw keys (`Minute`, `Hour`, …, in any case), returning it with its JSON
/// form (the effective schedule: wildcards omitted, original integers kept, so Weekday 7 stays 7)
/// and the problems found. `None` when launchd would drop the entry (a non-integer value).
pub fn entry_from_fields(
    fields: &BTreeMap<String, RawField>,
) -> (Option<CalendarEntry>, BTreeMap<String, i64>, Vec<String>) {
    let mut e = CalendarEntry::default();
    let mut json = BTreeMap::new();
    let mut problems = Vec::new();
    let mut dropped = false;
    const KEYS: [(&str, i64, i64); 5] = [
        ("Minute", 0, 59),
        ("Hour", 0, 23),
        ("Day", 1, 31),
        ("Weekday", 0, 7),
        ("Month", 1, 12),
    ];
    for (raw_key, value) in fields {
        let Some(&(key, lo, hi)) = KEYS.iter().find(|k| k.0.eq_ignore_ascii_case(raw_key)) else {
            problems.push(format!(
                "StartCalendarInterval has unknown key {}",
                raw_key.escape_default()
            ));
            continue;
        };
        let slot = match key {
            "Minute" => &mut e.minute,
            "Hour" => &mut e.hour,
            "Day" => &mut e.day,
            "Weekday" => &mut e.weekday,
            _ => &mut e.month,
        };
        match value {
            RawField::Other => {
                problems.push(format!(
                    "StartCalendarInterval.{key} is not an integer (launchd drops this entry)"
                ));
                dropped = true;
            }
            RawField::Int(v) if *v < 0 || (key == "Month" && *v == 0) => problems.push(format!(
                "StartCalendarInterval.{key} {v} is a wildcard (as launchd treats it)"
            )),
            RawField::Int(v) if *v < lo || *v > hi => {
                problems.push(format!(
                    "StartCalendarInterval.{key} {v} is out of range {lo}-{hi} (never fires)"
                ));
                e.never = true;
                json.insert(key.to_string(), *v);
            }
            RawField::Int(v) => {
                let v = *v as u32;
                *slot = Some(if key == "Weekday" { v % 7 } else { v });
                json.insert(key.to_string(), v as i64);
            }
        }
    }
    if dropped {
        return (None, BTreeMap::new(), problems);
    }
    (Some(e), json, problems)
}

/// A local civil time, minute resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

/// Converts between epoch seconds and the host's local civil time.
pub trait LocalClock {
    fn civil(&self, epoch: i64) -> Civil;
    fn epoch(&self, c: &Civil) -> i64;
}

/// UTC, for tests and for hosts whose zone is UTC.
pub struct Utc;

impl LocalClock for Utc {
    fn civil(&self, epoch: i64) -> Civil {
        let days = epoch.div_euclid(86400);
        let secs = epoch.rem_euclid(86400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs % 3600 / 60) as u32,
        }
    }
    fn epoch(&self, c: &Civil) -> i64 {
        days_from_civil(c.year, c.month, c.day) * 86400
            + c.hour as i64 * 3600
            + c.minute as i64 * 60
    }
}

/// The host's zone through the C library (`TZ` honoured), so DST is what the OS says.
pub struct SystemLocal;

impl LocalClock for SystemLocal {
    fn civil(&self, epoch: i64) -> Civil {
        // SAFETY: tm is plain data; localtime_r writes it and is thread-safe.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let t = epoch as libc::time_t;
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return Utc.civil(epoch);
        }
        Civil {
            year: tm.tm_year as i64 + 1900,
            month: tm.tm_mon as u32 + 1,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
        }
    }
    fn epoch(&self, c: &Civil) -> i64 {
        // SAFETY: as above; mktime normalises and resolves DST itself (tm_isdst = -1).
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = (c.year - 1900) as libc::c_int;
        tm.tm_mon = c.month as libc::c_int - 1;
        tm.tm_mday = c.day as libc::c_int;
        tm.tm_hour = c.hour as libc::c_int;
        tm.tm_min = c.minute as libc::c_int;
        tm.tm_isdst = -1;
        let t = unsafe { libc::mktime(&mut tm) };
        if t == -1 {
            Utc.epoch(c)
        } else {
            t as i64
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, valid for any year).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// 0 = Sunday. 1970-01-01 was a Thursday.
pub fn weekday_of(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

fn matches_day(e: &CalendarEntry, month: u32, day: u32, weekday: u32) -> bool {
    // launchd's cronemu ignores the month when a weekday is given.
    if e.never || (e.weekday.is_none() && e.month.is_some_and(|m| m != month)) {
        return false;
    }
    match (e.day, e.weekday) {
        (Some(d), Some(w)) => d == day || w == weekday,
        (Some(d), None) => d == day,
        (None, Some(w)) => w == weekday,
        (None, None) => true,
    }
}

/// Minutes of a day (0..1440) at which any entry fires on that date.
fn day_minutes(entries: &[CalendarEntry], month: u32, day: u32, weekday: u32) -> [u64; 23] {
    let mut bits = [0u64; 23];
    for e in entries
        .iter()
        .filter(|e| matches_day(e, month, day, weekday))
    {
        let hours = e.hour.map_or(0..24, |h| h..h + 1);
        for h in hours {
            let minutes = e.minute.map_or(0..60, |m| m..m + 1);
            for m in minutes {
                let i = (h * 60 + m) as usize;
                bits[i / 64] |= 1 << (i % 64);
            }
        }
    }
    bits
}

fn set_minutes(bits: &[u64; 23]) -> impl Iterator<Item = u32> + '_ {
    (0..1440u32).filter(move |i| bits[*i as usize / 64] & (1 << (i % 64)) != 0)
}

/// What a calendar schedule does over a window after `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Firings {
    /// The first firing strictly after `now`.
    pub next: Option<i64>,
    /// Mean gap between consecutive firings in the window; `None` with fewer than two.
    pub mean_gap: Option<f64>,
    pub count: u64,
}

/// Firings in `(now, now + days × 86400]`, in `clock`'s local time.
pub fn firings(entries: &[CalendarEntry], now: i64, days: i64, clock: &dyn LocalClock) -> Firings {
    let end = now + days * 86400;
    let start = clock.civil(now);
    let first_day = days_from_civil(start.year, start.month, start.day);
    let (mut first, mut last, mut count) = (None::<i64>, None::<i64>, 0u64);
    // One local day more than the window on each side covers zone offsets and DST shifts.
    for d in first_day - 1..=first_day + days + 1 {
        let (year, month, day) = civil_from_days(d);
        let bits = day_minutes(entries, month, day, weekday_of(d));
        let n = bits.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        if n == 0 {
            continue;
        }
        let at = |minute: u32| {
            clock.epoch(&Civil {
                year,
                month,
                day,
                hour: minute / 60,
                minute: minute % 60,
            })
        };
        let first_minute = set_minutes(&bits).next().expect("n > 0");
        let last_minute = set_minutes(&bits).last().expect("n > 0");
        if at(first_minute) > now && at(last_minute) <= end {
            // The whole day is inside the window: no per-minute conversions.
            count += n;
            first = first.or(Some(at(first_minute)));
            last = Some(at(last_minute));
        } else {
            for t in set_minutes(&bits).map(at).filter(|t| *t > now && *t <= end) {
                count += 1;
                first = Some(first.map_or(t, |f: i64| f.min(t)));
                last = Some(last.map_or(t, |l: i64| l.max(t)));
            }
        }
    }
    let mean_gap = match (first, last) {
        (Some(f), Some(l)) if count >= 2 => Some((l - f) as f64 / (count - 1) as f64),
        _ => None,
    };
    Firings {
        next: first,
        mean_gap,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.epoch(&Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
        })
    }

    fn entry(pairs: &[(&str, i64)]) -> CalendarEntry {
        let fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), RawField::Int(*v)))
            .collect();
        entry_from_fields(&fields).0.expect("valid entry")
    }

    #[test]
    fn civil_round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday_of(days_from_civil(2024, 2, 29)), 4, "a Thursday");
        assert_eq!(weekday_of(days_from_civil(1970, 1, 4)), 0, "a Sunday");
        for d in -800_000..-799_000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        // Century rules: 1900 is not a leap year, 2000 is.
        assert_eq!(
            days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28),
            1
        );
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
    }

    #[test]
    fn hourly_daily_weekly() {
        let now = ep(2024, 2, 28, 23, 30);
        let f = firings(&[entry(&[("Minute", 0)])], now, 366, &Utc);
        assert_eq!(
            (f.next, f.mean_gap, f.count),
            (Some(ep(2024, 2, 29, 0, 0)), Some(3600.0), 366 * 24)
        );
        let f = firings(
            &[
                entry(&[("Hour", 8), ("Minute", 0)]),
                entry(&[("Hour", 20), ("Minute", 0)]),
            ],
            now,
            366,
            &Utc,
        );
        assert_eq!(
            (f.next, f.mean_gap),
            (Some(ep(2024, 2, 29, 8, 0)), Some(43200.0))
        );
        let f = firings(
            &[entry(&[("Weekday", 0), ("Hour", 3), ("Minute", 15)])],
            now,
            366,
            &Utc,
        );
        assert_eq!(
            (f.next, f.mean_gap),
            (Some(ep(2024, 3, 3, 3, 15)), Some(604800.0))
        );
    }

    #[test]
    fn both_sunday_spellings_are_the_same_schedule() {
        let now = ep(2025, 6, 1, 12, 0); // itself a Sunday, after 03:15
        let a = firings(
            &[entry(&[("Weekday", 0), ("Hour", 3), ("Minute", 15)])],
            now,
            366,
            &Utc,
        );
        let b = firings(
            &[entry(&[("Weekday", 7), ("Hour", 3), ("Minute", 15)])],
            now,
            366,
            &Utc,
        );
        assert_eq!(a, b);
        assert_eq!(a.next, Some(ep(2025, 6, 8, 3, 15)));
    }

    #[test]
    fn month_ends_and_leap_years() {
        // Day 31 fires only in 31-day months.
        let now = ep(2023, 1, 31, 12, 0);
        let f = firings(
            &[entry(&[("Day", 31), ("Hour", 0), ("Minute", 0)])],
            now,
            366,
            &Utc,
        );
        assert_eq!(f.next, Some(ep(2023, 3, 31, 0, 0)), "February has no 31st");
        assert_eq!(f.count, 7, "Mar, May, Jul, Aug, Oct, Dec 2023 and Jan 2024");
        // Feb 29 exists in 2024 only: one firing in a year, no period.
        let now = ep(2023, 3, 1, 0, 0);
        let f = firings(
            &[entry(&[
                ("Month", 2),
                ("Day", 29),
                ("Hour", 12),
                ("Minute", 0),
            ])],
            now,
            366,
            &Utc,
        );
        assert_eq!(
            (f.next, f.count, f.mean_gap),
            (Some(ep(2024, 2, 29, 12, 0)), 1, None)
        );
        let f = firings(
            &[entry(&[
                ("Month", 2),
                ("Day", 29),
                ("Hour", 12),
                ("Minute", 0),
            ])],
            ep(2025, 3, 1, 0, 0),
            366,
            &Utc,
        );
        assert_eq!(f.count, 0, "no Feb 29 between Mar 2025 and Mar 2026");
        // Monthly on the 1st.
        let f = firings(
            &[entry(&[("Day", 1), ("Hour", 0), ("Minute", 0)])],
            ep(2024, 2, 28, 23, 30),
            366,
            &Utc,
        );
        assert_eq!(f.count, 12);
        assert_eq!(f.mean_gap, Some(337.0 * 86400.0 / 11.0));
    }

    #[test]
    fn day_or_weekday_fires_on_either() {
        // The 13th or any Friday.
        let now = ep(2024, 9, 1, 0, 0); // a Sunday
        let e = entry(&[("Day", 13), ("Weekday", 5), ("Hour", 0), ("Minute", 0)]);
        let f = firings(&[e], now, 14, &Utc);
        // Fri Sep 6, Fri Sep 13 (both rules: once), and nothing else within 14 days but Sep 13.
        assert_eq!(f.next, Some(ep(2024, 9, 6, 0, 0)));
        assert_eq!(f.count, 2);
        // Day only and Weekday only are not ORed with anything.
        assert_eq!(
            firings(
                &[entry(&[("Day", 13), ("Hour", 0), ("Minute", 0)])],
                now,
                14,
                &Utc
            )
            .count,
            1
        );
        assert_eq!(
            firings(
                &[entry(&[("Weekday", 5), ("Hour", 0), ("Minute", 0)])],
                now,
                14,
                &Utc
            )
            .count,
            2
        );
    }

    #[test]
    fn arrays_are_a_union_without_double_counting() {
        let now = ep(2024, 1, 1, 0, 0);
        let daily = entry(&[("Hour", 8), ("Minute", 0)]);
        let sunday = entry(&[("Weekday", 7), ("Hour", 8), ("Minute", 0)]);
        assert_eq!(
            firings(&[daily, sunday], now, 366, &Utc),
            firings(&[daily], now, 366, &Utc)
        );
    }

    #[test]
    fn wildcards_and_bad_values() {
        // A non-integer value drops the entry, as launchd's parser rejects it.
        let mut fields = BTreeMap::new();
        fields.insert("Minute".to_string(), RawField::Other);
        fields.insert("Hour".to_string(), RawField::Int(3));
        let (e, json, problems) = entry_from_fields(&fields);
        assert_eq!(e, None);
        assert!(json.is_empty());
        assert!(problems[0].contains("Minute is not an integer (launchd drops"));
        // Out of range never fires.
        let mut fields = BTreeMap::new();
        fields.insert("Minute".to_string(), RawField::Int(75));
        let (e, _, problems) = entry_from_fields(&fields);
        let e = e.unwrap();
        assert!(e.never && problems[0].contains("out of range"));
        assert_eq!(firings(&[e], 0, 30, &Utc).count, 0);
        // No keys at all: every minute.
        let f = firings(&[CalendarEntry::default()], ep(2024, 1, 1, 0, 0), 1, &Utc);
        assert_eq!((f.count, f.mean_gap), (1440, Some(60.0)));
    }

    #[test]
    fn negative_values_and_month_zero_are_wildcards() {
        let mut fields = BTreeMap::new();
        fields.insert("Minute".to_string(), RawField::Int(0));
        fields.insert("Hour".to_string(), RawField::Int(-1));
        fields.insert("Month".to_string(), RawField::Int(0));
        let (e, json, problems) = entry_from_fields(&fields);
        let e = e.unwrap();
        assert_eq!(
            (e.minute, e.hour, e.month, e.never),
            (Some(0), None, None, false)
        );
        assert_eq!(
            json.into_iter().collect::<Vec<_>>(),
            vec![("Minute".to_string(), 0)]
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        // Hourly, every day of the year.
        let f = firings(&[e], ep(2024, 1, 1, 0, 0), 1, &Utc);
        assert_eq!((f.count, f.mean_gap), (24, Some(3600.0)));
    }

    #[test]
    fn keys_match_in_any_case() {
        let mut fields = BTreeMap::new();
        fields.insert("minute".to_string(), RawField::Int(30));
        fields.insert("HOUR".to_string(), RawField::Int(4));
        let (e, json, problems) = entry_from_fields(&fields);
        let e = e.unwrap();
        assert_eq!((e.minute, e.hour), (Some(30), Some(4)));
        assert_eq!(json.len(), 2);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn weekday_makes_launchd_ignore_the_month() {
        // Month 2 with Weekday 1: launchd fires every Monday of the year, not Mondays of February.
        let mut fields = BTreeMap::new();
        for (k, v) in [("Month", 2), ("Weekday", 1), ("Hour", 9), ("Minute", 0)] {
            fields.insert(k.to_string(), RawField::Int(v));
        }
        let e = entry_from_fields(&fields).0.unwrap();
        let f = firings(&[e], ep(2024, 1, 1, 0, 0), 366, &Utc);
        assert_eq!(f.count, 53, "every Monday of 2024 (and 2025-01-...)");
        // Month alone still restricts.
        let mut fields = BTreeMap::new();
        for (k, v) in [("Month", 2), ("Day", 1), ("Hour", 9), ("Minute", 0)] {
            fields.insert(k.to_string(), RawField::Int(v));
        }
        let e = entry_from_fields(&fields).0.unwrap();
        assert_eq!(firings(&[e], ep(2024, 1, 1, 0, 0), 366, &Utc).count, 1);
    }
}
