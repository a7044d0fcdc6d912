//! Kakao Login at kauth (reference/kakao.md §1): the authorize URL with PKCE, the one-shot
//! redirect listener of `kakao login`, and the token endpoint (code exchange and refresh).

use super::error::{OAuthErrorBody, TalkError};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clawbridge_core::retry::{RetryClass, RetryPolicy};
use clawbridge_http::Classify;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// The token endpoint's form content type, as Kakao documents it.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// A PKCE pair (RFC 7636, `S256`).
pub struct Pkce {
    /// Sent with the code exchange; never leaves this process before that.
    pub verifier: SecretString,
    /// `BASE64URL(SHA256(verifier))`, sent in the authorize URL.
    pub challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce").field("challenge", &self.challenge).finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh pair from 32 random bytes (a 43-character verifier).
    ///
    /// # Errors
    /// When the operating system has no randomness.
    pub fn generate() -> Result<Self, TalkError> {
        let verifier = random_token(32)?;
        let challenge = challenge_of(&verifier);
        Ok(Self { verifier: SecretString::from(verifier), challenge })
    }
}

/// `BASE64URL(SHA256(verifier))` without padding.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `len` random bytes as unpadded base64url (states, verifiers).
///
/// # Errors
/// When the operating system has no randomness.
pub fn random_token(len: usize) -> Result<String, TalkError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| TalkError::Invalid(format!("no randomness available: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The token endpoint's answer. `Debug` hides the tokens.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// A refresh token: always after a code exchange; after a refresh only when it rotated.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds the access token lives (about 6 h).
    pub expires_in: i64,
    /// Seconds the refresh token lives (about 2 months), with `refresh_token`.
    #[serde(default)]
    pub refresh_token_expires_in: Option<i64>,
    /// Granted consent items, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// With OpenID Connect.
    #[serde(default)]
    pub id_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("expires_in", &self.expires_in)
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What goes into the authorize URL.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest<'a> {
    /// The registered redirect URI.
    pub redirect_uri: &'a str,
    /// Consent items to ask for (joined with commas, as the REST documentation says).
    pub scopes: &'a [String],
    /// The anti-CSRF value the redirect must bring back.
    pub state: &'a str,
    /// The PKCE challenge.
    pub code_challenge: &'a str,
    /// `login`, `select_account` … (optional).
    pub prompt: Option<&'a str>,
}

/// The kauth client.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    auth_base_url: String,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("auth_base_url", &self.auth_base_url)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client of `auth_base_url` (`https://kauth.kakao.com`) for the app `client_id`.
    pub fn new(
        http: reqwest::Client,
        auth_base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
    ) -> Self {
        Self {
            http,
            auth_base_url: auth_base_url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// `GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope&state&code_challenge…`.
    ///
    /// # Errors
    /// When the base URL is not a URL.
    pub fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<String, TalkError> {
        let mut url = reqwest::Url::parse(&format!("{}/oauth/authorize", self.auth_base_url))
            .map_err(|e| TalkError::Invalid(format!("KAKAO_AUTH_BASE_URL is not a URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("response_type", "code");
            if !req.scopes.is_empty() {
                q.append_pair("scope", &req.scopes.join(","));
            }
            q.append_pair("state", req.state)
                .append_pair("code_challenge", req.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(prompt) = req.prompt {
                q.append_pair("prompt", prompt);
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`).
    ///
    /// # Errors
    /// [`TalkError::OAuth`] with Kakao's `KOE…` code and its meaning, or a network error.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &SecretString,
    ) -> Result<TokenResponse, TalkError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("code", code),
            ("code_verifier", verifier.expose_secret()),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        // An authorization code is single-use: never retried.
        self.token_request(&form, ONCE).await
    }

    /// Refreshes (`grant_type=refresh_token`). Network failures and 5xx are retried twice; Kakao
    /// errors are not (issuance is limited to 30 refresh tokens per hour).
    ///
    /// # Errors
    /// [`TalkError::OAuth`] (check [`OAuthErrorBody::needs_login`]), or [`TalkError::Unavailable`].
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, TalkError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        self.token_request(&form, REFRESH_RETRY).await
    }

    /// `POST /oauth/token` through the one retry loop: network failures and 5xx are tried again
    /// on `policy`'s schedule, Kakao's own errors never.
    async fn token_request(&self, form: &[(&str, &str)], policy: RetryPolicy) -> Result<TokenResponse, TalkError> {
        let attempts = AtomicU32::new(0);
        let result = clawbridge_http::retry(policy, true, || {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.token_attempt(form)
        })
        .await;
        result.map_err(|failure| match failure {
            TokenFailure::Final(error) => error,
            TokenFailure::Transient(reason) => TalkError::Unavailable {
                reason: format!("kauth token endpoint: {reason}"),
                attempts: attempts.load(Ordering::Relaxed),
            },
        })
    }

    async fn token_attempt(&self, form: &[(&str, &str)]) -> Result<TokenResponse, TokenFailure> {
        let url = format!("{}/oauth/token", self.auth_base_url);
        let sent = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .form(form)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let response = sent.map_err(|e| TokenFailure::Transient(format!("network error: {}", e.without_url())))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                TokenFailure::Final(TalkError::Decode {
                    context: "POST /oauth/token".to_owned(),
                    detail: e.to_string(),
                })
            });
        }
        if let Ok(error) = serde_json::from_slice::<OAuthErrorBody>(&body)
            && !error.error.is_empty()
            && error.error != "server_error"
        {
            return Err(TokenFailure::Final(TalkError::OAuth(error)));
        }
        if status.is_client_error() {
            return Err(TokenFailure::Final(TalkError::OAuth(OAuthErrorBody {
                error: format!("http_{}", status.as_u16()),
                error_description: Some(String::from_utf8_lossy(&body).chars().take(200).collect()),
                error_code: None,
            })));
        }
        Err(TokenFailure::Transient(format!("HTTP {}", status.as_u16())))
    }
}

/// Token refreshes: 3 attempts, 0.6 s then 0.9 s apart (Kakao limits how many refresh tokens it
/// issues an hour, so few and soon).
const REFRESH_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_delay_ms: 600,
    max_delay_ms: 2_000,
    backoff_multiplier: 1.5,
    max_retry_after_ms: 15_000,
};

/// An authorization code is single-use: one attempt.
const ONCE: RetryPolicy = RetryPolicy { max_attempts: 1, ..REFRESH_RETRY };

/// One token request's failure: Kakao's answer (final) or the network / a 5xx (retried).
#[derive(Debug)]
enum TokenFailure {
    Final(TalkError),
    Transient(String),
}

impl fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Final(error) => write!(f, "{error}"),
            Self::Transient(reason) => f.write_str(reason),
        }
    }
}

impl Classify for TokenFailure {
    fn retry_class(&self) -> RetryClass {
        match self {
            Self::Final(_) => RetryClass::Permanent,
            Self::Transient(_) => RetryClass::Transient,
        }
    }
}

/// What the redirect brought back.
#[derive(Debug)]
enum RedirectOutcome {
    Code(String),
    Error(OAuthErrorBody),
}

struct RedirectState {
    expected_state: String,
    result: Mutex<Option<oneshot::Sender<RedirectOutcome>>>,
}

/// The one-shot HTTP listener on the redirect URI's host and port that catches Kakao's redirect.
#[derive(Debug)]
pub struct RedirectListener {
    listener: tokio::net::TcpListener,
    path: String,
}

impl RedirectListener {
    /// Binds the host and port of `redirect_uri` (`localhost` binds 127.0.0.1).
    ///
    /// # Errors
    /// [`TalkError::Invalid`] for an https or malformed URI or a port in use, with the fix.
    pub async fn bind(redirect_uri: &str) -> Result<Self, TalkError> {
        let url = reqwest::Url::parse(redirect_uri)
            .map_err(|e| TalkError::Invalid(format!("KAKAO_REDIRECT_URI {redirect_uri:?} is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(TalkError::Invalid(format!(
                "KAKAO_REDIRECT_URI {redirect_uri:?} is https: `kakao login` receives the redirect itself and can \
                 only listen on http; register an http://localhost:PORT/PATH redirect URI in the Kakao console and set it"
            )));
        }
        let host = match url.host_str() {
            Some("localhost") | None => "127.0.0.1".to_owned(),
            Some(host) => host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await.map_err(|e| {
            TalkError::Invalid(format!(
                "cannot listen on {host}:{port} for the Kakao redirect (KAKAO_REDIRECT_URI): {e}; free the port or \
                 register another redirect URI"
            ))
        })?;
        let path = if url.path().is_empty() { "/".to_owned() } else { url.path().to_owned() };
        Ok(Self { listener, path })
    }

    /// The bound address.
    ///
    /// # Errors
    /// When the socket has none.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until a redirect with the right `state` arrives (or `timeout` passes) and returns
    /// its `code`. Requests with another or no `state` are refused with 400 and do not end the
    /// wait, so a stray or forged request cannot abort or hijack the login.
    ///
    /// # Errors
    /// [`TalkError::OAuth`] when Kakao redirected with `error` (the user declined …), or
    /// [`TalkError::Invalid`] on timeout.
    pub async fn wait_for_code(self, expected_state: &str, timeout: Duration) -> Result<String, TalkError> {
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(RedirectState { expected_state: expected_state.to_owned(), result: Mutex::new(Some(tx)) });
        let app = axum::Router::new().route(&self.path, axum::routing::get(on_redirect)).with_state(state);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        let outcome = tokio::time::timeout(timeout, rx).await;
        let _ = stop_tx.send(());
        // The browser has its answer already; do not hang on a keep-alive connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        match outcome {
            Ok(Ok(RedirectOutcome::Code(code))) => Ok(code),
            Ok(Ok(RedirectOutcome::Error(error))) => Err(TalkError::OAuth(error)),
            Ok(Err(_)) | Err(_) => Err(TalkError::Invalid(format!(
                "no Kakao redirect arrived within {} s: open the URL above in a browser that can reach this \
                 machine's redirect URI, and log in. If Kakao showed an error page instead: KOE006 = the redirect \
                 URI is not registered in the app, KOE004 = Kakao Login is not enabled, KOE101 = wrong \
                 KAKAO_REST_API_KEY, KOE205 = a requested scope is not a consent item of the app",
                timeout.as_secs()
            ))),
        }
    }
}

async fn on_redirect(
    State(state): State<Arc<RedirectState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let given = query.get("state").map(String::as_str).unwrap_or_default();
    let matches: bool = given.as_bytes().ct_eq(state.expected_state.as_bytes()).into();
    if !matches {
        return (
            StatusCode::BAD_REQUEST,
            Html("<h1>This redirect does not belong to the running login (state mismatch).</h1>"),
        )
            .into_response();
    }
    let outcome = if let Some(code) = query.get("code").filter(|c| !c.is_empty()) {
        RedirectOutcome::Code(code.clone())
    } else {
        RedirectOutcome::Error(OAuthErrorBody {
            error: query.get("error").cloned().unwrap_or_else(|| "invalid_request".to_owned()),
            error_description: query.get("error_description").cloned(),
            error_code: query.get("error_code").cloned(),
        })
    };
    let page = match &outcome {
        RedirectOutcome::Code(_) => {
            "<h1>Kakao login received.</h1><p>You can close this tab and return to the terminal.</p>".to_owned()
        }
        RedirectOutcome::Error(e) => format!("<h1>Kakao login failed.</h1><p>{}</p>", html_escape(&e.to_string())),
    };
    let sender = state.result.lock().ok().and_then(|mut slot| slot.take());
    match sender {
        Some(tx) => {
            let _ = tx.send(outcome);
            (StatusCode::OK, Html(page)).into_response()
        }
        None => (StatusCode::GONE, Html("<h1>This login has already finished.</h1>".to_owned())).into_response(),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token endpoint that answers `answers` in turn (status, body), then 200 with a token.
    async fn token_endpoint(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<usize>>) {
        let calls = Arc::new(Mutex::new(0usize));
        let answers = Arc::new(answers);
        let app = axum::Router::new().route(
            "/oauth/token",
            axum::routing::post({
                let (calls, answers) = (calls.clone(), answers.clone());
                move || {
                    let (calls, answers) = (calls.clone(), answers.clone());
                    async move {
                        let n = {
                            let mut calls = calls.lock().unwrap();
                            *calls += 1;
                            *calls - 1
                        };
                        let (status, body) = answers.get(n).copied().unwrap_or((
                            200,
                            r#"{"token_type":"bearer","access_token":"A","expires_in":21599,"refresh_token":"R","refresh_token_expires_in":5183999}"#,
                        ));
                        (StatusCode::from_u16(status).unwrap(), body)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    /// On the real clock (the retries wait 0.6 s and 0.9 s): a paused clock would also run the
    /// requests' own timeouts forward while a local answer is on its way.
    #[tokio::test]
    async fn a_refresh_is_retried_through_5xx_and_kakaos_own_errors_are_not() {
        let (url, calls) = token_endpoint(vec![(503, ""), (502, "")]).await;
        let client = OAuthClient::new(reqwest::Client::new(), url, "rest-key", None);
        let token = client.refresh(&SecretString::from("R0")).await.unwrap();
        assert_eq!((token.access_token.as_str(), *calls.lock().unwrap()), ("A", 3));

        let (url, calls) = token_endpoint(vec![(503, ""), (503, ""), (503, "")]).await;
        let client = OAuthClient::new(reqwest::Client::new(), url, "rest-key", None);
        let err = client.refresh(&SecretString::from("R0")).await.unwrap_err();
        assert!(matches!(err, TalkError::Unavailable { attempts: 3, .. }), "{err}");

        let invalid = r#"{"error":"invalid_grant","error_description":"expired","error_code":"KOE322"}"#;
        let (url, calls_invalid) = token_endpoint(vec![(400, invalid)]).await;
        let client = OAuthClient::new(reqwest::Client::new(), url, "rest-key", None);
        assert!(matches!(client.refresh(&SecretString::from("R0")).await, Err(TalkError::OAuth(_))));
        assert_eq!(*calls_invalid.lock().unwrap(), 1, "Kakao's answer is final");
        drop(calls);

        // An authorization code is single-use: a 503 is not retried.
        let (url, calls) = token_endpoint(vec![(503, "")]).await;
        let client = OAuthClient::new(reqwest::Client::new(), url, "rest-key", None);
        let err = client.exchange_code("code", "http://localhost:9/cb", &SecretString::from("v")).await.unwrap_err();
        assert!(matches!(err, TalkError::Unavailable { attempts: 1, .. }), "{err}");
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pkce = Pkce::generate().unwrap();
        assert_eq!(pkce.verifier.expose_secret().len(), 43);
        assert_eq!(pkce.challenge, challenge_of(pkce.verifier.expose_secret()));
        assert!(!format!("{pkce:?}").contains(pkce.verifier.expose_secret()));
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let client = OAuthClient::new(reqwest::Client::new(), "https://kauth.kakao.com/", "rest-key", None);
        let scopes = vec!["talk_message".to_owned(), "friends".to_owned()];
        let url = client
            .authorize_url(&AuthorizeRequest {
                redirect_uri: "http://localhost:9/cb",
                scopes: &scopes,
                state: "st",
                code_challenge: "ch",
                prompt: None,
            })
            .unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/oauth/authorize");
        let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "rest-key");
        assert_eq!(q["redirect_uri"], "http://localhost:9/cb");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "talk_message,friends");
        assert_eq!(q["state"], "st");
        assert_eq!(q["code_challenge"], "ch");
        assert_eq!(q["code_challenge_method"], "S256");
    }

    #[test]
    fn token_response_debug_hides_tokens() {
        let r: TokenResponse = serde_json::from_str(
            r#"{"access_token":"AT-secret","token_type":"bearer","refresh_token":"RT-secret","expires_in":21599,"scope":"talk_message","refresh_token_expires_in":5183999}"#,
        )
        .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("AT-secret") && !dbg.contains("RT-secret"), "{dbg}");
    }
}
