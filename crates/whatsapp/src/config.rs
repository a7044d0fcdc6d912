//! `[whatsapp]` settings and the Go bridge's `KAPSO_*` variables (DESIGN.md §6).
//!
//! The environment configures the `default` account (`KAPSO_API_KEY`, `KAPSO_PHONE_NUMBER_ID`);
//! more phone numbers go in `[whatsapp.accounts.<id>]` tables. Every scalar of the table has an
//! environment variable, and the environment wins.

use clawbridge_core::AccountId;
use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use secrecy::SecretString;
use std::time::Duration;

/// Default Kapso host (the Meta proxy lives under `/meta/whatsapp/<version>`).
pub const DEFAULT_BASE_URL: &str = "https://api.kapso.ai";
/// Default Graph API version of the Meta proxy.
pub const DEFAULT_GRAPH_VERSION: &str = "v24.0";
/// Default poll interval of the Go bridge.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest poll interval accepted (Kapso rate limits apply to polling too).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Kapso's legacy/free plan limit: requests per minute per API key.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 100;
/// Largest inbound media file downloaded (WhatsApp's video/audio limit).
pub const DEFAULT_MEDIA_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Hosts (and their subdomains) media is downloaded from.
pub const DEFAULT_MEDIA_HOSTS: [&str; 3] = ["kapso.ai", "whatsapp.net", "fbcdn.net"];

/// The namespace of WhatsApp's secrets in the store (`clawbridge setup whatsapp` keeps them).
pub const SECRETS_NAMESPACE: &str = "whatsapp";
/// The stored webhook secret's name: `serve` signs-checks with it when `KAPSO_WEBHOOK_SECRET`
/// (`whatsapp.webhook_secret`) is not set.
pub const STORED_WEBHOOK_SECRET: &str = "webhook_secret";

/// How webhooks reach the bridge (`KAPSO_MODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// No public endpoint: the bridge polls Kapso's message history.
    #[default]
    Polling,
    /// Webhook exposed through `tailscale funnel`.
    Tailscale,
    /// Webhook behind the operator's own HTTPS reverse proxy.
    Domain,
}

impl DeliveryMode {
    /// The name used in `KAPSO_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Polling => "polling",
            Self::Tailscale => "tailscale",
            Self::Domain => "domain",
        }
    }

    /// Whether this mode receives webhooks from the internet.
    pub fn is_public_webhook(self) -> bool {
        !matches!(self, Self::Polling)
    }
}

/// One WhatsApp phone number served through Kapso.
#[derive(Clone, Debug)]
pub struct AccountConfig {
    /// The account id (`default` for the one configured by `KAPSO_*`).
    pub id: AccountId,
    /// Kapso's phone number id (`KAPSO_PHONE_NUMBER_ID`).
    pub phone_number_id: String,
    /// The project API key (`KAPSO_API_KEY`), sent as `X-API-Key`.
    pub api_key: SecretString,
    /// Who may talk to the agent through this number.
    pub access: AccessPolicy,
}

