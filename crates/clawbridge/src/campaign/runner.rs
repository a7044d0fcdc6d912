//! The campaign runner: hands a running campaign's recipients to the send queues at its rate,
//! pauses it in the quiet hours and goes on when they end, and copies results back.
//!
//! One [`step`](CampaignRunner::step) claims a batch of recipients (under a lease: replicas never
//! claim the same one), stores each one's send row (idempotent on `campaign:<id>:<recipient>`)
//! and marks it queued; so a crash at any point resumes where it was, and the business-message
//! worker or the outbox worker sends each row once. The rate is a fixed-window quota in the
//! store (every replica counts together); a campaign is run by one replica at a time (a named
//! lease), which keeps its pacing even.
//!
//! Time comes from a [`Clock`] so tests move it through the quiet hours; waiting is the
//! caller's (the daemon loop sleeps, a test steps again).

use super::send::{SendRow, build};
use super::{Channel, Spec};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_campaign::links::LinkKey;
use clawbridge_campaign::schedule::{QuietHours, Rate};
use clawbridge_core::clock::Clock;
use clawbridge_core::time::{DAY_MS, EpochMs};
use clawbridge_store::{
    CampaignRow, CampaignState, RecipientRow, RecipientState, SendKind, SharedStore, StatePut, StoreError,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Recipients claimed per step at most.
const BATCH: u32 = 100;
/// Lease on claimed recipients: a step stores its rows well inside it.
const LEASE_MS: EpochMs = 60_000;
/// Lease on running a campaign (renewed every step).
const RUN_LEASE_MS: EpochMs = 30_000;
/// Where runners say they are alive (so a CLI `start` knows a daemon will run it).
pub const RUNNERS: &str = "campaign.runners";
/// How long a runner's presence lasts without renewal.
const PRESENCE_MS: EpochMs = 30_000;
/// Campaigns done less than this long ago still get their results copied.
const RESULTS_FOR_MS: EpochMs = 3 * DAY_MS;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Handed `n` recipients over (some may have been suppressed or refused).
    Sent(usize),
    /// Nothing to do before this instant (rate window, quiet hours, another replica's lease).
    WaitUntil(EpochMs),
    /// Every recipient has been handed over: the campaign is done.
    Done,
    /// The campaign is not running (paused, cancelled, or gone).
    Idle,
}

/// Runs campaigns.
#[derive(Clone)]
pub struct CampaignRunner {
    /// The store.
    pub store: SharedStore,
    /// `[bizmsg]`, for AlimTalk and Brand Message campaigns.
    pub bizmsg: Option<Arc<BizmsgConfig>>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// This process in claims and leases.
    pub worker: String,
    /// Woken when business-message rows were stored.
    pub wake_bizmsg: Arc<Notify>,
    /// The outbox worker's wake-up, woken when outbox rows were stored.
    pub wakers: Arc<crate::bridge::Wakers>,
}

impl std::fmt::Debug for CampaignRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignRunner").field("worker", &self.worker).finish_non_exhaustive()
    }
}

/// Whether a campaign pauses in the ad quiet hours.
pub fn quiet_hours(campaign: &CampaignRow) -> Option<QuietHours> {
    campaign.quiet_hours.then(QuietHours::ads)
}

/// The campaign's rate.
pub fn rate(campaign: &CampaignRow) -> Rate {
    campaign.rate_per_minute.map_or(Rate::Unlimited, Rate::PerMinute)
}

