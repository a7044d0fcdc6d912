//! The poller against the fake history: paging to exhaustion, oldest first, cursor, overlap, errors.

use crate::support::{Answer, FakeKapso, FakeKapsoClient as _, cursor, memory_bridge, set_cursor};
use clawbridge_channel::AccountStatus;
use clawbridge_store::{Cursors as _, Outage};
use clawbridge_whatsapp::poller::{CURSOR_NAME, PollSettings, Poller};
use clawbridge_whatsapp::timefmt::{format_rfc3339, parse_time};
use serde_json::{Value, json};
use std::time::Duration;

const T0: i64 = 1_774_537_500_000; // 2026-03-26T15:05:00Z

fn message(i: i64, created_ms: i64) -> Value {
    json!({"id":format!("wamid.p{i}"),"from":"15551234567","timestamp":(created_ms / 1000).to_string(),"type":"text",
           "text":{"body":format!("message {i}")},
           "kapso":{"direction":"inbound","status":"delivered","contact_name":"Ann","created_at":format_rfc3339(created_ms)}})
}

fn settings() -> PollSettings {
    PollSettings { interval: Duration::from_secs(5), overlap: Duration::from_secs(120) }
}

#[tokio::test]
async fn follows_every_page_and_stores_oldest_first() {
    let fake = FakeKapso::start().await;
    // 250 messages, several in the same second: more than two full pages.
    fake.add_history((0..250).map(|i| message(i, T0 + 1000 + (i / 3) * 1000)));
    let bridge = memory_bridge();
    set_cursor(&bridge, "default", CURSOR_NAME, &format_rfc3339(T0)).await;
    let ctx = bridge.account_context("whatsapp", "default");
    let mut poller = Poller::new(fake.client(), settings());
    let outcome = poller.poll_once(&ctx).await.unwrap();
    assert_eq!(outcome.pages, 3);
    assert_eq!(outcome.new, 250);
    let ids: Vec<String> = bridge.inbox().await.iter().map(|m| m.message_id.to_string()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("wamid.p{i}")).collect();
    assert_eq!(ids, expected, "oldest first, none lost");
    let lists = fake.requests_to("GET", "/messages");
    assert_eq!(lists[0].query["direction"], "inbound");
    assert_eq!(lists[0].query["limit"], "100");
    assert_eq!(parse_time(&lists[0].query["since"]), Some(T0 - 120_000), "since = cursor − overlap");
    assert_eq!(lists[1].query["after"], "cursor-100");
    let cursor = cursor(&bridge, "default", CURSOR_NAME).await.unwrap();
    assert_eq!(parse_time(&cursor), Some(T0 + 1000 + 83 * 1000), "newest created_at");
}

#[tokio::test]
async fn the_overlap_catches_late_messages_and_dedup_keeps_them_single() {
    let fake = FakeKapso::start().await;
    fake.add_history([message(1, T0 + 10_000), message(2, T0 + 10_000)]);
    let bridge = memory_bridge();
    set_cursor(&bridge, "default", CURSOR_NAME, &format_rfc3339(T0)).await;
    let ctx = bridge.account_context("whatsapp", "default");
    let mut poller = Poller::new(fake.client(), settings());
    assert_eq!(poller.poll_once(&ctx).await.unwrap().new, 2);
    // A message of the same second committed after the poll, and one slightly older: both found.
    fake.add_history([message(3, T0 + 10_000), message(4, T0 + 9_000)]);
    let outcome = poller.poll_once(&ctx).await.unwrap();
    assert_eq!((outcome.new, outcome.duplicates), (2, 2));
    // A fresh poller (a restart) sees the same window again: store dedup, nothing new.
    let mut restarted = Poller::new(fake.client(), settings());
    let outcome = restarted.poll_once(&ctx).await.unwrap();
    assert_eq!((outcome.new, outcome.duplicates), (0, 4));
    assert_eq!(bridge.inbox().await.len(), 4);
}

