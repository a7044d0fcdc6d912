//! The per-API-key request limit of Kapso's plans (requests per minute, reference §2).
//!
//! It is clawbridge-http's [`Limiter`](clawbridge_http::Limiter) (governor): bursts queue instead
//! of failing with 429, a 429 from Kapso pauses everyone using the key, and with a
//! [`SharedQuota`] the plan's limit holds for all replicas together instead of for each one.

use clawbridge_http::SharedQuota;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub use clawbridge_http::Limiter as RateLimiter;

/// The process-wide limiter of an API key (clients of several accounts sharing a key share it).
/// With `quota`, every request is also counted there under `kapso:<key digest>`, so replicas
/// sharing the key share its plan.
pub fn shared(api_key: &str, per_minute: u32, quota: Option<Arc<dyn SharedQuota>>) -> Arc<RateLimiter> {
    let digest = hex::encode(&Sha256::digest(api_key.as_bytes())[..16]);
    clawbridge_http::limit::shared(&format!("kapso:{digest}"), per_minute, Duration::from_secs(60), quota)
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
