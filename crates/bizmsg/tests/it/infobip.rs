//! Infobip through the dealer client: AlimTalk and Brand Message, `App` authentication, our
//! reference as the message id; a lost answer found in the logs instead of a second send;
//! reports of both APIs, and the logs for the messages still without one.

use clawbridge_bizmsg::brand::{BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::client::{DealerClient, Sent};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dealer::ReportState;
use clawbridge_bizmsg::dispatch::{self, Pending, RequestKey, RowUpdate, Step};
use clawbridge_bizmsg::send::{self, Message, Product};
use clawbridge_bizmsg::{PhoneNumber, template::AlimTalkTemplate};
use clawbridge_testkit::fake_infobip::{FakeInfobip, report};
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
            template: None,
            variables: Default::default(),
            image: None,
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
               "options": {"targeting": "TARGETED_FRIENDS"},
               "content": {"type": "TEXT_FREE_FORM", "text": "겨울 세일 20%",
                           "buttons": [{"type": "URL", "name": "쇼핑하기", "urlMobile": "https://shop.example/sale"}]}})
    );
    assert!(body.get("options").is_none(), "no schedule: sent now");
}

fn otp(id: i64, phone: &str) -> Pending {
    let template: AlimTalkTemplate =
        toml::from_str("templateCode = \"OTP\"\ntext = \"인증번호는 #{code}입니다.\"").unwrap();
    Pending {
        id,
        account: "default".into(),
        to: PhoneNumber::parse(phone).unwrap(),
        message: Message::Alimtalk(template.render(&[("code".to_owned(), format!("{id:06}"))].into(), false).unwrap()),
        send_at: None,
        request_key: None,
    }
}

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

fn in_doubt(rows: &[Pending], key: &RequestKey) -> Vec<Pending> {
    rows.iter().cloned().map(|r| Pending { request_key: Some(key.clone()), ..r }).collect()
}

#[tokio::test]
async fn an_answer_lost_after_infobip_took_the_request_is_found_in_its_logs_and_never_sent_twice() {
    let fake = FakeInfobip::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_millis(300)).unwrap();
    let sender = &config.accounts[0].sender;
    let rows = vec![otp(1, "010-1111-2222"), otp(2, "010-3333-4444")];
    let key = RequestKey::new(MORNING, 1);

    // Infobip takes the request; its answer never comes.
    let updates = client.send(sender, &rows, &key).await;
    assert!(updates.iter().all(|u| matches!(u, RowUpdate::Retry { in_doubt: true, .. })), "{updates:?}");

    // Reclaimed under the key: Infobip has no idempotency header, so it is asked first.
    let steps = dispatch::plan(client.dealer(), in_doubt(&rows, &key), MORNING + 60_000);
    let [Step::Lookup { key: looked, rows: asked }] = steps.as_slice() else { panic!("{steps:?}") };
    let found = client.lookup(looked, asked).await.unwrap();
    let (updates, next) = dispatch::after_lookup(looked, asked.clone(), &found, MORNING + 60_000);
    assert_eq!(
        updates,
        [
            RowUpdate::Accepted { id: 1, dealer_id: "cb1".into() },
            RowUpdate::Accepted { id: 2, dealer_id: "cb2".into() }
        ]
    );
    assert!(next.is_none(), "nothing to send again");
    let s = fake.state();
    assert_eq!((s.requests.len(), s.taken.len()), (1, 2), "each recipient got one message");
    assert_eq!(s.log_queries, [vec!["cb1".to_owned(), "cb2".to_owned()]], "asked by our message ids");
}

#[tokio::test]
async fn a_request_infobip_never_took_is_sent_again_once_its_absence_can_be_believed() {
    let fake = FakeInfobip::start().await;
    fake.state().fail_next.push(503);
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let sender = &config.accounts[0].sender;
    let rows = vec![otp(1, "010-1111-2222")];
    let key = RequestKey::new(MORNING, 1);
    // A 503 may hide an accepted request: in doubt.
    assert!(matches!(client.send(sender, &rows, &key).await[0], RowUpdate::Retry { in_doubt: true, .. }));

    // Asked at once, it is not listed: too early to believe, the row waits in doubt.
    let early = MORNING + 30_000;
    let found = client.lookup(&key, &rows).await.unwrap();
    let (updates, next) = dispatch::after_lookup(&key, in_doubt(&rows, &key), &found, early);
    assert!(matches!(&updates[0], RowUpdate::Retry { in_doubt: true, .. }) && next.is_none(), "{updates:?}");
    // Later it is still not listed: sent again, under a new key, once.
    let late = MORNING + dispatch::LOOKUP_SETTLE_MS;
    let found = client.lookup(&key, &rows).await.unwrap();
    let (updates, next) = dispatch::after_lookup(&key, in_doubt(&rows, &key), &found, late);
    assert!(updates.is_empty());
    let Some(Step::Send { key: new_key, rows: again, resend: false }) = next else { panic!("a new request expected") };
    assert_ne!(new_key, key);
    assert!(matches!(client.send(sender, &again, &new_key).await[0], RowUpdate::Accepted { .. }));
    assert_eq!(fake.state().taken.len(), 1);
}

