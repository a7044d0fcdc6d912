//! The outbox accounts of the Kakao tools: a `kakao_send_me` / `kakao_send_friends` /
//! `kakao_push` call is an outbox row like any reply, so it has the outbox's lease, retries and
//! dead letters; these accounts are what the outbox worker sends those rows with. They reuse the
//! clients of the `kakao` commands (the Talk Message API client with its token store and quota
//! guard, the Event API client).

use super::calls::{KAKAO_EVENT_CHANNEL, KAKAO_TALK_CHANNEL};
use crate::commands::host::CommandHost;
use crate::config::Config;
use async_trait::async_trait;
use clawbridge_channel::{Account, Bridge};
use clawbridge_core::clock::now_ms;
use clawbridge_core::{AccountId, ChannelId, IdempotencyKey, OutboundMessage, Receipt, SendError};
use clawbridge_kakao::KakaoConfig;
use clawbridge_kakao::chatbot::status::{PushTask, record_push_task};
use clawbridge_kakao::chatbot::{BotSettings, EventApi, UserType};
use clawbridge_kakao::talk::models::FriendUuid;
use clawbridge_kakao::talk::template::{Link, Template};
use clawbridge_kakao::talk::{MessageContent, TalkClient};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The accounts to add to the registry for the published Kakao tools.
pub fn kakao_accounts(config: &Arc<Config>, bridge: Arc<dyn Bridge>) -> Vec<(ChannelId, Arc<dyn Account>)> {
    let Some(kakao) = config.channel::<KakaoConfig>(clawbridge_kakao::chatbot::CHANNEL) else {
        return Vec::new();
    };
    let mut accounts: Vec<(ChannelId, Arc<dyn Account>)> = Vec::new();
    if kakao.login.is_some() {
        accounts.push((
            ChannelId::new(KAKAO_TALK_CHANNEL),
            Arc::new(TalkAccount {
                kakao: kakao.clone(),
                host: CommandHost::new(config.clone(), clawbridge_kakao::chatbot::CHANNEL),
                client: OnceCell::new(),
            }),
        ));
    }
    if let Some(chatbot) = &kakao.chatbot {
        for bot in &chatbot.bots {
            accounts.push((
                ChannelId::new(KAKAO_EVENT_CHANNEL),
                Arc::new(EventAccount {
                    base_url: chatbot.bot_api_base_url.clone(),
                    bot: bot.clone(),
                    bridge: bridge.clone(),
                }),
            ));
        }
    }
    accounts
}

#[derive(Deserialize)]
struct TalkExtra {
    talk: TalkRequest,
}

#[derive(Deserialize)]
struct TalkRequest {
    #[serde(default)]
    to: Vec<String>,
    text: String,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    button_title: Option<String>,
}

/// Kakao Login account `default`: "chat with me" and friends.
struct TalkAccount {
    kakao: KakaoConfig,
    host: CommandHost,
    client: OnceCell<TalkClient>,
}

#[async_trait]
impl Account for TalkAccount {
    fn id(&self) -> AccountId {
        AccountId::new("default")
    }

    async fn send(&self, msg: &OutboundMessage, _key: &IdempotencyKey) -> Result<Receipt, SendError> {
        let extra: TalkExtra = msg
            .extra
            .decode()
            .ok()
            .flatten()
            .ok_or_else(|| SendError::Permanent("a kakao-talk row without its message".to_owned()))?;
        let request = extra.talk;
        let client = self
            .client
            .get_or_try_init(|| clawbridge_kakao::cli::talk::talk_client(&self.kakao, &self.host, msg.account.as_str()))
            .await
            .map_err(|e| SendError::Permanent(format!("{e:#}")))?;
        let link = request.link.as_deref().map(Link::web).unwrap_or_default();
        let mut template = Template::text(&request.text, link);
        if let Some(title) = &request.button_title {
            template = template.button_title(title);
        }
        let content = MessageContent::from(template);
        if request.to.is_empty() {
            client.send_memo(&content).await.map_err(|e| e.to_send_error())?;
            return Ok(Receipt { platform_message_id: None });
        }
        let to: Vec<FriendUuid> = request.to.iter().map(|u| FriendUuid::from(u.as_str())).collect();
        let report = client.send_to_friends(&to, &content).await.map_err(|e| e.to_send_error())?;
        if report.sent.is_empty() {
            let reasons: Vec<String> = report.failed.iter().map(|f| format!("{}: {}", f.uuid, f.reason)).collect();
            return Err(SendError::Permanent(format!("no friend received it ({})", reasons.join("; "))));
        }
        Ok(Receipt { platform_message_id: Some(format!("{} of {} friend(s)", report.sent.len(), to.len())) })
    }
}

