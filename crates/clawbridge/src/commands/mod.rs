//! The subcommands.

pub mod doctor;
pub mod pairing;
pub mod serve;
pub mod status;
