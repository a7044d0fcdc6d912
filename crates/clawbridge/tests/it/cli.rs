//! The `clawbridge` binary as a user runs it.

use clawbridge_core::pairing::{CODE_TTL_MS, MAX_PENDING_PER_ACCOUNT};
use clawbridge_store::{PairingOutcome, PairingRequest};
use clawbridge_testkit::fake_gateway::FakeGateway;
use std::path::Path;
use std::process::{Command, Output};

const TOKEN: &str = "cli-token-0123456789";

fn clawbridge(state: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("CLAWBRIDGE_STATE_DIR", state)
        .env("CLAWBRIDGE_LISTEN", "127.0.0.1:1")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn doctor_passes_against_a_gateway_and_prints_its_version() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    let out = tokio::task::spawn_blocking({
        let path = dir.path().to_owned();
        move || clawbridge(&path, &[("OPENCLAW_GATEWAY_URL", &url), ("OPENCLAW_TOKEN", TOKEN)], &["doctor"])
    })
    .await
    .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("OpenClaw fake-gateway (protocol 4)"), "{text}");
    assert!(text.contains("ok    store: sqlite"), "{text}");
    assert!(text.contains("All checks passed."), "{text}");
    // The device key was created private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("device.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_command_read_through_a_pipe_is_plain_text_with_only_its_report() {
    let dir = tempfile::tempdir().unwrap();
    // No RUST_LOG: the defaults, as a user piping `doctor 2>&1 | head` has them. The first run
    // creates the master key and the device identity, which the daemon would log at info.
    let out = Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("CLAWBRIDGE_STATE_DIR", dir.path())
        .env("OPENCLAW_TOKEN", TOKEN)
        .env("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:1")
        .output()
        .unwrap();
    let (text, errors) = (stdout(&out), stderr(&out));
    assert!(text.contains("ok    master key"), "{text}");
    assert!(!text.contains('\u{1b}') && !errors.contains('\u{1b}'), "no colour codes: {text}{errors}");
    assert!(!errors.contains("INFO"), "a command logs only warnings unless asked: {errors}");
}

#[test]
fn doctor_names_the_missing_token_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = clawbridge(dir.path(), &[("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:1")], &["doctor"]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("FAIL  gateway") && text.contains("OPENCLAW_TOKEN"), "{text}");

    // The same checks as one JSON document, for monitoring.
    let out = clawbridge(dir.path(), &[("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:1")], &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let store = checks.iter().find(|c| c["check"] == "store").unwrap();
    assert_eq!(store["ok"], true, "{store}");
    let gateway = checks.iter().find(|c| c["check"] == "gateway").unwrap();
    assert_eq!(gateway["ok"], false);
    assert!(gateway["fix"].as_str().unwrap().contains("OPENCLAW_TOKEN"), "{gateway}");
}

#[test]
fn doctor_reports_an_unreachable_gateway_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = clawbridge(
        dir.path(),
        &[("OPENCLAW_GATEWAY_URL", &format!("ws://{closed}")), ("OPENCLAW_TOKEN", TOKEN)],
        &["doctor"],
    );
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("FAIL  gateway") && text.contains("OPENCLAW_GATEWAY_URL"), "{text}");
}

