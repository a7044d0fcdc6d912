//! `[tools]`: which native agent tools clawbridge publishes on the gateway, and whom each may
//! reach.
//!
//! ```toml
//! [tools]
//! enabled = true                 # CLAWBRIDGE_TOOLS=off turns the node off
//! publish = ["whatsapp_send"]    # default: every tool whose channel is configured
//! owner = ["+821012345678"]      # always reachable (CLAWBRIDGE_TOOLS_OWNER)
//! allow = []                     # also reachable by every tool
//! recipients = "known"           # known | owner | any (CLAWBRIDGE_TOOLS_RECIPIENTS)
//! rate_limit_per_hour = 30       # per tool, every replica together
//! wait_secs = 30                 # how long a call waits for the platform's answer
//!
//! [tools.whatsapp_send]          # per-tool overrides
//! recipients = "owner"
//! allow = ["+15551234567"]
//! rate_limit_per_hour = 10
//! ```

use super::catalog::ToolName;
use crate::config::ConfigError;
use clawbridge_core::policy::normalize_peer;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Whom a tool may send to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recipients {
    /// Peers that already talked to the agent through this bridge, peers approved by pairing or
    /// listed in the channel's `allowFrom`, the owner and `allow` (the default).
    #[default]
    Known,
    /// Only the owner and `allow`.
    Owner,
    /// Anyone (still rate-limited and logged). Only for an agent that never reads untrusted text.
    Any,
}

impl Recipients {
    fn parse(raw: &str, setting: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "known" => Ok(Self::Known),
            "owner" => Ok(Self::Owner),
            "any" => Ok(Self::Any),
            other => Err(ConfigError(format!("{setting} is {other:?}: use known, owner or any"))),
        }
    }

    /// The spelling in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Known => "known",
            Self::Owner => "owner",
            Self::Any => "any",
        }
    }
}

/// `[tools.<name>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolOverride {
    /// Replaces `[tools] recipients` for this tool.
    pub recipients: Option<Recipients>,
    /// Added to `[tools] allow` for this tool.
    pub allow: Vec<String>,
    /// Replaces `[tools] rate_limit_per_hour` for this tool.
    pub rate_limit_per_hour: Option<u32>,
}

/// The validated `[tools]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolsSettings {
    /// Connect as a node and publish tools at all.
    pub enabled: bool,
    /// The tools to publish (`None`: every configured one).
    pub publish: Option<BTreeSet<ToolName>>,
    /// Always reachable, normalised (phone numbers as digits).
    pub owner: Vec<String>,
    /// Reachable by every tool, normalised.
    pub allow: Vec<String>,
    /// Whom tools may reach by default.
    pub recipients: Recipients,
    /// Sends per tool and hour.
    pub rate_limit_per_hour: u32,
    /// How long a call waits for the platform's answer before reporting "queued".
    pub wait: Duration,
    /// Per-tool overrides.
    pub overrides: BTreeMap<ToolName, ToolOverride>,
}

impl Default for ToolsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            publish: None,
            owner: Vec::new(),
            allow: Vec::new(),
            recipients: Recipients::Known,
            rate_limit_per_hour: 30,
            wait: Duration::from_secs(30),
            overrides: BTreeMap::new(),
        }
    }
}

