//! Typed channel state on top of the [`Bridge`]'s small key-value store.
//!
//! A channel names each kind of value it keeps once, as a [`StateSpace`] constant that binds the
//! namespace to the value's type: every read decodes into that type, every write encodes it, so
//! no caller parses stored JSON by hand and two callers cannot disagree about a namespace's shape.

use crate::{Bridge, BridgeError};
use clawbridge_core::EpochMs;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::Duration;

/// A namespace of channel state whose values are `V` (stored as JSON).
///
/// `base` is the channel's own prefix (`kakao.pending`); [`scoped`](Self::scoped) adds an
/// account or a peer, giving `kakao.pending/<account>`.
#[derive(Debug)]
pub struct StateSpace<V> {
    namespace: std::borrow::Cow<'static, str>,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for StateSpace<V> {
    fn clone(&self) -> Self {
        Self { namespace: self.namespace.clone(), _value: PhantomData }
    }
}

/// A stored value with the time it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<V> {
    /// The key within the namespace.
    pub key: String,
    /// The value.
    pub value: V,
    /// When it was written (epoch ms).
    pub written_at: EpochMs,
}

impl<V: Serialize + DeserializeOwned> StateSpace<V> {
    /// The namespace `base`, for a `const` or `static`.
    pub const fn new(base: &'static str) -> Self {
        Self { namespace: std::borrow::Cow::Borrowed(base), _value: PhantomData }
    }

    /// The sub-namespace `<namespace>/<part>` (an account, a peer).
    #[must_use]
    pub fn scoped(&self, part: &str) -> Self {
        Self { namespace: format!("{}/{part}", self.namespace).into(), _value: PhantomData }
    }

    /// The namespace as stored.
    pub fn name(&self) -> &str {
        &self.namespace
    }

    /// Reads a live value. A value that does not decode (written by an incompatible version) reads
    /// as absent, with a warning, rather than failing every request of that user.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn get(&self, bridge: &dyn Bridge, key: &str) -> Result<Option<V>, BridgeError> {
        let raw = bridge.state_get(&self.namespace, key).await?;
        Ok(raw.and_then(|raw| self.decode(key, &raw)))
    }

    /// Writes a value, replacing the old one; `ttl` makes it expire.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn put(
        &self,
        bridge: &dyn Bridge,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), BridgeError> {
        bridge.state_put(&self.namespace, key, &encode(value)?, ttl.map(ttl_ms), false).await.map(drop)
    }

    /// Writes a value only when none is live and says whether it wrote: a one-time claim that holds
    /// across replicas.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn claim(
        &self,
        bridge: &dyn Bridge,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<bool, BridgeError> {
        bridge.state_put(&self.namespace, key, &encode(value)?, ttl.map(ttl_ms), true).await
    }

    /// Deletes a live value and returns it; of two concurrent takers only one gets it.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn take(&self, bridge: &dyn Bridge, key: &str) -> Result<Option<V>, BridgeError> {
        let raw = bridge.state_take(&self.namespace, key).await?;
        Ok(raw.and_then(|raw| self.decode(key, &raw)))
    }

    /// Live values, newest first, at most `limit`; values that do not decode are skipped.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn list(&self, bridge: &dyn Bridge, limit: u32) -> Result<Vec<Entry<V>>, BridgeError> {
        let rows = bridge.state_list(&self.namespace, limit).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, raw, written_at)| {
                let value = self.decode(&key, &raw)?;
                Some(Entry { key, value, written_at })
            })
            .collect())
    }

    fn decode(&self, key: &str, raw: &str) -> Option<V> {
        match serde_json::from_str(raw) {
            Ok(value) => Some(value),
            // Values written as plain text before this namespace had a type read as a JSON
            // string, so a `StateSpace<String>` keeps them across an upgrade.
            Err(_) if let Ok(value) = serde_json::from_value(serde_json::Value::String(raw.to_owned())) => Some(value),
            Err(e) => {
                tracing::warn!(namespace = %self.namespace, key, error = %e, "stored channel state does not decode; ignored");
                None
            }
        }
    }
}

fn encode<V: Serialize>(value: &V) -> Result<String, BridgeError> {
    serde_json::to_string(value).map_err(|e| BridgeError(format!("cannot encode channel state: {e}")))
}

fn ttl_ms(ttl: Duration) -> EpochMs {
    EpochMs::try_from(ttl.as_millis()).unwrap_or(EpochMs::MAX)
}
