//! One tool call: `node.invoke.request` → arguments checked against the platform's limits → the
//! recipient policy and the rate limit → a durable row (the outbox, or the business-message
//! queue) under a key derived from the invocation → the outcome in words for the model.
//!
//! Every call is recorded in the store (`tools.calls`, 30 days) with the session that asked:
//! that record makes a repeated invocation (the gateway or the model retrying) answer with the
//! first outcome instead of sending again, and it is what `clawbridge status` lists.

use super::catalog::{COMMAND, SERVER, ToolName};
use super::settings::Recipients;
use crate::bridge::Wakers;
use crate::config::Config;
use crate::registry::Registry;
use crate::util::now_ms;
use clawbridge_bizmsg::brand::{BrandButton, BrandRequest, Targeting, prepare_brand};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, prepare_alimtalk};
use clawbridge_core::policy::normalize_peer;
use clawbridge_core::time::{DAY_MS, HOUR_MS};
use clawbridge_core::{
    AccountId, ChannelData, ChannelId, IdempotencyKey, Lane, MediaKind, MediaRef, OutboundMessage, PeerId,
    PlatformMessageId,
};
use clawbridge_store::{BizmsgState, NewBizmsg, NewOutbound, OutboxState, QuotaTake, SharedStore, StatePut};
use clawbridge_whatsapp::account::OutboundSpec;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Where calls are recorded (key: the call's key).
pub const CALLS: &str = "tools.calls";
/// Where peers that talked to the agent are remembered (key: the lane).
pub const PEERS: &str = "tools.peers";
/// How long a call's record (and so its repeat protection) lives.
const CALL_TTL_MS: i64 = 30 * DAY_MS;
/// The channel of the outbox rows that Kakao Talk Message API tool calls become.
pub const KAKAO_TALK_CHANNEL: &str = "kakao-talk";
/// The channel of the outbox rows that Kakao Event API tool calls become.
pub const KAKAO_EVENT_CHANNEL: &str = "kakao-event";
/// How often a waiting call looks at its row.
const POLL: Duration = Duration::from_millis(200);

/// One `node.invoke.request`, as far as the tools go.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The gateway's id of this dispatch (answered in `node.invoke.result`).
    pub id: String,
    /// This node.
    pub node_id: String,
    /// The node command (`mcp.tools.call.v1`).
    pub command: String,
    /// `params.server`.
    pub server: String,
    /// `params.tool`.
    pub tool: String,
    /// `params.arguments`.
    pub arguments: Value,
    /// The agent session that asked.
    pub session_key: Option<String>,
    /// The gateway's idempotency key of the call (the model's tool-call id).
    pub idempotency_key: Option<String>,
    /// How long the gateway waits for the result.
    pub timeout: Option<Duration>,
}

impl Invocation {
    /// Reads a `node.invoke.request` payload.
    ///
    /// # Errors
    /// When it has no `id`/`nodeId` (it cannot be answered at all).
    pub fn parse(payload: &Value) -> Result<Self, String> {
        let text = |key: &str| payload.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let id = text("id").ok_or("node.invoke.request without an id")?;
        let node_id = text("nodeId").ok_or("node.invoke.request without a nodeId")?;
        let params: Value = payload
            .get("paramsJSON")
            .and_then(Value::as_str)
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or(Value::Null);
        let field = |key: &str| params.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Self {
            id,
            node_id,
            command: text("command").unwrap_or_default(),
            server: field("server"),
            tool: field("tool"),
            arguments: params.get("arguments").cloned().unwrap_or(Value::Null),
            session_key: text("sessionKey"),
            idempotency_key: text("idempotencyKey"),
            timeout: payload.get("timeoutMs").and_then(Value::as_u64).map(Duration::from_millis),
        })
    }

    /// The key of this call's row and record: the same for every delivery of the same
    /// invocation (tool, session and the gateway's idempotency key, or the arguments when the
    /// gateway sent none).
    pub fn key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.tool.as_str(), self.session_key.as_deref().unwrap_or("")] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        match &self.idempotency_key {
            Some(key) => hash.update(key.as_bytes()),
            None => hash.update(self.arguments.to_string().as_bytes()),
        }
        format!("tool-{}", &hex::encode(hash.finalize())[..32])
    }
}

/// What the model gets back: a tool result, never an exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolResult {
    /// The outcome in words.
    pub text: String,
    /// A refusal or a failure (the model reads it; it is still a result).
    pub is_error: bool,
}

