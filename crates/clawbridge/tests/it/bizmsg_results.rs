//! Delivery results of the three dealers through the worker and the daemon's webhooks: a request
//! whose answer was lost is never sent twice (Solapi and Infobip are asked first), results are
//! polled until final, the webhooks are authenticated, deduplicated and never answered 200 when
//! nothing was recorded, and `clawbridge alimtalk status` / `clawbridge status` show the final
//! result whichever dealer sent it.

use clawbridge::pipeline::bizmsg::{BizmsgWorker, webhook_routes};
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, prepare_alimtalk};
use clawbridge_core::clock::{Clock as _, ManualClock};
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::{BizmsgState, MemoryStore, NewBizmsg, Outage, SharedStore};
use clawbridge_testkit::fake_infobip::{FakeInfobip, report};
use clawbridge_testkit::fake_solapi::FakeSolapi;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// 2026-12-24 09:00 KST.
const NOW: i64 = 1_798_070_400_000;
const MINUTE: i64 = 60_000;
const TEMPLATE: &str =
    "[[templates]]\ntemplateCode = \"OTP\"\ntemplateId = \"KA01TP1\"\ntext = \"인증번호는 #{code}입니다.\"\n";
const INFOBIP_TOKEN: &str = "infobip-token-0123456789";
const SOLAPI_TOKEN: &str = "solapi-token-0123456789";

fn config(env: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]) -> BizmsgConfig {
    let mut vars: BTreeMap<&str, String> = env.into_iter().collect();
    for (k, v) in extra {
        vars.insert(k, (*v).to_owned());
    }
    let file: toml::Table = toml::from_str(TEMPLATE).unwrap();
    BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).unwrap().unwrap()
}

fn otp(config: &BizmsgConfig, to: &str) -> NewBizmsg {
    let request = AlimtalkRequest {
        account: "default".into(),
        to: to.into(),
        template: "OTP".into(),
        variables: [("code".to_owned(), "123456".to_owned())].into(),
        fallback: FallbackChoice::None,
        at: None,
        idempotency_key: None,
        origin: "test".into(),
    };
    let p = prepare_alimtalk(config, &request, NOW).unwrap();
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
}

/// A worker on `store` at `clock`; its client signs (Solapi) and times out by the same clock.
fn worker(config: BizmsgConfig, store: SharedStore, clock: Arc<ManualClock>, timeout: Duration) -> BizmsgWorker {
    BizmsgWorker {
        client: DealerClient::new(&config, timeout).unwrap().with_clock(clock.clone()),
        config: Arc::new(config),
        store,
        retry: RetryPolicy::DURABLE,
        worker: "w1".into(),
        wake: Arc::default(),
        clock,
    }
}

#[tokio::test]
async fn solapi_a_timed_out_accepted_request_is_found_not_sent_twice_and_polled_until_final() {
    let fake = FakeSolapi::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let store = clawbridge_testkit::memory_store();
    let clock = Arc::new(ManualClock::new(NOW));
    let w = worker(config(fake.env(), &[]), store.clone(), clock.clone(), Duration::from_millis(300));
    let id = store.enqueue_bizmsg(&[otp(&w.config, "010-1111-2222")], NOW).await.unwrap()[0].id;

    w.round().await.unwrap();
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!(row.state, BizmsgState::Retry, "the answer timed out");
    assert!(row.request_key.is_some(), "in doubt: the request's key is kept");
    clock.set(row.next_at);
    w.round().await.unwrap();
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.dealer_id.as_deref()), (BizmsgState::Accepted, Some("M4V0")), "found, not sent again");
    {
        let s = fake.state();
        assert_eq!((s.bodies.len(), s.taken.len()), (1, 1), "one send, one message");
    }

    // Polled by id until final: on its way (2000) first, then delivered (4000).
    clock.set(row.updated_at + MINUTE);
    w.poll_results().await;
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.result.as_deref(), row.result_code.as_deref()), (Some("pending"), Some("2000")));
    fake.set_status("M4V0", "4000", "");
    clock.set(row.updated_at + MINUTE);
    w.poll_results().await;
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.result.as_deref(), row.result_code.as_deref()), (Some("delivered"), Some("4000")));
    // Final: not asked about again.
    let asked = fake.state().list_queries.len();
    clock.set(row.updated_at + 10 * MINUTE);
    w.poll_results().await;
    assert_eq!(fake.state().list_queries.len(), asked);
}

