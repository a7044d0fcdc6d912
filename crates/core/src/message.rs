//! The normalised messages that flow through the bridge.
//!
//! Every channel turns its platform's payloads into an [`InboundMessage`] and turns an
//! [`OutboundMessage`] into its platform's request. Both are stored as JSON in the inbox and
//! outbox, so fields only ever get added with `#[serde(default)]`.

use crate::ids::{AccountId, ChannelId, Lane, PeerId, PlatformMessageId};
use crate::time::EpochMs;
use serde::{Deserialize, Serialize};

/// What kind of message the user sent. Unknown kinds are kept (never dropped silently) as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "name")]
#[non_exhaustive]
pub enum MessageKind {
    /// Plain text.
    Text,
    /// A picture (with an optional caption in `text`).
    Image,
    /// A video.
    Video,
    /// An audio file.
    Audio,
    /// A voice note; `text` holds the transcript when the platform provides one.
    Voice,
    /// A document or file.
    Document,
    /// A sticker.
    Sticker,
    /// A shared location; `text` describes it.
    Location,
    /// Shared contact cards; `text` describes them.
    Contacts,
    /// A button or list reply; `text` holds the chosen title.
    Interactive,
    /// A reaction to an earlier message; `text` holds the emoji.
    Reaction,
    /// A kind this version does not know, by its platform name.
    Other(String),
}

/// Media attached to a message: a reference, and when the channel fetched it, the bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// The broad kind, which decides whether the agent gets it as an attachment.
    pub kind: MediaKind,
    /// Where the platform serves it (may expire within minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The platform's media id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_id: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Original file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Caption the user wrote with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The downloaded content, base64 (standard alphabet), kept because platform URLs expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// The broad kind of a media item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture; the only kind passed to the agent as an attachment.
    #[default]
    Image,
    /// A video.
    Video,
    /// Audio or a voice note.
    Audio,
    /// Any other file.
    Document,
    /// A sticker (usually webp).
    Sticker,
}

/// A channel's own data riding on a message, opaque to the rest of the bridge.
///
/// Kept as the JSON text the channel wrote (no `serde_json::Value` tree is built when a row is
/// stored or loaded); the channel reads it back into its own typed struct with
/// [`decode`](Self::decode). Only channels know the shape, so the pipeline and the store never
/// look inside.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelData(Option<Box<serde_json::value::RawValue>>);

impl ChannelData {
    /// The data of a channel's typed struct.
    ///
    /// # Errors
    /// When `value` cannot be serialised to JSON (a map with non-string keys).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        Ok(if raw.get() == "null" { Self(None) } else { Self(Some(raw)) })
    }

    /// Reads the data back into the channel's struct; `None` when there is none.
    ///
    /// # Errors
    /// When the stored JSON does not have `T`'s shape.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.0.as_deref().map(|raw| serde_json::from_str(raw.get())).transpose()
    }

    /// The data as a JSON tree (`Null` when empty), for code that inspects it loosely.
    pub fn to_value(&self) -> serde_json::Value {
        self.0.as_deref().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default()
    }

    /// The stored JSON text, if any.
    pub fn as_json(&self) -> Option<&str> {
        self.0.as_deref().map(serde_json::value::RawValue::get)
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl PartialEq for ChannelData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for ChannelData {}

impl From<serde_json::Value> for ChannelData {
    /// Loose data (tests, hand-built messages); `Null` is no data.
    fn from(value: serde_json::Value) -> Self {
        Self::encode(&value).unwrap_or_default()
    }
}

/// One message from a platform user, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The channel it came in on.
    pub channel: ChannelId,
    /// The configured account that received it.
    pub account: AccountId,
    /// Who sent it.
    pub peer: PeerId,
    /// The platform's id of the message: the dedup key within (channel, account).
    pub message_id: PlatformMessageId,
    /// When the platform says it was sent, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<EpochMs>,
    /// The sender's display name, if the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// What kind of message it is.
    pub kind: MessageKind,
    /// The text for the agent: the body, a caption, a transcript or a description of the content.
    #[serde(default)]
    pub text: String,
    /// Attached media.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
    /// The platform id of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<PlatformMessageId>,
    /// Channel-specific data the channel needs again when answering (a Kakao callback URL…),
    /// written and read only by that channel through its own typed struct.
    #[serde(default, skip_serializing_if = "ChannelData::is_empty")]
    pub extra: ChannelData,
}

