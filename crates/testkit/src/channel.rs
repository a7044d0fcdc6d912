//! A channel that records what the bridge sends: the stand-in for WhatsApp or KakaoTalk in
//! pipeline tests, end-to-end tests and benchmarks.

use async_trait::async_trait;
use clawbridge_channel::plugin::{ChannelPlugin, ChannelSettings, Check, ConnectorContext, Env, HostInfo};
use clawbridge_channel::{Account, Bridge, Capabilities, Connector, RouteContext};
use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use clawbridge_core::{
    AccountId, ChannelId, IdempotencyKey, InboundMessage, InboundOutcome, OutboundMessage, Receipt, SendError,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One message the bridge sent, with the moment `send` was called.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The message.
    pub message: OutboundMessage,
    /// When `send` received it.
    pub at: Instant,
    /// The outbox row's idempotency key `send` was given.
    pub key: IdempotencyKey,
}

/// What the recording channel saw; shared with the test.
#[derive(Default)]
pub struct Recorder {
    sent: Mutex<Vec<Sent>>,
    failures: Mutex<VecDeque<SendError>>,
    signal: Notify,
    bridge: Mutex<Option<Arc<dyn Bridge>>>,
    started: Mutex<Vec<(String, Instant)>>,
    finished: Mutex<Vec<(String, String, usize)>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("sent", &self.sent.lock().map(|s| s.len()).unwrap_or(0)).finish()
    }
}

impl Recorder {
    /// The bridge handle the daemon gave the account (to inject inbound messages).
    ///
    /// # Panics
    /// Before the daemon started the account.
    pub fn bridge(&self) -> Arc<dyn Bridge> {
        self.bridge.lock().expect("lock").clone().expect("the daemon has started the account")
    }

    fn keep_bridge(&self, bridge: Arc<dyn Bridge>) {
        *self.bridge.lock().expect("lock") = Some(bridge);
    }

    /// Messages sent so far, in order.
    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().expect("lock").iter().map(|s| s.message.clone()).collect()
    }

    /// Messages sent so far with their send times.
    pub fn sent_with_times(&self) -> Vec<Sent> {
        self.sent.lock().expect("lock").clone()
    }

    /// The next sends fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SendError>) {
        self.failures.lock().expect("lock").extend(errors);
    }

    /// Ids of the inbound messages the agent started working on.
    pub fn started(&self) -> Vec<String> {
        self.started.lock().expect("lock").iter().map(|(id, _)| id.clone()).collect()
    }

    /// Inbound messages the pipeline finished: (message id, outcome, number of replies).
    pub fn finished(&self) -> Vec<(String, String, usize)> {
        self.finished.lock().expect("lock").clone()
    }

    /// Ids of the inbound messages the agent started working on, with when it started.
    pub fn started_with_times(&self) -> Vec<(String, Instant)> {
        self.started.lock().expect("lock").clone()
    }

    /// Waits until at least `n` messages were sent; panics with what was sent at the deadline.
    ///
    /// # Panics
    /// When fewer than `n` were sent by the deadline.
    pub async fn wait_sent(&self, n: usize, deadline: Duration) -> Vec<OutboundMessage> {
        let wait = async {
            loop {
                let notified = self.signal.notified();
                if self.sent.lock().expect("lock").len() >= n {
                    return;
                }
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            panic!("expected {n} sent messages within {deadline:?}, got {:#?}", self.sent());
        }
        self.sent()
    }
}

/// The recording channel's one account.
#[derive(Debug)]
pub struct RecordingAccount {
    recorder: Arc<Recorder>,
    policy: AccessPolicy,
}

#[async_trait]
impl Account for RecordingAccount {
    fn id(&self) -> AccountId {
        AccountId::default_account()
    }

    fn access_policy(&self) -> AccessPolicy {
        self.policy.clone()
    }

    async fn send(&self, msg: &OutboundMessage, key: &IdempotencyKey) -> Result<Receipt, SendError> {
        let at = Instant::now();
        if let Some(failure) = self.recorder.failures.lock().expect("lock").pop_front() {
            return Err(failure);
        }
        let mut sent = self.recorder.sent.lock().expect("lock");
        sent.push(Sent { message: msg.clone(), at, key: key.clone() });
        let id = format!("rec-out-{}", sent.len());
        drop(sent);
        self.recorder.signal.notify_waiters();
        Ok(Receipt { platform_message_id: Some(id) })
    }

    async fn agent_started(&self, msg: &InboundMessage) {
        self.recorder.started.lock().expect("lock").push((msg.message_id.to_string(), Instant::now()));
    }

