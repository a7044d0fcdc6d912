//! Kakao errors and what to do about them (reference/kakao.md §1.2, §2).
//!
//! Classification is data ([`ErrorClass`]) so the client's retry loop, the CLI's messages and the
//! outbox's [`SendError`] all agree.

use clawbridge_core::retry::{RetryClass, SendError};
use serde::Deserialize;
use std::fmt;

/// What a kapi error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// May pass: retry with backoff (-1, -7, -603, -9798, 5xx, network).
    Transient,
    /// The access token is invalid or expired (-401): refresh once and retry once.
    Unauthorized,
    /// The user has not consented to what the API needs (-402): log in again with the scopes.
    ConsentRequired,
    /// A quota is used up (-10, -11, -531…-536): wait for the window; retrying now cannot help.
    Quota,
    /// Anything else: retrying cannot help.
    Permanent,
}

impl ErrorClass {
    /// The retry layer's view: only transient failures are retried; `-401` goes back to the
    /// client as auth-expired (it refreshes the token); consent and quota problems cannot pass
    /// by waiting.
    pub fn retry_class(self) -> RetryClass {
        match self {
            Self::Transient => RetryClass::Transient,
            Self::Unauthorized => RetryClass::AuthExpired,
            Self::ConsentRequired | Self::Quota | Self::Permanent => RetryClass::Permanent,
        }
    }
}

/// Which Kakao quota a quota error (or the local guard) refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// -10: the API's quota for the app (e.g. Talk Message 30,000/day).
    App,
    /// -11: the paid API limit.
    Paid,
    /// -531: the sender's monthly quota.
    SenderMonthly,
    /// -532: the sender's daily quota (100/day).
    SenderDaily,
    /// -533: the receiver's daily quota (100/day).
    ReceiverDaily,
    /// -536: the sender/receiver pair's daily quota (20/day).
    PairDaily,
    /// Another code of the -53x range.
    Other(i64),
}

impl QuotaKind {
    /// The quota behind a Kakao code, when it is a quota code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            -10 => Some(Self::App),
            -11 => Some(Self::Paid),
            -531 => Some(Self::SenderMonthly),
            -532 => Some(Self::SenderDaily),
            -533 => Some(Self::ReceiverDaily),
            -536 => Some(Self::PairDaily),
            -535 | -534 => Some(Self::Other(code)),
            _ => None,
        }
    }
}

impl QuotaKind {
    /// When the quota is available again.
    pub fn resets(self) -> &'static str {
        match self {
            Self::SenderMonthly => "the quota resets at the start of next month (KST)",
            Self::Paid => "raise the paid limit in the Kakao console",
            _ => "the quota resets at midnight KST",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App => f.write_str("the app's daily quota of this API (Talk Message: 30,000/day)"),
            Self::Paid => f.write_str("the paid API limit of the app"),
            Self::SenderMonthly => f.write_str("the sender's monthly message quota"),
            Self::SenderDaily => f.write_str("the sender's daily quota (100 messages/day)"),
            Self::ReceiverDaily => f.write_str("the receiver's daily quota (100 messages/day)"),
            Self::PairDaily => f.write_str("the daily quota per sender and receiver (20 messages/day)"),
            Self::Other(code) => write!(f, "a message quota (code {code})"),
        }
    }
}

/// Classifies a kapi error by its `code`, falling back to the HTTP status.
pub fn classify(status: u16, code: Option<i64>) -> ErrorClass {
    match code {
        Some(-1 | -7 | -603 | -9798) => ErrorClass::Transient,
        Some(-401) => ErrorClass::Unauthorized,
        Some(-402) => ErrorClass::ConsentRequired,
        Some(code) if QuotaKind::from_code(code).is_some() => ErrorClass::Quota,
        Some(_) if status >= 500 => ErrorClass::Transient,
        Some(_) => ErrorClass::Permanent,
        None if status >= 500 || status == 429 || status == 408 => ErrorClass::Transient,
        None if status == 401 => ErrorClass::Unauthorized,
        None => ErrorClass::Permanent,
    }
}

