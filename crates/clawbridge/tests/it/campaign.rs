//! Campaigns against the testkit's fake NHN and fake Kapso: the runner with an injectable clock
//! (pause, resume, the quiet hours), two replicas on one SQLite file, tracked links, the report;
//! and the binary as an operator runs it (create with bad rows, duplicates and an opt-out, a
//! foreground start without a daemon).

use clawbridge::bridge::Wakers;
use clawbridge::campaign::runner::{CampaignRunner, Step};
use clawbridge::campaign::web::{Links, routes};
use clawbridge::campaign::{Channel, Spec, VariantSpec};
use clawbridge::pipeline::bizmsg::BizmsgWorker;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_campaign::address::suppression_key;
use clawbridge_core::clock::{Clock as _, ManualClock};
use clawbridge_core::retry::RetryPolicy;
use clawbridge_core::time::{EpochMs, KST};
use clawbridge_store::{
    BizmsgResult, CampaignState, NewCampaign, NewRecipient, RecipientState, SharedStore, Suppression,
};
use clawbridge_testkit::fake_nhn::FakeNhn;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

fn kst(text: &str) -> EpochMs {
    let civil: jiff::civil::DateTime = text.parse().unwrap();
    KST.to_timestamp(civil).unwrap().as_millisecond()
}

const TEMPLATES: &str = r##"
[[templates]]
templateCode = "SALE"
text = "#{name}님, 겨울 세일이 시작됐어요. 쿠폰: #{link}"
"##;

fn bizmsg_config(fake: &FakeNhn) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let file: toml::Table = toml::from_str(TEMPLATES).unwrap();
    BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).unwrap().unwrap()
}

fn spec(channel: Channel, variants: Vec<VariantSpec>, track: bool) -> Spec {
    let n = variants.len();
    Spec {
        channel,
        variants,
        split: clawbridge_campaign::Split::even(n).shares().to_vec(),
        buttons: if channel == Channel::Brand {
            vec![("쿠폰 받기".into(), "https://shop.test/coupon".into())]
        } else {
            vec![]
        },
        targeting: None,
        fallback: Some("none".into()),
        ad: channel == Channel::Brand,
        track_base: track.then(|| "https://bridge.test".to_owned()),
        file: "test.csv".into(),
        test: None,
    }
}

fn variant(name: &str, template: Option<&str>, text: Option<&str>) -> VariantSpec {
    VariantSpec { name: name.into(), template: template.map(Into::into), text: text.map(Into::into), lang: None }
}

/// Stores a campaign of `n` recipients the way `create` does.
async fn store_campaign(store: &SharedStore, id: &str, spec: &Spec, n: u32, rate: Option<u32>, now: EpochMs) {
    let campaign = NewCampaign {
        id: id.into(),
        name: format!("winter {id}"),
        channel: spec.channel.as_str().into(),
        account: "default".into(),
        spec: serde_json::to_string(spec).unwrap(),
        rate_per_minute: rate,
        quiet_hours: spec.ad,
        start_at: None,
        link_key: clawbridge::campaign::new_link_key().encode(),
    };
    assert!(store.create_campaign(&campaign, now).await.unwrap());
    let rows: Vec<NewRecipient> = (0..n)
        .map(|i| {
            let number = format!("010{:08}", 20_000_000 + i);
            NewRecipient {
                suppression_key: suppression_key(&number),
                variant: spec.variant_of(id, &number).name.clone(),
                variables: serde_json::json!({"name": format!("고객{i}"), "link": format!("https://shop.test/c/{i}")})
                    .to_string(),
                recipient: number,
                line: u64::from(i) + 2,
                held: false,
            }
        })
        .collect();
    store.add_campaign_recipients(id, "default", &rows, now).await.unwrap();
    assert!(
        store.transition_campaign(id, &[CampaignState::Draft], CampaignState::Running, None, None, now).await.unwrap()
    );
}

struct Setup {
    fake: FakeNhn,
    clock: Arc<ManualClock>,
    runner: CampaignRunner,
    sender: BizmsgWorker,
    config: Arc<BizmsgConfig>,
}

async fn setup(store: SharedStore, now: EpochMs, worker: &str) -> Setup {
    let fake = FakeNhn::start().await;
    let config = Arc::new(bizmsg_config(&fake));
    let clock = Arc::new(ManualClock::new(now));
    let runner = CampaignRunner {
        store: store.clone(),
        bizmsg: Some(config.clone()),
        clock: clock.clone(),
        worker: worker.into(),
        wake_bizmsg: Arc::default(),
        wakers: Arc::new(Wakers::default()),
    };
    let sender = BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(&config, Duration::from_secs(5)).unwrap(),
        config: config.clone(),
        retry: RetryPolicy::DURABLE,
        worker: format!("{worker}-sender"),
        wake: Arc::default(),
        clock: clock.clone(),
    };
    Setup { fake, clock, runner, sender, config }
}

/// Sends every due business-message row.
async fn drain(sender: &BizmsgWorker) {
    for _ in 0..100 {
        if sender.round().await.unwrap() == 0 {
            return;
        }
    }
    panic!("the business-message queue did not drain");
}

async fn states(store: &SharedStore, id: &str) -> HashMap<RecipientState, u64> {
    let mut out = HashMap::new();
    for (_, s, n) in store.campaign_counts(id).await.unwrap().states {
        *out.entry(s).or_default() += n;
    }
    out
}

