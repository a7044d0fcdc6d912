//! Integration tests of clawbridge-bizmsg: the dealer client against fakes of the dealers,
//! written from reference/bizmsg.md (paths, headers, bodies, per-recipient failures inside a
//! 200, an answer lost after the dealer took the request); the fakes are the testkit's.

mod infobip;
mod nhn;
mod solapi;
