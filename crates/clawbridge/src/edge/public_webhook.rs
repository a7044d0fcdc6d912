//! The public side of the daemon's listener: how webhooks reach it from the internet.
//!
//! In `KAPSO_MODE=tailscale` a supervised `tailscale funnel` publishes the bound listener's
//! `/webhook` and prints "register this webhook URL in Kapso: …" whenever its URL is
//! (re)published; in `domain` mode a note says where the reverse proxy must point. `serve` starts
//! it once the listener is bound and stops it before draining.

use crate::config::Config;
use clawbridge_whatsapp::config::DeliveryMode;
use clawbridge_whatsapp::tailscale::{Funnel, FunnelOptions, FunnelState};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The WhatsApp part of `serve` once the listener is bound: in `KAPSO_MODE=tailscale` the
/// supervised funnel, which prints "register this webhook URL in Kapso: …" whenever its URL is
/// (re)published; in `domain` mode a note on where the reverse proxy must point.
#[derive(Debug, Default)]
pub struct PublicWebhook {
    funnel: Option<Funnel>,
    announcer: Option<JoinHandle<()>>,
    /// Where the published URL is kept for `clawbridge status`.
    url_file: Option<PathBuf>,
}

/// How long `serve` waits for the funnel before it carries on (it keeps trying in the background).
const FUNNEL_FIRST_WAIT: Duration = Duration::from_secs(60);

impl PublicWebhook {
    /// Starts what the delivery mode needs.
    ///
    /// # Errors
    /// The funnel failed for a reason only the operator can fix (no `tailscale`, no permission,
    /// no free funnel port); the message says how.
    pub async fn start(config: &Config, listener: SocketAddr) -> anyhow::Result<Self> {
        let Some(whatsapp) = config.whatsapp() else { return Ok(Self::default()) };
        match whatsapp.mode {
            DeliveryMode::Polling => Ok(Self::default()),
            DeliveryMode::Domain => {
                tracing::info!(
                    webhook = %format!("http://{listener}/webhook"),
                    "KAPSO_MODE=domain: point your HTTPS reverse proxy at this listener and register \
                     https://<your domain>/webhook in Kapso"
                );
                Ok(Self::default())
            }
            DeliveryMode::Tailscale => {
                let pid_file = config.bridge.state_dir.join("tailscale-funnel.pid");
                let options = FunnelOptions::new(whatsapp.tailscale.clone(), listener, Some(pid_file));
                let url_file = funnel_url_file(&config.bridge.state_dir);
                // A URL left by a killed daemon is not published any more.
                let _ = std::fs::remove_file(&url_file);
                let funnel = Funnel::spawn(options, &CancellationToken::new());
                let announcer = tokio::spawn(announce(funnel.state(), url_file.clone()));
                match funnel.wait_ready(FUNNEL_FIRST_WAIT).await {
                    Ok(_) => {}
                    Err(reason) if matches!(*funnel.state().borrow(), FunnelState::Failed(_)) => {
                        funnel.stop().await;
                        announcer.abort();
                        let _ = std::fs::remove_file(&url_file);
                        anyhow::bail!("KAPSO_MODE=tailscale: {reason}");
                    }
                    Err(reason) => tracing::warn!(%reason, "the Tailscale funnel is not up yet; still trying"),
                }
                Ok(Self { funnel: Some(funnel), announcer: Some(announcer), url_file: Some(url_file) })
            }
        }
    }

    /// The funnel's current state (`None` outside tailscale mode).
    pub fn funnel_state(&self) -> Option<FunnelState> {
        self.funnel.as_ref().map(|f| f.state().borrow().clone())
    }

    /// Takes the webhook off the internet (stops the funnel).
    pub async fn stop(self) {
        if let Some(funnel) = self.funnel {
            funnel.stop().await;
        }
        if let Some(announcer) = self.announcer {
            announcer.abort();
        }
        if let Some(file) = self.url_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The file in the state dir that holds the URL the funnel publishes, while it does.
pub fn funnel_url_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tailscale-funnel.url")
}

/// The webhook URL a running `serve` publishes through Tailscale Funnel (for `clawbridge status`).
pub fn published_webhook_url(config: &Config) -> Option<String> {
    let url = std::fs::read_to_string(funnel_url_file(&config.bridge.state_dir)).ok()?;
    let url = url.trim();
    url.starts_with("https://").then(|| url.to_owned())
}

/// Prints the URL each time the funnel comes up with a URL not printed before, and keeps it in
/// `url_file` for `clawbridge status`.
async fn announce(mut state: tokio::sync::watch::Receiver<FunnelState>, url_file: PathBuf) {
    let mut announced: Option<String> = None;
    loop {
        let current = state.borrow_and_update().clone();
        match current {
            FunnelState::Up { url } if announced.as_deref() != Some(url.as_str()) => {
                let tmp = url_file.with_extension("url.tmp");
                if let Err(e) = std::fs::write(&tmp, &url).and_then(|()| std::fs::rename(&tmp, &url_file)) {
                    tracing::warn!(error = %e, file = %url_file.display(), "cannot record the webhook URL for `status`");
                }
                println!("register this webhook URL in Kapso: {url}");
                let _ = std::io::stdout().flush();
                tracing::info!(%url, "webhook published through Tailscale Funnel");
                announced = Some(url);
            }
            FunnelState::Failed(reason) => {
                let _ = std::fs::remove_file(&url_file);
                tracing::error!(%reason, "the Tailscale funnel stopped for good; webhooks cannot arrive until the bridge restarts");
            }
            _ => {}
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
