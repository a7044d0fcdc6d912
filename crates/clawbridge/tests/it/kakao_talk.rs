//! `clawbridge kakao …` (Kakao Login and the Talk Message API) as a user runs it: the real
//! binary as a child process against a fake kauth/kapi, with a test client playing the browser.

use clawbridge_testkit::fake_kakao::{CLIENT_ID, FakeKakao, USER_ID};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

struct Env {
    fake: FakeKakao,
    dir: tempfile::TempDir,
    redirect_uri: String,
    extra: Vec<(String, String)>,
}

impl Env {
    async fn new(extra: &[(&str, &str)]) -> Self {
        let fake = FakeKakao::start().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self {
            fake,
            dir: tempfile::tempdir().unwrap(),
            redirect_uri: format!("http://127.0.0.1:{port}/kakao/oauth"),
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn creds(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("CLAWBRIDGE_STATE_DIR", self.dir.path().join("state"))
            .env("CLAWBRIDGE_LISTEN", "127.0.0.1:1")
            .env("RUST_LOG", "warn")
            .env("KAKAO_REST_API_KEY", CLIENT_ID)
            .env("KAKAO_REDIRECT_URI", &self.redirect_uri)
            .env("KAKAO_API_BASE_URL", self.fake.url())
            .env("KAKAO_AUTH_BASE_URL", self.fake.url())
            .env("KAKAO_CREDENTIALS_DIR", self.creds())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(args).output()).await.expect("finishes").unwrap()
    }

    /// Runs `kakao login --no-browser`, follows the printed URL against the fake kauth like a
    /// browser, first sends a forged redirect, then the real one; returns the finished login.
    async fn login(&self, scopes: &str) -> Output {
        let mut child = self.command(&["kakao", "login", "--no-browser", "--scopes", scopes]).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the login URL is printed")
                .unwrap();
            let Some(line) = line else {
                let mut err = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut err).await;
                panic!("login exited before printing the URL: {}\n{err}", printed.join("\n"));
            };
            printed.push(line.clone());
            if line.trim_start().starts_with("http") {
                break line.trim().to_owned();
            }
        };
        let parsed = reqwest::Url::parse(&url).unwrap();
        let query: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.path(), "/oauth/authorize");
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["redirect_uri"], self.redirect_uri);
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["scope"], scopes);
        assert_eq!(query["code_challenge_method"], "S256");

        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let kakao = browser.get(&url).send().await.unwrap();
        assert_eq!(kakao.status(), 302);
        let location = kakao.headers()["location"].to_str().unwrap().to_owned();
        let forged = browser.get(format!("{}?code=stolen&state=not-ours", self.redirect_uri)).send().await.unwrap();
        assert_eq!(forged.status(), 400, "a redirect without our state is refused");
        let back = browser.get(&location).send().await.unwrap();
        assert_eq!(back.status(), 200);

        let mut stderr = String::new();
        let mut err_pipe = child.stderr.take().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                printed.push(line);
            }
            tokio::io::AsyncReadExt::read_to_string(&mut err_pipe, &mut stderr).await.unwrap();
            child.wait().await.unwrap()
        })
        .await
        .expect("login finishes");
        Output { status, stdout: printed.join("\n").into_bytes(), stderr: stderr.into_bytes() }
    }

    /// Every file under the temp dir (state dir with the SQLite store, credentials dir).
    fn all_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() { walk(&path, out) } else { out.push(path) }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }

    fn assert_no_token_bytes_on_disk(&self) {
        let tokens = self.fake.issued_tokens();
        assert!(!tokens.is_empty());
        for path in self.all_files() {
            let bytes = std::fs::read(&path).unwrap();
            for token in &tokens {
                let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
                assert!(!found, "{} holds a token in plaintext", path.display());
            }
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[tokio::test]
async fn login_with_the_real_binary_then_send_and_log_out() {
    let env = Env::new(&[("KAKAO_CLIENT_SECRET", "client-secret-1"), ("KAKAO_CHANNEL_ID", "_abc123")]).await;
    *env.fake.state.client_secret.lock().unwrap() = Some("client-secret-1".into());
    env.fake.set_friends(3);

    let out = env.login("talk_message,friends").await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("Logged in as Tester (Kakao user {USER_ID}), account default.")), "{text}");
    assert!(text.contains("Granted scopes: talk_message, friends"), "{text}");
    assert!(text.contains("Refresh token expires"), "{text}");
    let exchange = env.fake.requests_to("/oauth/token").pop().unwrap();
    assert_eq!(exchange.field("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.field("client_secret"), Some("client-secret-1"));
    assert_eq!(exchange.field("code_verifier").map(str::len), Some(43));

    // Encrypted at rest: a private ciphertext file, no token anywhere on disk or in the output.
    let file = env.creds().join("default.tokens");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    env.assert_no_token_bytes_on_disk();
    for token in env.fake.issued_tokens() {
        assert!(!text.contains(&token) && !stderr(&out).contains(&token));
    }

    let token = json(&env.run(&["kakao", "token", "--json", "--check"]).await);
    assert_eq!(token["scopes"], serde_json::json!(["talk_message", "friends"]));
    assert_eq!(token["user_id"], USER_ID);
    assert!(token["expires_in_secs"].as_i64().unwrap() > 20_000, "{token}");
    assert_eq!(token["kakao"]["app_id"], 77);
    let human = env.run(&["kakao", "token"]).await;
    assert!(stdout(&human).contains("Access token expires"), "{}", stdout(&human));

    let sent = env.run(&["kakao", "send-me", "--text", "build finished", "--link", "https://example.com/ci"]).await;
    assert!(sent.status.success(), "{}{}", stdout(&sent), stderr(&sent));
    let memo = &env.fake.requests_to("/v2/api/talk/memo/default/send")[0];
    assert_eq!(memo.content_type.as_deref(), Some("application/x-www-form-urlencoded;charset=utf-8"));
    let template = memo.json_field("template_object");
    assert_eq!(template["object_type"], "text");
    assert_eq!(template["text"], "build finished");
    assert_eq!(template["link"]["web_url"], "https://example.com/ci");

    let template_file = env.dir.path().join("list.json");
    std::fs::write(
        &template_file,
        r#"{"object_type":"list","header_title":"Today","header_link":{"web_url":"https://example.com"},"contents":[{"title":"only one","link":{}}]}"#,
    )
    .unwrap();
    let bad = env.run(&["kakao", "send-me", "--template-file", template_file.to_str().unwrap()]).await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("`contents`") && stderr(&bad).contains("2 to 3"), "{}", stderr(&bad));
    assert_eq!(env.fake.requests_to("/v2/api/talk/memo/default/send").len(), 1, "nothing sent");
    let custom = env.run(&["kakao", "send-me", "--template-id", "321", "--arg", "name=Kim"]).await;
    assert!(custom.status.success(), "{}", stderr(&custom));
    assert_eq!(
        env.fake.requests_to("/v2/api/talk/memo/send")[0].json_field("template_args"),
        serde_json::json!({"name": "Kim"})
    );

    let friends = json(&env.run(&["kakao", "friends", "--json"]).await);
    assert_eq!(friends["friends"].as_array().unwrap().len(), 3);
    assert_eq!(friends["cached"], false);
    let cached = json(&env.run(&["kakao", "friends", "--json"]).await);
    assert_eq!(cached["cached"], true, "the cache outlives the process");
    assert_eq!(env.fake.requests_to("/v1/api/talk/friends").len(), 1);
    let by_name =
        json(&env.run(&["kakao", "friends", "--friend-order", "nickname", "--order", "desc", "--json"]).await);
    assert_eq!(by_name["cached"], false, "another order is another list");
    let page = env.fake.requests_to("/v1/api/talk/friends").pop().unwrap();
    assert_eq!((page.query("friend_order"), page.query("order")), (Some("nickname"), Some("desc")));

    env.fake.fail_receiver("uuid-002", -530, "receiver refused");
    let report = env
        .run(&["kakao", "send-friends", "--to", "uuid-000,uuid-001", "--to", "uuid-002", "--text", "hi", "--json"])
        .await;
    assert!(!report.status.success(), "a failed receiver makes the exit code non-zero");
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["sent"], serde_json::json!(["uuid-000", "uuid-001"]));
    assert_eq!(report["failed"][0]["uuid"], "uuid-002");
    assert_eq!(report["failed"][0]["code"], -530);

    let me = env.run(&["kakao", "me"]).await;
    assert!(stdout(&me).contains("Kakao user 4242424242 — Tester"), "{}{}", stdout(&me), stderr(&me));
    assert!(stdout(&me).contains("Channel _abc123: ADDED"), "{}", stdout(&me));

    let image = env.dir.path().join("pic.gif");
    std::fs::write(&image, b"GIF89a\x01\x00\x01\x00").unwrap();
    let uploaded = env.run(&["kakao", "upload-image", image.to_str().unwrap()]).await;
    assert_eq!(stdout(&uploaded).trim(), "https://talk.kakaocdn.net/img.gif", "{}", stderr(&uploaded));

    // The quota ledger and friends cache went to the store; still no token bytes anywhere.
    env.assert_no_token_bytes_on_disk();

    let out = env.run(&["kakao", "logout"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.fake.requests_to("/v1/user/logout").len(), 1);
    assert!(!file.exists());
    let after = env.run(&["kakao", "token"]).await;
    assert!(!after.status.success());
    assert!(stderr(&after).contains("run `clawbridge kakao login`"), "{}", stderr(&after));
    let doctor = env.run(&["doctor"]).await;
    assert!(!doctor.status.success());
    assert!(stdout(&doctor).contains("FAIL  kakao login: not logged in (account default)"), "{}", stdout(&doctor));
}

#[tokio::test]
async fn a_declined_login_exits_non_zero_with_the_meaning() {
    let env = Env::new(&[]).await;
    env.fake.deny_next_login("access_denied", "User denied access");
    let out = env.login("talk_message").await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("access_denied") && err.contains("cancelled the login"), "{err}");
    assert!(!env.creds().join("default.tokens").exists());
}

