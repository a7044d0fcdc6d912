//! Errors and their classification (reference §1.7).
//!
//! Two levels, like twilight's gateway: [`FatalError`] is a configuration problem that retrying
//! cannot fix (the connection task stops and every caller gets it); [`GatewayError`] is what a
//! single call returns, with [`GatewayError::is_retryable`] telling callers whether trying again
//! later can help. Classification reads `error.code` and `details.code`/`details.reason`,
//! never the human-readable `message`.

use std::path::PathBuf;
use std::time::Duration;

use crate::frame::{ErrorShape, PROTOCOL_VERSION};

/// A connection failure that retrying cannot fix; each message names the setting to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// The gateway speaks another protocol version (`PROTOCOL_MISMATCH`).
    #[error("{}", protocol_mismatch_message(*.expected))]
    ProtocolMismatch {
        /// `details.expectedProtocol`, when the gateway said.
        expected: Option<u32>,
    },
    /// `AUTH_TOKEN_MISMATCH`: the configured token is not the gateway's.
    #[error(
        "the OpenClaw gateway rejected OPENCLAW_TOKEN (token mismatch): set OPENCLAW_TOKEN to the \
         gateway's gateway.auth.token (`openclaw gateway auth-token --show` prints it in a terminal on the gateway host)"
    )]
    AuthTokenMismatch,
    /// `AUTH_TOKEN_MISSING`: the gateway wants a token and none is configured.
    #[error(
        "the OpenClaw gateway requires a token but OPENCLAW_TOKEN is not set: set OPENCLAW_TOKEN \
         to the gateway's gateway.auth.token (`openclaw gateway auth-token --show` prints it in a terminal on the gateway host)"
    )]
    AuthTokenMissing,
    /// Another authentication failure (`AUTH_PASSWORD_*`, `AUTH_DEVICE_TOKEN_MISMATCH`,
    /// `AUTH_SCOPE_MISMATCH`…): the gateway's auth configuration does not fit a token client.
    #[error(
        "the OpenClaw gateway refused authentication ({code}): clawbridge authenticates with \
         OPENCLAW_TOKEN only; set gateway.auth.mode to \"token\" on the gateway and OPENCLAW_TOKEN \
         to its gateway.auth.token (`openclaw gateway auth-token --show` prints it in a terminal on the gateway host)"
    )]
    Auth {
        /// `details.code`.
        code: String,
    },
    /// `DEVICE_AUTH_*` / `DEVICE_IDENTITY_REQUIRED`: the device proof was refused.
    #[error(
        "the OpenClaw gateway refused this device's identity ({code}): approve this device on the \
         gateway host: `openclaw devices list`, then `openclaw devices approve <requestId>` (device \
         id {device_id}); if the code mentions the signature or its age, check that both hosts' \
         clocks are right, and if the device key file was replaced, approve the new device"
    )]
    DeviceAuth {
        /// `details.code`, e.g. `DEVICE_AUTH_SIGNATURE_EXPIRED`.
        code: String,
        /// This client's device id (hex SHA-256 of its public key).
        device_id: String,
    },
    /// `PAIRING_REQUIRED`: the gateway knows the device but it is not approved yet.
    #[error(
        "this device is not approved on the OpenClaw gateway yet: approve this device on the \
         gateway host: `openclaw devices approve {}` (device id {device_id}; `openclaw devices \
         list` shows pending requests), then restart clawbridge",
        request_id.as_deref().unwrap_or("<requestId>")
    )]
    PairingRequired {
        /// This client's device id.
        device_id: String,
        /// `details.requestId` of the pending pairing request, when the gateway sent it.
        request_id: Option<String>,
    },
    /// `CONTROL_UI_ORIGIN_NOT_ALLOWED`: the gateway took us for a browser UI client.
    #[error(
        "the OpenClaw gateway refused the connection as a Control UI client \
         (CONTROL_UI_ORIGIN_NOT_ALLOWED): point OPENCLAW_GATEWAY_URL at the gateway's own \
         WebSocket port (default ws://127.0.0.1:18789), not at a proxy that adds a browser Origin"
    )]
    OriginNotAllowed,
    /// `OPENCLAW_GATEWAY_URL` cannot be used at all.
    #[error(
        "OPENCLAW_GATEWAY_URL `{url}` is not a usable WebSocket URL ({message}): use \
         ws://host:port or wss://host:port, e.g. ws://127.0.0.1:18789"
    )]
    InvalidUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// Any other non-retryable handshake rejection.
    #[error(
        "the OpenClaw gateway refused the connection ({code}: {message}): check \
         OPENCLAW_GATEWAY_URL and OPENCLAW_TOKEN against the gateway's configuration"
    )]
    Other {
        /// `details.code`, else `error.code`.
        code: String,
        /// The gateway's message.
        message: String,
    },
}

