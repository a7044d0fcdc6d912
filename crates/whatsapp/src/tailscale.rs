//! `KAPSO_MODE=tailscale`: publish the webhook through Tailscale Funnel, supervised.
//!
//! What it does (reference/kapso-whatsapp.md §8.4, §12.7):
//! 1. `tailscale status --json` → `Self.DNSName` (trailing dot trimmed); a node that is not
//!    `Running` is retried, permission errors ("access denied", "not an operator") are fatal.
//! 2. `tailscale funnel status --json` → the ports that already carry a serve or funnel
//!    configuration (background or another foreground session). The funnel goes on a funnel
//!    port (443, 8443, 10000) that has **none**, so an existing configuration is never replaced
//!    and a tailnet-only `serve` on 443 is never turned public.
//! 3. `tailscale funnel --https=<port> --set-path=/webhook http://127.0.0.1:<listener>/webhook`
//!    as a supervised foreground child: only the webhook path is public (not `/metrics`), and
//!    tailscaled drops a foreground configuration when its CLI process ends, however it ends.
//! 4. When the child reports "Available on the internet" (or prints the URL), the state becomes
//!    [`FunnelState::Up`] with `https://<dns>[:port]/webhook`; the caller prints
//!    "register this webhook URL in Kapso: …".
//! 5. The child dying is noticed at once and it is started again with a capped backoff;
//!    cancellation stops it. Its pid is kept in a file so that a child orphaned by a `kill -9`
//!    of the daemon is stopped by the next start instead of holding the port.
//!
//! The executable is a setting ([`TailscaleSettings::binary`], `KAPSO_TAILSCALE_BIN`) so tests
//! run a fake without touching `PATH`.

use clawbridge_core::retry::RetryPolicy;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The ports Tailscale Funnel can publish on.
pub const FUNNEL_PORTS: [u16; 3] = [443, 8443, 10000];

/// The one path made public: the webhook route.
pub const WEBHOOK_PATH: &str = "/webhook";

/// How long one `tailscale … --json` query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// A child that ran this long was healthy: its next restart starts the backoff from the beginning.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How long the child gets to exit after it was told to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the `tailscale` CLI is and which funnel port to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailscaleSettings {
    /// The `tailscale` executable (a name looked up on `PATH`, or a path).
    pub binary: PathBuf,
    /// The funnel port; `None` picks the first of [`FUNNEL_PORTS`] without a configuration.
    pub funnel_port: Option<u16>,
}

impl Default for TailscaleSettings {
    fn default() -> Self {
        Self { binary: PathBuf::from("tailscale"), funnel_port: None }
    }
}

impl TailscaleSettings {
    /// Reads `KAPSO_TAILSCALE_BIN` / `KAPSO_TAILSCALE_FUNNEL_PORT` and the `[whatsapp]` keys
    /// `tailscale_bin` / `tailscale_funnel_port` (environment wins).
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file_str = |key: &str| file.and_then(|t| t.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
        let binary = env("KAPSO_TAILSCALE_BIN")
            .or_else(|| file_str("tailscale_bin"))
            .map_or_else(|| PathBuf::from("tailscale"), PathBuf::from);
        let raw_port = env("KAPSO_TAILSCALE_FUNNEL_PORT").or_else(|| {
            file.and_then(|t| t.get("tailscale_funnel_port")).map(|v| match v {
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
        });
        let funnel_port = match raw_port {
            None => None,
            Some(raw) => match raw.trim().parse::<u16>() {
                Ok(port) if FUNNEL_PORTS.contains(&port) => Some(port),
                _ => {
                    return Err(format!(
                        "KAPSO_TAILSCALE_FUNNEL_PORT (whatsapp.tailscale_funnel_port) is {raw:?}: Tailscale Funnel \
                         only publishes on 443, 8443 or 10000; use one of them or unset it to take the first free one"
                    ));
                }
            },
        };
        Ok(Self { binary, funnel_port })
    }
}

/// Why the funnel could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TailscaleError {
    /// The executable does not exist (fatal).
    #[error(
        "the tailscale CLI {binary:?} was not found: install Tailscale (https://tailscale.com/download) \
         or set KAPSO_TAILSCALE_BIN to its path"
    )]
    NotInstalled {
        /// What was run.
        binary: String,
    },
    /// The CLI may not change the serve configuration (fatal).
    #[error(
        "tailscale refused: {0}. Allow this user to configure Tailscale once with \
         `sudo tailscale set --operator=$USER`, or run the bridge as root"
    )]
    Permission(String),
    /// The chosen or every funnel port already has a configuration (fatal).
    #[error("{0}")]
    NoFreePort(String),
    /// Tailscale is not up yet, or a command failed in a way that may pass (retried).
    #[error("{0}")]
    NotReady(String),
}

