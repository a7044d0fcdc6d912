//! Adding a channel: the testkit's recording channel registered with one line, configured by its
//! own `[test]` table, served by the real daemon, checked by its plugin's doctor hook.

use clawbridge::channels;
use clawbridge::config::Config;
use clawbridge::daemon;
use clawbridge_channel::plugin::Check;
use clawbridge_core::InboundMessage;
use clawbridge_testkit::channel::RecordingPlugin;
use clawbridge_testkit::fake_gateway::FakeGateway;
use std::collections::HashMap;
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";

fn env(dir: &std::path::Path, gateway: &str) -> HashMap<String, String> {
    HashMap::from([
        ("HOME".to_owned(), dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR".to_owned(), dir.display().to_string()),
        ("CLAWBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("OPENCLAW_GATEWAY_URL".to_owned(), gateway.to_owned()),
        ("OPENCLAW_TOKEN".to_owned(), TOKEN.to_owned()),
    ])
}

#[tokio::test]
async fn a_channel_registered_with_one_line_is_configured_served_and_checked() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawbridge.toml");
    std::fs::write(&file, "[pipeline]\nconcurrency = 4\n\n[test]\nmax_text_chars = 2000\ndm_policy = \"open\"\n")
        .unwrap();
    let vars = env(dir.path(), &fake.url());

    let (plugin, recorder) = RecordingPlugin::leak();
    let plugins = channels::plugins().with(plugin); // the one line
    let config = Config::load_with_plugins(Some(&file), &|k| vars.get(k).cloned(), &plugins).unwrap();
    assert_eq!(config.channels.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ["test"]);

    let host = clawbridge::commands::host::host_info(&std::sync::Arc::new(config.clone()), "test");
    let checks = config.channels[0].1.doctor(&host).await;
    assert!(matches!(&checks[..], [Check { what, outcome: Ok(_) }] if what == "test channel"), "{checks:?}");

    let handle = daemon::start(config, daemon::Channels::Configured).await.unwrap();
    let msg = InboundMessage::text("test", "default", "15550001111", "plugin-1", "hello plugin");
    recorder.bridge().accept(msg).await.unwrap();
    let sent = recorder.wait_sent(1, Duration::from_secs(20)).await;
    assert_eq!(sent[0].text.as_deref(), Some("FAKE-REPLY: hello plugin"));
    handle.shutdown().await;
}

#[test]
fn a_section_no_channel_claims_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawbridge.toml");
    std::fs::write(&file, "[whatapp]\nmode = \"polling\"\n").unwrap();
    let vars = env(dir.path(), "ws://127.0.0.1:9");
    let err = Config::load_with(Some(&file), &|k| vars.get(k).cloned()).unwrap_err().to_string();
    assert!(err.contains("unknown section [whatapp]") && err.contains("whatsapp, kakao"), "{err}");

    // Without its plugin, the recording channel's table is just as unknown.
    std::fs::write(&file, "[test]\n").unwrap();
    let err = Config::load_with(Some(&file), &|k| vars.get(k).cloned()).unwrap_err().to_string();
    assert!(err.contains("unknown section [test]"), "{err}");
}
