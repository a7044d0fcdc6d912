//! `clawbridge whatsapp …` (and the Go bridge's `kapso-whatsapp-cli send`): text, media (a URL,
//! or a local file checked against WhatsApp's limits and uploaded: `local_file`), templates,
//! reactions and replies; prints `sent (id: <wamid>)` or exits non-zero with the API's reason.
//! [`go_bridge`] is what the Go bridge's `kapso-whatsapp-*` binaries need of WhatsApp.

pub mod go_bridge;
mod local_file;
pub mod setup;

use crate::client::{KapsoClient, MediaSource, Sent};
use crate::config::WhatsAppConfig;
use crate::plugin::describe;
use clap::{ArgGroup, Args, Parser, Subcommand};
use clawbridge_core::MediaKind;
use clawbridge_core::retry::RetryPolicy;
use local_file::LocalFile;
use std::path::PathBuf;
use std::process::ExitCode;

/// WhatsApp through Kapso: send messages, media, templates and reactions; first-run setup.
#[derive(Debug, Parser)]
#[command(name = "whatsapp")]
pub struct WhatsappCli {
    /// WhatsApp action.
    #[command(subcommand)]
    pub action: WhatsappCommand,
}

/// `clawbridge whatsapp …`
#[derive(Debug, Subcommand)]
pub enum WhatsappCommand {
    /// Send a message from the configured number; prints `sent (id: <wamid>)`.
    Send(Box<SendArgs>),
    /// Choose the number, register its webhook in Kapso, store the secret, write the config file.
    Setup(Box<setup::SetupArgs>),
}

/// `clawbridge whatsapp send` (and `kapso-whatsapp-cli send`).
#[derive(Debug, Clone, Default, Args)]
#[command(group(
    ArgGroup::new("content").required(true).args(["text", "image", "document", "audio", "video", "template", "reaction"])
))]
pub struct SendArgs {
    /// Recipient with country code, e.g. +15551234567 (or a WhatsApp user id such as US.13491208655302741918).
    #[arg(long, value_name = "+NUMBER")]
    pub to: String,
    /// Text to send (longer than 4096 characters is refused by WhatsApp).
    #[arg(long)]
    pub text: Option<String>,
    /// An image: an https URL, or a local JPEG/PNG file (≤ 5 MB) that is uploaded first.
    #[arg(long, value_name = "URL|FILE")]
    pub image: Option<String>,
    /// A document: an https URL, or a local file (PDF, Office, text; ≤ 100 MB) that is uploaded first.
    #[arg(long, value_name = "URL|FILE")]
    pub document: Option<String>,
    /// Audio: an https URL, or a local AAC/AMR/MP3/M4A/OGG file (≤ 16 MB) that is uploaded first.
    #[arg(long, value_name = "URL|FILE")]
    pub audio: Option<String>,
    /// A video: an https URL, or a local MP4/3GP file (≤ 16 MB) that is uploaded first.
    #[arg(long, value_name = "URL|FILE")]
    pub video: Option<String>,
    /// Caption of an image, video or document (≤ 1024 characters).
    #[arg(long)]
    pub caption: Option<String>,
    /// The file name a document is shown with (default: the file's own name).
    #[arg(long)]
    pub filename: Option<String>,
    /// Quote this earlier message (its wamid); with --reaction, the message reacted to.
    #[arg(long, value_name = "WAMID")]
    pub reply_to: Option<String>,
    /// Send this approved template (the only kind of message allowed outside the 24-hour window).
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// The template's language code, e.g. en_US (required with --template).
    #[arg(long, value_name = "CODE", requires = "template")]
    pub lang: Option<String>,
    /// A template body parameter: NAME=VALUE for named parameters, or VALUE for positional ones; repeat.
    #[arg(long = "param", value_name = "NAME=VALUE", requires = "template")]
    pub params: Vec<String>,
    /// React to the message given by --reply-to with this emoji ("" removes the reaction).
    #[arg(long, value_name = "EMOJI", requires = "reply_to")]
    pub reaction: Option<String>,
    /// Which configured number sends (`[whatsapp.accounts.<id>]`); the first one by default.
    #[arg(long, default_value = "default")]
    pub account: String,
}

/// Runs `clawbridge whatsapp send`; failures are printed and turned into a non-zero exit code.
pub async fn run_send(whatsapp: Option<&WhatsAppConfig>, retry: RetryPolicy, args: &SendArgs) -> ExitCode {
    print_send_result(send(whatsapp, retry, args).await)
}

