//! The Kakao Login settings: `[kakao]` (the design seed's `KakaoChannelConfig` names `restApiKey`,
//! `appKey`, `channelId`, `apiBaseUrl`, `mediaMaxMb`), `[kakao.oauth]` (`redirectUri`, `scopes`,
//! plus `clientSecret`, `authBaseUrl`, `credentialsDir`, `tokenStore`) and the `KAKAO_*`
//! variables, which win over the file.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// Default Kakao API host.
pub const DEFAULT_API_BASE_URL: &str = "https://kapi.kakao.com";
/// Default Kakao OAuth host.
pub const DEFAULT_AUTH_BASE_URL: &str = "https://kauth.kakao.com";
/// Image size cap when `mediaMaxMb` is not set: the reference's reading of the undocumented
/// upload limit (-602 "image too large"), reference/kakao.md §3.1.
pub const DEFAULT_MEDIA_MAX_MB: u64 = 5;
/// Consent items asked for when neither `--scopes` nor `oauth.scopes` says otherwise.
pub const DEFAULT_SCOPES: &[&str] = &["talk_message"];

/// Where OAuth tokens are kept (always encrypted with the master key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenStorage {
    /// Ciphertext files (mode 0600) in the credentials dir: the design seed's location.
    #[default]
    Files,
    /// The store's secret table (ciphertext): for replicas sharing a PostgreSQL database.
    Database,
}

