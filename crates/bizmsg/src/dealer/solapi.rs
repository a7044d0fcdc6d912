//! Solapi (reference/bizmsg.md §3): AlimTalk as `ATA` messages of `POST /messages/v4/send-many/detail`,
//! and the message list (`GET /messages/v4/list`) for results.
//!
//! Every request is signed: `Authorization: HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…`,
//! the signature being the lowercase hex HMAC-SHA256 of `date` followed by `salt` under the API
//! secret, with a fresh salt per request. Solapi answers HTTP 200 even when it refused messages:
//! `failedMessageList` is read on every answer. Each message carries our reference in its
//! `customFields` (the SDK's `Record<string, string>`, echoed in the answer's lists and in the
//! stored message), so answers are matched by reference, and by number where it is missing (a
//! [`Batch`] never holds a number twice).
//!
//! Results (facts from the `solapi` SDK, github.com/solapi/solapi-nodejs: `getMessages`,
//! `GetMessagesRequest`, `storedMessageSchema`, `examples/javascript/webhooks`): the list takes
//! `messageId`, `messageIds` (repeated), `groupId`, `to`, `from`, `type`, `statusCode`,
//! `dateType` (`CREATED` | `UPDATED`, with `startDate`/`endDate` in ISO 8601), `startKey` and
//! `limit`, and answers `{"startKey", "nextKey", "limit", "messageList": {<messageId>: {…}}}`,
//! each message with `statusCode`, `status`, `reason`, `dateReceived`, `customFields`, … The
//! SDK's webhook example says `statusCode` 4000 is a normal completion for AlimTalk and SMS
//! alike; that 2000 (received) and 3000 (handed to the carrier) are still on their way is not in
//! the SDK (it points to developers.solapi.com/references/message-status-codes). Solapi's
//! "single report" webhook posts a JSON array of such message objects and calls again (five
//! times in all) until it gets a 200.