impl ToolResult {
    fn done(text: impl Into<String>) -> Self {
        Self { text: text.into(), is_error: false }
    }

    fn refused(text: impl Into<String>) -> Self {
        Self { text: text.into(), is_error: true }
    }

    /// The MCP `CallToolResult` the gateway hands to the model.
    pub fn payload(&self) -> Value {
        json!({"content": [{"type": "text", "text": self.text}], "isError": self.is_error})
    }
}

/// A call as recorded under [`CALLS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct CallRecord {
    /// The tool.
    pub tool: String,
    /// The session that asked.
    #[serde(default)]
    pub session: Option<String>,
    /// The recipient, masked.
    #[serde(default)]
    pub to: String,
    /// When it was asked.
    pub at: i64,
    /// `pending`, `queued`, `sent`, `failed` or `refused`.
    pub status: String,
    /// The row: `outbox:<id>` or `bizmsg:<id>`.
    #[serde(default)]
    pub row: Option<String>,
    /// What the model was told.
    #[serde(default)]
    pub result: String,
}

/// Executes tool calls.
#[derive(Clone)]
pub struct Tools {
    /// The configuration (`[tools]`, channels).
    pub config: Arc<Config>,
    /// The store.
    pub store: SharedStore,
    /// Wakes the outbox worker.
    pub wakers: Arc<Wakers>,
    /// The channels' accounts (their access policies).
    pub registry: Arc<Registry>,
    /// The published tools.
    pub published: BTreeSet<ToolName>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools").field("published", &self.published).finish_non_exhaustive()
    }
}

/// A checked call, ready to be stored.
struct Planned {
    tool: ToolName,
    /// Who receives it, for the policy.
    recipient: Recipient,
    /// Shown to the model and in the log.
    to_label: String,
    row: Row,
}

enum Recipient {
    /// A conversation peer of a channel (a number, a user key).
    Peer { channel: ChannelId, account: AccountId, peer: String },
    /// A Korean mobile number (business messages): known through WhatsApp conversations.
    Phone { national: String, international: String },
    /// The owner's own KakaoTalk ("chat with me").
    Owner,
    /// The owner's Kakao friends (uuids).
    Friends(Vec<String>),
}

enum Row {
    Outbox(OutboundMessage),
    Bizmsg(Box<NewBizmsg>),
}

impl Tools {
    /// Runs one call to its result.
    pub async fn call(&self, inv: &Invocation) -> ToolResult {
        let result = self.call_inner(inv).await;
        let level_error = result.is_error;
        tracing::info!(tool = %inv.tool, session = inv.session_key.as_deref().unwrap_or("-"),
            refused_or_failed = level_error, result = %result.text, "agent tool call");
        metrics::counter!("clawbridge_tool_calls_total", "tool" => inv.tool.clone(),
            "outcome" => if level_error { "error" } else { "ok" })
        .increment(1);
        result
    }

    async fn call_inner(&self, inv: &Invocation) -> ToolResult {
        if inv.command != COMMAND || inv.server != SERVER {
            return ToolResult::refused(format!(
                "clawbridge serves only {SERVER} tools through {COMMAND}, not {}/{}",
                inv.command, inv.server
            ));
        }
        let Some(tool) = inv.tool.parse::<ToolName>().ok().filter(|t| self.published.contains(t)) else {
            return ToolResult::refused(format!("{} is not a tool this bridge publishes", inv.tool));
        };
        let key = inv.key();
        let now = now_ms();
        let planned = match self.plan(tool, &inv.arguments, &key, now) {
            Ok(planned) => planned,
            Err(problem) => return ToolResult::refused(format!("{tool}: {problem}. Nothing was sent.")),
        };
        let record = CallRecord {
            tool: tool.to_string(),
            session: inv.session_key.clone(),
            to: planned.to_label.clone(),
            at: now,
            status: "pending".to_owned(),
            row: None,
            result: String::new(),
        };
        match self.put_record(&key, &record, true).await {
            Ok(true) => {}
            Ok(false) => return self.repeat(&key, inv.timeout).await,
            Err(e) => {
                return ToolResult::refused(format!(
                    "{tool}: the bridge cannot record the call ({e}); nothing was sent, try again later"
                ));
            }
        }
        match self.check(&planned).await {
            Ok(()) => {}
            Err(refusal) => {
                let result = ToolResult::refused(format!("{tool}: {refusal}. Nothing was sent."));
                let _ = self.finish(&key, record, "refused", None, &result).await;
                return result;
            }
        }
        let row = match self.store_row(&planned, &key).await {
            Ok(row) => row,
            Err(e) => {
                // Nothing durable happened: forget the call so that a retry can succeed.
                let _ = self.store.take_state(CALLS, &key, now_ms()).await;
                return ToolResult::refused(format!(
                    "{tool}: the bridge's store failed ({e}); nothing was sent, try again later"
                ));
            }
        };
        let mut record = record;
        record.row = Some(row.clone());
        record.status = "queued".to_owned();
        let _ = self.put_record(&key, &record, false).await;
        let result = self.wait(&row, &planned.to_label, self.wait_budget(inv.timeout)).await;
        let status = status_of(&result);
        let _ = self.finish(&key, record, status, Some(row), &result.1).await;
        result.1
    }

