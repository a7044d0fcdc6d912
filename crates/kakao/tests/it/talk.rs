//! The Talk Message API client and Kakao Login against the fake kauth/kapi.

use clawbridge_kakao::talk::error::QuotaKind;
use clawbridge_kakao::talk::models::FriendUuid;
use clawbridge_kakao::talk::oauth::{AuthorizeRequest, OAuthClient, Pkce, RedirectListener, TokenResponse};
use clawbridge_kakao::talk::template::{Button, Content, Link};
use clawbridge_kakao::talk::token::now_ms;
use clawbridge_kakao::talk::{
    CustomTemplate, LoginConfig, MemoryState, MemoryTokenStore, MessageContent, OAuthToken, QuotaLimits, RetryPolicy,
    TalkClient, TalkError, Template, TokenStore,
};
use clawbridge_testkit::fake_kakao::{CLIENT_ID, FakeKakao, NICKNAME, USER_ID};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded;charset=utf-8";

struct Setup {
    fake: FakeKakao,
    tokens: Arc<MemoryTokenStore>,
    state: MemoryState,
    config: LoginConfig,
}

impl Setup {
    async fn new() -> Self {
        Self::with_env(&[]).await
    }

    async fn with_env(extra: &[(&str, &str)]) -> Self {
        let fake = FakeKakao::start().await;
        let mut env: HashMap<String, String> = [
            ("HOME", "/nonexistent"),
            ("KAKAO_REST_API_KEY", CLIENT_ID),
            ("KAKAO_REDIRECT_URI", "http://127.0.0.1:1/cb"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.insert("KAKAO_API_BASE_URL".into(), fake.url());
        env.insert("KAKAO_AUTH_BASE_URL".into(), fake.url());
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = LoginConfig::load(None, &|k| env.get(k).cloned()).unwrap().unwrap();
        Self { fake, tokens: Arc::new(MemoryTokenStore::default()), state: MemoryState::default(), config }
    }

    fn client(&self) -> TalkClient {
        self.client_with(self.state.clone())
    }

    fn client_with(&self, state: MemoryState) -> TalkClient {
        TalkClient::from_config(&self.config, "default", self.tokens.clone(), Arc::new(state)).unwrap().with_retry(
            RetryPolicy { max_attempts: 3, initial_delay_ms: 5, max_delay_ms: 20, ..RetryPolicy::IN_PROCESS },
        )
    }

    /// Stores a login whose access token expires at `expires_at`.
    async fn login(&self, scope: &str, expires_at: Option<i64>) -> (String, String) {
        let (access, refresh) = self.fake.grant(scope);
        let response: TokenResponse = serde_json::from_value(json!({
            "access_token": access, "refresh_token": refresh, "expires_in": 21599,
            "refresh_token_expires_in": 5183999, "scope": scope
        }))
        .unwrap();
        let mut token = OAuthToken::from_response(response, now_ms(), None);
        token.user_id = Some(USER_ID);
        if let Some(at) = expires_at {
            token.expires_at = at;
        }
        self.tokens.save("default", &token).await.unwrap();
        (access, refresh)
    }

    async fn stored(&self) -> OAuthToken {
        self.tokens.load("default").await.unwrap().unwrap()
    }
}

fn text(t: &str) -> MessageContent {
    MessageContent::from(Template::text(t, Link::web("https://example.com")))
}

fn uuids(n: usize) -> Vec<FriendUuid> {
    (0..n).map(|i| FriendUuid::new(format!("uuid-{i:03}"))).collect()
}

#[tokio::test]
async fn memo_sends_forms_with_json_string_fields() {
    let s = Setup::new().await;
    let (access, _) = s.login("talk_message", None).await;
    let client = s.client();

    let feed =
        Template::feed(Content::new("Dessert", Link::web("https://example.com")).image("https://example.com/a.jpg"))
            .button(Button::new("Open", Link::web("https://example.com/b")));
    client.send_memo(&MessageContent::from(feed.clone())).await.unwrap();
    client
        .send_memo(&MessageContent::Custom(CustomTemplate::with_args(1234, ["name=Kim", "count=3"]).unwrap()))
        .await
        .unwrap();
    client
        .send_memo(&MessageContent::Scrap { request_url: "https://example.com/page".into(), template: None })
        .await
        .unwrap();

    let default = &s.fake.requests_to("/v2/api/talk/memo/default/send")[0];
    assert_eq!(default.method, "POST");
    assert_eq!(default.content_type.as_deref(), Some(FORM));
    assert_eq!(default.authorization.as_deref(), Some(format!("Bearer {access}").as_str()));
    assert_eq!(
        default.json_field("template_object"),
        json!({"object_type":"feed","content":{"title":"Dessert","image_url":"https://example.com/a.jpg",
               "link":{"web_url":"https://example.com","mobile_web_url":"https://example.com"}},
               "buttons":[{"title":"Open","link":{"web_url":"https://example.com/b","mobile_web_url":"https://example.com/b"}}]})
    );
    let custom = &s.fake.requests_to("/v2/api/talk/memo/send")[0];
    assert_eq!(custom.field("template_id"), Some("1234"));
    assert_eq!(custom.json_field("template_args"), json!({"name":"Kim","count":"3"}));
    let scrap = &s.fake.requests_to("/v2/api/talk/memo/scrap/send")[0];
    assert_eq!(scrap.field("request_url"), Some("https://example.com/page"));
    assert_eq!(scrap.field("template_id"), None);

    // An invalid template is refused before any call.
    let before = s.fake.requests().len();
    let err = client.send_memo(&text(&"x".repeat(201))).await.unwrap_err();
    assert!(matches!(&err, TalkError::Template(e) if e.field == "text"), "{err}");
    assert_eq!(s.fake.requests().len(), before);
}

#[tokio::test]
async fn friends_sends_go_five_at_a_time_with_per_receiver_results() {
    let s = Setup::new().await;
    s.login("talk_message friends", None).await;
    s.fake.fail_receiver("uuid-003", -530, "receiver refused");
    s.fake.fail_receiver("uuid-007", -536, "pair daily limit");
    let client = s.client();
    let mut to = uuids(12);
    to.push(FriendUuid::from("uuid-000")); // a duplicate is sent once

    let report = client.send_to_friends(&to, &text("hello friends")).await.unwrap();

    let calls = s.fake.requests_to("/v1/api/talk/friends/message/default/send");
    let batches: Vec<Vec<FriendUuid>> =
        calls.iter().map(|r| serde_json::from_value(r.json_field("receiver_uuids")).unwrap()).collect();
    assert_eq!(batches, vec![uuids(12)[0..5].to_vec(), uuids(12)[5..10].to_vec(), uuids(12)[10..12].to_vec()]);
    for call in &calls {
        assert_eq!(call.content_type.as_deref(), Some(FORM));
        // The raw form carries the array as a JSON string: receiver_uuids=["a","b"].
        let raw = String::from_utf8(call.body.clone()).unwrap();
        assert!(raw.starts_with("receiver_uuids=%5B%22uuid-"), "{raw}");
        assert_eq!(call.json_field("template_object")["object_type"], "text");
    }
    assert_eq!(report.sent.len(), 10);
    assert!(!report.sent.contains(&"uuid-003".into()) && !report.sent.contains(&"uuid-007".into()));
    let failed: HashMap<&str, Option<i64>> = report.failed.iter().map(|f| (f.uuid.as_str(), f.code)).collect();
    assert_eq!(failed, HashMap::from([("uuid-003", Some(-530)), ("uuid-007", Some(-536))]));
    assert!(report.failed.iter().any(|f| f.reason.contains("20 messages/day")), "{report:?}");

    // Kakao said the pair quota of uuid-007 is used up: the guard now refuses it before calling.
    let before = calls.len();
    let again = client.send_to_friends(&["uuid-007".into()], &text("again")).await.unwrap();
    assert!(again.sent.is_empty());
    assert!(again.failed[0].local, "{again:?}");
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends/message/default/send").len(), before);

    // Custom and scrap sends use their own endpoints with the same receiver field.
    client
        .send_to_friends(&uuids(2), &MessageContent::Custom(CustomTemplate::with_args(9, ["k=v"]).unwrap()))
        .await
        .unwrap();
    let custom = &s.fake.requests_to("/v1/api/talk/friends/message/send")[0];
    assert_eq!(custom.field("template_id"), Some("9"));
    assert_eq!(custom.json_field("receiver_uuids"), json!(["uuid-000", "uuid-001"]));
    client
        .send_to_friends(
            &uuids(1),
            &MessageContent::Scrap { request_url: "https://example.com".into(), template: None },
        )
        .await
        .unwrap();
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends/message/scrap/send").len(), 1);
}

#[tokio::test]
async fn the_local_quota_guard_refuses_before_the_call() {
    let s = Setup::new().await;
    s.login("talk_message friends", None).await;
    let client = s.client().with_quota_limits(QuotaLimits {
        app_per_day: 100,
        sender_per_day: 4,
        receiver_per_day: 100,
        pair_per_day: 2,
    });
    let first = client.send_to_friends(&uuids(1), &text("1")).await.unwrap();
    let second = client.send_to_friends(&uuids(1), &text("2")).await.unwrap();
    assert_eq!(first.sent.len() + second.sent.len(), 2);
    let third = client.send_to_friends(&uuids(1), &text("3")).await.unwrap();
    assert!(third.sent.is_empty() && third.failed[0].local);
    assert!(third.failed[0].reason.contains("sender and receiver"), "{third:?}");
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends/message/default/send").len(), 2);
    // Sender quota 4: two more receivers fit, the rest are refused locally.
    let report = client.send_to_friends(&uuids(5)[1..5], &text("4")).await.unwrap();
    assert_eq!(report.sent.len(), 2);
    assert_eq!(report.failed.len(), 2);
    assert!(report.failed.iter().all(|f| f.local && f.reason.contains("sender's daily quota")), "{report:?}");
    let sent: Vec<FriendUuid> = serde_json::from_value(
        s.fake.requests_to("/v1/api/talk/friends/message/default/send")[2].json_field("receiver_uuids"),
    )
    .unwrap();
    assert_eq!(sent.len(), 2, "only the granted receivers are sent");
}

#[tokio::test]
async fn twenty_concurrent_calls_on_an_expired_token_refresh_once() {
    let s = Setup::new().await;
    let (old_access, old_refresh) = s.login("talk_message", Some(now_ms() - 1_000)).await;
    s.fake.state.refresh_delay_ms.store(150, Ordering::SeqCst);
    let client = Arc::new(s.client());
    // A second "process" on the same stores contends through the shared lock.
    let other = Arc::new(s.client_with(s.state.another_process()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let c = if i % 2 == 0 { client.clone() } else { other.clone() };
        tasks.spawn(async move { c.me().await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap().nickname(), Some(NICKNAME));
    }
    assert_eq!(s.fake.refresh_calls(), 1);
    let refresh = &s.fake.requests_to("/oauth/token")[0];
    assert_eq!(refresh.content_type.as_deref(), Some(FORM));
    assert_eq!(refresh.field("grant_type"), Some("refresh_token"));
    assert_eq!(refresh.field("client_id"), Some(CLIENT_ID));
    assert_eq!(refresh.field("refresh_token"), Some(old_refresh.as_str()));
    assert_eq!(refresh.field("client_secret"), None, "no secret configured");
    let stored = s.stored().await;
    assert_ne!(stored.access_token.expose_secret(), old_access);
    // Kakao did not rotate: the old refresh token is kept.
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), old_refresh);
    for r in s.fake.requests_to("/v2/user/me") {
        assert_ne!(r.authorization.as_deref(), Some(format!("Bearer {old_access}").as_str()));
    }
}

#[tokio::test]
async fn a_minus_401_refreshes_once_and_retries_once() {
    let s = Setup::with_env(&[("KAKAO_CLIENT_SECRET", "shh")]).await;
    *s.fake.state.client_secret.lock().unwrap() = Some("shh".into());
    s.fake.state.rotate_refresh.store(true, Ordering::SeqCst);
    let (access, old_refresh) = s.login("talk_message", None).await;
    s.fake.revoke_access(&access);
    let client = s.client();
    client.send_memo(&text("after refresh")).await.unwrap();
    assert_eq!(s.fake.refresh_calls(), 1);
    assert_eq!(s.fake.requests_to("/oauth/token")[0].field("client_secret"), Some("shh"));
    let memos = s.fake.requests_to("/v2/api/talk/memo/default/send");
    assert_eq!(memos.len(), 2, "the rejected call and its one retry");
    // Rotated: the new refresh token replaced the old one.
    let stored = s.stored().await;
    assert_ne!(stored.refresh_token.as_ref().unwrap().expose_secret(), old_refresh);
    assert!(stored.refresh_expires_at.unwrap() < now_ms() + 2_000_001_000);

    // A token Kakao keeps refusing after the refresh: one refresh, then "log in again".
    for _ in 0..2 {
        s.fake.script("/v2/user/me", 401, json!({"msg": "this access token is already expired", "code": -401}));
    }
    let err = client.me().await.unwrap_err();
    assert!(matches!(err, TalkError::LoginRequired { .. }), "{err}");
    assert!(err.to_string().contains("clawbridge kakao login"), "{err}");
    assert_eq!(s.fake.refresh_calls(), 2);
}

#[tokio::test]
async fn an_invalid_refresh_token_asks_to_log_in_again() {
    let s = Setup::new().await;
    let (_, refresh) = s.login("talk_message", Some(now_ms() - 1)).await;
    s.fake.revoke_refresh(&refresh);
    let err = s.client().me().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TalkError::LoginRequired { .. }), "{text}");
    assert!(text.contains("KOE322") && text.contains("run `clawbridge kakao login"), "{text}");
    assert_eq!(s.fake.refresh_calls(), 1, "never refreshed in a loop");
    let none = Setup::new().await;
    let err = none.client().me().await.unwrap_err();
    assert!(matches!(err, TalkError::NotLoggedIn { .. }), "{err}");
}

