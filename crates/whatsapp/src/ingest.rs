//! Turning a converted record into a stored inbound message: fetch its media while the links
//! are still valid (they expire within minutes), then persist through the bridge.

use crate::client::{KapsoClient, redact_url};
use crate::inbound::Converted;
use base64::Engine;
use clawbridge_channel::{Accepted, Bridge, BridgeError};
use clawbridge_core::ids::mask;
use std::time::Duration;

/// Downloads the pending media of `converted` into `data_base64`, within `budget` in total.
/// Failures are recorded in `extra.media_errors` and the media stays a described reference
/// (kind, MIME type, size, media id): the message itself is never dropped.
pub async fn fetch_media(client: &KapsoClient, converted: &mut Converted<'_>, budget: Duration) {
    let pending = std::mem::take(&mut converted.pending);
    if pending.is_empty() {
        return;
    }
    let message = &mut converted.message;
    let mut errors = Vec::new();
    let work = async {
        for item in &pending {
            let url = match (&item.url, &item.media_id) {
                (Some(url), _) => Ok(url.clone()),
                (None, Some(id)) => client.media_info(id).await.map(|info| info.url).map_err(|e| e.to_string()),
                (None, None) => Err("no media URL or id in the payload".to_owned()),
            };
            let result = match url {
                Ok(url) => client.download_media(&url).await.map_err(|e| {
                    tracing::warn!(url = %redact_url(&url), error = %e, "media download failed");
                    e.to_string()
                }),
                Err(e) => Err(e),
            };
            match result {
                Ok(downloaded) => {
                    if let Some(media) = message.media.get_mut(item.index) {
                        media.size_bytes = Some(downloaded.bytes.len() as u64);
                        if media.mime_type.is_none() {
                            media.mime_type = downloaded.content_type;
                        }
                        media.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&downloaded.bytes));
                    }
                    metrics::counter!("clawbridge_whatsapp_media_total", "result" => "downloaded").increment(1);
                }
                Err(e) => {
                    metrics::counter!("clawbridge_whatsapp_media_total", "result" => "failed").increment(1);
                    errors.push(e);
                }
            }
        }
    };
    if tokio::time::timeout(budget, work).await.is_err() {
        errors.push(format!("media download did not finish within {} s", budget.as_secs()));
        metrics::counter!("clawbridge_whatsapp_media_total", "result" => "timeout").increment(1);
    }
    converted.data.media_errors.extend(errors);
}

/// Persists one message; logs with the sender masked.
///
/// # Errors
/// The bridge could not store it (answer the platform with a retryable error).
pub async fn accept(bridge: &dyn Bridge, converted: Converted<'_>) -> Result<Accepted, BridgeError> {
    let msg = converted.into_message();
    let (id, peer, kind) = (msg.message_id.clone(), msg.peer.clone(), msg.kind.clone());
    let outcome = bridge.accept(msg).await?;
    tracing::info!(message_id = %id, peer = %mask(peer.as_str()), kind = ?kind, new = outcome == Accepted::New, "whatsapp message accepted");
    Ok(outcome)
}

fn getrandom_bytes() -> [u8; 6] {
    let mut bytes = [0u8; 6];
    // A clash only merges two anonymous letters.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

/// Namespace of the records a delivery or poll could not use, key `<account>/<message id>`
/// (`<at>-<random>` for a record without an id).
pub const DEAD_LETTERS: &str = "whatsapp.dead-letters";
/// Dead letters are kept for a month (`clawbridge status` shows them).
const DEAD_LETTER_TTL_MS: i64 = 30 * 24 * 3_600 * 1_000;

/// Keeps a record that cannot become a message (unconvertible, an unknown phone number id, a
/// status without an id) as a dead letter with its reason, so the rest of its delivery is stored
/// and acknowledged instead of the whole delivery being refused (and lost after Kapso's retries).
/// Only ids and the reason are kept, never the message's content.
///
/// # Errors
/// The bridge could not store it (answer the platform with a retryable error).
pub async fn dead_letter(
    bridge: &dyn Bridge,
    account: Option<&str>,
    message_id: Option<&str>,
    reason: &str,
) -> Result<(), BridgeError> {
    let at = clawbridge_core::clock::now_ms();
    let id = message_id.unwrap_or("-");
    // One letter per message however often it is redelivered or re-polled; records without an
    // id each get their own.
    let key = match message_id {
        Some(id) => format!("{}/{}", account.unwrap_or("-"), id.chars().take(200).collect::<String>()),
        None => format!("{at:013}-{}", hex::encode(getrandom_bytes())),
    };
    let value = serde_json::json!({
        "account": account, "message_id": message_id, "reason": reason.chars().take(300).collect::<String>(), "at": at,
    });
    bridge.state_put(DEAD_LETTERS, &key, &value.to_string(), Some(DEAD_LETTER_TTL_MS), false).await?;
    metrics::counter!("clawbridge_whatsapp_dead_letters_total").increment(1);
    tracing::warn!(message_id = id, reason, "WhatsApp record kept as a dead letter");
    Ok(())
}
