//! Send error classes and the retry schedule (DESIGN.md §3).
//!
//! Channels classify every failure into a [`SendError`]; the outbox worker turns it into a
//! [`RetryDecision`] with [`Backoff::decide`]. Keeping both as data makes the policy testable
//! without a clock or a network.

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
}

fn after(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default()
}

impl SendError {
    /// A transient failure without a suggested delay.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient { reason: reason.into(), retry_after: None }
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

/// Capped exponential backoff with jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay (a server's `Retry-After` may exceed it, up to `max_retry_after`).
    pub max: Duration,
    /// Attempts in total (the first try included) before giving up.
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is treated as this (a broken header must not park a message for days).
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: 10,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 = first retry).
    ///
    /// `jitter` in `[0, 1)` spreads retries of many messages ("equal jitter": half fixed, half random).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp.min(31)).min(self.max);
        let half = base / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Decides what follows failed attempt number `attempts` (1 = the first try failed).
    pub fn decide(&self, attempts: u32, error: &SendError, jitter: f64) -> RetryDecision {
        let suggested = match error {
            SendError::Permanent(reason) => return RetryDecision::Dead(reason.clone()),
            SendError::RateLimited { retry_after } => *retry_after,
            SendError::Transient { retry_after, .. } => *retry_after,
            SendError::AuthExpired => None,
        };
        if attempts >= self.max_attempts {
            return RetryDecision::Dead(format!("gave up after {attempts} attempts: {error}"));
        }
        let computed = self.delay(attempts, jitter);
        let delay = match suggested {
            Some(wait) => wait.min(self.max_retry_after).max(computed.min(wait)),
            None => computed,
        };
        RetryDecision::RetryIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(8), ..Backoff::default() };
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(8));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let b = Backoff::default();
        let limited = SendError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
        assert_eq!(b.decide(1, &limited, 0.0), RetryDecision::RetryIn(Duration::from_secs(30)));
        let absurd = SendError::RateLimited { retry_after: Some(Duration::from_secs(86_400 * 30)) };
        assert_eq!(b.decide(1, &absurd, 0.0), RetryDecision::RetryIn(b.max_retry_after));
    }

    #[test]
    fn permanent_errors_and_exhaustion_go_dead() {
        let b = Backoff { max_attempts: 3, ..Backoff::default() };
        assert_eq!(
            b.decide(1, &SendError::Permanent("131047 re-engagement".into()), 0.3),
            RetryDecision::Dead("131047 re-engagement".into())
        );
        assert!(matches!(b.decide(2, &SendError::transient("502"), 0.3), RetryDecision::RetryIn(_)));
        match b.decide(3, &SendError::transient("502"), 0.3) {
            RetryDecision::Dead(reason) => {
                assert!(reason.contains("3 attempts") && reason.contains("502"))
            }
            other => panic!("expected dead, got {other:?}"),
        }
    }
}
