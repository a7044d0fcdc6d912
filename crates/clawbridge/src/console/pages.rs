//! The console's pages, rendered to HTML on the server. Everything that comes from outside (a
//! message text, a display name, an error) goes through [`e`]; numbers and user keys are shown
//! masked as the logs mask them ([`mask`], [`mask_lane`]).

use super::auth::Session;
use super::charts::{self, BLUE, ORANGE, PURPLE, Series};
use super::{Console, SCRIPT_PATH, STYLE, stats};
use crate::util::{format_epoch_ms, now_ms};
use axum::response::{Html, IntoResponse, Response};
use clawbridge_channel::AccountStatus;
use clawbridge_channel::plugin::ChannelPlugin as _;
use clawbridge_core::ids::{mask, mask_lane};
use clawbridge_core::{EpochMs, IdempotencyKey};
use clawbridge_gateway::ConnectionState;
use clawbridge_store::{CampaignState, InboundRow, OutboundRow, StoreError};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Dead letters listed (and acted on by "all").
pub const DEAD_LETTERS_SHOWN: u32 = 100;
/// Conversations listed.
const LANES_SHOWN: u32 = 20;
/// Messages shown per conversation and direction.
const MESSAGES_SHOWN: u32 = 10;
/// Campaigns whose report is built on the page.
const CAMPAIGN_REPORTS: usize = 5;

/// The console's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// Health, queues, charts, errors.
    Overview,
    /// Recent peers and their messages.
    Conversations,
    /// Messages that will not go without an operator.
    DeadLetters,
    /// Pending codes and approved senders.
    Pairing,
    /// Campaign progress and reports.
    Campaigns,
    /// Kakao Login and AlimTalk templates.
    Kakao,
}

impl Page {
    /// Navigation label, English and Korean.
    const fn label(self) -> &'static str {
        match self {
            Self::Overview => "Overview · 개요",
            Self::Conversations => "Conversations · 대화",
            Self::DeadLetters => "Dead letters · 실패",
            Self::Pairing => "Pairing · 페어링",
            Self::Campaigns => "Campaigns · 캠페인",
            Self::Kakao => "Kakao · 카카오",
        }
    }

    /// How often the page refreshes itself, in milliseconds.
    const fn refresh_ms(self) -> u32 {
        match self {
            Self::Kakao | Self::Campaigns => 15_000,
            _ => 5_000,
        }
    }
}

/// Whether the console can retry or discard dead letters of this queue (the others are shown:
/// business messages have their own retries, failed deliveries were sent).
pub fn actionable(queue: &str) -> bool {
    matches!(queue, "inbox" | "outbox")
}

/// Text escaped for HTML (the campaign report's helper).
fn e(text: &str) -> String {
    clawbridge_campaign::report::escape_html(text)
}

fn time(at: EpochMs) -> String {
    format!("{} UTC", format_epoch_ms(at))
}

/// At most `max` characters of a message text.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The fixed text of a notice after an action.
pub fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "retried" => "Retried: back in the queue. / 다시 보냅니다.",
        "discarded" => "Discarded. / 버렸습니다.",
        "approved" => "Approved. / 승인했습니다.",
        "rejected" => "Rejected. / 거절했습니다.",
        "revoked" => "Revoked. / 승인을 취소했습니다.",
        "paused" => "Paused. / 일시 정지했습니다.",
        "resumed" => "Resumed. / 재개했습니다.",
        "cancelled" => "Cancelled. / 취소했습니다.",
        "nothing" => "Nothing to do: it changed meanwhile. / 이미 처리되었습니다.",
        _ => return None,
    })
}

