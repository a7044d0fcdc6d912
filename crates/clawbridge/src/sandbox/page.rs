//! `/sandbox` on the daemon's listener: a server-rendered page (HTML built here, every text
//! escaped), a little hand-written JavaScript and CSS embedded in the binary, and a small JSON
//! API the script long-polls. Chats are rendered here as the platform shows them: KakaoTalk's
//! bubbles, cards, quick replies; WhatsApp's markup, quotes, ticks, typing, media, reactions.
//!
//! The API takes JSON only (a cross-site form cannot send it without a CORS preflight, which is
//! never answered) and only with a loopback `Host` (no DNS rebinding onto the operator's agent).

use super::kakao_sim::{self, KakaoEntry};
use super::kapso_sim::{self, Body, Tick, WaChat};
use super::{DEFAULT_KAKAO_USER, DEFAULT_WHATSAPP_USER, HostedFile, Policy, Sim, Toggles};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use clawbridge_kakao::chatbot::response::{Button, Output, QuickReply};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
/// The largest picture the page sends (WhatsApp's image limit).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// The longest text (WhatsApp's text limit; Kakao's utterances are shorter in practice).
const MAX_TEXT_CHARS: usize = 4096;
/// How long a state request waits for a change before answering "nothing new".
const LONG_POLL: Duration = Duration::from_secs(20);

/// The page's routes.
pub fn routes(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route("/sandbox", get(page))
        .route("/sandbox/assets/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }))
        .route("/sandbox/assets/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], APP_CSS) }))
        .route("/sandbox/api/state", get(state))
        .route("/sandbox/api/send", post(send))
        .route("/sandbox/api/toggles", post(toggles))
        .route("/sandbox/api/approve", post(approve))
        .layer(axum::middleware::from_fn(loopback_host_only))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_IMAGE_BYTES * 4 / 3 + 64 * 1024))
        .with_state(sim)
}

/// Refuses a request whose `Host` is not a loopback name (403).
async fn loopback_host_only(request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host) {
        return (StatusCode::FORBIDDEN, "the sandbox answers only on 127.0.0.1, localhost or [::1]").into_response();
    }
    next.run(request).await
}

/// `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT` (with or without the port).
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "::1")
}

/// Escapes text for HTML content and double-quoted attributes (the one escaper the campaign
/// report and the console use).
pub use clawbridge_campaign::report::escape_html as escape;

/// Escaped, with line breaks kept.
fn escape_lines(text: &str) -> String {
    escape(text).replace('\n', "<br>")
}

/// A URL for `src`/`href`: http(s) only, escaped; anything else (`javascript:`) becomes `#`.
fn safe_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") { escape(url.trim()) } else { "#".to_owned() }
}

/// WhatsApp's markup as the app shows it: `*bold*`, `_italic_`, `~strike~`, `` `code` ``,
/// ```` ```monospace``` ````, `> quote` lines. The text is escaped first, so the markup can
/// only ever produce these tags.
pub fn whatsapp_html(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    for (i, block) in escaped.split("```").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code class=\"wa-mono\">{}</code>", block.trim_matches('\n').replace('\n', "<br>"));
            continue;
        }
        let lines: Vec<String> = block
            .split('\n')
            .map(|line| match line.strip_prefix("&gt; ") {
                Some(quote) => format!("<span class=\"wa-blockquote\">{}</span>", inline_code(quote)),
                None => inline_code(line),
            })
            .collect();
        out.push_str(&lines.join("<br>"));
    }
    out
}

fn inline_code(line: &str) -> String {
    let mut out = String::new();
    let parts: Vec<&str> = line.split('`').collect();
    // An unpaired backtick stays a backtick.
    let paired = parts.len() % 2 == 1;
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && (paired || i + 1 < parts.len()) {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&emphasis(part));
        }
    }
    out
}

