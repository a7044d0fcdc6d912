//! The public listener against slow and flooding clients.

use crate::support::{Harness, config, open_policy};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-0123456789";

async fn daemon(extra: &[(&str, &str)]) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the listener does not need the gateway.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = config(dir.path(), &format!("ws://{closed}"), TOKEN, extra);
    (Harness::start(cfg, open_policy(), 4096).await, dir)
}

/// Sends `bytes` one at a time until the server closes the connection; returns how many it
/// took (`None`: the server never hung up).
async fn drip(stream: &mut tokio::net::TcpStream, bytes: &[u8], gap: Duration) -> Option<usize> {
    let mut probe = [0u8; 512];
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(sent);
        }
        // A close (EOF, reset) or an answer (408) both end the attack.
        if tokio::time::timeout(gap, stream.read(&mut probe)).await.is_ok() {
            return Some(sent);
        }
    }
    None
}

/// Slowloris: headers sent a byte at a time never complete a request, and the listener hangs up
/// on the client rather than keep its connection open for as long as it keeps dripping.
#[tokio::test]
async fn a_client_dripping_its_headers_is_disconnected() {
    let (mut h, _dir) = daemon(&[("CLAWBRIDGE_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = tokio::net::TcpStream::connect(h.daemon.as_ref().unwrap().addr).await.unwrap();
    // A header that never ends (30 s of dripping; hyper's own size limits are far away).
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 300));
    let hung_up = drip(&mut stream, &request, Duration::from_millis(100)).await;
    assert!(hung_up.is_some(), "the listener kept a dripping client for {} bytes", request.len());
    // The listener still serves everyone else.
    let ok = reqwest::get(format!("{}/healthz", h.base_url())).await.unwrap();
    assert_eq!(ok.status(), 200);
    h.shutdown().await;
}

/// The listener alone, around a route that reads its body, with `limits`.
async fn listener(
    limits: clawbridge::config::ListenerLimits,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/echo", axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(clawbridge::http::serve_public(tcp, app, limits, stop.clone()));
    (addr, stop, task)
}

/// A client that sent its headers but drips its body gets 408 or a hang-up, not a task kept
/// for as long as it drips.
#[tokio::test]
async fn a_client_dripping_its_body_is_cut_off() {
    let limits = clawbridge::config::ListenerLimits { request: Duration::from_secs(1), ..Default::default() };
    let (addr, stop, task) = listener(limits).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
    let body = vec![b' '; 100_000];
    let hung_up = drip(&mut stream, &body, Duration::from_millis(100)).await;
    assert!(hung_up.is_some(), "the listener kept a client dripping its body");
    // A normal request on a new connection is served.
    let ok = reqwest::Client::new().post(format!("http://{addr}/echo")).body("abc").send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "3");
    stop.cancel();
    task.await.unwrap();
}

/// Over the connection cap a client waits for a slot (in the kernel's backlog) and is served
/// once one is free.
#[tokio::test]
async fn a_connection_over_the_cap_waits_for_a_slot() {
    let limits = clawbridge::config::ListenerLimits {
        max_connections: 1,
        header_read: Duration::from_secs(600),
        ..Default::default()
    };
    let (addr, stop, task) = listener(limits).await;
    // An idle connection takes the only slot.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(async move {
        reqwest::Client::new().post(format!("http://{addr}/echo")).body("abcd").send().await.unwrap().text().await
    });
    // Without a cap it would be answered at once; with it, it cannot be while the slot is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a second connection was served over a cap of one");
    drop(idle);
    assert_eq!(waiting.await.unwrap().unwrap(), "4");
    stop.cancel();
    task.await.unwrap();
}
