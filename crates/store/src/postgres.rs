//! The scale-out backend: several clawbridge replicas share one PostgreSQL database.
//!
//! Safety across processes comes from the database, not from the process:
//! - dedup through unique keys and `INSERT … ON CONFLICT DO NOTHING`;
//! - claims through `SELECT … FOR UPDATE SKIP LOCKED` plus a lease (`lease_owner`,
//!   `lease_until`) written in the same statement, so two replicas never take the same row and a
//!   dead replica's rows come back when its lease runs out;
//! - per-lane order through the claim rule itself (only the oldest unfinished row of a lane is
//!   claimable), re-checked by PostgreSQL on a row that changed while the claim waited for it;
//! - pairing requests of one account serialised with a transaction-scoped advisory lock, so
//!   the "at most N pending" count cannot be raced;
//! - migrations under sqlx's `pg_advisory_lock` (taken before it even creates its bookkeeping
//!   table), so replicas starting together apply each migration once.

use crate::bizmsg::{BizmsgQueue, BizmsgResult, BizmsgRow, BizmsgStats, Enqueued, NewBizmsg};
use crate::campaign::{
    Added, CampaignCounts, CampaignRow, CampaignState, CampaignStore, Claimed, NewCampaign, NewRecipient, RecipientRow,
    RecipientState, SendKind, Suppression,
};
use crate::common::Backend;
use crate::console::{AuditEntry, ConsoleStore, DeadLetterAction, LaneSummary};
use crate::model::{
    ApprovedPeer, Completed, DeadLetter, DeliveryUpdate, InboundRow, InsertOutcome, NewOutbound, OutboundRow,
    PairingOutcome, PairingRequest, PendingPairing, QueueStats, QuotaTake, StateEntry, StatePut,
};
use crate::queue::QueueSql;
use crate::record::{check_heartbeat, inbound_payload};
use crate::{
    ChannelState, Cursors, Dedup, InboxQueue, Operations, OutboxQueue, Pairing, Quotas, Result, Secrets, Store,
    StoreError, redact_url,
};
use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The shared store logic, run on PostgreSQL.
type Queries = crate::common::Queries<Postgres>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long to wait for the server when connecting: long enough for a slow network, short
/// enough that `doctor` and start-up report an unreachable server instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A statement that runs longer than this is cancelled by the server (a stuck query must not
/// hold a pooled connection and its locks forever); the URL's own `options` win.
const STATEMENT_TIMEOUT: &str = "30s";
/// Waiting for a row or table lock longer than this fails the statement (retried by the caller)
/// instead of queueing behind a stuck transaction.
const LOCK_TIMEOUT: &str = "10s";
/// A session idle inside a transaction this long is ended by the server, releasing its locks.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

/// `options` with the server-side timeouts of every pooled connection, except those the URL
/// sets itself.
fn with_timeouts(options: PgConnectOptions) -> PgConnectOptions {
    let given = options.get_options().unwrap_or("").to_owned();
    let mut options = options;
    for (name, value) in [
        ("statement_timeout", STATEMENT_TIMEOUT),
        ("lock_timeout", LOCK_TIMEOUT),
        ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT),
    ] {
        if !given.contains(name) {
            options = options.options([(name, value)]);
        }
    }
    options
}

/// Connections per process. Claims and writes are short statements; replicas add capacity.
const MAX_CONNECTIONS: u32 = 10;

/// Serialises pairing requests of one (channel, account) until the transaction ends.
const LOCK_PAIRING_ACCOUNT: &str = "SELECT pg_advisory_xact_lock(hashtext('clawbridge.pairing'), hashtext($1))";

/// The PostgreSQL store. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?…`) and runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Config`] when the URL is malformed or the server cannot be reached (the
    /// message names the server, never the password); other errors as they come.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Config(format!(
                "CLAWBRIDGE_DATABASE_URL {} is not a valid PostgreSQL URL: {e}",
                redact_url(url)
            ))
        })?;
        Self::connect_with(options).await
    }

    /// Connects with prepared options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`], which is how the tests give each run its own schema) and
    /// runs the migrations in the first schema of the search path.
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        // The migrations run on a connection of their own that is closed afterwards: sqlx's
        // session-level advisory lock is not released if a migration fails half-way, and a
        // pooled connection would keep it (and block every other replica) for its lifetime.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| unreachable(&options, "no answer within 10 s"))?
            .map_err(|e| connect_error(&options, e))?;
        run_migrations(&mut conn).await?;
        conn.close().await?;

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(with_timeouts(options.clone()))
            .await
            .map_err(|e| connect_error(&options, e))?;
        Ok(Self { pool })
    }

    /// The connection pool, for callers that need PostgreSQL-only features (advisory locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs the pending migrations on `conn`.
