//! A fake of Kapso's WhatsApp API (the Meta Cloud API proxy and its message-history extension),
//! written from the documented shapes (reference/kapso-whatsapp.md §2–§6): sends and mark-read
//! (§3), media upload, media URL lookup and downloads (§4), the message listing the poller pages
//! through (§5), and the v2 `whatsapp.message.received` record a webhook delivers (§6.5).
//!
//! It checks `X-API-Key` the way Kapso does (401 with Meta's error envelope), records every
//! request, and can be told to fail: scripted answers for the next sends or listings (status,
//! `Retry-After`, body). Ids are predictable: the n-th send is `wamid.sent{n}`, the n-th upload
//! `media-uploaded-{n}`, listing cursors `cursor-{offset}` (opaque to the client).
//!
//! One fake for the WhatsApp crate's tests and the binary's end-to-end tests.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The project API key the fake accepts.
pub const API_KEY: &str = "test-api-key";
/// The phone number id the fake serves.
pub const PNID: &str = "123456789012345";
/// The Graph API version in the fake's paths (`/meta/whatsapp/v24.0/…`), as in Kapso's docs.
pub const GRAPH_VERSION: &str = "v24.0";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method (`GET`, `POST`).
    pub method: String,
    /// Path without the query (`/meta/whatsapp/v24.0/123456789012345/messages`).
    pub path: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The `X-API-Key` header.
    pub api_key: Option<String>,
    /// The raw body (JSON for sends, multipart for uploads).
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text (a multipart upload's fields and file).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A message send, not a mark-read (both go to `POST …/messages`).
    pub fn is_send(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/messages") && self.json().get("status").is_none()
    }
}

/// A scripted answer: status, optional `Retry-After` (seconds), JSON body.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// An error answer without `Retry-After`.
    pub fn error(status: u16, body: Value) -> Self {
        Self { status, retry_after: None, body }
    }

    /// The same answer with `Retry-After: secs`.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// What the fake knows and records, shared with its handler.
#[derive(Debug, Default)]
struct FakeState {
    requests: Mutex<Vec<Recorded>>,
    /// Answers for the next message sends, in order (then success).
    send_script: Mutex<VecDeque<Answer>>,
    /// Answers for the next listings, in order (`None`: the real listing), then the listing.
    list_script: Mutex<VecDeque<Option<Answer>>>,
    /// Message history, any order; listed newest first by `kapso.created_at`.
    history: Mutex<Vec<Value>>,
    /// Media by id, served at `/files/{id}`: (content type, bytes).
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    sends: AtomicUsize,
    uploads: AtomicUsize,
    /// The fake's own URL, for the download URLs it hands out.
    base: OnceLock<String>,
}

/// The fake Kapso API on `127.0.0.1`, on a port of its own. Clones share it.
#[derive(Clone, Debug)]
pub struct FakeKapso {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeKapso {
    /// Starts the fake.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound");
        state.base.set(format!("http://{addr}")).expect("set once");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake Kapso serves") });
        Self { addr, state }
    }

