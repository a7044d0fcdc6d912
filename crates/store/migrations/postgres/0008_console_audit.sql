-- clawbridge store, PostgreSQL schema v8: what operators did in the web console. Every retry or
-- discard of a dead letter is written here in the transaction that makes the change, and pairing
-- decisions alongside, so "who retried that message at 3 a.m." has an answer after the fact.
CREATE TABLE console_audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL,
    detail TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX console_audit_at ON console_audit (at);
-- Conversations page: the recent lanes of each queue.
CREATE INDEX inbox_lane_received ON inbox (lane, received_at);
CREATE INDEX outbox_lane_created ON outbox (lane, created_at);
