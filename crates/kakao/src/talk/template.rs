//! Default message templates (`template_object`, reference/kakao.md §4): typed builders for every
//! `object_type`, JSON files, and the validation Kakao would otherwise do after the call.
//!
//! A [`Template`] is checked with [`Template::validate`] before it is serialised into the
//! `template_object` form field; every error names the field (`buttons[2]`, `contents`,
//! `content.link.web_url`) so a template file can be fixed without guessing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest `text` of a text template and `header_title` of a list template.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most buttons in any template.
pub const MAX_BUTTONS: usize = 2;
/// Fewest contents of a list template.
pub const MIN_LIST_CONTENTS: usize = 2;
/// Most contents of a list template.
pub const MAX_LIST_CONTENTS: usize = 3;

/// A template that Kakao would refuse; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template field `{field}`: {problem}")]
pub struct TemplateError {
    /// The field, as a path (`buttons[1].title`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl TemplateError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

/// Where a click leads. Execution params are `k=v&k2=v2` strings for the app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Desktop URL (its domain must be registered in the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Mobile web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_web_url: Option<String>,
    /// Parameters for the Android app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_execution_params: Option<String>,
    /// Parameters for the iOS app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios_execution_params: Option<String>,
}

impl Link {
    /// A link to one URL on desktop and mobile.
    pub fn web(url: impl Into<String>) -> Self {
        let url = url.into();
        Self { web_url: Some(url.clone()), mobile_web_url: Some(url), ..Self::default() }
    }

    fn validate(&self, field: &str) -> Result<(), TemplateError> {
        for (name, value) in [("web_url", &self.web_url), ("mobile_web_url", &self.mobile_web_url)] {
            if let Some(url) = value {
                check_url(&format!("{field}.{name}"), url)?;
            }
        }
        Ok(())
    }
}

/// A button under the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// Its label.
    pub title: String,
    /// Where it leads.
    pub link: Link,
}

impl Button {
    /// A button.
    pub fn new(title: impl Into<String>, link: Link) -> Self {
        Self { title: title.into(), link }
    }
}

/// The main block of feed, location, commerce and calendar templates and the rows of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Image (e.g. from `upload-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Image width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_width: Option<u32>,
    /// Image height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_height: Option<u32>,
    /// Where a click leads.
    pub link: Link,
}

impl Content {
    /// A content block with a title.
    pub fn new(title: impl Into<String>, link: Link) -> Self {
        Self { title: Some(title.into()), link, ..Self::default() }
    }

    /// Adds a description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Adds an image.
    #[must_use]
    pub fn image(mut self, url: impl Into<String>) -> Self {
        self.image_url = Some(url.into());
        self
    }

    fn validate(&self, field: &str) -> Result<(), TemplateError> {
        if let Some(url) = &self.image_url {
            check_url(&format!("{field}.image_url"), url)?;
        }
        for (name, value) in [("image_width", self.image_width), ("image_height", self.image_height)] {
            if value == Some(0) {
                return Err(TemplateError::new(format!("{field}.{name}"), "must be at least 1 pixel"));
            }
        }
        self.link.validate(&format!("{field}.link"))
    }
}

/// Likes, comments … shown under a feed or location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Social {
    /// Likes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub like_count: Option<u64>,
    /// Comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_count: Option<u64>,
    /// Shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_count: Option<u64>,
    /// Views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_count: Option<u64>,
    /// Subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_count: Option<u64>,
}

/// The item list of a feed (receipts, orders).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemContent {
    /// Profile text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_text: Option<String>,
    /// Profile image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_image_url: Option<String>,
    /// Title image text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_image_text: Option<String>,
    /// Title image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_image_url: Option<String>,
    /// Title image category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_image_category: Option<String>,
    /// Rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemInfo>>,
    /// Sum label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// Sum value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_op: Option<String>,
}

/// One row of [`ItemContent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInfo {
    /// Label.
    pub item: String,
    /// Value.
    pub item_op: String,
}

/// Prices of a commerce template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commerce {
    /// Regular price (required).
    pub regular_price: u64,
    /// Price after discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_price: Option<u64>,
    /// Fixed discount amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_discount_price: Option<u64>,
    /// Discount in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_rate: Option<u8>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Currency label (`원`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_unit: Option<String>,
    /// 0: after the price, 1: before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_unit_position: Option<u8>,
}

