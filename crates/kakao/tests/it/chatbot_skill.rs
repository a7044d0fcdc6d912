//! `POST /kakao/skill`: authentication, parsing, dedup and the timing of answers.

use crate::support::{BOT_ID, Harness, echo_script, payload, quick_labels, texts};
use clawbridge_core::IdempotencyKey;
use clawbridge_kakao::chatbot::ns;
use clawbridge_kakao::chatbot::{KakaoReply, KakaoTurn, SkillResponse};
use serde_json::{Value, json};
use std::time::Duration;

fn valid(response: &Value) -> SkillResponse {
    let parsed: SkillResponse = serde_json::from_value(response.clone()).expect("a SkillResponse");
    parsed.validate().expect("within Kakao's limits");
    parsed
}

#[tokio::test]
async fn wrong_secret_wrong_bot_and_bad_bodies_store_nothing() {
    let h = Harness::start(&[], echo_script()).await;
    let url = format!("{}/kakao/skill", h.base);
    let body = payload("u1", "안녕", None);

    let r = h.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h.http.post(&url).header("X-Skill-Secret", "wrong-secret-0123456789").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let mut other_bot = body.clone();
    other_bot["bot"]["id"] = json!("someone-elses-bot");
    let (status, _) = h.skill(&other_bot, &[]).await;
    assert_eq!(status, 403);

    let r = h.http.post(&url).header("X-Skill-Secret", crate::support::SECRET).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["version"], "2.0");
    assert!(!texts(&shown)[0].is_empty(), "a SkillResponse-shaped error text: {shown}");

    let huge = payload("u1", &"가".repeat(300_000), None);
    let r = h.http.post(&url).header("X-Skill-Secret", crate::support::SECRET).json(&huge).send().await.unwrap();
    assert_eq!(r.status(), 413);

    assert!(h.inbox().await.is_empty(), "nothing was stored");
    assert_eq!(h.runs(), 0);
}

#[tokio::test]
async fn a_fast_answer_is_returned_inline_with_the_session_peer() {
    let h = Harness::start(&[], echo_script()).await;
    let (status, body) = h.skill(&payload("u1", "배송 언제 와요?", None), &[]).await;
    assert_eq!(status, 200);
    valid(&body);
    assert_eq!(texts(&body), vec!["ECHO 배송 언제 와요?"]);
    let inbox = h.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].peer.as_str(), "pf-u1", "the plusfriendUserKey is the peer (session key)");
    let turn = KakaoTurn::of(&inbox[0]);
    assert_eq!(turn.bot_user_key.as_deref(), Some("bot-u1"));
    assert_eq!(turn.is_friend, Some(true));
}

#[tokio::test]
async fn the_bot_user_key_is_the_peer_without_a_channel_key() {
    let h = Harness::start(&[], echo_script()).await;
    let mut body = payload("u2", "hi", None);
    body["userRequest"]["user"]["properties"] = json!({});
    let (status, _) = h.skill(&body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(h.inbox().await[0].peer.as_str(), "bot-u2");
}

#[tokio::test]
async fn a_slow_answer_goes_to_the_callback_once() {
    let h = Harness::start(&[("KAKAO_WAITING_TEXT", "잠시만요")], echo_script()).await;
    let callback = h.kakao.callback_url(&h.kakao_base);
    let (status, body) = h.skill(&payload("u1", "SLOW:1500 질문", Some(&callback)), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"version": "2.0", "useCallback": true, "data": {"text": "잠시만요"}}));

    let hits = h.kakao.wait_hits(1).await;
    assert!(hits[0].accepted, "{:?}", hits[0]);
    valid(&hits[0].body);
    assert_eq!(texts(&hits[0].body), vec!["ECHO SLOW:1500 질문"]);
    let sent = h.wait_sent(1).await;
    assert!(sent[0].1.starts_with("callback:"), "{sent:?}");
    let recorded = h.namespace(ns::CALLBACKS).await;
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].1.contains("\"SUCCESS\""), "{recorded:?}");

    // A retried send of the same answer (crash after the POST) never POSTs twice.
    let receipt = h.account.send(&sent[0].0, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("callback:"));
    assert_eq!(h.kakao.hits().len(), 1);
}

