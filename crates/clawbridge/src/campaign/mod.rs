//! Campaigns in the daemon and the CLI: what a campaign sends ([`Spec`]), how one recipient
//! becomes a row of the existing send queues ([`send`]), the runner that hands recipients over
//! at the campaign's rate and pauses in the quiet hours ([`runner`]), tracked links
//! ([`web`]: `GET /r/{token}`), and the report ([`report`]).
//!
//! A campaign never sends by itself: each recipient becomes one business-message row (AlimTalk,
//! Brand Message) or one outbox row (WhatsApp) with the idempotency key
//! `campaign:<id>:<recipient>`, and the existing workers send it, retry it, and collect its
//! result. The pure rules (file, split, estimate, tokens, statistics) are in
//! `clawbridge_campaign`.

pub mod report;
pub mod runner;
pub mod send;
pub mod web;

use clawbridge_campaign::Split;
use clawbridge_campaign::ab::variant_name;
use serde::{Deserialize, Serialize};
use std::str::FromStr as _;

/// Which product a campaign sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// AlimTalk through the dealer (informational; no quiet hours).
    Alimtalk,
    /// Brand Message through the dealer (an ad: never 20:50–08:00 KST).
    Brand,
    /// An approved WhatsApp template through Kapso.
    Whatsapp,
}

impl Channel {
    /// `alimtalk`, `brand`, `whatsapp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alimtalk => "alimtalk",
            Self::Brand => "brand",
            Self::Whatsapp => "whatsapp",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alimtalk" => Ok(Self::Alimtalk),
            "brand" | "friendtalk" => Ok(Self::Brand),
            "whatsapp" => Ok(Self::Whatsapp),
            other => Err(format!("--channel {other:?}: use alimtalk, brand or whatsapp")),
        }
    }
}

/// One variant of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantSpec {
    /// `A`, `B`, ….
    pub name: String,
    /// The template (AlimTalk code, Brand Message template, WhatsApp template name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Free text (Brand Message), with `#{column}` placeholders filled from the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The WhatsApp template's language (`ko`, `en_US`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

impl VariantSpec {
    /// `template=SALE_B`, `text`.
    pub fn describe(&self) -> String {
        match (&self.template, &self.text) {
            (Some(t), _) => format!("template={t}"),
            (None, Some(_)) => "text".to_owned(),
            (None, None) => "?".to_owned(),
        }
    }

    /// Reads `--variant "B:template=SALE_B"` (also `B:text=…`, `B:lang=en_US`, several
    /// separated by `;`), on top of the first variant's settings.
    ///
    /// # Errors
    /// The form expected.
    pub fn parse(text: &str, base: &VariantSpec) -> Result<Self, String> {
        let (name, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("--variant {text:?}: write it as NAME:template=CODE (or NAME:text=…)"))?;
        let name = name.trim();
        if name.is_empty() || name.len() > 20 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("--variant {text:?}: the name is letters and digits, e.g. B"));
        }
        let mut variant = VariantSpec { name: name.to_owned(), ..base.clone() };
        for part in rest.split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("--variant {text:?}: {part:?} is not key=value (template, text, lang)"))?;
            let value = value.trim().to_owned();
            match key.trim() {
                "template" => {
                    variant.template = Some(value);
                    variant.text = None;
                }
                "text" => {
                    variant.text = Some(value);
                    variant.template = None;
                }
                "lang" => variant.lang = Some(value),
                other => return Err(format!("--variant {text:?}: unknown setting {other:?} (template, text, lang)")),
            }
        }
        Ok(variant)
    }
}

/// What a campaign sends, stored with it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The product.
    pub channel: Channel,
    /// The variants, the first one `A`.
    pub variants: Vec<VariantSpec>,
    /// Their shares in percent.
    pub split: Vec<u32>,
    /// Brand Message web-link buttons, `(name, url)`.
    #[serde(default)]
    pub buttons: Vec<(String, String)>,
    /// Brand Message targeting (`I`, `M`, `N`).
    #[serde(default)]
    pub targeting: Option<String>,
    /// AlimTalk: `sms`, `lms` or `none`; Brand Message: `lms` for the ad LMS.
    #[serde(default)]
    pub fallback: Option<String>,
    /// An ad: paused in the quiet hours (always for Brand Message; `--ad` for a WhatsApp
    /// marketing template).
    #[serde(default)]
    pub ad: bool,
    /// The public base URL links are tracked under; `None`: links are sent as they are.
    #[serde(default)]
    pub track_base: Option<String>,
    /// The recipient file, for the record.
    #[serde(default)]
    pub file: String,
    /// An A/B test on a share of the recipients first, the winner to the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<AbTest>,
}

