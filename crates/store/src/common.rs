//! The store logic both SQL backends share, written once over sqlx's [`Database`] trait.
//!
//! Each function is one step of a capability method: it runs the shared SQL of [`sql`] (or of a
//! queue's [`QueueSql`]) on whatever the backend hands it, a pool or the connection of a
//! transaction the backend began its own way (SQLite: `BEGIN IMMEDIATE` on the single writer;
//! PostgreSQL: `pool.begin()`, plus an advisory lock for pairing). What stays in the backends is
//! exactly that difference: which pool, how a transaction starts and ends, and which form of
//! claim statement they run ([`Backend::claim_statement`]).
//!
//! The lease cycle (claim, renew, succeed, retry, give up, release, get) is written once,
//! generic over the queue ([`Queued`]): the inbox and the outbox both run it.

use crate::bizmsg::{self, BizmsgRecord, BizmsgResult, BizmsgRow, BizmsgStats, Enqueued, NewBizmsg};
use crate::model::{
    ApprovedPeer, Completed, DeadLetter, DeliveryUpdate, InboundRow, NewOutbound, OutboundRow, PairingOutcome,
    PairingRequest, PendingPairing, QueueStats, QuotaTake, StateEntry, StatePut, delivery_rank,
};
use crate::queue::{QueueSql, Queued};
use crate::record::{
    ApprovedRecord, DeadRecord, InboxRecord, OutboundInsert, OutboxRecord, PairingRecord, count_u64, deadline,
    merge_dead_letters, oldest_first, queue_stats, quota_window_end,
};
use crate::{Result, sql};
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId, pairing::normalize_code};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use std::marker::PhantomData;

