//! `clawbridge setup whatsapp` (the same command as `clawbridge whatsapp setup`): from a Kapso
//! project API key to a bridge that receives signed webhooks.
//!
//! 1. Lists the project's numbers (Platform API) and takes one: `--phone-number-id`, the one
//!    already configured, the only one, or the operator's choice at a terminal.
//! 2. Finds the number's webhook for `<public URL>/webhook` and creates it, or changes what
//!    differs (events, `active`, payload version), with the message and status events.
//! 3. Signs it with a secret: the configured `KAPSO_WEBHOOK_SECRET` when there is one, else the
//!    one stored by an earlier run (a working webhook's secret is not rotated unless
//!    `--rotate-secret`), else 32 fresh random bytes — stored encrypted in the bridge's store,
//!    never in the file, never printed. `serve` reads it from there.
//! 4. Sets `[whatsapp] phone_number_id` and `mode` in the config file, comments kept.
//!
//! `--dry-run` makes only the reads (GET) and prints every change it would make. A second run
//! finds everything in place and changes nothing.

use crate::client::{PhoneNumber, PlatformClient, Webhook, WebhookSpec};
use crate::config::{DeliveryMode, SECRETS_NAMESPACE, STORED_WEBHOOK_SECRET, WhatsAppConfig};
use crate::plugin::describe;
use clap::Args;
use clawbridge_channel::cli::{CliError, CliHost, Secrets, SecretsAt};
use clawbridge_channel::config_file::{ConfigFile, Setting};
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The events the bridge needs: inbound messages and the delivery statuses of its replies.
pub const EVENTS: [&str; 5] = [
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
];
/// The payload version the bridge parses (`phone_number_id` at the root).
pub const PAYLOAD_VERSION: &str = "v2";
/// The file written when neither `--config` nor `CLAWBRIDGE_CONFIG` names one.
const DEFAULT_FILE: &str = "clawbridge.toml";

/// Choose the number, register its webhook in Kapso, store the secret, write the config file
#[derive(Debug, Clone, Default, Args)]
pub struct SetupArgs {
    /// Use this number (its phone number id, as listed) without asking.
    #[arg(long, value_name = "ID")]
    pub phone_number_id: Option<String>,
    /// The https base at which the internet reaches this bridge (default: CLAWBRIDGE_PUBLIC_URL);
    /// the webhook is <URL>/webhook. In tailscale mode, the funnel URL `serve` prints.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print every request and the file change it would make, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Give the webhook a new secret even when the one it has works.
    #[arg(long)]
    pub rotate_secret: bool,
    /// Afterwards, ask Kapso for a test delivery (the bridge must be running to receive it).
    #[arg(long)]
    pub send_test: bool,
}

/// Runs the setup; the report goes to stdout.
///
/// # Errors
/// What the operator must fix (no API key, no public URL, several numbers and nobody to ask,
/// Kapso's refusal), with the fix.
pub async fn run(args: &SetupArgs, host: &dyn CliHost) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout();
    let interactive = std::io::stdin().is_terminal() && out.is_terminal();
    let mut stdin = interactive.then(|| std::io::BufReader::new(std::io::stdin()));
    let ask = stdin.as_mut().map(|input| input as &mut (dyn BufRead + Send));
    setup(args, host, ask, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}