impl CampaignRunner {
    /// One step of `campaign` (by id).
    ///
    /// # Errors
    /// The store failed; nothing is lost (claimed rows come back when their lease runs out).
    pub async fn step(&self, id: &str) -> Result<Step, StoreError> {
        let now = self.clock.now_ms();
        let Some(campaign) = self.store.get_campaign(id).await? else { return Ok(Step::Idle) };
        match campaign.state {
            CampaignState::Running => {}
            CampaignState::Scheduled if campaign.start_at.unwrap_or(0) <= now => {
                let moved = self
                    .store
                    .transition_campaign(id, &[CampaignState::Scheduled], CampaignState::Running, None, None, now)
                    .await?;
                if moved {
                    tracing::info!(campaign = id, "scheduled campaign started");
                }
            }
            CampaignState::Scheduled => return Ok(Step::WaitUntil(campaign.start_at.unwrap_or(now))),
            _ => return Ok(Step::Idle),
        }
        if !self.store.try_lease(&format!("campaign:{id}"), &self.worker, RUN_LEASE_MS, now).await? {
            return Ok(Step::WaitUntil(now + 1_000));
        }
        if let Some(quiet) = quiet_hours(&campaign)
            && let Some(resumes) = quiet.resumes_at(now)
        {
            if campaign.waiting_until != Some(resumes) {
                tracing::info!(campaign = id, resumes, "quiet hours (20:50–08:00 KST): campaign paused until 08:00");
                self.store.set_campaign_waiting(id, Some(resumes), now).await?;
            }
            return Ok(Step::WaitUntil(resumes));
        }
        if campaign.waiting_until.is_some() {
            tracing::info!(campaign = id, "quiet hours are over: campaign goes on");
            self.store.set_campaign_waiting(id, None, now).await?;
        }
        let spec: Spec = match serde_json::from_str(&campaign.spec) {
            Ok(spec) => spec,
            Err(e) => {
                let note = format!("cannot read the campaign's spec ({e}): was it made by a newer clawbridge?");
                self.store
                    .transition_campaign(id, &[CampaignState::Running], CampaignState::Paused, Some(&note), None, now)
                    .await?;
                return Ok(Step::Idle);
            }
        };
        let mut limit = BATCH;
        if let Some((per_window, window_ms)) = rate(&campaign).pacing() {
            let window_start = now - now.rem_euclid(window_ms);
            let take = u64::from(limit).min(per_window);
            match self
                .store
                .take_quota(&format!("campaign:{id}:rate"), window_start, window_ms, per_window, take, now)
                .await?
            {
                clawbridge_store::QuotaTake::Granted { .. } => limit = u32::try_from(take).unwrap_or(1),
                clawbridge_store::QuotaTake::Refused { count, window_end } => {
                    let left = per_window.saturating_sub(count);
                    if left == 0 {
                        return Ok(Step::WaitUntil(window_end));
                    }
                    match self
                        .store
                        .take_quota(&format!("campaign:{id}:rate"), window_start, window_ms, per_window, left, now)
                        .await?
                    {
                        clawbridge_store::QuotaTake::Granted { .. } => limit = u32::try_from(left).unwrap_or(1),
                        clawbridge_store::QuotaTake::Refused { window_end, .. } => {
                            return Ok(Step::WaitUntil(window_end));
                        }
                    }
                }
            }
        }
        let claimed =
            self.store.claim_campaign_recipients(id, &campaign.account, &self.worker, limit, LEASE_MS, now).await?;
        if claimed.suppressed > 0 {
            tracing::info!(campaign = id, suppressed = claimed.suppressed, "opted-out recipients left out");
        }
        if claimed.rows.is_empty() {
            if claimed.suppressed > 0 {
                return Ok(Step::Sent(0));
            }
            return self.finish_if_done(&campaign, &spec, now).await;
        }
        let key = LinkKey::decode(&campaign.link_key);
        let n = claimed.rows.len();
        self.hand_over(&campaign, &spec, key.as_ref(), claimed.rows, now).await?;
        Ok(Step::Sent(n))
    }