#[tokio::test]
async fn a_minus_402_names_the_required_scopes() {
    let s = Setup::new().await;
    s.login("talk_message", None).await;
    s.fake.script(
        "/v1/api/talk/friends",
        403,
        json!({"msg": "insufficient scopes.", "code": -402, "api_type": "TALK_FRIENDS",
               "required_scopes": ["friends"], "allowed_scopes": ["talk_message"]}),
    );
    let err = s.client().friends(true).await.unwrap_err();
    match &err {
        TalkError::ConsentRequired { required_scopes, .. } => assert_eq!(required_scopes, &["friends"]),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("kakao login --scopes friends"), "{err}");
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends").len(), 1);
}

#[tokio::test]
async fn quota_codes_are_reported_not_retried() {
    let s = Setup::new().await;
    s.login("talk_message friends", None).await;
    let client = s.client();
    s.fake.script("/v2/api/talk/memo/default/send", 400, json!({"msg": "API limit has been exceeded.", "code": -10}));
    let err = client.send_memo(&text("q")).await.unwrap_err();
    assert!(matches!(err, TalkError::Quota { quota: QuotaKind::App, code: Some(-10), local: false, .. }), "{err}");
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 1);
    // The app quota is now known to be used up for today: refused without a call.
    let err = client.send_memo(&text("q2")).await.unwrap_err();
    assert!(matches!(err, TalkError::Quota { local: true, .. }), "{err}");
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 1);

    let s = Setup::new().await;
    s.login("talk_message friends", None).await;
    let client = s.client();
    s.fake.script("/v1/api/talk/friends/message/default/send", 400, json!({"msg": "sender daily limit", "code": -532}));
    let report = client.send_to_friends(&uuids(7), &text("q")).await.unwrap();
    assert!(report.sent.is_empty());
    assert_eq!(report.failed.len(), 7);
    assert_eq!(report.failed[0].code, Some(-532));
    assert!(report.failed[0].reason.contains("sender's daily quota"), "{report:?}");
    assert!(report.failed[5].local, "the second batch is refused locally: {report:?}");
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends/message/default/send").len(), 1);
}