/// The validated Kakao Login settings.
#[derive(Clone, Debug)]
pub struct LoginConfig {
    /// The REST API key: the OAuth `client_id`.
    pub rest_api_key: String,
    /// The app key used as `Authorization: KakaoAK …` for image uploads, as the official SDK
    /// does; without it uploads use the user's Bearer token.
    pub app_key: Option<SecretString>,
    /// `client_secret`, when the console has it enabled.
    pub client_secret: Option<SecretString>,
    /// The KakaoTalk Channel's public id (`_abc123`): `kakao me` shows whether the user added it.
    pub channel_id: Option<String>,
    /// The registered redirect URI; `kakao login` listens on its host and port.
    pub redirect_uri: Option<String>,
    /// Consent items asked for at login.
    pub scopes: Vec<String>,
    /// `https://kapi.kakao.com` (tests point it at a fake).
    pub api_base_url: String,
    /// `https://kauth.kakao.com` (tests point it at a fake).
    pub auth_base_url: String,
    /// Largest image `upload-image` sends, in bytes.
    pub media_max_bytes: u64,
    /// Where token files live (`~/.openclaw/credentials/kakao` unless configured).
    pub credentials_dir: PathBuf,
    /// Files or the database.
    pub token_storage: TokenStorage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileKakao {
    rest_api_key: Option<String>,
    app_key: Option<String>,
    channel_id: Option<String>,
    api_base_url: Option<String>,
    media_max_mb: Option<u64>,
    oauth: Option<FileOAuth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileOAuth {
    redirect_uri: Option<String>,
    scopes: Option<Vec<String>>,
    client_secret: Option<String>,
    auth_base_url: Option<String>,
    credentials_dir: Option<PathBuf>,
    token_store: Option<String>,
}

impl LoginConfig {
    /// Reads the login settings from the `[kakao]` table and the environment. `None` when Kakao
    /// Login is not configured (no REST API key and no `[kakao.oauth]`).
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let env = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let table = file.map(|t| {
            // Only our keys: the chatbot part of `[kakao]` is validated by its own module.
            let ours = ["restApiKey", "appKey", "channelId", "apiBaseUrl", "mediaMaxMb", "oauth"];
            t.iter().filter(|(k, _)| ours.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
        });
        let file: FileKakao = match table {
            Some(table) => {
                toml::Table::try_into::<FileKakao>(table).map_err(|e| format!("config file [kakao]: {e}"))?
            }
            None => FileKakao::default(),
        };
        let has_oauth_table = file.oauth.is_some();
        let oauth = file.oauth.unwrap_or_default();

        let Some(rest_api_key) = env("KAKAO_REST_API_KEY").or(file.rest_api_key) else {
            if has_oauth_table || env("KAKAO_REDIRECT_URI").is_some() {
                return Err(
                    "Kakao Login is configured but KAKAO_REST_API_KEY (kakao.restApiKey) is not set: copy the \
                            REST API key from developers.kakao.com > My Application > App Keys"
                        .to_owned(),
                );
            }
            return Ok(None);
        };
        if rest_api_key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("KAKAO_REST_API_KEY (kakao.restApiKey) contains spaces: paste only the key".to_owned());
        }

        let redirect_uri = env("KAKAO_REDIRECT_URI").or(oauth.redirect_uri);
        if let Some(uri) = &redirect_uri {
            let parsed = reqwest::Url::parse(uri).map_err(|e| {
                format!(
                    "KAKAO_REDIRECT_URI (kakao.oauth.redirectUri) {uri:?} is not a URL ({e}): use the Redirect URI \
                     registered in the Kakao console, e.g. http://localhost:18791/kakao/oauth"
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!(
                    "KAKAO_REDIRECT_URI (kakao.oauth.redirectUri) {uri:?} must be an http(s) URL with a host"
                ));
            }
        }

        let scopes = match oauth.scopes {
            Some(scopes) => {
                let scopes: Vec<String> =
                    scopes.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                if let Some(bad) = scopes.iter().find(|s| !is_scope_id(s)) {
                    return Err(format!(
                        "kakao.oauth.scopes has {bad:?}: use consent item ids such as talk_message, friends, profile_nickname"
                    ));
                }
                scopes
            }
            None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        };

        let api_base_url = base_url(
            "KAKAO_API_BASE_URL (kakao.apiBaseUrl)",
            env("KAKAO_API_BASE_URL").or(file.api_base_url),
            DEFAULT_API_BASE_URL,
        )?;
        let auth_base_url = base_url(
            "KAKAO_AUTH_BASE_URL (kakao.oauth.authBaseUrl)",
            env("KAKAO_AUTH_BASE_URL").or(oauth.auth_base_url),
            DEFAULT_AUTH_BASE_URL,
        )?;

        let media_max_mb =
            match env("KAKAO_MEDIA_MAX_MB") {
                Some(v) => Some(v.parse::<u64>().map_err(|_| {
                    format!("KAKAO_MEDIA_MAX_MB is {v:?}: expected a whole number of megabytes, e.g. 5")
                })?),
                None => file.media_max_mb,
            }
            .unwrap_or(DEFAULT_MEDIA_MAX_MB);
        if media_max_mb == 0 || media_max_mb > 100 {
            return Err(format!(
                "kakao.mediaMaxMb (KAKAO_MEDIA_MAX_MB) is {media_max_mb}: use 1 to 100 (Kakao refuses large images with -602)"
            ));
        }

        let credentials_dir = match env("KAKAO_CREDENTIALS_DIR").map(PathBuf::from).or(oauth.credentials_dir) {
            Some(dir) => dir,
            None => {
                env("HOME").map(|home| PathBuf::from(home).join(".openclaw/credentials/kakao")).ok_or_else(|| {
                    "HOME is not set, so the Kakao credentials dir is unknown: set KAKAO_CREDENTIALS_DIR \
                 (kakao.oauth.credentialsDir) to a private directory"
                        .to_owned()
                })?
            }
        };
        let token_storage = match env("KAKAO_TOKEN_STORE").or(oauth.token_store).as_deref() {
            None | Some("files") => TokenStorage::Files,
            Some("database") => TokenStorage::Database,
            Some(other) => {
                return Err(format!(
                    "KAKAO_TOKEN_STORE (kakao.oauth.tokenStore) is {other:?}: use files (encrypted files in the \
                     credentials dir) or database (encrypted in the clawbridge store, for replicas)"
                ));
            }
        };

        Ok(Some(Self {
            rest_api_key,
            app_key: env("KAKAO_APP_KEY").or(file.app_key).map(SecretString::from),
            client_secret: env("KAKAO_CLIENT_SECRET").or(oauth.client_secret).map(SecretString::from),
            channel_id: env("KAKAO_CHANNEL_ID").or(file.channel_id),
            redirect_uri,
            scopes,
            api_base_url,
            auth_base_url,
            media_max_bytes: media_max_mb * 1024 * 1024,
            credentials_dir,
            token_storage,
        }))
    }
}

/// Consent item ids are lower-case words with underscores or dots (`talk_message`,
/// `account_email`, `openid`).
pub(crate) fn is_scope_id(scope: &str) -> bool {
    !scope.is_empty() && scope.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn base_url(name: &str, value: Option<String>, default: &str) -> Result<String, String> {
    let url = value.unwrap_or_else(|| default.to_owned());
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{name} {url:?} is not a URL ({e}): e.g. {default}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{name} {url:?} must start with https:// (e.g. {default})"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], file: &str) -> Result<Option<LoginConfig>, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let table: toml::Table = toml::from_str(file).unwrap();
        let kakao = table.get("kakao").and_then(|v| v.as_table()).cloned();
        LoginConfig::load(kakao.as_ref(), &|k| map.get(k).cloned())
    }

    #[test]
    fn absent_without_a_rest_api_key() {
        assert!(load(&[("HOME", "/h")], "").unwrap().is_none());
        // The chatbot's keys in [kakao] are not ours to judge.
        assert!(load(&[("HOME", "/h")], "[kakao]\nbotId = \"x\"\n[kakao.chatbot]\na = 1\n").unwrap().is_none());
    }

    #[test]
    fn file_and_environment_with_environment_winning() {
        let file = "[kakao]\nrestApiKey = \"file-key\"\nmediaMaxMb = 2\nchannelId = \"_abc\"\n\
                    [kakao.oauth]\nredirectUri = \"http://localhost:9/cb\"\nscopes = [\"talk_message\", \"friends\"]\n\
                    clientSecret = \"s3\"\n";
        let cfg = load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "env-key")], file).unwrap().unwrap();
        assert_eq!(cfg.rest_api_key, "env-key");
        assert_eq!(cfg.media_max_bytes, 2 * 1024 * 1024);
        assert_eq!(cfg.scopes, ["talk_message", "friends"]);
        assert_eq!(cfg.redirect_uri.as_deref(), Some("http://localhost:9/cb"));
        assert_eq!(cfg.client_secret.as_ref().unwrap().expose_secret(), "s3");
        assert_eq!(cfg.channel_id.as_deref(), Some("_abc"));
        assert_eq!(cfg.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(cfg.auth_base_url, DEFAULT_AUTH_BASE_URL);
        assert_eq!(cfg.credentials_dir, PathBuf::from("/h/.openclaw/credentials/kakao"));
        assert_eq!(cfg.token_storage, TokenStorage::Files);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3\""), "{dbg}");
    }

    #[test]
    fn mistakes_name_the_setting() {
        let err = load(&[("HOME", "/h")], "[kakao.oauth]\nredirectUri = \"http://localhost:9/cb\"\n").unwrap_err();
        assert!(err.contains("KAKAO_REST_API_KEY"), "{err}");
        let err = load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k"), ("KAKAO_REDIRECT_URI", "nope")], "").unwrap_err();
        assert!(err.contains("KAKAO_REDIRECT_URI"), "{err}");
        let err =
            load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k"), ("KAKAO_API_BASE_URL", "ftp://x")], "").unwrap_err();
        assert!(err.contains("KAKAO_API_BASE_URL"), "{err}");
        let err = load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k")], "[kakao]\nmediaMaxMb = 0\n").unwrap_err();
        assert!(err.contains("mediaMaxMb"), "{err}");
        let err =
            load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k")], "[kakao.oauth]\nredirectUrl = \"x\"\n").unwrap_err();
        assert!(err.contains("redirectUrl"), "{err}");
        let err = load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k")], "[kakao.oauth]\nscopes = [\"talk message\"]\n")
            .unwrap_err();
        assert!(err.contains("kakao.oauth.scopes"), "{err}");
        let err = load(&[("HOME", "/h"), ("KAKAO_REST_API_KEY", "k"), ("KAKAO_TOKEN_STORE", "cloud")], "").unwrap_err();
        assert!(err.contains("KAKAO_TOKEN_STORE"), "{err}");
    }
}
