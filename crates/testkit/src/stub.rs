//! A stub OpenAI-compatible model server (reference/openclaw-gateway.md §4.4).
//!
//! The gateway's only model is `stub/stub-model`, served here. Tests steer the stub through the text
//! they send (no shared state between tests that share one gateway):
//!
//! | user text contains | reply |
//! |---|---|
//! | (anything) | `STUB-REPLY: you said: "<text>"` |
//! | `SLOW:<ms>` | the same, after waiting `<ms>` before responding (a run that stays in flight) |
//! | `DRIP:<ms>` | the same, waiting `<ms>` between streamed chunks (deltas spread over time) |
//! | `LONG:<n>` | exactly `n` characters of lorem-like sentences in paragraphs (chunking tests) |
//! | `IMAGE-COUNT` | `STUB-REPLY: image count: <k>`, `k` = image parts in the request |
//! | `TOOLTEST: <cmd>` | first round: an `exec` tool call running `<cmd>`; after the tool result: `STUB-REPLY: tool output: <output>` |
//! | `TOOLCALL: <name> <json>` | first round: a call of tool `<name>` with arguments `<json>` — directly when the request lists that tool, else through the gateway's Tool Search wrapper `tool_call {id: <name>, args: <json>}`; after the result: `STUB-REPLY: tool output: <output>` |
//! | `TOOLCALL2: <name> <json>` | the same call, with the same call id, in the first two rounds (a model repeating an invocation), then the reply |
//!
//! Replies never contain `<…>` or `[[…]]`: OpenClaw strips the first and treats the second as reply
//! directives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::Digest as _;

/// Marker of the gateway's synthetic user message that follows the real one.
const INTERNAL_CONTEXT_MARKER: &str = "BEGIN_OPENCLAW_INTERNAL_CONTEXT";
/// The gateway appends this runtime footer to the user's text.
const RUNTIME_SUFFIX: &str = "\n\nRuntime:";

/// One `POST /v1/chat/completions` the stub received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// The user's text as the bridge sent it (timestamp prefix and runtime footer removed); empty
    /// when the request had no user message.
    pub user_text: String,
    /// All `system` (and `developer`) message text, joined: where `extraSystemPrompt` lands.
    pub system: String,
    /// Image parts (`image_url`, `image`, `input_image`) over all non-system messages.
    pub image_count: usize,
    /// True when the request carried a `tool` result message (second round of a tool call).
    pub tool_round: bool,
    /// The outputs of this turn's `tool` result messages (after the user's message), oldest first.
    pub tool_outputs: Vec<String>,
    /// The names of the function tools offered to the model (the agent's direct tool list).
    pub tool_names: Vec<String>,
    /// Whether the gateway asked for streaming (it always does; kept for diagnostics).
    pub stream: bool,
    /// When the stub received it.
    pub received_at: SystemTime,
    /// The whole request body, for ad-hoc assertions.
    pub body: Arc<Value>,
}

impl StubRequest {
    /// Whether the request carried at least one image part.
    pub fn had_images(&self) -> bool {
        self.image_count > 0
    }
}

/// Handle to a running stub model server.
///
/// The server runs on its own thread with its own tokio runtime, so it outlives the runtime of the
/// `#[tokio::test]` that started it: one stub (and gateway) can serve every test of a binary. Dropping
/// the handle shuts the server down; the shared instance in a `static` simply dies with the process.
#[derive(Debug)]
pub struct StubModel {
    addr: SocketAddr,
    state: Arc<StubState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct StubState {
    requests: Mutex<Vec<StubRequest>>,
    /// When set, every request body is written to `<dir>/request-<n>.json` (failure diagnosis).
    log_dir: Option<PathBuf>,
}

impl StubState {
    fn requests(&self) -> MutexGuard<'_, Vec<StubRequest>> {
        // A test that panicked while holding the lock must not hide the requests from the others.
        self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StubModel {
    /// Starts a stub on `127.0.0.1:<free port>`. The port accepts connections when this returns.
    ///
    /// # Panics
    /// If the port cannot be bound or the server thread cannot be spawned.
    pub fn start() -> StubModel {
        Self::start_inner(None)
    }

    /// Like [`StubModel::start`], also writing each request body to `<dir>/request-<n>.json`.
    pub fn start_logging_to(dir: impl Into<PathBuf>) -> StubModel {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).expect("create stub log dir");
        Self::start_inner(Some(dir))
    }

