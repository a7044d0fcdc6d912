//! Infobip through the dealer client: AlimTalk and Brand Message, `App` authentication, our
//! reference as the message id.

use crate::fake::Fake;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clawbridge_bizmsg::brand::{BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dispatch::{self, RowUpdate, Step};
use clawbridge_bizmsg::send;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Infobip {
    requests: Vec<(String, Value)>,
}

async fn messages(
    State(state): State<Arc<Mutex<Infobip>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("App KEY") {
        return (StatusCode::UNAUTHORIZED, Json(json!({"errorCode": "E401", "description": "Invalid login details"})));
    }
    state.lock().unwrap().requests.push((uri.path().to_owned(), body.clone()));
    let answers: Vec<Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let d = &m["destinations"][0];
            let rejected = d["to"].as_str().unwrap().ends_with("0000");
            json!({"messageId": d["messageId"], "destination": d["to"],
                   "status": if rejected { json!({"groupId": 5, "groupName": "REJECTED", "id": 52, "name": "REJECTED_DESTINATION", "description": "bad destination"}) }
                             else { json!({"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "accepted"}) }})
        })
        .collect();
    (StatusCode::OK, Json(json!({"bulkId": "b1", "messages": answers})))
}

fn config(url: &str) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = [
        ("BIZMSG_DEALER", "infobip".to_owned()),
        ("BIZMSG_SENDER_KEY", "OFFICIAL-ACCOUNT".to_owned()),
        ("INFOBIP_API_KEY", "KEY".to_owned()),
        ("INFOBIP_BASE_URL", url.to_owned()),
    ]
    .into();
    BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap()
}

/// 2026-12-24 10:00 KST: inside the ad window.
const MORNING: i64 = 1_798_074_000_000;

#[tokio::test]
async fn a_brand_message_goes_to_kakao_chingu_once_per_recipient_with_our_reference() {
    let fake = Fake::start(Infobip::default(), |state| {
        axum::Router::new()
            .route("/kakao-chingu/1/messages", post(messages))
            .route("/kakao-alim/1/messages", post(messages))
            .with_state(state)
    })
    .await;
    let config = config(&fake.url);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let mut rows = Vec::new();
    for (id, to) in [(1, "010-1111-2222"), (2, "010-3333-0000")] {
        let request = BrandRequest {
            account: "default".into(),
            to: to.into(),
            text: "겨울 세일 20%".into(),
            buttons: vec!["쇼핑하기|https://shop.example/sale".parse().unwrap()],
            targeting: Targeting::Friends,
            fallback: false,
            at: None,
            idempotency_key: None,
            origin: "cli".into(),
        };
        let prepared = prepare_brand(&config, &request, MORNING).unwrap().prepared;
        rows.push(send::pending(id, "default", prepared.recipient.national(), &prepared.payload, None).unwrap());
    }
    let steps = dispatch::plan(client.dealer(), rows, MORNING);
    let [Step::Send { key, rows, resend: false }] = steps.as_slice() else {
        panic!("one request for one content: {steps:?}")
    };
    let updates = client.send(&config.accounts[0].sender, rows, key).await;
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "cb1".into() },
            RowUpdate::Dead { id: 2, reason: "REJECTED_DESTINATION bad destination".into() },
        ]
    );
    let s = fake.state.lock().unwrap();
    let (path, body) = &s.requests[0];
    assert_eq!(path, "/kakao-chingu/1/messages");
    assert_eq!(
        body["messages"][0],
        json!({"sender": "OFFICIAL-ACCOUNT", "destinations": [{"to": "821011112222", "messageId": "cb1"}],
               "content": {"type": "TEXT_FREE_FORM", "text": "겨울 세일 20%",
                           "buttons": [{"type": "URL", "name": "쇼핑하기", "urlMobile": "https://shop.example/sale"}]}})
    );
    assert!(body.get("options").is_none(), "no schedule: sent now");
}
