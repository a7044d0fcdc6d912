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
//! `CLAWBRIDGE_*` variables and `CLAWBRIDGE_CONFIG` work as in `clawbridge`.

use crate::config::Config;
use crate::telemetry::init_logging;
use clap::Parser;
use clawbridge_gateway::{GatewayConfig, GatewayError, probe};
use clawbridge_whatsapp::cli::{SendArgs, print_send_result, send};
use clawbridge_whatsapp::config::DeliveryMode;
use clawbridge_whatsapp::plugin::describe;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Go bridge's environment: the process environment, its aliases, and its config file.
#[derive(Debug, Default)]
pub struct CompatEnv {
    process: HashMap<String, String>,
    file: HashMap<String, String>,
    /// Keys of the Go config file that clawbridge does not use (reported as warnings).
    pub ignored: Vec<String>,
    /// Where the Go config file was read from.
    pub file_path: Option<PathBuf>,
}

impl CompatEnv {
    /// Reads the process environment and the Go bridge's config file.
    ///
    /// # Errors
    /// An unreadable or invalid `KAPSO_CONFIG` file, or a gateway type clawbridge does not speak.
    pub fn load() -> Result<Self, String> {
        let process: HashMap<String, String> = std::env::vars().filter(|(_, v)| !v.trim().is_empty()).collect();
        let explicit = process.get("KAPSO_CONFIG").map(PathBuf::from);
        let default = process.get("HOME").map(|home| PathBuf::from(home).join(".config/kapso-whatsapp/config.toml"));
        let path = explicit.clone().or(default.filter(|p| p.is_file()));
        let text = match &path {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "KAPSO_CONFIG {}: {e}. Point KAPSO_CONFIG at the Go bridge's config.toml, or unset it",
                    path.display()
                )
            })?),
            None => None,
        };
        Self::from_parts(process, text.as_deref(), path)
    }

    /// Builds from an environment map and the text of a Go config file (tests).
    ///
    /// # Errors
    /// An invalid file, or a gateway type clawbridge does not speak.
    pub fn from_parts(
        process: HashMap<String, String>,
        go_config: Option<&str>,
        file_path: Option<PathBuf>,
    ) -> Result<Self, String> {
        let (file, ignored) = match go_config {
            Some(text) => translate_go_config(text).map_err(|e| match &file_path {
                Some(path) => format!("{}: {e}", path.display()),
                None => e,
            })?,
            None => (HashMap::new(), Vec::new()),
        };
        let env = Self { process, file, ignored, file_path };
        if let Some(kind) = env.get("GATEWAY_TYPE").filter(|t| !t.eq_ignore_ascii_case("openclaw")) {
            return Err(format!(
                "GATEWAY_TYPE={kind} is not supported: clawbridge talks to OpenClaw gateways (protocol v4). \
                 Unset GATEWAY_TYPE (or gateway.type) to use OpenClaw"
            ));
        }
        Ok(env)
    }

    /// A variable: the process environment first, then the Go bridge's aliases, then its file.
    pub fn get(&self, name: &str) -> Option<String> {
        let alias = match name {
            "OPENCLAW_GATEWAY_URL" => Some("GATEWAY_URL"),
            "OPENCLAW_TOKEN" => Some("GATEWAY_TOKEN"),
            _ => None,
        };
        let found = self
            .process
            .get(name)
            .or_else(|| alias.and_then(|a| self.process.get(a)))
            .or_else(|| self.file.get(name))
            .cloned();
        if found.is_none() && name == "KAPSO_SECURITY_MODE" && self.get("KAPSO_DM_POLICY").is_none() {
            // The Go bridge's default: only allowlisted numbers (KAPSO_ALLOWED_NUMBERS) reach the agent.
            return Some("allowlist".to_owned());
        }
        found
    }

    /// The clawbridge configuration this environment describes (no `--config` file).
    ///
    /// # Errors
    /// The configuration error, naming the variable.
    pub fn config(&self) -> Result<Config, String> {
        Config::load_with(None, &|name| self.get(name)).map_err(|e| e.to_string())
    }
}

