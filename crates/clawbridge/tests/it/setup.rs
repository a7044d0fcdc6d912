//! `clawbridge setup whatsapp` (and `clawbridge whatsapp setup`) as an operator runs it, against
//! the testkit's fake Kapso Platform API: the webhook registered once, its secret stored
//! encrypted (never in the file, never printed), the config file changed in place, a second run
//! changing nothing, `--dry-run` making only reads, and a daemon started afterwards checking
//! webhook signatures with the stored secret.

use clawbridge_store::{MasterKey, SecretBox};
use clawbridge_testkit::fake_kapso::{API_KEY, FakeKapso, PNID, message_received, phone_number};
use clawbridge_whatsapp::cli::setup::EVENTS;
use clawbridge_whatsapp::webhook::sign;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PUBLIC: &str = "https://bridge.example.test";
const TOKEN: &str = "cli-token-0123456789";
/// The operator's file before setup: comments, a setting of their own, WhatsApp not complete.
const OPERATORS_FILE: &str = "# the shop's bridge — keep these notes\n\
[gateway]\n\
agent_id = \"main\"   # the support agent\n\
\n\
[whatsapp]\n\
# no typing bubbles, customers found them odd\n\
typing_indicator = false\n";

struct Install {
    dir: tempfile::TempDir,
    fake: FakeKapso,
}

impl Install {
    async fn new() -> Self {
        let install = Self { dir: tempfile::tempdir().unwrap(), fake: FakeKapso::start().await };
        std::fs::write(install.file(), OPERATORS_FILE).unwrap();
        install
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("clawbridge.toml")
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary with the operator's environment (no phone number, no secret set) and `extra`.
    async fn run(&self, extra: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.arg("--config")
            .arg(self.file())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.state())
            .env("CLAWBRIDGE_STATE_DIR", self.state())
            .env("KAPSO_API_KEY", API_KEY)
            .env("KAPSO_BASE_URL", self.fake.url())
            .env("CLAWBRIDGE_PUBLIC_URL", PUBLIC)
            .env("RUST_LOG", "debug");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs")).await.unwrap()
    }

    fn changes(&self) -> Vec<clawbridge_testkit::fake_kapso::Recorded> {
        self.fake.platform_requests().into_iter().filter(|r| r.method != "GET").collect()
    }

    async fn stored_secret(&self) -> Option<String> {
        let store = clawbridge_store::open(&format!("sqlite://{}", self.state().join("clawbridge.db").display()))
            .await
            .unwrap();
        let key = MasterKey::from_env_or_file(None, self.state()).unwrap();
        let secret = SecretBox::new(key, store.clone()).get("whatsapp/webhook_secret").await.unwrap()?;
        let blob = store.get_secret_blob("whatsapp/webhook_secret").await.unwrap().expect("stored");
        let plain = secret.expose_secret().to_owned();
        assert!(!String::from_utf8_lossy(&blob).contains(&plain), "stored encrypted, not in the clear");
        Some(plain)
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn setup_registers_the_webhook_stores_the_secret_and_a_second_run_changes_nothing() {
    let install = Install::new().await;
    let out = install.run(&[], &["setup", "whatsapp"]).await;
    let (text, errors) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}{errors}");

    // Kapso: the number listed, its webhooks listed, one created with the right URL and events.
    let requests = install.fake.platform_requests();
    assert!(requests.iter().all(|r| r.api_key.as_deref() == Some(API_KEY)), "X-API-Key on every request");
    let calls: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        calls,
        [
            "GET /platform/v1/whatsapp/phone_numbers".to_owned(),
            format!("GET /platform/v1/whatsapp/phone_numbers/{PNID}/webhooks"),
            format!("POST /platform/v1/whatsapp/phone_numbers/{PNID}/webhooks"),
        ]
    );
    let created = requests[2].json();
    let hook = &created["whatsapp_webhook"];
    assert_eq!(hook["url"], format!("{PUBLIC}/webhook"));
    assert_eq!(hook["events"], serde_json::json!(EVENTS));
    assert_eq!((hook["active"].clone(), hook["payload_version"].clone()), (Value::Bool(true), "v2".into()));
    let secret = hook["secret_key"].as_str().unwrap().to_owned();
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()), "32 random bytes, hex");

    // The secret: stored encrypted, and nowhere else.
    assert_eq!(install.stored_secret().await.as_deref(), Some(secret.as_str()));
    let file = std::fs::read_to_string(install.file()).unwrap();
    for place in [&file, &text, &errors] {
        assert!(!place.contains(&secret), "the secret is not in the file, the output or the logs");
    }
    assert!(
        text.contains("webhook created (wh-1)") && text.contains("secret: new, stored in the sqlite store (encrypted)"),
        "{text}"
    );

    // The file: the operator's comments and settings kept, the number and the mode set.
    for kept in [
        "# the shop's bridge — keep these notes",
        "# the support agent",
        "# no typing bubbles",
        "typing_indicator = false",
    ] {
        assert!(file.contains(kept), "{kept:?} kept:\n{file}");
    }
    let parsed: toml::Table = toml::from_str(&file).unwrap();
    assert_eq!(parsed["whatsapp"]["phone_number_id"].as_str(), Some(PNID));
    assert_eq!(parsed["whatsapp"]["mode"].as_str(), Some("domain"));
    assert!(parsed["whatsapp"].get("webhook_secret").is_none());

    // Twice: everything is found in place (through the other spelling of the same command).
    let out = install.run(&[], &["whatsapp", "setup"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert_eq!(install.changes().len(), 1, "no POST or PATCH the second time: {:?}", install.changes());
    assert!(text.contains("webhook wh-1 for https://bridge.example.test/webhook is up to date"), "{text}");
    assert!(text.contains("secret: kept") && text.contains("is up to date"), "{text}");
    assert_eq!(std::fs::read_to_string(install.file()).unwrap(), file, "the file is not touched");
    assert_eq!(install.stored_secret().await.as_deref(), Some(secret.as_str()));
    assert_eq!(install.fake.webhooks()[0]["secret_key"], secret.as_str());

    // A new secret only when asked.
    let out = install.run(&[], &["setup", "whatsapp", "--rotate-secret"]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let patches = install.changes();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1].method, "PATCH");
    assert_eq!(patches[1].path, format!("/platform/v1/whatsapp/phone_numbers/{PNID}/webhooks/wh-1"));
    let rotated = patches[1].json()["whatsapp_webhook"]["secret_key"].as_str().unwrap().to_owned();
    assert_ne!(rotated, secret, "--rotate-secret gives a new one");
    assert_eq!(install.stored_secret().await.as_deref(), Some(rotated.as_str()));
    assert!(!stdout(&out).contains(&rotated) && !stderr(&out).contains(&rotated));
}

