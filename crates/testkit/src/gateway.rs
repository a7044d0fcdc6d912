//! A real OpenClaw gateway for end-to-end tests (reference/openclaw-gateway.md §4.2–§4.8).
//!
//! Each [`Gateway`] gets a fresh temporary directory `$T` holding its whole state (`$T/home` is its
//! `HOME`), a free loopback port, a random token and a config pointing at a [`StubModel`]. Output goes
//! to `$T/gw.log`, whose tail is in every failure message.
//!
//! # Lifetime
//! `cargo test` never drops statics and may die from a signal, so destructors cannot be the only way
//! to stop a gateway. It is launched through a small `sh` wrapper (`WRAPPER` in the source) whose stdin is a pipe
//! from the test process. When the test process exits for any reason the pipe closes, and the wrapper
//! sends SIGTERM to the gateway and removes `$T`. Deliberate stops use commands on that pipe instead,
//! so `$T` survives for [`Gateway::start_again`] and is still cleaned up if the test process dies
//! between the stop and the restart.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::install::{self, Install};
use crate::stub::StubModel;
use crate::ws::RawClient;

/// Upper bound for start → `hello-ok` (observed 9–24 s on a loaded 2-vCPU VM, §4.7).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between readiness attempts (§4.6).
const READY_POLL: Duration = Duration::from_millis(250);
/// SIGTERM → exit takes 3–4 s (§4.7); after this the process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of `gw.log` quoted in failure messages.
const TAIL_LINES: usize = 60;
/// Set to `1` to keep `$T` (config, logs, workspace) after the test for diagnosis.
pub const ENV_KEEP: &str = "CLAWBRIDGE_E2E_KEEP";

/// `sh -c` wrapper: `$1` is the directory to remove when the test process disappears (empty: keep
/// it), the rest is the gateway command line. The gateway gets `/dev/null` as stdin. A background
/// watcher reads the pipe (saved as fd 3) line by line: `term` sends SIGTERM to the gateway, `detach`
/// ends the watcher (a new wrapper has taken over), and EOF (the test process is gone) sends SIGTERM
/// unless already sent, waits for the gateway (SIGKILL after 15 s) and removes the directory. The
/// wrapper itself exits with the gateway, so the test process sees a crash as its child exiting.
const WRAPPER: &str = r#"dir=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
{
  stopped=
  while IFS= read -r line <&3; do
    case $line in
      term) stopped=1; kill -TERM "$pid" 2>/dev/null ;;
      detach) exit 0 ;;
    esac
  done
  [ -z "$stopped" ] && kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -eq 75 ] && kill -KILL "$pid" 2>/dev/null
    sleep 0.2
  done
  [ -n "$dir" ] && rm -rf "$dir"
} &
exec 3<&-
wait "$pid"
"#;

/// Optional changes to the gateway's environment and config.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Directories put on the gateway's `PATH` right after Node and OpenClaw, e.g. the directory of
    /// the `clawbridge` binary for tests where the agent runs it through the `exec` tool.
    pub path_prepend: Vec<PathBuf>,
    /// Extra environment variables for the gateway process.
    pub env: Vec<(String, String)>,
    /// Declare the stub model as accepting images (`input: ["text", "image"]`). With the recipe's
    /// text-only model the gateway rejects `agent` calls carrying images ("UnsupportedAttachmentError:
    /// … active model does not accept image inputs").
    pub image_input: bool,
    /// Merged into the generated `openclaw.json` (objects merge recursively, anything else replaces).
    pub config_patch: Option<Value>,
}

/// A running (or stopped) real OpenClaw gateway. Dropping it stops the gateway and removes `$T`.
#[derive(Debug)]
pub struct Gateway {
    install: Install,
    options: GatewayOptions,
    stub_base_url: String,
    /// Owns `$T`; `None` when [`ENV_KEEP`] asked to keep it.
    dir: Option<TempDir>,
    root: PathBuf,
    port: u16,
    token: String,
    /// The `sh` wrapper; it lives exactly as long as the gateway.
    child: Option<Child>,
    /// Write end of the wrapper's stdin (see `WRAPPER`); kept open after a stop until the next
    /// wrapper takes over or the handle is dropped.
    control: Option<ChildStdin>,
    runs: u32,
}

impl Gateway {
    /// Starts a gateway using the located install and default options, and waits until it answers
    /// the handshake. Blocking; callable from sync tests and from inside any tokio runtime.
    ///
    /// # Panics
    /// If no install is found (call [`install::require_or_skip`] first), or the gateway exits or is
    /// not ready within 120 s; the message has the tail of `gw.log`.
    pub fn start(stub: &StubModel) -> Gateway {
        let install = located_or_panic();
        Self::start_with(&install, stub, GatewayOptions::default())
    }