#[test]
fn invalid_configuration_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = clawbridge(dir.path(), &[("OPENCLAW_GATEWAY_URL", "http://wrong")], &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("OPENCLAW_GATEWAY_URL"), "{}", stderr(&out));

    let out = clawbridge(dir.path(), &[], &["serve"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("OPENCLAW_TOKEN"), "{}", stderr(&out));

    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[gateway]\nurl = 5\n").unwrap();
    let out = clawbridge(dir.path(), &[], &["--config", file.to_str().unwrap(), "doctor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
}

#[test]
fn a_corrupt_database_is_a_clear_error_not_a_silent_reset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clawbridge.db"), b"this is not a database, and it holds someone's data").unwrap();
    let out = clawbridge(dir.path(), &[("OPENCLAW_TOKEN", TOKEN)], &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("clawbridge.db"), "{}", stderr(&out));
    let kept = std::fs::read(dir.path().join("clawbridge.db")).unwrap();
    assert!(kept.starts_with(b"this is not a database"), "the file was left alone");
}

#[tokio::test]
async fn pairing_list_approve_and_revoke_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("clawbridge.db").display());
    let store = clawbridge_store::open(&db).await.unwrap();
    let request = PairingRequest {
        channel: "whatsapp".into(),
        account: "default".into(),
        peer: "15551234567".into(),
        display_name: Some("Kim".into()),
        ttl_ms: CODE_TTL_MS,
        max_pending: MAX_PENDING_PER_ACCOUNT as u32,
    };
    let code = match store.request_pairing(&request, "ABCD2345", clawbridge::util::now_ms()).await.unwrap() {
        PairingOutcome::Issued { code, .. } => code,
        other => panic!("unexpected {other:?}"),
    };
    let path = dir.path().to_owned();
    let run = move |args: &'static [&'static str]| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || clawbridge(&path, &[], args))
    };

    let out = run(&["pairing", "list"]).await.unwrap();
    assert!(stdout(&out).contains(&code) && stdout(&out).contains("Kim"), "{}", stdout(&out));

    let out = run(&["pairing", "approve", "whatsapp", "ZZZZ2345"]).await.unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no pending request"), "{}", stderr(&out));

    let out = run(&["pairing", "approve", "whatsapp", "abcd-2345"]).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(store.is_approved(&"whatsapp".into(), &"default".into(), &"15551234567".into()).await.unwrap());
    assert_eq!(store.queue_stats().await.unwrap().outbox_queued, 1, "the sender is told they were approved");

    let out = run(&["pairing", "revoke", "whatsapp", "+1 555 123 4567"]).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!store.is_approved(&"whatsapp".into(), &"default".into(), &"15551234567".into()).await.unwrap());
}

#[tokio::test]
async fn status_shows_queues_dead_letters_and_that_no_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("clawbridge.db").display());
    let store = clawbridge_store::open(&db).await.unwrap();
    let now = clawbridge::util::now_ms();
    store
        .insert_inbound(&clawbridge_core::InboundMessage::text("test", "default", "15550001111", "m1", "hi"), now)
        .await
        .unwrap();
    let path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || clawbridge(&path, &[], &["status"])).await.unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("inbox:   1 pending"), "{text}");
    assert!(text.contains("daemon:  not running"), "{text}");
    assert!(text.contains("dead letters: none"), "{text}");
    let path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || clawbridge(&path, &[], &["status", "--json"])).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["queues"]["inbox_pending"], 1);
}

