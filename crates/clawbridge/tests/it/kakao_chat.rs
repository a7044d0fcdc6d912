//! KakaoTalk chatbot end to end: the daemon with the Kakao channel, the REAL OpenClaw gateway
//! with the stub model, and a fake Kakao side (skill requests, a one-use callback receiver).

use crate::support::{config, eventually};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use clawbridge::daemon::{self, DaemonHandle};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-skill-secret-0123456789";
const BOT: &str = "e2e-bot";
/// First turns in a fresh gateway workspace take ~12 s on a loaded 2-core machine.
const TURN: Duration = Duration::from_secs(180);

fn unique(label: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("{label}-{:08x}", u32::from_le_bytes(bytes))
}

/// The callback side of Kakao: each URL once, within 60 s of issue.
#[derive(Default)]
struct Callbacks {
    issued: Mutex<Vec<(String, Instant)>>,
    received: Mutex<Vec<(String, Value, bool)>>,
}

async fn receive(
    State(cb): State<Arc<Callbacks>>,
    Path((_bot, token)): Path<(String, String)>,
    body: Bytes,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut issued = cb.issued.lock().unwrap();
    let ok = match issued.iter().position(|(t, _)| *t == token) {
        Some(i) => issued.remove(i).1.elapsed() < Duration::from_secs(60),
        None => false,
    };
    cb.received.lock().unwrap().push((token, body, ok));
    let status = if ok { "SUCCESS" } else { "FAIL" };
    axum::Json(json!({"taskId": "t", "status": status, "message": if ok { "" } else { "Invalid callback token" }}))
}

struct Kakao {
    daemon: Option<DaemonHandle>,
    callbacks: Arc<Callbacks>,
    callback_base: String,
    http: reqwest::Client,
    database_url: String,
    config: clawbridge::config::Config,
    _dir: tempfile::TempDir,
}

impl Kakao {
    async fn start(shared: &clawbridge_testkit::SharedGateway, deadline_secs: &str) -> Self {
        let callbacks = Arc::new(Callbacks::default());
        let router =
            axum::Router::new().route("/v1/bots/{bot}/callback/{token}", post(receive)).with_state(callbacks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let callback_base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            &shared.url(),
            shared.token(),
            &[
                ("KAKAO_SKILL_SECRET", SECRET),
                ("KAKAO_BOT_ID", BOT),
                ("KAKAO_BOT_API_BASE_URL", &callback_base),
                ("KAKAO_DM_POLICY", "open"),
                ("KAKAO_ALLOW_FROM", "*"),
                ("KAKAO_SYNC_DEADLINE_SECS", deadline_secs),
            ],
        );
        let database_url = cfg.bridge.database_url.clone();
        let probe = clawbridge_channel::plugin::ConnectorContext { bridge: clawbridge_testkit::memory_bridge().bridge };
        let connectors = clawbridge::channels::enabled(&cfg, &probe).unwrap();
        assert_eq!(connectors.len(), 1, "the Kakao chatbot is enabled by its settings");
        let daemon = daemon::start(cfg.clone(), daemon::Channels::Configured).await.expect("daemon starts");
        daemon.gateway().wait_connected(TURN).await.expect("gateway connects");
        Self {
            daemon: Some(daemon),
            callbacks,
            callback_base,
            http: reqwest::Client::new(),
            database_url,
            config: cfg,
            _dir: dir,
        }
    }

    /// The daemon with the Kakao chatbot and the fake gateway (policy tests need no model).
    async fn start_with_fake(
        fake: &clawbridge_testkit::fake_gateway::FakeGateway,
        token: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![("KAKAO_SKILL_SECRET", SECRET), ("KAKAO_BOT_ID", BOT)];
        vars.extend_from_slice(env);
        let cfg = config(dir.path(), &fake.url(), token, &vars);
        let database_url = cfg.bridge.database_url.clone();
        let daemon = daemon::start(cfg.clone(), daemon::Channels::Configured).await.unwrap();
        daemon.gateway().wait_connected(Duration::from_secs(30)).await.unwrap();
        Self {
            daemon: Some(daemon),
            callbacks: Arc::default(),
            callback_base: String::new(),
            http: reqwest::Client::new(),
            database_url,
            config: cfg,
            _dir: dir,
        }
    }

