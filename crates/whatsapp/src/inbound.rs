//! Kapso/Meta payloads → [`InboundMessage`]s and delivery statuses (pure, no I/O).
//!
//! Three webhook body shapes (reference §6.5, §6.6): Kapso v2 non-batched (the bare record,
//! event name only in `X-Webhook-Event`), Kapso batched (`{"type","batch":true,"data":[…]}`)
//! and Meta (`object`/`entry[].changes[].value`). Poll results are message objects with the
//! same `kapso` extras. Every message kind becomes a message; unknown kinds become
//! [`MessageKind::Other`] with a description — nothing is dropped silently.

use crate::client::is_bsuid;
use crate::timefmt::parse_time;
use clawbridge_core::{AccountId, EpochMs, InboundMessage, MediaKind, MediaRef, MessageKind};
use serde_json::{Value, json};

/// The channel id.
pub const CHANNEL: &str = "whatsapp";

/// One inbound message record before conversion: the message object and what surrounds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InboundRecord {
    /// The `message` object (Meta shape plus Kapso's `kapso` extras).
    pub message: Value,
    /// The receiving phone number id, when the payload names it.
    pub phone_number_id: Option<String>,
    /// `conversation.phone_number` (Kapso), the fallback sender.
    pub conversation_phone: Option<String>,
    /// The sender's profile name (Meta `contacts[].profile.name`, Kapso `contact_name`).
    pub contact_name: Option<String>,
    /// The sender's business-scoped user id (Meta `contacts[].user_id`), if not on the message.
    pub contact_user_id: Option<String>,
    /// Kapso's conversation id.
    pub conversation_id: Option<String>,
}

/// A delivery status of a message the bridge sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The `wamid` of the sent message.
    pub message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// For `failed`: `<code> <title>: <details>`.
    pub error: Option<String>,
    /// When it happened.
    pub at: Option<EpochMs>,
    /// The phone number id that sent it, when given.
    pub phone_number_id: Option<String>,
}

/// What one webhook delivery contained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookBatch {
    /// Messages from users.
    pub messages: Vec<InboundRecord>,
    /// Delivery statuses.
    pub statuses: Vec<StatusUpdate>,
    /// Events this bridge does not act on (by name), acknowledged and counted.
    pub ignored: Vec<String>,
}

/// Why a webhook body cannot be used (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A v1 (legacy) Kapso payload.
    #[error("Kapso payload version v1 is not supported: set the webhook's payload version to v2 in Kapso")]
    LegacyV1,
    /// Not one of the known shapes, or a required field is missing.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Splits a parsed webhook body into messages, statuses and ignored events.
///
/// # Errors
/// [`PayloadError`] for v1 payloads and bodies that fit no shape.
pub fn parse_webhook(
    body: &Value,
    event_header: Option<&str>,
    version: Option<&str>,
) -> Result<WebhookBatch, PayloadError> {
    if version.is_some_and(|v| v.eq_ignore_ascii_case("v1")) {
        return Err(PayloadError::LegacyV1);
    }
    let Some(object) = body.as_object() else {
        return Err(PayloadError::Malformed("the body is not a JSON object".to_owned()));
    };
    let mut batch = WebhookBatch::default();
    if object.contains_key("object") || object.contains_key("entry") {
        parse_meta(body, &mut batch)?;
        return Ok(batch);
    }
    let event = object.get("type").and_then(Value::as_str).or(event_header).map(str::to_owned);
    let records: Vec<&Value> = if object.get("batch").and_then(Value::as_bool) == Some(true) {
        match object.get("data") {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => return Err(PayloadError::Malformed("batched delivery without a data array".to_owned())),
        }
    } else if object.contains_key("data") && object.contains_key("type") {
        // Batched deliveries without the flag.
        match object.get("data") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => return Err(PayloadError::Malformed("data is neither a list nor an object".to_owned())),
        }
    } else {
        vec![body]
    };
    for record in records {
        parse_kapso_record(record, event.as_deref(), &mut batch)?;
    }
    Ok(batch)
}

