//! Snapshots of the two conversions at the channel's edges, each reviewed against
//! reference/kapso-whatsapp.md: a webhook delivery → `InboundMessage`s (with the channel's
//! `InboundData` in `extra`), media still to fetch and delivery statuses (§6.5, §6.6); and an
//! `OutboundMessage` (plus its `OutboundSpec`) → the Meta-format send body Kapso receives (§3).
//!
//! The bodies are those of the reference where it has one. Snapshots live in `snapshots/`; a
//! change in a conversion fails here until the `.snap` is reviewed and updated.

use crate::support::{API_KEY, FakeKapso, PNID};
use clawbridge_channel::Connector;
use clawbridge_core::{AccountId, IdempotencyKey, InboundMessage, MediaKind, MediaRef, OutboundMessage};
use clawbridge_whatsapp::account::OutboundSpec;
use clawbridge_whatsapp::inbound::{convert_record, parse_webhook};
use clawbridge_whatsapp::{WhatsAppConfig, WhatsAppConnector};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One delivery through the webhook's own path: parsed once, each message converted for the
/// default account.
fn delivery(body: &Value, event: Option<&str>, version: Option<&str>) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let batch = parse_webhook(&bytes, event, version).unwrap();
    let account = AccountId::new("default");
    let messages: Vec<Value> = batch
        .messages
        .into_iter()
        .map(|record| {
            let converted = convert_record(record, &account).unwrap();
            let pending: Vec<Value> = converted
                .pending
                .iter()
                .map(|p| json!({"index": p.index, "url": p.url, "media_id": p.media_id}))
                .collect();
            json!({"message": converted.into_message(), "pending_media": pending})
        })
        .collect();
    let statuses: Vec<Value> = batch
        .statuses
        .iter()
        .map(|s| {
            json!({"message_id": s.message_id, "status": s.status, "error": s.error, "at": s.at,
                   "phone_number_id": s.phone_number_id})
        })
        .collect();
    json!({"messages": messages, "statuses": statuses, "ignored": batch.ignored})
}

#[test]
fn kapso_v2_text_received() {
    // §6.5 non-batched, verbatim: the event name only in X-Webhook-Event, the sender in conversation.
    let body = json!({"message":{"id":"wamid.123","timestamp":"1730092800","type":"text","text":{"body":"Hello"},
           "kapso":{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"content":"Hello"}},
        "conversation":{"id":"conv_123","phone_number":"+15551234567","status":"active","last_active_at":"2025-10-28T14:25:01Z",
           "created_at":"2025-10-28T13:40:00Z","updated_at":"2025-10-28T14:25:01Z","metadata":{},"phone_number_id":"123456789012345",
           "kapso":{"contact_name":"John Doe","messages_count":1,"last_message_id":"wamid.123","last_message_type":"text",
                    "last_message_timestamp":"2025-10-28T14:25:01Z","last_message_text":"Hello","last_inbound_at":"2025-10-28T14:25:01Z","last_outbound_at":null}},
        "is_new_conversation":true,"phone_number_id":"123456789012345"});
    insta::assert_json_snapshot!(delivery(&body, Some("whatsapp.message.received"), Some("v2")));
}

#[test]
fn kapso_v2_image_and_batched_replies() {
    // §6.5 batched: an image with Kapso's media extras, a location, contacts, a button reply and
    // a list reply; the sender is conversation.phone_number, or only kapso.phone_number (the
    // location), and a BSUID rides along on the contacts.
    let record = |message: Value| {
        let mut record = json!({"message": message, "conversation":{"id":"conv_123","status":"active"},
               "is_new_conversation":false,"phone_number_id":"123456789012345"});
        if record["message"]["kapso"]["phone_number"].is_null() {
            record["conversation"]["phone_number"] = json!("+15551234567");
        }
        record
    };
    let body = json!({"type":"whatsapp.message.received","batch":true,"data":[
        record(json!({"id":"wamid.img","timestamp":"1730092801","type":"image",
            "image":{"id":"MEDIA_ID","mime_type":"image/jpeg","caption":"Receipt"},
            "kapso":{"direction":"inbound","media_url":"https://api.kapso.ai/media/photo.jpg",
                     "media_data":{"url":"https://api.kapso.ai/media/photo.jpg","filename":"photo.jpg","content_type":"image/jpeg","byte_size":48213}}})),
        record(json!({"id":"wamid.loc","timestamp":"1730092802","type":"location",
            "location":{"latitude":37.7749,"longitude":-122.4194,"name":"SF Office","address":"123 Main St"},
            "kapso":{"direction":"inbound","phone_number":"+15557654321"}})),
        record(json!({"id":"wamid.card","timestamp":"1730092803","type":"contacts","from_user_id":"US.13491208655302741918",
            "contacts":[{"name":{"formatted_name":"Jane Doe","first_name":"Jane"},"phones":[{"phone":"+1 555 0100","type":"CELL"}]}],
            "kapso":{"direction":"inbound"}})),
        record(json!({"id":"wamid.btn","timestamp":"1730092804","type":"interactive","context":{"id":"wamid.original"},
            "interactive":{"type":"button_reply","button_reply":{"id":"approve","title":"Approve"}},
            "kapso":{"direction":"inbound"}})),
        record(json!({"id":"wamid.list","timestamp":"1730092805","type":"interactive",
            "interactive":{"type":"list_reply","list_reply":{"id":"express","title":"Express","description":"1-2 days"}},
            "kapso":{"direction":"inbound"}})),
    ]});
    insta::assert_json_snapshot!(delivery(&body, None, Some("v2")));
}

