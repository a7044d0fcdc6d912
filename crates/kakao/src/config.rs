//! The `[kakao]` settings (names of the design seed's `KakaoChannelConfig`) and the `KAKAO_*`
//! variables. The chatbot part lives in `[kakao.chatbot]`, Kakao Login in `[kakao.oauth]`; the
//! app-wide keys (`restApiKey`, `appKey`, `channelId`, `apiBaseUrl`, `mediaMaxMb`) sit in `[kakao]`.

use crate::chatbot::ChatbotConfig;
use crate::talk::LoginConfig;

/// Keys allowed directly in `[kakao]`; anything else is a typo worth reporting.
const TOP_LEVEL_KEYS: [&str; 7] = ["chatbot", "oauth", "restApiKey", "appKey", "channelId", "apiBaseUrl", "mediaMaxMb"];

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
        if let Some(unknown) = file.and_then(|table| table.keys().find(|key| !TOP_LEVEL_KEYS.contains(&key.as_str()))) {
            return Err(format!(
                "[kakao] in the config file has an unknown key {unknown:?}: use one of {} \
                 (chatbot settings go in [kakao.chatbot], Kakao Login in [kakao.oauth])",
                TOP_LEVEL_KEYS.join(", ")
            ));
        }
        let chatbot = ChatbotConfig::load(with_app_key_in_chatbot(file).as_ref(), env)?;
        let login = LoginConfig::load(file, env)?;
        Ok(Self { chatbot, login })
    }
}

/// The app's REST API key is one key for Kakao Login and the Event API: a `[kakao] restApiKey`
/// also serves the chatbot unless `[kakao.chatbot]` names its own.
fn with_app_key_in_chatbot(file: Option<&toml::Table>) -> Option<toml::Table> {
    let mut table = file?.clone();
    if let (Some(key), Some(toml::Value::Table(chatbot))) = (table.get("restApiKey").cloned(), table.get_mut("chatbot"))
    {
        chatbot.entry("restApiKey").or_insert(key);
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(text: &str) -> Result<KakaoConfig, String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let kakao = table.get("kakao").and_then(toml::Value::as_table);
        KakaoConfig::load(kakao, &|name| (name == "HOME").then(|| "/home/test".to_owned()))
    }

    #[test]
    fn chatbot_and_login_share_the_kakao_table() {
        let cfg = load(
            "[kakao]\nrestApiKey = \"app-key\"\n[kakao.chatbot]\nskillSecret = \"0123456789abcdef0123\"\n\
             [kakao.oauth]\nredirectUri = \"http://localhost:18791/kakao/oauth\"\n",
        )
        .unwrap();
        let chatbot = cfg.chatbot.expect("chatbot configured");
        let key = chatbot.bots[0].rest_api_key.as_ref().expect("the app key serves the Event API");
        assert_eq!(key.expose_secret(), "app-key");
        assert!(cfg.login.is_some());
    }

    #[test]
    fn unknown_top_level_keys_are_named() {
        let err = load("[kakao]\nrestApiKye = \"x\"\n").unwrap_err();
        assert!(err.contains("restApiKye") && err.contains("[kakao.chatbot]"), "{err}");
    }
}
