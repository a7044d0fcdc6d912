//! AlimTalk templates as the operator declares them (`[[bizmsg.templates]]`, the design seed's
//! `AlimTalkTemplate`), checked when the configuration loads and rendered before every send.
//!
//! Kakao compares the text of every AlimTalk with the approved template after substituting the
//! `#{variable}` placeholders and refuses a mismatch with result 3016 — after the dealer has
//! accepted the request, so the failure arrives minutes later, per recipient. Everything that
//! can make the text differ is refused here instead, with the template and the field named:
//! an unknown or missing variable, a value over its declared length, a body over the limit, a
//! button the products do not have, a link that is not a web address, a fallback text too long
//! for its kind.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest AlimTalk body after substitution, in characters. Infobip allows 1,000 and NHN
/// 1,300 (reference/bizmsg.md §1); the stricter one holds at every dealer.
pub const MAX_BODY_CHARS: usize = 1_000;
/// At most this many buttons on one AlimTalk.
pub const MAX_BUTTONS: usize = 5;
/// The longest button name, in characters (NHN; Infobip allows 28).
pub const MAX_BUTTON_NAME_CHARS: usize = 14;
/// The longest button link, in characters.
pub const MAX_LINK_CHARS: usize = 1_000;
/// The longest template code (Infobip's `templateCode` ≤ 30; NHN's are ≤ 20).
pub const MAX_TEMPLATE_CODE_CHARS: usize = 30;
/// An SMS fallback holds 90 bytes in the Korean carriers' encoding (EUC-KR: a Hangul syllable
/// takes two), an LMS 2,000.
pub const MAX_SMS_BYTES: usize = 90;
/// See [`MAX_SMS_BYTES`].
pub const MAX_LMS_BYTES: usize = 2_000;

/// One AlimTalk template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlimTalkTemplate {
    /// The template code registered with the dealer (NHN `templateCode`, Infobip `templateCode`).
    pub template_code: String,
    /// Solapi's own id of the template (`KA01TP…`), when the dealer is Solapi.
    #[serde(default)]
    pub template_id: Option<String>,
    /// The approved text with `#{name}` placeholders, exactly as Kakao approved it.
    pub text: String,
    /// The variables the template takes. Optional: derived from the placeholders when left out;
    /// when given, it must name exactly the placeholders (a typo on either side is caught at
    /// load time, not by result 3016).
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The template's buttons, in order.
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
    /// What to send by SMS/LMS when the recipient cannot get the AlimTalk.
    #[serde(default)]
    pub fallback_config: Option<FallbackConfig>,
}

/// A variable: its name, or a table with a length limit (`{ name = "code", maxLength = 8 }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Variable {
    /// Just the name.
    Name(String),
    /// A name and the longest value Kakao takes for it (result 3025 otherwise).
    Limited {
        /// The placeholder's name.
        name: String,
        /// The longest value, in characters.
        #[serde(rename = "maxLength")]
        max_length: usize,
    },
}

impl Variable {
    /// The placeholder's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Limited { name, .. } => name,
        }
    }

    fn max_length(&self) -> Option<usize> {
        match self {
            Self::Name(_) => None,
            Self::Limited { max_length, .. } => Some(*max_length),
        }
    }
}

/// The kinds of AlimTalk button (reference/bizmsg.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ButtonType {
    /// Web link (`linkMo`, optional `linkPc`).
    #[serde(rename = "WL")]
    WebLink,
    /// App link (`schemeAndroid` / `schemeIos`, optional `linkMo` for a fallback page).
    #[serde(rename = "AL")]
    AppLink,
    /// Delivery tracking (Kakao finds the carrier and the number in the text).
    #[serde(rename = "DS")]
    DeliveryTracking,
    /// Bot keyword: sends the button's name to the chatbot.
    #[serde(rename = "BK")]
    BotKeyword,
    /// Message delivery: sends the message to the chatbot.
    #[serde(rename = "MD")]
    MessageDelivery,
    /// Switch to consultation talk.
    #[serde(rename = "BC")]
    Consultation,
    /// Switch to the chatbot.
    #[serde(rename = "BT")]
    BotSwitch,
    /// Add the channel.
    #[serde(rename = "AC")]
    AddChannel,
}

impl ButtonType {
    /// The two-letter code the dealers use (NHN, Solapi).
    pub fn code(self) -> &'static str {
        match self {
            Self::WebLink => "WL",
            Self::AppLink => "AL",
            Self::DeliveryTracking => "DS",
            Self::BotKeyword => "BK",
            Self::MessageDelivery => "MD",
            Self::Consultation => "BC",
            Self::BotSwitch => "BT",
            Self::AddChannel => "AC",
        }
    }
}

