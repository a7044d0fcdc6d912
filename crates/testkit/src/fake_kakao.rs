//! A fake of kauth.kakao.com and kapi.kakao.com for the Kakao Login / Talk Message tests, written
//! from the documented shapes (reference/kakao.md §1–3). It checks the wire format the way Kakao
//! does (form bodies, JSON-string fields, Bearer tokens, PKCE, client secret), records every
//! request, and can be told to fail: scripted answers per path (-401, -402, quota codes, 5xx),
//! per-receiver failures, refresh-token rotation, a slow token endpoint.
//!
//! One fake for the Kakao crate's tests and the binary's end-to-end tests.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The app key the fake expects as `client_id`.
pub const CLIENT_ID: &str = "fake-rest-api-key";
/// The user every token belongs to.
pub const USER_ID: i64 = 4_242_424_242;
/// The user's nickname.
pub const NICKNAME: &str = "Tester";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// Form fields of a form-urlencoded body, in order.
    pub form: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    /// A form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    /// A form field that must hold JSON (`template_object`, `receiver_uuids` …).
    pub fn json_field(&self, name: &str) -> Value {
        serde_json::from_str(self.field(name).unwrap_or_else(|| panic!("no form field {name}")))
            .unwrap_or_else(|e| panic!("form field {name} is not JSON: {e}"))
    }
}

#[derive(Clone, Debug)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    scope: String,
}

/// What the fake knows and records, shared with its handlers.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Every request, in order.
    pub requests: Mutex<Vec<Recorded>>,
    /// Valid access tokens.
    access: Mutex<HashSet<String>>,
    /// Valid refresh tokens → scope.
    refresh: Mutex<HashMap<String, String>>,
    /// Every token ever issued (for the "no token bytes on disk" checks).
    pub issued: Mutex<Vec<String>>,
    /// Authorization codes → what was asked.
    codes: Mutex<HashMap<String, Grant>>,
    /// Answers to give instead of the normal one: (path, status, body), first match wins.
    script: Mutex<VecDeque<(String, u16, Value)>>,
    /// Receiver → (code, msg) for friends sends.
    failing_receivers: Mutex<HashMap<String, (i64, String)>>,
    /// The next authorize redirects with this error.
    deny_next: Mutex<Option<(String, String)>>,
    /// The client secret the token endpoint requires, if any.
    pub client_secret: Mutex<Option<String>>,
    /// Whether a refresh returns a new refresh token.
    pub rotate_refresh: AtomicBool,
    /// Refresh grants served.
    pub refresh_calls: AtomicUsize,
    /// How long the token endpoint takes to answer a refresh.
    pub refresh_delay_ms: AtomicU64,
    /// The user's friends (`/v1/api/talk/friends`).
    pub friends: Mutex<Vec<Value>>,
    counter: AtomicU64,
}

/// kauth + kapi on one loopback port; stopped when dropped.
#[derive(Debug)]
pub struct FakeKakao {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKakao {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKakao {
    /// Starts the fake on a free loopback port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// Its base URL (for `KAKAO_AUTH_BASE_URL` and `KAKAO_API_BASE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Issues a token pair as if the user had logged in: (access, refresh).
    pub fn grant(&self, scope: &str) -> (String, String) {
        issue(&self.state, scope, true)
    }

    /// Makes an access token invalid (`-401`).
    pub fn revoke_access(&self, token: &str) {
        self.state.access.lock().unwrap().remove(token);
    }

    /// Makes a refresh token invalid (`invalid_grant`).
    pub fn revoke_refresh(&self, token: &str) {
        self.state.refresh.lock().unwrap().remove(token);
    }

    /// The next request to `path` gets this answer (queued; each used once).
    pub fn script(&self, path: &str, status: u16, body: Value) {
        self.state.script.lock().unwrap().push_back((path.to_owned(), status, body));
    }

    /// Friends sends to `uuid` fail with this code and message.
    pub fn fail_receiver(&self, uuid: &str, code: i64, msg: &str) {
        self.state.failing_receivers.lock().unwrap().insert(uuid.to_owned(), (code, msg.to_owned()));
    }

