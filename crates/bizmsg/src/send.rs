//! What a send request becomes before anything leaves: the checks a CLI call or an agent's tool
//! call passes (template, variables, number, fallback), turned into the durable row the queue
//! sends from; and what a dealer's report becomes on that row.

use crate::brand::BrandContent;
use crate::config::BizmsgConfig;
use crate::dealer::{DealerKind, Fallback, Report, ReportState};
use crate::dispatch::Pending;
use crate::phone::PhoneNumber;
use crate::template::Rendered;
use clawbridge_core::time::EpochMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Approved-template notifications.
    #[default]
    Alimtalk,
    /// Channel-friend marketing (FriendTalk's successor).
    Brand,
}

impl Product {
    /// `alimtalk` / `brand`, as stored and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alimtalk => "alimtalk",
            Self::Brand => "brand",
        }
    }
}

/// Whether an AlimTalk that cannot be delivered is sent as SMS/LMS (`--fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackChoice {
    /// As the template says: with its `fallbackConfig` when it has one.
    #[default]
    Template,
    /// Never.
    None,
    /// The template's text as SMS (refused when too long).
    Sms,
    /// The template's text as LMS.
    Lms,
}

impl std::str::FromStr for FallbackChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sms" => Ok(Self::Sms),
            "lms" => Ok(Self::Lms),
            "none" => Ok(Self::None),
            other => Err(format!("--fallback {other:?}: use sms, lms or none")),
        }
    }
}

/// An AlimTalk as asked for.
#[derive(Debug, Clone)]
pub struct AlimtalkRequest {
    /// The sender account (`default`).
    pub account: String,
    /// The recipient as written.
    pub to: String,
    /// The template code.
    pub template: String,
    /// The variables.
    pub variables: BTreeMap<String, String>,
    /// SMS/LMS fallback.
    pub fallback: FallbackChoice,
    /// Deliver at (a schedule), `None` for now.
    pub at: Option<EpochMs>,
    /// The caller's idempotency key (`--idempotency-key`, an agent tool call id); `None` makes
    /// one from the content, so the same command run twice within the dedup window sends once.
    pub idempotency_key: Option<String>,
    /// `cli`, `agent`, `campaign:<id>`.
    pub origin: String,
}

/// What a row sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Message {
    /// An AlimTalk: the filled-in template.
    Alimtalk(Rendered),
    /// A Brand Message.
    Brand(BrandContent),
}

impl Message {
    /// Which product.
    pub fn product(&self) -> Product {
        match self {
            Self::Alimtalk(_) => Product::Alimtalk,
            Self::Brand(_) => Product::Brand,
        }
    }
}

/// What is stored in a row's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// What to send.
    pub message: Message,
}

/// A checked send, ready to be stored (the binary maps it onto the store's row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Unique per send.
    pub idempotency_key: String,
    /// The sender account.
    pub account: String,
    /// The product.
    pub product: Product,
    /// The dealer.
    pub dealer: DealerKind,
    /// The recipient.
    pub recipient: PhoneNumber,
    /// The template code.
    pub template_code: Option<String>,
    /// The payload JSON.
    pub payload: String,
    /// Who asked.
    pub origin: String,
    /// Not before.
    pub not_before: EpochMs,
}

/// Checks an AlimTalk request against the configuration and fills the template in.
///
/// # Errors
/// The first problem, naming the setting, the template or the field.
pub fn prepare_alimtalk(config: &BizmsgConfig, request: &AlimtalkRequest, now: EpochMs) -> Result<Prepared, String> {
    let account = config.account(&request.account)?;
    let to = PhoneNumber::parse(&request.to).map_err(|e| format!("--to: {e}"))?;
    let mut template = config.templates.get(&request.template).map_err(|e| e.to_string())?.clone();
    let with_fallback = match request.fallback {
        FallbackChoice::None => false,
        FallbackChoice::Template => template.fallback_config.is_some(),
        FallbackChoice::Sms | FallbackChoice::Lms => {
            let kind = if request.fallback == FallbackChoice::Sms {
                crate::template::FallbackKind::Sms
            } else {
                crate::template::FallbackKind::Lms
            };
            // The template's fallback text in the asked kind, or its AlimTalk text.
            let message =
                template.fallback_config.as_ref().map_or_else(|| template.text.clone(), |f| f.message.clone());
            let title = template.fallback_config.as_ref().and_then(|f| f.title.clone());
            template.fallback_config = Some(crate::template::FallbackConfig { kind, message, title });
            true
        }
    };
    if with_fallback && account.sender.sms_from.is_none() {
        return Err(format!(
            "an SMS/LMS fallback needs the caller id it is sent from: set BIZMSG_SMS_FROM (bizmsg.smsFrom{}), or send \
             with --fallback none",
            if account.id == "default" { String::new() } else { format!(" or bizmsg.accounts.{}.smsFrom", account.id) }
        ));
    }
    let rendered = template.render(&request.variables, with_fallback).map_err(|e| e.to_string())?;
    if let Some(at) = request.at {
        if at < now - 60_000 {
            return Err("--at is in the past: give a time to come, or leave --at out to send now".to_owned());
        }
        if at > now + 60 * clawbridge_core::time::DAY_MS {
            return Err("--at is more than 60 days ahead: schedule it closer to the date".to_owned());
        }
    }
    // A schedule is the row's `not_before`: the queue holds it until then and the dealer sends
    // at once, so a daemon that was down at the time still sends it (late) instead of the
    // dealer refusing a time in the past.
    let payload = Payload { message: Message::Alimtalk(rendered) };
    let payload_json = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
    let idempotency_key = match &request.idempotency_key {
        Some(key) if !key.trim().is_empty() => format!("{}:{key}", request.origin),
        _ => content_key(&account.id, &to, &payload_json),
    };
    Ok(Prepared {
        idempotency_key,
        account: account.id.clone(),
        product: Product::Alimtalk,
        dealer: config.dealer.kind(),
        recipient: to,
        template_code: Some(template.template_code),
        payload: payload_json,
        origin: request.origin.clone(),
        not_before: request.at.unwrap_or(now),
    })
}