/// A button of a template; links may hold placeholders (`https://shop.example/o/#{order}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateButton {
    /// What the button does.
    #[serde(rename = "type")]
    pub kind: ButtonType,
    /// The label.
    pub name: String,
    /// Mobile web link (WL: required).
    #[serde(default)]
    pub link_mo: Option<String>,
    /// PC web link.
    #[serde(default)]
    pub link_pc: Option<String>,
    /// iOS app scheme (AL).
    #[serde(default)]
    pub scheme_ios: Option<String>,
    /// Android app scheme (AL).
    #[serde(default)]
    pub scheme_android: Option<String>,
}

/// SMS or LMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum FallbackKind {
    /// Short message, 90 bytes.
    #[serde(rename = "SMS")]
    Sms,
    /// Long message, 2,000 bytes, with a title.
    #[serde(rename = "LMS")]
    Lms,
}

impl FallbackKind {
    /// `SMS` / `LMS`, as every dealer writes it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Lms => "LMS",
        }
    }

    fn max_bytes(self) -> usize {
        match self {
            Self::Sms => MAX_SMS_BYTES,
            Self::Lms => MAX_LMS_BYTES,
        }
    }
}

/// The seed's `fallbackConfig`: what a recipient who cannot get the AlimTalk (not a KakaoTalk
/// user, blocked the channel) receives by text message instead.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FallbackConfig {
    /// SMS or LMS.
    #[serde(rename = "type")]
    pub kind: FallbackKind,
    /// The text, with the template's placeholders if wanted.
    pub message: String,
    /// LMS title.
    #[serde(default)]
    pub title: Option<String>,
}

/// A template filled in for one recipient, ready for any dealer: the variables for substitution
/// sends (NHN, Solapi) and the rendered text for those that take it (Infobip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    /// The template code.
    pub template_code: String,
    /// Solapi's template id, when declared.
    pub template_id: Option<String>,
    /// The values, by placeholder name.
    pub variables: BTreeMap<String, String>,
    /// The text after substitution.
    pub text: String,
    /// The buttons with their links filled in.
    pub buttons: Vec<RenderedButton>,
    /// The fallback text, when the template has one and the send asks for it.
    pub fallback: Option<RenderedFallback>,
}

/// A button after substitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedButton {
    /// What the button does.
    pub kind: ButtonType,
    /// The label.
    pub name: String,
    /// Mobile web link.
    pub link_mo: Option<String>,
    /// PC web link.
    pub link_pc: Option<String>,
    /// iOS app scheme.
    pub scheme_ios: Option<String>,
    /// Android app scheme.
    pub scheme_android: Option<String>,
}

/// A fallback text after substitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedFallback {
    /// SMS or LMS.
    pub kind: FallbackKind,
    /// The text.
    pub message: String,
    /// LMS title.
    pub title: Option<String>,
}

