//! Gateway frames: parsing and serialization only, no I/O.
//!
//! Like mini-redis' `frame.rs`, this module turns text into typed frames and typed values into
//! text, so the handshake and the hello-ok parsing can be unit-tested without a socket. The
//! connection task in [`crate::GatewayClient`] owns the socket and decides what to do with each frame.
//!
//! Wire format (reference §1.2): every WebSocket text message is one JSON object tagged by
//! `type`: `req` (client → server), `res` (answer to a `req`, correlated by `id`) and `event`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

/// The only wire protocol this client speaks (sent as both `minProtocol` and `maxProtocol`).
pub const PROTOCOL_VERSION: u32 = 4;
/// `client.id` of a bridge: the gateway only accepts ids from a closed enum, and
/// `gateway-client` is the one meant for backend integrations (reference §1.4).
pub const CLIENT_ID: &str = "gateway-client";
/// `client.mode` of a bridge (reference §1.4).
pub const CLIENT_MODE: &str = "backend";
/// The connection role; a bridge is an operator client.
pub const ROLE: &str = "operator";
/// The scopes a bridge needs: `agent`/`agent.wait` work with read + write (reference §1.8).
pub const SCOPES: [&str; 2] = ["operator.read", "operator.write"];
/// The event the server speaks first with; it carries the nonce the device signature binds.
pub const CHALLENGE_EVENT: &str = "connect.challenge";
/// `client.id` of a node connection. The enum has no bridge-specific id; `node-host` is the one of
/// headless node hosts, which is what a bridge publishing tools is.
pub const NODE_CLIENT_ID: &str = "node-host";
/// `client.mode` of a node connection (the gateway accepts role `node` only with mode `node`).
pub const NODE_CLIENT_MODE: &str = "node";
/// The role of a node connection: a capability host whose commands the gateway invokes.
pub const NODE_ROLE: &str = "node";
/// The event that carries a command invocation to a node (`node.invoke.request`).
pub const NODE_INVOKE_EVENT: &str = "node.invoke.request";

/// Who a connection speaks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientRole {
    /// An operator backend (`gateway-client`/`backend`, scopes read + write): runs agent turns.
    #[default]
    Operator,
    /// An operator backend that may also read node pairing requests (`operator.pairing`), so it
    /// can name the request an operator must approve (`clawbridge doctor`). On a loopback gateway
    /// the backend trust path grants it; elsewhere the scope may be refused.
    OperatorPairing,
    /// A node (`node-host`/`node`, no scopes) declaring the commands the gateway may invoke on it.
    Node(NodeClaims),
}

/// What a node declares at connect time (claims the gateway checks against its allowlists and
/// the operator's pairing approval).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeClaims {
    /// `caps`: capability categories (none for a bridge).
    pub caps: Vec<String>,
    /// `commands`: the commands the gateway may invoke. Changing this set later needs a new
    /// approval (`openclaw nodes approve`), so keep it stable.
    pub commands: Vec<String>,
}

/// The identity fields of `connect` and of the device signature, as one role implies them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// `client.id`.
    pub client_id: &'static str,
    /// `client.mode`.
    pub client_mode: &'static str,
    /// `role`.
    pub role: &'static str,
    /// `scopes`.
    pub scopes: Vec<String>,
    /// `caps`.
    pub caps: Vec<String>,
    /// `commands` (`None`: not sent).
    pub commands: Option<Vec<String>>,
    /// `client.deviceFamily`; empty: not sent (and empty in the signature).
    pub device_family: String,
}

impl ClientRole {
    /// The identity fields for this role on platform `os` (`std::env::consts::OS`).
    ///
    /// A node also sends the device family that matches its platform: the gateway's command
    /// policy classifies a node as `linux`/`macos`/`windows` only when platform and family agree,
    /// and treats anything else as an unknown platform with almost no commands.
    pub fn identity(&self, os: &str) -> ClientIdentity {
        match self {
            Self::Operator | Self::OperatorPairing => ClientIdentity {
                client_id: CLIENT_ID,
                client_mode: CLIENT_MODE,
                role: ROLE,
                scopes: SCOPES
                    .iter()
                    .copied()
                    .chain(matches!(self, Self::OperatorPairing).then_some("operator.pairing"))
                    .map(str::to_owned)
                    .collect(),
                caps: Vec::new(),
                commands: None,
                device_family: String::new(),
            },
            Self::Node(claims) => ClientIdentity {
                client_id: NODE_CLIENT_ID,
                client_mode: NODE_CLIENT_MODE,
                role: NODE_ROLE,
                scopes: Vec::new(),
                caps: claims.caps.clone(),
                commands: Some(claims.commands.clone()),
                device_family: node_device_family(os).to_owned(),
            },
        }
    }

