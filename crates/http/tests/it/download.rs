//! The downloader against a local fake: https only, allow-list at every hop, size cap, key scope.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use clawbridge_http::{DownloadError, DownloadPolicy, Downloader, PlatformKey};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests as (path and query, the key header if sent).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Fake {
    port: u16,
    seen: Seen,
}

impl Fake {
    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    fn key_sent_to(&self, path: &str) -> Option<Option<String>> {
        self.seen.lock().unwrap().iter().find(|(p, _)| p == path).map(|(_, key)| key.clone())
    }
}

async fn fake() -> Fake {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/small.png",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "image/png; q=1")], b"\x89PNG".to_vec()) }),
        )
        .route("/big.bin", axum::routing::get(|| async { vec![0u8; 64] }))
        .route(
            "/stream.bin",
            axum::routing::get(|| async {
                // Chunked, no Content-Length: the cap must stop the stream itself.
                let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![0u8; 16]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route("/to-evil", axum::routing::get(|| async { redirect("https://evil.example.com/x.png") }))
        .route(
            "/to-unlisted-loopback",
            axum::routing::get(move || async move { redirect(&format!("http://127.0.0.2:{port}/small.png")) }),
        )
        .route(
            "/to-localhost",
            axum::routing::get(move || async move { redirect(&format!("http://localhost:{port}/small.png?hop=2")) }),
        )
        .route("/loop", axum::routing::get(|| async { redirect("/loop") }))
        .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            async move {
                let key = request.headers().get("x-api-key").map(|v| v.to_str().unwrap().to_owned());
                let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
                record.lock().unwrap().push((path, key));
                next.run(request).await
            }
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { port, seen }
}

fn redirect(location: &str) -> impl IntoResponse + use<> {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, location.parse().unwrap());
    (StatusCode::FOUND, headers)
}

fn downloader(max_bytes: u64) -> Downloader {
    let policy = DownloadPolicy::new(["127.0.0.1", "localhost", "kapso.ai"], max_bytes);
    let key = PlatformKey::new(
        header::HeaderName::from_static("x-api-key"),
        "secret-key".to_owned().into(),
        vec!["127.0.0.1".into(), "kapso.ai".into()],
    );
    Downloader::new(policy, Duration::from_secs(5)).unwrap().with_key(key)
}

#[tokio::test]
async fn a_listed_file_downloads_with_the_key_only_on_the_platform_host() {
    let fake = fake().await;
    let got = downloader(1024).download(&fake.url("127.0.0.1", "/small.png")).await.unwrap();
    assert_eq!(got.bytes, b"\x89PNG");
    assert_eq!(got.content_type.as_deref(), Some("image/png"));
    assert_eq!(fake.key_sent_to("/small.png"), Some(Some("secret-key".to_owned())));

    // Redirected to another allowed host: followed, but the key stays behind.
    let got = downloader(1024).download(&fake.url("127.0.0.1", "/to-localhost")).await.unwrap();
    assert_eq!(got.bytes, b"\x89PNG");
    assert_eq!(fake.key_sent_to("/small.png?hop=2"), Some(None));
}

#[tokio::test]
async fn plain_http_unlisted_hosts_and_other_schemes_are_refused_before_any_request() {
    let fake = fake().await;
    let d = downloader(1024);
    for url in [
        "http://kapso.ai/media.png".to_owned(),
        "https://evil.example.com/x.png".to_owned(),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
        fake.url("127.0.0.2", "/small.png"),
    ] {
        assert!(matches!(d.download(&url).await, Err(DownloadError::NotAllowed(_))), "{url}");
    }
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let fake = fake().await;
    let d = downloader(1024);
    let err = d.download(&fake.url("127.0.0.1", "/to-evil")).await.unwrap_err();
    assert_eq!(err, DownloadError::NotAllowed("https://evil.example.com/x.png".to_owned()));
    let err = d.download(&fake.url("127.0.0.1", "/to-unlisted-loopback")).await.unwrap_err();
    assert!(matches!(err, DownloadError::NotAllowed(_)), "{err}");
    let err = d.download(&fake.url("127.0.0.1", "/loop")).await.unwrap_err();
    assert_eq!(err, DownloadError::Failed("too many redirects".to_owned()));
    assert_eq!(fake.seen.lock().unwrap().iter().filter(|(p, _)| p == "/loop").count(), 6, "five redirects followed");
}

#[tokio::test]
async fn oversized_bodies_stop_at_the_cap() {
    let fake = fake().await;
    let d = downloader(32);
    assert_eq!(d.download(&fake.url("127.0.0.1", "/big.bin")).await.unwrap_err(), DownloadError::TooLarge(32));
    assert_eq!(d.download(&fake.url("127.0.0.1", "/stream.bin")).await.unwrap_err(), DownloadError::TooLarge(32));
    assert_eq!(downloader(128).download(&fake.url("127.0.0.1", "/stream.bin")).await.unwrap().bytes.len(), 128);
}