fn protocol_mismatch_message(expected: Option<u32>) -> String {
    match expected {
        Some(n) if n > PROTOCOL_VERSION => format!(
            "the OpenClaw gateway requires protocol {n}; clawbridge speaks {PROTOCOL_VERSION}: \
             upgrade clawbridge, or run an OpenClaw release that speaks protocol {PROTOCOL_VERSION}"
        ),
        Some(n) => format!(
            "the OpenClaw gateway requires protocol {n}; clawbridge speaks {PROTOCOL_VERSION}: \
             upgrade OpenClaw to 2026.5 or newer"
        ),
        None => format!(
            "the OpenClaw gateway does not speak protocol {PROTOCOL_VERSION}, the one clawbridge \
             speaks: upgrade OpenClaw to 2026.5 or newer"
        ),
    }
}

/// The error of one gateway call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The client stopped for good; the message says what to fix.
    #[error(transparent)]
    Fatal(#[from] FatalError),
    /// The gateway said "try again later" (`UNAVAILABLE` or `retryable: true`).
    #[error("the OpenClaw gateway is unavailable: {message}")]
    Unavailable {
        /// `retryAfterMs`: wait at least this long.
        retry_after: Option<Duration>,
        /// What the gateway or the socket said.
        message: String,
    },
    /// The connection dropped while the request was in flight; it may or may not have run.
    #[error("the connection to the OpenClaw gateway was lost")]
    Disconnected,
    /// No connection or no answer within the allotted time.
    #[error("timed out waiting for the OpenClaw gateway")]
    Timeout,
    /// The method failed after the handshake: permanent for these params, do not retry them.
    #[error("the OpenClaw gateway rejected the request ({code}{}): {message}", detail_suffix(.detail_code))]
    Rejected {
        /// `error.code`, e.g. `INVALID_REQUEST`.
        code: String,
        /// `details.code` or `details.reason`.
        detail_code: Option<String>,
        /// The gateway's message.
        message: String,
    },
    /// An attachment (or the whole agent frame) exceeds a limit announced in hello-ok.
    #[error(
        "{} is {size_bytes} bytes, over the gateway's {limit} of {limit_bytes} bytes",
        file_name.as_deref().map_or_else(|| "the agent request with its attachments".to_owned(), |n| format!("attachment `{n}`"))
    )]
    AttachmentTooLarge {
        /// The attachment's file name; `None` when the whole frame is too large.
        file_name: Option<String>,
        /// Its size.
        size_bytes: u64,
        /// The limit it exceeds.
        limit_bytes: u64,
        /// Which hello-ok policy field set the limit.
        limit: &'static str,
    },
    /// A request frame exceeds `policy.maxPayload`; it was not sent.
    #[error("the request is {size_bytes} bytes, over the gateway's policy.maxPayload of {max_payload} bytes")]
    PayloadTooLarge {
        /// Serialized frame size.
        size_bytes: u64,
        /// `policy.maxPayload`.
        max_payload: u64,
    },
    /// The gateway sent something this client cannot understand.
    #[error("OpenClaw gateway protocol error: {0}")]
    Protocol(String),
    /// Network or TLS failure.
    #[error("OpenClaw gateway connection error: {0}")]
    Io(String),
    /// The device key file cannot be used.
    #[error("device key {}: {message}", path.display())]
    DeviceKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The client was shut down (its cancellation token fired).
    #[error("the OpenClaw gateway client has been shut down")]
    Shutdown,
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail.as_deref().map(|d| format!("/{d}")).unwrap_or_default()
}