    /// [`Gateway::start`] with an explicit install and options.
    pub fn start_with(install: &Install, stub: &StubModel, options: GatewayOptions) -> Gateway {
        let mut gateway = Self::launch_new(install, stub, options);
        let ready = block_on_own_runtime(gateway.until_ready());
        gateway.expect_ready(ready);
        gateway
    }

    /// Async form of [`Gateway::start`]: waits for readiness without blocking the caller's runtime.
    pub async fn start_async(stub: &StubModel) -> Gateway {
        let install = located_or_panic();
        Self::start_with_async(&install, stub, GatewayOptions::default()).await
    }

    /// Async form of [`Gateway::start_with`].
    pub async fn start_with_async(install: &Install, stub: &StubModel, options: GatewayOptions) -> Gateway {
        let mut gateway = Self::launch_new(install, stub, options);
        let ready = gateway.until_ready().await;
        gateway.expect_ready(ready);
        gateway
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The gateway's shared auth token (`gateway.auth.token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The loopback port; unchanged by [`Gateway::start_again`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `$T`, the temporary root of everything this gateway writes.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// `$T/home/.openclaw`: config, agent state, `skills/`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("home").join(".openclaw")
    }

    /// The agent workspace (`<state>/workspace`); `skills/` in it are discovered by the agent.
    pub fn workspace_dir(&self) -> PathBuf {
        self.state_dir().join("workspace")
    }