/// `object_type: text`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTemplate {
    /// Up to 200 characters.
    pub text: String,
    /// Where a click leads.
    pub link: Link,
    /// Label of the default button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_title: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// `object_type: feed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedTemplate {
    /// The main block.
    pub content: Content,
    /// Item rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_content: Option<ItemContent>,
    /// Social counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social: Option<Social>,
    /// Label of the default button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_title: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// `object_type: list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTemplate {
    /// Up to 200 characters.
    pub header_title: String,
    /// Where the header leads.
    pub header_link: Link,
    /// Two or three rows.
    pub contents: Vec<Content>,
    /// Label of the default button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_title: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// `object_type: location`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationTemplate {
    /// The address shown on the map.
    pub address: String,
    /// The place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_title: Option<String>,
    /// The main block.
    pub content: Content,
    /// Social counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social: Option<Social>,
    /// Label of the default button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_title: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// `object_type: commerce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommerceTemplate {
    /// The main block.
    pub content: Content,
    /// Prices.
    pub commerce: Commerce,
    /// Label of the default button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_title: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// What a calendar template's `id` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarIdType {
    /// A subscribed calendar of the channel linked to the app.
    Calendar,
    /// A public Talk Calendar event.
    Event,
}

/// `object_type: calendar`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarTemplate {
    /// The calendar or event id.
    pub id: String,
    /// `calendar` or `event`.
    pub id_type: CalendarIdType,
    /// The main block.
    pub content: Content,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
}

/// A default template, tagged by `object_type` as Kakao expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object_type", rename_all = "snake_case")]
pub enum Template {
    /// Text with a link.
    Text(TextTemplate),
    /// A card with an image.
    Feed(FeedTemplate),
    /// A header with 2–3 rows.
    List(ListTemplate),
    /// A place on a map.
    Location(LocationTemplate),
    /// A product with prices.
    Commerce(CommerceTemplate),
    /// A Talk Calendar event or calendar.
    Calendar(CalendarTemplate),
}

impl Template {
    /// A text template: `text` with a link to `url` (or no link).
    pub fn text(text: impl Into<String>, link: Link) -> Self {
        Self::Text(TextTemplate { text: text.into(), link, button_title: None, buttons: None })
    }

    /// A feed template.
    pub fn feed(content: Content) -> Self {
        Self::Feed(FeedTemplate { content, item_content: None, social: None, button_title: None, buttons: None })
    }

    /// A list template.
    pub fn list(header_title: impl Into<String>, header_link: Link, contents: Vec<Content>) -> Self {
        Self::List(ListTemplate {
            header_title: header_title.into(),
            header_link,
            contents,
            button_title: None,
            buttons: None,
        })
    }

    /// A location template.
    pub fn location(address: impl Into<String>, content: Content) -> Self {
        Self::Location(LocationTemplate {
            address: address.into(),
            address_title: None,
            content,
            social: None,
            button_title: None,
            buttons: None,
        })
    }

    /// A commerce template.
    pub fn commerce(content: Content, commerce: Commerce) -> Self {
        Self::Commerce(CommerceTemplate { content, commerce, button_title: None, buttons: None })
    }

    /// A calendar template.
    pub fn calendar(id: impl Into<String>, id_type: CalendarIdType, content: Content) -> Self {
        Self::Calendar(CalendarTemplate { id: id.into(), id_type, content, buttons: None })
    }

    /// Adds a button (validation refuses more than two).
    #[must_use]
    pub fn button(mut self, button: Button) -> Self {
        let buttons = match &mut self {
            Self::Text(t) => &mut t.buttons,
            Self::Feed(t) => &mut t.buttons,
            Self::List(t) => &mut t.buttons,
            Self::Location(t) => &mut t.buttons,
            Self::Commerce(t) => &mut t.buttons,
            Self::Calendar(t) => &mut t.buttons,
        };
        buttons.get_or_insert_with(Vec::new).push(button);
        self
    }

    /// Sets the default button's label (calendar templates have none; ignored there).
    #[must_use]
    pub fn button_title(mut self, title: impl Into<String>) -> Self {
        let slot = match &mut self {
            Self::Text(t) => &mut t.button_title,
            Self::Feed(t) => &mut t.button_title,
            Self::List(t) => &mut t.button_title,
            Self::Location(t) => &mut t.button_title,
            Self::Commerce(t) => &mut t.button_title,
            Self::Calendar(_) => return self,
        };
        *slot = Some(title.into());
        self
    }

