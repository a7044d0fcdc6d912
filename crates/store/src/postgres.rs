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

use crate::model::{
    ApprovedPeer, DeadLetter, DeliveryUpdate, InboundRow, InsertOutcome, NewOutbound, OutboundRow, PairingOutcome,
    PairingRequest, PendingPairing, QueueStats, delivery_rank,
};
use crate::record::{
    ApprovedRecord, DeadRecord, InboxRecord, OutboundInsert, OutboxRecord, PairingRecord, deadline, inbound_payload,
    inbox_columns, merge_dead_letters, oldest_first, outbox_columns,
};
use crate::sql::{self, claim_inbox_set, claim_outbox_set, claimable_inbox, claimable_outbox};
use crate::{Result, Store, StoreError, redact_url};
use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId, pairing::normalize_code};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long to wait for the server when connecting: long enough for a slow network, short
/// enough that `doctor` and start-up report an unreachable server instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per process. Claims and writes are short statements; replicas add capacity.
const MAX_CONNECTIONS: u32 = 10;

const CLAIM_INBOUND: &str = concat!(
    "WITH claimable AS (",
    claimable_inbox!(),
    " FOR UPDATE OF c SKIP LOCKED) ",
    claim_inbox_set!(),
    "WHERE id IN (SELECT id FROM claimable) RETURNING ",
    inbox_columns!()
);

const CLAIM_OUTBOUND: &str = concat!(
    "WITH claimable AS (",
    claimable_outbox!(),
    " FOR UPDATE OF c SKIP LOCKED) ",
    claim_outbox_set!(),
    "WHERE id IN (SELECT id FROM claimable) RETURNING ",
    outbox_columns!()
);

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
            .connect_with(options.clone())
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

