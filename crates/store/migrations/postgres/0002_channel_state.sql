-- clawbridge store, PostgreSQL schema v2: small durable state that channels keep between
-- requests (see the SQLite twin for what lives here). Expired rows read as absent and are pruned.
CREATE TABLE channel_state (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    expires_at BIGINT,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX channel_state_recent ON channel_state (namespace, updated_at);
CREATE INDEX channel_state_expiry ON channel_state (expires_at) WHERE expires_at IS NOT NULL;
