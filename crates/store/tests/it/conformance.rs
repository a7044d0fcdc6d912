//! The behaviour every `Store` backend must have. Each function is one test, instantiated per
//! backend by `conformance_suite!` in `main.rs`. Times are fixed epoch milliseconds: the store
//! never reads a clock, so nothing here sleeps.

pub use crate::bizmsg::*;
pub use crate::campaign::*;
pub use crate::console::*;
use crate::target::Target;
use clawbridge_core::{
    AccountId, ChannelId, EpochMs, IdempotencyKey, InboundMessage, Lane, MediaKind, MediaRef, MessageKind,
    OutboundMessage, PeerId,
};
use clawbridge_store::{
    Completed, DeadLetter, DeliveryUpdate, InboxState, InsertOutcome, MasterKey, NewOutbound, OutboxState,
    PairingOutcome, PairingRequest, QueueStats, QuotaTake, SecretBox, SharedStore, StatePut, StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) const NOW: EpochMs = 1_700_000_000_000;
pub(crate) const LEASE: EpochMs = 30_000;

pub(crate) fn inbound(peer: &str, id: &str) -> InboundMessage {
    InboundMessage::text("whatsapp", "default", peer, id, format!("text of {id}"))
}

pub(crate) fn outbound(peer: &str, key: &str) -> NewOutbound {
    NewOutbound {
        idempotency_key: IdempotencyKey::new(key),
        message: OutboundMessage {
            channel: ChannelId::new("whatsapp"),
            account: AccountId::new("default"),
            peer: PeerId::new(peer),
            text: Some(format!("reply {key}")),
            media: Vec::new(),
            reply_to: None,
            extra: clawbridge_core::ChannelData::default(),
        },
        inbound_id: None,
        not_before: None,
    }
}

fn reply(to: &InboundMessage, inbound_id: i64, key: &str) -> NewOutbound {
    NewOutbound {
        idempotency_key: IdempotencyKey::new(key),
        message: OutboundMessage::reply_text(to, format!("reply {key}")),
        inbound_id: Some(inbound_id),
        not_before: None,
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    rows.iter().map(id).collect()
}

async fn insert(store: &SharedStore, msg: &InboundMessage) -> i64 {
    match store.insert_inbound(msg, NOW).await.expect("insert") {
        InsertOutcome::Inserted(id) => id,
        InsertOutcome::Duplicate(id) => panic!("unexpected duplicate {id}"),
    }
}

/// Enqueues one message and moves it to `sent` with `platform_id`.
async fn sent(store: &SharedStore, peer: &str, key: &str, platform_id: &str) -> i64 {
    let id = store.enqueue_outbound(&[outbound(peer, key)], NOW).await.expect("enqueue")[0];
    let claimed = store.claim_outbound("w", 10, LEASE, NOW).await.expect("claim");
    assert!(claimed.iter().any(|r| r.id == id), "{key} is claimable");
    for row in claimed.iter().filter(|r| r.id != id) {
        store.release_outbound(row.id, "w").await.expect("release");
    }
    assert!(store.mark_sent(id, "w", Some(platform_id), NOW).await.expect("mark_sent"));
    id
}

// ---- inbox -------------------------------------------------------------------------------------

pub async fn insert_inbound_dedups_on_channel_account_message_id(t: &Target) {
    let store = t.open().await;
    let msg = inbound("15550001", "wamid.1");
    let id = insert(&store, &msg).await;
    assert_eq!(store.insert_inbound(&msg, NOW + 5).await.unwrap(), InsertOutcome::Duplicate(id));

    // A redelivery with different content is still the same message.
    let mut again = msg.clone();
    again.text = "edited".to_owned();
    assert_eq!(store.insert_inbound(&again, NOW + 6).await.unwrap(), InsertOutcome::Duplicate(id));

    // The same platform id on another account or channel is another message.
    let mut other_account = msg.clone();
    other_account.account = AccountId::new("second");
    let mut other_channel = msg.clone();
    other_channel.channel = ChannelId::new("kakao");
    let a = insert(&store, &other_account).await;
    let c = insert(&store, &other_channel).await;
    assert!(a != id && c != id && a != c);

    let row = store.get_inbound(id).await.unwrap().expect("row");
    assert_eq!(row.message, msg);
    assert_eq!(row.lane, msg.lane());
    assert_eq!(row.state, InboxState::Pending);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.received_at, NOW);
    assert_eq!(row.outcome, None);
    assert_eq!(store.get_inbound(id + 1_000_000).await.unwrap(), None);
    assert_eq!(
        store.backend(),
        match t {
            Target::Sqlite { .. } => "sqlite",
            Target::Postgres { .. } => "postgres",
            Target::Memory { .. } => "memory",
        }
    );
}

/// Concurrent webhook deliveries (SQLite commits them in groups): every caller gets the right
/// answer, each message is stored once, and redeliveries in the same burst are duplicates.
pub async fn concurrent_inserts_each_get_their_own_outcome(t: &Target) {
    let store = t.open().await;
    let mut tasks = Vec::new();
    for round in 0..2 {
        for i in 0..100 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let msg = inbound(&format!("peer{}", i % 7), &format!("burst.{i}"));
                (round, i, store.insert_inbound(&msg, NOW + i64::from(round)).await.unwrap())
            }));
        }
    }
    let mut ids = std::collections::HashMap::new();
    let (mut inserted, mut duplicates) = (0, 0);
    for task in tasks {
        let (_, i, outcome) = task.await.unwrap();
        match outcome {
            InsertOutcome::Inserted(_) => inserted += 1,
            InsertOutcome::Duplicate(_) => duplicates += 1,
        }
        let first = *ids.entry(i).or_insert(outcome.id());
        assert_eq!(first, outcome.id(), "both deliveries of message {i} name the same row");
    }
    assert_eq!((inserted, duplicates), (100, 100));
    assert_eq!(store.queue_stats().await.unwrap().inbox_pending, 100);
}

pub async fn inbound_payload_round_trips(t: &Target) {
    let store = t.open().await;
    let mut msg = inbound("15550001", "wamid.rich");
    msg.kind = MessageKind::Other("order".to_owned());
    msg.sender_name = Some("김철수 ✓".to_owned());
    msg.sent_at = Some(NOW - 1_000);
    msg.text = "줄 1\n\"quoted\" 'single' \\ backslash \u{0}".to_owned();
    msg.media = vec![MediaRef {
        kind: MediaKind::Document,
        url: Some("https://example.com/a.pdf".to_owned()),
        mime_type: Some("application/pdf".to_owned()),
        size_bytes: Some(12_345),
        ..MediaRef::default()
    }];
    msg.reply_to = Some("wamid.0".into());
    msg.extra = serde_json::json!({"callbackUrl": "https://kakao.example/cb", "n": [1, 2.5, null]}).into();
    let id = insert(&store, &msg).await;
    assert_eq!(store.get_inbound(id).await.unwrap().unwrap().message, msg);
}

pub async fn inbound_claims_keep_lane_order(t: &Target) {
    let store = t.open().await;
    let a1 = insert(&store, &inbound("A", "a1")).await;
    let a2 = insert(&store, &inbound("A", "a2")).await;
    let b1 = insert(&store, &inbound("B", "b1")).await;
    let b2 = insert(&store, &inbound("B", "b2")).await;

    // One row per lane, the oldest, oldest first.
    let first = store.claim_inbound("w1", 10, LEASE, NOW).await.unwrap();
    assert_eq!(ids(&first, |r| r.id), vec![a1, b1]);
    assert!(first.iter().all(|r| r.state == InboxState::Processing && r.attempts == 1));

    // Both lanes are busy: nothing else is claimable, by anyone.
    assert!(store.claim_inbound("w2", 10, LEASE, NOW).await.unwrap().is_empty());

    // Finishing lane A frees its next message only.
    assert!(store.complete_inbound(a1, "w1", "replied", &[], NOW).await.unwrap());
    let next = store.claim_inbound("w2", 10, LEASE, NOW).await.unwrap();
    assert_eq!(ids(&next, |r| r.id), vec![a2]);

    // A message failed for good also finishes its lane.
    assert!(store.fail_inbound(b1, "w1", "boom", None, NOW).await.unwrap());
    let next = store.claim_inbound("w2", 10, LEASE, NOW).await.unwrap();
    assert_eq!(ids(&next, |r| r.id), vec![b2]);

    let done = store.get_inbound(a1).await.unwrap().unwrap();
    assert_eq!(done.state, InboxState::Done);
    assert_eq!(done.outcome.as_deref(), Some("replied"));
}

