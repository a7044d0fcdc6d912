//! The simulated Kakao: what the chatbot platform does with a user's turn. It posts a
//! SkillPayload (reference/kakao.md §5.1) to the daemon's `/kakao/skill` with the skill secret,
//! waits at most 5 seconds (as Kakao does, unless the page turns the deadline off), shows the
//! answer, and when the "AI callback" is approved, adds a one-shot `callbackUrl` it hosts: usable
//! once, within 60 seconds of issue.

use super::{BOT_ID, HostedFile, Sim, lock};
use crate::util::now_ms;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clawbridge_kakao::chatbot::SkillResponse;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kakao's skill timeout.
pub const SKILL_DEADLINE: Duration = Duration::from_secs(5);
/// How long a callback URL is valid.
pub const CALLBACK_VALIDITY: Duration = Duration::from_secs(60);
/// How long the simulator waits for a skill with the deadline turned off.
const NO_DEADLINE: Duration = Duration::from_secs(120);

/// One line of a KakaoTalk chat, as the page shows it.
#[derive(Clone, Debug)]
pub enum KakaoEntry {
    /// What the user typed (or tapped), with the picture they sent.
    User {
        /// The utterance.
        text: String,
        /// The URL of the picture, when one was sent.
        image: Option<String>,
    },
    /// A SkillResponse shown to the user.
    Answer {
        /// The response.
        response: SkillResponse,
        /// It came through the callback URL (the late answer).
        late: bool,
        /// Time from the user's turn to this answer.
        elapsed_ms: u64,
    },
    /// The `useCallback` waiting text (Kakao shows it until the callback arrives).
    Waiting {
        /// `data.text`.
        text: String,
    },
    /// What the platform did that is not a message (a timeout, an error).
    Notice {
        /// The note.
        text: String,
    },
}

/// A callback URL not used yet.
#[derive(Clone, Debug)]
struct Issued {
    user: String,
    issued: Instant,
    turn_started: Instant,
}

/// The simulated Kakao's chats (by user) and its outstanding callback URLs (by token).
#[derive(Debug, Default)]
pub struct KakaoSim {
    chats: Mutex<BTreeMap<String, Vec<KakaoEntry>>>,
    callbacks: Mutex<HashMap<String, Issued>>,
}

impl KakaoSim {
    /// The chat with `user`, oldest first.
    pub fn chat(&self, user: &str) -> Vec<KakaoEntry> {
        lock(&self.chats).get(user).cloned().unwrap_or_default()
    }

    fn push(&self, sim: &Sim, user: &str, entry: KakaoEntry) {
        lock(&self.chats).entry(user.to_owned()).or_default().push(entry);
        sim.changed();
    }

    /// Issues a one-shot callback URL for a turn of `user` that started at `turn_started`:
    /// `(token, url)`.
    pub fn issue_callback(&self, sim: &Sim, user: &str, turn_started: Instant) -> (String, String) {
        let token = format!("cb-{}-{}", sim.next_id(), super::random_hex(8).unwrap_or_default());
        lock(&self.callbacks)
            .insert(token.clone(), Issued { user: user.to_owned(), issued: Instant::now(), turn_started });
        let url = format!("{}/v1/bots/{BOT_ID}/callback/{token}", sim.base);
        (token, url)
    }

    /// Callback URLs issued and not used yet.
    pub fn outstanding_callbacks(&self) -> usize {
        lock(&self.callbacks).len()
    }
}

/// The `plusfriendUserKey` of a page user (what the session and the allowlist use).
pub fn user_key(user: &str) -> String {
    format!("sandbox-{user}")
}

/// A page user's name made safe as a key: letters, digits, `-` and `_`, at most 32 characters.
pub fn clean_user(raw: &str) -> Option<String> {
    let user: String = raw.trim().chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').take(32).collect();
    (!user.is_empty()).then_some(user)
}