#[tokio::test]
async fn a_brand_campaign_pauses_for_the_quiet_hours_and_goes_on_at_eight_and_each_recipient_gets_one_message() {
    let store = clawbridge_testkit::memory_store();
    let s = setup(store.clone(), kst("2026-12-24T20:40:00"), "r1").await;
    let spec = spec(Channel::Brand, vec![variant("A", None, Some("#{name}님 세일! https://shop.test/sale"))], true);
    store_campaign(&store, "cbrand", &spec, 250, None, s.clock.now_ms()).await;

    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::Sent(100));
    // An operator pauses: nothing is claimed until resumed.
    store
        .transition_campaign("cbrand", &[CampaignState::Running], CampaignState::Paused, None, None, s.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::Idle);
    assert_eq!(states(&store, "cbrand").await[&RecipientState::Pending], 150);
    store
        .transition_campaign("cbrand", &[CampaignState::Paused], CampaignState::Running, None, None, s.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::Sent(100));
    drain(&s.sender).await;

    // 20:55: the quiet hours. The campaign waits until 08:00 and claims nobody.
    s.clock.set(kst("2026-12-24T20:55:00"));
    let resumes = kst("2026-12-25T08:00:00");
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::WaitUntil(resumes));
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::WaitUntil(resumes));
    let c = store.get_campaign("cbrand").await.unwrap().unwrap();
    assert_eq!((c.state, c.waiting_until), (CampaignState::Running, Some(resumes)));
    assert_eq!(states(&store, "cbrand").await[&RecipientState::Pending], 50);
    drain(&s.sender).await;
    assert_eq!(s.fake.state().taken.len(), 200, "nothing went out in the quiet hours");

    s.clock.set(kst("2026-12-25T08:00:00"));
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::Sent(50));
    assert_eq!(store.get_campaign("cbrand").await.unwrap().unwrap().waiting_until, None);
    assert_eq!(s.runner.step("cbrand").await.unwrap(), Step::Done);
    assert_eq!(store.get_campaign("cbrand").await.unwrap().unwrap().state, CampaignState::Done);
    drain(&s.sender).await;

    let taken = s.fake.state().taken.clone();
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for t in &taken {
        *per_number.entry(t.recipient.as_str()).or_default() += 1;
        assert_eq!(t.product, "brand");
    }
    assert_eq!(per_number.len(), 250);
    assert!(per_number.values().all(|&n| n == 1), "every recipient exactly once");
    store.sync_campaign_results("cbrand", s.clock.now_ms()).await.unwrap();
    assert_eq!(states(&store, "cbrand").await[&RecipientState::Accepted], 250);

    // The links in the text and the button went out tracked.
    let bodies: Vec<String> = s.fake.state().requests.values().map(ToString::to_string).collect();
    assert!(
        bodies.iter().all(|b| b.contains("https://bridge.test/r/cbrand.") && !b.contains("shop.test")),
        "{}",
        bodies[0]
    );
}

