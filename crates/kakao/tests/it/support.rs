//! The fake Kakao side and a scripted "pipeline" on the daemon's bridge over an in-memory store.
//!
//! - [`Harness`]: the chatbot built on `clawbridge_testkit::memory_bridge()` (the real
//!   `StoreBridge`, so dedup, TTLs and claims are the store's), its routes on `127.0.0.1:0`, a fake
//!   pipeline that answers stored utterances through `Connector::render_reply` + `Account::send`
//!   after a scripted delay, and a fake Kakao bot API (callback receiver, Event API, image server)
//!   on another port.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clawbridge_channel::{Account, Bridge, Connector};
use clawbridge_core::{EpochMs, IdempotencyKey, InboundMessage, OutboundMessage};
use clawbridge_kakao::chatbot::{ChatbotConfig, KakaoChatbot};
use clawbridge_testkit::MemoryBridge;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub const SECRET: &str = "skill-secret-0123456789";
pub const ADMIN_KEY: &str = "admin-key-abcdef";
pub const REST_KEY: &str = "rest-key-123";
pub const BOT_ID: &str = "bot-1";

fn now_ms() -> EpochMs {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One callback POST the fake Kakao received.
#[derive(Clone, Debug)]
pub struct CallbackHit {
    pub body: Value,
    pub accepted: bool,
}

/// The fake Kakao bot API: callback URLs (one use each, valid 60 s), the Event API, images.
#[derive(Default)]
pub struct FakeKakao {
    issued: Mutex<HashMap<String, Instant>>,
    pub callbacks: Mutex<Vec<CallbackHit>>,
    pub pushes: Mutex<Vec<(HeaderMap, Value)>>,
    pub image_requests: Mutex<usize>,
    pub signal: Notify,
}

impl FakeKakao {
    /// Issues a one-time callback URL under `base`.
    pub fn callback_url(&self, base: &str) -> String {
        let token = format!("tok{}", self.issued.lock().unwrap().len() + 1);
        self.issued.lock().unwrap().insert(token.clone(), Instant::now());
        format!("{base}/v1/bots/{BOT_ID}/callback/{token}")
    }

    pub fn hits(&self) -> Vec<CallbackHit> {
        self.callbacks.lock().unwrap().clone()
    }

    pub async fn wait_hits(&self, n: usize) -> Vec<CallbackHit> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.signal.notified();
                let hits = self.hits();
                if hits.len() >= n {
                    return hits;
                }
                notified.await;
            }
        })
        .await
        .expect("callback arrived")
    }
}

impl FakeKakao {
    /// Waits for `n` Event API pushes.
    pub async fn wait_pushes(&self, n: usize) -> Vec<(HeaderMap, Value)> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.signal.notified();
                let pushes = self.pushes.lock().unwrap().clone();
                if pushes.len() >= n {
                    return pushes;
                }
                notified.await;
            }
        })
        .await
        .expect("the push arrived")
    }
}

async fn callback(
    State(kakao): State<Arc<FakeKakao>>,
    Path((_bot, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Valid about a minute and usable once.
    let issued = kakao.issued.lock().unwrap().remove(&token);
    let accepted = issued.is_some_and(|at| at.elapsed() < Duration::from_secs(60));
    let valid_json = body["version"] == "2.0" && body["template"]["outputs"].is_array();
    kakao.callbacks.lock().unwrap().push(CallbackHit { body, accepted: accepted && valid_json });
    kakao.signal.notify_waiters();
    let (status, message) = match (accepted, valid_json) {
        (true, true) => ("SUCCESS", ""),
        (false, _) => ("FAIL", "Invalid callback token. 만료된 상태(1분이내 요청 필요)"),
        (true, false) => ("FAIL", "Invalid json response from bot-skill"),
    };
    axum::Json(json!({"taskId": "cb-task", "status": status, "message": message, "timestamp": now_ms()}))
        .into_response()
}

async fn event_talk(
    State(kakao): State<Arc<FakeKakao>>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("KakaoAK {REST_KEY}")) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "invalid app key"}))).into_response();
    }
    if bot != BOT_ID {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "bot not found"}))).into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let users = body["user"].as_array().map_or(0, Vec::len);
    if users == 0 || users > 100 || body["event"]["name"].as_str().is_none() {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "invalid request"}))).into_response();
    }
    let mut pushes = kakao.pushes.lock().unwrap();
    pushes.push((headers, body));
    let n = pushes.len();
    drop(pushes);
    kakao.signal.notify_waiters();
    axum::Json(json!({"taskId": format!("task-{n}"), "status": "SUCCESS", "message": "", "timestamp": now_ms()}))
        .into_response()
}

