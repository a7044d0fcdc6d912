//! The [`Secrets`] port of channel commands, encrypted with this installation's master key so no
//! channel crate ever sees the key:
//!
//! - [`FileSecrets`]: one ciphertext file per name (`<dir>/<name>.<extension>`, mode 0600, the
//!   dir 0700) — Kakao Login's tokens in `~/.openclaw/credentials/kakao/`, the design seed's
//!   location. XChaCha20-Poly1305 with `<namespace>/<name>` as associated data, so a file copied
//!   to another name does not decrypt.
//! - [`StoreSecrets`]: the store's secret table through [`SecretBox`], for replicas that share
//!   a PostgreSQL database.

use crate::config::Config;
use crate::util::now_ms;
use async_trait::async_trait;
use clawbridge_channel::cli::{SecretError, Secrets};
use clawbridge_store::{MasterKey, SecretBox, SharedStore};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The master key of this installation (`CLAWBRIDGE_MASTER_KEY` or `<state dir>/master.key`).
///
/// # Errors
/// The state dir or the key cannot be read, with the fix.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    config.ensure_state_dir()?;
    let env_key = config.bridge.master_key.as_ref().map(|k| k.expose_secret().to_owned());
    Ok(MasterKey::from_env_or_file(env_key.as_deref(), &config.bridge.state_dir)?)
}

/// Ciphertext files in a directory.
#[derive(Debug)]
pub struct FileSecrets {
    dir: PathBuf,
    extension: String,
    namespace: &'static str,
    key: MasterKey,
}

impl FileSecrets {
    /// Secrets of `namespace` in `dir`, one `<name>.<extension>` file each, encrypted with `key`.
    pub fn new(dir: impl Into<PathBuf>, extension: &str, namespace: &'static str, key: MasterKey) -> Self {
        Self { dir: dir.into(), extension: extension.to_owned(), namespace, key }
    }

    /// The file of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{}", self.extension))
    }

    /// The file of `name`, refusing a name that would leave the directory or hide the file
    /// (the channel checks its names first; this is the last line).
    fn file(&self, name: &str) -> Result<PathBuf, SecretError> {
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
        if plain { Ok(self.path(name)) } else { Err(SecretError::Unavailable(format!("{name:?} is not a file name"))) }
    }

    fn ensure_dir(&self) -> Result<(), SecretError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|error| SecretError::Dir { dir: self.dir.clone(), error })?;
        let meta = std::fs::metadata(&self.dir).map_err(|e| io_error(&self.dir, &e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            // Only ciphertext lives here, but the directory listing (the names) is private too.
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }
}

fn associated_data(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_error(path: &Path, e: &std::io::Error) -> SecretError {
    SecretError::Unavailable(format!("{}: {e}", path.display()))
}

#[async_trait]
impl Secrets for FileSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError> {
        let path = self.file(name)?;
        let blob = match tokio::fs::read(&path).await {
            Ok(blob) => blob,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, &e)),
        };
        let plain = self
            .key
            .decrypt(&associated_data(self.namespace, name), &blob)
            .map_err(|e| SecretError::Undecryptable { location: path.display().to_string(), error: e.to_string() })?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| SecretError::Unavailable(format!("{}: not UTF-8", path.display())))?;
        Ok(Some(SecretString::from(text)))
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        let path = self.file(name)?;
        self.ensure_dir()?;
        let blob = self
            .key
            .encrypt(&associated_data(self.namespace, name), value.expose_secret().as_bytes())
            .map_err(|e| SecretError::Unavailable(e.to_string()))?;
        let mut unique = [0u8; 6];
        getrandom::fill(&mut unique).map_err(|e| SecretError::Unavailable(format!("no randomness: {e}")))?;
        let tmp = self.dir.join(format!(".{name}.{}.{}.tmp", self.extension, hex_of(&unique)));
        let (target, temp) = (path.clone(), tmp.clone());
        let write = move || -> std::io::Result<()> {
            let mut file =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
            file.write_all(&blob)?;
            file.sync_all()?;
            // Atomic replace: a reader sees the old or the new value, never half of it.
            std::fs::rename(&temp, &target)
        };
        let result =
            tokio::task::spawn_blocking(write).await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error(&path, &e)
        })
    }

    async fn delete(&self, name: &str) -> Result<bool, SecretError> {
        let path = self.file(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&path, &e)),
        }
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Secrets in the store's secret table (ciphertext).
#[derive(Debug)]
pub struct StoreSecrets {
    secrets: SecretBox,
    namespace: &'static str,
    backend: &'static str,
}

impl StoreSecrets {
    /// Secrets of `namespace` in `store`, encrypted with `key`.
    pub fn new(key: MasterKey, store: SharedStore, namespace: &'static str) -> Self {
        Self { backend: store.backend(), secrets: SecretBox::new(key, store), namespace }
    }
}

