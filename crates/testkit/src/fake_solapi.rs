//! A fake of Solapi (reference/bizmsg.md §3) on 127.0.0.1: `POST /messages/v4/send-many/detail`
//! (AlimTalk `ATA` and Brand Message `BMS_*` messages), the message list `GET /messages/v4/list`
//! (by `messageIds`, or by a `dateType=CREATED` window, paged by `startKey`/`nextKey`), the file
//! upload `POST /storage/v1/files` (Brand Message images, type `BMS`, answered with a `fileId`)
//! and the AlimTalk template list `GET /kakao/v2/templates?channelId=…` (paged by
//! `startKey`/`nextKey`), in the shapes of the `solapi` SDK.
//!
//! It recomputes the `HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…` header of every request
//! (and refuses a salt it has seen before), records every body, and can be told to refuse numbers
//! inside a 200 (`failedMessageList`), to take a request and never answer it (the crash case), or
//! to fail the next requests with an HTTP status. A message's `dateCreated` is the signed `date`
//! of the request that brought it (so a client on a test clock is listed at its own time); its
//! status is 2000 until [`FakeSolapi::set_status`] says otherwise.
//!
//! What a send must carry is checked before anything is taken: an `ATA` message its
//! `kakaoOptions.pfId` and `templateId`; a `BMS_*` message its `pfId`, `bms.targeting` (I, M, N)
//! and `bms.chatBubbleType`, a `templateId` or free-form `bms.content`, and as `bms.imageId` only a
//! `fileId` this fake handed out for a `BMS` upload. A request that breaks one of these is
//! recorded in [`SolapiState::wire_errors`] and answered 400 (the fake's own error body, not
//! Solapi's words): tests assert the list is empty.

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
    /// Its `kakaoOptions`, as sent (`pfId`, `templateId`, `variables`, `bms`, …).
    pub kakao_options: Value,
}

/// One file Solapi stored (`POST /storage/v1/files`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The `type` (`BMS` for a Brand Message image).
    pub kind: String,
    /// The `name`.
    pub name: String,
    /// The bytes, decoded from the body's base64 `file`.
    pub bytes: Vec<u8>,
    /// The `fileId` answered.
    pub file_id: String,
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
    /// Files stored, in order.
    pub uploads: Vec<Upload>,
    /// The AlimTalk templates (`templateList` rows, [`template`]), in listing order.
    pub templates: Vec<Value>,
    /// At most this many templates a page, whatever `limit` asks (to make a client page).
    pub templates_page_size: Option<usize>,
    /// The query strings of the template list queries, in order.
    pub template_queries: Vec<Vec<(String, String)>>,
    /// Requests refused for what they carry (answered 400), with the reason.
    pub wire_errors: Vec<String>,
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
            .route("/storage/v1/files", post(upload))
            .route("/kakao/v2/templates", get(templates))
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

/// The signature checked and its salt spent: the salt and the signed date, or the refusal.
fn authenticate(state: &mut SolapiState, headers: &HeaderMap) -> Result<(String, String), (StatusCode, Json<Value>)> {
    let (salt, date) = check_signature(headers).map_err(|e| refused(state, "SignatureDoesNotMatch", e))?;
    if !state.salts.insert(salt.clone()) {
        return Err(refused(state, "DuplicatedSignature", format!("salt {salt} used twice")));
    }
    Ok((salt, date))
}

/// A request refused for what it carries: recorded, answered 400 (the fake's words).
fn malformed(state: &mut SolapiState, problems: Vec<String>) -> (StatusCode, Json<Value>) {
    let reason = problems.join("; ");
    state.wire_errors.push(reason.clone());
    (StatusCode::BAD_REQUEST, Json(json!({"errorCode": "FakeSolapiWireError", "errorMessage": reason})))
}

/// What is wrong with message `i` of a send (nothing: empty).
fn message_problems(state: &SolapiState, i: usize, m: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = m["type"].as_str().unwrap_or("");
    let options = &m["kakaoOptions"];
    let text = |v: &Value| v.as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    if m["to"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("messages[{i}]: no to"));
    }
    match kind {
        "ATA" => {
            for field in ["pfId", "templateId"] {
                if text(&options[field]).is_none() {
                    problems.push(format!("messages[{i}] (ATA): no kakaoOptions.{field}"));
                }
            }
        }
        _ if kind.starts_with("BMS_") => {
            let bms = &options["bms"];
            if text(&options["pfId"]).is_none() {
                problems.push(format!("messages[{i}] ({kind}): no kakaoOptions.pfId"));
            }
            if !matches!(bms["targeting"].as_str(), Some("I" | "M" | "N")) {
                problems.push(format!("messages[{i}] ({kind}): kakaoOptions.bms.targeting {}", bms["targeting"]));
            }
            if text(&bms["chatBubbleType"]).is_none() {
                problems.push(format!("messages[{i}] ({kind}): no kakaoOptions.bms.chatBubbleType"));
            }
            if text(&options["templateId"]).is_none() && text(&bms["content"]).is_none() {
                problems.push(format!("messages[{i}] ({kind}): neither kakaoOptions.templateId nor bms.content"));
            }
            if let Some(image) = bms.get("imageId") {
                let known =
                    image.as_str().is_some_and(|id| state.uploads.iter().any(|u| u.file_id == id && u.kind == "BMS"));
                if !known {
                    problems.push(format!("messages[{i}] ({kind}): bms.imageId {image} is no BMS file uploaded here"));
                }
            }
        }
        "SMS" | "LMS" | "MMS" => {}
        other => problems.push(format!("messages[{i}]: type {other:?}")),
    }
    problems
}

