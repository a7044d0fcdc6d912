//! SkillPayload (Kakao → skill, reference/kakao.md §5.1) and the channel webhook body (§5.6),
//! parsed leniently: every field optional, unknown fields ignored, legacy keys accepted.

use serde::Deserialize;
use serde_json::Value;

/// What Kakao POSTs to a skill.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SkillPayload {
    /// The block that matched.
    pub intent: Named,
    /// The user's turn.
    pub user_request: UserRequest,
    /// The bot.
    pub bot: Named,
    /// The skill and its parameters.
    pub action: Action,
}

/// `{id, name}` of an intent (block), bot or skill.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// `userRequest`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserRequest {
    /// What the user typed (or a button's message).
    pub utterance: String,
    /// The user.
    pub user: User,
    /// Present only on callback-enabled blocks of an approved AI chatbot.
    pub callback_url: Option<String>,
    /// The block.
    pub block: Named,
    /// `Asia/Seoul`…
    pub timezone: Option<String>,
    /// `ko`…
    pub lang: Option<String>,
}

/// `userRequest.user`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct User {
    /// The botUserKey.
    pub id: Option<String>,
    /// Always `botUserKey` today.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Channel user key, app user id, friendship.
    pub properties: UserProperties,
}

/// `userRequest.user.properties` (with the legacy snake_case keys).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserProperties {
    /// Stable per channel; the session key uses it.
    #[serde(alias = "plusfriend_user_key")]
    pub plusfriend_user_key: Option<String>,
    /// Only when the bot is linked to a Kakao Developers app.
    #[serde(alias = "app_user_id")]
    pub app_user_id: Option<String>,
    /// Only when the user added the channel.
    pub is_friend: Option<bool>,
    /// Legacy botUserKey.
    #[serde(alias = "bot_user_key")]
    pub bot_user_key: Option<String>,
}

/// `action`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Action {
    /// Skill id.
    pub id: Option<String>,
    /// Skill name.
    pub name: Option<String>,
    /// Parameters (strings, or JSON strings for plugins).
    pub params: serde_json::Map<String, Value>,
    /// Parameters with origin.
    pub detail_params: serde_json::Map<String, Value>,
    /// A quick reply's or button's `extra`.
    pub client_extra: Option<Value>,
}

/// Why a skill request cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the SkillPayload shape.
    #[error("malformed SkillPayload: {0}")]
    Malformed(String),
    /// No user key anywhere.
    #[error("SkillPayload without userRequest.user.id")]
    NoUser,
}

impl SkillPayload {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`PayloadError::Malformed`] when the body is not a JSON object of the expected shape.
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        if !value.is_object() {
            return Err(PayloadError::Malformed("the body is not a JSON object".to_owned()));
        }
        serde_json::from_value(value).map_err(|e| PayloadError::Malformed(e.to_string()))
    }

    /// The botUserKey (`user.id`, or the legacy property).
    pub fn bot_user_key(&self) -> Option<&str> {
        let user = &self.user_request.user;
        user.id.as_deref().or(user.properties.bot_user_key.as_deref()).filter(|k| !k.is_empty())
    }

    /// The conversation's peer: the plusfriendUserKey (stable per channel), else the botUserKey.
    ///
    /// # Errors
    /// [`PayloadError::NoUser`] when neither is present.
    pub fn peer(&self) -> Result<&str, PayloadError> {
        self.user_request
            .user
            .properties
            .plusfriend_user_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .or_else(|| self.bot_user_key())
            .ok_or(PayloadError::NoUser)
    }

    /// Image URLs sent through the secure-image plugin (`secureUrls` = `"List(url1, url2)"` inside a
    /// JSON-string parameter), in order.
    pub fn secure_image_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        let params =
            self.action.params.values().chain(self.action.detail_params.values().filter_map(|d| d.get("origin")));
        for value in params {
            let parsed: Option<Value> = match value {
                Value::String(s) if s.contains("secureUrls") => serde_json::from_str(s).ok(),
                Value::Object(_) if value.get("secureUrls").is_some() => Some(value.clone()),
                _ => None,
            };
            let Some(list) = parsed.as_ref().and_then(|v| v.get("secureUrls")).and_then(Value::as_str) else {
                continue;
            };
            let inner = list.trim().strip_prefix("List(").and_then(|s| s.strip_suffix(')')).unwrap_or(list);
            for url in inner.split(',').map(str::trim).filter(|u| u.starts_with("http")) {
                if !urls.iter().any(|u| u == url) {
                    urls.push(url.to_owned());
                }
            }
        }
        urls
    }

    /// Parameters other than plugin payloads, as `name=value` lines for the agent.
    pub fn plain_params(&self) -> Vec<(String, String)> {
        self.action
            .params
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) if !s.contains("secureUrls") && !s.is_empty() => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .collect()
    }
}