/// `*bold*`, `_italic_`, `~strike~`: a marker opens after a non-alphanumeric and before a
/// non-space, and closes before a non-alphanumeric after a non-space, on the same line.
fn emphasis(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let tag = match c {
            '*' => Some("strong"),
            '_' => Some("em"),
            '~' => Some("s"),
            _ => None,
        };
        if let Some(tag) = tag {
            let opens = (i == 0 || !chars[i - 1].is_alphanumeric())
                && chars.get(i + 1).is_some_and(|n| !n.is_whitespace() && *n != c);
            let close = opens
                .then(|| {
                    (i + 2..chars.len()).find(|&j| {
                        chars[j] == c
                            && !chars[j - 1].is_whitespace()
                            && chars.get(j + 1).is_none_or(|n| !n.is_alphanumeric())
                    })
                })
                .flatten();
            if let Some(j) = close {
                let inner: String = chars[i + 1..j].iter().collect();
                let _ = write!(out, "<{tag}>{}</{tag}>", emphasis(&inner));
                i = j + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn kakao_button(button: &Button) -> String {
    let label = escape(&button.label);
    match button.action.as_str() {
        "webLink" => format!(
            "<a class=\"k-btn\" href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">{label}</a>",
            safe_url(button.web_link_url.as_deref().unwrap_or(""))
        ),
        "phone" => format!(
            "<a class=\"k-btn\" href=\"tel:{}\">{label}</a>",
            escape(
                &button.phone_number.clone().unwrap_or_default().replace(|c: char| !c.is_ascii_digit() && c != '+', "")
            )
        ),
        "message" | "block" => say_button(
            "k-btn",
            &button.label,
            button.message_text.as_deref().unwrap_or(&button.label),
            button.block_id.as_deref(),
        ),
        other => format!("<span class=\"k-btn k-inert\" title=\"{}\">{label}</span>", escape(other)),
    }
}

/// A button that sends `say` (and the block) as the user's next turn.
fn say_button(class: &str, label: &str, say: &str, block: Option<&str>) -> String {
    let block = block.map(|b| format!(" data-block=\"{}\"", escape(b))).unwrap_or_default();
    format!(
        "<button type=\"button\" class=\"{class} say\" data-say=\"{}\"{block}>{}</button>",
        escape(say),
        escape(label)
    )
}

fn kakao_buttons(buttons: &[Button], layout: Option<&str>) -> String {
    if buttons.is_empty() {
        return String::new();
    }
    let layout = if layout == Some("horizontal") { "k-buttons horizontal" } else { "k-buttons" };
    format!("<div class=\"{layout}\">{}</div>", buttons.iter().map(kakao_button).collect::<String>())
}

fn kakao_output(output: &Output) -> String {
    match output {
        Output::SimpleText { text } => format!("<div class=\"k-bubble k-simple-text\">{}</div>", escape_lines(text)),
        Output::SimpleImage { image_url, alt_text } => format!(
            "<div class=\"k-bubble k-image\"><img src=\"{}\" alt=\"{}\"></div>",
            safe_url(image_url),
            escape(alt_text)
        ),
        Output::TextCard { title, description, buttons, button_layout } => format!(
            "<div class=\"k-card k-text-card\">{}{}{}</div>",
            title.as_ref().map(|t| format!("<div class=\"k-title\">{}</div>", escape(t))).unwrap_or_default(),
            description
                .as_ref()
                .map(|d| format!("<div class=\"k-desc\">{}</div>", escape_lines(d)))
                .unwrap_or_default(),
            kakao_buttons(buttons, button_layout.as_deref())
        ),
        Output::BasicCard { title, description, thumbnail, buttons, button_layout } => format!(
            "<div class=\"k-card k-basic-card\"><img class=\"k-thumb\" src=\"{}\" alt=\"{}\">{}{}{}</div>",
            safe_url(&thumbnail.image_url),
            escape(thumbnail.alt_text.as_deref().unwrap_or("")),
            title.as_ref().map(|t| format!("<div class=\"k-title\">{}</div>", escape(t))).unwrap_or_default(),
            description
                .as_ref()
                .map(|d| format!("<div class=\"k-desc\">{}</div>", escape_lines(d)))
                .unwrap_or_default(),
            kakao_buttons(buttons, button_layout.as_deref())
        ),
    }
}

fn quick_replies(replies: &[QuickReply]) -> String {
    if replies.is_empty() {
        return String::new();
    }
    let chips: String = replies
        .iter()
        .map(|q| say_button("k-quick", &q.label, q.message_text.as_deref().unwrap_or(&q.label), q.block_id.as_deref()))
        .collect();
    format!("<div class=\"k-quick-replies\">{chips}</div>")
}

/// A KakaoTalk chat: the user's bubbles on the right, the channel's outputs on the left, the
/// quick replies of the last answer under it (Kakao shows only the latest ones).
pub fn kakao_chat_html(entries: &[KakaoEntry]) -> String {
    let mut out = String::new();
    let last_answer = entries.iter().rposition(|e| matches!(e, KakaoEntry::Answer { .. }));
    let last_user = entries.iter().rposition(|e| matches!(e, KakaoEntry::User { .. }));
    for (i, entry) in entries.iter().enumerate() {
        match entry {
            KakaoEntry::User { text, image } => {
                let picture = image
                    .as_ref()
                    .map(|url| format!("<img class=\"k-sent-image\" src=\"{}\" alt=\"sent picture\">", safe_url(url)))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<div class=\"k-row mine\"><div class=\"k-bubble k-user\">{picture}{}</div></div>",
                    escape_lines(text)
                );
            }
            KakaoEntry::Answer { response, late, elapsed_ms } => {
                let outputs: String = response.outputs().iter().map(kakao_output).collect();
                let note = format!(
                    "<div class=\"k-meta\">{}{:.1} s</div>",
                    if *late { "callback · " } else { "" },
                    *elapsed_ms as f64 / 1000.0
                );
                let quick = match (&response.template, Some(i) == last_answer && last_user.is_none_or(|u| u < i)) {
                    (Some(template), true) => quick_replies(&template.quick_replies),
                    _ => String::new(),
                };
                let class = if *late { "k-row theirs k-late" } else { "k-row theirs" };
                let _ = write!(
                    out,
                    "<div class=\"{class}\"><div class=\"k-avatar\">AI</div><div class=\"k-outputs\">{outputs}{note}</div></div>{quick}"
                );
            }
            KakaoEntry::Waiting { text } => {
                let _ = write!(
                    out,
                    "<div class=\"k-row theirs\"><div class=\"k-avatar\">AI</div><div class=\"k-outputs\">\
                     <div class=\"k-bubble k-waiting\">{}</div><div class=\"k-meta\">useCallback · waiting for the callback</div></div></div>",
                    escape_lines(text)
                );
            }
            KakaoEntry::Notice { text } => {
                let _ = write!(out, "<div class=\"notice\">{}</div>", escape(text));
            }
        }
    }
    out
}

fn ticks(tick: Tick) -> &'static str {
    match tick {
        Tick::Pending => "<span class=\"wa-ticks pending\" title=\"pending\">…</span>",
        Tick::Sent => "<span class=\"wa-ticks sent\" title=\"sent\">✓</span>",
        Tick::Delivered => "<span class=\"wa-ticks delivered\" title=\"delivered\">✓✓</span>",
        Tick::Read => "<span class=\"wa-ticks read\" title=\"read\">✓✓</span>",
        Tick::Failed => "<span class=\"wa-ticks failed\" title=\"failed\">!</span>",
    }
}

fn wa_body(body: &Body) -> String {
    match body {
        Body::Text(text) => format!("<div class=\"wa-text\">{}</div>", whatsapp_html(text)),
        Body::Image { url, caption } => format!(
            "<img class=\"wa-image\" src=\"{}\" alt=\"image\">{}",
            safe_url(url),
            caption.as_ref().map(|c| format!("<div class=\"wa-text\">{}</div>", whatsapp_html(c))).unwrap_or_default()
        ),
        Body::Document { url, file_name, caption } => format!(
            "<a class=\"wa-document\" href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">📄 {}</a>{}",
            safe_url(url),
            escape(file_name),
            caption.as_ref().map(|c| format!("<div class=\"wa-text\">{}</div>", whatsapp_html(c))).unwrap_or_default()
        ),
        Body::Other { kind, object } => format!(
            "<div class=\"wa-other\"><b>{}</b><pre>{}</pre></div>",
            escape(kind),
            escape(&serde_json::to_string_pretty(object).unwrap_or_default())
        ),
        Body::Notice(text) => escape(text),
    }
}

fn snippet(body: &Body) -> String {
    let text = match body {
        Body::Text(t) => t.clone(),
        Body::Image { caption, .. } => format!("📷 {}", caption.clone().unwrap_or_else(|| "Photo".to_owned())),
        Body::Document { file_name, .. } => format!("📄 {file_name}"),
        Body::Other { kind, .. } => kind.clone(),
        Body::Notice(t) => t.clone(),
    };
    let short: String = text.chars().take(120).collect();
    whatsapp_html(&short)
}

/// A WhatsApp chat as the user's phone shows it: their messages on the right with ticks (blue
/// once the bridge marked them read), the business on the left, quotes, reactions, typing.
pub fn whatsapp_chat_html(chat: &WaChat) -> String {
    let mut out = String::new();
    for message in &chat.messages {
        if let Body::Notice(text) = &message.body {
            let _ = write!(out, "<div class=\"notice\">{}</div>", escape(text));
            continue;
        }
        let side = if message.from_user { "mine" } else { "theirs" };
        let quote = message
            .quoted
            .as_ref()
            .and_then(|id| chat.messages.iter().find(|m| &m.id == id))
            .map(|q| {
                format!(
                    "<div class=\"wa-quote\"><div class=\"wa-quote-who\">{}</div>{}</div>",
                    if q.from_user { "You" } else { "Business" },
                    snippet(&q.body)
                )
            })
            .unwrap_or_default();
        let reaction = message
            .reaction
            .as_ref()
            .map(|r| format!("<span class=\"wa-reaction\">{}</span>", escape(r)))
            .unwrap_or_default();
        let time = jiff::Timestamp::from_millisecond(message.at_ms)
            .map(|t| t.strftime("%H:%M:%S").to_string())
            .unwrap_or_default();
        let status = if message.from_user {
            ticks(message.tick).to_owned()
        } else {
            format!("<span class=\"wa-status\" title=\"what the business sees\">{}</span>", ticks(message.tick))
        };
        let actions = if message.from_user {
            String::new()
        } else {
            format!(
                "<button type=\"button\" class=\"wa-react\" data-id=\"{}\" title=\"react\">👍</button>",
                escape(&message.id)
            )
        };
        let _ = write!(
            out,
            "<div class=\"wa-row {side}\"><div class=\"wa-msg {side}\" data-id=\"{id}\">{quote}{body}\
             <div class=\"wa-meta\">{time} {status}</div>{reaction}</div>\
             <button type=\"button\" class=\"wa-reply\" data-id=\"{id}\" title=\"reply\">↩</button>{actions}</div>",
            id = escape(&message.id),
            body = wa_body(&message.body),
        );
    }
    if chat.typing() {
        out.push_str("<div class=\"wa-typing\">typing…</div>");
    }
    out
}

/// The chat of `platform`/`user`, rendered.
fn chat_html(sim: &Sim, platform: &str, user: &str) -> String {
    match platform {
        "kakao" => kakao_chat_html(&sim.kakao.chat(user)),
        "whatsapp" => whatsapp_chat_html(&sim.kapso.chat(user)),
        _ => String::new(),
    }
}

/// One chat pane, rendered with its messages (the script renders new ones from a template).
fn pane(sim: &Sim, platform: &str, user: &str) -> String {
    let (name, who) = match platform {
        "kakao" => ("KakaoTalk", user.to_owned()),
        _ => ("WhatsApp", format!("+{user}")),
    };
    format!(
        "<section class=\"pane {platform}\" data-platform=\"{platform}\" data-user=\"{user_attr}\">\
         <header><span class=\"pane-title\">{name}</span> <span class=\"pane-user\">{who}</span>\
         <button type=\"button\" class=\"pane-close\" title=\"close\">×</button></header>\
         <div class=\"chat\">{chat}</div>\
         <div class=\"replying\" hidden>Replying to a message <button type=\"button\" class=\"replying-cancel\">×</button></div>\
         <form class=\"composer\"><input class=\"text\" name=\"text\" autocomplete=\"off\" placeholder=\"Message as {who_attr}\">\
         <label class=\"attach\" title=\"send a picture\">Image<input class=\"image\" type=\"file\" accept=\"image/*\"></label>\
         <button class=\"send\" type=\"submit\">Send</button></form></section>",
        user_attr = escape(user),
        who = escape(&who),
        who_attr = escape(&who),
        chat = chat_html(sim, platform, user),
    )
}

fn checked(on: bool) -> &'static str {
    if on { " checked" } else { "" }
}

