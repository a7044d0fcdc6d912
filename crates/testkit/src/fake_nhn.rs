//! A fake of NHN Cloud KakaoTalk Bizmessage (reference/bizmsg.md §2) on 127.0.0.1: AlimTalk v2.3
//! sends (`X-Secret-Key`, `X-NC-API-IDEMPOTENCY-KEY` refused with -1005 on a repeat), the message
//! lists of AlimTalk and Brand Message (by `senderGroupingKey` in a request-date window, or by
//! `requestId`, each message with its result), result updates, Brand Message freestyle and
//! template ("basic") sends, the Brand Message image upload (multipart), and the AlimTalk and
//! Brand Message template lists.
//!
//! It checks what the reference says a request must carry, records every request, and can be
//! told to refuse numbers (`-2000` inside a 200), to take a request and never answer it (the
//! crash case), and to report delivery results.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message NHN took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// NHN's request id.
    pub request_id: String,
    /// Its sequence in the request (1-based).
    pub seq: i64,
    /// The request's idempotency key (also its `senderGroupingKey`).
    pub key: String,
    /// Our reference (`recipientGroupingKey`).
    pub reference: String,
    /// The number.
    pub recipient: String,
    /// `alimtalk` or `brand`.
    pub product: &'static str,
}

/// What the fake has seen and what it is told to do.
#[derive(Debug, Default)]
pub struct NhnState {
    /// Bodies of the requests taken, by idempotency key.
    pub requests: HashMap<String, Value>,
    /// Every message taken, in order.
    pub taken: Vec<Taken>,
    /// Requests refused as repeats (-1005).
    pub duplicates: usize,
    /// Message-list queries by request key (`senderGroupingKey`): lookups before a resend.
    pub lookups: usize,
    /// Message-list queries by `requestId`: results asked for by id.
    pub request_queries: usize,
    /// Numbers refused with -2000 inside a 200.
    pub refuse: HashSet<String>,
    /// The next send is taken and answered only after this long (longer than the client waits).
    pub hang_next: Option<Duration>,
    /// Answer the next sends with this HTTP status and no body (429, 503).
    pub fail_next: Vec<u16>,
    /// Result rows ([`result_row`]): returned by `message-results`, and merged into the message
    /// lists (the last row of a message wins).
    pub results: Vec<Value>,
    /// Brand Message images uploaded, in order.
    pub images: Vec<Upload>,
    /// Rows of the AlimTalk template list (`templateListResponse.templates`).
    pub alimtalk_templates: Vec<Value>,
    /// Rows of the Brand Message template list.
    pub brand_templates: Vec<Value>,
}

/// One image upload, as the multipart body carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The `imageType` part.
    pub image_type: String,
    /// The `image` part's file name.
    pub file_name: String,
    /// The `image` part's Content-Type.
    pub content_type: String,
    /// The `image` part's bytes.
    pub bytes: Vec<u8>,
    /// The URL answered.
    pub image_url: String,
}

/// A running fake NHN; dropped, it stops.
#[derive(Debug)]
pub struct FakeNhn {
    url: String,
    state: Arc<Mutex<NhnState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNhn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The app key and secret key the fake accepts.
pub const APP_KEY: &str = "APPKEY";
/// See [`APP_KEY`].
pub const SECRET_KEY: &str = "SECRETKEY";

impl FakeNhn {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(NhnState::default()));
        let app = axum::Router::new()
            .route("/alimtalk/v2.3/appkeys/{appkey}/messages", post(alimtalk).get(list))
            .route("/alimtalk/v2.3/appkeys/{appkey}/message-results", get(results))
            .route("/brand-message/v1.0/appkeys/{appkey}/messages", get(brand_list))
            .route("/brand-message/v1.0/appkeys/{appkey}/freestyle-messages", post(brand))
            .route("/brand-message/v1.0/appkeys/{appkey}/basic-messages", post(basic))
            .route("/brand-message/v1.0/appkeys/{appkey}/images", post(image))
            .route("/brand-message/v1.0/appkeys/{appkey}/senders/{sender}/templates", get(brand_templates))
            .route("/alimtalk/v2.3/appkeys/{appkey}/senders/{sender}/templates", get(alimtalk_templates))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake NHN");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    /// The base URL (`NHN_BIZMSG_BASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, NhnState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The environment that points clawbridge at this fake, with `sender_key`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BIZMSG_DEALER", "nhn".to_owned()),
            ("BIZMSG_SENDER_KEY", "SENDERKEY".to_owned()),
            ("BIZMSG_SMS_FROM", "02-1234-5678".to_owned()),
            ("NHN_BIZMSG_APP_KEY", APP_KEY.to_owned()),
            ("NHN_BIZMSG_SECRET_KEY", SECRET_KEY.to_owned()),
            ("NHN_BIZMSG_BASE_URL", self.url.clone()),
        ]
    }
}

fn header(code: i64, message: &str) -> Value {
    json!({"resultCode": code, "resultMessage": message, "isSuccessful": code == 0})
}

