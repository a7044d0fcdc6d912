//! `agent` + `agent.wait` and `run_agent` against the fake gateway.

use std::time::Duration;

use clawbridge_gateway::{AgentRequest, AgentWaitResult, Attachment, GatewayError, InputProvenance, ProvenanceKind};
use serde_json::{Value, json};

use crate::fake::{self, Conn, DEADLINE};

fn request(key: &str) -> AgentRequest {
    AgentRequest {
        extra_system_prompt: Some("Sender: Kim (kakao)".into()),
        input_provenance: Some(InputProvenance {
            kind: ProvenanceKind::ExternalUser,
            source_channel: Some("kakao".into()),
        }),
        ..AgentRequest::new("hello there", "agent:main:kakao:direct:u1", key)
    }
}

fn visible(run_id: &str, text: &str) -> Value {
    json!({"runId": run_id, "status": "ok", "startedAt": 1, "endedAt": 2, "stopReason": "stop",
           "terminalReceipt": {"runId": run_id, "terminalDisposition": "visible"},
           "terminalReply": {"disposition": "visible", "text": text}})
}

async fn accept_agent(conn: &mut Conn, run_id: &str, status: &str) -> Value {
    let req = conn.recv_req("agent").await;
    conn.reply_ok(
        &req["id"],
        json!({"runId": run_id, "sessionKey": req["params"]["sessionKey"], "agentId": "main",
        "status": status, "acceptedAt": 1}),
    )
    .await;
    req
}

#[tokio::test]
async fn run_agent_loops_on_timeout_until_the_reply() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-1"), Duration::from_secs(60)).await });

    let agent = accept_agent(&mut conn, "run-1", "accepted").await;
    assert_eq!(
        agent["params"],
        json!({"message":"hello there","sessionKey":"agent:main:kakao:direct:u1","idempotencyKey":"key-1",
               "extraSystemPrompt":"Sender: Kim (kakao)",
               "inputProvenance":{"kind":"external_user","sourceChannel":"kakao"}})
    );
    let wait = conn.recv_req("agent.wait").await;
    assert_eq!(wait["params"]["runId"], "run-1", "waits on the runId the gateway returned");
    let timeout_ms = wait["params"]["timeoutMs"].as_u64().unwrap();
    assert!(timeout_ms > 0 && timeout_ms <= 30_000, "{timeout_ms}");
    conn.reply_ok(&wait["id"], json!({"runId": "run-1", "status": "timeout"})).await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], json!({"runId": "run-1", "status": "pending"})).await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], visible("run-1", "STUB-REPLY: hi")).await;

    let outcome = run.await.unwrap().unwrap();
    assert_eq!(outcome.run_id, "run-1");
    assert_eq!(outcome.status, "ok");
    assert_eq!(outcome.reply.as_deref(), Some("STUB-REPLY: hi"));
    assert_eq!(outcome.stop_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn a_silent_run_has_no_reply() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let wait = tokio::spawn(async move { client.agent_wait("run-s", Duration::from_secs(5)).await });
    let req = conn.recv_req("agent.wait").await;
    assert_eq!(req["params"], json!({"runId": "run-s", "timeoutMs": 5000}));
    conn.reply_ok(
        &req["id"],
        json!({"runId":"run-s","status":"ok","terminalReply":{"disposition":"silent","text":"NO_REPLY"}}),
    )
    .await;
    let AgentWaitResult::Terminal(outcome) = wait.await.unwrap().unwrap() else { panic!("not terminal") };
    assert_eq!(outcome.reply, None);
}

#[tokio::test]
async fn run_agent_survives_a_dropped_connection_with_the_same_idempotency_key() {
    let (mut h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-drop"), Duration::from_secs(60)).await });

    let first = accept_agent(&mut conn, "run-d", "accepted").await;
    conn.recv_req("agent.wait").await;
    drop(conn); // the gateway goes away mid-wait

    let mut conn = h.server.next_conn().await;
    conn.handshake(fake::hello_with(|h| h["server"]["connId"] = json!("conn-2"))).await;
    let again = accept_agent(&mut conn, "run-d", "in_flight").await;
    assert_eq!(again["params"]["idempotencyKey"], "key-drop");
    assert_eq!(again["params"], first["params"], "the same agent request is re-issued");
    let wait = conn.recv_req("agent.wait").await;
    assert_eq!(wait["params"]["runId"], "run-d");
    conn.reply_ok(&wait["id"], visible("run-d", "STUB-REPLY: after reconnect")).await;

    let outcome = run.await.unwrap().unwrap();
    assert_eq!(outcome.reply.as_deref(), Some("STUB-REPLY: after reconnect"));
}

#[tokio::test]
async fn run_agent_retries_agent_when_the_gateway_is_busy() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-busy"), Duration::from_secs(60)).await });
    let req = conn.recv_req("agent").await;
    conn.reply_err(&req["id"], json!({"code":"UNAVAILABLE","message":"draining","retryable":true,"retryAfterMs":20}))
        .await;
    accept_agent(&mut conn, "run-b", "accepted").await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], visible("run-b", "ok")).await;
    assert_eq!(run.await.unwrap().unwrap().reply.as_deref(), Some("ok"));
}

