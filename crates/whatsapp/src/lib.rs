//! WhatsApp through the Kapso Cloud API (reference/kapso-whatsapp.md).
//!
//! # Layout
//! - [`config`]: `[whatsapp]` and the Go bridge's `KAPSO_*` variables.
//! - [`client`]: the Kapso API client (send, upload, mark-read, list, media download),
//!   on clawbridge-http's layers: timeouts, error classification and the per-key [`limiter`].
//! - [`inbound`]: webhook bodies and polled messages → `InboundMessage`s and statuses (pure).
//! - [`webhook`]: the axum routes (`/webhook`, `/whatsapp/webhook`), signature checks.
//! - [`poller`]: polling Kapso's message history with paging and a `created_at` cursor.
//! - [`ingest`]: media download and persisting through the bridge, shared by both.
//! - [`render`]: Markdown → WhatsApp text and chunking (pure).
//! - [`account`]: the [`WhatsAppConnector`] and its accounts.
//! - [`tailscale`]: `KAPSO_MODE=tailscale`, the supervised funnel.
//! - [`plugin`]: the registration with the bridge (settings, connector, `doctor` checks,
//!   the `whatsapp` subcommand).
//! - [`cli`]: `clawbridge whatsapp send` and the local media files it uploads.

#![warn(missing_docs)]

pub mod account;
pub mod cli;
pub mod client;
pub mod config;
pub mod inbound;
pub mod ingest;
pub mod limiter;
pub mod plugin;
pub mod poller;
pub mod render;
pub mod tailscale;
pub mod timefmt;
pub mod webhook;

pub use account::{WhatsAppAccount, WhatsAppConnector};
pub use client::KapsoClient;
pub use config::WhatsAppConfig;
pub use plugin::WhatsAppPlugin;