    /// The `object_type`.
    pub fn object_type(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Feed(_) => "feed",
            Self::List(_) => "list",
            Self::Location(_) => "location",
            Self::Commerce(_) => "commerce",
            Self::Calendar(_) => "calendar",
        }
    }

    /// Parses a template file's JSON and validates it.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the field that is missing, unknown or out of bounds.
    pub fn from_json(json: &str) -> Result<Self, TemplateError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| TemplateError::new("(file)", format!("not valid JSON: {e}")))?;
        let object_type = value.get("object_type").ok_or_else(|| {
            TemplateError::new("object_type", "missing: use text, feed, list, location, commerce or calendar")
        })?;
        if !matches!(object_type.as_str(), Some("text" | "feed" | "list" | "location" | "commerce" | "calendar")) {
            return Err(TemplateError::new(
                "object_type",
                format!(
                    "{object_type} is not a default template: use text, feed, list, location, commerce or calendar"
                ),
            ));
        }
        let template: Self =
            serde_json::from_value(value).map_err(|e| TemplateError::new("(template)", e.to_string()))?;
        template.validate()?;
        Ok(template)
    }

    /// Checks every limit of reference/kakao.md §4.
    ///
    /// # Errors
    /// The first problem found, naming the field.
    pub fn validate(&self) -> Result<(), TemplateError> {
        match self {
            Self::Text(t) => {
                non_empty("text", &t.text)?;
                max_chars("text", &t.text, MAX_TEXT_CHARS)?;
                t.link.validate("link")?;
                buttons(t.button_title.as_deref(), t.buttons.as_deref())
            }
            Self::Feed(t) => {
                t.content.validate("content")?;
                if let Some(items) = &t.item_content {
                    for (field, url) in [
                        ("item_content.profile_image_url", &items.profile_image_url),
                        ("item_content.title_image_url", &items.title_image_url),
                    ] {
                        if let Some(url) = url {
                            check_url(field, url)?;
                        }
                    }
                    for (i, item) in items.items.iter().flatten().enumerate() {
                        non_empty(&format!("item_content.items[{i}].item"), &item.item)?;
                    }
                }
                buttons(t.button_title.as_deref(), t.buttons.as_deref())
            }
            Self::List(t) => {
                non_empty("header_title", &t.header_title)?;
                max_chars("header_title", &t.header_title, MAX_TEXT_CHARS)?;
                t.header_link.validate("header_link")?;
                if !(MIN_LIST_CONTENTS..=MAX_LIST_CONTENTS).contains(&t.contents.len()) {
                    return Err(TemplateError::new(
                        "contents",
                        format!(
                            "has {} entries; a list template needs {MIN_LIST_CONTENTS} to {MAX_LIST_CONTENTS}",
                            t.contents.len()
                        ),
                    ));
                }
                for (i, content) in t.contents.iter().enumerate() {
                    content.validate(&format!("contents[{i}]"))?;
                }
                buttons(t.button_title.as_deref(), t.buttons.as_deref())
            }
            Self::Location(t) => {
                non_empty("address", &t.address)?;
                t.content.validate("content")?;
                buttons(t.button_title.as_deref(), t.buttons.as_deref())
            }
            Self::Commerce(t) => {
                t.content.validate("content")?;
                let c = &t.commerce;
                if let Some(rate) = c.discount_rate
                    && rate > 100
                {
                    return Err(TemplateError::new("commerce.discount_rate", "is a percentage: 0 to 100"));
                }
                if let Some(price) = c.discount_price
                    && price > c.regular_price
                {
                    return Err(TemplateError::new("commerce.discount_price", "is higher than regular_price"));
                }
                if let Some(position) = c.currency_unit_position
                    && position > 1
                {
                    return Err(TemplateError::new("commerce.currency_unit_position", "is 0 (after) or 1 (before)"));
                }
                buttons(t.button_title.as_deref(), t.buttons.as_deref())
            }
            Self::Calendar(t) => {
                non_empty("id", &t.id)?;
                t.content.validate("content")?;
                buttons(None, t.buttons.as_deref())
            }
        }
    }

    /// The `template_object` form value: the template as a JSON string, after validation.
    ///
    /// # Errors
    /// A [`TemplateError`] when the template is invalid.
    pub fn to_form_value(&self) -> Result<String, TemplateError> {
        self.validate()?;
        serde_json::to_string(self).map_err(|e| TemplateError::new("(template)", e.to_string()))
    }
}