/// The validated WhatsApp settings.
#[derive(Clone, Debug)]
pub struct WhatsAppConfig {
    /// The phone numbers, the `default` one first when configured.
    pub accounts: Vec<AccountConfig>,
    /// Kapso host (`KAPSO_BASE_URL`), without a trailing slash.
    pub base_url: String,
    /// Graph API version of the Meta proxy (`KAPSO_GRAPH_VERSION`).
    pub graph_version: String,
    /// How webhooks arrive (`KAPSO_MODE`).
    pub mode: DeliveryMode,
    /// Time between polls (`KAPSO_POLL_INTERVAL`, seconds, at least 5).
    pub poll_interval: Duration,
    /// Also poll in a webhook mode (`KAPSO_POLL_FALLBACK`), so a missed webhook is still answered.
    pub poll_fallback: bool,
    /// How far back each poll looks before the stored cursor (`KAPSO_POLL_OVERLAP`), so that
    /// messages committed late or in the same second are never skipped; dedup keeps them single.
    pub poll_overlap: Duration,
    /// Meta's `hub.verify_token` for the GET handshake (`KAPSO_WEBHOOK_VERIFY_TOKEN`).
    pub webhook_verify_token: Option<SecretString>,
    /// The Kapso webhook `secret_key` / Meta app secret (`KAPSO_WEBHOOK_SECRET`), or the one
    /// `clawbridge setup whatsapp` stored ([`webhook_secret_stored`](Self::webhook_secret_stored)).
    pub webhook_secret: Option<SecretString>,
    /// The secret is the one setup stored encrypted, read when the daemon starts (no
    /// `KAPSO_WEBHOOK_SECRET` is set).
    pub webhook_secret_stored: bool,
    /// Explicit override: accept unsigned webhooks in a public mode (`KAPSO_ALLOW_UNSIGNED_WEBHOOKS`,
    /// alias `KAPSO_INSECURE_NO_SIGNATURE`, or `serve --insecure-no-signature`).
    pub allow_unsigned_webhooks: bool,
    /// Requests per minute per API key (`KAPSO_API_RATE_LIMIT`); bursts queue instead of failing.
    pub rate_limit_per_minute: u32,
    /// Timeout of every Kapso API call (`KAPSO_HTTP_TIMEOUT`, seconds).
    pub http_timeout: Duration,
    /// Largest inbound media downloaded (`KAPSO_MEDIA_MAX_BYTES`).
    pub media_max_bytes: u64,
    /// Hosts media may be downloaded from, subdomains included (`KAPSO_MEDIA_HOSTS`).
    pub media_hosts: Vec<String>,
    /// Mark messages read with a typing indicator while the agent works (`KAPSO_TYPING`).
    pub typing_indicator: bool,
    /// The `tailscale` CLI and funnel port for `KAPSO_MODE=tailscale` (wa-edge's module).
    pub tailscale: crate::tailscale::TailscaleSettings,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            accounts: Vec::new(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            graph_version: DEFAULT_GRAPH_VERSION.to_owned(),
            mode: DeliveryMode::Polling,
            poll_interval: DEFAULT_POLL_INTERVAL,
            poll_fallback: false,
            poll_overlap: Duration::from_secs(120),
            webhook_verify_token: None,
            webhook_secret: None,
            webhook_secret_stored: false,
            allow_unsigned_webhooks: false,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            http_timeout: Duration::from_secs(30),
            media_max_bytes: DEFAULT_MEDIA_MAX_BYTES,
            media_hosts: DEFAULT_MEDIA_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            typing_indicator: true,
            tailscale: crate::tailscale::TailscaleSettings::default(),
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "api_key",
    "phone_number_id",
    "base_url",
    "graph_version",
    "mode",
    "poll_interval_secs",
    "poll_fallback",
    "poll_overlap_secs",
    "webhook_verify_token",
    "webhook_secret",
    "allow_unsigned_webhooks",
    "dm_policy",
    "allow_from",
    "rate_limit_per_minute",
    "http_timeout_secs",
    "media_max_bytes",
    "media_hosts",
    "typing_indicator",
    "accounts",
    "tailscale_bin",
    "tailscale_funnel_port",
];
/// Go-bridge variables without a direct equivalent, and what to use instead (logged at start).
const GO_BRIDGE_ONLY: &[(&str, &str)] = &[
    (
        "KAPSO_RATE_LIMIT",
        "messages are queued per sender instead of dropped; KAPSO_API_RATE_LIMIT limits Kapso API calls",
    ),
    ("KAPSO_RATE_WINDOW", "messages are queued per sender instead of dropped"),
    ("KAPSO_SESSION_ISOLATION", "every sender always has their own session (agent:<id>:whatsapp:direct:<number>)"),
    (
        "KAPSO_DEFAULT_ROLE",
        "the sender's access (allow-listed, approved, open) is given to the agent in its system prompt",
    ),
    ("KAPSO_TRANSCRIBE_PROVIDER", "voice notes use Kapso's own transcript (kapso.transcript)"),
    (
        "OPENCLAW_SESSION_KEY",
        "session keys follow OpenClaw's per-channel-peer scheme; set OPENCLAW_AGENT_ID for the agent",
    ),
    ("OPENCLAW_SESSIONS_JSON", "replies come over the gateway protocol; session files are never read"),
];
const ACCOUNT_KEYS: &[&str] = &["api_key", "phone_number_id", "dm_policy", "allow_from"];

impl WhatsAppConfig {
    /// Reads the `[whatsapp]` table and the environment (environment wins). `None` when
    /// WhatsApp is not configured at all.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        Ok(Self::load_inner(file, env, true)?.map(|(config, _)| config))
    }

