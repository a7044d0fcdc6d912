//! WhatsApp webhook ingest benchmark (a bench binary, not a timed test):
//! `cargo bench -p clawbridge --bench webhook`.
//!
//! The daemon runs with the real WhatsApp channel in `KAPSO_MODE=domain` on the embedded SQLite
//! store; the gateway is down, so what is measured is exactly what Kapso waits for: HTTP →
//! HMAC-SHA256 check of the raw body → parse of a Kapso v2 non-batched record → durable inbox
//! insert (dedup) → `200`. Requests (body, signature, headers) are prepared before the clock
//! starts and sent by a minimal HTTP/1.1 keep-alive client, so that the load generator, which
//! shares the machine's two cores with the bridge, takes as little of them as possible.
//!
//! 1. throughput: `BENCH_WEBHOOK_N` (20000) distinct webhooks from `BENCH_CONCURRENCY` (64)
//!    concurrent keep-alive connections, as fast as the bridge answers;
//! 2. latency at a fixed rate: `BENCH_RATE` (1000) webhooks/s for `BENCH_SECONDS` (10), open
//!    loop (each request leaves at its due time whatever the previous ones do); p50/p99/max from
//!    the time the request was due to the complete `200` response.
//!
//! `BENCH_ONLY=throughput|latency` runs one part.

use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_whatsapp::webhook::sign;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A signed Kapso v2 non-batched `whatsapp.message.received` delivery, as the raw HTTP/1.1
/// request Kapso would send.
fn delivery(i: usize) -> Arc<[u8]> {
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
    format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Webhook-Event: whatsapp.message.received\r\nX-Webhook-Payload-Version: v2\r\n\
         X-Idempotency-Key: bench-{i}\r\nX-Webhook-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into()
}

/// Keep-alive connections to the bridge, reused by whichever request needs one.
#[derive(Clone)]
struct Connections {
    addr: std::net::SocketAddr,
    idle: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Connections {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self { addr, idle: Arc::default() }
    }

    /// Sends one request on an idle (or new) connection and checks that the answer is 200.
    async fn post(&self, request: &[u8], i: usize) {
        let idle = self.idle.lock().expect("pool").pop();
        let mut stream = match idle {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                stream
            }
        };
        stream.write_all(request).await.expect("write");
        let status = read_response(&mut stream).await;
        assert_eq!(status, 200, "webhook {i} was not accepted");
        self.idle.lock().expect("pool").push(stream);
    }
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body); returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buffer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the bridge closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("status line");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        while buffer.len() < end + 4 + length {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "the bridge closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
        }
        return status;
    }
}

async fn throughput() {
    let n: usize = env_or("BENCH_WEBHOOK_N", 20_000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start(dir.path()).await;
    let connections = Connections::new(daemon.addr);
    let deliveries: Arc<Vec<Arc<[u8]>>> = Arc::new((0..n).map(delivery).collect());

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (connections, deliveries) = (connections.clone(), deliveries.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < n {
                connections.post(&deliveries[i], i).await;
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
    let connections = Connections::new(daemon.addr);
    let deliveries: Vec<Arc<[u8]>> = (0..total).map(delivery).collect();
    // Warm the connections and the store so the first requests do not measure set-up.
    let warm: Vec<_> = (0..64)
        .map(|i| {
            let connections = connections.clone();
            tokio::spawn(async move { connections.post(&delivery(total + i), total + i).await })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up");
    }

    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (i, request) in deliveries.into_iter().enumerate() {
        // Timed from when the request was due, so a late start counts (no coordinated omission).
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let connections = connections.clone();
        tasks.push(tokio::spawn(async move {
            connections.post(&request, i).await;
            due.elapsed()
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