pub async fn inbound_claims_respect_limit_and_next_at(t: &Target) {
    let store = t.open().await;
    let mut all = Vec::new();
    for peer in ["A", "B", "C"] {
        all.push(insert(&store, &inbound(peer, &format!("{peer}1"))).await);
    }
    assert!(store.claim_inbound("w", 0, LEASE, NOW).await.unwrap().is_empty());
    let two = store.claim_inbound("w", 2, LEASE, NOW).await.unwrap();
    assert_eq!(ids(&two, |r| r.id), all[..2].to_vec());

    // A retry scheduled for later blocks its lane until then.
    let later = insert(&store, &inbound("A", "A2")).await;
    assert!(store.fail_inbound(all[0], "w", "gateway down", Some(NOW + 1_000), NOW).await.unwrap());
    let row = store.get_inbound(all[0]).await.unwrap().unwrap();
    assert_eq!(row.state, InboxState::Pending);
    assert_eq!(row.last_error.as_deref(), Some("gateway down"));
    let claimed = store.claim_inbound("w", 10, LEASE, NOW + 999).await.unwrap();
    assert_eq!(ids(&claimed, |r| r.id), vec![all[2]], "lane A waits for its retry, A2 stays behind it");
    let claimed = store.claim_inbound("w", 10, LEASE, NOW + 1_000).await.unwrap();
    assert_eq!(ids(&claimed, |r| r.id), vec![all[0]]);
    assert_eq!(claimed[0].attempts, 2);
    assert!(store.complete_inbound(all[0], "w", "replied", &[], NOW + 1_000).await.unwrap());
    let claimed = store.claim_inbound("w", 10, LEASE, NOW + 1_000).await.unwrap();
    assert_eq!(ids(&claimed, |r| r.id), vec![later]);
}

pub async fn expired_inbound_lease_lets_another_worker_claim(t: &Target) {
    let store = t.open().await;
    let id = insert(&store, &inbound("A", "a1")).await;
    assert_eq!(store.claim_inbound("w1", 1, 1_000, NOW).await.unwrap().len(), 1);
    assert!(store.claim_inbound("w2", 1, 1_000, NOW + 1_000).await.unwrap().is_empty(), "lease still running");

    let taken = store.claim_inbound("w2", 1, 1_000, NOW + 1_001).await.unwrap();
    assert_eq!(ids(&taken, |r| r.id), vec![id]);
    assert_eq!(taken[0].attempts, 2);

    // The first worker lost its lease: everything it tries is refused and changes nothing.
    assert!(!store.renew_inbound(id, "w1", 1_000, NOW + 1_002).await.unwrap());
    assert!(!store.complete_inbound(id, "w1", "replied", &[reply(&inbound("A", "a1"), id, "k")], NOW).await.unwrap());
    assert!(!store.fail_inbound(id, "w1", "late", None, NOW + 1_002).await.unwrap());
    store.release_inbound(id, "w1").await.unwrap();
    let row = store.get_inbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts, row.last_error), (InboxState::Processing, 2, None));
    assert_eq!(store.queue_stats().await.unwrap().outbox_queued, 0, "the stale reply was not enqueued");

    assert!(store.complete_inbound(id, "w2", "replied", &[], NOW + 1_003).await.unwrap());
    assert!(!store.complete_inbound(id, "w2", "replied", &[], NOW + 1_004).await.unwrap(), "done is final");
}

pub async fn renew_extends_the_inbound_lease(t: &Target) {
    let store = t.open().await;
    let id = insert(&store, &inbound("A", "a1")).await;
    store.claim_inbound("w1", 1, 1_000, NOW).await.unwrap();
    assert!(store.renew_inbound(id, "w1", 1_000, NOW + 900).await.unwrap());
    assert!(store.claim_inbound("w2", 1, 1_000, NOW + 1_500).await.unwrap().is_empty());
    assert!(!store.renew_inbound(id, "w2", 1_000, NOW + 1_500).await.unwrap(), "only the owner renews");
    assert_eq!(store.claim_inbound("w2", 1, 1_000, NOW + 1_901).await.unwrap().len(), 1);
}

/// A send still under way keeps its row: the owner renews the lease, nobody else can.
pub async fn renew_extends_the_outbound_lease(t: &Target) {
    let store = t.open().await;
    let ids = store.enqueue_outbound(&[outbound("A", "k-renew")], NOW).await.unwrap();
    assert_eq!(store.claim_outbound("w1", 1, 1_000, NOW).await.unwrap().len(), 1);
    assert!(store.renew_outbound(ids[0], "w1", 1_000, NOW + 900).await.unwrap());
    assert!(store.claim_outbound("w2", 1, 1_000, NOW + 1_500).await.unwrap().is_empty(), "renewed");
    assert!(!store.renew_outbound(ids[0], "w2", 1_000, NOW + 1_500).await.unwrap(), "only the owner renews");
    let taken = store.claim_outbound("w2", 1, 1_000, NOW + 1_901).await.unwrap();
    assert_eq!(taken.len(), 1, "taken over once the renewed lease ran out");
    assert!(!store.renew_outbound(ids[0], "w1", 1_000, NOW + 1_902).await.unwrap(), "the old owner lost it");
}

pub async fn release_inbound_gives_the_row_back(t: &Target) {
    let store = t.open().await;
    let id = insert(&store, &inbound("A", "a1")).await;
    store.claim_inbound("w1", 1, LEASE, NOW).await.unwrap();
    store.release_inbound(id, "someone-else").await.unwrap();
    assert_eq!(store.get_inbound(id).await.unwrap().unwrap().state, InboxState::Processing);

    store.release_inbound(id, "w1").await.unwrap();
    let row = store.get_inbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (InboxState::Pending, 0), "a release is not an attempt");
    let again = store.claim_inbound("w2", 1, LEASE, NOW).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (id, 1));
}

pub async fn complete_inbound_enqueues_replies_atomically_and_idempotently(t: &Target) {
    let store = t.open().await;
    let msg = inbound("A", "a1");
    let id = insert(&store, &msg).await;
    // One reply part is already in the outbox (enqueued by an earlier, interrupted run).
    let earlier = store.enqueue_outbound(&[reply(&msg, id, "run-r0")], NOW).await.unwrap()[0];

    store.claim_inbound("w1", 1, LEASE, NOW).await.unwrap();
    let replies = [reply(&msg, id, "run-r0"), reply(&msg, id, "run-r1"), reply(&msg, id, "run-r2")];
    assert!(store.complete_inbound(id, "w1", "replied", &replies, NOW + 10).await.unwrap());

    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.inbox_done, stats.outbox_queued), (1, 3), "run-r0 was not enqueued twice");
    let claimed = store.claim_outbound("s", 10, LEASE, NOW + 10).await.unwrap();
    assert_eq!(ids(&claimed, |r| r.id)[0], earlier, "the replies share the lane, oldest first");
    assert_eq!(claimed.len(), 1);
    let row = &claimed[0];
    assert_eq!(row.inbound_id, Some(id));
    assert_eq!(row.lane, msg.lane());
    assert_eq!(row.message, replies[0].message);

    // A stale worker writes nothing at all: neither the state nor the replies.
    let other = insert(&store, &inbound("B", "b1")).await;
    store.claim_inbound("w1", 1, 100, NOW).await.unwrap();
    store.claim_inbound("w2", 1, LEASE, NOW + 200).await.unwrap();
    assert!(!store.complete_inbound(other, "w1", "replied", &[outbound("B", "stale")], NOW + 300).await.unwrap());
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.outbox_queued + stats.outbox_sending, 3);
    assert_eq!(store.get_inbound(other).await.unwrap().unwrap().state, InboxState::Processing);
}