#[tokio::test]
async fn setup_completes_a_webhook_made_in_the_dashboard_instead_of_adding_one() {
    let install = Install::new().await;
    let events = serde_json::json!(["whatsapp.message.received", "whatsapp.conversation.ended"]);
    let url = format!("{PUBLIC}/webhook");
    let id = install.fake.add_webhook(
        PNID,
        serde_json::json!({"url": url, "events": events, "active": false, "secret_key": "typed-by-hand"}),
    );
    let out = install.run(&[], &["setup", "whatsapp", "--send-test"]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let changes = install.changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        (changes[1].method.as_str(), changes[1].path.clone()),
        ("POST", format!("/platform/v1/whatsapp/webhooks/{id}/test")),
        "--send-test asks for a test delivery"
    );
    assert_eq!(
        (changes[0].method.as_str(), changes[0].path.clone()),
        ("PATCH", format!("/platform/v1/whatsapp/phone_numbers/{PNID}/webhooks/{id}"))
    );
    let patch = &changes[0].json()["whatsapp_webhook"];
    assert!(patch.get("url").is_none(), "only what differs: {patch}");
    assert_eq!(patch["active"], true);
    let sent: Vec<&str> = patch["events"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(sent.contains(&"whatsapp.conversation.ended") && EVENTS.iter().all(|e| sent.contains(e)), "{sent:?}");
    // The hand-typed secret is unknown to the bridge (Kapso does not list it): a new one is set and stored.
    let secret = patch["secret_key"].as_str().unwrap();
    assert_ne!(secret, "typed-by-hand");
    assert_eq!(install.stored_secret().await.as_deref(), Some(secret));
    assert_eq!(install.fake.webhooks().len(), 1, "no second webhook for the same URL");
}

#[tokio::test]
async fn setup_dry_run_only_reads_and_prints_what_it_would_change() {
    let install = Install::new().await;
    let out = install.run(&[], &["setup", "whatsapp", "--dry-run"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        install.fake.platform_requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        install.fake.platform_requests()
    );
    assert!(!install.fake.platform_requests().is_empty());
    assert_eq!(std::fs::read_to_string(install.file()).unwrap(), OPERATORS_FILE, "the file is unchanged");
    assert!(install.fake.webhooks().is_empty());
    assert!(
        !install.state().join("master.key").exists() && !install.state().join("clawbridge.db").exists(),
        "nothing created"
    );
    // Every request it would make, the secret left out, and the file change.
    assert!(
        text.contains(&format!("would POST {}/platform/v1/whatsapp/phone_numbers/{PNID}/webhooks", install.fake.url())),
        "{text}"
    );
    assert!(
        text.contains("\"url\":\"https://bridge.example.test/webhook\"")
            && text.contains("<secret: 32 random bytes, hex>"),
        "{text}"
    );
    assert!(text.contains("+ phone_number_id = \"123456789012345\"") && text.contains("+ mode = \"domain\""), "{text}");
    assert!(text.contains("dry run: nothing was changed"), "{text}");

    // After a real run, a dry run finds nothing to change.
    assert!(install.run(&[], &["setup", "whatsapp"]).await.status.success());
    let before = install.fake.platform_requests().len();
    let out = install.run(&[], &["setup", "whatsapp", "--dry-run"]).await;
    let text = stdout(&out);
    assert!(out.status.success() && !text.contains("would "), "{text}");
    assert!(install.fake.platform_requests()[before..].iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn setup_with_several_numbers_and_no_terminal_lists_them_and_takes_phone_number_id() {
    let install = Install::new().await;
    install.fake.set_phone_numbers([
        phone_number("111111111111111", "+1 555-010-1111", "Sales"),
        phone_number(PNID, "+1 555-010-0000", "Support"),
    ]);
    install.fake.platform_bare_lists(true);
    let out = install.run(&[], &["setup", "whatsapp"]).await;
    let errors = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(errors.contains("--phone-number-id"), "{errors}");
    assert!(
        errors.contains("111111111111111 (+1 555-010-1111, Sales)")
            && errors.contains(&format!("{PNID} (+1 555-010-0000, Support)")),
        "{errors}"
    );
    assert!(install.changes().is_empty());
    assert_eq!(std::fs::read_to_string(install.file()).unwrap(), OPERATORS_FILE);

    // An id that is not the project's is refused with the list.
    let out = install.run(&[], &["setup", "whatsapp", "--phone-number-id", "222222222222222"]).await;
    assert!(!out.status.success() && stderr(&out).contains("not a number of this Kapso project"), "{}", stderr(&out));

    let out = install.run(&[], &["setup", "whatsapp", "--phone-number-id", PNID]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let lookup =
        &install.fake.platform_requests().into_iter().rev().find(|r| r.path.ends_with("/phone_numbers")).unwrap();
    assert_eq!(lookup.query.get("phone_number_id").map(String::as_str), Some(PNID));
    let hooks = install.fake.webhooks();
    assert_eq!((hooks.len(), hooks[0]["phone_number_id"].as_str()), (1, Some(PNID)));
    // Now configured, a second run needs no flag and changes nothing.
    let out = install.run(&[], &["setup", "whatsapp"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(install.changes().len(), 1);
}

#[tokio::test]
async fn a_daemon_after_setup_accepts_webhooks_signed_with_the_stored_secret_only() {
    let install = Install::new().await;
    assert!(install.run(&[], &["setup", "whatsapp"]).await.status.success());
    let secret = install.stored_secret().await.unwrap();
    let gateway = clawbridge_testkit::fake_gateway::FakeGateway::start(TOKEN).await;

    // `doctor` sees the stored secret where KAPSO_WEBHOOK_SECRET is not set.
    let url = gateway.url();
    let out = install.run(&[("OPENCLAW_GATEWAY_URL", &url), ("OPENCLAW_TOKEN", TOKEN)], &["doctor"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("ok    whatsapp mode: domain") && text.contains("webhook secret stored by setup"), "{text}");

    // The daemon as `serve` starts it: the file written by setup, no KAPSO_WEBHOOK_SECRET.
    let state = install.state().display().to_string();
    let vars: HashMap<&str, String> = HashMap::from([
        ("HOME", state.clone()),
        ("CLAWBRIDGE_STATE_DIR", state),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL", url),
        ("OPENCLAW_TOKEN", TOKEN.to_owned()),
        ("KAPSO_API_KEY", API_KEY.to_owned()),
        ("KAPSO_BASE_URL", install.fake.url()),
    ]);
    let config = clawbridge::config::Config::load_with(Some(&install.file()), &|k| vars.get(k).cloned()).unwrap();
    assert!(config.whatsapp().unwrap().webhook_secret.is_none(), "no secret configured");
    let daemon = clawbridge::daemon::start(config, clawbridge::daemon::Channels::Configured)
        .await
        .expect("serve starts in domain mode");
    let base = format!("http://{}", daemon.addr);
    let body = message_received("wamid.SETUP1", "+15550001234", "Setup Tester", "hello").to_string();
    let post = |signature: String| {
        let (base, body) = (base.clone(), body.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/webhook"))
                .header("Content-Type", "application/json")
                .header("X-Webhook-Event", "whatsapp.message.received")
                .header("X-Webhook-Payload-Version", "v2")
                .header("X-Idempotency-Key", "idem-setup-1")
                .header("X-Webhook-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(sign(b"not-the-secret", body.as_bytes())).await, 401, "a wrong signature is refused");
    assert_eq!(post(sign(secret.as_bytes(), body.as_bytes())).await, 200, "signed with the stored secret");
    daemon.shutdown().await;
}
