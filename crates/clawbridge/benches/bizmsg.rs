//! Business-message benchmark (a bench binary, not a timed test): `cargo bench -p clawbridge --bench bizmsg`.
//!
//! For each fake dealer of the testkit (NHN, Solapi, Infobip on 127.0.0.1), pushes AlimTalk
//! recipients through the real path: rows stored in SQLite (a temp dir) → the real
//! [`BizmsgWorker`]'s rounds → the dealer's HTTP API. Measures:
//! 1. with no rate limit: requests made (must be ⌈N / the dealer's batch⌉), wall time and
//!    messages/s;
//! 2. at a configured `appRatePerSecond`: the one-second windows the sends spanned, which must be
//!    ⌈N / rate⌉ (the store counts fixed, epoch-aligned seconds, so the wall time is between
//!    ⌈N / rate⌉ − 1 and ⌈N / rate⌉ seconds), and N / windows, which must be the rate;
//! 3. the process's peak RSS (VmHWM; the fakes run in this process too) after each dealer;
//!
//! and checks at the fake that every recipient was taken exactly once.
//!
//! Options (environment): `BENCH_BIZMSG_N` (10000 recipients), `BENCH_BIZMSG_RATE` (2000 messages
//! per second for part 2), `BENCH_BIZMSG_RATE_N` (10000), `BENCH_ONLY` (`nhn`, `solapi`,
//! `infobip`, comma-separated; default all).

use clawbridge::pipeline::bizmsg::BizmsgWorker;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, prepare_alimtalk};
use clawbridge_core::clock::{Clock, SystemClock};
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::{NewBizmsg, SharedStore};
use clawbridge_testkit::{fake_infobip::FakeInfobip, fake_nhn::FakeNhn, fake_solapi::FakeSolapi};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One running fake, read the same way whatever the dealer.
enum Fake {
    Nhn(FakeNhn),
    Solapi(FakeSolapi),
    Infobip(FakeInfobip),
}

impl Fake {
    async fn start(dealer: &str) -> Self {
        match dealer {
            "nhn" => Self::Nhn(FakeNhn::start().await),
            "solapi" => Self::Solapi(FakeSolapi::start().await),
            _ => Self::Infobip(FakeInfobip::start().await),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Nhn(f) => f.env(),
            Self::Solapi(f) => f.env(),
            Self::Infobip(f) => f.env(),
        }
    }

    /// Requests that carried messages, and the recipients taken, in order.
    fn seen(&self) -> (usize, Vec<String>) {
        match self {
            Self::Nhn(f) => {
                let s = f.state();
                (s.requests.len(), s.taken.iter().map(|t| t.recipient.clone()).collect())
            }
            Self::Solapi(f) => {
                let s = f.state();
                (s.bodies.len(), s.taken.iter().map(|t| t.to.clone()).collect())
            }
            Self::Infobip(f) => {
                let s = f.state();
                (s.requests.len(), s.taken.iter().map(|t| t.to.clone()).collect())
            }
        }
    }
}

/// What one run measured.
struct Run {
    requests: usize,
    taken: usize,
    distinct: usize,
    elapsed: Duration,
    /// One-second windows (epoch-aligned, as the store counts them) from the first round to the
    /// last answer.
    windows: i64,
}

fn config(fake: &Fake, app_rate: Option<u32>) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let rate = app_rate.map(|r| format!("appRatePerSecond = {r}\n")).unwrap_or_default();
    // The hourly quota is set out of the way: an hour-long window cannot be measured in seconds.
    let file: toml::Table = toml::from_str(&format!(
        "ratePerHour = 100000000\n{rate}[[templates]]\ntemplateCode = \"ORDER\"\ntemplateId = \"KA01TP0RDER\"\n\
         text = \"#{{name}}님, 주문 #{{order}}이 접수되었습니다.\"\n"
    ))
    .expect("bench TOML");
    BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).expect("bench config").expect("configured")
}

