//! The in-memory backend: every capability with the semantics of the SQL backends, nothing
//! durable.
//!
//! For tests (channel and pipeline tests get a real store without a file or a server, and the
//! conformance suite runs on it like on SQLite and PostgreSQL) and for throw-away sandboxes
//! (`store::open("memory://")`). Clones share one store; every operation runs under one lock, so
//! each is atomic the way a SQL statement or transaction is, and concurrent claimers see the
//! same exactly-once behaviour as replicas on PostgreSQL.
//!
//! Payloads are kept as the same JSON the SQL backends store, so a message that would not
//! survive the database does not survive here either. The lease cycle runs on the queues'
//! shared queue descriptions (`QueueSpec`), written once for both queues.

use crate::bizmsg::{
    BIZMSG, BizmsgQueue, BizmsgResult, BizmsgRow, BizmsgState, BizmsgStats, Enqueued, NewBizmsg, lane as bizmsg_lane,
};
use crate::console::{AuditEntry, ConsoleStore, DeadLetterAction, LaneSummary, dead_letter_audit, memory_audit};
use crate::model::{
    ApprovedPeer, Completed, DeadLetter, DeliveryUpdate, InboundRow, InboxState, InsertOutcome, NewOutbound,
    OutboundRow, OutboxState, PairingOutcome, PairingRequest, PendingPairing, QueueStats, QuotaTake, StateEntry,
    StatePut, delivery_rank,
};
use crate::queue::{INBOX, OUTBOX, QueueSpec, QueueState};
use crate::record::{
    OutboundInsert, corrupt, deadline, inbound_payload, merge_dead_letters, queue_stats, quota_window_end,
};
use crate::{
    ChannelState, Cursors, Dedup, InboxQueue, Operations, OutboxQueue, Pairing, Quotas, Result, Secrets, Store,
    StoreError,
};
mod campaign;

use async_trait::async_trait;
use clawbridge_core::pairing::normalize_code;
use clawbridge_core::{AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, Lane, PeerId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The in-memory store. Cheap to clone; clones share the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// The simulated [`Outage`], as a `u8`; clones share it.
    outage: Arc<AtomicU8>,
}

