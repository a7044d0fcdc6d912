//! The local quota guard: Kakao's Talk Message quotas are daily counts per app, per sender, per
//! recipient and per sender/recipient pair (reference/kakao.md §3: 30,000 / 100 / 100 / 20), and
//! cannot be raised. Sends that would go beyond them are refused before the call, so a runaway
//! agent cannot burn the day's quota or get the app flagged.
//!
//! The counts live in a ledger per KST day (Kakao's quota day) in [`TalkState`], updated under a
//! named lock so several processes on one store count together. A send reserves before the call
//! and gives back what Kakao did not deliver; a quota error from Kakao marks that quota as used
//! up for the rest of the day.

use super::error::{QuotaKind, TalkError};
use super::models::FriendUuid;
use super::token::{TalkState, now_ms};
use clawbridge_core::EpochMs;
use clawbridge_core::time::{KST, timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NAMESPACE: &str = "kakao.quota";
const LOCK: &str = "kakao.quota.lock";
const LOCK_TTL: Duration = Duration::from_secs(10);

/// The daily limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Talk Message sends of the app per day.
    pub app_per_day: u32,
    /// Messages one user sends to friends per day.
    pub sender_per_day: u32,
    /// Messages one user receives per day.
    pub receiver_per_day: u32,
    /// Messages from one sender to one receiver per day.
    pub pair_per_day: u32,
}

impl Default for QuotaLimits {
    /// Kakao's published numbers.
    fn default() -> Self {
        Self { app_per_day: 30_000, sender_per_day: 100, receiver_per_day: 100, pair_per_day: 20 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Ledger {
    #[serde(default)]
    app: u32,
    #[serde(default)]
    senders: BTreeMap<String, u32>,
    #[serde(default)]
    receivers: BTreeMap<String, u32>,
    #[serde(default)]
    pairs: BTreeMap<String, u32>,
}

fn pair_key(sender: &str, receiver: &str) -> String {
    format!("{sender}>{receiver}")
}

/// Today's counts, for `kakao token`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuotaUsage {
    /// The KST day (`YYYY-MM-DD`).
    pub day: String,
    /// App-wide sends today.
    pub app: u32,
    /// The sender's sends today.
    pub sender: u32,
}

/// What a reservation granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    day: String,
    sender: String,
    /// Receivers counted and allowed to be sent to.
    pub granted: Vec<FriendUuid>,
    /// Receivers refused locally, with the quota that would be exceeded.
    pub refused: Vec<(FriendUuid, QuotaKind)>,
    /// A memo: counted only against the app's quota.
    memo: bool,
}

/// Counts sends against Kakao's daily quotas before they are made.
pub struct QuotaGuard {
    state: Arc<dyn TalkState>,
    limits: QuotaLimits,
    /// Quotas are per app: the ledger of one app is not another's.
    app: String,
    local: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for QuotaGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaGuard").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl QuotaGuard {
    /// A guard of the app whose REST API key is `app_key` (only a digest of it is stored), over
    /// `state` with `limits`.
    pub fn new(state: Arc<dyn TalkState>, limits: QuotaLimits, app_key: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(app_key.as_bytes());
        let app = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self { state, limits, app, local: tokio::sync::Mutex::new(()) }
    }

    /// Reserves one memo ("send to me"): counts only against the app's daily quota.
    ///
    /// # Errors
    /// [`TalkError::Quota`] (local) when the app's quota is used up; storage errors.
    pub async fn reserve_memo(&self, sender: &str) -> Result<Reservation, TalkError> {
        let sender = sender.to_owned();
        let limits = self.limits;
        let counted = self
            .update(move |_, ledger| {
                let fits = ledger.app < limits.app_per_day;
                if fits {
                    ledger.app += 1;
                }
                fits
            })
            .await?;
        if !counted {
            return Err(self.local_error(QuotaKind::App));
        }
        Ok(Reservation { day: kst_day(now_ms()), sender, granted: vec![], refused: vec![], memo: true })
    }