fn parse_kapso_record(record: &Value, event: Option<&str>, batch: &mut WebhookBatch) -> Result<(), PayloadError> {
    let Some(message) = record.get("message").filter(|m| m.is_object()) else {
        // Conversation and project events have no message.
        batch.ignored.push(event.unwrap_or("unknown").to_owned());
        return Ok(());
    };
    let kapso = message.get("kapso");
    let direction = kapso.and_then(|k| k.get("direction")).and_then(Value::as_str);
    let status_event = event.and_then(|e| e.strip_prefix("whatsapp.message.")).filter(|s| *s != "received");
    let phone_number_id = str_at(record, "/phone_number_id")
        .or_else(|| str_at(record, "/conversation/phone_number_id"))
        .or_else(|| str_at(message, "/kapso/phone_number_id"));
    let is_received = match event {
        Some("whatsapp.message.received") => true,
        Some(e) if e.starts_with("whatsapp.message.") => false,
        Some(other) => {
            batch.ignored.push(other.to_owned());
            return Ok(());
        }
        None => direction != Some("outbound"),
    };
    if is_received && is_history_import(message) {
        batch.ignored.push("history_sync".to_owned());
        return Ok(());
    }
    if is_received {
        batch.messages.push(InboundRecord {
            message: message.clone(),
            phone_number_id,
            conversation_phone: str_at(record, "/conversation/phone_number"),
            contact_name: str_at(record, "/conversation/kapso/contact_name")
                .or_else(|| str_at(message, "/kapso/contact_name")),
            contact_user_id: None,
            conversation_id: str_at(record, "/conversation/id"),
        });
        return Ok(());
    }
    let Some(id) = str_at(message, "/id") else {
        return Err(PayloadError::Malformed("status event without message.id".to_owned()));
    };
    let status = status_event
        .map(str::to_owned)
        .or_else(|| kapso.and_then(|k| k.get("status")).and_then(Value::as_str).map(str::to_owned));
    let Some(status) = status else {
        batch.ignored.push(event.unwrap_or("outbound message").to_owned());
        return Ok(());
    };
    // The newest entry of Kapso's status history carries the error of a failure.
    let history = kapso.and_then(|k| k.get("statuses")).and_then(Value::as_array);
    let latest =
        history.and_then(|h| h.iter().rev().find(|s| s.get("status").and_then(Value::as_str) == Some(&status)));
    let error = latest.and_then(|s| s.get("errors")).and_then(describe_errors);
    let at = latest.and_then(|s| str_at(s, "/timestamp")).and_then(|t| parse_time(&t));
    batch.statuses.push(StatusUpdate { message_id: id, status, error, at, phone_number_id });
    Ok(())
}

fn parse_meta(body: &Value, batch: &mut WebhookBatch) -> Result<(), PayloadError> {
    let Some(entries) = body.get("entry").and_then(Value::as_array) else {
        return Err(PayloadError::Malformed("Meta payload without an entry array".to_owned()));
    };
    for entry in entries {
        for change in entry.get("changes").and_then(Value::as_array).into_iter().flatten() {
            let field = change.get("field").and_then(Value::as_str).unwrap_or("");
            let Some(value) = change.get("value") else { continue };
            if field != "messages" {
                batch.ignored.push(format!("meta.{field}"));
                continue;
            }
            let phone_number_id = str_at(value, "/metadata/phone_number_id");
            let contacts = value.get("contacts").and_then(Value::as_array);
            for message in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
                let from = str_at(message, "/from");
                let contact = contacts.and_then(|cs| {
                    cs.iter().find(|c| from.is_some() && str_at(c, "/wa_id") == from).or_else(|| cs.first())
                });
                batch.messages.push(InboundRecord {
                    message: message.clone(),
                    phone_number_id: phone_number_id.clone(),
                    conversation_phone: None,
                    contact_name: contact.and_then(|c| str_at(c, "/profile/name")),
                    contact_user_id: contact.and_then(|c| str_at(c, "/user_id")),
                    conversation_id: None,
                });
            }
            for status in value.get("statuses").and_then(Value::as_array).into_iter().flatten() {
                let (Some(id), Some(name)) = (str_at(status, "/id"), str_at(status, "/status")) else {
                    return Err(PayloadError::Malformed("status without id or status".to_owned()));
                };
                batch.statuses.push(StatusUpdate {
                    message_id: id,
                    status: name,
                    error: status.get("errors").and_then(describe_errors),
                    at: str_at(status, "/timestamp").and_then(|t| parse_time(&t)),
                    phone_number_id: phone_number_id.clone(),
                });
            }
            if value.get("message_echoes").is_some() {
                batch.ignored.push("meta.message_echoes".to_owned());
            }
        }
    }
    Ok(())
}