    /// Stores the send rows of claimed recipients and marks them queued (or failed).
    async fn hand_over(
        &self,
        campaign: &CampaignRow,
        spec: &Spec,
        key: Option<&LinkKey>,
        rows: Vec<RecipientRow>,
        now: EpochMs,
    ) -> Result<(), StoreError> {
        let bizmsg = self.bizmsg.as_deref();
        let mut biz = Vec::new();
        let mut out = Vec::new();
        for row in rows {
            match build(campaign, spec, &row, bizmsg, key, now) {
                Ok(SendRow::Bizmsg(m)) => biz.push((row, m)),
                Ok(SendRow::Outbox(m)) => out.push((row, m)),
                Err(reason) => {
                    tracing::warn!(campaign = %campaign.id, line = row.line, %reason, "recipient cannot be sent");
                    self.store.mark_campaign_recipient_failed(row.id, &self.worker, "invalid", &reason, now).await?;
                }
            }
        }
        if !biz.is_empty() {
            let messages: Vec<_> = biz.iter().map(|(_, m)| m.clone()).collect();
            let stored = self.store.enqueue_bizmsg(&messages, now).await?;
            for ((row, _), stored) in biz.iter().zip(stored) {
                self.store
                    .mark_campaign_recipient_queued(row.id, &self.worker, SendKind::Bizmsg, stored.id, now)
                    .await?;
            }
            self.wake_bizmsg.notify_one();
        }
        if !out.is_empty() {
            let messages: Vec<_> = out.iter().map(|(_, m)| m.clone()).collect();
            let ids = self.store.enqueue_outbound(&messages, now).await?;
            for ((row, _), id) in out.iter().zip(ids) {
                self.store.mark_campaign_recipient_queued(row.id, &self.worker, SendKind::Outbox, id, now).await?;
            }
            self.wakers.outbox.notify_one();
        }
        Ok(())
    }

    /// Done when no recipient is pending or being handed over, and no A/B test holds any back;
    /// an A/B test whose time has come picks its winner and releases the rest to it.
    async fn finish_if_done(&self, campaign: &CampaignRow, spec: &Spec, now: EpochMs) -> Result<Step, StoreError> {
        let counts = self.store.campaign_counts(&campaign.id).await?;
        let held = counts.states.iter().filter(|(_, s, _)| *s == RecipientState::Held).map(|(_, _, n)| n).sum::<u64>();
        if held > 0
            && let Some(test) = spec.test.as_ref().filter(|t| t.winner.is_none())
        {
            let at = campaign.started_at.unwrap_or(now).saturating_add(test.pick_after_ms);
            if now < at {
                return Ok(Step::WaitUntil(at));
            }
            self.store.sync_campaign_results(&campaign.id, now).await?;
            let counts = self.store.campaign_counts(&campaign.id).await?;
            let winner = pick_winner(spec, &counts, &test.by);
            let mut picked = spec.clone();
            if let Some(t) = picked.test.as_mut() {
                t.winner = Some(winner.clone());
            }
            let text = serde_json::to_string(&picked).map_err(|e| StoreError::Corrupt {
                what: format!("campaign {}", campaign.id),
                detail: e.to_string(),
            })?;
            self.store.set_campaign_spec(&campaign.id, &text, now).await?;
            let released = self.store.release_held_recipients(&campaign.id, &winner, now).await?;
            tracing::info!(campaign = %campaign.id, %winner, by = %test.by, released, "A/B test: winner picked, sent to the rest");
            return Ok(Step::Sent(0));
        }
        let open = counts
            .states
            .iter()
            .filter(|(_, s, _)| matches!(s, RecipientState::Pending | RecipientState::Sending))
            .map(|(_, _, n)| n)
            .sum::<u64>();
        if open > 0 {
            // Another runner's claims, until their lease runs out.
            return Ok(Step::WaitUntil(now + 1_000));
        }
        let done = self
            .store
            .transition_campaign(&campaign.id, &[CampaignState::Running], CampaignState::Done, None, None, now)
            .await?;
        if done {
            tracing::info!(campaign = %campaign.id, "campaign done: every recipient handed to the senders");
        }
        self.store.release_lease(&format!("campaign:{}", campaign.id), &self.worker).await?;
        Ok(Step::Done)
    }

    /// Copies results onto the recipients of campaigns that are running or finished recently.
    ///
    /// # Errors
    /// The store failed.
    pub async fn sync_results(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        for c in self.store.list_campaigns(200).await? {
            let recent = c.finished_at.is_none_or(|at| now - at < RESULTS_FOR_MS);
            if recent && c.state != CampaignState::Draft {
                self.store.sync_campaign_results(&c.id, now).await?;
            }
        }
        Ok(())
    }

