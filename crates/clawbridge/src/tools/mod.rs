//! Native agent tools: clawbridge connects to the OpenClaw gateway as a **node** besides the
//! operator connection, publishes agent-visible tools for what is configured, and answers the
//! agent's calls — so a customer-facing agent can message people without a shell.
//!
//! How it rides on the gateway (OpenClaw 2026.9.6, verified end to end in the tests):
//! - the node (`node-host`/`node`, device key `node-device.key` in the state dir) declares one
//!   command, `mcp.tools.call.v1`, the gateway's node-hosted MCP command; the operator approves
//!   the node once (`openclaw nodes approve <requestId>`, which `clawbridge doctor` prints);
//! - on every (re)connect it publishes its tools with `node.pluginTools.update` as `node-mcp`
//!   tools (`mcp: {server: "clawbridge", tool}`); the gateway drops them when the node
//!   disconnects, so the agent sees them exactly while the bridge is up;
//! - a call arrives as a `node.invoke.request` event and is answered with `node.invoke.result`
//!   carrying an MCP `CallToolResult`: a refusal is a result the model reads, never an error;
//! - `node.skills.update` is sent too, but the gateway shows a node's skills to the agent only
//!   when the node has an approved `system.run` — which this bridge must not have — so the usage
//!   rules travel in the tool descriptions instead.
//!
//! # Layout
//! - [`settings`]: the `[tools]` section.
//! - [`catalog`]: the tools, their descriptions and JSON schemas.
//! - [`calls`]: one call from arguments to outcome (policy, rate limit, durable row, wait).
//! - [`accounts`]: the outbox accounts of the Kakao tools.
//! - this module: [`ToolService`], the node connection's publish and invoke loops, and the
//!   status shown by `/readyz`, `clawbridge status` and `clawbridge doctor`.

pub mod accounts;
pub mod calls;
pub mod catalog;
pub mod settings;

use crate::config::Config;
use crate::util::now_ms;
use calls::{Invocation, PEERS, Tools};
use catalog::{COMMAND, ToolName, ToolSpec};
use clawbridge_core::Lane;
use clawbridge_gateway::frame::NODE_INVOKE_EVENT;
use clawbridge_gateway::{ConnectionState, GatewayClient, GatewayConfig, NodeClaims};
use clawbridge_store::{SharedStore, StatePut};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// Calls handled at once; more wait for a free slot.
const CONCURRENT_CALLS: usize = 8;
/// Timeout of the node's own requests (publishing, results).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The node's device key file in the state dir.
pub fn node_key_path(config: &Config) -> std::path::PathBuf {
    config.bridge.state_dir.join("node-device.key")
}

/// The node connection's settings for `config`.
pub fn node_gateway_config(config: &Config) -> GatewayConfig {
    GatewayConfig::new(config.gateway.url.clone(), config.gateway.token.clone(), node_key_path(config))
        .into_node(NodeClaims { caps: Vec::new(), commands: vec![COMMAND.to_owned()] })
}

/// Remembers that `lane`'s peer talked to the agent (the default recipient policy lets tools
/// reach such peers). Called by the inbox worker for every message that passes the DM policy.
pub async fn remember_peer(store: &SharedStore, lane: &Lane) {
    let now = now_ms();
    let entry = StatePut { namespace: PEERS, key: lane.as_str(), value: "{}", expires_at: None };
    if let Err(e) = store.put_state(&entry, true, now).await {
        tracing::debug!(error = %e, "cannot remember the conversation peer for the tools");
    }
}

/// What the tools look like from outside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolsStatus {
    /// The node's device id.
    pub node_id: String,
    /// The node connection's state, in words.
    pub connection: String,
    /// Whether the node is connected.
    pub connected: bool,
    /// The tools this bridge publishes.
    pub published: Vec<String>,
    /// The tools the gateway accepted on the last publish.
    pub accepted: Vec<String>,
    /// Why fewer are accepted than published, with the fix.
    pub problem: Option<String>,
}

