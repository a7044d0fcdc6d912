//! A Kakao Channel's 1:1 chat: the chatbot skill server (reference/kakao.md §5).

/// The validated chatbot settings.
#[derive(Clone, Debug, Default)]
pub struct ChatbotConfig {}

impl ChatbotConfig {
    /// Reads the chatbot settings from the `[kakao]` table and the environment. `None` when the
    /// chatbot is not configured.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let _ = (file, env);
        Ok(None)
    }
}
