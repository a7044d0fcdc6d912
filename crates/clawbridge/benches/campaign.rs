//! Campaign benchmark (a bench binary, not a timed test): `cargo bench -p clawbridge --bench campaign`.
//!
//! A campaign of N AlimTalk recipients through the real path, against the testkit's fake NHN on
//! 127.0.0.1, on SQLite in a temp dir:
//! 1. **file**: a CSV of N rows written to the temp dir, then read as `create` reads it (streamed,
//!    every row validated, duplicates fingerprinted) and stored in batches of 1,000: rows/s;
//! 2. **unlimited**: the real [`CampaignRunner`] and [`BizmsgWorker`] run together until every
//!    recipient was taken by the fake: wall time and recipients/s;
//! 3. **at a rate** (`BENCH_CAMPAIGN_RATE` per minute, default 1,000, over
//!    `BENCH_CAMPAIGN_RATE_N` recipients, default 2,000): the one-second windows the hand-overs
//!    spanned and recipients per minute, which must not pass the rate;
//! 4. the process's peak RSS (VmHWM) after each part — flat as N grows means the file and the
//!    runner do not hold the campaign in memory (compare runs with `BENCH_CAMPAIGN_N=10000` and
//!    `100000`, each in its own process).
//!
//! It checks at the fake that every recipient was taken exactly once, and exits 1 otherwise.

use clawbridge::bridge::Wakers;
use clawbridge::campaign::runner::{CampaignRunner, Step};
use clawbridge::campaign::{Channel, Spec, VariantSpec};
use clawbridge::pipeline::bizmsg::BizmsgWorker;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_campaign::address::suppression_key;
use clawbridge_campaign::recipients::{Encoding, Fingerprints, RecipientReader, Row};
use clawbridge_core::clock::{Clock, SystemClock};
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::{CampaignState, NewCampaign, NewRecipient, SharedStore};
use clawbridge_testkit::fake_nhn::FakeNhn;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().to_owned()).unwrap_or_default()
}

fn config(fake: &FakeNhn) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let file: toml::Table = toml::from_str(
        "ratePerHour = 100000000\n[[templates]]\ntemplateCode = \"SALE\"\ntext = \"#{name}님, 세일 쿠폰 #{code}\"\n",
    )
    .expect("bench TOML");
    BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).expect("bench config").expect("configured")
}

fn spec() -> Spec {
    Spec {
        channel: Channel::Alimtalk,
        variants: vec![VariantSpec { name: "A".into(), template: Some("SALE".into()), text: None, lang: None }],
        split: vec![100],
        buttons: vec![],
        targeting: None,
        fallback: Some("none".into()),
        ad: false,
        track_base: None,
        file: "bench.csv".into(),
        test: None,
    }
}

/// Writes the CSV, reads it back as `create` does and stores the campaign; rows/s.
async fn file(store: &SharedStore, dir: &std::path::Path, id: &str, first: usize, n: usize, rate: Option<u32>) -> f64 {
    let path = dir.join(format!("{id}.csv"));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("csv"));
        writeln!(out, "phone,name,code").expect("write");
        for i in first..first + n {
            writeln!(out, "010-{:04}-{:04},고객{i},C{i:07}", 2000 + i / 10_000, i % 10_000).expect("write");
        }
    }
    let now = SystemClock.now_ms();
    let campaign = NewCampaign {
        id: id.into(),
        name: id.into(),
        channel: "alimtalk".into(),
        account: "default".into(),
        spec: serde_json::to_string(&spec()).expect("spec"),
        rate_per_minute: rate,
        quiet_hours: false,
        start_at: None,
        link_key: clawbridge::campaign::new_link_key().encode(),
    };
    store.create_campaign(&campaign, now).await.expect("campaign");
    let started = Instant::now();
    let normalise = |raw: &str| {
        clawbridge_bizmsg::PhoneNumber::parse(raw).map(|p| p.national().to_owned()).map_err(|e| e.to_string())
    };
    let required = vec!["name".to_owned(), "code".to_owned()];
    let reader = RecipientReader::new(
        std::io::BufReader::new(std::fs::File::open(&path).expect("open")),
        Encoding::Auto,
        &required,
        &normalise,
    )
    .expect("header");
    let mut seen = Fingerprints::new();
    let mut batch = Vec::with_capacity(1_000);
    for row in reader {
        let Row::Valid(r) = row else { panic!("every bench row is valid") };
        if seen.check(&r.address, r.line).is_some() {
            continue;
        }
        batch.push(NewRecipient {
            suppression_key: suppression_key(&r.address),
            variant: "A".into(),
            variables: serde_json::to_string(&r.variables).expect("json"),
            recipient: r.address,
            line: r.line,
            held: false,
        });
        if batch.len() == 1_000 {
            store.add_campaign_recipients(id, "default", &std::mem::take(&mut batch), now).await.expect("store");
        }
    }
    if !batch.is_empty() {
        store.add_campaign_recipients(id, "default", &batch, now).await.expect("store");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    store
        .transition_campaign(id, &[CampaignState::Draft], CampaignState::Running, None, None, now)
        .await
        .expect("start");
    rate
}

