//! SCAFFOLD: replaced by the implementation.

use crate::config::Config;
use clap::Subcommand;
use std::process::ExitCode;

/// SCAFFOLD.
#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Push an Event API event to chatbot users (issue 4).
    Push,
}

/// SCAFFOLD.
///
/// # Errors
/// Never yet.
#[allow(clippy::unused_async)]
pub async fn run(config: &Config, command: ChatCommand) -> anyhow::Result<ExitCode> {
    let _ = (config, command);
    anyhow::bail!("not built yet")
}
