//! Secrets at rest: OAuth tokens and API keys the CLI stores are encrypted before they reach the
//! database, so a copied database file or a database dump does not leak them.
//!
//! - [`MasterKey`]: 32 random bytes from `CLAWBRIDGE_MASTER_KEY` or `<state dir>/master.key`
//!   (created with mode 0600 on first use).
//! - [`SecretBox`]: `put`/`get`/`delete` of [`SecretString`]s on any [`Store`](crate::Store).
//!
//! The blob is `1 ‖ nonce (24 bytes) ‖ XChaCha20-Poly1305 ciphertext`. The nonce is random:
//! 192 bits make collisions a non-issue without any counter state. The secret's name is the
//! associated data, so a blob copied under another name does not decrypt.

use crate::{Result, SharedStore, StoreError};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use clawbridge_core::EpochMs;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Length of a master key.
pub const KEY_LEN: usize = 32;
/// File name of the generated key in the state dir.
pub const KEY_FILE: &str = "master.key";
/// Environment variable holding the key (hex or base64).
pub const KEY_ENV: &str = "CLAWBRIDGE_MASTER_KEY";

/// Format version of an encrypted blob (its first byte).
const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that encrypts stored secrets. Zeroised on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`StoreError::Secret`] when the operating system has no randomness to give.
    pub fn generate() -> Result<Self> {
        let mut key = Self::from_bytes([0; KEY_LEN]);
        getrandom::fill(key.0.as_mut_slice())
            .map_err(|e| StoreError::Secret(format!("cannot generate a master key: {e}")))?;
        Ok(key)
    }

    /// Parses a key written as 64 hex characters or as base64 (standard or URL-safe alphabet,
    /// padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut bytes = [0u8; KEY_LEN];
        // Hex first: 64 hex characters are also valid base64, of the wrong length.
        if text.len() == 2 * KEY_LEN && hex::decode_to_slice(text, &mut bytes).is_ok() {
            return Some(Self::from_bytes(bytes));
        }
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(mut decoded) = engine.decode(text) {
                let fits = decoded.len() == KEY_LEN;
                if fits {
                    bytes.copy_from_slice(&decoded);
                }
                decoded.zeroize();
                if fits {
                    return Some(Self::from_bytes(bytes));
                }
            }
        }
        bytes.zeroize();
        None
    }

    /// The key as 64 lower-case hex characters (the format of `master.key`).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    /// The key clawbridge uses: `CLAWBRIDGE_MASTER_KEY` when set (pass its value as
    /// `env_value`; an empty value counts as unset), else `<state_dir>/master.key`, which is
    /// generated (mode 0600) when missing.
    ///
    /// # Errors
    /// [`StoreError::Config`] with the fix when the variable is malformed, the key file is
    /// readable by other users or malformed, or the state dir cannot be written.
    pub fn from_env_or_file(env_value: Option<&str>, state_dir: &Path) -> Result<MasterKey> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return Self::parse(value).ok_or_else(|| {
                StoreError::Config(format!(
                    "{KEY_ENV} is not a 32-byte key: give 64 hex characters or base64 of 32 bytes, \
                     e.g. generate one with `openssl rand -hex 32`"
                ))
            });
        }
        KeyFile::new(state_dir).load_or_create()
    }

    /// Encrypts `plaintext` for the secret called `name`.
    ///
    /// # Errors
    /// [`StoreError::Secret`] when no random nonce can be had.
    pub fn encrypt(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Secret(format!("cannot encrypt {name}: {e}")))?;
        let ciphertext = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: name.as_bytes() })
            .map_err(|_| StoreError::Secret(format!("cannot encrypt {name}")))?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    /// Decrypts a blob stored under `name`.
    ///
    /// # Errors
    /// [`StoreError::Secret`] when the blob was made with another key, under another name, was
    /// altered, or has a format this version does not know.
    pub fn decrypt(&self, name: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (&version, rest) =
            blob.split_first().ok_or_else(|| StoreError::Secret(format!("cannot decrypt {name}: empty blob")))?;
        if version != BLOB_VERSION {
            return Err(StoreError::Secret(format!(
                "cannot decrypt {name}: unknown format version {version} (written by a newer clawbridge?)"
            )));
        }
        if rest.len() < NONCE_LEN {
            return Err(StoreError::Secret(format!("cannot decrypt {name}: truncated blob")));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: name.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Secret(format!("cannot decrypt {name}: wrong {KEY_ENV} or {KEY_FILE}?")))
    }

    /// The cipher zeroises its copy of the key on drop.
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

