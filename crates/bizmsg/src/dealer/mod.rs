//! The three dealers' wire formats, without I/O: a send becomes a [`WireRequest`] (path, headers,
//! JSON body), and the dealer's answer becomes one [`ItemOutcome`] per recipient — or a
//! [`SendError`] for the whole request, classified for the retry policy. Every dealer can answer
//! HTTP 200 and still refuse some recipients (NHN `sendResults`, Solapi `failedMessageList`,
//! Infobip `status.groupName`); that is read here, on every answer.
//!
//! Each recipient carries our own reference (its durable row's id), which the dealer echoes back
//! (NHN `recipientGroupingKey`, Infobip `destinations[].messageId`, Solapi `customFields`), so
//! answers are matched by reference, never by position; where an answer lacks it (NHN's Brand
//! Message answers give the place, a Solapi answer may omit `customFields`) by place or number, so
//! one request never holds the same number twice ([`Batch::new`] refuses it). The same references
//! find a request's messages at the dealer when its answer was lost, and the dealer's ids find
//! their delivery results ([`Report`]).

pub mod infobip;
pub mod nhn;
pub mod solapi;

use crate::phone::{PhoneNumber, SenderNumber};
use crate::template::Rendered;
use clawbridge_core::SendError;
use clawbridge_core::time::EpochMs;
use std::collections::BTreeSet;

/// Which dealer (`BIZMSG_DEALER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DealerKind {
    /// NHN Cloud KakaoTalk Bizmessage.
    Nhn,
    /// Solapi.
    Solapi,
    /// Infobip.
    Infobip,
}

impl DealerKind {
    /// `nhn`, `solapi`, `infobip`: the setting's values and the metrics label.
    pub fn id(self) -> &'static str {
        match self {
            Self::Nhn => "nhn",
            Self::Solapi => "solapi",
            Self::Infobip => "infobip",
        }
    }

    /// The most recipients one request may carry (reference/bizmsg.md §2, §3).
    pub fn max_batch(self) -> usize {
        match self {
            Self::Nhn => 1_000,
            Self::Solapi => 10_000,
            // Infobip documents no per-request cap for `messages`; 1,000 keeps a request (and
            // the damage of one lost answer) the size of NHN's.
            Self::Infobip => 1_000,
        }
    }
}

impl std::str::FromStr for DealerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nhn" => Ok(Self::Nhn),
            "solapi" => Ok(Self::Solapi),
            "infobip" => Ok(Self::Infobip),
            other => Err(format!("BIZMSG_DEALER (bizmsg.dealer) {other:?}: use nhn, solapi or infobip")),
        }
    }
}

/// One HTTP request to a dealer, relative to its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRequest {
    /// `POST`, `GET`.
    pub method: &'static str,
    /// The path and query (`/alimtalk/v2.3/appkeys/…/messages`).
    pub path: String,
    /// Headers besides `Content-Type: application/json` (authentication, idempotency).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body (empty for a `GET`).
    pub body: Vec<u8>,
}

/// One AlimTalk recipient of a request.
#[derive(Debug, Clone)]
pub struct AlimTalkItem {
    /// Our reference for this recipient (its durable row), echoed back where the dealer can.
    pub reference: String,
    /// The recipient.
    pub to: PhoneNumber,
    /// The template filled in for them, with the fallback text when one is wanted.
    pub rendered: Rendered,
}

/// Who one message of a request goes to: what an answer is matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    /// Our reference.
    pub reference: String,
    /// The recipient.
    pub to: PhoneNumber,
}

impl AlimTalkItem {
    /// Its addressee.
    pub fn addressee(&self) -> Addressee {
        Addressee { reference: self.reference.clone(), to: self.to.clone() }
    }
}

/// The addressees of `items`.
pub fn addressees(items: &[AlimTalkItem]) -> Vec<Addressee> {
    items.iter().map(AlimTalkItem::addressee).collect()
}

