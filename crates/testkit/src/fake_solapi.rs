//! A fake of Solapi (reference/bizmsg.md §3) on 127.0.0.1: `POST /messages/v4/send-many/detail`
//! and the message list `GET /messages/v4/list` (by `messageIds`, or by a `dateType=CREATED`
//! window, paged by `startKey`/`nextKey`), in the shapes of the `solapi` SDK.
//!
//! It recomputes the `HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…` header of every request
//! (and refuses a salt it has seen before), records every body, and can be told to refuse numbers
//! inside a 200 (`failedMessageList`), to take a request and never answer it (the crash case), or
//! to fail the next requests with an HTTP status. A message's `dateCreated` is the signed `date`
//! of the request that brought it (so a client on a test clock is listed at its own time); its
//! status is 2000 until [`FakeSolapi::set_status`] says otherwise.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The API key and secret the fake accepts.
pub const API_KEY: &str = "NCSKEY";
/// See [`API_KEY`].
pub const API_SECRET: &str = "SECRET";
/// The `pfId` [`FakeSolapi::env`] configures.
pub const PF_ID: &str = "KA01PF1";

/// One message Solapi took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Solapi's message id (`M4V…`).
    pub message_id: String,
    /// The request's group id (`G4V…`).
    pub group_id: String,
    /// The number (`to`).
    pub to: String,
    /// The message's `type` (`ATA`, `BMS_TEXT`, …).
    pub kind: String,
    /// Its `customFields`, as sent.
    pub custom_fields: Value,
    /// The signed `date` of the request that brought it (its `dateCreated`).
    pub created: String,
}

/// What the fake has seen and what it is told to do.
#[derive(Debug, Default)]
pub struct SolapiState {
    /// Every salt seen: a repeat is refused.
    pub salts: HashSet<String>,
    /// Requests refused for their `Authorization` header, with the reason.
    pub signature_errors: Vec<String>,
    /// Bodies of the sends taken, in order.
    pub bodies: Vec<Value>,
    /// Every message taken, in order.
    pub taken: Vec<Taken>,
    /// Numbers refused inside a 200 (`failedMessageList`, status code 1062).
    pub refuse: HashSet<String>,
    /// The next send is taken and answered only after this long (longer than the client waits).
    pub hang_next: Option<Duration>,
    /// Answer the next sends with this HTTP status and no body (429, 503).
    pub fail_next: Vec<u16>,
    /// Message ids handed out so far: the next one is `M4V{n}`.
    next_message: usize,
    /// Each message's `(statusCode, reason)` since [`FakeSolapi::set_status`].
    pub statuses: HashMap<String, (String, String)>,
    /// The query strings of the list queries, in order.
    pub list_queries: Vec<Vec<(String, String)>>,
}

/// A running fake Solapi; dropped, it stops.
#[derive(Debug)]
pub struct FakeSolapi {
    url: String,
    state: Arc<Mutex<SolapiState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSolapi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSolapi {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SolapiState::default()));
        let app = axum::Router::new()
            .route("/messages/v4/send-many/detail", post(send))
            .route("/messages/v4/list", get(list))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Solapi");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    /// The base URL (`SOLAPI_BASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, SolapiState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the `statusCode` (4000 delivered; 2000/3000 on the way; others failed) and `reason`
    /// the list and [`stored`] show for `message_id`.
    pub fn set_status(&self, message_id: &str, status_code: &str, reason: &str) {
        self.state().statuses.insert(message_id.to_owned(), (status_code.to_owned(), reason.to_owned()));
    }

    /// The environment that points clawbridge at this fake (sender `pfId` [`PF_ID`]).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BIZMSG_DEALER", "solapi".to_owned()),
            ("BIZMSG_SENDER_KEY", PF_ID.to_owned()),
            ("BIZMSG_SMS_FROM", "02-1234-5678".to_owned()),
            ("SOLAPI_API_KEY", API_KEY.to_owned()),
            ("SOLAPI_API_SECRET", API_SECRET.to_owned()),
            ("SOLAPI_BASE_URL", self.url.clone()),
        ]
    }
}

