//! SkillResponse 2.0 (reference/kakao.md §5.2): the JSON a skill answers with, and the limits
//! Kakao enforces. Builders truncate to the limits; [`SkillResponse::validate`] checks them all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Outputs per response.
pub const MAX_OUTPUTS: usize = 3;
/// Quick replies per response.
pub const MAX_QUICK_REPLIES: usize = 10;
/// Characters of one `simpleText`.
pub const MAX_SIMPLE_TEXT: usize = 1000;
/// Characters of a `simpleImage` alt text.
pub const MAX_ALT_TEXT: usize = 50;
/// Characters of a card title.
pub const MAX_CARD_TITLE: usize = 50;
/// Characters of a `textCard` description.
pub const MAX_TEXT_CARD_DESCRIPTION: usize = 400;
/// Characters of a `basicCard` description.
pub const MAX_BASIC_CARD_DESCRIPTION: usize = 230;
/// Characters of a button or quick-reply label.
pub const MAX_LABEL: usize = 14;
/// Characters of a label when two buttons sit side by side.
pub const MAX_LABEL_HORIZONTAL: usize = 8;
/// Buttons of a card laid out vertically.
pub const MAX_BUTTONS_VERTICAL: usize = 3;
/// Buttons of a card laid out horizontally.
pub const MAX_BUTTONS_HORIZONTAL: usize = 2;
/// The total response size community reports name (bytes).
pub const MAX_RESPONSE_BYTES: usize = 30_720;

/// A SkillResponse (`version` 2.0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillResponse {
    /// Always `"2.0"`.
    pub version: String,
    /// What to show; absent in a `useCallback` answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// `true`: the real answer follows through the callback URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_callback: Option<bool>,
    /// Free data (`data.text` is the waiting text of a `useCallback` answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `template`: outputs and quick replies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// 1–3 components.
    pub outputs: Vec<Output>,
    /// ≤ 10 quick replies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<QuickReply>,
}

/// One output component (the ones this bridge renders).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Output {
    /// Plain text.
    SimpleText {
        /// ≤ 1000 characters.
        text: String,
    },
    /// A picture.
    #[serde(rename_all = "camelCase")]
    SimpleImage {
        /// The image URL.
        image_url: String,
        /// ≤ 50 characters.
        alt_text: String,
    },
    /// A card with text and buttons.
    #[serde(rename_all = "camelCase")]
    TextCard {
        /// ≤ 50 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// ≤ 400 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// ≤ 3 (vertical).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<Button>,
        /// `vertical` or `horizontal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        button_layout: Option<String>,
    },
    /// A card with a thumbnail.
    #[serde(rename_all = "camelCase")]
    BasicCard {
        /// ≤ 50 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// ≤ 230 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Required.
        thumbnail: Thumbnail,
        /// ≤ 3 (vertical).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<Button>,
        /// `vertical` or `horizontal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        button_layout: Option<String>,
    },
}

/// A card thumbnail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thumbnail {
    /// The image URL.
    pub image_url: String,
    /// ≤ 50 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
}

/// A card button.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Button {
    /// ≤ 14 characters (≤ 8 with two side by side).
    pub label: String,
    /// `webLink`, `message`, `phone`, `block`, `share`, `operator`.
    pub action: String,
    /// For `webLink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link_url: Option<String>,
    /// For `message` and `block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_text: Option<String>,
    /// For `phone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// For `block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<String>,
}