/// Recipients of one template, sent in one request.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The template code (NHN, Infobip).
    pub template_code: String,
    /// Solapi's template id (`KA01TP…`).
    pub template_id: Option<String>,
    /// The recipients.
    pub items: Vec<AlimTalkItem>,
    /// Deliver at this instant instead of now (the dealer holds it).
    pub send_at: Option<EpochMs>,
}

impl Batch {
    /// A batch of one template's recipients.
    ///
    /// # Errors
    /// Recipients of another template, the same number twice, or more recipients than the
    /// dealer takes in one request.
    pub fn new(dealer: DealerKind, items: Vec<AlimTalkItem>, send_at: Option<EpochMs>) -> Result<Self, String> {
        let Some(first) = items.first() else { return Err("a batch needs at least one recipient".to_owned()) };
        let template_code = first.rendered.template_code.clone();
        if items.len() > dealer.max_batch() {
            return Err(format!(
                "{} recipients in one {} request, at most {}",
                items.len(),
                dealer.id(),
                dealer.max_batch()
            ));
        }
        let mut numbers = BTreeSet::new();
        for item in &items {
            if item.rendered.template_code != template_code {
                return Err(format!(
                    "one request carries one template: {} and {}",
                    template_code, item.rendered.template_code
                ));
            }
            if !numbers.insert(item.to.national().to_owned()) {
                return Err(format!("{} is twice in one request; send it in the next one", item.to));
            }
        }
        let template_id = first.rendered.template_id.clone();
        Ok(Self { template_code, template_id, items, send_at })
    }
}

/// Where the SMS/LMS fallback comes from and the sender's profile.
#[derive(Debug, Clone)]
pub struct Sender {
    /// NHN sender key, Solapi `pfId`, Infobip sender (`BIZMSG_SENDER_KEY`).
    pub sender_key: String,
    /// The caller id fallbacks are sent from (`BIZMSG_SMS_FROM`).
    pub sms_from: Option<SenderNumber>,
}

/// What the dealer said about one recipient when the request was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// Our reference.
    pub reference: String,
    /// Accepted (delivery follows asynchronously) or refused now.
    pub result: ItemResult,
}

/// Accepted or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// The dealer took it; its id is what results are looked up and reported by.
    Accepted {
        /// The dealer's id of this recipient's message (NHN `requestId/recipientSeq`,
        /// Solapi `messageId`, Infobip `messageId`).
        dealer_id: String,
    },
    /// The dealer refused this recipient; sending the same again fails the same way.
    Refused {
        /// The dealer's code.
        code: String,
        /// Its words.
        reason: String,
    },
}

/// Where a recipient's message is, as a dealer reports it (result queries and webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The dealer's id, as in [`ItemResult::Accepted`].
    pub dealer_id: String,
    /// Delivered, failed, cancelled, or still on its way.
    pub state: ReportState,
    /// The result code (Kakao's at NHN, the dealer's own error name at Infobip).
    pub code: Option<String>,
    /// What the code means.
    pub reason: Option<String>,
    /// When it was delivered or given up, as the dealer wrote it.
    pub done_at: Option<String>,
    /// The SMS/LMS fallback, where the dealer reports it.
    pub fallback: Option<Fallback>,
}

/// How far a message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// On the phone.
    Delivered,
    /// Will not be delivered as an AlimTalk.
    Failed,
    /// A scheduled send that was cancelled.
    Cancelled,
    /// Not final yet.
    Pending,
}

/// The SMS/LMS fallback of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// None was asked for.
    None,
    /// Asked for; sent if the AlimTalk fails.
    Armed,
    /// Being sent.
    Sending,
    /// The SMS/LMS was sent.
    Sent,
    /// The SMS/LMS failed too.
    Failed,
}

