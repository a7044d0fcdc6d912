//! Raw rows as both backends return them, and their conversion into the [`model`](crate::model)
//! types. Both schemas use 64-bit integers and text for every column read here, so one
//! `FromRow` derive serves SQLite and PostgreSQL alike.

use crate::model::{
    ApprovedPeer, DeadLetter, InboundRow, InboxState, NewOutbound, OutboundRow, OutboxState, PendingPairing, QueueStats,
};
use crate::{Result, StoreError};
use clawbridge_core::{AccountId, ChannelId, IdempotencyKey, Lane, PeerId};

/// Columns of [`InboxRecord`], in one place so every query selects the same set.
macro_rules! inbox_columns {
    () => {
        "id, payload, lane, state, attempts, outcome, last_error, received_at"
    };
}

/// Columns of [`OutboxRecord`].
macro_rules! outbox_columns {
    () => {
        "id, idempotency_key, payload, lane, inbound_id, state, attempts, next_at, last_error, \
         platform_message_id, delivery_status, delivery_error, created_at"
    };
}

/// Columns of [`PairingRecord`].
macro_rules! pairing_columns {
    () => {
        "channel, account, peer, display_name, code, created_at, expires_at"
    };
}

/// Columns of [`ApprovedRecord`].
macro_rules! approved_columns {
    () => {
        "channel, account, peer, display_name, approved_at"
    };
}

pub(crate) use {approved_columns, inbox_columns, outbox_columns, pairing_columns};

/// An inbox row as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct InboxRecord {
    id: i64,
    payload: String,
    lane: String,
    state: String,
    attempts: i64,
    outcome: Option<String>,
    last_error: Option<String>,
    received_at: i64,
}

impl InboxRecord {
    pub(crate) fn into_row(self) -> Result<InboundRow> {
        let what = || format!("inbox {}", self.id);
        let message = serde_json::from_str(&self.payload).map_err(|e| corrupt(what(), e))?;
        let state =
            InboxState::parse(&self.state).ok_or_else(|| corrupt(what(), format!("unknown state {:?}", self.state)))?;
        Ok(InboundRow {
            id: self.id,
            message,
            lane: Lane::from_stored(self.lane),
            state,
            attempts: count_u32(self.attempts),
            outcome: self.outcome,
            last_error: self.last_error,
            received_at: self.received_at,
        })
    }
}

/// An outbox row as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OutboxRecord {
    id: i64,
    idempotency_key: String,
    payload: String,
    lane: String,
    inbound_id: Option<i64>,
    state: String,
    attempts: i64,
    next_at: i64,
    last_error: Option<String>,
    platform_message_id: Option<String>,
    delivery_status: Option<String>,
    delivery_error: Option<String>,
    created_at: i64,
}

impl OutboxRecord {
    pub(crate) fn into_row(self) -> Result<OutboundRow> {
        let what = || format!("outbox {}", self.id);
        let message = serde_json::from_str(&self.payload).map_err(|e| corrupt(what(), e))?;
        let state = OutboxState::parse(&self.state)
            .ok_or_else(|| corrupt(what(), format!("unknown state {:?}", self.state)))?;
        Ok(OutboundRow {
            id: self.id,
            idempotency_key: IdempotencyKey::new(self.idempotency_key),
            message,
            lane: Lane::from_stored(self.lane),
            inbound_id: self.inbound_id,
            state,
            attempts: count_u32(self.attempts),
            next_at: self.next_at,
            last_error: self.last_error,
            platform_message_id: self.platform_message_id,
            delivery_status: self.delivery_status,
            delivery_error: self.delivery_error,
            created_at: self.created_at,
        })
    }
}

/// A pending pairing request as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PairingRecord {
    channel: String,
    account: String,
    peer: String,
    display_name: Option<String>,
    code: String,
    created_at: i64,
    expires_at: i64,
}

