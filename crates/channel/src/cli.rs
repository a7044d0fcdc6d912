//! What the binary lends a channel's code that runs outside the daemon — its subcommand
//! (`clawbridge kakao …`) and its `doctor` checks: the channel's settings, the store as a
//! [`Bridge`], and [`Secrets`] encrypted with the master key the channel never sees.

use crate::Bridge;
use crate::plugin::ChannelSettings;
use async_trait::async_trait;
use clawbridge_core::retry::RetryPolicy;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The error of a channel command; the binary prints it with its causes (`error: …: …`) and
/// exits with code 1.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// The binary's side of a channel command.
#[async_trait]
pub trait CliHost: Send + Sync {
    /// The channel's loaded settings (`None`: the channel is not configured).
    fn settings(&self) -> Option<&dyn ChannelSettings>;

    /// `[retry.http]`: how the channel's platform calls are retried.
    fn retry(&self) -> RetryPolicy;

    /// The bridge's state directory.
    fn state_dir(&self) -> &Path;

    /// The store-backed bridge (the store opens on first use; later calls share it).
    ///
    /// # Errors
    /// The store cannot be opened (the message names `CLAWBRIDGE_DATABASE_URL`'s problem).
    async fn bridge(&self) -> Result<Arc<dyn Bridge>, CliError>;

    /// The channel's secrets under `namespace` (`kakao.oauth`), kept where `at` says.
    ///
    /// # Errors
    /// The master key or the store cannot be loaded.
    async fn secrets(&self, namespace: &'static str, at: SecretsAt<'_>) -> Result<Arc<dyn Secrets>, CliError>;

    /// [`secrets`](Self::secrets), but only when this installation already has its master key:
    /// `None` means nothing can have been stored yet, and nothing (no key file, no database)
    /// was created to find that out — what a dry run and the daemon's start-up need.
    ///
    /// # Errors
    /// The master key or the store cannot be loaded.
    async fn existing_secrets(
        &self,
        namespace: &'static str,
        at: SecretsAt<'_>,
    ) -> Result<Option<Arc<dyn Secrets>>, CliError> {
        self.secrets(namespace, at).await.map(Some)
    }

    /// The configuration file the bridge reads (`--config` / `CLAWBRIDGE_CONFIG`), if one was
    /// given; a channel's `setup` writes its settings there. It may not exist yet.
    fn config_file(&self) -> Option<&Path> {
        None
    }

    /// `CLAWBRIDGE_PUBLIC_URL` (`bridge.public_url`): the https base at which the internet
    /// reaches this bridge's listener, without a trailing slash.
    fn public_url(&self) -> Option<&str> {
        None
    }

    /// One environment variable (an empty value reads as unset). The binary reads the process
    /// environment; tests pass their own.
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl dyn CliHost + '_ {
    /// The channel's settings as their concrete type.
    pub fn settings_as<T: 'static>(&self) -> Option<&T> {
        self.settings()?.as_any().downcast_ref()
    }
}

/// Where a channel keeps its secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsAt<'a> {
    /// The store's secret table: replicas that share a database share them.
    Store,
    /// One ciphertext file per name, `<dir>/<name>.<extension>` (mode 0600, the dir 0700).
    Dir {
        /// The directory.
        dir: &'a Path,
        /// The files' extension (`tokens`).
        extension: &'a str,
    },
}

/// Secret strings by name, encrypted at rest by the binary (XChaCha20-Poly1305 with the master
/// key; `<namespace>/<name>` is the associated data, so a value copied under another name does
/// not decrypt).
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret `name`, if stored.
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError>;
    /// Stores (replaces) it; a reader sees the old or the new value, never half of one.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError>;
    /// Deletes it; `true` when there was one.
    async fn delete(&self, name: &str) -> Result<bool, SecretError>;
    /// Where they are kept, for people (a directory, "the sqlite store (encrypted)").
    fn location(&self) -> String;
}

/// What went wrong with a secret; the channel words the fix (which of its settings to change).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The directory of [`SecretsAt::Dir`] cannot be created.
    #[error("cannot create {}: {error}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A stored value does not decrypt: another master key, or a file copied under another name.
    #[error("{location}: {error}")]
    Undecryptable {
        /// The file or key.
        location: String,
        /// The cipher's complaint.
        error: String,
    },
    /// Reading or writing failed (I/O, the store).
    #[error("{0}")]
    Unavailable(String),
}

/// A channel's subcommand whose arguments are built only when it is the one given (or its help
/// is shown): `clawbridge serve` then never runs, nor maps into memory, the code that builds
/// every channel's command tree. `about` is what the bridge's own help lists for it; the
/// plugin's test checks that it matches the derived command's.
pub fn deferred_command(
    name: &'static str,
    about: &'static str,
    build: fn(clap::Command) -> clap::Command,
) -> clap::Command {
    clap::Command::new(name).about(about).defer(build)
}
