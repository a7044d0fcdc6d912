//! The JSON shapes of kauth and kapi responses (reference/kakao.md §1–3). Lenient: unknown fields
//! are ignored and optional ones default, so a new Kakao field never breaks parsing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /v2/user/me`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct UserMe {
    /// The app user id.
    pub id: i64,
    /// When the user connected to the app (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    /// App-defined properties (`nickname`, `profile_image`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Map<String, Value>>,
    /// The account part (profile, email, … with their `*_needs_agreement` flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kakao_account: Option<KakaoAccount>,
    /// `{"uuid": …}` for apps with partner access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_partner: Option<Value>,
}

impl UserMe {
    /// The nickname from the profile, else from the properties.
    pub fn nickname(&self) -> Option<&str> {
        self.kakao_account
            .as_ref()
            .and_then(|a| a.profile.as_ref())
            .and_then(|p| p.nickname.as_deref())
            .or_else(|| self.properties.as_ref().and_then(|p| p.get("nickname")).and_then(Value::as_str))
    }
}

/// `kakao_account` of [`UserMe`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct KakaoAccount {
    /// Profile (nickname, images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Email, when consented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Everything else, kept as-is for `--json`.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `kakao_account.profile`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Profile {
    /// Nickname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Thumbnail URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_image_url: Option<String>,
    /// Profile image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_image_url: Option<String>,
}

/// `GET /v1/user/access_token_info`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AccessTokenInfo {
    /// The app user id.
    pub id: i64,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The app id.
    #[serde(default)]
    pub app_id: i64,
}

/// `GET /v1/api/talk/profile`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct TalkProfile {
    /// KakaoTalk nickname.
    #[serde(rename = "nickName", default)]
    pub nick_name: Option<String>,
    /// Profile image.
    #[serde(rename = "profileImageURL", default)]
    pub profile_image_url: Option<String>,
    /// Thumbnail.
    #[serde(rename = "thumbnailURL", default)]
    pub thumbnail_url: Option<String>,
}

/// A friend's id for messages: `uuid` in the friends list, an entry of `receiver_uuids`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FriendUuid(String);

impl FriendUuid {
    /// Wraps a uuid.
    pub fn new(uuid: impl Into<String>) -> Self {
        Self(uuid.into())
    }

    /// The uuid.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FriendUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for FriendUuid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for FriendUuid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for FriendUuid {
    fn from(uuid: &str) -> Self {
        Self::new(uuid)
    }
}

impl From<String> for FriendUuid {
    fn from(uuid: String) -> Self {
        Self(uuid)
    }
}

/// One friend of `GET /v1/api/talk/friends`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Friend {
    /// App user id (only for some apps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The id to send messages to (`receiver_uuids`).
    pub uuid: FriendUuid,
    /// Nickname.
    #[serde(default)]
    pub profile_nickname: Option<String>,
    /// Thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_thumbnail_image: Option<String>,
    /// Marked as favourite.
    #[serde(default)]
    pub favorite: bool,
    /// Whether the friend accepts messages.
    #[serde(default = "yes")]
    pub allowed_msg: bool,
}

fn yes() -> bool {
    true
}

/// A page of friends.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct FriendsPage {
    /// The friends of this page.
    #[serde(default)]
    pub elements: Vec<Friend>,
    /// All friends.
    #[serde(default)]
    pub total_count: u64,
    /// Favourites among them.
    #[serde(default)]
    pub favorite_count: u64,
    /// The previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_url: Option<String>,
    /// The next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_url: Option<String>,
}

/// Paging of the friends list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendsQuery {
    /// First friend (0-based).
    pub offset: u32,
    /// Friends per page (Kakao allows up to 100).
    pub limit: u32,
    /// `asc` or `desc`.
    pub order: FriendOrderDirection,
    /// `nickname` or `favorite`.
    pub friend_order: FriendOrder,
}