/// What the shared code needs of a database beyond [`Database`].
pub(crate) trait Backend: Database {
    /// sqlx gives each driver's query result an inherent `rows_affected`, not a trait method.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Which of a queue's claim statements this backend runs: SQLite claims on its single
    /// writer, PostgreSQL with `FOR UPDATE SKIP LOCKED` among replicas.
    fn claim_statement(sql: &'static QueueSql) -> &'static str;
}

/// The shared steps for one backend (`Queries<Sqlite>`, `Queries<Postgres>`).
///
/// A type rather than free functions so that the bounds are written once: they only say that
/// `DB` binds and decodes the few types the store uses, which both drivers do. Functions that run
/// one statement take any executor (a pool, or `&mut *tx`); those that run several take the
/// connection of the caller's transaction.
pub(crate) struct Queries<DB>(PhantomData<DB>);

impl<DB> Queries<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String, Option<String>): FromRow<'r, DB::Row>,
    for<'r> InboxRecord: FromRow<'r, DB::Row>,
    for<'r> OutboxRecord: FromRow<'r, DB::Row>,
    for<'r> PairingRecord: FromRow<'r, DB::Row>,
    for<'r> ApprovedRecord: FromRow<'r, DB::Row>,
    for<'r> DeadRecord: FromRow<'r, DB::Row>,
    for<'r> BizmsgRecord: FromRow<'r, DB::Row>,
{
    // ---- the lease cycle of any queue ----------------------------------------------------------

    /// Claims up to `limit` ready rows of queue `Q` for `worker`, oldest first, one per lane.
    pub(crate) async fn claim<Q: Queued>(
        db: impl Executor<'_, Database = DB>,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Vec<Q>>
    where
        for<'r> Q::Record: FromRow<'r, DB::Row>,
    {
        let records: Vec<Q::Record> = sqlx::query_as(DB::claim_statement(Q::sql()))
            .bind(now)
            .bind(i64::from(limit))
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .fetch_all(db)
            .await?;
        let rows = records.into_iter().map(Q::decode).collect::<Result<Vec<_>>>()?;
        Ok(oldest_first(rows, Q::id))
    }

    /// Claims the fresh row `id` for `worker` if it is due and its lane lets it go now.
    async fn claim_fresh<Q: Queued>(
        conn: &mut DB::Connection,
        id: i64,
        worker: &str,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Option<Q>>
    where
        for<'r> Q::Record: FromRow<'r, DB::Row>,
    {
        let record: Option<Q::Record> = sqlx::query_as(Q::sql().claim_fresh.as_str())
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .fetch_optional(&mut *conn)
            .await?;
        record.map(Q::decode).transpose()
    }

    /// Extends `worker`'s lease on row `id`; `false` when it no longer holds it.
    pub(crate) async fn renew<Q: Queued>(
        db: impl Executor<'_, Database = DB>,
        id: i64,
        worker: &str,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        let done = sqlx::query(Q::sql().renew.as_str())
            .bind(id)
            .bind(worker)
            .bind(deadline(now, lease_ms))
            .bind(now)
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Finishes a claimed row, recording `result` in the queue's success column.
    pub(crate) async fn succeed<Q: Queued>(
        db: impl Executor<'_, Database = DB>,
        id: i64,
        worker: &str,
        result: Option<&str>,
        now: EpochMs,
    ) -> Result<bool> {
        let done =
            sqlx::query(Q::sql().succeed.as_str()).bind(id).bind(worker).bind(result).bind(now).execute(db).await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Schedules another attempt of a claimed row at `next_at`.
    pub(crate) async fn retry<Q: Queued>(
        db: impl Executor<'_, Database = DB>,
        id: i64,
        worker: &str,
        error: &str,
        next_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        let done = sqlx::query(Q::sql().retry.as_str())
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(next_at)
            .bind(now)
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Gives a claimed row up with `reason` (a dead letter).
    pub(crate) async fn give_up<Q: Queued>(
        db: impl Executor<'_, Database = DB>,
        id: i64,
        worker: &str,
        reason: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let done =
            sqlx::query(Q::sql().give_up.as_str()).bind(id).bind(worker).bind(reason).bind(now).execute(db).await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Undoes `worker`'s claim of row `id` (no effect when it no longer holds it).
    pub(crate) async fn release<Q: Queued>(db: impl Executor<'_, Database = DB>, id: i64, worker: &str) -> Result<()> {
        sqlx::query(Q::sql().release.as_str()).bind(id).bind(worker).execute(db).await?;
        Ok(())
    }

    /// Reads one row.
    pub(crate) async fn get<Q: Queued>(db: impl Executor<'_, Database = DB>, id: i64) -> Result<Option<Q>>
    where
        for<'r> Q::Record: FromRow<'r, DB::Row>,
    {
        let record: Option<Q::Record> = sqlx::query_as(Q::sql().get.as_str()).bind(id).fetch_optional(db).await?;
        record.map(Q::decode).transpose()
    }

    // ---- inbox -----------------------------------------------------------------------------

    /// Inserts a new inbound row; its id, or `None` when (channel, account, message id) exists.
    pub(crate) async fn insert_inbound(
        db: impl Executor<'_, Database = DB>,
        msg: &InboundMessage,
        payload: &str,
        now: EpochMs,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(sql::INSERT_INBOUND)
            .bind(msg.channel.as_str())
            .bind(msg.account.as_str())
            .bind(msg.peer.as_str())
            .bind(msg.message_id.as_str())
            .bind(msg.lane().as_str())
            .bind(payload)
            .bind(now)
            .fetch_optional(db)
            .await?)
    }

    /// The id of the inbound row with the message's (channel, account, message id), if any.
    pub(crate) async fn find_inbound(
        db: impl Executor<'_, Database = DB>,
        msg: &InboundMessage,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(sql::FIND_INBOUND)
            .bind(msg.channel.as_str())
            .bind(msg.account.as_str())
            .bind(msg.message_id.as_str())
            .fetch_optional(db)
            .await?)
    }

    /// Marks the row `done` and enqueues the replies, inside the caller's transaction. `false`
    /// when the lease was lost, in which case nothing was written and the caller rolls back.
    pub(crate) async fn complete_inbound(
        conn: &mut DB::Connection,
        id: i64,
        worker: &str,
        outcome: &str,
        replies: &[NewOutbound],
        claim_lease_ms: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<Completed> {
        // The update comes first: on PostgreSQL it locks the row, so a replica re-claiming it
        // after the lease ran out waits for this transaction and then sees `done`.
        if !Self::succeed::<InboundRow>(&mut *conn, id, worker, Some(outcome), now).await? {
            tracing::debug!(id, worker, "complete_inbound: lease lost");
            return Ok(Completed::LeaseLost);
        }
        let mut first_id = None;
        for reply in replies {
            let reply_id = Self::insert_outbound(conn, reply, now).await?;
            first_id.get_or_insert(reply_id);
        }
        // With a lease: the first reply goes to the completing worker when its lane allows.
        let first_reply = match (claim_lease_ms, first_id) {
            (Some(lease_ms), Some(first)) => {
                Self::claim_fresh::<OutboundRow>(conn, first, worker, lease_ms, now).await?.map(Box::new)
            }
            _ => None,
        };
        Ok(Completed::Done { first_reply })
    }

    /// A failed attempt: another at `retry_at`, or given up when there is none.
    pub(crate) async fn fail_inbound(
        db: impl Executor<'_, Database = DB>,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        match retry_at {
            Some(at) => Self::retry::<InboundRow>(db, id, worker, error, at, now).await,
            None => Self::give_up::<InboundRow>(db, id, worker, error, now).await,
        }
    }

    // ---- outbox ----------------------------------------------------------------------------

    /// Inserts one outbox row unless its key exists; returns the row id either way.
    async fn insert_outbound(conn: &mut DB::Connection, m: &NewOutbound, now: EpochMs) -> Result<i64> {
        let row = OutboundInsert::new(m, now)?;
        // On PostgreSQL, ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to
        // commit, after which the next statement (a new snapshot under READ COMMITTED) sees that
        // row.
        let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_OUTBOUND)
            .bind(row.key)
            .bind(row.lane.as_str())
            .bind(row.channel)
            .bind(row.account)
            .bind(row.peer)
            .bind(row.inbound_id)
            .bind(row.payload.as_str())
            .bind(row.next_at)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        match inserted {
            Some(id) => Ok(id),
            None => Ok(sqlx::query_scalar(sql::FIND_OUTBOUND).bind(row.key).fetch_one(&mut *conn).await?),
        }
    }

    /// Enqueues the messages inside the caller's transaction; their ids in input order.
    pub(crate) async fn enqueue_outbound(
        conn: &mut DB::Connection,
        messages: &[NewOutbound],
        now: EpochMs,
    ) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            ids.push(Self::insert_outbound(conn, m, now).await?);
        }
        Ok(ids)
    }

    /// Moves the delivery status on `writer`; when nothing moved, looks on `reader` whether the
    /// platform id is known at all.
    pub(crate) async fn record_delivery(writer: &Pool<DB>, reader: &Pool<DB>, update: &DeliveryUpdate) -> Result<bool> {
        let moved = sqlx::query(sql::RECORD_DELIVERY)
            .bind(update.channel.as_str())
            .bind(update.platform_message_id.as_str())
            .bind(update.status.as_str())
            .bind(update.error.as_deref())
            .bind(update.at)
            .bind(i64::from(delivery_rank(&update.status)))
            .execute(writer)
            .await?;
        if DB::rows_affected(&moved) > 0 {
            return Ok(true);
        }
        let known: Option<i64> = sqlx::query_scalar(sql::FIND_PLATFORM_ID)
            .bind(update.channel.as_str())
            .bind(update.platform_message_id.as_str())
            .fetch_optional(reader)
            .await?;
        Ok(known.is_some())
    }

    // ---- cursors, leases, keys -------------------------------------------------------------

    pub(crate) async fn get_cursor(
        db: impl Executor<'_, Database = DB>,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::GET_CURSOR)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(name)
            .fetch_optional(db)
            .await?)
    }

    pub(crate) async fn set_cursor(
        db: impl Executor<'_, Database = DB>,
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
            .execute(db)
            .await?;
        Ok(())
    }

    pub(crate) async fn try_lease(
        db: impl Executor<'_, Database = DB>,
        name: &str,
        holder: &str,
        ttl_ms: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        let done = sqlx::query(sql::TRY_LEASE)
            .bind(name)
            .bind(holder)
            .bind(deadline(now, ttl_ms))
            .bind(now)
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(crate) async fn release_lease(db: impl Executor<'_, Database = DB>, name: &str, holder: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_LEASE).bind(name).bind(holder).execute(db).await?;
        Ok(())
    }

    pub(crate) async fn remember_key(
        db: impl Executor<'_, Database = DB>,
        namespace: &str,
        key: &str,
        expires_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool> {
        let done =
            sqlx::query(sql::REMEMBER_KEY).bind(namespace).bind(key).bind(expires_at).bind(now).execute(db).await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    // ---- channel state ---------------------------------------------------------------------

    pub(crate) async fn put_state(
        db: impl Executor<'_, Database = DB>,
        entry: &StatePut<'_>,
        if_absent: bool,
        now: EpochMs,
    ) -> Result<bool> {
        let statement = if if_absent { sql::PUT_STATE_IF_ABSENT } else { sql::PUT_STATE };
        let done = sqlx::query(statement)
            .bind(entry.namespace)
            .bind(entry.key)
            .bind(entry.value)
            .bind(entry.expires_at)
            .bind(now)
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(crate) async fn get_state(
        db: impl Executor<'_, Database = DB>,
        namespace: &str,
        key: &str,
        now: EpochMs,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::GET_STATE).bind(namespace).bind(key).bind(now).fetch_optional(db).await?)
    }

    pub(crate) async fn take_state(
        db: impl Executor<'_, Database = DB>,
        namespace: &str,
        key: &str,
        now: EpochMs,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::TAKE_STATE).bind(namespace).bind(key).bind(now).fetch_optional(db).await?)
    }

    pub(crate) async fn list_state(
        db: impl Executor<'_, Database = DB>,
        namespace: &str,
        limit: u32,
        now: EpochMs,
    ) -> Result<Vec<StateEntry>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(sql::LIST_STATE).bind(namespace).bind(now).bind(i64::from(limit)).fetch_all(db).await?;
        Ok(rows.into_iter().map(|(key, value, updated_at)| StateEntry { key, value, updated_at }).collect())
    }

    // ---- pairing ---------------------------------------------------------------------------

    /// Issues or returns a pairing code, inside the caller's transaction, which must keep the
    /// count and the insert consistent (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the account's
    /// advisory lock).
    pub(crate) async fn request_pairing(
        conn: &mut DB::Connection,
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
            .bind(code.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        let expires_at = deadline(now, req.ttl_ms);
        sqlx::query(sql::INSERT_PAIRING)
            .bind(channel)
            .bind(account)
            .bind(peer)
            .bind(code.as_str())
            .bind(req.display_name.as_deref())
            .bind(now)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
        Ok(PairingOutcome::Issued { code, expires_at })
    }

    pub(crate) async fn list_pairings(
        db: impl Executor<'_, Database = DB>,
        channel: Option<&ChannelId>,
        now: EpochMs,
    ) -> Result<Vec<PendingPairing>> {
        let records: Vec<PairingRecord> =
            sqlx::query_as(sql::LIST_PAIRINGS).bind(now).bind(channel.map(ChannelId::as_str)).fetch_all(db).await?;
        Ok(records.into_iter().map(PendingPairing::from).collect())
    }

    /// Approves a code inside the caller's transaction.
    pub(crate) async fn approve_pairing(
        conn: &mut DB::Connection,
        channel: &ChannelId,
        code: &str,
        now: EpochMs,
    ) -> Result<Option<ApprovedPeer>> {
        // DELETE … RETURNING locks the request (PostgreSQL): a second operator approving the same
        // code waits, then finds it gone.
        let taken: Option<(String, String, Option<String>)> = sqlx::query_as(sql::TAKE_PAIRING)
            .bind(channel.as_str())
            .bind(normalize_code(code).as_str())
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        let Some((account, peer, display_name)) = taken else {
            return Ok(None);
        };
        sqlx::query(sql::UPSERT_APPROVED)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
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

    /// Removes an unexpired request without approving it.
    pub(crate) async fn reject_pairing(
        db: impl Executor<'_, Database = DB>,
        channel: &ChannelId,
        code: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let taken: Option<(String, String, Option<String>)> = sqlx::query_as(sql::TAKE_PAIRING)
            .bind(channel.as_str())
            .bind(normalize_code(code).as_str())
            .bind(now)
            .fetch_optional(db)
            .await?;
        Ok(taken.is_some())
    }

    pub(crate) async fn is_approved(
        db: impl Executor<'_, Database = DB>,
        channel: &ChannelId,
        account: &AccountId,
        peer: &PeerId,
    ) -> Result<bool> {
        let at: Option<i64> = sqlx::query_scalar(sql::IS_APPROVED)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .fetch_optional(db)
            .await?;
        Ok(at.is_some())
    }

    pub(crate) async fn list_approved(
        db: impl Executor<'_, Database = DB>,
        channel: Option<&ChannelId>,
    ) -> Result<Vec<ApprovedPeer>> {
        let records: Vec<ApprovedRecord> =
            sqlx::query_as(sql::LIST_APPROVED).bind(channel.map(ChannelId::as_str)).fetch_all(db).await?;
        Ok(records.into_iter().map(ApprovedPeer::from).collect())
    }

    pub(crate) async fn revoke_peer(
        db: impl Executor<'_, Database = DB>,
        channel: &ChannelId,
        account: &AccountId,
        peer: &PeerId,
    ) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_PEER)
            .bind(channel.as_str())
            .bind(account.as_str())
            .bind(peer.as_str())
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    // ---- quotas ----------------------------------------------------------------------------

    /// Takes `n` units of a fixed window; see [`Quotas::take_quota`](crate::Quotas::take_quota).
    pub(crate) async fn take_quota(
        pool: &Pool<DB>,
        key: &str,
        window_start: EpochMs,
        window_ms: EpochMs,
        limit: u64,
        n: u64,
        now: EpochMs,
    ) -> Result<QuotaTake> {
        let window_end = quota_window_end(window_start, window_ms);
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let taken: Option<i64> = sqlx::query_scalar(sql::TAKE_QUOTA)
            .bind(key)
            .bind(window_start)
            .bind(window_end)
            .bind(as_i64(n))
            .bind(as_i64(limit))
            .bind(now)
            .fetch_optional(pool)
            .await?;
        if let Some(count) = taken {
            return Ok(QuotaTake::Granted { count: count_u64(count) });
        }
        let count: Option<i64> =
            sqlx::query_scalar(sql::QUOTA_TAKEN).bind(key).bind(window_start).fetch_optional(pool).await?;
        Ok(QuotaTake::Refused { count: count_u64(count.unwrap_or(0)), window_end })
    }

    // ---- secrets ---------------------------------------------------------------------------

    pub(crate) async fn put_secret_blob(
        db: impl Executor<'_, Database = DB>,
        name: &str,
        blob: &[u8],
        now: EpochMs,
    ) -> Result<()> {
        sqlx::query(sql::PUT_SECRET).bind(name).bind(blob).bind(now).execute(db).await?;
        Ok(())
    }

    pub(crate) async fn get_secret_blob(db: impl Executor<'_, Database = DB>, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::GET_SECRET).bind(name).fetch_optional(db).await?)
    }

    pub(crate) async fn delete_secret(db: impl Executor<'_, Database = DB>, name: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_SECRET).bind(name).execute(db).await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    // ---- operations ------------------------------------------------------------------------

    /// The queue counts, read inside the caller's transaction so that they describe one moment.
    pub(crate) async fn queue_stats(conn: &mut DB::Connection) -> Result<QueueStats> {
        let inbox: Vec<(String, i64)> = sqlx::query_as(InboundRow::sql().counts.as_str()).fetch_all(&mut *conn).await?;
        let outbox: Vec<(String, i64)> =
            sqlx::query_as(OutboundRow::sql().counts.as_str()).fetch_all(&mut *conn).await?;
        let failed: i64 = sqlx::query_scalar(sql::DELIVERY_FAILED_COUNT).fetch_one(&mut *conn).await?;
        Ok(queue_stats(&inbox, &outbox, failed))
    }

    pub(crate) async fn dead_letters(pool: &Pool<DB>, limit: u32) -> Result<Vec<DeadLetter>> {
        let mut all = Vec::new();
        for (queue, query) in [
            (OutboundRow::SPEC.table, OutboundRow::sql().dead_letters.as_str()),
            (InboundRow::SPEC.table, InboundRow::sql().dead_letters.as_str()),
            (bizmsg::BIZMSG.table, bizmsg::sql().dead_letters.as_str()),
            ("delivery", sql::FAILED_DELIVERIES),
        ] {
            let records: Vec<DeadRecord> = sqlx::query_as(query).bind(i64::from(limit)).fetch_all(pool).await?;
            all.extend(records.into_iter().map(|r| r.into_dead_letter(queue)));
        }
        Ok(merge_dead_letters(all, limit))
    }

    /// Writes the heartbeat and reads it back inside the caller's transaction; what was read, for
    /// [`check_heartbeat`](crate::record::check_heartbeat) once the transaction committed.
    pub(crate) async fn heartbeat(conn: &mut DB::Connection, now: EpochMs) -> Result<i64> {
        sqlx::query(sql::WRITE_HEARTBEAT).bind(now).execute(&mut *conn).await?;
        Ok(sqlx::query_scalar(sql::READ_HEARTBEAT).fetch_one(&mut *conn).await?)
    }

    /// Runs the prune statements inside the caller's transaction; how many rows went.
    pub(crate) async fn prune(conn: &mut DB::Connection, before: EpochMs) -> Result<u64> {
        let mut removed = 0;
        let queues =
            [InboundRow::sql().prune.as_str(), OutboundRow::sql().prune.as_str(), bizmsg::sql().prune.as_str()];
        for statement in queues.into_iter().chain(sql::PRUNE) {
            removed += DB::rows_affected(&sqlx::query(statement).bind(before).execute(&mut *conn).await?);
        }
        Ok(removed)
    }

    // ---- business messages ----------------------------------------------------------------

    /// Inserts the messages inside the caller's transaction.
    pub(crate) async fn enqueue_bizmsg(
        conn: &mut DB::Connection,
        messages: &[NewBizmsg],
        now: EpochMs,
    ) -> Result<Vec<Enqueued>> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let inserted: Option<i64> = sqlx::query_scalar(bizmsg::INSERT)
                .bind(m.idempotency_key.as_str())
                .bind(crate::bizmsg::lane(m).as_str())
                .bind(m.account.as_str())
                .bind(m.product.as_str())
                .bind(m.dealer.as_str())
                .bind(m.recipient.as_str())
                .bind(m.template_code.as_deref())
                .bind(m.payload.as_str())
                .bind(m.origin.as_str())
                .bind(m.not_before)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?;
            out.push(match inserted {
                Some(id) => Enqueued { id, new: true },
                None => {
                    let id: i64 = sqlx::query_scalar(bizmsg::FIND_KEY)
                        .bind(m.idempotency_key.as_str())
                        .fetch_one(&mut *conn)
                        .await?;
                    Enqueued { id, new: false }
                }
            });
        }
        Ok(out)
    }

    /// Marks the claimed rows with the request they go in, inside the caller's transaction.
    pub(crate) async fn set_bizmsg_request(
        conn: &mut DB::Connection,
        ids: &[i64],
        worker: &str,
        request_key: Option<&str>,
        now: EpochMs,
    ) -> Result<u64> {
        let mut marked = 0;
        for &id in ids {
            let done = sqlx::query(bizmsg::SET_REQUEST)
                .bind(id)
                .bind(worker)
                .bind(request_key)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            marked += DB::rows_affected(&done);
        }
        Ok(marked)
    }

    pub(crate) async fn bizmsg_of_request(
        db: impl Executor<'_, Database = DB>,
        request_key: &str,
    ) -> Result<Vec<BizmsgRow>> {
        let records: Vec<BizmsgRecord> = sqlx::query_as(bizmsg::OF_REQUEST).bind(request_key).fetch_all(db).await?;
        records.into_iter().map(BizmsgRecord::into_row).collect()
    }

    pub(crate) async fn record_bizmsg_result(db: impl Executor<'_, Database = DB>, r: &BizmsgResult) -> Result<bool> {
        let done = sqlx::query(bizmsg::RECORD_RESULT)
            .bind(r.dealer.as_str())
            .bind(r.dealer_id.as_str())
            .bind(r.result.as_str())
            .bind(r.code.as_deref())
            .bind(r.reason.as_deref())
            .bind(r.fallback.as_deref())
            .bind(r.rank)
            .bind(r.at)
            .execute(db)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn unfinished_bizmsg(
        db: impl Executor<'_, Database = DB>,
        dealer: &str,
        from: EpochMs,
        to: EpochMs,
        limit: u32,
    ) -> Result<Vec<BizmsgRow>> {
        let records: Vec<BizmsgRecord> = sqlx::query_as(bizmsg::UNFINISHED)
            .bind(dealer)
            .bind(from)
            .bind(to)
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
        records.into_iter().map(BizmsgRecord::into_row).collect()
    }

    /// Counts by state and by result, inside the caller's transaction.
    pub(crate) async fn bizmsg_stats(conn: &mut DB::Connection) -> Result<BizmsgStats> {
        let states: Vec<(String, i64)> = sqlx::query_as(bizmsg::sql().counts.as_str()).fetch_all(&mut *conn).await?;
        let results: Vec<(String, i64)> = sqlx::query_as(bizmsg::RESULT_COUNTS).fetch_all(&mut *conn).await?;
        let unsigned = |rows: Vec<(String, i64)>| {
            let mut rows: Vec<(String, u64)> =
                rows.into_iter().map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))).collect();
            rows.sort();
            rows
        };
        Ok(BizmsgStats { states: unsigned(states), results: unsigned(results) })
    }
}
