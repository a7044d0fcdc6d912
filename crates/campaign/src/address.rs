//! Recipient numbers. Kakao business messages reach Korean mobile numbers (the bizmsg crate
//! normalises those); WhatsApp reaches any number in international form. A suppression list is
//! matched by one key whatever the channel, so an opt-out given on WhatsApp (`821012345678`)
//! also stops the KakaoTalk campaign that knows the same person as `01012345678`.

/// A WhatsApp recipient: the digits of an international number (`+82 10-1234-5678` →
/// `821012345678`), 8 to 15 of them (E.164).
///
/// # Errors
/// What is wrong with the number, quoting it.
pub fn whatsapp_number(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let rest = rest.strip_prefix("00").unwrap_or(rest);
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("{raw:?} is not a phone number")),
        }
    }
    if digits.is_empty() {
        return Err("the phone number is empty".to_owned());
    }
    if digits.starts_with('0') {
        return Err(format!("{raw:?} has no country code: WhatsApp numbers are international, e.g. +82 10-1234-5678"));
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(format!("{raw:?} is not an international number (8 to 15 digits with the country code)"));
    }
    Ok(digits)
}

/// The key an opt-out is stored and matched under: the international digits of a number
/// (`01012345678` and `+82 10-1234-5678` are both `821012345678`); anything that is not a
/// number (a Kakao user key) as it is.
pub fn suppression_key(address: &str) -> String {
    let trimmed = address.trim();
    let phone_like = trimmed.chars().any(|c| c.is_ascii_digit())
        && trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if !phone_like {
        return trimmed.to_owned();
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix('0') {
        // A Korean national number: its trunk zero becomes the country code.
        Some(national) if !trimmed.starts_with('+') && !national.starts_with('0') => format!("82{national}"),
        _ => digits.strip_prefix("00").map_or_else(|| digits.clone(), str::to_owned),
    }
}

/// Whether a reply is an opt-out: `STOP`, `unsubscribe`, `수신거부`, `광고거부`, `수신중지` (case,
/// spaces and punctuation around it ignored), as marketing messages tell people to answer.
pub fn is_opt_out(text: &str) -> bool {
    let word: String =
        text.chars().filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation()).flat_map(char::to_lowercase).collect();
    matches!(
        word.as_str(),
        "stop" | "stopall" | "unsubscribe" | "optout" | "수신거부" | "광고거부" | "수신중지" | "거부"
    )
}

/// `+82 10-****-5678` style masking for logs and reports: the last four digits only.
pub fn masked(address: &str) -> String {
    let digits: Vec<char> = address.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return "****".to_owned();
    }
    let tail: String = digits[digits.len() - 4..].iter().collect();
    let head: String = digits[..3].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_numbers_are_international_digits() {
        assert_eq!(whatsapp_number("+82 10-1234-5678").unwrap(), "821012345678");
        assert_eq!(whatsapp_number("1 (555) 123-4567").unwrap(), "15551234567");
        assert_eq!(whatsapp_number("0044 20 7946 0958").unwrap(), "442079460958");
        assert!(whatsapp_number("010-1234-5678").unwrap_err().contains("country code"));
        assert!(whatsapp_number("+1 555").unwrap_err().contains("8 to 15"));
        assert!(whatsapp_number("call me").unwrap_err().contains("not a phone number"));
        assert!(whatsapp_number("  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn one_person_has_one_suppression_key_on_every_channel() {
        assert_eq!(suppression_key("01012345678"), "821012345678");
        assert_eq!(suppression_key("010-1234-5678"), "821012345678");
        assert_eq!(suppression_key("821012345678"), "821012345678");
        assert_eq!(suppression_key("+82 10 1234 5678"), "821012345678");
        assert_eq!(suppression_key("15551234567"), "15551234567");
        assert_eq!(suppression_key("botUserKeyAbc"), "botUserKeyAbc");
    }

    #[test]
    fn opt_out_replies() {
        for yes in ["STOP", " stop ", "Stop.", "수신거부", "수신 거부", "광고 거부!", "UNSUBSCRIBE", "opt-out"]
        {
            assert!(is_opt_out(yes), "{yes}");
        }
        for no in ["stop sending me the wrong size", "언제 세일해요?", "", "stopwatch"] {
            assert!(!is_opt_out(no), "{no}");
        }
    }

    #[test]
    fn masking_keeps_only_the_ends() {
        assert_eq!(masked("01012345678"), "010****5678");
        assert_eq!(masked("12"), "****");
    }
}
