//! The webhook routes over HTTP: signatures, the three body shapes, limits, dedup, statuses.

use crate::support::{FakeKapso, FakeKapsoClient as _, MemoryBridge, PNID, memory_bridge};
use clawbridge_core::{InboundMessage, MediaKind, MessageKind, OutboundMessage};
use clawbridge_store::{Outage, OutboxQueue as _};
use clawbridge_testkit::fake_kapso::message_received;
use clawbridge_whatsapp::webhook::{self, MAX_BODY_BYTES, WebhookAccount, WebhookState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "wh_sec_test";

struct Server {
    url: String,
    bridge: MemoryBridge,
    http: reqwest::Client,
    fake: FakeKapso,
}

async fn server_with(secret: Option<&str>) -> Server {
    let fake = FakeKapso::start().await;
    let bridge = memory_bridge();
    let state = WebhookState {
        bridge: bridge.bridge.clone(),
        accounts: Arc::new(vec![
            WebhookAccount { id: "default".into(), phone_number_id: PNID.into(), client: fake.client() },
            WebhookAccount { id: "sales".into(), phone_number_id: "222".into(), client: fake.client() },
        ]),
        secret: secret.map(|s| s.to_owned().into()),
        verify_token: Some("verify-me".to_owned().into()),
        media_budget: Duration::from_secs(5),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = webhook::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { url, bridge, http: reqwest::Client::new(), fake }
}

async fn server() -> Server {
    server_with(Some(SECRET)).await
}

impl Server {
    async fn post(&self, path: &str, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts with a valid `X-Webhook-Signature` and the given event header.
    async fn signed(&self, body: &str, event: Option<&str>) -> (u16, Value) {
        let mut headers = vec![("x-webhook-signature", webhook::sign(SECRET.as_bytes(), body.as_bytes()))];
        if let Some(event) = event {
            headers.push(("x-webhook-event", event.to_owned()));
        }
        self.post("/webhook", body, &headers).await
    }
}

fn non_batched(id: &str, text: &str) -> String {
    message_received(id, "+15551234567", "John Doe", text).to_string()
}

/// Messages this bridge sent (as the outbox worker records them), so their statuses attach.
async fn sent_earlier(s: &Server, platform_ids: &[&str]) -> Vec<i64> {
    let to = InboundMessage::text("whatsapp", "default", "15551234567", "wamid.q", "q");
    let mut ids = Vec::new();
    for (i, platform_id) in platform_ids.iter().enumerate() {
        s.bridge.bridge.enqueue(OutboundMessage::reply_text(&to, "a"), &format!("out-{i}")).await.unwrap();
        // Due from its enqueue time on, which the bridge took from the clock.
        let now = clawbridge_core::clock::now_ms();
        let row = s.bridge.store.claim_outbound("w", 1, 60_000, now).await.unwrap().remove(0);
        assert!(s.bridge.store.mark_sent(row.id, "w", Some(platform_id), now).await.unwrap());
        ids.push(row.id);
    }
    ids
}

#[tokio::test]
async fn signed_non_batched_delivery_is_stored_before_200() {
    let s = server().await;
    let (status, answer) = s.signed(&non_batched("wamid.1", "Hello"), Some("whatsapp.message.received")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let stored = s.bridge.inbox().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].peer.as_str(), "15551234567");
    assert_eq!(stored[0].account.as_str(), "default");
    assert_eq!(stored[0].text, "Hello");
    assert_eq!(stored[0].sender_name.as_deref(), Some("John Doe"));
}

#[tokio::test]
async fn kapso_test_vector_and_both_signature_headers() {
    let s = server().await;
    // The verified vector from the reference: Kapso's own signature over these exact bytes.
    let body = r#"{"message":{"id":"wamid.TEST","timestamp":"1730092800","type":"text","text":{"body":"Hello"}},"phone_number_id":"123456789012345"}"#;
    let (status, _) = s
        .post(
            "/whatsapp/webhook",
            body,
            &[
                ("x-webhook-signature", "476853d61fe7b5b27d0f0c47dc47aa48346f1e647f37bfb0b0a2b3a3bdd1de09".to_owned()),
                ("x-webhook-event", "whatsapp.message.received".to_owned()),
            ],
        )
        .await;
    // No sender anywhere in this minimal record: a dead letter with its reason, nothing stored,
    // and 200 (a retry of the same bytes cannot succeed).
    assert_eq!(status, 200);
    assert!(s.bridge.inbox().await.is_empty());
    let dead = s.bridge.bridge.state_list(clawbridge_whatsapp::ingest::DEAD_LETTERS, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("wamid.TEST"), "{dead:?}");

    let meta = json!({"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
        "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 631-555-8151","phone_number_id":"222"},
        "contacts":[{"profile":{"name":"Jane Doe"},"wa_id":"15557654321"}],
        "messages":[{"from":"15557654321","id":"wamid.meta","timestamp":"1735689600","type":"text","text":{"body":"Hello Kapso"}}]}}]}]})
    .to_string();
    let hub = format!("sha256={}", webhook::sign(SECRET.as_bytes(), meta.as_bytes()));
    let (status, _) = s.post("/webhook", &meta, &[("x-hub-signature-256", hub)]).await;
    assert_eq!(status, 200);
    let stored = s.bridge.inbox().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].account.as_str(), "sales", "routed by metadata.phone_number_id");
    assert_eq!(stored[0].sender_name.as_deref(), Some("Jane Doe"));
    // sha256= prefix on X-Webhook-Signature works too.
    let body = non_batched("wamid.prefixed", "hi");
    let sig = format!("sha256={}", webhook::sign(SECRET.as_bytes(), body.as_bytes()));
    assert_eq!(s.post("/webhook", &body, &[("x-webhook-signature", sig)]).await.0, 200);
}