    /// Whether this is a node connection.
    pub fn is_node(&self) -> bool {
        matches!(self, Self::Node(_))
    }
}

/// The `client.deviceFamily` the gateway's command policy pairs with platform `os`
/// (`linux`↔`linux`, `macos`↔`mac`, `windows`↔`windows`); empty for other systems.
pub fn node_device_family(os: &str) -> &'static str {
    match os {
        "linux" => "linux",
        "macos" => "mac",
        "windows" => "windows",
        _ => "",
    }
}

/// Defaults used when hello-ok omits a policy field (values observed on 2026.9.6).
const DEFAULT_TICK_INTERVAL_MS: u64 = 30_000;
const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;
const DEFAULT_ATTACHMENTS_MAX_BYTES: u64 = 19_464_192;
const DEFAULT_ATTACHMENTS_MAX_IMAGE_BYTES: u64 = 6_291_456;

/// Why a text message could not be turned into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(String);

impl FrameError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// One decoded gateway frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A request (the server never sends these to an operator client today, but parsing them
    /// keeps fake servers in tests simple).
    Request(RequestFrame),
    /// The answer to one of our requests.
    Response(ResponseFrame),
    /// A server push: ticks, shutdown notices, `agent`/`chat` streams…
    Event(EventFrame),
}

/// `{"type":"req","id","method","params"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestFrame {
    /// Correlation id chosen by the sender.
    pub id: String,
    /// RPC method name.
    pub method: String,
    /// Method parameters (closed schemas on the server side).
    #[serde(default)]
    pub params: Value,
}

/// `{"type":"res","id","ok","payload"?,"error"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponseFrame {
    /// The id of the request this answers.
    pub id: String,
    /// Whether the method succeeded.
    pub ok: bool,
    /// The result when `ok`.
    #[serde(default)]
    pub payload: Option<Value>,
    /// The error when not `ok`.
    #[serde(default)]
    pub error: Option<ErrorShape>,
}

/// The error object of a failed response (reference §1.7).
///
/// `code` is coarse (`INVALID_REQUEST`, `UNAVAILABLE`); the specific reason is in
/// `details.code` or `details.reason`. Classification must use those, never `message`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    /// Coarse error code.
    #[serde(default)]
    pub code: String,
    /// Human-readable text (for logs only).
    #[serde(default)]
    pub message: String,
    /// Structured details: `code`, `reason`, `expectedProtocol`, `requestId`…
    #[serde(default)]
    pub details: Option<Value>,
    /// Set by the server when trying again later can succeed.
    #[serde(default)]
    pub retryable: Option<bool>,
    /// How long to wait before trying again, when the server knows.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// The specific reason: `details.code`, else `details.reason`.
    pub fn detail_code(&self) -> Option<&str> {
        self.detail_str("code").or_else(|| self.detail_str("reason"))
    }

    /// A string field of `details`.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }

    /// A non-negative integer field of `details`.
    pub fn detail_u64(&self, key: &str) -> Option<u64> {
        self.details.as_ref()?.get(key).and_then(value_as_u64)
    }

    /// `retryAfterMs` as a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }
}

/// `{"type":"event","event","payload"?,"seq"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventFrame {
    /// Event name; unknown names must be ignored, never rejected.
    pub event: String,
    /// Event body.
    #[serde(default)]
    pub payload: Option<Value>,
    /// Per-connection sequence number.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum RawFrame {
    #[serde(rename = "req")]
    Request(RequestFrame),
    #[serde(rename = "res")]
    Response(ResponseFrame),
    #[serde(rename = "event")]
    Event(EventFrame),
}

