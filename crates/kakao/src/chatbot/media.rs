//! Pictures of the secure-image plugin, downloaded for the agent through the shared SSRF-safe
//! downloader (https, `imageHosts` checked at every redirect, size cap).

use super::payload::SkillPayload;
use base64::Engine as _;
use clawbridge_core::{MediaKind, MediaRef};
use clawbridge_http::Downloader;
use std::time::Duration;

/// At most this many pictures of one request are downloaded.
const MAX_IMAGES: usize = 5;
/// Time left for the rest of the turn after the downloads.
const RESERVE: Duration = Duration::from_millis(1_500);

/// Downloads the request's secure-image pictures until `deadline` (less a reserve for the turn);
/// an image that cannot be fetched in time is described (no data) instead of attached.
pub(super) async fn download_images(
    images: &Downloader,
    payload: &SkillPayload,
    deadline: tokio::time::Instant,
) -> Vec<MediaRef> {
    let mut media = Vec::new();
    for url in payload.secure_image_urls().into_iter().take(MAX_IMAGES) {
        let Ok(parsed) = reqwest::Url::parse(&url) else { continue };
        if !images.policy().allows(&parsed) {
            tracing::warn!(
                host = parsed.host_str().unwrap_or(""),
                "image host not in kakao.chatbot.imageHosts; not downloaded"
            );
            continue;
        }
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now()).saturating_sub(RESERVE);
        let mut item = MediaRef { kind: MediaKind::Image, ..MediaRef::default() };
        match tokio::time::timeout(budget, images.download(&url)).await {
            Ok(Ok(got)) => {
                let mime = got.content_type.unwrap_or_else(|| "image/jpeg".to_owned());
                if mime.starts_with("image/") {
                    item.size_bytes = Some(got.bytes.len() as u64);
                    item.mime_type = Some(mime);
                    item.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&got.bytes));
                } else {
                    tracing::warn!(mime, "a Kakao image URL served something else; not attached");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot download a Kakao image"),
            Err(_) => tracing::warn!("a Kakao image did not download in time"),
        }
        media.push(item);
    }
    media
}
