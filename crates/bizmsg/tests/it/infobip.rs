//! Infobip through the dealer client: AlimTalk and Brand Message, `App` authentication, our
//! reference as the message id.

use clawbridge_bizmsg::brand::{BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dispatch::{self, RowUpdate, Step};
use clawbridge_bizmsg::send;
use clawbridge_testkit::fake_infobip::FakeInfobip;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn config(fake: &FakeInfobip) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap()
}

/// 2026-12-24 10:00 KST: inside the ad window.
const MORNING: i64 = 1_798_074_000_000;

#[tokio::test]
async fn a_brand_message_goes_to_kakao_chingu_once_per_recipient_with_our_reference() {
    let fake = FakeInfobip::start().await;
    fake.state().refuse.insert("821033330000".into());
    let config = config(&fake);
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
    let s = fake.state();
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