impl ToolsSettings {
    /// Reads `[tools]` (if any) and `CLAWBRIDGE_TOOLS*`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting.
    pub fn load(table: Option<toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        let mut table = table.unwrap_or_default();
        let bad = |key: &str, want: &str| ConfigError(format!("[tools] {key} must be {want}"));
        if let Some(v) = table.remove("enabled") {
            settings.enabled = v.as_bool().ok_or_else(|| bad("enabled", "true or false"))?;
        }
        if let Some(v) = table.remove("publish") {
            settings.publish = Some(tool_set(&strings(&v).ok_or_else(|| bad("publish", "a list of tool names"))?)?);
        }
        if let Some(v) = table.remove("owner") {
            settings.owner = peers(&strings(&v).ok_or_else(|| bad("owner", "a list of numbers or user keys"))?);
        }
        if let Some(v) = table.remove("allow") {
            settings.allow = peers(&strings(&v).ok_or_else(|| bad("allow", "a list of numbers or user keys"))?);
        }
        if let Some(v) = table.remove("recipients") {
            settings.recipients =
                Recipients::parse(v.as_str().ok_or_else(|| bad("recipients", "a string"))?, "[tools] recipients")?;
        }
        if let Some(v) = table.remove("rate_limit_per_hour") {
            settings.rate_limit_per_hour = positive(&v).ok_or_else(|| bad("rate_limit_per_hour", "at least 1"))?;
        }
        if let Some(v) = table.remove("wait_secs") {
            settings.wait = Duration::from_secs(u64::from(
                positive(&v).ok_or_else(|| bad("wait_secs", "a whole number of seconds, at least 1"))?,
            ));
        }
        for (key, value) in table {
            let tool: ToolName = key.parse().map_err(|_| {
                ConfigError(format!(
                    "[tools] has an unknown key {key:?}: the keys are enabled, publish, owner, allow, recipients, \
                     rate_limit_per_hour, wait_secs and a [tools.<tool>] table per tool ({})",
                    ToolName::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let toml::Value::Table(mut section) = value else {
                return Err(ConfigError(format!("[tools.{key}] must be a table")));
            };
            let bad = |k: &str, want: &str| ConfigError(format!("[tools.{key}] {k} must be {want}"));
            let mut over = ToolOverride::default();
            if let Some(v) = section.remove("recipients") {
                let raw = v.as_str().ok_or_else(|| bad("recipients", "a string"))?;
                over.recipients = Some(Recipients::parse(raw, &format!("[tools.{key}] recipients"))?);
            }
            if let Some(v) = section.remove("allow") {
                over.allow = peers(&strings(&v).ok_or_else(|| bad("allow", "a list of numbers or user keys"))?);
            }
            if let Some(v) = section.remove("rate_limit_per_hour") {
                over.rate_limit_per_hour = Some(positive(&v).ok_or_else(|| bad("rate_limit_per_hour", "at least 1"))?);
            }
            if let Some(unknown) = section.keys().next() {
                return Err(ConfigError(format!(
                    "[tools.{key}] has an unknown key {unknown:?}: use recipients, allow or rate_limit_per_hour"
                )));
            }
            settings.overrides.insert(tool, over);
        }

        if let Some(raw) = env("CLAWBRIDGE_TOOLS") {
            match raw.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "0" | "no" => settings.enabled = false,
                "on" | "true" | "1" | "yes" | "all" => settings.enabled = true,
                _ => {
                    let names: Vec<String> = raw.split(',').map(|s| s.trim().to_owned()).collect();
                    settings.publish = Some(tool_set(&names)?);
                    settings.enabled = true;
                }
            }
        }
        if let Some(raw) = env("CLAWBRIDGE_TOOLS_OWNER") {
            settings.owner = peers(&raw.split(',').map(str::to_owned).collect::<Vec<_>>());
        }
        if let Some(raw) = env("CLAWBRIDGE_TOOLS_RECIPIENTS") {
            settings.recipients = Recipients::parse(&raw, "CLAWBRIDGE_TOOLS_RECIPIENTS")?;
        }
        if let Some(raw) = env("CLAWBRIDGE_TOOLS_RATE_LIMIT") {
            settings.rate_limit_per_hour = raw.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError(format!("CLAWBRIDGE_TOOLS_RATE_LIMIT is {raw:?}: expected sends per hour, at least 1"))
            })?;
        }
        Ok(settings)
    }

    /// Whom `tool` may reach.
    pub fn recipients_of(&self, tool: ToolName) -> Recipients {
        self.overrides.get(&tool).and_then(|o| o.recipients).unwrap_or(self.recipients)
    }

    /// Sends per hour of `tool`.
    pub fn rate_of(&self, tool: ToolName) -> u32 {
        self.overrides.get(&tool).and_then(|o| o.rate_limit_per_hour).unwrap_or(self.rate_limit_per_hour)
    }

    /// Whether `peer` (normalised) is the owner or explicitly allowed for `tool`.
    pub fn explicitly_allows(&self, tool: ToolName, peer: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|p| p == peer);
        listed(&self.owner) || listed(&self.allow) || self.overrides.get(&tool).is_some_and(|o| listed(&o.allow))
    }

