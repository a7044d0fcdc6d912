//! `clawbridge alimtalk|brand|friendtalk …`: business messages from the command line (operators,
//! scripts, an agent's exec tool). A send is checked (template, variables, number, ad rules),
//! stored as one durable row and answered `accepted (id: N)`; the daemon's business-message
//! worker sends it (see [`crate::pipeline::bizmsg`]), so a command run twice, or a daemon that
//! restarts, never sends twice. `alimtalk status ID` reads the row back.

use crate::config::Config;
use crate::util::now_ms;
use clap::{Args, Subcommand};
use clawbridge_bizmsg::brand::{BrandButton, BrandRequest, ImageSource, MAX_IMAGE_BYTES, Targeting, prepare_brand};
use clawbridge_bizmsg::client::{DEFAULT_TIMEOUT, DealerClient};
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_bizmsg::dealer::DealerKind;
use clawbridge_bizmsg::send::Product;
use clawbridge_bizmsg::send::{AlimtalkRequest, FallbackChoice, Prepared, prepare_alimtalk};
use clawbridge_bizmsg::template::{DealerTemplate, TemplateStatus};
use clawbridge_bizmsg::window::{kst_label, parse_kst};
use clawbridge_bizmsg::{PhoneNumber, plugin::ID};
use clawbridge_core::time::DAY_MS;
use clawbridge_store::{BizmsgRow, BizmsgState, NewBizmsg, SharedStore, StatePut};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Where `templates sync` keeps what the dealer has, per sender key, for a day.
const SYNCED: &str = "bizmsg.templates";
/// Where an uploaded Brand Message image's dealer id is kept, by dealer and image digest, so the
/// same image sent again (the same command run twice) is not uploaded again.
const UPLOADED: &str = "bizmsg.images";