#[tokio::test]
async fn infobip_a_timed_out_accepted_request_is_found_in_the_logs_and_reports_reach_every_row() {
    let fake = FakeInfobip::start().await;
    fake.state().hang_next = Some(Duration::from_secs(5));
    let store = clawbridge_testkit::memory_store();
    let clock = Arc::new(ManualClock::new(NOW));
    let w = worker(config(fake.env(), &[]), store.clone(), clock.clone(), Duration::from_millis(300));
    let rows = [otp(&w.config, "010-1111-2222"), otp(&w.config, "010-3333-4444")];
    let ids: Vec<i64> = store.enqueue_bizmsg(&rows, NOW).await.unwrap().iter().map(|e| e.id).collect();

    w.round().await.unwrap();
    let mut due = NOW;
    for id in &ids {
        let row = store.get_bizmsg(*id).await.unwrap().unwrap();
        assert_eq!(row.state, BizmsgState::Retry);
        due = due.max(row.next_at);
    }
    clock.set(due);
    w.round().await.unwrap();
    for id in &ids {
        let row = store.get_bizmsg(*id).await.unwrap().unwrap();
        assert_eq!((row.state, row.dealer_id.clone()), (BizmsgState::Accepted, Some(format!("cb{id}"))));
    }
    {
        let s = fake.state();
        assert_eq!((s.requests.len(), s.taken.len()), (1, 2), "each recipient once");
    }

    // One report is handed out by the reports query; the other was missed there (it went to a
    // webhook that was down) and is found in the logs.
    let taken = fake.state().taken.clone();
    let (first, second) = (taken[0].clone(), taken[1].clone());
    fake.deliver(report(&first, "DELIVERED", "DELIVERED_TO_HANDSET", None));
    let missed = report(
        &second,
        "UNDELIVERABLE",
        "UNDELIVERABLE_NOT_DELIVERED",
        Some(("EC_NOT_KAKAO_USER", "not a KakaoTalk user", true)),
    );
    fake.state().latest.insert(second.message_id.clone(), missed);
    clock.set(NOW + 10 * MINUTE);
    w.poll_results().await;
    let results: Vec<(Option<String>, Option<String>)> = {
        let mut out = Vec::new();
        for id in &ids {
            let row = store.get_bizmsg(*id).await.unwrap().unwrap();
            out.push((row.result, row.result_code));
        }
        out
    };
    assert_eq!(
        results,
        [
            (Some("delivered".into()), Some("DELIVERED_TO_HANDSET".into())),
            (Some("failed".into()), Some("EC_NOT_KAKAO_USER".into()))
        ]
    );
}