/// Prints `sent (id: <wamid>)` (`sent` when Kapso gave no id), or `error: <reason>` on stderr with exit code 1.
pub fn print_send_result(result: Result<Sent, String>) -> ExitCode {
    match result {
        // Kapso accepted the message; an answer without an id (rare) is still a send.
        Ok(sent) if sent.message_id.is_empty() => {
            println!("sent");
            ExitCode::SUCCESS
        }
        Ok(sent) => {
            println!("sent (id: {})", sent.message_id);
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// WhatsApp's longest text message, in characters.
const MAX_TEXT_CHARS: usize = 4096;
/// WhatsApp's longest media caption, in characters.
const MAX_CAPTION_CHARS: usize = 1024;

/// What to send, validated from the arguments before anything goes over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Text(String),
    Media { kind: MediaKind, source: Source, caption: Option<String>, filename: Option<String> },
    Template { name: String, lang: String, params: Vec<(String, String)> },
    Reaction { message_id: String, emoji: String },
}

/// Media given as a link WhatsApp fetches, or a local file that is uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Link(String),
    File(PathBuf),
}

impl Content {
    fn from_args(args: &SendArgs) -> Result<Self, String> {
        let media = [
            (MediaKind::Image, &args.image),
            (MediaKind::Document, &args.document),
            (MediaKind::Audio, &args.audio),
            (MediaKind::Video, &args.video),
        ];
        let media: Vec<(MediaKind, &String)> =
            media.into_iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))).collect();
        let kinds = usize::from(args.text.is_some())
            + media.len()
            + usize::from(args.template.is_some())
            + usize::from(args.reaction.is_some());
        if kinds != 1 {
            return Err(
                "give exactly one of --text, --image, --document, --audio, --video, --template, --reaction".into()
            );
        }
        if args.caption.is_some() && !media.iter().any(|(k, _)| *k != MediaKind::Audio) {
            return Err("--caption goes with --image, --video or --document".into());
        }
        if args.filename.is_some() && args.document.is_none() {
            return Err("--filename goes with --document".into());
        }
        if let Some(caption) = &args.caption
            && caption.chars().count() > MAX_CAPTION_CHARS
        {
            return Err(format!(
                "--caption has {} characters; WhatsApp allows {MAX_CAPTION_CHARS}: shorten it",
                caption.chars().count()
            ));
        }
        if let Some(text) = &args.text {
            if text.trim().is_empty() {
                return Err("--text is empty".into());
            }
            let chars = text.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(format!(
                    "--text has {chars} characters; WhatsApp allows {MAX_TEXT_CHARS} per message: shorten it or send several"
                ));
            }
            return Ok(Self::Text(text.clone()));
        }
        if let Some((kind, raw)) = media.first() {
            let source = if raw.starts_with("https://") || raw.starts_with("http://") {
                Source::Link((*raw).clone())
            } else {
                Source::File(PathBuf::from(raw))
            };
            return Ok(Self::Media {
                kind: *kind,
                source,
                caption: args.caption.clone(),
                filename: args.filename.clone(),
            });
        }
        if let Some(name) = &args.template {
            let lang =
                args.lang.clone().ok_or("--lang is required with --template (the template's language, e.g. en_US)")?;
            return Ok(Self::Template { name: name.clone(), lang, params: parse_params(&args.params)? });
        }
        let emoji = args.reaction.clone().unwrap_or_default();
        let message_id = args.reply_to.clone().ok_or("--reaction needs --reply-to WAMID (the message reacted to)")?;
        Ok(Self::Reaction { message_id, emoji })
    }
}

/// `NAME=VALUE` pairs are named parameters, bare values positional; the two do not mix.
fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    let is_name = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let params: Vec<(String, String)> = raw
        .iter()
        .map(|p| match p.split_once('=') {
            Some((name, value)) if is_name(name) => (name.to_owned(), value.to_owned()),
            _ => (String::new(), p.clone()),
        })
        .collect();
    let named = params.iter().filter(|(n, _)| !n.is_empty()).count();
    if named != 0 && named != params.len() {
        return Err("--param: use NAME=VALUE for every parameter (named template) or bare values for every \
                    parameter (positional template), not both"
            .into());
    }
    Ok(params)
}

/// Sends what the arguments describe.
///
/// # Errors
/// A message for the user: a bad argument, or the API's reason.
pub async fn send(whatsapp: Option<&WhatsAppConfig>, retry: RetryPolicy, args: &SendArgs) -> Result<Sent, String> {
    let content = Content::from_args(args)?;
    let whatsapp = whatsapp.ok_or_else(not_configured)?;
    // `[retry.http]`: what may pass is retried within each call; a timed-out send is not repeated.
    let client = client_for(whatsapp, &args.account)?.with_retry(retry);
    let to = args.to.trim();
    let reply_to = args.reply_to.as_deref().filter(|_| !matches!(content, Content::Reaction { .. }));
    let sent = match content {
        Content::Text(text) => client.send_text(to, &text, reply_to).await,
        Content::Media { kind, source, caption, filename } => {
            let (source, filename) = match source {
                Source::Link(url) => {
                    let name =
                        filename.or_else(|| (kind == MediaKind::Document).then(|| link_file_name(&url)).flatten());
                    (MediaSource::Link(url), name)
                }
                Source::File(path) => {
                    let file = LocalFile::read(kind, &path)?;
                    let name = filename.unwrap_or_else(|| file.name.clone());
                    let id = client
                        .upload_media(file.bytes, file.mime, &file.name)
                        .await
                        .map_err(|e| format!("uploading {}: {}", path.display(), describe(&e)))?;
                    (MediaSource::Id(id), Some(name))
                }
            };
            client.send_media(to, kind, &source, caption.as_deref(), filename.as_deref(), reply_to).await
        }
        Content::Template { name, lang, params } => client.send_template(to, &name, &lang, &params).await,
        Content::Reaction { message_id, emoji } => client.send_reaction(to, &message_id, &emoji).await,
    };
    sent.map_err(|e| describe(&e))
}