///
/// `Migrator::run(&mut conn)` would be the obvious call, but its `Acquire<'a>` bound makes every
/// future awaiting it fail the `Send` check ("implementation of `Acquire` is not general
/// enough"), so the store could not be opened inside `tokio::spawn`. `run_direct` is the entry
/// point sqlx itself provides for exactly this (see its source); it takes the same lock and does
/// the same work.
async fn run_migrations(conn: &mut PgConnection) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run_direct(None, conn, false).await
}

/// Where we tried to connect, without the password.
fn target(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

fn unreachable(options: &PgConnectOptions, why: impl std::fmt::Display) -> StoreError {
    StoreError::Config(format!(
        "cannot connect to PostgreSQL at {} ({why}); check CLAWBRIDGE_DATABASE_URL and that the server is \
         running and accepts connections from this host",
        target(options)
    ))
}

/// Connection-level failures (network, TLS, authentication) become advice; errors the server
/// raised while running a statement stay database errors.
fn connect_error(options: &PgConnectOptions, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Configuration(_) => {
            unreachable(options, err)
        }
        sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c.starts_with("28") || c == "3D000") => {
            // 28xxx: authentication / authorisation; 3D000: the database does not exist.
            unreachable(options, err)
        }
        other => StoreError::Database(other),
    }
}

impl Backend for Postgres {
    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Several replicas claim at once: each skips the rows another is taking.
    fn claim_statement(sql: &'static QueueSql) -> &'static str {
        &sql.claim_skip_locked
    }
}

impl PgStore {
    /// Completes an inbound row in one transaction (see `Queries::complete_inbound`); nothing is
    /// written when the lease was lost.
    async fn complete(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        claim_lease_ms: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<Completed> {
        let mut tx = self.pool.begin().await?;
        let completed = Queries::complete_inbound(&mut tx, id, worker, outcome, replies, claim_lease_ms, now).await?;
        if completed == Completed::LeaseLost {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(completed)
    }
}

#[async_trait]
impl InboxQueue for PgStore {
    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome> {
        let payload = inbound_payload(msg)?;
        // Between the insert that found a conflict and the lookup, another replica's `prune` could
        // delete the old row; then inserting again succeeds. Twice is enough: the second insert
        // either succeeds or conflicts with a row that is not prunable (it is new).
        for _ in 0..2 {
            if let Some(id) = Queries::insert_inbound(&self.pool, msg, &payload, now).await? {
                return Ok(InsertOutcome::Inserted(id));
            }
            if let Some(id) = Queries::find_inbound(&self.pool, msg).await? {
                return Ok(InsertOutcome::Duplicate(id));
            }
        }
        Err(StoreError::Corrupt {
            what: format!("inbox {}", msg.message_id),
            detail: "conflicting row vanished twice during insert".to_owned(),
        })
    }

    async fn claim_inbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<InboundRow>> {
        Queries::claim(&self.pool, worker, limit, lease_ms, now).await
    }

    async fn renew_inbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::renew::<InboundRow>(&self.pool, id, worker, lease_ms, now).await
    }

    async fn complete_inbound(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        now: EpochMs,
    ) -> Result<bool> {
        Ok(self.complete(id, worker, outcome, replies, None, now).await? != Completed::LeaseLost)
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
        self.complete(id, worker, outcome, replies, Some(lease_ms), now).await
    }

    async fn fail_inbound(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::fail_inbound(&self.pool, id, worker, error, retry_at, now).await
    }

    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<InboundRow>(&self.pool, id, worker).await
    }

    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        Queries::get(&self.pool, id).await
    }
}

#[async_trait]
impl OutboxQueue for PgStore {
    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let ids = Queries::enqueue_outbound(&mut tx, messages, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn claim_outbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<OutboundRow>> {
        Queries::claim(&self.pool, worker, limit, lease_ms, now).await
    }

    async fn renew_outbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::renew::<OutboundRow>(&self.pool, id, worker, lease_ms, now).await
    }

