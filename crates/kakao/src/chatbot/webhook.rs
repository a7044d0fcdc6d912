//! `POST /kakao/channel-webhook`: a user added or blocked the KakaoTalk Channel
//! (reference/kakao.md §5.6). No chat content arrives here.

use super::account::{Common, now_ms, secret_matches};
use super::ns;
use super::payload::ChannelEvent;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clawbridge_channel::Bridge;
use clawbridge_core::ids::mask;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Channel webhook bodies are small.
pub(super) const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;
/// The channel webhook must answer within 3 s; store work gets this long.
const WEBHOOK_BUDGET: Duration = Duration::from_millis(2_500);

/// Whether the channel webhook last reported this user as having blocked the channel.
pub(super) async fn is_blocked(bridge: &dyn Bridge, id_type: &str, id: &str) -> bool {
    match bridge.state_get(ns::CHANNEL_USERS, &format!("{id_type}:{id}")).await {
        Ok(Some(value)) => serde_json::from_str::<Value>(&value)
            .ok()
            .and_then(|v| v["event"].as_str().map(|e| e == "blocked"))
            .unwrap_or(false),
        _ => false,
    }
}

/// `POST /kakao/channel-webhook`: `added`/`blocked`.
pub(super) async fn channel_webhook(State(common): State<Arc<Common>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(admin_key) = common.config.admin_key.as_ref() else {
        tracing::warn!("channel webhook called but KAKAO_ADMIN_KEY is not set");
        return (StatusCode::UNAUTHORIZED, "KAKAO_ADMIN_KEY is not configured").into_response();
    };
    let given = headers.get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
    let expected = format!("KakaoAK {}", admin_key.expose_secret());
    if !secret_matches(given, &expected) {
        tracing::warn!("channel webhook with a missing or wrong Authorization header");
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    let Ok(event) = serde_json::from_slice::<ChannelEvent>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed channel webhook body").into_response();
    };
    if event.id.is_empty() || event.event.is_empty() {
        return (StatusCode::BAD_REQUEST, "channel webhook body without event or id").into_response();
    }
    let Some(bridge) = common.bridge.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response();
    };
    let resource = headers.get("x-kakao-resource-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match tokio::time::timeout(WEBHOOK_BUDGET, record_channel_event(&*bridge, &event, resource.as_deref(), &body)).await
    {
        Ok(Ok(true)) => (StatusCode::OK, "ok").into_response(),
        Ok(Ok(false)) => (StatusCode::OK, "duplicate").into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot store a channel webhook event");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store too slow").into_response(),
    }
}

/// Stores the event (idempotent), then remembers the resource id; `false` for a redelivery.
async fn record_channel_event(
    bridge: &dyn Bridge,
    event: &ChannelEvent,
    resource: Option<&str>,
    body: &[u8],
) -> Result<bool, String> {
    if let Some(rid) = resource
        && bridge.state_get("kakao.channel-webhook-seen", rid).await.map_err(|e| e.0)?.is_some()
    {
        metrics::counter!("clawbridge_kakao_channel_events_total", "event" => "duplicate").increment(1);
        return Ok(false);
    }
    let now = now_ms();
    let user_key = format!("{}:{}", event.id_type, event.id);
    let updated_at = event.updated_at.as_ref().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
    let state = json!({"event": event.event, "updated_at": updated_at, "channel_public_id": event.channel_public_id,
        "received_at": now});
    // An older event delivered late must not overwrite a newer one.
    let newer_exists = match bridge.state_get(ns::CHANNEL_USERS, &user_key).await.map_err(|e| e.0)? {
        Some(old) => serde_json::from_str::<Value>(&old)
            .ok()
            .and_then(|o| o["updated_at"].as_str().map(str::to_owned))
            .zip(updated_at.clone())
            .is_some_and(|(old, new)| old > new),
        None => false,
    };
    if !newer_exists {
        bridge.state_put(ns::CHANNEL_USERS, &user_key, &state.to_string(), None, false).await.map_err(|e| e.0)?;
    }
    let log_key = format!("{now:013}-{}", resource.unwrap_or("-"));
    let mut logged: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(obj) = logged.as_object_mut() {
        obj.insert("id".to_owned(), Value::String(mask(&event.id)));
        obj.insert("received_at".to_owned(), json!(now));
    }
    bridge
        .state_put(ns::CHANNEL_EVENTS, &log_key, &logged.to_string(), Some(30 * 24 * 3_600_000), false)
        .await
        .map_err(|e| e.0)?;
    if let Some(rid) = resource {
        bridge
            .state_put("kakao.channel-webhook-seen", rid, "1", Some(30 * 24 * 3_600_000), false)
            .await
            .map_err(|e| e.0)?;
    }
    let kind =
        if event.event == "added" || event.event == "blocked" { event.event.clone() } else { "other".to_owned() };
    metrics::counter!("clawbridge_kakao_channel_events_total", "event" => kind).increment(1);
    tracing::info!(event = %event.event, user = %mask(&event.id), "KakaoTalk channel event");
    Ok(true)
}
