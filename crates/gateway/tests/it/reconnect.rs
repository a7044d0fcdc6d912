//! The reconnect state machine: transient errors back off, fatal ones stop for good.

use std::time::Duration;

use clawbridge_gateway::{ConnectionState, FatalError, GatewayClient, GatewayError};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fake::{self, DEADLINE};

fn is_connected(s: &ConnectionState) -> bool {
    matches!(s, ConnectionState::Connected { .. })
}

#[tokio::test]
async fn unavailable_is_retried_after_retry_after_ms_then_connects() {
    let mut h = fake::harness(Some("t")).await;
    let states = fake::record_states(&h.client);
    let mut first = h.server.next_conn().await;
    first
        .refuse(json!({"code":"UNAVAILABLE","message":"gateway starting; retry shortly","retryable":true,
            "retryAfterMs":300,"details":{"reason":"startup-sidecars"}}))
        .await;
    first.close(1013, "try again later").await;
    let mut second = h.server.next_conn().await;
    second.handshake(fake::hello_ok()).await;
    let hello = h.client.wait_connected(DEADLINE).await.unwrap();
    assert_eq!(hello.server_version, "2026.9.6");
    assert_eq!(h.server.accepts(), 2);
    let states = states.lock().unwrap().clone();
    let backoff = states
        .iter()
        .find_map(|s| match s {
            ConnectionState::Backoff { attempt, retry_in, last_error } => {
                Some((*attempt, *retry_in, last_error.clone()))
            }
            _ => None,
        })
        .expect("a backoff state");
    assert_eq!(backoff.0, 1);
    assert!(backoff.1 >= Duration::from_millis(300), "retryAfterMs honoured: {backoff:?}");
    assert!(backoff.2.contains("startup-sidecars"), "{backoff:?}");
}

async fn assert_fatal_and_stopped(mut h: fake::Harness, check: impl Fn(&FatalError) -> bool) -> FatalError {
    let err = h.client.wait_connected(DEADLINE).await.unwrap_err();
    let GatewayError::Fatal(fatal) = err else { panic!("not fatal: {err}") };
    assert!(check(&fatal), "{fatal:?}");
    assert_eq!(*h.client.state().borrow(), ConnectionState::Fatal(fatal.clone()));
    // Future requests fail at once with the same error.
    let err = h.client.request("health", json!({}), DEADLINE).await.unwrap_err();
    assert!(matches!(&err, GatewayError::Fatal(f) if *f == fatal), "{err}");
    // No further attempts, although the backoff is only 10–50 ms.
    assert!(h.server.no_conn_within(Duration::from_millis(500)).await);
    assert_eq!(h.server.accepts(), 1);
    fatal
}

#[tokio::test]
async fn token_mismatch_is_fatal_with_the_fix() {
    let mut h = fake::harness(Some("wrong")).await;
    let mut conn = h.server.next_conn().await;
    conn.refuse(
        json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)",
        "details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":true,
                   "recommendedNextStep":"retry_with_device_token"}}),
    )
    .await;
    conn.close(1008, "unauthorized").await;
    let fatal = assert_fatal_and_stopped(h, |f| *f == FatalError::AuthTokenMismatch).await;
    let text = fatal.to_string();
    assert!(text.contains("OPENCLAW_TOKEN") && text.contains("openclaw gateway auth-token --show"), "{text}");
}

#[tokio::test]
async fn missing_token_is_fatal() {
    let mut h = fake::harness(None).await;
    let mut conn = h.server.next_conn().await;
    conn.refuse(
        json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token missing (provide gateway auth token)",
        "details":{"code":"AUTH_TOKEN_MISSING"}}),
    )
    .await;
    assert_fatal_and_stopped(h, |f| *f == FatalError::AuthTokenMissing).await;
}

#[tokio::test]
async fn protocol_mismatch_is_fatal() {
    let mut h = fake::harness(Some("t")).await;
    let mut conn = h.server.next_conn().await;
    conn.refuse(json!({"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH",
        "clientMinProtocol":4,"clientMaxProtocol":4,"expectedProtocol":5,"minimumProbeProtocol":3}}))
        .await;
    conn.close(1002, "protocol mismatch").await;
    let fatal = assert_fatal_and_stopped(h, |f| *f == FatalError::ProtocolMismatch { expected: Some(5) }).await;
    assert!(fatal.to_string().contains("requires protocol 5"), "{fatal}");
}

