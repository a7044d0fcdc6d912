//! Agent turn types: `agent` params, its acceptance, and `agent.wait` results (reference §2.1).
//!
//! Pure conversions only; [`crate::GatewayClient`] sends them. The `agent` params schema is
//! closed, so [`AgentRequest::to_params`] emits only the documented fields and omits empty
//! optional ones.

use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::frame::HelloInfo;

/// One agent turn to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentRequest {
    /// The user's text (the gateway requires at least one character).
    pub message: String,
    /// Conversation key, e.g. `agent:main:kakao:direct:<peer>`; a new key creates the session.
    pub session_key: String,
    /// Derived from the platform message id so a replay never starts a second run; the
    /// gateway also uses it as the run id.
    pub idempotency_key: String,
    /// Target agent; the gateway's default (`main`) when `None`.
    pub agent_id: Option<String>,
    /// Sender identity, channel and formatting rules: lands in the system prompt, where the
    /// user cannot forge it (never put these in `message`).
    pub extra_system_prompt: Option<String>,
    /// Where the input came from.
    pub input_provenance: Option<InputProvenance>,
    /// Inline media.
    pub attachments: Vec<Attachment>,
    /// Free label (≤ 512 chars) shown in gateway tooling.
    pub label: Option<String>,
    /// Server-side run timeout in ms (`timeout`).
    pub timeout_ms: Option<u64>,
}

impl AgentRequest {
    /// A request with the three required fields and nothing else.
    pub fn new(message: impl Into<String>, session_key: impl Into<String>, idempotency_key: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            session_key: session_key.into(),
            idempotency_key: idempotency_key.into(),
            ..Self::default()
        }
    }

    /// The `agent` params object.
    pub fn to_params(&self) -> Value {
        let mut p = Map::new();
        p.insert("message".into(), Value::from(self.message.as_str()));
        p.insert("sessionKey".into(), Value::from(self.session_key.as_str()));
        p.insert("idempotencyKey".into(), Value::from(self.idempotency_key.as_str()));
        if let Some(agent_id) = &self.agent_id {
            p.insert("agentId".into(), Value::from(agent_id.as_str()));
        }
        if let Some(prompt) = &self.extra_system_prompt {
            p.insert("extraSystemPrompt".into(), Value::from(prompt.as_str()));
        }
        if let Some(provenance) = &self.input_provenance {
            p.insert("inputProvenance".into(), provenance.to_value());
        }
        if !self.attachments.is_empty() {
            p.insert("attachments".into(), self.attachments.iter().map(Attachment::to_value).collect());
        }
        if let Some(label) = &self.label {
            p.insert("label".into(), Value::from(label.as_str()));
        }
        if let Some(timeout) = self.timeout_ms {
            p.insert("timeout".into(), Value::from(timeout));
        }
        Value::Object(p)
    }
}

/// `inputProvenance.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceKind {
    /// A person on a messaging platform (what a bridge sends).
    ExternalUser,
    /// Another agent session.
    InterSession,
    /// The system itself (schedulers, maintenance).
    InternalSystem,
}

impl ProvenanceKind {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalUser => "external_user",
            Self::InterSession => "inter_session",
            Self::InternalSystem => "internal_system",
        }
    }
}

/// `inputProvenance`: tells the agent the input is not from its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProvenance {
    /// Who produced the input.
    pub kind: ProvenanceKind,
    /// The platform, e.g. `kakao` or `whatsapp`.
    pub source_channel: Option<String>,
}

impl InputProvenance {
    fn to_value(&self) -> Value {
        let mut v = json!({ "kind": self.kind.as_str() });
        if let (Some(channel), Some(obj)) = (&self.source_channel, v.as_object_mut()) {
            obj.insert("sourceChannel".into(), Value::from(channel.as_str()));
        }
        v
    }
}

/// One inline attachment, base64-encoded (reference §2.7).
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// e.g. `image/jpeg`.
    pub mime_type: String,
    /// Original file name, if known.
    pub file_name: Option<String>,
    /// Standard base64 of the raw bytes.
    pub content_base64: String,
    /// Size of the raw bytes.
    pub size_bytes: u64,
}

