//! Command-line interface (DESIGN.md §6): the bridge's own commands (derived here) and each
//! channel's subcommand, contributed and run by its plugin.

use crate::commands;
use crate::commands::host::CommandHost;
use crate::config::Config;
use crate::telemetry::init_logging;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use clawbridge_channel::plugin::PluginSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// clawbridge connects an OpenClaw gateway to KakaoTalk and WhatsApp.
#[derive(Debug, Parser)]
#[command(name = "clawbridge", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, env = "CLAWBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The bridge's own subcommands (each channel adds its own: [`command_line`]).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: channels, webhook listener, workers.
    Serve {
        /// Accept unsigned WhatsApp webhooks in KAPSO_MODE=tailscale|domain (same as
        /// KAPSO_ALLOW_UNSIGNED_WEBHOOKS=true). Anyone who finds the URL can then post messages.
        #[arg(long)]
        insecure_no_signature: bool,
    },
    /// Check configuration, store and the gateway handshake; exits non-zero with the fix.
    Doctor,
    /// Show queue depths, dead letters and the daemon's gateway state.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// How many dead letters to list.
        #[arg(long, default_value_t = 20)]
        dead: u32,
    },
    /// Approve or revoke who may talk to the agent (DM policy `pairing`).
    Pairing {
        /// Pairing action.
        #[command(subcommand)]
        action: PairingAction,
    },
}

/// `clawbridge pairing …`
#[derive(Debug, Subcommand)]
pub enum PairingAction {
    /// Pending pairing requests and approved peers.
    List {
        /// Only this channel (`whatsapp`, `kakao`).
        channel: Option<String>,
    },
    /// Approve a pairing code a sender received.
    Approve {
        /// The channel (`whatsapp`, `kakao`).
        channel: String,
        /// The 8-character code.
        code: String,
        /// Do not send the sender a confirmation message.
        #[arg(long)]
        no_notify: bool,
    },
    /// Revoke an approved peer.
    Revoke {
        /// The channel.
        channel: String,
        /// The peer (phone number or user key).
        peer: String,
        /// The account (when the channel has several).
        #[arg(long, default_value = "default")]
        account: String,
    },
}

/// The whole command line: the bridge's commands, then the channels' in alphabetical order.
pub fn command_line(plugins: &PluginSet) -> clap::Command {
    let mut channels: Vec<clap::Command> = plugins.iter().filter_map(|plugin| plugin.command()).collect();
    channels.sort_by(|a, b| a.get_name().cmp(b.get_name()));
    Cli::command().subcommands(channels)
}

/// Parses arguments and runs the command; the exit code is 0 on success.
pub fn main() -> ExitCode {
    let plugins = crate::channels::plugins();
    let matches = command_line(&plugins).get_matches();
    let config_path = matches.get_one::<PathBuf>("config").cloned();
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.bridge.log_format);
    // One TLS crypto provider for the whole process (rust-stack.md §2.2).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let channel = matches.subcommand().and_then(|(name, sub)| Some((plugins.get(name)?, sub)));
        if let Some((plugin, sub)) = channel {
            let host = CommandHost::new(Arc::new(config), plugin.id());
            return plugin.run_command(sub, &host).await.map_err(anyhow::Error::from_boxed);
        }
        match Command::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()) {
            Command::Serve { insecure_no_signature } => {
                commands::serve::run(commands::serve::allow_unsigned(config, insecure_no_signature)).await
            }
            Command::Doctor => commands::doctor::run(&config).await,
            Command::Status { json, dead } => commands::status::run(&config, json, dead).await,
            Command::Pairing { action } => commands::pairing::run(&config, action).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` as `main` runs a subcommand (TLS provider, runtime, `error: …` and a failure
/// exit code on error), for the compatibility binaries (`kapso-whatsapp-*`).
pub fn block_on<F>(command: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(command));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