    async fn mark_sent(&self, id: i64, worker: &str, platform_message_id: Option<&str>, now: EpochMs) -> Result<bool> {
        Queries::succeed::<OutboundRow>(&self.pool, id, worker, platform_message_id, now).await
    }

    async fn mark_retry(&self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::retry::<OutboundRow>(&self.pool, id, worker, error, next_at, now).await
    }

    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Queries::give_up::<OutboundRow>(&self.pool, id, worker, reason, now).await
    }

    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<OutboundRow>(&self.pool, id, worker).await
    }

    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>> {
        Queries::get(&self.pool, id).await
    }

    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<bool> {
        Queries::record_delivery(&self.pool, &self.pool, update).await
    }
}

#[async_trait]
impl Dedup for PgStore {
    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::remember_key(&self.pool, namespace, key, expires_at, now).await
    }
}

#[async_trait]
impl Cursors for PgStore {
    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>> {
        Queries::get_cursor(&self.pool, channel, account, name).await
    }

    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
        now: EpochMs,
    ) -> Result<()> {
        Queries::set_cursor(&self.pool, channel, account, name, value, now).await
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::try_lease(&self.pool, name, holder, ttl_ms, now).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        Queries::release_lease(&self.pool, name, holder).await
    }
}

#[async_trait]
impl ChannelState for PgStore {
    async fn put_state(&self, entry: &StatePut<'_>, if_absent: bool, now: EpochMs) -> Result<bool> {
        Queries::put_state(&self.pool, entry, if_absent, now).await
    }

    async fn get_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        Queries::get_state(&self.pool, namespace, key, now).await
    }

    async fn take_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        Queries::take_state(&self.pool, namespace, key, now).await
    }

    async fn list_state(&self, namespace: &str, limit: u32, now: EpochMs) -> Result<Vec<StateEntry>> {
        Queries::list_state(&self.pool, namespace, limit, now).await
    }
}

#[async_trait]
impl Pairing for PgStore {
    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_PAIRING_ACCOUNT)
            .bind(format!("{}/{}", req.channel.as_str(), req.account.as_str()))
            .execute(&mut *tx)
            .await?;
        let outcome = Queries::request_pairing(&mut tx, req, code, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>> {
        Queries::list_pairings(&self.pool, channel, now).await
    }

    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>> {
        let mut tx = self.pool.begin().await?;
        let approved = Queries::approve_pairing(&mut tx, channel, code, now).await?;
        tx.commit().await?;
        Ok(approved)
    }

    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Queries::is_approved(&self.pool, channel, account, peer).await
    }

    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>> {
        Queries::list_approved(&self.pool, channel).await
    }

    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Queries::revoke_peer(&self.pool, channel, account, peer).await
    }
    async fn reject_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<bool> {
        Queries::reject_pairing(&self.pool, channel, code, now).await
    }
}

#[async_trait]
impl ConsoleStore for PgStore {
    async fn recent_lanes(&self, limit: u32) -> Result<Vec<LaneSummary>> {
        Queries::recent_lanes(&self.pool, limit).await
    }

    async fn lane_inbound(&self, lane: &str, limit: u32) -> Result<Vec<InboundRow>> {
        Queries::lane_inbound(&self.pool, lane, limit).await
    }

    async fn lane_outbound(&self, lane: &str, limit: u32) -> Result<Vec<OutboundRow>> {
        Queries::lane_outbound(&self.pool, lane, limit).await
    }