#[tokio::test]
async fn transient_errors_are_retried_and_permanent_ones_are_not() {
    let s = Setup::new().await;
    s.login("talk_message", None).await;
    let client = s.client();
    s.fake.script("/v2/api/talk/memo/default/send", 400, json!({"msg": "internal error", "code": -1}));
    s.fake.script("/v2/api/talk/memo/default/send", 503, json!({"msg": "under maintenance", "code": -9798}));
    client.send_memo(&text("eventually")).await.unwrap();
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 3);

    for _ in 0..3 {
        s.fake.script("/v2/user/me", 500, json!({"msg": "internal timeout", "code": -603}));
    }
    let err = client.me().await.unwrap_err();
    assert!(matches!(err, TalkError::Unavailable { attempts: 3, .. }), "{err}");

    s.fake.script("/v2/api/talk/memo/default/send", 400, json!({"msg": "receiver_uuids is invalid", "code": -2}));
    let err = client.send_memo(&text("bad")).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TalkError::Api { code: -2, .. }), "{msg}");
    assert!(msg.contains("receiver_uuids is invalid") && msg.contains("missing or malformed"), "{msg}");
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 4);

    // A bare 502 from a proxy never reached Kakao: the send is retried. A bare 500 may have
    // been processed: the send is not repeated (no duplicate message), and the error says so.
    s.fake.script("/v2/api/talk/memo/default/send", 502, json!("Bad Gateway"));
    client.send_memo(&text("via proxy")).await.unwrap();
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 6);
    s.fake.script("/v2/api/talk/memo/default/send", 500, json!("Internal Server Error"));
    let err = client.send_memo(&text("ambiguous")).await.unwrap_err();
    assert!(err.to_string().contains("may or may not have been delivered"), "{err}");
    assert_eq!(s.fake.requests_to("/v2/api/talk/memo/default/send").len(), 7);
    // Reads are safe to repeat after the same answer.
    s.fake.script("/v2/user/me", 500, json!("Internal Server Error"));
    assert_eq!(client.me().await.unwrap().id, USER_ID);
}

