//! The lease queue, described once and run by every backend.
//!
//! The inbox and the outbox are the same machine: a row is *fresh*, a worker claims it under a
//! lease (*leased*), and the worker either finishes it (*succeeded*), schedules another attempt
//! (*retry*, claimable again at `next_at`) or gives up (*given up*, a dead letter). A worker
//! can renew its lease or release the row (the claim is undone, as after a shutdown); a lease
//! that runs out lets another worker claim the row again. Claims go per lane, oldest first: only
//! the oldest unfinished row of a lane is claimable, so one conversation is handled strictly in
//! order even across processes.
//!
//! A queue is a [`QueueSpec`] (its table and which of its states plays which part); from it
//! [`QueueSql`] derives every statement of that cycle for the SQL backends, and the in-memory
//! backend runs the same cycle on the same spec (`memory::LeaseQueue`). Adding a queue
//! (campaign sends, dealer sends) is a table, a spec, a row type implementing [`Queued`], its
//! item in the memory backend and the methods of its capability trait, not another copy of the
//! lease logic.
//!
//! A queue's table has at least `id` (increasing, never reused), `lane`, `state`, `attempts`,
//! `next_at`, `lease_owner`, `lease_until`, `last_error`, `updated_at` and the spec's
//! `success_column`, plus the two partial indexes on open rows the migrations give the inbox
//! (`(lane, id)` and `(id, state, next_at, lease_until)` where the state is open).

use crate::Result;
use crate::model::{InboundRow, InboxState, OutboundRow, OutboxState};
use crate::record::{InboxRecord, OutboxRecord, inbox_columns, outbox_columns};
use std::sync::LazyLock;

/// A state type of a queue (`InboxState`, `OutboxState`).
pub(crate) trait QueueState: Copy + Eq + Send + Sync + std::fmt::Debug + 'static {
    /// The stored spelling.
    fn as_str(self) -> &'static str;
}

impl QueueState for InboxState {
    fn as_str(self) -> &'static str {
        InboxState::as_str(self)
    }
}

impl QueueState for OutboxState {
    fn as_str(self) -> &'static str {
        OutboxState::as_str(self)
    }
}

/// Which table a queue lives in and which of its states plays which part of the cycle.
#[derive(Debug)]
pub(crate) struct QueueSpec<S> {
    /// The table, also the queue's name in dead letters (`inbox`, `outbox`).
    pub(crate) table: &'static str,
    /// The columns a row is read back with (claims, `get`).
    pub(crate) columns: &'static str,
    /// A row nobody has attempted yet.
    pub(crate) fresh: S,
    /// A row waiting for another attempt at `next_at` (may equal `fresh`).
    pub(crate) retry: S,
    /// A row claimed by a worker under a lease.
    pub(crate) leased: S,
    /// Finished: the worker's result is in `success_column`.
    pub(crate) succeeded: S,
    /// Given up: the reason is in `last_error`; a dead letter.
    pub(crate) given_up: S,
    /// What a success records (the inbox's `outcome`, the outbox's `platform_message_id`).
    pub(crate) success_column: &'static str,
}

impl<S: QueueState> QueueSpec<S> {
    /// States of unfinished rows, in the order the partial indexes of the migrations list them
    /// (SQLite uses a partial index only when the query repeats its condition).
    pub(crate) fn open(&self) -> Vec<S> {
        distinct([self.fresh, self.leased, self.retry])
    }

    /// States a claim takes once `next_at` is due.
    pub(crate) fn ready(&self) -> Vec<S> {
        distinct([self.fresh, self.retry])
    }

    /// Whether a row in `state` is unfinished (it holds its lane).
    pub(crate) fn is_open(&self, state: S) -> bool {
        state == self.fresh || state == self.retry || state == self.leased
    }

    /// Whether a row in `state` waits for `next_at` to be claimed.
    pub(crate) fn is_ready(&self, state: S) -> bool {
        state == self.fresh || state == self.retry
    }