fn rows(config: &BizmsgConfig, n: usize, now: i64) -> Vec<NewBizmsg> {
    (0..n)
        .map(|i| {
            let request = AlimtalkRequest {
                account: "default".into(),
                to: format!("010-{:04}-{:04}", 2000 + i / 10_000, i % 10_000),
                template: "ORDER".into(),
                variables: [("name".to_owned(), format!("고객{i}")), ("order".to_owned(), format!("A{i:06}"))].into(),
                fallback: FallbackChoice::None,
                at: None,
                idempotency_key: None,
                origin: "bench".into(),
            };
            let p = prepare_alimtalk(config, &request, now).expect("prepared");
            NewBizmsg {
                idempotency_key: p.idempotency_key,
                account: p.account,
                product: p.product.as_str().to_owned(),
                dealer: p.dealer.id().to_owned(),
                recipient: p.recipient.national().to_owned(),
                template_code: p.template_code,
                payload: p.payload,
                origin: p.origin,
                not_before: p.not_before,
            }
        })
        .collect()
}

async fn run(dealer: &str, n: usize, app_rate: Option<u32>) -> Run {
    let fake = Fake::start(dealer).await;
    let config = Arc::new(config(&fake, app_rate));
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store: SharedStore = clawbridge_store::open(&url).await.expect("SQLite store");
    let now = SystemClock.now_ms();
    for chunk in rows(&config, n, now).chunks(1_000) {
        store.enqueue_bizmsg(chunk, now).await.expect("enqueue");
    }
    let worker = BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(&config, Duration::from_secs(30)).expect("client"),
        config: config.clone(),
        retry: RetryPolicy::DURABLE,
        worker: "bench".into(),
        wake: Arc::default(),
        clock: Arc::new(SystemClock),
    };
    let (started, started_ms) = (Instant::now(), SystemClock.now_ms());
    while worker.round().await.expect("round") > 0 {}
    let elapsed = started.elapsed();
    let windows = SystemClock.now_ms().div_euclid(1_000) - started_ms.div_euclid(1_000) + 1;
    let (requests, taken) = fake.seen();
    let distinct = taken.iter().collect::<HashSet<_>>().len();
    Run { requests, taken: taken.len(), distinct, elapsed, windows }
}

fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().to_owned()).unwrap_or_default()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` probing
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = env_or("BENCH_BIZMSG_N", 10_000);
    let rate: u32 = env_or("BENCH_BIZMSG_RATE", 2_000);
    let rate_n: usize = env_or("BENCH_BIZMSG_RATE_N", 10_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!(
        "| dealer | batch | requests (expected) | unlimited: wall, msg/s | at {rate} msg/s: windows (expected), msg/window, wall | sent twice | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut failed = false;
    for dealer in ["nhn", "solapi", "infobip"] {
        if !(only.is_empty() || only.split(',').any(|p| p == dealer)) {
            continue;
        }
        let batch = dealer.parse::<clawbridge_bizmsg::dealer::DealerKind>().expect("dealer").max_batch();
        let free = runtime.block_on(run(dealer, n, None));
        let limited = runtime.block_on(run(dealer, rate_n, Some(rate)));
        let expected = n.div_ceil(batch);
        let twice = (free.taken - free.distinct) + (limited.taken - limited.distinct);
        let complete = free.distinct == n && limited.distinct == rate_n;
        failed |= free.requests != expected || twice > 0 || !complete;
        println!(
            "| {dealer} | {batch} | {} ({expected}) | {:.2} s, {:.0} | {} ({}), {:.0}, {:.2} s | {twice}{} | {} |",
            free.requests,
            free.elapsed.as_secs_f64(),
            n as f64 / free.elapsed.as_secs_f64(),
            limited.windows,
            rate_n.div_ceil(rate as usize),
            rate_n as f64 / limited.windows as f64,
            limited.elapsed.as_secs_f64(),
            if complete { "" } else { " (some recipients never sent)" },
            peak_rss()
        );
    }
    if failed {
        eprintln!("a check failed: requests ≠ ⌈N / batch⌉, a recipient sent twice, or one not sent");
        std::process::exit(1);
    }
}
