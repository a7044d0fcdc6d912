//! The embedded backend: one SQLite file in the state dir.
//!
//! SQLite allows one writer at a time. Rather than letting connections fight over the write lock
//! (and surface `SQLITE_BUSY`), every write goes through a pool of exactly one connection, so
//! writes queue inside the process; reads use a separate small pool and, thanks to WAL, never
//! wait for the writer. Transactions that read before they write start with `BEGIN IMMEDIATE`,
//! which takes the write lock up front: a second process on the same file then waits
//! (`busy_timeout`) instead of failing on a lock upgrade.

use crate::model::{
    ApprovedPeer, DeadLetter, DeliveryUpdate, InboundRow, InsertOutcome, NewOutbound, OutboundRow, PairingOutcome,
    PairingRequest, PendingPairing, QueueStats, delivery_rank,
};
use crate::record::{
    ApprovedRecord, DeadRecord, InboxRecord, OutboundInsert, OutboxRecord, PairingRecord, deadline, inbound_payload,
    inbox_columns, merge_dead_letters, oldest_first, outbox_columns,
};
use crate::sql::{self, claim_inbox_set, claim_outbox_set, claimable_inbox, claimable_outbox};
use crate::{Result, Store, StoreError};
use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId, pairing::normalize_code};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a task waits for the (single) writer connection. Writes are short; a wait this long
/// means the disk is stuck, and an error is more useful than hanging.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers do not block each other under WAL; a few are enough for status pages and lookups.
const READERS: u32 = 4;

const CLAIM_INBOUND: &str =
    concat!(claim_inbox_set!(), "WHERE id IN (", claimable_inbox!(), ") RETURNING ", inbox_columns!());

const CLAIM_OUTBOUND: &str =
    concat!(claim_outbox_set!(), "WHERE id IN (", claimable_outbox!(), ") RETURNING ", outbox_columns!());