/// `<state dir>/master.key`.
struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    fn new(state_dir: &Path) -> Self {
        Self { path: state_dir.join(KEY_FILE) }
    }

    fn load_or_create(&self) -> Result<MasterKey> {
        match self.create() {
            Ok(key) => Ok(key),
            Err(CreateError::Exists) => self.load(),
            Err(CreateError::Other(e)) => Err(e),
        }
    }

    /// Writes a new key with `create_new`, so two processes starting together cannot both
    /// write one: the loser finds the file and reads the winner's key.
    fn create(&self) -> std::result::Result<MasterKey, CreateError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                CreateError::Other(StoreError::Config(format!(
                    "cannot create the state dir {}: {e}; create it or set CLAWBRIDGE_STATE_DIR, \
                     or set {KEY_ENV}",
                    dir.display()
                )))
            })?;
        }
        let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(CreateError::Exists),
            Err(e) => {
                return Err(CreateError::Other(self.config_error(format!(
                    "cannot create it: {e}; make the state dir writable for this user, or set {KEY_ENV} \
                     (e.g. to the output of `openssl rand -hex 32`)"
                ))));
            }
        };
        let key = MasterKey::generate().map_err(CreateError::Other)?;
        let mut text = key.to_hex();
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| CreateError::Other(self.config_error(format!("cannot write it: {e}"))))?;
        tracing::info!(path = %self.path.display(), "generated a new master key for stored secrets");
        Ok(key)
    }

    fn load(&self) -> Result<MasterKey> {
        let meta = std::fs::metadata(&self.path).map_err(|e| self.config_error(format!("cannot read it: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Config(format!(
                "{} is accessible by other users (mode {mode:03o}); restrict it with `chmod 600 {}`",
                self.path.display(),
                self.path.display()
            )));
        }
        // A process that won the create race may not have written the key yet: an empty file
        // is worth a short wait; anything else is read once.
        for _ in 0..50 {
            let mut text = Zeroizing::new(String::new());
            std::fs::File::open(&self.path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| self.config_error(format!("cannot read it: {e}")))?;
            if text.trim().is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            return MasterKey::parse(&text).ok_or_else(|| {
                self.config_error(
                    "it does not hold a key (64 hex characters); restore it from a backup, or delete it \
                     to generate a new one (secrets stored with the old key are then lost)"
                        .to_owned(),
                )
            });
        }
        Err(self.config_error(
            "it is empty; delete it to generate a new key (secrets stored with the old key are then lost)".to_owned(),
        ))
    }

    fn config_error(&self, what: String) -> StoreError {
        StoreError::Config(format!("master key file {}: {what}", self.path.display()))
    }
}

enum CreateError {
    Exists,
    Other(StoreError),
}

/// Encrypted secrets on top of a store. The database only ever sees ciphertext.
pub struct SecretBox {
    key: MasterKey,
    store: SharedStore,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox").field("key", &self.key).field("backend", &self.store.backend()).finish()
    }
}

impl SecretBox {
    /// Encrypts with `key` into `store`.
    pub fn new(key: MasterKey, store: SharedStore) -> Self {
        Self { key, store }
    }

    /// Stores (or replaces) the secret `name`.
    ///
    /// # Errors
    /// Store errors, or [`StoreError::Secret`] when encryption fails.
    pub async fn put(&self, name: &str, value: &SecretString, now: EpochMs) -> Result<()> {
        let blob = self.key.encrypt(name, value.expose_secret().as_bytes())?;
        self.store.put_secret_blob(name, &blob, now).await
    }

    /// Reads the secret `name`.
    ///
    /// # Errors
    /// Store errors, or [`StoreError::Secret`] when it cannot be decrypted (another master key).
    pub async fn get(&self, name: &str) -> Result<Option<SecretString>> {
        let Some(blob) = self.store.get_secret_blob(name).await? else {
            return Ok(None);
        };
        let plain = self.key.decrypt(name, &blob)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::Secret(format!("cannot decrypt {name}: the plaintext is not UTF-8")))?;
        // `to_owned` allocates exactly `len` bytes, so turning it into the secret's boxed `str`
        // does not reallocate and leave an unzeroised copy behind; `plain` is zeroised on drop.
        Ok(Some(SecretString::from(text.to_owned())))
    }

    /// Deletes the secret `name`; `true` when it existed.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        self.store.delete_secret(name).await
    }
}
