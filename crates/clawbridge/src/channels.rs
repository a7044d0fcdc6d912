//! The channel crates this binary knows, and the connectors `serve` runs from the configuration.

use crate::config::Config;
use clawbridge_channel::Connector;
use clawbridge_channel::plugin::{ConnectorContext, PluginSet};
use std::sync::Arc;

/// Every channel of this binary: one line per channel crate.
pub fn plugins() -> PluginSet {
    PluginSet::default()
        .with(&clawbridge_whatsapp::WhatsAppPlugin)
        .with(&clawbridge_kakao::KakaoPlugin)
        .with(&clawbridge_bizmsg::BizmsgPlugin)
}

/// One connector per configured channel that serves something, built on the daemon's bridge
/// (`ctx`): the daemon calls this once its store is open.
///
/// # Errors
/// A channel whose configuration cannot start (the message names the setting).
pub fn enabled(config: &Config, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn Connector>>> {
    let mut connectors = Vec::new();
    for (_, settings) in &config.channels {
        if let Some(connector) = settings.connector(ctx).map_err(anyhow::Error::msg)? {
            connectors.push(connector);
        }
    }
    Ok(connectors)
}
