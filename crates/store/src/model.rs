//! Rows and outcomes the [`Store`](crate::Store) capabilities speak in.

use clawbridge_core::{AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, Lane, OutboundMessage, PeerId};
use serde::{Deserialize, Serialize};

/// Result of persisting an inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New message, stored under this id.
    Inserted(i64),
    /// Seen before (platform redelivery); the id of the existing row.
    Duplicate(i64),
}

impl InsertOutcome {
    /// The row id either way.
    pub fn id(self) -> i64 {
        match self {
            Self::Inserted(id) | Self::Duplicate(id) => id,
        }
    }
}

/// States of an inbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxState {
    /// Waiting for a worker (possibly until `next_at`).
    Pending,
    /// Claimed by a worker under a lease.
    Processing,
    /// Finished (replies enqueued, or handled by policy).
    Done,
    /// Given up; the reason is in `last_error`.
    Failed,
}

impl InboxState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "processing" => Self::Processing,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One inbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRow {
    /// Row id (monotonic: orders messages of a lane).
    pub id: i64,
    /// The message.
    pub message: InboundMessage,
    /// Its lane.
    pub lane: Lane,
    /// Current state.
    pub state: InboxState,
    /// Attempts started so far (1 on the first claim).
    pub attempts: u32,
    /// Outcome of a finished row (`replied`, `silent`, `paired`, `denied`…).
    pub outcome: Option<String>,
    /// Last error.
    pub last_error: Option<String>,
    /// When it was received.
    pub received_at: EpochMs,
}

/// A message to put in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutbound {
    /// Unique key: enqueuing the same key twice stores one row.
    pub idempotency_key: IdempotencyKey,
    /// The message.
    pub message: OutboundMessage,
    /// The inbox row it answers, if any.
    pub inbound_id: Option<i64>,
    /// Earliest send time (`None` = now).
    pub not_before: Option<EpochMs>,
}

/// States of an outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting to be sent.
    Queued,
    /// Claimed by a worker under a lease.
    Sending,
    /// Accepted by the platform.
    Sent,
    /// Failed transiently; next attempt at `next_at`.
    Retry,
    /// Given up; the reason is in `last_error`.
    Dead,
}

impl OutboxState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Retry => "retry",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "retry" => Self::Retry,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// One outbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRow {
    /// Row id (monotonic: orders messages of a lane).
    pub id: i64,
    /// Its idempotency key.
    pub idempotency_key: IdempotencyKey,
    /// The message.
    pub message: OutboundMessage,
    /// Its lane.
    pub lane: Lane,
    /// The inbox row it answers.
    pub inbound_id: Option<i64>,
    /// Current state.
    pub state: OutboxState,
    /// Attempts started so far (1 on the first claim).
    pub attempts: u32,
    /// Next attempt time (`retry`) or earliest send time.
    pub next_at: EpochMs,
    /// Last error or dead reason.
    pub last_error: Option<String>,
    /// The platform's message id once sent.
    pub platform_message_id: Option<String>,
    /// Latest delivery status (`sent/delivered/read/failed`).
    pub delivery_status: Option<String>,
    /// Error code of a `failed` delivery status (e.g. WhatsApp 131047).
    pub delivery_error: Option<String>,
    /// When it was enqueued.
    pub created_at: EpochMs,
}

/// A platform delivery status for a sent message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// Channel of the message.
    pub channel: ChannelId,
    /// The platform's id of the sent message.
    pub platform_message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// Error code and title for `failed`.
    pub error: Option<String>,
    /// When the platform says it happened.
    pub at: EpochMs,
}

/// Rank of delivery statuses: a status only replaces a lower one (`failed` replaces any).
pub fn delivery_rank(status: &str) -> u8 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "failed" => 4,
        _ => 0,
    }
}

/// A sender asking to be paired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingRequest {
    /// Channel.
    pub channel: ChannelId,
    /// Account.
    pub account: AccountId,
    /// Who asks.
    pub peer: PeerId,
    /// Display name, to help the owner decide.
    pub display_name: Option<String>,
    /// Validity of a new code.
    pub ttl_ms: EpochMs,
    /// Maximum unexpired requests per channel account.
    pub max_pending: u32,
}