#[tokio::test]
async fn serve_becomes_ready_and_stops_cleanly_on_sigterm() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("serve")
        .env("CLAWBRIDGE_STATE_DIR", dir.path())
        .env("CLAWBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPENCLAW_GATEWAY_URL", fake.url())
        .env("OPENCLAW_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = async {
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
                && r.status().is_success()
            {
                return r.json::<serde_json::Value>().await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), ready).await.expect("ready within 30 s");
    assert_eq!(body["gateway"]["state"], "connected");
    assert_eq!(body["gateway"]["server_version"], "fake-gateway");
    assert_eq!(body["store"]["backend"], "sqlite");

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn doctor_checks_the_bizmsg_settings_and_the_dealer_host() {
    let gateway = FakeGateway::start(TOKEN).await;
    let solapi = clawbridge_testkit::fake_solapi::FakeSolapi::start().await;
    let infobip = clawbridge_testkit::fake_infobip::FakeInfobip::start().await;
    let closed = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = gateway.url();
    let run = |vars: Vec<(&'static str, String)>| {
        let (path, url) = (dir.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || {
            let mut env: Vec<(&str, &str)> = vec![("OPENCLAW_GATEWAY_URL", &url), ("OPENCLAW_TOKEN", TOKEN)];
            env.extend(vars.iter().map(|(k, v)| (*k, v.as_str())));
            clawbridge(&path, &env, &["doctor"])
        })
    };

    // Settings that cannot be loaded stop the doctor before it starts, naming the setting and the fix.
    let out = run(vec![("BIZMSG_DEALER", "kakao".into()), ("BIZMSG_SENDER_KEY", "S".into())]).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("use nhn, solapi or infobip"), "{}", stderr(&out));
    let out = run(vec![("BIZMSG_DEALER", "nhn".into()), ("BIZMSG_SENDER_KEY", "S".into())]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("NHN_BIZMSG_APP_KEY (bizmsg.nhn.appKey) is not set: copy the app key"),
        "{}",
        stderr(&out)
    );

    // A host that does not answer is named by its variable, for each dealer.
    for (mut vars, var) in [
        (clawbridge_testkit::fake_nhn::FakeNhn::start().await.env(), "NHN_BIZMSG_BASE_URL"),
        (solapi.env(), "SOLAPI_BASE_URL"),
        (infobip.env(), "INFOBIP_BASE_URL"),
    ] {
        vars.retain(|(k, _)| *k != var);
        vars.push((var, closed.clone()));
        let out = run(vars).await.unwrap();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("FAIL  bizmsg dealer:") && text.contains(&format!("fix: check {var}")), "{text}");
    }

    // Good settings pass: each dealer lists the sender's templates.
    let nhn = clawbridge_testkit::fake_nhn::FakeNhn::start().await;
    {
        let mut s = nhn.state();
        s.alimtalk_templates.push(serde_json::json!({"templateCode": "OTP", "templateName": "인증",
            "templateContent": "인증번호는 #{code}입니다.", "status": "TSC03", "buttons": []}));
        s.brand_templates.push(serde_json::json!({"templateCode": "WINTER", "templateName": "겨울",
            "chatBubbleType": "TEXT", "content": "#{name}님, 겨울 세일", "status": "A", "buttons": []}));
    }
    solapi.state().templates.push(clawbridge_testkit::fake_solapi::template(
        "KA01TP1",
        "인증",
        "#{code}",
        "APPROVED",
        &["code"],
    ));
    infobip.state().brand_templates.push(clawbridge_testkit::fake_infobip::brand_template(
        "WINTER",
        "겨울",
        "#{name}님",
        None,
    ));
    for (vars, dealer, templates) in [(nhn.env(), "nhn", 2), (solapi.env(), "solapi", 1), (infobip.env(), "infobip", 1)]
    {
        let out = run(vars).await.unwrap();
        let text = stdout(&out);
        assert!(out.status.success(), "{text}{}", stderr(&out));
        assert!(text.contains(&format!("ok    bizmsg: dealer {dealer} at http://127.0.0.1:")), "{text}");
        assert!(
            text.contains(&format!(
                "ok    bizmsg default: {dealer} credentials and sender key valid; {templates} template(s) registered"
            )),
            "{text}"
        );
    }
    assert_eq!(nhn.state().requests.len(), 0, "the doctor sends nothing");
    assert!(solapi.state().signature_errors.is_empty() && solapi.state().wire_errors.is_empty());

    // Credentials the dealer refuses fail, with the variables to check.
    for (mut vars, var, fix) in [
        (
            nhn.env(),
            "NHN_BIZMSG_SECRET_KEY",
            "fix: check NHN_BIZMSG_APP_KEY, NHN_BIZMSG_SECRET_KEY and BIZMSG_SENDER_KEY",
        ),
        (solapi.env(), "SOLAPI_API_SECRET", "fix: check SOLAPI_API_KEY, SOLAPI_API_SECRET and BIZMSG_SENDER_KEY"),
        (infobip.env(), "INFOBIP_API_KEY", "fix: check INFOBIP_API_KEY and BIZMSG_SENDER_KEY"),
    ] {
        vars.retain(|(k, _)| *k != var);
        vars.push((var, "WRONG".into()));
        let out = run(vars).await.unwrap();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("FAIL  bizmsg default: ") && text.contains(fix), "{var}: {text}");
        assert!(!text.contains("WRONG"), "the secret does not print: {text}");
    }
    // A key that may send but not read the template list is no failure.
    infobip.state().fail_templates = Some(403);
    let out = run(infobip.env()).await.unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok    bizmsg default: configured for infobip; these credentials cannot read"), "{text}");
}

