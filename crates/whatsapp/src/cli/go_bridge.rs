//! The Go bridge (`openclaw-kapso-whatsapp`) as clawbridge reads it, for the `kapso-whatsapp-*`
//! binaries: its environment ([`GoBridgeEnv`]: `KAPSO_*`, `OPENCLAW_*` with its `GATEWAY_URL` /
//! `GATEWAY_TOKEN` aliases, and its TOML file translated to those variables), the arguments of
//! its `send` ([`parse_send`]), and the WhatsApp lines of its `preflight` ([`delivery_findings`],
//! [`credential_findings`]).

use super::SendArgs;
use crate::config::{DeliveryMode, WhatsAppConfig};
use crate::plugin::{check_credentials, delivery_mode};
use clap::Parser;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The Go bridge's environment: the process environment, its aliases, and its config file.
#[derive(Debug, Default)]
pub struct GoBridgeEnv {
    process: HashMap<String, String>,
    file: HashMap<String, String>,
    /// Keys of the Go config file that clawbridge does not use (reported as warnings).
    pub ignored: Vec<String>,
    /// Where the Go config file was read from.
    pub file_path: Option<PathBuf>,
}

impl GoBridgeEnv {
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

/// Why `send`'s arguments were refused.
#[derive(Debug)]
pub enum SendUsage {
    /// The Go form lacks the number or the text: print the Go CLI's usage line.
    Go,
    /// The full option set did not parse: clap's message (printed as clap prints it).
    Options(clap::Error),
}

/// `send`'s arguments: the Go CLI's `--to`/`--text`/positional form, or every option of
/// `clawbridge whatsapp send`.
///
/// # Errors
/// [`SendUsage`], for the caller to print.
pub fn parse_send(args: &[String]) -> Result<SendArgs, SendUsage> {
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
    if !go_form {
        #[derive(Parser)]
        #[command(name = "kapso-whatsapp-cli send", disable_version_flag = true)]
        struct Full {
            #[command(flatten)]
            send: SendArgs,
        }
        return Full::try_parse_from(std::iter::once("send".to_owned()).chain(args.iter().cloned()))
            .map(|full| full.send)
            .map_err(SendUsage::Options);
    }
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
        return Err(SendUsage::Go);
    }
    Ok(SendArgs { to, text: Some(text), account: "default".to_owned(), ..SendArgs::default() })
}

/// One line of `preflight`: `[OK]`, `[WARN]` or `[FAIL]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Fine.
    Ok(String),
    /// Works, but the operator should know.
    Warn(String),
    /// Blocks the bridge.
    Fail(String),
}

/// The delivery mode, the webhook signature and (in tailscale mode) Tailscale.
pub async fn delivery_findings(whatsapp: &WhatsAppConfig, listen: SocketAddr) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.push(Finding::Ok(format!("delivery mode: {}", delivery_mode(whatsapp, listen))));
    match whatsapp.validate_for_serve() {
        Err(e) => findings.push(Finding::Fail(e)),
        Ok(()) if whatsapp.mode.is_public_webhook() && whatsapp.webhook_secret.is_none() => {
            findings.push(Finding::Warn(
                "KAPSO_ALLOW_UNSIGNED_WEBHOOKS: webhook signatures are not checked; anyone can post messages"
                    .to_owned(),
            ))
        }
        Ok(()) if whatsapp.webhook_secret_stored => findings.push(Finding::Ok(
            "the webhook secret stored by `clawbridge setup whatsapp` is used (signatures checked)".to_owned(),
        )),
        Ok(()) if whatsapp.webhook_secret.is_some() => {
            findings.push(Finding::Ok("KAPSO_WEBHOOK_SECRET is set (signatures checked)".to_owned()));
        }
        Ok(()) => {}
    }
    if whatsapp.mode == DeliveryMode::Tailscale {
        findings.push(match crate::tailscale::probe_dns_name(&whatsapp.tailscale).await {
            Ok(dns) => Finding::Ok(format!("Tailscale is up as {dns} (the webhook goes on Tailscale Funnel)")),
            Err(e) => Finding::Fail(format!("Tailscale: {e}")),
        });
    }
    findings
}

/// Whether Kapso accepts each configured number's credentials.
pub async fn credential_findings(whatsapp: &WhatsAppConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    for account in &whatsapp.accounts {
        let label = if whatsapp.accounts.len() > 1 { format!(" ({})", account.id) } else { String::new() };
        findings.push(match check_credentials(whatsapp, account).await {
            Ok(()) => Finding::Ok(format!("Kapso credentials are valid{label} (list messages returned 200)")),
            Err(e) => Finding::Fail(format!("Kapso API check failed{label}: {e} ({})", whatsapp.base_url)),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)], file: Option<&str>) -> Result<GoBridgeEnv, String> {
        let process = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        GoBridgeEnv::from_parts(process, file, None)
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

    #[test]
    fn send_takes_the_go_form_or_every_option() {
        let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let go = parse_send(&args(&["+15551234567", "hello", "there"])).unwrap();
        assert_eq!(
            (go.to.as_str(), go.text.as_deref(), go.account.as_str()),
            ("+15551234567", Some("hello"), "default")
        );
        let go = parse_send(&args(&["--text", "--not-a-flag", "--to", "+1"])).unwrap();
        assert_eq!(go.text.as_deref(), Some("--not-a-flag"), "a value may start with --");
        let full = parse_send(&args(&["--to", "+1", "--image", "https://x.test/a.jpg"])).unwrap();
        assert_eq!(full.image.as_deref(), Some("https://x.test/a.jpg"));
        assert!(matches!(parse_send(&args(&["+1"])), Err(SendUsage::Go)));
        assert!(matches!(parse_send(&args(&["--image", "x"])), Err(SendUsage::Options(_))));
    }
}