/// `None` when the request is authentic; otherwise NHN's refusal.
fn refuse_credentials(appkey: &str, headers: &HeaderMap) -> Option<Json<Value>> {
    if appkey != APP_KEY {
        return Some(Json(json!({"header": header(-1000, "Invalid appKey")})));
    }
    if headers.get("x-secret-key").and_then(|v| v.to_str().ok()) != Some(SECRET_KEY) {
        return Some(Json(json!({"header": header(-1001, "Invalid secretKey")})));
    }
    None
}

async fn alimtalk(
    state: State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    take(state, &appkey, &headers, body, "alimtalk").await
}

async fn brand(
    state: State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    take(state, &appkey, &headers, body, "brand").await
}

/// A template send: `templateCode`, and `targeting` on every recipient (required here).
async fn basic(
    state: State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    if body["templateCode"].as_str().is_none_or(str::is_empty) {
        return Ok(Json(json!({"header": header(-2000, "templateCode is required")})));
    }
    let recipients = body["recipientList"].as_array().cloned().unwrap_or_default();
    if recipients.iter().any(|r| !matches!(r["targeting"].as_str(), Some("I" | "M" | "N"))) {
        return Ok(Json(json!({"header": header(-2000, "targeting is required")})));
    }
    take(state, &appkey, &headers, body, "brand").await
}

/// The multipart image upload: an `imageType` part and an `image` file part.
async fn image(
    State(state): State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(&appkey, &headers) {
        return refused;
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(boundary) = content_type.strip_prefix("multipart/form-data; boundary=") else {
        return Json(json!({"header": header(-2000, &format!("not multipart: {content_type}"))}));
    };
    let parts = multipart_parts(&body, boundary);
    let image_type =
        parts.iter().find(|p| p.name == "imageType").map(|p| String::from_utf8_lossy(&p.body).into_owned());
    let Some(file) = parts.iter().find(|p| p.name == "image" && p.file_name.is_some()) else {
        return Json(json!({"header": header(-2000, "image is required")}));
    };
    let Some(image_type) = image_type.filter(|t| t == "IMAGE" || t == "WIDE_IMAGE") else {
        return Json(json!({"header": header(-2000, "imageType is required")}));
    };
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let image_url = format!("https://mud-kage.kakao.com/dn/fake/{}.img", s.images.len() + 1);
    s.images.push(Upload {
        image_type,
        file_name: file.file_name.clone().unwrap_or_default(),
        content_type: file.content_type.clone(),
        bytes: file.body.clone(),
        image_url: image_url.clone(),
    });
    let seq = s.images.len();
    Json(
        json!({"header": header(0, "SUCCESS"), "image": {"imageSeq": seq, "imageUrl": image_url, "imageName": file.file_name}}),
    )
}

struct Part {
    name: String,
    file_name: Option<String>,
    content_type: String,
    body: Vec<u8>,
}

/// The parts of a multipart/form-data body (enough of RFC 7578 for what clawbridge sends).
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_part = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let Some(head_end) = find(rest_part, b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest_part[..head_end]).into_owned();
        let after = &rest_part[head_end + 4..];
        let Some(end) = find(after, format!("\r\n{delimiter}").as_bytes()) else { break };
        let disposition = head.lines().find(|l| l.starts_with("Content-Disposition:")).unwrap_or("").to_owned();
        let attr = |key: &str| {
            disposition
                .split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix(&format!("{key}=\""))?.strip_suffix('"').map(str::to_owned))
        };
        let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).unwrap_or("").to_owned();
        parts.push(Part {
            name: attr("name").unwrap_or_default(),
            file_name: attr("filename"),
            content_type,
            body: after[..end].to_vec(),
        });
        rest = &after[end + 2..];
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn brand_templates(
    State(state): State<Arc<Mutex<NhnState>>>,
    Path((appkey, _sender)): Path<(String, String)>,
    headers: HeaderMap,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(&appkey, &headers) {
        return refused;
    }
    let s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(json!({"header": header(0, "SUCCESS"),
                "templateListResponse": {"templates": s.brand_templates, "totalCount": s.brand_templates.len()}}))
}

async fn alimtalk_templates(
    State(state): State<Arc<Mutex<NhnState>>>,
    Path((appkey, _sender)): Path<(String, String)>,
    headers: HeaderMap,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(&appkey, &headers) {
        return refused;
    }
    let s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(json!({"header": header(0, "SUCCESS"),
                "templateListResponse": {"templates": s.alimtalk_templates, "totalCount": s.alimtalk_templates.len()}}))
}

