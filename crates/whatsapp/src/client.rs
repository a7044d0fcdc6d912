//! The Kapso WhatsApp API client (reference/kapso-whatsapp.md §1–§5).
//!
//! A thin request function (one attempt, classified) inside clawbridge-http's [`Layers`]: every
//! call has a timeout, passes the per-API-key rate limiter first (bursts queue instead of failing
//! with 429; a 429 pauses the key), and classifies failures into [`SendError`] so the outbox knows
//! whether to retry: network errors, 429, 5xx and Kapso's 409 "in-flight" are retried; Meta's
//! permanent codes (131047 outside the 24 h window, 131049, 131050, 368, …) are not. The client
//! itself retries only when asked ([`KapsoClient::with_retry`], the CLI): the outbox owns the
//! retries of the daemon's sends.

use crate::config::{AccountConfig, WhatsAppConfig};
use crate::limiter::RateLimiter;
use clawbridge_core::retry::{RetryClass, RetryPolicy};
use clawbridge_core::{MediaKind, SendError};
use clawbridge_http::{
    Classify, DownloadError, DownloadPolicy, Downloader, Layers, PlatformKey, Request, SharedQuota, Throttled,
    describe_error,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub use clawbridge_http::{Downloaded, redact_url};
pub use platform::{PhoneNumber, PlatformClient, Webhook, WebhookSpec};

mod platform;

/// Longest a call waits for the rate limiter before reporting "rate limited" to its caller
/// (with the HTTP timeout it stays inside the outbox's 90 s per send).
const MAX_LIMITER_WAIT: Duration = Duration::from_secs(45);
/// What a call that waited too long for the limiter suggests to its caller.
const LOCAL_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Largest page Kapso serves.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Meta error codes that retrying cannot fix (reference §2).
const PERMANENT_CODES: &[i64] =
    &[131_047, 131_049, 131_050, 368, 130_497, 131_031, 1026, 131_026, 131_051, 132_000, 132_001];
/// Meta error codes meaning "slow down".
const THROTTLE_CODES: &[i64] = &[4, 80_007, 130_429, 131_048, 131_056];
/// Meta error codes meaning the credentials are not accepted.
const AUTH_CODES: &[i64] = &[0, 190];

/// The API client of one phone number.
#[derive(Clone)]
pub struct KapsoClient {
    http: reqwest::Client,
    downloader: Downloader,
    meta_base: String,
    phone_number_id: String,
    api_key: SecretString,
    layers: Layers,
    /// The key's limiter (also inside `layers`), kept to attach the store's shared count.
    limiter: Arc<RateLimiter>,
}

impl std::fmt::Debug for KapsoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KapsoClient")
            .field("meta_base", &self.meta_base)
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

/// Where inbound media may be downloaded from and how much of it.
#[derive(Clone, Debug)]
pub struct MediaPolicy {
    /// Allowed hosts; a host also allows its subdomains.
    pub hosts: Vec<String>,
    /// Largest download in bytes.
    pub max_bytes: u64,
}

impl MediaPolicy {
    /// Whether `url` may be fetched: https to an allowed host, or plain http to a loopback host
    /// that is listed explicitly (local test servers).
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        self.download_policy().allows(url)
    }

    /// The downloader's policy: these hosts and cap, five redirects, http never upgraded.
    pub fn download_policy(&self) -> DownloadPolicy {
        DownloadPolicy::new(self.hosts.iter().cloned(), self.max_bytes)
    }
}

/// Who a message goes to: a phone number (`to`) or a business-scoped user id (`recipient`).
pub fn recipient_field(peer: &str) -> (&'static str, String) {
    if is_bsuid(peer) {
        ("recipient", peer.to_owned())
    } else {
        ("to", peer.chars().filter(char::is_ascii_digit).collect())
    }
}

