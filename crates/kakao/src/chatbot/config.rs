//! `[kakao.chatbot]` and the `KAKAO_*` chatbot variables (environment wins).
//!
//! Names follow the design seed's `KakaoChannelConfig` where it has one (`restApiKey`, `dmPolicy`,
//! `allowFrom`, `mediaMaxMb`, `accounts`); the rest are the same camelCase style.

use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default Kakao bot API (Event API, callback host).
pub const DEFAULT_BOT_API_BASE_URL: &str = "https://bot-api.kakao.com";
/// Kakao waits 5 s for a skill; answers after this hard cap would race its timeout.
pub const MAX_SYNC_DEADLINE: Duration = Duration::from_millis(4_500);
/// Default time the skill handler waits for the agent before answering otherwise.
pub const DEFAULT_SYNC_DEADLINE: Duration = Duration::from_millis(4_000);

/// One chatbot (a Kakao bot serving a KakaoTalk Channel): what the skill server needs to know.
#[derive(Clone, Debug)]
pub struct BotSettings {
    /// The account name (`default` with one bot).
    pub account: String,
    /// `bot.id` every skill request must carry (when set).
    pub bot_id: Option<String>,
    /// The value of the `X-Skill-Secret` header configured on the skill in the chatbot admin center.
    pub skill_secret: SecretString,
    /// The REST API key for the Event API (`Authorization: KakaoAK …`); `None`: no pushes.
    pub rest_api_key: Option<SecretString>,
    /// Who may talk to the agent.
    pub access: AccessPolicy,
    /// How long the skill handler waits for the agent before answering otherwise (≤ 4.5 s).
    pub sync_deadline: Duration,
    /// `data.text` of the `useCallback` answer (Kakao's waiting message may show it).
    pub waiting_text: String,
    /// Shown when the answer is not ready and there is no callback.
    pub still_working_text: String,
    /// Label (and message) of the quick reply that shows the next part of a long answer.
    pub more_label: String,
    /// Label (and message) of the quick reply that fetches an answer that was not ready.
    pub fetch_label: String,
    /// Event name of an Event block used to push late answers (optional, paid).
    pub late_answer_event: Option<String>,
}

