//! Brand Message (브랜드 메시지, FriendTalk's successor since 2025): free-form marketing to the
//! channel's friends (targeting `I`) or, for large channels, to marketing-consented users (`M`,
//! `N`) — reference/bizmsg.md §1, §2.3.
//!
//! Everything Kakao would refuse is refused here first: the text limits (1,300 characters, 99
//! line breaks), buttons (at most 5, names of at most 14 characters, web links), `M`/`N` without
//! the 080 opt-out number they require, an ad SMS fallback without it. A Brand Message is an ad,
//! so it is never delivered between 20:50 and 08:00 KST: a send in those hours is stored and
//! held until the window opens ([`AdWindow`]), and the caller is told when it goes.

use crate::config::{BizmsgConfig, SenderAccount};
use crate::phone::PhoneNumber;
use crate::send::{Prepared, Product, content_key};
use crate::template::{
    Bubble, FallbackKind, MAX_LMS_BYTES, RenderedBrandTemplate, RenderedFallback, carrier_bytes, check_link,
};
use crate::window::AdWindow;
use clawbridge_core::time::EpochMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest Brand Message text (TEXT bubble), in characters.
pub const MAX_TEXT_CHARS: usize = 1_300;
/// The most line breaks a TEXT bubble may have.
pub const MAX_LINE_BREAKS: usize = 99;
/// At most this many buttons on a TEXT bubble.
pub const MAX_BUTTONS: usize = 5;
/// The longest button name on a TEXT bubble.
pub const MAX_BUTTON_NAME_CHARS: usize = 14;

/// Who receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Targeting {
    /// The requested recipients who are friends of the channel.
    #[default]
    #[serde(rename = "I")]
    Friends,
    /// Marketing-consented users, friends or not.
    #[serde(rename = "M")]
    Consented,
    /// Marketing-consented users who are not friends.
    #[serde(rename = "N")]
    ConsentedNonFriends,
}

impl Targeting {
    /// `I`, `M`, `N`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Friends => "I",
            Self::Consented => "M",
            Self::ConsentedNonFriends => "N",
        }
    }
}

impl std::str::FromStr for Targeting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "I" => Ok(Self::Friends),
            "M" => Ok(Self::Consented),
            "N" => Ok(Self::ConsentedNonFriends),
            other => Err(format!(
                "--targeting {other:?}: use I (channel friends), M (marketing-consented users) or N (consented non-friends)"
            )),
        }
    }
}

/// A web-link button (`--button "name|url"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandButton {
    /// The label.
    pub name: String,
    /// The link.
    pub link_mo: String,
}

impl std::str::FromStr for BrandButton {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = s.split_once('|').ok_or_else(|| format!("--button {s:?}: write it as \"name|https://…\""))?;
        Ok(Self { name: name.trim().to_owned(), link_mo: url.trim().to_owned() })
    }
}

/// What a Brand Message says, stored with its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandContent {
    /// The text (a template's after substitution: what an SMS fallback repeats).
    pub text: String,
    /// TEXT, or IMAGE with [`image`](Self::image) (or a template's own image).
    #[serde(default)]
    pub bubble: Bubble,
    /// The image of an IMAGE bubble (for a template: the one that replaces the template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<BrandImage>,
    /// A template ("basic") send: the code and the values; `None` for free-form text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<RenderedBrandTemplate>,
    /// Its buttons.
    #[serde(default)]
    pub buttons: Vec<BrandButton>,
    /// Who receives it.
    pub targeting: Targeting,
    /// The 080 opt-out number (`unsubscribeNo`), digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_number: Option<String>,
    /// The ad SMS/LMS fallback, already in the required ad form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<RenderedFallback>,
}

/// A Brand Message's image as stored with its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandImage {
    /// The file's name or the URL, for messages.
    pub source: String,
    /// JPEG or PNG.
    pub format: ImageFormat,
    /// The SHA-256 of a file's bytes (hex): what the send's key is made of, so the same image
    /// is the same send whatever id the dealer gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// What the dealer knows it by: NHN's `imageUrl` and Solapi's `fileId` once uploaded (the
    /// upload happens once, before the row is stored), Infobip's the URL itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_ref: Option<String>,
}

/// The image formats Brand Messages take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
}