/// Translates the Go bridge's `config.toml` into the variables that mean the same.
///
/// # Errors
/// TOML syntax errors.
pub fn translate_go_config(text: &str) -> Result<(HashMap<String, String>, Vec<String>), String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("invalid Go bridge config: {e}"))?;
    let mut vars = HashMap::new();
    let mut ignored = Vec::new();
    for (section, value) in &table {
        let Some(entries) = value.as_table() else {
            ignored.push(section.clone());
            continue;
        };
        for (key, value) in entries {
            let name = match (section.as_str(), key.as_str()) {
                ("kapso", "api_key") => "KAPSO_API_KEY",
                ("kapso", "phone_number_id") => "KAPSO_PHONE_NUMBER_ID",
                ("delivery", "mode") => "KAPSO_MODE",
                ("delivery", "poll_interval") => "KAPSO_POLL_INTERVAL",
                ("delivery", "poll_fallback") => "KAPSO_POLL_FALLBACK",
                ("webhook", "addr") => "KAPSO_WEBHOOK_ADDR",
                ("webhook", "verify_token") => "KAPSO_WEBHOOK_VERIFY_TOKEN",
                ("webhook", "secret") => "KAPSO_WEBHOOK_SECRET",
                ("gateway", "type") => "GATEWAY_TYPE",
                ("gateway", "url") => "OPENCLAW_GATEWAY_URL",
                ("gateway", "token") => "OPENCLAW_TOKEN",
                ("state", "dir") => "KAPSO_STATE_DIR",
                ("security", "mode") => "KAPSO_SECURITY_MODE",
                ("security", "roles") => {
                    // role → numbers: every listed number may talk to the agent.
                    let numbers: Vec<String> = value
                        .as_table()
                        .into_iter()
                        .flat_map(|roles| roles.values())
                        .filter_map(|v| v.as_array())
                        .flatten()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect();
                    if !numbers.is_empty() {
                        vars.insert("KAPSO_ALLOWED_NUMBERS".to_owned(), numbers.join(","));
                    }
                    continue;
                }
                _ => {
                    ignored.push(format!("{section}.{key}"));
                    continue;
                }
            };
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => {
                    ignored.push(format!("{section}.{key}"));
                    continue;
                }
            };
            vars.insert(name.to_owned(), text);
        }
    }
    ignored.sort();
    Ok((vars, ignored))
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
    init_logging(config.bridge.log_format);
    warn_ignored(&env);
    crate::cli::block_on(crate::commands::serve::run(config))
}

fn compat_config() -> Result<(Config, CompatEnv), String> {
    let env = CompatEnv::load()?;
    let config = env.config()?;
    Ok((config, env))
}

fn warn_ignored(env: &CompatEnv) {
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
    // The Go form has only --to, --text and positional words (a value may itself start with "--").
    let go_form = {
        let mut rest = args.iter();
        let mut plain = true;
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--to" | "--text" => {
                    rest.next();
                }
                other if other.starts_with("--") => plain = false,
                _ => {}
            }
        }
        plain
    };
    let send_args = if go_form {
        let (mut to, mut text) = (String::new(), String::new());
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--to" => {
                    to = args.get(i + 1).cloned().unwrap_or_default();
                    i += 1;
                }
                "--text" => {
                    text = args.get(i + 1).cloned().unwrap_or_default();
                    i += 1;
                }
                positional if to.is_empty() && positional.starts_with('+') => to = positional.to_owned(),
                positional if text.is_empty() => text = positional.to_owned(),
                _ => {}
            }
            i += 1;
        }
        if to.is_empty() || text.is_empty() {
            eprintln!("usage: kapso-whatsapp-cli send --to +NUMBER --text \"message\"");
            return ExitCode::FAILURE;
        }
        SendArgs { to, text: Some(text), account: "default".to_owned(), ..SendArgs::default() }
    } else {
        #[derive(Parser)]
        #[command(name = "kapso-whatsapp-cli send", disable_version_flag = true)]
        struct Full {
            #[command(flatten)]
            send: SendArgs,
        }
        match Full::try_parse_from(std::iter::once("send".to_owned()).chain(args.iter().cloned())) {
            Ok(full) => full.send,
            Err(e) => {
                let _ = e.print();
                return ExitCode::FAILURE;
            }
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
}

/// `preflight`: configuration, Tailscale (in tailscale mode), the gateway handshake and the
/// Kapso credentials; exit code 1 when anything blocks.
fn cli_preflight() -> ExitCode {
    println!("kapso-whatsapp preflight");
    println!("------------------------");
    let mut report = Preflight::default();
    let loaded = compat_config();
    let env = CompatEnv::load().ok();
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
        preflight_checks(&config, &mut report).await;
        Ok(verdict(&report))
    })
}

