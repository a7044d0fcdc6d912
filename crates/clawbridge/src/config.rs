//! Configuration: a TOML file plus environment variables (environment wins), validated once at
//! start-up so that every mistake is reported with the setting's name and the fix.
//!
//! Variables (DESIGN.md §6): `OPENCLAW_GATEWAY_URL`, `OPENCLAW_TOKEN`, `OPENCLAW_AGENT_ID`,
//! `CLAWBRIDGE_STATE_DIR` (alias `KAPSO_STATE_DIR`), `CLAWBRIDGE_DATABASE_URL`,
//! `CLAWBRIDGE_LISTEN` (alias `KAPSO_WEBHOOK_ADDR`), `CLAWBRIDGE_MASTER_KEY`,
//! `CLAWBRIDGE_LOG_FORMAT`, `RUST_LOG`, and `CLAWBRIDGE_CONFIG` for the file itself.

use clawbridge_channel::plugin::{ChannelPlugin as _, ChannelSettings, LoadedChannel, PluginSet};
use clawbridge_core::retry::RetryPolicy;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A configuration problem, phrased for the operator: what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The OpenClaw gateway.
    pub gateway: GatewaySettings,
    /// Where state lives and where the bridge listens.
    pub bridge: BridgeSettings,
    /// How inbound work is processed.
    pub pipeline: PipelineSettings,
    /// Every configured channel, as its plugin loaded it (`serve` and `doctor` go through these;
    /// a channel's commands read theirs through their host, `commands::host`).
    pub channels: Vec<LoadedChannel>,
    /// Retry schedules (`[retry]`).
    pub retry: RetrySettings,
    /// The native agent tools (`[tools]`).
    pub tools: crate::tools::settings::ToolsSettings,
    /// The operator console (`[console]`).
    pub console: ConsoleSettings,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
}

/// The operator console at `/console` (`[console]`).
#[derive(Clone, Debug, Default)]
pub struct ConsoleSettings {
    /// `CLAWBRIDGE_CONSOLE_TOKEN` (`console.token`): what the login form asks for. Without it the
    /// console answers only on a loopback listener.
    pub token: Option<SecretString>,
}

/// The OpenClaw gateway connection.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// The gateway's `gateway.auth.token`.
    pub token: Option<SecretString>,
    /// The agent that answers (`main`).
    pub agent_id: String,
    /// How long one agent run may take before the message is retried.
    pub agent_timeout: Duration,
}

/// State and listener.
#[derive(Clone)]
pub struct BridgeSettings {
    /// Directory for the SQLite file, the device key and the master key file.
    pub state_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The one HTTP listener (webhooks, health, metrics).
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// `CLAWBRIDGE_MASTER_KEY`, when set (else `master.key` in the state dir).
    pub master_key: Option<SecretString>,
    /// How long finished rows (and with them the deduplication of their messages) are kept.
    pub retention: Duration,
    /// `CLAWBRIDGE_PUBLIC_URL` (`bridge.public_url`): the https base at which the internet
    /// reaches the listener (the webhook `clawbridge setup whatsapp` registers and the tracked
    /// campaign links are under it),
    /// without a trailing slash. Channels that need it (the dealers' report URLs) are handed this
    /// value as `CLAWBRIDGE_PUBLIC_URL` when their settings load.
    pub public_url: Option<String>,
    /// How long the public listener waits for a client (slow or stalled clients are cut off).
    pub limits: ListenerLimits,
}

/// The database URL is shown without its passwords (a `Config` may be logged or printed).
impl std::fmt::Debug for BridgeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeSettings")
            .field("state_dir", &self.state_dir)
            .field("database_url", &clawbridge_store::redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("log_format", &self.log_format)
            .field("master_key", &self.master_key)
            .field("retention", &self.retention)
            .field("public_url", &self.public_url)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The public listener's limits against slow and flooding clients (slowloris).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A request's headers must arrive within this (`CLAWBRIDGE_HEADER_TIMEOUT_SECS`, 10 s).
    pub header_read: Duration,
    /// A whole request, body and answer included, within this; else 408
    /// (`CLAWBRIDGE_REQUEST_TIMEOUT_SECS`, 30 s: the longest handler, Kakao's, answers in 5 s).
    pub request: Duration,
    /// Connections served at once; further clients wait in the kernel's backlog
    /// (`CLAWBRIDGE_MAX_CONNECTIONS`, 512: half the usual 1024 file descriptors, the rest left
    /// for the store, the gateway and outbound calls).
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), request: Duration::from_secs(30), max_connections: 512 }
    }
}

