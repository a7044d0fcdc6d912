//! Browser tests' harness: real headless Chromium (Debian's `chromium`) driven by
//! `chromedriver` through the W3C WebDriver protocol.
//!
//! The protocol is a dozen JSON-over-HTTP endpoints, so this speaks them with the reqwest client
//! the workspace already has instead of a WebDriver crate: `fantoccini` would add about forty
//! crates to the build (a second `http`, `cookie` and ICU through the `webdriver` crate) for the
//! same calls.
//!
//! [`Browser::start`] returns `None` (with a note) when Chromium or chromedriver is missing,
//! unless `CLAWBRIDGE_REQUIRE_CHROMIUM` is set: then a missing browser fails the test.
//! Screenshots are kept as test artefacts under `target/browser-artefacts/`.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C element reference key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One Chromium session behind its own chromedriver process.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

fn executable(candidates: &[&str]) -> Option<String> {
    candidates.iter().find_map(|bin| {
        let out = Command::new("sh").arg("-c").arg(format!("command -v {bin}")).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where screenshots go: `target/browser-artefacts/`.
pub fn artefacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session of `width`×`height` CSS pixels (below
    /// 500 px wide, a phone: touch and a mobile viewport).
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let (Some(chromium), Some(driver)) =
            (executable(&["chromium", "chromium-browser"]), executable(&["chromedriver"]))
        else {
            assert!(
                std::env::var_os("CLAWBRIDGE_REQUIRE_CHROMIUM").is_none(),
                "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            eprintln!("note: chromium or chromedriver is not installed: browser test skipped");
            return None;
        };
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { http, session: String::new(), driver: child, _profile: profile };

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = browser.http.get(format!("{base}/status")).send().await.ok();
            let ready = match ready {
                Some(r) => r.json::<Value>().await.ok().is_some_and(|v| v["value"]["ready"] == true),
                None => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let mut options = json!({"binary": chromium, "args": args});
        // Headless Chromium's window is at least 500 px wide: phone widths need device emulation.
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let created: Value = browser
            .http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        browser.session = format!("{base}/session/{id}");
        Some(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// One WebDriver command; `Err` with the driver's answer when it refuses (a stale element
    /// after the page reloaded, say).
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.session);
        let mut req = self.http.request(method.clone(), &url);
        // POSTs need a body, even an empty object.
        if method == reqwest::Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let status = res.status();
        let value: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("webdriver {method} {path}: {status} {value}"));
        }
        Ok(value["value"].clone())
    }

    /// Loads `url` and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The page's address now.
    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's HTML now.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Every element matching the CSS selector now (none is not an error).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found =
            self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css}))).await;
        found
            .as_array()
            .map(|list| {
                list.iter().filter_map(|e| e[ELEMENT_KEY].as_str()).map(|id| Element { id: id.to_owned() }).collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to `deadline` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, deadline: Duration) -> Element {
        let until = Instant::now() + deadline;
        loop {
            if let Some(first) = self.find_all(css).await.into_iter().next() {
                return first;
            }
            if Instant::now() > until {
                let page = self.source().await;
                panic!("no element {css:?} within {deadline:?}; page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits up to `deadline` until the page's visible text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            // The page may reload (a form's redirect, a live refresh) between finding the body
            // and reading it: a stale element is "not yet", not a failure.
            let body = self.find_all("body").await;
            if let Some(body) = body.first()
                && let Ok(text) = self.try_call(reqwest::Method::GET, &format!("/element/{}/text", body.id), None).await
                && text.as_str().is_some_and(|t| t.contains(needle))
            {
                return;
            }
            if Instant::now() > until {
                let page = self.source().await;
                panic!("the page never showed {needle:?} within {deadline:?}; page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, el: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", el.id), None).await;
    }

    /// Types `text` into an input.
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{}/value", el.id), Some(json!({"text": text}))).await;
    }

    /// Empties an input.
    pub async fn clear(&self, el: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", el.id), None).await;
    }

    /// An element's rendered text.
    pub async fn text(&self, el: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", el.id), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An element's attribute (or property), if it has one.
    pub async fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.call(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", el.id), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    #[allow(dead_code, reason = "for the console's session-cookie checks")]
    /// The page's cookies as WebDriver gives them (`name`, `value`, `httpOnly`, `sameSite`…).
    pub async fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", None).await.as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the viewport as `target/browser-artefacts/{name}.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = artefacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked did not call `close`: end the session so chromedriver takes
        // Chromium down with it, then stop chromedriver.
        if let Some(rest) = self.session.strip_prefix("http://") {
            use std::io::Write as _;
            if let Some((host, path)) = rest.split_once('/')
                && let Ok(mut conn) = std::net::TcpStream::connect(host)
            {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(conn, "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                let _ = std::io::Read::read(&mut conn, &mut [0u8; 512]);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The harness itself, on a page that needs no server: find, type, click, read, screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_chromium_session_finds_types_clicks_and_takes_a_screenshot() {
    let Some(browser) = Browser::start(390, 844).await else { return };
    let page = "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>t</title>\
        <input id=q><button id=b onclick=\"document.getElementById('out').textContent='안녕 '+document.getElementById('q').value\">go</button>\
        <p id=out></p>";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.html");
    std::fs::write(&file, page).unwrap();
    browser.goto(&format!("file://{}", file.display())).await;
    let input = browser.wait_for("#q", Duration::from_secs(10)).await;
    browser.type_into(&input, "draft").await;
    browser.clear(&input).await;
    browser.type_into(&input, "clawbridge").await;
    assert_eq!(browser.attribute(&input, "id").await.as_deref(), Some("q"));
    assert!(browser.current_url().await.starts_with("file://"));
    browser.click(&browser.wait_for("#b", Duration::from_secs(5)).await).await;
    browser.wait_for_text("안녕 clawbridge", Duration::from_secs(10)).await;
    let width = browser.execute("return window.innerWidth", vec![]).await;
    assert_eq!(width, json!(390));
    let shot = browser.screenshot("harness").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 100);
    assert!(browser.find_all("#missing").await.is_empty());
    browser.close().await;
}
