//! The webhook: `GET|POST /webhook` and `/whatsapp/webhook` (reference §6).
//!
//! POST: the raw body (≤ 1 MiB, else 413) is verified before parsing — `X-Webhook-Signature`
//! (hex HMAC-SHA256, optional `sha256=`) or `X-Hub-Signature-256` — in constant time (401 on
//! mismatch); bodies that are not a webhook payload get 400. A record that cannot be used (it
//! cannot be converted, names a phone number id this bridge does not serve, a status without an
//! id) becomes a dead letter with its reason and the rest of the delivery is stored; media is
//! fetched, messages are persisted through the bridge and statuses recorded, and only then 200
//! is answered.
//! Duplicates (same message id, or same `X-Idempotency-Key` for deliveries with media or
//! statuses) are acknowledged and not stored or counted twice. GET answers Meta's `hub.challenge` handshake (verify token compared in constant time).

use crate::client::KapsoClient;
use crate::inbound::{self, CHANNEL, Converted, PayloadError};
use crate::ingest;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clawbridge_channel::{Accepted, Bridge};
use clawbridge_core::{AccountId, ChannelId, EpochMs};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Largest accepted body (Kapso batches of 100 messages stay far below it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The paths served.
pub const PATHS: [&str; 2] = ["/webhook", "/whatsapp/webhook"];
/// How long `X-Idempotency-Key`s are remembered (Kapso retries within minutes).
const IDEMPOTENCY_TTL_MS: EpochMs = 24 * 60 * 60 * 1000;
/// Namespace of remembered `X-Idempotency-Key`s.
const IDEMPOTENCY_NAMESPACE: &str = "whatsapp.webhook-delivery";

/// One phone number the webhook delivers to.
#[derive(Clone, Debug)]
pub struct WebhookAccount {
    /// The account id.
    pub id: AccountId,
    /// Its Kapso phone number id (how payloads name it).
    pub phone_number_id: String,
    /// Its client (media downloads).
    pub client: KapsoClient,
}

/// What the webhook handlers share.
#[derive(Clone)]
pub struct WebhookState {
    /// Where messages and statuses go.
    pub bridge: Arc<dyn Bridge>,
    /// The configured numbers; the first one takes payloads that name none.
    pub accounts: Arc<Vec<WebhookAccount>>,
    /// HMAC key; `None` accepts unsigned deliveries (polling mode or an explicit override).
    pub secret: Option<SecretString>,
    /// Meta's `hub.verify_token`; `None` refuses the GET handshake.
    pub verify_token: Option<SecretString>,
    /// Time allowed for media downloads of one delivery (Kapso waits 10 s for the answer).
    pub media_budget: Duration,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState").field("accounts", &self.accounts).finish_non_exhaustive()
    }
}

/// The webhook routes.
pub fn router(state: WebhookState) -> axum::Router {
    let mut router = axum::Router::new();
    for path in PATHS {
        router = router.route(path, get(verify).post(receive));
    }
    // Shared, not cloned per request (the state holds two secrets, copied on every clone).
    router.with_state(Arc::new(state))
}

