//! The embedded backend: one SQLite file in the state dir.
//!
//! SQLite allows one writer at a time. Rather than letting connections fight over the write lock
//! (and surface `SQLITE_BUSY`), every write goes through a pool of exactly one connection, so
//! writes queue inside the process; reads use a separate small pool and, thanks to WAL, never
//! wait for the writer. Transactions that read before they write start with `BEGIN IMMEDIATE`,
//! which takes the write lock up front: a second process on the same file then waits
//! (`busy_timeout`) instead of failing on a lock upgrade.

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
    StoreError,
};
use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The shared store logic, run on SQLite.
type Queries = crate::common::Queries<Sqlite>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a task waits for the (single) writer connection. Writes are short; a wait this long
/// means the disk is stuck, and an error is more useful than hanging.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers do not block each other under WAL; a few are enough for status pages and lookups.
const READERS: u32 = 4;

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
    /// Inbox inserts waiting to be committed together (group commit).
    inserts: Arc<GroupCommit>,
}

/// Group commit of inbox inserts: the insert is the durability point (the platform is told
/// "got it" after it), so it is committed with `synchronous = FULL`, one fsync. Callers that
/// arrive while a commit is in progress queue up and the next one commits them all, so a burst
/// of webhooks costs a few fsyncs instead of one each, and a lone message waits for none.
#[derive(Default)]
struct GroupCommit {
    queue: std::sync::Mutex<Vec<PendingInsert>>,
    /// Held by the caller that is committing the queue.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// One queued insert: the columns it binds (not a copy of the whole message), and its caller.
/// `Arc<str>` because sqlx binds an `Arc<str>` by sharing it, where a `&str` is copied twice.
struct PendingInsert {
    channel: Arc<str>,
    account: Arc<str>,
    peer: Arc<str>,
    message_id: Arc<str>,
    lane: Arc<str>,
    payload: Arc<str>,
    now: EpochMs,
    reply: oneshot::Sender<Result<InsertOutcome>>,
}

impl PendingInsert {
    fn is(&self, channel: &str, account: &str, message_id: &str) -> bool {
        &*self.message_id == message_id && &*self.account == account && &*self.channel == channel
    }
}

/// Rows per multi-row insert: a batch goes to SQLite as a few statements of these sizes (the
/// binary decomposition of its length), one round trip to the connection's worker thread each
/// instead of one per row, and the six statement texts stay in the connection's statement cache.
const INSERT_CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// `INSERT OR IGNORE … VALUES (…), (…) … RETURNING` for `rows` rows (one of [`INSERT_CHUNKS`]).
///
/// `OR IGNORE` rather than `ON CONFLICT … DO NOTHING`: the only constraint a bound row can break
/// is the (channel, account, message_id) key — the other columns are never NULL and the state is
/// a literal — and with no constraint that aborts, SQLite writes no statement journal for the
/// statement. Ignored rows (duplicates) are absent from `RETURNING` and looked up afterwards.
fn insert_inbound_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = SQL.get_or_init(|| {
        INSERT_CHUNKS
            .iter()
            .map(|&n| {
                // Anonymous `?` parameters: sqlx looks up the name of every numbered one, and
                // SQLite finds a name by scanning the statement's whole list of them.
                let values = vec!["(?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)"; n].join(", ");
                format!(
                    "INSERT OR IGNORE INTO inbox (channel, account, peer, message_id, lane, payload, state, attempts, \
                     next_at, received_at, updated_at) VALUES {values} RETURNING id, channel, account, message_id"
                )
            })
            .collect()
    });
    let index = INSERT_CHUNKS.iter().position(|&n| n == rows).expect("a chunk size");
    &texts[index]
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs the migrations.
    ///
    /// The parent directory is created if missing. The journal is WAL. Inbox inserts commit
    /// with `synchronous = FULL`: an insert is the moment the platform is told "got it" and it
    /// will not redeliver, so a commit lost to a power cut would be a lost message. Everything
    /// else commits with `NORMAL` (durable across process crashes; the next FULL commit or
    /// checkpoint makes it durable on disk): losing one of those to a power cut only repeats
    /// work that idempotency keys make harmless (a claim, an agent run, a completion).
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
            .synchronous(SqliteSynchronous::Normal);
        // Two processes starting on a fresh file race for the switch to WAL and the first
        // migration; SQLite answers the loser "database is locked" without waiting for some of
        // those steps, so the loser tries again for a while before giving up.
        let started = std::time::Instant::now();
        let writer = loop {
            match open_writer(&writer_options).await {
                Err(StoreError::Database(e) | StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)))
                    if is_locked(&e) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(StoreError::Database(e)) => return Err(open_error(path, e)),
                Err(StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e))) => return Err(open_error(path, e)),
                Err(other) => return Err(other),
                Ok(writer) => break writer,
            }
        };

        // Opened after the writer: the file exists and is in WAL mode, which a read-only
        // connection could not arrange itself.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| open_error(path, e))?;

        Ok(Self { writer, reader, path: path.to_owned(), inserts: Arc::default() })
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

    /// Commits queued inbox inserts in one `synchronous = FULL` transaction and answers each
    /// caller. A failure of the commit is every caller's failure (nothing was stored).
    async fn commit_inserts(&self, batch: Vec<PendingInsert>) {
        let mut conn = match self.writer.acquire().await {
            Ok(conn) => conn,
            Err(e) => return fail_all(batch, &e.to_string()),
        };
        let committed = async {
            // One round trip to the connection's thread: `begin_with` runs its text with
            // `sqlite3_exec`, which takes several statements (and stops at the first error).
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "PRAGMA synchronous = FULL; BEGIN IMMEDIATE").await?;
            let outcomes = insert_batch(&mut tx, &batch).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(outcomes)
        }
        .await;
        // Back to the default for every other write on this connection.
        let restored = sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await;
        if restored.is_err() {
            // Never leave the writer in an unknown mode: drop this connection, the pool opens a fresh one.
            conn.detach();
        }
        match committed {
            Ok(outcomes) => {
                for (p, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = p.reply.send(outcome);
                }
            }
            Err(e) => fail_all(batch, &e.to_string()),
        }
    }
}