#[tokio::test]
async fn an_ab_test_is_stable_clicks_count_once_and_the_report_matches_the_dealer() {
    let store = clawbridge_testkit::memory_store();
    let s = setup(store.clone(), kst("2026-12-24T10:00:00"), "r1").await;
    let spec = spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None), variant("B", Some("SALE"), None)], true);
    store_campaign(&store, "cab", &spec, 120, None, s.clock.now_ms()).await;
    // Opted out by a WhatsApp STOP after the file was read: left out at the claim.
    let opted = "01020000007";
    let stop = Suppression {
        account: "default".into(),
        recipient_key: suppression_key(opted),
        reason: "STOP".into(),
        source: "whatsapp".into(),
        created_at: s.clock.now_ms(),
    };
    store.suppress(&stop).await.unwrap();
    while let Step::Sent(_) = s.runner.step("cab").await.unwrap() {}
    drain(&s.sender).await;
    assert_eq!(s.fake.state().taken.len(), 119);
    assert!(s.fake.state().taken.iter().all(|t| t.recipient != opted));

    // The assignment is the spec's: the same for every recipient however often it is asked.
    let rows = store.campaign_recipients("cab", None, 0, 500).await.unwrap();
    for r in &rows {
        assert_eq!(spec.variant_of("cab", &r.recipient).name, r.variant);
    }
    let variants: std::collections::HashSet<&str> = rows.iter().map(|r| r.variant.as_str()).collect();
    assert_eq!(variants.len(), 2);

    // Results: the dealer delivered all but five (3019).
    let bizmsg_rows: Vec<_> = {
        let mut out = Vec::new();
        for r in &rows {
            if let Some(id) = r.send_ref {
                out.push(store.get_bizmsg(id).await.unwrap().unwrap());
            }
        }
        out
    };
    assert_eq!(bizmsg_rows.len(), 119);
    for (i, b) in bizmsg_rows.iter().enumerate() {
        let failed = i < 5;
        let result = BizmsgResult {
            dealer: "nhn".into(),
            dealer_id: b.dealer_id.clone().unwrap(),
            result: if failed { "failed" } else { "delivered" }.into(),
            code: Some(if failed { "3019" } else { "1000" }.into()),
            reason: None,
            fallback: None,
            rank: 3,
            at: s.clock.now_ms() + 60_000,
        };
        assert!(store.record_bizmsg_result(&result).await.unwrap());
    }
    store.sync_campaign_results("cab", s.clock.now_ms()).await.unwrap();

    // Clicks through the daemon's route.
    let app = routes(Links { store: store.clone(), bizmsg: Some(s.config.clone()), clock: s.clock.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let key = clawbridge_campaign::links::LinkKey::decode(&store.get_campaign("cab").await.unwrap().unwrap().link_key)
        .unwrap();
    let clicked: Vec<_> = rows.iter().filter(|r| r.recipient != opted).take(10).collect();
    for r in &clicked {
        let token = key.token("cab", r.id, 0);
        let head = http.head(format!("{base}/r/{token}")).send().await.unwrap();
        assert_eq!(head.status(), 302, "a previewer's HEAD is redirected");
        for _ in 0..2 {
            let got = http.get(format!("{base}/r/{token}")).send().await.unwrap();
            assert_eq!(got.status(), 302);
            let n = r.line - 2;
            assert_eq!(got.headers()["location"], format!("https://shop.test/c/{n}").as_str());
        }
    }
    let forged = format!("cab.{}.0.AAAAAAAAAAAAAAAA", clicked[0].id);
    assert_eq!(http.get(format!("{base}/r/{forged}")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/r/nothing")).send().await.unwrap().status(), 404);
    let other_link = key.token("cab", clicked[0].id, 5);
    assert_eq!(http.get(format!("{base}/r/{other_link}")).send().await.unwrap().status(), 404, "no sixth link");

    let campaign = store.get_campaign("cab").await.unwrap().unwrap();
    let report = clawbridge::campaign::report::build(&store, &campaign).await.unwrap();
    assert_eq!(report.totals.recipients, 120);
    assert_eq!(report.totals.suppressed, 1);
    assert_eq!(report.totals.accepted, 114);
    assert_eq!(report.totals.delivered, 114);
    assert_eq!(report.totals.failed, 5);
    assert_eq!(report.totals.unique_clicks, 10, "two GETs and a HEAD each: one click");
    assert_eq!(report.totals.clicks, 20);
    assert_eq!(report.failures.len(), 1);
    assert_eq!((report.failures[0].code.as_str(), report.failures[0].count), ("3019", 5));
    assert_eq!(report.variants.iter().map(|v| v.counts.recipients).sum::<u64>(), 120);
    assert_eq!(report.tests.len(), 1);
    let html = report.to_html();
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(report.to_table().contains("3019"));
}

#[tokio::test]
async fn two_replicas_on_one_database_hand_each_recipient_over_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let a = clawbridge_store::open(&url).await.unwrap();
    let b = clawbridge_store::open(&url).await.unwrap();
    let now = kst("2026-12-24T10:00:00");
    let s1 = setup(a.clone(), now, "replica-1").await;
    // Replica 2's clock runs a minute ahead: replica 1's hold on the campaign looks lapsed to it,
    // so both run the campaign at once (the case a lost lease makes).
    let s2 = setup(b.clone(), now + 60_000, "replica-2").await;
    let sender2 = BizmsgWorker { client: s1.sender.client.clone(), config: s1.config.clone(), ..s2.sender.clone() };
    let spec = spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None)], false);
    store_campaign(&a, "crep", &spec, 300, None, now).await;

    let mut runs = Vec::new();
    for runner in [s1.runner.clone(), s2.runner.clone()] {
        runs.push(tokio::spawn(async move {
            let mut sent = 0;
            for _ in 0..200 {
                match runner.step("crep").await.unwrap() {
                    Step::Sent(n) => sent += n,
                    Step::Done => break,
                    _ => tokio::task::yield_now().await,
                }
            }
            sent
        }));
    }
    let mut handed = 0;
    for run in runs {
        handed += run.await.unwrap();
    }
    assert_eq!(handed, 300, "each recipient handed over by one replica");
    let (d1, d2) = (s1.sender.clone(), sender2);
    tokio::join!(drain(&d1), drain(&d2));
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for t in s1.fake.state().taken.clone() {
        *per_number.entry(t.recipient).or_default() += 1;
    }
    assert_eq!(per_number.len(), 300);
    assert!(per_number.values().all(|&n| n == 1), "every recipient exactly once");
    assert!(s2.fake.state().taken.is_empty());
}

#[tokio::test]
async fn a_runner_that_died_between_storing_and_marking_is_resumed_without_a_second_send() {
    let store = clawbridge_testkit::memory_store();
    let now = kst("2026-12-24T10:00:00");
    let s = setup(store.clone(), now, "survivor").await;
    let spec = spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None)], true);
    store_campaign(&store, "ccrash", &spec, 40, None, now).await;

    // A runner that died mid-step: it claimed 30 recipients, stored the send rows of 20 of them
    // (exactly as a runner does) and marked none before it went.
    let campaign = store.get_campaign("ccrash").await.unwrap().unwrap();
    let key = clawbridge_campaign::links::LinkKey::decode(&campaign.link_key).unwrap();
    let claimed = store.claim_campaign_recipients("ccrash", "default", "dead-runner", 30, 60_000, now).await.unwrap();
    assert_eq!(claimed.rows.len(), 30);
    for row in &claimed.rows[..20] {
        let clawbridge::campaign::send::SendRow::Bizmsg(m) =
            clawbridge::campaign::send::build(&campaign, &spec, row, Some(&s.config), Some(&key), now).unwrap()
        else {
            panic!("an AlimTalk row")
        };
        store.enqueue_bizmsg(&[m], now).await.unwrap();
    }
    // Its 20 rows are sent meanwhile by the business-message worker.
    drain(&s.sender).await;
    assert_eq!(s.fake.state().taken.len(), 20);

    // The survivor takes the other ten pending ones, then waits for the dead runner's lease.
    assert_eq!(s.runner.step("ccrash").await.unwrap(), Step::Sent(10));
    assert!(matches!(s.runner.step("ccrash").await.unwrap(), Step::WaitUntil(_)), "30 are still claimed");
    s.clock.set(now + 61_000);
    assert_eq!(s.runner.step("ccrash").await.unwrap(), Step::Sent(30));
    assert_eq!(s.runner.step("ccrash").await.unwrap(), Step::Done);
    drain(&s.sender).await;

    let mut per_number: HashMap<String, usize> = HashMap::new();
    for t in s.fake.state().taken.clone() {
        *per_number.entry(t.recipient).or_default() += 1;
    }
    assert_eq!(per_number.len(), 40);
    assert!(per_number.values().all(|&n| n == 1), "the 20 stored before the crash were not sent again: {per_number:?}");
    store.sync_campaign_results("ccrash", s.clock.now_ms()).await.unwrap();
    assert_eq!(states(&store, "ccrash").await[&RecipientState::Accepted], 40);
}