/// [`run`] with the operator's terminal passed in (`None`: nobody to ask) and the report's
/// destination.
///
/// # Errors
/// As [`run`].
pub async fn setup(
    args: &SetupArgs,
    host: &dyn CliHost,
    ask: Option<&mut (dyn BufRead + Send)>,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let dry = args.dry_run;
    let path = host.config_file().map_or_else(|| PathBuf::from(DEFAULT_FILE), std::path::Path::to_path_buf);
    let mut file = ConfigFile::read(&path)?;
    let table = file.table("whatsapp")?;
    let env = |name: &str| host.env(name);
    let (settings, api_key) = WhatsAppConfig::load_for_setup(table.as_ref(), &env)?;
    let api_key = api_key.ok_or(
        "KAPSO_API_KEY is not set: export KAPSO_API_KEY=… (a project API key: Kapso dashboard → API keys), then run \
         setup again",
    )?;
    let webhook = webhook_url(args.url.as_deref(), host.public_url(), settings.mode)?;
    let client = PlatformClient::new(&settings, api_key)?.with_retry(host.retry());
    let say = |out: &mut (dyn Write + Send), line: String| writeln!(out, "{line}").map_err(CliError::from);
    if dry {
        say(out, "dry run: only reads are made; every change is printed instead".to_owned())?;
    }
    if host.config_file().is_none() {
        say(out, format!("no --config FILE (or CLAWBRIDGE_CONFIG): using ./{DEFAULT_FILE}"))?;
    }

    // 1. The number.
    let configured = settings.accounts.iter().find(|a| a.id.as_str() == "default").map(|a| a.phone_number_id.clone());
    say(out, format!("GET {}", client.phone_numbers_url()))?;
    let number = match &args.phone_number_id {
        Some(id) => {
            let id = id.trim();
            match client.phone_numbers(Some(id)).await.map_err(|e| kapso(&e))?.pop() {
                Some(number) => number,
                None => {
                    let all = client.phone_numbers(None).await.map_err(|e| kapso(&e))?;
                    return Err(format!(
                        "--phone-number-id {id} is not a number of this Kapso project. Its numbers are:\n{}",
                        listing(&all)
                    )
                    .into());
                }
            }
        }
        None => {
            let numbers = client.phone_numbers(None).await.map_err(|e| kapso(&e))?;
            if let Some(id) = &configured
                && !numbers.iter().any(|n| &n.phone_number_id == id)
            {
                say(out, format!("note: the configured phone number id {id} is not in this project"))?;
            }
            match choose(numbers, configured.as_deref())? {
                Choice::Chosen(number) => number,
                Choice::Ask(numbers) => match ask {
                    Some(input) => prompt(&numbers, input, out)?,
                    None => {
                        return Err(format!(
                            "this Kapso project has {} numbers and there is no terminal to ask on; choose one with \
                             --phone-number-id ID:\n{}",
                            numbers.len(),
                            listing(&numbers)
                        )
                        .into());
                    }
                },
            }
        }
    };
    let pnid = number.phone_number_id.clone();
    say(out, format!("number: {}", number.label()))?;

    // 2. Its webhook for our URL.
    say(out, format!("GET {}", client.webhooks_url(&pnid)))?;
    let hooks = client.webhooks(&pnid).await.map_err(|e| kapso(&e))?;
    let existing = hooks.iter().find(|h| same_url(&h.url, &webhook.url)).cloned();
    for other in hooks.iter().filter(|h| !same_url(&h.url, &webhook.url)) {
        if other.events.iter().any(|e| e.starts_with("whatsapp.message.")) && other.active != Some(false) {
            say(out, format!("note: webhook {} also receives this number's messages, at {}", other.id, other.url))?;
        }
    }

    // 3. The secret.
    let secrets = if dry {
        host.existing_secrets(SECRETS_NAMESPACE, SecretsAt::Store).await?
    } else {
        Some(host.secrets(SECRETS_NAMESPACE, SecretsAt::Store).await?)
    };
    let stored = match &secrets {
        Some(secrets) => secrets.get(STORED_WEBHOOK_SECRET).await.map_err(|e| {
            format!("the stored webhook secret: {e} (CLAWBRIDGE_MASTER_KEY must be the key it was stored with)")
        })?,
        None => None,
    };
    let secret = pick_secret(
        settings.webhook_secret.as_ref(),
        stored.as_ref(),
        existing.as_ref().and_then(|h| h.secret_key.as_ref()),
        args.rotate_secret,
    )?;

    // 4. Create or change the webhook.
    let registered = match &existing {
        None => {
            let spec = WebhookSpec {
                url: Some(webhook.url.clone()),
                secret_key: Some(secret.value.clone()),
                events: Some(EVENTS.iter().map(|e| (*e).to_owned()).collect()),
                active: Some(true),
                payload_version: Some(PAYLOAD_VERSION.to_owned()),
            };
            say(out, format!("{}POST {}", if dry { "would " } else { "" }, client.webhooks_url(&pnid)))?;
            say(out, format!("  {}", spec.redacted_body()))?;
            if dry {
                None
            } else {
                let created = client.create_webhook(&pnid, &spec).await.map_err(|e| kapso(&e))?;
                say(out, format!("webhook created{}: {} ({})", id_of(&created), webhook.url, EVENTS.join(", ")))?;
                Some(created)
            }
        }
        Some(hook) => {
            let spec = changes(hook, &secret);
            if spec.is_empty() {
                say(out, format!("webhook {} for {} is up to date", hook.id, webhook.url))?;
                Some(hook.clone())
            } else {
                let url = client.webhook_url(&pnid, &hook.id);
                say(out, format!("{}PATCH {url}", if dry { "would " } else { "" }))?;
                say(out, format!("  {}", spec.redacted_body()))?;
                if dry {
                    None
                } else {
                    client.update_webhook(&pnid, &hook.id, &spec).await.map_err(|e| kapso(&e))?;
                    say(out, format!("webhook {} updated", hook.id))?;
                    Some(hook.clone())
                }
            }
        }
    };

    // 5. Keep the secret (only once Kapso has it: a secret stored for a webhook that was never
    //    changed would make the next run believe the webhook has it).
    match (secret.source, &secrets) {
        (Source::Configured, _) => {
            say(out, "secret: KAPSO_WEBHOOK_SECRET (whatsapp.webhook_secret), as configured".to_owned())?;
        }
        (Source::Stored, Some(secrets)) => say(out, format!("secret: kept, stored in {}", secrets.location()))?,
        (Source::New | Source::Listed, Some(secrets)) if !dry => {
            store(secrets.as_ref(), &secret.value).await?;
            say(out, format!("secret: new, stored in {}", secrets.location()))?;
        }
        (Source::New | Source::Listed, _) => {
            say(out, "secret: new; would be stored encrypted in the bridge's store".to_owned())?;
        }
        (Source::Stored, None) => {}
    }

    // 6. The config file.
    let mode = if settings.mode == DeliveryMode::Tailscale { "tailscale" } else { "domain" };
    let mut changed = Vec::new();
    if file.set("whatsapp", "phone_number_id", Setting::Str(&pnid))? {
        changed.push("whatsapp.phone_number_id");
    }
    if file.set("whatsapp", "mode", Setting::Str(mode))? {
        changed.push("whatsapp.mode");
    }
    if let Some(base) = &webhook.base_to_keep
        && host.public_url().is_none()
        && settings.mode != DeliveryMode::Tailscale
        && file.set("bridge", "public_url", Setting::Str(base))?
    {
        changed.push("bridge.public_url");
    }
    let shown = file.path().display().to_string();
    if !file.changed() {
        say(out, format!("config: {shown} is up to date"))?;
    } else if dry {
        say(out, format!("config: would {} {shown}:", if file.exists() { "change" } else { "create" }))?;
        for line in file.diff() {
            say(out, format!("  {line}"))?;
        }
    } else {
        let created = !file.exists();
        file.write()?;
        say(out, format!("config: {} {shown} ({})", if created { "created" } else { "updated" }, changed.join(", ")))?;
    }
    for (var, wanted) in [("KAPSO_PHONE_NUMBER_ID", pnid.as_str()), ("KAPSO_MODE", mode)] {
        if let Some(value) = host.env(var).filter(|v| !v.eq_ignore_ascii_case(wanted)) {
            say(
                out,
                format!("note: {var}={value} in the environment wins over the file: set it to {wanted} or unset it"),
            )?;
        }
    }

    // 7. A test delivery, when asked.
    if args.send_test {
        match registered.as_ref().map(|h| h.id.clone()).filter(|id| !id.is_empty()) {
            Some(id) => {
                say(out, format!("POST {}", client.test_url(&id)))?;
                let answer = client.test_webhook(&id).await.map_err(|e| kapso(&e))?;
                say(out, format!("test delivery requested: {answer}"))?;
            }
            None if dry => say(out, "would request a test delivery".to_owned())?,
            None => say(out, "note: Kapso did not return the webhook's id; no test delivery".to_owned())?,
        }
    }

    if dry {
        say(out, "dry run: nothing was changed".to_owned())?;
    } else if mode == "tailscale" {
        say(
            out,
            format!("next: clawbridge --config {shown} serve (it publishes {} through Tailscale Funnel)", webhook.url),
        )?;
    } else {
        say(
            out,
            format!("next: clawbridge --config {shown} serve, behind the reverse proxy that serves {}", webhook.url),
        )?;
    }
    Ok(())
}