/// The shortest retention: a finished inbox row is the deduplication record of its message, so it
/// must outlive every platform's webhook retries (Kapso retries for hours, Kakao for seconds).
pub const MIN_RETENTION_DAYS: u64 = 2;

/// The inbound pipeline.
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    /// Conversations handled at once (one lane per peer; this bounds the lanes).
    pub concurrency: usize,
    /// Parallel sends of the outbox.
    pub send_concurrency: usize,
    /// How long shutdown waits for in-flight work before handing it back to the queue.
    pub drain_timeout: Duration,
    /// Attempts at an inbound message (agent runs) before it becomes a dead letter.
    pub max_attempts: u32,
    /// Attempts at a send before it becomes a dead letter.
    pub max_send_attempts: u32,
    /// Sent to the user when the agent fails for good, so nobody waits forever.
    pub error_reply: String,
    /// Sent to a sender when the owner approves their pairing code. Empty: send nothing.
    pub approved_reply: String,
    /// Sent (at most hourly per sender) to a sender that the `allowlist` policy refuses. Empty: send nothing.
    pub deny_reply: String,
}

/// Retry schedules: `[retry]` and `[retry.http]`, in the KakaoTalk design seed's `RetryPolicy`
/// names (`maxAttempts`, `initialDelayMs`, `maxDelayMs`, `backoffMultiplier`, plus
/// `maxRetryAfterMs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySettings {
    /// Durable retries, stored as the row's next attempt time: outbox sends (`maxAttempts` is
    /// `pipeline.max_send_attempts`) and, with `pipeline.max_attempts`, inbox agent runs.
    /// Default [`RetryPolicy::DURABLE`].
    pub queue: RetryPolicy,
    /// In-process retries of one API call while its caller waits (`[retry.http]`): the Kakao Talk
    /// API and `clawbridge whatsapp send`. Default [`RetryPolicy::IN_PROCESS`].
    pub http: RetryPolicy,
}

/// Any of a policy's settings; the rest keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilePolicy {
    max_attempts: Option<u32>,
    initial_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    backoff_multiplier: Option<f64>,
    max_retry_after_ms: Option<u64>,
}

impl FilePolicy {
    fn parse(table: toml::Table, name: &str) -> Result<Self, ConfigError> {
        toml::Value::Table(table).try_into().map_err(|e| ConfigError(format!("[{name}]: {e}")))
    }

