//! Time as epoch milliseconds: the unit SQLite and PostgreSQL both store as a plain integer.
//! Calendar work (dates, offsets, formats) goes through jiff: [`timestamp`] and [`KST`].

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

/// Korea Standard Time, UTC+9 all year: Korea has kept no daylight saving time since 1988, so a
/// fixed offset gives the right KST date and hour without a time-zone database (no zoneinfo
/// lookup, which would be I/O).
pub const KST: jiff::tz::Offset = jiff::tz::offset(9);

/// The instant `ms` names, as a [`jiff::Timestamp`] for calendar work; clamped to jiff's range
/// (years −9999 to 9999), far beyond any timestamp the bridge stores.
pub fn timestamp(ms: EpochMs) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { jiff::Timestamp::MIN } else { jiff::Timestamp::MAX })
}

/// `ms` as UTC `YYYY-MM-DD HH:MM:SS`, for people reading the CLI's reports.
pub fn format_utc(ms: EpochMs) -> String {
    timestamp(ms).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_date(ms: EpochMs) -> String {
        timestamp(ms).to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
    }

    #[test]
    fn calendar_dates_of_epoch_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-DAY_MS), "1969-12-31");
        assert_eq!(utc_date(11_016 * DAY_MS), "2000-02-29");
        assert_eq!(utc_date(20_778 * DAY_MS), "2026-11-21");
        assert_eq!(timestamp(20_778 * DAY_MS + 1).as_millisecond(), 20_778 * DAY_MS + 1);
    }

    #[test]
    fn out_of_range_instants_are_clamped() {
        assert_eq!(timestamp(i64::MAX), jiff::Timestamp::MAX);
        assert_eq!(timestamp(i64::MIN), jiff::Timestamp::MIN);
    }

    #[test]
    fn kst_is_nine_hours_ahead() {
        // 2026-11-20 15:00 UTC is midnight of 2026-11-21 in Seoul.
        let at = timestamp(1_795_186_800_000);
        assert_eq!(KST.to_datetime(at).to_string(), "2026-11-21T00:00:00");
    }
}
