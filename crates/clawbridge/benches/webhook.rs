//! WhatsApp webhook ingest benchmark (a bench binary, not a timed test):
//! `cargo bench -p clawbridge --bench webhook`.
//!
//! The server under test runs in a child process (this binary again, `BENCH_ROLE=server`), so
//! its CPU time can be read from `/proc/<pid>/stat` (utime + stime, every thread of the
//! process) without counting the load generator, which stays in this process. The child sets
//! itself up as `clawbridge serve` does: the same log subscriber (`RUST_LOG`, default `info`,
//! written to `server.log` in the run's temporary directory — one line per accepted message, as
//! in production), the same multi-threaded runtime, the daemon with the real WhatsApp channel in
//! `KAPSO_MODE=domain` on the embedded SQLite store, the gateway down. So what is measured is
//! exactly what Kapso waits for: HTTP → HMAC-SHA256 check of the raw body → parse and
//! normalisation → durable inbox insert (dedup) → `200`. Requests (body, signature, headers)
//! are prepared before the clock starts and sent by a minimal HTTP/1.1 keep-alive client.
//!
//! 1. throughput: `BENCH_WEBHOOK_N` (20000) distinct webhooks from `BENCH_CONCURRENCY` (64)
//!    concurrent keep-alive connections, as fast as the bridge answers;
//! 2. latency at a fixed rate: `BENCH_RATE` (1000) webhooks/s for `BENCH_SECONDS` (10), open
//!    loop (each request leaves at its due time whatever the previous ones do); p50/p99/max from
//!    the time the request was due to the complete `200` response;
//! 3. ceiling: the throughput run against the same HTTP stack (axum, the daemon's body limit,
//!    the webhook's body read) doing only the HMAC check before a fixed `200` — no parse, no
//!    store, no logs: what the bridge could answer at best on this machine. Ingest is reported
//!    as a ratio to it.
//!
//! `BENCH_ONLY=throughput,latency,ceiling` runs some parts; `BENCH_PAYLOAD=kapso|meta` (kapso)
//! picks Kapso v2 non-batched records or Meta-format deliveries (`X-Hub-Signature-256`).
//! `BENCH_SERVER_WRAPPER` runs the server under a command, e.g.
//! `BENCH_SERVER_WRAPPER='valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p'`.
//! `BENCH_SERVER_SECONDS` keeps the throughput part's server running until that many seconds
//! after it started: two callgrind runs of different `BENCH_WEBHOOK_N` then cover the same wall
//! time, so the daemon's periodic work (queue polls, reconnect attempts) cancels out of their
//! difference, which is the cost of the extra requests (see `callgrind.py` next to this file).

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clawbridge::config::Config;
use clawbridge_whatsapp::webhook::{self, sign};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
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
    if std::env::var("BENCH_ROLE").as_deref() == Ok("server") {
        serve();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    let payload = Payload::from_env();
    println!("payload: {payload:?}; load average before: {}", load_average());
    runtime.block_on(async {
        let ingest = if wanted("throughput") { Some(throughput(ServerKind::Daemon, payload).await) } else { None };
        if wanted("latency") {
            latency(payload).await;
        }
        let ceiling = if wanted("ceiling") { Some(throughput(ServerKind::Ceiling, payload).await) } else { None };
        if let (Some(ingest), Some(ceiling)) = (ingest, ceiling) {
            println!(
                "ingest / ceiling: throughput {:.2} ({:.0} / {:.0} webhooks/s), server CPU per request {:.2}× ({:.0} / {:.0} µs)",
                ingest.rate / ceiling.rate,
                ingest.rate,
                ceiling.rate,
                ingest.server_us / ceiling.server_us,
                ingest.server_us,
                ceiling.server_us
            );
        }
    });
    println!("load average after: {}", load_average());
}

// ---- The server process ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerKind {
    /// The daemon with the WhatsApp channel.
    Daemon,
    /// The HTTP stack and the HMAC check only.
    Ceiling,
}

