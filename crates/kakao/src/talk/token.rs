//! OAuth tokens: what is stored, where ([`TokenStore`]: [`SecretTokenStore`] on the bridge's
//! encrypted [`Secrets`]), the small shared state ([`TalkState`]: [`BridgeState`] on the
//! bridge's channel state and leases), and the [`TokenManager`] that hands out a valid access
//! token and refreshes it once for everybody who needs it.
//!
//! Refresh is single-flight at two levels: a `tokio` mutex per account inside the process, and a
//! named lock ([`TalkState::try_lock`], the store's lease) across processes. Whoever gets the
//! lock first re-reads the stored token (another process may just have refreshed) before calling
//! kauth, because Kakao limits issuance to 30 refresh tokens per hour and rotates refresh tokens:
//! two concurrent refreshes could invalidate each other.

use super::error::TalkError;
use super::oauth::{OAuthClient, TokenResponse};
use async_trait::async_trait;
use clawbridge_channel::Bridge;
use clawbridge_channel::cli::{SecretError, Secrets};
use clawbridge_core::EpochMs;
use clawbridge_core::time::{MINUTE_MS, SECOND_MS};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN_MS: EpochMs = 5 * MINUTE_MS;
/// How long a process may hold the cross-process refresh lock: longer than the token endpoint's
/// worst case (three attempts of at most 10 s each, plus pauses), so it cannot lapse mid-refresh.
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(60);
/// How long to wait for another process's refresh before giving up.
const REFRESH_WAIT: Duration = Duration::from_secs(65);

/// The current time in epoch milliseconds (core's one `now_ms`, re-exported for this module's users).
pub use clawbridge_core::clock::now_ms;

/// The tokens of one logged-in Kakao account. `Debug` never shows the tokens.
#[derive(Clone)]
pub struct OAuthToken {
    /// The Bearer token of kapi calls.
    pub access_token: SecretString,
    /// When it expires.
    pub expires_at: EpochMs,
    /// The refresh token.
    pub refresh_token: Option<SecretString>,
    /// When the refresh token expires.
    pub refresh_expires_at: Option<EpochMs>,
    /// Granted consent items.
    pub scopes: Vec<String>,
    /// The Kakao user id (from `/v2/user/me` at login), the sender in the quota guard.
    pub user_id: Option<i64>,
    /// The user's nickname at login, for `kakao token`.
    pub nickname: Option<String>,
    /// When the access token was issued.
    pub issued_at: EpochMs,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("access_token", &"***")
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("scopes", &self.scopes)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct StoredRef<'a> {
    access_token: &'a str,
    expires_at: EpochMs,
    refresh_token: Option<&'a str>,
    refresh_expires_at: Option<EpochMs>,
    scopes: &'a [String],
    user_id: Option<i64>,
    nickname: Option<&'a str>,
    issued_at: EpochMs,
}

#[derive(Deserialize)]
struct Stored {
    access_token: String,
    expires_at: EpochMs,
    refresh_token: Option<String>,
    refresh_expires_at: Option<EpochMs>,
    #[serde(default)]
    scopes: Vec<String>,
    user_id: Option<i64>,
    nickname: Option<String>,
    #[serde(default)]
    issued_at: EpochMs,
}

impl OAuthToken {
    /// Builds the token from kauth's answer. A refresh answer carries a refresh token only when
    /// it rotated; otherwise the `previous` refresh token (and its expiry) stays valid and is kept.
    pub fn from_response(response: TokenResponse, now: EpochMs, previous: Option<&OAuthToken>) -> Self {
        let (refresh_token, refresh_expires_at) = match response.refresh_token {
            Some(token) => (
                Some(SecretString::from(token)),
                response.refresh_token_expires_in.map(|s| now.saturating_add(s.saturating_mul(SECOND_MS))),
            ),
            None => (previous.and_then(|p| p.refresh_token.clone()), previous.and_then(|p| p.refresh_expires_at)),
        };
        let scopes = match response.scope.as_deref() {
            Some(scope) => split_scopes(scope),
            None => previous.map(|p| p.scopes.clone()).unwrap_or_default(),
        };
        Self {
            access_token: SecretString::from(response.access_token),
            expires_at: now.saturating_add(response.expires_in.saturating_mul(SECOND_MS)),
            refresh_token,
            refresh_expires_at,
            scopes,
            user_id: previous.and_then(|p| p.user_id),
            nickname: previous.and_then(|p| p.nickname.clone()),
            issued_at: now,
        }
    }

