//! The one SSRF-safe downloader for inbound media of every platform (DESIGN.md §7).
//!
//! - https only; plain http only to a loopback host listed in the allow-list by name (the local
//!   fakes of the tests, a local reverse proxy), or upgraded to https when the policy says so;
//! - the host allow-list is checked on the parsed URL, and again at every redirect (redirects are
//!   followed here, never by the HTTP client);
//! - the body is streamed and the download stops at the size cap;
//! - the platform key is sent only to the platform's own hosts, re-checked at every hop.

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::time::Duration;

/// Where downloads may come from and how much of them.
#[derive(Clone, Debug)]
pub struct DownloadPolicy {
    /// Allowed hosts. A name also allows its subdomains (`kakaocdn.net` allows
    /// `k.kakaocdn.net`); an IP address allows only itself. A leading `*.` is ignored.
    pub hosts: Vec<String>,
    /// Largest body in bytes.
    pub max_bytes: u64,
    /// Redirects followed, each target checked like the first URL.
    pub max_redirects: usize,
    /// Fetch an `http://` URL of a listed, non-loopback host over https instead of refusing it
    /// (Kakao's image URLs may say http).
    pub upgrade_http: bool,
}

impl DownloadPolicy {
    /// `hosts` and a size cap; five redirects; plain http refused.
    pub fn new(hosts: impl IntoIterator<Item = impl Into<String>>, max_bytes: u64) -> Self {
        Self { hosts: hosts.into_iter().map(Into::into).collect(), max_bytes, max_redirects: 5, upgrade_http: false }
    }

    /// Whether `url` may be fetched (after the http upgrade, when on).
    pub fn allows(&self, url: &Url) -> bool {
        self.resolve(url).is_some()
    }

    /// The URL that is really fetched for `url`: itself, or its https form; `None` when refused.
    pub fn resolve(&self, url: &Url) -> Option<Url> {
        let host = UrlHost::of(url)?;
        if !listed(&host, &self.hosts) {
            return None;
        }
        match url.scheme() {
            "https" => Some(url.clone()),
            "http" if is_loopback(&host) => Some(url.clone()),
            "http" if self.upgrade_http => {
                let mut secure = url.clone();
                secure.set_scheme("https").ok()?;
                Some(secure)
            }
            _ => None,
        }
    }
}

/// A platform credential for downloads, sent only to the platform's own hosts.
#[derive(Clone)]
pub struct PlatformKey {
    header: HeaderName,
    value: SecretString,
    hosts: Vec<String>,
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKey").field("header", &self.header).field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl PlatformKey {
    /// `header: value`, sent to `hosts` (matched like the allow-list) and nowhere else.
    pub fn new(header: HeaderName, value: SecretString, hosts: Vec<String>) -> Self {
        Self { header, value, hosts }
    }

    fn applies_to(&self, url: &Url) -> bool {
        UrlHost::of(url).is_some_and(|host| listed(&host, &self.hosts))
    }
}

/// A downloaded file.
#[derive(Clone, Debug)]
pub struct Downloaded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The server's content type, without parameters.
    pub content_type: Option<String>,
}

/// Why a download was refused or failed. URLs in it have no query (tokens live there).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// Not https, not an allowed host, or a redirect to such a URL.
    #[error("download URL not allowed (https and listed hosts only): {0}")]
    NotAllowed(String),
    /// Larger than the cap, in bytes.
    #[error("download larger than the {0}-byte cap")]
    TooLarge(u64),
    /// Network error, timeout or HTTP error.
    #[error("download failed: {0}")]
    Failed(String),
}

/// Downloads within a [`DownloadPolicy`].
#[derive(Clone, Debug)]
pub struct Downloader {
    http: reqwest::Client,
    policy: DownloadPolicy,
    key: Option<PlatformKey>,
}