/// Messages Kapso imported from the phone's history (coexistence onboarding) are old
/// conversation, not new questions: answering them would message people about months-old chats.
pub fn is_history_import(message: &Value) -> bool {
    message.pointer("/kapso/origin").and_then(Value::as_str) == Some("history_sync")
}

/// `131047 Re-engagement message: More than 24 hours…` from Meta's `errors` array.
fn describe_errors(errors: &Value) -> Option<String> {
    let first = errors.as_array()?.first()?;
    let code = first.get("code").map(|c| c.to_string()).unwrap_or_default();
    let title = str_at(first, "/title").or_else(|| str_at(first, "/message")).unwrap_or_default();
    let details = str_at(first, "/error_data/details").or_else(|| str_at(first, "/message")).unwrap_or_default();
    let mut text = format!("{code} {title}").trim().to_owned();
    if !details.is_empty() && details != title {
        text.push_str(": ");
        text.push_str(&details);
    }
    Some(text)
}

/// Media of a converted message that should be downloaded now (its links expire in minutes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingMedia {
    /// Index into `InboundMessage::media`.
    pub index: usize,
    /// A direct URL (Kapso's `media_url` or `media_data.url`), when given.
    pub url: Option<String>,
    /// The media id, to ask Kapso for a URL when there is none.
    pub media_id: Option<String>,
}

/// An inbound message and the media still to fetch.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The message for the inbox.
    pub message: InboundMessage,
    /// Media to download before it is stored.
    pub pending: Vec<PendingMedia>,
}

