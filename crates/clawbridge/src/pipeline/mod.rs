//! The workers between the store and the outside world.
//!
//! - [`inbox`]: claims inbound rows (one lane per peer, a global bound), applies the DM policy,
//!   runs the agent through the gateway and puts the rendered reply into the outbox.
//! - [`outbox`]: claims due outbound rows (in order per peer) and sends them through the
//!   channel account, classifying failures into retries and dead letters.
//!
//! Both resume whatever an earlier process left unfinished: rows are claimed under leases, so
//! a crashed worker's rows become claimable again when its lease runs out.

pub mod bizmsg;
pub mod inbox;
pub mod outbox;

use crate::bridge::Wakers;
use crate::config::Config;
use crate::registry::Registry;
use clawbridge_gateway::ConnectionState;
use clawbridge_gateway::GatewayClient;
use clawbridge_store::SharedStore;
use clawbridge_store::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Everything a worker needs.
#[derive(Clone)]
pub struct Shared {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The durable store.
    pub store: SharedStore,
    /// The OpenClaw gateway.
    pub gateway: GatewayClient,
    /// Channels and accounts.
    pub registry: Arc<Registry>,
    /// Wake-ups for new work.
    pub wakers: Arc<Wakers>,
    /// This process's id in claims.
    pub worker: String,
    /// Fires when the drain deadline passes: in-flight work hands its rows back to the queue
    /// (same idempotency keys) so the next start or another replica resumes them at once.
    pub abandon: CancellationToken,
    /// Rows this process is working on, by queue and id. A lease that ran out while its row was
    /// still being worked on here (renewals failed while the store was unreachable) lets this
    /// same process claim the row again; the claim then looks like its own, so the second
    /// handling is refused here instead of running the agent or sending twice.
    pub in_flight: InFlight,
}

/// The rows a process is handling (see [`Shared::in_flight`]).
#[derive(Clone, Debug, Default)]
pub struct InFlight(Arc<std::sync::Mutex<std::collections::HashSet<(&'static str, i64)>>>);

impl InFlight {
    /// Marks row `id` of `queue` as being handled until the guard drops; `None` when it already is.
    pub fn enter(&self, queue: &'static str, id: i64) -> Option<InFlightGuard> {
        let mut rows = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.insert((queue, id)).then(|| InFlightGuard { rows: self.clone(), key: (queue, id) })
    }
}

/// Ends a row's [`InFlight`] mark when dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    rows: InFlight,
    key: (&'static str, i64),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.rows.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("worker", &self.worker).finish_non_exhaustive()
    }
}

/// One durable queue a worker drains: how rows are claimed and how one is handled.
/// How long a row waited before its first claim, by `queue` (`inbox`: received → agent run
/// starts; `outbox`: reply stored → first send attempt).
pub const QUEUE_WAIT_SECONDS: &str = "clawbridge_queue_wait_seconds";

/// Records a row's wait from `since` (its insert) to now, at its first claim.
fn record_queue_wait(queue: &'static str, since: clawbridge_core::time::EpochMs) {
    let waited_ms = crate::util::now_ms().saturating_sub(since).max(0);
    metrics::histogram!(QUEUE_WAIT_SECONDS, "queue" => queue).record(waited_ms as f64 / 1000.0);
}

pub(crate) trait Queue {
    /// A claimed row.
    type Row: Send + 'static;

    /// Claims up to `limit` ready rows for this process.
    fn claim(shared: &Shared, limit: u32) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;

    /// Takes one claimed row to a finished, retry or released state.
    fn handle(shared: Shared, row: Self::Row) -> impl Future<Output = ()> + Send + 'static;

    /// The tracing span of one row's handling.
    fn span(row: &Self::Row) -> tracing::Span;

    /// The wake-up for new work in this queue.
    fn wake(shared: &Shared) -> &Notify;
}

/// Claims rows while permits are free and handles each in `tracker`, until `stop` fires.
///
/// `gate`, when given, pauses claiming while the gateway is not connected. Between claims the
/// loop sleeps until woken (new work, a finished row freeing its lane) or `poll` passes (work
/// of other processes, retries coming due).
pub(crate) async fn drive<Q: Queue>(
    shared: Shared,
    concurrency: usize,
    poll: Duration,
    mut gate: Option<watch::Receiver<ConnectionState>>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        if let Some(state) = gate.as_mut() {
            while !matches!(*state.borrow_and_update(), ConnectionState::Connected { .. }) {
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = state.changed() => if changed.is_err() { return },
                }
            }
        }
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                () = stop.cancelled() => return,
                permit = permits.clone().acquire_owned() => drop(permit),
            }
            continue;
        }
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let claimed = match Q::claim(&shared, limit).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim work from the store; retrying");
                Vec::new()
            }
        };
        // Fewer rows than asked for: nothing else is ready now, so wait for a wake-up instead of
        // asking the store again (a `Notify` keeps a wake-up that arrives in between).
        let idle = claimed.len() < free;
        for row in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let shared = shared.clone();
            let span = Q::span(&row);
            tracker.spawn(
                async move {
                    Q::handle(shared.clone(), row).await;
                    drop(permit);
                    // The lane's next row (if any) became claimable.
                    Q::wake(&shared).notify_one();
                }
                .instrument(span),
            );
        }
        if idle {
            let gate_changed = async {
                match gate.as_mut() {
                    Some(state) => drop(state.changed().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = Q::wake(&shared).notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = gate_changed => {}
            }
        }
    }
}

/// Keeps a claimed row's lease alive while its work is under way: `renew` every third of
/// `lease_ms`, until the returned token is cancelled or the lease is lost. `what` names the queue
/// in the logs.
fn keep_lease<F, Fut>(what: &'static str, id: i64, lease_ms: i64, renew: F) -> CancellationToken
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<bool, StoreError>> + Send,
{
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis((lease_ms / 3) as u64));
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => match renew().await {
                    Ok(true) => {}
                    Ok(false) => { tracing::warn!(id, queue = what, "lease lost"); return }
                    Err(e) => tracing::warn!(id, queue = what, error = %e, "cannot renew lease"),
                },
            }
        }
    });
    token
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    /// A row being handled cannot be entered a second time until its handling ends.
    #[test]
    fn a_row_in_flight_is_not_handled_twice() {
        let rows = InFlight::default();
        let first = rows.enter("outbox", 7).expect("free");
        assert!(rows.enter("outbox", 7).is_none(), "already being sent");
        assert!(rows.enter("inbox", 7).is_some(), "queues are apart");
        drop(first);
        assert!(rows.enter("outbox", 7).is_some(), "free again");
    }
}
