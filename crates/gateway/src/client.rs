//! The connection task (an explicit reconnect state machine) and the [`GatewayClient`] handle.
//!
//! ```text
//!                  hello-ok                    drop / close 1012 / tick watchdog
//!   Connecting ─────────────▶ Connected ──────────────────────────────┐
//!      ▲  │                                                            ▼
//!      │  ├── refused, UNAVAILABLE, close 1013, timeout ──────▶ Backoff { attempt }
//!      │  └── token, protocol, pairing, device ──▶ Fatal               │
//!      └──────────────────── after the jittered delay ─────────────────┘
//!   any state ── shutdown token cancelled ──▶ Stopped
//! ```
//!
//! One task owns the socket. Callers never touch it: [`GatewayClient::request`] hands the
//! serialized frame and a oneshot to the task over an mpsc that exists only while a connection
//! is up, and the task correlates responses by id. When the connection ends every pending
//! request fails with [`GatewayError::Disconnected`]; callers that must not lose work
//! ([`GatewayClient::run_agent`]) wait for the next connection and retry idempotently.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clawbridge_core::clock::now_ms;
use clawbridge_core::retry::RetryPolicy;
use clawbridge_http::jitter;

use futures_util::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::agent::{
    self, AgentAccepted, AgentOutcome, AgentRequest, AgentWaitResult, SESSION_WORK_START_CHANGED, gateway_error_code,
};
use crate::device::{DeviceIdentity, SignatureFields};
use crate::error::{FatalError, GatewayError, classify_connect_error, classify_method_error};
use crate::frame::{self, CHALLENGE_EVENT, ClientRole, ConnectInfo, DeviceProof, Frame, HelloInfo, PROTOCOL_VERSION};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Events buffered per subscriber; a subscriber that falls further behind misses events.
const EVENT_CAPACITY: usize = 1024;
/// Requests queued towards the socket task before callers wait.
const COMMAND_CAPACITY: usize = 64;
/// Longest single `agent.wait`; longer waits are a loop of these.
const MAX_WAIT_CHUNK: Duration = Duration::from_secs(30);
/// Extra client-side time for an `agent.wait` answer beyond its server-side `timeoutMs`.
const WAIT_GRACE: Duration = Duration::from_secs(5);
/// Fresh runs [`GatewayClient::run_agent`] may start under derived keys after the gateway
/// lost a run in a crash (with the backoff, this covers a recovery run of several minutes).
pub const MAX_FRESH_RUNS: u32 = 16;
/// Close code the reference client uses when the tick watchdog fires.
const TICK_TIMEOUT_CLOSE_CODE: u16 = 4000;
/// How long a close handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A server `retryAfterMs`/`restartExpectedMs` longer than this is treated as this.
const MAX_RETRY_HINT: Duration = Duration::from_secs(300);
/// Upper bound of the watchdog period, whatever `tickIntervalMs` says.
const MAX_TICK_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest a frame may take to be written to the gateway socket: a gateway (or network) that
/// stops reading must end the connection, not stall every caller behind a full send buffer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach and authenticate to the OpenClaw gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `ws://` or `wss://` URL of the gateway (`OPENCLAW_GATEWAY_URL`).
    pub url: String,
    /// Shared gateway token (`OPENCLAW_TOKEN`); `auth` is omitted from `connect` when `None`.
    pub token: Option<SecretString>,
    /// The device key file (`<state dir>/device.key`); created with mode 0600 when missing.
    /// Pairing on remote gateways is keyed by this identity, so it must persist.
    pub device_key_path: PathBuf,
    /// `client.displayName`, shown in the gateway's client and device lists.
    pub client_display_name: String,
    /// `client.version`: the binary's version, for the gateway operator's benefit.
    pub client_version: String,
    /// Budget of one connection attempt: TCP, TLS, WebSocket upgrade and handshake.
    pub connect_timeout: Duration,
    /// Default timeout of [`GatewayClient::agent`] (including the wait for a connection).
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Cap of the exponential reconnect delay.
    pub backoff_max: Duration,
    /// Operator backend (default) or node.
    pub role: ClientRole,
    /// When set, `PAIRING_REQUIRED` is not fatal: the client tries again after this long, so a
    /// node comes up by itself once the operator approves the device (each attempt also keeps
    /// the gateway's pending request alive). `None` (the operator default): stop with the fix.
    pub pairing_retry: Option<Duration>,
}

impl GatewayConfig {
    /// A configuration with the reference client's defaults: 10 s connect, 30 s requests,
    /// backoff 1 s → 30 s, display name `clawbridge`.
    pub fn new(url: impl Into<String>, token: Option<SecretString>, device_key_path: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            token,
            device_key_path: device_key_path.into(),
            client_display_name: "clawbridge".to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            role: ClientRole::Operator,
            pairing_retry: None,
        }
    }

    /// This configuration as a node declaring `claims`: display name `clawbridge tools`, and
    /// `PAIRING_REQUIRED` retried every 30 s until the operator approves the device.
    #[must_use]
    pub fn into_node(mut self, claims: crate::frame::NodeClaims) -> Self {
        self.role = ClientRole::Node(claims);
        self.client_display_name = "clawbridge tools".to_owned();
        self.pairing_retry = Some(Duration::from_secs(30));
        self
    }
}

