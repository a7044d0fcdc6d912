//! DM access policy, with OpenClaw's names and meanings.
//!
//! - `pairing` (default): known senders pass; an unknown sender gets a pairing code that the
//!   owner approves with `clawbridge pairing approve`.
//! - `allowlist`: only `allowFrom` (and peers approved earlier) pass; others are refused.
//! - `open`: everyone passes; requires `allowFrom` to contain `*` so it is never an accident.
//! - `disabled`: no DMs at all.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The DM policy of a channel account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code for the owner to approve.
    #[default]
    Pairing,
    /// Only listed (or approved) senders.
    Allowlist,
    /// Everyone (needs `*` in `allowFrom`).
    Open,
    /// Nobody.
    Disabled,
}

impl FromStr for DmPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pairing" => Ok(Self::Pairing),
            "allowlist" => Ok(Self::Allowlist),
            "open" => Ok(Self::Open),
            "disabled" => Ok(Self::Disabled),
            other => Err(PolicyError::UnknownPolicy(other.to_owned())),
        }
    }
}

impl fmt::Display for DmPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pairing => "pairing",
            Self::Allowlist => "allowlist",
            Self::Open => "open",
            Self::Disabled => "disabled",
        })
    }
}

/// Why a policy configuration is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not one of the four names.
    #[error("unknown dmPolicy {0:?}: use pairing, allowlist, open or disabled")]
    UnknownPolicy(String),
    /// `open` without the explicit wildcard.
    #[error("dmPolicy \"open\" lets anyone talk to the agent: add \"*\" to allowFrom to confirm, or use pairing")]
    OpenWithoutWildcard,
}

/// The senders listed in `allowFrom`, normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowFrom {
    everyone: bool,
    peers: BTreeSet<String>,
}

impl AllowFrom {
    /// Parses entries (phone numbers in any common notation, user keys, or `*`).
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allow = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                allow.everyone = true;
            } else {
                allow.peers.insert(normalize_peer(entry));
            }
        }
        allow
    }

    /// Parses a comma-separated list, as in `KAPSO_ALLOW_FROM`.
    pub fn parse_list(list: &str) -> Self {
        Self::new(list.split(','))
    }

    /// Whether `*` was given.
    pub fn allows_everyone(&self) -> bool {
        self.everyone
    }

    /// Whether the (normalised) peer is listed or `*` was given.
    pub fn contains(&self, peer: &str) -> bool {
        self.everyone || self.peers.contains(&normalize_peer(peer))
    }

    /// The listed peers, normalised.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.peers.iter().map(String::as_str)
    }
}

/// Phone numbers compare by digits (`+1 (555) 123-4567` = `15551234567`); other ids verbatim.
pub fn normalize_peer(raw: &str) -> String {
    let raw = raw.trim();
    let phone_like = raw.chars().any(|c| c.is_ascii_digit())
        && raw.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if phone_like { raw.chars().filter(char::is_ascii_digit).collect() } else { raw.to_owned() }
}

/// A channel account's access configuration, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The DM policy.
    pub dm_policy: DmPolicy,
    /// The static allow list.
    pub allow_from: AllowFrom,
}

/// What to do with a message from a sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessDecision {
    /// Hand it to the agent.
    Allow,
    /// Do not hand it over; answer with a pairing code (issued or re-used).
    Pair,
    /// Do not hand it over; the sender may be told they are not allowed.
    Deny,
    /// Drop without answering (policy `disabled`).
    Ignore,
}

impl AccessPolicy {
    /// Validates the combination (e.g. `open` requires `*`).
    ///
    /// # Errors
    /// [`PolicyError::OpenWithoutWildcard`] for `open` without `*`.
    pub fn new(dm_policy: DmPolicy, allow_from: AllowFrom) -> Result<Self, PolicyError> {
        if dm_policy == DmPolicy::Open && !allow_from.allows_everyone() {
            return Err(PolicyError::OpenWithoutWildcard);
        }
        Ok(Self { dm_policy, allow_from })
    }

    /// Decides for a sender; `approved` says whether the sender was approved through pairing.
    pub fn decide(&self, peer: &str, approved: bool) -> AccessDecision {
        match self.dm_policy {
            DmPolicy::Disabled => AccessDecision::Ignore,
            DmPolicy::Open => AccessDecision::Allow,
            _ if approved || self.allow_from.contains(peer) => AccessDecision::Allow,
            DmPolicy::Allowlist => AccessDecision::Deny,
            DmPolicy::Pairing => AccessDecision::Pair,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_compare_by_digits() {
        let allow = AllowFrom::parse_list("+1 (555) 123-4567, kakaoUserKey_A");
        assert!(allow.contains("15551234567"));
        assert!(allow.contains("+15551234567"));
        assert!(allow.contains("kakaoUserKey_A"));
        assert!(!allow.contains("kakaouserkey_a"));
        assert!(!allow.contains("15550000000"));
    }

    #[test]
    fn open_requires_the_wildcard() {
        assert_eq!(
            AccessPolicy::new(DmPolicy::Open, AllowFrom::parse_list("123")),
            Err(PolicyError::OpenWithoutWildcard)
        );
        let open = AccessPolicy::new(DmPolicy::Open, AllowFrom::parse_list("*")).unwrap();
        assert_eq!(open.decide("anyone", false), AccessDecision::Allow);
    }

    #[test]
    fn decisions_follow_openclaw_semantics() {
        let pairing = AccessPolicy::new(DmPolicy::Pairing, AllowFrom::parse_list("111")).unwrap();
        assert_eq!(pairing.decide("111", false), AccessDecision::Allow);
        assert_eq!(pairing.decide("222", false), AccessDecision::Pair);
        assert_eq!(pairing.decide("222", true), AccessDecision::Allow);

        let allowlist = AccessPolicy::new(DmPolicy::Allowlist, AllowFrom::parse_list("111")).unwrap();
        assert_eq!(allowlist.decide("222", false), AccessDecision::Deny);
        assert_eq!(allowlist.decide("222", true), AccessDecision::Allow);

        let disabled = AccessPolicy::new(DmPolicy::Disabled, AllowFrom::parse_list("*")).unwrap();
        assert_eq!(disabled.decide("111", true), AccessDecision::Ignore);
    }

    #[test]
    fn policy_names_parse_case_insensitively() {
        assert_eq!("Allowlist".parse::<DmPolicy>().unwrap(), DmPolicy::Allowlist);
        assert!(matches!("everyone".parse::<DmPolicy>(), Err(PolicyError::UnknownPolicy(_))));
    }
}