pub async fn complete_and_claim_hands_the_first_reply_to_the_completer(t: &Target) {
    let store = t.open().await;
    let msg = inbound("A", "a1");
    let id = insert(&store, &msg).await;
    store.claim_inbound("w1", 1, LEASE, NOW).await.unwrap();
    let replies = [reply(&msg, id, "k-r0"), reply(&msg, id, "k-r1")];
    let first = match store.complete_inbound_and_claim(id, "w1", "replied", &replies, LEASE, NOW + 10).await.unwrap() {
        Completed::Done { first_reply: Some(row) } => row,
        other => panic!("expected the first reply claimed, got {other:?}"),
    };
    assert_eq!(first.idempotency_key.as_str(), "k-r0");
    assert_eq!(first.state, OutboxState::Sending);
    assert_eq!(first.attempts, 1);
    assert_eq!(store.get_inbound(id).await.unwrap().unwrap().state, InboxState::Done);
    // The second part waits for the first: the lane order holds for the fast path too.
    assert!(store.claim_outbound("s", 10, LEASE, NOW + 10).await.unwrap().is_empty());
    assert!(store.mark_sent(first.id, "w1", Some("p0"), NOW + 20).await.unwrap());
    let next = store.claim_outbound("s", 10, LEASE, NOW + 20).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].idempotency_key.as_str(), "k-r1");

    // An older unsent message of the lane keeps the new reply queued.
    let msg2 = inbound("A", "a2");
    let id2 = insert(&store, &msg2).await;
    store.claim_inbound("w1", 1, LEASE, NOW + 30).await.unwrap();
    let replies2 = [reply(&msg2, id2, "k2-r0")];
    let done = store.complete_inbound_and_claim(id2, "w1", "replied", &replies2, LEASE, NOW + 40).await.unwrap();
    assert_eq!(done, Completed::Done { first_reply: None });

    // A worker that lost its lease writes nothing.
    let msg3 = inbound("B", "b1");
    let id3 = insert(&store, &msg3).await;
    store.claim_inbound("w1", 1, 100, NOW).await.unwrap();
    store.claim_inbound("w2", 1, LEASE, NOW + 200).await.unwrap();
    let replies3 = [reply(&msg3, id3, "k3")];
    let stale = store.complete_inbound_and_claim(id3, "w1", "replied", &replies3, LEASE, NOW + 300).await.unwrap();
    assert_eq!(stale, Completed::LeaseLost);
    assert_eq!(store.get_inbound(id3).await.unwrap().unwrap().state, InboxState::Processing);
}

pub async fn fail_inbound_retries_then_fails_for_good(t: &Target) {
    let store = t.open().await;
    let id = insert(&store, &inbound("A", "a1")).await;
    store.claim_inbound("w", 1, LEASE, NOW).await.unwrap();
    assert!(store.fail_inbound(id, "w", "timeout", Some(NOW + 5_000), NOW + 1).await.unwrap());
    assert!(store.claim_inbound("w", 1, LEASE, NOW + 4_999).await.unwrap().is_empty());
    assert_eq!(store.claim_inbound("w", 1, LEASE, NOW + 5_000).await.unwrap().len(), 1);
    assert!(store.fail_inbound(id, "w", "agent refused", None, NOW + 5_001).await.unwrap());

    let row = store.get_inbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (InboxState::Failed, 2));
    assert_eq!(row.last_error.as_deref(), Some("agent refused"));
    assert!(store.claim_inbound("w", 1, LEASE, NOW + 99_999).await.unwrap().is_empty(), "failed is final");
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(
        dead,
        vec![DeadLetter {
            queue: "inbox",
            id,
            lane: "whatsapp/default/A".to_owned(),
            reason: "agent refused".to_owned(),
            attempts: 2,
            at: NOW + 5_001,
        }]
    );
}

// ---- outbox ------------------------------------------------------------------------------------

pub async fn enqueue_outbound_returns_ids_in_input_order(t: &Target) {
    let store = t.open().await;
    let first =
        store.enqueue_outbound(&[outbound("A", "a"), outbound("B", "b"), outbound("A", "c")], NOW).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first[0] < first[1] && first[1] < first[2], "ids follow input order");

    let second =
        store.enqueue_outbound(&[outbound("A", "c"), outbound("C", "d"), outbound("A", "a")], NOW).await.unwrap();
    assert_eq!(second[0], first[2]);
    assert_eq!(second[2], first[0]);
    assert!(!first.contains(&second[1]));
    assert!(store.enqueue_outbound(&[], NOW).await.unwrap().is_empty());

    let row = store.get_outbound(first[1]).await.unwrap().unwrap();
    assert_eq!(row.idempotency_key, IdempotencyKey::new("b"));
    assert_eq!(row.message, outbound("B", "b").message);
    assert_eq!(row.lane, Lane::of(&"whatsapp".into(), &"default".into(), &"B".into()));
    assert_eq!((row.state, row.attempts, row.next_at, row.created_at), (OutboxState::Queued, 0, NOW, NOW));
    assert_eq!((row.inbound_id, row.last_error, row.platform_message_id), (None, None, None));
    assert_eq!((row.delivery_status, row.delivery_error), (None, None));
    assert_eq!(store.get_outbound(first[2] + 1_000_000).await.unwrap(), None);
}

pub async fn outbound_claims_keep_lane_order_and_wait_for_not_before(t: &Target) {
    let store = t.open().await;
    let mut scheduled = outbound("C", "c1");
    scheduled.not_before = Some(NOW + 60_000);
    let ids_in = store
        .enqueue_outbound(&[outbound("A", "a1"), outbound("A", "a2"), outbound("B", "b1"), scheduled], NOW)
        .await
        .unwrap();
    let (a1, a2, b1, c1) = (ids_in[0], ids_in[1], ids_in[2], ids_in[3]);
    assert_eq!(store.get_outbound(c1).await.unwrap().unwrap().next_at, NOW + 60_000);

    let claimed = store.claim_outbound("s1", 10, LEASE, NOW).await.unwrap();
    assert_eq!(ids(&claimed, |r| r.id), vec![a1, b1]);
    assert!(claimed.iter().all(|r| r.state == OutboxState::Sending && r.attempts == 1));
    assert!(store.claim_outbound("s2", 10, LEASE, NOW).await.unwrap().is_empty());

    assert!(store.mark_sent(a1, "s1", Some("wamid.a1"), NOW).await.unwrap());
    assert_eq!(ids(&store.claim_outbound("s2", 10, LEASE, NOW).await.unwrap(), |r| r.id), vec![a2]);
    assert!(store.mark_sent(a2, "s2", None, NOW).await.unwrap());
    assert!(store.mark_sent(b1, "s1", None, NOW).await.unwrap());
    assert!(store.claim_outbound("s2", 10, LEASE, NOW + 59_999).await.unwrap().is_empty());
    assert_eq!(ids(&store.claim_outbound("s2", 10, LEASE, NOW + 60_000).await.unwrap(), |r| r.id), vec![c1]);

    let sent = store.get_outbound(a1).await.unwrap().unwrap();
    assert_eq!((sent.state, sent.platform_message_id.as_deref()), (OutboxState::Sent, Some("wamid.a1")));
}

