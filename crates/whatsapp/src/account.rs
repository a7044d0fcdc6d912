//! The WhatsApp connector and its accounts (one per phone number).

use crate::client::{KapsoClient, MediaSource};
use crate::config::{AccountConfig, WhatsAppConfig};
use crate::inbound::{CHANNEL, InboundData};
use crate::poller::{PollSettings, Poller};
use crate::render::{MAX_TEXT_CHARS, render_reply_parts};
use crate::webhook::{self, WebhookAccount, WebhookState};
use async_trait::async_trait;
use base64::Engine;
use clawbridge_channel::{Account, AccountContext, AccountStatus, Capabilities, ChannelError, Connector, RouteContext};
use clawbridge_core::ids::mask;
use clawbridge_core::policy::AccessPolicy;
use clawbridge_core::{
    AccountId, ChannelId, IdempotencyKey, InboundMessage, InboundOutcome, MediaKind, MediaRef, OutboundMessage,
    Receipt, SendError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod spec;
pub use spec::OutboundSpec;

/// How often the typing indicator is renewed (WhatsApp hides it after about 25 s).
pub const TYPING_REFRESH: Duration = Duration::from_secs(20);
/// The typing indicator is not renewed beyond this: the default agent timeout, so a run that
/// ends without a reply (silent, or given up) does not "type" forever.
pub const TYPING_CAP: Duration = Duration::from_secs(600);
/// Time allowed for the media of one webhook delivery (Kapso waits 10 s for the answer).
const WEBHOOK_MEDIA_BUDGET: Duration = Duration::from_secs(6);

/// WhatsApp through Kapso.
#[derive(Debug)]
pub struct WhatsAppConnector {
    config: Arc<WhatsAppConfig>,
    accounts: Vec<Arc<WhatsAppAccount>>,
    /// Every number, for the one webhook route that serves them all.
    webhook_accounts: Arc<Vec<WebhookAccount>>,
}

impl WhatsAppConnector {
    /// Builds the connector and one account per configured phone number.
    ///
    /// # Errors
    /// When an HTTP client cannot be built.
    pub fn new(config: WhatsAppConfig) -> Result<Self, String> {
        let config = Arc::new(config);
        let mut clients = Vec::new();
        for account in &config.accounts {
            clients.push(KapsoClient::new(&config, account)?);
        }
        let webhook_accounts: Arc<Vec<WebhookAccount>> = Arc::new(
            config
                .accounts
                .iter()
                .zip(&clients)
                .map(|(a, c)| WebhookAccount {
                    id: a.id.clone(),
                    phone_number_id: a.phone_number_id.clone(),
                    client: c.clone(),
                })
                .collect(),
        );
        let accounts = config
            .accounts
            .iter()
            .zip(clients)
            .map(|(account, client)| {
                Arc::new(WhatsAppAccount {
                    config: config.clone(),
                    account: account.clone(),
                    client,
                    typing: Arc::default(),
                })
            })
            .collect();
        Ok(Self { config, accounts, webhook_accounts })
    }

    /// The accounts, typed.
    pub fn whatsapp_accounts(&self) -> &[Arc<WhatsAppAccount>] {
        &self.accounts
    }
}

impl Connector for WhatsAppConnector {
    fn id(&self) -> ChannelId {
        ChannelId::new(CHANNEL)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_text_chars: MAX_TEXT_CHARS,
            media: vec![MediaKind::Image, MediaKind::Video, MediaKind::Audio, MediaKind::Document, MediaKind::Sticker],
            replies: true,
            typing: true,
        }
    }

    fn accounts(&self) -> Vec<Arc<dyn Account>> {
        self.accounts.iter().map(|a| a.clone() as Arc<dyn Account>).collect()
    }

    /// `/webhook` and `/whatsapp/webhook` for every number, in the webhook modes only.
    fn routes(&self, ctx: &RouteContext) -> Option<axum::Router> {
        if !self.config.serves_webhook() {
            return None;
        }
        Some(webhook::router(WebhookState {
            bridge: ctx.bridge.clone(),
            accounts: self.webhook_accounts.clone(),
            secret: self.config.webhook_secret.clone(),
            verify_token: self.config.webhook_verify_token.clone(),
            media_budget: WEBHOOK_MEDIA_BUDGET,
        }))
    }

    /// Markdown → WhatsApp formatting, directive tags removed, ≤ 4096-character parts; the
    /// first part quotes the user's message.
    fn render_reply(&self, to: &InboundMessage, reply: &str) -> Vec<OutboundMessage> {
        render_reply_parts(reply)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut msg = OutboundMessage::reply_text(to, part);
                if i > 0 {
                    msg.reply_to = None;
                }
                msg
            })
            .collect()
    }

    fn agent_context(&self, msg: &InboundMessage) -> String {
        let account = self.accounts.iter().find(|a| a.account.id == msg.account);
        let business = account.map_or_else(|| msg.account.to_string(), |a| a.account.phone_number_id.clone());
        let number = match InboundData::of(msg).and_then(|data| data.phone) {
            Some(phone) => format!("+{phone}"),
            None if crate::client::is_bsuid(msg.peer.as_str()) => {
                format!("WhatsApp user id {} (phone number hidden)", msg.peer)
            }
            None => format!("+{}", msg.peer),
        };
        let role = match account {
            Some(a) if a.account.access.allow_from.peers().any(|p| p == msg.peer.as_str()) => {
                "an allow-listed contact of the owner"
            }
            Some(a) if a.account.access.allow_from.allows_everyone() => "a member of the public (open access)",
            _ => "a contact approved by the owner",
        };
        let name = match &msg.sender_name {
            // The profile name is chosen by the user: quoted, never an instruction.
            Some(name) => format!("Their WhatsApp profile name is {:?} (self-chosen, unverified). ", name),
            None => String::new(),
        };
        let quoted = match (&msg.reply_to, &msg.kind) {
            (Some(id), clawbridge_core::MessageKind::Reaction) => format!("The reaction is to message {id}. "),
            (Some(id), _) => format!("The user is replying to (quoting) an earlier message, id {id}. "),
            (None, _) => String::new(),
        };
        format!(
            "You are answering a WhatsApp message sent to the business number with Kapso phone number id {business} \
             (clawbridge account {account}). The sender's number is {number}; they are {role}. {name}{quoted}\
             Your reply is delivered as WhatsApp text: use *bold*, _italic_, ~strikethrough~ and ```code``` if needed; \
             Markdown headings, tables and link syntax do not render. Long answers are split into several messages.",
            account = msg.account,
        )
    }
}