impl TailscaleError {
    /// Whether retrying cannot help until the operator acts.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::NotReady(_))
    }
}

/// The funnel's state, published on a `watch` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunnelState {
    /// Querying Tailscale or waiting for the funnel to come up.
    Starting,
    /// Public at `url`; register it in Kapso.
    Up {
        /// `https://<node>.<tailnet>.ts.net[:port]/webhook`.
        url: String,
    },
    /// The funnel is down and is started again after `retry_in`.
    Restarting {
        /// What went wrong.
        reason: String,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// Stopped for good: the operator must fix `0` and restart the bridge.
    Failed(String),
    /// Stopped on shutdown.
    Stopped,
}

/// The `DNSName` of this node from `tailscale status --json`, without the trailing dot.
///
/// # Errors
/// [`TailscaleError::NotReady`] when the node is not running or has no MagicDNS name.
pub fn dns_name_from_status(status_json: &str) -> Result<String, TailscaleError> {
    let status: serde_json::Value = serde_json::from_str(status_json).map_err(|e| {
        TailscaleError::NotReady(format!("`tailscale status --json` printed something that is not JSON: {e}"))
    })?;
    if let Some(state) = status.get("BackendState").and_then(|s| s.as_str())
        && state != "Running"
    {
        return Err(TailscaleError::NotReady(format!(
            "Tailscale is {state}, not Running: run `tailscale up` (and log in) on this machine"
        )));
    }
    let dns = status.pointer("/Self/DNSName").and_then(|d| d.as_str()).unwrap_or_default().trim_end_matches('.');
    if dns.is_empty() {
        return Err(TailscaleError::NotReady(
            "this node has no MagicDNS name: enable MagicDNS and HTTPS certificates in the Tailscale admin console"
                .to_owned(),
        ));
    }
    Ok(dns.to_owned())
}

/// Ports that carry any serve or funnel configuration, background or foreground, from
/// `tailscale funnel status --json` (a `ServeConfig`, or `null` when there is none).
///
/// # Errors
/// [`TailscaleError::NotReady`] when the output is not a serve configuration.
pub fn occupied_ports(serve_json: &str) -> Result<BTreeSet<u16>, TailscaleError> {
    let config: serde_json::Value = serde_json::from_str(serve_json.trim()).map_err(|e| {
        TailscaleError::NotReady(format!("`tailscale funnel status --json` printed something that is not JSON: {e}"))
    })?;
    let mut ports = BTreeSet::new();
    collect_ports(&config, &mut ports);
    if let Some(sessions) = config.get("Foreground").and_then(|f| f.as_object()) {
        for session in sessions.values() {
            collect_ports(session, &mut ports);
        }
    }
    Ok(ports)
}

fn collect_ports(config: &serde_json::Value, ports: &mut BTreeSet<u16>) {
    if let Some(tcp) = config.get("TCP").and_then(|t| t.as_object()) {
        ports.extend(tcp.keys().filter_map(|k| k.parse::<u16>().ok()));
    }
    for key in ["Web", "AllowFunnel"] {
        if let Some(map) = config.get(key).and_then(|w| w.as_object()) {
            ports.extend(map.keys().filter_map(|hp| hp.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok())));
        }
    }
}

