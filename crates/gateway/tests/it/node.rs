//! Feasibility of native agent tools against a REAL OpenClaw 2026.9.6 gateway: the client
//! connects as a node (`node-host`/`node`, its own device key), is approved the way an operator
//! approves a node (`openclaw nodes approve <requestId>`, here over the same RPC), publishes a
//! tool with `node.pluginTools.update`, the stub model calls it, and the call arrives as
//! `node.invoke.request` and is answered with `node.invoke.result`.
//!
//! What the gateway does with node-published tools (captured against 2026.9.6, asserted below):
//! - a declared command outside the gateway's node command policy is dropped from the pairing
//!   request; `mcp.tools.call.v1` (the node-hosted MCP command) is allowed on linux/macOS/windows
//!   nodes once the operator approves the node, so tools are published as `node-mcp` tools;
//! - until the command surface is approved, `node.pluginTools.update` accepts the call and answers
//!   with an empty `tools` list;
//! - with the default Tool Search the tool is not among the model's function tools: it is
//!   reached through `tool_call {id, args}` and listed by `tools.effective` under the `mcp` group;
//! - `node.skills.update` is accepted, but a node's skills reach the agent only when the node
//!   has an approved `system.run` (docs/nodes/mcp-and-skills.md) — a bridge without a shell
//!   cannot publish skills that the model sees.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clawbridge_gateway::{AgentRequest, GatewayClient, GatewayConfig, GatewayError, NodeClaims};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CONNECT: Duration = Duration::from_secs(90);
const TURN: Duration = Duration::from_secs(240);
const RPC: Duration = Duration::from_secs(30);

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{tag}{:x}", nanos ^ u128::from(std::process::id()))
}

fn node_config(url: &str, token: &str, dir: &tempfile::TempDir) -> GatewayConfig {
    let mut config = GatewayConfig::new(url, Some(token.into()), dir.path().join("node-device.key"))
        .into_node(NodeClaims { caps: vec![], commands: vec!["mcp.tools.call.v1".into()] });
    config.backoff_max = Duration::from_secs(2);
    config.pairing_retry = Some(Duration::from_secs(1));
    config
}

fn tool(name: &str) -> Value {
    json!({
        "pluginId": "node-mcp",
        "name": name,
        "description": "Feasibility probe of clawbridge: echoes its text back.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string", "maxLength": 100}},
                       "required": ["text"], "additionalProperties": false},
        "command": "mcp.tools.call.v1",
        "mcp": {"server": "clawbridge", "tool": name},
    })
}