/// What a Kakao code means, in a few words (for errors shown to people).
pub fn code_meaning(code: i64) -> &'static str {
    match code {
        -1 => "internal error at Kakao",
        -2 => "a parameter is missing or malformed",
        -3 => "the feature or consent item is not configured in the app",
        -4 => "the account is restricted",
        -5 => "the app has no permission for this API (app review needed)",
        -7 => "Kakao service maintenance or internal error",
        -9 => "this API has been terminated",
        -10 => "quota exceeded",
        -11 => "paid API limit exceeded",
        -12 => "the app or developer account is sanctioned",
        -401 => "the access token is invalid or expired",
        -402 => "the user has not consented to a required item",
        -501 => "the user is not a KakaoTalk user",
        -502 => "the receiver is not a friend",
        -504 => "the receiver's device does not support this message",
        -530 => "the receiver refuses messages",
        -531 => "the sender's monthly quota is used up",
        -532 => "the sender's daily quota is used up",
        -533 => "the receiver's daily quota is used up",
        -536 => "the daily quota for this sender and receiver is used up",
        -602 => "the image is too large",
        -603 => "internal timeout at Kakao",
        -606 => "too many images",
        -911 => "unsupported image format",
        -9798 => "Kakao service maintenance",
        _ => "see developers.kakao.com > REST API > error codes",
    }
}

/// The body of a kapi error: `{"msg":…,"code":…}`, plus the scope fields of `-402`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApiErrorBody {
    /// Kakao's message.
    #[serde(default)]
    pub msg: String,
    /// Kakao's code.
    pub code: i64,
    /// For -402: the API that needs the consent.
    #[serde(default)]
    pub api_type: Option<String>,
    /// For -402: the consent items to ask for.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// For -402: the items the user has consented to.
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
}

/// The body of a kauth error.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OAuthErrorBody {
    /// `invalid_grant`, `invalid_client` …
    #[serde(default)]
    pub error: String,
    /// Kakao's description.
    #[serde(default)]
    pub error_description: Option<String>,
    /// `KOE…`.
    #[serde(default)]
    pub error_code: Option<String>,
}

impl OAuthErrorBody {
    /// Whether the refresh token (or authorization code) is no longer valid: log in again.
    pub fn needs_login(&self) -> bool {
        self.error == "invalid_grant" || self.error_code.as_deref() == Some("KOE322")
    }

    /// What the error means and how to fix it.
    pub fn meaning(&self) -> String {
        let by_code = self.error_code.as_deref().and_then(koe_meaning);
        let by_error = oauth_error_meaning(&self.error);
        match (by_code, by_error) {
            (Some(code), _) => code.to_owned(),
            (None, Some(error)) => error.to_owned(),
            (None, None) => "see developers.kakao.com > Kakao Login > troubleshooting".to_owned(),
        }
    }
}

impl fmt::Display for OAuthErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", if self.error.is_empty() { "error" } else { &self.error })?;
        if let Some(code) = &self.error_code {
            write!(f, " ({code})")?;
        }
        if let Some(desc) = &self.error_description {
            write!(f, ": {desc}")?;
        }
        write!(f, " — {}", self.meaning())
    }
}

/// The meaning of a Kakao Login `KOE…` code.
pub fn koe_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "KOE001" => "the request is malformed (missing or invalid parameter)",
        "KOE002" => "the token request is malformed",
        "KOE003" => "the redirect URI or a domain is not registered for the app",
        "KOE004" => "Kakao Login is not enabled for the app: turn it on in the console (Kakao Login > Activation)",
        "KOE005" => "the app is in development mode and this user is not a team member",
        "KOE006" => {
            "the redirect URI is not registered: add KAKAO_REDIRECT_URI under Kakao Login > Redirect URI in the console"
        }
        "KOE007" => "the app was blocked or deleted",
        "KOE008" => "the request is not allowed for this app",
        "KOE009" => "the platform (web domain or package) is not registered for the app",
        "KOE010" => {
            "the client secret is wrong or missing: set KAKAO_CLIENT_SECRET to the console's value (Security > Client Secret)"
        }
        "KOE101" => "the app key (client_id) is wrong: check KAKAO_REST_API_KEY",
        "KOE102" => "the app is not ready for Kakao Login",
        "KOE201" => "the request was made with a key type this API does not accept",
        "KOE202" => "response_type must be code",
        "KOE205" => "a requested consent item is not configured in the app (Kakao Login > Consent items)",
        "KOE303" => "the redirect URI differs from the one used for the authorization code",
        "KOE320" => "the authorization code is invalid or was already used: run `clawbridge kakao login` again",
        "KOE322" => "the refresh token expired or was revoked: run `clawbridge kakao login` again",
        "KOE403" => "the user must verify their account before logging in",
        _ => return None,
    })
}