#[tokio::test]
async fn reports_of_alimtalk_and_brand_messages_are_polled_and_the_logs_answer_for_the_rest() {
    let fake = FakeInfobip::start().await;
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let sender = &config.accounts[0].sender;
    client.send(sender, &[otp(1, "010-1111-2222")], &RequestKey::new(MORNING, 1)).await;
    client.send(sender, &[brand_row(&config, 2, "010-3333-4444")], &RequestKey::new(MORNING, 2)).await;
    let (alim, brand) = {
        let s = fake.state();
        (s.taken[0].clone(), s.taken[1].clone())
    };
    assert_eq!((alim.api, brand.api), ("kakao-alim", "kakao-chingu"));
    fake.deliver(report(&alim, "DELIVERED", "DELIVERED_TO_HANDSET", None));
    fake.deliver(report(
        &brand,
        "UNDELIVERABLE",
        "UNDELIVERABLE_NOT_DELIVERED",
        Some(("EC_NOT_FRIEND", "not a friend", true)),
    ));

    let reports = client.poll_results(MORNING, MORNING).await.unwrap();
    let states: Vec<(&str, ReportState)> = reports.iter().map(|r| (r.dealer_id.as_str(), r.state)).collect();
    assert_eq!(states, [("cb1", ReportState::Delivered), ("cb2", ReportState::Failed)]);
    assert_eq!(reports[1].code.as_deref(), Some("EC_NOT_FRIEND"));
    assert!(client.poll_results(MORNING, MORNING).await.unwrap().is_empty(), "each report is handed out once");

    // A message whose report was missed is asked about by id, in the logs of its API.
    let sent = [
        Sent { dealer_id: "cb1".into(), product: Product::Alimtalk },
        Sent { dealer_id: "cb2".into(), product: Product::Brand },
    ];
    let reports = client.results_of(&sent).await.unwrap();
    let states: Vec<(&str, ReportState)> = reports.iter().map(|r| (r.dealer_id.as_str(), r.state)).collect();
    assert_eq!(states, [("cb1", ReportState::Delivered), ("cb2", ReportState::Failed)]);
    assert_eq!(fake.state().log_queries, [vec!["cb1".to_owned()], vec!["cb2".to_owned()]]);
}

#[tokio::test]
async fn with_a_public_url_sends_name_the_daemons_webhook_and_sign_their_callback_data() {
    let fake = FakeInfobip::start().await;
    let mut vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("INFOBIP_WEBHOOK_TOKEN", "infobip-token-0123456789".into());
    vars.insert("CLAWBRIDGE_PUBLIC_URL", "https://bridge.example".into());
    let config = BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap();
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    client.send(&config.accounts[0].sender, &[otp(7, "010-1111-2222")], &RequestKey::new(MORNING, 7)).await;
    let taken = fake.state().taken[0].clone();
    assert_eq!(taken.report_url.as_deref(), Some("https://bridge.example/bizmsg/infobip/webhook"));
    assert!(clawbridge_bizmsg::webhook::callback_ok("infobip-token-0123456789", "cb7", taken.callback_data.as_deref()));
    // Without a public URL nothing is named.
    let plain = DealerClient::new(&self::config(&fake), Duration::from_secs(5)).unwrap();
    plain.send(&config.accounts[0].sender, &[otp(8, "010-1111-3333")], &RequestKey::new(MORNING, 8)).await;
    assert_eq!(fake.state().taken[1].report_url, None);
}

#[tokio::test]
async fn brand_templates_are_listed_page_by_page_then_read_one_by_one() {
    use clawbridge_bizmsg::template::TemplateStatus;
    use clawbridge_testkit::fake_infobip::brand_template;
    let fake = FakeInfobip::start().await;
    {
        let mut s = fake.state();
        // 101 codes: a full first page of 100, and one more on page 2.
        s.brand_templates = (1..=101)
            .map(|i| brand_template(&format!("code_{i:03}"), &format!("템플릿 {i}"), &format!("#{{name}}님 {i}"), None))
            .collect();
        s.brand_templates[0] = brand_template("code_001", "겨울", "#{name}님, 겨울 세일 #{rate}%", Some("보기"));
        let mut other = brand_template("other_001", "다른 발신", "x", None);
        other["senderKey"] = json!("ANOTHER-ACCOUNT");
        s.brand_templates.push(other);
    }
    let config = config(&fake);
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let templates = client.templates(&config.accounts[0].sender.sender_key).await.unwrap();
    assert_eq!(templates.len(), 101, "the sender's templates, both pages");
    let first = &templates[0];
    assert_eq!(
        (first.code.as_str(), first.name.as_str(), first.text.as_str(), first.status, first.product),
        ("code_001", "겨울", "#{name}님, 겨울 세일 #{rate}%", TemplateStatus::Approved, Product::Brand)
    );
    assert_eq!(first.buttons, [("URL".to_owned(), "보기".to_owned())]);
    assert_eq!(first.variable_names(), ["name", "rate"]);
    assert_eq!(templates[100].code, "code_101");

    let s = fake.state();
    assert!(s.wire_errors.is_empty(), "{:?}", s.wire_errors);
    let listed: Vec<_> =
        s.template_queries.iter().filter(|(path, _)| path == "/kakao-brand-messages/1/templates").collect();
    let pages: Vec<&str> = listed.iter().map(|(_, q)| q.get("page").map_or("", String::as_str)).collect();
    assert_eq!(pages, ["1", "2"], "page 2 only after a full page 1");
    assert!(listed.iter().all(|(_, q)| q.get("senderKey").map(String::as_str) == Some("OFFICIAL-ACCOUNT")));
    let singles = s.template_queries.len() - listed.len();
    assert_eq!(singles, 101, "each template read once");
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_by_the_template_list_and_named() {
    let fake = FakeInfobip::start().await;
    fake.state().brand_templates.push(clawbridge_testkit::fake_infobip::brand_template("c", "n", "t", None));
    let mut vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("INFOBIP_API_KEY", "WRONG".into());
    let config = BizmsgConfig::load(None, &|name| vars.get(name).cloned()).unwrap().unwrap();
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let e = client.templates(&config.accounts[0].sender.sender_key).await.unwrap_err();
    assert!(e.to_string().contains("INFOBIP_API_KEY"), "{e}");
    assert!(fake.state().template_queries.is_empty(), "refused before it is read");
}
