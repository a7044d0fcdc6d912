//! Kapso/Meta payloads → [`InboundMessage`]s and delivery statuses (pure, no I/O).
//!
//! Three webhook body shapes (reference §6.5, §6.6): Kapso v2 non-batched (the bare record,
//! event name only in `X-Webhook-Event`), Kapso batched (`{"type","batch":true,"data":[…]}`)
//! and Meta (`object`/`entry[].changes[].value`). Poll results are message objects with the
//! same `kapso` extras. Every message kind becomes a message; unknown kinds become
//! [`MessageKind::Other`] with a description — nothing is dropped silently.
//!
//! A webhook body is parsed once, straight into the typed records below (strings borrowed from
//! the body where they have no escapes); the fields are read leniently ([`lax`]), so a field of
//! an unexpected type counts as absent, as it did when the body was looked up as a JSON tree.
//! What the channel keeps with a message is [`InboundData`], encoded once into `extra`.

pub(crate) mod lax;

use crate::client::is_bsuid;
use crate::timefmt::parse_time;
use clawbridge_core::{AccountId, ChannelData, EpochMs, InboundMessage, MediaKind, MediaRef, MessageKind};
use lax::{Count, Flag, Float, Json, Lax, List, Obj, OneOrMany, Str, Text, present};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The channel id.
pub const CHANNEL: &str = "whatsapp";
/// Kapso's `origin` of messages imported from the phone's history.
const HISTORY_SYNC: &str = "history_sync";

/// What the WhatsApp channel keeps with an inbound message (its `extra`): read again when the
/// agent is told who is writing, and by operators looking at the inbox. The field names are
/// those of the stored rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InboundData<'a> {
    /// Kapso's conversation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Cow<'a, str>>,
    /// The sender's business-scoped user id (`US.…`), when the payload has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<Cow<'a, str>>,
    /// What a button or list reply chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<InteractiveChoice<'a>>,
    /// Why media could not be downloaded (the message is kept, described).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_errors: Vec<String>,
    /// Kapso's `origin` (`cloud_api`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Cow<'a, str>>,
    /// The sender's number, digits only, when WhatsApp shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Cow<'a, str>>,
    /// The receiving phone number id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<Cow<'a, str>>,
    /// The ad the user came from (Meta's `referral`), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Cow<'a, RawValue>>,
}

/// A button or list reply: `type` is `button_reply`, `list_reply`, `nfm_reply`… or `button`
/// (a template's quick reply, which has a `payload` instead of an `id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractiveChoice<'a> {
    /// The reply's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// A quick-reply button's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Cow<'a, str>>,
    /// What the user saw and tapped.
    #[serde(default)]
    pub title: Cow<'a, str>,
    /// The reply type.
    #[serde(rename = "type", default)]
    pub kind: Cow<'a, str>,
}

impl InboundData<'static> {
    /// The data of a stored message; `None` when it has none or it is not this channel's shape.
    pub fn of(msg: &InboundMessage) -> Option<Self> {
        msg.extra.decode().ok().flatten()
    }
}

/// One inbound message record of a polled listing, before conversion: the message object as
/// the listing returned it, and the receiving number.
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

/// One inbound message of a webhook delivery: the message and what surrounds it, borrowed from
/// the body.
#[derive(Clone, Debug, Default)]
pub struct MessageRecord<'a> {
    message: Message<'a>,
    phone_number_id: Option<Cow<'a, str>>,
    conversation_phone: Option<Cow<'a, str>>,
    contact_name: Option<Cow<'a, str>>,
    contact_user_id: Option<Cow<'a, str>>,
    conversation_id: Option<Cow<'a, str>>,
}

impl MessageRecord<'_> {
    /// The receiving phone number id, when the payload names it.
    pub fn phone_number_id(&self) -> Option<&str> {
        self.phone_number_id.as_deref()
    }

    /// The message's `wamid`, when it has one.
    pub fn message_id(&self) -> Option<&str> {
        self.message.id.get()
    }

    /// Whether the message carries media (which is downloaded before it is stored).
    pub fn has_media(&self) -> bool {
        matches!(self.message.kind.get(), Some("image" | "video" | "audio" | "document" | "sticker"))
    }
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
#[derive(Clone, Debug, Default)]
pub struct WebhookBatch<'a> {
    /// Messages from users.
    pub messages: Vec<MessageRecord<'a>>,
    /// Delivery statuses.
    pub statuses: Vec<StatusUpdate>,
    /// Events this bridge does not act on (by name), acknowledged and counted.
    pub ignored: Vec<String>,
    /// Records that cannot be used (a status without an id…): kept as dead letters with the
    /// reason, while the rest of the delivery is stored.
    pub rejected: Vec<Rejected>,
}

/// A record of a delivery that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Its message id, when it has one.
    pub message_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// Why a webhook body cannot be used (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// A v1 (legacy) Kapso payload.
    #[error("Kapso payload version v1 is not supported: set the webhook's payload version to v2 in Kapso")]
    LegacyV1,
    /// Not one of the known shapes, or a required field is missing.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

// ---- The payloads, as far as the bridge reads them ------------------------------------------

