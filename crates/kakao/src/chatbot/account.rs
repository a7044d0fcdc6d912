//! The chatbot connector, its bot accounts, the skill endpoint and the channel webhook.

use super::config::{BotSettings, ChatbotConfig, host_allowed, host_of, is_loopback};
use super::event_api::{EventApi, UserType};
use super::ns;
use super::payload::SkillPayload;
use super::render::{merge, render_answer};
use super::response::{Output, QuickReply, SkillResponse};
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use clawbridge_channel::{Accepted, Account, Bridge, Capabilities, Connector, RouteContext};
use clawbridge_core::ids::mask;
use clawbridge_core::policy::AccessPolicy;
use clawbridge_core::{
    AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, InboundOutcome, MediaKind, MediaRef, MessageKind,
    OutboundMessage, Receipt, SendError,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// The channel id.
pub const CHANNEL: &str = "kakao";
/// Kakao accepts a callback POST for about a minute; this bridge stops trying after 55 s.
pub const CALLBACK_WINDOW_MS: EpochMs = 55_000;
/// Answers kept for the user's next utterance expire after a week.
const PENDING_TTL_MS: EpochMs = 7 * 24 * 3_600_000;
/// "더 보기" continuations expire after a day.
const MORE_TTL_MS: EpochMs = 24 * 3_600_000;
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer of a bot whose DM policy is `disabled`.
const DISABLED_TEXT: &str = "지금은 이 채널에서 AI 상담을 이용할 수 없어요.";
/// The answer to a sender whose pairing code is still waiting for the owner's approval.
const PAIRING_PENDING_TEXT: &str = "채널 관리자의 승인을 기다리고 있어요. 받으신 페어링 코드를 관리자에게 알려 주세요.";
/// The answer when the agent decided not to reply.
const SILENT_TEXT: &str = "확인했어요.";
/// A callback POST waits this long after the handler decided on `useCallback`.
const CALLBACK_SETTLE: Duration = Duration::from_millis(100);

pub(super) fn now_ms() -> EpochMs {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What every bot of the connector shares.
pub(super) struct Common {
    pub(super) config: ChatbotConfig,
    http: reqwest::Client,
    pub(super) bridge: OnceLock<Arc<dyn Bridge>>,
    bots: OnceLock<Vec<Arc<BotAccount>>>,
}

/// The KakaoTalk chatbot channel (`kakao`).
pub struct KakaoChatbot {
    common: Arc<Common>,
    accounts: Vec<Arc<BotAccount>>,
}

impl std::fmt::Debug for KakaoChatbot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KakaoChatbot").field("accounts", &self.accounts.len()).finish()
    }
}

impl KakaoChatbot {
    /// The connector with one account per configured bot.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: &ChatbotConfig) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(CALLBACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the Kakao HTTP client: {e}"))?;
        let common = Arc::new(Common { config: config.clone(), http, bridge: OnceLock::new(), bots: OnceLock::new() });
        let accounts: Vec<Arc<BotAccount>> = config
            .bots
            .iter()
            .map(|settings| {
                Arc::new(BotAccount {
                    settings: settings.clone(),
                    common: common.clone(),
                    turns: Mutex::new(HashMap::new()),
                    next_waiter: std::sync::atomic::AtomicU64::new(1),
                })
            })
            .collect();
        let _ = common.bots.set(accounts.clone());
        Ok(Arc::new(Self { common, accounts }))
    }

    fn bot(&self, account: &AccountId) -> Option<&Arc<BotAccount>> {
        self.accounts.iter().find(|a| a.settings.account == account.as_str())
    }
}

impl Connector for KakaoChatbot {
    fn id(&self) -> ChannelId {
        ChannelId::new(CHANNEL)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { max_text_chars: 1000, media: vec![MediaKind::Image], replies: false, typing: false }
    }

    fn accounts(&self) -> Vec<Arc<dyn Account>> {
        self.accounts.iter().map(|a| a.clone() as Arc<dyn Account>).collect()
    }

    /// `POST /kakao/skill` and `POST /kakao/channel-webhook` for every bot: requests are routed
    /// to their bot by secret and `bot.id`.
    fn routes(&self, ctx: &RouteContext) -> Option<Router> {
        let _ = self.common.bridge.set(ctx.bridge.clone());
        let skill_limit = self.common.config.max_body_bytes;
        Some(
            Router::new()
                .route("/kakao/skill", post(skill).layer(DefaultBodyLimit::max(skill_limit)))
                .route(
                    "/kakao/channel-webhook",
                    post(super::webhook::channel_webhook)
                        .layer(DefaultBodyLimit::max(super::webhook::WEBHOOK_BODY_LIMIT)),
                )
                .with_state(self.common.clone()),
        )
    }

    /// One message carrying the whole answer as SkillResponse pages in `extra.kakao.pages`.
    fn render_reply(&self, to: &InboundMessage, reply: &str) -> Vec<OutboundMessage> {
        let more_label = self.bot(&to.account).map_or("더 보기", |b| b.settings.more_label.as_str());
        let pages = render_answer(reply, more_label);
        let mut msg = OutboundMessage::reply_text(to, pages[0].plain_text());
        let turn = to.extra.to_value().get("kakao").cloned().unwrap_or(Value::Null);
        msg.extra = json!({"kakao": {
            "pages": pages,
            "receivedAt": turn.get("receivedAt"),
            "botUserKey": turn.get("botUserKey"),
            "appUserId": turn.get("appUserId"),
        }})
        .into();
        vec![msg]
    }