async fn page(State(sim): State<Arc<Sim>>) -> Html<String> {
    let toggles = sim.toggles();
    let policy = |p: Policy, label: &str| {
        let value = p.as_str();
        format!("<option value=\"{value}\"{}>{label}</option>", if toggles.policy == p { " selected" } else { "" })
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>clawbridge sandbox</title><link rel=\"stylesheet\" href=\"/sandbox/assets/app.css\"></head>\
         <body data-version=\"{version}\"><header class=\"top\"><h1>clawbridge sandbox</h1>\
         <span class=\"daemon\">daemon: <b id=\"daemon-state\">{daemon}</b></span>\
         <span class=\"gateway\">gateway: <b id=\"gateway-state\">…</b></span>\
         <a class=\"console\" href=\"/console\">Console →</a></header>\
         <form class=\"toggles\" id=\"toggles\">\
         <label title=\"Kakao adds a one-shot callbackUrl only for chatbots whose AI callback is approved\">\
         <input type=\"checkbox\" id=\"t-callback\"{callback}> AI callback approved</label>\
         <label title=\"Kakao gives up on a skill after 5 seconds\"><input type=\"checkbox\" id=\"t-deadline\"{deadline}> Kakao 5-second deadline</label>\
         <label>dmPolicy <select id=\"t-policy\">{open}{pairing}{allowlist}</select></label>\
         <label title=\"Kakao's callback and Kapso's API answer 503 until turned off\">\
         <input type=\"checkbox\" id=\"t-outage\"{outage}> Platform outage (5xx)</label></form>\
         <p class=\"hint\">The real daemon answers here: KakaoTalk and WhatsApp are simulated in this process, the agent is \
         your OpenClaw gateway. allowlist lets in only {kakao_default} and +{wa_default}; pairing codes are approved below, in the \
         <a href=\"/console\">console</a>, or with <code>clawbridge --config {config} pairing approve kakao|whatsapp CODE</code>.</p>\
         <form class=\"approve\" id=\"approve\">Pairing: <select id=\"approve-channel\">\
         <option value=\"kakao\">KakaoTalk</option><option value=\"whatsapp\">WhatsApp</option></select>\
         <input id=\"approve-code\" placeholder=\"code\" maxlength=\"12\" autocomplete=\"off\">\
         <button type=\"submit\">Approve</button> <span id=\"approve-result\"></span></form>\
         <form class=\"add\" id=\"add\"><select id=\"add-platform\"><option value=\"kakao\">KakaoTalk</option>\
         <option value=\"whatsapp\">WhatsApp</option></select>\
         <input id=\"add-user\" placeholder=\"user name, or a phone number for WhatsApp\" autocomplete=\"off\">\
         <button type=\"submit\">Add chat</button></form>\
         <main id=\"panes\">{kakao}{whatsapp}</main>\
         <script src=\"/sandbox/assets/app.js\"></script></body></html>",
        version = *sim.watch().borrow(),
        daemon = escape(&sim.daemon_state()),
        callback = checked(toggles.callback),
        deadline = checked(toggles.deadline),
        outage = checked(toggles.outage),
        open = policy(Policy::Open, "open"),
        pairing = policy(Policy::Pairing, "pairing"),
        allowlist = policy(Policy::Allowlist, "allowlist"),
        config = escape(&sim.config_path().map_or_else(|| "sandbox.toml".to_owned(), |p| p.display().to_string())),
        kakao_default = escape(DEFAULT_KAKAO_USER),
        wa_default = escape(DEFAULT_WHATSAPP_USER),
        kakao = pane(&sim, "kakao", DEFAULT_KAKAO_USER),
        whatsapp = pane(&sim, "whatsapp", DEFAULT_WHATSAPP_USER),
    ))
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    #[serde(default)]
    since: Option<u64>,
    /// `kakao:minji,whatsapp:15550001111`.
    #[serde(default)]
    chats: String,
}

