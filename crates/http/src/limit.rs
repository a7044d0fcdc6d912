//! Request limits: governor in-process, plus a [`SharedQuota`] that holds across replicas.
//!
//! A [`Limiter`] is one platform key's limit (`limit` requests per `window`). Callers wait their
//! turn in order (a fair tokio mutex), so a burst is spread out instead of failing with 429:
//! 1. a pause set after the platform answered 429 ([`Limiter::pause`]) holds everyone;
//! 2. governor's GCRA paces this process;
//! 3. when a [`SharedQuota`] is attached, it counts the request for every replica together.
//!
//! governor runs on tokio's clock ([`TokioClock`]), so tests with paused time move it.

use async_trait::async_trait;
use clawbridge_core::clock::Clock;
use clawbridge_core::time::EpochMs;
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a 429 pauses a key, whatever its `Retry-After` says.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// What a shared quota store failed with.
pub type QuotaError = Box<dyn std::error::Error + Send + Sync>;

/// A request count kept outside the process (the store), so that N replicas together stay
/// within a platform plan instead of sending at N times it.
///
/// Windows are fixed: the window of `now` starts at `now − now % window`. A store implements
/// this over its `take_quota(key, window_start, window_ms, limit, n = 1, now)`: `Granted` is
/// `Ok(None)`, `Refused { window_ends_at }` is `Ok(Some(window_ends_at − now))`.
#[async_trait]
pub trait SharedQuota: Send + Sync + std::fmt::Debug {
    /// Counts one request of `key` against `limit` per `window`.
    ///
    /// `Ok(None)`: granted. `Ok(Some(wait))`: refused; the window ends in `wait`.
    ///
    /// # Errors
    /// The store failed; the limiter then keeps to its in-process limit alone.
    async fn take(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, QuotaError>;
}

/// A [`SharedQuota`] in this process's memory: the twin of the store-backed one for tests and
/// for tools that run alone.
#[derive(Debug)]
pub struct MemoryQuota {
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<String, (EpochMs, u32)>>,
}

impl MemoryQuota {
    /// Counts windows by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, windows: Mutex::default() }
    }
}

#[async_trait]
impl SharedQuota for MemoryQuota {
    async fn take(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, QuotaError> {
        let now = self.clock.now_ms();
        let window_ms = EpochMs::try_from(window.as_millis()).unwrap_or(EpochMs::MAX).max(1);
        let start = now - now.rem_euclid(window_ms);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let (window_start, count) = windows.entry(key.to_owned()).or_insert((start, 0));
        if *window_start != start {
            (*window_start, *count) = (start, 0);
        }
        if *count < limit {
            *count += 1;
            return Ok(None);
        }
        let wait = start.saturating_add(window_ms) - now;
        Ok(Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0))))
    }
}

/// governor's clock on tokio's timer (paused and advanced in tests).
#[derive(Clone, Debug)]
pub struct TokioClock {
    start: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self { start: Instant::now() }
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

type Gcra = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// One platform key's request limit.
pub struct Limiter {
    limit: u32,
    window: Duration,
    gcra: Gcra,
    /// Waiters take turns in arrival order.
    turn: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<Instant>>,
    /// The cross-replica count, attached at build time or later (an account gets its store
    /// when it starts).
    shared: RwLock<Option<(String, Arc<dyn SharedQuota>)>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("shared", &self.shared_quota().map(|(key, _)| key))
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// `per_minute` requests in any one-minute window (platform plans are quoted per minute).
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60))
    }

    /// `limit` requests in any `window` (tests use short windows).
    ///
    /// The GCRA lets a burst of a tenth of the limit through at once (a reply in several parts
    /// goes out together) and then one request per `window / (limit − burst + 1)`, which keeps any
    /// window at or below `limit`: the plan's own count, not twice it at a window's edge.
    pub fn with_window(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let burst = limit.div_ceil(10);
        let period = (window / (limit - burst + 1)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("the period is not zero")
            .allow_burst(NonZeroU32::new(burst).expect("the burst is at least 1"));
        Self {
            limit,
            window,
            gcra: governor::RateLimiter::direct_with_clock(quota, TokioClock::default()),
            turn: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
            shared: RwLock::new(None),
        }
    }

    /// Also counts every request in `quota` under `key`, shared with other replicas.
    #[must_use]
    pub fn with_shared_quota(self, key: impl Into<String>, quota: Arc<dyn SharedQuota>) -> Self {
        self.share_through(key, quota);
        self
    }

    /// From now on also counts every request in `quota` under `key` (replacing an earlier one):
    /// for a limiter built before the store was open.
    pub fn share_through(&self, key: impl Into<String>, quota: Arc<dyn SharedQuota>) {
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = Some((key.into(), quota));
    }

    fn shared_quota(&self) -> Option<(String, Arc<dyn SharedQuota>)> {
        self.shared.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until a request may start, then counts it.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        loop {
            if let Some(until) = self.paused() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            match self.gcra.check() {
                Ok(()) => break,
                Err(not_until) => tokio::time::sleep(wait_time(&not_until, &self.gcra)).await,
            }
        }
        let Some((key, quota)) = self.shared_quota() else { return };
        loop {
            match quota.take(&key, self.limit, self.window).await {
                Ok(None) => return,
                Ok(Some(wait)) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
                Err(e) => {
                    tracing::warn!(error = %e, key, "the shared request quota is unavailable; keeping to this process's limit");
                    return;
                }
            }
        }
    }

    /// Stops every request of this key for `duration` (after a 429 with `Retry-After`), at most
    /// five minutes.
    pub fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration.min(MAX_PAUSE);
        let mut paused = self.paused_until.lock().unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// How much longer the key is paused (after a rate-limited answer), if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        self.paused().map(|until| until.saturating_duration_since(Instant::now()))
    }

    fn paused(&self) -> Option<Instant> {
        let paused = *self.paused_until.lock().unwrap_or_else(PoisonError::into_inner);
        paused.filter(|until| *until > Instant::now())
    }
}

fn wait_time(not_until: &NotUntil<Nanos>, gcra: &Gcra) -> Duration {
    not_until.wait_time_from(gcra.clock().now()).max(Duration::from_nanos(1))
}

/// The process-wide limiters, one per key and limit, so that clients sharing a platform key
/// share its limit. `key` should not be the secret itself (hash it).
pub fn shared(key: &str, limit: u32, window: Duration, quota: Option<Arc<dyn SharedQuota>>) -> Arc<Limiter> {
    type Registry = Mutex<HashMap<(String, u32, Duration, bool), Arc<Limiter>>>;
    static LIMITERS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let mut map = LIMITERS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    map.entry((key.to_owned(), limit, window, quota.is_some()))
        .or_insert_with(|| {
            let limiter = Limiter::with_window(limit, window);
            Arc::new(match quota {
                Some(quota) => limiter.with_shared_quota(key, quota),
                None => limiter,
            })
        })
        .clone()
}
