//! A fake OpenClaw gateway speaking protocol v4 (reference/openclaw-gateway.md §1): one loopback
//! WebSocket server, one set of frame builders, two ways to drive it.
//!
//! - **Scripted** ([`ScriptedGateway`]): every connection is handed to the test as a [`Conn`] and
//!   nothing is sent until the test says so, so a test plays the server frame by frame (challenge,
//!   errors, closes, silence). The gateway client's own handshake and reconnect tests use it.
//! - **Automatic** ([`FakeGateway`]): answers the challenge, `connect` → `hello-ok`, `agent` and
//!   `agent.wait` by itself from a [`FakeReply`] behaviour, for fast pipeline tests and benchmarks.
//!
//! End-to-end tests use the real gateway ([`crate::Gateway`]); the fake exists so that tests of the
//! bridge's own logic (policy, ordering, retries, resume) run in milliseconds and can script failures
//! the real gateway cannot be made to produce on demand.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Upper bound for anything a scripted test waits for; generous so loaded CI machines pass.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The frames of reference §1.2, shaped like the captured ones (§1.3).
pub mod frame {
    use serde_json::{Value, json};

    /// The server's first frame; the client signs `nonce`. (The capture has no `seq` on it.)
    pub fn challenge(nonce: &str) -> Value {
        json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": nonce, "ts": 1_795_233_278_136u64}})
    }

    /// An event with its per-connection `seq`.
    pub fn event(event: &str, payload: Value, seq: u64) -> Value {
        json!({"type": "event", "event": event, "payload": payload, "seq": seq})
    }

    /// A successful response to request `id`.
    pub fn res_ok(id: &Value, payload: Value) -> Value {
        json!({"type": "res", "id": id, "ok": true, "payload": payload})
    }

    /// A failed response to request `id`; `error` is `{code, message, details?, retryable?, retryAfterMs?}`.
    pub fn res_err(id: &Value, error: Value) -> Value {
        json!({"type": "res", "id": id, "ok": false, "error": error})
    }

    /// The error 2026.9.6 answers to `connect` with a wrong token.
    pub fn token_mismatch() -> Value {
        json!({"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
               "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch"}})
    }

    /// A `hello-ok` like the captured one, trimmed to what the client reads.
    pub fn hello_ok() -> Value {
        json!({"type":"hello-ok","protocol":4,
            "server":{"version":"2026.9.6","buildId":"2026.9.6-test","connId":"conn-1"},
            "features":{"methods":["agent","agent.wait","chat.send"],"events":["tick","agent","chat"]},
            "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
            "auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]},
            "policy":{"maxPayload":26_214_400,"maxBufferedBytes":52_428_800,"tickIntervalMs":30_000,
                      "attachments":{"maxBytes":19_464_192,"maxImageBytes":6_291_456}}})
    }

    /// [`hello_ok`] with the knobs a test turns (`policy.tickIntervalMs`, `server.connId`, …).
    pub fn hello_with(patch: impl FnOnce(&mut Value)) -> Value {
        let mut hello = hello_ok();
        patch(&mut hello);
        hello
    }
}

/// Binds a loopback port and hands every upgraded connection to `on_conn`. Returns the address,
/// the count of accepted TCP connections and the accept task (abort it to stop listening).
async fn listen(on_conn: impl Fn(Conn) + Send + Sync + 'static) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepts);
    let on_conn = Arc::new(on_conn);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            // Like the real gateway (Node sockets default to no delay): small frames go out at
            // once instead of waiting for the client's delayed ACK (up to 40 ms).
            let _ = tcp.set_nodelay(true);
            let on_conn = Arc::clone(&on_conn);
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    on_conn(Conn { ws, seq: 0 });
                }
            });
        }
    });
    (addr, accepts, task)
}

/// The scripted mode: a fake gateway that hands each connection to the test.
pub struct ScriptedGateway {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    conns: mpsc::UnboundedReceiver<Conn>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ScriptedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedGateway").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScriptedGateway {
    /// Starts listening on `127.0.0.1:<port>`; stops when dropped.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        let (tx, conns) = mpsc::unbounded_channel();
        let (addr, accepts, task) = listen(move |conn| {
            let _ = tx.send(conn);
        })
        .await;
        Self { addr, accepts, conns, task }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// The next connection, already upgraded; nothing has been sent on it.
    ///
    /// # Panics
    /// If the client does not connect within [`DEADLINE`].
    pub async fn next_conn(&mut self) -> Conn {
        tokio::time::timeout(DEADLINE, self.conns.recv())
            .await
            .expect("the client did not connect")
            .expect("accept loop ended")
    }