/// One phone number.
pub struct WhatsAppAccount {
    config: Arc<WhatsAppConfig>,
    account: AccountConfig,
    client: KapsoClient,
    /// Typing-indicator loops by peer (with a generation), stopped when the reply goes out.
    typing: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
}

impl std::fmt::Debug for WhatsAppAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppAccount").field("id", &self.account.id).finish_non_exhaustive()
    }
}

impl WhatsAppAccount {
    /// The API client of this number.
    pub fn client(&self) -> &KapsoClient {
        &self.client
    }

    /// Whether a typing indicator is being kept up for `peer` (until its reply or the cap).
    pub fn is_typing(&self, peer: &str) -> bool {
        self.typing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(peer)
    }

    fn stop_typing(&self, peer: &str) {
        let token = self.typing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(peer);
        if let Some((_, token)) = token {
            token.cancel();
        }
    }

    async fn send_media(
        &self,
        msg: &OutboundMessage,
        media: &MediaRef,
        reply_to: Option<&str>,
    ) -> Result<String, SendError> {
        let source = if let Some(url) = &media.url {
            MediaSource::Link(url.clone())
        } else if let Some(id) = &media.platform_id {
            MediaSource::Id(id.clone())
        } else if let Some(data) = &media.data_base64 {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| SendError::Permanent(format!("media data is not base64: {e}")))?;
            let mime = media.mime_type.clone().unwrap_or_else(|| default_mime(media.kind).to_owned());
            let name = media.file_name.clone().unwrap_or_else(|| "file".to_owned());
            MediaSource::Id(self.client.upload_media(bytes, &mime, &name).await?)
        } else {
            return Err(SendError::Permanent("media without a URL, id or data".to_owned()));
        };
        let sent = self
            .client
            .send_media(
                msg.peer.as_str(),
                media.kind,
                &source,
                media.caption.as_deref(),
                media.file_name.as_deref(),
                reply_to,
            )
            .await?;
        Ok(sent.message_id)
    }
}

fn default_mime(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image/jpeg",
        MediaKind::Video => "video/mp4",
        MediaKind::Audio => "audio/ogg",
        MediaKind::Document => "application/pdf",
        MediaKind::Sticker => "image/webp",
    }
}

#[async_trait]
impl Account for WhatsAppAccount {
    fn id(&self) -> AccountId {
        self.account.id.clone()
    }

    fn access_policy(&self) -> AccessPolicy {
        self.account.access.clone()
    }

