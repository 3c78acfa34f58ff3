//! UTC calendar arithmetic for the APIs that take or show dates: RFC 3339 timestamps and
//! `YYYY-MM-DD` days in, the same out. Days are counted from 1970-01-01 (day 0), with Howard
//! Hinnant's civil-date algorithms, so no time zone database is needed.

pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The UTC day (days since 1970-01-01) of a Unix-millisecond time.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 in UTC, with milliseconds only when there are any.
pub fn format_ms(ms: i64) -> String {
    let secs_of_day = ms.rem_euclid(DAY_MS) / 1_000;
    let millis = ms.rem_euclid(1_000);
    let (h, mi, s) = (secs_of_day / 3_600, secs_of_day / 60 % 60, secs_of_day % 60);
    let day = format_day(day_of(ms));
    if millis == 0 {
        format!("{day}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{day}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
    }
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A `YYYY-MM-DD` day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (year, month, day) = (digits(y)?, digits(m)?, digits(d)?);
    let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(day).ok().filter(|d| *d >= 1)?;
    let days = days_from_civil(year, month, day);
    // Rejects 2025-02-30 and the like: the day must come back unchanged.
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// Unix milliseconds of an RFC 3339 timestamp (`2025-06-01T12:00:00Z`, fractions and numeric
/// offsets allowed) or of the start (00:00 UTC) of a `YYYY-MM-DD` day.
pub fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() == 10 {
        return parse_day(s).map(|d| d * DAY_MS);
    }
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let days = parse_day(date)?;
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (digits(oh)?, digits(om)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (c, sign * (oh * 3_600_000 + om * 60_000))
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':');
    let (h, mi, sec) = (
        digits(hms.next()?)?,
        digits(hms.next()?)?,
        digits(hms.next()?)?,
    );
    if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let millis = if frac.is_empty() {
        0
    } else {
        digits(&format!("{:0<3}", &frac[..frac.len().min(3)]))?
    };
    if !frac.is_empty() && !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(days * DAY_MS + h * 3_600_000 + mi * 60_000 + sec * 1_000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        for d in [-800_000, -1, 0, 59, 11_016, 19_782, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(format_day(19_782), "2024-02-29");
        assert_eq!(format_ms(1_750_000_000_000), "2025-06-15T15:06:40Z");
        assert_eq!(format_ms(1_750_000_000_123), "2025-06-15T15:06:40.123Z");
    }

    #[test]
    fn parses_what_it_prints_and_rejects_the_rest() {
        assert_eq!(parse_ms("2025-06-15T15:06:40Z"), Some(1_750_000_000_000));
        assert_eq!(
            parse_ms("2025-06-15T15:06:40.123Z"),
            Some(1_750_000_000_123)
        );
        assert_eq!(
            parse_ms("2025-06-15T17:06:40+02:00"),
            Some(1_750_000_000_000)
        );
        assert_eq!(
            parse_ms("2025-06-15T13:06:40.1-02:00"),
            Some(1_750_000_000_100)
        );
        assert_eq!(
            parse_ms("2025-06-15"),
            Some(day_of(1_750_000_000_000) * DAY_MS)
        );
        // Bad input: no zone, a 13th month, February 30th, junk, a bad fraction, hour 24.
        for bad in [
            "2025-06-15T15:06:40",
            "2025-13-01",
            "2025-02-30",
            "yesterday",
            "2025-06-15T15:06:40.x1Z",
            "2025-06-15T24:00:00Z",
            "",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