impl ImageFormat {
    /// The MIME type of an upload.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }
}

/// Where a Brand Message's image comes from (`--image FILE|URL`).
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Bytes to upload: a local file, or what a URL served (read by the caller).
    File {
        /// The file name or the URL it came from.
        name: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A web address the dealer fetches itself (Infobip).
    Url(String),
}

/// The largest image, in bytes (all three dealers: 5 MB).
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// The narrowest image Kakao takes, in pixels (NHN's image specification).
pub const MIN_IMAGE_WIDTH: u32 = 500;

/// A Brand Message as asked for.
#[derive(Debug, Clone)]
pub struct BrandRequest {
    /// The sender account.
    pub account: String,
    /// The recipient as written.
    pub to: String,
    /// The free-form text (empty with a template).
    pub text: String,
    /// A Brand Message template's code (`[[bizmsg.brandTemplates]]`) instead of text.
    pub template: Option<String>,
    /// The template's variables.
    pub variables: BTreeMap<String, String>,
    /// An image: an IMAGE bubble (or, with an IMAGE template, the image that replaces its own).
    pub image: Option<ImageSource>,
    /// The buttons.
    pub buttons: Vec<BrandButton>,
    /// Who receives it.
    pub targeting: Targeting,
    /// Also send the text as an ad LMS to those the Brand Message cannot reach.
    pub fallback: bool,
    /// Deliver at (held further if that is in the closed hours).
    pub at: Option<EpochMs>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// Who asked.
    pub origin: String,
}

/// A checked Brand Message and when it will go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBrand {
    /// The row to store.
    pub prepared: Prepared,
    /// `Some` when the send falls in the closed hours and is held until then.
    pub held_until: Option<EpochMs>,
    /// What the row's payload holds.
    pub content: BrandContent,
}

impl PreparedBrand {
    /// The image that must be uploaded to the dealer before the row is stored, if any.
    pub fn image_to_upload(&self) -> Option<&BrandImage> {
        self.content.image.as_ref().filter(|image| image.dealer_ref.is_none())
    }

