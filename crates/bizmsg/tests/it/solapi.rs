//! Solapi through the dealer client: the fake recomputes the signature of every request.

use crate::fake::Fake;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dispatch::{Pending, RequestKey, RowUpdate};
use clawbridge_bizmsg::send::Message;
use clawbridge_bizmsg::{PhoneNumber, template::AlimTalkTemplate};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Solapi {
    salts: HashSet<String>,
    bodies: Vec<Value>,
}

fn check_signature(headers: &HeaderMap) -> Result<String, String> {
    let header = headers.get("authorization").ok_or("no Authorization")?.to_str().map_err(|e| e.to_string())?;
    let rest = header.strip_prefix("HMAC-SHA256 ").ok_or("not HMAC-SHA256")?;
    let fields: BTreeMap<&str, &str> = rest.split(", ").filter_map(|kv| kv.split_once('=')).collect();
    let (key, date, salt, signature) = (fields["apiKey"], fields["date"], fields["salt"], fields["signature"]);
    if key != "NCSKEY" {
        return Err(format!("api key {key}"));
    }
    if salt.len() != 32 || !salt.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("salt {salt}"));
    }
    date.parse::<jiff::Timestamp>().map_err(|e| format!("date {date}: {e}"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"SECRET").unwrap();
    mac.update(format!("{date}{salt}").as_bytes());
    if hex::encode(mac.finalize().into_bytes()) != signature {
        return Err("signature".into());
    }
    Ok(salt.to_owned())
}

async fn send(
    State(state): State<Arc<Mutex<Solapi>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let salt = match check_signature(&headers) {
        Ok(salt) => salt,
        Err(e) => {
            return (StatusCode::UNAUTHORIZED, Json(json!({"errorCode": "SignatureDoesNotMatch", "errorMessage": e})));
        }
    };
    let mut s = state.lock().unwrap();
    assert!(s.salts.insert(salt), "a fresh salt per request");
    s.bodies.push(body.clone());
    let mut failed = Vec::new();
    let mut listed = Vec::new();
    for (i, m) in body["messages"].as_array().unwrap().iter().enumerate() {
        let to = m["to"].as_str().unwrap();
        if to.ends_with("0000") {
            failed.push(json!({"to": to, "from": m["from"], "type": "ATA", "statusCode": "1062", "statusMessage": "invalid number"}));
        } else {
            listed.push(json!({"messageId": format!("M4V{i}"), "to": to, "type": "ATA", "statusCode": "2000"}));
        }
    }
    (
        StatusCode::OK,
        Json(json!({"groupInfo": {"count": {"total": listed.len() + failed.len(), "registeredFailed": failed.len()}},
                                 "failedMessageList": failed, "messageList": listed})),
    )
}

fn config(url: &str, secret: &str) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = [
        ("BIZMSG_DEALER", "solapi".to_owned()),
        ("BIZMSG_SENDER_KEY", "KA01PF1".to_owned()),
        ("SOLAPI_API_KEY", "NCSKEY".to_owned()),
        ("SOLAPI_API_SECRET", secret.to_owned()),
        ("SOLAPI_BASE_URL", url.to_owned()),
    ]
    .into();
    BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap()
}

fn row(id: i64, phone: &str) -> Pending {
    let template: AlimTalkTemplate =
        toml::from_str("templateCode = \"OTP\"\ntemplateId = \"KA01TP1\"\ntext = \"인증번호는 #{code}입니다.\"")
            .unwrap();
    Pending {
        id,
        account: "default".into(),
        to: PhoneNumber::parse(phone).unwrap(),
        message: Message::Alimtalk(template.render(&[("code".to_owned(), "123456".to_owned())].into(), false).unwrap()),
        send_at: None,
        request_key: None,
    }
}

#[tokio::test]
async fn every_request_is_signed_with_a_fresh_salt_and_failures_inside_a_200_are_read() {
    let fake = Fake::start(Solapi::default(), |state| {
        axum::Router::new().route("/messages/v4/send-many/detail", post(send)).with_state(state)
    })
    .await;
    let settings = config(&fake.url, "SECRET");
    let client = DealerClient::new(&settings, Duration::from_secs(5)).unwrap();
    let sender = &settings.accounts[0].sender;
    for n in 0..3 {
        let rows = [row(2 * n + 1, &format!("010-1111-{:04}", n + 1)), row(2 * n + 2, "010-3333-0000")];
        let updates = client.send(sender, &rows, &RequestKey::new(1, rows[0].id)).await;
        assert!(matches!(&updates[0], RowUpdate::Accepted { dealer_id, .. } if dealer_id == "M4V0"), "{updates:?}");
        assert_eq!(updates[1], RowUpdate::Dead { id: 2 * n + 2, reason: "1062 invalid number".into() });
    }
    {
        let s = fake.state.lock().unwrap();
        assert_eq!(s.salts.len(), 3);
        assert_eq!(s.bodies[0]["messages"][0]["kakaoOptions"]["variables"], json!({"#{code}": "123456"}));
    }

    let wrong = config(&fake.url, "WRONG");
    let client = DealerClient::new(&wrong, Duration::from_secs(5)).unwrap();
    let updates = client.send(sender, &[row(9, "010-5555-6666")], &RequestKey::new(1, 9)).await;
    assert!(
        matches!(&updates[0], RowUpdate::Dead { reason, .. } if reason.contains("SOLAPI_API_SECRET") && reason.contains("SignatureDoesNotMatch")),
        "{updates:?}"
    );
}
