//! `[bizmsg]` settings and their environment variables (DESIGN.md §6).
//!
//! ```toml
//! [bizmsg]
//! dealer = "nhn"                 # BIZMSG_DEALER: nhn | solapi | infobip
//! senderKey = "…"                # BIZMSG_SENDER_KEY: NHN sender key / Solapi pfId / Infobip sender
//! smsFrom = "02-1234-5678"       # BIZMSG_SMS_FROM: the caller id of SMS/LMS fallbacks
//! optOutNumber = "080-123-4567"  # the 080 opt-out number ads must carry
//! ratePerHour = 1000             # per sender key (the design seed's default)
//! appRatePerSecond = 100         # BIZMSG_APP_RATE_PER_SECOND: every sender key of the dealer
//!                                # credential together (unset: no such ceiling)
//!
//! # The listener's public address is the bridge's one setting, `[bridge] public_url` /
//! # CLAWBRIDGE_PUBLIC_URL (the bridge hands it to this section): Infobip sends then name their
//! # report URL under it.
//!
//! [bizmsg.nhn]                   # NHN_BIZMSG_APP_KEY, NHN_BIZMSG_SECRET_KEY, NHN_BIZMSG_BASE_URL,
//! appKey = "…"                   # NHN_BIZMSG_WEBHOOK_SIGNATURE
//!
//! [bizmsg.infobip]               # INFOBIP_API_KEY, INFOBIP_BASE_URL,
//! webhookToken = "…"             # INFOBIP_WEBHOOK_TOKEN (POST /bizmsg/infobip/webhook)
//!
//! [bizmsg.solapi]                # SOLAPI_API_KEY, SOLAPI_API_SECRET, SOLAPI_BASE_URL,
//! webhookToken = "…"             # SOLAPI_WEBHOOK_TOKEN (POST /bizmsg/solapi/webhook)
//!
//! [bizmsg.accounts.outlet]       # more brands (sender keys), each with its own settings
//! senderKey = "…"
//!
//! [[bizmsg.templates]]           # AlimTalk templates (template.rs)
//! templateCode = "ORDER_SHIPPED"
//! text = "#{name}님, …"
//!
//! [[bizmsg.brandTemplates]]      # Brand Message ("basic") templates
//! templateCode = "WINTER_SALE"
//! chatBubbleType = "IMAGE"       # TEXT (default) or IMAGE
//! text = "#{name}님, 겨울 세일 …"
//! ```
//!
//! The environment configures the `default` account and wins over the file.

use crate::dealer::solapi::{DEFAULT_BASE_URL as SOLAPI_BASE_URL, SolapiAuth};
use crate::dealer::{DealerKind, Sender, nhn};
use crate::phone::SenderNumber;
use crate::template::{AlimTalkTemplate, BrandTemplate, BrandTemplates, Templates};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The design seed's default: AlimTalk messages per hour per sender key.
pub const DEFAULT_RATE_PER_HOUR: u32 = 1_000;

