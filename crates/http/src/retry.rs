//! The one in-process retry loop, on backon, driven by core's retry classes.
//!
//! [`retry`] repeats a call while its error is [`RetryClass::Transient`] or
//! [`RetryClass::RateLimited`], waiting [`RetryPolicy::delay`] (the same schedule the durable queues
//! store as `next_at`) raised to the server's `Retry-After`. `Permanent` and `AuthExpired` go back
//! to the caller at once: the caller refreshes a token, the outbox writes a dead letter.

use backon::Retryable as _;
use clawbridge_core::clock::Clock;
use clawbridge_core::retry::{RetryClass, RetryPolicy, SendError};
use clawbridge_core::time::EpochMs;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How an error looks to the retry layer.
pub trait Classify {
    /// What retrying can do about it.
    fn retry_class(&self) -> RetryClass;

    /// The server's suggested delay (`Retry-After`), when it gave one.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// Whether the failed request may have reached the platform (a timeout, a broken answer): a
    /// call that is not safe to repeat is then not repeated, so a message cannot go out twice.
    fn maybe_delivered(&self) -> bool {
        false
    }
}

impl Classify for SendError {
    fn retry_class(&self) -> RetryClass {
        self.class()
    }

    fn retry_after(&self) -> Option<Duration> {
        SendError::retry_after(self)
    }
}

/// Whether `error` may be retried by a call that is (`idempotent`) or is not safe to repeat.
pub fn should_retry<E: Classify>(error: &E, idempotent: bool) -> bool {
    error.retry_class().is_retryable() && (idempotent || !error.maybe_delivered())
}

/// A policy's schedule as a backon backoff: `maxAttempts − 1` retries, each
/// [`RetryPolicy::delay`] with fresh [`jitter`].
#[derive(Clone, Debug)]
pub struct PolicyBackoff {
    policy: RetryPolicy,
    retries: u32,
}

impl PolicyBackoff {
    /// The backoff of `policy`, before its first retry.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy, retries: 0 }
    }
}

impl Iterator for PolicyBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let retry = self.retries.saturating_add(1);
        if retry >= self.policy.max_attempts {
            return None;
        }
        self.retries = retry;
        Some(self.policy.delay(retry, jitter()))
    }
}

/// Runs `attempt` until it succeeds, fails in a way retrying cannot fix, or `policy` runs out.
///
/// Between attempts it waits the policy's delay, or the server's `Retry-After` when that is
/// longer; a `Retry-After` beyond `maxRetryAfterMs` ends the loop instead (the caller is waiting).
/// A call that is not `idempotent` is not repeated after an error that [may have been
/// delivered](Classify::maybe_delivered).
///
/// # Errors
/// The last attempt's error.
pub async fn retry<T, E, F, Fut>(policy: RetryPolicy, idempotent: bool, attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Classify + Display,
{
    attempt
        .retry(PolicyBackoff::new(policy))
        .when(|e: &E| should_retry(e, idempotent))
        .adjust(move |e: &E, computed| match e.retry_after() {
            Some(hint) if hint > policy.max_retry_after() => None,
            hint => computed.map(|computed| policy.honour(computed, hint)),
        })
        .notify(|e: &E, wait| {
            tracing::debug!(error = %e, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "retrying");
        })
        .await
}

/// A random number in `[0, 1)` for backoff jitter (0.5 when the OS has no randomness to give).
pub fn jitter() -> f64 {
    match getrandom::u64() {
        Ok(random) => (random >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// The `Retry-After` of an answer: seconds, or an HTTP date measured against `clock`.
pub fn retry_after(headers: &reqwest::header::HeaderMap, clock: &dyn Clock) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, clock.now_ms())
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an IMF-fixdate such as
/// `Wed, 21 Oct 2015 07:28:00 GMT` (jiff's RFC 2822 parser reads it); a date in the past is no
/// wait. The obsolete RFC 850 and asctime date forms are not read (nothing we talk to sends them).
pub fn parse_retry_after(value: &str, now: EpochMs) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = at.as_millisecond().saturating_sub(now);
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // 2015-10-21T07:28:00Z
        let at = 1_445_412_480_000;
        assert_eq!(parse_retry_after(" 120 ", at), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", at), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", at), Some(Duration::ZERO), "in the past");
        assert_eq!(parse_retry_after("soon", at), None);
        assert_eq!(parse_retry_after("-5", at), None);
    }

    #[test]
    fn the_backoff_gives_max_attempts_minus_one_delays_within_the_schedule() {
        let policy = RetryPolicy { max_attempts: 4, initial_delay_ms: 100, max_delay_ms: 250, ..RetryPolicy::DURABLE };
        let delays: Vec<Duration> = PolicyBackoff::new(policy).collect();
        assert_eq!(delays.len(), 3);
        for (i, delay) in delays.iter().enumerate() {
            let base = Duration::from_millis([100, 200, 250][i]);
            assert!(*delay >= base / 2 && *delay <= base, "retry {}: {delay:?}", i + 1);
        }
        assert_eq!(PolicyBackoff::new(RetryPolicy { max_attempts: 1, ..policy }).count(), 0);
        for _ in 0..100 {
            assert!((0.0..1.0).contains(&jitter()));
        }
    }
}
