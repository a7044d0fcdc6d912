//! Test helpers: the testkit's fake Kapso (and a client for it), the daemon's bridge on an
//! in-memory store, and reads of what that store holds.

use clawbridge_core::{AccountId, ChannelId};
use clawbridge_whatsapp::KapsoClient;
use clawbridge_whatsapp::client::MediaPolicy;
use clawbridge_whatsapp::limiter::RateLimiter;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use clawbridge_testkit::fake_kapso::{API_KEY, Answer, FakeKapso, PNID};
pub use clawbridge_testkit::{MemoryBridge, memory_bridge};

/// Clients of the fake, as the accounts build them (limiter and media policy of their own).
pub trait FakeKapsoClient {
    /// A client with its own limiter (`per_window` requests per `window`).
    fn client_with(&self, per_window: u32, window: Duration, max_media: u64) -> KapsoClient;

    /// A client with room for every test's requests.
    fn client(&self) -> KapsoClient {
        self.client_with(1000, Duration::from_secs(60), 1024 * 1024)
    }
}

impl FakeKapsoClient for FakeKapso {
    fn client_with(&self, per_window: u32, window: Duration, max_media: u64) -> KapsoClient {
        KapsoClient::with_parts(
            &self.meta_base(),
            PNID,
            API_KEY.to_owned().into(),
            Arc::new(RateLimiter::with_window(per_window, window)),
            MediaPolicy { hosts: vec!["127.0.0.1".into(), "kapso.ai".into()], max_bytes: max_media },
            Duration::from_secs(5),
        )
        .unwrap()
    }
}

/// The poll cursor `name` of WhatsApp account `account`.
pub async fn cursor(bridge: &MemoryBridge, account: &str, name: &str) -> Option<String> {
    bridge.bridge.cursor(&ChannelId::new("whatsapp"), &AccountId::new(account), name).await.unwrap()
}

/// Sets the poll cursor `name` of WhatsApp account `account`.
pub async fn set_cursor(bridge: &MemoryBridge, account: &str, name: &str, value: &str) {
    bridge.bridge.set_cursor(&ChannelId::new("whatsapp"), &AccountId::new(account), name, value).await.unwrap();
}

/// Waits until `check` holds (a bounded wait, not a timing assertion).
pub async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "condition not reached within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
