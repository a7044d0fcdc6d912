//! A Kakao Channel's 1:1 chat through a chatbot skill (reference/kakao.md §5).
//!
//! # Layout
//! - [`config`]: `[kakao.chatbot]` and the `KAKAO_*` chatbot variables.
//! - [`payload`]: SkillPayload and the channel webhook body, parsed leniently.
//! - [`response`]: SkillResponse 2.0 with its limits.
//! - [`render`]: the agent's answer → SkillResponse pages (Markdown stripped, "더 보기").
//! - [`event_api`]: bot-initiated messages (Event API) and task results.
//! - [`account`]: the connector and bot accounts: the skill endpoint with its timing (inline,
//!   callback, "still working" + next utterance) and `send`.
//! - `webhook`: the channel webhook (`added`/`blocked`).
//!
//! # Timing of a turn
//! The skill handler persists the utterance (`Bridge::accept`) and waits for the answer until the
//! sync deadline (default 4.0 s, at most 4.5 s, counted from the request's arrival). The pipeline
//! runs the agent and calls [`account::BotAccount`]'s `send` with the rendered SkillResponse:
//! handed to the waiting handler when it is still waiting (inline answer); otherwise POSTed once
//! to the `callbackUrl` (the handler answered `useCallback:true`), or kept for the user's next
//! utterance (the handler answered "still working").

pub mod account;
pub mod config;
pub mod event_api;
pub mod payload;
pub mod render;
pub mod response;
mod webhook;

pub use account::{BotAccount, KakaoChatbot};
pub use config::{BotSettings, ChatbotConfig};
pub use event_api::{EventApi, EventApiError, UserType};
pub use response::SkillResponse;

/// Store namespaces of the chatbot (shared with `clawbridge status` and `clawbridge kakao push`).
pub mod ns {
    /// `added`/`blocked` per user: key `<id_type>:<id>`.
    pub const CHANNEL_USERS: &str = "kakao.channel-users";
    /// Recent channel webhook events: key `<received_at>-<resource id>`.
    pub const CHANNEL_EVENTS: &str = "kakao.channel-events";
    /// Callback outcomes: key `<account>/<message id>`.
    pub const CALLBACKS: &str = "kakao.callbacks";
    /// Event API tasks: key task id.
    pub const PUSH_TASKS: &str = "kakao.push-tasks";
}
