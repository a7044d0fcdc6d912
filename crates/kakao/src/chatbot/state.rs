//! Every store namespace of the chatbot, once, with the type of its values and how long they live.
//!
//! The namespace strings are the stored data's names (and `clawbridge status` reads some of them):
//! they never change. Values are JSON with the field names of the first version.

use super::ns;
use super::response::SkillResponse;
use clawbridge_channel::state::StateSpace;
use clawbridge_core::EpochMs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

// ---- per bot account: `kakao.<what>/<account>` ------------------------------------------------

/// Answers kept for a user's next utterance: `kakao.pending/<account>/<peer>`, key [`pending_key`].
const PENDING: StateSpace<Pending> = StateSpace::new("kakao.pending");
/// Kept answers expire after a week.
pub(super) const PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3_600);
/// "더 보기" continuations of the last long answer, key peer.
const MORE: StateSpace<Vec<SkillResponse>> = StateSpace::new("kakao.more");
/// Continuations expire after a day.
pub(super) const MORE_TTL: Duration = Duration::from_secs(24 * 3_600);
/// The answer shown for a turn, key message id, so that a Kakao retry of the request shows it again.
const ANSWER: StateSpace<SkillResponse> = StateSpace::new("kakao.answer");
/// Turns whose handler answered `useCallback:true`, key message id (any replica may complete them).
const TURN: StateSpace<StoredTurn> = StateSpace::new("kakao.turn");
/// Kept a little longer than Kakao accepts the callback.
pub(super) const TURN_TTL: Duration = Duration::from_secs(120);
/// The hash of the answer POSTed to a turn's callback, key message id: one POST per turn.
const CALLBACK_CLAIM: StateSpace<String> = StateSpace::new("kakao.callback-claim");
/// Claims outlive every retry of the send.
pub(super) const CALLBACK_CLAIM_TTL: Duration = Duration::from_secs(600);
/// The message id given to a user's utterance without a request id, key hash of user + utterance
/// (within the dedup window the same words are Kakao's retry, not a new turn).
const RECENT: StateSpace<String> = StateSpace::new("kakao.recent");

// ---- channel-wide -------------------------------------------------------------------------------

/// The channel webhook's word on each user, key `<id_type>:<id>`.
pub(super) const CHANNEL_USERS: StateSpace<ChannelUser> = StateSpace::new(ns::CHANNEL_USERS);
/// Recent channel webhook events, key `<received_at>-<resource id>`.
pub(super) const CHANNEL_EVENTS: StateSpace<ChannelEventRecord> = StateSpace::new(ns::CHANNEL_EVENTS);
/// Resource ids of channel webhook deliveries seen (value `1`): redeliveries are dropped.
pub(super) const WEBHOOK_SEEN: StateSpace<u8> = StateSpace::new("kakao.channel-webhook-seen");
/// How long channel events and seen resource ids are kept.
pub(super) const CHANNEL_EVENTS_TTL: Duration = Duration::from_secs(30 * 24 * 3_600);
/// Callback outcomes, key `<account>/<message id>`.
pub(super) const CALLBACKS: StateSpace<CallbackRecord> = StateSpace::new(ns::CALLBACKS);
/// `clawbridge status` reports the callbacks of the last week.
pub(super) const CALLBACKS_TTL: Duration = Duration::from_secs(7 * 24 * 3_600);
/// Event API tasks, key task id.
pub(super) const PUSH_TASKS: StateSpace<PushTask> = StateSpace::new(ns::PUSH_TASKS);
/// Push tasks are kept for a month.
pub(super) const PUSH_TASKS_TTL: Duration = Duration::from_secs(30 * 24 * 3_600);

/// One bot account's namespaces.
pub(super) struct BotSpaces {
    pending: StateSpace<Pending>,
    /// `kakao.more/<account>`.
    pub(super) more: StateSpace<Vec<SkillResponse>>,
    /// `kakao.answer/<account>`.
    pub(super) answer: StateSpace<SkillResponse>,
    /// `kakao.turn/<account>`.
    pub(super) turn: StateSpace<StoredTurn>,
    /// `kakao.callback-claim/<account>`.
    pub(super) callback_claim: StateSpace<String>,
    /// `kakao.recent/<account>`.
    pub(super) recent: StateSpace<String>,
}

impl BotSpaces {
    pub(super) fn new(account: &str) -> Self {
        Self {
            pending: PENDING.scoped(account),
            more: MORE.scoped(account),
            answer: ANSWER.scoped(account),
            turn: TURN.scoped(account),
            callback_claim: CALLBACK_CLAIM.scoped(account),
            recent: RECENT.scoped(account),
        }
    }

    /// `kakao.pending/<account>/<peer>`.
    pub(super) fn pending(&self, peer: &str) -> StateSpace<Pending> {
        self.pending.scoped(peer)
    }
}

/// An answer kept for the user's next utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) pages: Vec<SkillResponse>,
}

/// A turn whose handler answered `useCallback:true`: where its answer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredTurn {
    pub(super) url: String,
    pub(super) received_at: EpochMs,
}

