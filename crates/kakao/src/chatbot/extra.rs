//! The chatbot's own data on messages (`extra`): a [`KakaoTurn`] on each utterance it accepts and
//! a [`KakaoReply`] on each answer it renders. Both travel through the inbox and outbox rows as
//! `{"kakao": {…}}` with camelCase names; rows written by earlier versions decode unchanged.

use super::response::SkillResponse;
use clawbridge_core::{ChannelData, EpochMs, InboundMessage, OutboundMessage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The stored shape: the chatbot's data under `kakao`.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Envelope<T> {
    kakao: T,
}

fn encode<T: Serialize>(kakao: &T) -> ChannelData {
    ChannelData::encode(&Envelope { kakao }).unwrap_or_else(|e| {
        // Only maps with non-string keys fail, and these structs have none.
        tracing::error!(error = %e, "cannot encode the Kakao message data");
        ChannelData::default()
    })
}

fn decode<T: DeserializeOwned + Default>(data: &ChannelData) -> T {
    match data.decode::<Envelope<T>>() {
        Ok(envelope) => envelope.map(|e| e.kakao).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "Kakao message data does not decode; read as empty");
            T::default()
        }
    }
}

/// What the skill request of an utterance said about the turn, kept with the inbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KakaoTurn {
    /// When the skill request arrived (epoch ms): the sync deadline and callback window count from it.
    pub received_at: Option<EpochMs>,
    /// The user's botUserKey (Event API pushes name users by it).
    pub bot_user_key: Option<String>,
    /// The user's app user id, when the channel is linked to a Kakao Developers app.
    pub app_user_id: Option<String>,
    /// Whether the user added the channel as a friend.
    pub is_friend: Option<bool>,
    /// The block (or intent) that called the skill.
    pub block: Option<String>,
    /// Whether the block offered a callback URL.
    pub callback: bool,
}

impl KakaoTurn {
    /// The turn data of `msg` (empty when it has none).
    pub fn of(msg: &InboundMessage) -> Self {
        decode(&msg.extra)
    }

    /// As `extra` of the inbound message.
    pub fn to_channel_data(&self) -> ChannelData {
        encode(self)
    }
}

/// An answer as rendered for KakaoTurn, with what `send` needs of its turn.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KakaoReply {
    /// The SkillResponse pages: the first is shown, the rest behind "더 보기".
    pub pages: Vec<SkillResponse>,
    /// [`KakaoTurn::received_at`] of the utterance it answers.
    pub received_at: Option<EpochMs>,
    /// [`KakaoTurn::bot_user_key`] of the utterance it answers.
    pub bot_user_key: Option<String>,
    /// [`KakaoTurn::app_user_id`] of the utterance it answers.
    pub app_user_id: Option<String>,
}

impl KakaoReply {
    /// The answer `pages` to `turn`.
    pub fn answering(turn: &KakaoTurn, pages: Vec<SkillResponse>) -> Self {
        Self {
            pages,
            received_at: turn.received_at,
            bot_user_key: turn.bot_user_key.clone(),
            app_user_id: turn.app_user_id.clone(),
        }
    }

    /// The reply data of `msg` (empty for a notice the pipeline wrote without rendering).
    pub fn of(msg: &OutboundMessage) -> Self {
        decode(&msg.extra)
    }

    /// As `extra` of the outbound message.
    pub fn to_channel_data(&self) -> ChannelData {
        encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_of_the_previous_version_decode_and_the_field_names_stay() {
        // As the untyped version wrote them.
        let mut inbound = InboundMessage::text("kakao", "default", "pf-1", "rid:1", "질문");
        inbound.extra = json!({"kakao": {"receivedAt": 1_000, "botUserKey": "bu-1", "appUserId": null,
            "isFriend": true, "block": "폴백 블록", "callback": false}})
        .into();
        let turn = KakaoTurn::of(&inbound);
        assert_eq!(
            turn,
            KakaoTurn {
                received_at: Some(1_000),
                bot_user_key: Some("bu-1".to_owned()),
                app_user_id: None,
                is_friend: Some(true),
                block: Some("폴백 블록".to_owned()),
                callback: false,
            }
        );
        assert_eq!(
            turn.to_channel_data().to_value(),
            json!({"kakao": {"receivedAt": 1_000, "botUserKey": "bu-1", "appUserId": null, "isFriend": true,
                "block": "폴백 블록", "callback": false}})
        );

        let page = SkillResponse::text("답");
        let mut outbound = OutboundMessage::reply_text(&inbound, "답");
        outbound.extra = json!({"kakao": {"pages": [page], "receivedAt": 1_000, "botUserKey": "bu-1",
            "appUserId": null}})
        .into();
        let reply = KakaoReply::of(&outbound);
        assert_eq!(reply, KakaoReply::answering(&turn, vec![SkillResponse::text("답")]));
        assert_eq!(reply.to_channel_data().to_value(), outbound.extra.to_value());
    }

    #[test]
    fn missing_or_foreign_data_reads_as_empty() {
        let mut inbound = InboundMessage::text("kakao", "default", "pf-1", "rid:1", "질문");
        assert_eq!(KakaoTurn::of(&inbound), KakaoTurn::default());
        inbound.extra = json!({"kakao": {"isFriend": false}}).into();
        assert_eq!(KakaoTurn::of(&inbound).is_friend, Some(false));
        inbound.extra = json!({"kakao": {"receivedAt": "yesterday"}}).into();
        assert_eq!(KakaoTurn::of(&inbound), KakaoTurn::default());
        let notice = OutboundMessage::reply_text(&inbound, "승인되었어요");
        assert_eq!(KakaoReply::of(&notice), KakaoReply::default());
    }
}
