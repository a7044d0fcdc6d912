//! Who a request is for: the `X-Skill-Secret` header picks the bots it may be for, the payload's
//! `bot.id` the bot. Secrets are compared in constant time, every one of them.

use super::config::BotSettings;
use std::ops::Deref;
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in constant time.
pub(super) fn secret_matches(given: &[u8], expected: &str) -> bool {
    given.ct_eq(expected.as_bytes()).into()
}

/// The bots whose skill secret is `given`; every secret is compared (no early exit).
pub(super) fn by_secret<'a, B>(given: &[u8], bots: &'a [B]) -> Vec<&'a B>
where
    B: Deref<Target: AsRef<BotSettings>>,
{
    use secrecy::ExposeSecret as _;
    let mut candidates = Vec::new();
    for bot in bots {
        if secret_matches(given, settings(bot).skill_secret.expose_secret()) {
            candidates.push(bot);
        }
    }
    candidates
}

/// Of the bots the secret opened, the one `bot_id` names; a single bot without a configured
/// `botId` takes every request its secret opens.
pub(super) fn by_bot_id<'a, B>(candidates: &[&'a B], bot_id: &str) -> Option<&'a B>
where
    B: Deref<Target: AsRef<BotSettings>>,
{
    candidates.iter().copied().find(|b| settings(*b).bot_id.as_deref() == Some(bot_id)).or_else(|| match candidates {
        [only] if settings(*only).bot_id.is_none() => Some(*only),
        _ => None,
    })
}

fn settings<B: Deref<Target: AsRef<BotSettings>>>(bot: &B) -> &BotSettings {
    (**bot).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatbot::ChatbotConfig;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn bots(toml: &str, vars: &[(&str, &str)]) -> Vec<Arc<BotSettings>> {
        let env: HashMap<&str, &str> = vars.iter().copied().collect();
        let table: toml::Table = toml::from_str(toml).unwrap();
        let config = ChatbotConfig::load(Some(&table), &|k| env.get(k).map(|v| (*v).to_owned())).unwrap().unwrap();
        config.bots.into_iter().map(Arc::new).collect()
    }

    impl AsRef<BotSettings> for BotSettings {
        fn as_ref(&self) -> &BotSettings {
            self
        }
    }

    #[test]
    fn the_secret_opens_bots_and_bot_id_picks_one() {
        let toml = "[chatbot.accounts.shop]\nbotId = \"bot-1\"\n[chatbot.accounts.clinic]\nbotId = \"bot-2\"\n\
                    skillSecret = \"clinic-secret-0123456789\"\n";
        let bots = bots(toml, &[("KAKAO_SKILL_SECRET", "shop-secret-0123456789")]);
        assert!(by_secret(b"", &bots).is_empty());
        assert!(by_secret(b"shop-secret-012345678", &bots).is_empty(), "a prefix is not the secret");
        let shop = by_secret(b"shop-secret-0123456789", &bots);
        assert_eq!(shop.len(), 1);
        assert_eq!(by_bot_id(&shop, "bot-1").map(|b| b.account.as_str()), Some("shop"));
        assert!(by_bot_id(&shop, "bot-2").is_none(), "the shop's secret does not open the clinic");
        let clinic = by_secret(b"clinic-secret-0123456789", &bots);
        assert_eq!(by_bot_id(&clinic, "bot-2").map(|b| b.account.as_str()), Some("clinic"));
    }

    #[test]
    fn one_bot_without_a_bot_id_takes_what_its_secret_opens() {
        let bots = bots("[chatbot]\n", &[("KAKAO_SKILL_SECRET", "only-secret-0123456789")]);
        let open = by_secret(b"only-secret-0123456789", &bots);
        assert_eq!(by_bot_id(&open, "whatever").map(|b| b.account.as_str()), Some("default"));
    }
}