    /// The next authorize redirects back with this error.
    pub fn deny_next_login(&self, error: &str, description: &str) {
        *self.state.deny_next.lock().unwrap() = Some((error.to_owned(), description.to_owned()));
    }

    /// Gives the user `count` friends.
    pub fn set_friends(&self, count: usize) {
        *self.state.friends.lock().unwrap() = (0..count)
            .map(|i| {
                json!({"id": 1000 + i, "uuid": format!("uuid-{i:03}"), "profile_nickname": format!("Friend {i}"),
                       "profile_thumbnail_image": "https://k.kakaocdn.net/t.jpg", "favorite": i % 7 == 0, "allowed_msg": true})
            })
            .collect();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Refresh grants served so far.
    pub fn refresh_calls(&self) -> usize {
        self.state.refresh_calls.load(Ordering::SeqCst)
    }

    /// Every token issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }
}

fn issue(state: &FakeState, scope: &str, with_refresh: bool) -> (String, String) {
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).unwrap();
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let access = format!("AT{n}x{suffix}");
    let refresh = format!("RT{n}x{suffix}");
    state.access.lock().unwrap().insert(access.clone());
    state.issued.lock().unwrap().push(access.clone());
    if with_refresh {
        state.refresh.lock().unwrap().insert(refresh.clone(), scope.to_owned());
        state.issued.lock().unwrap().push(refresh.clone());
    }
    (access, refresh)
}

fn parse_pairs(text: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{text}")).unwrap().query_pairs().into_owned().collect()
}

fn api_error(status: u16, code: i64, msg: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"msg": msg, "code": code}))).into_response()
}

