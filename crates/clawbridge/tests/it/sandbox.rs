//! `clawbridge sandbox`: the simulators' routes, the page's API, and the real daemon between
//! them — with the fake gateway (fast, scripted replies), and in real headless Chromium against
//! the real OpenClaw gateway with the stub model (screenshots in target/browser-artefacts/).

use crate::browser::Browser;
use crate::support::eventually;
use clawbridge::config::GatewaySettings;
use clawbridge::sandbox::kakao_sim::KakaoEntry;
use clawbridge::sandbox::kapso_sim::{Body, Tick};
use clawbridge::sandbox::{PHONE_NUMBER_ID, Policy, Sandbox, SandboxOptions, Sim, Toggles};
use clawbridge_testkit::fake_gateway::{FakeGateway, FakeReply};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn gateway(url: &str, token: &str) -> GatewaySettings {
    GatewaySettings {
        url: url.to_owned(),
        token: Some(token.to_owned().into()),
        agent_id: "main".to_owned(),
        agent_timeout: Duration::from_secs(300),
    }
}

async fn sandbox(url: &str, token: &str) -> Sandbox {
    let options =
        SandboxOptions { state_dir: None, listen: "127.0.0.1:0".parse().unwrap(), gateway: gateway(url, token) };
    Sandbox::start(options).await.expect("the sandbox starts")
}

/// The simulators alone, on a listener of their own (no daemon).
async fn simulators() -> Arc<Sim> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Sim::new(format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let router = sim.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    sim
}

async fn send(sandbox: &Sandbox, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("http://{}/sandbox/api/send", sandbox.addr)).json(&body).send().await.unwrap()
}

