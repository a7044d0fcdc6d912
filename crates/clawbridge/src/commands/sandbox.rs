//! `clawbridge sandbox`: the real daemon against simulated KakaoTalk and WhatsApp, and a page to
//! chat as their users ([`crate::sandbox`]).

use crate::config::Config;
use crate::sandbox::{Sandbox, SandboxOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the sandbox until SIGINT or SIGTERM.
///
/// # Errors
/// A listener that is not on loopback, the gateway token missing, or the daemon's start.
pub async fn run(config: Config, state_dir: Option<PathBuf>, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {listen}: the sandbox chats with your agent and has no login, so it listens on loopback \
             only; use 127.0.0.1:PORT (and an SSH tunnel to reach it from elsewhere)"
        );
    }
    config.require_token()?;
    let mut stop = crate::commands::serve::StopSignal::register();
    let keep = state_dir.is_some();
    let sandbox = Sandbox::start(SandboxOptions { state_dir, listen, gateway: config.gateway.clone() }).await?;
    println!("clawbridge sandbox: KakaoTalk and WhatsApp are simulated; the agent is {}", config.gateway.url);
    println!("config: {}{}", sandbox.config_path.display(), if keep { "" } else { " (removed on exit)" });
    println!("open http://{}/sandbox", sandbox.addr);
    stop.wait().await;
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