#[tokio::test]
async fn pairing_required_is_fatal_and_names_the_device() {
    let mut h = fake::harness(Some("t")).await;
    let device_id = h.client.device_id().to_owned();
    let mut conn = h.server.next_conn().await;
    conn.refuse(json!({"code":"NOT_PAIRED","message":"pairing required",
        "details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"req-42"}}))
        .await;
    let fatal = assert_fatal_and_stopped(h, |f| matches!(f, FatalError::PairingRequired { .. })).await;
    let text = fatal.to_string();
    assert!(text.contains("openclaw devices approve req-42") && text.contains(&device_id), "{text}");
}

/// A node is approved out of band: `PAIRING_REQUIRED` keeps it retrying (with the approve
/// command in its state) until the gateway lets it in, and the signed connect is a node's.
#[tokio::test]
async fn a_node_waits_for_pairing_and_connects_once_approved() {
    let server = fake::ScriptedGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fake::config(&server.url(), &dir, Some("t"))
        .into_node(clawbridge_gateway::NodeClaims { caps: vec![], commands: vec!["mcp.tools.call.v1".into()] });
    config.pairing_retry = Some(std::time::Duration::from_millis(20));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let client = clawbridge_gateway::GatewayClient::spawn(config, shutdown.clone()).unwrap();
    let mut server = server;
    let mut conn = server.next_conn().await;
    let connect = conn
        .refuse(json!({"code":"NOT_PAIRED","message":"pairing required",
        "details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"req-7"}}))
        .await;
    let params = &connect["params"];
    assert_eq!((params["role"].as_str(), params["client"]["mode"].as_str()), (Some("node"), Some("node")));
    assert_eq!(params["commands"], json!(["mcp.tools.call.v1"]));
    let waiting = fake::wait_state(&client, |s| matches!(s, ConnectionState::Backoff { .. })).await;
    let ConnectionState::Backoff { last_error, .. } = waiting else { unreachable!() };
    assert!(last_error.contains("openclaw devices approve req-7"), "{last_error}");

    let mut second = server.next_conn().await;
    second.handshake(fake::hello_ok()).await;
    fake::wait_state(&client, is_connected).await;
    shutdown.cancel();
}

#[tokio::test]
async fn shutdown_event_and_close_1012_reconnect() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let mut h = h;
    let states = fake::record_states(&h.client);
    let mut events = h.client.subscribe();
    conn.event("shutdown", json!({"reason":"gateway restarting","restartExpectedMs":200})).await;
    let ev = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert_eq!(ev.event, "shutdown");
    conn.close(1012, "service restart").await;

    let mut second = h.server.next_conn().await;
    second.handshake(fake::hello_with(|h| h["server"]["connId"] = json!("conn-2"))).await;
    fake::wait_state(&h.client, is_connected).await;
    assert_eq!(h.client.hello().unwrap().conn_id.as_deref(), Some("conn-2"));
    assert_eq!(h.server.accepts(), 2);
    let backoff = states
        .lock()
        .unwrap()
        .iter()
        .find_map(|s| match s {
            ConnectionState::Backoff { attempt, retry_in, last_error } => {
                Some((*attempt, *retry_in, last_error.clone()))
            }
            _ => None,
        })
        .expect("a backoff state between the connections");
    assert_eq!(backoff.0, 1, "the attempt counter restarted after the successful hello");
    assert!(backoff.1 >= Duration::from_millis(200), "restartExpectedMs honoured: {backoff:?}");
    assert!(backoff.2.contains("1012"), "{backoff:?}");
}

#[tokio::test]
async fn silent_gateway_trips_the_tick_watchdog() {
    let hello = fake::hello_with(|h| h["policy"]["tickIntervalMs"] = json!(100));
    let (mut h, mut conn) = fake::connected(hello).await;
    // Say nothing: after 2 × 100 ms the client closes with 4000 and reconnects.
    let close = conn.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4000);
    let mut second = h.server.next_conn().await;
    second.handshake(fake::hello_with(|h| h["server"]["connId"] = json!("conn-2"))).await;
    fake::wait_state(&h.client, is_connected).await;
    assert_eq!(h.client.hello().unwrap().conn_id.as_deref(), Some("conn-2"));
}

#[tokio::test]
async fn ticks_keep_the_connection_alive() {
    // Watchdog at 2 × 300 ms; ticks every 100 ms for 1.2 s keep resetting it. The 1.2 s pass in
    // paused time once connected: each sleep moves the clock to the next 100 ms and the client
    // reads the tick sent before it, so the watchdog fires only if ticks stop counting.
    let hello = fake::hello_with(|h| h["policy"]["tickIntervalMs"] = json!(300));
    let (h, mut conn) = fake::connected(hello).await;
    tokio::time::pause();
    for ts in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.event("tick", json!({ "ts": ts })).await;
    }
    assert!(is_connected(&h.client.state().borrow()));
    assert_eq!(h.server.accepts(), 1);
}

#[tokio::test]
async fn refused_connections_back_off_until_shutdown() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let client =
        GatewayClient::spawn(fake::config(&format!("ws://127.0.0.1:{port}"), &dir, Some("t")), shutdown.clone())
            .unwrap();
    let state =
        fake::wait_state(&client, |s| matches!(s, ConnectionState::Backoff { attempt, .. } if *attempt >= 2)).await;
    assert!(matches!(state, ConnectionState::Backoff { .. }));
    assert!(matches!(client.wait_connected(Duration::from_millis(50)).await, Err(GatewayError::Timeout)));
    shutdown.cancel();
    fake::wait_state(&client, |s| *s == ConnectionState::Stopped).await;
    assert!(matches!(client.wait_connected(DEADLINE).await, Err(GatewayError::Shutdown)));
    assert!(matches!(client.request("x", json!({}), DEADLINE).await, Err(GatewayError::Shutdown)));
}

#[tokio::test]
async fn shutdown_fails_pending_requests_and_closes_normally() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let pending = tokio::spawn(async move { client.request("slow.method", json!({}), DEADLINE).await });
    conn.recv_req("slow.method").await;
    h.shutdown.cancel();
    let close = conn.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1000);
    assert!(matches!(pending.await.unwrap(), Err(GatewayError::Shutdown)));
    fake::wait_state(&h.client, |s| *s == ConnectionState::Stopped).await;
}
