//! The report of a campaign from the store's numbers.

use super::Spec;
use clawbridge_campaign::report::{Bucket, CampaignInfo, Counts, FailureCount, Report, VariantReport};
use clawbridge_core::time::HOUR_MS;
use clawbridge_store::{CampaignCounts, CampaignRow, RecipientState, SharedStore, StoreError};
use std::collections::BTreeMap;

/// What Kakao's and WhatsApp's common codes mean, for the failure table.
fn meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "3018" => "cannot send (not an active user)",
        "3019" => "not a KakaoTalk user",
        "3022" => "outside the sending hours",
        "3008" => "invalid phone number",
        "3016" => "content does not match the template",
        "131049" => "WhatsApp per-user marketing limit (not retried)",
        "131047" => "outside the 24-hour window",
        "131026" => "message undeliverable",
        "131050" => "the user stopped marketing messages",
        "invalid" => "refused before sending",
        _ => return None,
    })
}

/// Adds a recipient state's count to `counts`.
fn add(counts: &mut Counts, state: RecipientState, n: u64) {
    counts.recipients += n;
    match state {
        RecipientState::Pending
        | RecipientState::Sending
        | RecipientState::Queued
        | RecipientState::Cancelled
        | RecipientState::Held => {
            counts.pending += n;
        }
        RecipientState::Accepted => counts.accepted += n,
        RecipientState::Delivered => {
            counts.accepted += n;
            counts.delivered += n;
        }
        RecipientState::Failed => counts.failed += n,
        RecipientState::Suppressed => counts.suppressed += n,
    }
}

/// Counts per variant (in the spec's order) and in total.
pub fn tally(spec: &Spec, counts: &CampaignCounts) -> (Counts, Vec<(String, Counts)>) {
    let mut by: BTreeMap<String, Counts> = BTreeMap::new();
    for (variant, state, n) in &counts.states {
        add(by.entry(variant.clone()).or_default(), *state, *n);
    }
    for (variant, n) in &counts.fallbacks {
        by.entry(variant.clone()).or_default().fallbacks += n;
    }
    for (variant, unique, n) in &counts.clicks {
        let c = by.entry(variant.clone()).or_default();
        c.unique_clicks += unique;
        c.clicks += n;
    }
    let mut total = Counts::default();
    for c in by.values() {
        total.recipients += c.recipients;
        total.suppressed += c.suppressed;
        total.pending += c.pending;
        total.accepted += c.accepted;
        total.delivered += c.delivered;
        total.failed += c.failed;
        total.fallbacks += c.fallbacks;
        total.unique_clicks += c.unique_clicks;
        total.clicks += c.clicks;
    }
    let variants =
        spec.variants.iter().map(|v| (v.name.clone(), by.get(&v.name).copied().unwrap_or_default())).collect();
    (total, variants)
}

/// `10% first, the winner by ctr after 2 h: B` (or `… not picked yet`).
pub fn describe_test(test: &super::AbTest) -> String {
    format!(
        "{}% first, the winner by {} after {}: {}",
        test.share,
        test.by,
        clawbridge_campaign::schedule::duration_label(test.pick_after_ms),
        test.winner.as_deref().unwrap_or("not picked yet")
    )
}

/// The report of `campaign`.
///
/// # Errors
/// The store failed.
pub async fn build(store: &SharedStore, campaign: &CampaignRow) -> Result<Report, StoreError> {
    let spec: Option<Spec> = serde_json::from_str(&campaign.spec).ok();
    let counts = store.campaign_counts(&campaign.id).await?;
    let timeline = store.campaign_timeline(&campaign.id, HOUR_MS).await?;
    let info = CampaignInfo {
        id: campaign.id.clone(),
        name: campaign.name.clone(),
        channel: campaign.channel.clone(),
        state: campaign.state.as_str().to_owned(),
        created_at: campaign.created_at,
        test: spec.as_ref().and_then(|s| s.test.as_ref()).map(describe_test),
    };
    let (totals, variants) = match &spec {
        Some(spec) => tally(spec, &counts),
        None => (Counts::default(), Vec::new()),
    };
    let variants = variants
        .into_iter()
        .map(|(name, c)| {
            let description =
                spec.as_ref().and_then(|s| s.variant(&name)).map(super::VariantSpec::describe).unwrap_or_default();
            VariantReport::new(name, description, c)
        })
        .collect();
    let mut failures: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (_, code, reason, n) in &counts.failures {
        let entry = failures
            .entry(code.clone())
            .or_insert_with(|| (meaning(code).map_or_else(|| reason.clone(), |m| m.to_owned()), 0));
        entry.1 += n;
    }
    let failures = failures.into_iter().map(|(code, (reason, count))| FailureCount { code, reason, count }).collect();
    let timeline = timeline.into_iter().map(|(start, delivered, clicks)| Bucket { start, delivered, clicks }).collect();
    Ok(Report::new(info, totals, variants, failures, timeline))
}
