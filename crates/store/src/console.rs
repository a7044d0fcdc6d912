//! What the operator console reads and does beyond the other capabilities: recent conversations
//! (lanes) with their messages, retrying or discarding a dead letter, and the audit trail of
//! what operators did.
//!
//! Reads only, except [`ConsoleStore::act_on_dead_letter`] and [`ConsoleStore::record_audit`]:
//! a dead-letter action and its audit row are written in one transaction, so no retry happens
//! unrecorded.

use crate::Result;
use crate::common::{Backend, Queries};
use crate::model::{InboundRow, OutboundRow};
use crate::queue::Queued;
use crate::record::{InboxRecord, OutboxRecord, count_u64, inbox_columns, outbox_columns};
use async_trait::async_trait;
use clawbridge_core::{AccountId, ChannelId, EpochMs, PeerId};
use serde::Serialize;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

/// One conversation: a lane with how many messages went each way and when it last moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaneSummary {
    /// The stored lane (`channel/account/peer`).
    pub lane: String,
    /// Channel.
    pub channel: ChannelId,
    /// Account.
    pub account: AccountId,
    /// The peer (unmasked: the console masks it for display).
    pub peer: PeerId,
    /// Inbox rows of the lane still stored.
    pub inbound: u64,
    /// Outbox rows of the lane still stored.
    pub outbound: u64,
    /// The newest message's time, either way.
    pub last_at: EpochMs,
}

/// What an operator does with a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterAction {
    /// Back into its queue with a fresh set of attempts, due now.
    Retry,
    /// Out of the dead letters for good: an outbox row is deleted, an inbox row is finished
    /// with outcome `discarded` (kept, so a redelivery of the message is still a duplicate).
    Discard,
}

impl DeadLetterAction {
    /// The audit spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Discard => "discard",
        }
    }
}

/// One thing an operator did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// When.
    pub at: EpochMs,
    /// Who (`console`, or a session's label).
    pub actor: String,
    /// What (`dead_letter.retry`, `pairing.approve`…).
    pub action: String,
    /// On what (`outbox/12`, `kakao/ABCD-EFGH`…), never an unmasked number.
    pub target: String,
    /// Anything else worth keeping.
    pub detail: String,
}

/// The console's queries; see the module doc.
#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// The most recently active lanes of the inbox and the outbox, newest first, at most `limit`.
    async fn recent_lanes(&self, limit: u32) -> Result<Vec<LaneSummary>>;

    /// The newest inbox rows of a lane, newest first.
    async fn lane_inbound(&self, lane: &str, limit: u32) -> Result<Vec<InboundRow>>;

    /// The newest outbox rows of a lane, newest first.
    async fn lane_outbound(&self, lane: &str, limit: u32) -> Result<Vec<OutboundRow>>;

    /// Retries or discards a dead letter of `queue` (`outbox` dead, `inbox` failed) and records
    /// it in the audit trail, in one transaction. `false` (nothing written) when the row is not
    /// a dead letter of that queue (any more): retried already, or another queue (`bizmsg`,
    /// `delivery`), which the console does not act on.
    async fn act_on_dead_letter(
        &self,
        queue: &str,
        id: i64,
        action: DeadLetterAction,
        actor: &str,
        now: EpochMs,
    ) -> Result<bool>;

    /// Records an operator action that has its own store call (pairing decisions, campaigns).
    async fn record_audit(&self, actor: &str, action: &str, target: &str, detail: &str, now: EpochMs) -> Result<()>;

    /// The newest audit entries, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>>;
}

// ---- SQL ----------------------------------------------------------------------------------------

/// Lanes of both queues, merged. `CAST(SUM …)`: PostgreSQL sums BIGINT into NUMERIC.
pub(crate) const RECENT_LANES: &str = "\
    SELECT lane, channel, account, peer, CAST(SUM(n_in) AS BIGINT) AS inbound, \
           CAST(SUM(n_out) AS BIGINT) AS outbound, CAST(MAX(last_at) AS BIGINT) AS last_at FROM ( \
        SELECT lane, channel, account, peer, COUNT(*) AS n_in, CAST(0 AS BIGINT) AS n_out, \
               MAX(received_at) AS last_at FROM inbox GROUP BY lane, channel, account, peer \
        UNION ALL \
        SELECT lane, channel, account, peer, CAST(0 AS BIGINT), COUNT(*), MAX(created_at) \
        FROM outbox GROUP BY lane, channel, account, peer \
    ) lanes GROUP BY lane, channel, account, peer ORDER BY last_at DESC, lane LIMIT $1";

pub(crate) const LANE_INBOUND: &str =
    concat!("SELECT ", inbox_columns!(), " FROM inbox WHERE lane = $1 ORDER BY id DESC LIMIT $2");

pub(crate) const LANE_OUTBOUND: &str =
    concat!("SELECT ", outbox_columns!(), " FROM outbox WHERE lane = $1 ORDER BY id DESC LIMIT $2");

const RETRY_OUTBOX: &str = "\
    UPDATE outbox SET state = 'queued', attempts = 0, next_at = $2, lease_owner = NULL, lease_until = NULL, \
                      updated_at = $2 \
    WHERE id = $1 AND state = 'dead'";

/// `$2` (now) is bound like for the other statements; PostgreSQL refuses a parameter a statement
/// does not use, so it appears in a condition that always holds.
const DISCARD_OUTBOX: &str = "DELETE FROM outbox WHERE id = $1 AND state = 'dead' AND $2 >= 0";

