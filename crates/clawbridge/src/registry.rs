//! The configured channels and their accounts, looked up by the workers.

use clawbridge_channel::{Account, Connector};
use clawbridge_core::{AccountId, ChannelId};
use std::collections::HashMap;
use std::sync::Arc;

/// Channels by id and accounts by (channel, account).
#[derive(Default, Clone)]
pub struct Registry {
    connectors: HashMap<ChannelId, Arc<dyn Connector>>,
    accounts: HashMap<(ChannelId, AccountId), Arc<dyn Account>>,
    /// Channels with several accounts put the account into session keys.
    multi_account: HashMap<ChannelId, bool>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("accounts", &self.accounts.keys().collect::<Vec<_>>()).finish()
    }
}

impl Registry {
    /// Builds the registry from the enabled connectors.
    pub fn new(connectors: Vec<Arc<dyn Connector>>) -> Self {
        let mut registry = Self::default();
        for connector in connectors {
            let channel = connector.id();
            let accounts = connector.accounts();
            registry.multi_account.insert(channel.clone(), accounts.len() > 1);
            for account in accounts {
                registry.accounts.insert((channel.clone(), account.id()), account);
            }
            registry.connectors.insert(channel, connector);
        }
        registry
    }

    /// Adds an account of a channel that has no connector: the outbox accounts of the agent
    /// tools (`kakao-talk`, `kakao-event`), which only send.
    pub fn add_account(&mut self, channel: ChannelId, account: Arc<dyn Account>) {
        self.accounts.insert((channel, account.id()), account);
    }

    /// The connector of a channel.
    pub fn connector(&self, channel: &ChannelId) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(channel)
    }

    /// Every connector.
    pub fn connectors(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors.values()
    }

    /// One account.
    pub fn account(&self, channel: &ChannelId, account: &AccountId) -> Option<&Arc<dyn Account>> {
        self.accounts.get(&(channel.clone(), account.clone()))
    }

    /// Every (channel, account) pair.
    pub fn accounts(&self) -> impl Iterator<Item = (&ChannelId, &Arc<dyn Account>)> {
        self.accounts.iter().map(|((channel, _), account)| (channel, account))
    }

    /// Whether session keys of this channel carry the account.
    pub fn is_multi_account(&self, channel: &ChannelId) -> bool {
        self.multi_account.get(channel).copied().unwrap_or(false)
    }
}
