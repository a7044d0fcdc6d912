//! Business-message worker: stored AlimTalk / Brand Message rows → dealer requests → accepted |
//! retry | dead, and the dealers' delivery results back onto the rows.
//!
//! Each round claims due rows (one per recipient and sender), lets
//! [`dispatch::plan`](clawbridge_bizmsg::dispatch::plan) group them into requests, takes each
//! request's messages from the sender key's hourly quota (in the store, so every replica counts
//! together; what the hour has no room for waits for the next one instead of failing) and, when
//! `appRatePerSecond` is set, from the dealer credential's per-second quota (also in the store;
//! a burst is cut into requests one second can take, each waiting its turn), records
//! the request's key on its rows *before* making it, and writes every row's outcome. A row whose
//! request may have arrived keeps the key, so the next attempt is the same request or a lookup,
//! never a blind second send.
//!
//! Results come back both ways: once a minute the dealer's update query (NHN AlimTalk result
//! updates, Infobip reports) and, for every accepted message whose result is not final a minute
//! after its last change, a query by id (NHN's message lists by request, Infobip's logs, Solapi's
//! message list) — polled until final; and the dealers' webhooks ([`webhook_routes`]). A result
//! only moves forward and a repeated one changes nothing (the store decides).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clawbridge_bizmsg::client::{DealerClient, Sent};
use clawbridge_bizmsg::config::{BizmsgConfig, DealerSettings};
use clawbridge_bizmsg::dealer::{DealerKind, Report, infobip, nhn, solapi};
use clawbridge_bizmsg::dispatch::{self, Pending, RequestKey, RowUpdate, Step};
use clawbridge_bizmsg::send::Product;
use clawbridge_bizmsg::send::{self, result_of};
use clawbridge_bizmsg::webhook;
use clawbridge_core::clock::Clock;
use clawbridge_core::retry::{RetryDecision, RetryPolicy, SendError};
use clawbridge_core::time::{EpochMs, HOUR_MS, MINUTE_MS};
use clawbridge_store::{BizmsgResult, BizmsgRow, QuotaTake, SharedStore, StoreError};
use secrecy::ExposeSecret as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Lease on claimed rows; a request times out well inside it.
const LEASE_MS: EpochMs = 120_000;
/// With `appRatePerSecond`, a round claims no more than this many seconds of it, so that its
/// last request starts well inside the lease even when other replicas share the rate.
const APP_RATE_ROUND_SECS: u32 = 20;
const SECOND_MS: EpochMs = 1_000;
/// How often due retries and other replicas' work are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Delivery results are asked for this often, over this much of the past.
const RESULTS_EVERY: Duration = Duration::from_secs(60);
const RESULTS_LOOKBACK_MS: EpochMs = 15 * MINUTE_MS;
/// Accepted messages still without a final result are asked about by id once their last change
/// is this old (the dealer's update query or webhook usually answers first) …
const UNFINISHED_AFTER_MS: EpochMs = MINUTE_MS;
/// … until it is this old (a result that has not come in three days will not; Infobip's logs
/// keep two), at most this many per round, the most recently changed first.
const UNFINISHED_FOR_MS: EpochMs = 72 * 60 * MINUTE_MS;
const INFOBIP_UNFINISHED_FOR_MS: EpochMs = 47 * 60 * MINUTE_MS;
const UNFINISHED_PER_ROUND: u32 = 1_000;

/// What a round claimed of each row: its attempt and product.
type Claimed = HashMap<i64, Claim>;

struct Claim {
    attempts: u32,
    product: &'static str,
}

/// The business-message worker of one process.
#[derive(Clone)]
pub struct BizmsgWorker {
    /// The store.
    pub store: SharedStore,
    /// `[bizmsg]`.
    pub config: Arc<BizmsgConfig>,
    /// The dealer.
    pub client: DealerClient,
    /// `[retry]`: when a failed request is tried again.
    pub retry: RetryPolicy,
    /// This process in claims.
    pub worker: String,
    /// New rows were stored.
    pub wake: Arc<Notify>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BizmsgWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BizmsgWorker").field("worker", &self.worker).field("client", &self.client).finish()
    }
}

