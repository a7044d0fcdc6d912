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

    /// Something optional does not work (the agent tools): shown with the fix, exit code unchanged.
    fn warn(&mut self, what: &str, problem: impl std::fmt::Display, fix: impl std::fmt::Display) {
        match &mut self.json {
            Some(checks) => checks.push(serde_json::json!({
                "check": what, "ok": true, "warning": problem.to_string(), "fix": fix.to_string()
            })),
            None => {
                println!("warn  {what}: {problem}");
                println!("      fix: {fix}");
            }
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

/// The agent tools: whether the node is paired and approved, with the exact `openclaw` command
/// when it is not, and whether the gateway lets node tools through. The bridge works without
/// them (agents can use the CLI), so problems are warnings, not failures.
async fn tools(config: &Config, report: &mut Report) {
    use crate::tools::{NodeDiagnosis, catalog, diagnose, node_gateway_config, node_key_path};
    let published = catalog::catalog(config);
    if published.is_empty() {
        let why = if config.tools.enabled {
            "none to publish (no WhatsApp, Kakao or business-message channel is configured for them)"
        } else {
            "off ([tools] enabled = false or CLAWBRIDGE_TOOLS=off); agents use the CLI"
        };
        report.ok("tools", why);
        return;
    }
    let names: Vec<&str> = published.iter().map(|t| t.name.as_str()).collect();
    let Ok(token) = config.require_token() else { return };
    let node_id = match clawbridge_gateway::DeviceIdentity::load_or_create(&node_key_path(config)) {
        Ok(device) => device.id().to_owned(),
        Err(e) => return report.warn("tools", e, "make the state dir writable"),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let mut operator = GatewayConfig::new(config.gateway.url.clone(), Some(token.clone()), config.device_key_path());
    operator.client_display_name = "clawbridge doctor".to_owned();
    operator.role = clawbridge_gateway::ClientRole::OperatorPairing;
    let Ok(client) = clawbridge_gateway::GatewayClient::spawn(operator, stop.child_token()) else { return };
    if client.wait_connected(Duration::from_secs(20)).await.is_err() {
        // The gateway check above says why.
        return;
    }
    let describe = |client: clawbridge_gateway::GatewayClient| {
        let node_id = node_id.clone();
        async move {
            match client.request("node.describe", serde_json::json!({"nodeId": node_id}), Duration::from_secs(15)).await
            {
                Ok(v) => Ok(Some(v)),
                Err(GatewayError::Rejected { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
    };
    let mut described = match describe(client.clone()).await {
        Ok(d) => d,
        Err(e) => {
            return report.warn(
                "tools",
                format!("cannot ask the gateway about node {node_id}: {e}"),
                "run doctor again",
            );
        }
    };
    if described.is_none() {
        // Never connected: connect once as the node, which files its pairing request.
        let mut node = node_gateway_config(config);
        node.pairing_retry = None;
        let probe = clawbridge_gateway::GatewayClient::spawn(node, stop.child_token());
        if let Ok(probe) = probe {
            match probe.wait_connected(Duration::from_secs(20)).await {
                Err(GatewayError::Fatal(clawbridge_gateway::FatalError::PairingRequired { request_id, .. })) => {
                    let id = request_id.unwrap_or_else(|| "<requestId>".to_owned());
                    return report.warn(
                        "tools",
                        format!("the gateway has not paired the tools node's device {node_id} yet"),
                        format!(
                            "on the gateway host run `openclaw devices approve {id}`, then `clawbridge doctor` again for the node approval"
                        ),
                    );
                }
                Err(e) => {
                    return report.warn(
                        "tools",
                        format!("the tools node cannot connect: {e}"),
                        "see the gateway check",
                    );
                }
                Ok(_) => {}
            }
            described = describe(client.clone()).await.ok().flatten();
        }
    }
    let mut diagnosis = diagnose(&node_id, described.as_ref(), None);
    if matches!(diagnosis, NodeDiagnosis::Ready { connected: false, .. }) {
        // A node that is not connected is described with the commands it declared, whatever
        // `gateway.nodes.commands.deny` says: connect once as the node (serve is not running) and
        // look at what the gateway lets it keep.
        let mut node = node_gateway_config(config);
        node.pairing_retry = None;
        if let Ok(probe) = clawbridge_gateway::GatewayClient::spawn(node, stop.child_token())
            && probe.wait_connected(Duration::from_secs(20)).await.is_ok()
            && let Ok(Some(live)) = describe(client.clone()).await
        {
            let declared =
                live["commands"].as_array().into_iter().flatten().any(|c| c == crate::tools::catalog::COMMAND);
            if !declared {
                diagnosis = NodeDiagnosis::CommandWithheld;
            }
        }
    }
    match diagnosis {
        NodeDiagnosis::Ready { connected: true, tools } => report.ok(
            "tools",
            format!("node {node_id} is paired, approved and connected; the agent has {}", tools.join(", ")),
        ),
        NodeDiagnosis::Ready { connected: false, .. } => report.ok(
            "tools",
            format!("node {node_id} is paired and approved; `clawbridge serve` publishes {}", names.join(", ")),
        ),
        NodeDiagnosis::PendingApproval { request_id: Some(id), .. } => report.warn(
            "tools",
            format!(
                "the tools node {node_id} waits for the operator's approval ({} not available to the agent)",
                names.join(", ")
            ),
            format!("on the gateway host run `openclaw nodes approve {id}`"),
        ),
        d @ (NodeDiagnosis::PendingApproval { request_id: None, .. } | NodeDiagnosis::Unknown { .. }) => {
            report.warn("tools", format!("the tools node {node_id} is not approved"), d.problem())
        }
        d @ (NodeDiagnosis::CommandWithheld | NodeDiagnosis::ToolsDisabled) => report.warn(
            "tools",
            format!("the gateway does not give the agent the tools of node {node_id}"),
            d.problem(),
        ),
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

    tools(config, &mut report).await;

    // The operator console: open, and how; or off, and how to turn it on.
    match crate::console::off_reason(config) {
        Some(why) => report.warn("console", why, crate::console::TURN_ON),
        None if config.console.token.is_some() => {
            report.ok("console", format!("/console on {} (log in with CLAWBRIDGE_CONSOLE_TOKEN)", config.bridge.listen))
        }
        None => report.ok(
            "console",
            format!("http://{}/console (loopback listener, no token: this machine only)", config.bridge.listen),
        ),
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
