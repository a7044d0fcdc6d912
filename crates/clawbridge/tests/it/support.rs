//! A test channel and helpers to start a daemon around it.

use async_trait::async_trait;
use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_channel::{Account, AccountContext, Bridge, Capabilities, Connector};
use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use clawbridge_core::{AccountId, ChannelId, InboundMessage, OutboundMessage, Receipt, SendError};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What the test channel's account was asked to send, and how it answers.
#[derive(Default)]
pub struct TestAccountState {
    pub sent: Mutex<Vec<OutboundMessage>>,
    /// Failures returned by the next sends, front first.
    pub failures: Mutex<VecDeque<SendError>>,
    pub sent_signal: Notify,
    pub bridge: Mutex<Option<Arc<dyn Bridge>>>,
    pub started: Mutex<Vec<String>>,
}

pub struct TestAccount {
    pub state: Arc<TestAccountState>,
    pub policy: AccessPolicy,
}

#[async_trait]
impl Account for TestAccount {
    fn id(&self) -> AccountId {
        AccountId::default_account()
    }

    fn access_policy(&self) -> AccessPolicy {
        self.policy.clone()
    }

    fn routes(&self, ctx: &AccountContext) -> Option<axum::Router> {
        *self.state.bridge.lock().unwrap() = Some(ctx.bridge.clone());
        None
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Receipt, SendError> {
        if let Some(failure) = self.state.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        let mut sent = self.state.sent.lock().unwrap();
        sent.push(msg.clone());
        let id = format!("test-out-{}", sent.len());
        drop(sent);
        self.state.sent_signal.notify_waiters();
        Ok(Receipt {
            platform_message_id: Some(id),
        })
    }

    async fn agent_started(&self, msg: &InboundMessage) {
        self.state
            .started
            .lock()
            .unwrap()
            .push(msg.message_id.to_string());
    }
}

pub struct TestChannel {
    pub account: Arc<TestAccount>,
    pub max_text_chars: usize,
}

impl Connector for TestChannel {
    fn id(&self) -> ChannelId {
        ChannelId::new("test")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_text_chars: self.max_text_chars,
            media: Vec::new(),
            replies: true,
            typing: false,
        }
    }

    fn accounts(&self) -> Vec<Arc<dyn Account>> {
        vec![self.account.clone()]
    }
}

/// A daemon around one test channel account.
pub struct Harness {
    pub daemon: Option<DaemonHandle>,
    pub state: Arc<TestAccountState>,
    pub config: Config,
}

pub fn config(state_dir: &Path, gateway_url: &str, token: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("HOME".to_owned(), state_dir.display().to_string()),
        (
            "CLAWBRIDGE_STATE_DIR".to_owned(),
            state_dir.display().to_string(),
        ),
        ("CLAWBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL".to_owned(), gateway_url.to_owned()),
        ("OPENCLAW_TOKEN".to_owned(), token.to_owned()),
        ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS".to_owned(), "10".to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("test config is valid")
}

pub fn open_policy() -> AccessPolicy {
    AccessPolicy::new(DmPolicy::Open, AllowFrom::parse_list("*")).unwrap()
}

impl Harness {
    pub async fn start(config: Config, policy: AccessPolicy, max_text_chars: usize) -> Self {
        let state = Arc::new(TestAccountState::default());
        let account = Arc::new(TestAccount {
            state: state.clone(),
            policy,
        });
        let channel: Arc<dyn Connector> = Arc::new(TestChannel {
            account,
            max_text_chars,
        });
        let daemon = daemon::start(config.clone(), vec![channel])
            .await
            .expect("daemon starts");
        Self {
            daemon: Some(daemon),
            state,
            config,
        }
    }

    pub fn bridge(&self) -> Arc<dyn Bridge> {
        self.state
            .bridge
            .lock()
            .unwrap()
            .clone()
            .expect("routes() ran at start")
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.daemon.as_ref().unwrap().addr)
    }

    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.state.sent.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages were sent (deadline, not an assertion on time).
    pub async fn wait_sent(&self, n: usize, deadline: Duration) -> Vec<OutboundMessage> {
        let wait = async {
            loop {
                let notified = self.state.sent_signal.notified();
                if self.state.sent.lock().unwrap().len() >= n {
                    return;
                }
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            panic!(
                "expected {n} sent messages within {deadline:?}, got {:#?}",
                self.sent()
            );
        }
        self.sent()
    }

    pub async fn shutdown(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.shutdown().await;
        }
    }
}

pub fn text(peer: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage::text("test", "default", peer, id, body)
}

/// Polls `check` until it is true or the deadline passes.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
