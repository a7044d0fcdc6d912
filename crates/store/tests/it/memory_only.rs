//! What only the in-memory backend has: it is opened by URL without a file or a server, each
//! open is a store of its own, and its handles share one store.

use clawbridge_core::InboundMessage;
use clawbridge_store::{InboxQueue, InsertOutcome, MemoryStore, SharedStore, Store};
use std::sync::Arc;

#[tokio::test]
async fn memory_url_opens_a_new_empty_store_each_time() {
    let first = clawbridge_store::open("memory://").await.unwrap();
    let second = clawbridge_store::open(MemoryStore::URL).await.unwrap();
    assert_eq!((first.backend(), second.backend()), ("memory", "memory"));
    let msg = InboundMessage::text("whatsapp", "default", "A", "m1", "hi");
    assert!(matches!(first.insert_inbound(&msg, 1).await.unwrap(), InsertOutcome::Inserted(_)));
    assert!(matches!(second.insert_inbound(&msg, 1).await.unwrap(), InsertOutcome::Inserted(_)), "unrelated stores");
    assert_eq!(first.queue_stats().await.unwrap().inbox_pending, 1);
}

#[tokio::test]
async fn clones_and_upcast_capabilities_share_the_data() {
    let store = MemoryStore::new();
    let shared: SharedStore = Arc::new(store.clone());
    // A part of the app that only needs the inbox can be handed just that.
    let inbox: Arc<dyn InboxQueue> = shared.clone();
    let msg = InboundMessage::text("kakao", "default", "B", "m1", "hi");
    let id = inbox.insert_inbound(&msg, 1).await.unwrap().id();
    assert_eq!(store.insert_inbound(&msg, 2).await.unwrap(), InsertOutcome::Duplicate(id));
    assert_eq!(shared.get_inbound(id).await.unwrap().unwrap().message, msg);
    assert_eq!(Store::backend(&store), "memory");
}