#[tokio::test]
async fn friends_are_paged_and_cached() {
    let s = Setup::new().await;
    s.login("talk_message friends", None).await;
    s.fake.set_friends(150);
    let client = s.client();
    let list = client.friends(false).await.unwrap();
    assert_eq!(list.friends.len(), 150);
    assert_eq!(list.total_count, 150);
    assert!(!list.cached);
    let pages = s.fake.requests_to("/v1/api/talk/friends");
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].query("offset"), Some("0"));
    assert_eq!(pages[1].query("offset"), Some("100"));
    for p in &pages {
        assert_eq!(p.query("limit"), Some("100"));
        assert_eq!(p.query("order"), Some("asc"));
        assert_eq!(p.query("friend_order"), Some("favorite"));
    }
    let again = client.friends(false).await.unwrap();
    assert!(again.cached);
    assert_eq!(again.friends, list.friends);
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends").len(), 2, "served from the cache");
    client.friends(true).await.unwrap();
    assert_eq!(s.fake.requests_to("/v1/api/talk/friends").len(), 4, "--refresh fetches again");
}

#[tokio::test]
async fn profile_token_info_and_logout() {
    let s = Setup::new().await;
    s.login("talk_message profile_nickname", None).await;
    let client = s.client();
    assert_eq!(client.me().await.unwrap().id, USER_ID);
    let me = &s.fake.requests_to("/v2/user/me")[0];
    assert_eq!(me.query("secure_resource"), Some("true"));
    assert_eq!(client.token_info().await.unwrap().app_id, 77);
    assert_eq!(client.talk_profile().await.unwrap().nick_name.as_deref(), Some(NICKNAME));
    assert_eq!(client.logout().await.unwrap(), USER_ID);
    // The fake revoked the token at logout, as Kakao does; the stored refresh token still works.
    assert!(client.me().await.is_ok());
    assert_eq!(s.fake.refresh_calls(), 1);
    assert_eq!(client.unlink().await.unwrap(), USER_ID);
    assert_eq!(s.fake.requests_to("/v1/user/unlink")[0].content_type.as_deref(), Some(FORM));
}