    fn start_inner(log_dir: Option<PathBuf>) -> StubModel {
        // Bind before spawning: once bind() returns the kernel queues connections, so the gateway
        // can never race the server thread.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stub model port");
        listener.set_nonblocking(true).expect("nonblocking stub listener");
        let addr = listener.local_addr().expect("stub local addr");
        let state = Arc::new(StubState { requests: Mutex::default(), log_dir });
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        std::thread::Builder::new()
            .name(format!("stub-model-{}", addr.port()))
            .spawn(move || {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("stub model runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let stop = async {
                        // Err means the handle was dropped without sending: stop as well.
                        let _ = shutdown_rx.await;
                    };
                    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                        tracing::warn!(error = %e, "stub model server failed");
                    }
                });
            })
            .expect("spawn stub model thread");
        StubModel { addr, state, shutdown: Some(shutdown) }
    }

    /// The socket address the stub listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL for the gateway config: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every chat-completion request received so far, oldest first.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.state.requests().clone()
    }

    /// Requests whose user text contains `needle`. Tests sharing a stub should put a unique token
    /// in their text and filter by it.
    pub fn requests_with(&self, needle: &str) -> Vec<StubRequest> {
        self.state.requests().iter().filter(|r| r.user_text.contains(needle)).cloned().collect()
    }

    /// How many requests have a user text containing `needle`.
    pub fn count_with(&self, needle: &str) -> usize {
        self.state.requests().iter().filter(|r| r.user_text.contains(needle)).count()
    }

    /// The system prompts (see [`StubRequest::system`]) that contain `needle`, e.g. to check that
    /// an `extraSystemPrompt` reached the model.
    pub fn system_prompts_containing(&self, needle: &str) -> Vec<String> {
        self.state.requests().iter().filter(|r| r.system.contains(needle)).map(|r| r.system.clone()).collect()
    }
}

impl Drop for StubModel {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: Arc<StubState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions).fallback(not_found))
        .route("/v1/models", get(models).fallback(not_found))
        .fallback(not_found)
        // Requests with images exceed axum's 2 MB default.
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(state)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "not found"}}))).into_response()
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}]
    }))
    .into_response()
}