/// What is wrong with a template or a send; every message names the template and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// No template of that code in the configuration.
    #[error(
        "no AlimTalk template {code:?} in the configuration (known: {known}); add it under [[bizmsg.templates]] or run `clawbridge alimtalk templates sync`"
    )]
    UnknownTemplate {
        /// The code asked for.
        code: String,
        /// The codes there are.
        known: String,
    },
    /// The template itself is wrong (found when the configuration loads).
    #[error("AlimTalk template {code:?}: {field}: {problem}")]
    Invalid {
        /// The template code.
        code: String,
        /// The field (`text`, `variables`, `buttons[1].linkMo`, `fallbackConfig.message`).
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A variable the template does not have.
    #[error("AlimTalk template {code:?} has no variable {name:?} (it takes: {known})")]
    UnknownVariable {
        /// The template code.
        code: String,
        /// The unknown name.
        name: String,
        /// The names it takes.
        known: String,
    },
    /// A variable of the template was not given.
    #[error("AlimTalk template {code:?} needs the variable {name:?}: give it (--var {name}=…)")]
    MissingVariable {
        /// The template code.
        code: String,
        /// The missing name.
        name: String,
    },
    /// A value longer than the template allows.
    #[error("AlimTalk template {code:?}: variable {name:?} has {chars} characters, at most {max} are allowed")]
    VariableTooLong {
        /// The template code.
        code: String,
        /// The variable.
        name: String,
        /// Its length.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The filled-in text, a link or the fallback is over a limit.
    #[error("AlimTalk template {code:?}: {field} is {len} after substitution, at most {max} are allowed")]
    TooLong {
        /// The template code.
        code: String,
        /// What is too long.
        field: String,
        /// Its length (with its unit).
        len: String,
        /// The limit (with its unit).
        max: String,
    },
}

impl AlimTalkTemplate {
    /// Checks the template as declared: code, placeholders against `variables`, buttons, the
    /// fallback. Run when the configuration loads.
    ///
    /// # Errors
    /// [`TemplateError::Invalid`] naming the field.
    pub fn check(&self) -> Result<(), TemplateError> {
        let invalid = |field: &str, problem: String| TemplateError::Invalid {
            code: self.template_code.clone(),
            field: field.to_owned(),
            problem,
        };
        let code_chars = self.template_code.chars().count();
        if code_chars == 0 || code_chars > MAX_TEMPLATE_CODE_CHARS || self.template_code.trim() != self.template_code {
            return Err(invalid(
                "templateCode",
                format!(
                    "use the code registered with the dealer (1 to {MAX_TEMPLATE_CODE_CHARS} characters, no spaces around it)"
                ),
            ));
        }
        if self.text.trim().is_empty() {
            return Err(invalid("text", "empty: paste the approved template text".to_owned()));
        }
        let mut used = BTreeSet::new();
        for (field, text) in self.texts() {
            for name in placeholders(text).map_err(|problem| invalid(&field, problem))? {
                used.insert(name.to_owned());
            }
        }
        if !self.variables.is_empty() {
            let mut declared = BTreeSet::new();
            for variable in &self.variables {
                if !declared.insert(variable.name()) {
                    return Err(invalid("variables", format!("{:?} is listed twice", variable.name())));
                }
                if variable.max_length() == Some(0) {
                    return Err(invalid("variables", format!("{:?}: maxLength must be at least 1", variable.name())));
                }
            }
            if let Some(name) = used.iter().find(|name| !declared.contains(name.as_str())) {
                return Err(invalid(
                    "variables",
                    format!("the text uses #{{{name}}} but variables does not list it: add it, or fix the placeholder"),
                ));
            }
            if let Some(name) = declared.iter().find(|name| !used.contains(**name)) {
                return Err(invalid(
                    "variables",
                    format!("{name:?} is listed but the text has no #{{{name}}}: remove it, or fix the text"),
                ));
            }
        }
        if self.buttons.len() > MAX_BUTTONS {
            return Err(invalid("buttons", format!("{} buttons, at most {MAX_BUTTONS}", self.buttons.len())));
        }
        for (i, button) in self.buttons.iter().enumerate() {
            let field = |name: &str| format!("buttons[{i}].{name}");
            let name_chars = button.name.chars().count();
            if name_chars == 0 || name_chars > MAX_BUTTON_NAME_CHARS {
                return Err(invalid(&field("name"), format!("1 to {MAX_BUTTON_NAME_CHARS} characters")));
            }
            match button.kind {
                ButtonType::WebLink if button.link_mo.is_none() => {
                    return Err(invalid(&field("linkMo"), "a WL button needs linkMo (the mobile web link)".to_owned()));
                }
                ButtonType::AppLink if button.scheme_android.is_none() && button.scheme_ios.is_none() => {
                    return Err(invalid(
                        &field("schemeAndroid"),
                        "an AL button needs schemeAndroid or schemeIos (the app link)".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        if let Some(fallback) = &self.fallback_config
            && fallback.message.trim().is_empty()
        {
            return Err(invalid("fallbackConfig.message", "empty: write the SMS/LMS text".to_owned()));
        }
        Ok(())
    }

    /// The variable names the template takes, in order of declaration (or of first use).
    pub fn variable_names(&self) -> Vec<String> {
        if !self.variables.is_empty() {
            return self.variables.iter().map(|v| v.name().to_owned()).collect();
        }
        let mut names: Vec<String> = Vec::new();
        for (_, text) in self.texts() {
            for name in placeholders(text).unwrap_or_default() {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        names
    }

    /// Fills the template in for one recipient; `with_fallback` adds the SMS/LMS text (an error
    /// when the template has none).
    ///
    /// # Errors
    /// Every way the text could differ from the approved one, as a [`TemplateError`].
    pub fn render(&self, values: &BTreeMap<String, String>, with_fallback: bool) -> Result<Rendered, TemplateError> {
        self.render_within(values, with_fallback, MAX_BODY_CHARS)
    }

    /// [`render`](Self::render) with another body limit (a Brand Message bubble's).
    fn render_within(
        &self,
        values: &BTreeMap<String, String>,
        with_fallback: bool,
        max_chars: usize,
    ) -> Result<Rendered, TemplateError> {
        let code = || self.template_code.clone();
        let names = self.variable_names();
        if let Some(name) = values.keys().find(|name| !names.contains(name)) {
            return Err(TemplateError::UnknownVariable {
                code: code(),
                name: name.clone(),
                known: if names.is_empty() { "no variables".to_owned() } else { names.join(", ") },
            });
        }
        for name in &names {
            let Some(value) = values.get(name) else {
                return Err(TemplateError::MissingVariable { code: code(), name: name.clone() });
            };
            let limit = self.variables.iter().find(|v| v.name() == name).and_then(Variable::max_length);
            let chars = value.chars().count();
            if let Some(max) = limit
                && chars > max
            {
                return Err(TemplateError::VariableTooLong { code: code(), name: name.clone(), chars, max });
            }
        }
        let text = substitute(&self.text, values);
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(TemplateError::TooLong {
                code: code(),
                field: "the text".to_owned(),
                len: format!("{chars} characters"),
                max: format!("{max_chars} characters"),
            });
        }
        let mut buttons = Vec::with_capacity(self.buttons.len());
        for (i, button) in self.buttons.iter().enumerate() {
            let link = |name: &str, link: &Option<String>| -> Result<Option<String>, TemplateError> {
                let Some(link) = link else { return Ok(None) };
                let filled = substitute(link, values);
                check_link(&self.template_code, &format!("buttons[{i}].{name}"), &filled, button.kind)?;
                Ok(Some(filled))
            };
            buttons.push(RenderedButton {
                kind: button.kind,
                name: button.name.clone(),
                link_mo: link("linkMo", &button.link_mo)?,
                link_pc: link("linkPc", &button.link_pc)?,
                scheme_ios: button.scheme_ios.as_ref().map(|s| substitute(s, values)),
                scheme_android: button.scheme_android.as_ref().map(|s| substitute(s, values)),
            });
        }
        let fallback = if with_fallback {
            let Some(config) = &self.fallback_config else {
                return Err(TemplateError::Invalid {
                    code: code(),
                    field: "fallbackConfig".to_owned(),
                    problem: "the send asks for an SMS/LMS fallback but the template has none: add fallbackConfig \
                              or send with --fallback none"
                        .to_owned(),
                });
            };
            let message = substitute(&config.message, values);
            let bytes = carrier_bytes(&message);
            if bytes > config.kind.max_bytes() {
                let hint = if config.kind == FallbackKind::Sms { " (use type = \"LMS\" for longer texts)" } else { "" };
                return Err(TemplateError::TooLong {
                    code: code(),
                    field: format!("fallbackConfig.message{hint}"),
                    len: format!("{bytes} bytes"),
                    max: format!("{} bytes", config.kind.max_bytes()),
                });
            }
            Some(RenderedFallback { kind: config.kind, message, title: config.title.clone() })
        } else {
            None
        };
        Ok(Rendered {
            template_code: code(),
            template_id: self.template_id.clone(),
            variables: values.clone(),
            text,
            buttons,
            fallback,
        })
    }

    /// Every text that may hold placeholders, with its field name.
    fn texts(&self) -> Vec<(String, &str)> {
        let mut texts = vec![("text".to_owned(), self.text.as_str())];
        for (i, button) in self.buttons.iter().enumerate() {
            for (name, link) in [
                ("linkMo", &button.link_mo),
                ("linkPc", &button.link_pc),
                ("schemeIos", &button.scheme_ios),
                ("schemeAndroid", &button.scheme_android),
            ] {
                if let Some(link) = link {
                    texts.push((format!("buttons[{i}].{name}"), link.as_str()));
                }
            }
        }
        if let Some(fallback) = &self.fallback_config {
            texts.push(("fallbackConfig.message".to_owned(), fallback.message.as_str()));
        }
        texts
    }
}

/// Kakao's review of a template, as the dealer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TemplateStatus {
    /// Submitted.
    Requested,
    /// Being reviewed.
    InReview,
    /// Approved: it can be sent.
    Approved,
    /// Rejected.
    Rejected,
    /// Blocked by Kakao after registration (NHN Brand Message templates, status `S`).
    Blocked,
    /// A status this version does not know.
    Unknown,
}

impl TemplateStatus {
    /// For `templates list`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::InReview => "in review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Blocked => "blocked",
            Self::Unknown => "unknown",
        }
    }
}

/// A template as the dealer has it (`templates sync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealerTemplate {
    /// The code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// The approved text with its placeholders.
    pub text: String,
    /// `(type, name)` of each button.
    pub buttons: Vec<(String, String)>,
    /// Kakao's review.
    pub status: TemplateStatus,
    /// AlimTalk or Brand Message (syncs stored before Brand Message templates were AlimTalk).
    #[serde(default)]
    pub product: crate::send::Product,
    /// The variable names, where the dealer lists them (Solapi); otherwise read from the text.
    #[serde(default)]
    pub variables: Vec<String>,
}

impl DealerTemplate {
    /// The variable names: the dealer's list, or the placeholders of its text.
    pub fn variable_names(&self) -> Vec<String> {
        if !self.variables.is_empty() {
            return self.variables.clone();
        }
        let mut names: Vec<String> = Vec::new();
        for name in placeholders(&self.text).unwrap_or_default() {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        names
    }
}

impl TemplateError {
    /// The message, naming a Brand Message template: the same checks run on both products.
    pub fn for_brand(self) -> String {
        self.to_string().replacen("AlimTalk template", "Brand Message template", 1)
    }
}

impl AlimTalkTemplate {
    /// Compares the declared template with the dealer's: it must be approved, and its text and
    /// buttons must be the approved ones, or every send would fail with 3016.
    ///
    /// # Errors
    /// What differs, naming the template.
    pub fn check_against(&self, dealer: &DealerTemplate) -> Result<(), TemplateError> {
        let invalid = |field: &str, problem: String| TemplateError::Invalid {
            code: self.template_code.clone(),
            field: field.to_owned(),
            problem,
        };
        if dealer.status != TemplateStatus::Approved {
            return Err(invalid(
                "status",
                format!("the dealer reports it {}: only approved templates can be sent", dealer.status.label()),
            ));
        }
        if dealer.text != self.text {
            return Err(invalid(
                "text",
                format!(
                    "differs from the approved text ({:?}…): copy the approved text into [[bizmsg.templates]], or Kakao \
                     refuses every message with 3016",
                    excerpt(&dealer.text)
                ),
            ));
        }
        let ours: Vec<(&str, &str)> = self.buttons.iter().map(|b| (b.kind.code(), b.name.as_str())).collect();
        let theirs: Vec<(&str, &str)> = dealer.buttons.iter().map(|(k, n)| (k.as_str(), n.as_str())).collect();
        if ours != theirs {
            return Err(invalid("buttons", format!("differ from the approved ones {theirs:?}")));
        }
        Ok(())
    }
}

/// The configured templates, found by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    templates: Vec<AlimTalkTemplate>,
}

impl Templates {
    /// Checks every template and that no code is declared twice.
    ///
    /// # Errors
    /// The first problem found.
    pub fn new(templates: Vec<AlimTalkTemplate>) -> Result<Self, TemplateError> {
        let mut codes = BTreeSet::new();
        for template in &templates {
            template.check()?;
            if !codes.insert(template.template_code.as_str()) {
                return Err(TemplateError::Invalid {
                    code: template.template_code.clone(),
                    field: "templateCode".to_owned(),
                    problem: "declared twice under [[bizmsg.templates]]".to_owned(),
                });
            }
        }
        Ok(Self { templates })
    }

    /// The template of `code`.
    ///
    /// # Errors
    /// [`TemplateError::UnknownTemplate`] listing the codes there are.
    pub fn get(&self, code: &str) -> Result<&AlimTalkTemplate, TemplateError> {
        self.templates.iter().find(|t| t.template_code == code).ok_or_else(|| TemplateError::UnknownTemplate {
            code: code.to_owned(),
            known: if self.templates.is_empty() {
                "none".to_owned()
            } else {
                self.templates.iter().map(|t| t.template_code.as_str()).collect::<Vec<_>>().join(", ")
            },
        })
    }

    /// Every template, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &AlimTalkTemplate> {
        self.templates.iter()
    }
}

/// The Brand Message bubbles this bridge sends (reference/bizmsg.md §1, NHN's chatBubbleType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Bubble {
    /// Text with buttons: 1,300 characters, 99 line breaks.
    #[default]
    Text,
    /// One image above the text: 400 characters, 29 line breaks.
    Image,
}

impl Bubble {
    /// `TEXT` / `IMAGE`, as NHN and Solapi write it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Image => "IMAGE",
        }
    }

    /// The longest text of this bubble, in characters.
    pub fn max_chars(self) -> usize {
        match self {
            Self::Text => 1_300,
            Self::Image => 400,
        }
    }

    /// The most line breaks of this bubble's text.
    pub fn max_line_breaks(self) -> usize {
        match self {
            Self::Text => 99,
            Self::Image => 29,
        }
    }
}