#[test]
fn kapso_v2_failed_status() {
    // §6.5 status event, verbatim: the failure's error from the newest matching status entry.
    let body = json!({"message":{"id":"wamid.789","type":"text","text":{"body":"This message failed"},
           "kapso":{"direction":"outbound","status":"failed","statuses":[
             {"id":"wamid.789","status":"sent","timestamp":"1730093100","recipient_id":"15551234567"},
             {"id":"wamid.789","status":"failed","timestamp":"1730093200","recipient_id":"15551234567",
              "errors":[{"code":131047,"title":"Re-engagement message","message":"More than 24 hours have passed since the recipient last replied"}]}]}},
        "conversation":{"id":"conv_123","phone_number":"+15551234567"},"is_new_conversation":false,"phone_number_id":"123456789012345"});
    insta::assert_json_snapshot!(delivery(&body, Some("whatsapp.message.failed"), Some("v2")));
}

#[test]
fn meta_messages_and_statuses() {
    // §6.6: one change with the profile name, text, image, button and list replies, a reaction and
    // a template's quick-reply button; then a statuses change with an error.
    let body = json!({"object":"whatsapp_business_account","entry":[{"id":"WABA_ID","changes":[
        {"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 631-555-8151","phone_number_id":"16315558151"},
            "contacts":[{"profile":{"name":"Jane Doe"},"wa_id":"15551234567"}],
            "messages":[
                {"from":"15551234567","id":"wamid.text","timestamp":"1735689600","type":"text","text":{"body":"Hello Kapso"}},
                {"from":"15551234567","id":"wamid.image","timestamp":"1735689601","type":"image",
                 "image":{"id":"MEDIA_ID","mime_type":"image/jpeg","caption":"Receipt"}},
                {"from":"15551234567","id":"wamid.button","timestamp":"1735689602","type":"interactive","context":{"id":"wamid.original"},
                 "interactive":{"type":"button_reply","button_reply":{"id":"approve","title":"Approve"}}},
                {"from":"15551234567","id":"wamid.list","timestamp":"1735689603","type":"interactive",
                 "interactive":{"type":"list_reply","list_reply":{"id":"pick","title":"SKU 1"}}},
                {"from":"15551234567","id":"wamid.reaction","timestamp":"1735689604","type":"reaction",
                 "reaction":{"message_id":"wamid.original","emoji":"👍"}},
                {"from":"15551234567","id":"wamid.quick","timestamp":"1735689605","type":"button","context":{"id":"wamid.template"},
                 "button":{"payload":"STOP_PROMOS","text":"Stop promotions"}}]}},
        {"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 631-555-8151","phone_number_id":"16315558151"},
            "statuses":[
                {"id":"wamid.original","status":"delivered","timestamp":"1735689660","recipient_id":"15551234567",
                 "conversation":{"id":"CONV","origin":{"type":"service"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"service"}},
                {"id":"wamid.late","status":"failed","timestamp":"1735689670","recipient_id":"15551234567",
                 "errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message",
                            "error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]}]}},
        {"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]});
    insta::assert_json_snapshot!(delivery(&body, None, None));
}

// ---- domain → request -----------------------------------------------------------------------

fn connector(fake: &FakeKapso) -> WhatsAppConnector {
    let vars: HashMap<&str, String> = [
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", fake.base.clone()),
        ("KAPSO_MEDIA_HOSTS", "127.0.0.1".to_owned()),
        ("KAPSO_ALLOW_FROM", "*".to_owned()),
        // A limiter of their own: the process-wide one of the test key is the other tests' budget.
        ("KAPSO_API_RATE_LIMIT", "100000".to_owned()),
    ]
    .into_iter()
    .collect();
    WhatsAppConnector::new(WhatsAppConfig::load(None, &|k| vars.get(k).cloned()).unwrap().unwrap()).unwrap()
}

/// The send bodies Kapso receives for each of `messages`, in order.
async fn sent_bodies(messages: &[OutboundMessage]) -> Vec<Value> {
    let fake = FakeKapso::start().await;
    let connector = connector(&fake);
    let account = connector.accounts()[0].clone();
    for msg in messages {
        account.send(msg, &IdempotencyKey::new("out-1")).await.unwrap();
    }
    fake.requests_to("POST", "/messages").iter().map(|r| r.json()).collect()
}

fn to(peer: &str) -> InboundMessage {
    InboundMessage::text("whatsapp", "default", peer, "wamid.in1", "hi")
}

fn with_spec(peer: &str, spec: &OutboundSpec) -> OutboundMessage {
    let mut msg = OutboundMessage::reply_text(&to(peer), "");
    msg.text = None;
    msg.extra = spec.to_extra();
    msg
}

#[tokio::test]
async fn text_replies_quote_and_preview_links() {
    let plain = OutboundMessage::reply_text(&to("15551234567"), "Thanks for your message!");
    let mut link = OutboundMessage::reply_text(&to("15551234567"), "Track it at https://example.com/track/123");
    link.reply_to = None;
    // A user known only by a business-scoped id is addressed with `recipient`.
    let bsuid = OutboundMessage::reply_text(&to("US.13491208655302741918"), "Hello!");
    insta::assert_json_snapshot!(sent_bodies(&[plain, link, bsuid]).await);
}

#[tokio::test]
async fn media_by_link_and_id_with_captions_where_allowed() {
    let media = |kind, url: Option<&str>, id: Option<&str>, caption: Option<&str>, name: Option<&str>| {
        let mut msg = OutboundMessage::reply_text(&to("15551234567"), "");
        msg.text = None;
        msg.media.push(MediaRef {
            kind,
            url: url.map(str::to_owned),
            platform_id: id.map(str::to_owned),
            caption: caption.map(str::to_owned),
            file_name: name.map(str::to_owned),
            ..MediaRef::default()
        });
        msg
    };
    let mut with_text = media(MediaKind::Image, Some("https://example.com/photo.jpg"), None, Some("Photo"), None);
    with_text.text = Some("The chart, as asked.".to_owned());
    let messages = [
        with_text,
        media(MediaKind::Document, Some("https://example.com/file.pdf"), None, Some("Report"), Some("report.pdf")),
        media(MediaKind::Audio, None, Some("MEDIA_AUDIO"), Some("no captions on audio"), Some("voice.ogg")),
        media(MediaKind::Sticker, None, Some("MEDIA_STICKER"), None, None),
    ];
    insta::assert_json_snapshot!(sent_bodies(&messages).await);
}

#[tokio::test]
async fn templates_reactions_and_other_types_from_the_spec() {
    let named = OutboundSpec::Template {
        name: "order_confirmation".into(),
        language: "en_US".into(),
        params: vec![("customer_name".into(), "Jessica".into())],
    };
    let positional = OutboundSpec::Template {
        name: "reengage".into(),
        language: "ko".into(),
        params: vec![(String::new(), "Ann".into())],
    };
    let reaction = OutboundSpec::Reaction { message_id: None, emoji: "👍".into() };
    let unreact = OutboundSpec::Reaction { message_id: Some("wamid.other".into()), emoji: String::new() };
    let buttons = OutboundSpec::Message {
        kind: "interactive".into(),
        object: json!({"type":"button","body":{"text":"Choose an option"},
            "action":{"buttons":[{"type":"reply","reply":{"id":"yes","title":"Yes"}},{"type":"reply","reply":{"id":"no","title":"No"}}]}}),
    };
    let location = OutboundSpec::Message {
        kind: "location".into(),
        object: json!({"latitude":37.7749,"longitude":-122.4194,"name":"SF Office","address":"123 Main St"}),
    };
    let messages: Vec<OutboundMessage> =
        [named, positional, reaction, unreact, buttons, location].iter().map(|s| with_spec("15551234567", s)).collect();
    insta::assert_json_snapshot!(sent_bodies(&messages).await);
}