impl ToolsStatus {
    /// The `/readyz` JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "node_id": self.node_id,
            "state": if self.connected { "connected" } else { "disconnected" },
            "connection": self.connection,
            "published": self.published,
            "accepted": self.accepted,
            "problem": self.problem,
        })
    }
}

/// The running tools: the node connection and its status.
#[derive(Clone, Debug)]
pub struct ToolService {
    node: GatewayClient,
    status: watch::Receiver<ToolsStatus>,
}

impl ToolService {
    /// Starts the node and its loops when any tool is published; `None` otherwise.
    ///
    /// # Errors
    /// The node's device key cannot be loaded or created.
    pub fn start(
        tools: Tools,
        catalog: Vec<ToolSpec>,
        operator: GatewayClient,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        if catalog.is_empty() {
            tracing::info!("no agent tool to publish (no tool channel configured, or [tools] turned off)");
            return Ok(None);
        }
        let node = GatewayClient::spawn(node_gateway_config(&tools.config), shutdown.clone())?;
        let published: Vec<String> = catalog.iter().map(|t| t.name.to_string()).collect();
        tracing::info!(tools = %published.join(", "), node = %node.device_id(), "publishing agent tools as an OpenClaw node");
        let (status_tx, status) = watch::channel(ToolsStatus {
            node_id: node.device_id().to_owned(),
            connection: "connecting".to_owned(),
            published,
            ..ToolsStatus::default()
        });
        let status_tx = Arc::new(status_tx);
        tokio::spawn(publish_loop(node.clone(), operator, catalog, status_tx.clone(), shutdown.clone()));
        tokio::spawn(invoke_loop(node.clone(), Arc::new(tools), shutdown));
        Ok(Some(Self { node, status }))
    }

    /// The node connection.
    pub fn node(&self) -> &GatewayClient {
        &self.node
    }

    /// The current status.
    pub fn status(&self) -> ToolsStatus {
        self.status.borrow().clone()
    }

    /// The status channel.
    pub fn watch(&self) -> watch::Receiver<ToolsStatus> {
        self.status.clone()
    }
}

