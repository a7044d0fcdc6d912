//! Finding the Node 24 + OpenClaw install made by `scripts/install-e2e.sh`, and the skip/require policy.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Version of the `openclaw` npm package the tests are written against.
pub const OPENCLAW_VERSION: &str = "2026.9.6";
/// Version of the `node` npm package that provides Node 24.
pub const NODE_VERSION: &str = "24.21.0";

/// Directory containing the `node` binary (overrides the default cache location).
pub const ENV_NODE_BIN_DIR: &str = "CLAWBRIDGE_NODE_BIN_DIR";
/// Path of the `openclaw` CLI (overrides the default cache location).
pub const ENV_OPENCLAW_BIN: &str = "CLAWBRIDGE_OPENCLAW_BIN";
/// Root of the install cache, as in `scripts/install-e2e.sh`.
pub const ENV_CACHE: &str = "CLAWBRIDGE_E2E_CACHE";
/// When `1`, a missing install fails the test instead of skipping it (CI sets this).
pub const ENV_REQUIRE: &str = "CLAWBRIDGE_REQUIRE_E2E";

/// The message printed when real-gateway tests are skipped.
pub const SKIP_MESSAGE: &str =
    "SKIPPED: real-gateway tests need Node 24 and openclaw@2026.9.6: run scripts/install-e2e.sh";

/// A usable Node 24 + OpenClaw install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// Directory containing `node`; goes first on the gateway's `PATH`.
    pub node_bin_dir: PathBuf,
    /// The `openclaw` CLI (`node_modules/.bin/openclaw`).
    pub openclaw_bin: PathBuf,
}

/// Finds the install from `CLAWBRIDGE_NODE_BIN_DIR` / `CLAWBRIDGE_OPENCLAW_BIN`, each falling back
/// to the cache directory `scripts/install-e2e.sh` uses. `None` when either part is missing or the
/// Node binary is not a version OpenClaw accepts.
pub fn locate() -> Option<Install> {
    find().ok()
}

/// [`locate`], or `None` after printing [`SKIP_MESSAGE`] to stderr so the caller can `return`.
///
/// The message is written to the real stderr, not through libtest's capture, so a plain `cargo test`
/// shows which tests skipped.
///
/// # Panics
/// Instead of skipping when `CLAWBRIDGE_REQUIRE_E2E=1`: CI must never skip these tests silently.
pub fn require_or_skip() -> Option<Install> {
    match find() {
        Ok(install) => Some(install),
        Err(why) if required() => {
            panic!("{ENV_REQUIRE}=1 but the real-gateway install is unusable: {why}; run scripts/install-e2e.sh")
        }
        Err(why) => {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            let _ = writeln!(std::io::stderr(), "{SKIP_MESSAGE}\n  (test {test}: {why})");
            None
        }
    }
}

fn required() -> bool {
    std::env::var(ENV_REQUIRE).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `${CLAWBRIDGE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawbridge}`, like the install script.
fn cache_dir() -> Option<PathBuf> {
    env_path(ENV_CACHE)
        .or_else(|| env_path("XDG_CACHE_HOME").map(|d| d.join("clawbridge")))
        .or_else(|| env_path("HOME").map(|d| d.join(".cache").join("clawbridge")))
}

fn find() -> Result<Install, String> {
    let cache = cache_dir();
    let default = |rel: &str| cache.as_ref().map(|c| c.join(rel));
    let node_bin_dir = env_path(ENV_NODE_BIN_DIR)
        .or_else(|| default(&format!("node-{NODE_VERSION}/node_modules/node/bin")))
        .ok_or("no HOME, cache dir or CLAWBRIDGE_NODE_BIN_DIR")?;
    let openclaw_bin = env_path(ENV_OPENCLAW_BIN)
        .or_else(|| default(&format!("openclaw-{OPENCLAW_VERSION}/node_modules/.bin/openclaw")))
        .ok_or("no HOME, cache dir or CLAWBRIDGE_OPENCLAW_BIN")?;
    if !openclaw_bin.is_file() {
        return Err(format!("{} not found", openclaw_bin.display()));
    }
    check_node(&node_bin_dir.join("node"))?;
    Ok(Install { node_bin_dir, openclaw_bin })
}

/// OpenClaw's `engines`: Node `>=24.16.0 <25 || >=26.1.0`. Catches a bin dir pointing at the
/// system's older Node before it turns into a confusing gateway start failure.
fn check_node(node: &Path) -> Result<(), String> {
    let out = Command::new(node).arg("--version").output().map_err(|e| format!("{}: {e}", node.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let ok = (major == 24 && minor >= 16) || (major == 26 && minor >= 1) || major > 26;
    if ok { Ok(()) } else { Err(format!("{} is {version:?}, openclaw needs Node 24", node.display())) }
}