/// A failure of the database to simulate (tests of what a channel or worker does meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outage {
    /// Every call works.
    None = 0,
    /// Writes fail (a full disk, a read-only replica); reads still work.
    Writes = 1,
    /// Every call fails, like a database that cannot be reached.
    All = 2,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// The URL [`open`](crate::open) answers with a new, empty in-memory store.
    pub const URL: &'static str = "memory://";

    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage from now on (failing calls return the error of a database that does
    /// not answer, and change nothing), or ends it with [`Outage::None`].
    pub fn set_outage(&self, outage: Outage) {
        self.outage.store(outage as u8, Ordering::SeqCst);
    }

    /// The data, locked for a change; an error during an [`Outage`]. A panic while the lock was
    /// held (a bug, or a failed assertion in a test) leaves every operation's data consistent, as
    /// each is applied in one step.
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.guard(Outage::Writes as u8)
    }

    /// The data, locked for a read; an error during [`Outage::All`].
    fn read(&self) -> Result<MutexGuard<'_, State>> {
        self.guard(Outage::All as u8)
    }

    fn guard(&self, fails_from: u8) -> Result<MutexGuard<'_, State>> {
        if self.outage.load(Ordering::SeqCst) >= fails_from {
            return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        }
        Ok(self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Everything the store holds; the maps mirror the tables of the SQL schema.
#[derive(Default)]
struct State {
    inbox: LeaseQueue<InboxState, InboxItem>,
    /// The inbox's unique (channel, account, message id).
    inbox_ids: HashMap<(String, String, String), i64>,
    outbox: LeaseQueue<OutboxState, OutboxItem>,
    /// The outbox's unique idempotency key.
    outbox_ids: HashMap<String, i64>,
    cursors: HashMap<(String, String, String), String>,
    /// Name → (holder, held until).
    leases: HashMap<String, (String, EpochMs)>,
    /// (namespace, key) → expires at.
    seen_keys: BTreeMap<(String, String), EpochMs>,
    channel_state: BTreeMap<(String, String), StateValue>,
    /// (channel, account, peer) → request.
    pairing_requests: BTreeMap<(String, String, String), PairingEntry>,
    /// (channel, account, peer) → (display name, approved at).
    approved: BTreeMap<(String, String, String), (Option<String>, EpochMs)>,
    secrets: HashMap<String, Vec<u8>>,
    /// (key, window start) → window.
    quotas: BTreeMap<(String, EpochMs), QuotaWindow>,
    bizmsg: LeaseQueue<BizmsgState, BizmsgItem>,
    /// The business messages' unique idempotency key.
    bizmsg_ids: HashMap<String, i64>,
    campaigns: campaign::Campaigns,
    /// The console's audit trail, oldest first.
    audit: Vec<AuditEntry>,
}

impl Default for LeaseQueue<InboxState, InboxItem> {
    fn default() -> Self {
        Self::new(&INBOX)
    }
}

impl Default for LeaseQueue<OutboxState, OutboxItem> {
    fn default() -> Self {
        Self::new(&OUTBOX)
    }
}

impl Default for LeaseQueue<BizmsgState, BizmsgItem> {
    fn default() -> Self {
        Self::new(&BIZMSG)
    }
}

struct InboxItem {
    /// The unique key, to forget it when the row is pruned.
    key: (String, String, String),
    payload: String,
    received_at: EpochMs,
}

struct OutboxItem {
    idempotency_key: String,
    channel: String,
    payload: String,
    inbound_id: Option<i64>,
    delivery_status: Option<String>,
    delivery_error: Option<String>,
    delivery_at: Option<EpochMs>,
    created_at: EpochMs,
}

struct StateValue {
    value: String,
    expires_at: Option<EpochMs>,
    updated_at: EpochMs,
}

impl StateValue {
    fn is_live(&self, now: EpochMs) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

struct PairingEntry {
    code: String,
    display_name: Option<String>,
    created_at: EpochMs,
    expires_at: EpochMs,
}

struct QuotaWindow {
    taken: u64,
    updated_at: EpochMs,
    window_end: EpochMs,
}

// ---- the lease cycle -----------------------------------------------------------------------------

/// One queue: its rows in id order and the lease cycle of its [`QueueSpec`].
struct LeaseQueue<S: 'static, T> {
    spec: &'static QueueSpec<S>,
    rows: BTreeMap<i64, Leased<S, T>>,
    /// Ids are never reused (AUTOINCREMENT / identity on the SQL backends): ids order a lane.
    last_id: i64,
}

/// A queue row: the lease columns every queue has, and the queue's own `item`.
struct Leased<S, T> {
    lane: String,
    state: S,
    attempts: u32,
    next_at: EpochMs,
    lease_owner: Option<String>,
    lease_until: Option<EpochMs>,
    last_error: Option<String>,
    /// The spec's success column (the inbox's outcome, the outbox's platform message id).
    success: Option<String>,
    updated_at: EpochMs,
    item: T,
}

impl<S: QueueState, T> LeaseQueue<S, T> {
    fn new(spec: &'static QueueSpec<S>) -> Self {
        Self { spec, rows: BTreeMap::new(), last_id: 0 }
    }

    fn insert(&mut self, lane: String, next_at: EpochMs, now: EpochMs, item: T) -> i64 {
        self.last_id += 1;
        let row = Leased {
            lane,
            state: self.spec.fresh,
            attempts: 0,
            next_at,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            success: None,
            updated_at: now,
            item,
        };
        self.rows.insert(self.last_id, row);
        self.last_id
    }

    /// Claims up to `limit` ready rows, oldest first, only the oldest unfinished row of a lane.
    fn claim(&mut self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs) -> Vec<i64> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut claimed = Vec::new();
        let mut held_lanes = HashSet::new();
        for (&id, row) in &self.rows {
            if claimed.len() >= limit {
                break;
            }
            if !self.spec.is_open(row.state) || !held_lanes.insert(row.lane.as_str()) {
                continue;
            }
            if self.is_claimable(row, now) {
                claimed.push(id);
            }
        }
        for &id in &claimed {
            self.take_lease(id, worker, lease_ms, now);
        }
        claimed
    }

    /// Claims the fresh row `id` if it is due and no older unfinished row holds its lane.
    fn claim_fresh(&mut self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> bool {
        let Some(row) = self.rows.get(&id) else { return false };
        let lane_free = !self.rows.range(..id).any(|(_, o)| o.lane == row.lane && self.spec.is_open(o.state));
        if row.state != self.spec.fresh || row.next_at > now || !lane_free {
            return false;
        }
        self.take_lease(id, worker, lease_ms, now);
        true
    }

    fn is_claimable(&self, row: &Leased<S, T>, now: EpochMs) -> bool {
        (self.spec.is_ready(row.state) && row.next_at <= now)
            || (row.state == self.spec.leased && row.lease_until.unwrap_or(0) < now)
    }

    fn take_lease(&mut self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.state = self.spec.leased;
            row.lease_owner = Some(worker.to_owned());
            row.lease_until = Some(deadline(now, lease_ms));
            row.attempts = row.attempts.saturating_add(1);
            row.updated_at = now;
        }
    }

    /// The row, if `worker` holds its lease.
    fn leased_by(&mut self, id: i64, worker: &str) -> Option<&mut Leased<S, T>> {
        let leased = self.spec.leased;
        self.rows.get_mut(&id).filter(|r| r.state == leased && r.lease_owner.as_deref() == Some(worker))
    }

    /// Moves a row `worker` holds to `state`, clearing the lease.
    fn finish(&mut self, id: i64, worker: &str, state: S, now: EpochMs) -> Option<&mut Leased<S, T>> {
        let row = self.leased_by(id, worker)?;
        row.state = state;
        row.lease_owner = None;
        row.lease_until = None;
        row.updated_at = now;
        Some(row)
    }

    fn renew(&mut self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> bool {
        let Some(row) = self.leased_by(id, worker) else { return false };
        row.lease_until = Some(deadline(now, lease_ms));
        row.updated_at = now;
        true
    }

    fn succeed(&mut self, id: i64, worker: &str, result: Option<&str>, now: EpochMs) -> bool {
        let state = self.spec.succeeded;
        self.finish(id, worker, state, now).map(|row| row.success = result.map(str::to_owned)).is_some()
    }

    fn retry(&mut self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> bool {
        let state = self.spec.retry;
        self.finish(id, worker, state, now)
            .map(|row| {
                row.last_error = Some(error.to_owned());
                row.next_at = next_at;
            })
            .is_some()
    }

    fn give_up(&mut self, id: i64, worker: &str, reason: &str, now: EpochMs) -> bool {
        let state = self.spec.given_up;
        self.finish(id, worker, state, now).map(|row| row.last_error = Some(reason.to_owned())).is_some()
    }

    /// Undoes the claim: its attempt taken back, fresh again after a first attempt, else retry;
    /// `next_at` and `updated_at` unchanged.
    fn release(&mut self, id: i64, worker: &str) {
        let spec = self.spec;
        if let Some(row) = self.leased_by(id, worker) {
            row.state = spec.released(row.attempts);
            row.attempts = row.attempts.saturating_sub(1);
            row.lease_owner = None;
            row.lease_until = None;
        }
    }

    /// A given-up row back to fresh with no attempts, due at `now` (an operator's retry).
    fn revive(&mut self, id: i64, now: EpochMs) -> bool {
        let spec = self.spec;
        match self.rows.get_mut(&id) {
            Some(row) if row.state == spec.given_up => {
                row.state = spec.fresh;
                row.attempts = 0;
                row.next_at = now;
                row.lease_owner = None;
                row.lease_until = None;
                row.updated_at = now;
                true
            }
            _ => false,
        }
    }

    /// `(state, count)` of every state present.
    fn counts(&self) -> Vec<(String, i64)> {
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for row in self.rows.values() {
            *counts.entry(row.state.as_str()).or_default() += 1;
        }
        counts.into_iter().map(|(state, n)| (state.to_owned(), n)).collect()
    }

    fn dead_letters(&self) -> impl Iterator<Item = DeadLetter> + '_ {
        self.rows.iter().filter(|(_, r)| r.state == self.spec.given_up).map(|(&id, r)| DeadLetter {
            queue: self.spec.table,
            id,
            lane: r.lane.clone(),
            reason: r.last_error.clone().unwrap_or_default(),
            attempts: r.attempts,
            at: r.updated_at,
        })
    }

    /// Removes finished rows last updated before `before`; their items.
    fn prune(&mut self, before: EpochMs) -> Vec<T> {
        let spec = self.spec;
        let finished: Vec<i64> = self
            .rows
            .iter()
            .filter(|(_, r)| (r.state == spec.succeeded || r.state == spec.given_up) && r.updated_at < before)
            .map(|(&id, _)| id)
            .collect();
        finished.into_iter().filter_map(|id| self.rows.remove(&id)).map(|r| r.item).collect()
    }
}

impl LeaseQueue<InboxState, InboxItem> {
    fn row(&self, id: i64) -> Result<Option<InboundRow>> {
        let Some(r) = self.rows.get(&id) else { return Ok(None) };
        let message = serde_json::from_str(&r.item.payload).map_err(|e| corrupt(format!("inbox {id}"), e))?;
        Ok(Some(InboundRow {
            id,
            message,
            lane: Lane::from_stored(r.lane.clone()),
            state: r.state,
            attempts: r.attempts,
            outcome: r.success.clone(),
            last_error: r.last_error.clone(),
            received_at: r.item.received_at,
        }))
    }

    fn rows_of(&self, ids: &[i64]) -> Result<Vec<InboundRow>> {
        ids.iter().filter_map(|&id| self.row(id).transpose()).collect()
    }
}

impl LeaseQueue<OutboxState, OutboxItem> {
    fn row(&self, id: i64) -> Result<Option<OutboundRow>> {
        let Some(r) = self.rows.get(&id) else { return Ok(None) };
        let message = serde_json::from_str(&r.item.payload).map_err(|e| corrupt(format!("outbox {id}"), e))?;
        Ok(Some(OutboundRow {
            id,
            idempotency_key: IdempotencyKey::new(r.item.idempotency_key.clone()),
            message,
            lane: Lane::from_stored(r.lane.clone()),
            inbound_id: r.item.inbound_id,
            state: r.state,
            attempts: r.attempts,
            next_at: r.next_at,
            last_error: r.last_error.clone(),
            platform_message_id: r.success.clone(),
            delivery_status: r.item.delivery_status.clone(),
            delivery_error: r.item.delivery_error.clone(),
            created_at: r.item.created_at,
        }))
    }

    fn rows_of(&self, ids: &[i64]) -> Result<Vec<OutboundRow>> {
        ids.iter().filter_map(|&id| self.row(id).transpose()).collect()
    }
}

impl State {
    /// Enqueues one encoded message unless its key exists; the row id either way.
    fn enqueue(&mut self, m: &OutboundInsert<'_>, now: EpochMs) -> i64 {
        if let Some(&id) = self.outbox_ids.get(m.key) {
            return id;
        }
        let item = OutboxItem {
            idempotency_key: m.key.to_owned(),
            channel: m.channel.to_owned(),
            payload: m.payload.clone(),
            inbound_id: m.inbound_id,
            delivery_status: None,
            delivery_error: None,
            delivery_at: None,
            created_at: now,
        };
        let id = self.outbox.insert(m.lane.clone(), m.next_at, now, item);
        self.outbox_ids.insert(m.key.to_owned(), id);
        id
    }

    fn complete(
        &mut self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        claim_lease_ms: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<Completed> {
        if self.inbox.leased_by(id, worker).is_none() {
            tracing::debug!(id, worker, "complete_inbound: lease lost");
            return Ok(Completed::LeaseLost);
        }
        // Encoded before anything changes: a reply that cannot be stored leaves the row claimed.
        let encoded = replies.iter().map(|m| OutboundInsert::new(m, now)).collect::<Result<Vec<_>>>()?;
        // Cannot fail: the lease was checked above, under the same lock.
        self.inbox.succeed(id, worker, Some(outcome), now);
        let ids: Vec<i64> = encoded.iter().map(|m| self.enqueue(m, now)).collect();
        let first_reply = match (claim_lease_ms, ids.first()) {
            (Some(lease_ms), Some(&first)) if self.outbox.claim_fresh(first, worker, lease_ms, now) => {
                self.outbox.row(first)?.map(Box::new)
            }
            _ => None,
        };
        Ok(Completed::Done { first_reply })
    }
}

/// The unique violation a SQL backend raises for a pairing code already in use, so callers see
/// the same [`StoreError::Database`] (and `is_unique_violation`) on every backend.
#[derive(Debug)]
struct UniqueViolation {
    message: String,
}

impl std::fmt::Display for UniqueViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UniqueViolation {}

impl sqlx::error::DatabaseError for UniqueViolation {
    fn message(&self) -> &str {
        &self.message
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn constraint(&self) -> Option<&str> {
        Some("pairing_requests_code_unique")
    }

    fn table(&self) -> Option<&str> {
        Some("pairing_requests")
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::UniqueViolation
    }
}

fn code_in_use() -> StoreError {
    StoreError::Database(sqlx::Error::Database(Box::new(UniqueViolation {
        message: "duplicate key value violates unique constraint \"pairing_requests_code_unique\" \
                  (pairing_requests: channel, code)"
            .to_owned(),
    })))
}

/// Keeps the values `keep` accepts; how many went.
fn retain_counted<K: Ord, V>(map: &mut BTreeMap<K, V>, mut keep: impl FnMut(&V) -> bool) -> u64 {
    let before = map.len();
    map.retain(|_, v| keep(v));
    u64::try_from(before - map.len()).unwrap_or(u64::MAX)
}

fn peer_key(channel: &ChannelId, account: &AccountId, peer: &PeerId) -> (String, String, String) {
    (channel.as_str().to_owned(), account.as_str().to_owned(), peer.as_str().to_owned())
}

// ---- the capabilities ------------------------------------------------------------------------------

#[async_trait]
impl InboxQueue for MemoryStore {
    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome> {
        let payload = inbound_payload(msg)?;
        let key =
            (msg.channel.as_str().to_owned(), msg.account.as_str().to_owned(), msg.message_id.as_str().to_owned());
        let mut state = self.lock()?;
        if let Some(&id) = state.inbox_ids.get(&key) {
            return Ok(InsertOutcome::Duplicate(id));
        }
        let item = InboxItem { key: key.clone(), payload, received_at: now };
        let id = state.inbox.insert(msg.lane().as_str().to_owned(), now, now, item);
        state.inbox_ids.insert(key, id);
        Ok(InsertOutcome::Inserted(id))
    }

    async fn claim_inbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<InboundRow>> {
        let mut state = self.lock()?;
        let ids = state.inbox.claim(worker, limit, lease_ms, now);
        state.inbox.rows_of(&ids)
    }

    async fn renew_inbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.inbox.renew(id, worker, lease_ms, now))
    }

    async fn complete_inbound(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        now: EpochMs,
    ) -> Result<bool> {
        Ok(self.lock()?.complete(id, worker, outcome, replies, None, now)? != Completed::LeaseLost)
    }

    async fn complete_inbound_and_claim(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Completed> {
        self.lock()?.complete(id, worker, outcome, replies, Some(lease_ms), now)
    }

    async fn fail_inbound(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        Ok(match retry_at {
            Some(at) => state.inbox.retry(id, worker, error, at, now),
            None => state.inbox.give_up(id, worker, error, now),
        })
    }

    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()> {
        self.lock()?.inbox.release(id, worker);
        Ok(())
    }

    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        self.read()?.inbox.row(id)
    }
}

#[async_trait]
impl OutboxQueue for MemoryStore {
    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>> {
        // All encoded first: a message that cannot be stored enqueues none (one transaction).
        let encoded = messages.iter().map(|m| OutboundInsert::new(m, now)).collect::<Result<Vec<_>>>()?;
        let mut state = self.lock()?;
        Ok(encoded.iter().map(|m| state.enqueue(m, now)).collect())
    }

    async fn claim_outbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<OutboundRow>> {
        let mut state = self.lock()?;
        let ids = state.outbox.claim(worker, limit, lease_ms, now);
        state.outbox.rows_of(&ids)
    }

    async fn renew_outbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.outbox.renew(id, worker, lease_ms, now))
    }

    async fn mark_sent(&self, id: i64, worker: &str, platform_message_id: Option<&str>, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.outbox.succeed(id, worker, platform_message_id, now))
    }

    async fn mark_retry(&self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.outbox.retry(id, worker, error, next_at, now))
    }

    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.outbox.give_up(id, worker, reason, now))
    }

    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()> {
        self.lock()?.outbox.release(id, worker);
        Ok(())
    }

    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>> {
        self.read()?.outbox.row(id)
    }

    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<bool> {
        let rank = delivery_rank(&update.status);
        let failed = update.status == "failed";
        let mut known = false;
        for row in self.lock()?.outbox.rows.values_mut() {
            if row.item.channel != update.channel.as_str()
                || row.success.as_deref() != Some(update.platform_message_id.as_str())
            {
                continue;
            }
            known = true;
            if failed || delivery_rank(row.item.delivery_status.as_deref().unwrap_or("")) < rank {
                row.item.delivery_status = Some(update.status.clone());
                if failed {
                    row.item.delivery_error.clone_from(&update.error);
                }
                row.item.delivery_at = Some(update.at);
            }
        }
        Ok(known)
    }
}