/// `^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$` (reference §7).
pub fn is_bsuid(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else { return false };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.chars().all(|c| c.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Media to send: a public link or an uploaded media id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaSource {
    /// A public https URL WhatsApp fetches.
    Link(String),
    /// An id from [`KapsoClient::upload_media`].
    Id(String),
}

/// What the API answered to a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The `wamid` of the new message (empty in the odd case Kapso accepted without one).
    pub message_id: String,
}

/// One page of `GET /{phone_number_id}/messages`.
#[derive(Clone, Debug, Default)]
pub struct MessagePage {
    /// The messages, newest first (as Kapso returns them).
    pub data: Vec<Value>,
    /// `paging.cursors.after`: the next (older) page, when there is one.
    pub after: Option<String>,
    /// The server's clock (`Date` header), so a first poll does not depend on the local clock.
    pub server_time: Option<clawbridge_core::EpochMs>,
}

/// Filters of `GET /{phone_number_id}/messages`.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// ISO-8601: created on or after (Kapso `created_at`).
    pub since: Option<String>,
    /// Page size (≤ 100).
    pub limit: Option<u32>,
    /// Cursor of the next page.
    pub after: Option<String>,
}

/// `GET /{media_id}`: where to download a media file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// The preferred download URL (`download_url`, else `url`).
    pub url: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size in bytes, when given.
    pub file_size: Option<u64>,
}

/// Why a media download was refused or failed: the downloader's own [`DownloadError`] (one
/// definition of the failure kinds), told in the settings a WhatsApp operator changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", media_message(.0))]
pub struct MediaError(pub DownloadError);

impl From<DownloadError> for MediaError {
    fn from(error: DownloadError) -> Self {
        Self(error)
    }
}

fn media_message(error: &DownloadError) -> String {
    match error {
        DownloadError::NotAllowed(url) => format!("media URL not allowed (https and KAPSO_MEDIA_HOSTS only): {url}"),
        DownloadError::TooLarge(max) => format!("media larger than the {max}-byte cap (KAPSO_MEDIA_MAX_BYTES)"),
        DownloadError::Failed(reason) => format!("media download failed: {reason}"),
    }
}

/// A failed attempt: the outbox's error, and whether the request may have reached Kapso.
#[derive(Debug)]
struct Failure {
    error: SendError,
    maybe_delivered: bool,
}

impl Failure {
    /// Kapso answered (or nothing was sent): the request did not take effect.
    fn answered(error: SendError) -> Self {
        Self { error, maybe_delivered: false }
    }

    /// No usable answer: only a refused connection proves nothing arrived.
    fn network(e: reqwest::Error) -> Self {
        let maybe_delivered = !e.is_connect();
        Self { error: SendError::transient(describe_error(e)), maybe_delivered }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl Classify for Failure {
    fn retry_class(&self) -> RetryClass {
        self.error.class()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.error.retry_after()
    }

    fn maybe_delivered(&self) -> bool {
        self.maybe_delivered
    }
}

impl From<Throttled> for Failure {
    fn from(_: Throttled) -> Self {
        Self::answered(SendError::RateLimited { retry_after: Some(LOCAL_LIMIT_RETRY_AFTER) })
    }
}

impl KapsoClient {
    /// A client for `account`, sharing the rate limiter of every client with the same API key.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend) — a message for the operator.
    pub fn new(config: &WhatsAppConfig, account: &AccountConfig) -> Result<Self, String> {
        Self::new_with_quota(config, account, None)
    }

    /// [`new`](Self::new), with the key's requests also counted in `quota`, so that replicas
    /// sharing the key keep to its plan together.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend) — a message for the operator.
    pub fn new_with_quota(
        config: &WhatsAppConfig,
        account: &AccountConfig,
        quota: Option<Arc<dyn SharedQuota>>,
    ) -> Result<Self, String> {
        let limiter = crate::limiter::shared(account.api_key.expose_secret(), config.rate_limit_per_minute, quota);
        Self::with_parts(
            &config.meta_base(),
            &account.phone_number_id,
            account.api_key.clone(),
            limiter,
            MediaPolicy { hosts: config.media_hosts.clone(), max_bytes: config.media_max_bytes },
            config.http_timeout,
        )
    }

    /// A client from its parts (tests and tools).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_parts(
        meta_base: &str,
        phone_number_id: &str,
        api_key: SecretString,
        limiter: Arc<RateLimiter>,
        media: MediaPolicy,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clawbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        // The API key goes to Kapso's own hosts only: the configured API host and kapso.ai.
        let mut key_hosts = vec!["kapso.ai".to_owned()];
        key_hosts.extend(reqwest::Url::parse(meta_base).ok().and_then(|u| u.host_str().map(str::to_owned)));
        let key = PlatformKey::new(reqwest::header::HeaderName::from_static("x-api-key"), api_key.clone(), key_hosts);
        let downloader = Downloader::new(media.download_policy(), timeout).map_err(|e| e.to_string())?.with_key(key);
        Ok(Self {
            http,
            downloader,
            meta_base: meta_base.trim_end_matches('/').to_owned(),
            phone_number_id: phone_number_id.to_owned(),
            api_key,
            layers: Layers::new("whatsapp").with_rate_limit(limiter.clone(), MAX_LIMITER_WAIT).with_trace(),
            limiter,
        })
    }

    /// Retries what may pass within each call, on `policy` (the CLI, where nobody else retries).
    /// A send is not repeated after an error that may have delivered it (a timeout).
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.layers = self.layers.with_retry(policy);
        self
    }

