//! Which dealer requests to make of the claimed rows, and what each answer does to them —
//! decided without I/O, so every path (first send, a resend after a lost answer, a lookup
//! before a resend) is tested as data.
//!
//! A request is named by a [`RequestKey`] that is recorded on its rows *before* the request is
//! made. When the process dies or the answer is lost after that, the rows come back claimed with
//! the key of a request whose outcome nobody knows; they are never simply sent again:
//! - within the dealer's idempotency window (NHN: ten minutes for `X-NC-API-IDEMPOTENCY-KEY`)
//!   the same rows go again under the same key, and NHN refuses the copy (-1005) if the first
//!   one arrived;
//! - after it, and at once for a dealer without an idempotency header, the dealer is asked first
//!   which of them it has, and only the others are sent, under a new key: NHN by the request key
//!   (`senderGroupingKey`, AlimTalk and Brand Message lists), Infobip by our message ids (its
//!   logs), Solapi by our reference in `customFields` among the messages it received around the
//!   key's time (its message list). A message the dealer does not list yet is not taken for
//!   missing until [`LOOKUP_SETTLE_MS`] after the request: until then the rows wait, in doubt;
//! - a request the dealer can no longer be asked about (Infobip keeps its logs for 48 hours) gets
//!   no second request: the rows are given up with a reason that says to check the dealer's
//!   console, since a duplicate notification cannot be taken back.

use crate::dealer::{Addressee, AlimTalkItem, Batch, DealerKind, ItemOutcome, ItemResult};
use crate::phone::PhoneNumber;
use crate::send::Message;
use clawbridge_core::SendError;
use clawbridge_core::time::{EpochMs, MINUTE_MS};
use std::collections::BTreeMap;

/// NHN keeps an idempotency key for ten minutes; a copy sent within nine is still refused.
pub const NHN_IDEMPOTENCY_WINDOW_MS: EpochMs = 9 * MINUTE_MS;

/// How long after a request a lookup that does not find one of its messages is believed: a
/// dealer lists what it took within moments, but not always at once.
pub const LOOKUP_SETTLE_MS: EpochMs = 2 * MINUTE_MS;

/// Infobip's logs go back 48 hours; a request older than this cannot be looked up there.
pub const INFOBIP_LOGS_MS: EpochMs = 47 * 60 * MINUTE_MS;

/// A claimed business-message row, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The row id (also our reference at the dealer).
    pub id: i64,
    /// The sender account.
    pub account: String,
    /// The recipient.
    pub to: PhoneNumber,
    /// What to send.
    pub message: Message,
    /// Not before this instant (a schedule the dealer should hold).
    pub send_at: Option<EpochMs>,
    /// The request an earlier attempt went in, if its outcome is unknown.
    pub request_key: Option<RequestKey>,
}

impl Pending {
    /// Our reference for this row at the dealer.
    pub fn reference(&self) -> String {
        format!("cb{}", self.id)
    }

    /// Who it goes to, for reading the answer.
    pub fn addressee(&self) -> Addressee {
        Addressee { reference: self.reference(), to: self.to.clone() }
    }

    /// Rows that may share one request: one account, one product, one AlimTalk template or one
    /// Brand Message content (a freestyle request carries its text once for every recipient).
    fn group(&self) -> (String, String) {
        let what = match &self.message {
            Message::Alimtalk(rendered) => format!("alimtalk:{}", rendered.template_code),
            Message::Brand(content) => format!("brand:{}", serde_json::to_string(content).unwrap_or_default()),
        };
        (self.account.clone(), what)
    }
}

/// The name of one dealer request: when it was made and its first row, `bz<ms>-<id>`; it is
/// the NHN idempotency key and `senderGroupingKey`, and Infobip's `bulkId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(String);

impl RequestKey {
    /// The key of a request made at `now` whose first row is `first_id`.
    pub fn new(now: EpochMs, first_id: i64) -> Self {
        Self(format!("bz{now}-{first_id}"))
    }

    /// A stored key; `None` when it is not one of ours.
    pub fn parse(stored: &str) -> Option<Self> {
        let (ms, id) = stored.strip_prefix("bz")?.split_once('-')?;
        (ms.parse::<EpochMs>().is_ok() && id.parse::<i64>().is_ok()).then(|| Self(stored.to_owned()))
    }

    /// When the request was made.
    pub fn made_at(&self) -> EpochMs {
        self.0.strip_prefix("bz").and_then(|s| s.split_once('-')).and_then(|(ms, _)| ms.parse().ok()).unwrap_or(0)
    }