    /// True when no new connection arrives within `window` (to check that a stopped client stays
    /// stopped).
    pub async fn no_conn_within(&mut self, window: Duration) -> bool {
        tokio::time::timeout(window, self.conns.recv()).await.is_err()
    }
}

impl Drop for ScriptedGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One server-side connection. The scripted methods panic on anything unexpected (they are
/// assertions); the automatic mode uses the fallible ones.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// The last event `seq` sent on this connection (the outer seq counts per connection).
    seq: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Conn {
    async fn try_send(&mut self, frame: &Value) -> bool {
        self.ws.send(Message::text(frame.to_string())).await.is_ok()
    }

    /// The next text frame as JSON, skipping pings; `Err` says why there is none.
    async fn next_json(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).map_err(|e| format!("client sent {t}: {e}"));
                }
                Some(Ok(Message::Close(c))) => return Err(format!("client closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket error: {e}")),
                None => return Err("client closed the socket".to_owned()),
            }
        }
    }

    /// Sends `frame` as one text frame.
    ///
    /// # Panics
    /// If the socket is gone.
    pub async fn send(&mut self, frame: Value) {
        assert!(self.try_send(&frame).await, "fake send");
    }

    /// Sends `connect.challenge` with `nonce`.
    pub async fn challenge(&mut self, nonce: &str) {
        self.send(frame::challenge(nonce)).await;
    }

    /// Sends an event with the connection's next `seq`.
    pub async fn event(&mut self, event: &str, payload: Value) {
        self.seq += 1;
        self.send(frame::event(event, payload, self.seq)).await;
    }

    /// Answers request `id` with `payload`.
    pub async fn reply_ok(&mut self, id: &Value, payload: Value) {
        self.send(frame::res_ok(id, payload)).await;
    }

    /// Answers request `id` with `error`.
    pub async fn reply_err(&mut self, id: &Value, error: Value) {
        self.send(frame::res_err(id, error)).await;
    }

    /// The next text frame as JSON.
    ///
    /// # Panics
    /// If none arrives within [`DEADLINE`], or the client closes.
    pub async fn recv(&mut self) -> Value {
        match tokio::time::timeout(DEADLINE, self.next_json()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(why)) => panic!("{why}"),
            Err(_) => panic!("no frame from the client"),
        }
    }

    /// The next request, which must be `method`.
    pub async fn recv_req(&mut self, method: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "req", "{frame}");
        assert_eq!(frame["method"], method, "{frame}");
        frame
    }

    /// Waits for the client's close frame, ignoring anything else; `None` when the socket ends
    /// without one.
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

    /// Closes with `code` and `reason`, then drains until the client answers the close.
    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while self.ws.next().await.is_some() {} }).await;
    }

    /// Challenge → connect → `hello`. Returns the connect frame.
    pub async fn handshake(&mut self, hello: Value) -> Value {
        self.challenge("nonce-1").await;
        let connect = self.recv_req("connect").await;
        self.reply_ok(&connect["id"], hello).await;
        connect
    }

    /// Challenge → connect → `error`. Returns the connect frame.
    pub async fn refuse(&mut self, error: Value) -> Value {
        self.challenge("nonce-1").await;
        let connect = self.recv_req("connect").await;
        self.reply_err(&connect["id"], error).await;
        connect
    }
}

/// What the automatic fake answers to one `agent` run.
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