/// Converts a record into an [`InboundMessage`] for `account`.
///
/// # Errors
/// [`PayloadError::Malformed`] when the message has no id or no sender at all.
pub fn convert(record: &InboundRecord, account: &AccountId) -> Result<Converted, PayloadError> {
    let m = &record.message;
    let id = str_at(m, "/id").ok_or_else(|| PayloadError::Malformed("message without id".to_owned()))?;
    let user_id = str_at(m, "/from_user_id").or_else(|| record.contact_user_id.clone()).filter(|u| is_bsuid(u));
    let phone = str_at(m, "/from")
        .or_else(|| record.conversation_phone.clone())
        .or_else(|| str_at(m, "/kapso/phone_number"))
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|p| !p.is_empty());
    let peer = phone.clone().or_else(|| user_id.clone()).ok_or_else(|| {
        PayloadError::Malformed(format!("message {id} has no sender (from, conversation.phone_number, from_user_id)"))
    })?;
    let kind_name = str_at(m, "/type").unwrap_or_else(|| "unknown".to_owned());

    let mut msg = InboundMessage::text(CHANNEL, account.clone(), peer, id, "");
    msg.sent_at = str_at(m, "/timestamp").and_then(|t| parse_time(&t));
    msg.sender_name =
        record.contact_name.clone().or_else(|| str_at(m, "/kapso/contact_name")).filter(|n| !n.trim().is_empty());
    msg.reply_to = str_at(m, "/context/id").map(Into::into);
    let mut pending = Vec::new();

    let body = m.get(kind_name.as_str()).cloned().unwrap_or(Value::Null);
    let (kind, text) = match kind_name.as_str() {
        "text" => (MessageKind::Text, str_at(&body, "/body").unwrap_or_default()),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let media_kind = match kind_name.as_str() {
                "image" => MediaKind::Image,
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio,
                "document" => MediaKind::Document,
                _ => MediaKind::Sticker,
            };
            let data = m.pointer("/kapso/media_data");
            let caption = str_at(&body, "/caption").or_else(|| str_at(m, "/kapso/message_type_data/caption"));
            let media = MediaRef {
                kind: media_kind,
                url: None,
                platform_id: str_at(&body, "/id"),
                mime_type: str_at(&body, "/mime_type").or_else(|| data.and_then(|d| str_at(d, "/content_type"))),
                file_name: str_at(&body, "/filename").or_else(|| data.and_then(|d| str_at(d, "/filename"))),
                size_bytes: data.and_then(|d| d.get("byte_size")).and_then(Value::as_u64),
                caption: caption.clone(),
                data_base64: None,
            };
            let url = str_at(m, "/kapso/media_url")
                .or_else(|| data.and_then(|d| str_at(d, "/url")))
                .or_else(|| str_at(&body, "/link"));
            pending.push(PendingMedia { index: 0, url, media_id: media.platform_id.clone() });
            msg.media.push(media);
            // Kapso's server-side transcription; older payloads only have it inside `kapso.content`.
            let transcript = str_at(m, "/kapso/transcript/text")
                .or_else(|| {
                    let content = str_at(m, "/kapso/content")?;
                    let (_, after) = content.split_once("Transcript:")?;
                    Some(after.trim().to_owned())
                })
                .filter(|t| !t.trim().is_empty());
            let is_voice = body.get("voice").and_then(Value::as_bool) == Some(true)
                || (media_kind == MediaKind::Audio && transcript.is_some());
            if media_kind == MediaKind::Audio && is_voice {
                let text = match transcript {
                    Some(t) => format!("[voice message, transcript] {t}"),
                    None => String::new(),
                };
                (MessageKind::Voice, text)
            } else {
                let kind = match media_kind {
                    MediaKind::Image => MessageKind::Image,
                    MediaKind::Video => MessageKind::Video,
                    MediaKind::Audio => MessageKind::Audio,
                    MediaKind::Document => MessageKind::Document,
                    MediaKind::Sticker => MessageKind::Sticker,
                };
                // The caption is in MediaRef and described by the pipeline; the text stays the user's words.
                (kind, caption.unwrap_or_default())
            }
        }
        "location" => (MessageKind::Location, describe_location(&body)),
        "contacts" => (MessageKind::Contacts, describe_contacts(m.get("contacts").unwrap_or(&body))),
        "interactive" => {
            let reply_type = str_at(&body, "/type").unwrap_or_default();
            let reply = body.get(reply_type.as_str()).cloned().unwrap_or(Value::Null);
            let title = str_at(&reply, "/title").unwrap_or_default();
            let text = match reply_type.as_str() {
                "button_reply" => format!("[tapped button] {title}"),
                "list_reply" => match str_at(&reply, "/description") {
                    Some(d) => format!("[chose from list] {title} ({d})"),
                    None => format!("[chose from list] {title}"),
                },
                "nfm_reply" => format!(
                    "[submitted form] {}",
                    str_at(&reply, "/response_json").or_else(|| str_at(&reply, "/body")).unwrap_or_default()
                ),
                other => format!("[interactive reply: {other}] {title}"),
            };
            msg.extra =
                json!({"interactive": {"type": reply_type, "id": str_at(&reply, "/id"), "title": title}}).into();
            (MessageKind::Interactive, text)
        }
        "button" => {
            let text = str_at(&body, "/text").unwrap_or_default();
            msg.extra =
                json!({"interactive": {"type": "button", "payload": str_at(&body, "/payload"), "title": text}}).into();
            (MessageKind::Interactive, format!("[tapped button] {text}"))
        }
        "reaction" => {
            if let Some(target) = str_at(&body, "/message_id") {
                msg.reply_to = Some(target.into());
            }
            match str_at(&body, "/emoji").filter(|e| !e.is_empty()) {
                Some(emoji) => (MessageKind::Reaction, format!("[reacted {emoji} to an earlier message]")),
                None => (MessageKind::Reaction, "[removed a reaction from an earlier message]".to_owned()),
            }
        }
        "order" => (MessageKind::Other("order".to_owned()), describe_order(&body)),
        other => {
            let detail = str_at(m, "/kapso/content")
                .or_else(|| m.pointer("/errors/0").and_then(|e| str_at(e, "/title").or_else(|| str_at(e, "/message"))))
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            (
                MessageKind::Other(other.to_owned()),
                format!("[the user sent a WhatsApp {other} message this bridge cannot show{detail}]"),
            )
        }
    };
    msg.kind = kind;
    msg.text = text;

    let mut extra = match std::mem::take(&mut msg.extra).to_value() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            extra.insert(key.to_owned(), json!(value));
        }
    };
    put("phone_number_id", record.phone_number_id.clone());
    put("from_user_id", user_id);
    put("phone", phone);
    put("conversation_id", record.conversation_id.clone());
    put("origin", str_at(m, "/kapso/origin"));
    if let Some(referral) = m.get("referral") {
        extra.insert("referral".to_owned(), referral.clone());
        if let Some(headline) = str_at(referral, "/headline") {
            msg.text = format!("{}\n[came from the ad {headline:?}]", msg.text).trim().to_owned();
        }
    }
    msg.extra = Value::Object(extra).into();
    Ok(Converted { message: msg, pending })
}