#[tokio::test]
async fn a_callback_rejected_by_kakao_keeps_the_answer_for_the_next_message() {
    let h = Harness::start(&[], echo_script()).await;
    let callback = h.kakao.callback_url(&h.kakao_base);
    // Use the token up first: the real answer's POST is then a second use and is rejected.
    h.http.post(&callback).json(&SkillResponse::text("x")).send().await.unwrap();
    let (_, body) = h.skill(&payload("u1", "SLOW:1200 두번째", Some(&callback)), &[]).await;
    assert_eq!(body["useCallback"], true);
    let hits = h.kakao.wait_hits(2).await;
    assert!(!hits[1].accepted);
    h.wait_sent(1).await;
    let recorded = h.namespace(ns::CALLBACKS).await;
    assert!(recorded[0].1.contains("\"FAIL\""), "{recorded:?}");

    let (_, next) = h.skill(&payload("u1", "답변 보기", None), &[]).await;
    valid(&next);
    assert_eq!(texts(&next), vec!["ECHO SLOW:1200 두번째"]);
}

#[tokio::test]
async fn an_answer_after_the_callback_window_is_not_posted() {
    let h = Harness::start(&[], echo_script()).await;
    let callback = h.kakao.callback_url(&h.kakao_base);
    // A turn whose handler answered useCallback 56 s ago (as another process would record it).
    let turn = json!({"url": callback, "received_at": chrono_now() - 56_000});
    h.bridge.state_put("kakao.turn/default", "rid:old", &turn.to_string(), None, false).await.unwrap();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u9", "rid:old", "q");
    msg.extra = json!({"kakao": {"receivedAt": chrono_now() - 56_000}}).into();
    let out = h.connector_render(&msg, "늦은 답변");
    let receipt = h.account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("pending:"));
    assert!(h.kakao.hits().is_empty(), "no POST after 55 s");
    assert!(h.namespace(ns::CALLBACKS).await[0].1.contains("EXPIRED"));
    let (_, next) = h.skill(&payload("u9", "답변 보기", None), &[]).await;
    assert_eq!(texts(&next), vec!["늦은 답변"]);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

impl Harness {
    fn connector_render(&self, msg: &clawbridge_core::InboundMessage, reply: &str) -> clawbridge_core::OutboundMessage {
        use clawbridge_channel::Connector as _;
        self.connector.render_reply(msg, reply).remove(0)
    }
}

#[tokio::test]
async fn without_callback_the_answer_comes_with_the_next_utterance() {
    let h = Harness::start(&[("KAKAO_STILL_WORKING_TEXT", "아직 준비 중이에요")], echo_script()).await;
    let (_, first) = h.skill(&payload("u1", "SLOW:1200 주문 상태", None), &[]).await;
    valid(&first);
    assert_eq!(texts(&first), vec!["아직 준비 중이에요"]);
    assert_eq!(quick_labels(&first), vec!["답변 보기"]);
    let sent = h.wait_sent(1).await;
    assert!(sent[0].1.starts_with("pending:"), "{sent:?}");

    // Any next message: the kept answer comes first, the new one's answer with it when it fits.
    let (_, next) = h.skill(&payload("u1", "고마워요", None), &[]).await;
    valid(&next);
    assert_eq!(texts(&next), vec!["ECHO SLOW:1200 주문 상태", "ECHO 고마워요"]);
    assert_eq!(h.runs(), 2);

    // "답변 보기" with nothing kept runs no agent and says it is still working.
    let (_, fetch) = h.skill(&payload("u1", "답변 보기", None), &[]).await;
    assert_eq!(texts(&fetch), vec!["아직 준비 중이에요"]);
    assert_eq!(h.runs(), 2);
}