/// A Brand Message template (`[[bizmsg.brandTemplates]]`): a "basic" Brand Message registered
/// with the dealer, sent by its code with the variables filled in. Kakao does not review them as
/// it reviews AlimTalk, but the same things make a send fail: a variable left out, a text over
/// the bubble's limit, a button Brand Messages do not have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrandTemplate {
    /// The template code registered with the dealer (NHN, Infobip `templateCode`).
    pub template_code: String,
    /// Solapi's id of the template, when the dealer is Solapi.
    #[serde(default)]
    pub template_id: Option<String>,
    /// `TEXT` (default) or `IMAGE`.
    #[serde(default)]
    pub chat_bubble_type: Bubble,
    /// The registered text with `#{name}` placeholders.
    pub text: String,
    /// The variables, as for AlimTalk (derived from the placeholders when left out).
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The template's buttons (WL, AL, BK, MD, AC, BT), in order.
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
}

/// A Brand Message template filled in for a send, stored with its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedBrandTemplate {
    /// The template code.
    pub template_code: String,
    /// Solapi's template id, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// The values of the text's placeholders.
    pub message_data: BTreeMap<String, String>,
    /// The values of placeholders that only the buttons' links use (Infobip `buttonData`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub button_data: BTreeMap<String, String>,
}

impl RenderedBrandTemplate {
    /// Every value, text and buttons (NHN `templateParameter`, Solapi `variables`).
    pub fn all_values(&self) -> BTreeMap<String, String> {
        let mut all = self.message_data.clone();
        all.extend(self.button_data.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }
}

impl BrandTemplate {
    /// The checks Brand Message templates share with AlimTalk ones (placeholders, variables,
    /// buttons, links) run on this view of it.
    fn core(&self) -> AlimTalkTemplate {
        AlimTalkTemplate {
            template_code: self.template_code.clone(),
            template_id: self.template_id.clone(),
            text: self.text.clone(),
            variables: self.variables.clone(),
            buttons: self.buttons.clone(),
            fallback_config: None,
        }
    }