/// Parses one WebSocket text message.
///
/// # Errors
/// When the text is not JSON, has no known `type`, or misses a required field.
pub fn parse(text: &str) -> Result<Frame, FrameError> {
    let raw: RawFrame =
        serde_json::from_str(text).map_err(|e| FrameError::new(format!("invalid gateway frame: {e}")))?;
    Ok(match raw {
        RawFrame::Request(r) => Frame::Request(r),
        RawFrame::Response(r) => Frame::Response(r),
        RawFrame::Event(e) => Frame::Event(e),
    })
}

#[derive(Serialize)]
struct OutgoingRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    method: &'a str,
    params: &'a Value,
}

/// Serializes a request frame. `params` is borrowed so large agent payloads are not copied.
///
/// # Errors
/// Only if `params` cannot be serialized (not possible for a `serde_json::Value` in practice).
pub fn encode_request(id: &str, method: &str, params: &Value) -> Result<String, FrameError> {
    serde_json::to_string(&OutgoingRequest { kind: "req", id, method, params })
        .map_err(|e| FrameError::new(format!("cannot serialize {method} request: {e}")))
}

/// Serializes a response frame (used by fake gateways in tests and by nothing else).
pub fn encode_response(id: &str, result: Result<&Value, &Value>) -> String {
    match result {
        Ok(payload) => json!({"type": "res", "id": id, "ok": true, "payload": payload}),
        Err(error) => json!({"type": "res", "id": id, "ok": false, "error": error}),
    }
    .to_string()
}

/// Serializes an event frame (used by fake gateways in tests).
pub fn encode_event(event: &str, payload: &Value, seq: Option<u64>) -> String {
    let mut frame = json!({"type": "event", "event": event, "payload": payload});
    if let (Some(seq), Some(obj)) = (seq, frame.as_object_mut()) {
        obj.insert("seq".to_owned(), Value::from(seq));
    }
    frame.to_string()
}

/// The `connect.challenge` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Must be signed and echoed in `device.nonce`.
    pub nonce: String,
    /// Server time in ms, when sent.
    pub ts: Option<u64>,
}

/// Reads the nonce out of a `connect.challenge` payload.
///
/// # Errors
/// When the payload has no non-empty `nonce` string.
pub fn parse_challenge(payload: Option<&Value>) -> Result<Challenge, FrameError> {
    let payload = payload.ok_or_else(|| FrameError::new("connect.challenge without payload"))?;
    let nonce = payload
        .get("nonce")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FrameError::new("connect.challenge without a nonce"))?;
    Ok(Challenge { nonce: nonce.to_owned(), ts: payload.get("ts").and_then(value_as_u64) })
}

/// The `device` block of `connect`: proof that we hold the key behind `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProof {
    /// hex(sha256(raw public key)).
    pub id: String,
    /// Raw public key, base64url without padding.
    pub public_key: String,
    /// Signature over the v3 payload, base64url without padding.
    pub signature: String,
    /// Milliseconds since the epoch; the server accepts ±120 s.
    pub signed_at: u64,
    /// The challenge nonce.
    pub nonce: String,
}

/// What varies between `connect` requests; everything else is fixed by this client's identity.
#[derive(Clone)]
pub struct ConnectInfo<'a> {
    /// `client.displayName`, shown in the gateway's client lists.
    pub display_name: &'a str,
    /// `client.version`.
    pub version: &'a str,
    /// `client.platform` (`std::env::consts::OS`).
    pub platform: &'a str,
    /// The shared gateway token; `auth` is omitted when there is none.
    pub token: Option<&'a str>,
    /// The signed device block.
    pub device: &'a DeviceProof,
    /// Client id, mode, role, scopes and node claims.
    pub identity: &'a ClientIdentity,
}

impl std::fmt::Debug for ConnectInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectInfo")
            .field("display_name", &self.display_name)
            .field("version", &self.version)
            .field("platform", &self.platform)
            .field("token", &self.token.map(|_| "[REDACTED]"))
            .field("device", &self.device)
            .field("identity", &self.identity)
            .finish()
    }
}

