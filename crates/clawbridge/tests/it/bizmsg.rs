//! The business-message worker against the testkit's fake NHN, on the in-memory store: rows
//! stored before any request, one request per template, the hourly quota, a lost answer, results.

use clawbridge::pipeline::bizmsg::{BizmsgWorker, record_report};
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dealer::nhn;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, Prepared, prepare_alimtalk};
use clawbridge_core::clock::ManualClock;
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::{BizmsgState, NewBizmsg, SharedStore};
use clawbridge_testkit::fake_nhn::{FakeNhn, result_row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// 2026-12-24 09:00 KST.
const NOW: i64 = 1_798_070_400_000;

fn config(fake: &FakeNhn, extra: &str) -> BizmsgConfig {
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let file: toml::Table = toml::from_str(&format!(
        "{extra}\n[[templates]]\ntemplateCode = \"OTP\"\ntext = \"인증번호는 #{{code}}입니다.\"\n"
    ))
    .unwrap();
    BizmsgConfig::load(Some(&file), &|name| vars.get(name).cloned()).unwrap().unwrap()
}

fn row(p: Prepared) -> NewBizmsg {
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

fn otp(config: &BizmsgConfig, to: &str, code: &str) -> NewBizmsg {
    let request = AlimtalkRequest {
        account: "default".into(),
        to: to.into(),
        template: "OTP".into(),
        variables: [("code".to_owned(), code.to_owned())].into(),
        fallback: FallbackChoice::None,
        at: None,
        idempotency_key: None,
        origin: "test".into(),
    };
    row(prepare_alimtalk(config, &request, NOW).unwrap())
}

struct Setup {
    fake: FakeNhn,
    store: SharedStore,
    clock: Arc<ManualClock>,
    worker: BizmsgWorker,
}

async fn setup(extra: &str, timeout: Duration) -> Setup {
    let fake = FakeNhn::start().await;
    let config = Arc::new(config(&fake, extra));
    let store = clawbridge_testkit::memory_store();
    let clock = Arc::new(ManualClock::new(NOW));
    let worker = BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(&config, timeout).unwrap(),
        config,
        retry: RetryPolicy::DURABLE,
        worker: "w1".into(),
        wake: Arc::default(),
        clock: clock.clone(),
    };
    Setup { fake, store, clock, worker }
}

#[tokio::test]
async fn stored_rows_go_out_in_one_request_and_refusals_become_dead_letters() {
    let s = setup("", Duration::from_secs(5)).await;
    s.fake.state().refuse.insert("01033330000".into());
    let rows = [otp(&s.worker.config, "010-1111-2222", "111111"), otp(&s.worker.config, "010-3333-0000", "222222")];
    let ids: Vec<i64> = s.store.enqueue_bizmsg(&rows, NOW).await.unwrap().iter().map(|e| e.id).collect();
    // The same command again stores nothing new.
    assert!(s.store.enqueue_bizmsg(&rows, NOW).await.unwrap().iter().all(|e| !e.new));

    assert_eq!(s.worker.round().await.unwrap(), 2);
    let sent = s.store.get_bizmsg(ids[0]).await.unwrap().unwrap();
    assert_eq!((sent.state, sent.dealer_id.as_deref()), (BizmsgState::Accepted, Some("ALIMTALK-1/1")));
    let refused = s.store.get_bizmsg(ids[1]).await.unwrap().unwrap();
    assert_eq!((refused.state, refused.last_error.as_deref()), (BizmsgState::Dead, Some("-2000 Invalid recipientNo")));
    assert_eq!(s.fake.state().requests.len(), 1, "one request for one template");
    assert_eq!(s.worker.round().await.unwrap(), 0, "nothing left");

    // A result update: the AlimTalk failed (not a KakaoTalk user) and the fallback went out.
    let taken = s.fake.state().taken[0].clone();
    s.fake.state().results.push(result_row(&taken, "FAILED", "3019", "RSC04"));
    s.worker.poll_results().await;
    let row = s.store.get_bizmsg(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (row.result.as_deref(), row.result_code.as_deref(), row.result_reason.as_deref(), row.fallback.as_deref()),
        (Some("failed"), Some("3019"), Some("not a KakaoTalk user"), Some("sent"))
    );
    // An older report arriving late (still pending) changes nothing.
    let late = nhn::read_webhook(
        serde_json::json!({"event": "MESSAGE_RESULT_UPDATE", "hooks": [result_row(&taken, "SENDING", "", "RSC02")]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(!record_report(&s.store, "nhn", &late[0], NOW + 1).await.unwrap(), "an older report changes nothing");
    assert_eq!(s.store.get_bizmsg(ids[0]).await.unwrap().unwrap().result.as_deref(), Some("failed"));
}

#[tokio::test]
async fn the_hourly_quota_of_a_sender_key_holds_the_rest_until_the_next_hour() {
    let s = setup("ratePerHour = 2", Duration::from_secs(5)).await;
    let rows: Vec<NewBizmsg> =
        (1..=3).map(|i| otp(&s.worker.config, &format!("010-1111-{i:04}"), &format!("{i:06}"))).collect();
    s.store.enqueue_bizmsg(&rows[..2], NOW).await.unwrap();
    s.worker.round().await.unwrap();
    s.store.enqueue_bizmsg(&rows[2..], NOW).await.unwrap();
    s.worker.round().await.unwrap();
    assert_eq!(s.fake.state().taken.len(), 2, "two messages this hour");
    let held = s.store.bizmsg_stats().await.unwrap();
    assert!(held.states.contains(&("retry".to_owned(), 1)), "{held:?}");
    // The next hour.
    s.clock.set(NOW + 3_600_000);
    s.worker.round().await.unwrap();
    assert_eq!(s.fake.state().taken.len(), 3);
}

#[tokio::test]
async fn a_lost_answer_is_resolved_without_a_second_message() {
    let s = setup("", Duration::from_millis(300)).await;
    s.fake.state().hang_next = Some(Duration::from_secs(5));
    let id = s.store.enqueue_bizmsg(&[otp(&s.worker.config, "010-1111-2222", "123456")], NOW).await.unwrap()[0].id;
    s.worker.round().await.unwrap();
    let row = s.store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!(row.state, BizmsgState::Retry, "the answer timed out");
    assert!(row.request_key.is_some(), "the key of the request that may have arrived is kept");

    s.clock.set(row.next_at);
    s.worker.round().await.unwrap();
    let row = s.store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.dealer_id.as_deref()), (BizmsgState::Accepted, Some("ALIMTALK-1/1")));
    let fake = s.fake.state();
    assert_eq!((fake.taken.len(), fake.duplicates), (1, 1), "one message; the copy was refused by its key");
}

#[tokio::test]
async fn a_429_is_retried_as_a_new_request_and_sends_once() {
    let s = setup("", Duration::from_secs(5)).await;
    s.fake.state().fail_next.push(429);
    let id = s.store.enqueue_bizmsg(&[otp(&s.worker.config, "010-1111-2222", "123456")], NOW).await.unwrap()[0].id;
    s.worker.round().await.unwrap();
    let row = s.store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.request_key.as_deref()), (BizmsgState::Retry, None), "a 429 did not arrive");
    s.clock.set(row.next_at);
    s.worker.round().await.unwrap();
    assert_eq!(s.store.get_bizmsg(id).await.unwrap().unwrap().state, BizmsgState::Accepted);
    assert_eq!(s.fake.state().taken.len(), 1);
}

