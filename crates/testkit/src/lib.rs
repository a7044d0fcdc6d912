//! Test utilities for clawbridge's end-to-end tests against a **real** OpenClaw gateway
//! (DESIGN.md §8, recipe in reference/openclaw-gateway.md §4). Used only as a dev-dependency.
//!
//! # Layout
//! - [`stub`]: [`StubModel`], the OpenAI-compatible model the gateway talks to, scriptable through
//!   the user text (`SLOW:<ms>`, `DRIP:<ms>`, `LONG:<n>`, `IMAGE-COUNT`, `TOOLTEST: <cmd>`) and
//!   recording every request.
//! - [`install`]: finds Node 24 + `openclaw@2026.9.6` as installed by `scripts/install-e2e.sh`;
//!   [`require_or_skip`] skips a test when they are missing, unless `CLAWBRIDGE_REQUIRE_E2E=1`.
//! - [`fake_gateway`]: a fake gateway (protocol v4 subset) for fast pipeline tests and benchmarks.
//! - [`fake_kakao`], [`fake_kapso`]: fakes of Kakao's and Kapso's APIs, from their documented
//!   shapes, shared by the channel crates' tests and the binary's end-to-end tests.
//! - [`fake_nhn`], [`fake_solapi`], [`fake_infobip`]: fakes of the three business-message dealers
//!   (NHN Cloud Bizmessage, Solapi, Infobip) for the dealer tests.
//! - [`channel`]: a recording channel, the stand-in for WhatsApp/KakaoTalk in tests.
//! - [`gateway`]: [`Gateway`], a real gateway in an isolated temp dir on a free loopback port, and
//!   [`shared()`], one stub + gateway per test binary.
//! - [`memory_store`]: a real store in process memory (no file, no server), with the semantics the
//!   store's conformance suite checks on SQLite and PostgreSQL.
//! - [`memory_bridge`]: the daemon's own [`StoreBridge`] on such a store, for channel tests: a
//!   channel's webhook, poller or send writes real rows, and the test reads them back.
//!
//! # Example
//! ```no_run
//! #[tokio::test]
//! async fn replies_through_the_gateway() {
//!     let Some(shared) = clawbridge_testkit::shared() else { return }; // skipped
//!     let (url, token) = (shared.url(), shared.token());
//!     // … connect the bridge's gateway client to `url` with `token`, send a unique text …
//!     assert_eq!(shared.stub().count_with("unique-token-123"), 1);
//! }
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod channel;
pub mod fake_gateway;
pub mod fake_infobip;
pub mod fake_kakao;
pub mod fake_kapso;
pub mod fake_nhn;
pub mod fake_solapi;
pub mod gateway;
pub mod install;
pub mod stub;
mod ws;

pub use gateway::{Gateway, GatewayOptions, SharedGateway, shared};
pub use install::{Install, locate, require_or_skip};
pub use stub::{StubModel, StubRequest};

use clawbridge_channel::{AccountContext, AccountStatus, Bridge, RouteContext};
use clawbridge_core::{AccountId, ChannelId, InboundMessage};
use clawbridge_store::{InboundRow, MemoryStore, OutboundRow, StoreBridge, Wakers};
use std::sync::Arc;

/// A new, empty in-memory store for a test: every capability of the SQLite and PostgreSQL
/// backends with the same semantics (the store's conformance suite runs on it too), without a
/// file or a server. Each call is a store of its own; clones of the handle share it.
pub fn memory_store() -> clawbridge_store::SharedStore {
    Arc::new(MemoryStore::new())
}

/// The bridge the daemon hands a channel, on a new in-memory store: see [`memory_bridge`].
#[derive(Clone)]
pub struct MemoryBridge {
    /// The bridge, as [`Bridge`] (what connectors, routes and accounts take).
    pub bridge: Arc<dyn Bridge>,
    /// The store behind it, to read what the channel wrote, to set rows up (another replica's
    /// lease, a sent message to report statuses for) or to simulate an outage
    /// ([`MemoryStore::set_outage`]).
    pub store: MemoryStore,
    /// Notified on every new inbound row and every enqueued message, as the daemon's workers are.
    pub wakers: Arc<Wakers>,
}

/// A [`StoreBridge`] (the daemon's, not a fake) on a new, empty [`MemoryStore`]. Each call is a
/// store of its own; `holder` in leases is `test-bridge`.
pub fn memory_bridge() -> MemoryBridge {
    let store = MemoryStore::new();
    let wakers = Arc::new(Wakers::default());
    let bridge = Arc::new(StoreBridge::new(Arc::new(store.clone()), wakers.clone(), "test-bridge".to_owned()));
    MemoryBridge { bridge, store, wakers }
}