/// A loopback server of the webhook routes on `store`.
async fn serve(store: SharedStore, config: &BizmsgConfig) -> String {
    let app = webhook_routes(store, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// An accepted row with `dealer_id`.
async fn accepted(store: &SharedStore, config: &BizmsgConfig, to: &str, dealer_id: &str) -> i64 {
    let id = store.enqueue_bizmsg(&[otp(config, to)], NOW).await.unwrap()[0].id;
    store.claim_bizmsg("w", 10, 60_000, NOW).await.unwrap();
    assert!(store.mark_bizmsg_accepted(id, "w", dealer_id, NOW).await.unwrap());
    id
}

#[tokio::test]
async fn the_infobip_webhook_takes_the_token_or_signed_reports_and_answers_503_when_nothing_was_recorded() {
    let fake = FakeInfobip::start().await;
    let config =
        config(fake.env(), &[("INFOBIP_WEBHOOK_TOKEN", INFOBIP_TOKEN), ("CLAWBRIDGE_PUBLIC_URL", "https://b.example")]);
    let memory = Arc::new(MemoryStore::new());
    let store: SharedStore = memory.clone();
    let id = accepted(&store, &config, "010-1111-2222", "cb1").await;
    let url = format!("{}/bizmsg/infobip/webhook", serve(store.clone(), &config).await);
    let http = reqwest::Client::new();
    let body = |status: &str, callback: Option<String>| {
        let mut row = serde_json::json!({"bulkId": "b", "messageId": "cb1", "to": "821011112222",
            "status": {"groupName": status, "name": format!("{status}_X")}, "error": {"groupName": "OK", "name": "NO_ERROR", "permanent": false}});
        if let Some(c) = callback {
            row["callbackData"] = c.into();
        }
        serde_json::json!({"results": [row]}).to_string()
    };
    let post = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };

    assert_eq!(post(http.post(&url).body(body("DELIVERED", None))).await, 401, "no token");
    assert_eq!(post(http.post(&url).bearer_auth("wrong-token-0123456789").body(body("DELIVERED", None))).await, 401);
    let forged = Some("cb1:00".to_owned());
    assert_eq!(post(http.post(&url).body(body("DELIVERED", forged))).await, 401, "a callbackData that does not verify");
    assert_eq!(post(http.post(&url).basic_auth("infobip", Some(INFOBIP_TOKEN)).body("{")).await, 400);
    let huge = "x".repeat(clawbridge::pipeline::bizmsg::WEBHOOK_BODY_LIMIT + 1);
    assert_eq!(post(http.post(&url).header("X-Clawbridge-Token", INFOBIP_TOKEN).body(huge)).await, 413);

    // Pending by basic authentication (a portal subscription), then delivered by a report posted
    // to the URL the send named, authenticated by its signed callbackData alone.
    assert_eq!(post(http.post(&url).basic_auth("infobip", Some(INFOBIP_TOKEN)).body(body("PENDING", None))).await, 200);
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().result.as_deref(), Some("pending"));
    let signed = Some(clawbridge_bizmsg::webhook::callback_data(INFOBIP_TOKEN, "cb1"));
    assert_eq!(post(http.post(&url).body(body("DELIVERED", signed.clone()))).await, 200);
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!(row.result.as_deref(), Some("delivered"));
    // The same report again is taken (200) and changes nothing; an older one does not go back.
    assert_eq!(post(http.post(&url).body(body("DELIVERED", signed.clone()))).await, 200);
    assert_eq!(post(http.post(&url).bearer_auth(INFOBIP_TOKEN).body(body("PENDING", None))).await, 200);
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().result_at, row.result_at, "deduplicated, forward only");

    // The store cannot record: 503, so that Infobip sends it again.
    memory.set_outage(Outage::Writes);
    assert_eq!(post(http.post(&url).bearer_auth(INFOBIP_TOKEN).body(body("UNDELIVERABLE", None))).await, 503);
    memory.set_outage(Outage::None);

    // Another dealer's route, and this one unconfigured, say what to set.
    let nhn = http
        .post(format!("{}/bizmsg/nhn/webhook", serve(store.clone(), &config).await))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(nhn.status(), 404);
    assert!(nhn.text().await.unwrap().contains("go through infobip (BIZMSG_DEALER)"));
    let bare = self::config(fake.env(), &[]);
    let unconfigured =
        http.post(format!("{}/bizmsg/infobip/webhook", serve(store.clone(), &bare).await)).send().await.unwrap();
    assert_eq!(unconfigured.status(), 404);
    assert!(unconfigured.text().await.unwrap().contains("INFOBIP_WEBHOOK_TOKEN"));
}