    /// Reserves a friends send from `sender` to each of `receivers`, in order, as far as every
    /// quota allows; the rest are refused with the quota that would be exceeded.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn reserve_friends(&self, sender: &str, receivers: &[FriendUuid]) -> Result<Reservation, TalkError> {
        let sender = sender.to_owned();
        let receivers = receivers.to_vec();
        let limits = self.limits;
        self.update(move |day, ledger| {
            let mut granted = Vec::new();
            let mut refused = Vec::new();
            for receiver in &receivers {
                let key = receiver.as_str();
                let sent_by_sender = ledger.senders.get(&sender).copied().unwrap_or(0);
                let received = ledger.receivers.get(key).copied().unwrap_or(0);
                let pair = ledger.pairs.get(&pair_key(&sender, key)).copied().unwrap_or(0);
                let exceeded = if ledger.app >= limits.app_per_day {
                    Some(QuotaKind::App)
                } else if sent_by_sender >= limits.sender_per_day {
                    Some(QuotaKind::SenderDaily)
                } else if received >= limits.receiver_per_day {
                    Some(QuotaKind::ReceiverDaily)
                } else if pair >= limits.pair_per_day {
                    Some(QuotaKind::PairDaily)
                } else {
                    None
                };
                if let Some(quota) = exceeded {
                    refused.push((receiver.clone(), quota));
                    continue;
                }
                ledger.app += 1;
                *ledger.senders.entry(sender.clone()).or_default() += 1;
                *ledger.receivers.entry(key.to_owned()).or_default() += 1;
                *ledger.pairs.entry(pair_key(&sender, key)).or_default() += 1;
                granted.push(receiver.clone());
            }
            Reservation { day: day.to_owned(), sender: sender.clone(), granted, refused, memo: false }
        })
        .await
    }

    /// Gives back what Kakao did not deliver: the `undelivered` receivers of a friends send, or
    /// a memo reservation as a whole.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn release(&self, reservation: &Reservation, undelivered: &[FriendUuid]) -> Result<(), TalkError> {
        let undelivered: Vec<FriendUuid> =
            undelivered.iter().filter(|r| reservation.granted.contains(r)).cloned().collect();
        if undelivered.is_empty() && !reservation.memo {
            return Ok(());
        }
        let reservation = reservation.clone();
        self.update_day(&reservation.day.clone(), move |ledger| {
            if reservation.memo {
                ledger.app = ledger.app.saturating_sub(1);
                return;
            }
            for receiver in &undelivered {
                ledger.app = ledger.app.saturating_sub(1);
                decrement(&mut ledger.senders, &reservation.sender);
                decrement(&mut ledger.receivers, receiver.as_str());
                decrement(&mut ledger.pairs, &pair_key(&reservation.sender, receiver.as_str()));
            }
        })
        .await
    }

    /// Records that Kakao reported `quota` used up, so later sends today are refused locally.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mark_exhausted(
        &self,
        quota: QuotaKind,
        sender: &str,
        receivers: &[FriendUuid],
    ) -> Result<(), TalkError> {
        let limits = self.limits;
        let sender = sender.to_owned();
        let receivers = receivers.to_vec();
        let day = kst_day(now_ms());
        self.update_day(&day, move |ledger| match quota {
            QuotaKind::App => ledger.app = ledger.app.max(limits.app_per_day),
            QuotaKind::SenderDaily => {
                let n = ledger.senders.entry(sender.clone()).or_default();
                *n = (*n).max(limits.sender_per_day);
            }
            QuotaKind::ReceiverDaily => {
                for r in &receivers {
                    let n = ledger.receivers.entry(r.as_str().to_owned()).or_default();
                    *n = (*n).max(limits.receiver_per_day);
                }
            }
            QuotaKind::PairDaily => {
                for r in &receivers {
                    let n = ledger.pairs.entry(pair_key(&sender, r.as_str())).or_default();
                    *n = (*n).max(limits.pair_per_day);
                }
            }
            QuotaKind::Paid | QuotaKind::SenderMonthly | QuotaKind::Other(_) => {}
        })
        .await
    }

    /// Today's counts for `sender`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn usage(&self, sender: &str) -> Result<QuotaUsage, TalkError> {
        let day = kst_day(now_ms());
        let ledger = self.read(&day).await?;
        Ok(QuotaUsage { app: ledger.app, sender: ledger.senders.get(sender).copied().unwrap_or(0), day })
    }

    /// The limits in force.
    pub fn limits(&self) -> QuotaLimits {
        self.limits
    }

    /// The error for a locally refused send.
    pub fn local_error(&self, quota: QuotaKind) -> TalkError {
        TalkError::Quota { quota, code: None, msg: "counted locally before sending".to_owned(), local: true }
    }

    async fn update<R>(&self, change: impl FnOnce(&str, &mut Ledger) -> R + Send) -> Result<R, TalkError>
    where
        R: Send,
    {
        let day = kst_day(now_ms());
        let mut out = None;
        self.update_day(&day.clone(), |ledger| out = Some(change(&day, ledger))).await?;
        out.ok_or_else(|| TalkError::Storage("quota ledger update did not run".to_owned()))
    }

    async fn update_day(&self, day: &str, change: impl FnOnce(&mut Ledger) + Send) -> Result<(), TalkError> {
        let _local = self.local.lock().await;
        let started = tokio::time::Instant::now();
        while !self.state.try_lock(LOCK, LOCK_TTL).await? {
            if started.elapsed() > LOCK_TTL * 2 {
                return Err(TalkError::Storage("the Kakao quota ledger stayed locked by another process".to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = async {
            let mut ledger = self.read(day).await?;
            change(&mut ledger);
            let json = serde_json::to_string(&ledger).map_err(|e| TalkError::Storage(e.to_string()))?;
            // Kept two days: long enough for "today" in every time zone.
            self.state.put(NAMESPACE, &format!("{}/{day}", self.app), &json, Some(Duration::from_secs(48 * 3600))).await
        }
        .await;
        let _ = self.state.unlock(LOCK).await;
        result
    }

    async fn read(&self, day: &str) -> Result<Ledger, TalkError> {
        match self.state.get(NAMESPACE, &format!("{}/{day}", self.app)).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| TalkError::Storage(format!("the Kakao quota ledger of {day} is unreadable: {e}"))),
            None => Ok(Ledger::default()),
        }
    }
}

fn decrement(map: &mut BTreeMap<String, u32>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
    }
}