fn describe_location(body: &Value) -> String {
    let lat = body.get("latitude").and_then(Value::as_f64);
    let lon = body.get("longitude").and_then(Value::as_f64);
    let mut parts = vec!["[shared a location]".to_owned()];
    parts.extend(str_at(body, "/name"));
    parts.extend(str_at(body, "/address"));
    if let (Some(lat), Some(lon)) = (lat, lon) {
        parts.push(format!("({lat:.6}, {lon:.6})"));
    }
    parts.extend(str_at(body, "/url"));
    parts.join(" ")
}

fn describe_contacts(contacts: &Value) -> String {
    let cards: Vec<String> = contacts
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = str_at(c, "/name/formatted_name")
                .or_else(|| str_at(c, "/name/first_name"))
                .unwrap_or_else(|| "(no name)".to_owned());
            let mut details: Vec<String> = Vec::new();
            for phone in c.get("phones").and_then(Value::as_array).into_iter().flatten() {
                details.extend(str_at(phone, "/phone").or_else(|| str_at(phone, "/wa_id")));
            }
            for email in c.get("emails").and_then(Value::as_array).into_iter().flatten() {
                details.extend(str_at(email, "/email"));
            }
            details.extend(str_at(c, "/org/company"));
            if details.is_empty() { name } else { format!("{name}: {}", details.join(", ")) }
        })
        .collect();
    format!("[shared contact card{}] {}", if cards.len() == 1 { "" } else { "s" }, cards.join("; "))
}

fn describe_order(body: &Value) -> String {
    let items: Vec<String> = body
        .get("product_items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| {
            format!(
                "{} × {} ({} {})",
                item.get("quantity").map(|q| q.to_string()).unwrap_or_default(),
                str_at(item, "/product_retailer_id").unwrap_or_default(),
                item.get("item_price").map(|p| p.to_string()).unwrap_or_default(),
                str_at(item, "/currency").unwrap_or_default(),
            )
        })
        .collect();
    let note = str_at(body, "/text").map(|t| format!(" — note: {t}")).unwrap_or_default();
    format!("[placed an order] {}{note}", items.join(", "))
}