/// The chats asked for, once something changed since `since` (or after the long poll).
async fn state(State(sim): State<Arc<Sim>>, Query(query): Query<StateQuery>) -> Response {
    let mut changes = sim.watch();
    if let Some(since) = query.since {
        let _ = tokio::time::timeout(LONG_POLL, changes.wait_for(|v| *v != since)).await;
    }
    // Typing indicators expire without a change: never wait longer than one poll for them.
    let version = *changes.borrow();
    let chats: HashMap<String, String> = query
        .chats
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .take(16)
        .filter_map(|(platform, user)| {
            let user = match platform {
                "kakao" => kakao_sim::clean_user(user)?,
                "whatsapp" => kapso_sim::clean_number(user)?,
                _ => return None,
            };
            Some((format!("{platform}:{user}"), chat_html(&sim, platform, &user)))
        })
        .collect();
    axum::Json(json!({"version": version, "toggles": sim.toggles(), "daemon": sim.daemon_state(), "chats": chats}))
        .into_response()
}

/// A picture from the page, base64 in JSON (no multipart parser needed for one small file).
#[derive(Debug, Deserialize)]
struct ImageUpload {
    name: String,
    mime: String,
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    platform: String,
    user: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    block_id: Option<String>,
    #[serde(default)]
    image: Option<ImageUpload>,
    #[serde(default)]
    quoted: Option<String>,
    #[serde(default)]
    reaction: Option<String>,
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": message}))).into_response()
}