    async fn act_on_dead_letter(
        &self,
        queue: &str,
        id: i64,
        action: DeadLetterAction,
        actor: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = Queries::act_on_dead_letter(&mut tx, queue, id, action, actor, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn record_audit(&self, actor: &str, action: &str, target: &str, detail: &str, now: EpochMs) -> Result<()> {
        Queries::record_audit(&self.pool, actor, action, target, detail, now).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Queries::audit_log(&self.pool, limit).await
    }
}

#[async_trait]
impl Secrets for PgStore {
    async fn put_secret_blob(&self, name: &str, blob: &[u8], now: EpochMs) -> Result<()> {
        Queries::put_secret_blob(&self.pool, name, blob, now).await
    }

    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Queries::get_secret_blob(&self.pool, name).await
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        Queries::delete_secret(&self.pool, name).await
    }
}

#[async_trait]
impl BizmsgQueue for PgStore {
    async fn enqueue_bizmsg(&self, messages: &[NewBizmsg], now: EpochMs) -> Result<Vec<Enqueued>> {
        let mut tx = self.pool.begin().await?;
        let out = Queries::enqueue_bizmsg(&mut tx, messages, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn claim_bizmsg(&self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs) -> Result<Vec<BizmsgRow>> {
        Queries::claim(&self.pool, worker, limit, lease_ms, now).await
    }

    async fn set_bizmsg_request(
        &self,
        ids: &[i64],
        worker: &str,
        request_key: Option<&str>,
        now: EpochMs,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let marked = Queries::set_bizmsg_request(&mut tx, ids, worker, request_key, now).await?;
        tx.commit().await?;
        Ok(marked)
    }

    async fn mark_bizmsg_accepted(&self, id: i64, worker: &str, dealer_id: &str, now: EpochMs) -> Result<bool> {
        Queries::succeed::<BizmsgRow>(&self.pool, id, worker, Some(dealer_id), now).await
    }

    async fn mark_bizmsg_retry(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        next_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::retry::<BizmsgRow>(&self.pool, id, worker, error, next_at, now).await
    }

    async fn mark_bizmsg_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Queries::give_up::<BizmsgRow>(&self.pool, id, worker, reason, now).await
    }

    async fn release_bizmsg(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<BizmsgRow>(&self.pool, id, worker).await
    }

    async fn get_bizmsg(&self, id: i64) -> Result<Option<BizmsgRow>> {
        Queries::get(&self.pool, id).await
    }

    async fn bizmsg_of_request(&self, request_key: &str) -> Result<Vec<BizmsgRow>> {
        Queries::bizmsg_of_request(&self.pool, request_key).await
    }

    async fn record_bizmsg_result(&self, result: &BizmsgResult) -> Result<bool> {
        Queries::record_bizmsg_result(&self.pool, result).await
    }

    async fn unfinished_bizmsg(&self, dealer: &str, from: EpochMs, to: EpochMs, limit: u32) -> Result<Vec<BizmsgRow>> {
        Queries::unfinished_bizmsg(&self.pool, dealer, from, to, limit).await
    }

    async fn bizmsg_stats(&self) -> Result<BizmsgStats> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let stats = Queries::bizmsg_stats(&mut tx).await?;
        tx.commit().await?;
        Ok(stats)
    }
}

#[async_trait]
impl Quotas for PgStore {
    async fn take_quota(
        &self,
        key: &str,
        window_start: EpochMs,
        window_ms: EpochMs,
        limit: u64,
        n: u64,
        now: EpochMs,
    ) -> Result<QuotaTake> {
        Queries::take_quota(&self.pool, key, window_start, window_ms, limit, n, now).await
    }
}

#[async_trait]
impl Operations for PgStore {
    async fn queue_stats(&self) -> Result<QueueStats> {
        // One snapshot for the three counts, so they describe the same moment.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let stats = Queries::queue_stats(&mut tx).await?;
        tx.commit().await?;
        Ok(stats)
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        Queries::dead_letters(&self.pool, limit).await
    }

    async fn check_writable(&self, now: EpochMs) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = Queries::heartbeat(&mut tx, now).await?;
        tx.commit().await?;
        check_heartbeat(at, now)
    }

    async fn prune(&self, before: EpochMs) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let removed = Queries::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(removed)
    }
}

#[async_trait]
impl CampaignStore for PgStore {
    async fn create_campaign(&self, campaign: &NewCampaign, now: EpochMs) -> Result<bool> {
        Queries::create_campaign(&self.pool, campaign, now).await
    }

