//! A/B tests: the split of recipients between variants, and which variant a recipient gets.
//!
//! The assignment is a hash of the campaign id and the recipient, not a random draw: the same
//! recipient gets the same variant however often the campaign is resumed or re-created from the
//! same id, on every replica, and no state is needed to keep it so.

use sha2::{Digest, Sha256};

/// Shares of the recipients per variant, in percent, summing to 100 (`50/50`, `70/30`,
/// `34/33/33`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split(Vec<u32>);

/// The hash space the shares are laid out on (0.01 % steps).
const BUCKETS: u64 = 10_000;

impl Split {
    /// Equal shares for `n` variants (the first ones get the remainder: 34/33/33).
    pub fn even(n: usize) -> Self {
        let n = n.max(1);
        let base = 100 / n as u32;
        let extra = 100 - base * n as u32;
        Self((0..n).map(|i| base + u32::from((i as u32) < extra)).collect())
    }

    /// The shares.
    pub fn shares(&self) -> &[u32] {
        &self.0
    }

    /// How many variants.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variant (index) of `recipient` in campaign `campaign`.
    pub fn assign(&self, campaign: &str, recipient: &str) -> usize {
        let point = bucket(campaign, recipient);
        let mut upper = 0u64;
        for (i, share) in self.0.iter().enumerate() {
            upper += u64::from(*share) * (BUCKETS / 100);
            if point < upper {
                return i;
            }
        }
        self.0.len().saturating_sub(1)
    }

    /// `50/50`.
    pub fn label(&self) -> String {
        self.0.iter().map(u32::to_string).collect::<Vec<_>>().join("/")
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let shares = s
            .split(['/', ':', ','])
            .map(|p| p.trim().trim_end_matches('%').parse::<u32>())
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| format!("--split {s:?}: write percentages separated by '/', e.g. 50/50 or 70/30"))?;
        if shares.len() < 2 {
            return Err(format!("--split {s:?}: give a share for each variant, e.g. 50/50"));
        }
        if shares.contains(&0) {
            return Err(format!("--split {s:?}: every variant needs a share above 0"));
        }
        let total: u32 = shares.iter().sum();
        if total != 100 {
            return Err(format!("--split {s:?}: the shares add up to {total}, not 100"));
        }
        Ok(Self(shares))
    }
}

/// Where a recipient falls in `0..BUCKETS`.
fn bucket(campaign: &str, recipient: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(campaign.as_bytes());
    hash.update([0]);
    hash.update(recipient.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// Variant names: `A`, `B`, … `Z`, then `V27`, ….
pub fn variant_name(index: usize) -> String {
    match u8::try_from(index) {
        Ok(i) if i < 26 => char::from(b'A' + i).to_string(),
        _ => format!("V{}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_are_read_and_checked() {
        assert_eq!("50/50".parse::<Split>().unwrap().shares(), [50, 50]);
        assert_eq!("70%/30%".parse::<Split>().unwrap().shares(), [70, 30]);
        assert_eq!(Split::even(3).shares(), [34, 33, 33]);
        assert_eq!(Split::even(1).shares(), [100]);
        assert!("60/30".parse::<Split>().unwrap_err().contains("90"));
        assert!("100".parse::<Split>().is_err());
        assert!("100/0".parse::<Split>().is_err());
        assert!("half/half".parse::<Split>().is_err());
        assert_eq!(Split::even(2).label(), "50/50");
        assert_eq!(variant_name(0), "A");
        assert_eq!(variant_name(1), "B");
        assert_eq!(variant_name(26), "V27");
    }

    #[test]
    fn assignment_follows_the_split_and_is_stable() {
        let split: Split = "70/30".parse().unwrap();
        let mut counts = [0u32; 2];
        for i in 0..20_000 {
            counts[split.assign("c1", &format!("0101234{i:04}"))] += 1;
        }
        // 70 % of 20,000 is 14,000; a hash stays well within ±2 %.
        assert!((13_600..14_400).contains(&counts[0]), "{counts:?}");
        assert_eq!(split.assign("c1", "01012345678"), split.assign("c1", "01012345678"));
        // Another campaign shuffles the recipients differently.
        let moved = (0..1_000)
            .filter(|i| {
                let r = format!("0109999{i:04}");
                split.assign("c1", &r) != split.assign("c2", &r)
            })
            .count();
        assert!(moved > 100, "{moved}");
    }

    proptest! {
        #[test]
        fn every_recipient_gets_a_variant_of_the_split(campaign in "[a-z0-9]{1,12}", recipient in "[0-9]{8,15}", n in 1usize..6) {
            let split = Split::even(n);
            let v = split.assign(&campaign, &recipient);
            prop_assert!(v < n);
            prop_assert_eq!(v, split.assign(&campaign, &recipient));
        }
    }
}
