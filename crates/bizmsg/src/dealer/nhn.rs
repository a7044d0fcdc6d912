//! NHN Cloud KakaoTalk Bizmessage (reference/bizmsg.md §2): AlimTalk v2.3 substitution sends,
//! Brand Message v1.0 sends, result updates (AlimTalk), the message lists of both products (a
//! request's messages and their results by `requestId`, or by our request key), and the
//! delivery-result webhook.
//!
//! Authentication is the console's secret key in `X-Secret-Key`; the app key is in the path. An
//! `X-NC-API-IDEMPOTENCY-KEY` makes NHN refuse (-1005) a second request with the same key within
//! ten minutes, which is how a retry after a lost answer does not send twice.

use super::{
    Addressee, Batch, Fallback, ItemOutcome, ItemResult, Report, ReportState, Sender, WireRequest, http_error, missing,
    query_value,
};
use crate::codes::ResultCode;
use crate::send::Product;
use crate::template::FallbackKind;
use clawbridge_core::SendError;
use clawbridge_core::time::{EpochMs, KST, timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The production host (`NHN_BIZMSG_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://kakaotalk-bizmessage.api.nhncloudservice.com";
/// NHN's longest template code.
pub const MAX_TEMPLATE_CODE_CHARS: usize = 20;

/// What an NHN request needs besides the message.
#[derive(Debug, Clone)]
pub struct NhnAuth {
    /// The app key (path parameter).
    pub app_key: String,
    /// The secret key (`X-Secret-Key`).
    pub secret_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendBody<'a> {
    sender_key: &'a str,
    template_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_date: Option<String>,
    /// The request key again: what finds this request's messages when its answer was lost.
    sender_grouping_key: &'a str,
    recipient_list: Vec<Recipient<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Recipient<'a> {
    recipient_no: &'a str,
    template_parameter: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_parameter: Option<Resend<'a>>,
    recipient_grouping_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resend<'a> {
    is_resend: bool,
    resend_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_title: Option<&'a str>,
    resend_content: &'a str,
    resend_send_no: &'a str,
}

/// `yyyy-MM-dd HH:mm` in KST, NHN's `requestDate`.
fn request_date(at: EpochMs) -> String {
    KST.to_datetime(timestamp(at)).strftime("%Y-%m-%d %H:%M").to_string()
}

/// [`request_date`] as a query value (`2026-12-24%2009%3A00`).
fn query_date(at: EpochMs) -> String {
    request_date(at).replace(' ', "%20").replace(':', "%3A")
}

/// The AlimTalk substitution send for `batch`, with `idempotency_key` (the same on every attempt
/// of this batch).
///
/// # Errors
/// A template code NHN does not take, or a fallback without a sender number.
pub fn alimtalk_send(
    auth: &NhnAuth,
    sender: &Sender,
    batch: &Batch,
    idempotency_key: &str,
) -> Result<WireRequest, String> {
    if batch.template_code.chars().count() > MAX_TEMPLATE_CODE_CHARS {
        return Err(format!(
            "template code {:?} is longer than NHN's {MAX_TEMPLATE_CODE_CHARS} characters",
            batch.template_code
        ));
    }
    let mut recipient_list = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let resend_parameter = match &item.rendered.fallback {
            None => None,
            Some(fallback) => {
                let from = sender.sms_from.as_ref().ok_or(
                    "an SMS/LMS fallback needs the sender number: set BIZMSG_SMS_FROM (bizmsg.smsFrom) to the caller \
                     id registered with NHN",
                )?;
                Some(Resend {
                    is_resend: true,
                    resend_type: fallback.kind.code(),
                    resend_title: fallback.title.as_deref().filter(|_| fallback.kind == FallbackKind::Lms),
                    resend_content: &fallback.message,
                    resend_send_no: from.digits(),
                })
            }
        };
        recipient_list.push(Recipient {
            recipient_no: item.to.national(),
            template_parameter: &item.rendered.variables,
            resend_parameter,
            recipient_grouping_key: &item.reference,
        });
    }
    let body = SendBody {
        sender_key: &sender.sender_key,
        template_code: &batch.template_code,
        request_date: batch.send_at.map(request_date),
        sender_grouping_key: idempotency_key,
        recipient_list,
    };
    Ok(WireRequest {
        method: "POST",
        path: format!("/alimtalk/v2.3/appkeys/{}/messages", auth.app_key),
        headers: vec![
            ("X-Secret-Key", auth.secret_key.clone()),
            ("X-NC-API-IDEMPOTENCY-KEY", idempotency_key.to_owned()),
        ],
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandBody<'a> {
    sender_key: &'a str,
    chat_bubble_type: &'static str,
    push_alarm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsubscribe_no: Option<String>,
    adult: bool,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<BrandImageBody<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<BrandButton<'a>>,
    recipient_list: Vec<BrandRecipient<'a>>,
    sender_grouping_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandImageBody<'a> {
    image_url: &'a str,
}

/// A template ("basic") Brand Message: the template's text and buttons are NHN's; each
/// recipient carries its targeting (required here) and the values.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BasicBody<'a> {
    sender_key: &'a str,
    template_code: &'a str,
    push_alarm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsubscribe_no: Option<String>,
    recipient_list: Vec<BasicRecipient<'a>>,
    sender_grouping_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BasicRecipient<'a> {
    recipient_no: &'a str,
    targeting: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    template_parameter: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_parameters: Vec<BrandImageBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_parameter: Option<BrandResend<'a>>,
    recipient_grouping_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandButton<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    link_mo: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandRecipient<'a> {
    recipient_no: &'a str,
    targeting: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_parameter: Option<BrandResend<'a>>,
    recipient_grouping_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandResend<'a> {
    is_resend: bool,
    resend_type: &'static str,
    resend_content: &'a str,
    resend_send_no: &'a str,
    resend_unsubscribe_no: String,
}

/// `080-123-4567` / `080-1234-5678`: the opt-out number as NHN writes it.
fn dashed_080(digits: &str) -> String {
    let (head, rest) = digits.split_at(digits.len().min(3));
    let split = rest.len().saturating_sub(4);
    format!("{head}-{}-{}", &rest[..split], &rest[split..])
}

/// A Brand Message to `recipients`, with `idempotency_key`: free-form (`freestyle-messages`,
/// a TEXT or IMAGE bubble) or a template (`basic-messages`).
///
/// # Errors
/// A fallback without the sender number, an image that was not uploaded.
pub fn brand_send(
    auth: &NhnAuth,
    sender: &Sender,
    content: &crate::brand::BrandContent,
    recipients: &[Addressee],
    send_at: Option<EpochMs>,
    idempotency_key: &str,
) -> Result<WireRequest, String> {
    let resend = match &content.fallback {
        None => None,
        Some(fallback) => {
            let from = sender.sms_from.as_ref().ok_or(
                "an SMS/LMS fallback needs the sender number: set BIZMSG_SMS_FROM (bizmsg.smsFrom) to the caller id \
                 registered with NHN",
            )?;
            let opt_out = content.opt_out_number.as_deref().ok_or("an ad fallback needs the 080 opt-out number")?;
            Some((fallback, from.digits(), dashed_080(opt_out)))
        }
    };
    let resend_parameter = || {
        resend.as_ref().map(|(fallback, from, opt_out)| BrandResend {
            is_resend: true,
            resend_type: fallback.kind.code(),
            resend_content: &fallback.message,
            resend_send_no: from,
            resend_unsubscribe_no: opt_out.clone(),
        })
    };
    let image_url = match &content.image {
        None => None,
        Some(image) => Some(image.dealer_ref.as_deref().ok_or_else(|| {
            format!("the image {:?} was not uploaded to NHN before the send was stored", image.source)
        })?),
    };
    let headers =
        vec![("X-Secret-Key", auth.secret_key.clone()), ("X-NC-API-IDEMPOTENCY-KEY", idempotency_key.to_owned())];
    if let Some(template) = &content.template {
        let values = template.all_values();
        let body = BasicBody {
            sender_key: &sender.sender_key,
            template_code: &template.template_code,
            push_alarm: true,
            request_date: send_at.map(request_date),
            unsubscribe_no: content.opt_out_number.as_deref().map(dashed_080),
            recipient_list: recipients
                .iter()
                .map(|r| BasicRecipient {
                    recipient_no: r.to.national(),
                    targeting: content.targeting.code(),
                    template_parameter: values.clone(),
                    image_parameters: image_url.map(|image_url| BrandImageBody { image_url }).into_iter().collect(),
                    resend_parameter: resend_parameter(),
                    recipient_grouping_key: &r.reference,
                })
                .collect(),
            sender_grouping_key: idempotency_key,
        };
        return Ok(WireRequest {
            method: "POST",
            path: format!("/brand-message/v1.0/appkeys/{}/basic-messages", auth.app_key),
            headers,
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        });
    }
    let body = BrandBody {
        sender_key: &sender.sender_key,
        chat_bubble_type: content.bubble.code(),
        push_alarm: true,
        request_date: send_at.map(request_date),
        unsubscribe_no: content.opt_out_number.as_deref().map(dashed_080),
        adult: false,
        content: &content.text,
        image: image_url.map(|image_url| BrandImageBody { image_url }),
        buttons: content
            .buttons
            .iter()
            .map(|b| BrandButton { name: &b.name, kind: "WL", link_mo: &b.link_mo })
            .collect(),
        recipient_list: recipients
            .iter()
            .map(|r| BrandRecipient {
                recipient_no: r.to.national(),
                targeting: content.targeting.code(),
                resend_parameter: resend_parameter(),
                recipient_grouping_key: &r.reference,
            })
            .collect(),
        sender_grouping_key: idempotency_key,
    };
    Ok(WireRequest {
        method: "POST",
        path: format!("/brand-message/v1.0/appkeys/{}/freestyle-messages", auth.app_key),
        headers,
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

/// The boundary of [`image_upload`]'s multipart body: a fixed string that cannot occur in it
/// (checked), so the request is the same on every attempt.
const BOUNDARY: &str = "clawbridge-image-7f3a9c1e5b2d";

/// The Brand Message image upload (`POST /brand-message/v1.0/appkeys/{appKey}/images`,
/// multipart: `image` and `imageType=IMAGE`); NHN answers with the `imageUrl` a send carries.
///
/// # Errors
/// Bytes that contain the multipart boundary (not a real image).
pub fn image_upload(
    auth: &NhnAuth,
    file_name: &str,
    format: crate::brand::ImageFormat,
    bytes: &[u8],
) -> Result<WireRequest, String> {
    if bytes.windows(BOUNDARY.len()).any(|w| w == BOUNDARY.as_bytes()) {
        return Err("the image contains the upload's multipart boundary".to_owned());
    }
    // Only the last path segment, and nothing that would end the header line or the quotes.
    let name: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("image")
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let mut body = Vec::with_capacity(bytes.len() + 400);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"imageType\"\r\n\r\nIMAGE\r\n--{BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
            format.mime()
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Ok(WireRequest {
        method: "POST",
        path: format!("/brand-message/v1.0/appkeys/{}/images", auth.app_key),
        headers: vec![
            ("X-Secret-Key", auth.secret_key.clone()),
            ("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}")),
        ],
        body,
    })
}

#[derive(Deserialize)]
struct ImageAnswer {
    header: Header,
    #[serde(default)]
    image: Option<UploadedImage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadedImage {
    #[serde(default)]
    image_url: String,
}

/// Reads [`image_upload`]'s answer: the image's URL at Kakao.
///
/// # Errors
/// The upload failed, classified.
pub fn read_image_upload(status: u16, body: &[u8]) -> Result<String, SendError> {
    let answer: ImageAnswer = read_query(status, body, "image upload", |a: &ImageAnswer| &a.header)?;
    answer
        .image
        .map(|i| i.image_url)
        .filter(|url| !url.is_empty())
        .ok_or_else(|| SendError::transient("NHN accepted the image upload but returned no imageUrl"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    result_code: i64,
    #[serde(default)]
    result_message: String,
    #[serde(default)]
    is_successful: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendAnswer {
    header: Header,
    #[serde(default)]
    message: Option<SendMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMessage {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    send_results: Vec<SendResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendResult {
    recipient_seq: i64,
    #[serde(default)]
    result_code: i64,
    #[serde(default)]
    result_message: String,
    #[serde(default)]
    recipient_grouping_key: Option<String>,
}

/// What NHN said to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendAnswerKind {
    /// Per-recipient outcomes.
    Outcomes(Vec<ItemOutcome>),
    /// -1005: NHN has seen this idempotency key within ten minutes, so an earlier attempt of this
    /// very request reached it. Nothing is sent again; the results are looked up instead.
    AlreadyAccepted,
}

/// Reads NHN's answer to [`alimtalk_send`].
///
/// # Errors
/// The request as a whole failed, classified.
pub fn read_send_answer(
    status: u16,
    body: &[u8],
    items: &[Addressee],
    retry_after: Option<std::time::Duration>,
) -> Result<SendAnswerKind, SendError> {
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, retry_after));
    }
    let answer: SendAnswer = serde_json::from_slice(body)
        .map_err(|e| SendError::transient(format!("NHN answered 200 with a body that is not its JSON: {e}")))?;
    let header = &answer.header;
    match header.result_code {
        -1005 => return Ok(SendAnswerKind::AlreadyAccepted),
        -1000 | -1001 => {
            return Err(SendError::Permanent(format!(
                "NHN refused the credentials ({} {}): check NHN_BIZMSG_APP_KEY and NHN_BIZMSG_SECRET_KEY",
                header.result_code, header.result_message
            )));
        }
        -1017 => return Err(SendError::RateLimited { retry_after }),
        _ => {}
    }
    let results = answer.message.as_ref().map(|m| m.send_results.as_slice()).unwrap_or_default();
    if !header.is_successful && results.is_empty() {
        return Err(SendError::Permanent(format!(
            "NHN refused the request: {} {}",
            header.result_code, header.result_message
        )));
    }
    let request_id = answer.message.as_ref().map(|m| m.request_id.as_str()).unwrap_or_default();
    let mut outcomes = Vec::with_capacity(items.len());
    for result in results {
        // Brand Message answers do not echo `recipientGroupingKey`; their `recipientSeq` is
        // the recipient's place in the request (1-based).
        let by_seq =
            || usize::try_from(result.recipient_seq - 1).ok().and_then(|i| items.get(i)).map(|a| a.reference.clone());
        let Some(reference) = result.recipient_grouping_key.clone().filter(|k| !k.is_empty()).or_else(by_seq) else {
            continue;
        };
        let outcome = if result.result_code == 0 {
            ItemResult::Accepted { dealer_id: format!("{request_id}/{}", result.recipient_seq) }
        } else {
            ItemResult::Refused { code: result.result_code.to_string(), reason: result.result_message.clone() }
        };
        outcomes.push(ItemOutcome { reference, result: outcome });
    }
    missing(items, &mut outcomes);
    Ok(SendAnswerKind::Outcomes(outcomes))
}

/// NHN's `resendStatus` (RSC01 none, RSC02 armed, RSC03 sending, RSC04 sent, RSC05 failed).
fn fallback(code: Option<&str>) -> Fallback {
    match code {
        Some("RSC02") => Fallback::Armed,
        Some("RSC03") => Fallback::Sending,
        Some("RSC04") => Fallback::Sent,
        Some("RSC05") => Fallback::Failed,
        _ => Fallback::None,
    }
}

/// A code NHN writes as a number or as a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum Code {
    Number(i64),
    Text(String),
}

impl Code {
    fn result_code(&self) -> Option<ResultCode> {
        match self {
            Self::Number(n) => u16::try_from(*n).ok().map(ResultCode),
            Self::Text(t) => t.trim().parse().ok().map(ResultCode),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportRow {
    request_id: String,
    recipient_seq: i64,
    #[serde(default)]
    message_status: Option<String>,
    #[serde(default)]
    result_code: Option<Code>,
    #[serde(default)]
    receive_date: Option<String>,
    /// AlimTalk writes `resendStatus`; the Brand Message list `resendStatusCode` (same codes).
    #[serde(default, alias = "resendStatusCode")]
    resend_status: Option<String>,
}

impl ReportRow {
    fn into_report(self) -> Report {
        let code = self.result_code.as_ref().and_then(Code::result_code);
        let state = match self.message_status.as_deref() {
            // COMPLETED is the end of sending; Kakao's code says whether it reached the phone.
            Some("COMPLETED") if code.is_none_or(|c| c == ResultCode::DELIVERED) => ReportState::Delivered,
            Some("COMPLETED" | "FAILED") => ReportState::Failed,
            Some("CANCEL") => ReportState::Cancelled,
            _ => ReportState::Pending,
        };
        Report {
            dealer_id: format!("{}/{}", self.request_id, self.recipient_seq),
            state,
            code: code.map(|c| c.0.to_string()),
            reason: code.map(|c| c.meaning().to_owned()),
            done_at: self.receive_date.filter(|d| !d.is_empty()),
            fallback: Some(fallback(self.resend_status.as_deref())),
        }
    }
}

/// The result-update query for the window `[from, to]` (KST minutes), one page of up to 1,000.
pub fn results_query(auth: &NhnAuth, from: EpochMs, to: EpochMs, page: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "/alimtalk/v2.3/appkeys/{}/message-results?startUpdateDate={}&endUpdateDate={}&pageNum={page}&pageSize=1000",
            auth.app_key,
            query_date(from),
            query_date(to)
        ),
        headers: vec![("X-Secret-Key", auth.secret_key.clone())],
        body: Vec::new(),
    }
}

#[derive(Deserialize)]
struct ResultsAnswer {
    header: Header,
    #[serde(default)]
    messages: Vec<ReportRow>,
}

/// Reads a query's answer: another status than 2xx, a body that is not NHN's JSON (transient) or
/// a refusal in its header (permanent, with NHN's code and words) is an error.
fn read_query<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
    what: &str,
    header: impl Fn(&T) -> &Header,
) -> Result<T, SendError> {
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, None));
    }
    let answer: T =
        serde_json::from_slice(body).map_err(|e| SendError::transient(format!("NHN {what} is not its JSON: {e}")))?;
    let h = header(&answer);
    if !h.is_successful {
        return Err(SendError::Permanent(format!("NHN refused the {what}: {} {}", h.result_code, h.result_message)));
    }
    Ok(answer)
}

/// Reads a result-update page.
///
/// # Errors
/// The query failed, classified.
pub fn read_results(status: u16, body: &[u8]) -> Result<Vec<Report>, SendError> {
    let answer: ResultsAnswer = read_query(status, body, "result query", |a: &ResultsAnswer| &a.header)?;
    Ok(answer.messages.into_iter().map(ReportRow::into_report).collect())
}

/// The message list of `product`: AlimTalk v2.3 and Brand Message v1.0 take the same query
/// (`requestId`, or a request-date window with filters) and answer in the same shape.
fn messages_path(auth: &NhnAuth, product: Product) -> String {
    match product {
        Product::Alimtalk => format!("/alimtalk/v2.3/appkeys/{}/messages", auth.app_key),
        Product::Brand => format!("/brand-message/v1.0/appkeys/{}/messages", auth.app_key),
    }
}

/// The messages of one earlier request, found by its request key (`senderGroupingKey`) among
/// the requests of `product` made in `[from, to]`: asked before a request whose answer was lost
/// is made again, so that what NHN already took is not sent twice.
pub fn lookup_query(auth: &NhnAuth, product: Product, request_key: &str, from: EpochMs, to: EpochMs) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "{}?startRequestDate={}&endRequestDate={}&senderGroupingKey={}&pageSize=1000",
            messages_path(auth, product),
            query_date(from),
            query_date(to),
            query_value(request_key)
        ),
        headers: vec![("X-Secret-Key", auth.secret_key.clone())],
        body: Vec::new(),
    }
}

/// One page (up to 1,000) of the messages of NHN's request `request_id`, with their delivery
/// state: how rows still without a final result are asked about (Brand Message has no result
/// updates query; AlimTalk rows whose update was missed are found the same way).
pub fn request_results_query(auth: &NhnAuth, product: Product, request_id: &str, page: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "{}?requestId={}&pageNum={page}&pageSize=1000",
            messages_path(auth, product),
            query_value(request_id)
        ),
        headers: vec![("X-Secret-Key", auth.secret_key.clone())],
        body: Vec::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedResults {
    header: Header,
    #[serde(default)]
    message_search_result_response: Option<ListedRows>,
}

#[derive(Deserialize)]
struct ListedRows {
    #[serde(default)]
    messages: Vec<ReportRow>,
}

/// Reads [`request_results_query`]'s answer: a report per message.
///
/// # Errors
/// The query failed, classified.
pub fn read_request_results(status: u16, body: &[u8]) -> Result<Vec<Report>, SendError> {
    let answer: ListedResults = read_query(status, body, "message list", |a: &ListedResults| &a.header)?;
    Ok(answer
        .message_search_result_response
        .map(|r| r.messages)
        .unwrap_or_default()
        .into_iter()
        .map(ReportRow::into_report)
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupAnswer {
    header: Header,
    #[serde(default)]
    message_search_result_response: Option<LookupMessages>,
}

#[derive(Deserialize)]
struct LookupMessages {
    #[serde(default)]
    messages: Vec<LookupRow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupRow {
    request_id: String,
    recipient_seq: i64,
    #[serde(default)]
    recipient_grouping_key: Option<String>,
}

/// Reads [`lookup_query`]'s answer: `(our reference, the dealer's id)` of every message NHN has.
///
/// # Errors
/// The query failed, classified.
pub fn read_lookup(status: u16, body: &[u8]) -> Result<Vec<(String, String)>, SendError> {
    // A refused lookup is retried: the rows stay in doubt rather than being sent again.
    let answer: LookupAnswer =
        read_query(status, body, "message list", |a: &LookupAnswer| &a.header).map_err(|e| match e {
            SendError::Permanent(reason) => SendError::transient(reason),
            other => other,
        })?;
    Ok(answer
        .message_search_result_response
        .map(|r| r.messages)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| Some((m.recipient_grouping_key?, format!("{}/{}", m.request_id, m.recipient_seq))))
        .collect())
}

/// The approved (and pending) AlimTalk templates of a sender key, one page of up to 1,000.
pub fn templates_query(auth: &NhnAuth, sender_key: &str, page: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "/alimtalk/v2.3/appkeys/{}/senders/{sender_key}/templates?pageNum={page}&pageSize=1000",
            auth.app_key
        ),
        headers: vec![("X-Secret-Key", auth.secret_key.clone())],
        body: Vec::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplatesAnswer {
    header: Header,
    #[serde(default)]
    template_list_response: Option<TemplateList>,
}

#[derive(Deserialize)]
struct TemplateList {
    #[serde(default)]
    templates: Vec<TemplateRow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateRow {
    template_code: String,
    #[serde(default)]
    template_name: String,
    #[serde(default)]
    template_content: String,
    #[serde(default)]
    buttons: Vec<TemplateButtonRow>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateButtonRow {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
}

/// Reads a template page into the dealer's view of each template.
///
/// # Errors
/// The query failed, classified.
pub fn read_templates(status: u16, body: &[u8]) -> Result<Vec<crate::template::DealerTemplate>, SendError> {
    use crate::template::{DealerTemplate, TemplateStatus};
    let answer: TemplatesAnswer =
        read_query(status, body, "template list", |a: &TemplatesAnswer| &a.header).map_err(|e| match e {
            SendError::Permanent(reason) => SendError::Permanent(format!("{reason} (check BIZMSG_SENDER_KEY)")),
            other => other,
        })?;
    Ok(answer
        .template_list_response
        .map(|l| l.templates)
        .unwrap_or_default()
        .into_iter()
        .map(|t| DealerTemplate {
            status: match t.status.as_str() {
                "TSC01" => TemplateStatus::Requested,
                "TSC02" => TemplateStatus::InReview,
                "TSC03" => TemplateStatus::Approved,
                "TSC04" => TemplateStatus::Rejected,
                _ => TemplateStatus::Unknown,
            },
            code: t.template_code,
            name: t.template_name,
            text: t.template_content,
            buttons: t.buttons.into_iter().map(|b| (b.kind, b.name)).collect(),
            product: crate::send::Product::Alimtalk,
            variables: Vec::new(),
        })
        .collect())
}

/// The Brand Message templates of a sender key, one page of up to 1,000.
pub fn brand_templates_query(auth: &NhnAuth, sender_key: &str, page: u32) -> WireRequest {
    WireRequest {
        method: "GET",
        path: format!(
            "/brand-message/v1.0/appkeys/{}/senders/{sender_key}/templates?pageNum={page}&pageSize=1000",
            auth.app_key
        ),
        headers: vec![("X-Secret-Key", auth.secret_key.clone())],
        body: Vec::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrandTemplatesAnswer {
    header: Header,
    #[serde(default)]
    template_list_response: Option<BrandTemplateList>,
}

#[derive(Deserialize)]
struct BrandTemplateList {
    #[serde(default)]
    templates: Vec<BrandTemplateRow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrandTemplateRow {
    template_code: String,
    #[serde(default)]
    template_name: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    buttons: Vec<TemplateButtonRow>,
    #[serde(default)]
    status: String,
}

/// Reads a Brand Message template page. Brand Message templates are not reviewed: `A`
/// (registered) can be sent, `S` is blocked.
///
/// # Errors
/// The query failed, classified.
pub fn read_brand_templates(status: u16, body: &[u8]) -> Result<Vec<crate::template::DealerTemplate>, SendError> {
    use crate::template::{DealerTemplate, TemplateStatus};
    let answer: BrandTemplatesAnswer =
        read_query(status, body, "Brand Message template list", |a: &BrandTemplatesAnswer| &a.header)?;
    Ok(answer
        .template_list_response
        .map(|l| l.templates)
        .unwrap_or_default()
        .into_iter()
        .map(|t| DealerTemplate {
            status: match t.status.as_str() {
                "A" => TemplateStatus::Approved,
                "S" => TemplateStatus::Blocked,
                _ => TemplateStatus::Unknown,
            },
            code: t.template_code,
            name: t.template_name,
            text: t.content.unwrap_or_default(),
            buttons: t.buttons.into_iter().map(|b| (b.kind, b.name)).collect(),
            product: crate::send::Product::Brand,
            variables: Vec::new(),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    #[serde(default)]
    event: String,
    /// Read only for result updates: other events' hooks have other shapes.
    #[serde(default)]
    hooks: Option<Box<serde_json::value::RawValue>>,
}

/// Whether a webhook carries the signature configured in the NHN console
/// (`X-Toast-Webhook-Signature`), compared in constant time.
pub fn webhook_signature_ok(header: Option<&[u8]>, configured: &str) -> bool {
    use subtle::ConstantTimeEq;
    header.is_some_and(|value| !configured.is_empty() && bool::from(value.ct_eq(configured.as_bytes())))
}

/// Reads a delivery-result webhook body (`event: MESSAGE_RESULT_UPDATE`); other events (template
/// status changes) carry no reports. The signature header is checked before this is called.
///
/// # Errors
/// A body that is not NHN's webhook JSON (answered 400).
pub fn read_webhook(body: &[u8]) -> Result<Vec<Report>, String> {
    let hook: Webhook = serde_json::from_slice(body).map_err(|e| format!("not an NHN webhook body: {e}"))?;
    if hook.event != "MESSAGE_RESULT_UPDATE" {
        return Ok(Vec::new());
    }
    let Some(hooks) = hook.hooks else { return Ok(Vec::new()) };
    let rows: Vec<ReportRow> =
        serde_json::from_str(hooks.get()).map_err(|e| format!("NHN webhook hooks are not result rows: {e}"))?;
    Ok(rows.into_iter().map(ReportRow::into_report).collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::dealer::DealerKind;
    use crate::dealer::addressees;
    use serde_json::{Value, json};

    fn auth() -> NhnAuth {
        NhnAuth { app_key: "APPKEY".into(), secret_key: "SECRET".into() }
    }

    #[test]
    fn a_substitution_send_is_nhns_json_with_the_keys_in_their_headers() {
        let items = vec![item("r1", "010-1111-2222", "홍길동", true), item("r2", "+82 10 3333 4444", "김철수", false)];
        // 2026-12-24 09:00 KST.
        let batch = Batch::new(DealerKind::Nhn, items, Some(1_798_070_400_000)).unwrap();
        let request = alimtalk_send(&auth(), &sender(), &batch, "batch-7").unwrap();
        assert_eq!((request.method, request.path.as_str()), ("POST", "/alimtalk/v2.3/appkeys/APPKEY/messages"));
        assert_eq!(
            request.headers,
            [("X-Secret-Key", "SECRET".to_owned()), ("X-NC-API-IDEMPOTENCY-KEY", "batch-7".to_owned())]
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "senderKey": "a".repeat(40),
                "templateCode": "ORDER_SHIPPED",
                "requestDate": "2026-12-24 09:00",
                "senderGroupingKey": "batch-7",
                "recipientList": [
                    {"recipientNo": "01011112222", "templateParameter": {"name": "홍길동", "order": "A-1"},
                     "resendParameter": {"isResend": true, "resendType": "LMS", "resendTitle": "발송 안내",
                                         "resendContent": "홍길동님 상품 발송", "resendSendNo": "0212345678"},
                     "recipientGroupingKey": "r1"},
                    {"recipientNo": "01033334444", "templateParameter": {"name": "김철수", "order": "A-1"},
                     "recipientGroupingKey": "r2"}
                ]
            })
        );
    }

    #[test]
    fn a_fallback_without_a_sender_number_is_refused_before_any_request() {
        let batch = Batch::new(DealerKind::Nhn, vec![item("r1", "010-1111-2222", "가", true)], None).unwrap();
        let no_from = Sender { sms_from: None, ..sender() };
        assert!(alimtalk_send(&auth(), &no_from, &batch, "k").unwrap_err().contains("BIZMSG_SMS_FROM"));
    }

    #[test]
    fn per_recipient_failures_inside_a_200_are_read_by_reference() {
        let items = vec![
            item("r1", "010-1111-2222", "가", false),
            item("r2", "010-3333-4444", "나", false),
            item("r3", "010-5555-6666", "다", false),
        ];
        let body = json!({
            "header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "message": {"requestId": "20261224-abc", "sendResults": [
                {"recipientSeq": 2, "recipientNo": "01033334444", "resultCode": -2000, "resultMessage": "invalid recipientNo", "recipientGroupingKey": "r2"},
                {"recipientSeq": 1, "recipientNo": "01011112222", "resultCode": 0, "resultMessage": "SUCCESS", "recipientGroupingKey": "r1"}
            ]}
        });
        let SendAnswerKind::Outcomes(outcomes) =
            read_send_answer(200, body.to_string().as_bytes(), &addressees(&items), None).unwrap()
        else {
            panic!("outcomes expected")
        };
        assert_eq!(
            outcomes[0],
            ItemOutcome {
                reference: "r2".into(),
                result: ItemResult::Refused { code: "-2000".into(), reason: "invalid recipientNo".into() }
            }
        );
        assert_eq!(
            outcomes[1],
            ItemOutcome { reference: "r1".into(), result: ItemResult::Accepted { dealer_id: "20261224-abc/1".into() } }
        );
        assert!(
            matches!(&outcomes[2], ItemOutcome { reference, result: ItemResult::Refused { code, .. } } if reference == "r3" && code == "missing")
        );
    }

    #[test]
    fn request_level_answers_are_classified() {
        let items = vec![item("r1", "010-1111-2222", "가", false)];
        let header = |code: i64| {
            json!({"header": {"resultCode": code, "resultMessage": "x", "isSuccessful": false}}).to_string()
        };
        assert_eq!(
            read_send_answer(200, header(-1005).as_bytes(), &addressees(&items), None).unwrap(),
            SendAnswerKind::AlreadyAccepted
        );
        let e = read_send_answer(200, header(-1001).as_bytes(), &addressees(&items), None).unwrap_err();
        assert!(e.to_string().contains("NHN_BIZMSG_SECRET_KEY"), "{e}");
        assert_eq!(
            read_send_answer(200, header(-1017).as_bytes(), &addressees(&items), None).unwrap_err().class(),
            clawbridge_core::RetryClass::RateLimited
        );
        assert_eq!(
            read_send_answer(200, header(-3000).as_bytes(), &addressees(&items), None).unwrap_err().class(),
            clawbridge_core::RetryClass::Permanent
        );
        assert_eq!(
            read_send_answer(502, b"bad gateway", &addressees(&items), None).unwrap_err().class(),
            clawbridge_core::RetryClass::Transient
        );
        assert_eq!(
            read_send_answer(200, b"<html>", &addressees(&items), None).unwrap_err().class(),
            clawbridge_core::RetryClass::Transient
        );
    }

    #[test]
    fn result_updates_and_webhooks_become_reports() {
        let row = json!({"requestId": "20261224-abc", "recipientSeq": 1, "requestDate": "2026-12-24 09:00", "createDate": "2026-12-24 09:00",
                         "receiveDate": "2026-12-24 09:00:03", "resendStatus": "RSC04", "resendStatusName": "재발송 성공",
                         "messageStatus": "FAILED", "resultCode": "3019", "resultCodeName": "톡 유저 아님"});
        let page = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true}, "messages": [row.clone()]});
        let reports = read_results(200, page.to_string().as_bytes()).unwrap();
        assert_eq!(
            reports,
            [Report {
                dealer_id: "20261224-abc/1".into(),
                state: ReportState::Failed,
                code: Some("3019".into()),
                reason: Some("not a KakaoTalk user".into()),
                done_at: Some("2026-12-24 09:00:03".into()),
                fallback: Some(Fallback::Sent),
            }]
        );
        let hook = json!({"hooksId": "h1", "webhookConfigId": "c1", "productName": "AlimTalk", "appKey": "APPKEY",
                          "event": "MESSAGE_RESULT_UPDATE", "hooks": [row]});
        assert_eq!(read_webhook(hook.to_string().as_bytes()).unwrap(), reports);
        let template_event = json!({"event": "TEMPLATE_STATUS_UPDATE", "hooks": [{"templateCode": "A"}]});
        assert!(read_webhook(template_event.to_string().as_bytes()).unwrap().is_empty());
        assert!(read_webhook(b"{").is_err());
    }

    #[test]
    fn a_brand_message_is_one_freestyle_text_for_every_recipient() {
        let content = crate::brand::BrandContent {
            text: "겨울 세일 20%".into(),
            bubble: crate::template::Bubble::Text,
            image: None,
            template: None,
            buttons: vec!["쇼핑하기|https://shop.example/sale".parse().unwrap()],
            targeting: crate::brand::Targeting::Friends,
            opt_out_number: Some("0801234567".into()),
            fallback: Some(crate::template::RenderedFallback {
                kind: FallbackKind::Lms,
                message: "(광고)겨울 세일 20%[무료 수신거부]0801234567".into(),
                title: None,
            }),
        };
        let to =
            [item("r1", "010-1111-2222", "x", false).addressee(), item("r2", "010-3333-4444", "x", false).addressee()];
        let request = brand_send(&auth(), &sender(), &content, &to, None, "bz-1").unwrap();
        assert_eq!(request.path, "/brand-message/v1.0/appkeys/APPKEY/freestyle-messages");
        assert_eq!(request.headers[1], ("X-NC-API-IDEMPOTENCY-KEY", "bz-1".to_owned()));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let resend = json!({"isResend": true, "resendType": "LMS", "resendContent": "(광고)겨울 세일 20%[무료 수신거부]0801234567",
                            "resendSendNo": "0212345678", "resendUnsubscribeNo": "080-123-4567"});
        assert_eq!(
            body,
            json!({
                "senderKey": "a".repeat(40), "chatBubbleType": "TEXT", "pushAlarm": true, "unsubscribeNo": "080-123-4567",
                "adult": false, "content": "겨울 세일 20%",
                "buttons": [{"name": "쇼핑하기", "type": "WL", "linkMo": "https://shop.example/sale"}],
                "recipientList": [
                    {"recipientNo": "01011112222", "targeting": "I", "resendParameter": resend, "recipientGroupingKey": "r1"},
                    {"recipientNo": "01033334444", "targeting": "I", "resendParameter": resend, "recipientGroupingKey": "r2"}
                ],
                "senderGroupingKey": "bz-1"
            })
        );
        assert_eq!(dashed_080("08012345678"), "080-1234-5678");
    }

    #[test]
    fn templates_are_read_with_their_review_status() {
        let request = templates_query(&auth(), "SK", 1);
        assert_eq!(request.path, "/alimtalk/v2.3/appkeys/APPKEY/senders/SK/templates?pageNum=1&pageSize=1000");
        let body = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "templateListResponse": {"templates": [
                {"senderKey": "SK", "templateCode": "OTP", "templateName": "인증", "templateContent": "인증번호는 #{code}입니다.",
                 "buttons": [{"ordering": 1, "type": "WL", "name": "열기", "linkMo": "https://a.example"}], "status": "TSC03", "statusName": "승인"},
                {"templateCode": "NEW", "templateContent": "x", "status": "TSC02"}
            ], "totalCount": 2}});
        let templates = read_templates(200, body.to_string().as_bytes()).unwrap();
        assert_eq!(templates[0].status, crate::template::TemplateStatus::Approved);
        assert_eq!(templates[0].buttons, [("WL".to_owned(), "열기".to_owned())]);
        assert_eq!(
            (templates[1].code.as_str(), templates[1].status),
            ("NEW", crate::template::TemplateStatus::InReview)
        );
    }

    #[test]
    fn a_lost_request_is_found_by_its_key() {
        let request = lookup_query(&auth(), Product::Alimtalk, "bz-7", 1_798_070_400_000, 1_798_071_000_000);
        assert_eq!(
            request.path,
            "/alimtalk/v2.3/appkeys/APPKEY/messages?startRequestDate=2026-12-24%2009%3A00&endRequestDate=2026-12-24%2009%3A10&senderGroupingKey=bz-7&pageSize=1000"
        );
        let body = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "messageSearchResultResponse": {"messages": [
                {"requestId": "R1", "recipientSeq": 2, "recipientNo": "01033334444", "senderGroupingKey": "bz-7", "recipientGroupingKey": "r2"}
            ], "totalCount": 1}});
        assert_eq!(read_lookup(200, body.to_string().as_bytes()).unwrap(), [("r2".to_owned(), "R1/2".to_owned())]);
        assert_eq!(read_lookup(503, b"",).unwrap_err().class(), clawbridge_core::RetryClass::Transient);
        let brand = lookup_query(&auth(), Product::Brand, "bz-7", 1_798_070_400_000, 1_798_071_000_000);
        assert!(
            brand.path.starts_with("/brand-message/v1.0/appkeys/APPKEY/messages?startRequestDate="),
            "{}",
            brand.path
        );
    }

    #[test]
    fn a_requests_messages_are_read_with_their_results_for_either_product() {
        let request = request_results_query(&auth(), Product::Brand, "B-1", 2);
        assert_eq!(request.path, "/brand-message/v1.0/appkeys/APPKEY/messages?requestId=B-1&pageNum=2&pageSize=1000");
        assert_eq!(
            request_results_query(&auth(), Product::Alimtalk, "R 1", 1).path,
            "/alimtalk/v2.3/appkeys/APPKEY/messages?requestId=R%201&pageNum=1&pageSize=1000"
        );
        // The Brand Message list names the fallback's state `resendStatusCode`.
        let body = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "messageSearchResultResponse": {"messages": [
                {"requestId": "B-1", "recipientSeq": 1, "recipientNo": "01011112222", "targeting": "I", "messageStatus": "COMPLETED",
                 "resultCode": "1000", "resultCodeName": "성공", "receiveDate": "2026-12-24 10:00:02", "resendStatusCode": "RSC01"},
                {"requestId": "B-1", "recipientSeq": 2, "recipientNo": "01033334444", "messageStatus": "FAILED",
                 "resultCode": "3022", "resendStatusCode": "RSC02"},
                {"requestId": "B-1", "recipientSeq": 3, "recipientNo": "01055556666", "messageStatus": "READY"}
            ], "totalCount": 3}});
        let reports = read_request_results(200, body.to_string().as_bytes()).unwrap();
        assert_eq!(
            reports.iter().map(|r| (r.dealer_id.as_str(), r.state, r.fallback)).collect::<Vec<_>>(),
            [
                ("B-1/1", ReportState::Delivered, Some(Fallback::None)),
                ("B-1/2", ReportState::Failed, Some(Fallback::Armed)),
                ("B-1/3", ReportState::Pending, Some(Fallback::None)),
            ]
        );
        assert_eq!(reports[1].reason.as_deref(), Some("outside the allowed sending hours (08:00–20:50 KST)"));
        let refused =
            json!({"header": {"resultCode": -1001, "resultMessage": "Invalid secretKey", "isSuccessful": false}});
        assert_eq!(
            read_request_results(200, refused.to_string().as_bytes()).unwrap_err().class(),
            clawbridge_core::RetryClass::Permanent
        );
    }

    #[test]
    fn webhook_signatures_are_compared_exactly() {
        assert!(webhook_signature_ok(Some(b"s3cret"), "s3cret"));
        assert!(!webhook_signature_ok(Some(b"s3cre"), "s3cret"));
        assert!(!webhook_signature_ok(None, "s3cret"));
        assert!(!webhook_signature_ok(Some(b""), ""), "an unset signature accepts nothing");
    }

    #[test]
    fn the_result_query_asks_for_one_page_of_a_kst_window() {
        let request = results_query(&auth(), 1_798_070_400_000, 1_798_070_460_000, 2);
        assert_eq!(
            request.path,
            "/alimtalk/v2.3/appkeys/APPKEY/message-results?startUpdateDate=2026-12-24%2009%3A00&endUpdateDate=2026-12-24%2009%3A01&pageNum=2&pageSize=1000"
        );
        assert_eq!(request.method, "GET");
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
    fn a_brand_template_is_a_basic_message_with_targeting_per_recipient() {
        let to = [item("r1", "010-1111-2222", "x", false).addressee()];
        let content = brand_template_content(Some("https://mud-kage.kakao.com/1.png"));
        let request = brand_send(&auth(), &sender(), &content, &to, None, "bz-2").unwrap();
        assert_eq!(request.path, "/brand-message/v1.0/appkeys/APPKEY/basic-messages");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({"senderKey": "a".repeat(40), "templateCode": "WINTER", "pushAlarm": true, "unsubscribeNo": "080-123-4567",
                   "recipientList": [{"recipientNo": "01011112222", "targeting": "M",
                                      "templateParameter": {"name": "홍길동", "code": "W1"},
                                      "imageParameters": [{"imageUrl": "https://mud-kage.kakao.com/1.png"}],
                                      "recipientGroupingKey": "r1"}],
                   "senderGroupingKey": "bz-2"})
        );
        // A free-form image bubble carries the uploaded URL; one not uploaded is refused.
        let mut free = brand_template_content(Some("https://mud-kage.kakao.com/1.png"));
        free.template = None;
        let body: Value =
            serde_json::from_slice(&brand_send(&auth(), &sender(), &free, &to, None, "k").unwrap().body).unwrap();
        assert_eq!(
            (body["chatBubbleType"].clone(), body["image"].clone()),
            (json!("IMAGE"), json!({"imageUrl": "https://mud-kage.kakao.com/1.png"}))
        );
        free.image.as_mut().unwrap().dealer_ref = None;
        assert!(brand_send(&auth(), &sender(), &free, &to, None, "k").unwrap_err().contains("not uploaded"));
        // Brand answers name recipients by their place, not by our key.
        let answer = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
                            "message": {"requestId": "B1", "sendResults": [{"recipientSeq": 1, "recipientNo": "01011112222", "resultCode": 0, "resultMessage": "SUCCESS"}]}});
        assert_eq!(
            read_send_answer(200, answer.to_string().as_bytes(), &to, None).unwrap(),
            SendAnswerKind::Outcomes(vec![ItemOutcome {
                reference: "r1".into(),
                result: ItemResult::Accepted { dealer_id: "B1/1".into() }
            }])
        );
    }

    #[test]
    fn an_image_is_uploaded_as_multipart_and_brand_templates_are_listed() {
        let request = image_upload(&auth(), "/tmp/x/sale.png", crate::brand::ImageFormat::Png, b"PNGBYTES").unwrap();
        assert_eq!((request.method, request.path.as_str()), ("POST", "/brand-message/v1.0/appkeys/APPKEY/images"));
        assert_eq!(request.headers[1], ("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}")));
        let body = String::from_utf8(request.body).unwrap();
        assert!(body.contains("name=\"imageType\"\r\n\r\nIMAGE\r\n"), "{body}");
        assert!(
            body.contains("name=\"image\"; filename=\"sale.png\"\r\nContent-Type: image/png\r\n\r\nPNGBYTES\r\n"),
            "{body}"
        );
        assert!(body.ends_with(&format!("--{BOUNDARY}--\r\n")));
        let answer = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
                            "image": {"imageSeq": 3, "imageUrl": "https://mud-kage.kakao.com/3.png", "imageName": "sale.png"}});
        assert_eq!(read_image_upload(200, answer.to_string().as_bytes()).unwrap(), "https://mud-kage.kakao.com/3.png");
        let refused =
            json!({"header": {"resultCode": -1001, "resultMessage": "Invalid secretKey", "isSuccessful": false}});
        assert_eq!(
            read_image_upload(200, refused.to_string().as_bytes()).unwrap_err().class(),
            clawbridge_core::RetryClass::Permanent
        );

        assert_eq!(
            brand_templates_query(&auth(), "SK", 1).path,
            "/brand-message/v1.0/appkeys/APPKEY/senders/SK/templates?pageNum=1&pageSize=1000"
        );
        let list = json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "templateListResponse": {"templates": [
                {"templateCode": "WINTER", "templateName": "겨울", "chatBubbleType": "TEXT", "content": "#{name}님", "status": "A",
                 "buttons": [{"name": "보기", "type": "WL"}]},
                {"templateCode": "OLD", "templateName": "옛", "chatBubbleType": "TEXT", "status": "S"}
            ], "totalCount": 2}});
        let read = read_brand_templates(200, list.to_string().as_bytes()).unwrap();
        assert_eq!(
            (read[0].status, read[0].product, read[0].variable_names()),
            (crate::template::TemplateStatus::Approved, crate::send::Product::Brand, vec!["name".to_owned()])
        );
        assert_eq!(read[1].status, crate::template::TemplateStatus::Blocked);
    }
}
