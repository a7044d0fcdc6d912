//! The Tailscale Funnel supervisor against a fake `tailscale` executable written by the test
//! (a shell script in a temp dir, passed as `TailscaleSettings::binary`, so `PATH` is untouched).

use clawbridge_whatsapp::tailscale::{Funnel, FunnelOptions, FunnelState, TailscaleSettings};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const READY: Duration = Duration::from_secs(30);
const RUNNING: &str = r#"{"BackendState":"Running","Self":{"DNSName":"box.tail1234.ts.net.","HostName":"box"}}"#;

/// A fake `tailscale` CLI: answers `status --json` and `funnel status --json` from files in its
/// directory, logs every call, and runs `funnel …` in the foreground like the real one.
struct FakeTailscale {
    dir: tempfile::TempDir,
}

impl FakeTailscale {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            r#"#!/bin/sh
DIR='{dir}'
echo "$*" >> "$DIR/calls.log"
case "$1 $2" in
  "status --json")
    if [ -f "$DIR/status-error" ]; then cat "$DIR/status-error" >&2; exit 1; fi
    cat "$DIR/status.json"; exit 0 ;;
  "funnel status")
    if [ -f "$DIR/serve.json" ]; then cat "$DIR/serve.json"; else echo null; fi; exit 0 ;;
  funnel*)
    if [ -f "$DIR/funnel-error" ]; then cat "$DIR/funnel-error" >&2; exit 1; fi
    env > "$DIR/funnel-env.log"
    echo $$ > "$DIR/funnel.pid"
    if [ ! -f "$DIR/url-only" ]; then echo "Available on the internet:"; echo ""; fi
    echo "https://box.tail1234.ts.net/webhook"
    echo "|-- proxy $4"
    echo ""
    echo "Press Ctrl+C to exit."
    # Like the real CLI: one process that runs until it is killed.
    while :; do sleep 1; done ;;
esac
echo "unexpected arguments: $*" >&2
exit 2
"#,
            dir = dir.path().display()
        );
        let path = dir.path().join("tailscale");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("status.json"), RUNNING).unwrap();
        Self { dir }
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("tailscale")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.file("calls.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    fn funnel_runs(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| c.starts_with("funnel --")).collect()
    }

    fn funnel_pid(&self) -> u32 {
        std::fs::read_to_string(self.file("funnel.pid")).unwrap().trim().parse().unwrap()
    }

    fn options(&self) -> FunnelOptions {
        let settings = TailscaleSettings { binary: self.binary(), funnel_port: None };
        let mut options =
            FunnelOptions::new(settings, "0.0.0.0:18790".parse().unwrap(), Some(self.file("funnel.state.pid")));
        options.backoff.initial_delay_ms = 20;
        options.backoff.max_delay_ms = 200;
        options
    }
}

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let poll = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(READY, poll).await.unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

#[tokio::test]
async fn the_funnel_comes_up_on_a_free_port_publishes_only_the_webhook_and_stops_on_shutdown() {
    let fake = FakeTailscale::new();
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    let url = funnel.wait_ready(READY).await.unwrap();
    assert_eq!(url, "https://box.tail1234.ts.net/webhook");
    assert_eq!(fake.funnel_runs(), ["funnel --https=443 --set-path=/webhook http://127.0.0.1:18790/webhook"]);
    let calls = fake.calls();
    assert!(
        calls.contains(&"status --json".to_owned()) && calls.contains(&"funnel status --json".to_owned()),
        "{calls:?}"
    );
    let pid = fake.funnel_pid();
    assert!(alive(pid));
    assert_eq!(std::fs::read_to_string(fake.file("funnel.state.pid")).unwrap(), pid.to_string());
    // The CLI gets PATH and HOME, not the bridge's environment (where its secrets live);
    // cargo sets CARGO_PKG_NAME for this test process.
    let env = std::fs::read_to_string(fake.file("funnel-env.log")).unwrap();
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(std::env::var("CARGO_PKG_NAME").is_ok() && !env.contains("CARGO_PKG_NAME"), "{env}");

    let mut state = funnel.state();
    funnel.stop().await;
    assert_eq!(*state.borrow_and_update(), FunnelState::Stopped);
    assert!(!alive(pid), "the funnel child was stopped");
    assert!(!fake.file("funnel.state.pid").exists());
    // Nothing but the foreground run touched the serve configuration.
    assert!(fake.calls().iter().all(|c| !c.contains("off") && !c.contains("reset") && !c.contains("--bg")));
}

#[tokio::test]
async fn an_existing_serve_configuration_is_never_replaced() {
    let fake = FakeTailscale::new();
    // The user serves something tailnet-only on 443 and has a foreground session on 8443.
    fake.write(
        "serve.json",
        r#"{"TCP":{"443":{"HTTPS":true}},
            "Web":{"box.tail1234.ts.net:443":{"Handlers":{"/":{"Proxy":"http://127.0.0.1:3000"}}}},
            "Foreground":{"s1":{"TCP":{"8443":{"HTTPS":true}}}}}"#,
    );
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    let url = funnel.wait_ready(READY).await.unwrap();
    assert_eq!(url, "https://box.tail1234.ts.net:10000/webhook");
    assert_eq!(fake.funnel_runs(), ["funnel --https=10000 --set-path=/webhook http://127.0.0.1:18790/webhook"]);
    funnel.stop().await;

    // An explicitly chosen port that is taken is an error that names the setting.
    let mut options = fake.options();
    options.settings.funnel_port = Some(443);
    let funnel = Funnel::spawn(options, &CancellationToken::new());
    let err = funnel.wait_ready(READY).await.unwrap_err();
    assert!(err.contains("KAPSO_TAILSCALE_FUNNEL_PORT") && err.contains("443"), "{err}");
    assert!(matches!(*funnel.state().borrow(), FunnelState::Failed(_)));
    funnel.stop().await;
}