/// Inserts one outbox row unless its key exists; returns the row id either way.
async fn insert_outbound(conn: &mut PgConnection, m: &NewOutbound, now: EpochMs) -> Result<i64> {
    let row = OutboundInsert::new(m, now)?;
    // ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit, after which
    // the next statement (a new snapshot under READ COMMITTED) sees that row.
    let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_OUTBOUND)
        .bind(row.key)
        .bind(&row.lane)
        .bind(row.channel)
        .bind(row.account)
        .bind(row.peer)
        .bind(row.inbound_id)
        .bind(&row.payload)
        .bind(row.next_at)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    match inserted {
        Some(id) => Ok(id),
        None => Ok(sqlx::query_scalar(sql::FIND_OUTBOUND).bind(row.key).fetch_one(&mut *conn).await?),
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome> {
        let payload = inbound_payload(msg)?;
        // Between the insert that found a conflict and the lookup, another replica's `prune` could
        // delete the old row; then inserting again succeeds. Twice is enough: the second insert
        // either succeeds or conflicts with a row that is not prunable (it is new).
        for _ in 0..2 {
            let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_INBOUND)
                .bind(msg.channel.as_str())
                .bind(msg.account.as_str())
                .bind(msg.peer.as_str())
                .bind(msg.message_id.as_str())
                .bind(msg.lane().as_str())
                .bind(&payload)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(id) = inserted {
                return Ok(InsertOutcome::Inserted(id));
            }
            let existing: Option<i64> = sqlx::query_scalar(sql::FIND_INBOUND)
                .bind(msg.channel.as_str())
                .bind(msg.account.as_str())
                .bind(msg.message_id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(id) = existing {
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
        let records: Vec<InboxRecord> = sqlx::query_as(CLAIM_INBOUND)
            .bind(now)
            .bind(i64::from(limit))
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .fetch_all(&self.pool)
            .await?;
        let rows = records.into_iter().map(InboxRecord::into_row).collect::<Result<Vec<_>>>()?;
        Ok(oldest_first(rows, |r| r.id))
    }

    async fn renew_inbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::RENEW_INBOUND)
            .bind(id)
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_inbound(
        &self,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        now: EpochMs,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The update comes first: it locks the row, so a replica re-claiming it after the lease
        // ran out waits for this transaction and then sees `done`.
        let done =
            sqlx::query(sql::COMPLETE_INBOUND).bind(id).bind(worker).bind(outcome).bind(now).execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            tracing::debug!(id, worker, "complete_inbound: lease lost");
            return Ok(false);
        }
        for reply in replies {
            insert_outbound(&mut tx, reply, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_inbound(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        let done = match retry_at {
            Some(at) => {
                sqlx::query(sql::RETRY_INBOUND)
                    .bind(id)
                    .bind(worker)
                    .bind(error)
                    .bind(at)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(sql::FAIL_INBOUND).bind(id).bind(worker).bind(error).bind(now).execute(&self.pool).await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_INBOUND).bind(id).bind(worker).execute(&self.pool).await?;
        Ok(())
    }

    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        let record: Option<InboxRecord> = sqlx::query_as(sql::GET_INBOUND).bind(id).fetch_optional(&self.pool).await?;
        record.map(InboxRecord::into_row).transpose()
    }

    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            ids.push(insert_outbound(&mut tx, m, now).await?);
        }
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
        let records: Vec<OutboxRecord> = sqlx::query_as(CLAIM_OUTBOUND)
            .bind(now)
            .bind(i64::from(limit))
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .fetch_all(&self.pool)
            .await?;
        let rows = records.into_iter().map(OutboxRecord::into_row).collect::<Result<Vec<_>>>()?;
        Ok(oldest_first(rows, |r| r.id))
    }

    async fn mark_sent(&self, id: i64, worker: &str, platform_message_id: Option<&str>, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::MARK_SENT)
            .bind(id)
            .bind(worker)
            .bind(platform_message_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_retry(&self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::MARK_RETRY)
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(next_at)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::MARK_DEAD).bind(id).bind(worker).bind(reason).bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_OUTBOUND).bind(id).bind(worker).execute(&self.pool).await?;
        Ok(())
    }

    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>> {
        let record: Option<OutboxRecord> =
            sqlx::query_as(sql::GET_OUTBOUND).bind(id).fetch_optional(&self.pool).await?;
        record.map(OutboxRecord::into_row).transpose()
    }

    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<bool> {
        let moved = sqlx::query(sql::RECORD_DELIVERY)
            .bind(update.channel.as_str())
            .bind(&update.platform_message_id)
            .bind(&update.status)
            .bind(update.error.as_deref())
            .bind(update.at)
            .bind(i64::from(delivery_rank(&update.status)))
            .execute(&self.pool)
            .await?;
        if moved.rows_affected() > 0 {
            return Ok(true);
        }
        let known: Option<i64> = sqlx::query_scalar(sql::FIND_PLATFORM_ID)
            .bind(update.channel.as_str())
            .bind(&update.platform_message_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(known.is_some())
    }

    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::GET_CURSOR)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
        now: EpochMs,
    ) -> Result<()> {
        sqlx::query(sql::SET_CURSOR)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::TRY_LEASE)
            .bind(name)
            .bind(holder)
            .bind(deadline(now, ttl_ms))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_LEASE).bind(name).bind(holder).execute(&self.pool).await?;
        Ok(())
    }

    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::REMEMBER_KEY)
            .bind(namespace)
            .bind(key)
            .bind(expires_at)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_PAIRING_ACCOUNT)
            .bind(format!("{}/{}", req.channel.as_str(), req.account.as_str()))
            .execute(&mut *tx)
            .await?;
        let outcome = pairing::request(&mut tx, req, code, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>> {
        let records: Vec<PairingRecord> = sqlx::query_as(sql::LIST_PAIRINGS)
            .bind(now)
            .bind(channel.map(ChannelId::as_str))
            .fetch_all(&self.pool)
            .await?;
        Ok(records.into_iter().map(PendingPairing::from).collect())
    }

    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>> {
        let mut tx = self.pool.begin().await?;
        let approved = pairing::approve(&mut tx, channel, code, now).await?;
        tx.commit().await?;
        Ok(approved)
    }

    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        let at: Option<i64> = sqlx::query_scalar(sql::IS_APPROVED)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(at.is_some())
    }

    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>> {
        let records: Vec<ApprovedRecord> =
            sqlx::query_as(sql::LIST_APPROVED).bind(channel.map(ChannelId::as_str)).fetch_all(&self.pool).await?;
        Ok(records.into_iter().map(ApprovedPeer::from).collect())
    }

    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_PEER)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_secret_blob(&self, name: &str, blob: &[u8], now: EpochMs) -> Result<()> {
        sqlx::query(sql::PUT_SECRET).bind(name).bind(blob).bind(now).execute(&self.pool).await?;
        Ok(())
    }

    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::GET_SECRET).bind(name).fetch_optional(&self.pool).await?)
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_SECRET).bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        // One snapshot for the three counts, so they describe the same moment.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let inbox: Vec<(String, i64)> = sqlx::query_as(sql::INBOX_COUNTS).fetch_all(&mut *tx).await?;
        let outbox: Vec<(String, i64)> = sqlx::query_as(sql::OUTBOX_COUNTS).fetch_all(&mut *tx).await?;
        let failed: i64 = sqlx::query_scalar(sql::DELIVERY_FAILED_COUNT).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(crate::record::queue_stats(&inbox, &outbox, failed))
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        let mut all = Vec::new();
        for (queue, query) in
            [("outbox", sql::DEAD_OUTBOX), ("inbox", sql::FAILED_INBOX), ("delivery", sql::FAILED_DELIVERIES)]
        {
            let records: Vec<DeadRecord> = sqlx::query_as(query).bind(i64::from(limit)).fetch_all(&self.pool).await?;
            all.extend(records.into_iter().map(|r| r.into_dead_letter(queue)));
        }
        Ok(merge_dead_letters(all, limit))
    }

    async fn check_writable(&self, now: EpochMs) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::WRITE_HEARTBEAT).bind(now).execute(&mut *tx).await?;
        let at: i64 = sqlx::query_scalar(sql::READ_HEARTBEAT).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        crate::record::check_heartbeat(at, now)
    }

    async fn prune(&self, before: EpochMs) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for statement in sql::PRUNE {
            removed += sqlx::query(statement).bind(before).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Pairing steps run inside the caller's transaction (which holds the account's advisory lock).