    /// What `clawbridge setup whatsapp` starts from: the same settings as [`load`](Self::load)
    /// (every one checked the same way), but a phone number is not required yet — choosing one
    /// is what setup does. Also the project API key (`KAPSO_API_KEY` / `whatsapp.api_key`),
    /// `None` when it is not set.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load_for_setup(
        file: Option<&toml::Table>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Option<SecretString>), String> {
        Ok(Self::load_inner(file, env, false)?.unwrap_or_default())
    }

    /// `complete`: a phone number is required (what `serve` and every other command need).
    fn load_inner(
        file: Option<&toml::Table>,
        env: &dyn Fn(&str) -> Option<String>,
        complete: bool,
    ) -> Result<Option<(Self, Option<SecretString>)>, String> {
        let env = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let empty = toml::Table::new();
        let table = file.unwrap_or(&empty);
        if let Some(unknown) = table.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "[whatsapp] has an unknown setting {unknown:?}: the settings are {}",
                TOP_KEYS.join(", ")
            ));
        }
        let file_accounts = match table.get("accounts") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => {
                return Err("[whatsapp] accounts must be a table of tables: [whatsapp.accounts.<id>]".to_owned());
            }
        };
        let api_key = env("KAPSO_API_KEY").or(string(table, "whatsapp", "api_key")?);
        let phone_number_id = env("KAPSO_PHONE_NUMBER_ID").or(string(table, "whatsapp", "phone_number_id")?);
        if file.is_none() && api_key.is_none() && phone_number_id.is_none() {
            return Ok(None);
        }

        let mut cfg = Self::default();
        if let Some(url) = env("KAPSO_BASE_URL").or(string(table, "whatsapp", "base_url")?) {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "KAPSO_BASE_URL (whatsapp.base_url) is {url:?}: use an http(s) URL such as {DEFAULT_BASE_URL}"
                ));
            }
            cfg.base_url = url.trim_end_matches('/').to_owned();
        }
        if let Some(version) = env("KAPSO_GRAPH_VERSION").or(string(table, "whatsapp", "graph_version")?) {
            if !version.starts_with('v') || version.contains('/') {
                return Err(format!(
                    "KAPSO_GRAPH_VERSION (whatsapp.graph_version) is {version:?}: use a Graph API version such as {DEFAULT_GRAPH_VERSION}"
                ));
            }
            cfg.graph_version = version;
        }

        let (mode, legacy_both) = match env("KAPSO_MODE") {
            Some(mode) => (parse_mode(&mode, "KAPSO_MODE")?, false),
            None => match env("KAPSO_WEBHOOK_MODE") {
                // The Go bridge's old variable: `webhook`/`both` meant "behind my own domain".
                Some(legacy) => match legacy.to_ascii_lowercase().as_str() {
                    "webhook" => (DeliveryMode::Domain, false),
                    "both" => (DeliveryMode::Domain, true),
                    other => (parse_mode(other, "KAPSO_WEBHOOK_MODE")?, false),
                },
                None => match string(table, "whatsapp", "mode")? {
                    Some(mode) => (parse_mode(&mode, "whatsapp.mode")?, false),
                    None => (DeliveryMode::Polling, false),
                },
            },
        };
        cfg.mode = mode;
        if let Some(secs) = number(&env, table, "KAPSO_POLL_INTERVAL", "poll_interval_secs")? {
            // The Go bridge silently reset short intervals; keep the binary drop-in but never poll faster than 5 s.
            cfg.poll_interval = Duration::from_secs(secs).max(MIN_POLL_INTERVAL);
            if secs < MIN_POLL_INTERVAL.as_secs() {
                tracing::warn!(requested = secs, "KAPSO_POLL_INTERVAL is below the minimum of 5 s; polling every 5 s");
            }
        }
        cfg.poll_fallback =
            legacy_both || boolean(&env, table, "KAPSO_POLL_FALLBACK", "poll_fallback")?.unwrap_or(false);
        if let Some(secs) = number(&env, table, "KAPSO_POLL_OVERLAP", "poll_overlap_secs")? {
            cfg.poll_overlap = Duration::from_secs(secs);
        }
        cfg.webhook_verify_token = env("KAPSO_WEBHOOK_VERIFY_TOKEN")
            .or(string(table, "whatsapp", "webhook_verify_token")?)
            .map(SecretString::from);
        cfg.webhook_secret =
            env("KAPSO_WEBHOOK_SECRET").or(string(table, "whatsapp", "webhook_secret")?).map(SecretString::from);
        cfg.allow_unsigned_webhooks = boolean(&env, table, "KAPSO_ALLOW_UNSIGNED_WEBHOOKS", "allow_unsigned_webhooks")?
            .unwrap_or(false)
            || boolean(&env, &empty, "KAPSO_INSECURE_NO_SIGNATURE", "allow_unsigned_webhooks")?.unwrap_or(false);
        cfg.tailscale = crate::tailscale::TailscaleSettings::load(file, &env)?;
        if let Some(limit) = number(&env, table, "KAPSO_API_RATE_LIMIT", "rate_limit_per_minute")? {
            if limit == 0 {
                return Err("KAPSO_API_RATE_LIMIT (whatsapp.rate_limit_per_minute) must be at least 1: use your Kapso plan's requests per minute (100 on free, 500 on pro)".to_owned());
            }
            cfg.rate_limit_per_minute = u32::try_from(limit).unwrap_or(u32::MAX);
        }
        if let Some(secs) = number(&env, table, "KAPSO_HTTP_TIMEOUT", "http_timeout_secs")? {
            if secs == 0 {
                return Err("KAPSO_HTTP_TIMEOUT (whatsapp.http_timeout_secs) must be at least 1 second".to_owned());
            }
            cfg.http_timeout = Duration::from_secs(secs);
        }
        if let Some(bytes) = number(&env, table, "KAPSO_MEDIA_MAX_BYTES", "media_max_bytes")? {
            cfg.media_max_bytes = bytes;
        }
        if let Some(hosts) = list(&env, table, "KAPSO_MEDIA_HOSTS", "media_hosts")? {
            cfg.media_hosts = hosts.into_iter().map(|h| h.trim_start_matches("*.").to_ascii_lowercase()).collect();
        }
        if let Some(typing) = boolean(&env, table, "KAPSO_TYPING", "typing_indicator")? {
            cfg.typing_indicator = typing;
        }

        for (var, advice) in GO_BRIDGE_ONLY {
            if env(var).is_some() {
                tracing::warn!("{var} (a setting of the Go bridge) is not used by clawbridge: {advice}");
            }
        }
        let default_access = access_policy(&env, table, "KAPSO", "whatsapp")?;
        let project_key = api_key.clone().map(SecretString::from);
        match (api_key, phone_number_id) {
            (Some(api_key), Some(phone_number_id)) => cfg.accounts.push(AccountConfig {
                id: AccountId::default_account(),
                phone_number_id: check_phone_number_id(phone_number_id, "KAPSO_PHONE_NUMBER_ID")?,
                api_key: SecretString::from(api_key),
                access: default_access.clone(),
            }),
            (Some(_), None) if !complete => {}
            (Some(_), None) => {
                return Err("KAPSO_PHONE_NUMBER_ID is not set: set it (or whatsapp.phone_number_id) to the phone number id shown in the Kapso dashboard".to_owned());
            }
            (None, Some(_)) => {
                return Err("KAPSO_API_KEY is not set: set it (or whatsapp.api_key) to a Kapso project API key (Kapso dashboard → API keys)".to_owned());
            }
            (None, None) => {}
        }
        for (id, value) in file_accounts.into_iter().flatten() {
            let toml::Value::Table(acct) = value else {
                return Err(format!("[whatsapp.accounts.{id}] must be a table"));
            };
            let scope = format!("whatsapp.accounts.{id}");
            if let Some(unknown) = acct.keys().find(|k| !ACCOUNT_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "[{scope}] has an unknown setting {unknown:?}: the settings are {}",
                    ACCOUNT_KEYS.join(", ")
                ));
            }
            if id.is_empty() || id.contains(['/', ':']) {
                return Err(format!("[{scope}]: account ids may not be empty or contain '/' or ':'"));
            }
            if cfg.accounts.iter().any(|a| a.id.as_str() == id) {
                return Err(format!(
                    "[{scope}] repeats the account id {id:?} (\"default\" is the one from KAPSO_API_KEY): rename it"
                ));
            }
            let phone_number_id = string(acct, &scope, "phone_number_id")?.ok_or_else(|| {
                format!("{scope}.phone_number_id is missing: set it to the number's Kapso phone number id")
            })?;
            let api_key = string(acct, &scope, "api_key")?
                .map(SecretString::from)
                .or_else(|| {
                    cfg.accounts.first().filter(|a| a.id.as_str() == AccountId::DEFAULT).map(|a| a.api_key.clone())
                })
                .ok_or_else(|| format!("{scope}.api_key is missing: set it, or set KAPSO_API_KEY to share one key"))?;
            let access = if acct.contains_key("dm_policy") || acct.contains_key("allow_from") {
                access_policy(&|_: &str| None, acct, "", &scope)?
            } else {
                default_access.clone()
            };
            let phone_number_id = check_phone_number_id(phone_number_id, &format!("{scope}.phone_number_id"))?;
            cfg.accounts.push(AccountConfig { id: AccountId::new(id.clone()), phone_number_id, api_key, access });
        }
        if cfg.accounts.is_empty() && complete {
            return Err("WhatsApp is configured ([whatsapp] exists) but no phone number is: set KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID, or add [whatsapp.accounts.<id>] tables".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        for account in &cfg.accounts {
            if !seen.insert(account.phone_number_id.clone()) {
                return Err(format!(
                    "phone number id {} is configured twice (account {}): each [whatsapp.accounts.<id>] needs its own number",
                    account.phone_number_id, account.id
                ));
            }
        }
        Ok(Some((cfg, project_key)))
    }

    /// Checks what `serve` needs beyond [`load`](Self::load): in the public webhook modes
    /// (tailscale, domain) a webhook secret is required, unless explicitly overridden.
    ///
    /// # Errors
    /// The message names `KAPSO_WEBHOOK_SECRET` and the override.
    pub fn validate_for_serve(&self) -> Result<(), String> {
        if self.mode.is_public_webhook() && self.webhook_secret.is_none() && !self.allow_unsigned_webhooks {
            return Err(format!(
                "KAPSO_MODE={} exposes the webhook to the internet, but KAPSO_WEBHOOK_SECRET is not set: anyone could \
                 post messages \"from\" any number. Run `clawbridge setup whatsapp` (it registers the webhook and \
                 stores its secret), or set KAPSO_WEBHOOK_SECRET to the webhook's secret_key in Kapso (or the Meta \
                 app secret), or set KAPSO_ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned webhooks anyway",
                self.mode.as_str()
            ));
        }
        Ok(())
    }

    /// Whether the webhook routes are served: in a webhook mode, or in polling mode when a
    /// secret is configured (a webhook beside polling) or unsigned webhooks are explicitly
    /// allowed. Polling mode never serves an unsigned webhook by accident.
    pub fn serves_webhook(&self) -> bool {
        self.mode.is_public_webhook() || self.webhook_secret.is_some() || self.allow_unsigned_webhooks
    }

    /// Whether the poller runs (polling mode, or `KAPSO_POLL_FALLBACK` beside a webhook mode).
    pub fn polls(&self) -> bool {
        self.mode == DeliveryMode::Polling || self.poll_fallback
    }

    /// The Meta proxy base: `<base_url>/meta/whatsapp/<graph_version>`.
    pub fn meta_base(&self) -> String {
        format!("{}/meta/whatsapp/{}", self.base_url, self.graph_version)
    }

    /// The Platform API base (phone numbers, webhooks): `<base_url>/platform/v1`.
    pub fn platform_base(&self) -> String {
        format!("{}/platform/v1", self.base_url)
    }

    /// The account with this id.
    pub fn account(&self, id: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.id.as_str() == id)
    }
}

