//! The per-API-key request limit of Kapso's plans (requests per minute, reference §2).
//!
//! It is clawbridge-http's [`Limiter`](clawbridge_http::Limiter) (governor): bursts queue instead
//! of failing with 429, a 429 from Kapso pauses everyone using the key, and with a
//! [`SharedQuota`] the plan's limit holds for all replicas together instead of for each one.

use clawbridge_channel::Bridge;
use clawbridge_http::SharedQuota;
use clawbridge_http::limit::QuotaError;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub use clawbridge_http::Limiter as RateLimiter;

/// The process-wide limiter of an API key (clients of several accounts sharing a key share it).
/// With `quota`, every request is also counted there under `kapso:<key digest>`, so replicas
/// sharing the key share its plan.
pub fn shared(api_key: &str, per_minute: u32, quota: Option<Arc<dyn SharedQuota>>) -> Arc<RateLimiter> {
    clawbridge_http::limit::shared(&quota_key(api_key), per_minute, Duration::from_secs(60), quota)
}

/// The name a key's requests are counted under: never the key itself.
pub fn quota_key(api_key: &str) -> String {
    format!("kapso:{}", hex::encode(&Sha256::digest(api_key.as_bytes())[..16]))
}

/// The bridge's store as the shared count of a key's requests (every replica on the store).
#[derive(Clone)]
pub struct BridgeQuota(pub Arc<dyn Bridge>);

impl std::fmt::Debug for BridgeQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BridgeQuota")
    }
}

#[async_trait::async_trait]
impl SharedQuota for BridgeQuota {
    async fn take(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, QuotaError> {
        self.0.take_quota(key, limit, window).await.map_err(|e| QuotaError::from(e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Queueing and pausing are tested with the limiter itself (crates/http/tests/it/limit.rs).

    #[test]
    fn one_limiter_per_key() {
        let a = shared("key-a", 100, None);
        assert!(Arc::ptr_eq(&a, &shared("key-a", 100, None)));
        assert!(!Arc::ptr_eq(&a, &shared("key-b", 100, None)));
        assert!(!Arc::ptr_eq(&a, &shared("key-a", 500, None)));
    }
}