async fn chat_completions(State(state): State<Arc<StubState>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let error = json!({"error": {"message": "request body is not JSON"}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    };
    let request = StubRequest {
        user_text: user_text(&body).unwrap_or_default(),
        system: system_text(&body),
        image_count: image_count(&body),
        tool_round: last_tool_output(&body).is_some(),
        tool_outputs: tool_outputs(&body),
        tool_names: tool_names(&body),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        received_at: SystemTime::now(),
        body: Arc::new(body),
    };
    let n = {
        let mut requests = state.requests();
        requests.push(request.clone());
        requests.len()
    };
    if let Some(dir) = &state.log_dir {
        let pretty = serde_json::to_vec_pretty(&*request.body).unwrap_or_default();
        let _ = tokio::fs::write(dir.join(format!("request-{n}.json")), pretty).await;
    }
    tracing::debug!(n, text = %request.user_text, "stub model request");

    let script = Script::parse(&request.user_text);
    if let Some(delay) = script.slow {
        tokio::time::sleep(delay).await;
    }
    let answer = answer(&script, &request, &request.body);
    let id = format!("chatcmpl-stub-{n}");
    if request.stream {
        stream_response(id, answer, script.drip)
    } else {
        axum::Json(completion_json(&id, &answer)).into_response()
    }
}

/// Behaviour requested through the user text (see the module docs).
#[derive(Debug, Default, PartialEq)]
struct Script {
    slow: Option<Duration>,
    drip: Option<Duration>,
    long: Option<usize>,
    image_count: bool,
    tool_command: Option<String>,
    /// `TOOLCALL`: (tool name, JSON arguments, how many rounds repeat the call).
    tool_call: Option<(String, String, usize)>,
}

impl Script {
    fn parse(text: &str) -> Script {
        let number_after = |key: &str| -> Option<u64> {
            let rest = &text[text.find(key)? + key.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        Script {
            slow: number_after("SLOW:").map(Duration::from_millis),
            drip: number_after("DRIP:").map(Duration::from_millis),
            long: number_after("LONG:").and_then(|n| usize::try_from(n).ok()),
            image_count: text.contains("IMAGE-COUNT"),
            tool_command: text.find("TOOLTEST:").map(|i| text[i + "TOOLTEST:".len()..].trim().to_owned()),
            tool_call: Self::tool_call(text),
        }
    }

    /// `TOOLCALL: name {json}` or `TOOLCALL2: name {json}`.
    fn tool_call(text: &str) -> Option<(String, String, usize)> {
        let (at, times, marker) = match (text.find("TOOLCALL2:"), text.find("TOOLCALL:")) {
            (Some(i), _) => (i, 2, "TOOLCALL2:"),
            (None, Some(i)) => (i, 1, "TOOLCALL:"),
            (None, None) => return None,
        };
        let rest = text[at + marker.len()..].trim();
        let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
        Some((name.to_owned(), args.trim().to_owned(), times))
    }
}

/// What the stub answers: text, an `exec` tool call, or a call of a named tool.
#[derive(Debug, PartialEq)]
enum Answer {
    Text(String),
    ToolCall { command: String },
    Call { id: String, name: String, arguments: String },
}

fn answer(script: &Script, request: &StubRequest, body: &Value) -> Answer {
    if let Some((name, args, times)) = &script.tool_call {
        if request.tool_outputs.len() >= *times {
            let output = request.tool_outputs.last().cloned().unwrap_or_default();
            return Answer::Text(format!("STUB-REPLY: tool output: {output}"));
        }
        // The same id in every round: a repeated call is the same invocation.
        let id = format!("call_{}", &hex::encode(sha2::Sha256::digest(request.user_text.as_bytes()))[..16]);
        if request.tool_names.iter().any(|t| t == name) {
            return Answer::Call { id, name: name.clone(), arguments: args.clone() };
        }
        let args: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        let arguments = json!({"id": name, "args": args}).to_string();
        return Answer::Call { id, name: "tool_call".to_owned(), arguments };
    }
    if let Some(command) = &script.tool_command {
        return match last_tool_output(body) {
            None => Answer::ToolCall { command: command.clone() },
            Some(output) => Answer::Text(format!("STUB-REPLY: tool output: {output}")),
        };
    }
    if script.image_count {
        return Answer::Text(format!("STUB-REPLY: image count: {}", request.image_count));
    }
    if let Some(n) = script.long {
        return Answer::Text(lorem(n));
    }
    Answer::Text(format!("STUB-REPLY: you said: \"{}\"", request.user_text))
}

/// The text of a message `content`: a string, or the `text` parts of an array joined by blank lines.
/// (With images the gateway sends the runtime footer as a separate `"Runtime: …"` part; the blank
/// line lets [`user_text`] cut it like the footer of a plain string.)
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

fn messages(body: &Value) -> &[Value] {
    body.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or_default()
}

/// The user's text (reference §4.4): the last `user` message that is not the gateway's internal
/// context, cut at the runtime footer, without the leading `[… UTC] ` timestamp.
fn user_text(body: &Value) -> Option<String> {
    let text = messages(body)
        .iter()
        .rev()
        .filter(|m| role(m) == "user")
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .find(|t| !t.contains(INTERNAL_CONTEXT_MARKER))?;
    let text = text.split(RUNTIME_SUFFIX).next().unwrap_or_default();
    let text = match text.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
        Some((stamp, rest)) if stamp.ends_with("UTC") => rest,
        _ => text,
    };
    Some(text.to_owned())
}

fn system_text(body: &Value) -> String {
    messages(body)
        .iter()
        .filter(|m| matches!(role(m), "system" | "developer"))
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn image_count(body: &Value) -> usize {
    messages(body)
        .iter()
        .filter(|m| !matches!(role(m), "system" | "developer"))
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|p| matches!(p.get("type").and_then(Value::as_str), Some("image_url" | "image" | "input_image")))
        .count()
}

/// The outputs of the `tool` messages after the last user message (this turn's tool rounds; the
/// session's earlier turns are in the history too), oldest first.
fn tool_outputs(body: &Value) -> Vec<String> {
    let messages = messages(body);
    let start = messages
        .iter()
        .rposition(|m| {
            role(m) == "user"
                && !content_text(m.get("content").unwrap_or(&Value::Null)).contains(INTERNAL_CONTEXT_MARKER)
        })
        .map_or(0, |i| i + 1);
    messages[start..]
        .iter()
        .filter(|m| role(m) == "tool")
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .collect()
}

/// The names of the request's function tools.
fn tool_names(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("function").and_then(|f| f.get("name")).and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The output of the last `tool` message, if the request is a tool-result round.
fn last_tool_output(body: &Value) -> Option<String> {
    messages(body)
        .iter()
        .rev()
        .find(|m| role(m) == "tool")
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
}

/// Exactly `n` characters (ASCII) of sentences grouped into paragraphs separated by blank lines, so
/// chunkers have sentence and paragraph boundaries to find.
fn lorem(n: usize) -> String {
    const WORDS: [&str; 16] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "magna",
    ];
    let mut out = String::with_capacity(n + 16);
    let (mut word, mut sentence) = (0usize, 0usize);
    while out.len() < n {
        let len = 6 + sentence % 7;
        for i in 0..len {
            let w = WORDS[word % WORDS.len()];
            word += 1;
            if i == 0 {
                out.push_str(&w[..1].to_ascii_uppercase());
                out.push_str(&w[1..]);
            } else {
                out.push(' ');
                out.push_str(w);
            }
        }
        out.push('.');
        sentence += 1;
        out.push_str(if sentence % 4 == 0 { "\n\n" } else { " " });
    }
    out.truncate(n);
    // Never end on whitespace: the gateway may trim it and the length would not be `n` any more.
    if out.ends_with(char::is_whitespace) {
        out.pop();
        out.push('.');
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20})
}

fn completion_json(id: &str, answer: &Answer) -> Value {
    let (message, finish) = match answer {
        Answer::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::ToolCall { command } => {
            (json!({"role": "assistant", "content": null, "tool_calls": [tool_call(command)]}), "tool_calls")
        }
        Answer::Call { id, name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [named_call(id, name, arguments)]}),
            "tool_calls",
        ),
    };
    json!({
        "id": id, "object": "chat.completion", "created": now_secs(), "model": "stub-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(),
    })
}

