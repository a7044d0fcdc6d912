//! The Go bridge's binaries (`openclaw-kapso-whatsapp`), as thin wrappers over the clawbridge
//! library, so its users swap binaries and keep their environment:
//! - `kapso-whatsapp-cli send --to +N --text T` (also `send +N "T"`, plus every option of
//!   `clawbridge whatsapp send`), `status` (the webhook server's `/health`), `preflight`;
//! - `kapso-whatsapp-bridge` and its pre-0.2 name `kapso-whatsapp-poller`: `clawbridge serve`
//!   with WhatsApp only.
//!
//! Configuration is the Go bridge's: `KAPSO_*`, `OPENCLAW_*` (and its `GATEWAY_URL` /
//! `GATEWAY_TOKEN` aliases), and its TOML file (`KAPSO_CONFIG`, else
//! `~/.config/kapso-whatsapp/config.toml`) translated to those variables; the environment wins.
//! `CLAWBRIDGE_*` variables and `CLAWBRIDGE_CONFIG` work as in `clawbridge`. What is WhatsApp's
//! (that environment, `send`'s arguments, the WhatsApp lines of `preflight`) comes from
//! `clawbridge_whatsapp::cli::go_bridge`; this module wires it to the daemon and the gateway.

use crate::config::Config;
use crate::telemetry::{Verbosity, init_logging};
use clawbridge_gateway::{GatewayConfig, GatewayError, probe};
use clawbridge_whatsapp::cli::go_bridge::{self, Finding, GoBridgeEnv, SendUsage};
use clawbridge_whatsapp::cli::{print_send_result, send};
use std::process::ExitCode;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The clawbridge configuration the Go bridge's environment describes (no `--config` file).
///
/// # Errors
/// The configuration error, naming the variable.
pub fn config_of(env: &GoBridgeEnv) -> Result<Config, String> {
    Config::load_with(None, &|name| env.get(name)).map_err(|e| e.to_string())
}

/// `kapso-whatsapp-bridge` / `kapso-whatsapp-poller`: the daemon with WhatsApp only.
pub fn daemon_main(binary: &str) -> ExitCode {
    let mut insecure = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-h" | "--help" | "help" => {
                println!(
                    "{binary} — the clawbridge daemon for WhatsApp (Kapso) ↔ OpenClaw\n\n\
                     Usage: {binary} [--insecure-no-signature]\n\n\
                     Configured like the Go bridge: KAPSO_API_KEY, KAPSO_PHONE_NUMBER_ID, KAPSO_MODE \
                     (polling|tailscale|domain), KAPSO_WEBHOOK_SECRET, KAPSO_WEBHOOK_ADDR, OPENCLAW_GATEWAY_URL, \
                     OPENCLAW_TOKEN, … and KAPSO_CONFIG (the Go config.toml). Same as `clawbridge serve` with \
                     WhatsApp only; `clawbridge status` shows its queues."
                );
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" | "version" => {
                println!("{binary} (clawbridge {VERSION})");
                return ExitCode::SUCCESS;
            }
            "--insecure-no-signature" => insecure = true,
            other => {
                eprintln!("error: unknown argument {other:?} (see {binary} --help)");
                return ExitCode::from(2);
            }
        }
    }
    let (mut config, env) = match compat_config() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.whatsapp().is_none() {
        eprintln!("error: KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID must be set");
        return ExitCode::from(2);
    }
    if insecure {
        config.update_whatsapp(|whatsapp| whatsapp.allow_unsigned_webhooks = true);
    }
    // WhatsApp only, like the Go bridge (Kakao stays with `clawbridge serve`).
    config.set_channel(clawbridge_kakao::chatbot::CHANNEL, None);
    init_logging(config.bridge.log_format, Verbosity::Daemon);
    warn_ignored(&env);
    crate::cli::block_on(crate::commands::serve::run(config))
}

fn compat_config() -> Result<(Config, GoBridgeEnv), String> {
    let env = GoBridgeEnv::load()?;
    let config = config_of(&env)?;
    Ok((config, env))
}

fn warn_ignored(env: &GoBridgeEnv) {
    if !env.ignored.is_empty() {
        tracing::warn!(
            file = %env.file_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            keys = %env.ignored.join(", "),
            "settings of the Go bridge's config file that clawbridge does not use (see the README's migration section)"
        );
    }
}