/// A request-level answer that is not a success, classified: 429 and the dealers' volume codes
/// are rate limits, 5xx and timeouts transient, a refused key is the operator's to fix.
pub fn http_error(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> SendError {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    match status {
        429 => SendError::RateLimited { retry_after },
        500..=599 | 408 => SendError::Transient { reason: format!("HTTP {status}: {text}"), retry_after },
        _ => SendError::Permanent(format!("HTTP {status}: {text}")),
    }
}

/// `value` for a query string: unreserved characters as they are, every other byte escaped.
pub(crate) fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answers for every item not named in a response: a dealer that answers 200 and leaves a
/// recipient out has not told us it took it.
pub(crate) fn missing(items: &[Addressee], outcomes: &mut Vec<ItemOutcome>) {
    for item in items {
        if !outcomes.iter().any(|o| o.reference == item.reference) {
            outcomes.push(ItemOutcome {
                reference: item.reference.clone(),
                result: ItemResult::Refused {
                    code: "missing".to_owned(),
                    reason: "the dealer's answer does not mention this recipient".to_owned(),
                },
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::template::AlimTalkTemplate;
    use std::collections::BTreeMap;

    pub(crate) fn template() -> AlimTalkTemplate {
        toml::from_str(
            r##"
            templateCode = "ORDER_SHIPPED"
            templateId = "KA01TP230101000000000000000001"
            text = "#{name}님, 주문하신 상품이 발송되었습니다."
            buttons = [{ type = "WL", name = "주문 보기", linkMo = "https://shop.example/o/#{order}", linkPc = "https://shop.example/p/#{order}" }]
            fallbackConfig = { type = "LMS", message = "#{name}님 상품 발송", title = "발송 안내" }
            "##,
        )
        .unwrap()
    }

    pub(crate) fn item(reference: &str, phone: &str, name: &str, fallback: bool) -> AlimTalkItem {
        let values: BTreeMap<String, String> =
            [("name".to_owned(), name.to_owned()), ("order".to_owned(), "A-1".to_owned())].into();
        AlimTalkItem {
            reference: reference.to_owned(),
            to: PhoneNumber::parse(phone).unwrap(),
            rendered: template().render(&values, fallback).unwrap(),
        }
    }

    pub(crate) fn sender() -> Sender {
        Sender { sender_key: "a".repeat(40), sms_from: Some(SenderNumber::parse("02-1234-5678").unwrap()) }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_batch_is_one_template_and_each_number_once() {
        let two = vec![item("r1", "010-1111-2222", "가", false), item("r2", "010-3333-4444", "나", false)];
        assert_eq!(Batch::new(DealerKind::Nhn, two, None).unwrap().template_code, "ORDER_SHIPPED");
        let twice = vec![item("r1", "010-1111-2222", "가", false), item("r2", "01011112222", "나", false)];
        assert!(Batch::new(DealerKind::Solapi, twice, None).unwrap_err().contains("010-****-2222"));
        assert!(Batch::new(DealerKind::Nhn, vec![], None).is_err());
        let many: Vec<_> = (0..1_001).map(|i| item(&format!("r{i}"), &format!("010{i:08}"), "가", false)).collect();
        assert!(Batch::new(DealerKind::Nhn, many.clone(), None).unwrap_err().contains("at most 1000"));
        assert!(Batch::new(DealerKind::Solapi, many, None).is_ok());
    }

    #[test]
    fn dealer_names_parse_with_the_setting_named() {
        assert_eq!("NHN".parse::<DealerKind>().unwrap(), DealerKind::Nhn);
        assert!("toast".parse::<DealerKind>().unwrap_err().contains("BIZMSG_DEALER"));
    }

    #[test]
    fn request_failures_are_classified() {
        assert_eq!(http_error(429, b"", None).class(), clawbridge_core::RetryClass::RateLimited);
        assert_eq!(http_error(503, b"busy", None).class(), clawbridge_core::RetryClass::Transient);
        assert_eq!(http_error(400, b"bad", None).class(), clawbridge_core::RetryClass::Permanent);
    }
}