#[tokio::test]
async fn a_rejected_agent_request_is_returned_without_retry() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-bad"), Duration::from_secs(60)).await });
    let req = conn.recv_req("agent").await;
    conn.reply_err(
        &req["id"],
        json!({"code":"INVALID_REQUEST","message":"invalid agent params: unknown channel: kakao"}),
    )
    .await;
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, GatewayError::Rejected { .. }), "{err}");
    // No retry: the next frame is whatever the client sends next.
    let client = h.client.clone();
    let ping = tokio::spawn(async move { client.request("health", json!({}), DEADLINE).await });
    let req = conn.recv_req("health").await;
    conn.reply_ok(&req["id"], json!({})).await;
    ping.await.unwrap().unwrap();
}

#[tokio::test]
async fn run_agent_gives_up_at_its_deadline() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-late"), Duration::from_millis(300)).await });
    accept_agent(&mut conn, "run-late", "accepted").await;
    let wait = conn.recv_req("agent.wait").await;
    assert!(wait["params"]["timeoutMs"].as_u64().unwrap() <= 300);
    // Nothing is in flight any more: the rest of the 300 ms passes in paused time.
    tokio::time::pause();
    assert!(matches!(run.await.unwrap(), Err(GatewayError::Timeout)));
}

fn image(size: u64, content_len: usize) -> Attachment {
    Attachment {
        mime_type: "image/jpeg".into(),
        file_name: Some("photo.jpg".into()),
        content_base64: "A".repeat(content_len),
        size_bytes: size,
    }
}

#[tokio::test]
async fn attachments_over_the_hello_limits_are_refused_before_sending() {
    let hello = fake::hello_with(|h| {
        h["policy"]["maxPayload"] = json!(2000);
        h["policy"]["attachments"] = json!({"maxBytes": 10_000, "maxImageBytes": 100});
    });
    let (h, mut conn) = fake::connected(hello).await;

    let mut req = request("key-att");
    req.attachments = vec![image(200, 8)];
    let err = h.client.agent(&req).await.unwrap_err();
    assert!(
        matches!(
            &err,
            GatewayError::AttachmentTooLarge {
                limit: "policy.attachments.maxImageBytes",
                size_bytes: 200,
                limit_bytes: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("photo.jpg"), "{err}");

    // Each attachment fits, the frame does not.
    req.attachments = vec![Attachment { mime_type: "application/pdf".into(), ..image(1800, 2400) }];
    let err = h.client.agent(&req).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::AttachmentTooLarge { limit: "policy.maxPayload", limit_bytes: 2000, .. }),
        "{err:?}"
    );
    assert!(h.client.run_agent(&req, DEADLINE).await.is_err(), "run_agent does not retry a local refusal");

    // Nothing reached the gateway: the next frame is a small agent request with its image.
    req.attachments = vec![image(3, 4)];
    let client = h.client.clone();
    let ok = tokio::spawn(async move { client.agent(&req).await });
    let frame = accept_agent(&mut conn, "run-att", "accepted").await;
    assert_eq!(
        frame["params"]["attachments"],
        json!([{"type":"image","mimeType":"image/jpeg","fileName":"photo.jpg","content":"AAAA","sizeBytes":3}])
    );
    assert_eq!(ok.await.unwrap().unwrap().run_id, "run-att");
}

const SESSION_CHANGED: &str =
    "Session \"agent:main:kakao:direct:u1\" changed while starting work. Retry. | SESSION_WORK_START_CHANGED";

