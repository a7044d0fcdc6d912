//! `POST /kakao/channel-webhook`: a user added or blocked the KakaoTalk Channel
//! (reference/kakao.md §5.6). No chat content arrives here.

use super::auth::secret_matches;
use super::bot::Shared;
use super::now_ms;
use super::payload::ChannelEvent;
use super::state::{CHANNEL_EVENTS, CHANNEL_EVENTS_TTL, CHANNEL_USERS, ChannelEventRecord, ChannelUser, WEBHOOK_SEEN};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clawbridge_channel::Bridge;
use clawbridge_core::ids::mask;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// Channel webhook bodies are small.
pub(super) const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;
/// The channel webhook must answer within 3 s; store work gets this long.
const WEBHOOK_BUDGET: Duration = Duration::from_millis(2_500);

/// `POST /kakao/channel-webhook`: `added`/`blocked`.
pub(super) async fn channel_webhook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(admin_key) = shared.config.admin_key.as_ref() else {
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
    let bridge = shared.bridge();
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
    let store = |e: clawbridge_channel::BridgeError| e.0;
    if let Some(rid) = resource
        && WEBHOOK_SEEN.get(bridge, rid).await.map_err(store)?.is_some()
    {
        metrics::counter!("clawbridge_kakao_channel_events_total", "event" => "duplicate").increment(1);
        return Ok(false);
    }
    let now = now_ms();
    let user_key = format!("{}:{}", event.id_type, event.id);
    let updated_at = event.updated_at.as_ref().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
    let user = ChannelUser {
        event: event.event.clone(),
        updated_at: updated_at.clone(),
        channel_public_id: event.channel_public_id.clone(),
        received_at: now,
    };
    // An older event delivered late must not overwrite a newer one.
    let newer_exists = CHANNEL_USERS
        .get(bridge, &user_key)
        .await
        .map_err(store)?
        .and_then(|old| old.updated_at)
        .zip(updated_at)
        .is_some_and(|(old, new)| old > new);
    if !newer_exists {
        CHANNEL_USERS.put(bridge, &user_key, &user, None).await.map_err(store)?;
    }
    let log_key = format!("{now:013}-{}", resource.unwrap_or("-"));
    let mut logged: ChannelEventRecord = serde_json::from_slice(body).unwrap_or_default();
    logged.id = Some(mask(&event.id));
    logged.received_at = Some(now);
    CHANNEL_EVENTS.put(bridge, &log_key, &logged, Some(CHANNEL_EVENTS_TTL)).await.map_err(store)?;
    if let Some(rid) = resource {
        WEBHOOK_SEEN.put(bridge, rid, &1, Some(CHANNEL_EVENTS_TTL)).await.map_err(store)?;
    }
    let kind =
        if event.event == "added" || event.event == "blocked" { event.event.clone() } else { "other".to_owned() };
    metrics::counter!("clawbridge_kakao_channel_events_total", "event" => kind).increment(1);
    tracing::info!(event = %event.event, user = %mask(&event.id), "KakaoTalk channel event");
    Ok(true)
}
