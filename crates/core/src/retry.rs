//! Send error classes and the one retry schedule (DESIGN.md §3).
//!
//! Channels classify every failure into a [`SendError`]; its [`RetryClass`] says what retrying can
//! do. One [`RetryPolicy`] (the KakaoTalk design seed's `RetryPolicy`, readable from the `[retry]`
//! table) gives every delay: the durable queues turn a failure into a [`RetryDecision`] with
//! [`RetryPolicy::decide`] and store the next attempt's time; in-process loops (clawbridge-http's
//! retry layer, the gateway's reconnects, the pollers) take [`RetryPolicy::delay`] and
//! [`RetryPolicy::honour`]. Keeping both as data makes the policy testable without a clock or a
//! network.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a send failed, from the retry point of view.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The platform said "slow down" (HTTP 429…); wait at least `retry_after` when given.
    #[error("rate limited{}", after(.retry_after))]
    RateLimited {
        /// The platform's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// A failure that may pass: network error, timeout, 5xx, "in flight".
    #[error("transient failure: {reason}{}", after(.retry_after))]
    Transient {
        /// What happened, for logs and `clawbridge status`.
        reason: String,
        /// A server-suggested delay, if any.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (invalid recipient, outside the 24 h window, template rejected…).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The access token expired or was revoked; refresh (once) and retry, else re-authorise.
    #[error("authorisation expired")]
    AuthExpired,
    /// A call without an idempotency handle failed after it may have reached the platform (a
    /// timeout after the request was written, a success whose body was lost): sending again
    /// could deliver it twice, so it is not retried; the outcome is recorded as unknown.
    #[error("outcome unknown (it may have been delivered; not sent again): {0}")]
    MaybeDelivered(String),
}

fn after(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default()
}

impl SendError {
    /// A transient failure without a suggested delay.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient { reason: reason.into(), retry_after: None }
    }

    /// What retrying can do about this error.
    pub fn class(&self) -> RetryClass {
        match self {
            Self::RateLimited { .. } => RetryClass::RateLimited,
            Self::Transient { .. } => RetryClass::Transient,
            Self::Permanent(_) | Self::MaybeDelivered(_) => RetryClass::Permanent,
            Self::AuthExpired => RetryClass::AuthExpired,
        }
    }

    /// Whether the failed call may have taken effect on the platform (see
    /// [`SendError::MaybeDelivered`]).
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, Self::MaybeDelivered(_))
    }

    /// The server's suggested delay, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Transient { retry_after, .. } => *retry_after,
            Self::Permanent(_) | Self::MaybeDelivered(_) | Self::AuthExpired => None,
        }
    }
}

/// The retry classes every platform error is sorted into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// May pass by itself: network error, timeout, 5xx, "in flight".
    Transient,
    /// The platform asked us to slow down (429 and its platform codes).
    RateLimited,
    /// Retrying cannot help.
    Permanent,
    /// The credentials were refused: the caller refreshes them (once) or asks the owner.
    AuthExpired,
}

impl RetryClass {
    /// Whether waiting and trying again can help. `AuthExpired` is not: it goes back to the
    /// caller, which refreshes the token and calls again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::RateLimited)
    }

    /// The class as a metric label or log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RateLimited => "rate_limited",
            Self::Permanent => "permanent",
            Self::AuthExpired => "auth_expired",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryIn(Duration),
    /// Give up: the message goes to the dead letters with this reason.
    Dead(String),
}

/// Capped exponential backoff with jitter, in the seed's names (`[retry]` in the config file).
///
/// The delay before retry `n` is `initialDelayMs · backoffMultiplier^(n−1)`, capped at
/// `maxDelayMs`, of which half is fixed and half random ("equal jitter", so many messages failing
/// together do not come back together). A server's `Retry-After` is a lower bound: the wait is the
/// longer of the two, and a `Retry-After` beyond `maxRetryAfterMs` is not trusted (the queues wait
/// that long at most; an in-process retry gives up rather than hold its caller).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included, before giving up.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub initial_delay_ms: u64,
    /// Longest computed delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Growth of the delay from one retry to the next (2 doubles it).
    pub backoff_multiplier: f64,
    /// Longest wait a server's `Retry-After` can impose, in milliseconds (a broken header must not
    /// park a message for days). Not one of the seed's names; the seed has no `Retry-After`.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DURABLE
    }
}