    async fn run(&self, ctx: AccountContext) -> Result<(), ChannelError> {
        // From now on the plan's requests per minute hold for every replica on this store.
        self.client.share_rate_limit(Arc::new(crate::limiter::BridgeQuota(ctx.bridge.clone())));
        tracing::info!(
            account = %self.account.id,
            phone_number_id = %mask(&self.account.phone_number_id),
            mode = self.config.mode.as_str(),
            polling = self.config.polls(),
            "WhatsApp account started"
        );
        // A rejected key is reported at once instead of at the first reply.
        match self.client.check_credentials().await {
            Err(SendError::AuthExpired) => {
                let reason = format!(
                    "Kapso rejected the API key of account {} (KAPSO_API_KEY / whatsapp.accounts.{}.api_key): check it in the Kapso dashboard",
                    self.account.id, self.account.id
                );
                tracing::error!("{reason}");
                ctx.status.send_replace(AccountStatus::Degraded(reason));
            }
            Err(e) => tracing::warn!(account = %self.account.id, error = %e, "cannot reach Kapso yet"),
            Ok(()) => {}
        }
        if self.config.polls() {
            let settings = PollSettings { interval: self.config.poll_interval, overlap: self.config.poll_overlap };
            Poller::new(self.client.clone(), settings).run(ctx).await;
        } else {
            ctx.cancel.cancelled().await;
        }
        Ok(())
    }

    /// Sends text (quoting `reply_to`), media (link, media id or uploaded data), or what
    /// `extra.whatsapp` describes ([`OutboundSpec`]): `{"template": {name, language, params: {k: v}}}`,
    /// `{"reaction": {message_id, emoji}}` or `{"type": T, T: {...}}` for any other message.
    async fn send(&self, msg: &OutboundMessage, _key: &IdempotencyKey) -> Result<Receipt, SendError> {
        self.stop_typing(msg.peer.as_str());
        let to = msg.peer.as_str();
        let reply_to = msg.reply_to.as_ref().map(|r| r.as_str());
        if let Some(spec) = OutboundSpec::of(msg) {
            let sent = match spec {
                OutboundSpec::Template { name, language, params } => {
                    self.client.send_template(to, &name, &language, &params).await?
                }
                OutboundSpec::Reaction { message_id, emoji } => {
                    let target = message_id.as_deref().or(reply_to).unwrap_or_default();
                    self.client.send_reaction(to, target, &emoji).await?
                }
                OutboundSpec::Message { kind, object } => self.client.send_message(to, &kind, object, reply_to).await?,
                OutboundSpec::Nothing => {
                    return Err(SendError::Permanent("extra.whatsapp has no template, reaction or type".to_owned()));
                }
            };
            return Ok(Receipt { platform_message_id: Some(sent.message_id).filter(|id| !id.is_empty()) });
        }
        // Several media and a text are several WhatsApp messages: once one went out, a failure
        // of a later one must not make the outbox send the row (and the sent parts) again.
        let text = msg.text.as_deref().filter(|t| !t.trim().is_empty());
        let parts = msg.media.len() + usize::from(text.is_some());
        let mut sent: Vec<String> = Vec::new();
        let partial = |sent: &[String], error: SendError| {
            if sent.is_empty() {
                return error;
            }
            SendError::MaybeDelivered(format!(
                "{} of {parts} parts were sent ({}), then: {error}",
                sent.len(),
                sent.join(", ")
            ))
        };
        for (i, media) in msg.media.iter().enumerate() {
            match self.send_media(msg, media, if i == 0 { reply_to } else { None }).await {
                Ok(id) => sent.push(id),
                Err(e) => return Err(partial(&sent, e)),
            }
        }
        if let Some(text) = text {
            let quote = if msg.media.is_empty() { reply_to } else { None };
            match self.client.send_text(to, text, quote).await {
                Ok(done) => sent.push(done.message_id),
                Err(e) => return Err(partial(&sent, e)),
            }
        }
        let last = sent.pop();
        match last {
            Some(id) => Ok(Receipt { platform_message_id: Some(id).filter(|id| !id.is_empty()) }),
            None => Err(SendError::Permanent("nothing to send: no text and no media".to_owned())),
        }
    }

    /// A turn that ends without a reply (silent agent, refused sender, pairing) stops "typing…"
    /// at once instead of renewing it until [`TYPING_CAP`].
    async fn inbound_finished(&self, msg: &InboundMessage, _outcome: InboundOutcome, replies: usize) {
        if replies == 0 {
            self.stop_typing(msg.peer.as_str());
        }
    }

    /// Marks the message read and shows "typing…", renewed every 20 s until the reply is
    /// sent, the turn ends without one, or [`TYPING_CAP`] passes. Runs in its own task: never blocks the pipeline.
    async fn agent_started(&self, msg: &InboundMessage) {
        if !self.config.typing_indicator {
            return;
        }
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        let peer = msg.peer.to_string();
        let previous = self
            .typing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer.clone(), (generation, token.clone()));
        if let Some((_, previous)) = previous {
            previous.cancel();
        }
        let typing = self.typing.clone();
        let client = self.client.clone();
        let message_id = msg.message_id.to_string();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + TYPING_CAP;
            loop {
                if let Err(e) = client.mark_read(&message_id, true).await {
                    tracing::debug!(error = %e, "mark-read / typing indicator failed");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(TYPING_REFRESH) => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            let mut map = typing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.get(&peer).is_some_and(|(g, _)| *g == generation) {
                map.remove(&peer);
            }
        });
    }
}
