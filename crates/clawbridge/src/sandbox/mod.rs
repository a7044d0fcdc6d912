//! `clawbridge sandbox`: the real daemon (the same ingress, pipeline, store and renderers as
//! `serve`) with a generated configuration whose KakaoTalk and WhatsApp (Kapso) platforms are
//! simulated in the same process, and a page on the daemon's own listener to chat as their users.
//!
//! # Layout
//! - [`kakao_sim`]: the simulated Kakao: posts SkillPayloads to `/kakao/skill` with the skill
//!   secret and hosts the one-shot callback URLs.
//! - [`kapso_sim`]: the simulated Kapso: receives the sends (Meta Cloud API shapes), posts signed
//!   webhooks and the delivery statuses (sent, delivered, read).
//! - [`page`]: `/sandbox`, its assets and its small JSON API.
//!
//! The simulators listen on a loopback port of their own (another "host", as the platforms are);
//! the generated configuration allows that host as callback, media and API host, and nothing
//! else does. A dmPolicy toggle restarts the daemon with the new policy on the same port and
//! state: the policy is read at start, as in production.

pub mod kakao_sim;
pub mod kapso_sim;
pub mod page;

use crate::config::{Config, GatewaySettings};
use crate::daemon::{self, DaemonHandle};
use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The bot id of the simulated Kakao chatbot.
pub const BOT_ID: &str = "sandbox-bot";
/// The phone number id of the simulated WhatsApp business number.
pub const PHONE_NUMBER_ID: &str = "100000000000001";
/// The users the page opens with (and the only ones the `allowlist` policy lets in).
pub const DEFAULT_KAKAO_USER: &str = "minji";
/// The WhatsApp user the page opens with.
pub const DEFAULT_WHATSAPP_USER: &str = "15550001111";

/// Who may talk to the agent: the three dmPolicy values of both channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Everyone.
    #[default]
    Open,
    /// Unknown senders get a pairing code; the owner approves it.
    Pairing,
    /// Only the default users of the page.
    Allowlist,
}

impl Policy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pairing => "pairing",
            Self::Allowlist => "allowlist",
        }
    }
}

/// What the page's toggles set: what the simulated platforms do, and the daemon's dmPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toggles {
    /// The chatbot's "AI callback" is approved: skill requests carry a one-shot `callbackUrl`.
    pub callback: bool,
    /// Kakao gives up on a skill after 5 seconds (off: the simulator waits, to see the answer).
    pub deadline: bool,
    /// The dmPolicy of both channels (a change restarts the daemon).
    pub policy: Policy,
    /// The platforms fail every send (and callback) with a 5xx until turned off again.
    pub outage: bool,
}

impl Default for Toggles {
    fn default() -> Self {
        Self { callback: true, deadline: true, policy: Policy::Open, outage: false }
    }
}

