//! `clawbridge doctor`: every check a newcomer (or the operator at 3 a.m.) needs, each with the fix.

use crate::config::Config;
use crate::util::now_ms;
use clawbridge_channel::plugin::Problem;
use clawbridge_gateway::{GatewayConfig, GatewayError, probe};
use clawbridge_store::{MasterKey, redact_url};
use secrecy::ExposeSecret;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The checks as they run: printed one by one for a person, or kept for one JSON document.
struct Report {
    failed: bool,
    json: Option<Vec<serde_json::Value>>,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        match &mut self.json {
            Some(checks) => checks.push(serde_json::json!({"check": what, "ok": true, "detail": detail.to_string()})),
            None => println!("ok    {what}: {detail}"),
        }
    }

    fn fail(&mut self, what: &str, problem: impl std::fmt::Display, fix: impl std::fmt::Display) {
        self.failed = true;
        match &mut self.json {
            Some(checks) => checks.push(serde_json::json!({
                "check": what, "ok": false, "problem": problem.to_string(), "fix": fix.to_string()
            })),
            None => {
                println!("FAIL  {what}: {problem}");
                println!("      fix: {fix}");
            }
        }
    }
}

/// Runs the checks; exit code 1 when any fails. `json`: one document
/// `{"ok": bool, "checks": [{"check", "ok", "detail" | "problem" + "fix"}]}` instead of lines.
///
/// # Errors
/// None in practice: every problem is reported as a failed check.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let mut report = Report { failed: false, json: json.then(Vec::new) };
    match &config.source {
        Some(path) => report.ok("config", format!("{} + environment", path.display())),
        None => report.ok("config", "environment only (no --config / CLAWBRIDGE_CONFIG)"),
    }

    let state_ok = match config.ensure_state_dir() {
        Ok(()) => {
            report.ok("state dir", format!("{} (writable)", config.bridge.state_dir.display()));
            true
        }
        Err(e) => {
            report.fail("state dir", &e, "see above");
            false
        }
    };

    let url = redact_url(&config.bridge.database_url);
    match clawbridge_store::open(&config.bridge.database_url).await {
        Ok(store) => match store.check_writable(now_ms()).await {
            Ok(()) => report.ok("store", format!("{} {url} (migrations applied, writable)", store.backend())),
            Err(e) => report.fail("store", format!("{url}: {e}"), "check the database permissions and free disk space"),
        },
        Err(e) => report.fail(
            "store",
            format!("{url}: {e}"),
            "set CLAWBRIDGE_DATABASE_URL to sqlite://PATH or postgres://USER@HOST/DB (unset = SQLite in the state dir)",
        ),
    }

    if state_ok {
        let env_key = config.bridge.master_key.as_ref().map(|k| k.expose_secret().to_owned());
        match MasterKey::from_env_or_file(env_key.as_deref(), &config.bridge.state_dir) {
            Ok(_) => report.ok(
                "master key",
                if env_key.is_some() {
                    "CLAWBRIDGE_MASTER_KEY".to_owned()
                } else {
                    format!("{}/master.key (0600)", config.bridge.state_dir.display())
                },
            ),
            Err(e) => report.fail("master key", &e, "see above"),
        }
    }

    match config.require_token() {
        Err(e) => report.fail("gateway", &e, "export OPENCLAW_TOKEN=…"),
        Ok(token) => {
            let mut gateway =
                GatewayConfig::new(config.gateway.url.clone(), Some(token.clone()), config.device_key_path());
            gateway.client_display_name = "clawbridge doctor".to_owned();
            gateway.client_version = env!("CARGO_PKG_VERSION").to_owned();
            match tokio::time::timeout(Duration::from_secs(20), probe(&gateway)).await {
                Ok(Ok(hello)) => report.ok(
                    "gateway",
                    format!(
                        "{} — OpenClaw {} (protocol {}), scopes {}",
                        config.gateway.url,
                        hello.server_version,
                        hello.protocol,
                        hello.scopes.join(",")
                    ),
                ),
                Ok(Err(GatewayError::Fatal(fatal))) => {
                    report.fail("gateway", format!("{}: refused the connection", config.gateway.url), fatal)
                }
                Ok(Err(e)) => report.fail(
                    "gateway",
                    format!("{}: {e}", config.gateway.url),
                    "start the gateway (`openclaw gateway run`) or set OPENCLAW_GATEWAY_URL to where it listens",
                ),
                Err(_) => report.fail(
                    "gateway",
                    format!("{}: no handshake within 20 s", config.gateway.url),
                    "check that OPENCLAW_GATEWAY_URL points at an OpenClaw gateway and that it has finished starting",
                ),
            }
        }
    }

    // Each channel's own checks (credentials, delivery mode, a login), from its plugin.
    let shared = Arc::new(config.clone());
    for (id, settings) in &config.channels {
        let host = crate::commands::host::host_info(&shared, id);
        // As `serve` will run them: with what the channel's setup stored (a webhook secret).
        let settings = match settings.with_stored_secrets(host.cli.as_ref()).await {
            Ok(completed) => completed.unwrap_or_else(|| settings.clone()),
            Err(e) => {
                report.fail(&format!("{id} stored secrets"), e, "see above");
                settings.clone()
            }
        };
        for check in settings.doctor(&host).await {
            match check.outcome {
                Ok(detail) => report.ok(&check.what, detail),
                Err(Problem { problem, fix }) => report.fail(&check.what, problem, fix),
            }
        }
    }

    if let Some(checks) = report.json.take() {
        println!("{}", serde_json::json!({"ok": !report.failed, "checks": checks}));
    } else if report.failed {
        println!("\nSome checks failed.");
    } else {
        println!("\nAll checks passed.");
    }
    Ok(if report.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