pub async fn outbound_retry_then_dead(t: &Target) {
    let store = t.open().await;
    let ids_in = store.enqueue_outbound(&[outbound("A", "a1"), outbound("A", "a2")], NOW).await.unwrap();
    let (a1, a2) = (ids_in[0], ids_in[1]);
    store.claim_outbound("s", 1, LEASE, NOW).await.unwrap();
    assert!(store.mark_retry(a1, "s", "HTTP 503", NOW + 2_000, NOW + 1).await.unwrap());
    let row = store.get_outbound(a1).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.next_at, row.last_error.as_deref()),
        (OutboxState::Retry, NOW + 2_000, Some("HTTP 503"))
    );

    assert!(store.claim_outbound("s", 10, LEASE, NOW + 1_999).await.unwrap().is_empty(), "a2 waits behind a1");
    let again = store.claim_outbound("s", 10, LEASE, NOW + 2_000).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (a1, 2));
    assert_eq!(again.len(), 1);

    assert!(store.mark_dead(a1, "s", "131047: re-engagement window closed", NOW + 2_001).await.unwrap());
    let row = store.get_outbound(a1).await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Dead);
    assert_eq!(row.last_error.as_deref(), Some("131047: re-engagement window closed"));
    // Dead finishes the lane: the next message goes out.
    assert_eq!(ids(&store.claim_outbound("s", 10, LEASE, NOW + 2_001).await.unwrap(), |r| r.id), vec![a2]);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].queue, dead[0].id, dead[0].attempts, dead[0].at), ("outbox", a1, 2, NOW + 2_001));
    assert_eq!(dead[0].reason, "131047: re-engagement window closed");
}

pub async fn stale_outbound_worker_cannot_mark(t: &Target) {
    let store = t.open().await;
    let id = store.enqueue_outbound(&[outbound("A", "a1")], NOW).await.unwrap()[0];
    store.claim_outbound("s1", 1, 1_000, NOW).await.unwrap();
    assert!(store.claim_outbound("s2", 1, 1_000, NOW + 1_000).await.unwrap().is_empty());
    let taken = store.claim_outbound("s2", 1, 1_000, NOW + 1_001).await.unwrap();
    assert_eq!((taken[0].id, taken[0].attempts), (id, 2));

    assert!(!store.mark_sent(id, "s1", Some("wamid.stale"), NOW + 1_002).await.unwrap());
    assert!(!store.mark_retry(id, "s1", "x", NOW + 5_000, NOW + 1_002).await.unwrap());
    assert!(!store.mark_dead(id, "s1", "x", NOW + 1_002).await.unwrap());
    store.release_outbound(id, "s1").await.unwrap();
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.platform_message_id, row.last_error), (OutboxState::Sending, None, None));

    assert!(store.mark_sent(id, "s2", Some("wamid.ok"), NOW + 1_003).await.unwrap());
    assert!(!store.mark_sent(id, "s2", Some("wamid.twice"), NOW + 1_004).await.unwrap(), "sent is final");
    assert!(!store.mark_dead(id, "s2", "x", NOW + 1_004).await.unwrap());
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.platform_message_id.as_deref()), (OutboxState::Sent, Some("wamid.ok")));
}

pub async fn release_outbound_restores_the_ready_state(t: &Target) {
    let store = t.open().await;
    let id = store.enqueue_outbound(&[outbound("A", "a1")], NOW).await.unwrap()[0];
    store.claim_outbound("s", 1, LEASE, NOW).await.unwrap();
    store.release_outbound(id, "s").await.unwrap();
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (OutboxState::Queued, 0));

    store.claim_outbound("s", 1, LEASE, NOW).await.unwrap();
    assert!(store.mark_retry(id, "s", "429", NOW + 100, NOW).await.unwrap());
    store.claim_outbound("s", 1, LEASE, NOW + 100).await.unwrap();
    store.release_outbound(id, "s").await.unwrap();
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts, row.next_at), (OutboxState::Retry, 1, NOW + 100));
    assert_eq!(store.claim_outbound("s", 1, LEASE, NOW + 100).await.unwrap().len(), 1, "claimable again at once");
}

pub async fn delivery_status_only_moves_forward_and_failed_wins(t: &Target) {
    let store = t.open().await;
    let id = sent(&store, "A", "a1", "wamid.A1").await;
    let update = |status: &str, error: Option<&str>, at: EpochMs| DeliveryUpdate {
        channel: ChannelId::new("whatsapp"),
        platform_message_id: "wamid.A1".to_owned(),
        status: status.to_owned(),
        error: error.map(str::to_owned),
        at,
    };
    let status = |row: clawbridge_store::OutboundRow| (row.delivery_status, row.delivery_error);

    assert!(store.record_delivery(&update("delivered", None, NOW + 1)).await.unwrap());
    assert!(store.record_delivery(&update("sent", None, NOW + 2)).await.unwrap(), "known id, even if ignored");
    assert_eq!(status(store.get_outbound(id).await.unwrap().unwrap()), (Some("delivered".to_owned()), None));
    assert!(store.record_delivery(&update("read", None, NOW + 3)).await.unwrap());
    assert!(store.record_delivery(&update("delivered", None, NOW + 4)).await.unwrap());
    assert!(store.record_delivery(&update("playing", None, NOW + 4)).await.unwrap());
    assert_eq!(status(store.get_outbound(id).await.unwrap().unwrap()), (Some("read".to_owned()), None));

    assert!(store.record_delivery(&update("failed", Some("131047: window closed"), NOW + 5)).await.unwrap());
    assert!(store.record_delivery(&update("read", None, NOW + 6)).await.unwrap());
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!(status(row.clone()), (Some("failed".to_owned()), Some("131047: window closed".to_owned())));
    assert_eq!(row.state, OutboxState::Sent, "a delivery status does not change the send state");

    let mut unknown = update("read", None, NOW);
    unknown.platform_message_id = "wamid.nope".to_owned();
    assert!(!store.record_delivery(&unknown).await.unwrap());
    let mut other_channel = update("read", None, NOW);
    other_channel.channel = ChannelId::new("kakao");
    assert!(!store.record_delivery(&other_channel).await.unwrap());

    assert_eq!(store.queue_stats().await.unwrap().delivery_failed, 1);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(
        dead,
        vec![DeadLetter {
            queue: "delivery",
            id,
            lane: "whatsapp/default/A".to_owned(),
            reason: "131047: window closed".to_owned(),
            attempts: 1,
            at: NOW + 5,
        }]
    );
}

// ---- cursors, leases, keys -----------------------------------------------------------------------

pub async fn cursors_round_trip(t: &Target) {
    let store = t.open().await;
    let (wa, default, other) = (ChannelId::new("whatsapp"), AccountId::new("default"), AccountId::new("other"));
    assert_eq!(store.get_cursor(&wa, &default, "poll").await.unwrap(), None);
    store.set_cursor(&wa, &default, "poll", "2026-01-01T00:00:00Z", NOW).await.unwrap();
    store.set_cursor(&wa, &other, "poll", "other", NOW).await.unwrap();
    assert_eq!(store.get_cursor(&wa, &default, "poll").await.unwrap().as_deref(), Some("2026-01-01T00:00:00Z"));
    store.set_cursor(&wa, &default, "poll", "2026-01-02T00:00:00Z", NOW + 1).await.unwrap();
    assert_eq!(store.get_cursor(&wa, &default, "poll").await.unwrap().as_deref(), Some("2026-01-02T00:00:00Z"));
    assert_eq!(store.get_cursor(&wa, &other, "poll").await.unwrap().as_deref(), Some("other"));
    assert_eq!(store.get_cursor(&wa, &default, "other-name").await.unwrap(), None);
}

