//! The `[kakao]` settings (names of the design seed's `KakaoChannelConfig`) and the `KAKAO_*`
//! variables. The chatbot part lives in `[kakao.chatbot]`, Kakao Login in `[kakao.oauth]`.

use crate::chatbot::ChatbotConfig;
use crate::talk::LoginConfig;

/// The validated Kakao settings.
#[derive(Clone, Debug, Default)]
pub struct KakaoConfig {
    /// The chatbot channel (skill server, callback, Event API, channel webhook); `None` when not configured.
    pub chatbot: Option<ChatbotConfig>,
    /// Kakao Login and the Talk Message API; `None` when not configured.
    pub login: Option<LoginConfig>,
}

impl KakaoConfig {
    /// Reads the `[kakao]` table and the environment (environment wins).
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let chatbot = ChatbotConfig::load(file, env)?;
        let login = LoginConfig::load(file, env)?;
        Ok(Self { chatbot, login })
    }
}
