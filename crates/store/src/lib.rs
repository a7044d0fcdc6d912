//! The durable store of clawbridge: capability traits, one [`Store`] that unites them, three
//! backends.
//!
//! The capabilities: [`InboxQueue`], [`OutboxQueue`], [`Dedup`], [`Cursors`] (and leases),
//! [`ChannelState`], [`Secrets`], [`Pairing`], [`Quotas`], [`Operations`], the business-message
//! queue ([`BizmsgQueue`]), campaigns ([`CampaignStore`]) and the operator console's reads,
//! dead-letter actions and audit trail ([`ConsoleStore`]). [`Store`] is all of
//! them; [`SharedStore`] is how the app holds one, and a part that needs one capability can take
//! just that (`Arc<dyn OutboxQueue>`, by upcasting).
//!
//! - [`SqliteStore`]: the embedded default, one file in the state dir (WAL, one writer).
//! - [`PgStore`]: the scale-out backend; several replicas share one database. Dedup through
//!   unique keys (`ON CONFLICT DO NOTHING`), claims through `FOR UPDATE SKIP LOCKED` plus a lease.
//! - [`MemoryStore`]: the same semantics in process memory, nothing durable: for tests (the
//!   conformance suite runs on it too) and throw-away sandboxes.
//!
//! # Layout
//! - [`model`]: the rows and outcomes the traits speak in.
//! - [`sqlite`], [`postgres`]: the SQL backends, each with its own migrations under `migrations/`.
//! - [`memory`]: the in-memory backend.
//! - [`secrets`]: XChaCha20-Poly1305 encryption of secrets at rest, on top of any backend.
//! - [`bridge`]: [`StoreBridge`], the channel's durability port ([`clawbridge_channel::Bridge`])
//!   on any store; the daemon hands it to every channel, tests build one on a [`MemoryStore`].
//! - `queue` (private): the lease queue (claim, renew, finish, retry, release) described once
//!   per queue and run by every backend, so the inbox and the outbox share one implementation.
//! - `sql`, `record`, `common` (private): the SQL both SQL backends share, the raw rows they
//!   decode and the store logic written once for both.
//!
//! All times are epoch milliseconds supplied by the caller, so behaviour is testable without a
//! clock and identical on both backends (only [`StoreBridge`] reads the clock, as channels do not
//! pass times).

#![warn(missing_docs, missing_debug_implementations)]

pub mod bizmsg;
pub mod bridge;
pub mod campaign;
mod common;
pub mod console;
pub mod memory;
pub mod model;
pub mod postgres;
mod queue;
mod record;
pub mod secrets;
mod sql;
pub mod sqlite;