impl std::fmt::Debug for MemoryBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBridge").field("store", &self.store).finish_non_exhaustive()
    }
}

impl MemoryBridge {
    /// What `Connector::routes` is given.
    pub fn route_context(&self) -> RouteContext {
        RouteContext { bridge: self.bridge.clone() }
    }

    /// What the daemon gives an account of `channel` when it starts (status `Starting`, a fresh
    /// cancellation token).
    pub fn account_context(&self, channel: &str, account: &str) -> AccountContext {
        let (status, _) = tokio::sync::watch::channel(AccountStatus::Starting);
        AccountContext {
            channel: ChannelId::new(channel),
            account: AccountId::new(account),
            bridge: self.bridge.clone(),
            status: Arc::new(status),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Every inbound row, oldest first.
    ///
    /// # Panics
    /// While the store is down.
    pub async fn inbound_rows(&self) -> Vec<InboundRow> {
        use clawbridge_store::InboxQueue as _;
        let mut rows = Vec::new();
        // Row ids are never reused and start at 1; nothing is pruned in a test.
        while let Some(row) = self.store.get_inbound(rows.len() as i64 + 1).await.expect("the store is up") {
            rows.push(row);
        }
        rows
    }

    /// The messages of every inbound row, oldest first (what the channel accepted, once each).
    pub async fn inbox(&self) -> Vec<InboundMessage> {
        self.inbound_rows().await.into_iter().map(|row| row.message).collect()
    }

    /// Every outbound row, oldest first.
    ///
    /// # Panics
    /// While the store is down.
    pub async fn outbound_rows(&self) -> Vec<OutboundRow> {
        use clawbridge_store::OutboxQueue as _;
        let mut rows = Vec::new();
        while let Some(row) = self.store.get_outbound(rows.len() as i64 + 1).await.expect("the store is up") {
            rows.push(row);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use clawbridge_core::InboundMessage;
    use clawbridge_store::{InboxQueue, InsertOutcome};
    use std::sync::Arc;

    #[tokio::test]
    async fn memory_store_is_a_working_store_of_its_own() {
        let store = super::memory_store();
        assert_eq!(store.backend(), "memory");
        let msg = InboundMessage::text("whatsapp", "default", "15550001", "wamid.1", "hi");
        let id = store.insert_inbound(&msg, 1).await.unwrap().id();
        let claimed = store.claim_inbound("w", 10, 1_000, 1).await.unwrap();
        assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
        assert!(store.complete_inbound(id, "w", "replied", &[], 2).await.unwrap());

        // A capability alone, as a channel test would take it.
        let inbox: Arc<dyn InboxQueue> = store.clone();
        assert_eq!(inbox.insert_inbound(&msg, 3).await.unwrap(), InsertOutcome::Duplicate(id));
        let other = super::memory_store();
        assert!(matches!(other.insert_inbound(&msg, 3).await.unwrap(), InsertOutcome::Inserted(_)), "independent");
    }

    #[tokio::test]
    async fn memory_bridge_writes_real_rows_and_the_store_can_go_down() {
        use clawbridge_channel::Accepted;
        use clawbridge_store::Outage;
        let test = super::memory_bridge();
        let msg = InboundMessage::text("whatsapp", "default", "15550001", "wamid.1", "hi");
        assert_eq!(test.bridge.accept(msg.clone()).await.unwrap(), Accepted::New);
        assert_eq!(test.bridge.accept(msg.clone()).await.unwrap(), Accepted::Duplicate);
        tokio::time::timeout(std::time::Duration::from_secs(1), test.wakers.inbox.notified()).await.unwrap();
        assert_eq!(test.inbox().await.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["hi"]);

        test.store.set_outage(Outage::Writes);
        let other = InboundMessage::text("whatsapp", "default", "15550001", "wamid.2", "lost");
        assert!(test.bridge.accept(other.clone()).await.is_err(), "a store that cannot write refuses");
        assert_eq!(test.bridge.state_get("ns", "k").await.unwrap(), None, "reads still work");
        test.store.set_outage(Outage::All);
        assert!(test.bridge.state_get("ns", "k").await.is_err(), "a store that is down refuses reads too");
        test.store.set_outage(Outage::None);
        assert_eq!(test.bridge.accept(other).await.unwrap(), Accepted::New);
        assert_eq!(test.inbox().await.len(), 2);
        assert!(test.outbound_rows().await.is_empty());
    }
}
