//! When a campaign sends: its rate, the quiet hours of ads, and how long it will take.
//!
//! Brand Messages (and every ad: FriendTalk, marketing templates) are not delivered between
//! 20:50 and 08:00 KST (Kakao result 3022; reference/bizmsg.md §1, §6, the same hours as
//! `clawbridge_bizmsg::window::AdWindow`, which the binary checks against these). A campaign that
//! reaches 20:50 pauses itself and goes on at 08:00; the estimate says so beforehand.

use clawbridge_core::time::{EpochMs, KST, MINUTE_MS, timestamp};
use jiff::civil::Time;

/// How fast a campaign hands recipients to the senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rate {
    /// As fast as the senders (and the dealer's or Kapso's own limits) take them.
    #[default]
    Unlimited,
    /// At most this many recipients a minute.
    PerMinute(u32),
}

impl Rate {
    /// The pacing that spreads this rate evenly: `limit` recipients per window of `window_ms`
    /// (1,000/min is 17 per 1,020 ms rather than 1,000 in the first second of each minute).
    /// `None` when unlimited.
    pub fn pacing(self) -> Option<(u64, EpochMs)> {
        let Self::PerMinute(per_minute) = self else { return None };
        let per_minute = u64::from(per_minute.max(1));
        let limit = per_minute.div_ceil(60);
        let window_ms = (MINUTE_MS as u64 * limit).div_ceil(per_minute);
        Some((limit, EpochMs::try_from(window_ms).unwrap_or(MINUTE_MS)))
    }

    /// `1000/min`, `unlimited`.
    pub fn label(self) -> String {
        match self {
            Self::Unlimited => "unlimited".to_owned(),
            Self::PerMinute(n) => format!("{n}/min"),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `1000/min`, `20/s`, `30000/h`, `500` (a minute), `unlimited`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if matches!(t.as_str(), "unlimited" | "max" | "0") {
            return Ok(Self::Unlimited);
        }
        let (n, unit) = t.split_once('/').unwrap_or((t.as_str(), "min"));
        let n: u64 =
            n.trim().parse().map_err(|_| format!("--rate {s:?}: write it as N/min (or N/s, N/h), e.g. 1000/min"))?;
        let per_minute = match unit.trim() {
            "s" | "sec" | "second" => n.saturating_mul(60),
            "m" | "min" | "minute" => n,
            "h" | "hour" => {
                if n < 60 {
                    return Err(format!("--rate {s:?}: less than one a minute; the slowest rate is 1/min"));
                }
                n / 60
            }
            _ => return Err(format!("--rate {s:?}: the unit is /s, /min or /h")),
        };
        if per_minute == 0 {
            return Err(format!("--rate {s:?}: give at least 1/min, or `unlimited`"));
        }
        Ok(Self::PerMinute(u32::try_from(per_minute).unwrap_or(u32::MAX)))
    }
}

/// Daily hours in which a campaign does not send, in KST: 20:50–08:00 for ads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// When the quiet hours start (the sending window closes).
    pub from: Time,
    /// When they end (the window opens).
    pub until: Time,
}

impl QuietHours {
    /// 20:50–08:00 KST: when Kakao delivers no ad.
    pub const fn ads() -> Self {
        Self { from: Time::constant(20, 50, 0, 0), until: Time::constant(8, 0, 0, 0) }
    }

    /// Whether `at` is in the quiet hours.
    pub fn is_quiet(&self, at: EpochMs) -> bool {
        let t = KST.to_datetime(timestamp(at)).time();
        if self.from > self.until { t >= self.from || t < self.until } else { t >= self.from && t < self.until }
    }

    /// The next instant at or after `at` on which the wall clock shows `time`.
    fn next(at: EpochMs, time: Time) -> EpochMs {
        let local = KST.to_datetime(timestamp(at));
        let today = local.date().to_datetime(time);
        let candidate =
            if local <= today { today } else { local.date().tomorrow().map_or(today, |d| d.to_datetime(time)) };
        KST.to_timestamp(candidate).map_or(at, |t| t.as_millisecond())
    }

