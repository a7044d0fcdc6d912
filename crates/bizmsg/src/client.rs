//! The dealer client: makes the requests [`dispatch`](crate::dispatch) plans and turns the answers
//! into row updates. One attempt per call — retries are the durable queue's, which keeps the
//! request key of an attempt whose answer was lost — with a timeout on every request and a
//! tracing span per call.

use crate::brand::BrandContent;
use crate::config::{BizmsgConfig, DealerSettings};
use crate::dealer::nhn::SendAnswerKind;
use crate::dealer::{DealerKind, Report, Sender, WireRequest, infobip, nhn, solapi};
use crate::dispatch::{Pending, RequestKey, RowUpdate, apply, batch};
use crate::send::Message;
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
    layers: Layers,
    clock: Arc<dyn Clock>,
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
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            dealer: config.dealer.clone(),
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
    pub async fn execute(&self, name: &str, request: &WireRequest) -> Result<Answer, SendError> {
        let url = format!("{}{}", self.base_url, request.path);
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut builder = self.http.request(method, &url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let DealerSettings::Solapi { api_key, api_secret } = &self.dealer {
            let auth =
                solapi::SolapiAuth { api_key: api_key.clone(), api_secret: api_secret.expose_secret().to_owned() };
            let date = solapi::signing_date(self.clock.now_ms());
            builder = builder.header("Authorization", solapi::authorization(&auth, &date, &salt()));
        }
        if !request.body.is_empty() {
            builder = builder.header("Content-Type", "application/json;charset=UTF-8").body(request.body.clone());
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
            DealerSettings::Infobip { api_key } => {
                infobip::brand_send(api_key.expose_secret(), sender, content, &to, send_at, key.as_str())
            }
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
                // NHN has this request already; without a Brand Message lookup its ids are not
                // known here, so the rows stay in doubt under the key and are never sent again.
                Ok(SendAnswerKind::AlreadyAccepted) => {
                    return rows
                        .iter()
                        .map(|row| RowUpdate::Retry {
                            id: row.id,
                            error: format!("NHN already has request {}", key.as_str()),
                            after: Some(Duration::from_secs(60)),
                            in_doubt: true,
                        })
                        .collect();
                }
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
            DealerSettings::Infobip { api_key } => {
                infobip::alimtalk_send(api_key.expose_secret(), sender, &batch, key.as_str())
            }
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
        match self.lookup(key).await {
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

    /// The messages NHN has of the earlier request `key`: `(our reference, its id)`.
    ///
    /// # Errors
    /// The query failed, or the dealer has no such lookup.
    pub async fn lookup(&self, key: &RequestKey) -> Result<Vec<(String, String)>, SendError> {
        let Some(auth) = self.dealer.nhn_auth() else {
            return Err(SendError::Permanent(format!("{} has no lookup of earlier requests", self.dealer().id())));
        };
        // The request was made at the key's time (scheduled sends are listed by that time too).
        let made = key.made_at();
        let request = nhn::lookup_query(&auth, key.as_str(), made - MINUTE_MS, made + 2 * MINUTE_MS);
        let answer = self.execute("alimtalk lookup", &request).await?;
        nhn::read_lookup(answer.status, &answer.body)
    }

    /// The dealer's templates of `sender_key` (`alimtalk templates sync`).
    ///
    /// # Errors
    /// The query failed; only NHN's template list is read here.
    pub async fn templates(&self, sender_key: &str) -> Result<Vec<crate::template::DealerTemplate>, SendError> {
        let Some(auth) = self.dealer.nhn_auth() else {
            return Err(SendError::Permanent(format!(
                "templates sync reads NHN's template list; with {} the templates under [[bizmsg.templates]] are used as declared",
                self.dealer().id()
            )));
        };
        let mut templates = Vec::new();
        for page in 1..=20 {
            let answer = self.execute("alimtalk templates", &nhn::templates_query(&auth, sender_key, page)).await?;
            let mut read = nhn::read_templates(answer.status, &answer.body)?;
            let last = read.len() < 1_000;
            templates.append(&mut read);
            if last {
                break;
            }
        }
        Ok(templates)
    }

    /// Delivery results that changed in `[from, to]` (NHN result updates, Infobip reports).
    ///
    /// # Errors
    /// The query failed; Solapi's results are not polled here.
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
            DealerSettings::Infobip { api_key } => {
                let answer =
                    self.execute("alimtalk reports", &infobip::reports_query(api_key.expose_secret(), 1_000)).await?;
                if !(200..300).contains(&answer.status) {
                    return Err(crate::dealer::http_error(answer.status, &answer.body, answer.retry_after));
                }
                let reports = infobip::read_reports(&answer.body).map_err(SendError::transient)?;
                Ok(reports.into_iter().map(|r| r.report).collect())
            }
            DealerSettings::Solapi { .. } => {
                Err(SendError::Permanent("Solapi delivery results are not polled yet".to_owned()))
            }
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
