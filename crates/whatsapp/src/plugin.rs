//! WhatsApp's registration with the bridge: `[whatsapp]` + `KAPSO_*` settings, the connector
//! `serve` runs, the `doctor` checks (delivery mode, Tailscale, Kapso credentials) and the
//! `clawbridge whatsapp` subcommand ([`crate::cli`]).

use crate::WhatsAppConnector;
use crate::cli::WhatsappCommand;
use crate::client::KapsoClient;
use crate::config::{AccountConfig, DeliveryMode, SECRETS_NAMESPACE, STORED_WEBHOOK_SECRET, WhatsAppConfig};
use crate::inbound::CHANNEL;
use async_trait::async_trait;
use clap::FromArgMatches as _;
use clawbridge_channel::cli::{CliError, CliHost, SecretsAt};
use clawbridge_channel::plugin::ChannelStatus;
use clawbridge_channel::plugin::{ChannelPlugin, ChannelSettings, Check, ConnectorContext, Env, HostInfo};
use clawbridge_channel::{Bridge, BridgeError, Connector};
use clawbridge_core::SendError;
use std::any::Any;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// The subcommand's name and the line the bridge's help lists for it (the same as the doc
/// comment of [`crate::cli::WhatsappCli`]; a test holds them together).
const COMMAND: &str = "whatsapp";
const COMMAND_ABOUT: &str = "WhatsApp through Kapso: send messages, media, templates and reactions; first-run setup";
/// `clawbridge setup whatsapp`'s help line: the doc comment of [`crate::cli::WhatsappCommand::Setup`]
/// and of [`crate::cli::setup::SetupArgs`] (a test holds them together).
const SETUP_ABOUT: &str = "Choose the number, register its webhook in Kapso, store the secret, write the config file";
/// The WhatsApp (Kapso) channel plugin.
#[derive(Debug)]
pub struct WhatsAppPlugin;

#[async_trait]
impl ChannelPlugin for WhatsAppPlugin {
    fn id(&self) -> &'static str {
        CHANNEL
    }

    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        Ok(WhatsAppConfig::load(table, env)?.map(|config| Arc::new(config) as Arc<dyn ChannelSettings>))
    }

    fn command(&self) -> Option<clap::Command> {
        Some(clawbridge_channel::cli::deferred_command(
            COMMAND,
            COMMAND_ABOUT,
            <crate::cli::WhatsappCli as clap::Args>::augment_args,
        ))
    }

    async fn run_command(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
        match crate::cli::WhatsappCli::from_arg_matches(matches)?.action {
            WhatsappCommand::Send(args) => {
                Ok(crate::cli::run_send(host.settings_as::<WhatsAppConfig>(), host.retry(), &args).await)
            }
            WhatsappCommand::Setup(args) => crate::cli::setup::run(&args, host).await,
        }
    }

    fn setup_command(&self) -> Option<clap::Command> {
        Some(clawbridge_channel::cli::deferred_command(
            COMMAND,
            SETUP_ABOUT,
            <crate::cli::setup::SetupArgs as clap::Args>::augment_args,
        ))
    }

    async fn run_setup(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
        let args = crate::cli::setup::SetupArgs::from_arg_matches(matches)?;
        crate::cli::setup::run(&args, host).await
    }

    /// The records of deliveries and polls that could not be used (dead letters, newest first);
    /// nothing when there are none.
    async fn status(
        &self,
        _settings: Option<&dyn ChannelSettings>,
        bridge: &dyn Bridge,
    ) -> Result<Option<ChannelStatus>, BridgeError> {
        let mut letters = bridge.state_list(crate::ingest::DEAD_LETTERS, DEAD_LETTERS_SHOWN).await?;
        if letters.is_empty() {
            return Ok(None);
        }
        letters.sort_by_key(|entry| std::cmp::Reverse(entry.2));
        let parsed: Vec<serde_json::Value> =
            letters.iter().filter_map(|(_, value, _)| serde_json::from_str(value).ok()).collect();
        let mut lines = vec![format!(
            "whatsapp: {} record(s) could not be used and were kept as dead letters{}",
            parsed.len(),
            if letters.len() as u32 >= DEAD_LETTERS_SHOWN { " (newest shown)" } else { "" }
        )];
        for letter in parsed.iter().take(5) {
            let id = letter["message_id"].as_str().unwrap_or("-");
            let reason = letter["reason"].as_str().unwrap_or("");
            lines.push(format!("  {id}: {reason}"));
        }
        Ok(Some(ChannelStatus { key: "whatsapp_dead_letters", json: serde_json::Value::Array(parsed), lines }))
    }
}

