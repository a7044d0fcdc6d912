//! Infobip (reference/bizmsg.md §4): AlimTalk by `POST /kakao-alim/1/messages`, Brand Message by
//! `POST /kakao-chingu/1/messages`, delivery reports by webhook or `GET /kakao-alim/1/reports`
//! (`/kakao-chingu/1/reports`), and the message logs (`GET …/logs?messageId=…`, the last 48
//! hours), which find our messages by their id: what a resend asks first, and what a row without
//! a final report is asked about.
//!
//! Authentication is `Authorization: App <key>`. Infobip takes the rendered text (it checks it
//! against the template), our reference as `destinations[].messageId` (echoed in the answer and
//! in every report), and the SMS fallback as `options.smsFailover`. Its reports say whether an
//! error is permanent (`error.permanent`), which is the retry class.

use super::{
    Addressee, Batch, Fallback, ItemOutcome, ItemResult, Report, ReportState, Sender, WireRequest, http_error, missing,
    query_value,
};
use crate::send::Product;
use crate::template::{ButtonType, RenderedButton};
use clawbridge_core::SendError;
use clawbridge_core::time::timestamp;
use serde::{Deserialize, Serialize};

/// Infobip's longest template code.
pub const MAX_TEMPLATE_CODE_CHARS: usize = 30;
/// Infobip's longest button name.
pub const MAX_BUTTON_NAME_CHARS: usize = 28;

#[derive(Serialize)]
struct SendBody<'a> {
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<BulkOptions>,
}

#[derive(Serialize)]
struct BulkOptions {
    schedule: Schedule,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schedule {
    bulk_id: String,
    send_at: String,
}

#[derive(Serialize)]
struct Message<'a> {
    sender: &'a str,
    destinations: [Destination<'a>; 1],
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<MessageOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhooks: Option<serde_json::Value>,
}

/// Where Infobip posts a message's delivery report: the daemon's webhook at the operator's
/// public URL, and the token that signs each message's `callbackData` (Infobip echoes it in
/// the report, which is how a report posted there without our header is known to be Infobip's).
#[derive(Clone)]
pub struct ReportWebhook {
    /// `<CLAWBRIDGE_PUBLIC_URL>/bizmsg/infobip/webhook`.
    pub url: String,
    /// `INFOBIP_WEBHOOK_TOKEN`.
    pub token: String,
}

impl std::fmt::Debug for ReportWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWebhook").field("url", &self.url).field("token", &"[redacted]").finish()
    }
}

/// A message's `webhooks`: the report URL, JSON, and the signed `callbackData`.
fn webhooks(report: Option<&ReportWebhook>, message_id: &str) -> Option<serde_json::Value> {
    report.map(|r| {
        serde_json::json!({
            "delivery": { "url": r.url },
            "contentType": "application/json",
            "callbackData": crate::webhook::callback_data(&r.token, message_id),
        })
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Destination<'a> {
    to: String,
    message_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Content<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    template_code: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<Button<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Button<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url_mobile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url_pc: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageOptions<'a> {
    sms_failover: SmsFailover<'a>,
}

#[derive(Serialize)]
struct SmsFailover<'a> {
    sender: &'a str,
    text: &'a str,
}

fn button(b: &RenderedButton) -> Result<Button<'_>, String> {
    let kind = match b.kind {
        ButtonType::WebLink => "URL",
        ButtonType::DeliveryTracking => "DELIVERY_TRACKING",
        ButtonType::BotKeyword => "BOT_KEYWORD",
        ButtonType::MessageDelivery => "MESSAGE_DELIVERY",
        ButtonType::BotSwitch => "CHATBOT_SWITCH",
        ButtonType::AddChannel => "ADD_CHANNEL",
        // Infobip documents APP_LINK without the fields of its schemes, and no consultation switch.
        ButtonType::AppLink | ButtonType::Consultation => {
            return Err(format!(
                "button {:?} ({}) cannot be sent through Infobip: use a WL link or another dealer",
                b.name,
                b.kind.code()
            ));
        }
    };
    if b.name.chars().count() > MAX_BUTTON_NAME_CHARS {
        return Err(format!("button name {:?} is longer than Infobip's {MAX_BUTTON_NAME_CHARS} characters", b.name));
    }
    Ok(Button { kind, name: &b.name, url_mobile: b.link_mo.as_deref(), url_pc: b.link_pc.as_deref() })
}

