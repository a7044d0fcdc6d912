//! A scriptable fake gateway: the test body plays the server side frame by frame.
//!
//! The accept loop upgrades every TCP connection to a WebSocket and hands it to the test as a
//! [`Conn`]; nothing is sent until the test says so, which lets each test script exactly the
//! sequence it checks (challenge, errors, closes, silence). Timeouts here are deadlines only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawbridge_gateway::{ConnectionState, GatewayClient, GatewayConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything the fake waits for; generous so loaded CI machines pass.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct FakeServer {
    pub url: String,
    accepts: Arc<AtomicUsize>,
    conns: mpsc::UnboundedReceiver<Conn>,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake gateway");
        let url = format!("ws://{}", listener.local_addr().expect("local addr"));
        let accepts = Arc::new(AtomicUsize::new(0));
        let (tx, conns) = mpsc::unbounded_channel();
        let counter = Arc::clone(&accepts);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        let _ = tx.send(Conn { ws });
                    }
                });
            }
        });
        FakeServer { url, accepts, conns }
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    pub async fn next_conn(&mut self) -> Conn {
        tokio::time::timeout(DEADLINE, self.conns.recv())
            .await
            .expect("the client did not connect")
            .expect("accept loop ended")
    }

    /// True when no new connection arrives within `window` (used only to check that a stopped
    /// client stays stopped).
    pub async fn no_conn_within(&mut self, window: Duration) -> bool {
        tokio::time::timeout(window, self.conns.recv()).await.is_err()
    }
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
}

impl Conn {
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.expect("fake send");
    }

    pub async fn challenge(&mut self, nonce: &str) {
        self.event("connect.challenge", json!({"nonce": nonce, "ts": 1_795_233_278_136u64})).await;
    }

    pub async fn event(&mut self, event: &str, payload: Value) {
        self.send(json!({"type": "event", "event": event, "payload": payload, "seq": 1})).await;
    }

    pub async fn reply_ok(&mut self, id: &Value, payload: Value) {
        self.send(json!({"type": "res", "id": id, "ok": true, "payload": payload})).await;
    }

    pub async fn reply_err(&mut self, id: &Value, error: Value) {
        self.send(json!({"type": "res", "id": id, "ok": false, "error": error})).await;
    }

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no frame from the client")
                .expect("client closed the socket")
                .expect("socket error");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("client sent JSON");
                }
                Message::Close(c) => panic!("client closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next request, which must be `method`.
    pub async fn recv_req(&mut self, method: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "req", "{frame}");
        assert_eq!(frame["method"], method, "{frame}");
        frame
    }

    /// Waits for the client's close frame, ignoring anything else.
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("client never closed");
            match msg {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
        let _ = self.ws.close(Some(frame)).await;
        // Drain until the client answers the close (or goes away).
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while self.ws.next().await.is_some() {} }).await;
    }

    /// Challenge → connect → hello-ok. Returns the connect frame.
    pub async fn handshake(&mut self, hello: Value) -> Value {
        self.challenge("nonce-1").await;
        let connect = self.recv_req("connect").await;
        self.reply_ok(&connect["id"], hello).await;
        connect
    }

    /// Challenge → connect → error. Returns the connect frame.
    pub async fn refuse(&mut self, error: Value) -> Value {
        self.challenge("nonce-1").await;
        let connect = self.recv_req("connect").await;
        self.reply_err(&connect["id"], error).await;
        connect
    }
}

/// A hello-ok like the captured one, with the knobs tests turn.
pub fn hello_ok() -> Value {
    json!({"type":"hello-ok","protocol":4,
        "server":{"version":"2026.9.6","buildId":"2026.9.6-test","connId":"conn-1"},
        "features":{"methods":["agent","agent.wait","chat.send"],"events":["tick","agent","chat"]},
        "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
        "auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]},
        "policy":{"maxPayload":26_214_400,"maxBufferedBytes":52_428_800,"tickIntervalMs":30_000,
                  "attachments":{"maxBytes":19_464_192,"maxImageBytes":6_291_456}}})
}

pub fn hello_with(patch: impl FnOnce(&mut Value)) -> Value {
    let mut hello = hello_ok();
    patch(&mut hello);
    hello
}

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
    pub server: FakeServer,
    pub client: GatewayClient,
    pub shutdown: CancellationToken,
    pub _dir: tempfile::TempDir,
}

pub async fn harness(token: Option<&str>) -> Harness {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let client = GatewayClient::spawn(config(&server.url, &dir, token), shutdown.clone()).expect("spawn");
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
