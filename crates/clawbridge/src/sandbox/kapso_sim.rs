//! The simulated Kapso (the Meta Cloud API proxy, reference/kapso-whatsapp.md §3–§6): it takes
//! the bridge's sends, mark-reads and typing indicators, uploads and media look-ups, checks
//! `X-API-Key`, and posts the user's messages and the delivery statuses (sent, delivered, read)
//! to the daemon's `/webhook` as signed v2 webhooks, retrying a failed delivery as Kapso does.
//! During a simulated outage every API call answers 503 with Meta's error envelope.

use super::{HostedFile, PHONE_NUMBER_ID, Sim, lock};
use crate::util::now_ms;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// Kapso's graph version in the proxy paths.
pub const GRAPH_VERSION: &str = "v24.0";
/// The typing indicator disappears after this long without a refresh (reference §3.1).
const TYPING_FOR: Duration = Duration::from_secs(25);
/// Kapso retries a webhook that was not answered 200 after these delays (reference §6.4).
const WEBHOOK_RETRIES: [Duration; 3] = [Duration::from_secs(10), Duration::from_secs(40), Duration::from_secs(90)];
/// Kapso waits this long for a webhook's answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery state of a message, as the ticks show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tick {
    /// Not acknowledged yet (a clock).
    Pending,
    /// One grey tick.
    Sent,
    /// Two grey ticks.
    Delivered,
    /// Two blue ticks.
    Read,
    /// Not delivered.
    Failed,
}

/// What a message holds.
#[derive(Clone, Debug)]
pub enum Body {
    /// Text (WhatsApp markup).
    Text(String),
    /// A picture.
    Image {
        /// Where it is shown from.
        url: String,
        /// Its caption.
        caption: Option<String>,
    },
    /// A file.
    Document {
        /// Where it is downloaded from.
        url: String,
        /// Its name.
        file_name: String,
        /// Its caption.
        caption: Option<String>,
    },
    /// Another type (video, audio, location, interactive, template): its type and object.
    Other {
        /// `type`.
        kind: String,
        /// The type's object as sent.
        object: Value,
    },
    /// Something the platform did (a webhook the daemon refused, an outage).
    Notice(String),
}

/// One message of a WhatsApp chat.
#[derive(Clone, Debug)]
pub struct WaMessage {
    /// The wamid.
    pub id: String,
    /// Sent by the user (right side on their phone); otherwise by the business.
    pub from_user: bool,
    /// What it holds.
    pub body: Body,
    /// The wamid it quotes (`context.message_id`).
    pub quoted: Option<String>,
    /// Ticks.
    pub tick: Tick,
    /// A reaction on it, from the other side.
    pub reaction: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// A chat with one user.
#[derive(Clone, Debug, Default)]
pub struct WaChat {
    /// Messages, oldest first.
    pub messages: Vec<WaMessage>,
    typing_until: Option<Instant>,
}

impl WaChat {
    /// The business is typing (an indicator sent less than 25 s ago and no message since).
    pub fn typing(&self) -> bool {
        self.typing_until.is_some_and(|until| Instant::now() < until)
    }
}

/// The simulated Kapso's chats, by the user's number (digits).
#[derive(Debug, Default)]
pub struct KapsoSim {
    chats: Mutex<BTreeMap<String, WaChat>>,
}

impl KapsoSim {
    /// The chat with `user`.
    pub fn chat(&self, user: &str) -> WaChat {
        lock(&self.chats).get(user).cloned().unwrap_or_default()
    }

    fn with_chat<T>(&self, sim: &Sim, user: &str, change: impl FnOnce(&mut WaChat) -> T) -> T {
        let out = change(lock(&self.chats).entry(user.to_owned()).or_default());
        sim.changed();
        out
    }

    /// The user of the chat that has message `id`, and changes the message.
    fn with_message(&self, sim: &Sim, id: &str, change: impl FnOnce(&mut WaMessage)) -> Option<String> {
        let found = {
            let mut chats = lock(&self.chats);
            let found = chats.iter_mut().find_map(|(user, chat)| {
                let message = chat.messages.iter_mut().find(|m| !id.is_empty() && m.id == id)?;
                Some((user.clone(), message))
            });
            found.map(|(user, message)| {
                change(message);
                user
            })
        };
        sim.changed();
        found
    }

    fn notice(&self, sim: &Sim, user: &str, text: String) {
        self.with_chat(sim, user, |chat| {
            chat.messages.push(WaMessage {
                id: String::new(),
                from_user: false,
                body: Body::Notice(text),
                quoted: None,
                tick: Tick::Read,
                reaction: None,
                at_ms: now_ms(),
            });
        });
    }
}

/// A WhatsApp user's number made safe: 6 to 15 digits.
pub fn clean_number(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    (6..=15).contains(&digits.len()).then_some(digits)
}

/// A user's message to send.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    /// Text, or the caption of the image.
    pub text: String,
    /// A picture.
    pub image: Option<HostedFile>,
    /// The wamid of a message the user quotes.
    pub quoted: Option<String>,
    /// A reaction to `quoted` instead of a message.
    pub reaction: Option<String>,
}

