//! The turn rendezvous: where a skill request (a *turn*) and its answer meet.
//!
//! Kakao holds the skill request open for 5 s; the agent answers when it answers. In this process
//! a turn is a [`TurnState`] in its bot's [`Turns`] table, from the handler's arrival until the
//! answer leaves, and every change is one [`step`]: a pure function of the state, the [`Event`] and
//! the time, which says what the caller must do ([`Effect`]). The I/O (HTTP, store) is the
//! caller's.
//!
//! ```text
//!                 Arrived                         Answer
//!   (no turn) ───────────────▶ Waiting ──────────────────────────────▶ answered inline
//!                               │   └─ FinishedWithoutReply ─────────▶ told "no answer comes"
//!                               │ Deadline (last handler leaves)
//!                               ├─ CallbackPromised ─▶ Callback ─Answer─▶ answered by callback
//!                               └─ (no callback) ─────────────────────▶ kept for the next turn
//! ```
//!
//! Across replicas the handler may be another process's. An answer arriving within that
//! handler's sync deadline ([`offer_until`]) is kept in the store as the user's pending answer of
//! this turn, and `send` returns at once: the handler takes it at its deadline and answers inline;
//! otherwise it waits for the user's next utterance. Whoever takes it from the store shows it,
//! so it is shown once, and it is durable before `send` returns. A follow-up after the deadline
//! ([`after_offer`]) upgrades a missed offer: to the turn's callback, or an Event API
//! announcement.

use super::response::SkillResponse;
use super::state::StoredTurn;
use clawbridge_core::EpochMs;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A callback POST waits this long after the handler promised it, so that the handler's
/// `useCallback` answer reaches Kakao first.
const CALLBACK_SETTLE: Duration = Duration::from_millis(100);
/// A handler whose waiter `send` took just at the deadline waits this much longer for the answer.
const HANDOVER_GRACE: Duration = Duration::from_millis(200);
/// Turns older than this are swept: their handlers are long gone.
const STALE: Duration = Duration::from_secs(120);
/// The table is swept when it holds more turns than this.
const SWEEP_ABOVE: usize = 256;
/// An answer offered to another replica's handler is followed up this long after its deadline.
const FOLLOW_UP_MARGIN: Duration = Duration::from_millis(300);

/// One skill handler waiting for its turn's answer.
#[derive(Debug)]
pub(super) struct Waiter {
    id: u64,
    answer: oneshot::Sender<SkillResponse>,
}

/// Hands `answer` to every handler; `true` when at least one was still there to take it.
pub(super) fn hand_over(waiters: Vec<Waiter>, answer: &SkillResponse) -> bool {
    let mut delivered = false;
    for waiter in waiters {
        delivered |= waiter.answer.send(answer.clone()).is_ok();
    }
    delivered
}

/// A turn this process holds.
#[derive(Debug)]
pub(super) enum TurnState {
    /// Skill handlers hold the HTTP request and wait (several when Kakao repeated the request).
    Waiting {
        /// The user.
        peer: String,
        /// The handlers.
        waiters: Vec<Waiter>,
        /// When the first arrived.
        since: Instant,
    },
    /// The handler answered `useCallback:true`: the answer goes to `url`.
    Callback {
        /// The turn's callback URL.
        url: String,
        /// When the skill request arrived (the callback window counts from it).
        received_at: EpochMs,
        /// When the handler promised the callback.
        since: Instant,
    },
}

impl TurnState {
    fn since(&self) -> Instant {
        match self {
            Self::Waiting { since, .. } | Self::Callback { since, .. } => *since,
        }
    }
}

/// What happens to a turn.
#[derive(Debug)]
pub(super) enum Event {
    /// A skill handler of the turn arrived (the first, or one of Kakao's retries).
    Arrived {
        /// The user.
        peer: String,
        /// The handler.
        waiter: Waiter,
    },
    /// The handler `waiter`'s deadline passed without an answer.
    Deadline {
        /// The handler.
        waiter: u64,
    },
    /// The handler answered `useCallback:true` with the turn's callback URL.
    CallbackPromised {
        /// The callback URL.
        url: String,
        /// When the skill request arrived.
        received_at: EpochMs,
    },
    /// The answer is ready (`send`).
    Answer,
    /// The pipeline finished the turn without a reply.
    FinishedWithoutReply,
}

