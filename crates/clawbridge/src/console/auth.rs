//! Who may use the console: the access rule, login sessions, CSRF tokens and the login limit.
//!
//! - With a token (`CLAWBRIDGE_CONSOLE_TOKEN`) the login form asks for it; it is compared in
//!   constant time (of SHA-256 digests, so its length does not leak either).
//! - Without a token the console answers only on a loopback listener, and then only to requests
//!   whose `Host` is a loopback name, so a web page cannot reach it by DNS rebinding.
//! - A login makes a random session id, kept in memory with an expiry and sent as an `HttpOnly`,
//!   `SameSite=Strict` cookie scoped to `/console`. Each session has its own CSRF token, which
//!   every form posts back; the login form itself is protected the same way by a pre-session
//!   token in a cookie of its own (double submit).

use axum::http::{HeaderMap, HeaderValue, header};
use governor::{Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "clawbridge_console";
/// The login form's pre-session CSRF cookie.
pub const LOGIN_COOKIE: &str = "clawbridge_console_login";
/// How long a session lasts from its login (an operator logs in again the next day).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);
/// Sessions kept at most; the oldest goes first (logins are rate-limited, so this is generous).
const MAX_SESSIONS: usize = 256;
/// Login attempts allowed in a burst, then one per [`LOGIN_REFILL`].
pub const LOGIN_BURST: u32 = 5;
/// How fast login attempts come back after a burst.
pub const LOGIN_REFILL: Duration = Duration::from_secs(12);

/// Whether and how the console is open.
#[derive(Clone, Debug)]
pub enum Access {
    /// The login form asks for this token.
    Token(SecretString),
    /// No token, loopback listener: anyone on this host may open it.
    Loopback,
    /// No token and a listener others can reach: the console is off.
    Off,
}

impl Access {
    /// The rule of the module doc for a listener and an optional token.
    pub fn decide(token: Option<&SecretString>, listen: SocketAddr) -> Self {
        match token {
            Some(token) => Self::Token(token.clone()),
            None if listen.ip().is_loopback() => Self::Loopback,
            None => Self::Off,
        }
    }
}

/// Whether the `Host` of a request names this machine's loopback (`localhost`, `127.x`, `[::1]`).
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `given` is the token, in constant time.
pub fn token_matches(given: &str, token: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(token.expose_secret().as_bytes());
    given.ct_eq(&expected).into()
}

/// Whether two CSRF tokens are equal, in constant time (both are ours, of one length).
pub fn csrf_matches(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// 32 random bytes as hex: session ids and CSRF tokens.
///
/// # Panics
/// If the operating system has no randomness source (nothing secure could run then).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` for the console: `HttpOnly`, `SameSite=Strict`, path `/console`; `Secure` when
/// the request came over https (a TLS proxy says so in `X-Forwarded-Proto`). `None` clears it.
pub fn set_cookie(name: &str, value: Option<&str>, max_age: Duration, headers: &HeaderMap) -> HeaderValue {
    let secure =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let (value, age) = match value {
        Some(v) => (v, max_age.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={age}{secure}");
    // Our names and hex values only: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One logged-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// Its id (the cookie's value).
    pub id: String,
    /// The token its forms carry.
    pub csrf: String,
    expires: Instant,
}

/// The sessions of this process (a restart logs everyone out, which is fine for a console).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session.
    pub fn create(&self) -> Session {
        let session = Session { id: random_token(), csrf: random_token(), expires: Instant::now() + SESSION_TTL };
        let mut by_id = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        by_id.retain(|_, s| s.expires > now);
        if by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = by_id.values().min_by_key(|s| s.expires).map(|s| s.id.clone())
        {
            by_id.remove(&oldest);
        }
        by_id.insert(session.id.clone(), session.clone());
        session
    }

    /// The unexpired session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let by_id = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // HashMap lookup by a guessed id reveals nothing useful: ids are 256 random bits.
        by_id.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Logs a session out.
    pub fn remove(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}

/// Limits login attempts of the whole console: a guesser gets [`LOGIN_BURST`] tries, then one
/// per [`LOGIN_REFILL`].
#[derive(Debug)]
pub struct LoginLimiter(
    RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        governor::clock::DefaultClock,
        governor::middleware::NoOpMiddleware,
    >,
);

impl Default for LoginLimiter {
    fn default() -> Self {
        let burst = NonZeroU32::new(LOGIN_BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(LOGIN_REFILL).unwrap_or_else(|| Quota::per_minute(burst)).allow_burst(burst);
        Self(RateLimiter::direct(quota))
    }
}

impl LoginLimiter {
    /// Takes one attempt; `false` when none is left.
    pub fn attempt(&self) -> bool {
        self.0.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for ok in ["127.0.0.1:18790", "localhost:1", "LOCALHOST", "[::1]:8080", "127.0.0.2"] {
            assert!(host_is_loopback(&host(ok)), "{ok}");
        }
        for no in ["evil.example:18790", "10.0.0.1:1", "[2001:db8::1]:1", "localhost.evil.example"] {
            assert!(!host_is_loopback(&host(no)), "{no}");
        }
        assert!(!host_is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn access_follows_the_token_and_the_listener() {
        let loopback: SocketAddr = "127.0.0.1:18790".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:18790".parse().unwrap();
        let token = SecretString::from("s3cret-console-token");
        assert!(matches!(Access::decide(None, loopback), Access::Loopback));
        assert!(matches!(Access::decide(None, public), Access::Off));
        assert!(matches!(Access::decide(Some(&token), public), Access::Token(_)));
    }

    #[test]
    fn tokens_compare_by_value() {
        let token = SecretString::from("s3cret-console-token");
        assert!(token_matches("s3cret-console-token", &token));
        assert!(!token_matches("s3cret-console-toke", &token));
        assert!(!token_matches("", &token));
        assert!(csrf_matches("ab", "ab") && !csrf_matches("ab", "ac") && !csrf_matches("a", "ab"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; clawbridge_console=abc; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, Some("abc"), SESSION_TTL, &headers);
        let set = set.to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"));
    }

    #[test]
    fn sessions_expire_and_log_out() {
        let sessions = Sessions::default();
        let s = sessions.create();
        assert_eq!(sessions.get(&s.id).map(|g| g.csrf), Some(s.csrf.clone()));
        assert!(sessions.get("nope").is_none());
        sessions.remove(&s.id);
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn the_login_limit_allows_a_burst() {
        let limiter = LoginLimiter::default();
        for _ in 0..LOGIN_BURST {
            assert!(limiter.attempt());
        }
        assert!(!limiter.attempt());
    }
}
