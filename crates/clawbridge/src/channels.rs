//! The enabled channels, built from the configuration (`serve` and the compatibility daemon).

use crate::config::Config;
use clawbridge_channel::Connector;
use std::sync::Arc;

/// One connector per configured channel.
///
/// # Errors
/// A channel whose configuration cannot start (the message names the setting).
pub fn enabled(config: &Config) -> anyhow::Result<Vec<Arc<dyn Connector>>> {
    let mut connectors: Vec<Arc<dyn Connector>> = Vec::new();
    // WhatsApp (Kapso): refuses a public webhook mode without a secret unless overridden.
    if let Some(whatsapp) = &config.whatsapp {
        whatsapp.validate_for_serve().map_err(anyhow::Error::msg)?;
        let connector = clawbridge_whatsapp::WhatsAppConnector::new(whatsapp.clone()).map_err(anyhow::Error::msg)?;
        connectors.push(Arc::new(connector));
    }
    // KakaoTalk chatbot (`[kakao.chatbot]`, `KAKAO_SKILL_SECRET`…): POST /kakao/skill, /kakao/channel-webhook.
    if let Some(chatbot) = &config.kakao.chatbot {
        connectors.push(clawbridge_kakao::chatbot::KakaoChatbot::new(chatbot).map_err(anyhow::Error::msg)?);
    }
    Ok(connectors)
}