    /// Whether the access token expires within [`REFRESH_MARGIN_MS`].
    pub fn needs_refresh(&self, now: EpochMs) -> bool {
        self.expires_at.saturating_sub(REFRESH_MARGIN_MS) <= now
    }

    /// The plaintext JSON that a [`TokenStore`] encrypts. Zeroised on drop.
    pub fn to_plaintext(&self) -> Zeroizing<String> {
        let stored = StoredRef {
            access_token: self.access_token.expose_secret(),
            expires_at: self.expires_at,
            refresh_token: self.refresh_token.as_ref().map(ExposeSecret::expose_secret),
            refresh_expires_at: self.refresh_expires_at,
            scopes: &self.scopes,
            user_id: self.user_id,
            nickname: self.nickname.as_deref(),
            issued_at: self.issued_at,
        };
        Zeroizing::new(serde_json::to_string(&stored).unwrap_or_default())
    }

    /// Parses what [`to_plaintext`](Self::to_plaintext) wrote.
    ///
    /// # Errors
    /// [`TalkError::Storage`] when it is not a stored token.
    pub fn from_plaintext(text: &str) -> Result<Self, TalkError> {
        let s: Stored = serde_json::from_str(text)
            .map_err(|e| TalkError::Storage(format!("stored Kakao token is unreadable: {e}")))?;
        Ok(Self {
            access_token: SecretString::from(s.access_token),
            expires_at: s.expires_at,
            refresh_token: s.refresh_token.map(SecretString::from),
            refresh_expires_at: s.refresh_expires_at,
            scopes: s.scopes,
            user_id: s.user_id,
            nickname: s.nickname,
            issued_at: s.issued_at,
        })
    }

    fn same_access(&self, other: &SecretString) -> bool {
        use subtle::ConstantTimeEq;
        self.access_token.expose_secret().as_bytes().ct_eq(other.expose_secret().as_bytes()).into()
    }
}

/// Splits kauth's `scope` (space-separated; commas tolerated).
pub fn split_scopes(scope: &str) -> Vec<String> {
    scope.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Where tokens are kept, encrypted ([`SecretTokenStore`]; [`MemoryTokenStore`] in tests).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The tokens of `account`, if logged in.
    async fn load(&self, account: &str) -> Result<Option<OAuthToken>, TalkError>;
    /// Stores (replaces) the tokens of `account`.
    async fn save(&self, account: &str, token: &OAuthToken) -> Result<(), TalkError>;
    /// Deletes them; `true` when there were some.
    async fn delete(&self, account: &str) -> Result<bool, TalkError>;
}

/// Small durable values (the quota ledger, the friends cache) and named locks shared by all
/// processes using the same store ([`BridgeState`]; [`MemoryState`] in tests).
#[async_trait]
pub trait TalkState: Send + Sync {
    /// A live value.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, TalkError>;
    /// Writes a value that expires after `ttl` (`None`: kept until overwritten).
    async fn put(&self, namespace: &str, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), TalkError>;
    /// Takes (or renews) the lock `name` for `ttl`: `true` when this process holds it.
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<bool, TalkError>;
    /// Releases the lock `name` if this process holds it.
    async fn unlock(&self, name: &str) -> Result<(), TalkError>;
}

/// The secrets namespace of Kakao Login tokens: account `default` is `kakao.oauth/default`.
pub const TOKEN_SECRETS: &str = "kakao.oauth";

/// [`TokenStore`] on the bridge's secrets (ciphertext files in the credentials dir, or the
/// store's secret table), one secret per account.
pub struct SecretTokenStore {
    secrets: Arc<dyn Secrets>,
}

