//! Test doubles: an in-memory [`Bridge`] and a fake Kapso API on 127.0.0.1:0.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clawbridge_channel::{Accepted, AccountContext, AccountStatus, Bridge, BridgeError, RouteContext};
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, OutboundMessage};
use clawbridge_whatsapp::KapsoClient;
use clawbridge_whatsapp::client::MediaPolicy;
use clawbridge_whatsapp::limiter::RateLimiter;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A recorded delivery status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedStatus {
    pub message_id: String,
    pub status: String,
    pub error: Option<String>,
}

/// The bridge, in memory, with the store's dedup semantics.
#[derive(Default)]
pub struct MemoryBridge {
    pub accepted: Mutex<Vec<InboundMessage>>,
    keys: Mutex<HashSet<(String, String, String)>>,
    pub statuses: Mutex<Vec<RecordedStatus>>,
    pub cursors: Mutex<HashMap<String, String>>,
    pub state: Mutex<HashMap<(String, String), String>>,
    pub enqueued: Mutex<Vec<OutboundMessage>>,
    /// Every call of `accept`, duplicates included.
    pub accept_calls: AtomicUsize,
    /// While true, `accept` fails like a store that is down.
    pub fail_accept: AtomicBool,
    /// While false, `lease` is refused (another replica polls).
    pub lease_denied: AtomicBool,
}

impl MemoryBridge {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn accepted(&self) -> Vec<InboundMessage> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn statuses(&self) -> Vec<RecordedStatus> {
        self.statuses.lock().unwrap().clone()
    }

    pub fn route_context(self: &Arc<Self>) -> RouteContext {
        RouteContext { bridge: self.clone() }
    }

    pub fn context(self: &Arc<Self>, account: &str) -> AccountContext {
        let (status, _) = watch::channel(AccountStatus::Starting);
        AccountContext {
            channel: ChannelId::new("whatsapp"),
            account: AccountId::new(account),
            bridge: self.clone(),
            status: Arc::new(status),
            cancel: CancellationToken::new(),
        }
    }
}

#[async_trait]
impl Bridge for MemoryBridge {
    async fn accept(&self, msg: InboundMessage) -> Result<Accepted, BridgeError> {
        self.accept_calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_accept.load(Ordering::SeqCst) {
            return Err(BridgeError("store down".into()));
        }
        let key = (msg.channel.to_string(), msg.account.to_string(), msg.message_id.to_string());
        if !self.keys.lock().unwrap().insert(key) {
            return Ok(Accepted::Duplicate);
        }
        self.accepted.lock().unwrap().push(msg);
        Ok(Accepted::New)
    }

    async fn delivery_status(
        &self,
        _channel: &ChannelId,
        platform_message_id: &str,
        status: &str,
        error: Option<&str>,
        _at: EpochMs,
    ) -> Result<(), BridgeError> {
        self.statuses.lock().unwrap().push(RecordedStatus {
            message_id: platform_message_id.to_owned(),
            status: status.to_owned(),
            error: error.map(str::to_owned),
        });
        Ok(())
    }

    async fn cursor(&self, _c: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>, BridgeError> {
        Ok(self.cursors.lock().unwrap().get(&format!("{account}/{name}")).cloned())
    }

    async fn set_cursor(
        &self,
        _c: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
    ) -> Result<(), BridgeError> {
        self.cursors.lock().unwrap().insert(format!("{account}/{name}"), value.to_owned());
        Ok(())
    }

    async fn remember(&self, namespace: &str, key: &str, _ttl_ms: EpochMs) -> Result<bool, BridgeError> {
        Ok(self.keys.lock().unwrap().insert(("remember".into(), namespace.into(), key.into())))
    }

    async fn lease(&self, _name: &str, _ttl_ms: EpochMs) -> Result<bool, BridgeError> {
        Ok(!self.lease_denied.load(Ordering::SeqCst))
    }

    async fn enqueue(&self, msg: OutboundMessage, _key: &str) -> Result<(), BridgeError> {
        self.enqueued.lock().unwrap().push(msg);
        Ok(())
    }

    async fn state_get(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError> {
        Ok(self.state.lock().unwrap().get(&(namespace.to_owned(), key.to_owned())).cloned())
    }

    async fn state_put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        _ttl_ms: Option<EpochMs>,
        if_absent: bool,
    ) -> Result<bool, BridgeError> {
        let mut state = self.state.lock().unwrap();
        let k = (namespace.to_owned(), key.to_owned());
        if if_absent && state.contains_key(&k) {
            return Ok(false);
        }
        state.insert(k, value.to_owned());
        Ok(true)
    }

    async fn state_take(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError> {
        Ok(self.state.lock().unwrap().remove(&(namespace.to_owned(), key.to_owned())))
    }

    async fn state_list(&self, namespace: &str, limit: u32) -> Result<Vec<(String, String, EpochMs)>, BridgeError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .take(limit as usize)
            .map(|((_, k), v)| (k.clone(), v.clone(), 0))
            .collect())
    }
}