#[tokio::test]
async fn a_retried_request_starts_no_second_run() {
    let h = Harness::start(&[], echo_script()).await;
    let body = payload("u1", "SLOW:300 한 번만", None);
    let (a, b) = tokio::join!(h.skill(&body, &[("X-Request-Id", "req-1")]), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.skill(&body, &[("X-Request-Id", "req-1")]).await
    });
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(h.inbox().await.len(), 1);
    assert_eq!(h.runs(), 1);
    assert!(texts(&a.1).concat().contains("한 번만") || texts(&b.1).concat().contains("한 번만"));
    // A repeat after the answer was given (Kakao did not get our response) shows the same answer.
    let (status, again) = h.skill(&body, &[("X-Request-Id", "req-1")]).await;
    assert_eq!(status, 200);
    assert_eq!(texts(&again), vec!["ECHO SLOW:300 한 번만"]);
    assert_eq!(h.runs(), 1);

    // Without a request id, the same user and utterance within the window is the same turn.
    let body = payload("u2", "같은 질문", None);
    h.skill(&body, &[]).await;
    h.skill(&body, &[]).await;
    assert_eq!(h.inbox().await.len(), 2);
    assert_eq!(h.runs(), 2);
    // Another user with the same words is another turn.
    h.skill(&payload("u3", "같은 질문", None), &[]).await;
    assert_eq!(h.runs(), 3);
}

#[tokio::test]
async fn a_long_answer_continues_behind_more() {
    let h = Harness::start(&[], echo_script()).await;
    let (_, first) = h.skill(&payload("u1", "LONG:4000", None), &[]).await;
    valid(&first);
    let shown = texts(&first);
    assert_eq!(shown.len(), 3);
    assert!(shown.iter().all(|t| t.chars().count() <= 1000));
    assert_eq!(quick_labels(&first), vec!["더 보기"]);

    let (_, more) = h.skill(&payload("u1", "더 보기", None), &[]).await;
    valid(&more);
    let rest = texts(&more);
    assert!(!rest.is_empty());
    assert!(quick_labels(&more).is_empty());
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let answer = echo_script()("LONG:4000").0;
    assert_eq!(answer.chars().count(), 4000);
    assert_eq!(squash(&shown.iter().chain(&rest).cloned().collect::<String>()), squash(&answer));
    let pages = KakaoReply::of(&h.sent.lock().unwrap()[0].0).pages.len();
    assert_eq!(pages, 2);
    assert_eq!(h.runs(), 1, "더 보기 is answered from session state, not by the agent");
}

#[tokio::test]
async fn a_notice_without_reply_to_reaches_the_waiting_user() {
    let h = Harness::start(&[], echo_script()).await;
    let (_, body) = h.skill(&payload("u1", "NOTICE:pairing-code-ABCD", None), &[]).await;
    assert_eq!(texts(&body), vec!["pairing-code-ABCD"]);
}

#[tokio::test]
async fn secure_images_are_downloaded_for_the_agent() {
    // The whole sync window for the download on a loaded test machine.
    let h = Harness::start(&[("KAKAO_SYNC_DEADLINE_SECS", "4.5")], echo_script()).await;
    let plugin = json!({"privacyAgreement": "Y", "imageQuantity": "2",
        "secureUrls": format!("List({0}/images/small.png, {0}/images/huge.png)", h.kakao_base)});
    let mut body = payload("u1", "사진 봐 주세요", None);
    body["action"]["params"]["secureimage"] = json!(plugin.to_string());
    let (status, _) = h.skill(&body, &[]).await;
    assert_eq!(status, 200);
    let msg = &h.inbox().await[0];
    assert_eq!(msg.media.len(), 2);
    assert_eq!(msg.media[0].mime_type.as_deref(), Some("image/png"));
    assert!(msg.media[0].data_base64.is_some());
    assert!(msg.media[1].data_base64.is_none(), "over mediaMaxMb: described, not attached");
    assert_eq!(msg.text, "사진 봐 주세요");
}