/// The webhook URL, and the public base to remember in the file (when `--url` gave one).
#[derive(Debug, PartialEq, Eq)]
struct WebhookUrl {
    url: String,
    base_to_keep: Option<String>,
}

/// `--url` or `CLAWBRIDGE_PUBLIC_URL`, plus `/webhook` (a URL that already ends with the
/// webhook path is taken as it is).
fn webhook_url(flag: Option<&str>, public: Option<&str>, mode: DeliveryMode) -> Result<WebhookUrl, String> {
    let Some(raw) = flag.or(public).map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(if mode == DeliveryMode::Tailscale {
            "KAPSO_MODE=tailscale: the funnel URL is only known while `clawbridge serve` runs (it prints \"register \
             this webhook URL in Kapso: https://…\"): pass that URL with --url, or set CLAWBRIDGE_PUBLIC_URL"
                .to_owned()
        } else {
            "no public URL: pass --url https://bridge.example.com (where your reverse proxy serves this bridge), or \
             set CLAWBRIDGE_PUBLIC_URL (bridge.public_url)"
                .to_owned()
        });
    };
    let what = if flag.is_some() { "--url" } else { "CLAWBRIDGE_PUBLIC_URL" };
    let parsed = reqwest::Url::parse(raw).map_err(|e| format!("{what} {raw:?} is not a URL: {e}"))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(format!(
            "{what} is {raw:?}: Kapso delivers to a public https URL, e.g. https://bridge.example.com"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{what} is {raw:?}: give the base URL without a query or fragment"));
    }
    let trimmed = raw.trim_end_matches('/');
    let path = crate::tailscale::WEBHOOK_PATH;
    let (url, base) = match trimmed.strip_suffix(path) {
        Some(base) => (trimmed.to_owned(), base.to_owned()),
        None => (format!("{trimmed}{path}"), trimmed.to_owned()),
    };
    Ok(WebhookUrl { url, base_to_keep: flag.is_some().then_some(base) })
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/').eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
}