/// What the caller does after a [`step`].
#[derive(Debug)]
pub(super) enum Effect {
    /// Nothing.
    None,
    /// Hand the answer (or the "no answer" text) to these handlers.
    HandOver(Vec<Waiter>),
    /// POST the answer to the turn's callback URL, after waiting `settle`.
    PostCallback {
        /// The callback URL.
        url: String,
        /// When the skill request arrived.
        received_at: EpochMs,
        /// How long to wait before the POST.
        settle: Duration,
    },
    /// This process holds no handler of the turn: the answer goes elsewhere (another replica's
    /// handler, a callback promised by another process, the next turn).
    Elsewhere,
    /// `send` took this handler's waiter a moment ago: the answer is on its way.
    AnswerOnItsWay,
    /// The handler left without an answer; `others_wait` when another handler of the same
    /// request (a Kakao retry) still waits, so this one must not promise a callback.
    Left {
        /// Whether other handlers remain.
        others_wait: bool,
    },
}

/// The turn's next state and what to do, after `event` at `now`.
pub(super) fn step(state: Option<TurnState>, event: Event, now: Instant) -> (Option<TurnState>, Effect) {
    use TurnState::{Callback, Waiting};
    match (state, event) {
        (Some(Waiting { peer, mut waiters, since }), Event::Arrived { waiter, .. }) => {
            waiters.push(waiter);
            (Some(Waiting { peer, waiters, since }), Effect::None)
        }
        (_, Event::Arrived { peer, waiter }) => {
            (Some(Waiting { peer, waiters: vec![waiter], since: now }), Effect::None)
        }
        (Some(Waiting { peer, mut waiters, since }), Event::Deadline { waiter }) => {
            let before = waiters.len();
            waiters.retain(|w| w.id != waiter);
            if waiters.len() == before {
                (Some(Waiting { peer, waiters, since }), Effect::AnswerOnItsWay)
            } else if waiters.is_empty() {
                (None, Effect::Left { others_wait: false })
            } else {
                (Some(Waiting { peer, waiters, since }), Effect::Left { others_wait: true })
            }
        }
        (state, Event::Deadline { .. }) => (state, Effect::AnswerOnItsWay),
        (_, Event::CallbackPromised { url, received_at }) => {
            (Some(Callback { url, received_at, since: now }), Effect::None)
        }
        (Some(Waiting { waiters, .. }), Event::Answer | Event::FinishedWithoutReply) => {
            (None, Effect::HandOver(waiters))
        }
        (Some(Callback { url, received_at, since }), Event::Answer) => {
            let settle = CALLBACK_SETTLE.saturating_sub(now.saturating_duration_since(since));
            (None, Effect::PostCallback { url, received_at, settle })
        }
        (None, Event::Answer) => (None, Effect::Elsewhere),
        // A promised callback stays promised: the pipeline sends nothing, so nothing is POSTed.
        (_, Event::FinishedWithoutReply) => (None, Effect::None),
    }
}

/// The oldest turn of `peer` whose handlers wait.
fn oldest_waiting_of<'a>(table: &'a HashMap<String, TurnState>, peer: &str) -> Option<&'a str> {
    table
        .iter()
        .filter_map(|(key, turn)| match turn {
            TurnState::Waiting { peer: p, since, .. } if p == peer => Some((*since, key.as_str())),
            _ => None,
        })
        .min()
        .map(|(_, key)| key)
}

/// The turns one bot holds in this process, by message id.
#[derive(Debug, Default)]
pub(super) struct Turns {
    table: Mutex<HashMap<String, TurnState>>,
    next_waiter: AtomicU64,
}

impl Turns {
    /// A handler of `message_id` arrives; returns its id and where its answer arrives.
    pub(super) fn arrive(&self, message_id: &str, peer: &str) -> (u64, oneshot::Receiver<SkillResponse>) {
        let (answer, rx) = oneshot::channel();
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut table = self.table.lock().expect("turns lock");
        if table.len() > SWEEP_ABOVE {
            table.retain(|_, turn| now.saturating_duration_since(turn.since()) < STALE);
        }
        let event = Event::Arrived { peer: peer.to_owned(), waiter: Waiter { id, answer } };
        apply(&mut table, message_id, event, now);
        (id, rx)
    }

    /// Applies `event` to the turn `message_id`.
    pub(super) fn apply(&self, message_id: &str, event: Event) -> Effect {
        apply(&mut self.table.lock().expect("turns lock"), message_id, event, Instant::now())
    }

