//! Client for the OpenClaw gateway WebSocket protocol v4.
//!
//! clawbridge hands every inbound message to an OpenClaw agent through this crate: it
//! connects as an operator backend (`gateway-client`/`backend`) with a shared token and a
//! persisted Ed25519 device identity, keeps the connection alive across gateway restarts, and
//! runs agent turns with `agent` + `agent.wait`. The protocol is described in
//! `reference/openclaw-gateway.md` of the project docs; section numbers in comments refer to it.
//!
//! # Layout
//!
//! * [`frame`]: pure parsing and serialization of frames, `connect` params and hello-ok
//!   (no I/O, unit-tested against captured frames).
//! * [`device`]: the device key file and the v3 connect signature.
//! * [`agent`]: `agent` / `agent.wait` types and their pure conversions.
//! * [`error`]: [`GatewayError`], [`FatalError`] and the classification of gateway errors
//!   into fatal, transient and per-request.
//! * `client`: the connection task — the reconnect state machine published as
//!   [`ConnectionState`] — and the cheap [`GatewayClient`] handle that sends requests to it.
//!
//! # Delivery
//!
//! # Roles
//!
//! The same client also connects as a **node** ([`ClientRole::Node`], `node-host`/`node`, its own
//! device key): a capability host that declares commands, publishes agent-visible tools with
//! `node.pluginTools.update` and answers the `node.invoke.request` events it receives (through
//! [`GatewayClient::subscribe`]) with `node.invoke.result`. A node whose device is not paired yet
//! keeps retrying ([`GatewayConfig::pairing_retry`]) until the operator approves it.
//!
//! [`GatewayClient::run_agent`] is the call a bridge needs: it survives reconnects by
//! re-issuing `agent` with the same idempotency key, which the gateway deduplicates, then
//! waiting on the run again. Events (`agent`, `chat`, `tick`…) are available to anyone through
//! [`GatewayClient::subscribe`].
#![warn(missing_docs, missing_debug_implementations)]

pub mod agent;
mod client;
pub mod device;
pub mod error;
pub mod frame;

pub use agent::{
    AgentAccepted, AgentOutcome, AgentRequest, AgentWaitResult, Attachment, InputProvenance, ProvenanceKind,
};
pub use client::{ConnectionState, GatewayClient, GatewayConfig, GatewayEvent, MAX_FRESH_RUNS, probe};
pub use device::{DeviceIdentity, SignatureFields};
pub use error::{FatalError, GatewayError};
pub use frame::{ClientRole, HelloInfo, NodeClaims};