#[tokio::test]
async fn a_failed_page_keeps_the_cursor_and_the_next_poll_recovers() {
    let fake = FakeKapso::start().await;
    fake.add_history((0..150).map(|i| message(i, T0 + 1000 + i * 10)));
    let bridge = memory_bridge();
    set_cursor(&bridge, "default", CURSOR_NAME, &format_rfc3339(T0)).await;
    let ctx = bridge.account_context("whatsapp", "default");
    let mut poller = Poller::new(fake.client(), settings());
    // First page fine, second page 502.
    fake.script_lists([None, Some(Answer::error(502, json!({"error":"bad gateway"})))]);
    assert!(poller.poll_once(&ctx).await.is_err());
    assert_eq!(
        cursor(&bridge, "default", CURSOR_NAME).await.unwrap(),
        format_rfc3339(T0),
        "cursor unchanged after a failure"
    );
    assert!(bridge.inbox().await.is_empty(), "nothing stored from a partial read");
    assert_eq!(poller.poll_once(&ctx).await.unwrap().new, 150);

    // A store failure mid-poll (the cursor is read, the message cannot be written) also leaves
    // the cursor where it was.
    fake.add_history([message(999, T0 + 50_000)]);
    let before = cursor(&bridge, "default", CURSOR_NAME).await.unwrap();
    bridge.store.set_outage(Outage::Writes);
    assert!(poller.poll_once(&ctx).await.is_err());
    bridge.store.set_outage(Outage::None);
    assert_eq!(cursor(&bridge, "default", CURSOR_NAME).await.unwrap(), before);
}

#[tokio::test]
async fn first_start_begins_now_and_run_reports_degraded_on_errors() {
    let fake = FakeKapso::start().await;
    fake.add_history([message(1, T0)]); // old history is not replayed on a first start
    let bridge = memory_bridge();
    let ctx = bridge.account_context("whatsapp", "default");
    let mut poller = Poller::new(fake.client(), settings());
    let outcome = poller.poll_once(&ctx).await.unwrap();
    assert_eq!(outcome.new, 0);
    // The start is Kapso's clock (the Date header of a one-message probe), not the history's start.
    let probe = &fake.requests_to("GET", "/messages")[0];
    assert_eq!(probe.query["limit"], "1");
    let cursor = parse_time(&cursor(&bridge, "default", CURSOR_NAME).await.unwrap()).unwrap();
    assert!(cursor > T0, "cursor {cursor} starts at the server's now");

    fake.script_lists((0..50).map(|_| Some(Answer::error(500, json!({"error":"down"})))));
    let mut status = ctx.status.subscribe();
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(Poller::new(fake.client(), settings()).run(ctx));
    let degraded =
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| matches!(s, AccountStatus::Degraded(_))))
            .await
            .expect("degraded within 10 s")
            .unwrap()
            .clone();
    assert!(matches!(degraded, AccountStatus::Degraded(reason) if reason.contains("Kapso")));
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn without_the_lease_another_replica_polls() {
    let fake = FakeKapso::start().await;
    let bridge = memory_bridge();
    // Another replica holds the account's poll lease.
    let now = clawbridge_core::clock::now_ms();
    assert!(bridge.store.try_lease("whatsapp.poller/default", "other-replica", 60_000, now).await.unwrap());
    let ctx = bridge.account_context("whatsapp", "default");
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(Poller::new(fake.client(), settings()).run(ctx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    task.await.unwrap();
    assert!(fake.requests_to("GET", "/messages").is_empty());
}

/// A polled record that cannot be converted (no sender) becomes a dead letter with its reason,
/// not a warning behind an advancing cursor; the others are stored.
#[tokio::test]
async fn an_unconvertible_polled_record_is_a_dead_letter() {
    let fake = FakeKapso::start().await;
    let mut broken = message(2, T0 + 2_000);
    broken.as_object_mut().unwrap().remove("from");
    fake.add_history([message(1, T0 + 1_000), broken, message(3, T0 + 3_000)]);
    let bridge = memory_bridge();
    set_cursor(&bridge, "default", CURSOR_NAME, &format_rfc3339(T0)).await;
    let ctx = bridge.account_context("whatsapp", "default");
    let mut poller = Poller::new(fake.client(), settings());
    let outcome = poller.poll_once(&ctx).await.unwrap();
    assert_eq!((outcome.new, outcome.dead_letters), (2, 1), "{outcome:?}");
    let dead = bridge.bridge.state_list(clawbridge_whatsapp::ingest::DEAD_LETTERS, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].0.ends_with("wamid.p2") && dead[0].1.contains("\"reason\""), "{dead:?}");
    // The next poll (overlap) does not add a second letter for it.
    let mut restarted = Poller::new(fake.client(), settings());
    restarted.poll_once(&ctx).await.unwrap();
    assert_eq!(bridge.bridge.state_list(clawbridge_whatsapp::ingest::DEAD_LETTERS, 10).await.unwrap().len(), 1);
}
