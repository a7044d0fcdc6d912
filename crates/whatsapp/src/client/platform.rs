//! Kapso's Platform API (`<KAPSO_BASE_URL>/platform/v1`, reference/kapso-whatsapp.md §1, §6.1):
//! the project's phone numbers and their (config-level) webhooks, for `clawbridge setup
//! whatsapp`. The same thin request function, error classification, per-key rate limiter and
//! tracing layers as the Meta-proxy client ([`KapsoClient`](super::KapsoClient)).
//!
//! Shapes: `GET /whatsapp/phone_numbers` answers `{"data": [{name, display_phone_number,
//! phone_number_id | id, business_account_id}]}`; webhooks are created and changed with a
//! `{"whatsapp_webhook": {…}}` body. Kapso does not document the answer of the webhook list
//! (nor of a create), so both `{"data": …}` and the bare value are accepted.

use super::{MAX_LIMITER_WAIT, call, clip};
use crate::config::WhatsAppConfig;
use clawbridge_core::SendError;
use clawbridge_core::retry::RetryPolicy;
use clawbridge_http::{Layers, Request};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Phone numbers (and webhooks) asked for per page.
const PER_PAGE: usize = 100;
/// Pages read at most (10 000 numbers): a server that ignores `page` cannot loop us forever.
const MAX_PAGES: usize = 100;

/// The Platform API client of one project API key.
#[derive(Clone)]
pub struct PlatformClient {
    http: reqwest::Client,
    base: String,
    api_key: SecretString,
    layers: Layers,
}

impl std::fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformClient").field("base", &self.base).finish_non_exhaustive()
    }
}

/// A WhatsApp number of the Kapso project.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhoneNumber {
    /// Meta's phone number id (`phone_number_id`, else `id`): what `KAPSO_PHONE_NUMBER_ID` is.
    pub phone_number_id: String,
    /// The number as people dial it (`+1 555-010-0000`).
    pub display_phone_number: Option<String>,
    /// The name given to it in Kapso.
    pub name: Option<String>,
    /// The WhatsApp Business Account (WABA) it belongs to.
    pub business_account_id: Option<String>,
}

impl PhoneNumber {
    fn from_json(value: &Value) -> Option<Self> {
        let id = text(value.get("phone_number_id")).or_else(|| text(value.get("id")))?;
        Some(Self {
            phone_number_id: id,
            display_phone_number: text(value.get("display_phone_number")),
            name: text(value.get("name")),
            business_account_id: text(value.get("business_account_id")),
        })
    }

    /// `123456789012345 (+1 555-010-0000, Support)`, for lists and prompts.
    pub fn label(&self) -> String {
        let details: Vec<&str> =
            [self.display_phone_number.as_deref(), self.name.as_deref()].into_iter().flatten().collect();
        if details.is_empty() {
            self.phone_number_id.clone()
        } else {
            format!("{} ({})", self.phone_number_id, details.join(", "))
        }
    }
}

/// A phone number's webhook, as Kapso lists it.
#[derive(Clone, Debug, Default)]
pub struct Webhook {
    /// Kapso's id of the webhook.
    pub id: String,
    /// Where Kapso delivers.
    pub url: String,
    /// The events delivered.
    pub events: Vec<String>,
    /// Whether it delivers at all (`None`: not said).
    pub active: Option<bool>,
    /// `v1` or `v2` (`None`: not said).
    pub payload_version: Option<String>,
    /// `kapso` (event payloads) or `meta` (raw Meta payloads).
    pub kind: Option<String>,
    /// The signing secret, when Kapso shows it (not documented for listings).
    pub secret_key: Option<SecretString>,
}

impl Webhook {
    fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            id: text(value.get("id"))?,
            url: text(value.get("url")).unwrap_or_default(),
            events: value
                .get("events")
                .and_then(Value::as_array)
                .map(|events| events.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            active: value.get("active").and_then(Value::as_bool),
            payload_version: text(value.get("payload_version")),
            kind: text(value.get("kind")),
            secret_key: text(value.get("secret_key")).map(SecretString::from),
        })
    }
}