/// The AlimTalk send for `batch`: one message per recipient (each carries its own rendered text),
/// `bulk_id` naming the batch when it is scheduled, and the report URL when there is one.
///
/// # Errors
/// A template or button Infobip does not take, or a fallback without a sender number.
pub fn alimtalk_send(
    api_key: &str,
    sender: &Sender,
    batch: &Batch,
    bulk_id: &str,
    report: Option<&ReportWebhook>,
) -> Result<WireRequest, String> {
    if batch.template_code.chars().count() > MAX_TEMPLATE_CODE_CHARS {
        return Err(format!(
            "template code {:?} is longer than Infobip's {MAX_TEMPLATE_CODE_CHARS} characters",
            batch.template_code
        ));
    }
    let mut messages = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let options = match &item.rendered.fallback {
            None => None,
            Some(fallback) => {
                let from = sender.sms_from.as_ref().ok_or(
                    "an SMS fallback needs the sender number: set BIZMSG_SMS_FROM (bizmsg.smsFrom) to a sender \
                     registered with Infobip",
                )?;
                Some(MessageOptions { sms_failover: SmsFailover { sender: from.digits(), text: &fallback.message } })
            }
        };
        messages.push(Message {
            sender: &sender.sender_key,
            destinations: [Destination { to: item.to.international(), message_id: &item.reference }],
            content: Content {
                kind: "TEMPLATE",
                template_code: &batch.template_code,
                text: &item.rendered.text,
                buttons: item.rendered.buttons.iter().map(button).collect::<Result<_, _>>()?,
            },
            options,
            webhooks: webhooks(report, &item.reference),
        });
    }
    let options = batch.send_at.map(|at| BulkOptions {
        schedule: Schedule {
            bulk_id: bulk_id.to_owned(),
            send_at: timestamp(at).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        },
    });
    Ok(WireRequest {
        method: "POST",
        path: "/kakao-alim/1/messages".to_owned(),
        headers: vec![("Authorization", format!("App {api_key}"))],
        body: serde_json::to_vec(&SendBody { messages, options }).map_err(|e| e.to_string())?,
    })
}

/// Infobip's `options.targeting` for ours.
fn targeting(targeting: crate::brand::Targeting) -> &'static str {
    use crate::brand::Targeting;
    match targeting {
        Targeting::Friends => "TARGETED_FRIENDS",
        Targeting::Consented => "ALL_CONSENT",
        Targeting::ConsentedNonFriends => "NON_FRIENDS",
    }
}

/// The `content` of a Brand Message: free-form (`TEXT_FREE_FORM`, `IMAGE_FREE_FORM` with the
/// image's URL) or a template (`TEXT_VARIABLE`, `IMAGE_VARIABLE`, with `templateCode`,
/// `messageData`, `buttonData` and, for an image that replaces the template's, `imageData`).
fn brand_content(content: &crate::brand::BrandContent) -> Result<serde_json::Value, String> {
    use crate::template::Bubble;
    let image_url = match &content.image {
        None => None,
        Some(image) => {
            let url = image.dealer_ref.as_deref().ok_or_else(|| format!("the image {:?} has no URL", image.source))?;
            if url.chars().count() > MAX_IMAGE_URL_CHARS {
                return Err(format!("--image: Infobip takes image URLs of at most {MAX_IMAGE_URL_CHARS} characters"));
            }
            Some(url)
        }
    };
    if let Some(template) = &content.template {
        if template.template_code.chars().count() > MAX_BRAND_TEMPLATE_CODE_CHARS {
            return Err(format!(
                "Brand Message template code {:?} is longer than Infobip's {MAX_BRAND_TEMPLATE_CODE_CHARS} characters",
                template.template_code
            ));
        }
        let mut body = serde_json::json!({
            "type": if content.bubble == Bubble::Image { "IMAGE_VARIABLE" } else { "TEXT_VARIABLE" },
            "templateCode": template.template_code,
        });
        if !template.message_data.is_empty() {
            body["messageData"] = serde_json::json!(template.message_data);
        }
        if !template.button_data.is_empty() {
            body["buttonData"] = serde_json::json!(template.button_data);
        }
        if let Some(url) = image_url {
            body["imageData"] = serde_json::json!([{ "img_url": url }]);
        }
        return Ok(body);
    }
    let buttons: Vec<Button<'_>> = content
        .buttons
        .iter()
        .map(|b| Button { kind: "URL", name: &b.name, url_mobile: Some(&b.link_mo), url_pc: None })
        .collect();
    let mut body = serde_json::json!({
        "type": if image_url.is_some() { "IMAGE_FREE_FORM" } else { "TEXT_FREE_FORM" },
        "text": content.text,
    });
    if let Some(url) = image_url {
        body["image"] = serde_json::json!({ "url": url });
    }
    if !buttons.is_empty() {
        body["buttons"] = serde_json::to_value(&buttons).map_err(|e| e.to_string())?;
    }
    Ok(body)
}

