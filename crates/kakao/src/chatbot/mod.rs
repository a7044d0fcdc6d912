//! A Kakao Channel's 1:1 chat through a chatbot skill (reference/kakao.md §5).
//!
//! # Layout
//! Formats and settings (no I/O):
//! - [`config`]: `[kakao.chatbot]` and the `KAKAO_*` chatbot variables.
//! - [`payload`]: SkillPayload and the channel webhook body, parsed leniently.
//! - [`response`]: SkillResponse 2.0 with its limits.
//! - [`render`]: the agent's answer → SkillResponse pages (Markdown stripped, "더 보기").
//! - `extra`: [`KakaoTurn`] and [`KakaoReply`], the chatbot's own data on messages.
//! - `state`: every store namespace of the chatbot, with the type of its values.
//! - `rendezvous`: the turn rendezvous, a state enum with pure transitions.
//!
//! The channel:
//! - `connector`: [`KakaoChatbot`], the connector (routes, rendering, agent context).
//! - `account`: [`BotAccount`], one bot as the pipeline sees it (`send`, `inbound_finished`).
//! - `bot`: what a bot's parts share (settings, its turns, the HTTP client, the bridge).
//! - `auth` and `skill`: `POST /kakao/skill`, authenticated by secret header and `bot.id`, and
//!   the turn's timing (inline, callback, "still working").
//! - `delivery`: where an answer goes (inline, callback, next turn, Event API announcement).
//! - `media`: the secure-image plugin's pictures, downloaded for the agent.
//! - `webhook`: the channel webhook (`added`/`blocked`).
//! - [`event_api`]: bot-initiated messages (Event API) and task results.
//! - [`status`]: what the chatbot recorded, summarised for `clawbridge status` and `kakao push`.
//!
//! # Timing of a turn
//! The skill handler persists the utterance (`Bridge::accept`) and waits for the answer until the
//! sync deadline (default 4.0 s, at most 4.5 s, counted from the request's arrival). The pipeline
//! runs the agent and calls [`BotAccount`]'s `send` with the rendered SkillResponse: handed to the
//! waiting handler when it is still waiting (inline answer); otherwise POSTed once to the
//! `callbackUrl` (the handler answered `useCallback:true`), or kept for the user's next utterance
//! (the handler answered "still working"). When the handler is another replica's, the answer is
//! kept in the store for it (see `rendezvous`).

pub mod config;
pub mod event_api;
pub mod payload;
pub mod render;
pub mod response;
pub mod status;

mod account;
mod auth;
mod bot;
mod connector;
mod delivery;
mod extra;
mod media;
mod rendezvous;
mod skill;
mod state;
mod webhook;

pub use account::BotAccount;
pub use config::{BotSettings, ChatbotConfig};
pub use connector::KakaoChatbot;
pub use delivery::CALLBACK_WINDOW_MS;
pub use event_api::{EventApi, EventApiError, UserType};
pub use extra::{KakaoReply, KakaoTurn};
pub use response::SkillResponse;

use clawbridge_core::EpochMs;

/// The channel id.
pub const CHANNEL: &str = "kakao";

/// Store namespaces of the chatbot that operators see (`clawbridge status`, `clawbridge kakao push`).
/// Their value types are in [`status`].
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

/// Wall-clock time in epoch milliseconds: the chatbot's only clock.
fn now_ms() -> EpochMs {
    clawbridge_core::clock::now_ms()
}