    /// Publishes the recipient counts of recent campaigns as metrics.
    pub async fn publish_metrics(&self) {
        let since = self.clock.now_ms() - RESULTS_FOR_MS;
        match self.store.recent_campaign_counts(since).await {
            Ok(counts) => {
                for (campaign, state, n) in counts {
                    metrics::gauge!("clawbridge_campaign_recipients_total", "campaign" => campaign, "state" => state.as_str())
                        .set(n as f64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read campaign counts for the metrics"),
        }
    }

    /// Says this runner is alive (for a CLI `start` to know the campaign will be run).
    async fn announce(&self) {
        let now = self.clock.now_ms();
        let put =
            StatePut { namespace: RUNNERS, key: &self.worker, value: "daemon", expires_at: Some(now + PRESENCE_MS) };
        if let Err(e) = self.store.put_state(&put, false, now).await {
            tracing::debug!(error = %e, "cannot announce the campaign runner");
        }
    }

    /// Runs every due campaign until `stop` fires (the daemon). `only`, when given, runs that
    /// campaign alone and returns once it is done or no longer running (a foreground `start`).
    pub async fn run(self, stop: CancellationToken, only: Option<String>) {
        let mut last_sync = 0;
        loop {
            if only.is_none() {
                self.announce().await;
            }
            let now = self.clock.now_ms();
            let ids: Vec<String> = match &only {
                Some(id) => vec![id.clone()],
                None => match self.store.due_campaigns(now).await {
                    Ok(due) => due.into_iter().map(|c| c.id).collect(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the campaigns; retrying");
                        Vec::new()
                    }
                },
            };
            let mut next = now + 1_000;
            let mut busy = false;
            let mut finished = only.is_some();
            for id in &ids {
                match self.step(id).await {
                    Ok(Step::Sent(_)) => {
                        busy = true;
                        finished = false;
                    }
                    Ok(Step::WaitUntil(at)) => {
                        next = next.min(at.max(now));
                        finished = false;
                    }
                    Ok(Step::Done | Step::Idle) => {}
                    Err(e) => {
                        tracing::error!(campaign = %id, error = %e, "campaign step failed; retrying");
                        finished = false;
                    }
                }
            }
            if now - last_sync >= 5_000 || finished {
                last_sync = now;
                if let Err(e) = self.sync_results().await {
                    tracing::warn!(error = %e, "cannot copy campaign results");
                }
                self.publish_metrics().await;
            }
            if finished {
                return;
            }
            if busy {
                if stop.is_cancelled() {
                    return;
                }
                continue;
            }
            // At most a second: a pause, cancel or new campaign from the CLI is seen soon.
            let wait = Duration::from_millis(u64::try_from((next - now).clamp(10, 1_000)).unwrap_or(1_000));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The variant with the best CTR (unique clicks / delivered) or delivery rate (delivered /
/// accepted); the first one on a tie or with no data.
pub fn pick_winner(spec: &Spec, counts: &clawbridge_store::CampaignCounts, by: &str) -> String {
    let (_, variants) = super::report::tally(spec, counts);
    let score = |c: &clawbridge_campaign::report::Counts| match by {
        "delivery" => c.delivery().rate(),
        _ => c.ctr().rate(),
    };
    let mut best: Option<(&str, f64)> = None;
    for (name, c) in &variants {
        let s = score(c);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((name, s));
        }
    }
    best.map_or_else(|| spec.variants[0].name.clone(), |(name, _)| name.to_owned())
}

/// Whether a runner (a daemon) is alive on this store.
///
/// # Errors
/// The store failed.
pub async fn daemon_running(store: &SharedStore, now: EpochMs) -> Result<bool, StoreError> {
    Ok(!store.list_state(RUNNERS, 1, now).await?.is_empty())
}

/// The channel of a stored campaign.
pub fn channel_of(campaign: &CampaignRow) -> Option<Channel> {
    campaign.channel.parse().ok()
}
