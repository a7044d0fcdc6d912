//! `clawbridge config check`: the configuration is read and validated exactly as `serve` reads it
//! (the file, then the environment), and nothing is started — no store, no gateway, no listener.

use crate::config::Config;
use std::process::ExitCode;

/// Prints what the configuration amounts to. A configuration that does not load never gets here:
/// `main` prints the setting and the fix and exits with code 2, as it does for every command.
///
/// # Errors
/// None.
pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    match &config.source {
        Some(path) => println!("ok    {} + environment", path.display()),
        None => println!("ok    environment only (no --config / CLAWBRIDGE_CONFIG)"),
    }
    println!("      gateway:  {} (agent {})", config.gateway.url, config.gateway.agent_id);
    println!("      store:    {}", clawbridge_store::redact_url(&config.bridge.database_url));
    println!("      listen:   {}", config.bridge.listen);
    let channels: Vec<&str> = config.channels.iter().map(|(id, _)| *id).collect();
    if channels.is_empty() {
        println!("      channels: none enabled (no platform can reach the agent)");
    } else {
        println!("      channels: {}", channels.join(", "));
    }
    if config.gateway.token.is_none() {
        println!("note  OPENCLAW_TOKEN (gateway.token) is not set: serve and doctor need it");
    }
    Ok(ExitCode::SUCCESS)
}