/// The KakaoTalk Channel webhook body (§5.6).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelEvent {
    /// `added` or `blocked`.
    pub event: String,
    /// The user's id (`app_user_id` or `open_id`).
    pub id: String,
    /// `app_user_id` or `open_id`.
    pub id_type: String,
    /// The channel's public id (`_ZeUTxl`).
    #[serde(alias = "plus_friend_public_id")]
    pub channel_public_id: Option<String>,
    /// The channel's uuid (`@example`).
    #[serde(alias = "plus_friend_uuid")]
    pub channel_uuid: Option<String>,
    /// RFC 3339 UTC.
    #[serde(alias = "timestamp")]
    pub updated_at: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_payload_and_ignores_unknown_fields() {
        let body = json!({
            "intent": {"id": "blk1", "name": "폴백 블록", "extra": {"reason": {"code": 1}}},
            "userRequest": {
                "timezone": "Asia/Seoul", "lang": "ko", "utterance": "배송 언제 와요?",
                "params": {"surface": "Kakaotalk.plusfriend"}, "block": {"id": "blk1", "name": "폴백 블록"},
                "user": {"id": "botuser1", "type": "botUserKey",
                         "properties": {"plusfriendUserKey": "pf1", "appUserId": "123", "isFriend": true}},
                "callbackUrl": "https://bot-api.kakao.com/v1/bots/b/callback/t"
            },
            "bot": {"id": "bot1", "name": "상점봇"},
            "action": {"id": "s1", "name": "agent", "params": {"size": "L", "n": 2}, "detailParams": {}, "clientExtra": {}},
            "flow": {"trigger": {"type": "TEXT_INPUT"}}, "contexts": [], "somethingNew": 1
        });
        let p = SkillPayload::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(p.user_request.utterance, "배송 언제 와요?");
        assert_eq!(p.peer().unwrap(), "pf1");
        assert_eq!(p.bot_user_key(), Some("botuser1"));
        assert_eq!(p.user_request.user.properties.app_user_id.as_deref(), Some("123"));
        assert_eq!(p.user_request.user.properties.is_friend, Some(true));
        assert_eq!(p.bot.id.as_deref(), Some("bot1"));
        assert_eq!(p.intent.name.as_deref(), Some("폴백 블록"));
        assert!(p.user_request.callback_url.is_some());
        assert_eq!(p.plain_params(), vec![("n".to_owned(), "2".to_owned()), ("size".to_owned(), "L".to_owned())]);
    }

    #[test]
    fn legacy_keys_and_missing_parts() {
        let p = SkillPayload::parse(br#"{"userRequest":{"user":{"properties":{"bot_user_key":"legacy"}}}}"#).unwrap();
        assert_eq!(p.peer().unwrap(), "legacy");
        assert_eq!(p.user_request.utterance, "");
        assert_eq!(SkillPayload::parse(b"{}").unwrap().peer(), Err(PayloadError::NoUser));
        assert!(matches!(SkillPayload::parse(b"{not json"), Err(PayloadError::Malformed(_))));
        assert!(matches!(SkillPayload::parse(b"[1]"), Err(PayloadError::Malformed(_))));
        assert!(matches!(SkillPayload::parse(br#"{"userRequest":{"utterance":5}}"#), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn secure_image_urls_are_extracted() {
        let plugin = json!({"privacyAgreement": "Y", "imageQuantity": "2",
            "secureUrls": "List(http://secure.kakaocdn.net/a.jpg, http://secure.kakaocdn.net/b.jpg)", "expire": "2026-01-01T00:00:00"});
        let body = json!({"userRequest": {"user": {"id": "u"}}, "action": {"params": {"secureimage": plugin.to_string()},
            "detailParams": {"secureimage": {"origin": plugin.to_string(), "value": plugin.to_string()}}}});
        let p = SkillPayload::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(p.secure_image_urls(), vec!["http://secure.kakaocdn.net/a.jpg", "http://secure.kakaocdn.net/b.jpg"]);
        assert!(p.plain_params().is_empty());
    }

    #[test]
    fn channel_webhook_body() {
        let e: ChannelEvent = serde_json::from_value(json!({"event":"added","id":"1234567890","id_type":"app_user_id",
            "channel_public_id":"_ZeUTxl","channel_uuid":"@example","updated_at":"2026-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!((e.event.as_str(), e.id.as_str(), e.id_type.as_str()), ("added", "1234567890", "app_user_id"));
        let legacy: ChannelEvent = serde_json::from_value(
            json!({"event":"blocked","id":"1","id_type":"open_id","plus_friend_public_id":"_x","timestamp":1}),
        )
        .unwrap();
        assert_eq!(legacy.channel_public_id.as_deref(), Some("_x"));
    }
}