#[tokio::test]
async fn batched_delivery_stores_every_record_in_order() {
    let s = server().await;
    let body = json!({"type":"whatsapp.message.received","batch":true,"data":[
        {"message":{"id":"wamid.111","timestamp":"1730092801","type":"text","text":{"body":"First"},
           "kapso":{"direction":"inbound","phone_number":"+15551234567","phone_number_id":PNID}},
         "conversation":{"id":"conv_123","phone_number":"+15551234567"},"phone_number_id":PNID},
        {"message":{"id":"wamid.112","timestamp":"1730092802","type":"text","text":{"body":"Second"},
           "kapso":{"direction":"inbound","phone_number":"+15551234567"}},
         "phone_number_id":PNID}]})
    .to_string();
    let (status, answer) = s.signed(&body, None).await;
    assert_eq!(status, 200, "{answer}");
    let texts: Vec<String> = s.bridge.inbox().await.iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, ["First", "Second"]);
}

#[tokio::test]
async fn bad_signature_oversize_and_malformed_store_nothing() {
    let s = server().await;
    let body = non_batched("wamid.x", "forged");
    let (status, _) = s.post("/webhook", &body, &[("x-webhook-signature", "00".repeat(32))]).await;
    assert_eq!(status, 401);
    let (status, _) = s.post("/webhook", &body, &[]).await;
    assert_eq!(status, 401, "missing signature");
    let wrong_key = webhook::sign(b"other-secret", body.as_bytes());
    assert_eq!(s.post("/webhook", &body, &[("x-webhook-signature", wrong_key)]).await.0, 401);

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let sig = webhook::sign(SECRET.as_bytes(), huge.as_bytes());
    assert_eq!(s.post("/webhook", &huge, &[("x-webhook-signature", sig)]).await.0, 413);

    let garbage = "{not json";
    let sig = webhook::sign(SECRET.as_bytes(), garbage.as_bytes());
    assert_eq!(s.post("/webhook", garbage, &[("x-webhook-signature", sig)]).await.0, 400);

    let v1 = non_batched("wamid.v1", "old");
    let sig = webhook::sign(SECRET.as_bytes(), v1.as_bytes());
    assert_eq!(
        s.post("/webhook", &v1, &[("x-webhook-signature", sig), ("x-webhook-payload-version", "v1".into())]).await.0,
        400
    );
    assert!(s.bridge.inbox().await.is_empty());
}

#[tokio::test]
async fn duplicates_by_message_id_and_idempotency_key() {
    let s = server().await;
    let body = non_batched("wamid.dup", "once");
    assert_eq!(s.signed(&body, Some("whatsapp.message.received")).await.1["accepted"], 1);
    let (status, answer) = s.signed(&body, Some("whatsapp.message.received")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["duplicates"], 1);
    assert_eq!(s.bridge.inbox().await.len(), 1);

    // A retried delivery with the same X-Idempotency-Key is acknowledged without work
    // (media is not downloaded again).
    let url = s.fake.add_file("idem.jpg", "image/jpeg", vec![1, 2, 3]);
    let other = json!({"message":{"id":"wamid.idem","type":"image","image":{"id":"M","mime_type":"image/jpeg"},
        "kapso":{"direction":"inbound","media_url":url}},
      "conversation":{"phone_number":"+15551234567"},"phone_number_id":PNID})
    .to_string();
    let headers = vec![
        ("x-webhook-signature", webhook::sign(SECRET.as_bytes(), other.as_bytes())),
        ("x-idempotency-key", "delivery-42".to_owned()),
    ];
    assert_eq!(s.post("/webhook", &other, &headers).await.1["accepted"], 1);
    let (status, answer) = s.post("/webhook", &other, &headers).await;
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(true)));
    assert_eq!(s.bridge.inbox().await.len(), 2);
    assert_eq!(s.fake.requests_to("GET", "/files/idem.jpg").len(), 1, "downloaded once");
}

