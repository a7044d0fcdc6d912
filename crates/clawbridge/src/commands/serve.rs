//! `clawbridge serve`.

use crate::config::Config;
use crate::daemon;
use std::process::ExitCode;

/// Runs the daemon until SIGINT or SIGTERM, then drains and exits.
///
/// # Errors
/// Start-up failures (configuration, store, listener), each naming the fix.
pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let connectors = crate::channels::enabled(&config)?;
    let whatsapp_config = config.clone();
    let handle = daemon::start(config, connectors).await?;
    // KAPSO_MODE=tailscale publishes the bound listener's /webhook through a supervised funnel.
    let public_webhook = match crate::commands::whatsapp::PublicWebhook::start(&whatsapp_config, handle.addr).await {
        Ok(public) => public,
        Err(e) => {
            handle.shutdown().await;
            return Err(e);
        }
    };
    wait_for_signal().await;
    public_webhook.stop().await;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
