//! The client side of the scripted fake gateway: a `GatewayClient` wired to testkit's
//! [`ScriptedGateway`], whose connections the test body plays frame by frame. Timeouts here are
//! deadlines only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawbridge_gateway::{ConnectionState, GatewayClient, GatewayConfig};
pub use clawbridge_testkit::fake_gateway::frame::{hello_ok, hello_with};
pub use clawbridge_testkit::fake_gateway::{Conn, DEADLINE, ScriptedGateway};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A client config with fast backoff, a fresh key file and a test token.
pub fn config(url: &str, dir: &tempfile::TempDir, token: Option<&str>) -> GatewayConfig {
    let mut config = GatewayConfig::new(url, token.map(Into::into), dir.path().join("state").join("device.key"));
    config.client_display_name = "clawbridge-test".to_owned();
    config.client_version = "9.9.9".to_owned();
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(5);
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    config
}

pub struct Harness {
    pub server: ScriptedGateway,
    pub client: GatewayClient,
    pub shutdown: CancellationToken,
    pub _dir: tempfile::TempDir,
}

pub async fn harness(token: Option<&str>) -> Harness {
    let server = ScriptedGateway::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let client = GatewayClient::spawn(config(&server.url(), &dir, token), shutdown.clone()).expect("spawn");
    Harness { server, client, shutdown, _dir: dir }
}

/// A harness already connected with `hello`; returns the live server connection too.
pub async fn connected(hello: Value) -> (Harness, Conn) {
    let mut h = harness(Some("tok")).await;
    let mut conn = h.server.next_conn().await;
    conn.handshake(hello).await;
    h.client.wait_connected(DEADLINE).await.expect("connected");
    (h, conn)
}

/// Waits until the state matches `pred`; returns it.
pub async fn wait_state(client: &GatewayClient, pred: impl FnMut(&ConnectionState) -> bool) -> ConnectionState {
    let mut rx = client.state();
    let seen = match tokio::time::timeout(DEADLINE, rx.wait_for(pred)).await {
        Ok(Ok(state)) => Some(state.clone()),
        _ => None,
    };
    seen.unwrap_or_else(|| panic!("state never matched; last: {:?}", *rx.borrow()))
}

/// Records every state the client publishes (watch keeps only the latest, so states shorter
/// than a scheduler tick could be missed; tests only look for states that last).
pub fn record_states(client: &GatewayClient) -> Arc<Mutex<Vec<ConnectionState>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rx = client.state();
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let state = rx.borrow_and_update().clone();
            sink.lock().expect("state log").push(state);
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    log
}
