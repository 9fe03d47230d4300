//! Wall-clock times as users read them: RFC 3339 in UTC with
//! milliseconds, for log lines and files' modification times. Written by
//! hand (a date's arithmetic is 20 lines) rather than with a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 in UTC with milliseconds: `2026-12-02T08:01:02.345Z`.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days since the epoch, so never negative here).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `ms` milliseconds after the Unix epoch, as `timestamp` writes it.
pub fn from_unix_ms(ms: u64) -> String {
    timestamp(UNIX_EPOCH + Duration::from_millis(ms))
}

/// `ms` milliseconds after the Unix epoch as an HTTP date (RFC 9110's
/// IMF-fixdate, whole seconds): `Wed, 02 Dec 2026 12:34:56 GMT`, for
/// `Last-Modified`.
pub fn http_date(ms: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let of_day = secs % 86_400;
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// Milliseconds after the Unix epoch of an HTTP date as `http_date`
/// writes it (IMF-fixdate, `Wed, 02 Dec 2026 12:34:56 GMT`); `None` for
/// anything else (RFC 9110: a conditional header with a date that does
/// not parse is ignored).
pub fn parse_http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_weekday, rest) = text.trim().split_once(", ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = fields[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|name| *name == month)? + 1;
    if day.len() != 2 || year.len() != 4 {
        return None;
    }
    parse_unix_ms(&format!("{year}-{month:02}-{day}T{clock}Z"))
}

/// Milliseconds after the Unix epoch of an RFC 3339 UTC time as
/// `timestamp` writes it (`2026-12-02T08:01:02.345Z`, or without the
/// fraction); `None` for anything else.
pub fn parse_unix_ms(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|part| part.parse::<u64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (clock, millis) = match clock.split_once('.') {
        Some((clock, fraction)) if fraction.len() == 3 => (clock, fraction.parse::<u64>().ok()?),
        Some(_) => return None,
        None => (clock, 0),
    };
    let mut clock_parts = clock.splitn(3, ':').map(|part| part.parse::<u64>().ok());
    let (hour, minute, second) = (
        clock_parts.next()??,
        clock_parts.next()??,
        clock_parts.next()??,
    );
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

/// Days after 1970-01-01 of a proleptic Gregorian date from 1970 on (the
/// inverse of `civil_from_days`, Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{
        civil_from_days, from_unix_ms, http_date, parse_http_date, parse_unix_ms, timestamp,
    };

    #[test]
    fn http_dates_parse_back() {
        for ms in [0, 1_796_198_221_000, 951_782_400_000] {
            assert_eq!(parse_http_date(&http_date(ms)), Some(ms));
        }
        assert_eq!(
            parse_http_date("Wed, 02 Dec 2026 12:34:56 GMT"),
            parse_unix_ms("2026-12-02T12:34:56Z")
        );
        for bad in [
            "Wed, 2 Dec 2026 12:34:56 GMT",
            "Wed, 02 Dez 2026 12:34:56 GMT",
            "2026-12-02",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc_3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_millis(951_782_400_000 + 3_723_456);
        assert_eq!(timestamp(leap_day), "2000-02-29T01:02:03.456Z");
        let late = UNIX_EPOCH + Duration::from_secs(1_796_169_599);
        assert_eq!(timestamp(late), "2026-12-01T23:59:59.000Z");
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let mut previous = civil_from_days(0);
        for days in 1..200_000 {
            let (year, month, day) = civil_from_days(days);
            let next_day = (previous.0, previous.1, previous.2 + 1);
            let next_month = (previous.0, previous.1 + 1, 1);
            let next_year = (previous.0 + 1, 1, 1);
            assert!(
                [next_day, next_month, next_year].contains(&(year, month, day)),
                "{previous:?} then {:?}",
                (year, month, day)
            );
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            previous = (year, month, day);
        }
    }

    #[test]
    fn milliseconds_since_the_epoch_read_as_dates() {
        assert_eq!(from_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(from_unix_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn http_dates_name_the_weekday_and_month() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400_999), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(1_796_169_599_000),
            "Tue, 01 Dec 2026 23:59:59 GMT"
        );
    }

    #[test]
    fn timestamps_read_back_to_their_milliseconds() {
        for ms in [0, 951_782_400_123, 1_796_169_599_000, 4_102_444_800_001] {
            assert_eq!(parse_unix_ms(&from_unix_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            parse_unix_ms("2026-12-01T23:59:59Z"),
            Some(1_796_169_599_000)
        );
        for bad in [
            "",
            "2026-12-01",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00:00.5Z",
            "x",
        ] {
            assert_eq!(parse_unix_ms(bad), None, "{bad:?}");
        }
    }
}
