//! Kakao business messages — AlimTalk (approved-template notifications) and Brand Message
//! (FriendTalk's successor, channel-friend marketing) — which Kakao sells only through licensed
//! dealers (NHN Cloud, Solapi, Infobip), addressed by **phone number** from a **sender key**
//! (reference/bizmsg.md §1).
//!
//! This crate is the pure part: what is checked before any request leaves, so a send never fails
//! at Kakao because of us.
//! - [`phone`]: the forms Korean users write a number in, normalised once, in each dealer's form.
//! - [`template`]: AlimTalk templates as the operator declares them, rendered and validated
//!   (result 3016 "content does not match template" is prevented here, not discovered later).
//! - [`window`]: the 08:00–20:50 KST window outside which Brand Message (any ad) is refused (3022).
//! - [`codes`]: what Kakao's delivery result codes mean and which of them a retry can fix.
//! - [`webhook`]: who may post delivery results to the daemon's dealer webhooks.

pub mod brand;
pub mod client;
pub mod codes;
pub mod config;
pub mod dealer;
pub mod dispatch;
pub mod phone;
pub mod plugin;
pub mod send;
pub mod template;
pub mod webhook;
pub mod window;

pub use codes::ResultCode;
pub use phone::{PhoneError, PhoneNumber};
pub use plugin::BizmsgPlugin;
pub use template::{AlimTalkTemplate, Rendered, TemplateError};
pub use window::AdWindow;
