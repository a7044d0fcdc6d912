//! The store-backed [`Bridge`] handed to channel accounts: the one door through which a
//! channel makes anything durable.

use crate::{DeliveryUpdate, InsertOutcome, NewOutbound, QuotaTake, SharedStore, StatePut};
use async_trait::async_trait;
use clawbridge_channel::{Accepted, Bridge, BridgeError};
use clawbridge_core::clock::now_ms;
use clawbridge_core::{AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, OutboundMessage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Wakes the workers when there is new work, so latency does not depend on poll intervals.
#[derive(Debug, Default)]
pub struct Wakers {
    /// New inbound rows.
    pub inbox: Notify,
    /// New or newly due outbound rows.
    pub outbox: Notify,
}

/// [`Bridge`] on top of the store.
pub struct StoreBridge {
    store: SharedStore,
    wakers: Arc<Wakers>,
    holder: String,
}

impl StoreBridge {
    /// A bridge writing to `store`; `holder` names this process in leases.
    pub fn new(store: SharedStore, wakers: Arc<Wakers>, holder: String) -> Self {
        Self { store, wakers, holder }
    }
}

impl std::fmt::Debug for StoreBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBridge").field("backend", &self.store.backend()).field("holder", &self.holder).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BridgeError {
    BridgeError(e.to_string())
}

#[async_trait]
impl Bridge for StoreBridge {
    async fn accept(&self, msg: InboundMessage) -> Result<Accepted, BridgeError> {
        let channel = msg.channel.to_string();
        let outcome = self.store.insert_inbound(&msg, now_ms()).await.map_err(unavailable)?;
        Ok(match outcome {
            InsertOutcome::Inserted(id) => {
                metrics::counter!("clawbridge_inbound_total", "channel" => channel, "result" => "new").increment(1);
                tracing::debug!(inbox_id = id, "inbound message stored");
                self.wakers.inbox.notify_one();
                Accepted::New
            }
            InsertOutcome::Duplicate(id) => {
                metrics::counter!("clawbridge_inbound_total", "channel" => channel, "result" => "duplicate")
                    .increment(1);
                tracing::debug!(inbox_id = id, "duplicate inbound message ignored");
                Accepted::Duplicate
            }
        })
    }

    async fn delivery_status(
        &self,
        channel: &ChannelId,
        platform_message_id: &str,
        status: &str,
        error: Option<&str>,
        at: EpochMs,
    ) -> Result<(), BridgeError> {
        let update = DeliveryUpdate {
            channel: channel.clone(),
            platform_message_id: platform_message_id.to_owned(),
            status: status.to_owned(),
            error: error.map(str::to_owned),
            at,
        };
        let known = self.store.record_delivery(&update).await.map_err(unavailable)?;
        metrics::counter!("clawbridge_delivery_status_total", "channel" => channel.to_string(), "status" => status.to_owned())
            .increment(1);
        if status == "failed" {
            tracing::warn!(%channel, platform_message_id, error = error.unwrap_or(""), "platform reports delivery failed");
        } else if !known {
            tracing::debug!(%channel, platform_message_id, status, "status for a message this bridge did not send");
        }
        Ok(())
    }

    async fn cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<String>, BridgeError> {
        self.store.get_cursor(channel, account, name).await.map_err(unavailable)
    }

    async fn set_cursor(
        &self,
        channel: &ChannelId,
        account: &AccountId,
        name: &str,
        value: &str,
    ) -> Result<(), BridgeError> {
        self.store.set_cursor(channel, account, name, value, now_ms()).await.map_err(unavailable)
    }

    async fn remember(&self, namespace: &str, key: &str, ttl_ms: EpochMs) -> Result<bool, BridgeError> {
        let now = now_ms();
        self.store.remember_key(namespace, key, now + ttl_ms, now).await.map_err(unavailable)
    }

    async fn lease(&self, name: &str, ttl_ms: EpochMs) -> Result<bool, BridgeError> {
        self.store.try_lease(name, &self.holder, ttl_ms, now_ms()).await.map_err(unavailable)
    }

    async fn release_lease(&self, name: &str) -> Result<(), BridgeError> {
        self.store.release_lease(name, &self.holder).await.map_err(unavailable)
    }

    async fn enqueue(&self, msg: OutboundMessage, idempotency_key: &str) -> Result<(), BridgeError> {
        let row = NewOutbound {
            idempotency_key: IdempotencyKey::new(idempotency_key),
            message: msg,
            inbound_id: None,
            not_before: None,
        };
        self.store.enqueue_outbound(&[row], now_ms()).await.map_err(unavailable)?;
        self.wakers.outbox.notify_one();
        Ok(())
    }

    async fn state_get(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError> {
        self.store.get_state(namespace, key, now_ms()).await.map_err(unavailable)
    }

    async fn state_put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<EpochMs>,
        if_absent: bool,
    ) -> Result<bool, BridgeError> {
        let now = now_ms();
        let entry = StatePut { namespace, key, value, expires_at: ttl_ms.map(|ttl| now + ttl) };
        self.store.put_state(&entry, if_absent, now).await.map_err(unavailable)
    }

    async fn state_take(&self, namespace: &str, key: &str) -> Result<Option<String>, BridgeError> {
        self.store.take_state(namespace, key, now_ms()).await.map_err(unavailable)
    }

    async fn state_list(&self, namespace: &str, limit: u32) -> Result<Vec<(String, String, EpochMs)>, BridgeError> {
        let entries = self.store.list_state(namespace, limit, now_ms()).await.map_err(unavailable)?;
        Ok(entries.into_iter().map(|e| (e.key, e.value, e.updated_at)).collect())
    }

    /// Fixed windows aligned on the epoch, so every replica counts into the same window.
    async fn take_quota(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, BridgeError> {
        let now = now_ms();
        let window_ms = EpochMs::try_from(window.as_millis()).unwrap_or(EpochMs::MAX).max(1);
        let start = now - now.rem_euclid(window_ms);
        let taken =
            self.store.take_quota(key, start, window_ms, u64::from(limit), 1, now).await.map_err(unavailable)?;
        Ok(match taken {
            QuotaTake::Granted { .. } => None,
            QuotaTake::Refused { window_end, .. } => {
                Some(Duration::from_millis(u64::try_from(window_end - now).unwrap_or(0).max(1)))
            }
        })
    }
}
