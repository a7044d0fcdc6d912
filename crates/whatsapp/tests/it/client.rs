//! The Kapso client against the fake API: bodies, headers, error classes, media, paging, limits.

use crate::support::{API_KEY, Answer, FakeKapso, FakeKapsoClient as _, PNID};
use clawbridge_core::{MediaKind, SendError};
use clawbridge_http::DownloadError;
use clawbridge_whatsapp::client::{ListQuery, MediaError, MediaSource};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn text_reply_has_the_meta_body_and_the_api_key() {
    let fake = FakeKapso::start().await;
    let sent = fake.client().send_text("+1 (555) 123-4567", "Hello https://x.y", Some("wamid.in")).await.unwrap();
    assert_eq!(sent.message_id, "wamid.sent1");
    let requests = fake.requests_to("POST", &format!("/{PNID}/messages"));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].api_key.as_deref(), Some(API_KEY));
    assert_eq!(
        requests[0].json(),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567","type":"text",
               "text":{"body":"Hello https://x.y","preview_url":true},"context":{"message_id":"wamid.in"}})
    );
}

#[tokio::test]
async fn bsuid_recipients_media_templates_reactions_and_mark_read() {
    let fake = FakeKapso::start().await;
    let client = fake.client();
    client.send_text("US.13491208655302741918", "hi", None).await.unwrap();
    client
        .send_media(
            "15551234567",
            MediaKind::Document,
            &MediaSource::Link("https://e.com/r.pdf".into()),
            Some("Report"),
            Some("r.pdf"),
            None,
        )
        .await
        .unwrap();
    client
        .send_media("15551234567", MediaKind::Audio, &MediaSource::Id("M1".into()), Some("ignored"), None, None)
        .await
        .unwrap();
    client
        .send_template("15551234567", "order_confirmation", "en_US", &[("customer_name".into(), "Jessica".into())])
        .await
        .unwrap();
    client.send_reaction("15551234567", "wamid.x", "👍").await.unwrap();
    client.mark_read("wamid.in", true).await.unwrap();
    let bodies: Vec<_> = fake.requests_to("POST", "/messages").iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["recipient"], "US.13491208655302741918");
    assert!(bodies[0].get("to").is_none());
    assert_eq!(bodies[1]["document"], json!({"link":"https://e.com/r.pdf","caption":"Report","filename":"r.pdf"}));
    assert_eq!(bodies[2]["audio"], json!({"id":"M1"}));
    assert_eq!(
        bodies[3]["template"],
        json!({"name":"order_confirmation","language":{"code":"en_US"},
               "components":[{"type":"body","parameters":[{"type":"text","parameter_name":"customer_name","text":"Jessica"}]}]})
    );
    assert_eq!(bodies[4]["reaction"], json!({"message_id":"wamid.x","emoji":"👍"}));
    assert_eq!(
        bodies[5],
        json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.in","typing_indicator":{"type":"text"}})
    );
}

