//! `KAPSO_MODE=polling` (and `KAPSO_POLL_FALLBACK`): read Kapso's message history.
//!
//! Each poll asks for inbound messages created since `cursor − overlap`, follows
//! `paging.cursors.after` until the pages run out (no 100-message cap; the first page is the
//! newest), and stores them oldest first. Messages seen again inside the overlap are
//! duplicates the store drops. The cursor — the newest Kapso `created_at` seen (the WhatsApp
//! `timestamp` when `created_at` is absent; it is never later) — is stored only after every
//! message of the poll was accepted, so a crash re-reads instead of skipping. A first start
//! begins at Kapso's current time (its `Date` header) minus the overlap. One replica
//! polls an account at a time (a lease); errors back off and mark the account degraded.

use crate::client::{KapsoClient, ListQuery, MAX_PAGE_SIZE};
use crate::inbound::{self, InboundRecord};
use crate::ingest;
use crate::timefmt::{format_rfc3339, parse_time};
use clawbridge_channel::{Accepted, AccountContext, AccountStatus};
use clawbridge_core::clock::now_ms;
use clawbridge_core::retry::RetryPolicy;
use clawbridge_core::{EpochMs, SendError};
use clawbridge_http::jitter;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// The cursor's name in the store.
pub const CURSOR_NAME: &str = "poll-created-at";
/// A poll reads at most this many pages (100 000 messages). Pages run newest to oldest, so a
/// poll that stops here has not seen the oldest messages yet: it keeps the cursor (and says so).
const MAX_PAGES: usize = 1000;
/// Time allowed for the media of one polled message.
const MEDIA_BUDGET: Duration = Duration::from_secs(30);
/// Message ids remembered in memory to skip re-downloading media of the overlap window.
const SEEN_CAPACITY: usize = 4096;

/// Poller settings.
#[derive(Clone, Debug)]
pub struct PollSettings {
    /// Time between polls.
    pub interval: Duration,
    /// How far before the cursor each poll starts.
    pub overlap: Duration,
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Pages read.
    pub pages: usize,
    /// Messages stored for the first time.
    pub new: usize,
    /// Messages already stored (overlap window, webhook beside polling).
    pub duplicates: usize,
    /// Messages that cannot be used, kept as dead letters.
    pub dead_letters: usize,
    /// The cursor after the poll.
    pub cursor: Option<EpochMs>,
}