/// The automatic mode: a fake gateway that answers `agent` / `agent.wait` itself; stops when dropped.
pub struct FakeGateway {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
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
        let inner = Arc::new(Inner {
            runs: Mutex::new(HashMap::new()),
            agent_calls: Mutex::new(Vec::new()),
            behavior: Mutex::new(Arc::new(|message: &str| {
                (FakeReply::Text(format!("FAKE-REPLY: {message}")), Duration::ZERO)
            })),
            token: token.to_owned(),
            kick: Notify::new(),
        });
        let shared = inner.clone();
        let (addr, _, task) = listen(move |conn| {
            tokio::spawn(serve_connection(conn, shared.clone()));
        })
        .await;
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

/// The automatic fake names itself, so a test can tell it from the real gateway in `status`.
fn automatic_hello() -> Value {
    frame::hello_with(|hello| hello["server"] = json!({"version": "fake-gateway", "connId": "fake"}))
}

/// Challenge and `connect` through the scripted pieces, then requests answered concurrently
/// (an `agent.wait` may be answered after later requests).
async fn serve_connection(mut conn: Conn, inner: Arc<Inner>) {
    if !conn.try_send(&frame::challenge(&format!("fake-nonce-{}", std::process::id()))).await {
        return;
    }
    let Ok(connect) = conn.next_json().await else { return };
    if connect["method"] != "connect" {
        return;
    }
    if connect["params"]["auth"]["token"].as_str() != Some(inner.token.as_str()) {
        let _ = conn.try_send(&frame::res_err(&connect["id"], frame::token_mismatch())).await;
        return;
    }
    if !conn.try_send(&frame::res_ok(&connect["id"], automatic_hello())).await {
        return;
    }
    let (sink, stream) = conn.ws.split();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(write_frames(sink, out_rx));
    serve_requests(stream, &out_tx, &inner).await;
    writer.abort();
}

async fn write_frames(
    mut sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    mut frames: mpsc::UnboundedReceiver<Value>,
) {
    while let Some(frame) = frames.recv().await {
        if sink.send(Message::text(frame.to_string())).await.is_err() {
            return;
        }
    }
}

async fn serve_requests(
    mut stream: SplitStream<WebSocketStream<TcpStream>>,
    out: &mpsc::UnboundedSender<Value>,
    inner: &Arc<Inner>,
) {
    loop {
        let frame = tokio::select! {
            () = inner.kick.notified() => return,
            frame = stream.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => continue,
        };
        let Ok(req) = serde_json::from_str::<Value>(text.as_str()) else { return };
        let id = req["id"].clone();
        let params = req["params"].clone();
        match req["method"].as_str() {
            Some("agent") => {
                let answer = match start_run(inner, &params) {
                    Ok(payload) => frame::res_ok(&id, payload),
                    Err(error) => frame::res_err(&id, error),
                };
                let _ = out.send(answer);
            }
            Some("agent.wait") => {
                let inner = inner.clone();
                let out = out.clone();
                tokio::spawn(async move {
                    let payload = wait_run(&inner, &params).await;
                    let _ = out.send(frame::res_ok(&id, payload));
                });
            }
            _ => {
                let _ = out.send(frame::res_err(&id, json!({"code":"INVALID_REQUEST","message":"unknown method"})));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both modes on the same pieces: the automatic fake answers a raw client the way a scripted
    /// test would, and refuses a wrong token with the captured error.
    #[tokio::test]
    async fn the_automatic_mode_answers_agent_and_wait() {
        let fake = FakeGateway::start("tok").await;
        let (mut client, hello) = crate::ws::RawClient::connect(&fake.url(), "tok").await.unwrap();
        assert_eq!(hello["server"]["version"], "fake-gateway");
        assert_eq!(hello["policy"], frame::hello_ok()["policy"]);
        let run = client.request("agent", json!({"message": "hi", "idempotencyKey": "k1"})).await.unwrap();
        assert_eq!(run["runId"], "k1");
        let done = client.request("agent.wait", json!({"runId": "k1", "timeoutMs": 1000})).await.unwrap();
        assert_eq!(done["terminalReply"], json!({"disposition": "visible", "text": "FAKE-REPLY: hi"}));
        assert_eq!(fake.runs_started(), 1);

        let Err(err) = crate::ws::RawClient::connect(&fake.url(), "wrong").await else {
            panic!("a wrong token connected")
        };
        assert!(err.contains("AUTH_TOKEN_MISMATCH"), "{err}");
    }

    #[tokio::test]
    async fn the_scripted_mode_hands_over_each_connection() {
        let mut server = ScriptedGateway::start().await;
        let url = server.url();
        let client = tokio::spawn(async move { crate::ws::RawClient::connect(&url, "t").await.map(|(_, h)| h) });
        let mut conn = server.next_conn().await;
        let connect = conn.handshake(frame::hello_ok()).await;
        assert_eq!(connect["params"]["auth"]["token"], "t");
        assert_eq!(client.await.unwrap().unwrap()["server"]["version"], "2026.9.6");
        assert_eq!(server.accepts(), 1);
    }
}