    fn wait_budget(&self, gateway_timeout: Option<Duration>) -> Duration {
        let wait = self.config.tools.wait;
        match gateway_timeout {
            // Leave the gateway time to hand the result on.
            Some(t) => wait.min(t.saturating_sub(Duration::from_secs(5))).max(Duration::from_secs(1)),
            None => wait,
        }
    }

    async fn put_record(&self, key: &str, record: &CallRecord, if_absent: bool) -> Result<bool, String> {
        let value = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let now = now_ms();
        let entry = StatePut { namespace: CALLS, key, value: &value, expires_at: Some(now + CALL_TTL_MS) };
        self.store.put_state(&entry, if_absent, now).await.map_err(|e| e.to_string())
    }

    async fn finish(
        &self,
        key: &str,
        mut record: CallRecord,
        status: &str,
        row: Option<String>,
        result: &ToolResult,
    ) -> Result<bool, String> {
        record.status = status.to_owned();
        record.row = row.or(record.row);
        record.result = result.text.clone();
        self.put_record(key, &record, false).await
    }

    /// The answer to an invocation seen before: its row's outcome now, never a second send.
    async fn repeat(&self, key: &str, timeout: Option<Duration>) -> ToolResult {
        let deadline = tokio::time::Instant::now() + self.wait_budget(timeout);
        loop {
            let record: Option<CallRecord> = match self.store.get_state(CALLS, key, now_ms()).await {
                Ok(raw) => raw.and_then(|raw| serde_json::from_str(&raw).ok()),
                Err(e) => return ToolResult::refused(format!("the bridge cannot read the earlier call ({e})")),
            };
            let Some(record) = record else {
                return ToolResult::refused("this call was made before but its record is gone; nothing was sent");
            };
            let note = "(the same call was made before: not sent again)";
            match (&record.row, record.status.as_str()) {
                (_, "refused") => {
                    return ToolResult::refused(format!("{} {note}", record.result));
                }
                (Some(row), _) => {
                    let (_, mut result) = self
                        .wait(row, &record.to, deadline.saturating_duration_since(tokio::time::Instant::now()))
                        .await;
                    result.text = format!("{} {note}", result.text);
                    return result;
                }
                (None, _) if tokio::time::Instant::now() >= deadline => {
                    return ToolResult::done(format!("the same call is still being handled for {} {note}", record.to));
                }
                (None, _) => tokio::time::sleep(POLL).await,
            }
        }
    }

    // ---- arguments -------------------------------------------------------------------------

    fn plan(&self, tool: ToolName, args: &Value, key: &str, now: i64) -> Result<Planned, String> {
        match tool {
            ToolName::WhatsappSend => self.plan_whatsapp(parse(args)?),
            ToolName::KakaoSendMe => {
                let args: TalkArgs = parse(args)?;
                if args.to.is_some() {
                    return Err("kakao_send_me has no recipient (it always goes to the owner's own chat)".to_owned());
                }
                let extra = talk_extra(&args, &[])?;
                Ok(Planned {
                    tool,
                    recipient: Recipient::Owner,
                    to_label: "your KakaoTalk chat with me".to_owned(),
                    row: Row::Outbox(outbound(KAKAO_TALK_CHANNEL, "default", "me", extra)),
                })
            }
            ToolName::KakaoSendFriends => {
                let args: TalkArgs = parse(args)?;
                let to: Vec<String> =
                    args.to.clone().unwrap_or_default().into_iter().map(|u| u.trim().to_owned()).collect();
                if to.is_empty() || to.len() > 5 || to.iter().any(String::is_empty) {
                    return Err("to must list 1 to 5 friend uuids".to_owned());
                }
                let extra = talk_extra(&args, &to)?;
                let label = format!("{} Kakao friend(s)", to.len());
                Ok(Planned {
                    tool,
                    recipient: Recipient::Friends(to.clone()),
                    to_label: label,
                    row: Row::Outbox(outbound(
                        KAKAO_TALK_CHANNEL,
                        "default",
                        &format!("friends:{}", to.join(",")),
                        extra,
                    )),
                })
            }
            ToolName::KakaoPush => self.plan_push(parse(args)?),
            ToolName::AlimtalkSend => self.plan_alimtalk(parse(args)?, key, now),
            ToolName::BrandSend => self.plan_brand(parse(args)?, key, now),
        }
    }