/// The fields of a webhook to create or change (`{"whatsapp_webhook": {…}}`); unset fields
/// are left out of the body, so a change touches only what it names.
#[derive(Clone, Debug, Default)]
pub struct WebhookSpec {
    /// Where Kapso delivers.
    pub url: Option<String>,
    /// The HMAC-SHA256 signing secret.
    pub secret_key: Option<SecretString>,
    /// The events to deliver.
    pub events: Option<Vec<String>>,
    /// Whether it delivers.
    pub active: Option<bool>,
    /// `v2`: `phone_number_id` at the root (what the bridge parses).
    pub payload_version: Option<String>,
}

impl WebhookSpec {
    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.secret_key.is_none()
            && self.events.is_none()
            && self.active.is_none()
            && self.payload_version.is_none()
    }

    /// The request body, secret included.
    pub fn body(&self) -> Value {
        self.body_with(|secret| json!(secret.expose_secret()))
    }

    /// The request body as people may see it: the secret replaced by a placeholder.
    pub fn redacted_body(&self) -> Value {
        self.body_with(|_| json!("<secret: 32 random bytes, hex>"))
    }

    fn body_with(&self, secret: impl Fn(&SecretString) -> Value) -> Value {
        let mut fields = Map::new();
        if let Some(url) = &self.url {
            fields.insert("url".to_owned(), json!(url));
        }
        if let Some(key) = &self.secret_key {
            fields.insert("secret_key".to_owned(), secret(key));
        }
        if let Some(events) = &self.events {
            fields.insert("events".to_owned(), json!(events));
        }
        if let Some(active) = self.active {
            fields.insert("active".to_owned(), json!(active));
        }
        if let Some(version) = &self.payload_version {
            fields.insert("payload_version".to_owned(), json!(version));
        }
        json!({ "whatsapp_webhook": fields })
    }
}

impl PlatformClient {
    /// A client for the project key `api_key`, at `config`'s Platform API base, sharing the
    /// key's rate limiter with every other client of that key.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend).
    pub fn new(config: &WhatsAppConfig, api_key: SecretString) -> Result<Self, String> {
        let limiter = crate::limiter::shared(api_key.expose_secret(), config.rate_limit_per_minute, None);
        Self::with_parts(
            &config.platform_base(),
            api_key,
            Layers::new("whatsapp").with_rate_limit(limiter, MAX_LIMITER_WAIT).with_trace(),
            config.http_timeout,
        )
    }