#[tokio::test]
async fn a_scheduled_campaign_waits_for_its_time_then_runs() {
    let store = clawbridge_testkit::memory_store();
    let s = setup(store.clone(), kst("2026-12-24T08:59:00"), "r1").await;
    let spec = spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None)], false);
    store_campaign(&store, "csched", &spec, 5, Some(600), s.clock.now_ms()).await;
    let at = kst("2026-12-24T09:00:00");
    let moved = store
        .transition_campaign(
            "csched",
            &[CampaignState::Running],
            CampaignState::Scheduled,
            None,
            Some(at),
            s.clock.now_ms(),
        )
        .await
        .unwrap();
    assert!(moved);
    assert_eq!(s.runner.step("csched").await.unwrap(), Step::WaitUntil(at));
    assert_eq!(states(&store, "csched").await[&RecipientState::Pending], 5);
    s.clock.set(at);
    // 600/min is 10 a second: all five in the first window.
    assert_eq!(s.runner.step("csched").await.unwrap(), Step::Sent(5));
    let c = store.get_campaign("csched").await.unwrap().unwrap();
    assert_eq!((c.state, c.started_at), (CampaignState::Running, Some(kst("2026-12-24T08:59:00"))));
    // The window's quota was taken; in the next one the campaign finds nobody left.
    s.clock.set(at + 1_000);
    assert_eq!(s.runner.step("csched").await.unwrap(), Step::Done);
}

#[tokio::test]
async fn the_rate_is_a_quota_per_window() {
    let store = clawbridge_testkit::memory_store();
    let s = setup(store.clone(), kst("2026-12-24T10:00:00"), "r1").await;
    let spec = spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None)], false);
    // 120/min: 2 per 1,000 ms window.
    store_campaign(&store, "crate", &spec, 5, Some(120), s.clock.now_ms()).await;
    let start = s.clock.now_ms();
    assert_eq!(s.runner.step("crate").await.unwrap(), Step::Sent(2));
    assert_eq!(s.runner.step("crate").await.unwrap(), Step::WaitUntil(start + 1_000));
    s.clock.set(start + 1_000);
    assert_eq!(s.runner.step("crate").await.unwrap(), Step::Sent(2));
    s.clock.set(start + 2_000);
    assert_eq!(s.runner.step("crate").await.unwrap(), Step::Sent(1));
    s.clock.set(start + 3_000);
    assert_eq!(s.runner.step("crate").await.unwrap(), Step::Done);
}