impl GatewayError {
    /// Whether the same call may succeed later (after a reconnect or a pause).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Disconnected | Self::Timeout | Self::Io(_))
    }

    /// The server-suggested pause before retrying, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The fatal reason, if this error is fatal.
    pub fn as_fatal(&self) -> Option<&FatalError> {
        match self {
            Self::Fatal(f) => Some(f),
            _ => None,
        }
    }
}

/// Classifies a failed `connect` response: fatal configuration problem or transient.
pub(crate) fn classify_connect_error(shape: &ErrorShape, device_id: &str) -> GatewayError {
    let detail = shape.detail_code().unwrap_or_default();
    let fatal = match detail {
        "PROTOCOL_MISMATCH" => Some(FatalError::ProtocolMismatch {
            expected: shape.detail_u64("expectedProtocol").and_then(|n| u32::try_from(n).ok()),
        }),
        "AUTH_TOKEN_MISMATCH" => Some(FatalError::AuthTokenMismatch),
        "AUTH_TOKEN_MISSING" => Some(FatalError::AuthTokenMissing),
        "PAIRING_REQUIRED" => Some(FatalError::PairingRequired {
            device_id: device_id.to_owned(),
            request_id: shape.detail_str("requestId").map(str::to_owned),
        }),
        "CONTROL_UI_ORIGIN_NOT_ALLOWED" => Some(FatalError::OriginNotAllowed),
        d if d.starts_with("DEVICE_AUTH_") || d == "DEVICE_IDENTITY_REQUIRED" => {
            Some(FatalError::DeviceAuth { code: d.to_owned(), device_id: device_id.to_owned() })
        }
        // Rate limiting is the one auth outcome that passes by itself.
        "AUTH_RATE_LIMITED" => None,
        d if d.starts_with("AUTH_") => Some(FatalError::Auth { code: d.to_owned() }),
        _ => None,
    };
    if let Some(fatal) = fatal {
        return GatewayError::Fatal(fatal);
    }
    if is_transient(shape) || detail == "AUTH_RATE_LIMITED" {
        return GatewayError::Unavailable { retry_after: shape.retry_after(), message: describe(shape) };
    }
    // The connect params are the same on every attempt, so an unexplained refusal would repeat.
    GatewayError::Fatal(FatalError::Other {
        code: if detail.is_empty() { shape.code.clone() } else { detail.to_owned() },
        message: shape.message.clone(),
    })
}

/// Classifies a failed method response after the handshake.
pub(crate) fn classify_method_error(shape: &ErrorShape) -> GatewayError {
    if is_transient(shape) {
        return GatewayError::Unavailable { retry_after: shape.retry_after(), message: describe(shape) };
    }
    GatewayError::Rejected {
        code: shape.code.clone(),
        detail_code: shape.detail_code().map(str::to_owned),
        message: shape.message.clone(),
    }
}

fn is_transient(shape: &ErrorShape) -> bool {
    shape.retryable == Some(true) || shape.code == "UNAVAILABLE"
}

