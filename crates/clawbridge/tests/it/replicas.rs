//! Scale-out: two bridge replicas sharing one PostgreSQL database (DESIGN.md §4).

use crate::support::{Harness, config, eventually, open_policy, text};
use clawbridge_channel::Accepted;
use clawbridge_testkit::fake_gateway::{FakeGateway, FakeReply};
use sqlx::Connection as _;
use std::collections::HashMap;
use std::time::Duration;

const TOKEN: &str = "replica-token-0123456789";

fn pg_url() -> String {
    std::env::var("CLAWBRIDGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema for this test, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    async fn create() -> Option<Self> {
        if std::env::var("CLAWBRIDGE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: CLAWBRIDGE_SKIP_POSTGRES=1");
            return None;
        }
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("cb_replicas_{:08x}", u32::from_le_bytes(bytes));
        let mut conn = sqlx::PgConnection::connect(&pg_url())
            .await
            .expect("PostgreSQL reachable at CLAWBRIDGE_TEST_DATABASE_URL (CLAWBRIDGE_SKIP_POSTGRES=1 skips)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.unwrap();
        Some(Self { name })
    }

    /// The database URL whose connections use this schema.
    fn url(&self) -> String {
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", pg_url(), self.name)
    }

    async fn drop_it(self) {
        let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_answer_every_message_once_and_in_order() {
    let Some(schema) = Schema::create().await else { return };
    let fake = FakeGateway::start(TOKEN).await;
    // Vary the agent's time so the replicas' work interleaves.
    fake.set_behavior(|message| {
        let n: u64 = message.bytes().map(u64::from).sum();
        (FakeReply::Text(format!("re: {message}")), Duration::from_millis(n % 40))
    });
    let db = [("CLAWBRIDGE_DATABASE_URL", schema.url())];
    let db: Vec<(&str, &str)> = db.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Harness::start(config(dir_a.path(), &fake.url(), TOKEN, &db), open_policy(), 4096).await;
    let mut b = Harness::start(config(dir_b.path(), &fake.url(), TOKEN, &db), open_policy(), 4096).await;

    // 6 peers × 5 messages; each delivered to one replica and redelivered to the other (as a
    // platform retrying through a load balancer would).
    let (peers, per_peer) = (6, 5);
    for n in 0..per_peer {
        for p in 0..peers {
            let msg = text(&format!("peer{p}"), &format!("p{p}-m{n}"), &format!("peer{p} message {n}"));
            let (first, second) = if (p + n) % 2 == 0 { (&a, &b) } else { (&b, &a) };
            assert_eq!(first.bridge().accept(msg.clone()).await.unwrap(), Accepted::New);
            assert_eq!(second.bridge().accept(msg).await.unwrap(), Accepted::Duplicate);
        }
    }
    let total = peers * per_peer;
    eventually(Duration::from_secs(60), "every message answered", || {
        let n = a.sent().len() + b.sent().len();
        async move { n >= total }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(fake.runs_started(), total, "one agent run per message");
    assert_eq!(fake.agent_calls().len(), total, "no run was started twice");
    let mut sends: Vec<_> = a.recorder.sent_with_times().into_iter().chain(b.recorder.sent_with_times()).collect();
    assert_eq!(sends.len(), total, "one reply per message");
    assert!(!a.sent().is_empty() && !b.sent().is_empty(), "both replicas did work");

    // Per peer, the agent saw the messages in order and the replies went out in order.
    let mut agent_order: HashMap<String, Vec<String>> = HashMap::new();
    for call in fake.agent_calls() {
        let message = call["message"].as_str().unwrap().to_owned();
        let peer = message.split(' ').next().unwrap().to_owned();
        agent_order.entry(peer).or_default().push(message);
    }
    sends.sort_by_key(|s| s.at);
    let mut reply_order: HashMap<String, Vec<String>> = HashMap::new();
    for s in sends {
        reply_order.entry(s.message.peer.to_string()).or_default().push(s.message.text.unwrap());
    }
    for p in 0..peers {
        let peer = format!("peer{p}");
        let expected: Vec<String> = (0..per_peer).map(|n| format!("{peer} message {n}")).collect();
        assert_eq!(agent_order[&peer], expected, "agent order for {peer}");
        let replies: Vec<String> = expected.iter().map(|m| format!("re: {m}")).collect();
        assert_eq!(reply_order[&peer], replies, "reply order for {peer}");
    }

    assert_eq!(a.store().await.backend(), "postgres");
    let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}.inbox", schema.name)))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, i64::try_from(total).unwrap(), "every message stored once, in this test's schema");

    a.shutdown().await;
    b.shutdown().await;
    schema.drop_it().await;
}

/// A platform plan's requests per minute hold for the replicas together: two bridges (two
/// processes' worth of state) on one PostgreSQL database count into the same window, and the
/// Kapso limiter waits on that shared count.
#[tokio::test]
async fn the_request_quota_is_shared_by_every_replica_on_the_store() {
    use clawbridge::bridge::{StoreBridge, Wakers};
    use clawbridge_channel::Bridge;
    use std::sync::Arc;
    let Some(schema) = Schema::create().await else { return };
    let store = clawbridge_store::open(&schema.url()).await.unwrap();
    let replica = |name: &str| -> Arc<dyn Bridge> {
        Arc::new(StoreBridge::new(store.clone(), Arc::new(Wakers::default()), name.to_owned()))
    };
    let (a, b) = (replica("replica-a"), replica("replica-b"));
    let window = Duration::from_secs(3600);
    assert_eq!(a.take_quota("kapso:k1", 3, window).await.unwrap(), None);
    assert_eq!(b.take_quota("kapso:k1", 3, window).await.unwrap(), None);
    assert_eq!(a.take_quota("kapso:k1", 3, window).await.unwrap(), None);
    let wait = b.take_quota("kapso:k1", 3, window).await.unwrap().expect("the fourth request of the window waits");
    assert!(wait > Duration::ZERO && wait <= window, "{wait:?}");
    assert_eq!(a.take_quota("kapso:other", 3, window).await.unwrap(), None, "keys are counted apart");

    // The limiter of a key (same limit and window) asks the shared count: with the window full
    // it does not let a request go, although its own in-process budget has room.
    let limiter = clawbridge_http::Limiter::with_window(3, window);
    limiter.share_through("kapso:k1", Arc::new(clawbridge_whatsapp::limiter::BridgeQuota(a)));
    assert!(tokio::time::timeout(Duration::from_millis(300), limiter.acquire()).await.is_err());
    schema.drop_it().await;
}
