//! How a channel crate plugs into clawbridge (DESIGN.md §2).
//!
//! Two levels, after mautrix bridgev2 and OpenClaw's channel plugins:
//! - a [`Connector`] per channel (static facts: id, capabilities, how replies render), and
//! - an [`Account`] per configured account (a WhatsApp number, a Kakao bot) that serves
//!   webhooks, runs pollers and sends.
//!
//! A channel never touches the database: everything durable goes through the [`Bridge`]
//! handle in its [`AccountContext`] (persist inbound, delivery statuses, cursors, dedup keys);
//! [`state::StateSpace`] gives the channel's own small values a type. A channel crate registers
//! with the binary through one [`plugin::ChannelPlugin`].

pub mod cli;
pub mod config_file;
pub mod plugin;
pub mod state;

use async_trait::async_trait;
use clawbridge_core::policy::AccessPolicy;
use clawbridge_core::{
    AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, InboundOutcome, MediaKind, OutboundMessage, Receipt,
    SendError, text::chunk_text,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a channel can carry, as data (the pipeline renders replies with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Longest text one message may have, in characters.
    pub max_text_chars: usize,
    /// Media kinds the channel can send.
    pub media: Vec<MediaKind>,
    /// Whether a message can quote the message it answers.
    pub replies: bool,
    /// Whether the channel can show a typing indicator while the agent works.
    pub typing: bool,
}

/// A channel: the static half of the plug-in.
pub trait Connector: Send + Sync + 'static {
    /// The channel id (`whatsapp`, `kakao`, …).
    fn id(&self) -> ChannelId;

    /// What the channel can carry.
    fn capabilities(&self) -> Capabilities;

    /// The configured accounts.
    fn accounts(&self) -> Vec<Arc<dyn Account>>;

    /// HTTP routes the channel serves on the bridge's one listener (webhooks), if any.
    ///
    /// Routes belong to the connector, not to an account: one webhook URL usually serves every
    /// account of a channel (several WhatsApp numbers, several Kakao bots), and the handler picks
    /// the account from the request. Called once, when the daemon starts.
    fn routes(&self, ctx: &RouteContext) -> Option<axum::Router> {
        let _ = ctx;
        None
    }

    /// Turns the agent's visible reply into the messages to send, in order.
    ///
    /// The default splits the text at the channel's length limit on paragraph and sentence
    /// boundaries and quotes the user's message in the first part.
    fn render_reply(&self, to: &InboundMessage, reply: &str) -> Vec<OutboundMessage> {
        let caps = self.capabilities();
        chunk_text(reply, caps.max_text_chars)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut msg = OutboundMessage::reply_text(to, part);
                if i > 0 || !caps.replies {
                    msg.reply_to = None;
                }
                msg
            })
            .collect()
    }

    /// The message that tells an unknown sender how to get access (DM policy `pairing`).
    fn pairing_text(&self, code: &str) -> String {
        format!(
            "Hi! This assistant only talks to people its owner has approved. \
             Your pairing code is {code} (valid for 1 hour). Send it to the owner so they can approve you."
        )
    }

    /// Channel context for the agent's system prompt (who is talking, how replies render).
    /// Never includes user-controlled text as instructions.
    fn agent_context(&self, msg: &InboundMessage) -> String {
        let who = match &msg.sender_name {
            Some(name) => format!("{name} ({})", msg.peer),
            None => msg.peer.to_string(),
        };
        format!(
            "You are talking with {who}, an external user on {channel} (account {account}). \
             Reply in plain conversational text; long answers are split into several messages.",
            channel = msg.channel,
            account = msg.account,
        )
    }
}

/// One configured account of a channel: the running half of the plug-in.
#[async_trait]
pub trait Account: Send + Sync + 'static {
    /// The account id (`default` when the channel has one account).
    fn id(&self) -> AccountId;

    /// Who may talk to the agent through this account.
    fn access_policy(&self) -> AccessPolicy {
        AccessPolicy::default()
    }

    /// Long-running work (pollers, token refresh). Must return soon after `ctx.cancel` fires.
    ///
    /// # Errors
    /// A [`ChannelError`] ends the account; the bridge reports it in `status` and `/readyz`.
    async fn run(&self, ctx: AccountContext) -> Result<(), ChannelError> {
        ctx.cancel.cancelled().await;
        Ok(())
    }

    /// Sends one message. Must be safe to call again after a crash for the same message: `key`
    /// is the outbox row's idempotency key, the same on every attempt of this message, to pass
    /// to the platform where it has idempotency (a dealer's idempotency header) or to claim a
    /// one-time delivery with.
    ///
    /// # Errors
    /// A classified [`SendError`]; the outbox decides about retries from its class.
    async fn send(&self, msg: &OutboundMessage, key: &IdempotencyKey) -> Result<Receipt, SendError>;

    /// Called when the agent starts working on `msg` (mark as read, typing indicator).
    /// Best effort: failures are the channel's to log.
    async fn agent_started(&self, msg: &InboundMessage) {
        let _ = msg;
    }

    /// Called once an inbound message is finished and its `replies` are in the outbox, with how it
    /// ended. Lets a synchronous channel (a Kakao skill request waiting for its answer) stop
    /// waiting when no reply will come. Must not block: the inbox worker awaits it.
    async fn inbound_finished(&self, msg: &InboundMessage, outcome: InboundOutcome, replies: usize) {
        let _ = (msg, outcome, replies);
    }
}