/// A webhook body of any of the three shapes.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Body<'a> {
    /// Meta's `object`: its presence marks the Meta shape.
    #[serde(deserialize_with = "present")]
    object: Option<IgnoredAny>,
    #[serde(borrow, deserialize_with = "present")]
    entry: Option<List<Lax<MetaEntry<'a>>>>,
    /// The event name of a Kapso batch.
    #[serde(rename = "type", borrow, deserialize_with = "present")]
    event: Option<Str<'a>>,
    batch: Flag,
    #[serde(borrow, deserialize_with = "present")]
    data: Option<OneOrMany<Lax<KapsoRecord<'a>>>>,
    /// The record itself (Kapso v2 non-batched): its message…
    #[serde(borrow)]
    message: Obj<Message<'a>>,
    #[serde(borrow)]
    conversation: Lax<Conversation<'a>>,
    #[serde(borrow)]
    phone_number_id: Text<'a>,
}

/// One record of a Kapso delivery.
#[derive(Default, Deserialize)]
#[serde(default)]
struct KapsoRecord<'a> {
    #[serde(borrow)]
    message: Obj<Message<'a>>,
    #[serde(borrow)]
    conversation: Lax<Conversation<'a>>,
    #[serde(borrow)]
    phone_number_id: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Conversation<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    phone_number: Text<'a>,
    #[serde(borrow)]
    phone_number_id: Text<'a>,
    #[serde(borrow)]
    kapso: Lax<ContactName<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ContactName<'a> {
    #[serde(borrow)]
    contact_name: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaEntry<'a> {
    #[serde(borrow)]
    changes: List<Lax<MetaChange<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaChange<'a> {
    #[serde(borrow)]
    field: Str<'a>,
    #[serde(borrow, deserialize_with = "present")]
    value: Option<Lax<MetaValue<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaValue<'a> {
    #[serde(borrow)]
    metadata: Lax<Metadata<'a>>,
    #[serde(borrow)]
    contacts: List<Lax<MetaContact<'a>>>,
    #[serde(borrow)]
    messages: List<Lax<Message<'a>>>,
    #[serde(borrow)]
    statuses: List<Lax<MetaStatus<'a>>>,
    #[serde(deserialize_with = "present")]
    message_echoes: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Metadata<'a> {
    #[serde(borrow)]
    phone_number_id: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaContact<'a> {
    #[serde(borrow)]
    wa_id: Text<'a>,
    #[serde(borrow)]
    profile: Lax<Profile<'a>>,
    #[serde(borrow)]
    user_id: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Profile<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaStatus<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    status: Text<'a>,
    #[serde(borrow)]
    errors: List<Lax<ErrorDetail<'a>>>,
    #[serde(borrow)]
    timestamp: Text<'a>,
}

/// Meta's error object (`errors[]` of statuses and of unsupported messages).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorDetail<'a> {
    #[serde(borrow, deserialize_with = "present")]
    code: Option<Json<'a>>,
    #[serde(borrow)]
    title: Text<'a>,
    #[serde(borrow)]
    message: Text<'a>,
    #[serde(borrow)]
    error_data: Lax<ErrorData<'a>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorData<'a> {
    #[serde(borrow)]
    details: Text<'a>,
}

/// A message object: Meta's shape plus Kapso's `kapso` extras.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Message<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    from: Text<'a>,
    #[serde(borrow)]
    from_user_id: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    context: Lax<Context<'a>>,
    #[serde(borrow)]
    text: Lax<TextBody<'a>>,
    // The bodies of the other kinds are boxed: a message has at most one of them, and the
    // record is moved a few times on its way to the inbox.
    #[serde(borrow)]
    image: Obj<Box<MediaBody<'a>>>,
    #[serde(borrow)]
    video: Obj<Box<MediaBody<'a>>>,
    #[serde(borrow)]
    audio: Obj<Box<MediaBody<'a>>>,
    #[serde(borrow)]
    document: Obj<Box<MediaBody<'a>>>,
    #[serde(borrow)]
    sticker: Obj<Box<MediaBody<'a>>>,
    #[serde(borrow)]
    location: Obj<Box<Location<'a>>>,
    #[serde(borrow)]
    contacts: List<Lax<ContactCard<'a>>>,
    #[serde(borrow)]
    interactive: Obj<Box<Interactive<'a>>>,
    #[serde(borrow)]
    button: Obj<Box<ButtonBody<'a>>>,
    #[serde(borrow)]
    reaction: Obj<Box<ReactionBody<'a>>>,
    #[serde(borrow)]
    order: Obj<Box<Order<'a>>>,
    #[serde(borrow)]
    errors: List<Lax<ErrorDetail<'a>>>,
    /// Forwarded into [`InboundData::referral`] as sent.
    #[serde(deserialize_with = "present")]
    referral: Option<Box<RawValue>>,
    #[serde(borrow)]
    kapso: Lax<MessageKapso<'a>>,
}

impl Message<'_> {
    /// Messages Kapso imported from the phone's history (coexistence onboarding).
    fn is_history_import(&self) -> bool {
        self.kapso.0.origin.get() == Some(HISTORY_SYNC)
    }
}

/// Kapso's extras on a message.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct MessageKapso<'a> {
    #[serde(borrow)]
    direction: Str<'a>,
    #[serde(borrow)]
    status: Str<'a>,
    #[serde(borrow)]
    statuses: List<Lax<KapsoStatus<'a>>>,
    #[serde(borrow)]
    origin: Text<'a>,
    #[serde(borrow)]
    phone_number_id: Text<'a>,
    #[serde(borrow)]
    phone_number: Text<'a>,
    #[serde(borrow)]
    contact_name: Text<'a>,
    #[serde(borrow)]
    media_url: Text<'a>,
    #[serde(borrow)]
    media_data: Lax<MediaData<'a>>,
    #[serde(borrow)]
    message_type_data: Lax<Caption<'a>>,
    #[serde(borrow)]
    transcript: Lax<Transcript<'a>>,
    #[serde(borrow)]
    content: Text<'a>,
}

