//! Integration tests of the WhatsApp crate (one test binary).

mod account;
mod client;
mod platform;
mod poller;
mod snapshots;
mod support;
mod tailscale;
mod webhook;
