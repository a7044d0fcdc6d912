//! Kakao's delivery result codes, as the dealers report them per recipient
//! (reference/bizmsg.md §2.4), with what they mean to an operator and whether sending again
//! can help.

/// A per-recipient result code from Kakao.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u16);

/// What a result means for the recipient's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered to the phone.
    Delivered,
    /// Kakao will never deliver it as it is (an SMS/LMS fallback may still reach the person).
    Failed,
    /// Kakao could not tell or had a fault; the dealer's result may still change, or a later
    /// attempt may succeed.
    Uncertain,
}

impl ResultCode {
    /// Success.
    pub const DELIVERED: Self = Self(1000);
    /// The rendered text is not the approved template's.
    pub const TEMPLATE_MISMATCH: Self = Self(3016);
    /// The number has no KakaoTalk account.
    pub const NOT_KAKAOTALK_USER: Self = Self(3019);
    /// Outside 08:00–20:50 KST (ads).
    pub const OUTSIDE_HOURS: Self = Self(3022);

    /// The code's meaning, in the words an operator searches the dealer's docs with.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            1000 => "delivered",
            1003 => "invalid sender key",
            1021..=1027 => "the sender channel is blocked, deactivated or deleted",
            3005 => "no delivery confirmation from the phone (ack timeout)",
            3008 => "invalid phone number",
            3015 => "template not found",
            3016 => "content does not match the approved template",
            3018 => "cannot be sent (e.g. not an active user)",
            3019 => "not a KakaoTalk user",
            3022 => "outside the allowed sending hours (08:00–20:50 KST)",
            3024 => "image problem",
            3025 => "a variable is too long",
            4144 => "message body larger than 30 KB",
            9998 | 9999 => "Kakao system error",
            _ => "unknown result code",
        }
    }

    /// Delivered, failed for good, or not known yet.
    pub fn outcome(self) -> Outcome {
        match self.0 {
            1000 => Outcome::Delivered,
            3005 | 9998 | 9999 => Outcome::Uncertain,
            _ => Outcome::Failed,
        }
    }

    /// Whether the failure is about the recipient (their phone, their account), so an SMS/LMS
    /// fallback is worth sending; failures about the sender or the content are the operator's to
    /// fix and would fail the same way for everyone.
    pub fn falls_back(self) -> bool {
        matches!(self.0, 3005 | 3018 | 3019 | 3022)
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_what_they_mean() {
        assert_eq!(ResultCode(3019).to_string(), "3019 (not a KakaoTalk user)");
        assert_eq!(ResultCode(1024).meaning(), "the sender channel is blocked, deactivated or deleted");
        assert_eq!(ResultCode(4242).meaning(), "unknown result code");
        assert_eq!(ResultCode::DELIVERED.outcome(), Outcome::Delivered);
        assert_eq!(ResultCode::TEMPLATE_MISMATCH.outcome(), Outcome::Failed);
        assert_eq!(ResultCode(9999).outcome(), Outcome::Uncertain);
        assert!(ResultCode::NOT_KAKAOTALK_USER.falls_back());
        assert!(!ResultCode::TEMPLATE_MISMATCH.falls_back());
    }
}