/// Where the connection task is, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionState {
    /// Opening the socket and doing the handshake.
    Connecting,
    /// hello-ok received; requests flow.
    Connected {
        /// `server.version`.
        server_version: String,
        /// Negotiated protocol.
        protocol: u32,
    },
    /// Waiting before the next attempt.
    Backoff {
        /// Consecutive failed attempts (reset by a successful hello).
        attempt: u32,
        /// Delay before the next attempt.
        retry_in: Duration,
        /// Why the last attempt or connection failed.
        last_error: String,
    },
    /// Stopped for good: a configuration problem that retrying cannot fix.
    Fatal(FatalError),
    /// Stopped because the shutdown token was cancelled.
    Stopped,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Connected { server_version, protocol } => {
                write!(f, "connected (OpenClaw {server_version}, protocol {protocol})")
            }
            Self::Backoff { attempt, retry_in, last_error } => {
                write!(f, "retrying in {} ms (attempt {attempt}): {last_error}", retry_in.as_millis())
            }
            Self::Fatal(e) => write!(f, "stopped: {e}"),
            Self::Stopped => f.write_str("stopped"),
        }
    }
}

/// One gateway event (every event frame except `connect.challenge`).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayEvent {
    /// Event name (`tick`, `agent`, `chat`, `shutdown`, …; unknown names are passed through).
    pub event: String,
    /// Event body (`null` when absent).
    pub payload: Value,
    /// Per-connection sequence number.
    pub seq: Option<u64>,
}

/// A request on its way to the socket task.
struct Outgoing {
    id: String,
    method: String,
    text: String,
    reply: oneshot::Sender<Result<Value, GatewayError>>,
}

type Pending = HashMap<String, oneshot::Sender<Result<Value, GatewayError>>>;

/// The live connection, as seen by callers.
#[derive(Clone)]
struct Link {
    tx: mpsc::Sender<Outgoing>,
    max_payload: usize,
}

struct Inner {
    config: GatewayConfig,
    device: DeviceIdentity,
    state: watch::Sender<ConnectionState>,
    /// Set (before the state turns `Connected`) while a connection is up.
    link: Mutex<Option<Link>>,
    /// hello-ok of the current or last connection.
    hello: Mutex<Option<Arc<HelloInfo>>>,
    events: broadcast::Sender<GatewayEvent>,
    /// Request ids are `cb-<n>`, unique per client across reconnects.
    next_id: AtomicU64,
}

/// Cheap, cloneable handle to one gateway connection task.
///
/// ```no_run
/// # async fn demo() -> Result<(), clawbridge_gateway::GatewayError> {
/// use std::time::Duration;
/// use clawbridge_gateway::{AgentRequest, GatewayClient, GatewayConfig};
/// use tokio_util::sync::CancellationToken;
///
/// let config = GatewayConfig::new("ws://127.0.0.1:18789", Some("token".into()), "/var/lib/clawbridge/device.key");
/// let client = GatewayClient::spawn(config, CancellationToken::new())?;
/// client.wait_connected(Duration::from_secs(30)).await?;
/// let req = AgentRequest::new("hello", "agent:main:kakao:direct:u1", "kakao:msg-1");
/// let outcome = client.run_agent(&req, Duration::from_secs(300)).await?;
/// println!("{:?}", outcome.reply);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GatewayClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayClient")
            .field("url", &self.inner.config.url)
            .field("device_id", &self.inner.device.id())
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