/// Which number, before anyone is asked.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    Chosen(PhoneNumber),
    Ask(Vec<PhoneNumber>),
}

/// The configured number when the project has it, else the only one; several: ask.
fn choose(mut numbers: Vec<PhoneNumber>, configured: Option<&str>) -> Result<Choice, String> {
    if let Some(at) = configured.and_then(|id| numbers.iter().position(|n| n.phone_number_id == id)) {
        return Ok(Choice::Chosen(numbers.swap_remove(at)));
    }
    match numbers.len() {
        0 => Err("this Kapso project has no WhatsApp number yet: connect one in the Kapso dashboard (WhatsApp → \
                  Phone numbers), then run setup again"
            .to_owned()),
        1 => Ok(Choice::Chosen(numbers.remove(0))),
        _ => Ok(Choice::Ask(numbers)),
    }
}

/// Asks at the terminal: a number from the list, or a phone number id; three tries.
fn prompt(
    numbers: &[PhoneNumber],
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<PhoneNumber, CliError> {
    writeln!(out, "this Kapso project has {} numbers:", numbers.len())?;
    for (i, number) in numbers.iter().enumerate() {
        writeln!(out, "  {}. {}", i + 1, number.label())?;
    }
    for _ in 0..3 {
        write!(out, "which one should the bridge answer on? [1-{}] ", numbers.len())?;
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let answer = line.trim();
        let picked = answer
            .parse::<usize>()
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| numbers.get(i))
            .or_else(|| numbers.iter().find(|n| n.phone_number_id == answer));
        if let Some(number) = picked {
            return Ok(number.clone());
        }
        writeln!(out, "{answer:?} is not one of them")?;
    }
    Err("no number chosen: run setup again, or pass --phone-number-id ID".into())
}

fn listing(numbers: &[PhoneNumber]) -> String {
    if numbers.is_empty() {
        return "  (none: connect a number in the Kapso dashboard)".to_owned();
    }
    numbers.iter().map(|n| format!("  {}", n.label())).collect::<Vec<_>>().join("\n")
}

/// Where the webhook's secret comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// `KAPSO_WEBHOOK_SECRET` / `whatsapp.webhook_secret`: the operator's; never stored.
    Configured,
    /// Stored by an earlier run.
    Stored,
    /// Shown by Kapso for the existing webhook (adopted, then stored).
    Listed,
    /// Generated now.
    New,
}

#[derive(Debug)]
struct ChosenSecret {
    value: SecretString,
    source: Source,
}