pub async fn leases_are_exclusive_until_expiry(t: &Target) {
    let store = t.open().await;
    assert!(store.try_lease("poller/whatsapp/default", "A", 1_000, NOW).await.unwrap());
    assert!(!store.try_lease("poller/whatsapp/default", "B", 1_000, NOW + 500).await.unwrap());
    assert!(store.try_lease("poller/whatsapp/other", "B", 1_000, NOW + 500).await.unwrap(), "names are independent");
    assert!(store.try_lease("poller/whatsapp/default", "A", 1_000, NOW + 500).await.unwrap(), "holder renews");
    assert!(!store.try_lease("poller/whatsapp/default", "B", 1_000, NOW + 1_500).await.unwrap(), "renewed until +1500");
    assert!(store.try_lease("poller/whatsapp/default", "B", 1_000, NOW + 1_501).await.unwrap(), "expired: taken over");
    assert!(!store.try_lease("poller/whatsapp/default", "A", 1_000, NOW + 1_600).await.unwrap());

    store.release_lease("poller/whatsapp/default", "A").await.unwrap();
    assert!(!store.try_lease("poller/whatsapp/default", "A", 1_000, NOW + 1_600).await.unwrap(), "not A's to release");
    store.release_lease("poller/whatsapp/default", "B").await.unwrap();
    assert!(store.try_lease("poller/whatsapp/default", "A", 1_000, NOW + 1_600).await.unwrap());
}

pub async fn remember_key_is_true_once_until_expiry(t: &Target) {
    let store = t.open().await;
    assert!(store.remember_key("kapso", "idem-1", NOW + 1_000, NOW).await.unwrap());
    assert!(!store.remember_key("kapso", "idem-1", NOW + 5_000, NOW + 999).await.unwrap());
    assert!(store.remember_key("kakao", "idem-1", NOW + 1_000, NOW).await.unwrap(), "namespaces are independent");
    assert!(store.remember_key("kapso", "idem-1", NOW + 2_000, NOW + 1_000).await.unwrap(), "expired counts as absent");
    assert!(!store.remember_key("kapso", "idem-1", NOW + 3_000, NOW + 1_999).await.unwrap(), "remembered anew");
}

// ---- channel state -------------------------------------------------------------------------------

fn state<'a>(namespace: &'a str, key: &'a str, value: &'a str, expires_at: Option<EpochMs>) -> StatePut<'a> {
    StatePut { namespace, key, value, expires_at }
}

pub async fn channel_state_put_get_take_list_expire(t: &Target) {
    let store = t.open().await;
    assert_eq!(store.get_state("kakao.pending", "u1", NOW).await.unwrap(), None);
    assert!(store.put_state(&state("kakao.pending", "u1", "first", None), false, NOW).await.unwrap());
    assert!(store.put_state(&state("kakao.pending", "u1", "second", Some(NOW + 100)), false, NOW + 1).await.unwrap());
    assert!(store.put_state(&state("kakao.pending", "u2", "other", None), false, NOW + 2).await.unwrap());
    assert!(store.put_state(&state("kakao.more", "u1", "elsewhere", None), false, NOW + 3).await.unwrap());
    assert_eq!(store.get_state("kakao.pending", "u1", NOW + 50).await.unwrap().as_deref(), Some("second"));
    assert_eq!(store.get_state("kakao.pending", "u1", NOW + 100).await.unwrap(), None, "expired reads as absent");

    let listed = store.list_state("kakao.pending", 10, NOW + 50).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|e| (e.key.as_str(), e.value.as_str(), e.updated_at)).collect();
    assert_eq!(keys, vec![("u2", "other", NOW + 2), ("u1", "second", NOW + 1)], "newest first, one namespace");
    assert_eq!(store.list_state("kakao.pending", 1, NOW + 50).await.unwrap().len(), 1);
    assert_eq!(store.list_state("kakao.pending", 10, NOW + 100).await.unwrap().len(), 1, "expired not listed");

    assert_eq!(store.take_state("kakao.pending", "u2", NOW + 50).await.unwrap().as_deref(), Some("other"));
    assert_eq!(store.take_state("kakao.pending", "u2", NOW + 50).await.unwrap(), None, "taken once");
    assert_eq!(store.take_state("kakao.pending", "u1", NOW + 100).await.unwrap(), None, "expired is not taken");
    assert_eq!(store.get_state("kakao.more", "u1", NOW).await.unwrap().as_deref(), Some("elsewhere"));
}

pub async fn channel_state_if_absent_claims_once_until_expiry(t: &Target) {
    let store = t.open().await;
    let claim = |at: EpochMs, value: &'static str| {
        let store = store.clone();
        async move { store.put_state(&state("callback", "req-1", value, Some(at + 1_000)), true, at).await.unwrap() }
    };
    assert!(claim(NOW, "a").await);
    assert!(!claim(NOW + 999, "b").await, "live value is kept");
    assert_eq!(store.get_state("callback", "req-1", NOW + 999).await.unwrap().as_deref(), Some("a"));
    assert!(claim(NOW + 1_000, "c").await, "expired value counts as absent");
    assert_eq!(store.get_state("callback", "req-1", NOW + 1_500).await.unwrap().as_deref(), Some("c"));
    assert!(store.put_state(&state("callback", "forever", "x", None), true, NOW).await.unwrap());
    assert!(!store.put_state(&state("callback", "forever", "y", None), true, NOW + 1_000_000).await.unwrap());
}

// ---- pairing -----------------------------------------------------------------------------------

fn pairing_request(account: &str, peer: &str, ttl_ms: EpochMs) -> PairingRequest {
    PairingRequest {
        channel: ChannelId::new("whatsapp"),
        account: AccountId::new(account),
        peer: PeerId::new(peer),
        display_name: Some(format!("Name of {peer}")),
        ttl_ms,
        max_pending: 3,
    }
}

