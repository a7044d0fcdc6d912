//! `clawbridge status`: queue depths and dead letters from the store, gateway state from the
//! running daemon's `/readyz`.

use crate::bridge::StoreBridge;
use crate::config::Config;
use crate::util::format_epoch_ms;
use clawbridge_channel::plugin::ChannelStatus;
use clawbridge_core::ids::mask_lane;
use clawbridge_store::redact_url;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Prints the status; exit code 0 even when there are dead letters (they are information).
///
/// # Errors
/// When the store cannot be opened.
pub async fn run(config: &Config, as_json: bool, dead_limit: u32) -> anyhow::Result<ExitCode> {
    let store = clawbridge_store::open(&config.bridge.database_url).await?;
    let stats = store.queue_stats().await?;
    let dead = store.dead_letters(dead_limit).await?;
    let daemon = daemon_readiness(config.bridge.listen).await;
    let channels = channel_statuses(&store, config).await?;
    let bizmsg = store.bizmsg_stats().await?;
    let calls = tool_calls(&store, 10).await;
    let bizmsg_shown =
        config.channel::<clawbridge_bizmsg::config::BizmsgConfig>(clawbridge_bizmsg::plugin::ID).is_some()
            || !bizmsg.states.is_empty();

    if as_json {
        let mut report = Map::new();
        report.insert(
            "store".to_owned(),
            json!({"backend": store.backend(), "url": redact_url(&config.bridge.database_url)}),
        );
        report.insert("queues".to_owned(), serde_json::to_value(stats)?);
        report.insert("dead_letters".to_owned(), serde_json::to_value(&dead)?);
        report.insert("daemon".to_owned(), daemon.clone());
        for channel in channels {
            report.insert(channel.key.to_owned(), channel.json);
        }
        if bizmsg_shown {
            let counts =
                |rows: &[(String, u64)]| rows.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<Map<_, _>>();
            report.insert(
                "bizmsg".to_owned(),
                json!({"states": counts(&bizmsg.states), "results": counts(&bizmsg.results)}),
            );
        }
        let published: Vec<&str> = crate::tools::catalog::catalog(config).iter().map(|t| t.name.as_str()).collect();
        report.insert(
            "tools".to_owned(),
            json!({"published": published, "node": daemon.get("tools").cloned().unwrap_or(Value::Null),
                   "calls": serde_json::to_value(&calls)?}),
        );
        let webhook = if daemon.is_null() { None } else { crate::edge::published_webhook_url(config) };
        report.insert("whatsapp_webhook".to_owned(), json!(webhook));
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }

    println!("store:   {} {}", store.backend(), redact_url(&config.bridge.database_url));
    println!(
        "inbox:   {} pending, {} processing, {} failed, {} done",
        stats.inbox_pending, stats.inbox_processing, stats.inbox_failed, stats.inbox_done
    );
    println!(
        "outbox:  {} queued, {} sending, {} retry, {} sent, {} dead, {} delivery failed",
        stats.outbox_queued,
        stats.outbox_sending,
        stats.outbox_retry,
        stats.outbox_sent,
        stats.outbox_dead,
        stats.delivery_failed
    );
    match &daemon {
        Value::Null => println!("daemon:  not running (nothing answers on {})", probe_addr(config.bridge.listen)),
        report => {
            let gateway = &report["gateway"];
            let state = gateway["state"].as_str().unwrap_or("unknown");
            let detail = match state {
                "connected" => format!(
                    "OpenClaw {} (protocol {})",
                    gateway["server_version"].as_str().unwrap_or("?"),
                    gateway["protocol"]
                ),
                "fatal" => gateway["error"].as_str().unwrap_or("").to_owned(),
                "reconnecting" => format!(
                    "attempt {}, last error: {}",
                    gateway["attempt"],
                    gateway["last_error"].as_str().unwrap_or("")
                ),
                _ => String::new(),
            };
            println!("daemon:  {} (ready: {})", probe_addr(config.bridge.listen), report["ready"]);
            println!("gateway: {state} {detail}");
            if let Some(accounts) = report["accounts"].as_object() {
                for (name, status) in accounts {
                    let reason = status["reason"].as_str().map(|r| format!(" — {r}")).unwrap_or_default();
                    println!("channel: {name} {}{reason}", status["state"].as_str().unwrap_or("?"));
                }
            }
            if let Some(line) = tools_line(&report["tools"]) {
                println!("{line}");
            }
            if let Some(url) = crate::edge::published_webhook_url(config) {
                println!("webhook: {url} (Tailscale Funnel; register it in Kapso)");
            }
        }
    }
    for line in channels.iter().flat_map(|channel| &channel.lines) {
        println!("{line}");
    }
    if bizmsg_shown {
        let count = |rows: &[(String, u64)], key: &str| rows.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
        let (states, results) = (&bizmsg.states, &bizmsg.results);
        println!(
            "bizmsg:  {} queued, {} sending, {} retry, {} accepted ({} delivered, {} failed, {} pending), {} not sent",
            count(states, "queued"),
            count(states, "sending"),
            count(states, "retry"),
            count(states, "accepted"),
            count(results, "delivered"),
            count(results, "failed"),
            count(results, "pending"),
            count(states, "dead")
        );
    }
    if !calls.is_empty() {
        println!("tool calls (newest first):");
        for call in &calls {
            println!(
                "  {} {} → {} {}: {} (session {})",
                format_epoch_ms(call.at),
                call.tool,
                call.to,
                call.status,
                call.result,
                call.session.as_deref().unwrap_or("-")
            );
        }
    }
    if dead.is_empty() {
        println!("dead letters: none");
    } else {
        println!("dead letters (newest first):");
        for letter in &dead {
            println!(
                "  {} #{} {} after {} attempt(s) at {}: {}",
                letter.queue,
                letter.id,
                mask_lane(&letter.lane),
                letter.attempts,
                format_epoch_ms(letter.at),
                letter.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The last `limit` agent tool calls, newest first (unreadable records are skipped).
async fn tool_calls(store: &clawbridge_store::SharedStore, limit: u32) -> Vec<crate::tools::calls::CallRecord> {
    let entries = store.list_state(crate::tools::calls::CALLS, limit, crate::util::now_ms()).await.unwrap_or_default();
    let mut calls: Vec<crate::tools::calls::CallRecord> =
        entries.iter().filter_map(|e| serde_json::from_str(&e.value).ok()).collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.at));
    calls
}

/// `tools:` of the daemon's report: the node's state, what the gateway accepted, the problem.
fn tools_line(tools: &Value) -> Option<String> {
    let node = tools.get("node_id")?.as_str()?;
    let list = |key: &str| {
        tools[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let short: String = node.chars().take(12).collect();
    let state = tools["state"].as_str().unwrap_or("?");
    let mut line = format!("tools:   node {short}… {state}; publishes {}", list("published"));
    if state == "connected" {
        line.push_str(&format!(
            "; the gateway holds {}",
            if list("accepted").is_empty() { "none".to_owned() } else { list("accepted") }
        ));
    } else if let Some(connection) = tools["connection"].as_str() {
        line.push_str(&format!(" ({connection})"));
    }
    if let Some(problem) = tools["problem"].as_str() {
        line.push_str(&format!(" — {problem}"));
    }
    Some(line)
}

/// Where a local client reaches the listener (`0.0.0.0` means "this host").
fn probe_addr(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() { SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port()) } else { listen }
}

/// The daemon's `/readyz` JSON, or `Null` when nothing answers.
async fn daemon_readiness(listen: SocketAddr) -> Value {
    let url = format!("http://{}/readyz", probe_addr(listen));
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(3)).build() else {
        return Value::Null;
    };
    match client.get(url).send().await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Each registered channel's part of the report, read by its plugin from its own records (a
/// channel that is not configured may still have some).
async fn channel_statuses(
    store: &clawbridge_store::SharedStore,
    config: &Config,
) -> anyhow::Result<Vec<ChannelStatus>> {
    let bridge = StoreBridge::new(store.clone(), Arc::default(), "clawbridge-status".to_owned());
    let mut statuses = Vec::new();
    for plugin in crate::channels::plugins().iter() {
        let settings = config.channels.iter().find(|(id, _)| *id == plugin.id()).map(|(_, s)| s.as_ref());
        statuses.extend(plugin.status(settings, &bridge).await?);
    }
    Ok(statuses)
}
