//! Pairing codes, as OpenClaw issues them: 8 characters from an alphabet without look-alikes
//! (no `0/O`, `1/I`), valid for one hour, at most three pending per channel account.

use crate::time::{EpochMs, HOUR_MS};

/// Characters a code is drawn from: 32 symbols, so one random byte maps without bias.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of a code.
pub const CODE_LEN: usize = 8;
/// How long a code stays valid.
pub const CODE_TTL_MS: EpochMs = HOUR_MS;
/// How many unexpired requests one channel account may have pending.
pub const MAX_PENDING_PER_ACCOUNT: usize = 3;

/// Builds a code from 8 random bytes (the caller owns the randomness source).
pub fn code_from_random(bytes: [u8; CODE_LEN]) -> String {
    bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect()
}

/// Normalises what an operator typed: trims, upper-cases, drops spaces and dashes.
pub fn normalize_code(typed: &str) -> String {
    typed.chars().filter(|c| !matches!(c, ' ' | '-')).flat_map(char::to_uppercase).collect()
}

/// Whether the string has the shape of a code (after [`normalize_code`]).
pub fn is_well_formed(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_avoid_look_alikes() {
        for c in ['0', 'O', '1', 'I'] {
            assert!(!ALPHABET.contains(&(c as u8)));
        }
    }

    #[test]
    fn typed_codes_are_normalised() {
        assert_eq!(normalize_code(" abcd-efgh "), "ABCDEFGH");
        assert!(is_well_formed("ABCDEFGH"));
        assert!(!is_well_formed("ABCDEFG0"));
        assert!(!is_well_formed("ABCDEFG"));
    }

    proptest! {
        #[test]
        fn every_random_input_makes_a_well_formed_code(bytes in any::<[u8; 8]>()) {
            let code = code_from_random(bytes);
            prop_assert!(is_well_formed(&code));
            prop_assert_eq!(normalize_code(&code.to_lowercase()), code);
        }
    }
}
