//! `[whatsapp]` settings and the Go bridge's `KAPSO_*` variables.

/// The validated WhatsApp settings.
#[derive(Clone, Debug, Default)]
pub struct WhatsAppConfig {}

impl WhatsAppConfig {
    /// Reads the `[whatsapp]` table and the environment (environment wins). `None` when
    /// WhatsApp is not configured at all.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let _ = (file, env);
        Ok(None)
    }
}
