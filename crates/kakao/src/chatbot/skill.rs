//! `POST /kakao/skill`: one skill request is one turn. The handler authenticates it (`auth`),
//! answers the chatbot's own commands ("더 보기", "답변 보기") from the store, persists the
//! utterance and waits at the rendezvous until the sync deadline; then it answers inline, with
//! `useCallback:true`, or with "still working".

use super::CHANNEL;
use super::auth::{by_bot_id, by_secret};
use super::bot::{Bot, Shared};
use super::config::{MAX_SYNC_DEADLINE, host_allowed, host_of, is_loopback};
use super::delivery::{add_quick_reply, stash, store_more, take_own, take_pending, with_pending_first};
use super::extra::KakaoTurn;
use super::media::download_images;
use super::now_ms;
use super::payload::SkillPayload;
use super::rendezvous::{Awaited, Event, await_answer};
use super::response::{Output, QuickReply, SkillResponse};
use super::state::{StoredTurn, TURN_TTL};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clawbridge_channel::{Accepted, Bridge, BridgeError};
use clawbridge_core::ids::mask;
use clawbridge_core::policy::{AccessDecision, AccessPolicy};
use clawbridge_core::{EpochMs, InboundMessage, MessageKind};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// The answer of a bot whose DM policy refuses everyone (`disabled`).
pub(super) const DISABLED_TEXT: &str = "지금은 이 채널에서 AI 상담을 이용할 수 없어요.";
/// A request id longer than this is ignored (the message id is derived from the utterance then).
const MAX_REQUEST_ID: usize = 128;

/// What the skill route serves: every bot of the connector.
pub(super) struct SkillEndpoint {
    pub(super) shared: Arc<Shared>,
    pub(super) bots: Vec<Arc<Bot>>,
}

/// Whether the access policy drops every message of `peer` before it reaches the pipeline.
///
/// Asks the core policy the pipeline asks first ([`AccessPolicy::decide`] without an approval):
/// [`AccessDecision::Ignore`] does not depend on approvals, so the answer is final without the
/// pairing store, and the channel can say "not available" at once instead of storing a message
/// the pipeline would drop.
fn ignored_by_policy(policy: &AccessPolicy, peer: &str) -> bool {
    policy.decide(peer, false) == AccessDecision::Ignore
}

/// `POST /kakao/skill`.
pub(super) async fn skill(State(endpoint): State<Arc<SkillEndpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let reject = |status: StatusCode, result: &'static str, reason: &str| {
        metrics::counter!("clawbridge_kakao_skill_requests_total", "result" => result).increment(1);
        error_response(status, reason)
    };
    if body.len() > endpoint.shared.config.max_body_bytes {
        return reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body too large");
    }
    let given = headers.get("x-skill-secret").map(|v| v.as_bytes()).unwrap_or_default();
    // Compare with every bot's secret, then parse.
    let candidates = by_secret(given, &endpoint.bots);
    if candidates.is_empty() {
        tracing::warn!("Kakao skill request with a missing or wrong X-Skill-Secret");
        return reject(StatusCode::UNAUTHORIZED, "unauthorized", "wrong or missing X-Skill-Secret");
    }
    let payload = match SkillPayload::parse(&body) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::warn!(error = %e, "malformed Kakao skill request");
            return reject(StatusCode::BAD_REQUEST, "malformed", &e.to_string());
        }
    };
    let Some(bot) = by_bot_id(&candidates, payload.bot.id.as_deref().unwrap_or("")) else {
        tracing::warn!("Kakao skill request for another bot (bot.id does not match KAKAO_BOT_ID)");
        return reject(StatusCode::FORBIDDEN, "forbidden", "bot.id does not match");
    };
    if payload.peer().is_err() {
        return reject(StatusCode::BAD_REQUEST, "malformed", "no userRequest.user.id");
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_owned);
    turn(bot, payload, request_id, started).await
}

/// Without any id, the same words of a user within this long are taken for Kakao's retry of
/// the request (its skill timeout is 5 s), not a new message.
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

