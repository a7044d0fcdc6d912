//! Solapi through the dealer client: the fake recomputes the signature of every request.

use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dispatch::{Pending, RequestKey, RowUpdate};
use clawbridge_bizmsg::send::Message;
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
