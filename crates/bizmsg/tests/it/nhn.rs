//! NHN Cloud AlimTalk v2.3 through the dealer client.

use crate::fake::{Fake, HANG};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dispatch::{self, NHN_IDEMPOTENCY_WINDOW_MS, Pending, RequestKey, RowUpdate, Step};
use clawbridge_bizmsg::send::Message;
use clawbridge_bizmsg::{PhoneNumber, template::AlimTalkTemplate};
use clawbridge_core::clock::ManualClock;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Nhn {
    /// Bodies of requests NHN took, by idempotency key.
    taken: HashMap<String, Value>,
    /// (requestId, seq, senderGroupingKey, recipientGroupingKey, recipientNo)
    messages: Vec<(String, i64, String, String, String)>,
    /// Requests refused as duplicates (-1005).
    duplicates: usize,
    /// The next send is taken and then never answered.
    hang_next: bool,
    lookups: usize,
}

async fn send(
    State(state): State<Arc<Mutex<Nhn>>>,
    Path(appkey): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    assert_eq!(appkey, "APP");
    assert_eq!(headers["x-secret-key"], "SECRET");
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let key = headers["x-nc-api-idempotency-key"].to_str().unwrap().to_owned();
    assert_eq!(body["senderGroupingKey"], key.as_str(), "the key is also the sender grouping key");
    let hang = {
        let mut s = state.lock().unwrap();
        if s.taken.contains_key(&key) {
            s.duplicates += 1;
            return Json(
                json!({"header": {"resultCode": -1005, "resultMessage": "duplicated request", "isSuccessful": false}}),
            );
        }
        s.taken.insert(key.clone(), body.clone());
        std::mem::take(&mut s.hang_next)
    };
    let request_id = format!("REQ-{}", key);
    let mut results = Vec::new();
    for (i, r) in body["recipientList"].as_array().unwrap().iter().enumerate() {
        let seq = i as i64 + 1;
        let no = r["recipientNo"].as_str().unwrap().to_owned();
        let grouping = r["recipientGroupingKey"].as_str().unwrap().to_owned();
        let refused = no.ends_with("0000");
        if !refused {
            state.lock().unwrap().messages.push((request_id.clone(), seq, key.clone(), grouping.clone(), no.clone()));
        }
        results.push(json!({"recipientSeq": seq, "recipientNo": no, "resultCode": if refused { -2000 } else { 0 },
                            "resultMessage": if refused { "invalid recipientNo" } else { "SUCCESS" },
                            "recipientGroupingKey": grouping}));
    }
    if hang {
        tokio::time::sleep(HANG).await;
    }
    Json(json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
                "message": {"requestId": request_id, "senderGroupingKey": key, "sendResults": results}}))
}

async fn list(State(state): State<Arc<Mutex<Nhn>>>, Query(query): Query<HashMap<String, String>>) -> Json<Value> {
    assert!(query.contains_key("startRequestDate") && query.contains_key("endRequestDate"), "{query:?}");
    let mut s = state.lock().unwrap();
    s.lookups += 1;
    let group = query.get("senderGroupingKey").cloned().unwrap_or_default();
    let messages: Vec<Value> = s
        .messages
        .iter()
        .filter(|m| m.2 == group)
        .map(|m| json!({"requestId": m.0, "recipientSeq": m.1, "senderGroupingKey": m.2, "recipientGroupingKey": m.3, "recipientNo": m.4}))
        .collect();
    Json(json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
                "messageSearchResultResponse": {"messages": messages, "totalCount": messages.len()}}))
}

async fn nhn() -> Fake<Nhn> {
    Fake::start(Nhn::default(), |state| {
        axum::Router::new().route("/alimtalk/v2.3/appkeys/{appkey}/messages", post(send).get(list)).with_state(state)
    })
    .await
}

fn config(url: &str) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = [
        ("BIZMSG_DEALER", "nhn".to_owned()),
        ("BIZMSG_SENDER_KEY", "SENDERKEY".to_owned()),
        ("BIZMSG_SMS_FROM", "02-1234-5678".to_owned()),
        ("NHN_BIZMSG_APP_KEY", "APP".to_owned()),
        ("NHN_BIZMSG_SECRET_KEY", "SECRET".to_owned()),
        ("NHN_BIZMSG_BASE_URL", url.to_owned()),
    ]
    .into();
    BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap()
}

fn template() -> AlimTalkTemplate {
    toml::from_str("templateCode = \"OTP\"\ntext = \"인증번호는 #{code}입니다.\"").unwrap()
}

fn row(id: i64, phone: &str) -> Pending {
    let values = [("code".to_owned(), format!("{id:06}"))].into();
    Pending {
        id,
        account: "default".into(),
        to: PhoneNumber::parse(phone).unwrap(),
        message: Message::Alimtalk(template().render(&values, false).unwrap()),
        send_at: None,
        request_key: None,
    }
}

