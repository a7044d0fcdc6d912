//! The dealer client: makes the requests [`dispatch`](crate::dispatch) plans and turns the answers
//! into row updates. One attempt per call — retries are the durable queue's, which keeps the
//! request key of an attempt whose answer was lost — with a timeout on every request and a
//! tracing span per call.

use crate::brand::BrandContent;
use crate::config::{BizmsgConfig, DealerSettings};
use crate::dealer::nhn::SendAnswerKind;
use crate::dealer::{DealerKind, Report, Sender, WireRequest, infobip, nhn, solapi};
use crate::dispatch::{Pending, RequestKey, RowUpdate, apply, batch};
use crate::send::{Message, Product};
use clawbridge_core::SendError;
use clawbridge_core::clock::{Clock, SystemClock};
use clawbridge_core::time::{EpochMs, MINUTE_MS};
use clawbridge_http::{Layers, Request};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// How long a dealer request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A dealer's answer, before it is read.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Retry-After`, when sent.
    pub retry_after: Option<Duration>,
}

/// The HTTP side of one dealer.
#[derive(Clone)]
pub struct DealerClient {
    http: reqwest::Client,
    base_url: String,
    dealer: DealerSettings,
    /// Infobip: where its sends ask for their reports (`CLAWBRIDGE_PUBLIC_URL` and
    /// `INFOBIP_WEBHOOK_TOKEN` both set).
    report_webhook: Option<infobip::ReportWebhook>,
    layers: Layers,
    clock: Arc<dyn Clock>,
}

/// A message the dealer accepted, as its result is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The dealer's id ([`ItemResult::Accepted`](crate::dealer::ItemResult::Accepted)).
    pub dealer_id: String,
    /// AlimTalk or Brand Message (they are listed apart).
    pub product: Product,
}

/// How many pages of one listing are read at most.
const MAX_PAGES: u32 = 100;

/// One query of [`DealerClient::results_of`].
enum ResultQuery {
    /// NHN: the messages of one of its requests, page by page.
    NhnRequest { product: Product, request_id: String },
    /// Infobip's logs or Solapi's list: one request.
    Once(WireRequest),
}

impl std::fmt::Debug for DealerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerClient").field("dealer", &self.dealer.kind()).field("base_url", &self.base_url).finish()
    }
}

