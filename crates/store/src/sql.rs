//! SQL shared by both backends.
//!
//! SQLite and PostgreSQL agree on everything here: `$N` parameters (sqlx binds SQLite's `$N` by
//! number), `INSERT … ON CONFLICT … DO NOTHING / DO UPDATE … WHERE`, `RETURNING`, `excluded.`.
//! What differs (claims, locking, transactions) lives in the backend modules. The lease cycle of
//! the inbox and the outbox (claim, renew, finish, retry, release) is not here: it is derived
//! from one description per queue in [`queue`](crate::queue).

use crate::record::{approved_columns, pairing_columns};

// ---- inbox -------------------------------------------------------------------------------------

/// Inserts a new inbound row; returns its id, or no row when (channel, account, message id) exists.
pub(crate) const INSERT_INBOUND: &str = "\
    INSERT INTO inbox (channel, account, peer, message_id, lane, payload, state, attempts, next_at, \
                       received_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7) \
    ON CONFLICT (channel, account, message_id) DO NOTHING \
    RETURNING id";

pub(crate) const FIND_INBOUND: &str = "SELECT id FROM inbox WHERE channel = $1 AND account = $2 AND message_id = $3";

// ---- outbox ------------------------------------------------------------------------------------

pub(crate) const INSERT_OUTBOUND: &str = "\
    INSERT INTO outbox (idempotency_key, lane, channel, account, peer, inbound_id, payload, state, attempts, \
                        next_at, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $9, $9) \
    ON CONFLICT (idempotency_key) DO NOTHING \
    RETURNING id";

pub(crate) const FIND_OUTBOUND: &str = "SELECT id FROM outbox WHERE idempotency_key = $1";

/// Moves the delivery status forward only. `$6` is the rank of the new status
/// ([`delivery_rank`](crate::model::delivery_rank)); the `CASE` mirrors that function for the
/// stored one. `failed` replaces anything; an unknown status (rank 0) replaces nothing. Done in one
/// statement so concurrent webhooks (`delivered` and `read` racing) cannot move it backwards.
pub(crate) const RECORD_DELIVERY: &str = "\
    UPDATE outbox SET delivery_status = $3, \
                      delivery_error = CASE WHEN $3 = 'failed' THEN $4 ELSE delivery_error END, \
                      delivery_at = $5 \
    WHERE channel = $1 AND platform_message_id = $2 \
      AND ($3 = 'failed' \
           OR (CASE delivery_status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 \
                                    WHEN 'failed' THEN 4 ELSE 0 END) < $6)";

pub(crate) const FIND_PLATFORM_ID: &str =
    "SELECT id FROM outbox WHERE channel = $1 AND platform_message_id = $2 LIMIT 1";

// ---- cursors, leases, keys -----------------------------------------------------------------------

pub(crate) const GET_CURSOR: &str = "SELECT value FROM cursors WHERE channel = $1 AND account = $2 AND name = $3";

pub(crate) const SET_CURSOR: &str = "\
    INSERT INTO cursors (channel, account, name, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (channel, account, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

/// Takes the lease when it is free, expired (`held_until < now`) or already ours: one statement,
/// so two replicas racing for it cannot both win.
pub(crate) const TRY_LEASE: &str = "\
    INSERT INTO leases (name, holder, held_until) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until \
    WHERE leases.held_until < $4 OR leases.holder = excluded.holder";

pub(crate) const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

/// Inserts the key, or overwrites it when it expired (`expires_at <= now`): one row changed means
/// "first time".
pub(crate) const REMEMBER_KEY: &str = "\
    INSERT INTO seen_keys (namespace, key, expires_at) VALUES ($1, $2, $3) \
    ON CONFLICT (namespace, key) DO UPDATE SET expires_at = excluded.expires_at \
    WHERE seen_keys.expires_at <= $4";

// ---- channel state -----------------------------------------------------------------------------

/// Writes a value, replacing the old one and its expiry.
pub(crate) const PUT_STATE: &str = "\
    INSERT INTO channel_state (namespace, key, value, expires_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, \
    updated_at = excluded.updated_at";

/// Writes a value only when the key is absent or expired: one row changed means "written".
pub(crate) const PUT_STATE_IF_ABSENT: &str = "\
    INSERT INTO channel_state (namespace, key, value, expires_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, \
    updated_at = excluded.updated_at \
    WHERE channel_state.expires_at IS NOT NULL AND channel_state.expires_at <= $5";

pub(crate) const GET_STATE: &str = "\
    SELECT value FROM channel_state \
    WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)";

/// Deletes and returns a live value in one statement, so two takers cannot both get it.
pub(crate) const TAKE_STATE: &str = "\
    DELETE FROM channel_state \
    WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3) \
    RETURNING value";

pub(crate) const LIST_STATE: &str = "\
    SELECT key, value, updated_at FROM channel_state \
    WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > $2) \
    ORDER BY updated_at DESC, key LIMIT $3";

// ---- pairing -----------------------------------------------------------------------------------