/// The secret to sign with: the configured one, else the stored one, else the one Kapso shows,
/// else a new one; `--rotate-secret` always a new one (refused when the operator configured it).
fn pick_secret(
    configured: Option<&SecretString>,
    stored: Option<&SecretString>,
    listed: Option<&SecretString>,
    rotate: bool,
) -> Result<ChosenSecret, String> {
    if let Some(value) = configured {
        if rotate {
            return Err("--rotate-secret: the secret is KAPSO_WEBHOOK_SECRET (whatsapp.webhook_secret), which you \
                        manage; change it there, or unset it to let setup generate and store one"
                .to_owned());
        }
        return Ok(ChosenSecret { value: value.clone(), source: Source::Configured });
    }
    if !rotate {
        if let Some(value) = stored {
            return Ok(ChosenSecret { value: value.clone(), source: Source::Stored });
        }
        if let Some(value) = listed {
            return Ok(ChosenSecret { value: value.clone(), source: Source::Listed });
        }
    }
    Ok(ChosenSecret { value: generate_secret()?, source: Source::New })
}

/// 32 random bytes, hex.
fn generate_secret() -> Result<SecretString, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot generate a webhook secret: {e}"))?;
    let secret = SecretString::from(hex::encode(bytes));
    bytes.fill(0);
    Ok(secret)
}

/// What an existing webhook for our URL lacks: missing events (the operator's others are kept),
/// inactive, another payload version, or a secret it does not have.
fn changes(hook: &Webhook, secret: &ChosenSecret) -> WebhookSpec {
    let missing: Vec<&str> = EVENTS.iter().copied().filter(|e| !hook.events.iter().any(|h| h == e)).collect();
    let events = (!missing.is_empty()).then(|| {
        let mut all = hook.events.clone();
        all.extend(missing.iter().map(|e| (*e).to_owned()));
        all
    });
    // Kapso's listing is the only view of the webhook's secret: when it shows one, it must be
    // ours; when it shows none, ours is known to be set only if an earlier run (or the operator)
    // set it — a secret generated now is not.
    let secret_differs = match &hook.secret_key {
        Some(listed) => listed.expose_secret() != secret.value.expose_secret(),
        None => secret.source == Source::New,
    };
    WebhookSpec {
        url: None,
        secret_key: secret_differs.then(|| secret.value.clone()),
        events,
        active: (hook.active == Some(false)).then_some(true),
        payload_version: hook
            .payload_version
            .as_deref()
            .filter(|v| *v != PAYLOAD_VERSION)
            .map(|_| PAYLOAD_VERSION.to_owned()),
    }
}

async fn store(secrets: &dyn Secrets, value: &SecretString) -> Result<(), String> {
    secrets.put(STORED_WEBHOOK_SECRET, value).await.map_err(|e| {
        format!(
            "Kapso has the webhook's new secret, but it could not be stored: {e}. Run setup again (it will set a new \
             one), or set KAPSO_WEBHOOK_SECRET yourself"
        )
    })
}

fn id_of(hook: &Webhook) -> String {
    if hook.id.is_empty() { String::new() } else { format!(" ({})", hook.id) }
}