    /// Counts this key's requests in `quota` too (the store, when the account starts), so that
    /// every replica on the store keeps to the key's plan together.
    pub fn share_rate_limit(&self, quota: Arc<dyn SharedQuota>) {
        self.limiter.share_through(crate::limiter::quota_key(self.api_key.expose_secret()), quota);
    }

    /// The phone number id this client sends from.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Sends a text; `reply_to` quotes an earlier message (`context.message_id`).
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn send_text(&self, to: &str, body: &str, reply_to: Option<&str>) -> Result<Sent, SendError> {
        let preview = body.contains("https://") || body.contains("http://");
        self.send_message(to, "text", json!({"body": body, "preview_url": preview}), reply_to).await
    }

    /// Sends an image, video, audio, document or sticker by link or media id.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn send_media(
        &self,
        to: &str,
        kind: MediaKind,
        source: &MediaSource,
        caption: Option<&str>,
        filename: Option<&str>,
        reply_to: Option<&str>,
    ) -> Result<Sent, SendError> {
        let kind_name = media_kind_name(kind);
        let mut object = serde_json::Map::new();
        match source {
            MediaSource::Link(link) => object.insert("link".into(), json!(link)),
            MediaSource::Id(id) => object.insert("id".into(), json!(id)),
        };
        // WhatsApp rejects captions on audio and stickers.
        if let Some(caption) =
            caption.filter(|_| matches!(kind, MediaKind::Image | MediaKind::Video | MediaKind::Document))
        {
            object.insert("caption".into(), json!(truncate_chars(caption, 1024)));
        }
        if let Some(name) = filename.filter(|_| kind == MediaKind::Document) {
            object.insert("filename".into(), json!(truncate_chars(name, 240)));
        }
        self.send_message(to, kind_name, Value::Object(object), reply_to).await
    }

    /// Sends an approved template (for outside the 24-hour window). `body_params` are
    /// `(name, value)` pairs: named parameters, or positional when every name is empty.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn send_template(
        &self,
        to: &str,
        name: &str,
        language: &str,
        body_params: &[(String, String)],
    ) -> Result<Sent, SendError> {
        let mut template = json!({"name": name, "language": {"code": language}});
        if !body_params.is_empty() {
            let parameters: Vec<Value> = body_params
                .iter()
                .map(|(key, value)| {
                    if key.is_empty() {
                        json!({"type": "text", "text": value})
                    } else {
                        json!({"type": "text", "parameter_name": key, "text": value})
                    }
                })
                .collect();
            template["components"] = json!([{"type": "body", "parameters": parameters}]);
        }
        self.send_message(to, "template", template, None).await
    }

    /// Reacts to a message with an emoji (an empty emoji removes the reaction).
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn send_reaction(&self, to: &str, message_id: &str, emoji: &str) -> Result<Sent, SendError> {
        self.send_message(to, "reaction", json!({"message_id": message_id, "emoji": emoji}), None).await
    }

    /// Sends a message of any type: `{"type": kind, kind: object}` plus recipient and context.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn send_message(
        &self,
        to: &str,
        kind: &str,
        object: Value,
        reply_to: Option<&str>,
    ) -> Result<Sent, SendError> {
        let (field, recipient) = recipient_field(to);
        if recipient.is_empty() {
            return Err(SendError::Permanent(format!(
                "recipient {to:?} is neither a phone number nor a WhatsApp user id"
            )));
        }
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "type": kind});
        body[field] = json!(recipient);
        body[kind] = object;
        if let Some(id) = reply_to.filter(|id| !id.is_empty()) {
            body["context"] = json!({"message_id": id});
        }
        let url = format!("{}/{}/messages", self.meta_base, self.phone_number_id);
        let answer = self.execute(Request::once("send"), || Ok(self.http.post(&url).json(&body))).await?;
        // Accepted without an id (an unexpected body): report success without one rather than
        // retry, which could deliver the message twice.
        let message_id = answer.pointer("/messages/0/id").and_then(Value::as_str).unwrap_or_default();
        if message_id.is_empty() {
            tracing::warn!(answer = %clip(&answer.to_string()), "Kapso accepted a message without returning its id");
        }
        Ok(Sent { message_id: message_id.to_owned() })
    }

    /// Marks a message read; with `typing`, also shows the typing indicator (≈ 25 s).
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn mark_read(&self, message_id: &str, typing: bool) -> Result<(), SendError> {
        let mut body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        let url = format!("{}/{}/messages", self.meta_base, self.phone_number_id);
        // Marking read twice is harmless.
        self.execute(Request::idempotent("mark_read"), || Ok(self.http.post(&url).json(&body))).await.map(|_| ())
    }

    /// Uploads a file and returns its media id (send it with [`MediaSource::Id`]).
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn upload_media(&self, bytes: Vec<u8>, mime_type: &str, file_name: &str) -> Result<String, SendError> {
        let url = format!("{}/{}/media", self.meta_base, self.phone_number_id);
        let answer = self
            .execute(Request::idempotent("upload"), || {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(file_name.to_owned())
                    .mime_str(mime_type)
                    .map_err(|e| SendError::Permanent(format!("invalid MIME type {mime_type:?}: {e}")))?;
                let form = reqwest::multipart::Form::new()
                    .text("messaging_product", "whatsapp")
                    .text("type", mime_type.to_owned())
                    .part("file", part);
                Ok(self.http.post(&url).multipart(form))
            })
            .await?;
        answer.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            SendError::transient(format!("upload answered without an id: {}", clip(&answer.to_string())))
        })
    }

    /// Lists messages (`GET /{phone_number_id}/messages`), one page, newest first.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn list_messages(&self, query: &ListQuery) -> Result<MessagePage, SendError> {
        let url = format!("{}/{}/messages", self.meta_base, self.phone_number_id);
        let mut params: Vec<(&str, String)> = vec![("fields", "kapso(default)".to_owned())];
        if let Some(direction) = &query.direction {
            params.push(("direction", direction.clone()));
        }
        if let Some(since) = &query.since {
            params.push(("since", since.clone()));
        }
        params.push(("limit", query.limit.unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE).to_string()));
        if let Some(after) = &query.after {
            params.push(("after", after.clone()));
        }
        let (answer, server_time) =
            self.execute_dated(Request::idempotent("list"), || Ok(self.http.get(&url).query(&params))).await?;
        let data = match answer.get("data") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(SendError::transient(format!("message list without data: {}", clip(&answer.to_string())))),
        };
        let after = answer
            .pointer("/paging/cursors/after")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(MessagePage { data, after, server_time })
    }

    /// Checks the credentials the way the Go bridge's `preflight` does (`limit=1`).
    ///
    /// # Errors
    /// A classified [`SendError`] (AuthExpired for a rejected key).
    pub async fn check_credentials(&self) -> Result<(), SendError> {
        self.list_messages(&ListQuery { limit: Some(1), ..ListQuery::default() }).await.map(|_| ())
    }

    /// Asks where media `media_id` can be downloaded (`GET /{media_id}?phone_number_id=`).
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, SendError> {
        let url = format!("{}/{}", self.meta_base, media_id);
        let params = [("phone_number_id", self.phone_number_id.clone())];
        let answer = self.execute(Request::idempotent("media_info"), || Ok(self.http.get(&url).query(&params))).await?;
        let url = answer
            .get("download_url")
            .or_else(|| answer.get("url"))
            .and_then(Value::as_str)
            .ok_or_else(|| SendError::transient("media lookup answered without a URL"))?;
        Ok(MediaInfo {
            url: url.to_owned(),
            mime_type: answer.get("mime_type").and_then(Value::as_str).map(str::to_owned),
            file_size: answer.get("file_size").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        })
    }

    /// Downloads media within the policy: https, allowed hosts (also after redirects), size cap.
    /// The API key is only sent to Kapso's own host.
    ///
    /// # Errors
    /// A [`MediaError`].
    pub async fn download_media(&self, url: &str) -> Result<Downloaded, MediaError> {
        self.downloader.download(url).await.map_err(MediaError::from)
    }

    /// Runs one call through the layers (rate limit, tracing, retry when on).
    async fn execute(
        &self,
        request: Request,
        build: impl Fn() -> Result<reqwest::RequestBuilder, SendError>,
    ) -> Result<Value, SendError> {
        self.execute_dated(request, build).await.map(|(value, _)| value)
    }

    /// [`execute`](Self::execute), also returning the server's `Date`.
    async fn execute_dated(
        &self,
        request: Request,
        build: impl Fn() -> Result<reqwest::RequestBuilder, SendError>,
    ) -> Result<(Value, Option<clawbridge_core::EpochMs>), SendError> {
        call(&self.layers, &self.api_key, request, build).await
    }
}