    /// When the quiet hours that `at` is in end; `None` when `at` is not quiet.
    pub fn resumes_at(&self, at: EpochMs) -> Option<EpochMs> {
        self.is_quiet(at).then(|| Self::next(at, self.until))
    }

    /// When the next quiet hours start, from a time that is not quiet.
    pub fn next_start(&self, at: EpochMs) -> EpochMs {
        Self::next(at, self.from)
    }

    /// `20:50–08:00 KST`.
    pub fn label(&self) -> String {
        format!("{}–{} KST", self.from.strftime("%H:%M"), self.until.strftime("%H:%M"))
    }
}

/// How long a campaign will take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Time spent sending (pauses excluded); `None` at an unlimited rate.
    pub sending_ms: Option<EpochMs>,
    /// When the last recipient is handed over; `None` at an unlimited rate.
    pub finish_at: Option<EpochMs>,
    /// The quiet-hour pauses on the way, `(from, until)`.
    pub pauses: Vec<(EpochMs, EpochMs)>,
}

/// The estimate for `recipients` from `start` at `rate`, pausing in `quiet` hours.
pub fn estimate(recipients: u64, rate: Rate, start: EpochMs, quiet: Option<&QuietHours>) -> Estimate {
    let mut pauses = Vec::new();
    let Rate::PerMinute(per_minute) = rate else {
        if let Some(until) = quiet.and_then(|q| q.resumes_at(start)) {
            pauses.push((start, until));
        }
        return Estimate { sending_ms: None, finish_at: None, pauses };
    };
    let per_minute = u128::from(per_minute.max(1));
    let need =
        |n: u64| EpochMs::try_from((u128::from(n) * MINUTE_MS as u128).div_ceil(per_minute)).unwrap_or(EpochMs::MAX);
    let mut left = recipients;
    let mut at = start;
    let mut sending = 0;
    // A year of pauses at most: a bound on the loop whatever the numbers.
    for _ in 0..400 {
        if left == 0 {
            break;
        }
        if let Some(q) = quiet
            && let Some(until) = q.resumes_at(at)
        {
            pauses.push((at, until));
            at = until;
        }
        let closes = quiet.map_or(EpochMs::MAX, |q| q.next_start(at));
        let needed = need(left);
        if at.saturating_add(needed) <= closes {
            sending += needed;
            at += needed;
            left = 0;
        } else {
            let span = closes - at;
            let sent = u64::try_from(u128::try_from(span).unwrap_or(0) * per_minute / MINUTE_MS as u128).unwrap_or(0);
            left = left.saturating_sub(sent.max(1));
            sending += span;
            at = closes;
        }
    }
    Estimate { sending_ms: Some(sending), finish_at: Some(at), pauses }
}

