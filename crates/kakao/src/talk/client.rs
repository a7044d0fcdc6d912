//! The Talk Message API client (reference/kakao.md §2–3).
//!
//! Every POST is `application/x-www-form-urlencoded` with structured values as JSON strings
//! (`template_object`, `template_args`, `receiver_uuids`). Every call has a timeout. Failures
//! are classified by Kakao's `code` ([`classify`]): transient ones are retried with backoff by
//! clawbridge-http's retry layer (the [`RetryPolicy`] of `[retry.http]`), `-401` comes back from it
//! as auth-expired and refreshes the token once (single-flight, [`TokenManager`]) before one more
//! round, quota errors are reported with the quota and not retried, the rest are permanent. Sends
//! are retried only when Kakao cannot have delivered them (an error answer or a refused
//! connection), never after a timeout, so a retry cannot duplicate a message.

use super::config::LoginConfig;
use super::error::{ApiErrorBody, ErrorClass, QuotaKind, TalkError, classify, code_meaning};
use super::media::{check_image, extension_for};
use super::models::{
    AccessTokenInfo, ChannelRelations, FailureInfo, Friend, FriendOrder, FriendOrderDirection, FriendUuid, FriendsPage,
    FriendsQuery, FriendsSendResponse, ImageInfo, ImageUploadResult, TalkProfile, UserMe,
};
use super::oauth::{FORM_CONTENT_TYPE, OAuthClient};
use super::quota::{QuotaGuard, QuotaLimits, Reservation};
use super::template::{CustomTemplate, Template};
use super::token::{TalkState, TokenManager, TokenStore, now_ms};
use clawbridge_core::EpochMs;
use clawbridge_core::retry::RetryClass;
use clawbridge_http::{Classify, Layers, Request, Throttled};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The retry schedule of kapi calls: core's one policy (default [`RetryPolicy::IN_PROCESS`]).
pub use clawbridge_core::retry::RetryPolicy;

/// Most receivers of one friends call.
pub const MAX_RECEIVERS_PER_CALL: usize = 5;
/// How long the friends list is cached.
pub const FRIENDS_CACHE_TTL: Duration = Duration::from_secs(30 * 60);
const FRIENDS_NAMESPACE: &str = "kakao.friends";
/// Kakao's largest friends page.
const FRIENDS_PAGE_LIMIT: u32 = 100;

/// What a message says: a default template, a console template, or a scraped web page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageContent {
    /// `template_object`.
    Default(Box<Template>),
    /// `template_id` + `template_args`.
    Custom(CustomTemplate),
    /// `request_url` (+ optional template): Kakao builds the card from the page.
    Scrap {
        /// The page (its domain must be registered in the app).
        request_url: String,
        /// A console template to render it with.
        template: Option<CustomTemplate>,
    },
}

impl MessageContent {
    /// The form fields, after validation (nothing is sent when this fails).
    ///
    /// # Errors
    /// [`TalkError::Template`] or [`TalkError::Invalid`].
    pub fn form_fields(&self) -> Result<Vec<(&'static str, String)>, TalkError> {
        let mut fields = Vec::new();
        match self {
            Self::Default(template) => fields.push(("template_object", template.to_form_value()?)),
            Self::Custom(custom) => push_custom(&mut fields, custom),
            Self::Scrap { request_url, template } => {
                match reqwest::Url::parse(request_url) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                    _ => return Err(TalkError::Invalid(format!("--scrap {request_url:?} is not an http(s) URL"))),
                }
                fields.push(("request_url", request_url.clone()));
                if let Some(custom) = template {
                    push_custom(&mut fields, custom);
                }
            }
        }
        Ok(fields)
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Default(_) => "default",
            Self::Custom(_) => "custom",
            Self::Scrap { .. } => "scrap",
        }
    }
}

impl From<Template> for MessageContent {
    fn from(template: Template) -> Self {
        Self::Default(Box::new(template))
    }
}

fn push_custom(fields: &mut Vec<(&'static str, String)>, custom: &CustomTemplate) {
    fields.push(("template_id", custom.template_id.to_string()));
    if let Some(args) = custom.args_form_value() {
        fields.push(("template_args", args));
    }
}

/// One receiver that did not get the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiverFailure {
    /// The receiver.
    pub uuid: FriendUuid,
    /// Kakao's code (`None` when refused locally or the call failed without one).
    pub code: Option<i64>,
    /// Why, in words.
    pub reason: String,
    /// Refused by the local quota guard before any call.
    pub local: bool,
}

