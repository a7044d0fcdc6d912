//! One campaign recipient → one row of an existing send queue: a business-message row checked
//! by the bizmsg crate exactly as `alimtalk send` / `brand send` check theirs, or a WhatsApp
//! template in the outbox. The row's idempotency key is `campaign:<id>:<recipient>`, so storing
//! it again (a runner that crashed before marking the recipient) finds the same row.
//!
//! Tracked links: with a public base URL, every link in the message's text, its buttons and
//! its variables becomes `<base>/r/<token>`, numbered in that order ([`tracked_urls`] lists
//! them the same way, which is how a click finds its original URL again).

use super::{Channel, Spec, VariantSpec};
use clawbridge_bizmsg::brand::{BrandButton, BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, Prepared, prepare_alimtalk};
use clawbridge_campaign::links::{self, LinkKey};
use clawbridge_core::{AccountId, ChannelData, ChannelId, EpochMs, IdempotencyKey, OutboundMessage, PeerId};
use clawbridge_store::{CampaignRow, NewBizmsg, NewOutbound, RecipientRow};
use clawbridge_whatsapp::account::OutboundSpec;
use std::collections::BTreeMap;

/// A recipient's send row.
#[derive(Debug, Clone)]
pub enum SendRow {
    /// AlimTalk or Brand Message.
    Bizmsg(NewBizmsg),
    /// WhatsApp.
    Outbox(NewOutbound),
}

/// What the message of one recipient is made of, before links are tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// Brand Message free text, placeholders filled in.
    pub text: Option<String>,
    /// Brand Message buttons.
    pub buttons: Vec<(String, String)>,
    /// The variables the template takes.
    pub variables: BTreeMap<String, String>,
}

/// The variables stored with a recipient.
pub fn stored_variables(row: &RecipientRow) -> BTreeMap<String, String> {
    serde_json::from_str(&row.variables).unwrap_or_default()
}

/// `#{name}` in `text` replaced by the file's column `name` (unknown placeholders stay).
pub fn fill(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in variables {
        out = out.replace(&format!("#{{{name}}}"), value);
    }
    out
}

/// The template variables of a variant (what the template declares; every column for WhatsApp).
pub fn template_variables(
    spec: &Spec,
    variant: &VariantSpec,
    bizmsg: Option<&BizmsgConfig>,
) -> Result<Option<Vec<String>>, String> {
    let Some(code) = &variant.template else { return Ok(None) };
    match spec.channel {
        Channel::Whatsapp => Ok(None),
        Channel::Alimtalk => {
            let config = bizmsg.ok_or_else(not_configured)?;
            Ok(Some(config.templates.get(code).map_err(|e| e.to_string())?.variable_names()))
        }
        Channel::Brand => {
            let config = bizmsg.ok_or_else(not_configured)?;
            Ok(Some(config.brand_templates.get(code).map_err(|e| e.to_string())?.variable_names()))
        }
    }
}

fn not_configured() -> String {
    "business messages are not configured: set BIZMSG_DEALER, BIZMSG_SENDER_KEY and the dealer's credentials".to_owned()
}

