//! An answer for a turn whose handler may be waiting in another replica (see `rendezvous`).
//!
//! The answer is kept once, durably, as the user's pending answer of this turn, and `send`
//! returns at once. The turn's handler takes it at its deadline and answers inline; a newer turn
//! or "답변 보기" may take it instead; whoever takes it shows it. After the handler's deadline a
//! best-effort follow-up moves an answer nobody took to the callback the handler promised, or
//! announces it through the Event API. A crash after `send` returned leaves the answer kept for
//! the user's next utterance.

use super::{Outgoing, callback, next_turn, receipt};
use crate::chatbot::bot::Bot;
use crate::chatbot::now_ms;
use crate::chatbot::rendezvous::{AfterOffer, after_offer, follow_up_after};
use crate::chatbot::response::SkillResponse;
use clawbridge_channel::Bridge;
use clawbridge_core::{EpochMs, Receipt, SendError};
use std::sync::Arc;

/// Offers `pages`, the answer to turn `id`, to a handler whose deadline is `deadline`.
pub(super) async fn offer(
    bot: &Arc<Bot>,
    bridge: Arc<dyn Bridge>,
    out: Outgoing,
    id: String,
    pages: Vec<SkillResponse>,
    deadline: EpochMs,
) -> Result<Receipt, SendError> {
    let key = next_turn::stash(bot, &*bridge, &out.peer, &id, &pages).await?;
    let wait = follow_up_after(deadline, now_ms());
    let bot = bot.clone();
    let receipt = receipt("inline", &id);
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        follow_up(&bot, &*bridge, &out, &key).await;
    });
    Ok(receipt)
}

/// After the handler's deadline: where the offered answer kept under `key` must still go.
async fn follow_up(bot: &Bot, bridge: &dyn Bridge, out: &Outgoing, key: &str) {
    let space = bot.spaces.pending(&out.peer);
    let kept = match space.get(bridge, key).await {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow up an offered Kakao answer; it waits for the next message");
            return;
        }
    };
    let id = out.message_id.as_deref().unwrap_or_default();
    let promised = match &kept {
        Some(_) => bot.spaces.turn.get(bridge, id).await.ok().flatten(),
        None => None,
    };
    let result = match (after_offer(kept.is_some(), promised), kept) {
        (AfterOffer::ByCallback(turn), _) => match space.take(bridge, key).await {
            Ok(Some(kept)) => {
                callback::deliver(bot, bridge, out, &turn.url, turn.received_at, kept.pages).await.map(drop)
            }
            _ => Ok(()),
        },
        // A newer turn of the user waiting here shows it now.
        (AfterOffer::KeptForNextTurn, Some(_)) if bot.turns.has_waiting(&out.peer) => {
            match space.take(bridge, key).await {
                Ok(Some(kept)) => next_turn::keep(bot, bridge, out, kept.pages).await.map(drop),
                _ => Ok(()),
            }
        }
        // Else the next utterance does.
        (AfterOffer::KeptForNextTurn, Some(kept)) => {
            if let Some(first) = kept.pages.first() {
                next_turn::kept(bot, bridge, out, first).await;
            }
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "an offered Kakao answer could not be moved on");
    }
}
