//! Kakao business messages (AlimTalk, Brand Message): one durable row per recipient, written
//! before any dealer request, run by the same lease queue as the outbox.
//!
//! `queued` → `sending` (claimed under a lease; `request_key` names the dealer request it went
//! in, recorded before that request is made) → `accepted` (the dealer's id in `dealer_id`) |
//! `retry` | `dead` (the dealer refused the recipient, or the retries ran out). The delivery
//! result that follows (delivered, failed, fallback sent…) is written by the dealer's id and only
//! moves forward: an update whose rank is below the stored one changes nothing, so a late or
//! repeated report never overwrites a newer one.
//!
//! The store does not read `payload` (what the dealer request needs, written by the bizmsg crate)
//! nor judge results: the caller gives each result its rank.

use crate::queue::{QueueSpec, QueueSql, QueueState, Queued};
use crate::record::count_u32;
use crate::{Result, StoreError};
use async_trait::async_trait;
use clawbridge_core::EpochMs;
use std::sync::LazyLock;

/// States of a business-message row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BizmsgState {
    /// Waiting for its first request.
    Queued,
    /// Claimed by a worker; a dealer request may be in flight.
    Sending,
    /// The dealer took it; the delivery result follows.
    Accepted,
    /// Waiting for another attempt at `next_at`.
    Retry,
    /// Refused by the dealer or given up; the reason is in `last_error`.
    Dead,
}

impl BizmsgState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Accepted => "accepted",
            Self::Retry => "retry",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "accepted" => Self::Accepted,
            "retry" => Self::Retry,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

impl QueueState for BizmsgState {
    fn as_str(self) -> &'static str {
        BizmsgState::as_str(self)
    }
}

/// A business message to one recipient, to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBizmsg {
    /// Unique: storing the same key twice keeps the first row (a repeated CLI call or agent tool
    /// call sends once).
    pub idempotency_key: String,
    /// The sender account (`default`, or a `[bizmsg.accounts]` name).
    pub account: String,
    /// `alimtalk` or `brand`.
    pub product: String,
    /// The dealer it goes through (`nhn`, `solapi`, `infobip`).
    pub dealer: String,
    /// The recipient's number in national form.
    pub recipient: String,
    /// The AlimTalk template code, if any.
    pub template_code: Option<String>,
    /// What the request needs (JSON written by the bizmsg crate).
    pub payload: String,
    /// Who asked: `cli`, `agent`, `campaign:<id>`.
    pub origin: String,
    /// Not before this instant (a schedule, or the ad window's opening).
    pub not_before: EpochMs,
}

/// A stored business message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BizmsgRow {
    /// Row id; also what `alimtalk status ID` takes.
    pub id: i64,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// The sender account.
    pub account: String,
    /// `alimtalk` or `brand`.
    pub product: String,
    /// The dealer.
    pub dealer: String,
    /// The recipient (national form).
    pub recipient: String,
    /// The template code.
    pub template_code: Option<String>,
    /// The request's inputs.
    pub payload: String,
    /// Who asked.
    pub origin: String,
    /// Where it is in the queue.
    pub state: BizmsgState,
    /// Requests started (1 on the first claim).
    pub attempts: u32,
    /// Earliest (next) attempt.
    pub next_at: EpochMs,
    /// Last error, or why it is dead.
    pub last_error: Option<String>,
    /// The dealer's id once accepted.
    pub dealer_id: Option<String>,
    /// The dealer request of the latest attempt (its idempotency key).
    pub request_key: Option<String>,
    /// The delivery result (`delivered`, `failed`, `cancelled`, `pending`).
    pub result: Option<String>,
    /// The result code (Kakao's, or the dealer's).
    pub result_code: Option<String>,
    /// What it means.
    pub result_reason: Option<String>,
    /// The SMS/LMS fallback (`armed`, `sent`, `failed`…).
    pub fallback: Option<String>,
    /// When the result was recorded.
    pub result_at: Option<EpochMs>,
    /// When it was stored.
    pub created_at: EpochMs,
    /// Last change.
    pub updated_at: EpochMs,
}

/// What storing a [`NewBizmsg`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The row (the existing one for a repeated key).
    pub id: i64,
    /// `false` when the key was already stored.
    pub new: bool,
}

