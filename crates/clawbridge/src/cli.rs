//! Command-line interface (DESIGN.md §6): the bridge's own commands (derived here) and each
//! channel's subcommand, contributed and run by its plugin.

use crate::commands;
use crate::commands::host::CommandHost;
use crate::config::Config;
use crate::telemetry::{Verbosity, init_logging};
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
    /// Chat with your agent as a KakaoTalk or WhatsApp user in the browser, before any platform
    /// account exists: the real daemon against simulated platforms in the same process.
    Sandbox {
        /// Keep the sandbox's state (store, device key, generated config) here instead of a
        /// temporary directory removed on exit.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Where the daemon and the page listen (loopback only; port 0 picks a free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Check configuration, store and the gateway handshake; exits non-zero with the fix.
    Doctor {
        /// Print one JSON document instead of lines (for monitoring and scripts).
        #[arg(long)]
        json: bool,
    },
    /// Show queue depths, dead letters and the daemon's gateway state.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// How many dead letters to list.
        #[arg(long, default_value_t = 20)]
        dead: u32,
    },
    /// Exit 0 when the local daemon answers /healthz (container health checks, scripts).
    Health {
        /// Ask /readyz instead: the gateway connected and the store writable.
        #[arg(long)]
        ready: bool,
    },
    /// Write a commented clawbridge.toml with every setting and its default.
    Init {
        /// Where to write it.
        #[arg(long, value_name = "FILE", default_value = "clawbridge.toml")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Read and validate the configuration without starting anything.
    Config {
        /// Configuration action.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Shell completions on stdout: `clawbridge completions bash > /etc/bash_completion.d/clawbridge`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff) on stdout (`clawbridge man | man -l -`), or every page into a folder.
    Man {
        /// Write clawbridge.1 and one page per subcommand (clawbridge-whatsapp-send.1, …) here.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Approve or revoke who may talk to the agent (DM policy `pairing`).
    Pairing {
        /// Pairing action.
        #[command(subcommand)]
        action: PairingAction,
    },
    /// KakaoTalk AlimTalk through your dealer: approved-template notifications by phone number.
    Alimtalk {
        /// AlimTalk action.
        #[command(subcommand)]
        action: commands::bizmsg::AlimtalkAction,
    },
    /// KakaoTalk Brand Message through your dealer: marketing to channel friends (not 20:50–08:00 KST).
    Brand {
        /// Brand Message action.
        #[command(subcommand)]
        action: commands::bizmsg::BrandAction,
    },
    /// FriendTalk's old name: sends a Brand Message to channel friends (targeting I).
    Friendtalk {
        /// FriendTalk action.
        #[command(subcommand)]
        action: commands::bizmsg::BrandAction,
    },
    /// Bulk sends from a CSV file on KakaoTalk and WhatsApp: scheduled, A/B tested, with click and delivery reports.
    Campaign {
        /// Campaign action.
        #[command(subcommand)]
        action: commands::campaign::CampaignAction,
    },
}

/// `clawbridge config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load the file (`--config`) and the environment as `serve` would; exit 2 with the setting
    /// and the fix when something is wrong.
    Check,
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

/// The whole command line: the bridge's commands, `setup <channel>`, then the channels' in
/// alphabetical order.
pub fn command_line(plugins: &PluginSet) -> clap::Command {
    let mut channels: Vec<clap::Command> = plugins.iter().filter_map(|plugin| plugin.command()).collect();
    channels.sort_by(|a, b| a.get_name().cmp(b.get_name()));
    Cli::command().subcommand(setup_command(plugins)).subcommands(channels)
}

/// `clawbridge setup <channel> …`: each channel's own setup ([`ChannelPlugin::setup_command`]),
/// the same command as `clawbridge <channel> setup …`.
///
/// [`ChannelPlugin::setup_command`]: clawbridge_channel::plugin::ChannelPlugin::setup_command
fn setup_command(plugins: &PluginSet) -> clap::Command {
    let mut channels: Vec<clap::Command> = plugins.iter().filter_map(|plugin| plugin.setup_command()).collect();
    channels.sort_by(|a, b| a.get_name().cmp(b.get_name()));
    clap::Command::new("setup")
        .about("First run of a channel: `setup whatsapp` registers the webhook, stores its secret, writes the config")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(channels)
}

/// The channel a command line sets up (`setup <channel> …` or `<channel> setup …`), if any: its
/// settings are loaded by its setup, not before it ([`Config::load_for_setup`]).
pub fn setup_target(plugins: &PluginSet, matches: &clap::ArgMatches) -> Option<&'static str> {
    match matches.subcommand()? {
        ("setup", sub) => plugins.get(sub.subcommand_name()?).map(|plugin| plugin.id()),
        (name, sub) => plugins.get(name).filter(|_| sub.subcommand_name() == Some("setup")).map(|plugin| plugin.id()),
    }
}

/// Parses arguments and runs the command; the exit code is 0 on success.
pub fn main() -> ExitCode {
    let plugins = crate::channels::plugins();
    let matches = command_line(&plugins).get_matches();
    let config_path = matches.get_one::<PathBuf>("config").cloned();
    let loaded = match setup_target(&plugins, &matches) {
        Some(channel) => {
            Config::load_for_setup(config_path.as_deref(), &|name| std::env::var(name).ok(), &plugins, channel)
        }
        None => Config::load(config_path.as_deref()),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let verbosity = if matches!(matches.subcommand_name(), Some("serve" | "sandbox")) {
        Verbosity::Daemon
    } else {
        Verbosity::Command
    };
    init_logging(config.bridge.log_format, verbosity);
    // One TLS crypto provider for the whole process (rust-stack.md §2.2).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(&plugins, &matches, config));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line: a channel's subcommand through its plugin, else one of the
/// bridge's own commands.
///
/// # Errors
/// What the command could not do, with the fix; `main` prints it and exits with code 1.
pub async fn dispatch(plugins: &PluginSet, matches: &clap::ArgMatches, config: Config) -> anyhow::Result<ExitCode> {
    let channel = matches.subcommand().and_then(|(name, sub)| Some((plugins.get(name)?, sub)));
    if let Some((plugin, sub)) = channel {
        let host = CommandHost::new(Arc::new(config), plugin.id());
        return plugin.run_command(sub, &host).await.map_err(anyhow::Error::from_boxed);
    }
    if let Some(("setup", sub)) = matches.subcommand() {
        let (plugin, args) = sub
            .subcommand()
            .and_then(|(name, args)| Some((plugins.get(name)?, args)))
            .ok_or_else(|| anyhow::anyhow!("name the channel to set up: clawbridge setup whatsapp"))?;
        let host = CommandHost::new(Arc::new(config), plugin.id());
        return plugin.run_setup(args, &host).await.map_err(anyhow::Error::from_boxed);
    }
    match Command::from_arg_matches(matches).unwrap_or_else(|e| e.exit()) {
        Command::Serve { insecure_no_signature } => {
            commands::serve::run(commands::serve::allow_unsigned(config, insecure_no_signature)).await
        }
        Command::Sandbox { state_dir, listen } => commands::sandbox::run(config, state_dir, listen).await,
        Command::Doctor { json } => commands::doctor::run(&config, json).await,
        Command::Status { json, dead } => commands::status::run(&config, json, dead).await,
        Command::Health { ready } => commands::health::run(&config, ready).await,
        Command::Init { out, force } => commands::init::run(&out, force),
        Command::Config { action: ConfigAction::Check } => commands::config_check::run(&config),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command_line(plugins), "clawbridge", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: None } => {
            clap_mangen::Man::new(command_line(plugins)).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command_line(plugins), &dir)?;
            println!("manual pages written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pairing { action } => commands::pairing::run(&config, action).await,
        Command::Alimtalk { action } => commands::bizmsg::alimtalk(&config, action).await,
        Command::Brand { action } => commands::bizmsg::brand(&config, action, false).await,
        Command::Friendtalk { action } => commands::bizmsg::brand(&config, action, true).await,
        Command::Campaign { action } => commands::campaign::run(&config, action).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use clawbridge_channel::cli::{CliError, CliHost};
    use clawbridge_channel::plugin::{ChannelPlugin, ChannelSettings, Env};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A channel with nothing but a command: `clawbridge echo --code N` exits with N.
    struct Echo;

    static RAN_WITH: AtomicU8 = AtomicU8::new(0);

    #[async_trait]
    impl ChannelPlugin for Echo {
        fn id(&self) -> &'static str {
            "echo"
        }

        fn load(&self, _: Option<&toml::Table>, _: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
            Ok(None)
        }

        fn command(&self) -> Option<clap::Command> {
            Some(
                clap::Command::new("echo")
                    .about("Exits with a code")
                    .arg(clap::Arg::new("code").long("code").value_parser(clap::value_parser!(u8))),
            )
        }

        async fn run_command(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
            assert!(host.settings().is_none(), "not configured");
            let code = matches.get_one::<u8>("code").copied().ok_or("--code is missing")?;
            RAN_WITH.store(code, Ordering::SeqCst);
            Ok(ExitCode::from(code))
        }

        fn setup_command(&self) -> Option<clap::Command> {
            Some(
                clap::Command::new("echo")
                    .about("Sets up echo")
                    .arg(clap::Arg::new("code").long("code").value_parser(clap::value_parser!(u8))),
            )
        }

        async fn run_setup(&self, matches: &clap::ArgMatches, _: &dyn CliHost) -> Result<ExitCode, CliError> {
            let code = matches.get_one::<u8>("code").copied().ok_or("--code is missing")?;
            SET_UP_WITH.store(code, Ordering::SeqCst);
            Ok(ExitCode::SUCCESS)
        }
    }

    static SET_UP_WITH: AtomicU8 = AtomicU8::new(0);

    #[tokio::test]
    async fn setup_forwards_to_the_channels_own_setup() {
        let plugins = crate::channels::plugins().with(&Echo);
        let line = command_line(&plugins);
        let setup = line.find_subcommand("setup").expect("setup").clone();
        let names: Vec<&str> = setup.get_subcommands().map(clap::Command::get_name).collect();
        assert_eq!(names, ["echo", "whatsapp"], "every channel with a setup, by name");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().display().to_string();
        let config = Config::load_with(None, &|name| (name == "CLAWBRIDGE_STATE_DIR").then(|| state.clone())).unwrap();
        let matches = line.clone().try_get_matches_from(["clawbridge", "setup", "echo", "--code", "9"]).unwrap();
        assert_eq!(setup_target(&plugins, &matches), Some("echo"));
        dispatch(&plugins, &matches, config).await.unwrap();
        assert_eq!(SET_UP_WITH.load(Ordering::SeqCst), 9);
        let nested = line.clone().try_get_matches_from(["clawbridge", "whatsapp", "setup", "--dry-run"]).unwrap();
        assert_eq!(setup_target(&plugins, &nested), Some("whatsapp"));
        let send = line.clone().try_get_matches_from(["clawbridge", "whatsapp", "send", "--to", "1", "--text", "x"]);
        assert_eq!(setup_target(&plugins, &send.unwrap()), None);
        assert!(line.try_get_matches_from(["clawbridge", "setup"]).is_err(), "a channel must be named");
    }

    #[test]
    fn channel_commands_follow_the_bridges_own_in_alphabetical_order() {
        let line = command_line(&crate::channels::plugins());
        line.clone().debug_assert();
        let names: Vec<&str> = line.get_subcommands().map(clap::Command::get_name).collect();
        assert_eq!(
            names,
            [
                "serve",
                "sandbox",
                "doctor",
                "status",
                "health",
                "init",
                "config",
                "completions",
                "man",
                "pairing",
                "alimtalk",
                "brand",
                "friendtalk",
                "campaign",
                "setup",
                "kakao",
                "whatsapp"
            ]
        );
    }

    #[tokio::test]
    async fn a_channel_registered_with_one_line_gets_its_subcommand() {
        let plugins = crate::channels::plugins().with(&Echo);
        let line = command_line(&plugins);
        let help = line.clone().render_help().to_string();
        assert!(help.lines().any(|l| l.trim_start().starts_with("echo ") && l.contains("Exits with a code")), "{help}");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().display().to_string();
        let config = Config::load_with(None, &|name| (name == "CLAWBRIDGE_STATE_DIR").then(|| state.clone())).unwrap();
        let matches = line.try_get_matches_from(["clawbridge", "echo", "--code", "7"]).unwrap();
        dispatch(&plugins, &matches, config.clone()).await.unwrap();
        assert_eq!(RAN_WITH.load(Ordering::SeqCst), 7);
        let matches = command_line(&plugins).try_get_matches_from(["clawbridge", "echo"]).unwrap();
        let err = dispatch(&plugins, &matches, config).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "--code is missing");
    }
}