#[tokio::test]
async fn a_store_failure_is_retryable_and_the_retry_succeeds() {
    let s = server().await;
    let body = non_batched("wamid.retry", "hello");
    let headers = vec![
        ("x-webhook-signature", webhook::sign(SECRET.as_bytes(), body.as_bytes())),
        ("x-idempotency-key", "delivery-7".to_owned()),
    ];
    s.bridge.store.set_outage(Outage::Writes);
    assert_eq!(s.post("/webhook", &body, &headers).await.0, 503);
    s.bridge.store.set_outage(Outage::None);
    // The failed attempt did not mark the idempotency key: the redelivery is processed.
    assert_eq!(s.post("/webhook", &body, &headers).await.1["accepted"], 1);
    assert_eq!(s.bridge.inbox().await.len(), 1);
}

#[tokio::test]
async fn statuses_in_kapso_and_meta_form_are_recorded() {
    let s = server().await;
    sent_earlier(&s, &["wamid.789", "wamid.abc"]).await;
    let failed = json!({"message":{"id":"wamid.789","type":"text","text":{"body":"This message failed"},
        "kapso":{"direction":"outbound","status":"failed","statuses":[
          {"id":"wamid.789","status":"sent","timestamp":"1730093100","recipient_id":"15551234567"},
          {"id":"wamid.789","status":"failed","timestamp":"1730093200","recipient_id":"15551234567",
           "errors":[{"code":131047,"title":"Re-engagement message","message":"More than 24 hours have passed since the recipient last replied"}]}]}},
      "conversation":{"id":"conv_123","phone_number":"+15551234567"},"is_new_conversation":false,"phone_number_id":PNID})
    .to_string();
    let (status, answer) = s.signed(&failed, Some("whatsapp.message.failed")).await;
    assert_eq!(status, 200, "{answer}");
    let meta = json!({"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":PNID},
        "statuses":[{"id":"wamid.abc","status":"delivered","timestamp":"1735689660","recipient_id":"15551234567"}]}}]}]})
    .to_string();
    assert_eq!(s.signed(&meta, None).await.0, 200);
    let rows = s.bridge.outbound_rows().await;
    let statuses: Vec<_> = rows.iter().filter(|r| r.delivery_status.is_some()).collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].platform_message_id.as_deref(), Some("wamid.789"));
    assert_eq!(statuses[0].delivery_status.as_deref(), Some("failed"));
    assert!(statuses[0].delivery_error.as_deref().unwrap().starts_with("131047 Re-engagement message"));
    assert_eq!(
        (statuses[1].platform_message_id.as_deref(), statuses[1].delivery_status.as_deref()),
        (Some("wamid.abc"), Some("delivered"))
    );
    assert!(s.bridge.inbox().await.is_empty(), "statuses are not messages");
}

#[tokio::test]
async fn unknown_events_are_acknowledged_and_ignored() {
    let s = server().await;
    let body = json!({"conversation":{"id":"conv_1","phone_number":"+15551234567"},"phone_number_id":PNID}).to_string();
    let (status, answer) = s.signed(&body, Some("whatsapp.conversation.ended")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["ignored"], 1);
    let foreign = non_batched("wamid.foreign", "hi").replace(PNID, "999999");
    let (status, answer) = s.signed(&foreign, Some("whatsapp.message.received")).await;
    assert_eq!((status, answer["ignored"].clone()), (200, json!(1)));
    assert!(s.bridge.inbox().await.is_empty());
}

