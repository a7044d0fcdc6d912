//! WhatsApp through the Kapso Cloud API (reference/kapso-whatsapp.md).

#![warn(missing_docs)]

pub mod config;

pub use config::WhatsAppConfig;
