//! End-to-end against a real OpenClaw 2026.9.6 gateway (clawbridge-testkit). Skipped with a
//! message when Node 24 / openclaw are not installed (`scripts/install-e2e.sh`); fail instead
//! with `CLAWBRIDGE_REQUIRE_E2E=1`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clawbridge_gateway::{
    AgentRequest, ConnectionState, FatalError, GatewayClient, GatewayConfig, GatewayError, InputProvenance,
    ProvenanceKind, probe,
};
use clawbridge_testkit::{Gateway, GatewayOptions, StubModel};
use tokio_util::sync::CancellationToken;

/// Deadlines only: a first turn in a fresh workspace takes ≈ 12 s on a loaded VM.
const CONNECT: Duration = Duration::from_secs(90);
const TURN: Duration = Duration::from_secs(240);

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{tag}{}x{nanos}", std::process::id())
}

fn config(url: &str, token: &str, dir: &tempfile::TempDir) -> GatewayConfig {
    let mut config = GatewayConfig::new(url, Some(token.into()), dir.path().join("device.key"));
    config.client_display_name = "clawbridge-gateway-it".to_owned();
    config.backoff_max = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(60);
    config
}

fn turn(text: &str, tag: &str) -> AgentRequest {
    AgentRequest {
        extra_system_prompt: Some("The sender is a test user on the clawbridge-it channel.".into()),
        input_provenance: Some(InputProvenance {
            kind: ProvenanceKind::ExternalUser,
            source_channel: Some("clawbridge-it".into()),
        }),
        ..AgentRequest::new(
            text,
            format!("agent:main:clawbridge-it:direct:{}", tag.to_lowercase()),
            format!("idem-{tag}"),
        )
    }
}

#[tokio::test]
async fn real_handshake_with_device_identity() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let client = GatewayClient::spawn(config(&shared.url(), shared.token(), &dir), shutdown.clone()).unwrap();
    let hello = client.wait_connected(CONNECT).await.unwrap();
    assert_eq!(hello.protocol, 4);
    assert_eq!(hello.server_version, "2026.9.6");
    assert!(hello.scopes.iter().any(|s| s == "operator.write"), "{:?}", hello.scopes);
    assert!(hello.has_method("agent") && hello.has_method("agent.wait"));
    assert!(hello.max_payload > 0 && hello.attachments_max_image_bytes > 0);
    assert_eq!(*client.state().borrow(), ConnectionState::Connected { server_version: "2026.9.6".into(), protocol: 4 });
    shutdown.cancel();
}

#[tokio::test]
async fn real_probe_reports_the_server_version() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hello = probe(&config(&shared.url(), shared.token(), &dir)).await.unwrap();
    assert_eq!(hello.server_version, "2026.9.6");
    assert_eq!(hello.protocol, 4);
}

#[tokio::test]
async fn real_run_agent_gets_the_stub_reply() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let client = GatewayClient::spawn(config(&shared.url(), shared.token(), &dir), CancellationToken::new()).unwrap();
    let tag = unique("reply");
    let text = format!("hello from the gateway crate {tag}");
    let outcome = client.run_agent(&turn(&text, &tag), TURN).await.unwrap();
    assert_eq!(outcome.status, "ok", "{outcome:?}");
    let reply = outcome.reply.expect("a visible reply");
    assert!(reply.contains("STUB-REPLY") && reply.contains(&text), "{reply}");
    assert_eq!(shared.stub().count_with(&tag), 1);
    let prompts = shared.stub().system_prompts_containing("clawbridge-it channel");
    assert!(!prompts.is_empty(), "extraSystemPrompt reached the model");
}

#[tokio::test]
async fn real_same_idempotency_key_runs_the_model_once() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let client = GatewayClient::spawn(config(&shared.url(), shared.token(), &dir), CancellationToken::new()).unwrap();
    let tag = unique("idem");
    let req = turn(&format!("only once please {tag}"), &tag);
    let (a, b) = tokio::join!(client.run_agent(&req, TURN), client.run_agent(&req, TURN));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.run_id, b.run_id);
    for outcome in [&a, &b] {
        assert!(outcome.reply.as_deref().is_some_and(|r| r.contains(&tag)), "{outcome:?}");
    }
    // A replay after completion (a bridge restarting) gets the same reply without a new run.
    let replay = client.run_agent(&req, TURN).await.unwrap();
    assert_eq!(replay.reply, a.reply);
    assert_eq!(shared.stub().count_with(&tag), 1, "one model request for one idempotency key");
}

#[tokio::test]
async fn real_wrong_token_is_fatal() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let client =
        GatewayClient::spawn(config(&shared.url(), "definitely-not-the-token", &dir), CancellationToken::new())
            .unwrap();
    let err = client.wait_connected(CONNECT).await.unwrap_err();
    assert!(matches!(err, GatewayError::Fatal(FatalError::AuthTokenMismatch)), "{err}");
    assert!(err.to_string().contains("OPENCLAW_TOKEN"), "{err}");
    assert!(matches!(*client.state().borrow(), ConnectionState::Fatal(FatalError::AuthTokenMismatch)));
}

/// One gateway of its own (the shared one is never restarted), restarted twice while a
/// `run_agent` waits: gracefully (the gateway drains the short run before exiting) and by a
/// crash (the run outlives the 10 s stop grace, the process is killed and the gateway's restart
/// recovery takes the session over). Either way the reply reaches the caller.
#[tokio::test]
async fn real_run_survives_gateway_restarts() {
    let Some(install) = clawbridge_testkit::require_or_skip() else { return };
    let stub = StubModel::start();
    let mut gateway = Gateway::start_with_async(&install, &stub, GatewayOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = GatewayClient::spawn(config(&gateway.url(), gateway.token(), &dir), CancellationToken::new()).unwrap();
    client.wait_connected(CONNECT).await.unwrap();

    for (what, slow_ms) in [("graceful", 3_000), ("crash", 20_000)] {
        let tag = unique(what);
        let req = turn(&format!("survive a {what} restart SLOW:{slow_ms} {tag}"), &tag);
        let runner = client.clone();
        let run = tokio::spawn(async move { runner.run_agent(&req, Duration::from_secs(420)).await });

        // Restart while the model call is in flight.
        let started = tokio::time::timeout(TURN, async {
            while stub.count_with(&tag) == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(started.is_ok(), "{what}: the run never reached the model; gateway log:\n{}", gateway.log_tail(40));
        gateway.start_again_async().await;

        let outcome =
            run.await.unwrap().unwrap_or_else(|e| panic!("{what}: {e}; gateway log:\n{}", gateway.log_tail(60)));
        let reply = outcome.reply.as_deref().unwrap_or_else(|| panic!("{what}: no reply: {outcome:?}"));
        assert!(reply.contains(&tag), "{what}: {reply}");
    }
}
