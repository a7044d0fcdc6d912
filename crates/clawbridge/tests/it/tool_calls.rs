//! The tool-call executor without a gateway: what `brand_send` stores in the business-message
//! queue (its night hold makes an end-to-end send depend on the time of day), how a repeated
//! invocation is answered, and the refusals that leave the queue empty.

use clawbridge::config::Config;
use clawbridge::tools::calls::{Invocation, Tools};
use clawbridge::tools::catalog::{COMMAND, SERVER, ToolName};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn tools(dir: &std::path::Path, extra: &[(&str, &str)]) -> Tools {
    let file = dir.join("clawbridge.toml");
    std::fs::write(&file, "[bizmsg]\ndealer = \"nhn\"\nsenderKey = \"SENDERKEY\"\nsmsFrom = \"02-1234-5678\"\n")
        .unwrap();
    let mut vars: HashMap<String, String> = [
        ("HOME", dir.display().to_string()),
        ("CLAWBRIDGE_STATE_DIR", dir.display().to_string()),
        ("NHN_BIZMSG_APP_KEY", "app".to_owned()),
        ("NHN_BIZMSG_SECRET_KEY", "secret".to_owned()),
        ("NHN_BIZMSG_BASE_URL", "http://127.0.0.1:9".to_owned()),
        ("CLAWBRIDGE_TOOLS_OWNER", "010-1111-2222".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut config = Config::load_with(Some(&file), &|k| vars.get(k).cloned()).expect("valid config");
    config.tools.wait = std::time::Duration::from_millis(300);
    let config = Arc::new(config);
    let catalog = clawbridge::tools::catalog::catalog(&config);
    assert!(catalog.iter().any(|t| t.name == ToolName::BrandSend), "brand_send is published");
    Tools {
        config,
        store: clawbridge_testkit::memory_store(),
        wakers: Arc::default(),
        registry: Arc::default(),
        published: clawbridge::tools::published(&catalog),
    }
}

fn invocation(tool: &str, arguments: Value, call: &str) -> Invocation {
    let params = json!({"server": SERVER, "tool": tool, "arguments": arguments});
    Invocation::parse(&json!({"id": format!("dispatch-{call}"), "nodeId": "node", "command": COMMAND,
        "paramsJSON": params.to_string(), "idempotencyKey": call, "sessionKey": "agent:main:test:direct:x"}))
    .unwrap()
}

#[tokio::test]
async fn brand_send_stores_one_row_per_invocation_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools(dir.path(), &[]);
    let args = json!({"to": "010-1111-2222", "text": "(광고) 겨울 세일 20%", "buttons": [{"name": "보기", "url": "https://example.com"}]});
    let first = tools.call(&invocation("brand_send", args.clone(), "call-1")).await;
    assert!(!first.is_error, "{first:?}");
    assert!(
        first.text.contains("010-****-2222") && (first.text.contains("queued") || first.text.contains("held")),
        "{first:?}"
    );
    // The gateway delivers the same call again: the first outcome, no second row.
    let again = tools.call(&invocation("brand_send", args, "call-1")).await;
    assert!(again.text.contains("not sent again"), "{again:?}");
    let stats = tools.store.bizmsg_stats().await.unwrap();
    let rows: u64 = stats.states.iter().map(|(_, n)| n).sum();
    assert_eq!(rows, 1, "{stats:?}");
    let row = tools.store.get_bizmsg(1).await.unwrap().unwrap();
    assert_eq!((row.product.as_str(), row.origin.as_str(), row.recipient.as_str()), ("brand", "tool", "01011112222"));

    let stranger = tools.call(&invocation("brand_send", json!({"to": "010-9999-0000", "text": "hi"}), "call-2")).await;
    assert!(stranger.is_error && stranger.text.contains("not a recipient this tool may reach"), "{stranger:?}");
    let both = tools
        .call(&invocation("brand_send", json!({"to": "010-1111-2222", "text": "a", "template": "X"}), "call-3"))
        .await;
    assert!(both.is_error && both.text.contains("give text or template"), "{both:?}");
    let unknown = tools.call(&invocation("exec", json!({"command": "id"}), "call-4")).await;
    assert!(unknown.is_error && unknown.text.contains("not a tool this bridge publishes"), "{unknown:?}");
    let rows: u64 = tools.store.bizmsg_stats().await.unwrap().states.iter().map(|(_, n)| n).sum();
    assert_eq!(rows, 1, "refusals store nothing");
}

#[tokio::test]
async fn recipients_any_and_owner_modes() {
    let dir = tempfile::tempdir().unwrap();
    let any = tools(dir.path(), &[("CLAWBRIDGE_TOOLS_RECIPIENTS", "any")]);
    let open = any.call(&invocation("brand_send", json!({"to": "010-9999-0000", "text": "hi"}), "c1")).await;
    assert!(!open.is_error, "{open:?}");
    let dir = tempfile::tempdir().unwrap();
    let owner = tools(dir.path(), &[("CLAWBRIDGE_TOOLS_RECIPIENTS", "owner")]);
    let refused = owner.call(&invocation("brand_send", json!({"to": "010-9999-0000", "text": "hi"}), "c1")).await;
    assert!(refused.is_error && refused.text.contains("recipients = \"owner\""), "{refused:?}");
}
