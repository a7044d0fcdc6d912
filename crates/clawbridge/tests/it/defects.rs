//! Defects of issue 11 proven against the daemon: a row an earlier process claimed and never
//! finished (it crashed) is simulated by claiming it in the store with an already expired lease.

use crate::support::{Harness, config, eventually, open_policy, text};
use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use clawbridge_store::{PairingOutcome, PairingRequest, SharedStore};
use clawbridge_testkit::fake_gateway::FakeGateway;
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

/// `msg` stored a while ago and claimed `claims` times by a worker that crashed each time.
async fn crashed(
    store: &SharedStore,
    msg: &clawbridge_core::InboundMessage,
    claims: u32,
) -> clawbridge_store::InboundRow {
    let long_ago = clawbridge::util::now_ms() - 600_000;
    store.insert_inbound(msg, long_ago).await.unwrap();
    let mut last = None;
    for i in 0..claims {
        // Each claim's lease (1 ms) ran out long ago.
        let rows = store.claim_inbound("crashed-worker", 10, 1, long_ago + 1_000 * i64::from(i + 1)).await.unwrap();
        assert_eq!(rows.len(), 1, "claim {i}");
        last = rows.into_iter().next();
    }
    last.expect("claimed at least once")
}

/// A message that crashed the process at every claim ends as a dead letter (with the error
/// reply) instead of being claimed, and crashing, forever.
#[tokio::test]
async fn a_crash_looping_message_becomes_a_dead_letter() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake.url(), TOKEN, &[]);
    let store = clawbridge_store::open(&cfg.bridge.database_url).await.unwrap();
    // pipeline.max_attempts is 5: five claims never finished.
    crashed(&store, &text("15550001", "poison-1", "this one crashes"), 5).await;
    let mut h = Harness::start(cfg, open_policy(), 4096).await;
    eventually(DEADLINE, "the poison message is a dead letter", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().inbox_failed == 1 }
    })
    .await;
    assert!(fake.agent_calls().is_empty(), "the poison message was run again");
    let dead = store.dead_letters(10).await.unwrap();
    assert!(dead.iter().any(|d| d.reason.contains("without finishing")), "{dead:?}");
    h.shutdown().await;
}

/// The pairing code was committed, then the process stopped before the notice was enqueued:
/// the retry sends the code (it used to find the code "pending" and send nothing).
#[tokio::test]
async fn a_pairing_code_issued_before_a_crash_is_still_sent() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake.url(), TOKEN, &[]);
    let store = clawbridge_store::open(&cfg.bridge.database_url).await.unwrap();
    let msg = text("15550002", "pair-1", "hello?");
    crashed(&store, &msg, 1).await;
    let request = PairingRequest {
        channel: msg.channel.clone(),
        account: msg.account.clone(),
        peer: msg.peer.clone(),
        display_name: None,
        ttl_ms: 3_600_000,
        max_pending: 10,
    };
    let issued = store.request_pairing(&request, "QWER7890", clawbridge::util::now_ms()).await.unwrap();
    assert!(matches!(issued, PairingOutcome::Issued { .. }));
    let policy = AccessPolicy::new(DmPolicy::Pairing, AllowFrom::default()).unwrap();
    let mut h = Harness::start(cfg, policy, 4096).await;
    let sent = h.wait_sent(1, DEADLINE).await;
    assert!(sent[0].text.as_deref().unwrap_or("").contains("QWER7890"), "{sent:?}");
    // A later message of the same sender does not repeat it.
    h.bridge().accept(text("15550002", "pair-2", "again")).await.unwrap();
    eventually(DEADLINE, "second message handled", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().inbox_done == 2 }
    })
    .await;
    assert_eq!(h.sent().len(), 1);
    h.shutdown().await;
}

/// The deny notice's once-an-hour key was remembered, then the process stopped before the
/// notice was enqueued: the retry still sends it.
#[tokio::test]
async fn a_deny_notice_remembered_before_a_crash_is_still_sent() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake.url(), TOKEN, &[("KAPSO_DENY_MESSAGE", "not for you")]);
    let store = clawbridge_store::open(&cfg.bridge.database_url).await.unwrap();
    let row = crashed(&store, &text("15550003", "deny-1", "let me in"), 1).await;
    let now = clawbridge::util::now_ms();
    assert!(store.remember_key("deny-notice", row.lane.as_str(), now + 3_600_000, now).await.unwrap());
    let policy = AccessPolicy::new(DmPolicy::Allowlist, AllowFrom::parse_list("+1 555 000 1111")).unwrap();
    let mut h = Harness::start(cfg, policy, 4096).await;
    let sent = h.wait_sent(1, DEADLINE).await;
    assert_eq!(sent[0].text.as_deref(), Some("not for you"));
    h.shutdown().await;
}
