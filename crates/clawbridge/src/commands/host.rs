//! What a channel's commands and `doctor` checks get from the binary ([`CliHost`]): the channel's
//! settings, `[retry.http]`, the state dir, the store as a [`StoreBridge`] and secrets encrypted
//! with the master key ([`crate::secrets`]).

use crate::bridge::StoreBridge;
use crate::config::Config;
use crate::secrets::{FileSecrets, StoreSecrets, master_key};
use crate::util::worker_id;
use async_trait::async_trait;
use clawbridge_channel::Bridge;
use clawbridge_channel::cli::{CliError, CliHost, Secrets, SecretsAt};
use clawbridge_channel::plugin::{ChannelSettings, HostInfo};
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::SharedStore;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The host of one channel's command.
pub struct CommandHost {
    config: Arc<Config>,
    channel: &'static str,
    /// Opened on first use and shared by the bridge and the store-backed secrets.
    store: Arc<OnceCell<SharedStore>>,
}

impl std::fmt::Debug for CommandHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHost").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl CommandHost {
    /// The host of channel `channel`'s command.
    pub fn new(config: Arc<Config>, channel: &'static str) -> Self {
        Self { config, channel, store: Arc::default() }
    }

    /// The host of channel `channel` on a store that is open already (the daemon's).
    pub fn with_store(config: Arc<Config>, channel: &'static str, store: SharedStore) -> Self {
        Self { config, channel, store: Arc::new(OnceCell::from(store)) }
    }

    /// Whether this installation has its master key yet (the variable, or the key file).
    fn has_master_key(&self) -> bool {
        self.config.bridge.master_key.is_some()
            || self.config.bridge.state_dir.join(clawbridge_store::secrets::KEY_FILE).exists()
    }

    async fn store(&self) -> Result<SharedStore, CliError> {
        let url = &self.config.bridge.database_url;
        let store = self.store.get_or_try_init(|| clawbridge_store::open(url)).await?;
        Ok(store.clone())
    }
}

/// What `doctor` gives channel `channel`'s checks.
pub fn host_info(config: &Arc<Config>, channel: &'static str) -> HostInfo {
    HostInfo { listen: config.bridge.listen, cli: Arc::new(CommandHost::new(config.clone(), channel)) }
}

#[async_trait]
impl CliHost for CommandHost {
    fn settings(&self) -> Option<&dyn ChannelSettings> {
        let (_, settings) = self.config.channels.iter().find(|(id, _)| *id == self.channel)?;
        Some(settings.as_ref())
    }

    fn retry(&self) -> RetryPolicy {
        self.config.retry.http
    }

    fn state_dir(&self) -> &Path {
        &self.config.bridge.state_dir
    }

    /// Leases are held under this process's worker id.
    async fn bridge(&self) -> Result<Arc<dyn Bridge>, CliError> {
        Ok(Arc::new(StoreBridge::new(self.store().await?, Arc::default(), worker_id())))
    }

    /// Nothing is created: no master key file, and (for SQLite) no database file.
    async fn existing_secrets(
        &self,
        namespace: &'static str,
        at: SecretsAt<'_>,
    ) -> Result<Option<Arc<dyn Secrets>>, CliError> {
        if !self.has_master_key() {
            return Ok(None);
        }
        if let (SecretsAt::Store, Some(path)) = (at, sqlite_file(&self.config.bridge.database_url))
            && !path.exists()
            && self.store.get().is_none()
        {
            return Ok(None);
        }
        self.secrets(namespace, at).await.map(Some)
    }

    fn config_file(&self) -> Option<&Path> {
        self.config.source.as_deref()
    }

    /// `CLAWBRIDGE_PUBLIC_URL` / `[bridge] public_url`.
    fn public_url(&self) -> Option<&str> {
        self.config.bridge.public_url.as_deref()
    }

    async fn secrets(&self, namespace: &'static str, at: SecretsAt<'_>) -> Result<Arc<dyn Secrets>, CliError> {
        let key = master_key(&self.config).map_err(CliError::from)?;
        Ok(match at {
            SecretsAt::Dir { dir, extension } => Arc::new(FileSecrets::new(dir, extension, namespace, key)),
            SecretsAt::Store => Arc::new(StoreSecrets::new(key, self.store().await?, namespace)),
        })
    }
}

/// The file of a `sqlite://PATH` database URL (`None` for PostgreSQL and in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}