/// Infobip's longest image URL in a free-form Brand Message.
pub const MAX_IMAGE_URL_CHARS: usize = 250;
/// Infobip's longest Brand Message template code.
pub const MAX_BRAND_TEMPLATE_CODE_CHARS: usize = 50;

/// A Brand Message (the `kakao-chingu` API) to `recipients`: free-form or a template, with the
/// targeting in each message's `options` and the report URL when there is one.
///
/// # Errors
/// A fallback without the sender number, an image URL or template code Infobip does not take.
pub fn brand_send(
    api_key: &str,
    sender: &Sender,
    content: &crate::brand::BrandContent,
    recipients: &[Addressee],
    send_at: Option<clawbridge_core::time::EpochMs>,
    bulk_id: &str,
    report: Option<&ReportWebhook>,
) -> Result<WireRequest, String> {
    let mut options = serde_json::json!({ "targeting": targeting(content.targeting) });
    if let Some(fallback) = &content.fallback {
        let from = sender.sms_from.as_ref().ok_or(
            "an SMS fallback needs the sender number: set BIZMSG_SMS_FROM (bizmsg.smsFrom) to a sender registered \
             with Infobip",
        )?;
        options["smsFailover"] = serde_json::json!({ "sender": from.digits(), "text": fallback.message });
    }
    let body_content = brand_content(content)?;
    let messages: Vec<serde_json::Value> = recipients
        .iter()
        .map(|r| {
            let mut message = serde_json::json!({
                "sender": sender.sender_key,
                "destinations": [{ "to": r.to.international(), "messageId": r.reference }],
                "content": body_content,
                "options": options,
            });
            if let Some(webhooks) = webhooks(report, &r.reference) {
                message["webhooks"] = webhooks;
            }
            message
        })
        .collect();
    let mut body = serde_json::json!({ "messages": messages });
    if let Some(at) = send_at {
        let schedule = BulkOptions {
            schedule: Schedule {
                bulk_id: bulk_id.to_owned(),
                send_at: timestamp(at).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            },
        };
        body["options"] = serde_json::to_value(schedule).map_err(|e| e.to_string())?;
    }
    Ok(WireRequest {
        method: "POST",
        path: "/kakao-chingu/1/messages".to_owned(),
        headers: vec![("Authorization", format!("App {api_key}"))],
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

/// Brand Message templates were launched on 2025-05-15: a list "modified since" then is all of them
/// (Infobip's default is the last hour).
pub const BRAND_TEMPLATES_SINCE: &str = "2025-05-15T00:00:00.000+0000";

/// One page (up to 100) of the codes of `sender`'s Brand Message templates
/// (`GET /kakao-brand-messages/1/templates`, which lists codes only).
pub fn brand_templates_query(api_key: &str, sender: &str, page: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "/kakao-brand-messages/1/templates?senderKey={}&since={}&page={page}&size=100",
            query_value(sender),
            query_value(BRAND_TEMPLATES_SINCE)
        ),
        headers: vec![("Authorization", format!("App {api_key}"))],
        body: Vec::new(),
    }
}

/// One template (`GET /kakao-brand-messages/1/templates/single`): its name, type, text, buttons.
pub fn brand_template_query(api_key: &str, sender: &str, code: &str) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "/kakao-brand-messages/1/templates/single?sender={}&templateCode={}",
            query_value(sender),
            query_value(code)
        ),
        headers: vec![("Authorization", format!("App {api_key}"))],
        body: Vec::new(),
    }
}