#[tokio::test]
async fn tokens_in_the_database_refresh_and_several_accounts() {
    let env = Env::new(&[("KAKAO_TOKEN_STORE", "database")]).await;
    let out = env.login("talk_message").await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("stored encrypted in the sqlite store"), "{}", stdout(&out));
    assert!(!env.creds().exists(), "no files in database mode");
    env.assert_no_token_bytes_on_disk();

    let refreshed = json(&env.run(&["kakao", "token", "--refresh", "--json"]).await);
    assert_eq!(env.fake.refresh_calls(), 1);
    assert_eq!(refreshed["has_refresh_token"], true);
    env.assert_no_token_bytes_on_disk();

    let doctor = env.run(&["doctor"]).await;
    assert!(
        stdout(&doctor).contains("ok    kakao login: account default logged in as Tester (scopes talk_message)"),
        "{}",
        stdout(&doctor)
    );

    let other = env.run(&["kakao", "token", "--account", "work"]).await;
    assert!(!other.status.success());
    assert!(stderr(&other).contains("kakao login --account work"), "{}", stderr(&other));
    let bad = env.run(&["kakao", "token", "--account", "../etc"]).await;
    assert!(stderr(&bad).contains("--account"), "{}", stderr(&bad));
}

/// A throw-away PostgreSQL schema (as in `replicas.rs`).
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    async fn create() -> Option<Self> {
        use sqlx::Connection as _;
        if std::env::var("CLAWBRIDGE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: CLAWBRIDGE_SKIP_POSTGRES=1");
            return None;
        }
        let base = std::env::var("CLAWBRIDGE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("cb_kakao_{:08x}", u32::from_le_bytes(bytes));
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .expect("PostgreSQL reachable at CLAWBRIDGE_TEST_DATABASE_URL (CLAWBRIDGE_SKIP_POSTGRES=1 skips)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.unwrap();
        Some(Self { base, name })
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    async fn drop_it(self) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// Makes the stored access token of `default` expired, as if hours had passed.
async fn expire_access_token(env: &Env, database_url: &str, in_database: bool) {
    use clawbridge::secrets::{FileSecrets, StoreSecrets};
    use clawbridge_channel::cli::Secrets;
    use clawbridge_kakao::talk::{SecretTokenStore, TOKEN_SECRETS, TokenStore};
    use std::sync::Arc;
    let key = clawbridge_store::MasterKey::from_env_or_file(None, &env.dir.path().join("state")).unwrap();
    let secrets: Arc<dyn Secrets> = if in_database {
        Arc::new(StoreSecrets::new(key, clawbridge_store::open(database_url).await.unwrap(), TOKEN_SECRETS))
    } else {
        Arc::new(FileSecrets::new(env.creds(), "tokens", TOKEN_SECRETS, key))
    };
    let tokens = SecretTokenStore::new(secrets);
    let mut token = tokens.load("default").await.unwrap().unwrap();
    token.expires_at = 0;
    tokens.save("default", &token).await.unwrap();
}

/// Several `clawbridge kakao me` processes start together on an expired access token: one of
/// them refreshes (under the store's lease), the others wait and use its result.
async fn processes_refresh_once(env: &Env, database_url: &str, in_database: bool) {
    let out = env.login("talk_message").await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    expire_access_token(env, database_url, in_database).await;
    env.fake.state.refresh_delay_ms.store(300, std::sync::atomic::Ordering::SeqCst);
    let runs: Vec<_> = (0..6).map(|_| env.run(&["kakao", "me", "--json"])).collect();
    for out in futures_util::future::join_all(runs).await {
        let me = json(&out);
        assert_eq!(me["user"]["id"], USER_ID);
    }
    assert_eq!(env.fake.refresh_calls(), 1, "one refresh across processes");
    env.assert_no_token_bytes_on_disk();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_sqlite_refresh_once() {
    let env = Env::new(&[]).await;
    let url = format!("sqlite://{}", env.dir.path().join("state/clawbridge.db").display());
    processes_refresh_once(&env, &url, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_refresh_once() {
    let Some(schema) = PgSchema::create().await else { return };
    let env = Env::new(&[("CLAWBRIDGE_DATABASE_URL", &schema.url()), ("KAKAO_TOKEN_STORE", "database")]).await;
    processes_refresh_once(&env, &schema.url(), true).await;
    schema.drop_it().await;
}

/// The agent notifies its owner: a real OpenClaw gateway runs `clawbridge kakao send-me` with its
/// `exec` tool (the path the "Notify the owner" SKILL.md section teaches), and the memo reaches
/// the fake kapi. The testkit's stub model asks for the tool call (`TOOLTEST: <cmd>`).
#[tokio::test]
async fn the_agent_notifies_its_owner_through_the_real_gateway() {
    use crate::support::{Harness, config, open_policy, text};
    let Some(shared) = clawbridge_testkit::shared() else { return };
    let env = Env::new(&[]).await;
    let out = env.login("talk_message").await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    let marker = format!("owner-note-{:08x}", u32::from_le_bytes(bytes));
    let command = format!(
        "HOME={home} CLAWBRIDGE_STATE_DIR={state} KAKAO_REST_API_KEY={CLIENT_ID} KAKAO_API_BASE_URL={api} \
         KAKAO_AUTH_BASE_URL={api} KAKAO_CREDENTIALS_DIR={creds} RUST_LOG=warn {bin} kakao send-me --text {marker}",
        home = env.dir.path().display(),
        state = env.dir.path().join("state").display(),
        api = env.fake.url(),
        creds = env.creds().display(),
        bin = env!("CARGO_BIN_EXE_clawbridge"),
    );

    let daemon_dir = tempfile::tempdir().unwrap();
    let mut h =
        Harness::start(config(daemon_dir.path(), &shared.url(), shared.token(), &[]), open_policy(), 4096).await;
    h.bridge().accept(text(&marker, &format!("{marker}-msg"), &format!("TOOLTEST: {command}"))).await.unwrap();
    let sent = h.wait_sent(1, Duration::from_secs(180)).await;
    let reply = sent[0].text.clone().unwrap_or_default();
    assert!(reply.contains("Sent to your KakaoTalk"), "{reply}");
    let memos = env.fake.requests_to("/v2/api/talk/memo/default/send");
    assert_eq!(memos.len(), 1);
    assert_eq!(memos[0].json_field("template_object")["text"], marker.as_str());
    h.shutdown().await;
}