impl BizmsgWorker {
    /// Sends until `stop` fires, and polls delivery results once a minute.
    pub async fn run(self, stop: CancellationToken) {
        let mut results = tokio::time::interval(RESULTS_EVERY);
        results.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let busy = match self.round().await {
                Ok(rows) => rows > 0,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim business messages from the store; retrying");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = results.tick() => self.poll_results().await,
            }
        }
    }

    /// One round: claims due rows and takes each to its next state. How many rows it claimed.
    ///
    /// # Errors
    /// The store could not be asked for rows.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let rows = self.store.claim_bizmsg(&self.worker, self.claim_size(), LEASE_MS, now).await?;
        let count = rows.len();
        let claimed: Claimed = rows
            .iter()
            .map(|r| {
                (r.id, Claim { attempts: r.attempts, product: if r.product == "brand" { "brand" } else { "alimtalk" } })
            })
            .collect();
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            match readable(&row) {
                Ok(p) => pending.push(p),
                Err(reason) => self.dead(row.id, &reason, None).await,
            }
        }
        for step in dispatch::plan(self.client.dealer(), pending, now) {
            self.step(step, &claimed).await;
        }
        Ok(count)
    }

    async fn step(&self, step: Step, claimed: &Claimed) {
        match step {
            Step::Send { key, rows, resend } => {
                let Some(account) = rows.first().and_then(|r| self.config.account(&r.account).ok()) else {
                    let reason = "the sender account is no longer configured under [bizmsg]";
                    for row in &rows {
                        self.dead(row.id, reason, None).await;
                    }
                    return;
                };
                // A copy of an earlier request was counted when it was first made.
                if resend {
                    self.send(account, &rows, &key, claimed).await;
                    return;
                }
                let Some(rows) = self.take_quota(account, rows).await else { return };
                let Some(per_second) = self.config.app_rate_per_second else {
                    self.send(account, &rows, &key, claimed).await;
                    return;
                };
                for piece in rows.chunks(usize::try_from(per_second).unwrap_or(usize::MAX)) {
                    let Some(granted_at) = self.take_app_rate(per_second, piece).await else { return };
                    // Named when its second was granted: the key's time is what a later lookup
                    // searches by.
                    let key = RequestKey::new(granted_at, piece[0].id);
                    self.send(account, piece, &key, claimed).await;
                }
            }
            Step::Lookup { key, rows } => match self.client.lookup(&key, &rows).await {
                Ok(found) => {
                    let (updates, next) = dispatch::after_lookup(&key, rows, &found, self.clock.now_ms());
                    self.apply(updates, claimed).await;
                    if let Some(next) = next {
                        Box::pin(self.step(next, claimed)).await;
                    }
                }
                Err(e) => {
                    let updates = rows
                        .iter()
                        .map(|r| RowUpdate::Retry {
                            id: r.id,
                            error: e.to_string(),
                            after: e.retry_after(),
                            in_doubt: true,
                        })
                        .collect();
                    self.apply(updates, claimed).await;
                }
            },
            Step::GiveUp { reason, rows } => {
                for row in &rows {
                    self.dead(row.id, &reason, None).await;
                }
            }
        }
    }

    /// Records the request on its rows, then makes it. Rows this worker no longer holds (its
    /// lease ran out meanwhile and another took them) are not sent from here.
    async fn send(
        &self,
        account: &clawbridge_bizmsg::config::SenderAccount,
        rows: &[Pending],
        key: &RequestKey,
        claimed: &Claimed,
    ) {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let now = self.clock.now_ms();
        match self.store.set_bizmsg_request(&ids, &self.worker, Some(key.as_str()), now).await {
            Ok(marked) if usize::try_from(marked).is_ok_and(|m| m == ids.len()) => {}
            Ok(marked) => {
                tracing::warn!(
                    marked,
                    rows = ids.len(),
                    "the lease on some rows ran out before their request; not sending"
                );
                let _ = self.store.set_bizmsg_request(&ids, &self.worker, None, now).await;
                self.release(rows).await;
                return;
            }
            Err(e) => {
                // Not recorded, so not sent: the rows come back when the lease runs out.
                tracing::error!(error = %e, "cannot record the request before making it; not sending");
                return;
            }
        }
        let updates = self.client.send(&account.sender, rows, key).await;
        self.apply(updates, claimed).await;
    }

    /// Rows per round: a full request of the dealer, and with `appRatePerSecond` no more than
    /// [`APP_RATE_ROUND_SECS`] of it.
    fn claim_size(&self) -> u32 {
        let batch = u32::try_from(self.client.dealer().max_batch()).unwrap_or(u32::MAX);
        match self.config.app_rate_per_second {
            Some(per_second) => batch.min(per_second.saturating_mul(APP_RATE_ROUND_SECS)),
            None => batch,
        }
    }

    /// Takes the request's messages from the sender key's hourly quota: the rows the hour has
    /// room for, in order; the others wait for the next hour (nothing failed: it is a queue).
    async fn take_quota(
        &self,
        account: &clawbridge_bizmsg::config::SenderAccount,
        mut rows: Vec<Pending>,
    ) -> Option<Vec<Pending>> {
        let now = self.clock.now_ms();
        let start = now - now.rem_euclid(HOUR_MS);
        let key = format!("bizmsg:{}", account.sender.sender_key);
        let limit = u64::from(account.rate_per_hour);
        let mut want = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        loop {
            match self.store.take_quota(&key, start, HOUR_MS, limit, want, now).await {
                Ok(QuotaTake::Granted { .. }) => {
                    let later = rows.split_off(usize::try_from(want).unwrap_or(usize::MAX).min(rows.len()));
                    if !later.is_empty() {
                        let error = format!(
                            "sender {} has sent its {limit} messages this hour; continues at the next hour",
                            account.id
                        );
                        self.hold(&later, &error, start + HOUR_MS, now).await;
                    }
                    return Some(rows);
                }
                // The rest of the hour takes part of the request: take that part.
                Ok(QuotaTake::Refused { count, .. }) if count < limit && limit - count < want => want = limit - count,
                Ok(QuotaTake::Refused { count, window_end }) => {
                    let error = format!(
                        "sender {} has sent {count} of its {limit} messages this hour; continues at the next hour",
                        account.id
                    );
                    tracing::info!(account = %account.id, count, "bizmsg hourly quota reached; waiting for the next window");
                    self.hold(&rows, &error, window_end, now).await;
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the bizmsg quota is unavailable; the rows wait for the next round");
                    self.release(&rows).await;
                    return None;
                }
            }
        }
    }

    /// Waits until the dealer credential's current second has room for `piece` and takes it
    /// (the store counts for every replica and sender key): when it was granted; `None` when
    /// the store cannot count, and the rows were given back.
    async fn take_app_rate(&self, per_second: u32, piece: &[Pending]) -> Option<EpochMs> {
        let key = self.config.app_quota_key();
        let n = u64::try_from(piece.len()).unwrap_or(u64::MAX);
        loop {
            let now = self.clock.now_ms();
            let start = now - now.rem_euclid(SECOND_MS);
            match self.store.take_quota(&key, start, SECOND_MS, u64::from(per_second), n, now).await {
                Ok(QuotaTake::Granted { .. }) => return Some(now),
                Ok(QuotaTake::Refused { window_end, .. }) => {
                    let wait = u64::try_from(window_end - now).unwrap_or(0).max(1);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the bizmsg app rate is unavailable; the rows wait for the next round");
                    self.release(piece).await;
                    return None;
                }
            }
        }
    }

    /// Puts rows back for `next_at` without a request (nothing was sent: no key to remember).
    async fn hold(&self, rows: &[Pending], error: &str, next_at: EpochMs, now: EpochMs) {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let _ = self.store.set_bizmsg_request(&ids, &self.worker, None, now).await;
        for row in rows {
            let _ = self.store.mark_bizmsg_retry(row.id, &self.worker, error, next_at, now).await;
        }
    }

    async fn release(&self, rows: &[Pending]) {
        for row in rows {
            let _ = self.store.release_bizmsg(row.id, &self.worker).await;
        }
    }

    async fn apply(&self, updates: Vec<RowUpdate>, claimed: &Claimed) {
        let dealer = self.client.dealer().id();
        for update in updates {
            let now = self.clock.now_ms();
            match update {
                RowUpdate::Accepted { id, dealer_id } => {
                    let product = claimed.get(&id).map_or("alimtalk", |c| c.product);
                    metrics::counter!("clawbridge_bizmsg_sent_total", "dealer" => dealer, "product" => product)
                        .increment(1);
                    match self.store.mark_bizmsg_accepted(id, &self.worker, &dealer_id, now).await {
                        Ok(true) => tracing::info!(id, dealer_id, "business message accepted by the dealer"),
                        Ok(false) => tracing::warn!(id, "accepted by the dealer, but the lease was lost meanwhile"),
                        Err(e) => tracing::error!(id, error = %e, "accepted by the dealer, but cannot record it"),
                    }
                }
                RowUpdate::Dead { id, reason } => {
                    let code = reason.split_whitespace().next().unwrap_or("").to_owned();
                    self.dead(id, &reason, Some(code)).await;
                }
                RowUpdate::Retry { id, error, after, in_doubt } => {
                    let attempt = claimed.get(&id).map_or(1, |c| c.attempts);
                    let failure = SendError::Transient { reason: error.clone(), retry_after: after };
                    match self.retry.decide(attempt, &failure, clawbridge_http::jitter()) {
                        RetryDecision::RetryIn(delay) => {
                            if !in_doubt {
                                let _ = self.store.set_bizmsg_request(&[id], &self.worker, None, now).await;
                            }
                            let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                            if let Err(e) = self.store.mark_bizmsg_retry(id, &self.worker, &error, next, now).await {
                                tracing::error!(id, error = %e, "cannot schedule the retry");
                            }
                        }
                        RetryDecision::Dead(reason) => self.dead(id, &reason, None).await,
                    }
                }
            }
        }
    }

    async fn dead(&self, id: i64, reason: &str, code: Option<String>) {
        metrics::counter!("clawbridge_bizmsg_failed_total", "code" => code.unwrap_or_else(|| "none".to_owned()))
            .increment(1);
        tracing::warn!(id, reason, "business message not sent");
        if let Err(e) = self.store.mark_bizmsg_dead(id, &self.worker, reason, self.clock.now_ms()).await {
            tracing::error!(id, error = %e, "cannot record the failure");
        }
    }

    /// Asks the dealer for results that changed lately, then about the accepted messages still
    /// without a final result, and records what it says.
    pub async fn poll_results(&self) {
        let now = self.clock.now_ms();
        let dealer = self.client.dealer().id();
        match self.client.poll_results(now - RESULTS_LOOKBACK_MS, now).await {
            Ok(reports) => self.record_all(&reports, now).await,
            Err(e) => tracing::warn!(error = %e, "cannot poll delivery results; will ask again"),
        }
        let keep = match self.client.dealer() {
            clawbridge_bizmsg::dealer::DealerKind::Infobip => INFOBIP_UNFINISHED_FOR_MS,
            _ => UNFINISHED_FOR_MS,
        };
        let rows = match self
            .store
            .unfinished_bizmsg(dealer, now - keep, now - UNFINISHED_AFTER_MS, UNFINISHED_PER_ROUND)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the messages still without a result; will ask again");
                return;
            }
        };
        let sent: Vec<Sent> = rows
            .into_iter()
            .filter_map(|row| {
                let product = if row.product == "brand" { Product::Brand } else { Product::Alimtalk };
                Some(Sent { dealer_id: row.dealer_id?, product })
            })
            .collect();
        if sent.is_empty() {
            return;
        }
        match self.client.results_of(&sent).await {
            Ok(reports) => self.record_all(&reports, now).await,
            Err(e) => tracing::warn!(error = %e, "cannot ask for delivery results; will ask again"),
        }
    }

    async fn record_all(&self, reports: &[Report], now: EpochMs) {
        let dealer = self.client.dealer().id();
        for report in reports {
            if let Err(e) = record_report(&self.store, dealer, report, now).await {
                tracing::error!(error = %e, "cannot record a delivery result; it is asked for again");
                return;
            }
        }
    }
}