/// One entry of Kapso's status history of a sent message.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct KapsoStatus<'a> {
    #[serde(borrow)]
    status: Str<'a>,
    #[serde(borrow)]
    errors: List<Lax<ErrorDetail<'a>>>,
    #[serde(borrow)]
    timestamp: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct MediaData<'a> {
    #[serde(borrow)]
    url: Text<'a>,
    #[serde(borrow)]
    filename: Text<'a>,
    #[serde(borrow)]
    content_type: Text<'a>,
    byte_size: Count,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Caption<'a> {
    #[serde(borrow)]
    caption: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Transcript<'a> {
    #[serde(borrow)]
    text: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Context<'a> {
    #[serde(borrow)]
    id: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct TextBody<'a> {
    #[serde(borrow)]
    body: Text<'a>,
}

/// `image`, `video`, `audio`, `document` and `sticker` objects.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct MediaBody<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    mime_type: Text<'a>,
    #[serde(borrow)]
    caption: Text<'a>,
    #[serde(borrow)]
    filename: Text<'a>,
    #[serde(borrow)]
    link: Text<'a>,
    voice: Flag,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Location<'a> {
    latitude: Float,
    longitude: Float,
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    address: Text<'a>,
    #[serde(borrow)]
    url: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ContactCard<'a> {
    #[serde(borrow)]
    name: Lax<CardName<'a>>,
    #[serde(borrow)]
    phones: List<Lax<CardPhone<'a>>>,
    #[serde(borrow)]
    emails: List<Lax<CardEmail<'a>>>,
    #[serde(borrow)]
    org: Lax<CardOrg<'a>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct CardName<'a> {
    #[serde(borrow)]
    formatted_name: Text<'a>,
    #[serde(borrow)]
    first_name: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct CardPhone<'a> {
    #[serde(borrow)]
    phone: Text<'a>,
    #[serde(borrow)]
    wa_id: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct CardEmail<'a> {
    #[serde(borrow)]
    email: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct CardOrg<'a> {
    #[serde(borrow)]
    company: Text<'a>,
}

/// An `interactive` object: its `type` names the key of the reply object
/// (`button_reply`, `list_reply`, `nfm_reply`, or one this version does not know).
#[derive(Clone, Debug, Default)]
struct Interactive<'a> {
    kind: Text<'a>,
    /// Every other key with its value read as a reply; a repeated key counts once, the last.
    replies: Vec<(Cow<'a, str>, Reply<'a>)>,
}

impl Interactive<'_> {
    fn reply(&self, kind: &str) -> Option<&Reply<'_>> {
        self.replies.iter().rev().find(|(key, _)| key == kind).map(|(_, reply)| reply)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Interactive<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Fields<'a> {
            type Value = Interactive<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an interactive object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut interactive = Interactive::default();
                while let Some(key) = map.next_key::<Str<'a>>()? {
                    match key.0 {
                        Some(key) if key == "type" => interactive.kind = map.next_value()?,
                        Some(key) => {
                            let reply: Lax<Reply<'a>> = map.next_value()?;
                            interactive.replies.push((key, reply.0));
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(interactive)
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Reply<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    title: Text<'a>,
    #[serde(borrow)]
    description: Text<'a>,
    #[serde(borrow)]
    response_json: Text<'a>,
    #[serde(borrow)]
    body: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ButtonBody<'a> {
    #[serde(borrow)]
    text: Text<'a>,
    #[serde(borrow)]
    payload: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ReactionBody<'a> {
    #[serde(borrow)]
    message_id: Text<'a>,
    #[serde(borrow)]
    emoji: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Order<'a> {
    #[serde(borrow)]
    product_items: List<Lax<OrderItem<'a>>>,
    #[serde(borrow)]
    text: Text<'a>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct OrderItem<'a> {
    #[serde(borrow, deserialize_with = "present")]
    quantity: Option<Json<'a>>,
    #[serde(borrow)]
    product_retailer_id: Text<'a>,
    #[serde(borrow, deserialize_with = "present")]
    item_price: Option<Json<'a>>,
    #[serde(borrow)]
    currency: Text<'a>,
}

/// The part of a `referral` the agent is told about.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ReferralHeadline<'a> {
    #[serde(borrow)]
    headline: Text<'a>,
}

// ---- Splitting a delivery -------------------------------------------------------------------

/// Splits a webhook body into messages, statuses and ignored events, parsing it once.
///
/// # Errors
/// [`PayloadError`] for bodies that are not JSON, v1 payloads and bodies that fit no shape.
pub fn parse_webhook<'a>(
    body: &'a [u8],
    event_header: Option<&str>,
    version: Option<&str>,
) -> Result<WebhookBatch<'a>, PayloadError> {
    // One UTF-8 check of the whole body, so the parser does not check every string again.
    let text = std::str::from_utf8(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let parsed: Obj<Body<'a>> = serde_json::from_str(text).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    if version.is_some_and(|v| v.eq_ignore_ascii_case("v1")) {
        return Err(PayloadError::LegacyV1);
    }
    let Some(body) = parsed.0 else {
        return Err(PayloadError::Malformed("the body is not a JSON object".to_owned()));
    };
    let mut batch = WebhookBatch::default();
    let Body { object, entry, event: type_field, batch: batch_flag, data, message, conversation, phone_number_id } =
        body;
    if object.is_some() || entry.is_some() {
        parse_meta(entry, &mut batch)?;
        return Ok(batch);
    }
    let event = type_field.as_ref().and_then(Str::get).or(event_header);
    let records: Vec<KapsoRecord<'a>> = if batch_flag.0 == Some(true) {
        match data {
            Some(OneOrMany::Many(items)) => items.into_iter().map(|r| r.0).collect(),
            _ => return Err(PayloadError::Malformed("batched delivery without a data array".to_owned())),
        }
    } else if data.is_some() && type_field.is_some() {
        // Batched deliveries without the flag.
        match data {
            Some(OneOrMany::Many(items)) => items.into_iter().map(|r| r.0).collect(),
            Some(OneOrMany::One(single)) => vec![single.0],
            _ => return Err(PayloadError::Malformed("data is neither a list nor an object".to_owned())),
        }
    } else {
        vec![KapsoRecord { message, conversation, phone_number_id }]
    };
    for record in records {
        parse_kapso_record(record, event, &mut batch)?;
    }
    Ok(batch)
}