/// One call of any Kapso API (the Meta proxy, the Platform API) through `layers`.
async fn call(
    layers: &Layers,
    api_key: &SecretString,
    request: Request,
    build: impl Fn() -> Result<reqwest::RequestBuilder, SendError>,
) -> Result<(Value, Option<clawbridge_core::EpochMs>), SendError> {
    let idempotent = request.idempotent;
    layers.call(request, || attempt(layers, api_key, &build)).await.map_err(|failure| {
        // A send that may have reached Kapso is not sent again by anyone (the outbox neither).
        if failure.maybe_delivered && !idempotent && failure.error.class().is_retryable() {
            SendError::MaybeDelivered(failure.error.to_string())
        } else {
            failure.error
        }
    })
}

/// The thin request function: one request with the API key, its answer classified.
async fn attempt(
    layers: &Layers,
    api_key: &SecretString,
    build: &impl Fn() -> Result<reqwest::RequestBuilder, SendError>,
) -> Result<(Value, Option<clawbridge_core::EpochMs>), Failure> {
    let request = build().map_err(Failure::answered)?.header("X-API-Key", api_key.expose_secret());
    let response = request.send().await.map_err(Failure::network)?;
    let status = response.status().as_u16();
    let server_time = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::timefmt::parse_http_date);
    let retry_after = clawbridge_http::retry_after(response.headers(), layers.clock());
    let text = match response.text().await {
        Ok(text) => text,
        // Kapso said success and the body got lost on the way: still a success (sending again
        // would deliver twice), only without the message id.
        Err(e) if (200..300).contains(&status) => {
            tracing::warn!(error = %describe_error(e), status, "Kapso answered success; its body could not be read");
            String::new()
        }
        // The status alone classifies an error answer.
        Err(_) => String::new(),
    };
    if (200..300).contains(&status) {
        // A success is a success even with an odd body: retrying a send could deliver it twice.
        // (Sends answer 200 or 201; the Platform API may answer 204 to a change.)
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(clip(&text)))
        };
        return Ok((value, server_time));
    }
    let error = classify(status, retry_after, &text);
    if matches!(error, SendError::RateLimited { .. }) {
        metrics::counter!("clawbridge_whatsapp_rate_limited_total", "source" => "kapso").increment(1);
    }
    Err(Failure::answered(error))
}

