//! Conformance of the console's queries (`ConsoleStore`, `Pairing::reject_pairing`), on every
//! backend.

use crate::target::Target;
use clawbridge_core::{AccountId, ChannelId, EpochMs, InboundMessage, PeerId};
use clawbridge_store::{
    DeadLetterAction, InboxState, InsertOutcome, OutboxState, PairingOutcome, PairingRequest, SharedStore,
};

use crate::conformance::{LEASE, NOW, inbound, outbound};

async fn insert(store: &SharedStore, msg: &InboundMessage, now: EpochMs) -> i64 {
    match store.insert_inbound(msg, now).await.expect("insert") {
        InsertOutcome::Inserted(id) => id,
        InsertOutcome::Duplicate(id) => panic!("unexpected duplicate {id}"),
    }
}

pub async fn console_lanes_list_conversations_newest_first_with_their_messages(t: &Target) {
    let store = t.open().await;
    let a1 = insert(&store, &inbound("A", "a1"), NOW).await;
    insert(&store, &inbound("B", "b1"), NOW + 10).await;
    store.enqueue_outbound(&[outbound("A", "ra1"), outbound("A", "ra2")], NOW + 20).await.unwrap();

    let lanes = store.recent_lanes(10).await.unwrap();
    let summary: Vec<(&str, u64, u64, EpochMs)> =
        lanes.iter().map(|l| (l.lane.as_str(), l.inbound, l.outbound, l.last_at)).collect();
    assert_eq!(summary, vec![("whatsapp/default/A", 1, 2, NOW + 20), ("whatsapp/default/B", 1, 0, NOW + 10)]);
    assert_eq!(
        (lanes[0].channel.as_str(), lanes[0].account.as_str(), lanes[0].peer.as_str()),
        ("whatsapp", "default", "A")
    );
    assert_eq!(store.recent_lanes(1).await.unwrap().len(), 1, "limited");

    let ins = store.lane_inbound("whatsapp/default/A", 10).await.unwrap();
    assert_eq!(ins.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a1]);
    assert_eq!(ins[0].message.text, "text of a1");
    let outs = store.lane_outbound("whatsapp/default/A", 10).await.unwrap();
    let keys: Vec<&str> = outs.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys, vec!["ra2", "ra1"], "newest first");
    assert_eq!(store.lane_outbound("whatsapp/default/A", 1).await.unwrap().len(), 1);
    assert!(store.lane_outbound("whatsapp/default/B", 10).await.unwrap().is_empty());
}

