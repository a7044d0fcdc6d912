-- clawbridge store, PostgreSQL schema v3: fixed-window quotas shared by every replica (see the
-- SQLite twin). Ended windows are pruned.
CREATE TABLE quotas (
    key          TEXT    NOT NULL,
    window_start BIGINT  NOT NULL,
    window_end   BIGINT  NOT NULL,
    taken        BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX quotas_window_end ON quotas (window_end);