/// The funnel port to use: the configured one if it is free, else the first free funnel port.
///
/// # Errors
/// [`TailscaleError::NoFreePort`] naming the setting.
pub fn choose_port(wanted: Option<u16>, occupied: &BTreeSet<u16>) -> Result<u16, TailscaleError> {
    match wanted {
        Some(port) if occupied.contains(&port) => Err(TailscaleError::NoFreePort(format!(
            "Tailscale port {port} already has a serve/funnel configuration (see `tailscale funnel status`) and \
             clawbridge does not replace it: set KAPSO_TAILSCALE_FUNNEL_PORT to a free one of 443, 8443, 10000, \
             or unset it to take the first free one"
        ))),
        Some(port) => Ok(port),
        None => FUNNEL_PORTS.into_iter().find(|p| !occupied.contains(p)).ok_or_else(|| {
            TailscaleError::NoFreePort(
                "every Tailscale Funnel port (443, 8443, 10000) already has a serve/funnel configuration and \
                 clawbridge does not replace one: free a port (`tailscale funnel --https=<port> off`) or use \
                 KAPSO_MODE=domain behind your own proxy"
                    .to_owned(),
            )
        }),
    }
}

/// The public webhook URL (`:443` is left out).
pub fn public_url(dns_name: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{dns_name}{WEBHOOK_PATH}")
    } else {
        format!("https://{dns_name}:{port}{WEBHOOK_PATH}")
    }
}

/// Where the funnel proxies to: the listener, on loopback when it listens on all interfaces.
pub fn local_target(listener: SocketAddr) -> String {
    let host = match listener.ip() {
        ip if ip.is_unspecified() && listener.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}{WEBHOOK_PATH}", listener.port())
}

/// The arguments of the foreground funnel for `port` proxying `/webhook` to `target`.
pub fn funnel_args(port: u16, target: &str) -> Vec<String> {
    vec!["funnel".to_owned(), format!("--https={port}"), format!("--set-path={WEBHOOK_PATH}"), target.to_owned()]
}

/// Asks the CLI for this node's MagicDNS name (`tailscale status --json`), for preflight checks.
///
/// # Errors
/// Why Tailscale is not usable, with the fix.
pub async fn probe_dns_name(settings: &TailscaleSettings) -> Result<String, TailscaleError> {
    dns_name_from_status(&query(&settings.binary, &["status", "--json"]).await?)
}

/// What [`Funnel::spawn`] needs.
#[derive(Clone, Debug)]
pub struct FunnelOptions {
    /// The CLI and port choice.
    pub settings: TailscaleSettings,
    /// The bridge's bound HTTP listener.
    pub listener: SocketAddr,
    /// Where the child's pid is kept (in the state dir), to stop an orphan after a crash.
    pub pid_file: Option<PathBuf>,
    /// The restart backoff (1 s doubling to 60 s by default).
    pub backoff: RetryPolicy,
}

impl FunnelOptions {
    /// Options with the default backoff.
    pub fn new(settings: TailscaleSettings, listener: SocketAddr, pid_file: Option<PathBuf>) -> Self {
        let backoff = RetryPolicy {
            max_attempts: u32::MAX,
            initial_delay_ms: 1_000,
            max_delay_ms: 60_000,
            backoff_multiplier: 2.0,
            max_retry_after_ms: 60_000,
        };
        Self { settings, listener, pid_file, backoff }
    }
}

