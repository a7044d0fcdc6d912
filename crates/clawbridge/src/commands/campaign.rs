//! `clawbridge campaign …`: bulk sends from a CSV file — create (validate everything, store the
//! recipients, send nothing), start / pause / resume / cancel, list, status (with a progress
//! bar), report, and the suppression list.
//!
//! `start` hands the campaign to the daemon when one runs on the same store (`serve` runs every
//! started campaign); without one it runs it in the foreground, with the business-message
//! worker or the outbox worker of this process, until every recipient is handed over and sent.

use crate::bridge::{StoreBridge, Wakers};
use crate::campaign::report as campaign_report;
use crate::campaign::runner::{CampaignRunner, daemon_running, quiet_hours, rate};
use crate::campaign::send::{check_sendable, parts, rewrite, template_variables};
use crate::campaign::{Channel, Spec, VariantSpec, default_variant_name, new_campaign_id, new_link_key};
use crate::config::Config;
use crate::pipeline::bizmsg::BizmsgWorker;
use crate::util::now_ms;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use clawbridge_bizmsg::PhoneNumber;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_campaign::Split;
use clawbridge_campaign::address::{masked, suppression_key, whatsapp_number};
use clawbridge_campaign::links::tracked_url;
use clawbridge_campaign::recipients::{
    Encoding, Fingerprints, Invalid, Normalise, Recipient, RecipientReader, Row, Tally,
};
use clawbridge_campaign::schedule::{Rate, duration_label, estimate};
use clawbridge_core::clock::SystemClock;
use clawbridge_core::time::{EpochMs, KST, timestamp};
use clawbridge_store::{
    Added, CampaignRow, CampaignState, NewCampaign, NewRecipient, RecipientState, SharedStore, Suppression,
};
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `clawbridge campaign …`
#[derive(Debug, Subcommand)]
pub enum CampaignAction {
    /// Validate a recipient file and store the campaign (nothing is sent): prints its id and a summary.
    Create(Box<CreateArgs>),
    /// Start a campaign (at its --at time if it has one); runs in this terminal when no daemon runs.
    Start {
        /// The campaign id.
        id: String,
        /// With a daemon: show the progress until it is done.
        #[arg(long)]
        follow: bool,
    },
    /// Pause a running or scheduled campaign (what is queued already still goes).
    Pause {
        /// The campaign id.
        id: String,
    },
    /// Resume a paused campaign.
    Resume {
        /// The campaign id.
        id: String,
    },
    /// Cancel a campaign: recipients not yet handed over are never sent.
    Cancel {
        /// The campaign id.
        id: String,
    },
    /// The campaigns, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A campaign's progress: handed over, accepted, delivered, failed; --follow shows a progress bar.
    Status {
        /// The campaign id.
        id: String,
        /// Keep showing the progress until the campaign is done.
        #[arg(long)]
        follow: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Totals and per-variant numbers: delivered, failed by code, fallbacks, unique clicks, CTR with 95 % intervals.
    Report {
        /// The campaign id.
        id: String,
        /// table, json, csv or html (with charts).
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: String,
        /// Write to this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The suppression list: numbers that opted out are never sent a campaign.
    Suppress {
        /// Suppression action.
        #[command(subcommand)]
        action: SuppressAction,
    },
}

/// `clawbridge campaign suppress …`
#[derive(Debug, Subcommand)]
pub enum SuppressAction {
    /// Add numbers (or a CSV file with --file).
    Add {
        /// Phone numbers.
        numbers: Vec<String>,
        /// A CSV file with a `phone` (or `to`) column.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The account whose campaigns they opted out of.
        #[arg(long, default_value = "default")]
        account: String,
        /// Why (kept with the entry).
        #[arg(long, default_value = "opted out")]
        reason: String,
    },
    /// Remove numbers.
    Remove {
        /// Phone numbers.
        numbers: Vec<String>,
        /// The account.
        #[arg(long, default_value = "default")]
        account: String,
    },
    /// List the suppressed numbers (masked unless --full).
    List {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Show the whole numbers.
        #[arg(long)]
        full: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `clawbridge campaign create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// A name for the report.
    #[arg(long)]
    pub name: String,
    /// alimtalk, brand or whatsapp.
    #[arg(long)]
    pub channel: String,
    /// The CSV file: a header, a `phone` (or `to`) column and one column per template variable.
    #[arg(long, value_name = "FILE.csv")]
    pub recipients: PathBuf,
    /// The template (AlimTalk code, Brand Message template, approved WhatsApp template name).
    #[arg(long, value_name = "CODE")]
    pub template: Option<String>,
    /// Brand Message free text; `#{column}` is filled from the file.
    #[arg(long, conflicts_with = "template")]
    pub text: Option<String>,
    /// Another variant for an A/B test: "B:template=CODE2" (or "B:text=…", "B:lang=en_US"); repeat.
    #[arg(long = "variant", value_name = "NAME:SETTING=VALUE")]
    pub variants: Vec<String>,
    /// Shares of the variants, e.g. 50/50 (default: equal).
    #[arg(long)]
    pub split: Option<String>,
    /// Start at this time when started: "2026-12-24 09:00" in your time zone, or with an offset or zone
    /// ("2026-12-24T09:00+09:00", "2026-12-24 09:00 Asia/Seoul", "… KST").
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Recipients per minute ("1000/min", "20/s", "unlimited"); default unlimited.
    #[arg(long, value_name = "N/min")]
    pub rate: Option<String>,
    /// The sender ([bizmsg.accounts.<id>] or the WhatsApp account).
    #[arg(long, default_value = "default")]
    pub account: String,
    /// Store the valid rows even though some are invalid (they are listed and left out).
    #[arg(long)]
    pub skip_invalid: bool,
    /// The file's encoding: auto (default), utf-8 or cp949 (EUC-KR).
    #[arg(long, default_value = "auto")]
    pub encoding: String,
    /// The WhatsApp template's language (default en_US).
    #[arg(long)]
    pub lang: Option<String>,
    /// A Brand Message web-link button, "name|https://…"; repeat.
    #[arg(long = "button", value_name = "NAME|URL")]
    pub buttons: Vec<String>,
    /// Brand Message targeting: I (channel friends, default), M, N.
    #[arg(long)]
    pub targeting: Option<String>,
    /// AlimTalk: sms, lms or none (default: the template's); Brand Message: lms (the ad LMS).
    #[arg(long)]
    pub fallback: Option<String>,
    /// A WhatsApp marketing template: pause 20:50–08:00 KST like Kakao ads.
    #[arg(long)]
    pub ad: bool,
    /// Send the links as they are (no click tracking).
    #[arg(long)]
    pub no_track: bool,
    /// A/B test on this share first ("10%"); the winner goes to the rest (needs --variant).
    #[arg(long, value_name = "PERCENT")]
    pub test: Option<String>,
    /// With --test: how long after the start the winner is picked ("2h", "30m", "1d").
    #[arg(long, value_name = "DURATION", default_value = "2h", requires = "test")]
    pub pick_winner_after: String,
    /// With --test: ctr (unique clicks / delivered) or delivery (delivered / accepted).
    #[arg(long, value_name = "ctr|delivery", default_value = "ctr", requires = "test")]
    pub by: String,
    /// Start it right away (or at --at).
    #[arg(long)]
    pub start: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

async fn store(config: &Config) -> anyhow::Result<SharedStore> {
    config.ensure_state_dir()?;
    Ok(clawbridge_store::open(&config.bridge.database_url).await?)
}

fn bizmsg(config: &Config) -> Option<&BizmsgConfig> {
    config.channel::<BizmsgConfig>(clawbridge_bizmsg::plugin::ID)
}

/// Runs `clawbridge campaign …`.
///
/// # Errors
/// Configuration, file and store failures, each with the fix.
pub async fn run(config: &Config, action: CampaignAction) -> anyhow::Result<ExitCode> {
    match action {
        CampaignAction::Create(args) => create(config, &args).await,
        CampaignAction::Start { id, follow } => start(config, &id, follow).await,
        CampaignAction::Pause { id } => {
            let store = store(config).await?;
            let from = [CampaignState::Running, CampaignState::Scheduled];
            transition(&store, &id, &from, CampaignState::Paused, Some("paused by an operator"), "paused").await
        }
        CampaignAction::Resume { id } => {
            let store = store(config).await?;
            let code =
                transition(&store, &id, &[CampaignState::Paused], CampaignState::Running, None, "resumed").await?;
            if code == ExitCode::SUCCESS && !daemon_running(&store, now_ms()).await? {
                println!(
                    "no daemon is running on this store: `clawbridge campaign start {id}` sends it from this terminal"
                );
            }
            Ok(code)
        }
        CampaignAction::Cancel { id } => {
            let store = store(config).await?;
            let from = [CampaignState::Draft, CampaignState::Scheduled, CampaignState::Running, CampaignState::Paused];
            let code =
                transition(&store, &id, &from, CampaignState::Cancelled, Some("cancelled by an operator"), "cancelled")
                    .await?;
            if code == ExitCode::SUCCESS {
                let n = store.cancel_campaign_recipients(&id, now_ms()).await?;
                println!("{n} recipient(s) not yet handed over will not be sent");
            }
            Ok(code)
        }
        CampaignAction::List { json } => list(config, json).await,
        CampaignAction::Status { id, follow, json } => status(config, &id, follow, json).await,
        CampaignAction::Report { id, format, out } => report(config, &id, &format, out.as_deref()).await,
        CampaignAction::Suppress { action } => suppress(config, action).await,
    }
}

async fn transition(
    store: &SharedStore,
    id: &str,
    from: &[CampaignState],
    to: CampaignState,
    note: Option<&str>,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let Some(campaign) = store.get_campaign(id).await? else {
        eprintln!("error: no campaign {id} (see `clawbridge campaign list`)");
        return Ok(ExitCode::FAILURE);
    };
    if store.transition_campaign(id, from, to, note, None, now_ms()).await? {
        println!("campaign {id} {done}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: campaign {id} is {}: it cannot be {done}", campaign.state.as_str());
        Ok(ExitCode::FAILURE)
    }
}

// ---- create --------------------------------------------------------------------------------------

/// Reads `--at`: an instant with an offset or zone, a KST time, or a wall-clock time in the
/// operator's time zone.
///
/// # Errors
/// The forms accepted.
pub fn parse_at(text: &str) -> Result<EpochMs, String> {
    let t = text.trim();
    let hint = || {
        format!(
            "--at {text:?}: write YYYY-MM-DD HH:MM (your time zone), or add an offset or zone: \
             2026-12-24T09:00+09:00, \"2026-12-24 09:00 Asia/Seoul\", \"2026-12-24 09:00 KST\""
        )
    };
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(zoned) = t.parse::<jiff::Zoned>() {
        return Ok(zoned.timestamp().as_millisecond());
    }
    let civil = |s: &str| s.trim().replacen(' ', "T", 1).parse::<jiff::civil::DateTime>().ok();
    if let Some(rest) = t.strip_suffix("KST").or_else(|| t.strip_suffix("kst")) {
        let dt = civil(rest).ok_or_else(hint)?;
        return KST.to_timestamp(dt).map(|ts| ts.as_millisecond()).map_err(|e| format!("--at {text:?}: {e}"));
    }
    if let Some((when, zone)) = t.rsplit_once(' ')
        && zone.contains('/')
        && let Some(dt) = civil(when)
    {
        let tz = jiff::tz::TimeZone::get(zone).map_err(|_| format!("--at {text:?}: unknown time zone {zone:?}"))?;
        return dt.to_zoned(tz).map(|z| z.timestamp().as_millisecond()).map_err(|e| format!("--at {text:?}: {e}"));
    }
    let dt = civil(t).ok_or_else(hint)?;
    dt.to_zoned(jiff::tz::TimeZone::system())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("--at {text:?}: {e}"))
}

/// `2026-12-24 09:00 (local, +01:00) = 17:00 KST`.
pub fn time_label(at: EpochMs) -> String {
    let ts = timestamp(at);
    let local = ts.to_zoned(jiff::tz::TimeZone::system());
    let kst = KST.to_datetime(ts);
    let local_text = local.strftime("%Y-%m-%d %H:%M %:z").to_string();
    let kst_text = kst.strftime("%Y-%m-%d %H:%M KST").to_string();
    if local.offset() == KST { kst_text } else { format!("{local_text} ({kst_text})") }
}

/// How a channel writes its recipients.
fn normaliser(channel: Channel) -> Box<Normalise> {
    match channel {
        Channel::Alimtalk | Channel::Brand => {
            Box::new(|raw: &str| PhoneNumber::parse(raw).map(|n| n.national().to_owned()).map_err(|e| e.to_string()))
        }
        Channel::Whatsapp => Box::new(whatsapp_number),
    }
}

/// The `#{name}` placeholders of a text.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = after[..end].trim();
        if !name.is_empty() && !out.iter().any(|n: &String| n == name) {
            out.push(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    out
}

/// What validating and storing the file found.
#[derive(Debug, Default)]
struct FileResult {
    tally: Tally,
    detected: &'static str,
    per_variant: BTreeMap<String, u64>,
}

/// What a pass over the file checks rows against.
struct FileCheck<'a> {
    path: &'a Path,
    encoding: Encoding,
    spec: &'a Spec,
    campaign: &'a str,
    account: &'a str,
    bizmsg: Option<&'a BizmsgConfig>,
    required: &'a [String],
    now: EpochMs,
}

/// Reads the file once: every row checked as its send would be.
fn check_file(
    check: &FileCheck<'_>,
    mut each: impl FnMut(&Recipient, &str) -> anyhow::Result<()>,
) -> anyhow::Result<FileResult> {
    let FileCheck { path, encoding, spec, campaign, account, bizmsg, required, now } = *check;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open the recipient file {}", path.display()))?;
    let normalise = normaliser(spec.channel);
    let reader = RecipientReader::new(std::io::BufReader::new(file), encoding, required, &*normalise)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut result = FileResult { detected: reader.detected().label(), ..FileResult::default() };
    let mut seen = Fingerprints::new();
    // The length of a real tracked link, so a variable that would be too long with one is caught now.
    let sample = spec.track_base.as_ref().map(|base| tracked_url(base, "cxxxxxxxxx.zzzz.0.AAAAAAAAAAAAAAAA"));
    for row in reader {
        let recipient = match row {
            Row::Invalid(invalid) => {
                result.tally.invalid(invalid);
                continue;
            }
            Row::Valid(r) => r,
        };
        let variant = spec.variant_of(campaign, &recipient.address);
        let held = spec.test.as_ref().is_some_and(|t| !t.in_test(campaign, &recipient.address));
        // A held recipient may get any variant: it must pass with each.
        let candidates: Vec<&VariantSpec> = if held { spec.variants.iter().collect() } else { vec![variant] };
        let checked = candidates.into_iter().try_for_each(|variant| {
            let p = parts(spec, variant, &recipient.variables, bizmsg)?;
            let p = match &sample {
                Some(sample) => rewrite(&p, |_, _| sample.clone()),
                None => p,
            };
            check_sendable(spec, variant, &p, &recipient.address, account, campaign, bizmsg, now).map(|_| ())
        });
        let variant_name = if held { "" } else { variant.name.as_str() };
        match checked {
            Err(reason) => result.tally.invalid(Invalid { line: recipient.line, reason }),
            Ok(_) => {
                let first = seen.check(&recipient.address, recipient.line);
                result.tally.valid(recipient.line, first);
                if first.is_none() {
                    let label = if held { "held for the winner" } else { variant_name };
                    *result.per_variant.entry(label.to_owned()).or_default() += 1;
                    each(&recipient, variant_name)?;
                }
            }
        }
    }
    Ok(result)
}

async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let channel: Channel = args.channel.parse().map_err(anyhow::Error::msg)?;
    let bizmsg = bizmsg(config);
    if matches!(channel, Channel::Alimtalk | Channel::Brand) && bizmsg.is_none() {
        anyhow::bail!(
            "business messages are not configured: set BIZMSG_DEALER (nhn, solapi or infobip), BIZMSG_SENDER_KEY and \
             the dealer's credentials, or a [bizmsg] table"
        );
    }
    let encoding: Encoding = args.encoding.parse().map_err(anyhow::Error::msg)?;
    let first = VariantSpec {
        name: default_variant_name(0),
        template: args.template.clone(),
        text: args.text.clone(),
        lang: args.lang.clone(),
    };
    match (channel, &first.template, &first.text) {
        (Channel::Brand, None, None) => anyhow::bail!("give --text (the message) or --template CODE"),
        (Channel::Alimtalk | Channel::Whatsapp, None, _) => anyhow::bail!("give --template (the approved template)"),
        _ => {}
    }
    let mut variants = vec![first.clone()];
    for v in &args.variants {
        let variant = VariantSpec::parse(v, &first).map_err(anyhow::Error::msg)?;
        if variants.iter().any(|x| x.name == variant.name) {
            anyhow::bail!("--variant {v:?}: there is already a variant {}", variant.name);
        }
        variants.push(variant);
    }
    let split = match &args.split {
        Some(s) => s.parse::<Split>().map_err(anyhow::Error::msg)?,
        None => Split::even(variants.len()),
    };
    if split.len() != variants.len() {
        anyhow::bail!("--split {} has {} shares for {} variant(s)", split.label(), split.len(), variants.len());
    }
    let rate: Rate = args.rate.as_deref().map(str::parse).transpose().map_err(anyhow::Error::msg)?.unwrap_or_default();
    let now = now_ms();
    let start_at = args.at.as_deref().map(parse_at).transpose().map_err(anyhow::Error::msg)?;
    if start_at.is_some_and(|at| at < now - 60_000) {
        anyhow::bail!("--at is in the past: give a time to come, or leave it out to start when started");
    }
    let buttons = args
        .buttons
        .iter()
        .map(|b| b.split_once('|').map(|(n, u)| (n.trim().to_owned(), u.trim().to_owned())))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("--button: write it as \"name|https://…\""))?;
    if !buttons.is_empty() && channel != Channel::Brand {
        anyhow::bail!("--button goes with --channel brand");
    }
    let track_base = if args.no_track { None } else { config.bridge.public_url.clone() };
    let test = match &args.test {
        None => None,
        Some(share) => {
            let share: u32 =
                share.trim().trim_end_matches('%').parse().ok().filter(|s| (1..100).contains(s)).ok_or_else(|| {
                    anyhow::anyhow!("--test {share:?}: give the test share as a percentage, e.g. 10%")
                })?;
            if variants.len() < 2 {
                anyhow::bail!("--test needs at least two variants: add --variant \"B:template=…\"");
            }
            if !matches!(args.by.as_str(), "ctr" | "delivery") {
                anyhow::bail!("--by {:?}: use ctr or delivery", args.by);
            }
            if args.by == "ctr" && track_base.is_none() {
                anyhow::bail!(
                    "--by ctr counts clicks: set CLAWBRIDGE_PUBLIC_URL (and leave out --no-track), or use --by delivery"
                );
            }
            let pick_after_ms = crate::campaign::parse_duration(&args.pick_winner_after).map_err(anyhow::Error::msg)?;
            Some(crate::campaign::AbTest { share, pick_after_ms, by: args.by.clone(), winner: None })
        }
    };
    let spec = Spec {
        channel,
        variants,
        split: split.shares().to_vec(),
        buttons,
        targeting: args.targeting.clone(),
        fallback: args.fallback.clone(),
        ad: channel == Channel::Brand || args.ad,
        track_base,
        file: args.recipients.display().to_string(),
        test,
    };
    let mut required = Vec::new();
    for v in &spec.variants {
        let names = match template_variables(&spec, v, bizmsg).map_err(anyhow::Error::msg)? {
            Some(names) => names,
            None => v.text.as_deref().map(placeholders).unwrap_or_default(),
        };
        for name in names {
            if !required.contains(&name) {
                required.push(name);
            }
        }
    }
    let id = new_campaign_id();

    // Pass 1: every row checked; nothing stored.
    let checked = check_file(
        &FileCheck {
            path: &args.recipients,
            encoding,
            spec: &spec,
            campaign: &id,
            account: &args.account,
            bizmsg,
            required: &required,
            now,
        },
        |_, _| Ok(()),
    )?;
    let tally = &checked.tally;
    if tally.invalid_count > 0 && !args.skip_invalid {
        print_invalid(tally);
        eprintln!(
            "refused: {} of {} row(s) are invalid; fix them, or pass --skip-invalid to leave them out. Nothing was stored.",
            tally.invalid_count, tally.rows
        );
        return Ok(ExitCode::FAILURE);
    }
    if tally.valid == 0 {
        anyhow::bail!("{} has no valid recipient", args.recipients.display());
    }

    // Pass 2: store the campaign and its recipients, in batches.
    let store = store(config).await?;
    let campaign = NewCampaign {
        id: id.clone(),
        name: args.name.clone(),
        channel: channel.as_str().to_owned(),
        account: args.account.clone(),
        spec: serde_json::to_string(&spec)?,
        rate_per_minute: match rate {
            Rate::Unlimited => None,
            Rate::PerMinute(n) => Some(n),
        },
        quiet_hours: spec.ad,
        start_at,
        link_key: new_link_key().encode(),
    };
    if !store.create_campaign(&campaign, now).await? {
        anyhow::bail!("campaign id {id} is taken (a one in 2^45 chance): run the command again");
    }
    let mut batch: Vec<NewRecipient> = Vec::with_capacity(1_000);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<NewRecipient>>(2);
    let writer = {
        let store = store.clone();
        let (id, account) = (id.clone(), args.account.clone());
        tokio::spawn(async move {
            let mut added = Added::default();
            while let Some(batch) = rx.recv().await {
                let a = store.add_campaign_recipients(&id, &account, &batch, now_ms()).await?;
                added.inserted += a.inserted;
                added.suppressed += a.suppressed;
                added.duplicates += a.duplicates;
            }
            Ok::<_, clawbridge_store::StoreError>(added)
        })
    };
    let stored = {
        let (path, spec, id, account) = (args.recipients.clone(), spec.clone(), id.clone(), args.account.clone());
        let bizmsg = bizmsg.cloned();
        let required = required.clone();
        tokio::task::spawn_blocking(move || {
            let check = FileCheck {
                path: &path,
                encoding,
                spec: &spec,
                campaign: &id,
                account: &account,
                bizmsg: bizmsg.as_ref(),
                required: &required,
                now,
            };
            check_file(&check, |r, variant| {
                batch.push(NewRecipient {
                    recipient: r.address.clone(),
                    suppression_key: suppression_key(&r.address),
                    variant: variant.to_owned(),
                    variables: serde_json::to_string(&r.variables)?,
                    line: r.line,
                    held: variant.is_empty(),
                });
                if batch.len() >= 1_000 {
                    tx.blocking_send(std::mem::take(&mut batch))
                        .map_err(|_| anyhow::anyhow!("the store writer stopped"))?;
                }
                Ok(())
            })
            .and_then(|result| {
                if !batch.is_empty() {
                    tx.blocking_send(batch).map_err(|_| anyhow::anyhow!("the store writer stopped"))?;
                }
                Ok(result)
            })
        })
        .await?
    };
    let written = writer.await?.map_err(anyhow::Error::from);
    let added = match stored.and(written) {
        Ok(a) => a,
        Err(e) => {
            // Half a campaign is worse than none: the operator runs `create` again.
            let _ = store.delete_campaign(&id).await;
            return Err(e.context("the campaign could not be stored; nothing was kept"));
        }
    };
    let summary = serde_json::json!({
        "file": args.recipients.display().to_string(),
        "encoding": checked.detected,
        "rows": tally.rows,
        "invalid": tally.invalid_count,
        "duplicates": tally.duplicates + added.duplicates,
        "suppressed": added.suppressed,
        "recipients": added.inserted,
    });
    store.set_campaign_summary(&id, &summary.to_string(), now_ms()).await?;
    let Some(row) = store.get_campaign(&id).await? else { anyhow::bail!("the campaign vanished") };
    print_created(&row, &spec, &checked, added, args.json);
    if args.start {
        return start(config, &id, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_invalid(tally: &Tally) {
    for i in &tally.invalid {
        eprintln!("  line {}: {}", i.line, i.reason);
    }
    if tally.invalid_count > tally.invalid.len() as u64 {
        eprintln!("  … and {} more", tally.invalid_count - tally.invalid.len() as u64);
    }
}

fn estimate_lines(row: &CampaignRow, recipients: u64) -> Vec<String> {
    let start = row.start_at.unwrap_or_else(now_ms);
    let quiet = quiet_hours(row);
    let e = estimate(recipients, rate(row), start, quiet.as_ref());
    let mut lines = Vec::new();
    match (e.sending_ms, e.finish_at) {
        (Some(ms), Some(end)) => lines.push(format!(
            "estimate: {recipients} recipient(s) at {} ≈ {} of sending, done about {}",
            rate(row).label(),
            duration_label(ms),
            time_label(end)
        )),
        _ => lines.push(format!(
            "estimate: {recipients} recipient(s) as fast as the {} takes them (no --rate)",
            if row.channel == "whatsapp" { "Kapso API" } else { "dealer" }
        )),
    }
    if let Some(q) = quiet {
        lines.push(format!("quiet hours: it does not send {} (ads); it pauses and goes on at 08:00", q.label()));
        for (from, until) in e.pauses.iter().take(3) {
            lines.push(format!("  pause {} → {}", time_label(*from), time_label(*until)));
        }
    }
    lines
}

fn print_created(row: &CampaignRow, spec: &Spec, checked: &FileResult, added: Added, json: bool) {
    let tally = &checked.tally;
    let recipients = added.inserted - added.suppressed;
    if json {
        let value = serde_json::json!({
            "id": row.id,
            "name": row.name,
            "channel": row.channel,
            "state": row.state.as_str(),
            "encoding": checked.detected,
            "rows": tally.rows,
            "recipients": recipients,
            "variants": checked.per_variant,
            "invalid": tally.invalid.iter().map(|i| serde_json::json!({"line": i.line, "reason": i.reason})).collect::<Vec<_>>(),
            "invalidCount": tally.invalid_count,
            "duplicates": tally.duplicates + added.duplicates,
            "suppressed": added.suppressed,
            "startAt": row.start_at,
            "estimate": estimate_lines(row, recipients),
            "trackedLinks": spec.track_base.is_some(),
        });
        println!("{value}");
        return;
    }
    println!(
        "campaign {} created: \"{}\" ({}) — a draft: nothing is sent until `clawbridge campaign start {}`",
        row.id, row.name, row.channel, row.id
    );
    println!("file: {} ({}), {} row(s)", spec.file, checked.detected, tally.rows);
    let variants: Vec<String> = checked.per_variant.iter().map(|(v, n)| format!("{v} {n}")).collect();
    if spec.variants.len() > 1 {
        let split = spec.split.iter().map(u32::to_string).collect::<Vec<_>>().join("/");
        println!("recipients: {recipients} ({}, split {split})", variants.join(" / "));
    } else {
        println!("recipients: {recipients}");
    }
    if tally.invalid_count > 0 {
        println!("invalid rows left out: {}", tally.invalid_count);
        for i in tally.invalid.iter().take(20) {
            println!("  line {}: {}", i.line, i.reason);
        }
        if tally.invalid_count > 20 {
            println!("  … and {} more (`--json` lists the first {})", tally.invalid_count - 20, Tally::KEEP);
        }
    }
    let duplicates = tally.duplicates + added.duplicates;
    if duplicates > 0 {
        let examples: Vec<String> = tally
            .duplicate_examples
            .iter()
            .take(3)
            .map(|(line, first)| format!("line {line} repeats line {first}"))
            .collect();
        println!("duplicates removed: {duplicates} ({})", examples.join(", "));
    }
    println!("suppressed (opted out): {}", added.suppressed);
    if let Some(at) = row.start_at {
        println!("starts at: {}", time_label(at));
    }
    for line in estimate_lines(row, recipients) {
        println!("{line}");
    }
    if let Some(test) = &spec.test {
        println!("A/B test: {}", crate::campaign::report::describe_test(test));
    }
    match &spec.track_base {
        Some(base) => println!("tracked links: on ({}/r/…)", base.trim_end_matches('/')),
        None => println!("tracked links: off (set CLAWBRIDGE_PUBLIC_URL to count clicks)"),
    }
}

// ---- start, status ------------------------------------------------------------------------------

async fn start(config: &Config, id: &str, follow: bool) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let now = now_ms();
    let Some(campaign) = store.get_campaign(id).await? else {
        eprintln!("error: no campaign {id} (see `clawbridge campaign list`)");
        return Ok(ExitCode::FAILURE);
    };
    match campaign.state {
        CampaignState::Draft => {
            let to = if campaign.start_at.is_some_and(|at| at > now) {
                CampaignState::Scheduled
            } else {
                CampaignState::Running
            };
            if !store.transition_campaign(id, &[CampaignState::Draft], to, None, None, now).await? {
                eprintln!("error: campaign {id} changed meanwhile; look at `clawbridge campaign status {id}`");
                return Ok(ExitCode::FAILURE);
            }
            match to {
                CampaignState::Scheduled => {
                    println!("campaign {id} scheduled for {}", time_label(campaign.start_at.unwrap_or(now)))
                }
                _ => println!("campaign {id} started"),
            }
        }
        CampaignState::Running | CampaignState::Scheduled => println!("campaign {id} is {}", campaign.state.as_str()),
        CampaignState::Paused => {
            eprintln!("error: campaign {id} is paused: `clawbridge campaign resume {id}`");
            return Ok(ExitCode::FAILURE);
        }
        CampaignState::Done | CampaignState::Cancelled => {
            eprintln!("error: campaign {id} is {}", campaign.state.as_str());
            return Ok(ExitCode::FAILURE);
        }
    }
    if daemon_running(&store, now).await? {
        println!("the daemon sends it; follow it with `clawbridge campaign status {id} --follow`");
        if follow {
            return follow_progress(&store, id, None).await;
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "no daemon is running on this store: sending from this terminal (Ctrl-C stops; `campaign start {id}` goes on)"
    );
    foreground(config, store, id).await
}

/// Runs one campaign in this process: the runner and the worker that sends its rows.
async fn foreground(config: &Config, store: SharedStore, id: &str) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    let worker = crate::util::worker_id();
    let wakers = Arc::new(Wakers::default());
    let bizmsg = bizmsg(config).cloned().map(Arc::new);
    let wake_bizmsg = Arc::new(tokio::sync::Notify::new());
    let runner = CampaignRunner {
        store: store.clone(),
        bizmsg: bizmsg.clone(),
        clock: Arc::new(SystemClock),
        worker: worker.clone(),
        wake_bizmsg: wake_bizmsg.clone(),
        wakers: wakers.clone(),
    };
    let Some(campaign) = store.get_campaign(id).await? else { anyhow::bail!("no campaign {id}") };
    let mut tasks = Vec::new();
    if campaign.channel == "whatsapp" {
        // The outbox worker with the configured channels, as the daemon runs it.
        let bridge = Arc::new(StoreBridge::new(store.clone(), wakers.clone(), worker.clone()));
        let ctx = clawbridge_channel::plugin::ConnectorContext { bridge };
        let registry = Arc::new(crate::registry::Registry::new(crate::channels::enabled(config, &ctx)?));
        let gateway_stop = CancellationToken::new();
        gateway_stop.cancel();
        let gateway = clawbridge_gateway::GatewayClient::spawn(
            clawbridge_gateway::GatewayConfig::new(config.gateway.url.clone(), None, config.device_key_path()),
            gateway_stop,
        )?;
        let shared = crate::pipeline::Shared {
            config: Arc::new(config.clone()),
            store: store.clone(),
            gateway,
            registry,
            wakers: wakers.clone(),
            worker: worker.clone(),
            abandon: CancellationToken::new(),
            in_flight: crate::pipeline::InFlight::default(),
        };
        let tracker = tokio_util::task::TaskTracker::new();
        tasks.push(tokio::spawn(crate::pipeline::outbox::run(shared, stop.clone(), tracker)));
    } else if let Some(bizmsg) = &bizmsg {
        let client = clawbridge_bizmsg::client::DealerClient::new(bizmsg, clawbridge_bizmsg::client::DEFAULT_TIMEOUT)
            .map_err(anyhow::Error::msg)?;
        let worker = BizmsgWorker {
            store: store.clone(),
            config: bizmsg.clone(),
            client,
            retry: config.retry.queue,
            worker: worker.clone(),
            wake: wake_bizmsg,
            clock: Arc::new(SystemClock),
        };
        tasks.push(tokio::spawn(worker.run(stop.clone())));
    }
    let run = tokio::spawn(runner.clone().run(stop.clone(), Some(id.to_owned())));
    let code = tokio::select! {
        code = follow_progress(&store, id, Some(run)) => code?,
        _ = tokio::signal::ctrl_c() => {
            println!("\nstopped: the campaign stays {}; `clawbridge campaign start {id}` (or the daemon) goes on where it was",
                store.get_campaign(id).await?.map_or("running", |c| c.state.as_str()));
            ExitCode::SUCCESS
        }
    };
    stop.cancel();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    runner.sync_results().await?;
    Ok(code)
}

/// Numbers for the progress display.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Numbers {
    total: u64,
    handed: u64,
    open: u64,
    accepted: u64,
    delivered: u64,
    failed: u64,
    suppressed: u64,
}

async fn numbers(store: &SharedStore, id: &str) -> anyhow::Result<Numbers> {
    let counts = store.campaign_counts(id).await?;
    let mut n = Numbers::default();
    for (_, state, count) in counts.states {
        n.total += count;
        match state {
            RecipientState::Pending | RecipientState::Sending => {}
            RecipientState::Queued => n.open += count,
            RecipientState::Accepted => n.accepted += count,
            RecipientState::Delivered => {
                n.accepted += count;
                n.delivered += count;
            }
            RecipientState::Failed => n.failed += count,
            RecipientState::Suppressed | RecipientState::Cancelled => n.suppressed += count,
            RecipientState::Held => {}
        }
        if !matches!(state, RecipientState::Pending | RecipientState::Sending | RecipientState::Held) {
            n.handed += count;
        }
    }
    Ok(n)
}

/// Shows the progress until the campaign is done and its rows sent (or `run` ends without that).
async fn follow_progress(
    store: &SharedStore,
    id: &str,
    mut run: Option<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<ExitCode> {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    let started = std::time::Instant::now();
    let first = numbers(store, id).await?;
    let mut last_line = String::new();
    let mut last_print = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let Some(campaign) = store.get_campaign(id).await? else { anyhow::bail!("campaign {id} is gone") };
        let _ = store.sync_campaign_results(id, now_ms()).await;
        let n = numbers(store, id).await?;
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let per_min = (n.handed.saturating_sub(first.handed)) as f64 / elapsed * 60.0;
        let left = n.total.saturating_sub(n.handed);
        let eta = if per_min > 0.0 && left > 0 {
            format!(", ETA {}", duration_label((left as f64 / per_min * 60_000.0) as i64))
        } else {
            String::new()
        };
        let waiting = campaign
            .waiting_until
            .map(|at| format!(", paused for the quiet hours until {}", time_label(at)))
            .unwrap_or_default();
        let msg = format!(
            "sent {} · delivered {} · failed {} · {:.0}/min{eta}{waiting} [{}]",
            n.accepted,
            n.delivered,
            n.failed,
            per_min,
            campaign.state.as_str()
        );
        bar.set_length(n.total);
        bar.set_position(n.handed);
        bar.set_message(msg.clone());
        let line = format!("{id}: {}/{} handed over, {msg}", n.handed, n.total);
        if !tty && (line != last_line && last_print.elapsed() >= Duration::from_secs(2)) {
            println!("{line}");
            last_line = line;
            last_print = std::time::Instant::now();
        }
        let finished = matches!(campaign.state, CampaignState::Done | CampaignState::Cancelled) && n.open == 0;
        let stopped = matches!(campaign.state, CampaignState::Paused);
        let run_ended = run.as_ref().is_some_and(tokio::task::JoinHandle::is_finished);
        if finished || (stopped && run.is_some()) || (run_ended && n.open == 0) {
            bar.finish();
            if !tty {
                println!("{id}: {}/{} handed over, {msg}", n.handed, n.total);
            }
            if let Some(run) = run.take() {
                run.abort();
            }
            println!(
                "campaign {id} {}: {} accepted, {} delivered, {} failed, {} not sent (opted out or cancelled)",
                campaign.state.as_str(),
                n.accepted,
                n.delivered,
                n.failed,
                n.suppressed
            );
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(if tty { 250 } else { 500 })).await;
    }
}

async fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let campaigns = store.list_campaigns(100).await?;
    if json {
        let mut out = Vec::new();
        for c in &campaigns {
            let n = numbers(&store, &c.id).await?;
            out.push(serde_json::json!({
                "id": c.id, "name": c.name, "channel": c.channel, "state": c.state.as_str(),
                "recipients": n.total, "handedOver": n.handed, "createdAt": c.created_at,
            }));
        }
        println!("{}", serde_json::Value::Array(out));
        return Ok(ExitCode::SUCCESS);
    }
    if campaigns.is_empty() {
        println!(
            "no campaigns: create one with `clawbridge campaign create --name … --channel … --recipients FILE.csv …`"
        );
    }
    for c in &campaigns {
        let n = numbers(&store, &c.id).await?;
        println!(
            "{}  {:<9}  {:<8}  {:>6}/{:<6}  {}  {}",
            c.id,
            c.state.as_str(),
            c.channel,
            n.handed,
            n.total,
            time_label(c.created_at),
            c.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &Config, id: &str, follow: bool, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let Some(c) = store.get_campaign(id).await? else {
        eprintln!("error: no campaign {id} (see `clawbridge campaign list`)");
        return Ok(ExitCode::FAILURE);
    };
    if follow {
        return follow_progress(&store, id, None).await;
    }
    let _ = store.sync_campaign_results(id, now_ms()).await;
    let n = numbers(&store, id).await?;
    if json {
        let value = serde_json::json!({
            "id": c.id, "name": c.name, "channel": c.channel, "state": c.state.as_str(), "note": c.note,
            "recipients": n.total, "handedOver": n.handed, "queued": n.open, "accepted": n.accepted,
            "delivered": n.delivered, "failed": n.failed, "notSent": n.suppressed,
            "waitingUntil": c.waiting_until, "startAt": c.start_at, "startedAt": c.started_at, "finishedAt": c.finished_at,
            "summary": serde_json::from_str::<serde_json::Value>(&c.summary).unwrap_or_default(),
        });
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "campaign {} \"{}\" ({}): {}{}",
        c.id,
        c.name,
        c.channel,
        c.state.as_str(),
        c.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default()
    );
    println!("recipients: {}, handed over: {}, waiting to be sent: {}", n.total, n.handed, n.open);
    println!(
        "accepted: {}, delivered: {}, failed: {}, not sent (opted out / cancelled): {}",
        n.accepted, n.delivered, n.failed, n.suppressed
    );
    if let Some(at) = c.waiting_until {
        println!("paused for the quiet hours (20:50–08:00 KST) until {}", time_label(at));
    }
    if let Some(test) = serde_json::from_str::<Spec>(&c.spec).ok().and_then(|s| s.test) {
        println!("A/B test: {}", crate::campaign::report::describe_test(&test));
    }
    if c.state == CampaignState::Scheduled
        && let Some(at) = c.start_at
    {
        println!("starts at {}", time_label(at));
    }
    if matches!(c.state, CampaignState::Running | CampaignState::Scheduled) {
        for line in estimate_lines(&c, n.total.saturating_sub(n.handed)) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn report(config: &Config, id: &str, format: &str, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    let Some(c) = store.get_campaign(id).await? else {
        eprintln!("error: no campaign {id} (see `clawbridge campaign list`)");
        return Ok(ExitCode::FAILURE);
    };
    let _ = store.sync_campaign_results(id, now_ms()).await;
    let report = campaign_report::build(&store, &c).await?;
    let text = match format {
        "table" => report.to_table(),
        "json" => report.to_json() + "\n",
        "csv" => report.to_csv(),
        "html" => report.to_html(),
        other => anyhow::bail!("--format {other:?}: use table, json, csv or html"),
    };
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
            println!("report written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

// ---- suppression -----------------------------------------------------------------------------

/// The suppression key of a number as an operator writes it (Korean national, international).
fn key_of(raw: &str) -> anyhow::Result<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 8 {
        anyhow::bail!("{raw:?} is not a phone number");
    }
    Ok(suppression_key(raw))
}

async fn suppress(config: &Config, action: SuppressAction) -> anyhow::Result<ExitCode> {
    let store = store(config).await?;
    match action {
        SuppressAction::Add { numbers, file, account, reason } => {
            let mut keys = Vec::new();
            for n in &numbers {
                keys.push(key_of(n)?);
            }
            let mut invalid = 0u64;
            if let Some(path) = &file {
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let accept = |raw: &str| key_of(raw).map_err(|e| e.to_string());
                let reader = RecipientReader::new(std::io::BufReader::new(f), Encoding::Auto, &[], &accept)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                for row in reader {
                    match row {
                        Row::Valid(r) => keys.push(r.address),
                        Row::Invalid(i) => {
                            invalid += 1;
                            eprintln!("  line {}: {}", i.line, i.reason);
                        }
                    }
                }
            }
            let (mut added, mut known) = (0, 0);
            let source = if file.is_some() { "import" } else { "cli" };
            for key in keys {
                let entry = Suppression {
                    account: account.clone(),
                    recipient_key: key,
                    reason: reason.clone(),
                    source: source.to_owned(),
                    created_at: now_ms(),
                };
                if store.suppress(&entry).await? { added += 1 } else { known += 1 }
            }
            println!(
                "suppressed for {account}: {added} added, {known} already listed{}",
                if invalid > 0 { format!(", {invalid} invalid row(s) skipped") } else { String::new() }
            );
            Ok(ExitCode::SUCCESS)
        }
        SuppressAction::Remove { numbers, account } => {
            let mut removed = 0;
            for n in &numbers {
                removed += u32::from(store.unsuppress(&account, &key_of(n)?).await?);
            }
            println!("removed {removed} of {} number(s) from the suppression list of {account}", numbers.len());
            Ok(ExitCode::SUCCESS)
        }
        SuppressAction::List { account, full, json } => {
            let list = store.list_suppressions(account.as_deref(), 10_000).await?;
            let show = |k: &str| if full { k.to_owned() } else { masked(k) };
            if json {
                let value: Vec<_> = list
                    .iter()
                    .map(|s| serde_json::json!({"account": s.account, "number": show(&s.recipient_key), "reason": s.reason, "source": s.source, "at": s.created_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(value));
            } else if list.is_empty() {
                println!("the suppression list is empty");
            } else {
                for s in &list {
                    println!(
                        "{}  {}  {}  {} ({})",
                        s.account,
                        show(&s.recipient_key),
                        time_label(s.created_at),
                        s.reason,
                        s.source
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_of_free_text() {
        assert_eq!(placeholders("#{name}님 #{coupon} 쿠폰, #{name}"), ["name", "coupon"]);
        assert!(placeholders("no placeholders #{").is_empty());
    }

    #[test]
    fn at_times_in_any_zone() {
        let kst = parse_at("2026-12-24 09:00 KST").unwrap();
        assert_eq!(parse_at("2026-12-24T09:00:00+09:00").unwrap(), kst);
        assert_eq!(parse_at("2026-12-24 09:00 Asia/Seoul").unwrap(), kst);
        assert_eq!(parse_at("2026-12-24T00:00:00Z").unwrap(), kst);
        assert_eq!(parse_at("2026-12-23 19:00 America/New_York").unwrap(), kst);
        assert!(parse_at("2026-12-24 09:00 Mars/Olympus").unwrap_err().contains("unknown time zone"));
        assert!(parse_at("tomorrow").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_at("2026-12-24 09:00").is_ok(), "the operator's zone");
        assert!(time_label(kst).contains("2026-12-24 09:00 KST"));
    }

    #[test]
    fn suppression_keys_from_what_operators_type() {
        assert_eq!(key_of("010-1234-5678").unwrap(), "821012345678");
        assert_eq!(key_of("+1 555 123 4567").unwrap(), "15551234567");
        assert!(key_of("12").is_err());
    }

    #[test]
    fn the_ad_hours_agree_with_the_bizmsg_window() {
        let window = clawbridge_bizmsg::AdWindow::default();
        let quiet = clawbridge_campaign::QuietHours::ads();
        for minute in (0..24 * 60).step_by(5) {
            let at = parse_at(&format!("2026-12-24 {:02}:{:02} KST", minute / 60, minute % 60)).unwrap();
            assert_eq!(window.is_open(at), !quiet.is_quiet(at), "minute {minute}");
        }
    }
}
