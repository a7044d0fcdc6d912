//! Business messages' registration with the bridge: `[bizmsg]` + `BIZMSG_*` and the dealers'
//! variables, and the `doctor` checks. It serves no conversation (no connector): what it sends
//! leaves from the bridge's business-message queue, whose worker and commands (`clawbridge
//! alimtalk|brand|friendtalk …`) the binary runs on its store.

use crate::client::{DEFAULT_TIMEOUT, DealerClient};
use crate::config::BizmsgConfig;
use async_trait::async_trait;
use clawbridge_channel::Connector;
use clawbridge_channel::plugin::{ChannelPlugin, ChannelSettings, Check, ConnectorContext, Env, HostInfo};
use clawbridge_core::SendError;
use std::any::Any;
use std::sync::Arc;

/// The plugin of `[bizmsg]`.
#[derive(Debug)]
pub struct BizmsgPlugin;

/// The id and the TOML table.
pub const ID: &str = "bizmsg";

#[async_trait]
impl ChannelPlugin for BizmsgPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn load(&self, table: Option<&toml::Table>, env: Env<'_>) -> Result<Option<Arc<dyn ChannelSettings>>, String> {
        Ok(BizmsgConfig::load(table, env)?.map(|config| Arc::new(config) as Arc<dyn ChannelSettings>))
    }
}

#[async_trait]
impl ChannelSettings for BizmsgConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    /// Nothing to serve: business messages are outbound only.
    fn connector(&self, _ctx: &ConnectorContext) -> Result<Option<Arc<dyn Connector>>, String> {
        Ok(None)
    }

    /// The dealer and its credentials: every dealer is asked for the sender's templates (which
    /// needs the credentials and the sender key to be right). At Solapi and Infobip a list the
    /// credentials may not read (HTTP 403, or no list) is no failure, as the sends may still be
    /// allowed; a login refused outright (HTTP 401) is.
    async fn doctor(&self, _host: &HostInfo) -> Vec<Check> {
        let dealer = self.dealer.kind().id();
        let mut checks = vec![Check::ok(
            "bizmsg",
            format!(
                "dealer {dealer} at {}, {} sender(s), {} AlimTalk template(s)",
                self.base_url,
                self.accounts.len(),
                self.templates.iter().count()
            ),
        )];
        let client = match DealerClient::new(self, DEFAULT_TIMEOUT) {
            Ok(client) => client,
            Err(e) => {
                checks.push(Check::failed("bizmsg dealer", e, "see the README's business messages section"));
                return checks;
            }
        };
        // Any HTTP answer at the host is enough here; no answer at all is the base URL's fault
        // (or the network's), whatever the credentials.
        let probe =
            crate::dealer::WireRequest { method: "GET", path: "/".to_owned(), headers: Vec::new(), body: Vec::new() };
        if let Err(e) = client.execute("doctor reachability", &probe).await {
            let (var, key) = match self.dealer.kind() {
                crate::dealer::DealerKind::Nhn => ("NHN_BIZMSG_BASE_URL", "nhn.baseUrl"),
                crate::dealer::DealerKind::Solapi => ("SOLAPI_BASE_URL", "solapi.baseUrl"),
                crate::dealer::DealerKind::Infobip => ("INFOBIP_BASE_URL", "infobip.baseUrl"),
            };
            checks.push(Check::failed(
                "bizmsg dealer",
                format!("{dealer} at {} does not answer: {e}", self.base_url),
                format!("check {var} (bizmsg.{key}) and that this host can reach it"),
            ));
            return checks;
        }
        let fix = match self.dealer.kind() {
            crate::dealer::DealerKind::Nhn => {
                "check NHN_BIZMSG_APP_KEY, NHN_BIZMSG_SECRET_KEY and BIZMSG_SENDER_KEY in the NHN Cloud console"
            }
            crate::dealer::DealerKind::Solapi => {
                "check SOLAPI_API_KEY, SOLAPI_API_SECRET and BIZMSG_SENDER_KEY (the pfId), and this machine's clock"
            }
            crate::dealer::DealerKind::Infobip => {
                "check INFOBIP_API_KEY and BIZMSG_SENDER_KEY (the sender) in the Infobip portal"
            }
        };
        for account in &self.accounts {
            let what = format!("bizmsg {}", account.id);
            let sender_key = &account.sender.sender_key;
            checks.push(match client.templates(sender_key).await {
                Ok(templates) => Check::ok(
                    what,
                    format!("{dealer} credentials and sender key valid; {} template(s) registered", templates.len()),
                ),
                Err(SendError::Permanent(reason)) if !matches!(self.dealer.kind(), crate::dealer::DealerKind::Nhn) => {
                    let login_refused = match self.first_template_page(sender_key) {
                        Some(request) => client
                            .execute("doctor credentials", &request)
                            .await
                            .is_ok_and(|answer| answer.status == 401),
                        None => false,
                    };
                    if login_refused {
                        Check::failed(what, reason, fix)
                    } else {
                        Check::ok(
                            what,
                            format!(
                                "configured for {dealer}; these credentials cannot read its template list ({reason}), \
                                 so the first send checks them"
                            ),
                        )
                    }
                }
                Err(e) => Check::failed(what, e.to_string(), fix),
            });
        }
        checks
    }
}

impl BizmsgConfig {
    /// The first request of [`DealerClient::templates`] at Solapi and Infobip, whose status
    /// tells a refused login (401) from a list these credentials may not read.
    fn first_template_page(&self, sender_key: &str) -> Option<crate::dealer::WireRequest> {
        use secrecy::ExposeSecret;
        match &self.dealer {
            crate::config::DealerSettings::Nhn { .. } => None,
            crate::config::DealerSettings::Solapi { .. } => {
                Some(crate::dealer::solapi::templates_query(sender_key, None))
            }
            crate::config::DealerSettings::Infobip { api_key, .. } => {
                Some(crate::dealer::infobip::brand_templates_query(api_key.expose_secret(), sender_key, 1))
            }
        }
    }
}