/// Meta's verification handshake.
async fn verify(State(state): State<Arc<WebhookState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mode_ok = query.get("hub.mode").map(String::as_str) == Some("subscribe");
    let token_ok = match (&state.verify_token, query.get("hub.verify_token")) {
        (Some(expected), Some(given)) => bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    match query.get("hub.challenge") {
        Some(challenge) if mode_ok && token_ok => {
            ([(axum::http::header::CONTENT_TYPE, "text/plain")], challenge.clone()).into_response()
        }
        _ => {
            metrics::counter!("clawbridge_whatsapp_webhook_requests_total", "result" => "verify_refused").increment(1);
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

fn reject(status: StatusCode, result: &'static str, message: String) -> Response {
    metrics::counter!("clawbridge_whatsapp_webhook_requests_total", "result" => result).increment(1);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(%message, "webhook delivery not stored; Kapso will retry");
    } else {
        tracing::warn!(%status, %message, "webhook delivery rejected");
    }
    (status, axum::Json(json!({"error": message}))).into_response()
}

async fn receive(State(state): State<Arc<WebhookState>>, request: Request) -> Response {
    // The request taken apart rather than extracted as `HeaderMap` + `Body` (that copies the headers).
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    if let Some(len) =
        headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > MAX_BODY_BYTES
    {
        return reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let too_large = is_length_limit(&e);
            return if too_large {
                reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("body larger than {MAX_BODY_BYTES} bytes"))
            } else {
                reject(StatusCode::BAD_REQUEST, "malformed", format!("cannot read the body: {e}"))
            };
        }
    };
    if let Some(secret) = &state.secret
        && !verify_signature(secret.expose_secret().as_bytes(), &bytes, &headers)
    {
        return reject(StatusCode::UNAUTHORIZED, "unauthorized", "invalid or missing signature".to_owned());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let batch = match inbound::parse_webhook(&bytes, header("x-webhook-event"), header("x-webhook-payload-version")) {
        Ok(batch) => batch,
        Err(e @ PayloadError::LegacyV1) => {
            tracing::error!("{e}");
            return reject(StatusCode::BAD_REQUEST, "legacy_v1", e.to_string());
        }
        Err(e) => return reject(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    };

    // A replayed delivery of text messages is stopped by the message-id dedup of the store at
    // no extra cost; the delivery key is checked (and kept) only where a replay would repeat
    // work: media downloads and status updates. That keeps text ingest at one store write.
    let replay_costs = !batch.statuses.is_empty() || batch.messages.iter().any(inbound::MessageRecord::has_media);
    let idempotency_key = header("x-idempotency-key").filter(|_| replay_costs).map(str::to_owned);
    if let Some(key) = &idempotency_key {
        match state.bridge.state_get(IDEMPOTENCY_NAMESPACE, key).await {
            Ok(Some(_)) => {
                metrics::counter!("clawbridge_whatsapp_webhook_requests_total", "result" => "duplicate").increment(1);
                return (StatusCode::OK, axum::Json(json!({"ok": true, "duplicate": true}))).into_response();
            }
            Ok(None) => {}
            Err(e) => return reject(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
        }
    }

    // A record that cannot be used becomes a dead letter with its reason; the rest of the
    // delivery is stored and acknowledged (refusing it all would lose every good record once
    // Kapso stops retrying, and a retry cannot make the bad one good).
    let inbound::WebhookBatch { messages, statuses, mut ignored, rejected } = batch;
    let mut dead: Vec<(Option<String>, Option<String>, String)> =
        rejected.into_iter().map(|r| (None, r.message_id, r.reason)).collect();
    let mut converted: Vec<(usize, Converted<'_>)> = Vec::with_capacity(messages.len());
    for record in messages {
        let message_id = record.message_id().map(str::to_owned);
        let Some(index) = state.account_index(record.phone_number_id()) else {
            let reason = format!(
                "phone number id {:?} is not served by this bridge (KAPSO_PHONE_NUMBER_ID)",
                record.phone_number_id().unwrap_or("")
            );
            dead.push((None, message_id, reason));
            ignored.push("unknown_phone_number_id".to_owned());
            continue;
        };
        match inbound::convert_record(record, &state.accounts[index].id) {
            Ok(c) => converted.push((index, c)),
            Err(e) => dead.push((Some(state.accounts[index].id.to_string()), message_id, e.to_string())),
        }
    }
    for (account, message_id, reason) in &dead {
        if let Err(e) =
            ingest::dead_letter(state.bridge.as_ref(), account.as_deref(), message_id.as_deref(), reason).await
        {
            return reject(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string());
        }
    }

    let deadline = tokio::time::Instant::now() + state.media_budget;
    let (mut new, mut duplicates) = (0usize, 0usize);
    for (index, mut item) in converted {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        ingest::fetch_media(&state.accounts[index].client, &mut item, budget).await;
        match ingest::accept(state.bridge.as_ref(), item).await {
            Ok(Accepted::New) => new += 1,
            Ok(Accepted::Duplicate) => duplicates += 1,
            Err(e) => return reject(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
        }
    }
    let channel = ChannelId::new(CHANNEL);
    for status in &statuses {
        let at = status.at.unwrap_or_else(clawbridge_core::clock::now_ms);
        if let Err(e) = state
            .bridge
            .delivery_status(&channel, &status.message_id, &status.status, status.error.as_deref(), at)
            .await
        {
            return reject(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string());
        }
        if status.status == "failed" {
            // Meta's numeric code (131047 = outside the 24 h window…), bounded to digits.
            let code = status
                .error
                .as_deref()
                .and_then(|e| e.split_whitespace().next())
                .filter(|c| (1..=7).contains(&c.len()) && c.chars().all(|ch| ch.is_ascii_digit()))
                .unwrap_or("unknown")
                .to_owned();
            metrics::counter!("clawbridge_whatsapp_delivery_failed_total", "code" => code).increment(1);
            tracing::warn!(
                message_id = %status.message_id,
                error = status.error.as_deref().unwrap_or("unknown"),
                "WhatsApp reports a sent message failed"
            );
        }
    }
    for event in &ignored {
        metrics::counter!("clawbridge_whatsapp_webhook_ignored_total", "event" => metric_label(event)).increment(1);
        tracing::debug!(event, "webhook event ignored");
    }
    if let Some(key) = &idempotency_key {
        // Best effort: message ids dedup anyway.
        let _ = state.bridge.state_put(IDEMPOTENCY_NAMESPACE, key, "1", Some(IDEMPOTENCY_TTL_MS), true).await;
    }
    let result = if new > 0 {
        "accepted"
    } else if duplicates > 0 {
        "duplicate"
    } else if statuses.is_empty() {
        "ignored"
    } else {
        "status"
    };
    metrics::counter!("clawbridge_whatsapp_webhook_requests_total", "result" => result).increment(1);
    let answer = Answer {
        accepted: new,
        duplicates,
        ignored: ignored.len(),
        statuses: statuses.len(),
        dead_letters: dead.len(),
    };
    ([(axum::http::header::CONTENT_TYPE, "application/json")], answer.to_json()).into_response()
}

/// The `200` answer's counts.
struct Answer {
    accepted: usize,
    duplicates: usize,
    ignored: usize,
    statuses: usize,
    dead_letters: usize,
}

impl Answer {
    /// `{"accepted":…,"dead_letters":…,"duplicates":…,"ignored":…,"ok":true,"statuses":…}`,
    /// written directly (five numbers do not need a serializer).
    fn to_json(&self) -> String {
        use std::fmt::Write as _;
        let mut json = String::with_capacity(80);
        let _ = write!(
            json,
            r#"{{"accepted":{},"dead_letters":{},"duplicates":{},"ignored":{},"ok":true,"statuses":{}}}"#,
            self.accepted, self.dead_letters, self.duplicates, self.ignored, self.statuses
        );
        json
    }
}

impl WebhookState {
    fn account_index(&self, phone_number_id: Option<&str>) -> Option<usize> {
        match phone_number_id {
            Some(id) => self.accounts.iter().position(|a| a.phone_number_id == id),
            None if self.accounts.is_empty() => None,
            None => Some(0),
        }
    }
}

/// Whether `headers` carry a valid HMAC-SHA256 of `body`: `X-Webhook-Signature` (hex, optional
/// `sha256=`) or `X-Hub-Signature-256` (`sha256=<hex>`), compared in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], headers: &HeaderMap) -> bool {
    ["x-webhook-signature", "x-hub-signature-256"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .any(|value| signature_matches(secret, body, value))
}

/// Checks one signature header value.
pub fn signature_matches(secret: &[u8], body: &[u8], value: &str) -> bool {
    let value = value.trim();
    let hex_part = value.strip_prefix("sha256=").unwrap_or(value);
    // Either case of hex digits; anything but 32 bytes cannot match.
    let mut given = [0u8; 32];
    if hex::decode_to_slice(hex_part, &mut given).is_err() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The hex HMAC-SHA256 Kapso puts in `X-Webhook-Signature` (tests, tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Event names are attacker-influenced in unsigned mode: bound the metric label set.
fn metric_label(event: &str) -> String {
    let known = event.len() <= 64
        && (event.starts_with("whatsapp.") || event.starts_with("workflow.") || event.starts_with("meta."))
        && event.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if known || event == "unknown_phone_number_id" { event.to_owned() } else { "other".to_owned() }
}

/// Whether reading the body stopped at the size limit (http-body-util's `LengthLimitError`,
/// recognised by its message because its type lives in a crate this one does not depend on).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kapso_and_meta_test_vectors() {
        let body = br#"{"message":{"id":"wamid.TEST","timestamp":"1730092800","type":"text","text":{"body":"Hello"}},"phone_number_id":"123456789012345"}"#;
        assert_eq!(body.len(), 130);
        let expected = "476853d61fe7b5b27d0f0c47dc47aa48346f1e647f37bfb0b0a2b3a3bdd1de09";
        assert_eq!(sign(b"wh_sec_test", body), expected);
        assert!(signature_matches(b"wh_sec_test", body, expected));
        assert!(signature_matches(b"wh_sec_test", body, &format!("sha256={expected}")));
        assert!(signature_matches(b"wh_sec_test", body, &expected.to_ascii_uppercase()));
        assert!(!signature_matches(b"wh_sec_other", body, expected));
        assert!(signature_matches(
            b"secret",
            b"test",
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        ));
        assert!(!signature_matches(b"secret", b"test", "sha256=zz"));
        assert!(!signature_matches(b"secret", b"test", ""));
    }

    #[test]
    fn either_header_is_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", format!("sha256={}", sign(b"k", b"{}")).parse().unwrap());
        assert!(verify_signature(b"k", b"{}", &headers));
        headers.insert("x-webhook-signature", "00".parse().unwrap());
        assert!(verify_signature(b"k", b"{}", &headers));
        assert!(!verify_signature(b"k", b"{}", &HeaderMap::new()));
    }

    #[test]
    fn the_answer_is_the_json_it_always_was() {
        let answer = Answer { accepted: 2, duplicates: 1, ignored: 0, statuses: 3, dead_letters: 1 };
        let parsed: serde_json::Value = serde_json::from_str(&answer.to_json()).unwrap();
        assert_eq!(
            parsed,
            json!({"ok": true, "accepted": 2, "duplicates": 1, "statuses": 3, "ignored": 0, "dead_letters": 1})
        );
    }

    #[test]
    fn metric_labels_are_bounded() {
        assert_eq!(metric_label("whatsapp.conversation.created"), "whatsapp.conversation.created");
        assert_eq!(metric_label("random\u{0}junk"), "other");
        assert_eq!(metric_label(&"whatsapp.x".repeat(20)), "other");
    }

    proptest::proptest! {
        #[test]
        fn only_the_right_signature_passes(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                                           flip in 0usize..64) {
            let good = sign(b"key", &body);
            proptest::prop_assert!(signature_matches(b"key", &body, &good));
            let mut bad: Vec<char> = good.chars().collect();
            bad[flip] = if bad[flip] == '0' { '1' } else { '0' };
            let bad: String = bad.into_iter().collect();
            proptest::prop_assert!(!signature_matches(b"key", &body, &bad));
        }
    }
}