/// Inserts a batch inside the caller's transaction: multi-row statements (see
/// [`INSERT_CHUNKS`]), then a lookup of the id for each row that was a duplicate — of a stored
/// row, or of an earlier row of the same batch. A failed statement fails the whole batch (the
/// transaction is not committed, every caller is told to retry).
async fn insert_batch(conn: &mut SqliteConnection, batch: &[PendingInsert]) -> Result<Vec<Result<InsertOutcome>>> {
    let mut ids: Vec<Option<i64>> = vec![None; batch.len()];
    let mut start = 0;
    while start < batch.len() {
        let rows = INSERT_CHUNKS.iter().copied().find(|&n| n <= batch.len() - start).unwrap_or(1);
        let chunk = &batch[start..start + rows];
        let mut query = sqlx::query(insert_inbound_sql(rows));
        for p in chunk {
            query = query
                .bind(p.channel.clone())
                .bind(p.account.clone())
                .bind(p.peer.clone())
                .bind(p.message_id.clone())
                .bind(p.lane.clone())
                .bind(p.payload.clone())
                .bind(p.now)
                .bind(p.now)
                .bind(p.now);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get(0)?;
            let (channel, account, message_id): (&str, &str, &str) =
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            // RETURNING's order is unspecified: match the row to the first caller with its key.
            if let Some(slot) = chunk
                .iter()
                .zip(&mut ids[start..start + rows])
                .find_map(|(p, slot)| (slot.is_none() && p.is(channel, account, message_id)).then_some(slot))
            {
                *slot = Some(id);
            }
        }
        start += rows;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for (p, id) in batch.iter().zip(ids) {
        outcomes.push(match id {
            Some(id) => Ok(InsertOutcome::Inserted(id)),
            // One writer: nothing can delete the conflicting row between the two statements.
            None => match sqlx::query_scalar(crate::sql::FIND_INBOUND)
                .bind(p.channel.clone())
                .bind(p.account.clone())
                .bind(p.message_id.clone())
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(id) => Ok(InsertOutcome::Duplicate(id)),
                None => Err(StoreError::Database(sqlx::Error::RowNotFound)),
            },
        });
    }
    Ok(outcomes)
}