/// The v2 `whatsapp.message.received` record of a user's message (reference §6.5).
pub fn message_received(user: &str, message: Value) -> Value {
    json!({
        "message": message,
        "conversation": {"id": format!("conv-{user}"), "phone_number": format!("+{user}"), "status": "active",
                         "phone_number_id": PHONE_NUMBER_ID, "kapso": {"contact_name": format!("Sandbox {user}")}},
        "is_new_conversation": false,
        "phone_number_id": PHONE_NUMBER_ID
    })
}

/// Posts the user's message to the daemon's webhook, as Kapso does (spawn it: it may retry).
pub async fn send(sim: Arc<Sim>, user: String, outgoing: Outgoing) {
    let id = format!("wamid.sandbox-in-{}", sim.next_id());
    let timestamp = (now_ms() / 1000).to_string();
    let mut kapso = json!({"direction": "inbound", "status": "received", "processing_status": "pending",
                           "origin": "cloud_api", "has_media": false, "content": outgoing.text});
    let (body, mut message) = if let Some(emoji) = &outgoing.reaction {
        let target = outgoing.quoted.clone().unwrap_or_default();
        sim.kapso.with_message(&sim, &target, |m| m.reaction = Some(emoji.clone()));
        (
            None,
            json!({"id": id, "timestamp": timestamp, "type": "reaction",
                      "reaction": {"message_id": target, "emoji": emoji}}),
        )
    } else if let Some(file) = outgoing.image.clone() {
        let (mime, name, size) = (file.mime_type.clone(), file.file_name.clone(), file.bytes.len());
        let media_id = sim.host_file(file);
        let url = sim.file_url(&media_id);
        kapso["has_media"] = json!(true);
        kapso["media_url"] = json!(url);
        kapso["media_data"] = json!({"url": url, "filename": name, "content_type": mime, "byte_size": size});
        let caption = Some(outgoing.text.clone()).filter(|t| !t.is_empty());
        let mut image = json!({"id": media_id, "mime_type": mime});
        if let Some(caption) = &caption {
            image["caption"] = json!(caption);
            kapso["message_type_data"] = json!({"caption": caption});
        }
        (Some(Body::Image { url, caption }), json!({"id": id, "timestamp": timestamp, "type": "image", "image": image}))
    } else {
        (
            Some(Body::Text(outgoing.text.clone())),
            json!({"id": id, "timestamp": timestamp, "type": "text", "text": {"body": outgoing.text}}),
        )
    };
    if let Some(quoted) = outgoing.quoted.as_ref().filter(|_| outgoing.reaction.is_none()) {
        message["context"] = json!({"id": quoted, "message_id": quoted});
    }
    message["kapso"] = kapso;
    if let Some(body) = body {
        sim.kapso.with_chat(&sim, &user, |chat| {
            chat.messages.push(WaMessage {
                id: id.clone(),
                from_user: true,
                body,
                quoted: outgoing.quoted.clone(),
                tick: Tick::Pending,
                reaction: None,
                at_ms: now_ms(),
            });
        });
    }
    let record = message_received(&user, message);
    let delivered = deliver(&sim, &user, "whatsapp.message.received", &record).await;
    if delivered {
        // Delivered to the business: one tick until the bridge marks it read.
        sim.kapso.with_message(&sim, &id, |m| m.tick = m.tick.max(Tick::Sent));
    } else {
        sim.kapso.with_message(&sim, &id, |m| m.tick = Tick::Failed);
    }
}

/// Posts one signed webhook, retrying at 10, 40 and 90 s after a failure; whether it was taken.
async fn deliver(sim: &Sim, user: &str, event: &str, record: &Value) -> bool {
    let body = record.to_string();
    let signature = clawbridge_whatsapp::webhook::sign(sim.secrets.webhook_secret.as_bytes(), body.as_bytes());
    let key = format!("sandbox-{}", sim.next_id());
    for (attempt, wait) in std::iter::once(Duration::ZERO).chain(WEBHOOK_RETRIES).enumerate() {
        tokio::time::sleep(wait).await;
        let Some(daemon) = sim.daemon_url() else { return false };
        let answered = sim
            .http
            .post(format!("{daemon}/webhook"))
            .header("content-type", "application/json")
            .header("X-Webhook-Event", event)
            .header("X-Webhook-Signature", &signature)
            .header("X-Idempotency-Key", &key)
            .header("X-Webhook-Payload-Version", "v2")
            .body(body.clone())
            .timeout(WEBHOOK_TIMEOUT)
            .send()
            .await;
        let problem = match answered {
            Ok(response) if response.status() == StatusCode::OK => return true,
            Ok(response) => format!("answered {}", response.status()),
            Err(e) => format!("failed: {e}"),
        };
        if event == "whatsapp.message.received" {
            let next = WEBHOOK_RETRIES
                .get(attempt)
                .map_or_else(|| "Kapso gives up".to_owned(), |next| format!("Kapso retries in {} s", next.as_secs()));
            sim.kapso.notice(sim, user, format!("the webhook {problem}; {next}"));
        }
    }
    false
}