impl std::fmt::Debug for Attachment {
    // The content can be megabytes of base64: never dump it into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("mime_type", &self.mime_type)
            .field("file_name", &self.file_name)
            .field("content_base64_len", &self.content_base64.len())
            .field("size_bytes", &self.size_bytes)
            .finish()
    }
}

impl Attachment {
    /// Whether the gateway treats it as an image (and applies `maxImageBytes`).
    pub fn is_image(&self) -> bool {
        self.mime_type.trim().to_ascii_lowercase().starts_with("image/")
    }

    /// The decoded size: the declared size, or what the base64 text decodes to if larger, so a
    /// wrong `size_bytes` cannot slip past the limits.
    pub fn effective_size(&self) -> u64 {
        let text = self.content_base64.trim_end_matches('=');
        let decoded = (text.len() as u64).saturating_mul(3) / 4;
        self.size_bytes.max(decoded)
    }

    /// The attachment item: `{"type":"image","mimeType","fileName"?,"content","sizeBytes"}`.
    /// Only images were verified live; other MIME types are sent as `"type":"file"`.
    fn to_value(&self) -> Value {
        let mut v = json!({
            "type": if self.is_image() { "image" } else { "file" },
            "mimeType": self.mime_type,
            "content": self.content_base64,
            "sizeBytes": self.size_bytes,
        });
        if let (Some(name), Some(obj)) = (&self.file_name, v.as_object_mut()) {
            obj.insert("fileName".into(), Value::from(name.as_str()));
        }
        v
    }
}

/// Checks every attachment against the limits of hello-ok before anything is sent.
///
/// # Errors
/// [`GatewayError::AttachmentTooLarge`] for the first attachment over a limit.
pub fn check_attachments(attachments: &[Attachment], hello: &HelloInfo) -> Result<(), GatewayError> {
    for a in attachments {
        let size = a.effective_size();
        let too_large = |limit_bytes: u64, limit: &'static str| GatewayError::AttachmentTooLarge {
            file_name: Some(a.file_name.clone().unwrap_or_else(|| a.mime_type.clone())),
            size_bytes: size,
            limit_bytes,
            limit,
        };
        if a.is_image() && size > hello.attachments_max_image_bytes {
            return Err(too_large(hello.attachments_max_image_bytes, "policy.attachments.maxImageBytes"));
        }
        if size > hello.attachments_max_bytes {
            return Err(too_large(hello.attachments_max_bytes, "policy.attachments.maxBytes"));
        }
    }
    Ok(())
}

/// The `agent` response: the run was accepted (or was already running for this key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAccepted {
    /// The run to wait on (equals the idempotency key on 2026.9.6, but use this one).
    pub run_id: String,
    /// `accepted`, `in_flight` for a duplicate key, or another server status.
    pub status: String,
}

/// Parses the `agent` response payload.
///
/// # Errors
/// [`GatewayError::Protocol`] when it has no `runId`.
pub fn parse_accepted(payload: &Value) -> Result<AgentAccepted, GatewayError> {
    let run_id = payload
        .get("runId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| GatewayError::Protocol(format!("agent response without runId: {}", summarize(payload))))?;
    Ok(AgentAccepted {
        run_id: run_id.to_owned(),
        status: payload.get("status").and_then(Value::as_str).unwrap_or("accepted").to_owned(),
    })
}

/// The result of one `agent.wait` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentWaitResult {
    /// The run ended.
    Terminal(AgentOutcome),
    /// The wait expired or the run is still pending: call again.
    Pending,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOutcome {
    /// The run.
    pub run_id: String,
    /// `ok`, `error`, or another terminal status reported by the gateway.
    pub status: String,
    /// `terminalReply.text` when `terminalReply.disposition == "visible"`; `None` for a silent
    /// run (nothing to send to the user).
    pub reply: Option<String>,
    /// `stopReason`, e.g. `stop`.
    pub stop_reason: Option<String>,
    /// The run's error, when `status` is `error`.
    pub error: Option<String>,
}

impl AgentOutcome {
    /// The gateway's error code, when the run failed with one: run errors are plain strings
    /// that end in `| <CODE>`, e.g. `… changed while starting work. Retry. | SESSION_WORK_START_CHANGED`.
    pub fn error_code(&self) -> Option<&str> {
        self.error.as_deref().and_then(gateway_error_code)
    }
}

/// The code the gateway reports when a run could not start because its session changed
/// meanwhile, e.g. while restart recovery took over a session orphaned by a crash. The
/// gateway asks to retry, but caches the failure for the idempotency key.
pub const SESSION_WORK_START_CHANGED: &str = "SESSION_WORK_START_CHANGED";

/// The `UPPER_SNAKE` code the gateway appends to string errors after ` | `.
pub fn gateway_error_code(text: &str) -> Option<&str> {
    let (_, tail) = text.rsplit_once(" | ")?;
    let code = tail.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).next()?;
    (!code.is_empty() && code.starts_with(|c: char| c.is_ascii_uppercase())).then_some(code)
}