/// A user's turn from the page: 202 once the simulated platform took it (the answer shows up in
/// the chat), 400 with the reason and nothing sent otherwise.
async fn send(
    State(sim): State<Arc<Sim>>,
    request: Result<axum::Json<SendRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(request)) = request else {
        return bad_request("expected a JSON body {platform, user, text}");
    };
    if request.text.chars().count() > MAX_TEXT_CHARS {
        return bad_request("the text is longer than 4096 characters");
    }
    let image = match request.image {
        None => None,
        Some(upload) => {
            if !upload.mime.starts_with("image/") {
                return bad_request("only pictures can be attached");
            }
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(upload.data.as_bytes()) else {
                return bad_request("the picture is not valid base64");
            };
            if bytes.len() > MAX_IMAGE_BYTES {
                return bad_request("the picture is larger than 5 MB");
            }
            let file_name: String = upload.name.chars().filter(|c| !c.is_control() && *c != '"').take(100).collect();
            Some(HostedFile { mime_type: upload.mime, file_name, bytes })
        }
    };
    if request.text.trim().is_empty() && image.is_none() && request.reaction.is_none() {
        return bad_request("type a message or choose a picture");
    }
    match request.platform.as_str() {
        "kakao" => {
            let Some(user) = kakao_sim::clean_user(&request.user) else {
                return bad_request("a KakaoTalk user needs a name of letters or digits");
            };
            let block_id = request.block_id.filter(|b| !b.is_empty() && b.len() <= 64);
            let turn = kakao_sim::Turn { text: request.text, block_id, image };
            tokio::spawn(kakao_sim::send(sim.clone(), user, turn));
        }
        "whatsapp" => {
            let Some(user) = kapso_sim::clean_number(&request.user) else {
                return bad_request("a WhatsApp user is a phone number of 6 to 15 digits");
            };
            let reaction = request.reaction.filter(|r| !r.is_empty() && r.chars().count() <= 8);
            if reaction.is_some() && request.quoted.is_none() {
                return bad_request("a reaction needs the message it reacts to");
            }
            let outgoing = kapso_sim::Outgoing { text: request.text, image, quoted: request.quoted, reaction };
            tokio::spawn(kapso_sim::send(sim.clone(), user, outgoing));
        }
        _ => return bad_request("platform is kakao or whatsapp"),
    }
    (StatusCode::ACCEPTED, axum::Json(json!({"ok": true}))).into_response()
}