pub use bizmsg::{BizmsgQueue, BizmsgResult, BizmsgRow, BizmsgState, BizmsgStats, Enqueued, NewBizmsg};
pub use bridge::{StoreBridge, Wakers};
pub use campaign::{
    Added, CampaignCounts, CampaignRow, CampaignState, CampaignStore, Claimed, NewCampaign, NewRecipient, RecipientRow,
    RecipientState, SendKind, Suppression,
};
pub use console::{AuditEntry, ConsoleStore, DeadLetterAction, LaneSummary};
pub use memory::{MemoryStore, Outage};
pub use model::*;
pub use postgres::PgStore;
pub use secrets::{MasterKey, SecretBox};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId};
use std::sync::Arc;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A group commit of inbox inserts failed or was cancelled; nothing of it is stored.
    #[error("database error: {0}")]
    Batch(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored payload could not be decoded (written by an incompatible version?).
    #[error("corrupt row {what}: {detail}")]
    Corrupt {
        /// Which row.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The database URL or state dir is unusable; the message says how to fix it.
    #[error("{0}")]
    Config(String),
    /// A secret could not be encrypted or decrypted (wrong master key?).
    #[error("secret store: {0}")]
    Secret(String),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

// ---- capabilities --------------------------------------------------------------------------------

/// The inbound queue: the durability point of every platform message and the per-conversation
/// order in which the pipeline handles them.
///
/// Exists apart from the outbox because its producers (webhooks, pollers) and its consumer (the
/// agent worker) are not the outbox's. Dedup of platform redeliveries is part of the insert (the
/// row's unique (channel, account, message id) key, in the same statement), not of [`Dedup`].
/// Every claim hands a row to exactly one worker until its lease runs out, across processes too.
#[async_trait]
pub trait InboxQueue: Send + Sync + 'static {
    /// Persists an inbound message unless (channel, account, message id) was seen before.
    ///
    /// This is the durability point: a platform may be acknowledged once this returns `Ok`.
    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome>;

    /// Claims up to `limit` inbound rows that are ready: `pending` (or `processing` with an
    /// expired lease), oldest first, and only the oldest unfinished row of each lane, so that one
    /// conversation is handled strictly in order even across processes.
    async fn claim_inbound(&self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs)
    -> Result<Vec<InboundRow>>;

    /// Extends the lease of a row still being worked on (long agent runs).
    async fn renew_inbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool>;

    /// Finishes an inbound row: enqueues the replies (idempotent on their keys) and marks the row
    /// `done` with `outcome`, in one transaction. Returns `false` when the row is no longer
    /// claimed by `worker` (lease lost), in which case nothing is written.
    async fn complete_inbound(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        now: EpochMs,
    ) -> Result<bool>;

    /// [`complete_inbound`](InboxQueue::complete_inbound), and in the same transaction claims the
    /// first of `replies` for `worker` (under a `lease_ms` lease) when its lane lets it go out
    /// now, so the worker can send it at once instead of handing it to the outbox worker: one
    /// transaction and one wake-up less between the agent's answer and the user.
    async fn complete_inbound_and_claim(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Completed>;

    /// Records a failed attempt: back to `pending` at `retry_at`, or `failed` for good when `retry_at` is `None`.
    async fn fail_inbound(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool>;

    /// Gives a claimed row back (shutdown before it was finished): `pending` again with its
    /// lease cleared, `next_at` unchanged and the claim's attempt not counted. No effect when
    /// `worker` no longer holds it.
    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()>;

    /// Reads one inbound row.
    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>>;
}

/// The outbound queue: every message to a platform, sent at least once and in lane order, with
/// the platform's delivery statuses.
///
/// Exists apart from the inbox because anything may enqueue (replies, proactive sends, later
/// campaigns) and the senders are per channel; the idempotency key makes every enqueue safe to
/// repeat, and the platform id of a sent row is what delivery webhooks refer to.
#[async_trait]
pub trait OutboxQueue: Send + Sync + 'static {
    /// Enqueues outbound messages; a message whose idempotency key exists is skipped.
    /// Returns the ids of the rows (existing or new), in input order.
    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>>;

    /// Claims up to `limit` due outbound rows (`queued`, `retry` with `next_at <= now`, or
    /// `sending` with an expired lease), only the oldest unsent row of each lane.
    async fn claim_outbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<OutboundRow>>;

    /// Extends the lease of a row whose send is still under way, so that no other worker takes
    /// it over meanwhile; `false` when `worker` no longer holds it.
    async fn renew_outbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool>;

    /// Marks a claimed row `sent` with the platform's message id.
    async fn mark_sent(&self, id: i64, worker: &str, platform_message_id: Option<&str>, now: EpochMs) -> Result<bool>;

    /// Marks a claimed row for another attempt at `next_at`.
    async fn mark_retry(&self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> Result<bool>;

    /// Marks a claimed row `dead` with the reason (shown by `clawbridge status`).
    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool>;

    /// Gives a claimed row back: `queued` if that claim was its first attempt, else `retry`, with
    /// the lease cleared, `next_at` unchanged and the claim's attempt not counted. No effect when
    /// `worker` no longer holds it.
    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()>;

    /// Reads one outbound row.
    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>>;

    /// Records a platform delivery status (`sent/delivered/read/failed`) for a sent message.
    /// Statuses only move forward (a late `delivered` does not overwrite `read`); `failed` always
    /// wins and keeps `error` in `delivery_error`; unknown statuses are ignored. Returns `false`
    /// when no outbound row of that channel has that platform id.
    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<bool>;
}

/// Keys remembered for a while, shared by every process: a webhook's `X-Idempotency-Key` or a
/// Kakao request id seen by one replica is a duplicate on all of them.
#[async_trait]
pub trait Dedup: Send + Sync + 'static {
    /// Remembers a key (a webhook's `X-Idempotency-Key`, a Kakao request id) until `expires_at`.
    /// `true` the first time, `false` while it is remembered (`now < expires_at`); a key whose
    /// time is up counts as new again.
    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool>;
}

/// Where pollers resume, and who polls: a poll cursor per (channel, account, name), and named
/// leases so that of several replicas exactly one polls an account at a time.
#[async_trait]
pub trait Cursors: Send + Sync + 'static {
    /// Reads a poll cursor.
    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>>;

    /// Writes a poll cursor (atomically replaces the old value).
    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
        now: EpochMs,
    ) -> Result<()>;

    /// Takes or renews a named lease (one poller per account across replicas). `true` when
    /// `holder` holds it until `now + ttl_ms`: it was free, expired (`until < now`) or already
    /// held by `holder`.
    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool>;

    /// Gives a lease up.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}

/// Small JSON values channels keep between requests (a Kakao answer waiting for the user's next
/// utterance, a "더 보기" continuation, OAuth caches), so that any replica can serve the next
/// request and nothing is lost on restart.
#[async_trait]
pub trait ChannelState: Send + Sync + 'static {
    /// Writes `entry`, replacing a value already under its key. With `if_absent`, writes only
    /// when the key is absent or expired and returns whether it wrote (a one-time claim).
    async fn put_state(&self, entry: &StatePut<'_>, if_absent: bool, now: EpochMs) -> Result<bool>;

    /// Reads a live (unexpired) value.
    async fn get_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>>;

    /// Deletes a live value and returns it, atomically: of two concurrent takers one gets it.
    async fn take_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>>;

    /// Live values of a namespace, most recently written first, at most `limit`.
    async fn list_state(&self, namespace: &str, limit: u32, now: EpochMs) -> Result<Vec<StateEntry>>;
}

/// Encrypted blobs under a name (OAuth tokens, API keys the CLI stores). The store only ever
/// holds ciphertext; [`SecretBox`] encrypts and decrypts on top of this.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// Stores an encrypted secret under `name`.
    async fn put_secret_blob(&self, name: &str, blob: &[u8], now: EpochMs) -> Result<()>;

    /// Reads an encrypted secret.
    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Deletes a secret; `true` when it existed.
    async fn delete_secret(&self, name: &str) -> Result<bool>;
}

