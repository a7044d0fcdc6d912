//! The connect handshake, as the fake gateway sees it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clawbridge_gateway::{ConnectionState, DeviceIdentity, FatalError, GatewayError, probe};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fake::{self, DEADLINE, ScriptedGateway};

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

/// Verifies `device.signature` over the v3 string rebuilt from the frame's own fields, written
/// out independently of the library's payload builder.
fn assert_signature_verifies(params: &Value) {
    let client = &params["client"];
    let device = &params["device"];
    let scopes: Vec<&str> = params["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let token = params["auth"]["token"].as_str().unwrap_or("");
    let payload = format!(
        "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
        device["id"].as_str().unwrap(),
        client["id"].as_str().unwrap(),
        client["mode"].as_str().unwrap(),
        params["role"].as_str().unwrap(),
        scopes.join(","),
        device["signedAt"].as_u64().unwrap(),
        token,
        device["nonce"].as_str().unwrap(),
        client["platform"].as_str().unwrap().trim().to_lowercase(),
    );
    let public: [u8; 32] =
        URL_SAFE_NO_PAD.decode(device["publicKey"].as_str().unwrap()).unwrap().try_into().expect("32-byte key");
    assert_eq!(hex::encode(Sha256::digest(public)), device["id"].as_str().unwrap(), "device id = sha256(pubkey)");
    let signature = URL_SAFE_NO_PAD.decode(device["signature"].as_str().unwrap()).unwrap();
    assert_eq!(signature.len(), 64);
    let key = VerifyingKey::from_bytes(&public).unwrap();
    key.verify(payload.as_bytes(), &Signature::from_slice(&signature).unwrap())
        .unwrap_or_else(|e| panic!("signature does not verify over {payload:?}: {e}"));
}

#[tokio::test]
async fn connect_frame_has_the_reference_fields_and_a_valid_signature() {
    let mut h = fake::harness(Some("tok-123")).await;
    let mut conn = h.server.next_conn().await;
    conn.challenge("nonce-abc").await;
    let frame = conn.recv_req("connect").await;
    assert!(frame["id"].as_str().unwrap().starts_with("cb-"), "{frame}");
    let params = &frame["params"];
    assert_eq!(keys(params), ["auth", "caps", "client", "device", "maxProtocol", "minProtocol", "role", "scopes"]);
    assert_eq!(params["minProtocol"], 4);
    assert_eq!(params["maxProtocol"], 4);
    assert_eq!(
        params["client"],
        json!({"id":"gateway-client","displayName":"clawbridge-test","version":"9.9.9",
               "platform": std::env::consts::OS,"mode":"backend"})
    );
    assert_eq!(params["caps"], json!([]));
    assert_eq!(params["role"], "operator");
    assert_eq!(params["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(params["auth"], json!({"token": "tok-123"}));
    assert_eq!(keys(&params["device"]), ["id", "nonce", "publicKey", "signature", "signedAt"]);
    assert_eq!(params["device"]["nonce"], "nonce-abc");
    assert_eq!(params["device"]["id"], h.client.device_id());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let signed_at = params["device"]["signedAt"].as_u64().unwrap();
    assert!(signed_at.abs_diff(now_ms) < 120_000, "signedAt within the server's ±120 s window");
    assert_signature_verifies(params);

    // The id on the wire is the persisted identity's.
    let stored = DeviceIdentity::load_or_create(&h.client.config().device_key_path).unwrap();
    assert_eq!(stored.id(), h.client.device_id());

    conn.reply_ok(&frame["id"], fake::hello_ok()).await;
    let hello = h.client.wait_connected(DEADLINE).await.unwrap();
    assert_eq!(hello.protocol, 4);
    assert_eq!(hello.server_version, "2026.9.6");
    assert_eq!(hello.conn_id.as_deref(), Some("conn-1"));
    assert_eq!(hello.default_agent_id.as_deref(), Some("main"));
    assert!(hello.has_method("agent.wait"));
    assert_eq!(
        *h.client.state().borrow(),
        ConnectionState::Connected { server_version: "2026.9.6".into(), protocol: 4 }
    );
    assert_eq!(h.client.hello(), Some(hello));
    h.shutdown.cancel();
}

#[tokio::test]
async fn without_a_token_auth_is_omitted_and_the_signature_uses_an_empty_token() {
    let mut h = fake::harness(None).await;
    let mut conn = h.server.next_conn().await;
    conn.challenge("n-2").await;
    let frame = conn.recv_req("connect").await;
    assert!(frame["params"].get("auth").is_none(), "{frame}");
    assert_signature_verifies(&frame["params"]);
}

#[tokio::test]
async fn a_fresh_nonce_is_signed_on_every_connection() {
    let mut h = fake::harness(Some("t")).await;
    let mut first = h.server.next_conn().await;
    first.challenge("nonce-one").await;
    let one = first.recv_req("connect").await;
    first.reply_err(&one["id"], json!({"code":"UNAVAILABLE","message":"starting","retryable":true})).await;
    first.close(1013, "try again later").await;
    let mut second = h.server.next_conn().await;
    second.challenge("nonce-two").await;
    let two = second.recv_req("connect").await;
    assert_eq!(two["params"]["device"]["nonce"], "nonce-two");
    assert_ne!(one["id"], two["id"], "request ids are unique per client");
    assert_signature_verifies(&two["params"]);
}

#[tokio::test]
async fn events_are_broadcast_except_the_challenge() {
    let (h, mut conn) = fake::connected(fake::hello_ok()).await;
    let mut events = h.client.subscribe();
    conn.event("connect.challenge", json!({"nonce": "late"})).await;
    conn.event("totally.new.event", json!({"x": 1})).await;
    conn.send(json!({"type":"event","event":"tick","payload":{"ts":5},"seq":9})).await;
    let first = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert_eq!(first.event, "totally.new.event");
    assert_eq!(first.payload, json!({"x": 1}));
    let second = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert_eq!((second.event.as_str(), second.seq), ("tick", Some(9)));
    // Garbage does not kill the connection.
    conn.send(json!({"type":"mystery"})).await;
    assert!(matches!(*h.client.state().borrow(), ConnectionState::Connected { .. }));
}

#[tokio::test]
async fn probe_returns_hello_and_closes_normally() {
    let mut server = ScriptedGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = fake::config(&server.url(), &dir, Some("t"));
    let probing = tokio::spawn(async move { probe(&config).await });
    let mut conn = server.next_conn().await;
    conn.handshake(fake::hello_ok()).await;
    let close = conn.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1000);
    let hello = probing.await.unwrap().unwrap();
    assert_eq!(hello.server_version, "2026.9.6");
}

#[tokio::test]
async fn probe_reports_fatal_errors() {
    let mut server = ScriptedGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = fake::config(&server.url(), &dir, Some("wrong"));
    let probing = tokio::spawn(async move { probe(&config).await });
    let mut conn = server.next_conn().await;
    conn.refuse(
        json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)",
        "details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch"}}),
    )
    .await;
    let err = probing.await.unwrap().unwrap_err();
    assert!(matches!(err, GatewayError::Fatal(FatalError::AuthTokenMismatch)), "{err}");
}
