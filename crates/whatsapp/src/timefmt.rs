//! RFC 3339 ⇄ epoch milliseconds, for Kapso's `created_at` and the poll cursor, and HTTP dates.

use clawbridge_core::EpochMs;
use clawbridge_core::time::timestamp;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::fmt::{rfc2822, temporal};
use jiff::tz::TimeZone;

/// Always three fractional digits, so cursors compare and read alike.
const RFC3339: temporal::DateTimePrinter = temporal::DateTimePrinter::new().precision(Some(3));
/// The weekday of an HTTP date is redundant; a wrong one does not make the date unreadable.
const HTTP_DATE: rfc2822::DateTimeParser = rfc2822::DateTimeParser::new().relaxed_weekday(true);

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn format_rfc3339(ms: EpochMs) -> String {
    RFC3339.timestamp_to_string(&timestamp(ms))
}

/// Parses RFC 3339 (`2026-03-26T15:05:00.000000Z`, `…+02:00`, UTC when the offset is missing)
/// or unix seconds (`1730092800`).
pub fn parse_time(raw: &str) -> Option<EpochMs> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.parse::<i64>().ok()?.checked_mul(1000);
    }
    if let Ok(at) = raw.parse::<Timestamp>() {
        return Some(at.as_millisecond());
    }
    // Without an offset (nothing after the date that could be one), the time is UTC.
    if raw.get(10..).is_some_and(|time| !time.contains(['Z', 'z', '+', '-'])) {
        let civil = raw.parse::<DateTime>().ok()?;
        return Some(civil.to_zoned(TimeZone::UTC).ok()?.timestamp().as_millisecond());
    }
    None
}

/// Parses an HTTP `Date` (RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), as in `Retry-After`.
pub fn parse_http_date(raw: &str) -> Option<EpochMs> {
    HTTP_DATE.parse_timestamp(raw.trim()).ok().map(Timestamp::as_millisecond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_time("1730092800"), Some(1_730_092_800_000));
        assert_eq!(parse_time("2024-10-28T05:20:00Z"), Some(1_730_092_800_000));
        assert_eq!(parse_time("2026-03-26T15:05:00.000000Z"), Some(1_774_537_500_000));
        assert_eq!(parse_time("2024-10-28T07:20:00.5+02:00"), Some(1_730_092_800_500));
        assert_eq!(format_rfc3339(1_730_092_800_123), "2024-10-28T05:20:00.123Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_http_date("Mon, 28 Oct 2024 05:20:00 GMT"), Some(1_730_092_800_000));
        assert_eq!(parse_http_date("garbage"), None);
        // What jiff adds: lenient forms of the same instant, and no overflow on absurd input.
        assert_eq!(parse_time("2024-10-28t05:20:00z"), Some(1_730_092_800_000));
        assert_eq!(parse_time("2024-10-28 05:20:00"), Some(1_730_092_800_000));
        assert_eq!(parse_time("2024-10-28T07:20:00+0200"), Some(1_730_092_800_000));
        assert_eq!(parse_time("99999999999999999999"), None);
        assert_eq!(parse_time("9999999999999999"), None);
        assert_eq!(parse_http_date("Sun, 28 Oct 2024 05:20:00 GMT"), Some(1_730_092_800_000));
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(ms in 0i64..8_000_000_000_000) {
            prop_assert_eq!(parse_time(&format_rfc3339(ms)), Some(ms));
        }
    }
}