/// A delivery result from a dealer (result query or webhook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BizmsgResult {
    /// The dealer.
    pub dealer: String,
    /// The dealer's id of the message.
    pub dealer_id: String,
    /// `delivered`, `failed`, `cancelled`, `pending`.
    pub result: String,
    /// The result code.
    pub code: Option<String>,
    /// What it means.
    pub reason: Option<String>,
    /// The fallback's state, when the dealer reports it.
    pub fallback: Option<String>,
    /// How far this result is along (the caller's order): stored only if not below the stored one.
    pub rank: i64,
    /// Now.
    pub at: EpochMs,
}

/// Counts of business messages, for `status` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BizmsgStats {
    /// `(state, count)`.
    pub states: Vec<(String, u64)>,
    /// `(result, count)` of accepted rows with a result.
    pub results: Vec<(String, u64)>,
}

/// The business-message queue.
#[async_trait]
pub trait BizmsgQueue: Send + Sync + 'static {
    /// Stores the messages in one transaction, each unless its key exists.
    async fn enqueue_bizmsg(&self, messages: &[NewBizmsg], now: EpochMs) -> Result<Vec<Enqueued>>;

    /// Claims up to `limit` due rows, oldest first, one per lane (so one request never holds a
    /// recipient twice).
    async fn claim_bizmsg(&self, worker: &str, limit: u32, lease_ms: EpochMs, now: EpochMs) -> Result<Vec<BizmsgRow>>;

    /// Records, before the request is made, which request the claimed rows `ids` go in (`None`
    /// forgets it: the request certainly did not arrive); rows `worker` no longer holds are left
    /// alone. How many were marked.
    async fn set_bizmsg_request(
        &self,
        ids: &[i64],
        worker: &str,
        request_key: Option<&str>,
        now: EpochMs,
    ) -> Result<u64>;

    /// The dealer accepted row `id` as `dealer_id`.
    async fn mark_bizmsg_accepted(&self, id: i64, worker: &str, dealer_id: &str, now: EpochMs) -> Result<bool>;

    /// Another attempt at `next_at`.
    async fn mark_bizmsg_retry(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        next_at: EpochMs,
        now: EpochMs,
    ) -> Result<bool>;

    /// Refused or given up.
    async fn mark_bizmsg_dead(&self, id: i64, worker: &str, reason: &str, now: EpochMs) -> Result<bool>;

    /// Undoes the claim (shutdown).
    async fn release_bizmsg(&self, id: i64, worker: &str) -> Result<()>;

    /// One row.
    async fn get_bizmsg(&self, id: i64) -> Result<Option<BizmsgRow>>;

    /// The rows of one dealer request.
    async fn bizmsg_of_request(&self, request_key: &str) -> Result<Vec<BizmsgRow>>;

    /// Records a delivery result unless a newer one is stored; `false` when no row has that
    /// dealer id, a newer result is there, or the same result is (a repeated report changes
    /// nothing: webhooks and polls deliver the same result more than once).
    async fn record_bizmsg_result(&self, result: &BizmsgResult) -> Result<bool>;

    /// Accepted rows of `dealer` whose delivery result is not final yet (none, pending, or failed
    /// with the SMS/LMS fallback still to come), last changed within `[from, to]`, newest change
    /// first, at most `limit`: what the worker asks the dealer about until it is final.
    async fn unfinished_bizmsg(&self, dealer: &str, from: EpochMs, to: EpochMs, limit: u32) -> Result<Vec<BizmsgRow>>;

    /// Counts by state and by result.
    async fn bizmsg_stats(&self) -> Result<BizmsgStats>;
}

/// `bizmsg/<account>/<recipient>`: one lane per sender and recipient, in the lanes' form (the
/// recipient last, so `mask_lane` masks the number wherever a lane is shown).
pub(crate) fn lane(m: &NewBizmsg) -> String {
    format!("bizmsg/{}/{}", m.account, m.recipient)
}

/// Columns of [`BizmsgRecord`].
macro_rules! bizmsg_columns {
    () => {
        "id, idempotency_key, account, product, dealer, recipient, template_code, payload, origin, state, attempts, \
         next_at, last_error, dealer_id, request_key, result, result_code, result_reason, fallback, result_at, \
         created_at, updated_at"
    };
}

/// The queue: `queued` → `sending` → `accepted` (the dealer's id) | `retry` | `dead`.
pub(crate) const BIZMSG: QueueSpec<BizmsgState> = QueueSpec {
    table: "bizmsg",
    columns: bizmsg_columns!(),
    fresh: BizmsgState::Queued,
    retry: BizmsgState::Retry,
    leased: BizmsgState::Sending,
    succeeded: BizmsgState::Accepted,
    given_up: BizmsgState::Dead,
    success_column: "dealer_id",
};