impl DealerClient {
    /// The client of the configured dealer.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(config: &BizmsgConfig, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clawbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let report_webhook = match (&config.dealer, &config.public_url) {
            (DealerSettings::Infobip { webhook_token: Some(token), .. }, Some(public)) => {
                Some(infobip::ReportWebhook {
                    url: format!("{public}/bizmsg/infobip/webhook"),
                    token: token.expose_secret().to_owned(),
                })
            }
            _ => None,
        };
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            dealer: config.dealer.clone(),
            report_webhook,
            layers: Layers::new("bizmsg").with_trace(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same client on another clock (tests of the idempotency window).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Which dealer.
    pub fn dealer(&self) -> DealerKind {
        self.dealer.kind()
    }

    /// Makes one request. A request that may have reached the dealer (a timeout, a dropped
    /// connection after sending) is `Transient`, like a 5xx.
    ///
    /// # Errors
    /// The network failed, classified.
    pub async fn execute(&self, name: &'static str, request: &WireRequest) -> Result<Answer, SendError> {
        let url = format!("{}{}", self.base_url, request.path);
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut builder = self.http.request(method, &url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let DealerSettings::Solapi { api_key, api_secret, .. } = &self.dealer {
            let auth =
                solapi::SolapiAuth { api_key: api_key.clone(), api_secret: api_secret.expose_secret().to_owned() };
            let date = solapi::signing_date(self.clock.now_ms());
            builder = builder.header("Authorization", solapi::authorization(&auth, &date, &salt()));
        }
        if !request.body.is_empty() {
            // JSON, unless the request says otherwise (an image upload's multipart body).
            if !request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                builder = builder.header("Content-Type", "application/json;charset=UTF-8");
            }
            builder = builder.body(request.body.clone());
        }
        let call = || async {
            let response =
                builder.try_clone().ok_or_else(|| SendError::Permanent("request not clonable".into()))?.send().await;
            let response = response.map_err(|e| SendError::transient(clawbridge_http::describe_error(e)))?;
            let status = response.status().as_u16();
            let retry_after = clawbridge_http::retry_after(response.headers(), self.clock.as_ref());
            let body = response.bytes().await.map_err(|e| SendError::transient(clawbridge_http::describe_error(e)))?;
            Ok::<_, SendError>(Answer { status, body: body.to_vec(), retry_after })
        };
        self.layers.call(Request::once(name), call).await
    }

    /// Sends the request `key` of `rows` (one AlimTalk template or one Brand Message content,
    /// as [`dispatch::plan`](crate::dispatch::plan) groups them) and says what happened to each row.
    pub async fn send(&self, sender: &Sender, rows: &[Pending], key: &RequestKey) -> Vec<RowUpdate> {
        match rows.first().map(|r| &r.message) {
            Some(Message::Brand(content)) => self.send_brand(sender, content, rows, key).await,
            _ => self.send_alimtalk(sender, rows, key).await,
        }
    }

    async fn send_brand(
        &self,
        sender: &Sender,
        content: &BrandContent,
        rows: &[Pending],
        key: &RequestKey,
    ) -> Vec<RowUpdate> {
        if let Some(other) = rows.iter().find(|r| r.message != Message::Brand(content.clone())) {
            return apply(rows, Err(SendError::Permanent(format!("row {} is not the same Brand Message", other.id))));
        }
        let to: Vec<_> = rows.iter().map(Pending::addressee).collect();
        let send_at = rows.iter().filter_map(|r| r.send_at).max();
        let request = match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                nhn::brand_send(&auth, sender, content, &to, send_at, key.as_str())
            }
            DealerSettings::Solapi { .. } => solapi::brand_send(sender, content, &to, send_at),
            DealerSettings::Infobip { api_key, .. } => infobip::brand_send(
                api_key.expose_secret(),
                sender,
                content,
                &to,
                send_at,
                key.as_str(),
                self.report_webhook.as_ref(),
            ),
        };
        let request = match request {
            Ok(request) => request,
            Err(e) => return apply(rows, Err(SendError::Permanent(e))),
        };
        let answer = match self.execute("brand send", &request).await {
            Ok(answer) => answer,
            Err(e) => return apply(rows, Err(e)),
        };
        let (status, body, after) = (answer.status, answer.body.as_slice(), answer.retry_after);
        let read = match self.dealer() {
            DealerKind::Nhn => match nhn::read_send_answer(status, body, &to, after) {
                Ok(SendAnswerKind::Outcomes(outcomes)) => Ok(outcomes),
                Ok(SendAnswerKind::AlreadyAccepted) => return self.recover(key, rows).await,
                Err(e) => Err(e),
            },
            DealerKind::Solapi => solapi::read_send_answer(status, body, &to, after),
            DealerKind::Infobip => infobip::read_send_answer(status, body, &to, after),
        };
        apply(rows, read)
    }

    /// Sends the AlimTalk request `key` of `rows` and says what happened to each row.
    pub async fn send_alimtalk(&self, sender: &Sender, rows: &[Pending], key: &RequestKey) -> Vec<RowUpdate> {
        let batch = match batch(self.dealer(), rows) {
            Ok(batch) => batch,
            Err(e) => return apply(rows, Err(SendError::Permanent(e))),
        };
        let request = match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                nhn::alimtalk_send(&auth, sender, &batch, key.as_str())
            }
            DealerSettings::Solapi { .. } => solapi::alimtalk_send(sender, &batch),
            DealerSettings::Infobip { api_key, .. } => infobip::alimtalk_send(
                api_key.expose_secret(),
                sender,
                &batch,
                key.as_str(),
                self.report_webhook.as_ref(),
            ),
        };
        let request = match request {
            Ok(request) => request,
            Err(e) => return apply(rows, Err(SendError::Permanent(e))),
        };
        let answer = match self.execute("alimtalk send", &request).await {
            Ok(answer) => answer,
            Err(e) => return apply(rows, Err(e)),
        };
        let (status, body, after) = (answer.status, answer.body.as_slice(), answer.retry_after);
        let sent = crate::dealer::addressees(&batch.items);
        let read = match self.dealer() {
            DealerKind::Nhn => match nhn::read_send_answer(status, body, &sent, after) {
                Ok(SendAnswerKind::Outcomes(outcomes)) => Ok(outcomes),
                Ok(SendAnswerKind::AlreadyAccepted) => return self.recover(key, rows).await,
                Err(e) => Err(e),
            },
            DealerKind::Solapi => solapi::read_send_answer(status, body, &sent, after),
            DealerKind::Infobip => infobip::read_send_answer(status, body, &sent, after),
        };
        apply(rows, read)
    }

    /// NHN has this request already (-1005): its messages are found by the key and accepted;
    /// the others stay in doubt under the key until the window has passed and a lookup decides.
    async fn recover(&self, key: &RequestKey, rows: &[Pending]) -> Vec<RowUpdate> {
        match self.lookup(key, rows).await {
            Ok(found) => rows
                .iter()
                .map(|row| match found.iter().find(|(reference, _)| *reference == row.reference()) {
                    Some((_, dealer_id)) => RowUpdate::Accepted { id: row.id, dealer_id: dealer_id.clone() },
                    None => RowUpdate::Retry {
                        id: row.id,
                        error: format!("NHN has request {} but does not list this recipient yet", key.as_str()),
                        after: Some(Duration::from_secs(60)),
                        in_doubt: true,
                    },
                })
                .collect(),
            Err(e) => rows
                .iter()
                .map(|row| RowUpdate::Retry {
                    id: row.id,
                    error: e.to_string(),
                    after: e.retry_after(),
                    in_doubt: true,
                })
                .collect(),
        }
    }

    /// The messages the dealer has of the earlier request `key` of `rows`: `(our reference, its
    /// id)`. NHN lists a request by its key (`senderGroupingKey`); Infobip's logs find our message
    /// ids; Solapi's list of what it received around the key's time carries our references.
    ///
    /// # Errors
    /// A query failed.
    pub async fn lookup(&self, key: &RequestKey, rows: &[Pending]) -> Result<Vec<(String, String)>, SendError> {
        let product = match rows.first().map(|r| &r.message) {
            Some(Message::Brand(_)) => Product::Brand,
            _ => Product::Alimtalk,
        };
        // The request was made at the key's time (scheduled sends are listed by that time too).
        let made = key.made_at();
        let (from, to) = (made - MINUTE_MS, made + 2 * MINUTE_MS);
        let references: Vec<String> = rows.iter().map(Pending::reference).collect();
        match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                let request = nhn::lookup_query(&auth, product, key.as_str(), from, to);
                let answer = self.execute("lookup", &request).await?;
                nhn::read_lookup(answer.status, &answer.body)
            }
            DealerSettings::Infobip { api_key, .. } => {
                let mut found = Vec::new();
                for request in infobip::logs_queries(api_key.expose_secret(), product, &references) {
                    let answer = self.execute("lookup", &request).await?;
                    for log in infobip::read_report_query(answer.status, &answer.body)? {
                        // Our reference is Infobip's message id.
                        if references.contains(&log.report.dealer_id) {
                            found.push((log.report.dealer_id.clone(), log.report.dealer_id));
                        }
                    }
                }
                Ok(found)
            }
            DealerSettings::Solapi { .. } => {
                let mut found = Vec::new();
                let mut start_key: Option<String> = None;
                for _ in 0..MAX_PAGES {
                    let answer = self.execute("lookup", &solapi::window_query(from, to, start_key.as_deref())).await?;
                    let (stored, next) = solapi::read_messages(answer.status, &answer.body)?;
                    for message in stored {
                        if let Some(reference) = message.reference.filter(|r| references.contains(r)) {
                            found.push((reference, message.report.dealer_id));
                        }
                    }
                    match next {
                        Some(next) if start_key.as_deref() != Some(next.as_str()) => start_key = Some(next),
                        _ => break,
                    }
                }
                Ok(found)
            }
        }
    }

    /// Where the accepted messages `sent` are now, asked by their ids: NHN lists each request's
    /// messages by `requestId` (AlimTalk and Brand Message), Infobip's logs find them by message
    /// id (48 hours), Solapi's list by `messageIds`. A query that fails is skipped (its messages
    /// are asked about again next time).
    ///
    /// # Errors
    /// Every query failed.
    pub async fn results_of(&self, sent: &[Sent]) -> Result<Vec<Report>, SendError> {
        let mut queries: Vec<ResultQuery> = Vec::new();
        for product in [Product::Alimtalk, Product::Brand] {
            let ids: Vec<String> = sent.iter().filter(|s| s.product == product).map(|s| s.dealer_id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            match &self.dealer {
                DealerSettings::Nhn { .. } => {
                    let mut request_ids: Vec<String> = ids
                        .iter()
                        .map(|id| id.rsplit_once('/').map_or(id.as_str(), |(request, _)| request).to_owned())
                        .collect();
                    request_ids.sort_unstable();
                    request_ids.dedup();
                    queries.extend(
                        request_ids.into_iter().map(|request_id| ResultQuery::NhnRequest { product, request_id }),
                    );
                }
                DealerSettings::Infobip { api_key, .. } => queries.extend(
                    infobip::logs_queries(api_key.expose_secret(), product, &ids).into_iter().map(ResultQuery::Once),
                ),
                DealerSettings::Solapi { .. } => queries
                    .extend(ids.chunks(solapi::MAX_IDS_PER_QUERY).map(solapi::messages_query).map(ResultQuery::Once)),
            }
        }
        let mut reports = Vec::new();
        let mut failed: Option<SendError> = None;
        let mut answered = false;
        for query in queries {
            match self.result_query(query).await {
                Ok(mut read) => {
                    answered = true;
                    reports.append(&mut read);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a delivery result query failed; its messages are asked again later");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if !answered => Err(e),
            _ => Ok(reports),
        }
    }

    /// One query of [`DealerClient::results_of`], read (NHN's pages followed).
    async fn result_query(&self, query: ResultQuery) -> Result<Vec<Report>, SendError> {
        match query {
            ResultQuery::NhnRequest { product, request_id } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                let mut reports = Vec::new();
                for page in 1..=MAX_PAGES {
                    let request = nhn::request_results_query(&auth, product, &request_id, page);
                    let answer = self.execute("results", &request).await?;
                    let mut read = nhn::read_request_results(answer.status, &answer.body)?;
                    let last = read.len() < 1_000;
                    reports.append(&mut read);
                    if last {
                        break;
                    }
                }
                Ok(reports)
            }
            ResultQuery::Once(request) => {
                let answer = self.execute("results", &request).await?;
                match self.dealer() {
                    DealerKind::Solapi => Ok(solapi::read_messages(answer.status, &answer.body)?
                        .0
                        .into_iter()
                        .map(|s| s.report)
                        .collect()),
                    _ => Ok(infobip::read_report_query(answer.status, &answer.body)?
                        .into_iter()
                        .map(|r| r.report)
                        .collect()),
                }
            }
        }
    }

    /// The dealer's templates of `sender_key`, AlimTalk and Brand Message, where it lists them
    /// (`alimtalk templates sync`): NHN both, Solapi its AlimTalk templates, Infobip its Brand
    /// Message templates. What a dealer does not list is in [`DealerClient::unlisted`].
    ///
    /// # Errors
    /// A query failed.
    pub async fn templates(&self, sender_key: &str) -> Result<Vec<crate::template::DealerTemplate>, SendError> {
        let mut templates = Vec::new();
        match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                for page in 1..=20 {
                    let answer =
                        self.execute("alimtalk templates", &nhn::templates_query(&auth, sender_key, page)).await?;
                    let mut read = nhn::read_templates(answer.status, &answer.body)?;
                    let last = read.len() < 1_000;
                    templates.append(&mut read);
                    if last {
                        break;
                    }
                }
                for page in 1..=20 {
                    let request = nhn::brand_templates_query(&auth, sender_key, page);
                    let answer = self.execute("brand templates", &request).await?;
                    let mut read = nhn::read_brand_templates(answer.status, &answer.body)?;
                    let last = read.len() < 1_000;
                    templates.append(&mut read);
                    if last {
                        break;
                    }
                }
            }
            DealerSettings::Solapi { .. } => {
                let mut start_key: Option<String> = None;
                for _ in 0..100 {
                    let request = solapi::templates_query(sender_key, start_key.as_deref());
                    let answer = self.execute("alimtalk templates", &request).await?;
                    let (mut read, next) = solapi::read_templates(answer.status, &answer.body)?;
                    templates.append(&mut read);
                    match next {
                        Some(next) if start_key.as_deref() != Some(next.as_str()) => start_key = Some(next),
                        _ => break,
                    }
                }
            }
            DealerSettings::Infobip { api_key, .. } => {
                let key = api_key.expose_secret();
                let mut codes = Vec::new();
                for page in 1..=10 {
                    let answer =
                        self.execute("brand templates", &infobip::brand_templates_query(key, sender_key, page)).await?;
                    let mut read = infobip::read_brand_template_codes(answer.status, &answer.body)?;
                    let last = read.len() < 100;
                    codes.append(&mut read);
                    if last {
                        break;
                    }
                }
                codes.sort();
                codes.dedup();
                for code in codes {
                    let answer =
                        self.execute("brand template", &infobip::brand_template_query(key, sender_key, &code)).await?;
                    templates.push(infobip::read_brand_template(answer.status, &answer.body, &code)?);
                }
            }
        }
        Ok(templates)
    }

    /// The products whose templates this dealer has no list of (their templates are used as
    /// declared), with why.
    pub fn unlisted(&self) -> Option<&'static str> {
        match self.dealer() {
            DealerKind::Nhn => None,
            DealerKind::Solapi => Some(
                "Solapi has no Brand Message template list in its API (SDK 6.0.1): Brand Message templates are used as \
                 declared under [[bizmsg.brandTemplates]]",
            ),
            DealerKind::Infobip => Some(
                "Infobip has no AlimTalk template list in its API (its Kakao OpenAPI lists Brand Message templates \
                 only): AlimTalk templates are used as declared under [[bizmsg.templates]]",
            ),
        }
    }

    /// Uploads a Brand Message image and returns what a send names it by (NHN `imageUrl`,
    /// Solapi `fileId`). Called once per send, before its row is stored.
    ///
    /// # Errors
    /// The upload failed, or the dealer takes images by URL only (Infobip).
    pub async fn upload_image(
        &self,
        file_name: &str,
        format: crate::brand::ImageFormat,
        bytes: &[u8],
    ) -> Result<String, SendError> {
        match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                let request = nhn::image_upload(&auth, file_name, format, bytes).map_err(SendError::Permanent)?;
                let answer = self.execute("brand image upload", &request).await?;
                nhn::read_image_upload(answer.status, &answer.body)
            }
            DealerSettings::Solapi { .. } => {
                let answer = self.execute("brand image upload", &solapi::image_upload(file_name, bytes)).await?;
                solapi::read_image_upload(answer.status, &answer.body)
            }
            DealerSettings::Infobip { .. } => Err(SendError::Permanent(
                "Infobip takes Brand Message images by URL (its API has no upload): give --image https://…".to_owned(),
            )),
        }
    }

    /// Delivery results that changed lately: NHN's AlimTalk result updates of `[from, to]`,
    /// Infobip's reports of both APIs (each handed out once). Solapi and NHN's Brand Messages have
    /// no such query: their messages are asked about by id ([`DealerClient::results_of`]).
    ///
    /// # Errors
    /// A query failed.
    pub async fn poll_results(&self, from: EpochMs, to: EpochMs) -> Result<Vec<Report>, SendError> {
        match &self.dealer {
            DealerSettings::Nhn { .. } => {
                let auth = self.dealer.nhn_auth().expect("the dealer is NHN");
                let mut reports = Vec::new();
                for page in 1..=100 {
                    let answer = self.execute("alimtalk results", &nhn::results_query(&auth, from, to, page)).await?;
                    let mut read = nhn::read_results(answer.status, &answer.body)?;
                    let last = read.len() < 1_000;
                    reports.append(&mut read);
                    if last {
                        break;
                    }
                }
                Ok(reports)
            }
            DealerSettings::Infobip { api_key, .. } => {
                let mut reports = Vec::new();
                for product in [Product::Alimtalk, Product::Brand] {
                    // A full page means more are waiting: they are handed out on the next asks.
                    for _ in 0..10 {
                        let request = infobip::reports_query(api_key.expose_secret(), product, 1_000);
                        let answer = self.execute("reports", &request).await?;
                        let read = infobip::read_report_query(answer.status, &answer.body)?;
                        let full = read.len() >= 1_000;
                        reports.extend(read.into_iter().map(|r| r.report));
                        if !full {
                            break;
                        }
                    }
                }
                Ok(reports)
            }
            DealerSettings::Solapi { .. } => Ok(Vec::new()),
        }
    }
}

/// 32 characters of `[0-9a-zA-Z]`, new for every Solapi request.
fn salt() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; 32];
    // Without the OS's randomness the salt still differs per request (time and a counter),
    // which is all the signature needs of it.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = clawbridge_core::clock::now_ms().unsigned_abs()
            ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rotate_left(32);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed.rotate_left(u32::try_from(i).unwrap_or(0) * 7) & 0xff) as u8;
        }
    }
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn salts_are_32_alphanumerics_and_differ() {
        let a = super::salt();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, super::salt());
    }
}