fn oauth_error(error: &str, description: &str, code: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description, "error_code": code})))
        .into_response()
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let is_form = content_type.as_deref().is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(parse_pairs).unwrap_or_default(),
        content_type: content_type.clone(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        form: if is_form { parse_pairs(&String::from_utf8_lossy(&body)) } else { vec![] },
        body: body.to_vec(),
    };
    state.requests.lock().unwrap().push(recorded.clone());
    let path = recorded.path.clone();

    match path.as_str() {
        "/oauth/authorize" => return authorize(&state, &recorded),
        "/oauth/token" => return token(&state, &recorded).await,
        _ => {}
    }

    // kapi: POST bodies must be forms (multipart for the image upload), never JSON.
    if method == Method::POST && path != "/v2/api/talk/message/image/upload" && !is_form {
        return api_error(400, -2, "content-type must be application/x-www-form-urlencoded");
    }
    let auth = recorded.authorization.clone().unwrap_or_default();
    let authorised = if let Some(token) = auth.strip_prefix("Bearer ") {
        state.access.lock().unwrap().contains(token)
    } else {
        auth.starts_with("KakaoAK ") && path.starts_with("/v2/api/talk/message/image/")
    };
    if !authorised {
        return api_error(401, -401, "this access token does not exist");
    }
    let scripted = {
        let mut script = state.script.lock().unwrap();
        script.iter().position(|(p, _, _)| *p == path).and_then(|i| script.remove(i))
    };
    if let Some((_, status, body)) = scripted {
        return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    }

    match (method.as_str(), path.as_str()) {
        ("GET" | "POST", "/v2/user/me") => axum::Json(json!({
            "id": USER_ID, "connected_at": "2026-11-21T00:00:00Z",
            "properties": {"nickname": NICKNAME},
            "kakao_account": {"profile_nickname_needs_agreement": false, "profile": {"nickname": NICKNAME, "is_default_image": true}}
        }))
        .into_response(),
        ("GET", "/v1/user/access_token_info") => {
            axum::Json(json!({"id": USER_ID, "expires_in": 21000, "app_id": 77})).into_response()
        }
        ("GET", "/v1/api/talk/profile") => {
            axum::Json(json!({"nickName": NICKNAME, "profileImageURL": "https://k/p.jpg", "thumbnailURL": "https://k/t.jpg"}))
                .into_response()
        }
        ("GET", "/v2/api/talk/channels") => axum::Json(json!({"user_id": USER_ID, "channels": [
            {"channel_uuid": "@x", "channel_public_id": recorded.query("channel_ids").unwrap_or(""), "relation": "ADDED"}
        ]}))
        .into_response(),
        ("GET", "/v1/api/talk/friends") => friends(&state, &recorded),
        ("POST", "/v1/user/logout" | "/v1/user/unlink") => {
            if let Some(token) = auth.strip_prefix("Bearer ") {
                state.access.lock().unwrap().remove(token);
            }
            axum::Json(json!({"id": USER_ID})).into_response()
        }
        ("POST", "/v2/api/talk/memo/default/send") => {
            if recorded.field("template_object").is_none() {
                return api_error(400, -2, "template_object is required");
            }
            if serde_json::from_str::<Value>(recorded.field("template_object").unwrap()).is_err() {
                return api_error(400, -2, "template_object is not JSON");
            }
            axum::Json(json!({"result_code": 0})).into_response()
        }
        ("POST", "/v2/api/talk/memo/send") => {
            if recorded.field("template_id").is_none_or(|id| id.parse::<u64>().is_err()) {
                return api_error(400, -2, "template_id is required");
            }
            axum::Json(json!({"result_code": 0})).into_response()
        }
        ("POST", "/v2/api/talk/memo/scrap/send") => {
            if recorded.field("request_url").is_none() {
                return api_error(400, -2, "request_url is required");
            }
            axum::Json(json!({"result_code": 0})).into_response()
        }
        (
            "POST",
            "/v1/api/talk/friends/message/default/send"
            | "/v1/api/talk/friends/message/send"
            | "/v1/api/talk/friends/message/scrap/send",
        ) => friends_send(&state, &recorded),
        ("POST", "/v2/api/talk/message/image/upload") => upload(&recorded),
        ("POST", "/v2/api/talk/message/image/scrap") => match recorded.field("image_url") {
            Some(url) => axum::Json(json!({"infos": {"original": {"url": format!("https://talk.kakaocdn.net/scrap?src={url}"),
                "content_type": "image/jpeg", "length": 10, "width": 2, "height": 2}}}))
            .into_response(),
            None => api_error(400, -2, "image_url is required"),
        },
        _ => api_error(404, -2, "unknown API"),
    }
}

fn authorize(state: &FakeState, r: &Recorded) -> Response {
    let ok = r.query("client_id") == Some(CLIENT_ID)
        && r.query("response_type") == Some("code")
        && r.query("code_challenge_method") == Some("S256")
        && r.query("code_challenge").is_some_and(|c| c.len() == 43)
        && r.query("state").is_some_and(|s| !s.is_empty());
    let Some(redirect_uri) = r.query("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "KOE006").into_response();
    };
    let st = r.query("state").unwrap_or_default();
    let location = if !ok {
        format!("{redirect_uri}?error=invalid_request&error_description=bad%20authorize%20request&state={st}")
    } else if let Some((error, description)) = state.deny_next.lock().unwrap().take() {
        let pairs: String = reqwest::Url::parse_with_params(
            "http://x/",
            &[("error", error.as_str()), ("error_description", description.as_str()), ("state", st)],
        )
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
        format!("{redirect_uri}?{pairs}")
    } else {
        let code = format!("code-{}", state.counter.fetch_add(1, Ordering::SeqCst));
        state.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                challenge: r.query("code_challenge").unwrap().to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                scope: r.query("scope").unwrap_or("").replace(',', " "),
            },
        );
        let pairs = reqwest::Url::parse_with_params("http://x/", &[("code", code.as_str()), ("state", st)])
            .unwrap()
            .query()
            .unwrap()
            .to_owned();
        format!("{redirect_uri}?{pairs}")
    };
    (StatusCode::FOUND, [("location", location)]).into_response()
}