#[tokio::test]
async fn an_answer_ready_at_once_is_inline_even_for_callback_blocks() {
    let h = Harness::start(&[], echo_script()).await;
    let callback = h.kakao.callback_url(&h.kakao_base);
    let (_, body) = h.skill(&payload("u1", "빠른 질문", Some(&callback)), &[]).await;
    assert_eq!(texts(&body), vec!["ECHO 빠른 질문"]);
    assert!(h.kakao.hits().is_empty());
    let _ = BOT_ID;
}

#[tokio::test]
async fn several_bots_share_the_endpoint_routed_by_secret_and_bot_id() {
    let toml = "[chatbot.accounts.shop]\nbotId = \"bot-1\"\n[chatbot.accounts.clinic]\nbotId = \"bot-2\"\nskillSecret = \"clinic-secret-0123456789\"\n";
    let h = Harness::start_with(&[("KAKAO_BOT_ID", "")], toml, echo_script()).await;
    let mut clinic = payload("u1", "진료 시간?", None);
    clinic["bot"]["id"] = json!("bot-2");
    let url = format!("{}/kakao/skill", h.base);
    let post =
        |secret: &'static str, body: Value| h.http.post(&url).header("X-Skill-Secret", secret).json(&body).send();

    // The clinic's secret does not open the shop's bot, and the shop's does not open the clinic's.
    assert_eq!(post("clinic-secret-0123456789", payload("u1", "x", None)).await.unwrap().status(), 403);
    assert_eq!(post(crate::support::SECRET, clinic.clone()).await.unwrap().status(), 403);
    assert!(h.inbox().await.is_empty());

    let r = post("clinic-secret-0123456789", clinic).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(texts(&r.json().await.unwrap()), vec!["ECHO 진료 시간?"]);
    let (_, shop) = h.skill(&payload("u1", "배송?", None), &[]).await;
    assert_eq!(texts(&shop), vec!["ECHO 배송?"]);
    let accounts: Vec<String> = h.inbox().await.iter().map(|m| m.account.to_string()).collect();
    assert_eq!(accounts, vec!["clinic", "shop"]);
}

/// The pipeline of another replica completes turns whose HTTP request this process holds.
#[tokio::test]
async fn another_replica_delivers_inline_and_through_the_callback() {
    use clawbridge_channel::Connector as _;
    // This process's own "agent" never answers in time: only the replica does.
    let never: crate::support::Script = std::sync::Arc::new(|t: &str| (format!("late {t}"), Duration::from_secs(3600)));
    let h = Harness::start(&[("KAKAO_SYNC_DEADLINE_SECS", "2.0")], never).await;
    let (replica, replica_account) = h.replica();

    // 1. Within the sync deadline: the answer offered through the store is returned inline.
    let question = payload("u1", "재고 있나요?", None);
    let request = h.skill(&question, &[]);
    let deliver = async {
        while h.inbox().await.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let msg = h.inbox().await[0].clone();
        let out = replica.render_reply(&msg, "네, 재고 있어요.").remove(0);
        replica_account.send(&out, &IdempotencyKey::new("out")).await.unwrap()
    };
    let answered = std::sync::atomic::AtomicBool::new(false);
    let request = async {
        let response = request.await;
        answered.store(true, std::sync::atomic::Ordering::SeqCst);
        response
    };
    let deliver = async {
        let receipt = deliver.await;
        // The replica's send does not wait for this process's handler (its deadline is 2 s away).
        assert!(!answered.load(std::sync::atomic::Ordering::SeqCst), "send returned before the handler answered");
        receipt
    };
    let ((status, body), receipt) = tokio::join!(request, deliver);
    assert_eq!(status, 200);
    assert_eq!(texts(&body), vec!["네, 재고 있어요."]);
    assert!(receipt.platform_message_id.unwrap().starts_with("inline:"));

    // 2. After a useCallback answer: the replica POSTs to the callback URL stored with the turn.
    let callback = h.kakao.callback_url(&h.kakao_base);
    let (_, waiting) = h.skill(&payload("u2", "배송 조회", Some(&callback)), &[]).await;
    assert_eq!(waiting["useCallback"], true);
    let msg = h.inbox().await.into_iter().find(|m| m.peer.as_str() == "pf-u2").unwrap();
    let out = replica.render_reply(&msg, "내일 도착해요.").remove(0);
    let receipt = replica_account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("callback:"));
    let hits = h.kakao.wait_hits(1).await;
    assert!(hits[0].accepted);
    assert_eq!(texts(&hits[0].body), vec!["내일 도착해요."]);
    // This process's own late answer for the same turn is never POSTed a second time.
    let receipt = h.account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("callback:"));
    assert_eq!(h.kakao.hits().len(), 1);
}

