//! What the chatbot records for operators, read back typed: `clawbridge status` prints
//! [`summary`] ([`KakaoStatus::lines`]), `clawbridge kakao push` checks [`user_blocked`] and records [`record_push_task`].

pub use super::state::{CallbackRecord, ChannelEventRecord, ChannelUser, PushTask};

use super::state::{CALLBACKS, CHANNEL_EVENTS, CHANNEL_USERS, PUSH_TASKS, PUSH_TASKS_TTL};
use clawbridge_channel::{Bridge, BridgeError};
use clawbridge_core::time::format_utc;
use serde::Serialize;
use std::collections::BTreeMap;

/// Channel users counted (every user the channel webhook reported is one).
const USERS_COUNTED: u32 = 100_000;
/// Recent channel events and pushes shown.
const RECENT: u32 = 5;
/// Callbacks of the last week counted.
const CALLBACKS_COUNTED: u32 = 1_000;

/// The chatbot's records, summarised (the `kakao_chatbot` part of `clawbridge status --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KakaoStatus {
    /// Users by what the channel webhook last said of them.
    pub channel_users: ChannelUserCounts,
    /// The newest channel webhook events, newest first.
    pub recent_channel_events: Vec<ChannelEventRecord>,
    /// Callback outcomes of the last week by Kakao's status.
    pub callbacks_last_week: BTreeMap<String, u64>,
    /// The newest callback that did not succeed.
    pub last_callback_failure: Option<CallbackRecord>,
    /// The newest Event API tasks, newest first.
    pub recent_pushes: Vec<PushTaskEntry>,
}

/// Channel users by their last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ChannelUserCounts {
    /// Added the channel as a friend.
    pub added: usize,
    /// Blocked the channel.
    pub blocked: usize,
    /// Any other event.
    #[serde(skip)]
    pub other: usize,
}

/// An Event API task with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushTaskEntry {
    /// The task.
    #[serde(flatten)]
    pub task: PushTask,
    /// Its id.
    pub task_id: String,
}

impl KakaoStatus {
    /// The text lines of `clawbridge status`.
    pub fn lines(&self) -> Vec<String> {
        let users = self.channel_users;
        let mut lines = vec![format!(
            "kakao:   channel friends added {}, blocked {} (channel webhook)",
            users.added, users.blocked
        )];
        for event in &self.recent_channel_events {
            lines.push(format!(
                "  channel event {} {} at {}",
                event.event.as_deref().unwrap_or("?"),
                event.id.as_deref().unwrap_or("?"),
                event.received_at.map(format_utc).unwrap_or_default()
            ));
        }
        if self.callbacks_last_week.is_empty() {
            lines.push("  callbacks: none recorded".to_owned());
        } else {
            let parts: Vec<String> =
                self.callbacks_last_week.iter().map(|(status, n)| format!("{n} {status}")).collect();
            lines.push(format!("  callbacks (last week): {}", parts.join(", ")));
        }
        if let Some(failure) = &self.last_callback_failure {
            lines.push(format!(
                "  last callback failure: {} {} at {}",
                failure.status,
                failure.message,
                format_utc(failure.at)
            ));
        }
        for push in &self.recent_pushes {
            lines.push(format!(
                "  push {} event {} to {} user(s): {} at {}",
                push.task_id,
                push.task.event,
                push.task.users,
                push.task.status,
                format_utc(push.task.at)
            ));
        }
        lines
    }

    /// Whether the chatbot has left any record (users, callbacks or pushes).
    pub fn has_records(&self) -> bool {
        let users = self.channel_users;
        users.added + users.blocked + users.other > 0
            || !self.callbacks_last_week.is_empty()
            || !self.recent_pushes.is_empty()
    }
}

/// Reads the chatbot's records.
///
/// # Errors
/// The store is unreachable.
pub async fn summary(bridge: &dyn Bridge) -> Result<KakaoStatus, BridgeError> {
    let mut users = ChannelUserCounts::default();
    for user in CHANNEL_USERS.list(bridge, USERS_COUNTED).await? {
        match user.value.event.as_str() {
            "added" => users.added += 1,
            "blocked" => users.blocked += 1,
            _ => users.other += 1,
        }
    }
    let events = CHANNEL_EVENTS.list(bridge, RECENT).await?;
    let callbacks = CALLBACKS.list(bridge, CALLBACKS_COUNTED).await?;
    let mut by_status = BTreeMap::new();
    for entry in &callbacks {
        *by_status.entry(entry.value.status.clone()).or_insert(0) += 1;
    }
    let pushes = PUSH_TASKS.list(bridge, RECENT).await?;
    Ok(KakaoStatus {
        channel_users: users,
        recent_channel_events: events.into_iter().map(|e| e.value).collect(),
        callbacks_last_week: by_status,
        last_callback_failure: callbacks.into_iter().map(|e| e.value).find(|c| c.status != "SUCCESS"),
        recent_pushes: pushes.into_iter().map(|e| PushTaskEntry { task: e.value, task_id: e.key }).collect(),
    })
}

/// Whether the channel webhook last reported the user `id` (an `id_type` such as `app_user_id`)
/// as having blocked the channel.
///
/// # Errors
/// The store is unreachable.
pub async fn user_blocked(bridge: &dyn Bridge, id_type: &str, id: &str) -> Result<bool, BridgeError> {
    Ok(CHANNEL_USERS.get(bridge, &format!("{id_type}:{id}")).await?.is_some_and(|u| u.blocked()))
}

/// Records an Event API task (kept for a month).
///
/// # Errors
/// The store is unreachable.
pub async fn record_push_task(bridge: &dyn Bridge, task_id: &str, task: &PushTask) -> Result<(), BridgeError> {
    PUSH_TASKS.put(bridge, task_id, task, Some(PUSH_TASKS_TTL)).await
}
