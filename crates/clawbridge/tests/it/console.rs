//! The operator console (`/console`): access, sessions, CSRF, the login limit, and each page
//! and action against a daemon with the recording channel and a fake gateway. The browser tests
//! (real headless Chromium through WebDriver) are at the end.

use crate::support::{Harness, config, eventually, open_policy, text};
use clawbridge::console::{ACTIONS, PAGES, SCRIPT_PATH};
use clawbridge_core::{AccountId, ChannelId, PeerId, SendError};
use clawbridge_store::{PairingOutcome, PairingRequest};
use clawbridge_testkit::fake_gateway::FakeGateway;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HOST, LOCATION, SET_COOKIE};
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";
const CONSOLE_TOKEN: &str = "console-token-for-tests-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

async fn daemon(console_token: Option<&str>) -> (FakeGateway, Harness, tempfile::TempDir) {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut extra = Vec::new();
    if let Some(token) = console_token {
        extra.push(("CLAWBRIDGE_CONSOLE_TOKEN", token));
    }
    let cfg = config(dir.path(), &fake.url(), TOKEN, &extra);
    let harness = Harness::start(cfg, open_policy(), 4096).await;
    (fake, harness, dir)
}

/// A browser without a cookie jar of its own: the session cookie is kept by hand, redirects are
/// not followed, so each answer is seen as it is.
struct Client {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
}

