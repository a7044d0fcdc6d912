//! Where `clawbridge kakao …` keeps Kakao Login tokens and its small state, on top of the
//! store crate:
//!
//! - [`FileTokenStore`]: one ciphertext file per account (`<account>.tokens`, mode 0600) in the
//!   credentials dir (`~/.openclaw/credentials/kakao/`, the design seed's location), encrypted
//!   with the master key (XChaCha20-Poly1305, the account's name as associated data, so a file
//!   copied to another account's name does not decrypt).
//! - [`DbTokenStore`]: the store's secret table through [`SecretBox`], for replicas that share a
//!   PostgreSQL database.
//! - [`StoreTalkState`]: the quota ledger and friends cache in the store's channel state, and
//!   the refresh/quota locks as store leases, so several processes (PostgreSQL replicas, or CLI
//!   runs beside the daemon on SQLite) refresh once and count quotas together.

use crate::config::Config;
use crate::util::{now_ms, worker_id};
use async_trait::async_trait;
use clawbridge_kakao::talk::{OAuthToken, TalkError, TalkState, TokenStore};
use clawbridge_store::{MasterKey, SecretBox, SharedStore, StatePut};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The master key of this installation (`CLAWBRIDGE_MASTER_KEY` or `<state dir>/master.key`).
///
/// # Errors
/// The store's configuration error, with the fix.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    config.ensure_state_dir()?;
    let env_key = config.bridge.master_key.as_ref().map(|k| k.expose_secret().to_owned());
    Ok(MasterKey::from_env_or_file(env_key.as_deref(), &config.bridge.state_dir)?)
}

/// Account names become file names and store keys: letters, digits, `-`, `_`, `.`.
///
/// # Errors
/// A message with the rule.
pub fn check_account(account: &str) -> anyhow::Result<()> {
    let ok = !account.is_empty()
        && account.len() <= 64
        && !account.starts_with('.')
        && account.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    anyhow::ensure!(ok, "--account {account:?}: use 1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')");
    Ok(())
}

fn secret_name(account: &str) -> String {
    format!("kakao.oauth/{account}")
}

/// Ciphertext files in the credentials dir.
#[derive(Debug)]
pub struct FileTokenStore {
    dir: PathBuf,
    key: MasterKey,
}

impl FileTokenStore {
    /// Token files in `dir`, encrypted with `key`.
    pub fn new(dir: impl Into<PathBuf>, key: MasterKey) -> Self {
        Self { dir: dir.into(), key }
    }

    /// The file of `account`.
    pub fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.tokens"))
    }

    fn ensure_dir(&self) -> Result<(), TalkError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|e| {
            TalkError::Storage(format!(
                "cannot create the Kakao credentials dir {}: {e}; set KAKAO_CREDENTIALS_DIR (kakao.oauth.credentialsDir) \
                 to a writable directory",
                self.dir.display()
            ))
        })?;
        let meta = std::fs::metadata(&self.dir).map_err(|e| storage(&self.dir, &e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            // Only ciphertext lives here, but the directory listing (account names) is private too.
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn storage(path: &Path, e: &std::io::Error) -> TalkError {
    TalkError::Storage(format!("{}: {e}", path.display()))
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, account: &str) -> Result<Option<OAuthToken>, TalkError> {
        let path = self.path(account);
        let blob = match tokio::fs::read(&path).await {
            Ok(blob) => blob,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage(&path, &e)),
        };
        let plain = self.key.decrypt(&secret_name(account), &blob).map_err(|e| {
            TalkError::Storage(format!(
                "{}: {e}; if the master key changed, run `clawbridge kakao login` again",
                path.display()
            ))
        })?;
        let text =
            std::str::from_utf8(&plain).map_err(|_| TalkError::Storage(format!("{}: not UTF-8", path.display())))?;
        OAuthToken::from_plaintext(text).map(Some)
    }

    async fn save(&self, account: &str, token: &OAuthToken) -> Result<(), TalkError> {
        self.ensure_dir()?;
        let plain = token.to_plaintext();
        let blob =
            self.key.encrypt(&secret_name(account), plain.as_bytes()).map_err(|e| TalkError::Storage(e.to_string()))?;
        let path = self.path(account);
        let mut unique = [0u8; 6];
        getrandom::fill(&mut unique).map_err(|e| TalkError::Storage(format!("no randomness: {e}")))?;
        let tmp = self.dir.join(format!(".{account}.tokens.{}.tmp", hex_of(&unique)));
        let (target, temp) = (path.clone(), tmp.clone());
        let write = move || -> std::io::Result<()> {
            let mut file =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
            file.write_all(&blob)?;
            file.sync_all()?;
            // Atomic replace: a reader sees the old or the new tokens, never half of them.
            std::fs::rename(&temp, &target)
        };
        let result =
            tokio::task::spawn_blocking(write).await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            storage(&path, &e)
        })
    }

    async fn delete(&self, account: &str) -> Result<bool, TalkError> {
        let path = self.path(account);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage(&path, &e)),
        }
    }
}

