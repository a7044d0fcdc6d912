//! Campaigns in memory: the same semantics as the SQL backends (see [`crate::campaign`]).

use super::{MemoryStore, State};
use crate::Result;
use crate::campaign::{
    Added, CampaignCounts, CampaignRow, CampaignState, CampaignStore, Claimed, NewCampaign, NewRecipient, RecipientRow,
    RecipientState, SendKind, Suppression, SyncSource, merge_timeline, synced,
};
use crate::record::deadline;
use async_trait::async_trait;
use clawbridge_core::EpochMs;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The campaign tables.
#[derive(Default)]
pub(super) struct Campaigns {
    campaigns: BTreeMap<String, CampaignRow>,
    recipients: BTreeMap<i64, Recipient>,
    /// The unique (campaign, address).
    recipient_ids: HashMap<(String, String), i64>,
    last_id: i64,
    /// (campaign, recipient row, link) → (clicks, first at).
    clicks: BTreeMap<(String, i64, u32), (u64, EpochMs)>,
    /// (account, key) → entry.
    suppressions: BTreeMap<(String, String), Suppression>,
}

struct Recipient {
    row: RecipientRow,
    suppression_key: String,
    lease_owner: Option<String>,
    lease_until: Option<EpochMs>,
    source_at: Option<EpochMs>,
}

impl Campaigns {
    fn suppressed(&self, account: &str, key: &str) -> bool {
        self.suppressions.contains_key(&(account.to_owned(), key.to_owned()))
    }

    fn leased(&mut self, id: i64, worker: &str) -> Option<&mut Recipient> {
        self.recipients
            .get_mut(&id)
            .filter(|r| r.row.state == RecipientState::Sending && r.lease_owner.as_deref() == Some(worker))
    }
}

/// What a recipient's send row says, read from the other queues of the store.
fn source(state: &State, r: &Recipient) -> Option<SyncSource> {
    let id = r.row.send_ref?;
    match r.row.send_kind? {
        SendKind::Bizmsg => {
            let b = state.bizmsg.rows.get(&id)?;
            Some(SyncSource {
                recipient_id: r.row.id,
                kind: "bizmsg".to_owned(),
                send_state: b.state.as_str().to_owned(),
                platform_id: b.success.clone(),
                result: b.item.result.clone(),
                code: b.item.result_code.clone(),
                reason: b.item.result_reason.clone(),
                last_error: b.last_error.clone(),
                fallback: b.item.fallback.clone(),
                at: b.updated_at,
            })
        }
        SendKind::Outbox => {
            let o = state.outbox.rows.get(&id)?;
            Some(SyncSource {
                recipient_id: r.row.id,
                kind: "outbox".to_owned(),
                send_state: o.state.as_str().to_owned(),
                platform_id: o.success.clone(),
                result: o.item.delivery_status.clone(),
                code: None,
                reason: o.item.delivery_error.clone(),
                last_error: o.last_error.clone(),
                fallback: None,
                at: o.item.delivery_at.unwrap_or(0).max(o.updated_at),
            })
        }
    }
}