    /// The answer to `message_id` is ready; a notice without one goes to the oldest waiting turn
    /// of `peer`, and so does an answer that `send` could place nowhere else (`message_id`
    /// `None`: "any turn of this peer").
    pub(super) fn answer(&self, message_id: Option<&str>, peer: &str) -> Effect {
        let mut table = self.table.lock().expect("turns lock");
        let key = match message_id {
            Some(id) => id.to_owned(),
            None => match oldest_waiting_of(&table, peer) {
                Some(key) => key.to_owned(),
                None => return Effect::Elsewhere,
            },
        };
        apply(&mut table, &key, Event::Answer, Instant::now())
    }

    /// Whether a turn of `peer` has handlers waiting.
    pub(super) fn has_waiting(&self, peer: &str) -> bool {
        oldest_waiting_of(&self.table.lock().expect("turns lock"), peer).is_some()
    }
}

fn apply(table: &mut HashMap<String, TurnState>, key: &str, event: Event, now: Instant) -> Effect {
    let (next, effect) = step(table.remove(key), event, now);
    if let Some(next) = next {
        table.insert(key.to_owned(), next);
    }
    effect
}

/// How a handler's wait ended.
#[derive(Debug, PartialEq)]
pub(super) enum Awaited {
    /// The answer came in time.
    Answer(SkillResponse),
    /// No answer by the deadline; `others_wait` as in [`Effect::Left`].
    NoAnswer {
        /// Whether another handler of the same request still waits.
        others_wait: bool,
    },
}

/// Waits for the answer of the turn `message_id` until `deadline`, then leaves the turn.
pub(super) async fn await_answer(
    turns: &Turns,
    message_id: &str,
    waiter: u64,
    mut rx: oneshot::Receiver<SkillResponse>,
    deadline: Instant,
) -> Awaited {
    let early = tokio::select! {
        answer = &mut rx => Some(answer.ok()),
        () = tokio::time::sleep_until(deadline) => None,
    };
    match early {
        Some(Some(answer)) => Awaited::Answer(answer),
        Some(None) => Awaited::NoAnswer { others_wait: false },
        None => match turns.apply(message_id, Event::Deadline { waiter }) {
            Effect::Left { others_wait } => Awaited::NoAnswer { others_wait },
            _ => match tokio::time::timeout(HANDOVER_GRACE, rx).await {
                Ok(Ok(answer)) => Awaited::Answer(answer),
                _ => Awaited::NoAnswer { others_wait: false },
            },
        },
    }
}

/// The deadline of another replica's handler of a turn received at `received_at`, while it is
/// still ahead: until then that handler may take an answer offered through the store.
pub(super) fn offer_until(received_at: Option<EpochMs>, sync_deadline: Duration, now: EpochMs) -> Option<EpochMs> {
    let deadline = received_at?.saturating_add(EpochMs::try_from(sync_deadline.as_millis()).unwrap_or(EpochMs::MAX));
    (now < deadline).then_some(deadline)
}

/// How long after `now` an answer offered to a handler with `deadline` is followed up.
pub(super) fn follow_up_after(deadline: EpochMs, now: EpochMs) -> Duration {
    Duration::from_millis(u64::try_from(deadline.saturating_sub(now)).unwrap_or(0)) + FOLLOW_UP_MARGIN
}

/// What an offered answer needs once its handler's deadline has passed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterOffer {
    /// Someone took it: its handler (inline), a newer turn, or "답변 보기".
    Shown,
    /// Its handler promised the callback: POST it there.
    ByCallback(StoredTurn),
    /// Its handler said "still working": it stays kept for the next turn (announce it).
    KeptForNextTurn,
}