    fn callback_url(&self) -> String {
        let token = unique("tok");
        self.callbacks.lock_issue(&token);
        format!("{}/v1/bots/{BOT}/callback/{token}", self.callback_base)
    }

    async fn skill(&self, user: &str, utterance: &str, callback: Option<&str>) -> Value {
        let mut body = json!({
            "intent": {"id": "fallback", "name": "폴백 블록"},
            "userRequest": {"utterance": utterance, "lang": "ko", "timezone": "Asia/Seoul",
                "user": {"id": format!("bu-{user}"), "type": "botUserKey", "properties": {"plusfriendUserKey": user}}},
            "bot": {"id": BOT, "name": "e2e"},
            "action": {"id": "a", "name": "agent", "params": {}, "detailParams": {}}
        });
        if let Some(url) = callback {
            body["userRequest"]["callbackUrl"] = json!(url);
        }
        let addr = self.daemon.as_ref().unwrap().addr;
        let response = self
            .http
            .post(format!("http://{addr}/kakao/skill"))
            .header("X-Skill-Secret", SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn wait_callback(&self, n: usize) -> Vec<(String, Value, bool)> {
        let cb = self.callbacks.clone();
        eventually(TURN, "the answer reached the callback URL", || {
            let got = cb.received.lock().unwrap().len();
            async move { got >= n }
        })
        .await;
        self.callbacks.received.lock().unwrap().clone()
    }

    async fn shutdown(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

impl Callbacks {
    fn lock_issue(&self, token: &str) {
        self.issued.lock().unwrap().push((token.to_owned(), Instant::now()));
    }
}

fn valid(response: &Value) -> clawbridge_kakao::chatbot::SkillResponse {
    let parsed: clawbridge_kakao::chatbot::SkillResponse =
        serde_json::from_value(response.clone()).expect("SkillResponse");
    parsed.validate().expect("within Kakao's limits");
    parsed
}

#[tokio::test]
async fn kakao_skill_with_callback_gets_the_model_answer_at_the_callback() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let mut k = Kakao::start(shared, "1.0").await;
    let marker = unique("kakao-cb");
    let url = k.callback_url();
    // The stub answers after 2.5 s: longer than the 1 s sync deadline, so the callback is used.
    let first = k.skill(&unique("pf"), &format!("SLOW:2500 {marker}"), Some(&url)).await;
    if first["useCallback"] == true {
        assert_eq!(first["version"], "2.0");
        assert!(first["data"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        let received = k.wait_callback(1).await;
        assert_eq!(received.len(), 1);
        assert!(received[0].2, "the callback was used once and in time: {received:?}");
        let answer = valid(&received[0].1);
        assert!(answer.plain_text().contains("STUB-REPLY") && answer.plain_text().contains(&marker), "{answer:?}");
    } else {
        let answer = valid(&first);
        assert!(answer.plain_text().contains(&marker), "{first}");
    }
    assert_eq!(shared.stub().count_with(&marker), 1);
    k.shutdown().await;
}

#[tokio::test]
async fn kakao_skill_without_callback_answers_on_the_next_utterance() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let mut k = Kakao::start(shared, "1.0").await;
    let marker = unique("kakao-next");
    let user = unique("pf");
    let first = k.skill(&user, &format!("SLOW:2500 {marker}"), None).await;
    let shown = valid(&first);
    assert!(!shown.plain_text().contains(&marker), "the answer cannot be ready within 1 s: {first}");

    // Wait until the answer is kept for the next message.
    let store = clawbridge_store::open(&k.database_url).await.unwrap();
    let namespace = format!("kakao.pending/default/{user}");
    eventually(TURN, "the late answer is kept", || {
        let (store, namespace) = (store.clone(), namespace.clone());
        async move { !store.list_state(&namespace, 5, clawbridge::util::now_ms()).await.unwrap().is_empty() }
    })
    .await;
    let next = k.skill(&user, "답변 보기", None).await;
    let answer = valid(&next);
    assert!(answer.plain_text().contains("STUB-REPLY") && answer.plain_text().contains(&marker), "{next}");
    assert_eq!(shared.stub().count_with(&marker), 1);
    k.shutdown().await;
}

#[tokio::test]
async fn kakao_long_answer_renders_with_more() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let mut k = Kakao::start(shared, "4.0").await;
    let user = unique("pf");
    let marker = unique("kakao-long");
    let url = k.callback_url();
    let first = k.skill(&user, &format!("LONG:4000 {marker}"), Some(&url)).await;
    let page = if first["useCallback"] == true { k.wait_callback(1).await[0].1.clone() } else { first };
    let page = valid(&page);
    assert_eq!(page.outputs().len(), 3, "{page:?}");
    let quick = &page.template.as_ref().unwrap().quick_replies;
    assert_eq!(quick.len(), 1);
    assert_eq!(quick[0].label, "더 보기");
    let more = valid(&k.skill(&user, "더 보기", None).await);
    assert!(more.template.as_ref().unwrap().quick_replies.is_empty());
    let count =
        |r: &clawbridge_kakao::chatbot::SkillResponse| r.plain_text().chars().filter(|c| !c.is_whitespace()).count();
    let total = count(&page) + count(&more);
    assert!((3_000..=4_000).contains(&total), "all of the 4,000-character answer is shown: {total}");
    assert_eq!(shared.stub().count_with(&marker), 1, "더 보기 started no agent run");
    k.shutdown().await;
}

fn clawbridge_cli(state: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("CLAWBRIDGE_STATE_DIR", state)
        .env("CLAWBRIDGE_LISTEN", "127.0.0.1:1")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

#[tokio::test]
async fn kakao_push_skips_blocked_users_records_the_task_and_status_shows_it() {
    let events = clawbridge_testkit::fake_kakao::FakeEventApi::start(BOT, "rest-key").await;
    let base = events.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store =
        clawbridge_store::open(&format!("sqlite://{}", dir.path().join("clawbridge.db").display())).await.unwrap();
    let now = clawbridge::util::now_ms();
    let blocked = json!({"event": "blocked", "updated_at": "2026-01-01T00:00:00Z", "received_at": now}).to_string();
    let entry = clawbridge_store::StatePut {
        namespace: clawbridge_kakao::chatbot::ns::CHANNEL_USERS,
        key: "app_user_id:blocked-1",
        value: &blocked,
        expires_at: None,
    };
    store.put_state(&entry, false, now).await.unwrap();

    let env = [
        ("KAKAO_SKILL_SECRET", SECRET),
        ("KAKAO_BOT_ID", BOT),
        ("KAKAO_REST_API_KEY", "rest-key"),
        ("KAKAO_BOT_API_BASE_URL", base.as_str()),
    ];
    let args = [
        "kakao",
        "push",
        "--user",
        "u1",
        "--user",
        "blocked-1",
        "--user-type",
        "appUserId",
        "--event",
        "order_shipped",
        "--data",
        "text=출발했어요",
        "--wait-secs",
        "5",
    ];
    let path = dir.path().to_owned();
    let env_owned: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        clawbridge_cli(&path, &env, &args)
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("skipped blocked-1: blocked the channel"), "{text}");
    assert!(text.contains("batch 1: 1 user(s) → task task-1 SUCCESS"), "{text}");
    assert!(text.contains("u1: SUCCESS"), "{text}");
    let sent = events.pushes();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["user"], json!([{"type": "appUserId", "id": "u1"}]));
    assert_eq!(sent[0]["event"], json!({"name": "order_shipped", "data": {"text": "출발했어요"}}));

    let path = dir.path().to_owned();
    let out =
        tokio::task::spawn_blocking(move || clawbridge_cli(&path, &[("KAKAO_SKILL_SECRET", SECRET)], &["status"]))
            .await
            .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("kakao:   channel friends added 0, blocked 1"), "{text}");
    assert!(text.contains("push task-1 event order_shipped to 1 user(s): SUCCESS"), "{text}");

    // Without the REST API key the command says which setting is missing.
    let path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        clawbridge_cli(
            &path,
            &[("KAKAO_SKILL_SECRET", SECRET), ("KAKAO_BOT_ID", BOT)],
            &["kakao", "push", "--user", "u", "--event", "e"],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KAKAO_REST_API_KEY"));
}

/// DM policy `pairing` (the default) on KakaoTalk, with the fake gateway: the code comes back in
/// the skill answer, `clawbridge pairing approve kakao CODE` lets the user in, and the approval
/// notice is shown with the next answer.
#[tokio::test]
async fn kakao_pairing_code_inline_then_approved() {
    use clawbridge::cli::PairingAction;
    use clawbridge_testkit::fake_gateway::FakeGateway;
    let fake = FakeGateway::start("kakao-pair-token-0123").await;
    let mut k = Kakao::start_with_fake(&fake, "kakao-pair-token-0123", &[("KAKAO_SYNC_DEADLINE_SECS", "4.0")]).await;
    let cfg = k.config.clone();
    let user = unique("pf");
    let first = valid(&k.skill(&user, "안녕하세요", None).await).plain_text();
    let code = first
        .split("페어링 코드는 ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a pairing code in {first:?}"))
        .to_owned();
    assert!(fake.agent_calls().is_empty(), "an unknown user does not reach the agent");
    // Asking again before the approval: told to wait, not promised an answer that never comes.
    let again = valid(&k.skill(&user, "아직인가요?", None).await).plain_text();
    assert!(again.contains("승인을 기다리고"), "{again}");

    let approve = PairingAction::Approve { channel: "kakao".to_owned(), code, no_notify: false };
    let code = clawbridge::commands::pairing::run(&cfg, approve).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let store = clawbridge_store::open(&k.database_url).await.unwrap();
    let namespace = format!("kakao.pending/default/{user}");
    eventually(Duration::from_secs(30), "the approval notice is kept for the user", || {
        let (store, namespace) = (store.clone(), namespace.clone());
        async move { !store.list_state(&namespace, 5, clawbridge::util::now_ms()).await.unwrap().is_empty() }
    })
    .await;

    let next = valid(&k.skill(&user, "주문 확인해 주세요", None).await);
    let texts: Vec<String> = next.plain_text().lines().map(str::to_owned).collect();
    assert_eq!(
        texts,
        vec![cfg.pipeline.approved_reply.clone(), "FAKE-REPLY: 주문 확인해 주세요".to_owned()],
        "{next:?}"
    );
    k.shutdown().await;
}

/// DM policy `allowlist` with no deny text: a refused user is told at once that the assistant is
/// not available, instead of "still working" for an answer that never comes.
#[tokio::test]
async fn kakao_refused_user_is_answered_at_once() {
    use clawbridge_testkit::fake_gateway::FakeGateway;
    let fake = FakeGateway::start("kakao-deny-token-0123").await;
    let env =
        [("KAKAO_DM_POLICY", "allowlist"), ("KAKAO_ALLOW_FROM", "someone-else"), ("KAKAO_SYNC_DEADLINE_SECS", "4.5")];
    let mut k = Kakao::start_with_fake(&fake, "kakao-deny-token-0123", &env).await;
    let answer = valid(&k.skill(&unique("pf"), "도와주세요", None).await);
    assert!(answer.plain_text().contains("이용할 수 없어요"), "{answer:?}");
    assert!(answer.template.as_ref().unwrap().quick_replies.is_empty(), "no 답변 보기 for an answer that never comes");
    assert!(fake.agent_calls().is_empty());
    k.shutdown().await;
}