pub async fn pairing_issue_pending_too_many_approve_revoke(t: &Target) {
    let store = t.open().await;
    let wa = ChannelId::new("whatsapp");
    let hour = clawbridge_core::pairing::CODE_TTL_MS;

    let issued = store.request_pairing(&pairing_request("default", "A", hour), "ABCD2345", NOW).await.unwrap();
    assert_eq!(issued, PairingOutcome::Issued { code: "ABCD2345".to_owned(), expires_at: NOW + hour });
    let pending = store.request_pairing(&pairing_request("default", "A", hour), "ZZZZ9999", NOW + 10).await.unwrap();
    assert_eq!(pending, PairingOutcome::Pending { code: "ABCD2345".to_owned(), expires_at: NOW + hour });

    for (peer, code) in [("B", "BBBB2222"), ("C", "CCCC3333")] {
        let outcome = store.request_pairing(&pairing_request("default", peer, hour), code, NOW + 20).await.unwrap();
        assert!(matches!(outcome, PairingOutcome::Issued { .. }), "{peer}: {outcome:?}");
    }
    let too_many = store.request_pairing(&pairing_request("default", "D", hour), "DDDD4444", NOW + 30).await.unwrap();
    assert_eq!(too_many, PairingOutcome::TooMany);
    let other_account =
        store.request_pairing(&pairing_request("second", "D", hour), "EEEE5555", NOW + 30).await.unwrap();
    assert!(matches!(other_account, PairingOutcome::Issued { .. }), "the limit is per account");
    let mut kakao = pairing_request("default", "K", hour);
    kakao.channel = ChannelId::new("kakao");
    store.request_pairing(&kakao, "KKKK6666", NOW + 40).await.unwrap();

    let listed = store.list_pairings(Some(&wa), NOW + 50).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.peer.as_str()).collect::<Vec<_>>(), ["A", "B", "C", "D"]);
    assert_eq!(listed[0].code, "ABCD2345");
    assert_eq!(listed[0].display_name.as_deref(), Some("Name of A"));
    assert_eq!((listed[0].created_at, listed[0].expires_at), (NOW, NOW + hour));
    assert_eq!(store.list_pairings(None, NOW + 50).await.unwrap().len(), 5);

    // Operators type codes sloppily: case, spaces and dashes do not matter.
    assert_eq!(
        store.approve_pairing(&ChannelId::new("kakao"), "abcd-2345", NOW + 60).await.unwrap(),
        None,
        "wrong channel"
    );
    let approved = store.approve_pairing(&wa, " abcd-2345 ", NOW + 60).await.unwrap().expect("approved");
    assert_eq!((approved.account.as_str(), approved.peer.as_str()), ("default", "A"));
    assert_eq!((approved.display_name.as_deref(), approved.approved_at), (Some("Name of A"), NOW + 60));
    assert_eq!(store.approve_pairing(&wa, "ABCD2345", NOW + 61).await.unwrap(), None, "a code works once");

    let (default, a) = (AccountId::new("default"), PeerId::new("A"));
    assert!(store.is_approved(&wa, &default, &a).await.unwrap());
    assert!(!store.is_approved(&wa, &AccountId::new("second"), &a).await.unwrap());
    assert_eq!(store.list_approved(Some(&wa)).await.unwrap(), vec![approved]);
    assert!(store.list_approved(Some(&ChannelId::new("kakao"))).await.unwrap().is_empty());
    assert_eq!(store.list_approved(None).await.unwrap().len(), 1);
    assert_eq!(store.list_pairings(Some(&wa), NOW + 62).await.unwrap().len(), 3);

    let again = store.request_pairing(&pairing_request("default", "A", hour), "FFFF7777", NOW + 70).await.unwrap();
    assert_eq!(again, PairingOutcome::AlreadyApproved);
    let d = store.request_pairing(&pairing_request("default", "D", hour), "DDDD4444", NOW + 70).await.unwrap();
    assert!(matches!(d, PairingOutcome::Issued { .. }), "A's slot was freed: {d:?}");

    assert!(store.revoke_peer(&wa, &default, &a).await.unwrap());
    assert!(!store.revoke_peer(&wa, &default, &a).await.unwrap());
    assert!(!store.is_approved(&wa, &default, &a).await.unwrap());
}

pub async fn pairing_codes_expire(t: &Target) {
    let store = t.open().await;
    let wa = ChannelId::new("whatsapp");
    let issued = store.request_pairing(&pairing_request("default", "A", 1_000), "AAAA2222", NOW).await.unwrap();
    assert_eq!(issued, PairingOutcome::Issued { code: "AAAA2222".to_owned(), expires_at: NOW + 1_000 });
    assert!(store.list_pairings(Some(&wa), NOW + 1_000).await.unwrap().is_empty());
    assert_eq!(store.approve_pairing(&wa, "AAAA2222", NOW + 1_000).await.unwrap(), None, "expired code rejected");
    assert!(!store.is_approved(&wa, &AccountId::new("default"), &PeerId::new("A")).await.unwrap());

    // Expired requests neither count against the limit nor keep their code.
    for (peer, code) in [("B", "BBBB2222"), ("C", "CCCC2222")] {
        store.request_pairing(&pairing_request("default", peer, 1_000), code, NOW).await.unwrap();
    }
    let fresh = store.request_pairing(&pairing_request("default", "D", 1_000), "AAAA2222", NOW + 2_000).await.unwrap();
    assert_eq!(fresh, PairingOutcome::Issued { code: "AAAA2222".to_owned(), expires_at: NOW + 3_000 });
    let renewed =
        store.request_pairing(&pairing_request("default", "A", 1_000), "NEWC2222", NOW + 2_000).await.unwrap();
    assert_eq!(renewed, PairingOutcome::Issued { code: "NEWC2222".to_owned(), expires_at: NOW + 3_000 });
    let approved = store.approve_pairing(&wa, "aaaa2222", NOW + 2_500).await.unwrap().expect("approved");
    assert_eq!(approved.peer.as_str(), "D");
}

pub async fn pairing_code_collisions_are_refused(t: &Target) {
    let store = t.open().await;
    store.request_pairing(&pairing_request("default", "A", 1_000), "SAME2222", NOW).await.unwrap();
    // The caller draws 8 random characters, so a collision is a 1 in 2^40 event; the store
    // refuses it rather than making a code ambiguous, and the caller may retry with a new code.
    let err = store.request_pairing(&pairing_request("other", "B", 1_000), "same2222", NOW).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(err.to_string().contains("pairing_requests"), "the error names the table: {err}");
    // A different channel may use the same code.
    let mut kakao = pairing_request("default", "A", 1_000);
    kakao.channel = ChannelId::new("kakao");
    assert!(matches!(store.request_pairing(&kakao, "SAME2222", NOW).await.unwrap(), PairingOutcome::Issued { .. }));
}

// ---- quotas ------------------------------------------------------------------------------------

const MINUTE: EpochMs = 60_000;

pub async fn quotas_grant_up_to_the_limit_per_key_and_window(t: &Target) {
    let store = t.open().await;
    let start = NOW - NOW % MINUTE;
    let end = start + MINUTE;
    let take = |key: &'static str, window_start: EpochMs, limit: u64, n: u64| {
        let store = store.clone();
        async move { store.take_quota(key, window_start, MINUTE, limit, n, NOW).await.unwrap() }
    };
    assert_eq!(take("kapso/key-1", start, 5, 2).await, QuotaTake::Granted { count: 2 });
    assert_eq!(take("kapso/key-1", start, 5, 2).await, QuotaTake::Granted { count: 4 });
    assert_eq!(take("kapso/key-1", start, 5, 2).await, QuotaTake::Refused { count: 4, window_end: end });
    assert_eq!(take("kapso/key-1", start, 5, 1).await, QuotaTake::Granted { count: 5 }, "a smaller take still fits");
    assert_eq!(take("kapso/key-1", start, 5, 1).await, QuotaTake::Refused { count: 5, window_end: end });
    assert_eq!(take("kapso/key-1", start, 5, 0).await, QuotaTake::Granted { count: 5 }, "taking nothing reads");
    assert!(!take("kapso/key-1", start, 5, 1).await.is_granted());

    // Keys and windows are independent; the next window starts from zero.
    assert_eq!(take("kapso/key-2", start, 5, 1).await, QuotaTake::Granted { count: 1 });
    assert_eq!(take("kapso/key-1", end, 5, 1).await, QuotaTake::Granted { count: 1 });

    // A take larger than the limit takes nothing, even from an unused window.
    assert_eq!(take("kakao/daily", start, 3, 4).await, QuotaTake::Refused { count: 0, window_end: end });
    assert_eq!(take("kakao/daily", start, 3, 3).await, QuotaTake::Granted { count: 3 });
    assert_eq!(take("dealer/off", start, 0, 1).await, QuotaTake::Refused { count: 0, window_end: end });
    assert!(take("kapso/huge", start, u64::MAX, u64::MAX).await.is_granted(), "huge numbers do not overflow");
    let full = i64::MAX.unsigned_abs();
    assert_eq!(take("kapso/huge", start, u64::MAX, 1).await, QuotaTake::Refused { count: full, window_end: end });
}

pub async fn quota_windows_are_pruned_once_ended(t: &Target) {
    let store = t.open().await;
    let first = store.take_quota("k", NOW, 1_000, 10, 4, NOW).await.unwrap();
    assert_eq!(first, QuotaTake::Granted { count: 4 });
    store.take_quota("k", NOW + 1_000, 1_000, 10, 7, NOW + 1_000).await.unwrap();
    assert_eq!(store.prune(NOW + 1_000).await.unwrap(), 0, "the first window ends at NOW + 1000");
    assert_eq!(store.prune(NOW + 1_001).await.unwrap(), 1);
    assert_eq!(
        store.take_quota("k", NOW + 1_000, 1_000, 10, 1, NOW + 1_500).await.unwrap(),
        QuotaTake::Granted { count: 8 },
        "the running window is kept"
    );
}