/// Records one dealer report on its row (results only move forward): `Ok(false)` when no row
/// has it, or a newer or the same result is stored (nothing to do); `Err` when the store could
/// not be written (a webhook then answers 503, so that the dealer sends it again).
///
/// # Errors
/// The store failed.
pub async fn record_report(
    store: &SharedStore,
    dealer: &str,
    report: &Report,
    now: EpochMs,
) -> Result<bool, StoreError> {
    let (result, fallback, rank) = result_of(report);
    let stored = BizmsgResult {
        dealer: dealer.to_owned(),
        dealer_id: report.dealer_id.clone(),
        result: result.to_owned(),
        code: report.code.clone(),
        reason: report.reason.clone(),
        fallback: fallback.map(str::to_owned),
        rank,
        at: now,
    };
    let changed = store.record_bizmsg_result(&stored).await?;
    if changed {
        tracing::info!(dealer, dealer_id = %report.dealer_id, result, code = report.code.as_deref().unwrap_or(""),
            fallback = fallback.unwrap_or(""), "business message result");
        if result == "failed" {
            metrics::counter!("clawbridge_bizmsg_failed_total", "code" => report.code.clone().unwrap_or_default())
                .increment(1);
        }
        if fallback == Some("sent") {
            metrics::counter!("clawbridge_bizmsg_fallback_total").increment(1);
        }
    }
    Ok(changed)
}

