//! Newtypes for identifiers, so a peer id is never passed where a message id belongs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The raw value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Unwraps into the raw value.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// A channel: `whatsapp`, `kakao`, … (lower case, no `:`).
    ChannelId
);
string_id!(
    /// One configured account of a channel (a WhatsApp phone number id, a Kakao bot). `default` when there is one.
    AccountId
);
string_id!(
    /// The person on the platform side: a phone number in digits, a Kakao user key.
    PeerId
);
string_id!(
    /// The platform's own id of an inbound message (a `wamid`, a Kakao request id).
    PlatformMessageId
);
string_id!(
    /// The key that makes a side-effecting gateway call or platform send happen at most once.
    IdempotencyKey
);

impl AccountId {
    /// The account name used when a channel has a single account.
    pub const DEFAULT: &'static str = "default";

    /// The `default` account.
    pub fn default_account() -> Self {
        Self::new(Self::DEFAULT)
    }
}

impl IdempotencyKey {
    /// The gateway idempotency key of the agent run answering one inbound message.
    ///
    /// Derived only from the message's identity, so a replay after a crash (or a platform
    /// redelivery that slipped past dedup) starts no second run: the gateway answers `in_flight`
    /// or the finished run for the same key.
    pub fn for_inbound(channel: &ChannelId, account: &AccountId, message: &PlatformMessageId) -> Self {
        let mut hash = Sha256::new();
        for part in [channel.as_str(), account.as_str(), message.as_str()] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        Self(format!("cb1-{}", hex::encode(&digest[..16])))
    }

    /// The idempotency key of the `index`-th outbound part answering the run `run`.
    pub fn for_reply_part(run: &IdempotencyKey, index: usize) -> Self {
        Self(format!("{}-r{index}", run.0))
    }
}

/// The ordering lane of a conversation: messages of one lane are handled strictly in order,
/// different lanes run concurrently.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lane(String);

impl Lane {
    /// The lane of (channel, account, peer).
    pub fn of(channel: &ChannelId, account: &AccountId, peer: &PeerId) -> Self {
        Self(format!("{}/{}/{}", channel.as_str(), account.as_str(), peer.as_str()))
    }

    /// Wraps a lane read back from the store.
    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lane with its peer masked (`whatsapp/default/*******4567`), for logs at `info`.
    pub fn masked(&self) -> String {
        mask_lane(&self.0)
    }
}

/// Masks the peer part of a stored lane string.
pub fn mask_lane(lane: &str) -> String {
    match lane.rsplit_once('/') {
        Some((head, peer)) => format!("{head}/{}", mask(peer)),
        None => mask(lane),
    }
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lane({:?})", self.0)
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masks an identifier for `info`-level logs: keeps the last four characters.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count <= 4 {
        return "*".repeat(count);
    }
    let tail: String = value.chars().skip(count - 4).collect();
    format!("{}{tail}", "*".repeat(count - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_key_is_stable_and_distinguishes_accounts() {
        let a = IdempotencyKey::for_inbound(&"whatsapp".into(), &"default".into(), &"wamid.1".into());
        let b = IdempotencyKey::for_inbound(&"whatsapp".into(), &"default".into(), &"wamid.1".into());
        let c = IdempotencyKey::for_inbound(&"whatsapp".into(), &"other".into(), &"wamid.1".into());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.as_str().starts_with("cb1-"));
        assert_eq!(a.as_str().len(), 4 + 32);
    }

    #[test]
    fn field_boundaries_are_not_ambiguous() {
        let a = IdempotencyKey::for_inbound(&"ab".into(), &"c".into(), &"d".into());
        let b = IdempotencyKey::for_inbound(&"a".into(), &"bc".into(), &"d".into());
        assert_ne!(a, b);
    }

    #[test]
    fn mask_keeps_the_tail_only() {
        assert_eq!(mask("15551234567"), "*******4567");
        assert_eq!(mask("abc"), "***");
        assert_eq!(mask("가나다라마"), "*나다라마");
        assert_eq!(
            Lane::of(&"whatsapp".into(), &"default".into(), &"15551234567".into()).masked(),
            "whatsapp/default/*******4567"
        );
    }
}
