//! The evidence suite (RELIABILITY.md): the real `clawbridge serve` binary, the real OpenClaw
//! gateway with the stub model, the fake Kapso — and faults on purpose. Each scenario prints one
//! line of figures (sent, acknowledged, answered, lost, answered twice, run twice, recovery)
//! and writes it as JSON to `target/chaos/<scenario>.json`.
//!
//! CI runs the short form (the defaults below). The figures in RELIABILITY.md come from the long
//! form: `CLAWBRIDGE_CHAOS_MESSAGES=10000 CLAWBRIDGE_CHAOS_PEERS=1000 CLAWBRIDGE_CHAOS_KILLS=3`.

use crate::whatsapp::{SECRET, free_port, kapso_text_record, spawn_daemon, wait_ready, whatsapp_env};
use clawbridge_testkit::fake_kapso::FakeKapso;
use clawbridge_testkit::{Gateway, GatewayOptions, StubModel};
use clawbridge_whatsapp::webhook::sign;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn scale(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The token that identifies message `k` of peer `p` in the text, in the model's reply and in
/// the send (`cx-p3-m1-end` is no substring of `cx-p3-m10-end`).
fn marker(run: &str, peer: usize, k: usize) -> String {
    format!("cx{run}-p{peer}-m{k}-end")
}

/// The `(peer, k)` of every marker in `text`.
fn markers_in(text: &str, run: &str) -> Vec<(usize, usize)> {
    let prefix = format!("cx{run}-p");
    text.match_indices(&prefix)
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let (peer, rest) = rest.split_once("-m")?;
            let (k, _) = rest.split_once("-end")?;
            Some((peer.parse().ok()?, k.parse().ok()?))
        })
        .collect()
}