#[derive(Deserialize)]
struct TemplateCodes {
    #[serde(default)]
    results: Vec<TemplateCode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateCode {
    template_code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SingleTemplate {
    #[serde(default)]
    name: String,
    template_content: SingleContent,
}

#[derive(Deserialize)]
struct SingleContent {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buttons: Vec<SingleButton>,
}

#[derive(Deserialize)]
struct SingleButton {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
}

fn read_ok(status: u16, body: &[u8]) -> Result<(), SendError> {
    if status == 401 || status == 403 {
        let envelope: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
        let (code, description) = envelope.map(|e| (e.error_code, e.description)).unwrap_or_default();
        return Err(SendError::Permanent(format!(
            "Infobip refused the API key (HTTP {status} {code} {description}): check INFOBIP_API_KEY and INFOBIP_BASE_URL"
        )));
    }
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, None));
    }
    Ok(())
}

/// Reads [`brand_templates_query`]'s answer: the template codes of the page.
///
/// # Errors
/// The query failed, classified.
pub fn read_brand_template_codes(status: u16, body: &[u8]) -> Result<Vec<String>, SendError> {
    read_ok(status, body)?;
    let codes: TemplateCodes = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("Infobip's template list is not its JSON: {e}")))?;
    Ok(codes.results.into_iter().map(|c| c.template_code).collect())
}

/// Reads [`brand_template_query`]'s answer. Infobip reports no review status for Brand Message
/// templates (Kakao does not review them): one it lists is usable.
///
/// # Errors
/// The query failed, classified.
pub fn read_brand_template(status: u16, body: &[u8], code: &str) -> Result<crate::template::DealerTemplate, SendError> {
    read_ok(status, body)?;
    let template: SingleTemplate = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("Infobip's template {code:?} is not its JSON: {e}")))?;
    Ok(crate::template::DealerTemplate {
        code: code.to_owned(),
        name: template.name,
        text: template.template_content.text.unwrap_or_default(),
        buttons: template.template_content.buttons.into_iter().map(|b| (b.kind, b.name)).collect(),
        status: crate::template::TemplateStatus::Approved,
        product: crate::send::Product::Brand,
        variables: Vec::new(),
    })
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<AnsweredMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnsweredMessage {
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorEnvelope {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    description: String,
}

/// Reads Infobip's answer to [`alimtalk_send`].
///
/// # Errors
/// The request as a whole failed, classified.
pub fn read_send_answer(
    status: u16,
    body: &[u8],
    items: &[Addressee],
    retry_after: Option<std::time::Duration>,
) -> Result<Vec<ItemOutcome>, SendError> {
    if status == 401 || status == 403 {
        let envelope: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
        let (code, description) = envelope.map(|e| (e.error_code, e.description)).unwrap_or_default();
        return Err(SendError::Permanent(format!(
            "Infobip refused the API key (HTTP {status} {code} {description}): check INFOBIP_API_KEY and INFOBIP_BASE_URL \
             (your account's own host)"
        )));
    }
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, retry_after));
    }
    let answer: SendAnswer = serde_json::from_slice(body).map_err(|e| {
        SendError::transient(format!("Infobip answered {status} with a body that is not its JSON: {e}"))
    })?;
    let mut outcomes = Vec::with_capacity(items.len());
    for message in answer.messages {
        let result = match message.status.group_name.as_str() {
            "REJECTED" | "UNDELIVERABLE" | "EXPIRED" => {
                ItemResult::Refused { code: message.status.name, reason: message.status.description }
            }
            _ => ItemResult::Accepted { dealer_id: message.message_id.clone() },
        };
        outcomes.push(ItemOutcome { reference: message.message_id, result });
    }
    outcomes.retain(|o| items.iter().any(|i| i.reference == o.reference));
    missing(items, &mut outcomes);
    Ok(outcomes)
}