    fn plan_whatsapp(&self, args: WhatsappArgs) -> Result<Planned, String> {
        let whatsapp = self.config.whatsapp().ok_or("WhatsApp is not configured")?;
        let account = match &args.account {
            Some(id) => whatsapp.accounts.iter().find(|a| a.id.as_str() == id).ok_or_else(|| {
                format!(
                    "no WhatsApp account {id:?} (the accounts are {})",
                    ids(whatsapp.accounts.iter().map(|a| a.id.to_string()))
                )
            })?,
            None => whatsapp.accounts.first().ok_or("no WhatsApp account is configured")?,
        };
        let peer = phone_digits(&args.to)?;
        let chosen = [args.text.is_some(), args.media.is_some(), args.template.is_some(), args.reaction.is_some()];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err("give exactly one of text, media, template or reaction".to_owned());
        }
        let mut msg = outbound("whatsapp", account.id.as_str(), &peer, ChannelData::default());
        msg.reply_to = args.reply_to.as_deref().map(|r| PlatformMessageId::new(r.trim()));
        if let Some(text) = &args.text {
            let count = text.chars().count();
            if text.trim().is_empty() || count > 4096 {
                return Err(format!("text must be 1 to 4096 characters (it is {count})"));
            }
            msg.text = Some(text.clone());
        }
        if let Some(media) = &args.media {
            if !media.url.starts_with("https://") {
                return Err("media.url must be an https:// URL".to_owned());
            }
            let kind = match media.kind.as_str() {
                "image" => MediaKind::Image,
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio,
                "document" => MediaKind::Document,
                "sticker" => MediaKind::Sticker,
                other => return Err(format!("media.kind {other:?}: use image, video, audio, document or sticker")),
            };
            if media.caption.as_ref().is_some_and(|c| c.chars().count() > 1024) {
                return Err("media.caption must be at most 1024 characters".to_owned());
            }
            msg.media.push(MediaRef {
                kind,
                url: Some(media.url.clone()),
                caption: media.caption.clone(),
                file_name: media.filename.clone(),
                ..MediaRef::default()
            });
        }
        if let Some(template) = &args.template {
            let name = template.name.trim();
            if name.is_empty()
                || name.len() > 512
                || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!("template.name {name:?} is not a template name (lowercase letters, digits, _)"));
            }
            let params = template.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let language = template.language.clone().unwrap_or_else(|| "en_US".to_owned());
            msg.extra = OutboundSpec::Template { name: name.to_owned(), language, params }.to_extra();
        }
        if let Some(reaction) = &args.reaction {
            if !reaction.message_id.starts_with("wamid.") {
                return Err("reaction.message_id must be a WhatsApp message id (wamid.…)".to_owned());
            }
            msg.extra =
                OutboundSpec::Reaction { message_id: Some(reaction.message_id.clone()), emoji: reaction.emoji.clone() }
                    .to_extra();
        }
        Ok(Planned {
            tool: ToolName::WhatsappSend,
            recipient: Recipient::Peer {
                channel: ChannelId::new("whatsapp"),
                account: account.id.clone(),
                peer: peer.clone(),
            },
            to_label: masked_phone(&peer),
            row: Row::Outbox(msg),
        })
    }

    fn plan_push(&self, args: PushArgs) -> Result<Planned, String> {
        let kakao = self.config.channel::<clawbridge_kakao::KakaoConfig>(clawbridge_kakao::chatbot::CHANNEL);
        let chatbot = kakao.and_then(|k| k.chatbot.as_ref()).ok_or("the KakaoTalk chatbot is not configured")?;
        let bot = match &args.account {
            Some(id) => {
                chatbot.bots.iter().find(|b| &b.account == id).ok_or_else(|| format!("no Kakao bot account {id:?}"))?
            }
            None => chatbot.bots.first().ok_or("no Kakao bot is configured")?,
        };
        let user = args.user.trim();
        if user.is_empty() || user.len() > 128 {
            return Err("user must be the user's key (1 to 128 characters)".to_owned());
        }
        let event = args.event.trim();
        if event.is_empty() || event.len() > 64 {
            return Err("event must be an Event block's event name (1 to 64 characters)".to_owned());
        }
        let user_type = args.user_type.as_deref().unwrap_or("plusfriendUserKey");
        if !matches!(user_type, "plusfriendUserKey" | "botUserKey" | "appUserId") {
            return Err(format!("user_type {user_type:?}: use plusfriendUserKey, botUserKey or appUserId"));
        }
        let extra = ChannelData::from(json!({"event": {"name": event, "data": args.data, "user_type": user_type}}));
        Ok(Planned {
            tool: ToolName::KakaoPush,
            recipient: Recipient::Peer {
                channel: ChannelId::new(clawbridge_kakao::chatbot::CHANNEL),
                account: AccountId::new(bot.account.clone()),
                peer: user.to_owned(),
            },
            to_label: format!("Kakao user {}", clawbridge_core::ids::mask(user)),
            row: Row::Outbox(outbound(KAKAO_EVENT_CHANNEL, &bot.account, user, extra)),
        })
    }

    fn bizmsg(&self) -> Result<&BizmsgConfig, String> {
        self.config
            .channel::<BizmsgConfig>(clawbridge_bizmsg::plugin::ID)
            .ok_or_else(|| "business messages are not configured".to_owned())
    }

    fn plan_alimtalk(&self, args: AlimtalkArgs, key: &str, now: i64) -> Result<Planned, String> {
        let bizmsg = self.bizmsg()?;
        let fallback = match args.fallback.as_deref() {
            None | Some("template") => FallbackChoice::Template,
            Some(other) => other.parse().map_err(|e: String| e.replace("--fallback", "fallback"))?,
        };
        let request = AlimtalkRequest {
            account: args.account.unwrap_or_else(|| "default".to_owned()),
            to: args.to,
            template: args.template,
            variables: args.variables,
            fallback,
            at: None,
            idempotency_key: Some(key.to_owned()),
            origin: "tool".to_owned(),
        };
        let prepared = prepare_alimtalk(bizmsg, &request, now).map_err(|e| e.replace("--to", "to"))?;
        let recipient = phone_recipient(prepared.recipient.national(), prepared.recipient.international());
        Ok(Planned {
            tool: ToolName::AlimtalkSend,
            recipient,
            to_label: prepared.recipient.masked(),
            row: Row::Bizmsg(Box::new(crate::commands::bizmsg::row(&prepared))),
        })
    }

    fn plan_brand(&self, args: BrandArgs, key: &str, now: i64) -> Result<Planned, String> {
        let bizmsg = self.bizmsg()?;
        let targeting = match args.targeting.as_deref() {
            None => Targeting::Friends,
            Some(t) => t.parse().map_err(|e: String| e.replace("--targeting", "targeting"))?,
        };
        if args.text.is_some() == args.template.is_some() {
            return Err("give text or template (one of them)".to_owned());
        }
        let request = BrandRequest {
            account: args.account.unwrap_or_else(|| "default".to_owned()),
            to: args.to,
            text: args.text.unwrap_or_default(),
            template: args.template,
            variables: args.variables,
            image: None,
            buttons: args.buttons.into_iter().map(|b| BrandButton { name: b.name, link_mo: b.url }).collect(),
            targeting,
            fallback: false,
            at: None,
            idempotency_key: Some(key.to_owned()),
            origin: "tool".to_owned(),
        };
        let prepared = prepare_brand(bizmsg, &request, now).map_err(|e| e.replace("--to", "to"))?;
        let recipient =
            phone_recipient(prepared.prepared.recipient.national(), prepared.prepared.recipient.international());
        Ok(Planned {
            tool: ToolName::BrandSend,
            recipient,
            to_label: prepared.prepared.recipient.masked(),
            row: Row::Bizmsg(Box::new(crate::commands::bizmsg::row(&prepared.prepared))),
        })
    }

    // ---- policy ----------------------------------------------------------------------------

    /// The recipient policy and the rate limit.
    async fn check(&self, planned: &Planned) -> Result<(), String> {
        self.check_recipient(planned).await?;
        self.check_rate(planned.tool).await
    }

    async fn check_recipient(&self, planned: &Planned) -> Result<(), String> {
        let tools = &self.config.tools;
        let tool = planned.tool;
        let mode = tools.recipients_of(tool);
        let allowed = |peer: &str| tools.explicitly_allows(tool, &normalize_peer(peer));
        let refusal = |who: &str| match mode {
            Recipients::Owner => format!(
                "{who} is not a recipient this tool may reach: the bridge owner allows only the owner and listed \
                 recipients ([tools] recipients = \"owner\")"
            ),
            _ => format!(
                "{who} is not a recipient this tool may reach: only people who have talked with this bridge, who \
                 are approved or listed in allowFrom, and the owner can be messaged; ask the owner to add them to \
                 [tools] allow"
            ),
        };
        match &planned.recipient {
            Recipient::Owner => Ok(()),
            _ if mode == Recipients::Any => Ok(()),
            Recipient::Friends(uuids) => match uuids.iter().find(|u| !allowed(u)) {
                None => Ok(()),
                Some(_) => Err(refusal("a Kakao friend who is not listed in [tools] allow")),
            },
            Recipient::Peer { channel, account, peer } => {
                if allowed(peer) {
                    return Ok(());
                }
                if mode == Recipients::Owner {
                    return Err(refusal(&planned.to_label));
                }
                if self.known_peer(channel, account, peer).await? { Ok(()) } else { Err(refusal(&planned.to_label)) }
            }
            Recipient::Phone { national, international } => {
                if allowed(national) || allowed(international) {
                    return Ok(());
                }
                if mode == Recipients::Owner {
                    return Err(refusal(&planned.to_label));
                }
                let whatsapp = ChannelId::new("whatsapp");
                let accounts: Vec<AccountId> = self
                    .config
                    .whatsapp()
                    .map(|w| w.accounts.iter().map(|a| a.id.clone()).collect())
                    .unwrap_or_default();
                for account in accounts {
                    if self.known_peer(&whatsapp, &account, international).await? {
                        return Ok(());
                    }
                }
                Err(refusal(&planned.to_label))
            }
        }
    }

    /// Listed in the account's `allowFrom` (not `*`), approved by pairing, or talked to the agent.
    async fn known_peer(&self, channel: &ChannelId, account: &AccountId, peer: &str) -> Result<bool, String> {
        let peer_id = PeerId::new(normalize_peer(peer));
        if let Some(acc) = self.registry.account(channel, account) {
            let policy = acc.access_policy();
            if policy.allow_from.peers().any(|p| p == peer_id.as_str()) {
                return Ok(true);
            }
        }
        let store_error =
            |e: clawbridge_store::StoreError| format!("the bridge cannot check the recipient ({e}); try again later");
        if self.store.is_approved(channel, account, &peer_id).await.map_err(store_error)? {
            return Ok(true);
        }
        let lane = Lane::of(channel, account, &peer_id);
        Ok(self.store.get_state(PEERS, lane.as_str(), now_ms()).await.map_err(store_error)?.is_some())
    }

    async fn check_rate(&self, tool: ToolName) -> Result<(), String> {
        let limit = self.config.tools.rate_of(tool);
        let now = now_ms();
        let window = now - now.rem_euclid(HOUR_MS);
        let key = format!("tools.rate/{tool}");
        match self.store.take_quota(&key, window, HOUR_MS, u64::from(limit), 1, now).await {
            Ok(QuotaTake::Granted { .. }) => Ok(()),
            Ok(QuotaTake::Refused { .. }) => {
                let minutes = (window + HOUR_MS - now + 59_999) / 60_000;
                Err(format!(
                    "the rate limit of {limit} sends per hour for {tool} is reached; the next send is possible in \
                     {minutes} minute(s)"
                ))
            }
            Err(e) => Err(format!("the bridge cannot check its rate limit ({e}); try again later")),
        }
    }

    // ---- rows ------------------------------------------------------------------------------

    async fn store_row(&self, planned: &Planned, key: &str) -> Result<String, String> {
        let now = now_ms();
        match &planned.row {
            Row::Outbox(message) => {
                let row = NewOutbound {
                    idempotency_key: IdempotencyKey::new(key),
                    message: message.clone(),
                    inbound_id: None,
                    not_before: None,
                };
                let ids = self.store.enqueue_outbound(&[row], now).await.map_err(|e| e.to_string())?;
                self.wakers.outbox.notify_one();
                ids.first().map(|id| format!("outbox:{id}")).ok_or_else(|| "the store returned no row".to_owned())
            }
            Row::Bizmsg(row) => {
                let stored = self
                    .store
                    .enqueue_bizmsg(std::slice::from_ref(row.as_ref()), now)
                    .await
                    .map_err(|e| e.to_string())?;
                stored.first().map(|s| format!("bizmsg:{}", s.id)).ok_or_else(|| "the store returned no row".to_owned())
            }
        }
    }

    /// Waits up to `budget` for the row to be sent or given up; returns (status, result).
    async fn wait(&self, row: &str, to: &str, budget: Duration) -> (&'static str, ToolResult) {
        let deadline = tokio::time::Instant::now() + budget;
        let (kind, id) = row.split_once(':').unwrap_or(("", ""));
        let Ok(id) = id.parse::<i64>() else {
            return ("failed", ToolResult::refused(format!("unknown row {row}")));
        };
        loop {
            let now_done = match kind {
                "outbox" => match self.store.get_outbound(id).await {
                    Ok(Some(r)) => match r.state {
                        OutboxState::Sent => {
                            Some(("sent", ToolResult::done(sent_text(to, r.platform_message_id.as_deref()))))
                        }
                        OutboxState::Dead => Some((
                            "failed",
                            ToolResult::refused(format!(
                                "not sent to {to}: {}",
                                r.last_error.unwrap_or_else(|| "given up".to_owned())
                            )),
                        )),
                        _ if tokio::time::Instant::now() >= deadline => Some((
                            "queued",
                            ToolResult::done(match r.last_error {
                                Some(e) => format!(
                                    "queued for {to}, not sent yet (last attempt: {e}); the bridge keeps retrying — do not call again"
                                ),
                                None => format!("queued for {to}; the bridge sends it shortly — do not call again"),
                            }),
                        )),
                        _ => None,
                    },
                    Ok(None) => Some(("failed", ToolResult::refused(format!("the row of this send is gone ({row})")))),
                    Err(e) => Some((
                        "queued",
                        ToolResult::done(format!("queued for {to}; its state cannot be read now ({e})")),
                    )),
                },
                _ => match self.store.get_bizmsg(id).await {
                    Ok(Some(r)) => match r.state {
                        BizmsgState::Accepted => Some((
                            "sent",
                            ToolResult::done(format!(
                                "accepted by the dealer for {to} (id {id}{}); the delivery result follows (`clawbridge alimtalk status {id}`)",
                                r.dealer_id.map(|d| format!(", dealer {d}")).unwrap_or_default()
                            )),
                        )),
                        BizmsgState::Dead => Some((
                            "failed",
                            ToolResult::refused(format!(
                                "not sent to {to}: {}",
                                r.last_error.unwrap_or_else(|| "given up".to_owned())
                            )),
                        )),
                        _ if r.next_at > now_ms() + 60_000 => Some((
                            "queued",
                            ToolResult::done(format!(
                                "held for {to} (id {id}) until {}: ads are not delivered at night",
                                clawbridge_bizmsg::window::kst_label(r.next_at)
                            )),
                        )),
                        _ if tokio::time::Instant::now() >= deadline => Some((
                            "queued",
                            ToolResult::done(format!(
                                "queued for {to} (id {id}); the bridge sends it shortly — do not call again"
                            )),
                        )),
                        _ => None,
                    },
                    Ok(None) => Some(("failed", ToolResult::refused(format!("the row of this send is gone ({row})")))),
                    Err(e) => Some((
                        "queued",
                        ToolResult::done(format!("queued for {to} (id {id}); its state cannot be read now ({e})")),
                    )),
                },
            };
            if let Some(done) = now_done {
                return done;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn status_of(result: &(&'static str, ToolResult)) -> &'static str {
    result.0
}

fn sent_text(to: &str, id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => format!("sent to {to} (id {id})"),
        _ => format!("sent to {to}"),
    }
}

/// `+…4567`: enough for the model and the log to tell recipients apart.
pub fn masked_phone(digits: &str) -> String {
    let tail: String = digits.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("+…{tail}")
}

fn phone_digits(raw: &str) -> Result<String, String> {
    let digits = normalize_peer(raw);
    let ok = (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(digits)
    } else {
        Err(format!("to {raw:?} is not a phone number with its country code, e.g. +15551234567"))
    }
}

fn phone_recipient(national: &str, international: String) -> Recipient {
    Recipient::Phone { national: national.to_owned(), international }
}

fn ids(list: impl Iterator<Item = String>) -> String {
    list.collect::<Vec<_>>().join(", ")
}

fn outbound(channel: &str, account: &str, peer: &str, extra: ChannelData) -> OutboundMessage {
    OutboundMessage {
        channel: ChannelId::new(channel),
        account: AccountId::new(account),
        peer: PeerId::new(peer),
        text: None,
        media: Vec::new(),
        reply_to: None,
        extra,
    }
}

fn parse<T: serde::de::DeserializeOwned>(args: &Value) -> Result<T, String> {
    let args = if args.is_null() { json!({}) } else { args.clone() };
    serde_json::from_value(args).map_err(|e| format!("invalid arguments: {e}"))
}

fn talk_extra(args: &TalkArgs, to: &[String]) -> Result<ChannelData, String> {
    use clawbridge_kakao::talk::template::{Link, Template};
    let link = args.link.as_deref().map(Link::web).unwrap_or_default();
    let mut template = Template::text(&args.text, link);
    if let Some(title) = &args.button_title {
        template = template.button_title(title);
    }
    template.validate().map_err(|e| e.to_string())?;
    Ok(ChannelData::from(
        json!({"talk": {"to": to, "text": args.text, "link": args.link, "button_title": args.button_title}}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhatsappArgs {
    to: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    media: Option<MediaArgs>,
    #[serde(default)]
    template: Option<TemplateArgs>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    reaction: Option<ReactionArgs>,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaArgs {
    url: String,
    kind: String,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateArgs {
    name: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactionArgs {
    message_id: String,
    emoji: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TalkArgs {
    #[serde(default)]
    to: Option<Vec<String>>,
    text: String,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    button_title: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushArgs {
    user: String,
    event: String,
    #[serde(default)]
    user_type: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlimtalkArgs {
    to: String,
    template: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    fallback: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrandArgs {
    to: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    buttons: Vec<ButtonArgs>,
    #[serde(default)]
    targeting: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ButtonArgs {
    name: String,
    url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(args: Value, idem: Option<&str>) -> Value {
        let params = json!({"server": SERVER, "tool": "whatsapp_send", "arguments": args});
        let mut payload = json!({"id": "inv-1", "nodeId": "n1", "command": COMMAND, "paramsJSON": params.to_string(),
                                 "timeoutMs": 119_958, "sessionKey": "agent:main:x"});
        if let Some(idem) = idem {
            payload["idempotencyKey"] = json!(idem);
        }
        payload
    }

    #[test]
    fn invocations_parse_and_keys_follow_the_invocation() {
        let a = Invocation::parse(&invoke(json!({"to": "+1555", "text": "a"}), Some("call_1"))).unwrap();
        assert_eq!((a.tool.as_str(), a.server.as_str(), a.command.as_str()), ("whatsapp_send", SERVER, COMMAND));
        assert_eq!(a.timeout, Some(Duration::from_millis(119_958)));
        assert_eq!(a.arguments["text"], "a");
        let redelivered = Invocation { id: "inv-2".into(), ..a.clone() };
        assert_eq!(a.key(), redelivered.key(), "a new dispatch of the same call has the same key");
        let other_call = Invocation::parse(&invoke(json!({"to": "+1555", "text": "a"}), Some("call_2"))).unwrap();
        assert_ne!(a.key(), other_call.key());
        let other_session = Invocation { session_key: Some("agent:main:y".into()), ..a.clone() };
        assert_ne!(a.key(), other_session.key());
        let no_idem = Invocation::parse(&invoke(json!({"to": "+1555", "text": "a"}), None)).unwrap();
        let no_idem_other = Invocation::parse(&invoke(json!({"to": "+1555", "text": "b"}), None)).unwrap();
        assert_ne!(no_idem.key(), no_idem_other.key(), "without a gateway key the content decides");
        assert!(Invocation::parse(&json!({"nodeId": "n"})).is_err());
    }

    #[test]
    fn results_are_mcp_call_tool_results() {
        let r = ToolResult::refused("no");
        assert_eq!(r.payload(), json!({"content": [{"type": "text", "text": "no"}], "isError": true}));
        assert_eq!(masked_phone("15551234567"), "+…4567");
        assert!(phone_digits("+1 (555) 123-4567").is_ok());
        assert!(phone_digits("+12").is_err() && phone_digits("hello").is_err());
    }
}
