//! `clawbridge kakao push`: bot-initiated messages through the Kakao Event API
//! (reference/kakao.md §5.4). Users who blocked the channel (channel webhook) are skipped.

use crate::KakaoConfig;
use crate::chatbot::status::{self, PushTask};
use crate::chatbot::{EventApi, UserType};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use clawbridge_channel::cli::CliHost;
use clawbridge_core::clock::now_ms;
use serde_json::{Map, Value};
use std::process::ExitCode;
use std::time::Duration;

/// Chatbot channel commands.
#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Send an Event API event to chatbot users (paid: 15 KRW per message; channel friends only).
    Push(PushArgs),
}

/// `clawbridge kakao push …`
#[derive(Debug, Args)]
pub struct PushArgs {
    /// A user to message (repeat for several; sent in batches of 100).
    #[arg(long = "user", value_name = "KEY", required = true)]
    pub users: Vec<String>,
    /// What the user keys are: botUserKey, plusfriendUserKey or appUserId.
    #[arg(long, default_value = "botUserKey", value_parser = parse_user_type)]
    pub user_type: UserType,
    /// The event name configured on an Event block of the bot.
    #[arg(long)]
    pub event: String,
    /// Event data, `key=value` (repeatable); the Event block can show it, e.g. `text=…`.
    #[arg(long = "data", value_name = "KEY=VALUE")]
    pub data: Vec<String>,
    /// Extra `params`, `key=value` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// The bot account (when several bots are configured).
    #[arg(long)]
    pub account: Option<String>,
    /// How long to poll the task for per-user results (0: do not poll).
    #[arg(long, default_value_t = 30)]
    pub wait_secs: u64,
}

fn parse_user_type(raw: &str) -> Result<UserType, String> {
    raw.parse()
}

fn pairs(list: &[String], flag: &str) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for item in list {
        let Some((k, v)) = item.split_once('=') else {
            bail!("{flag} {item:?} is not KEY=VALUE");
        };
        if k.trim().is_empty() {
            bail!("{flag} {item:?} has an empty key");
        }
        map.insert(k.trim().to_owned(), Value::String(v.to_owned()));
    }
    Ok(map)
}

/// Runs a chatbot command.
///
/// # Errors
/// Configuration, store and Event API failures, each explained.
pub async fn run(kakao: &KakaoConfig, host: &dyn CliHost, command: ChatCommand) -> anyhow::Result<ExitCode> {
    match command {
        ChatCommand::Push(args) => push(kakao, host, args).await,
    }
}

async fn push(kakao: &KakaoConfig, host: &dyn CliHost, args: PushArgs) -> anyhow::Result<ExitCode> {
    let Some(chatbot) = &kakao.chatbot else {
        bail!("the KakaoTalk chatbot is not configured: set KAKAO_SKILL_SECRET and KAKAO_BOT_ID (or [kakao.chatbot])");
    };
    let bot = match &args.account {
        Some(name) => chatbot
            .bots
            .iter()
            .find(|b| &b.account == name)
            .with_context(|| format!("no Kakao bot account {name:?} in kakao.chatbot.accounts"))?,
        None if chatbot.bots.len() == 1 => &chatbot.bots[0],
        None => bail!("several Kakao bots are configured: choose one with --account"),
    };
    let bot_id = bot.bot_id.as_deref().context(
        "KAKAO_BOT_ID (kakao.chatbot.botId) is not set: the Event API needs the bot id (챗봇 관리자센터 > 설정 > 봇 ID)",
    )?;
    let key = bot.rest_api_key.clone().context(
        "KAKAO_REST_API_KEY (kakao.chatbot.restApiKey) is not set: use the REST API key of the Kakao Developers app linked to the bot",
    )?;
    let data = pairs(&args.data, "--data")?;
    let params = pairs(&args.params, "--param")?;

    let bridge = host.bridge().await.map_err(super::host_error)?;
    let bridge = bridge.as_ref();
    // Users who blocked the channel get nothing. The channel webhook names users by app user id
    // (or an open id that cannot be matched), so only appUserId pushes can be checked.
    let mut users = Vec::new();
    let mut skipped = 0;
    for user in &args.users {
        let blocked =
            args.user_type == UserType::AppUserId && status::user_blocked(bridge, "app_user_id", user).await?;
        if blocked {
            println!("skipped {user}: blocked the channel");
            skipped += 1;
        } else if !users.contains(user) {
            users.push(user.clone());
        }
    }
    if users.is_empty() {
        println!("nothing to send ({skipped} skipped)");
        return Ok(ExitCode::FAILURE);
    }

    let api = EventApi::new(&chatbot.bot_api_base_url, bot_id, key)?;
    let outcomes = api.push(&args.event, &data, args.user_type, &users, &params).await?;
    let mut ok = true;
    let mut tasks = Vec::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        let task = outcome.task_id.as_deref().unwrap_or("-");
        println!(
            "batch {}: {} user(s) → task {task} {}{}",
            i + 1,
            outcome.users,
            outcome.status,
            outcome.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
        );
        ok &= outcome.status == "SUCCESS";
        if let Some(id) = &outcome.task_id {
            let task = PushTask {
                account: bot.account.clone(),
                event: args.event.clone(),
                users: outcome.users,
                status: outcome.status.clone(),
                at: now_ms(),
                source: "cli".to_owned(),
            };
            status::record_push_task(bridge, id, &task).await?;
            tasks.push(id.clone());
        }
    }
    if args.wait_secs > 0 {
        for task in &tasks {
            poll_task(&api, task, Duration::from_secs(args.wait_secs)).await;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Polls a task until it reports per-user results or a final status, or `wait` passes.
async fn poll_task(api: &EventApi, task: &str, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        match api.task(task).await {
            Ok(report) => {
                let status = report.status.clone().unwrap_or_else(|| "?".to_owned());
                let done = !report.users.is_empty()
                    || matches!(status.as_str(), "SUCCESS" | "FAIL" | "ERROR" | "COMPLETE" | "COMPLETED" | "DONE");
                if done || tokio::time::Instant::now() >= until {
                    println!("task {task}: {status}");
                    for (user, result) in &report.users {
                        println!("  {user}: {result}");
                    }
                    if report.users.is_empty() {
                        println!("  (no per-user results in the report: {})", report.raw);
                    }
                    return;
                }
            }
            Err(e) => {
                println!("task {task}: cannot read the results: {e}");
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