/// Sets the toggles (all four, as the page shows them); answers the toggles now.
async fn toggles(
    State(sim): State<Arc<Sim>>,
    request: Result<axum::Json<Toggles>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(toggles)) = request else {
        return bad_request("expected {callback, deadline, policy, outage}");
    };
    sim.set_toggles(toggles);
    axum::Json(sim.toggles()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    channel: String,
    code: String,
}

/// Approves a pairing code as `clawbridge pairing approve` does (the same code path; it prints
/// what it did in the sandbox's terminal): 200, or 400 when there is no such pending code.
async fn approve(
    State(sim): State<Arc<Sim>>,
    request: Result<axum::Json<ApproveRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(request)) = request else {
        return bad_request("expected {channel, code}");
    };
    if !matches!(request.channel.as_str(), "kakao" | "whatsapp") {
        return bad_request("channel is kakao or whatsapp");
    }
    let Some(config) = sim.config() else {
        return bad_request("the daemon is not running");
    };
    let action = crate::cli::PairingAction::Approve { channel: request.channel, code: request.code, no_notify: false };
    match crate::commands::pairing::run(&config, action).await {
        Ok(code) if code == std::process::ExitCode::SUCCESS => {
            sim.changed();
            axum::Json(json!({"approved": true})).into_response()
        }
        Ok(_) => bad_request("no pending request with this code on this channel (codes expire after 1 hour)"),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": format!("{e:#}")}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_markup_is_escaped_first() {
        assert_eq!(whatsapp_html("*bold* _it_ ~no~"), "<strong>bold</strong> <em>it</em> <s>no</s>");
        assert_eq!(whatsapp_html("<script>*x*</script>"), "&lt;script&gt;<strong>x</strong>&lt;/script&gt;");
        assert_eq!(whatsapp_html("a*b*c 2 * 3"), "a*b*c 2 * 3");
        assert_eq!(whatsapp_html("`x<y`"), "<code>x&lt;y</code>");
        assert_eq!(whatsapp_html("```\nfn *main*\n```"), "<code class=\"wa-mono\">fn *main*</code>");
        assert_eq!(whatsapp_html("> quoted\nnext"), "<span class=\"wa-blockquote\">quoted</span><br>next");
        assert_eq!(whatsapp_html("*_both_*"), "<strong><em>both</em></strong>");
        assert_eq!(whatsapp_html("\"q\" & 'a'"), "&quot;q&quot; &amp; &#39;a&#39;");
    }

    #[test]
    fn urls_are_http_only() {
        assert_eq!(safe_url("javascript:alert(1)"), "#");
        assert_eq!(safe_url("https://x.example/a?b=1&c=\"2\""), "https://x.example/a?b=1&amp;c=&quot;2&quot;");
    }

    #[test]
    fn whatsapp_media_reactions_and_typing_render_safely() {
        use super::kapso_sim::WaMessage;
        let message = |id: &str, from_user: bool, body: Body| WaMessage {
            id: id.to_owned(),
            from_user,
            body,
            quoted: None,
            tick: Tick::Delivered,
            reaction: None,
            at_ms: 0,
        };
        let mut picture = message(
            "w1",
            false,
            Body::Image { url: "https://cdn.example/a.jpg".to_owned(), caption: Some("*new*".to_owned()) },
        );
        picture.reaction = Some("❤️".to_owned());
        let document = message(
            "w2",
            false,
            Body::Document { url: "javascript:alert(1)".to_owned(), file_name: "<r>.pdf".to_owned(), caption: None },
        );
        let mut chat = WaChat::default();
        chat.messages = vec![picture, document];
        let html = whatsapp_chat_html(&chat);
        assert!(html.contains("<img class=\"wa-image\" src=\"https://cdn.example/a.jpg\""), "{html}");
        assert!(html.contains("<strong>new</strong>") && html.contains("wa-reaction\">❤️"), "{html}");
        assert!(html.contains("href=\"#\"") && html.contains("&lt;r&gt;.pdf"), "{html}");
        assert!(!html.contains("wa-typing"));
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1:8080", "localhost:1", "[::1]:9", "LOCALHOST", "127.0.0.1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:8080", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn kakao_quick_replies_show_under_the_last_answer_only() {
        let page: clawbridge_kakao::chatbot::SkillResponse = serde_json::from_value(json!({
            "version": "2.0",
            "template": {"outputs": [{"simpleText": {"text": "<b>first</b>\npage"}}],
                         "quickReplies": [{"label": "더 보기", "action": "message", "messageText": "더 보기"}]}
        }))
        .unwrap();
        let answer = KakaoEntry::Answer { response: page, late: false, elapsed_ms: 1200 };
        let html = kakao_chat_html(&[KakaoEntry::User { text: "hi".to_owned(), image: None }, answer.clone()]);
        assert!(html.contains("&lt;b&gt;first&lt;/b&gt;<br>page"), "{html}");
        assert!(html.contains("data-say=\"더 보기\""), "{html}");
        let later = kakao_chat_html(&[answer, KakaoEntry::User { text: "더 보기".to_owned(), image: None }]);
        assert!(!later.contains("k-quick"), "an answered quick reply is gone: {later}");
    }
}
