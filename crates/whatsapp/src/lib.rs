//! WhatsApp through the Kapso Cloud API (reference/kapso-whatsapp.md).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod limiter;
pub mod tailscale;

pub use client::KapsoClient;
pub use config::WhatsAppConfig;
