//! KakaoTalk's registration with the bridge: `[kakao]` + `KAKAO_*` settings, the chatbot
//! connector `serve` runs, the Kakao Login check of `doctor`, the chatbot's part of `status`
//! and the `clawbridge kakao` subcommand ([`crate::cli`]). Kakao Login alone configures the
//! commands only.

use crate::KakaoConfig;
use crate::chatbot::KakaoChatbot;
use async_trait::async_trait;
use clap::FromArgMatches as _;
use clawbridge_channel::cli::{CliError, CliHost};
use clawbridge_channel::plugin::{
    ChannelPlugin, ChannelSettings, ChannelStatus, Check, ConnectorContext, Env, HostInfo,
};
use clawbridge_channel::{Bridge, BridgeError, Connector};
use std::any::Any;
use std::process::ExitCode;
use std::sync::{Arc, LazyLock};

/// The subcommand's name and the line the bridge's help lists for it (the same as the doc
/// comment of [`crate::cli::KakaoCli`]; a test holds them together).
const COMMAND: &str = "kakao";
const COMMAND_ABOUT: &str = "KakaoTalk: Kakao Login, the Talk Message API, chatbot Event API pushes";
/// The KakaoTalk channel plugin.
#[derive(Debug)]
pub struct KakaoPlugin;

/// The settings of a binary where Kakao is not configured (its commands say what to set).
static NOT_CONFIGURED: LazyLock<KakaoConfig> = LazyLock::new(KakaoConfig::default);

#[async_trait]
impl ChannelPlugin for KakaoPlugin {
    fn id(&self) -> &'static str {
        crate::chatbot::CHANNEL
    }

    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        let config = KakaoConfig::load(table, env)?;
        let configured = config.chatbot.is_some() || config.login.is_some();
        Ok(configured.then(|| Arc::new(config) as Arc<dyn ChannelSettings>))
    }

    fn command(&self) -> Option<clap::Command> {
        Some(clawbridge_channel::cli::deferred_command(
            COMMAND,
            COMMAND_ABOUT,
            <crate::cli::KakaoCli as clap::Args>::augment_args,
        ))
    }

    async fn run_command(&self, matches: &clap::ArgMatches, host: &dyn CliHost) -> Result<ExitCode, CliError> {
        let cli = crate::cli::KakaoCli::from_arg_matches(matches)?;
        let kakao = host.settings_as::<KakaoConfig>().unwrap_or(&NOT_CONFIGURED);
        crate::cli::run(kakao, host, cli.action).await.map_err(CliError::from)
    }

    /// The chatbot's channel events, callback outcomes and pushes, shown when the chatbot is
    /// configured or has left records.
    async fn status(
        &self,
        settings: Option<&dyn ChannelSettings>,
        bridge: &dyn Bridge,
    ) -> Result<Option<ChannelStatus>, BridgeError> {
        let summary = crate::chatbot::status::summary(bridge).await?;
        let configured = settings
            .and_then(|s| s.as_any().downcast_ref::<KakaoConfig>())
            .is_some_and(|kakao| kakao.chatbot.is_some());
        let shown = (configured || summary.has_records()).then_some(summary);
        let json =
            serde_json::to_value(&shown).map_err(|e| BridgeError(format!("cannot encode the Kakao status: {e}")))?;
        let lines = shown.map(|summary| summary.lines()).unwrap_or_default();
        Ok(Some(ChannelStatus { key: "kakao_chatbot", json, lines }))
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

    /// Whether the default Kakao Login account is logged in (no network calls).
    async fn doctor(&self, host: &HostInfo) -> Vec<Check> {
        crate::cli::talk::doctor_check(self, host.cli.as_ref()).await.into_iter().collect()
    }
}

#[cfg(test)]
mod command_tests {
    use clap::CommandFactory as _;
    use clawbridge_channel::plugin::ChannelPlugin as _;

    /// The deferred subcommand, once built, is the derived one: same help line, same arguments.
    #[test]
    fn the_deferred_command_is_the_derived_one() {
        // What the bridge's help lists before building it is what the derived command says.
        let derived_unbuilt = crate::cli::KakaoCli::command();
        assert_eq!(derived_unbuilt.get_about().map(ToString::to_string).as_deref(), Some(super::COMMAND_ABOUT));
        let mut deferred = super::KakaoPlugin.command().expect("a subcommand");
        assert_eq!(deferred.get_about().map(ToString::to_string).as_deref(), Some(super::COMMAND_ABOUT));
        deferred.build();
        let mut derived = crate::cli::KakaoCli::command();
        derived.build();
        assert_eq!(deferred.get_name(), derived.get_name());
        assert_eq!(deferred.get_about().map(ToString::to_string), derived.get_about().map(ToString::to_string));
        assert_eq!(deferred.render_long_help().to_string(), derived.render_long_help().to_string());
    }
}