/// `BENCH_ROLE=server`: starts the server, prints `listening <addr>`, serves until stdin closes.
fn serve() {
    let kind = if std::env::var("BENCH_SERVER").as_deref() == Ok("ceiling") {
        ServerKind::Ceiling
    } else {
        ServerKind::Daemon
    };
    let dir = std::path::PathBuf::from(std::env::var("BENCH_DIR").expect("BENCH_DIR"));
    let config = daemon_config(&dir);
    // As `clawbridge serve` does (cli.rs): logs, TLS provider, the default multi-threaded runtime.
    clawbridge::telemetry::init_logging(config.bridge.log_format, clawbridge::telemetry::Verbosity::Daemon);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let (addr, stop): (std::net::SocketAddr, Box<dyn FnOnce() -> tokio::task::JoinHandle<()>>) = match kind {
            ServerKind::Daemon => {
                let daemon =
                    clawbridge::daemon::start(config, clawbridge::daemon::Channels::Configured).await.expect("daemon");
                let addr = daemon.addr;
                (addr, Box::new(move || tokio::spawn(daemon.shutdown())))
            }
            ServerKind::Ceiling => {
                let app = axum::Router::new()
                    .route("/webhook", axum::routing::post(ceiling_receive))
                    .layer(DefaultBodyLimit::max(clawbridge::http::DEFAULT_BODY_LIMIT));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                let served = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
                (addr, Box::new(move || tokio::spawn(async move { served.abort() })))
            }
        };
        println!("listening {addr}");
        std::io::stdout().flush().expect("stdout");
        // Serve until the coordinator closes our stdin.
        let _ =
            tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())).await;
        let _ = stop().await;
    });
}

/// The ceiling's handler: the webhook's body read (same limit) and signature check, then a
/// fixed answer of the same shape as the webhook's.
async fn ceiling_receive(headers: HeaderMap, body: axum::body::Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, webhook::MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if !webhook::verify_signature(SECRET.as_bytes(), &bytes, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"accepted":1,"dead_letters":0,"duplicates":0,"ignored":0,"ok":true,"statuses":0}"#,
    )
        .into_response()
}

/// The daemon's configuration: the WhatsApp channel (domain mode, signed webhooks) and no
/// reachable gateway.
fn daemon_config(dir: &std::path::Path) -> Config {
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
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("bench config")
}

/// A server process and the pipe that keeps it running.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(kind: ServerKind) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("own path");
        let wrapper = std::env::var("BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut child = command
            .env("BENCH_ROLE", "server")
            .env("BENCH_SERVER", if kind == ServerKind::Ceiling { "ceiling" } else { "daemon" })
            .env("BENCH_DIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("server address");
        let addr = line.trim().strip_prefix("listening ").and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("the server did not start: {line:?}\n{log}")
        });
        let stdin = child.stdin.take();
        Self { child, stdin, addr, _dir: dir }
    }

    /// The server's CPU time so far (user, system; all its threads).
    fn cpu(&self) -> Cpu {
        process_cpu(&format!("/proc/{}/stat", self.child.id()))
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// CPU time of a process: user and system.
#[derive(Clone, Copy)]
struct Cpu {
    user: Duration,
    system: Duration,
}

/// utime and stime of `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn process_cpu(stat_path: &str) -> Cpu {
    let stat = std::fs::read_to_string(stat_path).expect("process stat");
    // The command name (field 2) is parenthesised and may contain spaces: count from after it.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 1..].split_whitespace().collect();
    let ticks =
        |i: usize| Duration::from_secs_f64(fields[i].parse::<f64>().expect("cpu ticks") / clock_ticks_per_second());
    Cpu { user: ticks(11), system: ticks(12) }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- Requests -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// Kapso v2 non-batched `whatsapp.message.received`, `X-Webhook-Signature`.
    Kapso,
    /// Meta's `whatsapp_business_account` shape, `X-Hub-Signature-256`.
    Meta,
}

impl Payload {
    fn from_env() -> Self {
        match std::env::var("BENCH_PAYLOAD").as_deref() {
            Ok("meta") => Self::Meta,
            _ => Self::Kapso,
        }
    }
}

/// A signed delivery of one text message, as the raw HTTP/1.1 request the platform would send.
fn delivery(payload: Payload, i: usize) -> Arc<[u8]> {
    let number = format!("1555{:07}", i % 1000);
    let body = match payload {
        Payload::Kapso => serde_json::json!({
            "message": {"id": format!("wamid.BENCH{i:08}"), "timestamp": "1730092800", "type": "text",
                        "text": {"body": format!("benchmark message {i}")},
                        "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api", "has_media": false}},
            "conversation": {"id": format!("conv_{}", i % 1000), "phone_number": format!("+{number}"), "status": "active",
                             "phone_number_id": PNID, "kapso": {"contact_name": "Bench"}},
            "is_new_conversation": false,
            "phone_number_id": PNID
        }),
        Payload::Meta => serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
                "contacts": [{"profile": {"name": "Bench"}, "wa_id": number}],
                "messages": [{"from": number, "id": format!("wamid.BENCH{i:08}"), "timestamp": "1730092800",
                              "type": "text", "text": {"body": format!("benchmark message {i}")}}]}}]}]
        }),
    }
    .to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    let headers = match payload {
        Payload::Kapso => format!(
            "X-Webhook-Event: whatsapp.message.received\r\nX-Webhook-Payload-Version: v2\r\n\
             X-Idempotency-Key: bench-{i}\r\nX-Webhook-Signature: {signature}\r\n"
        ),
        Payload::Meta => format!("X-Hub-Signature-256: sha256={signature}\r\n"),
    };
    format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
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

