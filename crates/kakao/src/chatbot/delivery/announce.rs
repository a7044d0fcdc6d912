//! Announcing a kept answer through the Event API (an Event block the operator configured): the
//! user sees it on their next message. Best effort, paid per message; skipped for users who
//! blocked the channel.

use super::Outgoing;
use crate::chatbot::bot::Bot;
use crate::chatbot::event_api::{EventApi, UserType};
use crate::chatbot::now_ms;
use crate::chatbot::response::SkillResponse;
use crate::chatbot::state::PushTask;
use crate::chatbot::status::{record_push_task, user_blocked};
use clawbridge_channel::Bridge;
use serde_json::{Map, Value};

/// The announcement carries the answer's first 1000 characters as `text`.
const TEXT_CHARS: usize = 1000;

/// Pushes the configured late-answer event with the answer's first page, when the bot has one.
pub(super) async fn late_answer(bot: &Bot, bridge: &dyn Bridge, out: &Outgoing, first: &SkillResponse) {
    let settings = &bot.settings;
    let (Some(event), Some(key), Some(bot_id)) =
        (&settings.late_answer_event, &settings.rest_api_key, &settings.bot_id)
    else {
        return;
    };
    let Some(user) = &out.reply.bot_user_key else { return };
    if let Some(app_user) = &out.reply.app_user_id
        && user_blocked(bridge, "app_user_id", app_user).await.unwrap_or(false)
    {
        return;
    }
    let Ok(api) = EventApi::new(&bot.shared.config.bot_api_base_url, bot_id, key.clone()) else { return };
    let mut data = Map::new();
    data.insert("text".to_owned(), Value::String(first.plain_text().chars().take(TEXT_CHARS).collect()));
    match api.push(event, &data, UserType::BotUserKey, std::slice::from_ref(user), &Map::new()).await {
        Ok(outcomes) => {
            for o in outcomes {
                if let Some(task) = &o.task_id {
                    let record = PushTask {
                        account: settings.account.clone(),
                        event: event.clone(),
                        users: o.users,
                        status: o.status.clone(),
                        at: now_ms(),
                        source: "late-answer".to_owned(),
                    };
                    if let Err(e) = record_push_task(bridge, task, &record).await {
                        tracing::warn!(error = %e, "cannot record the Event API task");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "Event API push of a late answer failed"),
    }
}