#[tokio::test]
async fn meta_verification_handshake() {
    let s = server().await;
    let get = |query: &str| {
        let url = format!("{}/webhook?{query}", s.url);
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        get("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").await,
        (200, "1158201444".into())
    );
    assert_eq!(get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1").await.0, 403);
    assert_eq!(get("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1").await.0, 403);
}

#[tokio::test]
async fn image_is_downloaded_into_the_message_and_failures_keep_the_message() {
    let s = server().await;
    let url = s.fake.add_file("photo.jpg", "image/jpeg", vec![0xff, 0xd8, 0xff, 0xe0]);
    let body = json!({"message":{"id":"wamid.img","timestamp":"1730092800","type":"image",
        "image":{"id":"MEDIA_ID","mime_type":"image/jpeg","caption":"Receipt"},
        "kapso":{"direction":"inbound","media_url":url,"media_data":{"url":url,"filename":"photo.jpg","content_type":"image/jpeg","byte_size":4}}},
      "conversation":{"phone_number":"+15551234567"},"phone_number_id":PNID})
    .to_string();
    assert_eq!(s.signed(&body, Some("whatsapp.message.received")).await.0, 200);
    let msg = &s.bridge.inbox().await[0];
    assert_eq!(msg.kind, MessageKind::Image);
    assert_eq!(msg.media[0].data_base64.as_deref(), Some("/9j/4A=="));
    assert_eq!(msg.media[0].caption.as_deref(), Some("Receipt"));

    // A link outside the allow-list is not fetched; the message is still stored, described.
    let evil = body.replace(&url, "https://evil.example.com/x.jpg").replace("wamid.img", "wamid.img2");
    assert_eq!(s.signed(&evil, Some("whatsapp.message.received")).await.0, 200);
    let msg = &s.bridge.inbox().await[1];
    assert_eq!(msg.media[0].kind, MediaKind::Image);
    assert!(msg.media[0].data_base64.is_none());
    let data = clawbridge_whatsapp::inbound::InboundData::of(msg).expect("WhatsApp data");
    assert!(data.media_errors[0].contains("not allowed"), "{:?}", data.media_errors);

    // No URL in the payload: the media id is resolved through Kapso (phone_number_id required).
    s.fake.add_file("MEDIA_ID2", "image/png", b"png!".to_vec());
    let by_id = json!({"message":{"id":"wamid.img3","type":"image","image":{"id":"MEDIA_ID2","mime_type":"image/png"},"from":"15551234567"},
        "phone_number_id":PNID})
    .to_string();
    assert_eq!(s.signed(&by_id, Some("whatsapp.message.received")).await.0, 200);
    assert_eq!(s.bridge.inbox().await[2].media[0].data_base64.as_deref(), Some("cG5nIQ=="));
}

#[tokio::test]
async fn without_a_secret_unsigned_deliveries_are_accepted() {
    let s = server_with(None).await;
    let (status, _) = s.post("/webhook", &non_batched("wamid.unsigned", "hi"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(s.bridge.inbox().await.len(), 1);
}

/// One bad record in a batch no longer loses the batch: the good records are stored, the bad
/// one (no id; a status without an id; an unknown phone number id) is a dead letter with its
/// reason, and the delivery is answered 200.
#[tokio::test]
async fn one_bad_record_is_a_dead_letter_and_the_rest_of_the_batch_is_stored() {
    let s = server().await;
    let mixed = json!({"type":"whatsapp.message.received","batch":true,"data":[
        {"message":{"id":"wamid.good","type":"text","text":{"body":"ok"},"from":"1555"}},
        {"message":{"type":"text","text":{"body":"no id"},"from":"1555"}},
        {"message":{"id":"wamid.elsewhere","type":"text","text":{"body":"other number"},"from":"1555"},
         "phone_number_id":"999999"},
        {"message":{"id":"wamid.also-good","type":"text","text":{"body":"ok too"},"from":"1556"}}]})
    .to_string();
    let (status, answer) = s.signed(&mixed, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["dead_letters"], 2, "{answer}");
    let ids: Vec<String> = s.bridge.inbox().await.iter().map(|m| m.message_id.as_str().to_owned()).collect();
    assert_eq!(ids, ["wamid.good", "wamid.also-good"]);
    let dead = s.bridge.bridge.state_list(clawbridge_whatsapp::ingest::DEAD_LETTERS, 10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().map(|(_, v, _)| v.as_str()).collect();
    assert_eq!(dead.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("999999") && r.contains("not served")), "{reasons:?}");

    // A status without an id does not refuse the statuses with one.
    let statuses = json!({"type":"whatsapp.message.delivered","batch":true,"data":[
        {"message":{"kapso":{"direction":"outbound","status":"delivered"}}},
        {"message":{"id":"wamid.sent-1","kapso":{"direction":"outbound","status":"delivered"}}}]})
    .to_string();
    let (status, answer) = s.signed(&statuses, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["statuses"].clone(), answer["dead_letters"].clone()), (json!(1), json!(1)), "{answer}");
}

/// `clawbridge status` shows the dead letters (the WhatsApp plugin's part of it); nothing when
/// there are none.
#[tokio::test]
async fn status_shows_the_dead_letters() {
    use clawbridge_channel::plugin::ChannelPlugin as _;
    let s = server().await;
    let plugin = clawbridge_whatsapp::WhatsAppPlugin;
    assert!(plugin.status(None, s.bridge.bridge.as_ref()).await.unwrap().is_none());
    let broken = json!({"type":"whatsapp.message.received","batch":true,"data":[
        {"message":{"id":"wamid.broken","type":"text","text":{"body":"x"},"from":"1555"},"phone_number_id":"424242"}]})
    .to_string();
    assert_eq!(s.signed(&broken, None).await.0, 200);
    let status = plugin.status(None, s.bridge.bridge.as_ref()).await.unwrap().expect("dead letters shown");
    assert_eq!(status.json[0]["message_id"], "wamid.broken");
    assert!(status.lines.iter().any(|l| l.contains("wamid.broken") && l.contains("424242")), "{:?}", status.lines);
}
