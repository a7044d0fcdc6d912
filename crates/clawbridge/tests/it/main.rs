//! Integration tests of the clawbridge daemon (one test binary).

mod bizmsg;
mod bizmsg_dealers;
mod bizmsg_results;
mod browser;
mod campaign;
mod channel_state;
mod chaos;
mod cli;
mod console;
mod defects;
mod e2e;
mod kakao_chat;
mod kakao_talk;
mod listener;
mod pipeline;
mod plugins;
mod replicas;
mod sandbox;
mod setup;
mod support;
mod tool_calls;
mod tools;
mod whatsapp;