/// The outcome of a friends send, per receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SendReport {
    /// Receivers Kakao delivered to (`successful_receiver_uuids`).
    pub sent: Vec<FriendUuid>,
    /// The others (`failure_info`, local refusals, failed calls).
    pub failed: Vec<ReceiverFailure>,
}

/// The cached friends list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FriendsList {
    /// When it was fetched from Kakao.
    pub fetched_at: EpochMs,
    /// Kakao's `total_count`.
    pub total_count: u64,
    /// Kakao's `favorite_count`.
    pub favorite_count: u64,
    /// All friends, in Kakao's order.
    pub friends: Vec<Friend>,
    /// Served from the cache (not fetched now).
    #[serde(skip)]
    pub cached: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Bearer,
    AppKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// One kapi request, rebuilt for each attempt.
struct Call<'a> {
    method: Method,
    /// Also the `request` label of the platform metrics: written in the code, never built.
    path: &'static str,
    query: Vec<(&'a str, String)>,
    form: Vec<(&'a str, String)>,
    image: Option<(&'a [u8], &'static str)>,
    auth: Auth,
    /// Safe to repeat after a timeout (reads); sends are not.
    idempotent: bool,
}

impl<'a> Call<'a> {
    fn get(path: &'static str) -> Self {
        Self {
            method: Method::Get,
            path,
            query: vec![],
            form: vec![],
            image: None,
            auth: Auth::Bearer,
            idempotent: true,
        }
    }
    fn post(path: &'static str) -> Self {
        Self {
            method: Method::Post,
            path,
            query: vec![],
            form: vec![],
            image: None,
            auth: Auth::Bearer,
            idempotent: false,
        }
    }
}

/// A failed attempt, classified.
#[derive(Debug)]
struct Failure {
    class: ErrorClass,
    status: u16,
    body: Option<ApiErrorBody>,
    reason: String,
    /// The request may have reached Kakao (timeout, broken response).
    maybe_delivered: bool,
    /// Kakao's (or a proxy's) `Retry-After`.
    retry_after: Option<Duration>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Classify for Failure {
    fn retry_class(&self) -> RetryClass {
        self.class.retry_class()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn maybe_delivered(&self) -> bool {
        self.maybe_delivered
    }
}

/// kapi calls have no rate-limit layer (Kakao's limits are daily quotas, kept by [`QuotaGuard`]);
/// the conversion exists for the layers' contract.
impl From<Throttled> for Failure {
    fn from(throttled: Throttled) -> Self {
        Self {
            class: ErrorClass::Transient,
            status: 0,
            body: None,
            reason: format!("waited {} ms for a request slot", throttled.waited.as_millis()),
            maybe_delivered: false,
            retry_after: None,
        }
    }
}

/// The Talk Message API client of one account.
pub struct TalkClient {
    http: reqwest::Client,
    api_base_url: String,
    tokens: Arc<TokenManager>,
    quota: Arc<QuotaGuard>,
    state: Arc<dyn TalkState>,
    /// The REST API key: the quota ledger is per app.
    app_key_id: String,
    app_key: Option<SecretString>,
    layers: Layers,
    media_max_bytes: u64,
}

impl fmt::Debug for TalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TalkClient")
            .field("api_base_url", &self.api_base_url)
            .field("account", &self.tokens.account())
            .finish_non_exhaustive()
    }
}

/// The HTTP client used for kauth and kapi: bounded connect and total time.
///
/// # Errors
/// When TLS cannot be initialised.
pub fn http_client() -> Result<reqwest::Client, TalkError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("clawbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TalkError::Invalid(format!("cannot build the HTTP client: {e}")))
}

impl TalkClient {
    /// The client of `account` from the settings, with tokens in `tokens` and the quota ledger,
    /// friends cache and locks in `state`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn from_config(
        config: &LoginConfig,
        account: &str,
        tokens: Arc<dyn TokenStore>,
        state: Arc<dyn TalkState>,
    ) -> Result<Self, TalkError> {
        let http = http_client()?;
        let oauth =
            OAuthClient::new(http.clone(), &config.auth_base_url, &config.rest_api_key, config.client_secret.clone());
        let manager = Arc::new(TokenManager::new(account, oauth, tokens, state.clone()));
        Ok(Self {
            http,
            api_base_url: config.api_base_url.trim_end_matches('/').to_owned(),
            tokens: manager,
            quota: Arc::new(QuotaGuard::new(state.clone(), QuotaLimits::default(), &config.rest_api_key)),
            app_key_id: config.rest_api_key.clone(),
            state,
            app_key: config.app_key.clone(),
            layers: Layers::new("kakao").with_retry(RetryPolicy::IN_PROCESS).with_trace(),
            media_max_bytes: config.media_max_bytes,
        })
    }

    /// Replaces the retry schedule (tests use short delays).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.layers = self.layers.with_retry(retry);
        self
    }

    /// Replaces the quota limits (tests use small numbers).
    #[must_use]
    pub fn with_quota_limits(mut self, limits: QuotaLimits) -> Self {
        self.quota = Arc::new(QuotaGuard::new(self.state.clone(), limits, &self.app_key_id));
        self
    }

    /// The token manager (login, logout, `kakao token`).
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// The quota guard.
    pub fn quota(&self) -> &Arc<QuotaGuard> {
        &self.quota
    }

    /// `GET /v2/user/me`.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn me(&self) -> Result<UserMe, TalkError> {
        let mut call = Call::get("/v2/user/me");
        call.query.push(("secure_resource", "true".to_owned()));
        self.call(&call).await
    }

    /// `GET /v1/user/access_token_info`.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn token_info(&self) -> Result<AccessTokenInfo, TalkError> {
        self.call(&Call::get("/v1/user/access_token_info")).await
    }

    /// `GET /v1/api/talk/profile`.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn talk_profile(&self) -> Result<TalkProfile, TalkError> {
        let mut call = Call::get("/v1/api/talk/profile");
        call.query.push(("secure_resource", "true".to_owned()));
        self.call(&call).await
    }

    /// `GET /v2/api/talk/channels`: whether the user added these KakaoTalk Channels.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn channel_relations(&self, channel_public_ids: &[String]) -> Result<ChannelRelations, TalkError> {
        let mut call = Call::get("/v2/api/talk/channels");
        call.query.push(("channel_ids", channel_public_ids.join(",")));
        call.query.push(("channel_id_type", "channel_public_id".to_owned()));
        self.call(&call).await
    }

    /// `POST /v1/user/logout`: ends the login at Kakao.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn logout(&self) -> Result<i64, TalkError> {
        let id: serde_json::Value = self.call(&Call::post("/v1/user/logout")).await?;
        Ok(id.get("id").and_then(serde_json::Value::as_i64).unwrap_or_default())
    }

    /// `POST /v1/user/unlink`: disconnects the user from the app (consents are withdrawn).
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn unlink(&self) -> Result<i64, TalkError> {
        let id: serde_json::Value = self.call(&Call::post("/v1/user/unlink")).await?;
        Ok(id.get("id").and_then(serde_json::Value::as_i64).unwrap_or_default())
    }

    /// One page of `GET /v1/api/talk/friends`.
    ///
    /// # Errors
    /// Classified [`TalkError`]s (`-402` names `friends` when not consented).
    pub async fn friends_page(&self, query: &FriendsQuery) -> Result<FriendsPage, TalkError> {
        let mut call = Call::get("/v1/api/talk/friends");
        call.query.push(("offset", query.offset.to_string()));
        call.query.push(("limit", query.limit.to_string()));
        call.query.push(("order", query.order.as_str().to_owned()));
        call.query.push(("friend_order", query.friend_order.as_str().to_owned()));
        call.query.push(("secure_resource", "true".to_owned()));
        self.call(&call).await
    }

    /// All friends (favourites first, then by nickname), from the 30-minute cache unless
    /// `refresh` or the cache is stale.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn friends(&self, refresh: bool) -> Result<FriendsList, TalkError> {
        self.friends_ordered(refresh, FriendOrderDirection::Asc, FriendOrder::Favorite).await
    }

    /// All friends in the given order, fetched page by page (100 per call) and cached 30 minutes
    /// per account and order.
    ///
    /// # Errors
    /// Classified [`TalkError`]s.
    pub async fn friends_ordered(
        &self,
        refresh: bool,
        order: FriendOrderDirection,
        friend_order: FriendOrder,
    ) -> Result<FriendsList, TalkError> {
        let key = format!("{}/{}/{}", self.tokens.account(), friend_order.as_str(), order.as_str());
        if !refresh
            && let Some(json) = self.state.get(FRIENDS_NAMESPACE, &key).await?
            && let Ok(mut list) = serde_json::from_str::<FriendsList>(&json)
        {
            list.cached = true;
            return Ok(list);
        }
        let mut query = FriendsQuery { offset: 0, limit: FRIENDS_PAGE_LIMIT, order, friend_order };
        let mut list = FriendsList { fetched_at: now_ms(), ..FriendsList::default() };
        loop {
            let page = self.friends_page(&query).await?;
            let count = page.elements.len();
            list.total_count = page.total_count;
            list.favorite_count = page.favorite_count;
            list.friends.extend(page.elements);
            query.offset += u32::try_from(count).unwrap_or(u32::MAX);
            if count == 0 || page.after_url.is_none() || list.friends.len() as u64 >= page.total_count {
                break;
            }
        }
        let json = serde_json::to_string(&list).map_err(|e| TalkError::Storage(e.to_string()))?;
        self.state.put(FRIENDS_NAMESPACE, &key, &json, Some(FRIENDS_CACHE_TTL)).await?;
        Ok(list)
    }

    /// Drops the cached friends list (after logout).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn clear_cache(&self) -> Result<(), TalkError> {
        for friend_order in [FriendOrder::Favorite, FriendOrder::Nickname] {
            for order in [FriendOrderDirection::Asc, FriendOrderDirection::Desc] {
                let key = format!("{}/{}/{}", self.tokens.account(), friend_order.as_str(), order.as_str());
                self.state.put(FRIENDS_NAMESPACE, &key, "", Some(Duration::ZERO)).await?;
            }
        }
        Ok(())
    }

    /// Sends to the logged-in user's own "chat with me" (memo).
    ///
    /// # Errors
    /// [`TalkError::Template`] before any call; quota (local or Kakao's) and other classified errors.
    pub async fn send_memo(&self, content: &MessageContent) -> Result<(), TalkError> {
        let form = content.form_fields()?;
        let path = match content {
            MessageContent::Default(_) => "/v2/api/talk/memo/default/send",
            MessageContent::Custom(_) => "/v2/api/talk/memo/send",
            MessageContent::Scrap { .. } => "/v2/api/talk/memo/scrap/send",
        };
        let sender = self.sender_id().await?;
        let reservation = self.quota.reserve_memo(&sender).await?;
        let mut call = Call::post(path);
        call.form = form;
        let result: Result<serde_json::Value, TalkError> = self.call(&call).await;
        match result {
            Ok(_) => {
                tracing::info!(account = %self.tokens.account(), kind = content.kind(), "sent a Kakao memo");
                Ok(())
            }
            Err(e) => {
                self.after_failed_call(&e, &reservation, &sender, &[]).await;
                Err(e)
            }
        }
    }

    /// Sends to friends (`uuid`s from [`friends`](Self::friends)), at most five per call, and
    /// reports the outcome per receiver. Duplicates are sent once.
    ///
    /// # Errors
    /// Before any delivery: an invalid template, no receivers, or a login/consent problem.
    /// Once some receivers got the message, later failures are reported per receiver instead.
    pub async fn send_to_friends(
        &self,
        receivers: &[FriendUuid],
        content: &MessageContent,
    ) -> Result<SendReport, TalkError> {
        let form = content.form_fields()?;
        let mut unique: Vec<FriendUuid> = Vec::new();
        for r in receivers.iter().map(|r| r.as_str().trim()).filter(|r| !r.is_empty()) {
            if !unique.iter().any(|u| u.as_str() == r) {
                unique.push(FriendUuid::from(r));
            }
        }
        if unique.is_empty() {
            return Err(TalkError::Invalid(
                "no receivers: give friend UUIDs (see `clawbridge kakao friends`)".to_owned(),
            ));
        }
        let path = match content {
            MessageContent::Default(_) => "/v1/api/talk/friends/message/default/send",
            MessageContent::Custom(_) => "/v1/api/talk/friends/message/send",
            MessageContent::Scrap { .. } => "/v1/api/talk/friends/message/scrap/send",
        };
        let sender = self.sender_id().await?;
        let mut report = SendReport::default();
        let mut chunks = unique.chunks(MAX_RECEIVERS_PER_CALL);
        while let Some(chunk) = chunks.next() {
            let reservation = self.quota.reserve_friends(&sender, chunk).await?;
            for (uuid, quota) in &reservation.refused {
                report.failed.push(ReceiverFailure {
                    uuid: uuid.clone(),
                    code: None,
                    reason: self.quota.local_error(*quota).to_string(),
                    local: true,
                });
            }
            if reservation.granted.is_empty() {
                continue;
            }
            let receiver_json = serde_json::to_string(&reservation.granted).unwrap_or_default();
            let mut call = Call::post(path);
            call.form = form.clone();
            call.form.insert(0, ("receiver_uuids", receiver_json));
            let result: Result<FriendsSendResponse, TalkError> = self.call(&call).await;
            match result {
                Ok(response) => self.record_partial(&reservation, &sender, response, &mut report).await,
                Err(e) => {
                    self.after_failed_call(&e, &reservation, &sender, &reservation.granted).await;
                    let fatal = matches!(
                        e,
                        TalkError::LoginRequired { .. }
                            | TalkError::NotLoggedIn { .. }
                            | TalkError::ConsentRequired { .. }
                    );
                    if fatal && report.sent.is_empty() {
                        return Err(e);
                    }
                    let code = match &e {
                        TalkError::Api { code, .. } => Some(*code),
                        TalkError::Quota { code, .. } => *code,
                        _ => None,
                    };
                    let reason = e.to_string();
                    for uuid in &reservation.granted {
                        report.failed.push(ReceiverFailure {
                            uuid: uuid.clone(),
                            code,
                            reason: reason.clone(),
                            local: false,
                        });
                    }
                    if fatal {
                        for rest in chunks.by_ref() {
                            for uuid in rest {
                                report.failed.push(ReceiverFailure {
                                    uuid: uuid.clone(),
                                    code: None,
                                    reason: reason.clone(),
                                    local: true,
                                });
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(
            account = %self.tokens.account(),
            sent = report.sent.len(),
            failed = report.failed.len(),
            kind = content.kind(),
            "sent a Kakao friends message"
        );
        Ok(report)
    }

    /// Uploads an image for templates and returns where Kakao serves it.
    ///
    /// # Errors
    /// [`TalkError::Invalid`] (too large, not JPEG/PNG/GIF) before any call; classified errors.
    pub async fn upload_image(&self, bytes: &[u8]) -> Result<ImageInfo, TalkError> {
        let content_type = check_image(bytes, self.media_max_bytes)?;
        let mut call = Call::post("/v2/api/talk/message/image/upload");
        call.image = Some((bytes, content_type));
        if self.app_key.is_some() {
            call.auth = Auth::AppKey;
        }
        // An upload has no side effect beyond storage: safe to repeat.
        call.idempotent = true;
        let result: ImageUploadResult = self.call(&call).await?;
        Ok(result.infos.original)
    }

    /// Has Kakao fetch an image from the web for templates (`/v2/api/talk/message/image/scrap`).
    ///
    /// # Errors
    /// [`TalkError::Invalid`] for a non-http(s) URL; classified errors.
    pub async fn scrap_image(&self, image_url: &str) -> Result<ImageInfo, TalkError> {
        match reqwest::Url::parse(image_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(TalkError::Invalid(format!("{image_url:?} is not an http(s) image URL"))),
        }
        let mut call = Call::post("/v2/api/talk/message/image/scrap");
        call.form = vec![("image_url", image_url.to_owned())];
        if self.app_key.is_some() {
            call.auth = Auth::AppKey;
        }
        call.idempotent = true;
        let result: ImageUploadResult = self.call(&call).await?;
        Ok(result.infos.original)
    }

    async fn record_partial(
        &self,
        reservation: &Reservation,
        sender: &str,
        response: FriendsSendResponse,
        report: &mut SendReport,
    ) {
        let mut undelivered = Vec::new();
        let mut exhausted = Vec::new();
        for FailureInfo { code, msg, receiver_uuids } in &response.failure_info {
            if let Some(quota) = QuotaKind::from_code(*code) {
                exhausted.push((quota, receiver_uuids.clone()));
            }
            let reason = match QuotaKind::from_code(*code) {
                Some(quota) => format!("{quota} exceeded (code {code}: {msg})"),
                None => format!("{} (code {code}: {msg})", code_meaning(*code)),
            };
            for uuid in receiver_uuids {
                undelivered.push(uuid.clone());
                report.failed.push(ReceiverFailure {
                    uuid: uuid.clone(),
                    code: Some(*code),
                    reason: reason.clone(),
                    local: false,
                });
            }
        }
        for uuid in &reservation.granted {
            if response.successful_receiver_uuids.contains(uuid) {
                report.sent.push(uuid.clone());
            } else if !undelivered.contains(uuid) {
                undelivered.push(uuid.clone());
                report.failed.push(ReceiverFailure {
                    uuid: uuid.clone(),
                    code: None,
                    reason: "Kakao did not report this receiver as delivered".to_owned(),
                    local: false,
                });
            }
        }
        // Give back first, then mark what Kakao reported as used up, so the mark stays.
        if let Err(e) = self.quota.release(reservation, &undelivered).await {
            tracing::warn!(error = %e, "could not update the Kakao quota ledger");
        }
        for (quota, receivers) in exhausted {
            if let Err(e) = self.quota.mark_exhausted(quota, sender, &receivers).await {
                tracing::warn!(error = %e, "could not record a Kakao quota error in the ledger");
            }
        }
    }

    /// Bookkeeping after a send call failed: a quota error marks the quota used up; a failure
    /// that cannot have delivered gives the reservation back.
    async fn after_failed_call(
        &self,
        error: &TalkError,
        reservation: &Reservation,
        sender: &str,
        receivers: &[FriendUuid],
    ) {
        // After a timeout the message may have gone out: keep it counted.
        if !matches!(error, TalkError::Unavailable { .. })
            && let Err(e) = self.quota.release(reservation, &reservation.granted).await
        {
            tracing::warn!(error = %e, "could not update the Kakao quota ledger");
        }
        if let TalkError::Quota { quota, local: false, .. } = error
            && let Err(e) = self.quota.mark_exhausted(*quota, sender, receivers).await
        {
            tracing::warn!(error = %e, "could not record a Kakao quota error in the ledger");
        }
    }

    /// The sender in the quota ledger: the Kakao user id saved at login, else the account name.
    async fn sender_id(&self) -> Result<String, TalkError> {
        let token = self.tokens.stored().await?;
        Ok(token.user_id.map_or_else(|| format!("account:{}", self.tokens.account()), |id| id.to_string()))
    }

    async fn call<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, TalkError> {
        let mut token = match call.auth {
            Auth::Bearer => Some(self.tokens.access_token().await?),
            Auth::AppKey => None,
        };
        let mut refreshed = false;
        // Attempts across both rounds (before and after a refresh), the refused one not counted.
        let attempts = AtomicU32::new(0);
        let request = Request { name: call.path, idempotent: call.idempotent };
        loop {
            let sent = self
                .layers
                .call(request, || {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    self.attempt(call, token.as_ref())
                })
                .await;
            let failure = match sent {
                Ok(body) => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| TalkError::Decode { context: call.path.to_owned(), detail: e.to_string() });
                }
                Err(failure) => failure,
            };
            match failure.class {
                ErrorClass::Unauthorized if !refreshed && call.auth == Auth::Bearer => {
                    let rejected = token.take().unwrap_or_else(|| SecretString::from(String::new()));
                    token = Some(self.tokens.refresh_after_rejection(&rejected).await?);
                    refreshed = true;
                    attempts.fetch_sub(1, Ordering::Relaxed);
                }
                ErrorClass::Unauthorized if call.auth == Auth::AppKey => {
                    return Err(TalkError::Invalid(format!(
                        "Kakao refused KAKAO_APP_KEY ({}): check the key, or unset it to upload with the login token",
                        failure.reason
                    )));
                }
                ErrorClass::Unauthorized => {
                    return Err(TalkError::LoginRequired {
                        account: self.tokens.account().to_owned(),
                        reason: format!("the access token was refused after a refresh: {}", failure.reason),
                    });
                }
                ErrorClass::Transient => {
                    let reason = if failure.maybe_delivered && !call.idempotent {
                        format!("{}; the message may or may not have been delivered", failure.reason)
                    } else {
                        failure.reason
                    };
                    return Err(TalkError::Unavailable { reason, attempts: attempts.load(Ordering::Relaxed) });
                }
                ErrorClass::ConsentRequired => {
                    let body = failure.body.unwrap_or_default();
                    return Err(TalkError::ConsentRequired { required_scopes: body.required_scopes, msg: body.msg });
                }
                ErrorClass::Quota => {
                    let body = failure.body.unwrap_or_default();
                    return Err(TalkError::Quota {
                        quota: QuotaKind::from_code(body.code).unwrap_or(QuotaKind::Other(body.code)),
                        code: Some(body.code),
                        msg: body.msg,
                        local: false,
                    });
                }
                ErrorClass::Permanent => {
                    let (code, msg) = failure.body.map_or((0, failure.reason), |b| (b.code, b.msg));
                    return Err(TalkError::Api { status: failure.status, code, msg });
                }
            }
        }
    }

    async fn attempt(&self, call: &Call<'_>, token: Option<&SecretString>) -> Result<axum::body::Bytes, Failure> {
        let url = format!("{}{}", self.api_base_url, call.path);
        let mut request = match call.method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        request = match (call.auth, token, &self.app_key) {
            (Auth::Bearer, Some(token), _) => request.bearer_auth(token.expose_secret()),
            (Auth::AppKey, _, Some(key)) => {
                request.header(reqwest::header::AUTHORIZATION, format!("KakaoAK {}", key.expose_secret()))
            }
            _ => request,
        };
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some((bytes, content_type)) = call.image {
            let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                .file_name(format!("image.{}", extension_for(content_type)))
                .mime_str(content_type)
                .map_err(|e| Failure {
                    class: ErrorClass::Permanent,
                    status: 0,
                    body: None,
                    reason: e.to_string(),
                    maybe_delivered: false,
                    retry_after: None,
                })?;
            let form = reqwest::multipart::Form::new().part("file", part).text("secure_resource", "true");
            request = request.multipart(form);
        } else if call.method == Method::Post {
            request = request.header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE).form(&call.form);
        }
        let response = request.send().await.map_err(|e| {
            let maybe_delivered = !e.is_connect();
            Failure {
                class: ErrorClass::Transient,
                status: 0,
                body: None,
                reason: format!("network error: {}", e.without_url()),
                maybe_delivered,
                retry_after: None,
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = clawbridge_http::retry_after(response.headers(), self.layers.clock());
        let body = response.bytes().await.map_err(|e| Failure {
            class: ErrorClass::Transient,
            status,
            body: None,
            reason: format!("reading the response: {}", e.without_url()),
            maybe_delivered: true,
            retry_after: None,
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let parsed = serde_json::from_slice::<ApiErrorBody>(&body).ok();
        let class = classify(status, parsed.as_ref().map(|b| b.code));
        let reason = match &parsed {
            Some(b) => format!("HTTP {status}, code {}: {}", b.code, b.msg),
            None => format!("HTTP {status}"),
        };
        // A Kakao error answer means the message did not go out; a bare 5xx from a proxy may not.
        let maybe_delivered = parsed.is_none() && status >= 500 && status != 502 && status != 503;
        Err(Failure { class, status, body: parsed, reason, maybe_delivered, retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talk::template::Link;

    #[test]
    fn form_fields_are_json_strings() {
        let content = MessageContent::from(Template::text("hi", Link::web("https://e.com")));
        let fields = content.form_fields().unwrap();
        assert_eq!(fields[0].0, "template_object");
        let v: serde_json::Value = serde_json::from_str(&fields[0].1).unwrap();
        assert_eq!(v["object_type"], "text");
        let custom = MessageContent::Custom(CustomTemplate::with_args(7, ["a=1"]).unwrap());
        assert_eq!(
            custom.form_fields().unwrap(),
            [("template_id", "7".to_owned()), ("template_args", r#"{"a":"1"}"#.to_owned())]
        );
        let scrap = MessageContent::Scrap { request_url: "https://e.com/p".into(), template: None };
        assert_eq!(scrap.form_fields().unwrap(), [("request_url", "https://e.com/p".to_owned())]);
        let bad = MessageContent::Scrap { request_url: "file:///etc".into(), template: None };
        assert!(bad.form_fields().is_err());
        let too_long = MessageContent::from(Template::text("x".repeat(201), Link::default()));
        assert!(matches!(too_long.form_fields(), Err(TalkError::Template(_))));
    }
}
