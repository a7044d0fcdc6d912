//! `clawbridge kakao …`: the chatbot channel's commands ([`chat`]) and Kakao Login with the
//! Talk Message API ([`talk`]), as one subcommand family.

pub mod chat;
pub mod talk;

use crate::config::Config;
use clap::Subcommand;
use std::process::ExitCode;

/// `clawbridge kakao …`
#[derive(Debug, Subcommand)]
pub enum KakaoCommand {
    /// Chatbot channel commands.
    #[command(flatten)]
    Chat(chat::ChatCommand),
    /// Kakao Login and Talk Message API commands.
    #[command(flatten)]
    Talk(talk::TalkCommand),
}

/// Runs a `kakao` subcommand.
///
/// # Errors
/// Configuration, store and API failures, each with the fix.
pub async fn run(config: &Config, command: KakaoCommand) -> anyhow::Result<ExitCode> {
    match command {
        KakaoCommand::Chat(command) => chat::run(config, command).await,
        KakaoCommand::Talk(command) => talk::run(config, command).await,
    }
}