/// Publishes the catalog on every connect (and after the operator approves the node), and keeps
/// the status current.
async fn publish_loop(
    node: GatewayClient,
    operator: GatewayClient,
    catalog: Vec<ToolSpec>,
    status: Arc<watch::Sender<ToolsStatus>>,
    stop: CancellationToken,
) {
    let mut state = node.state();
    let mut events = node.subscribe();
    let node_id = node.device_id().to_owned();
    let tools: Vec<Value> = catalog.iter().map(ToolSpec::descriptor).collect();
    let skills = json!({"skills": [skill(&catalog)]});
    loop {
        let current = state.borrow_and_update().clone();
        let connected = matches!(current, ConnectionState::Connected { .. });
        status.send_modify(|s| {
            s.connected = connected;
            s.connection = current.to_string();
            if !connected {
                s.accepted.clear();
            }
        });
        if connected {
            publish(&node, &operator, &node_id, &tools, &skills, &status).await;
        }
        // Until the state changes, or the operator resolves this node's pairing (approval makes
        // the published tools effective; publishing again refreshes what the status shows).
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                changed = state.changed() => if changed.is_err() { return } else { break },
                event = events.recv() => match event {
                    Ok(e) if e.event == "node.pair.resolved" && e.payload["nodeId"] == node_id.as_str() => {
                        tracing::info!(decision = %e.payload["decision"], "the operator resolved this node's pairing");
                        break;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn publish(
    node: &GatewayClient,
    operator: &GatewayClient,
    node_id: &str,
    tools: &[Value],
    skills: &Value,
    status: &watch::Sender<ToolsStatus>,
) {
    let answer = match node.request("node.pluginTools.update", json!({"tools": tools}), REQUEST_TIMEOUT).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish the agent tools; retrying on the next connect");
            status.send_modify(|s| s.problem = Some(format!("publishing failed: {e}")));
            return;
        }
    };
    let accepted: Vec<String> = answer["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    if let Err(e) = node.request("node.skills.update", skills.clone(), REQUEST_TIMEOUT).await {
        tracing::debug!(error = %e, "node.skills.update failed (the gateway does not show them anyway)");
    }
    let problem = if accepted.len() < tools.len() {
        let described = operator.request("node.describe", json!({"nodeId": node_id}), REQUEST_TIMEOUT).await;
        Some(diagnose(node_id, described.as_ref().ok(), Some(accepted.len())).problem())
    } else {
        None
    };
    match &problem {
        Some(p) => tracing::warn!(accepted = accepted.len(), published = tools.len(), "agent tools not available: {p}"),
        None => tracing::info!(tools = %accepted.join(", "), "agent tools published on the gateway"),
    }
    status.send_modify(|s| {
        s.accepted = accepted;
        s.problem = problem;
    });
}

/// The usage rules as a skill (the gateway keeps node skills from the agent unless the node can
/// run commands; sent for gateways that change that).
fn skill(catalog: &[ToolSpec]) -> Value {
    let mut content = String::from(
        "---\nname: clawbridge-messaging\ndescription: Message customers and the owner on WhatsApp and KakaoTalk \
         with the clawbridge tools.\n---\n\n# Messaging through clawbridge\n\n",
    );
    for tool in catalog {
        content.push_str(&format!("- `{}`: {}\n", tool.name, tool.description));
    }
    json!({"name": "clawbridge-messaging",
           "description": "Message customers and the owner on WhatsApp and KakaoTalk with the clawbridge tools.",
           "content": content})
}

/// Answers every `node.invoke.request`.
async fn invoke_loop(node: GatewayClient, tools: Arc<Tools>, stop: CancellationToken) {
    let mut events = node.subscribe();
    let slots = Arc::new(Semaphore::new(CONCURRENT_CALLS));
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "tool calls were missed (the gateway times them out)");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        if event.event != NODE_INVOKE_EVENT {
            continue;
        }
        let invocation = match Invocation::parse(&event.payload) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "unanswerable node.invoke.request");
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (node, tools) = (node.clone(), tools.clone());
        tokio::spawn(async move {
            let result = tools.call(&invocation).await;
            let answer =
                json!({"id": invocation.id, "nodeId": invocation.node_id, "ok": true, "payload": result.payload()});
            if let Err(e) = node.request("node.invoke.result", answer, REQUEST_TIMEOUT).await {
                tracing::warn!(error = %e, tool = %invocation.tool, "cannot return the tool result to the gateway");
            }
            drop(slot);
        });
    }
}

/// Where the node stands with the gateway, from `node.describe` (as an operator sees it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeDiagnosis {
    /// The gateway has never seen this node (it has not connected yet).
    Unknown {
        /// The node id.
        node_id: String,
    },
    /// The command surface waits for the operator.
    PendingApproval {
        /// The node id.
        node_id: String,
        /// The request to approve, when visible (operator.pairing).
        request_id: Option<String>,
    },
    /// Approved, but the gateway's command policy withholds the tools' command.
    CommandWithheld,
    /// Approved and allowed, but the gateway ignores node-published tools.
    ToolsDisabled,
    /// Approved; `connected` says whether the node is up.
    Ready {
        /// Connected now.
        connected: bool,
        /// The tools the gateway holds for it.
        tools: Vec<String>,
    },
}

impl NodeDiagnosis {
    /// The problem and its fix, in one line (for logs and status).
    pub fn problem(&self) -> String {
        match self {
            Self::Unknown { node_id } => format!(
                "the gateway does not know node {node_id} yet: it appears once clawbridge serve connects; then approve it \
                 (`openclaw nodes pending`, `openclaw nodes approve <requestId>`)"
            ),
            Self::PendingApproval { node_id, request_id } => match request_id {
                Some(id) => format!("waiting for the operator: run `openclaw nodes approve {id}` on the gateway host (node {node_id})"),
                None => format!(
                    "waiting for the operator: run `openclaw nodes pending` on the gateway host, then `openclaw nodes \
                     approve <requestId>` for node {node_id}"
                ),
            },
            Self::CommandWithheld => format!(
                "the gateway withholds {COMMAND} from this node: remove it from gateway.nodes.commands.deny \
                 (`openclaw config get gateway.nodes.commands.deny`); the CLI path (clawbridge whatsapp send …) keeps working"
            ),
            Self::ToolsDisabled => "the gateway ignores node-published tools: gateway.nodes.pluginTools.enabled is false \
                 (`openclaw config set gateway.nodes.pluginTools.enabled true`); the CLI path (clawbridge whatsapp send …) \
                 keeps working"
                .to_owned(),
            Self::Ready { connected: true, .. } => "ready".to_owned(),
            Self::Ready { connected: false, .. } => "approved; not connected (is clawbridge serve running?)".to_owned(),
        }
    }
}

