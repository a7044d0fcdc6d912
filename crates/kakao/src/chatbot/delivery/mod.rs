//! Where an answer goes, in the order `send` tries:
//!
//! 1. the turn's handler waits in this process: handed over (**inline**), or, when it promised
//!    the callback, POSTed to the turn's **callback** URL;
//! 2. another replica's handler may still wait: **offered** through the store (`offer`);
//! 3. the handler promised the callback in another process: POSTed to the stored URL;
//! 4. nobody waits: a newer turn of the user shows it, else it is kept for the **next turn**
//!    (and **announced** through the Event API when configured).

mod announce;
mod callback;
mod next_turn;
mod offer;

pub use callback::CALLBACK_WINDOW_MS;
pub(super) use next_turn::{add_quick_reply, stash, store_more, take_own, take_pending, with_pending_first};

use super::bot::Bot;
use super::extra::KakaoReply;
use super::now_ms;
use super::render::render_answer;
use super::rendezvous::{Effect, hand_over, offer_until};
use super::response::SkillResponse;
use clawbridge_channel::BridgeError;
use clawbridge_core::{OutboundMessage, Receipt, SendError};
use std::sync::Arc;

/// An answer on its way, with what its routes need to know of its turn.
#[derive(Clone, Debug)]
struct Outgoing {
    /// The user.
    peer: String,
    /// The turn it answers; `None` for a notice (a pairing approval).
    message_id: Option<String>,
    /// The turn's data the reply carries (its pages are taken out and passed along separately).
    reply: KakaoReply,
}

impl Outgoing {
    /// The message's answer and its pages: the rendered SkillResponses, or a notice's text
    /// rendered now.
    fn of(msg: &OutboundMessage, more_label: &str) -> (Self, Vec<SkillResponse>) {
        let mut reply = KakaoReply::of(msg);
        let mut pages = std::mem::take(&mut reply.pages);
        if pages.is_empty() {
            pages = render_answer(msg.text.as_deref().unwrap_or(""), more_label);
        }
        let out =
            Self { peer: msg.peer.to_string(), message_id: msg.reply_to.as_ref().map(ToString::to_string), reply };
        (out, pages)
    }

    /// The name of its receipt and kept copy: the turn's id, or a notice's own.
    fn key(&self) -> String {
        self.message_id.clone().unwrap_or_else(|| format!("notice-{}", now_ms()))
    }
}

fn store_error(e: BridgeError) -> SendError {
    SendError::transient(e.0)
}

fn receipt(via: &str, id: &str) -> Receipt {
    Receipt { platform_message_id: Some(format!("{via}:{id}")) }
}

/// Delivers one answer of `bot` (the channel's `send`).
pub(super) async fn send(bot: &Arc<Bot>, msg: &OutboundMessage) -> Result<Receipt, SendError> {
    let bridge = bot.bridge();
    let (out, pages) = Outgoing::of(msg, &bot.settings.more_label);

    // 1. The handler of this turn (or, for a notice, of this peer) is in this process.
    match bot.turns.answer(out.message_id.as_deref(), &out.peer) {
        Effect::HandOver(waiters) => {
            next_turn::store_more(bot, &*bridge, &out.peer, &pages[1..]).await?;
            if let Some(id) = &out.message_id {
                // Kept briefly: a Kakao retry of this request (our response got lost) shows it again.
                let ttl = bot.shared.config.dedup_window;
                bot.spaces.answer.put(&*bridge, id, &pages[0], Some(ttl)).await.map_err(store_error)?;
            }
            if hand_over(waiters, &pages[0]) {
                metrics::counter!("clawbridge_kakao_replies_total", "via" => "inline").increment(1);
                return Ok(Receipt { platform_message_id: out.message_id.map(|id| format!("inline:{id}")) });
            }
            // The handler went away (Kakao closed the request): keep the answer.
        }
        Effect::PostCallback { url, received_at, settle } => {
            // Let the handler's `useCallback` answer reach Kakao before the callback does.
            tokio::time::sleep(settle).await;
            return callback::deliver(bot, &*bridge, &out, &url, received_at, pages).await;
        }
        _ => {}
    }
    if let Some(id) = &out.message_id {
        // 2. Another replica's handler may still be waiting for this turn.
        if let Some(deadline) = offer_until(out.reply.received_at, bot.settings.sync_deadline, now_ms()) {
            let id = id.clone();
            return offer::offer(bot, bridge, out, id, pages, deadline).await;
        }
        // 3. The handler answered useCallback, possibly in another process.
        if let Some(turn) = bot.spaces.turn.get(&*bridge, id).await.map_err(store_error)? {
            return callback::deliver(bot, &*bridge, &out, &turn.url, turn.received_at, pages).await;
        }
    }
    // 4. Nobody waits.
    next_turn::keep(bot, &*bridge, &out, pages).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatbot::extra::KakaoTurn;
    use clawbridge_core::InboundMessage;

    #[test]
    fn an_answer_brings_its_pages_and_a_notice_is_rendered_from_its_text() {
        let inbound = InboundMessage::text("kakao", "default", "pf-1", "rid:1", "질문");
        let turn =
            KakaoTurn { received_at: Some(1_000), bot_user_key: Some("bu-1".to_owned()), ..KakaoTurn::default() };
        let mut answer = OutboundMessage::reply_text(&inbound, "답");
        answer.extra = KakaoReply::answering(&turn, render_answer("답", "더 보기")).to_channel_data();
        let (out, pages) = Outgoing::of(&answer, "더 보기");
        assert_eq!((out.peer.as_str(), out.message_id.as_deref()), ("pf-1", Some("rid:1")));
        assert_eq!((out.reply.received_at, out.reply.bot_user_key.as_deref()), (Some(1_000), Some("bu-1")));
        assert_eq!(pages[0].plain_text(), "답");
        assert_eq!(out.key(), "rid:1");

        let mut notice = OutboundMessage::reply_text(&inbound, "**승인**되었어요");
        notice.reply_to = None;
        let (out, pages) = Outgoing::of(&notice, "더 보기");
        assert_eq!(pages[0].plain_text(), "승인되었어요");
        assert!(out.key().starts_with("notice-"));
    }
}
