//! Conformance of the business-message queue (`BizmsgQueue`), on every backend.

use crate::target::Target;
use clawbridge_core::EpochMs;
use clawbridge_store::{BizmsgResult, BizmsgState, Enqueued, NewBizmsg};
use std::collections::HashSet;
use std::sync::Arc;

const NOW: EpochMs = 1_700_000_000_000;
const LEASE: EpochMs = 30_000;

fn message(key: &str, recipient: &str) -> NewBizmsg {
    NewBizmsg {
        idempotency_key: key.to_owned(),
        account: "default".to_owned(),
        product: "alimtalk".to_owned(),
        dealer: "nhn".to_owned(),
        recipient: recipient.to_owned(),
        template_code: Some("ORDER_SHIPPED".to_owned()),
        payload: format!(r#"{{"variables":{{"name":"{key}"}}}}"#),
        origin: "cli".to_owned(),
        not_before: NOW,
    }
}

fn result(dealer_id: &str, result: &str, rank: i64, at: EpochMs) -> BizmsgResult {
    BizmsgResult {
        dealer: "nhn".to_owned(),
        dealer_id: dealer_id.to_owned(),
        result: result.to_owned(),
        code: Some(if result == "delivered" { "1000" } else { "3019" }.to_owned()),
        reason: None,
        fallback: None,
        rank,
        at,
    }
}

pub async fn bizmsg_enqueue_is_idempotent_and_keeps_every_field(t: &Target) {
    let store = t.open().await;
    let first = store.enqueue_bizmsg(&[message("k1", "01011112222"), message("k2", "01033334444")], NOW).await.unwrap();
    assert!(first.iter().all(|e| e.new));
    assert!(first[0].id < first[1].id);
    let again =
        store.enqueue_bizmsg(&[message("k2", "01033334444"), message("k3", "01055556666")], NOW + 1).await.unwrap();
    assert_eq!(again[0], Enqueued { id: first[1].id, new: false });
    assert!(again[1].new);

    let row = store.get_bizmsg(first[0].id).await.unwrap().unwrap();
    let m = message("k1", "01011112222");
    assert_eq!(
        (row.idempotency_key.as_str(), row.account.as_str(), row.product.as_str(), row.dealer.as_str()),
        ("k1", "default", "alimtalk", "nhn")
    );
    assert_eq!((row.recipient.as_str(), row.template_code.as_deref()), ("01011112222", Some("ORDER_SHIPPED")));
    assert_eq!((row.payload.as_str(), row.origin.as_str()), (m.payload.as_str(), "cli"));
    assert_eq!((row.state, row.attempts, row.next_at, row.created_at), (BizmsgState::Queued, 0, NOW, NOW));
    assert_eq!((row.dealer_id, row.request_key, row.result, row.last_error), (None, None, None, None));
    assert_eq!(store.get_bizmsg(first[1].id + 1_000).await.unwrap(), None);
}

pub async fn bizmsg_claims_one_row_per_recipient_in_order_and_wait_for_not_before(t: &Target) {
    let store = t.open().await;
    let mut later = message("c1", "01077778888");
    later.not_before = NOW + 60_000;
    let ids: Vec<i64> = store
        .enqueue_bizmsg(
            &[message("a1", "01011112222"), message("a2", "01011112222"), message("b1", "01033334444"), later],
            NOW,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let claimed = store.claim_bizmsg("w1", 10, LEASE, NOW).await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0], ids[2]], "one per recipient, oldest first");
    assert!(claimed.iter().all(|r| r.state == BizmsgState::Sending && r.attempts == 1));

    // The request key is recorded before the request, only on rows the worker holds.
    assert_eq!(store.set_bizmsg_request(&[ids[0], ids[2], ids[1]], "w1", Some("req-1"), NOW).await.unwrap(), 2);
    assert_eq!(store.set_bizmsg_request(&[ids[0]], "w2", Some("req-x"), NOW).await.unwrap(), 0);
    let of_request = store.bizmsg_of_request("req-1").await.unwrap();
    assert_eq!(of_request.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0], ids[2]]);

    assert!(store.mark_bizmsg_accepted(ids[0], "w1", "20261224-abc/1", NOW + 1).await.unwrap());
    assert!(store.mark_bizmsg_dead(ids[2], "w1", "-2000 invalid recipientNo", NOW + 1).await.unwrap());
    assert!(!store.mark_bizmsg_accepted(ids[2], "w1", "late", NOW + 2).await.unwrap(), "a finished row stays finished");
    let next = store.claim_bizmsg("w1", 10, LEASE, NOW + 1).await.unwrap();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]], "the second message to 1111-2222 follows");
    assert!(store.mark_bizmsg_accepted(ids[1], "w1", "20261224-abc/2", NOW + 2).await.unwrap());
    assert!(store.claim_bizmsg("w1", 10, LEASE, NOW + 59_999).await.unwrap().is_empty());
    assert_eq!(store.claim_bizmsg("w1", 10, LEASE, NOW + 60_000).await.unwrap()[0].id, ids[3]);

    let accepted = store.get_bizmsg(ids[0]).await.unwrap().unwrap();
    assert_eq!((accepted.state, accepted.dealer_id.as_deref()), (BizmsgState::Accepted, Some("20261224-abc/1")));
    assert_eq!(accepted.request_key.as_deref(), Some("req-1"));
    let dead = store.dead_letters(10).await.unwrap();
    assert!(dead.iter().any(|d| d.queue == "bizmsg" && d.id == ids[2] && d.reason == "-2000 invalid recipientNo"));
}

