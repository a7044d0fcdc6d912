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
    let store = match state.store.check_writable(now_ms()).await {
        Ok(()) => json!({"state": "ok", "backend": state.store.backend()}),
        Err(e) => {
            json!({"state": "error", "backend": state.store.backend(), "error": e.to_string()})
        }
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
    if let Ok(stats) = state.store.queue_stats().await {
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