impl Downloader {
    /// A downloader whose every request (each redirect hop) has `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend).
    pub fn new(policy: DownloadPolicy, timeout: Duration) -> Result<Self, DownloadError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // Followed by hand, so the allow-list sees every target.
            .redirect(reqwest::redirect::Policy::none())
            // A listed name that resolves to a private address (DNS rebinding, a poisoned record)
            // must not reach the internal network.
            .dns_resolver(PublicAddressesOnly)
            .user_agent(concat!("clawbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DownloadError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, policy, key: None })
    }

    /// Sends `key` to the platform's hosts.
    #[must_use]
    pub fn with_key(mut self, key: PlatformKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &DownloadPolicy {
        &self.policy
    }

    /// Downloads `url` within the policy.
    ///
    /// # Errors
    /// A [`DownloadError`].
    pub async fn download(&self, url: &str) -> Result<Downloaded, DownloadError> {
        let parsed = Url::parse(url).map_err(|_| DownloadError::NotAllowed(redact_url(url)))?;
        let mut current = self.policy.resolve(&parsed).ok_or_else(|| DownloadError::NotAllowed(redact_url(url)))?;
        for _ in 0..=self.policy.max_redirects {
            let mut request = self.http.get(current.clone());
            if let Some(key) = self.key.as_ref().filter(|key| key.applies_to(&current)) {
                let mut value = HeaderValue::from_str(key.value.expose_secret())
                    .map_err(|_| DownloadError::Failed("the platform key is not a valid header value".to_owned()))?;
                value.set_sensitive(true);
                request = request.header(key.header.clone(), value);
            }
            let mut response = request.send().await.map_err(|e| DownloadError::Failed(describe_error(e)))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| DownloadError::Failed(format!("HTTP {status} without Location")))?;
                let next = current.join(location).map_err(|_| DownloadError::NotAllowed(redact_url(location)))?;
                current =
                    self.policy.resolve(&next).ok_or_else(|| DownloadError::NotAllowed(redact_url(next.as_str())))?;
                continue;
            }
            if !status.is_success() {
                return Err(DownloadError::Failed(format!("HTTP {status}")));
            }
            let max = self.policy.max_bytes;
            if response.content_length().is_some_and(|len| len > max) {
                return Err(DownloadError::TooLarge(max));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| DownloadError::Failed(describe_error(e)))? {
                if (bytes.len() + chunk.len()) as u64 > max {
                    return Err(DownloadError::TooLarge(max));
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(Downloaded { bytes, content_type });
        }
        Err(DownloadError::Failed("too many redirects".to_owned()))
    }
}

/// Resolves names with the system resolver and keeps only public addresses; `localhost` (which
/// the allow-list must name itself) may resolve to loopback. IP literals are not resolved: the
/// allow-list admits them only when listed themselves.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let kept = keep_public(&host, tokio::net::lookup_host((host.as_str(), 0)).await?);
            if kept.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `host` a download may connect to.
fn keep_public(host: &str, found: impl Iterator<Item = std::net::SocketAddr>) -> Vec<std::net::SocketAddr> {
    let local_ok = host == "localhost";
    found.filter(|addr| is_public(addr.ip()) || (local_ok && addr.ip().is_loopback())).collect()
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, CGNAT, unique
/// local, unspecified, multicast or documentation), IPv4-mapped IPv6 included.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// A URL's host: a name (lowercase) or an IP address.
enum UrlHost {
    Name(String),
    Ip(IpAddr),
}

impl UrlHost {
    fn of(url: &Url) -> Option<Self> {
        let raw = url.host_str()?;
        let bare = raw.trim_start_matches('[').trim_end_matches(']');
        Some(match bare.parse::<IpAddr>() {
            Ok(ip) => Self::Ip(ip),
            Err(_) => Self::Name(raw.to_ascii_lowercase()),
        })
    }
}

/// Whether `host` is one of `allowed`, or a subdomain of an allowed name.
fn listed(host: &UrlHost, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        let entry = entry.trim().trim_start_matches("*.").trim_start_matches('.');
        let entry = entry.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        match host {
            _ if entry.is_empty() => false,
            UrlHost::Ip(ip) => entry.parse::<IpAddr>().is_ok_and(|listed| listed == *ip),
            UrlHost::Name(name) => {
                *name == entry || (entry.parse::<IpAddr>().is_err() && name.ends_with(&format!(".{entry}")))
            }
        }
    })
}

fn is_loopback(host: &UrlHost) -> bool {
    match host {
        UrlHost::Name(name) => name == "localhost",
        UrlHost::Ip(ip) => ip.is_loopback(),
    }
}

/// A URL without its query and fragment (download tokens live there), for logs and errors.
pub fn redact_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

/// A reqwest error in words, without its URL (media URLs carry tokens).
pub fn describe_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "network error"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_listed_hosts_only() {
        let policy = DownloadPolicy::new(["kapso.ai", "*.fbcdn.net", "127.0.0.1", "localhost", "[::1]"], 10);
        let ok = |u: &str| policy.allows(&Url::parse(u).unwrap());
        assert!(ok("https://api.kapso.ai/media_download?token=x"));
        assert!(ok("https://scontent.xx.fbcdn.net/v/t.jpg"));
        assert!(!ok("http://api.kapso.ai/x"));
        assert!(!ok("https://evilkapso.ai/x"));
        assert!(!ok("https://kapso.ai.evil.com/x"));
        assert!(!ok("https://169.254.169.254/latest"));
        assert!(ok("http://127.0.0.1:8080/m"));
        assert!(ok("http://localhost:8080/m") && ok("http://[::1]:8080/m"));
        assert!(!ok("http://127.0.0.2:8080/m"), "a loopback address must be listed itself");
        assert!(!ok("file:///etc/passwd") && !ok("ftp://kapso.ai/x"));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "211.249.220.24", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    /// A listed name that resolves to a private address (DNS rebinding) gets no address to
    /// connect to; `localhost`, which the allow-list must name itself, keeps loopback.
    #[test]
    fn a_listed_name_resolving_to_a_private_address_is_refused() {
        let addrs = |list: &[&str]| -> Vec<std::net::SocketAddr> {
            list.iter().map(|ip| std::net::SocketAddr::new(ip.parse().unwrap(), 443)).collect()
        };
        let rebinding = addrs(&["10.0.0.7", "169.254.169.254", "127.0.0.1"]);
        assert!(keep_public("cdn.kakaocdn.net", rebinding.clone().into_iter()).is_empty());
        let mixed = addrs(&["10.0.0.7", "211.249.220.24"]);
        assert_eq!(keep_public("cdn.kakaocdn.net", mixed.into_iter()), addrs(&["211.249.220.24"]));
        assert_eq!(keep_public("localhost", addrs(&["127.0.0.1"]).into_iter()), addrs(&["127.0.0.1"]));
        assert!(keep_public("localhost", addrs(&["10.0.0.7"]).into_iter()).is_empty());
    }

    /// The downloader really resolves through the filter: `localhost` listed still downloads.
    #[tokio::test]
    async fn localhost_listed_by_name_still_resolves() {
        let local = reqwest::dns::Resolve::resolve(&PublicAddressesOnly, "localhost".parse().unwrap()).await.unwrap();
        assert!(local.into_iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn http_is_upgraded_only_when_asked_and_never_for_unlisted_hosts() {
        let policy = DownloadPolicy { upgrade_http: true, ..DownloadPolicy::new(["kakaocdn.net", "127.0.0.1"], 10) };
        let resolve = |u: &str| policy.resolve(&Url::parse(u).unwrap()).map(String::from);
        assert_eq!(resolve("http://k.kakaocdn.net/a.jpg").as_deref(), Some("https://k.kakaocdn.net/a.jpg"));
        assert_eq!(resolve("http://127.0.0.1:9/a.jpg").as_deref(), Some("http://127.0.0.1:9/a.jpg"));
        assert_eq!(resolve("http://evil.example/a.jpg"), None);
        assert_eq!(
            redact_url("https://api.kapso.ai/media_download?token=secret"),
            "https://api.kapso.ai/media_download"
        );
    }
}