#[tokio::test]
async fn a_request_larger_than_the_rest_of_the_hour_sends_what_fits_and_holds_the_rest() {
    let s = setup("ratePerHour = 2", Duration::from_secs(5)).await;
    let rows: Vec<NewBizmsg> =
        (1..=3).map(|i| otp(&s.worker.config, &format!("010-1111-{i:04}"), &format!("{i:06}"))).collect();
    s.store.enqueue_bizmsg(&rows, NOW).await.unwrap();
    s.worker.round().await.unwrap();
    assert_eq!(s.fake.state().taken.len(), 2, "the hour's two messages go; three did not fit in one request");
    assert!(s.store.bizmsg_stats().await.unwrap().states.contains(&("retry".to_owned(), 1)));
    s.clock.set(NOW + 3_600_000);
    s.worker.round().await.unwrap();
    let fake = s.fake.state();
    let mut sent: Vec<&str> = fake.taken.iter().map(|t| t.recipient.as_str()).collect();
    sent.sort_unstable();
    assert_eq!(sent, ["01011110001", "01011110002", "01011110003"], "each once");
}

/// NOW, moving with the wall clock: the per-second windows of `appRatePerSecond` pass for real.
#[derive(Debug)]
struct Moving(std::time::Instant);

impl clawbridge_core::clock::Clock for Moving {
    fn now_ms(&self) -> i64 {
        NOW + i64::try_from(self.0.elapsed().as_millis()).unwrap()
    }
}