fn parse_kapso_record<'a>(
    record: KapsoRecord<'a>,
    event: Option<&str>,
    batch: &mut WebhookBatch<'a>,
) -> Result<(), PayloadError> {
    let KapsoRecord { message, conversation, phone_number_id } = record;
    let Some(message) = message.0 else {
        // Conversation and project events have no message.
        batch.ignored.push(event.unwrap_or("unknown").to_owned());
        return Ok(());
    };
    let conversation = conversation.0;
    let kapso = &message.kapso.0;
    let status_event = event.and_then(|e| e.strip_prefix("whatsapp.message.")).filter(|s| *s != "received");
    let phone_number_id =
        phone_number_id.0.or(conversation.phone_number_id.0).or_else(|| kapso.phone_number_id.0.clone());
    let is_received = match event {
        Some("whatsapp.message.received") => true,
        Some(e) if e.starts_with("whatsapp.message.") => false,
        Some(other) => {
            batch.ignored.push(other.to_owned());
            return Ok(());
        }
        None => kapso.direction.get() != Some("outbound"),
    };
    if is_received && message.is_history_import() {
        batch.ignored.push(HISTORY_SYNC.to_owned());
        return Ok(());
    }
    if is_received {
        let contact_name = conversation.kapso.0.contact_name.0.or_else(|| kapso.contact_name.0.clone());
        batch.messages.push(MessageRecord {
            phone_number_id,
            conversation_phone: conversation.phone_number.0,
            contact_name,
            contact_user_id: None,
            conversation_id: conversation.id.0,
            message,
        });
        return Ok(());
    }
    let Some(id) = message.id.cloned() else {
        batch.rejected.push(Rejected { message_id: None, reason: "status event without message.id".to_owned() });
        return Ok(());
    };
    let status = status_event.or(kapso.status.get()).map(str::to_owned);
    let Some(status) = status else {
        batch.ignored.push(event.unwrap_or("outbound message").to_owned());
        return Ok(());
    };
    // The newest entry of Kapso's status history carries the error of a failure.
    let latest = kapso.statuses.items().iter().rev().map(|s| &s.0).find(|s| s.status.get() == Some(status.as_str()));
    let error = latest.and_then(|s| describe_errors(&s.errors));
    let at = latest.and_then(|s| s.timestamp.get()).and_then(parse_time);
    batch.statuses.push(StatusUpdate {
        message_id: id,
        status,
        error,
        at,
        phone_number_id: phone_number_id.map(Cow::into_owned),
    });
    Ok(())
}

fn parse_meta<'a>(entry: Option<List<Lax<MetaEntry<'a>>>>, batch: &mut WebhookBatch<'a>) -> Result<(), PayloadError> {
    let Some(entries) = entry.and_then(|list| list.0) else {
        return Err(PayloadError::Malformed("Meta payload without an entry array".to_owned()));
    };
    for entry in entries {
        for change in entry.0.changes.0.into_iter().flatten() {
            let change = change.0;
            let field = change.field.get().unwrap_or("");
            let Some(value) = change.value else { continue };
            if field != "messages" {
                batch.ignored.push(format!("meta.{field}"));
                continue;
            }
            let value = value.0;
            let phone_number_id = value.metadata.0.phone_number_id.0;
            let contacts = value.contacts.items();
            for message in value.messages.0.into_iter().flatten() {
                let message = message.0;
                let from = message.from.get();
                let contact = contacts
                    .iter()
                    .find(|c| from.is_some() && c.0.wa_id.get() == from)
                    .or_else(|| contacts.first())
                    .map(|c| &c.0);
                let contact_name = contact.and_then(|c| c.profile.0.name.0.clone());
                let contact_user_id = contact.and_then(|c| c.user_id.0.clone());
                batch.messages.push(MessageRecord {
                    message,
                    phone_number_id: phone_number_id.clone(),
                    conversation_phone: None,
                    contact_name,
                    contact_user_id,
                    conversation_id: None,
                });
            }
            for status in value.statuses.0.into_iter().flatten() {
                let status = status.0;
                let (Some(id), Some(name)) = (status.id.cloned(), status.status.cloned()) else {
                    let message_id = status.id.cloned();
                    batch.rejected.push(Rejected { message_id, reason: "status without id or status".to_owned() });
                    continue;
                };
                batch.statuses.push(StatusUpdate {
                    message_id: id,
                    status: name,
                    error: describe_errors(&status.errors),
                    at: status.timestamp.get().and_then(parse_time),
                    phone_number_id: phone_number_id.as_deref().map(str::to_owned),
                });
            }
            if value.message_echoes.is_some() {
                batch.ignored.push("meta.message_echoes".to_owned());
            }
        }
    }
    Ok(())
}

