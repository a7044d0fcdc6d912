//! NHN Cloud AlimTalk v2.3 through the dealer client, against the testkit's fake NHN.

use clawbridge_bizmsg::brand::{BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::client::{DealerClient, Sent};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dealer::{Fallback, ReportState};
use clawbridge_bizmsg::dispatch::{self, NHN_IDEMPOTENCY_WINDOW_MS, Pending, RequestKey, RowUpdate, Step};
use clawbridge_bizmsg::send::{self, Message, Product};
use clawbridge_bizmsg::{PhoneNumber, template::AlimTalkTemplate};
use clawbridge_testkit::fake_nhn::{FakeNhn, result_row};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn config(fake: &FakeNhn) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
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
    let fake = FakeNhn::start().await;
    fake.state().refuse.insert("01033330000".into());
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let rows = vec![row(1, "010-1111-2222"), row(2, "010-3333-0000")];
    let steps = dispatch::plan(client.dealer(), rows, NOW);
    let [Step::Send { key, rows, resend: false }] = steps.as_slice() else { panic!("{steps:?}") };
    let updates = client.send(&config.accounts[0].sender, rows, key).await;
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "ALIMTALK-1/1".into() },
            RowUpdate::Dead { id: 2, reason: "-2000 Invalid recipientNo".into() },
        ]
    );
    let s = fake.state();
    let body = &s.requests[key.as_str()];
    assert_eq!(body["senderKey"], "SENDERKEY");
    assert_eq!(body["templateCode"], "OTP");
    assert_eq!(body["senderGroupingKey"], key.as_str(), "the key is also the sender grouping key");
    assert_eq!(body["recipientList"][0]["templateParameter"], json!({"code": "000001"}));
    assert_eq!(body["recipientList"][0]["recipientGroupingKey"], "cb1");
}

#[tokio::test]
async fn an_answer_lost_after_nhn_took_the_request_never_sends_twice() {
    let fake = FakeNhn::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_millis(300)).unwrap();
    let sender = &config.accounts[0].sender;
    let rows = vec![row(1, "010-1111-2222"), row(2, "010-3333-4444")];
    let key = RequestKey::new(NOW, 1);

    // The request arrives, the answer does not: the rows stay in doubt under the key.
    let updates = client.send(sender, &rows, &key).await;
    assert!(updates.iter().all(|u| matches!(u, RowUpdate::Retry { in_doubt: true, .. })), "{updates:?}");

    // Reclaimed a minute later with the key: the same request again, which NHN refuses as a copy;
    // its messages are then found by the key.
    let again: Vec<Pending> = rows.iter().cloned().map(|r| Pending { request_key: Some(key.clone()), ..r }).collect();
    let steps = dispatch::plan(client.dealer(), again, NOW + 60_000);
    let [Step::Send { key: same, rows: resent, resend: true }] = steps.as_slice() else { panic!("{steps:?}") };
    assert_eq!(same, &key);
    let updates = client.send(sender, resent, same).await;
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "ALIMTALK-1/1".into() },
            RowUpdate::Accepted { id: 2, dealer_id: "ALIMTALK-1/2".into() },
        ]
    );
    let s = fake.state();
    assert_eq!((s.requests.len(), s.duplicates, s.taken.len()), (1, 1, 2), "each recipient got one message");
}