/// A custom template made in the console, with its `${KEY}` substitutions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTemplate {
    /// The console's template id.
    pub template_id: u64,
    /// `template_args`.
    pub args: BTreeMap<String, String>,
}

impl CustomTemplate {
    /// Parses `--arg key=value` arguments.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the malformed argument.
    pub fn with_args<'a>(template_id: u64, args: impl IntoIterator<Item = &'a str>) -> Result<Self, TemplateError> {
        if template_id == 0 {
            return Err(TemplateError::new("template_id", "must be the console's template id (a positive number)"));
        }
        let mut map = BTreeMap::new();
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| TemplateError::new("template_args", format!("{arg:?} is not key=value")))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(TemplateError::new("template_args", format!("{arg:?} has an empty key")));
            }
            map.insert(key.to_owned(), value.to_owned());
        }
        Ok(Self { template_id, args: map })
    }

    /// The `template_args` form value, when there are arguments.
    pub fn args_form_value(&self) -> Option<String> {
        (!self.args.is_empty()).then(|| serde_json::to_string(&self.args).unwrap_or_else(|_| "{}".to_owned()))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} template", self.object_type())
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), TemplateError> {
    if value.trim().is_empty() { Err(TemplateError::new(field, "is required and must not be empty")) } else { Ok(()) }
}

fn max_chars(field: &str, value: &str, max: usize) -> Result<(), TemplateError> {
    let count = value.chars().count();
    if count > max {
        Err(TemplateError::new(field, format!("has {count} characters; at most {max} are allowed")))
    } else {
        Ok(())
    }
}