#[tokio::test]
async fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("CLAWBRIDGE_STATE_DIR", dir.path())
        .env("CLAWBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPENCLAW_GATEWAY_URL", fake.url())
        .env("OPENCLAW_TOKEN", TOKEN)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let deadline = std::time::Duration::from_secs(60);
    let n = tokio::time::timeout(deadline, socket.recv(&mut buf)).await.expect("READY=1 arrives").unwrap();
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "READY=1\n");
    // Ready means listening; `clawbridge health` (the container health check) says so.
    let listen = format!("127.0.0.1:{port}");
    let health = |args: &'static [&'static str]| {
        let (dir, listen) = (dir.path().to_owned(), listen.clone());
        tokio::task::spawn_blocking(move || clawbridge(&dir, &[("CLAWBRIDGE_LISTEN", &listen)], args))
    };
    let out = health(&["health"]).await.unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = health(&["health", "--ready"]).await.unwrap();
    assert!(out.status.success(), "connected to the fake gateway: {}{}", stdout(&out), stderr(&out));
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let n = tokio::time::timeout(deadline, socket.recv(&mut buf)).await.expect("STOPPING=1 arrives").unwrap();
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "STOPPING=1\n");
    let status = tokio::time::timeout(deadline, child.wait()).await.expect("the daemon exits").unwrap();
    assert!(status.success(), "{status}");
    let out = health(&["health"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is `clawbridge serve` running"), "{}", stderr(&out));
}

#[test]
fn completions_and_the_man_page_cover_the_channels_commands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = clawbridge(dir.path(), &[], &["completions", shell]);
        assert!(out.status.success(), "{}", stderr(&out));
        let script = stdout(&out);
        // The channels' deferred subcommands are expanded: whatsapp's own `send` is in.
        assert!(script.contains("whatsapp") && script.contains("alimtalk"), "{shell}: {script}");
        assert!(script.contains("template"), "{shell}: whatsapp send --template");
    }
    let out = clawbridge(dir.path(), &[], &["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.starts_with(".ie") && page.contains(".TH clawbridge 1"), "{page}");
    assert!(page.contains("CLAWBRIDGE_CONFIG") && page.contains("whatsapp"), "{page}");
    let pages = dir.path().join("man1");
    let out = clawbridge(dir.path(), &[], &["man", "--out-dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["clawbridge.1", "clawbridge-whatsapp.1", "clawbridge-whatsapp-send.1", "clawbridge-alimtalk-send.1"] {
        assert!(pages.join(page).is_file(), "{page} in {:?}", std::fs::read_dir(&pages).unwrap().collect::<Vec<_>>());
    }
    let bad = clawbridge(dir.path(), &[], &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn config_check_validates_a_file_without_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[gateway]\nurl = \"ws://127.0.0.1:1\"\n\n[bridge]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let out = clawbridge(dir.path(), &[], &["--config", good.to_str().unwrap(), "config", "check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("good.toml + environment") && text.contains("ws://127.0.0.1:1"), "{text}");
    assert!(text.contains("OPENCLAW_TOKEN"), "the missing token is pointed out: {text}");
    assert!(!dir.path().join("clawbridge.db").exists(), "no store was opened");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[pipeline]\nconcurrency = \"many\"\n").unwrap();
    let out = clawbridge(dir.path(), &[], &["--config", bad.to_str().unwrap(), "config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("concurrency"), "the setting is named: {}", stderr(&out));
}

#[test]
fn init_writes_a_private_config_once_that_config_check_accepts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawbridge.toml");
    let path = file.to_str().unwrap();
    let out = clawbridge(dir.path(), &[], &["init", "--out", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains("OPENCLAW_TOKEN"));
    let again = clawbridge(dir.path(), &[], &["init", "--out", path]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    std::fs::write(&file, "edited").unwrap();
    assert!(clawbridge(dir.path(), &[], &["init", "--out", path, "--force"]).status.success());
    let check = clawbridge(dir.path(), &[], &["--config", path, "config", "check"]);
    assert!(check.status.success(), "{}{}", stdout(&check), stderr(&check));
}
