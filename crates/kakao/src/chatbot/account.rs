//! [`BotAccount`]: one Kakao bot as the pipeline sees it. `send` hands the answer to `delivery`;
//! `inbound_finished` frees the handlers of a turn that ends without a reply.

use super::bot::Bot;
use super::delivery;
use super::rendezvous::{Effect, Event, hand_over};
use super::response::SkillResponse;
use super::skill::DISABLED_TEXT;
use async_trait::async_trait;
use clawbridge_channel::Account;
use clawbridge_core::policy::AccessPolicy;
use clawbridge_core::{AccountId, IdempotencyKey, InboundMessage, InboundOutcome, OutboundMessage, Receipt, SendError};
use std::sync::Arc;

/// The answer to a sender whose pairing code is still waiting for the owner's approval.
const PAIRING_PENDING_TEXT: &str = "채널 관리자의 승인을 기다리고 있어요. 받으신 페어링 코드를 관리자에게 알려 주세요.";
/// The answer when the agent decided not to reply.
const SILENT_TEXT: &str = "확인했어요.";

/// One Kakao bot.
pub struct BotAccount {
    bot: Arc<Bot>,
}

impl std::fmt::Debug for BotAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotAccount").field("account", &self.bot.settings.account).finish_non_exhaustive()
    }
}

impl BotAccount {
    pub(super) fn new(bot: Arc<Bot>) -> Self {
        Self { bot }
    }
}

#[async_trait]
impl Account for BotAccount {
    fn id(&self) -> AccountId {
        AccountId::new(self.bot.settings.account.clone())
    }

    fn access_policy(&self) -> AccessPolicy {
        self.bot.settings.access.clone()
    }

    /// Kakao has no idempotency of its own; one-time deliveries (the callback) are claimed in the
    /// store by the turn's message id, the same on every attempt.
    async fn send(&self, msg: &OutboundMessage, _key: &IdempotencyKey) -> Result<Receipt, SendError> {
        delivery::send(&self.bot, msg).await
    }

    /// A turn that ends without a reply (refused sender, pairing still pending, a silent agent)
    /// must not leave its skill request waiting for the deadline and then promise an answer.
    async fn inbound_finished(&self, msg: &InboundMessage, outcome: InboundOutcome, replies: usize) {
        if replies > 0 {
            return;
        }
        let text = match outcome {
            InboundOutcome::Pairing => PAIRING_PENDING_TEXT,
            InboundOutcome::Silent | InboundOutcome::Replied => SILENT_TEXT,
            _ => DISABLED_TEXT,
        };
        if let Effect::HandOver(waiters) = self.bot.turns.apply(msg.message_id.as_str(), Event::FinishedWithoutReply) {
            hand_over(waiters, &SkillResponse::text(text));
            metrics::counter!("clawbridge_kakao_replies_total", "via" => "no_answer").increment(1);
        }
    }
}
