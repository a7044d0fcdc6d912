//! A fake of NHN Cloud KakaoTalk Bizmessage (reference/bizmsg.md §2) on 127.0.0.1: AlimTalk v2.3
//! sends (`X-Secret-Key`, `X-NC-API-IDEMPOTENCY-KEY` refused with -1005 on a repeat), the message
//! list by `senderGroupingKey`, result updates, and Brand Message freestyle sends.
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
    /// Message-list queries.
    pub lookups: usize,
    /// Numbers refused with -2000 inside a 200.
    pub refuse: HashSet<String>,
    /// The next send is taken and answered only after this long (longer than the client waits).
    pub hang_next: Option<Duration>,
    /// Answer the next sends with this HTTP status and no body (429, 503).
    pub fail_next: Vec<u16>,
    /// Result rows returned by `message-results`.
    pub results: Vec<Value>,
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
            .route("/brand-message/v1.0/appkeys/{appkey}/freestyle-messages", post(brand))
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
    State(state): State<Arc<Mutex<NhnState>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Some(refused) = refuse_credentials(&appkey, &headers) {
        return refused;
    }
    assert!(
        query.contains_key("requestId")
            || (query.contains_key("startRequestDate") && query.contains_key("endRequestDate")),
        "the list needs requestId or a request-date window: {query:?}"
    );
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.lookups += 1;
    let group = query.get("senderGroupingKey");
    let messages: Vec<Value> = s
        .taken
        .iter()
        .filter(|t| t.product == "alimtalk" && group.is_none_or(|g| *g == t.key))
        .map(|t| {
            json!({"requestId": t.request_id, "recipientSeq": t.seq, "recipientNo": t.recipient,
                   "senderGroupingKey": t.key, "recipientGroupingKey": t.reference, "messageStatus": "COMPLETED"})
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
    Json(json!({"header": header(0, "SUCCESS"), "messages": s.results}))
}

/// A result row as NHN reports it (`message-results` and the webhook's `hooks`).
pub fn result_row(taken: &Taken, status: &str, code: &str, resend_status: &str) -> Value {
    json!({
        "requestId": taken.request_id, "recipientSeq": taken.seq,
        "requestDate": "2026-12-24 09:00", "createDate": "2026-12-24 09:00", "receiveDate": "2026-12-24 09:00:03",
        "messageStatus": status, "resultCode": code, "resultCodeName": "", "resendStatus": resend_status,
    })
}