use super::{
    Addressee, Batch, Fallback, ItemOutcome, ItemResult, Report, ReportState, Sender, WireRequest, http_error, missing,
    query_value,
};
use crate::template::FallbackKind;
use clawbridge_core::SendError;
use clawbridge_core::time::{EpochMs, timestamp};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The production host (`SOLAPI_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://api.solapi.com";

/// Solapi's credentials.
#[derive(Debug, Clone)]
pub struct SolapiAuth {
    /// `SOLAPI_API_KEY`.
    pub api_key: String,
    /// `SOLAPI_API_SECRET`.
    pub api_secret: String,
}

/// The `Authorization` header for a request made at `date` (ISO 8601) with `salt` (32
/// characters of `[0-9a-zA-Z]`, new for every request: the caller draws it).
pub fn authorization(auth: &SolapiAuth, date: &str, salt: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(auth.api_secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(date.as_bytes());
    mac.update(salt.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("HMAC-SHA256 apiKey={}, date={date}, salt={salt}, signature={signature}", auth.api_key)
}

/// `date` for [`authorization`]: the instant in ISO 8601 UTC (`2026-12-24T00:00:00.000Z`).
pub fn signing_date(at: EpochMs) -> String {
    timestamp(at).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendBody<'a> {
    messages: Vec<Message<'a>>,
    allow_duplicates: bool,
    show_message_list: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_date: Option<String>,
}

/// The key of `customFields` that carries our reference.
pub const REFERENCE_FIELD: &str = "clawbridgeRef";

/// `customFields` with our reference.
fn custom_fields(reference: &str) -> BTreeMap<&'static str, &str> {
    [(REFERENCE_FIELD, reference)].into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The replacement SMS/LMS text when the AlimTalk cannot be delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    kakao_options: KakaoOptions<'a>,
    custom_fields: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KakaoOptions<'a> {
    pf_id: &'a str,
    template_id: &'a str,
    variables: BTreeMap<String, &'a str>,
    disable_sms: bool,
}

/// The send for `batch` (every recipient one `ATA` message).
///
/// # Errors
/// A template without its Solapi id, or a fallback without a sender number.
pub fn alimtalk_send(sender: &Sender, batch: &Batch) -> Result<WireRequest, String> {
    let template_id = batch.template_id.as_deref().ok_or_else(|| {
        format!(
            "AlimTalk template {:?} has no templateId: Solapi sends by its own template id (KA01TP…); add templateId to \
             the template under [[bizmsg.templates]]",
            batch.template_code
        )
    })?;
    let mut messages = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let fallback = item.rendered.fallback.as_ref();
        let from = match fallback {
            None => None,
            Some(_) => Some(
                sender
                    .sms_from
                    .as_ref()
                    .ok_or(
                        "an SMS/LMS fallback needs the sender number: set BIZMSG_SMS_FROM (bizmsg.smsFrom) to a caller \
                         id registered with Solapi",
                    )?
                    .digits(),
            ),
        };
        messages.push(Message {
            to: item.to.national(),
            from,
            kind: "ATA",
            text: fallback.map(|f| f.message.as_str()),
            subject: fallback.filter(|f| f.kind == FallbackKind::Lms).and_then(|f| f.title.as_deref()),
            kakao_options: KakaoOptions {
                pf_id: &sender.sender_key,
                template_id,
                // The SDK's form: names wrapped in `#{…}`.
                variables: item.rendered.variables.iter().map(|(k, v)| (format!("#{{{k}}}"), v.as_str())).collect(),
                disable_sms: fallback.is_none(),
            },
            custom_fields: custom_fields(&item.reference),
        });
    }
    let body = SendBody {
        messages,
        allow_duplicates: false,
        show_message_list: true,
        scheduled_date: batch.send_at.map(|at| timestamp(at).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    };
    Ok(WireRequest {
        method: "POST",
        path: "/messages/v4/send-many/detail".to_owned(),
        // The Authorization header is added when the request is made: it carries the time.
        headers: Vec::new(),
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandMessage<'a> {
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    kakao_options: BrandOptions<'a>,
    custom_fields: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandOptions<'a> {
    pf_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_id: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    variables: BTreeMap<String, String>,
    bms: Bms<'a>,
    disable_sms: bool,
}

/// `kakaoOptions.bms` (the SDK's `KakaoOptionBmsSchema`): who receives it and the bubble, and for
/// a free-form message its content, image and buttons.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bms<'a> {
    targeting: &'static str,
    chat_bubble_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<BmsButton<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BmsButton<'a> {
    name: &'a str,
    link_type: &'static str,
    link_mobile: &'a str,
}

/// A Brand Message (`BMS_TEXT` / `BMS_IMAGE`) to `recipients`: free-form (`bms.content`,
/// `bms.imageId`, `bms.buttons`), or a template by Solapi's `templateId` with its `variables`.
///
/// # Errors
/// A fallback (Solapi's replacement text for Brand Messages is not wired here), an image that
/// was not uploaded, a template without its Solapi id.
pub fn brand_send(
    sender: &Sender,
    content: &crate::brand::BrandContent,
    recipients: &[Addressee],
    send_at: Option<EpochMs>,
) -> Result<WireRequest, String> {
    if content.fallback.is_some() {
        return Err(
            "an SMS/LMS fallback of a Brand Message is not supported through Solapi here: send without --fallback"
                .to_owned(),
        );
    }
    let image_id = match &content.image {
        None => None,
        Some(image) => Some(image.dealer_ref.as_deref().ok_or_else(|| {
            format!("the image {:?} was not uploaded to Solapi before the send was stored", image.source)
        })?),
    };
    let (template_id, variables) = match &content.template {
        None => (None, BTreeMap::new()),
        Some(template) => (
            Some(template.template_id.as_deref().ok_or_else(|| {
                format!("Brand Message template {:?} has no Solapi templateId", template.template_code)
            })?),
            template.all_values().into_iter().map(|(k, v)| (format!("#{{{k}}}"), v)).collect(),
        ),
    };
    let kind = match content.bubble {
        crate::template::Bubble::Text => "BMS_TEXT",
        crate::template::Bubble::Image => "BMS_IMAGE",
    };
    let free_form = content.template.is_none();
    let messages: Vec<BrandMessage<'_>> = recipients
        .iter()
        .map(|r| BrandMessage {
            to: r.to.national(),
            kind,
            kakao_options: BrandOptions {
                pf_id: &sender.sender_key,
                template_id,
                variables: variables.clone(),
                bms: Bms {
                    targeting: content.targeting.code(),
                    chat_bubble_type: content.bubble.code(),
                    content: free_form.then_some(content.text.as_str()),
                    image_id,
                    buttons: content
                        .buttons
                        .iter()
                        .map(|b| BmsButton { name: &b.name, link_type: "WL", link_mobile: &b.link_mo })
                        .collect(),
                },
                disable_sms: true,
            },
            custom_fields: custom_fields(&r.reference),
        })
        .collect();
    let mut body = serde_json::json!({ "messages": messages, "allowDuplicates": false, "showMessageList": true });
    if let Some(at) = send_at {
        body["scheduledDate"] = timestamp(at).strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    }
    Ok(WireRequest {
        method: "POST",
        path: "/messages/v4/send-many/detail".to_owned(),
        headers: Vec::new(),
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

/// The file upload of a Brand Message image (`POST /storage/v1/files`, the SDK's `uploadFile`
/// with type `BMS`): the base64 of the file; Solapi answers with the `fileId` a send names as
/// `bms.imageId`.
pub fn image_upload(file_name: &str, bytes: &[u8]) -> WireRequest {
    use base64::Engine as _;
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or("image");
    let body = serde_json::json!({
        "file": base64::engine::general_purpose::STANDARD.encode(bytes),
        "type": "BMS",
        "name": name,
    });
    WireRequest {
        method: "POST",
        path: "/storage/v1/files".to_owned(),
        headers: Vec::new(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Uploaded {
    #[serde(default)]
    file_id: String,
}

/// Reads [`image_upload`]'s answer: the `fileId`.
///
/// # Errors
/// The upload failed, classified.
pub fn read_image_upload(status: u16, body: &[u8]) -> Result<String, SendError> {
    refused_credentials(status, body)?;
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, None));
    }
    let uploaded: Uploaded = serde_json::from_slice(body).map_err(|e| {
        SendError::transient(format!("Solapi answered the upload with a body that is not its JSON: {e}"))
    })?;
    Some(uploaded.file_id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| SendError::transient("Solapi accepted the upload but returned no fileId"))
}

/// One page of the AlimTalk templates of `pf_id` (`GET /kakao/v2/templates?channelId=…`, the
/// SDK's `getKakaoAlimtalkTemplates`), continuing at `start_key` (the previous page's `nextKey`).
pub fn templates_query(pf_id: &str, start_key: Option<&str>) -> WireRequest {
    let mut path = format!("/kakao/v2/templates?channelId={}&limit=100", query_value(pf_id));
    if let Some(key) = start_key {
        path.push_str(&format!("&startKey={}", query_value(key)));
    }
    WireRequest { method: "GET", path, headers: Vec::new(), body: Vec::new() }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplatesPage {
    #[serde(default)]
    template_list: Vec<TemplateRow>,
    #[serde(default)]
    next_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateRow {
    template_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    buttons: Vec<TemplateButtonRow>,
    #[serde(default)]
    variables: Vec<TemplateVariable>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateButtonRow {
    #[serde(default)]
    button_type: String,
    #[serde(default)]
    button_name: String,
}

#[derive(Deserialize)]
struct TemplateVariable {
    name: String,
}

/// Reads a template page: the templates (their code is Solapi's `templateId`, what a send names)
/// and the key of the next page.
///
/// # Errors
/// The query failed, classified.
pub fn read_templates(
    status: u16,
    body: &[u8],
) -> Result<(Vec<crate::template::DealerTemplate>, Option<String>), SendError> {
    use crate::template::{DealerTemplate, TemplateStatus};
    refused_credentials(status, body)?;
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, None));
    }
    let page: TemplatesPage = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("Solapi's template list is not its JSON: {e}")))?;
    let templates = page
        .template_list
        .into_iter()
        .map(|t| DealerTemplate {
            status: match t.status.as_str() {
                "PENDING" => TemplateStatus::Requested,
                "INSPECTING" => TemplateStatus::InReview,
                "APPROVED" => TemplateStatus::Approved,
                "REJECTED" => TemplateStatus::Rejected,
                _ => TemplateStatus::Unknown,
            },
            code: t.template_id,
            name: t.name,
            text: t.content.unwrap_or_default(),
            buttons: t.buttons.into_iter().map(|b| (b.button_type, b.button_name)).collect(),
            product: crate::send::Product::Alimtalk,
            // The SDK writes variables as `#{name}`; the bare name is what `--var` takes.
            variables: t
                .variables
                .into_iter()
                .map(|v| v.name.strip_prefix("#{").and_then(|n| n.strip_suffix('}')).unwrap_or(&v.name).to_owned())
                .collect(),
        })
        .collect();
    Ok((templates, page.next_key.filter(|k| !k.is_empty())))
}

/// A 401/403: the key, the secret or the clock.
fn refused_credentials(status: u16, body: &[u8]) -> Result<(), SendError> {
    if status == 401 || status == 403 {
        let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = error.map(|e| (e.error_code, e.error_message)).unwrap_or_default();
        return Err(SendError::Permanent(format!(
            "Solapi refused the credentials (HTTP {status} {code} {message}): check SOLAPI_API_KEY and SOLAPI_API_SECRET, \
             and that this machine's clock is right (the signature carries the time)"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendAnswer {
    #[serde(default)]
    failed_message_list: Vec<Failed>,
    #[serde(default)]
    message_list: Vec<Listed>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Failed {
    #[serde(default)]
    to: String,
    #[serde(default)]
    status_code: String,
    #[serde(default)]
    status_message: String,
    #[serde(default)]
    custom_fields: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    #[serde(default)]
    to: String,
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    custom_fields: Option<BTreeMap<String, String>>,
}

/// Our reference in `customFields`, if Solapi echoed it.
fn reference_of(fields: Option<&BTreeMap<String, String>>) -> Option<&str> {
    fields.and_then(|f| f.get(REFERENCE_FIELD)).map(String::as_str)
}

/// Whether an echoed message is `item`'s: by our reference, or by number when it has none.
fn is_for(item: &Addressee, reference: Option<&str>, to: &str) -> bool {
    match reference {
        Some(reference) => reference == item.reference,
        None => to == item.to.national(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_message: String,
}

/// Reads Solapi's answer to [`alimtalk_send`].
///
/// # Errors
/// The request as a whole failed, classified.
pub fn read_send_answer(
    status: u16,
    body: &[u8],
    items: &[Addressee],
    retry_after: Option<std::time::Duration>,
) -> Result<Vec<ItemOutcome>, SendError> {
    refused_credentials(status, body)?;
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, retry_after));
    }
    let answer: SendAnswer = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("Solapi answered 200 with a body that is not its JSON: {e}")))?;
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let result = if let Some(failed) =
            answer.failed_message_list.iter().find(|f| is_for(item, reference_of(f.custom_fields.as_ref()), &f.to))
        {
            ItemResult::Refused { code: failed.status_code.clone(), reason: failed.status_message.clone() }
        } else if let Some(listed) = answer
            .message_list
            .iter()
            .find(|m| is_for(item, reference_of(m.custom_fields.as_ref()), &m.to) && !m.message_id.is_empty())
        {
            ItemResult::Accepted { dealer_id: listed.message_id.clone() }
        } else {
            continue;
        };
        outcomes.push(ItemOutcome { reference: item.reference.clone(), result });
    }
    missing(items, &mut outcomes);
    Ok(outcomes)
}

/// How many message ids one [`messages_query`] asks for.
pub const MAX_IDS_PER_QUERY: usize = 50;

/// The messages `message_ids` (at most [`MAX_IDS_PER_QUERY`]) with their state
/// (`GET /messages/v4/list?messageIds=…&messageIds=…`, the SDK's `getMessages({messageIds})`).
pub fn messages_query(message_ids: &[String]) -> WireRequest {
    let mut path = "/messages/v4/list?".to_owned();
    for id in message_ids.iter().take(MAX_IDS_PER_QUERY) {
        path.push_str(&format!("messageIds={}&", query_value(id)));
    }
    path.push_str(&format!("limit={}", message_ids.len().clamp(1, MAX_IDS_PER_QUERY)));
    WireRequest { method: "GET", path, headers: Vec::new(), body: Vec::new() }
}

/// One page of the messages Solapi received in `[from, to]` (`dateType=CREATED`), continuing at
/// `start_key`: asked before a request whose answer was lost is made again, to find which of
/// its messages (by our reference in `customFields`) Solapi has.
pub fn window_query(from: EpochMs, to: EpochMs, start_key: Option<&str>) -> WireRequest {
    let mut path = format!(
        "/messages/v4/list?dateType=CREATED&startDate={}&endDate={}&limit=100",
        query_value(&signing_date(from)),
        query_value(&signing_date(to))
    );
    if let Some(key) = start_key {
        path.push_str(&format!("&startKey={}", query_value(key)));
    }
    WireRequest { method: "GET", path, headers: Vec::new(), body: Vec::new() }
}

/// `to` as stored: one number or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredTo {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRow {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    to: Option<StoredTo>,
    #[serde(default)]
    status_code: Option<String>,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    date_received: Option<String>,
    #[serde(default)]
    date_reported: Option<String>,
    #[serde(default)]
    custom_fields: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListAnswer {
    #[serde(default)]
    next_key: Option<String>,
    /// Required (the SDK's schema): an answer without it is not the list.
    message_list: BTreeMap<String, StoredRow>,
}

/// A message as Solapi has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Our reference, from `customFields`.
    pub reference: Option<String>,
    /// The number (national form).
    pub to: Option<String>,
    /// Where it is.
    pub report: Report,
}

/// Where a message with Solapi's `statusCode` is: 4000 delivered; 2000 and 3000 (and none yet)
/// on the way; anything else failed, with Solapi's code and words.
fn state_of(code: &str) -> ReportState {
    match code {
        "4000" => ReportState::Delivered,
        "" | "2000" | "3000" => ReportState::Pending,
        _ => ReportState::Failed,
    }
}

impl StoredRow {
    fn into_stored(self, key: Option<String>) -> Option<Stored> {
        let message_id = self.message_id.filter(|id| !id.is_empty()).or(key)?;
        let code = self.status_code.unwrap_or_default();
        let state = state_of(code.trim());
        let reason = match state {
            ReportState::Failed => self.reason.or(self.status_message).filter(|r| !r.is_empty()),
            _ => None,
        };
        Some(Stored {
            reference: self.custom_fields.as_ref().and_then(|f| f.get(REFERENCE_FIELD)).cloned(),
            to: match self.to {
                Some(StoredTo::One(to)) => Some(to),
                Some(StoredTo::Many(many)) => many.into_iter().next(),
                None => None,
            },
            report: Report {
                dealer_id: message_id,
                state,
                code: Some(code).filter(|c| !c.is_empty()),
                reason,
                done_at: self.date_received.or(self.date_reported).filter(|d| !d.is_empty()),
                // Solapi's stored message does not say in the SDK's terms whether an SMS
                // replaced a failed AlimTalk.
                fallback: None::<Fallback>,
            },
        })
    }
}

/// Reads a [`messages_query`] or [`window_query`] answer: the messages, and the key of the next
/// page (`nextKey`) when there is one.
///
/// # Errors
/// The query failed, classified.
pub fn read_messages(status: u16, body: &[u8]) -> Result<(Vec<Stored>, Option<String>), SendError> {
    refused_credentials(status, body)?;
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, None));
    }
    let answer: ListAnswer = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("Solapi's message list is not its JSON: {e}")))?;
    let stored = answer.message_list.into_iter().filter_map(|(key, row)| row.into_stored(Some(key))).collect();
    Ok((stored, answer.next_key.filter(|k| !k.is_empty())))
}