/// The WhatsApp type name of a media kind.
pub fn media_kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

/// Classifies a non-2xx answer of the Kapso/Meta API (reference §2).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let message = match error {
        Some(Value::String(s)) => s.clone(),
        Some(e) => {
            let main = e.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
            let details = e.pointer("/error_data/details").and_then(Value::as_str).unwrap_or("");
            if details.is_empty() || main.contains(details) { main } else { format!("{main}: {details}") }
        }
        None => clip(body),
    };
    let reason = match code {
        Some(code) => format!("Kapso HTTP {status}, error {code}: {message}"),
        None => format!("Kapso HTTP {status}: {message}"),
    };
    if let Some(code) = code {
        if PERMANENT_CODES.contains(&code) {
            let hint = if code == 131_047 { " (outside the 24-hour window: send a template instead)" } else { "" };
            return SendError::Permanent(format!("{reason}{hint}"));
        }
        if THROTTLE_CODES.contains(&code) {
            return SendError::RateLimited { retry_after };
        }
    }
    match status {
        429 => SendError::RateLimited { retry_after },
        // Kapso: "Another message in-flight for this conversation. Retry shortly."
        409 => SendError::Transient { reason, retry_after: retry_after.or(Some(Duration::from_secs(1))) },
        401 | 403 => SendError::AuthExpired,
        _ if code.is_some_and(|c| AUTH_CODES.contains(&c)) && status == 400 => SendError::AuthExpired,
        408 | 425 => SendError::Transient { reason, retry_after },
        500..=599 => SendError::Transient { reason, retry_after },
        _ => SendError::Permanent(reason),
    }
}