    fn pairing_text(&self, code: &str) -> String {
        format!(
            "안녕하세요! 이 채널의 AI 상담은 승인된 분만 이용할 수 있어요. 페어링 코드는 {code} 입니다(1시간 유효). \
             채널 관리자에게 이 코드를 알려 주세요.\n(Pairing code {code}: send it to the channel owner for approval.)"
        )
    }

    fn agent_context(&self, msg: &InboundMessage) -> String {
        let extra = msg.extra.to_value();
        let turn = extra.get("kakao");
        let friend = match turn.and_then(|t| t.get("isFriend")).and_then(Value::as_bool) {
            Some(true) => " They have added the channel as a friend.",
            Some(false) => " They have not added the channel as a friend.",
            None => "",
        };
        format!(
            "You are talking with a KakaoTalk Channel user (user key {peer}) through the channel's chatbot \
             (account {account}).{friend} Keep answers short and conversational, in the user's language: \
             KakaoTalk shows at most three speech bubbles of 1000 characters per answer and longer answers \
             need the user to tap \"더 보기\". Markdown is not rendered (it is stripped); a markdown link \
             [label](https://…) becomes a button, and an image URL alone on a line is shown as a picture.",
            peer = msg.peer,
            account = msg.account,
        )
    }
}

/// Where a turn is in its life, in this process.
enum TurnState {
    /// Skill handlers wait for the answer (several when Kakao repeated the request).
    Waiting { peer: String, waiters: Vec<(u64, oneshot::Sender<SkillResponse>)>, since: Instant },
    /// The handler answered `useCallback:true`; the answer goes to this URL.
    Callback { url: String, received_at: EpochMs, since: Instant },
}

/// The turn data kept in the store when the handler answered `useCallback:true` (for another
/// replica or a restarted process that completes the turn).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTurn {
    url: String,
    received_at: EpochMs,
}

/// An answer kept for the user's next utterance.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    pages: Vec<SkillResponse>,
}

/// One Kakao bot.
pub struct BotAccount {
    settings: BotSettings,
    common: Arc<Common>,
    turns: Mutex<HashMap<String, TurnState>>,
    next_waiter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for BotAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotAccount").field("account", &self.settings.account).finish_non_exhaustive()
    }
}

#[async_trait]
impl Account for BotAccount {
    fn id(&self) -> AccountId {
        AccountId::new(self.settings.account.clone())
    }

    fn access_policy(&self) -> AccessPolicy {
        self.settings.access.clone()
    }

    async fn send(&self, msg: &OutboundMessage, _key: &IdempotencyKey) -> Result<Receipt, SendError> {
        let bridge = self.bridge().map_err(SendError::transient)?;
        let pages = pages_of(msg, &self.settings.more_label);
        let peer = msg.peer.to_string();
        let message_id = msg.reply_to.as_ref().map(ToString::to_string);

        // 1. The handler of this turn (or, for a notice without reply_to, of this peer) is waiting.
        if let Some(state) = self.take_turn(message_id.as_deref(), &peer) {
            match state {
                TurnState::Waiting { waiters, .. } => {
                    self.store_more(&*bridge, &peer, &pages[1..]).await?;
                    if let Some(id) = &message_id {
                        // Kept briefly: a Kakao retry of this request (our response got lost) shows it again.
                        let answer =
                            serde_json::to_string(&pages[0]).map_err(|e| SendError::Permanent(e.to_string()))?;
                        let ttl = self.common.config.dedup_window.as_millis() as i64;
                        put(&*bridge, &self.ns("answer"), id, &answer, Some(ttl), false).await?;
                    }
                    if hand_over(waiters, &pages[0]) {
                        metrics::counter!("clawbridge_kakao_replies_total", "via" => "inline").increment(1);
                        return Ok(Receipt { platform_message_id: message_id.map(|id| format!("inline:{id}")) });
                    }
                    // The handler went away (Kakao closed the request): keep the answer.
                }
                TurnState::Callback { url, received_at, since } => {
                    // Let the handler's `useCallback` answer reach Kakao before the callback does.
                    tokio::time::sleep(CALLBACK_SETTLE.saturating_sub(since.elapsed())).await;
                    let id = message_id.clone().unwrap_or_default();
                    return self.deliver_by_callback(&*bridge, msg, &id, &url, received_at, pages).await;
                }
            }
        }
        if let Some(id) = &message_id {
            // 2. Another replica's handler may still be waiting for this turn: offer the answer and
            //    see whether it was taken when that handler's deadline has passed.
            let received_at = msg.extra.to_value().pointer("/kakao/receivedAt").and_then(Value::as_i64);
            if let Some(received_at) = received_at {
                let deadline = received_at + self.settings.sync_deadline.as_millis() as i64;
                if now_ms() < deadline {
                    let answer = serde_json::to_string(&pages[0]).map_err(|e| SendError::Permanent(e.to_string()))?;
                    self.store_more(&*bridge, &peer, &pages[1..]).await?;
                    put(&*bridge, &self.ns("answer"), id, &answer, Some(60_000), false).await?;
                    let wait = u64::try_from(deadline - now_ms()).unwrap_or(0) + 300;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let left =
                        bridge.state_take(&self.ns("answer"), id).await.map_err(|e| SendError::transient(e.0))?;
                    if left.is_none() {
                        return Ok(Receipt { platform_message_id: Some(format!("inline:{id}")) });
                    }
                }
            }
            // 3. The handler answered useCallback (possibly in another process).
            let stored = bridge.state_get(&self.ns("turn"), id).await.map_err(|e| SendError::transient(e.0))?;
            if let Some(turn) = stored.and_then(|s| serde_json::from_str::<StoredTurn>(&s).ok()) {
                return self.deliver_by_callback(&*bridge, msg, id, &turn.url, turn.received_at, pages).await;
            }
        }
        // 4. Nobody waits: a handler of a newer turn of this peer may show it, else the next utterance.
        self.keep_for_next_turn(&*bridge, msg, pages).await
    }