#[derive(Deserialize)]
struct EventExtra {
    event: EventRequest,
}

#[derive(Deserialize)]
struct EventRequest {
    name: String,
    #[serde(default)]
    data: Map<String, Value>,
    #[serde(default)]
    user_type: Option<String>,
}

/// One chatbot's Event API.
struct EventAccount {
    base_url: String,
    bot: BotSettings,
    bridge: Arc<dyn Bridge>,
}

#[async_trait]
impl Account for EventAccount {
    fn id(&self) -> AccountId {
        AccountId::new(self.bot.account.clone())
    }

    async fn send(&self, msg: &OutboundMessage, _key: &IdempotencyKey) -> Result<Receipt, SendError> {
        let extra: EventExtra = msg
            .extra
            .decode()
            .ok()
            .flatten()
            .ok_or_else(|| SendError::Permanent("a kakao-event row without its event".to_owned()))?;
        let (Some(bot_id), Some(key)) = (self.bot.bot_id.as_deref(), self.bot.rest_api_key.clone()) else {
            return Err(SendError::Permanent(
                "the Event API needs KAKAO_BOT_ID and KAKAO_REST_API_KEY for this bot".to_owned(),
            ));
        };
        let user_type: UserType = extra
            .event
            .user_type
            .as_deref()
            .unwrap_or("plusfriendUserKey")
            .parse()
            .map_err(|e: String| SendError::Permanent(e))?;
        // As `clawbridge kakao push`: users who blocked the channel get nothing (the channel
        // webhook names users by app user id, so only those can be checked).
        if user_type == UserType::AppUserId
            && clawbridge_kakao::chatbot::status::user_blocked(self.bridge.as_ref(), "app_user_id", msg.peer.as_str())
                .await
                .map_err(|e| SendError::transient(e.0))?
        {
            return Err(SendError::Permanent("the user blocked the KakaoTalk channel".to_owned()));
        }
        let api = EventApi::new(&self.base_url, bot_id, key).map_err(|e| SendError::Permanent(e.to_string()))?;
        let users = vec![msg.peer.to_string()];
        let outcomes =
            api.push(&extra.event.name, &extra.event.data, user_type, &users, &Map::new()).await.map_err(|e| {
                if e.is_transient() { SendError::transient(e.to_string()) } else { SendError::Permanent(e.to_string()) }
            })?;
        let outcome =
            outcomes.into_iter().next().ok_or_else(|| SendError::Permanent("no batch was sent".to_owned()))?;
        if let Some(task) = &outcome.task_id {
            let entry = PushTask {
                account: self.bot.account.clone(),
                event: extra.event.name.clone(),
                users: outcome.users,
                status: outcome.status.clone(),
                at: now_ms(),
                source: "tool".to_owned(),
            };
            let _ = record_push_task(self.bridge.as_ref(), task, &entry).await;
        }
        if outcome.status != "SUCCESS" {
            return Err(SendError::Permanent(format!(
                "the Event API answered {}{}",
                outcome.status,
                outcome.message.map(|m| format!(": {m}")).unwrap_or_default()
            )));
        }
        Ok(Receipt { platform_message_id: outcome.task_id.map(|t| format!("task {t}")) })
    }
}
