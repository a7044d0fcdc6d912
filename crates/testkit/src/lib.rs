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
//! - [`fake_nhn`]: a fake of the NHN Cloud Bizmessage API (AlimTalk, Brand Message) for the dealer
//!   tests.
//! - [`channel`]: a recording channel, the stand-in for WhatsApp/KakaoTalk in tests.
//! - [`gateway`]: [`Gateway`], a real gateway in an isolated temp dir on a free loopback port, and
//!   [`shared()`], one stub + gateway per test binary.
//! - [`memory_store`]: a real store in process memory (no file, no server), with the semantics the
//!   store's conformance suite checks on SQLite and PostgreSQL.
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
pub mod fake_kakao;
pub mod fake_nhn;
pub mod gateway;
pub mod install;
pub mod stub;
mod ws;

pub use gateway::{Gateway, GatewayOptions, SharedGateway, shared};
pub use install::{Install, locate, require_or_skip};
pub use stub::{StubModel, StubRequest};

/// A new, empty in-memory store for a test: every capability of the SQLite and PostgreSQL
/// backends with the same semantics (the store's conformance suite runs on it too), without a
/// file or a server. Each call is a store of its own; clones of the handle share it.
pub fn memory_store() -> clawbridge_store::SharedStore {
    std::sync::Arc::new(clawbridge_store::MemoryStore::new())
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
}