/// DM pairing: who may talk to the agent. Pending codes an operator approves, and the approved
/// peers the pipeline checks on every direct message.
#[async_trait]
pub trait Pairing: Send + Sync + 'static {
    /// Issues a pairing code for a peer, or returns its unexpired one. At most
    /// `clawbridge_core::pairing::MAX_PENDING_PER_ACCOUNT` unexpired requests per channel account.
    /// `code` is a fresh candidate the caller generated; it is used (normalised with
    /// `pairing::normalize_code`) only when a new request is made. Expired requests of the peer
    /// are replaced. A candidate equal to another unexpired code of the channel is refused with a
    /// [`StoreError::Database`] unique violation (odds 1 in 2^40); the caller may retry with a
    /// new code.
    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome>;

    /// Unexpired pending pairing requests (all channels when `channel` is `None`).
    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>>;

    /// Approves an unexpired code (compared after `pairing::normalize_code`, so case, spaces and
    /// dashes do not matter): the peer becomes approved, the request is removed. `None` when no
    /// unexpired request of `channel` has that code.
    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>>;

    /// Whether a peer was approved.
    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool>;

    /// Approved peers (all channels when `channel` is `None`).
    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>>;

    /// Revokes an approval; `true` when there was one.
    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool>;

    /// Rejects an unexpired code (normalised like [`approve_pairing`](Pairing::approve_pairing)):
    /// the request is removed and the peer is not approved; it may ask again later. `false` when
    /// no unexpired request of `channel` has that code.
    async fn reject_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<bool>;
}

/// Fixed-window counters shared by every process on the store, for limits that must hold across
/// replicas: a platform's per-key rate limit (Kapso's 100 requests per minute per API key), the
/// Kakao and dealer send quotas. A process-local limiter lets N replicas send N times the limit.
#[async_trait]
pub trait Quotas: Send + Sync + 'static {
    /// Takes `n` units of the quota `key` in the window `[window_start, window_start +
    /// window_ms)` when the window's total stays at most `limit`: [`QuotaTake::Granted`] with the
    /// total after this take, else [`QuotaTake::Refused`] with the total (unchanged: nothing is
    /// taken) and the window's end, the earliest time a retry can succeed.
    ///
    /// Atomic across processes: concurrent takers never pass `limit` together. The caller picks
    /// the window (`window_start` a multiple of `window_ms` for epoch-aligned windows, or a local
    /// midnight for a daily quota); every taker of a key must use the same windows. `now` is
    /// recorded as the window's last use. Windows that ended before `prune`'s cut-off are deleted.
    async fn take_quota(
        &self,
        key: &str,
        window_start: EpochMs,
        window_ms: EpochMs,
        limit: u64,
        n: u64,
        now: EpochMs,
    ) -> Result<QuotaTake>;
}

