//! Tracked links: `GET /r/{token}` answers 302 to the original URL and counts the click once per
//! recipient and link. `HEAD` (link previewers checking the target) and the known preview
//! crawlers are redirected without being counted; a token that is not one of ours, whose MAC
//! does not match, or whose recipient is gone answers 404.

use super::Spec;
use super::send::{parts, stored_variables, tracked_urls};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_campaign::links::{LinkKey, Token};
use clawbridge_core::clock::Clock;
use clawbridge_store::SharedStore;
use std::sync::Arc;

/// What the route needs.
#[derive(Clone)]
pub struct Links {
    /// The store.
    pub store: SharedStore,
    /// `[bizmsg]` (which variables a template takes decides the links' numbering).
    pub bizmsg: Option<Arc<BizmsgConfig>>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

/// User agents of link-preview crawlers: they fetch the page to draw a card, nobody clicked.
const PREVIEWERS: [&str; 10] = [
    "facebookexternalhit",
    "whatsapp",
    "kakaotalk-scrap",
    "slackbot",
    "telegrambot",
    "twitterbot",
    "discordbot",
    "googlebot",
    "bingbot",
    "linkedinbot",
];

/// The `/r/{token}` route.
pub fn routes(links: Links) -> Router {
    Router::new().route("/r/{token}", get(follow)).with_state(links)
}

async fn follow(State(links): State<Links>, method: Method, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let Some(url) = resolve(&links, &token).await else {
        metrics::counter!("clawbridge_campaign_link_unknown_total").increment(1);
        return (StatusCode::NOT_FOUND, "unknown link").into_response();
    };
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let previewer = PREVIEWERS.iter().any(|p| agent.contains(p));
    if method == Method::GET
        && !previewer
        && let Some(parsed) = Token::parse(&token)
    {
        match links.store.record_click(&parsed.campaign, parsed.recipient, parsed.link, links.clock.now_ms()).await {
            Ok(first) => {
                let kind = if first { "first" } else { "repeat" };
                metrics::counter!("clawbridge_campaign_clicks_total", "campaign" => parsed.campaign.clone(), "kind" => kind)
                    .increment(1);
            }
            // The visitor still gets where they were going.
            Err(e) => tracing::warn!(error = %e, "cannot count a click"),
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url), (header::CACHE_CONTROL, "no-store".to_owned())]).into_response()
}

/// The original URL of a token, if it is one of ours.
async fn resolve(links: &Links, token: &str) -> Option<String> {
    let parsed = Token::parse(token)?;
    let campaign = links.store.get_campaign(&parsed.campaign).await.ok()??;
    let key = LinkKey::decode(&campaign.link_key)?;
    if !key.verify(&parsed) {
        return None;
    }
    let row = links.store.get_campaign_recipient(parsed.recipient).await.ok()??;
    if row.campaign_id != campaign.id {
        return None;
    }
    let spec: Spec = serde_json::from_str(&campaign.spec).ok()?;
    let variant = spec.variant(&row.variant).unwrap_or(&spec.variants[0]);
    let parts = parts(&spec, variant, &stored_variables(&row), links.bizmsg.as_deref()).ok()?;
    tracked_urls(&parts).into_iter().nth(usize::try_from(parsed.link).ok()?)
}
