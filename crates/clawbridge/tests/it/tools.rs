//! Native agent tools end to end: the daemon connects to a REAL OpenClaw 2026.9.6 gateway as a
//! node, the operator approves it, the stub model calls the published tools, and the fakes of
//! the platforms receive what the tools send. Skipped without the install (see e2e.rs).
//!
//! The tests of this module share one gateway of their own, configured with direct tool schemas
//! (`tools.toolSearch: false`), so the tools appear in the model's function list; the gateway
//! crate's `node` test covers the default Tool Search path. Node tools are global to a gateway
//! and a second node publishing the same names would get renamed ones, so these tests take
//! turns (`exclusive`).

use crate::support::eventually;
use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_testkit::fake_kapso::{API_KEY, FakeKapso, PNID, message_received};
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
        let options =
            GatewayOptions { config_patch: Some(json!({"tools": {"toolSearch": false}})), ..GatewayOptions::default() };
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
    let published = tokio::time::timeout(TURN, status.wait_for(|s| want.iter().all(|t| s.accepted.contains(t)))).await;
    assert!(published.is_ok(), "the gateway accepted {want:?}: {:?}", service.status());
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

    let stranger = unique_number();
    let secret = unique("never-sent");
    let ask = format!(r#"TOOLCALL: whatsapp_send {{"to":"+{stranger}","text":"{secret}"}}"#);
    customer_says(&daemon, &customer, &ask).await;
    wait_reply(&fake, "is not a recipient this tool may reach").await;
    assert!(fake.sends_containing(&secret).is_empty(), "nothing went to the stranger: {:?}", fake.sends());
    assert!(fake.sends().iter().all(|s| s["to"] != stranger.as_str()), "{:?}", fake.sends());
    let outputs = tool_outputs(&tg.stub, &secret);
    assert!(outputs.len() == 1 && outputs[0].contains("Nothing was sent"), "{outputs:?}");

    daemon.shutdown().await;
}
