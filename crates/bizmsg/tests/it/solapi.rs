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

/// 2026-12-24 10:00 KST: inside the ad window.
const MORNING: i64 = 1_798_074_000_000;

/// The header of a PNG of `width`×`height` (all that is read of it before the upload).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    bytes.extend_from_slice(&[0x5a; 64]);
    bytes
}

#[tokio::test]
async fn a_brand_template_image_is_uploaded_as_a_bms_file_and_the_send_names_its_file_id() {
    use clawbridge_bizmsg::brand::{BrandRequest, ImageSource, Targeting, prepare_brand};
    let fake = FakeSolapi::start().await;
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let file: toml::Table = toml::from_str(
        r##"
[[brandTemplates]]
templateCode = "WINTER"
templateId = "KA01TP9"
chatBubbleType = "IMAGE"
text = "#{name}님, 겨울 세일 #{rate}% 할인"
"##,
    )
    .unwrap();
    let config = BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).unwrap().unwrap();
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let image = png(800, 400);
    let request = BrandRequest {
        account: "default".into(),
        to: "010-1111-2222".into(),
        text: String::new(),
        template: Some("WINTER".into()),
        variables: [("name".to_owned(), "홍길동".to_owned()), ("rate".to_owned(), "20".to_owned())].into(),
        image: Some(ImageSource::File { name: "/tmp/sale.png".into(), bytes: image.clone() }),
        buttons: vec![],
        targeting: Targeting::Friends,
        fallback: false,
        at: None,
        idempotency_key: None,
        origin: "cli".into(),
    };
    let mut prepared = prepare_brand(&config, &request, MORNING).unwrap();
    let to_upload = prepared.image_to_upload().cloned().expect("a file is uploaded before the row is stored");
    let file_id = client.upload_image(&to_upload.source, to_upload.format, &image).await.unwrap();
    prepared.set_image_ref(file_id.clone()).unwrap();
    {
        let s = fake.state();
        assert_eq!(s.uploads.len(), 1);
        let upload = &s.uploads[0];
        assert_eq!((upload.kind.as_str(), upload.name.as_str(), &upload.bytes), ("BMS", "sale.png", &image));
        assert_eq!(upload.file_id, file_id);
    }

    let p = &prepared.prepared;
    let row = clawbridge_bizmsg::send::pending(1, "default", p.recipient.national(), &p.payload, None).unwrap();
    let steps = dispatch::plan(client.dealer(), vec![row], MORNING);
    let [Step::Send { key, rows, resend: false }] = steps.as_slice() else { panic!("{steps:?}") };
    let updates = client.send(&config.accounts[0].sender, rows, key).await;
    assert_eq!(updates, [RowUpdate::Accepted { id: 1, dealer_id: "M4V0".into() }]);
    let s = fake.state();
    assert!(s.wire_errors.is_empty() && s.signature_errors.is_empty(), "{:?} {:?}", s.wire_errors, s.signature_errors);
    assert_eq!(s.salts.len(), 2, "the upload and the send, each signed with its own salt");
    let taken = &s.taken[0];
    assert_eq!((taken.kind.as_str(), taken.to.as_str()), ("BMS_IMAGE", "01011112222"));
    assert_eq!(
        taken.kakao_options,
        json!({"pfId": "KA01PF1", "templateId": "KA01TP9", "variables": {"#{name}": "홍길동", "#{rate}": "20"},
               "bms": {"targeting": "I", "chatBubbleType": "IMAGE", "imageId": file_id}, "disableSms": true})
    );
}

