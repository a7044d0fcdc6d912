//! The one HTTP listener: health, readiness, metrics, and the channels' webhook routes.

use crate::util::now_ms;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clawbridge_channel::AccountStatus;
use clawbridge_gateway::{ConnectionState, GatewayClient};
use clawbridge_store::SharedStore;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// Largest request body any route accepts unless it sets its own limit.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What the health routes look at.
#[derive(Clone)]
pub struct HealthState {
    /// The store (`/readyz` writes a heartbeat).
    pub store: SharedStore,
    /// The gateway connection state.
    pub gateway: GatewayClient,
    /// Each account's status, by `channel/account`.
    pub accounts: Arc<Vec<(String, watch::Receiver<AccountStatus>)>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The agent tools' status, when any tool is published (not part of readiness: the bridge
    /// serves its channels without them).
    pub tools: Option<watch::Receiver<crate::tools::ToolsStatus>>,
    /// The store checks of the last second, shared by every request (see [`Recent`]).
    pub checks: Arc<HealthChecks>,
}

/// How long a store check of `/readyz` or `/metrics` is reused. A flood of health requests on
/// the public listener then costs the writer one small transaction a second, not one each.
pub const HEALTH_CHECK_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// The store checks the health routes reuse.
#[derive(Debug, Default)]
pub struct HealthChecks {
    /// `/readyz`'s write check: `Err` holds the error's text.
    pub writable: Recent<Result<(), String>>,
    /// `/metrics`' queue depths (`None` when the count failed).
    pub stats: Recent<Option<clawbridge_store::QueueStats>>,
}

/// A value computed at most once per [`HEALTH_CHECK_REUSE`]; concurrent callers wait for the
/// one computation in progress instead of each starting their own.
#[derive(Debug)]
pub struct Recent<T> {
    last: tokio::sync::Mutex<Option<(std::time::Instant, T)>>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self { last: tokio::sync::Mutex::new(None) }
    }
}

impl<T: Clone> Recent<T> {
    /// The value computed less than `reuse` ago, else `compute`'s new one.
    pub async fn get<F: std::future::Future<Output = T>>(
        &self,
        reuse: std::time::Duration,
        compute: impl FnOnce() -> F,
    ) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < reuse
        {
            return value.clone();
        }
        let value = compute().await;
        *last = Some((std::time::Instant::now(), value.clone()));
        value
    }
}

/// Routes: `/health` (compat "ok"), `/healthz` (alive), `/readyz` (gateway connected and store
/// writable), `/metrics` (Prometheus).
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves `app` on the public `listener` until `stop`, then lets open connections finish their
/// request. Unlike `axum::serve`, a client is held to [`ListenerLimits`](crate::config::ListenerLimits):
/// its headers within `header_read`, its whole request within `request` (408), and at most
/// `max_connections` are served at once (a further client waits in the backlog rather than
/// costing a file descriptor and a task), so slow or stalled clients cannot exhaust the daemon.
pub async fn serve_public(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::config::ListenerLimits,
    stop: tokio_util::sync::CancellationToken,
) {
    let app = app
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.request))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// The histogram of every request the listener answered, labelled `route` (the route's pattern,
/// e.g. `/webhook`, never a path with ids in it), `method` and `status` (the code's class, `2xx`…):
/// webhook handling time and the webhook 5xx rate come from it. `/metrics` itself is not counted.
pub const SERVED_SECONDS: &str = "clawbridge_http_served_seconds";

/// Times each routed request into [`SERVED_SECONDS`]; added with `route_layer`, so only requests
/// that matched a route are counted and a scanner's random paths add no label values.
pub async fn observe(
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = route.as_str();
    if route != "/metrics" {
        let status = match response.status().as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics::histogram!(SERVED_SECONDS, "route" => route.to_owned(), "method" => method, "status" => status)
            .record(started.elapsed().as_secs_f64());
    }
    response
}

