//! Integration tests of the clawbridge daemon (one test binary).

mod cli;
mod pipeline;
mod support;