/// One delivery attempt the way Kapso makes it: `None` when the bridge does not answer at all.
async fn deliver(http: &reqwest::Client, port: u16, body: &str, key: &str) -> Option<u16> {
    let sent = http
        .post(format!("http://127.0.0.1:{port}/webhook"))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", "whatsapp.message.received")
        .header("X-Webhook-Payload-Version", "v2")
        .header("X-Idempotency-Key", key)
        .header("X-Webhook-Signature", sign(SECRET.as_bytes(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    Some(sent.status().as_u16())
}

/// **kill -9 during a burst**: every peer sends its messages one after the other (the next once
/// the previous is acknowledged, as a person's phone does), redelivering like Kapso until a 200;
/// meanwhile the daemon is SIGKILLed and restarted. Every acknowledged message must be answered
/// exactly once (one model run, one send), each peer's answers in the order it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_a_burst_loses_nothing_and_answers_each_message_once_in_order() {
    let Some(install) = clawbridge_testkit::require_or_skip() else { return };
    let (messages, peers, kills) = (
        scale("CLAWBRIDGE_CHAOS_MESSAGES", 120),
        scale("CLAWBRIDGE_CHAOS_PEERS", 30),
        scale("CLAWBRIDGE_CHAOS_KILLS", 2),
    );
    let per_peer = messages.div_ceil(peers);
    let messages = per_peer * peers;
    let stub = StubModel::start();
    let gateway = Gateway::start_with_async(&install, &stub, GatewayOptions::default()).await;
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = whatsapp_env(&fake, dir.path(), &gateway.url(), gateway.token());
    env.push(("CLAWBRIDGE_DRAIN_TIMEOUT_SECS".to_owned(), "1".to_owned()));
    let port = free_port();
    let binary = env!("CARGO_BIN_EXE_clawbridge");
    let mut daemon = spawn_daemon(binary, &env, port, &["serve"]);
    wait_ready(port).await;

    let mut run = [0u8; 3];
    getrandom::fill(&mut run).unwrap();
    let run = run.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let acked = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for p in 0..peers {
        let (acked, attempts, run) = (acked.clone(), attempts.clone(), run.clone());
        load.spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            let number = format!("1555{:07}", 1_000_000 + p);
            for k in 0..per_peer {
                let body = kapso_text_record(
                    &format!("wamid.cx{run}.{p}.{k}"),
                    &number,
                    &format!("order {}", marker(&run, p, k)),
                );
                let key = format!("idem-{run}-{p}-{k}");
                let mut backoff = Duration::from_millis(50);
                loop {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if deliver(&http, port, &body, &key).await == Some(200) {
                        acked.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        });
    }

    // The kills: at evenly spread points of the burst, with a random offset.
    let mut recoveries = Vec::new();
    for n in 0..kills {
        let mut jitter = [0u8; 1];
        getrandom::fill(&mut jitter).unwrap();
        let at = messages * (n + 1) / (kills + 1) + usize::from(jitter[0]) % (messages / (kills + 1) / 2 + 1);
        let deadline = Instant::now() + Duration::from_secs(600);
        while acked.load(Ordering::Relaxed) < at.min(messages - 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.start_kill().unwrap(); // SIGKILL
        let _ = daemon.wait().await;
        let killed = Instant::now();
        daemon = spawn_daemon(binary, &env, port, &["serve"]);
        wait_ready(port).await;
        recoveries.push(killed.elapsed());
    }
    while load.join_next().await.is_some() {}
    let burst = started.elapsed();

    // Every acknowledged message answered, then a little longer to catch a late duplicate.
    let answered_all = tokio::time::timeout(Duration::from_secs(120 + 2 * messages as u64), async {
        loop {
            let sends = fake.sends_containing(&format!("cx{run}-p"));
            let mut seen = std::collections::HashSet::new();
            for s in &sends {
                seen.extend(markers_in(&s.to_string(), &run));
            }
            if seen.len() >= messages {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .is_ok();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let elapsed = started.elapsed();

    // Sends and model runs per message; each peer's answers in order.
    let mut sends_of: HashMap<(usize, usize), usize> = HashMap::new();
    let mut order: HashMap<usize, Vec<usize>> = HashMap::new();
    for send in fake.sends() {
        for (p, k) in markers_in(&send.to_string(), &run) {
            *sends_of.entry((p, k)).or_default() += 1;
            order.entry(p).or_default().push(k);
        }
    }
    let mut runs_of: HashMap<(usize, usize), usize> = HashMap::new();
    for request in stub.requests() {
        for pk in markers_in(&request.user_text, &run) {
            *runs_of.entry(pk).or_default() += 1;
        }
    }
    let acknowledged = acked.load(Ordering::Relaxed);
    let answered = sends_of.len();
    let lost = messages - answered;
    let answered_twice = sends_of.values().filter(|&&n| n > 1).count();
    let run_twice = runs_of.values().filter(|&&n| n > 1).count();
    let out_of_order: Vec<usize> =
        order.iter().filter(|(_, ks)| ks.windows(2).any(|w| w[0] > w[1])).map(|(p, _)| *p).collect();
    let recovery_ms: Vec<u128> = recoveries.iter().map(Duration::as_millis).collect();
    let figures = json!({
        "scenario": "kill -9 during a burst",
        "messages": messages, "peers": peers, "kills": kills,
        "deliveries_attempted": attempts.load(Ordering::Relaxed),
        "acknowledged": acknowledged, "answered": answered, "lost": lost,
        "answered_twice": answered_twice, "model_run_twice": run_twice,
        "peers_out_of_order": out_of_order.len(),
        "recovery_ms": recovery_ms,
        "burst_secs": burst.as_secs_f64(), "all_answered_secs": elapsed.as_secs_f64(),
    });
    report("kill-nine", &figures);
    let _ = daemon.start_kill();

    assert!(answered_all, "not every acknowledged message was answered: {figures}");
    assert_eq!(acknowledged, messages, "{figures}");
    assert_eq!(lost, 0, "{figures}");
    assert_eq!(answered_twice, 0, "{figures}");
    assert_eq!(run_twice, 0, "{figures}");
    assert!(out_of_order.is_empty(), "peers {out_of_order:?} got answers out of order: {figures}");
}

/// Prints the figures and keeps them as `target/chaos/<name>.json`.
fn report(name: &str, figures: &Value) {
    eprintln!("chaos {name}: {figures}");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(figures).unwrap()).unwrap();
}

#[test]
fn markers_are_found_exactly() {
    let text = "STUB-REPLY: you said: \"order cxab-p3-m1-end and cxab-p3-m10-end\"";
    assert_eq!(markers_in(text, "ab"), vec![(3, 1), (3, 10)]);
    assert!(markers_in("cxab-p3-m1", "ab").is_empty());
}