const NOW: i64 = 1_798_070_400_000;

#[tokio::test]
async fn a_request_takes_some_recipients_and_refuses_others_inside_a_200() {
    let fake = nhn().await;
    let config = config(&fake.url);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let rows = vec![row(1, "010-1111-2222"), row(2, "010-3333-0000")];
    let steps = dispatch::plan(client.dealer(), rows, NOW);
    let [Step::Send { key, rows, resend: false }] = steps.as_slice() else { panic!("{steps:?}") };
    let updates = client.send_alimtalk(&config.accounts[0].sender, rows, key).await;
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: format!("REQ-{}/1", key.as_str()) },
            RowUpdate::Dead { id: 2, reason: "-2000 invalid recipientNo".into() },
        ]
    );
    let s = fake.state.lock().unwrap();
    let body = &s.taken[key.as_str()];
    assert_eq!(body["senderKey"], "SENDERKEY");
    assert_eq!(body["templateCode"], "OTP");
    assert_eq!(body["recipientList"][0]["templateParameter"], json!({"code": "000001"}));
    assert_eq!(body["recipientList"][0]["recipientGroupingKey"], "cb1");
}

#[tokio::test]
async fn an_answer_lost_after_nhn_took_the_request_never_sends_twice() {
    let fake = nhn().await;
    fake.state.lock().unwrap().hang_next = true;
    let config = config(&fake.url);
    let clock = Arc::new(ManualClock::new(NOW));
    let client = DealerClient::new(&config, Duration::from_millis(300)).unwrap().with_clock(clock.clone());
    let sender = &config.accounts[0].sender;
    let rows = vec![row(1, "010-1111-2222"), row(2, "010-3333-4444")];
    let key = RequestKey::new(NOW, 1);

    // The request arrives, the answer does not: the rows stay in doubt under the key.
    let updates = client.send_alimtalk(sender, &rows, &key).await;
    assert!(updates.iter().all(|u| matches!(u, RowUpdate::Retry { in_doubt: true, .. })), "{updates:?}");

    // Reclaimed a minute later with the key: the same request again, which NHN refuses as a copy;
    // its messages are then found by the key.
    let again: Vec<Pending> = rows.iter().cloned().map(|r| Pending { request_key: Some(key.clone()), ..r }).collect();
    let steps = dispatch::plan(client.dealer(), again.clone(), NOW + 60_000);
    let [Step::Send { key: same, rows: resent, resend: true }] = steps.as_slice() else { panic!("{steps:?}") };
    assert_eq!(same, &key);
    let updates = client.send_alimtalk(sender, resent, same).await;
    let prefix = format!("REQ-{}", key.as_str());
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: format!("{prefix}/1") },
            RowUpdate::Accepted { id: 2, dealer_id: format!("{prefix}/2") },
        ]
    );
    let s = fake.state.lock().unwrap();
    assert_eq!((s.taken.len(), s.duplicates, s.messages.len()), (1, 1, 2), "each recipient got one message");
}

#[tokio::test]
async fn after_the_idempotency_window_nhn_is_asked_first_and_only_the_missing_go_again() {
    let fake = nhn().await;
    let config = config(&fake.url);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let sender = &config.accounts[0].sender;
    let key = RequestKey::new(NOW, 1);
    // An earlier process sent row 1 under `key`, then died before writing the answer down.
    let first = client.send_alimtalk(sender, &[row(1, "010-1111-2222")], &key).await;
    assert!(matches!(first[0], RowUpdate::Accepted { .. }));

    let later = NOW + NHN_IDEMPOTENCY_WINDOW_MS + 1;
    let rows: Vec<Pending> = [row(1, "010-1111-2222"), row(2, "010-3333-4444")]
        .into_iter()
        .map(|r| Pending { request_key: Some(key.clone()), ..r })
        .collect();
    let steps = dispatch::plan(client.dealer(), rows, later);
    let [Step::Lookup { key: looked, rows }] = steps.as_slice() else { panic!("{steps:?}") };
    let found = client.lookup(looked).await.unwrap();
    let (updates, next) = dispatch::after_lookup(rows.clone(), &found, later);
    assert_eq!(updates, [RowUpdate::Accepted { id: 1, dealer_id: format!("REQ-{}/1", key.as_str()) }]);
    let Some(Step::Send { key: new_key, rows: missing, resend: false }) = next else { panic!("row 2 goes anew") };
    assert_eq!(missing.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
    let sent = client.send_alimtalk(sender, &missing, &new_key).await;
    assert!(matches!(sent[0], RowUpdate::Accepted { id: 2, .. }));
    let s = fake.state.lock().unwrap();
    assert_eq!((s.messages.len(), s.lookups, s.duplicates), (2, 1, 0));
}