/// A supervised `tailscale funnel`. Dropping it does not stop the child: call [`Funnel::stop`].
#[derive(Debug)]
pub struct Funnel {
    state: watch::Receiver<FunnelState>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Funnel {
    /// Starts supervising in the background; `cancel` (or [`Funnel::stop`]) ends it.
    pub fn spawn(options: FunnelOptions, cancel: &CancellationToken) -> Self {
        let (tx, state) = watch::channel(FunnelState::Starting);
        let stop = cancel.child_token();
        let task = tokio::spawn(supervise(options, tx, stop.clone()));
        Self { state, stop, task }
    }

    /// The current state, and changes to it.
    pub fn state(&self) -> watch::Receiver<FunnelState> {
        self.state.clone()
    }

    /// Waits until the funnel is up (its URL) or has failed for good (the reason), at most `timeout`.
    ///
    /// # Errors
    /// The fatal reason, or a timeout message.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<String, String> {
        let mut state = self.state.clone();
        let settled = tokio::time::timeout(
            timeout,
            state.wait_for(|s| matches!(s, FunnelState::Up { .. } | FunnelState::Failed(_))),
        )
        .await;
        match settled {
            Ok(Ok(s)) => match &*s {
                FunnelState::Up { url } => Ok(url.clone()),
                FunnelState::Failed(reason) => Err(reason.clone()),
                _ => Err("the funnel stopped".to_owned()),
            },
            Ok(Err(_)) => Err("the funnel supervisor ended".to_owned()),
            Err(_) => Err(format!("the funnel was not up after {} s", timeout.as_secs())),
        }
    }

    /// Stops the child and waits for the supervisor to end.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn supervise(options: FunnelOptions, state: watch::Sender<FunnelState>, stop: CancellationToken) {
    if let Some(pid_file) = &options.pid_file {
        stop_orphan(pid_file, &options.settings.binary).await;
    }
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        state.send_replace(FunnelState::Starting);
        let reason = match run_once(&options, &state, &stop).await {
            RunOutcome::Stopped => break,
            RunOutcome::Fatal(e) => {
                tracing::error!(error = %e, "tailscale funnel cannot start");
                state.send_replace(FunnelState::Failed(e.to_string()));
                return;
            }
            RunOutcome::Retry { reason, healthy } => {
                if healthy {
                    attempt = 1;
                }
                reason
            }
        };
        let retry_in = options.backoff.delay(attempt, 1.0);
        tracing::warn!(%reason, retry_secs = retry_in.as_secs_f64(), "tailscale funnel is down; starting it again");
        state.send_replace(FunnelState::Restarting { reason, retry_in });
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(retry_in) => {}
        }
    }
    state.send_replace(FunnelState::Stopped);
}

enum RunOutcome {
    Stopped,
    Fatal(TailscaleError),
    Retry { reason: String, healthy: bool },
}