#[tokio::test]
async fn the_solapi_webhook_takes_the_token_in_a_header_or_the_url() {
    let fake = FakeSolapi::start().await;
    let config = config(fake.env(), &[("SOLAPI_WEBHOOK_TOKEN", SOLAPI_TOKEN)]);
    let store = clawbridge_testkit::memory_store();
    let id = accepted(&store, &config, "010-1111-2222", "M4V9").await;
    let base = serve(store.clone(), &config).await;
    let url = format!("{base}/bizmsg/solapi/webhook");
    let http = reqwest::Client::new();
    let body = |code: &str| {
        serde_json::json!([{"messageId": "M4V9", "to": "01011112222", "type": "ATA", "statusCode": code}]).to_string()
    };

    assert_eq!(http.post(&url).body(body("4000")).send().await.unwrap().status(), 401);
    assert_eq!(http.post(format!("{url}?token=nope")).body(body("4000")).send().await.unwrap().status(), 401);
    assert_eq!(http.post(format!("{url}?token={SOLAPI_TOKEN}")).body("{}").send().await.unwrap().status(), 400);
    let pending = http.post(&url).header("X-Clawbridge-Token", SOLAPI_TOKEN).body(body("3000")).send().await.unwrap();
    assert_eq!(pending.status(), 200);
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().result.as_deref(), Some("pending"));
    let done = http.post(format!("{url}?token={SOLAPI_TOKEN}")).body(body("4000")).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().result.as_deref(), Some("delivered"));
    // A report of a message we do not have is taken (Solapi would call five times otherwise).
    let unknown = serde_json::json!([{"messageId": "M4V-other", "statusCode": "4000"}]).to_string();
    assert_eq!(http.post(&url).bearer_auth(SOLAPI_TOKEN).body(unknown).send().await.unwrap().status(), 200);
}

mod cli {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Output};

    fn clawbridge(dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("CLAWBRIDGE_STATE_DIR", dir)
            .env("CLAWBRIDGE_CONFIG", dir.join("clawbridge.toml"))
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn text(out: &Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// `alimtalk send` from the command line, the worker on the same store sends it and polls
    /// its result after `deliver` made it final; what `alimtalk status 1` and `status` then say.
    async fn sent_and_reported(env: Vec<(&'static str, String)>, deliver: impl AsyncFnOnce(&str)) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clawbridge.toml"),
            format!("[bizmsg]\n{TEMPLATE}").replace("[[templates]]", "[[bizmsg.templates]]"),
        )
        .unwrap();
        let run = |args: &'static [&'static str]| {
            let (path, env) = (dir.path().to_owned(), env.clone());
            tokio::task::spawn_blocking(move || clawbridge(&path, &env, args))
        };
        let sent = run(&["alimtalk", "send", "--to", "010-1234-5678", "--template", "OTP", "--var", "code=123456"])
            .await
            .unwrap();
        assert!(text(&sent).contains("accepted (id: 1)"), "{}", text(&sent));
        let store =
            clawbridge_store::open(&format!("sqlite://{}", dir.path().join("clawbridge.db").display())).await.unwrap();
        let now = clawbridge_core::clock::now_ms();
        let clock = Arc::new(ManualClock::new(now));
        let w = worker(config(env.clone(), &[]), store.clone(), clock.clone(), Duration::from_secs(5));
        assert_eq!(w.round().await.unwrap(), 1);
        let row = store.get_bizmsg(1).await.unwrap().unwrap();
        assert_eq!(row.state, BizmsgState::Accepted, "{row:?}");
        deliver(row.dealer_id.as_deref().unwrap()).await;
        clock.set(now + 2 * MINUTE);
        w.poll_results().await;
        let status = run(&["alimtalk", "status", "1"]).await.unwrap();
        let overall = run(&["status"]).await.unwrap();
        (text(&status), text(&overall))
    }

    #[tokio::test]
    async fn solapi_results_show_in_alimtalk_status_and_status() {
        let fake = FakeSolapi::start().await;
        let (status, overall) =
            sent_and_reported(fake.env(), async |id: &str| fake.set_status(id, "3104", "카카오톡 미사용자")).await;
        assert!(status.contains("via solapi") && status.contains("accepted by the dealer"), "{status}");
        assert!(status.contains("result: failed — 3104 카카오톡 미사용자"), "{status}");
        assert!(status.contains("010-****-5678") && !status.contains("1234-5678"), "masked: {status}");
        assert!(overall.contains("1 accepted (0 delivered, 1 failed, 0 pending)"), "{overall}");
    }

    #[tokio::test]
    async fn infobip_results_show_in_alimtalk_status_and_status() {
        let fake = FakeInfobip::start().await;
        let (status, overall) = sent_and_reported(fake.env(), async |_: &str| {
            let taken = fake.state().taken[0].clone();
            fake.deliver(report(&taken, "DELIVERED", "DELIVERED_TO_HANDSET", None));
        })
        .await;
        assert!(status.contains("via infobip") && status.contains("result: delivered"), "{status}");
        assert!(overall.contains("1 accepted (1 delivered, 0 failed, 0 pending)"), "{overall}");
    }
}

