//! The Event API client against the fake bot API.

use crate::support::{BOT_ID, Harness, REST_KEY, echo_script};
use clawbridge_kakao::chatbot::{EventApi, EventApiError, UserType};
use secrecy::SecretString;
use serde_json::{Map, Value};

#[tokio::test]
async fn pushes_go_in_batches_of_100_and_tasks_report_per_user() {
    let h = Harness::start(&[], echo_script()).await;
    let api = EventApi::new(&h.kakao_base, BOT_ID, SecretString::from(REST_KEY)).unwrap();
    let users: Vec<String> =
        (0..250).map(|i| if i == 7 { "stranger-7".to_owned() } else { format!("user-{i}") }).collect();
    let mut data = Map::new();
    data.insert("text".to_owned(), Value::String("주문하신 상품이 출발했어요".to_owned()));
    let outcomes = api.push("order_shipped", &data, UserType::AppUserId, &users, &Map::new()).await.unwrap();
    assert_eq!(outcomes.iter().map(|o| o.users).collect::<Vec<_>>(), vec![100, 100, 50]);
    assert!(outcomes.iter().all(|o| o.status == "SUCCESS" && o.task_id.is_some()));

    let pushes = h.kakao.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 3);
    let (headers, body) = &pushes[0];
    assert_eq!(headers["authorization"], format!("KakaoAK {REST_KEY}"));
    assert_eq!(body["event"]["name"], "order_shipped");
    assert_eq!(body["event"]["data"]["text"], "주문하신 상품이 출발했어요");
    assert_eq!(body["user"][0], serde_json::json!({"type": "appUserId", "id": "user-0"}));

    let report = api.task(outcomes[0].task_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(report.users.len(), 100);
    assert!(report.users.contains(&("stranger-7".to_owned(), "FAIL".to_owned())));
}

#[tokio::test]
async fn a_wrong_key_is_explained() {
    let h = Harness::start(&[], echo_script()).await;
    let api = EventApi::new(&h.kakao_base, BOT_ID, SecretString::from("wrong")).unwrap();
    let err = api.push("e", &Map::new(), UserType::BotUserKey, &["u".to_owned()], &Map::new()).await.unwrap_err();
    match &err {
        EventApiError::Http { status: 401, hint, .. } => assert!(hint.contains("KAKAO_REST_API_KEY")),
        other => panic!("{other:?}"),
    }
    let api = EventApi::new(&h.kakao_base, "other-bot", SecretString::from(REST_KEY)).unwrap();
    let err = api.push("e", &Map::new(), UserType::BotUserKey, &["u".to_owned()], &Map::new()).await.unwrap_err();
    assert!(err.to_string().contains("KAKAO_BOT_ID"), "{err}");
}