#[tokio::test]
async fn a_funnel_that_dies_is_started_again() {
    let fake = FakeTailscale::new();
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    funnel.wait_ready(READY).await.unwrap();
    let first = fake.funnel_pid();
    let mut state = funnel.state();
    state.borrow_and_update();

    assert!(std::process::Command::new("kill").args(["-KILL", &first.to_string()]).status().unwrap().success());
    let restarting = tokio::time::timeout(READY, state.wait_for(|s| matches!(s, FunnelState::Restarting { .. })))
        .await
        .expect("the death is noticed")
        .unwrap()
        .clone();
    match restarting {
        FunnelState::Restarting { reason, .. } => assert!(reason.contains("exited"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    funnel.wait_ready(READY).await.unwrap();
    wait_until("a second funnel process", || fake.funnel_pid() != first).await;
    let second = fake.funnel_pid();
    assert!(alive(second));
    assert_eq!(fake.funnel_runs().len(), 2);
    funnel.stop().await;
    assert!(!alive(second));
}

#[tokio::test]
async fn a_node_that_is_not_up_yet_is_waited_for() {
    let fake = FakeTailscale::new();
    fake.write("status.json", r#"{"BackendState":"Starting","Self":{"DNSName":""}}"#);
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    let mut state = funnel.state();
    let reason = tokio::time::timeout(READY, state.wait_for(|s| matches!(s, FunnelState::Restarting { .. })))
        .await
        .expect("retried")
        .unwrap()
        .clone();
    assert!(matches!(&reason, FunnelState::Restarting { reason, .. } if reason.contains("tailscale up")), "{reason:?}");
    assert!(fake.funnel_runs().is_empty());
    fake.write("status.json", RUNNING);
    assert_eq!(funnel.wait_ready(READY).await.unwrap(), "https://box.tail1234.ts.net/webhook");
    funnel.stop().await;
}

#[tokio::test]
async fn permission_problems_and_a_missing_cli_are_fatal_with_the_fix() {
    let fake = FakeTailscale::new();
    fake.write("status-error", "Access denied: serve config denied; not an operator\n");
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    let err = funnel.wait_ready(READY).await.unwrap_err();
    assert!(err.contains("--operator=$USER"), "{err}");
    funnel.stop().await;

    let mut options = fake.options();
    options.settings.binary = fake.file("no-such-tailscale");
    let funnel = Funnel::spawn(options, &CancellationToken::new());
    let err = funnel.wait_ready(READY).await.unwrap_err();
    assert!(err.contains("KAPSO_TAILSCALE_BIN") && err.contains("no-such-tailscale"), "{err}");
    funnel.stop().await;

    // Funnel not allowed for the node: the CLI says so when the funnel starts.
    let fake = FakeTailscale::new();
    fake.write("funnel-error", "Funnel not available; \"funnel\" node attribute not set.\n");
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    let err = funnel.wait_ready(READY).await.unwrap_err();
    assert!(err.contains("Funnel not available") && err.contains("nodeAttrs"), "{err}");
    funnel.stop().await;
}

#[tokio::test]
async fn a_funnel_orphaned_by_a_killed_daemon_is_stopped_on_the_next_start() {
    let fake = FakeTailscale::new();
    // What a previous daemon left behind after `kill -9`: its funnel child and the pid file.
    let mut orphan = std::process::Command::new(fake.binary())
        .args(["funnel", "--https=443", "--set-path=/webhook", "http://127.0.0.1:18790/webhook"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let orphan_pid = orphan.id();
    wait_until("the orphan runs", || fake.file("funnel.pid").exists()).await;
    std::fs::write(fake.file("funnel.state.pid"), orphan_pid.to_string()).unwrap();

    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    funnel.wait_ready(READY).await.unwrap();
    assert!(orphan.try_wait().unwrap().is_some(), "the orphan was stopped");
    assert_ne!(fake.funnel_pid(), orphan_pid);
    funnel.stop().await;

    // A pid file naming some unrelated process is left alone.
    let mut bystander = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(fake.file("funnel.state.pid"), bystander.id().to_string()).unwrap();
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    funnel.wait_ready(READY).await.unwrap();
    assert!(bystander.try_wait().unwrap().is_none(), "an unrelated process was not touched");
    funnel.stop().await;
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[tokio::test]
async fn cancelling_the_parent_token_stops_the_funnel() {
    let fake = FakeTailscale::new();
    let shutdown = CancellationToken::new();
    let funnel = Funnel::spawn(fake.options(), &shutdown);
    funnel.wait_ready(READY).await.unwrap();
    let pid = fake.funnel_pid();
    let mut state = funnel.state();
    shutdown.cancel();
    tokio::time::timeout(READY, state.wait_for(|s| *s == FunnelState::Stopped)).await.expect("stops").unwrap();
    wait_until("the child is gone", || !alive(pid)).await;
    funnel.stop().await;
    assert!(!fake.file("funnel.state.pid").exists());
}

#[tokio::test]
async fn the_printed_url_alone_also_means_up() {
    // Another CLI version might word the banner differently; the URL line is enough.
    let fake = FakeTailscale::new();
    fake.write("url-only", "");
    let funnel = Funnel::spawn(fake.options(), &CancellationToken::new());
    assert_eq!(funnel.wait_ready(READY).await.unwrap(), "https://box.tail1234.ts.net/webhook");
    funnel.stop().await;
}
