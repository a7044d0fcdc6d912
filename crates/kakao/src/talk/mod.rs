//! Kakao Login (OAuth 2.0) and the Kakao Talk Message API (reference/kakao.md §1–4).

/// The validated Kakao Login settings.
#[derive(Clone, Debug, Default)]
pub struct LoginConfig {}

impl LoginConfig {
    /// Reads the login settings from the `[kakao]` table and the environment. `None` when Kakao
    /// Login is not configured.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let _ = (file, env);
        Ok(None)
    }
}