/// The KST calendar day of `now` as `YYYY-MM-DD`.
pub fn kst_day(now: EpochMs) -> String {
    KST.to_datetime(timestamp(now)).date().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talk::token::MemoryState;

    fn guard(state: &MemoryState, limits: QuotaLimits) -> QuotaGuard {
        QuotaGuard::new(Arc::new(state.clone()), limits, "app-key")
    }

    fn uuids(n: usize) -> Vec<FriendUuid> {
        (0..n).map(|i| FriendUuid::new(format!("r{i}"))).collect()
    }

    fn id(s: &str) -> FriendUuid {
        FriendUuid::from(s)
    }

    #[test]
    fn the_quota_day_is_korean() {
        // 2026-11-20 15:00 UTC is already 2026-11-21 in Seoul.
        assert_eq!(kst_day(1_795_186_800_000), "2026-11-21");
        assert_eq!(kst_day(1_795_186_800_000 - 1), "2026-11-20");
        assert_eq!(kst_day(0), "1970-01-01");
    }

    #[tokio::test]
    async fn pair_sender_receiver_and_app_limits_refuse_before_the_call() {
        let state = MemoryState::default();
        let g =
            guard(&state, QuotaLimits { app_per_day: 1000, sender_per_day: 5, receiver_per_day: 3, pair_per_day: 2 });
        let r = g.reserve_friends("me", &["a".into(), "a".into(), "a".into()]).await.unwrap();
        assert_eq!(r.granted, [id("a"), id("a")]);
        assert_eq!(r.refused, [(id("a"), QuotaKind::PairDaily)]);
        let r = g.reserve_friends("me", &uuids(5)).await.unwrap();
        assert_eq!(r.granted.len(), 3, "sender quota 5, 2 used");
        assert!(r.refused.iter().all(|(_, q)| *q == QuotaKind::SenderDaily));
        // Another sender to a receiver already at 1: receiver limit 3.
        let other = guard(&state.another_process(), g.limits());
        let r = other.reserve_friends("you", &["r0".into(), "r0".into(), "r0".into()]).await.unwrap();
        assert_eq!(r.granted.len(), 2);
        assert_eq!(r.refused, [(id("r0"), QuotaKind::ReceiverDaily)]);
        let g = guard(&state, QuotaLimits { app_per_day: 7, ..QuotaLimits::default() });
        let err = g.reserve_memo("me").await.unwrap_err();
        assert!(matches!(err, TalkError::Quota { quota: QuotaKind::App, local: true, .. }), "{err}");
        let other_app =
            QuotaGuard::new(Arc::new(state.clone()), QuotaLimits { app_per_day: 7, ..QuotaLimits::default() }, "k2");
        assert!(other_app.reserve_memo("me").await.is_ok(), "another app counts separately");
    }

    #[tokio::test]
    async fn undelivered_sends_are_given_back_and_kakao_errors_exhaust() {
        let state = MemoryState::default();
        let g =
            guard(&state, QuotaLimits { app_per_day: 10, sender_per_day: 2, receiver_per_day: 10, pair_per_day: 10 });
        let r = g.reserve_friends("me", &uuids(2)).await.unwrap();
        assert_eq!(r.granted.len(), 2);
        g.release(&r, &[id("r1")]).await.unwrap();
        assert_eq!(g.usage("me").await.unwrap().sender, 1);
        assert_eq!(g.reserve_friends("me", &uuids(1)).await.unwrap().granted.len(), 1);
        g.release(&r, &[id("r1")]).await.unwrap();
        g.mark_exhausted(QuotaKind::SenderDaily, "me", &[]).await.unwrap();
        let r = g.reserve_friends("me", &uuids(1)).await.unwrap();
        assert_eq!(r.refused, [(id("r0"), QuotaKind::SenderDaily)]);
    }
}
