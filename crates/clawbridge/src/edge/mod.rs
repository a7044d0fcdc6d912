//! Edges of the daemon that face the outside beyond the listener itself: publishing the webhook
//! (Tailscale Funnel). A browser sandbox will live here too.

pub mod public_webhook;

pub use public_webhook::{PublicWebhook, funnel_url_file, published_webhook_url};