async fn take(
    State(state): State<Arc<Mutex<NhnState>>>,
    appkey: &str,
    headers: &HeaderMap,
    body: Value,
    product: &'static str,
) -> Result<Json<Value>, StatusCode> {
    if let Some(refused) = refuse_credentials(appkey, headers) {
        return Ok(refused);
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("application/json"), "Content-Type {content_type}");
    let key = headers.get("x-nc-api-idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (hang, request_id, results) = {
        let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(status) = (!s.fail_next.is_empty()).then(|| s.fail_next.remove(0)) {
            return Err(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
        }
        if !key.is_empty() && s.requests.contains_key(&key) {
            s.duplicates += 1;
            return Ok(Json(json!({"header": header(-1005, "Duplicated request (idempotency key)")})));
        }
        let request_id = format!("{}-{}", product.to_uppercase(), s.requests.len() + 1);
        s.requests.insert(key.clone(), body.clone());
        let mut results = Vec::new();
        let recipients = body["recipientList"].as_array().cloned().unwrap_or_default();
        for (i, r) in recipients.iter().enumerate() {
            let seq = i64::try_from(i).unwrap_or(0) + 1;
            let no = r["recipientNo"].as_str().unwrap_or("").to_owned();
            let reference = r["recipientGroupingKey"].as_str().unwrap_or("").to_owned();
            let refused = s.refuse.contains(&no);
            if !refused {
                s.taken.push(Taken {
                    request_id: request_id.clone(),
                    seq,
                    key: key.clone(),
                    reference: reference.clone(),
                    recipient: no.clone(),
                    product,
                });
            }
            results.push(json!({
                "recipientSeq": seq, "recipientNo": no,
                "resultCode": if refused { -2000 } else { 0 },
                "resultMessage": if refused { "Invalid recipientNo" } else { "SUCCESS" },
                "recipientGroupingKey": reference,
            }));
        }
        (s.hang_next.take(), request_id, results)
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    Ok(Json(json!({
        "header": header(0, "SUCCESS"),
        "message": {"requestId": request_id, "senderGroupingKey": key, "sendResults": results},
    })))
}

async fn list(
    state: State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
) -> Json<Value> {
    messages(state, &appkey, &headers, query, "alimtalk")
}

async fn brand_list(
    state: State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
) -> Json<Value> {
    messages(state, &appkey, &headers, query, "brand")
}

/// The message list of `product` (the same query and shape for both): by `requestId`, or by a
/// request-date window with an optional `senderGroupingKey`; each message with its latest result.
fn messages(
    State(state): State<Arc<Mutex<NhnState>>>,
    appkey: &str,
    headers: &HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    product: &'static str,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(appkey, headers) {
        return refused;
    }
    assert!(
        query.contains_key("requestId")
            || (query.contains_key("startRequestDate") && query.contains_key("endRequestDate")),
        "the list needs requestId or a request-date window: {query:?}"
    );
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let request_id = query.get("requestId");
    if request_id.is_some() {
        s.request_queries += 1;
    } else {
        s.lookups += 1;
    }
    let group = query.get("senderGroupingKey");
    let messages: Vec<Value> = s
        .taken
        .iter()
        .filter(|t| t.product == product && group.is_none_or(|g| *g == t.key))
        .filter(|t| request_id.is_none_or(|r| *r == t.request_id))
        .map(|t| {
            let mut row = json!({"requestId": t.request_id, "recipientSeq": t.seq, "recipientNo": t.recipient,
                                 "senderGroupingKey": t.key, "recipientGroupingKey": t.reference});
            let result = s.results.iter().rev().find(|r| r["requestId"] == t.request_id && r["recipientSeq"] == t.seq);
            if let Some(result) = result {
                for field in ["messageStatus", "resultCode", "resultCodeName", "receiveDate"] {
                    row[field] = result[field].clone();
                }
                // The Brand Message list names the fallback's state `resendStatusCode`.
                let resend = if product == "brand" { "resendStatusCode" } else { "resendStatus" };
                row[resend] = result["resendStatus"].clone();
            }
            row
        })
        .collect();
    Json(
        json!({"header": header(0, "SUCCESS"), "messageSearchResultResponse": {"messages": messages, "totalCount": messages.len()}}),
    )
}

async fn results(
    State(state): State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(&appkey, &headers) {
        return refused;
    }
    assert!(query.contains_key("startUpdateDate") && query.contains_key("endUpdateDate"), "{query:?}");
    let s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // AlimTalk's result updates: Brand Messages have none.
    let alimtalk: Vec<&Value> = s
        .results
        .iter()
        .filter(|r| {
            s.taken
                .iter()
                .any(|t| t.product == "alimtalk" && r["requestId"] == t.request_id && r["recipientSeq"] == t.seq)
        })
        .collect();
    Json(json!({"header": header(0, "SUCCESS"), "messages": alimtalk}))
}

/// A result row as NHN reports it (`message-results` and the webhook's `hooks`).
pub fn result_row(taken: &Taken, status: &str, code: &str, resend_status: &str) -> Value {
    json!({
        "requestId": taken.request_id, "recipientSeq": taken.seq,
        "requestDate": "2026-12-24 09:00", "createDate": "2026-12-24 09:00", "receiveDate": "2026-12-24 09:00:03",
        "messageStatus": status, "resultCode": code, "resultCodeName": "", "resendStatus": resend_status,
    })
}