/// A one-button form posting `fields` with the session's CSRF token.
fn button(
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> String {
    let mut html = format!("<form method=\"post\" action=\"{action}\" class=\"inline\"");
    if let Some(question) = confirm {
        let _ = write!(html, " data-confirm=\"{}\"", e(question));
    }
    let _ = write!(html, "><input type=\"hidden\" name=\"csrf\" value=\"{}\">", e(csrf));
    for (name, value) in fields {
        let _ = write!(html, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", e(name), e(value));
    }
    let _ = write!(html, "<button type=\"submit\" class=\"{class}\">{}</button></form>", e(label));
    html
}

/// The page (or its `<main>` alone with `?fragment=1`).
pub async fn render(console: &Console, page: Page, session: &Session, query: &HashMap<String, String>) -> Response {
    let csrf = session.csrf.as_str();
    let main = match page {
        Page::Overview => overview(console).await,
        Page::Conversations => conversations(console).await,
        Page::DeadLetters => dead_letters(console, csrf).await,
        Page::Pairing => pairing(console, csrf).await,
        Page::Campaigns => campaigns(console, csrf).await,
        Page::Kakao => Ok(kakao(console).await),
    };
    let main = main.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "console: store error");
        "<section class=\"card bad\"><h2>Store unavailable · 저장소 오류</h2><p>The store did not answer; this page \
         refreshes by itself.</p></section>"
            .to_owned()
    });
    if query.contains_key("fragment") {
        return Html(main).into_response();
    }
    let notice = query.get("notice").and_then(|n| notice(n));
    Html(layout(page, csrf, notice, &main)).into_response()
}

