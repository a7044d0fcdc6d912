//! `POST /kakao/channel-webhook`: added/blocked, admin-key auth, dedup.

use crate::support::{ADMIN_KEY, Harness, echo_script};
use clawbridge_kakao::chatbot::ns;
use serde_json::json;

#[tokio::test]
async fn channel_events_are_authenticated_deduplicated_and_stored() {
    let h = Harness::start(&[], echo_script()).await;
    let url = format!("{}/kakao/channel-webhook", h.base);
    let event = json!({"event": "added", "id": "1234567890", "id_type": "app_user_id",
        "channel_public_id": "_ZeUTxl", "channel_uuid": "@example", "updated_at": "2026-01-01T00:00:00Z"});

    let r = h.http.post(&url).header("Authorization", "KakaoAK wrong").json(&event).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h.http.post(&url).json(&event).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(h.namespace(ns::CHANNEL_USERS).await.is_empty());

    let auth = format!("KakaoAK {ADMIN_KEY}");
    let post = |body: serde_json::Value, rid: &'static str| {
        h.http.post(&url).header("Authorization", auth.clone()).header("X-Kakao-Resource-ID", rid).json(&body).send()
    };
    let r = post(event.clone(), "res-1").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = post(event.clone(), "res-1").await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "duplicate".to_owned()));
    assert_eq!(h.namespace(ns::CHANNEL_EVENTS).await.len(), 1);

    let mut blocked = event.clone();
    blocked["event"] = json!("blocked");
    blocked["updated_at"] = json!("2026-01-02T00:00:00Z");
    assert_eq!(post(blocked, "res-2").await.unwrap().status(), 200);
    let user = h.state(ns::CHANNEL_USERS, "app_user_id:1234567890").await.unwrap();
    assert!(user.contains("\"blocked\""), "{user}");

    // A late redelivery of the older `added` (new resource id) does not undo the block.
    assert_eq!(post(event.clone(), "res-3").await.unwrap().status(), 200);
    let user = h.state(ns::CHANNEL_USERS, "app_user_id:1234567890").await.unwrap();
    assert!(user.contains("\"blocked\""), "{user}");

    let r = h.http.post(&url).header("Authorization", auth.clone()).body("{").send().await.unwrap();
    assert_eq!(r.status(), 400);
}
