//! Snapshots of the chatbot's conversions at its edges, through the skill endpoint as Kakao calls
//! it, each reviewed against reference/kakao.md: a SkillPayload (§5.1) → the `InboundMessage` the
//! pipeline gets, with its `KakaoTurn` in `extra`; and the agent's answer, as a `KakaoReply` →
//! the SkillResponse 2.0 JSON Kakao receives (§5.2), inline or `useCallback:true` then POSTed to
//! the callback URL (§5.3).
//!
//! The clock and the fake's port are the only things that vary between runs: the arrival time
//! is replaced by `"[received_at]"` and the fake Kakao's address by `https://kakao.test`.

use crate::support::{Harness, Script, payload};
use clawbridge_core::InboundMessage;
use clawbridge_kakao::chatbot::{KakaoReply, KakaoTurn};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Answers in the shapes the renderer has: text, an image alone on a line, a long answer
/// (pages behind "더 보기"), and slowly (past the 0.8 s sync deadline of the harness).
fn script() -> Script {
    Arc::new(|text: &str| {
        if text.contains("사진") {
            return ("상품 사진이에요.\n\nhttps://img.example/p.jpg".to_owned(), Duration::ZERO);
        }
        if text.contains("자세히") {
            let sentence = "이 문장은 긴 답변을 만들기 위한 예시 문장입니다. ";
            return (sentence.repeat(120), Duration::ZERO);
        }
        let delay = if text.contains("천천히") { Duration::from_millis(1500) } else { Duration::ZERO };
        (format!("**{text}** 에 대한 답변입니다."), delay)
    })
}

/// The message as stored, its turn data decoded, with the run-dependent values replaced.
fn stored(h: &Harness, msg: &InboundMessage) -> Value {
    let received_at = KakaoTurn::of(msg).received_at.expect("the arrival time is kept");
    assert_eq!(msg.sent_at, Some(received_at), "sent_at is the request's arrival");
    normalise(h, json!({"message": msg, "turn": KakaoTurn::of(msg)}), received_at)
}

/// The `KakaoReply` the rendered answer to `msg` carried into `send`, normalised like [`stored`].
async fn sent_reply(h: &Harness, msg: &InboundMessage) -> Value {
    let sent = h.wait_sent(1).await;
    let reply = KakaoReply::of(&sent[0].0);
    assert_eq!(reply.received_at, KakaoTurn::of(msg).received_at, "the reply names its turn");
    normalise(h, json!(reply), reply.received_at.unwrap_or_default())
}

fn normalise(h: &Harness, value: Value, received_at: i64) -> Value {
    let text = value.to_string().replace(&h.kakao_base, "https://kakao.test");
    let text = text.replace(&received_at.to_string(), "\"[received_at]\"");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_skill_request_without_callback_answered_inline() {
    let h = Harness::start(&[], script()).await;
    let mut body = payload("u1", "배송 언제 와요?", None);
    body["userRequest"]["user"]["properties"]["appUserId"] = json!("4242");
    body["userRequest"]["params"] = json!({"surface": "Kakaotalk.plusfriend"});
    // A block parameter the agent is told about.
    body["action"]["params"] = json!({"주문번호": "A-17"});
    let (status, response) = h.skill(&body, &[("X-Request-Id", "req-inline")]).await;
    assert_eq!(status, 200);
    let inbox = h.bridge.inbox();
    let reply = sent_reply(&h, &inbox[0]).await;
    insta::assert_json_snapshot!(json!({"stored": stored(&h, &inbox[0]), "reply": reply, "response": response}));
}

#[tokio::test]
async fn a_slow_answer_with_callback_url_uses_the_callback() {
    let h = Harness::start(&[("KAKAO_WAITING_TEXT", "생각하고 있는 중이에요…")], script()).await;
    let callback = h.kakao.callback_url(&h.kakao_base);
    let (status, response) =
        h.skill(&payload("u1", "천천히 알려 주세요", Some(&callback)), &[("X-Request-Id", "req-cb")]).await;
    assert_eq!(status, 200);
    let hits = h.kakao.wait_hits(1).await;
    assert!(hits[0].accepted, "{:?}", hits[0]);
    let inbox = h.bridge.inbox();
    let reply = sent_reply(&h, &inbox[0]).await;
    insta::assert_json_snapshot!(json!({
        "stored": stored(&h, &inbox[0]),
        "reply": reply,
        "response": response,
        "callback_body": hits[0].body,
    }));
}

#[tokio::test]
async fn a_secure_image_request_carries_the_downloaded_pictures() {
    let h = Harness::start(&[("KAKAO_SYNC_DEADLINE_SECS", "4.5")], script()).await;
    // §5.1: the secure-image plugin's param is a JSON string with `List(…)` of URLs.
    let plugin = json!({"privacyAgreement": "Y", "imageQuantity": "2",
        "secureUrls": format!("List({0}/images/small.png, {0}/images/huge.png)", h.kakao_base)});
    let mut body = payload("u1", "사진 봐 주세요", None);
    body["action"]["params"]["secureimage"] = json!(plugin.to_string());
    let (status, response) = h.skill(&body, &[("X-Request-Id", "req-img")]).await;
    assert_eq!(status, 200);
    let inbox = h.bridge.inbox();
    insta::assert_json_snapshot!(json!({"stored": stored(&h, &inbox[0]), "response": response}));
}

#[tokio::test]
async fn a_long_answer_pages_behind_more() {
    let h = Harness::start(&[], script()).await;
    let (status, first) = h.skill(&payload("u1", "자세히 설명해 주세요", None), &[("X-Request-Id", "req-long")]).await;
    assert_eq!(status, 200);
    // "더 보기" is answered from the stored pages, without another run.
    let (_, second) = h.skill(&payload("u1", "더 보기", None), &[("X-Request-Id", "req-more")]).await;
    assert_eq!(h.runs(), 1);
    insta::assert_json_snapshot!(json!({"first": first, "more": second}));
}