/// The gateway state as JSON (shared by `/readyz` and `clawbridge status`).
pub fn gateway_json(state: &ConnectionState) -> serde_json::Value {
    match state {
        ConnectionState::Connected { server_version, protocol } => {
            json!({"state": "connected", "server_version": server_version, "protocol": protocol})
        }
        ConnectionState::Connecting => json!({"state": "connecting"}),
        ConnectionState::Backoff { attempt, retry_in, last_error } => json!({
            "state": "reconnecting", "attempt": attempt, "retry_in_ms": retry_in.as_millis() as u64, "last_error": last_error
        }),
        ConnectionState::Fatal(fatal) => json!({"state": "fatal", "error": fatal.to_string()}),
        ConnectionState::Stopped => json!({"state": "stopped"}),
    }
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let gateway_state = state.gateway.state().borrow().clone();
    let gateway_ok = matches!(gateway_state, ConnectionState::Connected { .. });
    let writable = state
        .checks
        .writable
        .get(HEALTH_CHECK_REUSE, || async { state.store.check_writable(now_ms()).await.map_err(|e| e.to_string()) })
        .await;
    let store = match writable {
        Ok(()) => json!({"state": "ok", "backend": state.store.backend()}),
        Err(e) => json!({"state": "error", "backend": state.store.backend(), "error": e}),
    };
    let store_ok = store["state"] == "ok";
    let accounts: serde_json::Map<String, serde_json::Value> = state
        .accounts
        .iter()
        .map(|(name, rx)| {
            let value = match &*rx.borrow() {
                AccountStatus::Starting => json!({"state": "starting"}),
                AccountStatus::Running => json!({"state": "running"}),
                AccountStatus::Degraded(why) => json!({"state": "degraded", "reason": why}),
                AccountStatus::Failed(why) => json!({"state": "failed", "reason": why}),
                AccountStatus::Stopped => json!({"state": "stopped"}),
            };
            (name.clone(), value)
        })
        .collect();
    let ready = gateway_ok && store_ok;
    let tools = state.tools.as_ref().map(|t| t.borrow().to_json());
    let body = json!({"ready": ready, "gateway": gateway_json(&gateway_state), "store": store, "accounts": accounts,
                      "tools": tools});
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<HealthState>) -> Response {
    let stats = state.checks.stats.get(HEALTH_CHECK_REUSE, || async { state.store.queue_stats().await.ok() }).await;
    if let Some(stats) = stats {
        for (queue, label, value) in [
            ("inbox", "pending", stats.inbox_pending),
            ("inbox", "processing", stats.inbox_processing),
            ("inbox", "failed", stats.inbox_failed),
            ("outbox", "queued", stats.outbox_queued),
            ("outbox", "sending", stats.outbox_sending),
            ("outbox", "retry", stats.outbox_retry),
            ("outbox", "dead", stats.outbox_dead),
        ] {
            metrics::gauge!(format!("clawbridge_{queue}_depth"), "state" => label).set(value as f64);
        }
        metrics::gauge!("clawbridge_delivery_failed").set(stats.delivery_failed as f64);
    }
    let connected = matches!(*state.gateway.state().borrow(), ConnectionState::Connected { .. });
    metrics::gauge!("clawbridge_gateway_connected").set(if connected { 1.0 } else { 0.0 });
    state.metrics.run_upkeep();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A burst of health requests runs the store check once, not once per request.
    #[tokio::test]
    async fn a_burst_of_checks_reaches_the_store_once() {
        let recent: Arc<Recent<u32>> = Arc::default();
        let computed = Arc::new(AtomicUsize::new(0));
        let calls = (0..50).map(|_| {
            let (recent, computed) = (recent.clone(), computed.clone());
            tokio::spawn(async move {
                recent
                    .get(std::time::Duration::from_secs(3600), || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        7
                    })
                    .await
            })
        });
        for call in calls {
            assert_eq!(call.await.unwrap(), 7);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        // Nothing is reused beyond the reuse time (zero here).
        let again = recent.get(std::time::Duration::ZERO, || async { 8 }).await;
        assert_eq!(again, 8);
    }
}
