//! Optional layers around a platform's thin request function (teloxide's `Throttle<B>` /
//! `Trace` adaptors as values): retry, rate limit and tracing are each switched on separately, so a
//! test drops the ones it does not want.
//!
//! Per call: the retry loop (when on) around attempts; per attempt, the limiter's turn (when on),
//! then the request inside a tracing span (when on); a rate-limited answer pauses the key. Every
//! attempt is timed into [`REQUEST_SECONDS`], whatever the layers.

use crate::limit::Limiter;
use crate::retry::{Classify, retry};
use clawbridge_core::clock::{Clock, SystemClock};
use clawbridge_core::retry::{RetryClass, RetryPolicy};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// How long a 429 without `Retry-After` pauses the key (Kapso's documented `Retry-After: 60`).
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// The limiter did not give a turn within the layer's longest wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// How long the call waited.
    pub waited: Duration,
}

/// The histogram of every platform request attempt, labelled `platform`, `request` (the
/// [`Request::name`]) and `outcome` (`ok` or the failure's retry class): p50/p95/p99 per endpoint
/// and the error rate by class come from it.
pub const REQUEST_SECONDS: &str = "clawbridge_platform_request_seconds";

/// What the layers need to know about one call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// For logs, spans and the `request` label: an endpoint path or an operation name, written in
    /// the code (`'static`), so a phone number or an id can never become a metric label.
    pub name: &'static str,
    /// Safe to repeat after an error that may have been delivered (reads, uploads); sends are not.
    pub idempotent: bool,
}

impl Request {
    /// A call without side effects beyond itself: repeating it is harmless.
    pub fn idempotent(name: &'static str) -> Self {
        Self { name, idempotent: true }
    }

    /// A call that must not happen twice (a send).
    pub fn once(name: &'static str) -> Self {
        Self { name, idempotent: false }
    }
}

#[derive(Clone, Debug)]
struct RateLimit {
    limiter: Arc<Limiter>,
    max_wait: Duration,
}

/// The layers of one platform client.
#[derive(Clone, Debug)]
pub struct Layers {
    platform: &'static str,
    retry: Option<RetryPolicy>,
    limit: Option<RateLimit>,
    trace: bool,
    clock: Arc<dyn Clock>,
}

impl Layers {
    /// No layers: each call is one attempt, untraced. `platform` names the metrics and spans
    /// (`whatsapp`, `kakao`).
    pub fn new(platform: &'static str) -> Self {
        Self { platform, retry: None, limit: None, trace: false, clock: Arc::new(SystemClock) }
    }

    /// Retries what may pass, on `policy`'s schedule.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Makes each call one attempt.
    #[must_use]
    pub fn without_retry(mut self) -> Self {
        self.retry = None;
        self
    }

    /// Waits for `limiter` before every attempt, at most `max_wait` (then the attempt fails as
    /// [`Throttled`]); a rate-limited answer pauses the limiter for everyone sharing it.
    #[must_use]
    pub fn with_rate_limit(mut self, limiter: Arc<Limiter>, max_wait: Duration) -> Self {
        self.limit = Some(RateLimit { limiter, max_wait });
        self
    }

    /// A `debug` span per attempt (platform, request, attempt) and an event with its outcome.
    #[must_use]
    pub fn with_trace(mut self) -> Self {
        self.trace = true;
        self
    }

    /// The clock that dates a `Retry-After` given as an HTTP date (tests set it).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock a thin request function measures `Retry-After` dates with.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The retry schedule, when retrying is on.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// Runs `attempt` (one HTTP request, classified) through the layers.
    ///
    /// # Errors
    /// The last attempt's error, or [`Throttled`] (converted) when the limiter kept it waiting too long.
    pub async fn call<T, E, F, Fut>(&self, request: Request, mut attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify + From<Throttled> + Display,
    {
        let mut number = 0u32;
        let request = &request;
        let op = move || {
            number += 1;
            self.once(request, number, attempt())
        };
        match self.retry {
            Some(policy) => retry(policy, request.idempotent, op).await,
            None => {
                let mut op = op;
                op().await
            }
        }
    }

    async fn once<T, E, Fut>(&self, request: &Request, number: u32, attempt: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Classify + From<Throttled> + Display,
    {
        if let Some(limit) = &self.limit
            && tokio::time::timeout(limit.max_wait, limit.limiter.acquire()).await.is_err()
        {
            metrics::counter!(format!("clawbridge_{}_rate_limited_total", self.platform), "source" => "local")
                .increment(1);
            return Err(E::from(Throttled { waited: limit.max_wait }));
        }
        let started = tokio::time::Instant::now();
        let result = if self.trace {
            let span =
                tracing::debug_span!("request", platform = self.platform, request = request.name, attempt = number);
            let result = attempt.instrument(span.clone()).await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            span.in_scope(|| match &result {
                Ok(_) => tracing::debug!(elapsed_ms, "answered"),
                Err(e) => tracing::debug!(elapsed_ms, class = e.retry_class().as_str(), error = %e, "failed"),
            });
            result
        } else {
            attempt.await
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.retry_class().as_str(),
        };
        metrics::histogram!(REQUEST_SECONDS, "platform" => self.platform, "request" => request.name, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if let (Some(limit), Err(e)) = (&self.limit, &result)
            && e.retry_class() == RetryClass::RateLimited
        {
            // Everyone sharing the key waits, not just this caller.
            limit.limiter.pause(e.retry_after().unwrap_or(DEFAULT_PAUSE));
        }
        result
    }
}

impl From<Throttled> for clawbridge_core::retry::SendError {
    /// The local limiter, not the platform, said "wait": no server delay to honour.
    fn from(_: Throttled) -> Self {
        Self::RateLimited { retry_after: None }
    }
}