    /// The key as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One thing to do with claimed rows.
#[derive(Debug, Clone)]
pub enum Step {
    /// A request: new (`resend: false`), or the same request again under its old key.
    Send {
        /// The request's key (recorded on the rows before the request).
        key: RequestKey,
        /// Its rows, one template, each recipient once.
        rows: Vec<Pending>,
        /// The same request again, within the dealer's idempotency window.
        resend: bool,
    },
    /// Ask the dealer which rows of the earlier request `key` it has, before any is sent again
    /// ([`after_lookup`] reads the answer).
    Lookup {
        /// The earlier request.
        key: RequestKey,
        /// Its rows that came back unfinished.
        rows: Vec<Pending>,
    },
    /// Rows that cannot be sent again without risking a second copy.
    GiveUp {
        /// Why, for the dead letter.
        reason: String,
        /// The rows.
        rows: Vec<Pending>,
    },
}

/// The steps for `rows`, claimed at `now`: rows of an earlier request first (as that request's
/// rules say), then new requests of one account and one template each, at most the dealer's
/// batch size.
pub fn plan(dealer: DealerKind, rows: Vec<Pending>, now: EpochMs) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut earlier: BTreeMap<RequestKey, Vec<Pending>> = BTreeMap::new();
    let mut fresh: BTreeMap<(String, String), Vec<Pending>> = BTreeMap::new();
    for row in rows {
        match &row.request_key {
            Some(key) => earlier.entry(key.clone()).or_default().push(row),
            None => fresh.entry(row.group()).or_default().push(row),
        }
    }
    for (key, rows) in earlier {
        let age = now - key.made_at();
        steps.push(match dealer {
            DealerKind::Nhn if age < NHN_IDEMPOTENCY_WINDOW_MS => Step::Send { key, rows, resend: true },
            DealerKind::Infobip if age > INFOBIP_LOGS_MS => Step::GiveUp {
                reason: format!(
                    "the answer to {} request {} was lost more than 47 hours ago, past what its logs keep: not sent \
                     again, so no one gets it twice; check the {} console for these numbers",
                    dealer.id(),
                    key.as_str(),
                    dealer.id()
                ),
                rows,
            },
            DealerKind::Nhn | DealerKind::Solapi | DealerKind::Infobip => Step::Lookup { key, rows },
        });
    }
    for (_, mut rows) in fresh {
        rows.sort_by_key(|r| r.id);
        for chunk in rows.chunks(dealer.max_batch()) {
            steps.push(Step::Send { key: RequestKey::new(now, chunk[0].id), rows: chunk.to_vec(), resend: false });
        }
    }
    steps
}

/// What a lookup of the earlier request `key` found, `(our reference, the dealer's id)`: the rows
/// the dealer has are accepted with its ids; those it does not have are sent under a new key —
/// once [`LOOKUP_SETTLE_MS`] has passed since the request; before that they wait, in doubt.
pub fn after_lookup(
    key: &RequestKey,
    rows: Vec<Pending>,
    found: &[(String, String)],
    now: EpochMs,
) -> (Vec<RowUpdate>, Option<Step>) {
    let mut updates = Vec::new();
    let mut missing = Vec::new();
    let settled = now - key.made_at() >= LOOKUP_SETTLE_MS;
    for row in rows {
        match found.iter().find(|(reference, _)| *reference == row.reference()) {
            Some((_, dealer_id)) => updates.push(RowUpdate::Accepted { id: row.id, dealer_id: dealer_id.clone() }),
            None if settled => missing.push(Pending { request_key: None, ..row }),
            None => updates.push(RowUpdate::Retry {
                id: row.id,
                error: format!(
                    "the dealer does not list this message of request {} yet; asking again before any resend",
                    key.as_str()
                ),
                after: u64::try_from(key.made_at() + LOOKUP_SETTLE_MS - now)
                    .ok()
                    .map(|ms| std::time::Duration::from_millis(ms.max(1_000))),
                in_doubt: true,
            }),
        }
    }
    let step = missing.first().map(|first| RequestKey::new(now, first.id)).map(|key| Step::Send {
        key,
        rows: missing,
        resend: false,
    });
    (updates, step)
}