/// The largest webhook body a dealer may post (413 above it).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

struct Webhooks {
    store: SharedStore,
    dealer: DealerSettings,
}

type Answer = (StatusCode, String);

fn answer(status: StatusCode, dealer: &'static str, message: impl Into<String>) -> Answer {
    let message = message.into();
    let result = match status {
        StatusCode::OK => "ok",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::BAD_REQUEST => "malformed",
        StatusCode::NOT_FOUND => "not_configured",
        _ => "unavailable",
    };
    metrics::counter!("clawbridge_bizmsg_webhook_requests_total", "dealer" => dealer, "result" => result).increment(1);
    if status != StatusCode::OK {
        tracing::warn!(dealer, %status, %message, "dealer webhook not taken");
    }
    (status, message)
}

/// The dealer's results recorded before the answer: 200 once every one is stored (or known
/// already), 503 when the store failed (the dealer sends them again).
async fn record(store: &SharedStore, dealer: &'static str, reports: &[Report]) -> Answer {
    let now = clawbridge_core::clock::now_ms();
    for report in reports {
        if let Err(e) = record_report(store, dealer, report, now).await {
            tracing::error!(error = %e, dealer, "cannot record webhook results; the dealer will send them again");
            return answer(StatusCode::SERVICE_UNAVAILABLE, dealer, "cannot record the results now; send them again");
        }
    }
    answer(StatusCode::OK, dealer, "ok")
}

