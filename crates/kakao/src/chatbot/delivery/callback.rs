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
    let claimed = Claim::Claimed.value(&body_hash);
    if !claims.claim(bridge, &message_id, &claimed, Some(CALLBACK_CLAIM_TTL)).await.map_err(store_error)? {
        let previous = claims.get(bridge, &message_id).await.map_err(store_error)?;
        match previous.as_deref().and_then(|v| Claim::of(v, &body_hash)) {
            // This very answer was POSTed before (a retried send): never POST twice.
            Some(Claim::Posted) => return Ok(receipt("callback", &message_id)),
            // An earlier attempt of this send stopped before its POST: this one goes on.
            Some(Claim::Claimed) => {}
            // An earlier attempt stopped during its POST: Kakao may have shown it, and a second
            // POST to a one-time URL cannot be made safely. The answer is kept for the next turn
            // (shown twice at worst, never lost), and the outcome recorded as unknown.
            Some(Claim::Posting) => {
                record(bot, bridge, &message_id, peer, "UNKNOWN", "an earlier POST of this answer was interrupted")
                    .await;
                metrics::counter!("clawbridge_kakao_callback_total", "status" => "UNKNOWN").increment(1);
                return next_turn::keep(bot, bridge, out, pages).await;
            }
            // The callback was used by another message of this turn: keep this one for later.
            None => return next_turn::keep(bot, bridge, out, pages).await,
        }
    }
    // Older answers of this user come first when they fit; if the continuation cannot be stored,
    // the older answer goes back where it was and the claim stays "claimed" for the retry.
    let (first, rest, behind, taken) = next_turn::with_pending_first_keyed(bot, bridge, peer, pages).await;
    if let Err(e) = next_turn::store_more(bot, bridge, peer, &rest).await {
        if let Err(lost) = next_turn::put_back(bot, bridge, peer, taken).await {
            tracing::error!(peer = %mask(peer), error = %lost, "a kept answer could not be put back");
        }
        return Err(e);
    }
    // From here a retry must not POST again: the mark says the POST may have happened.
    let posting = Claim::Posting.value(&body_hash);
    if let Err(e) = claims.put(bridge, &message_id, &posting, Some(CALLBACK_CLAIM_TTL)).await {
        if let Err(lost) = next_turn::put_back(bot, bridge, peer, taken).await {
            tracing::error!(peer = %mask(peer), error = %lost, "a kept answer could not be put back");
        }
        return Err(store_error(e));
    }
    let (status, detail) = match post(&bot.shared.http, url, &first).await {
        Ok(outcome) => outcome,
        Err(e) => ("ERROR".to_owned(), e),
    };
    metrics::counter!("clawbridge_kakao_callback_total", "status" => status.clone()).increment(1);
    // The POST was made, whatever came of it: the one-time URL is used. Best effort: a lost mark leaves
    // "posting", which a retry also never POSTs again.
    let posted = Claim::Posted.value(&body_hash);
    if let Err(e) = claims.put(bridge, &message_id, &posted, Some(CALLBACK_CLAIM_TTL)).await {
        tracing::warn!(error = %e, "cannot mark the callback as posted");
    }
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

/// Where a turn's one-time callback claim stands, stored as `<state>:<body hash>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Taken by a send of this answer; nothing has been POSTed yet.
    Claimed,
    /// The POST was about to start or under way: it may have reached Kakao.
    Posting,
    /// Kakao answered the POST.
    Posted,
}

impl Claim {
    fn value(self, body_hash: &str) -> String {
        let state = match self {
            Self::Claimed => "claimed",
            Self::Posting => "posting",
            Self::Posted => "posted",
        };
        format!("{state}:{body_hash}")
    }

    /// The state of a stored claim when it is this answer's (`body_hash`); `None` when another
    /// answer holds it. A bare hash (written by earlier versions, once POSTed) counts as posted.
    fn of(stored: &str, body_hash: &str) -> Option<Self> {
        let (state, hash) = stored.split_once(':').unwrap_or(("posted", stored));
        if hash != body_hash {
            return None;
        }
        match state {
            "claimed" => Some(Self::Claimed),
            "posting" => Some(Self::Posting),
            _ => Some(Self::Posted),
        }
    }
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
    fn a_claim_says_how_far_its_answer_got() {
        for state in [Claim::Claimed, Claim::Posting, Claim::Posted] {
            assert_eq!(Claim::of(&state.value("ab12"), "ab12"), Some(state));
            assert_eq!(Claim::of(&state.value("ab12"), "cd34"), None, "another answer's claim");
        }
        assert_eq!(Claim::of("ab12", "ab12"), Some(Claim::Posted), "a claim of an earlier version");
    }

    #[test]
    fn the_callback_window_is_55_seconds_from_the_request() {
        assert!(window_open(1_000, 1_000 + CALLBACK_WINDOW_MS));
        assert!(!window_open(1_000, 1_001 + CALLBACK_WINDOW_MS));
    }
}