/// A request the fake Kapso received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: &'static str,
    pub path: String,
    pub query: HashMap<String, String>,
    pub api_key: Option<String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Answer {
    pub fn error(status: u16, body: Value) -> Self {
        Self { status, retry_after: None, body }
    }
}

#[derive(Default)]
pub struct FakeState {
    pub requests: Mutex<Vec<Recorded>>,
    /// Answers for the next POSTs to `/messages`, in order (then success).
    pub post_script: Mutex<VecDeque<Answer>>,
    /// Answers for the next GETs of `/messages`, in order (`None`: the real listing), then the listing.
    pub list_script: Mutex<VecDeque<Option<Answer>>>,
    /// Inbound history, any order; served newest first by `created_at`.
    pub history: Mutex<Vec<Value>>,
    /// Files served at `/files/{name}`.
    pub files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    sent: AtomicUsize,
    pub base: Mutex<String>,
}

/// The fake Kapso API.
pub struct FakeKapso {
    pub state: Arc<FakeState>,
    pub base: String,
}

pub const PNID: &str = "123456789012345";
pub const API_KEY: &str = "test-api-key";

impl FakeKapso {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = axum::Router::new()
            .route("/meta/whatsapp/v24.0/{pnid}/messages", post(send_message).get(list_messages))
            .route("/meta/whatsapp/v24.0/{pnid}/media", post(upload))
            .route("/meta/whatsapp/v24.0/{media_id}", get(media_info))
            .route("/files/{name}", get(file))
            .route("/redirect-out", get(redirect_out))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, base }
    }

    pub fn meta_base(&self) -> String {
        format!("{}/meta/whatsapp/v24.0", self.base)
    }

    /// A client for the fake with its own limiter (`per_window` requests per `window`).
    pub fn client_with(&self, per_window: u32, window: Duration, max_media: u64) -> KapsoClient {
        KapsoClient::with_parts(
            &self.meta_base(),
            PNID,
            API_KEY.to_owned().into(),
            Arc::new(RateLimiter::with_window(per_window, window)),
            MediaPolicy { hosts: vec!["127.0.0.1".into(), "kapso.ai".into()], max_bytes: max_media },
            Duration::from_secs(5),
        )
        .unwrap()
    }

    pub fn client(&self) -> KapsoClient {
        self.client_with(1000, Duration::from_secs(60), 1024 * 1024)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests whose path ends with `suffix` and method matches.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.ends_with(suffix)).collect()
    }

    pub fn script_posts(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.post_script.lock().unwrap().extend(answers);
    }

    pub fn script_lists(&self, answers: impl IntoIterator<Item = Option<Answer>>) {
        self.state.list_script.lock().unwrap().extend(answers);
    }

    pub fn add_file(&self, name: &str, content_type: &str, bytes: Vec<u8>) -> String {
        self.state.files.lock().unwrap().insert(name.to_owned(), (content_type.to_owned(), bytes));
        format!("{}/files/{name}", self.base)
    }

    pub fn add_history(&self, items: impl IntoIterator<Item = Value>) {
        self.state.history.lock().unwrap().extend(items);
    }
}

fn record(
    state: &FakeState,
    method: &'static str,
    path: String,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) {
    state.requests.lock().unwrap().push(Recorded {
        method,
        path,
        query,
        api_key: headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body,
        at: Instant::now(),
    });
}

