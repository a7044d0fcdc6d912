//! Command-line interface (DESIGN.md §6).

use crate::commands;
use crate::config::Config;
use crate::telemetry::init_logging;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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

/// Subcommands.
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
    /// KakaoTalk: Kakao Login, the Talk Message API, chatbot Event API pushes.
    Kakao {
        /// Kakao action.
        #[command(subcommand)]
        action: commands::kakao::KakaoCommand,
    },
    /// WhatsApp through Kapso: send messages, media, templates and reactions.
    Whatsapp {
        /// WhatsApp action.
        #[command(subcommand)]
        action: commands::whatsapp::WhatsappCommand,
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

/// Parses arguments and runs the command; the exit code is 0 on success.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
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
        match cli.command {
            Command::Serve { insecure_no_signature } => {
                commands::serve::run(commands::whatsapp::allow_unsigned(config, insecure_no_signature)).await
            }
            Command::Doctor => commands::doctor::run(&config).await,
            Command::Status { json, dead } => commands::status::run(&config, json, dead).await,
            Command::Pairing { action } => commands::pairing::run(&config, action).await,
            Command::Kakao { action } => commands::kakao::run(&config, action).await,
            Command::Whatsapp { action } => commands::whatsapp::run(&config, action).await,
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