fn layout(page: Page, csrf: &str, notice: Option<&str>, main: &str) -> String {
    let mut nav = String::new();
    for (p, path) in super::PAGES {
        let current = if p == page { " aria-current=\"page\"" } else { "" };
        let _ = write!(nav, "<a href=\"{path}\"{current}>{}</a>", p.label());
    }
    let logout = button("/console/logout", csrf, &[], "Log out · 로그아웃", "quiet", None);
    let notice = notice.map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", e(n))).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · clawbridge console</title><style>{STYLE}</style>\
         <script src=\"{SCRIPT_PATH}\" defer></script></head><body>\
         <header><a class=\"brand\" href=\"/console/overview\">clawbridge</a><nav>{nav}</nav>{logout}</header>\
         {notice}<main id=\"main\" data-live=\"{refresh}\">{main}</main>\
         <footer>clawbridge {version} · <span id=\"live\">live</span></footer></body></html>",
        title = page.label(),
        refresh = page.refresh_ms(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// The login form. `needs_token`: with a token configured; else (loopback) one button.
pub fn login(csrf: &str, needs_token: bool, error: Option<&str>) -> String {
    let error = error.map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", e(m))).unwrap_or_default();
    let field = if needs_token {
        "<label for=\"token\">Console token · 콘솔 토큰</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>"
    } else {
        "<p class=\"muted\">No token is set: the console is open on this machine only (loopback). \
         토큰이 없어 이 컴퓨터에서만 열립니다.</p>"
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · clawbridge console</title><style>{STYLE}</style></head><body class=\"login\">\
         <main><h1>clawbridge console</h1>{error}\
         <form method=\"post\" action=\"/console/login\" id=\"login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{field}\
         <button type=\"submit\">Log in · 로그인</button></form></main></body></html>",
        csrf = e(csrf),
    )
}

// ---- overview -----------------------------------------------------------------------------------

async fn overview(console: &Console) -> Result<String, StoreError> {
    let mut html = String::from("<h1>Overview · 개요</h1><div class=\"grid\">");
    // The gateway.
    let gateway = console.health.gateway.state().borrow().clone();
    let (class, text) = match &gateway {
        ConnectionState::Connected { server_version, protocol } => {
            ("ok", format!("connected · OpenClaw {} (protocol {protocol})", e(server_version)))
        }
        ConnectionState::Connecting => ("warn", "connecting…".to_owned()),
        ConnectionState::Backoff { attempt, last_error, .. } => {
            ("bad", format!("reconnecting (attempt {attempt}): {}", e(&last_error.to_string())))
        }
        ConnectionState::Fatal(fatal) => ("bad", format!("refused: {}", e(&fatal.to_string()))),
        ConnectionState::Stopped => ("bad", "stopped".to_owned()),
    };
    let _ = write!(
        html,
        "<section class=\"card\"><h2>Gateway · 게이트웨이</h2><p class=\"{class}\" id=\"gateway-state\">{text}</p>\
         <p class=\"muted\">{} · clawbridge {}</p></section>",
        e(&console.config.gateway.url),
        env!("CARGO_PKG_VERSION")
    );
    // The channel accounts.
    html.push_str("<section class=\"card\"><h2>Channels · 채널</h2>");
    if console.health.accounts.is_empty() {
        html.push_str("<p class=\"warn\">No channel is enabled. / 사용 중인 채널이 없습니다.</p>");
    } else {
        html.push_str("<table><tbody>");
        for (name, status) in console.health.accounts.iter() {
            let (class, state, why) = match &*status.borrow() {
                AccountStatus::Starting => ("warn", "starting", String::new()),
                AccountStatus::Running => ("ok", "running", String::new()),
                AccountStatus::Degraded(why) => ("warn", "degraded", why.clone()),
                AccountStatus::Failed(why) => ("bad", "failed", why.clone()),
                AccountStatus::Stopped => ("bad", "stopped", String::new()),
            };
            let _ = write!(html, "<tr><th>{}</th><td class=\"{class}\">{state}</td><td>{}</td></tr>", e(name), e(&why));
        }
        html.push_str("</tbody></table>");
    }
    if let Some(tools) = &console.health.tools {
        let tools = tools.borrow().to_json();
        let state = tools["state"].as_str().unwrap_or("?");
        let problem = tools["problem"].as_str().unwrap_or("");
        let class = if state == "connected" && problem.is_empty() { "ok" } else { "warn" };
        let _ = write!(html, "<p>agent tools: <span class=\"{class}\">{}</span> {}</p>", e(state), e(problem));
    }
    html.push_str("</section>");
    // The queues.
    let q = console.store.queue_stats().await?;
    let _ = write!(
        html,
        "<section class=\"card\"><h2>Queues · 대기열</h2><p class=\"muted\">store: {}</p><table><tbody>\
         <tr><th>inbox</th><td>{} pending · {} processing · <a href=\"/console/dead-letters\">{} failed</a></td></tr>\
         <tr><th>outbox</th><td>{} queued · {} sending · {} retry · <a href=\"/console/dead-letters\">{} dead</a></td></tr>\
         <tr><th>delivery</th><td>{} failed at the platform</td></tr></tbody></table></section></div>",
        console.store.backend(),
        q.inbox_pending,
        q.inbox_processing,
        q.inbox_failed,
        q.outbox_queued,
        q.outbox_sending,
        q.outbox_retry,
        q.outbox_dead,
        q.delivery_failed,
    );
    // The last hour.
    let hour = stats::last_hour(now_ms());
    let minutes = hour.len();
    let minute_label = move |i: usize| {
        let ago = minutes.saturating_sub(1).saturating_sub(i);
        if ago == 0 { "now".to_owned() } else { format!("-{ago}m") }
    };
    let traffic = [
        Series { label: "in · 수신", color: BLUE, values: hour.iter().map(|p| Some(p.inbound as f64)).collect() },
        Series {
            label: "out · 발신", color: ORANGE, values: hour.iter().map(|p| Some(p.outbound as f64)).collect()
        },
    ];
    let latency = [
        Series { label: "p50", color: BLUE, values: hour.iter().map(|p| p.p50).collect() },
        Series { label: "p95", color: ORANGE, values: hour.iter().map(|p| p.p95).collect() },
        Series { label: "p99", color: PURPLE, values: hour.iter().map(|p| p.p99).collect() },
    ];
    let _ = write!(
        html,
        "<div class=\"grid wide\"><section class=\"card chart\" id=\"chart-messages\"><h2>Messages per minute · 분당 메시지</h2>{}</section>\
         <section class=\"card chart\" id=\"chart-latency\"><h2>Agent latency p50 · p95 · p99 · 응답 시간</h2>{}</section></div>",
        charts::line_chart(&traffic, minutes, &minute_label, &|v| format!("{v:.0}")),
        charts::line_chart(&latency, minutes, &minute_label, &seconds),
    );
    // The last errors.
    html.push_str("<section class=\"card\"><h2>Last errors · 최근 오류</h2>");
    let errors = stats::recent_errors();
    if errors.is_empty() {
        html.push_str("<p class=\"ok\">None since the start. / 시작 후 오류 없음.</p>");
    } else {
        html.push_str("<table><tbody>");
        for err in errors {
            let _ = write!(html, "<tr><td>{}</td><th>{}</th><td>{}</td></tr>", time(err.at), err.kind, e(&err.text));
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    Ok(html)
}

/// A latency axis value: milliseconds below a second.
fn seconds(v: f64) -> String {
    if v < 1.0 { format!("{:.0}ms", v * 1000.0) } else { format!("{v:.1}s") }
}

// ---- conversations ------------------------------------------------------------------------------

/// One message of a conversation as the page lists it.
struct Line {
    at: EpochMs,
    inbound: bool,
    text: String,
    state: String,
    delivery: String,
    run: String,
}

fn inbound_line(row: &InboundRow) -> Line {
    let m = &row.message;
    let run = match row.outcome.as_deref() {
        Some("replied" | "silent") => IdempotencyKey::for_inbound(&m.channel, &m.account, &m.message_id).into_string(),
        _ => String::new(),
    };
    let mut state = row.state.as_str().to_owned();
    if let Some(outcome) = &row.outcome {
        let _ = write!(state, " ({outcome})");
    }
    if let Some(error) = &row.last_error {
        let _ = write!(state, ": {error}");
    }
    let mut text = m.text.clone();
    if !m.media.is_empty() {
        let _ = write!(text, " [{} attachment(s)]", m.media.len());
    }
    Line { at: row.received_at, inbound: true, text, state, delivery: String::new(), run }
}

fn outbound_line(row: &OutboundRow) -> Line {
    let key = row.idempotency_key.as_str();
    // A reply part's key is its run's key and `-rN`.
    let run = key.rsplit_once("-r").filter(|(run, _)| run.starts_with("cb1-")).map(|(run, _)| run.to_owned());
    let mut text = row.message.text.clone().unwrap_or_default();
    if !row.message.media.is_empty() {
        let _ = write!(text, " [{} attachment(s)]", row.message.media.len());
    }
    let mut state = row.state.as_str().to_owned();
    if let Some(error) = row.last_error.as_deref().filter(|_| row.state != clawbridge_store::OutboxState::Sent) {
        let _ = write!(state, ": {error}");
    }
    let delivery = match (&row.delivery_status, &row.delivery_error) {
        (Some(status), Some(error)) if status == "failed" => format!("failed {error}"),
        (Some(status), _) => status.clone(),
        (None, _) => String::new(),
    };
    Line { at: row.created_at, inbound: false, text, state, delivery, run: run.unwrap_or_default() }
}

async fn conversations(console: &Console) -> Result<String, StoreError> {
    let lanes = console.store.recent_lanes(LANES_SHOWN).await?;
    let mut html = String::from(
        "<h1>Conversations · 대화</h1><p class=\"muted\">The most recent peers; numbers and user keys are masked. \
         / 최근 대화 (번호는 가려서 표시)</p>",
    );
    if lanes.is_empty() {
        html.push_str("<p>No messages yet. / 아직 메시지가 없습니다.</p>");
    }
    for (i, lane) in lanes.iter().enumerate() {
        let mut lines: Vec<Line> = console
            .store
            .lane_inbound(&lane.lane, MESSAGES_SHOWN)
            .await?
            .iter()
            .map(inbound_line)
            .chain(console.store.lane_outbound(&lane.lane, MESSAGES_SHOWN).await?.iter().map(outbound_line))
            .collect();
        lines.sort_by_key(|line| std::cmp::Reverse(line.at));
        let open = if i == 0 { " open" } else { "" };
        let _ = write!(
            html,
            "<details class=\"card conversation\" data-key=\"{}\"{open}><summary><b>{}</b> {} · <span class=\"peer\">{}</span> \
             <span class=\"muted\">in {} · out {} · {}</span></summary><table class=\"messages\"><thead><tr><th>time</th>\
             <th></th><th>text</th><th>state</th><th>delivery</th><th>agent run</th></tr></thead><tbody>",
            e(&mask_lane(&lane.lane)),
            e(lane.channel.as_str()),
            e(lane.account.as_str()),
            e(&mask(lane.peer.as_str())),
            lane.inbound,
            lane.outbound,
            time(lane.last_at),
        );
        for line in &lines {
            let (dir, class) = if line.inbound { ("← in", "in") } else { ("→ out", "out") };
            let delivery_class = if line.delivery.starts_with("failed") { "bad" } else { "" };
            let _ = write!(
                html,
                "<tr class=\"{class}\"><td>{}</td><td>{dir}</td><td class=\"text\">{}</td><td>{}</td>\
                 <td class=\"{delivery_class}\">{}</td><td><code>{}</code></td></tr>",
                time(line.at),
                e(&clip(&line.text, 300)),
                e(&line.state),
                e(&line.delivery),
                e(&line.run),
            );
        }
        html.push_str("</tbody></table></details>");
    }
    Ok(html)
}

// ---- dead letters -------------------------------------------------------------------------------

async fn dead_letters(console: &Console, csrf: &str) -> Result<String, StoreError> {
    const ACT: &str = "/console/dead-letters/act";
    let dead = console.store.dead_letters(DEAD_LETTERS_SHOWN).await?;
    let mut html = String::from("<h1>Dead letters · 실패한 메시지</h1>");
    if dead.is_empty() {
        html.push_str("<p class=\"ok\">None. / 없습니다.</p>");
    } else {
        let _ = write!(
            html,
            "<p class=\"actions\">{}{}</p>",
            button(ACT, csrf, &[("action", "retry"), ("target", "all")], "Retry all · 모두 재시도", "", None),
            button(
                ACT,
                csrf,
                &[("action", "discard"), ("target", "all")],
                "Discard all · 모두 버리기",
                "danger",
                Some("Discard every dead letter listed?")
            ),
        );
        html.push_str(
            "<table id=\"dead-letters\"><thead><tr><th>queue</th><th>id</th><th>conversation</th><th>reason</th>\
             <th>attempts</th><th>when</th><th></th></tr></thead><tbody>",
        );
        for d in &dead {
            let target = format!("{}/{}", d.queue, d.id);
            let actions = if actionable(d.queue) {
                format!(
                    "{}{}",
                    button(ACT, csrf, &[("action", "retry"), ("target", &target)], "Retry · 재시도", "", None),
                    button(
                        ACT,
                        csrf,
                        &[("action", "discard"), ("target", &target)],
                        "Discard · 버리기",
                        "danger",
                        None
                    ),
                )
            } else {
                "<span class=\"muted\">see its campaign or resend</span>".to_owned()
            };
            let _ = write!(
                html,
                "<tr data-target=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                e(&target),
                d.queue,
                d.id,
                e(&mask_lane(&d.lane)),
                e(&clip(&d.reason, 300)),
                d.attempts,
                time(d.at),
            );
        }
        html.push_str("</tbody></table>");
    }
    audit_log(console, &mut html).await?;
    Ok(html)
}

async fn audit_log(console: &Console, html: &mut String) -> Result<(), StoreError> {
    let log = console.store.audit_log(20).await?;
    html.push_str("<section class=\"card\"><h2>Operator actions · 작업 기록</h2>");
    if log.is_empty() {
        html.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        html.push_str("<table id=\"audit\"><tbody>");
        for a in log {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(a.at),
                e(&a.actor),
                e(&a.action),
                e(&a.target)
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    Ok(())
}

// ---- pairing ------------------------------------------------------------------------------------

async fn pairing(console: &Console, csrf: &str) -> Result<String, StoreError> {
    const ACT: &str = "/console/pairing/act";
    let now = now_ms();
    let pending = console.store.list_pairings(None, now).await?;
    let approved = console.store.list_approved(None).await?;
    let mut html =
        String::from("<h1>Pairing · 페어링</h1><section class=\"card\"><h2>Waiting for approval · 승인 대기</h2>");
    if pending.is_empty() {
        html.push_str("<p class=\"muted\">No pending codes. / 대기 중인 코드가 없습니다.</p>");
    } else {
        html.push_str(
            "<table id=\"pending\"><thead><tr><th>code</th><th>channel</th><th>sender</th><th>name</th><th>expires</th>\
             <th></th></tr></thead><tbody>",
        );
        for p in &pending {
            let fields = |action| [("action", action), ("channel", p.channel.as_str()), ("code", p.code.as_str())];
            let _ = write!(
                html,
                "<tr data-code=\"{code}\"><td><code>{code}</code></td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                e(p.channel.as_str()),
                e(p.account.as_str()),
                e(&mask(p.peer.as_str())),
                e(p.display_name.as_deref().unwrap_or("")),
                time(p.expires_at),
                button(ACT, csrf, &fields("approve"), "Approve · 승인", "", None),
                button(ACT, csrf, &fields("reject"), "Reject · 거절", "danger", None),
                code = e(&p.code),
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section><section class=\"card\"><h2>Approved senders · 승인된 사용자</h2>");
    if approved.is_empty() {
        html.push_str("<p class=\"muted\">Nobody yet. / 아직 없습니다.</p>");
    } else {
        html.push_str(
            "<table id=\"approved\"><thead><tr><th>channel</th><th>sender</th><th>name</th><th>since</th><th></th></tr></thead><tbody>",
        );
        for a in &approved {
            let sender = sender_ref(a);
            let fields = [("action", "revoke"), ("channel", a.channel.as_str()), ("sender", sender.as_str())];
            let _ = write!(
                html,
                "<tr><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(a.channel.as_str()),
                e(a.account.as_str()),
                e(&mask(a.peer.as_str())),
                e(a.display_name.as_deref().unwrap_or("")),
                time(a.approved_at),
                button(ACT, csrf, &fields, "Revoke · 취소", "danger", Some("Revoke this sender's approval?")),
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    Ok(html)
}

/// An approved sender as the revoke form names it: a digest, so the page's source holds no
/// unmasked number either.
pub fn sender_ref(peer: &clawbridge_store::ApprovedPeer) -> String {
    use sha2::Digest as _;
    let lane = clawbridge_core::Lane::of(&peer.channel, &peer.account, &peer.peer);
    hex::encode(&sha2::Sha256::digest(lane.as_str().as_bytes())[..12])
}

// ---- campaigns ----------------------------------------------------------------------------------

async fn campaigns(console: &Console, csrf: &str) -> Result<String, StoreError> {
    const ACT: &str = "/console/campaigns/act";
    let list = console.store.list_campaigns(20).await?;
    let mut html = String::from("<h1>Campaigns · 캠페인</h1>");
    if list.is_empty() {
        html.push_str(
            "<p class=\"muted\">No campaigns. Create one with <code>clawbridge campaign create</code>. \
             / 캠페인이 없습니다.</p>",
        );
    }
    for (i, campaign) in list.iter().enumerate() {
        let report = crate::campaign::report::build(&console.store, campaign).await?;
        let t = &report.totals;
        let done = t.accepted + t.failed + t.suppressed;
        let id = campaign.id.as_str();
        let mut actions = String::new();
        let can = |states: &[CampaignState]| states.contains(&campaign.state);
        if can(&[CampaignState::Running, CampaignState::Scheduled]) {
            actions += &button(ACT, csrf, &[("action", "pause"), ("id", id)], "Pause · 일시 정지", "", None);
        }
        if can(&[CampaignState::Paused]) {
            actions += &button(ACT, csrf, &[("action", "resume"), ("id", id)], "Resume · 재개", "", None);
        }
        if can(&[CampaignState::Draft, CampaignState::Scheduled, CampaignState::Running, CampaignState::Paused]) {
            actions += &button(
                ACT,
                csrf,
                &[("action", "cancel"), ("id", id)],
                "Cancel · 취소",
                "danger",
                Some("Cancel this campaign? Recipients not yet sent to will not be."),
            );
        }
        let _ = write!(
            html,
            "<section class=\"card campaign\"><h2>{} <span class=\"muted\">{} · {} · {}</span></h2>\
             <progress max=\"{}\" value=\"{done}\"></progress>\
             <p>{} recipients · {} accepted · {} delivered · {} failed · {} not sent · {} unique clicks</p><p>{actions}</p>",
            e(&campaign.name),
            e(id),
            e(&campaign.channel),
            campaign.state.as_str(),
            t.recipients.max(1),
            t.recipients,
            t.accepted,
            t.delivered,
            t.failed,
            t.suppressed,
            t.unique_clicks,
        );
        if report.variants.len() > 1 {
            html.push_str("<table><thead><tr><th>variant</th><th>delivered</th><th>CTR</th></tr></thead><tbody>");
            for v in &report.variants {
                let _ = write!(
                    html,
                    "<tr><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td>{:.2}%</td></tr>",
                    e(&v.name),
                    e(&v.description),
                    v.counts.delivered,
                    v.ctr * 100.0
                );
            }
            html.push_str("</tbody></table>");
        }
        if i < CAMPAIGN_REPORTS && !report.timeline.is_empty() {
            let hours = report.timeline.len();
            let starts: Vec<EpochMs> = report.timeline.iter().map(|b| b.start).collect();
            let series = [
                Series {
                    label: "delivered · 도달",
                    color: BLUE,
                    values: report.timeline.iter().map(|b| Some(b.delivered as f64)).collect(),
                },
                Series {
                    label: "clicks · 클릭",
                    color: ORANGE,
                    values: report.timeline.iter().map(|b| Some(b.clicks as f64)).collect(),
                },
            ];
            let label = move |i: usize| {
                starts
                    .get(i)
                    .map(|at| format_epoch_ms(*at).get(5..13).unwrap_or_default().to_owned())
                    .unwrap_or_default()
            };
            let _ = write!(
                html,
                "<div class=\"chart\"><h3>Per hour (UTC) · 시간별</h3>{}</div>",
                charts::line_chart(&series, hours, &label, &|v| format!("{v:.0}"))
            );
        }
        if let Some(failure) = report.failures.first() {
            let _ = write!(
                html,
                "<p class=\"warn\">most frequent failure: {} {} ({}×)</p>",
                e(&failure.code),
                e(&failure.reason),
                failure.count
            );
        }
        html.push_str("</section>");
    }
    Ok(html)
}

// ---- kakao --------------------------------------------------------------------------------------

async fn kakao(console: &Console) -> String {
    let mut html = String::from("<h1>Kakao · 카카오</h1>");
    let config = &console.config;
    let mut shown = false;
    // Kakao Login (token expiry and scopes), by the channel's own doctor check (no network).
    for (id, settings) in &config.channels {
        if *id != clawbridge_kakao::KakaoPlugin.id() {
            continue;
        }
        shown = true;
        let host = crate::commands::host::host_info(config, id);
        html.push_str("<section class=\"card\"><h2>Kakao Login · 카카오 로그인</h2>");
        let checks = settings.doctor(&host).await;
        if checks.is_empty() {
            html.push_str("<p class=\"muted\">Kakao Login is not configured ([kakao.login]).</p>");
        }
        for check in checks {
            match check.outcome {
                Ok(detail) => {
                    let _ = write!(html, "<p class=\"ok\">{}: {}</p>", e(&check.what), e(&detail));
                }
                Err(problem) => {
                    let _ = write!(
                        html,
                        "<p class=\"bad\">{}: {}</p><p>fix: {}</p>",
                        e(&check.what),
                        e(&problem.problem),
                        e(&problem.fix)
                    );
                }
            }
        }
        html.push_str("</section>");
    }
    // The chatbot's records (callbacks, channel events), as `clawbridge status` shows them.
    let bridge = crate::bridge::StoreBridge::new(console.store.clone(), console.wakers.clone(), "console".to_owned());
    for plugin in crate::channels::plugins().iter() {
        if plugin.id() != clawbridge_kakao::KakaoPlugin.id() {
            continue;
        }
        let settings = config.channels.iter().find(|(id, _)| *id == plugin.id()).map(|(_, s)| s.as_ref());
        match plugin.status(settings, &bridge).await {
            Ok(Some(status)) if !status.lines.is_empty() => {
                shown = true;
                html.push_str("<section class=\"card\"><h2>Chatbot · 챗봇</h2><ul>");
                for line in status.lines {
                    let _ = write!(html, "<li>{}</li>", e(&line));
                }
                html.push_str("</ul></section>");
            }
            Ok(_) => {}
            Err(err) => {
                let _ = write!(html, "<p class=\"bad\">chatbot status: {}</p>", e(&err.to_string()));
            }
        }
    }
    // AlimTalk and Brand Message templates, against the last `templates sync`.
    if let Some(bizmsg) = config.channel::<clawbridge_bizmsg::config::BizmsgConfig>(clawbridge_bizmsg::plugin::ID) {
        shown = true;
        html.push_str("<section class=\"card\"><h2>AlimTalk templates · 알림톡 템플릿</h2>");
        match crate::commands::bizmsg::listed_templates(bizmsg, &console.store, now_ms()).await {
            Ok(rows) if rows.is_empty() => html.push_str("<p class=\"muted\">No templates declared.</p>"),
            Ok(rows) => {
                html.push_str(
                    "<table id=\"templates\"><thead><tr><th>code</th><th>product</th><th>status</th><th>variables</th></tr></thead><tbody>",
                );
                for r in rows {
                    let class = if r.status == "approved" { "ok" } else { "warn" };
                    let _ = write!(
                        html,
                        "<tr><td><code>{}</code></td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                        e(&r.code),
                        r.product.as_str(),
                        e(&r.status),
                        e(&r.variables.join(", "))
                    );
                }
                html.push_str(
                    "</tbody></table><p class=\"muted\">Refresh with <code>clawbridge alimtalk templates sync</code>.</p>",
                );
            }
            Err(err) => {
                let _ = write!(html, "<p class=\"bad\">{}</p>", e(&format!("{err:#}")));
            }
        }
        html.push_str("</section>");
    }
    if !shown {
        html.push_str(
            "<p class=\"muted\">Kakao is not configured: see <code>clawbridge setup kakao</code>. \
             / 카카오가 설정되지 않았습니다.</p>",
        );
    }
    html
}