#[tokio::test]
async fn the_app_rate_is_shared_by_every_sender_key_and_replica_and_a_burst_waits_for_it() {
    const PER_SECOND: usize = 4;
    let fake = FakeNhn::start().await;
    let config = Arc::new(config(&fake, "appRatePerSecond = 4\n[accounts.outlet]\nsenderKey = \"OUTLETKEY\""));
    let store = clawbridge_testkit::memory_store();
    let clock: Arc<Moving> = Arc::new(Moving(std::time::Instant::now()));
    let replica = |name: &str| BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(&config, Duration::from_secs(10)).unwrap(),
        config: config.clone(),
        retry: RetryPolicy::DURABLE,
        worker: name.into(),
        wake: Arc::default(),
        clock: clock.clone(),
    };
    let (w1, w2) = (replica("w1"), replica("w2"));
    let burst = |account: &str, from: usize| -> Vec<NewBizmsg> {
        (from..from + 6)
            .map(|i| {
                let mut row = otp(&config, &format!("010-2222-{i:04}"), &format!("{i:06}"));
                row.account = account.to_owned();
                row
            })
            .collect()
    };
    store.enqueue_bizmsg(&burst("default", 0), NOW).await.unwrap();
    let first = tokio::spawn(async move { w1.round().await.unwrap() });
    // The second sender key's burst arrives while the first replica waits for the next second.
    while fake.state().taken.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.enqueue_bizmsg(&burst("outlet", 100), NOW).await.unwrap();
    assert_eq!(w2.round().await.unwrap(), 6, "the other replica claimed the second burst");
    assert_eq!(first.await.unwrap(), 6);

    let fake = fake.state();
    let mut recipients: Vec<&str> = fake.taken.iter().map(|t| t.recipient.as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!((fake.taken.len(), recipients.len()), (12, 12), "every message once");
    let senders: std::collections::BTreeSet<&str> =
        fake.requests.values().filter_map(|body| body["senderKey"].as_str()).collect();
    assert_eq!(senders.len(), 2, "{senders:?}");
    // A request's key carries the instant its second was granted: per second, at most the rate.
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &fake.taken {
        let made = clawbridge_bizmsg::dispatch::RequestKey::parse(&t.key).expect("our key").made_at();
        *per_second.entry(made.div_euclid(1_000)).or_default() += 1;
    }
    assert!(per_second.values().all(|&n| n <= PER_SECOND), "{per_second:?}");
    assert!(per_second.len() >= 12 / PER_SECOND, "the bursts were spread over seconds: {per_second:?}");
}

// ---- the binary as an operator runs it, and the daemon that sends ------------------------------

mod end_to_end {
    use clawbridge::config::Config;
    use clawbridge::daemon::{self, Channels};
    use clawbridge_store::BizmsgState;
    use clawbridge_testkit::fake_gateway::FakeGateway;
    use clawbridge_testkit::fake_nhn::{FakeNhn, result_row};
    use std::collections::HashMap;
    use std::path::Path;
    use std::process::{Command, Output};
    use std::time::Duration;

    const TOKEN: &str = "bizmsg-token-0123456789";
    const TEMPLATES: &str = r##"
[[bizmsg.templates]]
templateCode = "SHIPPED"
text = "#{name}님, 주문하신 상품이 발송되었습니다. 운송장 #{tracking}"
fallbackConfig = { type = "LMS", message = "#{name}님 상품 발송: #{tracking}", title = "발송 안내" }
"##;