#[tokio::test]
async fn an_ab_test_goes_to_a_share_first_and_the_winner_by_ctr_to_the_rest() {
    let store = clawbridge_testkit::memory_store();
    let now = kst("2026-12-24T10:00:00");
    let s = setup(store.clone(), now, "r1").await;
    let mut spec =
        spec(Channel::Alimtalk, vec![variant("A", Some("SALE"), None), variant("B", Some("SALE"), None)], true);
    let test = clawbridge::campaign::AbTest { share: 20, pick_after_ms: 2 * 3_600_000, by: "ctr".into(), winner: None };
    spec.test = Some(test.clone());
    let campaign = NewCampaign {
        id: "cwin".into(),
        name: "winner".into(),
        channel: "alimtalk".into(),
        account: "default".into(),
        spec: serde_json::to_string(&spec).unwrap(),
        rate_per_minute: None,
        quiet_hours: false,
        start_at: None,
        link_key: clawbridge::campaign::new_link_key().encode(),
    };
    store.create_campaign(&campaign, now).await.unwrap();
    let rows: Vec<NewRecipient> = (0..200u32)
        .map(|i| {
            let number = format!("010{:08}", 30_000_000 + i);
            let held = !test.in_test("cwin", &number);
            NewRecipient {
                suppression_key: suppression_key(&number),
                variant: if held { String::new() } else { spec.variant_of("cwin", &number).name.clone() },
                variables: serde_json::json!({"name": format!("고객{i}"), "link": format!("https://shop.test/c/{i}")})
                    .to_string(),
                recipient: number,
                line: u64::from(i) + 2,
                held,
            }
        })
        .collect();
    let held = rows.iter().filter(|r| r.held).count() as u64;
    assert!((120..=190).contains(&held), "about 80 % held back: {held}");
    store.add_campaign_recipients("cwin", "default", &rows, now).await.unwrap();
    store.transition_campaign("cwin", &[CampaignState::Draft], CampaignState::Running, None, None, now).await.unwrap();

    // The test share goes out; the rest waits for the pick.
    assert_eq!(s.runner.step("cwin").await.unwrap(), Step::Sent(200 - held as usize));
    let pick_at = now + 2 * 3_600_000;
    assert_eq!(s.runner.step("cwin").await.unwrap(), Step::WaitUntil(pick_at));
    drain(&s.sender).await;
    assert_eq!(s.fake.state().taken.len(), 200 - held as usize);

    // Everyone in the test is delivered; B's recipients click, A's do not.
    store.sync_campaign_results("cwin", now).await.unwrap();
    for r in store.campaign_recipients("cwin", None, 0, 500).await.unwrap() {
        let Some(send) = r.send_ref else { continue };
        let b = store.get_bizmsg(send).await.unwrap().unwrap();
        let result = BizmsgResult {
            dealer: "nhn".into(),
            dealer_id: b.dealer_id.unwrap(),
            result: "delivered".into(),
            code: Some("1000".into()),
            reason: None,
            fallback: None,
            rank: 3,
            at: now + 60_000,
        };
        store.record_bizmsg_result(&result).await.unwrap();
        if r.variant == "B" {
            store.record_click("cwin", r.id, 0, now + 120_000).await.unwrap();
        }
    }
    s.clock.set(pick_at);
    assert_eq!(s.runner.step("cwin").await.unwrap(), Step::Sent(0), "the pick");
    let picked: Spec = serde_json::from_str(&store.get_campaign("cwin").await.unwrap().unwrap().spec).unwrap();
    assert_eq!(picked.test.unwrap().winner.as_deref(), Some("B"));
    assert_eq!(s.runner.step("cwin").await.unwrap(), Step::Sent(usize::try_from(held).unwrap().min(100)));
    while let Step::Sent(_) = s.runner.step("cwin").await.unwrap() {}
    assert_eq!(store.get_campaign("cwin").await.unwrap().unwrap().state, CampaignState::Done);
    drain(&s.sender).await;

    let all = store.campaign_recipients("cwin", None, 0, 500).await.unwrap();
    let by_variant = |v: &str| all.iter().filter(|r| r.variant == v).count() as u64;
    assert_eq!(by_variant("A") + by_variant("B"), 200);
    assert!(by_variant("B") >= held, "the held ones all got B");
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for t in s.fake.state().taken.clone() {
        *per_number.entry(t.recipient).or_default() += 1;
    }
    assert_eq!(per_number.len(), 200);
    assert!(per_number.values().all(|&n| n == 1));
    let report =
        clawbridge::campaign::report::build(&store, &store.get_campaign("cwin").await.unwrap().unwrap()).await.unwrap();
    assert!(report.campaign.test.as_deref().unwrap().ends_with(": B"), "{:?}", report.campaign.test);
}

// ---- the binary as an operator runs it ----------------------------------------------------------

mod binary {
    use clawbridge_testkit::fake_nhn::FakeNhn;
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::path::Path;
    use std::process::{Command, Output};

    const CONFIG: &str = r##"
[[bizmsg.templates]]
templateCode = "SALE"
text = "#{name}님, 겨울 세일이 시작됐어요. 쿠폰: #{link}"
"##;