const RETRY_INBOX: &str = "\
    UPDATE inbox SET state = 'pending', attempts = 0, next_at = $2, lease_owner = NULL, lease_until = NULL, \
                     updated_at = $2 \
    WHERE id = $1 AND state = 'failed'";

const DISCARD_INBOX: &str =
    "UPDATE inbox SET state = 'done', outcome = 'discarded', updated_at = $2 WHERE id = $1 AND state = 'failed'";

const INSERT_AUDIT: &str = "INSERT INTO console_audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";

const AUDIT_LOG: &str = "SELECT id, at, actor, action, target, detail FROM console_audit ORDER BY id DESC LIMIT $1";

/// The statement that carries out `action` on a dead letter of `queue`, if the console acts on it.
pub(crate) fn dead_letter_statement(queue: &str, action: DeadLetterAction) -> Option<&'static str> {
    Some(match (queue, action) {
        ("outbox", DeadLetterAction::Retry) => RETRY_OUTBOX,
        ("outbox", DeadLetterAction::Discard) => DISCARD_OUTBOX,
        ("inbox", DeadLetterAction::Retry) => RETRY_INBOX,
        ("inbox", DeadLetterAction::Discard) => DISCARD_INBOX,
        _ => return None,
    })
}

/// The audit action of a dead-letter action.
pub(crate) fn dead_letter_audit(action: DeadLetterAction) -> String {
    format!("dead_letter.{}", action.as_str())
}

// ---- records ------------------------------------------------------------------------------------

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LaneRecord {
    lane: String,
    channel: String,
    account: String,
    peer: String,
    inbound: i64,
    outbound: i64,
    last_at: i64,
}

impl From<LaneRecord> for LaneSummary {
    fn from(r: LaneRecord) -> Self {
        Self {
            lane: r.lane,
            channel: ChannelId::new(r.channel),
            account: AccountId::new(r.account),
            peer: PeerId::new(r.peer),
            inbound: count_u64(r.inbound),
            outbound: count_u64(r.outbound),
            last_at: r.last_at,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRecord {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    detail: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self { id: r.id, at: r.at, actor: r.actor, action: r.action, target: r.target, detail: r.detail }
    }
}

// ---- the shared steps ---------------------------------------------------------------------------

impl<DB> Queries<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'r> LaneRecord: FromRow<'r, DB::Row>,
    for<'r> AuditRecord: FromRow<'r, DB::Row>,
    for<'r> InboxRecord: FromRow<'r, DB::Row>,
    for<'r> OutboxRecord: FromRow<'r, DB::Row>,
{
    pub(crate) async fn recent_lanes(db: impl Executor<'_, Database = DB>, limit: u32) -> Result<Vec<LaneSummary>> {
        let records: Vec<LaneRecord> = sqlx::query_as(RECENT_LANES).bind(i64::from(limit)).fetch_all(db).await?;
        Ok(records.into_iter().map(LaneSummary::from).collect())
    }

    pub(crate) async fn lane_inbound(
        db: impl Executor<'_, Database = DB>,
        lane: &str,
        limit: u32,
    ) -> Result<Vec<InboundRow>> {
        let records: Vec<InboxRecord> =
            sqlx::query_as(LANE_INBOUND).bind(lane).bind(i64::from(limit)).fetch_all(db).await?;
        records.into_iter().map(InboundRow::decode).collect()
    }

    pub(crate) async fn lane_outbound(
        db: impl Executor<'_, Database = DB>,
        lane: &str,
        limit: u32,
    ) -> Result<Vec<OutboundRow>> {
        let records: Vec<OutboxRecord> =
            sqlx::query_as(LANE_OUTBOUND).bind(lane).bind(i64::from(limit)).fetch_all(db).await?;
        records.into_iter().map(OutboundRow::decode).collect()
    }

    /// The action and its audit row inside the caller's transaction; whether the row was acted on.
    pub(crate) async fn act_on_dead_letter(
        conn: &mut DB::Connection,
        queue: &str,
        id: i64,
        action: DeadLetterAction,
        actor: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let Some(statement) = dead_letter_statement(queue, action) else { return Ok(false) };
        let done = sqlx::query(statement).bind(id).bind(now).execute(&mut *conn).await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        let target = format!("{queue}/{id}");
        Self::record_audit(&mut *conn, actor, &dead_letter_audit(action), &target, "", now).await?;
        Ok(true)
    }

    pub(crate) async fn record_audit(
        db: impl Executor<'_, Database = DB>,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        now: EpochMs,
    ) -> Result<()> {
        sqlx::query(INSERT_AUDIT).bind(now).bind(actor).bind(action).bind(target).bind(detail).execute(db).await?;
        Ok(())
    }

    pub(crate) async fn audit_log(db: impl Executor<'_, Database = DB>, limit: u32) -> Result<Vec<AuditEntry>> {
        let records: Vec<AuditRecord> = sqlx::query_as(AUDIT_LOG).bind(i64::from(limit)).fetch_all(db).await?;
        Ok(records.into_iter().map(AuditEntry::from).collect())
    }
}

/// An audit row the memory backend keeps, numbered like the SQL identity column.
pub(crate) fn memory_audit(id: i64, actor: &str, action: &str, target: &str, detail: &str, now: EpochMs) -> AuditEntry {
    AuditEntry {
        id,
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
    }
}