    fn env(fake: &FakeNhn, dir: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = fake.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.push(("NHN_BIZMSG_WEBHOOK_SIGNATURE".into(), "hook-signature".into()));
        env.push(("CLAWBRIDGE_CONFIG".into(), dir.join("clawbridge.toml").display().to_string()));
        env
    }

    fn clawbridge(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("CLAWBRIDGE_STATE_DIR", dir)
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn text(out: &Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    #[tokio::test]
    async fn an_alimtalk_from_the_command_line_is_sent_by_the_daemon_and_its_result_shown() {
        let fake = FakeNhn::start().await;
        let gateway = FakeGateway::start(TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), TEMPLATES).unwrap();
        let env = env(&fake, dir.path());
        let run = |args: &'static [&'static str]| {
            let (path, env) = (dir.path().to_owned(), env.clone());
            tokio::task::spawn_blocking(move || clawbridge(&path, &env, args))
        };
        let send: &[&str] = &[
            "alimtalk",
            "send",
            "--to",
            "010-1234-5678",
            "--template",
            "SHIPPED",
            "--var",
            "name=홍길동",
            "--var",
            "tracking=1234",
        ];
        let out = run(send).await.unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "accepted (id: 1)");
        let again = run(send).await.unwrap();
        assert!(text(&again).contains("accepted (id: 1, the same send as before: not sent again)"), "{}", text(&again));

        // Refused before anything is stored, with the field named.
        let missing = run(&["alimtalk", "send", "--to", "010-1234-5678", "--template", "SHIPPED", "--var", "name=a"])
            .await
            .unwrap();
        assert!(!missing.status.success());
        assert!(text(&missing).contains("needs the variable \"tracking\""), "{}", text(&missing));
        let landline = run(&[
            "alimtalk",
            "send",
            "--to",
            "02-123-4567",
            "--template",
            "SHIPPED",
            "--var",
            "name=a",
            "--var",
            "tracking=1",
        ])
        .await
        .unwrap();
        assert!(text(&landline).contains("not a Korean mobile number"), "{}", text(&landline));
        let queued = run(&["alimtalk", "status", "1"]).await.unwrap();
        assert!(text(&queued).contains("queued"), "{}", text(&queued));