/// Builds `connect` params with exactly the fields of reference §1.3 (the schema is closed:
/// any extra key is rejected), plus `commands` and `client.deviceFamily` for a node.
pub fn connect_params(info: &ConnectInfo<'_>) -> Value {
    let identity = info.identity;
    let mut client = json!({
        "id": identity.client_id,
        "displayName": info.display_name,
        "version": info.version,
        "platform": info.platform,
        "mode": identity.client_mode,
    });
    if let (false, Some(obj)) = (identity.device_family.is_empty(), client.as_object_mut()) {
        obj.insert("deviceFamily".to_owned(), Value::from(identity.device_family.as_str()));
    }
    let mut params = json!({
        "minProtocol": PROTOCOL_VERSION,
        "maxProtocol": PROTOCOL_VERSION,
        "client": client,
        "caps": identity.caps,
        "role": identity.role,
        "scopes": identity.scopes,
        "device": {
            "id": info.device.id,
            "publicKey": info.device.public_key,
            "signature": info.device.signature,
            "signedAt": info.device.signed_at,
            "nonce": info.device.nonce,
        },
    });
    if let Some(obj) = params.as_object_mut() {
        if let Some(token) = info.token {
            obj.insert("auth".to_owned(), json!({ "token": token }));
        }
        if let Some(commands) = &identity.commands {
            obj.insert("commands".to_owned(), json!(commands));
        }
    }
    params
}

/// What this client keeps from `hello-ok` (reference §1.3: deserialize leniently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    /// Negotiated protocol (always 4 for an accepted connection).
    pub protocol: u32,
    /// `server.version`, e.g. `2026.9.6`.
    pub server_version: String,
    /// `server.buildId`.
    pub build_id: Option<String>,
    /// `server.connId`, useful to correlate with gateway logs.
    pub conn_id: Option<String>,
    /// Scopes actually granted (`auth.scopes`); may be fewer than requested.
    pub scopes: Vec<String>,
    /// `features.methods`: probe for a method before calling it.
    pub methods: Vec<String>,
    /// `policy.tickIntervalMs`: the watchdog closes after twice this without a frame.
    pub tick_interval: Duration,
    /// `policy.maxPayload`: larger frames are rejected locally.
    pub max_payload: usize,
    /// `policy.attachments.maxBytes`: per-attachment limit.
    pub attachments_max_bytes: u64,
    /// `policy.attachments.maxImageBytes`: per-image limit.
    pub attachments_max_image_bytes: u64,
    /// `snapshot.sessionDefaults.defaultAgentId`.
    pub default_agent_id: Option<String>,
}

impl HelloInfo {
    /// Whether the gateway advertises `method`.
    pub fn has_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// Parses a `hello-ok` payload. Only `protocol` is required; every other field falls back to a
/// default so a gateway adding or dropping optional fields never breaks the connection.
///
/// # Errors
/// When `protocol` is missing or not a number.
pub fn parse_hello(payload: &Value) -> Result<HelloInfo, FrameError> {
    let protocol = payload
        .get("protocol")
        .and_then(value_as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| FrameError::new("hello-ok without a protocol number"))?;
    let at = |path: &[&str]| -> Option<&Value> { path.iter().try_fold(payload, |v, k| v.get(*k)) };
    let string = |path: &[&str]| at(path).and_then(Value::as_str).map(str::to_owned);
    let strings = |path: &[&str]| -> Vec<String> {
        at(path)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let number = |path: &[&str]| at(path).and_then(value_as_u64);

    let tick_ms = number(&["policy", "tickIntervalMs"]).filter(|t| *t > 0).unwrap_or(DEFAULT_TICK_INTERVAL_MS);
    Ok(HelloInfo {
        protocol,
        server_version: string(&["server", "version"]).unwrap_or_else(|| "unknown".to_owned()),
        build_id: string(&["server", "buildId"]),
        conn_id: string(&["server", "connId"]),
        scopes: strings(&["auth", "scopes"]),
        methods: strings(&["features", "methods"]),
        tick_interval: Duration::from_millis(tick_ms),
        max_payload: number(&["policy", "maxPayload"])
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_PAYLOAD),
        attachments_max_bytes: number(&["policy", "attachments", "maxBytes"]).unwrap_or(DEFAULT_ATTACHMENTS_MAX_BYTES),
        attachments_max_image_bytes: number(&["policy", "attachments", "maxImageBytes"])
            .unwrap_or(DEFAULT_ATTACHMENTS_MAX_IMAGE_BYTES),
        default_agent_id: string(&["snapshot", "sessionDefaults", "defaultAgentId"]),
    })
}

/// A JSON number as `u64`, accepting integral floats (`500.0`) that some JSON encoders emit.
pub(crate) fn value_as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(value_as_u64))
}