impl GatewayClient {
    /// Spawns the connection task, which connects, handshakes and reconnects until `shutdown`
    /// is cancelled or a fatal error occurs. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// Synchronously, so misconfiguration surfaces at start-up: an unusable URL
    /// ([`FatalError::InvalidUrl`]), a device key that cannot be loaded or created
    /// ([`GatewayError::DeviceKey`]), or no tokio runtime ([`GatewayError::Io`]).
    pub fn spawn(config: GatewayConfig, shutdown: CancellationToken) -> Result<GatewayClient, GatewayError> {
        validate_url(&config.url)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| GatewayError::Io("GatewayClient::spawn must be called inside a tokio runtime".to_owned()))?;
        let device = DeviceIdentity::load_or_create(&config.device_key_path)?;
        let (state, _) = watch::channel(ConnectionState::Connecting);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let inner = Arc::new(Inner {
            config,
            device,
            state,
            link: Mutex::new(None),
            hello: Mutex::new(None),
            events,
            next_id: AtomicU64::new(0),
        });
        metrics::gauge!("clawbridge_gateway_connected").set(0.0);
        runtime.spawn(Supervisor { inner: Arc::clone(&inner), shutdown }.run());
        Ok(GatewayClient { inner })
    }

    /// The connection state; `changed()` fires on every transition.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// hello-ok of the current connection, or of the last one while reconnecting.
    pub fn hello(&self) -> Option<HelloInfo> {
        lock(&self.inner.hello).as_deref().cloned()
    }

    /// This client's device id (to approve it with `openclaw devices approve`).
    pub fn device_id(&self) -> &str {
        self.inner.device.id()
    }

    /// The configuration the client was spawned with.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Waits until the client is connected and returns that connection's hello-ok.
    ///
    /// # Errors
    /// [`GatewayError::Fatal`] at once when the client stopped on a fatal error,
    /// [`GatewayError::Shutdown`] when it was shut down, [`GatewayError::Timeout`] otherwise.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<HelloInfo, GatewayError> {
        let deadline = deadline_after(timeout);
        let mut rx = self.inner.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                ConnectionState::Connected { .. } => {
                    if let Some(hello) = self.hello() {
                        return Ok(hello);
                    }
                }
                ConnectionState::Fatal(f) => return Err(GatewayError::Fatal(f)),
                ConnectionState::Stopped => return Err(GatewayError::Shutdown),
                ConnectionState::Connecting | ConnectionState::Backoff { .. } => {}
            }
            match timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(GatewayError::Timeout),
                Ok(Err(_)) => return Err(GatewayError::Shutdown),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Sends one request and waits for its response. Waits for a connection first; `timeout`
    /// bounds both. Frames larger than hello-ok's `maxPayload` are refused without sending.
    ///
    /// # Errors
    /// [`GatewayError::Rejected`] when the method failed (do not retry the same params),
    /// [`GatewayError::Unavailable`] when the gateway asked to retry later,
    /// [`GatewayError::Disconnected`] when the connection dropped in flight,
    /// [`GatewayError::Timeout`], [`GatewayError::PayloadTooLarge`], [`GatewayError::Fatal`],
    /// [`GatewayError::Shutdown`].
    pub async fn request(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, GatewayError> {
        let deadline = deadline_after(timeout);
        let link = self.wait_link(deadline).await?;
        let id = format!("cb-{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let text = frame::encode_request(&id, method, &params).map_err(|e| GatewayError::Protocol(e.to_string()))?;
        drop(params);
        if text.len() > link.max_payload {
            return Err(GatewayError::PayloadTooLarge {
                size_bytes: text.len() as u64,
                max_payload: link.max_payload as u64,
            });
        }
        let (reply, response) = oneshot::channel();
        let outgoing = Outgoing { id, method: method.to_owned(), text, reply };
        match timeout_at(deadline, link.tx.send(outgoing)).await {
            Err(_) => return Err(GatewayError::Timeout),
            Ok(Err(_)) => return Err(GatewayError::Disconnected),
            Ok(Ok(())) => {}
        }
        match timeout_at(deadline, response).await {
            Err(_) => Err(GatewayError::Timeout),
            Ok(Err(_)) => Err(GatewayError::Disconnected),
            Ok(Ok(result)) => result,
        }
    }

    /// Every event frame except `connect.challenge`, across reconnects. A subscriber that
    /// lags more than 1024 events behind misses the oldest ones (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    /// Starts an agent turn (`agent`), bounded by `config.request_timeout`.
    ///
    /// # Errors
    /// [`GatewayError::AttachmentTooLarge`] before sending when an attachment or the whole frame
    /// exceeds the hello-ok limits; otherwise as [`GatewayClient::request`].
    pub async fn agent(&self, req: &AgentRequest) -> Result<AgentAccepted, GatewayError> {
        self.agent_within(req, self.inner.config.request_timeout).await
    }

    async fn agent_within(&self, req: &AgentRequest, timeout: Duration) -> Result<AgentAccepted, GatewayError> {
        let deadline = deadline_after(timeout);
        if !req.attachments.is_empty() {
            let hello = self.wait_connected(timeout).await?;
            agent::check_attachments(&req.attachments, &hello)?;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match self.request("agent", req.to_params(), remaining).await {
            Ok(payload) => agent::parse_accepted(&payload),
            Err(GatewayError::PayloadTooLarge { size_bytes, max_payload }) if !req.attachments.is_empty() => {
                Err(GatewayError::AttachmentTooLarge {
                    file_name: None,
                    size_bytes,
                    limit_bytes: max_payload,
                    limit: "policy.maxPayload",
                })
            }
            Err(e) => Err(e),
        }
    }

    /// One `agent.wait` of at most `timeout` on the server side.
    ///
    /// # Errors
    /// As [`GatewayClient::request`].
    pub async fn agent_wait(&self, run_id: &str, timeout: Duration) -> Result<AgentWaitResult, GatewayError> {
        let params = json!({ "runId": run_id, "timeoutMs": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) });
        let payload = self.request("agent.wait", params, timeout.saturating_add(WAIT_GRACE)).await?;
        Ok(agent::parse_wait(&payload, run_id))
    }

    /// Runs a turn to completion: `agent`, then `agent.wait` (≤ 30 s each) until terminal or
    /// `deadline`.
    ///
    /// Survives reconnects: after a retryable failure it waits for the connection and
    /// re-issues `agent` with the same idempotency key (the gateway answers `in_flight` for a
    /// known key, so no second run starts), then waits again.
    ///
    /// A gateway that *crashed* mid-run (as opposed to a graceful restart, which drains runs)
    /// hands the orphaned session to its restart recovery, which re-runs the interrupted turn
    /// under a run id of its own. Until that recovery run ends, every run on the session fails
    /// with `SESSION_WORK_START_CHANGED` ("Retry."), and the gateway caches that failure for
    /// the idempotency key. So on that code this method backs off and starts the turn again
    /// under keys derived from the original (`<key>:resume-1`, `-2`, … at most
    /// [`MAX_FRESH_RUNS`]); a re-issued run that ends in another error gets one such fresh run.
    /// The derived keys are deterministic, so a bridge replaying the message after its own
    /// restart walks the same keys and finds the same runs. The recovery run's own reply is not
    /// returned (it is in the session transcript); the model sees the message a second time.
    ///
    /// Returns the outcome, whose `reply` is the visible reply text or `None` for a silent
    /// run; a run that ended in error is `Ok` with `status == "error"`.
    ///
    /// # Errors
    /// [`GatewayError::Rejected`] when the gateway refused the params (permanent),
    /// [`GatewayError::Timeout`] when `deadline` elapsed, [`GatewayError::Fatal`],
    /// [`GatewayError::Shutdown`], [`GatewayError::AttachmentTooLarge`].
    pub async fn run_agent(&self, req: &AgentRequest, deadline: Duration) -> Result<AgentOutcome, GatewayError> {
        let deadline = deadline_after(deadline);
        let mut current = Cow::Borrowed(req);
        let mut run_id: Option<String> = None;
        // Whether the current key's run may have been interrupted (a retryable failure after
        // `agent` may have reached the gateway).
        let mut resubmitted = false;
        let mut fresh_runs: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GatewayError::Timeout);
            }
            let id = match &run_id {
                Some(id) => id.clone(),
                None => match self.agent_within(&current, remaining.min(self.inner.config.request_timeout)).await {
                    Ok(accepted) => {
                        tracing::debug!(run_id = %accepted.run_id, status = %accepted.status, "agent run accepted");
                        run_id = Some(accepted.run_id.clone());
                        accepted.run_id
                    }
                    Err(e) if fresh_runs < MAX_FRESH_RUNS && session_work_changed(&e) => {
                        tracing::warn!(error = %e, "the gateway's restart recovery owns the session; starting the turn again later");
                        fresh_runs += 1;
                        self.pause_for_recovery(fresh_runs, deadline).await?;
                        current = Cow::Owned(resumed_request(req, fresh_runs));
                        resubmitted = false;
                        continue;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(error = %e, "agent request failed; retrying with the same idempotency key");
                        resubmitted = true;
                        self.pause_before_retry(&e, deadline).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            match timeout_at(deadline, self.agent_wait(&id, remaining.min(MAX_WAIT_CHUNK))).await {
                Err(_) => return Err(GatewayError::Timeout),
                Ok(Ok(AgentWaitResult::Terminal(outcome)))
                    if outcome.status == "error"
                        && fresh_runs < MAX_FRESH_RUNS
                        && (outcome.error_code() == Some(SESSION_WORK_START_CHANGED)
                            || (resubmitted && fresh_runs == 0)) =>
                {
                    tracing::warn!(run_id = %id, error = ?outcome.error,
                        "an interrupted agent run failed after a gateway restart; starting the turn again");
                    fresh_runs += 1;
                    if outcome.error_code() == Some(SESSION_WORK_START_CHANGED) {
                        self.pause_for_recovery(fresh_runs, deadline).await?;
                    }
                    current = Cow::Owned(resumed_request(req, fresh_runs));
                    run_id = None;
                    resubmitted = false;
                }
                Ok(Ok(AgentWaitResult::Terminal(outcome))) => return Ok(outcome),
                Ok(Ok(AgentWaitResult::Pending)) => {}
                Ok(Err(e)) if e.is_retryable() => {
                    tracing::debug!(run_id = %id, error = %e, "agent.wait failed; re-issuing agent after reconnect");
                    run_id = None;
                    resubmitted = true;
                    self.pause_before_retry(&e, deadline).await?;
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Backs off while the gateway's restart recovery runs the interrupted turn.
    async fn pause_for_recovery(&self, attempt: u32, deadline: Instant) -> Result<(), GatewayError> {
        let config = &self.inner.config;
        let policy = reconnect_policy(config.backoff_initial.saturating_mul(2), config.backoff_max);
        let delay = policy.delay(attempt, jitter());
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining <= delay {
            return Err(GatewayError::Timeout);
        }
        sleep(delay).await;
        Ok(())
    }

    /// After a retryable failure: honour the server's pause, or wait for a connection.
    async fn pause_before_retry(&self, err: &GatewayError, deadline: Instant) -> Result<(), GatewayError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(GatewayError::Timeout);
        }
        if let GatewayError::Unavailable { retry_after, .. } = err {
            sleep(retry_after.unwrap_or(self.inner.config.backoff_initial).min(remaining)).await;
            return Ok(());
        }
        self.wait_connected(remaining).await.map(drop)
    }

    /// Waits until a connection is up (or the client stopped) and returns it.
    async fn wait_link(&self, deadline: Instant) -> Result<Link, GatewayError> {
        let mut rx = self.inner.state.subscribe();
        loop {
            // Mark the state seen before looking at the link: the task sets the link before it
            // publishes `Connected`, so a link set after this check still wakes `changed()`.
            let state = rx.borrow_and_update().clone();
            if let Some(link) = lock(&self.inner.link).clone() {
                return Ok(link);
            }
            match state {
                ConnectionState::Fatal(f) => return Err(GatewayError::Fatal(f)),
                ConnectionState::Stopped => return Err(GatewayError::Shutdown),
                _ => {}
            }
            match timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(GatewayError::Timeout),
                Ok(Err(_)) => return Err(GatewayError::Shutdown),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// One-shot: connect, handshake, return hello-ok, close. For `clawbridge doctor` and readiness
/// probes; no retries.
///
/// # Errors
/// The classified failure of the single attempt: [`GatewayError::Fatal`] for configuration
/// problems, [`GatewayError::Unavailable`], [`GatewayError::Io`] or [`GatewayError::Timeout`]
/// when the gateway is not (yet) reachable, [`GatewayError::DeviceKey`].
pub async fn probe(config: &GatewayConfig) -> Result<HelloInfo, GatewayError> {
    validate_url(&config.url)?;
    let device = DeviceIdentity::load_or_create(&config.device_key_path)?;
    let ids = AtomicU64::new(0);
    let (mut ws, hello) = connect_once(config, &device, &ids).await?;
    close_ws(&mut ws, CloseCode::Normal, "probe complete").await;
    Ok(hello)
}

/// The connection task.
struct Supervisor {
    inner: Arc<Inner>,
    shutdown: CancellationToken,
}

/// Why a live connection ended.
enum End {
    Shutdown,
    Lost { retry_after: Option<Duration>, reason: String },
}

/// What a finished connection leaves behind: requests that will never get an answer.
struct Closed {
    end: End,
    pending: Pending,
    queued: mpsc::Receiver<Outgoing>,
}

impl Supervisor {
    async fn run(self) {
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        let mut ever_connected = false;
        loop {
            if ever_connected {
                metrics::counter!("clawbridge_gateway_reconnects_total").increment(1);
            }
            self.set_state(ConnectionState::Connecting);
            let result = tokio::select! {
                () = self.shutdown.cancelled() => break,
                r = connect_once(config, &self.inner.device, &self.inner.next_id) => r,
            };
            let (retry_hint, last_error) = match result {
                Ok((ws, hello)) => {
                    attempt = 0;
                    ever_connected = true;
                    let closed = self.serve(ws, hello).await;
                    match closed.end {
                        End::Shutdown => {
                            self.set_state(ConnectionState::Stopped);
                            fail_all(closed.pending, closed.queued, &GatewayError::Shutdown);
                            return;
                        }
                        End::Lost { retry_after, reason } => {
                            // Publish the new state before failing the requests, so callers
                            // that retry see "not connected" and wait for the next connection.
                            let (attempt_now, delay) = self.next_delay(&mut attempt, retry_after);
                            self.set_state(ConnectionState::Backoff {
                                attempt: attempt_now,
                                retry_in: delay,
                                last_error: reason,
                            });
                            fail_all(closed.pending, closed.queued, &GatewayError::Disconnected);
                            if self.sleep_or_shutdown(delay).await {
                                break;
                            }
                            continue;
                        }
                    }
                }
                Err(GatewayError::Fatal(fatal @ FatalError::PairingRequired { .. }))
                    if config.pairing_retry.is_some() =>
                {
                    let delay = config.pairing_retry.unwrap_or(config.backoff_max);
                    tracing::warn!(gateway = %config.url, retry_in_ms = delay.as_millis() as u64, "{fatal}");
                    attempt = attempt.saturating_add(1);
                    self.set_state_quiet(ConnectionState::Backoff {
                        attempt,
                        retry_in: delay,
                        last_error: fatal.to_string(),
                    });
                    if self.sleep_or_shutdown(delay).await {
                        break;
                    }
                    continue;
                }
                Err(GatewayError::Fatal(fatal)) => {
                    tracing::error!(gateway = %config.url, "OpenClaw gateway connection stopped: {fatal}");
                    metrics::gauge!("clawbridge_gateway_connected").set(0.0);
                    self.set_state(ConnectionState::Fatal(fatal));
                    return;
                }
                Err(e) => (e.retry_after(), e.to_string()),
            };
            let (attempt_now, delay) = self.next_delay(&mut attempt, retry_hint);
            self.set_state(ConnectionState::Backoff { attempt: attempt_now, retry_in: delay, last_error });
            if self.sleep_or_shutdown(delay).await {
                break;
            }
        }
        metrics::gauge!("clawbridge_gateway_connected").set(0.0);
        self.set_state(ConnectionState::Stopped);
    }

    fn next_delay(&self, attempt: &mut u32, hint: Option<Duration>) -> (u32, Duration) {
        *attempt = attempt.saturating_add(1);
        let config = &self.inner.config;
        let policy = reconnect_policy(config.backoff_initial, config.backoff_max);
        (*attempt, policy.delay_after(*attempt, hint, jitter()))
    }

    /// Returns true when shutdown fired during the sleep.
    async fn sleep_or_shutdown(&self, delay: Duration) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = sleep(delay) => false,
        }
    }

    /// Publishes a state without the per-state log line (the caller logged it).
    fn set_state_quiet(&self, state: ConnectionState) {
        self.inner.state.send_replace(state);
    }

    fn set_state(&self, state: ConnectionState) {
        match &state {
            ConnectionState::Connecting => {
                tracing::info!(gateway = %self.inner.config.url, "connecting to the OpenClaw gateway")
            }
            ConnectionState::Connected { server_version, protocol } => tracing::info!(
                gateway = %self.inner.config.url, server_version = %server_version, protocol,
                "connected to the OpenClaw gateway"
            ),
            ConnectionState::Backoff { attempt, retry_in, last_error } => tracing::warn!(
                gateway = %self.inner.config.url, attempt, retry_in_ms = retry_in.as_millis() as u64,
                error = %last_error, "OpenClaw gateway connection failed; retrying"
            ),
            // Logged once, with the fix, where the fatal error is detected.
            ConnectionState::Fatal(_) => {}
            ConnectionState::Stopped => tracing::info!("OpenClaw gateway client stopped"),
        }
        self.inner.state.send_replace(state);
    }

    /// Runs one established connection until it ends.
    async fn serve(&self, mut ws: Ws, hello: HelloInfo) -> Closed {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(COMMAND_CAPACITY);
        let hello = Arc::new(hello);
        *lock(&self.inner.link) = Some(Link { tx, max_payload: hello.max_payload });
        *lock(&self.inner.hello) = Some(Arc::clone(&hello));
        metrics::gauge!("clawbridge_gateway_connected").set(1.0);
        self.set_state(ConnectionState::Connected {
            server_version: hello.server_version.clone(),
            protocol: hello.protocol,
        });

        let tick_timeout = hello.tick_interval.saturating_mul(2).min(MAX_TICK_TIMEOUT);
        let mut pending = Pending::new();
        let mut last_frame = Instant::now();
        let mut restart_hint: Option<Duration> = None;
        let end = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    close_ws(&mut ws, CloseCode::Normal, "client shutting down").await;
                    break End::Shutdown;
                }
                Some(out) = rx.recv() => {
                    if out.reply.is_closed() {
                        continue; // the caller gave up before we got to it
                    }
                    let Outgoing { id, method, text, reply } = out;
                    tracing::debug!(id = %id, method = %method, bytes = text.len(), "sending gateway request");
                    let failure = match timeout(WRITE_TIMEOUT, ws.send(Message::text(text))).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(ws_error(e).to_string()),
                        Err(_) => Some(format!("the socket accepted nothing for {} s", WRITE_TIMEOUT.as_secs())),
                    };
                    if let Some(why) = failure {
                        let _ = reply.send(Err(GatewayError::Disconnected));
                        break End::Lost { retry_after: restart_hint, reason: format!("sending {method} failed: {why}") };
                    }
                    pending.retain(|_, waiter| !waiter.is_closed());
                    pending.insert(id, reply);
                }
                msg = ws.next() => {
                    last_frame = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => self.on_text(&text, &mut pending, &mut restart_hint),
                        Some(Ok(Message::Close(frame))) => {
                            // Let tungstenite complete the close handshake (best effort).
                            let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                            break End::Lost { retry_after: restart_hint, reason: describe_close(frame.as_ref(), "") };
                        }
                        // Pings are answered by tungstenite while we poll; pongs and binary
                        // frames only count as liveness.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break End::Lost { retry_after: restart_hint, reason: ws_error(e).to_string() },
                        None => break End::Lost { retry_after: restart_hint, reason: "the gateway closed the connection".to_owned() },
                    }
                }
                () = sleep_until(last_frame + tick_timeout) => {
                    tracing::warn!(silent_ms = tick_timeout.as_millis() as u64, "no frame from the OpenClaw gateway; closing with 4000 and reconnecting");
                    close_ws(&mut ws, CloseCode::from(TICK_TIMEOUT_CLOSE_CODE), "tick timeout").await;
                    break End::Lost {
                        retry_after: None,
                        reason: format!("no tick from the gateway for {} ms", tick_timeout.as_millis()),
                    };
                }
            }
        };
        *lock(&self.inner.link) = None;
        metrics::gauge!("clawbridge_gateway_connected").set(0.0);
        rx.close();
        Closed { end, pending, queued: rx }
    }

    fn on_text(&self, text: &str, pending: &mut Pending, restart_hint: &mut Option<Duration>) {
        match frame::parse(text) {
            Ok(Frame::Response(res)) => match pending.remove(&res.id) {
                Some(waiter) => {
                    let result = if res.ok {
                        Ok(res.payload.unwrap_or(Value::Null))
                    } else {
                        Err(classify_method_error(&res.error.unwrap_or_default()))
                    };
                    let _ = waiter.send(result);
                }
                None => {
                    tracing::debug!(id = %res.id, "response to an unknown or abandoned request")
                }
            },
            Ok(Frame::Event(ev)) => {
                if ev.event == CHALLENGE_EVENT {
                    return;
                }
                if ev.event == "shutdown" {
                    *restart_hint = ev
                        .payload
                        .as_ref()
                        .and_then(|p| p.get("restartExpectedMs"))
                        .and_then(frame::value_as_u64)
                        .map(Duration::from_millis);
                    tracing::info!(restart_expected_ms = ?restart_hint.map(|d| d.as_millis()), "the OpenClaw gateway announced a shutdown");
                }
                // No subscribers is fine.
                let _ = self.inner.events.send(GatewayEvent {
                    event: ev.event,
                    payload: ev.payload.unwrap_or(Value::Null),
                    seq: ev.seq,
                });
            }
            Ok(Frame::Request(req)) => {
                tracing::debug!(method = %req.method, "ignoring a request from the gateway")
            }
            Err(e) => tracing::warn!(error = %e, "ignoring an unparsable gateway frame"),
        }
    }
}