/// What operators and probes need: queue depths, dead letters, a write check, housekeeping.
#[async_trait]
pub trait Operations: Send + Sync + 'static {
    /// Counts per queue state, for `status`, `/metrics` and `/readyz`.
    async fn queue_stats(&self) -> Result<QueueStats>;

    /// The most recent dead letters, newest first, at most `limit`: outbox `dead` (queue
    /// `outbox`), inbox `failed` (`inbox`) and sent messages whose delivery status is `failed`
    /// (`delivery`, reason = the delivery error).
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>>;

    /// Writes and reads back a heartbeat row: proves the store is writable (`/readyz`).
    async fn check_writable(&self, now: EpochMs) -> Result<()>;

    /// Deletes finished rows and expired keys older than `before` (housekeeping): inbox
    /// `done`/`failed` and outbox `sent`/`dead` rows last updated before it, remembered keys,
    /// pairing requests, channel state and quota windows that expired (ended) before it. Returns
    /// how many rows went.
    async fn prune(&self, before: EpochMs) -> Result<u64>;
}

/// Everything clawbridge keeps durably: the union of the capabilities, which is what a backend
/// implements and what [`open`] returns.
///
/// Code that needs only part of it may take that capability (`Arc<dyn InboxQueue>`, obtained
/// from a [`SharedStore`] by trait upcasting), so its tests can hand it just that.
/// Implementations must be safe to share between tasks and, for PostgreSQL, between processes:
/// every claim hands a row to exactly one worker until its lease runs out.
pub trait Store:
    InboxQueue
    + OutboxQueue
    + BizmsgQueue
    + CampaignStore
    + ConsoleStore
    + Dedup
    + Cursors
    + ChannelState
    + Secrets
    + Pairing
    + Quotas
    + Operations
{
    /// Which backend this is (`sqlite`, `postgres` or `memory`), for `status` and `doctor`.
    fn backend(&self) -> &'static str;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store named by a database URL: `sqlite://PATH` (created if missing) or
/// `postgres://…`, running the migrations (a no-op when they already ran); or `memory://`, a new
/// empty [`MemoryStore`] whose contents are lost when the process exits (tests, sandboxes; every
/// call opens another, unrelated store).
///
/// # Errors
/// [`StoreError::Config`] for an unknown scheme or an unusable path, with the fix in the message.
pub async fn open(url: &str) -> Result<SharedStore> {
    if url == MemoryStore::URL {
        tracing::warn!("using the in-memory store: nothing is durable, everything is lost when the process exits");
        Ok(Arc::new(MemoryStore::new()))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        // sqlx-style options (`?mode=rwc`) are accepted and ignored: the store always creates
        // the file and sets its own pragmas.
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        Ok(Arc::new(SqliteStore::open(std::path::Path::new(path)).await?))
    } else {
        Err(StoreError::Config(format!(
            "CLAWBRIDGE_DATABASE_URL {:?} is neither sqlite://PATH nor postgres://…; \
             unset it to use the embedded SQLite file in the state dir",
            redact_url(url)
        )))
    }
}

/// Removes passwords from a database URL for messages and logs: the userinfo's
/// (`postgres://u:***@h/db`) and query parameters naming one (`?password=***`, `sslpassword`).
pub fn redact_url(url: &str) -> String {
    let (front, query) = match url.split_once('?') {
        Some((front, query)) => (front, Some(query)),
        None => (url, None),
    };
    let mut out = match (front.find("://"), front.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &front[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &front[..scheme_end + 3], &userinfo[..colon], &front[at..]),
                None => front.to_owned(),
            }
        }
        _ => front.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_parameter(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Query parameters of a database URL that carry a secret.
fn is_secret_parameter(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("passwd") || key == "pass" || key == "pwd" || key.contains("secret")
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(super::redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn passwords_in_the_query_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u@h/db?sslmode=require&password=secret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            super::redact_url("postgres://h/db?PASSWORD=s&sslpassword=k"),
            "postgres://h/db?PASSWORD=***&sslpassword=***"
        );
        assert_eq!(super::redact_url("postgres://u:p@h/db?user=a@b"), "postgres://u:***@h/db?user=a@b");
    }
}
