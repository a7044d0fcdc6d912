//! Starting a daemon around the testkit's recording channel.

use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_channel::{Bridge, Connector};
use clawbridge_core::InboundMessage;
use clawbridge_core::policy::AccessPolicy;
use clawbridge_testkit::channel::{Recorder, RecordingChannel};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use clawbridge_testkit::channel::RecordingChannel as Channel;

/// A daemon around one recording channel account.
pub struct Harness {
    pub daemon: Option<DaemonHandle>,
    pub recorder: Arc<Recorder>,
    pub config: Config,
}

/// A valid configuration in `state_dir`, listening on a free loopback port.
pub fn config(state_dir: &Path, gateway_url: &str, token: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("HOME".to_owned(), state_dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR".to_owned(), state_dir.display().to_string()),
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
    Channel::open_policy()
}

impl Harness {
    pub async fn start(config: Config, policy: AccessPolicy, max_text_chars: usize) -> Self {
        let (channel, recorder) = RecordingChannel::new("test", policy, max_text_chars);
        let channel: Arc<dyn Connector> = channel;
        let daemon = daemon::start(config.clone(), vec![channel]).await.expect("daemon starts");
        Self { daemon: Some(daemon), recorder, config }
    }

    pub fn bridge(&self) -> Arc<dyn Bridge> {
        self.recorder.bridge()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.daemon.as_ref().expect("running").addr)
    }

    pub fn sent(&self) -> Vec<clawbridge_core::OutboundMessage> {
        self.recorder.sent()
    }

    pub async fn wait_sent(&self, n: usize, deadline: Duration) -> Vec<clawbridge_core::OutboundMessage> {
        self.recorder.wait_sent(n, deadline).await
    }

    pub async fn store(&self) -> clawbridge_store::SharedStore {
        clawbridge_store::open(&self.config.bridge.database_url).await.expect("store opens")
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

/// Polls `check` until it is true; panics with `what` at the deadline.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let poll = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(deadline, poll).await.is_err() {
        panic!("timed out waiting for: {what}");
    }
}