/// The generated secrets of one sandbox (random per run; they never leave the process and the
/// throwaway state directory).
#[derive(Clone)]
pub struct Secrets {
    /// `X-Skill-Secret` of the simulated Kakao.
    pub skill_secret: String,
    /// `X-API-Key` the simulated Kapso accepts.
    pub kapso_api_key: String,
    /// The HMAC key of the simulated Kapso's webhooks.
    pub webhook_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    fn generate() -> anyhow::Result<Self> {
        Ok(Self { skill_secret: random_hex(24)?, kapso_api_key: random_hex(24)?, webhook_secret: random_hex(24)? })
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness for the sandbox's secrets: {e}"))?;
    Ok(hex::encode(buf))
}

/// A file one of the simulated platforms serves (an image a user sent, a file the bridge uploaded).
#[derive(Clone, Debug)]
pub struct HostedFile {
    /// Its MIME type.
    pub mime_type: String,
    /// The name it was given.
    pub file_name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What the simulators and the page share.
pub struct Sim {
    /// `http://127.0.0.1:PORT` of the simulators' listener.
    pub base: String,
    /// The generated secrets.
    pub secrets: Secrets,
    /// The simulated Kakao.
    pub kakao: kakao_sim::KakaoSim,
    /// The simulated Kapso.
    pub kapso: kapso_sim::KapsoSim,
    toggles: Mutex<Toggles>,
    daemon: OnceLock<SocketAddr>,
    daemon_state: Mutex<String>,
    files: Mutex<HashMap<String, HostedFile>>,
    next_id: AtomicU64,
    changes: watch::Sender<u64>,
    restart: OnceLock<mpsc::UnboundedSender<Supervise>>,
    config_path: OnceLock<PathBuf>,
    config: Mutex<Option<Config>>,
    /// The simulators' HTTP client (every call has a timeout of its own).
    pub http: reqwest::Client,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("base", &self.base).finish_non_exhaustive()
    }
}

/// Locks, carrying on after a panic elsewhere (the data is display state only).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sim {
    /// Simulators with `base` as their URL, not yet connected to a daemon.
    ///
    /// # Errors
    /// No randomness for the secrets, or no HTTP client.
    pub fn new(base: String) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("cannot build the simulators' HTTP client")?;
        Ok(Arc::new(Self {
            base,
            secrets: Secrets::generate()?,
            kakao: kakao_sim::KakaoSim::default(),
            kapso: kapso_sim::KapsoSim::default(),
            toggles: Mutex::new(Toggles::default()),
            daemon: OnceLock::new(),
            daemon_state: Mutex::new("starting".to_owned()),
            files: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            changes: watch::Sender::new(0),
            restart: OnceLock::new(),
            config_path: OnceLock::new(),
            config: Mutex::new(None),
            http,
        }))
    }

    /// The simulators' routes: Kakao's callback URLs, Kapso's API, the hosted files.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        kakao_sim::routes(self.clone()).merge(kapso_sim::routes(self.clone()))
    }

    /// The toggles now.
    pub fn toggles(&self) -> Toggles {
        *lock(&self.toggles)
    }

    /// Sets the toggles; a new dmPolicy restarts the daemon.
    pub fn set_toggles(&self, new: Toggles) {
        let old = std::mem::replace(&mut *lock(&self.toggles), new);
        if old.policy != new.policy
            && let Some(restart) = self.restart.get()
        {
            self.set_daemon_state(format!("restarting with dmPolicy {}", new.policy.as_str()));
            let _ = restart.send(Supervise::Policy(new.policy));
        }
        self.changed();
    }

    /// `http://ADDR` of the daemon, once it runs.
    pub fn daemon_url(&self) -> Option<String> {
        self.daemon.get().map(|addr| format!("http://{addr}"))
    }

    /// Connects the simulators to the daemon at `addr`.
    pub fn set_daemon(&self, addr: SocketAddr) {
        let _ = self.daemon.set(addr);
        self.set_daemon_state("running".to_owned());
    }

    /// "running", "restarting …", or a start-up error.
    pub fn daemon_state(&self) -> String {
        lock(&self.daemon_state).clone()
    }

    fn set_daemon_state(&self, state: String) {
        *lock(&self.daemon_state) = state;
        self.changed();
    }

    /// The generated configuration file, once written (the page shows the pairing command with it).
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.get().map(PathBuf::as_path)
    }

    /// The configuration the daemon runs with now (the page approves pairing codes with it).
    pub fn config(&self) -> Option<Config> {
        lock(&self.config).clone()
    }

    /// A new id, unique in this sandbox.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Hosts `file` at `{base}/files/{id}` and returns the id.
    pub fn host_file(&self, file: HostedFile) -> String {
        let id = format!("media-sandbox-{}", self.next_id());
        lock(&self.files).insert(id.clone(), file);
        id
    }

    /// A hosted file.
    pub fn file(&self, id: &str) -> Option<HostedFile> {
        lock(&self.files).get(id).cloned()
    }

    /// The URL of a hosted file.
    pub fn file_url(&self, id: &str) -> String {
        format!("{}/files/{id}", self.base)
    }

    /// Tells the page that something changed.
    pub fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Watches the change counter (the page long-polls on it).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// How `clawbridge sandbox` was asked to run.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Keep the state here instead of a throwaway temporary directory.
    pub state_dir: Option<PathBuf>,
    /// The daemon's listener (the page is on it); port 0 picks a free one.
    pub listen: SocketAddr,
    /// The operator's gateway (`OPENCLAW_GATEWAY_URL`, `OPENCLAW_TOKEN`, `OPENCLAW_AGENT_ID`).
    pub gateway: GatewaySettings,
}

