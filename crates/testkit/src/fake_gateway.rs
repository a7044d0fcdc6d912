//! A fake OpenClaw gateway speaking the subset of protocol v4 the bridge uses (challenge,
//! `connect` → `hello-ok`, `agent`, `agent.wait`), for fast pipeline tests and benchmarks.
//!
//! End-to-end tests use the real gateway ([`crate::Gateway`]); this fake exists so that tests
//! of the bridge's own logic (policy, ordering, retries, resume) run in milliseconds and can
//! script failures the real gateway cannot be made to produce on demand.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

/// What the fake answers to one `agent` run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeReply {
    /// A visible reply with this text.
    Text(String),
    /// A silent run (disposition not visible).
    Silent,
    /// A run that ends with `status:"error"`.
    RunError(String),
    /// The `agent` call itself is rejected (`INVALID_REQUEST`), as for bad params.
    Reject(String),
}

type Behavior = dyn Fn(&str) -> (FakeReply, Duration) + Send + Sync;

struct Run {
    done: watch::Sender<Option<FakeReply>>,
}

struct Inner {
    runs: Mutex<HashMap<String, Arc<Run>>>,
    /// Every `agent` params object, in arrival order (duplicates included).
    agent_calls: Mutex<Vec<Value>>,
    behavior: Mutex<Arc<Behavior>>,
    token: String,
    kick: Notify,
}

/// A fake gateway on `127.0.0.1:<port>`; stops when dropped.
pub struct FakeGateway {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGateway").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl FakeGateway {
    /// Starts a fake accepting `token`; replies `FAKE-REPLY: <message>` at once by default.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Inner {
            runs: Mutex::new(HashMap::new()),
            agent_calls: Mutex::new(Vec::new()),
            behavior: Mutex::new(Arc::new(|message: &str| {
                (FakeReply::Text(format!("FAKE-REPLY: {message}")), Duration::ZERO)
            })),
            token: token.to_owned(),
            kick: Notify::new(),
        });
        let task = tokio::spawn(accept_loop(listener, inner.clone()));
        Self { addr, inner, task }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Replaces how runs are answered: from the message text to a reply and a delay.
    pub fn set_behavior(&self, behavior: impl Fn(&str) -> (FakeReply, Duration) + Send + Sync + 'static) {
        *self.inner.behavior.lock().expect("lock") = Arc::new(behavior);
    }

    /// Every `agent` call's params, duplicates included.
    pub fn agent_calls(&self) -> Vec<Value> {
        self.inner.agent_calls.lock().expect("lock").clone()
    }

    /// How many distinct runs were started (distinct idempotency keys).
    pub fn runs_started(&self) -> usize {
        self.inner.runs.lock().expect("lock").len()
    }

    /// Drops every open connection (as a gateway restart would); clients must reconnect.
    pub fn drop_connections(&self) {
        self.inner.kick.notify_waiters();
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    while let Ok((stream, _)) = listener.accept().await {
        // Like the real gateway (Node sockets default to no delay): small frames go out at
        // once instead of waiting for the client's delayed ACK (up to 40 ms).
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                serve_connection(ws, inner).await;
            }
        });
    }
}

