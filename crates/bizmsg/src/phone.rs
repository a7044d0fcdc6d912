//! Recipient phone numbers. AlimTalk and Brand Message reach a KakaoTalk account through the mobile
//! number it was registered with, so a recipient is a Korean mobile number; operators and
//! customers write it in several forms (`010-1234-5678`, `01012345678`, `+82 10-1234-5678`,
//! `821012345678`). It is normalised once, here, and every dealer gets the form it documents:
//! NHN and Solapi the national form (`01012345678`), Infobip the international one without `+`
//! (`821012345678`).

use std::fmt;

/// A Korean mobile number, kept in the national form (`01012345678`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Something other than digits and the separators people type.
    #[error("{0:?} is not a phone number: use digits with optional spaces, '-', '.', '(' ')' and a leading +82")]
    NotANumber(String),
    /// A number of another country.
    #[error("{0:?} is not a Korean number: AlimTalk and Brand Message reach Korean mobile numbers (+82 or 010…)")]
    NotKorean(String),
    /// A Korean number that is not a mobile one (a landline or a representative number).
    #[error("{0:?} is not a Korean mobile number (010-XXXX-XXXX, or 011/016/017/018/019 with 7 or 8 digits)")]
    NotMobile(String),
}

impl PhoneNumber {
    /// Parses the forms Korean users write.
    ///
    /// # Errors
    /// A [`PhoneError`] that quotes the input and says which forms are accepted.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::NotANumber(input.to_owned())),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::NotANumber(input.to_owned()));
        }
        // A national number starts with its trunk 0, so leading 82 is the country code, with or
        // without the `+`: `+82 10…`, `82 10…`; some write the trunk zero as well (`+82 010…`).
        let national = if let Some(after_code) = digits.strip_prefix("82") {
            let after_code = after_code.strip_prefix('0').unwrap_or(after_code);
            format!("0{after_code}")
        } else if plus {
            return Err(PhoneError::NotKorean(input.to_owned()));
        } else {
            digits
        };
        if !is_mobile(&national) {
            return Err(PhoneError::NotMobile(input.to_owned()));
        }
        Ok(Self(national))
    }

    /// `01012345678`: NHN Cloud's `recipientNo`, Solapi's `to`.
    pub fn national(&self) -> &str {
        &self.0
    }

    /// `821012345678`: Infobip's `destinations[].to`.
    pub fn international(&self) -> String {
        format!("82{}", &self.0[1..])
    }

    /// `010-****-5678`, for logs and status lines: enough to tell recipients apart, not enough to
    /// call them.
    pub fn masked(&self) -> String {
        let n = &self.0;
        let tail = &n[n.len() - 4..];
        format!("{}-****-{tail}", &n[..3])
    }
}

/// 010 with 8 more digits; the older 011/016/017/018/019 prefixes with 7 or 8.
fn is_mobile(national: &str) -> bool {
    let Some(rest) = national.strip_prefix("01") else { return false };
    let mut chars = rest.chars();
    match chars.next() {
        Some('0') => rest.len() == 9,
        Some('1' | '6' | '7' | '8' | '9') => rest.len() == 8 || rest.len() == 9,
        _ => false,
    }
}

impl fmt::Display for PhoneNumber {
    /// Masked: a number printed by accident must not leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A caller id that SMS/LMS fallbacks are sent from (`BIZMSG_SMS_FROM`): a number registered
/// with the dealer, which may be a landline (`02-1234-5678`) or a representative number
/// (`1588-1234`). Kept as digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderNumber(String);

impl SenderNumber {
    /// Digits with the usual separators, 8 to 12 digits.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn parse(input: &str) -> Result<Self, String> {
        let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        if digits.len() < 8 || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "BIZMSG_SMS_FROM (bizmsg.smsFrom) {input:?} is not a phone number: use the caller id registered \
                 with your dealer, e.g. 02-1234-5678 or 1588-1234"
            ));
        }
        Ok(Self(digits))
    }

    /// The digits (`0212345678`), as every dealer takes it.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_korean_users_write_are_one_number() {
        for form in [
            "010-1234-5678",
            "01012345678",
            "010 1234 5678",
            "010.1234.5678",
            "(010) 1234-5678",
            "+82 10-1234-5678",
            "+821012345678",
            "821012345678",
            "+82 010-1234-5678",
            " 010-1234-5678 ",
        ] {
            let n = PhoneNumber::parse(form).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(n.national(), "01012345678", "{form}");
            assert_eq!(n.international(), "821012345678", "{form}");
        }
    }

    #[test]
    fn older_prefixes_have_seven_or_eight_digits() {
        assert_eq!(PhoneNumber::parse("011-123-4567").unwrap().national(), "0111234567");
        assert_eq!(PhoneNumber::parse("016-1234-5678").unwrap().national(), "01612345678");
        assert_eq!(PhoneNumber::parse("+82 19 123 4567").unwrap().international(), "82191234567");
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert!(matches!(PhoneNumber::parse("02-1234-5678"), Err(PhoneError::NotMobile(_))));
        assert!(matches!(PhoneNumber::parse("1588-1234"), Err(PhoneError::NotMobile(_))));
        assert!(matches!(PhoneNumber::parse("010-1234-567"), Err(PhoneError::NotMobile(_))));
        assert!(matches!(PhoneNumber::parse("010-1234-56789"), Err(PhoneError::NotMobile(_))));
        assert!(matches!(PhoneNumber::parse("012-1234-5678"), Err(PhoneError::NotMobile(_))));
        assert!(matches!(PhoneNumber::parse("+1 415 555 0100"), Err(PhoneError::NotKorean(_))));
        assert!(matches!(PhoneNumber::parse("010-1234-567a"), Err(PhoneError::NotANumber(_))));
        assert!(matches!(PhoneNumber::parse("  "), Err(PhoneError::NotANumber(_))));
        let message = PhoneNumber::parse("02-1234-5678").unwrap_err().to_string();
        assert!(message.contains("02-1234-5678") && message.contains("010-XXXX-XXXX"), "{message}");
    }

    #[test]
    fn a_number_never_prints_in_full() {
        let n = PhoneNumber::parse("010-1234-5678").unwrap();
        assert_eq!(n.to_string(), "010-****-5678");
        assert_eq!(format!("{n:?}"), "PhoneNumber(010-****-5678)");
    }

    #[test]
    fn sender_numbers_may_be_landlines_and_representative_numbers() {
        assert_eq!(SenderNumber::parse("02-1234-5678").unwrap().digits(), "0212345678");
        assert_eq!(SenderNumber::parse("1588-1234").unwrap().digits(), "15881234");
        let e = SenderNumber::parse("12-34").unwrap_err();
        assert!(e.contains("BIZMSG_SMS_FROM"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn every_mobile_number_round_trips_through_each_form(rest in 0u32..100_000_000) {
            let national = format!("010{rest:08}");
            let n = PhoneNumber::parse(&national).unwrap();
            proptest::prop_assert_eq!(PhoneNumber::parse(&format!("+{}", n.international())).unwrap(), n.clone());
            let dashed = format!("{}-{}-{}", &national[..3], &national[3..7], &national[7..]);
            proptest::prop_assert_eq!(PhoneNumber::parse(&dashed).unwrap(), n);
        }
    }
}
