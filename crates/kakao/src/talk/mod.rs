//! Kakao Login (OAuth 2.0) and the Kakao Talk Message API (reference/kakao.md §1–4): "send to
//! me" notifications and messages to the logged-in user's friends who use the same app.
//!
//! # Layout
//! - [`config`]: `[kakao]` / `[kakao.oauth]` and the `KAKAO_*` variables.
//! - [`oauth`]: the authorize URL with PKCE, the redirect listener of `kakao login`, the token endpoint.
//! - [`token`]: stored tokens, the [`TokenStore`] and [`TalkState`] traits and their bridge-backed
//!   implementations, and the single-flight refresh of [`TokenManager`].
//! - [`client`]: the kapi client (memo, friends, profile, image upload) with classified retries.
//! - [`quota`]: the local guard of Kakao's daily message quotas.
//! - [`template`]: typed, validated default templates and console templates.
//! - [`media`]: image sniffing and the size cap.
//! - [`models`], [`error`]: the JSON shapes and the errors with their meaning.

pub mod client;
pub mod config;
pub mod error;
pub mod media;
pub mod models;
pub mod oauth;
pub mod quota;
pub mod template;
pub mod token;

pub use client::{MessageContent, ReceiverFailure, RetryPolicy, SendReport, TalkClient};
pub use config::{LoginConfig, TokenStorage};
pub use error::{QuotaKind, TalkError};
pub use quota::{QuotaGuard, QuotaLimits};
pub use template::{CustomTemplate, Template, TemplateError};
pub use token::{
    BridgeState, MemoryState, MemoryTokenStore, OAuthToken, SecretTokenStore, TOKEN_SECRETS, TalkState, TokenManager,
    TokenStore,
};