/// A quick reply under the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuickReply {
    /// ≤ 14 characters.
    pub label: String,
    /// `message` or `block`.
    pub action: String,
    /// What the user "sends" by tapping it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_text: Option<String>,
    /// Required for `block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<String>,
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Output {
    /// A `simpleText`, cut to 1000 characters.
    pub fn text(text: &str) -> Self {
        Self::SimpleText { text: truncate_chars(text, MAX_SIMPLE_TEXT) }
    }

    /// A `simpleImage` with its alt text cut to 50 characters.
    pub fn image(url: &str, alt: &str) -> Self {
        let alt = if alt.trim().is_empty() { "이미지" } else { alt.trim() };
        Self::SimpleImage { image_url: url.to_owned(), alt_text: truncate_chars(alt, MAX_ALT_TEXT) }
    }

    /// A `textCard` of web-link buttons (vertical, at most 3).
    pub fn links_card(description: &str, links: &[(String, String)]) -> Self {
        let buttons =
            links.iter().take(MAX_BUTTONS_VERTICAL).map(|(label, url)| Button::web_link(label, url)).collect();
        Self::TextCard {
            title: None,
            description: Some(truncate_chars(description, MAX_TEXT_CARD_DESCRIPTION)),
            buttons,
            button_layout: Some("vertical".to_owned()),
        }
    }
}

impl Output {
    /// A `basicCard`: a picture (thumbnail) with web-link buttons (vertical, at most 3).
    pub fn picture_card(image_url: &str, alt: &str, links: &[(String, String)]) -> Self {
        let alt = alt.trim();
        let buttons =
            links.iter().take(MAX_BUTTONS_VERTICAL).map(|(label, url)| Button::web_link(label, url)).collect();
        Self::BasicCard {
            title: None,
            description: (!alt.is_empty()).then(|| truncate_chars(alt, MAX_BASIC_CARD_DESCRIPTION)),
            thumbnail: Thumbnail {
                image_url: image_url.to_owned(),
                alt_text: Some(truncate_chars(if alt.is_empty() { "이미지" } else { alt }, MAX_ALT_TEXT)),
            },
            buttons,
            button_layout: Some("vertical".to_owned()),
        }
    }
}

impl Button {
    /// A `webLink` button with its label cut to 14 characters.
    pub fn web_link(label: &str, url: &str) -> Self {
        Self {
            label: truncate_chars(label.trim(), MAX_LABEL),
            action: "webLink".to_owned(),
            web_link_url: Some(url.to_owned()),
            message_text: None,
            phone_number: None,
            block_id: None,
        }
    }
}

impl QuickReply {
    /// A `message` quick reply that sends `text` (label cut to 14 characters).
    pub fn message(label: &str, text: &str) -> Self {
        Self {
            label: truncate_chars(label, MAX_LABEL),
            action: "message".to_owned(),
            message_text: Some(text.to_owned()),
            block_id: None,
        }
    }
}

impl SkillResponse {
    /// A response showing `outputs` (at most 3 kept) with `quick_replies` (at most 10 kept).
    pub fn new(mut outputs: Vec<Output>, mut quick_replies: Vec<QuickReply>) -> Self {
        outputs.truncate(MAX_OUTPUTS);
        quick_replies.truncate(MAX_QUICK_REPLIES);
        if outputs.is_empty() {
            outputs.push(Output::text("…"));
        }
        Self {
            version: "2.0".to_owned(),
            template: Some(Template { outputs, quick_replies }),
            use_callback: None,
            data: None,
        }
    }

    /// One `simpleText`.
    pub fn text(text: &str) -> Self {
        Self::new(vec![Output::text(text)], Vec::new())
    }

    /// The immediate answer of a callback turn: `{"version":"2.0","useCallback":true,"data":{"text":…}}`.
    pub fn use_callback(waiting_text: &str) -> Self {
        Self {
            version: "2.0".to_owned(),
            template: None,
            use_callback: Some(true),
            data: Some(serde_json::json!({"text": waiting_text})),
        }
    }

    /// The outputs (empty for a `useCallback` answer).
    pub fn outputs(&self) -> &[Output] {
        self.template.as_ref().map_or(&[], |t| &t.outputs)
    }