    /// A turn that ends without a reply (refused sender, pairing still pending, a silent agent)
    /// must not leave its skill request waiting for the deadline and then promise an answer.
    async fn inbound_finished(&self, msg: &InboundMessage, outcome: InboundOutcome, replies: usize) {
        if replies > 0 {
            return;
        }
        let text = match outcome {
            InboundOutcome::Pairing => PAIRING_PENDING_TEXT,
            InboundOutcome::Silent | InboundOutcome::Replied => SILENT_TEXT,
            _ => DISABLED_TEXT,
        };
        if let Some(TurnState::Waiting { waiters, .. }) =
            self.take_turn(Some(msg.message_id.as_str()), msg.peer.as_str())
        {
            hand_over(waiters, &SkillResponse::text(text));
            metrics::counter!("clawbridge_kakao_replies_total", "via" => "no_answer").increment(1);
        }
    }
}

/// The pages of an outbound message: the rendered SkillResponses, or a notice's text rendered now.
fn pages_of(msg: &OutboundMessage, more_label: &str) -> Vec<SkillResponse> {
    let rendered: Option<Vec<SkillResponse>> = msg
        .extra
        .to_value()
        .pointer("/kakao/pages")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .filter(|p: &Vec<_>| !p.is_empty());
    rendered.unwrap_or_else(|| render_answer(msg.text.as_deref().unwrap_or(""), more_label))
}

async fn put(
    bridge: &dyn Bridge,
    namespace: &str,
    key: &str,
    value: &str,
    ttl: Option<EpochMs>,
    if_absent: bool,
) -> Result<bool, SendError> {
    bridge.state_put(namespace, key, value, ttl, if_absent).await.map_err(|e| SendError::transient(e.0))
}

impl BotAccount {
    fn bridge(&self) -> Result<Arc<dyn Bridge>, String> {
        self.common.bridge.get().cloned().ok_or_else(|| "the Kakao account is not started yet".to_owned())
    }

    /// A namespace of this account: `kakao.<what>/<account>`.
    fn ns(&self, what: &str) -> String {
        format!("kakao.{what}/{}", self.settings.account)
    }

    fn pending_ns(&self, peer: &str) -> String {
        format!("kakao.pending/{}/{peer}", self.settings.account)
    }