    /// Records the dealer's id of the uploaded image in the row's payload. The send's key stays
    /// the one made of the image's bytes, so running the same send again is still one send.
    ///
    /// # Errors
    /// The payload cannot be written (not expected).
    pub fn set_image_ref(&mut self, dealer_ref: String) -> Result<(), String> {
        let Some(image) = self.content.image.as_mut() else { return Err("this send has no image".to_owned()) };
        image.dealer_ref = Some(dealer_ref);
        let payload = crate::send::Payload { message: crate::send::Message::Brand(self.content.clone()) };
        self.prepared.payload = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The ad form of an SMS/LMS fallback: `(광고)` first, the free opt-out line last
/// (reference/bizmsg.md §6: `(광고)내용[무료 수신거부]080XXXXXXX`).
pub fn ad_sms_text(text: &str, opt_out_number: &str) -> String {
    format!("(광고){text}[무료 수신거부]{opt_out_number}")
}

/// Checks a Brand Message request and prepares its row.
///
/// # Errors
/// The first problem, with the field and the fix.
pub fn prepare_brand(config: &BizmsgConfig, request: &BrandRequest, now: EpochMs) -> Result<PreparedBrand, String> {
    let account = config.account(&request.account)?;
    let to = PhoneNumber::parse(&request.to).map_err(|e| format!("--to: {e}"))?;
    let content = content(config, account, request)?;
    let wanted = request.at.unwrap_or(now).max(now);
    if request.at.is_some_and(|at| at < now - 60_000) {
        return Err("--at is in the past: give a time to come, or leave --at out to send now".to_owned());
    }
    if request.at.is_some_and(|at| at > now + 60 * clawbridge_core::time::DAY_MS) {
        return Err("--at is more than 60 days ahead: schedule it closer to the date".to_owned());
    }
    let held_until = AdWindow::default().next_open(wanted);
    let not_before = held_until.unwrap_or(wanted);
    let payload = crate::send::Payload { message: crate::send::Message::Brand(content.clone()) };
    let payload_json = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
    let idempotency_key = match &request.idempotency_key {
        Some(key) if !key.trim().is_empty() => format!("{}:{key}", request.origin),
        _ => content_key(&account.id, &to, &payload_json),
    };
    Ok(PreparedBrand {
        prepared: Prepared {
            idempotency_key,
            account: account.id.clone(),
            product: Product::Brand,
            dealer: config.dealer.kind(),
            recipient: to,
            // The column names AlimTalk templates; a Brand Message's template is in its payload.
            template_code: None,
            payload: payload_json,
            origin: request.origin.clone(),
            not_before,
        },
        held_until,
        content,
    })
}

fn content(config: &BizmsgConfig, account: &SenderAccount, request: &BrandRequest) -> Result<BrandContent, String> {
    let dealer = config.dealer.kind();
    let (text, template, bubble) = match &request.template {
        Some(code) => {
            if !request.text.trim().is_empty() {
                return Err("give --text or --template, not both".to_owned());
            }
            if !request.buttons.is_empty() {
                return Err(format!("--button is for --text: Brand Message template {code:?} sends its own buttons"));
            }
            let template = config.brand_templates.get(code)?;
            if dealer == crate::dealer::DealerKind::Solapi && template.template_id.is_none() {
                return Err(format!(
                    "Brand Message template {code:?} has no templateId: Solapi sends by its own template id; add \
                     templateId under [[bizmsg.brandTemplates]]"
                ));
            }
            if request.image.is_some() && template.chat_bubble_type != Bubble::Image {
                return Err(format!(
                    "--image: Brand Message template {code:?} is a {} bubble; an image replaces the image of an IMAGE \
                     template only",
                    template.chat_bubble_type.code()
                ));
            }
            let rendered = template.render(&request.variables)?;
            let text = crate::template::substitute(&template.text, &rendered.message_data);
            (text, Some(rendered), template.chat_bubble_type)
        }
        None => {
            if !request.variables.is_empty() {
                return Err("--var is for --template: free-form --text has no variables".to_owned());
            }
            let bubble = if request.image.is_some() { Bubble::Image } else { Bubble::Text };
            (checked_text(&request.text, bubble)?, None, bubble)
        }
    };
    if request.buttons.len() > MAX_BUTTONS {
        return Err(format!("{} buttons; a Brand Message holds {MAX_BUTTONS}", request.buttons.len()));
    }
    for (i, button) in request.buttons.iter().enumerate() {
        let name_chars = button.name.chars().count();
        if name_chars == 0 || name_chars > MAX_BUTTON_NAME_CHARS {
            return Err(format!("--button {}: the name takes 1 to {MAX_BUTTON_NAME_CHARS} characters", i + 1));
        }
        check_link("brand", &format!("--button {}", i + 1), &button.link_mo, crate::template::ButtonType::WebLink)
            .map_err(|e| e.to_string())?;
    }
    let image = request.image.as_ref().map(|source| image(dealer, source)).transpose()?;
    let opt_out = account.opt_out_number.as_ref().map(|n| n.digits().to_owned());
    let scope = if account.id == "default" {
        "bizmsg.optOutNumber".to_owned()
    } else {
        format!("bizmsg.accounts.{}.optOutNumber", account.id)
    };
    if request.targeting != Targeting::Friends {
        if opt_out.is_none() {
            return Err(format!(
                "targeting {} reaches users who are not (all) channel friends and needs the 080 opt-out number registered \
                 with Kakao: set {scope}",
                request.targeting.code()
            ));
        }
        if template.is_none() && dealer != crate::dealer::DealerKind::Solapi {
            return Err(format!(
                "targeting {} is template-only at {} (and needs 50,000 channel friends): send a template with \
                 --template, or free-form text with --targeting I",
                request.targeting.code(),
                dealer.id()
            ));
        }
    }
    let fallback = if request.fallback {
        let number = opt_out.as_deref().ok_or_else(|| {
            format!("an ad SMS/LMS fallback must carry the 080 opt-out number: set {scope}, or send without --fallback")
        })?;
        if account.sender.sms_from.is_none() {
            return Err(
                "an SMS/LMS fallback needs the caller id it is sent from: set BIZMSG_SMS_FROM (bizmsg.smsFrom)"
                    .to_owned(),
            );
        }
        let message = ad_sms_text(&text, number);
        let bytes = carrier_bytes(&message);
        if bytes > MAX_LMS_BYTES {
            return Err(format!("the ad LMS fallback is {bytes} bytes; an LMS holds {MAX_LMS_BYTES}: shorten --text"));
        }
        Some(RenderedFallback { kind: FallbackKind::Lms, message, title: None })
    } else {
        None
    };
    Ok(BrandContent {
        text,
        bubble,
        image,
        template,
        buttons: request.buttons.clone(),
        targeting: request.targeting,
        opt_out_number: opt_out,
        fallback,
    })
}

/// Free-form text within the bubble's limits.
fn checked_text(text: &str, bubble: Bubble) -> Result<String, String> {
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Err("--text is empty".to_owned());
    }
    let with = if bubble == Bubble::Image { " with an image" } else { "" };
    let chars = text.chars().count();
    if chars > bubble.max_chars() {
        return Err(format!("--text has {chars} characters; a Brand Message{with} holds {}", bubble.max_chars()));
    }
    let breaks = text.matches('\n').count();
    if breaks > bubble.max_line_breaks() {
        return Err(format!(
            "--text has {breaks} line breaks; a Brand Message{with} holds {}",
            bubble.max_line_breaks()
        ));
    }
    Ok(text.to_owned())
}

/// Checks an image for `dealer` and describes it for the row: a file is checked here (size,
/// format, proportions) and uploaded by the caller; a URL is only taken by Infobip, which
/// fetches it itself.
fn image(dealer: crate::dealer::DealerKind, source: &ImageSource) -> Result<BrandImage, String> {
    use crate::dealer::DealerKind;
    match source {
        ImageSource::File { name, bytes } => {
            if dealer == DealerKind::Infobip {
                return Err(format!(
                    "--image {name:?}: Infobip takes Brand Message images by URL (its API has no upload): put the \
                     image on a web server and give --image https://…"
                ));
            }
            let format = check_image(name, bytes)?;
            use sha2::{Digest, Sha256};
            Ok(BrandImage {
                source: name.clone(),
                format,
                digest: Some(hex::encode(Sha256::digest(bytes))),
                dealer_ref: None,
            })
        }
        ImageSource::Url(url) => {
            check_link("brand", "--image", url, crate::template::ButtonType::WebLink).map_err(|e| e.to_string())?;
            let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
            let file = path.rsplit('/').next().unwrap_or("");
            let format = match file.rsplit_once('.').map(|(_, ext)| ext) {
                Some("png") => ImageFormat::Png,
                Some("jpg" | "jpeg") | None => ImageFormat::Jpeg,
                Some(other) => {
                    return Err(format!("--image {url:?}: a .{other} file; Brand Message images are JPEG or PNG"));
                }
            };
            if dealer != DealerKind::Infobip {
                return Err(format!(
                    "--image {url:?}: {} needs the image uploaded; the command downloads a URL and uploads it",
                    dealer.id()
                ));
            }
            Ok(BrandImage { source: url.clone(), format, digest: None, dealer_ref: Some(url.clone()) })
        }
    }
}

/// Checks an image file the way the dealers do (NHN's specification, the strictest): JPEG or
/// PNG by its bytes, at most 5 MB, and — read from the file's header, no decoding — at least
/// 500 pixels wide with a height between half and four thirds of the width (2:1 to 3:4).
///
/// # Errors
/// What is wrong, naming the file.
pub fn check_image(name: &str, bytes: &[u8]) -> Result<ImageFormat, String> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "--image {name:?} is {:.1} MB; Brand Message images take at most 5 MB",
            bytes.len() as f64 / (1024.0 * 1024.0)
        ));
    }
    let (format, size) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        (ImageFormat::Png, png_size(bytes))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        (ImageFormat::Jpeg, jpeg_size(bytes))
    } else {
        return Err(format!("--image {name:?} is not a JPEG or PNG file (the formats Brand Messages take)"));
    };
    let Some((width, height)) = size else {
        return Err(format!("--image {name:?}: its size cannot be read; is the file complete?"));
    };
    if width < MIN_IMAGE_WIDTH {
        return Err(format!("--image {name:?} is {width} pixels wide; Kakao takes at least {MIN_IMAGE_WIDTH}"));
    }
    // 0.5 ≤ height / width ≤ 4/3, in integers.
    if u64::from(height) * 2 < u64::from(width) || u64::from(height) * 3 > u64::from(width) * 4 {
        return Err(format!(
            "--image {name:?} is {width}×{height}; the height must be between half and 4/3 of the width (2:1 to 3:4, \
             e.g. 800×400 or 800×600)"
        ));
    }
    Ok(format)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24)?;
    if &ihdr[..4] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(ihdr[4..8].try_into().ok()?);
    let height = u32::from_be_bytes(ihdr[8..12].try_into().ok()?);
    Some((width, height))
}

