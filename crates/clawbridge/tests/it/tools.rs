//! Native agent tools end to end: the daemon connects to a REAL OpenClaw 2026.9.6 gateway as a
//! node, the operator approves it, the stub model calls the published tools, and the fakes of
//! the platforms receive what the tools send. Skipped without the install (see e2e.rs).
//!
//! The tests of this module share one gateway of their own, configured as the README recommends
//! for a customer-facing agent: no shell or file tools (`tools.deny: ["group:runtime",
//! "group:fs"]`) and direct tool schemas (`tools.toolSearch: false`), so the tools appear in the
//! model's function list; the gateway crate's `node` test covers the default Tool Search path. Node tools are global to a gateway
//! and a second node publishing the same names would get renamed ones, so these tests take
//! turns (`exclusive`).

use crate::support::eventually;
use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_testkit::fake_kakao::{CLIENT_ID, FakeKakao, USER_ID};
use clawbridge_testkit::fake_kapso::{API_KEY, Answer, FakeKapso, PNID, message_received};
use clawbridge_testkit::{Gateway, GatewayOptions, StubModel};
use clawbridge_whatsapp::webhook::sign;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

const TURN: Duration = Duration::from_secs(240);
const SECRET: &str = "wh_sec_tools_0123456789";

struct ToolsGateway {
    stub: StubModel,
    gateway: Gateway,
}

/// The module's gateway (started on first use), or `None` when the install is missing.
fn gateway() -> Option<&'static ToolsGateway> {
    static GW: OnceLock<ToolsGateway> = OnceLock::new();
    let install = clawbridge_testkit::require_or_skip()?;
    Some(GW.get_or_init(|| {
        let stub = StubModel::start();
        let options = GatewayOptions {
            config_patch: Some(json!({"tools": {"toolSearch": false, "deny": ["group:runtime", "group:fs"]}})),
            ..GatewayOptions::default()
        };
        let gateway = Gateway::start_with(&install, &stub, options);
        ToolsGateway { stub, gateway }
    }))
}

/// One test at a time on the module's gateway.
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

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

fn whatsapp_config(fake: &FakeKapso, state: &std::path::Path, gw: &Gateway, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("HOME", state.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", state.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", gw.url()),
        ("OPENCLAW_TOKEN", gw.token().to_owned()),
        ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "5".to_owned()),
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", fake.url()),
        ("KAPSO_MODE", "domain".to_owned()),
        ("KAPSO_WEBHOOK_SECRET", SECRET.to_owned()),
        ("KAPSO_DM_POLICY", "open".to_owned()),
        ("KAPSO_ALLOW_FROM", "*".to_owned()),
        ("KAPSO_TYPING", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("test config is valid")
}

