-- clawbridge store, SQLite schema v3: fixed-window quotas shared by every process on the store
-- (a platform's per-key rate limit must hold across replicas, not per process). One row per
-- (key, window); `taken` never passes the limit the takers give. Ended windows are pruned.
CREATE TABLE quotas (
    key          TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    taken        INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX quotas_window_end ON quotas (window_end);