/// The parts of `variant`'s message for a recipient with `variables`.
pub fn parts(
    spec: &Spec,
    variant: &VariantSpec,
    variables: &BTreeMap<String, String>,
    bizmsg: Option<&BizmsgConfig>,
) -> Result<Parts, String> {
    let text = variant.text.as_ref().map(|t| fill(t, variables));
    let variables = match template_variables(spec, variant, bizmsg)? {
        Some(names) => {
            variables.iter().filter(|(k, _)| names.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        None if variant.template.is_some() => variables.clone(),
        None => BTreeMap::new(),
    };
    let buttons = if spec.channel == Channel::Brand { spec.buttons.clone() } else { Vec::new() };
    Ok(Parts { text, buttons, variables })
}

/// The links of a recipient's message, in the order tokens number them.
pub fn tracked_urls(parts: &Parts) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(text) = &parts.text {
        out.extend(links::urls(text).into_iter().map(str::to_owned));
    }
    for (_, url) in &parts.buttons {
        out.extend(links::urls(url).into_iter().map(str::to_owned));
    }
    for value in parts.variables.values() {
        out.extend(links::urls(value).into_iter().map(str::to_owned));
    }
    out
}

/// The parts with every link replaced by `replace(index, url)`, numbered as [`tracked_urls`].
pub fn rewrite(parts: &Parts, mut replace: impl FnMut(u32, &str) -> String) -> Parts {
    let mut next = 0;
    let mut out = Parts::default();
    if let Some(text) = &parts.text {
        let (t, n) = links::rewrite(text, next, &mut replace);
        out.text = Some(t);
        next = n;
    }
    for (name, url) in &parts.buttons {
        let (u, n) = links::rewrite(url, next, &mut replace);
        out.buttons.push((name.clone(), u));
        next = n;
    }
    for (name, value) in &parts.variables {
        let (v, n) = links::rewrite(value, next, &mut replace);
        out.variables.insert(name.clone(), v);
        next = n;
    }
    out
}

/// The idempotency key of a recipient's send row.
pub fn send_key(campaign: &str, recipient: &str) -> String {
    format!("campaign:{campaign}:{recipient}")
}

fn bizmsg_row(p: Prepared) -> NewBizmsg {
    NewBizmsg {
        idempotency_key: p.idempotency_key,
        account: p.account,
        product: p.product.as_str().to_owned(),
        dealer: p.dealer.id().to_owned(),
        recipient: p.recipient.national().to_owned(),
        template_code: p.template_code,
        payload: p.payload,
        origin: p.origin,
        not_before: p.not_before,
    }
}

/// The send row of `row` in `campaign`, checked as a single send would be.
///
/// # Errors
/// Why this recipient's message cannot be sent (a variable too long for the template, a number
/// the dealer cannot reach…).
pub fn build(
    campaign: &CampaignRow,
    spec: &Spec,
    row: &RecipientRow,
    bizmsg: Option<&BizmsgConfig>,
    key: Option<&LinkKey>,
    now: EpochMs,
) -> Result<SendRow, String> {
    let variant = spec.variant(&row.variant).unwrap_or(&spec.variants[0]);
    let variables = stored_variables(row);
    let mut parts = parts(spec, variant, &variables, bizmsg)?;
    if let (Some(base), Some(key)) = (&spec.track_base, key) {
        parts = rewrite(&parts, |i, _| links::tracked_url(base, &key.token(&campaign.id, row.id, i)));
    }
    check_sendable(spec, variant, &parts, &row.recipient, &campaign.account, &campaign.id, bizmsg, now)
        .map(|built| built.with_key(&campaign.id, &row.recipient, &campaign.account))
}

/// What [`check_sendable`] built, before the campaign's key is set.
#[derive(Debug, Clone)]
pub enum Built {
    /// A business message.
    Bizmsg(Box<NewBizmsg>),
    /// A WhatsApp template.
    Whatsapp {
        /// The template.
        spec: OutboundSpec,
        /// The number.
        to: String,
    },
}

impl Built {
    fn with_key(self, campaign: &str, recipient: &str, account: &str) -> SendRow {
        match self {
            Self::Bizmsg(row) => SendRow::Bizmsg(*row),
            Self::Whatsapp { spec, to } => SendRow::Outbox(NewOutbound {
                idempotency_key: IdempotencyKey::new(send_key(campaign, recipient)),
                message: OutboundMessage {
                    channel: ChannelId::new(clawbridge_whatsapp::inbound::CHANNEL),
                    account: AccountId::new(account),
                    peer: PeerId::new(to),
                    text: None,
                    media: Vec::new(),
                    reply_to: None,
                    extra: spec.to_extra(),
                },
                inbound_id: None,
                not_before: None,
            }),
        }
    }
}

/// Checks one recipient's message the way its send will be checked, and builds it. Used by
/// `create` on every row (so bad rows are reported before anything is stored) and by the
/// runner.
///
/// # Errors
/// Why it cannot be sent.
#[allow(clippy::too_many_arguments)]
pub fn check_sendable(
    spec: &Spec,
    variant: &VariantSpec,
    parts: &Parts,
    to: &str,
    account: &str,
    campaign: &str,
    bizmsg: Option<&BizmsgConfig>,
    now: EpochMs,
) -> Result<Built, String> {
    let origin = format!("campaign:{campaign}");
    let strip = |e: String| e.trim_start_matches("--to: ").to_owned();
    match spec.channel {
        Channel::Alimtalk => {
            let config = bizmsg.ok_or_else(not_configured)?;
            let template = variant.template.clone().ok_or("an AlimTalk campaign needs --template CODE")?;
            let request = AlimtalkRequest {
                account: account.to_owned(),
                to: to.to_owned(),
                template,
                variables: parts.variables.clone(),
                fallback: spec.fallback.as_deref().map(str::parse).transpose()?.unwrap_or(FallbackChoice::Template),
                at: None,
                idempotency_key: Some(to.to_owned()),
                origin,
            };
            let prepared = prepare_alimtalk(config, &request, now).map_err(strip)?;
            Ok(Built::Bizmsg(Box::new(bizmsg_row(prepared))))
        }
        Channel::Brand => {
            let config = bizmsg.ok_or_else(not_configured)?;
            let buttons = parts
                .buttons
                .iter()
                .map(|(name, url)| format!("{name}|{url}").parse::<BrandButton>())
                .collect::<Result<Vec<_>, _>>()?;
            let targeting: Targeting = spec.targeting.as_deref().map(str::parse).transpose()?.unwrap_or_default();
            let request = BrandRequest {
                account: account.to_owned(),
                to: to.to_owned(),
                text: parts.text.clone().unwrap_or_default(),
                template: variant.template.clone(),
                variables: if variant.template.is_some() { parts.variables.clone() } else { BTreeMap::new() },
                image: None,
                buttons,
                targeting,
                fallback: spec.fallback.as_deref() == Some("lms"),
                at: None,
                idempotency_key: Some(to.to_owned()),
                origin,
            };
            let prepared = prepare_brand(config, &request, now).map_err(strip)?;
            Ok(Built::Bizmsg(Box::new(bizmsg_row(prepared.prepared))))
        }
        Channel::Whatsapp => {
            let name =
                variant.template.clone().ok_or("a WhatsApp campaign sends an approved template: --template NAME")?;
            let to = clawbridge_campaign::address::whatsapp_number(to)?;
            let spec = OutboundSpec::Template {
                name,
                language: variant.lang.clone().unwrap_or_else(|| "en_US".to_owned()),
                params: parts.variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            Ok(Built::Whatsapp { spec, to })
        }
    }
}

/// The extra of a WhatsApp send (for tests that look into the outbox).
pub fn whatsapp_extra(spec: &OutboundSpec) -> ChannelData {
    spec.to_extra()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(channel: Channel) -> Spec {
        Spec {
            channel,
            variants: vec![VariantSpec {
                name: "A".into(),
                template: None,
                text: Some("#{name}님 https://shop.test/a 세일".into()),
                lang: None,
            }],
            split: vec![100],
            buttons: vec![("보기".into(), "https://shop.test/b".into())],
            targeting: None,
            fallback: None,
            ad: true,
            track_base: Some("https://bridge.test".into()),
            file: String::new(),
            test: None,
        }
    }

    #[test]
    fn links_are_numbered_across_text_buttons_and_variables() {
        let vars: BTreeMap<String, String> =
            [("name".to_owned(), "홍길동".to_owned()), ("url".to_owned(), "https://x.test/c".to_owned())].into();
        let s = spec(Channel::Brand);
        let p = parts(&s, &s.variants[0], &vars, None).unwrap();
        assert_eq!(p.text.as_deref(), Some("홍길동님 https://shop.test/a 세일"));
        assert!(p.variables.is_empty(), "free text takes no variables");
        assert_eq!(tracked_urls(&p), ["https://shop.test/a", "https://shop.test/b"]);
        let rewritten = rewrite(&p, |i, _| format!("<{i}>"));
        assert_eq!(rewritten.text.as_deref(), Some("홍길동님 <0> 세일"));
        assert_eq!(rewritten.buttons, [("보기".to_owned(), "<1>".to_owned())]);

        let mut w = spec(Channel::Whatsapp);
        w.variants[0] =
            VariantSpec { name: "A".into(), template: Some("winter_sale".into()), text: None, lang: Some("ko".into()) };
        let p = parts(&w, &w.variants[0], &vars, None).unwrap();
        assert_eq!(tracked_urls(&p), ["https://x.test/c"]);
        let built = check_sendable(&w, &w.variants[0], &p, "+82 10-1234-5678", "default", "c1", None, 0).unwrap();
        let Built::Whatsapp { spec, to } = built else { panic!("a WhatsApp send") };
        assert_eq!(to, "821012345678");
        assert_eq!(
            spec,
            OutboundSpec::Template {
                name: "winter_sale".into(),
                language: "ko".into(),
                params: vec![("name".into(), "홍길동".into()), ("url".into(), "https://x.test/c".into())]
            }
        );
        assert!(check_sendable(&w, &w.variants[0], &p, "010-1234-5678", "default", "c1", None, 0).is_err());
        assert_eq!(send_key("c1", "821012345678"), "campaign:c1:821012345678");
    }
}
