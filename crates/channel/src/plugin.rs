//! How a channel crate registers with the bridge: one [`ChannelPlugin`] per crate, listed once in
//! the binary's registry.
//!
//! The plugin reads the channel's own TOML table (`[whatsapp]`, `[kakao]`) and environment
//! variables into its typed settings, contributes its subcommand (`clawbridge kakao …`) and its
//! part of `status`; the settings build the [`Connector`] that `serve` runs and answer `doctor`.
//! The binary never parses a channel's configuration, arguments or stored records itself, so
//! adding a channel touches its crate and one registration line.

use crate::cli::{CliError, CliHost};
use crate::{Bridge, BridgeError, Connector};
use async_trait::async_trait;
use std::any::Any;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// Reads one environment variable (tests pass a map, the binary the process environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A channel crate's registration.
#[async_trait]
pub trait ChannelPlugin: Send + Sync + 'static {
    /// The channel id, which is also the name of its TOML table (`[whatsapp]`).
    fn id(&self) -> &'static str;

    /// Reads the channel's table (when the file has one) and its environment variables.
    /// `Ok(None)` when the channel is not configured at all.
    ///
    /// # Errors
    /// A message that names the setting and the fix.
    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String>;

    /// The channel's subcommand, a `clap::Command` named by [`id`](Self::id) (`clawbridge
    /// kakao …`), or `None` when the channel has no commands of its own.
    fn command(&self) -> Option<clap::Command> {
        None
    }

    /// Runs the subcommand [`command`](Self::command) declared, with what it matched; the exit
    /// code is the process's.
    ///
    /// # Errors
    /// What the operator must fix; the binary prints it and exits with code 1.
    async fn run_command(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
        let _ = (matches, host);
        Err(format!("the {} channel has no commands", self.id()).into())
    }

    /// The channel's first-run setup as a subcommand named by [`id`](Self::id): the bridge lists
    /// it under `clawbridge setup` (`clawbridge setup whatsapp …`), and it is the same command
    /// as the channel's own `setup` subcommand (`clawbridge whatsapp setup …`). `None`: the
    /// channel has no setup. The configuration is loaded without the channel's own settings for
    /// it (setup is what completes them): the command reads its table itself.
    fn setup_command(&self) -> Option<clap::Command> {
        None
    }

    /// Runs the command [`setup_command`](Self::setup_command) declared.
    ///
    /// # Errors
    /// What the operator must fix; the binary prints it and exits with code 1.
    async fn run_setup(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
        let _ = (matches, host);
        Err(format!("the {} channel has no setup", self.id()).into())
    }

    /// The channel's part of `clawbridge status`, read from its records through `bridge`;
    /// `settings` when the channel is configured. `None`: the channel shows nothing there.
    ///
    /// # Errors
    /// The store is unreachable.
    async fn status(
        &self,
        settings: Option<&dyn ChannelSettings>,
        bridge: &dyn Bridge,
    ) -> Result<Option<ChannelStatus>, BridgeError> {
        let _ = (settings, bridge);
        Ok(None)
    }
}

/// A channel's part of `clawbridge status`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelStatus {
    /// Its key in `status --json` (`kakao_chatbot`).
    pub key: &'static str,
    /// Its value there (`null` when there is nothing to report).
    pub json: serde_json::Value,
    /// Its lines of the text report, in order (none when there is nothing to report).
    pub lines: Vec<String>,
}

/// What `doctor` knows about the bridge around the channel.
#[derive(Clone)]
pub struct HostInfo {
    /// The bridge's one HTTP listener (webhook routes are served there).
    pub listen: SocketAddr,
    /// The store and secrets, for checks that read what the channel's commands stored (a
    /// login's tokens).
    pub cli: Arc<dyn CliHost>,
}

impl std::fmt::Debug for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostInfo").field("listen", &self.listen).finish_non_exhaustive()
    }
}

/// What a connector is built with: the daemon builds connectors once the store is open, so a
/// channel has its bridge from construction on (no "not started yet" state).
#[derive(Clone)]
pub struct ConnectorContext {
    /// The channel's door to durability, the same handle its routes and accounts are given.
    pub bridge: Arc<dyn Bridge>,
}