impl From<PairingRecord> for PendingPairing {
    fn from(r: PairingRecord) -> Self {
        Self {
            channel: ChannelId::new(r.channel),
            account: AccountId::new(r.account),
            peer: PeerId::new(r.peer),
            display_name: r.display_name,
            code: r.code,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// An approved peer as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApprovedRecord {
    channel: String,
    account: String,
    peer: String,
    display_name: Option<String>,
    approved_at: i64,
}

impl From<ApprovedRecord> for ApprovedPeer {
    fn from(r: ApprovedRecord) -> Self {
        Self {
            channel: ChannelId::new(r.channel),
            account: AccountId::new(r.account),
            peer: PeerId::new(r.peer),
            display_name: r.display_name,
            approved_at: r.approved_at,
        }
    }
}

/// One dead letter as the three dead-letter queries return it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeadRecord {
    id: i64,
    lane: String,
    reason: String,
    attempts: i64,
    at: i64,
}

impl DeadRecord {
    pub(crate) fn into_dead_letter(self, queue: &'static str) -> DeadLetter {
        DeadLetter {
            queue,
            id: self.id,
            lane: self.lane,
            reason: self.reason,
            attempts: count_u32(self.attempts),
            at: self.at,
        }
    }
}

/// Merges the dead letters of the three sources: newest first, at most `limit`.
pub(crate) fn merge_dead_letters(mut all: Vec<DeadLetter>, limit: u32) -> Vec<DeadLetter> {
    all.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)).then(a.queue.cmp(b.queue)));
    all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    all
}

/// Fills [`QueueStats`] from `(state, count)` pairs of the inbox and the outbox.
pub(crate) fn queue_stats(inbox: &[(String, i64)], outbox: &[(String, i64)], delivery_failed: i64) -> QueueStats {
    let mut stats = QueueStats { delivery_failed: count_u64(delivery_failed), ..QueueStats::default() };
    for (state, n) in inbox {
        let n = count_u64(*n);
        match InboxState::parse(state) {
            Some(InboxState::Pending) => stats.inbox_pending = n,
            Some(InboxState::Processing) => stats.inbox_processing = n,
            Some(InboxState::Done) => stats.inbox_done = n,
            Some(InboxState::Failed) => stats.inbox_failed = n,
            None => {}
        }
    }
    for (state, n) in outbox {
        let n = count_u64(*n);
        match OutboxState::parse(state) {
            Some(OutboxState::Queued) => stats.outbox_queued = n,
            Some(OutboxState::Sending) => stats.outbox_sending = n,
            Some(OutboxState::Retry) => stats.outbox_retry = n,
            Some(OutboxState::Sent) => stats.outbox_sent = n,
            Some(OutboxState::Dead) => stats.outbox_dead = n,
            None => {}
        }
    }
    stats
}

/// The values an outbox insert binds, derived once from a [`NewOutbound`].
pub(crate) struct OutboundInsert<'a> {
    pub(crate) key: &'a str,
    pub(crate) lane: String,
    pub(crate) channel: &'a str,
    pub(crate) account: &'a str,
    pub(crate) peer: &'a str,
    pub(crate) inbound_id: Option<i64>,
    pub(crate) payload: String,
    pub(crate) next_at: i64,
}

impl<'a> OutboundInsert<'a> {
    pub(crate) fn new(m: &'a NewOutbound, now: i64) -> Result<Self> {
        let payload = serde_json::to_string(&m.message)
            .map_err(|e| corrupt(format!("outbound {}", m.idempotency_key), format!("cannot encode: {e}")))?;
        Ok(Self {
            key: m.idempotency_key.as_str(),
            lane: m.message.lane().as_str().to_owned(),
            channel: m.message.channel.as_str(),
            account: m.message.account.as_str(),
            peer: m.message.peer.as_str(),
            inbound_id: m.inbound_id,
            payload,
            next_at: m.not_before.unwrap_or(now),
        })
    }
}

/// Encodes an inbound message for the `payload` column.
pub(crate) fn inbound_payload(msg: &clawbridge_core::InboundMessage) -> Result<String> {
    serde_json::to_string(msg)
        .map_err(|e| corrupt(format!("inbound {}", msg.message_id), format!("cannot encode: {e}")))
}

/// Claims return rows in whatever order `RETURNING` produced; callers get them oldest first.
pub(crate) fn oldest_first<T>(mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Vec<T> {
    rows.sort_by_key(|r| id(r));
    rows
}

/// `now + ms` without overflow (a huge lease means "practically forever", not a wrap to the past).
pub(crate) fn deadline(now: i64, ms: i64) -> i64 {
    now.saturating_add(ms.max(0))
}

/// The end of a quota window (`start + window_ms`, without overflow).
pub(crate) fn quota_window_end(window_start: i64, window_ms: i64) -> i64 {
    deadline(window_start, window_ms)
}

pub(crate) fn count_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

pub(crate) fn count_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn corrupt(what: String, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}

/// `check_writable`: the heartbeat read back must be the one just written.
pub(crate) fn check_heartbeat(read: i64, wrote: i64) -> Result<()> {
    if read == wrote {
        Ok(())
    } else {
        Err(corrupt("heartbeat".to_owned(), format!("wrote {wrote}, read back {read}")))
    }
}