/// `2 h 05 min`, `45 s`.
pub fn duration_label(ms: EpochMs) -> String {
    let secs = u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1_000);
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs.div_ceil(60)),
        _ => {
            let minutes = secs.div_ceil(60);
            format!("{} h {:02} min", minutes / 60, minutes % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kst(text: &str) -> EpochMs {
        let civil: jiff::civil::DateTime = text.parse().unwrap();
        KST.to_timestamp(civil).unwrap().as_millisecond()
    }

    #[test]
    fn rates_are_written_per_second_minute_or_hour() {
        assert_eq!("1000/min".parse::<Rate>().unwrap(), Rate::PerMinute(1_000));
        assert_eq!("20/s".parse::<Rate>().unwrap(), Rate::PerMinute(1_200));
        assert_eq!("6000/h".parse::<Rate>().unwrap(), Rate::PerMinute(100));
        assert_eq!("500".parse::<Rate>().unwrap(), Rate::PerMinute(500));
        assert_eq!("unlimited".parse::<Rate>().unwrap(), Rate::Unlimited);
        assert!("fast".parse::<Rate>().is_err());
        assert!("10/h".parse::<Rate>().is_err());
        assert!("5/day".parse::<Rate>().is_err());
    }

    #[test]
    fn pacing_spreads_the_rate_over_the_minute() {
        assert_eq!(Rate::PerMinute(1_000).pacing(), Some((17, 1_020)));
        assert_eq!(Rate::PerMinute(60).pacing(), Some((1, 1_000)));
        assert_eq!(Rate::PerMinute(30).pacing(), Some((1, 2_000)));
        assert_eq!(Rate::PerMinute(6_000).pacing(), Some((100, 1_000)));
        assert_eq!(Rate::Unlimited.pacing(), None);
        // Whatever the rate, a minute of windows never passes it.
        for per_minute in [1, 7, 59, 61, 999, 1_000, 1_001, 12_345] {
            let (limit, window) = Rate::PerMinute(per_minute).pacing().unwrap();
            assert!(limit * (60_000 / window as u64) <= u64::from(per_minute), "{per_minute}");
        }
    }

    #[test]
    fn quiet_hours_are_ten_to_nine_until_eight() {
        let q = QuietHours::ads();
        assert!(!q.is_quiet(kst("2026-12-24T08:00:00")));
        assert!(!q.is_quiet(kst("2026-12-24T20:49:59")));
        assert!(q.is_quiet(kst("2026-12-24T20:50:00")));
        assert!(q.is_quiet(kst("2026-12-25T03:00:00")));
        assert_eq!(q.resumes_at(kst("2026-12-24T22:00:00")), Some(kst("2026-12-25T08:00:00")));
        assert_eq!(q.resumes_at(kst("2026-12-25T07:00:00")), Some(kst("2026-12-25T08:00:00")));
        assert_eq!(q.resumes_at(kst("2026-12-25T09:00:00")), None);
        assert_eq!(q.next_start(kst("2026-12-25T09:00:00")), kst("2026-12-25T20:50:00"));
        assert_eq!(q.label(), "20:50–08:00 KST");
    }

    #[test]
    fn estimates_at_a_rate_and_across_the_quiet_hours() {
        let at_nine = kst("2026-12-24T09:00:00");
        let e = estimate(10_000, Rate::PerMinute(1_000), at_nine, Some(&QuietHours::ads()));
        assert_eq!(e.sending_ms, Some(10 * MINUTE_MS));
        assert_eq!(e.finish_at, Some(kst("2026-12-24T09:10:00")));
        assert!(e.pauses.is_empty());

        // From 20:00, 50 minutes of sending at 100/min, then the pause until 08:00.
        let e = estimate(10_000, Rate::PerMinute(100), kst("2026-12-24T20:00:00"), Some(&QuietHours::ads()));
        assert_eq!(e.pauses, [(kst("2026-12-24T20:50:00"), kst("2026-12-25T08:00:00"))]);
        assert_eq!(e.sending_ms, Some(100 * MINUTE_MS));
        assert_eq!(e.finish_at, Some(kst("2026-12-25T08:50:00")));

        // Started in the quiet hours: waits first.
        let e = estimate(60, Rate::PerMinute(60), kst("2026-12-24T23:00:00"), Some(&QuietHours::ads()));
        assert_eq!(e.pauses, [(kst("2026-12-24T23:00:00"), kst("2026-12-25T08:00:00"))]);
        assert_eq!(e.finish_at, Some(kst("2026-12-25T08:01:00")));

        // AlimTalk has no quiet hours.
        let e = estimate(60, Rate::PerMinute(60), kst("2026-12-24T23:00:00"), None);
        assert_eq!(e.finish_at, Some(kst("2026-12-24T23:01:00")));

        let e = estimate(5, Rate::Unlimited, at_nine, Some(&QuietHours::ads()));
        assert_eq!((e.sending_ms, e.finish_at), (None, None));
        assert_eq!(estimate(0, Rate::PerMinute(10), at_nine, None).finish_at, Some(at_nine));
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration_label(45_000), "45 s");
        assert_eq!(duration_label(10 * MINUTE_MS), "10 min");
        assert_eq!(duration_label(125 * MINUTE_MS), "2 h 05 min");
    }
}