#[async_trait]
impl CampaignStore for MemoryStore {
    async fn create_campaign(&self, c: &NewCampaign, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        if state.campaigns.campaigns.contains_key(&c.id) {
            return Ok(false);
        }
        let row = CampaignRow {
            id: c.id.clone(),
            name: c.name.clone(),
            channel: c.channel.clone(),
            account: c.account.clone(),
            spec: c.spec.clone(),
            state: CampaignState::Draft,
            rate_per_minute: c.rate_per_minute,
            quiet_hours: c.quiet_hours,
            start_at: c.start_at,
            link_key: c.link_key.clone(),
            summary: "{}".to_owned(),
            note: None,
            waiting_until: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        state.campaigns.campaigns.insert(c.id.clone(), row);
        Ok(true)
    }

    async fn add_campaign_recipients(
        &self,
        campaign: &str,
        account: &str,
        recipients: &[NewRecipient],
        now: EpochMs,
    ) -> Result<Added> {
        let mut state = self.lock()?;
        let c = &mut state.campaigns;
        if !c.campaigns.contains_key(campaign) {
            // The foreign key of the SQL schemas.
            return Err(crate::StoreError::Database(sqlx::Error::RowNotFound));
        }
        let mut added = Added::default();
        for r in recipients {
            let key = (campaign.to_owned(), r.recipient.clone());
            if c.recipient_ids.contains_key(&key) {
                added.duplicates += 1;
                continue;
            }
            let suppressed = c.suppressed(account, &r.suppression_key);
            c.last_id += 1;
            let id = c.last_id;
            let row = RecipientRow {
                id,
                campaign_id: campaign.to_owned(),
                recipient: r.recipient.clone(),
                variant: r.variant.clone(),
                variables: r.variables.clone(),
                line: r.line,
                state: match (suppressed, r.held) {
                    (true, _) => RecipientState::Suppressed,
                    (false, true) => RecipientState::Held,
                    (false, false) => RecipientState::Pending,
                },
                attempts: 0,
                send_kind: None,
                send_ref: None,
                platform_id: None,
                result_code: None,
                result_reason: None,
                fallback: None,
                sent_at: None,
                result_at: None,
                updated_at: now,
            };
            c.recipients.insert(
                id,
                Recipient {
                    row,
                    suppression_key: r.suppression_key.clone(),
                    lease_owner: None,
                    lease_until: None,
                    source_at: None,
                },
            );
            c.recipient_ids.insert(key, id);
            added.inserted += 1;
            added.suppressed += u64::from(suppressed);
        }
        Ok(added)
    }

    async fn set_campaign_summary(&self, campaign: &str, summary: &str, now: EpochMs) -> Result<()> {
        if let Some(c) = self.lock()?.campaigns.campaigns.get_mut(campaign) {
            c.summary = summary.to_owned();
            c.updated_at = now;
        }
        Ok(())
    }

    async fn get_campaign(&self, campaign: &str) -> Result<Option<CampaignRow>> {
        Ok(self.read()?.campaigns.campaigns.get(campaign).cloned())
    }

    async fn list_campaigns(&self, limit: u32) -> Result<Vec<CampaignRow>> {
        let state = self.read()?;
        let mut all: Vec<CampaignRow> = state.campaigns.campaigns.values().cloned().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn delete_campaign(&self, campaign: &str) -> Result<bool> {
        let mut state = self.lock()?;
        let c = &mut state.campaigns;
        c.clicks.retain(|(id, _, _), _| id != campaign);
        c.recipients.retain(|_, r| r.row.campaign_id != campaign);
        c.recipient_ids.retain(|(id, _), _| id != campaign);
        Ok(c.campaigns.remove(campaign).is_some())
    }

    async fn transition_campaign(
        &self,
        campaign: &str,
        from: &[CampaignState],
        to: CampaignState,
        note: Option<&str>,
        start_at: Option<EpochMs>,
        now: EpochMs,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        let Some(c) = state.campaigns.campaigns.get_mut(campaign).filter(|c| from.contains(&c.state)) else {
            return Ok(false);
        };
        c.state = to;
        c.note = note.map(str::to_owned);
        c.updated_at = now;
        c.waiting_until = None;
        c.start_at = start_at.or(c.start_at);
        if to == CampaignState::Running {
            c.started_at.get_or_insert(now);
        }
        if matches!(to, CampaignState::Done | CampaignState::Cancelled) {
            c.finished_at = Some(now);
        }
        Ok(true)
    }

    async fn set_campaign_waiting(&self, campaign: &str, until: Option<EpochMs>, now: EpochMs) -> Result<()> {
        if let Some(c) = self.lock()?.campaigns.campaigns.get_mut(campaign) {
            c.waiting_until = until;
            c.updated_at = now;
        }
        Ok(())
    }

    async fn due_campaigns(&self, now: EpochMs) -> Result<Vec<CampaignRow>> {
        let state = self.read()?;
        let mut due: Vec<CampaignRow> = state
            .campaigns
            .campaigns
            .values()
            .filter(|c| {
                c.state == CampaignState::Running
                    || (c.state == CampaignState::Scheduled && c.start_at.unwrap_or(0) <= now)
            })
            .cloned()
            .collect();
        due.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(due)
    }

    async fn claim_campaign_recipients(
        &self,
        campaign: &str,
        account: &str,
        worker: &str,
        limit: u32,
        lease_ms: EpochMs,
        now: EpochMs,
    ) -> Result<Claimed> {
        let mut state = self.lock()?;
        let c = &mut state.campaigns;
        let ids: Vec<i64> = c
            .recipients
            .values()
            .filter(|r| {
                r.row.campaign_id == campaign
                    && (r.row.state == RecipientState::Pending
                        || (r.row.state == RecipientState::Sending && r.lease_until.unwrap_or(0) < now))
            })
            .map(|r| r.row.id)
            .take(limit as usize)
            .collect();
        let mut claimed = Claimed::default();
        for id in ids {
            let suppressed = {
                let r = &c.recipients[&id];
                c.suppressed(account, &r.suppression_key)
            };
            let Some(r) = c.recipients.get_mut(&id) else { continue };
            r.row.attempts += 1;
            r.row.updated_at = now;
            if suppressed {
                r.row.state = RecipientState::Suppressed;
                r.lease_owner = None;
                r.lease_until = None;
                claimed.suppressed += 1;
            } else {
                r.row.state = RecipientState::Sending;
                r.lease_owner = Some(worker.to_owned());
                r.lease_until = Some(deadline(now, lease_ms));
                claimed.rows.push(r.row.clone());
            }
        }
        Ok(claimed)
    }

    async fn mark_campaign_recipient_queued(
        &self,
        id: i64,
        worker: &str,
        kind: SendKind,
        send_ref: i64,
        now: EpochMs,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        let Some(r) = state.campaigns.leased(id, worker) else { return Ok(false) };
        r.row.state = RecipientState::Queued;
        r.row.send_kind = Some(kind);
        r.row.send_ref = Some(send_ref);
        r.row.updated_at = now;
        r.lease_owner = None;
        r.lease_until = None;
        Ok(true)
    }

    async fn mark_campaign_recipient_failed(
        &self,
        id: i64,
        worker: &str,
        code: &str,
        reason: &str,
        now: EpochMs,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        let Some(r) = state.campaigns.leased(id, worker) else { return Ok(false) };
        r.row.state = RecipientState::Failed;
        r.row.result_code = Some(code.to_owned());
        r.row.result_reason = Some(reason.to_owned());
        r.row.result_at = Some(now);
        r.row.updated_at = now;
        r.lease_owner = None;
        r.lease_until = None;
        Ok(true)
    }

    async fn release_campaign_recipient(&self, id: i64, worker: &str) -> Result<()> {
        let mut state = self.lock()?;
        if let Some(r) = state.campaigns.leased(id, worker) {
            r.row.state = RecipientState::Pending;
            r.row.attempts = r.row.attempts.saturating_sub(1);
            r.lease_owner = None;
            r.lease_until = None;
        }
        Ok(())
    }

    async fn cancel_campaign_recipients(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        let mut state = self.lock()?;
        let mut n = 0;
        for r in state.campaigns.recipients.values_mut() {
            if r.row.campaign_id == campaign && matches!(r.row.state, RecipientState::Pending | RecipientState::Held) {
                r.row.state = RecipientState::Cancelled;
                r.row.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release_held_recipients(&self, campaign: &str, variant: &str, now: EpochMs) -> Result<u64> {
        let mut state = self.lock()?;
        let mut n = 0;
        for r in state.campaigns.recipients.values_mut() {
            if r.row.campaign_id == campaign && r.row.state == RecipientState::Held {
                r.row.state = RecipientState::Pending;
                variant.clone_into(&mut r.row.variant);
                r.row.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn set_campaign_spec(&self, campaign: &str, spec: &str, now: EpochMs) -> Result<()> {
        if let Some(c) = self.lock()?.campaigns.campaigns.get_mut(campaign) {
            spec.clone_into(&mut c.spec);
            c.updated_at = now;
        }
        Ok(())
    }

    async fn sync_campaign_results(&self, campaign: &str, now: EpochMs) -> Result<u64> {
        let mut state = self.lock()?;
        let following =
            [RecipientState::Queued, RecipientState::Accepted, RecipientState::Delivered, RecipientState::Failed];
        let updates: Vec<SyncSource> = state
            .campaigns
            .recipients
            .values()
            .filter(|r| r.row.campaign_id == campaign && following.contains(&r.row.state))
            .filter_map(|r| source(&state, r).filter(|s| s.at > r.source_at.unwrap_or(-1)))
            .filter(|s| matches!(s.send_state.as_str(), "accepted" | "dead" | "sent"))
            .collect();
        let mut changed = 0;
        for src in updates {
            let Some(to) = synced(&src) else { continue };
            let Some(r) = state.campaigns.recipients.get_mut(&src.recipient_id) else { continue };
            r.row.state = to.state;
            r.row.platform_id = src.platform_id.clone();
            r.row.result_code = to.code;
            r.row.result_reason = to.reason;
            r.row.fallback = src.fallback.clone();
            r.row.sent_at.get_or_insert(src.at);
            if matches!(to.state, RecipientState::Delivered | RecipientState::Failed) {
                r.row.result_at = Some(src.at);
            }
            r.source_at = Some(src.at);
            r.row.updated_at = now;
            changed += 1;
        }
        Ok(changed)
    }

    async fn get_campaign_recipient(&self, id: i64) -> Result<Option<RecipientRow>> {
        Ok(self.read()?.campaigns.recipients.get(&id).map(|r| r.row.clone()))
    }

    async fn campaign_recipients(
        &self,
        campaign: &str,
        state_filter: Option<RecipientState>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRow>> {
        let state = self.read()?;
        Ok(state
            .campaigns
            .recipients
            .range(after_id.saturating_add(1)..)
            .map(|(_, r)| &r.row)
            .filter(|r| r.campaign_id == campaign && state_filter.is_none_or(|s| r.state == s))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn campaign_counts(&self, campaign: &str) -> Result<CampaignCounts> {
        let state = self.read()?;
        let c = &state.campaigns;
        let mut states: BTreeMap<(String, RecipientState), u64> = BTreeMap::new();
        let mut fallbacks: BTreeMap<String, u64> = BTreeMap::new();
        let mut failures: BTreeMap<(String, String), (String, u64)> = BTreeMap::new();
        let mut variant_of = HashMap::new();
        for r in c.recipients.values().filter(|r| r.row.campaign_id == campaign) {
            let row = &r.row;
            variant_of.insert(row.id, row.variant.clone());
            *states.entry((row.variant.clone(), row.state)).or_default() += 1;
            if matches!(row.fallback.as_deref(), Some("sent" | "delivered")) {
                *fallbacks.entry(row.variant.clone()).or_default() += 1;
            }
            if row.state == RecipientState::Failed {
                let entry = failures
                    .entry((row.variant.clone(), row.result_code.clone().unwrap_or_default()))
                    .or_insert_with(|| (row.result_reason.clone().unwrap_or_default(), 0));
                let reason = row.result_reason.clone().unwrap_or_default();
                if reason < entry.0 {
                    entry.0 = reason;
                }
                entry.1 += 1;
            }
        }
        let mut clicks: BTreeMap<String, (HashSet<i64>, u64)> = BTreeMap::new();
        for ((id, recipient, _), (n, _)) in &c.clicks {
            if id == campaign
                && let Some(variant) = variant_of.get(recipient)
            {
                let entry = clicks.entry(variant.clone()).or_default();
                entry.0.insert(*recipient);
                entry.1 += n;
            }
        }
        let mut counts = CampaignCounts {
            states: states.into_iter().map(|((v, s), n)| (v, s, n)).collect(),
            fallbacks: fallbacks.into_iter().collect(),
            clicks: clicks.into_iter().map(|(v, (who, n))| (v, who.len() as u64, n)).collect(),
            failures: failures.into_iter().map(|((v, code), (reason, n))| (v, code, reason, n)).collect(),
        };
        counts.normalise();
        Ok(counts)
    }

    async fn campaign_timeline(&self, campaign: &str, bucket_ms: EpochMs) -> Result<Vec<(EpochMs, u64, u64)>> {
        let state = self.read()?;
        let c = &state.campaigns;
        let bucket_ms = bucket_ms.max(1);
        let mut delivered: BTreeMap<i64, i64> = BTreeMap::new();
        for r in c.recipients.values() {
            if r.row.campaign_id == campaign
                && r.row.state == RecipientState::Delivered
                && let Some(at) = r.row.result_at
            {
                *delivered.entry(at / bucket_ms * bucket_ms).or_default() += 1;
            }
        }
        let mut clickers: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
        for ((id, recipient, _), (_, first_at)) in &c.clicks {
            if id == campaign {
                clickers.entry(first_at / bucket_ms * bucket_ms).or_default().insert(*recipient);
            }
        }
        let delivered: Vec<(i64, i64)> = delivered.into_iter().collect();
        let clicks: Vec<(i64, i64)> = clickers.into_iter().map(|(b, who)| (b, who.len() as i64)).collect();
        Ok(merge_timeline(&delivered, &clicks))
    }

    async fn recent_campaign_counts(&self, since: EpochMs) -> Result<Vec<(String, RecipientState, u64)>> {
        let state = self.read()?;
        let c = &state.campaigns;
        let live: HashSet<&str> = c
            .campaigns
            .values()
            .filter(|x| {
                x.updated_at >= since
                    || matches!(x.state, CampaignState::Running | CampaignState::Scheduled | CampaignState::Paused)
            })
            .map(|x| x.id.as_str())
            .collect();
        let mut counts: BTreeMap<(String, RecipientState), u64> = BTreeMap::new();
        for r in c.recipients.values().filter(|r| live.contains(r.row.campaign_id.as_str())) {
            *counts.entry((r.row.campaign_id.clone(), r.row.state)).or_default() += 1;
        }
        Ok(counts.into_iter().map(|((c, s), n)| (c, s, n)).collect())
    }

    async fn record_click(&self, campaign: &str, recipient: i64, link: u32, now: EpochMs) -> Result<bool> {
        let mut state = self.lock()?;
        let entry = state.campaigns.clicks.entry((campaign.to_owned(), recipient, link)).or_insert((0, now));
        entry.0 += 1;
        Ok(entry.0 == 1)
    }

    async fn suppress(&self, entry: &Suppression) -> Result<bool> {
        let mut state = self.lock()?;
        let key = (entry.account.clone(), entry.recipient_key.clone());
        if state.campaigns.suppressions.contains_key(&key) {
            return Ok(false);
        }
        state.campaigns.suppressions.insert(key, entry.clone());
        Ok(true)
    }

    async fn unsuppress(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Ok(self.lock()?.campaigns.suppressions.remove(&(account.to_owned(), recipient_key.to_owned())).is_some())
    }

    async fn list_suppressions(&self, account: Option<&str>, limit: u32) -> Result<Vec<Suppression>> {
        let state = self.read()?;
        let mut all: Vec<Suppression> =
            state.campaigns.suppressions.values().filter(|s| account.is_none_or(|a| s.account == a)).cloned().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.recipient_key.cmp(&b.recipient_key)));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn is_suppressed(&self, account: &str, recipient_key: &str) -> Result<bool> {
        Ok(self.read()?.campaigns.suppressed(account, recipient_key))
    }
}
