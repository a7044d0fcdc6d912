//! Outbound worker: outbox row → channel account `send` → sent | retry | dead.

use super::{Queue, Shared};
use crate::util::{jitter, now_ms};
use clawbridge_core::retry::{RetryDecision, SendError};
use clawbridge_store::{OutboundRow, StoreError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Lease on a claimed row, renewed every third of it while the send is under way: a slow send
/// is never taken over by another replica, and a crashed one's row is free again within
/// half a minute.
pub(super) const LEASE_MS: i64 = 30_000;
/// A send that takes longer is abandoned (the channel's own calls time out sooner). It may have
/// reached the platform, so it is recorded as an unknown outcome, not retried.
const SEND_TIMEOUT: Duration = Duration::from_secs(90);
/// Retries coming due are picked up at this granularity.
const POLL: Duration = Duration::from_millis(500);

/// Runs until `stop` fires; in-flight sends keep running in `tracker` (the caller drains it).
pub async fn run(shared: Shared, stop: CancellationToken, tracker: TaskTracker) {
    let concurrency = shared.config.pipeline.send_concurrency;
    super::drive::<Outbox>(shared, concurrency, POLL, None, stop, tracker).await;
}

struct Outbox;

impl Queue for Outbox {
    type Row = OutboundRow;

    async fn claim(shared: &Shared, limit: u32) -> Result<Vec<OutboundRow>, StoreError> {
        shared.store.claim_outbound(&shared.worker, limit, LEASE_MS, now_ms()).await
    }

    async fn handle(shared: Shared, row: OutboundRow) {
        deliver(&shared, row).await;
    }

    fn span(row: &OutboundRow) -> tracing::Span {
        tracing::info_span!("send", id = row.id, lane = %row.lane.masked(), attempt = row.attempts)
    }

    fn wake(shared: &Shared) -> &Notify {
        &shared.wakers.outbox
    }
}

/// Sends one claimed row and records the result (sent, retry or dead).
pub(super) async fn deliver(shared: &Shared, row: OutboundRow) {
    let Some(_handling) = shared.in_flight.enter("outbox", row.id) else {
        // Our own lease ran out while this row's send is still under way here (see
        // `Shared::in_flight`): the running send records the outcome; a second send would repeat it.
        tracing::warn!(id = row.id, "row re-claimed while its send is still under way here; not sent twice");
        return;
    };
    if row.attempts == 1 {
        super::record_queue_wait("outbox", row.created_at);
    }
    // Attempts are counted at claim time: a row claimed more often than the schedule allows
    // (the process stopped or lost the lease during each send) is a dead letter, not an
    // endless loop that blocks its lane.
    let max = shared.config.retry.queue.max_attempts;
    if row.attempts > max {
        let reason = format!(
            "claimed {} times without finishing (the process stopped or lost the lease during each send)",
            row.attempts - 1
        );
        return dead(shared, &row, &reason).await;
    }
    let msg = &row.message;
    let channel = msg.channel.to_string();
    let Some(account) = shared.registry.account(&msg.channel, &msg.account).cloned() else {
        let reason = format!("account {}/{} is not configured", msg.channel, msg.account);
        return dead(shared, &row, &reason).await;
    };
    let started = Instant::now();
    let _stop_renewing = renew_lease(shared, row.id).drop_guard();
    let result = tokio::select! {
        result = tokio::time::timeout(SEND_TIMEOUT, account.send(msg, &row.idempotency_key)) => match result {
            Ok(result) => result,
            Err(_) => Err(SendError::MaybeDelivered(format!("the send did not finish within {} s", SEND_TIMEOUT.as_secs()))),
        },
        () = shared.abandon.cancelled() => {
            tracing::warn!("drain deadline reached during a send; message handed back to the queue");
            let _ = shared.store.release_outbound(row.id, &shared.worker).await;
            return;
        }
    };
    metrics::histogram!("clawbridge_send_latency_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(receipt) => {
            metrics::counter!("clawbridge_sent_total", "channel" => channel).increment(1);
            crate::console::stats::outbound();
            let platform_id = receipt.platform_message_id.as_deref();
            match record_sent(shared, &row, platform_id).await {
                Ok(true) => tracing::info!(platform_id, "sent"),
                Ok(false) => tracing::warn!("sent, but the lease was lost meanwhile"),
                // The platform has it; a resend after the lease runs out is possible. Channels
                // pass the idempotency key where the platform supports one.
                Err(e) => tracing::error!(error = %e, "sent, but cannot record it"),
            }
        }
        Err(error) => {
            let class = error.class().as_str();
            if error.maybe_delivered() {
                // Not retried (it could deliver twice): a dead letter whose reason begins with
                // "outcome unknown", in `clawbridge status`, and counted here.
                metrics::counter!("clawbridge_send_unknown_total", "channel" => channel.clone()).increment(1);
            }
            metrics::counter!("clawbridge_send_failures_total", "channel" => channel, "class" => class).increment(1);
            crate::console::stats::error("send", format!("{}: {error}", row.lane.masked()));
            // `[retry]`: its maxAttempts is pipeline.max_send_attempts.
            match shared.config.retry.queue.decide(row.attempts, &error, jitter()) {
                RetryDecision::RetryIn(delay) => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "send failed; will retry");
                    let at = now_ms() + delay.as_millis() as i64;
                    if let Err(e) =
                        shared.store.mark_retry(row.id, &shared.worker, &error.to_string(), at, now_ms()).await
                    {
                        tracing::error!(error = %e, "cannot schedule retry");
                    }
                }
                RetryDecision::Dead(reason) => dead(shared, &row, &reason).await,
            }
        }
    }
}

/// Keeps the row's lease alive while its send (and the recording of it) is under way; cancel
/// the returned token to stop.
fn renew_lease(shared: &Shared, id: i64) -> CancellationToken {
    let (store, worker) = (shared.store.clone(), shared.worker.clone());
    super::keep_lease("outbox", id, LEASE_MS, move || {
        let (store, worker) = (store.clone(), worker.clone());
        async move { store.renew_outbound(id, &worker, LEASE_MS, now_ms()).await }
    })
}

/// Records a send the platform accepted, trying again for a while when the store is briefly
/// unreachable (well within the lease): a row left `sending` is sent again once its lease runs
/// out.
async fn record_sent(shared: &Shared, row: &OutboundRow, platform_id: Option<&str>) -> Result<bool, StoreError> {
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        match shared.store.mark_sent(row.id, &shared.worker, platform_id, now_ms()).await {
            Err(e) if tries < RECORD_TRIES => {
                tries += 1;
                tracing::warn!(error = %e, tries, "sent, but cannot record it yet; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Attempts to record a sent message before giving up (about 16 s in all).
const RECORD_TRIES: u32 = 7;

async fn dead(shared: &Shared, row: &OutboundRow, reason: &str) {
    tracing::error!(reason, "message given up (dead letter)");
    metrics::counter!("clawbridge_dead_letters_total", "queue" => "outbox").increment(1);
    if let Err(e) = shared.store.mark_dead(row.id, &shared.worker, reason, now_ms()).await {
        tracing::error!(error = %e, "cannot record the dead letter");
    }
}
