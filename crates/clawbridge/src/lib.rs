//! The clawbridge daemon and CLI, as a library so tests and benchmarks assemble it with their
//! own channels.
//!
//! # Layout
//! - [`config`]: TOML + environment, validated with fixes in every message.
//! - [`daemon`]: assembles store, gateway client, channels, HTTP listener and workers; shutdown.
//! - [`pipeline`]: the inbox and outbox workers.
//! - [`bridge`]: the store-backed door through which channels persist things (re-exported from
//!   the store crate, where channel tests can use it too).
//! - [`registry`]: configured channels and accounts.
//! - [`channels`]: which channel crates are enabled by the configuration.
//! - [`edge`]: publishing the webhook to the internet (Tailscale Funnel).
//! - [`http`]: `/health`, `/healthz`, `/readyz`, `/metrics`.
//! - [`commands`]: `doctor`, `status`, `pairing`.
//! - [`kakao_tokens`]: encrypted Kakao Login tokens and the Talk API's small state on the store.
//! - [`cli`]: the clap definitions and dispatch.

pub use clawbridge_store::bridge;
pub mod channels;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod edge;
pub mod http;
pub mod kakao_tokens;
pub mod pipeline;
pub mod registry;
pub mod telemetry;
pub mod util;
