//! Typed channel state (`StateSpace`) over the store-backed bridge, on the in-memory store.

use clawbridge_channel::Bridge;
use clawbridge_channel::state::StateSpace;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    pages: Vec<String>,
}

const PENDING: StateSpace<Pending> = StateSpace::new("test.pending");
const RECENT: StateSpace<String> = StateSpace::new("test.recent");

fn bridge() -> Arc<dyn Bridge> {
    clawbridge_testkit::memory_bridge().bridge
}

#[tokio::test]
async fn typed_values_round_trip_claim_once_and_are_taken_once() {
    let bridge = bridge();
    let space = PENDING.scoped("default");
    assert_eq!(space.name(), "test.pending/default");
    let value = Pending { pages: vec!["one".to_owned(), "two".to_owned()] };
    assert!(space.claim(&*bridge, "u1", &value, None).await.unwrap());
    assert!(!space.claim(&*bridge, "u1", &value, None).await.unwrap(), "a live value is not claimed twice");
    assert_eq!(space.get(&*bridge, "u1").await.unwrap(), Some(value.clone()));
    let listed = space.list(&*bridge, 10).await.unwrap();
    assert_eq!((listed.len(), listed[0].key.as_str(), &listed[0].value), (1, "u1", &value));
    assert_eq!(space.take(&*bridge, "u1").await.unwrap(), Some(value));
    assert_eq!(space.take(&*bridge, "u1").await.unwrap(), None);
    // The namespace stays the channel's own: another scope sees nothing.
    assert_eq!(PENDING.scoped("other").get(&*bridge, "u1").await.unwrap(), None);
}

#[tokio::test]
async fn plain_text_from_before_the_type_still_reads_and_a_wrong_shape_reads_as_absent() {
    let bridge = bridge();
    bridge.state_put("test.recent", "k", "wamid.plain-text", Some(60_000), false).await.unwrap();
    assert_eq!(RECENT.get(&*bridge, "k").await.unwrap().as_deref(), Some("wamid.plain-text"));
    bridge.state_put("test.pending", "k", "{\"pages\": 3}", None, false).await.unwrap();
    assert_eq!(PENDING.get(&*bridge, "k").await.unwrap(), None);
    RECENT.put(&*bridge, "t", &"x".to_owned(), Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(bridge.state_get("test.recent", "t").await.unwrap().as_deref(), Some("\"x\""));
}
