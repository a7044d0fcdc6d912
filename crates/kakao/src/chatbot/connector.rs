//! [`KakaoChatbot`]: the connector, with one [`BotAccount`] per configured bot. It serves the
//! skill and channel-webhook routes for every bot and renders answers as SkillResponse pages.

use super::CHANNEL;
use super::account::BotAccount;
use super::bot::{Bot, Shared};
use super::config::ChatbotConfig;
use super::extra::{KakaoReply, KakaoTurn};
use super::render::render_answer;
use super::skill::{SkillEndpoint, skill};
use super::webhook::{WEBHOOK_BODY_LIMIT, channel_webhook};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use clawbridge_channel::{Account, Bridge, Capabilities, Connector, RouteContext};
use clawbridge_core::{AccountId, ChannelId, InboundMessage, MediaKind, OutboundMessage};
use std::sync::Arc;

/// The KakaoTalk chatbot channel (`kakao`).
pub struct KakaoChatbot {
    shared: Arc<Shared>,
    bots: Vec<Arc<Bot>>,
    accounts: Vec<Arc<BotAccount>>,
}

impl std::fmt::Debug for KakaoChatbot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KakaoChatbot").field("accounts", &self.accounts.len()).finish()
    }
}

impl KakaoChatbot {
    /// The connector with one account per configured bot, writing through `bridge`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: &ChatbotConfig, bridge: Arc<dyn Bridge>) -> Result<Arc<Self>, String> {
        let shared = Arc::new(Shared::new(config, bridge)?);
        let bots: Vec<Arc<Bot>> =
            config.bots.iter().map(|settings| Arc::new(Bot::new(settings.clone(), shared.clone()))).collect();
        let accounts = bots.iter().map(|bot| Arc::new(BotAccount::new(bot.clone()))).collect();
        Ok(Arc::new(Self { shared, bots, accounts }))
    }

    fn bot(&self, account: &AccountId) -> Option<&Arc<Bot>> {
        self.bots.iter().find(|b| b.settings.account == account.as_str())
    }
}

impl Connector for KakaoChatbot {
    fn id(&self) -> ChannelId {
        ChannelId::new(CHANNEL)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { max_text_chars: 1000, media: vec![MediaKind::Image], replies: false, typing: false }
    }

    fn accounts(&self) -> Vec<Arc<dyn Account>> {
        self.accounts.iter().map(|a| a.clone() as Arc<dyn Account>).collect()
    }

    /// `POST /kakao/skill` and `POST /kakao/channel-webhook` for every bot: requests are routed
    /// to their bot by secret and `bot.id`. They write through the bridge the connector was built
    /// with (the daemon passes the same one here).
    fn routes(&self, _ctx: &RouteContext) -> Option<Router> {
        let endpoint = Arc::new(SkillEndpoint { shared: self.shared.clone(), bots: self.bots.clone() });
        let skill_limit = self.shared.config.max_body_bytes;
        Some(
            Router::new()
                .route("/kakao/skill", post(skill).layer(DefaultBodyLimit::max(skill_limit)).with_state(endpoint))
                .route(
                    "/kakao/channel-webhook",
                    post(channel_webhook)
                        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
                        .with_state(self.shared.clone()),
                ),
        )
    }

    /// One message carrying the whole answer as SkillResponse pages ([`KakaoReply`]).
    fn render_reply(&self, to: &InboundMessage, reply: &str) -> Vec<OutboundMessage> {
        let more_label = self.bot(&to.account).map_or("더 보기", |b| b.settings.more_label.as_str());
        let pages = render_answer(reply, more_label);
        let mut msg = OutboundMessage::reply_text(to, pages[0].plain_text());
        msg.extra = KakaoReply::answering(&KakaoTurn::of(to), pages).to_channel_data();
        vec![msg]
    }

    fn pairing_text(&self, code: &str) -> String {
        format!(
            "안녕하세요! 이 채널의 AI 상담은 승인된 분만 이용할 수 있어요. 페어링 코드는 {code} 입니다(1시간 유효). \
             채널 관리자에게 이 코드를 알려 주세요.\n(Pairing code {code}: send it to the channel owner for approval.)"
        )
    }

    fn agent_context(&self, msg: &InboundMessage) -> String {
        let friend = match KakaoTurn::of(msg).is_friend {
            Some(true) => " They have added the channel as a friend.",
            Some(false) => " They have not added the channel as a friend.",
            None => "",
        };
        format!(
            "You are talking with a KakaoTalk Channel user (user key {peer}) through the channel's chatbot \
             (account {account}).{friend} Keep answers short and conversational, in the user's language: \
             KakaoTalk shows at most three speech bubbles of 1000 characters per answer and longer answers \
             need the user to tap \"더 보기\". Markdown is not rendered (it is stripped); a markdown link \
             [label](https://…) becomes a button, and an image URL alone on a line is shown as a picture.",
            peer = msg.peer,
            account = msg.account,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatbot::SkillResponse;
    use std::collections::HashMap;

    fn connector() -> Arc<KakaoChatbot> {
        let env: HashMap<&str, &str> = HashMap::from([("KAKAO_SKILL_SECRET", "0123456789abcdef0123")]);
        let config = ChatbotConfig::load(None, &|k| env.get(k).map(|v| (*v).to_owned())).unwrap().unwrap();
        KakaoChatbot::new(&config, clawbridge_testkit::memory_bridge().bridge).unwrap()
    }

    #[test]
    fn replies_carry_every_page_and_the_turn_in_extra() {
        let c = connector();
        let mut inbound = InboundMessage::text(CHANNEL, "default", "pf-1", "rid:1", "질문");
        inbound.extra = KakaoTurn {
            received_at: Some(1_000),
            bot_user_key: Some("bu-1".to_owned()),
            app_user_id: Some("42".to_owned()),
            is_friend: Some(true),
            ..KakaoTurn::default()
        }
        .to_channel_data();
        let out = c.render_reply(&inbound, &"긴 답변입니다. ".repeat(500));
        assert_eq!(out.len(), 1, "one outbound message per answer");
        let msg = &out[0];
        assert_eq!(msg.reply_to.as_ref().map(ToString::to_string).as_deref(), Some("rid:1"));
        let reply = KakaoReply::of(msg);
        let pages: &[SkillResponse] = &reply.pages;
        assert_eq!(pages.len(), 2);
        pages.iter().for_each(|p| p.validate().unwrap());
        assert_eq!(reply.received_at, Some(1_000));
        assert_eq!(reply.bot_user_key.as_deref(), Some("bu-1"));
        assert_eq!(reply.app_user_id.as_deref(), Some("42"));
        assert_eq!(msg.text.as_deref(), Some(pages[0].plain_text().as_str()));
        // The stored shape keeps its names.
        let stored = msg.extra.to_value();
        assert_eq!((&stored["kakao"]["receivedAt"], &stored["kakao"]["botUserKey"]), (&1_000.into(), &"bu-1".into()));
    }

    #[test]
    fn the_agent_is_told_how_kakaotalk_renders_and_the_pairing_text_has_the_code() {
        let c = connector();
        let mut inbound = InboundMessage::text(CHANNEL, "default", "pf-1", "rid:1", "질문");
        inbound.extra = KakaoTurn { is_friend: Some(false), ..KakaoTurn::default() }.to_channel_data();
        let context = c.agent_context(&inbound);
        assert!(
            context.contains("KakaoTalk") && context.contains("더 보기") && context.contains("not added"),
            "{context}"
        );
        assert!(c.pairing_text("K7M2QX9A").contains("K7M2QX9A"));
        assert_eq!(c.capabilities().max_text_chars, 1000);
    }
}