/// Takers on two independent stores (two pools, as two replicas would have) race for one
/// window: the limit holds exactly, and every granted count is handed out once.
pub async fn concurrent_quota_takers_never_pass_the_limit(t: &Target) {
    let stores = [t.open().await, t.open().await];
    let race = |key: &'static str, takers: usize, limit: u64, n: u64| {
        let stores = stores.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..takers {
                let store = stores[i % 2].clone();
                tasks.spawn(async move { store.take_quota(key, NOW, MINUTE, limit, n, NOW).await.expect("take") });
            }
            let mut outcomes = Vec::new();
            while let Some(outcome) = tasks.join_next().await {
                outcomes.push(outcome.expect("taker"));
            }
            outcomes
        }
    };
    let outcomes = race("one-by-one", 40, 25, 1).await;
    let mut granted: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            QuotaTake::Granted { count } => Some(*count),
            QuotaTake::Refused { .. } => None,
        })
        .collect();
    granted.sort_unstable();
    assert_eq!(granted, (1..=25).collect::<Vec<_>>(), "each count once, none past the limit");
    let refused: Vec<_> = outcomes.iter().filter(|o| !o.is_granted()).collect();
    assert_eq!(refused.len(), 15);
    assert!(refused.iter().all(|o| **o == QuotaTake::Refused { count: 25, window_end: NOW + MINUTE }), "{refused:?}");

    // Takes of 3 against a limit of 50: 16 fit (48), none may squeeze a 17th in.
    let outcomes = race("by-three", 30, 50, 3).await;
    assert_eq!(outcomes.iter().filter(|o| o.is_granted()).count(), 16);
    let last = stores[0].take_quota("by-three", NOW, MINUTE, 50, 2, NOW).await.unwrap();
    assert_eq!(last, QuotaTake::Granted { count: 50 }, "the count is exactly what was granted");
}

// ---- secrets -----------------------------------------------------------------------------------

pub async fn secrets_round_trip_and_bind_to_key_and_name(t: &Target) {
    let store = t.open().await;
    let key = MasterKey::from_bytes([7; 32]);
    let secrets = SecretBox::new(key.clone(), store.clone());
    let token = SecretString::from("kakao-access-token-ÄÖÜ-토큰");
    secrets.put("kakao/default/access_token", &token, NOW).await.unwrap();
    let back = secrets.get("kakao/default/access_token").await.unwrap().expect("stored");
    assert_eq!(back.expose_secret(), token.expose_secret());
    assert!(secrets.get("kakao/default/refresh_token").await.unwrap().is_none());

    // The database holds ciphertext only.
    let blob = store.get_secret_blob("kakao/default/access_token").await.unwrap().unwrap();
    assert_eq!(blob[0], 1, "format version");
    assert!(!blob.windows(12).any(|w| w == b"kakao-access"));

    // Replacing works and re-encrypts with a fresh nonce.
    secrets.put("kakao/default/access_token", &SecretString::from("second"), NOW + 1).await.unwrap();
    let blob2 = store.get_secret_blob("kakao/default/access_token").await.unwrap().unwrap();
    assert_ne!(blob[1..25], blob2[1..25]);
    assert_eq!(secrets.get("kakao/default/access_token").await.unwrap().unwrap().expose_secret(), "second");

    // Another key cannot read it, and says what is probably wrong.
    let wrong = SecretBox::new(MasterKey::from_bytes([8; 32]), store.clone());
    let err = wrong.get("kakao/default/access_token").await.unwrap_err();
    assert!(matches!(err, StoreError::Secret(_)), "{err:?}");
    assert!(err.to_string().contains("cannot decrypt kakao/default/access_token"), "{err}");
    assert!(err.to_string().contains("CLAWBRIDGE_MASTER_KEY"), "{err}");

    // A blob moved to another name does not decrypt (the name is authenticated).
    store.put_secret_blob("kapso/api_key", &blob2, NOW).await.unwrap();
    assert!(matches!(secrets.get("kapso/api_key").await, Err(StoreError::Secret(_))));

    assert!(secrets.delete("kakao/default/access_token").await.unwrap());
    assert!(!secrets.delete("kakao/default/access_token").await.unwrap());
    assert!(secrets.get("kakao/default/access_token").await.unwrap().is_none());
    assert!(!format!("{secrets:?}").contains("0707"), "Debug does not show the key");
}

// ---- operations --------------------------------------------------------------------------------

pub async fn queue_stats_count_every_state(t: &Target) {
    let store = t.open().await;
    assert_eq!(store.queue_stats().await.unwrap(), QueueStats::default());

    let i: Vec<i64> = futures_ids(&store, &["A", "B", "C", "D", "E"]).await;
    store.claim_inbound("w", 4, LEASE, NOW).await.unwrap(); // A..D processing, E pending
    store.complete_inbound(i[0], "w", "replied", &[], NOW).await.unwrap();
    store.complete_inbound(i[1], "w", "silent", &[], NOW).await.unwrap();
    store.fail_inbound(i[2], "w", "x", None, NOW).await.unwrap();

    let o = store
        .enqueue_outbound(
            &[outbound("A", "1"), outbound("B", "2"), outbound("C", "3"), outbound("D", "4"), outbound("E", "5")],
            NOW,
        )
        .await
        .unwrap();
    store.claim_outbound("s", 4, LEASE, NOW).await.unwrap(); // 1..4 sending, 5 queued
    store.mark_sent(o[0], "s", Some("p1"), NOW).await.unwrap();
    store.mark_sent(o[1], "s", Some("p2"), NOW).await.unwrap();
    store.mark_retry(o[2], "s", "x", NOW + 1, NOW).await.unwrap();
    let failed = DeliveryUpdate {
        channel: ChannelId::new("whatsapp"),
        platform_message_id: "p2".to_owned(),
        status: "failed".to_owned(),
        error: None,
        at: NOW,
    };
    store.record_delivery(&failed).await.unwrap();
    let dead = store.enqueue_outbound(&[outbound("F", "6")], NOW).await.unwrap()[0];
    store.claim_outbound("s", 10, LEASE, NOW).await.unwrap();
    store.mark_dead(dead, "s", "x", NOW).await.unwrap();

    assert_eq!(
        store.queue_stats().await.unwrap(),
        QueueStats {
            inbox_pending: 1,
            inbox_processing: 1,
            inbox_failed: 1,
            inbox_done: 2,
            outbox_queued: 0,
            outbox_sending: 2,
            outbox_retry: 1,
            outbox_sent: 2,
            outbox_dead: 1,
            delivery_failed: 1,
        }
    );
}

async fn futures_ids(store: &SharedStore, peers: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for peer in peers {
        out.push(insert(store, &inbound(peer, &format!("{peer}-1"))).await);
    }
    out
}

