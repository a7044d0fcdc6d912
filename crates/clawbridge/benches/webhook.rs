//! WhatsApp webhook ingest benchmark (a bench binary, not a timed test):
//! `cargo bench -p clawbridge --bench webhook`.
//!
//! The daemon runs with the real WhatsApp channel in `KAPSO_MODE=domain` on the embedded SQLite
//! store; the gateway is down, so what is measured is exactly what Kapso waits for: HTTP →
//! HMAC-SHA256 check of the raw body → parse of a Kapso v2 non-batched record → durable inbox
//! insert (dedup) → `200`. Bodies and signatures are prepared before the clock starts.
//!
//! 1. throughput: `BENCH_WEBHOOK_N` (20000) distinct webhooks from `BENCH_CONCURRENCY` (64)
//!    concurrent keep-alive connections, as fast as the bridge answers;
//! 2. latency at a fixed rate: `BENCH_RATE` (1000) webhooks/s for `BENCH_SECONDS` (10), open
//!    loop (each request leaves at its due time whatever the previous ones do); p50/p99/max of
//!    the response time seen by the client.
//!
//! `BENCH_ONLY=throughput|latency` runs one part.

use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_whatsapp::webhook::sign;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "wh_sec_bench_0123456789";
const PNID: &str = "123456789012345";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` probing
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    runtime.block_on(async {
        if wanted("throughput") {
            throughput().await;
        }
        if wanted("latency") {
            latency().await;
        }
    });
}

/// A daemon with the WhatsApp channel (domain mode, signed webhooks) and no reachable gateway.
async fn start(dir: &std::path::Path) -> DaemonHandle {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let vars: HashMap<&str, String> = HashMap::from([
        ("HOME", dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", dir.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", format!("ws://{closed}")),
        ("OPENCLAW_TOKEN", "bench-token-0123456789".to_owned()),
        ("KAPSO_API_KEY", "bench-key".to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", format!("http://{closed}")),
        ("KAPSO_MODE", "domain".to_owned()),
        ("KAPSO_WEBHOOK_SECRET", SECRET.to_owned()),
        ("KAPSO_DM_POLICY", "open".to_owned()),
        ("KAPSO_ALLOW_FROM", "*".to_owned()),
    ]);
    let config = Config::load_with(None, &|k| vars.get(k).cloned()).expect("bench config");
    let connectors = clawbridge::channels::enabled(&config).expect("whatsapp channel");
    daemon::start(config, connectors).await.expect("daemon")
}

/// A signed Kapso v2 non-batched `whatsapp.message.received` delivery: (body, signature).
fn delivery(i: usize) -> (Arc<str>, Arc<str>) {
    let number = format!("1555{:07}", i % 1000);
    let body = serde_json::json!({
        "message": {"id": format!("wamid.BENCH{i:08}"), "timestamp": "1730092800", "type": "text",
                    "text": {"body": format!("benchmark message {i}")},
                    "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api", "has_media": false}},
        "conversation": {"id": format!("conv_{}", i % 1000), "phone_number": format!("+{number}"), "status": "active",
                         "phone_number_id": PNID, "kapso": {"contact_name": "Bench"}},
        "is_new_conversation": false,
        "phone_number_id": PNID
    })
    .to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    (body.into(), signature.into())
}

async fn post(client: &reqwest::Client, url: &str, body: &Arc<str>, signature: &Arc<str>, i: usize) {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", "whatsapp.message.received")
        .header("X-Idempotency-Key", format!("bench-{i}"))
        .header("X-Webhook-Signature", signature.as_ref())
        .body(body.to_string())
        .send()
        .await
        .expect("the webhook answers");
    assert_eq!(response.status(), 200, "webhook {i} was not accepted");
}

async fn throughput() {
    let n: usize = env_or("BENCH_WEBHOOK_N", 20_000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start(dir.path()).await;
    let url = format!("http://{}/webhook", daemon.addr);
    let deliveries: Arc<Vec<(Arc<str>, Arc<str>)>> = Arc::new((0..n).map(delivery).collect());
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().expect("client");

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url, deliveries) = (client.clone(), url.clone(), deliveries.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < n {
                let (body, signature) = &deliveries[i];
                post(&client, &url, body, signature, i).await;
                i += concurrency;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "webhook throughput: {n} signed Kapso webhooks verified, parsed and durably accepted in {:.2} s = {:.0} webhooks/s \
         ({concurrency} concurrent connections, SQLite WAL)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    daemon.shutdown().await;
}

async fn latency() {
    let rate: u64 = env_or("BENCH_RATE", 1000);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let total = (rate * seconds) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start(dir.path()).await;
    let url: Arc<str> = format!("http://{}/webhook", daemon.addr).into();
    let deliveries: Vec<(Arc<str>, Arc<str>)> = (0..total).map(delivery).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
    // Warm the connection pool and the store so the first requests do not measure set-up.
    for i in 0..50 {
        let (body, signature) = delivery(total + i);
        post(&client, &url, &body, &signature, total + i).await;
    }

    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (i, (body, signature)) in deliveries.into_iter().enumerate() {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            post(&client, &url, &body, &signature, i).await;
            sent.elapsed()
        }));
    }
    let mut times = Vec::with_capacity(total);
    for task in tasks {
        times.push(task.await.expect("task"));
    }
    let wall = start.elapsed();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "webhook latency at {rate}/s for {seconds} s ({total} webhooks, open loop): p50 {:.2} ms, p99 {:.2} ms, \
         p99.9 {:.2} ms, max {:.2} ms; achieved {:.0}/s",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(0.999)),
        ms(*times.last().expect("samples")),
        total as f64 / wall.as_secs_f64()
    );
    daemon.shutdown().await;
}
