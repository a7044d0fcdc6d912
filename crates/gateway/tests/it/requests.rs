//! Request/response correlation and local limits.

use std::time::Duration;

use clawbridge_gateway::GatewayError;
use serde_json::json;

use crate::fake::{self, DEADLINE};

#[tokio::test]
async fn out_of_order_responses_reach_their_callers() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let (a, b) = (h.client.clone(), h.client.clone());
    let first = tokio::spawn(async move { a.request("method.a", json!({"n": 1}), DEADLINE).await });
    let second = tokio::spawn(async move { b.request("method.b", json!({"n": 2}), DEADLINE).await });
    let x = conn.recv().await;
    let y = conn.recv().await;
    let (req_a, req_b) = if x["method"] == "method.a" { (x, y) } else { (y, x) };
    assert_eq!(req_a["params"], json!({"n": 1}));
    assert_ne!(req_a["id"], req_b["id"]);
    conn.reply_ok(&req_b["id"], json!({"answer": "b"})).await;
    conn.event("chat", json!({"state": "delta"})).await;
    conn.reply_ok(&json!("cb-unknown"), json!({"answer": "nobody"})).await;
    conn.reply_ok(&req_a["id"], json!({"answer": "a"})).await;
    assert_eq!(first.await.unwrap().unwrap(), json!({"answer": "a"}));
    assert_eq!(second.await.unwrap().unwrap(), json!({"answer": "b"}));
}

#[tokio::test]
async fn method_errors_are_rejected_or_unavailable() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("sessions.send", json!({}), DEADLINE).await });
    let req = conn.recv_req("sessions.send").await;
    conn.reply_err(
        &req["id"],
        json!({"code":"INVALID_REQUEST","message":"session not found: x","details":{"code":"SESSION_NOT_FOUND"}}),
    )
    .await;
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, GatewayError::Rejected { code, detail_code: Some(d), .. } if code == "INVALID_REQUEST" && d == "SESSION_NOT_FOUND"),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("busy", json!({}), DEADLINE).await });
    let req = conn.recv_req("busy").await;
    conn.reply_err(&req["id"], json!({"code":"UNAVAILABLE","message":"busy","retryable":true,"retryAfterMs":1500}))
        .await;
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
}

#[tokio::test]
async fn a_dropped_connection_fails_pending_requests() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("agent.wait", json!({}), DEADLINE).await });
    conn.recv_req("agent.wait").await;
    drop(conn);
    assert!(matches!(call.await.unwrap(), Err(GatewayError::Disconnected)));
}

#[tokio::test]
async fn requests_wait_for_the_connection() {
    let mut h = fake::harness(Some("t")).await;
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("health", json!({}), DEADLINE).await });
    let mut conn = h.server.next_conn().await;
    conn.handshake(fake::hello_ok()).await;
    let req = conn.recv_req("health").await;
    conn.reply_ok(&req["id"], json!({"ok": true})).await;
    assert_eq!(call.await.unwrap().unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn requests_time_out_without_a_connection_or_an_answer() {
    // Nothing answers the connection: the 100 ms pass in paused time (the request's deadline is
    // the earliest timer, so the clock stops there).
    let h = fake::harness(Some("t")).await;
    tokio::time::pause();
    let err = h.client.request("health", json!({}), Duration::from_millis(100)).await.unwrap_err();
    tokio::time::resume();
    assert!(matches!(err, GatewayError::Timeout), "{err}");

    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("never", json!({}), Duration::from_millis(200)).await });
    conn.recv_req("never").await;
    // The request is out and nothing else is in flight: its 200 ms pass in paused time.
    tokio::time::pause();
    assert!(matches!(call.await.unwrap(), Err(GatewayError::Timeout)));
}

#[tokio::test]
async fn frames_over_max_payload_are_refused_locally() {
    let (h, mut conn) = fake::connected(fake::hello_with(|h| h["policy"]["maxPayload"] = json!(1000))).await;
    let err = h.client.request("big", json!({"blob": "x".repeat(2000)}), DEADLINE).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::PayloadTooLarge { max_payload: 1000, size_bytes } if size_bytes > 2000),
        "{err:?}"
    );
    assert!(err.to_string().contains("maxPayload"));
    // Nothing was sent: the next frame the gateway sees is the next request.
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.request("small", json!({}), DEADLINE).await });
    let req = conn.recv_req("small").await;
    conn.reply_ok(&req["id"], json!(null)).await;
    assert_eq!(call.await.unwrap().unwrap(), json!(null));
}