pub async fn bizmsg_retry_release_and_expired_leases(t: &Target) {
    let store = t.open().await;
    let id = store.enqueue_bizmsg(&[message("a1", "01011112222")], NOW).await.unwrap()[0].id;
    store.claim_bizmsg("w1", 1, 1_000, NOW).await.unwrap();
    assert!(store.mark_bizmsg_retry(id, "w1", "HTTP 503", NOW + 5_000, NOW + 1).await.unwrap());
    assert!(store.claim_bizmsg("w1", 1, 1_000, NOW + 4_999).await.unwrap().is_empty());
    let again = store.claim_bizmsg("w2", 1, 1_000, NOW + 5_000).await.unwrap();
    assert_eq!((again[0].attempts, again[0].last_error.as_deref()), (2, Some("HTTP 503")));
    assert_eq!(store.set_bizmsg_request(&[id], "w2", Some("req-2"), NOW + 5_000).await.unwrap(), 1);
    assert_eq!(store.set_bizmsg_request(&[id], "w2", None, NOW + 5_000).await.unwrap(), 1);
    assert_eq!(
        store.get_bizmsg(id).await.unwrap().unwrap().request_key,
        None,
        "a request that did not arrive is forgotten"
    );
    store.release_bizmsg(id, "w2").await.unwrap();
    assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().state, BizmsgState::Retry);
    // A lease that ran out lets another worker take the row; the first one can no longer mark it.
    store.claim_bizmsg("w3", 1, 1_000, NOW + 5_000).await.unwrap();
    let taken = store.claim_bizmsg("w4", 1, 1_000, NOW + 6_001).await.unwrap();
    assert_eq!(taken[0].id, id);
    assert!(!store.mark_bizmsg_accepted(id, "w3", "x", NOW + 6_002).await.unwrap());
    assert!(store.mark_bizmsg_accepted(id, "w4", "y", NOW + 6_002).await.unwrap());
}

pub async fn bizmsg_results_only_move_forward(t: &Target) {
    let store = t.open().await;
    let id = store.enqueue_bizmsg(&[message("a1", "01011112222")], NOW).await.unwrap()[0].id;
    store.claim_bizmsg("w", 1, LEASE, NOW).await.unwrap();
    store.mark_bizmsg_accepted(id, "w", "D-1", NOW).await.unwrap();

    assert!(!store.record_bizmsg_result(&result("D-unknown", "delivered", 2, NOW + 1)).await.unwrap());
    let mut other_dealer = result("D-1", "delivered", 2, NOW + 1);
    other_dealer.dealer = "infobip".to_owned();
    assert!(!store.record_bizmsg_result(&other_dealer).await.unwrap(), "dealer ids are per dealer");

    let mut failed = result("D-1", "failed", 2, NOW + 10);
    failed.fallback = Some("armed".to_owned());
    assert!(store.record_bizmsg_result(&failed).await.unwrap());
    // An older, lower-ranked report arriving late changes nothing.
    assert!(!store.record_bizmsg_result(&result("D-1", "pending", 1, NOW + 11)).await.unwrap());
    // A later report of the same rank (the fallback went out) is stored; a missing fallback keeps the old.
    let mut fallback_sent = result("D-1", "failed", 3, NOW + 12);
    fallback_sent.fallback = Some("sent".to_owned());
    assert!(store.record_bizmsg_result(&fallback_sent).await.unwrap());
    // The same report again (a webhook retried, a poll after the webhook) is not a change.
    assert!(!store.record_bizmsg_result(&result("D-1", "failed", 3, NOW + 13)).await.unwrap(), "deduplicated");
    assert!(!store.record_bizmsg_result(&fallback_sent).await.unwrap(), "deduplicated");
    let row = store.get_bizmsg(id).await.unwrap().unwrap();
    assert_eq!(
        (row.result.as_deref(), row.result_code.as_deref(), row.fallback.as_deref(), row.result_at),
        (Some("failed"), Some("3019"), Some("sent"), Some(NOW + 12))
    );
    let stats = store.bizmsg_stats().await.unwrap();
    assert_eq!(stats.states, [("accepted".to_owned(), 1)]);
    assert_eq!(stats.results, [("failed".to_owned(), 1)]);
}