fn not_configured() -> String {
    "WhatsApp is not configured: set KAPSO_API_KEY and KAPSO_PHONE_NUMBER_ID (or [whatsapp] in the config file)"
        .to_owned()
}

/// The Kapso client of account `id` (`default` falls back to the first configured number).
///
/// # Errors
/// An unknown account, naming the configured ones.
pub fn client_for(whatsapp: &WhatsAppConfig, id: &str) -> Result<KapsoClient, String> {
    let account = whatsapp
        .account(id)
        .or_else(|| if id == "default" { whatsapp.accounts.first() } else { None })
        .ok_or_else(|| {
            let known: Vec<&str> = whatsapp.accounts.iter().map(|a| a.id.as_str()).collect();
            format!("no WhatsApp account {id:?}: configured are {}", known.join(", "))
        })?;
    KapsoClient::new(whatsapp, account)
}

/// The last path segment of a link, as a document's display name.
fn link_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name.contains('.')).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        send: SendArgs,
    }

    fn parse(args: &[&str]) -> Result<Content, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("send").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        Content::from_args(&cli.send)
    }

    #[test]
    fn arguments_become_content() {
        assert_eq!(parse(&["--to", "+1555", "--text", "hi"]).unwrap(), Content::Text("hi".into()));
        assert_eq!(
            parse(&["--to", "+1555", "--image", "https://x.test/a.jpg", "--caption", "c"]).unwrap(),
            Content::Media {
                kind: MediaKind::Image,
                source: Source::Link("https://x.test/a.jpg".into()),
                caption: Some("c".into()),
                filename: None
            }
        );
        assert_eq!(
            parse(&["--to", "+1555", "--document", "./r.pdf"]).unwrap(),
            Content::Media {
                kind: MediaKind::Document,
                source: Source::File("./r.pdf".into()),
                caption: None,
                filename: None
            }
        );
        assert_eq!(
            parse(&["--to", "+1", "--template", "order", "--lang", "en_US", "--param", "name=Kim", "--param", "id=7"])
                .unwrap(),
            Content::Template {
                name: "order".into(),
                lang: "en_US".into(),
                params: vec![("name".into(), "Kim".into()), ("id".into(), "7".into())]
            }
        );
        assert_eq!(
            parse(&["--to", "+1", "--reaction", "👍", "--reply-to", "wamid.X"]).unwrap(),
            Content::Reaction { message_id: "wamid.X".into(), emoji: "👍".into() }
        );
    }

    #[test]
    fn mistakes_are_refused_before_sending() {
        assert!(parse(&["--to", "+1"]).is_err(), "nothing to send");
        assert!(parse(&["--to", "+1", "--text", "a", "--image", "b.jpg"]).is_err(), "two kinds");
        assert!(parse(&["--to", "+1", "--reaction", "👍"]).unwrap_err().contains("reply-to"));
        assert!(parse(&["--to", "+1", "--template", "t"]).unwrap_err().contains("--lang"));
        assert!(parse(&["--to", "+1", "--text", "a", "--caption", "c"]).unwrap_err().contains("--caption"));
        assert!(parse(&["--to", "+1", "--text", "  "]).unwrap_err().contains("empty"));
        let long = "가".repeat(4097);
        assert!(parse(&["--to", "+1", "--text", &long]).unwrap_err().contains("4097 characters"));
        assert!(parse(&["--to", "+1", "--text", &"가".repeat(4096)]).is_ok(), "4096 characters (not bytes) fit");
        let caption = "c".repeat(1025);
        assert!(parse(&["--to", "+1", "--image", "a.png", "--caption", &caption]).unwrap_err().contains("1024"));
        let err =
            parse(&["--to", "+1", "--template", "t", "--lang", "en", "--param", "a=1", "--param", "2"]).unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn positional_template_parameters_keep_equals_signs() {
        let params = parse_params(&["1+1=2".into(), "Kim".into()]).unwrap();
        assert_eq!(params, [(String::new(), "1+1=2".into()), (String::new(), "Kim".into())]);
    }

    #[test]
    fn documents_linked_by_url_keep_the_link_file_name() {
        assert_eq!(link_file_name("https://x.test/files/q3.pdf?token=1").as_deref(), Some("q3.pdf"));
        assert_eq!(link_file_name("https://x.test/download"), None);
    }
}
