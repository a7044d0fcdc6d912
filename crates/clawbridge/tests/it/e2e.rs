//! End to end against a real OpenClaw gateway (`openclaw@2026.9.6` on Node 24) and the
//! testkit's stub model. Skipped with a message when they are not installed, unless
//! `CLAWBRIDGE_REQUIRE_E2E=1` (as `scripts/test.sh` sets), which turns a skip into a failure.

use crate::support::{Harness, config, eventually, open_policy, text};
use clawbridge_gateway::ConnectionState;
use clawbridge_testkit::{Gateway, StubModel};
use std::process::Command;
use std::time::Duration;

/// First turns in a fresh gateway workspace take ~12 s on a loaded 2-core machine; be generous.
const TURN: Duration = Duration::from_secs(180);

fn unique(label: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("{label}-{:08x}", u32::from_le_bytes(bytes))
}

fn doctor(state: &std::path::Path, url: &str, token: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("CLAWBRIDGE_STATE_DIR", state)
        .env("OPENCLAW_GATEWAY_URL", url)
        .env("OPENCLAW_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .expect("clawbridge doctor runs")
}

#[tokio::test]
async fn doctor_prints_the_real_gateway_version_and_protocol() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, url, token) = (dir.path().to_owned(), shared.url(), shared.token().to_owned());
    let out = tokio::task::spawn_blocking(move || doctor(&path, &url, &token)).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OpenClaw 2026.9.6 (protocol 4)"), "{stdout}");

    let (path, url) = (dir.path().to_owned(), shared.url());
    let out = tokio::task::spawn_blocking(move || doctor(&path, &url, "not-the-token")).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL  gateway") && stdout.contains("OPENCLAW_TOKEN"), "{stdout}");
}

#[tokio::test]
async fn a_message_through_the_pipeline_gets_the_model_reply() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(config(dir.path(), &shared.url(), shared.token(), &[]), open_policy(), 4096).await;
    let marker = unique("hello-e2e");
    let peer = unique("peer");
    h.bridge().accept(text(&peer, &unique("msg"), &format!("please echo {marker}"))).await.unwrap();
    let sent = h.wait_sent(1, TURN).await;
    let reply = sent[0].text.clone().unwrap();
    assert!(reply.contains("STUB-REPLY") && reply.contains(&marker), "{reply}");
    assert_eq!(shared.stub().count_with(&marker), 1);
    // Sender identity reached the model through extraSystemPrompt, not the user text.
    assert!(!shared.stub().system_prompts_containing(&peer).is_empty(), "extraSystemPrompt reached the model");
    h.shutdown().await;
}

#[tokio::test]
async fn a_run_interrupted_by_a_restart_of_the_bridge_is_resumed_without_a_second_run() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared.url(), shared.token(), &[("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "1")]);
    let marker = unique("resume");
    let id = unique("msg");

    let mut first = Harness::start(cfg.clone(), open_policy(), 4096).await;
    first.bridge().accept(text(&unique("peer"), &id, &format!("SLOW:6000 {marker}"))).await.unwrap();
    let stub = shared.stub();
    eventually(TURN, "the model received the message", || {
        let n = stub.count_with(&marker);
        async move { n == 1 }
    })
    .await;
    // The bridge stops while the agent is still working: the row goes back to the queue.
    first.shutdown().await;
    assert!(first.sent().is_empty());

    let mut second = Harness::start(cfg, open_policy(), 4096).await;
    let sent = second.wait_sent(1, TURN).await;
    assert!(sent[0].text.as_deref().unwrap().contains(&marker), "{sent:?}");
    assert_eq!(stub.count_with(&marker), 1, "the same idempotency key resumed the run instead of starting another");
    second.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_fatal_error_and_messages_stay_queued() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(config(dir.path(), &shared.url(), "wrong-token", &[]), open_policy(), 4096).await;
    let mut state = h.daemon.as_ref().unwrap().gateway().state();
    let fatal = tokio::time::timeout(TURN, state.wait_for(|s| matches!(s, ConnectionState::Fatal(_)))).await;
    let message = match fatal.expect("the gateway refuses the token").unwrap().clone() {
        ConnectionState::Fatal(fatal) => fatal.to_string(),
        other => panic!("unexpected {other:?}"),
    };
    assert!(message.contains("OPENCLAW_TOKEN"), "{message}");

    h.bridge().accept(text("15550002222", &unique("msg"), "are you there?")).await.unwrap();
    let body: serde_json::Value = reqwest::get(format!("{}/readyz", h.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["gateway"]["state"], "fatal");
    assert_eq!(h.store().await.queue_stats().await.unwrap().inbox_pending, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_gateway_restart_mid_stream_loses_nothing() {
    if clawbridge_testkit::require_or_skip().is_none() {
        return;
    }
    let stub = StubModel::start();
    let mut gateway = Gateway::start_async(&stub).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(config(dir.path(), &gateway.url(), gateway.token(), &[]), open_policy(), 4096).await;
    let bridge = h.bridge();

    let warm = unique("warm");
    bridge.accept(text("1001", &unique("msg"), &warm)).await.unwrap();
    h.wait_sent(1, TURN).await;

    // A run in progress when the gateway goes down, and a message that arrives while it is down.
    let during = unique("during");
    bridge.accept(text("1002", &unique("msg"), &format!("SLOW:4000 {during}"))).await.unwrap();
    eventually(TURN, "the slow run started", || {
        let n = stub.count_with(&during);
        async move { n >= 1 }
    })
    .await;
    gateway.stop_async().await;
    let while_down = unique("while-down");
    bridge.accept(text("1003", &unique("msg"), &while_down)).await.unwrap();
    gateway.start_again_async().await;

    let sent = h.wait_sent(3, TURN).await;
    let texts: Vec<String> = sent.iter().filter_map(|m| m.text.clone()).collect();
    for marker in [&warm, &during, &while_down] {
        assert!(texts.iter().any(|t| t.contains(marker.as_str())), "reply for {marker} missing: {texts:?}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn an_image_reaches_the_model_as_an_attachment() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(config(dir.path(), &shared.url(), shared.token(), &[]), open_policy(), 4096).await;
    // A 1×1 PNG, as a channel would store it after downloading the platform's media.
    const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let marker = unique("photo");
    let mut msg = text(&unique("peer"), &unique("msg"), &format!("IMAGE-COUNT {marker}"));
    msg.kind = clawbridge_core::MessageKind::Image;
    msg.media.push(clawbridge_core::MediaRef {
        kind: clawbridge_core::MediaKind::Image,
        mime_type: Some("image/png".to_owned()),
        file_name: Some("dot.png".to_owned()),
        data_base64: Some(PNG.to_owned()),
        ..Default::default()
    });
    h.bridge().accept(msg).await.unwrap();
    let sent = h.wait_sent(1, TURN).await;
    assert_eq!(sent[0].text.as_deref(), Some("STUB-REPLY: image count: 1"), "{sent:?}");
    let requests = shared.stub().requests_with(&marker);
    assert!(requests.iter().any(|r| r.had_images()), "the model request carried the image");
    h.shutdown().await;
}