#[tokio::test]
async fn a_brand_message_naming_an_image_solapi_does_not_have_is_refused_by_the_fake() {
    // The fake's check itself: a send whose imageId was never uploaded does not pass for one.
    use clawbridge_bizmsg::brand::{BrandContent, BrandImage, ImageFormat, Targeting};
    use clawbridge_bizmsg::template::Bubble;
    let fake = FakeSolapi::start().await;
    let config = config(&fake, "SECRET");
    let client = DealerClient::new(&config, Duration::from_secs(5)).unwrap();
    let content = BrandContent {
        text: "겨울 세일".into(),
        bubble: Bubble::Image,
        image: Some(BrandImage {
            source: "sale.png".into(),
            format: ImageFormat::Png,
            digest: Some("d".into()),
            dealer_ref: Some("ST01NEVER".into()),
        }),
        template: None,
        buttons: vec![],
        targeting: Targeting::Friends,
        opt_out_number: None,
        fallback: None,
    };
    let row = Pending {
        id: 1,
        account: "default".into(),
        to: PhoneNumber::parse("010-1111-2222").unwrap(),
        message: Message::Brand(content),
        send_at: None,
        request_key: None,
    };
    let updates = client.send(&config.accounts[0].sender, &[row], &RequestKey::new(MORNING, 1)).await;
    assert!(matches!(&updates[0], RowUpdate::Dead { reason, .. } if reason.contains("HTTP 400")), "{updates:?}");
    let s = fake.state();
    assert_eq!(s.wire_errors.len(), 1, "{:?}", s.wire_errors);
    assert!(s.wire_errors[0].contains("ST01NEVER"), "{:?}", s.wire_errors);
    assert!(s.taken.is_empty());
}

#[tokio::test]
async fn alimtalk_templates_are_read_page_by_page_with_their_status_and_variables() {
    use clawbridge_bizmsg::template::TemplateStatus;
    use clawbridge_testkit::fake_solapi::template;
    let fake = FakeSolapi::start().await;
    {
        let mut s = fake.state();
        s.templates = vec![
            template("KA01TP1", "인증", "인증번호는 #{code}입니다.", "APPROVED", &["code"]),
            template("KA01TP2", "발송", "#{name}님 발송 #{tracking}", "INSPECTING", &["name", "tracking"]),
            template("KA01TP3", "반려", "#{name}님", "REJECTED", &["name"]),
        ];
        let mut other = template("KA01TP4", "다른 채널", "x", "APPROVED", &[]);
        other["channelId"] = json!("KA01PF2");
        s.templates.push(other);
        s.templates_page_size = Some(2);
    }
    let settings = config(&fake, "SECRET");
    let client = DealerClient::new(&settings, Duration::from_secs(5)).unwrap();
    let templates = client.templates(&settings.accounts[0].sender.sender_key).await.unwrap();
    let read: Vec<(&str, TemplateStatus, Vec<String>, Product)> =
        templates.iter().map(|t| (t.code.as_str(), t.status, t.variable_names(), t.product)).collect();
    assert_eq!(
        read,
        [
            ("KA01TP1", TemplateStatus::Approved, vec!["code".to_owned()], Product::Alimtalk),
            ("KA01TP2", TemplateStatus::InReview, vec!["name".to_owned(), "tracking".to_owned()], Product::Alimtalk),
            ("KA01TP3", TemplateStatus::Rejected, vec!["name".to_owned()], Product::Alimtalk),
        ],
        "the sender's templates only"
    );
    assert_eq!(templates[0].text, "인증번호는 #{code}입니다.");
    let s = fake.state();
    let pairs = |q: &Vec<(String, String)>| -> BTreeMap<String, String> { q.iter().cloned().collect() };
    let queries: Vec<BTreeMap<String, String>> = s.template_queries.iter().map(pairs).collect();
    assert_eq!(queries.len(), 2, "two pages: {queries:?}");
    assert_eq!(queries[0].get("channelId").map(String::as_str), Some("KA01PF1"));
    assert_eq!(queries[0].get("startKey"), None);
    assert_eq!(queries[1].get("startKey").map(String::as_str), Some("KA01TP3"), "the first page's nextKey");
    assert!(s.wire_errors.is_empty() && s.signature_errors.is_empty(), "{:?} {:?}", s.wire_errors, s.signature_errors);
}