#[async_trait]
impl Dedup for MemoryStore {
    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        match state.seen_keys.get_mut(&(namespace.to_owned(), key.to_owned())) {
            Some(at) if *at > now => Ok(false),
            Some(at) => {
                *at = expires_at;
                Ok(true)
            }
            None => {
                state.seen_keys.insert((namespace.to_owned(), key.to_owned()), expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl Cursors for MemoryStore {
    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>> {
        let key = (channel.as_str().to_owned(), account.as_str().to_owned(), name.to_owned());
        Ok(self.read()?.cursors.get(&key).cloned())
    }

    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
        _now: EpochMs,
    ) -> Result<()> {
        let key = (channel.as_str().to_owned(), account.as_str().to_owned(), name.to_owned());
        self.lock()?.cursors.insert(key, value.to_owned());
        Ok(())
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        let until = deadline(now, ttl_ms);
        match state.leases.get_mut(name) {
            Some((current, held_until)) if *held_until < now || current == holder => {
                holder.clone_into(current);
                *held_until = until;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                state.leases.insert(name.to_owned(), (holder.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut state = self.lock()?;
        if state.leases.get(name).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(name);
        }
        Ok(())
    }
}

#[async_trait]
impl ChannelState for MemoryStore {
    async fn put_state(&self, entry: &StatePut<'_>, if_absent: bool, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        let key = (entry.namespace.to_owned(), entry.key.to_owned());
        // "Absent" for a one-time claim: no value, or one whose expiry has passed.
        let blocked =
            if_absent && state.channel_state.get(&key).is_some_and(|v| v.expires_at.is_none_or(|at| at > now));
        if blocked {
            return Ok(false);
        }
        let value = StateValue { value: entry.value.to_owned(), expires_at: entry.expires_at, updated_at: now };
        state.channel_state.insert(key, value);
        Ok(true)
    }

    async fn get_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        let state = self.read()?;
        let value = state.channel_state.get(&(namespace.to_owned(), key.to_owned()));
        Ok(value.filter(|v| v.is_live(now)).map(|v| v.value.clone()))
    }

    async fn take_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        let mut state = self.lock()?;
        let key = (namespace.to_owned(), key.to_owned());
        if !state.channel_state.get(&key).is_some_and(|v| v.is_live(now)) {
            return Ok(None);
        }
        Ok(state.channel_state.remove(&key).map(|v| v.value))
    }

    async fn list_state(&self, namespace: &str, limit: u32, now: EpochMs) -> Result<Vec<StateEntry>> {
        let state = self.read()?;
        let mut entries: Vec<StateEntry> = state
            .channel_state
            .iter()
            .filter(|((ns, _), v)| ns == namespace && v.is_live(now))
            .map(|((_, key), v)| StateEntry { key: key.clone(), value: v.value.clone(), updated_at: v.updated_at })
            .collect();
        entries.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.key.cmp(&b.key)));
        entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(entries)
    }
}

#[async_trait]
impl Pairing for MemoryStore {
    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome> {
        let mut state = self.lock()?;
        let key = peer_key(&req.channel, &req.account, &req.peer);
        if state.approved.contains_key(&key) {
            return Ok(PairingOutcome::AlreadyApproved);
        }
        if let Some(pending) = state.pairing_requests.get(&key).filter(|r| r.expires_at > now) {
            return Ok(PairingOutcome::Pending { code: pending.code.clone(), expires_at: pending.expires_at });
        }
        let (channel, account) = (req.channel.as_str(), req.account.as_str());
        let open = state
            .pairing_requests
            .iter()
            .filter(|((c, a, _), r)| c == channel && a == account && r.expires_at > now)
            .count();
        if open >= usize::try_from(req.max_pending).unwrap_or(usize::MAX) {
            return Ok(PairingOutcome::TooMany);
        }
        let code = normalize_code(code);
        // Expired requests that would block the new one: the peer's own, and any holding the code.
        state.pairing_requests.retain(|(c, a, p), r| {
            let blocking = (a == account && p == req.peer.as_str()) || r.code == code;
            !(r.expires_at <= now && c == channel && blocking)
        });
        if state.pairing_requests.iter().any(|((c, _, _), r)| c == channel && r.code == code) {
            return Err(code_in_use());
        }
        let expires_at = deadline(now, req.ttl_ms);
        let entry =
            PairingEntry { code: code.clone(), display_name: req.display_name.clone(), created_at: now, expires_at };
        state.pairing_requests.insert(key, entry);
        Ok(PairingOutcome::Issued { code, expires_at })
    }

    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>> {
        let state = self.read()?;
        let mut pending: Vec<PendingPairing> = state
            .pairing_requests
            .iter()
            .filter(|((c, _, _), r)| r.expires_at > now && channel.is_none_or(|ch| ch.as_str() == c))
            .map(|((c, a, p), r)| PendingPairing {
                channel: ChannelId::new(c.clone()),
                account: AccountId::new(a.clone()),
                peer: PeerId::new(p.clone()),
                display_name: r.display_name.clone(),
                code: r.code.clone(),
                created_at: r.created_at,
                expires_at: r.expires_at,
            })
            .collect();
        // The map is ordered by (channel, account, peer); a stable sort keeps that within a time.
        pending.sort_by_key(|p| p.created_at);
        Ok(pending)
    }

    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>> {
        let mut state = self.lock()?;
        let code = normalize_code(code);
        let found = state
            .pairing_requests
            .iter()
            .find(|((c, _, _), r)| c == channel.as_str() && r.code == code && r.expires_at > now)
            .map(|(key, _)| key.clone());
        let Some(key) = found else { return Ok(None) };
        let Some(request) = state.pairing_requests.remove(&key) else { return Ok(None) };
        state.approved.insert(key.clone(), (request.display_name.clone(), now));
        let (_, account, peer) = key;
        Ok(Some(ApprovedPeer {
            channel: channel.clone(),
            account: AccountId::new(account),
            peer: PeerId::new(peer),
            display_name: request.display_name,
            approved_at: now,
        }))
    }

    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Ok(self.read()?.approved.contains_key(&peer_key(channel, account, peer)))
    }

    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>> {
        let state = self.read()?;
        let mut approved: Vec<ApprovedPeer> = state
            .approved
            .iter()
            .filter(|((c, _, _), _)| channel.is_none_or(|ch| ch.as_str() == c))
            .map(|((c, a, p), (display_name, approved_at))| ApprovedPeer {
                channel: ChannelId::new(c.clone()),
                account: AccountId::new(a.clone()),
                peer: PeerId::new(p.clone()),
                display_name: display_name.clone(),
                approved_at: *approved_at,
            })
            .collect();
        approved.sort_by_key(|p| p.approved_at);
        Ok(approved)
    }

    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Ok(self.lock()?.approved.remove(&peer_key(channel, account, peer)).is_some())
    }

