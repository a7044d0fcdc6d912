//! A fake of Infobip's Kakao APIs (reference/bizmsg.md §4) on 127.0.0.1: AlimTalk
//! `POST /kakao-alim/1/messages` and Brand Message `POST /kakao-chingu/1/messages`.
//!
//! It checks `Authorization: App <key>`, records every request (path and body), and can be told to
//! reject numbers inside a 200 (`status.groupName` REJECTED), to take a request and never answer
//! it (the crash case), or to fail the next requests with an HTTP status.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashSet;
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
                    s.taken.push(Taken { message_id, bulk_id: bulk_id.clone(), to, api });
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