// ---- The parts ------------------------------------------------------------------------------

/// What a throughput run measured.
struct Measured {
    rate: f64,
    server_us: f64,
}

/// CPU per request of the server and of this process (the load generator) over a window.
struct CpuWindow {
    server: Cpu,
    own: Cpu,
}

/// CPU µs per request over a window.
struct PerRequest {
    /// The server's user + system time.
    server: f64,
    server_user: f64,
    server_system: f64,
    /// The load generator's user + system time.
    client: f64,
}

impl CpuWindow {
    fn start(server: &Server) -> Self {
        Self { server: server.cpu(), own: process_cpu("/proc/self/stat") }
    }

    fn per_request(&self, server: &Server, requests: usize) -> PerRequest {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        let (now, own) = (server.cpu(), process_cpu("/proc/self/stat"));
        let (user, system) = (per(now.user - self.server.user), per(now.system - self.server.system));
        PerRequest {
            server: user + system,
            server_user: user,
            server_system: system,
            client: per(own.user - self.own.user) + per(own.system - self.own.system),
        }
    }
}

impl std::fmt::Display for PerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server CPU {:.1} µs/request (user {:.1}, system {:.1}), load generator CPU {:.1} µs/request",
            self.server, self.server_user, self.server_system, self.client
        )
    }
}

async fn throughput(kind: ServerKind, payload: Payload) -> Measured {
    let n: usize = env_or("BENCH_WEBHOOK_N", 20_000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let server = Server::start(kind);
    let server_started = Instant::now();
    let connections = Connections::new(server.addr);
    let deliveries: Arc<Vec<Arc<[u8]>>> = Arc::new((0..n).map(|i| delivery(payload, i)).collect());

    let cpu = CpuWindow::start(&server);
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
    let cpu = cpu.per_request(&server, n);
    let rate = n as f64 / elapsed.as_secs_f64();
    let what = match kind {
        ServerKind::Daemon => {
            "webhook throughput: {n} signed webhooks verified, parsed and durably accepted (SQLite WAL)"
        }
        ServerKind::Ceiling => "ceiling throughput: {n} signed webhooks verified and answered (no parse, no store)",
    };
    println!(
        "{} in {:.2} s = {rate:.0} webhooks/s ({concurrency} concurrent connections); {cpu}",
        what.replace("{n}", &n.to_string()),
        elapsed.as_secs_f64(),
    );
    if let Some(seconds) = std::env::var("BENCH_SERVER_SECONDS").ok().and_then(|s| s.parse().ok()) {
        let until = server_started + Duration::from_secs_f64(seconds);
        if until < Instant::now() {
            println!("BENCH_SERVER_SECONDS={seconds} is shorter than this run: raise it for comparable runs");
        }
        tokio::time::sleep_until(until.into()).await;
    }
    server.stop();
    Measured { rate, server_us: cpu.server }
}

async fn latency(payload: Payload) {
    let rate: u64 = env_or("BENCH_RATE", 1000);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let total = (rate * seconds) as usize;
    let server = Server::start(ServerKind::Daemon);
    let connections = Connections::new(server.addr);
    let deliveries: Vec<Arc<[u8]>> = (0..total).map(|i| delivery(payload, i)).collect();
    // Warm the connections and the store so the first requests do not measure set-up.
    let warm: Vec<_> = (0..64)
        .map(|i| {
            let connections = connections.clone();
            tokio::spawn(async move { connections.post(&delivery(payload, total + i), total + i).await })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up");
    }

    let cpu = CpuWindow::start(&server);
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
    let cpu = cpu.per_request(&server, total);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "webhook latency at {rate}/s for {seconds} s ({total} webhooks, open loop): p50 {:.2} ms, p99 {:.2} ms, \
         p99.9 {:.2} ms, max {:.2} ms; achieved {:.0}/s; {cpu}",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(0.999)),
        ms(*times.last().expect("samples")),
        total as f64 / wall.as_secs_f64()
    );
    server.stop();
}
