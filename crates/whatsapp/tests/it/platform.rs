//! The Platform API client against the fake: phone numbers across pages, either list shape,
//! webhooks created and changed with `{"whatsapp_webhook": …}`, the API key, a refused key.

use crate::support::{API_KEY, FakeKapso, PNID};
use clawbridge_core::SendError;
use clawbridge_http::Layers;
use clawbridge_testkit::fake_kapso::phone_number;
use clawbridge_whatsapp::client::{PlatformClient, WebhookSpec};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::time::Duration;

fn client(fake: &FakeKapso, key: &str) -> PlatformClient {
    let base = format!("{}/platform/v1", fake.url());
    PlatformClient::with_parts(&base, SecretString::from(key), Layers::new("whatsapp"), Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn every_page_of_phone_numbers_is_read_in_either_list_shape() {
    let fake = FakeKapso::start().await;
    fake.set_phone_numbers((0..150).map(|i| phone_number(&format!("1000000000{i:05}"), "+1 555", "n")));
    let numbers = client(&fake, API_KEY).phone_numbers(None).await.unwrap();
    assert_eq!(numbers.len(), 150);
    let pages: Vec<_> = fake.platform_requests().iter().map(|r| r.query.get("page").cloned()).collect();
    assert_eq!(pages, [Some("1".to_owned()), Some("2".to_owned())]);
    assert!(fake.platform_requests().iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));

    fake.platform_bare_lists(true);
    let one = client(&fake, API_KEY).phone_numbers(Some("100000000000007")).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].phone_number_id, "100000000000007");
    assert!(client(&fake, API_KEY).phone_numbers(Some("999")).await.unwrap().is_empty());
}

#[tokio::test]
async fn webhooks_are_created_listed_and_changed() {
    let fake = FakeKapso::start().await;
    let platform = client(&fake, API_KEY);
    assert!(platform.webhooks(PNID).await.unwrap().is_empty());
    let spec = WebhookSpec {
        url: Some("https://b.example/webhook".into()),
        secret_key: Some("s1".into()),
        events: Some(vec!["whatsapp.message.received".into()]),
        active: Some(true),
        payload_version: Some("v2".into()),
    };
    let created = platform.create_webhook(PNID, &spec).await.unwrap();
    assert_eq!((created.id.as_str(), created.url.as_str()), ("wh-1", "https://b.example/webhook"));
    assert_eq!(fake.webhooks()[0]["secret_key"], "s1");
    let listed = platform.webhooks(PNID).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].active, listed[0].payload_version.as_deref()), (Some(true), Some("v2")));
    assert!(listed[0].secret_key.is_none(), "the fake, like (we assume) Kapso, does not list secrets");

    let change = WebhookSpec { secret_key: Some("s2".into()), ..WebhookSpec::default() };
    platform.update_webhook(PNID, "wh-1", &change).await.unwrap();
    let patch = fake.platform_requests().into_iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.json(), json!({"whatsapp_webhook": {"secret_key": "s2"}}));
    assert_eq!(fake.webhooks()[0]["secret_key"], "s2");
    assert_eq!(fake.webhooks()[0]["url"], "https://b.example/webhook", "what the change did not name stays");
    let answer = platform.test_webhook("wh-1").await.unwrap();
    assert_eq!(answer["data"]["success"], true);

    let missing = platform.update_webhook(PNID, "wh-9", &change).await.unwrap_err();
    assert!(matches!(&missing, SendError::Permanent(reason) if reason.contains("404")), "{missing:?}");
    assert!(!format!("{spec:?}").contains("s1") && spec.secret_key.unwrap().expose_secret() == "s1");
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error() {
    let fake = FakeKapso::start().await;
    let err = client(&fake, "wrong").phone_numbers(None).await.unwrap_err();
    assert_eq!(err, SendError::AuthExpired);
}
