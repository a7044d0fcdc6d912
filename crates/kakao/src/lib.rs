//! KakaoTalk (reference/kakao.md).
//!
//! - [`chatbot`]: the chatbot skill server, the AI-chatbot callback, the Event API push and the
//!   channel add/block webhook (a Kakao Channel's 1:1 chat).
//! - [`talk`]: Kakao Login (OAuth 2.0) and the Talk Message API (send to me, friends, templates).
//! - [`config`]: the shared `[kakao]` settings.
//! - [`plugin`]: the registration with the bridge (settings, chatbot connector, `doctor`,
//!   `status`, the `kakao` subcommand).
//! - [`cli`]: `clawbridge kakao …` (Event API pushes, Kakao Login, the Talk Message API).

#![warn(missing_docs)]

pub mod chatbot;
pub mod cli;
pub mod config;
pub mod plugin;
pub mod talk;

pub use config::KakaoConfig;
pub use plugin::KakaoPlugin;