/// Why a poll failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PollError {
    /// The Kapso API failed.
    #[error("Kapso: {0}")]
    Api(#[from] SendError),
    /// The store failed.
    #[error("{0}")]
    Bridge(#[from] clawbridge_channel::BridgeError),
}

/// One account's poller with its small in-memory cache of recently seen ids.
#[derive(Debug)]
pub struct Poller {
    client: KapsoClient,
    settings: PollSettings,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

impl Poller {
    /// A poller for one account.
    pub fn new(client: KapsoClient, settings: PollSettings) -> Self {
        Self { client, settings, seen: HashSet::new(), seen_order: VecDeque::new() }
    }

    /// Polls until `ctx.cancel` fires.
    pub async fn run(mut self, ctx: AccountContext) {
        let lease = format!("whatsapp.poller/{}", ctx.account);
        let lease_ttl = (self.settings.interval * 3).max(Duration::from_secs(60));
        let backoff = RetryPolicy {
            initial_delay_ms: u64::try_from(self.settings.interval.as_millis()).unwrap_or(u64::MAX),
            max_delay_ms: 300_000,
            ..RetryPolicy::DURABLE
        };
        let mut failures = 0u32;
        loop {
            let wait = match ctx.bridge.lease(&lease, millis(lease_ttl)).await {
                Ok(false) => self.settings.interval,
                Ok(true) => match self.poll_once(&ctx).await {
                    Ok(outcome) => {
                        if failures > 0 {
                            tracing::info!(account = %ctx.account, "polling recovered");
                        }
                        failures = 0;
                        ctx.status.send_replace(AccountStatus::Running);
                        if outcome.new > 0 {
                            tracing::debug!(account = %ctx.account, new = outcome.new, pages = outcome.pages, "poll stored messages");
                        }
                        self.settings.interval
                    }
                    Err(e) => {
                        failures += 1;
                        metrics::counter!("clawbridge_whatsapp_poll_errors_total").increment(1);
                        tracing::warn!(account = %ctx.account, error = %e, failures, "poll failed; backing off");
                        ctx.status.send_replace(AccountStatus::Degraded(format!("polling Kapso fails: {e}")));
                        backoff.delay(failures, jitter())
                    }
                },
                Err(e) => {
                    failures += 1;
                    ctx.status
                        .send_replace(AccountStatus::Degraded(format!("store unavailable for the poll lease: {e}")));
                    backoff.delay(failures, jitter())
                }
            };
            tokio::select! {
                () = ctx.cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One poll: read every page since the cursor, store oldest first, then advance the cursor.
    ///
    /// # Errors
    /// [`PollError`]; the cursor is then left where it was.
    pub async fn poll_once(&mut self, ctx: &AccountContext) -> Result<PollOutcome, PollError> {
        let stored = ctx.bridge.cursor(&ctx.channel, &ctx.account, CURSOR_NAME).await?;
        let cursor = match stored.as_deref().and_then(parse_time) {
            Some(cursor) => cursor,
            None => {
                // First start: from now (minus the overlap), not the whole history. "Now" is
                // Kapso's clock (the `Date` of a one-message listing) so local clock skew does not matter.
                let probe = self.client.list_messages(&ListQuery { limit: Some(1), ..ListQuery::default() }).await?;
                let start = probe.server_time.unwrap_or_else(now_ms);
                ctx.bridge.set_cursor(&ctx.channel, &ctx.account, CURSOR_NAME, &format_rfc3339(start)).await?;
                start
            }
        };
        let since = cursor - millis(self.settings.overlap);
        let mut outcome = PollOutcome { cursor: Some(cursor), ..PollOutcome::default() };
        let mut items: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        let mut cursors_seen = HashSet::new();
        let mut exhausted = false;
        while outcome.pages < MAX_PAGES {
            let query = ListQuery {
                direction: Some("inbound".to_owned()),
                since: Some(format_rfc3339(since)),
                limit: Some(MAX_PAGE_SIZE),
                after: after.clone(),
            };
            let page = self.client.list_messages(&query).await?;
            outcome.pages += 1;
            let empty = page.data.is_empty();
            items.extend(page.data);
            match page.after {
                Some(next) if !empty && cursors_seen.insert(next.clone()) => after = Some(next),
                _ => {
                    exhausted = true;
                    break;
                }
            }
        }
        metrics::counter!("clawbridge_whatsapp_poll_pages_total").increment(outcome.pages as u64);

        // Pages are newest first; store oldest first.
        items.reverse();
        let mut newest = cursor;
        for item in items {
            if item.pointer("/kapso/direction").and_then(Value::as_str) == Some("outbound") {
                continue;
            }
            if let Some(at) = created_at(&item) {
                newest = newest.max(at);
            }
            let Some(id) = item.get("id").and_then(Value::as_str).map(str::to_owned) else { continue };
            if inbound::is_history_import(&item) {
                metrics::counter!("clawbridge_whatsapp_webhook_ignored_total", "event" => "history_sync").increment(1);
                continue;
            }
            if self.seen.contains(&id) {
                outcome.duplicates += 1;
                continue;
            }
            let record = InboundRecord {
                message: item,
                phone_number_id: Some(self.client.phone_number_id().to_owned()),
                ..InboundRecord::default()
            };
            let mut converted = match inbound::convert(&record, &ctx.account) {
                Ok(c) => c,
                Err(e) => {
                    // Kept with its reason (not just a warning behind an advancing cursor).
                    let account = ctx.account.to_string();
                    ingest::dead_letter(ctx.bridge.as_ref(), Some(&account), Some(&id), &e.to_string()).await?;
                    outcome.dead_letters += 1;
                    self.remember(id);
                    continue;
                }
            };
            ingest::fetch_media(&self.client, &mut converted, MEDIA_BUDGET).await;
            match ingest::accept(ctx.bridge.as_ref(), converted).await? {
                Accepted::New => outcome.new += 1,
                Accepted::Duplicate => outcome.duplicates += 1,
            }
            self.remember(id);
        }
        if !exhausted {
            tracing::error!(
                account = %ctx.account,
                pages = outcome.pages,
                "more than {MAX_PAGES} pages since the poll cursor: the cursor stays until a poll reads them all"
            );
        } else if newest > cursor {
            ctx.bridge.set_cursor(&ctx.channel, &ctx.account, CURSOR_NAME, &format_rfc3339(newest)).await?;
        }
        outcome.cursor = Some(if exhausted { newest } else { cursor });
        metrics::counter!("clawbridge_whatsapp_polled_messages_total").increment(outcome.new as u64);
        Ok(outcome)
    }

    fn remember(&mut self, id: String) {
        if self.seen.insert(id.clone()) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > SEEN_CAPACITY {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

/// Kapso's `created_at` of a listed message (top level or in `kapso`), else the WhatsApp
/// `timestamp` (set when the user sent it, so never after Kapso stored it).
pub fn created_at(item: &Value) -> Option<EpochMs> {
    ["/created_at", "/kapso/created_at", "/timestamp"].iter().filter_map(|p| item.pointer(p)).find_map(|v| match v {
        Value::String(s) => parse_time(s),
        Value::Number(n) => n.as_i64().map(|s| s * 1000),
        _ => None,
    })
}

fn millis(d: Duration) -> EpochMs {
    EpochMs::try_from(d.as_millis()).unwrap_or(EpochMs::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_at_prefers_kapso_time() {
        assert_eq!(
            created_at(&json!({"timestamp":"1730092800","kapso":{"created_at":"2024-10-28T05:20:05Z"}})),
            Some(1_730_092_805_000)
        );
        assert_eq!(created_at(&json!({"timestamp":"1730092800"})), Some(1_730_092_800_000));
        assert_eq!(created_at(&json!({"id":"x"})), None);
    }
}