/// Result of a pairing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingOutcome {
    /// A new code was issued: tell the sender once.
    Issued {
        /// The code.
        code: String,
        /// When it expires.
        expires_at: EpochMs,
    },
    /// The sender already has an unexpired code (do not repeat it on every message).
    Pending {
        /// The code.
        code: String,
        /// When it expires.
        expires_at: EpochMs,
    },
    /// Too many pending requests for this account; try later.
    TooMany,
    /// The peer is approved already.
    AlreadyApproved,
}

/// A pending pairing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPairing {
    /// Channel.
    pub channel: ChannelId,
    /// Account.
    pub account: AccountId,
    /// Who asks.
    pub peer: PeerId,
    /// Display name.
    pub display_name: Option<String>,
    /// The code.
    pub code: String,
    /// Issued at.
    pub created_at: EpochMs,
    /// Expires at.
    pub expires_at: EpochMs,
}

/// An approved peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedPeer {
    /// Channel.
    pub channel: ChannelId,
    /// Account.
    pub account: AccountId,
    /// The peer.
    pub peer: PeerId,
    /// Display name at approval time.
    pub display_name: Option<String>,
    /// Approved at.
    pub approved_at: EpochMs,
}

/// Queue depths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Inbox rows waiting.
    pub inbox_pending: u64,
    /// Inbox rows being worked on.
    pub inbox_processing: u64,
    /// Inbox rows given up.
    pub inbox_failed: u64,
    /// Inbox rows finished.
    pub inbox_done: u64,
    /// Outbox rows waiting for a first attempt.
    pub outbox_queued: u64,
    /// Outbox rows being sent.
    pub outbox_sending: u64,
    /// Outbox rows waiting for a retry.
    pub outbox_retry: u64,
    /// Outbox rows sent.
    pub outbox_sent: u64,
    /// Outbox rows given up.
    pub outbox_dead: u64,
    /// Sent rows whose platform delivery status is `failed`.
    pub delivery_failed: u64,
}

/// A message that will not be delivered without an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// `inbox` or `outbox`.
    pub queue: &'static str,
    /// Row id.
    pub id: i64,
    /// Lane (channel/account/peer).
    pub lane: String,
    /// Why.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up.
    pub at: EpochMs,
}

/// Result of [`InboxQueue::complete_inbound_and_claim`](crate::InboxQueue::complete_inbound_and_claim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completed {
    /// The row is no longer claimed by this worker; nothing was written.
    LeaseLost,
    /// The row is done and its replies are enqueued.
    Done {
        /// The first reply, claimed for the caller to send now (`None` when there were no
        /// replies or an older message of the lane is still unsent).
        first_reply: Option<Box<OutboundRow>>,
    },
}

/// A value to write with [`ChannelState::put_state`](crate::ChannelState::put_state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatePut<'a> {
    /// Who owns the value, e.g. `kakao.pending/default`.
    pub namespace: &'a str,
    /// The key inside the namespace.
    pub key: &'a str,
    /// The value (JSON text by convention).
    pub value: &'a str,
    /// When it stops being readable; `None` keeps it until it is taken or overwritten.
    pub expires_at: Option<EpochMs>,
}

/// A stored channel-state value, as [`ChannelState::list_state`](crate::ChannelState::list_state) returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateEntry {
    /// The key inside the namespace.
    pub key: String,
    /// The value.
    pub value: String,
    /// When it was last written.
    pub updated_at: EpochMs,
}

/// Result of [`Quotas::take_quota`](crate::Quotas::take_quota).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum QuotaTake {
    /// The units were taken; `count` is how many the window has used, these included.
    Granted {
        /// Units used in the window after this take.
        count: u64,
    },
    /// Taking would pass the limit; nothing was taken.
    Refused {
        /// Units used in the window (unchanged by this call).
        count: u64,
        /// When the window ends (`window_start + window_ms`): the earliest time a retry can succeed.
        window_end: EpochMs,
    },
}

impl QuotaTake {
    /// Whether the units were taken.
    pub fn is_granted(self) -> bool {
        matches!(self, Self::Granted { .. })
    }
}
