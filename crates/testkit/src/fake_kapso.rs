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
//! The Platform API part (`/platform/v1`, reference §1 and §6.1, Kapso's agent skills): the
//! project's phone numbers (`GET /whatsapp/phone_numbers`, `page`/`per_page`/`phone_number_id`,
//! `{"data": [...]}`), each number's webhooks (`GET|POST /whatsapp/phone_numbers/{id}/webhooks`,
//! `PATCH …/webhooks/{webhook_id}`, bodies `{"whatsapp_webhook": {...}}`) and test deliveries
//! (`POST /whatsapp/webhooks/{id}/test`). Kapso documents neither the webhook list's answer nor
//! whether it shows `secret_key`: the fake answers `{"data": [...]}` without secrets (or bare
//! arrays, [`FakeKapso::platform_bare_lists`]) and keeps the secrets for the tests to read. The
//! n-th webhook created is `wh-{n}`.
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
    /// The project's phone numbers (Platform API records); one, [`PNID`], unless set.
    phone_numbers: Mutex<Option<Vec<Value>>>,
    /// Every webhook of every number, secrets included (the answers leave them out).
    webhooks: Mutex<Vec<Value>>,
    webhooks_created: AtomicUsize,
    /// Answer Platform lists as bare arrays instead of `{"data": [...]}`.
    bare_lists: std::sync::atomic::AtomicBool,
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

    /// The project's phone numbers from now on (records as [`phone_number`] makes them).
    pub fn set_phone_numbers(&self, numbers: impl IntoIterator<Item = Value>) {
        *self.state.phone_numbers.lock().expect("lock") = Some(numbers.into_iter().collect());
    }

    /// Platform API lists are answered as bare arrays (`true`) or as `{"data": [...]}`.
    pub fn platform_bare_lists(&self, bare: bool) {
        self.state.bare_lists.store(bare, Ordering::SeqCst);
    }

    /// Every webhook as the fake keeps it: `id`, `phone_number_id`, `url`, `events`, `active`,
    /// `payload_version`, `kind` and `secret_key`.
    pub fn webhooks(&self) -> Vec<Value> {
        self.state.webhooks.lock().expect("lock").clone()
    }

    /// Adds a webhook to `phone_number_id` as if made in Kapso's dashboard; returns its id.
    pub fn add_webhook(&self, phone_number_id: &str, fields: Value) -> String {
        let n = self.state.webhooks_created.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("wh-{n}");
        let mut hook = json!({"id": id, "phone_number_id": phone_number_id, "kind": "kapso", "active": true,
                              "payload_version": "v2", "events": [], "url": "", "secret_key": null});
        merge(&mut hook, &fields);
        self.state.webhooks.lock().expect("lock").push(hook);
        id
    }

    /// The requests to the Platform API (`/platform/v1/…`), in order.
    pub fn platform_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path.starts_with("/platform/")).collect()
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