#[tokio::test]
async fn images_are_uploaded_as_multipart_file_with_the_sniffed_type() {
    let s = Setup::new().await;
    let (access, _) = s.login("talk_message", None).await;
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-not-really-a-png";
    let image = s.client().upload_image(png).await.unwrap();
    assert_eq!(image.url, "https://talk.kakaocdn.net/img.png");
    let upload = &s.fake.requests_to("/v2/api/talk/message/image/upload")[0];
    assert!(upload.content_type.as_deref().unwrap().starts_with("multipart/form-data; boundary="));
    assert_eq!(upload.authorization.as_deref(), Some(format!("Bearer {access}").as_str()));
    let body = String::from_utf8_lossy(&upload.body);
    assert!(body.contains("name=\"file\"; filename=\"image.png\""), "{body}");
    assert!(body.contains("Content-Type: image/png"), "{body}");
    assert!(body.contains("name=\"secure_resource\"\r\n\r\ntrue"), "{body}");

    // Too large or not an image: refused before any call.
    let s = Setup::with_env(&[("KAKAO_MEDIA_MAX_MB", "1"), ("KAKAO_APP_KEY", "app-key-1")]).await;
    s.login("talk_message", None).await;
    let client = s.client();
    let mut big = b"\xFF\xD8\xFF".to_vec();
    big.resize(1024 * 1024 + 1, 0);
    assert!(client.upload_image(&big).await.unwrap_err().to_string().contains("mediaMaxMb"));
    assert!(client.upload_image(b"<svg/>").await.is_err());
    assert!(s.fake.requests_to("/v2/api/talk/message/image/upload").is_empty());
    // With KAKAO_APP_KEY the upload authenticates as the app, like the official SDK.
    big.truncate(100);
    client.upload_image(&big).await.unwrap();
    let upload = &s.fake.requests_to("/v2/api/talk/message/image/upload")[0];
    assert_eq!(upload.authorization.as_deref(), Some("KakaoAK app-key-1"));

    // An image already on the web is scraped by Kakao instead of uploaded.
    let scraped = client.scrap_image("https://example.com/chart.png").await.unwrap();
    assert!(scraped.url.starts_with("https://talk.kakaocdn.net/scrap"), "{}", scraped.url);
    let scrap = &s.fake.requests_to("/v2/api/talk/message/image/scrap")[0];
    assert_eq!(scrap.content_type.as_deref(), Some(FORM));
    assert_eq!(scrap.field("image_url"), Some("https://example.com/chart.png"));
    assert!(client.scrap_image("file:///etc/passwd").await.is_err());
}