        // The daemon sends it.
        let vars: HashMap<String, String> = env
            .iter()
            .cloned()
            .chain([
                ("HOME".to_owned(), dir.path().display().to_string()),
                ("CLAWBRIDGE_STATE_DIR".to_owned(), dir.path().display().to_string()),
                ("CLAWBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
                ("OPENCLAW_GATEWAY_URL".to_owned(), gateway.url()),
                ("OPENCLAW_TOKEN".to_owned(), TOKEN.to_owned()),
            ])
            .collect();
        let config_path = dir.path().join("clawbridge.toml");
        let config = Config::load_with(Some(&config_path), &|k| vars.get(k).cloned()).unwrap();
        let daemon = daemon::start(config, Channels::Configured).await.unwrap();
        let store =
            clawbridge_store::open(&format!("sqlite://{}", dir.path().join("clawbridge.db").display())).await.unwrap();
        crate::support::eventually(Duration::from_secs(10), "the daemon sends the AlimTalk", || {
            let store = store.clone();
            async move { store.get_bizmsg(1).await.unwrap().is_some_and(|r| r.state == BizmsgState::Accepted) }
        })
        .await;
        {
            let nhn = fake.state();
            assert_eq!(nhn.taken.len(), 1, "one message for two identical commands");
            let body = nhn.requests.values().next().unwrap();
            assert_eq!(body["recipientList"][0]["resendParameter"]["resendType"], "LMS");
            assert_eq!(body["recipientList"][0]["resendParameter"]["resendContent"], "홍길동님 상품 발송: 1234");
        }

        // NHN's result webhook: a wrong signature is refused, the right one recorded.
        let taken = fake.state().taken[0].clone();
        let hook = serde_json::json!({"hooksId": "h1", "webhookConfigId": "c1", "productName": "AlimTalk",
                                      "event": "MESSAGE_RESULT_UPDATE", "hooks": [result_row(&taken, "FAILED", "3019", "RSC04")]});
        let url = format!("http://{}/bizmsg/nhn/webhook", daemon.addr);
        let http = reqwest::Client::new();
        let wrong =
            http.post(&url).header("X-Toast-Webhook-Signature", "nope").body(hook.to_string()).send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        let malformed =
            http.post(&url).header("X-Toast-Webhook-Signature", "hook-signature").body("{").send().await.unwrap();
        assert_eq!(malformed.status(), 400);
        let ok = http
            .post(&url)
            .header("X-Toast-Webhook-Signature", "hook-signature")
            .body(hook.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let status = run(&["alimtalk", "status", "1"]).await.unwrap();
        let shown = text(&status);
        assert!(shown.contains("accepted by the dealer"), "{shown}");
        assert!(shown.contains("result: failed — 3019 not a KakaoTalk user"), "{shown}");
        assert!(shown.contains("SMS/LMS fallback: sent"), "{shown}");
        assert!(shown.contains("010-****-5678") && !shown.contains("1234-5678"), "the number is masked: {shown}");
        let status = run(&["status"]).await.unwrap();
        assert!(
            text(&status).contains(
                "bizmsg:  0 queued, 0 sending, 0 retry, 1 accepted (0 delivered, 1 failed, 0 pending), 0 not sent"
            ),
            "{}",
            text(&status)
        );
        daemon.shutdown().await;
    }

    #[tokio::test]
    async fn a_brand_message_at_night_is_accepted_and_held_until_eight() {
        let fake = FakeNhn::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), TEMPLATES).unwrap();
        let env = env(&fake, dir.path());
        // 23:30 KST tomorrow, given as the schedule: held until 08:00 the day after.
        let today = clawbridge_core::time::KST.to_datetime(jiff::Timestamp::now()).date();
        let (tomorrow, after) = (today.tomorrow().unwrap(), today.tomorrow().unwrap().tomorrow().unwrap());
        let at = format!("{tomorrow} 23:30");
        let out = tokio::task::spawn_blocking({
            let (path, env) = (dir.path().to_owned(), env.clone());
            move || {
                let args = [
                    "brand",
                    "send",
                    "--to",
                    "010-1234-5678",
                    "--text",
                    "겨울 세일 20%",
                    "--button",
                    "쇼핑하기|https://shop.example/sale",
                    "--at",
                    &at,
                ];
                clawbridge(&path, &env, &args)
            }
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(&format!("held until {after} 08:00 KST")), "{}", text(&out));
        let friendtalk = tokio::task::spawn_blocking({
            let (path, env) = (dir.path().to_owned(), env.clone());
            move || clawbridge(&path, &env, &["friendtalk", "send", "--to", "010-1234-5678", "--text", "세일"])
        })
        .await
        .unwrap();
        assert!(text(&friendtalk).contains("replaced by Brand Message"), "{}", text(&friendtalk));
    }

    const BRAND_TEMPLATES: &str = r##"
[[bizmsg.brandTemplates]]
templateCode = "WINTER"
chatBubbleType = "IMAGE"
text = "#{name}님, 겨울 세일 #{rate}% 할인"
buttons = [{ type = "WL", name = "쇼핑하기", linkMo = "https://shop.example/s/#{code}" }]
"##;