/// The simulated Kapso API and the hosted files.
pub fn routes(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route("/meta/whatsapp/{version}/{*rest}", any(api))
        .route("/files/{id}", get(file))
        .with_state(sim)
}

/// `GET /files/{id}`: media downloads need no API key (reference §4).
async fn file(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match sim.file(&id) {
        Some(file) => ([(axum::http::header::CONTENT_TYPE, file.mime_type)], file.bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Meta's error envelope.
fn graph_error(status: StatusCode, message: &str, code: i64) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "OAuthException", "code": code}}))).into_response()
}

async fn api(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let key_ok = headers
        .get("x-api-key")
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(sim.secrets.kapso_api_key.as_bytes())));
    if !key_ok {
        return graph_error(StatusCode::UNAUTHORIZED, "Invalid API key", 190);
    }
    if sim.toggles().outage {
        return graph_error(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable (sandbox outage)", 2);
    }
    let path = uri.path();
    let rest: Vec<&str> = path.trim_matches('/').split('/').skip(3).filter(|s| !s.is_empty()).collect();
    match (&method, rest.as_slice()) {
        (&Method::POST, [pnid, "messages"]) if *pnid == PHONE_NUMBER_ID => messages(&sim, &body),
        (&Method::GET, [pnid, "messages"]) if *pnid == PHONE_NUMBER_ID => axum::Json(
            json!({"data": [], "paging": {"cursors": {"before": null, "after": null}, "next": null, "previous": null}}),
        )
        .into_response(),
        (&Method::POST, [pnid, "media"]) if *pnid == PHONE_NUMBER_ID => {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            match multipart_file(content_type, &body) {
                Some(file) => axum::Json(json!({"id": sim.host_file(file)})).into_response(),
                None => graph_error(StatusCode::BAD_REQUEST, "a multipart body with a file part is required", 100),
            }
        }
        (&Method::GET, [media_id]) => {
            if query.get("phone_number_id").map(String::as_str) != Some(PHONE_NUMBER_ID) {
                return graph_error(StatusCode::BAD_REQUEST, "phone_number_id is required", 100);
            }
            match sim.file(media_id) {
                Some(file) => axum::Json(json!({
                    "messaging_product": "whatsapp", "url": sim.file_url(media_id),
                    "download_url": sim.file_url(media_id), "mime_type": file.mime_type,
                    "file_size": file.bytes.len().to_string(), "id": media_id,
                }))
                .into_response(),
                None => graph_error(StatusCode::NOT_FOUND, "Unsupported get request: no such media", 100),
            }
        }
        _ => graph_error(StatusCode::BAD_REQUEST, "Unsupported request", 100),
    }
}