fn parse_mode(raw: &str, name: &str) -> Result<DeliveryMode, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "polling" | "poll" => Ok(DeliveryMode::Polling),
        "tailscale" => Ok(DeliveryMode::Tailscale),
        "domain" => Ok(DeliveryMode::Domain),
        other => Err(format!("{name} is {other:?}: use polling, tailscale or domain")),
    }
}

fn check_phone_number_id(raw: String, name: &str) -> Result<String, String> {
    let id = raw.trim().to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!(
            "{name} is {raw:?}: use the phone number id from the Kapso dashboard (digits, not the phone number itself)"
        ));
    }
    Ok(id)
}

fn string(table: &toml::Table, scope: &str, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(format!("{scope}.{key} must be a string, not {}", other.type_str())),
    }
}

fn number(
    env: &dyn Fn(&str) -> Option<String>,
    table: &toml::Table,
    var: &str,
    key: &str,
) -> Result<Option<u64>, String> {
    if let Some(raw) = env(var) {
        return raw
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{var} is {raw:?}: expected a whole number (whatsapp.{key} in the file)"));
    }
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(u64::try_from(*i).unwrap_or(0))),
        Some(other) => {
            Err(format!("whatsapp.{key} must be a whole number ≥ 0 (or set {var}), not {}", other.type_str()))
        }
    }
}