#[tokio::test]
async fn a_disabled_bot_says_so_and_stores_nothing() {
    let h = Harness::start(&[("KAKAO_DM_POLICY", "disabled")], echo_script()).await;
    let (status, body) = h.skill(&payload("u1", "안녕하세요", None), &[]).await;
    assert_eq!(status, 200);
    assert!(texts(&body)[0].contains("이용할 수 없어요"), "{body}");
    assert!(h.inbox().await.is_empty());
}

#[tokio::test]
async fn a_late_answer_is_announced_through_the_event_api_when_configured() {
    let h = Harness::start(&[("KAKAO_LATE_ANSWER_EVENT", "late_answer")], echo_script()).await;
    let (_, first) = h.skill(&payload("u1", "SLOW:1200 환불 규정", None), &[]).await;
    assert_eq!(quick_labels(&first), vec!["답변 보기"]);
    h.wait_sent(1).await;
    let pushes = h.kakao.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1);
    let body = &pushes[0].1;
    assert_eq!(body["event"]["name"], "late_answer");
    assert_eq!(body["event"]["data"]["text"], "ECHO SLOW:1200 환불 규정");
    assert_eq!(body["user"], json!([{"type": "botUserKey", "id": "bot-u1"}]));
    assert!(h.namespace(ns::PUSH_TASKS).await[0].1.contains("late-answer"));
    // The answer is still shown on the next message.
    let (_, next) = h.skill(&payload("u1", "답변 보기", None), &[]).await;
    assert_eq!(texts(&next), vec!["ECHO SLOW:1200 환불 규정"]);
}

/// An answer offered for another replica's handler is in the store when `send` returns: if that
/// handler is gone (its process crashed), the user gets the answer with the next message, once.
#[tokio::test]
async fn an_offered_answer_outlives_a_handler_that_is_gone() {
    let h = Harness::start(&[], echo_script()).await;
    let (replica, replica_account) = h.replica();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u7", "rid:gone", "q");
    msg.extra = KakaoTurn { received_at: Some(chrono_now()), ..KakaoTurn::default() }.to_channel_data();
    use clawbridge_channel::Connector as _;
    let out = replica.render_reply(&msg, "살아남은 답변").remove(0);
    let receipt = replica_account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("inline:"), "offered to the turn's handler");
    let kept = h.namespace("kakao.pending/default/pf-u7").await;
    assert_eq!(kept.len(), 1, "kept durably before send returned: {kept:?}");

    let (_, next) = h.skill(&payload("u7", "답변 보기", None), &[]).await;
    assert_eq!(texts(&next), vec!["살아남은 답변"]);
    let (_, again) = h.skill(&payload("u7", "답변 보기", None), &[]).await;
    assert_ne!(texts(&again), vec!["살아남은 답변"], "shown once");
    assert_eq!(h.runs(), 0);
}

