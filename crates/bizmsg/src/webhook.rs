//! Who may post delivery results to the daemon's dealer webhooks, decided without I/O.
//!
//! NHN sends the value configured in its console as `X-Toast-Webhook-Signature`
//! ([`nhn::webhook_signature_ok`](crate::dealer::nhn::webhook_signature_ok)). Infobip and Solapi
//! sign nothing, so their webhooks carry a shared token the operator sets on both sides
//! (`INFOBIP_WEBHOOK_TOKEN`, `SOLAPI_WEBHOOK_TOKEN`), in whichever form the dealer's console can
//! send ([`token_ok`]):
//! - `Authorization: Basic base64(<any user>:<token>)` — a webhook with basic authentication
//!   (Infobip's webhook subscriptions offer it);
//! - `Authorization: Bearer <token>` or `X-Clawbridge-Token: <token>` — a custom header;
//! - `?token=<token>` on the URL, only where the route allows it (a console that takes nothing
//!   but a URL, as Solapi's is described in its SDK's webhook example).
//!
//! Infobip also posts reports to the URL a send names (`webhooks.delivery.url`), with no header of
//! ours; such a send carries, as its `callbackData`, our HMAC of its message id under the token
//! ([`callback_data`]), which Infobip echoes in the report: a report whose `callbackData` verifies
//! ([`callback_ok`]) is authentic. Every comparison is constant-time.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The shortest webhook token accepted in the settings.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The header a custom-header webhook carries the token in.
pub const TOKEN_HEADER: &str = "x-clawbridge-token";

/// What a webhook request presents, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// The `X-Clawbridge-Token` header.
    pub token_header: Option<&'a [u8]>,
    /// The URL's query string (without `?`).
    pub query: Option<&'a str>,
}

fn same(given: &[u8], token: &str) -> bool {
    !token.is_empty() && bool::from(given.ct_eq(token.as_bytes()))
}

/// Whether the request carries `token` in one of the forms above (`?token=` only when
/// `allow_query`). An empty token accepts nothing.
pub fn token_ok(presented: &Presented<'_>, token: &str, allow_query: bool) -> bool {
    let mut ok = false;
    if let Some(header) = presented.token_header {
        ok |= same(header, token);
    }
    if let Some(auth) = presented.authorization {
        let auth = auth.trim_ascii();
        let (scheme, rest) = match auth.iter().position(|b| *b == b' ') {
            Some(at) => (&auth[..at], auth[at..].trim_ascii()),
            None => (auth, &[][..]),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            ok |= same(rest, token);
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            use base64::Engine as _;
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest)
                && let Some(colon) = decoded.iter().position(|b| *b == b':')
            {
                ok |= same(&decoded[colon + 1..], token);
            }
        }
    }
    if allow_query && let Some(query) = presented.query {
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("token=") {
                ok |= same(&percent_decode(value), token);
            }
        }
    }
    ok
}

/// `%XX` and `+` of a query value decoded; a malformed escape is kept as it is.
fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    out
}

fn mac(token: &str, message_id: &str) -> Hmac<sha2::Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(b"clawbridge delivery report\n");
    mac.update(message_id.as_bytes());
    mac
}

/// The `callbackData` of a message sent with a report URL: `cb1:` and the hex HMAC-SHA256 of its
/// message id under the webhook token.
pub fn callback_data(token: &str, message_id: &str) -> String {
    format!("cb1:{}", hex::encode(mac(token, message_id).finalize().into_bytes()))
}

/// Whether `callback` is [`callback_data`] of `message_id` (constant-time).
pub fn callback_ok(token: &str, message_id: &str, callback: Option<&str>) -> bool {
    let Some(signature) = callback.and_then(|c| c.strip_prefix("cb1:")).and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    !token.is_empty() && mac(token, message_id).verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn basic(user_password: &str) -> Vec<u8> {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password)).into_bytes()
    }

    #[test]
    fn the_token_is_accepted_in_each_form_a_console_can_send() {
        let bearer = format!("Bearer {TOKEN}").into_bytes();
        let basic_ok = basic(&format!("infobip:{TOKEN}"));
        let cases: [(Presented<'_>, bool); 5] = [
            (Presented { authorization: Some(&bearer), ..Presented::default() }, true),
            (Presented { authorization: Some(&basic_ok), ..Presented::default() }, true),
            (Presented { token_header: Some(TOKEN.as_bytes()), ..Presented::default() }, true),
            (Presented { query: Some("a=1&token=0123456789abcdef%2Dtoken"), ..Presented::default() }, true),
            (Presented::default(), false),
        ];
        for (presented, allowed) in cases {
            assert_eq!(token_ok(&presented, TOKEN, true), allowed, "{presented:?}");
        }
        let raw = format!("token={TOKEN}");
        let query = Presented { query: Some(&raw), ..Presented::default() };
        assert!(!token_ok(&query, TOKEN, false), "the query form only where the route allows it");
    }

    #[test]
    fn a_wrong_or_partial_token_is_refused() {
        let basic_user_only = basic(TOKEN);
        let basic_wrong = basic("u:0123456789abcdef-tokem");
        let short = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]).into_bytes();
        let other_scheme = format!("Token {TOKEN}").into_bytes();
        for auth in [&basic_user_only, &basic_wrong, &short, &other_scheme] {
            let presented = Presented { authorization: Some(auth), ..Presented::default() };
            assert!(!token_ok(&presented, TOKEN, true), "{}", String::from_utf8_lossy(auth));
        }
        let header = Presented { token_header: Some(b""), ..Presented::default() };
        assert!(!token_ok(&header, "", true), "an empty token accepts nothing");
        assert!(!token_ok(&Presented { query: Some("token=%zz"), ..Presented::default() }, TOKEN, true));
    }

    #[test]
    fn callback_data_signs_one_message_id() {
        let data = callback_data(TOKEN, "cb12");
        assert!(data.starts_with("cb1:") && data.len() == 4 + 64, "{data}");
        assert!(callback_ok(TOKEN, "cb12", Some(&data)));
        assert!(!callback_ok(TOKEN, "cb13", Some(&data)), "not another message's");
        assert!(!callback_ok("another-token-0123456", "cb12", Some(&data)));
        assert!(!callback_ok(TOKEN, "cb12", None));
        assert!(!callback_ok(TOKEN, "cb12", Some("cb1:zz")));
    }
}