    /// Every text shown, joined by newlines (tests, logs at debug).
    pub fn plain_text(&self) -> String {
        self.outputs()
            .iter()
            .filter_map(|o| match o {
                Output::SimpleText { text } => Some(text.clone()),
                Output::TextCard { description, .. } | Output::BasicCard { description, .. } => description.clone(),
                Output::SimpleImage { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks every §5.2 limit this bridge can produce.
    ///
    /// # Errors
    /// The first limit broken, described.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != "2.0" {
            return Err(format!("version is {:?}, must be \"2.0\"", self.version));
        }
        let bytes = serde_json::to_vec(self).map_err(|e| e.to_string())?.len();
        if bytes > MAX_RESPONSE_BYTES {
            return Err(format!("response is {bytes} bytes, more than {MAX_RESPONSE_BYTES}"));
        }
        if self.use_callback == Some(true) {
            return Ok(());
        }
        let template = self.template.as_ref().ok_or("template is missing")?;
        let n = template.outputs.len();
        if !(1..=MAX_OUTPUTS).contains(&n) {
            return Err(format!("{n} outputs; 1 to {MAX_OUTPUTS} allowed"));
        }
        if template.quick_replies.len() > MAX_QUICK_REPLIES {
            return Err(format!("{} quick replies; at most {MAX_QUICK_REPLIES}", template.quick_replies.len()));
        }
        for q in &template.quick_replies {
            check_len("quickReply.label", &q.label, MAX_LABEL)?;
            if q.label.trim().is_empty() {
                return Err("empty quickReply label".to_owned());
            }
            match q.action.as_str() {
                "message" if q.message_text.is_some() => {}
                "block" if q.block_id.is_some() => {}
                other => return Err(format!("quickReply action {other:?} without its field")),
            }
        }
        for output in &template.outputs {
            match output {
                Output::SimpleText { text } => {
                    check_len("simpleText.text", text, MAX_SIMPLE_TEXT)?;
                    if text.trim().is_empty() {
                        return Err("empty simpleText".to_owned());
                    }
                }
                Output::SimpleImage { image_url, alt_text } => {
                    check_url(image_url)?;
                    check_len("simpleImage.altText", alt_text, MAX_ALT_TEXT)?;
                }
                Output::TextCard { title, description, buttons, button_layout } => {
                    if title.is_none() && description.is_none() {
                        return Err("textCard needs a title or a description".to_owned());
                    }
                    check_opt("textCard.title", title, MAX_CARD_TITLE)?;
                    check_opt("textCard.description", description, MAX_TEXT_CARD_DESCRIPTION)?;
                    check_buttons(buttons, button_layout.as_deref())?;
                }
                Output::BasicCard { title, description, thumbnail, buttons, button_layout } => {
                    check_opt("basicCard.title", title, MAX_CARD_TITLE)?;
                    check_opt("basicCard.description", description, MAX_BASIC_CARD_DESCRIPTION)?;
                    check_url(&thumbnail.image_url)?;
                    check_opt("basicCard.thumbnail.altText", &thumbnail.alt_text, MAX_ALT_TEXT)?;
                    check_buttons(buttons, button_layout.as_deref())?;
                }
            }
        }
        Ok(())
    }
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if n > max {
        return Err(format!("{what} has {n} characters, more than {max}"));
    }
    Ok(())
}

fn check_opt(what: &str, text: &Option<String>, max: usize) -> Result<(), String> {
    text.as_deref().map_or(Ok(()), |t| check_len(what, t, max))
}

fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("{url:?} is not an http(s) URL"))
    }
}

