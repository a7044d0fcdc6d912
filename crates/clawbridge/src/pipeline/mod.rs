//! The workers between the store and the outside world.
//!
//! - [`inbox`]: claims inbound rows (one lane per peer, a global bound), applies the DM policy,
//!   runs the agent through the gateway and puts the rendered reply into the outbox.
//! - [`outbox`]: claims due outbound rows (in order per peer) and sends them through the
//!   channel account, classifying failures into retries and dead letters.
//!
//! Both resume whatever an earlier process left unfinished: rows are claimed under leases, so
//! a crashed worker's rows become claimable again when its lease runs out.

pub mod inbox;
pub mod outbox;

use crate::bridge::Wakers;
use crate::config::Config;
use crate::registry::Registry;
use clawbridge_gateway::GatewayClient;
use clawbridge_store::SharedStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("worker", &self.worker).finish_non_exhaustive()
    }
}
