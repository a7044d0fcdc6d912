//! The AI-chatbot callback: the handler answered `useCallback:true`, and the answer is POSTed to
//! the turn's one-time `callbackUrl` — once, whichever replica or retry gets there first.

use super::{Outgoing, next_turn, receipt, store_error};
use crate::chatbot::bot::Bot;
use crate::chatbot::now_ms;
use crate::chatbot::response::SkillResponse;
use crate::chatbot::state::{CALLBACK_CLAIM_TTL, CALLBACKS, CALLBACKS_TTL, CallbackRecord};
use clawbridge_channel::Bridge;
use clawbridge_core::ids::mask;
use clawbridge_core::{EpochMs, Receipt, SendError};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Kakao accepts a callback POST for about a minute; this bridge stops trying after 55 s.
pub const CALLBACK_WINDOW_MS: EpochMs = 55_000;
/// A callback outcome's message is kept to this many characters.
const DETAIL_CHARS: usize = 300;

/// Whether a callback of a turn received at `received_at` may still be POSTed at `now`.
fn window_open(received_at: EpochMs, now: EpochMs) -> bool {
    now <= received_at.saturating_add(CALLBACK_WINDOW_MS)
}

/// POSTs the answer to the turn's callback URL, once (claimed in the store, so a retry or another
/// replica never POSTs twice), and records the outcome. A late, refused or failed callback
/// leaves the answer for the next turn.
pub(super) async fn deliver(
    bot: &Bot,
    bridge: &dyn Bridge,
    out: &Outgoing,
    url: &str,
    received_at: EpochMs,
    pages: Vec<SkillResponse>,
) -> Result<Receipt, SendError> {
    let message_id = out.message_id.clone().unwrap_or_default();
    let peer = &out.peer;
    if !window_open(received_at, now_ms()) {
        record(bot, bridge, &message_id, peer, "EXPIRED", "the answer came after the callback window").await;
        return next_turn::keep(bot, bridge, out, pages).await;
    }
    let body_hash = hex::encode(Sha256::digest(serde_json::to_vec(&pages).unwrap_or_default()));
    let claims = &bot.spaces.callback_claim;
    if !claims.claim(bridge, &message_id, &body_hash, Some(CALLBACK_CLAIM_TTL)).await.map_err(store_error)? {
        let previous = claims.get(bridge, &message_id).await.map_err(store_error)?;
        if previous.as_deref() == Some(body_hash.as_str()) {
            // This very answer was POSTed before (a retried send): never POST twice.
            return Ok(receipt("callback", &message_id));
        }
        // The callback was used by another message of this turn: keep this one for later.
        return next_turn::keep(bot, bridge, out, pages).await;
    }
    // Older answers of this user come first when they fit.
    let (first, rest, behind) = next_turn::with_pending_first(bot, bridge, peer, pages).await;
    next_turn::store_more(bot, bridge, peer, &rest).await?;
    let (status, detail) = match post(&bot.shared.http, url, &first).await {
        Ok(outcome) => outcome,
        Err(e) => ("ERROR".to_owned(), e),
    };
    metrics::counter!("clawbridge_kakao_callback_total", "status" => status.clone()).increment(1);
    record(bot, bridge, &message_id, peer, &status, &detail).await;
    let receipt = if status == "SUCCESS" {
        tracing::info!(peer = %mask(peer), "answer delivered through the Kakao callback");
        metrics::counter!("clawbridge_kakao_replies_total", "via" => "callback").increment(1);
        receipt("callback", &message_id)
    } else {
        tracing::warn!(peer = %mask(peer), status, detail, "Kakao callback failed; the answer waits for the user's next message");
        let mut pages = vec![first];
        pages.extend(rest);
        next_turn::keep(bot, bridge, out, pages).await?
    };
    // The answer that did not fit behind an older one is kept after it, in order.
    if let Some(behind) = behind {
        next_turn::stash(bot, bridge, peer, &message_id, &behind).await?;
    }
    Ok(receipt)
}

/// POSTs `response`; returns Kakao's status (`SUCCESS`, `FAIL`…) and message.
async fn post(http: &reqwest::Client, url: &str, response: &SkillResponse) -> Result<(String, String), String> {
    let reply = http.post(url).json(response).send().await.map_err(|e| e.without_url().to_string())?;
    let http_status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    let message = body.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
    let status = match body.get("status").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None if http_status.is_success() => "SUCCESS".to_owned(),
        None => "FAIL".to_owned(),
    };
    if !http_status.is_success() && status == "SUCCESS" {
        return Ok(("FAIL".to_owned(), format!("HTTP {http_status} {message}")));
    }
    Ok((status, message))
}

/// Records a callback's outcome for `clawbridge status` (best effort).
async fn record(bot: &Bot, bridge: &dyn Bridge, message_id: &str, peer: &str, status: &str, detail: &str) {
    let record = CallbackRecord {
        account: bot.settings.account.clone(),
        peer: mask(peer),
        status: status.to_owned(),
        message: detail.chars().take(DETAIL_CHARS).collect(),
        at: now_ms(),
    };
    let key = format!("{}/{message_id}", bot.settings.account);
    if let Err(e) = CALLBACKS.put(bridge, &key, &record, Some(CALLBACKS_TTL)).await {
        tracing::warn!(error = %e, "cannot record the callback outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_window_is_55_seconds_from_the_request() {
        assert!(window_open(1_000, 1_000 + CALLBACK_WINDOW_MS));
        assert!(!window_open(1_000, 1_001 + CALLBACK_WINDOW_MS));
    }
}