/// The key of a kept answer: keys sort by time, then by this process's sequence (two answers in
/// one millisecond), and end with a tag of the turn they answer ([`is_pending_of`]).
pub(super) fn pending_key(now: EpochMs, seq: u64, message_id: &str) -> String {
    format!("{now:013}-{seq:010}-{}", turn_tag(message_id))
}

/// Whether the kept answer under `key` answers the turn `message_id`.
pub(super) fn is_pending_of(key: &str, message_id: &str) -> bool {
    key.strip_suffix(&turn_tag(message_id)).is_some_and(|rest| rest.ends_with('-'))
}

fn turn_tag(message_id: &str) -> String {
    hex::encode(&Sha256::digest(message_id.as_bytes())[..6])
}

/// What the channel webhook last said about a user (`kakao.channel-users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUser {
    /// `added` or `blocked`.
    pub event: String,
    /// The event's own time (RFC 3339), when it gave one: an older event never overwrites a newer.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The channel's public id.
    #[serde(default)]
    pub channel_public_id: Option<String>,
    /// When the bridge received it (epoch ms).
    #[serde(default)]
    pub received_at: EpochMs,
}

impl ChannelUser {
    /// Whether the user blocked the channel.
    pub fn blocked(&self) -> bool {
        self.event == "blocked"
    }
}

/// A channel webhook event as received, with the user id masked (`kakao.channel-events`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelEventRecord {
    /// `added` or `blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The user id, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the bridge received it (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<EpochMs>,
    /// The rest of the webhook body, as Kakao sent it.
    #[serde(flatten)]
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// How a callback POST went (`kakao.callbacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// The bot account.
    pub account: String,
    /// The user, masked.
    pub peer: String,
    /// Kakao's status (`SUCCESS`, `FAIL`…), `ERROR` when the POST failed, `EXPIRED` when the
    /// answer came after the callback window.
    pub status: String,
    /// Kakao's message or the error (at most 300 characters).
    pub message: String,
    /// When (epoch ms).
    pub at: EpochMs,
}

/// An Event API task (`kakao.push-tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTask {
    /// The bot account.
    pub account: String,
    /// The event name.
    pub event: String,
    /// How many users the batch named.
    pub users: usize,
    /// The API's status for the batch.
    pub status: String,
    /// When (epoch ms).
    pub at: EpochMs,
    /// Who pushed: `cli` (`clawbridge kakao push`) or `late-answer`.
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_keep_their_stored_names() {
        let spaces = BotSpaces::new("shop");
        assert_eq!(spaces.pending("pf-1").name(), "kakao.pending/shop/pf-1");
        assert_eq!(spaces.more.name(), "kakao.more/shop");
        assert_eq!(spaces.answer.name(), "kakao.answer/shop");
        assert_eq!(spaces.turn.name(), "kakao.turn/shop");
        assert_eq!(spaces.callback_claim.name(), "kakao.callback-claim/shop");
        assert_eq!(spaces.recent.name(), "kakao.recent/shop");
        assert_eq!(CHANNEL_USERS.name(), "kakao.channel-users");
        assert_eq!(CHANNEL_EVENTS.name(), "kakao.channel-events");
        assert_eq!(WEBHOOK_SEEN.name(), "kakao.channel-webhook-seen");
        assert_eq!(CALLBACKS.name(), "kakao.callbacks");
        assert_eq!(PUSH_TASKS.name(), "kakao.push-tasks");
    }

    #[test]
    fn kept_answers_sort_by_time_and_name_their_turn() {
        let a = pending_key(1_700_000_000_000, 7, "rid:1");
        let b = pending_key(1_700_000_000_001, 2, "rid:2");
        assert!(a < b);
        assert!(is_pending_of(&a, "rid:1"));
        assert!(!is_pending_of(&a, "rid:2"));
        assert!(!is_pending_of("x", "rid:1"));
    }

    #[test]
    fn stored_records_of_the_previous_version_decode() {
        let user: ChannelUser = serde_json::from_str(
            r#"{"channel_public_id":"_ZeUTxl","event":"blocked","received_at":5,"updated_at":"2026-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(user.blocked());
        let turn: StoredTurn = serde_json::from_str(r#"{"received_at":1000,"url":"https://x/cb"}"#).unwrap();
        assert_eq!(turn.received_at, 1000);
        let pending: Pending = serde_json::from_str(r#"{"pages":[{"version":"2.0"}]}"#).unwrap();
        assert_eq!(pending.pages.len(), 1);
        let callback: CallbackRecord =
            serde_json::from_str(r#"{"account":"default","at":9,"message":"","peer":"pf-***","status":"SUCCESS"}"#)
                .unwrap();
        assert_eq!(callback.status, "SUCCESS");
        let push: PushTask = serde_json::from_str(
            r#"{"account":"default","at":9,"event":"late_answer","source":"late-answer","status":"SUCCESS","users":1}"#,
        )
        .unwrap();
        assert_eq!(push.users, 1);
        let event: ChannelEventRecord =
            serde_json::from_str(r#"{"event":"added","id":"12***","id_type":"app_user_id","received_at":7}"#).unwrap();
        assert_eq!((event.event.as_deref(), event.received_at), (Some("added"), Some(7)));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event":"added","id":"12***","id_type":"app_user_id","received_at":7})
        );
    }
}
