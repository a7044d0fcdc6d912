//! The limiter in tokio's paused time: bursts queue, a pause holds everyone, a shared quota
//! holds two "replicas" to one plan.

use async_trait::async_trait;
use clawbridge_core::clock::Clock;
use clawbridge_core::time::EpochMs;
use clawbridge_http::{Limiter, MemoryQuota, QuotaError, SharedQuota};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Wall-clock milliseconds that follow tokio's (paused) clock, from a minute boundary.
#[derive(Debug)]
struct VirtualClock {
    start: Instant,
    base: EpochMs,
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> EpochMs {
        self.base + EpochMs::try_from(self.start.elapsed().as_millis()).unwrap()
    }
}

fn virtual_clock() -> Arc<dyn Clock> {
    Arc::new(VirtualClock { start: Instant::now(), base: 28_333_333 * 60_000 })
}

/// Never more than `limit` starts in any `window` (sliding).
fn assert_within(times: &[Duration], limit: usize, window: Duration) {
    for (i, t) in times.iter().enumerate() {
        let inside = times[i..].iter().filter(|u| **u < *t + window).count();
        assert!(inside <= limit, "{inside} starts within {window:?} of {t:?}: {times:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_queues_instead_of_failing_and_keeps_to_the_limit() {
    let limiter = Limiter::with_window(3, Duration::from_secs(60));
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..7 {
        limiter.acquire().await;
        times.push(start.elapsed());
    }
    assert_within(&times, 3, Duration::from_secs(60));
    assert!(times[6] <= Duration::from_secs(121), "the seventh starts in the third minute: {times:?}");

    // A plan of 100 a minute lets a reply of ten parts out at once.
    let limiter = Limiter::new(100);
    let start = Instant::now();
    for _ in 0..10 {
        limiter.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_the_limit() {
    let limiter = Arc::new(Limiter::with_window(2, Duration::from_secs(10)));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let limiter = limiter.clone();
        tasks.spawn(async move {
            limiter.acquire().await;
            start.elapsed()
        });
    }
    let mut times = tasks.join_all().await;
    times.sort();
    assert_eq!(times.len(), 6);
    assert_within(&times, 2, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_everyone() {
    let limiter = Limiter::with_window(100, Duration::from_secs(60));
    let start = Instant::now();
    limiter.pause(Duration::from_secs(30));
    limiter.pause(Duration::from_secs(5)); // a shorter pause does not shorten it
    limiter.acquire().await;
    assert!(start.elapsed() >= Duration::from_secs(30));
    limiter.pause(Duration::from_secs(86_400));
    let paused_at = Instant::now();
    limiter.acquire().await;
    assert!(paused_at.elapsed() <= Duration::from_secs(300), "a pause is at most five minutes");
}

#[tokio::test(start_paused = true)]
async fn a_shared_quota_holds_two_replicas_to_one_plan() {
    let quota: Arc<dyn SharedQuota> = Arc::new(MemoryQuota::new(virtual_clock()));
    let window = Duration::from_secs(60);
    // Each replica alone would allow 2 a minute; together they still get 2 a minute.
    let replicas: Vec<Arc<Limiter>> = (0..2)
        .map(|_| Arc::new(Limiter::with_window(2, window).with_shared_quota("kapso:key", quota.clone())))
        .collect();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let limiter = replicas[i % 2].clone();
        tasks.spawn(async move {
            limiter.acquire().await;
            start.elapsed()
        });
    }
    let mut times = tasks.join_all().await;
    times.sort();
    assert_eq!(times.len(), 6);
    for minute in 0..3u32 {
        let inside = times.iter().filter(|t| **t >= window * minute && **t < window * (minute + 1)).count();
        assert!(inside <= 2, "minute {minute}: {times:?}");
    }
    // Another key has its own count.
    let other = Limiter::with_window(2, window).with_shared_quota("kapso:other", quota);
    let before = Instant::now();
    other.acquire().await;
    assert_eq!(before.elapsed(), Duration::ZERO);
}

#[derive(Debug)]
struct BrokenStore;

#[async_trait]
impl SharedQuota for BrokenStore {
    async fn take(&self, _: &str, _: u32, _: Duration) -> Result<Option<Duration>, QuotaError> {
        Err("database is down".into())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_quota_store_leaves_the_in_process_limit() {
    let limiter = Limiter::with_window(10, Duration::from_secs(60)).with_shared_quota("k", Arc::new(BrokenStore));
    let start = Instant::now();
    limiter.acquire().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn the_memory_quota_counts_fixed_windows() {
    let clock = Arc::new(clawbridge_core::clock::ManualClock::new(120_000));
    let quota = MemoryQuota::new(clock.clone());
    let window = Duration::from_secs(60);
    assert_eq!(quota.take("k", 2, window).await.unwrap(), None);
    clock.advance(Duration::from_secs(15));
    assert_eq!(quota.take("k", 2, window).await.unwrap(), None);
    assert_eq!(quota.take("k", 2, window).await.unwrap(), Some(Duration::from_secs(45)));
    clock.advance(Duration::from_secs(45));
    assert_eq!(quota.take("k", 2, window).await.unwrap(), None, "a new window");
}