async fn preflight_checks(config: &Config, report: &mut Preflight) {
    if let Some(whatsapp) = config.whatsapp() {
        let mode = whatsapp.mode.as_str();
        match whatsapp.mode {
            DeliveryMode::Polling => {
                report.ok(format!("delivery mode: polling every {} s", whatsapp.poll_interval.as_secs()));
            }
            _ => report.ok(format!(
                "delivery mode: {mode} (webhook on {}{})",
                config.bridge.listen,
                if whatsapp.poll_fallback { ", polling as a fallback" } else { "" }
            )),
        }
        match whatsapp.validate_for_serve() {
            Err(e) => report.fail(e),
            Ok(()) if whatsapp.mode.is_public_webhook() && whatsapp.webhook_secret.is_none() => report
                .warn("KAPSO_ALLOW_UNSIGNED_WEBHOOKS: webhook signatures are not checked; anyone can post messages"),
            Ok(()) if whatsapp.webhook_secret.is_some() => {
                report.ok("KAPSO_WEBHOOK_SECRET is set (signatures checked)")
            }
            Ok(()) => {}
        }
        if whatsapp.mode == DeliveryMode::Tailscale {
            match clawbridge_whatsapp::tailscale::probe_dns_name(&whatsapp.tailscale).await {
                Ok(dns) => report.ok(format!("Tailscale is up as {dns} (the webhook goes on Tailscale Funnel)")),
                Err(e) => report.fail(format!("Tailscale: {e}")),
            }
        }
    }
    match config.ensure_state_dir() {
        Ok(()) => report.ok(format!("state dir {} is writable", config.bridge.state_dir.display())),
        Err(e) => report.fail(e),
    }
    match config.require_token() {
        Err(_) => report.fail(
            "OPENCLAW_TOKEN is missing (the gateway's token: `openclaw config get gateway.auth.token` on the gateway host)",
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
        for account in &whatsapp.accounts {
            let label = if whatsapp.accounts.len() > 1 { format!(" ({})", account.id) } else { String::new() };
            let checked = match clawbridge_whatsapp::KapsoClient::new(whatsapp, account) {
                Ok(client) => client.check_credentials().await.map_err(|e| describe(&e)),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => report.ok(format!("Kapso credentials are valid{label} (list messages returned 200)")),
                Err(e) => report.fail(format!("Kapso API check failed{label}: {e} ({})", whatsapp.base_url)),
            }
        }
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

    fn env(vars: &[(&str, &str)], file: Option<&str>) -> Result<CompatEnv, String> {
        let process = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        CompatEnv::from_parts(process, file, None)
    }

    #[test]
    fn the_go_config_file_is_translated_and_the_environment_wins() {
        let file = r#"
[kapso]
api_key = "file-key"
phone_number_id = "123"
[delivery]
mode = "domain"
poll_interval = 15
poll_fallback = true
[webhook]
addr = ":19000"
secret = "s3cret"
[gateway]
url = "ws://10.0.0.2:18789"
token = "file-token"
session_key = "main"
[security]
mode = "allowlist"
[security.roles]
admin = ["+15550001111"]
member = ["+15550002222"]
[transcribe]
provider = "groq"
"#;
        let env = env(&[("KAPSO_API_KEY", "env-key"), ("GATEWAY_TOKEN", "alias-token")], Some(file)).unwrap();
        assert_eq!(env.get("KAPSO_API_KEY").as_deref(), Some("env-key"));
        assert_eq!(env.get("KAPSO_PHONE_NUMBER_ID").as_deref(), Some("123"));
        assert_eq!(env.get("KAPSO_MODE").as_deref(), Some("domain"));
        assert_eq!(env.get("KAPSO_POLL_INTERVAL").as_deref(), Some("15"));
        assert_eq!(env.get("KAPSO_POLL_FALLBACK").as_deref(), Some("true"));
        assert_eq!(env.get("KAPSO_WEBHOOK_ADDR").as_deref(), Some(":19000"));
        assert_eq!(env.get("OPENCLAW_GATEWAY_URL").as_deref(), Some("ws://10.0.0.2:18789"));
        assert_eq!(env.get("OPENCLAW_TOKEN").as_deref(), Some("alias-token"), "GATEWAY_TOKEN beats the file");
        let numbers = env.get("KAPSO_ALLOWED_NUMBERS").unwrap();
        assert!(numbers.contains("+15550001111") && numbers.contains("+15550002222"), "{numbers}");
        assert_eq!(env.ignored, ["gateway.session_key", "transcribe.provider"]);
        // The Go bridge's default access mode stays `allowlist` unless a policy is given.
        assert_eq!(super::tests::env(&[], None).unwrap().get("KAPSO_SECURITY_MODE").as_deref(), Some("allowlist"));
        let with_policy = super::tests::env(&[("KAPSO_DM_POLICY", "pairing")], None).unwrap();
        assert_eq!(with_policy.get("KAPSO_SECURITY_MODE"), None);

        let mut process: HashMap<String, String> = HashMap::new();
        process.insert("HOME".into(), "/tmp/compat-home".into());
        let env = CompatEnv::from_parts(process, Some(file), None).unwrap();
        let config = env.config().unwrap();
        let whatsapp = config.whatsapp().cloned().unwrap();
        assert_eq!(whatsapp.mode, DeliveryMode::Domain);
        assert_eq!(config.bridge.listen.port(), 19000);
        assert_eq!(config.gateway.url, "ws://10.0.0.2:18789");
    }

    #[test]
    fn other_gateway_types_are_refused_with_the_fix() {
        let err = env(&[("GATEWAY_TYPE", "zeroclaw")], None).unwrap_err();
        assert!(err.contains("GATEWAY_TYPE") && err.contains("OpenClaw"), "{err}");
        let err = env(&[], Some("[gateway]\ntype = \"zeroclaw\"\n")).unwrap_err();
        assert!(err.contains("zeroclaw"), "{err}");
        assert!(env(&[("GATEWAY_TYPE", "openclaw")], None).is_ok());
        assert!(env(&[], Some("[kapso\n")).unwrap_err().contains("invalid Go bridge config"));
    }
}