static BIZMSG_SQL: LazyLock<QueueSql> = LazyLock::new(|| QueueSql::new(&BIZMSG));

pub(crate) const INSERT: &str = "INSERT INTO bizmsg (idempotency_key, lane, account, product, dealer, recipient, \
     template_code, payload, origin, next_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";
pub(crate) const FIND_KEY: &str = "SELECT id FROM bizmsg WHERE idempotency_key = $1";
pub(crate) const SET_REQUEST: &str =
    "UPDATE bizmsg SET request_key = $3, updated_at = $4 WHERE id = $1 AND state = 'sending' AND lease_owner = $2";
pub(crate) const OF_REQUEST: &str =
    concat!("SELECT ", bizmsg_columns!(), " FROM bizmsg WHERE request_key = $1 ORDER BY id");
pub(crate) const RECORD_RESULT: &str = "UPDATE bizmsg SET result = $3, result_code = $4, result_reason = $5, \
     fallback = COALESCE($6, fallback), result_rank = $7, result_at = $8, updated_at = $8 \
     WHERE dealer = $1 AND dealer_id = $2 AND (result_rank < $7 OR (result_rank = $7 AND NOT ( \
     COALESCE(result, '') = $3 AND COALESCE(result_code, '') = COALESCE($4, '') \
     AND COALESCE(result_reason, '') = COALESCE($5, '') AND COALESCE(fallback, '') = COALESCE($6, fallback, ''))))";
/// Accepted rows whose result is not final ([`BizmsgQueue::unfinished_bizmsg`]).
pub(crate) const UNFINISHED: &str = concat!(
    "SELECT ",
    bizmsg_columns!(),
    " FROM bizmsg WHERE state = 'accepted' AND dealer = $1 AND updated_at >= $2 AND updated_at <= $3 \
     AND (result IS NULL OR result = 'pending' OR (result = 'failed' AND fallback IN ('armed', 'sending'))) \
     ORDER BY updated_at DESC, id DESC LIMIT $4"
);

/// Whether a stored result is final ([`BizmsgQueue::unfinished_bizmsg`] in Rust, for the memory store).
pub(crate) fn result_is_final(result: Option<&str>, fallback: Option<&str>) -> bool {
    match result {
        None | Some("pending") => false,
        Some("failed") => !matches!(fallback, Some("armed" | "sending")),
        Some(_) => true,
    }
}
pub(crate) const RESULT_COUNTS: &str = "SELECT result, COUNT(*) FROM bizmsg WHERE result IS NOT NULL GROUP BY result";

/// A business-message row as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BizmsgRecord {
    id: i64,
    idempotency_key: String,
    account: String,
    product: String,
    dealer: String,
    recipient: String,
    template_code: Option<String>,
    payload: String,
    origin: String,
    state: String,
    attempts: i64,
    next_at: i64,
    last_error: Option<String>,
    dealer_id: Option<String>,
    request_key: Option<String>,
    result: Option<String>,
    result_code: Option<String>,
    result_reason: Option<String>,
    fallback: Option<String>,
    result_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl BizmsgRecord {
    pub(crate) fn into_row(self) -> Result<BizmsgRow> {
        let state = BizmsgState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
            what: format!("bizmsg {}", self.id),
            detail: format!("unknown state {:?}", self.state),
        })?;
        Ok(BizmsgRow {
            id: self.id,
            idempotency_key: self.idempotency_key,
            account: self.account,
            product: self.product,
            dealer: self.dealer,
            recipient: self.recipient,
            template_code: self.template_code,
            payload: self.payload,
            origin: self.origin,
            state,
            attempts: count_u32(self.attempts),
            next_at: self.next_at,
            last_error: self.last_error,
            dealer_id: self.dealer_id,
            request_key: self.request_key,
            result: self.result,
            result_code: self.result_code,
            result_reason: self.result_reason,
            fallback: self.fallback,
            result_at: self.result_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Queued for BizmsgRow {
    type State = BizmsgState;
    type Record = BizmsgRecord;
    const SPEC: &'static QueueSpec<BizmsgState> = &BIZMSG;
    fn sql() -> &'static QueueSql {
        &BIZMSG_SQL
    }
    fn decode(record: BizmsgRecord) -> Result<Self> {
        record.into_row()
    }
    fn id(&self) -> i64 {
        self.id
    }
}

/// The statements of the queue (for the dead letters, counts and pruning of `Operations`).
pub(crate) fn sql() -> &'static QueueSql {
    &BIZMSG_SQL
}