impl InboundMessage {
    /// A text message with the fields every message has.
    pub fn text(
        channel: impl Into<ChannelId>,
        account: impl Into<AccountId>,
        peer: impl Into<PeerId>,
        message_id: impl Into<PlatformMessageId>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            channel: channel.into(),
            account: account.into(),
            peer: peer.into(),
            message_id: message_id.into(),
            sent_at: None,
            sender_name: None,
            kind: MessageKind::Text,
            text: text.into(),
            media: Vec::new(),
            reply_to: None,
            extra: ChannelData::default(),
        }
    }

    /// The ordering lane of this message's conversation.
    pub fn lane(&self) -> Lane {
        Lane::of(&self.channel, &self.account, &self.peer)
    }
}

/// One message to send to a platform user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The channel to send on.
    pub channel: ChannelId,
    /// The account to send from.
    pub account: AccountId,
    /// The recipient.
    pub peer: PeerId,
    /// The text (already rendered and within the channel's length limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media to send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
    /// The platform message this answers (shown as a quoted reply where the platform can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<PlatformMessageId>,
    /// Channel-specific payload (a template, a card…), interpreted by the channel only.
    #[serde(default, skip_serializing_if = "ChannelData::is_empty")]
    pub extra: ChannelData,
}

impl OutboundMessage {
    /// A text reply to `to`, quoting it.
    pub fn reply_text(to: &InboundMessage, text: impl Into<String>) -> Self {
        Self {
            channel: to.channel.clone(),
            account: to.account.clone(),
            peer: to.peer.clone(),
            text: Some(text.into()),
            media: Vec::new(),
            reply_to: Some(to.message_id.clone()),
            extra: ChannelData::default(),
        }
    }

    /// The ordering lane of the conversation this message belongs to.
    pub fn lane(&self) -> Lane {
        Lane::of(&self.channel, &self.account, &self.peer)
    }
}

/// How the pipeline finished an inbound message. Stored with the row (as [`as_str`](Self::as_str))
/// and handed to the channel, so a synchronous channel (a Kakao skill request still waiting) knows
/// whether an answer is coming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InboundOutcome {
    /// The agent answered; the replies are in the outbox.
    Replied,
    /// The agent finished without a visible reply.
    Silent,
    /// The access policy ignores this sender (DM policy `disabled`).
    Ignored,
    /// The sender is not allowed (allowlist); at most a deny notice was queued.
    Denied,
    /// The sender must be approved first; a pairing code may have been queued.
    Pairing,
}

impl InboundOutcome {
    /// The stored name (`replied`, `silent`, `ignored`, `denied`, `pairing`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Replied => "replied",
            Self::Silent => "silent",
            Self::Ignored => "ignored",
            Self::Denied => "denied",
            Self::Pairing => "pairing",
        }
    }
}

impl std::fmt::Display for InboundOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a platform answered to a successful send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The platform's id of the sent message (a `wamid`), used to match delivery statuses.
    pub platform_message_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_round_trips_through_json_and_tolerates_missing_optional_fields() {
        let msg = InboundMessage::text("whatsapp", "default", "15551234567", "wamid.1", "hi");
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<InboundMessage>(&json).unwrap(), msg);
        let minimal = r#"{"channel":"kakao","account":"default","peer":"u1","message_id":"m1","kind":{"type":"text"}}"#;
        let parsed: InboundMessage = serde_json::from_str(minimal).unwrap();
        assert_eq!(parsed.text, "");
        assert_eq!(parsed.lane().as_str(), "kakao/default/u1");
    }

    #[test]
    fn channel_data_round_trips_as_written_and_is_left_out_when_empty() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Turn {
            callback: String,
        }
        let mut msg = InboundMessage::text("kakao", "default", "u1", "m1", "hi");
        assert!(!serde_json::to_string(&msg).unwrap().contains("extra"));
        msg.extra = ChannelData::encode(&Turn { callback: "https://x".to_owned() }).unwrap();
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.contains(r#""extra":{"callback":"https://x"}"#), "{json}");
        let back: InboundMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back.extra.decode::<Turn>().unwrap(), Some(Turn { callback: "https://x".to_owned() }));
        assert_eq!(back, msg);
        assert!(ChannelData::from(serde_json::Value::Null).is_empty());
        assert!(back.extra.decode::<Vec<u8>>().is_err(), "a different shape is an error, not a silent default");
    }

    #[test]
    fn unknown_kinds_survive_a_round_trip() {
        let kind = MessageKind::Other("order".to_owned());
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, r#"{"type":"other","name":"order"}"#);
        assert_eq!(serde_json::from_str::<MessageKind>(&json).unwrap(), kind);
    }
}