/// The validated chatbot settings.
#[derive(Clone, Debug)]
pub struct ChatbotConfig {
    /// The bots; one unless `accounts` is configured.
    pub bots: Vec<BotSettings>,
    /// `Authorization: KakaoAK {admin key}` of the channel webhook; `None`: the route answers 401.
    pub admin_key: Option<SecretString>,
    /// Base URL of the bot API (Event API; the default callback host).
    pub bot_api_base_url: String,
    /// Hosts (or parent domains) a `callbackUrl` may point to.
    pub callback_hosts: Vec<String>,
    /// Hosts (or parent domains) user images (secure-image plugin) are downloaded from.
    pub image_hosts: Vec<String>,
    /// Largest user image downloaded, in bytes.
    pub media_max_bytes: u64,
    /// Largest skill request body.
    pub max_body_bytes: usize,
    /// Same user + same utterance within this window counts as a Kakao retry (no request id).
    pub dedup_window: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileChatbot {
    bot_id: Option<String>,
    skill_secret: Option<String>,
    admin_key: Option<String>,
    bot_api_base_url: Option<String>,
    rest_api_key: Option<String>,
    dm_policy: Option<String>,
    allow_from: Option<Vec<String>>,
    sync_deadline_secs: Option<f64>,
    waiting_text: Option<String>,
    still_working_text: Option<String>,
    more_label: Option<String>,
    fetch_label: Option<String>,
    late_answer_event: Option<String>,
    callback_hosts: Option<Vec<String>>,
    image_hosts: Option<Vec<String>>,
    media_max_mb: Option<f64>,
    max_body_bytes: Option<usize>,
    dedup_window_secs: Option<u64>,
    #[serde(default)]
    accounts: BTreeMap<String, FileBot>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileBot {
    bot_id: Option<String>,
    skill_secret: Option<String>,
    rest_api_key: Option<String>,
    dm_policy: Option<String>,
    allow_from: Option<Vec<String>>,
    sync_deadline_secs: Option<f64>,
    waiting_text: Option<String>,
    still_working_text: Option<String>,
    late_answer_event: Option<String>,
}

const DEFAULT_WAITING_TEXT: &str = "답변을 준비하고 있어요. 잠시만 기다려 주세요…";
const DEFAULT_STILL_WORKING_TEXT: &str =
    "답변을 아직 준비하고 있어요. 잠시 후 아무 메시지나 보내 주시면 답변을 보여 드릴게요.";

impl ChatbotConfig {
    /// Reads the chatbot settings from the `[kakao]` table (its `chatbot` sub-table) and the
    /// environment. `None` when the chatbot is not configured at all.
    ///
    /// # Errors
    /// A message naming the setting and the fix.
    pub fn load(file: Option<&toml::Table>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let table = file.and_then(|t| t.get("chatbot"));
        let file: FileChatbot = match table {
            Some(value) => value.clone().try_into().map_err(|e| {
                format!("[kakao.chatbot] in the config file: {e}. See the README's KakaoTalk chatbot section")
            })?,
            None => FileChatbot::default(),
        };
        let configured = table.is_some() || env("KAKAO_SKILL_SECRET").is_some() || env("KAKAO_BOT_ID").is_some();
        if !configured {
            return Ok(None);
        }

        let bot_api_base_url = env("KAKAO_BOT_API_BASE_URL")
            .or(file.bot_api_base_url.clone())
            .unwrap_or_else(|| DEFAULT_BOT_API_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let base_host = host_of(&bot_api_base_url).ok_or_else(|| {
            format!(
                "KAKAO_BOT_API_BASE_URL (kakao.chatbot.botApiBaseUrl) is {bot_api_base_url:?}: use an http(s) URL such as {DEFAULT_BOT_API_BASE_URL}"
            )
        })?;
        let mut callback_hosts = file
            .callback_hosts
            .clone()
            .unwrap_or_else(|| vec!["bot-api.kakao.com".to_owned(), "dev-bot-api.kakao.com".to_owned()]);
        callback_hosts.push(base_host);
        let image_hosts =
            file.image_hosts.clone().unwrap_or_else(|| vec!["kakaocdn.net".to_owned(), "kakao.com".to_owned()]);
        let media_max_mb = file.media_max_mb.unwrap_or(5.0);
        if !(media_max_mb > 0.0 && media_max_mb <= 50.0) {
            return Err(format!(
                "kakao.chatbot.mediaMaxMb is {media_max_mb}: use a size in MB between 0 and 50 (default 5)"
            ));
        }
        let max_body_bytes = file.max_body_bytes.unwrap_or(256 * 1024);
        if max_body_bytes < 1024 {
            return Err("kakao.chatbot.maxBodyBytes must be at least 1024 (default 262144)".to_owned());
        }
        let admin_key = env("KAKAO_ADMIN_KEY").or(file.admin_key.clone()).map(SecretString::from);

        let default_bot = FileBot {
            bot_id: env("KAKAO_BOT_ID").or(file.bot_id.clone()),
            skill_secret: env("KAKAO_SKILL_SECRET").or(file.skill_secret.clone()),
            rest_api_key: env("KAKAO_REST_API_KEY").or(file.rest_api_key.clone()),
            dm_policy: env("KAKAO_DM_POLICY").or(file.dm_policy.clone()),
            allow_from: env("KAKAO_ALLOW_FROM")
                .map(|v| v.split(',').map(str::to_owned).collect())
                .or(file.allow_from.clone()),
            sync_deadline_secs: match env("KAKAO_SYNC_DEADLINE_SECS") {
                Some(v) => Some(v.trim().parse::<f64>().map_err(|_| {
                    format!("KAKAO_SYNC_DEADLINE_SECS is {v:?}: expected seconds such as 4.0 (at most 4.5)")
                })?),
                None => file.sync_deadline_secs,
            },
            waiting_text: env("KAKAO_WAITING_TEXT").or(file.waiting_text.clone()),
            still_working_text: env("KAKAO_STILL_WORKING_TEXT").or(file.still_working_text.clone()),
            late_answer_event: env("KAKAO_LATE_ANSWER_EVENT").or(file.late_answer_event.clone()),
        };
        let more_label = label("moreLabel", file.more_label.clone().unwrap_or_else(|| "더 보기".to_owned()))?;
        let fetch_label = label("fetchLabel", file.fetch_label.clone().unwrap_or_else(|| "답변 보기".to_owned()))?;

        let mut bots = Vec::new();
        if file.accounts.is_empty() {
            bots.push(bot("default", &default_bot, &FileBot::default(), &more_label, &fetch_label, false)?);
        } else {
            for (name, overrides) in &file.accounts {
                if name.is_empty() || name.contains([':', '/', ' ']) {
                    return Err(format!(
                        "kakao.chatbot.accounts.{name:?}: account names may not be empty or contain ':', '/' or spaces"
                    ));
                }
                bots.push(bot(name, &default_bot, overrides, &more_label, &fetch_label, true)?);
            }
            let mut ids: Vec<&str> = bots.iter().filter_map(|b| b.bot_id.as_deref()).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return Err(
                    "kakao.chatbot.accounts: two accounts have the same botId; each bot needs its own".to_owned()
                );
            }
        }
        Ok(Some(Self {
            bots,
            admin_key,
            bot_api_base_url,
            callback_hosts,
            image_hosts,
            media_max_bytes: (media_max_mb * 1024.0 * 1024.0) as u64,
            max_body_bytes,
            dedup_window: Duration::from_secs(file.dedup_window_secs.unwrap_or(10).clamp(1, 600)),
        }))
    }
}

fn label(name: &str, value: String) -> Result<String, String> {
    let count = value.chars().count();
    if count == 0 || count > 14 {
        return Err(format!("kakao.chatbot.{name} is {value:?}: a quick-reply label needs 1 to 14 characters"));
    }
    Ok(value)
}

fn bot(
    account: &str,
    defaults: &FileBot,
    over: &FileBot,
    more_label: &str,
    fetch_label: &str,
    several: bool,
) -> Result<BotSettings, String> {
    let prefix = if several { format!("kakao.chatbot.accounts.{account}.") } else { "kakao.chatbot.".to_owned() };
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let bot_id = pick(&over.bot_id, &defaults.bot_id);
    if several && bot_id.is_none() {
        return Err(format!(
            "{prefix}botId is not set: with several bots every account needs its bot id (챗봇 관리자센터 > 설정 > 봇 ID), which routes skill requests"
        ));
    }
    let skill_secret = pick(&over.skill_secret, &defaults.skill_secret).ok_or_else(|| {
        format!(
            "KAKAO_SKILL_SECRET ({prefix}skillSecret) is not set: choose a long random value, set it here and as the \
             X-Skill-Secret header of the skill in the Kakao chatbot admin center"
        )
    })?;
    if skill_secret.len() < 16 {
        return Err(format!(
            "KAKAO_SKILL_SECRET ({prefix}skillSecret) is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 24`)"
        ));
    }
    let policy_name = pick(&over.dm_policy, &defaults.dm_policy).unwrap_or_else(|| "pairing".to_owned());
    let dm_policy: DmPolicy = policy_name.parse().map_err(|e| format!("KAKAO_DM_POLICY ({prefix}dmPolicy): {e}"))?;
    let allow_from =
        AllowFrom::new(over.allow_from.clone().or_else(|| defaults.allow_from.clone()).unwrap_or_default());
    let access = AccessPolicy::new(dm_policy, allow_from)
        .map_err(|e| format!("KAKAO_DM_POLICY / KAKAO_ALLOW_FROM ({prefix}dmPolicy, {prefix}allowFrom): {e}"))?;
    let secs = over.sync_deadline_secs.or(defaults.sync_deadline_secs).unwrap_or(DEFAULT_SYNC_DEADLINE.as_secs_f64());
    if !(secs > 0.0 && secs <= MAX_SYNC_DEADLINE.as_secs_f64()) {
        return Err(format!(
            "KAKAO_SYNC_DEADLINE_SECS ({prefix}syncDeadlineSecs) is {secs}: use more than 0 and at most 4.5 seconds (Kakao gives up after 5)"
        ));
    }
    Ok(BotSettings {
        account: account.to_owned(),
        bot_id,
        skill_secret: SecretString::from(skill_secret),
        rest_api_key: pick(&over.rest_api_key, &defaults.rest_api_key).map(SecretString::from),
        access,
        sync_deadline: Duration::from_secs_f64(secs),
        waiting_text: pick(&over.waiting_text, &defaults.waiting_text)
            .unwrap_or_else(|| DEFAULT_WAITING_TEXT.to_owned()),
        still_working_text: pick(&over.still_working_text, &defaults.still_working_text)
            .unwrap_or_else(|| DEFAULT_STILL_WORKING_TEXT.to_owned()),
        more_label: more_label.to_owned(),
        fetch_label: fetch_label.to_owned(),
        late_answer_event: pick(&over.late_answer_event, &defaults.late_answer_event),
    })
}

/// The host of an `http(s)://host[:port]/…` URL, lower-cased (IPv6 without brackets), as the
/// HTTP client itself parses it (WHATWG URL rules: a backslash ends the authority, userinfo is skipped):
/// what is checked is where the request really goes.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `host` is one of `allowed` or a subdomain of one.
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        let a = a.trim().trim_start_matches('.').to_ascii_lowercase();
        !a.is_empty() && (host == a || host.ends_with(&format!(".{a}")))
    })
}

