//! KakaoTalk skill benchmark (a bench binary, not a timed test):
//! `cargo bench -p clawbridge --bench kakao_skill`.
//!
//! The daemon with the Kakao chatbot channel on the embedded SQLite store, a fake gateway over a
//! real WebSocket, and a fake Kakao callback receiver. Measures the time from sending a skill
//! request to its HTTP response, which Kakao cuts off at 5 s:
//! 1. `slow`: a burst of `BENCH_KAKAO_N` (500) concurrent skill requests from distinct users while
//!    the agent needs `BENCH_KAKAO_AGENT_MS` (8000 ms) per answer; half the requests carry a
//!    `callbackUrl` (answered `useCallback:true`, answer POSTed later), half not ("still working").
//!    p50/p99/max and how many were answered within 5 s; then how many callbacks arrived.
//! 2. `fast`: `BENCH_KAKAO_N` concurrent clients in a closed loop for `BENCH_SECONDS` (10) while
//!    the agent answers at once: skill requests/s answered inline, and the latency percentiles.
//!
//! Options: `BENCH_ONLY` (`slow`, `fast`), `BENCH_KAKAO_N`, `BENCH_KAKAO_AGENT_MS`, `BENCH_SECONDS`.

use axum::routing::post;
use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_testkit::fake_gateway::{FakeGateway, FakeReply};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789";
const SECRET: &str = "bench-skill-secret-0123456789";
const BOT: &str = "bench-bot";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(dir: &std::path::Path, gateway_url: &str, kakao_base: &str) -> Config {
    let vars: HashMap<&str, String> = HashMap::from([
        ("HOME", dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", dir.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", gateway_url.to_owned()),
        ("OPENCLAW_TOKEN", TOKEN.to_owned()),
        ("CLAWBRIDGE_CONCURRENCY", "512".to_owned()),
        ("KAKAO_SKILL_SECRET", SECRET.to_owned()),
        ("KAKAO_BOT_ID", BOT.to_owned()),
        ("KAKAO_BOT_API_BASE_URL", kakao_base.to_owned()),
        ("KAKAO_DM_POLICY", "open".to_owned()),
        ("KAKAO_ALLOW_FROM", "*".to_owned()),
    ]);
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("bench config")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    runtime.block_on(async {
        if wanted("slow") {
            slow_agent_burst().await;
        }
        if wanted("fast") {
            fast_agent_closed_loop().await;
        }
    });
}

struct Setup {
    daemon: DaemonHandle,
    _fake: FakeGateway,
    callbacks: Arc<AtomicUsize>,
    kakao_base: String,
    _dir: tempfile::TempDir,
}

async fn setup(agent: Duration) -> Setup {
    let callbacks = Arc::new(AtomicUsize::new(0));
    let counter = callbacks.clone();
    let router = axum::Router::new().route(
        "/v1/bots/{bot}/callback/{token}",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({"taskId": "t", "status": "SUCCESS", "message": ""}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let kakao_base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("fake kakao") });

    let fake = FakeGateway::start(TOKEN).await;
    fake.set_behavior(move |message| (FakeReply::Text(format!("답변: {message}")), agent));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &fake.url(), &kakao_base);
    let daemon = daemon::start(cfg, daemon::Channels::Configured).await.expect("daemon");
    daemon.gateway().wait_connected(Duration::from_secs(10)).await.expect("fake gateway connects");
    Setup { daemon, _fake: fake, callbacks, kakao_base, _dir: dir }
}

fn body(user: &str, utterance: &str, callback: Option<&str>) -> Value {
    let mut body = json!({
        "intent": {"id": "fallback", "name": "폴백 블록"},
        "userRequest": {"utterance": utterance, "user": {"id": format!("bu-{user}"), "type": "botUserKey",
            "properties": {"plusfriendUserKey": user}}},
        "bot": {"id": BOT, "name": "bench"},
        "action": {"id": "a", "name": "agent", "params": {}, "detailParams": {}}
    });
    if let Some(url) = callback {
        body["userRequest"]["callbackUrl"] = json!(url);
    }
    body
}

fn client(n: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(n).timeout(Duration::from_secs(30)).build().expect("client")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn slow_agent_burst() {
    let n: usize = env_or("BENCH_KAKAO_N", 500);
    let agent = Duration::from_millis(env_or("BENCH_KAKAO_AGENT_MS", 8_000));
    let s = setup(agent).await;
    let url = format!("http://{}/kakao/skill", s.daemon.addr);
    let http = client(n);
    // Warm the connection pool so the burst measures the bridge, not TCP handshakes.
    let warm: Vec<_> = (0..n).map(|_| http.get(format!("http://{}/healthz", s.daemon.addr)).send()).collect();
    futures_util::future::join_all(warm).await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            let callback = (i % 2 == 0).then(|| format!("{}/v1/bots/{BOT}/callback/t{i}", s.kakao_base));
            let payload = body(&format!("user{i}"), &format!("질문 {i}"), callback.as_deref());
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = http.post(url).header("X-Skill-Secret", SECRET).json(&payload).send().await;
                let ok = match response {
                    Ok(r) if r.status() == 200 => r.json::<Value>().await.is_ok(),
                    _ => false,
                };
                (sent.elapsed(), ok)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for task in tasks {
        let (latency, ok) = task.await.expect("task");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    let wall = started.elapsed();
    latencies.sort();
    let within = latencies.iter().filter(|d| **d < Duration::from_secs(5)).count();
    println!(
        "slow agent ({} ms), {n} concurrent skill requests (half with callbackUrl): all answered in {:.2} s = {:.0} req/s; \
         HTTP response p50 {}, p99 {}, max {}; {within}/{n} within 5 s; {failed} errors",
        agent.as_millis(),
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("samples")),
    );
    let expected = n.div_ceil(2);
    let until = Instant::now() + agent + Duration::from_secs(50);
    while s.callbacks.load(Ordering::Relaxed) < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  callbacks received: {}/{expected}, the last {:.1} s after the burst started",
        s.callbacks.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    s.daemon.shutdown().await;
}

async fn fast_agent_closed_loop() {
    let n: usize = env_or("BENCH_KAKAO_N", 500);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let s = setup(Duration::ZERO).await;
    let url = format!("http://{}/kakao/skill", s.daemon.addr);
    let http = client(n);
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let inline = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|c| {
            let (http, url, inline) = (http.clone(), url.clone(), inline.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while Instant::now() < stop_at {
                    let payload = body(&format!("client{c}"), &format!("질문 {i}"), None);
                    i += 1;
                    let sent = Instant::now();
                    if let Ok(r) = http.post(&url).header("X-Skill-Secret", SECRET).json(&payload).send().await
                        && let Ok(v) = r.json::<Value>().await
                        && v["template"]["outputs"][0]["simpleText"]["text"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("답변"))
                    {
                        inline.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let wall = started.elapsed();
    latencies.sort();
    println!(
        "instant agent, {n} concurrent clients for {seconds} s: {} skill requests = {:.0} req/s ({} answered inline); \
         HTTP response p50 {}, p99 {}, max {}",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        inline.load(Ordering::Relaxed),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("samples")),
    );
    s.daemon.shutdown().await;
}
