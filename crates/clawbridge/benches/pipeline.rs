//! Pipeline benchmark (a bench binary, not a timed test): `cargo bench -p clawbridge --bench pipeline`.
//!
//! Measures, on the embedded SQLite store:
//! 1. durable accept throughput: inbound messages/s persisted through the channel `Bridge`
//!    (what a webhook handler waits for before answering 200), gateway down so nothing else runs;
//! 2. bridge-added latency at a fixed rate: accept → store → agent run on an instant fake
//!    gateway → outbox → channel `send`, p50/p99/max, and the sustained end-to-end rate;
//! 3. the daemon's idle RSS: the release `clawbridge serve` binary connected to a gateway, idle.
//!
//! Options (environment): `BENCH_ACCEPT_N` (default 20000), `BENCH_RATE` (500 msg/s),
//! `BENCH_SECONDS` (10), `BENCH_CONCURRENCY` (64 concurrent accepts), `BENCH_ONLY`
//! (`accept`, `latency`, `rss`, comma-separated; default all), `BENCH_DATABASE_URL` (run the
//! accept and latency parts on that database instead of SQLite, e.g. a fresh PostgreSQL schema:
//! `postgres://postgres@127.0.0.1/test?options=-c%20search_path%3Dbench1`).

use clawbridge::config::Config;
use clawbridge::daemon;
use clawbridge_channel::Connector;
use clawbridge_core::InboundMessage;
use clawbridge_testkit::channel::RecordingChannel;
use clawbridge_testkit::fake_gateway::FakeGateway;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(dir: &std::path::Path, gateway_url: &str) -> Config {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("HOME", dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", dir.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", gateway_url.to_owned()),
        ("OPENCLAW_TOKEN", TOKEN.to_owned()),
        ("CLAWBRIDGE_CONCURRENCY", "64".to_owned()),
    ]);
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        vars.insert("CLAWBRIDGE_DATABASE_URL", url);
    }
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("bench config")
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
        if wanted("accept") {
            accept_throughput().await;
        }
        if wanted("latency") {
            added_latency().await;
        }
    });
    if wanted("rss") {
        idle_rss(&runtime);
    }
}

async fn accept_throughput() {
    let n: usize = env_or("BENCH_ACCEPT_N", 20_000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let (channel, recorder) = RecordingChannel::new("bench", RecordingChannel::open_policy(), 4096);
    let channel: Arc<dyn Connector> = channel;
    let daemon = daemon::start(config(dir.path(), &format!("ws://{closed}")), vec![channel]).await.expect("daemon");
    let bridge = recorder.bridge();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let bridge = bridge.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < n {
                let msg =
                    InboundMessage::text("bench", "default", format!("peer{}", i % 1000), format!("m{i}"), "hello");
                bridge.accept(msg).await.expect("accept");
                i += concurrency;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "accept: {n} messages durably accepted in {:.2} s = {:.0} msg/s ({concurrency} concurrent callers, {})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        if std::env::var("BENCH_DATABASE_URL").is_ok() { "BENCH_DATABASE_URL" } else { "SQLite WAL" }
    );
    daemon.shutdown().await;
}

async fn added_latency() {
    let rate: u64 = env_or("BENCH_RATE", 500);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let total = (rate * seconds) as usize;
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (channel, recorder) = RecordingChannel::new("bench", RecordingChannel::open_policy(), 4096);
    let channel: Arc<dyn Connector> = channel;
    let daemon = daemon::start(config(dir.path(), &fake.url()), vec![channel]).await.expect("daemon");
    daemon.gateway().wait_connected(Duration::from_secs(10)).await.expect("fake gateway connects");
    let bridge = recorder.bridge();

    let mut accepted_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut accept_times: Vec<Duration> = Vec::with_capacity(total);
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let id = format!("lat{i}");
        let msg = InboundMessage::text("bench", "default", format!("peer{}", i % 500), id.clone(), "ping");
        let before = Instant::now();
        bridge.accept(msg).await.expect("accept");
        accept_times.push(before.elapsed());
        accepted_at.insert(id, before);
    }
    recorder.wait_sent(total, Duration::from_secs(120)).await;
    let end_to_end = start.elapsed();
    let mut latencies: Vec<Duration> = recorder
        .sent_with_times()
        .into_iter()
        .filter_map(|s| {
            let id = s.message.reply_to?.into_string();
            Some(s.at.duration_since(*accepted_at.get(&id)?))
        })
        .collect();
    latencies.sort();
    accept_times.sort();
    let pct = |p: f64| percentile(&latencies, p);
    println!(
        "latency at {rate} msg/s for {seconds} s ({total} messages, 500 peers): accept→send p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; all answered after {:.2} s",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        end_to_end.as_secs_f64()
    );
    let mut to_agent: Vec<Duration> = recorder
        .started_with_times()
        .into_iter()
        .filter_map(|(id, at)| Some(at.duration_since(*accepted_at.get(&id)?)))
        .collect();
    to_agent.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  of which the durable accept: p50 {:.2} ms, p99 {:.2} ms; accept start→agent run start: p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&accept_times, 0.50)),
        ms(percentile(&accept_times, 0.99)),
        ms(percentile(&to_agent, 0.50)),
        ms(percentile(&to_agent, 0.99)),
    );
    daemon.shutdown().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(
        !sorted.is_empty(),
        "no samples: was the database fresh? (BENCH_DATABASE_URL needs an empty schema per part)"
    );
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn idle_rss(runtime: &tokio::runtime::Runtime) {
    let fake = runtime.block_on(FakeGateway::start(TOKEN));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("serve")
        .env("CLAWBRIDGE_STATE_DIR", dir.path())
        .env("CLAWBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPENCLAW_GATEWAY_URL", fake.url())
        .env("OPENCLAW_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("clawbridge serve starts");
    let ready = runtime.block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(ready, "daemon became ready");
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned()).unwrap_or_default()
    };
    println!("idle daemon (release binary, connected, SQLite): VmRSS {}, VmHWM {}", field("VmRSS:"), field("VmHWM:"));
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}