#[tokio::test]
async fn an_interrupted_run_that_fails_after_reconnect_is_started_again_under_a_derived_key() {
    let (mut h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-crash"), Duration::from_secs(60)).await });
    accept_agent(&mut conn, "key-crash", "accepted").await;
    conn.recv_req("agent.wait").await;
    drop(conn); // the gateway crashes mid-run

    let mut conn = h.server.next_conn().await;
    conn.handshake(fake::hello_ok()).await;
    let again = accept_agent(&mut conn, "key-crash", "accepted").await;
    assert_eq!(again["params"]["idempotencyKey"], "key-crash");
    let wait = conn.recv_req("agent.wait").await;
    // What 2026.9.6 answers when its restart recovery took the session over.
    conn.reply_ok(&wait["id"], json!({"runId":"key-crash","status":"error","endedAt":1,"error":SESSION_CHANGED})).await;

    let fresh = accept_agent(&mut conn, "key-crash:resume-1", "accepted").await;
    assert_eq!(fresh["params"]["idempotencyKey"], "key-crash:resume-1");
    assert_eq!(fresh["params"]["message"], "hello there");
    let wait = conn.recv_req("agent.wait").await;
    assert_eq!(wait["params"]["runId"], "key-crash:resume-1");
    conn.reply_ok(&wait["id"], visible("key-crash:resume-1", "STUB-REPLY: again")).await;
    let outcome = run.await.unwrap().unwrap();
    assert_eq!(outcome.reply.as_deref(), Some("STUB-REPLY: again"));
    assert_eq!(outcome.run_id, "key-crash:resume-1");
}

#[tokio::test]
async fn a_key_the_gateway_refuses_to_resume_is_replaced() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-poisoned"), Duration::from_secs(60)).await });
    let req = conn.recv_req("agent").await;
    conn.reply_err(&req["id"], json!({"code":"UNAVAILABLE","message":SESSION_CHANGED})).await;
    accept_agent(&mut conn, "key-poisoned:resume-1", "accepted").await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], visible("key-poisoned:resume-1", "fine")).await;
    assert_eq!(run.await.unwrap().unwrap().reply.as_deref(), Some("fine"));
}

#[tokio::test]
async fn an_ordinary_run_error_is_returned_as_is() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-err"), Duration::from_secs(60)).await });
    accept_agent(&mut conn, "key-err", "accepted").await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], json!({"runId":"key-err","status":"error","endedAt":1,"error":"model failed"})).await;
    let outcome = run.await.unwrap().unwrap();
    assert_eq!((outcome.status.as_str(), outcome.error.as_deref()), ("error", Some("model failed")));
    // No second run was started.
    let client = h.client.clone();
    let ping = tokio::spawn(async move { client.request("health", json!({}), DEADLINE).await });
    let req = conn.recv_req("health").await;
    conn.reply_ok(&req["id"], json!({})).await;
    ping.await.unwrap().unwrap();
}

#[tokio::test]
async fn fresh_runs_continue_while_the_recovery_owns_the_session() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-b"), Duration::from_secs(60)).await });
    for key in ["key-b", "key-b:resume-1", "key-b:resume-2"] {
        accept_agent(&mut conn, key, "accepted").await;
        let wait = conn.recv_req("agent.wait").await;
        assert_eq!(wait["params"]["runId"], key);
        conn.reply_ok(&wait["id"], json!({"runId":key,"status":"error","endedAt":1,"error":SESSION_CHANGED})).await;
    }
    accept_agent(&mut conn, "key-b:resume-3", "accepted").await;
    let wait = conn.recv_req("agent.wait").await;
    conn.reply_ok(&wait["id"], visible("key-b:resume-3", "at last")).await;
    let outcome = run.await.unwrap().unwrap();
    assert_eq!(outcome.run_id, "key-b:resume-3");
    assert_eq!(outcome.reply.as_deref(), Some("at last"));
}

#[tokio::test]
async fn a_resumed_run_that_keeps_failing_is_retried_only_once() {
    let (mut h, mut conn) = fake::connected(fake::hello_ok()).await;
    let client = h.client.clone();
    let run = tokio::spawn(async move { client.run_agent(&request("key-once"), Duration::from_secs(60)).await });
    accept_agent(&mut conn, "key-once", "accepted").await;
    conn.recv_req("agent.wait").await;
    drop(conn);
    let mut conn = h.server.next_conn().await;
    conn.handshake(fake::hello_ok()).await;
    for key in ["key-once", "key-once:resume-1"] {
        accept_agent(&mut conn, key, "accepted").await;
        let wait = conn.recv_req("agent.wait").await;
        conn.reply_ok(&wait["id"], json!({"runId":key,"status":"error","endedAt":1,"error":"model failed"})).await;
    }
    let outcome = run.await.unwrap().unwrap();
    assert_eq!((outcome.run_id.as_str(), outcome.status.as_str()), ("key-once:resume-1", "error"));
}