/// Whether the gateway refused to (re)start a run because the session changed under it, as it
/// does while its restart recovery owns a session orphaned by a crash.
fn session_work_changed(err: &GatewayError) -> bool {
    match err {
        GatewayError::Unavailable { message, .. } | GatewayError::Rejected { message, .. } => {
            gateway_error_code(message) == Some(SESSION_WORK_START_CHANGED)
        }
        _ => false,
    }
}

/// The request under the `n`th derived idempotency key.
fn resumed_request(req: &AgentRequest, n: u32) -> AgentRequest {
    AgentRequest { idempotency_key: format!("{}:resume-{n}", req.idempotency_key), ..req.clone() }
}

fn fail_all(pending: Pending, mut queued: mpsc::Receiver<Outgoing>, err: &GatewayError) {
    for (_, waiter) in pending {
        let _ = waiter.send(Err(err.clone()));
    }
    while let Ok(out) = queued.try_recv() {
        let _ = out.reply.send(Err(err.clone()));
    }
}

/// One connection attempt within `connect_timeout`.
async fn connect_once(
    config: &GatewayConfig,
    device: &DeviceIdentity,
    ids: &AtomicU64,
) -> Result<(Ws, HelloInfo), GatewayError> {
    timeout(config.connect_timeout, connect_and_handshake(config, device, ids))
        .await
        .unwrap_or(Err(GatewayError::Timeout))
}