fn tool_call(command: &str) -> Value {
    let arguments = json!({"command": command, "title": "stub tool test"}).to_string();
    json!({"index": 0, "id": "call_stub_1", "type": "function",
           "function": {"name": "exec", "arguments": arguments}})
}

fn named_call(id: &str, name: &str, arguments: &str) -> Value {
    json!({"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// The SSE `data:` payloads of a streamed answer (reference §4.4), `[DONE]` last. Text is split over
/// up to four content chunks so the gateway emits several deltas.
fn sse_events(id: &str, answer: &Answer) -> Vec<String> {
    let created = now_secs();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "stub-model",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = Vec::new();
    match answer {
        Answer::Text(text) => {
            events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(chars.len().div_ceil(4).max(1)) {
                events.push(chunk(json!({"content": piece.iter().collect::<String>()}), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
        }
        Answer::ToolCall { command } => {
            let delta = json!({"role": "assistant", "content": null, "tool_calls": [tool_call(command)]});
            events.push(chunk(delta, Value::Null));
            events.push(chunk(json!({}), json!("tool_calls")));
        }
        Answer::Call { id, name, arguments } => {
            let delta = json!({"role": "assistant", "content": null, "tool_calls": [named_call(id, name, arguments)]});
            events.push(chunk(delta, Value::Null));
            events.push(chunk(json!({}), json!("tool_calls")));
        }
    }
    events.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "stub-model",
               "choices": [], "usage": usage()})
        .to_string(),
    );
    events.push("[DONE]".to_owned());
    events
}

fn stream_response(id: String, answer: Answer, drip: Option<Duration>) -> Response {
    let events = sse_events(&id, &answer);
    let body = futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
        if let (Some(delay), true) = (drip, i > 0) {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(format!("data: {event}\n\n"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn body_with(messages: Value) -> Value {
        json!({"model": "stub-model", "stream": true, "messages": messages})
    }

    const INTERNAL: &str = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> stuff <<<END_OPENCLAW_INTERNAL_CONTEXT>>>";

    #[test]
    fn user_text_from_string_content_strips_stamp_and_runtime() {
        let body = body_with(json!([
            {"role": "system", "content": "You are a bot.\n## Conversation Context\nsender: kim"},
            {"role": "user", "content": "[Sat 2026-11-21 03:57 UTC] hello there\n\nRuntime: agent=main | session=x"},
            {"role": "user", "content": [{"type": "text", "text": INTERNAL}]},
        ]));
        assert_eq!(user_text(&body).as_deref(), Some("hello there"));
        assert!(system_text(&body).contains("sender: kim"));
    }

    #[test]
    fn user_text_from_array_content() {
        let body = body_with(json!([
            {"role": "user", "content": "older message"},
            {"role": "user", "content": [
                {"type": "text", "text": "[Sun 2026-11-22 10:00 UTC] 안녕하세요"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
        ]));
        assert_eq!(user_text(&body).as_deref(), Some("안녕하세요"));
        assert_eq!(image_count(&body), 1);
    }

    /// The shape captured from the real gateway for a message with two images.
    #[test]
    fn user_text_with_images_drops_runtime_part() {
        let image = json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}});
        let body = body_with(json!([
            {"role": "user", "content": [
                {"type": "text", "text": "[Sat 2026-11-21 05:19 UTC] IMAGE-COUNT photo"},
                image.clone(), image,
                {"type": "text", "text": "Runtime: agent=main | session=agent:main:x"},
            ]},
            {"role": "user", "content": [{"type": "text", "text": INTERNAL}]},
        ]));
        assert_eq!(user_text(&body).as_deref(), Some("IMAGE-COUNT photo"));
        assert_eq!(image_count(&body), 2);
    }

    #[test]
    fn user_text_keeps_brackets_that_are_not_a_timestamp() {
        let body = body_with(json!([{"role": "user", "content": "[note] keep me"}]));
        assert_eq!(user_text(&body).as_deref(), Some("[note] keep me"));
        assert_eq!(user_text(&body_with(json!([{"role": "system", "content": "x"}]))), None);
    }

    #[test]
    fn script_parsing() {
        let s = Script::parse("a SLOW:1500 b LONG:300 DRIP:20 IMAGE-COUNT");
        assert_eq!(s.slow, Some(Duration::from_millis(1500)));
        assert_eq!(s.drip, Some(Duration::from_millis(20)));
        assert_eq!(s.long, Some(300));
        assert!(s.image_count);
        assert_eq!(Script::parse("TOOLTEST: echo hi").tool_command.as_deref(), Some("echo hi"));
        assert_eq!(Script::parse("plain"), Script::default());
    }

    #[test]
    fn lorem_has_exact_length_and_structure() {
        for n in [0, 1, 7, 100, 999, 4000] {
            let text = lorem(n);
            assert_eq!(text.chars().count(), n);
            assert!(!text.ends_with(char::is_whitespace));
        }
        let text = lorem(2000);
        assert!(text.contains("\n\n") && text.contains(". "));
        assert!(!text.contains('<') && !text.contains("[["));
    }

    #[test]
    fn tool_scenario_calls_then_reports() {
        let first = body_with(json!([{"role": "user", "content": "TOOLTEST: echo hi"}]));
        let script = Script::parse(&user_text(&first).unwrap_or_default());
        let request = |body: &Value| StubRequest {
            user_text: String::new(),
            system: String::new(),
            image_count: 0,
            tool_round: false,
            tool_outputs: tool_outputs(body),
            tool_names: tool_names(body),
            stream: true,
            received_at: SystemTime::now(),
            body: Arc::new(body.clone()),
        };
        assert_eq!(answer(&script, &request(&first), &first), Answer::ToolCall { command: "echo hi".into() });
        let second = body_with(json!([
            {"role": "user", "content": "TOOLTEST: echo hi"},
            {"role": "assistant", "content": null, "tool_calls": [tool_call("echo hi")]},
            {"role": "tool", "tool_call_id": "call_stub_1", "content": "hi"},
        ]));
        assert_eq!(answer(&script, &request(&second), &second), Answer::Text("STUB-REPLY: tool output: hi".into()));
    }

    #[test]
    fn named_tool_calls_go_direct_or_through_tool_call() {
        let text = r#"TOOLCALL: whatsapp_send {"to":"+15550001","text":"hi"}"#;
        let script = Script::parse(text);
        assert_eq!(script.tool_call, Some(("whatsapp_send".into(), r#"{"to":"+15550001","text":"hi"}"#.into(), 1)));
        assert_eq!(Script::parse("TOOLCALL2: x {}").tool_call, Some(("x".into(), "{}".into(), 2)));
        let request = |body: &Value| StubRequest {
            user_text: text.to_owned(),
            system: String::new(),
            image_count: 0,
            tool_round: false,
            tool_outputs: tool_outputs(body),
            tool_names: tool_names(body),
            stream: true,
            received_at: SystemTime::now(),
            body: Arc::new(body.clone()),
        };
        let direct = json!({"tools": [{"type": "function", "function": {"name": "whatsapp_send"}}],
                            "messages": [{"role": "user", "content": text}]});
        let Answer::Call { id, name, arguments } = answer(&script, &request(&direct), &direct) else { panic!() };
        assert!(id.starts_with("call_"));
        assert_eq!((name.as_str(), arguments.as_str()), ("whatsapp_send", r#"{"to":"+15550001","text":"hi"}"#));
        let deferred = json!({"tools": [{"type": "function", "function": {"name": "tool_call"}}],
                              "messages": [{"role": "user", "content": text}]});
        let Answer::Call { id: same, name, arguments } = answer(&script, &request(&deferred), &deferred) else {
            panic!()
        };
        assert_eq!((same, name.as_str()), (id, "tool_call"));
        let arguments: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(arguments, json!({"id": "whatsapp_send", "args": {"to": "+15550001", "text": "hi"}}));
        let done = json!({"messages": [{"role": "user", "content": text}, {"role": "tool", "content": "sent"}]});
        assert_eq!(answer(&script, &request(&done), &done), Answer::Text("STUB-REPLY: tool output: sent".into()));
        // An earlier turn's tool round in the session history does not count for this turn.
        let later = json!({"tools": [{"type": "function", "function": {"name": "whatsapp_send"}}], "messages": [
            {"role": "user", "content": "earlier"}, {"role": "tool", "content": "old"},
            {"role": "user", "content": text}]});
        assert!(matches!(answer(&script, &request(&later), &later), Answer::Call { .. }));
    }

    /// Minimal HTTP/1.1 exchange over a real socket: `Connection: close`, read to EOF, de-chunk.
    async fn http(stub: &StubModel, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let mut tcp = tokio::net::TcpStream::connect(stub.addr()).await.expect("connect stub");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: stub\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.expect("write request");
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).await.expect("read response");
        let (head, mut rest) = raw.split_once("\r\n\r\n").expect("header end");
        let status = head[9..12].parse().expect("status code");
        let head = head.to_ascii_lowercase();
        if !head.contains("transfer-encoding: chunked") {
            return (status, head, rest.to_owned());
        }
        let mut body = String::new();
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size line");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if size == 0 {
                return (status, head, body);
            }
            body.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
    }

    fn chat_body(text: &str, stream: bool) -> String {
        json!({"model": "stub-model", "stream": stream, "messages": [
            {"role": "system", "content": "sys EXTRA-42"},
            {"role": "user", "content": format!("[Sat 2026-11-21 03:57 UTC] {text}\n\nRuntime: agent=main")},
            {"role": "user", "content": [{"type": "text", "text": INTERNAL}]},
        ]})
        .to_string()
    }

    #[tokio::test]
    async fn streams_sse_chunks_that_reassemble_to_the_reply() {
        let stub = StubModel::start();
        let (status, head, body) = http(&stub, "POST", "/v1/chat/completions", &chat_body("hello \"q\"", true)).await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("cache-control: no-cache"), "{head}");

        let events: Vec<&str> = body
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("every event is a data line"))
            .collect();
        assert_eq!(events.last(), Some(&"[DONE]"));
        let chunks: Vec<Value> =
            events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk JSON")).collect();
        let mut text = String::new();
        let mut content_chunks = 0;
        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["id"], chunks[0]["id"]);
            if let Some(piece) = c["choices"][0]["delta"]["content"].as_str().filter(|s| !s.is_empty()) {
                text.push_str(piece);
                content_chunks += 1;
            }
        }
        assert_eq!(text, "STUB-REPLY: you said: \"hello \"q\"\"");
        assert!(content_chunks > 1, "reply must be split over several chunks");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[chunks.len() - 1]["choices"], json!([]));
        assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 20);

        assert_eq!(stub.count_with("hello"), 1);
        let recorded = &stub.requests()[0];
        assert_eq!(recorded.user_text, "hello \"q\"");
        assert!(recorded.stream && !recorded.had_images());
        assert_eq!(stub.system_prompts_containing("EXTRA-42").len(), 1);
    }

    #[tokio::test]
    async fn non_streaming_long_and_models() {
        let stub = StubModel::start();
        let (status, _, body) = http(&stub, "POST", "/v1/chat/completions", &chat_body("LONG:500", false)).await;
        assert_eq!(status, 200);
        let reply: Value = serde_json::from_str(&body).expect("completion JSON");
        assert_eq!(reply["object"], "chat.completion");
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert_eq!(reply["choices"][0]["message"]["content"].as_str().map(str::len), Some(500));

        let (status, _, body) = http(&stub, "GET", "/v1/models", "").await;
        assert_eq!(status, 200);
        let models: Value = serde_json::from_str(&body).expect("models JSON");
        assert_eq!(models["data"][0]["id"], "stub-model");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_404_json() {
        let stub = StubModel::start();
        for (method, path) in [("GET", "/nope"), ("POST", "/v1/embeddings"), ("GET", "/v1/chat/completions")] {
            let (status, head, body) = http(&stub, method, path, "").await;
            assert_eq!(status, 404, "{method} {path}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(json!({"error": {"message": "not found"}})));
        }
        assert!(stub.requests().is_empty());
    }

    #[tokio::test]
    async fn logs_request_bodies_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stub = StubModel::start_logging_to(dir.path());
        let (status, _, _) = http(&stub, "POST", "/v1/chat/completions", &chat_body("IMAGE-COUNT", true)).await;
        assert_eq!(status, 200);
        let logged = std::fs::read_to_string(dir.path().join("request-1.json")).expect("request log");
        assert!(logged.contains("IMAGE-COUNT"));
    }
}