impl fmt::Debug for SecretTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretTokenStore").field("location", &self.secrets.location()).finish()
    }
}

impl SecretTokenStore {
    /// Tokens in `secrets` (opened under [`TOKEN_SECRETS`]).
    pub fn new(secrets: Arc<dyn Secrets>) -> Self {
        Self { secrets }
    }
}

/// The secret's problem in the words of Kakao's settings.
fn secret_error(e: SecretError) -> TalkError {
    TalkError::Storage(match e {
        SecretError::Dir { dir, error } => format!(
            "cannot create the Kakao credentials dir {}: {error}; set KAKAO_CREDENTIALS_DIR (kakao.oauth.credentialsDir) \
             to a writable directory",
            dir.display()
        ),
        SecretError::Undecryptable { location, error } => {
            format!("{location}: {error}; if the master key changed, run `clawbridge kakao login` again")
        }
        SecretError::Unavailable(reason) => reason,
    })
}

#[async_trait]
impl TokenStore for SecretTokenStore {
    async fn load(&self, account: &str) -> Result<Option<OAuthToken>, TalkError> {
        let Some(secret) = self.secrets.get(account).await.map_err(secret_error)? else {
            return Ok(None);
        };
        OAuthToken::from_plaintext(secret.expose_secret()).map(Some)
    }

    async fn save(&self, account: &str, token: &OAuthToken) -> Result<(), TalkError> {
        let secret = SecretString::from(token.to_plaintext().as_str());
        self.secrets.put(account, &secret).await.map_err(secret_error)
    }

    async fn delete(&self, account: &str) -> Result<bool, TalkError> {
        self.secrets.delete(account).await.map_err(secret_error)
    }
}

/// [`TalkState`] on the bridge: values in its channel state (the quota ledger and the friends
/// cache are JSON text already, stored as they are), locks as its leases, held by this process.
pub struct BridgeState {
    bridge: Arc<dyn Bridge>,
}

impl fmt::Debug for BridgeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeState").finish_non_exhaustive()
    }
}

impl BridgeState {
    /// State through `bridge`.
    pub fn new(bridge: Arc<dyn Bridge>) -> Self {
        Self { bridge }
    }
}

fn bridge_error(e: clawbridge_channel::BridgeError) -> TalkError {
    TalkError::Storage(e.0)
}

fn ttl_ms(ttl: Duration) -> EpochMs {
    EpochMs::try_from(ttl.as_millis()).unwrap_or(EpochMs::MAX)
}

#[async_trait]
impl TalkState for BridgeState {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, TalkError> {
        self.bridge.state_get(namespace, key).await.map_err(bridge_error)
    }

    async fn put(&self, namespace: &str, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), TalkError> {
        self.bridge.state_put(namespace, key, value, ttl.map(ttl_ms), false).await.map(drop).map_err(bridge_error)
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<bool, TalkError> {
        self.bridge.lease(name, ttl_ms(ttl)).await.map_err(bridge_error)
    }

    async fn unlock(&self, name: &str) -> Result<(), TalkError> {
        self.bridge.release_lease(name).await.map_err(bridge_error)
    }
}

/// Tokens in memory (tests, and callers that bring their own persistence).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, OAuthToken>>,
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, account: &str) -> Result<Option<OAuthToken>, TalkError> {
        Ok(self.tokens.lock().map_err(|_| poisoned())?.get(account).cloned())
    }
    async fn save(&self, account: &str, token: &OAuthToken) -> Result<(), TalkError> {
        self.tokens.lock().map_err(|_| poisoned())?.insert(account.to_owned(), token.clone());
        Ok(())
    }
    async fn delete(&self, account: &str) -> Result<bool, TalkError> {
        Ok(self.tokens.lock().map_err(|_| poisoned())?.remove(account).is_some())
    }
}

fn poisoned() -> TalkError {
    TalkError::Storage("a lock was poisoned by a panic".to_owned())
}

