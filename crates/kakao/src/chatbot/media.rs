//! Pictures of the secure-image plugin, downloaded for the agent (https, allowed hosts, size cap).
//!
//! One function, independent of how answers are delivered, so that it can move onto the shared
//! SSRF-safe downloader as a whole.

use super::config::{ChatbotConfig, host_allowed, host_of, is_loopback};
use super::payload::SkillPayload;
use base64::Engine as _;
use clawbridge_core::{MediaKind, MediaRef};
use std::time::Duration;

/// At most this many pictures of one request are downloaded.
const MAX_IMAGES: usize = 5;
/// Time left for the rest of the turn after the downloads.
const RESERVE: Duration = Duration::from_millis(1_500);

/// Downloads the request's secure-image pictures until `deadline` (less a reserve for the turn);
/// an image that cannot be fetched in time is described (no data) instead of attached.
pub(super) async fn download_images(
    http: &reqwest::Client,
    config: &ChatbotConfig,
    payload: &SkillPayload,
    deadline: tokio::time::Instant,
) -> Vec<MediaRef> {
    let urls = payload.secure_image_urls();
    let mut media = Vec::new();
    for raw in urls.into_iter().take(MAX_IMAGES) {
        let Some(host) = host_of(&raw) else { continue };
        if !host_allowed(&host, &config.image_hosts) {
            tracing::warn!(host, "image host not in kakao.chatbot.imageHosts; not downloaded");
            continue;
        }
        let url = if is_loopback(&host) { raw.clone() } else { raw.replacen("http://", "https://", 1) };
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now()).saturating_sub(RESERVE);
        let mut item = MediaRef { kind: MediaKind::Image, ..MediaRef::default() };
        match tokio::time::timeout(budget, fetch(http, &url, config.media_max_bytes)).await {
            Ok(Ok((bytes, mime))) => {
                item.size_bytes = Some(bytes.len() as u64);
                item.mime_type = Some(mime);
                item.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot download a Kakao image"),
            Err(_) => tracing::warn!("a Kakao image did not download in time"),
        }
        media.push(item);
    }
    media
}

/// GETs one image of at most `max` bytes; returns its bytes and MIME type.
async fn fetch(http: &reqwest::Client, url: &str, max: u64) -> Result<(Vec<u8>, String), String> {
    let mut response = http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > max) {
        return Err(format!("larger than {max} bytes"));
    }
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("image/jpeg")
        .to_owned();
    if !mime.starts_with("image/") {
        return Err(format!("not an image ({mime})"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(format!("larger than {max} bytes"));
        }
    }
    Ok((bytes, mime))
}