/// What a connector is given to build its routes.
#[derive(Clone)]
pub struct RouteContext {
    /// Durable state and the inbound queue.
    pub bridge: Arc<dyn Bridge>,
}

impl std::fmt::Debug for RouteContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteContext").finish_non_exhaustive()
    }
}

/// What an account is given when it starts.
#[derive(Clone)]
pub struct AccountContext {
    /// The channel.
    pub channel: ChannelId,
    /// The account.
    pub account: AccountId,
    /// Durable state and the inbound queue.
    pub bridge: Arc<dyn Bridge>,
    /// Where the account reports its health (shown by `status`, `/readyz`).
    pub status: Arc<watch::Sender<AccountStatus>>,
    /// Fires on shutdown.
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for AccountContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountContext").field("channel", &self.channel).field("account", &self.account).finish()
    }
}

/// Health of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    /// Starting up.
    Starting,
    /// Working.
    Running,
    /// Working with problems (e.g. polling fails, retrying).
    Degraded(String),
    /// Stopped with an error that needs the operator.
    Failed(String),
    /// Stopped on shutdown.
    Stopped,
}

/// Whether an inbound message was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now; it will reach the agent.
    New,
    /// Seen before; nothing was done.
    Duplicate,
}

/// What the bridge offers a channel. Every method is durable when it returns `Ok`.
#[async_trait]
pub trait Bridge: Send + Sync + 'static {
    /// Persists an inbound message (dedup on channel + account + message id) and wakes the
    /// pipeline. Acknowledge the platform only after this returned `Ok`.
    async fn accept(&self, msg: InboundMessage) -> Result<Accepted, BridgeError>;

    /// Records a delivery status of a sent message (`sent/delivered/read/failed`).
    async fn delivery_status(
        &self,
        channel: &ChannelId,
        platform_message_id: &str,
        status: &str,
        error: Option<&str>,
        at: EpochMs,
    ) -> Result<(), BridgeError>;

    /// Reads a poll cursor of this account.
    async fn cursor(&self, channel: &ChannelId, account: &AccountId, name: &str)
    -> Result<Option<String>, BridgeError>;

    /// Stores a poll cursor of this account.
    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
    ) -> Result<(), BridgeError>;

    /// Remembers a dedup key for `ttl_ms`; `true` the first time it is seen.
    async fn remember(&self, namespace: &str, key: &str, ttl_ms: EpochMs) -> Result<bool, BridgeError>;

    /// Takes or renews a named lease for `ttl_ms` (one poller per account across replicas).
    async fn lease(&self, name: &str, ttl_ms: EpochMs) -> Result<bool, BridgeError>;

    /// Gives up a lease this bridge holds, so another process need not wait for it to expire.
    /// A bridge that cannot release (a test double) lets it expire after its ttl.
    async fn release_lease(&self, name: &str) -> Result<(), BridgeError> {
        let _ = name;
        Ok(())
    }

    /// Enqueues a message through the durable outbox (proactive sends, pairing notices).
    async fn enqueue(&self, msg: OutboundMessage, idempotency_key: &str) -> Result<(), BridgeError>;

    /// Reads a small durable value (JSON by convention) a channel keeps between requests:
    /// an answer waiting for the user's next message, a continuation, a user's block status.
    /// Namespaces are the channel's own, e.g. `kakao.pending/<account>`.
    async fn state_get(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError>;

    /// Writes a value, replacing the old one; `ttl_ms` makes it expire (`None`: kept until taken).
    /// With `if_absent`, writes only when no live value exists and returns whether it wrote,
    /// which makes a one-time claim that holds across replicas.
    async fn state_put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<EpochMs>,
        if_absent: bool,
    ) -> Result<bool, BridgeError>;

    /// Deletes a live value and returns it; of two concurrent takers only one gets it.
    async fn state_take(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError>;

    /// Live values of a namespace as (key, value, written at), newest first, at most `limit`.
    async fn state_list(&self, namespace: &str, limit: u32) -> Result<Vec<(String, String, EpochMs)>, BridgeError>;

    /// Counts one request of `key` against `limit` per `window`, for every process on this
    /// store together (a platform plan's requests per minute across replicas). `Ok(None)`:
    /// granted; `Ok(Some(wait))`: the window is full and ends in `wait`.
    ///
    /// A bridge without a shared store (a test double) grants every request; the caller's
    /// in-process limit still holds.
    async fn take_quota(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, BridgeError> {
        let _ = (key, limit, window);
        Ok(None)
    }
}

/// The bridge could not do what a channel asked (the store is down): answer the platform with
/// a retryable error (HTTP 5xx) so it redelivers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bridge unavailable: {0}")]
pub struct BridgeError(pub String);

/// An account stopped working.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    /// Configuration or credentials need the operator; the message says what to fix.
    #[error("{0}")]
    Config(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