/// `None` when `dealer` is not the configured one: which one is, for the 404.
fn other_dealer(configured: &DealerSettings, dealer: DealerKind) -> Option<Answer> {
    (configured.kind() != dealer).then(|| {
        answer(
            StatusCode::NOT_FOUND,
            dealer.id(),
            format!(
                "business messages go through {} (BIZMSG_DEALER), not {}: point this dealer's webhook elsewhere",
                configured.kind().id(),
                dealer.id()
            ),
        )
    })
}

fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> webhook::Presented<'a> {
    webhook::Presented {
        authorization: headers.get(axum::http::header::AUTHORIZATION).map(axum::http::HeaderValue::as_bytes),
        token_header: headers.get(webhook::TOKEN_HEADER).map(axum::http::HeaderValue::as_bytes),
        query,
    }
}

/// `POST /bizmsg/nhn/webhook`: NHN's delivery results, when the console's webhook points here.
/// The signature configured there (`NHN_BIZMSG_WEBHOOK_SIGNATURE`) must come in
/// `X-Toast-Webhook-Signature` (compared in constant time, else 401); a body that is not NHN's
/// JSON is a 400; every report is recorded before the 200, forward-only.
async fn nhn_webhook(State(hooks): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Answer {
    if let Some(other) = other_dealer(&hooks.dealer, DealerKind::Nhn) {
        return other;
    }
    let DealerSettings::Nhn { webhook_signature: Some(signature), .. } = &hooks.dealer else {
        return answer(StatusCode::NOT_FOUND, "nhn", "set NHN_BIZMSG_WEBHOOK_SIGNATURE to receive NHN webhooks");
    };
    let given = headers.get("x-toast-webhook-signature").map(axum::http::HeaderValue::as_bytes);
    if !nhn::webhook_signature_ok(given, signature.expose_secret()) {
        return answer(StatusCode::UNAUTHORIZED, "nhn", "bad or missing X-Toast-Webhook-Signature");
    }
    match nhn::read_webhook(&body) {
        Ok(reports) => record(&hooks.store, "nhn", &reports).await,
        Err(e) => answer(StatusCode::BAD_REQUEST, "nhn", e),
    }
}

/// `POST /bizmsg/infobip/webhook`: Infobip's delivery reports (`{"results": [...]}`, AlimTalk and
/// Brand Message alike). Authentic when it carries `INFOBIP_WEBHOOK_TOKEN` (basic authentication's
/// password, `Authorization: Bearer`, or `X-Clawbridge-Token`: what a webhook subscription in
/// Infobip's portal can send), or when every report's `callbackData` is our signature of its
/// message id (reports to the URL a send named); else 401.
async fn infobip_webhook(State(hooks): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Answer {
    if let Some(other) = other_dealer(&hooks.dealer, DealerKind::Infobip) {
        return other;
    }
    let DealerSettings::Infobip { webhook_token: Some(token), .. } = &hooks.dealer else {
        return answer(
            StatusCode::NOT_FOUND,
            "infobip",
            "set INFOBIP_WEBHOOK_TOKEN (bizmsg.infobip.webhookToken) to receive Infobip delivery reports",
        );
    };
    let token = token.expose_secret();
    let by_header = webhook::token_ok(&presented(&headers, None), token, false);
    let reports = match infobip::read_reports(&body) {
        Ok(reports) => reports,
        // Who cannot authenticate learns nothing about the body.
        Err(_) if !by_header => return answer(StatusCode::UNAUTHORIZED, "infobip", "missing or wrong webhook token"),
        Err(e) => return answer(StatusCode::BAD_REQUEST, "infobip", e),
    };
    let signed = !reports.is_empty()
        && reports.iter().all(|r| webhook::callback_ok(token, &r.report.dealer_id, r.callback_data.as_deref()));
    if !by_header && !signed {
        return answer(StatusCode::UNAUTHORIZED, "infobip", "missing or wrong webhook token");
    }
    let reports: Vec<Report> = reports.into_iter().map(|r| r.report).collect();
    record(&hooks.store, "infobip", &reports).await
}

/// `POST /bizmsg/solapi/webhook`: Solapi's "single report" webhook (a JSON array of messages).
/// Authentic when it carries `SOLAPI_WEBHOOK_TOKEN` as basic authentication's password,
/// `Authorization: Bearer`, `X-Clawbridge-Token`, or `?token=` on the URL (for a console that
/// takes a URL only); else 401.
async fn solapi_webhook(
    State(hooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Answer {
    if let Some(other) = other_dealer(&hooks.dealer, DealerKind::Solapi) {
        return other;
    }
    let DealerSettings::Solapi { webhook_token: Some(token), .. } = &hooks.dealer else {
        return answer(
            StatusCode::NOT_FOUND,
            "solapi",
            "set SOLAPI_WEBHOOK_TOKEN (bizmsg.solapi.webhookToken) to receive Solapi reports",
        );
    };
    if !webhook::token_ok(&presented(&headers, query.as_deref()), token.expose_secret(), true) {
        return answer(StatusCode::UNAUTHORIZED, "solapi", "missing or wrong webhook token");
    }
    match solapi::read_webhook(&body) {
        Ok(reports) => record(&hooks.store, "solapi", &reports).await,
        Err(e) => answer(StatusCode::BAD_REQUEST, "solapi", e),
    }
}

/// The dealers' result webhooks on the daemon's listener — `POST /bizmsg/nhn/webhook`,
/// `POST /bizmsg/infobip/webhook`, `POST /bizmsg/solapi/webhook` — each a 404 naming the setting
/// while it is not configured (or naming the configured dealer, for another's), 413 above
/// [`WEBHOOK_BODY_LIMIT`].
pub fn webhook_routes(store: SharedStore, config: &BizmsgConfig) -> axum::Router {
    let hooks = Arc::new(Webhooks { store, dealer: config.dealer.clone() });
    axum::Router::new()
        .route("/bizmsg/nhn/webhook", post(nhn_webhook))
        .route("/bizmsg/infobip/webhook", post(infobip_webhook))
        .route("/bizmsg/solapi/webhook", post(solapi_webhook))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
        .with_state(hooks)
}

fn readable(row: &BizmsgRow) -> Result<Pending, String> {
    send::pending(row.id, &row.account, &row.recipient, &row.payload, row.request_key.as_deref())
}
