//! Integration tests of the Kakao crate against fakes of the Kakao side (one test binary).

mod chatbot_event_api;
mod chatbot_skill;
mod chatbot_webhook;
mod snapshots;
mod support;
mod talk;
