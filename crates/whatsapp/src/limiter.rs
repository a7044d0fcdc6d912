//! A per-API-key request limiter matching Kapso's plans (requests per minute, reference §2).
//!
//! Sliding one-minute window: a request may start when fewer than `limit` requests started in
//! the last minute. Waiters queue in order (tokio's mutex is fair), so a burst of replies is
//! spread out instead of failing with 429. A 429 from Kapso pauses everyone using the key.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// Limits the requests of one API key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    state: tokio::sync::Mutex<VecDeque<Instant>>,
    paused_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `per_minute` requests in any one-minute window.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, WINDOW)
    }

    /// `limit` requests in any `window` (tests use short windows).
    pub fn with_window(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window,
            state: tokio::sync::Mutex::new(VecDeque::new()),
            paused_until: Mutex::new(None),
        }
    }

    /// The process-wide limiter of an API key (clients of several accounts sharing a key share it).
    pub fn shared(api_key: &str, per_minute: u32) -> Arc<Self> {
        type Registry = Mutex<HashMap<(String, u32), Arc<RateLimiter>>>;
        static LIMITERS: OnceLock<Registry> = OnceLock::new();
        let digest = hex::encode(Sha256::digest(api_key.as_bytes()));
        let mut map = LIMITERS.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((digest, per_minute)).or_insert_with(|| Arc::new(Self::new(per_minute))).clone()
    }

    /// Waits until a request may start, then counts it.
    pub async fn acquire(&self) {
        let mut started = self.state.lock().await;
        loop {
            let now = Instant::now();
            let paused = *self.paused_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(until) = paused.filter(|until| *until > now) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            while started.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                started.pop_front();
            }
            if started.len() < self.limit {
                started.push_back(now);
                return;
            }
            let oldest = *started.front().unwrap_or(&now);
            tokio::time::sleep_until(oldest + self.window).await;
        }
    }

    /// Stops every request of this key for `duration` (after a 429 with `Retry-After`).
    pub fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration.min(Duration::from_secs(300));
        let mut paused = self.paused_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_queue_into_the_next_window() {
        let limiter = Arc::new(RateLimiter::with_window(3, Duration::from_secs(60)));
        let start = Instant::now();
        let mut finished = Vec::new();
        for _ in 0..7 {
            limiter.acquire().await;
            finished.push(start.elapsed().as_secs());
        }
        assert_eq!(finished, [0, 0, 0, 60, 60, 60, 120]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone() {
        let limiter = RateLimiter::with_window(100, Duration::from_secs(60));
        let start = Instant::now();
        limiter.pause(Duration::from_secs(30));
        limiter.acquire().await;
        assert_eq!(start.elapsed().as_secs(), 30);
    }

    #[test]
    fn one_limiter_per_key() {
        let a = RateLimiter::shared("key-a", 100);
        assert!(Arc::ptr_eq(&a, &RateLimiter::shared("key-a", 100)));
        assert!(!Arc::ptr_eq(&a, &RateLimiter::shared("key-b", 100)));
    }
}