fn oauth_error_meaning(error: &str) -> Option<&'static str> {
    Some(match error {
        "invalid_request" => "the request is missing a parameter or has an invalid one",
        "invalid_client" => "the app key or client secret is wrong: check KAKAO_REST_API_KEY and KAKAO_CLIENT_SECRET",
        "invalid_scope" => "a requested scope is not a consent item of the app",
        "invalid_grant" => "the code or refresh token is invalid or expired: run `clawbridge kakao login` again",
        "misconfigured" => "the app is misconfigured in the Kakao console (platform, redirect URI or consent items)",
        "unauthorized" => "the app is not allowed to use Kakao Login",
        "access_denied" => "the user cancelled the login or declined consent",
        "server_error" => "Kakao had an internal error; try again",
        "consent_required" | "login_required" | "interaction_required" => "the user must log in and consent",
        _ => return None,
    })
}

/// Errors of the Talk client and Kakao Login.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TalkError {
    /// No stored tokens for the account.
    #[error("not logged in to Kakao (account {account}): run `clawbridge kakao login{}`", account_flag(.account))]
    NotLoggedIn {
        /// The account.
        account: String,
    },
    /// The refresh token is gone or invalid (`invalid_grant`/`KOE322`), or the access token was
    /// refused even after a refresh.
    #[error("the Kakao login of account {account} is no longer valid ({reason}): run `clawbridge kakao login{}` again", account_flag(.account))]
    LoginRequired {
        /// The account.
        account: String,
        /// What Kakao said.
        reason: String,
    },
    /// `-402`: the user has not consented to what the API needs.
    #[error("Kakao needs more consent ({msg}): run `clawbridge kakao login --scopes {}` to ask for {}", .required_scopes.join(","), .required_scopes.join(", "))]
    ConsentRequired {
        /// Consent items to ask for.
        required_scopes: Vec<String>,
        /// Kakao's message.
        msg: String,
    },
    /// A Kakao quota is used up (or would be, by the local guard's count).
    #[error("{} {quota}{}: not sent; {}", if *.local { "would exceed" } else { "exceeded" }, quota_detail(*.code, .msg), quota.resets())]
    Quota {
        /// Which quota.
        quota: QuotaKind,
        /// The Kakao code (`None` when refused locally).
        code: Option<i64>,
        /// Kakao's message, or the local count.
        msg: String,
        /// Refused by the local guard, before any call.
        local: bool,
    },
    /// An error Kakao says retrying cannot fix.
    #[error("Kakao refused the request (HTTP {status}, code {code}: {msg}) — {}", code_meaning(*.code))]
    Api {
        /// HTTP status.
        status: u16,
        /// Kakao code.
        code: i64,
        /// Kakao message.
        msg: String,
    },
    /// A kauth error other than an expired login.
    #[error("Kakao Login error {0}")]
    OAuth(OAuthErrorBody),
    /// Transient failures that did not pass within the retries.
    #[error("Kakao is unavailable ({reason}) after {attempts} attempts")]
    Unavailable {
        /// The last failure.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The response did not have the documented shape.
    #[error("unexpected response from Kakao ({context}): {detail}")]
    Decode {
        /// Which call.
        context: String,
        /// What was wrong.
        detail: String,
    },
    /// A template failed validation; nothing was sent.
    #[error(transparent)]
    Template(#[from] crate::talk::template::TemplateError),
    /// A bad argument (image too large, no receivers …); nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// The token store or state store failed.
    #[error("storage: {0}")]
    Storage(String),
}

fn account_flag(account: &str) -> String {
    if account == "default" { String::new() } else { format!(" --account {account}") }
}

fn quota_detail(code: Option<i64>, msg: &str) -> String {
    match code {
        Some(code) => format!(" (code {code}: {msg})"),
        None if msg.is_empty() => String::new(),
        None => format!(" ({msg})"),
    }
}

impl TalkError {
    /// The outbox's view of this error: only unavailability is worth a later retry. Quotas are
    /// daily, so a retry within the outbox's backoff cannot pass; login and consent problems need
    /// the owner. Those become dead letters with the reason.
    pub fn to_send_error(&self) -> SendError {
        match self {
            Self::Unavailable { reason, .. } => SendError::transient(reason.clone()),
            other => SendError::Permanent(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_as_the_reference_says() {
        for code in [-1, -7, -603, -9798] {
            assert_eq!(classify(400, Some(code)), ErrorClass::Transient, "{code}");
        }
        assert_eq!(classify(401, Some(-401)), ErrorClass::Unauthorized);
        assert_eq!(classify(403, Some(-402)), ErrorClass::ConsentRequired);
        for code in [-10, -11, -531, -532, -533, -534, -535, -536] {
            assert_eq!(classify(400, Some(code)), ErrorClass::Quota, "{code}");
        }
        for code in [-2, -3, -4, -5, -9, -12, -501, -502, -530, -602] {
            assert_eq!(classify(400, Some(code)), ErrorClass::Permanent, "{code}");
        }
        assert_eq!(classify(502, None), ErrorClass::Transient);
        assert_eq!(classify(500, Some(-999)), ErrorClass::Transient);
        assert_eq!(classify(404, None), ErrorClass::Permanent);
        assert_eq!(QuotaKind::from_code(-536), Some(QuotaKind::PairDaily));
    }

    #[test]
    fn oauth_errors_explain_themselves() {
        let body: OAuthErrorBody = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"expired_or_invalid_refresh_token","error_code":"KOE322"}"#,
        )
        .unwrap();
        assert!(body.needs_login());
        let text = body.to_string();
        assert!(text.contains("KOE322") && text.contains("clawbridge kakao login"), "{text}");
        let denied = OAuthErrorBody { error: "access_denied".into(), ..Default::default() };
        assert!(denied.to_string().contains("cancelled"), "{denied}");
        let koe006 =
            OAuthErrorBody { error: "misconfigured".into(), error_code: Some("KOE006".into()), ..Default::default() };
        assert!(koe006.to_string().contains("KAKAO_REDIRECT_URI"));
    }

    #[test]
    fn the_outbox_view_of_errors() {
        let busy = TalkError::Unavailable { reason: "HTTP 503".into(), attempts: 4 };
        assert!(matches!(busy.to_send_error(), SendError::Transient { .. }));
        let quota = TalkError::Quota { quota: QuotaKind::SenderDaily, code: Some(-532), msg: "m".into(), local: false };
        assert!(matches!(quota.to_send_error(), SendError::Permanent(reason) if reason.contains("100 messages/day")));
        let login = TalkError::LoginRequired { account: "default".into(), reason: "KOE322".into() };
        assert!(matches!(login.to_send_error(), SendError::Permanent(reason) if reason.contains("kakao login")));
    }

    #[test]
    fn messages_name_the_fix() {
        let e = TalkError::ConsentRequired { required_scopes: vec!["friends".into()], msg: "insufficient".into() };
        assert!(e.to_string().contains("--scopes friends"), "{e}");
        let e = TalkError::NotLoggedIn { account: "work".into() };
        assert!(e.to_string().contains("kakao login --account work"), "{e}");
        let e = TalkError::Quota { quota: QuotaKind::PairDaily, code: Some(-536), msg: "m".into(), local: false };
        assert!(e.to_string().contains("20 messages/day") && e.to_string().contains("midnight KST"), "{e}");
        let e = TalkError::Quota { quota: QuotaKind::SenderMonthly, code: Some(-531), msg: "m".into(), local: false };
        assert!(e.to_string().contains("next month"), "{e}");
    }
}