/// Reads one environment variable.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    dealer: Option<String>,
    sender_key: Option<String>,
    sms_from: Option<String>,
    opt_out_number: Option<String>,
    rate_per_hour: Option<u32>,
    app_rate_per_second: Option<u32>,
    nhn: Option<NhnFile>,
    solapi: Option<SolapiFile>,
    infobip: Option<InfobipFile>,
    #[serde(default)]
    templates: Vec<AlimTalkTemplate>,
    #[serde(default)]
    brand_templates: Vec<BrandTemplate>,
    #[serde(default)]
    accounts: BTreeMap<String, AccountFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NhnFile {
    app_key: Option<String>,
    secret_key: Option<String>,
    base_url: Option<String>,
    webhook_signature: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SolapiFile {
    api_key: Option<String>,
    api_secret: Option<String>,
    base_url: Option<String>,
    webhook_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InfobipFile {
    api_key: Option<String>,
    base_url: Option<String>,
    webhook_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountFile {
    sender_key: Option<String>,
    sms_from: Option<String>,
    opt_out_number: Option<String>,
    rate_per_hour: Option<u32>,
}

/// The dealer and its credentials.
#[derive(Clone, Debug)]
pub enum DealerSettings {
    /// NHN Cloud.
    Nhn {
        /// `NHN_BIZMSG_APP_KEY` (a path parameter, not secret on its own).
        app_key: String,
        /// `NHN_BIZMSG_SECRET_KEY`.
        secret_key: SecretString,
        /// `NHN_BIZMSG_WEBHOOK_SIGNATURE`: the value NHN sends in `X-Toast-Webhook-Signature`.
        webhook_signature: Option<SecretString>,
    },
    /// Solapi.
    Solapi {
        /// `SOLAPI_API_KEY`.
        api_key: String,
        /// `SOLAPI_API_SECRET`.
        api_secret: SecretString,
        /// `SOLAPI_WEBHOOK_TOKEN`: what Solapi's result webhook must present
        /// ([`webhook::token_ok`](crate::webhook::token_ok)).
        webhook_token: Option<SecretString>,
    },
    /// Infobip.
    Infobip {
        /// `INFOBIP_API_KEY`.
        api_key: SecretString,
        /// `INFOBIP_WEBHOOK_TOKEN`: what Infobip's delivery-report webhook must present, and
        /// the key of the `callbackData` signature of sends that name their report URL.
        webhook_token: Option<SecretString>,
    },
}

impl DealerSettings {
    /// Which dealer.
    pub fn kind(&self) -> DealerKind {
        match self {
            Self::Nhn { .. } => DealerKind::Nhn,
            Self::Solapi { .. } => DealerKind::Solapi,
            Self::Infobip { .. } => DealerKind::Infobip,
        }
    }

    /// NHN's credentials, for its wire format.
    pub fn nhn_auth(&self) -> Option<nhn::NhnAuth> {
        match self {
            Self::Nhn { app_key, secret_key, .. } => {
                Some(nhn::NhnAuth { app_key: app_key.clone(), secret_key: secret_key.expose_secret().to_owned() })
            }
            _ => None,
        }
    }

    /// Solapi's credentials, for its signature.
    pub fn solapi_auth(&self) -> Option<SolapiAuth> {
        match self {
            Self::Solapi { api_key, api_secret, .. } => {
                Some(SolapiAuth { api_key: api_key.clone(), api_secret: api_secret.expose_secret().to_owned() })
            }
            _ => None,
        }
    }
}

/// One brand: a sender key with its own fallback number, opt-out number and rate.
#[derive(Clone, Debug)]
pub struct SenderAccount {
    /// `default`, or the name under `[bizmsg.accounts]`.
    pub id: String,
    /// The sender key and the SMS caller id.
    pub sender: Sender,
    /// The 080 opt-out number ads must carry.
    pub opt_out_number: Option<SenderNumber>,
    /// Messages per hour for this sender key.
    pub rate_per_hour: u32,
}

/// The validated `[bizmsg]` settings.
#[derive(Clone, Debug)]
pub struct BizmsgConfig {
    /// The dealer and its credentials.
    pub dealer: DealerSettings,
    /// The dealer's host, without a trailing slash.
    pub base_url: String,
    /// The sender keys, `default` first when configured.
    pub accounts: Vec<SenderAccount>,
    /// The AlimTalk templates.
    pub templates: Templates,
    /// The Brand Message templates (`[[bizmsg.brandTemplates]]`).
    pub brand_templates: BrandTemplates,
    /// Messages per second for the dealer credential (NHN app key, Solapi or Infobip API key),
    /// shared by every sender key on it; `None`: only the sender keys' hourly rates hold.
    pub app_rate_per_second: Option<u32>,
    /// The bridge's `CLAWBRIDGE_PUBLIC_URL` / `[bridge] public_url`, without a trailing slash: the
    /// base at which the dealers reach this listener. Infobip sends name `<it>/bizmsg/infobip/webhook` as their report URL
    /// when it and the webhook token are set.
    pub public_url: Option<String>,
}

impl BizmsgConfig {
    /// Reads `[bizmsg]` and the environment; `Ok(None)` when neither configures anything.
    ///
    /// # Errors
    /// A message naming the setting (its variable and its TOML key) and the fix.
    pub fn load(table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Self>, String> {
        let env = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let file: File = match table {
            Some(table) => File::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| format!("[bizmsg]: {}", e.message()))?,
            None => File::default(),
        };
        let dealer_name = env("BIZMSG_DEALER").or(file.dealer.clone());
        let sender_key = env("BIZMSG_SENDER_KEY").or(file.sender_key.clone());
        if table.is_none() && dealer_name.is_none() && sender_key.is_none() {
            return Ok(None);
        }
        let kind: DealerKind = dealer_name
            .ok_or("BIZMSG_DEALER (bizmsg.dealer) is not set: use nhn, solapi or infobip, the dealer you have a contract with")?
            .parse()?;
        let nhn = file.nhn.unwrap_or_default();
        let solapi = file.solapi.unwrap_or_default();
        let infobip = file.infobip.unwrap_or_default();
        let required = |value: Option<String>, var: &str, key: &str, what: &str| {
            value.ok_or_else(|| format!("{var} (bizmsg.{key}) is not set: {what}"))
        };
        let (dealer, base_url) = match kind {
            DealerKind::Nhn => (
                DealerSettings::Nhn {
                    app_key: required(
                        env("NHN_BIZMSG_APP_KEY").or(nhn.app_key),
                        "NHN_BIZMSG_APP_KEY",
                        "nhn.appKey",
                        "copy the app key of KakaoTalk Bizmessage from the NHN Cloud console",
                    )?,
                    secret_key: required(
                        env("NHN_BIZMSG_SECRET_KEY").or(nhn.secret_key),
                        "NHN_BIZMSG_SECRET_KEY",
                        "nhn.secretKey",
                        "copy the secret key (X-Secret-Key) from the NHN Cloud console",
                    )?
                    .into(),
                    webhook_signature: env("NHN_BIZMSG_WEBHOOK_SIGNATURE").or(nhn.webhook_signature).map(Into::into),
                },
                base_url(env("NHN_BIZMSG_BASE_URL").or(nhn.base_url), "NHN_BIZMSG_BASE_URL", "nhn.baseUrl")?
                    .unwrap_or_else(|| nhn::DEFAULT_BASE_URL.to_owned()),
            ),
            DealerKind::Solapi => (
                DealerSettings::Solapi {
                    api_key: required(
                        env("SOLAPI_API_KEY").or(solapi.api_key),
                        "SOLAPI_API_KEY",
                        "solapi.apiKey",
                        "create an API key in the Solapi console",
                    )?,
                    api_secret: required(
                        env("SOLAPI_API_SECRET").or(solapi.api_secret),
                        "SOLAPI_API_SECRET",
                        "solapi.apiSecret",
                        "the API secret shown once with the key in the Solapi console",
                    )?
                    .into(),
                    webhook_token: webhook_token(
                        env("SOLAPI_WEBHOOK_TOKEN").or(solapi.webhook_token),
                        "SOLAPI_WEBHOOK_TOKEN",
                        "solapi.webhookToken",
                    )?,
                },
                base_url(env("SOLAPI_BASE_URL").or(solapi.base_url), "SOLAPI_BASE_URL", "solapi.baseUrl")?
                    .unwrap_or_else(|| SOLAPI_BASE_URL.to_owned()),
            ),
            DealerKind::Infobip => (
                DealerSettings::Infobip {
                    api_key: required(
                        env("INFOBIP_API_KEY").or(infobip.api_key),
                        "INFOBIP_API_KEY",
                        "infobip.apiKey",
                        "create an API key in the Infobip portal",
                    )?
                    .into(),
                    webhook_token: webhook_token(
                        env("INFOBIP_WEBHOOK_TOKEN").or(infobip.webhook_token),
                        "INFOBIP_WEBHOOK_TOKEN",
                        "infobip.webhookToken",
                    )?,
                },
                base_url(env("INFOBIP_BASE_URL").or(infobip.base_url), "INFOBIP_BASE_URL", "infobip.baseUrl")?.ok_or(
                    "INFOBIP_BASE_URL (bizmsg.infobip.baseUrl) is not set: Infobip gives every account its own host, \
                         https://<account>.api.infobip.com (shown in the portal)",
                )?,
            ),
        };

        let sms_from = env("BIZMSG_SMS_FROM").or(file.sms_from);
        let mut accounts = Vec::new();
        if let Some(sender_key) = sender_key {
            accounts.push(account(
                "default",
                Some(sender_key),
                sms_from.as_deref(),
                file.opt_out_number.as_deref(),
                file.rate_per_hour,
            )?);
        }
        for (id, settings) in file.accounts {
            if id == "default" && !accounts.is_empty() {
                return Err(
                    "[bizmsg.accounts.default] and BIZMSG_SENDER_KEY (bizmsg.senderKey) both configure the default \
                     sender: keep one"
                        .to_owned(),
                );
            }
            accounts.push(account(
                &id,
                settings.sender_key,
                settings.sms_from.as_deref().or(sms_from.as_deref()),
                settings.opt_out_number.as_deref().or(file.opt_out_number.as_deref()),
                settings.rate_per_hour.or(file.rate_per_hour),
            )?);
        }
        if accounts.is_empty() {
            return Err(
                "BIZMSG_SENDER_KEY (bizmsg.senderKey) is not set: use the sender key (NHN), pfId (Solapi) or sender \
                 (Infobip) of your Kakao business channel"
                    .to_owned(),
            );
        }
        let templates = Templates::new(file.templates).map_err(|e| e.to_string())?;
        let brand_templates = BrandTemplates::new(file.brand_templates)?;
        let app_rate_per_second = match env("BIZMSG_APP_RATE_PER_SECOND") {
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                format!("BIZMSG_APP_RATE_PER_SECOND (bizmsg.appRatePerSecond) is {v:?}: give a whole number of messages per second")
            })?),
            None => file.app_rate_per_second,
        };
        if app_rate_per_second == Some(0) {
            return Err(
                "BIZMSG_APP_RATE_PER_SECOND (bizmsg.appRatePerSecond) is 0: give the messages per second your \
                 dealer allows for the whole app, or leave it unset for no such ceiling"
                    .to_owned(),
            );
        }
        let public_url = match env("CLAWBRIDGE_PUBLIC_URL") {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(url) => {
                return Err(format!(
                    "CLAWBRIDGE_PUBLIC_URL (bridge.public_url) is {url:?}: use the https base at which the dealers reach \
                     this listener, e.g. https://bridge.example.com"
                ));
            }
        };
        Ok(Some(Self { dealer, base_url, accounts, templates, brand_templates, app_rate_per_second, public_url }))
    }

    /// The name under which the store counts `appRatePerSecond`: the dealer and a digest of the
    /// credential (never the key itself), so every replica and every sender key on one app key
    /// count together.
    pub fn app_quota_key(&self) -> String {
        use sha2::Digest as _;
        let credential = match &self.dealer {
            DealerSettings::Nhn { app_key, .. } => app_key.clone(),
            DealerSettings::Solapi { api_key, .. } => api_key.clone(),
            DealerSettings::Infobip { api_key, .. } => api_key.expose_secret().to_owned(),
        };
        let digest = sha2::Sha256::digest(format!("{}\n{credential}", self.base_url).as_bytes());
        format!("bizmsg-app:{}:{}", self.dealer.kind().id(), hex::encode(&digest[..8]))
    }

    /// The sender of `id` (`default` when not given).
    ///
    /// # Errors
    /// An unknown account, with the ones there are.
    pub fn account(&self, id: &str) -> Result<&SenderAccount, String> {
        self.accounts.iter().find(|a| a.id == id).ok_or_else(|| {
            let known: Vec<&str> = self.accounts.iter().map(|a| a.id.as_str()).collect();
            format!("no bizmsg account {id:?}: the accounts are {}", known.join(", "))
        })
    }
}