fn store_error(e: clawbridge_store::StoreError) -> SecretError {
    SecretError::Unavailable(e.to_string())
}

#[async_trait]
impl Secrets for StoreSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError> {
        self.secrets.get(&associated_data(self.namespace, name)).await.map_err(store_error)
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        self.secrets.put(&associated_data(self.namespace, name), value, now_ms()).await.map_err(store_error)
    }

    async fn delete(&self, name: &str) -> Result<bool, SecretError> {
        self.secrets.delete(&associated_data(self.namespace, name)).await.map_err(store_error)
    }

    fn location(&self) -> String {
        format!("the {} store (encrypted)", self.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawbridge_kakao::talk::oauth::TokenResponse;
    use clawbridge_kakao::talk::{OAuthToken, SecretTokenStore, TOKEN_SECRETS, TokenStore};
    use std::sync::Arc;

    fn token() -> OAuthToken {
        let response: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ACCESS-0123456789","refresh_token":"REFRESH-0123456789","expires_in":21599,"refresh_token_expires_in":5183999,"scope":"talk_message"}"#,
        )
        .unwrap();
        OAuthToken::from_response(response, 1_000, None)
    }

    fn files(dir: &Path, key: MasterKey) -> Arc<FileSecrets> {
        Arc::new(FileSecrets::new(dir, "tokens", TOKEN_SECRETS, key))
    }

    #[tokio::test]
    async fn files_hold_only_ciphertext_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        let secrets = files(&creds, MasterKey::generate().unwrap());
        let store = SecretTokenStore::new(secrets.clone());
        assert!(store.load("default").await.unwrap().is_none());
        store.save("default", &token()).await.unwrap();
        let bytes = std::fs::read(secrets.path("default")).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("ACCESS-0123456789") && !text.contains("REFRESH-0123456789"));
        assert_eq!(std::fs::metadata(secrets.path("default")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(secrets.path("default"), creds.join("default.tokens"), "the file name of earlier versions");
        let back = store.load("default").await.unwrap().unwrap();
        assert_eq!(back.access_token.expose_secret(), "ACCESS-0123456789");
        // A file copied under another account's name does not decrypt.
        std::fs::copy(secrets.path("default"), secrets.path("other")).unwrap();
        assert!(store.load("other").await.is_err());
        // Another key cannot read it.
        let wrong = SecretTokenStore::new(files(&creds, MasterKey::generate().unwrap()));
        assert!(wrong.load("default").await.unwrap_err().to_string().contains("kakao login"));
        assert!(store.delete("default").await.unwrap());
        assert!(!store.delete("default").await.unwrap());
        // A name never leaves the directory.
        for name in ["../x", ".hidden", "a/b", ""] {
            assert!(secrets.get(name).await.is_err(), "{name:?}");
        }
    }

    #[tokio::test]
    async fn an_uncreatable_credentials_dir_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let store = SecretTokenStore::new(files(&file.join("creds"), MasterKey::generate().unwrap()));
        let err = store.save("default", &token()).await.unwrap_err().to_string();
        assert!(err.contains("KAKAO_CREDENTIALS_DIR (kakao.oauth.credentialsDir)"), "{err}");
    }

    #[tokio::test]
    async fn database_tokens_and_state_round_trip() {
        use crate::bridge::StoreBridge;
        use clawbridge_kakao::talk::{BridgeState, TalkState};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let db = clawbridge_store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let secrets = Arc::new(StoreSecrets::new(MasterKey::generate().unwrap(), db.clone(), TOKEN_SECRETS));
        assert_eq!(secrets.location(), "the sqlite store (encrypted)");
        let tokens = SecretTokenStore::new(secrets);
        tokens.save("a", &token()).await.unwrap();
        assert_eq!(tokens.load("a").await.unwrap().unwrap().access_token.expose_secret(), "ACCESS-0123456789");
        assert!(tokens.delete("a").await.unwrap());
        // Two processes on one store: shared values, one lock holder at a time.
        let process =
            |holder: &str| BridgeState::new(Arc::new(StoreBridge::new(db.clone(), Arc::default(), holder.to_owned())));
        let (one, two) = (process("one"), process("two"));
        one.put("ns", "k", "v", Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(two.get("ns", "k").await.unwrap().as_deref(), Some("v"));
        assert!(one.try_lock("l", Duration::from_secs(30)).await.unwrap());
        assert!(!two.try_lock("l", Duration::from_secs(30)).await.unwrap());
        one.unlock("l").await.unwrap();
        assert!(two.try_lock("l", Duration::from_secs(30)).await.unwrap());
    }
}