/// A string (or number, as text) at a JSON pointer.
fn str_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::default_account()
    }

    const NON_BATCHED: &str = r#"{"message":{"id":"wamid.123","timestamp":"1730092800","type":"text","text":{"body":"Hello"},
       "kapso":{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"content":"Hello"}},
     "conversation":{"id":"conv_123","phone_number":"+15551234567","status":"active","phone_number_id":"123456789012345",
       "kapso":{"contact_name":"John Doe","messages_count":1}},
     "is_new_conversation":true,"phone_number_id":"123456789012345"}"#;

    #[test]
    fn non_batched_kapso_record_takes_the_sender_from_the_conversation() {
        let body: Value = serde_json::from_str(NON_BATCHED).unwrap();
        let batch = parse_webhook(&body, Some("whatsapp.message.received"), Some("v2")).unwrap();
        assert_eq!(batch.messages.len(), 1);
        let converted = convert(&batch.messages[0], &account()).unwrap();
        let msg = converted.message;
        assert_eq!(msg.peer.as_str(), "15551234567");
        assert_eq!(msg.message_id.as_str(), "wamid.123");
        assert_eq!(msg.text, "Hello");
        assert_eq!(msg.kind, MessageKind::Text);
        assert_eq!(msg.sender_name.as_deref(), Some("John Doe"));
        assert_eq!(msg.sent_at, Some(1_730_092_800_000));
        assert_eq!(msg.extra.to_value()["phone_number_id"], "123456789012345");
        assert_eq!(msg.extra.to_value()["conversation_id"], "conv_123");
        // Without the header, an inbound direction still means "received".
        assert_eq!(parse_webhook(&body, None, None).unwrap().messages.len(), 1);
    }

    #[test]
    fn batched_records_use_the_kapso_phone_number_fallback() {
        let body = json!({"type":"whatsapp.message.received","batch":true,"data":[
            {"message":{"id":"wamid.111","timestamp":"1730092801","type":"text","text":{"body":"First"},
              "kapso":{"direction":"inbound","phone_number":"+15551234567","phone_number_id":"123"}},
             "phone_number_id":"123"},
            {"message":{"id":"wamid.112","type":"text","text":{"body":"Second"},"from_user_id":"US.13491208655302741918"},
             "phone_number_id":"123"}]});
        let batch = parse_webhook(&body, None, None).unwrap();
        let first = convert(&batch.messages[0], &account()).unwrap().message;
        assert_eq!(first.peer.as_str(), "15551234567");
        let second = convert(&batch.messages[1], &account()).unwrap().message;
        assert_eq!(second.peer.as_str(), "US.13491208655302741918");
        assert_eq!(second.extra.to_value()["from_user_id"], "US.13491208655302741918");
    }

    #[test]
    fn meta_shape_with_contacts_and_statuses() {
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 631-555-8151","phone_number_id":"16315558151"},
            "contacts":[{"profile":{"name":"Jane Doe"},"wa_id":"15551234567","user_id":"US.1234"}],
            "messages":[{"from":"15551234567","id":"wamid.text","timestamp":"1735689600","type":"text","text":{"body":"Hello Kapso"}}],
            "statuses":[{"id":"wamid.out","status":"failed","timestamp":"1735689660","recipient_id":"15551234567",
                         "errors":[{"code":131047,"title":"Re-engagement message","error_data":{"details":"More than 24 hours"}}]}]}}]}]});
        let batch = parse_webhook(&body, None, None).unwrap();
        let msg = convert(&batch.messages[0], &account()).unwrap().message;
        assert_eq!(msg.sender_name.as_deref(), Some("Jane Doe"));
        assert_eq!(msg.extra.to_value()["from_user_id"], "US.1234");
        assert_eq!(msg.extra.to_value()["phone_number_id"], "16315558151");
        assert_eq!(batch.statuses.len(), 1);
        let status = &batch.statuses[0];
        assert_eq!(status.status, "failed");
        assert_eq!(status.error.as_deref(), Some("131047 Re-engagement message: More than 24 hours"));
        assert_eq!(status.at, Some(1_735_689_660_000));
    }

    #[test]
    fn kapso_failed_status_carries_the_error_code() {
        let body = json!({"message":{"id":"wamid.789","type":"text","text":{"body":"This message failed"},
            "kapso":{"direction":"outbound","status":"failed","statuses":[
              {"id":"wamid.789","status":"sent","timestamp":"1730093100","recipient_id":"15551234567"},
              {"id":"wamid.789","status":"failed","timestamp":"1730093200","recipient_id":"15551234567",
               "errors":[{"code":131047,"title":"Re-engagement message","message":"More than 24 hours have passed since the recipient last replied"}]}]}},
          "conversation":{"id":"conv_123","phone_number":"+15551234567"},"is_new_conversation":false,"phone_number_id":"123456789012345"});
        let batch = parse_webhook(&body, Some("whatsapp.message.failed"), None).unwrap();
        assert!(batch.messages.is_empty());
        assert_eq!(batch.statuses[0].status, "failed");
        let error = batch.statuses[0].error.as_deref().unwrap();
        assert!(error.starts_with("131047 Re-engagement message: More than 24 hours"), "{error}");
        assert_eq!(batch.statuses[0].at, Some(1_730_093_200_000));
        let delivered = parse_webhook(&body, Some("whatsapp.message.delivered"), None).unwrap();
        assert_eq!(delivered.statuses[0].status, "delivered");
    }

    #[test]
    fn unknown_events_legacy_and_garbage() {
        let conv = json!({"conversation":{"id":"c"},"phone_number_id":"1"});
        assert_eq!(
            parse_webhook(&conv, Some("whatsapp.conversation.created"), None).unwrap().ignored,
            ["whatsapp.conversation.created"]
        );
        let imported = json!({"message":{"id":"h","type":"text","text":{"body":"old"},"from":"1",
            "kapso":{"direction":"inbound","origin":"history_sync"}}});
        let batch = parse_webhook(&imported, Some("whatsapp.message.received"), None).unwrap();
        assert!(batch.messages.is_empty());
        assert_eq!(batch.ignored, ["history_sync"]);
        let other = json!({"message":{"id":"x"}});
        assert_eq!(
            parse_webhook(&other, Some("workflow.execution.failed"), None).unwrap().ignored,
            ["workflow.execution.failed"]
        );
        assert_eq!(parse_webhook(&conv, None, Some("v1")), Err(PayloadError::LegacyV1));
        assert!(matches!(parse_webhook(&json!([1]), None, None), Err(PayloadError::Malformed(_))));
        assert!(matches!(parse_webhook(&json!({"object":"x"}), None, None), Err(PayloadError::Malformed(_))));
    }

    fn one(message: Value) -> InboundMessage {
        let record =
            InboundRecord { message, conversation_phone: Some("+15551234567".into()), ..InboundRecord::default() };
        convert(&record, &account()).unwrap().message
    }

    #[test]
    fn every_kind_becomes_a_message() {
        let image = convert(
            &InboundRecord {
                message: json!({"id":"w1","from":"1555","type":"image","image":{"id":"MEDIA","mime_type":"image/jpeg","caption":"Receipt"},
                  "kapso":{"media_url":"https://api.kapso.ai/media/x","media_data":{"byte_size":1234,"filename":"r.jpg"}}}),
                ..InboundRecord::default()
            },
            &account(),
        )
        .unwrap();
        assert_eq!(image.message.kind, MessageKind::Image);
        assert_eq!(image.message.media[0].caption.as_deref(), Some("Receipt"));
        assert_eq!(image.message.media[0].size_bytes, Some(1234));
        assert_eq!(image.pending[0].url.as_deref(), Some("https://api.kapso.ai/media/x"));
        assert_eq!(image.pending[0].media_id.as_deref(), Some("MEDIA"));

        let voice = one(json!({"id":"w2","type":"audio","audio":{"id":"A","mime_type":"audio/ogg","voice":true},
            "kapso":{"transcript":{"text":"call me back"}}}));
        assert_eq!(voice.kind, MessageKind::Voice);
        assert!(voice.text.contains("call me back"));
        let from_content = one(json!({"id":"w2b","type":"audio","audio":{"id":"A","mime_type":"audio/ogg"},
            "kapso":{"content":"[Audio attached] (voice.ogg) [Size: 50 KB | Type: audio/ogg] URL: https://x\nTranscript: see you at five"}}));
        assert_eq!(from_content.kind, MessageKind::Voice);
        assert_eq!(from_content.text, "[voice message, transcript] see you at five");

        let location = one(
            json!({"id":"w3","type":"location","location":{"latitude":37.7749,"longitude":-122.4194,"name":"SF Office","address":"123 Main St"}}),
        );
        assert_eq!(location.text, "[shared a location] SF Office 123 Main St (37.774900, -122.419400)");

        let contacts = one(
            json!({"id":"w4","type":"contacts","contacts":[{"name":{"formatted_name":"Ann"},"phones":[{"phone":"+1 555 0100"}]}]}),
        );
        assert_eq!(contacts.kind, MessageKind::Contacts);
        assert_eq!(contacts.text, "[shared contact card] Ann: +1 555 0100");

        let button = one(json!({"id":"w5","type":"interactive","context":{"id":"wamid.original"},
            "interactive":{"type":"button_reply","button_reply":{"id":"approve","title":"Approve"}}}));
        assert_eq!(button.kind, MessageKind::Interactive);
        assert_eq!(button.text, "[tapped button] Approve");
        assert_eq!(button.reply_to.as_ref().map(|r| r.as_str()), Some("wamid.original"));
        assert_eq!(button.extra.to_value()["interactive"]["id"], "approve");

        let list = one(
            json!({"id":"w6","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"pick","title":"SKU 1"}}}),
        );
        assert_eq!(list.text, "[chose from list] SKU 1");

        let reaction =
            one(json!({"id":"w7","type":"reaction","reaction":{"message_id":"wamid.original","emoji":"👍"}}));
        assert_eq!(reaction.kind, MessageKind::Reaction);
        assert!(reaction.text.contains("👍"));
        assert_eq!(reaction.reply_to.as_ref().map(|r| r.as_str()), Some("wamid.original"));

        let sticker = one(json!({"id":"w8","type":"sticker","sticker":{"id":"S","mime_type":"image/webp"}}));
        assert_eq!(sticker.kind, MessageKind::Sticker);
        assert_eq!(sticker.media[0].kind, MediaKind::Sticker);

        let unknown =
            one(json!({"id":"w9","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown"}]}));
        assert_eq!(unknown.kind, MessageKind::Other("unsupported".into()));
        assert!(unknown.text.contains("Message type unknown"), "{}", unknown.text);

        let order = one(
            json!({"id":"w10","type":"order","order":{"product_items":[{"product_retailer_id":"SKU","quantity":2,"item_price":9.5,"currency":"USD"}]}}),
        );
        assert_eq!(order.kind, MessageKind::Other("order".into()));
        assert!(order.text.contains("SKU"));

        let reply = one(json!({"id":"w11","type":"text","text":{"body":"yes"},"context":{"from":"1","id":"wamid.q"}}));
        assert_eq!(reply.reply_to.as_ref().map(|r| r.as_str()), Some("wamid.q"));
    }

    #[test]
    fn a_message_without_any_sender_is_malformed() {
        let record =
            InboundRecord { message: json!({"id":"w","type":"text","text":{"body":"x"}}), ..InboundRecord::default() };
        assert!(matches!(convert(&record, &account()), Err(PayloadError::Malformed(_))));
    }
}