    /// Checks the template as declared. Run when the configuration loads.
    ///
    /// # Errors
    /// What is wrong, naming the template and the field.
    pub fn check(&self) -> Result<(), String> {
        self.core().check().map_err(TemplateError::for_brand)?;
        let code = &self.template_code;
        for (i, button) in self.buttons.iter().enumerate() {
            if matches!(button.kind, ButtonType::DeliveryTracking | ButtonType::Consultation) {
                return Err(format!(
                    "Brand Message template {code:?}: buttons[{i}].type: {} is an AlimTalk button; Brand Messages take \
                     WL, AL, BK, MD, AC and BT",
                    button.kind.code()
                ));
            }
        }
        let breaks = self.text.matches('\n').count();
        if breaks > self.chat_bubble_type.max_line_breaks() {
            return Err(format!(
                "Brand Message template {code:?}: text has {breaks} line breaks; an {} bubble holds {}",
                self.chat_bubble_type.code(),
                self.chat_bubble_type.max_line_breaks()
            ));
        }
        Ok(())
    }

    /// The variable names, in order.
    pub fn variable_names(&self) -> Vec<String> {
        self.core().variable_names()
    }

    /// Fills the template in: every variable given and no other, lengths within the bubble's
    /// limits after substitution, links still web addresses.
    ///
    /// # Errors
    /// The first problem, naming the template and the field.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<RenderedBrandTemplate, String> {
        let bubble = self.chat_bubble_type;
        let rendered =
            self.core().render_within(values, false, bubble.max_chars()).map_err(TemplateError::for_brand)?;
        let breaks = rendered.text.matches('\n').count();
        if breaks > bubble.max_line_breaks() {
            return Err(format!(
                "Brand Message template {:?}: the text has {breaks} line breaks after substitution; an {} bubble holds {}",
                self.template_code,
                bubble.code(),
                bubble.max_line_breaks()
            ));
        }
        let in_text: BTreeSet<&str> = placeholders(&self.text).unwrap_or_default().into_iter().collect();
        let (message_data, button_data) =
            rendered.variables.into_iter().partition(|(name, _)| in_text.contains(name.as_str()));
        Ok(RenderedBrandTemplate {
            template_code: self.template_code.clone(),
            template_id: self.template_id.clone(),
            message_data,
            button_data,
        })
    }