/// A phone number record of `GET /platform/v1/whatsapp/phone_numbers`.
pub fn phone_number(phone_number_id: &str, display_phone_number: &str, name: &str) -> Value {
    json!({"id": format!("cfg-{phone_number_id}"), "phone_number_id": phone_number_id,
           "display_phone_number": display_phone_number, "name": name, "business_account_id": "100000000000009"})
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
    if let ["platform", "v1", rest @ ..] = &segments[..] {
        if recorded.api_key.as_deref() != Some(API_KEY) {
            return answer(Answer::error(401, json!({"error": "Invalid API key"})));
        }
        return platform(&state, &method, rest, &recorded);
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

/// The Platform API (`/platform/v1/…`).
fn platform(state: &FakeState, method: &Method, rest: &[&str], request: &Recorded) -> Response {
    let numbers = state
        .phone_numbers
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| vec![phone_number(PNID, "+1 555-010-0000", "Test Business")]);
    let known = |pnid: &str| numbers.iter().any(|n| n["phone_number_id"] == pnid);
    let not_found = |what: &str| answer(Answer::error(404, json!({"error": format!("{what} not found")})));
    match (method, rest) {
        (&Method::GET, ["whatsapp", "phone_numbers"]) => {
            let only = request.query.get("phone_number_id");
            let items: Vec<Value> =
                numbers.iter().filter(|n| only.is_none_or(|id| n["phone_number_id"] == id.as_str())).cloned().collect();
            list_page(state, items, &request.query)
        }
        (_, ["whatsapp", "phone_numbers", pnid, "webhooks", ..]) if !known(pnid) => not_found("Phone number"),
        (&Method::GET, ["whatsapp", "phone_numbers", pnid, "webhooks"]) => {
            let items: Vec<Value> = state
                .webhooks
                .lock()
                .expect("lock")
                .iter()
                .filter(|h| h["phone_number_id"] == *pnid)
                .map(public_webhook)
                .collect();
            list_page(state, items, &request.query)
        }
        (&Method::POST, ["whatsapp", "phone_numbers", pnid, "webhooks"]) => {
            let body = request.json();
            let Some(fields) = body.get("whatsapp_webhook").filter(|f| f.is_object()) else {
                return answer(Answer::error(422, json!({"error": "whatsapp_webhook is required"})));
            };
            if fields.get("url").and_then(Value::as_str).is_none_or(str::is_empty)
                || !fields.get("events").is_some_and(Value::is_array)
            {
                return answer(Answer::error(422, json!({"error": "url and events are required"})));
            }
            let n = state.webhooks_created.fetch_add(1, Ordering::SeqCst) + 1;
            let mut hook = json!({"id": format!("wh-{n}"), "phone_number_id": pnid, "kind": "kapso", "active": true,
                                  "payload_version": "v2", "buffer_enabled": false, "secret_key": null});
            merge(&mut hook, fields);
            let shown = public_webhook(&hook);
            state.webhooks.lock().expect("lock").push(hook);
            (StatusCode::CREATED, axum::Json(json!({"data": shown}))).into_response()
        }
        (&Method::PATCH, ["whatsapp", "phone_numbers", pnid, "webhooks", id]) => {
            let body = request.json();
            let Some(fields) = body.get("whatsapp_webhook").filter(|f| f.is_object()) else {
                return answer(Answer::error(422, json!({"error": "whatsapp_webhook is required"})));
            };
            let mut hooks = state.webhooks.lock().expect("lock");
            let Some(hook) = hooks.iter_mut().find(|h| h["id"] == *id && h["phone_number_id"] == *pnid) else {
                return not_found("Webhook");
            };
            merge(hook, fields);
            axum::Json(json!({"data": public_webhook(hook)})).into_response()
        }
        (&Method::POST, ["whatsapp", "webhooks", id, "test"]) => {
            if !state.webhooks.lock().expect("lock").iter().any(|h| h["id"] == *id) {
                return not_found("Webhook");
            }
            axum::Json(json!({"data": {"success": true, "webhook_id": id}})).into_response()
        }
        _ => not_found("Route"),
    }
}

/// One page of a Platform list (`page` from 1, `per_page` default 20).
fn list_page(state: &FakeState, items: Vec<Value>, query: &HashMap<String, String>) -> Response {
    let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(20);
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    if state.bare_lists.load(Ordering::SeqCst) {
        return axum::Json(Value::Array(data)).into_response();
    }
    let total_pages = total.div_ceil(per_page).max(1);
    axum::Json(json!({"data": data, "meta": {"page": page, "per_page": per_page, "total_pages": total_pages, "total_count": total}}))
        .into_response()
}

/// A webhook as the API shows it: without its secret.
fn public_webhook(hook: &Value) -> Value {
    let mut shown = hook.clone();
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("secret_key");
    }
    shown
}

/// Sets every field of `fields` on `target` (both objects).
fn merge(target: &mut Value, fields: &Value) {
    if let (Some(target), Some(fields)) = (target.as_object_mut(), fields.as_object()) {
        for (key, value) in fields {
            target.insert(key.clone(), value.clone());
        }
    }
}

fn created_ms(raw: &str) -> Option<i64> {
    raw.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_millisecond)
}
