//! A fake of Infobip's Kakao APIs (reference/bizmsg.md §4) on 127.0.0.1: AlimTalk
//! `POST /kakao-alim/1/messages` and Brand Message `POST /kakao-chingu/1/messages`, their delivery
//! reports (`GET …/reports`, each handed out once) and message logs (`GET …/logs?messageId=a,b`).
//!
//! It checks `Authorization: App <key>`, records every request (path and body), and can be told to
//! reject numbers inside a 200 (`status.groupName` REJECTED), to take a request and never answer
//! it (the crash case), or to fail the next requests with an HTTP status. Reports are made with
//! [`report`] and given with [`FakeInfobip::deliver`]; a report carries the `callbackData` its
//! message was sent with, as Infobip's do.
//!
//! Brand Message templates ([`brand_template`]) are listed by code, a page at a time
//! (`GET /kakao-brand-messages/1/templates?senderKey=…&since=…&page=…&size=…`, pages from 1, 100
//! codes by default), and read one by one (`GET /kakao-brand-messages/1/templates/single?sender=…&templateCode=…`).
//! A query the fake cannot read (no sender, a `since` not in `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, a page
//! below 1) is recorded in [`InfobipState::wire_errors`] and answered 400 in Infobip's error
//! envelope.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The API key the fake accepts.
pub const API_KEY: &str = "KEY";
/// The sender [`FakeInfobip::env`] configures.
pub const SENDER: &str = "OFFICIAL-ACCOUNT";

/// One message Infobip took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// `destinations[].messageId`: our reference.
    pub message_id: String,
    /// The request's bulk id.
    pub bulk_id: String,
    /// The number, international (`821012345678`).
    pub to: String,
    /// `kakao-alim` or `kakao-chingu`.
    pub api: &'static str,
    /// `webhooks.delivery.url`, when the message named one.
    pub report_url: Option<String>,
    /// `webhooks.callbackData`, echoed in its reports.
    pub callback_data: Option<String>,
}

/// What the fake has seen and what it is told to do.
#[derive(Debug, Default)]
pub struct InfobipState {
    /// Every request taken: its path and body.
    pub requests: Vec<(String, Value)>,
    /// Every message taken, in order.
    pub taken: Vec<Taken>,
    /// Numbers (international) rejected inside a 200.
    pub refuse: HashSet<String>,
    /// The next send is taken and answered only after this long (longer than the client waits).
    pub hang_next: Option<Duration>,
    /// Answer the next sends with this HTTP status and no body (429, 503).
    pub fail_next: Vec<u16>,
    /// Reports not handed out yet, per API (`kakao-alim`, `kakao-chingu`).
    pub reports: HashMap<&'static str, Vec<Value>>,
    /// The latest report of each message, by message id (what the logs show).
    pub latest: HashMap<String, Value>,
    /// Log queries, and the message ids they asked for.
    pub log_queries: Vec<Vec<String>>,
    /// Report queries.
    pub report_queries: usize,
    /// The Brand Message templates ([`brand_template`]), in listing order.
    pub brand_templates: Vec<Value>,
    /// Template queries: the path and the query string, in order.
    pub template_queries: Vec<(String, HashMap<String, String>)>,
    /// Queries refused for what they carry (answered 400), with the reason.
    pub wire_errors: Vec<String>,
    /// Answer the template queries with this HTTP status in Infobip's error envelope (403: a
    /// key that is not allowed to read them).
    pub fail_templates: Option<u16>,
}

/// A running fake Infobip; dropped, it stops.
#[derive(Debug)]
pub struct FakeInfobip {
    url: String,
    state: Arc<Mutex<InfobipState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeInfobip {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeInfobip {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(InfobipState::default()));
        let app = axum::Router::new()
            .route("/kakao-alim/1/messages", post(messages))
            .route("/kakao-chingu/1/messages", post(messages))
            .route("/kakao-alim/1/reports", get(reports))
            .route("/kakao-chingu/1/reports", get(reports))
            .route("/kakao-alim/1/logs", get(logs))
            .route("/kakao-chingu/1/logs", get(logs))
            .route("/kakao-brand-messages/1/templates", get(brand_templates))
            .route("/kakao-brand-messages/1/templates/single", get(brand_template_single))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Infobip");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    /// The base URL (`INFOBIP_BASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, InfobipState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives a report ([`report`]): handed out once by the reports query of its API, and shown by
    /// the logs from now on.
    pub fn deliver(&self, report: Value) {
        let mut s = self.state();
        let id = report["messageId"].as_str().unwrap_or("").to_owned();
        let api = s.taken.iter().find(|t| t.message_id == id).map_or("kakao-alim", |t| t.api);
        s.latest.insert(id, report.clone());
        s.reports.entry(api).or_default().push(report);
    }

    /// The environment that points clawbridge at this fake (sender [`SENDER`]).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BIZMSG_DEALER", "infobip".to_owned()),
            ("BIZMSG_SENDER_KEY", SENDER.to_owned()),
            ("BIZMSG_SMS_FROM", "02-1234-5678".to_owned()),
            ("INFOBIP_API_KEY", API_KEY.to_owned()),
            ("INFOBIP_BASE_URL", self.url.clone()),
        ]
    }
}

