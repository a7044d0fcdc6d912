//! Solapi through the dealer client: the fake recomputes the signature of every request; a lost
//! answer is found by our reference in the message list instead of a second send; results by id.

use clawbridge_bizmsg::client::{DealerClient, Sent};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dealer::ReportState;
use clawbridge_bizmsg::dispatch::{self, Pending, RequestKey, RowUpdate, Step};
use clawbridge_bizmsg::send::{Message, Product};
use clawbridge_bizmsg::{PhoneNumber, template::AlimTalkTemplate};
use clawbridge_testkit::fake_solapi::FakeSolapi;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn config(fake: &FakeSolapi, secret: &str) -> BizmsgConfig {
    let mut vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("SOLAPI_API_SECRET", secret.to_owned());
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
    let fake = FakeSolapi::start().await;
    fake.state().refuse.insert("01033330000".into());
    let settings = config(&fake, "SECRET");
    let client = DealerClient::new(&settings, Duration::from_secs(5)).unwrap();
    let sender = &settings.accounts[0].sender;
    for n in 0..3 {
        let rows = [row(2 * n + 1, &format!("010-1111-{:04}", n + 1)), row(2 * n + 2, "010-3333-0000")];
        let updates = client.send(sender, &rows, &RequestKey::new(1, rows[0].id)).await;
        // The fake numbers every message it sees: the first of request n is M4V{2n}.
        let first = format!("M4V{}", 2 * n);
        assert!(matches!(&updates[0], RowUpdate::Accepted { dealer_id, .. } if *dealer_id == first), "{updates:?}");
        assert_eq!(updates[1], RowUpdate::Dead { id: 2 * n + 2, reason: "1062 invalid number".into() });
    }
    {
        let s = fake.state();
        assert_eq!(s.salts.len(), 3);
        assert!(s.signature_errors.is_empty(), "a fresh salt per request: {:?}", s.signature_errors);
        assert_eq!(s.bodies[0]["messages"][0]["kakaoOptions"]["variables"], json!({"#{code}": "123456"}));
    }

    let wrong = config(&fake, "WRONG");
    let client = DealerClient::new(&wrong, Duration::from_secs(5)).unwrap();
    let updates = client.send(sender, &[row(9, "010-5555-6666")], &RequestKey::new(1, 9)).await;
    assert!(
        matches!(&updates[0], RowUpdate::Dead { reason, .. } if reason.contains("SOLAPI_API_SECRET") && reason.contains("SignatureDoesNotMatch")),
        "{updates:?}"
    );
}

#[tokio::test]
async fn an_answer_lost_after_solapi_took_the_request_is_found_by_our_reference_and_never_sent_twice() {
    let fake = FakeSolapi::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let settings = config(&fake, "SECRET");
    let client = DealerClient::new(&settings, Duration::from_millis(300)).unwrap();
    let sender = &settings.accounts[0].sender;
    let rows = vec![row(1, "010-1111-2222"), row(2, "010-3333-4444")];
    // The fake lists messages by the signed date of their request: the key is made now.
    let now = clawbridge_core::clock::now_ms();
    let key = RequestKey::new(now, 1);
    let updates = client.send(sender, &rows, &key).await;
    assert!(updates.iter().all(|u| matches!(u, RowUpdate::Retry { in_doubt: true, .. })), "{updates:?}");
    // Another message to the same number in the window is not taken for ours.
    client.send(sender, &[row(3, "010-1111-2222")], &RequestKey::new(now, 3)).await;

    let again: Vec<Pending> = rows.iter().cloned().map(|r| Pending { request_key: Some(key.clone()), ..r }).collect();
    let steps = dispatch::plan(client.dealer(), again, now + 60_000);
    let [Step::Lookup { key: looked, rows: asked }] = steps.as_slice() else { panic!("{steps:?}") };
    let found = client.lookup(looked, asked).await.unwrap();
    let (updates, next) = dispatch::after_lookup(looked, asked.clone(), &found, now + 60_000);
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "M4V0".into() },
            RowUpdate::Accepted { id: 2, dealer_id: "M4V1".into() }
        ]
    );
    assert!(next.is_none(), "nothing to send again");
    let s = fake.state();
    assert_eq!((s.bodies.len(), s.taken.len()), (2, 3), "rows 1 and 2 were sent once");
    let window = &s.list_queries[0];
    assert!(window.contains(&("dateType".to_owned(), "CREATED".to_owned())), "{window:?}");
    assert!(s.signature_errors.is_empty(), "{:?}", s.signature_errors);
}

#[tokio::test]
async fn results_are_asked_by_message_id_until_final() {
    let fake = FakeSolapi::start().await;
    let settings = config(&fake, "SECRET");
    let client = DealerClient::new(&settings, Duration::from_secs(5)).unwrap();
    let rows = [row(1, "010-1111-2222"), row(2, "010-3333-4444"), row(3, "010-5555-6666")];
    client.send(&settings.accounts[0].sender, &rows, &RequestKey::new(1, 1)).await;
    fake.set_status("M4V0", "4000", "");
    fake.set_status("M4V1", "3104", "카카오톡 미사용자");
    let sent: Vec<Sent> = (0..3).map(|i| Sent { dealer_id: format!("M4V{i}"), product: Product::Alimtalk }).collect();
    let reports = client.results_of(&sent).await.unwrap();
    let read: Vec<(&str, ReportState, Option<&str>)> =
        reports.iter().map(|r| (r.dealer_id.as_str(), r.state, r.reason.as_deref())).collect();
    assert_eq!(
        read,
        [
            ("M4V0", ReportState::Delivered, None),
            ("M4V1", ReportState::Failed, Some("카카오톡 미사용자")),
            ("M4V2", ReportState::Pending, None)
        ]
    );
    let ids: Vec<String> =
        fake.state().list_queries[0].iter().filter(|(k, _)| k == "messageIds").map(|(_, v)| v.clone()).collect();
    assert_eq!(ids, ["M4V0", "M4V1", "M4V2"]);
    // Polling by time has nothing to ask Solapi: its messages are asked about by id.
    assert!(client.poll_results(0, 1).await.unwrap().is_empty());
}