/// Starts the daemon, approves its node on the gateway and waits until the gateway holds
/// `tools`.
async fn start_approved(config: Config, gw: &Gateway, tools: &[&str]) -> DaemonHandle {
    let daemon = daemon::start(config, daemon::Channels::Configured).await.expect("daemon starts");
    let service = daemon.tools().expect("tools are published").clone();
    service.node().wait_connected(TURN).await.expect("the node connects");
    let node_id = service.node().device_id().to_owned();
    // The pairing request appears once the node has connected; approve it as an operator would.
    let approve = async {
        loop {
            match gw.approve_node(&node_id).await {
                Ok(_) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    };
    tokio::time::timeout(TURN, approve).await.expect("the node's pairing request is approved");
    let mut status = service.watch();
    let want: Vec<String> = tools.iter().map(|t| (*t).to_owned()).collect();
    let published =
        tokio::time::timeout(TURN, status.wait_for(|s| want.iter().all(|t| s.accepted.contains(t)))).await.is_ok();
    assert!(published, "the gateway accepted {want:?}: {:?}", service.status());
    daemon
}

async fn post_webhook(base: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/webhook"))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", "whatsapp.message.received")
        .header("X-Webhook-Payload-Version", "v2")
        .header("X-Idempotency-Key", unique("idem"))
        .header("X-Webhook-Signature", sign(SECRET.as_bytes(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("the webhook answers")
        .status()
        .as_u16()
}

/// A WhatsApp message from `number` whose text is `text`.
async fn customer_says(daemon: &DaemonHandle, number: &str, text: &str) {
    let body = message_received(&format!("wamid.{}", unique("in")), &format!("+{number}"), "Tools Tester", text);
    assert_eq!(post_webhook(&format!("http://{}", daemon.addr), &body.to_string()).await, 200);
}

/// The tool outputs the model received in the turn that carried `marker`.
fn tool_outputs(stub: &StubModel, marker: &str) -> Vec<String> {
    stub.requests_with(marker).iter().map(|r| r.tool_outputs.clone()).max_by_key(Vec::len).unwrap_or_default()
}

async fn wait_reply(fake: &FakeKapso, needle: &str) -> Vec<Value> {
    eventually(TURN, &format!("a send containing {needle:?}"), || {
        let n = fake.sends_containing(needle).len();
        async move { n >= 1 }
    })
    .await;
    fake.sends_containing(needle)
}

/// The agent, answering a customer, calls `whatsapp_send` twice with the same invocation (the
/// model repeats its call): Kapso receives the text once and the second call is told so. Then it
/// tries a number that never talked to the bridge: the model gets a refusal and nothing is sent.
#[tokio::test]
async fn whatsapp_send_sends_once_per_invocation_and_refuses_strangers() {
    let Some(tg) = gateway() else { return };
    let _turn = exclusive().await;
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon =
        start_approved(whatsapp_config(&fake, dir.path(), &tg.gateway, &[]), &tg.gateway, &["whatsapp_send"]).await;

    let customer = unique_number();
    let text = unique("tool-text");
    let ask = format!(r#"TOOLCALL2: whatsapp_send {{"to":"+{customer}","text":"{text}"}}"#);
    customer_says(&daemon, &customer, &ask).await;
    // The turn's final reply (to the customer) reports the second call's outcome.
    let replies = wait_reply(&fake, "not sent again").await;
    assert_eq!(fake.sends_containing(&text).len(), 1, "exactly one send with the tool's text: {:?}", fake.sends());
    let send = &fake.sends_containing(&text)[0];
    assert_eq!(send["to"], customer.as_str(), "{send}");
    assert_eq!(send["text"]["body"], text.as_str(), "{send}");
    let outputs = tool_outputs(&tg.stub, &text);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[0].contains("sent to +…") && outputs[0].contains("wamid."), "{outputs:?}");
    assert!(outputs[1].contains("not sent again"), "{outputs:?}");
    assert!(replies.iter().all(|r| r["to"] == customer.as_str()), "{replies:?}");
    let first = tg.stub.requests_with(&text).into_iter().next().expect("the model was asked");
    assert!(first.tool_names.iter().any(|t| t == "whatsapp_send"), "the agent's tool list: {:?}", first.tool_names);
    assert!(
        !first.tool_names.iter().any(|t| t == "exec" || t == "process" || t == "write"),
        "a customer-facing agent without a shell: {:?}",
        first.tool_names
    );

    let stranger = unique_number();
    let secret = unique("never-sent");
    let ask = format!(r#"TOOLCALL: whatsapp_send {{"to":"+{stranger}","text":"{secret}"}}"#);
    customer_says(&daemon, &customer, &ask).await;
    wait_reply(&fake, "is not a recipient this tool may reach").await;
    assert!(fake.sends_containing(&secret).is_empty(), "nothing went to the stranger: {:?}", fake.sends());
    assert!(fake.sends().iter().all(|s| s["to"] != stranger.as_str()), "{:?}", fake.sends());
    let outputs = tool_outputs(&tg.stub, &secret);
    assert!(outputs.len() == 1 && outputs[0].contains("Nothing was sent"), "{outputs:?}");

    // The platform refuses (outside the 24-hour window): the model reads the reason in words.
    fake.script_sends([Answer::error(
        400,
        json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                         "error_data": {"details": "More than 24 hours have passed"}, "fbtrace_id": "x"}}),
    )]);
    let late = unique("late");
    customer_says(&daemon, &customer, &format!(r#"TOOLCALL: whatsapp_send {{"to":"+{customer}","text":"{late}"}}"#))
        .await;
    wait_reply(&fake, "send a template instead").await;
    let outputs = tool_outputs(&tg.stub, &late);
    assert!(
        outputs.len() == 1 && outputs[0].starts_with("not sent to +…") && outputs[0].contains("131047"),
        "{outputs:?}"
    );

    // /readyz shows the node and what the gateway holds.
    let ready: Value = reqwest::get(format!("http://{}/readyz", daemon.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["tools"]["state"], "connected", "{ready}");
    assert_eq!(ready["tools"]["accepted"], json!(["whatsapp_send"]), "{ready}");
    assert_eq!(ready["tools"]["problem"], Value::Null, "{ready}");

    daemon.shutdown().await;
}

/// An operator connection that runs turns the way any client of the gateway does.
async fn operator(gw: &Gateway, dir: &std::path::Path) -> clawbridge_gateway::GatewayClient {
    let config = clawbridge_gateway::GatewayConfig::new(gw.url(), Some(gw.token().into()), dir.join("operator.key"));
    let client = clawbridge_gateway::GatewayClient::spawn(config, tokio_util::sync::CancellationToken::new()).unwrap();
    client.wait_connected(TURN).await.expect("the operator connects");
    client
}

/// Runs one turn with `message` in a session of its own; returns the reply.
async fn turn(client: &clawbridge_gateway::GatewayClient, message: &str) -> String {
    let tag = unique("s");
    let request =
        clawbridge_gateway::AgentRequest::new(message, format!("agent:main:tools-it:direct:{tag}"), unique("idem"));
    let outcome = client.run_agent(&request, TURN).await.expect("the turn finishes");
    outcome.reply.unwrap_or_default()
}

fn kakao_config(fake: &FakeKakao, state: &std::path::Path, gw: &Gateway, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("HOME", state.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", state.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", gw.url()),
        ("OPENCLAW_TOKEN", gw.token().to_owned()),
        ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "5".to_owned()),
        ("KAKAO_REST_API_KEY", CLIENT_ID.to_owned()),
        ("KAKAO_REDIRECT_URI", "http://127.0.0.1:9/kakao/oauth".to_owned()),
        ("KAKAO_API_BASE_URL", fake.url()),
        ("KAKAO_AUTH_BASE_URL", fake.url()),
        ("KAKAO_CREDENTIALS_DIR", state.join("credentials").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("test config is valid")
}

/// Stores a Kakao Login of account `default` as `clawbridge kakao login` would.
async fn kakao_login(fake: &FakeKakao, state: &std::path::Path) {
    use clawbridge::secrets::FileSecrets;
    use clawbridge_kakao::talk::oauth::TokenResponse;
    use clawbridge_kakao::talk::{OAuthToken, SecretTokenStore, TOKEN_SECRETS, TokenStore};
    let (access, refresh) = fake.grant("talk_message,friends");
    let response: TokenResponse = serde_json::from_value(json!({
        "access_token": access, "refresh_token": refresh, "expires_in": 21599,
        "refresh_token_expires_in": 5183999, "scope": "talk_message friends"
    }))
    .unwrap();
    let mut token = OAuthToken::from_response(response, clawbridge_core::clock::now_ms(), None);
    token.user_id = Some(USER_ID);
    let key = clawbridge_store::MasterKey::from_env_or_file(None, state).unwrap();
    let secrets = std::sync::Arc::new(FileSecrets::new(state.join("credentials"), "tokens", TOKEN_SECRETS, key));
    SecretTokenStore::new(secrets).save("default", &token).await.unwrap();
}

/// `kakao_send_me` reaches kapi's "send to me"; with a rate limit of one send an hour the next
/// call is refused; `kakao_send_friends` to a friend nobody listed is refused.
#[tokio::test]
async fn kakao_send_me_reaches_kapi_and_limits_hold() {
    let Some(tg) = gateway() else { return };
    let _turn = exclusive().await;
    let fake = FakeKakao::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    kakao_login(&fake, dir.path()).await;
    let config = kakao_config(&fake, dir.path(), &tg.gateway, &[("CLAWBRIDGE_TOOLS_RATE_LIMIT", "1")]);
    let daemon = start_approved(config, &tg.gateway, &["kakao_send_me", "kakao_send_friends"]).await;
    let op = operator(&tg.gateway, dir.path()).await;

    let first = unique("memo");
    let reply = turn(&op, &format!(r#"TOOLCALL: kakao_send_me {{"text":"{first}"}}"#)).await;
    assert!(reply.contains("sent to your KakaoTalk chat with me"), "{reply}");
    let memos: Vec<_> = fake
        .requests_to("/v2/api/talk/memo/default/send")
        .into_iter()
        .filter(|r| r.field("template_object").is_some_and(|t| t.contains(&first)))
        .collect();
    assert_eq!(memos.len(), 1, "one memo with the text");
    let template: Value = serde_json::from_str(memos[0].field("template_object").unwrap()).unwrap();
    assert_eq!((template["object_type"].as_str(), template["text"].as_str()), (Some("text"), Some(first.as_str())));

    let second = unique("memo");
    let reply = turn(&op, &format!(r#"TOOLCALL: kakao_send_me {{"text":"{second}"}}"#)).await;
    assert!(reply.contains("rate limit of 1 sends per hour for kakao_send_me"), "{reply}");
    assert!(
        !fake
            .requests_to("/v2/api/talk/memo/default/send")
            .iter()
            .any(|r| r.field("template_object").is_some_and(|t| t.contains(&second))),
        "the refused call sent nothing"
    );

    let friend = unique("uuid");
    let reply = turn(&op, &format!(r#"TOOLCALL: kakao_send_friends {{"to":["{friend}"],"text":"hello"}}"#)).await;
    assert!(reply.contains("is not a recipient this tool may reach"), "{reply}");
    assert!(fake.requests_to("/v1/api/talk/friends/message/default/send").is_empty());

    // Every call is in the store's log, with the session that asked; `status` lists them.
    let out = status(dir.path(), &kakao_env(&fake, dir.path(), &tg.gateway));
    assert!(out.contains("tool calls (newest first):"), "{out}");
    assert!(out.contains("kakao_send_me → your KakaoTalk chat with me sent"), "{out}");
    assert!(out.contains("kakao_send_me → your KakaoTalk chat with me refused"), "{out}");
    assert!(out.contains("session agent:main:tools-it:direct:"), "{out}");
    daemon.shutdown().await;
}

fn kakao_env(fake: &FakeKakao, state: &std::path::Path, gw: &Gateway) -> Vec<(String, String)> {
    [
        ("KAKAO_REST_API_KEY", CLIENT_ID.to_owned()),
        ("KAKAO_REDIRECT_URI", "http://127.0.0.1:9/kakao/oauth".to_owned()),
        ("KAKAO_API_BASE_URL", fake.url()),
        ("KAKAO_AUTH_BASE_URL", fake.url()),
        ("KAKAO_CREDENTIALS_DIR", state.join("credentials").display().to_string()),
        ("OPENCLAW_GATEWAY_URL", gw.url()),
        ("OPENCLAW_TOKEN", gw.token().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn cli(state: &std::path::Path, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("CLAWBRIDGE_STATE_DIR", state)
        .env("CLAWBRIDGE_LISTEN", "127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .envs(env.iter().cloned())
        .output()
        .expect("clawbridge runs")
}

fn status(state: &std::path::Path, env: &[(String, String)]) -> String {
    String::from_utf8_lossy(&cli(state, env, &["status"]).stdout).into_owned()
}

/// `clawbridge doctor` before the node is approved prints the exact `openclaw` command; after
/// the operator runs it (the real CLI), doctor says the node is paired and approved.
#[tokio::test]
async fn doctor_prints_the_approve_command_that_works() {
    let Some(tg) = gateway() else { return };
    let _turn = exclusive().await;
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("OPENCLAW_GATEWAY_URL", tg.gateway.url()),
        ("OPENCLAW_TOKEN", tg.gateway.token().to_owned()),
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", fake.url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (state, env2) = (dir.path().to_owned(), env.clone());
    let out = tokio::task::spawn_blocking(move || cli(&state, &env2, &["doctor"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "an unapproved tools node is a warning, not a failure: {stdout}");
    let command = stdout
        .lines()
        .find_map(|l| l.split("`openclaw nodes approve ").nth(1).and_then(|rest| rest.split('`').next()))
        .unwrap_or_else(|| panic!("doctor names the request to approve: {stdout}"))
        .to_owned();
    assert!(stdout.contains("warn  tools: the tools node"), "{stdout}");

    let gw: &'static Gateway = &tg.gateway;
    let approved = tokio::task::spawn_blocking(move || gw.openclaw(&["nodes", "approve", &command])).await.unwrap();
    assert!(
        approved.status.success(),
        "{}{}",
        String::from_utf8_lossy(&approved.stdout),
        String::from_utf8_lossy(&approved.stderr)
    );

    let (state, env2) = (dir.path().to_owned(), env.clone());
    let out = tokio::task::spawn_blocking(move || cli(&state, &env2, &["doctor"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("ok    tools: node") && stdout.contains("is paired and approved"), "{stdout}");
    assert!(stdout.contains("whatsapp_send"), "{stdout}");
}

/// The tools exist for the agent exactly while the bridge is connected: gone when it stops,
/// back when it starts again (same node, no new approval) and after the gateway restarts; and
/// when the gateway turns node tools off, `doctor` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_leave_with_the_bridge_and_come_back_on_reconnect() {
    let Some(install) = clawbridge_testkit::require_or_skip() else { return };
    let stub = StubModel::start();
    let options =
        GatewayOptions { config_patch: Some(json!({"tools": {"toolSearch": false}})), ..GatewayOptions::default() };
    let mut gw = Gateway::start_with_async(&install, &stub, options).await;
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = whatsapp_config(&fake, dir.path(), &gw, &[]);
    let offered = |marker: &str| {
        stub.requests_with(marker).first().map(|r| r.tool_names.iter().any(|t| t == "whatsapp_send")).unwrap_or(false)
    };

    let daemon = start_approved(config.clone(), &gw, &["whatsapp_send"]).await;
    let op = operator(&gw, dir.path()).await;
    let up = unique("up");
    turn(&op, &up).await;
    assert!(offered(&up), "the agent has whatsapp_send while the bridge runs");

    daemon.shutdown().await;
    let down = unique("down");
    let describe = gw.rpc("node.describe", json!({"nodeId": node_id(dir.path())})).await.unwrap();
    assert_eq!(describe["connected"], false, "{describe}");
    turn(&op, &down).await;
    assert!(
        !offered(&down),
        "gone with the bridge: {:?}",
        stub.requests_with(&down).first().map(|r| r.tool_names.clone())
    );

    let daemon = daemon::start(config.clone(), daemon::Channels::Configured).await.unwrap();
    let service = daemon.tools().unwrap().clone();
    let mut status = service.watch();
    let back =
        tokio::time::timeout(TURN, status.wait_for(|s| s.accepted.iter().any(|t| t == "whatsapp_send"))).await.is_ok();
    assert!(back, "published again without a new approval: {:?}", service.status());
    let again = unique("again");
    turn(&op, &again).await;
    assert!(offered(&again), "back with the bridge");

    gw.start_again_async().await;
    let op = operator(&gw, dir.path()).await;
    let reconnected = tokio::time::timeout(TURN, async {
        loop {
            let s = status.borrow_and_update().clone();
            if s.connected && s.accepted.iter().any(|t| t == "whatsapp_send") {
                return;
            }
            let _ = status.changed().await;
        }
    })
    .await;
    assert!(reconnected.is_ok(), "republished after the gateway restart: {:?}", service.status());
    let restarted = unique("restarted");
    turn(&op, &restarted).await;
    assert!(offered(&restarted), "back after the gateway restart");

    // The gateway operator turns node tools off: the tools disappear and doctor says why.
    gw.patch_config(&json!({"gateway": {"nodes": {"pluginTools": {"enabled": false}}}}));
    let env: Vec<(String, String)> = [
        ("OPENCLAW_GATEWAY_URL", gw.url()),
        ("OPENCLAW_TOKEN", gw.token().to_owned()),
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", fake.url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut last = String::new();
    for _ in 0..60 {
        let (state, env2) = (dir.path().to_owned(), env.clone());
        let out = tokio::task::spawn_blocking(move || cli(&state, &env2, &["doctor"])).await.unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("gateway.nodes.pluginTools.enabled is false") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(last.contains("gateway.nodes.pluginTools.enabled is false"), "{last}");
    assert!(last.contains("CLI path"), "{last}");
    let off = unique("off");
    turn(&op, &off).await;
    assert!(!offered(&off), "the gateway no longer offers node tools");
    daemon.shutdown().await;

    // With the bridge stopped, the node is described with the commands it declared; doctor
    // still finds out that `gateway.nodes.commands.deny` withholds the tools' command.
    gw.patch_config(
        &json!({"gateway": {"nodes": {"pluginTools": {"enabled": true}, "commands": {"deny": ["mcp.tools.call.v1"]}}}}),
    );
    for _ in 0..60 {
        let (state, env2) = (dir.path().to_owned(), env.clone());
        let out = tokio::task::spawn_blocking(move || cli(&state, &env2, &["doctor"])).await.unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("gateway.nodes.commands.deny") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(last.contains("warn  tools: the gateway does not give the agent the tools"), "{last}");
    assert!(last.contains("remove it from gateway.nodes.commands.deny"), "{last}");
}

fn node_id(state: &std::path::Path) -> String {
    clawbridge_gateway::DeviceIdentity::load_or_create(&state.join("node-device.key")).unwrap().id().to_owned()
}

/// `kakao_push` to the owner's user key reaches the Event API with the event and its data; a
/// user the bridge does not know is refused.
#[tokio::test]
async fn kakao_push_reaches_the_event_api_for_known_users_only() {
    let Some(tg) = gateway() else { return };
    let _turn = exclusive().await;
    let events = clawbridge_testkit::fake_kakao::FakeEventApi::start("tools-bot", "tools-rest-key").await;
    let dir = tempfile::tempdir().unwrap();
    let owner = unique("pf");
    let config = config_with(
        dir.path(),
        &tg.gateway,
        &[
            ("KAKAO_SKILL_SECRET", "tools-skill-secret-0123456789"),
            ("KAKAO_BOT_ID", "tools-bot"),
            ("KAKAO_REST_API_KEY", "tools-rest-key"),
            ("KAKAO_BOT_API_BASE_URL", events.url()),
            ("CLAWBRIDGE_TOOLS_OWNER", &owner),
        ],
    );
    let daemon = start_approved(config, &tg.gateway, &["kakao_push"]).await;
    let op = operator(&tg.gateway, dir.path()).await;

    let text = unique("push-text");
    let reply = turn(
        &op,
        &format!(r#"TOOLCALL: kakao_push {{"user":"{owner}","event":"order_shipped","data":{{"text":"{text}"}}}}"#),
    )
    .await;
    assert!(reply.contains("sent to Kakao user") && reply.contains("task task-"), "{reply}");
    let pushes: Vec<Value> = events.pushes().into_iter().filter(|p| p.to_string().contains(&text)).collect();
    assert_eq!(pushes.len(), 1, "{:?}", events.pushes());
    assert_eq!(pushes[0]["event"], json!({"name": "order_shipped", "data": {"text": text}}));
    assert_eq!(pushes[0]["user"], json!([{"type": "plusfriendUserKey", "id": owner}]));

    let stranger = unique("pf");
    let reply = turn(&op, &format!(r#"TOOLCALL: kakao_push {{"user":"{stranger}","event":"order_shipped"}}"#)).await;
    assert!(reply.contains("is not a recipient this tool may reach"), "{reply}");
    assert!(!events.pushes().iter().any(|p| p.to_string().contains(&stranger)));
    daemon.shutdown().await;
}

/// `alimtalk_send` goes through the business-message queue and worker to the dealer (the fake
/// NHN), with the template's variables checked first: a missing variable and an unknown number
/// are refused in words, and nothing is sent for them.
#[tokio::test]
async fn alimtalk_send_goes_through_the_dealer_and_checks_the_template() {
    let Some(tg) = gateway() else { return };
    let _turn = exclusive().await;
    let nhn = clawbridge_testkit::fake_nhn::FakeNhn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawbridge.toml");
    std::fs::write(&file, "[[bizmsg.templates]]\ntemplateCode = \"OTP\"\ntext = \"인증번호는 #{code}입니다.\"\n")
        .unwrap();
    let mut extra: Vec<(&str, String)> = nhn.env();
    extra.push(("CLAWBRIDGE_TOOLS_OWNER", "010-1111-2222".to_owned()));
    extra.push(("CLAWBRIDGE_CONFIG", file.display().to_string()));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = config_with(dir.path(), &tg.gateway, &extra);
    let daemon = start_approved(config, &tg.gateway, &["alimtalk_send", "brand_send"]).await;
    let op = operator(&tg.gateway, dir.path()).await;

    let code = format!("{:06}", u32::from_str_radix(&unique("c")[2..], 16).unwrap_or(7) % 1_000_000);
    let reply = turn(
        &op,
        &format!(
            r#"TOOLCALL: alimtalk_send {{"to":"010-1111-2222","template":"OTP","variables":{{"code":"{code}"}}}}"#
        ),
    )
    .await;
    assert!(reply.contains("accepted by the dealer for 010-****-2222"), "{reply}");
    let taken: Vec<_> = nhn.state().taken.iter().filter(|t| t.recipient == "01011112222").cloned().collect();
    assert_eq!(taken.len(), 1, "one AlimTalk to the owner");

    let reply = turn(&op, r#"TOOLCALL: alimtalk_send {"to":"010-1111-2222","template":"OTP","variables":{}}"#).await;
    assert!(reply.contains("Nothing was sent") && reply.contains("code"), "{reply}");
    let reply =
        turn(&op, r#"TOOLCALL: alimtalk_send {"to":"010-9999-0000","template":"OTP","variables":{"code":"123456"}}"#)
            .await;
    assert!(reply.contains("is not a recipient this tool may reach"), "{reply}");
    assert!(!nhn.state().taken.iter().any(|t| t.recipient == "01099990000"));
    assert_eq!(nhn.state().taken.iter().filter(|t| t.recipient == "01011112222").count(), 1);
    daemon.shutdown().await;
}

/// A config of the daemon on the module's gateway with `extra` settings only (no WhatsApp).
fn config_with(state: &std::path::Path, gw: &Gateway, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("HOME", state.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", state.display().to_string()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", gw.url()),
        ("OPENCLAW_TOKEN", gw.token().to_owned()),
        ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "5".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let path = vars.get("CLAWBRIDGE_CONFIG").map(std::path::PathBuf::from);
    Config::load_with(path.as_deref(), &|k| vars.get(k).cloned()).expect("test config is valid")
}