fn kakao_answers(sim: &Sim, user: &str) -> Vec<clawbridge_kakao::chatbot::SkillResponse> {
    sim.kakao
        .chat(user)
        .into_iter()
        .filter_map(|e| match e {
            KakaoEntry::Answer { response, .. } => Some(response),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_simulated_kapso_checks_the_key_records_sends_and_fails_during_an_outage() {
    let sim = simulators().await;
    let http = reqwest::Client::new();
    let url = format!("{}/meta/whatsapp/v24.0/{PHONE_NUMBER_ID}/messages", sim.base);
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "15550009999",
                      "type": "text", "text": {"body": "*hi*"}});
    let refused = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = http.post(&url).header("X-API-Key", "nope").json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(sim.kapso.chat("15550009999").messages.is_empty(), "nothing recorded without the key");

    let key = sim.secrets.kapso_api_key.clone();
    let sent: Value = http.post(&url).header("X-API-Key", &key).json(&body).send().await.unwrap().json().await.unwrap();
    let id = sent["messages"][0]["id"].as_str().unwrap().to_owned();
    let chat = sim.kapso.chat("15550009999");
    assert_eq!(chat.messages.len(), 1);
    assert_eq!(chat.messages[0].id, id);
    assert!(matches!(&chat.messages[0].body, Body::Text(t) if t == "*hi*"));

    sim.set_toggles(Toggles { outage: true, ..sim.toggles() });
    let down = http.post(&url).header("X-API-Key", &key).json(&body).send().await.unwrap();
    assert_eq!(down.status(), 503);
    let error: Value = down.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("outage"), "{error}");
    assert_eq!(sim.kapso.chat("15550009999").messages.len(), 1, "a failed send shows nothing");
    sim.set_toggles(Toggles { outage: false, ..sim.toggles() });
    assert_eq!(http.post(&url).header("X-API-Key", &key).json(&body).send().await.unwrap().status(), 200);

    // An uploaded file is served for the media look-up and the download (no key).
    let form = reqwest::multipart::Form::new().text("messaging_product", "whatsapp").part(
        "file",
        reqwest::multipart::Part::bytes(b"%PDF-1".to_vec()).file_name("r.pdf").mime_str("application/pdf").unwrap(),
    );
    let upload = format!("{}/meta/whatsapp/v24.0/{PHONE_NUMBER_ID}/media", sim.base);
    let uploaded: Value =
        http.post(&upload).header("X-API-Key", &key).multipart(form).send().await.unwrap().json().await.unwrap();
    let media = uploaded["id"].as_str().unwrap();
    let info: Value = http
        .get(format!("{}/meta/whatsapp/v24.0/{media}?phone_number_id={PHONE_NUMBER_ID}", sim.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = http.get(info["download_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1");
}

#[tokio::test]
async fn a_kakao_callback_url_takes_one_answer() {
    let sim = simulators().await;
    let (_, url) = sim.kakao.issue_callback(&sim, "minji", Instant::now());
    let answer = json!({"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "늦은 답변"}}]}});
    let http = reqwest::Client::new();
    let first: Value = http.post(&url).json(&answer).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "SUCCESS", "{first}");
    let again: Value = http.post(&url).json(&answer).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["status"], "FAIL", "a callback URL is used once: {again}");
    let answers = kakao_answers(&sim, "minji");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].plain_text(), "늦은 답변");

    // During an outage the URL answers 503 and stays usable for the retry.
    let (_, url) = sim.kakao.issue_callback(&sim, "minji", Instant::now());
    sim.set_toggles(Toggles { outage: true, ..sim.toggles() });
    assert_eq!(http.post(&url).json(&answer).send().await.unwrap().status(), 503);
    sim.set_toggles(Toggles { outage: false, ..sim.toggles() });
    let retried: Value = http.post(&url).json(&answer).send().await.unwrap().json().await.unwrap();
    assert_eq!(retried["status"], "SUCCESS");
    assert_eq!(sim.kakao.outstanding_callbacks(), 0);
}

#[tokio::test]
async fn the_page_answers_on_loopback_only_and_refuses_bad_input() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let http = reqwest::Client::new();
    let page = http.get(sb.url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/console\""), "the console is one click away");
    assert!(html.contains("data-platform=\"kakao\"") && html.contains("data-platform=\"whatsapp\""));
    for asset in ["app.js", "app.css"] {
        let got = http.get(format!("http://{}/sandbox/assets/{asset}", sb.addr)).send().await.unwrap();
        assert_eq!(got.status(), 200, "{asset}");
    }
    let rebound = http.get(sb.url()).header("Host", "evil.example:80").send().await.unwrap();
    assert_eq!(rebound.status(), 403, "a DNS-rebound name is refused");

    for bad in [
        json!({"platform": "line", "user": "a", "text": "x"}),
        json!({"platform": "whatsapp", "user": "12", "text": "x"}),
        json!({"platform": "kakao", "user": "<>", "text": "x"}),
        json!({"platform": "kakao", "user": "minji", "text": "  "}),
        json!({"platform": "kakao", "user": "minji", "text": "x", "image": {"name": "a", "mime": "text/html", "data": ""}}),
    ] {
        let answer = send(&sb, bad.clone()).await;
        assert_eq!(answer.status(), 400, "{bad}");
        let error: Value = answer.json().await.unwrap();
        assert!(error["error"].is_string(), "{error}");
    }
    let form = http
        .post(format!("http://{}/sandbox/api/send", sb.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("platform=kakao&user=minji&text=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400, "a cross-site form post is refused");
    assert!(sb.sim.kakao.chat("minji").is_empty(), "nothing was sent");
    assert!(fake.agent_calls().is_empty());

    let toggles = format!("http://{}/sandbox/api/toggles", sb.addr);
    let set: Value = http
        .post(&toggles)
        .json(&json!({"callback": false, "deadline": true, "policy": "open", "outage": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set, json!({"callback": false, "deadline": true, "policy": "open", "outage": true}));
    assert!(sb.sim.toggles().outage && !sb.sim.toggles().callback);
    let bad = http.post(&toggles).json(&json!({"policy": "everyone"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(sb.sim.toggles().outage, "a refused change changes nothing");
    let state: Value = http
        .get(format!("http://{}/sandbox/api/state?chats=kakao:minji,whatsapp:15550001111,line:x", sb.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["daemon"], "running");
    assert_eq!(state["chats"].as_object().unwrap().len(), 2, "{state}");
    sb.shutdown().await;
}

#[tokio::test]
async fn links_and_pictures_in_a_kakao_answer_show_as_a_card_with_buttons() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    let answer = "주문은 [주문 조회](https://shop.example/orders)에서 확인하세요.\n![상품](https://img.example/p.jpg)";
    fake.set_behavior(move |_| (FakeReply::Text(answer.to_owned()), Duration::ZERO));
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    send(&sb, json!({"platform": "kakao", "user": "minji", "text": "주문 어디서 봐요?"})).await;
    let sim = sb.sim.clone();
    eventually(WAIT, "the answer", || {
        let n = kakao_answers(&sim, "minji").len();
        async move { n == 1 }
    })
    .await;
    let html = clawbridge::sandbox::page::kakao_chat_html(&sim.kakao.chat("minji"));
    assert!(html.contains("k-basic-card") && html.contains("src=\"https://img.example/p.jpg\""), "{html}");
    assert!(html.contains("<a class=\"k-btn\" href=\"https://shop.example/orders\""), "{html}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_picture_sent_on_kakaotalk_reaches_the_agent_as_an_attachment() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let image = json!({"name": "dot.png", "mime": "image/png", "data": PNG});
    let sent = send(&sb, json!({"platform": "kakao", "user": "minji", "text": "사진이에요", "image": image})).await;
    assert_eq!(sent.status(), 202);
    let sim = sb.sim.clone();
    eventually(WAIT, "the answer", || {
        let n = kakao_answers(&sim, "minji").len();
        async move { n == 1 }
    })
    .await;
    let calls = fake.agent_calls();
    assert!(calls.iter().any(|c| c["attachments"].as_array().is_some_and(|a| !a.is_empty())), "{calls:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_refuses_a_listener_that_is_not_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .args(["sandbox", "--listen", "0.0.0.0:0"])
        .env_clear()
        .env("HOME", dir.path())
        .env("OPENCLAW_TOKEN", "t")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[tokio::test]
async fn a_kakao_turn_goes_through_the_real_daemon_inline_by_callback_and_by_the_next_utterance() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    fake.set_behavior(|message| {
        let delay = if message.contains("slow") { Duration::from_millis(6_000) } else { Duration::ZERO };
        (FakeReply::Text(format!("FAKE-REPLY: {message}")), delay)
    });
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let sim = sb.sim.clone();

    assert_eq!(send(&sb, json!({"platform": "kakao", "user": "minji", "text": "안녕하세요"})).await.status(), 202);
    eventually(WAIT, "the inline answer", || {
        let n = kakao_answers(&sim, "minji").len();
        async move { n == 1 }
    })
    .await;
    assert!(kakao_answers(&sim, "minji")[0].plain_text().contains("FAKE-REPLY"), "{:?}", sim.kakao.chat("minji"));

    // Longer than the skill's deadline: the waiting text, then the late answer at the callback.
    send(&sb, json!({"platform": "kakao", "user": "jisoo", "text": "slow please"})).await;
    eventually(WAIT, "the callback's late answer", || {
        let chat = sim.kakao.chat("jisoo");
        async move { chat.iter().any(|e| matches!(e, KakaoEntry::Answer { late: true, .. })) }
    })
    .await;
    assert!(sim.kakao.chat("jisoo").iter().any(|e| matches!(e, KakaoEntry::Waiting { .. })));

    // Without the AI callback: "still working", then the answer on the next utterance.
    sim.set_toggles(Toggles { callback: false, ..sim.toggles() });
    send(&sb, json!({"platform": "kakao", "user": "hana", "text": "slow again"})).await;
    eventually(WAIT, "the still-working answer", || {
        let n = kakao_answers(&sim, "hana").len();
        async move { n == 1 }
    })
    .await;
    let first = kakao_answers(&sim, "hana")[0].clone();
    let fetch =
        first.template.as_ref().unwrap().quick_replies.first().expect("a quick reply to fetch the answer").clone();
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    send(&sb, json!({"platform": "kakao", "user": "hana", "text": fetch.message_text.unwrap_or(fetch.label)})).await;
    eventually(WAIT, "the answer on the next utterance", || {
        let answers = kakao_answers(&sim, "hana");
        async move { answers.iter().any(|a| a.plain_text().contains("FAKE-REPLY") && a.plain_text().contains("slow again")) }
    })
    .await;
    sb.shutdown().await;
}

#[tokio::test]
async fn a_whatsapp_turn_is_read_quoted_formatted_and_delivered() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    fake.set_behavior(|_| (FakeReply::Text("**Bold** and _italic_ with `code`".to_owned()), Duration::ZERO));
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let sim = sb.sim.clone();
    let user = "15550001111";
    assert_eq!(send(&sb, json!({"platform": "whatsapp", "user": user, "text": "hello"})).await.status(), 202);
    eventually(WAIT, "the reply, read by the user", || {
        let chat = sim.kapso.chat(user);
        async move { chat.messages.iter().any(|m| !m.from_user && m.tick == Tick::Read) }
    })
    .await;
    let chat = sim.kapso.chat(user);
    let mine = chat.messages.iter().find(|m| m.from_user).unwrap();
    assert_eq!(mine.tick, Tick::Read, "the bridge marked the user's message read");
    let reply = chat.messages.iter().find(|m| !m.from_user).unwrap();
    assert_eq!(reply.quoted.as_deref(), Some(mine.id.as_str()), "the reply quotes the user's message");
    let html = clawbridge::sandbox::page::whatsapp_chat_html(&chat);
    assert!(html.contains("<strong>Bold</strong>") && html.contains("<em>italic</em>"), "{html}");
    assert!(html.contains("wa-quote"), "{html}");

    // The user reacts to the reply: shown on it, and the reaction reaches the bridge.
    let reply_id = reply.id.clone();
    let reacted = send(&sb, json!({"platform": "whatsapp", "user": user, "quoted": reply_id, "reaction": "👍"})).await;
    assert_eq!(reacted.status(), 202);
    eventually(WAIT, "the reaction shows on the reply", || {
        let chat = sim.kapso.chat(user);
        async move { chat.messages.iter().any(|m| m.reaction.as_deref() == Some("👍")) }
    })
    .await;

    // A picture reaches the agent as an attachment (the daemon downloaded it from the simulator).
    let image = json!({"name": "dot.png", "mime": "image/png", "data": PNG});
    let sent = send(&sb, json!({"platform": "whatsapp", "user": user, "text": "look", "image": image})).await;
    assert_eq!(sent.status(), 202);
    eventually(WAIT, "the agent got the picture", || {
        let calls = fake.agent_calls();
        async move { calls.iter().any(|c| c["attachments"].as_array().is_some_and(|a| !a.is_empty())) }
    })
    .await;
    sb.shutdown().await;
}

#[tokio::test]
async fn an_outage_fails_the_sends_until_it_ends_and_a_policy_change_restarts_the_daemon() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let sim = sb.sim.clone();
    sim.set_toggles(Toggles { outage: true, ..sim.toggles() });
    send(&sb, json!({"platform": "whatsapp", "user": "15550002222", "text": "during the outage"})).await;
    eventually(WAIT, "the agent answered", || {
        let n = fake.agent_calls().len();
        async move { n == 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sim.kapso.chat("15550002222").messages.iter().all(|m| m.from_user), "nothing delivered during the outage");
    sim.set_toggles(Toggles { outage: false, ..sim.toggles() });
    eventually(WAIT, "the retried send arrived", || {
        let chat = sim.kapso.chat("15550002222");
        async move { chat.messages.iter().any(|m| !m.from_user) }
    })
    .await;

    sim.set_toggles(Toggles { policy: Policy::Pairing, ..sim.toggles() });
    eventually(WAIT, "the daemon restarted", || {
        let state = sim.daemon_state();
        async move { state == "running" }
    })
    .await;
    send(&sb, json!({"platform": "kakao", "user": "stranger", "text": "안녕하세요"})).await;
    eventually(WAIT, "a pairing code", || {
        let answers = kakao_answers(&sim, "stranger");
        async move { answers.iter().any(|a| a.plain_text().contains("페어링 코드")) }
    })
    .await;
    assert_eq!(fake.agent_calls().len(), 1, "an unknown user does not reach the agent");
    let answer = kakao_answers(&sim, "stranger").into_iter().map(|a| a.plain_text()).collect::<Vec<_>>().join("\n");
    let code = answer
        .split("페어링 코드는 ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a code in {answer:?}"))
        .to_owned();
    let approve = format!("http://{}/sandbox/api/approve", sb.addr);
    let http = reqwest::Client::new();
    let wrong = http.post(&approve).json(&json!({"channel": "kakao", "code": "ZZZZ2222"})).send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    let approved = http.post(&approve).json(&json!({"channel": "kakao", "code": code})).send().await.unwrap();
    assert_eq!(approved.status(), 200);
    send(&sb, json!({"platform": "kakao", "user": "stranger", "text": "이제 되나요?"})).await;
    eventually(WAIT, "the approved user reaches the agent", || {
        let n = fake.agent_calls().len();
        async move { n == 2 }
    })
    .await;
    let config = std::fs::read_to_string(&sb.config_path).unwrap();
    assert!(config.contains("dmPolicy = \"pairing\""), "{config}");
    sb.shutdown().await;
}

// ---- In real headless Chromium, against the real OpenClaw gateway with the stub model ----

/// First turns in a fresh gateway workspace take ~12 s on a loaded 2-core machine; be generous.
const TURN: Duration = Duration::from_secs(180);
/// Any other step of a browser test (a page load, a click's answer), on a machine busy with other tests.
const STEP: Duration = Duration::from_secs(90);

fn unique(label: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("{label}-{:08x}", u32::from_le_bytes(bytes))
}

fn unique_number() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("1555{:07}", u32::from_le_bytes(bytes) % 10_000_000)
}

/// Opens a chat with a new user through the page's "Add chat" form; the pane's CSS selector.
async fn open_chat(browser: &Browser, platform: &str, user: &str) -> String {
    browser.execute("document.getElementById('add-platform').value = arguments[0];", vec![json!(platform)]).await;
    let input = browser.wait_for("#add-user", STEP).await;
    browser.type_into(&input, user).await;
    browser.click(&browser.wait_for("#add button[type=submit]", STEP).await).await;
    let pane = format!(".pane[data-platform=\"{platform}\"][data-user=\"{user}\"]");
    browser.wait_for(&pane, STEP).await;
    pane
}

async fn say(browser: &Browser, pane: &str, text: &str) {
    let input = browser.wait_for(&format!("{pane} .text"), STEP).await;
    browser.type_into(&input, text).await;
    browser.click(&browser.wait_for(&format!("{pane} .send"), STEP).await).await;
}

/// Waits until an element matching `css` has text containing `needle`; that text.
async fn wait_for_text_in(browser: &Browser, css: &str, needle: &str, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    loop {
        for element in browser.find_all(css).await {
            let text = browser.text(&element).await;
            if text.contains(needle) {
                return text;
            }
        }
        if Instant::now() > until {
            panic!("no {css:?} showed {needle:?} within {deadline:?}; page:\n{}", browser.source().await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn real_sandbox() -> Option<(Sandbox, &'static clawbridge_testkit::SharedGateway)> {
    let shared = clawbridge_testkit::shared()?;
    Some((sandbox(&shared.url(), shared.token()).await, shared))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_kakaotalk_conversation_shows_the_reply_bubble() {
    let Some((sb, shared)) = real_sandbox().await else { return };
    // At a phone's width: the chats stack, one under the other.
    let Some(browser) = Browser::start(390, 844).await else {
        sb.shutdown().await;
        return;
    };
    browser.goto(&sb.url()).await;
    let user = unique("kakao");
    let pane = open_chat(&browser, "kakao", &user).await;
    let marker = unique("hello-sandbox");
    say(&browser, &pane, &format!("please echo {marker}")).await;
    browser.wait_for(&format!("{pane} .k-row.mine .k-user"), STEP).await;
    let bubble = wait_for_text_in(&browser, &format!("{pane} .k-row.theirs .k-simple-text"), &marker, TURN).await;
    assert!(bubble.contains("STUB-REPLY"), "{bubble}");
    assert_eq!(shared.stub().count_with(&marker), 1, "one agent run");
    browser.execute("document.querySelector(arguments[0]).scrollIntoView();", vec![json!(pane)]).await;
    browser.screenshot("sandbox-kakaotalk-reply-phone").await;
    browser.close().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_long_kakaotalk_answer_shows_more_and_its_next_page() {
    let Some((sb, shared)) = real_sandbox().await else { return };
    let Some(browser) = Browser::start(1280, 900).await else {
        sb.shutdown().await;
        return;
    };
    browser.goto(&sb.url()).await;
    let user = unique("long");
    let pane = open_chat(&browser, "kakao", &user).await;
    let marker = unique("kakao-long");
    say(&browser, &pane, &format!("LONG:4000 {marker}")).await;
    let more = format!("{pane} .k-quick-replies .k-quick");
    wait_for_text_in(&browser, &more, "더 보기", TURN).await;
    let pages_before = browser.find_all(&format!("{pane} .k-row.theirs .k-outputs")).await.len();
    browser.screenshot("sandbox-kakaotalk-more").await;
    browser.click(&browser.wait_for(&more, STEP).await).await;
    // The next page arrives as a new answer; its 더 보기 was the user's turn.
    let until = Instant::now() + STEP;
    while browser.find_all(&format!("{pane} .k-row.theirs .k-outputs")).await.len() <= pages_before {
        assert!(Instant::now() < until, "no next page; page:\n{}", browser.source().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_text_in(&browser, &format!("{pane} .k-row.mine .k-user"), "더 보기", STEP).await;
    assert_eq!(shared.stub().count_with(&marker), 1, "더 보기 started no agent run");
    browser.screenshot("sandbox-kakaotalk-next-page").await;
    browser.close().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_whatsapp_conversation_shows_the_formatted_quoted_reply() {
    let Some((sb, _shared)) = real_sandbox().await else { return };
    let Some(browser) = Browser::start(1280, 900).await else {
        sb.shutdown().await;
        return;
    };
    browser.goto(&sb.url()).await;
    let number = unique_number();
    let pane = open_chat(&browser, "whatsapp", &number).await;
    let marker = unique("wa");
    say(&browser, &pane, &format!("**bold** {marker}")).await;
    let reply = format!("{pane} .wa-msg.theirs");
    wait_for_text_in(&browser, &reply, &marker, TURN).await;
    let quote = wait_for_text_in(&browser, &format!("{reply} .wa-quote"), &marker, STEP).await;
    assert!(quote.contains("You"), "the reply quotes the user's message: {quote}");
    let bold = wait_for_text_in(&browser, &format!("{reply} .wa-text strong"), "bold", STEP).await;
    assert_eq!(bold, "bold", "WhatsApp *bold* rendered, not its asterisks");
    // The bridge marked the user's message read: blue ticks.
    browser.wait_for(&format!("{pane} .wa-msg.mine .wa-ticks.read"), STEP).await;
    browser.screenshot("sandbox-whatsapp-quoted-reply").await;

    // The toggles reach the simulators: an outage on, then off again.
    browser.click(&browser.wait_for("#t-outage", STEP).await).await;
    let sim = sb.sim.clone();
    eventually(STEP, "the outage is on", || {
        let on = sim.toggles().outage;
        async move { on }
    })
    .await;
    browser.execute("window.scrollTo(0, 0);", vec![]).await;
    browser.screenshot("sandbox-page-outage-on").await;
    browser.click(&browser.wait_for("#t-outage", STEP).await).await;
    eventually(STEP, "the outage is over", || {
        let on = sim.toggles().outage;
        async move { !on }
    })
    .await;
    browser.close().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn clawbridge_sandbox_prints_the_page_serves_it_and_stops_on_sigint() {
    use std::io::BufRead as _;
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("sandbox")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("OPENCLAW_GATEWAY_URL", fake.url())
        .env("OPENCLAW_TOKEN", "sandbox-token-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("open ");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(WAIT, lines).await.expect("the sandbox starts").unwrap();
    let url = lines.last().and_then(|l| l.strip_prefix("open ")).unwrap_or_else(|| panic!("{lines:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/sandbox"), "{url}");
    let config = lines.iter().find_map(|l| l.strip_prefix("config: ")).unwrap();
    let config = std::path::PathBuf::from(config.trim_end_matches(" (removed on exit)"));
    assert!(config.exists(), "{config:?}");
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);

    let killed = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!config.exists(), "the temporary state is removed on exit");
}

#[tokio::test]
async fn whatsapp_shows_the_typing_indicator_while_the_agent_works() {
    let fake = FakeGateway::start("sandbox-token-0123456789").await;
    fake.set_behavior(|_| (FakeReply::Text("done".to_owned()), Duration::from_secs(3)));
    let sb = sandbox(&fake.url(), "sandbox-token-0123456789").await;
    let sim = sb.sim.clone();
    send(&sb, json!({"platform": "whatsapp", "user": "15550003333", "text": "think hard"})).await;
    eventually(WAIT, "the typing indicator", || {
        let typing = sim.kapso.chat("15550003333").typing();
        async move { typing }
    })
    .await;
    assert!(clawbridge::sandbox::page::whatsapp_chat_html(&sim.kapso.chat("15550003333")).contains("wa-typing"));
    eventually(WAIT, "the reply ends it", || {
        let chat = sim.kapso.chat("15550003333");
        async move { chat.messages.iter().any(|m| !m.from_user) && !chat.typing() }
    })
    .await;
    sb.shutdown().await;
}
