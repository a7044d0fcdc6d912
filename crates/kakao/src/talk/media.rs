//! Images for templates: the content type comes from the bytes (a file name can lie), and the size
//! cap (`mediaMaxMb`) is checked before anything is uploaded (reference/kakao.md §3.1: JPG, PNG,
//! GIF; -602 too large, -911 bad format).

use super::error::TalkError;

/// The content type of a JPEG, PNG or GIF image from its first bytes; `None` for anything else.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// Checks an image before upload and returns its content type.
///
/// # Errors
/// [`TalkError::Invalid`] naming the problem (empty, too large with the cap and the setting, or
/// not JPEG/PNG/GIF).
pub fn check_image(bytes: &[u8], max_bytes: u64) -> Result<&'static str, TalkError> {
    if bytes.is_empty() {
        return Err(TalkError::Invalid("the image is empty".to_owned()));
    }
    let len = bytes.len() as u64;
    if len > max_bytes {
        return Err(TalkError::Invalid(format!(
            "the image has {len} bytes, more than the cap of {max_bytes} bytes ({} MB): shrink it, or raise kakao.mediaMaxMb (KAKAO_MEDIA_MAX_MB)",
            max_bytes / (1024 * 1024)
        )));
    }
    sniff_image(bytes).ok_or_else(|| {
        TalkError::Invalid("the file is not a JPEG, PNG or GIF image (Kakao accepts only those)".to_owned())
    })
}

/// The file extension that matches a sniffed content type.
pub fn extension_for(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/gif" => "gif",
        _ => "jpg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_comes_from_the_bytes() {
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image(b"<svg xmlns="), None);
        assert_eq!(extension_for("image/gif"), "gif");
    }

    #[test]
    fn size_cap_and_format_are_checked() {
        let png = b"\x89PNG\r\n\x1a\n0123456789";
        assert_eq!(check_image(png, 100).unwrap(), "image/png");
        let err = check_image(png, 10).unwrap_err().to_string();
        assert!(err.contains("mediaMaxMb"), "{err}");
        assert!(check_image(b"hello", 100).unwrap_err().to_string().contains("JPEG"));
        assert!(check_image(b"", 100).is_err());
    }
}