impl Default for FriendsQuery {
    fn default() -> Self {
        Self { offset: 0, limit: 100, order: FriendOrderDirection::Asc, friend_order: FriendOrder::Favorite }
    }
}

/// `order` of the friends list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FriendOrderDirection {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl FriendOrderDirection {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// `friend_order` of the friends list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FriendOrder {
    /// By nickname.
    Nickname,
    /// Favourites first.
    Favorite,
}

impl FriendOrder {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nickname => "nickname",
            Self::Favorite => "favorite",
        }
    }
}

/// The response of a friends send.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct FriendsSendResponse {
    /// Receivers that got the message.
    #[serde(default)]
    pub successful_receiver_uuids: Vec<FriendUuid>,
    /// Receivers that did not, grouped by error.
    #[serde(default)]
    pub failure_info: Vec<FailureInfo>,
}

/// One entry of `failure_info`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct FailureInfo {
    /// The Kakao error code (-532 …).
    pub code: i64,
    /// Kakao's message.
    #[serde(default)]
    pub msg: String,
    /// The receivers that failed this way.
    #[serde(default)]
    pub receiver_uuids: Vec<FriendUuid>,
}

/// `POST /v2/api/talk/message/image/upload`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ImageUploadResult {
    /// `{"original": {…}}`.
    pub infos: ImageInfos,
}

/// `infos` of [`ImageUploadResult`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ImageInfos {
    /// The uploaded image.
    pub original: ImageInfo,
}

/// An uploaded image: its URL goes into templates (`image_url`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ImageInfo {
    /// Where Kakao serves it.
    pub url: String,
    /// MIME type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Bytes.
    #[serde(default)]
    pub length: Option<u64>,
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
}

/// `GET /v2/api/talk/channels`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ChannelRelations {
    /// The user.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// One entry per asked channel.
    #[serde(default)]
    pub channels: Vec<ChannelRelation>,
}

/// The user's relation to one KakaoTalk Channel.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ChannelRelation {
    /// `_abc123`.
    #[serde(default)]
    pub channel_public_id: Option<String>,
    /// `ADDED`, `BLOCKED` or `NONE`.
    #[serde(default)]
    pub relation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_shapes_parse() {
        let me: UserMe = serde_json::from_str(
            r#"{"id":42,"connected_at":"2026-01-01T00:00:00Z","properties":{"nickname":"P"},
                "kakao_account":{"profile_nickname_needs_agreement":false,"profile":{"nickname":"Kim","is_default_image":true}},
                "for_partner":{"uuid":"u"}}"#,
        )
        .unwrap();
        assert_eq!(me.nickname(), Some("Kim"));
        let page: FriendsPage = serde_json::from_str(
            r#"{"elements":[{"id":1,"uuid":"abc","profile_nickname":"Lee","profile_thumbnail_image":"http://x","favorite":true,"allowed_msg":true}],
                "total_count":1,"favorite_count":1,"after_url":null}"#,
        )
        .unwrap();
        assert_eq!(page.elements[0].uuid, FriendUuid::from("abc"));
        let sent: FriendsSendResponse = serde_json::from_str(
            r#"{"successful_receiver_uuids":["a"],"failure_info":[{"code":-532,"msg":"daily limit","receiver_uuids":["b"]}]}"#,
        )
        .unwrap();
        assert_eq!(sent.failure_info[0].code, -532);
        let profile: TalkProfile =
            serde_json::from_str(r#"{"nickName":"K","profileImageURL":"http://p","thumbnailURL":"http://t"}"#).unwrap();
        assert_eq!(profile.nick_name.as_deref(), Some("K"));
        let up: ImageUploadResult = serde_json::from_str(
            r#"{"infos":{"original":{"url":"http://k/i.png","content_type":"image/png","length":3,"width":1,"height":1}}}"#,
        )
        .unwrap();
        assert_eq!(up.infos.original.url, "http://k/i.png");
    }
}
