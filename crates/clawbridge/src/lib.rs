//! The clawbridge daemon and CLI, as a library so tests and benchmarks assemble it with their
//! own channels.
//!
//! # Layout
//! - [`config`]: TOML + environment, validated with fixes in every message.
//! - [`daemon`]: assembles store, gateway client, channels, HTTP listener and workers; shutdown.
//! - [`pipeline`]: the inbox and outbox workers.
//! - [`campaign`]: bulk sends from a recipient file: the runner, tracked links, the report.
//! - [`bridge`]: the store-backed door through which channels persist things (re-exported from
//!   the store crate, where channel tests can use it too).
//! - [`registry`]: configured channels and accounts.
//! - [`channels`]: which channel crates are enabled by the configuration.
//! - [`edge`]: publishing the webhook to the internet (Tailscale Funnel).
//! - [`http`]: `/health`, `/healthz`, `/readyz`, `/metrics`.
//! - [`console`]: the operator console at `/console` (pages, login, charts).
//! - [`commands`]: `serve`, `doctor`, `status`, `pairing`, the Go bridge's binaries, and the
//!   host a channel's own subcommand runs with.
//! - [`sandbox`]: `clawbridge sandbox`: the daemon against simulated platforms, and its page.
//! - [`tools`]: the native agent tools published on the gateway as a node.
//! - [`secrets`]: channel secrets encrypted with the master key (files or the store).
//! - [`cli`]: the clap definitions and dispatch (channel subcommands come from their plugins).

pub use clawbridge_store::bridge;
pub mod campaign;
pub mod channels;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod daemon;
pub mod edge;
pub mod http;
pub mod pipeline;
pub mod registry;
pub mod sandbox;
pub mod secrets;
pub mod telemetry;
pub mod tools;
pub mod util;
