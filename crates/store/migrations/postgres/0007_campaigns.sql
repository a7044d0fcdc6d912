-- clawbridge store, PostgreSQL schema v7: campaigns. A campaign fans one message out to the recipients of a
-- file: one row per recipient (unique per campaign, so a repeated number is stored once), claimed
-- under a lease by the runner that hands it to the business-message queue or the outbox, then
-- following its send row (accepted, delivered, failed with a code, SMS fallback). Clicks on
-- tracked links per recipient and link; the suppression list of opted-out numbers per account.
CREATE TABLE campaigns (
    id              TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'draft'
                    CHECK (state IN ('draft', 'scheduled', 'running', 'paused', 'cancelled', 'done')),
    rate_per_minute BIGINT,
    quiet_hours     BIGINT NOT NULL DEFAULT 0,
    start_at        BIGINT,
    link_key        TEXT    NOT NULL,
    summary         TEXT    NOT NULL DEFAULT '{}',
    note            TEXT,
    waiting_until   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX campaigns_state ON campaigns (state, start_at);
CREATE INDEX campaigns_created ON campaigns (created_at);

CREATE TABLE campaign_recipients (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     TEXT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    suppression_key TEXT    NOT NULL,
    variant         TEXT    NOT NULL,
    variables       TEXT    NOT NULL,
    line            BIGINT NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'queued', 'accepted', 'delivered', 'failed', 'suppressed', 'cancelled', 'held')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     BIGINT,
    send_kind       TEXT    CHECK (send_kind IN ('bizmsg', 'outbox')),
    send_ref        BIGINT,
    platform_id     TEXT,
    result_code     TEXT,
    result_reason   TEXT,
    fallback        TEXT,
    sent_at         BIGINT,
    result_at       BIGINT,
    -- The send row's last change already copied here (see sync_campaign_results).
    source_at       BIGINT,
    updated_at      BIGINT NOT NULL,
    UNIQUE (campaign_id, recipient)
);
-- Claims: the unsent rows of a campaign in file order.
CREATE INDEX campaign_recipients_open ON campaign_recipients (campaign_id, id) WHERE state IN ('pending', 'sending');
CREATE INDEX campaign_recipients_state ON campaign_recipients (campaign_id, state);

CREATE TABLE campaign_clicks (
    campaign_id     TEXT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    recipient_id    BIGINT NOT NULL,
    link            BIGINT NOT NULL,
    clicks          BIGINT NOT NULL,
    first_at        BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, recipient_id, link)
);

CREATE TABLE campaign_suppressions (
    account         TEXT    NOT NULL,
    recipient_key   TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (account, recipient_key)
);
CREATE INDEX campaign_suppressions_created ON campaign_suppressions (created_at);
