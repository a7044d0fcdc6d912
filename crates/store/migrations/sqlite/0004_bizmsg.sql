-- clawbridge store, SQLite schema v4: Kakao business messages (AlimTalk, Brand Message), one row
-- per recipient, written before any dealer request. A lease queue like the outbox (one lane per
-- sender and recipient, so two notifications to one person go in order), plus what the dealer
-- said: its id once accepted, the request key of the attempt in flight, and the delivery result,
-- which only moves forward (`result_rank`).
CREATE TABLE bizmsg (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    lane            TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    product         TEXT    NOT NULL,
    dealer          TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    template_code   TEXT,
    payload         TEXT    NOT NULL,
    origin          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'accepted', 'retry', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    dealer_id       TEXT,
    request_key     TEXT,
    result          TEXT,
    result_code     TEXT,
    result_reason   TEXT,
    fallback        TEXT,
    result_rank     INTEGER NOT NULL DEFAULT 0,
    result_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX bizmsg_open_by_lane ON bizmsg (lane, id) WHERE state IN ('queued', 'sending', 'retry');
CREATE INDEX bizmsg_open_by_id ON bizmsg (id, state, next_at, lease_until) WHERE state IN ('queued', 'sending', 'retry');
CREATE INDEX bizmsg_state_updated ON bizmsg (state, updated_at);
-- Results arrive keyed by the dealer's id.
CREATE INDEX bizmsg_dealer_id ON bizmsg (dealer, dealer_id) WHERE dealer_id IS NOT NULL;
CREATE INDEX bizmsg_request_key ON bizmsg (request_key) WHERE request_key IS NOT NULL;