fn buttons(button_title: Option<&str>, buttons: Option<&[Button]>) -> Result<(), TemplateError> {
    if let Some(title) = button_title {
        non_empty("button_title", title)?;
    }
    let buttons = buttons.unwrap_or_default();
    if buttons.len() > MAX_BUTTONS {
        return Err(TemplateError::new(
            "buttons",
            format!("has {} buttons; at most {MAX_BUTTONS} are allowed", buttons.len()),
        ));
    }
    for (i, button) in buttons.iter().enumerate() {
        non_empty(&format!("buttons[{i}].title"), &button.title)?;
        button.link.validate(&format!("buttons[{i}].link"))?;
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), TemplateError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(TemplateError::new(field, format!("{url:?} is not an http(s) URL"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link::web("https://example.com")
    }

    #[test]
    fn every_documented_example_parses_and_validates() {
        for json in [
            r#"{"object_type":"text","text":"안녕하세요","link":{"web_url":"https://example.com","mobile_web_url":"https://example.com"},"button_title":"바로 확인"}"#,
            r#"{"object_type":"feed","content":{"title":"오늘의 디저트","description":"아메리카노, 빵, 케익","image_url":"https://example.com/a.jpg","image_width":640,"image_height":640,"link":{"web_url":"http://www.daum.net","mobile_web_url":"http://m.daum.net"}},"buttons":[{"title":"웹으로 보기","link":{"web_url":"http://www.daum.net"}}]}"#,
            r#"{"object_type":"list","header_title":"WEEKLY MAGAZINE","header_link":{"web_url":"https://example.com"},"contents":[{"title":"A","image_url":"https://example.com/a.jpg","link":{"web_url":"https://example.com/a"}},{"title":"B","link":{"web_url":"https://example.com/b"}}]}"#,
            r#"{"object_type":"location","address":"경기 성남시 분당구 판교역로 166","address_title":"카카오 판교오피스","content":{"title":"…","image_url":"https://example.com/a.jpg","link":{"web_url":"https://example.com"}}}"#,
            r#"{"object_type":"commerce","content":{"title":"…","image_url":"https://example.com/a.jpg","link":{"web_url":"https://example.com"}},"commerce":{"product_name":"…","regular_price":208800,"discount_price":146160,"discount_rate":30}}"#,
            r#"{"object_type":"calendar","id":"evt-1","id_type":"event","content":{"title":"…","link":{"web_url":"https://example.com"}}}"#,
        ] {
            let template = Template::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            // Serialising gives back the same JSON object.
            let back: serde_json::Value = serde_json::from_str(&template.to_form_value().unwrap()).unwrap();
            let original: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(back, original);
        }
    }

    #[test]
    fn builders_serialise_with_the_object_type_tag() {
        let t = Template::text("hi", link()).button_title("Open");
        let v: serde_json::Value = serde_json::from_str(&t.to_form_value().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"object_type":"text","text":"hi","link":{"web_url":"https://example.com","mobile_web_url":"https://example.com"},"button_title":"Open"})
        );
        let t = Template::commerce(
            Content::new("Shoes", link()).image("https://example.com/s.jpg"),
            Commerce { regular_price: 100, discount_price: Some(80), ..Commerce::default() },
        );
        t.validate().unwrap();
        let t = Template::calendar("c1", CalendarIdType::Calendar, Content::new("Cal", link()));
        assert!(t.to_form_value().unwrap().contains(r#""id_type":"calendar""#));
        let t = Template::location("Seoul", Content::new("Office", link()));
        t.validate().unwrap();
        let t = Template::feed(Content::new("F", link()).description("d"));
        t.validate().unwrap();
    }

    #[test]
    fn limits_are_enforced_with_the_field_named() {
        let long = "가".repeat(201);
        let err = Template::text(&long, link()).validate().unwrap_err();
        assert_eq!(err.field, "text");
        assert!(Template::text("가".repeat(200), link()).validate().is_ok());
        let err = Template::text("", link()).validate().unwrap_err();
        assert_eq!(err.field, "text");

        let three = Template::text("x", link())
            .button(Button::new("a", link()))
            .button(Button::new("b", link()))
            .button(Button::new("c", link()));
        assert_eq!(three.validate().unwrap_err().field, "buttons");
        let untitled = Template::text("x", link()).button(Button::new(" ", link()));
        assert_eq!(untitled.validate().unwrap_err().field, "buttons[0].title");

        let one = Template::list("H", link(), vec![Content::new("a", link())]);
        assert_eq!(one.validate().unwrap_err().field, "contents");
        let four = Template::list("H", link(), vec![Content::new("a", link()); 4]);
        assert_eq!(four.validate().unwrap_err().field, "contents");
        let two = Template::list("H", link(), vec![Content::new("a", link()); 2]);
        assert!(two.validate().is_ok());
        let long_header = Template::list(&long, link(), vec![Content::new("a", link()); 2]);
        assert_eq!(long_header.validate().unwrap_err().field, "header_title");

        let bad_url = Template::feed(Content::new("F", Link::web("javascript:alert(1)")));
        assert_eq!(bad_url.validate().unwrap_err().field, "content.link.web_url");
        let bad_rate = Template::commerce(
            Content::new("S", link()),
            Commerce { regular_price: 1, discount_rate: Some(101), ..Commerce::default() },
        );
        assert_eq!(bad_rate.validate().unwrap_err().field, "commerce.discount_rate");
        let no_address = Template::location(" ", Content::new("O", link()));
        assert_eq!(no_address.validate().unwrap_err().field, "address");
        let no_id = Template::calendar("", CalendarIdType::Event, Content::new("E", link()));
        assert_eq!(no_id.validate().unwrap_err().field, "id");
    }

    #[test]
    fn template_files_name_missing_and_unknown_fields() {
        let err = Template::from_json(r#"{"object_type":"text","text":"hi"}"#).unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
        let err = Template::from_json(r#"{"object_type":"text","text":"hi","link":{},"buton_title":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("buton_title"), "{err}");
        let err = Template::from_json(r#"{"text":"hi","link":{}}"#).unwrap_err();
        assert_eq!(err.field, "object_type");
        let err = Template::from_json(r#"{"object_type":"alimtalk"}"#).unwrap_err();
        assert_eq!(err.field, "object_type");
        let err = Template::from_json("{").unwrap_err();
        assert!(err.problem.contains("JSON"), "{err}");
        let err = Template::from_json(
            r#"{"object_type":"list","header_title":"H","header_link":{},"contents":[{"link":{}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "contents");
    }

    #[test]
    fn custom_template_arguments() {
        let t = CustomTemplate::with_args(123, ["name=Kim", "item=a=b"]).unwrap();
        assert_eq!(t.args_form_value().unwrap(), r#"{"item":"a=b","name":"Kim"}"#);
        assert!(CustomTemplate::with_args(1, []).unwrap().args_form_value().is_none());
        assert_eq!(CustomTemplate::with_args(1, ["novalue"]).unwrap_err().field, "template_args");
        assert_eq!(CustomTemplate::with_args(1, ["=v"]).unwrap_err().field, "template_args");
        assert_eq!(CustomTemplate::with_args(0, []).unwrap_err().field, "template_id");
    }
}