#[tokio::test]
async fn errors_are_classified_for_the_outbox() {
    let fake = FakeKapso::start().await;
    fake.script_sends([
        Answer { status: 429, retry_after: Some(7), body: json!({"error":"rate limited"}) },
        Answer::error(409, json!({"error":"Another message in-flight for this conversation. Retry shortly."})),
        Answer::error(503, json!({"error":"unavailable"})),
        Answer::error(
            400,
            json!({"error":{"message":"Re-engagement message","code":131047,"error_data":{"details":"24 hours"}}}),
        ),
        Answer::error(400, json!({"error":{"message":"Recipient not a WhatsApp user","code":131026}})),
    ]);
    let limiter = std::sync::Arc::new(clawbridge_whatsapp::limiter::RateLimiter::new(1000));
    let client = clawbridge_whatsapp::KapsoClient::with_parts(
        &fake.meta_base(),
        PNID,
        API_KEY.to_owned().into(),
        limiter.clone(),
        clawbridge_whatsapp::client::MediaPolicy { hosts: vec![], max_bytes: 1 },
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        client.send_text("1555", "a", None).await.unwrap_err(),
        SendError::RateLimited { retry_after: Some(Duration::from_secs(7)) }
    );
    // The 429 paused the key for its Retry-After. The other answers go through a fresh limiter
    // rather than wait the 7 s out on the real clock (the pause's length is tested in paused
    // time with the limiter itself, crates/http/tests/it/limit.rs).
    assert!(limiter.paused_for().is_some(), "a 429 pauses everyone on the key");
    let client = fake.client();
    assert!(matches!(client.send_text("1555", "b", None).await.unwrap_err(), SendError::Transient { .. }));
    assert!(matches!(client.send_text("1555", "c", None).await.unwrap_err(), SendError::Transient { .. }));
    match client.send_text("1555", "d", None).await.unwrap_err() {
        SendError::Permanent(reason) => assert!(reason.contains("131047"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(client.send_text("1555", "e", None).await.unwrap_err(), SendError::Permanent(_)));
    assert_eq!(client.send_text("1555", "f", None).await.unwrap().message_id, "wamid.sent1");
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_and_an_unreachable_api_is_transient() {
    let fake = FakeKapso::start().await;
    let wrong = clawbridge_whatsapp::KapsoClient::with_parts(
        &fake.meta_base(),
        PNID,
        "wrong".to_owned().into(),
        std::sync::Arc::new(clawbridge_whatsapp::limiter::RateLimiter::new(100)),
        clawbridge_whatsapp::client::MediaPolicy { hosts: vec![], max_bytes: 1 },
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(wrong.check_credentials().await.unwrap_err(), SendError::AuthExpired);
    let nowhere = clawbridge_whatsapp::KapsoClient::with_parts(
        "http://127.0.0.1:9/meta/whatsapp/v24.0",
        PNID,
        API_KEY.to_owned().into(),
        std::sync::Arc::new(clawbridge_whatsapp::limiter::RateLimiter::new(100)),
        clawbridge_whatsapp::client::MediaPolicy { hosts: vec![], max_bytes: 1 },
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(matches!(nowhere.send_text("1", "x", None).await.unwrap_err(), SendError::Transient { .. }));
}

#[tokio::test]
async fn bursts_queue_behind_the_rate_limit() {
    let fake = FakeKapso::start().await;
    // 2 requests per 400 ms window: 6 sends need at least three windows, and none fails.
    let client = fake.client_with(2, Duration::from_millis(400), 1024);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let client = client.clone();
        tasks.spawn(async move { client.send_text("1555", &format!("m{i}"), None).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let times: Vec<_> = fake.requests_to("POST", "/messages").iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 6);
    // Any three consecutive arrivals span at least one window: never more than 2 per window.
    for w in times.windows(3) {
        assert!(w[2].duration_since(w[0]) >= Duration::from_millis(300), "{:?}", w[2].duration_since(w[0]));
    }
}

#[tokio::test]
async fn upload_then_send_by_id() {
    let fake = FakeKapso::start().await;
    let client = fake.client();
    let id = client.upload_media(b"%PDF-1.4 test".to_vec(), "application/pdf", "r.pdf").await.unwrap();
    assert_eq!(id, "media-uploaded-1");
    let upload = &fake.requests_to("POST", "/media")[0];
    let raw = String::from_utf8_lossy(&upload.body);
    assert!(raw.contains("name=\"messaging_product\"") && raw.contains("whatsapp"));
    assert!(raw.contains("name=\"type\"") && raw.contains("application/pdf"));
    assert!(raw.contains("name=\"file\"; filename=\"r.pdf\"") && raw.contains("%PDF-1.4 test"));
}

#[tokio::test]
async fn media_download_follows_the_policy() {
    let fake = FakeKapso::start().await;
    let client = fake.client_with(100, Duration::from_secs(60), 8);
    let small = fake.add_file("small.png", "image/png", b"\x89PNG".to_vec());
    let got = client.download_media(&small).await.unwrap();
    assert_eq!(got.bytes, b"\x89PNG");
    assert_eq!(got.content_type.as_deref(), Some("image/png"));
    let big = fake.add_file("big.bin", "application/octet-stream", vec![0; 64]);
    let err = client.download_media(&big).await.unwrap_err();
    assert_eq!(err, MediaError(DownloadError::TooLarge(8)));
    assert!(err.to_string().contains("KAPSO_MEDIA_MAX_BYTES"), "names the setting: {err}");
    let err = client.download_media("https://evil.example.com/x.png").await.unwrap_err();
    assert!(matches!(err, MediaError(DownloadError::NotAllowed(_))), "{err:?}");
    assert!(err.to_string().contains("KAPSO_MEDIA_HOSTS"), "names the setting: {err}");
    assert!(matches!(client.download_media("file:///etc/passwd").await, Err(MediaError(DownloadError::NotAllowed(_)))));
    let redirect = format!("{}/redirect-out", fake.url());
    assert!(matches!(client.download_media(&redirect).await, Err(MediaError(DownloadError::NotAllowed(_)))));
    // The media id lookup needs phone_number_id and yields a download URL.
    fake.add_file("MEDIA9", "image/png", b"abcd".to_vec());
    let info = client.media_info("MEDIA9").await.unwrap();
    assert_eq!(client.download_media(&info.url).await.unwrap().bytes, b"abcd");
}

#[tokio::test]
async fn listing_pages_newest_first_with_cursors() {
    let fake = FakeKapso::start().await;
    fake.add_history((0..5).map(|i| {
        json!({"id":format!("wamid.{i}"),"from":"1555","type":"text","text":{"body":format!("m{i}")},
               "kapso":{"direction":"inbound","created_at":format!("2026-03-26T15:05:0{i}.000000Z")}})
    }));
    let client = fake.client();
    let first = client.list_messages(&ListQuery { limit: Some(2), ..ListQuery::default() }).await.unwrap();
    assert_eq!(first.data.iter().map(|m| m["id"].as_str().unwrap()).collect::<Vec<_>>(), ["wamid.4", "wamid.3"]);
    let second =
        client.list_messages(&ListQuery { limit: Some(2), after: first.after, ..ListQuery::default() }).await.unwrap();
    assert_eq!(second.data[0]["id"], "wamid.2");
    let request = fake.requests_to("GET", "/messages").pop().unwrap();
    assert_eq!(request.query.get("after").map(String::as_str), Some("cursor-2"));
    assert_eq!(request.query.get("fields").map(String::as_str), Some("kapso(default)"));
}