impl std::fmt::Debug for ConnectorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorContext").finish_non_exhaustive()
    }
}

/// The loaded settings of one channel.
#[async_trait]
pub trait ChannelSettings: std::fmt::Debug + Send + Sync + 'static {
    /// The settings as their concrete type (the channel's commands read theirs through
    /// [`CliHost::settings`]).
    fn as_any(&self) -> &dyn Any;

    /// The connector `serve` runs, or `None` when what is configured serves nothing (Kakao Login
    /// alone is used by CLI commands only).
    ///
    /// # Errors
    /// A configuration that must not be served as it is (a public webhook without a secret); the
    /// message names the setting and the fix.
    fn connector(&self, ctx: &ConnectorContext) -> Result<Option<Arc<dyn Connector>>, String>;

    /// The settings completed with what the channel's commands stored encrypted (the webhook
    /// secret `clawbridge setup whatsapp` keeps in the store), read before `serve` builds the
    /// connector and before the channel's `doctor` checks. `Ok(None)`: nothing to add, use them
    /// as they are (the default).
    ///
    /// # Errors
    /// A stored value cannot be read (another master key, the store is unreachable), with the fix.
    async fn with_stored_secrets(&self, host: &dyn CliHost) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        let _ = host;
        Ok(None)
    }

    /// The channel's checks for `clawbridge doctor` (credentials, delivery mode).
    async fn doctor(&self, host: &HostInfo) -> Vec<Check> {
        let _ = host;
        Vec::new()
    }
}

/// One line of `clawbridge doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`whatsapp default`).
    pub what: String,
    /// What was found, or the problem and its fix.
    pub outcome: Result<String, Problem>,
}

/// A failed check: what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl Check {
    /// A passed check.
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { what: what.into(), outcome: Ok(detail.into()) }
    }

    /// A failed check.
    pub fn failed(what: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { what: what.into(), outcome: Err(Problem { problem: problem.into(), fix: fix.into() }) }
    }
}

/// A configured channel: its id and the settings its plugin loaded.
pub type LoadedChannel = (&'static str, Arc<dyn ChannelSettings>);

/// The channel plugins a binary knows, in registration order.
#[derive(Clone, Default)]
pub struct PluginSet {
    plugins: Vec<&'static dyn ChannelPlugin>,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.plugins.iter().map(|p| p.id())).finish()
    }
}

impl PluginSet {
    /// Adds a channel; the one line a new channel needs.
    #[must_use]
    pub fn with(mut self, plugin: &'static dyn ChannelPlugin) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// The plugin of a channel id.
    pub fn get(&self, id: &str) -> Option<&'static dyn ChannelPlugin> {
        self.plugins.iter().copied().find(|p| p.id() == id)
    }

    /// Every plugin.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn ChannelPlugin> + '_ {
        self.plugins.iter().copied()
    }

    /// Loads every registered channel from the file's channel tables and the environment.
    /// A table no plugin claims is an error that names it (a typo like `[whatapp]` must not be
    /// silently ignored).
    ///
    /// # Errors
    /// The first channel whose settings are wrong, or an unknown table.
    pub fn load_all(
        &self,
        tables: &std::collections::BTreeMap<String, toml::Table>,
        env: Env<'_>,
    ) -> Result<Vec<LoadedChannel>, String> {
        if let Some(unknown) = tables.keys().find(|name| self.get(name).is_none()) {
            let known: Vec<&str> = self.iter().map(|p| p.id()).collect();
            return Err(format!(
                "unknown section [{unknown}] in the configuration file: the sections are gateway, bridge, pipeline \
                 and the channels {}",
                known.join(", ")
            ));
        }
        let mut loaded = Vec::new();
        for plugin in self.iter() {
            if let Some(settings) = plugin.load(tables.get(plugin.id()), env)? {
                loaded.push((plugin.id(), settings));
            }
        }
        Ok(loaded)
    }
}