fn answer(a: Answer) -> Response {
    let mut response = (StatusCode::from_u16(a.status).unwrap(), axum::Json(a.body)).into_response();
    if let Some(secs) = a.retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

async fn send_message(
    State(state): State<Arc<FakeState>>,
    Path(pnid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, "POST", format!("/{pnid}/messages"), HashMap::new(), &headers, body.clone());
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return answer(Answer::error(401, json!({"error":"Invalid API key"})));
    }
    if let Some(scripted) = state.post_script.lock().unwrap().pop_front() {
        return answer(scripted);
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if parsed.get("status").and_then(Value::as_str) == Some("read") {
        return axum::Json(json!({"success": true})).into_response();
    }
    let n = state.sent.fetch_add(1, Ordering::SeqCst) + 1;
    let to = parsed.get("to").cloned().unwrap_or(Value::Null);
    axum::Json(json!({"messaging_product":"whatsapp","contacts":[{"input":to,"wa_id":to}],"messages":[{"id":format!("wamid.sent{n}")}]}))
        .into_response()
}

async fn list_messages(
    State(state): State<Arc<FakeState>>,
    Path(pnid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", format!("/{pnid}/messages"), query.clone(), &headers, Bytes::new());
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return answer(Answer::error(401, json!({"error":"Invalid API key"})));
    }
    let scripted = state.list_script.lock().unwrap().pop_front().flatten();
    if let Some(scripted) = scripted {
        return answer(scripted);
    }
    let since = query.get("since").and_then(|s| clawbridge_whatsapp::timefmt::parse_time(s)).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let offset: usize =
        query.get("after").and_then(|a| a.strip_prefix("cursor-")).and_then(|a| a.parse().ok()).unwrap_or(0);
    // Keyset order of Kapso: (created_at, internal id) descending; insertion order plays the id.
    let mut items: Vec<(usize, Value)> =
        state.history.lock().unwrap().iter().cloned().enumerate().filter(|(_, m)| created(m) >= since).collect();
    items.sort_by_key(|(i, m)| std::cmp::Reverse((created(m), *i)));
    let items: Vec<Value> = items.into_iter().map(|(_, m)| m).collect();
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let next = offset + page.len();
    let after = if next < items.len() { json!(format!("cursor-{next}")) } else { Value::Null };
    axum::Json(
        json!({"data": page, "paging": {"cursors": {"before": null, "after": after}, "next": null, "previous": null}}),
    )
    .into_response()
}

fn created(m: &Value) -> i64 {
    m.pointer("/kapso/created_at")
        .and_then(Value::as_str)
        .and_then(clawbridge_whatsapp::timefmt::parse_time)
        .unwrap_or(0)
}

async fn upload(
    State(state): State<Arc<FakeState>>,
    Path(pnid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, "POST", format!("/{pnid}/media"), HashMap::new(), &headers, body);
    axum::Json(json!({"id": "media-uploaded-1"})).into_response()
}

async fn media_info(
    State(state): State<Arc<FakeState>>,
    Path(media_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", format!("/{media_id}"), query.clone(), &headers, Bytes::new());
    if query.get("phone_number_id").map(String::as_str) != Some(PNID) {
        return answer(Answer::error(400, json!({"error":"phone_number_id is required"})));
    }
    let base = state.base.lock().unwrap().clone();
    axum::Json(json!({"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x","download_url":format!("{base}/files/{media_id}"),
        "mime_type":"image/png","file_size":"4","id":media_id}))
    .into_response()
}

async fn file(State(state): State<Arc<FakeState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    record(&state, "GET", format!("/files/{name}"), HashMap::new(), &headers, Bytes::new());
    match state.files.lock().unwrap().get(&name) {
        Some((content_type, bytes)) => ([("content-type", content_type.clone())], bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect_out() -> Response {
    (StatusCode::FOUND, [("location", "https://169.254.169.254/latest/meta-data")]).into_response()
}

/// Waits until `check` holds (a bounded wait, not a timing assertion).
pub async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "condition not reached within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