async fn connect_and_handshake(
    config: &GatewayConfig,
    device: &DeviceIdentity,
    ids: &AtomicU64,
) -> Result<(Ws, HelloInfo), GatewayError> {
    if validate_url(&config.url)? == Scheme::Wss {
        ensure_crypto_provider();
    }
    let ws_config = WebSocketConfig::default();
    let (mut ws, _response) = tokio_tungstenite::connect_async_with_config(config.url.as_str(), Some(ws_config), true)
        .await
        .map_err(ws_error)?;

    let challenge = loop {
        if let Frame::Event(ev) = next_frame(&mut ws, "before the connect challenge").await?
            && ev.event == CHALLENGE_EVENT
        {
            break frame::parse_challenge(ev.payload.as_ref()).map_err(|e| GatewayError::Protocol(e.to_string()))?;
        }
    };

    let id = format!("cb-{}", ids.fetch_add(1, Ordering::Relaxed) + 1);
    let token = config.token.as_ref().map(|t| t.expose_secret());
    let platform = std::env::consts::OS;
    let identity = config.role.identity(platform);
    let fields = SignatureFields {
        client_id: identity.client_id.to_owned(),
        client_mode: identity.client_mode.to_owned(),
        role: identity.role.to_owned(),
        scopes: identity.scopes.clone(),
        signed_at_ms: u64::try_from(now_ms()).unwrap_or(0),
        token: token.unwrap_or_default().to_owned(),
        nonce: challenge.nonce.clone(),
        platform: platform.to_owned(),
        device_family: identity.device_family.clone(),
    };
    let proof = DeviceProof {
        id: device.id().to_owned(),
        public_key: device.public_key_b64(),
        signature: device.sign_v3(&fields),
        signed_at: fields.signed_at_ms,
        nonce: challenge.nonce,
    };
    let params = frame::connect_params(&ConnectInfo {
        display_name: &config.client_display_name,
        version: &config.client_version,
        platform,
        token,
        device: &proof,
        identity: &identity,
    });
    let text = frame::encode_request(&id, "connect", &params).map_err(|e| GatewayError::Protocol(e.to_string()))?;
    drop(params);
    timeout(WRITE_TIMEOUT, ws.send(Message::text(text))).await.map_err(|_| GatewayError::Timeout)?.map_err(ws_error)?;

    loop {
        let Frame::Response(res) = next_frame(&mut ws, "during the handshake").await? else {
            continue;
        };
        if res.id != id {
            continue;
        }
        if !res.ok {
            return Err(classify_connect_error(&res.error.unwrap_or_default(), device.id()));
        }
        let hello = frame::parse_hello(&res.payload.unwrap_or(Value::Null))
            .map_err(|e| GatewayError::Protocol(e.to_string()))?;
        if hello.protocol != PROTOCOL_VERSION {
            return Err(FatalError::ProtocolMismatch { expected: Some(hello.protocol) }.into());
        }
        return Ok((ws, hello));
    }
}