/// An empty JSON object, for methods without parameters.
pub fn empty_params() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_frame_kinds() {
        let ev = parse(r#"{"type":"event","event":"tick","payload":{"ts":1},"seq":3}"#).unwrap();
        assert_eq!(ev, Frame::Event(EventFrame { event: "tick".into(), payload: Some(json!({"ts":1})), seq: Some(3) }));
        let res = parse(r#"{"type":"res","id":"cb-1","ok":true,"payload":{"a":1}}"#).unwrap();
        assert!(matches!(res, Frame::Response(ResponseFrame { ok: true, .. })));
        let req = parse(r#"{"type":"req","id":"x","method":"m"}"#).unwrap();
        assert!(matches!(req, Frame::Request(RequestFrame { params: Value::Null, .. })));
        assert!(parse(r#"{"type":"other"}"#).is_err());
        assert!(parse("not json").is_err());
    }

    #[test]
    fn parses_error_shapes_of_reference_1_7() {
        let text = r#"{"type":"res","id":"c1","ok":false,"error":{"code":"UNAVAILABLE","message":"gateway starting; retry shortly","retryable":true,"retryAfterMs":500,"details":{"reason":"startup-sidecars"}}}"#;
        let Frame::Response(res) = parse(text).unwrap() else { panic!("not a response") };
        let err = res.error.unwrap();
        assert_eq!(err.code, "UNAVAILABLE");
        assert_eq!(err.retryable, Some(true));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(err.detail_code(), Some("startup-sidecars"));

        let text = r#"{"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":3,"clientMaxProtocol":3,"expectedProtocol":4,"minimumProbeProtocol":3}}"#;
        let err: ErrorShape = serde_json::from_str(text).unwrap();
        assert_eq!(err.detail_code(), Some("PROTOCOL_MISMATCH"));
        assert_eq!(err.detail_u64("expectedProtocol"), Some(4));
        let err: ErrorShape = serde_json::from_str(r#"{"code":"X","retryAfterMs":250.0}"#).unwrap();
        assert_eq!(err.retry_after_ms, Some(250));
    }

    #[test]
    fn request_encoding_round_trips() {
        let params = json!({"runId": "r", "timeoutMs": 30000});
        let text = encode_request("cb-7", "agent.wait", &params).unwrap();
        let Frame::Request(req) = parse(&text).unwrap() else { panic!("not a request") };
        assert_eq!(req.id, "cb-7");
        assert_eq!(req.method, "agent.wait");
        assert_eq!(req.params, params);
    }

    #[test]
    fn connect_params_have_exactly_the_reference_fields() {
        let device = DeviceProof {
            id: "id".into(),
            public_key: "pk".into(),
            signature: "sig".into(),
            signed_at: 1,
            nonce: "n".into(),
        };
        let identity = ClientRole::Operator.identity("linux");
        let info = ConnectInfo {
            display_name: "clawbridge",
            version: "0.1.0",
            platform: "linux",
            token: Some("t"),
            device: &device,
            identity: &identity,
        };
        let p = connect_params(&info);
        let mut keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["auth", "caps", "client", "device", "maxProtocol", "minProtocol", "role", "scopes"]);
        assert_eq!(p["auth"], json!({"token": "t"}));
        assert_eq!(p["client"]["id"], "gateway-client");
        assert_eq!(p["client"]["mode"], "backend");
        assert_eq!(p["device"]["signedAt"], 1);

        assert_eq!(p["scopes"], json!(["operator.read", "operator.write"]));
        assert!(p["client"].get("deviceFamily").is_none());

        let no_token = ConnectInfo { token: None, ..info };
        assert!(connect_params(&no_token).get("auth").is_none());
        assert!(!format!("{no_token:?}").contains("\"t\""));
    }

    #[test]
    fn node_connect_params_declare_role_commands_and_device_family() {
        let device = DeviceProof {
            id: "id".into(),
            public_key: "pk".into(),
            signature: "sig".into(),
            signed_at: 1,
            nonce: "n".into(),
        };
        let role = ClientRole::Node(NodeClaims { caps: vec![], commands: vec!["mcp.tools.call.v1".into()] });
        let identity = role.identity("linux");
        let info = ConnectInfo {
            display_name: "clawbridge tools",
            version: "0.1.0",
            platform: "linux",
            token: Some("t"),
            device: &device,
            identity: &identity,
        };
        let p = connect_params(&info);
        let mut keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["auth", "caps", "client", "commands", "device", "maxProtocol", "minProtocol", "role", "scopes"]
        );
        assert_eq!(p["role"], "node");
        assert_eq!(p["scopes"], json!([]));
        assert_eq!(p["commands"], json!(["mcp.tools.call.v1"]));
        assert_eq!(p["client"]["id"], "node-host");
        assert_eq!(p["client"]["mode"], "node");
        assert_eq!(p["client"]["deviceFamily"], "linux");
        assert_eq!(node_device_family("macos"), "mac");
        assert_eq!(node_device_family("freebsd"), "");
        assert!(role.is_node() && !ClientRole::Operator.is_node());
    }

    #[test]
    fn hello_ok_is_parsed_leniently() {
        let payload = json!({"type":"hello-ok","protocol":4,
            "server":{"version":"2026.9.6","buildId":"b","connId":"c","extra":1},
            "features":{"methods":["agent","agent.wait"],"events":["tick"]},
            "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
            "auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]},
            "policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000,
                      "attachments":{"maxBytes":19464192,"maxImageBytes":6291456}},
            "unknownTopLevel":{"x":[1,2,3]}});
        let hello = parse_hello(&payload).unwrap();
        assert_eq!(hello.protocol, 4);
        assert_eq!(hello.server_version, "2026.9.6");
        assert_eq!(hello.build_id.as_deref(), Some("b"));
        assert_eq!(hello.conn_id.as_deref(), Some("c"));
        assert_eq!(hello.scopes, ["operator.read", "operator.write"]);
        assert!(hello.has_method("agent.wait"));
        assert_eq!(hello.tick_interval, Duration::from_secs(30));
        assert_eq!(hello.max_payload, 26_214_400);
        assert_eq!(hello.attachments_max_bytes, 19_464_192);
        assert_eq!(hello.attachments_max_image_bytes, 6_291_456);
        assert_eq!(hello.default_agent_id.as_deref(), Some("main"));

        let minimal = parse_hello(&json!({"protocol": 4})).unwrap();
        assert_eq!(minimal.server_version, "unknown");
        assert_eq!(minimal.max_payload, DEFAULT_MAX_PAYLOAD);
        assert!(parse_hello(&json!({"server": {}})).is_err());
    }

    #[test]
    fn challenge_needs_a_nonce() {
        let c = parse_challenge(Some(&json!({"nonce":"abc","ts":5}))).unwrap();
        assert_eq!(c, Challenge { nonce: "abc".into(), ts: Some(5) });
        assert!(parse_challenge(Some(&json!({"nonce":""}))).is_err());
        assert!(parse_challenge(None).is_err());
    }

    #[test]
    fn event_encoding_parses_back() {
        let text = encode_event("shutdown", &json!({"reason":"x"}), Some(2));
        let Frame::Event(ev) = parse(&text).unwrap() else { panic!("not an event") };
        assert_eq!(ev.seq, Some(2));
        let text = encode_response("a", Err(&json!({"code":"X","message":"m"})));
        let Frame::Response(res) = parse(&text).unwrap() else { panic!("not a response") };
        assert_eq!(res.error.unwrap().code, "X");
    }
}