fn account(
    id: &str,
    sender_key: Option<String>,
    sms_from: Option<&str>,
    opt_out: Option<&str>,
    rate_per_hour: Option<u32>,
) -> Result<SenderAccount, String> {
    let scope = if id == "default" { "bizmsg".to_owned() } else { format!("bizmsg.accounts.{id}") };
    let sender_key = sender_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        format!("{scope}.senderKey is not set: use the sender key of this brand's Kakao business channel")
    })?;
    let sms_from = sms_from.map(SenderNumber::parse).transpose()?;
    let opt_out_number = opt_out
        .map(|n| {
            let number = SenderNumber::parse(n).map_err(|_| {
                format!("{scope}.optOutNumber {n:?} is not a phone number: use the 080 number, e.g. 080-123-4567")
            })?;
            if !number.digits().starts_with("080") {
                return Err(format!("{scope}.optOutNumber {n:?}: the opt-out number of ads is an 080 number"));
            }
            Ok(number)
        })
        .transpose()?;
    let rate_per_hour = rate_per_hour.unwrap_or(DEFAULT_RATE_PER_HOUR);
    if rate_per_hour == 0 {
        return Err(format!("{scope}.ratePerHour is 0: give the messages per hour your dealer allows (default 1000)"));
    }
    Ok(SenderAccount { id: id.to_owned(), sender: Sender { sender_key, sms_from }, opt_out_number, rate_per_hour })
}