pub async fn bizmsg_unfinished_rows_are_those_whose_result_can_still_change(t: &Target) {
    let store = t.open().await;
    let rows: Vec<NewBizmsg> = (0..6).map(|i| message(&format!("u{i}"), &format!("0101111000{i}"))).collect();
    let ids: Vec<i64> = store.enqueue_bizmsg(&rows, NOW).await.unwrap().iter().map(|e| e.id).collect();
    store.claim_bizmsg("w", 10, LEASE, NOW).await.unwrap();
    for (i, id) in ids.iter().enumerate().take(5) {
        let at = NOW + i64::try_from(i).unwrap();
        assert!(store.mark_bizmsg_accepted(*id, "w", &format!("U-{i}"), at).await.unwrap());
    }
    // U-0: no result yet. U-1: pending. U-2: delivered. U-3: failed, fallback armed. U-4: failed,
    // no fallback. The sixth row is still being sent.
    store.record_bizmsg_result(&result("U-1", "pending", 1, NOW + 10)).await.unwrap();
    store.record_bizmsg_result(&result("U-2", "delivered", 2, NOW + 10)).await.unwrap();
    let mut armed = result("U-3", "failed", 2, NOW + 11);
    armed.fallback = Some("armed".to_owned());
    store.record_bizmsg_result(&armed).await.unwrap();
    let mut none = result("U-4", "failed", 2, NOW + 12);
    none.fallback = Some("none".to_owned());
    store.record_bizmsg_result(&none).await.unwrap();

    let unfinished = store.unfinished_bizmsg("nhn", NOW, NOW + 100, 10).await.unwrap();
    let found: Vec<Option<&str>> = unfinished.iter().map(|r| r.dealer_id.as_deref()).collect();
    assert_eq!(found, [Some("U-3"), Some("U-1"), Some("U-0")], "newest change first");
    assert_eq!(store.unfinished_bizmsg("nhn", NOW, NOW + 100, 2).await.unwrap().len(), 2);
    assert!(store.unfinished_bizmsg("solapi", NOW, NOW + 100, 10).await.unwrap().is_empty(), "per dealer");
    let old = store.unfinished_bizmsg("nhn", NOW, NOW + 5, 10).await.unwrap();
    assert_eq!(old.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0]], "within the window of last change");
    // The fallback's outcome makes U-3 final.
    let mut sent = result("U-3", "failed", 3, NOW + 20);
    sent.fallback = Some("sent".to_owned());
    store.record_bizmsg_result(&sent).await.unwrap();
    assert_eq!(store.unfinished_bizmsg("nhn", NOW, NOW + 100, 10).await.unwrap().len(), 2);
}

pub async fn concurrent_bizmsg_claims_deliver_each_row_once(t: &Target) {
    let store = t.open().await;
    let messages: Vec<NewBizmsg> = (0..60).map(|i| message(&format!("k{i}"), &format!("010{:08}", i % 20))).collect();
    store.enqueue_bizmsg(&messages, NOW).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, seen) = (store.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            loop {
                let rows = store.claim_bizmsg(&worker, 5, LEASE, NOW).await.unwrap();
                if rows.is_empty() {
                    // Rows behind a lane another worker holds become claimable once it finishes.
                    if seen.lock().unwrap().len() >= 60 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let recipients: HashSet<&str> = rows.iter().map(|r| r.recipient.as_str()).collect();
                assert_eq!(recipients.len(), rows.len(), "one request never holds a recipient twice");
                for row in &rows {
                    seen.lock().unwrap().push(row.id);
                    assert!(store.mark_bizmsg_accepted(row.id, &worker, &format!("d{}", row.id), NOW).await.unwrap());
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (60, 60), "every row claimed exactly once");
}