fn describe(shape: &ErrorShape) -> String {
    match shape.detail_code() {
        Some(d) => format!("{} ({}/{d})", shape.message, shape.code),
        None => format!("{} ({})", shape.message, shape.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(json: &str) -> ErrorShape {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn classifies_the_reference_errors() {
        let e = classify_connect_error(
            &shape(
                r#"{"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","expectedProtocol":4}}"#,
            ),
            "dev",
        );
        assert!(matches!(e, GatewayError::Fatal(FatalError::ProtocolMismatch { expected: Some(4) })));

        let e = classify_connect_error(
            &shape(
                r#"{"code":"UNAVAILABLE","message":"gateway starting; retry shortly","retryable":true,"retryAfterMs":500,"details":{"reason":"startup-sidecars"}}"#,
            ),
            "dev",
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));

        let e = classify_connect_error(
            &shape(
                r#"{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH"}}"#,
            ),
            "dev",
        );
        assert!(matches!(e, GatewayError::Fatal(FatalError::AuthTokenMismatch)));
        assert!(e.to_string().contains("OPENCLAW_TOKEN"));
        assert!(e.to_string().contains("openclaw gateway auth-token --show"));

        let e = classify_connect_error(
            &shape(r#"{"code":"INVALID_REQUEST","message":"x","details":{"code":"AUTH_TOKEN_MISSING"}}"#),
            "dev",
        );
        assert!(matches!(e, GatewayError::Fatal(FatalError::AuthTokenMissing)));
    }

    #[test]
    fn classifies_device_and_pairing_errors_with_the_device_id() {
        let e = classify_connect_error(
            &shape(
                r#"{"code":"NOT_PAIRED","message":"pairing required","details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"req-9"}}"#,
            ),
            "abc123",
        );
        let text = e.to_string();
        assert!(text.contains("openclaw devices approve req-9"), "{text}");
        assert!(text.contains("abc123"), "{text}");

        let e = classify_connect_error(
            &shape(
                r#"{"code":"INVALID_REQUEST","message":"device nonce mismatch","details":{"code":"DEVICE_AUTH_NONCE_MISMATCH","reason":"device-nonce-mismatch"}}"#,
            ),
            "abc123",
        );
        assert!(
            matches!(&e, GatewayError::Fatal(FatalError::DeviceAuth { code, .. }) if code == "DEVICE_AUTH_NONCE_MISMATCH")
        );
        assert!(e.to_string().contains("openclaw devices approve"));

        let e = classify_connect_error(
            &shape(r#"{"code":"INVALID_REQUEST","message":"m","details":{"code":"CONTROL_UI_ORIGIN_NOT_ALLOWED"}}"#),
            "x",
        );
        assert!(matches!(e, GatewayError::Fatal(FatalError::OriginNotAllowed)));
    }

    #[test]
    fn unknown_connect_refusals_are_fatal_but_rate_limits_are_not() {
        let e = classify_connect_error(&shape(r#"{"code":"INVALID_REQUEST","message":"weird"}"#), "x");
        assert!(matches!(e, GatewayError::Fatal(FatalError::Other { .. })));
        let e = classify_connect_error(
            &shape(
                r#"{"code":"INVALID_REQUEST","message":"slow down","retryAfterMs":1000,"details":{"code":"AUTH_RATE_LIMITED"}}"#,
            ),
            "x",
        );
        assert!(e.is_retryable());
        let e = classify_connect_error(
            &shape(r#"{"code":"INVALID_REQUEST","message":"m","details":{"code":"AUTH_PASSWORD_MISMATCH"}}"#),
            "x",
        );
        assert!(matches!(e, GatewayError::Fatal(FatalError::Auth { .. })));
    }

    #[test]
    fn method_errors_are_rejected_unless_retryable() {
        let e = classify_method_error(&shape(
            r#"{"code":"INVALID_REQUEST","message":"invalid agent params: unknown channel: kakao"}"#,
        ));
        assert!(matches!(e, GatewayError::Rejected { .. }));
        assert!(!e.is_retryable());
        let e = classify_method_error(&shape(r#"{"code":"UNAVAILABLE","message":"busy"}"#));
        assert!(e.is_retryable());
    }

    #[test]
    fn protocol_messages_name_the_fix() {
        let old = FatalError::ProtocolMismatch { expected: Some(3) }.to_string();
        assert!(old.contains("upgrade OpenClaw to 2026.5 or newer"), "{old}");
        let newer = FatalError::ProtocolMismatch { expected: Some(5) }.to_string();
        assert!(newer.contains("requires protocol 5") && newer.contains("upgrade clawbridge"), "{newer}");
    }

    #[test]
    fn errors_are_clone_send_sync() {
        fn check<T: Clone + Send + Sync + std::error::Error + 'static>() {}
        check::<GatewayError>();
        check::<FatalError>();
    }
}