async fn token(state: &FakeState, r: &Recorded) -> Response {
    if r.method != "POST"
        || !r.content_type.as_deref().is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return oauth_error("invalid_request", "form body required", "KOE001");
    }
    if r.field("client_id") != Some(CLIENT_ID) {
        return oauth_error("invalid_client", "wrong client_id", "KOE101");
    }
    let expected_secret = state.client_secret.lock().unwrap().clone();
    if expected_secret.is_some() && r.field("client_secret").map(str::to_owned) != expected_secret {
        return oauth_error("invalid_client", "Bad client credentials", "KOE010");
    }
    match r.field("grant_type") {
        Some("authorization_code") => {
            let code = r.field("code").unwrap_or_default();
            let Some(grant) = state.codes.lock().unwrap().remove(code) else {
                return oauth_error("invalid_grant", "authorization code not found", "KOE320");
            };
            if r.field("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error("invalid_grant", "redirect_uri mismatch", "KOE303");
            }
            let verifier = r.field("code_verifier").unwrap_or_default();
            if pkce_s256(verifier) != grant.challenge {
                return oauth_error("invalid_grant", "code_verifier does not match", "KOE320");
            }
            let (access, refresh) = issue(state, &grant.scope, true);
            axum::Json(json!({"access_token": access, "token_type": "bearer", "refresh_token": refresh,
                              "expires_in": 21599, "scope": grant.scope, "refresh_token_expires_in": 5183999}))
            .into_response()
        }
        Some("refresh_token") => {
            state.refresh_calls.fetch_add(1, Ordering::SeqCst);
            let delay = state.refresh_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let old = r.field("refresh_token").unwrap_or_default().to_owned();
            let Some(scope) = state.refresh.lock().unwrap().get(&old).cloned() else {
                return oauth_error("invalid_grant", "expired_or_invalid_refresh_token", "KOE322");
            };
            if state.rotate_refresh.load(Ordering::SeqCst) {
                let (access, refresh) = issue(state, &scope, true);
                state.refresh.lock().unwrap().remove(&old);
                axum::Json(json!({"access_token": access, "token_type": "bearer", "refresh_token": refresh,
                                  "expires_in": 21599, "refresh_token_expires_in": 2_000_000}))
                .into_response()
            } else {
                let (access, _) = issue(state, &scope, false);
                axum::Json(json!({"access_token": access, "token_type": "bearer", "expires_in": 21599})).into_response()
            }
        }
        _ => oauth_error("unsupported_grant_type", "grant_type", "KOE001"),
    }
}