    /// The header of a PNG of `width`×`height` (all that is read of it before the upload).
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
        bytes.extend_from_slice(&[0x5a; 64]);
        bytes
    }

    #[tokio::test]
    async fn a_brand_template_with_an_image_file_is_uploaded_once_and_sent_as_a_basic_message() {
        use clawbridge::pipeline::bizmsg::BizmsgWorker;
        use clawbridge_bizmsg::client::DealerClient;
        use clawbridge_bizmsg::config::BizmsgConfig;
        use clawbridge_core::clock::ManualClock;
        use clawbridge_core::retry::RetryPolicy;
        use std::sync::Arc;

        let fake = FakeNhn::start().await;
        fake.state().brand_templates.push(serde_json::json!({
            "plusFriendId": "@shop", "templateCode": "WINTER", "templateName": "겨울 세일", "chatBubbleType": "IMAGE",
            "content": "#{name}님, 겨울 세일 #{rate}% 할인", "adult": false, "status": "A",
            "buttons": [{"name": "쇼핑하기", "type": "WL", "linkMo": "https://shop.example/s/#{code}"}]
        }));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), BRAND_TEMPLATES).unwrap();
        let image = dir.path().join("sale.png");
        std::fs::write(&image, png(800, 400)).unwrap();
        let narrow = dir.path().join("narrow.png");
        std::fs::write(&narrow, png(300, 300)).unwrap();
        let env = env(&fake, dir.path());
        let run = |args: Vec<String>| {
            let (path, env) = (dir.path().to_owned(), env.clone());
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                clawbridge(&path, &env, &args)
            })
        };
        let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();

        let sync = run(args(&["alimtalk", "templates", "sync"])).await.unwrap();
        assert!(text(&sync).contains("1 Brand Message template(s) from nhn, 1 approved"), "{}", text(&sync));
        let list = run(args(&["alimtalk", "templates", "list"])).await.unwrap();
        assert!(text(&list).contains("WINTER  brand  approved  variables: name, rate, code"), "{}", text(&list));

        let image = image.display().to_string();
        let send = args(&[
            "brand",
            "send",
            "--to",
            "010-1234-5678",
            "--template",
            "WINTER",
            "--var",
            "name=홍길동",
            "--var",
            "rate=20",
            "--var",
            "code=W1",
            "--image",
            &image,
        ]);
        let out = run(send.clone()).await.unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).starts_with("accepted (id: 1"), "{}", text(&out));
        let again = run(send).await.unwrap();
        assert!(text(&again).contains("the same send as before: not sent again"), "{}", text(&again));
        {
            let nhn = fake.state();
            assert_eq!(nhn.images.len(), 1, "the image is uploaded once for the same send");
            let upload = &nhn.images[0];
            assert_eq!((upload.image_type.as_str(), upload.file_name.as_str()), ("IMAGE", "sale.png"));
            assert_eq!((upload.content_type.as_str(), upload.bytes.clone()), ("image/png", png(800, 400)));
        }

        // Refused before anything is uploaded or stored, naming the template and the field.
        let missing = run(args(&[
            "brand",
            "send",
            "--to",
            "010-1234-5678",
            "--template",
            "WINTER",
            "--var",
            "name=a",
            "--var",
            "rate=1",
        ]))
        .await
        .unwrap();
        assert!(!missing.status.success());
        assert!(
            text(&missing).contains("Brand Message template \"WINTER\" needs the variable \"code\""),
            "{}",
            text(&missing)
        );
        let narrow = narrow.display().to_string();
        let too_narrow =
            run(args(&["brand", "send", "--to", "010-1234-5678", "--text", "세일", "--image", &narrow])).await.unwrap();
        assert!(text(&too_narrow).contains("300 pixels wide"), "{}", text(&too_narrow));
        let unknown = run(args(&["brand", "send", "--to", "010-1234-5678", "--template", "WINTR", "--var", "name=a"]))
            .await
            .unwrap();
        assert!(text(&unknown).contains("no Brand Message template \"WINTR\""), "{}", text(&unknown));
        assert_eq!(fake.state().images.len(), 1);

        // The row carries the uploaded image's URL; the worker sends it as a template message.
        let store =
            clawbridge_store::open(&format!("sqlite://{}", dir.path().join("clawbridge.db").display())).await.unwrap();
        let row = store.get_bizmsg(1).await.unwrap().unwrap();
        assert!(row.payload.contains("https://mud-kage.kakao.com/dn/fake/1.img"), "{}", row.payload);
        assert!(store.get_bizmsg(2).await.unwrap().is_none(), "the refused sends stored nothing");
        let vars: std::collections::BTreeMap<&str, String> = fake.env().into_iter().collect();
        let table: toml::Table =
            toml::from_str::<toml::Table>(BRAND_TEMPLATES).unwrap()["bizmsg"].as_table().unwrap().clone();
        let config = Arc::new(BizmsgConfig::load(Some(&table), &|name| vars.get(name).cloned()).unwrap().unwrap());
        let worker = BizmsgWorker {
            store: store.clone(),
            client: DealerClient::new(&config, Duration::from_secs(5)).unwrap(),
            config,
            retry: RetryPolicy::DURABLE,
            worker: "w1".into(),
            wake: Arc::default(),
            clock: Arc::new(ManualClock::new(row.next_at)),
        };
        assert_eq!(worker.round().await.unwrap(), 1);
        assert_eq!(store.get_bizmsg(1).await.unwrap().unwrap().state, BizmsgState::Accepted);
        let nhn = fake.state();
        assert_eq!(nhn.taken.len(), 1);
        let body = nhn.requests.values().next().unwrap();
        assert_eq!(body["templateCode"], "WINTER");
        let recipient = &body["recipientList"][0];
        assert_eq!(recipient["targeting"], "I");
        assert_eq!(recipient["templateParameter"], serde_json::json!({"name": "홍길동", "rate": "20", "code": "W1"}));
        assert_eq!(
            recipient["imageParameters"],
            serde_json::json!([{"imageUrl": "https://mud-kage.kakao.com/dn/fake/1.img"}])
        );
        assert_eq!(nhn.images.len(), 1, "the send did not upload again");
    }
}

