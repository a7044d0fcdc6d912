//! SCAFFOLD: replaced by the implementation.

use crate::config::Config;
use clap::Subcommand;
use std::process::ExitCode;

/// SCAFFOLD.
#[derive(Debug, Subcommand)]
pub enum TalkCommand {
    /// Log in with Kakao (issue 5).
    Login,
}

/// SCAFFOLD.
///
/// # Errors
/// Never yet.
#[allow(clippy::unused_async)]
pub async fn run(config: &Config, command: TalkCommand) -> anyhow::Result<ExitCode> {
    let _ = (config, command);
    anyhow::bail!("not built yet")
}
