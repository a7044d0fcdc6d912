//! The retry layer against a local axum fake, in tokio's paused time (waits take no real time).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use clawbridge_core::clock::ManualClock;
use clawbridge_core::retry::{RetryClass, RetryPolicy, SendError};
use clawbridge_http::{Classify, Layers, Limiter, Request, retry, retry_after};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// 2015-10-21T07:28:00Z, the manual clock's time.
const NOW_MS: i64 = 1_445_412_480_000;

/// Answers the scripted `(status, Retry-After)` pairs in order, then 200 "ok".
struct Fake {
    url: String,
    hits: Arc<AtomicU32>,
}

async fn fake(script: Vec<(u16, Option<&'static str>)>) -> Fake {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/call",
        axum::routing::post(move || {
            let script = script.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                let Some((status, after)) = script.lock().unwrap().pop_front() else {
                    return (StatusCode::OK, headers, "ok");
                };
                if let Some(after) = after {
                    headers.insert("retry-after", HeaderValue::from_static(after));
                }
                (StatusCode::from_u16(status).unwrap(), headers, "scripted")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/call", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { url, hits }
}

/// A platform's thin request function: one POST, its answer classified.
async fn attempt(http: &reqwest::Client, layers: &Layers, url: &str) -> Result<String, SendError> {
    let response = http.post(url).send().await.map_err(|e| SendError::transient(e.to_string()))?;
    let status = response.status().as_u16();
    let after = retry_after(response.headers(), layers.clock());
    match status {
        200 => Ok(response.text().await.unwrap()),
        429 => Err(SendError::RateLimited { retry_after: after }),
        401 => Err(SendError::AuthExpired),
        500..=599 => Err(SendError::Transient { reason: format!("HTTP {status}"), retry_after: after }),
        _ => Err(SendError::Permanent(format!("HTTP {status}"))),
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy { max_attempts: 4, initial_delay_ms: 100, max_delay_ms: 1_000, ..RetryPolicy::IN_PROCESS }
}

fn layers() -> Layers {
    Layers::new("test").with_retry(policy()).with_trace().with_clock(Arc::new(ManualClock::new(NOW_MS)))
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_seconds_waits_that_long_then_succeeds() {
    let fake = fake(vec![(429, Some("7"))]).await;
    let (http, layers) = (reqwest::Client::new(), layers());
    let started = Instant::now();
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer.unwrap(), "ok");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(7), "waited {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_429_with_an_http_date_waits_until_then() {
    // Five seconds after the manual clock's now.
    let fake = fake(vec![(429, Some("Wed, 21 Oct 2015 07:28:05 GMT")), (503, None)]).await;
    let (http, layers) = (reqwest::Client::new(), layers());
    let started = Instant::now();
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer.unwrap(), "ok");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3, "the 429, the 503, then the 200");
    assert!(started.elapsed() >= Duration::from_secs(5), "waited {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_transient_ones_give_up_with_the_policy() {
    let fake = fake(vec![(400, None), (502, None), (502, None), (502, None), (502, None)]).await;
    let (http, layers) = (reqwest::Client::new(), layers());
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert!(matches!(answer, Err(SendError::Permanent(_))), "{answer:?}");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1);
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert!(matches!(answer, Err(SendError::Transient { .. })), "{answer:?}");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 5, "maxAttempts = 4");
}

#[tokio::test(start_paused = true)]
async fn auth_expired_is_surfaced_for_the_caller_to_refresh() {
    let fake = fake(vec![(401, None)]).await;
    let (http, layers) = (reqwest::Client::new(), layers());
    let answer = layers.call(Request::idempotent("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer, Err(SendError::AuthExpired));
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1, "not retried by the layer");
    // The caller refreshes its token and calls again.
    let answer = layers.call(Request::idempotent("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer.unwrap(), "ok");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_bound_is_not_waited_for_in_process() {
    let fake = fake(vec![(429, Some("3600"))]).await;
    let (http, layers) = (reqwest::Client::new(), layers());
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer, Err(SendError::RateLimited { retry_after: Some(Duration::from_secs(3600)) }));
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_everyone_behind_the_limiter() {
    let fake = fake(vec![(429, Some("30"))]).await;
    let http = reqwest::Client::new();
    let limiter = Arc::new(Limiter::new(1000));
    // No retry layer: the outbox retries sends; the limiter still learns from the 429.
    let layers = Layers::new("test").with_rate_limit(limiter, Duration::from_secs(45));
    let answer = layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await;
    assert_eq!(answer, Err(SendError::RateLimited { retry_after: Some(Duration::from_secs(30)) }));
    let started = Instant::now();
    assert_eq!(layers.call(Request::once("call"), || attempt(&http, &layers, &fake.url)).await.unwrap(), "ok");
    assert!(started.elapsed() >= Duration::from_secs(30), "waited {:?}", started.elapsed());

    // A pause longer than the layer's longest wait fails the call as rate limited, unsent.
    let limiter = Arc::new(Limiter::new(1000));
    limiter.pause(Duration::from_secs(60));
    let short = Layers::new("test").with_rate_limit(limiter, Duration::from_secs(1));
    let hits = fake.hits.load(Ordering::SeqCst);
    let answer = short.call(Request::once("call"), || attempt(&http, &short, &fake.url)).await;
    assert_eq!(answer, Err(SendError::RateLimited { retry_after: None }));
    assert_eq!(fake.hits.load(Ordering::SeqCst), hits);
}

/// An error that knows whether the request may have gone out.
#[derive(Debug)]
struct Failure {
    class: RetryClass,
    maybe_delivered: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (maybe delivered: {})", self.class.as_str(), self.maybe_delivered)
    }
}

impl Classify for Failure {
    fn retry_class(&self) -> RetryClass {
        self.class
    }
    fn maybe_delivered(&self) -> bool {
        self.maybe_delivered
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_that_may_have_gone_out_is_not_repeated_but_a_read_is() {
    for (idempotent, expected) in [(false, 1), (true, 4)] {
        let calls = AtomicU32::new(0);
        let result: Result<(), Failure> = retry(policy(), idempotent, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure { class: RetryClass::Transient, maybe_delivered: true }) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), expected, "idempotent: {idempotent}");
    }
    let calls = AtomicU32::new(0);
    let result: Result<u32, Failure> = retry(policy(), false, || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 { Err(Failure { class: RetryClass::Transient, maybe_delivered: false }) } else { Ok(n) }
        }
    })
    .await;
    assert_eq!(result.unwrap(), 1, "an error answer cannot have delivered: retried");
}