/// A SkillPayload as Kakao sends it for `utterance` from `user` (reference/kakao.md §5.1):
/// `block_id` for a block quick reply or button, the `callbackUrl` of an approved AI chatbot, and
/// the secure-image plugin's parameter when a picture was sent.
pub fn skill_payload(
    user: &str,
    utterance: &str,
    block_id: Option<&str>,
    callback_url: Option<&str>,
    image_urls: &[String],
) -> Value {
    let key = user_key(user);
    let block = block_id.unwrap_or("sandbox-fallback");
    let mut body = json!({
        "intent": {"id": block, "name": if block_id.is_some() { "블록" } else { "폴백 블록" }},
        "userRequest": {
            "timezone": "Asia/Seoul",
            "params": {"ignoreMe": "true"},
            "block": {"id": block, "name": if block_id.is_some() { "블록" } else { "폴백 블록" }},
            "utterance": utterance,
            "lang": "ko",
            "user": {"id": format!("bu-{key}"), "type": "botUserKey",
                     "properties": {"plusfriendUserKey": key, "isFriend": true}}
        },
        "bot": {"id": BOT_ID, "name": "clawbridge sandbox"},
        "action": {"name": "clawbridge", "clientExtra": null, "params": {}, "id": "sandbox-skill", "detailParams": {}}
    });
    if let Some(url) = callback_url {
        body["userRequest"]["callbackUrl"] = json!(url);
    }
    if !image_urls.is_empty() {
        let plugin = json!({
            "privacyAgreement": "Y",
            "imageQuantity": image_urls.len().to_string(),
            "secureUrls": format!("List({})", image_urls.join(", ")),
            "expire": "2099-01-01T00:00:00",
        })
        .to_string();
        body["action"]["params"]["secureimage"] = json!(plugin);
        body["action"]["detailParams"]["secureimage"] = json!({"origin": plugin, "value": plugin, "groupName": ""});
    }
    body
}

/// A user's turn: what the page sends.
#[derive(Clone, Debug, Default)]
pub struct Turn {
    /// The utterance.
    pub text: String,
    /// The block of a quick reply or button with `action: block`.
    pub block_id: Option<String>,
    /// A picture the user sends.
    pub image: Option<HostedFile>,
}

/// Runs one turn of `user` as Kakao would (spawn it: it waits for the daemon).
pub async fn send(sim: Arc<Sim>, user: String, turn: Turn) {
    let started = Instant::now();
    let image = turn.image.map(|file| sim.file_url(&sim.host_file(file)));
    sim.kakao.push(&sim, &user, KakaoEntry::User { text: turn.text.clone(), image: image.clone() });
    let Some(daemon) = sim.daemon_url() else {
        sim.kakao.push(&sim, &user, KakaoEntry::Notice { text: "the daemon is not running".to_owned() });
        return;
    };
    let toggles = sim.toggles();
    let callback = toggles.callback.then(|| sim.kakao.issue_callback(&sim, &user, started));
    let images: Vec<String> = image.into_iter().collect();
    let payload = skill_payload(
        &user,
        &turn.text,
        turn.block_id.as_deref(),
        callback.as_ref().map(|(_, url)| url.as_str()),
        &images,
    );
    let deadline = if toggles.deadline { SKILL_DEADLINE } else { NO_DEADLINE };
    let answered = sim
        .http
        .post(format!("{daemon}/kakao/skill"))
        .header("X-Skill-Secret", &sim.secrets.skill_secret)
        .json(&payload)
        .timeout(deadline)
        .send()
        .await;
    let forget_callback = || {
        if let Some((token, _)) = &callback {
            lock(&sim.kakao.callbacks).remove(token);
        }
    };
    let response = match answered {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            forget_callback();
            let text = format!(
                "Kakao waited {} s for the skill and gave up: the user sees Kakao's error message, not an answer",
                deadline.as_secs()
            );
            sim.kakao.push(&sim, &user, KakaoEntry::Notice { text });
            return;
        }
        Err(e) => {
            forget_callback();
            sim.kakao.push(&sim, &user, KakaoEntry::Notice { text: format!("the skill server is unreachable: {e}") });
            return;
        }
    };
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let parsed = serde_json::from_slice::<SkillResponse>(&body);
    match parsed {
        Ok(answer) if status.is_success() => {
            if answer.use_callback == Some(true) && callback.is_some() {
                let text =
                    answer.data.as_ref().and_then(|d| d.get("text")).and_then(Value::as_str).unwrap_or("").to_owned();
                sim.kakao.push(&sim, &user, KakaoEntry::Waiting { text });
            } else {
                forget_callback();
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                sim.kakao.push(&sim, &user, KakaoEntry::Answer { response: answer, late: false, elapsed_ms });
            }
        }
        _ => {
            forget_callback();
            let text = format!(
                "the skill answered {status} with a body Kakao cannot show: {}",
                String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
            );
            sim.kakao.push(&sim, &user, KakaoEntry::Notice { text });
        }
    }
}

