-- clawbridge store, SQLite schema v2: small durable state that channels keep between requests
-- (a Kakao answer waiting for the user's next utterance, a "더 보기" continuation, channel
-- add/block events, OAuth friend caches). Values are JSON text; expired rows read as absent and
-- are pruned by housekeeping.
CREATE TABLE channel_state (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    expires_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX channel_state_recent ON channel_state (namespace, updated_at);
CREATE INDEX channel_state_expiry ON channel_state (expires_at) WHERE expires_at IS NOT NULL;