/// Messages Kapso imported from the phone's history (coexistence onboarding) are old
/// conversation, not new questions: answering them would message people about months-old chats.
pub fn is_history_import(message: &Value) -> bool {
    message.pointer("/kapso/origin").and_then(Value::as_str) == Some(HISTORY_SYNC)
}

/// `131047 Re-engagement message: More than 24 hours…` from Meta's `errors` array.
fn describe_errors(errors: &List<Lax<ErrorDetail<'_>>>) -> Option<String> {
    let first = &errors.items().first()?.0;
    let code = first.code.as_ref().map(Json::json).unwrap_or_default();
    let title = first.title.get().or(first.message.get()).unwrap_or_default();
    let details = first.error_data.0.details.get().or(first.message.get()).unwrap_or_default();
    let mut text = format!("{code} {title}").trim().to_owned();
    if !details.is_empty() && details != title {
        text.push_str(": ");
        text.push_str(details);
    }
    Some(text)
}

// ---- Converting a message -------------------------------------------------------------------

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

/// An inbound message, the media still to fetch, and the channel's data for it (written into
/// the message's `extra` by [`into_message`](Self::into_message), once).
#[derive(Clone, Debug)]
pub struct Converted<'a> {
    /// The message for the inbox (its `extra` still empty).
    pub message: InboundMessage,
    /// Media to download before it is stored.
    pub pending: Vec<PendingMedia>,
    /// What goes into `extra`.
    pub data: InboundData<'a>,
}

impl Converted<'_> {
    /// The message with its data in `extra`.
    pub fn into_message(self) -> InboundMessage {
        let mut message = self.message;
        // Strings and raw JSON only: encoding cannot fail.
        message.extra = ChannelData::encode(&self.data).unwrap_or_default();
        message
    }
}

/// Converts a polled message into an [`InboundMessage`] for `account`.
///
/// # Errors
/// [`PayloadError::Malformed`] when the message has no id or no sender at all.
pub fn convert<'a>(record: &'a InboundRecord, account: &AccountId) -> Result<Converted<'a>, PayloadError> {
    let message: Lax<Message<'a>> =
        Lax::deserialize(&record.message).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let borrowed = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    let record = MessageRecord {
        message: message.0,
        phone_number_id: borrowed(&record.phone_number_id),
        conversation_phone: borrowed(&record.conversation_phone),
        contact_name: borrowed(&record.contact_name),
        contact_user_id: borrowed(&record.contact_user_id),
        conversation_id: borrowed(&record.conversation_id),
    };
    convert_record(record, account)
}