/// `clawbridge alimtalk …`
#[derive(Debug, Subcommand)]
pub enum AlimtalkAction {
    /// Send an approved template to a phone number; prints `accepted (id: N)`.
    Send(Box<AlimtalkSendArgs>),
    /// The per-recipient result of a send: dealer, Kakao result code and its meaning, fallback.
    Status {
        /// The id `send` printed.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The AlimTalk and Brand Message templates: declared ([[bizmsg.templates]],
    /// [[bizmsg.brandTemplates]]) and as the dealer has them.
    Templates {
        /// Templates action.
        #[command(subcommand)]
        action: TemplatesAction,
    },
}

/// `clawbridge alimtalk templates …`
#[derive(Debug, Subcommand)]
pub enum TemplatesAction {
    /// Code, product, review status and variables of every template.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the templates and their review status from the dealer (kept for 24 hours).
    Sync,
}

/// What every send takes.
#[derive(Debug, Clone, Args)]
pub struct SendCommon {
    /// Recipient: 010-1234-5678, 01012345678, +82 10-1234-5678 or 821012345678.
    #[arg(long, value_name = "PHONE")]
    pub to: String,
    /// Deliver at this KST time instead of now: "2026-12-24 09:00" (Brand Messages never 20:50–08:00).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The sender ([bizmsg.accounts.<id>]); the default one otherwise.
    #[arg(long, default_value = "default")]
    pub account: String,
    /// Your key for this send (an order number): the same key sends once.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `clawbridge alimtalk send`.
#[derive(Debug, Clone, Args)]
pub struct AlimtalkSendArgs {
    /// Recipient, schedule, sender, key, output.
    #[command(flatten)]
    pub common: SendCommon,
    /// The template code (under [[bizmsg.templates]]).
    #[arg(long, value_name = "CODE")]
    pub template: String,
    /// A template variable, NAME=VALUE; repeat for each.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// SMS/LMS when the AlimTalk cannot be delivered: sms, lms or none (default: the template's fallbackConfig).
    #[arg(long, value_name = "sms|lms|none")]
    pub fallback: Option<String>,
}

/// `clawbridge brand …` / `clawbridge friendtalk …`
#[derive(Debug, Subcommand)]
pub enum BrandAction {
    /// Send a Brand Message; prints `accepted (id: N)` (and when it goes, if held).
    Send(Box<BrandSendArgs>),
}

/// `clawbridge brand send`.
#[derive(Debug, Clone, Args)]
pub struct BrandSendArgs {
    /// Recipient, schedule, sender, key, output.
    #[command(flatten)]
    pub common: SendCommon,
    /// The message (at most 1,300 characters and 99 line breaks; with --image 400 and 29).
    #[arg(long, conflicts_with = "template")]
    pub text: Option<String>,
    /// A Brand Message template (under [[bizmsg.brandTemplates]]) instead of --text.
    #[arg(long, value_name = "CODE")]
    pub template: Option<String>,
    /// A template variable, NAME=VALUE (with --template); repeat for each.
    #[arg(long = "var", value_name = "NAME=VALUE", requires = "template")]
    pub vars: Vec<String>,
    /// An image (JPEG or PNG, at most 5 MB, 2:1 to 3:4): a file, uploaded to the dealer once, or a
    /// URL (Infobip takes it as it is; NHN and Solapi get it downloaded and uploaded).
    #[arg(long, value_name = "FILE|URL")]
    pub image: Option<String>,
    /// A web-link button, "name|https://…"; repeat (at most 5).
    #[arg(long = "button", value_name = "NAME|URL")]
    pub buttons: Vec<String>,
    /// Who receives it: I channel friends (default), M marketing-consented users, N consented non-friends.
    #[arg(long, value_name = "I|M|N")]
    pub targeting: Option<String>,
    /// Send the text as an ad LMS to those the Brand Message cannot reach (needs the 080 number).
    #[arg(long)]
    pub fallback: bool,
}

fn settings(config: &Config) -> anyhow::Result<&BizmsgConfig> {
    config.channel::<BizmsgConfig>(ID).ok_or_else(|| {
        anyhow::anyhow!(
            "business messages are not configured: set BIZMSG_DEALER (nhn, solapi or infobip), BIZMSG_SENDER_KEY and \
             the dealer's credentials, or a [bizmsg] table (see the README)"
        )
    })
}

async fn store(config: &Config) -> anyhow::Result<SharedStore> {
    config.ensure_state_dir()?;
    Ok(clawbridge_store::open(&config.bridge.database_url).await?)
}

fn variables(vars: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for var in vars {
        let (name, value) = var
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--var {var:?}: write it as NAME=VALUE, e.g. --var name=홍길동"))?;
        if out.insert(name.trim().to_owned(), value.to_owned()).is_some() {
            anyhow::bail!("--var {name} is given twice");
        }
    }
    Ok(out)
}

/// The row of a checked send (the CLI and the `alimtalk_send` / `brand_send` tools store the same).
pub fn row(p: &Prepared) -> NewBizmsg {
    NewBizmsg {
        idempotency_key: p.idempotency_key.clone(),
        account: p.account.clone(),
        product: p.product.as_str().to_owned(),
        dealer: p.dealer.id().to_owned(),
        recipient: p.recipient.national().to_owned(),
        template_code: p.template_code.clone(),
        payload: p.payload.clone(),
        origin: p.origin.clone(),
        not_before: p.not_before,
    }
}

/// Stores the row and prints `accepted (id: N)`; a repeat of an earlier send says so.
async fn accept(config: &Config, prepared: &Prepared, held_until: Option<i64>, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let stored = store.enqueue_bizmsg(&[row(prepared)], now_ms()).await?;
    let stored = stored.first().copied().ok_or_else(|| anyhow::anyhow!("the store returned no row"))?;
    tracing::info!(id = stored.id, to = %prepared.recipient, new = stored.new, "business message stored");
    if json {
        let value = serde_json::json!({
            "id": stored.id,
            "new": stored.new,
            "to": prepared.recipient.masked(),
            "notBefore": prepared.not_before,
            "heldUntil": held_until.map(kst_label),
        });
        println!("{value}");
    } else {
        let repeat = if stored.new { "" } else { ", the same send as before: not sent again" };
        match held_until {
            Some(at) => println!(
                "accepted (id: {}{repeat}); held until {} (ads are not delivered 20:50–08:00 KST)",
                stored.id,
                kst_label(at)
            ),
            None => println!("accepted (id: {}{repeat})", stored.id),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `clawbridge alimtalk …`.
///
/// # Errors
/// Configuration, validation and store failures, each with the fix.
pub async fn alimtalk(config: &Config, action: AlimtalkAction) -> anyhow::Result<ExitCode> {
    match action {
        AlimtalkAction::Send(args) => {
            let bizmsg = settings(config)?;
            let now = now_ms();
            let request = AlimtalkRequest {
                account: args.common.account.clone(),
                to: args.common.to.clone(),
                template: args.template.clone(),
                variables: variables(&args.vars)?,
                fallback: args
                    .fallback
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?
                    .unwrap_or(FallbackChoice::Template),
                at: args.common.at.as_deref().map(parse_kst).transpose().map_err(anyhow::Error::msg)?,
                idempotency_key: args.common.idempotency_key.clone(),
                origin: "cli".to_owned(),
            };
            let prepared = prepare_alimtalk(bizmsg, &request, now).map_err(anyhow::Error::msg)?;
            check_synced(config, bizmsg, &args.common.account, &args.template).await?;
            accept(config, &prepared, None, args.common.json).await
        }
        AlimtalkAction::Status { id, json } => status(config, id, json).await,
        AlimtalkAction::Templates { action } => templates(config, action).await,
    }
}

/// What the last `templates sync` found for `account`, if it is not older than a day.
async fn synced(config: &Config, bizmsg: &BizmsgConfig, account: &str) -> anyhow::Result<Option<Vec<DealerTemplate>>> {
    let sender = bizmsg.account(account).map_err(anyhow::Error::msg)?;
    let store = store(config).await?;
    let synced = store.get_state(SYNCED, &sender.sender.sender_key, now_ms()).await?;
    Ok(synced.map(|v| serde_json::from_str(&v).unwrap_or_default()))
}

/// The dealer's template of `product` that a declared one is: by code, or (Solapi) by its
/// template id.
fn find_synced<'a>(
    synced: &'a [DealerTemplate],
    product: Product,
    code: &str,
    template_id: Option<&str>,
) -> Option<&'a DealerTemplate> {
    synced.iter().find(|t| t.product == product && (t.code == code || Some(t.code.as_str()) == template_id))
}

/// Refuses a template that the last sync found unapproved or different (3016 otherwise).
async fn check_synced(config: &Config, bizmsg: &BizmsgConfig, account: &str, code: &str) -> anyhow::Result<()> {
    let Some(synced) = synced(config, bizmsg, account).await? else { return Ok(()) };
    let template = bizmsg.templates.get(code).map_err(|e| anyhow::anyhow!("{e}"))?;
    if bizmsg.dealer.kind() == DealerKind::Infobip {
        // Infobip lists no AlimTalk templates: a sync says nothing about them.
        return Ok(());
    }
    match find_synced(&synced, Product::Alimtalk, code, template.template_id.as_deref()) {
        Some(dealer) => template.check_against(dealer).map_err(|e| anyhow::anyhow!("{e}")),
        None => anyhow::bail!(
            "AlimTalk template {code:?} is not among the sender's templates at {} (last `clawbridge alimtalk templates \
             sync`): register it with the dealer, or sync again",
            bizmsg.dealer.kind().id()
        ),
    }
}

/// The same for a Brand Message template, where the dealer lists them (NHN, Infobip).
async fn check_synced_brand(config: &Config, bizmsg: &BizmsgConfig, account: &str, code: &str) -> anyhow::Result<()> {
    if bizmsg.dealer.kind() == DealerKind::Solapi {
        return Ok(());
    }
    let Some(synced) = synced(config, bizmsg, account).await? else { return Ok(()) };
    let template = bizmsg.brand_templates.get(code).map_err(anyhow::Error::msg)?;
    match find_synced(&synced, Product::Brand, code, template.template_id.as_deref()) {
        Some(dealer) => template.check_against(dealer).map_err(anyhow::Error::msg),
        None => anyhow::bail!(
            "Brand Message template {code:?} is not among the sender's templates at {} (last `clawbridge alimtalk \
             templates sync`): register it with the dealer, or sync again",
            bizmsg.dealer.kind().id()
        ),
    }
}

/// One line of `templates list`.
pub(crate) struct ListedTemplate {
    /// The template code.
    pub code: String,
    /// AlimTalk or Brand Message.
    pub product: Product,
    /// Its review status, or what differs from the declaration.
    pub status: String,
    /// Its variables.
    pub variables: Vec<String>,
}

/// A declared template's status against the sync: the dealer's word, or what differs.
fn declared_status<E>(
    synced: Option<&[DealerTemplate]>,
    dealer: Option<&DealerTemplate>,
    unlisted: bool,
    check: impl FnOnce(&DealerTemplate) -> Result<(), E>,
) -> String {
    match (synced, dealer) {
        _ if unlisted => "declared (the dealer has no template list)".to_owned(),
        (None, _) => "not synced".to_owned(),
        (Some(_), None) => "not at the dealer".to_owned(),
        (Some(_), Some(d)) => match check(d) {
            Ok(()) => "approved".to_owned(),
            Err(_) if d.status != TemplateStatus::Approved => d.status.label().to_owned(),
            Err(_) => "approved, but differs from the declared text".to_owned(),
        },
    }
}

/// Every template: the declared ones with their status against the last sync, then what the
/// dealer has that is not declared (`templates list`, the console's Kakao page).
pub(crate) async fn listed_templates(
    bizmsg: &BizmsgConfig,
    store: &SharedStore,
    now: clawbridge_core::EpochMs,
) -> anyhow::Result<Vec<ListedTemplate>> {
    let dealer = bizmsg.dealer.kind();
    let sender = bizmsg
        .account("default")
        .or_else(|_| bizmsg.accounts.first().ok_or(String::new()))
        .map_err(anyhow::Error::msg)?;
    let synced: Option<Vec<DealerTemplate>> =
        store.get_state(SYNCED, &sender.sender.sender_key, now).await?.and_then(|v| serde_json::from_str(&v).ok());
    let synced = synced.as_deref();
    let mut rows = Vec::new();
    for template in bizmsg.templates.iter() {
        let found = synced
            .and_then(|s| find_synced(s, Product::Alimtalk, &template.template_code, template.template_id.as_deref()));
        rows.push(ListedTemplate {
            code: template.template_code.clone(),
            product: Product::Alimtalk,
            status: declared_status(synced, found, dealer == DealerKind::Infobip, |d| template.check_against(d)),
            variables: template.variable_names(),
        });
    }
    for template in bizmsg.brand_templates.iter() {
        let found = synced
            .and_then(|s| find_synced(s, Product::Brand, &template.template_code, template.template_id.as_deref()));
        rows.push(ListedTemplate {
            code: template.template_code.clone(),
            product: Product::Brand,
            status: declared_status(synced, found, dealer == DealerKind::Solapi, |d| template.check_against(d)),
            variables: template.variable_names(),
        });
    }
    // What the dealer has that is not declared: it cannot be sent until it is.
    for t in synced.unwrap_or_default() {
        let declared = match t.product {
            Product::Alimtalk => bizmsg
                .templates
                .iter()
                .any(|d| d.template_code == t.code || d.template_id.as_deref() == Some(t.code.as_str())),
            Product::Brand => bizmsg
                .brand_templates
                .iter()
                .any(|d| d.template_code == t.code || d.template_id.as_deref() == Some(t.code.as_str())),
        };
        if !declared {
            rows.push(ListedTemplate {
                code: t.code.clone(),
                product: t.product,
                status: format!("{} at the dealer, not declared", t.status.label()),
                variables: t.variable_names(),
            });
        }
    }
    Ok(rows)
}

async fn templates(config: &Config, action: TemplatesAction) -> anyhow::Result<ExitCode> {
    let bizmsg = settings(config)?;
    let store = store(config).await?;
    let now = now_ms();
    let dealer = bizmsg.dealer.kind();
    match action {
        TemplatesAction::Sync => {
            let client = DealerClient::new(bizmsg, DEFAULT_TIMEOUT).map_err(anyhow::Error::msg)?;
            for account in &bizmsg.accounts {
                let templates =
                    client.templates(&account.sender.sender_key).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let value = serde_json::to_string(&templates)?;
                let put = StatePut {
                    namespace: SYNCED,
                    key: &account.sender.sender_key,
                    value: &value,
                    expires_at: Some(now + DAY_MS),
                };
                store.put_state(&put, false, now).await?;
                for (product, name) in [(Product::Alimtalk, "AlimTalk"), (Product::Brand, "Brand Message")] {
                    let of: Vec<&DealerTemplate> = templates.iter().filter(|t| t.product == product).collect();
                    let approved = of.iter().filter(|t| t.status == TemplateStatus::Approved).count();
                    let listed = !matches!(
                        (dealer, product),
                        (DealerKind::Solapi, Product::Brand) | (DealerKind::Infobip, Product::Alimtalk)
                    );
                    if listed {
                        println!(
                            "{}: {} {name} template(s) from {}, {approved} approved",
                            account.id,
                            of.len(),
                            dealer.id()
                        );
                    }
                }
            }
            if let Some(note) = client.unlisted() {
                println!("note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesAction::List { json } => {
            let rows = listed_templates(bizmsg, &store, now).await?;
            if json {
                let value: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({"code": r.code, "product": r.product.as_str(), "status": r.status, "variables": r.variables})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(value));
            } else if rows.is_empty() {
                println!(
                    "no templates: declare them under [[bizmsg.templates]] (AlimTalk) or [[bizmsg.brandTemplates]] \
                     (Brand Message), then run `clawbridge alimtalk templates sync`"
                );
            } else {
                for r in rows {
                    let product = match r.product {
                        Product::Alimtalk => "alimtalk",
                        Product::Brand => "brand",
                    };
                    println!(
                        "{}  {product}  {}  variables: {}",
                        r.code,
                        r.status,
                        if r.variables.is_empty() { "none".to_owned() } else { r.variables.join(", ") }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn status(config: &Config, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let Some(row) = store.get_bizmsg(id).await? else {
        eprintln!("error: no business message {id}");
        return Ok(ExitCode::FAILURE);
    };
    if json {
        println!("{}", status_json(&row));
    } else {
        for line in status_lines(&row) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn masked(recipient: &str) -> String {
    PhoneNumber::parse(recipient).map_or_else(|_| "?".to_owned(), |n| n.masked())
}

fn state_word(state: BizmsgState) -> &'static str {
    match state {
        BizmsgState::Queued => "queued (the daemon sends it: `clawbridge serve`)",
        BizmsgState::Sending => "sending",
        BizmsgState::Accepted => "accepted by the dealer",
        BizmsgState::Retry => "waiting to be tried again",
        BizmsgState::Dead => "not sent",
    }
}

/// `alimtalk status` as text.
pub fn status_lines(row: &BizmsgRow) -> Vec<String> {
    let what = match (&row.template_code, row.product.as_str()) {
        (_, "brand") => "Brand Message".to_owned(),
        (Some(code), _) => format!("AlimTalk {code}"),
        (None, _) => "AlimTalk".to_owned(),
    };
    let mut lines =
        vec![format!("{} {what} to {} (sender {}, via {})", row.id, masked(&row.recipient), row.account, row.dealer)];
    lines.push(format!("state: {}, {} attempt(s)", state_word(row.state), row.attempts));
    if matches!(row.state, BizmsgState::Queued | BizmsgState::Retry) && row.next_at > now_ms() {
        lines.push(format!("next: {}", kst_label(row.next_at)));
    }
    if let Some(error) = &row.last_error {
        lines.push(format!("last error: {error}"));
    }
    if let Some(result) = &row.result {
        let code = match (&row.result_code, &row.result_reason) {
            (Some(code), Some(reason)) => format!(" — {code} {reason}"),
            (Some(code), None) => format!(" — {code}"),
            _ => String::new(),
        };
        let at = row.result_at.map(|at| format!(" ({})", kst_label(at))).unwrap_or_default();
        lines.push(format!("result: {result}{code}{at}"));
    }
    if let Some(fallback) = row.fallback.as_deref().filter(|f| *f != "none") {
        lines.push(format!("SMS/LMS fallback: {fallback}"));
    }
    lines
}

fn status_json(row: &BizmsgRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "product": row.product,
        "template": row.template_code,
        "to": masked(&row.recipient),
        "account": row.account,
        "dealer": row.dealer,
        "state": row.state.as_str(),
        "attempts": row.attempts,
        "nextAt": row.next_at,
        "lastError": row.last_error,
        "dealerId": row.dealer_id,
        "result": row.result,
        "resultCode": row.result_code,
        "resultReason": row.result_reason,
        "fallback": row.fallback,
        "resultAt": row.result_at,
    })
}

/// Runs `clawbridge brand …` (and `friendtalk …`, which says once that it sends a Brand Message).
///
/// # Errors
/// Configuration, validation and store failures, each with the fix.
pub async fn brand(config: &Config, action: BrandAction, friendtalk: bool) -> anyhow::Result<ExitCode> {
    let BrandAction::Send(args) = action;
    let bizmsg = settings(config)?;
    if friendtalk {
        eprintln!(
            "note: FriendTalk has been replaced by Brand Message (NHN converts FriendTalk until 2026-12-31): sending a \
             Brand Message to channel friends (targeting I)"
        );
    }
    let text = match (&args.text, &args.template) {
        (Some(text), None) => text.clone(),
        (None, Some(_)) => String::new(),
        _ => anyhow::bail!("give --text (the message) or --template CODE (a Brand Message template)"),
    };
    let targeting = match (&args.targeting, friendtalk) {
        (Some(_), true) => {
            anyhow::bail!("friendtalk send reaches channel friends only; use `clawbridge brand send --targeting`")
        }
        (Some(t), false) => t.parse().map_err(anyhow::Error::msg)?,
        (None, _) => Targeting::Friends,
    };
    let buttons = args
        .buttons
        .iter()
        .map(|b| b.parse::<BrandButton>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let image = match &args.image {
        Some(image) => Some(image_source(image, bizmsg.dealer.kind()).await?),
        None => None,
    };
    let request = BrandRequest {
        account: args.common.account.clone(),
        to: args.common.to.clone(),
        text,
        template: args.template.clone(),
        variables: variables(&args.vars)?,
        image,
        buttons,
        targeting,
        fallback: args.fallback,
        at: args.common.at.as_deref().map(parse_kst).transpose().map_err(anyhow::Error::msg)?,
        idempotency_key: args.common.idempotency_key.clone(),
        origin: "cli".to_owned(),
    };
    let mut prepared = prepare_brand(bizmsg, &request, now_ms()).map_err(anyhow::Error::msg)?;
    if let Some(code) = &args.template {
        check_synced_brand(config, bizmsg, &args.common.account, code).await?;
    }
    if let Some(image) = prepared.image_to_upload().cloned() {
        let dealer_ref = uploaded_image(config, bizmsg, &image, request.image.as_ref()).await?;
        prepared.set_image_ref(dealer_ref).map_err(anyhow::Error::msg)?;
    }
    accept(config, &prepared.prepared, prepared.held_until, args.common.json).await
}

/// How long a download of an `--image` URL may take.
const IMAGE_DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads `--image`: a file, or a URL — given to Infobip as it is, downloaded for the dealers
/// that need the bytes uploaded. Anything over 5 MB is refused before it is read whole.
async fn image_source(image: &str, dealer: DealerKind) -> anyhow::Result<ImageSource> {
    let too_big = |len: u64| {
        anyhow::anyhow!(
            "--image {image:?} is {:.1} MB; Brand Message images take at most 5 MB",
            len as f64 / (1024.0 * 1024.0)
        )
    };
    if image.starts_with("https://") || image.starts_with("http://") {
        if dealer == DealerKind::Infobip {
            return Ok(ImageSource::Url(image.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(IMAGE_DOWNLOAD_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        let mut response = client
            .get(image)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| anyhow::anyhow!("--image {image:?}: cannot download it: {e}"))?;
        if let Some(len) = response.content_length().filter(|len| *len > MAX_IMAGE_BYTES as u64) {
            return Err(too_big(len));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| anyhow::anyhow!("--image {image:?}: the download failed: {e}"))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_IMAGE_BYTES {
                return Err(too_big(bytes.len() as u64));
            }
        }
        return Ok(ImageSource::File { name: image.to_owned(), bytes });
    }
    let len = tokio::fs::metadata(image)
        .await
        .map_err(|e| anyhow::anyhow!("--image {image:?}: cannot read the file: {e}"))?
        .len();
    if len > MAX_IMAGE_BYTES as u64 {
        return Err(too_big(len));
    }
    let bytes = tokio::fs::read(image).await.map_err(|e| anyhow::anyhow!("--image {image:?}: cannot read it: {e}"))?;
    Ok(ImageSource::File { name: image.to_owned(), bytes })
}

/// The dealer's id of a send's image: uploaded now, once, or the one an earlier upload of the
/// same bytes got (kept a day).
async fn uploaded_image(
    config: &Config,
    bizmsg: &BizmsgConfig,
    image: &clawbridge_bizmsg::brand::BrandImage,
    source: Option<&ImageSource>,
) -> anyhow::Result<String> {
    let Some(ImageSource::File { bytes, .. }) = source else {
        anyhow::bail!("--image {:?}: nothing to upload", image.source);
    };
    let digest = image.digest.clone().unwrap_or_default();
    let key = format!("{}:{digest}", bizmsg.dealer.kind().id());
    let store = store(config).await?;
    let now = now_ms();
    if let Some(dealer_ref) = store.get_state(UPLOADED, &key, now).await? {
        return Ok(dealer_ref);
    }
    let client = DealerClient::new(bizmsg, DEFAULT_TIMEOUT).map_err(anyhow::Error::msg)?;
    let dealer_ref = client.upload_image(&image.source, image.format, bytes).await.map_err(|e| {
        anyhow::anyhow!("--image {:?}: the upload to {} failed: {e}", image.source, client.dealer().id())
    })?;
    tracing::info!(image = %image.source, dealer = client.dealer().id(), "Brand Message image uploaded");
    let put = StatePut { namespace: UPLOADED, key: &key, value: &dealer_ref, expires_at: Some(now + DAY_MS) };
    store.put_state(&put, false, now).await?;
    Ok(dealer_ref)
}
