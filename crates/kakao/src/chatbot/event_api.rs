//! The Event API (reference/kakao.md §5.4): bot-initiated messages to channel friends (paid).
//!
//! `POST {base}/v2/bots/{botId}/talk` with `Authorization: KakaoAK {REST API key}` and at most
//! 100 users per request; `GET {base}/v1/tasks/{taskId}` reports per-user results.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Users per Event API request.
pub const MAX_USERS_PER_REQUEST: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(15);

/// How a push names its users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserType {
    /// `user.id` of a SkillPayload (per bot).
    #[default]
    #[serde(rename = "botUserKey")]
    BotUserKey,
    /// The channel's user key (stable per channel).
    #[serde(rename = "plusfriendUserKey")]
    PlusfriendUserKey,
    /// The Kakao Login user id (bot linked to an app).
    #[serde(rename = "appUserId")]
    AppUserId,
}

impl UserType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BotUserKey => "botUserKey",
            Self::PlusfriendUserKey => "plusfriendUserKey",
            Self::AppUserId => "appUserId",
        }
    }
}

impl std::str::FromStr for UserType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "botUserKey" => Ok(Self::BotUserKey),
            "plusfriendUserKey" => Ok(Self::PlusfriendUserKey),
            "appUserId" => Ok(Self::AppUserId),
            other => Err(format!("unknown user type {other:?}: use botUserKey, plusfriendUserKey or appUserId")),
        }
    }
}

/// What Kakao answered to one batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// Users in the batch.
    pub users: usize,
    /// The task id to ask for per-user results.
    pub task_id: Option<String>,
    /// `SUCCESS`, `FAIL` or `ERROR`.
    pub status: String,
    /// Kakao's message, if any.
    pub message: Option<String>,
}

/// Per-user results of a task (the shape is parsed leniently).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskReport {
    /// The task's status.
    pub status: Option<String>,
    /// `(user id, status or reason)` found in the report.
    pub users: Vec<(String, String)>,
    /// The raw report.
    pub raw: Value,
}

/// An Event API failure, explained for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventApiError {
    /// Kakao answered with an error status.
    #[error("Event API HTTP {status}: {message}. {hint}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Kakao's message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// No answer (network, timeout); retrying later may work.
    #[error("Event API unreachable: {0}")]
    Network(String),
    /// The request could not be built.
    #[error("{0}")]
    Invalid(String),
}

impl EventApiError {
    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            Self::Network(_) => true,
            Self::Invalid(_) => false,
        }
    }
}

/// A client of one bot's Event API.
#[derive(Clone)]
pub struct EventApi {
    http: reqwest::Client,
    base_url: String,
    bot_id: String,
    rest_api_key: SecretString,
}

impl std::fmt::Debug for EventApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventApi")
            .field("base_url", &self.base_url)
            .field("bot_id", &self.bot_id)
            .finish_non_exhaustive()
    }
}