/// Dead letters `clawbridge status` reads.
const DEAD_LETTERS_SHOWN: u32 = 50;

#[async_trait]
impl ChannelSettings for WhatsAppConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    /// Refuses a public webhook mode without a secret unless overridden.
    fn connector(&self, _ctx: &ConnectorContext) -> Result<Option<Arc<dyn Connector>>, String> {
        self.validate_for_serve()?;
        Ok(Some(Arc::new(WhatsAppConnector::new(self.clone())?)))
    }

    /// The webhook secret `clawbridge setup whatsapp` stored, when none is configured.
    async fn with_stored_secrets(&self, host: &dyn CliHost) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        if self.webhook_secret.is_some() || self.accounts.is_empty() {
            return Ok(None);
        }
        let unreadable = |e: &dyn std::fmt::Display| {
            format!(
                "the webhook secret stored by `clawbridge setup whatsapp` cannot be read: {e}. Keep                  CLAWBRIDGE_MASTER_KEY (or <state dir>/master.key) as it was when setup ran, run setup again, or set                  KAPSO_WEBHOOK_SECRET"
            )
        };
        let stored = match host.existing_secrets(SECRETS_NAMESPACE, SecretsAt::Store).await {
            Ok(Some(secrets)) => secrets.get(STORED_WEBHOOK_SECRET).await.map_err(|e| unreadable(&e)),
            Ok(None) => Ok(None),
            Err(e) => Err(unreadable(&e)),
        };
        let secret = match stored {
            Ok(Some(secret)) => secret,
            Ok(None) => return Ok(None),
            // Polling needs no secret: the bridge still runs, without the webhook beside it.
            Err(e) if !self.mode.is_public_webhook() => {
                tracing::warn!("{e}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut config = self.clone();
        config.webhook_secret = Some(secret);
        config.webhook_secret_stored = true;
        Ok(Some(Arc::new(config)))
    }

    async fn doctor(&self, host: &HostInfo) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut mode = delivery_mode(self, host.listen);
        if self.webhook_secret_stored {
            mode.push_str(", webhook secret stored by setup");
        }
        checks.push(match self.validate_for_serve() {
            Ok(()) => Check::ok("whatsapp mode", mode),
            Err(e) => Check::failed(
                "whatsapp mode",
                e,
                "run `clawbridge setup whatsapp`, or set KAPSO_WEBHOOK_SECRET to the secret key of the webhook in Kapso",
            ),
        });
        if self.mode == DeliveryMode::Tailscale {
            checks.push(match crate::tailscale::probe_dns_name(&self.tailscale).await {
                Ok(dns) => Check::ok("tailscale", format!("up as {dns}; serve publishes https://{dns}[:port]/webhook")),
                Err(e) => Check::failed("tailscale", e.to_string(), "see the README's Tailscale Funnel section"),
            });
        }
        for account in &self.accounts {
            let what = format!("whatsapp {}", account.id);
            checks.push(match check_credentials(self, account).await {
                Ok(()) => {
                    Check::ok(what, format!("Kapso credentials valid for phone number id {}", account.phone_number_id))
                }
                Err(e) => Check::failed(
                    what,
                    format!("{e} ({})", self.base_url),
                    "check KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID in the Kapso dashboard",
                ),
            });
        }
        checks
    }
}