    /// The state a released row returns to: fresh if the undone claim was its first attempt.
    /// `attempts` is the stored count, the undone claim included.
    pub(crate) fn released(&self, attempts: u32) -> S {
        if attempts > 1 { self.retry } else { self.fresh }
    }
}

fn distinct<S: PartialEq + Copy, const N: usize>(states: [S; N]) -> Vec<S> {
    let mut out = Vec::with_capacity(N);
    for s in states {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The inbox: `pending` → `processing` → `done` (the outcome) | `pending` again | `failed`.
pub(crate) const INBOX: QueueSpec<InboxState> = QueueSpec {
    table: "inbox",
    columns: inbox_columns!(),
    fresh: InboxState::Pending,
    retry: InboxState::Pending,
    leased: InboxState::Processing,
    succeeded: InboxState::Done,
    given_up: InboxState::Failed,
    success_column: "outcome",
};

/// The outbox: `queued` → `sending` → `sent` (the platform's id) | `retry` | `dead`.
pub(crate) const OUTBOX: QueueSpec<OutboxState> = QueueSpec {
    table: "outbox",
    columns: outbox_columns!(),
    fresh: OutboxState::Queued,
    retry: OutboxState::Retry,
    leased: OutboxState::Sending,
    succeeded: OutboxState::Sent,
    given_up: OutboxState::Dead,
    success_column: "platform_message_id",
};

/// Every statement of the lease cycle of one queue, derived from its [`QueueSpec`] once.
///
/// Parameters: claims `$1` now, `$2` limit (or row id), `$3` worker, `$4` lease deadline; the
/// row statements `$1` id, `$2` worker, then the values. Every statement on a claimed row checks
/// both the owner and the leased state, so a worker whose lease ran out and whose row was claimed
/// again cannot write over the new owner's work.
#[derive(Debug)]
pub(crate) struct QueueSql {
    /// Claim on a single writer (SQLite): the writer serialises claims, nothing to lock.
    pub(crate) claim_single_writer: String,
    /// Claim among concurrent writers (PostgreSQL): `FOR UPDATE SKIP LOCKED`, so two replicas
    /// never take the same row and neither waits for the other; PostgreSQL re-checks the claim
    /// rule on a row that changed while the claim waited for it.
    pub(crate) claim_skip_locked: String,
    /// Claims one fresh row by id (`$2`) when it is due and its lane lets it go now.
    pub(crate) claim_fresh: String,
    /// `$3` new lease deadline, `$4` now.
    pub(crate) renew: String,
    /// `$3` what the success records, `$4` now.
    pub(crate) succeed: String,
    /// `$3` error, `$4` next attempt, `$5` now.
    pub(crate) retry: String,
    /// `$3` reason, `$4` now.
    pub(crate) give_up: String,
    /// Undoes the claim: the claim's attempt taken back (a shutdown is not a failed attempt),
    /// fresh again if that claim was the first attempt, else retry; `next_at` unchanged.
    pub(crate) release: String,
    /// `$1` id.
    pub(crate) get: String,
    /// `(state, count)` of every state present.
    pub(crate) counts: String,
    /// Given-up rows as dead letters, newest first, `$1` limit.
    pub(crate) dead_letters: String,
    /// Deletes finished rows last updated before `$1`.
    pub(crate) prune: String,
}

impl QueueSql {
    pub(crate) fn new<S: QueueState>(spec: &QueueSpec<S>) -> Self {
        let QueueSpec { table: t, columns, .. } = *spec;
        let open = state_in("o.state", &spec.open());
        // No older unfinished row in the lane of `row`.
        let lane_free = |row: &str| {
            format!("NOT EXISTS (SELECT 1 FROM {t} o WHERE o.lane = {row}.lane AND o.id < {row}.id AND {open})")
        };
        let claimable = format!(
            "SELECT c.id FROM {t} c \
             WHERE {} \
               AND (({} AND c.next_at <= $1) \
                 OR (c.state = '{}' AND COALESCE(c.lease_until, 0) < $1)) \
               AND {} \
             ORDER BY c.id \
             LIMIT $2",
            state_in("c.state", &spec.open()),
            state_in("c.state", &spec.ready()),
            spec.leased.as_str(),
            lane_free("c"),
        );
        let claim_set = format!(
            "UPDATE {t} SET state = '{}', lease_owner = $3, lease_until = $4, attempts = attempts + 1, \
             updated_at = $1 ",
            spec.leased.as_str()
        );
        let on_leased = format!("WHERE id = $1 AND state = '{}' AND lease_owner = $2", spec.leased.as_str());
        let cleared = "lease_owner = NULL, lease_until = NULL";
        let released = if spec.fresh == spec.retry {
            format!("'{}'", spec.fresh.as_str())
        } else {
            format!("CASE WHEN attempts > 1 THEN '{}' ELSE '{}' END", spec.retry.as_str(), spec.fresh.as_str())
        };
        Self {
            claim_single_writer: format!("{claim_set}WHERE id IN ({claimable}) RETURNING {columns}"),
            claim_skip_locked: format!(
                "WITH claimable AS ({claimable} FOR UPDATE OF c SKIP LOCKED) \
                 {claim_set}WHERE id IN (SELECT id FROM claimable) RETURNING {columns}"
            ),
            claim_fresh: format!(
                "{claim_set}WHERE id = $2 AND state = '{}' AND next_at <= $1 AND {} RETURNING {columns}",
                spec.fresh.as_str(),
                lane_free(t),
            ),
            renew: format!("UPDATE {t} SET lease_until = $3, updated_at = $4 {on_leased}"),
            succeed: format!(
                "UPDATE {t} SET state = '{}', {} = $3, {cleared}, updated_at = $4 {on_leased}",
                spec.succeeded.as_str(),
                spec.success_column
            ),
            retry: format!(
                "UPDATE {t} SET state = '{}', next_at = $4, last_error = $3, {cleared}, updated_at = $5 {on_leased}",
                spec.retry.as_str()
            ),
            give_up: format!(
                "UPDATE {t} SET state = '{}', last_error = $3, {cleared}, updated_at = $4 {on_leased}",
                spec.given_up.as_str()
            ),
            release: format!(
                "UPDATE {t} SET state = {released}, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, {cleared} {on_leased}"
            ),
            get: format!("SELECT {columns} FROM {t} WHERE id = $1"),
            counts: format!("SELECT state, COUNT(*) FROM {t} GROUP BY state"),
            dead_letters: format!(
                "SELECT id, lane, COALESCE(last_error, '') AS reason, attempts, updated_at AS at FROM {t} \
                 WHERE state = '{}' ORDER BY updated_at DESC, id DESC LIMIT $1",
                spec.given_up.as_str()
            ),
            prune: format!(
                "DELETE FROM {t} WHERE state IN ('{}', '{}') AND updated_at < $1",
                spec.succeeded.as_str(),
                spec.given_up.as_str()
            ),
        }
    }
}

/// `column = 'a'` or `column IN ('a', 'b')`.
fn state_in<S: QueueState>(column: &str, states: &[S]) -> String {
    let quoted: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    match quoted.as_slice() {
        [one] => format!("{column} = {one}"),
        many => format!("{column} IN ({})", many.join(", ")),
    }
}

static INBOX_SQL: LazyLock<QueueSql> = LazyLock::new(|| QueueSql::new(&INBOX));
static OUTBOX_SQL: LazyLock<QueueSql> = LazyLock::new(|| QueueSql::new(&OUTBOX));

/// The row type of a queue: ties a row to its spec, its statements and its stored record.
pub(crate) trait Queued: Sized + Send + Unpin + 'static {
    /// The queue's states.
    type State: QueueState;
    /// The row as the SQL backends decode it.
    type Record: Send + Unpin;
    /// The queue.
    const SPEC: &'static QueueSpec<Self::State>;
    /// Its statements.
    fn sql() -> &'static QueueSql;
    /// Decodes a stored record.
    fn decode(record: Self::Record) -> Result<Self>;
    /// The row id.
    fn id(&self) -> i64;
}

impl Queued for InboundRow {
    type State = InboxState;
    type Record = InboxRecord;
    const SPEC: &'static QueueSpec<InboxState> = &INBOX;
    fn sql() -> &'static QueueSql {
        &INBOX_SQL
    }
    fn decode(record: InboxRecord) -> Result<Self> {
        record.into_row()
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl Queued for OutboundRow {
    type State = OutboxState;
    type Record = OutboxRecord;
    const SPEC: &'static QueueSpec<OutboxState> = &OUTBOX;
    fn sql() -> &'static QueueSql {
        &OUTBOX_SQL
    }
    fn decode(record: OutboxRecord) -> Result<Self> {
        record.into_row()
    }
    fn id(&self) -> i64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived statements are the ones the backends ran before the queue was generic
    /// (modulo whitespace), so the query plans and the partial indexes they use stay the same.
    #[test]
    fn inbox_and_outbox_statements_match_the_hand_written_ones() {
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let inbox = &*INBOX_SQL;
        assert_eq!(
            squash(&inbox.claim_single_writer),
            squash(concat!(
                "UPDATE inbox SET state = 'processing', lease_owner = $3, lease_until = $4, attempts = attempts + 1, ",
                "updated_at = $1 WHERE id IN (SELECT c.id FROM inbox c WHERE c.state IN ('pending', 'processing') ",
                "AND ((c.state = 'pending' AND c.next_at <= $1) OR (c.state = 'processing' AND ",
                "COALESCE(c.lease_until, 0) < $1)) AND NOT EXISTS (SELECT 1 FROM inbox o WHERE o.lane = c.lane AND ",
                "o.id < c.id AND o.state IN ('pending', 'processing')) ORDER BY c.id LIMIT $2) RETURNING ",
                inbox_columns!()
            ))
        );
        assert_eq!(
            squash(&inbox.release),
            squash(
                "UPDATE inbox SET state = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1 AND state = 'processing' AND lease_owner = $2"
            )
        );
        let outbox = &*OUTBOX_SQL;
        assert_eq!(
            squash(&outbox.claim_skip_locked),
            squash(concat!(
                "WITH claimable AS (SELECT c.id FROM outbox c WHERE c.state IN ('queued', 'sending', 'retry') ",
                "AND ((c.state IN ('queued', 'retry') AND c.next_at <= $1) OR (c.state = 'sending' AND ",
                "COALESCE(c.lease_until, 0) < $1)) AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.lane = c.lane AND ",
                "o.id < c.id AND o.state IN ('queued', 'sending', 'retry')) ORDER BY c.id LIMIT $2 ",
                "FOR UPDATE OF c SKIP LOCKED) UPDATE outbox SET state = 'sending', lease_owner = $3, ",
                "lease_until = $4, attempts = attempts + 1, updated_at = $1 WHERE id IN (SELECT id FROM claimable) ",
                "RETURNING ",
                outbox_columns!()
            ))
        );
        assert_eq!(
            squash(&outbox.succeed),
            squash(
                "UPDATE outbox SET state = 'sent', platform_message_id = $3, lease_owner = NULL, lease_until = NULL, \
                 updated_at = $4 WHERE id = $1 AND state = 'sending' AND lease_owner = $2"
            )
        );
        assert_eq!(
            squash(&outbox.release),
            squash(
                "UPDATE outbox SET state = CASE WHEN attempts > 1 THEN 'retry' ELSE 'queued' END, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1 AND state = 'sending' AND lease_owner = $2"
            )
        );
        assert!(outbox.claim_fresh.contains("o.lane = outbox.lane AND o.id < outbox.id"), "{}", outbox.claim_fresh);
    }

    #[test]
    fn a_release_returns_to_fresh_only_after_a_first_attempt() {
        assert_eq!(OUTBOX.released(1), OutboxState::Queued);
        assert_eq!(OUTBOX.released(2), OutboxState::Retry);
        assert_eq!(INBOX.released(3), InboxState::Pending);
        assert_eq!(OUTBOX.open(), [OutboxState::Queued, OutboxState::Sending, OutboxState::Retry]);
        assert_eq!(INBOX.ready(), [InboxState::Pending]);
    }
}