/// An offered answer that the handler missed (it promised the callback first) is POSTed to the
/// turn's callback once the handler's deadline has passed.
#[tokio::test]
async fn an_offer_the_handler_missed_goes_to_its_callback() {
    let h = Harness::start(&[], echo_script()).await;
    let (replica, replica_account) = h.replica();
    let callback = h.kakao.callback_url(&h.kakao_base);
    // The handler (deadline 0.8 s) already answered useCallback, as another process records it.
    let received_at = chrono_now() - 500;
    let turn = json!({"url": callback, "received_at": received_at});
    h.bridge.state_put("kakao.turn/default", "rid:missed", &turn.to_string(), None, false).await.unwrap();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u8", "rid:missed", "q");
    msg.extra = KakaoTurn { received_at: Some(received_at), ..KakaoTurn::default() }.to_channel_data();
    use clawbridge_channel::Connector as _;
    let out = replica.render_reply(&msg, "콜백으로 간 답변").remove(0);
    let receipt = replica_account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(receipt.platform_message_id.unwrap().starts_with("inline:"));

    let hits = h.kakao.wait_hits(1).await;
    assert!(hits[0].accepted);
    assert_eq!(texts(&hits[0].body), vec!["콜백으로 간 답변"]);
    // The outcome is recorded after Kakao's answer to the POST.
    let recorded = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let recorded = h.namespace(ns::CALLBACKS).await;
            if !recorded.is_empty() {
                return recorded;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the callback outcome is recorded");
    assert!(recorded[0].1.contains("SUCCESS"), "{recorded:?}");
    assert!(h.namespace("kakao.pending/default/pf-u8").await.is_empty(), "not also kept for the next turn");
}

/// An offered answer nobody took is announced through the Event API once the handler's deadline
/// has passed, and still shown on the next message.
#[tokio::test]
async fn an_offer_nobody_took_is_announced() {
    let h = Harness::start(&[("KAKAO_LATE_ANSWER_EVENT", "late_answer")], echo_script()).await;
    let (replica, replica_account) = h.replica();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u6", "rid:nobody", "q");
    msg.extra = KakaoTurn {
        received_at: Some(chrono_now() - 500),
        bot_user_key: Some("bot-u6".to_owned()),
        ..KakaoTurn::default()
    }
    .to_channel_data();
    use clawbridge_channel::Connector as _;
    let out = replica.render_reply(&msg, "알림 받은 답변").remove(0);
    replica_account.send(&out, &IdempotencyKey::new("out")).await.unwrap();

    let pushes = h.kakao.wait_pushes(1).await;
    assert_eq!(pushes[0].1["event"]["data"]["text"], "알림 받은 답변");
    assert_eq!(pushes[0].1["user"], json!([{"type": "botUserKey", "id": "bot-u6"}]));
    let (_, next) = h.skill(&payload("u6", "답변 보기", None), &[]).await;
    assert_eq!(texts(&next), vec!["알림 받은 답변"]);
}

/// The store fails while the continuation of a long callback answer is kept: the send fails, and
/// its retry POSTs the callback (a claim written before the POST must not pass for a POST made).
#[tokio::test]
async fn a_callback_send_that_failed_before_its_post_posts_on_the_retry() {
    use clawbridge_channel::Connector as _;
    let h = Harness::start(&[], echo_script()).await;
    let flaky = crate::support::FlakyBridge::new(h.bridge.clone(), "kakao.more", 1);
    let replica = clawbridge_kakao::chatbot::KakaoChatbot::new(&h.config, flaky).unwrap();
    let account = replica.accounts().remove(0);
    let callback = h.kakao.callback_url(&h.kakao_base);
    // The handler promised the callback 2 s ago (past the 0.8 s sync deadline, inside Kakao's minute).
    let received_at = chrono_now() - 2_000;
    let turn = json!({"url": callback, "received_at": received_at});
    h.bridge.state_put("kakao.turn/default", "rid:flaky", &turn.to_string(), None, false).await.unwrap();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u9", "rid:flaky", "q");
    msg.extra = KakaoTurn { received_at: Some(received_at), ..KakaoTurn::default() }.to_channel_data();
    let long = "이 문장은 긴 답변을 만들기 위한 예시 문장입니다. ".repeat(150);
    let out = replica.render_reply(&msg, &long).remove(0);

    let first = account.send(&out, &IdempotencyKey::new("out")).await;
    assert!(first.is_err(), "the continuation could not be kept: {first:?}");
    assert!(h.kakao.hits().is_empty(), "nothing POSTed yet");
    let retry = account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert!(retry.platform_message_id.unwrap().starts_with("callback:"));
    let hits = h.kakao.wait_hits(1).await;
    assert!(hits[0].accepted, "the answer reached the user through the callback");
    // A third attempt (the row retried once more) never POSTs twice.
    account.send(&out, &IdempotencyKey::new("out")).await.unwrap();
    assert_eq!(h.kakao.hits().len(), 1);
}

/// An older kept answer taken to go in front of a callback answer is not lost when that
/// delivery fails before its POST.
#[tokio::test]
async fn a_kept_answer_taken_for_a_failed_callback_is_put_back() {
    use clawbridge_channel::Connector as _;
    let h = Harness::start(&[], echo_script()).await;
    // Two pages: shown in front, its second page is the continuation kept for "더 보기".
    let pending = json!({"pages": [SkillResponse::text("예전 답변"), SkillResponse::text("예전 답변 계속")]});
    h.bridge
        .state_put(
            "kakao.pending/default/pf-u10",
            "0000000000001-0000000001-aaaaaaaaaaaa",
            &pending.to_string(),
            None,
            false,
        )
        .await
        .unwrap();
    let flaky = crate::support::FlakyBridge::new(h.bridge.clone(), "kakao.more", 1);
    let replica = clawbridge_kakao::chatbot::KakaoChatbot::new(&h.config, flaky).unwrap();
    let account = replica.accounts().remove(0);
    let callback = h.kakao.callback_url(&h.kakao_base);
    let received_at = chrono_now() - 2_000;
    let turn = json!({"url": callback, "received_at": received_at});
    h.bridge.state_put("kakao.turn/default", "rid:kept", &turn.to_string(), None, false).await.unwrap();
    let mut msg = clawbridge_core::InboundMessage::text("kakao", "default", "pf-u10", "rid:kept", "q");
    msg.extra = KakaoTurn { received_at: Some(received_at), ..KakaoTurn::default() }.to_channel_data();
    let out = replica.render_reply(&msg, "새 답변").remove(0);

    assert!(account.send(&out, &IdempotencyKey::new("out")).await.is_err());
    let kept = h.namespace("kakao.pending/default/pf-u10").await;
    assert_eq!(kept.len(), 1, "the older answer is back: {kept:?}");
    assert!(kept[0].1.contains("예전 답변"));
}

/// Without X-Request-Id, a user's genuine repeat ("네", "네": each request with its own one-time
/// callback URL) is two turns, while a retry of one request (the same callback URL) is one.
#[tokio::test]
async fn a_genuine_repeat_without_request_id_is_a_new_turn() {
    let h = Harness::start(&[], echo_script()).await;
    let first = h.kakao.callback_url(&h.kakao_base);
    let second = h.kakao.callback_url(&h.kakao_base);
    h.skill(&payload("u4", "네", Some(&first)), &[]).await;
    h.skill(&payload("u4", "네", Some(&first)), &[]).await;
    assert_eq!(h.inbox().await.len(), 1, "a retry of the same request is the same turn");
    h.skill(&payload("u4", "네", Some(&second)), &[]).await;
    assert_eq!(h.inbox().await.len(), 2, "the user's second 네 is not dropped");
}