    async fn reject_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        let code = normalize_code(code);
        let found = state
            .pairing_requests
            .iter()
            .find(|((c, _, _), r)| c == channel.as_str() && r.code == code && r.expires_at > now)
            .map(|(key, _)| key.clone());
        Ok(found.and_then(|key| state.pairing_requests.remove(&key)).is_some())
    }
}

#[async_trait]
impl ConsoleStore for MemoryStore {
    async fn recent_lanes(&self, limit: u32) -> Result<Vec<LaneSummary>> {
        let state = self.read()?;
        // lane → (inbound, outbound, last at, (channel, account, peer)).
        let mut lanes: HashMap<String, (u64, u64, EpochMs, (ChannelId, AccountId, PeerId))> = HashMap::new();
        for (&id, r) in &state.inbox.rows {
            if let Some(row) = state.inbox.row(id)? {
                let m = row.message;
                let entry = lanes.entry(r.lane.clone()).or_insert((0, 0, EpochMs::MIN, (m.channel, m.account, m.peer)));
                entry.0 += 1;
                entry.2 = entry.2.max(r.item.received_at);
            }
        }
        for (&id, r) in &state.outbox.rows {
            if let Some(row) = state.outbox.row(id)? {
                let m = row.message;
                let entry = lanes.entry(r.lane.clone()).or_insert((0, 0, EpochMs::MIN, (m.channel, m.account, m.peer)));
                entry.1 += 1;
                entry.2 = entry.2.max(r.item.created_at);
            }
        }
        let mut out: Vec<LaneSummary> = lanes
            .into_iter()
            .map(|(lane, (inbound, outbound, last_at, (channel, account, peer)))| LaneSummary {
                lane,
                channel,
                account,
                peer,
                inbound,
                outbound,
                last_at,
            })
            .collect();
        out.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.lane.cmp(&b.lane)));
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }

    async fn lane_inbound(&self, lane: &str, limit: u32) -> Result<Vec<InboundRow>> {
        let state = self.read()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let ids: Vec<i64> =
            state.inbox.rows.iter().rev().filter(|(_, r)| r.lane == lane).map(|(&id, _)| id).take(limit).collect();
        ids.into_iter().filter_map(|id| state.inbox.row(id).transpose()).collect()
    }

    async fn lane_outbound(&self, lane: &str, limit: u32) -> Result<Vec<OutboundRow>> {
        let state = self.read()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let ids: Vec<i64> =
            state.outbox.rows.iter().rev().filter(|(_, r)| r.lane == lane).map(|(&id, _)| id).take(limit).collect();
        ids.into_iter().filter_map(|id| state.outbox.row(id).transpose()).collect()
    }

    async fn act_on_dead_letter(
        &self,
        queue: &str,
        id: i64,
        action: DeadLetterAction,
        actor: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let done = match (queue, action) {
            ("outbox", DeadLetterAction::Retry) => state.outbox.revive(id, now),
            ("inbox", DeadLetterAction::Retry) => state.inbox.revive(id, now),
            ("outbox", DeadLetterAction::Discard) => {
                let dead = state.outbox.rows.get(&id).is_some_and(|r| r.state == OutboxState::Dead);
                if let Some(row) = dead.then(|| state.outbox.rows.remove(&id)).flatten() {
                    state.outbox_ids.remove(&row.item.idempotency_key);
                }
                dead
            }
            ("inbox", DeadLetterAction::Discard) => match state.inbox.rows.get_mut(&id) {
                Some(row) if row.state == InboxState::Failed => {
                    row.state = InboxState::Done;
                    row.success = Some("discarded".to_owned());
                    row.updated_at = now;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if done {
            let next = state.audit.last().map_or(1, |a| a.id + 1);
            let target = format!("{queue}/{id}");
            state.audit.push(memory_audit(next, actor, &dead_letter_audit(action), &target, "", now));
        }
        Ok(done)
    }

    async fn record_audit(&self, actor: &str, action: &str, target: &str, detail: &str, now: EpochMs) -> Result<()> {
        let mut state = self.lock()?;
        let next = state.audit.last().map_or(1, |a| a.id + 1);
        state.audit.push(memory_audit(next, actor, action, target, detail, now));
        Ok(())
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self.read()?.audit.iter().rev().take(limit).cloned().collect())
    }
}

#[async_trait]
impl Secrets for MemoryStore {
    async fn put_secret_blob(&self, name: &str, blob: &[u8], _now: EpochMs) -> Result<()> {
        self.lock()?.secrets.insert(name.to_owned(), blob.to_vec());
        Ok(())
    }

    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read()?.secrets.get(name).cloned())
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        Ok(self.lock()?.secrets.remove(name).is_some())
    }
}