pub async fn dead_letters_are_newest_first_and_limited(t: &Target) {
    let store = t.open().await;
    let inbox = insert(&store, &inbound("A", "a1")).await;
    store.claim_inbound("w", 1, LEASE, NOW).await.unwrap();
    store.fail_inbound(inbox, "w", "policy error", None, NOW + 10).await.unwrap();

    let dead = store.enqueue_outbound(&[outbound("B", "b1")], NOW).await.unwrap()[0];
    store.claim_outbound("s", 1, LEASE, NOW).await.unwrap();
    store.mark_dead(dead, "s", "-402 blocked", NOW + 20).await.unwrap();

    let delivered = sent(&store, "C", "c1", "wamid.C1").await;
    let failed = DeliveryUpdate {
        channel: ChannelId::new("whatsapp"),
        platform_message_id: "wamid.C1".to_owned(),
        status: "failed".to_owned(),
        error: Some("131026: undeliverable".to_owned()),
        at: NOW + 30,
    };
    store.record_delivery(&failed).await.unwrap();

    let all = store.dead_letters(10).await.unwrap();
    let seen: Vec<_> = all.iter().map(|d| (d.queue, d.id, d.reason.as_str(), d.at)).collect();
    assert_eq!(
        seen,
        vec![
            ("delivery", delivered, "131026: undeliverable", NOW + 30),
            ("outbox", dead, "-402 blocked", NOW + 20),
            ("inbox", inbox, "policy error", NOW + 10),
        ]
    );
    assert_eq!(all[1].lane, "whatsapp/default/B");
    assert_eq!(store.dead_letters(2).await.unwrap(), all[..2].to_vec());
    assert!(store.dead_letters(0).await.unwrap().is_empty());
}

pub async fn check_writable_writes_a_heartbeat(t: &Target) {
    let store = t.open().await;
    store.check_writable(NOW).await.unwrap();
    store.check_writable(NOW + 1).await.unwrap();
    store.check_writable(NOW - 5).await.unwrap();
}

pub async fn prune_removes_only_finished_rows_and_expired_keys(t: &Target) {
    let store = t.open().await;
    let done = insert(&store, &inbound("A", "a1")).await;
    let pending = insert(&store, &inbound("B", "b1")).await;
    store.claim_inbound("w", 1, LEASE, NOW).await.unwrap();
    store.complete_inbound(done, "w", "replied", &[], NOW).await.unwrap();

    let sent_id = sent(&store, "A", "o1", "wamid.o1").await;
    let queued = store.enqueue_outbound(&[outbound("B", "o2")], NOW).await.unwrap()[0];
    store.remember_key("kapso", "old", NOW, NOW).await.unwrap();
    store.remember_key("kapso", "live", NOW + 10_000, NOW).await.unwrap();
    store.request_pairing(&pairing_request("default", "P", 1), "PPPP2222", NOW - 2).await.unwrap();
    store.request_pairing(&pairing_request("default", "Q", 10_000), "QQQQ2222", NOW).await.unwrap();
    store.put_state(&state("ns", "old", "v", Some(NOW)), false, NOW - 5).await.unwrap();
    store.put_state(&state("ns", "kept", "v", None), false, NOW - 5).await.unwrap();

    assert_eq!(store.prune(NOW).await.unwrap(), 1, "only the pairing request expired before NOW");
    assert_eq!(store.prune(NOW + 1).await.unwrap(), 4, "done inbox, sent outbox, expired key, expired state");
    assert_eq!(store.prune(NOW + 1).await.unwrap(), 0);

    assert_eq!(store.get_inbound(done).await.unwrap(), None);
    assert!(store.get_inbound(pending).await.unwrap().is_some());
    assert_eq!(store.get_outbound(sent_id).await.unwrap(), None);
    assert!(store.get_outbound(queued).await.unwrap().is_some());
    assert!(!store.remember_key("kapso", "live", NOW + 20_000, NOW + 1).await.unwrap());
    assert_eq!(store.list_pairings(None, NOW).await.unwrap().len(), 1);
    assert_eq!(store.get_state("ns", "kept", NOW + 1).await.unwrap().as_deref(), Some("v"));

    // A pruned message that is delivered again is new again, with a higher id.
    let again = insert(&store, &inbound("A", "a1")).await;
    assert!(again > pending);
}

pub async fn migrations_run_once_when_opened_concurrently_and_again(t: &Target) {
    // Two "processes" start on a fresh database at the same moment.
    let (a, b) = tokio::join!(t.try_open(), t.try_open());
    let (a, b) = (a.expect("first open"), b.expect("second open"));
    let id = insert(&a, &inbound("A", "a1")).await;
    assert_eq!(b.insert_inbound(&inbound("A", "a1"), NOW).await.unwrap(), InsertOutcome::Duplicate(id));
    drop((a, b));

    // A restart runs the migrator again: nothing to do, data intact.
    let c = t.open().await;
    assert_eq!(c.get_inbound(id).await.unwrap().unwrap().message, inbound("A", "a1"));
}

/// Many workers in two independent stores (two pools, as two processes would have) claim the
/// same inbox. Every row must be handed out exactly once, and each lane in id order.
pub async fn concurrent_inbound_claims_deliver_each_row_once(t: &Target) {
    const LANES: usize = 6;
    const PER_LANE: usize = 6;
    let stores = [t.open().await, t.open().await];
    let mut expected = HashSet::new();
    for n in 0..PER_LANE {
        for lane in 0..LANES {
            expected.insert(insert(&stores[0], &inbound(&format!("peer{lane}"), &format!("m{lane}-{n}"))).await);
        }
    }
    let log: Arc<Mutex<Vec<(Lane, i64)>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = stores[worker % 2].clone();
        let log = log.clone();
        tasks.spawn(async move {
            let name = format!("worker-{worker}");
            while log.lock().unwrap().len() < LANES * PER_LANE {
                let claimed = store.claim_inbound(&name, 2, LEASE, NOW).await.expect("claim");
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for row in claimed {
                    log.lock().unwrap().push((row.lane.clone(), row.id));
                    tokio::task::yield_now().await;
                    assert!(store.complete_inbound(row.id, &name, "replied", &[], NOW).await.expect("complete"));
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            done.expect("worker");
        }
    })
    .await
    .expect("workers finish");
    check_exactly_once_in_lane_order(&log.lock().unwrap(), &expected);
}

/// As above for the outbox.
pub async fn concurrent_outbound_claims_deliver_each_row_once(t: &Target) {
    const LANES: usize = 6;
    const PER_LANE: usize = 6;
    let stores = [t.open().await, t.open().await];
    let mut messages = Vec::new();
    for n in 0..PER_LANE {
        for lane in 0..LANES {
            messages.push(outbound(&format!("peer{lane}"), &format!("k{lane}-{n}")));
        }
    }
    let expected: HashSet<i64> = stores[1].enqueue_outbound(&messages, NOW).await.unwrap().into_iter().collect();
    let log: Arc<Mutex<Vec<(Lane, i64)>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = stores[worker % 2].clone();
        let log = log.clone();
        tasks.spawn(async move {
            let name = format!("sender-{worker}");
            while log.lock().unwrap().len() < LANES * PER_LANE {
                let claimed = store.claim_outbound(&name, 2, LEASE, NOW).await.expect("claim");
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for row in claimed {
                    log.lock().unwrap().push((row.lane.clone(), row.id));
                    tokio::task::yield_now().await;
                    let platform_id = format!("wamid.{}", row.id);
                    assert!(store.mark_sent(row.id, &name, Some(&platform_id), NOW).await.expect("mark_sent"));
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            done.expect("worker");
        }
    })
    .await
    .expect("workers finish");
    check_exactly_once_in_lane_order(&log.lock().unwrap(), &expected);
    assert_eq!(stores[0].queue_stats().await.unwrap().outbox_sent, expected.len() as u64);
}

fn check_exactly_once_in_lane_order(log: &[(Lane, i64)], expected: &HashSet<i64>) {
    let claimed: Vec<i64> = log.iter().map(|(_, id)| *id).collect();
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a row was claimed twice: {claimed:?}");
    assert_eq!(&unique, expected, "every row was claimed");
    let mut by_lane: BTreeMap<&Lane, Vec<i64>> = BTreeMap::new();
    for (lane, id) in log {
        by_lane.entry(lane).or_default().push(*id);
    }
    for (lane, ids) in by_lane {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "lane {lane} out of order: {ids:?}");
    }
}
