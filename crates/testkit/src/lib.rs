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
//! - [`channel`]: a recording channel, the stand-in for WhatsApp/KakaoTalk in tests.
//! - [`gateway`]: [`Gateway`], a real gateway in an isolated temp dir on a free loopback port, and
//!   [`shared()`], one stub + gateway per test binary.
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
pub mod gateway;
pub mod install;
pub mod stub;
mod ws;

pub use gateway::{Gateway, GatewayOptions, SharedGateway, shared};
pub use install::{Install, locate, require_or_skip};
pub use stub::{StubModel, StubRequest};
