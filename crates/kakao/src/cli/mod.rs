//! `clawbridge kakao …`: the chatbot channel's commands ([`chat`]) and Kakao Login with the
//! Talk Message API ([`talk`]), as one subcommand family. What they store goes through the
//! binary's [`CliHost`]: the bridge for channel state and leases, its secrets for tokens.

pub mod chat;
pub mod talk;

use crate::KakaoConfig;
use clap::{Parser, Subcommand};
use clawbridge_channel::cli::CliHost;
use std::process::ExitCode;

/// KakaoTalk: Kakao Login, the Talk Message API, chatbot Event API pushes.
#[derive(Debug, Parser)]
#[command(name = "kakao")]
pub struct KakaoCli {
    /// Kakao action.
    #[command(subcommand)]
    pub action: KakaoCommand,
}

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

/// Runs a `kakao` subcommand with the channel's settings (`[kakao]`, possibly empty).
///
/// # Errors
/// Configuration, store and API failures, each with the fix.
pub async fn run(kakao: &KakaoConfig, host: &dyn CliHost, command: KakaoCommand) -> anyhow::Result<ExitCode> {
    match command {
        KakaoCommand::Chat(command) => chat::run(kakao, host, command).await,
        KakaoCommand::Talk(command) => talk::run(kakao, host, command).await,
    }
}

/// Turns the host's boxed error into one that prints with its causes.
fn host_error(e: clawbridge_channel::cli::CliError) -> anyhow::Error {
    anyhow::Error::from_boxed(e)
}