    fn clawbridge(dir: &Path, fake: &FakeNhn, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("300")
            .arg(env!("CARGO_BIN_EXE_clawbridge"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("CLAWBRIDGE_STATE_DIR", dir)
            .env("CLAWBRIDGE_CONFIG", dir.join("clawbridge.toml"))
            .env("CLAWBRIDGE_PUBLIC_URL", "https://bridge.test")
            .env("RUST_LOG", "warn");
        for (k, v) in fake.env() {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn text(out: &Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// 300 customers, 8 bad rows, 12 repeats written differently; line numbers of the bad rows.
    fn recipients() -> (String, Vec<u64>) {
        let mut csv = String::from("phone,name,link\n");
        let mut bad = Vec::new();
        let mut line = 1;
        for i in 0..300u32 {
            line += 1;
            let _ = writeln!(csv, "0103{:07},고객{i},https://shop.test/c/{i}", i);
            if i % 40 == 7 {
                line += 1;
                bad.push(line);
                let _ = writeln!(csv, "02-123-{:04},지점{i},https://shop.test/x", i);
            }
            if i % 25 == 3 {
                line += 1;
                let _ = writeln!(csv, "010-3{:03}-{:04},고객{i},https://shop.test/c/{i}", i / 10_000, i % 10_000);
            }
        }
        line += 1;
        bad.push(line);
        csv.push_str("01099998888,,https://shop.test/x\n");
        (csv, bad)
    }

    /// kill -9 of a foreground `campaign start` in the middle, then `start` again: every
    /// recipient exactly once. At 60/min the process spends most of its time waiting for the next
    /// window, but a kill can land while rows are claimed: then the restart waits for their
    /// leases (a minute, two for a dealer request), which is the point of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_foreground_campaign_killed_mid_way_goes_on_where_it_was_without_sending_twice() {
        let fake = FakeNhn::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), CONFIG).unwrap();
        let mut csv = String::from("phone,name,link\n");
        for i in 0..20 {
            let _ = writeln!(csv, "0104{i:07},고객{i},https://shop.test/c/{i}");
        }
        let file = dir.path().join("customers.csv");
        std::fs::write(&file, csv).unwrap();
        let file = file.display().to_string();
        let created = clawbridge(
            dir.path(),
            &fake,
            &[
                "campaign",
                "create",
                "--name",
                "kill",
                "--channel",
                "alimtalk",
                "--recipients",
                &file,
                "--template",
                "SALE",
                "--rate",
                "60/min",
                "--json",
            ],
        );
        assert!(created.status.success(), "{}", text(&created));
        let id =
            serde_json::from_slice::<serde_json::Value>(&created.stdout).unwrap()["id"].as_str().unwrap().to_owned();

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.args(["campaign", "start", &id])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("CLAWBRIDGE_STATE_DIR", dir.path())
            .env("CLAWBRIDGE_CONFIG", dir.path().join("clawbridge.toml"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in fake.env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut waited = 0;
        while fake.state().taken.len() < 5 && waited < 600 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            waited += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let before = fake.state().taken.len();
        assert!((5..20).contains(&before), "killed mid-way: {before} sent");

        let restarted = clawbridge(dir.path(), &fake, &["campaign", "start", &id]);
        assert!(restarted.status.success(), "{}", text(&restarted));
        let mut per_number: HashMap<String, usize> = HashMap::new();
        for t in fake.state().taken.clone() {
            *per_number.entry(t.recipient).or_default() += 1;
        }
        assert_eq!(per_number.len(), 20, "{}", text(&restarted));
        assert!(per_number.values().all(|&n| n == 1), "each exactly once: {per_number:?}");
    }

    // Multi-threaded: the fake answers while the test thread waits for the binary.
    /// Opens the HTML report in headless Chromium (Debian's `chromium`) and checks what it drew:
    /// both charts and the tables, and no error on its console. Without Chromium the check is
    /// skipped with a note, unless `CLAWBRIDGE_REQUIRE_CHROMIUM=1`.
    fn render_in_chromium(page: &Path) {
        let found = ["chromium", "chromium-browser"].into_iter().find(|bin| {
            Command::new("sh").arg("-c").arg(format!("command -v {bin}")).output().is_ok_and(|o| o.status.success())
        });
        let Some(bin) = found else {
            assert!(std::env::var("CLAWBRIDGE_REQUIRE_CHROMIUM").is_err(), "chromium is not installed");
            eprintln!("note: chromium is not installed: the HTML report was not rendered");
            return;
        };
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new("timeout")
            .args(["60", bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dom = String::from_utf8_lossy(&out.stdout);
        assert_eq!(dom.matches("<svg").count(), 1 + usize::from(dom.contains("Variants")), "{dom}");
        assert!(dom.contains("<polyline") || dom.contains("no deliveries or clicks yet"), "{dom}");
        assert!(dom.contains("<h2>Totals</h2>") && dom.contains("겨울 세일"), "{dom}");
        let console = String::from_utf8_lossy(&out.stderr);
        for bad in ["Uncaught", "SyntaxError", "Not allowed to load"] {
            assert!(!console.contains(bad), "{console}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_refuses_bad_rows_then_a_start_without_a_daemon_sends_every_valid_recipient_once() {
        let fake = FakeNhn::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), CONFIG).unwrap();
        let (csv, bad) = recipients();
        let file = dir.path().join("customers.csv");
        // Saved by a Korean spreadsheet: CP949.
        std::fs::write(&file, encoding_rs::EUC_KR.encode(&csv).0).unwrap();
        let file = file.display().to_string();
        let run = |args: &[&str]| clawbridge(dir.path(), &fake, args);

        let opted_out = run(&["campaign", "suppress", "add", "010-3000-0009"]);
        assert!(opted_out.status.success(), "{}", text(&opted_out));
        let create = [
            "campaign",
            "create",
            "--name",
            "겨울 세일",
            "--channel",
            "alimtalk",
            "--recipients",
            &file,
            "--template",
            "SALE",
        ];
        let refused = run(&create);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        for line in &bad {
            assert!(text(&refused).contains(&format!("line {line}: ")), "line {line}: {}", text(&refused));
        }
        assert!(text(&refused).contains("Nothing was stored"), "{}", text(&refused));
        assert!(text(&run(&["campaign", "list"])).contains("no campaigns"));

        let mut skip = create.to_vec();
        skip.extend(["--skip-invalid", "--rate", "6000/min", "--json"]);
        let created = run(&skip);
        assert!(created.status.success(), "{}", text(&created));
        let summary: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
        assert_eq!(summary["encoding"], "CP949");
        assert_eq!(summary["invalidCount"], bad.len());
        assert_eq!(summary["duplicates"], 12);
        assert_eq!(summary["suppressed"], 1);
        assert_eq!(summary["recipients"], 299);
        assert_eq!(summary["state"], "draft");
        assert!(fake.state().taken.is_empty(), "create sends nothing");
        let id = summary["id"].as_str().unwrap().to_owned();

        let started = run(&["campaign", "start", &id]);
        let out = text(&started);
        assert!(started.status.success(), "{out}");
        assert!(out.contains("no daemon is running"), "{out}");
        assert!(out.contains(&format!("campaign {id} done")), "{out}");

        let taken = fake.state().taken.clone();
        let mut per_number: HashMap<&str, usize> = HashMap::new();
        for t in &taken {
            *per_number.entry(t.recipient.as_str()).or_default() += 1;
        }
        assert_eq!(per_number.len(), 299, "every valid recipient but the opted-out one");
        assert!(per_number.values().all(|&n| n == 1), "each exactly once");
        assert!(!per_number.contains_key("01030000009"), "the opt-out");
        let bodies: Vec<String> = fake.state().requests.values().map(ToString::to_string).collect();
        assert!(bodies.iter().all(|b| b.contains("https://bridge.test/r/") && !b.contains("shop.test/c/")));

        let status = run(&["campaign", "status", &id, "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!((status["state"].as_str(), status["accepted"].as_u64()), (Some("done"), Some(299)));
        let again = run(&["campaign", "start", &id]);
        assert!(!again.status.success(), "a done campaign does not start again");
        assert_eq!(fake.state().taken.len(), 299);

        let csv_report = run(&["campaign", "report", &id, "--format", "csv"]);
        let report = String::from_utf8_lossy(&csv_report.stdout).to_string();
        assert!(report.lines().nth(1).unwrap().starts_with("total,겨울 세일,300,1,0,299,"), "{report}");
        let html = dir.path().join("report.html");
        let written = run(&["campaign", "report", &id, "--format", "html", "--out", &html.display().to_string()]);
        assert!(written.status.success(), "{}", text(&written));
        assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
        render_in_chromium(&html);
        let listed = text(&run(&["campaign", "list"]));
        assert!(listed.contains(&id) && listed.contains("done"), "{listed}");
    }
}

// ---- opt-outs from WhatsApp replies -------------------------------------------------------------

mod opt_out {
    use crate::support::{Channel, Harness, config, open_policy};
    use clawbridge_core::InboundMessage;
    use clawbridge_testkit::fake_gateway::FakeGateway;
    use std::time::Duration;

    const TOKEN: &str = "campaign-token-0123456789";

    #[tokio::test]
    async fn a_whatsapp_stop_reply_suppresses_the_number_and_is_not_sent_to_the_agent() {
        let gateway = FakeGateway::start(TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &gateway.url(), TOKEN, &[]);
        let (channel, recorder) = Channel::new("whatsapp", open_policy(), 4096);
        let channel: std::sync::Arc<dyn clawbridge_channel::Connector> = channel;
        let daemon = clawbridge::daemon::start(cfg.clone(), vec![channel]).await.unwrap();
        let mut h = Harness { daemon: Some(daemon), recorder, config: cfg };
        let bridge = h.bridge();
        bridge.accept(InboundMessage::text("whatsapp", "default", "821012345678", "m-1", " 수신거부 ")).await.unwrap();
        let sent = h.wait_sent(1, Duration::from_secs(20)).await;
        assert!(sent[0].text.as_deref().unwrap_or_default().contains("수신거부 처리되었습니다"));
        let store = h.store().await;
        // The same person on KakaoTalk (national form) is covered too.
        let key = clawbridge_campaign::address::suppression_key("010-1234-5678");
        assert!(store.is_suppressed("default", &key).await.unwrap());
        let listed = store.list_suppressions(Some("default"), 10).await.unwrap();
        assert_eq!((listed[0].source.as_str(), listed[0].reason.as_str()), ("whatsapp", "replied \"수신거부\""));
        assert!(gateway.agent_calls().is_empty(), "the agent was not run for an opt-out");
        // An ordinary message still reaches the agent.
        bridge
            .accept(InboundMessage::text("whatsapp", "default", "821012345678", "m-2", "stop sending the wrong size"))
            .await
            .unwrap();
        h.wait_sent(2, Duration::from_secs(20)).await;
        assert_eq!(gateway.agent_calls().len(), 1);
        h.shutdown().await;
    }
}

// ---- the daemon runs a started WhatsApp campaign -------------------------------------------------

mod daemon {
    use crate::support::eventually;
    use clawbridge::config::Config;
    use clawbridge::daemon::{self, Channels};
    use clawbridge_store::RecipientState;
    use clawbridge_testkit::fake_gateway::FakeGateway;
    use clawbridge_testkit::fake_kapso::{Answer, FakeKapso};
    use std::collections::HashMap;
    use std::path::Path;
    use std::process::{Command, Output};
    use std::time::Duration;

    const TOKEN: &str = "campaign-token-0123456789";

    fn env(fake: &FakeKapso, dir: &Path, gateway: &str) -> HashMap<String, String> {
        [
            ("HOME", dir.display().to_string()),
            ("CLAWBRIDGE_STATE_DIR", dir.display().to_string()),
            ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
            ("CLAWBRIDGE_PUBLIC_URL", "https://bridge.test".to_owned()),
            ("OPENCLAW_GATEWAY_URL", gateway.to_owned()),
            ("OPENCLAW_TOKEN", TOKEN.to_owned()),
            ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "5".to_owned()),
            ("KAPSO_API_KEY", clawbridge_testkit::fake_kapso::API_KEY.to_owned()),
            ("KAPSO_PHONE_NUMBER_ID", clawbridge_testkit::fake_kapso::PNID.to_owned()),
            ("KAPSO_BASE_URL", fake.url()),
            ("KAPSO_MODE", "domain".to_owned()),
            ("KAPSO_WEBHOOK_SECRET", "hook-secret".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn clawbridge(env: &HashMap<String, String>, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("60").arg(env!("CARGO_BIN_EXE_clawbridge")).args(args).env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn text(out: &Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_sends_a_started_whatsapp_campaign_records_131049_and_counts_clicks_and_metrics() {
        let kapso = FakeKapso::start().await;
        let gateway = FakeGateway::start(TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        let env = env(&kapso, dir.path(), &gateway.url());
        let config = Config::load_with(None, &|k| env.get(k).cloned()).unwrap();
        let handle = daemon::start(config.clone(), Channels::Configured).await.unwrap();
        let base = format!("http://{}", handle.addr);
        let store = clawbridge_store::open(&config.bridge.database_url).await.unwrap();
        eventually(Duration::from_secs(10), "the daemon's campaign runner announces itself", || {
            let store = store.clone();
            async move { clawbridge::campaign::runner::daemon_running(&store, clawbridge::util::now_ms()).await.unwrap() }
        })
        .await;

        let file = dir.path().join("customers.csv");
        std::fs::write(
            &file,
            "phone,name,url\n+82 10-1111-0001,Kim,https://shop.test/k\n+1 555 010 0002,Lee,https://shop.test/l\n\
             +44 20 7946 0003,Park,https://shop.test/p\n+82 10-1111-0001,Kim,https://shop.test/k\n",
        )
        .unwrap();
        let created = clawbridge(
            &env,
            &[
                "campaign",
                "create",
                "--name",
                "global sale",
                "--channel",
                "whatsapp",
                "--recipients",
                &file.display().to_string(),
                "--template",
                "winter_sale",
                "--lang",
                "en_US",
                "--ad",
                "--json",
            ],
        );
        assert!(created.status.success(), "{}", text(&created));
        let summary: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
        assert_eq!((summary["recipients"].as_u64(), summary["duplicates"].as_u64()), (Some(3), Some(1)));
        let id = summary["id"].as_str().unwrap().to_owned();
        assert!(kapso.sends().is_empty(), "create sends nothing");

        // Meta's per-user marketing limit for the first send: a recorded failure, never retried.
        kapso.script_sends([Answer::error(
            400,
            serde_json::json!({"error": {"message": "marketing limit", "type": "OAuthException", "code": 131049}}),
        )]);
        let started = clawbridge(&env, &["campaign", "start", &id]);
        assert!(started.status.success(), "{}", text(&started));
        assert!(text(&started).contains("the daemon sends it"), "{}", text(&started));

        // A campaign started in the quiet hours would wait; this test's clock is the real one, so
        // only check that the rows went out when the window is open.
        let quiet = clawbridge_campaign::QuietHours::ads().is_quiet(clawbridge::util::now_ms());
        if quiet {
            eventually(Duration::from_secs(10), "the campaign waits for 08:00 KST", || {
                let store = store.clone();
                let id = id.clone();
                async move { store.get_campaign(&id).await.unwrap().unwrap().waiting_until.is_some() }
            })
            .await;
            assert!(kapso.sends().is_empty(), "nothing in the quiet hours");
            handle.shutdown().await;
            return;
        }
        let mut handed = 0;
        for _ in 0..80 {
            store.sync_campaign_results(&id, clawbridge::util::now_ms()).await.unwrap();
            let counts = store.campaign_counts(&id).await.unwrap();
            handed = counts
                .states
                .iter()
                .filter(|(_, s, _)| matches!(s, RecipientState::Accepted | RecipientState::Failed))
                .map(|(_, _, n)| n)
                .sum::<u64>();
            if handed == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(
            handed,
            3,
            "every recipient's template sent or failed: {:?}, campaign {:?}, outbox {:?}, requests {:?}",
            store.campaign_counts(&id).await.unwrap(),
            store.get_campaign(&id).await.unwrap(),
            store.queue_stats().await.unwrap(),
            {
                let mut errors = Vec::new();
                for r in store.campaign_recipients(&id, None, 0, 10).await.unwrap() {
                    errors
                        .push(store.get_outbound(r.send_ref.unwrap()).await.unwrap().map(|o| (o.state, o.last_error)));
                }
                errors
            }
        );
        let sends = kapso.sends();
        assert_eq!(sends.len(), 3, "one request per recipient, the 131049 one not retried: {sends:?}");
        for send in &sends {
            assert_eq!(send["type"], "template");
            assert_eq!(send["template"]["name"], "winter_sale");
        }
        let counts = store.campaign_counts(&id).await.unwrap();
        assert_eq!(
            counts.failures.iter().map(|(_, code, _, n)| (code.as_str(), *n)).collect::<Vec<_>>(),
            [("131049", 1)]
        );

        // The URL parameter went out tracked; the daemon redirects it and counts the click once.
        let tracked = sends
            .iter()
            .flat_map(|s| s.to_string().split('"').map(str::to_owned).collect::<Vec<_>>())
            .find(|part| part.starts_with("https://bridge.test/r/"))
            .expect("a tracked link in a parameter");
        let path = tracked.trim_start_matches("https://bridge.test");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for _ in 0..3 {
            let got = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(got.status(), 302);
            assert!(got.headers()["location"].to_str().unwrap().starts_with("https://shop.test/"));
        }
        assert_eq!(http.get(format!("{base}/r/{id}.1.0.AAAAAAAAAAAAAAAA")).send().await.unwrap().status(), 404);
        let counts = store.campaign_counts(&id).await.unwrap();
        assert_eq!(counts.clicks.iter().map(|(_, unique, _)| unique).sum::<u64>(), 1);

        eventually(Duration::from_secs(15), "the recipient counts in /metrics", || {
            let http = http.clone();
            let (base, id) = (base.clone(), id.clone());
            async move {
                let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
                metrics
                    .contains(&format!("clawbridge_campaign_recipients_total{{campaign=\"{id}\",state=\"failed\"}} 1"))
            }
        })
        .await;
        let report = clawbridge(&env, &["campaign", "report", &id, "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        assert_eq!(report["totals"]["uniqueClicks"], 1);
        assert_eq!(report["failures"][0]["code"], "131049");
        handle.shutdown().await;
    }
}