/// Runs the campaign to the end with the worker sending beside it; (wall, windows).
async fn send(store: &SharedStore, fake: &FakeNhn, config: &Arc<BizmsgConfig>, id: &str, n: usize) -> (Duration, i64) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let runner = CampaignRunner {
        store: store.clone(),
        bizmsg: Some(config.clone()),
        clock: Arc::new(SystemClock),
        worker: "bench-runner".into(),
        wake_bizmsg: wake.clone(),
        wakers: Arc::new(Wakers::default()),
    };
    let worker = BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(config, Duration::from_secs(30)).expect("client"),
        config: config.clone(),
        retry: RetryPolicy::DURABLE,
        worker: "bench-sender".into(),
        wake,
        clock: Arc::new(SystemClock),
    };
    let stop = CancellationToken::new();
    let sender = tokio::spawn(worker.run(stop.clone()));
    let before = fake.state().taken.len();
    let (started, started_ms) = (Instant::now(), SystemClock.now_ms());
    loop {
        match runner.step(id).await.expect("step") {
            Step::Sent(_) => {}
            Step::WaitUntil(at) => {
                let wait = (at - SystemClock.now_ms()).clamp(1, 1_000);
                tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(1))).await;
            }
            Step::Done | Step::Idle => break,
        }
    }
    let handed_ms = SystemClock.now_ms();
    while fake.state().taken.len() - before < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = sender.await;
    (elapsed, handed_ms.div_euclid(1_000) - started_ms.div_euclid(1_000) + 1)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = env_or("BENCH_CAMPAIGN_N", 100_000);
    let rate: u32 = env_or("BENCH_CAMPAIGN_RATE", 1_000);
    let rate_n: usize = env_or("BENCH_CAMPAIGN_RATE_N", 2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let failed = runtime.block_on(async {
        let fake = FakeNhn::start().await;
        let config = Arc::new(config(&fake));
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = clawbridge_store::open(&url).await.expect("SQLite store");

        let rows_per_s = file(&store, dir.path(), "cfree", 0, n, None).await;
        let rss_file = peak_rss();
        let (free, _) = send(&store, &fake, &config, "cfree", n).await;
        let rss_free = peak_rss();

        let _ = file(&store, dir.path(), "crate", n, rate_n, Some(rate)).await;
        let (limited, windows) = send(&store, &fake, &config, "crate", rate_n).await;
        let rss_rate = peak_rss();

        let mut per_number: HashMap<String, usize> = HashMap::new();
        for t in fake.state().taken.iter() {
            *per_number.entry(t.recipient.clone()).or_default() += 1;
        }
        // The two campaigns have numbers of their own: each must be taken exactly once.
        let twice = per_number.values().filter(|&&c| c > 1).count();
        let per_minute = rate_n as f64 / (windows as f64 / 60.0);
        println!("| N | file: rows/s, peak RSS | unlimited: wall, recipients/s, peak RSS | at {rate}/min ({rate_n}): windows, recipients/min, wall, peak RSS | sent twice |");
        println!("|---|---|---|---|---|");
        println!(
            "| {n} | {rows_per_s:.0}, {rss_file} | {:.2} s, {:.0}, {rss_free} | {windows}, {per_minute:.0}, {:.1} s, {rss_rate} | {twice} |",
            free.as_secs_f64(),
            n as f64 / free.as_secs_f64(),
            limited.as_secs_f64()
        );
        twice > 0 || per_number.len() != n + rate_n
    });
    if failed {
        eprintln!("a check failed: a recipient sent twice, or one not sent");
        std::process::exit(1);
    }
}