fn check_buttons(buttons: &[Button], layout: Option<&str>) -> Result<(), String> {
    let horizontal = layout == Some("horizontal");
    let (max_buttons, max_label) =
        if horizontal { (MAX_BUTTONS_HORIZONTAL, MAX_LABEL_HORIZONTAL) } else { (MAX_BUTTONS_VERTICAL, MAX_LABEL) };
    if buttons.len() > max_buttons {
        return Err(format!("{} buttons; at most {max_buttons}", buttons.len()));
    }
    for b in buttons {
        let limit = if horizontal && buttons.len() == 2 { max_label } else { MAX_LABEL };
        check_len("button.label", &b.label, limit)?;
        match b.action.as_str() {
            "webLink" => check_url(b.web_link_url.as_deref().unwrap_or(""))?,
            "message" if b.message_text.is_some() => {}
            "phone" if b.phone_number.is_some() => {}
            "block" if b.block_id.is_some() => {}
            "share" | "operator" => {}
            other => return Err(format!("button action {other:?} without its field")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_text_snapshot() {
        let r = SkillResponse::new(vec![Output::text("안녕하세요")], vec![QuickReply::message("더 보기", "더 보기")]);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"version":"2.0","template":{"outputs":[{"simpleText":{"text":"안녕하세요"}}],
                "quickReplies":[{"label":"더 보기","action":"message","messageText":"더 보기"}]}})
        );
        r.validate().unwrap();
    }

    #[test]
    fn use_callback_snapshot() {
        let r = SkillResponse::use_callback("생각하고 있는 중이에요…");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"version":"2.0","useCallback":true,"data":{"text":"생각하고 있는 중이에요…"}})
        );
        r.validate().unwrap();
    }

    #[test]
    fn simple_image_snapshot() {
        let r = SkillResponse::new(vec![Output::image("https://x.example/a.png", &"긴 설명".repeat(20))], vec![]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["template"]["outputs"][0]["simpleImage"]["imageUrl"], "https://x.example/a.png");
        assert_eq!(v["template"]["outputs"][0]["simpleImage"]["altText"].as_str().unwrap().chars().count(), 50);
        r.validate().unwrap();
    }

    #[test]
    fn text_card_snapshot() {
        let links = vec![
            ("카카오 비즈니스 채널 안내 페이지".to_owned(), "https://business.kakao.com".to_owned()),
            ("Docs".to_owned(), "https://docs.example".to_owned()),
        ];
        let r = SkillResponse::new(vec![Output::links_card("링크", &links)], vec![]);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"version":"2.0","template":{"outputs":[{"textCard":{"description":"링크","buttons":[
                {"label":"카카오 비즈니스 채널 안…","action":"webLink","webLinkUrl":"https://business.kakao.com"},
                {"label":"Docs","action":"webLink","webLinkUrl":"https://docs.example"}],
                "buttonLayout":"vertical"}}]}})
        );
        r.validate().unwrap();
    }

    #[test]
    fn basic_card_round_trips_and_validates() {
        let raw = json!({"version":"2.0","template":{"outputs":[{"basicCard":{"title":"t","description":"d",
            "thumbnail":{"imageUrl":"https://x/a.jpg"},"buttons":[{"label":"열기","action":"webLink","webLinkUrl":"https://x"}]}}]}});
        let r: SkillResponse = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), raw);
        r.validate().unwrap();
    }

    #[test]
    fn limits_are_enforced_by_builders_and_checked() {
        let many: Vec<Output> = (0..5).map(|i| Output::text(&format!("{i}"))).collect();
        let qr: Vec<QuickReply> = (0..12).map(|i| QuickReply::message(&format!("q{i}"), "x")).collect();
        let r = SkillResponse::new(many, qr);
        assert_eq!(r.outputs().len(), 3);
        assert_eq!(r.template.as_ref().unwrap().quick_replies.len(), 10);
        r.validate().unwrap();
        assert_eq!(Output::text(&"가".repeat(1500)), Output::SimpleText { text: format!("{}…", "가".repeat(999)) });

        let mut bad = SkillResponse::text("x");
        bad.template.as_mut().unwrap().outputs = vec![Output::SimpleText { text: "가".repeat(1001) }];
        assert!(bad.validate().unwrap_err().contains("1001"));
        bad.template.as_mut().unwrap().outputs = vec![];
        assert!(bad.validate().is_err());
        let mut long_label = SkillResponse::text("x");
        long_label.template.as_mut().unwrap().quick_replies = vec![QuickReply {
            label: "a".repeat(15),
            action: "message".into(),
            message_text: Some("a".into()),
            block_id: None,
        }];
        assert!(long_label.validate().unwrap_err().contains("label"));
        let mut big = SkillResponse::text("x");
        big.data = Some(json!({"pad": "x".repeat(MAX_RESPONSE_BYTES)}));
        assert!(big.validate().unwrap_err().contains("bytes"));
    }
}