async fn task(State(kakao): State<Arc<FakeKakao>>, Path(id): Path<String>) -> Response {
    let n: usize = id.trim_start_matches("task-").parse().unwrap_or(0);
    let pushes = kakao.pushes.lock().unwrap();
    let Some((_, body)) = pushes.get(n.wrapping_sub(1)) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "no such task"}))).into_response();
    };
    let results: Vec<Value> = body["user"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let id = u["id"].as_str().unwrap_or("");
            json!({"id": id, "status": if id.starts_with("stranger") { "FAIL" } else { "SUCCESS" }})
        })
        .collect();
    axum::Json(json!({"taskId": id, "status": "SUCCESS", "results": results})).into_response()
}

async fn image(State(kakao): State<Arc<FakeKakao>>, Path(name): Path<String>) -> Response {
    *kakao.image_requests.lock().unwrap() += 1;
    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    match name.as_str() {
        "small.png" => ([("content-type", "image/png")], PNG.to_vec()).into_response(),
        "huge.png" => ([("content-type", "image/png")], vec![0u8; 3 * 1024 * 1024]).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// How the fake pipeline answers an utterance: the reply text and how long the "agent" takes.
pub type Script = Arc<dyn Fn(&str) -> (String, Duration) + Send + Sync>;

pub struct Harness {
    pub base: String,
    pub kakao_base: String,
    pub kakao: Arc<FakeKakao>,
    /// The bridge the connector was built with (`StoreBridge` on `mem`'s store).
    pub bridge: Arc<dyn Bridge>,
    /// The in-memory store behind it, to read what the chatbot stored.
    pub mem: MemoryBridge,
    pub connector: Arc<KakaoChatbot>,
    pub account: Arc<dyn Account>,
    pub http: reqwest::Client,
    /// Every outbound message `send` was called with, and its result.
    pub sent: Arc<Mutex<Vec<(OutboundMessage, String)>>>,
    pub runs: Arc<Mutex<usize>>,
    pub config: ChatbotConfig,
}

impl Harness {
    /// Starts everything; `vars` add to (or override) the chatbot environment.
    pub async fn start(vars: &[(&str, &str)], script: Script) -> Self {
        Self::start_with(vars, "", script).await
    }

    /// [`Harness::start`] with more `[kakao.chatbot]` TOML (e.g. accounts).
    pub async fn start_with(vars: &[(&str, &str)], chatbot_toml: &str, script: Script) -> Self {
        let kakao = Arc::new(FakeKakao::default());
        let fake = Router::new()
            .route("/v1/bots/{bot}/callback/{token}", post(callback))
            .route("/v2/bots/{bot}/talk", post(event_talk))
            .route("/v1/tasks/{id}", get(task))
            .route("/images/{name}", get(image))
            .with_state(kakao.clone());
        let kakao_base = format!("http://{}", serve(fake).await);

        let mut env: HashMap<String, String> = HashMap::from([
            ("KAKAO_SKILL_SECRET".to_owned(), SECRET.to_owned()),
            ("KAKAO_BOT_ID".to_owned(), BOT_ID.to_owned()),
            ("KAKAO_ADMIN_KEY".to_owned(), ADMIN_KEY.to_owned()),
            ("KAKAO_REST_API_KEY".to_owned(), REST_KEY.to_owned()),
            ("KAKAO_BOT_API_BASE_URL".to_owned(), kakao_base.clone()),
            ("KAKAO_DM_POLICY".to_owned(), "open".to_owned()),
            ("KAKAO_ALLOW_FROM".to_owned(), "*".to_owned()),
            ("KAKAO_SYNC_DEADLINE_SECS".to_owned(), "0.8".to_owned()),
        ]);
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let table: toml::Table =
            toml::from_str(&format!("[chatbot]\nimageHosts = [\"127.0.0.1\"]\nmediaMaxMb = 1\n{chatbot_toml}"))
                .unwrap();
        let config = ChatbotConfig::load(Some(&table), &|k| env.get(k).cloned()).unwrap().unwrap();
        let mem = clawbridge_testkit::memory_bridge();
        let bridge = mem.bridge.clone();
        let connector = KakaoChatbot::new(&config, bridge.clone()).unwrap();
        let accounts = connector.accounts();
        let account = accounts[0].clone();
        // One router, on the connector, serves every bot.
        let routes = connector.routes(&mem.route_context()).expect("the chatbot serves routes");
        let base = format!("http://{}", serve(routes).await);

        let sent = Arc::new(Mutex::new(Vec::new()));
        let runs = Arc::new(Mutex::new(0));
        tokio::spawn(pipeline(mem.clone(), connector.clone(), accounts, script, sent.clone(), runs.clone()));
        Self {
            base,
            kakao_base,
            kakao,
            bridge,
            mem,
            connector,
            account,
            http: reqwest::Client::new(),
            sent,
            runs,
            config,
        }
    }

    /// Another process (replica) on the same store: its own connector and account.
    pub fn replica(&self) -> (Arc<KakaoChatbot>, Arc<dyn Account>) {
        let connector = KakaoChatbot::new(&self.config, self.bridge.clone()).unwrap();
        let account = connector.accounts().remove(0);
        (connector, account)
    }

    /// The stored utterances (inbox rows), oldest first.
    pub async fn inbox(&self) -> Vec<InboundMessage> {
        self.mem.inbox().await
    }

    /// A live channel-state value.
    pub async fn state(&self, namespace: &str, key: &str) -> Option<String> {
        self.bridge.state_get(namespace, key).await.unwrap()
    }

    /// The live entries of a channel-state namespace, as (key, value), by key.
    pub async fn namespace(&self, namespace: &str) -> Vec<(String, String)> {
        let entries = self.bridge.state_list(namespace, 1000).await.unwrap();
        let mut out: Vec<(String, String)> = entries.into_iter().map(|(key, value, _)| (key, value)).collect();
        out.sort();
        out
    }

    /// POSTs a SkillPayload; returns the status and the JSON body.
    pub async fn skill(&self, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request =
            self.http.post(format!("{}/kakao/skill", self.base)).header("X-Skill-Secret", SECRET).json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn runs(&self) -> usize {
        *self.runs.lock().unwrap()
    }

    pub async fn wait_sent(&self, n: usize) -> Vec<(OutboundMessage, String)> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let sent = self.sent.lock().unwrap().clone();
                if sent.len() >= n {
                    return sent;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the answer was sent")
    }
}

/// The stand-in for clawbridge's pipeline: each new inbox row → script → render_reply → send.
async fn pipeline(
    mem: MemoryBridge,
    connector: Arc<KakaoChatbot>,
    accounts: Vec<Arc<dyn Account>>,
    script: Script,
    sent: Arc<Mutex<Vec<(OutboundMessage, String)>>>,
    runs: Arc<Mutex<usize>>,
) {
    let mut handled = 0;
    loop {
        // The bridge wakes the inbox worker on every new row (a permit is kept until awaited).
        let inbox = mem.inbox().await;
        for msg in inbox.into_iter().skip(handled) {
            handled += 1;
            *runs.lock().unwrap() += 1;
            let account = accounts.iter().find(|a| a.id() == msg.account).expect("the account").clone();
            let (connector, script, sent) = (connector.clone(), script.clone(), sent.clone());
            tokio::spawn(async move {
                let (reply, delay) = script(&msg.text);
                tokio::time::sleep(delay).await;
                let outbound = if let Some(notice) = reply.strip_prefix("NOTICE:") {
                    // A notice without reply_to, as the pairing code is sent.
                    let mut m = OutboundMessage::reply_text(&msg, notice);
                    m.reply_to = None;
                    vec![m]
                } else {
                    connector.render_reply(&msg, &reply)
                };
                for out in outbound {
                    let key = IdempotencyKey::new(format!("{}-r0", msg.message_id));
                    let result = account.send(&out, &key).await;
                    let receipt = match result {
                        Ok(r) => r.platform_message_id.unwrap_or_default(),
                        Err(e) => format!("error: {e}"),
                    };
                    sent.lock().unwrap().push((out, receipt));
                }
            });
        }
        mem.wakers.inbox.notified().await;
    }
}

/// A SkillPayload as Kakao sends it.
pub fn payload(user: &str, utterance: &str, callback_url: Option<&str>) -> Value {
    let mut body = json!({
        "intent": {"id": "fallback", "name": "폴백 블록"},
        "userRequest": {
            "timezone": "Asia/Seoul", "lang": "ko", "utterance": utterance,
            "block": {"id": "fallback", "name": "폴백 블록"},
            "user": {"id": format!("bot-{user}"), "type": "botUserKey",
                     "properties": {"plusfriendUserKey": format!("pf-{user}"), "isFriend": true}}
        },
        "bot": {"id": BOT_ID, "name": "상점봇"},
        "action": {"id": "skill", "name": "agent", "params": {}, "detailParams": {}, "clientExtra": {}}
    });
    if let Some(url) = callback_url {
        body["userRequest"]["callbackUrl"] = json!(url);
    }
    body
}

/// The texts of a SkillResponse's simpleText outputs.
pub fn texts(response: &Value) -> Vec<String> {
    response["template"]["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["simpleText"]["text"].as_str().map(str::to_owned))
        .collect()
}

pub fn quick_labels(response: &Value) -> Vec<String> {
    response["template"]["quickReplies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["label"].as_str().map(str::to_owned))
        .collect()
}

/// Answers `ECHO <text>` after `SLOW:<ms>` if present.
pub fn echo_script() -> Script {
    Arc::new(|text: &str| {
        let delay = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("SLOW:"))
            .and_then(|ms| ms.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        if let Some(n) =
            text.split_whitespace().find_map(|w| w.strip_prefix("LONG:")).and_then(|n| n.parse::<usize>().ok())
        {
            let sentence = "이 문장은 긴 답변을 만들기 위한 예시 문장입니다. ";
            let long: String = sentence.repeat(n / sentence.chars().count() + 1).chars().take(n).collect();
            return (long, delay);
        }
        if let Some(notice) = text.split_whitespace().find_map(|w| w.strip_prefix("NOTICE:")) {
            return (format!("NOTICE:{notice}"), delay);
        }
        (format!("ECHO {text}"), delay)
    })
}

/// A bridge over another whose next writes to namespaces starting with `fail_prefix` fail, as a
/// store that is briefly unreachable does; everything else passes through.
pub struct FlakyBridge {
    pub inner: Arc<dyn Bridge>,
    pub fail_prefix: String,
    pub failures_left: Mutex<usize>,
}

impl FlakyBridge {
    pub fn new(inner: Arc<dyn Bridge>, fail_prefix: &str, failures: usize) -> Arc<Self> {
        Arc::new(Self { inner, fail_prefix: fail_prefix.to_owned(), failures_left: Mutex::new(failures) })
    }
}

#[async_trait::async_trait]
impl Bridge for FlakyBridge {
    async fn accept(
        &self,
        msg: InboundMessage,
    ) -> Result<clawbridge_channel::Accepted, clawbridge_channel::BridgeError> {
        self.inner.accept(msg).await
    }
    async fn delivery_status(
        &self,
        channel: &clawbridge_core::ChannelId,
        platform_message_id: &str,
        status: &str,
        error: Option<&str>,
        at: EpochMs,
    ) -> Result<(), clawbridge_channel::BridgeError> {
        self.inner.delivery_status(channel, platform_message_id, status, error, at).await
    }
    async fn cursor(
        &self,
        channel: &clawbridge_core::ChannelId,
        account: &clawbridge_core::AccountId,
        name: &str,
    ) -> Result<Option<String>, clawbridge_channel::BridgeError> {
        self.inner.cursor(channel, account, name).await
    }
    async fn set_cursor(
        &self,
        channel: &clawbridge_core::ChannelId,
        account: &clawbridge_core::AccountId,
        name: &str,
        value: &str,
    ) -> Result<(), clawbridge_channel::BridgeError> {
        self.inner.set_cursor(channel, account, name, value).await
    }
    async fn remember(
        &self,
        namespace: &str,
        key: &str,
        ttl_ms: EpochMs,
    ) -> Result<bool, clawbridge_channel::BridgeError> {
        self.inner.remember(namespace, key, ttl_ms).await
    }
    async fn lease(&self, name: &str, ttl_ms: EpochMs) -> Result<bool, clawbridge_channel::BridgeError> {
        self.inner.lease(name, ttl_ms).await
    }
    async fn enqueue(
        &self,
        msg: OutboundMessage,
        idempotency_key: &str,
    ) -> Result<(), clawbridge_channel::BridgeError> {
        self.inner.enqueue(msg, idempotency_key).await
    }
    async fn state_get(&self, namespace: &str, key: &str) -> Result<Option<String>, clawbridge_channel::BridgeError> {
        self.inner.state_get(namespace, key).await
    }
    async fn state_put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<EpochMs>,
        if_absent: bool,
    ) -> Result<bool, clawbridge_channel::BridgeError> {
        if namespace.starts_with(&self.fail_prefix) {
            let mut left = self.failures_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(clawbridge_channel::BridgeError("the store is unreachable".to_owned()));
            }
        }
        self.inner.state_put(namespace, key, value, ttl_ms, if_absent).await
    }
    async fn state_take(&self, namespace: &str, key: &str) -> Result<Option<String>, clawbridge_channel::BridgeError> {
        self.inner.state_take(namespace, key).await
    }
    async fn state_list(
        &self,
        namespace: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, EpochMs)>, clawbridge_channel::BridgeError> {
        self.inner.state_list(namespace, limit).await
    }
}
