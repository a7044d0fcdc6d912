//! A minimal gateway WebSocket client: handshake and request/response, events ignored.
//!
//! Only for readiness checks and the testkit's own smoke test; the real client is `clawbridge-gateway`,
//! which the testkit must not depend on (it is what the end-to-end tests exercise).

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl RawClient {
    /// Connects and performs the handshake of reference §1.3 as the loopback `gateway-client` /
    /// `backend` trust path (no device block needed on loopback). Returns the `hello-ok` payload.
    pub(crate) async fn connect(url: &str, token: &str) -> Result<(RawClient, Value), String> {
        Self::connect_with_scopes(url, token, &["operator.read", "operator.write"]).await
    }

    /// [`RawClient::connect`] asking for `scopes` (the loopback backend trust path grants
    /// `operator.pairing` too, which node approvals need).
    pub(crate) async fn connect_with_scopes(
        url: &str,
        token: &str,
        scopes: &[&str],
    ) -> Result<(RawClient, Value), String> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| format!("connect: {e}"))?;
        let mut client = RawClient { ws, next_id: 0 };
        let challenge = client.next_frame().await?;
        if challenge["event"] != "connect.challenge" {
            return Err(format!("expected connect.challenge, got {challenge}"));
        }
        let params = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "gateway-client", "displayName": "clawbridge testkit", "version": "0.0.0",
                       "platform": "linux", "mode": "backend"},
            "caps": [], "role": "operator", "scopes": scopes,
            "auth": {"token": token},
        });
        let hello = client.request("connect", params).await?;
        if hello["type"] != "hello-ok" {
            return Err(format!("expected hello-ok, got {hello}"));
        }
        Ok((client, hello))
    }

    /// Sends a request and returns its `payload`, skipping events and other responses; an error
    /// response becomes `Err` with the error object.
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = format!("tk{}", self.next_id);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws.send(Message::text(frame.to_string())).await.map_err(|e| format!("send {method}: {e}"))?;
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "res" && frame["id"] == id.as_str() {
                return if frame["ok"] == true {
                    Ok(frame.get("payload").cloned().unwrap_or(Value::Null))
                } else {
                    Err(format!("{method} failed: {}", frame["error"]))
                };
            }
        }
    }

    /// The next JSON text frame; `Err` on close or transport error.
    async fn next_frame(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| format!("bad frame {text}: {e}"));
                }
                Some(Ok(Message::Close(close))) => return Err(format!("closed: {close:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("connection ended".to_owned()),
            }
        }
    }
}