/// Checks the `Authorization` header the way Solapi does; the salt and the signed date on success.
fn check_signature(headers: &HeaderMap) -> Result<(String, String), String> {
    let header = headers.get("authorization").ok_or("no Authorization")?.to_str().map_err(|e| e.to_string())?;
    let rest = header.strip_prefix("HMAC-SHA256 ").ok_or("not HMAC-SHA256")?;
    let fields: BTreeMap<&str, &str> = rest.split(", ").filter_map(|kv| kv.split_once('=')).collect();
    let field = |name: &str| fields.get(name).copied().ok_or(format!("no {name} in Authorization"));
    let (key, date, salt, signature) = (field("apiKey")?, field("date")?, field("salt")?, field("signature")?);
    if key != API_KEY {
        return Err(format!("api key {key}"));
    }
    if salt.len() != 32 || !salt.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("salt {salt}"));
    }
    date.parse::<jiff::Timestamp>().map_err(|e| format!("date {date}: {e}"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(API_SECRET.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{date}{salt}").as_bytes());
    if hex::encode(mac.finalize().into_bytes()) != signature {
        return Err("signature".into());
    }
    Ok((salt.to_owned(), date.to_owned()))
}

fn refused(state: &mut SolapiState, error_code: &str, reason: String) -> (StatusCode, Json<Value>) {
    state.signature_errors.push(reason.clone());
    (StatusCode::UNAUTHORIZED, Json(json!({"errorCode": error_code, "errorMessage": reason})))
}

async fn send(
    State(state): State<Arc<Mutex<SolapiState>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let (hang, answer) = {
        let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (salt, date) = match check_signature(&headers) {
            Ok(checked) => checked,
            Err(e) => return Ok(refused(&mut s, "SignatureDoesNotMatch", e)),
        };
        if !s.salts.insert(salt.clone()) {
            return Ok(refused(&mut s, "DuplicatedSignature", format!("salt {salt} used twice")));
        }
        if let Some(status) = (!s.fail_next.is_empty()).then(|| s.fail_next.remove(0)) {
            return Err(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
        }
        s.bodies.push(body.clone());
        let group_id = format!("G4V{}", s.bodies.len());
        let mut failed = Vec::new();
        let mut listed = Vec::new();
        for m in body["messages"].as_array().cloned().unwrap_or_default() {
            let to = m["to"].as_str().unwrap_or("").to_owned();
            let kind = m["type"].as_str().unwrap_or("").to_owned();
            let message_id = format!("M4V{}", s.next_message);
            s.next_message += 1;
            let custom_fields = m.get("customFields").cloned().unwrap_or(Value::Null);
            if s.refuse.contains(&to) {
                failed.push(json!({"to": to, "from": m["from"], "type": kind, "messageId": message_id,
                                   "statusCode": "1062", "statusMessage": "invalid number", "customFields": custom_fields}));
            } else {
                listed.push(
                    json!({"messageId": message_id, "groupId": group_id, "to": to, "type": kind, "statusCode": "2000",
                                   "statusMessage": "정상 접수", "customFields": custom_fields}),
                );
                s.taken.push(Taken {
                    message_id,
                    group_id: group_id.clone(),
                    to,
                    kind,
                    custom_fields,
                    created: date.clone(),
                });
            }
        }
        let answer = json!({
            "groupInfo": {"groupId": group_id, "count": {"total": listed.len() + failed.len(), "registeredFailed": failed.len()}},
            "failedMessageList": failed, "messageList": listed,
        });
        (s.hang_next.take(), answer)
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    Ok((StatusCode::OK, Json(answer)))
}

/// A message as the list (and the "single report" webhook) shows it.
pub fn stored(state: &SolapiState, taken: &Taken) -> Value {
    let (code, reason) =
        state.statuses.get(&taken.message_id).cloned().unwrap_or_else(|| ("2000".into(), String::new()));
    json!({
        "messageId": taken.message_id, "groupId": taken.group_id, "to": taken.to, "from": "0212345678", "type": taken.kind,
        "statusCode": code, "status": if code == "2000" || code == "3000" { "PENDING" } else { "COMPLETE" },
        "reason": if reason.is_empty() { Value::Null } else { json!(reason) },
        "customFields": taken.custom_fields, "dateCreated": taken.created, "dateUpdated": taken.created,
        "dateReceived": if code == "4000" { json!(taken.created) } else { Value::Null },
    })
}

/// `GET /messages/v4/list`: by `messageIds` (repeated) or `messageId`, or `dateType=CREATED` with
/// `startDate`/`endDate`; `limit` (default 20) a page, `startKey` the page after `nextKey`.
async fn list(
    State(state): State<Arc<Mutex<SolapiState>>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let salt = match check_signature(&headers) {
        Ok((salt, _)) => salt,
        Err(e) => return refused(&mut s, "SignatureDoesNotMatch", e),
    };
    if !s.salts.insert(salt.clone()) {
        return refused(&mut s, "DuplicatedSignature", format!("salt {salt} used twice"));
    }
    s.list_queries.push(query.clone());
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let ids: Vec<&str> =
        query.iter().filter(|(k, _)| k == "messageIds" || k == "messageId").map(|(_, v)| v.as_str()).collect();
    let date = |name: &str| {
        value(name)
            .map(|d| d.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("{name} {d:?} is not ISO 8601: {e}")))
    };
    let (from, to) = (date("startDate"), date("endDate"));
    if from.is_some() || to.is_some() {
        assert_eq!(value("dateType").as_deref(), Some("CREATED"), "a window by creation: {query:?}");
    }
    let limit: usize = value("limit").map_or(20, |l| l.parse().expect("limit is a number"));
    let matching: Vec<&Taken> = s
        .taken
        .iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.message_id.as_str()))
        .filter(|t| {
            let created: jiff::Timestamp = t.created.parse().expect("a signed date");
            from.is_none_or(|f| created >= f) && to.is_none_or(|u| created <= u)
        })
        .collect();
    let start = value("startKey").and_then(|k| matching.iter().position(|t| t.message_id == k)).unwrap_or(0);
    let page: Vec<&Taken> = matching.iter().skip(start).take(limit).copied().collect();
    let next_key = matching.get(start + limit).map(|t| t.message_id.clone());
    let list: serde_json::Map<String, Value> = page.iter().map(|t| (t.message_id.clone(), stored(&s, t))).collect();
    (
        StatusCode::OK,
        Json(json!({"startKey": value("startKey"), "nextKey": next_key, "limit": limit, "messageList": list})),
    )
}