/// The AlimTalk batch a [`Step::Send`] sends.
///
/// # Errors
/// The rows do not make one AlimTalk request (a bug in [`plan`]).
pub fn batch(dealer: DealerKind, rows: &[Pending]) -> Result<Batch, String> {
    let send_at = rows.iter().filter_map(|r| r.send_at).max();
    let items = rows
        .iter()
        .map(|row| match &row.message {
            Message::Alimtalk(rendered) => {
                Ok(AlimTalkItem { reference: row.reference(), to: row.to.clone(), rendered: rendered.clone() })
            }
            Message::Brand(_) => Err(format!("row {} is a Brand Message, not an AlimTalk", row.id)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Batch::new(dealer, items, send_at)
}

/// What happens to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowUpdate {
    /// The dealer took it.
    Accepted {
        /// The row.
        id: i64,
        /// The dealer's id.
        dealer_id: String,
    },
    /// Refused for good.
    Dead {
        /// The row.
        id: i64,
        /// The dealer's code and words.
        reason: String,
    },
    /// Another attempt later (the retry policy picks when, at least `after`).
    Retry {
        /// The row.
        id: i64,
        /// What went wrong.
        error: String,
        /// The dealer's `Retry-After`.
        after: Option<std::time::Duration>,
        /// Whether the next attempt must keep this request's key (the request may have arrived).
        in_doubt: bool,
    },
}

/// What a dealer's answer to a [`Step::Send`] does to its rows.
pub fn apply(rows: &[Pending], answer: Result<Vec<ItemOutcome>, SendError>) -> Vec<RowUpdate> {
    match answer {
        Ok(outcomes) => rows
            .iter()
            .map(|row| {
                let reference = row.reference();
                match outcomes.iter().find(|o| o.reference == reference).map(|o| &o.result) {
                    Some(ItemResult::Accepted { dealer_id }) => {
                        RowUpdate::Accepted { id: row.id, dealer_id: dealer_id.clone() }
                    }
                    Some(ItemResult::Refused { code, reason }) => {
                        RowUpdate::Dead { id: row.id, reason: format!("{code} {reason}").trim().to_owned() }
                    }
                    None => RowUpdate::Dead {
                        id: row.id,
                        reason: "the dealer's answer does not mention this recipient".to_owned(),
                    },
                }
            })
            .collect(),
        Err(SendError::Permanent(reason)) => {
            rows.iter().map(|row| RowUpdate::Dead { id: row.id, reason: reason.clone() }).collect()
        }
        Err(error) => {
            // A timeout or a 5xx may hide an accepted request; a 429 or a refused connection
            // did not deliver, but the key is kept either way: resending under it is safe.
            let after = error.retry_after();
            let in_doubt = matches!(error, SendError::Transient { .. });
            rows.iter().map(|row| RowUpdate::Retry { id: row.id, error: error.to_string(), after, in_doubt }).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::fixtures;

    fn pending(id: i64, phone: &str, key: Option<&RequestKey>) -> Pending {
        let item = fixtures::item("x", phone, "홍길동", false);
        Pending {
            id,
            account: "default".into(),
            to: item.to,
            message: Message::Alimtalk(item.rendered),
            send_at: None,
            request_key: key.cloned(),
        }
    }

    const NOW: EpochMs = 1_798_070_400_000;

    #[test]
    fn request_keys_carry_their_time() {
        let key = RequestKey::new(NOW, 42);
        assert_eq!(key.as_str(), "bz1798070400000-42");
        assert_eq!(RequestKey::parse(key.as_str()), Some(key.clone()));
        assert_eq!(key.made_at(), NOW);
        assert_eq!(RequestKey::parse("batch-7"), None);
    }

    #[test]
    fn new_rows_go_in_requests_of_one_template_and_the_dealers_batch_size() {
        let rows: Vec<Pending> = (1..=1_500).map(|i| pending(i, &format!("010{i:08}"), None)).collect();
        let steps = plan(DealerKind::Nhn, rows, NOW);
        let sizes: Vec<usize> = steps
            .iter()
            .map(|s| match s {
                Step::Send { rows, resend: false, .. } => rows.len(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(sizes, [1_000, 500]);
        let Step::Send { key, rows, .. } = &steps[1] else { unreachable!() };
        assert_eq!(key, &RequestKey::new(NOW, 1_001));
        assert!(batch(DealerKind::Nhn, rows).is_ok());
    }

    #[test]
    fn a_lost_answer_is_resent_under_its_key_then_looked_up_never_blindly_repeated() {
        let key = RequestKey::new(NOW - 60_000, 7);
        let rows = vec![pending(7, "010-1111-2222", Some(&key)), pending(8, "010-3333-4444", None)];
        let steps = plan(DealerKind::Nhn, rows.clone(), NOW);
        assert!(matches!(&steps[0], Step::Send { key: k, resend: true, rows } if *k == key && rows.len() == 1));
        assert!(matches!(&steps[1], Step::Send { resend: false, .. }));

        let late = NOW + NHN_IDEMPOTENCY_WINDOW_MS;
        assert!(matches!(&plan(DealerKind::Nhn, rows.clone(), late)[0], Step::Lookup { key: k, .. } if *k == key));
        // Without an idempotency header the dealer is asked first, whatever the time.
        for dealer in [DealerKind::Solapi, DealerKind::Infobip] {
            assert!(
                matches!(&plan(dealer, rows.clone(), NOW)[0], Step::Lookup { key: k, rows } if *k == key && rows[0].id == 7)
            );
        }
        let past_the_logs = NOW + INFOBIP_LOGS_MS;
        let infobip = plan(DealerKind::Infobip, rows.clone(), past_the_logs);
        assert!(
            matches!(&infobip[0], Step::GiveUp { reason, rows } if reason.contains("not sent again") && rows[0].id == 7)
        );
        assert!(matches!(&plan(DealerKind::Solapi, rows, past_the_logs)[0], Step::Lookup { .. }));
    }

    #[test]
    fn a_message_not_listed_yet_waits_in_doubt_until_the_lookup_can_be_believed() {
        let key = RequestKey::new(NOW - 30_000, 7);
        let rows = vec![pending(7, "010-1111-2222", Some(&key)), pending(8, "010-3333-4444", Some(&key))];
        let (updates, next) = after_lookup(&key, rows.clone(), &[("cb8".into(), "M4V8".into())], NOW);
        assert!(next.is_none(), "nothing is sent again this early");
        assert_eq!(updates[1], RowUpdate::Accepted { id: 8, dealer_id: "M4V8".into() });
        let RowUpdate::Retry { id: 7, in_doubt: true, after: Some(after), .. } = &updates[0] else {
            panic!("{updates:?}")
        };
        assert_eq!(after.as_millis(), 90_000, "asked again when the lookup can be believed");
        let (_, next) = after_lookup(&key, rows, &[], NOW + 90_000);
        assert!(matches!(next, Some(Step::Send { resend: false, rows, .. }) if rows.len() == 2));
    }

    #[test]
    fn a_lookup_accepts_what_the_dealer_has_and_sends_the_rest_anew() {
        let key = RequestKey::new(NOW - 20 * MINUTE_MS, 7);
        let rows = vec![pending(7, "010-1111-2222", Some(&key)), pending(8, "010-3333-4444", Some(&key))];
        let (updates, next) = after_lookup(&key, rows, &[("cb8".into(), "R1/2".into())], NOW);
        assert_eq!(updates, [RowUpdate::Accepted { id: 8, dealer_id: "R1/2".into() }]);
        let Some(Step::Send { key: new_key, rows, resend: false }) = next else { panic!("a new request expected") };
        assert_eq!((new_key, rows.len(), rows[0].id), (RequestKey::new(NOW, 7), 1, 7));
        assert!(rows[0].request_key.is_none());
    }

    #[test]
    fn answers_become_row_updates() {
        let rows = vec![pending(1, "010-1111-2222", None), pending(2, "010-3333-4444", None)];
        let outcomes = vec![
            ItemOutcome { reference: "cb1".into(), result: ItemResult::Accepted { dealer_id: "R/1".into() } },
            ItemOutcome {
                reference: "cb2".into(),
                result: ItemResult::Refused { code: "-2000".into(), reason: "bad".into() },
            },
        ];
        assert_eq!(
            apply(&rows, Ok(outcomes)),
            [
                RowUpdate::Accepted { id: 1, dealer_id: "R/1".into() },
                RowUpdate::Dead { id: 2, reason: "-2000 bad".into() }
            ]
        );
        let timeout = apply(&rows, Err(SendError::transient("timed out")));
        assert!(matches!(&timeout[0], RowUpdate::Retry { in_doubt: true, .. }));
        let limited =
            apply(&rows, Err(SendError::RateLimited { retry_after: Some(std::time::Duration::from_secs(3)) }));
        assert!(matches!(&limited[1], RowUpdate::Retry { in_doubt: false, after: Some(d), .. } if d.as_secs() == 3));
        assert!(matches!(&apply(&rows, Err(SendError::Permanent("-1001".into())))[0], RowUpdate::Dead { .. }));
    }
}