/// Width and height from a JPEG's start-of-frame segment, walking the segments before it.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            // Fill bytes.
            0xFF => at += 1,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => at += 2,
            // Start of scan: no frame header before it.
            0xDA | 0xD9 => return None,
            _ => {
                let length = usize::from(u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
                // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC).
                if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    let height = u16::from_be_bytes([*bytes.get(at + 5)?, *bytes.get(at + 6)?]);
                    let width = u16::from_be_bytes([*bytes.get(at + 7)?, *bytes.get(at + 8)?]);
                    return Some((u32::from(width), u32::from(height)));
                }
                at += 2 + length;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::kst_label;
    use std::collections::BTreeMap;

    fn config(dealer: &str, opt_out: bool) -> BizmsgConfig {
        let mut vars: BTreeMap<&str, &str> = [
            ("BIZMSG_DEALER", dealer),
            ("BIZMSG_SENDER_KEY", "SK"),
            ("BIZMSG_SMS_FROM", "02-1234-5678"),
            ("NHN_BIZMSG_APP_KEY", "A"),
            ("NHN_BIZMSG_SECRET_KEY", "S"),
            ("SOLAPI_API_KEY", "K"),
            ("SOLAPI_API_SECRET", "S"),
            ("INFOBIP_API_KEY", "K"),
            ("INFOBIP_BASE_URL", "https://x.api.infobip.com"),
        ]
        .into();
        let _ = &mut vars;
        let file: toml::Table =
            if opt_out { toml::from_str("optOutNumber = \"080-123-4567\"").unwrap() } else { toml::Table::new() };
        BizmsgConfig::load(Some(&file), &|name| vars.get(name).map(|v| (*v).to_owned())).unwrap().unwrap()
    }

    fn request(text: &str) -> BrandRequest {
        BrandRequest {
            account: "default".into(),
            to: "010-1234-5678".into(),
            text: text.into(),
            template: None,
            variables: BTreeMap::new(),
            image: None,
            buttons: vec!["쇼핑하기|https://shop.example/sale".parse().unwrap()],
            targeting: Targeting::Friends,
            fallback: false,
            at: None,
            idempotency_key: None,
            origin: "cli".into(),
        }
    }

    fn kst(text: &str) -> EpochMs {
        let civil: jiff::civil::DateTime = text.parse().unwrap();
        clawbridge_core::time::KST.to_timestamp(civil).unwrap().as_millisecond()
    }

    #[test]
    fn a_send_in_the_closed_hours_is_held_until_eight() {
        let night = kst("2026-12-24T22:10:00");
        let held = prepare_brand(&config("nhn", false), &request("겨울 세일"), night).unwrap();
        assert_eq!(held.held_until.map(kst_label).as_deref(), Some("2026-12-25 08:00 KST"));
        assert_eq!(held.prepared.not_before, kst("2026-12-25T08:00:00"));
        let day = prepare_brand(&config("nhn", false), &request("겨울 세일"), kst("2026-12-24T10:00:00")).unwrap();
        assert_eq!((day.held_until, day.prepared.product), (None, Product::Brand));
        // A schedule in the closed hours moves to the opening too.
        let at = BrandRequest { at: Some(kst("2026-12-26T06:00:00")), ..request("세일") };
        assert_eq!(
            prepare_brand(&config("nhn", false), &at, kst("2026-12-24T10:00:00")).unwrap().held_until,
            Some(kst("2026-12-26T08:00:00"))
        );
    }

    #[test]
    fn an_ad_fallback_carries_the_ad_form_and_needs_the_080_number() {
        let with_fallback = BrandRequest { fallback: true, ..request("겨울 세일 20%") };
        let e = prepare_brand(&config("nhn", false), &with_fallback, kst("2026-12-24T10:00:00")).unwrap_err();
        assert!(e.contains("080 opt-out number") && e.contains("bizmsg.optOutNumber"), "{e}");
        let ok = prepare_brand(&config("nhn", true), &with_fallback, kst("2026-12-24T10:00:00")).unwrap();
        let payload: crate::send::Payload = serde_json::from_str(&ok.prepared.payload).unwrap();
        let crate::send::Message::Brand(content) = payload.message else { panic!("brand") };
        assert_eq!(content.fallback.unwrap().message, "(광고)겨울 세일 20%[무료 수신거부]0801234567");
    }

    #[test]
    fn what_kakao_would_refuse_is_refused_here() {
        let at = kst("2026-12-24T10:00:00");
        let cases: [(BrandRequest, &str); 6] = [
            (request(""), "--text is empty"),
            (request(&"가".repeat(1_301)), "1301 characters"),
            (request(&format!("{}a", "a\n".repeat(100))), "100 line breaks"),
            (
                BrandRequest {
                    buttons: vec!["이름이 너무 길어서 안 되는 버튼입니다|https://a.example".parse().unwrap()],
                    ..request("x")
                },
                "--button 1",
            ),
            (
                BrandRequest { buttons: vec!["보기|ftp://a.example".parse().unwrap()], ..request("x") },
                "not a web address",
            ),
            (BrandRequest { targeting: Targeting::Consented, ..request("x") }, "080 opt-out number"),
        ];
        for (req, needle) in cases {
            let e = prepare_brand(&config("nhn", false), &req, at).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let m = BrandRequest { targeting: Targeting::Consented, ..request("x") };
        assert!(prepare_brand(&config("nhn", true), &m, at).unwrap_err().contains("template-only at nhn"));
        assert!(prepare_brand(&config("solapi", true), &m, at).is_ok());
        assert!("name-only".parse::<BrandButton>().is_err());
        assert!("X".parse::<Targeting>().unwrap_err().contains("I (channel friends)"));
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
        bytes
    }

    fn jpeg(width: u16, height: u16) -> Vec<u8> {
        // SOI, an APP0 segment to walk over, then SOF0 with the size.
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, 0xC0, 0x00, 0x0B, 0x08];
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        bytes
    }

    #[test]
    fn images_are_checked_from_their_header() {
        assert_eq!(check_image("a.png", &png(800, 400)).unwrap(), ImageFormat::Png);
        assert_eq!(check_image("a.jpg", &jpeg(800, 600)).unwrap(), ImageFormat::Jpeg);
        assert!(check_image("a.png", &png(300, 300)).unwrap_err().contains("300 pixels wide"));
        assert!(check_image("a.png", &png(800, 300)).unwrap_err().contains("800×300"), "wider than 2:1");
        assert!(check_image("a.jpg", &jpeg(600, 900)).unwrap_err().contains("600×900"), "taller than 3:4");
        assert!(check_image("a.gif", b"GIF89a....").unwrap_err().contains("not a JPEG or PNG"));
        let mut big = png(800, 400);
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        assert!(check_image("big.png", &big).unwrap_err().contains("at most 5 MB"));
        assert!(check_image("cut.jpg", &[0xFF, 0xD8, 0xFF, 0xE0]).unwrap_err().contains("cannot be read"));
    }

    #[test]
    fn an_image_bubble_holds_400_characters_and_is_keyed_by_its_bytes() {
        let at = kst("2026-12-24T10:00:00");
        let with_image = |text: &str, bytes: Vec<u8>| BrandRequest {
            image: Some(ImageSource::File { name: "sale.png".into(), bytes }),
            ..request(text)
        };
        let e = prepare_brand(&config("nhn", false), &with_image(&"가".repeat(401), png(800, 400)), at).unwrap_err();
        assert!(e.contains("with an image holds 400"), "{e}");
        let mut prepared = prepare_brand(&config("nhn", false), &with_image("세일", png(800, 400)), at).unwrap();
        assert_eq!(prepared.content.bubble, Bubble::Image);
        let key = prepared.prepared.idempotency_key.clone();
        assert!(prepared.image_to_upload().is_some());
        prepared.set_image_ref("https://cdn.example/1.png".into()).unwrap();
        assert!(prepared.image_to_upload().is_none());
        assert!(prepared.prepared.payload.contains("https://cdn.example/1.png"));
        assert_eq!(prepared.prepared.idempotency_key, key, "the key is made of the bytes, not the dealer's id");
        let other = prepare_brand(&config("nhn", false), &with_image("세일", png(800, 401)), at).unwrap();
        assert_ne!(other.prepared.idempotency_key, key);
        // Infobip takes URLs only; the others get files.
        let e = prepare_brand(&config("infobip", false), &with_image("세일", png(800, 400)), at).unwrap_err();
        assert!(e.contains("Infobip takes Brand Message images by URL"), "{e}");
        let url = BrandRequest { image: Some(ImageSource::Url("https://cdn.example/a.webp".into())), ..request("x") };
        assert!(prepare_brand(&config("infobip", false), &url, at).unwrap_err().contains(".webp"));
        let url = BrandRequest { image: Some(ImageSource::Url("https://cdn.example/a.png".into())), ..request("x") };
        let prepared = prepare_brand(&config("infobip", false), &url, at).unwrap();
        assert_eq!(prepared.content.image.unwrap().dealer_ref.as_deref(), Some("https://cdn.example/a.png"));
    }

    fn templated(dealer: &str) -> BizmsgConfig {
        let vars: BTreeMap<&str, &str> = [
            ("BIZMSG_DEALER", dealer),
            ("BIZMSG_SENDER_KEY", "SK"),
            ("NHN_BIZMSG_APP_KEY", "A"),
            ("NHN_BIZMSG_SECRET_KEY", "S"),
            ("SOLAPI_API_KEY", "K"),
            ("SOLAPI_API_SECRET", "S"),
        ]
        .into();
        let file: toml::Table = toml::from_str(
            r##"
            optOutNumber = "080-123-4567"
            [[brandTemplates]]
            templateCode = "WINTER"
            text = "#{name}님, 겨울 세일"
            buttons = [{ type = "WL", name = "보기", linkMo = "https://shop.example/#{code}" }]
            "##,
        )
        .unwrap();
        BizmsgConfig::load(Some(&file), &|name| vars.get(name).map(|v| (*v).to_owned())).unwrap().unwrap()
    }

    #[test]
    fn a_template_send_is_checked_against_its_declaration() {
        let at = kst("2026-12-24T10:00:00");
        let send = |vars: &[(&str, &str)]| BrandRequest {
            template: Some("WINTER".into()),
            variables: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            buttons: vec![],
            ..request("")
        };
        let ok = prepare_brand(&templated("nhn"), &send(&[("name", "홍길동"), ("code", "W1")]), at).unwrap();
        let template = ok.content.template.clone().unwrap();
        assert_eq!(template.message_data, [("name".to_owned(), "홍길동".to_owned())].into());
        assert_eq!(template.button_data, [("code".to_owned(), "W1".to_owned())].into());
        assert_eq!(ok.content.text, "홍길동님, 겨울 세일");
        let cases: [(BrandRequest, &str); 5] = [
            (send(&[("name", "a")]), "Brand Message template \"WINTER\" needs the variable \"code\""),
            (send(&[("name", "a"), ("code", "1"), ("x", "2")]), "has no variable \"x\""),
            (send(&[("name", "a"), ("code", "1 2")]), "buttons[0].linkMo"),
            (BrandRequest { template: Some("SUMMER".into()), ..send(&[]) }, "no Brand Message template \"SUMMER\""),
            (
                BrandRequest {
                    image: Some(ImageSource::File { name: "a.png".into(), bytes: png(800, 400) }),
                    ..send(&[("name", "a"), ("code", "1")])
                },
                "TEXT bubble",
            ),
        ];
        for (req, needle) in cases {
            let e = prepare_brand(&templated("nhn"), &req, at).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // M/N is allowed with a template; Solapi needs its template id.
        let m = BrandRequest { targeting: Targeting::Consented, ..send(&[("name", "a"), ("code", "1")]) };
        assert!(prepare_brand(&templated("nhn"), &m, at).is_ok());
        assert!(prepare_brand(&templated("solapi"), &m, at).unwrap_err().contains("templateId"));
    }
}