fn friends(state: &FakeState, r: &Recorded) -> Response {
    let all = state.friends.lock().unwrap().clone();
    let offset: usize = r.query("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = r.query("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
    if limit > 100 {
        return api_error(400, -2, "limit must be at most 100");
    }
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let after = (offset + limit < all.len())
        .then(|| format!("https://kapi.kakao.com/v1/api/talk/friends?offset={}&limit={limit}", offset + limit));
    let favorites = all.iter().filter(|f| f["favorite"] == true).count();
    axum::Json(json!({"elements": page, "total_count": all.len(), "favorite_count": favorites, "after_url": after}))
        .into_response()
}

fn friends_send(state: &FakeState, r: &Recorded) -> Response {
    let Some(raw) = r.field("receiver_uuids") else {
        return api_error(400, -2, "receiver_uuids is required");
    };
    let Ok(uuids) = serde_json::from_str::<Vec<String>>(raw) else {
        return api_error(400, -2, "receiver_uuids must be a JSON array of strings");
    };
    if uuids.is_empty() || uuids.len() > 5 {
        return api_error(400, -2, "receiver_uuids must hold 1 to 5 receivers");
    }
    if r.path.ends_with("/default/send") && r.field("template_object").is_none() {
        return api_error(400, -2, "template_object is required");
    }
    let failing = state.failing_receivers.lock().unwrap().clone();
    let mut ok = Vec::new();
    let mut failures: HashMap<i64, (String, Vec<String>)> = HashMap::new();
    for uuid in uuids {
        match failing.get(&uuid) {
            Some((code, msg)) => failures.entry(*code).or_insert_with(|| (msg.clone(), vec![])).1.push(uuid),
            None => ok.push(uuid),
        }
    }
    let mut body = json!({"successful_receiver_uuids": ok});
    if !failures.is_empty() {
        body["failure_info"] = failures
            .into_iter()
            .map(|(code, (msg, receivers))| json!({"code": code, "msg": msg, "receiver_uuids": receivers}))
            .collect();
    }
    axum::Json(body).into_response()
}

fn upload(r: &Recorded) -> Response {
    let ct = r.content_type.clone().unwrap_or_default();
    let Some(boundary) = ct.strip_prefix("multipart/form-data; boundary=") else {
        return api_error(400, -2, "multipart/form-data required");
    };
    let body = String::from_utf8_lossy(&r.body).into_owned();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    let file = parts.iter().find(|p| p.contains("name=\"file\""));
    let Some(file) = file else {
        return api_error(400, -2, "file is required");
    };
    let part_type = file
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: ").or_else(|| l.strip_prefix("content-type: ")))
        .unwrap_or("application/octet-stream")
        .trim()
        .to_owned();
    let has_filename = file.contains("filename=\"");
    if !has_filename {
        return api_error(400, -2, "file must have a filename");
    }
    let ext = part_type.rsplit('/').next().unwrap_or("bin").to_owned();
    axum::Json(json!({"infos": {"original": {"url": format!("https://talk.kakaocdn.net/img.{ext}"),
        "content_type": part_type, "length": r.body.len(), "width": 1, "height": 1}}}))
    .into_response()
}

/// RFC 7636 S256, computed here independently of the client under test.
fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A fake of the chatbot Event API (`bot-api.kakao.com`, reference/kakao.md §5.4): `POST
/// /v2/bots/{bot}/talk` with `Authorization: KakaoAK <key>` records the push and answers a
/// `task-<n>`; `GET /v1/tasks/{id}` reports SUCCESS for every user of that push.
#[derive(Debug, Clone)]
pub struct FakeEventApi {
    base: String,
    pushes: Arc<Mutex<Vec<Value>>>,
}

impl FakeEventApi {
    /// Starts it on `127.0.0.1:<free port>` for bot `bot` and REST API key `rest_key`.
    pub async fn start(bot: &str, rest_key: &str) -> Self {
        use axum::extract::Path;
        use axum::routing::{get, post};
        let pushes: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (bot, auth) = (bot.to_owned(), format!("KakaoAK {rest_key}"));
        let talk = {
            let pushes = pushes.clone();
            move |Path(called): Path<String>, headers: HeaderMap, body: Bytes| {
                let (pushes, bot, auth) = (pushes.clone(), bot.clone(), auth.clone());
                async move {
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(auth.as_str());
                    if !authorized || called != bot {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "invalid key"})));
                    }
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut pushes = pushes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    pushes.push(body);
                    let task = format!("task-{}", pushes.len());
                    (StatusCode::OK, axum::Json(json!({"taskId": task, "status": "SUCCESS", "message": ""})))
                }
            }
        };
        let tasks = {
            let pushes = pushes.clone();
            move |Path(id): Path<String>| {
                let pushes = pushes.clone();
                async move {
                    let n: usize = id.trim_start_matches("task-").parse().unwrap_or(0);
                    let body = pushes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(n.wrapping_sub(1))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let results: Vec<Value> = body["user"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|u| json!({"id": u["id"], "status": "SUCCESS"}))
                        .collect();
                    axum::Json(json!({"taskId": id, "status": "SUCCESS", "results": results}))
                }
            }
        };
        let router = axum::Router::new().route("/v2/bots/{bot}/talk", post(talk)).route("/v1/tasks/{id}", get(tasks));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Event API");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { base, pushes }
    }

    /// Its base URL (`KAKAO_BOT_API_BASE_URL`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Every push body received, oldest first.
    pub fn pushes(&self) -> Vec<Value> {
        self.pushes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
