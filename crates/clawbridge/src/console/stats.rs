//! The last hour, per minute, in process memory: messages in and out and the agent's latency,
//! for the console's charts; and the last errors. Fed by the pipeline next to its Prometheus
//! metrics (Prometheus keeps totals and buckets, which cannot give a per-minute p99 back).
//!
//! Process-wide like the metrics recorder: one daemon per process in production; tests that
//! start several see their sum, which only the charts show.

use crate::util::now_ms;
use clawbridge_core::EpochMs;
use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

/// Minutes kept.
pub const MINUTES: usize = 60;
/// Latency samples kept per minute: enough for a p99, bounded memory under a flood.
const SAMPLES_PER_MINUTE: usize = 2_000;
/// Errors kept.
const ERRORS: usize = 20;

/// One minute's counts and samples.
#[derive(Clone, Debug, Default)]
struct Minute {
    /// Epoch minute (`ms / 60_000`).
    index: i64,
    inbound: u64,
    outbound: u64,
    /// Agent run durations in seconds.
    latencies: Vec<f64>,
}

/// One minute as the charts read it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MinutePoint {
    /// Start of the minute.
    pub at: EpochMs,
    /// Inbound messages finished in that minute.
    pub inbound: u64,
    /// Messages the platforms accepted in that minute.
    pub outbound: u64,
    /// Agent latency percentiles in seconds, `None` without runs.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// A recent error, already free of secrets and unmasked numbers (the caller's duty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentError {
    /// When.
    pub at: EpochMs,
    /// Where (`agent`, `send`…).
    pub kind: &'static str,
    /// What, with the lane masked.
    pub text: String,
}

#[derive(Default)]
struct Stats {
    /// Ring indexed by minute modulo [`MINUTES`].
    minutes: Vec<Minute>,
    errors: VecDeque<RecentError>,
}

static STATS: LazyLock<Mutex<Stats>> =
    LazyLock::new(|| Mutex::new(Stats { minutes: vec![Minute::default(); MINUTES], errors: VecDeque::new() }));

fn with_minute(now: EpochMs, f: impl FnOnce(&mut Minute)) {
    let index = now.div_euclid(60_000);
    let mut stats = STATS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = &mut stats.minutes[usize::try_from(index.rem_euclid(MINUTES as i64)).unwrap_or(0)];
    if slot.index != index {
        *slot = Minute { index, ..Minute::default() };
    }
    f(slot);
}

/// An inbound message was handled.
pub fn inbound() {
    with_minute(now_ms(), |m| m.inbound += 1);
}

/// A message was accepted by its platform.
pub fn outbound() {
    with_minute(now_ms(), |m| m.outbound += 1);
}

/// An agent run took `seconds`.
pub fn agent_latency(seconds: f64) {
    with_minute(now_ms(), |m| {
        if m.latencies.len() < SAMPLES_PER_MINUTE {
            m.latencies.push(seconds);
        }
    });
}

/// Something went wrong that the operator should see on the overview.
pub fn error(kind: &'static str, text: String) {
    let mut stats = STATS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if stats.errors.len() == ERRORS {
        stats.errors.pop_front();
    }
    stats.errors.push_back(RecentError { at: now_ms(), kind, text });
}

/// The last [`MINUTES`] minutes up to the one of `now`, oldest first; minutes without
/// traffic are zero.
pub fn last_hour(now: EpochMs) -> Vec<MinutePoint> {
    let current = now.div_euclid(60_000);
    let stats = STATS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (0..MINUTES as i64)
        .rev()
        .map(|ago| {
            let index = current - ago;
            let slot = &stats.minutes[usize::try_from(index.rem_euclid(MINUTES as i64)).unwrap_or(0)];
            let mut point = MinutePoint { at: index * 60_000, ..MinutePoint::default() };
            if slot.index == index {
                let mut sorted = slot.latencies.clone();
                sorted.sort_by(f64::total_cmp);
                point.inbound = slot.inbound;
                point.outbound = slot.outbound;
                point.p50 = percentile(&sorted, 0.50);
                point.p95 = percentile(&sorted, 0.95);
                point.p99 = percentile(&sorted, 0.99);
            }
            point
        })
        .collect()
}

/// The recent errors, newest first.
pub fn recent_errors() -> Vec<RecentError> {
    let stats = STATS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    stats.errors.iter().rev().cloned().collect()
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.50), Some(50.0));
        assert_eq!(percentile(&samples, 0.95), Some(95.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_hour_has_sixty_minutes_ending_now() {
        inbound();
        agent_latency(1.5);
        let now = now_ms();
        let hour = last_hour(now);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(hour.last().map(|p| p.at), Some(now.div_euclid(60_000) * 60_000));
        assert!(hour.iter().map(|p| p.inbound).sum::<u64>() >= 1);
        assert!(hour.iter().any(|p| p.p50.is_some()));
        assert!(hour.windows(2).all(|w| w[1].at - w[0].at == 60_000));
    }
}