/// `kapso-whatsapp-cli`.
pub fn cli_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            print_cli_usage();
            ExitCode::FAILURE
        }
        Some("send") => cli_send(&args[1..]),
        Some("status") => cli_status(),
        Some("preflight") => cli_preflight(),
        Some("help" | "--help" | "-h") => {
            print_cli_usage();
            ExitCode::SUCCESS
        }
        Some("version" | "--version" | "-V") => {
            println!("kapso-whatsapp-cli (clawbridge {VERSION})");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command: {other}");
            print_cli_usage();
            ExitCode::FAILURE
        }
    }
}

fn print_cli_usage() {
    println!(
        "kapso-whatsapp-cli — send WhatsApp messages through Kapso (clawbridge {VERSION})

Commands:
  send --to +NUMBER --text \"message\"   send a text (also: send +NUMBER \"message\")
       other content: --image|--document|--audio|--video URL|FILE [--caption TEXT],
       --template NAME --lang CODE [--param NAME=VALUE]..., --reaction EMOJI --reply-to WAMID;
       --reply-to WAMID quotes a message
  status                                check that the bridge's webhook server answers /health
  preflight                             check configuration, Kapso credentials and the OpenClaw gateway
  help                                  show this help

Environment: KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID (required to send), KAPSO_WEBHOOK_ADDR,
OPENCLAW_GATEWAY_URL, OPENCLAW_TOKEN; KAPSO_CONFIG (the Go bridge's config.toml) is read as well."
    );
}

/// `send`: the Go CLI's `--to`/`--text`/positional form, or the full option set.
fn cli_send(args: &[String]) -> ExitCode {
    let send_args = match go_bridge::parse_send(args) {
        Ok(send_args) => send_args,
        Err(SendUsage::Go) => {
            eprintln!("usage: kapso-whatsapp-cli send --to +NUMBER --text \"message\"");
            return ExitCode::FAILURE;
        }
        Err(SendUsage::Options(e)) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    let config = match compat_config() {
        Ok((config, _)) => config,
        Err(e) => {
            eprintln!("error loading config: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.whatsapp().is_none() {
        eprintln!("error: KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID must be set");
        return ExitCode::FAILURE;
    }
    crate::cli::block_on(
        async move { Ok(print_send_result(send(config.whatsapp(), config.retry.http, &send_args).await)) },
    )
}

/// `status`: `GET /health` of the running bridge.
fn cli_status() -> ExitCode {
    let base = match std::env::var("KAPSO_WEBHOOK_ADDR") {
        Ok(addr) if addr.contains("://") => addr.trim_end_matches('/').to_owned(),
        _ => match compat_config() {
            Ok((config, _)) => {
                let listen = config.bridge.listen;
                let host = if listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { listen.ip().to_string() };
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                format!("http://{host}:{}", listen.port())
            }
            Err(e) => {
                eprintln!("error loading config: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    crate::cli::block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(match client.get(format!("{base}/health")).send().await {
            Err(e) => {
                eprintln!("webhook server unreachable: {e}");
                ExitCode::FAILURE
            }
            Ok(response) if response.status().is_success() => {
                println!("webhook server: ok");
                ExitCode::SUCCESS
            }
            Ok(response) => {
                eprintln!("webhook server: unhealthy (status {})", response.status().as_u16());
                ExitCode::FAILURE
            }
        })
    })
}

/// `[OK]`, `[WARN]` and `[FAIL]` lines, then a verdict, as the Go bridge's preflight prints them.
#[derive(Debug, Default)]
struct Preflight {
    failures: u32,
    warnings: u32,
}

impl Preflight {
    fn ok(&self, what: impl std::fmt::Display) {
        println!("[OK]   {what}");
    }

    fn warn(&mut self, what: impl std::fmt::Display) {
        self.warnings += 1;
        println!("[WARN] {what}");
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        self.failures += 1;
        println!("[FAIL] {what}");
    }

    fn add(&mut self, findings: Vec<Finding>) {
        for finding in findings {
            match finding {
                Finding::Ok(what) => self.ok(what),
                Finding::Warn(what) => self.warn(what),
                Finding::Fail(what) => self.fail(what),
            }
        }
    }
}

/// `preflight`: configuration, Tailscale (in tailscale mode), the gateway handshake and the
/// Kapso credentials; exit code 1 when anything blocks.
fn cli_preflight() -> ExitCode {
    println!("kapso-whatsapp preflight");
    println!("------------------------");
    let mut report = Preflight::default();
    let loaded = compat_config();
    let env = GoBridgeEnv::load().ok();
    let is_set = |name: &str| env.as_ref().and_then(|e| e.get(name)).is_some();
    for name in ["KAPSO_API_KEY", "KAPSO_PHONE_NUMBER_ID"] {
        if is_set(name) { report.ok(format!("{name} is set")) } else { report.fail(format!("{name} is missing")) }
    }
    let config = match loaded {
        Ok((config, env)) => {
            if let Some(path) = &env.file_path {
                report.ok(format!("Go bridge config read from {}", path.display()));
            }
            if !env.ignored.is_empty() {
                report.warn(format!("settings not used by clawbridge: {}", env.ignored.join(", ")));
            }
            config
        }
        Err(e) => {
            report.fail(format!("configuration: {e}"));
            return verdict(&report);
        }
    };
    crate::cli::block_on(async move {
        // As the bridge will run: with the webhook secret `clawbridge setup whatsapp` stored.
        let config = match crate::channels::with_stored_secrets(config.clone(), None).await {
            Ok(completed) => completed,
            Err(e) => {
                report.fail(e);
                config
            }
        };
        preflight_checks(&config, &mut report).await;
        Ok(verdict(&report))
    })
}

async fn preflight_checks(config: &Config, report: &mut Preflight) {
    if let Some(whatsapp) = config.whatsapp() {
        report.add(go_bridge::delivery_findings(whatsapp, config.bridge.listen).await);
    }
    match config.ensure_state_dir() {
        Ok(()) => report.ok(format!("state dir {} is writable", config.bridge.state_dir.display())),
        Err(e) => report.fail(e),
    }
    match config.require_token() {
        Err(_) => report.fail(
            "OPENCLAW_TOKEN is missing (the gateway's token: `openclaw gateway auth-token --show` in a terminal on the gateway host)",
        ),
        Ok(token) => {
            report.ok("OPENCLAW_TOKEN is set");
            let url = &config.gateway.url;
            let mut gateway = GatewayConfig::new(url.clone(), Some(token.clone()), config.device_key_path());
            gateway.client_display_name = "kapso-whatsapp-cli preflight".to_owned();
            gateway.client_version = VERSION.to_owned();
            match tokio::time::timeout(Duration::from_secs(20), probe(&gateway)).await {
                Ok(Ok(hello)) => report.ok(format!(
                    "OpenClaw gateway is reachable at {url} (OpenClaw {}, protocol {})",
                    hello.server_version, hello.protocol
                )),
                Ok(Err(GatewayError::Fatal(fatal))) => report.fail(format!("OpenClaw gateway at {url} refused: {fatal}")),
                Ok(Err(e)) => report.fail(format!(
                    "Cannot reach OpenClaw gateway at {url}: {e} (start the gateway or fix OPENCLAW_GATEWAY_URL/OPENCLAW_TOKEN)"
                )),
                Err(_) => report.fail(format!("OpenClaw gateway at {url}: no handshake within 20 s")),
            }
        }
    }
    if let Some(whatsapp) = config.whatsapp() {
        report.add(go_bridge::credential_findings(whatsapp).await);
    }
}

fn verdict(report: &Preflight) -> ExitCode {
    println!();
    if report.failures > 0 {
        println!("Preflight failed: {} issue(s), {} warning(s).", report.failures, report.warnings);
        ExitCode::FAILURE
    } else {
        println!("Preflight passed: no blocking issues, {} warning(s).", report.warnings);
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawbridge_whatsapp::config::DeliveryMode;
    use std::collections::HashMap;

    #[test]
    fn the_go_config_file_configures_the_bridge() {
        let file = r#"
[kapso]
api_key = "file-key"
phone_number_id = "123"
[delivery]
mode = "domain"
[webhook]
addr = ":19000"
secret = "s3cret"
[gateway]
url = "ws://10.0.0.2:18789"
token = "file-token"
"#;
        let mut process: HashMap<String, String> = HashMap::new();
        process.insert("HOME".into(), "/tmp/compat-home".into());
        let env = GoBridgeEnv::from_parts(process, Some(file), None).unwrap();
        let config = config_of(&env).unwrap();
        let whatsapp = config.whatsapp().cloned().unwrap();
        assert_eq!(whatsapp.mode, DeliveryMode::Domain);
        assert_eq!(config.bridge.listen.port(), 19000);
        assert_eq!(config.gateway.url, "ws://10.0.0.2:18789");
    }
}