/// The single-connection writer pool, migrated.
async fn open_writer(options: &SqliteConnectOptions) -> Result<SqlitePool> {
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        // An in-process connection does not hang up: no ping (a round trip to the connection's
        // worker thread) before every write. It also keeps a cancelled acquire from dropping
        // the one connection (sqlx's advice for a pool of one).
        .test_before_acquire(false)
        .acquire_timeout(WRITER_ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    if let Err(e) = migrate(&writer).await {
        writer.close().await;
        return Err(e);
    }
    Ok(writer)
}

/// SQLITE_BUSY ("database is locked"), primary result code 5.
fn is_locked(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).is_some_and(|code| code.parse::<i64>().is_ok_and(|c| c & 0xff == 5))
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
fn fail_all(batch: Vec<PendingInsert>, error: &str) {
    for p in batch {
        let _ = p.reply.send(Err(StoreError::Batch(error.to_owned())));
    }
}

/// The caller committing our insert was cancelled before it answered: the insert may or may
/// not be stored, so the platform must redeliver (dedup makes that safe).
fn abandoned() -> StoreError {
    StoreError::Batch("the group commit carrying this insert was cancelled; retry".to_owned())
}

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

impl Backend for Sqlite {
    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// One writer: claims are serialised by the writer pool, nothing to lock.
    fn claim_statement(sql: &'static QueueSql) -> &'static str {
        &sql.claim_single_writer
    }
}

impl SqliteStore {
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
        let mut tx = self.write_tx().await?;
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
impl InboxQueue for SqliteStore {
    async fn insert_inbound(&self, msg: &InboundMessage, now: EpochMs) -> Result<InsertOutcome> {
        let payload = inbound_payload(msg)?;
        let (reply, mut outcome) = oneshot::channel();
        let pending = PendingInsert {
            channel: msg.channel.as_str().into(),
            account: msg.account.as_str().into(),
            peer: msg.peer.as_str().into(),
            message_id: msg.message_id.as_str().into(),
            lane: msg.lane().as_str().into(),
            payload: payload.into(),
            now,
            reply,
        };
        self.inserts.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(pending);
        // Whichever comes first: the answer (a commit took our insert along) or the turn to
        // commit. Waiting for the turn alone would hand it to every waiter in a row, one wake-up
        // after another, just so each can find its answer already there.
        let _turn = tokio::select! {
            biased;
            result = &mut outcome => return result.unwrap_or_else(|_| Err(abandoned())),
            turn = self.inserts.turn.lock() => turn,
        };
        match outcome.try_recv() {
            // The commit before ours took our insert along.
            Ok(result) => return result,
            Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let batch = std::mem::take(&mut *self.inserts.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.commit_inserts(batch).await;
        outcome.await.unwrap_or_else(|_| Err(abandoned()))
    }

    async fn claim_inbound(
        &self,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<InboundRow>> {
        Queries::claim(&self.writer, worker, limit, lease_ms, now).await
    }

    async fn renew_inbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::renew::<InboundRow>(&self.writer, id, worker, lease_ms, now).await
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
        Queries::fail_inbound(&self.writer, id, worker, error, retry_at, now).await
    }

    async fn release_inbound(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<InboundRow>(&self.writer, id, worker).await
    }

    async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        Queries::get(&self.reader, id).await
    }
}

#[async_trait]
impl OutboxQueue for SqliteStore {
    async fn enqueue_outbound(&self, messages: &[NewOutbound], now: EpochMs) -> Result<Vec<i64>> {
        let mut tx = self.write_tx().await?;
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
        Queries::claim(&self.writer, worker, limit, lease_ms, now).await
    }

    async fn renew_outbound(&self, id: i64, worker: &str, lease_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::renew::<OutboundRow>(&self.writer, id, worker, lease_ms, now).await
    }

    async fn mark_sent(&self, id: i64, worker: &str, platform_message_id: Option<&str>, now: EpochMs) -> Result<bool> {
        Queries::succeed::<OutboundRow>(&self.writer, id, worker, platform_message_id, now).await
    }

    async fn mark_retry(&self, id: i64, worker: &str, error: &str, next_at: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::retry::<OutboundRow>(&self.writer, id, worker, error, next_at, now).await
    }

    async fn mark_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Queries::give_up::<OutboundRow>(&self.writer, id, worker, reason, now).await
    }

    async fn release_outbound(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<OutboundRow>(&self.writer, id, worker).await
    }

    async fn get_outbound(&self, id: i64) -> Result<Option<OutboundRow>> {
        Queries::get(&self.reader, id).await
    }

    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<bool> {
        Queries::record_delivery(&self.writer, &self.reader, update).await
    }
}

#[async_trait]
impl Dedup for SqliteStore {
    async fn remember_key(&self, namespace: &str, key: &str, expires_at: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::remember_key(&self.writer, namespace, key, expires_at, now).await
    }
}

#[async_trait]
impl Cursors for SqliteStore {
    async fn get_cursor(&self, channel: &ChannelId, account: &AccountId, name: &str) -> Result<Option<String>> {
        Queries::get_cursor(&self.reader, channel, account, name).await
    }

    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
        now: EpochMs,
    ) -> Result<()> {
        Queries::set_cursor(&self.writer, channel, account, name, value, now).await
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: EpochMs, now: EpochMs) -> Result<bool> {
        Queries::try_lease(&self.writer, name, holder, ttl_ms, now).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        Queries::release_lease(&self.writer, name, holder).await
    }
}

#[async_trait]
impl ChannelState for SqliteStore {
    async fn put_state(&self, entry: &StatePut<'_>, if_absent: bool, now: EpochMs) -> Result<bool> {
        Queries::put_state(&self.writer, entry, if_absent, now).await
    }

    async fn get_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        Queries::get_state(&self.reader, namespace, key, now).await
    }

    async fn take_state(&self, namespace: &str, key: &str, now: EpochMs) -> Result<Option<String>> {
        Queries::take_state(&self.writer, namespace, key, now).await
    }

    async fn list_state(&self, namespace: &str, limit: u32, now: EpochMs) -> Result<Vec<StateEntry>> {
        Queries::list_state(&self.reader, namespace, limit, now).await
    }
}

#[async_trait]
impl Pairing for SqliteStore {
    async fn request_pairing(&self, req: &PairingRequest, code: &str, now: EpochMs) -> Result<PairingOutcome> {
        // BEGIN IMMEDIATE: the count and the insert see the same state even across processes.
        let mut tx = self.write_tx().await?;
        let outcome = Queries::request_pairing(&mut tx, req, code, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_pairings(&self, channel: Option<&ChannelId>, now: EpochMs) -> Result<Vec<PendingPairing>> {
        Queries::list_pairings(&self.reader, channel, now).await
    }

    async fn approve_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<Option<ApprovedPeer>> {
        let mut tx = self.write_tx().await?;
        let approved = Queries::approve_pairing(&mut tx, channel, code, now).await?;
        tx.commit().await?;
        Ok(approved)
    }

    async fn is_approved(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Queries::is_approved(&self.reader, channel, account, peer).await
    }

    async fn list_approved(&self, channel: Option<&ChannelId>) -> Result<Vec<ApprovedPeer>> {
        Queries::list_approved(&self.reader, channel).await
    }

    async fn revoke_peer(&self, channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Result<bool> {
        Queries::revoke_peer(&self.writer, channel, account, peer).await
    }
    async fn reject_pairing(&self, channel: &ChannelId, code: &str, now: EpochMs) -> Result<bool> {
        Queries::reject_pairing(&self.writer, channel, code, now).await
    }
}

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn recent_lanes(&self, limit: u32) -> Result<Vec<LaneSummary>> {
        Queries::recent_lanes(&self.reader, limit).await
    }

    async fn lane_inbound(&self, lane: &str, limit: u32) -> Result<Vec<InboundRow>> {
        Queries::lane_inbound(&self.reader, lane, limit).await
    }

    async fn lane_outbound(&self, lane: &str, limit: u32) -> Result<Vec<OutboundRow>> {
        Queries::lane_outbound(&self.reader, lane, limit).await
    }

    async fn act_on_dead_letter(
        &self,
        queue: &str,
        id: i64,
        action: DeadLetterAction,
        actor: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = Queries::act_on_dead_letter(&mut tx, queue, id, action, actor, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn record_audit(&self, actor: &str, action: &str, target: &str, detail: &str, now: EpochMs) -> Result<()> {
        Queries::record_audit(&self.writer, actor, action, target, detail, now).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Queries::audit_log(&self.reader, limit).await
    }
}

#[async_trait]
impl Secrets for SqliteStore {
    async fn put_secret_blob(&self, name: &str, blob: &[u8], now: EpochMs) -> Result<()> {
        Queries::put_secret_blob(&self.writer, name, blob, now).await
    }

    async fn get_secret_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Queries::get_secret_blob(&self.reader, name).await
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        Queries::delete_secret(&self.writer, name).await
    }
}

#[async_trait]
impl BizmsgQueue for SqliteStore {
    async fn enqueue_bizmsg(&self, messages: &[NewBizmsg], now: EpochMs) -> Result<Vec<Enqueued>> {
        let mut tx = self.write_tx().await?;
        let out = Queries::enqueue_bizmsg(&mut tx, messages, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn claim_bizmsg(&self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs) -> Result<Vec<BizmsgRow>> {
        Queries::claim(&self.writer, worker, limit, lease_ms, now).await
    }

    async fn set_bizmsg_request(
        &self,
        ids: &[i64],
        worker: &str,
        request_key: Option<&str>,
        now: EpochMs,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let marked = Queries::set_bizmsg_request(&mut tx, ids, worker, request_key, now).await?;
        tx.commit().await?;
        Ok(marked)
    }

    async fn mark_bizmsg_accepted(&self, id: i64, worker: &str, dealer_id: &str, now: EpochMs) -> Result<bool> {
        Queries::succeed::<BizmsgRow>(&self.writer, id, worker, Some(dealer_id), now).await
    }

    async fn mark_bizmsg_retry(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        next_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::retry::<BizmsgRow>(&self.writer, id, worker, error, next_at, now).await
    }

    async fn mark_bizmsg_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool> {
        Queries::give_up::<BizmsgRow>(&self.writer, id, worker, reason, now).await
    }

    async fn release_bizmsg(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release::<BizmsgRow>(&self.writer, id, worker).await
    }

    async fn get_bizmsg(&self, id: i64) -> Result<Option<BizmsgRow>> {
        Queries::get(&self.reader, id).await
    }

    async fn bizmsg_of_request(&self, request_key: &str) -> Result<Vec<BizmsgRow>> {
        Queries::bizmsg_of_request(&self.reader, request_key).await
    }

    async fn record_bizmsg_result(&self, result: &BizmsgResult) -> Result<bool> {
        Queries::record_bizmsg_result(&self.writer, result).await
    }

    async fn unfinished_bizmsg(&self, dealer: &str, from: EpochMs, to: EpochMs, limit: u32) -> Result<Vec<BizmsgRow>> {
        Queries::unfinished_bizmsg(&self.reader, dealer, from, to, limit).await
    }

    async fn bizmsg_stats(&self) -> Result<BizmsgStats> {
        let mut tx = self.reader.begin().await?;
        let stats = Queries::bizmsg_stats(&mut tx).await?;
        tx.commit().await?;
        Ok(stats)
    }
}

#[async_trait]
impl Quotas for SqliteStore {
    async fn take_quota(
        &self,
        key: &str,
        window_start: EpochMs,
        window_ms: EpochMs,
        limit: u64,
        n: u64,
        now: EpochMs,
    ) -> Result<QuotaTake> {
        Queries::take_quota(&self.writer, key, window_start, window_ms, limit, n, now).await
    }
}

#[async_trait]
impl Operations for SqliteStore {
    async fn queue_stats(&self) -> Result<QueueStats> {
        // One read transaction: the three counts describe the same moment.
        let mut tx = self.reader.begin().await?;
        let stats = Queries::queue_stats(&mut tx).await?;
        tx.commit().await?;
        Ok(stats)
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        Queries::dead_letters(&self.reader, limit).await
    }

    async fn check_writable(&self, now: EpochMs) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let at = Queries::heartbeat(&mut tx, now).await?;
        tx.commit().await?;
        check_heartbeat(at, now)
    }

    async fn prune(&self, before: EpochMs) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let removed = Queries::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(removed)
    }
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn create_campaign(&self, campaign: &NewCampaign, now: EpochMs) -> Result<bool> {
        Queries::create_campaign(&self.writer, campaign, now).await
    }

    async fn add_campaign_recipients(
        &self,
        campaign: &str,
        account: &str,
        recipients: &[NewRecipient],
        now: EpochMs,
    ) -> Result<Added> {
        let mut tx = self.write_tx().await?;
        let added = Queries::add_campaign_recipients(&mut tx, campaign, account, recipients, now).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn set_campaign_summary(&self, campaign: &str, summary: &str, now: EpochMs) -> Result<()> {
        Queries::set_campaign_summary(&self.writer, campaign, summary, now).await
    }

    async fn get_campaign(&self, campaign: &str) -> Result<Option<CampaignRow>> {
        Queries::get_campaign(&self.reader, campaign).await
    }

    async fn list_campaigns(&self, limit: u32) -> Result<Vec<CampaignRow>> {
        Queries::list_campaigns(&self.reader, limit).await
    }

    async fn delete_campaign(&self, campaign: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
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
        Queries::transition_campaign(&self.writer, campaign, from, to, note, start_at, now).await
    }

    async fn set_campaign_waiting(&self, campaign: &str, until: Option<EpochMs>, now: EpochMs) -> Result<()> {
        Queries::set_campaign_waiting(&self.writer, campaign, until, now).await
    }

    async fn due_campaigns(&self, now: EpochMs) -> Result<Vec<CampaignRow>> {
        Queries::due_campaigns(&self.reader, now).await
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
        let mut tx = self.write_tx().await?;
        let claimed = Queries::claim_campaign_recipients(
            &mut tx,
            crate::campaign::CLAIM_SINGLE_WRITER,
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
        Queries::mark_campaign_recipient_queued(&self.writer, id, worker, kind, send_ref, now).await
    }

    async fn mark_campaign_recipient_failed(
        &self,
        id: i64,
        worker: &str,
        code: &str,
        reason: &str,
        now: EpochMs,
    ) -> Result<bool> {
        Queries::mark_campaign_recipient_failed(&self.writer, id, worker, code, reason, now).await
    }

    async fn release_campaign_recipient(&self, id: i64, worker: &str) -> Result<()> {
        Queries::release_campaign_recipient(&self.writer, id, worker).await
    }

    async fn cancel_campaign_recipients(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        Queries::cancel_campaign_recipients(&self.writer, campaign, now).await
    }

    async fn release_held_recipients(&self, campaign: &str, variant: &str, now: EpochMs) -> Result<u64> {
        Queries::release_held_recipients(&self.writer, campaign, variant, now).await
    }

    async fn set_campaign_spec(&self, campaign: &str, spec: &str, now: EpochMs) -> Result<()> {
        Queries::set_campaign_spec(&self.writer, campaign, spec, now).await
    }

    async fn sync_campaign_results(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        let mut changed = 0;
        loop {
            let mut tx = self.write_tx().await?;
            let (step, full) = Queries::sync_step(&mut tx, campaign, now).await?;
            tx.commit().await?;
            changed += step;
            if !full || step == 0 {
                return Ok(changed);
            }
        }
    }

    async fn get_campaign_recipient(&self, id: i64) -> Result<Option<RecipientRow>> {
        Queries::get_campaign_recipient(&self.reader, id).await
    }

    async fn campaign_recipients(
        &self,
        campaign: &str,
        state: Option<RecipientState>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRow>> {
        Queries::campaign_recipients(&self.reader, campaign, state, after_id, limit).await
    }

    async fn campaign_counts(&self, campaign: &str) -> Result<CampaignCounts> {
        let mut tx = self.reader.begin().await?;
        let counts = Queries::campaign_counts(&mut tx, campaign).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn campaign_timeline(&self, campaign: &str, bucket_ms: EpochMs) -> Result<Vec<(EpochMs, u64, u64)>> {
        let mut tx = self.reader.begin().await?;
        let timeline = Queries::campaign_timeline(&mut tx, campaign, bucket_ms).await?;
        tx.commit().await?;
        Ok(timeline)
    }

    async fn recent_campaign_counts(&self, since: EpochMs) -> Result<Vec<(String, RecipientState, u64)>> {
        Queries::recent_campaign_counts(&self.reader, since).await
    }

    async fn record_click(&self, campaign: &str, recipient: i64, link: u32, now: EpochMs) -> Result<bool> {
        Queries::record_click(&self.writer, campaign, recipient, link, now).await
    }

    async fn suppress(&self, entry: &Suppression) -> Result<bool> {
        Queries::suppress(&self.writer, entry).await
    }

    async fn unsuppress(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Queries::unsuppress(&self.writer, account, recipient_key).await
    }

    async fn list_suppressions(&self, account: Option<&str>, limit: u32) -> Result<Vec<Suppression>> {
        Queries::list_suppressions(&self.reader, account, limit).await
    }

    async fn is_suppressed(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Queries::is_suppressed(&self.reader, account, recipient_key).await
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
