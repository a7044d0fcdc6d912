//! `clawbridge kakao login|logout|token|me|friends|send-me|send-friends|upload-image`: Kakao
//! Login and the Talk Message API (reference/kakao.md §1–4). Human output by default, `--json`
//! for scripts. Tokens are the bridge's secrets ([`SecretTokenStore`]), the quota ledger and
//! friends cache its channel state ([`BridgeState`]).

use crate::KakaoConfig;
use crate::talk::client::{FriendsList, http_client};
use crate::talk::models::{FriendOrder, FriendOrderDirection, FriendUuid};
use crate::talk::oauth::{AuthorizeRequest, OAuthClient, Pkce, RedirectListener, random_token};
use crate::talk::template::Link;
use crate::talk::{
    BridgeState, CustomTemplate, LoginConfig, MessageContent, OAuthToken, SecretTokenStore, TOKEN_SECRETS, TalkClient,
    TalkError, TalkState, Template, TokenStorage, TokenStore,
};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use clawbridge_channel::cli::{CliHost, SecretsAt};
use clawbridge_channel::plugin::Check;
use clawbridge_core::clock::now_ms;
use clawbridge_core::time::format_utc as format_epoch_ms;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Kakao Login and Talk Message API commands.
#[derive(Debug, Subcommand)]
pub enum TalkCommand {
    /// Log in with Kakao (OAuth 2.0 + PKCE) and store the tokens encrypted.
    Login {
        /// Consent items to ask for, comma-separated (default: kakao.oauth.scopes or talk_message).
        #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
        scopes: Option<Vec<String>>,
        /// Print the URL only; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Which login to store (several Kakao users can be logged in).
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// How long to wait for the redirect, in seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Log out at Kakao and delete the stored tokens.
    Logout {
        /// Also unlink the app from the Kakao account (withdraws all consents).
        #[arg(long)]
        unlink: bool,
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
    },
    /// Show the stored tokens' expiry and scopes (never the tokens).
    Token {
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Refresh the access token now.
        #[arg(long)]
        refresh: bool,
        /// Also ask Kakao about the access token (/v1/user/access_token_info).
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the logged-in Kakao user (/v2/user/me and the KakaoTalk profile).
    Me {
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List KakaoTalk friends who use this app (cached 30 minutes).
    Friends {
        /// Fetch from Kakao instead of the cache.
        #[arg(long)]
        refresh: bool,
        /// Sort key.
        #[arg(long, value_enum, default_value = "favorite")]
        friend_order: FriendOrderArg,
        /// Sort direction.
        #[arg(long, value_enum, default_value = "asc")]
        order: OrderArg,
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a message to yourself ("chat with me" in KakaoTalk).
    SendMe {
        /// What to send.
        #[command(flatten)]
        content: Box<ContentArgs>,
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a message to friends (UUIDs from `kakao friends`), five per call.
    SendFriends {
        /// Receiver UUIDs (repeat the flag or separate with commas).
        #[arg(long, required = true, value_delimiter = ',', value_name = "UUID")]
        to: Vec<String>,
        /// What to send.
        #[command(flatten)]
        content: Box<ContentArgs>,
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload an image (JPEG, PNG, GIF) for templates and print its URL.
    UploadImage {
        /// The image file, or an http(s) URL for Kakao to fetch (image scrap).
        path: PathBuf,
        /// Which login.
        #[arg(long, default_value = "default", value_name = "ID")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--friend-order` of `kakao friends`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FriendOrderArg {
    /// Favourites first.
    Favorite,
    /// By nickname.
    Nickname,
}

/// `--order` of `kakao friends`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OrderArg {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// The message content options shared by `send-me` and `send-friends`.
#[derive(Debug, Args)]
pub struct ContentArgs {
    /// A text message (at most 200 characters).
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,
    /// The link of a --text message.
    #[arg(long, value_name = "URL", requires = "text")]
    link: Option<String>,
    /// The button label of a --text message.
    #[arg(long, value_name = "LABEL", requires = "text")]
    button_title: Option<String>,
    /// A default template (`template_object`) as a JSON file.
    #[arg(long, value_name = "FILE")]
    template_file: Option<PathBuf>,
    /// A custom template made in the Kakao console.
    #[arg(long, value_name = "ID")]
    template_id: Option<u64>,
    /// A `${KEY}` value of the custom template (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// Send a web page as a card (scrap); may use --template-id.
    #[arg(long, value_name = "URL")]
    scrap: Option<String>,
}

impl ContentArgs {
    /// The message, validated before anything is sent.
    fn content(&self) -> anyhow::Result<MessageContent> {
        let custom = || -> anyhow::Result<Option<CustomTemplate>> {
            self.template_id
                .map(|id| CustomTemplate::with_args(id, self.args.iter().map(String::as_str)))
                .transpose()
                .map_err(anyhow::Error::from)
        };
        let chosen =
            [self.text.is_some(), self.template_file.is_some(), self.template_id.is_some() || self.scrap.is_some()];
        anyhow::ensure!(
            chosen.iter().filter(|c| **c).count() == 1,
            "give exactly one of --text, --template-file, --template-id or --scrap (which may use --template-id)"
        );
        anyhow::ensure!(
            self.args.is_empty() || self.template_id.is_some(),
            "--arg needs --template-id (template_args are for console templates)"
        );
        if let Some(text) = &self.text {
            let link = self.link.as_deref().map(Link::web).unwrap_or_default();
            let mut template = Template::text(text, link);
            if let Some(title) = &self.button_title {
                template = template.button_title(title);
            }
            template.validate()?;
            return Ok(MessageContent::from(template));
        }
        if let Some(path) = &self.template_file {
            let json = std::fs::read_to_string(path).with_context(|| format!("--template-file {}", path.display()))?;
            let template = Template::from_json(&json).with_context(|| format!("--template-file {}", path.display()))?;
            return Ok(MessageContent::from(template));
        }
        if let Some(url) = &self.scrap {
            return Ok(MessageContent::Scrap { request_url: url.clone(), template: custom()? });
        }
        let template = custom()?.context("--template-id is missing")?;
        Ok(MessageContent::Custom(template))
    }
}

/// Token files are `<account>.tokens` in the credentials dir.
const TOKEN_FILE_EXTENSION: &str = "tokens";

/// Account names become file names and store keys: letters, digits, `-`, `_`, `.`.
///
/// # Errors
/// A message with the rule.
pub fn check_account(account: &str) -> anyhow::Result<()> {
    let ok = !account.is_empty()
        && account.len() <= 64
        && !account.starts_with('.')
        && account.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    anyhow::ensure!(ok, "--account {account:?}: use 1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')");
    Ok(())
}

/// Everything a command needs: the settings, the token store and the state.
struct Talk {
    login: LoginConfig,
    tokens: Arc<dyn TokenStore>,
    state: Arc<dyn TalkState>,
    token_location: String,
    /// `[retry.http]`.
    retry: clawbridge_core::retry::RetryPolicy,
}

impl Talk {
    async fn open(kakao: &KakaoConfig, host: &dyn CliHost) -> anyhow::Result<Self> {
        let login = kakao.login.clone().context(
            "Kakao Login is not configured: set KAKAO_REST_API_KEY (kakao.restApiKey) to the app's REST API key \
             from developers.kakao.com > My Application > App Keys",
        )?;
        let at = match login.token_storage {
            TokenStorage::Files => SecretsAt::Dir { dir: &login.credentials_dir, extension: TOKEN_FILE_EXTENSION },
            TokenStorage::Database => SecretsAt::Store,
        };
        let secrets = host.secrets(TOKEN_SECRETS, at).await.map_err(super::host_error)?;
        let bridge = host.bridge().await.map_err(super::host_error)?;
        Ok(Self {
            token_location: secrets.location(),
            tokens: Arc::new(SecretTokenStore::new(secrets)),
            state: Arc::new(BridgeState::new(bridge)),
            login,
            retry: host.retry(),
        })
    }

    fn client(&self, account: &str) -> anyhow::Result<TalkClient> {
        check_account(account)?;
        Ok(TalkClient::from_config(&self.login, account, self.tokens.clone(), self.state.clone())?
            .with_retry(self.retry))
    }
}

/// The Talk Message API client of Kakao Login account `account`, with the token store and state
/// the commands use (the daemon's `kakao_send_me` / `kakao_send_friends` tools send through it).
///
/// # Errors
/// Kakao Login is not configured, the account name is not valid, or the secrets or the store
/// cannot be opened.
pub async fn talk_client(kakao: &KakaoConfig, host: &dyn CliHost, account: &str) -> anyhow::Result<TalkClient> {
    Talk::open(kakao, host).await?.client(account)
}

/// Runs a Kakao Login / Talk Message command.
///
/// # Errors
/// Configuration, storage and Kakao errors, each with its meaning and the fix.
pub async fn run(kakao: &KakaoConfig, host: &dyn CliHost, command: TalkCommand) -> anyhow::Result<ExitCode> {
    let talk = Talk::open(kakao, host).await?;
    match command {
        TalkCommand::Login { scopes, no_browser, account, timeout, json } => {
            login(&talk, scopes, no_browser, &account, Duration::from_secs(timeout), json).await
        }
        TalkCommand::Logout { unlink, account } => logout(&talk, unlink, &account).await,
        TalkCommand::Token { account, refresh, check, json } => token(&talk, &account, refresh, check, json).await,
        TalkCommand::Me { account, json } => me(&talk, &account, json).await,
        TalkCommand::Friends { refresh, friend_order, order, account, json } => {
            let friend_order = match friend_order {
                FriendOrderArg::Favorite => FriendOrder::Favorite,
                FriendOrderArg::Nickname => FriendOrder::Nickname,
            };
            let order = match order {
                OrderArg::Asc => FriendOrderDirection::Asc,
                OrderArg::Desc => FriendOrderDirection::Desc,
            };
            friends(&talk, &account, refresh, (order, friend_order), json).await
        }
        TalkCommand::SendMe { content, account, json } => {
            let content = content.content()?;
            let client = talk.client(&account)?;
            client.send_memo(&content).await?;
            if json {
                println!("{}", json!({"sent": true}));
            } else {
                println!("Sent to your KakaoTalk \"chat with me\".");
            }
            Ok(ExitCode::SUCCESS)
        }
        TalkCommand::SendFriends { to, content, account, json } => {
            let content = content.content()?;
            let client = talk.client(&account)?;
            let to: Vec<FriendUuid> = to.into_iter().map(FriendUuid::from).collect();
            let report = client.send_to_friends(&to, &content).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for uuid in &report.sent {
                    println!("sent    {uuid}");
                }
                for failure in &report.failed {
                    println!("failed  {}  {}", failure.uuid, failure.reason);
                }
                println!("{} sent, {} failed", report.sent.len(), report.failed.len());
            }
            Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        TalkCommand::UploadImage { path, account, json } => {
            let client = talk.client(&account)?;
            let source = path.to_string_lossy();
            let (image, size) = if source.starts_with("http://") || source.starts_with("https://") {
                (client.scrap_image(&source).await?, None)
            } else {
                let bytes = tokio::fs::read(&path).await.with_context(|| format!("cannot read {}", path.display()))?;
                (client.upload_image(&bytes).await?, Some(bytes.len() as u64))
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&image)?);
            } else {
                println!("{}", image.url);
                eprintln!(
                    "({} {}x{}, {} bytes; use it as image_url in a template — Kakao keeps it about 20 days)",
                    image.content_type.as_deref().unwrap_or("image"),
                    image.width.unwrap_or(0),
                    image.height.unwrap_or(0),
                    image.length.or(size).unwrap_or(0)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn login(
    talk: &Talk,
    scopes: Option<Vec<String>>,
    no_browser: bool,
    account: &str,
    timeout: Duration,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = talk.client(account)?;
    let redirect_uri = talk.login.redirect_uri.clone().context(
        "KAKAO_REDIRECT_URI (kakao.oauth.redirectUri) is not set: register a redirect URI such as \
         http://localhost:18791/kakao/oauth under Kakao Login > Redirect URI in the Kakao console and set it",
    )?;
    let scopes: Vec<String> = scopes
        .map(|s| s.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_else(|| talk.login.scopes.clone());
    if let Some(bad) = scopes.iter().find(|s| !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
        anyhow::bail!("--scopes has {bad:?}: use consent item ids such as talk_message,friends,profile_nickname");
    }
    // Listen before printing the URL, so the redirect can never arrive before we do.
    let listener = RedirectListener::bind(&redirect_uri).await?;
    let oauth = OAuthClient::new(
        http_client()?,
        &talk.login.auth_base_url,
        &talk.login.rest_api_key,
        talk.login.client_secret.clone(),
    );
    let pkce = Pkce::generate()?;
    let state = random_token(18)?;
    let url = oauth.authorize_url(&AuthorizeRequest {
        redirect_uri: &redirect_uri,
        scopes: &scopes,
        state: &state,
        code_challenge: &pkce.challenge,
        prompt: None,
    })?;
    // With --json, stdout carries only the result; the instructions go to stderr.
    let say = |line: &str| if as_json { eprintln!("{line}") } else { println!("{line}") };
    say(&format!("Open this URL in a browser to log in with Kakao (account {account}):"));
    say("");
    say(&format!("  {url}"));
    say("");
    say(&format!("Waiting up to {} s for Kakao to redirect to {redirect_uri} …", timeout.as_secs()));
    if !no_browser {
        open_browser(&url);
    }
    let code = listener.wait_for_code(&state, timeout).await.map_err(login_error)?;
    let response = oauth.exchange_code(&code, &redirect_uri, &pkce.verifier).await.map_err(login_error)?;
    let mut token = OAuthToken::from_response(response, now_ms(), None);
    talk.tokens.save(account, &token).await?;
    client.tokens().forget().await;
    // The tokens are stored; who logged in is extra (the quota guard's sender id).
    let who = match client.me().await {
        Ok(me) => {
            token.user_id = Some(me.id);
            token.nickname = me.nickname().map(str::to_owned);
            talk.tokens.save(account, &token).await?;
            format!("{} (Kakao user {})", token.nickname.as_deref().unwrap_or("(no nickname consented)"), me.id)
        }
        Err(e) => {
            eprintln!("warning: logged in, but /v2/user/me failed: {e}");
            "an unknown user".to_owned()
        }
    };
    if as_json {
        println!(
            "{}",
            json!({
                "account": account,
                "user_id": token.user_id,
                "nickname": token.nickname,
                "scopes": token.scopes,
                "expires_at": token.expires_at,
                "refresh_expires_at": token.refresh_expires_at,
            })
        );
    } else {
        println!("Logged in as {who}, account {account}.");
        println!("Granted scopes: {}", scopes_text(&token.scopes));
        let missing: Vec<&String> = scopes.iter().filter(|s| !token.scopes.contains(s)).collect();
        if !missing.is_empty() && !token.scopes.is_empty() {
            println!(
                "Not granted: {} (the user declined, or the consent item is not enabled in the app)",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        print_expiry(&token);
        println!("Tokens stored encrypted in {}.", talk.token_location);
    }
    Ok(ExitCode::SUCCESS)
}

fn login_error(e: TalkError) -> anyhow::Error {
    anyhow::anyhow!("Kakao login failed: {e}")
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Reap it in the background; the URL is printed either way.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(_) => eprintln!("(could not start {opener}; open the URL yourself)"),
    }
}

fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() { "(none reported)".to_owned() } else { scopes.join(", ") }
}

fn print_expiry(token: &OAuthToken) {
    let now = now_ms();
    println!("Access token expires {} UTC ({}).", format_epoch_ms(token.expires_at), relative(token.expires_at - now));
    match token.refresh_expires_at {
        Some(at) => println!("Refresh token expires {} UTC ({}).", format_epoch_ms(at), relative(at - now)),
        None if token.refresh_token.is_some() => println!("Refresh token expiry: not reported by Kakao."),
        None => println!("No refresh token: run `clawbridge kakao login` again when the access token expires."),
    }
}

fn relative(ms: i64) -> String {
    if ms <= 0 {
        return "expired".to_owned();
    }
    let mins = ms / 60_000;
    match mins {
        0 => "in less than a minute".to_owned(),
        m if m < 120 => format!("in {m} min"),
        m if m < 48 * 60 => format!("in {} h {} min", m / 60, m % 60),
        m => format!("in {} days", m / (24 * 60)),
    }
}

async fn logout(talk: &Talk, unlink: bool, account: &str) -> anyhow::Result<ExitCode> {
    let client = talk.client(account)?;
    if talk.tokens.load(account).await?.is_none() {
        println!("Account {account} is not logged in; nothing to do.");
        return Ok(ExitCode::SUCCESS);
    }
    let remote = if unlink { client.unlink().await } else { client.logout().await };
    let note = match &remote {
        Ok(_) if unlink => "unlinked the app from the Kakao account".to_owned(),
        Ok(_) => "logged out at Kakao".to_owned(),
        // The tokens are useless anyway: delete them.
        Err(TalkError::LoginRequired { .. }) => "the login had already expired at Kakao".to_owned(),
        Err(e) => {
            anyhow::bail!(
                "Kakao did not confirm the {}: {e}; the stored tokens were kept, try again",
                if unlink { "unlink" } else { "logout" }
            )
        }
    };
    talk.tokens.delete(account).await?;
    client.clear_cache().await?;
    println!("{note}; deleted the stored tokens of account {account}.");
    Ok(ExitCode::SUCCESS)
}

async fn token(talk: &Talk, account: &str, refresh: bool, check: bool, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = talk.client(account)?;
    let token = if refresh { client.tokens().refresh_now().await? } else { client.tokens().stored().await? };
    let remote = if check { Some(client.token_info().await?) } else { None };
    let sender = token.user_id.map_or_else(|| format!("account:{account}"), |id| id.to_string());
    let usage = client.quota().usage(&sender).await?;
    let limits = client.quota().limits();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "account": account,
                "user_id": token.user_id,
                "nickname": token.nickname,
                "scopes": token.scopes,
                "expires_at": token.expires_at,
                "expires_in_secs": (token.expires_at - now_ms()) / 1000,
                "refresh_expires_at": token.refresh_expires_at,
                "has_refresh_token": token.refresh_token.is_some(),
                "kakao": remote,
                "quota_today": {"day_kst": usage.day, "app": usage.app, "app_limit": limits.app_per_day,
                                "sender": usage.sender, "sender_limit": limits.sender_per_day},
            }))?
        );
    } else {
        println!(
            "Account {account}: {} (Kakao user {})",
            token.nickname.as_deref().unwrap_or("?"),
            token.user_id.map_or_else(|| "?".to_owned(), |id| id.to_string())
        );
        println!("Scopes: {}", scopes_text(&token.scopes));
        print_expiry(&token);
        if let Some(info) = remote {
            println!("Kakao says: valid for {} s more (app {}).", info.expires_in, info.app_id);
        }
        println!(
            "Messages today ({} KST): app {}/{}, this sender to friends {}/{}.",
            usage.day, usage.app, limits.app_per_day, usage.sender, limits.sender_per_day
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn me(talk: &Talk, account: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = talk.client(account)?;
    let me = client.me().await?;
    let profile = match client.talk_profile().await {
        Ok(profile) => Some(profile),
        Err(TalkError::ConsentRequired { .. } | TalkError::Api { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let channel = match &talk.login.channel_id {
        Some(id) => client.channel_relations(std::slice::from_ref(id)).await.ok(),
        None => None,
    };
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"user": me, "talk_profile": profile, "channels": channel}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Kakao user {} — {}", me.id, me.nickname().unwrap_or("(nickname not consented)"));
    if let Some(email) = me.kakao_account.as_ref().and_then(|a| a.email.as_deref()) {
        println!("Email: {email}");
    }
    if let Some(at) = &me.connected_at {
        println!("Connected to the app: {at}");
    }
    match profile {
        Some(p) => println!("KakaoTalk profile: {}", p.nick_name.as_deref().unwrap_or("?")),
        None => println!("KakaoTalk profile: not available (consent item profile not granted)"),
    }
    if let Some(relations) = channel {
        for c in relations.channels {
            println!(
                "Channel {}: {}",
                c.channel_public_id.as_deref().unwrap_or("?"),
                c.relation.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn friends(
    talk: &Talk,
    account: &str,
    refresh: bool,
    (order, friend_order): (FriendOrderDirection, FriendOrder),
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = talk.client(account)?;
    let list: FriendsList = client.friends_ordered(refresh, order, friend_order).await?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "fetched_at": list.fetched_at,
                "cached": list.cached,
                "total_count": list.total_count,
                "favorite_count": list.favorite_count,
                "friends": list.friends,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.friends.is_empty() {
        println!(
            "No friends who use this app (only friends who also logged in to the app and consented to `friends` appear)."
        );
    }
    for f in &list.friends {
        println!(
            "{}  {}{}{}",
            f.uuid,
            f.profile_nickname.as_deref().unwrap_or("?"),
            if f.favorite { "  ★" } else { "" },
            if f.allowed_msg { "" } else { "  (does not accept messages)" }
        );
    }
    let age = (now_ms() - list.fetched_at) / 60_000;
    println!(
        "{} friends ({} favourites){}",
        list.total_count,
        list.favorite_count,
        if list.cached { format!(", cached {age} min ago (--refresh to fetch again)") } else { String::new() }
    );
    Ok(ExitCode::SUCCESS)
}

/// `clawbridge doctor`'s Kakao Login check of the default account, without network calls;
/// `None` when Kakao Login is not configured.
pub async fn doctor_check(kakao: &KakaoConfig, host: &dyn CliHost) -> Option<Check> {
    const WHAT: &str = "kakao login";
    kakao.login.as_ref()?;
    let talk = match Talk::open(kakao, host).await {
        Ok(talk) => talk,
        Err(e) => return Some(Check::failed(WHAT, format!("{e:#}"), "see above")),
    };
    let relogin = "run `clawbridge kakao login`";
    Some(match talk.tokens.load("default").await {
        Ok(None) => Check::failed(WHAT, "not logged in (account default)", relogin),
        Ok(Some(token)) if token.refresh_expires_at.is_some_and(|at| at <= now_ms()) => {
            Check::failed(WHAT, "the refresh token of account default has expired", relogin)
        }
        Ok(Some(token)) => Check::ok(
            WHAT,
            format!(
                "account default logged in as {} (scopes {}), refresh token valid until {} UTC; tokens in {}",
                token.nickname.as_deref().unwrap_or("?"),
                scopes_text(&token.scopes),
                token.refresh_expires_at.map_or_else(|| "?".to_owned(), format_epoch_ms),
                talk.token_location
            ),
        ),
        Err(e) => Check::failed(WHAT, e.to_string(), relogin),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: Option<&str>, file: Option<&str>, id: Option<u64>, a: &[&str], scrap: Option<&str>) -> ContentArgs {
        ContentArgs {
            text: text.map(str::to_owned),
            link: None,
            button_title: None,
            template_file: file.map(PathBuf::from),
            template_id: id,
            args: a.iter().map(|s| (*s).to_owned()).collect(),
            scrap: scrap.map(str::to_owned),
        }
    }

    #[test]
    fn exactly_one_content_option() {
        assert!(matches!(args(Some("hi"), None, None, &[], None).content().unwrap(), MessageContent::Default(_)));
        assert!(matches!(args(None, None, Some(5), &["k=v"], None).content().unwrap(), MessageContent::Custom(_)));
        assert!(matches!(
            args(None, None, Some(5), &[], Some("https://e.com")).content().unwrap(),
            MessageContent::Scrap { template: Some(_), .. }
        ));
        assert!(args(None, None, None, &[], None).content().is_err());
        assert!(args(Some("hi"), None, Some(5), &[], None).content().is_err());
        assert!(args(Some("hi"), None, None, &["k=v"], None).content().is_err());
        let err = args(Some(&"x".repeat(201)), None, None, &[], None).content().unwrap_err();
        assert!(err.to_string().contains("`text`"), "{err}");
    }

    #[test]
    fn account_names_are_safe_file_names() {
        assert!(check_account("work-2").is_ok());
        assert!(check_account("../x").is_err() && check_account("").is_err() && check_account(".hidden").is_err());
    }

    #[test]
    fn durations_read_like_people_speak() {
        assert_eq!(relative(-1), "expired");
        assert_eq!(relative(90 * 60_000), "in 90 min");
        assert_eq!(relative(6 * 3_600_000), "in 6 h 0 min");
        assert_eq!(relative(60 * 86_400_000), "in 60 days");
    }
}
