//! The channel crates this binary knows, and the connectors `serve` runs from the configuration.

use crate::commands::host::CommandHost;
use crate::config::Config;
use clawbridge_channel::Connector;
use clawbridge_channel::plugin::{ConnectorContext, PluginSet};
use clawbridge_store::SharedStore;
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

/// Each channel's settings completed with the secrets its commands stored (the webhook secret
/// `clawbridge setup whatsapp` keeps), as `serve` runs them; `store` when it is open already.
///
/// # Errors
/// A stored secret that cannot be read, with the fix.
pub async fn with_stored_secrets(mut config: Config, store: Option<&SharedStore>) -> anyhow::Result<Config> {
    let shared = Arc::new(config.clone());
    for (id, settings) in &mut config.channels {
        let host = match store {
            Some(store) => CommandHost::with_store(shared.clone(), id, store.clone()),
            None => CommandHost::new(shared.clone(), id),
        };
        if let Some(completed) = settings.with_stored_secrets(&host).await.map_err(anyhow::Error::msg)? {
            *settings = completed;
        }
    }
    Ok(config)
}