impl EventApi {
    /// A client for `bot_id` at `base_url` (`https://bot-api.kakao.com`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base_url: &str, bot_id: &str, rest_api_key: SecretString) -> Result<Self, EventApiError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EventApiError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), bot_id: bot_id.to_owned(), rest_api_key })
    }

    /// Sends `event` to `users` in batches of at most 100; returns one outcome per batch, in order.
    /// A batch failing does not stop the others: its outcome has status `ERROR` and the reason.
    ///
    /// # Errors
    /// Only when the first batch fails with a permanent error (wrong key, unknown bot…): the
    /// explanation applies to every batch, so the rest are not tried.
    pub async fn push(
        &self,
        event: &str,
        data: &Map<String, Value>,
        user_type: UserType,
        users: &[String],
        params: &Map<String, Value>,
    ) -> Result<Vec<BatchOutcome>, EventApiError> {
        if event.trim().is_empty() {
            return Err(EventApiError::Invalid(
                "the event name is empty: use the name of an Event block's event".into(),
            ));
        }
        let mut outcomes = Vec::new();
        for (i, batch) in users.chunks(MAX_USERS_PER_REQUEST).enumerate() {
            let body = json!({
                "event": {"name": event, "data": data},
                "user": batch.iter().map(|id| json!({"type": user_type.as_str(), "id": id})).collect::<Vec<_>>(),
                "params": params,
            });
            match self.post_batch(&body).await {
                Ok(mut outcome) => {
                    outcome.users = batch.len();
                    outcomes.push(outcome);
                }
                Err(e) if i == 0 && !e.is_transient() => return Err(e),
                Err(e) => outcomes.push(BatchOutcome {
                    users: batch.len(),
                    task_id: None,
                    status: "ERROR".to_owned(),
                    message: Some(e.to_string()),
                }),
            }
        }
        Ok(outcomes)
    }

    async fn post_batch(&self, body: &Value) -> Result<BatchOutcome, EventApiError> {
        let url = format!("{}/v2/bots/{}/talk", self.base_url, self.bot_id);
        let response = self
            .http
            .post(url)
            .header("Authorization", format!("KakaoAK {}", self.rest_api_key.expose_secret()))
            .json(body)
            .send()
            .await
            .map_err(|e| EventApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| EventApiError::Network(e.without_url().to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(explain(status, &value, &text));
        }
        Ok(BatchOutcome {
            users: 0,
            task_id: value
                .get("taskId")
                .and_then(|v| v.as_str().map(str::to_owned).or_else(|| Some(v.to_string())))
                .filter(|s| s != "null"),
            status: value.get("status").and_then(Value::as_str).unwrap_or("UNKNOWN").to_owned(),
            message: value.get("message").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Per-user results of a task.
    ///
    /// # Errors
    /// HTTP and network failures, explained.
    pub async fn task(&self, task_id: &str) -> Result<TaskReport, EventApiError> {
        let url = format!("{}/v1/tasks/{}", self.base_url, task_id);
        let response = self
            .http
            .get(url)
            .header("Authorization", format!("KakaoAK {}", self.rest_api_key.expose_secret()))
            .send()
            .await
            .map_err(|e| EventApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| EventApiError::Network(e.without_url().to_string()))?;
        let raw: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(explain(status, &raw, &text));
        }
        Ok(TaskReport {
            status: raw.get("status").and_then(Value::as_str).map(str::to_owned),
            users: per_user(&raw),
            raw,
        })
    }
}

/// Every object in an array of the report that names a user, with its status or reason.
fn per_user(raw: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![raw];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => {
                for item in items {
                    let id = ["id", "userId", "userKey"].iter().find_map(|k| item.get(*k)).and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    });
                    match id {
                        Some(id) => {
                            let result = ["status", "result", "message", "reason"]
                                .iter()
                                .find_map(|k| item.get(*k).and_then(Value::as_str))
                                .unwrap_or("?");
                            found.push((id, result.to_owned()));
                        }
                        None => stack.push(item),
                    }
                }
            }
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    found
}

fn explain(status: u16, body: &Value, text: &str) -> EventApiError {
    let message = body
        .get("message")
        .or_else(|| body.get("msg"))
        .and_then(Value::as_str)
        .map_or_else(|| text.chars().take(200).collect(), str::to_owned);
    let hint = match status {
        401 => {
            "The REST API key was refused: set KAKAO_REST_API_KEY to the REST API key of the Kakao Developers app linked to this bot"
        }
        403 => {
            "The bot may not use the Event API: it needs a business-verified channel, a biz app with Kakao Login, and a wallet connected to the bot (15 KRW per message)"
        }
        404 => "Unknown bot or task: check KAKAO_BOT_ID (챗봇 관리자센터 > 설정 > 봇 ID) and KAKAO_BOT_API_BASE_URL",
        400 => {
            "Check that the event name matches the event of an Event block of this bot, that the block is deployed, and that the users are channel friends of the right type"
        }
        429 => "Too many requests: try again later",
        s if s >= 500 => "Kakao's side failed: try again later",
        _ => "See the message",
    };
    EventApiError::Http { status, message, hint: hint.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_results_are_found_anywhere() {
        let raw = json!({"taskId":"t","status":"SUCCESS","results":[{"id":"u1","status":"SUCCESS"},{"userId":"u2","message":"not a friend"}]});
        assert_eq!(per_user(&raw), vec![("u1".into(), "SUCCESS".into()), ("u2".into(), "not a friend".into())]);
    }

    #[test]
    fn errors_are_explained_and_classified() {
        let e = explain(401, &json!({"message":"invalid key"}), "");
        assert!(e.to_string().contains("KAKAO_REST_API_KEY") && e.to_string().contains("invalid key"));
        assert!(!e.is_transient());
        assert!(explain(503, &Value::Null, "busy").is_transient());
        assert_eq!("plusfriendUserKey".parse::<UserType>(), Ok(UserType::PlusfriendUserKey));
        assert!("x".parse::<UserType>().is_err());
    }
}
