//! `clawbridge status`: queue depths and dead letters from the store, gateway state from the
//! running daemon's `/readyz`.

use crate::bridge::StoreBridge;
use crate::config::Config;
use crate::util::format_epoch_ms;
use clawbridge_core::ids::mask_lane;
use clawbridge_kakao::chatbot::status::KakaoStatus;
use clawbridge_store::redact_url;
use serde_json::{Value, json};
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
    let kakao = kakao_chatbot(&store, config).await?;

    if as_json {
        let report = json!({
            "store": {"backend": store.backend(), "url": redact_url(&config.bridge.database_url)},
            "queues": stats,
            "dead_letters": dead,
            "daemon": daemon,
            "kakao_chatbot": kakao,
            "whatsapp_webhook": if daemon.is_null() { None } else { crate::edge::published_webhook_url(config) },
        });
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
            if let Some(url) = crate::edge::published_webhook_url(config) {
                println!("webhook: {url} (Tailscale Funnel; register it in Kapso)");
            }
        }
    }
    print_kakao_chatbot(kakao.as_ref());
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

/// The KakaoTalk chatbot's channel events, callback outcomes and pushes (`None` when the chatbot
/// is neither configured nor has left any record). The Kakao crate reads its own records.
async fn kakao_chatbot(store: &clawbridge_store::SharedStore, config: &Config) -> anyhow::Result<Option<KakaoStatus>> {
    let bridge = StoreBridge::new(store.clone(), Arc::default(), "clawbridge-status".to_owned());
    let summary = clawbridge_kakao::chatbot::status::summary(&bridge).await?;
    Ok((config.kakao().chatbot.is_some() || summary.has_records()).then_some(summary))
}

fn print_kakao_chatbot(report: Option<&KakaoStatus>) {
    let Some(report) = report else { return };
    let users = report.channel_users;
    println!("kakao:   channel friends added {}, blocked {} (channel webhook)", users.added, users.blocked);
    for event in &report.recent_channel_events {
        println!(
            "  channel event {} {} at {}",
            event.event.as_deref().unwrap_or("?"),
            event.id.as_deref().unwrap_or("?"),
            event.received_at.map(format_epoch_ms).unwrap_or_default()
        );
    }
    if report.callbacks_last_week.is_empty() {
        println!("  callbacks: none recorded");
    } else {
        let parts: Vec<String> = report.callbacks_last_week.iter().map(|(status, n)| format!("{n} {status}")).collect();
        println!("  callbacks (last week): {}", parts.join(", "));
    }
    if let Some(failure) = &report.last_callback_failure {
        println!("  last callback failure: {} {} at {}", failure.status, failure.message, format_epoch_ms(failure.at));
    }
    for push in &report.recent_pushes {
        println!(
            "  push {} event {} to {} user(s): {} at {}",
            push.task_id,
            push.task.event,
            push.task.users,
            push.task.status,
            format_epoch_ms(push.task.at)
        );
    }
}
