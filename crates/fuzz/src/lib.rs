//! The properties the fuzzers check, one function per target: every parser that takes network
//! input must return (an error is fine) and never panic, and both renderers must turn any text
//! into payloads the platform accepts.
//!
//! The functions are shared by two harnesses: the coverage-guided `cargo fuzz` targets in
//! `fuzz/` (long runs, RELIABILITY.md) and this crate's tests, which replay the committed
//! corpus and a few thousand generated inputs on every `cargo test` (the short run CI does).
//! A panic, or a broken platform limit (an `assert!` here), is a finding.

use clawbridge_core::AccountId;

/// A property over one input.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the `fuzz/fuzz_targets/*.rs` file names and corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("whatsapp_webhook", whatsapp_webhook),
    ("kakao_skill", kakao_skill),
    ("kakao_channel_webhook", kakao_channel_webhook),
    ("gateway_frame", gateway_frame),
    ("dealer_webhooks", dealer_webhooks),
    ("render_whatsapp", render_whatsapp),
    ("render_kakao", render_kakao),
];

/// Kapso (v2) and Meta webhook bodies, split into records, each message converted the way
/// ingress converts it; the same bytes as a polled message.
pub fn whatsapp_webhook(data: &[u8]) {
    use clawbridge_whatsapp::inbound::{convert_record, parse_webhook};
    let account = AccountId::default_account();
    for (event, version) in [(None, None), (Some("whatsapp.message.received"), Some("v2"))] {
        if let Ok(batch) = parse_webhook(data, event, version) {
            for record in batch.messages {
                let _ = convert_record(record, &account);
            }
        }
    }
    if let Ok(message) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = clawbridge_whatsapp::inbound::is_history_import(&message);
        let _ = clawbridge_whatsapp::poller::created_at(&message);
    }
}

/// Kakao i open builder SkillPayloads, and what ingress reads of them.
pub fn kakao_skill(data: &[u8]) {
    use clawbridge_kakao::chatbot::payload::SkillPayload;
    if let Ok(payload) = SkillPayload::parse(data) {
        let _ = payload.bot_user_key();
        let _ = payload.peer();
    }
}

/// Kakao channel add/block webhook bodies.
pub fn kakao_channel_webhook(data: &[u8]) {
    let _ = serde_json::from_slice::<clawbridge_kakao::chatbot::payload::ChannelEvent>(data);
}

/// OpenClaw gateway frames (any text the socket delivers), and the payloads read from them.
pub fn gateway_frame(data: &[u8]) {
    use clawbridge_gateway::frame::{Frame, parse, parse_challenge, parse_hello};
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(Frame::Event(event)) => {
            let _ = parse_challenge(event.payload.as_ref());
            if let Some(payload) = &event.payload {
                let _ = clawbridge_gateway::agent::parse_wait(payload, "run-1");
            }
        }
        Ok(Frame::Response(res)) => {
            if let Some(payload) = &res.payload {
                let _ = parse_hello(payload);
                let _ = clawbridge_gateway::agent::parse_accepted(payload);
                let _ = clawbridge_gateway::agent::parse_wait(payload, "run-1");
            }
        }
        Ok(Frame::Request(_)) | Err(_) => {}
    }
}

/// The three dealers' delivery-result webhooks (NHN, Solapi, Infobip).
pub fn dealer_webhooks(data: &[u8]) {
    use clawbridge_bizmsg::dealer::{infobip, nhn, solapi};
    let _ = nhn::read_webhook(data);
    let _ = solapi::read_webhook(data);
    let _ = infobip::read_reports(data);
}

/// Markdown → WhatsApp text parts: each non-empty and within the 4,096-character limit.
pub fn render_whatsapp(data: &[u8]) {
    use clawbridge_whatsapp::render::{MAX_TEXT_CHARS, render_reply_parts};
    let text = String::from_utf8_lossy(data);
    for part in render_reply_parts(&text) {
        let chars = part.chars().count();
        assert!(chars <= MAX_TEXT_CHARS, "a WhatsApp part of {chars} characters");
        assert!(!part.trim().is_empty(), "an empty WhatsApp part");
    }
}

/// Markdown → Kakao skill responses: every page passes the platform's limits.
pub fn render_kakao(data: &[u8]) {
    use clawbridge_kakao::chatbot::render::render_answer;
    let text = String::from_utf8_lossy(data);
    for page in render_answer(&text, "더 보기") {
        if let Err(broken) = page.validate() {
            panic!("a Kakao page the platform refuses: {broken}");
        }
    }
}