async fn send(
    State(state): State<Arc<Mutex<SolapiState>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let (hang, answer) = {
        let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let date = match authenticate(&mut s, &headers) {
            Ok((_, date)) => date,
            Err(refusal) => return Ok(refusal),
        };
        if let Some(status) = (!s.fail_next.is_empty()).then(|| s.fail_next.remove(0)) {
            return Err(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
        }
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let mut problems: Vec<String> =
            messages.iter().enumerate().flat_map(|(i, m)| message_problems(&s, i, m)).collect();
        if messages.is_empty() {
            problems.push("no messages".to_owned());
        }
        if !problems.is_empty() {
            return Ok(malformed(&mut s, problems));
        }
        s.bodies.push(body.clone());
        let group_id = format!("G4V{}", s.bodies.len());
        let mut failed = Vec::new();
        let mut listed = Vec::new();
        for m in messages {
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
                    kakao_options: m["kakaoOptions"].clone(),
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
    if let Err(refusal) = authenticate(&mut s, &headers) {
        return refusal;
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

/// `POST /storage/v1/files`: `{"file": <base64>, "type", "name", "link"?}`, answered with the
/// stored file's `fileId`.
async fn upload(
    State(state): State<Arc<Mutex<SolapiState>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    use base64::Engine as _;
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(refusal) = authenticate(&mut s, &headers) {
        return refusal;
    }
    let kind = body["type"].as_str().unwrap_or("").to_owned();
    let name = body["name"].as_str().unwrap_or("").to_owned();
    let bytes = body["file"].as_str().map(|f| base64::engine::general_purpose::STANDARD.decode(f));
    let bytes = match bytes {
        Some(Ok(bytes)) if !bytes.is_empty() => bytes,
        Some(Ok(_)) => return malformed(&mut s, vec!["file is empty".to_owned()]),
        Some(Err(e)) => return malformed(&mut s, vec![format!("file is not base64: {e}")]),
        None => return malformed(&mut s, vec!["no file".to_owned()]),
    };
    if kind.is_empty() {
        return malformed(&mut s, vec!["no type".to_owned()]);
    }
    let file_id = format!("ST01FILE{}", s.uploads.len() + 1);
    s.uploads.push(Upload { kind: kind.clone(), name: name.clone(), bytes, file_id: file_id.clone() });
    (StatusCode::OK, Json(json!({"fileId": file_id, "type": kind, "name": name, "link": body.get("link")})))
}

/// A row of the AlimTalk template list of [`PF_ID`]: `status` is Solapi's (`APPROVED`,
/// `INSPECTING`, `REJECTED`, `PENDING`), `variables` the bare names (listed as `#{name}`).
pub fn template(template_id: &str, name: &str, content: &str, status: &str, variables: &[&str]) -> Value {
    json!({
        "templateId": template_id, "channelId": PF_ID, "name": name, "content": content, "status": status,
        "buttons": [], "variables": variables.iter().map(|v| json!({"name": format!("#{{{v}}}")})).collect::<Vec<_>>(),
    })
}

/// `GET /kakao/v2/templates?channelId=…&limit=…&startKey=…`: the channel's templates from the one
/// whose `templateId` is `startKey`, `limit` (default 20) a page, `nextKey` the next page's first.
async fn templates(
    State(state): State<Arc<Mutex<SolapiState>>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(refusal) = authenticate(&mut s, &headers) {
        return refusal;
    }
    s.template_queries.push(query.clone());
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(channel) = value("channelId").filter(|c| !c.is_empty()) else {
        return malformed(&mut s, vec!["no channelId".to_owned()]);
    };
    let limit = match value("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(limit)) if limit > 0 => limit,
        Some(_) => return malformed(&mut s, vec![format!("limit {:?}", value("limit"))]),
    };
    let limit = s.templates_page_size.map_or(limit, |cap| limit.min(cap));
    let of_channel: Vec<&Value> = s.templates.iter().filter(|t| t["channelId"] == channel.as_str()).collect();
    let start = match value("startKey") {
        None => 0,
        Some(key) => match of_channel.iter().position(|t| t["templateId"] == key.as_str()) {
            Some(at) => at,
            None => return malformed(&mut s, vec![format!("startKey {key:?} names no template")]),
        },
    };
    let page: Vec<Value> = of_channel.iter().skip(start).take(limit).map(|t| (*t).clone()).collect();
    let next_key = of_channel.get(start + limit).map(|t| t["templateId"].clone());
    (
        StatusCode::OK,
        Json(json!({"limit": limit, "startKey": value("startKey"), "nextKey": next_key, "templateList": page})),
    )
}
