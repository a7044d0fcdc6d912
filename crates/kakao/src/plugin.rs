//! KakaoTalk's registration with the bridge: `[kakao]` + `KAKAO_*` settings and the chatbot
//! connector `serve` runs. Kakao Login alone configures the CLI commands only.

use crate::KakaoConfig;
use crate::chatbot::KakaoChatbot;
use async_trait::async_trait;
use clawbridge_channel::Connector;
use clawbridge_channel::plugin::{ChannelPlugin, ChannelSettings, ConnectorContext, Env};
use std::any::Any;
use std::sync::Arc;

/// The KakaoTalk channel plugin.
#[derive(Debug)]
pub struct KakaoPlugin;

impl ChannelPlugin for KakaoPlugin {
    fn id(&self) -> &'static str {
        crate::chatbot::CHANNEL
    }

    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        let config = KakaoConfig::load(table, env)?;
        let configured = config.chatbot.is_some() || config.login.is_some();
        Ok(configured.then(|| Arc::new(config) as Arc<dyn ChannelSettings>))
    }
}

#[async_trait]
impl ChannelSettings for KakaoConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    /// The chatbot (`POST /kakao/skill`, `/kakao/channel-webhook`) when `[kakao.chatbot]` is set.
    fn connector(&self, ctx: &ConnectorContext) -> Result<Option<Arc<dyn Connector>>, String> {
        match &self.chatbot {
            Some(chatbot) => Ok(Some(KakaoChatbot::new(chatbot, ctx.bridge.clone())? as Arc<dyn Connector>)),
            None => Ok(None),
        }
    }
}