/// Reads a "single report" webhook body: a JSON array of messages as the list has them.
///
/// # Errors
/// A body that is not that (answered 400).
pub fn read_webhook(body: &[u8]) -> Result<Vec<Report>, String> {
    let rows: Vec<StoredRow> =
        serde_json::from_slice(body).map_err(|e| format!("not a Solapi report (a JSON array of messages): {e}"))?;
    Ok(rows.into_iter().filter_map(|row| row.into_stored(None)).map(|s| s.report).collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::dealer::DealerKind;
    use crate::dealer::addressees;
    use serde_json::{Value, json};

    fn auth() -> SolapiAuth {
        SolapiAuth { api_key: "NCSKEY".into(), api_secret: "SECRET".into() }
    }

    #[test]
    fn the_signature_is_the_hmac_of_date_and_salt() {
        let date = "2026-12-24T00:00:00.000Z";
        let salt = "0123456789abcdefghijABCDEFGHIJ01";
        let header = authorization(&auth(), date, salt);
        // Recomputed independently of `authorization`.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"SECRET").unwrap();
        mac.update(format!("{date}{salt}").as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("HMAC-SHA256 apiKey=NCSKEY, date={date}, salt={salt}, signature={expected}"));
        assert_eq!(expected.len(), 64);
        assert!(expected.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_eq!(signing_date(1_798_070_400_000), "2026-12-24T00:00:00.000Z");
    }

    #[test]
    fn alimtalk_is_an_ata_message_per_recipient() {
        let items = vec![item("r1", "010-1111-2222", "홍길동", true), item("r2", "010-3333-4444", "김철수", false)];
        let mut batch = Batch::new(DealerKind::Solapi, items, None).unwrap();
        batch.template_id = Some("KA01TP1".into());
        let request = alimtalk_send(&sender(), &batch).unwrap();
        assert_eq!((request.method, request.path.as_str()), ("POST", "/messages/v4/send-many/detail"));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let pf_id = "a".repeat(40);
        assert_eq!(
            body,
            json!({
                "messages": [
                    {"to": "01011112222", "from": "0212345678", "type": "ATA", "text": "홍길동님 상품 발송", "subject": "발송 안내",
                     "kakaoOptions": {"pfId": pf_id, "templateId": "KA01TP1",
                                      "variables": {"#{name}": "홍길동", "#{order}": "A-1"}, "disableSms": false},
                     "customFields": {"clawbridgeRef": "r1"}},
                    {"to": "01033334444", "type": "ATA",
                     "kakaoOptions": {"pfId": pf_id, "templateId": "KA01TP1",
                                      "variables": {"#{name}": "김철수", "#{order}": "A-1"}, "disableSms": true},
                     "customFields": {"clawbridgeRef": "r2"}}
                ],
                "allowDuplicates": false,
                "showMessageList": true
            })
        );
        batch.template_id = None;
        assert!(alimtalk_send(&sender(), &batch).unwrap_err().contains("templateId"));
    }

    #[test]
    fn failed_messages_inside_a_200_are_read_on_every_answer() {
        let items = vec![item("r1", "010-1111-2222", "가", false), item("r2", "010-3333-4444", "나", false)];
        let body = json!({
            "groupInfo": {"count": {"total": 2, "registeredFailed": 1}},
            "failedMessageList": [{"to": "01033334444", "from": "", "type": "ATA", "statusCode": "1062", "statusMessage": "템플릿 변수 불일치"}],
            "messageList": [{"messageId": "M4V2026", "to": "01011112222", "type": "ATA", "statusCode": "2000"}]
        });
        let outcomes = read_send_answer(200, body.to_string().as_bytes(), &addressees(&items), None).unwrap();
        assert_eq!(outcomes[0].result, ItemResult::Accepted { dealer_id: "M4V2026".into() });
        assert_eq!(
            outcomes[1].result,
            ItemResult::Refused { code: "1062".into(), reason: "템플릿 변수 불일치".into() }
        );
        let e = read_send_answer(
            401,
            br#"{"errorCode":"SignatureDoesNotMatch","errorMessage":"x"}"#,
            &addressees(&items),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("SOLAPI_API_SECRET") && e.to_string().contains("SignatureDoesNotMatch"), "{e}");
        assert_eq!(
            read_send_answer(429, b"", &addressees(&items), None).unwrap_err().class(),
            clawbridge_core::RetryClass::RateLimited
        );
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
    fn brand_messages_carry_bms_options_and_images_are_uploaded_as_bms_files() {
        let to = [item("r1", "010-1111-2222", "x", false).addressee()];
        let request = brand_send(&sender(), &brand_template_content(Some("ST01FILE")), &to, None).unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["messages"][0],
            json!({"to": "01011112222", "type": "BMS_IMAGE",
                   "kakaoOptions": {"pfId": "a".repeat(40), "templateId": "KA01TP9",
                                    "variables": {"#{name}": "홍길동", "#{code}": "W1"},
                                    "bms": {"targeting": "M", "chatBubbleType": "IMAGE", "imageId": "ST01FILE"},
                                    "disableSms": true},
                   "customFields": {"clawbridgeRef": "r1"}})
        );
        let mut free = brand_template_content(None);
        free.template = None;
        free.buttons = vec!["보기|https://shop.example".parse().unwrap()];
        let body: Value = serde_json::from_slice(&brand_send(&sender(), &free, &to, None).unwrap().body).unwrap();
        assert_eq!(
            body["messages"][0]["kakaoOptions"]["bms"],
            json!({"targeting": "M", "chatBubbleType": "TEXT", "content": "홍길동님, 겨울 세일",
                   "buttons": [{"name": "보기", "linkType": "WL", "linkMobile": "https://shop.example"}]})
        );

        let upload = image_upload("/tmp/sale.png", b"abc");
        assert_eq!((upload.method, upload.path.as_str()), ("POST", "/storage/v1/files"));
        let body: Value = serde_json::from_slice(&upload.body).unwrap();
        assert_eq!(body, json!({"file": "YWJj", "type": "BMS", "name": "sale.png"}));
        assert_eq!(read_image_upload(200, br#"{"fileId":"ST01FILE","type":"BMS","link":null}"#).unwrap(), "ST01FILE");
        assert!(
            read_image_upload(401, br#"{"errorCode":"SignatureDoesNotMatch"}"#)
                .unwrap_err()
                .to_string()
                .contains("SOLAPI_API_SECRET")
        );
    }

    #[test]
    fn alimtalk_templates_are_listed_page_by_page_with_their_review_status() {
        assert_eq!(templates_query("KA01PF1", None).path, "/kakao/v2/templates?channelId=KA01PF1&limit=100");
        assert_eq!(
            templates_query("KA01PF1", Some("k 2")).path,
            "/kakao/v2/templates?channelId=KA01PF1&limit=100&startKey=k%202"
        );
        let page = json!({"limit": 100, "startKey": null, "nextKey": "NEXT", "templateList": [
            {"templateId": "KA01TP1", "name": "발송", "content": "#{name}님 발송", "status": "APPROVED", "securityFlag": false,
             "buttons": [{"buttonName": "보기", "buttonType": "WL", "linkMo": "https://a.example"}], "variables": [{"name": "#{name}"}]},
            {"templateId": "KA01TP2", "name": "검수", "status": "INSPECTING", "variables": []}
        ]});
        let (templates, next) = read_templates(200, page.to_string().as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("NEXT"));
        assert_eq!(
            (templates[0].code.as_str(), templates[0].status),
            ("KA01TP1", crate::template::TemplateStatus::Approved)
        );
        assert_eq!(templates[0].variables, ["name"]);
        assert_eq!(templates[0].buttons, [("WL".to_owned(), "보기".to_owned())]);
        assert_eq!(templates[1].status, crate::template::TemplateStatus::InReview);
    }

    #[test]
    fn answers_are_matched_by_the_reference_in_custom_fields_before_the_number() {
        // Two rows to one number cannot share a request, but an answer that echoes our reference
        // is read by it even when the numbers are written differently.
        let items = vec![item("cb1", "010-1111-2222", "가", false), item("cb2", "010-3333-4444", "나", false)];
        let body = json!({
            "failedMessageList": [{"to": "+821033334444", "statusCode": "1062", "statusMessage": "x", "customFields": {"clawbridgeRef": "cb2"}}],
            "messageList": [{"messageId": "M4V1", "to": "821011112222", "statusCode": "2000", "customFields": {"clawbridgeRef": "cb1"}}]
        });
        let outcomes = read_send_answer(200, body.to_string().as_bytes(), &addressees(&items), None).unwrap();
        assert_eq!(outcomes[0].result, ItemResult::Accepted { dealer_id: "M4V1".into() });
        assert!(matches!(&outcomes[1].result, ItemResult::Refused { code, .. } if code == "1062"));
    }

    #[test]
    fn the_message_list_is_asked_by_ids_or_by_a_window_and_read_into_reports() {
        let ids: Vec<String> = vec!["M4V1".into(), "M4V2".into()];
        let query = messages_query(&ids);
        assert_eq!(
            (query.method, query.path.as_str()),
            ("GET", "/messages/v4/list?messageIds=M4V1&messageIds=M4V2&limit=2")
        );
        assert_eq!(
            window_query(1_798_070_400_000, 1_798_070_580_000, Some("NEXT")).path,
            "/messages/v4/list?dateType=CREATED&startDate=2026-12-24T00%3A00%3A00.000Z&endDate=2026-12-24T00%3A03%3A00.000Z&limit=100&startKey=NEXT"
        );
        let body = json!({"startKey": null, "nextKey": "K2", "limit": 100, "messageList": {
            "M4V1": {"messageId": "M4V1", "to": "01011112222", "type": "ATA", "statusCode": "4000", "status": "COMPLETE",
                     "dateReceived": "2026-12-24T00:00:03.000Z", "customFields": {"clawbridgeRef": "cb1"}},
            "M4V2": {"to": ["01033334444"], "type": "ATA", "statusCode": "3104", "reason": "카카오톡 미사용자"},
            "M4V3": {"messageId": "M4V3", "statusCode": "3000"},
            "M4V4": {"messageId": "M4V4", "statusCode": null}
        }});
        let (stored, next) = read_messages(200, body.to_string().as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("K2"));
        assert_eq!(
            stored[0],
            Stored {
                reference: Some("cb1".into()),
                to: Some("01011112222".into()),
                report: Report {
                    dealer_id: "M4V1".into(),
                    state: ReportState::Delivered,
                    code: Some("4000".into()),
                    reason: None,
                    done_at: Some("2026-12-24T00:00:03.000Z".into()),
                    fallback: None,
                },
            }
        );
        assert_eq!(
            (stored[1].report.dealer_id.as_str(), stored[1].report.state, stored[1].report.reason.as_deref()),
            ("M4V2", ReportState::Failed, Some("카카오톡 미사용자")),
            "the id is the list's key when the message omits it"
        );
        assert_eq!(stored[1].to.as_deref(), Some("01033334444"));
        assert_eq!((stored[2].report.state, stored[3].report.state), (ReportState::Pending, ReportState::Pending));
        assert!(read_messages(401, b"{}").unwrap_err().to_string().contains("SOLAPI_API_SECRET"));
        assert_eq!(read_messages(200, b"[]").unwrap_err().class(), clawbridge_core::RetryClass::Transient);
    }

    #[test]
    fn a_single_report_webhook_is_an_array_of_messages() {
        let body = json!([
            {"messageId": "M4V1", "to": "01011112222", "statusCode": "4000", "dateReceived": "2026-12-24T00:00:03Z"},
            {"messageId": "M4V2", "statusCode": "3059", "reason": "변작된 발신번호"},
            {"to": "01000000000", "statusCode": "4000"}
        ]);
        let reports = read_webhook(body.to_string().as_bytes()).unwrap();
        assert_eq!(reports.len(), 2, "a message without an id names nothing of ours");
        assert_eq!((reports[0].state, reports[1].state), (ReportState::Delivered, ReportState::Failed));
        assert!(read_webhook(br#"{"messageList": {}}"#).is_err());
    }
}