/// The next parsed frame during the handshake; a close or socket error ends the attempt.
async fn next_frame(ws: &mut Ws, phase: &str) -> Result<Frame, GatewayError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return frame::parse(&text).map_err(|e| GatewayError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Close(frame))) => {
                let message = describe_close(frame.as_ref(), phase);
                let code = frame.as_ref().map(|f| u16::from(f.code));
                return Err(match code {
                    // 1012 service restart, 1013 try again later: the gateway is coming back.
                    Some(1012 | 1013) => GatewayError::Unavailable { retry_after: None, message },
                    _ => GatewayError::Io(message),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ws_error(e)),
            None => {
                return Err(GatewayError::Io(format!("the gateway closed the connection {phase}")));
            }
        }
    }
}

fn describe_close(frame: Option<&CloseFrame>, phase: &str) -> String {
    let phase = if phase.is_empty() { String::new() } else { format!(" {phase}") };
    match frame {
        Some(f) if !f.reason.is_empty() => {
            format!("the gateway closed the connection{phase} ({} {})", u16::from(f.code), f.reason.as_str())
        }
        Some(f) => format!("the gateway closed the connection{phase} ({})", u16::from(f.code)),
        None => format!("the gateway closed the connection{phase}"),
    }
}

async fn close_ws(ws: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

fn ws_error(e: tungstenite::Error) -> GatewayError {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => GatewayError::Disconnected,
        E::Io(io) => GatewayError::Io(io.to_string()),
        E::Tls(tls) => GatewayError::Io(format!("TLS: {tls}")),
        E::Http(response) => {
            GatewayError::Io(format!("the gateway refused the WebSocket upgrade with HTTP {}", response.status()))
        }
        E::Capacity(c) => GatewayError::Protocol(c.to_string()),
        E::Protocol(p) => GatewayError::Io(format!("WebSocket protocol: {p}")),
        other => GatewayError::Io(other.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ws,
    Wss,
}

fn validate_url(url: &str) -> Result<Scheme, GatewayError> {
    let invalid = |message: &str| FatalError::InvalidUrl { url: url.to_owned(), message: message.to_owned() };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("ws") => Scheme::Ws,
        Some("wss") => Scheme::Wss,
        Some(_) => return Err(invalid("the scheme must be ws or wss").into()),
        None => return Err(invalid("no scheme").into()),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host").into());
    }
    Ok(scheme)
}

/// tokio-tungstenite builds its TLS config with rustls' process-default provider and panics
/// when none can be chosen. The binary installs aws-lc-rs at start-up; this covers library
/// users (tests, tools) that did not.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first, which is just as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The reconnect schedule on core's one retry policy: capped exponential backoff with equal
/// jitter (a delay in [base/2, base], base = min(max, initial · 2^(attempt−1))), never giving up,
/// and never less than the server's hint (itself capped at [`MAX_RETRY_HINT`]).
fn reconnect_policy(initial: Duration, max: Duration) -> RetryPolicy {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    RetryPolicy {
        max_attempts: u32::MAX,
        initial_delay_ms: millis(initial),
        max_delay_ms: millis(max),
        backoff_multiplier: 2.0,
        max_retry_after_ms: millis(MAX_RETRY_HINT),
    }
}

fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// Locks a mutex, ignoring poisoning: the guarded values stay consistent whatever panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let policy = reconnect_policy(Duration::from_secs(1), Duration::from_secs(30));
        for attempt in 1..40 {
            for jitter in [0.0, 1e-9, 1.0 / 3.0, 0.999_999, jitter()] {
                let d = policy.delay_after(attempt, None, jitter);
                let base = Duration::from_secs(1)
                    .saturating_mul(1 << attempt.saturating_sub(1).min(20))
                    .min(policy.max_delay());
                assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?} vs base {base:?}");
            }
        }
        assert_eq!(policy.delay_after(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(policy.delay_after(10, None, 0.0), Duration::from_secs(15));
    }

    #[test]
    fn backoff_honours_and_bounds_the_server_hint() {
        let policy = reconnect_policy(Duration::from_millis(10), Duration::from_millis(50));
        assert_eq!(policy.delay_after(1, Some(Duration::from_secs(2)), 0.0), Duration::from_secs(2));
        assert_eq!(policy.delay_after(1, Some(Duration::from_secs(86_400)), 0.0), MAX_RETRY_HINT);
        assert_eq!(policy.delay_after(1, Some(Duration::ZERO), 0.0), Duration::from_millis(5));
    }

    #[test]
    fn urls_are_validated() {
        assert_eq!(validate_url("ws://127.0.0.1:18789").unwrap(), Scheme::Ws);
        assert_eq!(validate_url("wss://gw.example.com/ws").unwrap(), Scheme::Wss);
        for bad in ["http://127.0.0.1:18789", "127.0.0.1:18789", "", "ws://", "not a url"] {
            let err = validate_url(bad).unwrap_err();
            assert!(matches!(err, GatewayError::Fatal(FatalError::InvalidUrl { .. })), "{bad}: {err}");
            assert!(err.to_string().contains("OPENCLAW_GATEWAY_URL"));
        }
    }

    #[test]
    fn client_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<GatewayClient>();
    }

    #[test]
    fn config_debug_hides_the_token() {
        let c = GatewayConfig::new("ws://x:1", Some("super-secret".into()), "/tmp/k");
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