    /// A client from its parts (tests).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_parts(base: &str, api_key: SecretString, layers: Layers, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clawbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), api_key, layers })
    }

    /// Retries what may pass within each call, on `policy` (a change is not repeated after an
    /// error that may have reached Kapso).
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.layers = self.layers.with_retry(policy);
        self
    }

    /// `<base>/whatsapp/phone_numbers`.
    pub fn phone_numbers_url(&self) -> String {
        format!("{}/whatsapp/phone_numbers", self.base)
    }

    /// `<base>/whatsapp/phone_numbers/{phone_number_id}/webhooks`.
    pub fn webhooks_url(&self, phone_number_id: &str) -> String {
        format!("{}/whatsapp/phone_numbers/{}/webhooks", self.base, segment(phone_number_id))
    }

    /// `<base>/whatsapp/phone_numbers/{phone_number_id}/webhooks/{webhook_id}`.
    pub fn webhook_url(&self, phone_number_id: &str, webhook_id: &str) -> String {
        format!("{}/{}", self.webhooks_url(phone_number_id), segment(webhook_id))
    }

    /// `<base>/whatsapp/webhooks/{webhook_id}/test`.
    pub fn test_url(&self, webhook_id: &str) -> String {
        format!("{}/whatsapp/webhooks/{}/test", self.base, segment(webhook_id))
    }

    /// The project's phone numbers (every page); with `only`, just that phone number id (empty
    /// when the project has no such number).
    ///
    /// # Errors
    /// A classified [`SendError`], or an answer without a list.
    pub async fn phone_numbers(&self, only: Option<&str>) -> Result<Vec<PhoneNumber>, SendError> {
        let url = self.phone_numbers_url();
        let mut numbers = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = vec![("page", page.to_string()), ("per_page", PER_PAGE.to_string())];
            if let Some(id) = only {
                query.push(("phone_number_id", id.to_owned()));
            }
            let (answer, _) = call(&self.layers, &self.api_key, Request::idempotent("platform_phone_numbers"), || {
                Ok(self.http.get(&url).query(&query))
            })
            .await?;
            let items = list_items(&answer, "phone number list")?;
            numbers.extend(items.iter().filter_map(PhoneNumber::from_json));
            if items.len() < PER_PAGE || last_page(&answer, page) {
                break;
            }
        }
        if let Some(id) = only {
            // A server that ignores the filter must not make another number look like this one.
            numbers.retain(|n| n.phone_number_id == id);
        }
        Ok(numbers)
    }

    /// The webhooks of `phone_number_id` (every page).
    ///
    /// # Errors
    /// A classified [`SendError`], or an answer without a list.
    pub async fn webhooks(&self, phone_number_id: &str) -> Result<Vec<Webhook>, SendError> {
        let url = self.webhooks_url(phone_number_id);
        let mut webhooks = Vec::new();
        for page in 1..=MAX_PAGES {
            let query = [("page", page.to_string()), ("per_page", PER_PAGE.to_string())];
            let (answer, _) = call(&self.layers, &self.api_key, Request::idempotent("platform_webhooks"), || {
                Ok(self.http.get(&url).query(&query))
            })
            .await?;
            let items = list_items(&answer, "webhook list")?;
            webhooks.extend(items.iter().filter_map(Webhook::from_json));
            if items.len() < PER_PAGE || last_page(&answer, page) {
                break;
            }
        }
        Ok(webhooks)
    }

    /// Creates a webhook for `phone_number_id` (`POST …/webhooks`); not repeated after an error
    /// that may have created it.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn create_webhook(&self, phone_number_id: &str, spec: &WebhookSpec) -> Result<Webhook, SendError> {
        let url = self.webhooks_url(phone_number_id);
        let body = spec.body();
        let (answer, _) = call(&self.layers, &self.api_key, Request::once("platform_webhook_create"), || {
            Ok(self.http.post(&url).json(&body))
        })
        .await?;
        Ok(single(&answer).and_then(Webhook::from_json).unwrap_or_else(|| unechoed(spec)))
    }

    /// Changes the fields `spec` names (`PATCH …/webhooks/{id}`); the same change twice is the
    /// same change, so it is retried like a read.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn update_webhook(
        &self,
        phone_number_id: &str,
        webhook_id: &str,
        spec: &WebhookSpec,
    ) -> Result<Webhook, SendError> {
        let url = self.webhook_url(phone_number_id, webhook_id);
        let body = spec.body();
        let (answer, _) = call(&self.layers, &self.api_key, Request::idempotent("platform_webhook_update"), || {
            Ok(self.http.patch(&url).json(&body))
        })
        .await?;
        Ok(single(&answer)
            .and_then(Webhook::from_json)
            .unwrap_or_else(|| Webhook { id: webhook_id.to_owned(), ..unechoed(spec) }))
    }

    /// Asks Kapso to deliver a test event to the webhook (`POST /whatsapp/webhooks/{id}/test`);
    /// the answer as Kapso gives it.
    ///
    /// # Errors
    /// A classified [`SendError`].
    pub async fn test_webhook(&self, webhook_id: &str) -> Result<Value, SendError> {
        let url = self.test_url(webhook_id);
        let (answer, _) =
            call(&self.layers, &self.api_key, Request::once("platform_webhook_test"), || Ok(self.http.post(&url)))
                .await?;
        Ok(answer)
    }
}

