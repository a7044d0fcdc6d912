-- clawbridge store, PostgreSQL schema v1. Times are epoch milliseconds (BIGINT).
-- sqlx runs this file in one transaction and records its version in _sqlx_migrations, so a second
-- run is a no-op.

-- Inbound messages: the durability point (a platform is acknowledged once a row exists).
-- Identity ids are never reused, so they order the messages of a lane. (Two inserts racing in
-- separate transactions may commit out of id order; such messages arrived concurrently anyway.)
CREATE TABLE inbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    peer        TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    lane        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'processing', 'done', 'failed')),
    attempts    BIGINT  NOT NULL DEFAULT 0,
    next_at     BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    outcome     TEXT,
    last_error  TEXT,
    received_at BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (channel, account, message_id)
);
-- Claims look for the oldest unfinished row of each lane; only unfinished rows are indexed.
CREATE INDEX inbox_open_by_lane ON inbox (lane, id) WHERE state IN ('pending', 'processing');
CREATE INDEX inbox_open_by_id ON inbox (id, state, next_at, lease_until) WHERE state IN ('pending', 'processing');
-- Pruning and dead letters.
CREATE INDEX inbox_state_updated ON inbox (state, updated_at);

-- Outbound messages. `inbound_id` is deliberately not a foreign key: pruning old inbox rows must
-- not touch (or be blocked by) the outbox, and proactive sends have no inbox row at all.
CREATE TABLE outbox (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key     TEXT    NOT NULL UNIQUE,
    lane                TEXT    NOT NULL,
    channel             TEXT    NOT NULL,
    account             TEXT    NOT NULL,
    peer                TEXT    NOT NULL,
    inbound_id          BIGINT,
    payload             TEXT    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'sending', 'sent', 'retry', 'dead')),
    attempts            BIGINT  NOT NULL DEFAULT 0,
    next_at             BIGINT  NOT NULL,
    lease_owner         TEXT,
    lease_until         BIGINT,
    last_error          TEXT,
    platform_message_id TEXT,
    delivery_status     TEXT,
    delivery_error      TEXT,
    delivery_at         BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX outbox_open_by_lane ON outbox (lane, id) WHERE state IN ('queued', 'sending', 'retry');
CREATE INDEX outbox_open_by_id ON outbox (id, state, next_at, lease_until) WHERE state IN ('queued', 'sending', 'retry');
CREATE INDEX outbox_state_updated ON outbox (state, updated_at);
-- Delivery statuses arrive keyed by the platform's message id.
CREATE INDEX outbox_platform_id ON outbox (channel, platform_message_id) WHERE platform_message_id IS NOT NULL;
CREATE INDEX outbox_delivery_failed ON outbox (delivery_at) WHERE delivery_status = 'failed';

-- Poll cursors, one per (channel, account, name).
CREATE TABLE cursors (
    channel    TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (channel, account, name)
);

-- Named leases (one poller per account across replicas).
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    held_until BIGINT  NOT NULL
);

-- Remembered keys (webhook idempotency keys, Kakao request ids) until they expire.
CREATE TABLE seen_keys (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX seen_keys_expiry ON seen_keys (expires_at);

-- Pending DM pairing requests, one per peer. Codes are stored normalised (upper case).
CREATE TABLE pairing_requests (
    channel      TEXT    NOT NULL,
    account      TEXT    NOT NULL,
    peer         TEXT    NOT NULL,
    code         TEXT    NOT NULL,
    display_name TEXT,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    PRIMARY KEY (channel, account, peer)
);
-- An operator approves by (channel, code): a code must name one request. Expired requests holding
-- a code are deleted before a new request may reuse it.
CREATE UNIQUE INDEX pairing_requests_code_unique ON pairing_requests (channel, code);
CREATE INDEX pairing_requests_expiry ON pairing_requests (expires_at);

CREATE TABLE approved_peers (
    channel      TEXT    NOT NULL,
    account      TEXT    NOT NULL,
    peer         TEXT    NOT NULL,
    display_name TEXT,
    approved_at  BIGINT  NOT NULL,
    PRIMARY KEY (channel, account, peer)
);

-- Encrypted secrets (version byte || nonce || ciphertext); the store never sees plaintext.
CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    blob       BYTEA    NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- One row written by `check_writable` (/readyz).
CREATE TABLE heartbeat (
    id BIGINT  NOT NULL PRIMARY KEY,
    at BIGINT  NOT NULL
);