/// A running sandbox.
pub struct Sandbox {
    /// The simulators and the page's state.
    pub sim: Arc<Sim>,
    /// Where the daemon (and the page) listens.
    pub addr: SocketAddr,
    /// The generated configuration file.
    pub config_path: PathBuf,
    supervisor: JoinHandle<()>,
    stop: mpsc::UnboundedSender<Supervise>,
    sims: JoinHandle<()>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts the simulators, then the daemon with the generated configuration.
    ///
    /// # Errors
    /// The state directory, a listener, or the daemon's start (with the setting to fix).
    pub async fn start(options: SandboxOptions) -> anyhow::Result<Self> {
        let (temp, state_dir) = match &options.state_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("clawbridge-sandbox-")
                    .tempdir()
                    .context("cannot create a temporary directory for the sandbox's state")?;
                let path = temp.path().to_owned();
                (Some(temp), path)
            }
        };
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create the sandbox's state directory {}", state_dir.display()))?;

        let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on a loopback port for the simulated platforms")?;
        let sim_addr = sim_listener.local_addr()?;
        let sim = Sim::new(format!("http://{sim_addr}"))?;
        let sims = {
            let router = sim.router();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(sim_listener, router).await {
                    tracing::error!(error = %e, "the simulated platforms' listener failed");
                }
            })
        };

        let generated = Generated { state_dir, gateway: options.gateway.clone(), sim: sim.clone() };
        let config_path = generated.path();
        let _ = sim.config_path.set(config_path.clone());
        let config = generated.config(options.listen, Policy::Open)?;
        let handle = daemon::start_with_routes(config, daemon::Channels::Configured, page::routes(sim.clone()))
            .await
            .inspect_err(|_| sims.abort())?;
        let addr = handle.addr;
        sim.set_daemon(addr);
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = sim.restart.set(tx.clone());
        let supervisor = tokio::spawn(supervise(generated, handle, rx));
        Ok(Self { sim, addr, config_path, supervisor, stop: tx, sims, _temp: temp })
    }

    /// `http://ADDR/sandbox`.
    pub fn url(&self) -> String {
        format!("http://{}/sandbox", self.addr)
    }

    /// Stops the daemon (draining), then the simulators; a temporary state directory is removed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(Supervise::Stop);
        let _ = self.supervisor.await;
        self.sims.abort();
    }
}

/// What the supervisor of the daemon is told.
#[derive(Clone, Copy, Debug)]
enum Supervise {
    /// Restart with this dmPolicy.
    Policy(Policy),
    /// Stop the daemon.
    Stop,
}

/// Runs the daemon; restarts it on a policy change, stops it when told to.
async fn supervise(generated: Generated, mut handle: DaemonHandle, mut commands: mpsc::UnboundedReceiver<Supervise>) {
    let mut policy = Policy::Open;
    while let Some(Supervise::Policy(next)) = commands.recv().await {
        if next == policy {
            continue;
        }
        let addr = handle.addr;
        handle.shutdown().await;
        match start_again(&generated, addr, next).await {
            Ok(started) => {
                handle = started;
                policy = next;
                generated.sim.set_daemon_state("running".to_owned());
            }
            Err(e) => {
                // Back to the policy that ran, so the sandbox keeps working.
                tracing::error!(error = %format!("{e:#}"), "the sandbox's daemon did not restart");
                match start_again(&generated, addr, policy).await {
                    Ok(started) => {
                        handle = started;
                        lock(&generated.sim.toggles).policy = policy;
                        generated.sim.set_daemon_state(format!("could not switch the dmPolicy: {e:#}"));
                    }
                    Err(e) => {
                        generated.sim.set_daemon_state(format!("stopped: {e:#}"));
                        return;
                    }
                }
            }
        }
    }
    handle.shutdown().await;
}

/// Starts the daemon on `addr` again (the port stays: the page and the simulators keep it).
async fn start_again(generated: &Generated, addr: SocketAddr, policy: Policy) -> anyhow::Result<DaemonHandle> {
    let config = generated.config(addr, policy)?;
    daemon::start_with_routes(config, daemon::Channels::Configured, page::routes(generated.sim.clone())).await
}

/// The sandbox's configuration: written to `sandbox.toml` in the state directory (to read, and
/// for `clawbridge --config … pairing approve`), with the operator's gateway settings.
struct Generated {
    state_dir: PathBuf,
    gateway: GatewaySettings,
    sim: Arc<Sim>,
}