/// A key from what is sent: the same message to the same number from the same account twice is
/// one send (a command run again after a timeout, a repeated tool call).
pub(crate) fn content_key(account: &str, to: &PhoneNumber, payload: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [account, to.national(), payload] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("content:{}", hex::encode(&hash.finalize()[..16]))
}

/// A stored row read back for sending.
///
/// # Errors
/// A payload or number that does not read (a corrupt row: it is given up, not retried).
pub fn pending(
    id: i64,
    account: &str,
    recipient: &str,
    payload: &str,
    request_key: Option<&str>,
) -> Result<Pending, String> {
    let payload: Payload = serde_json::from_str(payload).map_err(|e| format!("row {id}: unreadable payload: {e}"))?;
    Ok(Pending {
        id,
        account: account.to_owned(),
        to: PhoneNumber::parse(recipient).map_err(|e| format!("row {id}: {e}"))?,
        message: payload.message,
        send_at: None,
        request_key: request_key.and_then(crate::dispatch::RequestKey::parse),
    })
}

/// How a report is stored: its result word, fallback word and rank (a report only replaces
/// one of a lower or equal rank, so a late "pending" never hides a "delivered").
pub fn result_of(report: &Report) -> (&'static str, Option<&'static str>, i64) {
    let result = match report.state {
        ReportState::Pending => "pending",
        ReportState::Delivered => "delivered",
        ReportState::Failed => "failed",
        ReportState::Cancelled => "cancelled",
    };
    let fallback = report.fallback.map(|f| match f {
        Fallback::None => "none",
        Fallback::Armed => "armed",
        Fallback::Sending => "sending",
        Fallback::Sent => "sent",
        Fallback::Failed => "failed",
    });
    let rank = match (report.state, report.fallback) {
        (ReportState::Pending, _) => 1,
        (_, Some(Fallback::Sent | Fallback::Failed)) => 3,
        _ => 2,
    };
    (result, fallback, rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sms_from: bool) -> BizmsgConfig {
        let mut vars: BTreeMap<&str, &str> = [
            ("BIZMSG_DEALER", "nhn"),
            ("BIZMSG_SENDER_KEY", "SK"),
            ("NHN_BIZMSG_APP_KEY", "A"),
            ("NHN_BIZMSG_SECRET_KEY", "S"),
        ]
        .into();
        if sms_from {
            vars.insert("BIZMSG_SMS_FROM", "02-1234-5678");
        }
        let file: toml::Table = toml::from_str(
            r##"
            [[templates]]
            templateCode = "SHIPPED"
            text = "#{name}님, 상품이 발송되었습니다."
            fallbackConfig = { type = "SMS", message = "#{name}님 상품 발송" }
            [[templates]]
            templateCode = "OTP"
            text = "인증번호는 #{code}입니다."
            "##,
        )
        .unwrap();
        BizmsgConfig::load(Some(&file), &|name| vars.get(name).map(|v| (*v).to_owned())).unwrap().unwrap()
    }

    fn request(template: &str, vars: &[(&str, &str)]) -> AlimtalkRequest {
        AlimtalkRequest {
            account: "default".into(),
            to: "010-1234-5678".into(),
            template: template.into(),
            variables: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            fallback: FallbackChoice::Template,
            at: None,
            idempotency_key: None,
            origin: "cli".into(),
        }
    }

    const NOW: EpochMs = 1_798_070_400_000;

    #[test]
    fn a_checked_request_becomes_a_row_with_a_content_key() {
        let prepared = prepare_alimtalk(&config(true), &request("SHIPPED", &[("name", "홍길동")]), NOW).unwrap();
        assert_eq!(
            (prepared.recipient.national(), prepared.template_code.as_deref()),
            ("01012345678", Some("SHIPPED"))
        );
        assert_eq!((prepared.dealer, prepared.product, prepared.not_before), (DealerKind::Nhn, Product::Alimtalk, NOW));
        let payload: Payload = serde_json::from_str(&prepared.payload).unwrap();
        let Message::Alimtalk(rendered) = &payload.message else { panic!("alimtalk") };
        assert_eq!(rendered.text, "홍길동님, 상품이 발송되었습니다.");
        assert_eq!(rendered.fallback.as_ref().unwrap().message, "홍길동님 상품 발송");
        // The same request is the same key; another variable value is another send.
        let again = prepare_alimtalk(&config(true), &request("SHIPPED", &[("name", "홍길동")]), NOW + 5).unwrap();
        assert_eq!(again.idempotency_key, prepared.idempotency_key);
        let other = prepare_alimtalk(&config(true), &request("SHIPPED", &[("name", "김철수")]), NOW).unwrap();
        assert_ne!(other.idempotency_key, prepared.idempotency_key);
        let mut keyed = request("SHIPPED", &[("name", "홍길동")]);
        keyed.idempotency_key = Some("order-77".into());
        assert_eq!(prepare_alimtalk(&config(true), &keyed, NOW).unwrap().idempotency_key, "cli:order-77");
        let row = pending(1, "default", "01012345678", &prepared.payload, Some("bz1-1")).unwrap();
        assert_eq!(row.message, payload.message);
        assert!(row.request_key.is_some());
    }

    #[test]
    fn every_problem_is_refused_before_anything_is_stored() {
        let cases: [(AlimtalkRequest, bool, &str); 6] = [
            (request("NOPE", &[]), true, "no AlimTalk template \"NOPE\""),
            (request("OTP", &[]), true, "needs the variable \"code\""),
            (request("OTP", &[("code", "1"), ("x", "2")]), true, "has no variable \"x\""),
            (AlimtalkRequest { to: "02-123-4567".into(), ..request("OTP", &[("code", "1")]) }, true, "--to:"),
            (request("SHIPPED", &[("name", "a")]), false, "BIZMSG_SMS_FROM"),
            (
                AlimtalkRequest { account: "outlet".into(), ..request("OTP", &[("code", "1")]) },
                true,
                "no bizmsg account",
            ),
        ];
        for (req, sms_from, needle) in cases {
            let e = prepare_alimtalk(&config(sms_from), &req, NOW).unwrap_err();
            assert!(e.contains(needle), "{req:?}: {e}");
        }
        let past = AlimtalkRequest { at: Some(NOW - 3_600_000), ..request("OTP", &[("code", "1")]) };
        assert!(prepare_alimtalk(&config(true), &past, NOW).unwrap_err().contains("in the past"));
        // No fallback asked of a template without one; --fallback none on one that has it.
        let none = AlimtalkRequest { fallback: FallbackChoice::None, ..request("SHIPPED", &[("name", "a")]) };
        assert!(prepare_alimtalk(&config(false), &none, NOW).is_ok());
        let lms = AlimtalkRequest { fallback: FallbackChoice::Lms, ..request("OTP", &[("code", "1")]) };
        let payload: Payload =
            serde_json::from_str(&prepare_alimtalk(&config(true), &lms, NOW).unwrap().payload).unwrap();
        let Message::Alimtalk(rendered) = payload.message else { panic!("alimtalk") };
        assert_eq!(rendered.fallback.unwrap().message, "인증번호는 1입니다.");
    }

    #[test]
    fn a_schedule_is_the_rows_not_before() {
        let at = NOW + 3_600_000;
        let req = AlimtalkRequest { at: Some(at), ..request("OTP", &[("code", "1")]) };
        let prepared = prepare_alimtalk(&config(true), &req, NOW).unwrap();
        assert_eq!(prepared.not_before, at);
        let row = pending(1, "default", "01012345678", &prepared.payload, None).unwrap();
        assert_eq!(row.send_at, None, "the queue holds it; the dealer sends when it is due");
    }

    #[test]
    fn reports_rank_so_that_results_only_move_forward() {
        let report = |state, fallback| Report {
            dealer_id: "d".into(),
            state,
            code: None,
            reason: None,
            done_at: None,
            fallback,
        };
        assert_eq!(result_of(&report(ReportState::Pending, None)), ("pending", None, 1));
        assert_eq!(result_of(&report(ReportState::Delivered, Some(Fallback::None))), ("delivered", Some("none"), 2));
        assert_eq!(result_of(&report(ReportState::Failed, Some(Fallback::Armed))), ("failed", Some("armed"), 2));
        assert_eq!(result_of(&report(ReportState::Failed, Some(Fallback::Sent))), ("failed", Some("sent"), 3));
    }
}