    /// Whether `tool` is wanted (its channel must also be configured).
    pub fn wants(&self, tool: ToolName) -> bool {
        self.enabled && self.publish.as_ref().is_none_or(|set| set.contains(&tool))
    }
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

fn peers(raw: &[String]) -> Vec<String> {
    raw.iter().map(|p| normalize_peer(p)).filter(|p| !p.is_empty()).collect()
}

fn positive(v: &toml::Value) -> Option<u32> {
    v.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0)
}

fn tool_set(names: &[String]) -> Result<BTreeSet<ToolName>, ConfigError> {
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            n.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "unknown tool {n:?} in [tools] publish / CLAWBRIDGE_TOOLS: the tools are {}",
                    ToolName::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<ToolsSettings, ConfigError> {
        let table: toml::Table = toml::from_str(file).unwrap();
        let table = table.get("tools").and_then(|t| t.as_table()).cloned();
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ToolsSettings::load(table, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_publish_everything_to_known_peers() {
        let s = load("", &[]).unwrap();
        assert!(s.enabled && s.publish.is_none());
        assert_eq!(s.recipients_of(ToolName::WhatsappSend), Recipients::Known);
        assert_eq!(s.rate_of(ToolName::KakaoPush), 30);
        assert!(s.wants(ToolName::BrandSend));
    }

    #[test]
    fn file_and_overrides() {
        let s = load(
            r#"
            [tools]
            publish = ["whatsapp_send", "kakao_send_me"]
            owner = ["+82 10-1234-5678"]
            recipients = "owner"
            rate_limit_per_hour = 5
            wait_secs = 3
            [tools.whatsapp_send]
            recipients = "known"
            allow = ["+1 555 000 1111"]
            rate_limit_per_hour = 2
            "#,
            &[],
        )
        .unwrap();
        assert!(s.wants(ToolName::WhatsappSend) && !s.wants(ToolName::KakaoPush));
        assert_eq!(s.owner, ["821012345678"]);
        assert_eq!(s.recipients_of(ToolName::WhatsappSend), Recipients::Known);
        assert_eq!(s.recipients_of(ToolName::KakaoSendMe), Recipients::Owner);
        assert_eq!((s.rate_of(ToolName::WhatsappSend), s.rate_of(ToolName::KakaoSendMe)), (2, 5));
        assert!(s.explicitly_allows(ToolName::WhatsappSend, "15550001111"));
        assert!(!s.explicitly_allows(ToolName::KakaoPush, "15550001111"));
        assert!(s.explicitly_allows(ToolName::KakaoPush, "821012345678"));
        assert_eq!(s.wait, Duration::from_secs(3));
    }

    #[test]
    fn environment_wins_and_mistakes_name_the_setting() {
        let s = load("[tools]\nenabled = true", &[("CLAWBRIDGE_TOOLS", "off")]).unwrap();
        assert!(!s.enabled && !s.wants(ToolName::WhatsappSend));
        let s = load("", &[("CLAWBRIDGE_TOOLS", "kakao_push"), ("CLAWBRIDGE_TOOLS_RECIPIENTS", "any")]).unwrap();
        assert!(s.wants(ToolName::KakaoPush) && !s.wants(ToolName::WhatsappSend));
        assert_eq!(s.recipients, Recipients::Any);
        for (file, needle) in [
            ("[tools]\npublish = [\"shell\"]", "unknown tool \"shell\""),
            ("[tools]\nrecipients = \"everyone\"", "use known, owner or any"),
            ("[tools]\nfoo = 1", "unknown key \"foo\""),
            ("[tools.whatsapp_send]\nlimit = 1", "[tools.whatsapp_send] has an unknown key"),
            ("[tools]\nrate_limit_per_hour = 0", "at least 1"),
        ] {
            let err = load(file, &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{file}: {err}");
        }
    }
}