/// The value of the `name="csrf"` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// `name=value` of a `Set-Cookie` for `name`.
fn cookie_from(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

impl Client {
    fn new(h: &Harness) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { http, base: h.base_url(), session: None }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.session {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.session {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// The login form's CSRF token and its cookie.
    async fn login_form(&self) -> (String, String) {
        let response = self.get("/console/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = cookie_from(&response, "clawbridge_console_login").expect("the login cookie");
        (csrf_of(&response.text().await.unwrap()), cookie)
    }

    /// Posts the login form with `token`.
    async fn try_login(&self, token: &str) -> reqwest::Response {
        let (csrf, cookie) = self.login_form().await;
        self.http
            .post(format!("{}/console/login", self.base))
            .header(COOKIE, cookie)
            .form(&[("csrf", csrf.as_str()), ("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// Logs in; returns the CSRF token of the session's forms.
    async fn login(&mut self, token: &str) -> String {
        let response = self.try_login(token).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/console/overview");
        let set =
            response.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
        let session = set.iter().find(|v| v.starts_with("clawbridge_console=")).expect("a session cookie");
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
        self.session = cookie_from(&response, "clawbridge_console");
        let page = self.get("/console/overview").await;
        assert_eq!(page.status(), StatusCode::OK);
        csrf_of(&page.text().await.unwrap())
    }
}

#[tokio::test]
async fn no_console_route_answers_without_a_session() {
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let client = Client::new(&h);
    let mut gets: Vec<String> = PAGES.iter().map(|(_, path)| (*path).to_owned()).collect();
    gets.extend(PAGES.iter().map(|(_, path)| format!("{path}?fragment=1")));
    gets.extend(["/console".to_owned(), SCRIPT_PATH.to_owned()]);
    for path in &gets {
        let response = client.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(response.headers()[LOCATION], "/console/login", "GET {path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("<main"), "GET {path} shows nothing: {body}");
    }
    for path in ACTIONS {
        let response = client.post(path, &[("action", "retry"), ("target", "all")]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "POST {path}");
    }
    // A made-up session id is no session.
    let forged = Client { session: Some(format!("clawbridge_console={}", "ab".repeat(32))), ..Client::new(&h) };
    assert_eq!(forged.get("/console/overview").await.status(), StatusCode::SEE_OTHER);
    // The login form itself is public, and the console's pages are not cached.
    let login = client.get("/console/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");
    assert!(login.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_shows_the_form_again_and_logins_are_rate_limited() {
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let mut client = Client::new(&h);
    let wrong = client.try_login("not-the-token").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_from(&wrong, "clawbridge_console").is_none(), "no session");
    let page = wrong.text().await.unwrap();
    assert!(page.contains("Wrong token") && page.contains("name=\"token\""), "{page}");

    // Without the login form's token, nothing is checked at all.
    let no_csrf = client
        .http
        .post(format!("{}/console/login", client.base))
        .form(&[("token", CONSOLE_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    // Five attempts in a burst (one used above), then refused even with the right token.
    for _ in 1..clawbridge::console::auth::LOGIN_BURST {
        assert_eq!(client.try_login("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = client.try_login(CONSOLE_TOKEN).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.text().await.unwrap().contains("Too many attempts"));
    assert!(client.session.is_none());
    // After the refill period one attempt is back.
    tokio::time::sleep(clawbridge::console::auth::LOGIN_REFILL + Duration::from_millis(500)).await;
    client.login(CONSOLE_TOKEN).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let store = h.store().await;
    let code = pending_code(&store, "15551230001").await;
    let mut client = Client::new(&h);
    let csrf = client.login(CONSOLE_TOKEN).await;
    let approve = [("action", "approve"), ("channel", "test"), ("code", code.as_str())];

    assert_eq!(client.post("/console/pairing/act", &approve).await.status(), StatusCode::FORBIDDEN);
    let zeros = "0".repeat(64);
    let wrong: Vec<(&str, &str)> = approve.iter().copied().chain([("csrf", zeros.as_str())]).collect();
    assert_eq!(client.post("/console/pairing/act", &wrong).await.status(), StatusCode::FORBIDDEN);
    for path in ACTIONS {
        assert_eq!(client.post(path, &[("action", "retry")]).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(store.list_pairings(None, clawbridge::util::now_ms()).await.unwrap().len(), 1, "still pending");

    let right: Vec<(&str, &str)> = approve.iter().copied().chain([("csrf", csrf.as_str())]).collect();
    let done = client.post("/console/pairing/act", &right).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/console/pairing?notice=approved");
    let peer = PeerId::new("15551230001");
    assert!(store.is_approved(&ChannelId::new("test"), &AccountId::new("default"), &peer).await.unwrap());
    // The sender is told (pipeline.approved_reply), and the audit trail has it.
    let sent = h.wait_sent(1, DEADLINE).await;
    assert_eq!(sent[0].peer.as_str(), "15551230001");
    let audit = store.audit_log(5).await.unwrap();
    assert_eq!(audit[0].action, "pairing.approve");

    // Revoke: the form names the sender by a digest, so the page holds no unmasked number.
    let page = client.get("/console/pairing").await.text().await.unwrap();
    assert!(page.contains("*******0001") && !page.contains("15551230001"), "{page}");
    let at = page.find("name=\"sender\" value=\"").expect("a revoke form") + "name=\"sender\" value=\"".len();
    let sender = page[at..].split('"').next().unwrap().to_owned();
    let unknown = [("csrf", csrf.as_str()), ("action", "revoke"), ("channel", "test"), ("sender", "00")];
    assert_eq!(
        client.post("/console/pairing/act", &unknown).await.headers()[LOCATION],
        "/console/pairing?notice=nothing"
    );
    let revoke = [("csrf", csrf.as_str()), ("action", "revoke"), ("channel", "test"), ("sender", sender.as_str())];
    assert_eq!(
        client.post("/console/pairing/act", &revoke).await.headers()[LOCATION],
        "/console/pairing?notice=revoked"
    );
    assert!(!store.is_approved(&ChannelId::new("test"), &AccountId::new("default"), &peer).await.unwrap());
    assert_eq!(store.audit_log(1).await.unwrap()[0].target, "test/default/*******0001");

    // Logging out ends the session.
    assert_eq!(client.post("/console/logout", &[("csrf", csrf.as_str())]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(client.get("/console/overview").await.status(), StatusCode::SEE_OTHER);
    h.shutdown().await;
}

/// A pending pairing code for `peer` on the test channel.
async fn pending_code(store: &clawbridge_store::SharedStore, peer: &str) -> String {
    let request = PairingRequest {
        channel: ChannelId::new("test"),
        account: AccountId::new("default"),
        peer: PeerId::new(peer),
        display_name: Some("김민수 Minsu".to_owned()),
        ttl_ms: 3_600_000,
        max_pending: 3,
    };
    match store.request_pairing(&request, &clawbridge::util::pairing_code(), clawbridge::util::now_ms()).await.unwrap()
    {
        PairingOutcome::Issued { code, .. } => code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_pages_show_health_conversations_masked_dead_letters_and_pairing() {
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let store = h.store().await;
    h.bridge().accept(text("15551234567", "m-1", "안녕하세요 <b>hi</b>")).await.unwrap();
    h.wait_sent(1, DEADLINE).await;
    h.recorder.fail_next([SendError::Permanent("131047 outside the 24 h window".into())]);
    h.bridge().accept(text("15559876543", "m-2", "doomed")).await.unwrap();
    eventually(DEADLINE, "a dead letter", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().outbox_dead == 1 }
    })
    .await;
    let code = pending_code(&store, "15550001111").await;
    let mut client = Client::new(&h);
    let csrf = client.login(CONSOLE_TOKEN).await;

    let overview = client.get("/console/overview").await.text().await.unwrap();
    assert!(overview.contains("id=\"gateway-state\""), "{overview}");
    assert!(overview.contains("test/default"), "the channel account's health");
    assert!(overview.contains("<svg") && (overview.contains("<polyline") || overview.contains("<path")));
    assert!(overview.contains("131047"), "the last errors: {overview}");
    assert!(!overview.contains("15559876543"), "numbers masked in errors");

    let conversations = client.get("/console/conversations").await.text().await.unwrap();
    assert!(conversations.contains("*******4567"), "{conversations}");
    assert!(!conversations.contains("15551234567"), "the number is masked everywhere on the page");
    assert!(conversations.contains("&lt;b&gt;hi&lt;/b&gt;"), "message text is escaped");
    assert!(conversations.contains("안녕하세요"));
    assert!(conversations.contains("FAKE-REPLY"));
    assert!(conversations.contains("cb1-"), "the agent run that answered");

    let fragment = client.get("/console/dead-letters?fragment=1").await.text().await.unwrap();
    assert!(!fragment.contains("<html") && fragment.contains("131047"), "{fragment}");
    let dead = store.dead_letters(10).await.unwrap();
    let target = format!("outbox/{}", dead[0].id);
    let retry =
        client.post("/console/dead-letters/act", &[("csrf", &csrf), ("action", "retry"), ("target", &target)]).await;
    assert_eq!(retry.headers()[LOCATION], "/console/dead-letters?notice=retried");
    let sent = h.wait_sent(2, DEADLINE).await;
    assert_eq!(sent[1].peer.as_str(), "15559876543", "sent on retry");
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    let page = client.get("/console/dead-letters?notice=retried").await.text().await.unwrap();
    assert!(page.contains("dead_letter.retry") && page.contains("Retried"), "{page}");
    // Bad input: a clear 400 and nothing changes.
    let bad =
        client.post("/console/dead-letters/act", &[("csrf", &csrf), ("action", "explode"), ("target", "all")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let pairing = client.get("/console/pairing").await.text().await.unwrap();
    assert!(
        pairing.contains(&code) && pairing.contains("김민수 Minsu") && pairing.contains("*******1111"),
        "{pairing}"
    );
    let reject = client
        .post("/console/pairing/act", &[("csrf", &csrf), ("action", "reject"), ("channel", "test"), ("code", &code)])
        .await;
    assert_eq!(reject.headers()[LOCATION], "/console/pairing?notice=rejected");
    assert!(store.list_pairings(None, clawbridge::util::now_ms()).await.unwrap().is_empty());

    for (_, path) in PAGES {
        let response = client.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("name=\"viewport\"") && body.contains("@media (max-width"), "{path} at phone width");
    }
    let kakao = client.get("/console/kakao").await.text().await.unwrap();
    assert!(kakao.contains("Kakao is not configured"), "{kakao}");
    let campaigns = client.get("/console/campaigns").await.text().await.unwrap();
    assert!(campaigns.contains("No campaigns"), "{campaigns}");
    h.shutdown().await;
}

#[tokio::test]
async fn without_a_token_the_console_answers_on_loopback_to_loopback_hosts_only() {
    let (_fake, mut h, _dir) = daemon(None).await;
    let mut client = Client::new(&h);
    let form = client.get("/console/login").await.text().await.unwrap();
    assert!(!form.contains("name=\"token\""), "no token to ask for: {form}");
    client.login("").await;
    // A page that resolved its own name to 127.0.0.1 (DNS rebinding) is refused.
    let rebound = client
        .http
        .get(format!("{}/console/overview", client.base))
        .header(HOST, "attacker.example")
        .header(COOKIE, client.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let login = client.http.get(format!("{}/console/login", client.base)).header(HOST, "attacker.example").send().await;
    assert_eq!(login.unwrap().status(), StatusCode::FORBIDDEN);
    h.shutdown().await;
}

#[test]
fn without_a_token_a_public_listener_turns_the_console_off_and_says_how_to_turn_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let public = config(dir.path(), "ws://127.0.0.1:1", TOKEN, &[("CLAWBRIDGE_LISTEN", "0.0.0.0:18790")]);
    let why = clawbridge::console::off_reason(&public).expect("off");
    assert!(why.contains("0.0.0.0:18790"), "{why}");
    assert!(clawbridge::console::TURN_ON.contains("CLAWBRIDGE_CONSOLE_TOKEN"));
    let with_token = config(
        dir.path(),
        "ws://127.0.0.1:1",
        TOKEN,
        &[("CLAWBRIDGE_LISTEN", "0.0.0.0:18790"), ("CLAWBRIDGE_CONSOLE_TOKEN", CONSOLE_TOKEN)],
    );
    assert!(clawbridge::console::off_reason(&with_token).is_none());
    let loopback = config(dir.path(), "ws://127.0.0.1:1", TOKEN, &[]);
    assert!(clawbridge::console::off_reason(&loopback).is_none());
}

// ---- in real headless Chromium ---------------------------------------------------------------------

/// A daemon with a delivered conversation, a dead letter and a pending pairing code.
async fn busy_daemon() -> (FakeGateway, Harness, tempfile::TempDir, String, i64) {
    let (fake, h, dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let store = h.store().await;
    h.bridge().accept(text("15551234567", "b-1", "주문 상태 알려주세요 (order status)")).await.unwrap();
    h.wait_sent(1, DEADLINE).await;
    h.recorder.fail_next([SendError::Permanent("131047 outside the 24 h window".into())]);
    h.bridge().accept(text("15559876543", "b-2", "doomed")).await.unwrap();
    eventually(DEADLINE, "a dead letter", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().outbox_dead == 1 }
    })
    .await;
    let dead = store.dead_letters(10).await.unwrap()[0].id;
    let code = pending_code(&store, "15550001111").await;
    let campaign = clawbridge_store::NewCampaign {
        id: "c-sale".to_owned(),
        name: "연말 세일 Year-end sale".to_owned(),
        channel: "test".to_owned(),
        account: "default".to_owned(),
        spec: r#"{"variants":[{"name":"A"}]}"#.to_owned(),
        rate_per_minute: Some(60),
        quiet_hours: false,
        start_at: None,
        link_key: clawbridge::campaign::new_link_key().encode(),
    };
    assert!(store.create_campaign(&campaign, clawbridge::util::now_ms()).await.unwrap());
    (fake, h, dir, code, dead)
}

async fn browser_login(browser: &crate::browser::Browser, base: &str) {
    browser.goto(&format!("{base}/console/overview")).await;
    let token = browser.wait_for("#token", DEADLINE).await;
    assert!(browser.current_url().await.ends_with("/console/login"), "no session: the login form");
    browser.type_into(&token, CONSOLE_TOKEN).await;
    let submit = browser.wait_for("#login button", DEADLINE).await;
    browser.click(&submit).await;
    browser.wait_for("#gateway-state", DEADLINE).await;
}

#[tokio::test]
async fn in_chromium_an_operator_logs_in_approves_a_code_retries_a_dead_letter_and_sees_a_chart() {
    let (_fake, mut h, _dir, code, dead) = busy_daemon().await;
    let Some(browser) = crate::browser::Browser::start(1280, 900).await else { return h.shutdown().await };
    let base = h.base_url();
    let store = h.store().await;

    // A wrong token: the form again, with the error.
    browser.goto(&format!("{base}/console/login")).await;
    let token = browser.wait_for("#token", DEADLINE).await;
    browser.type_into(&token, "wrong").await;
    browser.click(&browser.wait_for("#login button", DEADLINE).await).await;
    browser.wait_for_text("Wrong token", DEADLINE).await;
    browser.screenshot("console-login-wrong-token").await;

    browser_login(&browser, &base).await;
    let cookies = browser.cookies().await;
    let session = cookies.iter().find(|c| c["name"] == "clawbridge_console").expect("the session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    // The charts: SVG drawn on the server, with their lines.
    let lines = browser.find_all("#chart-messages svg polyline, #chart-messages svg path").await;
    assert!(!lines.is_empty(), "the messages chart has a line");
    assert!(!browser.find_all("#chart-latency svg").await.is_empty());
    browser.wait_for_text("개요", DEADLINE).await;
    browser.screenshot("console-overview").await;

    // Approve the pending code.
    browser.goto(&format!("{base}/console/pairing")).await;
    let approve = browser.wait_for(&format!("tr[data-code=\"{code}\"] button"), DEADLINE).await;
    assert!(browser.text(&approve).await.contains("Approve"));
    browser.screenshot("console-pairing").await;
    browser.click(&approve).await;
    browser.wait_for_text("Approved.", DEADLINE).await;
    let peer = PeerId::new("15550001111");
    assert!(store.is_approved(&ChannelId::new("test"), &AccountId::new("default"), &peer).await.unwrap());
    browser.wait_for("#approved", DEADLINE).await;
    browser.screenshot("console-pairing-approved").await;

    // Retry the dead letter: it is sent.
    browser.goto(&format!("{base}/console/dead-letters")).await;
    let retry = browser.wait_for(&format!("tr[data-target=\"outbox/{dead}\"] button"), DEADLINE).await;
    assert!(browser.text(&retry).await.contains("Retry"));
    browser.screenshot("console-dead-letters").await;
    browser.click(&retry).await;
    browser.wait_for_text("Retried", DEADLINE).await;
    let sent = h.wait_sent(3, DEADLINE).await;
    assert!(sent.iter().any(|m| m.peer.as_str() == "15559876543"), "the retried message went out");
    browser.wait_for("#audit", DEADLINE).await;
    browser.screenshot("console-dead-letters-retried").await;

    for (page, marker) in [("conversations", "대화"), ("campaigns", "연말 세일"), ("kakao", "카카오")] {
        browser.goto(&format!("{base}/console/{page}")).await;
        browser.wait_for_text(marker, DEADLINE).await;
        browser.screenshot(&format!("console-{page}")).await;
    }
    let conversations = browser.source().await;
    assert!(!conversations.contains("15551234567"), "numbers are masked");
    browser.close().await;
    h.shutdown().await;
}

#[tokio::test]
async fn in_chromium_pages_update_without_a_reload_and_fit_a_phone() {
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let Some(browser) = crate::browser::Browser::start(390, 844).await else { return h.shutdown().await };
    let base = h.base_url();
    browser_login(&browser, &base).await;
    let fits =
        browser.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", Vec::new()).await;
    assert_eq!(fits, serde_json::Value::Bool(true), "no sideways scrolling at phone width");
    browser.screenshot("console-overview-phone").await;

    // A new dead letter appears on the open page by itself (the page polls its fragment).
    browser.goto(&format!("{base}/console/dead-letters")).await;
    browser.wait_for_text("None.", DEADLINE).await;
    browser.execute("window.__marker = 'same page';", Vec::new()).await;
    h.recorder.fail_next([SendError::Permanent("131026 message undeliverable".into())]);
    h.bridge().accept(text("15557770000", "p-1", "hello")).await.unwrap();
    browser.wait_for_text("131026", DEADLINE).await;
    let same = browser.execute("return window.__marker === 'same page';", Vec::new()).await;
    assert_eq!(same, serde_json::Value::Bool(true), "updated in place, not reloaded");
    browser.screenshot("console-dead-letters-phone").await;
    browser.close().await;
    h.shutdown().await;
}

#[tokio::test]
async fn campaigns_are_paused_resumed_and_cancelled_from_the_console() {
    use clawbridge_store::{CampaignState, NewCampaign};
    let (_fake, mut h, _dir) = daemon(Some(CONSOLE_TOKEN)).await;
    let store = h.store().await;
    let now = clawbridge::util::now_ms();
    for id in ["c-later", "c-draft"] {
        let campaign = NewCampaign {
            id: id.to_owned(),
            name: format!("연말 세일 {id}"),
            channel: "test".to_owned(),
            account: "default".to_owned(),
            spec: r#"{"variants":[{"name":"A"}]}"#.to_owned(),
            rate_per_minute: Some(60),
            quiet_hours: false,
            start_at: None,
            link_key: clawbridge::campaign::new_link_key().encode(),
        };
        assert!(store.create_campaign(&campaign, now).await.unwrap());
    }
    // Scheduled for tomorrow: the runner leaves it alone.
    let tomorrow = Some(now + 86_400_000);
    let scheduled =
        store.transition_campaign("c-later", &[CampaignState::Draft], CampaignState::Scheduled, None, tomorrow, now);
    assert!(scheduled.await.unwrap());
    let mut client = Client::new(&h);
    let csrf = client.login(CONSOLE_TOKEN).await;
    let page = client.get("/console/campaigns").await.text().await.unwrap();
    assert!(page.contains("연말 세일 c-later") && page.contains("<progress"), "{page}");

    let act = |action: &'static str, id: &'static str| {
        let csrf = csrf.clone();
        let client = &client;
        async move {
            let response =
                client.post("/console/campaigns/act", &[("csrf", &csrf), ("action", action), ("id", id)]).await;
            response.headers()[LOCATION].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(act("pause", "c-later").await, "/console/campaigns?notice=paused");
    assert_eq!(store.get_campaign("c-later").await.unwrap().unwrap().state, CampaignState::Paused);
    assert_eq!(act("pause", "c-later").await, "/console/campaigns?notice=nothing", "paused already");
    assert_eq!(act("resume", "c-later").await, "/console/campaigns?notice=resumed");
    assert_ne!(store.get_campaign("c-later").await.unwrap().unwrap().state, CampaignState::Paused);
    assert_eq!(act("cancel", "c-draft").await, "/console/campaigns?notice=cancelled");
    assert_eq!(store.get_campaign("c-draft").await.unwrap().unwrap().state, CampaignState::Cancelled);
    let audit: Vec<String> = store.audit_log(10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(audit, ["campaign.cancelled", "campaign.resumed", "campaign.paused"]);
    let bad = client.post("/console/campaigns/act", &[("csrf", &csrf), ("action", "delete"), ("id", "c-later")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    h.shutdown().await;
}

#[tokio::test]
async fn the_kakao_page_shows_the_login_and_the_templates_review_status() {
    let fake = FakeGateway::start(TOKEN).await;
    let nhn = clawbridge_testkit::fake_nhn::FakeNhn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawbridge.toml");
    std::fs::write(
        &file,
        "[[bizmsg.templates]]\ntemplateCode = \"ORDER_SHIPPED\"\ntext = \"#{name}님, 주문하신 상품이 발송되었습니다.\"\n\
         variables = [\"name\"]\n",
    )
    .unwrap();
    let state = dir.path().display().to_string();
    let mut vars: std::collections::HashMap<String, String> = [
        ("HOME", state.as_str()),
        ("CLAWBRIDGE_STATE_DIR", state.as_str()),
        ("CLAWBRIDGE_LISTEN", "127.0.0.1:0"),
        ("OPENCLAW_GATEWAY_URL", fake.url().as_str()),
        ("OPENCLAW_TOKEN", TOKEN),
        ("CLAWBRIDGE_CONSOLE_TOKEN", CONSOLE_TOKEN),
        ("KAKAO_REST_API_KEY", "kakao-rest-api-key-for-tests"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(nhn.env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    let cfg = clawbridge::config::Config::load_with(Some(&file), &|k| vars.get(k).cloned()).expect("valid config");
    let mut h = Harness::start(cfg, open_policy(), 4096).await;
    let mut client = Client::new(&h);
    client.login(CONSOLE_TOKEN).await;
    let page = client.get("/console/kakao").await.text().await.unwrap();
    assert!(page.contains("Kakao Login") && page.contains("not logged in"), "{page}");
    assert!(page.contains("clawbridge kakao login"), "the fix: {page}");
    assert!(page.contains("ORDER_SHIPPED") && page.contains("not synced") && page.contains("alimtalk"), "{page}");
    h.shutdown().await;
}

#[test]
fn doctor_says_how_to_turn_the_console_on_when_it_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.arg("doctor")
            .arg("--json")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("CLAWBRIDGE_STATE_DIR", dir.path())
            .env("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:1")
            .env("RUST_LOG", "warn");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("the binary runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "console").cloned().expect("a console check")
    };
    let off = run(&[("CLAWBRIDGE_LISTEN", "0.0.0.0:18790")]);
    assert!(off["warning"].as_str().unwrap().contains("off"), "{off}");
    assert!(off["fix"].as_str().unwrap().contains("CLAWBRIDGE_CONSOLE_TOKEN"), "{off}");
    let on = run(&[("CLAWBRIDGE_LISTEN", "0.0.0.0:18790"), ("CLAWBRIDGE_CONSOLE_TOKEN", CONSOLE_TOKEN)]);
    assert!(on["warning"].is_null() && on["detail"].as_str().unwrap().contains("/console"), "{on}");
    let local = run(&[("CLAWBRIDGE_LISTEN", "127.0.0.1:18790")]);
    assert!(local["detail"].as_str().unwrap().contains("loopback"), "{local}");
}