#[tokio::test]
async fn the_login_flow_exchanges_the_code_with_pkce() {
    let s = Setup::with_env(&[("KAKAO_CLIENT_SECRET", "shh")]).await;
    *s.fake.state.client_secret.lock().unwrap() = Some("shh".into());
    let listener = RedirectListener::bind("http://127.0.0.1:0/kakao/oauth").await.unwrap();
    let redirect_uri = format!("http://{}/kakao/oauth", listener.local_addr().unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let oauth = OAuthClient::new(http.clone(), s.fake.url(), CLIENT_ID, Some(SecretString::from("shh")));
    let pkce = Pkce::generate().unwrap();
    let scopes = vec!["talk_message".to_owned(), "friends".to_owned()];
    let url = oauth
        .authorize_url(&AuthorizeRequest {
            redirect_uri: &redirect_uri,
            scopes: &scopes,
            state: "state-123",
            code_challenge: &pkce.challenge,
            prompt: None,
        })
        .unwrap();
    let waiting = tokio::spawn(async move { listener.wait_for_code("state-123", Duration::from_secs(20)).await });

    let kakao = http.get(&url).send().await.unwrap();
    assert_eq!(kakao.status(), 302);
    let location = kakao.headers()["location"].to_str().unwrap().to_owned();
    // A request with another state is refused and does not end the wait.
    let forged = http.get(format!("{redirect_uri}?code=evil&state=other")).send().await.unwrap();
    assert_eq!(forged.status(), 400);
    let back = http.get(&location).send().await.unwrap();
    assert_eq!(back.status(), 200);
    let code = waiting.await.unwrap().unwrap();
    assert_ne!(code, "evil");

    let response = oauth.exchange_code(&code, &redirect_uri, &pkce.verifier).await.unwrap();
    assert_eq!(response.scope.as_deref(), Some("talk_message friends"));
    let exchange = s.fake.requests_to("/oauth/token").pop().unwrap();
    assert_eq!(exchange.content_type.as_deref(), Some(FORM));
    assert_eq!(exchange.field("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.field("redirect_uri"), Some(redirect_uri.as_str()));
    assert_eq!(exchange.field("code_verifier"), Some(pkce.verifier.expose_secret()));
    assert_eq!(exchange.field("client_secret"), Some("shh"));

    // The code is single-use: Kakao's KOE320 comes back with its meaning.
    let err = oauth.exchange_code(&code, &redirect_uri, &pkce.verifier).await.unwrap_err();
    assert!(err.to_string().contains("KOE320") && err.to_string().contains("login"), "{err}");
    // A wrong secret: KOE010 names KAKAO_CLIENT_SECRET.
    let wrong = OAuthClient::new(http, s.fake.url(), CLIENT_ID, Some(SecretString::from("nope")));
    let err = wrong.refresh(&SecretString::from("x")).await.unwrap_err();
    assert!(err.to_string().contains("KAKAO_CLIENT_SECRET"), "{err}");
}

#[tokio::test]
async fn a_declined_login_reports_the_error_and_its_meaning() {
    let s = Setup::new().await;
    s.fake.deny_next_login("access_denied", "User denied access");
    let listener = RedirectListener::bind("http://127.0.0.1:0/cb").await.unwrap();
    let redirect_uri = format!("http://{}/cb", listener.local_addr().unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let oauth = OAuthClient::new(http.clone(), s.fake.url(), CLIENT_ID, None);
    let pkce = Pkce::generate().unwrap();
    let url = oauth
        .authorize_url(&AuthorizeRequest {
            redirect_uri: &redirect_uri,
            scopes: &[],
            state: "s1",
            code_challenge: &pkce.challenge,
            prompt: None,
        })
        .unwrap();
    let waiting = tokio::spawn(async move { listener.wait_for_code("s1", Duration::from_secs(20)).await });
    let location = http.get(&url).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let page = http.get(&location).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("cancelled"), "{page}");
    let err = waiting.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("access_denied") && err.contains("User denied access") && err.contains("cancelled"), "{err}");
}

#[tokio::test]
async fn no_redirect_ends_the_wait_with_the_likely_causes() {
    let listener = RedirectListener::bind("http://localhost:0/cb").await.unwrap();
    assert!(listener.local_addr().unwrap().ip().is_loopback());
    let err = listener.wait_for_code("s", Duration::from_millis(50)).await.unwrap_err().to_string();
    assert!(err.contains("KOE006") && err.contains("KAKAO_REST_API_KEY"), "{err}");
    let err = RedirectListener::bind("https://localhost:8443/cb").await.unwrap_err().to_string();
    assert!(err.contains("http://localhost"), "{err}");
}