pub async fn console_dead_letters_retry_and_discard_are_audited(t: &Target) {
    let store = t.open().await;
    // An outbox row given up.
    let out = store.enqueue_outbound(&[outbound("A", "a1"), outbound("A", "a2")], NOW).await.unwrap();
    store.claim_outbound("s", 10, LEASE, NOW).await.unwrap();
    assert!(store.mark_dead(out[0], "s", "131047", NOW + 1).await.unwrap());
    store.claim_outbound("s", 10, LEASE, NOW + 1).await.unwrap();
    assert!(store.mark_dead(out[1], "s", "131026", NOW + 2).await.unwrap());
    // An inbox row given up.
    let inb = insert(&store, &inbound("B", "b1"), NOW).await;
    store.claim_inbound("w", 1, LEASE, NOW).await.unwrap();
    assert!(store.fail_inbound(inb, "w", "agent refused", None, NOW + 3).await.unwrap());
    assert_eq!(store.dead_letters(10).await.unwrap().len(), 3);

    // Retry: fresh, no attempts, due now; a second retry finds nothing.
    assert!(store.act_on_dead_letter("outbox", out[0], DeadLetterAction::Retry, "console", NOW + 10).await.unwrap());
    let row = store.get_outbound(out[0]).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts, row.next_at), (OutboxState::Queued, 0, NOW + 10));
    assert!(!store.act_on_dead_letter("outbox", out[0], DeadLetterAction::Retry, "console", NOW + 11).await.unwrap());
    let claimed = store.claim_outbound("s", 10, LEASE, NOW + 10).await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![out[0]], "sent again");

    assert!(store.act_on_dead_letter("inbox", inb, DeadLetterAction::Retry, "console", NOW + 12).await.unwrap());
    let row = store.get_inbound(inb).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (InboxState::Pending, 0));
    assert_eq!(store.claim_inbound("w", 1, LEASE, NOW + 12).await.unwrap().len(), 1);
    assert!(store.fail_inbound(inb, "w", "again", None, NOW + 13).await.unwrap());

    // Discard: the outbox row goes, the inbox row is finished (still a duplicate on redelivery).
    assert!(store.act_on_dead_letter("outbox", out[1], DeadLetterAction::Discard, "console", NOW + 20).await.unwrap());
    assert!(store.get_outbound(out[1]).await.unwrap().is_none());
    assert!(store.act_on_dead_letter("inbox", inb, DeadLetterAction::Discard, "console", NOW + 21).await.unwrap());
    let row = store.get_inbound(inb).await.unwrap().unwrap();
    assert_eq!((row.state, row.outcome.as_deref()), (InboxState::Done, Some("discarded")));
    assert!(matches!(store.insert_inbound(&inbound("B", "b1"), NOW + 22).await.unwrap(), InsertOutcome::Duplicate(_)));
    assert!(store.dead_letters(10).await.unwrap().is_empty());

    // Queues the console does not act on, and unknown rows: nothing written.
    assert!(!store.act_on_dead_letter("delivery", out[0], DeadLetterAction::Retry, "console", NOW + 30).await.unwrap());
    assert!(
        !store.act_on_dead_letter("outbox", 999_999, DeadLetterAction::Discard, "console", NOW + 30).await.unwrap()
    );

    store.record_audit("console", "pairing.approve", "whatsapp/ABCD", "", NOW + 40).await.unwrap();
    let log = store.audit_log(10).await.unwrap();
    let entries: Vec<(&str, String, EpochMs)> =
        log.iter().map(|a| (a.action.as_str(), a.target.clone(), a.at)).collect();
    assert_eq!(
        entries,
        vec![
            ("pairing.approve", "whatsapp/ABCD".to_owned(), NOW + 40),
            ("dead_letter.discard", format!("inbox/{inb}"), NOW + 21),
            ("dead_letter.discard", format!("outbox/{}", out[1]), NOW + 20),
            ("dead_letter.retry", format!("inbox/{inb}"), NOW + 12),
            ("dead_letter.retry", format!("outbox/{}", out[0]), NOW + 10),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(store.audit_log(2).await.unwrap().len(), 2);
}

pub async fn pairing_reject_removes_the_request_without_approving(t: &Target) {
    let store = t.open().await;
    let req = PairingRequest {
        channel: ChannelId::new("whatsapp"),
        account: AccountId::new("default"),
        peer: PeerId::new("A"),
        display_name: Some("민수".to_owned()),
        ttl_ms: 60_000,
        max_pending: 3,
    };
    let PairingOutcome::Issued { code, .. } = store.request_pairing(&req, "ABCD2345", NOW).await.unwrap() else {
        panic!("issued")
    };
    let channel = ChannelId::new("whatsapp");
    assert!(!store.reject_pairing(&ChannelId::new("kakao"), &code, NOW + 1).await.unwrap(), "other channel");
    assert!(store.reject_pairing(&channel, &code.to_lowercase(), NOW + 1).await.unwrap());
    assert!(store.list_pairings(None, NOW + 2).await.unwrap().is_empty());
    assert!(!store.is_approved(&channel, &req.account, &req.peer).await.unwrap());
    assert!(!store.reject_pairing(&channel, &code, NOW + 2).await.unwrap(), "gone");
    // It may ask again.
    assert!(matches!(store.request_pairing(&req, "WXYZ6789", NOW + 3).await.unwrap(), PairingOutcome::Issued { .. }));
    // An expired code cannot be rejected.
    assert!(!store.reject_pairing(&channel, "WXYZ6789", NOW + 3 + 60_000).await.unwrap());
}
