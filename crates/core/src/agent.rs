//! What the agent is given for one inbound message (pure): the text of the turn and the images
//! it receives as attachments. The pipeline wraps it into the gateway's `agent` request.

use crate::message::{InboundMessage, MediaKind, MediaRef};
use crate::text::neutralize_commands;

/// An image passed to the agent inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInput {
    /// MIME type (`image/jpeg` when the platform did not say).
    pub mime_type: String,
    /// Original file name, if any.
    pub file_name: Option<String>,
    /// The bytes, base64.
    pub content_base64: String,
    /// Decoded size in bytes.
    pub size_bytes: u64,
}

/// The agent's view of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInput {
    /// The user's text with gateway commands neutralised, plus a line per medium the agent cannot
    /// receive; never empty (the gateway requires a character).
    pub text: String,
    /// Images within the gateway's attachment limit.
    pub images: Vec<ImageInput>,
}

/// Builds the agent's input: images up to `max_image_bytes` become attachments, every other
/// medium (and a larger image) a one-line description in the text.
pub fn agent_input(msg: &InboundMessage, max_image_bytes: u64) -> AgentInput {
    let mut text = neutralize_commands(msg.text.trim());
    let mut images = Vec::new();
    for media in &msg.media {
        let size = media.data_base64.as_ref().map_or(0, |d| (d.len() as u64) / 4 * 3);
        match (&media.data_base64, media.kind) {
            (Some(data), MediaKind::Image) if size <= max_image_bytes => images.push(ImageInput {
                mime_type: media.mime_type.clone().unwrap_or_else(|| "image/jpeg".to_owned()),
                file_name: media.file_name.clone(),
                content_base64: data.clone(),
                size_bytes: size,
            }),
            _ => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&describe_media(media));
            }
        }
    }
    if text.is_empty() {
        text = if images.is_empty() { "(empty message)".to_owned() } else { "(image)".to_owned() };
    }
    AgentInput { text, images }
}

/// A one-line description of media the agent cannot receive as an attachment.
pub fn describe_media(media: &MediaRef) -> String {
    let kind = match media.kind {
        MediaKind::Image => "an image",
        MediaKind::Video => "a video",
        MediaKind::Audio => "an audio message",
        MediaKind::Document => "a document",
        MediaKind::Sticker => "a sticker",
    };
    let mut line = format!("[the user sent {kind}");
    if let Some(name) = &media.file_name {
        line.push_str(&format!(" named {name:?}"));
    }
    let details: Vec<String> =
        [media.mime_type.clone(), media.size_bytes.map(|size| format!("{} KB", size.div_ceil(1024)))]
            .into_iter()
            .flatten()
            .collect();
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    if let Some(caption) = &media.caption {
        line.push_str(&format!(" with caption {caption:?}"));
    }
    line.push(']');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_descriptions_are_readable() {
        let doc = MediaRef {
            kind: MediaKind::Document,
            file_name: Some("invoice.pdf".to_owned()),
            mime_type: Some("application/pdf".to_owned()),
            size_bytes: Some(2048),
            ..MediaRef::default()
        };
        assert_eq!(describe_media(&doc), "[the user sent a document named \"invoice.pdf\" (application/pdf, 2 KB)]");
        let voice = MediaRef { kind: MediaKind::Audio, ..MediaRef::default() };
        assert_eq!(describe_media(&voice), "[the user sent an audio message]");
    }

    #[test]
    fn small_images_are_attached_and_the_rest_described() {
        let mut msg = InboundMessage::text("whatsapp", "default", "1555", "m1", "  look  ");
        let image =
            |data: &str| MediaRef { kind: MediaKind::Image, data_base64: Some(data.to_owned()), ..MediaRef::default() };
        msg.media = vec![image("AAAA"), image(&"A".repeat(16))];
        let input = agent_input(&msg, 6);
        assert_eq!(input.images.len(), 1);
        assert_eq!(input.images[0].mime_type, "image/jpeg");
        assert_eq!(input.images[0].size_bytes, 3);
        assert_eq!(input.text, "look\n[the user sent an image]");

        let mut only_image = InboundMessage::text("whatsapp", "default", "1555", "m2", "");
        only_image.media = vec![image("AAAA")];
        assert_eq!(agent_input(&only_image, 6).text, "(image)");
        assert_eq!(agent_input(&InboundMessage::text("kakao", "default", "u", "m3", " "), 6).text, "(empty message)");
    }
}