/// The agent sends a notification: a real OpenClaw gateway runs `clawbridge alimtalk send` with
/// its `exec` tool (the path the "Business notifications" SKILL.md section teaches); the send is
/// stored, answered `accepted (id: 1)`, and the worker delivers it to the fake NHN once.
#[tokio::test]
async fn the_agent_sends_an_alimtalk_through_the_real_gateway() {
    use crate::support::{Harness, config as daemon_config, open_policy, text};
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let fake = FakeNhn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("clawbridge.toml");
    std::fs::write(
        &config_file,
        "[[bizmsg.templates]]\ntemplateCode = \"OTP\"\ntext = \"인증번호는 #{code}입니다.\"\n",
    )
    .unwrap();
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    let marker = format!("otp-{:08x}", u32::from_le_bytes(bytes));
    let env: String = fake.env().iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let command = format!(
        "HOME={home} CLAWBRIDGE_STATE_DIR={home} CLAWBRIDGE_CONFIG={config} {env}RUST_LOG=warn {bin} alimtalk send \
         --to 010-1234-5678 --template OTP --var code=123456 --idempotency-key {marker}",
        home = dir.path().display(),
        config = config_file.display(),
        bin = env!("CARGO_BIN_EXE_clawbridge"),
    );

    let daemon_dir = tempfile::tempdir().unwrap();
    let mut h =
        Harness::start(daemon_config(daemon_dir.path(), &shared.url(), shared.token(), &[]), open_policy(), 4096).await;
    h.bridge().accept(text(&marker, &format!("{marker}-msg"), &format!("TOOLTEST: {command}"))).await.unwrap();
    let sent = h.wait_sent(1, Duration::from_secs(180)).await;
    let reply = sent[0].text.clone().unwrap_or_default();
    assert!(reply.contains("accepted (id: 1)"), "{reply}");
    h.shutdown().await;

    // What the agent stored is sent by the worker, once.
    let store =
        clawbridge_store::open(&format!("sqlite://{}", dir.path().join("clawbridge.db").display())).await.unwrap();
    let row = store.get_bizmsg(1).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.origin.as_str(), row.idempotency_key.as_str()),
        (BizmsgState::Queued, "cli", format!("cli:{marker}").as_str())
    );
    let vars: BTreeMap<&str, String> = fake.env().into_iter().collect();
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
    let bizmsg = BizmsgConfig::load(file.get("bizmsg").and_then(toml::Value::as_table), &|k| vars.get(k).cloned())
        .unwrap()
        .unwrap();
    let worker = BizmsgWorker {
        store: store.clone(),
        client: DealerClient::new(&bizmsg, Duration::from_secs(5)).unwrap(),
        config: Arc::new(bizmsg),
        retry: RetryPolicy::DURABLE,
        worker: "w1".into(),
        wake: Arc::default(),
        clock: Arc::new(clawbridge_core::clock::SystemClock),
    };
    worker.round().await.unwrap();
    assert_eq!(store.get_bizmsg(1).await.unwrap().unwrap().state, BizmsgState::Accepted);
    let nhn = fake.state();
    assert_eq!(nhn.taken.len(), 1);
    assert_eq!(nhn.requests.values().next().unwrap()["recipientList"][0]["templateParameter"]["code"], "123456");
}