    /// Compares the declared template with the dealer's: registered and usable, and the same
    /// text where the dealer reports it.
    ///
    /// # Errors
    /// What differs, naming the template.
    pub fn check_against(&self, dealer: &DealerTemplate) -> Result<(), String> {
        let code = &self.template_code;
        if dealer.status != TemplateStatus::Approved {
            return Err(format!(
                "Brand Message template {code:?}: the dealer reports it {}: only usable templates can be sent",
                dealer.status.label()
            ));
        }
        if !dealer.text.is_empty() && dealer.text != self.text {
            return Err(format!(
                "Brand Message template {code:?}: text differs from the registered one ({:?}…): copy it into \
                 [[bizmsg.brandTemplates]] so that the limits are checked on what is sent",
                excerpt(&dealer.text)
            ));
        }
        Ok(())
    }
}

/// The configured Brand Message templates, found by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandTemplates {
    templates: Vec<BrandTemplate>,
}

impl BrandTemplates {
    /// Checks every template and that no code is declared twice.
    ///
    /// # Errors
    /// The first problem found.
    pub fn new(templates: Vec<BrandTemplate>) -> Result<Self, String> {
        let mut codes = BTreeSet::new();
        for template in &templates {
            template.check()?;
            if !codes.insert(template.template_code.as_str()) {
                return Err(format!(
                    "Brand Message template {:?}: templateCode: declared twice under [[bizmsg.brandTemplates]]",
                    template.template_code
                ));
            }
        }
        Ok(Self { templates })
    }

    /// The template of `code`.
    ///
    /// # Errors
    /// An unknown code, with the codes there are.
    pub fn get(&self, code: &str) -> Result<&BrandTemplate, String> {
        self.templates.iter().find(|t| t.template_code == code).ok_or_else(|| {
            let known: Vec<&str> = self.templates.iter().map(|t| t.template_code.as_str()).collect();
            format!(
                "no Brand Message template {code:?} in the configuration (known: {}); add it under \
                 [[bizmsg.brandTemplates]] (see `clawbridge alimtalk templates list` after a sync)",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )
        })
    }