/// What the handler does after the utterance was looked at.
enum Prepared {
    /// Answer at once (a chatbot command, a repeated request already answered).
    Answer(SkillResponse, &'static str),
    /// Wait for the answer of turn `message_id` at the rendezvous.
    Wait { message_id: String, waiter: u64, rx: oneshot::Receiver<SkillResponse> },
}

/// One skill request, after authentication. `started` is the request's arrival.
async fn turn(bot: &Bot, payload: SkillPayload, request_id: Option<String>, started: Instant) -> Response {
    let deadline = tokio::time::Instant::from_std(started + bot.settings.sync_deadline);
    let received_at = now_ms() - started.elapsed().as_millis() as i64;
    let bridge = bot.bridge();
    let Ok(peer) = payload.peer().map(str::to_owned) else {
        return error_response(StatusCode::BAD_REQUEST, "no user key");
    };
    if ignored_by_policy(&bot.settings.access, &peer) {
        // No conversations at all: say so instead of "still working" (nothing is stored).
        return respond(SkillResponse::text(DISABLED_TEXT), "disabled", started);
    }
    let utterance = payload.user_request.utterance.trim().to_owned();
    let prepared = prepare(bot, &*bridge, &payload, &peer, &utterance, request_id, received_at, deadline);
    match tokio::time::timeout_at(deadline, prepared).await {
        Ok(Ok(Prepared::Answer(response, label))) => respond(response, label, started),
        Ok(Ok(Prepared::Wait { message_id, waiter, rx })) => {
            let awaited = await_answer(&bot.turns, &message_id, waiter, rx, deadline).await;
            let turn = Turn { bot, bridge: &*bridge, payload: &payload, peer: &peer, message_id: &message_id };
            turn.answer(awaited, received_at, started).await
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot accept a Kakao skill request");
            metrics::counter!("clawbridge_kakao_skill_requests_total", "result" => "error").increment(1);
            error_response(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(_) => {
            tracing::error!("the store did not accept the Kakao skill request before the deadline");
            metrics::counter!("clawbridge_kakao_skill_requests_total", "result" => "error").increment(1);
            error_response(StatusCode::SERVICE_UNAVAILABLE, "store too slow")
        }
    }
}

/// Answers the chatbot's commands, or persists the utterance and joins its turn.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    bot: &Bot,
    bridge: &dyn Bridge,
    payload: &SkillPayload,
    peer: &str,
    utterance: &str,
    request_id: Option<String>,
    received_at: EpochMs,
    deadline: tokio::time::Instant,
) -> Result<Prepared, String> {
    let store = |e: BridgeError| e.0;
    let spaces = &bot.spaces;
    // "더 보기": the next part of the last long answer, from session state; no agent run.
    if utterance == bot.settings.more_label
        && let Some(pages) = spaces.more.take(bridge, peer).await.map_err(store)?
        && let Some((first, rest)) = pages.split_first()
    {
        store_more(bot, bridge, peer, rest).await.map_err(|e| e.to_string())?;
        return Ok(Prepared::Answer(first.clone(), "more"));
    }
    // "답변 보기": an answer that was not ready; no agent run.
    if utterance == bot.settings.fetch_label {
        let response = match take_pending(bot, bridge, peer).await {
            Some(pending) => {
                let mut pages = pending.pages.into_iter();
                let first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
                let rest: Vec<SkillResponse> = pages.collect();
                store_more(bot, bridge, peer, &rest).await.map_err(|e| e.to_string())?;
                first
            }
            None => still_working(bot),
        };
        return Ok(Prepared::Answer(response, "fetch"));
    }

    let message_id = match (request_id, payload.user_request.callback_url.as_deref()) {
        (Some(id), _) => format!("rid:{id}"),
        // The one-time callback URL is the request's own id: a retry of the request carries the
        // same one, a user's genuine repeat ("네", "네") a new one.
        (None, Some(url)) => format!("cb:{}", hex::encode(&Sha256::digest(url.as_bytes())[..16])),
        (None, None) => {
            // No id at all: the same user and utterance within a few seconds is a Kakao retry
            // (the window is short so that a user's genuine repeat is not dropped).
            let user = payload.bot_user_key().unwrap_or(peer);
            let key = hex::encode(&Sha256::digest(format!("{user}\n{utterance}").as_bytes())[..16]);
            let fresh = format!("u:{key}:{received_at}");
            let window = bot.shared.config.dedup_window.min(REPEAT_WINDOW);
            if spaces.recent.claim(bridge, &key, &fresh, Some(window)).await.map_err(store)? {
                fresh
            } else {
                spaces.recent.get(bridge, &key).await.map_err(store)?.unwrap_or(fresh)
            }
        }
    };

    let media = download_images(&bot.shared.images, payload, deadline).await;
    let mut text = utterance.to_owned();
    let params = payload.plain_params();
    if !params.is_empty() {
        let lines: Vec<String> = params.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        text = format!("{text}\n[chatbot parameters] {}", lines.join(", "));
    }
    let mut msg = InboundMessage::text(CHANNEL, bot.settings.account.as_str(), peer, message_id.as_str(), text);
    msg.sent_at = Some(received_at);
    if !media.is_empty() {
        msg.kind = MessageKind::Image;
        msg.media = media;
    }
    let props = &payload.user_request.user.properties;
    msg.extra = KakaoTurn {
        received_at: Some(received_at),
        bot_user_key: payload.bot_user_key().map(str::to_owned),
        app_user_id: props.app_user_id.clone(),
        is_friend: props.is_friend,
        block: payload.user_request.block.name.clone().or_else(|| payload.intent.name.clone()),
        callback: payload.user_request.callback_url.is_some(),
    }
    .to_channel_data();
    // Join the turn before accepting: a fast answer must find the waiter.
    let (waiter, rx) = bot.turns.arrive(&message_id, peer);
    let leave = || bot.turns.apply(&message_id, Event::Deadline { waiter });
    match bridge.accept(msg).await {
        Ok(Accepted::New) => {
            tracing::info!(peer = %mask(peer), account = %bot.settings.account, "Kakao utterance accepted");
        }
        Ok(Accepted::Duplicate) => {
            metrics::counter!("clawbridge_kakao_skill_duplicates_total").increment(1);
            tracing::info!(peer = %mask(peer), "repeated Kakao skill request; no second agent run");
            // Answered already (the response to the first request got lost): show it again.
            if let Some(answer) = spaces.answer.get(bridge, &message_id).await.map_err(store)? {
                leave();
                return Ok(Prepared::Answer(answer, "repeat"));
            }
        }
        Err(e) => {
            leave();
            return Err(e.0);
        }
    }
    Ok(Prepared::Wait { message_id, waiter, rx })
}

/// A turn whose handler has finished waiting.
struct Turn<'a> {
    bot: &'a Bot,
    bridge: &'a dyn Bridge,
    payload: &'a SkillPayload,
    peer: &'a str,
    message_id: &'a str,
}

impl Turn<'_> {
    /// The response once the wait is over: the answer inline (older kept answers first), an
    /// answer another replica offered, `useCallback`, a kept answer, or "still working".
    async fn answer(&self, awaited: Awaited, received_at: EpochMs, started: Instant) -> Response {
        let Self { bot, bridge, payload, peer, message_id } = *self;
        let hard_cap = started + MAX_SYNC_DEADLINE;
        let others_wait = match awaited {
            Awaited::Answer(answer) => {
                let (shown, _, behind) = bounded(hard_cap, with_pending_first(bot, bridge, peer, vec![answer.clone()]))
                    .await
                    .unwrap_or((answer, Vec::new(), None));
                if let Some(behind) = behind {
                    let _ = bounded(hard_cap, stash(bot, bridge, peer, message_id, &behind)).await;
                }
                return respond(shown, "inline", started);
            }
            Awaited::NoAnswer { others_wait } => others_wait,
        };
        // An answer another replica offered for this turn.
        if let Some(Some(offered)) = bounded(hard_cap, take_own(bot, bridge, peer, message_id)).await
            && let Some((first, rest)) = offered.pages.split_first()
        {
            let _ = bounded(hard_cap, store_more(bot, bridge, peer, rest)).await;
            return respond(first.clone(), "inline", started);
        }
        // Too slow: the callback if this block has one, else "still working".
        let callback =
            payload.user_request.callback_url.as_deref().filter(|u| !others_wait && callback_allowed(bot, u));
        if let Some(url) = callback {
            bot.turns.apply(message_id, Event::CallbackPromised { url: url.to_owned(), received_at });
            let turn = StoredTurn { url: url.to_owned(), received_at };
            let stored = bounded(hard_cap, bot.spaces.turn.put(bridge, message_id, &turn, Some(TURN_TTL))).await;
            if !matches!(stored, Some(Ok(()))) {
                tracing::warn!("cannot store the callback turn; only this process can complete it");
            }
            return respond(SkillResponse::use_callback(&bot.settings.waiting_text), "callback", started);
        }
        if payload.user_request.callback_url.is_some() && !others_wait {
            tracing::warn!("callbackUrl host is not allowed (kakao.chatbot.callbackHosts); answering without callback");
        }
        match bounded(hard_cap, take_pending(bot, bridge, peer)).await.flatten() {
            Some(pending) => {
                let mut pages = pending.pages.into_iter();
                let mut first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
                let rest: Vec<SkillResponse> = pages.collect();
                let _ = bounded(hard_cap, store_more(bot, bridge, peer, &rest)).await;
                if rest.is_empty() {
                    add_quick_reply(&mut first, &bot.settings.fetch_label);
                }
                respond(first, "pending", started)
            }
            None => respond(still_working(bot), "still_working", started),
        }
    }
}

