//! When ads may reach a phone. Kakao delivers FriendTalk and Brand Message — and the dealers
//! treat every ad the same way — only between 08:00 and 20:50 KST; a message sent outside fails
//! with result 3022 (reference/bizmsg.md §1, §6). A send in the closed hours is therefore not
//! refused but held: accepted, stored, and released when the window opens. AlimTalk has no window.

use clawbridge_core::time::{EpochMs, KST, timestamp};
use jiff::civil::Time;

/// The daily window in which ads are delivered, in KST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdWindow {
    opens: Time,
    closes: Time,
}

impl Default for AdWindow {
    /// 08:00–20:50 KST.
    fn default() -> Self {
        Self { opens: Time::constant(8, 0, 0, 0), closes: Time::constant(20, 50, 0, 0) }
    }
}

impl AdWindow {
    /// Whether an ad may be delivered at `at`.
    pub fn is_open(&self, at: EpochMs) -> bool {
        let time = KST.to_datetime(timestamp(at)).time();
        time >= self.opens && time < self.closes
    }

    /// `None` when an ad may go now; otherwise the instant the window next opens (08:00 KST today
    /// when it is before eight, tomorrow's when it is after 20:50).
    pub fn next_open(&self, now: EpochMs) -> Option<EpochMs> {
        if self.is_open(now) {
            return None;
        }
        let local = KST.to_datetime(timestamp(now));
        let day = if local.time() < self.opens { local.date() } else { local.date().tomorrow().ok()? };
        let opens = day.to_datetime(self.opens);
        KST.to_timestamp(opens).ok().map(|t| t.as_millisecond())
    }
}

/// `2026-12-24 09:00 KST`, how the CLI says when a held message goes.
pub fn kst_label(at: EpochMs) -> String {
    KST.to_datetime(timestamp(at)).strftime("%Y-%m-%d %H:%M KST").to_string()
}

/// Reads a KST wall-clock time as operators write it (`2026-12-24 09:00`, `2026-12-24T09:00`,
/// seconds optional).
///
/// # Errors
/// A message with the accepted form.
pub fn parse_kst(text: &str) -> Result<EpochMs, String> {
    let civil: jiff::civil::DateTime = text
        .trim()
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|_| format!("--at {text:?}: write the time in KST as YYYY-MM-DD HH:MM, e.g. 2026-12-24 09:00"))?;
    KST.to_timestamp(civil).map(|t| t.as_millisecond()).map_err(|e| format!("--at {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instant of a KST wall-clock time.
    fn kst(text: &str) -> EpochMs {
        let civil: jiff::civil::DateTime = text.parse().unwrap();
        KST.to_timestamp(civil).unwrap().as_millisecond()
    }

    #[test]
    fn the_window_is_eight_to_ten_to_nine_in_seoul() {
        let window = AdWindow::default();
        assert!(window.is_open(kst("2026-12-24T08:00:00")));
        assert!(window.is_open(kst("2026-12-24T20:49:59")));
        assert!(!window.is_open(kst("2026-12-24T20:50:00")));
        assert!(!window.is_open(kst("2026-12-24T07:59:59")));
        assert!(!window.is_open(kst("2026-12-24T00:00:00")));
    }

    #[test]
    fn a_held_ad_goes_at_the_next_opening() {
        let window = AdWindow::default();
        assert_eq!(window.next_open(kst("2026-12-24T12:00:00")), None);
        assert_eq!(window.next_open(kst("2026-12-24T21:30:00")), Some(kst("2026-12-25T08:00:00")));
        assert_eq!(window.next_open(kst("2026-12-24T03:10:00")), Some(kst("2026-12-24T08:00:00")));
        // New Year's Eve rolls into the next year.
        assert_eq!(window.next_open(kst("2026-12-31T23:59:00")), Some(kst("2027-01-01T08:00:00")));
        assert_eq!(kst_label(kst("2027-01-01T08:00:00")), "2027-01-01 08:00 KST");
    }

    #[test]
    fn operators_write_times_in_kst() {
        assert_eq!(parse_kst("2026-12-24 09:00").unwrap(), kst("2026-12-24T09:00:00"));
        assert_eq!(parse_kst("2026-12-24T09:00:30").unwrap(), kst("2026-12-24T09:00:30"));
        assert!(parse_kst("24/12/2026").unwrap_err().contains("YYYY-MM-DD HH:MM"));
    }

    #[test]
    fn utc_instants_are_judged_in_kst() {
        // 2026-12-24 23:00 UTC is 08:00 on the 25th in Seoul.
        let at = jiff::Timestamp::from_second(1_798_153_200).unwrap().as_millisecond();
        assert_eq!(kst_label(at), "2026-12-25 08:00 KST");
        assert!(AdWindow::default().is_open(at));
    }
}
