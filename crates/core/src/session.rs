//! OpenClaw session keys.
//!
//! The gateway canonicalises keys (lower-cases channel and peer, prefixes non-canonical ones), and
//! its events always carry the canonical form, so the bridge builds canonical keys itself:
//! `agent:<agentId>:<channel>:direct:<peer>` (OpenClaw's recommended per-channel-peer scope), or
//! `agent:<agentId>:<channel>:<account>:direct:<peer>` when a channel has several accounts.

use crate::ids::{AccountId, ChannelId, PeerId};

/// The gateway rejects longer session keys.
pub const MAX_SESSION_KEY_LEN: usize = 512;

/// Builds the session key of a direct conversation.
///
/// `account` is `Some` only when the channel has several accounts configured, so that the same
/// person talking to two business numbers gets two conversations.
pub fn direct_session_key(agent_id: &str, channel: &ChannelId, account: Option<&AccountId>, peer: &PeerId) -> String {
    let mut key = format!("agent:{}:{}:", segment(agent_id), segment(channel.as_str()));
    if let Some(account) = account {
        key.push_str(&segment(account.as_str()));
        key.push(':');
    }
    key.push_str("direct:");
    key.push_str(&segment(peer.as_str()));
    key
}

/// Lower-cases and replaces characters that would break the key's `:`-separated structure.
fn segment(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| match c {
            ':' | ' ' | '\t' | '\n' | '\r' => '_',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_peer_key() {
        let key = direct_session_key("main", &"whatsapp".into(), None, &"15551234567".into());
        assert_eq!(key, "agent:main:whatsapp:direct:15551234567");
    }

    #[test]
    fn per_account_key_and_canonical_case() {
        let key = direct_session_key("Main", &"Kakao".into(), Some(&"Bot1".into()), &"AbC:d".into());
        assert_eq!(key, "agent:main:kakao:bot1:direct:abc_d");
    }
}
