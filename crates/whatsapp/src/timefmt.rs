//! RFC 3339 ⇄ epoch milliseconds, for Kapso's `created_at` and the poll cursor (no date crate needed).

use clawbridge_core::EpochMs;
use clawbridge_core::time::{civil_from_days, days_from_civil};

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn format_rfc3339(ms: EpochMs) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses RFC 3339 (`2026-03-26T15:05:00.000000Z`, `…+02:00`) or unix seconds (`1730092800`).
pub fn parse_time(raw: &str) -> Option<EpochMs> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.parse::<i64>().ok().map(|s| s * 1000);
    }
    let bytes = raw.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| raw.get(range)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &raw[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let padded = format!("{:0<3}", &digits[..digits.len().min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_secs = match rest {
        "Z" | "z" | "" => 0,
        tz => {
            let sign = match tz.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = &tz[1..];
            let (oh, om) = tz.split_once(':').unwrap_or((tz.get(..2)?, tz.get(2..)?));
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + millis)
}

/// Parses an HTTP `Date` header (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(raw: &str) -> Option<EpochMs> {
    let mut parts = raw.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    parse_time(&format!("{year:04}-{month:02}-{day:02}T{}Z", parts.next()?))
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
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(ms in 0i64..8_000_000_000_000) {
            prop_assert_eq!(parse_time(&format_rfc3339(ms)), Some(ms));
        }
    }
}