/// A string or a number as text (ids come as either).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The items of a list answer: `{"data": [...]}` or a bare array.
fn list_items<'a>(answer: &'a Value, what: &str) -> Result<&'a [Value], SendError> {
    match answer {
        Value::Array(items) => Ok(items),
        Value::Object(fields) => match fields.get("data") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(SendError::transient(format!(
                "Kapso answered a {what} without data: {}",
                clip(&answer.to_string())
            ))),
        },
        _ => Err(SendError::transient(format!("Kapso answered a {what} without data: {}", clip(&answer.to_string())))),
    }
}

/// Whether the answer says `page` was the last (`meta.total_pages`, when given).
fn last_page(answer: &Value, page: usize) -> bool {
    answer
        .pointer("/meta/total_pages")
        .and_then(Value::as_u64)
        .is_some_and(|total| u64::try_from(page).unwrap_or(u64::MAX) >= total)
}

/// The object of a single-item answer: `{"data": {...}}` or the bare object.
fn single(answer: &Value) -> Option<&Value> {
    match answer.get("data") {
        Some(data) if data.is_object() => Some(data),
        _ => answer.is_object().then_some(answer),
    }
}

/// What a change answered without echoing the webhook is taken to have made.
fn unechoed(spec: &WebhookSpec) -> Webhook {
    Webhook {
        id: String::new(),
        url: spec.url.clone().unwrap_or_default(),
        events: spec.events.clone().unwrap_or_default(),
        active: spec.active,
        payload_version: spec.payload_version.clone(),
        kind: None,
        secret_key: None,
    }
}

/// An id as one URL path segment (ids are digits or UUIDs; anything else is escaped, dots too).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_read_either_id_field() {
        let a = PhoneNumber::from_json(&json!({"name": "Support", "display_phone_number": "+1 555-010-0000",
                                               "phone_number_id": "111", "business_account_id": "waba"}))
        .unwrap();
        assert_eq!(a.phone_number_id, "111");
        assert_eq!(a.label(), "111 (+1 555-010-0000, Support)");
        let b = PhoneNumber::from_json(&json!({"id": 222})).unwrap();
        assert_eq!((b.phone_number_id.as_str(), b.label()), ("222", "222".to_owned()));
        assert!(PhoneNumber::from_json(&json!({"name": "no id"})).is_none());
    }

    #[test]
    fn lists_are_data_arrays_or_bare_arrays() {
        assert_eq!(list_items(&json!({"data": [1, 2]}), "x").unwrap().len(), 2);
        assert_eq!(list_items(&json!([1]), "x").unwrap().len(), 1);
        assert!(list_items(&json!({"error": "no"}), "x").is_err());
        assert!(last_page(&json!({"meta": {"total_pages": 1}}), 1));
        assert!(!last_page(&json!({"data": []}), 1));
        assert_eq!(single(&json!({"data": {"id": "w"}})).unwrap()["id"], "w");
        assert_eq!(single(&json!({"id": "w"})).unwrap()["id"], "w");
    }

    #[test]
    fn a_spec_sends_only_what_it_names_and_never_shows_the_secret() {
        let spec = WebhookSpec {
            secret_key: Some(SecretString::from("s3cr3t")),
            events: Some(vec!["whatsapp.message.received".into()]),
            ..WebhookSpec::default()
        };
        assert_eq!(
            spec.body(),
            json!({"whatsapp_webhook": {"secret_key": "s3cr3t", "events": ["whatsapp.message.received"]}})
        );
        assert!(!spec.redacted_body().to_string().contains("s3cr3t"));
        assert!(WebhookSpec::default().is_empty() && !spec.is_empty());
        let hook = Webhook::from_json(&json!({"id": 7, "url": "https://x/webhook", "events": ["a"], "active": true,
                                              "payload_version": "v2", "secret_key": ""}))
        .unwrap();
        assert_eq!((hook.id.as_str(), hook.active, hook.secret_key.is_none()), ("7", Some(true), true));
        assert!(!format!("{:?}", Webhook { secret_key: Some("s3cr3t".into()), ..hook }).contains("s3cr3t"));
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(segment("123456789012345"), "123456789012345");
        assert_eq!(segment("5f0c-a_1"), "5f0c-a_1");
        assert_eq!(segment("x/y?z"), "x%2Fy%3Fz");
    }
}