fn kapso(error: &clawbridge_core::SendError) -> String {
    match error {
        clawbridge_core::SendError::AuthExpired => {
            "Kapso rejected the API key (HTTP 401/403): check KAPSO_API_KEY (a project API key, Kapso dashboard → API \
             keys)"
                .to_owned()
        }
        other => format!("Kapso Platform API: {}", describe(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(id: &str) -> PhoneNumber {
        PhoneNumber { phone_number_id: id.to_owned(), ..PhoneNumber::default() }
    }

    #[test]
    fn the_webhook_url_is_the_public_base_plus_webhook() {
        let url = webhook_url(None, Some("https://bridge.example.com/"), DeliveryMode::Domain).unwrap();
        assert_eq!(url, WebhookUrl { url: "https://bridge.example.com/webhook".into(), base_to_keep: None });
        let url = webhook_url(Some("https://b.example/webhook"), None, DeliveryMode::Domain).unwrap();
        assert_eq!(
            url,
            WebhookUrl { url: "https://b.example/webhook".into(), base_to_keep: Some("https://b.example".into()) }
        );
        let url = webhook_url(Some("https://box.ts.net:8443"), Some("https://x.example"), DeliveryMode::Tailscale);
        assert_eq!(url.unwrap().url, "https://box.ts.net:8443/webhook", "--url wins");
        assert!(webhook_url(None, None, DeliveryMode::Tailscale).unwrap_err().contains("--url"));
        assert!(webhook_url(None, None, DeliveryMode::Polling).unwrap_err().contains("CLAWBRIDGE_PUBLIC_URL"));
        assert!(webhook_url(Some("http://b.example"), None, DeliveryMode::Domain).unwrap_err().contains("https"));
        assert!(webhook_url(Some("https://b.example/?x=1"), None, DeliveryMode::Domain).is_err());
        assert!(same_url("https://B.example/webhook/", "https://b.example/webhook"));
    }

    #[test]
    fn the_number_is_the_configured_one_the_only_one_or_asked_for() {
        assert!(choose(vec![], None).unwrap_err().contains("no WhatsApp number"));
        assert_eq!(choose(vec![number("1")], None).unwrap(), Choice::Chosen(number("1")));
        assert_eq!(choose(vec![number("1"), number("2")], Some("2")).unwrap(), Choice::Chosen(number("2")));
        assert_eq!(
            choose(vec![number("1"), number("2")], Some("9")).unwrap(),
            Choice::Ask(vec![number("1"), number("2")])
        );
    }

    #[test]
    fn the_prompt_takes_a_position_or_an_id() {
        let numbers = [number("111"), number("222")];
        let mut out = Vec::new();
        let picked = prompt(&numbers, &mut "2\n".as_bytes(), &mut out).unwrap();
        assert_eq!(picked.phone_number_id, "222");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("  1. 111") && text.contains("[1-2]"), "{text}");
        let picked = prompt(&numbers, &mut "7\n111\n".as_bytes(), &mut Vec::new()).unwrap();
        assert_eq!(picked.phone_number_id, "111");
        assert!(prompt(&numbers, &mut "".as_bytes(), &mut Vec::new()).is_err(), "end of input");
    }

    #[test]
    fn a_working_secret_is_kept_and_rotated_only_when_asked() {
        let (mine, theirs) = (SecretString::from("mine"), SecretString::from("theirs"));
        let pick = |c, s, l, r| pick_secret(c, s, l, r).map(|p| (p.source, p.value.expose_secret().to_owned()));
        assert_eq!(pick(Some(&mine), Some(&theirs), None, false).unwrap(), (Source::Configured, "mine".into()));
        assert!(pick(Some(&mine), None, None, true).unwrap_err().contains("KAPSO_WEBHOOK_SECRET"));
        assert_eq!(pick(None, Some(&mine), Some(&theirs), false).unwrap(), (Source::Stored, "mine".into()));
        assert_eq!(pick(None, None, Some(&theirs), false).unwrap(), (Source::Listed, "theirs".into()));
        let (source, fresh) = pick(None, Some(&mine), None, true).unwrap();
        assert_eq!(source, Source::New);
        assert_eq!(fresh.len(), 64);
        assert!(fresh.chars().all(|c| c.is_ascii_hexdigit()) && fresh != "mine");
        assert_ne!(pick(None, None, None, false).unwrap().1, fresh, "random each time");
    }

    #[test]
    fn only_what_differs_is_changed() {
        let ours = EVENTS.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        let stored = ChosenSecret { value: "s".into(), source: Source::Stored };
        let hook = Webhook {
            id: "w1".into(),
            url: "https://b.example/webhook".into(),
            events: ours.clone(),
            active: Some(true),
            payload_version: Some("v2".into()),
            ..Webhook::default()
        };
        assert!(changes(&hook, &stored).is_empty(), "in place");
        let unsaid = Webhook { active: None, payload_version: None, ..hook.clone() };
        assert!(changes(&unsaid, &stored).is_empty(), "what Kapso does not say is not changed");
        let new = ChosenSecret { value: "n".into(), source: Source::New };
        let spec = changes(&hook, &new);
        assert!(spec.secret_key.is_some() && spec.events.is_none() && spec.active.is_none());
        let listed_other = Webhook { secret_key: Some("other".into()), ..hook.clone() };
        assert!(changes(&listed_other, &stored).secret_key.is_some(), "Kapso shows another secret");
        let partial = Webhook {
            events: vec!["whatsapp.message.received".into(), "whatsapp.conversation.ended".into()],
            active: Some(false),
            payload_version: Some("v1".into()),
            ..hook
        };
        let spec = changes(&partial, &stored);
        let events = spec.events.unwrap();
        assert!(events.contains(&"whatsapp.conversation.ended".to_owned()), "the operator's events stay");
        assert!(EVENTS.iter().all(|e| events.iter().any(|x| x == e)));
        assert_eq!(
            (spec.active, spec.payload_version.as_deref(), spec.secret_key.is_none()),
            (Some(true), Some("v2"), true)
        );
    }
}