async fn run_once(options: &FunnelOptions, state: &watch::Sender<FunnelState>, stop: &CancellationToken) -> RunOutcome {
    let binary = &options.settings.binary;
    let plan = async {
        let dns = dns_name_from_status(&query(binary, &["status", "--json"]).await?)?;
        let occupied = occupied_ports(&query(binary, &["funnel", "status", "--json"]).await?)?;
        let port = choose_port(options.settings.funnel_port, &occupied)?;
        Ok::<_, TailscaleError>((dns, port))
    };
    let planned = tokio::select! {
        () = stop.cancelled() => return RunOutcome::Stopped,
        planned = plan => planned,
    };
    let (dns, port) = match planned {
        Ok(plan) => plan,
        Err(e) if e.is_fatal() => return RunOutcome::Fatal(e),
        Err(e) => return RunOutcome::Retry { reason: e.to_string(), healthy: false },
    };
    let url = public_url(&dns, port);
    let args = funnel_args(port, &local_target(options.listener));
    let mut child = match tailscale_command(binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return spawn_failure(binary, e),
    };
    let started = Instant::now();
    if let (Some(pid_file), Some(pid)) = (&options.pid_file, child.id())
        && let Err(e) = write_pid_file(pid_file, pid)
    {
        tracing::warn!(error = %e, file = %pid_file.display(), "cannot record the tailscale funnel pid");
    }
    tracing::info!(port, "tailscale funnel started");

    // The child's output: "Available on the internet" means the funnel is up; everything else
    // (e.g. the link to enable HTTPS or Funnel for the tailnet) is the operator's to read.
    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    forward_lines(child.stdout.take(), line_tx.clone());
    forward_lines(child.stderr.take(), line_tx);
    let mut last_line = String::new();
    let mut fatal: Option<TailscaleError> = None;
    let mut note = |line: String, last_line: &mut String| {
        if line.trim().is_empty() {
            return;
        }
        tracing::info!(target: "tailscale", "{line}");
        if fatal.is_none() {
            fatal = classify_stderr(&line).filter(TailscaleError::is_fatal);
        }
        *last_line = line;
    };
    let status = loop {
        tokio::select! {
            () = stop.cancelled() => {
                stop_child(&mut child).await;
                remove_pid_file(options.pid_file.as_deref());
                return RunOutcome::Stopped;
            }
            line = lines.recv(), if !lines.is_closed() => {
                let Some(line) = line else { continue };
                // "Available on the internet:" and then the URL itself: either means the funnel is up.
                if line.contains("Available on the internet") || line.trim() == url {
                    if !matches!(*state.borrow(), FunnelState::Up { .. }) {
                        tracing::info!(%url, "tailscale funnel is up");
                        state.send_replace(FunnelState::Up { url: url.clone() });
                    }
                } else {
                    note(line, &mut last_line);
                }
            }
            status = child.wait() => break status,
        }
    };
    remove_pid_file(options.pid_file.as_deref());
    // What the child printed last (its error message) may still be in the pipe.
    let drain = async {
        while let Some(line) = lines.recv().await {
            note(line, &mut last_line);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
    if let Some(fatal) = fatal {
        return RunOutcome::Fatal(fatal);
    }
    let reason = if last_line.is_empty() {
        format!("`tailscale funnel` exited ({status})")
    } else {
        format!("`tailscale funnel` exited ({status}): {last_line}")
    };
    RunOutcome::Retry { reason, healthy: started.elapsed() >= HEALTHY_RUN }
}

fn spawn_failure(binary: &Path, e: std::io::Error) -> RunOutcome {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            RunOutcome::Fatal(TailscaleError::NotInstalled { binary: binary.display().to_string() })
        }
        std::io::ErrorKind::PermissionDenied => RunOutcome::Fatal(TailscaleError::Permission(format!(
            "{} is not executable by this user",
            binary.display()
        ))),
        _ => RunOutcome::Retry { reason: format!("cannot run {}: {e}", binary.display()), healthy: false },
    }
}