/// Loopback hosts may use plain http (tests, a local reverse proxy); everything else needs https.
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "127.0.0.1" || host == "localhost" || host == "::1"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<Option<ChatbotConfig>, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let table: Option<toml::Table> = file.map(|f| toml::from_str(f).unwrap());
        ChatbotConfig::load(table.as_ref(), &|k| map.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123";

    #[test]
    fn absent_without_any_setting() {
        assert!(load(&[], None).unwrap().is_none());
        assert!(load(&[], Some("[oauth]\nx = 1\n")).unwrap().is_none());
    }

    #[test]
    fn environment_configures_one_bot_with_defaults() {
        let cfg = load(
            &[
                ("KAKAO_SKILL_SECRET", SECRET),
                ("KAKAO_BOT_ID", "bot1"),
                ("KAKAO_DM_POLICY", "allowlist"),
                ("KAKAO_ALLOW_FROM", "a,b"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.bots.len(), 1);
        let bot = &cfg.bots[0];
        assert_eq!(bot.account, "default");
        assert_eq!(bot.bot_id.as_deref(), Some("bot1"));
        assert_eq!(bot.sync_deadline, DEFAULT_SYNC_DEADLINE);
        assert_eq!(bot.access.dm_policy, DmPolicy::Allowlist);
        assert!(bot.access.allow_from.contains("b"));
        assert_eq!(cfg.bot_api_base_url, DEFAULT_BOT_API_BASE_URL);
        assert!(host_allowed("bot-api.kakao.com", &cfg.callback_hosts));
        assert!(host_allowed("secure.kakaocdn.net", &cfg.image_hosts));
        assert!(!host_allowed("evilkakaocdn.net", &cfg.image_hosts));
    }

    #[test]
    fn environment_wins_and_accounts_inherit() {
        let file = format!(
            "[chatbot]\nskillSecret = \"{SECRET}\"\nsyncDeadlineSecs = 3.0\nwaitingText = \"wait\"\n\
             [chatbot.accounts.shop]\nbotId = \"b1\"\n[chatbot.accounts.clinic]\nbotId = \"b2\"\nwaitingText = \"clinic wait\"\n"
        );
        let cfg = load(&[("KAKAO_SYNC_DEADLINE_SECS", "2.5")], Some(&file)).unwrap().unwrap();
        assert_eq!(cfg.bots.len(), 2);
        let clinic = cfg.bots.iter().find(|b| b.account == "clinic").unwrap();
        assert_eq!(clinic.waiting_text, "clinic wait");
        assert_eq!(clinic.sync_deadline, Duration::from_millis(2_500));
        let shop = cfg.bots.iter().find(|b| b.account == "shop").unwrap();
        assert_eq!(shop.waiting_text, "wait");
    }

    #[test]
    fn mistakes_name_the_setting_and_the_fix() {
        let err = load(&[("KAKAO_BOT_ID", "b")], None).unwrap_err();
        assert!(err.contains("KAKAO_SKILL_SECRET") && err.contains("X-Skill-Secret"), "{err}");
        let err = load(&[("KAKAO_SKILL_SECRET", "short")], None).unwrap_err();
        assert!(err.contains("16 characters"), "{err}");
        let err = load(&[("KAKAO_SKILL_SECRET", SECRET), ("KAKAO_SYNC_DEADLINE_SECS", "5")], None).unwrap_err();
        assert!(err.contains("KAKAO_SYNC_DEADLINE_SECS") && err.contains("4.5"), "{err}");
        let err = load(&[("KAKAO_SKILL_SECRET", SECRET), ("KAKAO_DM_POLICY", "open")], None).unwrap_err();
        assert!(err.contains("KAKAO_ALLOW_FROM"), "{err}");
        let err = load(&[], Some("[chatbot]\nskilSecret = \"x\"\n")).unwrap_err();
        assert!(err.contains("skilSecret"), "{err}");
        let file = format!("[chatbot]\nskillSecret = \"{SECRET}\"\n[chatbot.accounts.a]\n");
        let err = load(&[], Some(&file)).unwrap_err();
        assert!(err.contains("accounts.a.botId"), "{err}");
        let err = load(&[("KAKAO_SKILL_SECRET", SECRET), ("KAKAO_BOT_API_BASE_URL", "ftp://x")], None).unwrap_err();
        assert!(err.contains("KAKAO_BOT_API_BASE_URL"), "{err}");
    }

    #[test]
    fn hosts_are_parsed() {
        assert_eq!(host_of("https://bot-api.kakao.com/v1/bots/x").as_deref(), Some("bot-api.kakao.com"));
        assert_eq!(host_of("http://127.0.0.1:8080/cb").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("https://u@Host.example:1").as_deref(), Some("host.example"));
        assert_eq!(host_of("ftp://x"), None);
        assert_eq!(host_of("http://[::1]:8080/cb").as_deref(), Some("::1"));
    }

    /// A backslash ends the authority for reqwest (WHATWG URL), so the host is `evil.example`:
    /// the allow-list sees the host the request would really go to.
    #[test]
    fn a_backslash_before_the_at_sign_does_not_hide_the_real_host() {
        let cfg = load(&[("KAKAO_SKILL_SECRET", SECRET)], None).unwrap().unwrap();
        let tricky = r"https://evil.example\@secure.kakaocdn.net/a.jpg";
        assert_eq!(host_of(tricky).as_deref(), Some("evil.example"));
        assert!(!host_allowed(&host_of(tricky).unwrap(), &cfg.image_hosts));
        let callback = r"https://evil.example\@bot-api.kakao.com/v1/bots/b/callback/t";
        assert!(!host_allowed(&host_of(callback).unwrap(), &cfg.callback_hosts));
    }
}