pub(crate) const IS_APPROVED: &str =
    "SELECT approved_at FROM approved_peers WHERE channel = $1 AND account = $2 AND peer = $3";

pub(crate) const PENDING_OF_PEER: &str = "\
    SELECT code, expires_at FROM pairing_requests \
    WHERE channel = $1 AND account = $2 AND peer = $3 AND expires_at > $4";

pub(crate) const COUNT_PENDING: &str =
    "SELECT COUNT(*) FROM pairing_requests WHERE channel = $1 AND account = $2 AND expires_at > $3";

/// Clears expired requests that would block a new one: the peer's own, and any holding the code.
pub(crate) const DELETE_BLOCKING_EXPIRED: &str = "\
    DELETE FROM pairing_requests \
    WHERE expires_at <= $5 AND channel = $1 AND ((account = $2 AND peer = $3) OR code = $4)";

pub(crate) const INSERT_PAIRING: &str = "\
    INSERT INTO pairing_requests (channel, account, peer, code, display_name, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const LIST_PAIRINGS: &str = concat!(
    "SELECT ",
    pairing_columns!(),
    " FROM pairing_requests WHERE expires_at > $1 AND ($2 IS NULL OR channel = $2) \
     ORDER BY created_at, channel, account, peer"
);

pub(crate) const TAKE_PAIRING: &str = "\
    DELETE FROM pairing_requests WHERE channel = $1 AND code = $2 AND expires_at > $3 \
    RETURNING account, peer, display_name";

pub(crate) const UPSERT_APPROVED: &str = "\
    INSERT INTO approved_peers (channel, account, peer, display_name, approved_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (channel, account, peer) \
    DO UPDATE SET display_name = excluded.display_name, approved_at = excluded.approved_at";

pub(crate) const LIST_APPROVED: &str = concat!(
    "SELECT ",
    approved_columns!(),
    " FROM approved_peers WHERE ($1 IS NULL OR channel = $1) ORDER BY approved_at, channel, account, peer"
);

pub(crate) const REVOKE_PEER: &str = "DELETE FROM approved_peers WHERE channel = $1 AND account = $2 AND peer = $3";

// ---- quotas ------------------------------------------------------------------------------------

/// Takes `$4` units of the window (`$1` key, `$2` start, `$3` end) when the total stays within
/// `$5`; returns the new total, or no row when that would pass the limit. One statement, so
/// concurrent takers (other replicas included) can never pass the limit together: PostgreSQL
/// serialises them on the row (`ON CONFLICT DO UPDATE` re-checks the `WHERE` on the latest
/// version), SQLite on its single writer. The `SELECT … WHERE` keeps a first take larger than the
/// limit from inserting; the comparison is written `taken <= limit - n` so it cannot overflow.
pub(crate) const TAKE_QUOTA: &str = "\
    INSERT INTO quotas (key, window_start, window_end, taken, updated_at) \
    SELECT $1, $2, $3, $4, $6 WHERE $4 <= $5 \
    ON CONFLICT (key, window_start) DO UPDATE SET taken = quotas.taken + excluded.taken, \
                                                  updated_at = excluded.updated_at \
    WHERE quotas.taken <= $5 - excluded.taken \
    RETURNING taken";

pub(crate) const QUOTA_TAKEN: &str = "SELECT taken FROM quotas WHERE key = $1 AND window_start = $2";

// ---- secrets -----------------------------------------------------------------------------------

pub(crate) const PUT_SECRET: &str = "\
    INSERT INTO secrets (name, blob, updated_at) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO UPDATE SET blob = excluded.blob, updated_at = excluded.updated_at";

pub(crate) const GET_SECRET: &str = "SELECT blob FROM secrets WHERE name = $1";

pub(crate) const DELETE_SECRET: &str = "DELETE FROM secrets WHERE name = $1";

// ---- operations --------------------------------------------------------------------------------

pub(crate) const DELIVERY_FAILED_COUNT: &str = "SELECT COUNT(*) FROM outbox WHERE delivery_status = 'failed'";

pub(crate) const FAILED_DELIVERIES: &str = "\
    SELECT id, lane, COALESCE(delivery_error, 'failed') AS reason, attempts, \
           COALESCE(delivery_at, updated_at) AS at FROM outbox \
    WHERE delivery_status = 'failed' ORDER BY at DESC, id DESC LIMIT $1";

pub(crate) const WRITE_HEARTBEAT: &str =
    "INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at";

pub(crate) const READ_HEARTBEAT: &str = "SELECT at FROM heartbeat WHERE id = 1";

/// Housekeeping beyond the queues (whose finished rows `QueueSql::prune` deletes).
pub(crate) const PRUNE: [&str; 4] = [
    "DELETE FROM seen_keys WHERE expires_at < $1",
    "DELETE FROM pairing_requests WHERE expires_at < $1",
    "DELETE FROM channel_state WHERE expires_at IS NOT NULL AND expires_at < $1",
    "DELETE FROM quotas WHERE window_end < $1",
];
