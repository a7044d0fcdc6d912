//! The bridge's own subcommands, the Go bridge's binaries ([`compat`]), and the [`host`] a
//! channel's subcommand runs with (the channels' commands are in their crates).

pub mod bizmsg;
pub mod campaign;
pub mod compat;
pub mod config_check;
pub mod doctor;
pub mod health;
pub mod host;
pub mod init;
pub mod pairing;
pub mod sandbox;
pub mod serve;
pub mod status;