#[async_trait]
impl Quotas for MemoryStore {
    async fn take_quota(
        &self,
        key: &str,
        window_start: EpochMs,
        window_ms: EpochMs,
        limit: u64,
        n: u64,
        now: EpochMs,
    ) -> Result<QuotaTake> {
        // The SQL backends count in BIGINT.
        let clamp = |v: u64| v.min(i64::MAX.unsigned_abs());
        let (limit, n) = (clamp(limit), clamp(n));
        let window_end = quota_window_end(window_start, window_ms);
        let slot = (key.to_owned(), window_start);
        let mut state = self.lock()?;
        let taken = state.quotas.get(&slot).map_or(0, |w| w.taken);
        if n > limit || taken > limit - n {
            return Ok(QuotaTake::Refused { count: taken, window_end });
        }
        let w = state.quotas.entry(slot).or_insert(QuotaWindow { taken: 0, updated_at: now, window_end });
        w.taken += n;
        w.updated_at = now;
        Ok(QuotaTake::Granted { count: w.taken })
    }
}

#[async_trait]
impl Operations for MemoryStore {
    async fn queue_stats(&self) -> Result<QueueStats> {
        let state = self.read()?;
        let delivery_failed =
            state.outbox.rows.values().filter(|r| r.item.delivery_status.as_deref() == Some("failed")).count();
        Ok(queue_stats(
            &state.inbox.counts(),
            &state.outbox.counts(),
            i64::try_from(delivery_failed).unwrap_or(i64::MAX),
        ))
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        let state = self.read()?;
        let failed_deliveries =
            state.outbox.rows.iter().filter(|(_, r)| r.item.delivery_status.as_deref() == Some("failed")).map(
                |(&id, r)| DeadLetter {
                    queue: "delivery",
                    id,
                    lane: r.lane.clone(),
                    reason: r.item.delivery_error.clone().unwrap_or_else(|| "failed".to_owned()),
                    attempts: r.attempts,
                    at: r.item.delivery_at.unwrap_or(r.updated_at),
                },
            );
        let all = state
            .outbox
            .dead_letters()
            .chain(state.inbox.dead_letters())
            .chain(state.bizmsg.dead_letters())
            .chain(failed_deliveries)
            .collect();
        Ok(merge_dead_letters(all, limit))
    }