    async fn add_campaign_recipients(
        &self,
        campaign: &str,
        account: &str,
        recipients: &[NewRecipient],
        now: EpochMs,
    ) -> Result<Added> {
        let mut tx = self.pool.begin().await?;
        let added = Queries::add_campaign_recipients(&mut tx, campaign, account, recipients, now).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn set_campaign_summary(&self, campaign: &str, summary: &str, now: EpochMs) -> Result<()> {
        Queries::set_campaign_summary(&self.pool, campaign, summary, now).await
    }

    async fn get_campaign(&self, campaign: &str) -> Result<Option<CampaignRow>> {
        Queries::get_campaign(&self.pool, campaign).await
    }

    async fn list_campaigns(&self, limit: u32) -> Result<Vec<CampaignRow>> {
        Queries::list_campaigns(&self.pool, limit).await
    }

    async fn delete_campaign(&self, campaign: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = Queries::delete_campaign(&mut tx, campaign).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn transition_campaign(
        &self,
        campaign: &str,
        from: &[CampaignState],
        to: CampaignState,
        note: Option<&str>,
        start_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::transition_campaign(&self.pool, campaign, from, to, note, start_at, now).await
    }

    async fn set_campaign_waiting(&self, campaign: &str, until: Option<EpochMs>, now: EpochMs) -> Result<()> {
        Queries::set_campaign_waiting(&self.pool, campaign, until, now).await
    }

    async fn due_campaigns(&self, now: EpochMs) -> Result<Vec<CampaignRow>> {
        Queries::due_campaigns(&self.pool, now).await
    }

    async fn claim_campaign_recipients(
        &self,
        campaign: &str,
        account: &str,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Claimed> {
        let mut tx = self.pool.begin().await?;
        let claimed = Queries::claim_campaign_recipients(
            &mut tx,
            crate::campaign::CLAIM_SKIP_LOCKED,
            campaign,
            account,
            worker,
            limit,
            lease_ms,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn mark_campaign_recipient_queued(
        &self,
        id: i64,
        worker: &str,
        kind: SendKind,
        send_ref: i64,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::mark_campaign_recipient_queued(&self.pool, id, worker, kind, send_ref, now).await
    }

    async fn mark_campaign_recipient_failed(
        &self,
        id: i64,
        worker: &str,
        code: &str,
        reason: &str,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::mark_campaign_recipient_failed(&self.pool, id, worker, code, reason, now).await
    }

    async fn release_campaign_recipient(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release_campaign_recipient(&self.pool, id, worker).await
    }

    async fn cancel_campaign_recipients(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        Queries::cancel_campaign_recipients(&self.pool, campaign, now).await
    }

    async fn release_held_recipients(&self, campaign: &str, variant: &str, now: EpochMs) -> Result<u64> {
        Queries::release_held_recipients(&self.pool, campaign, variant, now).await
    }

    async fn set_campaign_spec(&self, campaign: &str, spec: &str, now: EpochMs) -> Result<()> {
        Queries::set_campaign_spec(&self.pool, campaign, spec, now).await
    }

    async fn sync_campaign_results(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        let mut changed = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let (step, full) = Queries::sync_step(&mut tx, campaign, now).await?;
            tx.commit().await?;
            changed += step;
            if !full || step == 0 {
                return Ok(changed);
            }
        }
    }

    async fn get_campaign_recipient(&self, id: i64) -> Result<Option<RecipientRow>> {
        Queries::get_campaign_recipient(&self.pool, id).await
    }

    async fn campaign_recipients(
        &self,
        campaign: &str,
        state: Option<RecipientState>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRow>> {
        Queries::campaign_recipients(&self.pool, campaign, state, after_id, limit).await
    }

    async fn campaign_counts(&self, campaign: &str) -> Result<CampaignCounts> {
        let mut tx = self.pool.begin().await?;
        let counts = Queries::campaign_counts(&mut tx, campaign).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn campaign_timeline(&self, campaign: &str, bucket_ms: EpochMs) -> Result<Vec<(EpochMs, u64, u64)>> {
        let mut tx = self.pool.begin().await?;
        let timeline = Queries::campaign_timeline(&mut tx, campaign, bucket_ms).await?;
        tx.commit().await?;
        Ok(timeline)
    }

    async fn recent_campaign_counts(&self, since: EpochMs) -> Result<Vec<(String, RecipientState, u64)>> {
        Queries::recent_campaign_counts(&self.pool, since).await
    }

    async fn record_click(&self, campaign: &str, recipient: i64, link: u32, now: EpochMs) -> Result<bool> {
        Queries::record_click(&self.pool, campaign, recipient, link, now).await
    }

    async fn suppress(&self, entry: &Suppression) -> Result<bool> {
        Queries::suppress(&self.pool, entry).await
    }

    async fn unsuppress(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Queries::unsuppress(&self.pool, account, recipient_key).await
    }

    async fn list_suppressions(&self, account: Option<&str>, limit: u32) -> Result<Vec<Suppression>> {
        Queries::list_suppressions(&self.pool, account, limit).await
    }

    async fn is_suppressed(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Queries::is_suppressed(&self.pool, account, recipient_key).await
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
}