#[derive(Debug, Default)]
struct SharedMemory {
    values: HashMap<(String, String), (String, Option<EpochMs>)>,
    locks: HashMap<String, (u64, EpochMs)>,
}

/// [`TalkState`] in memory. Instances made with [`MemoryState::another_process`] share the
/// values and contend for the locks like two processes on one database.
#[derive(Debug, Clone)]
pub struct MemoryState {
    shared: Arc<Mutex<SharedMemory>>,
    holder: u64,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self { shared: Arc::default(), holder: 1 }
    }
}

impl MemoryState {
    /// A view of the same state as another lock holder.
    pub fn another_process(&self) -> Self {
        let mut holder = self.holder + 1;
        if let Ok(shared) = self.shared.lock() {
            holder = shared.locks.values().map(|(h, _)| *h).max().unwrap_or(self.holder).max(self.holder) + 1;
        }
        Self { shared: self.shared.clone(), holder }
    }
}

#[async_trait]
impl TalkState for MemoryState {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, TalkError> {
        let shared = self.shared.lock().map_err(|_| poisoned())?;
        let now = now_ms();
        Ok(shared
            .values
            .get(&(namespace.to_owned(), key.to_owned()))
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(v, _)| v.clone()))
    }
    async fn put(&self, namespace: &str, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), TalkError> {
        let expires = ttl.map(|t| now_ms().saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)));
        self.shared
            .lock()
            .map_err(|_| poisoned())?
            .values
            .insert((namespace.to_owned(), key.to_owned()), (value.to_owned(), expires));
        Ok(())
    }
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<bool, TalkError> {
        let mut shared = self.shared.lock().map_err(|_| poisoned())?;
        let now = now_ms();
        let free = shared.locks.get(name).is_none_or(|(holder, until)| *holder == self.holder || *until < now);
        if free {
            let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
            shared.locks.insert(name.to_owned(), (self.holder, until));
        }
        Ok(free)
    }
    async fn unlock(&self, name: &str) -> Result<(), TalkError> {
        let mut shared = self.shared.lock().map_err(|_| poisoned())?;
        if shared.locks.get(name).is_some_and(|(holder, _)| *holder == self.holder) {
            shared.locks.remove(name);
        }
        Ok(())
    }
}

/// Hands out valid access tokens of one account and refreshes them, once, for everybody.
pub struct TokenManager {
    account: String,
    oauth: OAuthClient,
    store: Arc<dyn TokenStore>,
    state: Arc<dyn TalkState>,
    current: tokio::sync::Mutex<Option<OAuthToken>>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager").field("account", &self.account).finish_non_exhaustive()
    }
}

/// Access-token refreshes by `result` (`ok`, `login_required`, `error`).
pub const REFRESHES_TOTAL: &str = "clawbridge_kakao_token_refreshes_total";
/// When each account's refresh token expires (Unix seconds), labelled `account` (a configured
/// account name): after it, `kakao login` is needed again.
pub const REFRESH_EXPIRES_AT: &str = "clawbridge_kakao_refresh_token_expires_at_seconds";

impl TokenManager {
    /// The manager of `account`.
    pub fn new(
        account: impl Into<String>,
        oauth: OAuthClient,
        store: Arc<dyn TokenStore>,
        state: Arc<dyn TalkState>,
    ) -> Self {
        Self { account: account.into(), oauth, store, state, current: tokio::sync::Mutex::new(None) }
    }

    /// The account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The stored tokens (read again from the store).
    ///
    /// # Errors
    /// [`TalkError::NotLoggedIn`] or a storage error.
    pub async fn stored(&self) -> Result<OAuthToken, TalkError> {
        let token = self.store.load(&self.account).await?.ok_or_else(|| self.not_logged_in())?;
        self.observe(&token);
        *self.current.lock().await = Some(token.clone());
        Ok(token)
    }