    /// Removes and returns the turn state for `message_id`, or (without one) the oldest waiting
    /// turn of `peer`. Stale entries (handlers gone for two minutes) are swept on the way.
    fn take_turn(&self, message_id: Option<&str>, peer: &str) -> Option<TurnState> {
        let mut turns = self.turns.lock().expect("turns lock");
        match message_id {
            Some(id) => turns.remove(id),
            None => {
                let key = turns
                    .iter()
                    .filter_map(|(k, t)| match t {
                        TurnState::Waiting { peer: p, since, .. } if p == peer => Some((since, k)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, k)| k.clone())?;
                turns.remove(&key)
            }
        }
    }

    fn waiting_turn_of_peer(&self, peer: &str) -> Option<TurnState> {
        self.take_turn(None, peer)
    }

    /// Adds a waiting handler for `message_id`; returns its id and where the answer arrives.
    fn register(&self, message_id: &str, peer: &str) -> (u64, oneshot::Receiver<SkillResponse>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let mut turns = self.turns.lock().expect("turns lock");
        if turns.len() > 256 {
            let stale = Duration::from_secs(120);
            turns.retain(|_, t| match t {
                TurnState::Waiting { since, .. } | TurnState::Callback { since, .. } => since.elapsed() < stale,
            });
        }
        match turns.get_mut(message_id) {
            Some(TurnState::Waiting { waiters, .. }) => waiters.push((id, tx)),
            _ => {
                turns.insert(
                    message_id.to_owned(),
                    TurnState::Waiting { peer: peer.to_owned(), waiters: vec![(id, tx)], since: Instant::now() },
                );
            }
        }
        (id, rx)
    }

    /// Removes waiter `id` of `message_id`; `None` when `send` took it, else how many remain.
    fn unregister(&self, message_id: &str, id: u64) -> Option<usize> {
        let mut turns = self.turns.lock().expect("turns lock");
        let Some(TurnState::Waiting { waiters, .. }) = turns.get_mut(message_id) else { return None };
        let before = waiters.len();
        waiters.retain(|(w, _)| *w != id);
        if waiters.len() == before {
            return None;
        }
        let left = waiters.len();
        if left == 0 {
            turns.remove(message_id);
        }
        Some(left)
    }

    /// Keeps the continuation pages for "더 보기".
    async fn store_more(&self, bridge: &dyn Bridge, peer: &str, rest: &[SkillResponse]) -> Result<(), SendError> {
        if rest.is_empty() {
            return Ok(());
        }
        let value = serde_json::to_string(rest).map_err(|e| SendError::Permanent(e.to_string()))?;
        put(bridge, &self.ns("more"), peer, &value, Some(MORE_TTL_MS), false).await.map(drop)
    }

    /// POSTs the answer to the turn's callback URL, once (claimed in the store, so a retry or
    /// another replica never POSTs twice), and records the outcome.
    async fn deliver_by_callback(
        &self,
        bridge: &dyn Bridge,
        msg: &OutboundMessage,
        message_id: &str,
        url: &str,
        received_at: EpochMs,
        pages: Vec<SkillResponse>,
    ) -> Result<Receipt, SendError> {
        if now_ms() > received_at + CALLBACK_WINDOW_MS {
            self.record_callback(
                bridge,
                message_id,
                &msg.peer.to_string(),
                "EXPIRED",
                "the answer came after the callback window",
            )
            .await;
            return self.keep_for_next_turn(bridge, msg, pages).await;
        }
        let peer = msg.peer.to_string();
        let body_hash = hex::encode(Sha256::digest(serde_json::to_vec(&pages).unwrap_or_default()));
        let claimed = put(bridge, &self.ns("callback-claim"), message_id, &body_hash, Some(600_000), true).await?;
        if !claimed {
            let previous = bridge
                .state_get(&self.ns("callback-claim"), message_id)
                .await
                .map_err(|e| SendError::transient(e.0))?;
            if previous.as_deref() == Some(body_hash.as_str()) {
                // This very answer was POSTed before (a retried send): never POST twice.
                return Ok(Receipt { platform_message_id: Some(format!("callback:{message_id}")) });
            }
            // The callback was used by another message of this turn: keep this one for later.
            return self.keep_for_next_turn(bridge, msg, pages).await;
        }
        // Older answers of this user come first when they fit.
        let (first, rest, behind) = self.with_pending_first(bridge, &peer, pages).await;
        self.store_more(bridge, &peer, &rest).await?;
        let outcome = self.post_callback(url, &first).await;
        let (status, detail) = match &outcome {
            Ok((status, message)) => (status.clone(), message.clone()),
            Err(e) => ("ERROR".to_owned(), e.clone()),
        };
        metrics::counter!("clawbridge_kakao_callback_total", "status" => status.clone()).increment(1);
        self.record_callback(bridge, message_id, &peer, &status, &detail).await;
        let receipt = if status == "SUCCESS" {
            tracing::info!(peer = %mask(&peer), "answer delivered through the Kakao callback");
            metrics::counter!("clawbridge_kakao_replies_total", "via" => "callback").increment(1);
            Receipt { platform_message_id: Some(format!("callback:{message_id}")) }
        } else {
            tracing::warn!(peer = %mask(&peer), status, detail, "Kakao callback failed; the answer waits for the user's next message");
            let mut pages = vec![first];
            pages.extend(rest);
            self.keep_for_next_turn(bridge, msg, pages).await?
        };
        // The answer that did not fit behind an older one is kept after it, in order.
        if let Some(behind) = behind {
            self.stash(bridge, &peer, message_id, &behind).await?;
        }
        Ok(receipt)
    }

    async fn post_callback(&self, url: &str, response: &SkillResponse) -> Result<(String, String), String> {
        let reply = self.common.http.post(url).json(response).send().await.map_err(|e| e.without_url().to_string())?;
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

    async fn record_callback(&self, bridge: &dyn Bridge, message_id: &str, peer: &str, status: &str, detail: &str) {
        let value = json!({"account": self.settings.account, "peer": mask(peer), "status": status,
            "message": detail.chars().take(300).collect::<String>(), "at": now_ms()});
        let key = format!("{}/{message_id}", self.settings.account);
        if let Err(e) = bridge.state_put(ns::CALLBACKS, &key, &value.to_string(), Some(7 * 24 * 3_600_000), false).await
        {
            tracing::warn!(error = %e, "cannot record the callback outcome");
        }
    }

    /// The peer's oldest kept answer in front of `pages[0]` when both fit in one response;
    /// returns (response to show, its continuation, answer pushed behind it if it did not fit).
    async fn with_pending_first(
        &self,
        bridge: &dyn Bridge,
        peer: &str,
        pages: Vec<SkillResponse>,
    ) -> (SkillResponse, Vec<SkillResponse>, Option<Vec<SkillResponse>>) {
        let Some(pending) = self.take_pending(bridge, peer).await else {
            let mut pages = pages.into_iter();
            let first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
            return (first, pages.collect(), None);
        };
        if pending.pages.len() == 1
            && let Some(merged) = merge(&pending.pages[0], &pages[0])
        {
            return (merged, pages[1..].to_vec(), None);
        }
        let mut shown = pending.pages.into_iter();
        let mut first = shown.next().unwrap_or_else(|| SkillResponse::text("…"));
        let rest: Vec<SkillResponse> = shown.collect();
        if rest.is_empty() {
            add_quick_reply(&mut first, &self.settings.fetch_label);
        }
        (first, rest, Some(pages))
    }

    async fn take_pending(&self, bridge: &dyn Bridge, peer: &str) -> Option<Pending> {
        let namespace = self.pending_ns(peer);
        let mut entries = bridge.state_list(&namespace, 20).await.ok()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, _, _) in entries {
            if let Ok(Some(value)) = bridge.state_take(&namespace, &key).await
                && let Ok(pending) = serde_json::from_str::<Pending>(&value)
                && !pending.pages.is_empty()
            {
                return Some(pending);
            }
        }
        None
    }

    async fn stash(&self, bridge: &dyn Bridge, peer: &str, id: &str, pages: &[SkillResponse]) -> Result<(), SendError> {
        let value = serde_json::to_string(&Pending { pages: pages.to_vec() })
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        // Keys sort by time, then by this process's sequence (two answers in one millisecond).
        let seq = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let key = format!("{:013}-{seq:010}-{}", now_ms(), hex::encode(&Sha256::digest(id.as_bytes())[..6]));
        put(bridge, &self.pending_ns(peer), &key, &value, Some(PENDING_TTL_MS), false).await.map(drop)
    }

    /// No handler waits for this answer: a handler of a newer turn of the same peer shows it,
    /// else it is kept for the next utterance (and pushed through the Event API when configured).
    async fn keep_for_next_turn(
        &self,
        bridge: &dyn Bridge,
        msg: &OutboundMessage,
        pages: Vec<SkillResponse>,
    ) -> Result<Receipt, SendError> {
        let peer = msg.peer.to_string();
        let id = msg.reply_to.as_ref().map_or_else(|| format!("notice-{}", now_ms()), ToString::to_string);
        if let Some(TurnState::Waiting { waiters, .. }) = self.waiting_turn_of_peer(&peer) {
            self.store_more(bridge, &peer, &pages[1..]).await?;
            if hand_over(waiters, &pages[0]) {
                metrics::counter!("clawbridge_kakao_replies_total", "via" => "newer_turn").increment(1);
                return Ok(Receipt { platform_message_id: Some(format!("inline:{id}")) });
            }
        }
        self.stash(bridge, &peer, &id, &pages).await?;
        metrics::counter!("clawbridge_kakao_replies_total", "via" => "next_turn").increment(1);
        tracing::info!(peer = %mask(&peer), "answer kept for the user's next message");
        if let (Some(event), Some(key), Some(bot_id)) =
            (&self.settings.late_answer_event, &self.settings.rest_api_key, &self.settings.bot_id)
        {
            self.push_late_answer(bridge, msg, event, key.clone(), bot_id, &pages[0]).await;
        }
        Ok(Receipt { platform_message_id: Some(format!("pending:{id}")) })
    }

    /// Tells the user through the Event API that the answer is ready (they see it on their next
    /// message). Best effort; skipped for users who blocked the channel.
    async fn push_late_answer(
        &self,
        bridge: &dyn Bridge,
        msg: &OutboundMessage,
        event: &str,
        key: secrecy::SecretString,
        bot_id: &str,
        first: &SkillResponse,
    ) {
        let extra = msg.extra.to_value();
        let Some(user) = extra.pointer("/kakao/botUserKey").and_then(Value::as_str) else { return };
        if let Some(app_user) = extra.pointer("/kakao/appUserId").and_then(Value::as_str)
            && super::webhook::is_blocked(bridge, "app_user_id", app_user).await
        {
            return;
        }
        let Ok(api) = EventApi::new(&self.common.config.bot_api_base_url, bot_id, key) else { return };
        let mut data = serde_json::Map::new();
        data.insert("text".to_owned(), Value::String(first.plain_text().chars().take(1000).collect()));
        match api.push(event, &data, UserType::BotUserKey, &[user.to_owned()], &serde_json::Map::new()).await {
            Ok(outcomes) => {
                for o in outcomes {
                    if let Some(task) = &o.task_id {
                        let record = json!({"account": self.settings.account, "event": event, "users": o.users,
                            "status": o.status, "at": now_ms(), "source": "late-answer"});
                        let _ = bridge
                            .state_put(ns::PUSH_TASKS, task, &record.to_string(), Some(30 * 24 * 3_600_000), false)
                            .await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Event API push of a late answer failed"),
        }
    }

    /// One skill request, after authentication. `started` is the request's arrival.
    async fn turn(&self, payload: SkillPayload, request_id: Option<String>, started: Instant) -> Response {
        let deadline = tokio::time::Instant::from_std(started + self.settings.sync_deadline);
        let received_at = now_ms() - started.elapsed().as_millis() as i64;
        let Ok(bridge) = self.bridge() else { return error_response(StatusCode::SERVICE_UNAVAILABLE, "starting") };
        let Ok(peer) = payload.peer().map(str::to_owned) else {
            return error_response(StatusCode::BAD_REQUEST, "no user key");
        };
        let utterance = payload.user_request.utterance.trim().to_owned();
        if self.settings.access.dm_policy == clawbridge_core::policy::DmPolicy::Disabled {
            // No conversations at all: say so instead of "still working" (nothing is stored).
            return respond(SkillResponse::text(DISABLED_TEXT), "disabled", started);
        }

        match tokio::time::timeout_at(
            deadline,
            self.prepare(&*bridge, &payload, &peer, &utterance, request_id, received_at, deadline),
        )
        .await
        {
            Ok(Ok(Prepared::Answer(response, label))) => respond(response, label, started),
            Ok(Ok(Prepared::Wait(message_id, waiter, rx))) => {
                self.wait(&*bridge, &payload, &peer, (&message_id, waiter), rx, received_at, deadline, started).await
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

    #[allow(clippy::too_many_arguments)]
    async fn prepare(
        &self,
        bridge: &dyn Bridge,
        payload: &SkillPayload,
        peer: &str,
        utterance: &str,
        request_id: Option<String>,
        received_at: EpochMs,
        deadline: tokio::time::Instant,
    ) -> Result<Prepared, String> {
        let store = |e: clawbridge_channel::BridgeError| e.0;
        // "더 보기": the next part of the last long answer, from session state; no agent run.
        if utterance == self.settings.more_label
            && let Some(value) = bridge.state_take(&self.ns("more"), peer).await.map_err(store)?
        {
            let pages: Vec<SkillResponse> = serde_json::from_str(&value).unwrap_or_default();
            if let Some((first, rest)) = pages.split_first() {
                if !rest.is_empty() {
                    let rest = serde_json::to_string(rest).map_err(|e| e.to_string())?;
                    bridge.state_put(&self.ns("more"), peer, &rest, Some(MORE_TTL_MS), false).await.map_err(store)?;
                }
                return Ok(Prepared::Answer(first.clone(), "more"));
            }
        }
        // "답변 보기": an answer that was not ready; no agent run.
        if utterance == self.settings.fetch_label {
            let response = match self.take_pending(bridge, peer).await {
                Some(pending) => {
                    let mut pages = pending.pages.into_iter();
                    let first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
                    let rest: Vec<SkillResponse> = pages.collect();
                    self.store_more(bridge, peer, &rest).await.map_err(|e| e.to_string())?;
                    first
                }
                None => self.still_working(),
            };
            return Ok(Prepared::Answer(response, "fetch"));
        }

        let message_id = match request_id {
            Some(id) => format!("rid:{id}"),
            None => {
                // No request id: the same user and utterance within the window is a Kakao retry.
                let user = payload.bot_user_key().unwrap_or(peer);
                let key = hex::encode(&Sha256::digest(format!("{user}\n{utterance}").as_bytes())[..16]);
                let fresh = format!("u:{key}:{received_at}");
                let window = self.common.config.dedup_window.as_millis() as i64;
                if bridge.state_put(&self.ns("recent"), &key, &fresh, Some(window), true).await.map_err(store)? {
                    fresh
                } else {
                    bridge.state_get(&self.ns("recent"), &key).await.map_err(store)?.unwrap_or(fresh)
                }
            }
        };

        let media = self.download_images(payload, deadline).await;
        let mut text = utterance.to_owned();
        let params = payload.plain_params();
        if !params.is_empty() {
            let lines: Vec<String> = params.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            text = format!("{text}\n[chatbot parameters] {}", lines.join(", "));
        }
        let mut msg = InboundMessage::text(CHANNEL, self.settings.account.as_str(), peer, message_id.as_str(), text);
        msg.sent_at = Some(received_at);
        if !media.is_empty() {
            msg.kind = MessageKind::Image;
            msg.media = media;
        }
        let props = &payload.user_request.user.properties;
        msg.extra = json!({"kakao": {
            "receivedAt": received_at,
            "botUserKey": payload.bot_user_key(),
            "appUserId": props.app_user_id,
            "isFriend": props.is_friend,
            "block": payload.user_request.block.name.as_ref().or(payload.intent.name.as_ref()),
            "callback": payload.user_request.callback_url.is_some(),
        }})
        .into();
        // Register before accepting: a fast answer must find the waiter.
        let (waiter, rx) = self.register(&message_id, peer);
        match bridge.accept(msg).await {
            Ok(Accepted::New) => {
                tracing::info!(peer = %mask(peer), account = %self.settings.account, "Kakao utterance accepted");
            }
            Ok(Accepted::Duplicate) => {
                metrics::counter!("clawbridge_kakao_skill_duplicates_total").increment(1);
                tracing::info!(peer = %mask(peer), "repeated Kakao skill request; no second agent run");
                // Answered already (the response to the first request got lost): show it again.
                if let Some(answer) = bridge.state_get(&self.ns("answer"), &message_id).await.map_err(store)?
                    && let Ok(answer) = serde_json::from_str::<SkillResponse>(&answer)
                {
                    self.unregister(&message_id, waiter);
                    return Ok(Prepared::Answer(answer, "repeat"));
                }
            }
            Err(e) => {
                self.unregister(&message_id, waiter);
                return Err(e.0);
            }
        }
        Ok(Prepared::Wait(message_id, waiter, rx))
    }

    #[allow(clippy::too_many_arguments)]
    async fn wait(
        &self,
        bridge: &dyn Bridge,
        payload: &SkillPayload,
        peer: &str,
        (message_id, waiter): (&str, u64),
        mut rx: oneshot::Receiver<SkillResponse>,
        received_at: EpochMs,
        deadline: tokio::time::Instant,
        started: Instant,
    ) -> Response {
        // Answers given by the pipeline in time are returned inline (older kept answers first).
        let outcome = tokio::select! {
            answer = &mut rx => Some(answer.ok()),
            () = tokio::time::sleep_until(deadline) => None,
        };
        // Another handler of the same request (a Kakao retry) still waits for the answer.
        let mut others_wait = false;
        let answered = match outcome {
            Some(answer) => answer,
            None => match self.unregister(message_id, waiter) {
                // `send` took this waiter a moment ago: its answer is on the way.
                None => tokio::time::timeout(Duration::from_millis(200), rx).await.ok().and_then(Result::ok),
                Some(left) => {
                    others_wait = left > 0;
                    None
                }
            },
        };
        let hard_cap = started + super::config::MAX_SYNC_DEADLINE;
        if let Some(answer) = answered {
            let (shown, _, behind) = bounded(hard_cap, self.with_pending_first(bridge, peer, vec![answer.clone()]))
                .await
                .unwrap_or((answer, Vec::new(), None));
            if let Some(behind) = behind {
                let _ = bounded(hard_cap, self.stash(bridge, peer, message_id, &behind)).await;
            }
            return respond(shown, "inline", started);
        }
        // An answer offered by another replica.
        if let Some(Ok(Some(value))) = bounded(hard_cap, bridge.state_take(&self.ns("answer"), message_id)).await
            && let Ok(answer) = serde_json::from_str::<SkillResponse>(&value)
        {
            return respond(answer, "inline", started);
        }
        // Too slow: the callback if this block has one, else "still working".
        let callback =
            payload.user_request.callback_url.as_deref().filter(|u| !others_wait && self.callback_allowed(u));
        if let Some(url) = callback {
            let turn = serde_json::to_string(&StoredTurn { url: url.to_owned(), received_at }).unwrap_or_default();
            self.turns.lock().expect("turns lock").insert(
                message_id.to_owned(),
                TurnState::Callback { url: url.to_owned(), received_at, since: Instant::now() },
            );
            let stored =
                bounded(hard_cap, bridge.state_put(&self.ns("turn"), message_id, &turn, Some(120_000), false)).await;
            if !matches!(stored, Some(Ok(_))) {
                tracing::warn!("cannot store the callback turn; only this process can complete it");
            }
            return respond(SkillResponse::use_callback(&self.settings.waiting_text), "callback", started);
        }
        if payload.user_request.callback_url.is_some() && !others_wait {
            tracing::warn!("callbackUrl host is not allowed (kakao.chatbot.callbackHosts); answering without callback");
        }
        let kept = bounded(hard_cap, self.take_pending(bridge, peer)).await.flatten();
        match kept {
            Some(pending) => {
                let mut pages = pending.pages.into_iter();
                let mut first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
                let rest: Vec<SkillResponse> = pages.collect();
                let _ = bounded(hard_cap, self.store_more(bridge, peer, &rest)).await;
                if rest.is_empty() {
                    add_quick_reply(&mut first, &self.settings.fetch_label);
                }
                respond(first, "pending", started)
            }
            None => respond(self.still_working(), "still_working", started),
        }
    }

    fn still_working(&self) -> SkillResponse {
        SkillResponse::new(
            vec![Output::text(&self.settings.still_working_text)],
            vec![QuickReply::message(&self.settings.fetch_label, &self.settings.fetch_label)],
        )
    }

    fn callback_allowed(&self, url: &str) -> bool {
        let Some(host) = host_of(url) else { return false };
        let scheme_ok = url.starts_with("https://") || is_loopback(&host);
        scheme_ok && host_allowed(&host, &self.common.config.callback_hosts)
    }

    /// Downloads secure-image plugin pictures (https, allowed hosts, size cap) so the agent gets
    /// them as attachments; an image that cannot be fetched in time is described instead.
    async fn download_images(&self, payload: &SkillPayload, deadline: tokio::time::Instant) -> Vec<MediaRef> {
        let urls = payload.secure_image_urls();
        let mut media = Vec::new();
        for raw in urls.into_iter().take(5) {
            let Some(host) = host_of(&raw) else { continue };
            if !host_allowed(&host, &self.common.config.image_hosts) {
                tracing::warn!(host, "image host not in kakao.chatbot.imageHosts; not downloaded");
                continue;
            }
            let url = if is_loopback(&host) { raw.clone() } else { raw.replacen("http://", "https://", 1) };
            let budget = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .saturating_sub(Duration::from_millis(1_500));
            let mut item = MediaRef { kind: MediaKind::Image, ..MediaRef::default() };
            match tokio::time::timeout(budget, self.fetch(&url)).await {
                Ok(Ok((bytes, mime))) => {
                    item.size_bytes = Some(bytes.len() as u64);
                    item.mime_type = Some(mime);
                    item.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot download a Kakao image"),
                Err(_) => tracing::warn!("a Kakao image did not download in time"),
            }
            media.push(item);
        }
        media
    }

    async fn fetch(&self, url: &str) -> Result<(Vec<u8>, String), String> {
        let max = self.common.config.media_max_bytes;
        let mut response = self.common.http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(format!("larger than {max} bytes"));
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("image/jpeg")
            .to_owned();
        if !mime.starts_with("image/") {
            return Err(format!("not an image ({mime})"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(format!("larger than {max} bytes"));
            }
        }
        Ok((bytes, mime))
    }
}

/// Hands an answer to every waiting handler; `true` when at least one was still there.
fn hand_over(waiters: Vec<(u64, oneshot::Sender<SkillResponse>)>, answer: &SkillResponse) -> bool {
    let mut delivered = false;
    for (_, tx) in waiters {
        delivered |= tx.send(answer.clone()).is_ok();
    }
    delivered
}

enum Prepared {
    Answer(SkillResponse, &'static str),
    Wait(String, u64, oneshot::Receiver<SkillResponse>),
}

async fn bounded<T>(until: Instant, work: impl std::future::Future<Output = T>) -> Option<T> {
    let left = until.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, work).await.ok()
}

fn add_quick_reply(response: &mut SkillResponse, label: &str) {
    if let Some(template) = response.template.as_mut()
        && template.quick_replies.len() < super::response::MAX_QUICK_REPLIES
        && !template.quick_replies.iter().any(|q| q.label == label)
    {
        template.quick_replies.push(QuickReply::message(label, label));
    }
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

pub(super) fn secret_matches(given: &[u8], expected: &str) -> bool {
    given.ct_eq(expected.as_bytes()).into()
}

/// `POST /kakao/skill`.
async fn skill(State(common): State<Arc<Common>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let reject = |status: StatusCode, result: &'static str, reason: &str| {
        metrics::counter!("clawbridge_kakao_skill_requests_total", "result" => result).increment(1);
        error_response(status, reason)
    };
    if body.len() > common.config.max_body_bytes {
        return reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body too large");
    }
    let Some(bots) = common.bots.get() else { return reject(StatusCode::SERVICE_UNAVAILABLE, "error", "starting") };
    let given = headers.get("x-skill-secret").map(|v| v.as_bytes()).unwrap_or_default();
    // Compare with every bot's secret (no early exit), then parse.
    let mut candidates = Vec::new();
    for bot in bots {
        if secret_matches(given, bot.settings.skill_secret.expose_secret()) {
            candidates.push(bot.clone());
        }
    }
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
    let bot_id = payload.bot.id.as_deref().unwrap_or("");
    let bot =
        candidates.iter().find(|b| b.settings.bot_id.as_deref() == Some(bot_id)).cloned().or_else(|| {
            (candidates.len() == 1 && candidates[0].settings.bot_id.is_none()).then(|| candidates[0].clone())
        });
    let Some(bot) = bot else {
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
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned);
    bot.turn(payload, request_id, started).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn connector() -> Arc<KakaoChatbot> {
        let env: HashMap<&str, &str> = HashMap::from([("KAKAO_SKILL_SECRET", "0123456789abcdef0123")]);
        let config = ChatbotConfig::load(None, &|k| env.get(k).map(|v| (*v).to_owned())).unwrap().unwrap();
        KakaoChatbot::new(&config).unwrap()
    }

    #[test]
    fn replies_carry_every_page_and_the_turn_in_extra() {
        let c = connector();
        let mut inbound = InboundMessage::text(CHANNEL, "default", "pf-1", "rid:1", "질문");
        inbound.extra =
            json!({"kakao": {"receivedAt": 1_000, "botUserKey": "bu-1", "appUserId": "42", "isFriend": true}}).into();
        let out = c.render_reply(&inbound, &"긴 답변입니다. ".repeat(500));
        assert_eq!(out.len(), 1, "one outbound message per answer");
        let msg = &out[0];
        assert_eq!(msg.reply_to.as_ref().map(ToString::to_string).as_deref(), Some("rid:1"));
        let pages: Vec<SkillResponse> = serde_json::from_value(msg.extra.to_value()["kakao"]["pages"].clone()).unwrap();
        assert_eq!(pages.len(), 2);
        pages.iter().for_each(|p| p.validate().unwrap());
        assert_eq!(msg.extra.to_value()["kakao"]["receivedAt"], 1_000);
        assert_eq!(msg.extra.to_value()["kakao"]["botUserKey"], "bu-1");
        assert_eq!(msg.text.as_deref(), Some(pages[0].plain_text().as_str()));
        // A notice rendered by `send` from its text alone.
        let notice = OutboundMessage::reply_text(&inbound, "**승인**되었어요");
        assert_eq!(pages_of(&notice, "더 보기")[0].plain_text(), "승인되었어요");
    }

    #[test]
    fn the_agent_is_told_how_kakaotalk_renders_and_the_pairing_text_has_the_code() {
        let c = connector();
        let mut inbound = InboundMessage::text(CHANNEL, "default", "pf-1", "rid:1", "질문");
        inbound.extra = json!({"kakao": {"isFriend": false}}).into();
        let context = c.agent_context(&inbound);
        assert!(
            context.contains("KakaoTalk") && context.contains("더 보기") && context.contains("not added"),
            "{context}"
        );
        assert!(c.pairing_text("K7M2QX9A").contains("K7M2QX9A"));
        assert_eq!(c.capabilities().max_text_chars, 1000);
    }
}
