//! WhatsApp through Kapso, end to end: the testkit's fake Kapso API (the JSON shapes of
//! reference/kapso-whatsapp.md §3–§6), the REAL OpenClaw gateway with the stub model for the
//! agent, and the real binaries (`clawbridge serve`, `clawbridge whatsapp send`,
//! `kapso-whatsapp-cli`, `kapso-whatsapp-bridge`) as child processes where the test needs them.

use crate::support::eventually;
use axum::routing::get;
use clawbridge::config::Config;
use clawbridge::daemon::{self, DaemonHandle};
use clawbridge_testkit::fake_kapso::{API_KEY, Answer, FakeKapso, PNID, message_received};
use clawbridge_whatsapp::webhook::sign;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// First turns in a fresh gateway workspace take ~12 s on a loaded 2-core machine; be generous.
const TURN: Duration = Duration::from_secs(180);
pub(crate) const SECRET: &str = "wh_sec_e2e_0123456789";

fn unique(label: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("{label}-{:08x}", u32::from_le_bytes(bytes))
}

/// A phone number no other test uses (digits only).
fn unique_number() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    format!("1555{:07}", u32::from_le_bytes(bytes) % 10_000_000)
}

/// Waits until a send containing `needle` reached the fake Kapso.
async fn wait_send(fake: &FakeKapso, what: &str, needle: &str) {
    eventually(TURN, what, || {
        let n = fake.sends_containing(needle).len();
        async move { n >= 1 }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Webhook deliveries
// ---------------------------------------------------------------------------------------------

/// A Kapso v2 non-batched `whatsapp.message.received` record (no top-level `type`, no
/// `message.from`: the sender is `conversation.phone_number`).
pub(crate) fn kapso_text_record(wamid: &str, number: &str, text: &str) -> String {
    message_received(wamid, &format!("+{number}"), "E2E Tester", text).to_string()
}

pub(crate) async fn post_webhook(base: &str, body: &str, idempotency_key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/webhook"))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", "whatsapp.message.received")
        .header("X-Webhook-Payload-Version", "v2")
        .header("X-Idempotency-Key", idempotency_key)
        .header("X-Webhook-Signature", sign(SECRET.as_bytes(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("the webhook answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Daemons
// ---------------------------------------------------------------------------------------------

/// The environment of a WhatsApp bridge in domain mode against the fake Kapso.
pub(crate) fn whatsapp_env(
    fake: &FakeKapso,
    state: &std::path::Path,
    gateway_url: &str,
    token: &str,
) -> Vec<(String, String)> {
    [
        ("HOME", state.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", state.display().to_string()),
        ("OPENCLAW_GATEWAY_URL", gateway_url.to_owned()),
        ("OPENCLAW_TOKEN", token.to_owned()),
        ("CLAWBRIDGE_DRAIN_TIMEOUT_SECS", "5".to_owned()),
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_PHONE_NUMBER_ID", PNID.to_owned()),
        ("KAPSO_BASE_URL", fake.url()),
        ("KAPSO_MODE", "domain".to_owned()),
        ("KAPSO_WEBHOOK_SECRET", SECRET.to_owned()),
        ("KAPSO_DM_POLICY", "open".to_owned()),
        ("KAPSO_ALLOW_FROM", "*".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn config_from(env: &[(String, String)], listen: &str) -> Config {
    let mut vars: HashMap<String, String> = env.iter().cloned().collect();
    vars.insert("CLAWBRIDGE_LISTEN".to_owned(), listen.to_owned());
    Config::load_with(None, &|k| vars.get(k).cloned()).expect("test config is valid")
}

/// The daemon in this process, with the channels `serve` would enable.
async fn start_in_process(config: Config) -> DaemonHandle {
    let probe = clawbridge_channel::plugin::ConnectorContext { bridge: clawbridge_testkit::memory_bridge().bridge };
    let connectors = clawbridge::channels::enabled(&config, &probe).expect("WhatsApp is enabled");
    assert_eq!(connectors.len(), 1);
    daemon::start(config, daemon::Channels::Configured).await.expect("daemon starts")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `clawbridge serve` (or a compatibility binary) as a child process.
pub(crate) fn spawn_daemon(binary: &str, env: &[(String, String)], port: u16, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(binary)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .env("CLAWBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon starts")
}

pub(crate) async fn wait_ready(port: u16) {
    let ready = async {
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(TURN, ready).await.expect("the daemon becomes ready");
}

// ---------------------------------------------------------------------------------------------
// End to end with the real gateway
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_signed_kapso_webhook_is_answered_on_whatsapp_with_the_model_reply() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = whatsapp_env(&fake, dir.path(), &shared.url(), shared.token());
    let daemon = start_in_process(config_from(&env, "127.0.0.1:0")).await;
    let base = format!("http://{}", daemon.addr);

    let (number, wamid, marker) = (unique_number(), format!("wamid.{}", unique("in")), unique("hello-wa"));
    let (status, answer) =
        post_webhook(&base, &kapso_text_record(&wamid, &number, &format!("please echo {marker}")), &unique("idem"))
            .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");

    let stub = shared.stub();
    wait_send(&fake, "the reply was sent to Kapso", &marker).await;
    let sends = fake.sends_containing(&marker);
    assert_eq!(sends.len(), 1, "{sends:?}");
    let reply = &sends[0];
    assert_eq!(reply["to"], number.as_str(), "sent to the sender's number (digits)");
    assert_eq!(reply["type"], "text");
    assert_eq!(reply["messaging_product"], "whatsapp");
    let text = reply["text"]["body"].as_str().unwrap();
    assert!(text.contains("STUB-REPLY") && text.contains(&marker), "the stub model's text: {text}");
    assert_eq!(reply["context"]["message_id"], wamid.as_str(), "sent as a reply to the user's message");
    assert_eq!(stub.count_with(&marker), 1);
    // The sender reached the agent as identity in the system prompt, not as user text.
    assert!(!stub.system_prompts_containing(&number).is_empty(), "sender number in extraSystemPrompt");
    assert!(fake.read_receipts_for(&wamid) >= 1, "marked read (typing indicator) while the agent worked");
    assert!(fake.requests().iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));
    // Every platform call is timed per endpoint, and no number or id becomes a label (a path
    // that matches no route is not counted at all).
    let stray = reqwest::get(format!("{base}/probe/{number}")).await.unwrap();
    assert_eq!(stray.status(), 404);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .contains(r#"clawbridge_platform_request_seconds_bucket{platform="whatsapp",request="send",outcome="ok""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"clawbridge_http_served_seconds_bucket{route="/webhook",method="POST",status="2xx""#),
        "{metrics}"
    );
    assert!(!metrics.contains(&number) && !metrics.contains(&wamid), "{metrics}");
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_delivery_starts_one_agent_run_and_sends_one_reply() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = whatsapp_env(&fake, dir.path(), &shared.url(), shared.token());
    let daemon = start_in_process(config_from(&env, "127.0.0.1:0")).await;
    let base = format!("http://{}", daemon.addr);

    let number = unique_number();
    let (wamid, marker) = (format!("wamid.{}", unique("dup")), unique("dup"));
    let body = kapso_text_record(&wamid, &number, &format!("SLOW:1500 {marker}"));
    let key = unique("idem");
    let (first, answer) = post_webhook(&base, &body, &key).await;
    assert_eq!((first, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    // Kapso's retry of the same delivery (same idempotency key), while the agent works …
    let (again, _) = post_webhook(&base, &body, &key).await;
    assert_eq!(again, 200, "a duplicate is still acknowledged");
    // … and the same message under a new idempotency key (poll fallback, a re-sent webhook).
    let (third, answer) = post_webhook(&base, &body, &unique("idem")).await;
    assert_eq!(third, 200);
    assert_eq!(answer["accepted"].as_u64().unwrap_or(0), 0, "{answer}");

    wait_send(&fake, "the reply", &marker).await;
    // A later message of the same sender is answered after any (wrong) second run of the
    // first one would have been: one lane per peer keeps order.
    let later = unique("later");
    let (status, _) =
        post_webhook(&base, &kapso_text_record(&format!("wamid.{}", unique("l")), &number, &later), &unique("idem"))
            .await;
    assert_eq!(status, 200);
    wait_send(&fake, "the later reply", &later).await;
    assert_eq!(fake.sends_containing(&marker).len(), 1, "one reply");
    assert_eq!(shared.stub().count_with(&marker), 1, "one agent run");
    daemon.shutdown().await;
}

#[tokio::test]
async fn kill_9_after_the_200_and_a_restart_still_give_exactly_one_reply() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let fake = FakeKapso::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = whatsapp_env(&fake, dir.path(), &shared.url(), shared.token());
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_clawbridge");
    let mut first = spawn_daemon(bin, &env, port, &["serve"]);
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");

    let number = unique_number();
    let (wamid, marker) = (format!("wamid.{}", unique("k9")), unique("kill9"));
    let (status, answer) =
        post_webhook(&base, &kapso_text_record(&wamid, &number, &format!("SLOW:4000 {marker}")), &unique("idem")).await;
    assert_eq!(status, 200, "{answer}");
    let stub = shared.stub();
    eventually(TURN, "the agent run started", || {
        let n = stub.count_with(&marker);
        async move { n == 1 }
    })
    .await;
    // SIGKILL in the middle of the run: no drain, no goodbye.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(fake.sends_containing(&marker).is_empty(), "nothing was sent before the kill");

    let mut second = spawn_daemon(bin, &env, port, &["serve"]);
    wait_send(&fake, "the reply after the restart", &marker).await;
    // A later message of the same sender goes through the same ordered lane after it.
    let later = unique("after-restart");
    let (status, _) =
        post_webhook(&base, &kapso_text_record(&format!("wamid.{}", unique("l")), &number, &later), &unique("idem"))
            .await;
    assert_eq!(status, 200);
    wait_send(&fake, "the later reply", &later).await;
    let sends = fake.sends_containing(&marker);
    assert_eq!(sends.len(), 1, "exactly one reply: {sends:?}");
    assert_eq!(sends[0]["to"], number.as_str());
    assert_eq!(stub.count_with(&marker), 1, "the restart resumed the run (same idempotency key), no second run");

    let pid = second.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(TURN, second.wait()).await.expect("exits on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// `serve` in the public modes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn serve_refuses_a_public_mode_without_a_webhook_secret_unless_overridden() {
    let fake = FakeKapso::start().await;
    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start("cli-token-0123456789").await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = whatsapp_env(&fake, dir.path(), &gateway.url(), "cli-token-0123456789");
    env.retain(|(k, _)| k != "KAPSO_WEBHOOK_SECRET");

    for (binary, args) in
        [(env!("CARGO_BIN_EXE_clawbridge"), &["serve"][..]), (env!("CARGO_BIN_EXE_kapso-whatsapp-bridge"), &[][..])]
    {
        let out = tokio::time::timeout(TURN, spawn_daemon(binary, &env, free_port(), args).wait_with_output())
            .await
            .expect("exits at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{binary} must refuse");
        assert!(stderr.contains("KAPSO_WEBHOOK_SECRET") && stderr.contains("KAPSO_MODE=domain"), "{binary}: {stderr}");
    }

    // The explicit override starts it.
    let port = free_port();
    let mut child = spawn_daemon(env!("CARGO_BIN_EXE_clawbridge"), &env, port, &["serve", "--insecure-no-signature"]);
    wait_ready(port).await;
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.wait().await.unwrap().success());
}

/// A fake `tailscale` CLI for `serve` in tailscale mode (see the whatsapp crate's tests).
fn fake_tailscale(dir: &std::path::Path) -> std::path::PathBuf {
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{dir}/tailscale-calls.log'
case "$1 $2" in
  "status --json") echo '{{"BackendState":"Running","Self":{{"DNSName":"bridge.tail1234.ts.net."}}}}' ;;
  "funnel status") echo null ;;
  funnel*)
    echo $$ > '{dir}/funnel.pid'
    echo "Available on the internet:"
    while :; do sleep 1; done ;;
  *) exit 2 ;;
esac
"#,
        dir = dir.display()
    );
    let path = dir.join("tailscale");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn serve_in_tailscale_mode_prints_the_funnel_url_and_stops_the_funnel_on_shutdown() {
    use tokio::io::AsyncBufReadExt;
    let fake = FakeKapso::start().await;
    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start("cli-token-0123456789").await;
    let dir = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let mut env = whatsapp_env(&fake, dir.path(), &gateway.url(), "cli-token-0123456789");
    env.push(("KAPSO_MODE".into(), "tailscale".into()));
    // The fake is found as `tailscale` on the child's PATH (this process's PATH is left alone).
    fake_tailscale(tools.path());
    let path = format!("{}:{}", tools.path().display(), std::env::var("PATH").unwrap_or_default());
    env.push(("PATH".into(), path));
    let port = free_port();
    let mut child = spawn_daemon(env!("CARGO_BIN_EXE_clawbridge"), &env, port, &["serve"]);
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(TURN, stdout.next_line()).await.expect("prints the URL").unwrap().unwrap();
    assert_eq!(line, "register this webhook URL in Kapso: https://bridge.tail1234.ts.net/webhook");
    let calls = std::fs::read_to_string(tools.path().join("tailscale-calls.log")).unwrap();
    assert!(
        calls.contains(&format!("funnel --https=443 --set-path=/webhook http://127.0.0.1:{port}/webhook")),
        "{calls}"
    );
    let funnel_pid: u32 = std::fs::read_to_string(tools.path().join("funnel.pid")).unwrap().trim().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{funnel_pid}")).exists());
    // `clawbridge status` tells the operator which URL to register, later on.
    let status = {
        let (state, listen) = (dir.path().to_owned(), format!("127.0.0.1:{port}"));
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_clawbridge"))
                .arg("status")
                .env_clear()
                .env("HOME", &state)
                .env("CLAWBRIDGE_STATE_DIR", &state)
                .env("CLAWBRIDGE_LISTEN", listen)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("webhook: https://bridge.tail1234.ts.net/webhook (Tailscale Funnel; register it in Kapso)"),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(TURN, child.wait_with_output()).await.expect("exits").unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let gone = || {
        std::fs::read_to_string(format!("/proc/{funnel_pid}/stat"))
            .map_or(true, |stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    };
    eventually(TURN, "the funnel child is gone", || {
        let done = gone();
        async move { done }
    })
    .await;
    assert!(!dir.path().join("tailscale-funnel.url").exists(), "the published URL is forgotten on shutdown");
}

// ---------------------------------------------------------------------------------------------
// The send commands
// ---------------------------------------------------------------------------------------------

fn run_binary(binary: &str, fake: &FakeKapso, home: &std::path::Path, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CLAWBRIDGE_STATE_DIR", home)
        .env("KAPSO_API_KEY", API_KEY)
        .env("KAPSO_PHONE_NUMBER_ID", PNID)
        .env("KAPSO_BASE_URL", fake.url())
        .env("RUST_LOG", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

async fn run_async(binary: &'static str, fake: &FakeKapso, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let (extra, args): (Vec<(String, String)>, Vec<String>) = (
        extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    let fake_ref = fake.clone();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_binary(binary, &fake_ref, home.path(), &extra, &args);
        drop(home);
        out
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CLAWBRIDGE: &str = env!("CARGO_BIN_EXE_clawbridge");
const KAPSO_CLI: &str = env!("CARGO_BIN_EXE_kapso-whatsapp-cli");

#[tokio::test]
async fn whatsapp_send_text_reply_template_and_reaction() {
    let fake = FakeKapso::start().await;
    let out =
        run_async(CLAWBRIDGE, &fake, &[], &["whatsapp", "send", "--to", "+1 555 000 1111", "--text", "hello"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "sent (id: wamid.sent1)\n");
    let send = fake.sends().pop().unwrap();
    assert_eq!(send["to"], "15550001111");
    assert_eq!(send["text"]["body"], "hello");
    assert!(send.get("context").is_none());

    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[],
        &["whatsapp", "send", "--to", "+15550001111", "--text", "re", "--reply-to", "wamid.ORIG"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.sends().pop().unwrap()["context"]["message_id"], "wamid.ORIG");

    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[],
        &[
            "whatsapp",
            "send",
            "--to",
            "+15550001111",
            "--template",
            "order_update",
            "--lang",
            "en_US",
            "--param",
            "customer_name=Kim",
            "--param",
            "order_id=A-7",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let send = fake.sends().pop().unwrap();
    assert_eq!(send["type"], "template");
    assert_eq!(send["template"]["name"], "order_update");
    assert_eq!(send["template"]["language"]["code"], "en_US");
    assert_eq!(
        send["template"]["components"][0]["parameters"],
        json!([
            {"type": "text", "parameter_name": "customer_name", "text": "Kim"},
            {"type": "text", "parameter_name": "order_id", "text": "A-7"}
        ])
    );

    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[],
        &["whatsapp", "send", "--to", "+15550001111", "--reaction", "👍", "--reply-to", "wamid.ORIG"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let send = fake.sends().pop().unwrap();
    assert_eq!(send["type"], "reaction");
    assert_eq!(send["reaction"], json!({"message_id": "wamid.ORIG", "emoji": "👍"}));
    assert!(send.get("context").is_none(), "a reaction is not a quoted reply");
}

#[tokio::test]
async fn whatsapp_send_media_by_link_and_by_upload() {
    let fake = FakeKapso::start().await;
    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[],
        &[
            "whatsapp",
            "send",
            "--to",
            "+15550002222",
            "--document",
            "https://files.example/q3-report.pdf",
            "--caption",
            "Q3",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let send = fake.sends().pop().unwrap();
    assert_eq!(
        send["document"],
        json!({"link": "https://files.example/q3-report.pdf", "caption": "Q3", "filename": "q3-report.pdf"})
    );

    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("dot.png");
    std::fs::write(&photo, b"\x89PNG\r\n\x1a\nfake-png-bytes").unwrap();
    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[],
        &["whatsapp", "send", "--to", "+15550002222", "--image", photo.to_str().unwrap(), "--caption", "a dot"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let upload = fake.requests().into_iter().find(|r| r.path.ends_with("/media")).expect("uploaded first");
    let form = upload.text();
    assert!(form.contains("name=\"messaging_product\"") && form.contains("whatsapp"), "{form}");
    assert!(form.contains("name=\"type\"") && form.contains("image/png"), "{form}");
    assert!(form.contains("filename=\"dot.png\"") && form.contains("fake-png-bytes"), "{form}");
    let send = fake.sends().pop().unwrap();
    assert_eq!(send["image"], json!({"id": "media-uploaded-1", "caption": "a dot"}));

    let out =
        run_async(CLAWBRIDGE, &fake, &[], &["whatsapp", "send", "--to", "+1555", "--image", "/nonexistent/x.png"])
            .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/x.png"), "{}", stderr(&out));
}

#[tokio::test]
async fn whatsapp_send_exits_non_zero_with_the_apis_reason() {
    let fake = FakeKapso::start().await;
    fake.script_sends([Answer::error(
        400,
        json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                         "error_data": {"details": "More than 24 hours have passed since the recipient last replied"}}}),
    )]);
    let out = run_async(CLAWBRIDGE, &fake, &[], &["whatsapp", "send", "--to", "+15550003333", "--text", "late"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("131047") && err.contains("24 hours") && err.contains("template"), "{err}");

    // A Kapso 409 "in flight" is retried and then succeeds.
    fake.script_sends([Answer::error(
        409,
        json!({"error": "Another message in-flight for this conversation. Retry shortly."}),
    )
    .retry_after(1)]);
    let out = run_async(CLAWBRIDGE, &fake, &[], &["whatsapp", "send", "--to", "+15550003333", "--text", "again"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.sends_containing("again").len(), 2, "the 409 and the retry");

    // A wrong key: the reason names the setting.
    let out = run_async(
        CLAWBRIDGE,
        &fake,
        &[("KAPSO_API_KEY", "wrong")],
        &["whatsapp", "send", "--to", "+1555", "--text", "x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("KAPSO_API_KEY"), "{}", stderr(&out));
}

#[tokio::test]
async fn kapso_whatsapp_cli_behaves_like_the_go_cli() {
    let fake = FakeKapso::start().await;
    let out = run_async(KAPSO_CLI, &fake, &[], &["send", "--to", "+15550004444", "--text", "from the go cli"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("sent (id: wamid.sent") && stdout(&out).ends_with(")\n"), "{}", stdout(&out));
    assert_eq!(fake.sends().pop().unwrap()["text"]["body"], "from the go cli");

    // Positional form: send +NUMBER "text".
    let out = run_async(KAPSO_CLI, &fake, &[], &["send", "+15550004444", "positional text"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let send = fake.sends().pop().unwrap();
    assert_eq!((send["to"].as_str(), send["text"]["body"].as_str()), (Some("15550004444"), Some("positional text")));

    // The richer options work through the old name too.
    let out = run_async(
        KAPSO_CLI,
        &fake,
        &[],
        &["send", "--to", "+15550004444", "--reaction", "❤️", "--reply-to", "wamid.Z"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.sends().pop().unwrap()["type"], "reaction");

    let out = run_async(KAPSO_CLI, &fake, &[], &["send", "--to", "+15550004444"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "usage: kapso-whatsapp-cli send --to +NUMBER --text \"message\"\n");

    let out =
        run_async(KAPSO_CLI, &fake, &[("KAPSO_API_KEY", ""), ("KAPSO_PHONE_NUMBER_ID", "")], &["send", "+1555", "x"])
            .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID must be set\n");

    // The Go bridge's config file is read when the variables are not set.
    let home = tempfile::tempdir().unwrap();
    let go_config = home.path().join("go-config.toml");
    std::fs::write(&go_config, format!("[kapso]\napi_key = \"{API_KEY}\"\nphone_number_id = \"{PNID}\"\n")).unwrap();
    let out = run_async(
        KAPSO_CLI,
        &fake,
        &[("KAPSO_API_KEY", ""), ("KAPSO_PHONE_NUMBER_ID", ""), ("KAPSO_CONFIG", go_config.to_str().unwrap())],
        &["send", "--to", "+15550004444", "--text", "configured by file"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.sends().pop().unwrap()["text"]["body"], "configured by file");
}

#[tokio::test]
async fn kapso_whatsapp_cli_status_and_preflight() {
    let fake = FakeKapso::start().await;
    let health = axum::Router::new().route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, health).await.unwrap() });
    let out = run_async(KAPSO_CLI, &fake, &[("KAPSO_WEBHOOK_ADDR", &addr.to_string())], &["status"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "webhook server: ok\n");
    let closed = free_port().to_string();
    let out = run_async(KAPSO_CLI, &fake, &[("KAPSO_WEBHOOK_ADDR", &format!(":{closed}"))], &["status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("webhook server unreachable:"), "{}", stderr(&out));

    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start("cli-token-0123456789").await;
    let url = gateway.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_TOKEN", "cli-token-0123456789")];
    let out = run_async(KAPSO_CLI, &fake, &env, &["preflight"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.starts_with("kapso-whatsapp preflight\n------------------------\n"), "{text}");
    assert!(text.contains("[OK]   KAPSO_API_KEY is set"), "{text}");
    assert!(text.contains("[OK]   OpenClaw gateway is reachable at") && text.contains("protocol 4"), "{text}");
    assert!(text.contains("[OK]   Kapso credentials are valid (list messages returned 200)"), "{text}");
    assert!(text.ends_with("Preflight passed: no blocking issues, 0 warning(s).\n"), "{text}");
    let listed =
        fake.requests().into_iter().find(|r| r.method == "GET").expect("the credentials check listed messages");
    assert_eq!(listed.api_key.as_deref(), Some(API_KEY));

    // A wrong key, domain mode without a secret and no gateway token: each a [FAIL], exit 1.
    let out =
        run_async(KAPSO_CLI, &fake, &[("KAPSO_API_KEY", "wrong"), ("KAPSO_MODE", "domain")], &["preflight"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[FAIL] Kapso API check failed") && text.contains("KAPSO_API_KEY"), "{text}");
    assert!(text.contains("[FAIL] KAPSO_MODE=domain") && text.contains("KAPSO_WEBHOOK_SECRET"), "{text}");
    assert!(text.contains("[FAIL] OPENCLAW_TOKEN is missing"), "{text}");
    assert!(text.contains("Preflight failed: 3 issue(s), 0 warning(s)."), "{text}");
}

#[tokio::test]
async fn doctor_checks_the_whatsapp_mode_and_the_kapso_credentials() {
    let fake = FakeKapso::start().await;
    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start("cli-token-0123456789").await;
    let url = gateway.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_TOKEN", "cli-token-0123456789")];
    let out = run_async(CLAWBRIDGE, &fake, &env, &["doctor"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("ok    whatsapp mode: polling every 30 s"), "{text}");
    assert!(
        text.contains(&format!("ok    whatsapp default: Kapso credentials valid for phone number id {PNID}")),
        "{text}"
    );

    let env = [
        ("OPENCLAW_GATEWAY_URL", url.as_str()),
        ("OPENCLAW_TOKEN", "cli-token-0123456789"),
        ("KAPSO_API_KEY", "wrong"),
        ("KAPSO_MODE", "domain"),
    ];
    let out = run_async(CLAWBRIDGE, &fake, &env, &["doctor"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  whatsapp mode: KAPSO_MODE=domain"), "{text}");
    assert!(text.contains("FAIL  whatsapp default: Kapso rejected the API key"), "{text}");
}

#[tokio::test]
async fn serve_in_tailscale_mode_without_the_tailscale_cli_stops_with_the_fix() {
    let fake = FakeKapso::start().await;
    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start("cli-token-0123456789").await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = whatsapp_env(&fake, dir.path(), &gateway.url(), "cli-token-0123456789");
    env.push(("KAPSO_MODE".into(), "tailscale".into()));
    env.push(("KAPSO_TAILSCALE_BIN".into(), dir.path().join("no-tailscale-here").display().to_string()));
    let child = spawn_daemon(env!("CARGO_BIN_EXE_clawbridge"), &env, free_port(), &["serve"]);
    let out = tokio::time::timeout(TURN, child.wait_with_output()).await.expect("exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("KAPSO_MODE=tailscale") && stderr.contains("KAPSO_TAILSCALE_BIN"), "{stderr}");
}