fn still_working(bot: &Bot) -> SkillResponse {
    let settings = &bot.settings;
    SkillResponse::new(
        vec![Output::text(&settings.still_working_text)],
        vec![QuickReply::message(&settings.fetch_label, &settings.fetch_label)],
    )
}

fn callback_allowed(bot: &Bot, url: &str) -> bool {
    let Some(host) = host_of(url) else { return false };
    let scheme_ok = url.starts_with("https://") || is_loopback(&host);
    scheme_ok && host_allowed(&host, &bot.shared.config.callback_hosts)
}

/// `work`, unless it is still running at `until` (Kakao's own timeout is near).
async fn bounded<T>(until: Instant, work: impl std::future::Future<Output = T>) -> Option<T> {
    let left = until.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, work).await.ok()
}

fn respond(response: SkillResponse, result: &'static str, started: Instant) -> Response {
    metrics::counter!("clawbridge_kakao_skill_requests_total", "result" => result).increment(1);
    metrics::histogram!("clawbridge_kakao_skill_response_seconds").record(started.elapsed().as_secs_f64());
    let response = if response.validate().is_ok() {
        response
    } else {
        tracing::error!("a rendered SkillResponse broke a Kakao limit; sending its text only");
        SkillResponse::text(&response.plain_text())
    };
    (StatusCode::OK, axum::Json(response)).into_response()
}