/// Converts a webhook record into an [`InboundMessage`] for `account`.
///
/// # Errors
/// [`PayloadError::Malformed`] when the message has no id or no sender at all.
pub fn convert_record<'a>(record: MessageRecord<'a>, account: &AccountId) -> Result<Converted<'a>, PayloadError> {
    let MessageRecord {
        message: m,
        phone_number_id,
        conversation_phone,
        contact_name,
        contact_user_id,
        conversation_id,
    } = record;
    let id = m.id.get().ok_or_else(|| PayloadError::Malformed("message without id".to_owned()))?;
    let user_id = m.from_user_id.0.clone().or(contact_user_id).filter(|u| is_bsuid(u));
    let phone = m
        .from
        .get()
        .or(conversation_phone.as_deref())
        .or(m.kapso.0.phone_number.get())
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|p| !p.is_empty());
    let peer = phone.clone().or_else(|| user_id.as_deref().map(str::to_owned)).ok_or_else(|| {
        PayloadError::Malformed(format!("message {id} has no sender (from, conversation.phone_number, from_user_id)"))
    })?;
    let kind_name = m.kind.get().unwrap_or("unknown");
    let kapso = &m.kapso.0;

    let mut msg = InboundMessage::text(CHANNEL, account.clone(), peer, id, "");
    msg.sent_at = m.timestamp.get().and_then(parse_time);
    msg.sender_name =
        contact_name.or_else(|| kapso.contact_name.0.clone()).map(Cow::into_owned).filter(|n| !n.trim().is_empty());
    msg.reply_to = m.context.0.id.get().map(Into::into);
    let mut pending = Vec::new();
    let mut interactive = None;

    let (kind, text) = match kind_name {
        "text" => (MessageKind::Text, m.text.0.body.cloned().unwrap_or_default()),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let (media_kind, body) = match kind_name {
                "image" => (MediaKind::Image, &m.image),
                "video" => (MediaKind::Video, &m.video),
                "audio" => (MediaKind::Audio, &m.audio),
                "document" => (MediaKind::Document, &m.document),
                _ => (MediaKind::Sticker, &m.sticker),
            };
            let absent = MediaBody::default();
            let body = body.0.as_deref().unwrap_or(&absent);
            let data = &kapso.media_data.0;
            let caption = body.caption.get().or(kapso.message_type_data.0.caption.get()).map(str::to_owned);
            let media = MediaRef {
                kind: media_kind,
                url: None,
                platform_id: body.id.cloned(),
                mime_type: body.mime_type.get().or(data.content_type.get()).map(str::to_owned),
                file_name: body.filename.get().or(data.filename.get()).map(str::to_owned),
                size_bytes: data.byte_size.0,
                caption: caption.clone(),
                data_base64: None,
            };
            let url = kapso.media_url.get().or(data.url.get()).or(body.link.get()).map(str::to_owned);
            pending.push(PendingMedia { index: 0, url, media_id: media.platform_id.clone() });
            msg.media.push(media);
            // Kapso's server-side transcription; older payloads only have it inside `kapso.content`.
            let transcript = kapso
                .transcript
                .0
                .text
                .get()
                .or_else(|| {
                    let (_, after) = kapso.content.get()?.split_once("Transcript:")?;
                    Some(after.trim())
                })
                .filter(|t| !t.trim().is_empty());
            let is_voice = body.voice.0 == Some(true) || (media_kind == MediaKind::Audio && transcript.is_some());
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
        "location" => {
            (MessageKind::Location, describe_location(m.location.0.as_deref().unwrap_or(&Location::default())))
        }
        "contacts" => (MessageKind::Contacts, describe_contacts(&m.contacts)),
        "interactive" => {
            let body = m.interactive.0.as_deref();
            let reply_type = body.and_then(|i| i.kind.get()).unwrap_or_default();
            let absent = Reply::default();
            let reply = body.and_then(|i| i.reply(reply_type)).unwrap_or(&absent);
            let title = reply.title.get().unwrap_or_default();
            let text = match reply_type {
                "button_reply" => format!("[tapped button] {title}"),
                "list_reply" => match reply.description.get() {
                    Some(d) => format!("[chose from list] {title} ({d})"),
                    None => format!("[chose from list] {title}"),
                },
                "nfm_reply" => {
                    format!("[submitted form] {}", reply.response_json.get().or(reply.body.get()).unwrap_or_default())
                }
                other => format!("[interactive reply: {other}] {title}"),
            };
            interactive = Some(InteractiveChoice {
                id: reply.id.cloned().map(Cow::Owned),
                payload: None,
                title: Cow::Owned(title.to_owned()),
                kind: Cow::Owned(reply_type.to_owned()),
            });
            (MessageKind::Interactive, text)
        }
        "button" => {
            let button = m.button.0.as_deref();
            let text = button.and_then(|b| b.text.get()).unwrap_or_default();
            interactive = Some(InteractiveChoice {
                id: None,
                payload: button.and_then(|b| b.payload.cloned()).map(Cow::Owned),
                title: Cow::Owned(text.to_owned()),
                kind: Cow::Borrowed("button"),
            });
            (MessageKind::Interactive, format!("[tapped button] {text}"))
        }
        "reaction" => {
            let reaction = m.reaction.0.as_deref();
            if let Some(target) = reaction.and_then(|r| r.message_id.get()) {
                msg.reply_to = Some(target.into());
            }
            match reaction.and_then(|r| r.emoji.get()) {
                Some(emoji) => (MessageKind::Reaction, format!("[reacted {emoji} to an earlier message]")),
                None => (MessageKind::Reaction, "[removed a reaction from an earlier message]".to_owned()),
            }
        }
        "order" => {
            (MessageKind::Other("order".to_owned()), describe_order(m.order.0.as_deref().unwrap_or(&Order::default())))
        }
        other => {
            let detail = kapso
                .content
                .get()
                .or_else(|| m.errors.items().first().and_then(|e| e.0.title.get().or(e.0.message.get())))
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

    let origin = kapso.origin.0.clone();
    let referral = m.referral;
    if let Some(raw) = &referral {
        let headline: Lax<ReferralHeadline<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
        if let Some(headline) = headline.0.headline.get() {
            msg.text = format!("{}\n[came from the ad {headline:?}]", msg.text).trim().to_owned();
        }
    }
    let data = InboundData {
        conversation_id,
        from_user_id: user_id,
        interactive,
        media_errors: Vec::new(),
        origin,
        phone: phone.map(Cow::Owned),
        phone_number_id,
        referral: referral.map(Cow::Owned),
    };
    Ok(Converted { message: msg, pending, data })
}

fn describe_location(body: &Location<'_>) -> String {
    let mut parts = vec!["[shared a location]".to_owned()];
    parts.extend(body.name.cloned());
    parts.extend(body.address.cloned());
    if let (Some(lat), Some(lon)) = (body.latitude.0, body.longitude.0) {
        parts.push(format!("({lat:.6}, {lon:.6})"));
    }
    parts.extend(body.url.cloned());
    parts.join(" ")
}

fn describe_contacts(contacts: &List<Lax<ContactCard<'_>>>) -> String {
    let cards: Vec<String> = contacts
        .items()
        .iter()
        .map(|c| {
            let c = &c.0;
            let name = c.name.0.formatted_name.get().or(c.name.0.first_name.get()).unwrap_or("(no name)");
            let mut details: Vec<&str> = Vec::new();
            for phone in c.phones.items() {
                details.extend(phone.0.phone.get().or(phone.0.wa_id.get()));
            }
            for email in c.emails.items() {
                details.extend(email.0.email.get());
            }
            details.extend(c.org.0.company.get());
            if details.is_empty() { name.to_owned() } else { format!("{name}: {}", details.join(", ")) }
        })
        .collect();
    format!("[shared contact card{}] {}", if cards.len() == 1 { "" } else { "s" }, cards.join("; "))
}

fn describe_order(body: &Order<'_>) -> String {
    let items: Vec<String> = body
        .product_items
        .items()
        .iter()
        .map(|item| {
            let item = &item.0;
            format!(
                "{} × {} ({} {})",
                item.quantity.as_ref().map(Json::json).unwrap_or_default(),
                item.product_retailer_id.get().unwrap_or_default(),
                item.item_price.as_ref().map(Json::json).unwrap_or_default(),
                item.currency.get().unwrap_or_default(),
            )
        })
        .collect();
    let note = body.text.get().map(|t| format!(" — note: {t}")).unwrap_or_default();
    format!("[placed an order] {}{note}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> AccountId {
        AccountId::default_account()
    }

    /// Parses a body built as a tree, as its JSON text (kept for the test's lifetime).
    fn parse(body: &Value, event: Option<&str>, version: Option<&str>) -> Result<WebhookBatch<'static>, PayloadError> {
        let text: &'static str = Box::leak(body.to_string().into_boxed_str());
        parse_webhook(text.as_bytes(), event, version)
    }

    fn data(msg: &InboundMessage) -> InboundData<'static> {
        InboundData::of(msg).expect("WhatsApp data in extra")
    }

    const NON_BATCHED: &str = r#"{"message":{"id":"wamid.123","timestamp":"1730092800","type":"text","text":{"body":"Hello"},
       "kapso":{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"content":"Hello"}},
     "conversation":{"id":"conv_123","phone_number":"+15551234567","status":"active","phone_number_id":"123456789012345",
       "kapso":{"contact_name":"John Doe","messages_count":1}},
     "is_new_conversation":true,"phone_number_id":"123456789012345"}"#;

    #[test]
    fn non_batched_kapso_record_takes_the_sender_from_the_conversation() {
        let batch = parse_webhook(NON_BATCHED.as_bytes(), Some("whatsapp.message.received"), Some("v2")).unwrap();
        assert_eq!(batch.messages.len(), 1);
        let converted = convert_record(batch.messages[0].clone(), &account()).unwrap();
        let msg = converted.into_message();
        assert_eq!(msg.peer.as_str(), "15551234567");
        assert_eq!(msg.message_id.as_str(), "wamid.123");
        assert_eq!(msg.text, "Hello");
        assert_eq!(msg.kind, MessageKind::Text);
        assert_eq!(msg.sender_name.as_deref(), Some("John Doe"));
        assert_eq!(msg.sent_at, Some(1_730_092_800_000));
        assert_eq!(data(&msg).phone_number_id.as_deref(), Some("123456789012345"));
        assert_eq!(data(&msg).conversation_id.as_deref(), Some("conv_123"));
        // Without the header, an inbound direction still means "received".
        assert_eq!(parse_webhook(NON_BATCHED.as_bytes(), None, None).unwrap().messages.len(), 1);
    }

    #[test]
    fn batched_records_use_the_kapso_phone_number_fallback() {
        let body = json!({"type":"whatsapp.message.received","batch":true,"data":[
            {"message":{"id":"wamid.111","timestamp":"1730092801","type":"text","text":{"body":"First"},
              "kapso":{"direction":"inbound","phone_number":"+15551234567","phone_number_id":"123"}},
             "phone_number_id":"123"},
            {"message":{"id":"wamid.112","type":"text","text":{"body":"Second"},"from_user_id":"US.13491208655302741918"},
             "phone_number_id":"123"}]});
        let batch = parse(&body, None, None).unwrap();
        let first = convert_record(batch.messages[0].clone(), &account()).unwrap().into_message();
        assert_eq!(first.peer.as_str(), "15551234567");
        let second = convert_record(batch.messages[1].clone(), &account()).unwrap().into_message();
        assert_eq!(second.peer.as_str(), "US.13491208655302741918");
        assert_eq!(data(&second).from_user_id.as_deref(), Some("US.13491208655302741918"));
    }

    #[test]
    fn meta_shape_with_contacts_and_statuses() {
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 631-555-8151","phone_number_id":"16315558151"},
            "contacts":[{"profile":{"name":"Jane Doe"},"wa_id":"15551234567","user_id":"US.1234"}],
            "messages":[{"from":"15551234567","id":"wamid.text","timestamp":"1735689600","type":"text","text":{"body":"Hello Kapso"}}],
            "statuses":[{"id":"wamid.out","status":"failed","timestamp":"1735689660","recipient_id":"15551234567",
                         "errors":[{"code":131047,"title":"Re-engagement message","error_data":{"details":"More than 24 hours"}}]}]}}]}]});
        let batch = parse(&body, None, None).unwrap();
        let msg = convert_record(batch.messages[0].clone(), &account()).unwrap().into_message();
        assert_eq!(msg.sender_name.as_deref(), Some("Jane Doe"));
        assert_eq!(data(&msg).from_user_id.as_deref(), Some("US.1234"));
        assert_eq!(data(&msg).phone_number_id.as_deref(), Some("16315558151"));
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
        let batch = parse(&body, Some("whatsapp.message.failed"), None).unwrap();
        assert!(batch.messages.is_empty());
        assert_eq!(batch.statuses[0].status, "failed");
        let error = batch.statuses[0].error.as_deref().unwrap();
        assert!(error.starts_with("131047 Re-engagement message: More than 24 hours"), "{error}");
        assert_eq!(batch.statuses[0].at, Some(1_730_093_200_000));
        let delivered = parse(&body, Some("whatsapp.message.delivered"), None).unwrap();
        assert_eq!(delivered.statuses[0].status, "delivered");
    }

    #[test]
    fn unknown_events_legacy_and_garbage() {
        let conv = json!({"conversation":{"id":"c"},"phone_number_id":"1"});
        assert_eq!(
            parse(&conv, Some("whatsapp.conversation.created"), None).unwrap().ignored,
            ["whatsapp.conversation.created"]
        );
        let imported = json!({"message":{"id":"h","type":"text","text":{"body":"old"},"from":"1",
            "kapso":{"direction":"inbound","origin":"history_sync"}}});
        let batch = parse(&imported, Some("whatsapp.message.received"), None).unwrap();
        assert!(batch.messages.is_empty());
        assert_eq!(batch.ignored, ["history_sync"]);
        let other = json!({"message":{"id":"x"}});
        assert_eq!(
            parse(&other, Some("workflow.execution.failed"), None).unwrap().ignored,
            ["workflow.execution.failed"]
        );
        assert!(matches!(parse(&conv, None, Some("v1")), Err(PayloadError::LegacyV1)));
        assert!(matches!(parse(&json!([1]), None, None), Err(PayloadError::Malformed(_))));
        assert!(matches!(parse(&json!({"object":"x"}), None, None), Err(PayloadError::Malformed(_))));
        assert!(matches!(parse_webhook(b"{not json", None, None), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse_webhook(b"{\"message\":\"\xff\"}", None, None), Err(PayloadError::NotJson(_))));
    }

    fn one(message: Value) -> InboundMessage {
        let record =
            InboundRecord { message, conversation_phone: Some("+15551234567".into()), ..InboundRecord::default() };
        convert(&record, &account()).unwrap().into_message()
    }

    #[test]
    fn every_kind_becomes_a_message() {
        let image_record = InboundRecord {
            message: json!({"id":"w1","from":"1555","type":"image","image":{"id":"MEDIA","mime_type":"image/jpeg","caption":"Receipt"},
                  "kapso":{"media_url":"https://api.kapso.ai/media/x","media_data":{"byte_size":1234,"filename":"r.jpg"}}}),
            ..InboundRecord::default()
        };
        let image = convert(&image_record, &account()).unwrap();
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
        assert_eq!(data(&button).interactive.and_then(|i| i.id).as_deref(), Some("approve"));

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

    #[test]
    fn extra_keeps_the_stored_field_names_and_reads_rows_written_before() {
        let body = json!({"message":{"id":"wamid.r","type":"interactive","from":"+1 555 0100","kapso":{"origin":"cloud_api"},
            "interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes"}},
            "referral":{"source_type":"ad","headline":"Spring sale","source_id":123}},
          "conversation":{"id":"conv_9"},"phone_number_id":"PN"});
        let batch = parse(&body, Some("whatsapp.message.received"), None).unwrap();
        let msg = convert_record(batch.messages[0].clone(), &account()).unwrap().into_message();
        assert_eq!(msg.text, "[tapped button] Yes\n[came from the ad \"Spring sale\"]");
        let stored: Value = serde_json::from_str(msg.extra.as_json().unwrap()).unwrap();
        assert_eq!(
            stored,
            json!({"conversation_id":"conv_9","interactive":{"id":"yes","title":"Yes","type":"button_reply"},
                   "origin":"cloud_api","phone":"15550100","phone_number_id":"PN",
                   "referral":{"source_type":"ad","headline":"Spring sale","source_id":123}})
        );
        // A row as the tree-building code wrote it (absent ids as null) reads back.
        let mut old = InboundMessage::text(CHANNEL, "default", "1", "m", "");
        old.extra = json!({"interactive":{"id":null,"title":"Go","type":"button","payload":"GO"},"phone":"1",
            "media_errors":["timeout"]})
        .into();
        let old = data(&old);
        assert_eq!(old.phone.as_deref(), Some("1"));
        assert_eq!(old.media_errors, ["timeout"]);
        assert_eq!(old.interactive.map(|i| (i.id, i.payload)), Some((None, Some("GO".into()))));
    }

    #[test]
    fn fields_of_unexpected_types_count_as_absent_as_in_a_tree_lookup() {
        // Numeric ids and timestamps are text; a non-object `message` is no message; a `null`
        // conversation is no conversation; a non-array contacts list is none.
        let body = json!({"message":{"id":42,"timestamp":1730092800,"type":"text","text":"not an object",
              "context":null,"kapso":{"phone_number":15551234567_u64,"contact_name":""}},
            "conversation":null,"phone_number_id":123});
        let batch = parse(&body, Some("whatsapp.message.received"), None).unwrap();
        assert_eq!(batch.messages[0].phone_number_id(), Some("123"));
        let msg = convert_record(batch.messages[0].clone(), &account()).unwrap().into_message();
        assert_eq!((msg.message_id.as_str(), msg.peer.as_str(), msg.text.as_str()), ("42", "15551234567", ""));
        assert_eq!(msg.sent_at, Some(1_730_092_800_000));
        assert_eq!((msg.sender_name, msg.reply_to), (None, None));
        let ignored = parse(&json!({"message":"x","phone_number_id":"1"}), Some("whatsapp.message.received"), None);
        assert_eq!(ignored.unwrap().ignored, ["whatsapp.message.received"]);
        let meta = json!({"entry":[{"changes":[{"field":"messages","value":{"contacts":{"a":1},"metadata":[1],
            "messages":[{"id":"m","from":"1555"}]}},{"field":"statuses","value":null},"junk"]},7]});
        let batch = parse(&meta, None, None).unwrap();
        assert_eq!(batch.messages.len(), 1);
        assert_eq!(batch.messages[0].phone_number_id(), None);
        assert_eq!(batch.ignored, ["meta.statuses"], "a change whose value is null still counts");
        let unflagged = parse(&json!({"type":"whatsapp.message.received","data":null}), None, None);
        assert!(matches!(unflagged, Err(PayloadError::Malformed(_))), "data present but neither list nor object");
        let codes = parse(
            &json!({"entry":[{"changes":[{"field":"messages","value":{"statuses":[
                {"id":"w","status":"failed","errors":[{"code":"E1","message":"Broken"}]}]}}]}]}),
            None,
            None,
        )
        .unwrap();
        assert_eq!(codes.statuses[0].error.as_deref(), Some("\"E1\" Broken"), "the code as a tree printed it");
    }
}
