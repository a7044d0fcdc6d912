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