async fn serve_connection(ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, inner: Arc<Inner>) {
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let nonce = format!("fake-nonce-{}", std::process::id());
    let challenge = json!({"type":"event","event":"connect.challenge","payload":{"nonce": nonce, "ts": 0}});
    if sink.send(Message::text(challenge.to_string())).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
        }
    });
    let mut authenticated = false;
    loop {
        let frame = tokio::select! {
            () = inner.kick.notified() => break,
            frame = stream.next() => frame,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            if matches!(frame, Some(Ok(_))) {
                continue;
            }
            break;
        };
        let Ok(req) = serde_json::from_str::<Value>(text.as_str()) else { break };
        let id = req["id"].clone();
        let params = req["params"].clone();
        match req["method"].as_str() {
            Some("connect") if !authenticated => {
                if params["auth"]["token"].as_str() != Some(inner.token.as_str()) {
                    let _ = out_tx.send(json!({"type":"res","id":id,"ok":false,"error":{
                        "code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch",
                        "details":{"code":"AUTH_TOKEN_MISMATCH"}}}));
                    break;
                }
                authenticated = true;
                let _ = out_tx.send(json!({"type":"res","id":id,"ok":true,"payload":hello_ok()}));
            }
            _ if !authenticated => break,
            Some("agent") => {
                let response = start_run(&inner, &params);
                let _ = out_tx.send(json!({"type":"res","id":id,"ok":response.is_ok(),
                    "payload": response.as_ref().ok(), "error": response.as_ref().err()}));
            }
            Some("agent.wait") => {
                let inner = inner.clone();
                let out_tx = out_tx.clone();
                tokio::spawn(async move {
                    let payload = wait_run(&inner, &params).await;
                    let _ = out_tx.send(json!({"type":"res","id":id,"ok":true,"payload":payload}));
                });
            }
            _ => {
                let _ = out_tx.send(json!({"type":"res","id":id,"ok":false,
                    "error":{"code":"INVALID_REQUEST","message":"unknown method"}}));
            }
        }
    }
    writer.abort();
}

fn hello_ok() -> Value {
    json!({
        "type":"hello-ok","protocol":4,
        "server":{"version":"fake-gateway","connId":"fake"},
        "features":{"methods":["agent","agent.wait"],"events":["tick"]},
        "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
        "auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]},
        "policy":{"maxPayload":26_214_400,"maxBufferedBytes":52_428_800,"tickIntervalMs":30_000,
                  "attachments":{"maxBytes":19_464_192,"maxImageBytes":6_291_456}}
    })
}

fn start_run(inner: &Arc<Inner>, params: &Value) -> Result<Value, Value> {
    inner.agent_calls.lock().expect("lock").push(params.clone());
    let key = params["idempotencyKey"].as_str().unwrap_or_default().to_owned();
    let message = params["message"].as_str().unwrap_or_default().to_owned();
    let mut runs = inner.runs.lock().expect("lock");
    if runs.contains_key(&key) {
        return Ok(json!({"runId": key, "status": "in_flight"}));
    }
    let behavior = inner.behavior.lock().expect("lock").clone();
    let (reply, delay) = behavior(&message);
    if let FakeReply::Reject(why) = reply {
        return Err(json!({"code":"INVALID_REQUEST","message": why}));
    }
    let (done, _) = watch::channel(None);
    let run = Arc::new(Run { done });
    runs.insert(key.clone(), run.clone());
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        run.done.send_replace(Some(reply));
    });
    Ok(json!({"runId": key, "status": "accepted", "acceptedAt": 0}))
}

async fn wait_run(inner: &Arc<Inner>, params: &Value) -> Value {
    let run_id = params["runId"].as_str().unwrap_or_default().to_owned();
    let timeout = Duration::from_millis(params["timeoutMs"].as_u64().unwrap_or(30_000));
    let run = inner.runs.lock().expect("lock").get(&run_id).cloned();
    let Some(run) = run else {
        return json!({"runId": run_id, "status": "error", "error": "unknown run"});
    };
    let mut done = run.done.subscribe();
    let finished = tokio::time::timeout(timeout, done.wait_for(Option::is_some)).await;
    let reply = match finished {
        Ok(Ok(reply)) => reply.clone(),
        _ => return json!({"runId": run_id, "status": "timeout"}),
    };
    match reply {
        Some(FakeReply::Text(text)) => json!({"runId": run_id, "status": "ok", "stopReason": "stop",
            "terminalReply": {"disposition": "visible", "text": text}}),
        Some(FakeReply::Silent) => json!({"runId": run_id, "status": "ok", "stopReason": "stop",
            "terminalReply": {"disposition": "silent"}}),
        Some(FakeReply::RunError(error)) => json!({"runId": run_id, "status": "error", "error": error}),
        Some(FakeReply::Reject(_)) | None => json!({"runId": run_id, "status": "timeout"}),
    }
}