    /// Every template, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &BrandTemplate> {
        self.templates.iter()
    }
}

/// The placeholder names in `text`, in order (`#{name}`); a `#{` that is not closed, an empty
/// name or one with characters the dealers refuse (Solapi: no dots) is an error.
fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("\"#{{\" without a closing \"}}\" in {:?}", excerpt(&rest[start..])));
        };
        let name = &after[..end];
        if name.is_empty() || name.chars().any(|c| c == '.' || c == '{' || c == '#' || c.is_control()) {
            return Err(format!("#{{{name}}} is not a variable name (no dots, braces or '#')"));
        }
        names.push(name);
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// `text` with every `#{name}` that has a value replaced, in one pass (a value that itself
/// contains `#{…}` is not substituted again).
pub(crate) fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').and_then(|end| values.get(&after[..end]).map(|v| (end, v))) {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("#{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn check_link(code: &str, field: &str, link: &str, kind: ButtonType) -> Result<(), TemplateError> {
    let chars = link.chars().count();
    if chars > MAX_LINK_CHARS {
        return Err(TemplateError::TooLong {
            code: code.to_owned(),
            field: field.to_owned(),
            len: format!("{chars} characters"),
            max: format!("{MAX_LINK_CHARS} characters"),
        });
    }
    let web = link.strip_prefix("https://").or_else(|| link.strip_prefix("http://"));
    let host_ok = web.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    });
    if !host_ok || link.contains(char::is_whitespace) {
        return Err(TemplateError::Invalid {
            code: code.to_owned(),
            field: field.to_owned(),
            problem: format!(
                "{} link {:?} is not a web address (http:// or https:// with a host, no spaces)",
                kind.code(),
                excerpt(link)
            ),
        });
    }
    Ok(())
}