/// Tokens in the store's secret table (ciphertext).
#[derive(Debug)]
pub struct DbTokenStore {
    secrets: SecretBox,
}

impl DbTokenStore {
    /// Tokens in `store`, encrypted with `key`.
    pub fn new(key: MasterKey, store: SharedStore) -> Self {
        Self { secrets: SecretBox::new(key, store) }
    }
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn load(&self, account: &str) -> Result<Option<OAuthToken>, TalkError> {
        let Some(secret) =
            self.secrets.get(&secret_name(account)).await.map_err(|e| TalkError::Storage(e.to_string()))?
        else {
            return Ok(None);
        };
        OAuthToken::from_plaintext(secret.expose_secret()).map(Some)
    }

    async fn save(&self, account: &str, token: &OAuthToken) -> Result<(), TalkError> {
        let plain = token.to_plaintext();
        let secret = SecretString::from(plain.as_str().to_owned());
        self.secrets.put(&secret_name(account), &secret, now_ms()).await.map_err(|e| TalkError::Storage(e.to_string()))
    }

    async fn delete(&self, account: &str) -> Result<bool, TalkError> {
        self.secrets.delete(&secret_name(account)).await.map_err(|e| TalkError::Storage(e.to_string()))
    }
}

/// [`TalkState`] on the store's channel state and leases.
pub struct StoreTalkState {
    store: SharedStore,
    holder: String,
}

impl std::fmt::Debug for StoreTalkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTalkState").field("backend", &self.store.backend()).field("holder", &self.holder).finish()
    }
}

impl StoreTalkState {
    /// State in `store`; this process holds locks under a unique holder id.
    pub fn new(store: SharedStore) -> Self {
        Self { store, holder: worker_id() }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn store_error(e: clawbridge_store::StoreError) -> TalkError {
    TalkError::Storage(e.to_string())
}

#[async_trait]
impl TalkState for StoreTalkState {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, TalkError> {
        self.store.get_state(namespace, key, now_ms()).await.map_err(store_error)
    }

    async fn put(&self, namespace: &str, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), TalkError> {
        let now = now_ms();
        let entry = StatePut { namespace, key, value, expires_at: ttl.map(|t| now.saturating_add(millis(t))) };
        self.store.put_state(&entry, false, now).await.map(|_| ()).map_err(store_error)
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<bool, TalkError> {
        self.store.try_lease(name, &self.holder, millis(ttl), now_ms()).await.map_err(store_error)
    }

    async fn unlock(&self, name: &str) -> Result<(), TalkError> {
        self.store.release_lease(name, &self.holder).await.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawbridge_kakao::talk::oauth::TokenResponse;

    fn token() -> OAuthToken {
        let response: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ACCESS-0123456789","refresh_token":"REFRESH-0123456789","expires_in":21599,"refresh_token_expires_in":5183999,"scope":"talk_message"}"#,
        )
        .unwrap();
        OAuthToken::from_response(response, 1_000, None)
    }

    #[tokio::test]
    async fn files_hold_only_ciphertext_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        let store = FileTokenStore::new(&creds, MasterKey::generate().unwrap());
        assert!(store.load("default").await.unwrap().is_none());
        store.save("default", &token()).await.unwrap();
        let bytes = std::fs::read(store.path("default")).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("ACCESS-0123456789") && !text.contains("REFRESH-0123456789"));
        assert_eq!(std::fs::metadata(store.path("default")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o700);
        let back = store.load("default").await.unwrap().unwrap();
        assert_eq!(back.access_token.expose_secret(), "ACCESS-0123456789");
        // A file copied under another account's name does not decrypt.
        std::fs::copy(store.path("default"), store.path("other")).unwrap();
        assert!(store.load("other").await.is_err());
        // Another key cannot read it.
        let wrong = FileTokenStore::new(&creds, MasterKey::generate().unwrap());
        assert!(wrong.load("default").await.unwrap_err().to_string().contains("kakao login"));
        assert!(store.delete("default").await.unwrap());
        assert!(!store.delete("default").await.unwrap());
    }

    #[tokio::test]
    async fn database_tokens_and_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = clawbridge_store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let tokens = DbTokenStore::new(MasterKey::generate().unwrap(), db.clone());
        tokens.save("a", &token()).await.unwrap();
        assert_eq!(tokens.load("a").await.unwrap().unwrap().access_token.expose_secret(), "ACCESS-0123456789");
        assert!(tokens.delete("a").await.unwrap());
        let one = StoreTalkState::new(db.clone());
        let two = StoreTalkState::new(db);
        one.put("ns", "k", "v", Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(two.get("ns", "k").await.unwrap().as_deref(), Some("v"));
        assert!(one.try_lock("l", Duration::from_secs(30)).await.unwrap());
        assert!(!two.try_lock("l", Duration::from_secs(30)).await.unwrap());
        one.unlock("l").await.unwrap();
        assert!(two.try_lock("l", Duration::from_secs(30)).await.unwrap());
        assert!(check_account("work-2").is_ok());
        assert!(check_account("../x").is_err() && check_account("").is_err() && check_account(".hidden").is_err());
    }
}
