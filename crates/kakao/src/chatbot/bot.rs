//! What the parts of the chatbot share: the connector's [`Shared`] settings and, per bot, its
//! [`Bot`] (settings, the turns it holds in this process, its store namespaces).

use super::config::{BotSettings, ChatbotConfig};
use super::rendezvous::Turns;
use super::state::BotSpaces;
use clawbridge_channel::Bridge;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A callback POST or an image download gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What every bot of the connector shares.
pub(super) struct Shared {
    pub(super) config: ChatbotConfig,
    /// For callback POSTs (no redirects).
    pub(super) http: reqwest::Client,
    /// The secure-image plugin's pictures: https (http upgraded), `imageHosts` at every
    /// redirect, `mediaMaxMb`.
    pub(super) images: clawbridge_http::Downloader,
    /// Given at construction: the connector is built once the store is open.
    bridge: Arc<dyn Bridge>,
}

impl Shared {
    pub(super) fn new(config: &ChatbotConfig, bridge: Arc<dyn Bridge>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the Kakao HTTP client: {e}"))?;
        let policy = clawbridge_http::DownloadPolicy {
            upgrade_http: true,
            ..clawbridge_http::DownloadPolicy::new(config.image_hosts.clone(), config.media_max_bytes)
        };
        let images = clawbridge_http::Downloader::new(policy, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Self { config: config.clone(), http, images, bridge })
    }

    /// The bridge the connector was built with.
    pub(super) fn bridge(&self) -> Arc<dyn Bridge> {
        self.bridge.clone()
    }
}

/// One Kakao bot.
pub(super) struct Bot {
    pub(super) settings: BotSettings,
    pub(super) shared: Arc<Shared>,
    /// The turns whose handlers run in this process.
    pub(super) turns: Turns,
    pub(super) spaces: BotSpaces,
    seq: AtomicU64,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot").field("account", &self.settings.account).finish_non_exhaustive()
    }
}

impl AsRef<BotSettings> for Bot {
    fn as_ref(&self) -> &BotSettings {
        &self.settings
    }
}

impl Bot {
    pub(super) fn new(settings: BotSettings, shared: Arc<Shared>) -> Self {
        let spaces = BotSpaces::new(&settings.account);
        Self { settings, shared, turns: Turns::default(), spaces, seq: AtomicU64::new(1) }
    }

    /// The bridge the connector was built with.
    pub(super) fn bridge(&self) -> Arc<dyn Bridge> {
        self.shared.bridge()
    }

    /// A number unique in this process (orders two answers kept in the same millisecond).
    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}