/// Decides [`AfterOffer`] from whether the answer is still kept and the turn's stored callback.
pub(super) fn after_offer(still_kept: bool, callback: Option<StoredTurn>) -> AfterOffer {
    match (still_kept, callback) {
        (false, _) => AfterOffer::Shown,
        (true, Some(turn)) => AfterOffer::ByCallback(turn),
        (true, None) => AfterOffer::KeptForNextTurn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: u64) -> (Waiter, oneshot::Receiver<SkillResponse>) {
        let (answer, rx) = oneshot::channel();
        (Waiter { id, answer }, rx)
    }

    fn arrived(id: u64) -> (Event, oneshot::Receiver<SkillResponse>) {
        let (w, rx) = waiter(id);
        (Event::Arrived { peer: "pf-1".to_owned(), waiter: w }, rx)
    }

    #[test]
    fn a_waiting_turn_is_answered_inline_by_every_handler() {
        let now = Instant::now();
        let (first, mut rx1) = arrived(1);
        let (state, effect) = step(None, first, now);
        assert!(matches!(effect, Effect::None));
        let (retry, mut rx2) = arrived(2);
        let (state, _) = step(state, retry, now + Duration::from_millis(50));
        match &state {
            Some(TurnState::Waiting { waiters, since, .. }) => {
                assert_eq!(waiters.len(), 2);
                assert_eq!(*since, now, "a retry joins the first handler's turn");
            }
            other => panic!("{other:?}"),
        }
        let (state, effect) = step(state, Event::Answer, now);
        assert!(state.is_none(), "answered: the turn is over here");
        let Effect::HandOver(waiters) = effect else { panic!("{effect:?}") };
        assert!(hand_over(waiters, &SkillResponse::text("답")));
        assert_eq!(rx1.try_recv().unwrap(), SkillResponse::text("답"));
        assert_eq!(rx2.try_recv().unwrap(), SkillResponse::text("답"));
    }

    #[test]
    fn handlers_leave_at_their_deadline_and_the_last_one_ends_the_turn() {
        let now = Instant::now();
        let (a, _rx1) = arrived(1);
        let (b, _rx2) = arrived(2);
        let (state, _) = step(None, a, now);
        let (state, _) = step(state, b, now);
        let (state, effect) = step(state, Event::Deadline { waiter: 1 }, now);
        assert!(matches!(effect, Effect::Left { others_wait: true }), "{effect:?}");
        let (state, effect) = step(state, Event::Deadline { waiter: 2 }, now);
        assert!(matches!(effect, Effect::Left { others_wait: false }), "{effect:?}");
        assert!(state.is_none());
        // A waiter that is not there any more was taken by `send`.
        let (state, effect) = step(None, Event::Deadline { waiter: 2 }, now);
        assert!(state.is_none() && matches!(effect, Effect::AnswerOnItsWay), "{effect:?}");
    }

    #[test]
    fn a_promised_callback_gets_the_answer_after_the_settle_time() {
        let now = Instant::now();
        let promise = Event::CallbackPromised { url: "https://bot-api/cb".to_owned(), received_at: 1_000 };
        let (state, _) = step(None, promise, now);
        assert!(matches!(state, Some(TurnState::Callback { .. })));
        let (state, effect) = step(state, Event::Answer, now + Duration::from_millis(30));
        assert!(state.is_none());
        match effect {
            Effect::PostCallback { url, received_at, settle } => {
                assert_eq!((url.as_str(), received_at), ("https://bot-api/cb", 1_000));
                assert_eq!(settle, Duration::from_millis(70));
            }
            other => panic!("{other:?}"),
        }
        let (state, _) = step(None, Event::CallbackPromised { url: "u".to_owned(), received_at: 0 }, now);
        let (_, effect) = step(state, Event::Answer, now + Duration::from_secs(5));
        assert!(matches!(effect, Effect::PostCallback { settle: Duration::ZERO, .. }));
    }

    #[test]
    fn answers_without_a_turn_here_go_elsewhere_and_endings_without_reply_free_the_handlers() {
        let now = Instant::now();
        let (_, effect) = step(None, Event::Answer, now);
        assert!(matches!(effect, Effect::Elsewhere));
        let (a, _rx) = arrived(1);
        let (state, _) = step(None, a, now);
        let (state, effect) = step(state, Event::FinishedWithoutReply, now);
        assert!(state.is_none() && matches!(effect, Effect::HandOver(ref w) if w.len() == 1));
        let (state, _) = step(None, Event::CallbackPromised { url: "u".to_owned(), received_at: 0 }, now);
        let (state, effect) = step(state, Event::FinishedWithoutReply, now);
        assert!(state.is_none() && matches!(effect, Effect::None));
    }

    #[test]
    fn a_notice_finds_the_oldest_waiting_turn_of_its_peer() {
        let turns = Turns::default();
        let (_, _rx1) = turns.arrive("rid:1", "pf-1");
        let (_, _rx2) = turns.arrive("rid:2", "pf-2");
        assert!(turns.has_waiting("pf-1"));
        assert!(matches!(turns.answer(None, "pf-3"), Effect::Elsewhere));
        assert!(matches!(turns.answer(None, "pf-2"), Effect::HandOver(_)));
        assert!(!turns.has_waiting("pf-2"));
        assert!(matches!(turns.answer(Some("rid:2"), "pf-2"), Effect::Elsewhere));
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_gets_an_answer_that_comes_in_time() {
        let turns = Turns::default();
        let (waiter, rx) = turns.arrive("rid:1", "pf-1");
        let deadline = Instant::now() + Duration::from_secs(4);
        let answer = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Effect::HandOver(waiters) = turns.answer(Some("rid:1"), "pf-1") else { panic!() };
            hand_over(waiters, &SkillResponse::text("빠른 답"));
        };
        let (awaited, ()) = tokio::join!(await_answer(&turns, "rid:1", waiter, rx, deadline), answer);
        assert_eq!(awaited, Awaited::Answer(SkillResponse::text("빠른 답")));
        assert!(Instant::now() < deadline, "returned at the answer, not at the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_answer_the_handler_leaves_at_its_deadline() {
        let turns = Turns::default();
        let (first, rx1) = turns.arrive("rid:1", "pf-1");
        let (second, rx2) = turns.arrive("rid:1", "pf-1");
        let start = Instant::now();
        let awaited = await_answer(&turns, "rid:1", first, rx1, start + Duration::from_secs(4)).await;
        assert_eq!(awaited, Awaited::NoAnswer { others_wait: true });
        assert_eq!(Instant::now(), start + Duration::from_secs(4));
        let awaited = await_answer(&turns, "rid:1", second, rx2, start + Duration::from_secs(5)).await;
        assert_eq!(awaited, Awaited::NoAnswer { others_wait: false });
        assert!(matches!(turns.answer(Some("rid:1"), "pf-1"), Effect::Elsewhere), "the turn is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_taken_at_the_deadline_still_reaches_the_handler() {
        let turns = Turns::default();
        let (waiter, rx) = turns.arrive("rid:1", "pf-1");
        let deadline = Instant::now() + Duration::from_secs(4);
        // `send` takes the waiter just before the deadline and hands the answer over a bit later.
        let Effect::HandOver(waiters) = turns.answer(Some("rid:1"), "pf-1") else { panic!() };
        let late = async {
            tokio::time::sleep_until(deadline + Duration::from_millis(150)).await;
            hand_over(waiters, &SkillResponse::text("막 도착"));
        };
        let (awaited, ()) = tokio::join!(await_answer(&turns, "rid:1", waiter, rx, deadline), late);
        assert_eq!(awaited, Awaited::Answer(SkillResponse::text("막 도착")));

        // Taken but never handed over: the handler gives up after the grace time.
        let (waiter, rx) = turns.arrive("rid:2", "pf-1");
        let deadline = Instant::now() + Duration::from_secs(4);
        let Effect::HandOver(_kept) = turns.answer(Some("rid:2"), "pf-1") else { panic!() };
        let awaited = await_answer(&turns, "rid:2", waiter, rx, deadline).await;
        assert_eq!(awaited, Awaited::NoAnswer { others_wait: false });
        assert_eq!(Instant::now(), deadline + HANDOVER_GRACE);
    }

    #[test]
    fn an_offer_is_made_only_within_the_handlers_deadline_and_followed_up_after_it() {
        let deadline = Duration::from_millis(4_000);
        assert_eq!(offer_until(Some(10_000), deadline, 12_000), Some(14_000));
        assert_eq!(offer_until(Some(10_000), deadline, 14_000), None);
        assert_eq!(offer_until(None, deadline, 0), None, "a reply without its turn's time");
        assert_eq!(follow_up_after(14_000, 12_000), Duration::from_millis(2_300));
        assert_eq!(follow_up_after(14_000, 15_000), FOLLOW_UP_MARGIN);
    }

    #[test]
    fn after_the_deadline_a_missed_offer_goes_to_the_callback_or_stays_for_the_next_turn() {
        let turn = StoredTurn { url: "https://bot-api/cb".to_owned(), received_at: 1 };
        assert_eq!(after_offer(false, Some(turn.clone())), AfterOffer::Shown);
        assert_eq!(after_offer(true, Some(turn.clone())), AfterOffer::ByCallback(turn));
        assert_eq!(after_offer(true, None), AfterOffer::KeptForNextTurn);
    }
}