/// How messages arrive (`polling every 30 s`, `domain (webhook on 0.0.0.0:8080)`), for `doctor`
/// and the Go bridge's `preflight`.
pub(crate) fn delivery_mode(whatsapp: &WhatsAppConfig, listen: SocketAddr) -> String {
    match whatsapp.mode {
        DeliveryMode::Polling => format!("polling every {} s", whatsapp.poll_interval.as_secs()),
        mode => format!(
            "{} (webhook on {listen}{})",
            mode.as_str(),
            if whatsapp.poll_fallback { ", polling as a fallback" } else { "" }
        ),
    }
}

/// Whether Kapso accepts `account`'s credentials, or why not in the operator's words.
pub(crate) async fn check_credentials(whatsapp: &WhatsAppConfig, account: &AccountConfig) -> Result<(), String> {
    KapsoClient::new(whatsapp, account)?.check_credentials().await.map_err(|e| describe(&e))
}

/// A send error in the operator's words (CLI output and `doctor`).
pub fn describe(error: &SendError) -> String {
    match error {
        SendError::Permanent(reason) => reason.clone(),
        SendError::Transient { reason, .. } => reason.clone(),
        SendError::MaybeDelivered(_) => error.to_string(),
        SendError::RateLimited { retry_after } => match retry_after {
            Some(after) => format!("Kapso rate limit reached (HTTP 429): try again in {} s", after.as_secs().max(1)),
            None => "Kapso rate limit reached (HTTP 429): try again in a minute".to_owned(),
        },
        SendError::AuthExpired => {
            "Kapso rejected the API key (HTTP 401/403): check KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID".to_owned()
        }
    }
}

#[cfg(test)]
mod command_tests {
    use clap::CommandFactory as _;
    use clawbridge_channel::plugin::ChannelPlugin as _;

    /// The deferred subcommand, once built, is the derived one: same help line, same arguments.
    #[test]
    fn the_deferred_command_is_the_derived_one() {
        // What the bridge's help lists before building it is what the derived command says.
        let derived_unbuilt = crate::cli::WhatsappCli::command();
        assert_eq!(derived_unbuilt.get_about().map(ToString::to_string).as_deref(), Some(super::COMMAND_ABOUT));
        let mut deferred = super::WhatsAppPlugin.command().expect("a subcommand");
        assert_eq!(deferred.get_about().map(ToString::to_string).as_deref(), Some(super::COMMAND_ABOUT));
        deferred.build();
        let mut derived = crate::cli::WhatsappCli::command();
        derived.build();
        assert_eq!(deferred.get_name(), derived.get_name());
        assert_eq!(deferred.get_about().map(ToString::to_string), derived.get_about().map(ToString::to_string));
        assert_eq!(deferred.render_long_help().to_string(), derived.render_long_help().to_string());
    }

    /// `clawbridge setup whatsapp` is `clawbridge whatsapp setup`: the same help line and arguments.
    #[test]
    fn the_setup_command_is_the_whatsapp_setup_subcommand() {
        let mut derived = crate::cli::WhatsappCli::command();
        derived.build();
        let mut nested = derived.find_subcommand("setup").expect("whatsapp setup").clone();
        let mut top = super::WhatsAppPlugin.setup_command().expect("a setup command");
        assert_eq!(top.get_name(), "whatsapp");
        assert_eq!(top.get_about().map(ToString::to_string).as_deref(), Some(super::SETUP_ABOUT));
        assert_eq!(nested.get_about().map(ToString::to_string).as_deref(), Some(super::SETUP_ABOUT));
        top.build();
        nested.build();
        // Built, the arguments' own doc comment must not have replaced the help line.
        assert_eq!(top.get_about().map(ToString::to_string).as_deref(), Some(super::SETUP_ABOUT));
        let help = |c: &mut clap::Command| {
            c.render_long_help().to_string().lines().filter(|l| !l.starts_with("Usage:")).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(help(&mut top), help(&mut nested), "the same help but for the usage line's command path");
        let args = |c: &clap::Command| c.get_arguments().map(|a| a.get_id().to_string()).collect::<Vec<_>>();
        assert_eq!(args(&top), args(&nested));
        assert!(args(&top).contains(&"phone_number_id".to_owned()) && args(&top).contains(&"dry_run".to_owned()));
    }
}