/// The API of `product`: `kakao-alim` (AlimTalk) or `kakao-chingu` (Brand Message).
fn api(product: Product) -> &'static str {
    match product {
        Product::Alimtalk => "kakao-alim",
        Product::Brand => "kakao-chingu",
    }
}

/// The delivery-report query of `product` (`GET /kakao-alim/1/reports`,
/// `GET /kakao-chingu/1/reports`): Infobip hands out each report once, at most `limit` (≤ 1,000).
pub fn reports_query(api_key: &str, product: Product, limit: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!("/{}/1/reports?limit={}", api(product), limit.min(1_000)),
        headers: vec![("Authorization", format!("App {api_key}"))],
        body: Vec::new(),
    }
}

/// The longest `messageId` value of a logs query (Infobip: 2,048 characters).
const MAX_LOG_IDS_CHARS: usize = 2_048;

/// The logs of the messages `message_ids` of `product` (`GET /kakao-alim/1/logs?messageId=a,b`,
/// the last 48 hours), in as many queries as the ids need: each message Infobip has, with its
/// status so far.
pub fn logs_queries(api_key: &str, product: Product, message_ids: &[String]) -> Vec<WireRequest> {
    let mut queries = Vec::new();
    let mut value = String::new();
    let mut count = 0;
    let mut flush = |value: &mut String, count: &mut usize| {
        if !value.is_empty() {
            queries.push(WireRequest {
                method: "GET",
                path: format!("/{}/1/logs?messageId={value}&limit={}", api(product), (*count).clamp(1, 1_000)),
                headers: vec![("Authorization", format!("App {api_key}"))],
                body: Vec::new(),
            });
        }
        value.clear();
        *count = 0;
    };
    for id in message_ids {
        let id = query_value(id);
        if !value.is_empty() && (value.len() + 1 + id.len() > MAX_LOG_IDS_CHARS || count == 1_000) {
            flush(&mut value, &mut count);
        }
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(&id);
        count += 1;
    }
    flush(&mut value, &mut count);
    queries
}

/// Reads a [`reports_query`] or [`logs_queries`] answer (the same `results`).
///
/// # Errors
/// The query failed, classified.
pub fn read_report_query(status: u16, body: &[u8]) -> Result<Vec<InfobipReport>, SendError> {
    read_ok(status, body)?;
    read_reports(body).map_err(SendError::transient)
}