    /// Memory is always writable: there is no disk or server that could refuse.
    async fn check_writable(&self, _now: EpochMs) -> Result<()> {
        Ok(())
    }

    async fn prune(&self, before: EpochMs) -> Result<u64> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let mut removed = 0;
        for item in state.inbox.prune(before) {
            state.inbox_ids.remove(&item.key);
            removed += 1;
        }
        for item in state.outbox.prune(before) {
            state.outbox_ids.remove(&item.idempotency_key);
            removed += 1;
        }
        for item in state.bizmsg.prune(before) {
            state.bizmsg_ids.remove(&item.message.idempotency_key);
            removed += 1;
        }
        removed += retain_counted(&mut state.seen_keys, |expires_at| *expires_at >= before);
        removed += retain_counted(&mut state.pairing_requests, |r| r.expires_at >= before);
        removed += retain_counted(&mut state.channel_state, |v| v.expires_at.is_none_or(|at| at >= before));
        removed += retain_counted(&mut state.quotas, |w| w.window_end >= before);
        Ok(removed)
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
}

// ---- business messages ---------------------------------------------------------------------------

struct BizmsgItem {
    message: NewBizmsg,
    request_key: Option<String>,
    result: Option<String>,
    result_code: Option<String>,
    result_reason: Option<String>,
    fallback: Option<String>,
    result_rank: i64,
    result_at: Option<EpochMs>,
    created_at: EpochMs,
}