/// Runs a `tailscale` query and returns its standard output.
async fn query(binary: &Path, args: &[&str]) -> Result<String, TailscaleError> {
    let run = tailscale_command(binary).args(args).stdin(Stdio::null()).kill_on_drop(true).output();
    let output = match tokio::time::timeout(QUERY_TIMEOUT, run).await {
        Err(_) => {
            return Err(TailscaleError::NotReady(format!(
                "`{} {}` did not answer within {} s: is tailscaled running?",
                binary.display(),
                args.join(" "),
                QUERY_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TailscaleError::NotInstalled { binary: binary.display().to_string() });
        }
        Ok(Err(e)) => return Err(TailscaleError::NotReady(format!("cannot run {}: {e}", binary.display()))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(classify_stderr(&stderr).unwrap_or_else(|| {
        TailscaleError::NotReady(format!("`tailscale {}` failed ({}): {stderr}", args.join(" "), output.status))
    }))
}

/// The `tailscale` CLI with a minimal environment: it never sees the bridge's secrets
/// (`KAPSO_API_KEY`, `OPENCLAW_TOKEN`, …), only what it needs to find tailscaled.
fn tailscale_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command.env_clear();
    for (name, value) in std::env::vars_os() {
        let keep = name.to_str().is_some_and(|n| {
            matches!(n, "PATH" | "HOME" | "USER" | "LANG" | "LC_ALL" | "XDG_RUNTIME_DIR")
                || n.starts_with("TS_")
                || n.starts_with("TAILSCALE_")
        });
        if keep {
            command.env(name, value);
        }
    }
    command
}

/// Recognises the CLI's messages that no retry fixes.
fn classify_stderr(text: &str) -> Option<TailscaleError> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("access denied") || lower.contains("not an operator") || lower.contains("permission denied") {
        return Some(TailscaleError::Permission(text.trim().to_owned()));
    }
    if lower.contains("funnel not available") || lower.contains("funnel is not enabled") {
        return Some(TailscaleError::Permission(format!(
            "{}: enable Funnel for this node in the tailnet policy (nodeAttrs `funnel`)",
            text.trim()
        )));
    }
    None
}

fn forward_lines<R>(reader: Option<R>, tx: tokio::sync::mpsc::UnboundedSender<String>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Some(reader) = reader else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Ends the child. tailscaled removes a foreground configuration when the CLI's session ends,
/// so a kill is as clean as an interrupt.
async fn stop_child(child: &mut Child) {
    let _ = child.start_kill();
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        tracing::warn!("tailscale funnel did not exit after being killed");
    } else {
        tracing::info!("tailscale funnel stopped");
    }
}

fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, path)
}