/// The size of a text in the carriers' encoding: one byte for ASCII, two for everything else
/// (EUC-KR's Hangul and symbols).
pub fn carrier_bytes(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

fn excerpt(text: &str) -> String {
    let mut excerpt: String = text.chars().take(40).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> AlimTalkTemplate {
        toml::from_str(
            r##"
            templateCode = "ORDER_SHIPPED"
            text = "#{name}님, 주문하신 상품이 발송되었습니다.\n운송장 번호: #{tracking}"
            variables = ["name", { name = "tracking", maxLength = 20 }]
            buttons = [
              { type = "DS", name = "배송 조회" },
              { type = "WL", name = "주문 보기", linkMo = "https://shop.example/o/#{tracking}" },
            ]
            fallbackConfig = { type = "SMS", message = "#{name}님 상품 발송: #{tracking}" }
            "##,
        )
        .unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_template_renders_text_links_and_fallback() {
        let template = shipped();
        template.check().unwrap();
        let rendered = template.render(&vars(&[("name", "홍길동"), ("tracking", "1234567890")]), true).unwrap();
        assert_eq!(rendered.text, "홍길동님, 주문하신 상품이 발송되었습니다.\n운송장 번호: 1234567890");
        assert_eq!(rendered.buttons[1].link_mo.as_deref(), Some("https://shop.example/o/1234567890"));
        assert_eq!(rendered.buttons[0].kind.code(), "DS");
        let fallback = rendered.fallback.unwrap();
        assert_eq!((fallback.kind, fallback.message.as_str()), (FallbackKind::Sms, "홍길동님 상품 발송: 1234567890"));
        assert_eq!(template.variable_names(), ["name", "tracking"]);
    }

    #[test]
    fn every_variable_must_be_given_and_none_other() {
        let template = shipped();
        let missing = template.render(&vars(&[("name", "홍길동")]), false).unwrap_err();
        assert_eq!(missing, TemplateError::MissingVariable { code: "ORDER_SHIPPED".into(), name: "tracking".into() });
        let unknown = template.render(&vars(&[("name", "a"), ("tracking", "1"), ("nmae", "b")]), false).unwrap_err();
        let message = unknown.to_string();
        assert!(
            message.contains("ORDER_SHIPPED") && message.contains("nmae") && message.contains("name, tracking"),
            "{message}"
        );
    }

    #[test]
    fn limits_are_checked_after_substitution() {
        let template = shipped();
        let long = "9".repeat(21);
        assert!(matches!(
            template.render(&vars(&[("name", "a"), ("tracking", &long)]), false),
            Err(TemplateError::VariableTooLong { chars: 21, max: 20, .. })
        ));
        let name = "가".repeat(MAX_BODY_CHARS);
        let e = template.render(&vars(&[("name", &name), ("tracking", "1")]), false).unwrap_err();
        assert!(e.to_string().contains("the text is 1030 characters"), "{e}");
        // The SMS text grows past 90 bytes with a long name: refused, with the way out.
        let e = template.render(&vars(&[("name", &"가".repeat(40)), ("tracking", "1")]), true).unwrap_err();
        assert!(e.to_string().contains("LMS"), "{e}");
        // A link that stops being a web address once filled in.
        let e = template.render(&vars(&[("name", "a"), ("tracking", "1 2")]), false).unwrap_err();
        assert!(e.to_string().contains("buttons[1].linkMo"), "{e}");
    }

    #[test]
    fn a_fallback_asked_of_a_template_without_one_is_refused() {
        let mut template = shipped();
        template.fallback_config = None;
        let e = template.render(&vars(&[("name", "a"), ("tracking", "1")]), true).unwrap_err();
        assert!(e.to_string().contains("--fallback none"), "{e}");
        assert!(template.render(&vars(&[("name", "a"), ("tracking", "1")]), false).is_ok());
    }

    #[test]
    fn declared_variables_must_match_the_placeholders() {
        let mut template = shipped();
        template.variables = vec![Variable::Name("name".into())];
        assert!(template.check().unwrap_err().to_string().contains("#{tracking}"));
        template.variables =
            vec![Variable::Name("name".into()), Variable::Name("tracking".into()), Variable::Name("extra".into())];
        assert!(template.check().unwrap_err().to_string().contains("\"extra\" is listed"));
        template.variables = vec![];
        template.check().unwrap();
        assert_eq!(template.variable_names(), ["name", "tracking"]);
    }

    #[test]
    fn malformed_templates_are_refused_at_load_with_the_field() {
        let cases: [(&str, &str); 6] = [
            (
                r##"templateCode = "A"
                text = "hello #{name""##,
                "text",
            ),
            (
                r##"templateCode = "A"
                text = "hello #{a.b}""##,
                "not a variable name",
            ),
            (
                r##"templateCode = ""
                text = "x""##,
                "templateCode",
            ),
            (
                r##"templateCode = "A"
                text = "x"
                buttons = [{ type = "WL", name = "보기" }]"##,
                "buttons[0].linkMo",
            ),
            (
                r##"templateCode = "A"
                text = "x"
                buttons = [{ type = "AL", name = "앱" }]"##,
                "schemeAndroid",
            ),
            (
                r##"templateCode = "A"
                text = "x"
                buttons = [{ type = "BK", name = "아주 긴 버튼 이름입니다 열다섯" }]"##,
                "buttons[0].name",
            ),
        ];
        for (source, needle) in cases {
            let template: AlimTalkTemplate = toml::from_str(source).unwrap();
            let e = template.check().unwrap_err().to_string();
            assert!(e.contains(needle), "{source}: {e}");
        }
        // Unknown button kinds and fields are refused by the parser itself.
        assert!(
            toml::from_str::<AlimTalkTemplate>(
                "templateCode = \"A\"\ntext = \"x\"\nbuttons = [{ type = \"XX\", name = \"a\" }]"
            )
            .is_err()
        );
        assert!(toml::from_str::<AlimTalkTemplate>("templateCode = \"A\"\ntext = \"x\"\ntempalteId = \"b\"").is_err());
    }

    #[test]
    fn template_sets_refuse_duplicates_and_name_the_known_codes() {
        let e = Templates::new(vec![shipped(), shipped()]).unwrap_err();
        assert!(e.to_string().contains("declared twice"), "{e}");
        let set = Templates::new(vec![shipped()]).unwrap();
        let e = set.get("ORDER_SHIPED").unwrap_err().to_string();
        assert!(e.contains("ORDER_SHIPPED") && e.contains("templates sync"), "{e}");
    }

    #[test]
    fn a_declared_template_is_checked_against_the_approved_one() {
        let template = shipped();
        let approved = DealerTemplate {
            code: "ORDER_SHIPPED".into(),
            name: "발송".into(),
            text: template.text.clone(),
            buttons: vec![("DS".into(), "배송 조회".into()), ("WL".into(), "주문 보기".into())],
            status: TemplateStatus::Approved,
            product: crate::send::Product::Alimtalk,
            variables: vec![],
        };
        template.check_against(&approved).unwrap();
        let review = DealerTemplate { status: TemplateStatus::InReview, ..approved.clone() };
        assert!(template.check_against(&review).unwrap_err().to_string().contains("in review"));
        let edited = DealerTemplate { text: "다른 문구".into(), ..approved.clone() };
        assert!(template.check_against(&edited).unwrap_err().to_string().contains("3016"));
        let buttons = DealerTemplate { buttons: vec![], ..approved };
        assert!(template.check_against(&buttons).unwrap_err().to_string().contains("buttons"));
    }

    #[test]
    fn substitution_is_one_pass() {
        let out = substitute("#{a} and #{b} and #{unknown}", &vars(&[("a", "#{b}"), ("b", "x")]));
        assert_eq!(out, "#{b} and x and #{unknown}");
        assert_eq!(carrier_bytes("abc가나"), 7);
    }
}