#[tokio::test]
async fn nhn_brand_messages_are_asked_about_by_their_request_until_final() {
    use clawbridge_bizmsg::brand::{BrandRequest, Targeting, prepare_brand};
    use clawbridge_testkit::fake_nhn::{FakeNhn, result_row};
    /// 2026-12-24 10:00 KST: inside the ad window.
    const MORNING: i64 = 1_798_074_000_000;
    let fake = FakeNhn::start().await;
    let store = clawbridge_testkit::memory_store();
    let clock = Arc::new(ManualClock::new(MORNING));
    let w = worker(config(fake.env(), &[]), store.clone(), clock.clone(), Duration::from_secs(5));
    let request = BrandRequest {
        account: "default".into(),
        to: "010-1111-2222".into(),
        text: "겨울 세일 20%".into(),
        template: None,
        variables: Default::default(),
        image: None,
        buttons: vec![],
        targeting: Targeting::Friends,
        fallback: false,
        at: None,
        idempotency_key: None,
        origin: "test".into(),
    };
    let p = prepare_brand(&w.config, &request, MORNING).unwrap().prepared;
    let row = NewBizmsg {
        idempotency_key: p.idempotency_key,
        account: p.account,
        product: p.product.as_str().to_owned(),
        dealer: p.dealer.id().to_owned(),
        recipient: p.recipient.national().to_owned(),
        template_code: p.template_code,
        payload: p.payload,
        origin: p.origin,
        not_before: p.not_before,
    };
    let id = store.enqueue_bizmsg(&[row], MORNING).await.unwrap()[0].id;
    clock.set(store.get_bizmsg(id).await.unwrap().unwrap().next_at.max(MORNING));
    w.round().await.unwrap();
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.dealer_id.as_deref()), (BizmsgState::Accepted, Some("BRAND-1/1")));

    // No result yet: asked about, still nothing. Then NHN has it: failed outside the hours.
    clock.set(row.updated_at + MINUTE);
    w.poll_results().await;
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().result.as_deref(), Some("pending"));
    let taken = fake.state().taken[0].clone();
    fake.state().results.push(result_row(&taken, "FAILED", "3022", "RSC01"));
    clock.set(clock.now_ms() + 2 * MINUTE);
    w.poll_results().await;
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!(
        (row.result.as_deref(), row.result_code.as_deref(), row.fallback.as_deref()),
        (Some("failed"), Some("3022"), Some("none"))
    );
    assert_eq!(fake.state().request_queries, 2, "asked by its request, until final");
    clock.set(clock.now_ms() + 2 * MINUTE);
    w.poll_results().await;
    assert_eq!(fake.state().request_queries, 2, "final: not asked again");
}
