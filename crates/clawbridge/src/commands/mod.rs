//! The subcommands.

pub mod doctor;
pub mod kakao;
pub mod pairing;
pub mod serve;
pub mod status;
pub mod whatsapp;
