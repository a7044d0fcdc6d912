//! The wall clock as a value, so tests can set and move it.
//!
//! Everything stored or compared across processes is epoch milliseconds ([`EpochMs`]). Code that
//! needs "now" either calls [`now_ms`] (the system clock) or takes a [`Clock`], which tests replace
//! with a [`ManualClock`]. Waiting is not the clock's business: async code sleeps with tokio's
//! timer, which tests pause and advance.

use crate::time::EpochMs;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in epoch milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> EpochMs;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMs {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| EpochMs::try_from(d.as_millis()).unwrap_or(EpochMs::MAX))
    }
}

/// A clock that stands still until it is set or advanced (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: EpochMs) -> Self {
        Self { now: AtomicI64::new(at) }
    }

    /// Shows `at` from now on.
    pub fn set(&self, at: EpochMs) {
        self.now.store(at, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = EpochMs::try_from(by.as_millis()).unwrap_or(EpochMs::MAX);
        let _ = self.now.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(by)));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> EpochMs {
        self.now.load(Ordering::SeqCst)
    }
}

/// The current time in epoch milliseconds, from the system clock.
pub fn now_ms() -> EpochMs {
    SystemClock.now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_2020_and_a_manual_clock_moves_only_when_told() {
        assert!(now_ms() > 1_577_836_800_000);
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now_ms(), 2_500);
        clock.set(7);
        assert_eq!(clock.now_ms(), 7);
        clock.set(EpochMs::MAX - 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(clock.now_ms(), EpochMs::MAX, "saturates instead of wrapping");
        let shared: std::sync::Arc<dyn Clock> = std::sync::Arc::new(ManualClock::new(42));
        assert_eq!(shared.now_ms(), 42);
    }
}