#[tokio::test]
async fn real_node_tool_is_published_called_and_answered() {
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let node = GatewayClient::spawn(node_config(&shared.url(), shared.token(), &dir), stop.clone()).unwrap();
    let hello = node.wait_connected(CONNECT).await.expect("the node connects (device paired on loopback)");
    assert!(hello.has_method("node.pluginTools.update") && hello.has_method("node.invoke.result"));
    let node_id = node.device_id().to_owned();

    let name = format!("probe_{}", unique("t"));
    let update = json!({"tools": [tool(&name)]});
    let before = node.request("node.pluginTools.update", update.clone(), RPC).await.unwrap();
    assert_eq!(before["tools"], json!([]), "an unapproved command surface publishes nothing: {before}");

    let request_id = shared.gateway().approve_node(&node_id).await.expect("the node's surface is pending");
    assert!(!request_id.is_empty());
    // The approval may make the gateway drop the node's connection so that it connects again
    // with its approved surface: retry the update until it is answered (or CONNECT runs out).
    let deadline = tokio::time::Instant::now() + CONNECT;
    let after = loop {
        match node.request("node.pluginTools.update", update.clone(), RPC).await {
            Ok(answer) => break answer,
            Err(e @ (GatewayError::Disconnected | GatewayError::Timeout | GatewayError::Unavailable { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                eprintln!("pluginTools.update after the approval: {e}; retrying");
                let _ = node.wait_connected(CONNECT).await;
            }
            Err(e) => panic!("pluginTools.update after the approval: {e}"),
        }
    };
    assert_eq!(after["tools"][0]["name"], name.as_str(), "{after}");
    let described = shared.gateway().rpc("node.describe", json!({"nodeId": node_id})).await.unwrap();
    assert_eq!(described["approvalState"], "approved", "{described}");
    assert_eq!(described["commands"], json!(["mcp.tools.call.v1"]), "{described}");

    let skill = unique("skillmarker");
    let content = format!("---\nname: clawbridge-probe\ndescription: probe {skill}\n---\n\n# Probe\n{skill}\n");
    let skills =
        json!({"skills": [{"name": "clawbridge-probe", "description": format!("probe {skill}"), "content": content}]});
    let published = node.request("node.skills.update", skills, RPC).await.unwrap();
    assert_eq!(published["skills"][0]["name"], "clawbridge-probe", "{published}");

    // Answer invocations the way a node does.
    let mut events = node.subscribe();
    let answering = node.clone();
    let done = CancellationToken::new();
    let finished = done.clone();
    let invocations = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let event = tokio::select! {
                () = finished.cancelled() => break,
                event = events.recv() => match event { Ok(event) => event, Err(_) => break },
            };
            if event.event != "node.invoke.request" {
                continue;
            }
            let p = event.payload.clone();
            let params: Value = serde_json::from_str(p["paramsJSON"].as_str().unwrap_or("null")).unwrap();
            let text = params["arguments"]["text"].as_str().unwrap_or_default().to_owned();
            let result = json!({"id": p["id"], "nodeId": p["nodeId"], "ok": true,
                                "payload": {"content": [{"type": "text", "text": format!("probe echo: {text}")}]}});
            answering.request("node.invoke.result", result, RPC).await.unwrap();
            seen.push(p);
        }
        seen
    });

    let session = format!("agent:main:node-it:direct:{}", unique("s"));
    let marker = unique("m");
    let message = format!(r#"TOOLCALL: {name} {{"text":"{marker}"}}"#);
    let operator = GatewayClient::spawn(
        GatewayConfig::new(shared.url(), Some(shared.token().into()), dir.path().join("device.key")),
        stop.clone(),
    )
    .unwrap();
    let req = AgentRequest::new(message.as_str(), session.as_str(), format!("idem-{marker}"));
    let outcome = operator.run_agent(&req, TURN).await.unwrap();
    let reply = outcome.reply.unwrap_or_default();
    assert!(reply.contains(&format!("probe echo: {marker}")), "the model got the node's answer: {reply}");

    // The session exists now: the gateway's own view of the agent's tools.
    let effective = shared.gateway().rpc("tools.effective", json!({"sessionKey": session})).await.unwrap();
    let mcp: Vec<&str> = effective["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["id"] == "mcp")
        .flat_map(|g| g["tools"].as_array().into_iter().flatten())
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(mcp.contains(&name.as_str()), "tools.effective lists the node tool under mcp: {mcp:?}");

    let requests = shared.stub().requests_with(&marker);
    let first = requests.first().expect("the model was asked");
    assert!(!first.tool_names.contains(&name), "deferred behind Tool Search: {:?}", first.tool_names);
    assert!(first.tool_names.iter().any(|t| t == "tool_call"), "{:?}", first.tool_names);
    assert!(
        shared.stub().system_prompts_containing(&skill).is_empty(),
        "a node without system.run cannot put its skills in front of the model (2026.9.6)"
    );

    done.cancel();
    stop.cancel();
    let seen = invocations.await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["command"], "mcp.tools.call.v1");
    assert_eq!(seen[0]["sessionKey"], session.as_str());
    assert!(seen[0]["idempotencyKey"].as_str().is_some_and(|k| !k.is_empty()), "{}", seen[0]);
}