    fn over(self, base: RetryPolicy, name: &str) -> Result<RetryPolicy, ConfigError> {
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_delay_ms: self.initial_delay_ms.unwrap_or(base.initial_delay_ms),
            max_delay_ms: self.max_delay_ms.unwrap_or(base.max_delay_ms),
            backoff_multiplier: self.backoff_multiplier.unwrap_or(base.backoff_multiplier),
            max_retry_after_ms: self.max_retry_after_ms.unwrap_or(base.max_retry_after_ms),
        };
        policy.validate().map_err(|e| ConfigError(format!("[{name}] {e}")))?;
        Ok(policy)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    gateway: FileGateway,
    #[serde(default)]
    bridge: FileBridge,
    #[serde(default)]
    pipeline: FilePipeline,
    /// `[retry]` with its `[retry.http]` table.
    retry: Option<toml::Table>,
    /// `[tools]` with its `[tools.<tool>]` tables.
    tools: Option<toml::Table>,
    #[serde(default)]
    console: FileConsole,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConsole {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGateway {
    url: Option<String>,
    token: Option<String>,
    agent_id: Option<String>,
    agent_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBridge {
    state_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    log_format: Option<String>,
    retention_days: Option<u64>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePipeline {
    concurrency: Option<usize>,
    send_concurrency: Option<usize>,
    drain_timeout_secs: Option<u64>,
    max_attempts: Option<u32>,
    max_send_attempts: Option<u32>,
    error_reply: Option<String>,
    deny_reply: Option<String>,
    approved_reply: Option<String>,
}

/// Default gateway URL (OpenClaw's default port on loopback).
pub const DEFAULT_GATEWAY_URL: &str = "ws://127.0.0.1:18789";
/// Default listener, the Go bridge's `:18790`.
pub const DEFAULT_LISTEN: &str = ":18790";

impl Config {
    /// Loads from the process environment and the file named by `--config` or `CLAWBRIDGE_CONFIG`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting and the fix.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &|name| std::env::var(name).ok())
    }

    /// Loads with an injectable environment (tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting and the fix.
    pub fn load_with(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::load_with_plugins(path, env, &crate::channels::plugins())
    }

    /// What `clawbridge setup <channel>` (and `clawbridge <channel> setup`) runs with: the
    /// bridge's own settings and every other channel as [`load`](Self::load) reads them, but not
    /// `channel`'s settings — incomplete until setup completes them; its command reads its table
    /// itself — and a file that does not exist yet is one setup will create.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting and the fix.
    pub fn load_for_setup(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        plugins: &PluginSet,
        channel: &str,
    ) -> Result<Self, ConfigError> {
        let others = plugins.iter().filter(|p| p.id() != channel).fold(PluginSet::default(), PluginSet::with);
        let source = path.map(Path::to_path_buf).or_else(|| env("CLAWBRIDGE_CONFIG").map(PathBuf::from));
        let missing = source.as_deref().is_some_and(|p| !p.exists());
        // The channel's table is the channel's to read: hand it over without it.
        let mut config = if missing {
            let without_file = |name: &str| if name == "CLAWBRIDGE_CONFIG" { None } else { env(name) };
            Self::load_inner(None, &without_file, &others, None)?
        } else {
            Self::load_inner(source.as_deref(), env, &others, Some(channel))?
        };
        config.source = source;
        Ok(config)
    }

    /// Loads with an injectable environment and the channels `plugins` registers (tests add
    /// their own channel this way).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting and the fix.
    pub fn load_with_plugins(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        plugins: &PluginSet,
    ) -> Result<Self, ConfigError> {
        Self::load_inner(path, env, plugins, None)
    }

    /// `set_aside`: a channel table the file may have that no plugin in `plugins` reads (the
    /// channel being set up).
    fn load_inner(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        plugins: &PluginSet,
        set_aside: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let source = path.map(Path::to_path_buf).or_else(|| env("CLAWBRIDGE_CONFIG").map(PathBuf::from));
        let (file, channel_tables) = match &source {
            Some(path) => read_file(path, plugins, set_aside)?,
            None => (FileConfig::default(), BTreeMap::new()),
        };

        let url = env("OPENCLAW_GATEWAY_URL").or(file.gateway.url).unwrap_or_else(|| DEFAULT_GATEWAY_URL.to_owned());
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(ConfigError(format!(
                "OPENCLAW_GATEWAY_URL (gateway.url) is {url:?}: it must be a ws:// or wss:// URL, e.g. {DEFAULT_GATEWAY_URL}"
            )));
        }
        let token = env("OPENCLAW_TOKEN").or(file.gateway.token);
        if token.as_deref().is_some_and(|t| t.trim() == "__OPENCLAW_REDACTED__") {
            return Err(ConfigError(
                "OPENCLAW_TOKEN (gateway.token) is `__OPENCLAW_REDACTED__`, the mask `openclaw config get` prints \
                 instead of the token: run `openclaw gateway auth-token --show` in a terminal on the gateway host \
                 and set OPENCLAW_TOKEN to what it prints"
                    .to_owned(),
            ));
        }
        let token = token.map(SecretString::from);
        let agent_id = env("OPENCLAW_AGENT_ID").or(file.gateway.agent_id).unwrap_or_else(|| "main".to_owned());
        if agent_id.is_empty() || agent_id.contains(':') {
            return Err(ConfigError(format!(
                "OPENCLAW_AGENT_ID (gateway.agent_id) {agent_id:?} is not an agent id: use the id shown by `openclaw agents list`, e.g. main"
            )));
        }
        let agent_timeout = Duration::from_secs(
            parse_env::<u64>(&env, "CLAWBRIDGE_AGENT_TIMEOUT_SECS")?.or(file.gateway.agent_timeout_secs).unwrap_or(600),
        );

        let state_dir = env("CLAWBRIDGE_STATE_DIR")
            .or_else(|| env("KAPSO_STATE_DIR"))
            .map(PathBuf::from)
            .or(file.bridge.state_dir)
            .map_or_else(|| default_state_dir(&env), Ok)?;
        let database_url = env("CLAWBRIDGE_DATABASE_URL")
            .or(file.bridge.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", state_dir.join("clawbridge.db").display()));
        let listen_raw = env("CLAWBRIDGE_LISTEN")
            .or_else(|| env("KAPSO_WEBHOOK_ADDR"))
            .or(file.bridge.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = parse_listen(&listen_raw)?;
        let log_format = match env("CLAWBRIDGE_LOG_FORMAT").or(file.bridge.log_format).as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "CLAWBRIDGE_LOG_FORMAT (bridge.log_format) is {other:?}: use pretty or json"
                )));
            }
        };
        let master_key = env("CLAWBRIDGE_MASTER_KEY").map(SecretString::from);
        let retention_days =
            parse_env::<u64>(&env, "CLAWBRIDGE_RETENTION_DAYS")?.or(file.bridge.retention_days).unwrap_or(7);
        if retention_days < MIN_RETENTION_DAYS {
            return Err(ConfigError(format!(
                "CLAWBRIDGE_RETENTION_DAYS (bridge.retention_days) is {retention_days}: keep finished messages at least \
                 {MIN_RETENTION_DAYS} days, or a platform's late webhook retry would be taken as a new message"
            )));
        }
        let retention = Duration::from_secs(retention_days * 86_400);
        let public_url = env("CLAWBRIDGE_PUBLIC_URL").or(file.bridge.public_url).filter(|u| !u.trim().is_empty());
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "CLAWBRIDGE_PUBLIC_URL (bridge.public_url) is {url:?}: give the https base the bridge is reached at, \
                 e.g. https://bridge.example.com"
            )));
        }
        let public_url = public_url.map(|u| u.trim().trim_end_matches('/').to_owned());
        let defaults = ListenerLimits::default();
        let seconds = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            match parse_env::<f64>(&env, name)? {
                None => Ok(default),
                Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 3_600.0 => Ok(Duration::from_secs_f64(secs)),
                Some(secs) => Err(ConfigError(format!("{name} is {secs}: give seconds between 0 and 3600, e.g. 10"))),
            }
        };
        let limits = ListenerLimits {
            header_read: seconds("CLAWBRIDGE_HEADER_TIMEOUT_SECS", defaults.header_read)?,
            request: seconds("CLAWBRIDGE_REQUEST_TIMEOUT_SECS", defaults.request)?,
            max_connections: positive(
                "CLAWBRIDGE_MAX_CONNECTIONS",
                parse_env(&env, "CLAWBRIDGE_MAX_CONNECTIONS")?,
                defaults.max_connections,
            )?,
        };

        let mut retry_table = file.retry.unwrap_or_default();
        let http_table = match retry_table.remove("http") {
            Some(toml::Value::Table(table)) => table,
            Some(_) => return Err(ConfigError("[retry] http must be a table: [retry.http]".to_owned())),
            None => toml::Table::new(),
        };
        let queue_file = FilePolicy::parse(retry_table, "retry")?;
        let p = file.pipeline;
        // retry.maxAttempts is the seed's name of pipeline.max_send_attempts.
        let send_attempts = match (p.max_send_attempts, queue_file.max_attempts) {
            (Some(pipeline), Some(retry)) if pipeline != retry => {
                return Err(ConfigError(format!(
                    "pipeline.max_send_attempts ({pipeline}) and retry.maxAttempts ({retry}) are the same setting: keep one"
                )));
            }
            (pipeline, retry) => pipeline.or(retry),
        };
        let pipeline = PipelineSettings {
            concurrency: positive(
                "CLAWBRIDGE_CONCURRENCY",
                parse_env(&env, "CLAWBRIDGE_CONCURRENCY")?.or(p.concurrency),
                16,
            )?,
            send_concurrency: positive("pipeline.send_concurrency", p.send_concurrency, 8)?,
            drain_timeout: Duration::from_secs(
                parse_env::<u64>(&env, "CLAWBRIDGE_DRAIN_TIMEOUT_SECS")?.or(p.drain_timeout_secs).unwrap_or(20),
            ),
            max_attempts: positive("pipeline.max_attempts", p.max_attempts, 5)?,
            max_send_attempts: positive("pipeline.max_send_attempts", send_attempts, 10)?,
            error_reply: p.error_reply.unwrap_or_else(|| {
                "Sorry, I could not answer that just now. Please try again in a little while.".to_owned()
            }),
            // The Go bridge's name for it, so its users keep their environment.
            deny_reply: env("KAPSO_DENY_MESSAGE").or(p.deny_reply).unwrap_or_default(),
            approved_reply: p.approved_reply.unwrap_or_else(|| {
                "You have been approved. Send a message any time to talk with the assistant.".to_owned()
            }),
        };

        // The public address is the bridge's setting; a channel that needs it (the dealers'
        // report URLs) reads it under its environment name, whether it came from there or the file.
        let channel_env = |name: &str| match name {
            "CLAWBRIDGE_PUBLIC_URL" => public_url.clone(),
            _ => env(name),
        };
        let channels = plugins.load_all(&channel_tables, &channel_env).map_err(ConfigError)?;
        let tools = crate::tools::settings::ToolsSettings::load(file.tools, &env)?;
        let retry = RetrySettings {
            queue: FilePolicy { max_attempts: Some(pipeline.max_send_attempts), ..queue_file }
                .over(RetryPolicy::DURABLE, "retry")?,
            http: FilePolicy::parse(http_table, "retry.http")?.over(RetryPolicy::IN_PROCESS, "retry.http")?,
        };

        let console = ConsoleSettings {
            token: env("CLAWBRIDGE_CONSOLE_TOKEN")
                .or(file.console.token)
                .filter(|t| !t.trim().is_empty())
                .map(SecretString::from),
        };

        Ok(Self {
            gateway: GatewaySettings { url, token, agent_id, agent_timeout },
            bridge: BridgeSettings {
                state_dir,
                database_url,
                listen,
                log_format,
                master_key,
                retention,
                public_url,
                limits,
            },
            pipeline,
            channels,
            retry,
            tools,
            console,
            source,
        })
    }

    /// The settings of channel `id` as their concrete type, when that channel is configured.
    pub fn channel<T: 'static>(&self, id: &str) -> Option<&T> {
        self.channels
            .iter()
            .find(|(channel, _)| *channel == id)
            .and_then(|(_, settings)| settings.as_any().downcast_ref())
    }

    /// Replaces (`Some`) or removes (`None`) the settings of channel `id`.
    pub fn set_channel(&mut self, id: &'static str, settings: Option<Arc<dyn ChannelSettings>>) {
        self.channels.retain(|(channel, _)| *channel != id);
        if let Some(settings) = settings {
            self.channels.push((id, settings));
        }
    }

    /// WhatsApp through Kapso (`[whatsapp]`, `KAPSO_*`); `None` when not configured.
    pub fn whatsapp(&self) -> Option<&clawbridge_whatsapp::WhatsAppConfig> {
        self.channel(clawbridge_whatsapp::WhatsAppPlugin.id())
    }

    /// Changes the WhatsApp settings (command-line overrides); nothing when WhatsApp is not configured.
    pub fn update_whatsapp(&mut self, change: impl FnOnce(&mut clawbridge_whatsapp::WhatsAppConfig)) {
        if let Some(mut whatsapp) = self.whatsapp().cloned() {
            change(&mut whatsapp);
            self.set_channel(clawbridge_whatsapp::WhatsAppPlugin.id(), Some(Arc::new(whatsapp)));
        }
    }

    /// The gateway token, or the error that tells the operator where to find it.
    ///
    /// # Errors
    /// When `OPENCLAW_TOKEN` is not set.
    pub fn require_token(&self) -> Result<&SecretString, ConfigError> {
        self.gateway.token.as_ref().ok_or_else(|| {
            ConfigError(
                "OPENCLAW_TOKEN is not set: set it (or gateway.token in the config file) to the gateway's \
                 auth token, shown by `openclaw gateway auth-token --show` in a terminal on the gateway host"
                    .to_owned(),
            )
        })
    }

    /// Where the gateway device key lives.
    pub fn device_key_path(&self) -> PathBuf {
        self.bridge.state_dir.join("device.key")
    }

    /// Creates the state dir (0700) and proves it is writable.
    ///
    /// # Errors
    /// Names the directory, `CLAWBRIDGE_STATE_DIR` and the fix.
    pub fn ensure_state_dir(&self) -> Result<(), ConfigError> {
        let dir = &self.bridge.state_dir;
        let fail = |what: &str, e: std::io::Error| {
            ConfigError(format!(
                "state dir {}: {what}: {e}. Set CLAWBRIDGE_STATE_DIR to a directory this user can write, or fix its permissions",
                dir.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create it", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir).map_err(|e| fail("cannot read it", e))?;
            if meta.permissions().mode() & 0o077 != 0 {
                // Keys and the database live here: keep them private where we created the dir.
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(|e| fail("not writable", e))?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }
}

/// The bridge's own top-level tables (the fields of `FileConfig`).
const BRIDGE_SECTIONS: &[&str] = &["gateway", "bridge", "pipeline", "retry", "tools", "console"];

/// The bridge's own sections, and the channel tables (`[whatsapp]`, `[kakao]`) that the registered
/// plugins read themselves.
fn read_file(
    path: &Path,
    plugins: &PluginSet,
    set_aside: Option<&str>,
) -> Result<(FileConfig, BTreeMap<String, toml::Table>), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: {e}. Check --config / CLAWBRIDGE_CONFIG", path.display())))?;
    let bad = |e: &dyn std::fmt::Display| ConfigError(format!("config file {}: {e}", path.display()));
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(&e))?;
    if let Some(channel) = set_aside {
        table.remove(channel);
    }
    let mut channels = BTreeMap::new();
    for plugin in plugins.iter() {
        match table.remove(plugin.id()) {
            Some(toml::Value::Table(section)) => {
                channels.insert(plugin.id().to_owned(), section);
            }
            Some(_) => return Err(bad(&format!("[{}] must be a table", plugin.id()))),
            None => {}
        }
    }
    if let Some(unknown) = table.keys().find(|key| !BRIDGE_SECTIONS.contains(&key.as_str())) {
        let channels: Vec<&str> = plugins.iter().map(|p| p.id()).collect();
        return Err(bad(&format!(
            "unknown section [{unknown}]: the sections are {} and the channels {}",
            BRIDGE_SECTIONS.join(", "),
            channels.join(", ")
        )));
    }
    let file = FileConfig::deserialize(toml::Value::Table(table)).map_err(|e| bad(&e))?;
    Ok((file, channels))
}

fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(xdg) = env("XDG_STATE_HOME") {
        return Ok(PathBuf::from(xdg).join("clawbridge"));
    }
    env("HOME").map(|home| PathBuf::from(home).join(".local/state/clawbridge")).ok_or_else(|| {
        ConfigError(
            "neither CLAWBRIDGE_STATE_DIR nor HOME is set: set CLAWBRIDGE_STATE_DIR to a writable directory".to_owned(),
        )
    })
}