#[tokio::test]
async fn after_the_idempotency_window_nhn_is_asked_first_and_only_the_missing_go_again() {
    let fake = FakeNhn::start().await;
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let sender = &config.accounts[0].sender;
    let key = RequestKey::new(NOW, 1);
    // An earlier process sent row 1 under `key`, then died before writing the answer down.
    let first = client.send(sender, &[row(1, "010-1111-2222")], &key).await;
    assert!(matches!(first[0], RowUpdate::Accepted { .. }));

    let later = NOW + NHN_IDEMPOTENCY_WINDOW_MS + 1;
    let rows: Vec<Pending> = [row(1, "010-1111-2222"), row(2, "010-3333-4444")]
        .into_iter()
        .map(|r| Pending { request_key: Some(key.clone()), ..r })
        .collect();
    let steps = dispatch::plan(client.dealer(), rows, later);
    let [Step::Lookup { key: looked, rows }] = steps.as_slice() else { panic!("{steps:?}") };
    let found = client.lookup(looked, rows).await.unwrap();
    let (updates, next) = dispatch::after_lookup(looked, rows.clone(), &found, later);
    assert_eq!(updates, [RowUpdate::Accepted { id: 1, dealer_id: "ALIMTALK-1/1".into() }]);
    let Some(Step::Send { key: new_key, rows: missing, resend: false }) = next else { panic!("row 2 goes anew") };
    assert_eq!(missing.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
    let sent = client.send(sender, &missing, &new_key).await;
    assert!(matches!(sent[0], RowUpdate::Accepted { id: 2, .. }));
    let s = fake.state();
    assert_eq!((s.taken.len(), s.lookups, s.duplicates), (2, 1, 0));
}

#[tokio::test]
async fn wrong_credentials_are_named() {
    let fake = FakeNhn::start().await;
    let mut vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("NHN_BIZMSG_SECRET_KEY", "WRONG".into());
    let config = BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap();
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let updates = client.send(&config.accounts[0].sender, &[row(1, "010-1111-2222")], &RequestKey::new(NOW, 1)).await;
    assert!(
        matches!(&updates[0], RowUpdate::Dead { reason, .. } if reason.contains("NHN_BIZMSG_SECRET_KEY")),
        "{updates:?}"
    );
}

/// 2026-12-24 10:00 KST: inside the ad window.
const MORNING: i64 = 1_798_074_000_000;

fn brand_row(config: &BizmsgConfig, id: i64, to: &str) -> Pending {
    let request = BrandRequest {
        account: "default".into(),
        to: to.into(),
        text: "겨울 세일 20%".into(),
        template: None,
        variables: Default::default(),
        image: None,
        buttons: vec![],
        targeting: Targeting::Friends,
        fallback: false,
        at: None,
        idempotency_key: None,
        origin: "cli".into(),
    };
    let prepared = prepare_brand(config, &request, MORNING).unwrap().prepared;
    send::pending(id, "default", prepared.recipient.national(), &prepared.payload, None).unwrap()
}

#[tokio::test]
async fn a_brand_message_whose_answer_was_lost_is_found_by_its_key_and_its_result_by_its_request() {
    let fake = FakeNhn::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_millis(300)).unwrap();
    let sender = &config.accounts[0].sender;
    let rows = vec![brand_row(&config, 1, "010-1111-2222"), brand_row(&config, 2, "010-3333-4444")];
    let key = RequestKey::new(MORNING, 1);
    let updates = client.send(sender, &rows, &key).await;
    assert!(updates.iter().all(|u| matches!(u, RowUpdate::Retry { in_doubt: true, .. })), "{updates:?}");

    // Within the idempotency window: the same request, refused as a copy, then found by its key
    // in the Brand Message list.
    let again: Vec<Pending> = rows.iter().cloned().map(|r| Pending { request_key: Some(key.clone()), ..r }).collect();
    let steps = dispatch::plan(client.dealer(), again.clone(), MORNING + 60_000);
    let [Step::Send { key: same, rows: resent, resend: true }] = steps.as_slice() else { panic!("{steps:?}") };
    let updates = client.send(sender, resent, same).await;
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "BRAND-1/1".into() },
            RowUpdate::Accepted { id: 2, dealer_id: "BRAND-1/2".into() }
        ]
    );
    // After it: asked first, the same answer.
    let later = MORNING + NHN_IDEMPOTENCY_WINDOW_MS + 1;
    let steps = dispatch::plan(client.dealer(), again, later);
    let [Step::Lookup { key: looked, rows: asked }] = steps.as_slice() else { panic!("a lookup expected: {steps:?}") };
    assert_eq!(client.lookup(looked, asked).await.unwrap().len(), 2);
    {
        let s = fake.state();
        assert_eq!((s.requests.len(), s.duplicates, s.taken.len(), s.lookups), (1, 1, 2, 2), "each recipient once");
    }

    // Brand Message has no result updates: its rows are asked about by their request.
    let taken = fake.state().taken.clone();
    fake.state().results.push(result_row(&taken[0], "COMPLETED", "1000", "RSC01"));
    fake.state().results.push(result_row(&taken[1], "FAILED", "3022", "RSC02"));
    let sent: Vec<Sent> = taken
        .iter()
        .map(|t| Sent { dealer_id: format!("{}/{}", t.request_id, t.seq), product: Product::Brand })
        .collect();
    let reports = client.results_of(&sent).await.unwrap();
    let read: Vec<(&str, ReportState, Option<Fallback>)> =
        reports.iter().map(|r| (r.dealer_id.as_str(), r.state, r.fallback)).collect();
    assert_eq!(
        read,
        [
            ("BRAND-1/1", ReportState::Delivered, Some(Fallback::None)),
            ("BRAND-1/2", ReportState::Failed, Some(Fallback::Armed))
        ]
    );
    assert_eq!(fake.state().request_queries, 1, "one query for the request's two messages");
}