/// A webhook token, long enough not to be guessed.
fn webhook_token(value: Option<String>, var: &str, key: &str) -> Result<Option<SecretString>, String> {
    match value {
        Some(token) if token.chars().count() < crate::webhook::MIN_TOKEN_CHARS => Err(format!(
            "{var} (bizmsg.{key}) is shorter than {} characters: use a long random value (e.g. `openssl rand -hex 24`), \
             the same at the dealer",
            crate::webhook::MIN_TOKEN_CHARS
        )),
        other => Ok(other.map(Into::into)),
    }
}

fn base_url(value: Option<String>, var: &str, key: &str) -> Result<Option<String>, String> {
    let Some(url) = value else { return Ok(None) };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{var} (bizmsg.{key}) is {url:?}: use an https URL"));
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<Option<BizmsgConfig>, String> {
        let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let table = file.map(|f| toml::from_str::<toml::Table>(f).unwrap());
        BizmsgConfig::load(table.as_ref(), &|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_configured_is_none() {
        assert!(load(&[], None).unwrap().is_none());
    }

    #[test]
    fn the_environment_alone_configures_the_default_sender() {
        let config = load(
            &[
                ("BIZMSG_DEALER", "nhn"),
                ("BIZMSG_SENDER_KEY", "SK1"),
                ("BIZMSG_SMS_FROM", "02-1234-5678"),
                ("NHN_BIZMSG_APP_KEY", "APP"),
                ("NHN_BIZMSG_SECRET_KEY", "SECRET"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.dealer.kind(), DealerKind::Nhn);
        assert_eq!(config.base_url, nhn::DEFAULT_BASE_URL);
        let default = config.account("default").unwrap();
        assert_eq!(default.sender.sender_key, "SK1");
        assert_eq!(default.sender.sms_from.as_ref().unwrap().digits(), "0212345678");
        assert_eq!(default.rate_per_hour, DEFAULT_RATE_PER_HOUR);
        assert_eq!(config.app_rate_per_second, None, "no app ceiling unless one is given");
        assert_eq!(config.dealer.nhn_auth().unwrap().secret_key, "SECRET");
        // Secrets do not print.
        assert!(!format!("{config:?}").contains("SECRET"));
    }

    #[test]
    fn the_file_holds_brands_and_templates_and_the_environment_wins() {
        let file = r##"
            dealer = "solapi"
            senderKey = "PF-FILE"
            optOutNumber = "080-123-4567"
            ratePerHour = 500
            appRatePerSecond = 20
            [solapi]
            apiKey = "K"
            apiSecret = "S"
            baseUrl = "http://127.0.0.1:9/"
            [accounts.outlet]
            senderKey = "PF-OUTLET"
            ratePerHour = 50
            [[templates]]
            templateCode = "OTP"
            templateId = "KA01TP1"
            text = "인증번호는 #{code}입니다."
        "##;
        let config = load(&[("BIZMSG_SENDER_KEY", "PF-ENV")], Some(file)).unwrap().unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9");
        assert_eq!(config.app_rate_per_second, Some(20));
        let env_wins = load(&[("BIZMSG_APP_RATE_PER_SECOND", "5")], Some(file)).unwrap().unwrap();
        assert_eq!(env_wins.app_rate_per_second, Some(5));
        assert_eq!(config.account("default").unwrap().sender.sender_key, "PF-ENV");
        let outlet = config.account("outlet").unwrap();
        assert_eq!((outlet.sender.sender_key.as_str(), outlet.rate_per_hour), ("PF-OUTLET", 50));
        assert_eq!(outlet.opt_out_number.as_ref().unwrap().digits(), "0801234567");
        assert_eq!(config.templates.get("OTP").unwrap().variable_names(), ["code"]);
        assert!(config.account("nope").unwrap_err().contains("default, outlet"));
    }

    #[test]
    fn each_missing_or_wrong_setting_is_named_with_its_fix() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let nhn: &[(&str, &str)] = &[
            ("BIZMSG_DEALER", "nhn"),
            ("BIZMSG_SENDER_KEY", "S"),
            ("NHN_BIZMSG_APP_KEY", "A"),
            ("NHN_BIZMSG_SECRET_KEY", "K"),
        ];
        let cases: [Case<'_>; 10] = [
            (&[("BIZMSG_SENDER_KEY", "S")], None, "BIZMSG_DEALER (bizmsg.dealer) is not set"),
            (&[("BIZMSG_DEALER", "kakao")], None, "use nhn, solapi or infobip"),
            (&[("BIZMSG_DEALER", "nhn"), ("BIZMSG_SENDER_KEY", "S")], None, "NHN_BIZMSG_APP_KEY"),
            (
                &[("BIZMSG_DEALER", "solapi"), ("SOLAPI_API_KEY", "K"), ("BIZMSG_SENDER_KEY", "S")],
                None,
                "SOLAPI_API_SECRET",
            ),
            (
                &[("BIZMSG_DEALER", "infobip"), ("INFOBIP_API_KEY", "K"), ("BIZMSG_SENDER_KEY", "S")],
                None,
                "INFOBIP_BASE_URL",
            ),
            (
                &[
                    ("BIZMSG_DEALER", "infobip"),
                    ("INFOBIP_API_KEY", "K"),
                    ("INFOBIP_BASE_URL", "https://x.api.infobip.com"),
                ],
                None,
                "BIZMSG_SENDER_KEY",
            ),
            (&[], Some("dealer = \"nhn\"\nsenderkey = \"x\""), "unknown field `senderkey`"),
            (
                &[
                    ("BIZMSG_DEALER", "infobip"),
                    ("INFOBIP_API_KEY", "K"),
                    ("INFOBIP_BASE_URL", "https://x"),
                    ("BIZMSG_SENDER_KEY", "S"),
                ],
                Some("optOutNumber = \"02-123-4567\""),
                "080 number",
            ),
            (nhn, Some("appRatePerSecond = 0"), "BIZMSG_APP_RATE_PER_SECOND (bizmsg.appRatePerSecond) is 0"),
            (
                &[
                    ("BIZMSG_DEALER", "nhn"),
                    ("BIZMSG_SENDER_KEY", "S"),
                    ("NHN_BIZMSG_APP_KEY", "A"),
                    ("NHN_BIZMSG_SECRET_KEY", "K"),
                    ("BIZMSG_APP_RATE_PER_SECOND", "fast"),
                ],
                None,
                "is \"fast\": give a whole number",
            ),
        ];
        for (vars, file, needle) in cases {
            let e = load(vars, file).unwrap_err();
            assert!(e.contains(needle), "{vars:?} {file:?}: {e}");
        }
        let bad_template = "dealer = \"infobip\"\nsenderKey = \"S\"\n[infobip]\napiKey = \"K\"\nbaseUrl = \"https://x\"\n[[templates]]\ntemplateCode = \"A\"\ntext = \"#{a\"";
        assert!(load(&[], Some(bad_template)).unwrap_err().contains("AlimTalk template \"A\": text"));
    }

    #[test]
    fn webhook_tokens_and_the_public_url_are_read_and_checked() {
        let infobip: &[(&str, &str)] = &[
            ("BIZMSG_DEALER", "infobip"),
            ("BIZMSG_SENDER_KEY", "S"),
            ("INFOBIP_API_KEY", "K"),
            ("INFOBIP_BASE_URL", "https://x.api.infobip.com"),
            ("INFOBIP_WEBHOOK_TOKEN", "0123456789abcdef-token"),
            ("CLAWBRIDGE_PUBLIC_URL", "https://bridge.example/"),
        ];
        let config = load(infobip, None).unwrap().unwrap();
        let DealerSettings::Infobip { webhook_token: Some(token), .. } = &config.dealer else { panic!("{config:?}") };
        assert_eq!(token.expose_secret(), "0123456789abcdef-token");
        assert_eq!(config.public_url.as_deref(), Some("https://bridge.example"));
        assert!(!format!("{config:?}").contains("0123456789abcdef-token"), "the token does not print");

        let solapi = "dealer = \"solapi\"\nsenderKey = \"PF\"\n[solapi]\napiKey = \"K\"\napiSecret = \"S\"\nwebhookToken = \"solapi-token-0123456789\"";
        let config = load(&[("CLAWBRIDGE_PUBLIC_URL", "https://b.example")], Some(solapi)).unwrap().unwrap();
        assert!(
            matches!(&config.dealer, DealerSettings::Solapi { webhook_token: Some(t), .. } if t.expose_secret() == "solapi-token-0123456789")
        );
        assert_eq!(config.public_url.as_deref(), Some("https://b.example"));

        let mut short = infobip.to_vec();
        short[4] = ("INFOBIP_WEBHOOK_TOKEN", "short");
        assert!(
            load(&short, None)
                .unwrap_err()
                .contains("INFOBIP_WEBHOOK_TOKEN (bizmsg.infobip.webhookToken) is shorter than 16")
        );
        let mut bad_url = infobip.to_vec();
        bad_url[5] = ("CLAWBRIDGE_PUBLIC_URL", "bridge.example");
        assert!(load(&bad_url, None).unwrap_err().contains("CLAWBRIDGE_PUBLIC_URL (bridge.public_url)"));
    }
}