    /// `$T/gw.log`: the gateway's stdout and stderr over all runs.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("gw.log")
    }

    /// The last `n` lines of `gw.log`.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the gateway process is alive.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    /// Stops the gateway: SIGTERM (through the wrapper), up to 10 s, then SIGKILL of its process
    /// group. Keeps `$T`. No-op when already stopped. Blocking.
    pub fn stop(&mut self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        self.request_stop();
        while !self.reaped() {
            if Instant::now() >= deadline {
                self.kill();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Async form of [`Gateway::stop`].
    pub async fn stop_async(&mut self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        self.request_stop();
        while !self.reaped() {
            if Instant::now() >= deadline {
                self.kill();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the gateway if running and starts it again on the same port with the same `$T` (config,
    /// sessions, workspace) and token, waiting for readiness. Blocking.
    ///
    /// # Panics
    /// Like [`Gateway::start`].
    pub fn start_again(&mut self) {
        self.stop();
        self.launch();
        let ready = block_on_own_runtime(self.until_ready());
        self.expect_ready(ready);
    }

    /// Async form of [`Gateway::start_again`].
    pub async fn start_again_async(&mut self) {
        self.stop_async().await;
        self.launch();
        let ready = self.until_ready().await;
        self.expect_ready(ready);
    }

    fn launch_new(install: &Install, stub: &StubModel, options: GatewayOptions) -> Gateway {
        let dir = tempfile::Builder::new().prefix("clawbridge-gw-").tempdir().expect("create gateway temp dir");
        let (dir, root) = if std::env::var(ENV_KEEP).is_ok_and(|v| v == "1") {
            let root = dir.keep();
            let _ = writeln!(std::io::stderr(), "clawbridge-testkit: keeping gateway dir {}", root.display());
            (None, root)
        } else {
            let root = dir.path().to_owned();
            (Some(dir), root)
        };
        let mut gateway = Gateway {
            install: install.clone(),
            options,
            stub_base_url: stub.base_url(),
            dir,
            root,
            port: free_port(),
            token: random_token(),
            child: None,
            control: None,
            runs: 0,
        };
        gateway.write_config();
        gateway.launch();
        gateway
    }

    /// The config of §4.3 plus [`GatewayOptions::config_patch`].
    fn write_config(&self) {
        let input = if self.options.image_input { json!(["text", "image"]) } else { json!(["text"]) };
        let mut config = json!({
            "gateway": {"mode": "local", "bind": "loopback", "port": self.port,
                        "auth": {"mode": "token", "token": self.token}},
            "models": {
                "mode": "merge",
                "providers": {"stub": {
                    "baseUrl": self.stub_base_url, "apiKey": "stub-key", "api": "openai-completions",
                    "models": [{"id": "stub-model", "name": "Stub Model", "reasoning": false, "input": input,
                                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                                "contextWindow": 128000, "maxTokens": 4096}]
                }},
                "catalogRefresh": {"enabled": false}
            },
            "agents": {"defaults": {"model": {"primary": "stub/stub-model"}, "utilityModel": ""}},
            "update": {"checkOnStart": false},
            "logging": {"file": self.root.join("logs").join("openclaw.log"), "level": "debug"}
        });
        if let Some(patch) = &self.options.config_patch {
            merge(&mut config, patch);
        }
        let state = self.state_dir();
        std::fs::create_dir_all(&state).expect("create state dir");
        let text = serde_json::to_string_pretty(&config).expect("config JSON");
        std::fs::write(state.join("openclaw.json"), text).expect("write openclaw.json");
    }

    /// Approves the pending command surface of node `node_id` the way an operator does with
    /// `openclaw nodes approve <requestId>`, over the gateway's RPC (`node.pair.list` to find the
    /// request, `node.pair.approve`), as a loopback operator with `operator.pairing`. Returns the
    /// request id approved.
    ///
    /// # Errors
    /// When the gateway cannot be reached, no request of that node is pending, or the approval fails.
    pub async fn approve_node(&self, node_id: &str) -> Result<String, String> {
        let scopes = ["operator.read", "operator.write", "operator.pairing"];
        let (mut client, _) = RawClient::connect_with_scopes(&self.url(), &self.token, &scopes).await?;
        let list = client.request("node.pair.list", json!({})).await?;
        let request_id = list["pending"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["nodeId"] == node_id)
            .and_then(|p| p["requestId"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("no pending node request for {node_id}: {list}"))?;
        client.request("node.pair.approve", json!({"requestId": request_id})).await?;
        Ok(request_id)
    }

    /// One operator RPC (scopes read, write and pairing), for assertions on the gateway's own view
    /// (`node.describe`, `tools.effective`, `node.invoke`…). Returns the payload.
    ///
    /// # Errors
    /// When the connection fails or the method answers with an error (the error object as text).
    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let scopes = ["operator.read", "operator.write", "operator.pairing"];
        let (mut client, _) = RawClient::connect_with_scopes(&self.url(), &self.token, &scopes).await?;
        client.request(method, params).await
    }

    /// Merges `patch` into the running gateway's `openclaw.json` (objects merge recursively),
    /// which the gateway hot-reloads as it does after `openclaw config set`.
    pub fn patch_config(&self, patch: &Value) {
        let path = self.state_dir().join("openclaw.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read openclaw.json")).expect("config JSON");
        merge(&mut config, patch);
        std::fs::write(&path, serde_json::to_string_pretty(&config).expect("config JSON"))
            .expect("write openclaw.json");
    }

    /// Runs the `openclaw` CLI against this gateway (same isolated environment and state), e.g.
    /// `["devices", "approve", id]` or `["nodes", "pending", "--json"]`. Blocking (5–10 s: the CLI
    /// boots Node each time).
    pub fn openclaw(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.openclaw_command();
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.output().expect("run the openclaw CLI")
    }

    /// The `openclaw` command with the isolated environment of §4.2 (no arguments yet).
    fn openclaw_command(&self) -> Command {
        let home = self.root.join("home");
        let tmp = self.root.join("tmp");
        let compile_cache = self.root.join("cache").join("node-compile-cache");
        let openclaw_bin_dir = self.install.openclaw_bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut path = vec![self.install.node_bin_dir.clone(), openclaw_bin_dir];
        path.extend(self.options.path_prepend.iter().cloned());
        path.extend(
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default(),
        );
        let path = std::env::join_paths(path).expect("PATH entries contain no ':'");
        let mut cmd = Command::new(&self.install.openclaw_bin);
        // The developer's own OpenClaw settings must not leak into the test gateway.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OPENCLAW_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PATH", path)
            .env("HOME", &home)
            .env("OPENCLAW_HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local").join("share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_STATE_HOME", home.join(".local").join("state"))
            .env("OPENCLAW_SKIP_CHANNELS", "1")
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_NO_RESPAWN", "1")
            .env("OPENCLAW_EXEC_SHELL_SNAPSHOT", "0")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("DO_NOT_TRACK", "1")
            .env("OPENCLAW_OFFLINE", "1")
            .env("NODE_COMPILE_CACHE", &compile_cache)
            .env("TMPDIR", &tmp)
            .env("XDG_RUNTIME_DIR", &tmp)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Spawns the wrapper + gateway with the isolated environment of §4.2.
    fn launch(&mut self) {
        self.runs += 1;
        let home = self.root.join("home");
        let tmp = self.root.join("tmp");
        let compile_cache = self.root.join("cache").join("node-compile-cache");
        for dir in [&home, &tmp, &compile_cache, &self.root.join("logs")] {
            std::fs::create_dir_all(dir).expect("create gateway dir");
        }
        // XDG_RUNTIME_DIR must be private to the user.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).expect("chmod tmp");

        let mut log = OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open gw.log");
        let _ = writeln!(log, "=== clawbridge-testkit: gateway run {} on port {} ===", self.runs, self.port);
        let stderr_log: File = log.try_clone().expect("clone gw.log handle");

        let cleanup = if self.dir.is_some() { self.root.as_os_str() } else { "".as_ref() };
        // The wrapper gets the gateway's environment; the gateway inherits it.
        let template = self.openclaw_command();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(WRAPPER).arg("sh").arg(cleanup).arg(&self.install.openclaw_bin);
        cmd.args(["gateway", "run", "--bind", "loopback", "--port", &self.port.to_string()]);
        for (key, value) in template.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.stdin(Stdio::piped())
            .stdout(log)
            .stderr(stderr_log)
            // Own process group: a terminal ^C reaches the test process only (the pipe then closes),
            // and a forced stop can kill the wrapper, watcher and gateway together.
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn sh wrapper for the gateway");
        self.detach(); // the previous run's watcher, now that the new one guards `$T`
        self.control = child.stdin.take();
        self.child = Some(child);
    }

    /// Loops the full handshake until `hello-ok` (§4.6). Connection refused and the retryable
    /// `UNAVAILABLE`/`startup-sidecars` answer are expected on the way.
    async fn until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url();
        let mut last = String::from("no attempt yet");
        loop {
            if let Some(status) = self.exit_status() {
                return Err(format!("gateway exited ({status}) before it was ready; last attempt: {last}"));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = RawClient::connect(&url, &self.token);
            match tokio::time::timeout(remaining.min(Duration::from_secs(10)), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = "handshake timed out".to_owned(),
            }
            if Instant::now() >= deadline {
                return Err(format!("gateway not ready after {READY_TIMEOUT:?}; last attempt: {last}"));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn expect_ready(&mut self, ready: Result<(), String>) {
        if let Err(why) = ready {
            self.stop();
            panic!(
                "{why}\n--- {} (last {TAIL_LINES} lines) ---\n{}",
                self.log_path().display(),
                self.log_tail(TAIL_LINES)
            );
        }
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Asks the watcher to SIGTERM the gateway if it is still running (a dead gateway's PID may
    /// already belong to another process).
    fn request_stop(&mut self) {
        if !self.reaped()
            && let Some(control) = &mut self.control
        {
            // Fails only if the watcher was killed; then the stop deadline escalates.
            let _ = control.write_all(b"term\n");
        }
    }

    /// Ends the watcher of the current pipe without cleanup, and closes the pipe.
    fn detach(&mut self) {
        if let Some(mut control) = self.control.take() {
            let _ = control.write_all(b"detach\n");
        }
    }

    /// True when there is no process left to wait for.
    fn reaped(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            None | Some(Ok(Some(_)) | Err(_)) => {
                self.child = None;
                true
            }
            Some(Ok(None)) => false,
        }
    }

    /// SIGKILL to the whole process group (wrapper, watcher, gateway and anything it spawned).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
        self.detach();
        // `dir` (TempDir) is dropped after this, removing `$T`.
    }
}

/// One stub + one gateway shared by all tests of a test binary.
#[derive(Debug)]
pub struct SharedGateway {
    stub: StubModel,
    gateway: Gateway,
}

impl SharedGateway {
    /// The stub model behind the gateway; filter its requests by a token unique to your test.
    pub fn stub(&self) -> &StubModel {
        &self.stub
    }

    /// The gateway (read-only: shared gateways are never stopped or restarted by tests).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Shorthand for `gateway().url()`.
    pub fn url(&self) -> String {
        self.gateway.url()
    }

    /// Shorthand for `gateway().token()`.
    pub fn token(&self) -> &str {
        self.gateway.token()
    }
}

/// The test binary's shared stub + gateway, started on first use (≈ 10–25 s), or `None` after
/// printing the skip message when the install is missing. Its model accepts images
/// ([`GatewayOptions::image_input`]) so attachment tests can use it too.
///
/// Give each test its own session key, idempotency keys and a unique token in its texts. The gateway
/// is never dropped; it stops when the test process exits (see the module docs).
///
/// # Panics
/// As [`install::require_or_skip`], and when the gateway fails to start; a start failure is
/// remembered, so later callers fail at once with the same message.
pub fn shared() -> Option<&'static SharedGateway> {
    static SHARED: OnceLock<Result<SharedGateway, String>> = OnceLock::new();
    let install = install::require_or_skip()?;
    let shared = SHARED.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let stub = StubModel::start();
            let options = GatewayOptions { image_input: true, ..GatewayOptions::default() };
            let gateway = Gateway::start_with(&install, &stub, options);
            SharedGateway { stub, gateway }
        })
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match shared {
        Ok(shared) => Some(shared),
        Err(why) => panic!("the shared gateway failed to start: {why}"),
    }
}

/// Runs `fut` to completion on a fresh current-thread runtime on a scoped thread, so blocking APIs
/// work both in sync tests and inside any tokio runtime (where `block_on` would panic).
fn block_on_own_runtime<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                rt.block_on(fut)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn located_or_panic() -> Install {
    install::locate().unwrap_or_else(|| {
        panic!("no usable Node 24 + openclaw install (guard the test with require_or_skip): run scripts/install-e2e.sh")
    })
}

/// A port that was free a moment ago (bind to 0, read, release).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// 32 random alphanumeric characters.
fn random_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("OS randomness");
    bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect()
}

/// Recursive JSON object merge: `patch` objects merge into `base`, other values replace.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Gateway>();
        assert_send_sync::<SharedGateway>();
        assert_send_sync::<StubModel>();
    }

    #[test]
    fn merge_patches_nested_objects() {
        let mut base = json!({"a": {"b": 1, "c": [1]}, "d": 2});
        merge(&mut base, &json!({"a": {"c": [2, 3], "e": true}}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [2, 3], "e": true}, "d": 2}));
    }

    #[test]
    fn tokens_are_random_alphanumeric() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    /// Runs one turn through `agent` + `agent.wait` and returns the `agent.wait` payload.
    async fn run_turn(client: &mut RawClient, session: &str, message: &str) -> Value {
        let key = format!("testkit-{}", random_token());
        let params = json!({"message": message, "sessionKey": session, "idempotencyKey": key});
        let accepted = client.request("agent", params).await.expect("agent accepted");
        let run_id = accepted["runId"].as_str().expect("runId").to_owned();
        loop {
            let waited =
                client.request("agent.wait", json!({"runId": run_id, "timeoutMs": 60_000})).await.expect("agent.wait");
            if !matches!(waited["status"].as_str(), Some("timeout" | "pending")) {
                return waited;
            }
        }
    }

    /// The real thing: stub + gateway, handshake, one turn, then a restart on the same port and
    /// state. Skips without the install (fails under `CLAWBRIDGE_REQUIRE_E2E=1`).
    #[tokio::test]
    async fn real_gateway_smoke() {
        let Some(install) = install::require_or_skip() else {
            return;
        };
        let stub = StubModel::start();
        let started = Instant::now();
        // The blocking form on purpose: it must work inside a current-thread runtime.
        let mut gateway = Gateway::start_with(&install, &stub, GatewayOptions::default());
        eprintln!("gateway ready in {:?}", started.elapsed());
        assert!(gateway.is_running());

        let (mut client, hello) = RawClient::connect(&gateway.url(), gateway.token()).await.expect("handshake");
        assert_eq!(hello["protocol"], 4);
        assert_eq!(hello["server"]["version"], install::OPENCLAW_VERSION);

        let text = format!("smoke hello {}", random_token());
        let turn = Instant::now();
        let waited = run_turn(&mut client, "agent:main:testkit:direct:smoke", &text).await;
        eprintln!("first turn in {:?}", turn.elapsed());
        assert_eq!(waited["status"], "ok", "{waited}");
        assert_eq!(waited["terminalReply"]["disposition"], "visible", "{waited}");
        let reply = waited["terminalReply"]["text"].as_str().unwrap_or_default();
        assert!(reply.contains(&format!("STUB-REPLY: you said: \"{text}\"")), "reply: {reply:?}");
        assert_eq!(stub.count_with(&text), 1, "requests: {:?}", stub.requests());
        drop(client);

        let restarted = Instant::now();
        gateway.start_again_async().await;
        eprintln!("restart (stop + ready) in {:?}", restarted.elapsed());
        let (mut client, _) =
            RawClient::connect(&gateway.url(), gateway.token()).await.expect("handshake after restart");
        let text = format!("after restart {}", random_token());
        let waited = run_turn(&mut client, "agent:main:testkit:direct:smoke", &text).await;
        assert_eq!(waited["status"], "ok", "{waited}");
        assert!(stub.count_with(&text) == 1, "requests: {:?}", stub.requests());

        gateway.stop_async().await;
        assert!(!gateway.is_running());
        eprintln!("total {:?}", started.elapsed());
    }
}
