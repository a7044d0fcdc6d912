//! WhatsApp through the Kapso Cloud API (reference/kapso-whatsapp.md).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod inbound;
pub mod limiter;
pub mod render;
pub mod tailscale;
pub mod timefmt;

pub use client::KapsoClient;
pub use config::WhatsAppConfig;
