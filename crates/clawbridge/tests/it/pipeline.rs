//! The pipeline against a fake gateway: policy, ordering, chunking, retries, resume, drain.

use crate::support::{Harness, config, eventually, open_policy, text};
use clawbridge_channel::Accepted;
use clawbridge_core::policy::{AccessPolicy, AllowFrom, DmPolicy};
use clawbridge_core::{IdempotencyKey, SendError};
use clawbridge_testkit::fake_gateway::{FakeGateway, FakeReply};
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

async fn harness(
    policy: AccessPolicy,
    max_chars: usize,
    extra: &[(&str, &str)],
) -> (FakeGateway, Harness, tempfile::TempDir) {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake.url(), TOKEN, extra);
    let harness = Harness::start(cfg, policy, max_chars).await;
    (fake, harness, dir)
}

#[tokio::test]
async fn a_message_gets_the_agent_reply_as_a_quoted_answer() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    let accepted = h.bridge().accept(text("15551234567", "m-1", "hello there")).await.unwrap();
    assert_eq!(accepted, Accepted::New);

    let sent = h.wait_sent(1, DEADLINE).await;
    assert_eq!(sent[0].text.as_deref(), Some("FAKE-REPLY: hello there"));
    assert_eq!(sent[0].peer.as_str(), "15551234567");
    assert_eq!(sent[0].reply_to.as_ref().map(|m| m.as_str()), Some("m-1"));

    let calls = fake.agent_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call["sessionKey"], "agent:main:test:direct:15551234567");
    let expected_key = IdempotencyKey::for_inbound(&"test".into(), &"default".into(), &"m-1".into());
    assert_eq!(call["idempotencyKey"], expected_key.as_str());
    // `send` gets the outbox row's key: the same on every attempt, for platform idempotency.
    assert_eq!(h.recorder.sent_with_times()[0].key, IdempotencyKey::for_reply_part(&expected_key, 0));
    assert_eq!(call["inputProvenance"]["kind"], "external_user");
    assert_eq!(call["inputProvenance"]["sourceChannel"], "test");
    assert!(call["extraSystemPrompt"].as_str().unwrap().contains("15551234567"));
    assert_eq!(h.recorder.started(), ["m-1"]);
    let metrics = reqwest::get(format!("{}/metrics", h.base_url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clawbridge_agent_latency_seconds_bucket"), "{metrics}");
    assert!(metrics.contains(r#"clawbridge_queue_wait_seconds_bucket{queue="inbox""#), "{metrics}");
    assert!(metrics.contains(r#"clawbridge_queue_wait_seconds_bucket{queue="outbox""#), "{metrics}");
    assert!(metrics.contains("clawbridge_outbox_depth{state=\"queued\"}"), "{metrics}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_redelivered_message_reaches_the_agent_once() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    let bridge = h.bridge();
    assert_eq!(bridge.accept(text("111", "dup-1", "once")).await.unwrap(), Accepted::New);
    assert_eq!(bridge.accept(text("111", "dup-1", "once")).await.unwrap(), Accepted::Duplicate);
    h.wait_sent(1, DEADLINE).await;
    assert_eq!(bridge.accept(text("111", "dup-1", "once")).await.unwrap(), Accepted::Duplicate);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.agent_calls().len(), 1);
    assert_eq!(h.sent().len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn long_replies_are_split_and_sent_in_order() {
    let (fake, mut h, _dir) = harness(open_policy(), 40, &[]).await;
    fake.set_behavior(|_| {
        (
            FakeReply::Text("First sentence is here. Second sentence follows.\n\nA new paragraph ends it.".into()),
            Duration::ZERO,
        )
    });
    h.bridge().accept(text("222", "long-1", "tell me")).await.unwrap();
    let sent = h.wait_sent(3, DEADLINE).await;
    let parts: Vec<_> = sent.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(parts, ["First sentence is here.", "Second sentence follows.", "A new paragraph ends it."]);
    assert!(sent[0].reply_to.is_some() && sent[1].reply_to.is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn one_conversation_stays_in_order_while_others_proceed() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    fake.set_behavior(|message| {
        let delay = if message.contains("slow") { Duration::from_millis(800) } else { Duration::ZERO };
        (FakeReply::Text(format!("re: {message}")), delay)
    });
    let bridge = h.bridge();
    bridge.accept(text("alice", "a-1", "slow first")).await.unwrap();
    bridge.accept(text("alice", "a-2", "second")).await.unwrap();
    bridge.accept(text("bob", "b-1", "bob here")).await.unwrap();
    let sent = h.wait_sent(3, DEADLINE).await;
    let order: Vec<_> = sent.iter().map(|m| m.text.clone().unwrap()).collect();
    let pos = |t: &str| order.iter().position(|x| x == t).unwrap();
    assert!(pos("re: slow first") < pos("re: second"), "alice's order kept: {order:?}");
    assert!(pos("re: bob here") < pos("re: slow first"), "bob not blocked by alice: {order:?}");
    // alice's second message reached the agent only after her first was answered.
    let calls: Vec<_> = fake.agent_calls().iter().map(|c| c["message"].as_str().unwrap().to_owned()).collect();
    assert!(calls.iter().position(|m| m == "second").unwrap() > calls.iter().position(|m| m == "slow first").unwrap());
    h.shutdown().await;
}

#[tokio::test]
async fn pairing_sends_one_code_and_approval_opens_the_conversation() {
    let policy = AccessPolicy::new(DmPolicy::Pairing, AllowFrom::default()).unwrap();
    let (fake, mut h, _dir) = harness(policy, 4096, &[]).await;
    let bridge = h.bridge();
    bridge.accept(text("333", "p-1", "hi")).await.unwrap();
    let sent = h.wait_sent(1, DEADLINE).await;
    let notice = sent[0].text.clone().unwrap();
    let store = h.store().await;
    let pending = store.list_pairings(None, clawbridge::util::now_ms()).await.unwrap();
    assert_eq!(pending.len(), 1);
    let code = pending[0].code.clone();
    assert!(notice.contains(&code), "{notice}");

    bridge.accept(text("333", "p-2", "hello again")).await.unwrap();
    eventually(DEADLINE, "second message handled", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().inbox_done == 2 }
    })
    .await;
    assert_eq!(h.sent().len(), 1, "the code is sent once, not on every message");
    assert!(fake.agent_calls().is_empty(), "unapproved senders never reach the agent");
    let recorder = h.recorder.clone();
    eventually(DEADLINE, "the channel heard of both", || {
        let recorder = recorder.clone();
        async move { recorder.finished().len() == 2 }
    })
    .await;
    assert_eq!(
        h.recorder.finished(),
        [("p-1".to_owned(), "pairing".to_owned(), 1), ("p-2".to_owned(), "pairing".to_owned(), 0)],
        "the channel learns that no answer comes"
    );

    store.approve_pairing(&"test".into(), &code.to_lowercase(), clawbridge::util::now_ms()).await.unwrap().unwrap();
    bridge.accept(text("333", "p-3", "approved now")).await.unwrap();
    let sent = h.wait_sent(2, DEADLINE).await;
    assert_eq!(sent[1].text.as_deref(), Some("FAKE-REPLY: approved now"));
    h.shutdown().await;
}

#[tokio::test]
async fn allowlist_refuses_strangers_silently_by_default() {
    let policy = AccessPolicy::new(DmPolicy::Allowlist, AllowFrom::parse_list("+1 555 000 1111")).unwrap();
    let (fake, mut h, _dir) = harness(policy, 4096, &[]).await;
    let bridge = h.bridge();
    bridge.accept(text("19999999999", "s-1", "let me in")).await.unwrap();
    bridge.accept(text("15550001111", "s-2", "friend")).await.unwrap();
    let sent = h.wait_sent(1, DEADLINE).await;
    assert_eq!(sent[0].peer.as_str(), "15550001111");
    let calls = fake.agent_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["message"], "friend");
    h.shutdown().await;
}

#[tokio::test]
async fn transient_send_failures_are_retried_and_permanent_ones_become_dead_letters() {
    let (_fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    h.recorder.fail_next([
        SendError::RateLimited { retry_after: Some(Duration::from_millis(100)) },
        SendError::transient("502 bad gateway"),
    ]);
    h.bridge().accept(text("444", "r-1", "retry me")).await.unwrap();
    let sent = h.wait_sent(1, DEADLINE).await;
    assert_eq!(sent[0].text.as_deref(), Some("FAKE-REPLY: retry me"));

    h.recorder.fail_next([SendError::Permanent("131047 outside the 24 h window".into())]);
    h.bridge().accept(text("555", "d-1", "doomed")).await.unwrap();
    let store = h.store().await;
    eventually(DEADLINE, "dead letter recorded", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().outbox_dead == 1 }
    })
    .await;
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].queue, "outbox");
    assert!(dead[0].reason.contains("131047"), "{dead:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_failed_agent_run_apologises_and_leaves_a_dead_letter() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    fake.set_behavior(|_| (FakeReply::RunError("model exploded".into()), Duration::ZERO));
    h.bridge().accept(text("666", "e-1", "break")).await.unwrap();
    let sent = h.wait_sent(1, DEADLINE).await;
    assert!(sent[0].text.as_deref().unwrap().starts_with("Sorry"));
    let store = h.store().await;
    eventually(DEADLINE, "inbox dead letter", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().inbox_failed == 1 }
    })
    .await;
    let dead = store.dead_letters(10).await.unwrap();
    assert!(dead.iter().any(|d| d.queue == "inbox" && d.reason.contains("model exploded")), "{dead:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn silent_runs_send_nothing() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    fake.set_behavior(|_| (FakeReply::Silent, Duration::ZERO));
    h.bridge().accept(text("777", "q-1", "NO_REPLY please")).await.unwrap();
    let store = h.store().await;
    eventually(DEADLINE, "inbound row done", || {
        let store = store.clone();
        async move { store.queue_stats().await.unwrap().inbox_done == 1 }
    })
    .await;
    assert!(h.sent().is_empty());
    assert_eq!(fake.runs_started(), 1);
    let recorder = h.recorder.clone();
    eventually(DEADLINE, "the channel heard the run was silent", || {
        let recorder = recorder.clone();
        async move { !recorder.finished().is_empty() }
    })
    .await;
    assert_eq!(h.recorder.finished(), [("q-1".to_owned(), "silent".to_owned(), 0)]);
    h.shutdown().await;
}

#[tokio::test]
async fn unfinished_work_from_a_previous_process_is_resumed_at_start() {
    let fake = FakeGateway::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake.url(), TOKEN, &[]);
    // A previous process accepted these and died before answering.
    std::fs::create_dir_all(dir.path()).unwrap();
    {
        let store = clawbridge_store::open(&cfg.bridge.database_url).await.unwrap();
        let now = clawbridge::util::now_ms();
        store.insert_inbound(&text("888", "old-1", "left behind"), now).await.unwrap();
        store.insert_inbound(&text("888", "old-2", "me too"), now).await.unwrap();
    }
    let mut h = Harness::start(cfg, open_policy(), 4096).await;
    let sent = h.wait_sent(2, DEADLINE).await;
    assert_eq!(sent[0].text.as_deref(), Some("FAKE-REPLY: left behind"));
    assert_eq!(sent[1].text.as_deref(), Some("FAKE-REPLY: me too"));
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_a_run_in_flight() {
    let (fake, mut h, _dir) = harness(open_policy(), 4096, &[]).await;
    fake.set_behavior(|m| (FakeReply::Text(format!("late: {m}")), Duration::from_millis(700)));
    h.bridge().accept(text("999", "s-1", "almost done")).await.unwrap();
    eventually(DEADLINE, "run started", || {
        let n = fake.agent_calls().len();
        async move { n == 1 }
    })
    .await;
    h.shutdown().await;
    let store = h.store().await;
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.inbox_done, 1, "the in-flight run finished before shutdown returned: {stats:?}");
}

#[tokio::test]
async fn an_unreachable_gateway_does_not_stop_accepting_and_readyz_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = config(dir.path(), &format!("ws://{closed}"), TOKEN, &[]);
    let mut h = Harness::start(cfg, open_policy(), 4096).await;
    assert_eq!(h.bridge().accept(text("123", "u-1", "anyone?")).await.unwrap(), Accepted::New);
    let client = reqwest::Client::new();
    let ready = client.get(format!("{}/readyz", h.base_url())).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["store"]["state"], "ok");
    let health = client.get(format!("{}/health", h.base_url())).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let metrics = client.get(format!("{}/metrics", h.base_url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clawbridge_inbox_depth{state=\"pending\"} 1"), "{metrics}");
    h.shutdown().await;
}