    /// The base URL, as `KAPSO_BASE_URL` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Meta proxy's base (`{url}/meta/whatsapp/v24.0`), as the client takes it.
    pub fn meta_base(&self) -> String {
        format!("{}/meta/whatsapp/{GRAPH_VERSION}", self.url())
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The requests of `method` whose path ends with `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.ends_with(suffix)).collect()
    }

    /// The bodies of the message sends (not mark-read), in order.
    pub fn sends(&self) -> Vec<Value> {
        self.requests().into_iter().filter(Recorded::is_send).map(|r| r.json()).collect()
    }

    /// The sends whose body contains `needle`.
    pub fn sends_containing(&self, needle: &str) -> Vec<Value> {
        self.sends().into_iter().filter(|s| s.to_string().contains(needle)).collect()
    }

    /// How many times `wamid` was marked read.
    pub fn read_receipts_for(&self, wamid: &str) -> usize {
        self.requests_to("POST", "/messages")
            .iter()
            .map(Recorded::json)
            .filter(|b| b["status"] == "read" && b["message_id"] == wamid)
            .count()
    }

    /// The next message sends get these answers, in order (mark-read is not scripted).
    pub fn script_sends(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.send_script.lock().expect("lock").extend(answers);
    }

    /// The next listings get these answers, in order (`None`: the real listing).
    pub fn script_lists(&self, answers: impl IntoIterator<Item = Option<Answer>>) {
        self.state.list_script.lock().expect("lock").extend(answers);
    }

    /// Serves `bytes` as media `id` (downloadable at the returned URL, and resolvable through
    /// `GET /{id}?phone_number_id=…`).
    pub fn add_file(&self, id: &str, content_type: &str, bytes: Vec<u8>) -> String {
        self.state.files.lock().expect("lock").insert(id.to_owned(), (content_type.to_owned(), bytes));
        format!("{}/files/{id}", self.url())
    }

    /// Adds messages (the listing's `data` items, with `kapso.created_at`) to the history.
    pub fn add_history(&self, items: impl IntoIterator<Item = Value>) {
        self.state.history.lock().expect("lock").extend(items);
    }
}

/// A v2 non-batched `whatsapp.message.received` record of a text from `phone_number`
/// (`+15551234567`) to [`PNID`] (reference §6.5: no top-level `type`, no `message.from`).
pub fn message_received(wamid: &str, phone_number: &str, contact_name: &str, text: &str) -> Value {
    json!({
        "message": {
            "id": wamid, "timestamp": "1730092800", "type": "text", "text": {"body": text},
            "kapso": {"direction": "inbound", "status": "received", "processing_status": "pending",
                      "origin": "cloud_api", "has_media": false, "content": text}
        },
        "conversation": {"id": "conv_123", "phone_number": phone_number, "status": "active",
                         "phone_number_id": PNID, "kapso": {"contact_name": contact_name}},
        "is_new_conversation": true,
        "phone_number_id": PNID
    })
}

fn answer(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).expect("a valid scripted status");
    let mut response = (status, axum::Json(a.body)).into_response();
    if let Some(secs) = a.retry_after {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}

/// Meta's error envelope, as Kapso passes it through (reference §2).
fn graph_error(status: u16, message: &str, code: i64) -> Response {
    answer(Answer::error(status, json!({"error": {"message": message, "type": "OAuthException", "code": code}})))
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| reqwest::Url::parse(&format!("http://x/?{q}")).expect("a query").query_pairs().into_owned().collect())
        .unwrap_or_default();
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let recorded =
        Recorded { method: method.to_string(), path: uri.path().to_owned(), query, api_key, body, at: Instant::now() };
    state.requests.lock().expect("lock").push(recorded.clone());

    let segments: Vec<&str> = recorded.path.trim_matches('/').split('/').collect();
    // Media downloads need no API key (reference §4: `media_download?token=…`).
    if let ["files", id] = segments[..] {
        return match state.files.lock().expect("lock").get(id) {
            Some((content_type, bytes)) => ([("content-type", content_type.clone())], bytes.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if segments[..] == ["redirect-out"] {
        // A redirect to the cloud metadata service: what a download must never follow.
        return (StatusCode::FOUND, [("location", "https://169.254.169.254/latest/meta-data")]).into_response();
    }
    let ["meta", "whatsapp", _version, rest @ ..] = &segments[..] else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if recorded.api_key.as_deref() != Some(API_KEY) {
        return graph_error(401, "Invalid API key", 190);
    }
    match (&method, rest) {
        (&Method::POST, [pnid, "messages"]) if *pnid == PNID => send(&state, &recorded),
        (&Method::GET, [pnid, "messages"]) if *pnid == PNID => list(&state, &recorded),
        (&Method::POST, [pnid, "media"]) if *pnid == PNID => {
            let n = state.uploads.fetch_add(1, Ordering::SeqCst) + 1;
            axum::Json(json!({"id": format!("media-uploaded-{n}")})).into_response()
        }
        (&Method::GET, [media_id]) => media_url(&state, &recorded.query, media_id),
        _ => graph_error(400, "Unsupported request", 100),
    }
}

/// `POST /{phone_number_id}/messages`: a send (§3) or a mark-read (§3.1).
fn send(state: &FakeState, request: &Recorded) -> Response {
    let body = request.json();
    if body["messaging_product"] != "whatsapp" {
        return graph_error(400, "messaging_product is required", 100);
    }
    if body.get("status").and_then(Value::as_str) == Some("read") {
        return axum::Json(json!({"success": true})).into_response();
    }
    if let Some(scripted) = state.send_script.lock().expect("lock").pop_front() {
        return answer(scripted);
    }
    let n = state.sends.fetch_add(1, Ordering::SeqCst) + 1;
    let to = body.get("to").or_else(|| body.get("recipient")).cloned().unwrap_or(Value::Null);
    axum::Json(json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                      "messages": [{"id": format!("wamid.sent{n}")}]}))
    .into_response()
}

/// `GET /{phone_number_id}/messages` (§5): `since` on `kapso.created_at`, `direction`, `limit`
/// (default 20, at most 100), newest first, keyset pages through `paging.cursors.after`.
fn list(state: &FakeState, request: &Recorded) -> Response {
    if let Some(scripted) = state.list_script.lock().expect("lock").pop_front().flatten() {
        return answer(scripted);
    }
    let query = &request.query;
    let since = query.get("since").and_then(|s| created_ms(s)).unwrap_or(i64::MIN);
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).min(100);
    let offset: usize =
        query.get("after").and_then(|a| a.strip_prefix("cursor-")).and_then(|a| a.parse().ok()).unwrap_or(0);
    let direction = query.get("direction");
    // Keyset order (created_at, internal id) descending; the insertion order plays the id.
    let mut items: Vec<(usize, i64, Value)> = state
        .history
        .lock()
        .expect("lock")
        .iter()
        .enumerate()
        .map(|(i, m)| (i, m.pointer("/kapso/created_at").and_then(Value::as_str).and_then(created_ms).unwrap_or(0), m))
        .filter(|(_, at, m)| {
            *at >= since && direction.is_none_or(|d| m.pointer("/kapso/direction").and_then(Value::as_str) == Some(d))
        })
        .map(|(i, at, m)| (i, at, m.clone()))
        .collect();
    items.sort_by_key(|(i, at, _)| std::cmp::Reverse((*at, *i)));
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).map(|(_, _, m)| m).collect();
    let next = offset + page.len();
    let after = if next < total { json!(format!("cursor-{next}")) } else { Value::Null };
    axum::Json(
        json!({"data": page, "paging": {"cursors": {"before": null, "after": after}, "next": null, "previous": null}}),
    )
    .into_response()
}

/// `GET /{media_id}?phone_number_id=…` (§4; the id is required on the proxy).
fn media_url(state: &FakeState, query: &HashMap<String, String>, media_id: &str) -> Response {
    if query.get("phone_number_id").map(String::as_str) != Some(PNID) {
        return graph_error(400, "phone_number_id is required", 100);
    }
    let files = state.files.lock().expect("lock");
    let Some((content_type, bytes)) = files.get(media_id) else {
        return graph_error(404, "Unsupported get request: no such media", 100);
    };
    let base = state.base.get().expect("set at start");
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=fake",
        "download_url": format!("{base}/files/{media_id}"),
        "mime_type": content_type,
        "file_size": bytes.len().to_string(),
        "id": media_id,
    }))
    .into_response()
}

fn created_ms(raw: &str) -> Option<i64> {
    raw.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_millisecond)
}
