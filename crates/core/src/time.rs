//! Time as epoch milliseconds: the unit SQLite and PostgreSQL both store as a plain integer.

/// Milliseconds since the Unix epoch (UTC).
pub type EpochMs = i64;

/// One second in [`EpochMs`].
pub const SECOND_MS: EpochMs = 1_000;
/// One minute in [`EpochMs`].
pub const MINUTE_MS: EpochMs = 60 * SECOND_MS;
/// One hour in [`EpochMs`].
pub const HOUR_MS: EpochMs = 60 * MINUTE_MS;
/// One day in [`EpochMs`].
pub const DAY_MS: EpochMs = 24 * HOUR_MS;

/// The civil (proleptic Gregorian) date `(year, month, day)` of a day counted from 1970-01-01.
/// Howard Hinnant's `civil_from_days`, exact for every `i64` day a timestamp can name.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The day (counted from 1970-01-01) of a civil date; the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