/// Parses `:18790`, `18790`, `0.0.0.0:18790`, `127.0.0.1:18790` or `[::1]:18790`.
fn parse_listen(raw: &str) -> Result<SocketAddr, ConfigError> {
    let raw = raw.trim();
    let candidate = if let Some(port) = raw.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if raw.chars().all(|c| c.is_ascii_digit()) {
        format!("0.0.0.0:{raw}")
    } else {
        raw.to_owned()
    };
    candidate.parse().map_err(|_| {
        ConfigError(format!(
            "CLAWBRIDGE_LISTEN (or KAPSO_WEBHOOK_ADDR, bridge.listen) is {raw:?}: use HOST:PORT such as 127.0.0.1:18790, or :18790 for all interfaces"
        ))
    })
}

fn parse_env<T: std::str::FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<T>, ConfigError> {
    env(name)
        .map(|v| v.trim().parse::<T>().map_err(|_| ConfigError(format!("{name} is {v:?}: expected a whole number"))))
        .transpose()
}

fn positive<T: PartialOrd + Default + Copy>(name: &str, value: Option<T>, default: T) -> Result<T, ConfigError> {
    match value {
        Some(v) if v <= T::default() => Err(ConfigError(format!("{name} must be at least 1"))),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = file.map(|text| {
            let p = dir.path().join("clawbridge.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        Config::load_with(path.as_deref(), &|k| map.get(k).cloned())
    }

    #[test]
    fn the_debug_form_shows_no_database_password() {
        let cfg = load(
            &[("HOME", "/h"), ("CLAWBRIDGE_DATABASE_URL", "postgres://app:hunter2@db/app?password=hunter3")],
            None,
        )
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/app"), "{shown}");
    }

    #[test]
    fn defaults_need_only_home() {
        let cfg = load(&[("HOME", "/home/u")], None).unwrap();
        assert_eq!(cfg.gateway.url, DEFAULT_GATEWAY_URL);
        assert_eq!(cfg.gateway.agent_id, "main");
        assert_eq!(cfg.bridge.state_dir, PathBuf::from("/home/u/.local/state/clawbridge"));
        assert_eq!(cfg.bridge.database_url, "sqlite:///home/u/.local/state/clawbridge/clawbridge.db");
        assert_eq!(cfg.bridge.listen, "0.0.0.0:18790".parse().unwrap());
        assert!(cfg.require_token().unwrap_err().to_string().contains("OPENCLAW_TOKEN"));
    }

    #[test]
    fn the_console_token_comes_from_the_environment_or_the_file() {
        use secrecy::ExposeSecret as _;
        let token = |cfg: Config| cfg.console.token.map(|t| t.expose_secret().to_owned());
        assert_eq!(token(load(&[("HOME", "/h")], None).unwrap()), None);
        let file = Some("[console]\ntoken = \"from-file\"\n");
        assert_eq!(token(load(&[("HOME", "/h")], file).unwrap()).as_deref(), Some("from-file"));
        let both = load(&[("HOME", "/h"), ("CLAWBRIDGE_CONSOLE_TOKEN", "from-env")], file).unwrap();
        assert_eq!(token(both).as_deref(), Some("from-env"));
        let blank = load(&[("HOME", "/h")], Some("[console]\ntoken = \"  \"\n")).unwrap();
        assert_eq!(token(blank), None, "a blank token is no token");
    }

    #[test]
    fn the_masked_token_openclaw_config_get_prints_is_refused_with_the_command_that_shows_it() {
        let err = load(&[("HOME", "/h"), ("OPENCLAW_TOKEN", "__OPENCLAW_REDACTED__")], None).unwrap_err().to_string();
        assert!(err.contains("OPENCLAW_TOKEN") && err.contains("openclaw gateway auth-token --show"), "{err}");
    }

    #[test]
    fn retention_is_a_week_unless_set_and_never_shorter_than_platform_retries() {
        assert_eq!(load(&[("HOME", "/h")], None).unwrap().bridge.retention, Duration::from_secs(7 * 86_400));
        let cfg = load(&[("HOME", "/h")], Some("[bridge]\nretention_days = 30\n")).unwrap();
        assert_eq!(cfg.bridge.retention, Duration::from_secs(30 * 86_400));
        let cfg = load(&[("HOME", "/h"), ("CLAWBRIDGE_RETENTION_DAYS", "3")], Some("[bridge]\nretention_days = 30\n"));
        assert_eq!(cfg.unwrap().bridge.retention, Duration::from_secs(3 * 86_400));
        let short = load(&[("HOME", "/h"), ("CLAWBRIDGE_RETENTION_DAYS", "1")], None).unwrap_err().to_string();
        assert!(
            short.contains("CLAWBRIDGE_RETENTION_DAYS (bridge.retention_days)") && short.contains("at least 2"),
            "{short}"
        );
    }

    #[test]
    fn environment_wins_over_the_file() {
        let file = "[gateway]\nurl = \"ws://10.0.0.1:1\"\ntoken = \"file-token\"\n[bridge]\nlisten = \"127.0.0.1:9\"\n";
        let cfg = load(
            &[
                ("HOME", "/h"),
                ("OPENCLAW_TOKEN", "env-token"),
                ("KAPSO_WEBHOOK_ADDR", ":7000"),
                ("KAPSO_STATE_DIR", "/s"),
            ],
            Some(file),
        )
        .unwrap();
        assert_eq!(cfg.gateway.url, "ws://10.0.0.1:1");
        assert_eq!(cfg.require_token().unwrap().expose_secret(), "env-token");
        assert_eq!(cfg.bridge.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(cfg.bridge.state_dir, PathBuf::from("/s"));
    }

    #[test]
    fn the_go_bridge_deny_message_is_the_deny_reply() {
        let cfg = load(&[("HOME", "/h"), ("KAPSO_DENY_MESSAGE", "Not allowed.")], None).unwrap();
        assert_eq!(cfg.pipeline.deny_reply, "Not allowed.");
        let file = "[pipeline]\ndeny_reply = \"from the file\"\n";
        assert_eq!(load(&[("HOME", "/h")], Some(file)).unwrap().pipeline.deny_reply, "from the file");
    }

    #[test]
    fn mistakes_name_the_setting() {
        let err = load(&[("HOME", "/h"), ("OPENCLAW_GATEWAY_URL", "http://x")], None).unwrap_err();
        assert!(err.to_string().contains("OPENCLAW_GATEWAY_URL"), "{err}");
        let err = load(&[("HOME", "/h"), ("CLAWBRIDGE_LISTEN", "nowhere")], None).unwrap_err();
        assert!(err.to_string().contains("CLAWBRIDGE_LISTEN"), "{err}");
        let err = load(&[("HOME", "/h")], Some("[gateway]\nurll = 1\n")).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
        let err = load(&[("HOME", "/h"), ("CLAWBRIDGE_CONCURRENCY", "0")], None).unwrap_err();
        assert!(err.to_string().contains("CLAWBRIDGE_CONCURRENCY"), "{err}");
    }

    #[test]
    fn retry_policies_read_the_seed_names() {
        let cfg = load(&[("HOME", "/h")], None).unwrap();
        assert_eq!(cfg.retry.queue, RetryPolicy::DURABLE);
        assert_eq!(cfg.retry.http, RetryPolicy::IN_PROCESS);
        let file = "[retry]\nmaxAttempts = 6\ninitialDelayMs = 2000\nbackoffMultiplier = 3\n\
                    [retry.http]\nmaxAttempts = 2\nmaxDelayMs = 1000\n";
        let cfg = load(&[("HOME", "/h")], Some(file)).unwrap();
        assert_eq!(
            cfg.retry.queue,
            RetryPolicy { max_attempts: 6, initial_delay_ms: 2_000, backoff_multiplier: 3.0, ..RetryPolicy::DURABLE }
        );
        assert_eq!(cfg.pipeline.max_send_attempts, 6, "one setting under two names");
        assert_eq!(cfg.retry.http, RetryPolicy { max_attempts: 2, max_delay_ms: 1_000, ..RetryPolicy::IN_PROCESS });
        let old_name = load(&[("HOME", "/h")], Some("[pipeline]\nmax_send_attempts = 4\n")).unwrap();
        assert_eq!(old_name.retry.queue.max_attempts, 4);
        for (file, named) in [
            ("[pipeline]\nmax_send_attempts = 4\n[retry]\nmaxAttempts = 5\n", "retry.maxAttempts"),
            ("[retry]\nretryableErrors = [429]\n", "retryableErrors"),
            ("[retry.http]\nbackoffMultiplier = 0.5\n", "retry.http"),
            ("[retry]\nmaxAttempts = 0\n", "max_send_attempts"),
        ] {
            let err = load(&[("HOME", "/h")], Some(file)).unwrap_err().to_string();
            assert!(err.contains(named), "{file}: {err}");
        }
    }

    #[test]
    fn the_public_url_is_read_and_checked() {
        let cfg = load(&[("HOME", "/h"), ("CLAWBRIDGE_PUBLIC_URL", "https://bridge.example/")], None).unwrap();
        assert_eq!(cfg.bridge.public_url.as_deref(), Some("https://bridge.example"));
        let cfg = load(&[("HOME", "/h")], Some("[bridge]\npublic_url = \"https://b.example\"\n")).unwrap();
        assert_eq!(cfg.bridge.public_url.as_deref(), Some("https://b.example"));
        assert!(load(&[("HOME", "/h")], None).unwrap().bridge.public_url.is_none());
        let err = load(&[("HOME", "/h"), ("CLAWBRIDGE_PUBLIC_URL", "bridge.example")], None).unwrap_err();
        assert!(err.to_string().contains("CLAWBRIDGE_PUBLIC_URL (bridge.public_url)"), "{err}");
    }

    #[test]
    fn setup_loads_without_the_channel_it_completes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clawbridge.toml");
        std::fs::write(&path, "# mine\n[whatsapp]\nmode = \"domain\"\n[gateway]\nagent_id = \"ops\"\n").unwrap();
        let vars: HashMap<&str, &str> = HashMap::from([("HOME", "/h"), ("KAPSO_API_KEY", "k")]);
        let env = |k: &str| vars.get(k).map(|v| (*v).to_owned());
        let plugins = crate::channels::plugins();
        let err = Config::load_with(Some(&path), &env).unwrap_err();
        assert!(err.to_string().contains("KAPSO_PHONE_NUMBER_ID"), "serve needs the number: {err}");
        let cfg = Config::load_for_setup(Some(&path), &env, &plugins, "whatsapp").unwrap();
        assert!(cfg.whatsapp().is_none(), "the channel's own setup reads its table");
        assert_eq!((cfg.gateway.agent_id.as_str(), cfg.source.as_deref()), ("ops", Some(path.as_path())));
        // A file setup is about to create.
        let new = dir.path().join("new.toml");
        let cfg = Config::load_for_setup(Some(&new), &env, &plugins, "whatsapp").unwrap();
        assert_eq!(cfg.source.as_deref(), Some(new.as_path()));
        // Other channels are still checked.
        std::fs::write(&path, "[kakao]\nbogus = 1\n").unwrap();
        assert!(Config::load_for_setup(Some(&path), &env, &plugins, "whatsapp").is_err());
    }

    #[test]
    fn unwritable_state_dir_is_reported_with_the_fix() {
        let cfg = load(&[("HOME", "/h"), ("CLAWBRIDGE_STATE_DIR", "/proc/clawbridge-test")], None).unwrap();
        let err = cfg.ensure_state_dir().unwrap_err().to_string();
        assert!(err.contains("/proc/clawbridge-test") && err.contains("CLAWBRIDGE_STATE_DIR"), "{err}");
    }
}
