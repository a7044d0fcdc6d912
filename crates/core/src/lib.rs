//! Pure domain code of clawbridge: no I/O, no runtime.
//!
//! # Layout
//! - [`agent`]: what the agent is given for a message (text, image attachments, media descriptions).
//! - [`clock`]: the wall clock as a value ([`clock::Clock`]), settable in tests.
//! - [`ids`]: newtypes for every identifier that crosses a crate boundary.
//! - [`message`]: the normalised inbound and outbound messages every channel produces and consumes.
//! - [`session`]: OpenClaw session keys (`agent:<agentId>:<channel>:direct:<peer>`).
//! - [`policy`]: DM access policy (`pairing | allowlist | open | disabled`) and `allowFrom`.
//! - [`pairing`]: OpenClaw-style pairing codes and their limits.
//! - [`retry`]: the send error classes and the one retry schedule ([`RetryPolicy`]).
//! - [`text`]: the agent's Markdown walked once (pulldown-cmark) into a chat app's style, and splitting long
//!   replies on paragraph, line and sentence boundaries.
//! - [`time`]: epoch milliseconds, the one time unit stored anywhere.

pub mod agent;
pub mod clock;
pub mod ids;
pub mod message;
pub mod pairing;
pub mod policy;
pub mod retry;
pub mod session;
pub mod text;
pub mod time;

pub use ids::{AccountId, ChannelId, IdempotencyKey, Lane, PeerId, PlatformMessageId};
pub use message::{
    ChannelData, InboundMessage, InboundOutcome, MediaKind, MediaRef, MessageKind, OutboundMessage, Receipt,
};
pub use retry::{RetryClass, RetryPolicy, SendError};
pub use time::EpochMs;