/// An error answer shaped as a SkillResponse, so that Kakao shows a sensible text if it shows one.
fn error_response(status: StatusCode, reason: &str) -> Response {
    let text = match status {
        StatusCode::BAD_REQUEST => "요청을 이해하지 못했어요. 다시 한 번 보내 주세요.",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "이 챗봇에 연결할 수 없어요.",
        StatusCode::PAYLOAD_TOO_LARGE => "요청이 너무 커요.",
        _ => "지금은 답변할 수 없어요. 잠시 후 다시 시도해 주세요.",
    };
    let mut body = serde_json::to_value(SkillResponse::text(text)).unwrap_or(Value::Null);
    body["error"] = Value::String(reason.to_owned());
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawbridge_core::policy::{AllowFrom, DmPolicy};

    #[test]
    fn only_a_policy_that_ignores_everyone_answers_before_storing() {
        let policy = |dm: DmPolicy, allow: &str| AccessPolicy::new(dm, AllowFrom::parse_list(allow)).unwrap();
        assert!(ignored_by_policy(&policy(DmPolicy::Disabled, ""), "pf-1"));
        assert!(ignored_by_policy(&policy(DmPolicy::Disabled, "pf-1"), "pf-1"), "disabled means nobody");
        assert!(!ignored_by_policy(&policy(DmPolicy::Pairing, ""), "pf-1"), "pairing is the pipeline's to decide");
        assert!(!ignored_by_policy(&policy(DmPolicy::Allowlist, ""), "pf-1"), "so is a refusal");
        assert!(!ignored_by_policy(&policy(DmPolicy::Open, "*"), "pf-1"));
    }
}