/// `None` when the request carries our key; otherwise Infobip's refusal.
fn refuse_credentials(headers: &HeaderMap) -> Option<(StatusCode, Json<Value>)> {
    let expected = format!("App {API_KEY}");
    (headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()))
        .then(|| (StatusCode::UNAUTHORIZED, Json(json!({"errorCode": "E401", "description": "Invalid login details"}))))
}

async fn messages(
    State(state): State<Arc<Mutex<InfobipState>>>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    if let Some(refused) = refuse_credentials(&headers) {
        return Ok(refused);
    }
    let api = if uri.path().starts_with("/kakao-chingu/") { "kakao-chingu" } else { "kakao-alim" };
    let (hang, answer) = {
        let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(status) = (!s.fail_next.is_empty()).then(|| s.fail_next.remove(0)) {
            return Err(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
        }
        s.requests.push((uri.path().to_owned(), body.clone()));
        let bulk_id = body["options"]["schedule"]["bulkId"]
            .as_str()
            .map_or_else(|| format!("b{}", s.requests.len()), str::to_owned);
        let mut answers = Vec::new();
        for m in body["messages"].as_array().cloned().unwrap_or_default() {
            for d in m["destinations"].as_array().cloned().unwrap_or_default() {
                let to = d["to"].as_str().unwrap_or("").to_owned();
                let message_id = d["messageId"].as_str().unwrap_or("").to_owned();
                let rejected = s.refuse.contains(&to);
                let status = if rejected {
                    json!({"groupId": 5, "groupName": "REJECTED", "id": 52, "name": "REJECTED_DESTINATION", "description": "bad destination"})
                } else {
                    json!({"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "accepted"})
                };
                answers.push(json!({"messageId": message_id, "destination": to, "status": status}));
                if !rejected {
                    let webhooks = &m["webhooks"];
                    s.taken.push(Taken {
                        message_id,
                        bulk_id: bulk_id.clone(),
                        to,
                        api,
                        report_url: webhooks["delivery"]["url"].as_str().map(str::to_owned),
                        callback_data: webhooks["callbackData"].as_str().map(str::to_owned),
                    });
                }
            }
        }
        (s.hang_next.take(), json!({"bulkId": bulk_id, "messages": answers}))
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    Ok((StatusCode::OK, Json(answer)))
}

/// A delivery report of `taken` as Infobip writes it (webhook, reports and logs): `status`
/// (`DELIVERED`, `UNDELIVERABLE`, `PENDING`…) with its name, and the error when there is one
/// (`(name, description, permanent)`), else `OK`.
pub fn report(taken: &Taken, status: &str, status_name: &str, error: Option<(&str, &str, bool)>) -> Value {
    let error = match error {
        Some((name, description, permanent)) => {
            json!({"groupId": 2, "groupName": "USER_ERRORS", "id": 3019, "name": name, "description": description, "permanent": permanent})
        }
        None => {
            json!({"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false})
        }
    };
    let mut row = json!({
        "bulkId": taken.bulk_id, "messageId": taken.message_id, "to": taken.to, "sender": SENDER,
        "sentAt": "2026-12-24T00:00:01.000+0000", "doneAt": "2026-12-24T00:00:03.000+0000", "messageCount": 1,
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": {"groupId": 3, "groupName": status, "id": 5, "name": status_name, "description": status_name},
        "error": error,
    });
    if let Some(data) = &taken.callback_data {
        row["callbackData"] = json!(data);
    }
    row
}

fn api_of(uri: &Uri) -> &'static str {
    if uri.path().starts_with("/kakao-chingu/") { "kakao-chingu" } else { "kakao-alim" }
}

fn limit_of(query: &HashMap<String, String>) -> usize {
    let limit = query.get("limit").map_or(Ok(50), |l| l.parse::<usize>());
    let limit = limit.unwrap_or_else(|_| panic!("limit {query:?}"));
    assert!((1..=1_000).contains(&limit), "Infobip's limit is at most 1000: {query:?}");
    limit
}

/// Each report once, at most `limit`, oldest first.
async fn reports(
    State(state): State<Arc<Mutex<InfobipState>>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(refused) = refuse_credentials(&headers) {
        return refused;
    }
    let limit = limit_of(&query);
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.report_queries += 1;
    let waiting = s.reports.entry(api_of(&uri)).or_default();
    let results: Vec<Value> = waiting.drain(..limit.min(waiting.len())).collect();
    (StatusCode::OK, Json(json!({"results": results})))
}

/// The messages asked for by id (comma-separated, at most 2,048 characters), with their latest
/// report, or pending.
async fn logs(
    State(state): State<Arc<Mutex<InfobipState>>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(refused) = refuse_credentials(&headers) {
        return refused;
    }
    let limit = limit_of(&query);
    let ids = query.get("messageId").cloned().unwrap_or_default();
    assert!(ids.len() <= 2_048, "messageId is at most 2048 characters: {}", ids.len());
    let ids: Vec<String> = ids.split(',').filter(|i| !i.is_empty()).map(str::to_owned).collect();
    let api = api_of(&uri);
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.log_queries.push(ids.clone());
    let results: Vec<Value> = s
        .taken
        .iter()
        .filter(|t| t.api == api && (ids.is_empty() || ids.contains(&t.message_id)))
        .take(limit)
        .map(|t| {
            let mut row =
                s.latest.get(&t.message_id).cloned().unwrap_or_else(|| report(t, "PENDING", "PENDING_ACCEPTED", None));
            // Logs name the number `destination`.
            if let Some(to) = row.as_object_mut().and_then(|o| o.remove("to")) {
                row["destination"] = to;
            }
            row
        })
        .collect();
    (StatusCode::OK, Json(json!({"results": results})))
}

/// A Brand Message template of [`SENDER`] with a `TEXT` content and a URL button named `button`,
/// as the single-template query answers it (plus the `templateCode` and `senderKey` it is
/// listed under).
pub fn brand_template(code: &str, name: &str, text: &str, button: Option<&str>) -> Value {
    let buttons: Vec<Value> = button
        .map(|name| json!({"name": name, "urlMobile": "https://m.example.com/deals", "urlPc": "https://example.com/deals", "type": "URL"}))
        .into_iter()
        .collect();
    json!({"templateCode": code, "senderKey": SENDER, "name": name,
           "templateContent": {"type": "TEXT", "text": text, "buttons": buttons}})
}

/// [`InfobipState::fail_templates`]'s answer, when set.
fn templates_failure(state: &InfobipState) -> Option<(StatusCode, Json<Value>)> {
    let status = StatusCode::from_u16(state.fail_templates?).unwrap_or(StatusCode::FORBIDDEN);
    Some((status, Json(json!({"errorCode": format!("E{}", status.as_u16()), "description": "Forbidden"}))))
}

fn bad_request(state: &mut InfobipState, problem: String) -> (StatusCode, Json<Value>) {
    state.wire_errors.push(problem.clone());
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errorCode": "E400", "description": "Request cannot be processed.",
                    "violations": [{"property": "query", "violation": problem}]})),
    )
}

/// The codes of the sender's templates, a page of `size` (default 100) from page 1.
async fn brand_templates(
    State(state): State<Arc<Mutex<InfobipState>>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(refused) = refuse_credentials(&headers) {
        return refused;
    }
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.template_queries.push((uri.path().to_owned(), query.clone()));
    if let Some(failed) = templates_failure(&s) {
        return failed;
    }
    let Some(sender) = query.get("senderKey").filter(|k| !k.is_empty()).cloned() else {
        return bad_request(&mut s, format!("no senderKey: {query:?}"));
    };
    if let Some(since) = query.get("since")
        && jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", since).and_then(|t| t.to_timestamp()).is_err()
    {
        return bad_request(&mut s, format!("since {since:?} is not yyyy-MM-dd'T'HH:mm:ss.SSSZ"));
    }
    let number = |name: &str, default: usize| query.get(name).map_or(Ok(default), |v| v.parse::<usize>());
    let (page, size) = match (number("page", 1), number("size", 100)) {
        (Ok(page), Ok(size)) if page >= 1 && size >= 1 => (page, size),
        _ => return bad_request(&mut s, format!("page/size {query:?}")),
    };
    let results: Vec<Value> = s
        .brand_templates
        .iter()
        .filter(|t| t["senderKey"] == sender.as_str())
        .skip((page - 1) * size)
        .take(size)
        .map(|t| json!({"templateCode": t["templateCode"]}))
        .collect();
    (StatusCode::OK, Json(json!({"results": results})))
}

/// One template by `sender` and `templateCode`: its name and content; 404 when there is none.
async fn brand_template_single(
    State(state): State<Arc<Mutex<InfobipState>>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(refused) = refuse_credentials(&headers) {
        return refused;
    }
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.template_queries.push((uri.path().to_owned(), query.clone()));
    if let Some(failed) = templates_failure(&s) {
        return failed;
    }
    let (Some(sender), Some(code)) = (query.get("sender"), query.get("templateCode")) else {
        return bad_request(&mut s, format!("sender and templateCode are required: {query:?}"));
    };
    match s.brand_templates.iter().find(|t| t["senderKey"] == sender.as_str() && t["templateCode"] == code.as_str()) {
        Some(t) => (StatusCode::OK, Json(json!({"name": t["name"], "templateContent": t["templateContent"]}))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"errorCode": "E404", "description": format!("no template {code} of sender {sender}")})),
        ),
    }
}