mod pairing {
    use super::*;

    pub(super) async fn request(
        conn: &mut PgConnection,
        req: &PairingRequest,
        code: &str,
        now: EpochMs,
    ) -> Result<PairingOutcome> {
        let (channel, account, peer) = (req.channel.as_str(), req.account.as_str(), req.peer.as_str());
        let approved: Option<i64> = sqlx::query_scalar(sql::IS_APPROVED)
            .bind(channel)
            .bind(account)
            .bind(peer)
            .fetch_optional(&mut *conn)
            .await?;
        if approved.is_some() {
            return Ok(PairingOutcome::AlreadyApproved);
        }
        let pending: Option<(String, i64)> = sqlx::query_as(sql::PENDING_OF_PEER)
            .bind(channel)
            .bind(account)
            .bind(peer)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some((code, expires_at)) = pending {
            return Ok(PairingOutcome::Pending { code, expires_at });
        }
        let open: i64 =
            sqlx::query_scalar(sql::COUNT_PENDING).bind(channel).bind(account).bind(now).fetch_one(&mut *conn).await?;
        if open >= i64::from(req.max_pending) {
            return Ok(PairingOutcome::TooMany);
        }
        let code = normalize_code(code);
        sqlx::query(sql::DELETE_BLOCKING_EXPIRED)
            .bind(channel)
            .bind(account)
            .bind(peer)
            .bind(&code)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        let expires_at = deadline(now, req.ttl_ms);
        sqlx::query(sql::INSERT_PAIRING)
            .bind(channel)
            .bind(account)
            .bind(peer)
            .bind(&code)
            .bind(req.display_name.as_deref())
            .bind(now)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
        Ok(PairingOutcome::Issued { code, expires_at })
    }

    pub(super) async fn approve(
        conn: &mut PgConnection,
        channel: &ChannelId,
        code: &str,
        now: EpochMs,
    ) -> Result<Option<ApprovedPeer>> {
        // DELETE … RETURNING locks the request: a second operator approving the same code waits,
        // then finds it gone.
        let taken: Option<(String, String, Option<String>)> = sqlx::query_as(sql::TAKE_PAIRING)
            .bind(channel.as_str())
            .bind(normalize_code(code))
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        let Some((account, peer, display_name)) = taken else {
            return Ok(None);
        };
        sqlx::query(sql::UPSERT_APPROVED)
            .bind(channel.as_str())
            .bind(&account)
            .bind(&peer)
            .bind(display_name.as_deref())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(Some(ApprovedPeer {
            channel: channel.clone(),
            account: AccountId::new(account),
            peer: PeerId::new(peer),
            display_name,
            approved_at: now,
        }))
    }
}