impl RetryPolicy {
    /// The durable queues' schedule (outbox sends, inbox agent runs): 10 attempts, 1 s doubling
    /// to 5 min, `Retry-After` honoured up to an hour. The default.
    pub const DURABLE: Self = Self {
        max_attempts: 10,
        initial_delay_ms: 1_000,
        max_delay_ms: 300_000,
        backoff_multiplier: 2.0,
        max_retry_after_ms: 3_600_000,
    };

    /// One API call retried in-process while its caller waits (the Kakao Talk API, the CLI's
    /// sends): 4 attempts, 0.5 s doubling to 8 s, and no wait for a `Retry-After` over 15 s.
    pub const IN_PROCESS: Self = Self {
        max_attempts: 4,
        initial_delay_ms: 500,
        max_delay_ms: 8_000,
        backoff_multiplier: 2.0,
        max_retry_after_ms: 15_000,
    };

    /// The delay before the first retry.
    pub fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.initial_delay_ms)
    }

    /// The longest computed delay.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }

    /// The longest wait a `Retry-After` can impose.
    pub fn max_retry_after(&self) -> Duration {
        Duration::from_millis(self.max_retry_after_ms)
    }

    /// Checks the values a config file gave.
    ///
    /// # Errors
    /// The offending setting by its seed name, and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("maxAttempts must be at least 1 (the first try counts)".to_owned());
        }
        if !self.backoff_multiplier.is_finite() || self.backoff_multiplier < 1.0 {
            return Err(format!("backoffMultiplier is {}: it must be a number of at least 1", self.backoff_multiplier));
        }
        Ok(())
    }

    /// The delay before retry number `attempt` (1 = first retry).
    ///
    /// `jitter` in `[0, 1)` spreads retries of many messages ("equal jitter": half fixed, half random).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1).min(1_000)).unwrap_or(1_000);
        let grown = self.initial_delay_ms as f64 * self.backoff_multiplier.max(1.0).powi(exponent);
        let cap = self.max_delay_ms as f64;
        let base_ms = if grown.is_finite() { grown.min(cap) } else { cap };
        let base = Duration::from_millis(base_ms as u64);
        let half = base / 2;
        let jitter = if jitter.is_nan() { 0.5 } else { jitter.clamp(0.0, 1.0) };
        half + half.mul_f64(jitter)
    }

    /// A computed delay raised to the server's `hint` (bounded by `maxRetryAfterMs`): never sooner
    /// than the server asked, never sooner than our own backoff.
    pub fn honour(&self, computed: Duration, hint: Option<Duration>) -> Duration {
        match hint {
            Some(hint) => computed.max(hint.min(self.max_retry_after())),
            None => computed,
        }
    }

    /// [`delay`](Self::delay) for retry `attempt`, honouring the server's `hint`.
    pub fn delay_after(&self, attempt: u32, hint: Option<Duration>, jitter: f64) -> Duration {
        self.honour(self.delay(attempt, jitter), hint)
    }

    /// Decides what follows failed attempt number `attempts` (1 = the first try failed).
    pub fn decide(&self, attempts: u32, error: &SendError, jitter: f64) -> RetryDecision {
        match error {
            SendError::Permanent(reason) => return RetryDecision::Dead(reason.clone()),
            SendError::MaybeDelivered(_) => return RetryDecision::Dead(error.to_string()),
            _ => {}
        }
        if attempts >= self.max_attempts {
            return RetryDecision::Dead(format!("gave up after {attempts} attempts: {error}"));
        }
        RetryDecision::RetryIn(self.delay_after(attempts, error.retry_after(), jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = RetryPolicy { initial_delay_ms: 1_000, max_delay_ms: 8_000, ..RetryPolicy::default() };
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(8));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(6));
        let slow = RetryPolicy { backoff_multiplier: 1.5, ..b };
        assert_eq!(slow.delay(3, 1.0), Duration::from_millis(2_250));
        let flat = RetryPolicy { backoff_multiplier: 1.0, ..b };
        assert_eq!(flat.delay(30, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(2, f64::NAN), Duration::from_millis(1_500), "a broken jitter is the middle");
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let b = RetryPolicy::default();
        let limited = SendError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
        assert_eq!(b.decide(1, &limited, 0.0), RetryDecision::RetryIn(Duration::from_secs(30)));
        let absurd = SendError::RateLimited { retry_after: Some(Duration::from_secs(86_400 * 30)) };
        assert_eq!(b.decide(1, &absurd, 0.0), RetryDecision::RetryIn(b.max_retry_after()));
        // A hint shorter than our own backoff does not shorten it.
        let hurried = SendError::Transient { reason: "409".into(), retry_after: Some(Duration::from_millis(1)) };
        assert_eq!(b.decide(4, &hurried, 1.0), RetryDecision::RetryIn(Duration::from_secs(8)));
        assert_eq!(b.honour(Duration::from_millis(5), Some(Duration::ZERO)), Duration::from_millis(5));
    }

    #[test]
    fn permanent_errors_and_exhaustion_go_dead() {
        let b = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert_eq!(
            b.decide(1, &SendError::Permanent("131047 re-engagement".into()), 0.3),
            RetryDecision::Dead("131047 re-engagement".into())
        );
        assert!(matches!(b.decide(2, &SendError::transient("502"), 0.3), RetryDecision::RetryIn(_)));
        assert!(matches!(b.decide(1, &SendError::AuthExpired, 0.3), RetryDecision::RetryIn(_)));
        match b.decide(3, &SendError::transient("502"), 0.3) {
            RetryDecision::Dead(reason) => {
                assert!(reason.contains("3 attempts") && reason.contains("502"))
            }
            other => panic!("expected dead, got {other:?}"),
        }
    }

    /// A call that may have reached the platform is never retried: it goes dead at once, with a
    /// reason that says the outcome is unknown.
    #[test]
    fn a_maybe_delivered_send_is_never_retried() {
        let b = RetryPolicy::default();
        let unknown = SendError::MaybeDelivered("timed out after the request was written".into());
        assert!(!unknown.class().is_retryable());
        assert!(unknown.maybe_delivered() && !SendError::transient("x").maybe_delivered());
        match b.decide(1, &unknown, 0.5) {
            RetryDecision::Dead(reason) => assert!(reason.starts_with("outcome unknown"), "{reason}"),
            other => panic!("expected dead, got {other:?}"),
        }
    }

    #[test]
    fn classes_say_what_retrying_can_do() {
        let limited = SendError::RateLimited { retry_after: Some(Duration::from_secs(7)) };
        assert_eq!((limited.class(), limited.retry_after()), (RetryClass::RateLimited, Some(Duration::from_secs(7))));
        assert_eq!(SendError::transient("x").class(), RetryClass::Transient);
        assert_eq!(SendError::Permanent("x".into()).class().as_str(), "permanent");
        assert_eq!(SendError::AuthExpired.class().as_str(), "auth_expired");
        assert!(RetryClass::Transient.is_retryable() && RetryClass::RateLimited.is_retryable());
        assert!(!RetryClass::Permanent.is_retryable() && !RetryClass::AuthExpired.is_retryable());
    }

    #[test]
    fn the_policy_reads_the_seed_names() {
        let policy: RetryPolicy =
            serde_json::from_str(r#"{"maxAttempts":3,"initialDelayMs":1000,"maxDelayMs":30000,"backoffMultiplier":2}"#)
                .unwrap();
        assert_eq!(
            policy,
            RetryPolicy { max_attempts: 3, max_delay_ms: 30_000, ..RetryPolicy::DURABLE },
            "missing fields keep the durable defaults"
        );
        assert_eq!(serde_json::to_value(RetryPolicy::IN_PROCESS).unwrap()["maxRetryAfterMs"], 15_000);
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"retryableErrors":[429]}"#).is_err());
        assert!(
            RetryPolicy { max_attempts: 0, ..RetryPolicy::DURABLE }.validate().unwrap_err().contains("maxAttempts")
        );
        let shrinking = RetryPolicy { backoff_multiplier: 0.5, ..RetryPolicy::DURABLE };
        assert!(shrinking.validate().unwrap_err().contains("backoffMultiplier"));
        assert!(RetryPolicy::IN_PROCESS.validate().is_ok());
    }
}