impl Generated {
    fn path(&self) -> PathBuf {
        self.state_dir.join("sandbox.toml")
    }

    fn config(&self, listen: SocketAddr, policy: Policy) -> anyhow::Result<Config> {
        let text = config_text(&self.state_dir, listen, &self.sim.base, &self.sim.secrets, policy);
        let path = self.path();
        write_private(&path, &text)?;
        let gateway = &self.gateway;
        let token = gateway.token.as_ref().map(|t| t.expose_secret().to_owned());
        let agent_timeout = gateway.agent_timeout.as_secs().max(1).to_string();
        // Only the gateway comes from the operator's environment: a CLAWBRIDGE_DATABASE_URL or
        // KAPSO_API_KEY of theirs must not point the sandbox at production.
        let env = |name: &str| match name {
            "OPENCLAW_GATEWAY_URL" => Some(gateway.url.clone()),
            "OPENCLAW_TOKEN" => token.clone(),
            "OPENCLAW_AGENT_ID" => Some(gateway.agent_id.clone()),
            "OPENCLAW_AGENT_TIMEOUT_SECS" => Some(agent_timeout.clone()),
            "HOME" => std::env::var("HOME").ok(),
            _ => None,
        };
        let config =
            Config::load_with(Some(&path), &env).map_err(|e| anyhow::anyhow!("the sandbox's generated config: {e}"))?;
        *lock(&self.sim.config) = Some(config.clone());
        Ok(config)
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// A TOML string (a JSON string is one: the same escapes, and serde_json writes no `\/`).
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The generated `sandbox.toml`: Kakao and Kapso pointed at the simulators' host, which only this
/// file allows (as callback, image and media host).
pub fn config_text(state_dir: &Path, listen: SocketAddr, sim_base: &str, secrets: &Secrets, policy: Policy) -> String {
    let sim_host = sim_base.trim_start_matches("http://").split(':').next().unwrap_or("127.0.0.1");
    let (kakao_allow, whatsapp_allow) = match policy {
        Policy::Open => ("[\"*\"]".to_owned(), "[\"*\"]".to_owned()),
        Policy::Pairing => ("[]".to_owned(), "[]".to_owned()),
        Policy::Allowlist => (
            format!("[{}]", quoted(&kakao_sim::user_key(DEFAULT_KAKAO_USER))),
            format!("[{}]", quoted(DEFAULT_WHATSAPP_USER)),
        ),
    };
    let policy = policy.as_str();
    format!(
        "# Generated by `clawbridge sandbox`: simulated KakaoTalk and WhatsApp in the same process.\n\
         # Rewritten at every (re)start; the secrets are random per run.\n\n\
         [bridge]\n\
         state_dir = {state_dir}\n\
         listen = {listen}\n\n\
         [pipeline]\n\
         drain_timeout_secs = 3\n\n\
         # No agent tools: the sandbox must not publish a node on your gateway beside your real daemon's.\n\
         [tools]\n\
         enabled = false\n\n\
         [kakao.chatbot]\n\
         botId = {bot}\n\
         skillSecret = {skill}\n\
         botApiBaseUrl = {sim}\n\
         callbackHosts = [{host}]\n\
         imageHosts = [{host}]\n\
         dmPolicy = {policy_q}\n\
         allowFrom = {kakao_allow}\n\n\
         [whatsapp]\n\
         api_key = {api_key}\n\
         phone_number_id = {pnid}\n\
         base_url = {sim}\n\
         mode = \"domain\"\n\
         webhook_secret = {webhook}\n\
         media_hosts = [{host}]\n\
         dm_policy = {policy_q}\n\
         allow_from = {whatsapp_allow}\n",
        state_dir = quoted(&state_dir.display().to_string()),
        listen = quoted(&listen.to_string()),
        bot = quoted(BOT_ID),
        skill = quoted(&secrets.skill_secret),
        sim = quoted(sim_base),
        host = quoted(sim_host),
        policy_q = quoted(policy),
        api_key = quoted(&secrets.kapso_api_key),
        pnid = quoted(PHONE_NUMBER_ID),
        webhook = quoted(&secrets.webhook_secret),
    )
}