/// `--test 10% --pick-winner-after 2h --by ctr|delivery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbTest {
    /// Percent of the recipients the variants go to first.
    pub share: u32,
    /// How long after the campaign started the winner is picked.
    pub pick_after_ms: i64,
    /// `ctr` or `delivery`.
    pub by: String,
    /// The winner, once picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
}

impl AbTest {
    /// Whether `recipient` is in the test share of `campaign` (a hash, like the variants'; an
    /// independent one, so the share does not follow the split).
    pub fn in_test(&self, campaign: &str, recipient: &str) -> bool {
        let split = Split::from_str(&format!("{}/{}", self.share, 100 - self.share)).unwrap_or_else(|_| Split::even(2));
        self.share >= 100 || split.assign(&format!("{campaign}:test"), recipient) == 0
    }
}

/// `2h`, `30m`, `1d`, `90s` in milliseconds.
///
/// # Errors
/// The form expected.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = n.parse().map_err(|_| format!("{text:?}: write a duration such as 2h, 30m or 1d"))?;
    let unit_ms = match unit.trim() {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d (2h, 30m, 1d)")),
    };
    Ok(n.saturating_mul(unit_ms))
}

impl Spec {
    /// The split as the campaign crate reads it.
    pub fn split(&self) -> Split {
        let text = self.split.iter().map(u32::to_string).collect::<Vec<_>>().join("/");
        text.parse().unwrap_or_else(|_| Split::even(self.variants.len()))
    }

    /// The variant of a recipient.
    pub fn variant_of(&self, campaign: &str, recipient: &str) -> &VariantSpec {
        let index = if self.variants.len() > 1 { self.split().assign(campaign, recipient) } else { 0 };
        &self.variants[index.min(self.variants.len() - 1)]
    }

    /// A variant by name.
    pub fn variant(&self, name: &str) -> Option<&VariantSpec> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// The default name of the `i`-th variant.
pub fn default_variant_name(i: usize) -> String {
    variant_name(i)
}

/// A fresh campaign id: `c` and 9 lower-case letters and digits (45 bits).
///
/// # Panics
/// If the operating system has no randomness source.
pub fn new_campaign_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 9];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut id = String::from("c");
    id.extend(bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % 32])));
    id
}

/// A fresh link secret.
///
/// # Panics
/// If the operating system has no randomness source.
pub fn new_link_key() -> clawbridge_campaign::links::LinkKey {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    clawbridge_campaign::links::LinkKey::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_written_name_colon_settings() {
        let a = VariantSpec { name: "A".into(), template: Some("SALE_A".into()), text: None, lang: Some("ko".into()) };
        let b = VariantSpec::parse("B:template=SALE_B", &a).unwrap();
        assert_eq!((b.name.as_str(), b.template.as_deref(), b.lang.as_deref()), ("B", Some("SALE_B"), Some("ko")));
        let c = VariantSpec::parse("C:text=50% 할인!;lang=en_US", &a).unwrap();
        assert_eq!((c.template, c.text.as_deref(), c.lang.as_deref()), (None, Some("50% 할인!"), Some("en_US")));
        assert!(VariantSpec::parse("B", &a).is_err());
        assert!(VariantSpec::parse("B:color=red", &a).is_err());
        assert!(VariantSpec::parse(" :template=X", &a).is_err());
        assert_eq!(b.describe(), "template=SALE_B");
    }

    #[test]
    fn ab_tests_take_a_share_first() {
        assert_eq!(parse_duration("2h").unwrap(), 7_200_000);
        assert_eq!(parse_duration("30m").unwrap(), 1_800_000);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        let test = AbTest { share: 10, pick_after_ms: 0, by: "ctr".into(), winner: None };
        let n = (0..5_000).filter(|i| test.in_test("c1", &format!("0101{i:07}"))).count();
        assert!((400..600).contains(&n), "{n}");
        assert!(AbTest { share: 100, ..test }.in_test("c1", "x"));
    }

    #[test]
    fn ids_are_short_and_distinct() {
        let a = new_campaign_id();
        assert_eq!(a.len(), 10);
        assert!(a.starts_with('c'));
        assert_ne!(a, new_campaign_id());
    }

    #[test]
    fn the_spec_assigns_variants_by_its_split() {
        let a = VariantSpec { name: "A".into(), template: Some("X".into()), text: None, lang: None };
        let b = VariantSpec { name: "B".into(), ..a.clone() };
        let spec = Spec {
            channel: Channel::Alimtalk,
            variants: vec![a, b],
            split: vec![50, 50],
            buttons: vec![],
            targeting: None,
            fallback: None,
            ad: false,
            track_base: None,
            file: String::new(),
            test: None,
        };
        let names: std::collections::HashSet<&str> =
            (0..50).map(|i| spec.variant_of("c1", &format!("0101234{i:04}")).name.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert_eq!(spec.variant_of("c1", "01012345678"), spec.variant_of("c1", "01012345678"));
    }
}
