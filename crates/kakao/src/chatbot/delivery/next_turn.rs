//! Answers nobody waits for: shown by a newer turn of the user, or kept for the next utterance;
//! and the "더 보기" continuation of a long answer. Kept answers are taken, never read, so each
//! is shown once.

use super::{Outgoing, announce, receipt, store_error};
use crate::chatbot::bot::Bot;
use crate::chatbot::now_ms;
use crate::chatbot::render::merge;
use crate::chatbot::rendezvous::{Effect, hand_over};
use crate::chatbot::response::{MAX_QUICK_REPLIES, QuickReply, SkillResponse};
use crate::chatbot::state::{MORE_TTL, PENDING_TTL, Pending, is_pending_of, pending_key};
use clawbridge_channel::Bridge;
use clawbridge_core::ids::mask;
use clawbridge_core::{Receipt, SendError};

/// Kept answers of a user looked at, oldest first.
const LOOK_AT: u32 = 20;

/// Keeps the continuation pages for "더 보기".
pub(in crate::chatbot) async fn store_more(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    rest: &[SkillResponse],
) -> Result<(), SendError> {
    if rest.is_empty() {
        return Ok(());
    }
    bot.spaces.more.put(bridge, peer, &rest.to_vec(), Some(MORE_TTL)).await.map_err(store_error)
}

/// Keeps `pages`, the answer to turn `id`, for the user's next utterance; returns its key.
pub(in crate::chatbot) async fn stash(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    id: &str,
    pages: &[SkillResponse],
) -> Result<String, SendError> {
    let key = pending_key(now_ms(), bot.next_seq(), id);
    let pending = Pending { pages: pages.to_vec() };
    bot.spaces.pending(peer).put(bridge, &key, &pending, Some(PENDING_TTL)).await.map_err(store_error)?;
    Ok(key)
}

/// Takes the user's oldest kept answer.
pub(in crate::chatbot) async fn take_pending(bot: &Bot, bridge: &dyn Bridge, peer: &str) -> Option<Pending> {
    take_first(bot, bridge, peer, |_| true).await
}

/// Takes the answer kept for turn `message_id` (offered by another replica for its handler).
pub(in crate::chatbot) async fn take_own(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    message_id: &str,
) -> Option<Pending> {
    take_first(bot, bridge, peer, |key| is_pending_of(key, message_id)).await
}

async fn take_first(bot: &Bot, bridge: &dyn Bridge, peer: &str, wanted: impl Fn(&str) -> bool) -> Option<Pending> {
    take_first_keyed(bot, bridge, peer, wanted).await.map(|(_, pending)| pending)
}

/// [`take_first`] with the key it was kept under, so that it can be [put back](put_back).
async fn take_first_keyed(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    wanted: impl Fn(&str) -> bool,
) -> Option<(String, Pending)> {
    let space = bot.spaces.pending(peer);
    let mut keys: Vec<String> =
        space.list(bridge, LOOK_AT).await.ok()?.into_iter().map(|e| e.key).filter(|k| wanted(k)).collect();
    keys.sort();
    for key in keys {
        if let Ok(Some(pending)) = space.take(bridge, &key).await
            && !pending.pages.is_empty()
        {
            return Some((key, pending));
        }
    }
    None
}

/// Puts a kept answer taken by [`with_pending_first_keyed`] back under its own key (same place in
/// the user's queue), when what it was taken for did not happen.
pub(in crate::chatbot) async fn put_back(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    taken: Option<(String, Pending)>,
) -> Result<(), SendError> {
    let Some((key, pending)) = taken else { return Ok(()) };
    bot.spaces.pending(peer).put(bridge, &key, &pending, Some(PENDING_TTL)).await.map_err(store_error)
}

/// The user's oldest kept answer in front of `pages[0]` when both fit in one response; returns
/// (response to show, its continuation, answer pushed behind it when they did not fit).
pub(in crate::chatbot) async fn with_pending_first(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    pages: Vec<SkillResponse>,
) -> (SkillResponse, Vec<SkillResponse>, Option<Vec<SkillResponse>>) {
    let (shown, rest, behind, _) = with_pending_first_keyed(bot, bridge, peer, pages).await;
    (shown, rest, behind)
}

/// A kept answer taken together with the key it was kept under.
pub(in crate::chatbot) type Taken = Option<(String, Pending)>;

/// [`with_pending_first`] that also returns the kept answer it took, so that a caller whose
/// delivery does not happen can [put it back](put_back) instead of losing it.
pub(in crate::chatbot) async fn with_pending_first_keyed(
    bot: &Bot,
    bridge: &dyn Bridge,
    peer: &str,
    pages: Vec<SkillResponse>,
) -> (SkillResponse, Vec<SkillResponse>, Option<Vec<SkillResponse>>, Taken) {
    let Some((key, pending)) = take_first_keyed(bot, bridge, peer, |_| true).await else {
        let mut pages = pages.into_iter();
        let first = pages.next().unwrap_or_else(|| SkillResponse::text("…"));
        return (first, pages.collect(), None, None);
    };
    let taken = Some((key, pending.clone()));
    if pending.pages.len() == 1
        && let Some(merged) = merge(&pending.pages[0], &pages[0])
    {
        return (merged, pages[1..].to_vec(), None, taken);
    }
    let mut shown = pending.pages.into_iter();
    let mut first = shown.next().unwrap_or_else(|| SkillResponse::text("…"));
    let rest: Vec<SkillResponse> = shown.collect();
    if rest.is_empty() {
        add_quick_reply(&mut first, &bot.settings.fetch_label);
    }
    (first, rest, Some(pages), taken)
}

/// Adds a `message` quick reply `label` unless it is there or the response has ten.
pub(in crate::chatbot) fn add_quick_reply(response: &mut SkillResponse, label: &str) {
    if let Some(template) = response.template.as_mut()
        && template.quick_replies.len() < MAX_QUICK_REPLIES
        && !template.quick_replies.iter().any(|q| q.label == label)
    {
        template.quick_replies.push(QuickReply::message(label, label));
    }
}

/// No handler waits for this answer: a handler of a newer turn of the same user shows it, else it
/// is kept for the next utterance (and announced through the Event API when configured).
pub(super) async fn keep(
    bot: &Bot,
    bridge: &dyn Bridge,
    out: &Outgoing,
    pages: Vec<SkillResponse>,
) -> Result<Receipt, SendError> {
    let id = out.key();
    if let Effect::HandOver(waiters) = bot.turns.answer(None, &out.peer) {
        store_more(bot, bridge, &out.peer, &pages[1..]).await?;
        if hand_over(waiters, &pages[0]) {
            metrics::counter!("clawbridge_kakao_replies_total", "via" => "newer_turn").increment(1);
            return Ok(receipt("inline", &id));
        }
    }
    stash(bot, bridge, &out.peer, &id, &pages).await?;
    kept(bot, bridge, out, &pages[0]).await;
    Ok(receipt("pending", &id))
}

/// An answer stays kept for the next utterance: counted, logged and announced.
pub(super) async fn kept(bot: &Bot, bridge: &dyn Bridge, out: &Outgoing, first: &SkillResponse) {
    metrics::counter!("clawbridge_kakao_replies_total", "via" => "next_turn").increment(1);
    tracing::info!(peer = %mask(&out.peer), "answer kept for the user's next message");
    announce::late_answer(bot, bridge, out, first).await;
}