    /// A valid access token: the stored one, or a refreshed one when it expires within
    /// [`REFRESH_MARGIN_MS`].
    ///
    /// # Errors
    /// [`TalkError::NotLoggedIn`], [`TalkError::LoginRequired`] when the refresh token is no longer
    /// valid, or a network/storage error.
    pub async fn access_token(&self) -> Result<SecretString, TalkError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = self.store.load(&self.account).await?;
            if let Some(token) = current.as_ref() {
                self.observe(token);
            }
        }
        let token = current.clone().ok_or_else(|| self.not_logged_in())?;
        if !token.needs_refresh(now_ms()) {
            return Ok(token.access_token);
        }
        let fresh = self.refresh_single_flight(&token).await?;
        let access = fresh.access_token.clone();
        *current = Some(fresh);
        Ok(access)
    }

    /// Called after kapi answered `-401` to `rejected`: refreshes unless another caller already
    /// did (then its token is returned), so a burst of `-401`s makes one refresh.
    ///
    /// # Errors
    /// As [`access_token`](Self::access_token).
    pub async fn refresh_after_rejection(&self, rejected: &SecretString) -> Result<SecretString, TalkError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = self.store.load(&self.account).await?;
            if let Some(token) = current.as_ref() {
                self.observe(token);
            }
        }
        let token = current.clone().ok_or_else(|| self.not_logged_in())?;
        if !token.same_access(rejected) {
            return Ok(token.access_token);
        }
        let fresh = self.refresh_single_flight(&token).await?;
        let access = fresh.access_token.clone();
        *current = Some(fresh);
        Ok(access)
    }

    /// Forces a refresh now (`kakao token --refresh`).
    ///
    /// # Errors
    /// As [`access_token`](Self::access_token).
    pub async fn refresh_now(&self) -> Result<OAuthToken, TalkError> {
        let mut current = self.current.lock().await;
        let token = self.store.load(&self.account).await?.ok_or_else(|| self.not_logged_in())?;
        let fresh = self.refresh_single_flight(&token).await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets the tokens in memory (after logout).
    pub async fn forget(&self) {
        *self.current.lock().await = None;
    }

    /// Refreshes `stale` while holding the cross-process lock; the caller holds the in-process mutex.
    async fn refresh_single_flight(&self, stale: &OAuthToken) -> Result<OAuthToken, TalkError> {
        let lock = format!("kakao.oauth.refresh/{}", self.account);
        let started = tokio::time::Instant::now();
        while !self.state.try_lock(&lock, REFRESH_LOCK_TTL).await? {
            // Another process is refreshing: its result lands in the store.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(stored) = self.store.load(&self.account).await?
                && !stored.same_access(&stale.access_token)
            {
                return Ok(stored);
            }
            if started.elapsed() > REFRESH_WAIT {
                return Err(TalkError::Unavailable {
                    reason: "another process holds the Kakao token refresh lock".to_owned(),
                    attempts: 1,
                });
            }
        }
        let result = self.refresh_holding_lock(stale).await;
        if let Err(e) = self.state.unlock(&lock).await {
            tracing::warn!(error = %e, "could not release the Kakao refresh lock; it expires by itself");
        }
        result
    }

    async fn refresh_holding_lock(&self, stale: &OAuthToken) -> Result<OAuthToken, TalkError> {
        // Another process may have refreshed between our read and our lock.
        let stored = self.store.load(&self.account).await?;
        if let Some(stored) = &stored
            && !stored.same_access(&stale.access_token)
        {
            return Ok(stored.clone());
        }
        let base = stored.unwrap_or_else(|| stale.clone());
        let now = now_ms();
        let Some(refresh_token) = base.refresh_token.clone() else {
            return Err(self.login_required("no refresh token is stored"));
        };
        if base.refresh_expires_at.is_some_and(|at| at <= now) {
            return Err(self.login_required("the refresh token expired"));
        }
        let refreshes = |result: &'static str| metrics::counter!(REFRESHES_TOTAL, "result" => result).increment(1);
        let response = match self.oauth.refresh(&refresh_token).await {
            Ok(response) => response,
            Err(TalkError::OAuth(e)) if e.needs_login() => {
                refreshes("login_required");
                return Err(self.login_required(&e.to_string()));
            }
            Err(e) => {
                refreshes("error");
                return Err(e);
            }
        };
        refreshes("ok");
        let fresh = OAuthToken::from_response(response, now, Some(&base));
        self.store.save(&self.account, &fresh).await?;
        self.observe(&fresh);
        tracing::info!(account = %self.account, rotated = fresh.refresh_expires_at != base.refresh_expires_at, "refreshed the Kakao access token");
        Ok(fresh)
    }

    /// When the refresh token stops working, for the "log in again soon" alert.
    fn observe(&self, token: &OAuthToken) {
        if let Some(at) = token.refresh_expires_at {
            metrics::gauge!(REFRESH_EXPIRES_AT, "account" => self.account.clone()).set(at as f64 / 1000.0);
        }
    }

    fn not_logged_in(&self) -> TalkError {
        TalkError::NotLoggedIn { account: self.account.clone() }
    }

    fn login_required(&self, reason: &str) -> TalkError {
        TalkError::LoginRequired { account: self.account.clone(), reason: reason.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> TokenResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn refresh_keeps_the_old_refresh_token_unless_rotated() {
        let first = OAuthToken::from_response(
            response(
                r#"{"access_token":"a1","refresh_token":"r1","expires_in":21599,"refresh_token_expires_in":5183999,"scope":"talk_message friends"}"#,
            ),
            1_000,
            None,
        );
        assert_eq!(first.expires_at, 1_000 + 21_599_000);
        assert_eq!(first.refresh_expires_at, Some(1_000 + 5_183_999_000));
        assert_eq!(first.scopes, ["talk_message", "friends"]);
        let kept =
            OAuthToken::from_response(response(r#"{"access_token":"a2","expires_in":21599}"#), 2_000, Some(&first));
        assert_eq!(kept.refresh_token.as_ref().unwrap().expose_secret(), "r1");
        assert_eq!(kept.refresh_expires_at, first.refresh_expires_at);
        assert_eq!(kept.scopes, first.scopes);
        let rotated = OAuthToken::from_response(
            response(r#"{"access_token":"a3","refresh_token":"r2","expires_in":21599,"refresh_token_expires_in":100}"#),
            3_000,
            Some(&kept),
        );
        assert_eq!(rotated.refresh_token.as_ref().unwrap().expose_secret(), "r2");
        assert_eq!(rotated.refresh_expires_at, Some(103_000));
    }

    #[test]
    fn plaintext_round_trip_and_redacted_debug() {
        let mut token = OAuthToken::from_response(
            response(r#"{"access_token":"AT-x","refresh_token":"RT-y","expires_in":10,"refresh_token_expires_in":20}"#),
            0,
            None,
        );
        token.user_id = Some(7);
        let text = token.to_plaintext();
        let back = OAuthToken::from_plaintext(&text).unwrap();
        assert_eq!(back.access_token.expose_secret(), "AT-x");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "RT-y");
        assert_eq!(back.user_id, Some(7));
        let dbg = format!("{token:?}");
        assert!(!dbg.contains("AT-x") && !dbg.contains("RT-y"), "{dbg}");
    }

    #[tokio::test]
    async fn memory_locks_behave_like_leases() {
        let a = MemoryState::default();
        let b = a.another_process();
        assert!(a.try_lock("l", Duration::from_secs(10)).await.unwrap());
        assert!(a.try_lock("l", Duration::from_secs(10)).await.unwrap(), "renewal by the holder");
        assert!(!b.try_lock("l", Duration::from_secs(10)).await.unwrap());
        b.unlock("l").await.unwrap();
        assert!(!b.try_lock("l", Duration::from_secs(10)).await.unwrap(), "only the holder unlocks");
        a.unlock("l").await.unwrap();
        assert!(b.try_lock("l", Duration::from_secs(10)).await.unwrap());
        a.put("ns", "k", "v", None).await.unwrap();
        assert_eq!(b.get("ns", "k").await.unwrap().as_deref(), Some("v"));
    }
}