#[derive(Deserialize)]
struct Reports {
    #[serde(default)]
    results: Vec<ReportRow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportRow {
    message_id: String,
    #[serde(default)]
    done_at: Option<String>,
    #[serde(default)]
    status: Status,
    #[serde(default)]
    error: Option<ReportError>,
    #[serde(default)]
    callback_data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportError {
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permanent: bool,
}

/// A report, and whether its error is permanent (`error.permanent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfobipReport {
    /// The common report.
    pub report: Report,
    /// Infobip says sending again cannot help.
    pub permanent: bool,
    /// What the send carried as `callbackData` (our signature, when it named a report URL).
    pub callback_data: Option<String>,
}

/// Reads delivery reports, from the webhook or the reports query (the same JSON).
///
/// # Errors
/// A body that is not Infobip's report JSON.
pub fn read_reports(body: &[u8]) -> Result<Vec<InfobipReport>, String> {
    let reports: Reports = serde_json::from_slice(body).map_err(|e| format!("not Infobip delivery reports: {e}"))?;
    Ok(reports
        .results
        .into_iter()
        .map(|row| {
            let failed = row.error.as_ref().filter(|e| e.group_name != "OK");
            let state = match (row.status.group_name.as_str(), failed) {
                ("DELIVERED", None) => ReportState::Delivered,
                ("PENDING" | "ACCEPTED", None) => ReportState::Pending,
                _ => ReportState::Failed,
            };
            let (code, reason) = match failed {
                Some(e) => (Some(e.name.clone()), Some(e.description.clone())),
                None => (Some(row.status.name.clone()).filter(|s| !s.is_empty()), None),
            };
            InfobipReport {
                permanent: failed.is_some_and(|e| e.permanent),
                callback_data: row.callback_data,
                report: Report {
                    dealer_id: row.message_id,
                    state,
                    code,
                    reason,
                    done_at: row.done_at,
                    // Infobip reports an SMS failover as its own message; the AlimTalk's report
                    // does not say.
                    fallback: None::<Fallback>,
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::dealer::DealerKind;
    use crate::dealer::addressees;
    use serde_json::{Value, json};

    #[test]
    fn alimtalk_is_one_message_per_recipient_with_our_reference_as_its_id() {
        let items = vec![item("r1", "010-1111-2222", "홍길동", true)];
        let batch = Batch::new(DealerKind::Infobip, items, Some(1_798_070_400_000)).unwrap();
        let request = alimtalk_send("KEY", &sender(), &batch, "bulk-1", None).unwrap();
        assert_eq!((request.method, request.path.as_str()), ("POST", "/kakao-alim/1/messages"));
        assert_eq!(request.headers, [("Authorization", "App KEY".to_owned())]);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "messages": [{
                    "sender": "a".repeat(40),
                    "destinations": [{"to": "821011112222", "messageId": "r1"}],
                    "content": {"type": "TEMPLATE", "templateCode": "ORDER_SHIPPED",
                                "text": "홍길동님, 주문하신 상품이 발송되었습니다.",
                                "buttons": [{"type": "URL", "name": "주문 보기",
                                             "urlMobile": "https://shop.example/o/A-1", "urlPc": "https://shop.example/p/A-1"}]},
                    "options": {"smsFailover": {"sender": "0212345678", "text": "홍길동님 상품 발송"}}
                }],
                "options": {"schedule": {"bulkId": "bulk-1", "sendAt": "2026-12-24T00:00:00.000Z"}}
            })
        );
    }

    #[test]
    fn answers_and_reports_are_read_by_our_reference() {
        let items = vec![item("r1", "010-1111-2222", "가", false), item("r2", "010-3333-4444", "나", false)];
        let body = json!({"bulkId": "b", "messages": [
            {"messageId": "r1", "destination": "821011112222", "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "accepted"}},
            {"messageId": "r2", "destination": "821033334444", "status": {"groupId": 5, "groupName": "REJECTED", "id": 52, "name": "REJECTED_DESTINATION", "description": "bad destination"}}
        ]});
        let outcomes = read_send_answer(200, body.to_string().as_bytes(), &addressees(&items), None).unwrap();
        assert_eq!(outcomes[0].result, ItemResult::Accepted { dealer_id: "r1".into() });
        assert_eq!(
            outcomes[1].result,
            ItemResult::Refused { code: "REJECTED_DESTINATION".into(), reason: "bad destination".into() }
        );
        let e = read_send_answer(
            401,
            br#"{"errorCode":"E401","description":"Invalid login details"}"#,
            &addressees(&items),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("INFOBIP_API_KEY"), "{e}");

        let reports = json!({"results": [
            {"bulkId": "b", "messageId": "r1", "to": "821011112222", "doneAt": "2026-12-24T00:00:03.000+0000",
             "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"}, "error": {"groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": false}},
            {"bulkId": "b", "messageId": "r2", "to": "821033334444", "status": {"groupName": "UNDELIVERABLE", "name": "UNDELIVERABLE_NOT_DELIVERED"},
             "error": {"groupName": "USER_ERRORS", "id": 3019, "name": "EC_NOT_KAKAO_USER", "description": "not a KakaoTalk user", "permanent": true}}
        ]});
        let read = read_reports(reports.to_string().as_bytes()).unwrap();
        assert_eq!(read[0].report.state, ReportState::Delivered);
        assert!(!read[0].permanent);
        assert_eq!(read[1].report.state, ReportState::Failed);
        assert_eq!(read[1].report.code.as_deref(), Some("EC_NOT_KAKAO_USER"));
        assert!(read[1].permanent);
    }

    #[test]
    fn buttons_infobip_cannot_carry_are_refused_before_the_request() {
        let mut it = item("r1", "010-1111-2222", "가", false);
        it.rendered.buttons[0].kind = ButtonType::Consultation;
        let batch = Batch::new(DealerKind::Infobip, vec![it], None).unwrap();
        assert!(alimtalk_send("KEY", &sender(), &batch, "b", None).unwrap_err().contains("through Infobip"));
    }

    fn brand_template_content(image: Option<&str>) -> crate::brand::BrandContent {
        crate::brand::BrandContent {
            text: "홍길동님, 겨울 세일".into(),
            bubble: if image.is_some() { crate::template::Bubble::Image } else { crate::template::Bubble::Text },
            image: image.map(|url| crate::brand::BrandImage {
                source: "sale.png".into(),
                format: crate::brand::ImageFormat::Png,
                digest: Some("d".into()),
                dealer_ref: Some(url.into()),
            }),
            template: Some(crate::template::RenderedBrandTemplate {
                template_code: "WINTER".into(),
                template_id: Some("KA01TP9".into()),
                message_data: [("name".to_owned(), "홍길동".to_owned())].into(),
                button_data: [("code".to_owned(), "W1".to_owned())].into(),
            }),
            buttons: vec![],
            targeting: crate::brand::Targeting::Consented,
            opt_out_number: Some("0801234567".into()),
            fallback: None,
        }
    }

    #[test]
    fn brand_templates_are_variable_contents_with_their_targeting() {
        let to = [item("r1", "010-1111-2222", "x", false).addressee()];
        let request = brand_send(
            "KEY",
            &sender(),
            &brand_template_content(Some("https://cdn.example/a.png")),
            &to,
            None,
            "b",
            None,
        )
        .unwrap();
        assert_eq!(request.path, "/kakao-chingu/1/messages");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["messages"][0],
            json!({"sender": "a".repeat(40), "destinations": [{"to": "821011112222", "messageId": "r1"}],
                   "content": {"type": "IMAGE_VARIABLE", "templateCode": "WINTER", "messageData": {"name": "홍길동"},
                               "buttonData": {"code": "W1"}, "imageData": [{"img_url": "https://cdn.example/a.png"}]},
                   "options": {"targeting": "ALL_CONSENT"}})
        );
        let mut free = brand_template_content(Some("https://cdn.example/a.png"));
        free.template = None;
        free.targeting = crate::brand::Targeting::Friends;
        let body: Value =
            serde_json::from_slice(&brand_send("KEY", &sender(), &free, &to, None, "b", None).unwrap().body).unwrap();
        assert_eq!(
            (body["messages"][0]["content"].clone(), body["messages"][0]["options"].clone()),
            (
                json!({"type": "IMAGE_FREE_FORM", "text": "홍길동님, 겨울 세일", "image": {"url": "https://cdn.example/a.png"}}),
                json!({"targeting": "TARGETED_FRIENDS"})
            )
        );
    }

    #[test]
    fn brand_templates_are_listed_by_code_then_read_one_by_one() {
        let list = brand_templates_query("KEY", "SENDER", 2);
        assert_eq!(
            list.path,
            "/kakao-brand-messages/1/templates?senderKey=SENDER&since=2025-05-15T00%3A00%3A00.000%2B0000&page=2&size=100"
        );
        assert_eq!(list.headers, [("Authorization", "App KEY".to_owned())]);
        let codes =
            read_brand_template_codes(200, br#"{"results":[{"templateCode":"code_001"},{"templateCode":"code_002"}]}"#)
                .unwrap();
        assert_eq!(codes, ["code_001", "code_002"]);
        assert_eq!(
            brand_template_query("KEY", "SENDER", "code_001").path,
            "/kakao-brand-messages/1/templates/single?sender=SENDER&templateCode=code_001"
        );
        let one = json!({"name": "겨울", "templateContent": {"type": "TEXT", "text": "#{name}님", "buttons": [{"type": "URL", "name": "보기"}]}});
        let template = read_brand_template(200, one.to_string().as_bytes(), "code_001").unwrap();
        assert_eq!(
            (template.text.as_str(), template.product, template.status),
            ("#{name}님", crate::send::Product::Brand, crate::template::TemplateStatus::Approved)
        );
        assert!(read_brand_template(401, b"{}", "x").unwrap_err().to_string().contains("INFOBIP_API_KEY"));
    }

    #[test]
    fn with_a_public_url_each_message_names_the_report_url_and_signs_its_callback_data() {
        let report = ReportWebhook {
            url: "https://bridge.example/bizmsg/infobip/webhook".into(),
            token: "0123456789abcdef-token".into(),
        };
        let batch = Batch::new(DealerKind::Infobip, vec![item("cb7", "010-1111-2222", "가", false)], None).unwrap();
        let body: Value =
            serde_json::from_slice(&alimtalk_send("KEY", &sender(), &batch, "b", Some(&report)).unwrap().body).unwrap();
        let webhooks = &body["messages"][0]["webhooks"];
        assert_eq!(webhooks["delivery"], json!({"url": "https://bridge.example/bizmsg/infobip/webhook"}));
        assert_eq!(webhooks["contentType"], "application/json");
        assert!(crate::webhook::callback_ok(&report.token, "cb7", webhooks["callbackData"].as_str()));
        let to = [item("cb8", "010-1111-2222", "x", false).addressee()];
        let brand: Value = serde_json::from_slice(
            &brand_send("KEY", &sender(), &brand_template_content(None), &to, None, "b", Some(&report)).unwrap().body,
        )
        .unwrap();
        assert!(crate::webhook::callback_ok(
            &report.token,
            "cb8",
            brand["messages"][0]["webhooks"]["callbackData"].as_str()
        ));
        // Without one, nothing is named (the portal's subscription, if any, applies).
        let plain: Value =
            serde_json::from_slice(&alimtalk_send("KEY", &sender(), &batch, "b", None).unwrap().body).unwrap();
        assert!(plain["messages"][0].get("webhooks").is_none());
    }

    #[test]
    fn reports_of_both_apis_and_logs_by_message_id() {
        assert_eq!(reports_query("KEY", Product::Alimtalk, 1_000).path, "/kakao-alim/1/reports?limit=1000");
        assert_eq!(reports_query("KEY", Product::Brand, 5_000).path, "/kakao-chingu/1/reports?limit=1000");
        let ids: Vec<String> = (0..400).map(|i| format!("cb{i:06}")).collect();
        let queries = logs_queries("KEY", Product::Brand, &ids);
        assert!(queries.len() > 1, "2,048 characters of ids at most per query");
        let mut seen = Vec::new();
        for q in &queries {
            let rest = q.path.strip_prefix("/kakao-chingu/1/logs?messageId=").unwrap();
            let (value, limit) = rest.split_once("&limit=").unwrap();
            assert!(value.len() <= 2_048);
            let these: Vec<&str> = value.split(',').collect();
            assert_eq!(limit.parse::<usize>().unwrap(), these.len());
            seen.extend(these.into_iter().map(str::to_owned));
        }
        assert_eq!(seen, ids);
        assert!(logs_queries("KEY", Product::Alimtalk, &[]).is_empty());
        let logs = json!({"results": [{"destination": "821011112222", "bulkId": "b", "messageId": "cb1", "sentAt": "2026-12-24T00:00:01.000+0000",
            "doneAt": "2026-12-24T00:00:03.000+0000", "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
            "error": {"groupName": "OK", "name": "NO_ERROR", "permanent": false}, "callbackData": "cb1:00"}]});
        let read = read_report_query(200, logs.to_string().as_bytes()).unwrap();
        assert_eq!((read[0].report.dealer_id.as_str(), read[0].report.state), ("cb1", ReportState::Delivered));
        assert_eq!(read[0].callback_data.as_deref(), Some("cb1:00"));
        assert!(read_report_query(401, b"{}").unwrap_err().to_string().contains("INFOBIP_API_KEY"));
        assert_eq!(read_report_query(200, b"<xml/>").unwrap_err().class(), clawbridge_core::RetryClass::Transient);
    }
}