fn remove_pid_file(path: Option<&Path>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

/// A funnel child left behind by a daemon that was killed with SIGKILL still holds its port
/// (its session keeps the foreground configuration). Stop it if the pid file names a live
/// `tailscale funnel` process of ours.
async fn stop_orphan(pid_file: &Path, binary: &Path) {
    let Ok(raw) = std::fs::read_to_string(pid_file) else { return };
    let _ = std::fs::remove_file(pid_file);
    let Ok(pid) = raw.trim().parse::<u32>() else { return };
    if !is_our_funnel(pid, binary) {
        return;
    }
    tracing::warn!(pid, "stopping a tailscale funnel left behind by a previous run");
    let killed = Command::new("kill").arg("-KILL").arg(pid.to_string()).stdin(Stdio::null()).status().await;
    if killed.is_ok() {
        let gone = async {
            while is_our_funnel(pid, binary) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let _ = tokio::time::timeout(STOP_GRACE, gone).await;
    }
}

/// Whether `pid` is a running `<binary> funnel … /webhook` (Linux `/proc`; elsewhere: unknown → false).
fn is_our_funnel(pid: u32, binary: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let binary_name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let runs_binary =
        args.iter().take(2).any(|a| Path::new(a).file_name().is_some_and(|n| n.to_string_lossy() == binary_name));
    runs_binary
        && args.iter().any(|a| a == "funnel")
        && args.iter().any(|a| a == &format!("--set-path={WEBHOOK_PATH}"))
        && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn dns_name_is_trimmed_and_states_are_classified() {
        let ok = r#"{"BackendState":"Running","Self":{"DNSName":"box.tail1234.ts.net.","HostName":"box"}}"#;
        assert_eq!(dns_name_from_status(ok).unwrap(), "box.tail1234.ts.net");
        let stopped = r#"{"BackendState":"NeedsLogin","Self":{"DNSName":""}}"#;
        let err = dns_name_from_status(stopped).unwrap_err();
        assert!(!err.is_fatal() && err.to_string().contains("tailscale up"), "{err}");
        let no_dns = r#"{"BackendState":"Running","Self":{"DNSName":""}}"#;
        assert!(dns_name_from_status(no_dns).unwrap_err().to_string().contains("MagicDNS"));
        assert!(dns_name_from_status("not json").is_err());
    }

    #[test]
    fn occupied_ports_cover_background_foreground_and_funnel_entries() {
        assert!(occupied_ports("null\n").unwrap().is_empty());
        assert!(occupied_ports("{}").unwrap().is_empty());
        let config = r#"{
          "TCP": {"443": {"HTTPS": true}},
          "Web": {"box.ts.net:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}}},
          "AllowFunnel": {"box.ts.net:10000": true},
          "Foreground": {"abc": {"TCP": {"8443": {"HTTPS": true}}}}
        }"#;
        assert_eq!(occupied_ports(config).unwrap(), BTreeSet::from([443, 8443, 10000]));
    }

    #[test]
    fn the_port_choice_never_takes_an_occupied_port() {
        let none = BTreeSet::new();
        assert_eq!(choose_port(None, &none).unwrap(), 443);
        assert_eq!(choose_port(None, &BTreeSet::from([443])).unwrap(), 8443);
        assert_eq!(choose_port(None, &BTreeSet::from([443, 8443])).unwrap(), 10000);
        let err = choose_port(None, &BTreeSet::from([443, 8443, 10000])).unwrap_err();
        assert!(err.is_fatal() && err.to_string().contains("KAPSO_MODE=domain"), "{err}");
        assert_eq!(choose_port(Some(8443), &BTreeSet::from([443])).unwrap(), 8443);
        let err = choose_port(Some(443), &BTreeSet::from([443])).unwrap_err();
        assert!(err.to_string().contains("KAPSO_TAILSCALE_FUNNEL_PORT"), "{err}");
    }

    #[test]
    fn urls_and_arguments() {
        assert_eq!(public_url("box.ts.net", 443), "https://box.ts.net/webhook");
        assert_eq!(public_url("box.ts.net", 8443), "https://box.ts.net:8443/webhook");
        assert_eq!(local_target("0.0.0.0:18790".parse().unwrap()), "http://127.0.0.1:18790/webhook");
        assert_eq!(local_target("[::]:18790".parse().unwrap()), "http://[::1]:18790/webhook");
        assert_eq!(local_target("10.1.2.3:9".parse().unwrap()), "http://10.1.2.3:9/webhook");
        assert_eq!(
            funnel_args(8443, "http://127.0.0.1:18790/webhook"),
            ["funnel", "--https=8443", "--set-path=/webhook", "http://127.0.0.1:18790/webhook"]
        );
    }

    #[test]
    fn permission_messages_are_fatal() {
        for text in [
            "Access denied: serve config denied",
            "sudo tailscale set --operator=$USER: not an operator",
            "Funnel not available; \"funnel\" node attribute not set.",
        ] {
            assert!(classify_stderr(text).is_some_and(|e| e.is_fatal()), "{text}");
        }
        assert!(classify_stderr("foreground already exists under this port").is_none());
    }

    #[test]
    fn settings_from_env_and_file() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            let map: HashMap<&str, &str> = vars.iter().copied().collect();
            move |k: &str| map.get(k).map(|v| (*v).to_owned())
        };
        assert_eq!(TailscaleSettings::load(None, &env(&[])).unwrap(), TailscaleSettings::default());
        let table: toml::Table = toml::from_str("tailscale_bin = \"/opt/ts\"\ntailscale_funnel_port = 8443\n").unwrap();
        let s = TailscaleSettings::load(Some(&table), &env(&[])).unwrap();
        assert_eq!((s.binary, s.funnel_port), (PathBuf::from("/opt/ts"), Some(8443)));
        let s = TailscaleSettings::load(Some(&table), &env(&[("KAPSO_TAILSCALE_BIN", "/usr/bin/tailscale")])).unwrap();
        assert_eq!(s.binary, PathBuf::from("/usr/bin/tailscale"));
        let err = TailscaleSettings::load(None, &env(&[("KAPSO_TAILSCALE_FUNNEL_PORT", "8080")])).unwrap_err();
        assert!(err.contains("KAPSO_TAILSCALE_FUNNEL_PORT") && err.contains("8443"), "{err}");
    }
}