fn boolean(
    env: &dyn Fn(&str) -> Option<String>,
    table: &toml::Table,
    var: &str,
    key: &str,
) -> Result<Option<bool>, String> {
    if let Some(raw) = env(var) {
        return match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(format!("{var} is {raw:?}: use true or false")),
        };
    }
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
        Some(other) => Err(format!("whatsapp.{key} must be true or false (or set {var}), not {}", other.type_str())),
    }
}

fn list(
    env: &dyn Fn(&str) -> Option<String>,
    table: &toml::Table,
    var: &str,
    key: &str,
) -> Result<Option<Vec<String>>, String> {
    if let Some(raw) = env(var) {
        return Ok(Some(split_list(&raw)));
    }
    table_list(table, "whatsapp", key)
}

fn table_list(table: &toml::Table, scope: &str, key: &str) -> Result<Option<Vec<String>>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(split_list(s))),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.trim().to_owned()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                other => Err(format!("{scope}.{key} entries must be strings, not {}", other.type_str())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("{scope}.{key} must be a list of strings, not {}", other.type_str())),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `KAPSO_DM_POLICY`/`KAPSO_ALLOW_FROM`, with the Go bridge's `KAPSO_SECURITY_MODE`
/// (`allowlist|open`) and `KAPSO_ALLOWED_NUMBERS` as aliases; `prefix` empty reads the table only.
fn access_policy(
    env: &dyn Fn(&str) -> Option<String>,
    table: &toml::Table,
    prefix: &str,
    scope: &str,
) -> Result<AccessPolicy, String> {
    let var = |suffix: &str| if prefix.is_empty() { None } else { env(&format!("{prefix}_{suffix}")) };
    let (policy_raw, policy_name, from_go_alias) = match var("DM_POLICY") {
        Some(p) => (Some(p), "KAPSO_DM_POLICY".to_owned(), false),
        None => match var("SECURITY_MODE") {
            Some(p) => (Some(p), "KAPSO_SECURITY_MODE".to_owned(), true),
            None => (string(table, scope, "dm_policy")?, format!("{scope}.dm_policy"), false),
        },
    };
    let mut entries = match var("ALLOW_FROM").or_else(|| var("ALLOWED_NUMBERS")) {
        Some(raw) => split_list(&raw),
        None => table_list(table, scope, "allow_from")?.unwrap_or_default(),
    };
    let policy = match policy_raw {
        Some(raw) => raw.parse::<DmPolicy>().map_err(|e| format!("{policy_name}: {e}"))?,
        None => DmPolicy::Pairing,
    };
    if from_go_alias && policy == DmPolicy::Open && !entries.iter().any(|e| e == "*") {
        // The Go bridge's `open` meant everyone; keep that meaning for drop-in users.
        entries.push("*".to_owned());
    }
    AccessPolicy::new(policy, AllowFrom::new(&entries))
        .map_err(|e| format!("{policy_name}: {e} (KAPSO_ALLOW_FROM / {scope}.allow_from)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawbridge_core::policy::AccessDecision;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<Option<WhatsAppConfig>, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let table: Option<toml::Table> = file.map(|f| toml::from_str(f).unwrap());
        WhatsAppConfig::load(table.as_ref(), &|k| map.get(k).cloned())
    }

    #[test]
    fn absent_without_variables_or_table() {
        assert!(load(&[], None).unwrap().is_none());
    }

    #[test]
    fn go_bridge_environment_configures_the_default_account() {
        let cfg = load(
            &[
                ("KAPSO_API_KEY", "k1"),
                ("KAPSO_PHONE_NUMBER_ID", "123456789012345"),
                ("KAPSO_MODE", "domain"),
                ("KAPSO_POLL_INTERVAL", "2"),
                ("KAPSO_POLL_FALLBACK", "true"),
                ("KAPSO_WEBHOOK_SECRET", "s"),
                ("KAPSO_SECURITY_MODE", "allowlist"),
                ("KAPSO_ALLOWED_NUMBERS", "+1 555 123 4567"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.accounts.len(), 1);
        let acct = &cfg.accounts[0];
        assert_eq!(acct.id.as_str(), "default");
        assert_eq!(acct.api_key.expose_secret(), "k1");
        assert_eq!(cfg.mode, DeliveryMode::Domain);
        assert_eq!(cfg.poll_interval, MIN_POLL_INTERVAL);
        assert!(cfg.poll_fallback && cfg.polls() && cfg.serves_webhook());
        assert_eq!(acct.access.decide("15551234567", false), AccessDecision::Allow);
        assert_eq!(acct.access.decide("15550000000", false), AccessDecision::Deny);
        assert_eq!(cfg.meta_base(), "https://api.kapso.ai/meta/whatsapp/v24.0");
        assert!(cfg.validate_for_serve().is_ok());
    }

    #[test]
    fn go_open_mode_means_everyone_but_dm_policy_open_needs_the_wildcard() {
        let cfg =
            load(&[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_SECURITY_MODE", "open")], None)
                .unwrap()
                .unwrap();
        assert_eq!(cfg.accounts[0].access.decide("999", false), AccessDecision::Allow);
        let err = load(&[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_DM_POLICY", "open")], None)
            .unwrap_err();
        assert!(err.contains("KAPSO_DM_POLICY") && err.contains('*'), "{err}");
    }

    #[test]
    fn public_modes_need_a_secret_unless_overridden() {
        let base = [("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_MODE", "tailscale")];
        let cfg = load(&base, None).unwrap().unwrap();
        let err = cfg.validate_for_serve().unwrap_err();
        assert!(err.contains("KAPSO_WEBHOOK_SECRET") && err.contains("KAPSO_ALLOW_UNSIGNED_WEBHOOKS"), "{err}");
        let mut vars = base.to_vec();
        vars.push(("KAPSO_ALLOW_UNSIGNED_WEBHOOKS", "true"));
        assert!(load(&vars, None).unwrap().unwrap().validate_for_serve().is_ok());
        let polling = load(&base[..2], None).unwrap().unwrap();
        assert!(polling.validate_for_serve().is_ok() && !polling.serves_webhook());
        // A verify token alone does not open an unsigned webhook in polling mode.
        let mut vars = base[..2].to_vec();
        vars.push(("KAPSO_WEBHOOK_VERIFY_TOKEN", "t"));
        assert!(!load(&vars, None).unwrap().unwrap().serves_webhook());
    }

    #[test]
    fn legacy_webhook_mode_variable_is_understood() {
        let cfg = load(&[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_WEBHOOK_MODE", "both")], None)
            .unwrap()
            .unwrap();
        assert_eq!(cfg.mode, DeliveryMode::Domain);
        assert!(cfg.poll_fallback);
    }

    #[test]
    fn several_numbers_in_the_table() {
        let file = r#"
            rate_limit_per_minute = 500
            media_hosts = ["kapso.ai", "*.fbcdn.net"]
            dm_policy = "allowlist"
            allow_from = ["+15551234567"]
            [accounts.sales]
            phone_number_id = "222"
            api_key = "k2"
            [accounts.support]
            phone_number_id = "333"
            dm_policy = "open"
            allow_from = "*"
        "#;
        let cfg = load(&[("KAPSO_API_KEY", "k1"), ("KAPSO_PHONE_NUMBER_ID", "111")], Some(file)).unwrap().unwrap();
        let ids: Vec<&str> = cfg.accounts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["default", "sales", "support"]);
        assert_eq!(cfg.account("support").unwrap().api_key.expose_secret(), "k1");
        assert_eq!(cfg.account("sales").unwrap().api_key.expose_secret(), "k2");
        assert_eq!(cfg.account("support").unwrap().access.decide("1", false), AccessDecision::Allow);
        assert_eq!(cfg.account("sales").unwrap().access.decide("1", false), AccessDecision::Deny);
        assert_eq!(cfg.rate_limit_per_minute, 500);
        assert_eq!(cfg.media_hosts, ["kapso.ai", "fbcdn.net"]);
    }

    #[test]
    fn mistakes_name_the_setting() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("KAPSO_API_KEY", "k")], None, "KAPSO_PHONE_NUMBER_ID"),
            (&[("KAPSO_PHONE_NUMBER_ID", "1")], None, "KAPSO_API_KEY"),
            (&[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_MODE", "webhook2")], None, "KAPSO_MODE"),
            (
                &[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_POLL_INTERVAL", "soon")],
                None,
                "KAPSO_POLL_INTERVAL",
            ),
            (
                &[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_API_RATE_LIMIT", "0")],
                None,
                "KAPSO_API_RATE_LIMIT",
            ),
            (
                &[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1"), ("KAPSO_BASE_URL", "api.kapso.ai")],
                None,
                "KAPSO_BASE_URL",
            ),
            (&[("KAPSO_API_KEY", "k"), ("KAPSO_PHONE_NUMBER_ID", "1")], Some("pol_interval = 3"), "pol_interval"),
            (&[], Some("[accounts.x]\napi_key = \"k\""), "whatsapp.accounts.x.phone_number_id"),
            (&[], Some("mode = \"polling\""), "KAPSO_API_KEY"),
        ];
        for (vars, file, needle) in cases {
            let err = load(vars, *file).unwrap_err();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }
}