/// Reads a `node.describe` answer (`None`: the gateway does not know the node). `accepted` is
/// how many tools the last publish got accepted, when known.
pub fn diagnose(node_id: &str, describe: Option<&Value>, accepted: Option<usize>) -> NodeDiagnosis {
    let Some(d) = describe else {
        return NodeDiagnosis::Unknown { node_id: node_id.to_owned() };
    };
    let state = d["approvalState"].as_str().unwrap_or_default();
    if state != "approved" {
        return NodeDiagnosis::PendingApproval {
            node_id: node_id.to_owned(),
            request_id: d["pendingRequestId"].as_str().map(str::to_owned),
        };
    }
    let commands: Vec<&str> = d["commands"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !commands.contains(&COMMAND) {
        return NodeDiagnosis::CommandWithheld;
    }
    let connected = d["connected"].as_bool().unwrap_or(false);
    let tools: Vec<String> = d["nodePluginTools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let nothing_accepted = accepted.map_or(connected && tools.is_empty(), |n| n == 0);
    if nothing_accepted {
        return NodeDiagnosis::ToolsDisabled;
    }
    NodeDiagnosis::Ready { connected, tools }
}

/// The published tool names, for the executor.
pub fn published(catalog: &[ToolSpec]) -> std::collections::BTreeSet<ToolName> {
    catalog.iter().map(|t| t.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnosis_reads_node_describe() {
        let id = "abc";
        assert_eq!(diagnose(id, None, None), NodeDiagnosis::Unknown { node_id: id.into() });
        let pending = json!({"approvalState": "pending-approval", "pendingRequestId": "req-1", "commands": []});
        let d = diagnose(id, Some(&pending), None);
        assert!(d.problem().contains("openclaw nodes approve req-1"), "{}", d.problem());
        let hidden = json!({"approvalState": "pending-reapproval", "commands": [COMMAND]});
        assert!(diagnose(id, Some(&hidden), None).problem().contains("openclaw nodes pending"));
        let denied = json!({"approvalState": "approved", "commands": [], "connected": true});
        assert_eq!(diagnose(id, Some(&denied), Some(0)), NodeDiagnosis::CommandWithheld);
        assert!(NodeDiagnosis::CommandWithheld.problem().contains("gateway.nodes.commands.deny"));
        let disabled =
            json!({"approvalState": "approved", "commands": [COMMAND], "connected": true, "nodePluginTools": []});
        assert_eq!(diagnose(id, Some(&disabled), None), NodeDiagnosis::ToolsDisabled);
        assert_eq!(diagnose(id, Some(&disabled), Some(0)), NodeDiagnosis::ToolsDisabled);
        assert!(NodeDiagnosis::ToolsDisabled.problem().contains("gateway.nodes.pluginTools.enabled"));
        let ready = json!({"approvalState": "approved", "commands": [COMMAND], "connected": true,
                           "nodePluginTools": [{"name": "whatsapp_send"}]});
        assert_eq!(
            diagnose(id, Some(&ready), None),
            NodeDiagnosis::Ready { connected: true, tools: vec!["whatsapp_send".into()] }
        );
        let offline = json!({"approvalState": "approved", "commands": [COMMAND], "connected": false});
        assert_eq!(diagnose(id, Some(&offline), None), NodeDiagnosis::Ready { connected: false, tools: vec![] });
    }
}