/// `POST /v1/bots/{bot}/callback/{token}` on the simulators' listener.
pub fn routes(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new().route("/v1/bots/{bot}/callback/{token}", post(callback)).with_state(sim)
}

/// Kakao's callback endpoint: each URL once, within 60 s; a 503 during a simulated outage
/// (the URL stays usable, so the bridge's retry can still deliver).
async fn callback(State(sim): State<Arc<Sim>>, Path((bot, token)): Path<(String, String)>, body: Bytes) -> Response {
    if sim.toggles().outage {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "FAIL", "message": "sandbox outage"})))
            .into_response();
    }
    let issued = lock(&sim.kakao.callbacks).remove(&token);
    let fail = |message: &str| {
        axum::Json(json!({"taskId": token, "status": "FAIL", "message": message, "timestamp": now_ms()}))
            .into_response()
    };
    let Some(issued) = issued.filter(|_| bot == BOT_ID) else {
        return fail("Invalid callback token (unknown, or already used)");
    };
    if issued.issued.elapsed() > CALLBACK_VALIDITY {
        sim.kakao.push(
            &sim,
            &issued.user,
            KakaoEntry::Notice {
                text: "the answer came after the callback URL expired (60 s): Kakao drops it".to_owned(),
            },
        );
        return fail("callback token expired");
    }
    match serde_json::from_slice::<SkillResponse>(&body) {
        Ok(answer) => {
            let elapsed_ms = u64::try_from(issued.turn_started.elapsed().as_millis()).unwrap_or(u64::MAX);
            sim.kakao.push(&sim, &issued.user, KakaoEntry::Answer { response: answer, late: true, elapsed_ms });
            axum::Json(json!({"taskId": token, "status": "SUCCESS", "message": "", "timestamp": now_ms()}))
                .into_response()
        }
        Err(e) => {
            sim.kakao.push(
                &sim,
                &issued.user,
                KakaoEntry::Notice { text: format!("the callback body is not a SkillResponse: {e}") },
            );
            (StatusCode::BAD_REQUEST, fail("invalid SkillResponse")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_what_the_skill_parses() {
        let urls = vec!["http://127.0.0.1:9/files/a".to_owned()];
        let body = skill_payload("minji", "안녕", Some("blk"), Some("http://127.0.0.1:9/cb"), &urls);
        let parsed = clawbridge_kakao::chatbot::payload::SkillPayload::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.user_request.utterance, "안녕");
        assert_eq!(parsed.user_request.callback_url.as_deref(), Some("http://127.0.0.1:9/cb"));
        assert_eq!(parsed.secure_image_urls(), urls);
        assert_eq!(parsed.peer().unwrap(), "sandbox-minji");
    }

    #[test]
    fn user_names_become_safe_keys() {
        assert_eq!(clean_user(" 민지 ").as_deref(), Some("민지"));
        assert_eq!(clean_user("a<b>\"c").as_deref(), Some("abc"));
        assert_eq!(clean_user("<>"), None);
    }
}