    async fn inbound_finished(&self, msg: &InboundMessage, outcome: InboundOutcome, replies: usize) {
        self.recorder.finished.lock().expect("lock").push((msg.message_id.to_string(), outcome.to_string(), replies));
    }
}

/// A channel (id `test` by default) with one recording account.
#[derive(Debug)]
pub struct RecordingChannel {
    id: ChannelId,
    account: Arc<RecordingAccount>,
    max_text_chars: usize,
}

impl RecordingChannel {
    /// A channel with the given DM policy and text limit; returns it and its recorder.
    pub fn new(id: &str, policy: AccessPolicy, max_text_chars: usize) -> (Arc<Self>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Self::with_recorder(id, policy, max_text_chars, recorder.clone()), recorder)
    }

    /// A channel that records into an existing `recorder`.
    pub fn with_recorder(id: &str, policy: AccessPolicy, max_text_chars: usize, recorder: Arc<Recorder>) -> Arc<Self> {
        let account = Arc::new(RecordingAccount { recorder, policy });
        Arc::new(Self { id: ChannelId::new(id), account, max_text_chars })
    }

    /// DM policy `open` with `*`: everyone reaches the agent.
    ///
    /// # Panics
    /// Never: the combination is valid.
    pub fn open_policy() -> AccessPolicy {
        AccessPolicy::new(DmPolicy::Open, AllowFrom::parse_list("*")).expect("open with * is valid")
    }
}

impl Connector for RecordingChannel {
    fn id(&self) -> ChannelId {
        self.id.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { max_text_chars: self.max_text_chars, media: Vec::new(), replies: true, typing: false }
    }

    fn accounts(&self) -> Vec<Arc<dyn Account>> {
        vec![self.account.clone()]
    }

    /// No routes: keeps the bridge handle, so tests can inject inbound messages (a channel built
    /// beforehand and handed to the daemon gets it here, the plugin's at construction).
    fn routes(&self, ctx: &RouteContext) -> Option<axum::Router> {
        self.account.recorder.keep_bridge(ctx.bridge.clone());
        None
    }
}

/// The recording channel as a plugin: how a channel crate registers with the binary, in the
/// smallest form. It is configured by a `[test]` table (`max_text_chars`, `dm_policy`,
/// `allow_from`) and records into the plugin's [`Recorder`].
#[derive(Debug)]
pub struct RecordingPlugin {
    recorder: Arc<Recorder>,
}

impl RecordingPlugin {
    /// A plugin that lives for the rest of the test process (plugins are `'static`, like the
    /// binary's), and its recorder.
    pub fn leak() -> (&'static Self, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Box::leak(Box::new(Self { recorder: recorder.clone() })), recorder)
    }
}

/// The `[test]` settings.
#[derive(Debug)]
pub struct RecordingSettings {
    recorder: Arc<Recorder>,
    policy: AccessPolicy,
    max_text_chars: usize,
}

impl ChannelPlugin for RecordingPlugin {
    fn id(&self) -> &'static str {
        "test"
    }

    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        let Some(table) = table else { return Ok(None) };
        let text = |key: &str| table.get(key).and_then(toml::Value::as_str).map(str::to_owned);
        let max_text_chars = match table.get("max_text_chars") {
            None => 4096,
            Some(value) => value
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("[test] max_text_chars is {value:?}: use a positive number of characters"))?,
        };
        let dm_policy = env("TEST_DM_POLICY").or_else(|| text("dm_policy")).unwrap_or_else(|| "open".to_owned());
        let dm_policy: DmPolicy = dm_policy.parse().map_err(|e| format!("[test] dm_policy: {e}"))?;
        let allow_from = AllowFrom::parse_list(&text("allow_from").unwrap_or_else(|| "*".to_owned()));
        let policy = AccessPolicy::new(dm_policy, allow_from).map_err(|e| format!("[test]: {e}"))?;
        Ok(Some(Arc::new(RecordingSettings { recorder: self.recorder.clone(), policy, max_text_chars })))
    }
}

#[async_trait]
impl ChannelSettings for RecordingSettings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// Built on the daemon's bridge, which the recorder keeps for the test.
    fn connector(&self, ctx: &ConnectorContext) -> Result<Option<Arc<dyn Connector>>, String> {
        self.recorder.keep_bridge(ctx.bridge.clone());
        let channel =
            RecordingChannel::with_recorder("test", self.policy.clone(), self.max_text_chars, self.recorder.clone());
        Ok(Some(channel))
    }

    async fn doctor(&self, host: &HostInfo) -> Vec<Check> {
        vec![Check::ok("test channel", format!("records what the bridge on {} sends", host.listen))]
    }
}