/// `POST /{phone_number_id}/messages`: a mark-read (with the typing indicator) or a send.
fn messages(sim: &Arc<Sim>, body: &[u8]) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return graph_error(StatusCode::BAD_REQUEST, "the body is not JSON", 100);
    };
    if body["messaging_product"] != "whatsapp" {
        return graph_error(StatusCode::BAD_REQUEST, "messaging_product is required", 100);
    }
    if body.get("status").and_then(Value::as_str) == Some("read") {
        let id = body["message_id"].as_str().unwrap_or_default();
        let typing = body.get("typing_indicator").is_some();
        let user = sim.kapso.with_message(sim, id, |m| m.tick = Tick::Read);
        if let (Some(user), true) = (user, typing) {
            sim.kapso.with_chat(sim, &user, |chat| chat.typing_until = Some(Instant::now() + TYPING_FOR));
        }
        return axum::Json(json!({"success": true})).into_response();
    }
    let Some(user) = body.get("to").and_then(Value::as_str).and_then(clean_number) else {
        return graph_error(StatusCode::BAD_REQUEST, "a recipient (to) is required", 100);
    };
    let kind = body["type"].as_str().unwrap_or("text").to_owned();
    let object = body.get(&kind).cloned().unwrap_or(Value::Null);
    let id = format!("wamid.sandbox-out-{}", sim.next_id());
    let quoted = body.pointer("/context/message_id").and_then(Value::as_str).map(str::to_owned);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let media_url = |object: &Value| match (object["link"].as_str(), object["id"].as_str()) {
        (Some(link), _) => link.to_owned(),
        (None, Some(id)) => sim.file_url(id),
        (None, None) => String::new(),
    };
    let reaction_only = kind == "reaction";
    let message_body = match kind.as_str() {
        "text" => Body::Text(text(&object["body"]).unwrap_or_default()),
        "image" => Body::Image { url: media_url(&object), caption: text(&object["caption"]) },
        "document" => Body::Document {
            url: media_url(&object),
            file_name: text(&object["filename"]).unwrap_or_else(|| "document".to_owned()),
            caption: text(&object["caption"]),
        },
        _ => Body::Other { kind: kind.clone(), object: object.clone() },
    };
    if reaction_only {
        let target = object["message_id"].as_str().unwrap_or_default();
        let emoji = object["emoji"].as_str().filter(|e| !e.is_empty()).map(str::to_owned);
        sim.kapso.with_message(sim, target, |m| m.reaction = emoji);
    } else {
        sim.kapso.with_chat(sim, &user, |chat| {
            chat.typing_until = None;
            chat.messages.push(WaMessage {
                id: id.clone(),
                from_user: false,
                body: message_body,
                quoted,
                tick: Tick::Pending,
                reaction: None,
                at_ms: now_ms(),
            });
        });
    }
    tokio::spawn(statuses(sim.clone(), user.clone(), id.clone(), kind, object, reaction_only));
    axum::Json(json!({"messaging_product": "whatsapp", "contacts": [{"input": user, "wa_id": user}],
                      "messages": [{"id": id}]}))
    .into_response()
}

/// The statuses of a sent message: sent, delivered, then read once the user "looks" (a reaction
/// only ever gets `sent`), each as a signed webhook.
async fn statuses(sim: Arc<Sim>, user: String, id: String, kind: String, object: Value, reaction_only: bool) {
    let steps: &[(Duration, Tick, &str)] = if reaction_only {
        &[(Duration::from_millis(300), Tick::Sent, "sent")]
    } else {
        &[
            (Duration::from_millis(300), Tick::Sent, "sent"),
            (Duration::from_millis(700), Tick::Delivered, "delivered"),
            (Duration::from_millis(1200), Tick::Read, "read"),
        ]
    };
    let mut history = Vec::new();
    for (wait, tick, status) in steps {
        tokio::time::sleep(*wait).await;
        sim.kapso.with_message(&sim, &id, |m| m.tick = m.tick.max(*tick));
        history.push(json!({"id": id, "status": status, "timestamp": (now_ms() / 1000).to_string(),
                            "recipient_id": user}));
        let mut message = json!({"id": id, "type": kind, "kapso": {"direction": "outbound", "status": status,
                                 "statuses": history}});
        message[&kind] = object.clone();
        let record = json!({"message": message,
                            "conversation": {"id": format!("conv-{user}"), "phone_number": format!("+{user}")},
                            "is_new_conversation": false, "phone_number_id": PHONE_NUMBER_ID});
        deliver(&sim, &user, &format!("whatsapp.message.{status}"), &record).await;
    }
}

/// The `file` part of a `multipart/form-data` upload (the bridge's `POST /media`).
pub fn multipart_file(content_type: &str, body: &[u8]) -> Option<HostedFile> {
    let boundary = content_type.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary="))?;
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let text_positions = find_all(body, delimiter.as_bytes());
    for pair in text_positions.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let split = find_all(part, b"\r\n\r\n").into_iter().next()?;
        let head = String::from_utf8_lossy(&part[..split]);
        if !head.contains("name=\"file\"") {
            continue;
        }
        let mut data = &part[split + 4..];
        if data.ends_with(b"\r\n") {
            data = &data[..data.len() - 2];
        }
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let mime_type = header("content-type").unwrap_or_else(|| "application/octet-stream".to_owned());
        let file_name = header("content-disposition")
            .and_then(|d| d.split("filename=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned))
            .unwrap_or_else(|| "file".to_owned());
        return Some(HostedFile { mime_type, file_name, bytes: data.to_vec() });
    }
    None
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len()).filter(|&i| &haystack[i..i + needle.len()] == needle).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_only() {
        assert_eq!(clean_number("+1 555-000-1111").as_deref(), Some("15550001111"));
        assert_eq!(clean_number("12"), None);
    }

    #[test]
    fn an_upload_yields_its_file_part() {
        let body = b"--XYZ\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--XYZ--\r\n";
        let file = multipart_file("multipart/form-data; boundary=XYZ", body).unwrap();
        assert_eq!((file.mime_type.as_str(), file.file_name.as_str()), ("image/png", "a.png"));
        assert_eq!(file.bytes, b"PNGDATA");
    }
}
