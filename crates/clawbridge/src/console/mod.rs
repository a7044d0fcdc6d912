//! The operator console at `/console` on the daemon's listener: what is healthy, what is stuck,
//! who waits for approval, how campaigns do — and the buttons to act on it.
//!
//! Server-rendered HTML; a little JavaScript of ours (embedded, no build step, no CDN) refreshes
//! each page's `<main>` every few seconds from the same URL with `?fragment=1`. Charts are SVG
//! drawn on the server ([`charts`]). Access, sessions and CSRF are in [`auth`]; the pages in
//! [`pages`]; the per-minute numbers behind the charts in [`stats`].

pub mod auth;
pub mod charts;
pub mod pages;
pub mod stats;

use crate::bridge::Wakers;
use crate::config::Config;
use crate::http::HealthState;
use auth::{Access, LOGIN_COOKIE, LoginLimiter, SESSION_COOKIE, SESSION_TTL, Session, Sessions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clawbridge_store::SharedStore;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest form the console accepts (its forms carry a few short fields).
const FORM_LIMIT: usize = 16 * 1024;

/// The pages, by path: each answers a full page, or its `<main>` with `?fragment=1`.
pub const PAGES: [(pages::Page, &str); 6] = [
    (pages::Page::Overview, "/console/overview"),
    (pages::Page::Conversations, "/console/conversations"),
    (pages::Page::DeadLetters, "/console/dead-letters"),
    (pages::Page::Pairing, "/console/pairing"),
    (pages::Page::Campaigns, "/console/campaigns"),
    (pages::Page::Kakao, "/console/kakao"),
];

/// The state-changing routes (POST, CSRF token required).
pub const ACTIONS: [&str; 4] =
    ["/console/dead-letters/act", "/console/pairing/act", "/console/campaigns/act", "/console/logout"];

/// The embedded script (polling refresh, confirmations).
pub const SCRIPT_PATH: &str = "/console/assets/console.js";
const SCRIPT: &str = include_str!("assets/console.js");
/// The embedded style sheet, inlined into every page (the login page too, before any session).
pub(crate) const STYLE: &str = include_str!("assets/console.css");

/// What the console reads and acts on.
#[derive(Clone)]
pub struct Console {
    /// The store.
    pub store: SharedStore,
    /// The gateway, the accounts' health and the tools (as `/readyz` sees them).
    pub health: HealthState,
    /// The configuration (Kakao, business messages, the approval reply).
    pub config: Arc<Config>,
    /// Wakes the outbox after a retry or an approval's confirmation.
    pub wakers: Arc<Wakers>,
    access: Access,
    sessions: Arc<Sessions>,
    limiter: Arc<LoginLimiter>,
}

impl Console {
    /// The console of a daemon; its access follows [`Access::decide`] for the configured token
    /// and listener.
    pub fn new(store: SharedStore, health: HealthState, config: Arc<Config>, wakers: Arc<Wakers>) -> Self {
        let access = Access::decide(config.console.token.as_ref(), config.bridge.listen);
        Self { store, health, config, wakers, access, sessions: Arc::default(), limiter: Arc::default() }
    }
}

/// Why the console does not answer, for `doctor` and the log; `None` when it is open.
pub fn off_reason(config: &Config) -> Option<String> {
    matches!(Access::decide(config.console.token.as_ref(), config.bridge.listen), Access::Off).then(|| {
        format!(
            "the console (/console) is off: the listener {} is not loopback and no token is set",
            config.bridge.listen
        )
    })
}

/// How to turn the console on, for `doctor`.
pub const TURN_ON: &str = "set CLAWBRIDGE_CONSOLE_TOKEN (or [console] token) to a long random secret, \
    e.g. `openssl rand -hex 24`, then open /console and log in with it";

/// The console's routes. Off ([`Access::Off`]): every `/console` path answers 404 with how to
/// turn it on.
pub fn routes(console: Console) -> Router {
    if matches!(console.access, Access::Off) {
        let off = || async { (StatusCode::NOT_FOUND, format!("the console is off: {TURN_ON}")) };
        return Router::new().route("/console", get(off)).route("/console/{*rest}", get(off).post(off));
    }
    let mut protected = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/overview") }))
        .route(SCRIPT_PATH, get(script))
        .route(ACTIONS[0], post(act_dead_letters))
        .route(ACTIONS[1], post(act_pairing))
        .route(ACTIONS[2], post(act_campaigns))
        .route(ACTIONS[3], post(logout));
    for (page, path) in PAGES {
        protected = protected.route(
            path,
            get(
                move |State(c): State<Console>,
                      axum::Extension(s): axum::Extension<Session>,
                      Query(q): Query<HashMap<String, String>>| async move {
                    pages::render(&c, page, &s, &q).await
                },
            ),
        );
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(console.clone(), require_session));
    Router::new()
        .route("/console/login", get(login_form).post(login))
        .merge(protected)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// No caching, no framing, scripts only from us.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Without a token, only requests that name the loopback pass (no DNS rebinding).
fn host_allowed(console: &Console, headers: &HeaderMap) -> bool {
    !matches!(console.access, Access::Loopback) || auth::host_is_loopback(headers)
}

/// Lets a request through with its [`Session`] (an extension), else: a page is redirected to the
/// login form (303), anything else is refused (401). A POST must carry the session's CSRF token
/// in its form (`csrf`), else 403 and nothing happens.
async fn require_session(State(console): State<Console>, request: Request, next: Next) -> Response {
    if !host_allowed(&console, request.headers()) {
        return (StatusCode::FORBIDDEN, "the console answers only to localhost without a token").into_response();
    }
    let session = auth::cookie(request.headers(), SESSION_COOKIE).and_then(|id| console.sessions.get(id));
    let Some(session) = session else {
        return if request.method() == Method::GET {
            Redirect::to("/console/login").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "log in at /console/login").into_response()
        };
    };
    let request = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        let form = parse_form(&bytes);
        let csrf_ok = form.get("csrf").is_some_and(|given| auth::csrf_matches(given, &session.csrf));
        if !csrf_ok {
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the page and try again")
                .into_response();
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        request
    };
    let mut request = request;
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// A form body as name → value (the last of repeated names).
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default().into_iter().collect()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

async fn login_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    if !host_allowed(&console, &headers) {
        return (StatusCode::FORBIDDEN, "the console answers only to localhost without a token").into_response();
    }
    login_page(&console, &headers, None, StatusCode::OK)
}

/// The login form with a fresh pre-session CSRF token (also set as its cookie).
fn login_page(console: &Console, headers: &HeaderMap, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_token();
    let needs_token = matches!(console.access, Access::Token(_));
    let html = pages::login(&token, needs_token, error);
    let cookie = auth::set_cookie(LOGIN_COOKIE, Some(&token), Duration::from_secs(3_600), headers);
    (status, [(header::SET_COOKIE, cookie)], axum::response::Html(html)).into_response()
}

async fn login(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if !host_allowed(&console, &headers) {
        return (StatusCode::FORBIDDEN, "the console answers only to localhost without a token").into_response();
    }
    let form = parse_form(&body);
    let expected = auth::cookie(&headers, LOGIN_COOKIE);
    let csrf_ok =
        matches!((form.get("csrf"), expected), (Some(given), Some(expected)) if auth::csrf_matches(given, expected));
    if !csrf_ok {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the login page").into_response();
    }
    if !console.limiter.attempt() {
        tracing::warn!("console: too many login attempts; refusing for a while");
        return login_page(
            &console,
            &headers,
            Some("Too many attempts. Wait a minute and try again. / 시도가 너무 많습니다. 잠시 후 다시 시도하세요."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let allowed = match &console.access {
        Access::Token(token) => form.get("token").is_some_and(|given| auth::token_matches(given, token)),
        Access::Loopback => true,
        Access::Off => false,
    };
    if !allowed {
        tracing::warn!("console: a login with a wrong token");
        return login_page(&console, &headers, Some("Wrong token. / 토큰이 맞지 않습니다."), StatusCode::UNAUTHORIZED);
    }
    let session = console.sessions.create();
    tracing::info!("console: logged in");
    let mut response = Redirect::to("/console/overview").into_response();
    let set = response.headers_mut();
    set.append(header::SET_COOKIE, auth::set_cookie(SESSION_COOKIE, Some(&session.id), SESSION_TTL, &headers));
    set.append(header::SET_COOKIE, auth::set_cookie(LOGIN_COOKIE, None, Duration::ZERO, &headers));
    response
}

async fn logout(
    State(console): State<Console>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
) -> Response {
    console.sessions.remove(&session.id);
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, auth::set_cookie(SESSION_COOKIE, None, Duration::ZERO, &headers));
    response
}

/// Back to a page with a notice (one of [`pages::notice`]'s fixed texts, never request input).
fn back(path: &str, notice: &str) -> Response {
    Redirect::to(&format!("{path}?notice={notice}")).into_response()
}

async fn act_dead_letters(State(console): State<Console>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let Some(action) = form.get("action").and_then(|a| match a.as_str() {
        "retry" => Some(clawbridge_store::DeadLetterAction::Retry),
        "discard" => Some(clawbridge_store::DeadLetterAction::Discard),
        _ => None,
    }) else {
        return (StatusCode::BAD_REQUEST, "action must be retry or discard").into_response();
    };
    let targets: Vec<(String, i64)> = match form.get("target").map(String::as_str) {
        Some("all") => match console.store.dead_letters(pages::DEAD_LETTERS_SHOWN).await {
            Ok(all) => {
                all.into_iter().filter(|d| pages::actionable(d.queue)).map(|d| (d.queue.to_owned(), d.id)).collect()
            }
            Err(e) => return store_error(&e),
        },
        Some(one) => match one.split_once('/').and_then(|(q, id)| Some((q.to_owned(), id.parse().ok()?))) {
            Some(target) if pages::actionable(&target.0) => vec![target],
            _ => return (StatusCode::BAD_REQUEST, "target must be inbox/ID, outbox/ID or all").into_response(),
        },
        None => return (StatusCode::BAD_REQUEST, "target is missing").into_response(),
    };
    let now = crate::util::now_ms();
    let mut acted = 0;
    for (queue, id) in &targets {
        match console.store.act_on_dead_letter(queue, *id, action, "console", now).await {
            Ok(true) => acted += 1,
            Ok(false) => {}
            Err(e) => return store_error(&e),
        }
    }
    if acted > 0 && action == clawbridge_store::DeadLetterAction::Retry {
        console.wakers.inbox.notify_one();
        console.wakers.outbox.notify_one();
    }
    tracing::info!(action = action.as_str(), acted, "console: dead letters");
    let notice = match (action, acted) {
        (_, 0) => "nothing",
        (clawbridge_store::DeadLetterAction::Retry, _) => "retried",
        (clawbridge_store::DeadLetterAction::Discard, _) => "discarded",
    };
    back("/console/dead-letters", notice)
}

async fn act_pairing(State(console): State<Console>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let channel = clawbridge_core::ChannelId::new(field("channel"));
    if channel.as_str().is_empty() {
        return (StatusCode::BAD_REQUEST, "channel is missing").into_response();
    }
    let now = crate::util::now_ms();
    let store = &console.store;
    let outcome = match field("action") {
        "approve" => match store.approve_pairing(&channel, field("code"), now).await {
            Ok(Some(peer)) => {
                let code = clawbridge_core::pairing::normalize_code(field("code"));
                if let Some(notice) = crate::commands::pairing::approved_notice(&console.config, &peer, &code) {
                    if let Err(e) = store.enqueue_outbound(&[notice], now).await {
                        tracing::warn!(error = %e, "console: cannot queue the approval's confirmation");
                    }
                    console.wakers.outbox.notify_one();
                }
                audit(&console, "pairing.approve", &format!("{channel}/{code}"), now).await;
                Ok("approved")
            }
            Ok(None) => Ok("nothing"),
            Err(e) => Err(e),
        },
        "reject" => match store.reject_pairing(&channel, field("code"), now).await {
            Ok(true) => {
                let code = clawbridge_core::pairing::normalize_code(field("code"));
                audit(&console, "pairing.reject", &format!("{channel}/{code}"), now).await;
                Ok("rejected")
            }
            Ok(false) => Ok("nothing"),
            Err(e) => Err(e),
        },
        "revoke" => match store.list_approved(Some(&channel)).await {
            Ok(approved) => match approved.into_iter().find(|a| pages::sender_ref(a) == field("sender")) {
                Some(a) => match store.revoke_peer(&a.channel, &a.account, &a.peer).await {
                    Ok(true) => {
                        let target =
                            format!("{}/{}/{}", a.channel, a.account, clawbridge_core::ids::mask(a.peer.as_str()));
                        audit(&console, "pairing.revoke", &target, now).await;
                        Ok("revoked")
                    }
                    Ok(false) => Ok("nothing"),
                    Err(e) => Err(e),
                },
                None => Ok("nothing"),
            },
            Err(e) => Err(e),
        },
        _ => return (StatusCode::BAD_REQUEST, "action must be approve, reject or revoke").into_response(),
    };
    match outcome {
        Ok(notice) => back("/console/pairing", notice),
        Err(e) => store_error(&e),
    }
}

async fn act_campaigns(State(console): State<Console>, body: Bytes) -> Response {
    use clawbridge_store::CampaignState::{Cancelled, Draft, Paused, Running, Scheduled};
    let form = parse_form(&body);
    let Some(id) = form.get("id").filter(|id| !id.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "id is missing").into_response();
    };
    let (from, to, note, notice): (&[_], _, _, _) = match form.get("action").map(String::as_str) {
        Some("pause") => (&[Running, Scheduled], Paused, Some("paused by an operator (console)"), "paused"),
        Some("resume") => (&[Paused], Running, None, "resumed"),
        Some("cancel") => {
            (&[Draft, Scheduled, Running, Paused], Cancelled, Some("cancelled by an operator (console)"), "cancelled")
        }
        _ => return (StatusCode::BAD_REQUEST, "action must be pause, resume or cancel").into_response(),
    };
    let now = crate::util::now_ms();
    match console.store.transition_campaign(id, from, to, note, None, now).await {
        Ok(true) => {
            if to == Cancelled
                && let Err(e) = console.store.cancel_campaign_recipients(id, now).await
            {
                return store_error(&e);
            }
            audit(&console, &format!("campaign.{notice}"), &format!("campaign/{id}"), now).await;
            back("/console/campaigns", notice)
        }
        Ok(false) => back("/console/campaigns", "nothing"),
        Err(e) => store_error(&e),
    }
}

/// Records an action that has its own store call; a failure is logged (the action happened).
async fn audit(console: &Console, action: &str, target: &str, now: clawbridge_core::EpochMs) {
    if let Err(e) = console.store.record_audit("console", action, target, "", now).await {
        tracing::warn!(error = %e, action, "console: cannot record the audit entry");
    }
}

fn store_error(e: &clawbridge_store::StoreError) -> Response {
    tracing::warn!(error = %e, "console: store error");
    (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer: reload the page to see what changed").into_response()
}