/// The SQLite store. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: all writes, including claims, are serialised here, which is what
    /// makes a claim race-free within the process without retry loops.
    writer: SqlitePool,
    /// Read-only connections for lookups and reports; WAL lets them run beside the writer.
    reader: SqlitePool,
    /// The database file, for messages.
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs the migrations.
    ///
    /// The parent directory is created if missing. The journal is WAL with
    /// `synchronous = FULL`: WAL with `NORMAL` survives a crash of the process but may lose the
    /// last commits on power loss, and an inbox insert is the moment the platform is told "got
    /// it" — it will not redeliver, so a lost commit is a lost message. FULL costs one fsync per
    /// commit, which is nothing at chat-message rates.
    ///
    /// # Errors
    /// [`StoreError::Config`] naming the path and the fix when the directory cannot be created
    /// or written, or the file is not a SQLite database.
    pub async fn open(path: &Path) -> Result<Self> {
        if path.as_os_str().is_empty() {
            return Err(StoreError::Config(
                "the SQLite database path is empty; set CLAWBRIDGE_DATABASE_URL=sqlite:///path/to/clawbridge.db \
                 or unset it to use the state dir"
                    .to_owned(),
            ));
        }
        if path.as_os_str() == ":memory:" {
            return Err(StoreError::Config(
                "an in-memory SQLite database cannot be the store: everything would be lost on restart; \
                 give a file path (sqlite:///path/to/clawbridge.db)"
                    .to_owned(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Config(format!(
                    "cannot create the directory {} for the SQLite database: {e}; create it with write \
                     permission for this user, or point CLAWBRIDGE_STATE_DIR / CLAWBRIDGE_DATABASE_URL elsewhere",
                    dir.display()
                ))
            })?;
        }

        let base = SqliteConnectOptions::new().filename(path).busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(WRITER_ACQUIRE_TIMEOUT)
            .connect_with(writer_options)
            .await
            .map_err(|e| open_error(path, e))?;

        migrate(&writer).await.map_err(|e| match e {
            StoreError::Database(e) => open_error(path, e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => open_error(path, e),
            other => other,
        })?;

        // Opened after the writer: the file exists and is in WAL mode, which a read-only
        // connection could not arrange itself.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| open_error(path, e))?;

        Ok(Self { writer, reader, path: path.to_owned() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools, letting SQLite checkpoint the WAL into the main file.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction holding the write lock from its first statement.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Runs the migrations under `BEGIN IMMEDIATE`: sqlx's SQLite migrator takes no lock, so two
/// processes starting on a fresh file could both try to apply version 1. Holding the write lock
/// across "which versions ran?" and "apply" makes the second wait and then find nothing to do.
async fn migrate(writer: &SqlitePool) -> Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    run_migrations(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs the pending migrations on `conn`.
///
/// `Migrator::run(&mut conn)` would be the obvious call, but its `Acquire<'a>` bound makes every
/// future awaiting it fail the `Send` check ("implementation of `Acquire` is not general
/// enough"), so the store could not be opened inside `tokio::spawn`. `run_direct` is the entry
/// point sqlx itself provides for exactly this (see its source); it takes the same lock and does
/// the same work.
async fn run_migrations(conn: &mut SqliteConnection) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run_direct(None, conn, false).await
}

/// Turns the errors of opening a file into advice; everything else stays a database error.
fn open_error(path: &Path, err: sqlx::Error) -> StoreError {
    // Primary SQLite result codes (the low byte of an extended code).
    const SQLITE_PERM: i64 = 3;
    const SQLITE_READONLY: i64 = 8;
    const SQLITE_CORRUPT: i64 = 11;
    const SQLITE_CANTOPEN: i64 = 14;
    const SQLITE_NOTADB: i64 = 26;

    let p = path.display();
    let code = match &err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff),
        _ => None,
    };
    match code {
        Some(SQLITE_NOTADB | SQLITE_CORRUPT) => StoreError::Config(format!(
            "{p} is not a usable SQLite database ({err}): the file is corrupt or not a database. \
             Move it aside (`mv {p} {p}.broken`) so a new one is created, or restore it from a backup"
        )),
        Some(SQLITE_CANTOPEN) => StoreError::Config(format!(
            "cannot open the SQLite database {p} ({err}): make sure its directory exists and is writable by \
             this user, or point CLAWBRIDGE_STATE_DIR / CLAWBRIDGE_DATABASE_URL elsewhere"
        )),
        Some(SQLITE_READONLY | SQLITE_PERM) => StoreError::Config(format!(
            "the SQLite database {p} is read-only for this user ({err}): fix the permissions of the file and \
             its directory (the -wal and -shm files are created next to it), or point CLAWBRIDGE_STATE_DIR \
             elsewhere"
        )),
        _ => StoreError::Database(err),
    }
}

/// Inserts one outbox row unless its key exists; returns the row id either way.
async fn insert_outbound(conn: &mut SqliteConnection, m: &NewOutbound, now: EpochMs) -> Result<i64> {
    let row = OutboundInsert::new(m, now)?;
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome> {
        let payload = inbound_payload(msg)?;
        // One writer: nothing can delete the conflicting row between the two statements.
        let mut tx = self.write_tx().await?;
        let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_INBOUND)
            .bind(msg.channel.as_str())
            .bind(msg.account.as_str())
            .bind(msg.peer.as_str())
            .bind(msg.message_id.as_str())
            .bind(msg.lane().as_str())
            .bind(&payload)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match inserted {
            Some(id) => InsertOutcome::Inserted(id),
            None => InsertOutcome::Duplicate(
                sqlx::query_scalar(sql::FIND_INBOUND)
                    .bind(msg.channel.as_str())
                    .bind(msg.account.as_str())
                    .bind(msg.message_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?,
            ),
        };
        tx.commit().await?;
        Ok(outcome)
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
            .fetch_all(&self.writer)
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
            .execute(&self.writer)
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
        let mut tx = self.write_tx().await?;
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
                    .execute(&self.writer)
                    .await?
            }
            None => {
                sqlx::query(sql::FAIL_INBOUND).bind(id).bind(worker).bind(error).bind(now).execute(&self.writer).await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_INBOUND).bind(id).bind(worker).execute(&self.writer).await?;
        Ok(())
    }

    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        let record: Option<InboxRecord> =
            sqlx::query_as(sql::GET_INBOUND).bind(id).fetch_optional(&self.reader).await?;
        record.map(InboxRecord::into_row).transpose()
    }

    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>> {
        let mut tx = self.write_tx().await?;
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
            .fetch_all(&self.writer)
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
            .execute(&self.writer)
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
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        let done =
            sqlx::query(sql::MARK_DEAD).bind(id).bind(worker).bind(reason).bind(now).execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_OUTBOUND).bind(id).bind(worker).execute(&self.writer).await?;
        Ok(())
    }

    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>> {
        let record: Option<OutboxRecord> =
            sqlx::query_as(sql::GET_OUTBOUND).bind(id).fetch_optional(&self.reader).await?;
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
            .execute(&self.writer)
            .await?;
        if moved.rows_affected() > 0 {
            return Ok(true);
        }
        let known: Option<i64> = sqlx::query_scalar(sql::FIND_PLATFORM_ID)
            .bind(update.channel.as_str())
            .bind(&update.platform_message_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(known.is_some())
    }

    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::GET_CURSOR)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(name)
            .fetch_optional(&self.reader)
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
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::TRY_LEASE)
            .bind(name)
            .bind(holder)
            .bind(deadline(now, ttl_ms))
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_LEASE).bind(name).bind(holder).execute(&self.writer).await?;
        Ok(())
    }

    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool> {
        let done = sqlx::query(sql::REMEMBER_KEY)
            .bind(namespace)
            .bind(key)
            .bind(expires_at)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome> {
        // BEGIN IMMEDIATE: the count and the insert see the same state even across processes.
        let mut tx = self.write_tx().await?;
        let outcome = pairing::request(&mut tx, req, code, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>> {
        let records: Vec<PairingRecord> = sqlx::query_as(sql::LIST_PAIRINGS)
            .bind(now)
            .bind(channel.map(ChannelId::as_str))
            .fetch_all(&self.reader)
            .await?;
        Ok(records.into_iter().map(PendingPairing::from).collect())
    }

    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>> {
        let mut tx = self.write_tx().await?;
        let approved = pairing::approve(&mut tx, channel, code, now).await?;
        tx.commit().await?;
        Ok(approved)
    }

    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        let at: Option<i64> = sqlx::query_scalar(sql::IS_APPROVED)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(at.is_some())
    }

    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>> {
        let records: Vec<ApprovedRecord> =
            sqlx::query_as(sql::LIST_APPROVED).bind(channel.map(ChannelId::as_str)).fetch_all(&self.reader).await?;
        Ok(records.into_iter().map(ApprovedPeer::from).collect())
    }

    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_PEER)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_secret_blob(&self, name: &str, blob: &[u8], now: EpochMs) -> Result<()> {
        sqlx::query(sql::PUT_SECRET).bind(name).bind(blob).bind(now).execute(&self.writer).await?;
        Ok(())
    }

    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::GET_SECRET).bind(name).fetch_optional(&self.reader).await?)
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_SECRET).bind(name).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        // One read transaction: the three counts describe the same moment.
        let mut tx = self.reader.begin().await?;
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
            let records: Vec<DeadRecord> = sqlx::query_as(query).bind(i64::from(limit)).fetch_all(&self.reader).await?;
            all.extend(records.into_iter().map(|r| r.into_dead_letter(queue)));
        }
        Ok(merge_dead_letters(all, limit))
    }

    async fn check_writable(&self, now: EpochMs) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(sql::WRITE_HEARTBEAT).bind(now).execute(&mut *tx).await?;
        let at: i64 = sqlx::query_scalar(sql::READ_HEARTBEAT).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        crate::record::check_heartbeat(at, now)
    }

    async fn prune(&self, before: EpochMs) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        for statement in sql::PRUNE {
            removed += sqlx::query(statement).bind(before).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Pairing steps run inside the caller's write transaction.
mod pairing {
    use super::*;

    pub(super) async fn request(
        conn: &mut SqliteConnection,
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
        conn: &mut SqliteConnection,
        channel: &ChannelId,
        code: &str,
        now: EpochMs,
    ) -> Result<Option<ApprovedPeer>> {
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
