//! `clawbridge serve`.

use crate::config::Config;
use crate::daemon;
use std::process::ExitCode;

/// `serve --insecure-no-signature`: accept unsigned webhooks in a public mode (the same as
/// `KAPSO_ALLOW_UNSIGNED_WEBHOOKS=true`); set before the channels are built.
pub fn allow_unsigned(mut config: Config, allow: bool) -> Config {
    if allow {
        config.update_whatsapp(|whatsapp| whatsapp.allow_unsigned_webhooks = true);
    }
    config
}

/// Runs the daemon until SIGINT or SIGTERM, then drains and exits.
///
/// # Errors
/// Start-up failures (configuration, store, listener), each naming the fix.
pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    // Listening for the signals before anything starts: a stop request during start-up
    // (systemd, a script) still takes the daemon down in order instead of killing it.
    let mut stop = StopSignal::register();
    let edge_config = config.clone();
    let handle = daemon::start(config, daemon::Channels::Configured).await?;
    // KAPSO_MODE=tailscale publishes the bound listener's /webhook through a supervised funnel.
    let public_webhook = tokio::select! {
        started = crate::edge::PublicWebhook::start(&edge_config, handle.addr) => match started {
            Ok(public) => public,
            Err(e) => {
                handle.shutdown().await;
                return Err(e);
            }
        },
        () = stop.wait() => {
            handle.shutdown().await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    notify_service_manager(sd_notify::NotifyState::Ready);
    stop.wait().await;
    notify_service_manager(sd_notify::NotifyState::Stopping);
    public_webhook.stop().await;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Tells systemd (`Type=notify`, `NOTIFY_SOCKET`) that the daemon listens, or is draining; nothing
/// happens without a service manager.
fn notify_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot tell the service manager (NOTIFY_SOCKET)");
    }
}

/// SIGINT and SIGTERM, registered when created.
pub(crate) struct StopSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    pub(crate) fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { signals: signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()) }
        }
        #[cfg(not(unix))]
        Self {}
    }

    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