impl LeaseQueue<BizmsgState, BizmsgItem> {
    fn row(&self, id: i64) -> Option<BizmsgRow> {
        let r = self.rows.get(&id)?;
        let m = &r.item.message;
        Some(BizmsgRow {
            id,
            idempotency_key: m.idempotency_key.clone(),
            account: m.account.clone(),
            product: m.product.clone(),
            dealer: m.dealer.clone(),
            recipient: m.recipient.clone(),
            template_code: m.template_code.clone(),
            payload: m.payload.clone(),
            origin: m.origin.clone(),
            state: r.state,
            attempts: r.attempts,
            next_at: r.next_at,
            last_error: r.last_error.clone(),
            dealer_id: r.success.clone(),
            request_key: r.item.request_key.clone(),
            result: r.item.result.clone(),
            result_code: r.item.result_code.clone(),
            result_reason: r.item.result_reason.clone(),
            fallback: r.item.fallback.clone(),
            result_at: r.item.result_at,
            created_at: r.item.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[async_trait]
impl BizmsgQueue for MemoryStore {
    async fn enqueue_bizmsg(&self, messages: &[NewBizmsg], now: EpochMs) -> Result<Vec<Enqueued>> {
        let mut state = self.lock()?;
        let state = &mut *state;
        Ok(messages
            .iter()
            .map(|m| {
                if let Some(&id) = state.bizmsg_ids.get(&m.idempotency_key) {
                    return Enqueued { id, new: false };
                }
                let item = BizmsgItem {
                    message: m.clone(),
                    request_key: None,
                    result: None,
                    result_code: None,
                    result_reason: None,
                    fallback: None,
                    result_rank: 0,
                    result_at: None,
                    created_at: now,
                };
                let id = state.bizmsg.insert(bizmsg_lane(m), m.not_before, now, item);
                state.bizmsg_ids.insert(m.idempotency_key.clone(), id);
                Enqueued { id, new: true }
            })
            .collect())
    }

    async fn claim_bizmsg(&self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs) -> Result<Vec<BizmsgRow>> {
        let mut state = self.lock()?;
        let ids = state.bizmsg.claim(worker, limit, lease_ms, now);
        Ok(ids.iter().filter_map(|&id| state.bizmsg.row(id)).collect())
    }

    async fn set_bizmsg_request(
        &self,
        ids: &[i64],
        worker: &str,
        request_key: Option<&str>,
        now: EpochMs,
    ) -> Result<u64> {
        let mut state = self.lock()?;
        let mut marked = 0;
        for &id in ids {
            if let Some(row) = state.bizmsg.leased_by(id, worker) {
                row.item.request_key = request_key.map(str::to_owned);
                row.updated_at = now;
                marked += 1;
            }
        }
        Ok(marked)
    }

    async fn mark_bizmsg_accepted(&self, id: i64, worker: &str, dealer_id: &str, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.bizmsg.succeed(id, worker, Some(dealer_id), now))
    }

    async fn mark_bizmsg_retry(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        next_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        Ok(self.lock()?.bizmsg.retry(id, worker, error, next_at, now))
    }

    async fn mark_bizmsg_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Ok(self.lock()?.bizmsg.give_up(id, worker, reason, now))
    }

    async fn release_bizmsg(&self, id: i64, worker: &str) -> Result<()> {
        self.lock()?.bizmsg.release(id, worker);
        Ok(())
    }

    async fn get_bizmsg(&self, id: i64) -> Result<Option<BizmsgRow>> {
        Ok(self.read()?.bizmsg.row(id))
    }

    async fn bizmsg_of_request(&self, request_key: &str) -> Result<Vec<BizmsgRow>> {
        let state = self.read()?;
        Ok(state
            .bizmsg
            .rows
            .iter()
            .filter(|(_, r)| r.item.request_key.as_deref() == Some(request_key))
            .filter_map(|(&id, _)| state.bizmsg.row(id))
            .collect())
    }

    async fn record_bizmsg_result(&self, result: &BizmsgResult) -> Result<bool> {
        let mut state = self.lock()?;
        let row = state.bizmsg.rows.values_mut().find(|r| {
            r.item.message.dealer == result.dealer && r.success.as_deref() == Some(result.dealer_id.as_str())
        });
        let Some(row) = row.filter(|r| r.item.result_rank <= result.rank) else { return Ok(false) };
        let item = &row.item;
        let fallback = result.fallback.clone().or_else(|| item.fallback.clone());
        let same = item.result_rank == result.rank
            && item.result.as_deref() == Some(result.result.as_str())
            && item.result_code == result.code
            && item.result_reason == result.reason
            && item.fallback == fallback;
        if same {
            return Ok(false);
        }
        row.item.result = Some(result.result.clone());
        row.item.result_code = result.code.clone();
        row.item.result_reason = result.reason.clone();
        if result.fallback.is_some() {
            row.item.fallback = result.fallback.clone();
        }
        row.item.result_rank = result.rank;
        row.item.result_at = Some(result.at);
        row.updated_at = result.at;
        Ok(true)
    }

    async fn unfinished_bizmsg(&self, dealer: &str, from: EpochMs, to: EpochMs, limit: u32) -> Result<Vec<BizmsgRow>> {
        let state = self.read()?;
        let mut rows: Vec<BizmsgRow> = state
            .bizmsg
            .rows
            .iter()
            .filter(|(_, r)| {
                r.state == BizmsgState::Accepted
                    && r.item.message.dealer == dealer
                    && (from..=to).contains(&r.updated_at)
                    && !crate::bizmsg::result_is_final(r.item.result.as_deref(), r.item.fallback.as_deref())
            })
            .filter_map(|(&id, _)| state.bizmsg.row(id))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.updated_at, r.id)));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    async fn bizmsg_stats(&self) -> Result<BizmsgStats> {
        let state = self.read()?;
        let mut states: Vec<(String, u64)> =
            state.bizmsg.counts().into_iter().map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))).collect();
        states.sort();
        let mut results: BTreeMap<String, u64> = BTreeMap::new();
        for row in state.bizmsg.rows.values() {
            if let Some(result) = &row.item.result {
                *results.entry(result.clone()).or_default() += 1;
            }
        }
        Ok(BizmsgStats { states, results: results.into_iter().collect() })
    }
}
