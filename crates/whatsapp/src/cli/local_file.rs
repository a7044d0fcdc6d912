//! Which local files `whatsapp send` uploads: WhatsApp's media types by extension and its size
//! caps per kind (reference/kapso-whatsapp.md §4), checked before anything is read or sent.

use clawbridge_core::MediaKind;
use std::path::Path;

/// A local media file, checked against WhatsApp's type and size limits (reference §4).
pub(super) struct LocalFile {
    pub(super) bytes: Vec<u8>,
    pub(super) mime: &'static str,
    pub(super) name: String,
}

impl LocalFile {
    /// Reads `path` as `kind`, or says which rule it breaks.
    pub(super) fn read(kind: MediaKind, path: &Path) -> Result<Self, String> {
        let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let (mime, file_kind) = mime_for_extension(&extension).ok_or_else(|| {
            format!("{}: unknown file type {extension:?}; WhatsApp takes {}", path.display(), accepted_types(kind))
        })?;
        if file_kind != kind {
            return Err(format!(
                "{}: a {mime} file cannot be sent as {}; WhatsApp takes {}",
                path.display(),
                kind_name(kind),
                accepted_types(kind)
            ));
        }
        let limit = max_bytes(kind);
        let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        if size > limit {
            return Err(format!(
                "{}: {size} bytes is more than WhatsApp's {} MB limit for {}",
                path.display(),
                limit / 1_000_000,
                kind_name(kind)
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.file_name().map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(Self { bytes, mime, name })
    }
}

fn mime_for_extension(extension: &str) -> Option<(&'static str, MediaKind)> {
    use MediaKind::{Audio, Document, Image, Video};
    Some(match extension {
        "jpg" | "jpeg" => ("image/jpeg", Image),
        "png" => ("image/png", Image),
        "mp4" => ("video/mp4", Video),
        "3gp" => ("video/3gpp", Video),
        "aac" => ("audio/aac", Audio),
        "amr" => ("audio/amr", Audio),
        "mp3" => ("audio/mpeg", Audio),
        "m4a" => ("audio/mp4", Audio),
        "ogg" | "opus" => ("audio/ogg", Audio),
        "pdf" => ("application/pdf", Document),
        "txt" => ("text/plain", Document),
        "doc" => ("application/msword", Document),
        "docx" => ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", Document),
        "xls" => ("application/vnd.ms-excel", Document),
        "xlsx" => ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Document),
        "ppt" => ("application/vnd.ms-powerpoint", Document),
        "pptx" => ("application/vnd.openxmlformats-officedocument.presentationml.presentation", Document),
        _ => return None,
    })
}

fn kind_name(kind: MediaKind) -> &'static str {
    crate::client::media_kind_name(kind)
}

fn accepted_types(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => ".jpg/.jpeg/.png for --image",
        MediaKind::Video => ".mp4/.3gp for --video",
        MediaKind::Audio => ".aac/.amr/.mp3/.m4a/.ogg/.opus for --audio",
        MediaKind::Document => ".pdf/.txt/.doc(x)/.xls(x)/.ppt(x) for --document",
        MediaKind::Sticker => ".webp for stickers",
    }
}

fn max_bytes(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Image => 5_000_000,
        MediaKind::Video | MediaKind::Audio => 16_000_000,
        MediaKind::Document => 100_000_000,
        MediaKind::Sticker => 500_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_are_checked_against_whatsapp_limits() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("report.PDF");
        std::fs::write(&pdf, b"%PDF-1.4").unwrap();
        let file = LocalFile::read(MediaKind::Document, &pdf).unwrap();
        assert_eq!((file.mime, file.name.as_str(), file.bytes.len()), ("application/pdf", "report.PDF", 8));
        let err = LocalFile::read(MediaKind::Image, &pdf).err().unwrap();
        assert!(err.contains("cannot be sent as image"), "{err}");
        let big = dir.path().join("big.png");
        std::fs::File::create(&big).unwrap().set_len(5_000_001).unwrap();
        assert!(LocalFile::read(MediaKind::Image, &big).err().unwrap().contains("5 MB"));
        assert!(LocalFile::read(MediaKind::Image, &dir.path().join("x.gif")).err().unwrap().contains(".png"));
    }
}