fn clip(text: &str) -> String {
    truncate_chars(text.trim(), 300)
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_can_be_shared_between_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<KapsoClient>();
        assert_send_sync::<std::sync::Arc<RateLimiter>>();
    }

    #[test]
    fn permanent_meta_codes_are_not_retried() {
        let body = r#"{"error":{"message":"Re-engagement message","type":"OAuthException","code":131047,"error_data":{"details":"More than 24 hours have passed"},"fbtrace_id":"x"}}"#;
        match classify(400, None, body) {
            SendError::Permanent(reason) => {
                assert!(
                    reason.contains("131047") && reason.contains("24 hours") && reason.contains("template"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        for code in [131_049, 131_050, 368, 1026] {
            let body = format!(r#"{{"error":{{"message":"m","code":{code}}}}}"#);
            assert!(matches!(classify(400, None, &body), SendError::Permanent(_)), "{code}");
        }
        assert!(
            matches!(classify(400, None, r#"{"error":"invalid to"}"#), SendError::Permanent(r) if r.contains("invalid to"))
        );
    }

    #[test]
    fn throttling_in_flight_and_server_errors_are_retried() {
        assert_eq!(
            classify(429, Some(Duration::from_secs(60)), "{}"),
            SendError::RateLimited { retry_after: Some(Duration::from_secs(60)) }
        );
        assert!(matches!(
            classify(400, None, r#"{"error":{"message":"m","code":131056}}"#),
            SendError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(409, None, r#"{"error":"Another message in-flight for this conversation. Retry shortly."}"#),
            SendError::Transient { retry_after: Some(_), .. }
        ));
        assert!(matches!(classify(502, None, "bad gateway"), SendError::Transient { .. }));
        assert_eq!(classify(401, None, r#"{"error":"Invalid API key"}"#), SendError::AuthExpired);
        assert_eq!(classify(400, None, r#"{"error":{"message":"token","code":190}}"#), SendError::AuthExpired);
    }

    #[test]
    fn recipients_are_phone_digits_or_bsuids() {
        assert_eq!(recipient_field("+1 (555) 123-4567"), ("to", "15551234567".to_owned()));
        assert_eq!(recipient_field("US.13491208655302741918"), ("recipient", "US.13491208655302741918".to_owned()));
        assert!(is_bsuid("BR.ENT.abc123"));
        assert!(!is_bsuid("us.123") && !is_bsuid("USA.1") && !is_bsuid("US.") && !is_bsuid("15551234567"));
    }

    #[test]
    fn media_policy_is_https_and_allow_listed() {
        let policy =
            MediaPolicy { hosts: vec!["kapso.ai".into(), "fbcdn.net".into(), "127.0.0.1".into()], max_bytes: 10 };
        let ok = |u: &str| policy.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://api.kapso.ai/media_download?token=x"));
        assert!(ok("https://scontent.xx.fbcdn.net/v/t.jpg"));
        assert!(!ok("http://api.kapso.ai/x"));
        assert!(!ok("https://evilkapso.ai/x"));
        assert!(!ok("https://kapso.ai.evil.com/x"));
        assert!(!ok("https://169.254.169.254/latest"));
        assert!(ok("http://127.0.0.1:8080/m"));
        assert!(!ok("file:///etc/passwd"));
        assert_eq!(
            redact_url("https://api.kapso.ai/media_download?token=secret"),
            "https://api.kapso.ai/media_download"
        );
    }

    /// A local Kapso answering the scripted statuses in order (then a sent message), and a
    /// `/slow` number whose sends never answer in time.
    async fn scripted_kapso(script: Vec<(u16, Value)>) -> (String, Arc<std::sync::atomic::AtomicU32>) {
        use axum::routing::post;
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(script)));
        let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (counter, slow_counter) = (hits.clone(), hits.clone());
        let app = axum::Router::new()
            .route(
                "/v24.0/PNID/messages",
                post(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let next = script.lock().unwrap().pop_front();
                    async move {
                        let (status, body) = next.unwrap_or((200, json!({"messages": [{"id": "wamid.ok"}]})));
                        (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body))
                    }
                }),
            )
            .route(
                "/v24.0/SLOW/messages",
                post(move || {
                    slow_counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        "late"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v24.0", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, hits)
    }

    fn retrying_client(base: &str, phone_number_id: &str, timeout: Duration) -> KapsoClient {
        let policy = RetryPolicy { max_attempts: 3, initial_delay_ms: 1, max_delay_ms: 5, ..RetryPolicy::IN_PROCESS };
        let media = MediaPolicy { hosts: vec![], max_bytes: 1 };
        KapsoClient::with_parts(
            base,
            phone_number_id,
            "k".to_owned().into(),
            Arc::new(RateLimiter::new(1000)),
            media,
            timeout,
        )
        .unwrap()
        .with_retry(policy)
    }

    /// Moved from the CLI's `with_retries`: the client's retry layer does what it did.
    #[tokio::test]
    async fn with_retry_repeats_only_what_may_pass() {
        let in_flight = json!({"error": "Another message in-flight for this conversation. Retry shortly."});
        let (base, hits) = scripted_kapso(vec![(409, in_flight)]).await;
        let client = retrying_client(&base, "PNID", Duration::from_secs(5));
        assert_eq!(client.send_text("1555", "a", None).await.unwrap().message_id, "wamid.ok");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2, "409 in flight, then sent");

        let (base, hits) =
            scripted_kapso(vec![(400, json!({"error": {"message": "Re-engagement", "code": 131_047}}))]).await;
        let client = retrying_client(&base, "PNID", Duration::from_secs(5));
        assert!(matches!(client.send_text("1555", "b", None).await, Err(SendError::Permanent(_))));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (base, hits) = scripted_kapso(vec![]).await;
        let client = retrying_client(&base, "SLOW", Duration::from_millis(200));
        // A timed-out send may have gone out: not repeated here, and marked so that the outbox
        // does not repeat it either (it used to come back as a transient error, retried later).
        match client.send_text("1555", "c", None).await {
            Err(SendError::MaybeDelivered(reason)) => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "a timed-out send may have gone out");
        // A read may be repeated: marking read after a timeout is still transient.
        let (base, _) = scripted_kapso(vec![]).await;
        let client = retrying_client(&base, "SLOW", Duration::from_millis(200));
        assert!(matches!(client.mark_read("wamid.x", false).await, Err(SendError::Transient { .. })));
    }
}