/// Parses an `agent.wait` payload.
///
/// `pending`, and `timeout` without terminal metadata, mean only that the wait expired
/// (reference §2.1); every other status is terminal.
pub fn parse_wait(payload: &Value, run_id: &str) -> AgentWaitResult {
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("pending");
    let has_terminal_metadata =
        ["endedAt", "terminalReply", "terminalReceipt"].iter().any(|k| payload.get(*k).is_some_and(|v| !v.is_null()));
    if status == "pending" || (status == "timeout" && !has_terminal_metadata) {
        return AgentWaitResult::Pending;
    }
    let reply = payload
        .get("terminalReply")
        .filter(|r| r.get("disposition").and_then(Value::as_str) == Some("visible"))
        .and_then(|r| r.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let error = payload.get("error").and_then(|e| match e {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.get("message").and_then(Value::as_str).map_or_else(|| other.to_string(), str::to_owned)),
    });
    AgentWaitResult::Terminal(AgentOutcome {
        run_id: payload.get("runId").and_then(Value::as_str).unwrap_or(run_id).to_owned(),
        status: status.to_owned(),
        reply,
        stop_reason: payload.get("stopReason").and_then(Value::as_str).map(str::to_owned),
        error,
    })
}

fn summarize(v: &Value) -> String {
    let mut text = v.to_string();
    if text.len() > 200 {
        let cut = (0..=200).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hello(max_image: u64, max_bytes: u64) -> HelloInfo {
        HelloInfo {
            protocol: 4,
            server_version: "t".into(),
            build_id: None,
            conn_id: None,
            scopes: vec![],
            methods: vec![],
            tick_interval: Duration::from_secs(30),
            max_payload: 1 << 20,
            attachments_max_bytes: max_bytes,
            attachments_max_image_bytes: max_image,
            default_agent_id: None,
        }
    }

    #[test]
    fn minimal_params_have_only_required_fields() {
        let p = AgentRequest::new("hi", "agent:main:kakao:direct:u1", "k1").to_params();
        assert_eq!(p, json!({"message":"hi","sessionKey":"agent:main:kakao:direct:u1","idempotencyKey":"k1"}));
    }

    #[test]
    fn full_params_use_the_schema_names() {
        let req = AgentRequest {
            agent_id: Some("main".into()),
            extra_system_prompt: Some("sender: Kim".into()),
            input_provenance: Some(InputProvenance {
                kind: ProvenanceKind::ExternalUser,
                source_channel: Some("kakao".into()),
            }),
            attachments: vec![Attachment {
                mime_type: "image/png".into(),
                file_name: Some("a.png".into()),
                content_base64: "AAAA".into(),
                size_bytes: 3,
            }],
            label: Some("l".into()),
            timeout_ms: Some(1000),
            ..AgentRequest::new("hi", "s", "k")
        };
        let p = req.to_params();
        assert_eq!(p["agentId"], "main");
        assert_eq!(p["extraSystemPrompt"], "sender: Kim");
        assert_eq!(p["inputProvenance"], json!({"kind":"external_user","sourceChannel":"kakao"}));
        assert_eq!(
            p["attachments"],
            json!([{"type":"image","mimeType":"image/png","fileName":"a.png","content":"AAAA","sizeBytes":3}])
        );
        assert_eq!(p["label"], "l");
        assert_eq!(p["timeout"], 1000);
        assert_eq!(p.as_object().unwrap().len(), 9);
    }

    #[test]
    fn attachment_limits() {
        let img = Attachment {
            mime_type: "image/jpeg".into(),
            file_name: None,
            content_base64: String::new(),
            size_bytes: 200,
        };
        assert!(check_attachments(std::slice::from_ref(&img), &hello(300, 1000)).is_ok());
        let err = check_attachments(std::slice::from_ref(&img), &hello(100, 1000)).unwrap_err();
        assert!(matches!(err, GatewayError::AttachmentTooLarge { limit: "policy.attachments.maxImageBytes", .. }));
        let doc = Attachment { mime_type: "application/pdf".into(), size_bytes: 2000, ..img.clone() };
        let err = check_attachments(&[doc], &hello(100, 1000)).unwrap_err();
        assert!(matches!(err, GatewayError::AttachmentTooLarge { limit: "policy.attachments.maxBytes", .. }));
        // An understated size_bytes does not hide a large payload.
        let lying = Attachment { content_base64: "A".repeat(400), size_bytes: 1, ..img };
        assert_eq!(lying.effective_size(), 300);
        assert!(check_attachments(&[lying], &hello(100, 1000)).is_err());
    }

    #[test]
    fn wait_results() {
        let ok = json!({"runId":"r","status":"ok","stopReason":"stop",
            "terminalReply":{"disposition":"visible","text":"STUB-REPLY: hi"}});
        assert_eq!(
            parse_wait(&ok, "r"),
            AgentWaitResult::Terminal(AgentOutcome {
                run_id: "r".into(),
                status: "ok".into(),
                reply: Some("STUB-REPLY: hi".into()),
                stop_reason: Some("stop".into()),
                error: None,
            })
        );
        let silent = json!({"runId":"r","status":"ok","terminalReply":{"disposition":"silent","text":"NO_REPLY"}});
        let AgentWaitResult::Terminal(o) = parse_wait(&silent, "r") else { panic!("not terminal") };
        assert_eq!(o.reply, None);
        assert_eq!(parse_wait(&json!({"runId":"r","status":"timeout"}), "r"), AgentWaitResult::Pending);
        assert_eq!(parse_wait(&json!({"status":"pending"}), "r"), AgentWaitResult::Pending);
        let run_timeout = json!({"runId":"r","status":"timeout","endedAt":5});
        assert!(matches!(parse_wait(&run_timeout, "r"), AgentWaitResult::Terminal(_)));
        let err = json!({"runId":"r","status":"error","error":{"message":"model failed"}});
        let AgentWaitResult::Terminal(o) = parse_wait(&err, "r") else { panic!("not terminal") };
        assert_eq!(o.error.as_deref(), Some("model failed"));
    }

    #[test]
    fn error_codes_are_read_from_the_suffix() {
        let text = "Session \"agent:main:x\" changed while starting work. Retry. | SESSION_WORK_START_CHANGED";
        assert_eq!(gateway_error_code(text), Some(SESSION_WORK_START_CHANGED));
        assert_eq!(gateway_error_code(&format!("{text} (UNAVAILABLE)")), Some(SESSION_WORK_START_CHANGED));
        assert_eq!(gateway_error_code("model failed"), None);
        assert_eq!(gateway_error_code("a | b"), None);
        let outcome = AgentOutcome {
            run_id: "r".into(),
            status: "error".into(),
            reply: None,
            stop_reason: None,
            error: Some(text.into()),
        };
        assert_eq!(outcome.error_code(), Some(SESSION_WORK_START_CHANGED));
    }

    #[test]
    fn accepted_needs_a_run_id() {
        let a = parse_accepted(&json!({"runId":"k","status":"in_flight"})).unwrap();
        assert_eq!(a, AgentAccepted { run_id: "k".into(), status: "in_flight".into() });
        assert!(matches!(parse_accepted(&json!({})), Err(GatewayError::Protocol(_))));
    }
}
